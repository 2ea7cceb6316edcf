"""The cover letter: rendered from templates and results, written by git.

The series' source of truth is a branch.  Its description (rendered here
from ``templates/cover-letter.txt.j2`` with the benchmark and test results)
becomes the cover letter through ``git format-patch
--cover-from-description=subject``, so ``patches/`` is always exactly what
git wrote and the numbers in it come from ``results.json``.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from pathlib import Path
from typing import Any

from . import bench, report
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
        " ".join(text.split()),
        width=72,
        initial_indent="    ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )


KERNEL_ORDER = ("patched", "unpatched", "upstream")


def answers(results: dict[str, Any]) -> dict[str, str]:
    """The numbers-backed paragraphs of the cover letter (``render`` refuses
    to run without a complete benchmark run, so there is no placeholder)."""
    s = results["summary"]
    kernels = results["kernels"]
    meta = results["meta"]
    params = {c["name"]: c["params"] for c in results["cases"]}

    def p(case: str, key: str) -> str:
        """A case's parameter as the text shows it (10000 -> "10k")."""
        v = params.get(case, {}).get(key)
        if not isinstance(v, int):
            return "?"
        if v >= 10**6 and v % 10**6 == 0:
            return f"{v // 10**6}M"
        return f"{v // 1000}k" if v >= 1000 and v % 1000 == 0 else str(v)

    small = next((f"-{n}cpu" for n in meta.get("sizings", [])[1:]), None)

    def b(case: str, k: str) -> str:
        return _fmt(_k(s, case, k), "bytes_per_timer")

    def wt(case: str, k: str) -> str:
        v = s.get(case, {}).get("with_table", {}).get(k)
        return _fmt(v, "bytes_per_timer")

    def table(k: str) -> str:
        info = kernels.get(k, {})
        return f"{info.get('timer_table_bytes', '?')} bytes"

    def wt_ratio(case: str) -> str:
        t = s.get(case, {}).get("with_table", {})
        return (
            f"{t['patched'] / t['upstream']:.2f}x"
            if t.get("patched") and t.get("upstream")
            else "-"
        )

    headline_rows = {row["name"]: row for row in report.rows(results)}

    def table_note(case: str) -> str:
        """The case's ratio without upstream's table and its 2x break-even."""
        row = headline_rows.get(case)
        return report.table_note(results, row, "", 2.0) if row else ""

    memory = _wrap(
        f"Bytes per live timer (slab deltas of the timer, its sigqueue and xarray nodes; "
        f"median of {p('e.memory.dense', 'reps')} repetitions) and, after the slash, "
        f"with the kernel's timer table "
        f"counted ({meta.get('possible_cpus')} possible CPUs: upstream's hash is "
        f"{table('upstream')}"
        + (f", {table('upstream' + small)} with {small[1:-3]}" if small else "")
        + f"; 6.12's {table('unpatched')}; the series': {table('patched')}, its "
        "per-process array head in signal_struct not counted by any column). Dense: "
        f"{b('e.memory.dense', 'patched')} / {wt('e.memory.dense', 'patched')} patched, "
        f"{b('e.memory.dense', 'upstream')} / {wt('e.memory.dense', 'upstream')} upstream. "
        f"Upstream's case, {p('e.memory.offset', 'n')} timers "
        f"{p('e.memory.offset', 'offset')} IDs apart: {b('e.memory.offset', 'patched')} / "
        f"{wt('e.memory.offset', 'patched')} patched, {b('e.memory.offset', 'upstream')} / "
        f"{wt('e.memory.offset', 'upstream')} upstream ({wt_ratio('e.memory.offset')} with "
        f"the table). There the xarray needs a leaf node per timer plus interior nodes, as "
        f"upstream said. {p('e.memory.sparse', 'n')} IDs spread over "
        f"{p('e.memory.sparse', 'span')}: {b('e.memory.sparse', 'patched')} / "
        f"{wt('e.memory.sparse', 'patched')} vs {b('e.memory.sparse', 'upstream')} / "
        f"{wt('e.memory.sparse', 'upstream')} ({wt_ratio('e.memory.sparse')}). Counting "
        "all of upstream's table assumes these are the only timers of the system: "
        + "; ".join(
            f"with {g['sizing']} possible CPUs {g['note']}"
            for g in report.goals(results)
            if g["goal"] == "sparse" and g["note"]
        )
        + (
            f"; for the {p('e.memory.sparse', 'n')} IDs spread over "
            f"{p('e.memory.sparse', 'span')}, {note}"
            if (note := table_note("e.memory.sparse"))
            else ""
        )
        + ". "
        + (
            f"{p('e.memory.spread', 'n')} IDs spread over the whole 2^31 space "
            f"(interior nodes for nearly every timer): "
            f"{b('e.memory.spread', 'patched')} / {wt('e.memory.spread', 'patched')} vs "
            f"{b('e.memory.spread', 'upstream')} / {wt('e.memory.spread', 'upstream')} "
            f"({wt_ratio('e.memory.spread')} with the table, {table_note('e.memory.spread')}). "
            if _k(s, "e.memory.spread", "patched") is not None
            else "A layout where every timer has interior nodes of its own (IDs spread "
            "over the whole 2^31 space) was not measured. "
        )
        + "The cost is "
        "bounded by RLIMIT_SIGPENDING (every timer preallocates a sigqueue) and charged to "
        "the process's memory cgroup."
    )

    def r(case: str, other: str) -> str:
        """Instructions first where the loop was counted: they decide below 1.5x."""
        v = s.get(case, {}).get("ratios", {}).get(f"patched/{other}")
        i = s.get(case, {}).get("insn_ratios", {}).get(f"patched/{other}")
        if i is not None:
            return f"{i:.2f}x in instructions" + (f" ({v:.2f}x in time)" if v is not None else "")
        return "-" if v is None else f"{v:.2f}x in time (not counted)"

    vcpus = int(meta.get("vcpus") or 2)
    ts = (vcpus, 4 * vcpus)
    contention = _wrap(
        f"Not measurable here: with {vcpus} vCPUs running, workers queue for a CPU "
        "rather than contend for a lock, so the loops below measure what each "
        "operation costs, not contention. The create+delete loop, patched relative to "
        f"upstream (lower is better; {p(f't.churn.{vcpus}threads', 'iters')} pairs per "
        "worker): "
        + ", ".join(
            f"{t} threads {r(f't.churn.{t}threads', 'upstream')}, {t} processes "
            f"{r(f't.churn.{t}procs', 'upstream')}"
            for t in ts
        )
        + f". Creating {p(f't.create.{vcpus}threads', 'n')} timers per worker: "
        + ", ".join(
            f"{t} threads {r(f't.create.{t}threads', 'upstream')}, {t} processes "
            f"{r(f't.create.{t}procs', 'upstream')}"
            for t in ts
        )
        + ". Where time and instructions disagree, the instructions decide: the "
        "times of one case move between rounds far more than its counts (see the "
        "spread below the table). By design, unrelated processes never share the "
        "xarray's lock, while upstream's per-bucket locks are shared by every process "
        "whose timers hash into the bucket; what that is worth needs more CPUs than "
        "this machine has. What costs in an xarray is "
        "its walks, one to create, one to look the timer up and one to remove it, where "
        'a hash hit is one bucket (see "What the xarray costs" for the node churn patch '
        "4 removes). The single-threaded "
        f"pair costs {r('a.pairs', 'upstream')} of upstream's and "
        f"{r('a.pairs', 'unpatched')} of unpatched 6.12's."
    )

    per_lookup = {
        k: c["median"] for k in KERNEL_ORDER if (c := report.counted(results, "c.lookup.100k", k))
    }
    nb = report.goals(results)
    neighbour = next((g for g in nb if g["goal"] == "neighbour" and g["worst"]), None)
    lookup = _wrap(
        f"timer_getoverrun() on random IDs with {p('c.lookup.100k', 'n')} timers in one "
        "process"
        + (
            ": " + ", ".join(f"{v:.0f} instructions per lookup {k}" for k, v in per_lookup.items())
            if per_lookup
            else ""
        )
        + f"; patched relative to upstream: {r('c.lookup.100k', 'upstream')}; "
        f"relative to unpatched 6.12: {r('c.lookup.100k', 'unpatched')}"
        + (
            f"; with {small[1:-3]} possible CPUs (upstream's hash: "
            f"{kernels.get('upstream' + small, {}).get('timer_hash_buckets', '?')} buckets; "
            "that sizing was not counted) "
            + (
                f"{v:.2f}x in time"
                if (
                    v := s.get("c.lookup.100k", {})
                    .get("ratios", {})
                    .get(f"patched{small}/upstream{small}")
                )
                else "-"
            )
            if small
            else ""
        )
        + ". A lookup here costs one walk of the tree, which does not grow with the "
        "number of timers but is longer than one hash bucket. A victim process's "
        f"lookups while a neighbour holds {p('d.neighbour', 'hold')} timers, its time "
        "next to the neighbour over its time alone: "
        f"{_fmt(_k(s, 'd.neighbour', 'patched'), 'ratio')} patched, "
        f"{_fmt(_k(s, 'd.neighbour', 'unpatched'), 'ratio')} unpatched, "
        f"{_fmt(_k(s, 'd.neighbour', 'upstream'), 'ratio')} upstream"
        + (
            "; counted, its slowdown is "
            + ", ".join(
                f"{w['median'] / a['median']:.3f}x {k}"
                for k in KERNEL_ORDER
                if (w := report.counted(results, "d.neighbour", k, "with_neighbour"))
                and (a := report.counted(results, "d.neighbour", k, "alone"))
            )
            + f" ({neighbour['worst']:.2f}x upstream's), and {neighbour['note']}"
            if neighbour and neighbour["by"] == "instructions"
            else ""
        )
        + "."
    )
    legacy_txt = legacy_sentence(results)
    return {
        "gaps": gaps_text(results),
        "legacy_time": legacy_txt,
        "accel": f"QEMU {results['meta'].get('accel', '?').upper()}, "
        f"{results['meta'].get('vcpus')} vCPUs running of {results['meta'].get('possible_cpus')} "
        f"possible, {results['meta'].get('rounds')} timed rounds at scale "
        f"{results['meta'].get('scale')}",
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
        f"{pair['n']} rounds of {n} pairs, {report.human(pair['min'], 'ns_per_pair')}-"
        f"{report.human(pair['max'], 'ns_per_pair')}, scale {meta.get('scale')}), which "
        "extrapolates "
        f"linearly to {report.seconds(total)} for one timer with ID 2^31 - 2"
    )
    if exact:
        text += (
            f"; with SIGEV_TIMER_ID that create took "
            f"{report.human(exact['median'], 'ns')} (measured)"
        )
    return textwrap.fill(text + ".", width=72, break_on_hyphens=False)


