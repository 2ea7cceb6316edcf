"""Fetch the upstream peer kernel (Debian unstable's linux-source-7.3).

The benchmark compares against upstream's 2025 rework.  Debian unstable
ships it as a source package; we fetch the .deb with a private apt
configuration (own sources list, own state and cache directories) so the
machine's apt setup is never changed, then unpack it with dpkg-deb and
extract the tarball into the cache like the pinned 6.12 source.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from . import source
from .errors import SetupError
from .paths import cache_dir

MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def _apt_options(root: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::sourcelist={root / 'sources.list'}",
        "-o",
        "Dir::Etc::sourceparts=/nonexistent",
        "-o",
        f"Dir::State::Lists={root / 'lists'}",
        "-o",
        f"Dir::Cache::archives={root / 'archives'}",
        "-o",
        f"Dir::Cache={root / 'cache'}",
        "-o",
        "APT::Get::List-Cleanup=0",
    ]


def _run(
    cmd: list[str],
    what: str,
    cwd: Path | None = None,
    hint: str = "check that deb.debian.org is reachable (Debian unstable suite)",
) -> str:
    """Run an apt/dpkg step; its failure is a SetupError naming what to check."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SetupError(
            f"{what} failed",
            hint=hint,
            detail=(proc.stdout + proc.stderr).strip()[-3000:],
        )
    return proc.stdout


def _choose(opts: list[str], wanted: str) -> str:
    """``wanted`` if unstable has it, else its newest linux-source-X.Y >= 6.15.

    Unstable moves on: the suite carried 7.3 and 7.2 when the project
    started and only 7.2 later.  Any version with upstream's 2025 rework
    (6.15+) serves as the peer; the report names the one used.
    """
    out = _run(
        ["apt-cache", *opts, "search", "--names-only", "^linux-source-[0-9]"], "apt-cache search"
    )
    have = {line.split()[0] for line in out.splitlines() if line.strip()}
    if wanted in have:
        return wanted

    def key(name: str) -> tuple[int, ...]:
        return tuple(int(x) for x in name.removeprefix("linux-source-").split("."))

    peers = sorted(
        (n for n in have if re.fullmatch(r"linux-source-\d+\.\d+", n) and key(n) >= (6, 15)),
        key=key,
    )
    if not peers:
        raise SetupError(
            f"Debian unstable offers neither {wanted} nor another linux-source >= 6.15"
        )
    print(f"note: unstable has no {wanted}; using {peers[-1]} as the upstream peer", flush=True)
    return peers[-1]


def fetch(package: str = source.UPSTREAM.package) -> tuple[Path, str, str]:
    """Download and unpack the package; return (tarball, package, version)."""
    root = cache_dir("apt-unstable")
    for sub in ("lists/partial", "archives/partial", "cache"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} unstable main\n")
    for done in sorted((root / "unpacked").glob("*/VERSION")):
        name = done.parent.name
        tarballs = sorted(done.parent.glob(f"usr/src/{name}.tar.*"))
        if tarballs and (name == package or not (root / "unpacked" / package).exists()):
            return tarballs[0], name, done.read_text().strip()
    opts = _apt_options(root)
    print(f"fetching {package} from Debian unstable (private apt lists in {root}) ...", flush=True)
    _run(["apt-get", *opts, "update"], "apt-get update (unstable)")
    package = _choose(opts, package)
    unpacked = root / "unpacked" / package
    version_file = unpacked / "VERSION"
    policy = _run(["apt-cache", *opts, "policy", package], "apt-cache policy")
    m = re.search(r"Candidate:\s*(\S+)", policy)
    if m is None or m.group(1) == "(none)":
        raise SetupError(
            f"Debian unstable offers no {package}",
            hint="set source.UPSTREAM to a package unstable carries",
        )
    version = m.group(1)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    _run(["apt-get", *opts, "download", f"{package}={version}"], "apt-get download", cwd=debs)
    deb = next(debs.glob(f"{package}_*.deb"), None)
    if deb is None:
        raise SetupError(f"apt-get download left no {package} .deb in {debs}")
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], "dpkg-deb -x")
    tarballs = sorted(unpacked.glob(f"usr/src/{package}.tar.*"))
    if not tarballs:
        raise SetupError(f"{deb} contains no /usr/src/{package}.tar.*")
    version_file.write_text(version + "\n")
    return tarballs[0], package, version


def tree(package: str = source.UPSTREAM.package) -> Path:
    """The upstream peer as a git tree in the cache."""
    tarball, package, version = fetch(package)
    src = source.DebianSource(package, version, "unstable")
    return source.extract(src, tarball=tarball, version=version)
