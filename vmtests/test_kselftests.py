"""The kernel's own timer selftests, built from the tree under test.

``--selftests DIR`` names the built binaries (``./ptimers test`` builds
them from each kernel's tree).  Per-subtest results go to
``kselftests.json`` in the results directory; ``./ptimers test`` checks that
nothing passing on the unpatched kernel fails on the patched one.  On 6.12
some SIG_IGN checks of posix_timers fail even unpatched (the behaviour
changed in 6.13), so this test asserts only on the suites we own.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from harness.guest import Guest
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
) -> None:
    binary = selftests / program
    if not binary.exists():
        pytest.skip(f"{program} is not part of this tree")
    res = guest.run(f"cd /tmp && {shlex.quote(str(binary))}", timeout=900)
    run = parse(res.stdout)
    assert run.results, f"{program} printed no TAP results:\n{res.stdout[-2000:]}"
    statuses = {r.name: r.status for r in run.results}
    out = Path(request.config.getoption("--results-dir")) / "kselftests.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[program] = statuses
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    if program == "timer_create_id":
        failed = sorted(n for n, s in statuses.items() if s == "fail")
        assert failed == [], f"{program} failures: {failed}\n{res.stdout[-3000:]}"
        if features["sigev_timer_id"]:
            assert statuses.get("global.race_same_id") == "pass"
        if features["prctl_restore_ids"]:
            assert statuses.get("global.prctl_restore_ids") == "pass"