def gaps_text(results: dict[str, Any]) -> str:
    """Where the series is behind upstream, from ``report.goals()``.

    Every goal the run does not meet, with its measured ratio and what
    decided it; the goals met are named too, so that the paragraph is
    never silent about one.
    """
    missed, met, undecided = [], [], []
    for g in report.goals(results):
        where = f"{g['sizing']} possible CPUs"
        span = f", {g['range'][0]:.2f}-{g['range'][1]:.2f} over rounds" if g["range"] else ""
        note = f"; {g['note']}" if g["note"] else ""
        if g["met"]:
            met.append(f"{g['what']} ({where}: {g['worst']:.2f}x by {g['by']}{span}{note})")
        elif g["worst"] is None:
            missed.append(f"{g['what']} ({where}): not measured")
        elif g["verdict"] == "undecided":
            undecided.append(f"{g['what']} ({where}): {g['worst']:.2f}x by {g['by']}{span}{note}")
        else:
            missed.append(
                f"{g['what']} ({where}): {g['worst']:.2f}x by {g['by']}{span}, "
                + ", ".join(f"{c} {v:.2f}x" for c, v, _ in g["cases"])
                + note
            )
    text = "Not met in this run: " + ("; ".join(missed) if missed else "none") + "."
    if undecided:
        text += (
            " Undecided (the rounds fall on both sides of the target): "
            + "; ".join(undecided)
            + "."
        )
    if met:
        text += " Met: " + "; ".join(met) + "."
    if losses := losses_text(results):
        text += " " + losses
    return _wrap(text)


