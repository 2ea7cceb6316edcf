"""``ptimers mutate`` without a VM: mutant files, selection, verdicts, the report."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest

from harness import mutate
from harness.errors import HarnessError
from harness.kbuild import Kernel
from harness.mutate import ERROR, KILLED, SURVIVED, Mutant, MutantError, Outcome
from harness.paths import REPO
from harness.source import GIT_ENV

DIFF = """diff --git a/kernel/time/posix-timers.c b/kernel/time/posix-timers.c
index 809219f..a2fcdd8 100644
--- a/kernel/time/posix-timers.c
+++ b/kernel/time/posix-timers.c
@@ -1,3 +1,3 @@
 a
-b
+c
 d
"""


def text(header: str, notes: str = "Why it matters.\n") -> str:
    return header + "\n" + notes + "\n" + DIFF


def test_parse_reads_the_header_notes_and_diff() -> None:
    m = mutate.parse(
        text(
            "Subject: the cursor never moves\n"
            "Target: kernel/time/posix-timers.c: posix_timer_add()\n"
            "Caught-by: vmtests/test_id_allocation.py::test_x\n",
            "First line\nsecond line.\n",
        ),
        "03-cursor-not-advanced",
    )
    assert m.subject == "the cursor never moves"
    assert m.target == "kernel/time/posix-timers.c: posix_timer_add()"
    assert m.caught_by == "vmtests/test_id_allocation.py::test_x"
    assert not m.equivalent and not m.flavor
    assert m.notes == "First line\nsecond line."
    assert m.diff == DIFF
    assert m.files == ["kernel/time/posix-timers.c"]


def test_parse_joins_continuation_lines() -> None:
    m = mutate.parse(
        text("Subject: s\nEquivalent: the first search is empty\n  and the second is the same\n"),
        "05-x",
    )
    assert m.equivalent == "the first search is empty and the second is the same"
    assert not m.caught_by


def test_parse_without_notes() -> None:
    m = mutate.parse("Subject: s\nCaught-by: t\n\n" + DIFF, "01-x")
    assert m.notes == "" and m.diff == DIFF


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [
        (text("Subject: s\nCaught-by: t\n"), "3-x", "NN-lowercase"),
        (text("Subject: s\nCaught-by: t\n"), "03-Bad", "NN-lowercase"),
        ("Subject: s\nCaught-by: t\n\nno diff here\n", "03-x", "no diff"),
        (text("Caught-by: t\n"), "03-x", "no Subject"),
        (text("Subject: s\n"), "03-x", "neither Caught-by"),
        (text("Subject: s\nCaught-By: t\n"), "03-x", "unknown header field 'Caught-By'"),
        (text("Subject: s\nSubject: t\nCaught-by: t\n"), "03-x", "given twice"),
        (text("Subject: s\nthis is prose\n"), "03-x", "not 'Key: value'"),
    ],
)
def test_parse_rejects(content: str, name: str, fragment: str) -> None:
    with pytest.raises(MutantError) as exc:
        mutate.parse(content, name)
    assert fragment in exc.value.message


def test_load_refuses_a_number_twice(tmp_path: Path) -> None:
    for name in ("01-a", "01-b", "02-c"):
        (tmp_path / f"{name}.patch").write_text(text("Subject: s\nCaught-by: t\n"))
    with pytest.raises(MutantError, match="01 used twice"):
        mutate.load(tmp_path)


def test_the_shipped_mutants_parse() -> None:
    mutants = mutate.load()
    assert len(mutants) >= 30
    for m in mutants:
        assert m.files, m.name
        assert all(not f.startswith("tools/") for f in m.files), "mutants are of the kernel"
        assert m.flavor in ("", "debug"), m.name
        if m.caught_by.startswith("vmtests/"):
            path = m.caught_by.split("::")[0]
            assert (REPO / path).exists() or "gaps" in path, f"{m.name}: no {path}"


def test_each_caught_by_names_a_test_that_exists() -> None:
    """A renamed test or a misspelt parametrize ID in a Caught-by header
    would only show in a mutate run ("killed by X (expected Y)"): check
    the function and the ID here."""
    for m in mutate.load():
        if not m.caught_by.startswith("vmtests/") or "gaps" in m.caught_by:
            continue
        path, _, test = m.caught_by.partition("::")
        func, _, param = test.rpartition("::")[2].partition("[")
        source = (REPO / path).read_text()
        found = re.search(rf"^\s*def {re.escape(func)}\(", source, re.M)
        assert found, f"{m.name}: no {test}"
        if param:
            decorators = source[max(0, found.start() - 600) : found.start()]
            assert f'"{param.rstrip("]")}"' in decorators, f"{m.name}: {func} has no ID [{param}"


def _mutant(name: str, equivalent: str = "", flavor: str = "") -> Mutant:
    return Mutant(name, "s", "t", "" if equivalent else "x::y", equivalent, flavor, "", DIFF)


MUTANTS = [
    _mutant("01-returned-id"),
    _mutant("02-cursor-not-advanced"),
    _mutant("03-cursor-not-clamped", equivalent="same search"),
    _mutant("04-exit-frees-before-erase", flavor="debug"),
    _mutant("05-proc-hides-int-max"),
    _mutant("06-cursor-skips-one"),
]


def names(ms: list[Mutant]) -> list[str]:
    return [m.name for m in ms]


def test_select_everything_but_other_flavors() -> None:
    run, left = mutate.select(MUTANTS)
    assert names(run) == [
        "01-returned-id",
        "02-cursor-not-advanced",
        "03-cursor-not-clamped",
        "05-proc-hides-int-max",
        "06-cursor-skips-one",
    ]
    assert [(m.name, why) for m, why in left] == [
        ("04-exit-frees-before-erase", "needs --flavor debug")
    ]
    run, left = mutate.select(MUTANTS, flavor="debug")
    assert "04-exit-frees-before-erase" in names(run) and not left


def test_select_only_globs_and_substrings() -> None:
    assert names(mutate.select(MUTANTS, only=["cursor"])[0]) == [
        "02-cursor-not-advanced",
        "03-cursor-not-clamped",
        "06-cursor-skips-one",
    ]
    assert names(mutate.select(MUTANTS, only=["0[15]-*"])[0]) == [
        "01-returned-id",
        "05-proc-hides-int-max",
    ]
    assert names(mutate.select(MUTANTS, only=["01", "proc"])[0]) == [
        "01-returned-id",
        "05-proc-hides-int-max",
    ]
    assert mutate.select(MUTANTS, only=["nothing"]) == ([], [])


def test_select_skip_equivalent() -> None:
    run, left = mutate.select(MUTANTS, skip_equivalent=True)
    assert "03-cursor-not-clamped" not in names(run)
    assert ("03-cursor-not-clamped", "equivalent") in [(m.name, w) for m, w in left]


def test_sample_is_reproducible_rotates_and_skips_equivalents() -> None:
    pool = {"01-returned-id", "02-cursor-not-advanced", "05-proc-hides-int-max"}
    pool.add("06-cursor-skips-one")
    picks = set()
    for seed in range(20):
        run, left = mutate.select(MUTANTS, sample=2, seed=seed)
        assert len(run) == 2 and set(names(run)) <= pool
        assert names(run) == sorted(names(run))
        assert run == mutate.select(MUTANTS, sample=2, seed=seed)[0], "same seed, same sample"
        assert len(left) == len(MUTANTS) - 2
        picks.add(tuple(names(run)))
    assert len(picks) > 3, "different seeds draw different samples"
    run, _ = mutate.select(MUTANTS, sample=10, seed=1)
    assert set(names(run)) == pool, "a sample larger than the pool is the pool"


def test_default_seed_is_the_date() -> None:
    assert mutate.default_seed(datetime.date(2026, 12, 1)) == 20261201


@pytest.mark.parametrize(
    ("code", "want"),
    [(0, SURVIVED), (1, KILLED), (125, "error"), (128, "error"), (2, "error"), (-1, "error")],
)
def test_verdict(code: int, want: str) -> None:
    assert mutate.verdict(code) == want


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="vmtests.test_bench" name="test_bench_case_runs[a.pairs]"
  file="vmtests/test_bench.py" line="30" time="16.8" />
<testcase classname="vmtests.test_bench" name="test_skip" file="vmtests/test_bench.py">
  <skipped message="kernel lacks exact" /></testcase>
<testcase classname="vmtests.test_create_with_id.TestPrctl" name="test_get_on_off"
  file="vmtests/test_create_with_id.py" line="230" time="1.0">
  <failure message="AssertionError: assert [0, 0, 0] == [0, 1, 0]&#10;more">trace</failure>
</testcase>
<testcase classname="vmtests.test_errors" name="test_later" file="vmtests/test_errors.py">
  <failure message="later">x</failure></testcase>
</testsuite></testsuites>
"""


