"""The two CRIUs the real-CRIU tests run in the guest, and how to reach them.

* Debian 12's ``criu`` (3.17.1) restores timer IDs with the legacy
  create/delete loop.  It is a host package (``./ptimers`` installs it) and
  runs in the guest from the shared host root.
* CRIU >= 4.2 probes ``PR_TIMER_CREATE_RESTORE_IDS`` and creates each timer
  at its ID.  Only Debian unstable ships it, linked against a newer libc
  than Debian 12's, so :func:`unstable_root` builds a small unstable root
  filesystem with ``debootstrap`` holding ``criu``, cached under the
  harness cache and named by the versions it got.  In the guest both CRIU
  and the process it dumps run ``chroot``-ed into it (:func:`chroot_setup`):
  CRIU compares the task's root with its own, so they must share one.

A chroot of a read-only tree with ``/proc``, ``/sys``, ``/dev`` bound and
tmpfs on ``/tmp`` and ``/run`` is one ``mount`` per directory on the
running guest; a second virtme-ng root would cost a boot per CRIU.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from .errors import SetupError
from .paths import cache_dir

HOST_CRIU = Path("/usr/sbin/criu")
# Full paths: /usr/sbin is not on an ordinary user's PATH.
DEBOOTSTRAP = "/usr/sbin/debootstrap"
CHROOT = "/usr/sbin/chroot"
MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: The first CRIU that restores timers with PR_TIMER_CREATE_RESTORE_IDS.
MIN_NEW_CRIU = "4.2"
#: What the unstable root holds besides debootstrap's minbase.
PACKAGES = ("criu",)


@dataclass(frozen=True)
class UnstableRoot:
    """A cached Debian unstable root filesystem with CRIU in it."""

    path: Path
    criu_version: str
    libc_version: str


def host_criu_version() -> str:
    """Debian 12's CRIU as installed on the host (and seen by the guest)."""
    if not HOST_CRIU.exists():
        raise SetupError(
            f"{HOST_CRIU} is missing", hint="run ./ptimers setup (or apt-get install criu)"
        )
    return _version([str(HOST_CRIU), "--version"], Path("/"))


def _version(cmd: list[str], root: Path) -> str:
    """The version ``criu --version`` prints, run inside ``root``."""
    full = cmd if root == Path("/") else [CHROOT, str(root), *cmd]
    proc = subprocess.run(full, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise SetupError(
        f"could not read CRIU's version from {' '.join(full)}",
        detail=(proc.stdout + proc.stderr).strip()[-2000:],
    )


def version_at_least(have: str, want: str) -> bool:
    """Debian version order (dpkg --compare-versions)."""
    return (
        subprocess.run(["dpkg", "--compare-versions", have, "ge", want], check=False).returncode
        == 0
    )


def _dpkg_version(root: Path, package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SetupError(f"{package} is not installed in {root}", detail=proc.stderr.strip())
    return proc.stdout.strip()


def _cached(base: Path) -> list[UnstableRoot]:
    out = []
    for done in base.glob("*/COMPLETE"):
        criu_v, _, libc_v = done.read_text().strip().partition(" ")
        out.append(UnstableRoot(done.parent / "root", criu_v, libc_v))
    return out


def _by_criu_version(a: UnstableRoot, b: UnstableRoot) -> int:
    if a.criu_version == b.criu_version:
        return 0
    return 1 if version_at_least(a.criu_version, b.criu_version) else -1


def unstable_root() -> UnstableRoot:
    """The cached unstable root with CRIU >= 4.2, built with debootstrap if missing.

    Reused as long as it is there: a run should not depend on what unstable
    published this morning.  When unstable has moved past 4.2, the newest
    CRIU it carries is taken and its version is named in the directory and
    in the test report; one older than 4.2 is refused.
    """
    base = cache_dir("criu-unstable")
    usable = [r for r in _cached(base) if version_at_least(r.criu_version, MIN_NEW_CRIU)]
    if usable:
        # Newest CRIU in Debian's version order ("4.10" after "4.9").
        return max(usable, key=cmp_to_key(_by_criu_version))
    if os.geteuid() != 0:
        raise SetupError(
            "building the Debian unstable root for CRIU 4.2 needs root (debootstrap)",
            hint="run ./ptimers test as root once; the root is cached afterwards",
        )
    for tool, pkg in ((DEBOOTSTRAP, "debootstrap"), (CHROOT, "coreutils")):
        if not Path(tool).exists():
            raise SetupError(f"{tool} is missing", hint=f"run ./ptimers setup (apt: {pkg})")
    work = base / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(
        f"building a Debian unstable root with {', '.join(PACKAGES)} in {work} "
        "(debootstrap, about a minute) ...",
        flush=True,
    )
    proc = subprocess.run(
        [
            DEBOOTSTRAP,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            f"--keyring={KEYRING}",
            "unstable",
            str(work / "root"),
            MIRROR,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SetupError(
            "debootstrap of Debian unstable failed",
            hint="check that deb.debian.org is reachable; the log is in "
            f"{work / 'root/debootstrap/debootstrap.log'}",
            detail=(proc.stdout + proc.stderr).strip()[-3000:],
        )
    criu_v = _dpkg_version(work / "root", "criu")
    libc_v = _dpkg_version(work / "root", "libc6")
    if not version_at_least(criu_v, MIN_NEW_CRIU):
        raise SetupError(
            f"Debian unstable's criu is {criu_v}, older than {MIN_NEW_CRIU}: it has no "
            "PR_TIMER_CREATE_RESTORE_IDS path to test",
            hint=f"remove {work} and retry once unstable carries criu >= {MIN_NEW_CRIU}",
        )
    final = base / f"criu-{criu_v}_libc-{libc_v}".replace("~", "_").replace(":", "_")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    (final / "COMPLETE").write_text(f"{criu_v} {libc_v}\n")
    print(f"unstable root ready: criu {criu_v}, libc6 {libc_v} in {final}", flush=True)
    return UnstableRoot(final / "root", criu_v, libc_v)


def chroot_setup(root: Path) -> str:
    """Guest shell commands that make ``root`` usable as a chroot for CRIU (idempotent).

    The tree itself is the host's, read-only in the guest; everything CRIU
    writes (images, /run/criu.kdat) goes to tmpfs.
    """
    r = shlex.quote(str(root))
    return (
        "set -e; "
        # The root a mount of its own: CRIU rebuilds the task's mount tree
        # from mountinfo, which shows only mounts under the chroot, and
        # fails ("No parent found for mountpoint") when / is not one.
        f"mountpoint -q {r} || mount --bind {r} {r}; "
        # rbind: /dev/pts (and /dev/ptmx through it) comes along.
        f"for d in proc sys dev; do mountpoint -q {r}/$d || mount --rbind /$d {r}/$d; done; "
        f"for d in tmp run; do mountpoint -q {r}/$d || mount -t tmpfs none {r}/$d; done"
    )
