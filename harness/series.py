"""The patch series in ``patches/``: read it, check its base, apply it.

The series' source of truth is a git branch; ``patches/`` is what
``git format-patch --cover-letter --base=...`` wrote.  Applying uses
``git am`` on a dedicated worktree of the extracted base, one worktree per
series content, and stops hard at the first patch that does not apply.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import SeriesError
from .paths import PATCHES_DIR, cache_dir
from .source import GIT_ENV, base_commit, git

_SUBJECT = re.compile(r"^Subject: (.*)$", re.M)
_BASE = re.compile(r"^base-commit: ([0-9a-f]{40})$", re.M)


@dataclass(frozen=True)
class Patch:
    """One patch file of the series."""

    path: Path
    subject: str

    @property
    def number(self) -> int:
        return int(self.path.name.split("-", 1)[0])

    @property
    def title(self) -> str:
        """The subject without git's ``[PATCH n/m]`` prefix."""
        return re.sub(r"^\[[^]]*\]\s*", "", self.subject)


@dataclass(frozen=True)
class Series:
    """Cover letter plus patches, in order."""

    cover: Path | None
    patches: list[Patch]
    base: str | None

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.patches:
            h.update(p.path.read_bytes())
        return h.hexdigest()[:16]


def _subject(text: str) -> str:
    m = _SUBJECT.search(text)
    if m is None:
        return ""
    # Unfold a folded header (continuation lines start with whitespace).
    start = m.start(1)
    end = text.index("\n", start)
    while text[end + 1 : end + 2] in (" ", "\t"):
        end = text.index("\n", end + 1)
    return " ".join(text[start:end].split())


def read(directory: Path = PATCHES_DIR) -> Series:
    """Read the series; an empty or missing directory is an empty series."""
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]-*.patch")) if directory.is_dir() else []
    cover = next((f for f in files if f.name.startswith("0000-")), None)
    patches = [Patch(f, _subject(f.read_text(errors="replace"))) for f in files if f != cover]
    base = None
    for f in [cover, *[p.path for p in patches]]:
        if f is not None and (m := _BASE.search(f.read_text(errors="replace"))):
            base = m.group(1)
            break
    return Series(cover, patches, base)


def check_base(series: Series, tree: Path) -> None:
    """Refuse a tree whose base commit is not the series' recorded base."""
    have = base_commit(tree)
    if series.base and series.base != have:
        raise SeriesError(
            f"the series is based on {series.base[:12]} but {tree} has base {have[:12]}",
            hint="the installed linux-source package differs from the pinned one; "
            "install the pinned version or apply by hand with 'git am -3'",
        )


def _worktree_at(base_tree: Path, dest: Path, commit: str, prune: bool = True) -> None:
    """Make ``dest`` a worktree of ``base_tree`` checked out at ``commit``.

    An existing worktree is moved with ``git checkout``, which rewrites only
    the files that differ: their mtimes change, all others keep theirs, so
    the kernel build in that tree stays incremental.
    """
    if (dest / ".git").exists():
        git(dest, "reset", "-q", "--hard")
        git(dest, "checkout", "-q", "--detach", commit)
        return
    shutil.rmtree(dest, ignore_errors=True)
    if prune:
        git(base_tree, "worktree", "prune")
    # -f: ``dest`` may still be registered (its directory removed) when we
    # did not prune -- a user's repository, whose other worktrees are theirs.
    git(base_tree, "worktree", "add", "-f", "-q", "--detach", str(dest), commit)


def worktree(base_tree: Path, series: Series, name: str = "patched") -> Path:
    """A worktree of the base with the whole series applied.

    The series is applied with ``git am`` in a scratch worktree; the
    build worktree ``name`` then checks out the result, touching only the
    files that changed since its last series.
    """
    root = base_tree.parent
    return _applied(base_tree, base_commit(base_tree), series, root / "series-apply", root / name)


def _applied(
    repo: Path,
    start: str,
    series: Series,
    scratch: Path,
    dest: Path,
    user: str | None = None,
) -> Path:
    """Apply ``series`` onto ``start`` in worktree ``scratch``; check it out in ``dest``.

    ``user`` names a user's repository: it is never pruned (its other
    worktrees are theirs), git merges three-way where the context moved,
    and errors name it rather than the scratch worktree.
    """
    _worktree_at(repo, scratch, start, prune=user is None)
    git(scratch, "am", "--abort", check=False)
    git(scratch, "reset", "-q", "--hard", start)
    apply(scratch, series, three_way=user is not None, target=user)
    _worktree_at(repo, dest, git(scratch, "rev-parse", "HEAD"), prune=user is None)
    return dest


def apply(
    tree: Path,
    series: Series,
    upto: int | None = None,
    three_way: bool = False,
    target: str | None = None,
) -> None:
    """``git am`` each patch in order; stop hard at the first that fails."""
    for patch in series.patches:
        if upto is not None and patch.number > upto:
            break
        apply_patch(tree, patch, three_way, target)


