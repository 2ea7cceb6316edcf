"""The console watch and the polling command loop, with fake consoles and channels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.guest import CommandTimeout, Wedged, collect
from harness.splat import Detector
from harness.vm import CONSOLE_FAILURES
from harness.watchdog import ConsoleWatch

KASAN = "[   45.101] BUG: KASAN: null-ptr-deref in do_timer_create+0x1a/0x300"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_watch(console: Path, clock: Clock, alive: list[bool] | None = None) -> ConsoleWatch:
    flag = alive if alive is not None else [True]
    return ConsoleWatch(
        console, Detector.default(), lambda: flag[0], CONSOLE_FAILURES, grace=30.0, clock=clock
    )


def fresh(tmp_path: Path) -> tuple[Path, Clock, ConsoleWatch]:
    """An empty console, a clock at 0 and a watch over them."""
    console = tmp_path / "console.log"
    console.write_text("")
    clock = Clock()
    return console, clock, make_watch(console, clock)


def append(console: Path, text: str) -> None:
    with console.open("a") as f:
        f.write(text)


def test_quiet_console_never_fires(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[    1.0] booting\n")
    clock = Clock()
    watch = make_watch(console, clock)
    for t in range(0, 1000, 10):
        clock.now = float(t)
        append(console, f"[ {t}.0] random: crng init done\n")
        assert watch() is None


def test_splat_fires_only_after_grace(tmp_path: Path) -> None:
    console, clock, watch = fresh(tmp_path)
    append(console, KASAN + "\n")
    clock.now = 5.0
    assert watch() is None  # seen at 5 s: the command may still finish
    clock.now = 34.9
    assert watch() is None
    clock.now = 35.0
    reason = watch()
    assert reason is not None
    assert KASAN in reason and "30s later" in reason


def test_splat_before_reset_is_not_this_tests(tmp_path: Path) -> None:
    console, clock, watch = fresh(tmp_path)
    append(console, KASAN + "\n")
    assert watch() is None
    watch.reset()
    append(console, KASAN.replace("45.101", "99.0") + "\n")  # not read: written before reset
    watch.reset()
    clock.now = 1000.0
    assert watch() is None


def test_allowed_line_does_not_fire(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    clock = Clock()
    detector = Detector([re.compile(r"WARNING: ")], [re.compile(r"known_harmless")])
    watch = ConsoleWatch(console, detector, lambda: True, CONSOLE_FAILURES, 30.0, clock)
    append(console, "[ 2.0] WARNING: CPU: 0 PID: 1 at known_harmless+0x1/0x2\n")
    clock.now = 100.0
    assert watch() is None
    append(console, "[ 3.0] WARNING: CPU: 0 PID: 1 at posix_timer_add+0x1/0x2\n")
    assert watch() is None and watch.first is not None


def test_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    console, _, watch = fresh(tmp_path)
    append(console, KASAN[:20])
    assert watch() is None and watch.first is None
    append(console, KASAN[20:] + "\n")
    assert watch() is None and watch.first is not None


def test_panic_fires_at_once(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    watch = make_watch(console, Clock())
    append(console, "[ 3.0] Kernel panic - not syncing: Fatal exception\n")
    reason = watch()
    assert reason is not None and "panicked" in reason


def test_qemu_exit_fires_at_once(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    alive = [True]
    watch = make_watch(console, Clock(), alive)
    assert watch() is None
    alive[0] = False
    assert watch() == "QEMU exited"


class FakeChannel:
    """Delivers scripted stdout chunks, then (optionally) an exit status and EOF.

    ``early`` chunks arrive only after the exit status was ready, as sshd
    may send them.
    """

    def __init__(self, chunks: list[bytes], status: int | None, early: int = 0) -> None:
        self.chunks = list(chunks)
        self.status = status
        self.closed = False
        self.late = self.chunks[len(self.chunks) - early :] if early else []
        if early:
            self.chunks = self.chunks[: len(self.chunks) - early]
        self.polls = 0

    @property
    def eof_received(self) -> bool:
        return self.status is not None and not self.late and not self.chunks

    def recv_ready(self) -> bool:
        return bool(self.chunks)

    def recv(self, nbytes: int) -> bytes:
        return self.chunks.pop(0)

    def recv_stderr_ready(self) -> bool:
        return False

    def recv_stderr(self, nbytes: int) -> bytes:
        return b""

    def exit_status_ready(self) -> bool:
        if self.status is None:
            return False
        # The late output lands one poll after the status is seen.
        self.polls += 1
        if self.late and self.polls > 1:
            self.chunks += self.late
            self.late = []
        return True

    def recv_exit_status(self) -> int:
        assert self.status is not None
        return self.status

    def close(self) -> None:
        self.closed = True


def test_collect_returns_output_and_status() -> None:
    chan = FakeChannel([b"a\n", b"b\n"], 3)
    out, err, status = collect(chan, deadline=10.0, clock=Clock())
    assert (out, err, status) == ("a\nb\n", "", 3)
    assert chan.closed


def test_collect_waits_for_output_sent_after_the_exit_status() -> None:
    chan = FakeChannel([b"first\n", b"dd: error reading\n"], 1, early=1)
    clock = Clock()

    def sleep(s: float) -> None:
        clock.now += s

    out, _, status = collect(chan, deadline=10.0, clock=clock, sleep=sleep)
    assert (out, status) == ("first\ndd: error reading\n", 1)


def test_collect_times_out() -> None:
    clock = Clock()

    def sleep(s: float) -> None:
        clock.now += s

    chan = FakeChannel([], None)
    with pytest.raises(CommandTimeout):
        collect(chan, deadline=5.0, clock=clock, sleep=sleep)
    assert chan.closed and clock.now >= 5.0


def test_collect_ends_when_the_watchdog_says_so() -> None:
    clock = Clock()
    asked: list[float] = []

    def sleep(s: float) -> None:
        clock.now += s

    def watchdog() -> str | None:
        asked.append(clock.now)
        return "the kernel reported X" if clock.now >= 40.0 else None

    chan = FakeChannel([], None)
    with pytest.raises(Wedged) as info:
        collect(chan, deadline=900.0, watchdog=watchdog, clock=clock, sleep=sleep)
    assert info.value.reason == "the kernel reported X"
    assert chan.closed
    assert 40.0 <= clock.now < 41.0  # at the first poll after the reason, not the deadline
    # polled about every half second, not on every spin
    assert 70 <= len(asked) <= 90


def test_each_command_gets_its_own_grace_after_a_splat(tmp_path: Path) -> None:
    """After a WARN the harness still reads the kernel log: not ended at once."""
    console, clock, watch = fresh(tmp_path)
    watch.begin()
    append(console, KASAN + "\n")
    assert watch() is None  # seen at 0 s
    clock.now = 40.0  # that command finished; the next one starts
    watch.begin()
    assert watch() is None
    clock.now = 69.0
    assert watch() is None
    clock.now = 70.0
    reason = watch()
    assert reason is not None and "70s later" in reason


def test_collect_reports_a_dropped_link() -> None:
    chan = FakeChannel([b"partial"], None)
    chan.closed = True  # paramiko closed it: the transport died
    with pytest.raises(OSError, match="closed before"):
        collect(chan, deadline=10.0, clock=Clock())