def losses_text(results: dict[str, Any]) -> str:
    """Every case of each sizing where the series costs more than upstream.

    The goals pick four cases; a reviewer also wants the others the series
    loses, CRIU's own restore among them, each with what decided it:
    instructions where counted (each counted phase of a case, e.g. the
    create phase of t.getoverrun.*), else time with its range over rounds,
    "undecided" where the rounds fall on both sides of 1.0.
    """
    parts = []
    for sfx in report.suffixes(results):
        lost = []
        for row in report.rows(results, sfx):
            name = row["name"]
            if row["metric"] == "ratio":  # the neighbour: a goal of its own
                continue
            i = row["insn_ratios"].get("patched/upstream")
            p, u = row["cells"].get("patched"), row["cells"].get("upstream")
            pi, ui = row["insns"].get("patched"), row["insns"].get("upstream")
            counted_span = report.ratio_range(pi, ui) if i is not None and pi and ui else None
            if counted_span and counted_span[0] <= 1.0 <= counted_span[1]:
                # Counted rounds on both sides of 1.0: no verdict either way
                lo, hi = counted_span
                lost.append(f"{name} {i:.2f}x (undecided, {lo:.2f}-{hi:.2f} over counted rounds)")
            elif i is not None:
                if i > 1.0:
                    lost.append(f"{name} {i:.2f}x")
            elif p and u and p["median"] / u["median"] > 1.0:
                t = p["median"] / u["median"]
                if report.UNITS.get(row["metric"]) == "B":
                    lost.append(f"{name} {t:.2f}x (bytes, without the table)")
                else:
                    lo, hi = report.ratio_range(p, u)
                    what = "time only, undecided" if lo <= 1.0 else "time only"
                    lost.append(f"{name} {t:.2f}x ({what}, {lo:.2f}-{hi:.2f} over rounds)")
            spec = next(c for c in results["cases"] if c["name"] == name)
            for window, cells in (
                results["summary"].get(name, {}).get("insns_by_window", {}).items()
            ):
                pw, uw = cells.get("patched" + sfx), cells.get("upstream" + sfx)
                if window == spec.get("window") or not (pw and uw):
                    continue
                if (r := pw["median"] / uw["median"]) > 1.0:
                    lost.append(f"{name} {window} phase {r:.2f}x")
        if lost:
            cpus = sfx.strip("-").replace("cpu", "") or str(results["meta"].get("possible_cpus"))
            parts.append(f"with {cpus} possible CPUs: " + ", ".join(lost))
    if not parts:
        return ""
    return (
        "Every case where the series costs more than upstream (instructions where "
        "counted): " + "; ".join(parts) + "."
    )


