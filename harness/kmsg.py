"""The guest's kernel log, read from ``/dev/kmsg`` by sequence number.

Every printk record carries a sequence number that only grows.  Counting
``dmesg`` lines instead breaks once the ring buffer (128 KiB here) is full:
each new line pushes an old one out, the count stops growing and a splat
printed after that is never looked at.  So the cursor remembers the last
sequence number it saw and takes only records after it; a record that was
overwritten before it could be read leaves a hole in the numbers, and the
hole is reported (a splat may have been in it), not skipped over.

``/dev/kmsg`` gives one record per ``read()``: ``prio,seq,usec,flags;text``
with non-printable bytes escaped as ``\\xNN``, followed by `` KEY=value``
lines for device records.  Read non-blocking it ends with ``EAGAIN``; a
read whose next record was overwritten meanwhile fails once with ``EPIPE``.
The guest's ``dd`` (coreutils, from the host's root) does exactly one read
per block, so its output is the records and its error message says how the
read ended.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from typing import Protocol

from .errors import GuestError

#: The guest command: jiffies first (on stderr, so stdout is records only),
#: then every record from the oldest still in the ring.  /proc/timer_list is
#: a few KiB with two CPUs; the command costs one SSH exec like ``dmesg``.
_JIFFIES = "grep -m1 '^jiffies:' /proc/timer_list >&2; "
_READ = "LC_ALL=C dd if=/dev/kmsg iflag=nonblock bs=16384 status=none"
_DD_ERROR = re.compile(r"^dd: error reading '[^']*': (.+)$", re.M)
_JIFFIES_LINE = re.compile(r"^jiffies: (\d+)$", re.M)
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
#: Overwritten while being read this many times in a row: give up.
ATTEMPTS = 3


class KmsgError(GuestError):
    """The kernel log could not be read (to its end)."""


class _Result(Protocol):
    status: int
    stdout: str
    stderr: str


class _Guest(Protocol):
    def run(self, command: str, *, timeout: float = ...) -> _Result: ...


@dataclass(frozen=True)
class Record:
    """One printk record."""

    seq: int
    level: int
    facility: int
    usec: int
    cont: bool  # the 'c' flag: a fragment continued by the next record
    text: str
    props: tuple[tuple[str, str], ...] = ()

    def lines(self) -> list[str]:
        """The record as ``dmesg`` prints it: a timestamp before every line."""
        stamp = f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}] "
        return [stamp + line for line in self.text.split("\n")]


def unescape(text: str) -> str:
    """Undo /dev/kmsg's ``\\xNN`` escapes (it escapes '\\' itself as ``\\x5c``)."""
    parts = _ESCAPE.split(text)
    out = bytearray()
    for i, part in enumerate(parts):
        out += bytes([int(part, 16)]) if i % 2 else part.encode()
    return out.decode(errors="replace")


def parse(data: str) -> list[Record]:
    """The records of a /dev/kmsg dump, in order; ValueError on a line that is neither."""
    records: list[Record] = []
    for n, line in enumerate(data.split("\n"), 1):
        if not line:
            continue
        if line.startswith(" "):
            if not records:
                raise ValueError(f"/dev/kmsg line {n}: continuation without a record: {line!r}")
            key, eq, value = line[1:].partition("=")
            if not eq:
                raise ValueError(f"/dev/kmsg line {n}: continuation without KEY=: {line!r}")
            last = records[-1]
            records[-1] = Record(
                last.seq,
                last.level,
                last.facility,
                last.usec,
                last.cont,
                last.text,
                (*last.props, (unescape(key), unescape(value))),
            )
            continue
        header, semi, text = line.partition(";")
        fields = header.split(",")
        if not semi or len(fields) < 4 or not all(f.isdigit() for f in fields[:3]):
            raise ValueError(f"/dev/kmsg line {n}: not a record: {line!r}")
        prio, seq, usec = (int(f) for f in fields[:3])
        records.append(
            Record(seq, prio & 7, prio >> 3, usec, fields[3].startswith("c"), unescape(text))
        )
    return records


