"""The cover letter: rendered from templates and results, written by git.

The series' source of truth is a branch.  Its description (rendered here
from ``templates/cover-letter.txt.j2`` with the benchmark and test results)
becomes the cover letter through ``git format-patch
--cover-from-description=subject``, so ``patches/`` is always exactly what
git wrote and the numbers in it come from ``results.json``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from . import report
from .bench import INT_MAX, PAIR_DEPTHS
from .errors import HarnessError
from .paths import REPO


def _k(summary: dict[str, Any], case: str, label: str) -> float | None:
    cell = summary.get(case, {}).get("kernels", {}).get(label)
    return None if cell is None else float(cell["median"])


def _fmt(v: float | None, metric: str) -> str:
    return report.human(v, metric)


def _wrap(text: str) -> str:
    return textwrap.fill(
        " ".join(text.split()), width=72, initial_indent="    ", subsequent_indent="    "
    )


def answers(results: dict[str, Any] | None) -> dict[str, str]:
    """The numbers-backed paragraphs of the cover letter."""
    if not results or "summary" not in results:
        missing = _wrap(
            "(no benchmark results yet: run ./ptimers bench, then ./ptimers series export)"
        )
        return {
            "legacy_time": "(not measured here yet: run ./ptimers bench)",
            "accel": "not yet: no results/bench/results.json",
            "memory_answer": missing,
            "contention_answer": missing,
            "lookup_answer": missing,
            "table": "",
        }
    s = results["summary"]
    mem = {
        p: {k: _k(s, f"e.memory.{p}", k) for k in report.KERNELS}
        for p in ("dense", "churn", "offset", "sparse")
    }

    def b(p: str, k: str) -> str:
        return _fmt(mem[p][k], "bytes_per_timer")

    memory = _wrap(
        f"Bytes per live timer (slab deltas: timers, sigqueues and xarray nodes): "
        f"dense {b('dense', 'patched')} patched vs {b('dense', 'unpatched')} unpatched and "
        f"{b('dense', 'upstream')} upstream; churn {b('churn', 'patched')} vs "
        f"{b('churn', 'unpatched')} / {b('churn', 'upstream')}. Upstream's worst case, 2048 "
        f"timers 512 IDs apart: {b('offset', 'patched')} patched vs "
        f"{b('offset', 'upstream')} upstream per timer. There the xarray needs one leaf node "
        f"per timer plus interior nodes, as upstream said; the cost is bounded "
        f"by RLIMIT_SIGPENDING (every timer preallocates a sigqueue), charged to the "
        f"process's memory cgroup, and only arises when a process deliberately spreads its "
        f"IDs -- normal allocation is dense, and a CRIU restore recreates the ID layout of "
        f"a process that already had it. Sparse restore of 1000 IDs over 10^6: "
        f"{b('sparse', 'patched')} vs {b('sparse', 'upstream')} per timer."
    )

    def r(case: str, other: str) -> str:
        v = s.get(case, {}).get("ratios", {}).get(f"patched/{other}")
        return "-" if v is None else f"{v:.2f}x"

    contention = _wrap(
        f"create+delete loop time per pair, patched relative to upstream (lower is "
        f"better): 2 threads {r('c.churn.2threads', 'upstream')}, 2 processes "
        f"{r('c.churn.2procs', 'upstream')}; relative to unpatched "
        f"{r('c.churn.2threads', 'unpatched')} and {r('c.churn.2procs', 'unpatched')}. "
        f"Creating 20k timers in each of 2 threads: {r('c.create.2threads', 'upstream')} of "
        f"upstream's time. The xarray's lock is per process: only threads of one process "
        f"can contend on it, never unrelated processes as on 6.12's hash_lock. What does "
        f"cost in an xarray is node churn: a process creating and deleting one timer at a "
        f"time empties the array on every delete, and the next create at the next ID "
        f"allocates the path again. The legacy create/delete pair costs "
        f"{r('a.pairs', 'upstream')} of upstream's time and "
        f"{r('a.pairs', 'unpatched')} of unpatched 6.12's."
    )

    lookup = _wrap(
        f"timer_getoverrun() on random IDs with 100k timers in one process: "
        f"{_fmt(_k(s, 'c.lookup.100k', 'patched'), 'ns_per_lookup')} patched, "
        f"{_fmt(_k(s, 'c.lookup.100k', 'unpatched'), 'ns_per_lookup')} unpatched, "
        f"{_fmt(_k(s, 'c.lookup.100k', 'upstream'), 'ns_per_lookup')} upstream "
        f"({r('c.lookup.100k', 'unpatched')} / {r('c.lookup.100k', 'upstream')}). A victim "
        f"process's lookups while a neighbour holds 60k timers: "
        f"{_fmt(_k(s, 'd.neighbour', 'patched'), 'ratio')} of its time alone patched, "
        f"{_fmt(_k(s, 'd.neighbour', 'unpatched'), 'ratio')} unpatched."
    )
    legacy_txt = legacy_sentence(results)
    return {
        "legacy_time": legacy_txt,
        "accel": f"QEMU {results['meta'].get('accel', '?').upper()}, "
        f"{results['meta'].get('vcpus')} vCPUs",
        "memory_answer": memory,
        "contention_answer": contention,
        "lookup_answer": lookup,
        "table": report.render(results, "cover-table.txt.j2"),
    }


def legacy_sentence(results: dict[str, Any]) -> str:
    """The first paragraph's figure: unpatched 6.12's own loop, extrapolated."""
    s = results["summary"]
    meta = results["meta"]
    pair = s.get("a.pairs", {}).get("kernels", {}).get("unpatched")
    if not pair:
        return "(unpatched 6.12's create/delete pair was not measured in this run)"
    n = results["cases"][0]["params"].get("n") if results["cases"] else None
    total = pair["median"] * (INT_MAX - 1) / 1e9
    exact = s.get("a.exact_high.flag", {}).get("kernels", {}).get("patched")
    text = (
        f"Under QEMU {str(meta.get('accel', '?')).upper()} emulation here, one pair costs "
        f"{report.human(pair['median'], 'ns_per_pair')} on unpatched 6.12 (median of "
        f"{pair['n']} rounds of {n} pairs, scale {meta.get('scale')}), which extrapolates "
        f"linearly to {report.seconds(total)} for one timer with ID 2^31 - 2"
    )
    if exact:
        text += (
            f"; with SIGEV_TIMER_ID that create took "
            f"{report.human(exact['median'], 'ns')} (measured)"
        )
    return textwrap.fill(text + ".", width=72)


PARKED = REPO / "bench-data" / "parked-slot" / "results.json"


def parked_text(path: Path = PARKED) -> str:
    """What the reserved slot of the series' first version saved, from its run."""
    if not path.exists():
        return _wrap(f"(the reserved-slot comparison is missing: {path.relative_to(REPO)})")
    data = json.loads(path.read_text())
    s = data["summary"]
    meta = data["meta"]
    cells = []
    for name, label in (
        ("a.pairs", "from ID 0"),
        *((f"a.pairs_at.{d}", f"at {d}") for d, _ in PAIR_DEPTHS),
    ):
        ratio = s.get(name, {}).get("ratios", {}).get("patched/parked")
        if ratio is not None:
            cells.append(f"{label} {ratio:.2f}x")
    return textwrap.fill(
        "A process creating and deleting one timer at a time (CRIU's legacy restore "
        "loop) empties the array on every delete, and the next create allocates the "
        "path to its ID again. "
        "The series' first version kept the slot of the last deleted timer reserved to "
        "avoid that churn, with code which stored one timer in two slots after exact "
        "creates and a delete. This version drops it. Per create/delete pair, this "
        "version relative to that one (QEMU "
        f"{str(meta.get('accel', '?')).upper()}, {meta.get('rounds')} rounds, scale "
        f"{meta.get('scale')}, bench-data/parked-slot/): " + ", ".join(cells) + ". "
        "The exact-ID interfaces make that loop unnecessary; the simpler code wins.",
        width=72,
    )