def drift_text(drift: list[dict[str, Any]], release: dict[str, Any] | None = None) -> str:
    """The counts' noise between runs, from every committed run that counted.

    Within one run the rounds of a case lie close together; one image
    counted in separate runs moves more, and a reviewer has to know by
    how much before reading a difference of a few per cent.  Images of the
    release run counted nowhere else are named: their drift is unknown.
    """
    if not drift:
        return ""
    runs = sorted({r for d in drift for r in d["runs"]})
    text = (
        "Between runs: the same kernel image counted in separate runs ("
        + ", ".join(f"bench-data/{r}" for r in runs)
        + ") differed, per case, by at most "
        + ", ".join(f"{d['case']} {100 * d['drift']:.1f} %" for d in drift)
        + " (max/min - 1 of the run medians). Differences smaller than that between "
        "runs are not claimed here."
    )
    if release:
        seen = {d["image"] for d in drift}
        alone = sorted(
            label
            for label, k in release["kernels"].items()
            if k.get("image") and k["image"] not in seen and "-" not in label
        )
        if alone:
            text += (
                " No other run counted these images with the release run's "
                "benchmark program, so their drift between runs is unknown: "
                + ", ".join(alone)
                + "."
            )
    return textwrap.fill(text, width=72, break_on_hyphens=False)


