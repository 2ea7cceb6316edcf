"""Host tests: benchmark summaries, reports and the cover letter from results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import bench, coverletter, report
from harness.errors import HarnessError


def fake_results() -> dict[str, Any]:
    matrix = bench.cases(scale=0.01)
    values = {"unpatched": 100.0, "patched": 50.0, "upstream": 80.0}
    rounds = []
    for rnd in range(3):
        for label, base in values.items():
            cases: dict[str, Any] = {}
            for c in matrix:
                if c.needs == "flag" and label != "patched":
                    cases[c.name] = {"skipped": "kernel lacks flag"}
                    continue
                cases[c.name] = {"case": c.case, c.metric: base + rnd}
            rounds.append({"kernel": label, "round": rnd, "cases": cases})
    results: dict[str, Any] = {
        "meta": {
            "accel": "tcg",
            "vcpus": 2,
            "memory": "2G",
            "rounds": 3,
            "scale": 0.01,
            "date": "2026-11-28T00:00:00+00:00",
            "config_request_sha256": "abc",
            "ptbench_sha256": "def",
            "seed": 1,
        },
        "kernels": {k: {"source": f"src-{k}", "release": "6.12.117+"} for k in values},
        "cases": [
            {
                "name": c.name,
                "case": c.case,
                "params": c.params,
                "metric": c.metric,
                "needs": c.needs,
            }
            for c in matrix
        ],
        "rounds": rounds,
    }
    results["summary"] = bench.summarize(results)
    return results


def test_summary_medians_and_ratios() -> None:
    r = fake_results()
    s = r["summary"]["c.lookup.100k"]
    assert s["kernels"]["patched"]["median"] == 51.0
    assert s["kernels"]["unpatched"]["min"] == 100.0
    assert s["kernels"]["unpatched"]["max"] == 102.0
    assert abs(s["ratios"]["patched/unpatched"] - 51 / 101) < 1e-9
    assert abs(s["ratios"]["patched/upstream"] - 51 / 81) < 1e-9
    # Skipped cases contribute no values.
    assert set(r["summary"]["a.exact_high.flag"]["kernels"]) == {"patched"}


def test_derived_restore_time() -> None:
    d = fake_results()["summary"]["derived"]["restore_id_2147483646"]
    legacy = d["patched"]["legacy_restore_seconds"]
    assert abs(legacy - 51 * (2**31 - 2) / 1e9) < 1e-6
    assert abs(d["patched"]["speedup_flag"] - legacy / (51 / 1e9)) < 1e-3


def test_reports_render(tmp_path: Path) -> None:
    r = fake_results()
    paths = report.write_reports(r, tmp_path)
    assert {p.name for p in paths} == {"summary.md", "report.html", "cover-table.txt"}
    md = (tmp_path / "summary.md").read_text()
    assert "**Accelerator: TCG**" in md
    assert "| c.lookup.100k | ns_per_lookup | 101 ns (100 ns\u2013102 ns) |" in md
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 2
    table = (tmp_path / "cover-table.txt").read_text()
    assert "c.lookup.100k" in table and "0.50" in table


def test_human_units() -> None:
    assert report.human(1500, "ns_per_pair") == "1.5 µs"
    assert report.human(2.5e9, "elapsed_ns") == "2.5 s"
    assert report.human(384.4, "timer_caches_bytes_per_timer") == "384 B"
    assert report.human(None, "ns") == "-"
    assert report.seconds(2700) == "45 min"


def test_cover_letter_answers_use_the_numbers() -> None:
    a = coverletter.answers(fake_results())
    assert "2 threads 0.63x" in " ".join(a["contention_answer"].split())
    assert "51 ns patched" in " ".join(a["lookup_answer"].split())
    assert a["table"].startswith("Measured side by side")


def _summaries(tmp_path: Path, **override: dict[str, object]) -> Path:
    run = {"counts": {"passed": 9, "failed": 0, "skipped": 1, "error": 0}, "pytest_exit": 0}
    runs: dict[str, object] = {
        label: dict(run, release="6.12.117+") for label in coverletter.TEST_RUNS
    }
    runs.update(override)
    (tmp_path / "test-summary.json").write_text(json.dumps(runs))
    debug = {"patched": dict(run, release="6.12.117+")}
    (tmp_path / "test-summary-debug.json").write_text(json.dumps(debug))
    return tmp_path


def test_cover_letter_without_bench_results(tmp_path: Path) -> None:
    text = coverletter.render(tmp_path / "none.json", _summaries(tmp_path))
    assert text.splitlines()[0].startswith("posix-timers: ")
    assert "run ./ptimers bench" in " ".join(text.split())


def test_testing_paragraph_counts_come_from_the_summaries(tmp_path: Path) -> None:
    text = " ".join(coverletter.testing_text(_summaries(tmp_path)).split())
    assert text.count("9 passed, 0 failed, 1 skipped") == len(coverletter.TEST_RUNS) + 1
    assert "caa6ba7.txt" in text


def test_export_refuses_a_partial_or_failing_test_run(tmp_path: Path) -> None:
    """The stale `--which upstream` summary with 3 failures must not reach the letter."""
    failing = {"counts": {"passed": 115, "failed": 3, "skipped": 56}, "pytest_exit": 1}
    with pytest.raises(HarnessError, match="upstream: pytest exit 1"):
        coverletter.testing_text(_summaries(tmp_path, upstream=failing))
    only_upstream = tmp_path / "partial"
    only_upstream.mkdir()
    _summaries(only_upstream)
    (only_upstream / "test-summary.json").write_text(
        json.dumps({"upstream": {"counts": {"passed": 1}, "pytest_exit": 0}})
    )
    with pytest.raises(HarnessError, match="no unpatched run"):
        coverletter.testing_text(only_upstream)
    with pytest.raises(HarnessError, match="does not exist"):
        coverletter.testing_text(tmp_path / "nowhere")
