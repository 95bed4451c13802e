"""CPU time and peak memory of a process and the processes it started (the service's
SR reader, service/entrypoints/read_process.py), from ``/proc/<pid>/stat``, ``status``
and ``task/<tid>/children`` (proc(5)): the server's own cost, not the load generator's."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid* so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set size) of *pid*, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


def processes(pid: int) -> list[int]:
    """*pid* and every process it started, still running, and theirs."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue  # the thread ended meanwhile
    return found


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of *pid* and of the processes it started."""
    return sum(_or_zero(cpu_seconds, process) for process in processes(pid))


def tree_peak_rss_mb(pid: int) -> float:
    """The sum of the :func:`peak_rss_mb` of *pid* and of the processes it started (each
    process's own peak: their sum bounds the peak of the whole from above)."""
    return sum(_or_zero(peak_rss_mb, process) for process in processes(pid))


def _or_zero(figure: Callable[[int], float], pid: int) -> float:
    """*figure* of *pid*, 0 for a process that ended meanwhile (its CPU counts in its
    parent's children times once reaped)."""
    try:
        return figure(pid)
    except (OSError, ValueError):
        return 0.0
