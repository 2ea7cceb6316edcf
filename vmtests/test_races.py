"""Races: concurrent creates of one ID, storms against readers, exit/fork mid-create.

Bounded in rounds and time.  Correctness is asserted on outcomes; kernel
complaints (lockdep, KASAN, list corruption) fail the test through the
plugin's dmesg check.
"""

from __future__ import annotations

import os
import random

import pytest

from conftest import INT_MAX, PR_TIMER_CREATE_RESTORE_IDS, create, ok
from harness.helper import Helper, Op
from harness.procfs import parse

FLAG = {"flags": ["timer_id"]}


@pytest.mark.needs("sigev_timer_id", "proc_timers")
def test_same_wanted_id_many_rounds(helper: Helper) -> None:
    """N threads want the same ID: exactly one wins, the rest get EBUSY."""
    rounds, threads = 1000, 3
    ops: list[Op] = []
    for r in range(rounds):
        want = (r * 7919) % INT_MAX
        ops.append({"op": "threads", "scripts": [[create(id=want, **FLAG)]] * threads})
        # Inside threads the helper cannot confirm a create: the winner's
        # timer must answer under the wanted ID, and once it is deleted
        # nothing may be left (a second slot, a leaked loser).
        ops.append({"op": "getoverrun", "id": want})
        ops.append({"op": "delete", "id": want})
        ops.append({"op": "proc_timers"})
    res = helper.run(ops, timeout=900)
    for r in range(rounds):
        outcomes = [script[0] for script in res[4 * r]["results"]]
        winners = [o for o in outcomes if o["ret"] == 0]
        assert len(winners) == 1, f"round {r}: {outcomes}"
        assert winners[0]["id"] == (r * 7919) % INT_MAX, f"round {r}: {outcomes}"
        assert all(o.get("errno") == "EBUSY" for o in outcomes if o["ret"] != 0), outcomes
        ok(res[4 * r + 1])
        ok(res[4 * r + 2])
        assert parse(ok(res[4 * r + 3])["text"]) == [], f"round {r}: timers left"


def test_create_delete_storm_with_readers(helper: Helper, features: dict[str, bool]) -> None:
    """Creates/deletes in two threads while two others read /proc and poke random IDs.

    The helper fails a listing that shows an ID twice, except on kernels
    that list newest first (6.12): there a read split over several read()
    calls repeats records while others create, which is how 6.12 behaves,
    not a corrupted array (test_proc_listing_consistent_under_churn pins
    the series' stronger promise).
    """
    seed = int(os.environ.get("PTIMERS_SEED", "7"))
    rnd = random.Random(seed)
    writers = [
        [
            op
            for _ in range(300)
            for op in ({"op": "create"}, {"op": "delete", "id": rnd.randrange(600)})
        ]
        for _ in range(2)
    ]
    repeats_ok = not features["proc_timers_by_id"]
    readers: list[list[Op]] = [[{"op": "proc_timers", "repeats_ok": repeats_ok} for _ in range(40)]]
    readers.append(
        [
            rnd.choice(
                [
                    {"op": "gettime", "id": rnd.randrange(600)},
                    {"op": "getoverrun", "id": rnd.randrange(600)},
                    {"op": "settime", "id": rnd.randrange(600), "value_ns": 10**9},
                ]
            )
            for _ in range(1500)
        ]
    )
    res = helper.one({"op": "threads", "scripts": writers + readers}, timeout=900)
    for script in res["results"]:
        for r in script:
            assert r["ret"] >= 0 or r["errno"] == "EINVAL", f"seed {seed}: {r}"
            if r["op"] == "proc_timers" and r["ret"] == 0:
                parse(r["text"])  # well-formed records even under churn


