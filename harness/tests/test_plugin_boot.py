"""The plugin's boot: one more boot when only SSH failed, never for a kernel failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from harness import helper as helper_mod
from harness import pytest_plugin
from harness.errors import BootError, GuestUnreachable
from harness.guest import Guest
from harness.pytest_plugin import _KERNEL, _start_guest, _State
from harness.results import RunRecord


class _FakeVM:
    """Stands in for VirtmeVM; each instance plays the next scripted outcome."""

    outcomes: ClassVar[list[BaseException | None]] = []
    made: ClassVar[list[_FakeVM]] = []

    def __init__(self, image: Path, workdir: Path, **kw: Any) -> None:
        self.image = image
        self.workdir = workdir
        self.kw = kw
        self.outcome = _FakeVM.outcomes.pop(0)
        self.stopped = False
        self.timeout = 0.0
        _FakeVM.made.append(self)

    def stop(self) -> None:
        self.stopped = True

    def start(self) -> None:
        pass

    def wait_ready(self) -> None:
        if isinstance(self.outcome, BootError) and not isinstance(self.outcome, GuestUnreachable):
            raise self.outcome

    def connect(self, timeout: float) -> tuple[Guest, float]:
        self.timeout = timeout
        if self.outcome is not None:
            raise self.outcome
        return cast(Guest, "guest"), 1.5


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **kw: Any) -> None:
        self.lines.append(line)


class _Config:
    def __init__(self, reporter: _Reporter) -> None:
        self.stash = pytest.Stash()
        self.stash[_KERNEL] = Path("/k/bzImage")
        self.reporter = reporter
        self.pluginmanager = self
        self.options: dict[str, Any] = {
            "--vm-cpus": 2,
            "--vm-memory": "2G",
            "--boot-timeout": 240.0,
            "--ssh-timeout": 77.0,
            "--bisect": False,
            "--boot-failure-is-bad": False,
        }

    def get_plugin(self, name: str) -> _Reporter | None:
        return self.reporter if name == "terminalreporter" else None

    def getoption(self, name: str) -> Any:
        return self.options[name]


@pytest.fixture
def boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[_Config, _Reporter, _State]:
    monkeypatch.setattr(pytest_plugin, "VirtmeVM", _FakeVM)
    _FakeVM.made = []
    reporter = _Reporter()
    state = _State(tmp_path)
    state.run = RunRecord(kernel="/k/bzImage")
    return _Config(reporter), reporter, state


def test_ssh_failure_boots_once_more(boot: tuple[_Config, _Reporter, _State]) -> None:
    config, reporter, state = boot
    stale = state.results_dir / "guest-2" / "console.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's retry\n")
    _FakeVM.outcomes = [GuestUnreachable("SSH did not answer within 120s"), None]
    vm, guest, ssh = _start_guest(cast(pytest.Config, config), state)
    assert not stale.exists()
    assert [v.stopped for v in _FakeVM.made] == [True, False]
    assert [v.timeout for v in _FakeVM.made] == [77.0, 77.0]
    assert [v.workdir for v in _FakeVM.made] == [
        state.results_dir / "guest",
        state.results_dir / "guest-2",
    ]
    assert cast(object, vm) is _FakeVM.made[1] and state.vm is vm
    assert (cast(object, guest), ssh) == ("guest", 1.5)
    assert state.run is not None and state.run.boot_attempts == 2
    assert reporter.lines == ["harness: SSH did not answer within 120s; booting once more"]


def test_ssh_failure_twice_is_a_boot_error(boot: tuple[_Config, _Reporter, _State]) -> None:
    config, _, state = boot
    _FakeVM.outcomes = [GuestUnreachable("first"), GuestUnreachable("second")]
    with pytest.raises(GuestUnreachable, match="second"):
        _start_guest(cast(pytest.Config, config), state)
    assert len(_FakeVM.made) == 2


def test_kernel_failure_is_not_retried(boot: tuple[_Config, _Reporter, _State]) -> None:
    config, reporter, state = boot
    _FakeVM.outcomes = [BootError("guest failed to boot: 'Kernel panic - not syncing'"), None]
    with pytest.raises(BootError, match="Kernel panic"):
        _start_guest(cast(pytest.Config, config), state)
    assert len(_FakeVM.made) == 1
    assert reporter.lines == []
    assert state.run is not None and state.run.boot_attempts == 1


def test_first_boot_ok(boot: tuple[_Config, _Reporter, _State]) -> None:
    config, reporter, state = boot
    _FakeVM.outcomes = [None]
    _start_guest(cast(pytest.Config, config), state)
    assert len(_FakeVM.made) == 1 and reporter.lines == []
    assert state.run is not None and state.run.boot_attempts == 1


@pytest.mark.parametrize(
    ("error", "code", "crashed"),
    [
        # SSH failing on both boots: the host's network, skip the commit
        (GuestUnreachable("SSH did not answer"), 125, None),
        # the kernel itself did not boot: bad under --boot-failure-is-bad
        (
            BootError("guest failed to boot: 'Kernel panic'"),
            1,
            "failed to boot: guest failed to boot: 'Kernel panic'",
        ),
    ],
)
def test_bisect_boot_failure_verdicts(
    boot: tuple[_Config, _Reporter, _State],
    monkeypatch: pytest.MonkeyPatch,
    error: BootError,
    code: int,
    crashed: str | None,
) -> None:
    config, _, state = boot
    config.options["--bisect"] = True
    config.options["--boot-failure-is-bad"] = True
    monkeypatch.setattr(helper_mod, "build", lambda *a: Path("/h/ptimerctl"))

    def fail(*a: object) -> None:
        raise error

    monkeypatch.setattr(pytest_plugin, "_start_guest", fail)
    with pytest.raises(pytest.exit.Exception) as info:
        pytest_plugin._boot(cast(pytest.Config, config), state)
    assert info.value.returncode == code
    assert state.crashed == crashed
