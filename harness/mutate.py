"""``ptimers mutate``: measure how many small bugs in the series the vmtests catch.

A suite that passes on the series says little until it is shown to fail
on a broken one.  ``mutants/`` holds small semantic mutants of the series'
kernel code, each one ``git diff`` of an edited patched tree behind a
header that says what it breaks and which test should catch it.  For each
mutant the series is checked out in a worktree of the harness's own
(``mutate``, next to ``series-check``), the mutant applied, the kernel
built incrementally in that worktree's one object directory (ccache shares
the objects of every other tree of the same content), and the suite run as
a kernel developer would: ``pytest vmtests/ --kernel=M --bisect -x``.  The
``--bisect`` exit status is the verdict: 1 (a test failed, or the kernel
splatted, crashed or hung in one) killed, 0 survived, anything else (the
mutant does not apply or build, the kernel does not boot) an error, which
is reported and not counted.  A mutant declared equivalent (``Equivalent:``
in its header, with the reason) is expected to survive.

The suite is a snapshot (``git archive``) of a commit of this repository,
``HEAD`` unless ``--suite`` says otherwise: a full run takes hours, and the
working tree may change under it meanwhile; the score then belongs to one
commit of the suite, which the results name.  Before the mutants, the
un-mutated series goes through the same path (the control): if the suite
does not pass on it, no kill means anything.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import kbuild, kselftest, readmeblocks, series, source
from .errors import HarnessError
from .paths import REPO, cache_dir
from .pytest_plugin import DEBUG_TOOLS
from .results import write_json

MUTANTS_DIR = REPO / "mutants"
RESULTS_DIR = REPO / "results" / "mutate"
#: What the series adds, demanded of every mutant (and the control).
SERIES_FEATURES = ("sigev_timer_id", "prctl_restore_ids", "proc_timers_by_id")
#: ... and in the debug flavor, whose failslab shows the reserved slot, also
#: that and the debug checkers, as ./ptimers test --flavor debug demands.
DEBUG_FEATURES = ("reserved_slot", *DEBUG_TOOLS)
#: The un-mutated series, run first through the same path.
CONTROL = "control"
#: The "killer" of a mutant that failed the session before any test ran.
SESSION = "(session setup)"
#: The header fields a mutant file may carry (a typo must not silently drop one).
FIELDS = ("Subject", "Target", "Caught-by", "Equivalent", "Flavor")
_FIELD = re.compile(r"^(?P<key>[A-Z][A-Za-z-]*):[ \t]*(?P<value>.*)$")
_NAME = re.compile(r"^\d\d-[a-z0-9][a-z0-9-]*$")


class MutantError(HarnessError):
    """A mutant file is malformed, or the mutant tree could not be prepared."""


@dataclass(frozen=True)
class Mutant:
    """One mutant: its header and the diff that makes it."""

    name: str  # the file name without .patch: "03-cursor-not-advanced"
    subject: str  # what it breaks, one line
    target: str  # where: "kernel/time/posix-timers.c: posix_timer_add()"
    caught_by: str  # the test expected to kill it ("" for an equivalent mutant)
    equivalent: str  # why it cannot be told apart from the series ("" if it can)
    flavor: str  # the only flavor whose checkers can see it ("" = any)
    notes: str  # the free text between the header and the diff
    diff: str

    @property
    def files(self) -> list[str]:
        """The paths the diff changes."""
        return re.findall(r"^diff --git a/(\S+) b/", self.diff, re.M)


def parse(text: str, name: str) -> Mutant:
    """Parse a mutant file.

    Format: ``Key: value`` header lines (a value may continue on lines that
    start with whitespace) up to the first blank line; then free text; then
    the diff, from the first line starting with ``diff --git`` to the end,
    exactly as ``git diff`` printed it.  ``Subject`` is required, and
    ``Caught-by`` unless the mutant is declared ``Equivalent`` (whose value
    is the reason).  ``git apply`` is given only the diff, so the free text
    may say anything.

    Raises:
        MutantError: a missing or unknown field, a bad name, or no diff.
    """
    where = f"mutants/{name}.patch"
    if not _NAME.match(name):
        raise MutantError(
            f"{where}: the name must be NN-lowercase-words (e.g. 03-cursor-not-advanced)"
        )
    start = re.search(r"^diff --git ", text, re.M)
    if start is None:
        raise MutantError(
            f"{where}: no diff (expected 'git diff' output after the header)",
            hint="edit the mutate worktree and append 'git -C TREE diff' to the file",
        )
    head, diff = text[: start.start()], text[start.start() :]
    lines = head.splitlines()
    fields: dict[str, str] = {}
    key = ""
    i = 0
    for i, line in enumerate(lines):
        if not line.strip():
            break
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
            continue
        m = _FIELD.match(line)
        if m is None:
            raise MutantError(f"{where}: header line {i + 1} is not 'Key: value': {line!r}")
        key = m.group("key")
        if key not in FIELDS:
            raise MutantError(
                f"{where}: unknown header field {key!r}", hint=f"fields: {', '.join(FIELDS)}"
            )
        if key in fields:
            raise MutantError(f"{where}: header field {key!r} given twice")
        fields[key] = m.group("value").strip()
    else:
        i = len(lines)
    notes = "\n".join(lines[i + 1 :]).strip()
    if not fields.get("Subject"):
        raise MutantError(f"{where}: no Subject: (what the mutant breaks)")
    if not fields.get("Caught-by") and not fields.get("Equivalent"):
        raise MutantError(
            f"{where}: neither Caught-by: (the test that should kill it) nor "
            "Equivalent: (why no test can)"
        )
    return Mutant(
        name=name,
        subject=fields["Subject"],
        target=fields.get("Target", ""),
        caught_by=fields.get("Caught-by", ""),
        equivalent=fields.get("Equivalent", ""),
        flavor=fields.get("Flavor", ""),
        notes=notes,
        diff=diff if diff.endswith("\n") else diff + "\n",
    )


def load(directory: Path = MUTANTS_DIR) -> list[Mutant]:
    """Every ``NN-*.patch`` of ``directory``, in name order.

    Raises:
        MutantError: a malformed file, or two files with one number.
    """
    out = [parse(p.read_text(), p.stem) for p in sorted(directory.glob("[0-9][0-9]-*.patch"))]
    numbers = [m.name[:2] for m in out]
    if dup := sorted({n for n in numbers if numbers.count(n) > 1}):
        raise MutantError(f"mutants/: number(s) {', '.join(dup)} used twice")
    return out


def matches(mutant: Mutant, pattern: str) -> bool:
    """``--only``: a glob on the name, or a plain substring of it."""
    return fnmatch.fnmatchcase(mutant.name, pattern) or pattern in mutant.name


def default_seed(today: datetime.date | None = None) -> int:
    """The day's seed (YYYYMMDD, UTC): a CI sample rotates daily, reproducibly."""
    day = today or datetime.datetime.now(datetime.UTC).date()
    return int(day.strftime("%Y%m%d"))


