"""Benchmarks: unpatched 6.12, patched 6.12 and upstream, side by side.

Each kernel is built with the same config request and booted in turn with
identical QEMU settings; the same ``ptbench`` binary (built once) runs the
same cases with the same parameters.  Rounds alternate the kernel order so
slow drift of the host (thermal, a competing job) spreads over all kernels
instead of biasing one.  Nothing here asserts on time: the output is data
(``results.json``) and the reports rendered from it.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import platform
import re
import shlex
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import helper as helper_mod
from . import insncount
from .errors import GuestError, HarnessError
from .guest import Guest
from .vm import VirtmeVM

INT_MAX = 2**31 - 1
# Where a.pairs_at.* places the cursor (label, first ID of the loop)
PAIR_DEPTHS = (("1e3", 10**3), ("1e5", 10**5), ("1e7", 10**7), ("2^31-1e5", 2**31 - 10**5))


@dataclass(frozen=True)
class Case:
    """One benchmark invocation: ptbench CASE key=value..."""

    name: str  # unique label in the results
    case: str  # ptbench case
    params: dict[str, Any]
    metric: str  # the field compared across kernels
    needs: str = ""  # "flag" | "prctl" | "" (probed per kernel)
    lower_is_better: bool = True
    extra: tuple[str, ...] = ()  # further fields summarised like the metric
    # ptbench's instruction window whose count per operation goes beside
    # the metric ("" for cases that time no loop of syscalls)
    window: str = ""

    def argv(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.case} {args}".strip()


def cases(scale: float = 1.0, vcpus: int = 2) -> list[Case]:
    """The benchmark matrix; ``scale`` shrinks counts for quick runs."""

    def n(x: int) -> int:
        return max(10, int(x * scale))

    out = [Case("a.pairs", "pairs", {"n": n(100_000)}, "ns_per_pair", window="pairs")]
    # The same loop with the cursor placed by an exact create: an xarray's
    # per-pair cost depends on the tree's height at the cursor.
    for label, start in PAIR_DEPTHS:
        out.append(
            Case(
                f"a.pairs_at.{label}",
                "pairs",
                {"n": n(20_000), "start": start, "exact": "auto"},
                "ns_per_pair",
                needs="exact",
                window="pairs",
            )
        )
    for how in ("flag", "prctl"):
        out.append(
            Case(
                f"a.exact_high.{how}",
                "exact_high",
                {"exact": how, "id": INT_MAX - 1, "reps": 20},
                "ns",
                needs=how,
                window="exact",
            )
        )
    sparse = {"count": n(1000), "span": n(1_000_000)}
    out.append(
        Case(
            "b.sparse.legacy",
            "sparse_restore",
            {"mode": "legacy", **sparse},
            "elapsed_ns",
            window="restore",
        )
    )
    for how in ("flag", "prctl"):
        out.append(
            Case(
                f"b.sparse.{how}",
                "sparse_restore",
                {"mode": how, **sparse},
                "elapsed_ns",
                needs=how,
                window="restore",
            )
        )
    for count in (20_000, 50_000, 100_000):
        out.append(
            Case(
                f"c.lookup.{count // 1000}k",
                "lookup",
                {"n": n(count), "lookups": n(200_000)},
                "ns_per_lookup",
                window="lookups",
            )
        )
    out.append(
        Case("d.neighbour", "neighbour", {"hold": n(60_000), "lookups": n(200_000)}, "ratio")
    )
    # Memory: the slab delta of a few thousand objects is within SLUB's
    # per-CPU slack (and upstream's per-CPU sheaves), so each pattern is
    # built in several processes at once and these sizes do not shrink
    # with --scale; 3 repetitions, median.  Offset and sparse layouts need
    # exact creates (6.12's legacy loop would take millions of pairs, and
    # its per-timer cost does not depend on the IDs).
    mem = {"reps": 3}
    out += [
        Case(
            "e.memory.dense",
            "memory",
            {"pattern": "dense", "n": 10_000, "procs": 4, **mem},
            "timer_caches_bytes_per_timer",
        ),
        Case(
            "e.memory.churn",
            "memory",
            {"pattern": "churn", "n": 10_000, "procs": 4, **mem},
            "timer_caches_bytes_per_timer",
        ),
        # Upstream's example: 2048 timers 512 IDs apart
        Case(
            "e.memory.offset",
            "memory",
            {"pattern": "offset", "n": 2048, "offset": 512, "exact": "auto", "procs": 16, **mem},
            "timer_caches_bytes_per_timer",
            needs="exact",
        ),
        Case(
            "e.memory.sparse",
            "memory",
            {
                "pattern": "sparse",
                "n": 1000,
                "span": 1_000_000,
                "exact": "auto",
                "procs": 16,
                **mem,
            },
            "timer_caches_bytes_per_timer",
            needs="exact",
        ),
        # The xarray's worst layout: IDs so far apart that each timer has
        # interior nodes of its own
        Case(
            "e.memory.spread",
            "memory",
            {
                "pattern": "sparse",
                "n": 1000,
                "span": 2**31,
                "exact": "auto",
                "procs": 16,
                **mem,
            },
            "timer_caches_bytes_per_timer",
            needs="exact",
        ),
    ]
    # His sizes: the t.* cases do not shrink with --scale either
    out += tglx_cases(vcpus)
    out += [
        Case("f.proc_read", "proc_read", {"n": n(10_000), "reads": 10}, "ns_per_read"),
        Case("f.exit", "exit", {"n": n(100_000)}, "exit_ns", window="exit"),
    ]
    return out


def tglx_cases(vcpus: int) -> list[Case]:
    """The 2025 hash rework's benchmark, in shape (commit 1535cb80286e).

    One process creating N timers then calling timer_getoverrun() on each;
    T threads and T processes creating 20k timers each; the create+delete
    loop 100k times in T threads and in T processes; T = vCPUs and 4x.
    Totals in ms like his table.
    """
    out = []
    for count in (20_000, 50_000, 100_000):
        out.append(
            Case(
                f"t.getoverrun.{count // 1000}k",
                "create_getoverrun",
                {"n": count},
                "getoverrun_ns",
                extra=("create_ns",),
                window="getoverrun",
            )
        )
    for t in (vcpus, 4 * vcpus):
        shapes: tuple[tuple[str, str, str, int], ...] = (
            ("create", "create_many", "n", 20_000),
            ("churn", "churn", "iters", 100_000),
        )
        for what, case, key, size in shapes:
            for kind in ("threads", "procs"):
                out.append(
                    Case(
                        f"t.{what}.{t}{kind}",
                        case,
                        {key: size, kind: t},
                        "elapsed_ns",
                        window="workers",
                    )
                )
    return out


def select(matrix: list[Case], only: list[str] | None) -> list[Case]:
    """The cases whose names match one of ``only`` (all without patterns)."""
    if not only:
        return matrix
    picked = [c for c in matrix if any(fnmatch.fnmatchcase(c.name, p) for p in only)]
    if not picked:
        names = ", ".join(c.name for c in matrix)
        raise HarnessError(f"--cases {' '.join(only)} matches no benchmark case; cases: {names}")
    return picked


@dataclass
class KernelUnderTest:
    label: str  # unpatched | patched | upstream
    image: Path
    source: str  # package and version, or tree
    features: dict[str, bool] = field(default_factory=dict)
    release: str = ""
    tree: Path | None = None  # the source it was built from, when known


def _resolve_exact(params: dict[str, Any], feats: dict[str, bool]) -> dict[str, Any]:
    """``exact=auto``: the kernel's best way to create an exact ID."""
    if params.get("exact") != "auto":
        return params
    how = "flag" if feats.get("flag") else "prctl" if feats.get("prctl") else "none"
    return {**params, "exact": how}


