"""Parse ``/proc/<pid>/timers``: CRIU's view of a process's timers.

Each timer is exactly four lines (fs/proc/base.c, show_timer())::

    ID: 3
    signal: 14/0000000000000000
    notify: thread/tid.412
    ClockID: 1

The parser is strict -- any deviation from this shape is an error -- because
CRIU's dump parses the same format with sscanf and a changed line breaks
checkpointing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS = (
    re.compile(r"^ID: (-?\d+)$"),
    re.compile(r"^signal: (\d+)/([0-9a-f]{16}|[0-9a-f]{8})$"),
    re.compile(r"^notify: (signal|none|thread)/(pid|tid)\.(\d+)$"),
    re.compile(r"^ClockID: (-?\d+)$"),
)


class ProcTimersFormatError(ValueError):
    """The file did not have the 4-line-per-timer shape."""


@dataclass(frozen=True)
class ProcTimer:
    """One record of /proc/<pid>/timers."""

    id: int
    signo: int
    sival_ptr: int
    notify: str  # signal | none | thread
    target: str  # pid | tid
    target_id: int
    clock: int


def parse(text: str) -> list[ProcTimer]:
    """All records in file order (6.12 lists newest first)."""
    lines = text.splitlines()
    if len(lines) % 4:
        raise ProcTimersFormatError(f"{len(lines)} lines is not a multiple of 4:\n{text}")
    out = []
    for i in range(0, len(lines), 4):
        groups: list[str] = []
        for k, (pat, line) in enumerate(zip(_PATTERNS, lines[i : i + 4], strict=True)):
            m = pat.match(line)
            if m is None:
                raise ProcTimersFormatError(
                    f"line {i + k + 1}: {line!r} does not match {pat.pattern}"
                )
            groups.extend(m.groups())
        out.append(
            ProcTimer(
                id=int(groups[0]),
                signo=int(groups[1]),
                sival_ptr=int(groups[2], 16),
                notify=groups[3],
                target=groups[4],
                target_id=int(groups[5]),
                clock=int(groups[6]),
            )
        )
    return out
