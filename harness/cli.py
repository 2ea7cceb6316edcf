"""Command line: ``python -m harness`` / ``ptimers``.

Subcommands map onto the user journeys: ``main`` (the default: build,
boot, test and report on unpatched and patched 6.12), ``test`` (what CI
runs), and the pieces (``source``, ``config``, ``build``, ``boot``) for
people working on one step.  Every HarnessError ends as one clear message
with the next step, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import bench as bench_mod
from . import kbuild, kconfig, kselftest, report, series, source
from .errors import HarnessError
from .paths import REPO
from .pytest_plugin import DEBUG_TOOLS
from .results import write_json


@dataclass
class Phase:
    """Timing of one phase, printed as it ends."""

    name: str
    start: float = 0.0
    seconds: float = 0.0

    def __enter__(self) -> Phase:
        self.start = time.monotonic()
        print(f"==> {self.name}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
        status = "failed" if exc[0] else "done"
        print(f"[time] {self.name}: {self.seconds:.1f}s ({status})", flush=True)


@dataclass
class KernelTarget:
    """A kernel to test: its label and how to build it."""

    label: str
    tree: Path


def targets(which: str, source_dir: Path | None = None) -> list[KernelTarget]:
    """Unpatched base, plus the patched tree when the series has patches.

    With ``source_dir`` (``--source DIR``) the user's tree is the base and
    the series is applied onto its HEAD with ``git am -3`` in a worktree of
    its own (see :func:`series.onto`); conflicts are named file by file.
    """
    if source_dir is not None:
        tree = source.user_tree(source_dir)
        out = [KernelTarget("unpatched", tree)]
        if which in {"all", "patched"}:
            ser = series.read()
            if not ser.patches:
                raise HarnessError("patches/ holds no series to apply")
            out.append(KernelTarget("patched", series.onto(tree, ser)))
        return out[1:] if which == "patched" else out
    base = source.extract()
    pinned_have = source.installed_version(source.PINNED.package) or ""
    if note := source.version_note(source.PINNED, pinned_have):
        print(f"warning: {note}", file=sys.stderr)
    out = [KernelTarget("unpatched", base)]
    ser = series.read()
    if ser.patches and which in {"all", "patched"}:
        series.check_base(ser, base)
        out.append(KernelTarget("patched", series.worktree(base, ser)))
    if which == "patched":
        out = out[1:]
        if not out:
            raise HarnessError("patches/ holds no series to test")
    return out


def cmd_source(args: argparse.Namespace) -> int:
    tree = source.extract()
    print(tree)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    tree = source.user_tree(args.source) if args.source else source.extract()
    comp = kconfig.compose(args.flavor, source=tree, extra=args.config)
    for opt, first, later in comp.overrides:
        print(f"# {opt}: {later} overrides {first}", file=sys.stderr)
    sys.stdout.write(comp.render())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    tree = targets("patched" if args.patched else "unpatched", args.source)[0].tree
    kernel = kbuild.build(tree, args.flavor, extra=args.config, force=args.force)
    print(kernel.image)
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from .vm import VirtmeVM

    if args.kernel:
        image = Path(args.kernel)
    else:
        tree = targets("patched" if args.patched else "unpatched", args.source)[0].tree
        image = kbuild.build(tree, args.flavor).image
    with VirtmeVM(image, REPO / "results" / "boot", boot_timeout=args.boot_timeout) as vm:
        guest, ssh = vm.boot()
        print(
            f"guest ready in {vm.ready_seconds:.1f}s, SSH after {ssh:.1f}s more "
            f"(accel {vm.accel.name if vm.accel else '?'}: {vm.accel.reason if vm.accel else ''})"
        )
        command = " ".join(args.command) or "uname -a"
        res = guest.run(command, timeout=args.timeout)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        guest.close()
        return res.status


def run_vmtests(kernel: Path, results_dir: Path, extra: list[str]) -> dict[str, object]:
    """Run the vmtests against one kernel; return its results.json."""
    shutil.rmtree(results_dir, ignore_errors=True)  # no stale results from an earlier run
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "vmtests/",
        f"--kernel={kernel}",
        f"--results-dir={results_dir}",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    path = results_dir / "results.json"
    data: dict[str, object] = json.loads(path.read_text()) if path.exists() else {}
    data["pytest_exit"] = rc
    return data


def judge(label: str, data: dict[str, object], require: list[str]) -> list[str]:
    """Reasons a vmtests run does not count as a pass (empty: it passed)."""
    problems = []
    rc = data.get("pytest_exit")
    counts = data.get("counts") or {}
    assert isinstance(counts, dict)
    if rc == 5:
        problems.append(f"{label}: pytest collected no tests (exit 5)")
    elif rc != 0:
        problems.append(f"{label}: pytest exited {rc}")
    if not counts.get("passed"):
        problems.append(f"{label}: no vmtest passed (were they skipped?)")
    feats = data.get("features") or {}
    assert isinstance(feats, dict)
    for feat in require:
        if not feats.get(feat):
            problems.append(f"{label}: kernel lacks {feat}; its tests were skipped")
    return problems


def _both(results: Path, name: str) -> dict[str, Any] | None:
    """``name`` from the unpatched and the patched results, if both exist."""
    runs = {}
    for label in ("unpatched", "patched"):
        path = results / label / name
        if path.exists():
            runs[label] = json.loads(path.read_text())
    return runs if len(runs) == 2 else None


def compare_kselftests(results: Path) -> list[str]:
    """Subtests of the kernel's selftests passing unpatched but not patched."""
    runs = _both(results, "kselftests.json")
    if runs is None:
        return []
    problems = []
    run = results / "patched" / "results.json"
    accel = json.loads(run.read_text()).get("accel", "") if run.exists() else ""
    for program, statuses in runs["unpatched"].items():
        after = runs["patched"].get(program, {})
        # Timing checks the guest cannot keep under TCG flake either way
        # (harness/kselftest.py): not a difference the series made.
        flaky = kselftest.tolerated(program, accel)
        for name, status in statuses.items():
            if status == "pass" and after.get(name) != "pass" and name not in flaky:
                problems.append(
                    f"kselftest {program}: {name} passes unpatched, "
                    f"{after.get(name, 'missing')} patched"
                )
    return problems