def lacks(case: Case, feats: dict[str, bool]) -> str | None:
    """Why the kernel (``ptbench --probe``'s answer) cannot run ``case``, or None.

    One place for the rule, so that the benchmark and its smoke test agree
    (the smoke test once read ``needs="exact"`` as a feature of that name
    and skipped those cases on every kernel).
    """
    if case.needs == "exact":
        if not (feats.get("flag") or feats.get("prctl")):
            return "kernel lacks SIGEV_TIMER_ID and the prctl"
    elif case.needs and not feats.get(case.needs):
        return f"kernel lacks {case.needs}"
    return None


def run_case(guest: Guest, binary: Path, case: Case, feats: dict[str, bool]) -> dict[str, Any]:
    """Run one case in the guest; return its JSON (or an error record)."""
    if (why := lacks(case, feats)) is not None:
        return {"skipped": why}
    params = _resolve_exact(case.params, feats)
    argv = Case(case.name, case.case, params, case.metric).argv()
    res = guest.run(f"{shlex.quote(str(binary))} {argv}", timeout=1800)
    try:
        data: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no JSON from ptbench (exit {res.status}): {res.stderr[-300:]}"}
    return data


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


# A memory figure may fall short of the object floor by slab accounting
# slack (measured here: up to 2% for upstream with 16000-40000 timers, the
# objects its per-CPU caches hold when the "before" sample is taken), not
# by more: 0 B or half an object per timer is noise, not a result.
FLOOR_SHARE = 0.95


