"""Find kernel splats (WARN, BUG, Oops, lockdep, KASAN, stalls) in dmesg.

A test whose helper exited 0 still fails if the kernel complained while it
ran: the ABI can look right while the implementation corrupts a list or
sleeps in atomic context.  Patterns live in editable deny/allow files next
to the tests so a new checker's format is one line, not a code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO

DENYLIST = REPO / "vmtests" / "splat-denylist.txt"
ALLOWLIST = REPO / "vmtests" / "splat-allowlist.txt"


def load_patterns(path: Path) -> list[re.Pattern[str]]:
    """Compile one regex per non-comment line.

    The line is the regex verbatim: whitespace is significant (the denylist's
    ``\\bBUG: `` ends with a space), only blank and ``#`` lines are skipped.
    """
    out = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(re.compile(line))
    return out


@dataclass
class Splat:
    """One offending line and the report block around it."""

    line: str
    pattern: str
    context: list[str]

    def __str__(self) -> str:
        return f"{self.line}  [matched {self.pattern!r}]"


@dataclass
class Detector:
    """Deny/allow pattern sets applied to kernel log lines."""

    deny: list[re.Pattern[str]]
    allow: list[re.Pattern[str]]

    @classmethod
    def default(cls) -> Detector:
        return cls(load_patterns(DENYLIST), load_patterns(ALLOWLIST))

    def scan(self, lines: list[str], context: int = 30) -> list[Splat]:
        """Every denied, not allowed line, with up to ``context`` lines after it."""
        found = []
        for i, line in enumerate(lines):
            if any(p.search(line) for p in self.allow):
                continue
            for pat in self.deny:
                if pat.search(line):
                    found.append(Splat(line.strip(), pat.pattern, lines[i : i + context]))
                    break
        return found


def report(splats: list[Splat]) -> str:
    """Format splats for a test failure: first report in full, then one line each."""
    if not splats:
        return ""
    first = "\n".join(splats[0].context)
    others = "\n".join(str(s) for s in splats[1:])
    return f"kernel splat: {splats[0]}\n{first}" + (f"\nfurther:\n{others}" if others else "")
