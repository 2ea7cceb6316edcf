"""The kernel's own timer selftests, built from the tree under test.

``--selftests DIR`` names the built binaries (``./ptimers test`` builds
them from each kernel's tree).  Per-subtest results go to
``kselftests.json`` in the results directory; ``./ptimers test`` checks that
nothing passing on the unpatched kernel fails on the patched one.

Each run is judged as a whole (:func:`harness.kselftest.judge`): exit
status, plan, ``Bail out!`` and every result.  On 6.12 three signal checks
of posix_timers fail even unpatched (the behaviour changed in 6.13); they
are listed, with the reason, in ``harness.kselftest`` and must fail there,
so a series that changed that behaviour would show up too.  Under TCG the
checks that compare a timer with wall-clock time within 0.5 s are
recorded but do not fail the run (a loaded host makes them miss).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from harness.guest import Guest
from harness.kselftest import judge, known_failures, tolerated
from harness.ktap import parse


@pytest.fixture(scope="module")
def selftests(request: pytest.FixtureRequest) -> Path:
    value = request.config.getoption("--selftests")
    if not value:
        pytest.skip("no --selftests DIR given")
    return Path(value)


@pytest.mark.parametrize("program", ["posix_timers", "timer_create_id"])
def test_kselftest(
    guest: Guest,
    selftests: Path,
    program: str,
    request: pytest.FixtureRequest,
    features: dict[str, bool],
    accel: str,
) -> None:
    binary = selftests / program
    if not binary.exists():
        pytest.skip(f"{program} is not part of this tree")
    release = guest.run("uname -r", check=True).stdout.strip()
    res = guest.run(f"cd /tmp && {shlex.quote(str(binary))}", timeout=900)
    run = parse(res.stdout)
    statuses = {r.name: r.status for r in run.results}
    # Recorded before judging: the unpatched/patched comparison of
    # ./ptimers test needs the subtests of a failed run too.
    out = Path(request.config.getoption("--results-dir")) / "kselftests.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[program] = statuses
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    verdict = judge(run, res.status, known_failures(program, release), tolerated(program, accel))
    assert verdict.failures == [], (
        f"{program} on {release} (exit {res.status}): {'; '.join(verdict.failures)}\n"
        f"{res.stdout[-3000:]}{res.stderr[-1000:]}"
    )
    if verdict.tolerated:
        # Visible in -rA output and the JUnit file, not a failure.
        print(f"{program}: timing checks failed under {accel}: {verdict.tolerated}")
    if program == "timer_create_id":
        # The series' own selftest: a subtest of an interface the kernel
        # has must pass; one that skips (its own probe went wrong) hides
        # a failure.  prctl_* subtests need the prctl, the others the flag
        # (proc_timers_without_flag also /proc/<pid>/timers).
        def needed(name: str) -> bool:
            if "prctl" in name:
                return features["prctl_restore_ids"]
            if "proc_timers" in name:
                return features["sigev_timer_id"] and features["proc_timers"]
            return features["sigev_timer_id"]

        not_passed = {n: st for n, st in statuses.items() if needed(n) and st != "pass"}
        assert not not_passed, f"{program}: {not_passed}"
        if features["sigev_timer_id"]:
            assert len(statuses) >= 14, f"{program}: only {sorted(statuses)}"
    if verdict.skip is not None:
        pytest.skip(f"{program} skipped itself: {verdict.skip}")