def select(
    mutants: Sequence[Mutant],
    only: Sequence[str] = (),
    sample: int | None = None,
    seed: int = 0,
    flavor: str = "default",
    skip_equivalent: bool = False,
) -> tuple[list[Mutant], list[tuple[Mutant, str]]]:
    """The mutants to run and, with the reason, those left out.

    ``only`` keeps the mutants any pattern matches (and is not reported as
    leaving the rest out).  A mutant that only another flavor's checkers
    can see (``Flavor: debug``) is left out of other flavors' runs, named:
    running it would only restate that default kernels carry no KASAN.  A
    sample draws from the non-equivalent mutants only: they are the ones
    that can fail.
    """
    pool = [m for m in mutants if not only or any(matches(m, p) for p in only)]
    left: list[tuple[Mutant, str]] = []
    run: list[Mutant] = []
    for m in pool:
        if m.flavor and m.flavor != flavor:
            left.append((m, f"needs --flavor {m.flavor}"))
        elif m.equivalent and (skip_equivalent or sample is not None):
            left.append((m, "equivalent"))
        else:
            run.append(m)
    if sample is not None and sample < len(run):
        chosen = set(random.Random(seed).sample(range(len(run)), sample))
        left += [
            (m, f"not in the sample (seed {seed})") for i, m in enumerate(run) if i not in chosen
        ]
        run = [m for i, m in enumerate(run) if i in chosen]
    left.sort(key=lambda item: item[0].name)
    return run, left


