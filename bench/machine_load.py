"""Timings mean something only on an otherwise idle machine: other work on the cores stretches every job
(a grid once took 39 minutes instead of 26 that way). A benchmark takes a snapshot before it runs and
prints, after its figures, how much CPU time processes other than its own used meanwhile."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass


@dataclass
class Snapshot:
    wall: float
    machine_busy: float   # core-seconds the whole machine has been busy since boot
    own: float            # CPU seconds of this process and its waited-for descendants


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not work.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def snapshot() -> Snapshot:
    return Snapshot(time.perf_counter(), _machine_busy_seconds(), _own_seconds())


def other_load_since(start: Snapshot) -> str:
    """A line: the core-seconds other processes used since ``start``, as cores on average."""
    now = snapshot()
    other = max(0.0, (now.machine_busy - start.machine_busy) - (now.own - start.own))
    cores = other / max(now.wall - start.wall, 1e-9)
    verdict = "idle enough" if cores < 0.1 else "NOT idle: the timings above are too long"
    return f"other processes used {other:.0f} core-s during the run ({cores:.2f} cores on average; {verdict})"
