"""Host tests for the /dev/kmsg reader (harness.kmsg).

The record samples are lines as 6.12's /dev/kmsg printed them in a debug
guest (escapes, device properties, a continued fragment); the guest doubles
below answer the reader's one command the way the kernel and dd do:
records from the oldest one left, then EAGAIN, or EPIPE when a record was
overwritten during the read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.kmsg import ATTEMPTS, Batch, KmsgCursor, KmsgError, Record, parse, select_new
from harness.splat import Detector

EAGAIN = "dd: error reading '/dev/kmsg': Resource temporarily unavailable\n"
EPIPE = "dd: error reading '/dev/kmsg': Broken pipe\n"

SAMPLE = (
    "5,0,0,-;Linux version 6.12.117+ (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0)\n"
    "6,86,0,-;rcu: \\x09RCU lockdep checking is enabled.\n"
    "5,142,0,-;calibrate_delay_direct() failed to get a good estimate for loops_per_jiffy."
    '\\x0aProbably due to long platform interrupts. Consider using "lpj=" boot option.\n'
    "6,262,20887868,-;ACPI: \\x5c_SB_.GSIF: Enabled at IRQ 21\n"
    "4,273,27855087,c; lapic is not functional.\n"
    "6,301,31860284,-;virtio_net virtio1 eth0: renamed\n"
    " SUBSYSTEM=virtio\n"
    " DEVICE=+virtio:virtio1\n"
    "12,302,250052505,-;PTIMERS-GUEST-READY\n"
)


def test_parse_records() -> None:
    recs = parse(SAMPLE)
    assert [r.seq for r in recs] == [0, 86, 142, 262, 273, 301, 302]
    assert (recs[0].level, recs[0].facility, recs[0].usec) == (5, 0, 0)
    # user-space writes to /dev/kmsg get facility 1 (LOG_USER)
    assert (recs[6].level, recs[6].facility, recs[6].usec) == (4, 1, 250052505)
    assert recs[1].text == "rcu: \tRCU lockdep checking is enabled."
    assert recs[3].text == "ACPI: \\_SB_.GSIF: Enabled at IRQ 21"
    assert [r.cont for r in recs] == [False, False, False, False, True, False, False]


def test_escaped_newline_makes_two_lines() -> None:
    rec = parse(SAMPLE)[2]
    assert rec.lines() == [
        "[    0.000000] calibrate_delay_direct() failed to get a good estimate for "
        "loops_per_jiffy.",
        '[    0.000000] Probably due to long platform interrupts. Consider using "lpj=" '
        "boot option.",
    ]


def test_continuation_lines_are_properties_of_their_record() -> None:
    recs = parse(SAMPLE)
    assert recs[5].props == (("SUBSYSTEM", "virtio"), ("DEVICE", "+virtio:virtio1"))
    assert recs[5].lines() == ["[   31.860284] virtio_net virtio1 eth0: renamed"]
    assert all(r.props == () for r in recs if r.seq != 301)


def test_caller_field_is_accepted() -> None:
    # CONFIG_PRINTK_CALLER adds ",caller=T123" after the flags.
    (rec,) = parse("4,9,1500000,-,caller=T123;WARNING: CPU: 0 PID: 123 at x\n")
    assert (rec.seq, rec.usec, rec.text) == (9, 1500000, "WARNING: CPU: 0 PID: 123 at x")


@pytest.mark.parametrize(
    "bad",
    [
        " SUBSYSTEM=virtio\n",  # a property before any record
        "6,1,0,-;ok\n SUBSYSTEM\n",  # a property without '='
        "6,1,0,-;ok\nrandom text\n",
        "6,x,0,-;seq is not a number\n",
        "6,1,0;only three fields\n",
    ],
)
def test_parse_rejects_what_is_not_a_record(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def rec(seq: int, text: str = "x") -> Record:
    return Record(seq, 6, 0, seq * 1000, False, text)


def test_select_new_takes_records_after_the_last_seen() -> None:
    fresh, gaps = select_new([rec(5), rec(6), rec(7), rec(8)], after=6)
    assert [r.seq for r in fresh] == [7, 8]
    assert gaps == []


def test_select_new_reports_records_overwritten_before_the_read() -> None:
    # The ring now starts at 120: records 11..119 were never read.
    fresh, gaps = select_new([rec(120), rec(121)], after=10)
    assert [r.seq for r in fresh] == [120, 121]
    assert gaps == [(11, 119)]


def test_select_new_from_boot_expects_seq_0() -> None:
    assert select_new([rec(0), rec(1)], after=None) == ([rec(0), rec(1)], [])
    assert select_new([rec(3)], after=None) == ([rec(3)], [(0, 2)])


def test_select_new_drops_repeated_records_and_finds_inner_holes() -> None:
    fresh, gaps = select_new([rec(3), rec(4), rec(4), rec(9)], after=2)
    assert [r.seq for r in fresh] == [3, 4, 9]
    assert gaps == [(5, 8)]


def test_batch_lost_report() -> None:
    assert Batch([]).lost_report() == ""
    batch = Batch([rec(120)], lost=[(11, 119), (130, 130)])
    assert batch.lost_count == 110
    assert batch.lost_report() == (
        "110 kernel log record(s) were overwritten before they could be read "
        "(seq 11-119, 130): a splat could be among them"
    )


@dataclass
class Answer:
    status: int
    stdout: str
    stderr: str


class Scripted:
    """A guest that answers each command with the next recorded answer."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60.0) -> Answer:
        self.commands.append(command)
        return self.answers.pop(0)


def dump(*recs: tuple[int, str]) -> str:
    return "".join(f"6,{seq},{seq * 1000},-;{text}\n" for seq, text in recs)


