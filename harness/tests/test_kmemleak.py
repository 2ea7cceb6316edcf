"""Host tests for kmemleak's report: parsing, backtrace allowlist, attribution.

``data/kmemleak/mutant-leak.txt`` is a real report: a throwaway debug
kernel whose timer_create() kmalloc'ed 48 bytes and dropped them on request
(CLOCK_TAI, sigev_value 0x6c65616b), read from debugfs by
vmtests/test_zz_kmemleak.py, which failed naming the test that made the
call.  ``two-leaks.txt`` is written in 6.12's format (print_unreferenced())
to cover two objects and a base-kernel-looking backtrace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import kmemleak
from harness.kmemleak import Leak, allowed, attribute, describe, parse

DATA = Path(__file__).parent / "data" / "kmemleak"
REPORT = (DATA / "two-leaks.txt").read_text()
RECORDED = (DATA / "mutant-leak.txt").read_text()


def test_parse_the_recorded_report() -> None:
    (leak,) = parse(RECORDED)
    assert (leak.address, leak.size, leak.comm, leak.pid, leak.jiffies) == (
        0xFFFF888007BBD300,
        64,
        "ptimerctl",
        161,
        4295061253,
    )
    assert leak.backtrace == (
        "__kmalloc_cache_noprof+0x20f/0x3a0",
        "do_timer_create+0xfef/0x12f0",
        "__x64_sys_timer_create+0x119/0x160",
        "do_syscall_64+0x54/0xf0",
        "entry_SYSCALL_64_after_hwframe+0x4b/0x53",
    )
    assert leak.text == RECORDED.rstrip("\n")
    assert not allowed(leak, kmemleak.load_allowlist())


def test_parse_two_objects() -> None:
    leaks = parse(REPORT)
    assert [(hex(x.address), x.size, x.comm, x.pid, x.jiffies) for x in leaks] == [
        ("0xffff888003a1b000", 64, "ptimerctl", 777, 4294937296),
        ("0xffff888004c2e100", 32, "swapper/0", 1, 4294892310),
    ]
    assert leaks[0].backtrace == (
        "__kmalloc_cache_noprof+0x2a1/0x330",
        "alloc_posix_timer+0x1d/0x90",
        "do_timer_create+0x4e/0x3b0",
        "__x64_sys_timer_create+0x91/0xd0",
        "do_syscall_64+0x9e/0x1a0",
        "entry_SYSCALL_64_after_hwframe+0x77/0x7f",
    )
    # The hex dump is not part of the backtrace.
    assert not any("leak...." in f for x in leaks for f in x.backtrace)
    assert leaks[0].text.splitlines()[0] == "unreferenced object 0xffff888003a1b000 (size 64):"
    assert leaks[0].text.splitlines()[-1] == "    entry_SYSCALL_64_after_hwframe+0x77/0x7f"


def test_empty_report_has_no_leaks() -> None:
    assert parse("") == []
    assert parse("\n") == []


def test_percpu_object_and_missing_trace() -> None:
    text = (
        "unreferenced object 0x607f4b2a1c28 (size 8):\n"
        '  comm "kworker/u8:1", pid 40, jiffies 4294900000\n'
        "  hex dump (first 8 bytes on cpu 1):\n"
        "    00 00 00 00 00 00 00 00                          ........\n"
        "  backtrace (crc 0):\n"
    )
    (leak,) = parse(text)
    assert (leak.size, leak.comm, leak.backtrace) == (8, "kworker/u8:1", ())


@pytest.mark.parametrize(
    "bad",
    [
        "kmemleak: 1 new suspected memory leaks\n",
        "unreferenced object 0xffff888003a1b000 (size 64):\n",  # no comm line
        REPORT.replace("  backtrace (crc 0):", "  back trace:"),
    ],
)
def test_unknown_format_is_an_error_not_no_leaks(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_allowlist_matches_the_backtrace_only() -> None:
    ptimer, acpi = parse(REPORT)
    patterns = [re.compile(r"^acpi_ut_allocate_object_desc_dbg\+", re.M)]
    assert not allowed(ptimer, patterns)
    assert allowed(acpi, patterns)
    # The comm or the address are not the backtrace.
    assert not allowed(acpi, [re.compile("swapper"), re.compile("ffff888004c2e100")])


def test_default_allowlist_excuses_neither_sample() -> None:
    allow = kmemleak.load_allowlist()
    assert [x.comm for x in parse(REPORT) if not allowed(x, allow)] == ["ptimerctl", "swapper/0"]


TIMELINE = [
    ("boot", 4294892400),
    ("vmtests/test_a.py::test_one", 4294930000),
    ("vmtests/test_a.py::test_two", 4294940000),
]


def test_attribute_to_the_window_that_contains_the_allocation() -> None:
    assert attribute(4294892310, TIMELINE) == "boot (before the first test)"
    assert attribute(4294892400, TIMELINE) == "boot (before the first test)"
    assert attribute(4294892401, TIMELINE) == (
        "vmtests/test_a.py::test_one (or the teardown of boot)"
    )
    assert attribute(4294937296, TIMELINE) == (
        "vmtests/test_a.py::test_two (or the teardown of vmtests/test_a.py::test_one)"
    )
    assert attribute(4294940001, TIMELINE) == (
        "the test after vmtests/test_a.py::test_two (the last one recorded)"
    )
    assert attribute(5, []) == "an unknown test (no test boundaries were recorded)"


def test_describe_names_the_test_and_keeps_the_block() -> None:
    leak: Leak = parse(REPORT)[0]
    text = describe(leak, TIMELINE)
    head, *block = text.splitlines()
    assert head == (
        "64 bytes at 0xffff888003a1b000 allocated by ptimerctl (pid 777) during "
        "vmtests/test_a.py::test_two (or the teardown of vmtests/test_a.py::test_one):"
    )
    assert "\n".join(block) == leak.text
