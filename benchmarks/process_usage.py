"""CPU time and peak memory of running processes, sampled from /proc (Linux) by a thread.

The benchmarks time their runs from Kafka record timestamps after the fact, so CPU is
sampled every `interval_s` with the wall clock and read back at any instant in between
(`cpu_between`); peak RSS is the kernel's own high-water mark (VmHWM).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

__all__ = ["Poller", "UsageSampler", "children", "cpu_seconds", "peak_rss_mib"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int, marker: str) -> list[int]:
    """Child processes of `pid` whose command line contains `marker`."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, pids):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(child)
    return found


class Poller:
    """Calls `sample()` every `interval_s` on a thread of its own, inside a `with` block."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)

    def sample(self) -> None:
        raise NotImplementedError


class UsageSampler(Poller):
    """Samples the summed CPU seconds of each role's processes (`roles()` gives the pids
    of each role, asked at every sample, so restarted children are followed)."""

    def __init__(self, roles: Callable[[], dict[str, list[int]]], interval_s: float = 0.05):
        super().__init__(interval_s)
        self._roles = roles
        self._times: list[float] = []
        self._samples: list[dict[str, float]] = []
        self._peak_mib: dict[str, float] = {}

    def sample(self) -> None:
        now = time.time()
        roles = self._roles()
        self._samples.append(
            {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}
        )
        self._times.append(now)
        for role, pids in roles.items():
            peak = max((peak_rss_mib(pid) for pid in pids), default=0.0)
            self._peak_mib[role] = max(self._peak_mib.get(role, 0.0), peak)

    def _cpu_at(self, at: float, role: str) -> float:
        """The role's CPU seconds at wall-clock time `at` (linear between samples)."""
        i = bisect.bisect_left(self._times, at)
        if i == 0:
            return self._samples[0].get(role, 0.0)
        if i == len(self._times):
            return self._samples[-1].get(role, 0.0)
        t0, t1 = self._times[i - 1], self._times[i]
        c0, c1 = self._samples[i - 1].get(role, 0.0), self._samples[i].get(role, 0.0)
        return c0 + (c1 - c0) * (at - t0) / (t1 - t0)

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each role used between two wall-clock times."""
        roles = set().union(*self._samples) if self._samples else set()
        return {role: self._cpu_at(end, role) - self._cpu_at(start, role) for role in roles}

    @property
    def peak_mib(self) -> dict[str, float]:
        """The largest peak RSS of one process of each role."""
        return dict(self._peak_mib)