class Ring:
    """A guest whose kernel log holds the last ``size`` records, like printk's ring."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: list[tuple[int, str]] = []
        self.next = 0

    def log(self, text: str, times: int = 1) -> None:
        for _ in range(times):
            self.records.append((self.next, text))
            self.next += 1
        del self.records[: -self.size]

    def run(self, command: str, timeout: float = 60.0) -> Answer:
        assert "/dev/kmsg" in command
        return Answer(1, dump(*self.records), EAGAIN)


def test_cursor_sees_a_splat_after_the_ring_wrapped() -> None:
    ring = Ring(size=100)
    ring.log("boot", times=100)  # the ring is full from boot on
    cursor = KmsgCursor(ring)
    boot = cursor.read()
    assert len(boot.records) == 100 and boot.lost == []
    ring.log("quiet test")  # pushes one boot record out, adds one
    assert [r.text for r in cursor.read().records] == ["quiet test"]
    ring.log("WARNING: CPU: 1 PID: 321 at kernel/time/posix-timers.c:123 f+0x1/0x2")
    batch = cursor.read()
    assert [r.seq for r in batch.records] == [101]
    splats = Detector.default().scan(batch.lines())
    assert [s.pattern for s in splats] == [r"WARNING: CPU: \d+ PID: \d+ at"]
    assert batch.lost == []


def test_cursor_reports_records_lost_between_two_reads() -> None:
    ring = Ring(size=100)
    ring.log("boot", times=10)
    cursor = KmsgCursor(ring)
    cursor.read()
    ring.log("flood", times=250)
    ring.log("BUG: KASAN: slab-use-after-free in f+0x1/0x2")
    batch = cursor.read()
    # 10..160 were overwritten; 161..260 remain, the splat is 260.
    assert batch.lost == [(10, 160)]
    assert batch.records[0].seq == 161 and batch.records[-1].seq == 260
    assert [s.line for s in Detector.default().scan(batch.lines())] == [
        "[    0.260000] BUG: KASAN: slab-use-after-free in f+0x1/0x2"
    ]
    assert cursor.last == 260


def test_cursor_lost_boot_records() -> None:
    ring = Ring(size=100)
    ring.log("boot", times=150)
    batch = KmsgCursor(ring).read()
    assert batch.lost == [(0, 49)]


def test_cursor_reads_again_after_epipe() -> None:
    # The first read got records 5..6, then dd failed with EPIPE (7 and 8
    # were overwritten while it read); the second open starts at 9.
    guest = Scripted(
        Answer(1, dump((5, "a"), (6, "b")), EPIPE),
        Answer(1, dump((9, "c"), (10, "d")), EAGAIN),
    )
    cursor = KmsgCursor(guest)
    cursor.last = 4
    batch = cursor.read()
    assert [r.seq for r in batch.records] == [5, 6, 9, 10]
    assert batch.lost == [(7, 8)]
    assert cursor.last == 10
    assert len(guest.commands) == 2


def test_cursor_gives_up_after_repeated_epipe() -> None:
    guest = Scripted(*(Answer(1, dump((n, "x")), EPIPE) for n in range(ATTEMPTS)))
    with pytest.raises(KmsgError, match="overwritten while being read 3 times"):
        KmsgCursor(guest).read()


def test_cursor_fails_when_dd_fails_otherwise() -> None:
    guest = Scripted(Answer(1, "", "dd: failed to open '/dev/kmsg': No such file or directory\n"))
    with pytest.raises(KmsgError, match="did not end at the end of the log"):
        KmsgCursor(guest).read()


def test_cursor_fails_on_garbage() -> None:
    guest = Scripted(Answer(1, "this is not kmsg\n", EAGAIN))
    with pytest.raises(KmsgError, match="unreadable /dev/kmsg output"):
        KmsgCursor(guest).read()


def test_cursor_keeps_the_jiffies_of_each_read() -> None:
    guest = Scripted(
        Answer(1, dump((0, "a")), "jiffies: 4294943636\n" + EAGAIN),
        Answer(1, dump((0, "a"), (1, "b")), "jiffies: 4294943700\n" + EAGAIN),
        Answer(1, dump((0, "a"), (1, "b")), "jiffies: 4294944000\n" + EAGAIN),
        Answer(1, dump((0, "a"), (1, "b")), "jiffies: 4294945000\n" + EAGAIN),
    )
    cursor = KmsgCursor(guest)
    assert cursor.read().jiffies == 4294943636
    cursor.mark()  # a second read for the same label replaces its time
    cursor.read("vmtests/test_a.py::test_one")
    cursor.read("vmtests/test_a.py::test_two")
    assert cursor.history == [
        ("boot", 4294943700),
        ("vmtests/test_a.py::test_one", 4294944000),
        ("vmtests/test_a.py::test_two", 4294945000),
    ]


def test_cursor_without_jiffies_keeps_no_history() -> None:
    # No "jiffies:" line without CONFIG_TICK_ONESHOT: records still count.
    guest = Scripted(Answer(1, dump((0, "a")), EAGAIN))
    cursor = KmsgCursor(guest)
    batch = cursor.read()
    assert batch.jiffies is None
    assert [r.seq for r in batch.records] == [0]
    assert cursor.history == []


def test_new_returns_lines_and_raises_on_lost_records() -> None:
    ring = Ring(size=5)
    ring.log("boot", times=3)
    cursor = KmsgCursor(ring)
    assert cursor.new() == ["[    0.000000] boot", "[    0.001000] boot", "[    0.002000] boot"]
    ring.log("more", times=8)
    with pytest.raises(KmsgError, match="3 kernel log record"):
        cursor.new()
    assert cursor.last == 10
