"""Kernel sources: Debian's linux-source packages made into git trees.

The pinned package version lives here (:data:`PINNED`) and nowhere else.
A tree is extracted once into the cache and committed as one base commit
with a fixed author and date, so the base commit ID depends only on the
tarball's contents: the series' ``base-commit:`` can be checked against it,
and ``git am`` / ``git format-patch`` work on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import SetupError
from .paths import cache_dir


@dataclass(frozen=True)
class DebianSource:
    """One Debian linux-source package we build from."""

    package: str
    version: str  # exact Debian version the series is made against
    suite: str  # where apt finds it ("host" = the machine's own apt sources)

    @property
    def tarball(self) -> Path:
        return Path("/usr/src") / f"{self.package}.tar.xz"

    @property
    def topdir(self) -> str:
        return self.package


#: The one place the base version is pinned.
PINNED = DebianSource("linux-source-6.12", "6.12.117-1~deb12u1", "host")
#: The upstream peer for benchmarks (carries the 2025 rework and prctl 77).
UPSTREAM = DebianSource("linux-source-7.3", "", "unstable")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Debian linux-source",
    "GIT_AUTHOR_EMAIL": "debian-kernel@lists.debian.org",
    "GIT_COMMITTER_NAME": "Debian linux-source",
    "GIT_COMMITTER_EMAIL": "debian-kernel@lists.debian.org",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


def git(tree: Path, *args: str, check: bool = True) -> str:
    """Run git in ``tree`` with the fixed identity; return stdout."""
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(["git", "-C", str(tree), *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SetupError(f"git {' '.join(args)} failed in {tree}", detail=proc.stderr.strip())
    return proc.stdout.strip()


def installed_version(package: str) -> str | None:
    """Version dpkg has installed, or None."""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("install ok installed"):
        return None
    return proc.stdout.split()[-1]


def check_pinned(src: DebianSource = PINNED) -> str:
    """Return the installed version; explain clearly when it is not the pin."""
    have = installed_version(src.package)
    if have is None or not src.tarball.exists():
        raise SetupError(
            f"{src.package} is not installed ({src.tarball} missing)",
            hint=f"apt-get install {src.package}   (or run ./ptimers setup)",
        )
    return have


def version_note(src: DebianSource, have: str) -> str | None:
    """A warning when apt's version differs from the pinned one, else None."""
    if not src.version or have == src.version:
        return None
    return (
        f"{src.package} {have} is installed but the series is made against "
        f"{src.version}; a git tree is built from {have} anyway and the series "
        "will be applied to it with 'git am', which stops at the first patch "
        "that does not apply"
    )


def extract(src: DebianSource = PINNED, tarball: Path | None = None, version: str = "") -> Path:
    """Extract the tarball into the cache once and commit it as one base commit.

    The extraction happens in a temporary directory that is renamed into
    place, so an interrupted run never leaves a half tree behind.
    """
    tarball = tarball or src.tarball
    version = version or check_pinned(src)
    root = cache_dir("src", version.replace("~", "_"))
    tree = root / src.topdir
    if (tree / ".git").exists() and git(tree, "rev-parse", "-q", "--verify", "HEAD", check=False):
        return tree
    tmp = root / (src.topdir + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    print(f"extracting {tarball} ({tarball.stat().st_size >> 20} MiB) ...", flush=True)
    # tar(1) is several times faster than tarfile on 80,000 small files.
    proc = subprocess.run(
        ["tar", "-xf", str(tarball), "-C", str(tmp)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SetupError(f"extracting {tarball} failed", detail=proc.stderr[-2000:])
    inner = tmp / src.topdir
    if not inner.is_dir():
        raise SetupError(f"{tarball} does not contain {src.topdir}/")
    git(inner, "init", "-q")
    # A 1.5 GB tree of one commit never needs gc; an auto-gc mid-build only costs time.
    git(inner, "config", "gc.auto", "0")
    # Debian's .gitignore ignores everything at the top level: force-add.
    git(inner, "add", "-A", "-f")
    git(inner, "commit", "-q", "-m", f"Debian {src.package} {version}")
    shutil.rmtree(tree, ignore_errors=True)
    inner.rename(tree)
    shutil.rmtree(tmp, ignore_errors=True)
    return tree


def base_commit(tree: Path) -> str:
    """The tree's root commit (the extracted package)."""
    return git(tree, "rev-list", "--max-parents=0", "HEAD").splitlines()[0]


def user_tree(path: Path) -> Path:
    """Validate a user-supplied kernel tree (``--source DIR``)."""
    path = path.expanduser().resolve()
    if not (path / "Makefile").exists() or not (path / "Kconfig").exists():
        raise SetupError(
            f"{path} is not a kernel source tree",
            hint="pass the top directory of a kernel checkout to --source",
        )
    return path