#: The series with and without its reserved-slot patch, side by side
#: ("without" and "patched"): what the cover letter says patch 4 gains.
RESERVED = REPO / "bench-data" / "reserved-slot" / "results.json"
#: The series up to patch 4 and up to patch 5, side by side ("without" and
#: "patched"): what patch 5's changelog quotes.
FAST_PATH = REPO / "bench-data" / "fast-path" / "results.json"


def _run(path: Path, what: str) -> dict[str, Any]:
    """A committed side-by-side run, summarized; missing is an error naming it."""
    if not path.exists():
        raise HarnessError(
            f"{path.relative_to(REPO)} is missing: {what} quotes it",
            hint="rerun the comparison its README section names",
        )
    data: dict[str, Any] = json.loads(path.read_text())
    data["summary"] = bench.summarize(data)
    return data


def _insns(data: dict[str, Any], case: str, label: str) -> float | None:
    cell = data["summary"].get(case, {}).get("insns", {}).get(label)
    return None if cell is None else float(cell["median"])


def _profile(data: dict[str, Any], case: str, label: str) -> tuple[dict[str, float], int]:
    """Per kernel function, the median over counted rounds of @case's loop.

    Each round keeps its largest functions only (``--profile``); a
    function missing from a round counts 0 there.  Returns the medians
    (without "(others)") and the number of rounds.
    """
    per_round: list[dict[str, float]] = []
    for r in data["rounds"]:
        if r["kernel"] == label and r.get("mode") == "insns":
            metric: dict[str, Any] = next(
                iter(r["cases"].get(case, {}).get("insns", {}).values()), {}
            )
            if funcs := dict(metric.get("functions", [])):
                per_round.append(funcs)
    names = {f for funcs in per_round for f in funcs} - {"(others)"}
    return (
        {f: statistics.median(funcs.get(f, 0.0) for funcs in per_round) for f in names},
        len(per_round),
    )


def profile_diff(
    data: dict[str, Any], case: str, label: str, base: str, name: str, what: str = "pair"
) -> str:
    """Where @label spends more than @base (called @name) per @what of @case."""
    mine, rounds = _profile(data, case, label)
    theirs, _ = _profile(data, case, base)
    if not mine or not theirs:
        return ""
    diff = sorted(
        ((f, mine.get(f, 0.0) - theirs.get(f, 0.0)) for f in set(mine) | set(theirs)),
        key=lambda kv: -kv[1],
    )
    text = (
        f"The kernel functions where this series spends most beyond {name}, "
        f"instructions per {what} (median of {rounds} counted round(s); each round keeps "
        "its largest functions only): " + ", ".join(f"{f} {d:+.0f}" for f, d in diff[:8] if d > 0)
    )
    total_mine = _insns(data, case, label)
    total_theirs = _insns(data, case, base)
    if total_mine is not None and total_theirs is not None and total_mine > total_theirs:
        kept = sum(d for _, d in diff)
        text += (
            f"; of the {total_mine - total_theirs:.0f} more in all, "
            f"{total_mine - total_theirs - kept:.0f} fall outside the functions kept"
        )
    return text + "."