# What a release's Testing paragraph must rest on: every kernel's suite, the
# two 6.12 kernels once more through the compat syscalls, and the debug run.
TEST_RUNS = ("unpatched", "unpatched-compat", "patched", "patched-compat", "upstream")


def _runs(path: Path, want: tuple[str, ...]) -> dict[str, Any]:
    """The runs of a test summary, refused unless complete and passing.

    A stale or partial summary (``--which upstream``, a run with failures)
    once became the cover letter's Testing paragraph; now it stops the
    export and says which run to redo.
    """
    if not path.exists():
        raise HarnessError(
            f"{path} does not exist: the cover letter's Testing paragraph needs a test run",
            hint="run ./ptimers test (and --flavor debug), or give --tests DIR of a CI record",
        )
    data = json.loads(path.read_text())
    problems = [f"no {label} run" for label in want if label not in data]
    for label in want:
        run = data.get(label)
        if not isinstance(run, dict):
            continue
        c = run.get("counts", {})
        if run.get("pytest_exit") != 0 or c.get("failed") or c.get("error") or not c.get("passed"):
            problems.append(f"{label}: pytest exit {run.get('pytest_exit')}, counts {c}")
    if problems:
        raise HarnessError(
            f"{path} is not a complete passing run: " + "; ".join(problems),
            hint="rerun ./ptimers test (all kernels) before ./ptimers series export",
        )
    return {label: data[label] for label in want}