KILLED, SURVIVED, ERROR = "killed", "survived", "error"


def verdict(pytest_exit: int) -> str:
    """``pytest --bisect``'s exit status as a verdict.

    1 is a bad kernel: a test failed, or the kernel splatted, crashed or
    hung during one.  0: every test passed.  125 (the kernel did not boot,
    the helper did not build), 128 (usage or collection errors) and the
    rest say nothing about the mutant.
    """
    if pytest_exit == 1:
        return KILLED
    if pytest_exit == 0:
        return SURVIVED
    return ERROR


def killer(junit: Path) -> tuple[str, str] | None:
    """The first failed or errored test in a JUnit file: (node id, message).

    pytest's xunit1 records carry ``file`` (``vmtests/test_x.py``),
    ``classname`` (``vmtests.test_x[.TestClass]``) and ``name``
    (``test_y[param]``); the node id is rebuilt from them.
    """
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return None
    for case in root.iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            continue
        file = case.get("file", "")
        classname = case.get("classname", "")
        module = file[:-3].replace("/", ".") if file.endswith(".py") else ""
        classes = classname[len(module) + 1 :] if module and classname.startswith(module) else ""
        parts = [file or classname.replace(".", "/") + ".py", *classes.split(".")]
        nodeid = "::".join(p for p in parts if p) + "::" + case.get("name", "?")
        message = (bad.get("message") or bad.text or "").strip().splitlines()
        return nodeid, message[0][:300] if message else ""
    return None


