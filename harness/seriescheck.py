"""``ptimers series check``: prove the series bisectable, patch by patch.

For each patch, on a fresh worktree of the base: ``git am`` it, run
``checkpatch.pl --strict`` on it, build (incrementally: one object
directory for the whole walk), run sparse on the C files the patch touched
and compare with the same files at the base, then boot the kernel and run
the vmtests (features are probed, so tests of interfaces a step lacks
skip).  After the last patch: build with ``CONFIG_POSIX_TIMERS=n`` and with
``CONFIG_CHECKPOINT_RESTORE=n``, and compile the helper against the
patched UAPI headers from ``make headers_install``.  One line per step;
the first broken step stops the walk with its reason.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import kbuild, kselftest, series, source
from .errors import HarnessError, SeriesError, SetupError
from .paths import HELPER_DIR, REPO

_SPARSE_LINE = re.compile(r"^(?P<file>[^:\s]+\.[ch]):\d+:\d+: (?P<msg>(warning|error): .*)$")


def _run(cmd: list[str], cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def fresh_worktree(base_tree: Path, name: str) -> Path:
    """A clean detached worktree of the base commit."""
    dest = base_tree.parent / name
    source.git(base_tree, "worktree", "prune")
    if dest.exists():
        source.git(base_tree, "worktree", "remove", "--force", str(dest), check=False)
        shutil.rmtree(dest, ignore_errors=True)
    source.git(
        base_tree, "worktree", "add", "-q", "--detach", str(dest), source.base_commit(base_tree)
    )
    return dest


def checkpatch(tree: Path, patch: Path) -> list[str]:
    """checkpatch --strict findings (empty: clean)."""
    proc = _run(
        ["perl", "scripts/checkpatch.pl", "--strict", "--no-summary", "--terse", str(patch)], tree
    )
    return [
        line for line in proc.stdout.splitlines() if re.search(r"\b(ERROR|WARNING|CHECK):", line)
    ]


def touched_c_files(tree: Path) -> list[str]:
    """C files the last commit changed (that still exist)."""
    out = source.git(tree, "diff", "--name-only", "HEAD~1", "HEAD")
    return [
        f
        for f in out.splitlines()
        if f.endswith(".c") and not f.startswith("tools/") and (tree / f).exists()
    ]


def sparse(tree: Path, objdir: Path, files: list[str]) -> set[str]:
    """Sparse messages (file + message, without line numbers) for ``files``."""
    if not files:
        return set()
    if shutil.which("sparse") is None:
        raise SetupError("sparse is not installed", hint="apt-get install sparse")
    objs = [f[:-2] + ".o" for f in files]
    proc = _run(
        ["make", f"O={objdir}", f"ARCH={kbuild.ARCH}", "C=2", "CHECK=sparse", "-j2", *objs], tree
    )
    return parse_sparse(proc.stdout + proc.stderr, tree.name)


def parse_sparse(output: str, tree_name: str) -> set[str]:
    """Sparse messages as ``path: message``, the path relative to the tree.

    Paths come relative to an object directory inside the tree
    (``../kernel/...``) or absolute for one outside it; line numbers are
    dropped so a message keeps its identity when a patch moves code.
    """
    found = set()
    for line in output.splitlines():
        m = _SPARSE_LINE.match(line.strip())
        if m:
            path = m.group("file")
            path = path[3:] if path.startswith("../") else path.split(f"{tree_name}/")[-1]
            found.add(f"{path}: {m.group('msg')}")
    return found


def headers_check(tree: Path, objdir: Path) -> str:
    """Install the UAPI headers; compile a probe and the helper against them."""
    hdr = objdir / "usr-headers"
    proc = _run(
        [
            "make",
            f"O={objdir}",
            f"ARCH={kbuild.ARCH}",
            "headers_install",
            f"INSTALL_HDR_PATH={hdr}",
        ],
        tree,
    )
    if proc.returncode:
        raise SeriesError("make headers_install failed", detail=proc.stderr[-2000:])
    probe = objdir / "uapi-probe.c"
    probe.write_text(
        "#include <linux/prctl.h>\n#include <asm/siginfo.h>\n"
        '_Static_assert(SIGEV_TIMER_ID == 8, "SIGEV_TIMER_ID");\n'
        '_Static_assert(PR_TIMER_CREATE_RESTORE_IDS == 77, "prctl 77");\n'
        '_Static_assert(PR_TIMER_CREATE_RESTORE_IDS_GET == 2, "GET");\n'
        "int main(void) { return 0; }\n"
    )
    cc = _run(
        [
            "gcc",
            "-nostdinc",
            "-isystem",
            str(hdr / "include"),
            "-isystem",
            "/usr/lib/gcc/x86_64-linux-gnu/12/include",
            "-fsyntax-only",
            str(probe),
        ],
        objdir,
    )
    if cc.returncode:
        raise SeriesError(
            "the patched UAPI headers lack the new constants", detail=cc.stderr[-2000:]
        )
    helper = _run(
        [
            "make",
            "-s",
            "-C",
            str(HELPER_DIR),
            f"O={objdir / 'helper'}",
            f"CFLAGS=-O2 -Wall -idirafter {hdr / 'include'}",
            "ptimerctl",
        ],
        REPO,
    )
    if helper.returncode:
        raise SeriesError(
            "the helper does not build against the patched headers", detail=helper.stderr[-2000:]
        )
    return "headers ok"


# What a patch must add (file, regex on an added line) for the vmtests to
# expect a feature from that step on: a step that should have it and does
# not fails instead of skipping the feature's tests.
FEATURE_MARKERS = {
    "proc_timers_by_id": ("include/linux/sched/signal.h", r"struct xarray\s+posix_timers;"),
    "sigev_timer_id": ("include/uapi/asm-generic/siginfo.h", r"#define SIGEV_TIMER_ID\b"),
    "prctl_restore_ids": ("include/uapi/linux/prctl.h", r"#define PR_TIMER_CREATE_RESTORE_IDS\b"),
}


def features_added(patch_text: str) -> set[str]:
    """Features whose marker line this patch adds (see FEATURE_MARKERS)."""
    found: set[str] = set()
    current = ""
    for line in patch_text.splitlines():
        if line.startswith("diff --git "):
            current = line.split(" b/", 1)[-1]
        elif line.startswith("+") and not line.startswith("+++"):
            for feat, (path, regex) in FEATURE_MARKERS.items():
                if current == path and re.search(regex, line):
                    found.add(feat)
    return found


def vmtests(image: Path, results_dir: Path, selftests: Path, expect: set[str]) -> str:
    """The whole vmtest suite, plus the tree's own timer selftests."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "vmtests/",
            f"--kernel={image}",
            f"--results-dir={results_dir}",
            f"--selftests={selftests}",
            f"--expect-features={','.join(sorted(expect))}",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    tail = proc.stdout.strip().splitlines()[-1:] or ["?"]
    if proc.returncode != 0:
        raise SeriesError(
            f"vmtests failed (pytest exit {proc.returncode}): {tail[0]}", detail=proc.stdout[-3000:]
        )
    return tail[0].strip("= ")


