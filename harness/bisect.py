"""``ptimers bisect GOOD BAD -- PYTEST_ARGS``: find the commit that broke a test.

Each step builds the tree's current commit with the harness's config and
runs the chosen vmtests with ``--bisect``: build, boot and configuration
problems exit 125 (``git bisect run`` skips the commit), test failures exit
1, passes 0.  :func:`selftest` proves the loop on a throwaway branch with a
known ABI break among harmless commits.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from . import kbuild, source
from .errors import HarnessError, SeriesError
from .paths import REPO

SKIP = 125


def step(tree: Path, flavor: str, pytest_args: list[str]) -> int:
    """One bisection step; returns the exit code git bisect run expects."""
    try:
        kernel = kbuild.build(tree, flavor)
    except HarnessError as exc:
        print(exc.render(), file=sys.stderr)
        return SKIP
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "vmtests/",
            f"--kernel={kernel.image}",
            "--bisect",
            "-q",
            "-p",
            "no:cacheprovider",
            "--results-dir",
            str(REPO / "results" / "bisect" / source.git(tree, "rev-parse", "--short", "HEAD")),
            *pytest_args,
        ],
        cwd=REPO,
    )
    if proc.returncode == 0:
        return 0
    if proc.returncode in (SKIP, 3, 4):  # infrastructure, boot failure, usage error
        return SKIP
    return 1


def run(tree: Path, good: str, bad: str, flavor: str, pytest_args: list[str]) -> str:
    """Bisect in ``tree``; return the first bad commit's hash."""
    env = {**os.environ, **source.GIT_ENV}

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, env=env
        )

    git("bisect", "reset")
    start = git("bisect", "start", bad, good)
    if start.returncode:
        raise SeriesError("git bisect start failed", detail=start.stderr)
    try:
        cmd = [
            sys.executable,
            "-m",
            "harness",
            "bisect-step",
            "--tree",
            str(tree),
            "--flavor",
            flavor,
            "--",
            *pytest_args,
        ]
        proc = subprocess.run(
            ["git", "-C", str(tree), "bisect", "run", *cmd],
            text=True,
            capture_output=True,
            env={**env, "PYTHONPATH": str(REPO)},
        )
        sys.stdout.write(proc.stdout[-5000:])
        m = re.search(r"^([0-9a-f]{40}) is the first bad commit", proc.stdout, re.M)
        if m is None:
            raise SeriesError(
                "git bisect run did not name a first bad commit",
                detail=(proc.stdout + proc.stderr)[-3000:],
            )
        return m.group(1)
    finally:
        git("bisect", "reset")


# (file, old, new, subject) of the throwaway commits; the second breaks the ABI.
_THROWAWAY = [
    (
        "kernel/time/itimer.c",
        "/*\n",
        "/* bisect selftest: harmless comment\n *\n",
        "itimer: Harmless comment (bisect selftest)",
    ),
    (
        "kernel/time/posix-timers.c",
        "XA_LIMIT(0, INT_MAX)",
        "XA_LIMIT(1, INT_MAX)",
        "posix-timers: Start IDs at 1 (bisect selftest: the ABI break)",
    ),
    (
        "kernel/time/alarmtimer.c",
        "/*\n",
        "/* bisect selftest: harmless comment\n *\n",
        "alarmtimer: Harmless comment (bisect selftest)",
    ),
    (
        "kernel/time/posix-cpu-timers.c",
        "/*\n",
        "/* bisect selftest: harmless comment\n *\n",
        "posix-cpu-timers: Harmless comment (bisect selftest)",
    ),
]


def selftest(patched_tree: Path, flavor: str) -> int:
    """Bisect a known regression of our own making; it must name its commit."""
    from .seriescheck import fresh_worktree

    base = Path(
        source.git(patched_tree, "rev-parse", "--path-format=absolute", "--git-common-dir")
    ).parent
    tree = fresh_worktree(base, "bisect-selftest")
    good = source.git(patched_tree, "rev-parse", "HEAD")
    source.git(tree, "checkout", "-q", "--detach", good)
    breaking = ""
    for path, old, new, subject in _THROWAWAY:
        f = tree / path
        text = f.read_text()
        if old not in text:
            raise SeriesError(f"bisect selftest: {old!r} not found in {path}")
        f.write_text(text.replace(old, new, 1))
        source.git(tree, "commit", "-q", "-a", "-m", subject)
        if "ABI break" in subject:
            breaking = source.git(tree, "rev-parse", "HEAD")
    bad = source.git(tree, "rev-parse", "HEAD")
    found = run(
        tree,
        good,
        bad,
        flavor,
        ["-k", "test_fresh_process_counts_from_zero or test_deleted_id_not_reused"],
    )
    subject = source.git(tree, "log", "-1", "--format=%s", found)
    print(f"bisect named {found[:12]} ({subject}); the break is {breaking[:12]}")
    return 0 if found == breaking else 1
