"""Configure and build one kernel tree out of tree, cached by content.

The cache key covers everything that decides the binary: the tree's
content (git tree hash plus any uncommitted diff), the merged config
request, the compiler and the architecture.  A finished build is copied
into ``<cache>/kernels/<key>/`` through a temporary directory and a rename,
so a cache entry is either complete or absent.  The object directory is kept
per (tree, flavor) so a patch-by-patch walk rebuilds incrementally.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from . import kconfig
from .errors import BuildError, ConfigError
from .paths import cache_dir

ARCH = "x86_64"
IMAGE = "arch/x86/boot/bzImage"


@dataclass(frozen=True)
class Kernel:
    """A built kernel in the cache."""

    path: Path  # the cache entry directory

    @property
    def image(self) -> Path:
        return self.path / "bzImage"

    @property
    def config(self) -> Path:
        return self.path / "config"

    def meta(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.path / "meta.json").read_text())
        return data


def compiler_id(cc: str = "gcc") -> str:
    """First line of ``cc --version``: part of the cache key."""
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise BuildError(
            f"compiler {cc!r} not found", hint="apt-get install build-essential"
        ) from None
    return out.stdout.splitlines()[0]


def tree_identity(tree: Path) -> str:
    """Content identity of a source tree: the git tree hash of its work tree.

    Local changes are staged into a throw-away copy of the index and
    written as a tree object, so an edited tree and the commit made from
    it later have the same identity and share one cache entry.
    """

    def git(*args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()

    try:
        # A plain tree inside another repository must not borrow its identity.
        if Path(git("rev-parse", "--show-toplevel")).resolve() != tree.resolve():
            raise OSError(f"{tree} is not the top of a git work tree")
        if not git("status", "--porcelain", "--untracked-files=normal"):
            return git("rev-parse", "HEAD^{tree}")
        index = Path(git("rev-parse", "--path-format=absolute", "--git-path", "index"))
        with tempfile.TemporaryDirectory() as tmp:
            tmp_index = Path(tmp) / "index"
            shutil.copy2(index, tmp_index)
            env = {**os.environ, "GIT_INDEX_FILE": str(tmp_index)}
            git("add", "-A", env=env)
            return git("write-tree", env=env)
    except (OSError, subprocess.CalledProcessError):
        raise BuildError(
            f"{tree} is not a git tree; the build cache needs one",
            hint="run 'git init && git add -A -f && git commit -m base' in it",
        ) from None


def cache_key(tree: Path, comp: kconfig.Composition, cc: str) -> str:
    """The content key of a build."""
    h = hashlib.sha256()
    for part in (tree_identity(tree), comp.render(), compiler_id(cc), ARCH):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _objdir(tree: Path, flavor: str) -> Path:
    """Where ``tree`` builds ``flavor``.

    Trees the harness made (under the cache's ``src/``: the base, the
    patched worktree, series-check, bisect and ``--patched`` worktrees)
    build in a subdirectory of themselves.  Kbuild then uses
    ``srctree := ..``, so every compile command line is the same in every
    tree of the same content and ccache shares objects between them; with
    the object directory elsewhere, the command lines carried each tree's
    path and every new worktree paid a full build.  A ``.gitignore`` of
    ``*`` keeps the directory out of git's view (tree identity, a clean
    tree for bisect).  A user's own tree (``--source``, ``bisect --tree``)
    is never written to: its objects go to the cache's ``build/``.
    """
    if tree.resolve().is_relative_to(cache_dir("src").resolve()):
        objdir = tree / f".ptimers-obj-{flavor}"
        objdir.mkdir(exist_ok=True)
        ignore = objdir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# ptimers build directory\n*\n")
        return objdir
    tag = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:10]
    return cache_dir("build", f"{tree.name}-{tag}-{flavor}")


class _Progress:
    """A compact one-line progress display instead of make's spew."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def line(self, text: str) -> None:
        parts = text.split()
        if len(parts) >= 2 and parts[0] in {"CC", "LD", "AR", "AS", "GEN", "HOSTCC", "OBJCOPY"}:
            self.count += 1
        now = time.monotonic()
        if now - self.last >= (0.5 if self.tty else 30.0):
            self.last = now
            msg = f"  {self.label}: {self.count} steps, {now - self.start:.0f}s"
            if self.tty:
                sys.stderr.write("\r" + msg[:120].ljust(60))
            else:
                sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _make(tree: Path, objdir: Path, args: list[str], log: Path, label: str, cc: str) -> None:
    """Run make, logging everything; raise with the log tail on failure."""
    cmd = ["make", "-C", str(tree), f"O={objdir}", f"ARCH={ARCH}", f"CC={cc}", *args]
    tail: deque[str] = deque(maxlen=40)
    progress = _Progress(label)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        # Share ccache hits between trees of the same content (the base, the
        # patched worktree, a series-check walk): hash paths relative to the
        # cache's source directory, not the absolute tree location.
        env = {**os.environ, "CCACHE_BASEDIR": str(cache_dir("src")), "CCACHE_NOHASHDIR": "1"}
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        assert proc.stdout is not None
        try:
            for text in proc.stdout:
                out.write(text)
                tail.append(text.rstrip())
                progress.line(text)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            progress.done()
    if rc != 0:
        raise BuildError(
            f"{label} failed (make exit {rc}); full log: {log}",
            detail="\n".join(tail),
        )