def test_killer_is_the_first_failure(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    assert mutate.killer(junit) == (
        "vmtests/test_create_with_id.py::TestPrctl::test_get_on_off",
        "AssertionError: assert [0, 0, 0] == [0, 1, 0]",
    )


def test_killer_of_an_error_and_of_nothing(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase classname="vmtests.test_x" name="test_y[1]" '
        'file="vmtests/test_x.py"><error message="the guest crashed" /></testcase>'
        "</testsuite></testsuites>"
    )
    assert mutate.killer(junit) == ("vmtests/test_x.py::test_y[1]", "the guest crashed")
    junit.write_text("<testsuites><testsuite><testcase name='t' /></testsuite></testsuites>")
    assert mutate.killer(junit) is None
    assert mutate.killer(tmp_path / "missing.xml") is None
    junit.write_text("<not xml")
    assert mutate.killer(junit) is None


def outcome(name: str, verdict: str, equivalent: str = "", **kw: object) -> Outcome:
    o = Outcome(
        name=name, verdict=verdict, subject="s", equivalent=equivalent, caught_by="vmtests/t.py"
    )
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def test_score_and_exit_status() -> None:
    outcomes = [
        outcome(mutate.CONTROL, SURVIVED, test_seconds=300.0),
        outcome("01-a", KILLED, killer="vmtests/t.py::x", build_seconds=80.0, test_seconds=30.0),
        outcome("02-b", KILLED, build_seconds=100.0, test_seconds=50.0),
        outcome("03-c", SURVIVED, equivalent="same", build_seconds=90.0, test_seconds=310.0),
        outcome("04-d", SURVIVED, build_seconds=1.0, build_cached=True, test_seconds=300.0),
        outcome("05-e", "error", message="does not apply"),
    ]
    sc = mutate.score(outcomes)
    assert sc["killed"] == 2 and sc["non_equivalent"] == 3
    assert sc["survived"] == ["04-d"] and sc["errors"] == ["05-e"]
    assert sc["equivalent"] == 1 and sc["equivalent_killed"] == []
    assert sc["build_seconds_median"] == 90.0, "cache hits are not build times"
    assert sc["test_seconds_median"] == 175.0, "the control is not a mutant"
    line = mutate.summary_line(sc)
    assert line.startswith("mutation score: 2/3 non-equivalent mutants killed (67%); 1 equivalent")
    assert "survived: 04-d" in line and "errors (not counted): 05-e" in line
    assert mutate.failed(outcomes)
    assert not mutate.failed(outcomes[:4])
    assert mutate.failed([*outcomes[:4], outcome("06-f", KILLED, equivalent="claimed")])
    assert mutate.failed([outcome(mutate.CONTROL, KILLED)]), "a failing control fails the run"


def test_lines() -> None:
    assert (
        outcome("01-a", KILLED, killer="vmtests/t.py::x", build_seconds=80.4, test_seconds=31.0)
    ).line() == "01-a: killed by vmtests/t.py::x [build 80s, tests 31s]"
    assert "(expected vmtests/t.py)" in outcome("01-a", KILLED, killer="vmtests/u.py::y").line()
    assert "SURVIVED (expected to be killed by vmtests/t.py)" in outcome("02-b", SURVIVED).line()
    assert "survived (equivalent, as declared)" in outcome("03-c", SURVIVED, "same").line()
    assert "declared equivalent" in outcome("03-c", KILLED, "same").line()
    assert outcome("04-d", "error", message="boom").line() == "04-d: ERROR: boom"
    assert "cached" in outcome("05-e", SURVIVED, build_seconds=1.0, build_cached=True).line()


def results(outcomes: list[Outcome]) -> dict[str, object]:
    return {
        "meta": {
            "started": "2026-12-01T14:00:00+00:00",
            "wall_seconds": 7260.0,
            "flavor": "default",
            "series_head": "cead7d0acdd286c10aeb5a4524edb9894e869c2e",
            "suite_commit": "8d32e84aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "cpus": 2,
        },
        "score": mutate.score(outcomes),
        "mutants": [o.to_json() for o in outcomes],
        "not_run": [{"name": "36-x", "why": "needs --flavor debug"}],
    }


def test_render_takes_every_number_from_the_results(tmp_path: Path) -> None:
    outcomes = [
        outcome(mutate.CONTROL, SURVIVED, test_seconds=301.0, counts={"passed": 140, "skipped": 5}),
        outcome("01-a", KILLED, killer="vmtests/t.py::x", build_seconds=80.0, test_seconds=30.0),
        outcome("02-b", SURVIVED, build_seconds=100.0, test_seconds=300.0),
        outcome("03-c", SURVIVED, "the same search", build_seconds=90.0, test_seconds=290.0),
    ]
    data = results(outcomes)
    md = mutate.render(data)
    assert "2 cores, TCG: 3 mutants in 2 h 01 min" in md
    assert "140 passed, 5 skipped in 301 s" in md
    assert "median per mutant 90 s build (cache hits left out), 290 s suite" in md
    assert mutate.summary_line(mutate.score(outcomes)) in md
    assert "| `01-a` | s | killed | `t.py::x` |" in md
    assert "**survived**" in md and "(the reason is in its file)" in md
    assert "| `36-x` | | not run: needs --flavor debug | |" in md
    (tmp_path / "bench-data").mkdir()
    (tmp_path / "bench-data/full.json").write_text(json.dumps(data))
    readme = tmp_path / "README.md"
    marker = mutate.block_marker("bench-data/full.json")
    readme.write_text(f"# T\n\n## Mutation score\n\n{marker}\nold\n<!-- mutate:end -->\n\nrest\n")
    assert mutate.update_readme(readme, tmp_path) == [tmp_path / "bench-data/full.json"]
    again = readme.read_text()
    assert "old" not in again and f"{marker}\n{md}<!-- mutate:end -->\n\nrest\n" in again
    mutate.update_readme(readme, tmp_path)
    assert readme.read_text() == again, "idempotent"
    readme.write_text(f"{mutate.block_marker('bench-data/gone.json')}\n<!-- mutate:end -->\n")
    with pytest.raises(MutantError, match="does not exist"):
        mutate.update_readme(readme, tmp_path)
    readme.write_text("no markers\n")
    with pytest.raises(MutantError, match="no generated"):
        mutate.update_readme(readme, tmp_path)


def test_render_without_builds_or_control() -> None:
    data = results([outcome("01-a", KILLED, killer=mutate.SESSION, message="error: | broken")])
    md = mutate.render(data)
    assert "median per mutant - build" in md and "control" not in md
    assert "session setup: error: \\| broken" in md


def test_resume_keeps_only_a_run_of_the_same_suite(tmp_path: Path) -> None:
    same = {"flavor": "default", "series_head": "s1", "suite_commit": "c1", "pytest_args": []}
    path = tmp_path / "results.json"
    assert mutate.resumable(path, same) == ({}, {}), "no earlier run"
    done = [outcome(mutate.CONTROL, SURVIVED), outcome("01-a", KILLED, killer="vmtests/t.py::x")]
    broken = outcome("02-b", ERROR, message="build failed (make exit 2)")
    path.write_text(
        json.dumps(
            {
                "meta": {**same, "wall_seconds": 600.0},
                "mutants": [o.to_json() for o in [*done, broken]],
            }
        )
    )
    kept, meta = mutate.resumable(path, same)
    # The error is run again: it measured nothing about its mutant
    assert kept == {o.name: o for o in done} and meta["wall_seconds"] == 600.0
    for key, other in (("suite_commit", "c2"), ("series_head", "s2"), ("pytest_args", ["-k", "x"])):
        assert mutate.resumable(path, {**same, key: other}) == ({}, {}), key
    path.write_text("{not json")
    assert mutate.resumable(path, same) == ({}, {})


# --- the worktree side, on a small git tree -------------------------------------


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), *args],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tree), **GIT_ENV},
    ).stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "linux"
    (t / "kernel/time").mkdir(parents=True)
    (t / "kernel/time/posix-timers.c").write_text("a\nb\nd\n")
    _git(t, "init", "-q")
    _git(t, "add", "-A")
    _git(t, "commit", "-q", "-m", "base")
    return t