def reservation_text(
    path: Path = RESERVED,
    release: dict[str, Any] | None = None,
    fast_path: Path = FAST_PATH,
    image_drift: list[dict[str, Any]] | None = None,
) -> str:
    """What the create+delete pair costs, what patch 4 saves, what is left.

    ``image_drift`` (:func:`report.image_drift`): a gain of patch 5 within
    the drift of its case between runs is marked as no measured gain.

    From three runs: the series without and with its reserved-slot patch
    in a run of their own (``bench-data/reserved-slot``), the same for
    patch 5's fast path (``bench-data/fast-path``), and the
    release run for upstream's count and the profile of what remains.
    """
    data = _run(path, "the cover letter")
    meta = data["meta"]
    cells = []
    for name, label in (
        ("a.pairs", "from ID 0"),
        *((f"a.pairs_at.{d}", f"at {d}") for d, _ in PAIR_DEPTHS),
        ("t.churn.2threads", "in 2 threads"),
        ("t.churn.2procs", "in 2 processes"),
    ):
        without, with_ = _insns(data, name, "without"), _insns(data, name, "patched")
        if without is not None and with_ is not None:
            cells.append(f"{label} {without:.0f} -> {with_:.0f}")
    if not cells:
        raise HarnessError(
            f"{path.relative_to(REPO)} has no instruction counts for the pair cases",
            hint="rerun that comparison with --insn-rounds 1",
        )
    same = []
    lookup = [_insns(data, "c.lookup.100k", k) for k in ("without", "patched")]
    if None not in lookup:
        same.append(f"a lookup among 100k timers {lookup[0]:.0f} -> {lookup[1]:.0f} instructions")
    for name in ("e.memory.dense", "e.memory.sparse"):
        cell = data["summary"].get(name, {}).get("kernels", {})
        if "without" in cell and "patched" in cell:
            same.append(
                f"{name} {cell['without']['median']:.0f} -> {cell['patched']['median']:.0f} "
                "bytes per timer"
            )
    text = (
        "A process creating and deleting one timer at a time (CRIU's legacy restore "
        "loop) would free on every delete the nodes on the path to the timer's ID which "
        "no other timer shares, and the next create would allocate them again: node "
        "allocations and RCU-deferred node frees per pair. Patch 4 keeps a deleted "
        "timer's slot reserved. Guest "
        "instructions per pair without and with it, in a run of their own "
        f"(bench-data/reserved-slot/, QEMU {str(meta.get('accel', '?')).upper()}, "
        f"{meta.get('insn_rounds')} counted round(s), scale {meta.get('scale')}): "
        + ", ".join(cells)
        + "; unchanged by it: "
        + "; ".join(same)
        + "."
    )
    fast = _run(fast_path, "the cover letter")
    drift = {d["case"]: d["drift"] for d in image_drift or []}
    moved = []
    for name, label in (("a.pairs", "a pair"), ("t.create.2threads", "a create in 2 threads")):
        without, with_ = _insns(fast, name, "without"), _insns(fast, name, "patched")
        if without is not None and with_ is not None:
            moved.append(f"{label} {without:.0f} -> {with_:.0f}")
            if name in drift and abs(with_ / without - 1) <= drift[name]:
                # The rule the drift paragraph states: no claim below the drift
                moved[-1] += (
                    f" (within the {100 * drift[name]:.1f} % one image's count of "
                    "this case moved between runs: not a measured gain)"
                )
    if moved:
        text += (
            " Patch 5 takes the cursor's slot without a search when it is free: "
            + ", ".join(moved)
            + " instructions (bench-data/fast-path/, the series up to patch 4 and up "
            f"to patch 5, {fast['meta'].get('insn_rounds')} counted round(s))."
        )
    if release:
        mine, up = _insns(release, "a.pairs", "patched"), _insns(release, "a.pairs", "upstream")
        rounds = release["meta"].get("insn_rounds")
        if mine and up:
            text += (
                f" In the release run ({rounds} counted rounds) the pair costs {mine:.0f} "
                f"instructions with this series and {up:.0f} with upstream "
                f"({mine / up:.2f}x)."
            )
        if diff := profile_diff(release, "a.pairs", "patched", "unpatched", "6.12"):
            text += " " + diff
        if diff := profile_diff(release, "a.pairs", "patched", "upstream", "upstream"):
            text += (
                " Against upstream, whose slab and RCU freeing differ from 6.12's as "
                "well: " + diff[0].lower() + diff[1:]
            )
    return textwrap.fill(text, width=72, break_on_hyphens=False)