def configure(
    tree: Path, comp: kconfig.Composition, objdir: Path, log: Path, cc: str
) -> dict[str, str]:
    """Write the merged fragment, run allnoconfig with it, verify it stuck."""
    frag = objdir / "fragment.config"
    frag.write_text(comp.render())
    _make(tree, objdir, [f"KCONFIG_ALLCONFIG={frag}", "allnoconfig"], log, "configure", cc)
    config = kconfig.read_config((objdir / ".config").read_text())
    lost = kconfig.missing(kconfig.requested(comp), config)
    if lost:
        raise ConfigError(
            f"{len(lost)} requested config option(s) did not stick after allnoconfig",
            hint="their dependencies are unmet in this tree; fix kernel-config/ "
            "(see 'make menuconfig' for each option's 'Depends on')",
            detail="\n".join(lost),
        )
    return config


def _cc() -> str:
    """The compiler command: through ccache when it is installed."""
    return "ccache gcc" if shutil.which("ccache") else "gcc"


def configured_objdir(tree: Path, flavor: str = "default") -> Path:
    """The tree's object directory, configured (not built) for ``flavor``.

    For per-file work (sparse on a few objects) when the kernel itself came
    from the cache: the object directory may have been cleaned, or last
    configured for something else (a ``CONFIG_X=n`` build).
    """
    objdir = _objdir(tree, flavor)
    comp = kconfig.compose(flavor, source=tree)
    frag = objdir / "fragment.config"
    if not (objdir / ".config").exists() or not frag.exists() or frag.read_text() != comp.render():
        configure(tree, comp, objdir, objdir / "build.log", _cc())
    return objdir


def build(
    tree: Path,
    flavor: str = "default",
    extra: list[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
) -> Kernel:
    """Configure and build ``tree``; return the cached kernel."""
    comp = kconfig.compose(flavor, source=tree, extra=extra)
    cc = _cc()
    key = cache_key(tree, comp, "gcc")
    entry = cache_dir("kernels") / key
    kernel = Kernel(entry)
    if kernel.image.exists() and not force:
        print(f"kernel {key}: cached ({entry})", flush=True)
        return kernel
    objdir = _objdir(tree, flavor)
    log = objdir / "build.log"
    log.write_text("")
    start = time.monotonic()
    print(f"building {tree.name} flavor {flavor} in {objdir} (log: {log})", flush=True)
    configure(tree, comp, objdir, log, cc)
    jobs = jobs or os.cpu_count() or 1
    _make(tree, objdir, [f"-j{jobs}", "bzImage"], log, "build", cc)
    elapsed = time.monotonic() - start
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(objdir / IMAGE, tmp / "bzImage")
    shutil.copy2(objdir / ".config", tmp / "config")
    shutil.copy2(log, tmp / "build.log")
    meta = {
        "key": key,
        "tree": str(tree),
        "identity": tree_identity(tree),
        "flavor": flavor,
        "extra": extra or [],
        "compiler": compiler_id("gcc"),
        "build_seconds": round(elapsed, 1),
        "release": (objdir / "include/config/kernel.release").read_text().strip(),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)
    print(f"kernel {key}: built in {elapsed:.0f}s -> {entry}", flush=True)
    return kernel