def check(args: argparse.Namespace) -> int:
    """Walk the series; print one line per step; stop at the first failure."""
    base = source.extract()
    ser = series.read()
    if not ser.patches:
        raise SeriesError("patches/ holds no series")
    series.check_base(ser, base)
    tree = fresh_worktree(base, "series-check")
    objdir = kbuild._objdir(tree, args.flavor)
    base_sparse: dict[str, set[str]] = {}
    step = ""
    expect: set[str] = set()
    try:
        for patch in ser.patches:
            step = f"{patch.number:04d} {patch.title}"
            start = time.monotonic()
            series.apply_patch(tree, patch)
            expect |= features_added(patch.path.read_text())
            notes = []
            findings = checkpatch(tree, patch.path)
            if findings:
                raise SeriesError("checkpatch --strict: " + findings[0], detail="\n".join(findings))
            notes.append("checkpatch ok")
            kernel = kbuild.build(tree, args.flavor)
            notes.append("build ok")
            files = touched_c_files(tree)
            new = sparse(tree, kbuild.configured_objdir(tree, args.flavor), files)
            for f in files:
                if f not in base_sparse:
                    base_sparse[f] = _sparse_at_base(base, f, args.flavor)
            old = set().union(*(base_sparse.get(f, set()) for f in files)) if files else set()
            added = sorted(new - old)
            if added:
                raise SeriesError(f"sparse: {len(added)} new warning(s)", detail="\n".join(added))
            n = len(files)
            notes.append(
                f"sparse ok ({n} file{'' if n == 1 else 's'})"
                if n
                else "sparse: no kernel .c touched"
            )
            if not args.no_boot:
                results = REPO / "results" / "series-check" / f"{patch.number:04d}"
                notes.append(vmtests(kernel.image, results, kselftest.build(tree), expect))
            print(
                f"{step}: " + ", ".join(notes) + f" [{time.monotonic() - start:.0f}s]", flush=True
            )
        # criu.config's MEM_SOFT_DIRTY depends on CHECKPOINT_RESTORE: asking for
        # both would fail the configuration check, not the series.
        for extra in (
            ["CONFIG_POSIX_TIMERS=n"],
            ["CONFIG_CHECKPOINT_RESTORE=n", "CONFIG_MEM_SOFT_DIRTY=n"],
        ):
            step = f"final build with {extra[0]}"
            start = time.monotonic()
            kbuild.build(tree, args.flavor, extra=extra)
            print(f"{step}: ok [{time.monotonic() - start:.0f}s]", flush=True)
        step = "helper against patched UAPI headers"
        print(f"{step}: {headers_check(tree, objdir)}", flush=True)
    except HarnessError as exc:
        print(f"{step}: FAILED: {exc.message}", flush=True)
        if exc.detail:
            print("\n".join("  | " + line for line in exc.detail.splitlines()[-30:]))
        return 1
    print("series check passed")
    return 0


def _sparse_at_base(base: Path, path: str, flavor: str) -> set[str]:
    """Sparse messages for one file at the base (configures the base objdir if needed)."""
    return sparse(base, kbuild.configured_objdir(base, flavor), [path])