def exit_text(release: dict[str, Any]) -> str:
    """What an exit with many timers costs: a loss the goals do not cover.

    exit_itimers() erases the timers one at a time, each a walk of the tree
    (and the walk to find the next), where 6.12 unlinks each from its hash
    bucket; a reviewer weighing the series should see that price beside the
    pair's. Instructions per timer where the exit was counted (runs before
    its window existed have times only).
    """
    summary = release["summary"].get("f.exit", {})
    cells = summary.get("kernels", {})
    if not all(k in cells for k in ("patched", "unpatched", "upstream")):
        return ""
    spec: dict[str, Any] = next((c for c in release["cases"] if c["name"] == "f.exit"), {})
    n = int(spec.get("params", {}).get("n", 0))
    ms = {k: cells[k]["median"] / 1e6 for k in ("patched", "unpatched", "upstream")}
    meta = release["meta"]
    insns = {k: _insns(release, "f.exit", k) for k in ("patched", "unpatched", "upstream")}
    counted = ""
    if all(insns.values()):
        p, unp, up = (float(insns[k] or 0) for k in ("patched", "unpatched", "upstream"))
        counted = (
            f"; counted ({meta.get('insn_rounds')} round(s)), {p:.0f} instructions per "
            f"timer with this series, {unp:.0f} on 6.12 and {up:.0f} upstream "
            f"({p / unp:.2f}x and {p / up:.2f}x)"
        )
    return textwrap.fill(
        f"Exiting with {n} timers ({str(meta.get('accel', '?')).upper()}, "
        f"median of {meta.get('rounds')} timed round(s), scale {meta.get('scale')}) takes "
        f"{ms['patched']:.0f} ms with this series, {ms['unpatched']:.0f} ms on "
        f"6.12 and {ms['upstream']:.0f} ms upstream ({ms['patched'] / ms['unpatched']:.2f}x "
        f"and {ms['patched'] / ms['upstream']:.2f}x){counted}. exit_itimers() finds "
        "each timer with a walk from the root (xa_for_each()) and erases it with "
        "another (xa_cmpxchg()), where 6.12 takes each from the process's list and "
        "unlinks it from its hash bucket"
        + (
            f". {diff}"
            if (
                diff := profile_diff(
                    release, "f.exit", "patched", "unpatched", "6.12", "exited timer"
                )
            )
            else "."
        )
        + " The window ends when the parent has reaped the process, not after an "
        "RCU grace period: frees deferred by RCU fall inside it or after it, in "
        "either kernel. Erasing the timers in one pass of the array, not two "
        "walks each, is left for a later version.",
        width=72,
        break_on_hyphens=False,
    )


#: Rows of patch 4's changelog table: (case, label), instructions per operation
CHANGELOG_INSNS = (
    ("a.pairs", "pair from ID 0"),
    ("a.pairs_at.1e3", "pair at ID 10^3"),
    ("a.pairs_at.1e5", "pair at ID 10^5"),
    ("a.pairs_at.1e7", "pair at ID 10^7"),
    ("a.pairs_at.2^31-1e5", "pair at ID 2^31 - 10^5"),
    ("t.churn.2threads", "pair, 2 threads"),
    ("t.churn.2procs", "pair, 2 processes"),
    ("c.lookup.100k", "lookup, 100k timers"),
)
#: ... and bytes per timer
CHANGELOG_BYTES = (
    ("e.memory.dense", "10000 dense, x4 procs"),
    ("e.memory.sparse", "1000 in 1000000 IDs, x16"),
)


#: Rows of patch 5's changelog table (instructions per operation)
#: (the pair at other depths moved as much between runs of one kernel as
#: patch 5 changes it: left out)
FAST_PATH_INSNS = (
    CHANGELOG_INSNS[0],
    *CHANGELOG_INSNS[5:7],
    ("t.create.2threads", "create, 2 threads"),
    ("t.create.2procs", "create, 2 processes"),
)