def select_new(
    records: list[Record], after: int | None
) -> tuple[list[Record], list[tuple[int, int]]]:
    """Records with ``seq > after``, and the ranges of sequence numbers missing among them.

    ``after`` None means nothing was read yet: records are expected from
    seq 0 (the first printk of the boot).  A range ``(first, last)`` lists
    records that were overwritten before anyone read them.  Records at or
    below ``after``, or repeated by a second read, are dropped.
    """
    expected = 0 if after is None else after + 1
    fresh: list[Record] = []
    gaps: list[tuple[int, int]] = []
    for rec in records:
        if rec.seq < expected:
            continue
        if rec.seq > expected:
            gaps.append((expected, rec.seq - 1))
        fresh.append(rec)
        expected = rec.seq + 1
    return fresh, gaps


@dataclass
class Batch:
    """What one read found after the cursor."""

    records: list[Record]
    #: ranges of sequence numbers overwritten before they were read
    lost: list[tuple[int, int]] = field(default_factory=list)
    #: the guest's jiffies when the read began (None unless asked for)
    jiffies: int | None = None

    @property
    def lost_count(self) -> int:
        return sum(last - first + 1 for first, last in self.lost)

    def lines(self) -> list[str]:
        return [line for rec in self.records for line in rec.lines()]

    def lost_report(self) -> str:
        """Why a hole in the log fails the test ('' if there is none)."""
        if not self.lost:
            return ""
        ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.lost)
        return (
            f"{self.lost_count} kernel log record(s) were overwritten before they could be "
            f"read (seq {ranges}): a splat could be among them"
        )


def _ended_by(stderr: str) -> int | None:
    """The errno that ended dd's read (EAGAIN at the end, EPIPE on overwrite)."""
    m = _DD_ERROR.search(stderr)
    if m is None:
        return None
    names = {os.strerror(e): e for e in (errno.EAGAIN, errno.EPIPE)}
    return names.get(m.group(1).strip())


class KmsgCursor:
    """A cursor over the guest's kernel log: the records printed since the last read.

    Every read also takes the guest's jiffies, kmemleak's clock: ``history``
    pairs each read's label with them, which is how a leaked object's
    allocation time maps back to a test (:func:`harness.kmemleak.attribute`).
    """

    def __init__(self, guest: _Guest, timeout: float = 60.0) -> None:
        self.guest = guest
        self.timeout = timeout
        #: sequence number of the last record returned (None: nothing read yet)
        self.last: int | None = None
        #: (label, guest jiffies at that read); consecutive reads with the
        #: same label keep the latest
        self.history: list[tuple[str, int]] = []

    def read(self, label: str = "boot") -> Batch:
        """Every record after the cursor, to the end of the log; advance the cursor."""
        batch = Batch([])
        for _ in range(ATTEMPTS):
            res = self.guest.run(_JIFFIES + _READ, timeout=self.timeout)
            if batch.jiffies is None and (m := _JIFFIES_LINE.search(res.stderr)):
                # /proc/timer_list prints it only with CONFIG_TICK_ONESHOT.
                batch.jiffies = int(m.group(1))
            try:
                records = parse(res.stdout)
            except ValueError as exc:
                raise KmsgError(f"unreadable /dev/kmsg output: {exc}") from exc
            fresh, gaps = select_new(records, self.last)
            batch.records += fresh
            batch.lost += gaps
            if fresh:
                self.last = fresh[-1].seq
            ended = _ended_by(res.stderr)
            if ended == errno.EAGAIN:
                self._remember(label, batch.jiffies)
                return batch
            if ended != errno.EPIPE:
                raise KmsgError(
                    f"reading /dev/kmsg did not end at the end of the log (dd exit {res.status})",
                    detail=res.stderr[-2000:],
                )
            # Overwritten while we read: the next open starts at the oldest
            # record left; select_new reports what went missing in between.
        raise KmsgError(
            f"/dev/kmsg was overwritten while being read {ATTEMPTS} times in a row: "
            "the kernel logs faster than it can be read"
        )

    def _remember(self, label: str, jiffies: int | None) -> None:
        if jiffies is None:
            return
        if self.history and self.history[-1][0] == label:
            self.history[-1] = (label, jiffies)
        else:
            self.history.append((label, jiffies))

    def new(self, label: str = "boot") -> list[str]:
        """The lines logged since the last read; KmsgError if records were lost."""
        batch = self.read(label)
        if batch.lost:
            raise KmsgError(batch.lost_report(), detail="\n".join(batch.lines()[-60:]))
        return batch.lines()

    def mark(self, label: str = "boot") -> None:
        """Forget everything logged so far (records lost meanwhile included)."""
        self.read(label)
