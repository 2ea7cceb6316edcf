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
import time
from pathlib import Path

from . import kbuild, kselftest, source
from .errors import HarnessError, SeriesError
from .paths import REPO

SKIP = 125
#: Exit status that makes ``git bisect run`` stop (128 and above abort).
ABORT = 128


def step(tree: Path, flavor: str, pytest_args: list[str]) -> int:
    """One bisection step; returns the exit code git bisect run expects.

    pytest's own output goes to a per-commit log; one line per step is
    printed (``bisect-step: <commit> <subject>: good|bad|skip|abort``) so a
    bisection reads as a short list of verdicts.
    """
    head = source.git(tree, "rev-parse", "--short=12", "HEAD")
    subject = source.git(tree, "log", "-1", "--format=%s")
    out_dir = REPO / "results" / "bisect" / head
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def report(code: int, why: str) -> int:
        print(
            f"bisect-step: {head} {subject}: {_WORDS.get(code, str(code))} "
            f"({why}) [{time.monotonic() - start:.0f}s]",
            flush=True,
        )
        return code

    try:
        kernel = kbuild.build(tree, flavor)
        selftests = kselftest.build(tree)
    except HarnessError as exc:
        (out_dir / "error.txt").write_text(exc.render() + "\n")
        return report(SKIP, f"{exc.message}")
    log = out_dir / "pytest.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "vmtests/",
                f"--kernel={kernel.image}",
                f"--selftests={selftests}",
                "--bisect",
                "-q",
                "-rf",
                "-p",
                "no:cacheprovider",
                "--results-dir",
                str(out_dir),
                *pytest_args,
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            # -rf lines are cut to the terminal width: keep the assertion readable
            env={**os.environ, "COLUMNS": "240"},
        )
    code = verdict(proc.returncode)
    return report(code, _why(log.read_text(errors="replace"), proc.returncode, log))


_SUMMARY = re.compile(r"\b\d+ (passed|failed|errors?|skipped|deselected)\b.* in [\d.]+s")
_WORDS = {0: "good", 1: "bad", SKIP: "skip", ABORT: "abort"}


def _why(output: str, pytest_exit: int, log: Path) -> str:
    """The line that explains a verdict: pytest's summary, failures first."""
    lines = output.splitlines()
    failed = [li for li in lines if li.startswith(("FAILED ", "ERROR "))]
    summary = next((li.strip("= ") for li in reversed(lines) if _SUMMARY.search(li)), "")
    parts = [summary or f"pytest exit {pytest_exit}"]
    if failed:
        parts.append(failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""))
    return "; ".join(parts) + f"; log {log}"


def verdict(pytest_exit: int) -> int:
    """Map ``pytest --bisect``'s exit status to what ``git bisect run`` expects.

    The plugin already says 0/1/125/128.  Of pytest's own statuses, an
    interruption (2), a usage error (4) or no selected tests (5) would be
    the same at every commit: stop.  An internal error (3) or anything
    else is no verdict on this commit: skip it.
    """
    if pytest_exit in (0, 1, SKIP, ABORT):
        return pytest_exit
    if pytest_exit in (2, 4, 5):
        return ABORT
    return SKIP


def run(
    tree: Path,
    good: str,
    bad: str,
    flavor: str,
    pytest_args: list[str],
    step_cmd: list[str] | None = None,
) -> str:
    """Bisect in ``tree``; return the first bad commit's hash.

    ``git bisect run`` drives :func:`step` (through ``ptimers bisect-step``,
    or ``step_cmd`` -- the host tests use a stand-in);
    its chatter and the steps' lines go to ``results/bisect/bisect.log``,
    the steps' verdicts and git's progress lines to the terminal.
    """
    env = {**os.environ, **source.GIT_ENV}

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, env=env
        )

    status = git("status", "--porcelain", "--untracked-files=no")
    if status.stdout.strip():
        raise SeriesError(
            f"{tree} has uncommitted changes; git bisect would check out over them",
            hint="commit or stash them first",
            detail=status.stdout,
        )
    git("bisect", "reset")
    started = git("bisect", "start", bad, good)
    if started.returncode:
        raise SeriesError("git bisect start failed", detail=started.stderr)
    log = REPO / "results" / "bisect" / "bisect.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        cmd = step_cmd or [
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
        print(started.stdout.strip(), flush=True)
        text = _stream(
            ["git", "-C", str(tree), "bisect", "run", *cmd],
            {**env, "PYTHONPATH": str(REPO)},
            log,
        )
        m = re.search(r"^([0-9a-f]{40}) is the first bad commit", text, re.M)
        if m is None:
            raise SeriesError(
                "git bisect run did not name a first bad commit",
                hint=f"full log: {log}",
                detail=text[-3000:],
            )
        return m.group(1)
    finally:
        git("bisect", "reset")


_SHOWN = re.compile(r"^(bisect-step: |Bisecting: |[0-9a-f]{40} is the first bad commit|bisect )")


def _stream(cmd: list[str], env: dict[str, str], log: Path) -> str:
    """Run ``cmd``, log everything, echo the lines a person follows; return all."""
    seen: list[str] = []
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()  # the log is what one tails during a long step
            seen.append(line)
            if _SHOWN.match(line):
                print(line.rstrip(), flush=True)
        proc.wait()
    return "".join(seen)


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
        # A fresh process's cursor reads as 1: IDs start at 1, 0 is handed
        # out only after the cursor wrapped.
        "cursor = sig->next_posix_timer_id;",
        "cursor = sig->next_posix_timer_id ?: 1;",
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
            raise SeriesError(
                f"bisect selftest: {old!r} not found in {path} of {good[:12]}; "
                "the series changed the code this selftest edits: update "
                "_THROWAWAY in harness/bisect.py"
            )
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
