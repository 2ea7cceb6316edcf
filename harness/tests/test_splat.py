"""Kernel splat detection on realistic dmesg samples (harness/tests/data/dmesg/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.splat import Detector, Splat, load_patterns, report

DATA = Path(__file__).parent / "data" / "dmesg"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.default()


# sample -> (first offending line without the timestamp, pattern that matched it)
BAD = {
    "warning.log": (
        "------------[ cut here ]------------",
        r"------------\[ cut here \]------------",
    ),
    "lockdep.log": (
        "WARNING: possible circular locking dependency detected",
        r"(^|\] )WARNING: ",
    ),
    "kasan.log": (
        "BUG: KASAN: slab-use-after-free in posix_timer_unhash_and_free+0x42/0x80",
        r"\bBUG: ",
    ),
    "rcu-stall.log": (
        "rcu: INFO: rcu_preempt self-detected stall on CPU",
        r"rcu: INFO: rcu_\w+ (self-)?detected stall",
    ),
    "soft-lockup.log": (
        "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [ptimerctl:123]",
        r"\bBUG: ",
    ),
    "kmemleak.log": (
        "unreferenced object 0xffff888003a1b000 (size 64):",
        r"unreferenced object 0x[0-9a-f]+",
    ),
}

_STAMP = re.compile(r"^\[\s*\d+\.\d+\] ")


def strip_stamp(line: str) -> str:
    return _STAMP.sub("", line)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_logs_are_flagged(detector: Detector, name: str) -> None:
    want_line, want_pattern = BAD[name]
    log = lines(name)
    splats = detector.scan(log)
    assert splats, f"{name}: no splat found"
    first = splats[0]
    assert strip_stamp(first.line) == want_line
    assert first.pattern == want_pattern
    # The context starts at the offending line and runs on from there.
    start = next(i for i, li in enumerate(log) if strip_stamp(li.strip()) == want_line)
    assert first.context == log[start : start + 30]


def test_warning_flags_cut_here_and_the_warning_line(detector: Detector) -> None:
    splats = detector.scan(lines("warning.log"))
    assert [strip_stamp(s.line) for s in splats] == [
        "------------[ cut here ]------------",
        "WARNING: CPU: 1 PID: 321 at kernel/time/posix-timers.c:123 do_timer_create+0x1/0x2",
    ]
    assert splats[1].pattern == r"WARNING: CPU: \d+ PID: \d+ at"
    assert any("Call Trace:" in li for li in splats[0].context)


def test_kmemleak_summary_alone_is_not_a_splat(detector: Detector) -> None:
    # The summary names no object; leaks are judged object by object from
    # kmemleak's report (harness/kmemleak.py, vmtests/test_zz_kmemleak.py).
    splats = detector.scan(lines("kmemleak.log"))
    assert len(splats) == 1
    assert not any("new suspected memory leaks" in s.line for s in splats)


def test_clean_boot_has_no_splat(detector: Detector) -> None:
    log = lines("clean-boot.log")
    assert len(log) >= 30
    assert any("virtme-ng-init:" in li for li in log)
    assert detector.scan(log) == []


def test_context_is_limited(detector: Detector) -> None:
    splats = detector.scan(lines("warning.log"), context=3)
    assert len(splats[0].context) == 3
    assert "WARNING: CPU: 1 PID: 321" in splats[0].context[1]


def test_allowlist_suppresses_a_line(detector: Detector) -> None:
    log = lines("soft-lockup.log") + lines("kasan.log")
    assert len(detector.scan(log)) == 2
    allowing = Detector(detector.deny, [*detector.allow, re.compile(r"soft lockup - CPU#0")])
    splats = allowing.scan(log)
    assert [strip_stamp(s.line) for s in splats] == [BAD["kasan.log"][0]]


def test_default_allowlist_does_not_excuse_kmemleak() -> None:
    # 6.12 prints the summary only when a scan found new leaks: allowing it
    # would hide exactly the reports it announces.
    line = "[  5.0] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"
    det = Detector([re.compile("suspected memory leaks")], Detector.default().allow)
    assert [s.line for s in det.scan([line])] == [line]


def test_load_patterns_skips_comments_and_blanks(tmp_path: Path) -> None:
    f = tmp_path / "deny.txt"
    f.write_text("# comment\n\n   \nfoo\\d+\n  # indented comment\nBUG: \nbar$\n")
    pats = load_patterns(f)
    # Whitespace inside a pattern is significant: "BUG: " keeps its space.
    assert [p.pattern for p in pats] == [r"foo\d+", "BUG: ", "bar$"]
    assert not pats[1].search("BUG:")


def test_default_denylist_keeps_trailing_space(detector: Detector) -> None:
    assert r"\bBUG: " in [p.pattern for p in detector.deny]


def test_report_format(detector: Detector) -> None:
    assert report([]) == ""
    splats = detector.scan(lines("kasan.log") + lines("rcu-stall.log"))
    text = report(splats)
    head, *rest = text.splitlines()
    assert head.startswith("kernel splat: ")
    assert "BUG: KASAN: slab-use-after-free" in head
    assert "[matched '\\\\bBUG: ']" in head
    # The first splat's context follows in full ...
    assert any("Read of size 8 at addr ffff888003a1b010" in li for li in rest)
    assert any("__x64_sys_timer_delete" in li for li in rest)
    # ... then one line per further splat.
    assert "further:" in rest
    further = rest[rest.index("further:") + 1 :]
    assert len(further) == len(splats) - 1
    assert "rcu_preempt self-detected stall" in further[0]


def test_report_single_splat_has_no_further_section() -> None:
    s = Splat("BUG: x", r"\bBUG: ", ["BUG: x", "next line"])
    assert report([s]) == "kernel splat: BUG: x  [matched '\\\\bBUG: ']\nBUG: x\nnext line"


@pytest.mark.parametrize(
    "line",
    [
        "[   12.5] WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
        "WARNING: lock held when returning to user space!",
        "[    3.1] WARNING: held lock freed!",
        "WARNING: possible irq lock inversion dependency detected",
    ],
)
def test_every_lockdep_report_is_a_splat(detector: Detector, line: str) -> None:
    """lockdep's reports all open with "WARNING: "; the old list named five."""
    assert [s.pattern for s in detector.scan([line])] == ["(^|\\] )WARNING: "]
