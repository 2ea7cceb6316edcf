"""Reading and applying a real ``git format-patch --cover-letter --base`` series."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import series, seriescheck, source
from harness.errors import SeriesError
from harness.source import git

LONG = (
    "posix-timers: Add a rather long subject line that git format-patch has to fold "
    "onto a continuation line"
)


@dataclass
class Repo:
    tree: Path  # branch "series" checked out, two commits on top of the root
    root: str
    patches: Path


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user/system git config (signing, hooks, default branch) leaks in."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    tree = tmp_path / "linux"
    tree.mkdir()
    git(tree, "init", "-q", "-b", "main")
    (tree / "timers.c").write_text("int a;\nint b;\nint c;\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "Debian linux-source")
    root = source.base_commit(tree)
    git(tree, "checkout", "-q", "-b", "series")
    (tree / "timers.c").write_text("int a;\nint b2;\nint c;\n")
    git(tree, "commit", "-q", "-a", "-m", LONG)
    (tree / "ids.c").write_text("int id;\n")
    git(tree, "add", "ids.c")
    git(tree, "commit", "-q", "-m", "posix-timers: Add ids.c")
    patches = tmp_path / "patches"
    git(
        tree,
        "format-patch",
        "-q",
        "--cover-letter",
        f"--base={root}",
        "-o",
        str(patches),
        f"{root}..series",
    )
    return Repo(tree, root, patches)


def clone_at_base(repo: Repo, dest: Path) -> Path:
    git(repo.tree.parent, "clone", "-q", str(repo.tree), str(dest))
    git(dest, "checkout", "-q", "--detach", repo.root)
    return dest


def test_read_real_series(repo: Repo) -> None:
    # The long subject really is folded in the file, so unfolding is exercised.
    first = sorted(repo.patches.glob("0001-*.patch"))[0].read_text()
    assert "\n " in first.split("\n\n", 1)[0]
    ser = series.read(repo.patches)
    assert ser.cover is not None
    assert ser.cover.name == "0000-cover-letter.patch"
    assert [p.number for p in ser.patches] == [1, 2]
    assert [p.subject for p in ser.patches] == [
        f"[PATCH 1/2] {LONG}",
        "[PATCH 2/2] posix-timers: Add ids.c",
    ]
    assert ser.base == repo.root
    assert len(ser.digest()) == 16


def test_read_base_from_patch_without_cover(repo: Repo, tmp_path: Path) -> None:
    out = tmp_path / "no-cover"
    git(repo.tree, "format-patch", "-q", f"--base={repo.root}", "-o", str(out), repo.root)
    ser = series.read(out)
    assert ser.cover is None
    assert [p.number for p in ser.patches] == [1, 2]
    assert ser.base == repo.root  # git puts base-commit: into the first patch then


def test_read_missing_or_empty_dir(tmp_path: Path) -> None:
    for d in (tmp_path / "absent", tmp_path):
        ser = series.read(d)
        assert ser == series.Series(None, [], None)


def test_apply_onto_fresh_clone(repo: Repo, tmp_path: Path) -> None:
    ser = series.read(repo.patches)
    work = clone_at_base(repo, tmp_path / "work")
    series.check_base(ser, work)
    series.apply(work, ser)
    assert (work / "timers.c").read_text() == "int a;\nint b2;\nint c;\n"
    assert (work / "ids.c").read_text() == "int id;\n"
    log = git(work, "log", "--format=%s", f"{repo.root}..HEAD").splitlines()
    assert log == ["posix-timers: Add ids.c", LONG]
    # Same content as the branch the series was made from.
    assert git(work, "rev-parse", "HEAD^{tree}") == git(repo.tree, "rev-parse", "series^{tree}")


def test_apply_upto(repo: Repo, tmp_path: Path) -> None:
    ser = series.read(repo.patches)
    work = clone_at_base(repo, tmp_path / "work")
    series.apply(work, ser, upto=1)
    assert (work / "timers.c").read_text() == "int a;\nint b2;\nint c;\n"
    assert not (work / "ids.c").exists()


def test_conflicting_patch_raises_naming_the_file(repo: Repo, tmp_path: Path) -> None:
    ser = series.read(repo.patches)
    work = clone_at_base(repo, tmp_path / "work")
    (work / "timers.c").write_text("int a;\nint conflict;\nint c;\n")
    git(work, "commit", "-q", "-a", "-m", "diverge")
    with pytest.raises(SeriesError) as info:
        series.apply(work, ser)
    patch = ser.patches[0]
    assert patch.path.name in info.value.message
    assert patch.path.name.startswith("0001-")
    assert "does not apply" in info.value.message
    assert info.value.detail
    # The failed am was aborted: no half-applied state left behind.
    assert not (work / ".git" / "rebase-apply").exists()
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "log", "-1", "--format=%s") == "diverge"


def test_check_base_mismatch(repo: Repo, tmp_path: Path) -> None:
    ser = series.read(repo.patches)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "timers.c").write_text("something else\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "another base")
    with pytest.raises(SeriesError) as info:
        series.check_base(ser, other)
    assert repo.root[:12] in info.value.message
    assert source.base_commit(other)[:12] in info.value.message


def test_check_base_accepts_series_without_base(repo: Repo) -> None:
    series.check_base(series.Series(None, [], None), repo.tree)


def _user_tree(repo: Repo, tmp_path: Path, timers: str) -> Path:
    """A user's tree (--source DIR): the base plus a commit of its own."""
    user = clone_at_base(repo, tmp_path / "user")
    (user / "timers.c").write_text(timers)
    (user / "README").write_text("a maintainer branch\n")
    git(user, "add", "-A")
    git(user, "commit", "-q", "-m", "maintainer work")
    return user


