"""Proportional set size (PSS) of running model tasks' process trees, sampled from /proc while a DAG runs.

PSS divides each shared page among the processes that map it, so a tree's PSS is what it costs the host: a
forked child is charged only for the pages it no longer shares with its parent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Series


def pss_kib(pid: int) -> int:
    """PSS of one process in KiB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces: split after the last one.
        found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(roots: Iterable[int], parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return seen


@dataclass
class TaskMemory:
    """Per running task: its process tree's PSS (MiB), and the warm dbt workers' own PSS."""

    per_task: Series = field(default_factory=Series)
    warm_worker: Series = field(default_factory=Series)


class TaskTreeSampler(threading.Thread):
    """Samples the task process trees under the scheduler's LocalExecutor workers.

    The scheduler's children are the executor's long-lived workers (each supervises one task at a time); their
    children are task processes, with the dbt process or the forked warm child below. A warm worker is no task's
    descendant (it outlives them), so its forked children are added to the tasks, the worker itself reported apart.
    """

    def __init__(self, scheduler_pid: int, warm_workers: Callable[[], list[int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.scheduler_pid = scheduler_pid
        self.warm_workers = warm_workers
        self.interval = interval
        self.memory = TaskMemory()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        parents = _parents()
        supervisors = [pid for pid, ppid in parents.items() if ppid == self.scheduler_pid]
        tasks = [pid for pid, ppid in parents.items() if ppid in supervisors]
        if not tasks:
            return
        warm = [pid for pid in self.warm_workers() if pid in parents]
        tree = descendants(tasks, parents) | (descendants(warm, parents) - set(warm))
        self.memory.per_task.add(sum(pss_kib(pid) for pid in tree) / 1024 / len(tasks))
        for pid in warm:
            self.memory.warm_worker.add(pss_kib(pid) / 1024)

    def stop(self) -> TaskMemory:
        self._halt.set()
        self.join(timeout=10)
        return self.memory