@dataclass
class Outcome:
    """What happened to one mutant (or the control)."""

    name: str
    verdict: str
    subject: str = ""
    target: str = ""
    caught_by: str = ""  # expected killer, from the header
    equivalent: str = ""
    killer: str = ""  # the test that failed first
    message: str = ""  # its assertion, or the error
    pytest_exit: int | None = None
    build_seconds: float | None = None
    build_cached: bool = False
    test_seconds: float | None = None
    log: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def expected(self) -> bool:
        """Whether the verdict is the one the header promises (the control: a pass)."""
        if self.equivalent or self.name == CONTROL:
            return self.verdict == SURVIVED
        return self.verdict == KILLED

    def line(self) -> str:
        """The one line printed for this mutant."""
        times = []
        if self.build_seconds is not None:
            times.append(f"build {self.build_seconds:.0f}s{' cached' if self.build_cached else ''}")
        if self.test_seconds is not None:
            times.append(f"tests {self.test_seconds:.0f}s")
        when = f" [{', '.join(times)}]" if times else ""
        if self.verdict == KILLED:
            what = f"killed by {self.killer or '(no failed test recorded)'}"
            if self.killer == SESSION:
                what += f": {self.message}"
            if self.equivalent:
                what += " -- but it is declared equivalent: a flaky test, or the claim is wrong"
            elif self.caught_by and self.killer and not self.killer.startswith(self.caught_by):
                what += f" (expected {self.caught_by})"
        elif self.verdict == SURVIVED:
            if self.name == CONTROL:
                what = "passed (the suite passes on the un-mutated series)"
            elif self.equivalent:
                what = "survived (equivalent, as declared)"
            else:
                what = f"SURVIVED (expected to be killed by {self.caught_by})"
        else:
            what = f"ERROR: {self.message}"
        return f"{self.name}: {what}{when}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected"] = self.expected
        return data


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts for the summary; the score is killed / non-equivalent run without error."""
    mutants = [o for o in outcomes if o.name != CONTROL]
    real = [o for o in mutants if not o.equivalent and o.verdict != ERROR]
    killed = [o for o in real if o.verdict == KILLED]

    def median(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return round(statistics.median(got), 1) if got else None

    return {
        "killed": len(killed),
        "non_equivalent": len(real),
        "survived": sorted(o.name for o in real if o.verdict == SURVIVED),
        "equivalent": len([o for o in mutants if o.equivalent]),
        "equivalent_killed": sorted(
            o.name for o in mutants if o.equivalent and o.verdict == KILLED
        ),
        "errors": sorted(o.name for o in mutants if o.verdict == ERROR),
        "build_seconds_median": median([o.build_seconds for o in mutants if not o.build_cached]),
        "test_seconds_median": median([o.test_seconds for o in mutants]),
    }


def summary_line(sc: dict[str, Any]) -> str:
    """The closing line: the score and what keeps it from being complete."""
    pct = f" ({100 * sc['killed'] / sc['non_equivalent']:.0f}%)" if sc["non_equivalent"] else ""
    out = (
        f"mutation score: {sc['killed']}/{sc['non_equivalent']} non-equivalent mutants "
        f"killed{pct}; {sc['equivalent']} equivalent"
    )
    if sc["survived"]:
        out += f"; survived: {', '.join(sc['survived'])}"
    if sc["equivalent_killed"]:
        out += f"; declared equivalent but killed: {', '.join(sc['equivalent_killed'])}"
    if sc["errors"]:
        out += f"; errors (not counted): {', '.join(sc['errors'])}"
    return out


def failed(outcomes: Sequence[Outcome]) -> bool:
    """Whether the run fails: a failed control, a survivor, a surprise kill, an error."""
    return any(not o.expected for o in outcomes)


# --- the tree, the suite, one mutant ------------------------------------------


def _git(tree: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(tree), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **source.GIT_ENV},
    )


def prepare_tree(base: Path, ser: series.Series, name: str = "mutate") -> Path:
    """A worktree of the base with the series applied, clean.

    Kept between runs (its object directory is what makes each mutant's
    build incremental); a marker next to it records which series it holds,
    so a changed series gets a fresh worktree.
    """
    from .seriescheck import fresh_worktree

    tree = base.parent / name
    marker = base.parent / f"{name}.series"
    digest = ser.digest()
    if (tree / ".git").exists() and marker.exists():
        recorded = marker.read_text().split()
        head = _git(tree, "rev-parse", "HEAD").stdout.strip()
        if recorded == [digest, head]:
            restore(tree)
            return tree
    tree = fresh_worktree(base, name)
    series.apply(tree, ser)
    marker.write_text(f"{digest} {_git(tree, 'rev-parse', 'HEAD').stdout.strip()}\n")
    return tree


def restore(tree: Path) -> None:
    """Undo a mutant: the tracked files back to HEAD (only those a mutant changed
    get new mtimes, so the next build recompiles just them).

    Raises:
        MutantError: the tree is still not clean (a file a mutant added?).
    """
    _git(tree, "checkout", "-q", "--", ".")
    status = _git(tree, "status", "--porcelain", "--untracked-files=normal").stdout
    if status.strip():
        raise MutantError(
            f"{tree} is not clean after undoing a mutant",
            hint=f"inspect it, or remove it ({tree}) for a fresh one",
            detail=status,
        )


def apply(tree: Path, mutant: Mutant) -> None:
    """Apply a mutant's diff to the clean tree.

    Raises:
        MutantError: it does not apply (the series moved: regenerate the mutant).
    """
    proc = _git(tree, "apply", "--whitespace=nowarn", "-", stdin=mutant.diff)
    if proc.returncode != 0:
        raise MutantError(
            f"mutants/{mutant.name}.patch does not apply to the series",
            hint="the series changed under it: apply it by hand with 'git apply -3' in "
            f"{tree}, fix it, and write 'git diff' back into the file",
            detail=proc.stderr.strip(),
        )


def suite_snapshot(rev: str) -> tuple[Path, str]:
    """The vmtests as committed at ``rev``, extracted once into the cache.

    Returns the directory and the full commit hash.

    Raises:
        MutantError: ``rev`` is not a commit of this repository.
    """
    proc = _git(REPO, "rev-parse", "--verify", f"{rev}^{{commit}}")
    if proc.returncode != 0:
        raise MutantError(f"--suite {rev}: not a commit of {REPO}", detail=proc.stderr.strip())
    commit = proc.stdout.strip()
    dest = cache_dir("mutate") / f"suite-{commit[:12]}"
    if dest.is_dir():
        return dest, commit
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise MutantError("git archive failed", detail=archive.stderr.decode(errors="replace"))
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    tmp.rename(dest)
    return dest, commit


@dataclass(frozen=True)
class Request:
    """What ``ptimers mutate`` was asked to do."""

    only: list[str] = field(default_factory=list)
    sample: int | None = None
    seed: int | None = None
    flavor: str = "default"
    control: bool = True
    skip_equivalent: bool = False
    suite: str = "HEAD"  # a commit of this repository, or "WORKTREE" for the files as they are
    pytest_args: list[str] = field(default_factory=list)
    out: Path = RESULTS_DIR
    timeout: float = 3600.0
    resume: bool = False  # keep the outcomes of an interrupted run of the same suite


def expected_features(flavor: str) -> tuple[str, ...]:
    """What a mutant's kernel (and the control) must offer in @flavor."""
    return SERIES_FEATURES + (DEBUG_FEATURES if flavor == "debug" else ())


