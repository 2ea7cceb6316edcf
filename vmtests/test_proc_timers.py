"""/proc/<pid>/timers: the exact 4-line record CRIU's dump parses.

The order of records is not pinned (6.12 lists newest first, the series
lists by ID); CRIU sorts by ID before restoring.
"""

from __future__ import annotations

import pytest

from conftest import (
    CLOCK_BOOTTIME,
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    SIGALRM,
    SIGRTMIN,
    SIGUSR1,
    create,
    ok,
)
from harness.helper import Helper, Op
from harness.procfs import parse


def records(text: str) -> dict[int, list[str]]:
    """Raw lines per timer ID (parse() validates the shape first)."""
    timers = parse(text)
    lines = text.splitlines()
    return {t.id: lines[4 * i : 4 * i + 4] for i, t in enumerate(timers)}


def pid_of(helper_results: list[Op]) -> int:
    return int(next(r["pid"] for r in helper_results if r["op"] == "getpid"))


@pytest.mark.needs("proc_timers")
@pytest.mark.parametrize(
    ("kw", "notify_line", "signal_line", "clock"),
    [
        (
            {"notify": "signal", "signo": SIGUSR1, "value": 0x1234, "clock": "monotonic"},
            "signal/pid.{pid}",
            f"{SIGUSR1}/0000000000001234",
            CLOCK_MONOTONIC,
        ),
        (
            {"notify": "none", "signo": SIGALRM, "value": 7, "clock": "realtime"},
            "none/pid.{pid}",
            f"{SIGALRM}/0000000000000007",
            CLOCK_REALTIME,
        ),
        (
            {"notify": "thread", "signo": SIGRTMIN, "value": 0x7FFFFFFF, "clock": "boottime"},
            "thread/pid.{pid}",
            f"{SIGRTMIN}/000000007fffffff",
            CLOCK_BOOTTIME,
        ),
        (
            {
                "notify": "thread_id",
                "tid": "self",
                "signo": SIGRTMIN + 1,
                "value": 0xDEAD,
                "clock": "monotonic",
            },
            "signal/tid.{pid}",
            f"{SIGRTMIN + 1}/000000000000dead",
            CLOCK_MONOTONIC,
        ),
    ],
    ids=["signal", "none", "thread", "thread_id"],
)
def test_record_per_notify_kind(
    helper: Helper, kw: dict[str, object], notify_line: str, signal_line: str, clock: int
) -> None:
    res = helper.run([{"op": "getpid"}, create(), create(**kw), {"op": "proc_timers"}])
    ok(res[2])
    pid = pid_of(res)
    recs = records(res[3]["text"])
    assert sorted(recs) == [0, 1]
    assert recs[1] == [
        "ID: 1",
        f"signal: {signal_line}",
        f"notify: {notify_line.format(pid=pid)}",
        f"ClockID: {clock}",
    ]


@pytest.mark.needs("proc_timers")
def test_record_thread_id_of_another_thread(helper: Helper) -> None:
    res = helper.one(
        {
            "op": "threads",
            "scripts": [
                [
                    {"op": "getpid"},
                    create(notify="thread_id", tid="self", signo=SIGUSR1),
                    {"op": "proc_timers"},
                ]
            ],
        }
    )
    script = res["results"][0]
    tid = script[0]["tid"]
    assert tid != script[0]["pid"]
    recs = records(script[2]["text"])
    assert recs[0][2] == f"notify: signal/tid.{tid}"


@pytest.mark.needs("proc_timers")
def test_record_null_sigevent(helper: Helper) -> None:
    """A NULL sigevent means SIGALRM to the process with sival_int = ID."""
    res = helper.run(
        [
            {"op": "getpid"},
            create(),
            create(),
            create(notify="null", clock="realtime"),
            {"op": "proc_timers"},
        ]
    )
    pid = pid_of(res)
    assert res[3]["id"] == 2
    assert records(res[4]["text"])[2] == [
        "ID: 2",
        f"signal: {SIGALRM}/0000000000000002",
        f"notify: signal/pid.{pid}",
        "ClockID: 0",
    ]


@pytest.mark.needs("proc_timers")
def test_record_cpu_clocks(helper: Helper) -> None:
    res = helper.run(
        [
            {"op": "getpid"},
            create(clock="process_cputime"),
            create(clock="thread_cputime"),
            {"op": "proc_timers"},
        ]
    )
    pid = pid_of(res)
    timers = {t.id: t for t in parse(res[3]["text"])}
    # The kernel stores the CPU clock IDs in their internal form:
    # CLOCK_PROCESS_CPUTIME_ID = MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED) = -6,
    # CLOCK_THREAD_CPUTIME_ID = MAKE_THREAD_CPUCLOCK(0, CPUCLOCK_SCHED) = -2.
    assert timers[0].clock == -6
    assert timers[1].clock == -2
    res = helper.run(
        [{"op": "getpid"}, create(clock={"cpu_pid": 0, "kind": "sched"}), {"op": "proc_timers"}]
    )
    ok(res[1])
    # MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED) = (~0 << 3) | 2 = -6
    assert parse(res[2]["text"])[0].clock == -6
    assert pid > 0


@pytest.mark.needs("proc_timers")
def test_listing_matches_live_timers(helper: Helper) -> None:
    """Every live timer is listed exactly once, deleted ones not at all."""
    ops: list[Op] = [create() for _ in range(50)]
    ops += [{"op": "delete", "id": i} for i in range(0, 50, 3)]
    ops.append({"op": "proc_timers"})
    res = helper.run(ops)
    listed = [t.id for t in parse(res[-1]["text"])]
    assert sorted(listed) == [i for i in range(50) if i % 3]
    assert len(listed) == len(set(listed))


@pytest.mark.needs("proc_timers")
def test_other_process_view(helper: Helper) -> None:
    """Another process reads a live process's file, as CRIU's dump does,
    and finds exactly its timers; once the process is gone, so is the file."""
    ops: list[Op] = [
        {"op": "getpid"},
        create(),
        create(signo=SIGUSR1, value=77),
        create(notify="none"),
        {"op": "delete", "id": 1},
        {"op": "hold"},
    ]
    res, pid = helper.run_held(ops, expect=5)
    try:
        assert res[0]["pid"] == pid
        seen = ok(helper.one({"op": "proc_timers", "pid": pid}))
        timers = {t.id: t for t in parse(seen["text"])}
        assert sorted(timers) == [0, 2]
        assert (timers[0].notify, timers[0].signo) == ("signal", SIGALRM)
        assert timers[0].target_id == pid
        assert timers[2].notify == "none"
    finally:
        helper.release(pid)
    gone = helper.one({"op": "proc_timers", "pid": pid})
    assert gone["ret"] == -1 and gone["errno"] == "ENOENT"
