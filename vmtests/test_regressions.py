"""Regression tests for bugs found by reviewing the series, one test per bug.

Each of these passed the rest of the suite unnoticed: they live in the
interleaving of operations, not in one feature.  Each test names the
sequence that broke and checks what 6.12's rules require; the memory-safety
ones also rely on the plugin's splat check (KASAN and lockdep in the debug
flavor), which fails the test that made the kernel complain.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import pytest

from conftest import (
    FAILSLAB,
    PR_TIMER_CREATE_RESTORE_IDS,
    SIGRTMIN,
    create,
    err,
    failslab_injected,
    ok,
)
from harness.guest import Guest
from harness.helper import Helper, Op
from harness.procfs import parse

FLAG = {"flags": ["timer_id"]}


def prctl(arg2: int) -> Op:
    return {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": arg2}


def exact(mode: str, want: int) -> list[Op]:
    """One create of ID ``want`` through the flag or the prctl mode."""
    if mode == "flag":
        return [create(notify="none", id=want, **FLAG)]
    return [prctl(1), create(notify="none", id=want), prctl(0)]


def listed(result: Op) -> list[int]:
    """The IDs /proc/<pid>/timers lists, in file order."""
    ok(result)
    return [t.id for t in parse(result["text"])]


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("flag", marks=pytest.mark.needs("sigev_timer_id")),
        pytest.param("prctl", marks=pytest.mark.needs("prctl_restore_ids")),
    ],
)
def test_exact_creates_then_delete_keep_one_slot_per_timer(helper: Helper, mode: str) -> None:
    """Exact 1, exact 0, delete 1, plain create: 1, stored once.

    The first version of the series compared __xa_cmpxchg()'s result with
    XA_ZERO_ENTRY, which xas_result() never returns: the plain create stored
    the timer in the reserved slot of ID 1 *and* at ID 2 and returned 2.
    ID 1 then answered timer_gettime(), /proc listed ID 2 twice, and after
    deleting 2 slot 1 pointed at freed memory (KASAN: use-after-free; the
    process' exit freed the timer twice and panicked the debug kernel).
    """
    ops = [
        *exact(mode, 1),
        *exact(mode, 0),
        {"op": "delete", "id": 1},
        create(notify="none"),  # cursor is 1 after the exact create of 0
        {"op": "proc_timers"},
        {"op": "gettime", "id": 1},
        {"op": "gettime", "id": 2},
        {"op": "delete", "id": 1},
        {"op": "gettime", "id": 1},
        {"op": "proc_timers"},
        create(notify="none"),  # cursor moved on to 2
        {"op": "delete", "id": 2},
        {"op": "proc_timers"},
    ]
    res = helper.run(ops)
    n = len(exact(mode, 0)) * 2
    for r in res[:n]:
        ok(r)
    made = [r["id"] for r in res[:n] if r["op"] == "create"]
    assert made == [1, 0], f"the exact creates: {res[:n]}"
    ok(res[n])
    assert res[n + 1]["id"] == 1, f"6.12's rule: lowest free ID at the cursor (1): {res[n + 1]}"
    # Order is each kernel's own (6.12 and upstream: newest first; the series: by ID).
    assert sorted(listed(res[n + 2])) == [0, 1], "each live timer listed exactly once"
    ok(res[n + 3])
    assert err(res[n + 4]) == "EINVAL", "ID 2 was never created"
    ok(res[n + 5])
    assert err(res[n + 6]) == "EINVAL", "a deleted timer must not answer"
    assert listed(res[n + 7]) == [0]
    assert res[n + 8]["id"] == 2
    ok(res[n + 9])
    assert listed(res[n + 10]) == [0]


@pytest.mark.needs("sigev_timer_id")
def test_exact_create_at_deleted_id_then_plain_creates(helper: Helper) -> None:
    """Re-create a deleted ID exactly, free the slot at the cursor, create plainly.

    Walks the other branches around a freshly deleted slot: the exact
    create takes the slot, its delete frees it again; then an exact create
    below the cursor moves the cursor back onto a live timer's slot, that
    timer is deleted and a plain create must take exactly that slot (the
    first version stored it at 2 and 4).
    """
    res = helper.run(
        [
            create(notify="none"),  # 0
            create(notify="none"),  # 1
            {"op": "delete", "id": 1},
            create(notify="none", id=1, **FLAG),
            {"op": "delete", "id": 1},
            create(notify="none"),  # cursor 2
            create(notify="none"),  # 3
            create(notify="none", id=1, **FLAG),  # cursor back at 2
            {"op": "delete", "id": 2},  # the slot at the cursor is freed
            create(notify="none"),  # 2 again, stored once
            {"op": "proc_timers"},
            {"op": "gettime", "id": 4},
            {"op": "delete", "id": 0},
            {"op": "delete", "id": 1},
            {"op": "delete", "id": 2},
            {"op": "delete", "id": 3},
            {"op": "proc_timers"},
        ]
    )
    for i in (2, 4, 8):
        ok(res[i])
    assert [res[i]["id"] for i in (0, 1, 3, 5, 6, 7, 9)] == [0, 1, 1, 2, 3, 1, 2]
    assert listed(res[10]) == [0, 1, 2, 3], "each timer listed once"
    assert err(res[11]) == "EINVAL", "no timer at 4"
    for r in res[12:16]:
        ok(r)
    assert listed(res[16]) == []


# ---------------------------------------------------------------------------
# Allocation failure must not hand out a lower ID


@pytest.mark.needs("failslab")
def test_node_allocation_failure_hands_out_no_lower_id(
    helper: Helper, radix_failslab: Guest, features: dict[str, bool]
) -> None:
    """IDs 0..63 fill the first node; 5 and 6 are freed; the cursor is at 64.

    ID 64 needs two new nodes.  If they cannot be allocated, 6.12's
    __xa_alloc_cyclic() retries from 0 on any error and returns ID 5 (the
    cursor moving back to 6), which a CRIU restore loop reads as an ID
    sequence gone wrong.  The series must fail with EAGAIN, consume nothing,
    and hand out 64 once memory is back.  Unpatched 6.12 allocates no node
    and returns 64 right away.
    """
    before = failslab_injected(radix_failslab)
    res = helper.run(
        [
            {"op": "create_many", "count": 64, "notify": "none"},
            {"op": "delete", "id": 5},
            {"op": "delete", "id": 6},
            {"op": "mlockall"},
            {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "1"},
            create(notify="none"),
            create(notify="none"),
            {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "0"},
            create(notify="none"),
            create(notify="none"),
        ]
    )
    assert res[0]["created"] == 64 and res[0]["last"] == 63
    hit = failslab_injected(radix_failslab) > before
    if features["proc_timers_by_id"]:  # the series' xarray
        assert hit, "the create at ID 64 must have needed an xarray node"
        assert err(res[5]) == "EAGAIN", f"lack of a node is EAGAIN, not another ID: {res[5]}"
        assert err(res[6]) == "EAGAIN", f"and stays so: {res[6]}"
        assert [res[8]["id"], res[9]["id"]] == [64, 65], "no ID consumed, the cursor kept"
    else:  # 6.12's hash allocates nothing per ID
        assert not hit
        assert [res[i]["id"] for i in (5, 6, 8, 9)] == [64, 65, 66, 67]


@pytest.mark.needs("failslab")
@pytest.mark.needs("prctl_restore_ids")
def test_create_failing_deep_in_the_array_leaves_no_node_at_exit(
    helper: Helper, radix_failslab: Guest
) -> None:
    """An exact create of ID 2^18 in an empty array needs a node per level.

    failslab's ``space`` lets exactly one radix_tree_node through: the top
    node is linked in, the next allocation fails, the create fails with
    EAGAIN (and the one retry outside the lock fails too), and an empty node
    is left in the array that no erase will free.  exit_itimers() must free
    it with the array: test_zz_kmemleak.py finds it otherwise, allocated
    during this test (mutant 37).  The prctl path, so that upstream runs it
    too.
    """
    size = int(radix_failslab.read_file("/sys/kernel/slab/radix_tree_node/object_size"))
    before = failslab_injected(radix_failslab)
    # space > size lets one allocation through and takes size from it; the
    # rest of the budget (1 byte) lets nothing more through.
    radix_failslab.run(f"echo {size + 1} > {FAILSLAB}/space", check=True)
    try:
        res = helper.run(
            [
                {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": 1},
                {"op": "mlockall"},
                {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "1"},
                create(notify="none", id=1 << 18),
                {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "0"},
                {"op": "proc_timers"},
            ]
        )
    finally:
        radix_failslab.run(f"echo 0 > {FAILSLAB}/space", check=True)
    assert failslab_injected(radix_failslab) > before, "no node allocation failed"
    assert err(res[3]) == "EAGAIN", f"a create short of nodes is EAGAIN: {res[3]}"
    assert parse(res[5]["text"]) == [], "the failed create left a timer behind"


@pytest.mark.needs("failslab")
def test_concurrent_churn_under_node_failures_keeps_cursor_order(
    helper: Helper, radix_failslab: Guest
) -> None:
    """Three threads create and delete their own timer while node allocations fail.

    Creates need fresh xarray nodes when they cross into a new leaf (the
    series keeps a deleted timer's slot reserved, so a lone timer's delete
    no longer frees its node), 60% of those allocations fail (an EAGAIN
    needs the retry to fail too), and a failed allocation is
    retried with the array's lock dropped: the window in which the first
    version read the cursor before and wrote it after, letting it move
    backwards.  6.12's rule leaves no room for interleaving effects on IDs:
    until the cursor wraps, every create gets an ID no create got before,
    each thread sees increasing IDs, a failure is EAGAIN and consumes
    nothing, and the next create continues after the highest ID.
    """
    radix_failslab.run(f"echo 60 > {FAILSLAB}/probability", check=True)
    before = failslab_injected(radix_failslab)
    churn: Op = {"op": "churn", "count": 400, "notify": "none"}
    res = helper.run(
        [
            create(notify="none"),  # ID 0: the rest needs nodes of its own
            {"op": "mlockall"},
            {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "1"},
            {"op": "threads", "scripts": [[churn]] * 3},
            {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "0"},
            create(notify="none"),
        ],
        timeout=900,
    )
    assert failslab_injected(radix_failslab) > before, "no node allocation failed"
    got: list[int] = []
    for (r,) in res[3]["results"]:
        assert r["other_errors"] == 0 and r["failed_deletes"] == 0, r
        mine = [i for i in r["ids"] if i >= 0]
        assert mine == sorted(mine), f"a thread saw the cursor move back: {mine}"
        got += mine
    failures = sum(r["eagain"] for (r,) in res[3]["results"])
    assert failures > 0, "no create failed: the lock-drop path was not taken"
    assert len(got) == len(set(got)), "an ID was handed out twice"
    assert sorted(got) == list(range(1, len(got) + 1)), "failed creates consumed IDs"
    assert res[5]["id"] == max(got) + 1


# ---------------------------------------------------------------------------
# /proc/<pid>/timers readers while the owner tears its timers down


@dataclass(frozen=True)
class ReadLoop:
    """One reader's view of one round (see op_proc_read_loop)."""

    stop: str
    passes: int
    nonempty: int


def _teardown_round_script(helper: Helper, rounds: int, timers: int, teardown: str) -> str:
    """A guest shell script: per round one owner and two readers of its file."""
    # Armed signal timers (SIGEV_NONE ones are never started): most far
    # off, some expiring every millisecond, so the teardown also meets
    # timers that are firing (itimer_delete() waits for those and looks
    # them up by ID again).
    owner: list[Op] = [
        {"op": "rlimit", "resource": "sigpending", "value": 1 << 20},
        {"op": "create_many", "count": timers - 100, "signo": SIGRTMIN, "arm_ns": 10 * 10**9},
        {"op": "create_many", "count": 100, "signo": SIGRTMIN, "arm_ns": 10**6},
        {"op": "sleep", "ms": 300},
    ]
    if teardown == "exec":
        owner.append({"op": "exec", "script": [{"op": "sleep", "ms": 300}]})
    lines = "\n".join(json.dumps(op) for op in owner)
    h = shlex.quote(str(helper.binary))
    return f"""
set -u
d=$(mktemp -d)
for r in $(seq {rounds}); do
    printf '%s\\n' {shlex.quote(lines)} | {h} > $d/owner.$r &
    pid=$!
    for k in 1 2; do
        echo '{{"op":"proc_read_loop","pid":'$pid',"chunk":256,"max_ms":300000}}' \\
            | {h} > $d/reader.$r.$k &
    done
    wait
done
for f in $d/*; do sed "s|^|${{f##*/}} |" $f; done
rm -rf $d
"""


@pytest.mark.parametrize("teardown", ["exit", "exec"])
def test_proc_timers_reader_during_teardown(helper: Helper, guest: Guest, teardown: str) -> None:
    """An owner with 4000 armed timers exits (or execs) under two readers.

    The first version freed each timer (call_rcu) while the array still
    pointed at it and destroyed the array only after the loop, which
    spans grace periods: a reader's RCU section starting in between found
    a freed timer and locked its it_lock (KASAN: use-after-free in
    show_timer(); "spinlock bad magic", then a hung guest).  Unlinking each
    timer before it is freed keeps readers on live memory; the splat check
    fails this test otherwise.  The readers must have overlapped the
    teardown: each saw the file non-empty and then empty (or gone).
    """
    rounds = 6
    out = guest.run(_teardown_round_script(helper, rounds, 4000, teardown), timeout=900)
    assert out.status == 0, out.describe()
    readers: dict[str, ReadLoop] = {}
    shrunk: dict[str, int] = {}
    owners: dict[str, list[Op]] = {}
    for line in out.stdout.splitlines():
        name, _, payload = line.partition(" ")
        rec = json.loads(payload)
        if name.startswith("reader."):
            readers[name] = ReadLoop(rec["stop"], rec["passes"], rec["nonempty_passes"])
            rnd = name.split(".")[1]
            shrunk[rnd] = shrunk.get(rnd, 0) + rec["shrunk_passes"]
        else:
            owners.setdefault(name, []).append(rec)
    assert len(readers) == 2 * rounds and len(owners) == rounds, out.stdout[-2000:]
    for name, ops in owners.items():
        assert ops[1]["created"] + ops[2]["created"] == 4000, f"{name}: {ops[1:3]}"
    during = [rnd for rnd, n in shrunk.items() if n]
    # A read that saw fewer timers than the one before ran during the
    # teardown (the owner deletes nothing before it).  Not every round
    # can be expected to catch one under emulation; half of them must.
    assert len(during) * 2 >= rounds, f"reads during the teardown per round: {shrunk}"
    for name, rl in readers.items():
        assert rl.nonempty > 0, f"{name} never saw the owner's timers: {rl}"
        assert rl.stop in {"emptied", "gone"}, f"{name} did not see the teardown: {rl}"


# ---------------------------------------------------------------------------
# The cover letter's probing advice, checked on every kernel


def test_probe_advice_leaves_the_id_sequence_alone(
    helper: Helper, features: dict[str, bool]
) -> None:
    """The probes the cover letter tells CRIU to use have no side effect.

    PR_TIMER_CREATE_RESTORE_IDS_GET and a SIGEV_TIMER_ID create in a
    throwaway child leave the restoring process at ID 0 on every kernel.
    A flag create in the process itself is what the advice warns about:
    where the flag is absent, 6.12 rejects it only after allocating the ID,
    so the next plain create gets 1 and every restored ID would be off by
    one.
    """
    probe_in_child = {
        "op": "fork",
        "script": [create(notify="none", id=12345, **FLAG), {"op": "exit", "status": 0}],
    }
    res = helper.run([prctl(2), probe_in_child, create(notify="none")])
    if features["prctl_restore_ids"]:
        assert res[0]["ret"] == 0, f"GET of a process that never set the mode: {res[0]}"
    else:
        assert err(res[0]) == "EINVAL", f"the absent prctl's answer: {res[0]}"
    child = res[1]["results"][0]
    if features["sigev_timer_id"]:
        assert child["ret"] == 0 and child["id"] == 12345, child
    else:
        assert err(child) == "EINVAL", child
    assert res[2]["id"] == 0, "the probes consumed an ID of the restoring process"

    in_process = helper.run([create(notify="none", id=12345, **FLAG), create(notify="none")])
    if features["sigev_timer_id"]:
        assert in_process[0]["id"] == 12345 and in_process[1]["id"] == 12346
    else:
        assert err(in_process[0]) == "EINVAL"
        assert in_process[1]["id"] == 1, "6.12 consumes an ID before rejecting the flag"