def test_apply_and_restore(tree: Path) -> None:
    m = mutate.parse(text("Subject: s\nCaught-by: t\n"), "01-x")
    f = tree / "kernel/time/posix-timers.c"
    mutate.apply(tree, m)
    assert f.read_text() == "a\nc\nd\n"
    mutate.restore(tree)
    assert f.read_text() == "a\nb\nd\n"
    f.write_text("moved\n")
    _git(tree, "commit", "-q", "-am", "the series changed")
    with pytest.raises(MutantError, match="does not apply"):
        mutate.apply(tree, m)


def test_restore_refuses_a_tree_it_cannot_clean(tree: Path) -> None:
    (tree / "new.c").write_text("x\n")
    with pytest.raises(MutantError, match="not clean"):
        mutate.restore(tree)


def test_run_one_undoes_the_mutant_and_reports_build_errors(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = mutate.parse(text("Subject: s\nCaught-by: t\n"), "01-x")
    seen: list[str] = []

    def broken_build(t: Path, flavor: str) -> Kernel:
        seen.append((t / "kernel/time/posix-timers.c").read_text())
        print("building linux flavor default")
        raise HarnessError("build failed (make exit 2); full log: x")

    req = mutate.Request(out=tmp_path / "out")
    o = mutate.run_one(tree, m, req, tmp_path, tmp_path, build=broken_build)
    assert seen == ["a\nc\nd\n"], "built with the mutant applied"
    assert (tree / "kernel/time/posix-timers.c").read_text() == "a\nb\nd\n", "and undone"
    assert o.verdict == "error" and o.message.startswith("build failed")
    assert "building linux" in (tmp_path / "out/01-x/build.txt").read_text()
    assert "error: build failed" in (tmp_path / "out/01-x/error.txt").read_text()


def test_run_one_maps_the_suite_exit(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = mutate.parse(text("Subject: s\nCaught-by: vmtests/test_create_with_id.py\n"), "01-x")
    image = tmp_path / "kernels/k/bzImage"
    image.parent.mkdir(parents=True)
    image.write_text("")

    def build(t: Path, flavor: str) -> Kernel:
        print("kernel k: cached (somewhere)")
        return Kernel(image.parent)

    def suite(rc: int, junit: str = JUNIT) -> object:
        def run_suite(
            s: Path,
            img: Path,
            out: Path,
            st: Path,
            extra: object,
            timeout: float,
            run_first: object = (),
            flavor: str = "default",
        ) -> tuple[int, float]:
            assert img == image
            out.mkdir(parents=True, exist_ok=True)
            (out / "junit.xml").write_text(junit)
            (out / "pytest.log").write_text(
                "..\n!!!!! _pytest.outcomes.Exit: error: guest failed to boot !!!!!\n1 error\n"
            )
            (out / "results.json").write_text('{"counts": {"passed": 3, "failed": 1}}')
            return rc, 12.3

        return run_suite

    req = mutate.Request(out=tmp_path / "out")
    monkeypatch.setattr(mutate, "run_suite", suite(1))
    o = mutate.run_one(tree, m, req, tmp_path, tmp_path, build=build)
    assert (o.verdict, o.killer, o.build_cached) == (
        KILLED,
        "vmtests/test_create_with_id.py::TestPrctl::test_get_on_off",
        True,
    )
    assert o.counts == {"passed": 3, "failed": 1} and o.test_seconds == 12.3
    assert o.expected and "(expected" not in o.line()
    (tmp_path / "junit.xml").write_text("<testsuites />")
    monkeypatch.setattr(mutate, "run_suite", suite(1, junit="<testsuites />"))
    o = mutate.run_one(tree, m, req, tmp_path, tmp_path, build=build)
    assert (o.verdict, o.killer) == (KILLED, mutate.SESSION), "the probes failed the session"
    assert o.message == "error: guest failed to boot"
    assert o.line().startswith("01-x: killed by (session setup): error: guest failed to boot")
    monkeypatch.setattr(mutate, "run_suite", suite(0))
    assert mutate.run_one(tree, m, req, tmp_path, tmp_path, build=build).verdict == SURVIVED
    monkeypatch.setattr(mutate, "run_suite", suite(125))
    o = mutate.run_one(tree, m, req, tmp_path, tmp_path, build=build)
    assert o.verdict == "error"
    assert o.message == "pytest exit 125: error: guest failed to boot"


def test_debug_flavor_demands_the_reserved_slot_and_the_checkers() -> None:
    """A debug-flavor mutant that drops the reservation (51) is only caught
    by the session demanding it; the default flavor cannot see it."""
    assert mutate.expected_features("default") == mutate.SERIES_FEATURES
    debug = mutate.expected_features("debug")
    assert {"reserved_slot", "kasan", "kmemleak", "failslab"} <= set(debug)
    assert set(mutate.SERIES_FEATURES) <= set(debug)