@pytest.mark.needs("proc_timers_by_id")
def test_no_id_lost_after_concurrent_deletes(helper: Helper, features: dict[str, bool]) -> None:
    """Two threads creating and deleting in 0..99: afterwards every ID that
    /proc does not list must be free for an exact create, and every listed
    one taken.  A delete that released or reserved a slot outside one locked
    section could leave an entry no timer owns, whose ID is then lost."""
    rnd = random.Random(11)
    writers = [
        [
            op
            for _ in range(300)
            for op in ({"op": "create"}, {"op": "delete", "id": rnd.randrange(100)})
        ]
        for _ in range(2)
    ]
    if features["sigev_timer_id"]:
        exact = [{"op": "create", "id": i, **FLAG} for i in range(100)]
    elif features["prctl_restore_ids"]:
        mode = {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg3": 0}
        exact = [{**mode, "arg2": 1}, *({"op": "create", "id": i} for i in range(100))]
        exact.append({**mode, "arg2": 0})
    else:
        pytest.skip("kernel under test has neither SIGEV_TIMER_ID nor the prctl")
    res = helper.run(
        [{"op": "threads", "scripts": writers}, {"op": "proc_timers"}, *exact], timeout=600
    )
    listed = {t.id for t in parse(ok(res[1])["text"])}
    creates = [r for r in res[2:] if r.get("op") == "create"]
    taken = {i for i, r in enumerate(creates) if r.get("ret") != 0}
    for i in taken:
        assert creates[i].get("errno") == "EBUSY", f"ID {i}: {creates[i]}"
    assert taken == {i for i in listed if i < 100}, "IDs neither listed nor free"


@pytest.mark.needs("proc_timers", "proc_timers_by_id")
def test_proc_listing_consistent_under_churn(helper: Helper) -> None:
    """A read split over many read() calls lists each stable timer exactly once.

    6.12 lists newest first with the list position as the seq_file cursor,
    so creates during a read repeat entries (seen: 343 records for 298
    timers).  The series walks the array by ID, the cursor being the next
    ID, which cannot repeat or skip a timer that lives throughout.
    """
    stable = [{"op": "create"} for _ in range(400)]  # IDs 0..399, never deleted
    churn = [op for i in range(600) for op in ({"op": "create"}, {"op": "delete", "id": 400 + i})]
    readers = [[{"op": "proc_timers"} for _ in range(30)]]
    res = helper.run([*stable, {"op": "threads", "scripts": [churn, *readers]}], timeout=900)
    for r in res[-1]["results"][1]:
        listed = [t.id for t in parse(r["text"])]
        assert len(listed) == len(set(listed)), "a timer was listed twice"
        assert set(range(400)) <= set(listed), "a timer alive throughout was skipped"


def test_exit_while_threads_create(helper: Helper) -> None:
    """A process exits (exit_itimers) while another thread is creating timers."""
    for delay in (0, 5, 20):
        res = helper.one(
            {
                "op": "fork",
                "script": [
                    {
                        "op": "threads",
                        "scripts": [
                            [{"op": "create_many", "count": 20000}],
                            [{"op": "sleep", "ms": delay}, {"op": "exit", "status": 0}],
                        ],
                    }
                ],
            },
            timeout=600,
        )
        assert res["ret"] == 0 and res["status"] == 0, res


def test_exec_after_threads_created_many(helper: Helper) -> None:
    """exec tears down thousands of timers that other threads created."""
    res = helper.run(
        [
            {"op": "rlimit", "resource": "sigpending", "value": 1 << 20},
            {"op": "threads", "scripts": [[{"op": "create_many", "count": 3000}]] * 2},
            {"op": "exec", "script": [{"op": "proc_timers"}, create()]},
        ],
        expect=5,
        timeout=600,
    )
    assert parse(res[3]["text"]) == []
    assert res[4]["id"] == 6000


def test_fork_while_creating(helper: Helper) -> None:
    # RLIMIT_SIGPENDING defaults to a share of RAM: raise it so the limit
    # does not cut the creation short on small (debug) guests.
    res = helper.run(
        [
            {"op": "rlimit", "resource": "sigpending", "value": 1 << 20},
            {
                "op": "threads",
                "scripts": [
                    [{"op": "create_many", "count": 5000}],
                    [{"op": "fork", "script": [create(), create()]} for _ in range(30)],
                ],
            },
        ],
        timeout=600,
    )[1]
    creator, forker = res["results"]
    assert creator[0]["created"] == 5000, creator
    for child in forker:
        assert child["status"] == 0
        assert [r["id"] for r in child["results"]] == [0, 1], "a child starts at 0"


@pytest.mark.needs("sigev_timer_id")
def test_lookups_never_see_a_timer_being_created_or_deleted(helper: Helper) -> None:
    """One thread creates and deletes the same exact ID over and over, another
    arms and reads that ID as fast as it can.

    A timer sits in the array before it is valid (it_signal is set last)
    and for a moment after timer_delete() invalidated it.  A lookup that
    accepted it there (mutant 33) arms a timer whose hrtimer the creation
    then re-initialises, or one that is being freed: the kernel's timer
    queue is corrupted or freed memory is armed, which crashes or splats
    the guest.  The exact ID makes every lookup aim at the window.
    """
    want = 777
    cycles = 3000
    churn = [
        op
        for _ in range(cycles)
        for op in (create(id=want, notify="none", **FLAG), {"op": "delete", "id": want})
    ]
    poke = [
        op
        for _ in range(cycles)
        for op in (
            {"op": "settime", "id": want, "value_ns": 50_000, "interval_ns": 50_000},
            {"op": "gettime", "id": want},
        )
    ]
    res = helper.one({"op": "threads", "scripts": [churn, poke]}, timeout=900)
    created = [r for r in res["results"][0] if r["op"] == "create"]
    assert all(ok(r)["id"] == want for r in created)
    assert all(r["ret"] == 0 for r in res["results"][0] if r["op"] == "delete")
    hits = sum(r["ret"] == 0 for r in res["results"][1] if r["op"] == "settime")
    # The threads overlapped: the poking one met the timer alive
    assert hits > 0, f"settime never found timer {want} in {cycles} tries"