def _series_check(directory: Path) -> tuple[str, list[str]]:
    """The newest ``series check`` record: its name and per-patch verdicts."""
    records = sorted(directory.glob("*.txt"), key=lambda p: p.stat().st_mtime)
    if not records:
        raise HarnessError(
            f"no series check record in {directory}",
            hint="run ./ptimers series check and keep its output there",
        )
    text = records[-1].read_text()
    lines = [ln for ln in text.splitlines() if ln[:4].isdigit() and ": checkpatch" in ln]
    if not lines or "series check passed" not in text:
        raise HarnessError(f"{records[-1]} is not a passing series check record")
    return records[-1].name, lines


def testing_text(tests_dir: Path, check_dir: Path = REPO / "bench-data" / "series-check") -> str:
    """What the vmtests did on each kernel, from a test run's summaries.

    ``tests_dir`` holds ``test-summary.json`` and ``test-summary-debug.json``
    (``results/`` after ``./ptimers test``, or a CI record under
    ``bench-data/ci-fresh/``).  Every count is read from them; nothing about
    the checks is claimed that their files do not say.
    """
    runs = _runs(tests_dir / "test-summary.json", TEST_RUNS)
    debug = _runs(tests_dir / "test-summary-debug.json", ("patched",))["patched"]
    lines = []
    for label, run in runs.items():
        c = run["counts"]
        lines.append(
            f"  - {label} ({run.get('release', '?')}): {c.get('passed', 0)} passed, "
            f"{c.get('failed', 0)} failed, {c.get('skipped', 0)} skipped"
        )
    dc = debug["counts"]
    name, verdicts = _series_check(check_dir)
    clean = sum(
        1 for v in verdicts if "checkpatch ok" in v and "build ok" in v and "sparse ok" in v
    )
    intro = _wrap(
        "The VM test suite (legacy ID semantics, /proc/<pid>/timers format, signals, the "
        "error matrix, CRIU's legacy restore loop and real CRIU, a differential test "
        "against a model of 6.12's allocator, a timer_create() fuzzer whose no-flag trace "
        "must be identical on 6.12 and the series, races, the kernel's own timer "
        "selftests, and the new interfaces incl. racing creates of one ID) ran on each "
        "kernel, the two 6.12 kernels also through the 32-bit compat syscalls "
        f"(-compat; {tests_dir.name}/test-summary.json):"
    )
    return (
        intro
        + "\n"
        + "\n".join(lines)
        + "\n"
        + _wrap(
            "On the series built with KASAN, lockdep, PROVE_RCU, DEBUG_OBJECTS_TIMERS, "
            "kmemleak and failslab aimed at the timer, its sigqueue and the xarray's "
            f"nodes: {dc.get('passed', 0)} passed, {dc.get('failed', 0)} failed, "
            f"{dc.get('skipped', 0)} skipped ({debug.get('release', '?')}). "
            f"'./ptimers series check' ({name}): checkpatch.pl --strict, the build, "
            f"sparse on the touched files and the suite passed after each of "
            f"{len(verdicts)} patches ({clean} with sparse run on kernel code)."
        )
    )


def render(results_path: Path | None = None, tests_dir: Path | None = None) -> str:
    """The branch description: subject paragraph, then the body."""
    results_path = results_path or REPO / "results" / "bench" / "results.json"
    tests_dir = tests_dir or REPO / "results"
    results = json.loads(results_path.read_text()) if results_path.exists() else None
    ctx = answers(results)
    ctx["testing"] = testing_text(tests_dir)
    ctx["parked"] = parked_text()
    env = report._env()
    return env.get_template("cover-letter.txt.j2").render(**ctx)
