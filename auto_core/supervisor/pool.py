"""A pool of daemon threads that grows when its work is stuck: the health checks run in it.

``BASE`` threads come as jobs need them. Beyond those, a job waiting for a thread gets a new
one only when every thread has been on its job for ``STUCK`` seconds or more (checks that
hang until their timeout), up to the limit the caller gives (the services with a check,
capped): a hanging check holds its own service, and no other for much longer than that. A
batch of quick checks is taken by the threads there are. A thread idle for ``IDLE`` seconds
ends. Daemon threads: a job that hangs never delays the process's exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

BASE = 4  # threads started as soon as jobs wait
STUCK = 1.0  # seconds on one job after which a thread counts as stuck
IDLE = 30.0  # seconds a thread waits for work before it ends


class Pool:
    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive
        self._idle = 0  # waiting for a job
        self._pending = 0  # put and not taken yet
        self._busy: dict[int, float] = {}  # thread number -> when it took its job (monotonic)
        self._closed = False
        self._started = 0  # for the threads' names

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def waiting(self) -> bool:
        """Jobs wait for a thread."""
        return self._pending > self._idle

    def submit(self, job: Callable[[], None], limit: int) -> None:
        """Run ``job`` on a thread: an idle one, else a new one (``grow``)."""
        with self._lock:
            if self._closed:
                return
            self._pending += 1
            self._jobs.put(job)
        self.grow(limit)

    def grow(self, limit: int) -> None:
        """Start threads for the jobs waiting while fewer than ``limit`` run: up to ``BASE``
        at once, beyond only while every thread is stuck. The caller calls it again now and
        then (the watcher at each pass), since a thread turns stuck without any new job."""
        numbers: list[int] = []
        with self._lock:
            now = time.monotonic()
            while not self._closed and self._pending > self._idle + len(numbers) \
                    and self._threads < max(1, limit) and (self._threads < BASE or (
                        len(self._busy) == self._threads  # each one on a job, for long
                        and all(now - since >= STUCK for since in self._busy.values()))):
                self._threads += 1
                self._started += 1
                numbers.append(self._started)
        for number in numbers:
            threading.Thread(target=self._work, args=(number,), name=f"{self.name}-{number}",
                             daemon=True).start()

    def close(self) -> None:
        """Each thread ends after its current job; jobs not taken yet are dropped."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._jobs.put(None)

    def _work(self, number: int) -> None:
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
                self._busy[number] = time.monotonic()
            try:
                job()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                    self._busy.pop(number, None)
                raise
            with self._lock:
                self._busy.pop(number, None)