def test_onto_user_tree_merges_moved_context(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTIMERS_CACHE", str(tmp_path / "cache"))
    # The user's tree added a line before the patched one: plain am would
    # still apply; -3 keeps it working when the context itself moved.
    user = _user_tree(repo, tmp_path, "int first;\nint a;\nint b;\nint c;\n")
    head = git(user, "rev-parse", "HEAD")
    patched = series.onto(user, series.read(repo.patches))
    assert (patched / "timers.c").read_text() == "int first;\nint a;\nint b2;\nint c;\n"
    assert (patched / "ids.c").exists()
    assert git(patched, "rev-parse", "HEAD~2") == head
    # The user's own checkout is untouched.
    assert git(user, "rev-parse", "HEAD") == head
    assert git(user, "status", "--porcelain") == ""
    assert patched.is_relative_to(tmp_path / "cache")


def test_onto_user_tree_names_conflicting_files(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTIMERS_CACHE", str(tmp_path / "cache"))
    user = _user_tree(repo, tmp_path, "int a;\nint b_renamed;\nint c;\n")
    with pytest.raises(SeriesError) as info:
        series.onto(user, series.read(repo.patches))
    patch = series.read(repo.patches).patches[0]
    head = git(user, "rev-parse", "HEAD")
    # the user's tree and commit are named, not the scratch worktree
    assert info.value.message == (
        f"patch {patch.path.name} ({LONG}) does not apply to {user} (HEAD {head[:12]}): "
        "conflicts in timers.c"
    )
    assert info.value.hint is not None and info.value.hint.startswith(
        "rebase the series branch onto this tree (git am -3"
    )


def test_onto_refuses_a_tree_without_git(tmp_path: Path, repo: Repo) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SeriesError, match="not a git tree"):
        series.onto(plain, series.read(repo.patches))


def test_onto_refuses_a_plain_tree_inside_another_repo(repo: Repo) -> None:
    nested = repo.tree / "nested-linux"
    nested.mkdir()
    with pytest.raises(SeriesError, match="not a git tree"):
        series.onto(nested, series.read(repo.patches))


def test_patch_title_drops_the_patch_prefix(repo: Repo) -> None:
    ser = series.read(repo.patches)
    assert [p.title for p in ser.patches] == [LONG, "posix-timers: Add ids.c"]


def test_conflicted_files_names_a_new_file_that_already_exists(repo: Repo, tmp_path: Path) -> None:
    ser = series.read(repo.patches)
    work = clone_at_base(repo, tmp_path / "work")
    (work / "ids.c").write_text("int mine;\n")
    git(work, "add", "ids.c")
    git(work, "commit", "-q", "-m", "ids.c of our own")
    # git says "error: ids.c: already exists in working directory"
    assert series.conflicted_files(work, ser.patches[1].path) == ["ids.c"]


def test_sparse_paths_are_tree_relative_from_either_object_directory() -> None:
    inside = (
        "  CHECK   ../kernel/time/posix-timers.c\n"
        "../kernel/time/posix-timers.c:123:9: warning: context imbalance in 'x' "
        "- different lock contexts for basic block\n"
        "../include/linux/sched/signal.h:7:1: error: bad thing\n"
    )
    outside = (
        "/c/src/6.12/series-check/kernel/time/posix-timers.c:140:9: warning: context "
        "imbalance in 'x' - different lock contexts for basic block\n"
        "/c/src/6.12/series-check/include/linux/sched/signal.h:9:1: error: bad thing\n"
        "make[1]: Leaving directory '/c/build'\n"
    )
    want = {
        "kernel/time/posix-timers.c: warning: context imbalance in 'x' "
        "- different lock contexts for basic block",
        "include/linux/sched/signal.h: error: bad thing",
    }
    assert seriescheck.parse_sparse(inside, "series-check") == want
    assert seriescheck.parse_sparse(outside, "series-check") == want


def test_each_feature_is_expected_from_the_patch_that_adds_it() -> None:
    """series check demands a feature from its patch on; the markers must
    still match the series (a renamed define would silently expect less)."""
    from harness.paths import REPO

    patches = sorted((REPO / "patches").glob("000[1-9]-*.patch"))
    added = [seriescheck.features_added(p.read_text()) for p in patches]
    # patch 4 (the reserved slot) is visible only to failslab, which series
    # check's default flavor lacks: no marker; patch 5 (the search's fast
    # path) changes no behaviour; patch 6 adds selftests.
    assert added == [
        {"proc_timers_by_id"},
        {"sigev_timer_id"},
        {"prctl_restore_ids"},
        set(),
        set(),
        set(),
    ]


def _get_maintainer(repo: Repo, output: str) -> None:
    """A scripts/get_maintainer.pl that answers @output for any patch file."""
    script = repo.tree / "scripts" / "get_maintainer.pl"
    script.parent.mkdir(exist_ok=True)
    lines = "".join(f'print q{{{line}}}, "\\n";\n' for line in output.splitlines())
    script.write_text(f"die 'no patch' unless -s $ARGV[-1];\n{lines}exit 0;\n")


def test_export_addresses_maintainers_lists_and_the_extras(repo: Repo, tmp_path: Path) -> None:
    _get_maintainer(repo, "Thomas Gleixner <tglx@linutronix.de>\nlinux-kernel@vger.kernel.org")
    out = tmp_path / "exported"
    written = series.export(repo.tree, "series", "posix-timers: Subject\n\nBody.", out)
    header = written[0].read_text().split("\n\n", 1)[0].replace("\n    ", " ")
    fields = dict(
        line.split(": ", 1) for line in header.splitlines() if line.startswith(("To:", "Cc:"))
    )
    assert fields["To"].split(", ") == ["Thomas Gleixner <tglx@linutronix.de>"]
    assert fields["Cc"].split(", ") == ["linux-kernel@vger.kernel.org", *series.EXTRA_CC]


def test_export_refuses_a_series_no_maintainer_is_found_for(repo: Repo, tmp_path: Path) -> None:
    _get_maintainer(repo, "")
    with pytest.raises(SeriesError, match="found no recipients"):
        series.export(repo.tree, "series", "posix-timers: Subject\n\nBody.", tmp_path / "out")
