"""kmemleak's report, parsed, filtered by backtrace and tied to the test that leaked.

6.12's kmemleak prints nothing per leak to the kernel log by default (only
with ``kmemleak.verbose``) and its one summary line, "N new suspected
memory leaks", only when a scan found some -- and scans run only when
asked (``echo scan``; this harness's kernels have no automatic scan
thread).  A scan takes about 25 s in a TCG debug guest, so one per test is
out of reach; instead the suite ends with one (``vmtests/test_zz_kmemleak``)
and every reported object is tied to the test during which it was
allocated: kmemleak records the allocation's ``jiffies``, and the plugin
reads the guest's jiffies after every test (:class:`harness.kmsg.KmsgCursor`).

Benign leaks of the base kernel are allowed by a pattern on the leaked
object's backtrace (``vmtests/kmemleak-allowlist.txt``), never by the
summary line, which says nothing about which objects leaked.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from .paths import REPO
from .splat import load_patterns

ALLOWLIST = REPO / "vmtests" / "kmemleak-allowlist.txt"

_HEAD = re.compile(r"^unreferenced object 0x([0-9a-f]+) \(size (\d+)\):$")
_COMM = re.compile(r'^  comm "(.*)", pid (\d+), jiffies (\d+)$')
_HEX = re.compile(r"^  hex dump \(first \d+ bytes(?: on cpu \d+)?\):$")
_TRACE = re.compile(r"^  backtrace \(crc [0-9a-f]+\):$")
_FRAME = re.compile(r"^    (\S.*)$")


@dataclass(frozen=True)
class Leak:
    """One object kmemleak reports as unreferenced."""

    address: int
    size: int
    comm: str
    pid: int
    jiffies: int
    backtrace: tuple[str, ...]
    text: str  # the report block as kmemleak printed it

    def trace(self) -> str:
        """The backtrace, one frame per line, as allowlist patterns see it."""
        return "\n".join(self.backtrace)


def parse(report: str) -> list[Leak]:
    """The objects of a ``/sys/kernel/debug/kmemleak`` report; ValueError on anything else.

    Strict on purpose: a report format this parser does not know must fail
    the check, not read as "no leaks".
    """
    leaks: list[Leak] = []
    lines = report.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = _HEAD.match(lines[i])
        comm = _COMM.match(lines[i + 1]) if head and i + 1 < len(lines) else None
        if head is None or comm is None:
            raise ValueError(f"kmemleak report line {i + 1} is not an object header: {lines[i]!r}")
        start = i
        i += 2
        if i < len(lines) and _HEX.match(lines[i]):
            i += 1
            while i < len(lines) and _FRAME.match(lines[i]):
                i += 1
        frames: list[str] = []
        if i < len(lines) and _TRACE.match(lines[i]):
            i += 1
            while i < len(lines) and (m := _FRAME.match(lines[i])):
                frames.append(m.group(1).strip())
                i += 1
        if i < len(lines) and lines[i].strip() and not _HEAD.match(lines[i]):
            raise ValueError(f"kmemleak report line {i + 1} is unexpected: {lines[i]!r}")
        leaks.append(
            Leak(
                int(head.group(1), 16),
                int(head.group(2)),
                comm.group(1),
                int(comm.group(2)),
                int(comm.group(3)),
                tuple(frames),
                "\n".join(lines[start:i]),
            )
        )
    return leaks


def allowed(leak: Leak, patterns: list[re.Pattern[str]]) -> bool:
    """Whether an allowlist pattern matches the leak's backtrace."""
    return any(p.search(leak.trace()) for p in patterns)


def load_allowlist() -> list[re.Pattern[str]]:
    return load_patterns(ALLOWLIST)


def attribute(jiffies: int, timeline: list[tuple[str, int]]) -> str:
    """Which test was running at ``jiffies``, from ``(label, jiffies at its end)`` pairs.

    The first entry is the boot (up to the plugin's first read); each
    test's window runs from the previous entry to its own, so it includes
    the previous test's fixture teardown.
    """
    if not timeline:
        return "an unknown test (no test boundaries were recorded)"
    if jiffies <= timeline[0][1]:
        return f"{timeline[0][0]} (before the first test)"
    for (prev, _), (label, end) in itertools.pairwise(timeline):
        if jiffies <= end:
            return f"{label} (or the teardown of {prev})"
    return f"the test after {timeline[-1][0]} (the last one recorded)"


def describe(leak: Leak, timeline: list[tuple[str, int]]) -> str:
    """One leak for a failure message: where it came from, then kmemleak's block."""
    return (
        f"{leak.size} bytes at {leak.address:#x} allocated by {leak.comm} (pid {leak.pid}) "
        f"during {attribute(leak.jiffies, timeline)}:\n{leak.text}"
    )
