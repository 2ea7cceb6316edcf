"""Strict parsing of /proc/<pid>/timers."""

from __future__ import annotations

import pytest

from harness.procfs import ProcTimer, ProcTimersFormatError, parse

SAMPLE = """\
ID: 3
signal: 14/0000000000000000
notify: thread/tid.412
ClockID: 1
ID: 2
signal: 10/00007ffd1234abcd
notify: signal/pid.400
ClockID: 0
ID: 0
signal: 0/0000000000000000
notify: none/pid.400
ClockID: 7
"""


def test_parse_each_notify_kind() -> None:
    assert parse(SAMPLE) == [
        ProcTimer(
            id=3, signo=14, sival_ptr=0, notify="thread", target="tid", target_id=412, clock=1
        ),
        ProcTimer(
            id=2,
            signo=10,
            sival_ptr=0x7FFD1234ABCD,
            notify="signal",
            target="pid",
            target_id=400,
            clock=0,
        ),
        ProcTimer(id=0, signo=0, sival_ptr=0, notify="none", target="pid", target_id=400, clock=7),
    ]


def test_parse_32bit_sival_and_negative_ids() -> None:
    text = "ID: -1\nsignal: 12/deadbeef\nnotify: signal/tid.9\nClockID: -6\n"
    (t,) = parse(text)
    assert t.id == -1
    assert t.sival_ptr == 0xDEADBEEF
    assert (t.notify, t.target, t.target_id) == ("signal", "tid", 9)
    assert t.clock == -6


def test_empty_text_is_no_timers() -> None:
    assert parse("") == []


@pytest.mark.parametrize("n", [1, 3, 5, 7])
def test_line_count_not_multiple_of_four(n: int) -> None:
    text = "\n".join(SAMPLE.splitlines()[:n]) + "\n"
    with pytest.raises(ProcTimersFormatError, match=f"^{n} lines is not a multiple of 4"):
        parse(text)


@pytest.mark.parametrize(
    ("lineno", "bad"),
    [
        (1, "ID 3"),
        (1, "ID: x"),
        (2, "signal: 14"),
        (2, "signal: 14/00000000000000000"),  # 17 hex digits
        (2, "signal: 14/000000000000000G"),
        (3, "notify: thread/tid 412"),
        (3, "notify: other/pid.1"),
        (3, "notify: signal/proc.1"),
        (4, "ClockID: "),
        (4, "clockid: 1"),
    ],
)
def test_malformed_line_is_rejected(lineno: int, bad: str) -> None:
    good = SAMPLE.splitlines()[:4]
    lines = good + good
    lines[4 + lineno - 1] = bad
    with pytest.raises(ProcTimersFormatError) as info:
        parse("\n".join(lines) + "\n")
    assert str(info.value).startswith(f"line {4 + lineno}: {bad!r}")


def test_fields_out_of_order_are_rejected() -> None:
    lines = SAMPLE.splitlines()[:4]
    lines[1], lines[2] = lines[2], lines[1]
    with pytest.raises(ProcTimersFormatError, match=r"^line 2: "):
        parse("\n".join(lines))


def test_error_is_a_value_error() -> None:
    assert issubclass(ProcTimersFormatError, ValueError)
