"""Tests for what ``./ptimers mutate`` showed the rest of the suite does not check.

Each test is named in the header of the mutant it kills
(``mutants/NN-*.patch``, ``Caught-by:``); every mutant of the series that
survived the suite without it did so because nothing asserted the
behaviour below.
"""

from __future__ import annotations

import shlex

import pytest

from conftest import INT_MAX, create, err, ok
from harness.guest import Guest
from harness.helper import Helper
from harness.procfs import parse

FLAG = {"flags": ["timer_id"]}


@pytest.mark.needs("sigev_timer_id", "proc_timers")
def test_proc_lists_the_timer_with_id_int_max(helper: Helper) -> None:
    """The top of the ID range is listed like any other ID.

    CRIU restores the IDs it dumped, INT_MAX among them.  Mutant 40 stopped
    the walk one ID early.
    """
    res = helper.run(
        [create(id=INT_MAX, **FLAG), create(id=INT_MAX - 1, **FLAG), {"op": "proc_timers"}]
    )
    assert sorted(t.id for t in parse(ok(res[2])["text"])) == [INT_MAX - 1, INT_MAX]


# A create that fails after its timer was stored: good_sigevent() rejects a
# SIGEV_THREAD_ID aimed at a thread of another process (1).  Until the
# failure path erases it, the timer sits in the array with it_signal NULL.
FAILING_EXACT_CREATE = create(id=5, notify="thread_id", tid=1, **FLAG)


@pytest.mark.needs("sigev_timer_id")
def test_lookup_never_finds_a_timer_being_created(helper: Helper) -> None:
    """timer_gettime() on the ID of a create in progress fails, always.

    One thread keeps creating ID 5 exactly with a sigevent that fails after
    the store; another keeps asking timer_gettime(5).  A timer is valid only
    once it_signal is set: mutant 33 let __lock_timer() return the
    half-built one (its kclock not yet set, or its hrtimer never
    initialised), which no single-threaded test can see.
    """
    res = helper.one(
        {
            "op": "threads",
            "scripts": [[FAILING_EXACT_CREATE] * 3000, [{"op": "gettime", "id": 5}] * 6000],
        },
        timeout=600,
    )
    creates, lookups = ok(res)["results"]
    assert {err(r) for r in creates} == {"EINVAL"}
    found = [r for r in lookups if r["ret"] != -1 or r["errno"] != "EINVAL"]
    assert not found, f"{len(found)} of {len(lookups)} lookups found timer 5: {found[:3]}"


@pytest.mark.needs("sigev_timer_id", "proc_timers")
def test_proc_never_lists_a_timer_being_created(helper: Helper) -> None:
    """/proc/<pid>/timers read while the same create keeps failing lists nothing.

    show_timer() skips a timer whose it_signal is not (yet, or any more) the
    owner's; mutant 43 showed it, with fields not yet set.
    """
    res = helper.one(
        {
            "op": "threads",
            "scripts": [[FAILING_EXACT_CREATE] * 3000, [{"op": "proc_timers"}] * 300],
        },
        timeout=600,
    )
    creates, reads = ok(res)["results"]
    assert {err(r) for r in creates} == {"EINVAL"}
    listed = [t.id for r in reads for t in parse(ok(r)["text"])]
    assert not listed, f"{len(listed)} records of a timer that never became valid: {listed[:5]}"


CGROUP = "/sys/fs/cgroup/ptimers-gaps"
SLAB = "/sys/kernel/slab"


def _read_int(guest: Guest, path: str) -> int:
    return int(guest.run(f"cat {shlex.quote(path)}", timeout=60, check=True).stdout.strip())


@pytest.mark.needs("sigev_timer_id", "proc_timers_by_id")
def test_timer_array_nodes_are_charged_to_the_cgroup(helper: Helper, guest: Guest) -> None:
    """The timer array's nodes count against the process' memory cgroup.

    A process holding N timers at IDs 64 apart (one xarray leaf node each)
    must be charged for the nodes as well as the timers and sigqueues (all
    three caches are accounted): otherwise a process escapes its memory limit
    by the nodes' size, 576 bytes a timer here.  The charge is compared
    with the midpoint between "nodes charged" and "nodes not charged",
    which lies megabytes from both, far beyond the cgroup's per-CPU charge
    batching.  Mutant 30 dropped XA_FLAGS_ACCOUNT.  Needs the xarray
    (``proc_timers_by_id``): 6.12's hash has no nodes.
    """
    if guest.run("grep -qw memory /sys/fs/cgroup/cgroup.controllers", timeout=60).status:
        pytest.skip("no cgroup2 memory controller in the guest")
    node, timer, sigq = (
        _read_int(guest, f"{SLAB}/{cache}/object_size")
        for cache in ("radix_tree_node", "posix_timers_cache", "sigqueue")
    )
    guest.run(
        f"echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir -p {CGROUP}",
        timeout=60,
        check=True,
    )
    # A shell of its own: run_held() backgrounds the command, and there $$
    # would be the parent shell's PID, not the process that becomes the helper.
    enter = shlex.quote(f'echo $$ > {CGROUP}/cgroup.procs && exec "$0"')
    held = Helper(guest, helper.binary, prefix=f"sh -c {enter} ")
    n = 8000
    charged = []
    try:
        for ids in ([], [64 * (i + 1) for i in range(n)]):
            ops = [{"op": "rlimit", "resource": "sigpending", "value": 1 << 20}]
            if ids:
                ops.append({"op": "criu_restore", "ids": ids, "mode": "flag"})
            res, pid = held.run_held([*ops, {"op": "hold"}], expect=len(ops), timeout=600)
            try:
                for r in res:
                    ok(r)
                if ids:
                    assert res[1]["restored"] == n, res[1]
                charged.append(_read_int(guest, f"{CGROUP}/memory.current"))
            finally:
                held.release(pid)
    finally:
        guest.run(f"rmdir {CGROUP}", timeout=60)
    grown = charged[1] - charged[0]
    with_nodes, without = n * (node + timer + sigq), n * (timer + sigq)
    assert grown > (with_nodes + without) // 2, (
        f"{n} timers at sparse IDs grew the cgroup's charge by {grown} bytes: "
        f"{with_nodes} expected with the array's nodes charged, {without} without"
    )
