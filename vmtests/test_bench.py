"""Smoke run of every benchmark case with tiny parameters.

Benchmarks are not tests -- nothing here looks at time.  This only proves
that every case of the matrix still runs on the kernel under test and
reports the fields the report is built from, so the benchmark code cannot
rot between full benchmark runs.
"""

from __future__ import annotations

import json
import shlex

import pytest

from harness import bench
from harness import helper as helper_mod
from harness.guest import Guest

SMOKE = bench.cases(scale=0.002)


@pytest.fixture(scope="module")
def ptbench(guest: Guest) -> tuple[str, dict[str, bool]]:
    binary = shlex.quote(str(helper_mod.build("ptbench")))
    probe = guest.run(f"{binary} --probe", timeout=60, check=True)
    feats: dict[str, bool] = json.loads(probe.stdout.strip().splitlines()[-1])
    return binary, feats


@pytest.mark.bench
@pytest.mark.parametrize("case", SMOKE, ids=[c.name for c in SMOKE])
def test_bench_case_runs(
    guest: Guest, ptbench: tuple[str, dict[str, bool]], case: bench.Case
) -> None:
    binary, feats = ptbench
    if (why := bench.lacks(case, feats)) is not None:
        pytest.skip(why)
    params = bench._resolve_exact(case.params, feats)
    argv = bench.Case(case.name, case.case, params, case.metric).argv()
    res = guest.run(f"{binary} {argv} timeout=300", timeout=400)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert "error" not in data, data
    assert res.status == 0
    assert data["case"] == case.case
    value = data[case.metric]
    assert isinstance(value, (int, float)), data
    if case.case == "memory":
        # Sizes do not shrink with the scale: at least one timer and its
        # sigqueue per timer, or the figure is noise (or a bug in ptbench)
        assert value >= bench.FLOOR_SHARE * data["timer_object_bytes"] > 0, data
    else:
        assert value >= 0, data
    for extra in case.extra:
        assert isinstance(data[extra], int) and data[extra] > 0, data
    # Every measured loop is bracketed for the instruction counter
    assert all(w["ops"] > 0 for w in data["windows"]), data
    if case.window:
        # The window the harness reads the case's instruction count from
        assert case.window in {w["name"] for w in data["windows"]}, data
