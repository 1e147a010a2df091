"""Start order (``--after NAME,...``): which names a definition may come after, and whether a
service is up for the ones that come after it. Data only: the faces check definitions with
it, the watcher holds a start with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def after_of(entry: Mapping) -> tuple[str, ...]:
    value = entry.get("after")
    return tuple(n for n in value if isinstance(n, str)) if isinstance(value, list) else ()


def check(graph: Mapping[str, tuple[str, ...] | list[str]], names: list[str] | None = None) -> str | None:
    """One line naming what is wrong with ``graph`` (name -> the names it comes after): an
    unknown name in the lists of ``names`` (default: all), or a cycle (a service after itself
    is one); None when it is a proper order. A name removed since is no cycle: it is skipped."""
    for name in sorted(graph) if names is None else names:
        unknown = [n for n in graph[name] if n not in graph]
        if unknown:
            return f"{name}: after {', '.join(unknown)}: no such process"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in graph[name]:
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            if cycle:
                return f"start order has a cycle: {' -> '.join(cycle)}"
    return None


def dependents(graph: Mapping[str, tuple[str, ...] | list[str]], name: str) -> list[str]:
    """The services that come after ``name``, sorted."""
    return sorted(n for n, deps in graph.items() if name in deps)


def reaches(after: Callable[[str], tuple[str, ...]], start: str, target: str) -> bool:
    """Whether ``start`` comes after ``target``, directly or through others (``after(name)``:
    the names one comes after). The faces refuse cycles; a hand edit can still make one."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(after(name))
    return False


def is_up(entry: Mapping, running: bool) -> bool:
    """Up for the services after it: running, and healthy for its current run when it has a
    health check."""
    if not running:
        return False
    if not entry.get("health"):
        return True
    return entry.get("health_state") == "healthy" and entry.get("health_run") == entry.get("run")


def waiting_for(name: str, entry: Mapping, entries: Mapping[str, Mapping],
                running: Callable[[str], bool]) -> list[str]:
    """The services ``name`` comes after that hold its start: wanted (not stopped by the user,
    or asked to start) and not up. A name no longer defined holds nothing, nor one that comes
    after ``name`` itself (a cycle a hand edit made)."""
    waiting = []
    for dep in after_of(entry):
        found = entries.get(dep)
        if found is None or (found.get("explicitly_stopped") and found.get("request") is None):
            continue
        if not is_up(found, running(dep)) and not reaches(
                lambda n: after_of(entries.get(n) or {}), dep, name):
            waiting.append(dep)
    return waiting
