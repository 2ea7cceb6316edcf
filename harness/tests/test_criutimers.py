"""criutimers' self-check, run on the host kernel: it passes, and it can fail.

The real-CRIU tests trust the process' own verdict after a restore; a
check that cannot fail would pass a restore that lost a timer.  SIGUSR2
deletes the first timer behind the check's back, as a broken restore would.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import helper

SPECS = [
    "0,m,s,40,50,1000",
    "2,m,t,50,60,1002",
    "3,p,s,41,40,1003",
    "5,r,s,42,0,1005",  # disarmed
    "7,b,n,43,100,1007",  # SIGEV_NONE, armed
]


def wait_for(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


@pytest.fixture
def process(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if not Path("/proc/self/timers").exists():
        pytest.skip("host kernel has no /proc/<pid>/timers (CONFIG_CHECKPOINT_RESTORE)")
    binary = helper.build("criutimers")
    env = {**os.environ, "CRIUTIMERS_DEADLINE_MS": "2000"}
    proc = subprocess.Popen([str(binary), str(tmp_path), "loop", *SPECS], env=env)
    try:
        pid = int(wait_for(tmp_path / "ready").split()[0])
        assert pid == proc.pid
        yield pid, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def lines(path: Path) -> list[str]:
    text = wait_for(path).splitlines()
    assert text[-1] == "end"
    return text


def test_self_check_passes_on_an_intact_process(process: tuple[int, Path]) -> None:
    pid, d = process
    os.kill(pid, signal.SIGUSR1)
    got = lines(d / "verify.1")
    assert [ln for ln in got if ln.startswith("FAIL")] == []
    fired = {int(ln.split()[2]): int(ln.split()[-1]) for ln in got if ln.startswith("ok timer")}
    assert set(fired) == {0, 2, 3, 5, 7}
    assert fired[0] >= 1 and fired[2] >= 1 and fired[3] >= 1  # armed ones fired
    assert fired[5] == 0 and fired[7] == 0  # disarmed, SIGEV_NONE


def test_self_check_fails_when_a_timer_is_gone(process: tuple[int, Path]) -> None:
    pid, d = process
    os.kill(pid, signal.SIGUSR2)  # delete timer 0, as a lossy restore would
    time.sleep(0.2)
    os.kill(pid, signal.SIGUSR1)
    fails = [ln for ln in lines(d / "verify.1") if ln.startswith("FAIL")]
    assert "FAIL timer 0: timer_gettime: Invalid argument" in fails
    assert "FAIL /proc/self/timers lists 4 timers, expected 5" in fails
    assert "FAIL timer 0 (clock m, signal 40) did not fire within 2000 ms" in fails


SYS_RT_SIGQUEUEINFO = 129  # x86_64
SI_TIMER = -2


def queue_timer_signal(pid: int, signo: int, timer_id: int, value: int) -> None:
    """Queue a siginfo that looks like timer ``timer_id``'s, as CRIU's restore does."""
    info = struct.pack("<iiiiiiq", signo, 0, SI_TIMER, 0, timer_id, 0, value).ljust(128, b"\0")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(info, 128)
    if libc.syscall(SYS_RT_SIGQUEUEINFO, pid, signo, buf) != 0:
        raise OSError(ctypes.get_errno(), "rt_sigqueueinfo")


def test_a_queued_old_signal_does_not_count_as_firing(process: tuple[int, Path]) -> None:
    """CRIU puts queued signals back: a lost timer's old signal must not hide it."""
    pid, d = process
    os.kill(pid, signal.SIGUSR2)  # timer 0 gone
    time.sleep(0.2)
    queue_timer_signal(pid, 40, 0, 1000)  # ... but its signal is queued
    os.kill(pid, signal.SIGUSR1)
    fails = [ln for ln in lines(d / "verify.1") if ln.startswith("FAIL")]
    assert "FAIL timer 0 (clock m, signal 40) did not fire within 2000 ms" in fails


def test_a_signal_from_a_disarmed_or_silent_timer_fails(process: tuple[int, Path]) -> None:
    pid, d = process
    queue_timer_signal(pid, 42, 5, 1005)
    queue_timer_signal(pid, 43, 7, 1007)
    os.kill(pid, signal.SIGUSR1)
    fails = sorted(ln for ln in lines(d / "verify.1") if ln.startswith("FAIL"))
    assert fails == [
        "FAIL timer 5 (disarmed) sent signal 42",
        "FAIL timer 7 (SIGEV_NONE) sent signal 43",
    ]