def compare_fuzz(results: Path) -> list[str]:
    """The no-flag fuzz trace must be identical on unpatched and patched."""
    runs = _both(results, "fuzz.json")
    if runs is None or runs["unpatched"]["seed"] != runs["patched"]["seed"]:
        return []
    if runs["unpatched"]["sha256"] != runs["patched"]["sha256"]:
        return [
            f"fuzz (seed {runs['patched']['seed']}): the no-flag trace differs between "
            "unpatched and patched"
        ]
    return []


def with_upstream(args: argparse.Namespace) -> bool:
    """Whether ``test`` also runs the suite on the upstream peer (Debian unstable's).

    The suite and the real-CRIU matrix run on unpatched 6.12, the series and
    upstream's 2025 answer alike; the peer is the default flavor's third
    kernel unless a tree or kernels of the user's are given.
    """
    if args.which == "upstream":
        return True
    return (
        args.which == "all"
        and args.flavor == "default"
        and not args.kernel
        and getattr(args, "source", None) is None
        and not getattr(args, "no_upstream", False)
    )


def cmd_test(args: argparse.Namespace) -> int:
    phases: list[Phase] = []
    problems: list[str] = []
    if not args.skip_unit:
        with Phase("host unit tests") as ph:
            rc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "harness/tests"],
                cwd=REPO,
            ).returncode
        phases.append(ph)
        if rc != 0:
            print(f"host unit tests failed (pytest exit {rc})", file=sys.stderr)
            return 1
    kernels: list[tuple[str, Path]] = []
    trees: dict[str, Path] = {}
    if args.kernel:
        kernels = [(Path(k).name, Path(k)) for k in args.kernel]
    else:
        with Phase("sources") as ph:
            tgts = (
                []
                if args.which == "upstream"
                else targets(args.which, getattr(args, "source", None))
            )
            if with_upstream(args):
                from . import upstream

                tgts.append(KernelTarget("upstream", upstream.tree()))
        phases.append(ph)
        for t in tgts:
            with Phase(f"build {t.label} kernel ({args.flavor})") as ph:
                kernels.append((t.label, kbuild.build(t.tree, args.flavor).image))
            phases.append(ph)
            trees[t.label] = t.tree
    # Flavors other than the default keep their per-kernel results apart, so
    # a debug run does not overwrite the default run's results/patched/.
    root = REPO / "results" if args.flavor == "default" else REPO / "results" / args.flavor
    summary: dict[str, object] = {}
    # The series' kernel must have what the series adds: absent fails.
    expected = "--expect-features=sigev_timer_id,prctl_restore_ids,proc_timers_by_id"
    if args.flavor == "debug":
        # Without its checkers a debug run passes what only they can see;
        # failslab there also shows the series' reserved slot.
        expected += ",reserved_slot," + ",".join(DEBUG_TOOLS)
    for label, image in kernels:
        extra = list(args.pytest_args)
        if label == "patched":
            extra.append(expected)
        elif label == "upstream":
            # Upstream's 2025 rework has the prctl, not the flag.
            extra.append("--expect-features=prctl_restore_ids")
        if args.flavor == "default" and not args.kernel:
            # Built here with criu.config: the real-CRIU matrix must run.
            extra.append("--expect-features=criu_config")
        elif args.flavor == "debug" and label != "patched":  # patched: in `expected`
            extra.append("--expect-features=" + ",".join(DEBUG_TOOLS))
        tree = trees.get(label)
        if tree is not None:
            extra.append(f"--selftests={kselftest.build(tree)}")
        with Phase(f"vmtests on {label}") as ph:
            data = run_vmtests(image, root / label, extra)
        phases.append(ph)
        summary[label] = data
        require = ["sigev_timer_id", "prctl_restore_ids"] if label == "patched" else []
        problems += judge(label, data, require)
        if not args.no_compat and label != "upstream":
            # The same ABI once more through the 32-bit compat syscalls
            # (the series' and 6.12's; the peer is tested natively only).
            with Phase(f"vmtests on {label} via the -m32 helper") as ph:
                compat = run_vmtests(
                    image,
                    root / f"{label}-compat",
                    [
                        *args.pytest_args,
                        *([expected] if label == "patched" else []),
                        "--helper32",
                        # The ABI through the compat syscalls: the teardown
                        # stress adds nothing there, a shorter model run does
                        "-k",
                        "not bench and not kselftest and not teardown and not criu_real",
                        "--model-examples=15",
                    ],
                )
            phases.append(ph)
            summary[f"{label}-compat"] = compat
            problems += judge(f"{label} (-m32)", compat, require)
    problems += compare_kselftests(root)
    problems += compare_fuzz(root)
    summary["phases"] = {p.name: round(p.seconds, 1) for p in phases}
    name = "test-summary.json" if args.flavor == "default" else f"test-summary-{args.flavor}.json"
    write_json(REPO / "results" / name, summary)
    for p in phases:
        print(f"[time] {p.name}: {p.seconds:.1f}s")
    if problems:
        for msg in problems:
            print(f"FAIL {msg}", file=sys.stderr)
        return 1
    print("all vmtests passed on: " + ", ".join(label for label, _ in kernels))
    return 0


