"""Parse (K)TAP output of kselftests into per-test results.

kselftest programs print TAP 13 (``ok 3 name``, ``not ok 4 name``,
``ok 5 name # SKIP reason``); kselftest_harness.h nests nothing for a
single binary.  The parser is lenient about diagnostics but strict about
result lines, so a changed test count shows up as a difference in the
parsed set, not as a silent pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RESULT = re.compile(
    r"^\s*(ok|not ok) (\d+)\s*(?:- )?([^#]*?)\s*(?:#\s*(SKIP|TODO|XFAIL)\b(.*))?$", re.I
)
_PLAN = re.compile(r"^\s*1\.\.(\d+)")


@dataclass(frozen=True)
class TapResult:
    number: int
    name: str
    status: str  # pass | fail | skip | xfail
    reason: str = ""


@dataclass
class TapRun:
    plan: int | None
    results: list[TapResult]

    def by_status(self, status: str) -> set[str]:
        return {r.name for r in self.results if r.status == status}


def parse(text: str) -> TapRun:
    """All result lines of a TAP stream, in order."""
    plan = None
    results = []
    for line in text.splitlines():
        if plan is None and (m := _PLAN.match(line)):
            plan = int(m.group(1))
            continue
        m = _RESULT.match(line)
        if m is None:
            continue
        ok, num, name, directive, reason = m.groups()
        directive = (directive or "").upper()
        if directive == "SKIP":
            status = "skip"
        elif directive in {"TODO", "XFAIL"}:
            status = "xfail"
        else:
            status = "pass" if ok.lower() == "ok" else "fail"
        results.append(
            TapResult(int(num), name.strip() or f"#{num}", status, (reason or "").strip())
        )
    return TapRun(plan, results)
