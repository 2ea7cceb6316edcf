"""IDs of deleted timers: found again by the ID search and by exact creates.

A storage that keeps something in a deleted timer's slot (the first
version's reserved slot, the candidate in bench-data/parking-v3) must
still behave as 6.12 does: the slot is free for the cyclic search, also
after a wrap-around, and for exact creates, exactly once; lookups and
/proc/<pid>/timers do not see it; the state where the only thing left in
the array is such a slot at ID 0 survives further creates.  The expected
IDs are 6.12's (the lowest free ID at or above the cursor, wrapping after
INT_MAX; the cursor continues after an exact create), so these tests run
on every kernel with an exact-ID interface: the flag where it exists,
else upstream's prctl mode.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import (
    INT_MAX,
    PR_TIMER_CREATE_RESTORE_IDS,
    create,
    err,
    failslab_injected,
    ids,
    ok,
)
from harness.guest import Guest
from harness.helper import Helper, Op
from harness.procfs import parse

ON, OFF = 1, 0


Exact = Callable[[int], list[Op]]


@pytest.fixture
def exact(features: dict[str, bool]) -> Exact:
    """Ops creating a timer with one ID: the flag, or the prctl mode around it."""
    if features["sigev_timer_id"]:
        return lambda want: [create(id=want, flags=["timer_id"])]
    if features["prctl_restore_ids"]:

        def via_prctl(want: int) -> list[Op]:
            mode = {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg3": 0}
            return [{**mode, "arg2": ON}, create(id=want), {**mode, "arg2": OFF}]

        return via_prctl
    pytest.skip("kernel under test has neither SIGEV_TIMER_ID nor the prctl")


def delete(want: int) -> Op:
    return {"op": "delete", "id": want}


def test_deleted_slot_is_found_by_the_search(helper: Helper, exact: Exact) -> None:
    res = helper.run([create(), *exact(200), delete(200), *exact(199), create(), create()])
    assert ids(res) == [0, 200, 199, 200, 201]


def test_deleted_slot_is_found_after_the_search_wraps(helper: Helper, exact: Exact) -> None:
    """The cursor wraps past INT_MAX; the deleted slot 130 comes after 100..129."""
    res = helper.run(
        [
            *(create() for _ in range(100)),
            *exact(130),
            delete(130),
            *exact(INT_MAX),
            *(create() for _ in range(32)),
        ]
    )
    assert ids(res)[100:] == [130, INT_MAX, *range(100, 130), 130, 131]


@pytest.mark.needs("proc_timers")
def test_exact_create_into_a_deleted_slot_once(helper: Helper, exact: Exact) -> None:
    """The first version's bug: exact creates and a delete left one timer in two slots."""
    res = helper.run(
        [
            create(),
            *exact(64),
            delete(64),
            *exact(64),
            *exact(64),
            {"op": "proc_timers"},
            delete(64),
            delete(64),
            {"op": "proc_timers"},
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert [ok(r)["id"] for r in creates[:3]] == [0, 64, 64]
    assert err(creates[3]) == "EBUSY"
    deletes = [r for r in res if r.get("op") == "delete"]
    ok(deletes[0])
    ok(deletes[1])
    assert err(deletes[2]) == "EINVAL"
    reads = [r for r in res if r.get("op") == "proc_timers"]
    assert sorted(t.id for t in parse(ok(reads[0])["text"])) == [0, 64]
    assert [t.id for t in parse(ok(reads[1])["text"])] == [0]


@pytest.mark.needs("proc_timers")
def test_nothing_but_a_deleted_slot_at_id_0(helper: Helper, exact: Exact) -> None:
    """0 and 64 live, 64 then 0 deleted: the array holds no timer; a
    storage that keeps a deleted slot may keep one at ID 0, at its root."""
    res = helper.run(
        [
            create(),
            *exact(64),
            delete(64),
            delete(0),
            {"op": "gettime", "id": 0},
            {"op": "proc_timers"},
            create(),
            *exact(0),
            *exact(0),
            {"op": "proc_timers"},
        ]
    )
    assert err(next(r for r in res if r.get("op") == "gettime")) == "EINVAL"
    reads = [r for r in res if r.get("op") == "proc_timers"]
    assert parse(ok(reads[0])["text"]) == []
    creates = [r for r in res if r.get("op") == "create"]
    assert [ok(r)["id"] for r in creates[:4]] == [0, 64, 65, 0]
    assert err(creates[4]) == "EBUSY"
    assert sorted(t.id for t in parse(ok(reads[1])["text"])) == [0, 65]


@pytest.mark.parametrize("reserved", [False, True], ids=["no-reservation", "reserved-elsewhere"])
def test_deleted_id_0_is_found_after_the_wrap(helper: Helper, exact: Exact, reserved: bool) -> None:
    """0 deleted, alone or with 64 reserved in another leaf: ID 0 is never
    reserved, so after the wrap the search starts with it.  A delete of 0
    that stored a reserved entry there would hide it from the search."""
    elsewhere = [*exact(64), delete(64)] if reserved else []
    res = helper.run([create(), *elsewhere, delete(0), *exact(INT_MAX), create(), create()])
    assert ids(res) == [0, *([64] if reserved else []), INT_MAX, 0, 1]
    for d in (r for r in res if r.get("op") == "delete"):
        ok(d)


def test_int_max_deleted_and_created_again(helper: Helper, exact: Exact) -> None:
    res = helper.run([*exact(INT_MAX), delete(INT_MAX), *exact(INT_MAX), create(), delete(INT_MAX)])
    assert ids(res) == [INT_MAX, INT_MAX, 0]
    ok(res[-1])


# The reserved slot itself (the series' "Keep the slot of the last deleted
# timer reserved"): only failslab shows which creates allocate array nodes,
# so these run in the debug flavor, where the patched kernel must have it.


def failing(*ops: Op) -> list[Op]:
    """@ops with the helper's slab allocations failing (radix_tree_node only)."""
    path = "/proc/self/make-it-fail"
    return [
        {"op": "write_file", "path": path, "data": "1"},
        *ops,
        {"op": "write_file", "path": path, "data": "0"},
    ]


@pytest.mark.needs("reserved_slot")
def test_reservation_moves_and_frees_what_only_it_kept(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """64 deleted, then 200: the leaf of 64..127 held nothing but the
    reservation and must be gone (creating 64 needs a node again), while the
    leaf of 200 is kept (creating 200 and its neighbour 201 needs none)."""
    before = failslab_injected(radix_failslab)
    res = helper.run(
        [
            create(),
            *exact(64),
            delete(64),
            *exact(200),
            delete(200),
            {"op": "mlockall"},
            *failing(*exact(64), *exact(200), create()),
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert err(creates[3]) == "EAGAIN", "the released leaf of 64 was kept"
    assert failslab_injected(radix_failslab) > before
    assert [ok(r)["id"] for r in creates[4:]] == [200, 201]


@pytest.mark.needs("reserved_slot")
def test_delete_beside_the_reservation_frees_its_slot(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """64 deleted, then 65 in the same leaf, then 200: whichever of 64 and
    65 was reserved, the delete of 200 must release it, and with nothing
    else in it the leaf of 64..127 goes (creating 64 or 65 needs a node
    again); 200's leaf is kept.  A reservation left behind in the leaf (a
    slot lost for good) or a "same leaf" test wider than a leaf keeps it."""
    before = failslab_injected(radix_failslab)
    res = helper.run(
        [
            create(),
            *exact(64),
            *exact(65),
            delete(64),
            delete(65),
            *exact(200),
            delete(200),
            {"op": "mlockall"},
            *failing(*exact(64), *exact(65), *exact(200), create()),
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert [err(r) for r in creates[4:6]] == ["EAGAIN", "EAGAIN"], "the leaf of 64 was kept"
    assert failslab_injected(radix_failslab) > before
    assert [ok(r)["id"] for r in creates[6:]] == [200, 201]


@pytest.mark.needs("reserved_slot")
def test_delete_beside_the_reservation_keeps_the_leaf(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """64 deleted, then 65 in the same leaf: whichever stays reserved keeps
    the leaf of 64..127, so creating both again needs no node (4096, a new
    root, inner node and leaf, proves the injection).  A same-leaf delete
    that also releases the older reservation frees the leaf."""
    res = helper.run(
        [
            create(),
            *exact(64),
            *exact(65),
            delete(64),
            delete(65),
            {"op": "mlockall"},
            *failing(*exact(65), *exact(64), *exact(4096)),
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert [ok(r)["id"] for r in creates[:3]] == [0, 64, 65]
    assert [ok(r)["id"] for r in creates[3:5]] == [65, 64], "the leaf of 64..127 was not kept"
    assert err(creates[5]) == "EAGAIN"


@pytest.mark.needs("reserved_slot")
def test_reservation_moves_to_the_neighbouring_leaf(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """127 deleted (alone in the leaf of 64..127), then 63 with the cursor at
    64: another leaf, at the same offset and in the same 128 IDs, so the
    reservation moves and 127's leaf goes.  A "same leaf" test one bit too
    wide, one comparing offsets or one looking at the cursor keeps 127."""
    before = failslab_injected(radix_failslab)
    res = helper.run(
        [
            create(),
            *exact(127),
            delete(127),
            *exact(63),
            delete(63),
            {"op": "mlockall"},
            *failing(*exact(127), *exact(63), create()),
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert [ok(r)["id"] for r in creates[:3]] == [0, 127, 63]
    assert err(creates[3]) == "EAGAIN", "the released leaf of 127 was kept"
    assert failslab_injected(radix_failslab) > before
    assert ok(creates[4])["id"] == 63, "the reserved slot of 63 was lost or needed a node"
    # cursor 64: the leaf of 64..127 is gone
    assert err(creates[5]) == "EAGAIN"


@pytest.mark.needs("reserved_slot")
def test_first_reservation_in_the_first_leaf(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """0 then 1 deleted: 1 is the first reservation, in the only leaf, which
    holds nothing else; creating 1 again needs no node (64 does)."""
    res = helper.run(
        [
            create(),
            create(),
            delete(0),
            delete(1),
            {"op": "mlockall"},
            *failing(*exact(1), *exact(64)),
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert [ok(r)["id"] for r in creates[:2]] == [0, 1]
    assert ok(creates[2])["id"] == 1, "the slot of 1 was not kept"
    assert err(creates[3]) == "EAGAIN"


@pytest.mark.needs("reserved_slot")
def test_failed_create_keeps_the_reservation(
    helper: Helper, radix_failslab: Guest, exact: Exact
) -> None:
    """A create whose node allocations fail (4096: a new root, an inner node
    and a leaf) must leave the reservation of 64 as it was: the search from
    the cursor (64, after the exact create of 63) takes it before the free
    65, without an allocation."""
    res = helper.run(
        [
            create(),
            *exact(64),
            delete(64),
            {"op": "mlockall"},
            *failing(*exact(4096)),
            *exact(63),
            *failing(create(), create(), *exact(4096)),
            {"op": "proc_timers"},
        ]
    )
    creates = [r for r in res if r.get("op") == "create"]
    assert err(creates[2]) == "EAGAIN"
    assert ok(creates[3])["id"] == 63
    assert ok(creates[4])["id"] == 64, "the reserved slot was lost or needed a node"
    assert ok(creates[5])["id"] == 65
    # Proof that node allocations were failing in that window: 4096 needs a
    # new root, an inner node and a leaf.
    assert err(creates[6]) == "EAGAIN"
    listed = parse(ok(next(r for r in res if r.get("op") == "proc_timers"))["text"])
    assert sorted(t.id for t in listed) == [0, 63, 64, 65]


def test_exec_and_deletes_after_it(helper: Helper, exact: Exact) -> None:
    """exec destroys the array, a deleted slot's remains with it: the new
    image creates and deletes as in a fresh array (the cursor carries on, as
    in 6.12), and its deletes must not look for what was kept before (a
    stale reservation makes the kernel WARN, which fails the test).  The
    delete of 130 is in another leaf than the 64 reserved before the exec:
    a delete in 64's own leaf (67) only frees its slot and never looks."""
    script = [create(), create(), delete(67), *exact(130), delete(130), create()]
    ops = [create(), *exact(64), create(), delete(64), {"op": "exec", "script": script}]
    # exec's new image prints one line per op of its script
    res = helper.run(ops, expect=len(ops) + len(script))
    assert ids(res) == [0, 64, 65, 66, 67, 130, 131]
    deletes = [r for r in res if r.get("op") == "delete"]
    assert len(deletes) == 3
    for d in deletes:
        ok(d)


@pytest.mark.parametrize(
    ("first", "second"),
    [(1, 2), (1, 70), (70, 1)],
    ids=["same-leaf", "next-leaf", "leaf-before"],
)
def test_two_deletes_both_ids_found_again(
    helper: Helper, exact: Exact, first: int, second: int
) -> None:
    """Two IDs deleted: both are free again for the search after a
    wrap-around and for exact creates.  A storage keeping only one deleted
    slot must give the other back: in one 64-slot leaf (1, 2) patch 4
    frees the second slot and keeps the first reserved, across leaves
    (1, 70 either way) it releases the first and reserves the second."""
    top = 71
    low, high = sorted((first, second))
    res = helper.run(
        [
            *(create() for _ in range(top)),
            delete(first),
            delete(second),
            *exact(INT_MAX),
            create(),
            create(),
            create(),
            delete(first),
            delete(second),
            *exact(first),
            *exact(second),
        ]
    )
    assert ids(res) == [*range(top), INT_MAX, low, high, top, first, second]
    for d in (r for r in res if r.get("op") == "delete"):
        ok(d)


def test_deleted_int_max_is_found_from_a_cursor_at_int_max(helper: Helper, exact: Exact) -> None:
    """The search's upper end: INT_MAX deleted, the cursor put back on it."""
    res = helper.run([*exact(INT_MAX), delete(INT_MAX), *exact(INT_MAX - 1), create(), create()])
    assert ids(res) == [INT_MAX, INT_MAX - 1, INT_MAX, 0]


def test_deleted_slot_below_the_cursor_is_found_after_the_wrap(
    helper: Helper, exact: Exact
) -> None:
    """No free ID from the cursor to INT_MAX: the second search, from 0 to
    below the cursor, must find the deleted 2 before the free 3."""
    res = helper.run(
        [
            *(create() for _ in range(3)),
            *exact(INT_MAX),
            *exact(INT_MAX - 1),
            delete(2),
            create(),
            create(),
        ]
    )
    assert ids(res) == [0, 1, 2, INT_MAX, INT_MAX - 1, 2, 3]
