"""VM command line and boot supervision with fake processes (no QEMU)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import vm as vm_mod
from harness.errors import BootError, GuestError, GuestUnreachable, SetupError
from harness.guest import Guest, Result
from harness.vm import READY, Accel, VirtmeVM


@pytest.mark.parametrize("name", ["tcg", "kvm"])
def test_probe_accel_forced(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("PTIMERS_ACCEL", name)
    accel = vm_mod.probe_accel()
    assert accel.name == name
    assert "PTIMERS_ACCEL" in accel.reason


def pair(cmd: list[str], flag: str) -> list[str]:
    """Every value following ``flag``."""
    return [cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == flag]


def test_command_tcg(tmp_path: Path) -> None:
    vm = VirtmeVM(
        tmp_path / "bzImage",
        tmp_path,
        cpus=3,
        memory="1G",
        port=2222,
        accel=Accel("tcg", "test"),
        append=["loglevel=7"],
    )
    cmd = vm.command()
    assert cmd[:3] == ["vng", "--run", str(tmp_path / "bzImage")]
    assert "--force-9p" in cmd
    assert "--disable-kvm" in cmd
    assert "--ssh-tcp" in cmd
    assert pair(cmd, "--ssh") == ["2222"]
    assert pair(cmd, "--append") == [
        "root=/dev/root",
        "SYSTEMD_PROC_CMDLINE=net.ifnames=0",
        "loglevel=7",
    ]
    i = cmd.index("--append")
    assert cmd[i : i + 2] == ["--append", "root=/dev/root"]
    assert pair(cmd, "--cpus") == ["3"]
    assert pair(cmd, "--memory") == ["1G"]
    assert cmd[-2:] == ["--exec", vm_mod.GUEST_INIT]
    assert READY in vm_mod.GUEST_INIT


def test_command_kvm_from_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTIMERS_ACCEL", "kvm")
    vm = VirtmeVM(tmp_path / "bzImage", tmp_path, port=2200)
    cmd = vm.command()
    assert "--disable-kvm" not in cmd
    assert vm.accel is not None and vm.accel.name == "kvm"
    assert pair(cmd, "--ssh") == ["2200"]


def test_free_port_and_tail(tmp_path: Path) -> None:
    port = vm_mod.free_port()
    assert 0 < port < 65536
    assert vm_mod.tail(tmp_path / "missing.log") == "(no output)"
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert vm_mod.tail(log, 3) == "line 97\nline 98\nline 99"


@pytest.fixture
def fake_vm(tmp_path: Path) -> Iterator[VirtmeVM]:
    """A VirtmeVM whose 'QEMU' is a local process; its log files exist."""
    vm = VirtmeVM(tmp_path / "bzImage", tmp_path / "guest", accel=Accel("tcg", "fake"))
    vm.workdir.mkdir()
    vm.console.write_text("")
    vm.stdout.write_text("")
    yield vm
    if vm.proc is not None:
        vm.proc.kill()
        vm.proc.wait()
        if vm.proc.stdin:
            vm.proc.stdin.close()


def start_fake(vm: VirtmeVM, argv: list[str], boot_timeout: float = 10.0) -> None:
    # cat exits when stop() closes its stdin, like the reaper does.
    vm.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    vm.boot_timeout = boot_timeout
    vm.started = time.monotonic()


def test_wait_ready_success(fake_vm: VirtmeVM) -> None:
    start_fake(fake_vm, ["cat"])
    fake_vm.stdout.write_text(f"booting\n{READY}\n")
    fake_vm.wait_ready()
    assert fake_vm.alive()
    assert 0 <= fake_vm.ready_seconds < 5
    fake_vm.stop()
    assert fake_vm.proc is None
    assert not fake_vm.alive()
    fake_vm.stop()  # idempotent


def test_wait_ready_panic(fake_vm: VirtmeVM) -> None:
    start_fake(fake_vm, ["cat"])
    proc = fake_vm.proc
    assert proc is not None
    fake_vm.console.write_text(
        '[    0.9] VFS: Cannot open root device "" or unknown-block(0,0): error -6\n'
        "[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n"
        "[    0.9] ---[ end Kernel panic - not syncing: VFS ]---\n"
    )
    start = time.monotonic()
    with pytest.raises(BootError) as info:
        fake_vm.wait_ready()
    assert time.monotonic() - start < 5
    err = info.value
    assert "'Kernel panic - not syncing'" in err.message
    assert "accel tcg" in err.message
    assert err.detail is not None
    assert "Unable to mount root fs" in err.detail
    assert "VFS: Cannot open root device" in err.detail
    assert err.hint is not None and str(fake_vm.console) in err.hint
    # The guest was stopped.
    assert fake_vm.proc is None
    assert proc.poll() is not None


def test_wait_ready_qemu_exited(fake_vm: VirtmeVM) -> None:
    fake_vm.console.write_text("qemu-system-x86_64: -accel kvm: failed to initialize kvm\n")
    start_fake(fake_vm, ["true"])
    assert fake_vm.proc is not None
    fake_vm.proc.wait()
    with pytest.raises(BootError) as info:
        fake_vm.wait_ready()
    assert "QEMU exited" in info.value.message
    assert info.value.detail == "qemu-system-x86_64: -accel kvm: failed to initialize kvm"


def test_wait_ready_timeout(fake_vm: VirtmeVM) -> None:
    start_fake(fake_vm, ["cat"], boot_timeout=0.5)
    fake_vm.console.write_text("[    1.0] still booting\n")
    start = time.monotonic()
    with pytest.raises(BootError) as info:
        fake_vm.wait_ready()
    assert 0.4 < time.monotonic() - start < 5
    assert "not ready within" in info.value.message
    assert info.value.detail == "[    1.0] still booting"
    assert fake_vm.proc is None


def test_start_rejects_missing_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: "/usr/bin/vng")
    vm = VirtmeVM(tmp_path / "no-such-bzImage", tmp_path / "guest")
    with pytest.raises(BootError, match="does not exist"):
        vm.start()
    assert vm.proc is None


def test_start_without_vng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    vm = VirtmeVM(tmp_path / "bzImage", tmp_path / "guest")
    with pytest.raises(SetupError, match="vng"):
        vm.start()


def test_guest_refuses_non_loopback() -> None:
    with pytest.raises(GuestError, match="loopback only"):
        Guest(2222, host="10.0.0.1")
    for host in ("127.0.0.1", "localhost", "::1"):
        assert Guest(2222, host=host).host == host


def test_guest_run_needs_connection() -> None:
    with pytest.raises(GuestError, match="not connected"):
        Guest(2222).run("true")


def test_result_describe_truncates() -> None:
    r = Result("uname -r", 1, "x" * 10 + "6.12.117", "boom", 0.25)
    text = r.describe(limit=8)
    assert text.splitlines()[:2] == ["$ uname -r", "[exit 1, 0.25s]"]
    assert "--- stdout ---\n6.12.117\n" in text
    assert text.endswith("--- stderr ---\nboom")


def test_connect_unreachable_stops_guest_and_shows_console(fake_vm: VirtmeVM) -> None:
    # The guest booted, but nothing answers SSH on its port (the network
    # never came up): a GuestUnreachable with the console, within the timeout.
    start_fake(fake_vm, ["cat"])
    fake_vm.port = vm_mod.free_port()
    proc = fake_vm.proc
    assert proc is not None
    fake_vm.console.write_text('[    9.8] Cannot find device "eth0"\n')
    start = time.monotonic()
    with pytest.raises(GuestUnreachable) as info:
        fake_vm.connect(timeout=1.5)
    assert 1.4 < time.monotonic() - start < 15
    err = info.value
    assert err.message.startswith(
        f"guest announced readiness but SSH on 127.0.0.1:{fake_vm.port} did not answer within 2s"
    )
    assert err.detail == '[    9.8] Cannot find device "eth0"'
    assert fake_vm.proc is None
    assert proc.poll() is not None


def test_connect_ends_at_once_when_qemu_dies(fake_vm: VirtmeVM) -> None:
    start_fake(fake_vm, ["true"])
    assert fake_vm.proc is not None
    fake_vm.proc.wait()
    fake_vm.port = vm_mod.free_port()
    start = time.monotonic()
    with pytest.raises(BootError) as info:
        fake_vm.connect(timeout=60)
    assert time.monotonic() - start < 5
    assert not isinstance(info.value, GuestUnreachable)
    assert info.value.message.startswith("QEMU exited before SSH answered")


def test_connect_ends_at_once_on_panic(fake_vm: VirtmeVM) -> None:
    start_fake(fake_vm, ["cat"])
    fake_vm.port = vm_mod.free_port()
    fake_vm.console.write_text("[    7.0] Kernel panic - not syncing: Attempted to kill init!\n")
    start = time.monotonic()
    with pytest.raises(BootError) as info:
        fake_vm.connect(timeout=60)
    assert time.monotonic() - start < 5
    assert not isinstance(info.value, GuestUnreachable)
    assert info.value.message.startswith(
        "guest crashed before SSH answered: 'Kernel panic - not syncing' on the console"
    )
    assert fake_vm.proc is None


def test_connect_panic_during_the_last_attempt_is_a_crash(fake_vm: VirtmeVM) -> None:
    # A panic that lands while the last SSH attempt waits is the kernel's
    # failure, not an unreachable guest that deserves another boot.
    start_fake(fake_vm, ["cat"])
    fake_vm.port = vm_mod.free_port()
    timer = threading.Timer(
        0.3, fake_vm.console.write_text, ["[    9.0] Kernel panic - not syncing: oops\n"]
    )
    timer.start()
    try:
        with pytest.raises(BootError) as info:
            fake_vm.connect(timeout=1.0)
    finally:
        timer.cancel()
    assert not isinstance(info.value, GuestUnreachable)
    assert info.value.message.startswith(
        "guest crashed before SSH answered: 'Kernel panic - not syncing' on the console"
    )


def test_command_possible_cpus_and_plugin(tmp_path: Path) -> None:
    """64 possible CPUs: QEMU gets 64 vCPUs, the kernel starts only `cpus` of them.

    (QEMU's hot-pluggable maxcpus= leaves the guest with 2 possible CPUs under
    TCG: the kernel ignores the MADT's disabled entries without a hypervisor.)
    """
    vm = VirtmeVM(
        tmp_path / "bzImage",
        tmp_path,
        cpus=2,
        possible_cpus=64,
        accel=Accel("tcg", "test"),
        qemu_opts=["-plugin", "/p/insncount.so,out=/o/insns.txt"],
    )
    cmd = vm.command()
    assert pair(cmd, "--cpus") == ["64"]
    assert "maxcpus=2" in pair(cmd, "--append")
    assert "--qemu-opts=-plugin /p/insncount.so,out=/o/insns.txt" in cmd
    plain = VirtmeVM(tmp_path / "bzImage", tmp_path, cpus=2, accel=Accel("tcg", "test"))
    assert pair(plain.command(), "--cpus") == ["2"]
    assert not any(a.startswith("maxcpus") for a in pair(plain.command(), "--append"))
