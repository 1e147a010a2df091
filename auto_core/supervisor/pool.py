"""A pool of daemon threads that grows with its work: the health checks run in it.

A job that finds no idle thread gets a new one, up to the limit the caller gives with it (the
services with a check, capped), so a check that hangs for its timeout holds its own service
and no other. A thread idle for ``IDLE`` seconds ends: a watcher whose checks are quick keeps
one or two. Daemon threads: a job that hangs never delays the process's exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

IDLE = 30.0  # seconds a thread waits for work before it ends


class Pool:
    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive
        self._idle = 0  # waiting for a job
        self._pending = 0  # put and not taken yet
        self._closed = False
        self._started = 0  # for the threads' names

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, job: Callable[[], None], limit: int) -> None:
        """Run ``job`` on a thread: an idle one, or a new one while fewer than ``limit`` run."""
        with self._lock:
            if self._closed:
                return
            self._pending += 1
            self._jobs.put(job)
            if self._pending <= self._idle or self._threads >= max(1, limit):
                return
            self._threads += 1
            self._started += 1
            number = self._started
        threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True).start()

    def close(self) -> None:
        """Each thread ends after its current job; jobs not taken yet are dropped."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._jobs.put(None)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=IDLE)
            except queue.Empty:
                job = None
                timed_out = True
            else:
                timed_out = False
            with self._lock:
                self._idle -= 1
                if timed_out and self._pending > 0 and not self._closed:
                    continue  # a job came as the wait ended: another turn takes it
                if job is None or self._closed:
                    self._threads -= 1
                    return
                self._pending -= 1
            try:
                job()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                raise
