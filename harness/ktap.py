"""Parse (K)TAP output of kselftests into structured results.

kselftest programs print TAP 13: a plan (``1..N``, or ``1..0 # SKIP why``
for a program that skips as a whole), one line per result (``ok 3 name``,
``not ok 4 name``, ``ok 5 name # SKIP reason``, ``not ok 6 name #  why``),
``Bail out! why`` when the program gives up (``ksft_exit_fail_msg``), and
``#`` diagnostics.  A result line may follow output that lacked its
newline (posix_timers prints "Diff too high: N.." before a failing
``not ok``); it is still a result.  What a run means is decided from these values (see
:func:`harness.kselftest.judge`), so the parser keeps everything a verdict
needs -- the plan, every result with its directive, the bail-out -- and
decides nothing itself.  Only top-level lines count: KTAP indents nested
subtests, whose outcome their parent's result line already carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RESULT = re.compile(r"^(ok|not ok)\s+(\d+)(?:\s+(.*))?$", re.I)
_PLAN = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_BAIL = re.compile(r"^Bail out!\s*(.*)$")
# A result printed right after a printf() that ended without a newline
# (posix_timers' check_diff(): "Diff too high: 3357354..not ok 1 ...").
_GLUED = re.compile(r"^([^#]*?\S)(not ok|ok)\s+(\d+)(?:\s+(.*))?$", re.I)
# TAP directives after '#'; anything else there is a free-text diagnostic
# (kselftest prints "not ok 2 name #  why" for a failure with a reason).
_DIRECTIVE = re.compile(r"^(SKIP|TODO|XFAIL|XPASS)\b\s*(.*)$", re.I)
_STATUS = {"SKIP": "skip", "TODO": "xfail", "XFAIL": "xfail", "XPASS": "xpass"}


@dataclass(frozen=True)
class TapResult:
    number: int
    name: str
    status: str  # pass | fail | skip | xfail | xpass
    reason: str = ""


@dataclass
class TapRun:
    """Everything of a TAP stream that a verdict depends on."""

    plan: int | None
    results: list[TapResult]
    #: the reason of a skipped plan (``1..0 # SKIP no permission``), if any
    plan_skip: str | None = None
    #: the message of the first ``Bail out!`` line, if any
    bail_out: str | None = None
    #: plan lines after the first (a TAP stream has one)
    extra_plans: list[int] = field(default_factory=list)
    #: output glued before a result line by a printf() without newline
    glued: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> set[str]:
        return {r.name for r in self.results if r.status == status}


def _result(ok: str, number: str, rest: str) -> TapResult:
    """One result line's values: the name before '#', the directive after it."""
    desc, hashed, after = rest.partition("#")
    name = desc.strip()
    if name.startswith("- "):
        name = name[2:].strip()
    status = "pass" if ok.lower() == "ok" else "fail"
    reason = ""
    if hashed:
        after = after.strip()
        if m := _DIRECTIVE.match(after):
            status = _STATUS[m.group(1).upper()]
            reason = m.group(2).strip()
        else:
            reason = after
    return TapResult(int(number), name or f"#{number}", status, reason)


def parse(text: str) -> TapRun:
    """The plan, all top-level results in order, and the bail-out of a TAP stream."""
    run = TapRun(plan=None, results=[])
    for line in text.splitlines():
        line = line.rstrip()
        if m := _PLAN.match(line):
            if run.plan is None:
                run.plan = int(m.group(1))
                d = _DIRECTIVE.match(m.group(2) or "")
                if d is not None and d.group(1).upper() == "SKIP":
                    run.plan_skip = d.group(2).strip()
            else:
                run.extra_plans.append(int(m.group(1)))
        elif m := _BAIL.match(line):
            if run.bail_out is None:
                run.bail_out = m.group(1).strip()
        elif m := _RESULT.match(line):
            run.results.append(_result(m.group(1), m.group(2), m.group(3) or ""))
        elif (m := _GLUED.match(line)) and int(m.group(3)) == len(run.results) + 1:
            # Only as the next result in sequence: free text that merely
            # contains "ok 3" somewhere is not taken for one.
            run.glued.append(m.group(1))
            run.results.append(_result(m.group(2), m.group(3), m.group(4) or ""))
    return run
