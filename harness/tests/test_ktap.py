"""Host tests for the TAP parser used on kselftest output."""

from __future__ import annotations

from harness.ktap import parse

SAMPLE = """TAP version 13
1..4
# Starting 4 tests from 1 test cases.
#  RUN           global.exact_ids ...
#            OK  global.exact_ids
ok 1 global.exact_ids
not ok 2 global.busy_id
ok 3 global.race_same_id # SKIP kernel lacks SIGEV_TIMER_ID
ok 4 - Check itimer virtual # TODO flaky
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
"""


def test_parse_statuses() -> None:
    run = parse(SAMPLE)
    assert run.plan == 4
    assert [(r.number, r.name, r.status) for r in run.results] == [
        (1, "global.exact_ids", "pass"),
        (2, "global.busy_id", "fail"),
        (3, "global.race_same_id", "skip"),
        (4, "Check itimer virtual", "xfail"),
    ]
    assert run.results[2].reason == "kernel lacks SIGEV_TIMER_ID"
    assert run.by_status("pass") == {"global.exact_ids"}


def test_diagnostics_only() -> None:
    run = parse("# nothing here\nrandom text\n")
    assert run.plan is None
    assert run.results == []
