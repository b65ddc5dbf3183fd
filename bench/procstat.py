"""CPU time and peak memory of a process and its children, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def tree(pid: int) -> list[int]:
    """pid and its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_by_process(pid: int) -> dict[int, float]:
    """User + system CPU of pid and of each live descendant (with the children each has waited
    for), seconds."""
    out = {}
    for p in tree(pid):
        fields = _stat(p)
        if fields is not None:  # utime, stime, cutime, cstime are fields 14-17
            out[p] = sum(int(x) for x in fields[11:15]) / TICKS
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and its live descendants (and the children they have waited for)."""
    return sum(cpu_by_process(pid).values())


def peak_rss_mb(pid: int) -> dict[int, float]:
    """Each live process of the tree: its peak resident memory so far (VmHWM), MB."""
    peaks = {}
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[p] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb(pids: list[int]) -> float:
    """The resident set size summed over pids, MB: cheap to read, and never below their summed
    proportional set size (a shared page counts whole in each process here)."""
    total = 0.0
    for p in pids:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_MB
        except OSError:
            continue
    return total


def pss_mb(pid: int, pids: list[int] | None = None) -> float:
    """The memory a process tree holds now: the proportional set size summed over pid and its
    live descendants (a page shared by n processes, as a forked child's untouched pages are,
    counts 1/n in each), MB. `pids`: the tree if already read. The kernel walks every page to
    answer: about 20 ms a GB."""
    total = 0.0
    for p in tree(pid) if pids is None else pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
        except OSError:
            continue
    return total