def changelog_tables(
    path: Path = RESERVED,
    insns: tuple[tuple[str, str], ...] = CHANGELOG_INSNS,
    sizes: tuple[tuple[str, str], ...] = CHANGELOG_BYTES,
) -> str:
    """A patch's changelog tables, rendered from its without/with run.

    Patch 4's changelog quotes ``RESERVED`` (the default), patch 5's
    ``FAST_PATH`` with ``FAST_PATH_INSNS`` and no byte rows.  A host test
    compares each patch with this rendering, so a rerun of a comparison
    that is not carried into the commit message, or a figure typed by
    hand, fails CI.
    """
    data = _run(path, "a patch's changelog")
    lines = [f"  {'instructions per operation':<30} {'without':>7} {'with':>6}"]
    for case, label in insns:
        a, b = _insns(data, case, "without"), _insns(data, case, "patched")
        if a is None or b is None:
            raise HarnessError(
                f"{path.relative_to(REPO)} has no instruction count for {case}",
                hint="rerun that comparison with --insn-rounds 1",
            )
        lines.append(f"  {label:<30} {a:>7.0f} {b:>6.0f}")
    if sizes:
        lines += ["", f"  {'bytes per timer':<30} {'without':>7} {'with':>6}"]
    for case, label in sizes:
        cell = data["summary"].get(case, {}).get("kernels", {})
        if "without" not in cell or "patched" not in cell:
            raise HarnessError(
                f"{path.relative_to(REPO)} has no {case} for both kernels",
                hint="rerun that comparison with the e.memory cases",
            )
        lines.append(
            f"  {label:<30} {cell['without']['median']:>7.0f} {cell['patched']['median']:>6.0f}"
        )
    return "\n".join(lines) + "\n"


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
    """The ``series check`` record: its name and per-patch verdicts.

    Exactly one ``.txt`` record: modification times mean nothing in a
    fresh clone, so "the newest" could not be told; older walks are kept
    as ``.log``.
    """
    records = sorted(directory.glob("*.txt"))
    if len(records) != 1:
        raise HarnessError(
            f"{len(records)} series check records (*.txt) in {directory}, not one",
            hint="run ./ptimers series check, keep its output there as <commit>.txt "
            "and rename older records to .log",
        )
    text = records[-1].read_text()
    lines = [ln for ln in text.splitlines() if ln[:4].isdigit() and ": checkpatch" in ln]
    if not lines or "series check passed" not in text:
        raise HarnessError(f"{records[-1]} is not a passing series check record")
    return records[-1].name, lines


def _shown(path: Path) -> str:
    """A path as the cover letter names it: relative to the repository if inside."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


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
        f"(-compat; {_shown(tests_dir)}/test-summary.json):"
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


# The committed benchmark run the cover letter quotes (./ptimers bench --out bench-data/bench)
RELEASE_BENCH = REPO / "bench-data" / "bench" / "results.json"


def render(results_path: Path | None = None, tests_dir: Path | None = None) -> str:
    """The branch description: subject paragraph, then the body."""
    results_path = results_path or RELEASE_BENCH
    tests_dir = tests_dir or REPO / "results"
    if not results_path.exists():
        raise HarnessError(
            f"{results_path} does not exist: the cover letter quotes a benchmark run",
            hint="run ./ptimers bench --out bench-data/bench (or give --bench FILE)",
        )
    results = json.loads(results_path.read_text())
    # Derived data comes from the raw rounds, never from an older summary
    results["summary"] = bench.summarize(results)
    if failed := bench.failures(results):
        raise HarnessError(
            f"{results_path} has {len(failed)} failed case run(s), e.g. {failed[0]}",
            hint="fix and rerun ./ptimers bench before exporting the series",
        )
    ctx = answers(results)
    ctx["testing"] = testing_text(tests_dir)
    # Every committed counted run, summarized once for both paragraphs
    drift = report.image_drift(sorted((REPO / "bench-data").glob("*/results.json")))
    ctx["parked"] = reservation_text(release=results, image_drift=drift)
    ctx["exit_cost"] = exit_text(results)
    ctx["drift"] = drift_text(drift, release=results)
    env = report._env()
    return env.get_template("cover-letter.txt.j2").render(**ctx)