def bench_kernels(flavor: str) -> tuple[list[bench_mod.KernelUnderTest], str]:
    """Build unpatched, patched and upstream with one config request."""
    from . import upstream

    out = []
    digests = set()
    tgts = targets("all")
    up_tree = upstream.tree()
    tgts.append(KernelTarget("upstream", up_tree))
    for t in tgts:
        with Phase(f"build {t.label} kernel ({flavor})"):
            kernel = kbuild.build(t.tree, flavor)
        comp = kconfig.compose(flavor)
        digests.add(hashlib.sha256(comp.render().encode()).hexdigest()[:16])
        label = (
            f"Debian {t.tree.name} {t.tree.parent.name.replace('_', '~')}"
            if t.label != "patched"
            else f"Debian {source.PINNED.package} {source.PINNED.version} + patches/"
        )
        out.append(bench_mod.KernelUnderTest(t.label, kernel.image, label, tree=t.tree))
    return out, ",".join(sorted(digests))


def given_kernels(specs: list[str]) -> list[bench_mod.KernelUnderTest]:
    """``--kernel LABEL=BZIMAGE`` arguments: kernels built elsewhere."""
    out: list[bench_mod.KernelUnderTest] = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        image = Path(path).expanduser()
        if not sep or not label or not label.isidentifier():
            raise HarnessError(
                f"--kernel {spec!r}: expected LABEL=BZIMAGE, "
                "e.g. --kernel parked=arch/x86/boot/bzImage"
            )
        if any(k.label == label for k in out):
            raise HarnessError(f"--kernel: label {label!r} given twice; give each kernel its own")
        if not image.is_file():
            raise HarnessError(
                f"--kernel {spec!r}: {image} is not a file; give a bzImage "
                "(e.g. the path './ptimers build' prints)"
            )
        out.append(bench_mod.KernelUnderTest(label, image, f"given: {image}"))
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else REPO / "results" / "bench"
    bad = [n for n in args.possible_cpus if not 2 <= n <= 64]
    if bad or len(set(args.possible_cpus)) != len(args.possible_cpus):
        raise HarnessError(
            f"--possible-cpus {' '.join(map(str, args.possible_cpus))}: give distinct counts "
            "from 2 (the vCPUs that run) to 64 (the kernels' NR_CPUS), e.g. --possible-cpus 64 2"
        )
    if args.profile and not args.insn_rounds:
        raise HarnessError("--profile needs counting boots: give --insn-rounds 1 or more")
    if not 0 <= args.insn_rounds <= args.rounds:
        raise HarnessError(
            f"--insn-rounds {args.insn_rounds}: give 0 to {args.rounds} (at most --rounds)"
        )
    if args.kernel:
        kernels, digest = given_kernels(args.kernel), ""
    else:
        kernels, digest = bench_kernels(args.flavor)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Phase(f"benchmarks ({args.rounds} rounds, scale {args.scale})"):
        results = bench_mod.bench(
            kernels,
            out_dir,
            rounds=args.rounds,
            scale=args.scale,
            config_digest=digest,
            only=args.cases,
            sizings=tuple(args.possible_cpus),
            insn_rounds=args.insn_rounds,
            profile=args.profile,
        )
    for path in report.write_all(results, out_dir):
        print(f"wrote {path}")
    if failed := bench_mod.failures(results):
        for line in failed:
            print(f"FAIL bench: {line}", file=sys.stderr)
        print(f"{len(failed)} benchmark case run(s) failed (results kept in {out_dir})")
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.readme:
        for path in report.render_readme():
            print(f"README: benchmark block rendered from {path.relative_to(REPO)}")
        return 0
    out_dir = Path(args.results_dir)
    results = json.loads((out_dir / "results.json").read_text())
    # Summaries are derived data: recompute them from the raw rounds, so a
    # report never shows a summary an older version of this code wrote.
    results["summary"] = bench_mod.summarize(results)
    for path in report.write_all(results, out_dir):
        print(f"wrote {path}")
    return 0


