"""Host tests for the TAP parser used on kselftest output."""

from __future__ import annotations

from harness.ktap import TapResult, parse

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
    assert run.bail_out is None
    assert run.plan_skip is None


def test_diagnostics_only() -> None:
    run = parse("# nothing here\nrandom text\n")
    assert run.plan is None
    assert run.results == []
    assert run.bail_out is None


def test_failure_with_a_diagnostic_is_a_result() -> None:
    # ksft_test_result_code() prints "#  why" after a failing test's name
    # when it has a reason; such a line is a failure, not noise.
    run = parse("1..2\nok 1 global.exact_ids\nnot ok 2 global.busy_id #  timer 7 missing\n")
    assert run.results == [
        TapResult(1, "global.exact_ids", "pass"),
        TapResult(2, "global.busy_id", "fail", "timer 7 missing"),
    ]


def test_xpass_is_its_own_status() -> None:
    run = parse("1..1\nok 1 global.flaky # XPASS unknown\n")
    assert run.results == [TapResult(1, "global.flaky", "xpass", "unknown")]


def test_nameless_skip_from_ksft_test_result_skip() -> None:
    # ksft_test_result_skip("why\n") prints no name: "ok 6 # SKIP why".
    run = parse("1..1\nok 1 # SKIP check signal distribution (old kernel)\n")
    assert run.results == [TapResult(1, "#1", "skip", "check signal distribution (old kernel)")]


def test_bail_out_is_recorded() -> None:
    # ksft_exit_fail_msg(): "Bail out! ", the message, then the totals.
    text = (
        "TAP version 13\n1..18\nok 1 ITIMER_VIRTUAL\n"
        "Bail out! check_itimer timer_create() failed: Invalid argument\n"
        "# Planned tests != run tests (18 != 1)\n"
        "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n"
    )
    run = parse(text)
    assert run.bail_out == "check_itimer timer_create() failed: Invalid argument"
    assert run.plan == 18
    assert [r.name for r in run.results] == ["ITIMER_VIRTUAL"]


def test_skipped_plan_carries_its_reason() -> None:
    # ksft_exit_skip() before any plan: "1..0 # SKIP why".
    run = parse("TAP version 13\n1..0 # SKIP needs root\n")
    assert run.plan == 0
    assert run.plan_skip == "needs root"
    assert run.results == []


def test_second_plan_is_kept_apart() -> None:
    run = parse("1..2\nok 1 a\nok 2 b\n1..3\n")
    assert run.plan == 2
    assert run.extra_plans == [3]


def test_nested_subtests_do_not_count() -> None:
    # KTAP indents a subtest's own plan and results under its parent.
    text = "1..1\n    1..2\n    ok 1 sub a\n    not ok 2 sub b\nnot ok 1 parent\n"
    run = parse(text)
    assert run.plan == 1
    assert run.results == [TapResult(1, "parent", "fail")]


def test_result_glued_to_unterminated_output_is_a_result() -> None:
    # posix_timers' check_diff() prints "Diff too high: %lld.." without a
    # newline right before ksft_test_result() prints the failure.
    run = parse("1..3\nDiff too high: 3357354..not ok 1 ITIMER_VIRTUAL\nok 2 x\n3 ok 7 y\n")
    assert run.results == [TapResult(1, "ITIMER_VIRTUAL", "fail"), TapResult(2, "x", "pass")]
    assert run.glued == ["Diff too high: 3357354.."]
