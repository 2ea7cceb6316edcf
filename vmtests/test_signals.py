"""Delivered timer signals: si_timerid, si_value, si_code, overruns."""

from __future__ import annotations

from conftest import SI_TIMER, SIGALRM, SIGRTMIN, create, ok
from harness.helper import Helper

MS = 1_000_000


def test_signal_carries_id_and_value(helper: Helper) -> None:
    res = helper.run(
        [
            create(),
            create(),
            create(signo=SIGRTMIN, value=0xABC),
            {"op": "settime", "id": 2, "value_ns": 5 * MS},
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
        ]
    )
    sig = ok(res[4])
    assert sig["signo"] == SIGRTMIN
    assert sig["code"] == SI_TIMER
    assert sig["timerid"] == 2
    assert sig["value"] == 0xABC


def test_null_sigevent_gives_sigalrm_with_id(helper: Helper) -> None:
    res = helper.run(
        [
            create(notify="null"),
            create(notify="null"),
            {"op": "settime", "id": 1, "value_ns": 5 * MS},
            {"op": "wait_signal", "signo": SIGALRM, "timeout_ms": 5000},
        ]
    )
    sig = ok(res[3])
    assert (sig["signo"], sig["code"], sig["timerid"], sig["value"]) == (SIGALRM, SI_TIMER, 1, 1)


def test_thread_id_signal_reaches_thread(helper: Helper) -> None:
    res = helper.one(
        {
            "op": "threads",
            "scripts": [
                [
                    create(notify="thread_id", tid="self", signo=SIGRTMIN + 2, value=5),
                    {"op": "settime", "id": 0, "value_ns": 5 * MS},
                    {"op": "wait_signal", "signo": SIGRTMIN + 2, "timeout_ms": 5000},
                ]
            ],
        }
    )
    sig = ok(res["results"][0][2])
    assert (sig["timerid"], sig["value"]) == (0, 5)


def test_gettime_and_disarm(helper: Helper) -> None:
    res = helper.run(
        [
            create(),
            {"op": "settime", "id": 0, "value_ns": 10_000 * MS, "interval_ns": 500 * MS},
            {"op": "gettime", "id": 0},
            {"op": "settime", "id": 0, "value_ns": 0},
            {"op": "gettime", "id": 0},
        ]
    )
    armed = ok(res[2])
    assert 0 < armed["value_ns"] <= 10_000 * MS
    assert armed["interval_ns"] == 500 * MS
    assert ok(res[3])["old_interval_ns"] == 500 * MS
    assert (res[4]["value_ns"], res[4]["interval_ns"]) == (0, 0)


def test_periodic_overrun(helper: Helper) -> None:
    res = helper.run(
        [
            create(signo=SIGRTMIN),
            {"op": "settime", "id": 0, "value_ns": 1 * MS, "interval_ns": 1 * MS},
            {"op": "sleep", "ms": 100},
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
            {"op": "getoverrun", "id": 0},
            {"op": "delete", "id": 0},
        ]
    )
    sig = ok(res[3])
    assert sig["timerid"] == 0
    assert sig["overrun"] > 0, "100 ms of a 1 ms timer without dequeuing must overrun"
    ok(res[4])
    ok(res[5])


def test_cpu_clocks_fire(helper: Helper) -> None:
    for clock in ("process_cputime", "thread_cputime", {"cpu_pid": 0, "kind": "prof"}):
        res = helper.run(
            [
                create(clock=clock, signo=SIGRTMIN, value=9),
                {"op": "settime", "id": 0, "value_ns": 20 * MS},
                {"op": "spin", "ms": 150},
                {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
            ]
        )
        sig = ok(res[3])
        assert (sig["timerid"], sig["value"], sig["code"]) == (0, 9, SI_TIMER), clock
