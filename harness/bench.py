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
import shlex
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import helper as helper_mod
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

    def argv(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.case} {args}".strip()


def cases(scale: float = 1.0) -> list[Case]:
    """The benchmark matrix; ``scale`` shrinks counts for quick runs."""

    def n(x: int) -> int:
        return max(10, int(x * scale))

    out = [Case("a.pairs", "pairs", {"n": n(100_000)}, "ns_per_pair")]
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
            )
        )
    sparse = {"count": n(1000), "span": n(1_000_000)}
    out.append(
        Case("b.sparse.legacy", "sparse_restore", {"mode": "legacy", **sparse}, "elapsed_ns")
    )
    for how in ("flag", "prctl"):
        out.append(
            Case(
                f"b.sparse.{how}",
                "sparse_restore",
                {"mode": how, **sparse},
                "elapsed_ns",
                needs=how,
            )
        )
    for count in (20_000, 50_000, 100_000):
        out.append(
            Case(f"c.create.{count // 1000}k", "create_many", {"n": n(count)}, "ns_per_create")
        )
        out.append(
            Case(
                f"c.lookup.{count // 1000}k",
                "lookup",
                {"n": n(count), "lookups": n(200_000)},
                "ns_per_lookup",
            )
        )
    out += [
        Case("c.create.2threads", "create_many", {"n": n(20_000), "threads": 2}, "ns_per_create"),
        Case("c.create.2procs", "create_many", {"n": n(20_000), "procs": 2}, "ns_per_create"),
        Case("c.churn.2threads", "churn", {"iters": n(50_000), "threads": 2}, "ns_per_pair"),
        Case("c.churn.2procs", "churn", {"iters": n(50_000), "procs": 2}, "ns_per_pair"),
        Case("d.neighbour", "neighbour", {"hold": n(60_000), "lookups": n(200_000)}, "ratio"),
        Case(
            "e.memory.dense",
            "memory",
            {"pattern": "dense", "n": n(10_000)},
            "timer_caches_bytes_per_timer",
        ),
        Case(
            "e.memory.churn",
            "memory",
            {"pattern": "churn", "n": n(10_000)},
            "timer_caches_bytes_per_timer",
        ),
        Case(
            "e.memory.offset",
            "memory",
            {"pattern": "offset", "n": n(2048), "offset": 512, "exact": "auto"},
            "timer_caches_bytes_per_timer",
        ),
        Case(
            "e.memory.sparse",
            "memory",
            {"pattern": "sparse", "n": n(1000), "span": n(1_000_000), "exact": "auto"},
            "timer_caches_bytes_per_timer",
        ),
        Case("f.proc_read", "proc_read", {"n": n(10_000), "reads": 10}, "ns_per_read"),
        Case("f.exit", "exit", {"n": n(100_000)}, "exit_ns"),
    ]
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