def cmd_criu_table(args: argparse.Namespace) -> int:
    """Collect a test run's real-CRIU cells into one file; render the README's table."""
    from . import criureport

    if args.save:
        data = criureport.collect(Path(args.results), Path(args.save))
        print(f"wrote {args.save}")
        print(criureport.render(data))
    if args.readme:
        for path in criureport.render_readme():
            print(f"README: CRIU table rendered from {path.relative_to(REPO)}")
    if not args.save and not args.readme:
        data = criureport.collect(Path(args.results), Path(args.results) / "criu.json")
        print(criureport.render(data))
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    if args.action == "export":
        from . import coverletter

        if args.tree is None:
            raise HarnessError("series export needs --tree (the git tree with the series branch)")
        tests_dir = Path(args.tests) if args.tests else None
        description = coverletter.render(results_path=args.bench, tests_dir=tests_dir)
        files = series.export(source.user_tree(args.tree), args.branch, description)
        for f in files:
            print(f)
        return 0
    if args.action == "apply":
        print(targets("patched")[0].tree)
        return 0
    from . import seriescheck

    return seriescheck.check(args)


def cmd_bisect(args: argparse.Namespace) -> int:
    from . import bisect

    if args.selftest:
        return bisect.selftest(targets("patched")[0].tree, args.flavor)
    if not (args.good and args.bad):
        raise HarnessError("bisect needs GOOD and BAD commits (or --selftest)")
    tree = source.user_tree(args.tree) if args.tree else targets("patched")[0].tree
    found = bisect.run(tree, args.good, args.bad, args.flavor, args.pytest_args)
    print(f"first bad commit: {found}")
    return 0


