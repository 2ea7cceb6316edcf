"""One more boot when only SSH failed, never for a kernel failure; bisect verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from harness import helper as helper_mod
from harness import pytest_plugin
from harness.errors import BootError, GuestUnreachable
from harness.guest import Guest
from harness.pytest_plugin import _KERNEL, _State
from harness.vm import VirtmeVM


class _ScriptedVM(VirtmeVM):
    """A VirtmeVM whose boots play scripted outcomes instead of running QEMU."""

    def __init__(self, workdir: Path, outcomes: list[BaseException | None]) -> None:
        super().__init__(Path("/k/bzImage"), workdir, port=2222)
        self.outcomes = outcomes
        self.log: list[tuple[str, Path, int]] = []
        self.timeouts: list[float] = []

    def start(self) -> None:
        self.port = self.port or 3333
        self.log.append(("start", self.workdir, self.port))

    def wait_ready(self) -> None:
        outcome = self.outcomes[0]
        if isinstance(outcome, BootError) and not isinstance(outcome, GuestUnreachable):
            raise outcome

    def connect(self, timeout: float = 120.0) -> tuple[Guest, float]:
        self.timeouts.append(timeout)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return cast(Guest, "guest"), 1.5


def test_ssh_failure_boots_once_more(tmp_path: Path) -> None:
    stale = tmp_path / "guest-2" / "console.log"
    stale.parent.mkdir()
    stale.write_text("an earlier run's retry\n")
    vm = _ScriptedVM(tmp_path / "guest", [GuestUnreachable("SSH did not answer"), None])
    said: list[str] = []
    assert cast(object, vm.boot(77.0, announce=said.append)) == ("guest", 1.5)
    # the second guest logs apart, on a fresh port; the old retry's logs are gone
    assert vm.log == [("start", tmp_path / "guest", 2222), ("start", tmp_path / "guest-2", 3333)]
    assert not stale.exists()
    assert vm.timeouts == [77.0, 77.0]
    assert vm.attempts == 2
    assert said == ["harness: SSH did not answer; booting once more"]


def test_ssh_failure_twice_is_a_boot_error(tmp_path: Path) -> None:
    vm = _ScriptedVM(tmp_path / "guest", [GuestUnreachable("first"), GuestUnreachable("second")])
    with pytest.raises(GuestUnreachable, match="second"):
        vm.boot(announce=lambda line: None)
    assert vm.attempts == 2


def test_kernel_failure_is_not_retried(tmp_path: Path) -> None:
    vm = _ScriptedVM(tmp_path / "guest", [BootError("guest failed to boot: 'Kernel panic'"), None])
    said: list[str] = []
    with pytest.raises(BootError, match="Kernel panic"):
        vm.boot(announce=said.append)
    assert [entry[0] for entry in vm.log] == ["start"]
    assert said == []
    assert vm.attempts == 1


def test_first_boot_ok(tmp_path: Path) -> None:
    vm = _ScriptedVM(tmp_path / "guest", [None])
    said: list[str] = []
    assert cast(object, vm.boot(announce=said.append)) == ("guest", 1.5)
    assert vm.attempts == 1 and said == []


class _Config:
    """Just what the plugin's _boot reads from a pytest config."""

    def __init__(self) -> None:
        self.stash = pytest.Stash()
        self.stash[_KERNEL] = Path("/k/bzImage")
        self.pluginmanager = self
        self.options: dict[str, Any] = {
            "--vm-cpus": 2,
            "--vm-memory": "2G",
            "--boot-timeout": 240.0,
            "--ssh-timeout": 77.0,
            "--bisect": True,
            "--boot-failure-is-bad": True,
        }

    def get_plugin(self, name: str) -> None:
        return None

    def getoption(self, name: str) -> Any:
        return self.options[name]


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
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BootError,
    code: int,
    crashed: str | None,
) -> None:
    made: list[_ScriptedVM] = []

    def scripted(image: Path, workdir: Path, **kw: Any) -> _ScriptedVM:
        made.append(_ScriptedVM(workdir, [error, error]))
        return made[-1]

    monkeypatch.setattr(helper_mod, "build", lambda *a: Path("/h/ptimerctl"))
    monkeypatch.setattr(pytest_plugin, "VirtmeVM", scripted)
    state = _State(tmp_path)
    with pytest.raises(pytest.exit.Exception) as info:
        pytest_plugin._boot(cast(pytest.Config, _Config()), state)
    assert info.value.returncode == code
    assert state.crashed == crashed
    ssh_failed = isinstance(error, GuestUnreachable)
    assert made[0].timeouts == ([77.0, 77.0] if ssh_failed else [])  # --ssh-timeout reaches it
    assert state.run is not None
    assert state.run.boot_attempts == (2 if ssh_failed else 1)
