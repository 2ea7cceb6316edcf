"""Legacy ID allocation: the sequence CRIU and applications depend on.

6.12 hands out IDs from a per-process cursor: the lowest free ID at or
above the cursor, the cursor moving past it.  These tests pin that
behaviour so the series cannot change it.
"""

from __future__ import annotations

from conftest import SIGALRM, create, err, ids, ok
from harness.helper import Helper
from harness.procfs import parse


def test_fresh_process_counts_from_zero(helper: Helper) -> None:
    res = helper.run([create() for _ in range(6)])
    assert ids(res) == [0, 1, 2, 3, 4, 5]


def test_deleted_id_not_reused_before_wrap(helper: Helper) -> None:
    res = helper.run(
        [
            create(),
            create(),
            create(),
            {"op": "delete", "id": 1},
            create(),
            {"op": "delete", "id": 0},
            create(),
            {"op": "delete", "id": 3},
            create(),
        ]
    )
    for r in res:
        ok(r)
    assert ids(res) == [0, 1, 2, 3, 4, 5]


def test_threads_share_one_id_space(helper: Helper) -> None:
    per_thread = 40
    res = helper.one({"op": "threads", "scripts": [[create()] * per_thread] * 2})
    ok(res)
    got = [r["id"] for script in res["results"] for r in script]
    assert len(got) == 2 * per_thread
    assert sorted(got) == list(range(2 * per_thread)), "threads must share one ID space"
    # Each thread sees increasing IDs: the cursor only moves forward.
    for script in res["results"]:
        seq = [r["id"] for r in script]
        assert seq == sorted(seq)


def test_fork_child_starts_at_zero_and_keeps_parent_cursor(helper: Helper) -> None:
    res = helper.run(
        [
            create(),
            create(),
            create(),
            {"op": "fork", "script": [{"op": "proc_timers"}, create(), create()]},
            create(),
        ]
    )
    child = res[3]
    ok(child)
    assert child["status"] == 0
    assert parse(child["results"][0]["text"]) == [], "a child inherits no timers"
    assert ids(child["results"]) == [0, 1]
    assert res[4]["id"] == 3, "the child's creates must not move the parent's cursor"


def test_exec_destroys_timers_and_keeps_cursor(helper: Helper) -> None:
    # exec runs the sub-script in the new image, one result line per op.
    res = helper.run(
        [
            create(),
            create(),
            create(),
            {"op": "exec", "script": [{"op": "proc_timers"}, create(), create()]},
        ],
        expect=7,
    )
    ok(res[3])
    after = res[4:]
    assert parse(after[0]["text"]) == [], "exec must destroy all timers"
    # Pinned 6.12 behaviour: signal_struct survives exec and so does the
    # cursor; the new image continues at 3.
    assert ids(after) == [3, 4]


def test_failed_creates_and_the_cursor(helper: Helper) -> None:
    """Which failures consume an ID in 6.12 (pinned: the series keeps this)."""
    res = helper.run(
        [
            create(clock=12345),  # bad clock: before allocation
            create(bad_sev_ptr=True),  # EFAULT copying the sigevent
            create(),  # -> 0
            create(signo=0),  # EINVAL after allocation
            create(),  # -> 2: ID 1 was consumed
            create(bad_id_ptr=True),  # EFAULT copying the ID out
            create(),  # -> 4: ID 3 was consumed
            create(notify="thread_id", tid=1),  # foreign tid: after allocation
            create(),  # -> 6
            create(clock={"cpu_pid": 1}),  # CPU clock of another process
            create(),
        ]
    )
    assert err(res[0]) == "EINVAL"
    assert err(res[1]) == "EFAULT"
    assert res[2]["id"] == 0
    assert err(res[3]) == "EINVAL"
    assert res[4]["id"] == 2
    assert err(res[5]) == "EFAULT"
    assert res[6]["id"] == 4
    assert err(res[7]) == "EINVAL"
    assert res[8]["id"] == 6
    # A CPU clock of another process (init) is valid: pid_for_clock() takes
    # any PID with a thread group, in 6.12 as upstream. ID 7, then 8.
    assert res[9]["id"] == 7
    assert res[10]["id"] == 8


def test_sigpending_limit_does_not_consume_ids(helper: Helper) -> None:
    """EAGAIN from RLIMIT_SIGPENDING happens before an ID is allocated.

    The limit counts all pending/preallocated signals of the user, so the
    number of timers that fit is not exactly the limit; count them.
    """
    res = helper.run(
        [
            {"op": "rlimit", "resource": "sigpending", "value": 4},
            *[create() for _ in range(6)],
            {"op": "delete", "id": 0},
            create(signo=SIGALRM),
        ]
    )
    ok(res[0])
    made = ids(res[1:7])
    assert made == list(range(len(made))) and made, f"creates under the limit: {res[1:7]}"
    failed = [r for r in res[1:7] if r["ret"] != 0]
    assert failed and all(err(r) == "EAGAIN" for r in failed)
    ok(res[7])
    assert res[8]["id"] == len(made), "the failed creates must not have consumed IDs"