def failures(results: dict[str, Any]) -> list[str]:
    """Every case run that failed: an error, no value, or a value that cannot be true.

    A kernel that lacks a case's interface says so (``skipped``); anything
    else without a number is a failure, never a "-" in the table.  A memory
    figure below one timer object and its sigqueue is slab noise (the main
    job once reported 0 B per timer for upstream) and fails too.
    """
    metric = {c["name"]: c["metric"] for c in results["cases"]}
    window = {c["name"]: c.get("window", "") for c in results["cases"]}
    out = []
    for r in results["rounds"]:
        where = f"round {r['round'] + 1}, {r['kernel']}"
        if r.get("mode") == "insns":
            where += " (instruction count)"
        for name, data in r["cases"].items():
            if "skipped" in data:
                continue
            value = data.get(metric.get(name, ""))
            if "error" in data or not isinstance(value, (int, float)):
                why = data.get("error") or f"no {metric.get(name)} in {sorted(data)}"
                out.append(f"{where}, {name}: {why}")
            elif (
                r.get("mode") == "insns"
                and window.get(name)
                and not isinstance(data.get("insns_per_op"), float)
            ):
                out.append(f"{where}, {name}: no instruction count: {data.get('insns_error')}")
            elif data.get("id_ok") is False:
                out.append(f"{where}, {name}: the exact create did not return the ID asked for")
            elif (floor := data.get("timer_object_bytes")) and value < FLOOR_SHARE * floor:
                out.append(
                    f"{where}, {name}: {value:.1f} B per timer is less than a timer object "
                    f"with its separate sigqueue, if any ({floor} B): slab noise, not a "
                    "measurement"
                )
    return out


def sibling(label: str, base: str, results: dict[str, Any]) -> str:
    """``base``'s label in the same sizing as ``label`` (e.g. patched-2cpu)."""
    k = results["kernels"][label]
    for other, info in results["kernels"].items():
        if info.get("base", other) == base and info.get("possible_cpus") == k.get("possible_cpus"):
            return str(other)
    return ""


#: Fewer operations than this in a case's counted window(s) of a round and
#: the count cannot decide: it counts every vCPU, and one exact create in a
#: fresh child (a.exact_high, 20 of them) drowns in the fork, the parent's
#: wait and background work (a plain create's window: about ten times a
#: create's instructions elsewhere).  Such a case is compared by time.
MIN_COUNTED_OPS = 1000


