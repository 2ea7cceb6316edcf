"""Bisection verdicts and the ``git bisect run`` loop, with a stand-in step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from harness import bisect
from harness.errors import GuestError, SeriesError
from harness.guest import Guest
from harness.pytest_plugin import _guest_crash, _State, bisect_exit
from harness.source import GIT_ENV
from harness.vm import VirtmeVM


@pytest.mark.parametrize(
    ("exitstatus", "infra", "crashed", "want"),
    [
        (0, None, None, 0),
        (1, None, None, 1),
        # the kernel crashed or hung in a test: the commit is bad, not untestable
        (1, None, "crashed ('Kernel panic - not syncing' on the console)", 1),
        (1, "boot failed", "died (QEMU exited)", 1),
        # no kernel to test (build, config, boot, helper): skip the commit
        (125, "guest failed to boot", None, 125),
        (3, None, None, 125),
        # the same at every commit: abort rather than mark everything bad
        (2, None, None, 128),
        (4, None, None, 128),
        # --boot-failure-is-bad: the boot failure was recorded as a crash
        (1, None, "failed to boot: guest failed to boot", 1),
        (5, None, None, 128),
    ],
)
def test_plugin_bisect_exit(
    exitstatus: int, infra: str | None, crashed: str | None, want: int
) -> None:
    assert bisect_exit(exitstatus, infra, crashed) == want


@pytest.mark.parametrize(
    ("pytest_exit", "want"),
    [(0, 0), (1, 1), (125, 125), (128, 128), (2, 128), (4, 128), (5, 128), (3, 125), (7, 125)],
)
def test_step_verdict(pytest_exit: int, want: int) -> None:
    assert bisect.verdict(pytest_exit) == want


def test_why_names_the_first_failure(tmp_path: Path) -> None:
    out = (
        "...F.s\n"
        "FAILED vmtests/test_id_allocation.py::test_fresh_process_counts_from_zero"
        " - assert 1 == 0\n"
        "FAILED vmtests/test_errors.py::test_x - boom\n"
        "harness: kernel 6.12.117+ (tcg), 7 vmtests: {...}\n"
        "2 failed, 4 passed, 1 skipped in 80.1s\n"
    )
    why = bisect._why(out, 1, tmp_path / "pytest.log")
    assert why.split("; ")[:2] == [
        "2 failed, 4 passed, 1 skipped in 80.1s",
        "FAILED vmtests/test_id_allocation.py::test_fresh_process_counts_from_zero"
        " - assert 1 == 0 (+1 more)",
    ]


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), *args],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tree), **GIT_ENV},
    ).stdout.strip()


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    """Ten commits; from the sixth on, ``state`` says ``broken``."""
    tree = tmp_path / "tree"
    tree.mkdir()
    _git(tree, "init", "-q")
    commits = []
    for i in range(10):
        (tree / "state").write_text("broken\n" if i >= 5 else "fine\n")
        (tree / "n").write_text(f"{i}\n")
        # commit 3 cannot be tested (a build failure, say): the step skips it
        (tree / "untestable").write_text("yes\n" if i == 3 else "no\n")
        _git(tree, "add", "-A")
        _git(tree, "commit", "-q", "-m", f"commit {i}")
        commits.append(_git(tree, "rev-parse", "HEAD"))
    return tree, commits


STEP = (
    "import sys; from pathlib import Path; "
    "sys.exit(125 if Path('untestable').read_text() == 'yes\\n' "
    "else 1 if Path('state').read_text() == 'broken\\n' else 0)"
)


def test_run_names_the_first_bad_commit(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    tree, commits = history
    found = bisect.run(tree, commits[0], commits[-1], "default", [], [sys.executable, "-c", STEP])
    assert found == commits[5]
    # the tree is left where it was, not mid-bisection
    assert _git(tree, "rev-parse", "HEAD") == commits[-1]
    assert not (tree / ".git" / "BISECT_LOG").exists()
    out = capsys.readouterr().out
    assert any(li.startswith(f"{commits[5]} is the first bad commit") for li in out.splitlines())


def test_run_refuses_a_dirty_tree(history: tuple[Path, list[str]]) -> None:
    tree, commits = history
    (tree / "n").write_text("local edit\n")
    with pytest.raises(SeriesError, match="uncommitted changes"):
        bisect.run(tree, commits[0], commits[-1], "default", [], [sys.executable, "-c", STEP])


def test_run_aborted_step_is_an_error(history: tuple[Path, list[str]]) -> None:
    tree, commits = history
    abort = [sys.executable, "-c", "import sys; sys.exit(128)"]
    with pytest.raises(SeriesError, match="did not name a first bad commit"):
        bisect.run(tree, commits[0], commits[-1], "default", [], abort)
    assert not (tree / ".git" / "BISECT_LOG").exists()


class _FakeVM:
    def __init__(self, marker: str | None, alive: bool) -> None:
        self.marker, self.up = marker, alive

    def console_failure(self) -> str | None:
        return self.marker

    def alive(self) -> bool:
        return self.up


class _FakeGuest:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    def run(self, command: str, timeout: float) -> None:
        if not self.answers:
            raise GuestError(f"guest command timed out after {timeout:.0f}s: {command}")


def _call(exc: BaseException | None) -> pytest.CallInfo[None]:
    def fn() -> None:
        if exc is not None:
            raise exc

    return pytest.CallInfo.from_call(fn, "call", reraise=())


@pytest.mark.parametrize(
    ("marker", "alive", "answers", "exc", "want"),
    [
        (None, True, True, None, None),
        (
            "Kernel panic - not syncing",
            True,
            True,
            None,
            "crashed ('Kernel panic - not syncing' on the console)",
        ),
        (None, False, True, None, "died (QEMU exited)"),
        # a guest command timed out and the guest no longer answers: hung
        (None, True, False, GuestError("timed out"), "stopped answering"),
        # a command failed but the guest is fine: an ordinary test failure
        (None, True, True, GuestError("exit 1"), None),
        (None, True, False, AssertionError("1 != 0"), None),
    ],
)
def test_guest_crash_is_detected_after_a_test(
    marker: str | None, alive: bool, answers: bool, exc: BaseException | None, want: str | None
) -> None:
    state = _State(Path("unused"))
    state.vm = cast(VirtmeVM, _FakeVM(marker, alive))
    state.guest = cast(Guest, _FakeGuest(answers))
    assert _guest_crash(state, _call(exc)) == want


def test_selftest_edits_apply_to_the_series() -> None:
    """The selftest's planted break edits code the series adds; a series
    rewrite that drops that line must fail here, not 50 minutes into CI."""
    repo = Path(__file__).resolve().parents[2]
    added = "\n".join(
        line[1:]
        for patch in sorted((repo / "patches").glob("*.patch"))
        for line in patch.read_text().splitlines()
        if line.startswith(("+", " ")) and not line.startswith("+++")
    )
    for path, old, new, subject in bisect._THROWAWAY:
        if old == "/*\n":
            continue  # every kernel file has a comment opener
        assert old in added, f"{subject}: {old!r} is in no line of patches/ ({path})"
        assert old != new