def apply_patch(
    tree: Path, patch: Patch, three_way: bool = False, target: str | None = None
) -> None:
    """``git am`` one patch; on failure abort it and name the conflicting files.

    ``three_way`` (for trees that are not the base) lets git merge where
    the context moved; ``target`` names the tree in errors when ``tree`` is
    a scratch worktree.
    """
    env = {**os.environ, **GIT_ENV}
    am = ["git", "-C", str(tree), "am", "-q", "--keep-cr", *(["-3"] if three_way else [])]
    proc = subprocess.run(
        [*am, str(patch.path)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode == 0:
        return
    files = conflicted_files(tree, patch.path)
    # --abort needs a committer identity too (it resets with a reflog
    # entry); without GIT_ENV it fails on hosts with no git identity.
    subprocess.run(["git", "-C", str(tree), "am", "--abort"], capture_output=True, env=env)
    where = f": conflicts in {', '.join(files)}" if files else ""
    raise SeriesError(
        f"patch {patch.path.name} ({patch.title}) does not apply to {target or tree}{where}",
        hint="rebase the series branch onto this tree (git am -3 the patches, resolve, "
        "git am --continue) and regenerate patches/ with 'ptimers series export'",
        detail=(proc.stdout + proc.stderr).strip(),
    )


_REJECTED = re.compile(
    r"^error: (?:patch failed: (?P<hunk>\S+):\d+"
    r"|(?P<file>\S+): (?:does not exist in index|No such file or directory"
    r"|already exists(?: in (?:working directory|index))?))$",
    re.M,
)


def conflicted_files(tree: Path, patch: Path) -> list[str]:
    """Files of ``patch`` that a failed ``git am`` could not apply to ``tree``.

    After a three-way merge the unmerged paths say it; when git could not
    even build a merge base (the tree lacks the patch's preimage blobs) a
    plain ``git apply --check`` names the files whose hunks are rejected.
    """
    unmerged = git(tree, "diff", "--name-only", "--diff-filter=U", check=False).split()
    if unmerged:
        return sorted(set(unmerged))
    proc = subprocess.run(
        ["git", "-C", str(tree), "apply", "--check", str(patch)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},  # the messages parsed above are git's English
    )
    return sorted({m.group("hunk") or m.group("file") for m in _REJECTED.finditer(proc.stderr)})


def onto(tree: Path, series: Series) -> Path:
    """The series applied on top of a user's kernel tree (``--source DIR``).

    ``tree`` itself is never touched: the series is applied with
    ``git am -3`` in a worktree of its repository under the cache, checked
    out at ``tree``'s HEAD (uncommitted changes are not included, and the
    user is told so).
    """
    head = git(tree, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    top = git(tree, "rev-parse", "--show-toplevel", check=False)
    if not head or not top or Path(top).resolve() != tree.resolve():
        raise SeriesError(
            f"{tree} is not a git tree with a commit; --patched applies the series with git am",
            hint="in that tree: git init && git add -A -f && git commit -m base",
        )
    if git(tree, "status", "--porcelain", "--untracked-files=no"):
        print(
            f"warning: {tree} has uncommitted changes; the series is applied to its HEAD",
            flush=True,
        )
    tag = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:8]
    root = cache_dir("src", "user", f"{tree.name}-{tag}")
    return _applied(
        tree, head, series, root / "series-apply", root / "patched", f"{tree} (HEAD {head[:12]})"
    )


#: Recipients get_maintainer.pl cannot find from the files touched: the
#: xarray's maintainer (the series relies on XA_ZERO_ENTRY's reserved-entry
#: semantics and on XA_CHUNK_SHIFT leaves), the list for new user ABI
#: (SIGEV_TIMER_ID, the prctl), and CRIU, the ABI's user.
EXTRA_CC = (
    "Matthew Wilcox <willy@infradead.org>",
    "linux-api@vger.kernel.org",
    "criu@lists.linux.dev",
)


def recipients(tree: Path, base: str, branch: str) -> tuple[list[str], list[str]]:
    """To (maintainers and reviewers) and Cc (lists, extras) for the series.

    From the tree's own ``scripts/get_maintainer.pl`` on the series' diff,
    as a submitter would run it; an empty answer (no script, no match) is
    an error, not a series mailed to nobody.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".patch") as diff:
        diff.write(git(tree, "diff", f"{base}..{branch}"))
        diff.flush()
        proc = subprocess.run(
            [
                "perl",
                "scripts/get_maintainer.pl",
                "--no-rolestats",
                "--no-git",
                "--no-git-fallback",
                diff.name,
            ],
            cwd=tree,
            capture_output=True,
            text=True,
        )
    names = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not names:
        raise SeriesError(
            "scripts/get_maintainer.pl found no recipients for the series",
            detail=proc.stderr.strip()[-2000:],
        )
    to = [n for n in names if "<" in n]
    cc = [n for n in names if "<" not in n] + [c for c in EXTRA_CC if c not in names]
    return to, cc


def export(tree: Path, branch: str, description: str, out: Path = PATCHES_DIR) -> list[Path]:
    """Regenerate ``out`` from ``branch`` with git format-patch.

    The cover letter comes from the branch description (first paragraph:
    subject), so nothing in ``out`` is edited after git wrote it; the
    recipients come from :func:`recipients`.
    """
    base = base_commit(tree)
    to, cc = recipients(tree, base, branch)
    git(tree, "config", f"branch.{branch}.description", description)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.patch"):
        old.unlink()
    proc = subprocess.run(
        [
            "git",
            "-C",
            str(tree),
            "format-patch",
            "-q",
            "--cover-letter",
            "--cover-from-description=subject",
            f"--base={base}",
            *(f"--to={t}" for t in to),
            *(f"--cc={c}" for c in cc),
            "-o",
            str(out),
            f"{base}..{branch}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SeriesError("git format-patch failed", detail=proc.stderr.strip())
    return sorted(out.glob("*.patch"))
