"""Build-cache identity and keys (no make is ever run here)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness import kbuild, kconfig
from harness.errors import BuildError
from harness.kconfig import Fragment
from harness.source import git


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "linux"
    (t / "kernel" / "time").mkdir(parents=True)
    (t / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n")
    (t / "kernel/time/posix-timers.c").write_text("int timers;\n")
    git(t, "init", "-q", "-b", "main")
    git(t, "add", "-A")
    git(t, "commit", "-q", "-m", "base")
    return t


def test_clean_tree_identity_is_head_tree(tree: Path) -> None:
    assert kbuild.tree_identity(tree) == git(tree, "rev-parse", "HEAD^{tree}")


def test_edit_changes_identity_and_commit_keeps_it(tree: Path) -> None:
    clean = kbuild.tree_identity(tree)
    (tree / "kernel/time/posix-timers.c").write_text("int timers;\nint ids;\n")
    dirty = kbuild.tree_identity(tree)
    assert dirty != clean
    assert len(dirty) == 40
    # Computing the identity must not touch the real index.
    assert git(tree, "diff", "--cached", "--name-only") == ""
    assert kbuild.tree_identity(tree) == dirty  # stable
    git(tree, "commit", "-q", "-a", "-m", "edit")
    assert kbuild.tree_identity(tree) == dirty
    assert git(tree, "rev-parse", "HEAD^{tree}") == dirty


def test_untracked_file_counts(tree: Path) -> None:
    clean = kbuild.tree_identity(tree)
    (tree / "kernel/time/new.c").write_text("int n;\n")
    dirty = kbuild.tree_identity(tree)
    assert dirty != clean
    git(tree, "add", "kernel/time/new.c")
    git(tree, "commit", "-q", "-m", "add new.c")
    assert kbuild.tree_identity(tree) == dirty


def test_not_a_git_tree(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "Makefile").write_text("all:\n")
    with pytest.raises(BuildError) as info:
        kbuild.tree_identity(plain)
    assert "is not a git tree" in info.value.message
    assert info.value.hint is not None
    with pytest.raises(BuildError):
        kbuild.tree_identity(tmp_path / "does-not-exist")


def test_cache_key_depends_on_config_text(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kbuild, "compiler_id", lambda cc: "gcc (Debian 12.2.0-14) 12.2.0")
    a = kconfig.merge("default", [Fragment("a", {"CONFIG_POSIX_TIMERS": "y"})])
    b = kconfig.merge("default", [Fragment("a", {"CONFIG_POSIX_TIMERS": "n"})])
    key_a = kbuild.cache_key(tree, a, "gcc")
    assert key_a == kbuild.cache_key(tree, a, "gcc")
    assert len(key_a) == 20
    assert kbuild.cache_key(tree, b, "gcc") != key_a
    # The tree's content is part of the key too.
    (tree / "kernel/time/posix-timers.c").write_text("changed\n")
    assert kbuild.cache_key(tree, a, "gcc") != key_a


def test_cache_key_depends_on_compiler(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    comp = kconfig.merge("default", [Fragment("a", {"CONFIG_SMP": "y"})])
    monkeypatch.setattr(kbuild, "compiler_id", lambda cc: "gcc 12")
    k12 = kbuild.cache_key(tree, comp, "gcc")
    monkeypatch.setattr(kbuild, "compiler_id", lambda cc: "gcc 13")
    assert kbuild.cache_key(tree, comp, "gcc") != k12


def test_compiler_id_missing_compiler() -> None:
    with pytest.raises(BuildError, match="not found"):
        kbuild.compiler_id("/nonexistent/cc")


def test_kernel_paths_and_meta(tmp_path: Path) -> None:
    k = kbuild.Kernel(tmp_path)
    assert k.image == tmp_path / "bzImage"
    assert k.config == tmp_path / "config"
    (tmp_path / "meta.json").write_text(json.dumps({"key": "abc", "flavor": "debug"}))
    assert k.meta() == {"key": "abc", "flavor": "debug"}


def test_progress_counts_build_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    p = kbuild._Progress("build")
    assert p.tty is False
    for text in [
        "  CC      kernel/time/posix-timers.o\n",
        "  LD      vmlinux\n",
        "  HOSTCC  scripts/basic/fixdep\n",
        "make[1]: Entering directory '/x'\n",
        "CC\n",  # a bare word is not a step
        "  SYNC    include/config/auto.conf\n",
    ]:
        p.line(text)
    assert p.count == 3
    # Not a tty: one progress line on the first call, then at most every 30s.
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("  build: 1 steps, ")
    p.done()
    assert err.getvalue().count("\n") == 1


def test_plain_tree_inside_a_repo_is_not_that_repo(tree: Path) -> None:
    """A tarball unpacked inside some checkout must not share its identity."""
    nested = tree / "unpacked-linux"
    nested.mkdir()
    (nested / "Makefile").write_text("all:\n")
    with pytest.raises(BuildError, match="is not a git tree"):
        kbuild.tree_identity(nested)


def test_harness_trees_build_inside_themselves_invisibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tree under the cache's src/ builds in <tree>/.ptimers-obj-<flavor>
    # (Kbuild's srctree := .., identical command lines for ccache), and the
    # object directory changes neither git status nor the tree's identity.
    cache = tmp_path / "cache"
    monkeypatch.setenv("PTIMERS_CACHE", str(cache))
    t = cache / "src" / "6.12.117-1" / "series-check"
    (t / "kernel").mkdir(parents=True)
    (t / "kernel" / "a.c").write_text("int a;\n")
    git(t, "init", "-q", "-b", "main")
    git(t, "add", "-A")
    git(t, "commit", "-q", "-m", "base")
    before = kbuild.tree_identity(t)
    objdir = kbuild._objdir(t, "debug")
    assert objdir == t / ".ptimers-obj-debug"
    (objdir / ".config").write_text("CONFIG_X=y\n")
    (objdir / "kernel").mkdir()
    (objdir / "kernel" / "a.o").write_bytes(b"\x7fELF")
    assert git(t, "status", "--porcelain", "--ignored=no") == ""
    assert kbuild.tree_identity(t) == before
    assert kbuild._objdir(t, "debug") == objdir  # idempotent


def test_user_trees_are_not_written_to(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTIMERS_CACHE", str(tmp_path / "cache"))
    objdir = kbuild._objdir(tree, "default")
    assert objdir.parent == tmp_path / "cache" / "build"
    assert objdir.name.startswith("linux-") and objdir.name.endswith("-default")
    assert sorted(p.name for p in tree.iterdir()) == [".git", "Makefile", "kernel"]
