"""Build the kernel tree's own timer selftests and judge their runs.

The kernel's ``tools/testing/selftests/timers`` is a suite we did not
write: running it from the same tree on the unpatched and the patched
kernel shows whether the series changes anything it checks.  Binaries go
to the cache (``OUTPUT=``) so the source tree stays clean and its content
identity -- the kernel's cache key -- does not change.

A run passes only when its exit status, its plan and its results agree
(:func:`judge`): a program that crashes after printing some ``ok`` lines,
bails out, or prints fewer results than it planned has not passed, however
good the lines it did print look.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError
from .kbuild import tree_identity
from .ktap import TapRun
from .paths import cache_dir

PROGRAMS = ("posix_timers", "timer_create_id")

#: kselftest.h's exit codes (KSFT_PASS, KSFT_FAIL, KSFT_SKIP).
KSFT_PASS, KSFT_FAIL, KSFT_SKIP = 0, 1, 4

#: Subtests the tree's own kernel fails, per program, with the reason.  The
#: tree's posix_timers.c carries checks of the signal behaviour of the 6.13
#: posix-timer signal rework; kernels before it fail them with or without
#: the series (seen on every 6.12 run: unpatched and at each series step).
#: They are expected to fail there -- and only there: passing means the
#: kernel's signal behaviour changed, which the series must not do.
KNOWN_FAILURES_BEFORE_6_13: dict[str, dict[str, str]] = {
    "posix_timers": {
        "check_sig_ign SIGEV_SIGNAL": (
            "before 6.13 a timer signal arriving while SIG_IGN is set is dropped, not kept "
            "for delivery once the handler is back"
        ),
        "check_rearm": ("before 6.13 rearming a timer does not discard its already queued signal"),
        "check_delete": ("before 6.13 deleting a timer does not discard its already queued signal"),
    },
}


def known_failures(program: str, release: str) -> dict[str, str]:
    """Subtests of ``program`` that fail on kernel ``release`` by design, with why.

    An unparsable release gets none: then every failure counts.
    """
    m = re.match(r"(\d+)\.(\d+)", release)
    if m is None or (int(m.group(1)), int(m.group(2))) >= (6, 13):
        return {}
    return dict(KNOWN_FAILURES_BEFORE_6_13.get(program, {}))


#: Subtests whose verdict depends on timing the guest cannot keep under
#: TCG emulation, with the reason.  Under TCG their failure is recorded
#: (kselftests.json, the test's output) but does not fail the run; under
#: KVM they count like every other subtest.
TCG_TIMING: dict[str, dict[str, str]] = {
    "posix_timers": {
        **{
            name: (
                "check_diff() compares a 2 s timer's expiry with wall-clock time within "
                "0.5 s; a vCPU descheduled by a loaded host misses that (seen failing "
                "with 'Diff too high' while other VMs ran)"
            )
            for name in (
                "ITIMER_VIRTUAL",
                "ITIMER_PROF",
                "ITIMER_REAL",
                "timer_create() per CLOCK_THREAD_CPUTIME_ID",
                "timer_create() per CLOCK_PROCESS_CPUTIME_ID",
            )
        },
        **{
            f"check_overrun {clock}": (
                "wants exactly 9 overruns of a 100 ms timer in 1 s of CPU time; CPU time "
                "timers expire at ticks, and a loaded host under TCG shifts the count "
                "(seen failing for the thread clock with four VMs on two cores)"
            )
            for clock in ("CLOCK_THREAD_CPUTIME_ID", "CLOCK_PROCESS_CPUTIME_ID")
        },
        "check signal distribution": (
            "needs the busy thread to be the one running whenever its process CPU timer "
            "fires; failed once on a loaded host under TCG after passing in the earlier "
            "runs on the same kernel"
        ),
    },
}


def tolerated(program: str, accel: str) -> dict[str, str]:
    """Subtests of ``program`` whose failure does not count under ``accel``, with why."""
    return dict(TCG_TIMING.get(program, {})) if accel == "tcg" else {}


@dataclass(frozen=True)
class Verdict:
    """What one run of a kselftest program amounts to."""

    #: why the run failed; empty when it did not
    failures: list[str]
    #: the reason the program gave for skipping as a whole (exit 4), or None
    skip: str | None = None
    #: known failures (see :func:`known_failures`) that failed as expected
    expected: list[str] = field(default_factory=list)
    #: tolerated subtests (see :func:`tolerated`) that failed this time
    tolerated: list[str] = field(default_factory=list)


def _skip_reason(run: TapRun) -> str:
    """The reason a program that exited KSFT_SKIP printed for it."""
    if run.plan_skip is not None:
        return run.plan_skip or "no reason printed"
    skips = [r for r in run.results if r.status == "skip"]
    if skips:
        return skips[-1].reason or "no reason printed"
    return "no reason printed"


def judge(
    run: TapRun,
    status: int,
    known: Mapping[str, str] | None = None,
    tolerated: Mapping[str, str] | None = None,
) -> Verdict:
    """Decide a kselftest run from its parsed output and exit status.

    It fails on a ``Bail out!``, a missing plan, a result count other than
    the plan, results not numbered 1..n, a ``not ok`` that is neither a
    SKIP nor in ``known`` or ``tolerated``, an XPASS, a known failure that
    passed, and an exit status that does not match the results (anything
    but 0 with no failing result, 1 with one, or 4).  ``tolerated``
    subtests may fail or pass (timing checks under emulation).  Exit 4
    (KSFT_SKIP) with nothing else wrong is a skip of the whole program,
    with the reason it printed; results printed before it still count.
    """
    known = dict(known or {})
    tolerated = dict(tolerated or {})
    problems: list[str] = []
    if run.bail_out is not None:
        problems.append(f"bailed out: {run.bail_out or '(no message)'}")
    numbers = [r.number for r in run.results]
    # A program exiting KSFT_SKIP after its plan stops early on purpose;
    # its last line is then the SKIP that ksft_exit_skip printed.
    skipped_early = status == KSFT_SKIP and bool(run.results) and run.results[-1].status == "skip"
    if run.plan is None:
        problems.append("no TAP plan line (1..N)")
    elif len(run.results) != run.plan and not (skipped_early and len(run.results) < run.plan):
        problems.append(f"planned {run.plan} results, printed {len(run.results)}")
    elif run.plan == 0 and status != KSFT_SKIP:
        problems.append("planned no tests (1..0) but did not exit 4 (KSFT_SKIP)")
    if run.extra_plans:
        problems.append(f"more than one plan line (also 1..{run.extra_plans[0]})")
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"results numbered {numbers}, not 1..{len(numbers)}")
    expected: list[str] = []
    excused: list[str] = []
    for r in run.results:
        line = f"{r.number} {r.name}" + (f" ({r.reason})" if r.reason else "")
        if r.status == "fail" and r.name in known:
            expected.append(r.name)
        elif r.status == "fail" and r.name in tolerated:
            excused.append(r.name)
        elif r.status == "fail":
            problems.append(f"not ok {line}")
        elif r.status == "xpass":
            problems.append(f"unexpectedly passed (XPASS): {line}")
        elif r.status == "pass" and r.name in known:
            problems.append(
                f"ok {line}: listed as a known failure ({known[r.name]}), so this kernel's "
                "behaviour differs from its base"
            )
    not_ok = sum(r.status in ("fail", "xpass") for r in run.results)
    skip = None
    if status == KSFT_PASS:
        if not_ok:
            problems.append(f"exit 0 although {not_ok} result(s) are not ok")
    elif status == KSFT_FAIL:
        if not not_ok and run.bail_out is None:
            problems.append("exit 1 (KSFT_FAIL) without a failing result or a bail-out")
    elif status == KSFT_SKIP:
        if not_ok:
            problems.append(f"exit 4 (KSFT_SKIP) although {not_ok} result(s) are not ok")
        skip = _skip_reason(run)
    elif status > 128:
        problems.append(f"killed by signal {status - 128} (exit {status})")
    else:
        problems.append(f"exit {status}")
    if problems:
        skip = None
    return Verdict(problems, skip, expected, excused)


def build(tree: Path) -> Path:
    """Build the timer selftests of ``tree``; return the output directory."""
    src = tree / "tools" / "testing" / "selftests" / "timers"
    out = cache_dir("selftests", tree_identity(tree)[:16])
    wanted = [p for p in PROGRAMS if (src / f"{p}.c").exists()]
    if all((out / p).exists() for p in wanted):
        return out
    proc = subprocess.run(
        ["make", "-s", "-C", str(src), f"OUTPUT={out}", *[str(out / p) for p in wanted]],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"building the timer selftests of {tree} failed",
            detail=(proc.stdout + proc.stderr)[-3000:],
        )
    return out