def failures(results: dict[str, Any]) -> list[str]:
    """Every case run that failed: an error, or no value for its metric.

    A kernel that lacks a case's interface says so (``skipped``); anything
    else without a number is a failure, never a "-" in the table.
    """
    metric = {c["name"]: c["metric"] for c in results["cases"]}
    out = []
    for r in results["rounds"]:
        for name, data in r["cases"].items():
            if "skipped" in data:
                continue
            if "error" in data or not isinstance(data.get(metric.get(name, "")), (int, float)):
                why = data.get("error") or f"no {metric.get(name)} in {sorted(data)}"
                out.append(f"round {r['round'] + 1}, {r['kernel']}, {name}: {why}")
    return out


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per case and kernel: median/min/max of the metric; ratios between kernels."""
    summary: dict[str, Any] = {}
    for case in results["cases"]:
        name, metric = case["name"], case["metric"]
        per_kernel: dict[str, Any] = {}
        for label in results["kernels"]:
            values = [
                r["cases"][name][metric]
                for r in results["rounds"]
                if r["kernel"] == label
                and isinstance(r["cases"].get(name, {}).get(metric), (int, float))
            ]
            if values:
                per_kernel[label] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "n": len(values),
                    "values": values,
                }
        ratios = {}
        patched = per_kernel.get("patched", {}).get("median")
        for other in results["kernels"]:
            if other == "patched":
                continue
            base = per_kernel.get(other, {}).get("median")
            if patched is not None and base:
                ratios[f"patched/{other}"] = patched / base
        summary[name] = {"metric": metric, "kernels": per_kernel, "ratios": ratios}
    derive(results, summary)
    return summary


def derive(results: dict[str, Any], summary: dict[str, Any]) -> None:
    """Derived figures: the legacy restore time of ID 2^31-2 and its speed-up."""
    pairs = summary.get("a.pairs", {}).get("kernels", {})
    derived: dict[str, Any] = {}
    for label, stats in pairs.items():
        legacy_s = stats["median"] * (INT_MAX - 1) / 1e9
        entry: dict[str, Any] = {"legacy_restore_seconds": legacy_s}
        for how in ("flag", "prctl"):
            exact = summary.get(f"a.exact_high.{how}", {}).get("kernels", {}).get(label)
            if exact:
                entry[f"exact_{how}_seconds"] = exact["median"] / 1e9
                entry[f"speedup_{how}"] = legacy_s / (exact["median"] / 1e9)
        derived[label] = entry
    summary["derived"] = {"restore_id_2147483646": derived}


def bench(
    kernels: list[KernelUnderTest],
    out_dir: Path,
    rounds: int = 3,
    scale: float = 1.0,
    cpus: int = 2,
    memory: str = "2G",
    config_digest: str = "",
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Run every case on every kernel for ``rounds`` rounds; write results.json.

    ``only``: shell-style patterns of case names to run (default: all).
    """
    binary = helper_mod.build("ptbench")
    matrix = select(cases(scale), only)
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "host_kernel": platform.release(),
            "rounds": rounds,
            "scale": scale,
            "vcpus": cpus,
            "memory": memory,
            "config_request_sha256": config_digest,
            "ptbench_sha256": hashlib.sha256(binary.read_bytes()).hexdigest()[:16],
            "seed": 1,
        },
        "kernels": {k.label: {"image": str(k.image), "source": k.source} for k in kernels},
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
        "rounds": [],
    }
    for rnd in range(rounds):
        order = kernels[rnd % len(kernels) :] + kernels[: rnd % len(kernels)]
        for k in order:
            print(f"round {rnd + 1}/{rounds}: {k.label}", flush=True)
            record = run_kernel(k, binary, matrix, out_dir / f"guest-{k.label}", cpus, memory)
            record["round"] = rnd
            results["rounds"].append(record)
            results["meta"]["accel"] = record.get("accel", "")
            results["kernels"][k.label].update(release=k.release, features=k.features)
            write(out_dir, results)
    results["summary"] = summarize(results)
    write(out_dir, results)
    return results


def run_kernel(
    k: KernelUnderTest, binary: Path, matrix: list[Case], workdir: Path, cpus: int, memory: str
) -> dict[str, Any]:
    """Boot one kernel and run the whole matrix once."""
    record: dict[str, Any] = {"kernel": k.label, "cases": {}}
    with VirtmeVM(k.image, workdir, cpus=cpus, memory=memory) as vm:
        guest, _ = vm.boot()
        record["accel"] = vm.accel.name if vm.accel else ""
        k.release = guest.run("uname -r", check=True).stdout.strip()
        probe = guest.run(f"{shlex.quote(str(binary))} --probe", timeout=60)
        try:
            k.features = json.loads(probe.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise GuestError("ptbench --probe gave no JSON", detail=probe.describe()) from None
        for case in matrix:
            start = time.monotonic()
            try:
                data = run_case(guest, binary, case, k.features)
            except HarnessError as exc:
                data = {"error": exc.message}
            data["wall_seconds"] = round(time.monotonic() - start, 2)
            record["cases"][case.name] = data
            status = data.get("error") or data.get("skipped") or data.get(case.metric)
            print(f"  {case.name:24} {status}", flush=True)
        guest.close()
    return record


def write(out_dir: Path, results: dict[str, Any]) -> None:
    from .results import write_json

    write_json(out_dir / "results.json", results)
