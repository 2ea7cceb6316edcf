"""Fault injection: allocation failures inside timer_create().

failslab is aimed at one cache at a time (``cache-filter``) and at the
helper process only (``task-filter`` + /proc/self/make-it-fail), so the
failure hits exactly the allocation under test: the timer, its sigqueue,
or an xarray node.  Every injected failure must return an error, consume
no ID (the next normal create gets the expected one) and leak nothing
(kmemleak, in the debug flavor).
"""

from __future__ import annotations

import pytest

from conftest import create, err, failslab_injected
from harness.guest import Guest
from harness.helper import Helper, Op


def lock_memory() -> Op:
    """No page faults (9p reads of the binary) while failures are injected."""
    return {"op": "mlockall"}


def fail_on() -> Op:
    return {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "1"}


def fail_off() -> Op:
    return {"op": "write_file", "path": "/proc/self/make-it-fail", "data": "0"}


@pytest.mark.needs("failslab")
@pytest.mark.parametrize("cache", ["posix_timers_cache", "sigqueue"])
def test_timer_allocation_failure(helper: Helper, failslab: Guest, cache: str) -> None:
    failslab.run(f"echo 1 > /sys/kernel/slab/{cache}/failslab", check=True)
    before = failslab_injected(failslab)
    res = helper.run([create(), lock_memory(), fail_on(), create(), create(), fail_off(), create()])
    assert res[0]["id"] == 0
    assert err(res[3]) == "EAGAIN"
    assert err(res[4]) == "EAGAIN"
    assert res[6]["id"] == 1, "failed allocations must not consume IDs"
    assert failslab_injected(failslab) > before


@pytest.mark.needs("failslab")
def test_xarray_node_allocation_failure(
    helper: Helper, failslab: Guest, features: dict[str, bool]
) -> None:
    """ID 0 lives in the array's head; ID 1 needs the first node."""
    failslab.run("echo 1 > /sys/kernel/slab/radix_tree_node/failslab", check=True)
    before = failslab_injected(failslab)
    ops: list[Op] = [create(), lock_memory(), fail_on(), create()]
    if features["sigev_timer_id"]:
        ops.append(create(id=4096, flags=["timer_id"]))
    ops += [fail_off(), create()]
    res = helper.run(ops)
    hit = failslab_injected(failslab) > before
    if features["proc_timers_by_id"]:
        # The series' kernels store timers in an xarray (the same patch
        # makes /proc list them by ID): the injection must have hit.
        assert hit, "no xarray node allocation failed"
        assert err(res[3]) == "EAGAIN", "a failed node allocation must fail the create"
        if features["sigev_timer_id"]:
            assert err(res[4]) == "EAGAIN"
        assert res[-1]["id"] == 1, "no ID consumed"
    else:
        # 6.12's hash (and upstream's) allocate no radix tree node per timer.
        assert not hit, "a hash kernel allocated a radix tree node in timer_create()"
        assert res[3]["id"] == 1
        assert res[-1]["id"] == 2


@pytest.mark.needs("fail_page_alloc")
def test_page_allocation_failure(helper: Helper, guest: Guest) -> None:
    fpa = "/sys/kernel/debug/fail_page_alloc"
    for k, v in {
        "task-filter": "Y",
        "ignore-gfp-wait": "N",
        "ignore-gfp-highmem": "Y",  # user pages: the helper must not OOM
        "min-order": "0",
        "interval": "1",
        "times": "-1",
        "space": "0",
        "verbose": "0",
        "probability": "100",
    }.items():
        guest.run(f"echo {v} > {fpa}/{k}", check=True)
    try:
        res = helper.run(
            [
                {"op": "rlimit", "resource": "sigpending", "value": 1 << 20},
                lock_memory(),
                fail_on(),
                {"op": "create_many", "count": 20000},
                fail_off(),
                create(),
            ],
            timeout=600,
        )
    finally:
        guest.run(f"echo 0 > {fpa}/probability", check=True)
    many = res[3]
    assert many["created"] < 20000, "new slab pages are needed for 20000 timers"
    # 6.12 turns a failed timer allocation into EAGAIN (do_timer_create()),
    # the series a failed node allocation as well: never ENOMEM.
    assert many["errno"] == "EAGAIN"
    assert res[5]["id"] == many["created"], "the failed creates consumed no IDs"
