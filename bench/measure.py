"""Timing helpers: wall and CPU time of a step, and median with spread over repeated samples."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Sample:
    """One measurement: wall-clock seconds and CPU seconds (this process and its waited-for children)."""

    wall: float = 0.0
    cpu: float = 0.0


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def timed() -> Iterator[Sample]:
    """``with timed() as s: ...`` fills ``s.wall`` and ``s.cpu`` when the block ends."""
    sample = Sample()
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    try:
        yield sample
    finally:
        sample.wall = time.perf_counter() - wall0
        sample.cpu = _cpu_seconds() - cpu0


def time_call(fn: Callable[[], T]) -> tuple[Sample, T]:
    with timed() as sample:
        result = fn()
    return sample, result


@dataclass
class Series:
    """Repeated samples of one quantity, summarised as median with min-max spread."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")

    def fmt(self, unit: str = "s", digits: int = 2) -> str:
        """``1.23 s (1.10-1.40, n=5)``: median, then min-max and the number of samples."""
        if not self.values:
            return "n/a"
        return f"{self.median:.{digits}f} {unit} ({self.low:.{digits}f}-{self.high:.{digits}f}, n={len(self.values)})"


def series(values: Sequence[float]) -> Series:
    return Series(list(values))


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    """What the figures depend on: cores, CPU, Python and the versions of Airflow, dbt and DuckDB."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "CPU cores (os.cpu_count)": str(os.cpu_count()),
        "CPU": cpu,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        "apache-airflow": _version("apache-airflow"),
        "dbt-core": _version("dbt-core"),
        "dbt-duckdb": _version("dbt-duckdb"),
        "duckdb": _version("duckdb"),
        "airflow-provider-idbt": _version("airflow-provider-idbt"),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (also readable as plain text on a terminal)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