def cmd_bisect_step(args: argparse.Namespace) -> int:
    """One ``git bisect run`` step: never let a harness problem read as "bad"."""
    import traceback

    from . import bisect

    try:
        return bisect.step(source.user_tree(args.tree), args.flavor, args.pytest_args)
    except HarnessError as exc:  # could not test this commit
        print(exc.render(), file=sys.stderr)
        return bisect.SKIP
    except Exception:  # a harness bug: the same at every commit, stop the bisection
        traceback.print_exc()
        return bisect.ABORT


def cmd_mutate(args: argparse.Namespace) -> int:
    """Mutation score of the vmtests against the series (see harness/mutate.py)."""
    from . import mutate

    if args.list:
        print(mutate.listing(mutate.load()))
        return 0
    if args.readme:
        for path in mutate.update_readme():
            print(f"rendered {path.relative_to(REPO)} into README.md")
        return 0
    if args.render:
        results = Path(args.results)
        if not results.exists():
            raise HarnessError(
                f"{results} does not exist", hint="run './ptimers mutate' first, or pass --results"
            )
        sys.stdout.write(mutate.render(json.loads(results.read_text())))
        return 0
    req = mutate.Request(
        only=args.only,
        sample=args.sample,
        seed=args.seed,
        flavor=args.flavor,
        control=not args.no_control,
        skip_equivalent=args.skip_equivalent,
        suite=args.suite,
        pytest_args=args.pytest_args,
        # Absolute: pytest runs in the suite snapshot, not here
        out=Path(args.out).resolve() if args.out else mutate.RESULTS_DIR,
        resume=args.resume,
    )
    return mutate.mutate(req)