def _counted_ops(data: dict[str, Any], window: str) -> int:
    """Operations the case's metric window held in one counted round."""
    return int(data.get("insns", {}).get(window, {}).get("ops", 0))


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per case and kernel: median/min/max of the metric (and its extra fields)
    over the timed rounds, of instructions per operation over the counted
    rounds; ratios to the patched kernel of the same sizing."""
    summary: dict[str, Any] = {}
    for case in results["cases"]:
        name, metric = case["name"], case["metric"]
        per_kernel: dict[str, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        insns: dict[str, Any] = {}
        windows: dict[str, dict[str, Any]] = {}
        for label in results["kernels"]:
            timed = [
                r["cases"][name]
                for r in results["rounds"]
                if r["kernel"] == label and r.get("mode", "time") == "time" and name in r["cases"]
            ]
            for field_name in (metric, *case.get("extra", ())):
                values = [
                    d[field_name] for d in timed if isinstance(d.get(field_name), (int, float))
                ]
                if values:
                    target = (
                        per_kernel if field_name == metric else extra.setdefault(field_name, {})
                    )
                    target[label] = _stats(values)
            counted = [
                r["cases"][name].get("insns_per_op")
                for r in results["rounds"]
                if r["kernel"] == label
                and r.get("mode") == "insns"
                and name in r["cases"]
                and _counted_ops(r["cases"][name], case.get("window", "")) >= MIN_COUNTED_OPS
            ]
            counted_f = [float(v) for v in counted if isinstance(v, (int, float))]
            if counted_f:
                insns[label] = _stats(counted_f)
            # Every window's count per operation (e.g. "create" beside
            # "getoverrun"), for phases other than the metric's
            per_window: dict[str, list[float]] = {}
            for r in results["rounds"]:
                if r["kernel"] == label and r.get("mode") == "insns" and name in r["cases"]:
                    for w, v in r["cases"][name].get("insns", {}).items():
                        per_window.setdefault(w, []).append(float(v["insns_per_op"]))
            for w, vals in per_window.items():
                windows.setdefault(w, {})[label] = _stats(vals)
        ratios: dict[str, float] = {}
        insn_ratios: dict[str, float] = {}
        for other in results["kernels"]:
            base = sibling(other, "patched", results)
            if not base or base == other:
                continue
            key = f"{base}/{other}"
            for table, out in ((per_kernel, ratios), (insns, insn_ratios)):
                p = table.get(base, {}).get("median")
                o = table.get(other, {}).get("median")
                if p is not None and o:
                    out[key] = p / o
        summary[name] = {
            "metric": metric,
            "kernels": per_kernel,
            "ratios": ratios,
            "extra": extra,
            "insns": insns,
            "insn_ratios": insn_ratios,
            "insns_by_window": windows,
        }
    fixed_costs(results, summary)
    derive(results, summary)
    return summary


def fixed_costs(results: dict[str, Any], summary: dict[str, Any]) -> None:
    """Memory per timer with the kernel's timer table counted.

    The hash table of 6.12 (static) and of upstream (allocated at boot,
    512 buckets per possible CPU) exists whatever the number of timers;
    the per-timer slab deltas leave it out.  ``with_table`` adds it, spread
    over one process's timers (``n``; the delta is measured over ``procs``
    such processes), as if that process were the only one with timers.
    """
    for case in results["cases"]:
        if case["case"] != "memory":
            continue
        cell = summary[case["name"]]
        n = case["params"]["n"]
        cell["with_table"] = {}
        for label, stats in cell["kernels"].items():
            table = results["kernels"][label].get("timer_table_bytes")
            if isinstance(table, int):
                cell["with_table"][label] = stats["median"] + table / n


def derive(results: dict[str, Any], summary: dict[str, Any]) -> None:
    """Derived figures: the legacy restore time of ID 2^31-2 and its speed-ups.

    The legacy time is an extrapolation (pair cost of ``a.pairs`` times
    2^31 - 2), labelled so wherever it is shown.  A kernel's speed-up is
    against its own loop; ``vs_612_loop`` against unpatched 6.12's loop of
    the same sizing, which is what CRIU pays today.
    """
    pairs = summary.get("a.pairs", {}).get("kernels", {})
    derived: dict[str, Any] = {}
    for label, stats in pairs.items():
        legacy_s = stats["median"] * (INT_MAX - 1) / 1e9
        entry: dict[str, Any] = {"legacy_restore_seconds": legacy_s, "extrapolated": True}
        base = sibling(label, "unpatched", results) if label in results["kernels"] else ""
        own_612 = pairs.get(base, {}).get("median")
        for how in ("flag", "prctl"):
            exact = summary.get(f"a.exact_high.{how}", {}).get("kernels", {}).get(label)
            if exact:
                entry[f"exact_{how}_seconds"] = exact["median"] / 1e9
                # The same fresh process's plain first create, as a baseline
                plain = [
                    r["cases"][f"a.exact_high.{how}"].get("plain_ns_median")
                    for r in results["rounds"]
                    if r["kernel"] == label and r.get("mode", "time") == "time"
                ]
                plain_ns = [float(v) for v in plain if isinstance(v, (int, float))]
                if plain_ns:
                    entry["plain_first_create_seconds"] = statistics.median(plain_ns) / 1e9
                entry[f"speedup_{how}"] = legacy_s / (exact["median"] / 1e9)
                if own_612:
                    entry[f"vs_612_loop_{how}"] = own_612 * (INT_MAX - 1) / exact["median"]
        derived[label] = entry
    summary["derived"] = {"restore_id_2147483646": derived}


@dataclass(frozen=True)
class Boot:
    """One kernel as booted in a run: its sizing, and whether it counts instructions."""

    kernel: KernelUnderTest
    label: str  # the kernel's label, suffixed for the second sizing
    possible_cpus: int
    insns: bool = False


def boots(kernels: list[KernelUnderTest], sizings: tuple[int, ...]) -> list[Boot]:
    """Each kernel in each sizing; the first sizing keeps the plain labels."""
    out = []
    for i, possible in enumerate(sizings):
        for k in kernels:
            label = k.label if i == 0 else f"{k.label}-{possible}cpu"
            out.append(Boot(k, label, possible))
    return out


def bench(
    kernels: list[KernelUnderTest],
    out_dir: Path,
    rounds: int = 3,
    scale: float = 1.0,
    cpus: int = 2,
    memory: str = "2G",
    config_digest: str = "",
    only: list[str] | None = None,
    sizings: tuple[int, ...] = (64, 2),
    insn_rounds: int = 2,
    profile: bool = False,
) -> dict[str, Any]:
    """Run every case on every kernel for ``rounds`` rounds; write results.json.

    ``only``: shell-style patterns of case names to run (default: all).
    ``sizings``: possible-CPU counts to boot every kernel with (the first is
    the headline: a server's count, which sizes upstream's hash table).
    ``insn_rounds``: of the first sizing, that many extra boots per kernel
    with the instruction-counting plugin (counts barely move between runs;
    two show by how much); 0 without the plugin.  ``profile``: those boots
    also attribute each loop's instructions to the guest kernel's functions.
    """
    binary = helper_mod.build("ptbench")
    plugin = insncount.build() if insn_rounds else None
    matrix = select(cases(scale, cpus), only)
    runs = boots(kernels, sizings)
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "host_kernel": platform.release(),
            "rounds": rounds,
            "insn_rounds": insn_rounds,
            "profile": profile,
            "scale": scale,
            "vcpus": cpus,
            "possible_cpus": sizings[0],
            "sizings": list(sizings),
            "memory": memory,
            "config_request_sha256": config_digest,
            "ptbench_sha256": hashlib.sha256(binary.read_bytes()).hexdigest()[:16],
            "insncount_sha256": (
                hashlib.sha256(plugin.read_bytes()).hexdigest()[:16] if plugin else ""
            ),
            "seed": 1,
        },
        "kernels": {
            b.label: {
                "image": str(b.kernel.image),
                "source": b.kernel.source,
                "base": b.kernel.label,
                "possible_cpus": b.possible_cpus,
            }
            for b in runs
        },
        "cases": [
            {
                "name": c.name,
                "case": c.case,
                "params": c.params,
                "metric": c.metric,
                "needs": c.needs,
                "extra": list(c.extra),
                "window": c.window,
            }
            for c in matrix
        ],
        "rounds": [],
    }
    main = [b for b in runs if b.possible_cpus == sizings[0]]
    for rnd in range(rounds):
        # Alternate the order within each sizing; counted boots follow
        # the timed ones of their round, so they never disturb a timing.
        plan = [
            b
            for possible in sizings
            for b in _rotate([b for b in runs if b.possible_cpus == possible], rnd)
        ]
        if rnd < insn_rounds:
            plan += [Boot(b.kernel, b.label, b.possible_cpus, True) for b in _rotate(main, rnd)]
        for b in plan:
            mode = "insns" if b.insns else "time"
            print(f"round {rnd + 1}/{rounds}: {b.label} ({mode})", flush=True)
            workdir = out_dir / f"guest-{b.label}{'-insns' if b.insns else ''}"
            record = run_kernel(b, binary, matrix, workdir, cpus, memory, plugin, profile)
            record["round"] = rnd
            record["mode"] = mode
            results["rounds"].append(record)
            results["meta"]["accel"] = record.get("accel", "")
            info = results["kernels"][b.label]
            info.update(release=b.kernel.release, features=b.kernel.features)
            info.update(record.get("boot", {}))
            write(out_dir, results)
    results["summary"] = summarize(results)
    write(out_dir, results)
    return results


def _rotate(items: list[Boot], n: int) -> list[Boot]:
    if not items:
        return items
    n %= len(items)
    return items[n:] + items[:n]


HASH_LINE = re.compile(r"posixtimers hash table entries: (\d+) \(order: \d+, (\d+) bytes")


STATIC_HASH = re.compile(r"DEFINE_HASHTABLE\(posix_timers_hashtable,\s*(\d+)\)")
HLIST_HEAD_BYTES = 8  # one pointer (64-bit kernels only here)


def static_table(tree: Path | None) -> dict[str, Any] | None:
    """6.12's hash: a static array declared in the source, not in the kernel log.

    Without CONFIG_KALLSYMS_ALL the guest cannot name a data symbol, so the
    size comes from the declaration in the tree the kernel was built from.
    """
    src = tree / "kernel" / "time" / "posix-timers.c" if tree else None
    if src is None or not src.exists():
        return None
    if m := STATIC_HASH.search(src.read_text(errors="replace")):
        buckets = 1 << int(m.group(1))
        return {
            "timer_table": f"static DEFINE_HASHTABLE(posix_timers_hashtable, {m.group(1)})",
            "timer_hash_buckets": buckets,
            "timer_table_bytes": buckets * HLIST_HEAD_BYTES,
        }
    return None


def _allocates_hash(tree: Path) -> bool:
    src = tree / "kernel" / "time" / "posix-timers.c"
    return src.exists() and 'alloc_large_system_hash("posixtimers"' in src.read_text(
        errors="replace"
    )


def cpulist_count(text: str) -> int:
    """CPUs in a sysfs cpulist such as "0-63" or "0,2-3"."""
    count = 0
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def boot_facts(guest: Guest, tree: Path | None = None) -> dict[str, Any]:
    """What the booted kernel says about its sizing and its timer table.

    Upstream allocates its hash at boot and says so in the kernel log;
    6.12's is a static array (see :func:`static_table`); the series has
    none.  A kernel given without its tree and without the log line is
    recorded as "unknown", never as 0 bytes.
    """
    facts: dict[str, Any] = {}
    possible = guest.run("cat /sys/devices/system/cpu/possible", check=True).stdout.strip()
    facts["possible_cpus_seen"] = possible
    log = guest.run("dmesg", check=True).stdout
    if m := HASH_LINE.search(log):
        facts["timer_table"] = "posixtimers hash (kernel log)"
        facts["timer_hash_buckets"] = int(m.group(1))
        facts["timer_table_bytes"] = int(m.group(2))
    elif (static := static_table(tree)) is not None:
        facts.update(static)
    elif tree is not None and _allocates_hash(tree):
        facts["timer_table"] = "unknown (allocated at boot, but no kernel log line)"
    elif tree is not None:
        facts["timer_table"] = "none (no hash in the source)"
        facts["timer_table_bytes"] = 0
    else:
        facts["timer_table"] = "unknown (no source tree given)"
    return facts


def run_kernel(
    b: Boot,
    binary: Path,
    matrix: list[Case],
    workdir: Path,
    cpus: int,
    memory: str,
    plugin: Path | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Boot one kernel and run the whole matrix once (counting instructions if asked)."""
    k = b.kernel
    record: dict[str, Any] = {"kernel": b.label, "cases": {}}
    workdir.mkdir(parents=True, exist_ok=True)
    counts = workdir / "insns.txt"
    counts.write_text("")
    qemu_opts = []
    if b.insns:
        if plugin is None:
            raise HarnessError("an instruction-counting boot needs the insncount plugin")
        qemu_opts = ["-plugin", f"{plugin},out={counts}" + (",profile=on" if profile else "")]
    vm = VirtmeVM(
        k.image,
        workdir,
        cpus=cpus,
        memory=memory,
        possible_cpus=b.possible_cpus,
        qemu_opts=qemu_opts,
    )
    with vm:
        guest, _ = vm.boot()
        record["accel"] = vm.accel.name if vm.accel else ""
        k.release = guest.run("uname -r", check=True).stdout.strip()
        record["boot"] = boot_facts(guest, k.tree)
        possible = cpulist_count(record["boot"]["possible_cpus_seen"])
        if b.possible_cpus and possible != b.possible_cpus:
            raise GuestError(
                f"{b.label} booted with {possible} possible CPUs, not {b.possible_cpus}",
                hint="build it with NR_CPUS >= the count (kernel-config/base.config has 64)",
            )
        syms = None
        if b.insns and profile:
            syms = insncount.Symbols(guest.run("cat /proc/kallsyms", check=True).stdout)
        probe = guest.run(f"{shlex.quote(str(binary))} --probe", timeout=60)
        try:
            k.features = json.loads(probe.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise GuestError("ptbench --probe gave no JSON", detail=probe.describe()) from None
        seen = 0  # plugin windows consumed so far
        for case in matrix:
            start = time.monotonic()
            try:
                data = run_case(guest, binary, case, k.features)
            except HarnessError as exc:
                data = {"error": exc.message}
            data["wall_seconds"] = round(time.monotonic() - start, 2)
            if b.insns and "skipped" not in data:
                windows = insncount.read_profiles(counts)
                new = windows[seen:]
                insncount.attach(data, case.window, [n for n, _ in new], [p for _, p in new], syms)
                seen = len(windows)
            record["cases"][case.name] = data
            status = data.get("error") or data.get("skipped") or data.get(case.metric)
            if b.insns:
                status = data.get("insns_per_op", data.get("insns_error", status))
            print(f"  {case.name:24} {status}", flush=True)
        guest.close()
    return record


def write(out_dir: Path, results: dict[str, Any]) -> None:
    from .results import write_json

    write_json(out_dir / "results.json", results)