def run_suite(
    suite: Path,
    image: Path,
    out: Path,
    selftests: Path,
    extra: Sequence[str],
    timeout: float,
    run_first: Sequence[str] = (),
    flavor: str = "default",
) -> tuple[int, float]:
    """``pytest vmtests/ --kernel=IMAGE --bisect -x`` in ``suite``; (exit, seconds).

    ``run_first``: node IDs to run before the rest (the mutant's Caught-by).

    pytest's output goes to ``out/pytest.log``; a timeout is exit -1 (an error).
    """
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "vmtests/",
        f"--kernel={image}",
        f"--selftests={selftests}",
        "--bisect",
        "-x",
        "-q",
        "-rfE",
        "-p",
        "no:cacheprovider",
        f"--results-dir={out}",
        # The kernel is the series (mutated): it must have what the series
        # adds, as ./ptimers test demands of the patched kernel; a mutant
        # that disables a feature would otherwise pass as an old kernel.
        f"--expect-features={','.join(expected_features(flavor))}",
        # The same suite, the test expected to kill the mutant first: with -x
        # a killed mutant costs that test, not the tests before it.
        *[f"--run-first={first}" for first in run_first],
        *extra,
    ]
    start = time.monotonic()
    with (out / "pytest.log").open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(
                cmd,
                cwd=suite,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                # -rf lines are cut to the terminal width: keep the assertion readable
                env={**os.environ, "COLUMNS": "240"},
            ).returncode
        except subprocess.TimeoutExpired:
            # subprocess.run killed pytest; QEMU's reaper sees its pipe close
            # and takes the guest down (harness/reaper.py).
            rc = -1
    return rc, time.monotonic() - start