def cmd_main(args: argparse.Namespace) -> int:
    """The default job: tests on both 6.12 kernels and the upstream peer, then a short bench."""
    rc = cmd_test(args)
    if rc != 0:
        return rc
    # A quick look, kept apart from results/bench/ (the release run that
    # `series export` renders the cover letter from).
    args.rounds, args.scale = 1, 0.25
    # One sizing (a server's possible CPUs) and one counted round
    args.possible_cpus, args.insn_rounds, args.profile = [64], 1, False
    args.out = str(REPO / "results" / "main-bench")
    # The benchmark's own options main does not have: every case, and the
    # three kernels it builds (main's --kernel are bzImages for the tests).
    args.cases, args.kernel = None, None
    return cmd_bench(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptimers", description=__doc__)
    sub = p.add_subparsers(dest="cmd")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(fn=fn)
        return sp

    add("source", cmd_source, "extract the pinned linux-source into the cache")
    for name, fn, hlp in (
        ("config", cmd_config, "print a flavor's merged config request"),
        ("build", cmd_build, "build a kernel (cached by content)"),
    ):
        sp = add(name, fn, hlp)
        sp.add_argument("--flavor", default="default")
        sp.add_argument("--source", type=Path, help="your own kernel tree instead of Debian's")
        sp.add_argument(
            "--config",
            action="append",
            default=[],
            metavar="CONFIG_X=v",
            help="extra config item (repeatable)",
        )
        if name == "build":
            sp.add_argument("--patched", action="store_true", help="build with the series applied")
            sp.add_argument("--force", action="store_true", help="rebuild even if cached")
    sp = add("boot", cmd_boot, "boot a kernel and run a command in it over SSH")
    sp.add_argument("--kernel", help="bzImage to boot (default: build --source/--patched)")
    sp.add_argument("--source", type=Path, help="build and boot your own kernel tree")
    sp.add_argument("--patched", action="store_true", help="with the series applied")
    sp.add_argument("--flavor", default="default")
    sp.add_argument("--boot-timeout", type=float, default=240.0)
    sp.add_argument("--timeout", type=float, default=600.0)
    sp.add_argument("command", nargs="*")
    sp = add("bench", cmd_bench, "benchmarks: unpatched vs patched vs upstream")
    sp.add_argument("--flavor", default="default")
    sp.add_argument("--rounds", type=int, default=3)
    sp.add_argument("--scale", type=float, default=1.0, help="shrink case sizes (e.g. 0.1)")
    sp.add_argument(
        "--kernel",
        action="append",
        metavar="LABEL=BZIMAGE",
        help="benchmark these kernels instead of building the three (repeatable); "
        "ratios are relative to the one labelled 'patched'",
    )
    sp.add_argument(
        "--cases", nargs="+", metavar="PATTERN", help="only the cases matching (e.g. 'a.pairs*')"
    )
    sp.add_argument(
        "--possible-cpus",
        type=int,
        nargs="+",
        default=[64, 2],
        metavar="N",
        help="boot every kernel with N possible CPUs, once per N (default: 64 2); the first "
        "is the headline (a server's count: it sizes upstream's timer hash table)",
    )
    sp.add_argument(
        "--insn-rounds",
        type=int,
        default=2,
        help="extra boots per kernel counting guest instructions with the QEMU plugin "
        "(default 2; 0: none)",
    )
    sp.add_argument(
        "--profile",
        action="store_true",
        help="the counting boots also attribute each loop's instructions to kernel functions",
    )
    sp.add_argument("--out", help="results directory (default: results/bench)")
    sp = add("report", cmd_report, "re-render reports from a bench results.json")
    sp.add_argument("--results-dir", default=str(REPO / "results" / "bench"))
    sp.add_argument(
        "--readme",
        action="store_true",
        help="re-render the README's benchmark blocks from the results files they name",
    )
    sp = add("criu-table", cmd_criu_table, "the real-CRIU matrix of a test run as a table")
    sp.add_argument(
        "--results", default=str(REPO / "results"), help="where ./ptimers test left its results"
    )
    sp.add_argument("--save", metavar="FILE", help="collect the cells into FILE (for the README)")
    sp.add_argument("--readme", action="store_true", help="re-render the README's CRIU table")
    sp = add("series", cmd_series, "export, apply or check the patch series")
    sp.add_argument("action", choices=["export", "apply", "check"])
    sp.add_argument("--tree", type=Path, help="git tree holding the series branch (export)")
    sp.add_argument(
        "--bench",
        type=Path,
        help="benchmark results.json the cover letter quotes (export; default: "
        "bench-data/bench/results.json, written by ./ptimers bench --out bench-data/bench)",
    )
    sp.add_argument(
        "--tests",
        type=Path,
        help="directory with the test-summary.json and test-summary-debug.json the cover "
        "letter's Testing paragraph is read from (export; default: results/)",
    )
    sp.add_argument("--branch", default="series")
    sp.add_argument("--flavor", default="default")
    sp.add_argument("--no-boot", action="store_true", help="check: skip booting and vmtests")
    sp = add("bisect", cmd_bisect, "git bisect run with harness builds and vmtests")
    sp.add_argument("good", nargs="?")
    sp.add_argument("bad", nargs="?")
    sp.add_argument("--tree", type=Path, help="kernel git tree (default: the patched worktree)")
    sp.add_argument("--flavor", default="default")
    sp.add_argument(
        "--selftest", action="store_true", help="bisect a known ABI break on a throwaway branch"
    )
    sp.add_argument("pytest_args", nargs="*", help="pytest arguments (after --)")
    sp = add("mutate", cmd_mutate, "mutation score: run the vmtests on mutants of the series")
    sp.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only mutants whose name matches (a glob or a substring; repeatable)",
    )
    sp.add_argument("--sample", type=int, metavar="N", help="N non-equivalent mutants at random")
    sp.add_argument(
        "--seed", type=int, help="seed of --sample (default: today's date, so CI rotates daily)"
    )
    sp.add_argument("--flavor", default="default")
    sp.add_argument(
        "--no-control", action="store_true", help="skip the run of the un-mutated series"
    )
    sp.add_argument(
        "--skip-equivalent", action="store_true", help="do not run mutants declared equivalent"
    )
    sp.add_argument(
        "--suite",
        default="HEAD",
        metavar="REV",
        help="the vmtests as committed at REV (default HEAD), or WORKTREE for the files as "
        "they are now",
    )
    sp.add_argument("--out", help="results directory (default: results/mutate)")
    sp.add_argument(
        "--resume",
        action="store_true",
        help="keep the outcomes of an interrupted run of the same series and suite",
    )
    sp.add_argument("--list", action="store_true", help="list the mutants and exit")
    sp.add_argument(
        "--results",
        default=str(REPO / "results" / "mutate" / "results.json"),
        help="results file for --render",
    )
    sp.add_argument("--render", action="store_true", help="print the README section from --results")
    sp.add_argument(
        "--readme",
        action="store_true",
        help="re-render the README's mutation-score blocks, each from the results file it names",
    )
    sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    sp = add("bisect-step", cmd_bisect_step, "one step of 'git bisect run' (internal)")
    sp.add_argument("--tree", type=Path, required=True)
    sp.add_argument("--flavor", default="default")
    sp.add_argument("pytest_args", nargs="*")
    for name, fn, hlp in (
        ("test", cmd_test, "unit tests + vmtests on each kernel (CI)"),
        ("main", cmd_main, "the main job (default)"),
    ):
        sp = add(name, fn, hlp)
        sp.add_argument("--flavor", default="default")
        sp.add_argument(
            "--which", choices=["all", "unpatched", "patched", "upstream"], default="all"
        )
        sp.add_argument("--kernel", action="append", help="test this bzImage instead of building")
        if name == "test":  # the main job's benchmark compares Debian's kernels
            sp.add_argument(
                "--source",
                type=Path,
                help="your own kernel git tree as the base (the series is applied onto its HEAD)",
            )
        sp.add_argument(
            "--no-upstream",
            action="store_true",
            help="leave out the upstream peer kernel (Debian unstable's) from --which all",
        )
        sp.add_argument("--skip-unit", action="store_true")
        sp.add_argument(
            "--no-compat", action="store_true", help="skip the second run through the -m32 helper"
        )
        sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Everything after the first "--" is for pytest.  argparse alone cannot
    # take "bisect GOOD BAD --tree X -- -k t": its positionals are consumed
    # before --tree, and the rest is "unrecognized".
    rest: list[str] | None = None
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1 :]
    args = parser().parse_args(argv or ["main"])
    if rest is not None:
        if hasattr(args, "pytest_args"):
            args.pytest_args = [*args.pytest_args, *rest]
        elif hasattr(args, "command"):  # boot: the guest command
            args.command = [*args.command, *rest]
        else:
            parser().error(f"'{args.cmd}' takes nothing after --")
    if not getattr(args, "fn", None):
        parser().print_help()
        return 2
    try:
        return int(args.fn(args))
    except HarnessError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
