"""CPU time of a process and its descendants, read from ``/proc`` (Linux).

``/proc/<pid>/stat`` (proc(5)) holds, after the command name in parentheses,
the process's own user and system time (fields 14 and 15) and those of its
children already waited for (16 and 17), in clock ticks. A process tree's CPU
time is the sum over the live processes of the tree, each with its reaped
children: a worker process that exits during the window has its time moved
into its parent's fields 16-17, so nothing is lost or counted twice.

Resolution is one clock tick (10 ms at the usual 100 Hz), which is why the
benchmark divides the CPU of a whole measured window by its request count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Field numbers of proc(5), counted from 1; the text after ")" starts at 3.
_PPID, _UTIME, _CSTIME = 4, 14, 17


@dataclass(frozen=True)
class CpuTimes:
    """User and system (kernel) CPU seconds."""

    user_s: float = 0.0
    system_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user_s + other.user_s, self.system_s + other.system_s)

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user_s - other.user_s, self.system_s - other.system_s)


@dataclass(frozen=True)
class CpuSample:
    """CPU times of each process of one tree at one moment."""

    by_pid: dict[int, CpuTimes]

    def since(self, earlier: CpuSample) -> CpuTimes:
        """CPU time spent between ``earlier`` and this sample.

        A process absent from ``earlier`` started in between and counts whole.
        """
        spent = CpuTimes()
        for pid, times in self.by_pid.items():
            spent += times - earlier.by_pid.get(pid, CpuTimes())
        return spent


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # the process has ended
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def _field(fields: list[str], number: int) -> int:
    return int(fields[number - 3])


def own_cpu(pid: int) -> CpuTimes:
    """CPU time of ``pid`` and its reaped children; zero once it ended."""
    fields = _stat_fields(pid)
    if fields is None:
        return CpuTimes()
    utime, stime, cutime, cstime = (
        _field(fields, n) for n in range(_UTIME, _CSTIME + 1)
    )
    return CpuTimes((utime + cutime) / _TICKS_PER_S, (stime + cstime) / _TICKS_PER_S)


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it (workers, their helpers)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(_field(fields, _PPID), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def sample_tree(root: int) -> CpuSample:
    """CPU time so far of ``root`` and each of its descendants."""
    return CpuSample({pid: own_cpu(pid) for pid in descendants(root)})