def _counts(out: Path) -> dict[str, int]:
    try:
        data = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    counts = data.get("counts", {})
    return {k: int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def run_one(
    tree: Path,
    mutant: Mutant | None,
    req: Request,
    suite: Path,
    selftests: Path,
    build: Callable[[Path, str], kbuild.Kernel] = kbuild.build,
) -> Outcome:
    """Apply, build, test and undo one mutant (``None``: the control)."""
    name = mutant.name if mutant else CONTROL
    o = Outcome(name=name, verdict=ERROR)
    if mutant is not None:
        o.subject, o.target = mutant.subject, mutant.target
        o.caught_by, o.equivalent = mutant.caught_by, mutant.equivalent
    else:
        o.subject = "the un-mutated series"
    out = req.out / name
    # No stale junit.xml or results.json from an earlier run may name a killer.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    build_log = out / "build.txt"
    try:
        if mutant is not None:
            apply(tree, mutant)
        start = time.monotonic()
        with (
            build_log.open("w") as blog,
            contextlib.redirect_stdout(blog),
            contextlib.redirect_stderr(blog),
        ):
            kernel = build(tree, req.flavor)
        o.build_seconds = round(time.monotonic() - start, 1)
        o.build_cached = _CACHED.search(build_log.read_text()) is not None
    except HarnessError as exc:
        o.message = exc.message
        (out / "error.txt").write_text(exc.render() + "\n")
        return o
    finally:
        restore(tree)
    # Caught-by names node IDs (or, for a session check, an option: none)
    named = mutant.caught_by.replace(",", " ").split() if mutant is not None else []
    first = [n for n in named if n.startswith("vmtests/")]
    rc, seconds = run_suite(
        suite,
        kernel.image,
        out,
        selftests,
        req.pytest_args,
        req.timeout,
        run_first=first,
        flavor=req.flavor,
    )
    o.pytest_exit, o.test_seconds = rc, round(seconds, 1)
    o.log = str(out / "pytest.log")
    o.counts = _counts(out)
    o.verdict = verdict(rc)
    if o.verdict == KILLED:
        found = killer(out / "junit.xml")
        if found:
            o.killer, o.message = found
        else:
            # No test failed: the session ended before the tests, when the
            # plugin's feature probes found the kernel broken (pytest.exit(1)).
            o.killer, o.message = SESSION, _last_line(out / "pytest.log")
    elif o.verdict == ERROR:
        o.message = (
            f"pytest timed out after {req.timeout:.0f}s"
            if rc == -1
            else f"pytest exit {rc}: {_last_line(out / 'pytest.log')}"
        )
    return o


#: What kbuild.build() prints for a cache hit.
_CACHED = re.compile(r"^kernel \w+: cached ", re.M)


def _last_line(log: Path) -> str:
    """The line of pytest's output that says why the session gave no verdict.

    pytest.exit() prints ``!!! _pytest.outcomes.Exit: <reason> !!!``; the
    reason is what counts.
    """
    lines = [li for li in log.read_text(errors="replace").splitlines() if li.strip()]
    exits = [m.group(1) for li in lines if (m := _EXIT.search(li))]
    errors = [li for li in lines if li.startswith(("error:", "ERROR"))]
    return (exits or errors or lines or ["(no output)"])[-1][:300]


_EXIT = re.compile(r"_pytest\.outcomes\.Exit: (.*?)\s*!*$")


def mutate(req: Request) -> int:
    """Run the selected mutants; print one line each and the score; write the JSON."""
    mutants = load()
    seed = req.seed if req.seed is not None else default_seed()
    chosen, left = select(mutants, req.only, req.sample, seed, req.flavor, req.skip_equivalent)
    if not chosen:
        raise MutantError("no mutant selected", hint="see './ptimers mutate --list'")
    wall = time.monotonic()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    earlier = 0.0
    base = source.extract()
    ser = series.read()
    series.check_base(ser, base)
    tree = prepare_tree(base, ser)
    if req.suite == "WORKTREE":
        suite, suite_commit = REPO, _git(REPO, "rev-parse", "HEAD").stdout.strip()
        dirty = bool(_git(REPO, "status", "--porcelain", "--", "vmtests", "harness").stdout)
    else:
        (suite, suite_commit), dirty = suite_snapshot(req.suite), False
    selftests = kselftest.build(tree)
    print(
        f"mutate: {len(chosen)} mutant(s) of the series in {tree}, flavor {req.flavor}; "
        f"suite {suite_commit[:12]}{' + uncommitted changes' if dirty else ''} ({suite}); "
        f"results in {req.out}",
        flush=True,
    )
    for skipped, why in left:
        if not req.only or why.startswith("needs"):
            print(f"{skipped.name}: not run ({why})", flush=True)
    req.out.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    same = {
        "flavor": req.flavor,
        "series_head": _git(tree, "rev-parse", "HEAD").stdout.strip(),
        "suite_commit": suite_commit,
        "pytest_args": req.pytest_args,
    }
    prior: dict[str, Outcome] = {}
    segments = 1
    if req.resume and not dirty:
        prior, old_meta = resumable(req.out / "results.json", same)
        if prior:
            started = old_meta.get("started", started)
            earlier = float(old_meta.get("wall_seconds", 0.0))
            segments = int(old_meta.get("segments", 1)) + 1
            print(f"mutate: resuming: {len(prior)} outcome(s) kept from {started}", flush=True)

    def write() -> dict[str, Any]:
        data = {
            "meta": {
                "started": started,
                # Summed over the segments of a resumed run: the time it took
                "wall_seconds": round(earlier + time.monotonic() - wall, 1),
                "segments": segments,
                **same,
                "series_digest": ser.digest(),
                "suite_dirty": dirty,
                "only": req.only,
                "sample": req.sample,
                "seed": seed if req.sample is not None else None,
                "cpus": os.cpu_count(),
                "complete": len(outcomes) == len(chosen) + int(req.control),
            },
            "score": score(outcomes),
            "mutants": [o.to_json() for o in outcomes],
            "not_run": [{"name": m.name, "why": why} for m, why in left],
        }
        write_json(req.out / "results.json", data)
        return data

    todo: list[Mutant | None] = [None] if req.control else []
    todo += chosen
    for m in todo:
        kept = prior.get(m.name if m else CONTROL)
        o = kept or run_one(tree, m, req, suite, selftests)
        outcomes.append(o)
        print(o.line() + (" (kept)" if kept else ""), flush=True)
        write()
        if m is None and o.verdict != SURVIVED:
            print(
                "mutate: the suite does not pass on the un-mutated series; "
                f"no kill would mean anything (see {o.log or req.out / CONTROL})",
                flush=True,
            )
            return 1
    data = write()
    minutes = data["meta"]["wall_seconds"] / 60
    print(summary_line(data["score"]) + f" [{minutes:.0f} min]", flush=True)
    print(f"mutate: results in {req.out / 'results.json'}", flush=True)
    return 1 if failed(outcomes) else 0


def resumable(path: Path, same: dict[str, Any]) -> tuple[dict[str, Outcome], dict[str, Any]]:
    """The outcomes of an interrupted run to keep, and its meta.

    Only a run of the same series, suite, flavor and pytest arguments
    counts: anything else measured something else.  Errors are not kept:
    a broken build or an infrastructure failure says nothing about the
    mutant, so a resumed run tries those mutants again (after the mutant
    or the machine was fixed).
    """
    try:
        data = json.loads(path.read_text())
        meta = data["meta"]
        if any(meta.get(k) != v for k, v in same.items()):
            return {}, {}
        names = {f.name for f in fields(Outcome)}
        kept = [Outcome(**{k: v for k, v in o.items() if k in names}) for o in data["mutants"]]
    except (OSError, ValueError, KeyError, TypeError):
        return {}, {}
    return {o.name: o for o in kept if o.verdict != ERROR}, meta


def listing(mutants: Sequence[Mutant]) -> str:
    """``--list``: one line per mutant, what it breaks and what should catch it."""
    rows = []
    for m in mutants:
        tag = " [equivalent]" if m.equivalent else ""
        tag += f" [flavor {m.flavor}]" if m.flavor else ""
        rows.append(f"{m.name}{tag}: {m.subject}\n    caught by: {m.caught_by or '-'}")
    return "\n".join(rows)


# --- the README section --------------------------------------------------------


def block_marker(path: str) -> str:
    """The line that opens a generated block rendered from ``path``."""
    return readmeblocks.marker("mutate", path, "./ptimers mutate --readme")


def _md(text: str, limit: int = 240) -> str:
    """Text for a Markdown table cell: no pipes, no line breaks, not too long."""
    flat = " ".join(text.replace("|", "\\|").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _short(nodeid: str) -> str:
    return nodeid.removeprefix("vmtests/")


def _seconds(value: float | None) -> str:
    return f"{value:.0f} s" if value is not None else "-"


def render(data: dict[str, Any]) -> str:
    """A results file as Markdown: what was run, the score line, one row per mutant.

    Every number comes from the file; nothing is typed by hand.
    """
    meta, sc = data["meta"], data["score"]
    outcomes = [o for o in data["mutants"] if o["name"] != CONTROL]
    control = next((o for o in data["mutants"] if o["name"] == CONTROL), None)
    hours, rest = divmod(round(meta["wall_seconds"] / 60), 60)
    extra = " ".join(meta.get("pytest_args") or [])
    lines = [
        f"Measured {meta['started'][:10]} on the series {meta['series_head'][:12]} "
        f"(flavor {meta['flavor']}) with the suite of commit {meta['suite_commit'][:12]}"
        + (f" and `{extra}`" if extra else "")
        + f", {meta['cpus']} cores, TCG: {len(outcomes)} mutants in {hours} h {rest:02d} min"
        + (
            f" (first the control, the un-mutated series: "
            f"{control['counts'].get('passed', 0)} passed, "
            f"{control['counts'].get('skipped', 0)} skipped in {_seconds(control['test_seconds'])})"
            if control
            else ""
        )
        + f"; median per mutant {_seconds(sc['build_seconds_median'])} build (cache hits left "
        f"out), {_seconds(sc['test_seconds_median'])} suite (the mutant's Caught-by test runs "
        "first, and the suite stops at the first failure).",
        "",
        *(
            []
            if meta.get("complete", True)
            else ["**Incomplete:** the run stopped before every selected mutant had run.", ""]
        ),
        "```",
        summary_line(sc),
        "```",
        "",
        "| mutant | breaks | verdict | first failing test |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        if o["verdict"] == KILLED:
            v = "killed" + (" (declared equivalent!)" if o["equivalent"] else "")
            who = f"`{_short(o['killer'])}`" if o["killer"] else "(none recorded)"
            if o["killer"] == SESSION:
                who = f"session setup: {_md(o['message'])}"
        elif o["verdict"] == SURVIVED:
            v = "equivalent" if o["equivalent"] else "**survived**"
            who = (
                "(the reason is in its file)"
                if o["equivalent"]
                else f"(expected: {_md(_short(o['caught_by']))})"
            )
        else:
            v, who = "error", _md(o["message"])
        lines.append(f"| `{o['name']}` | {_md(o['subject'])} | {v} | {who} |")
    for item in data.get("not_run", []):
        lines.append(f"| `{item['name']}` | | not run: {item['why']} | |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path = REPO / "README.md", root: Path = REPO) -> list[Path]:
    """Re-render every generated block of the README from the results file it names.

    Returns the results files read.

    Raises:
        MutantError: the README has no block, or a block's results file is missing.
    """
    return readmeblocks.rerender(readme, root, "mutate", render, "mutation-score", MutantError)
