"""CRIU's legacy restore: create/delete until the wanted ID comes out.

This is the algorithm of every CRIU before 4.2 (and the fallback of newer
ones); any kernel that hands out IDs differently breaks it.
"""

from __future__ import annotations

from conftest import SIGRTMIN, ok
from harness.helper import Helper, Op
from harness.procfs import parse

SPARSE = [1, 5, 100, 1000, 4096, 10000, 20000]
MS = 1_000_000


def restore_then_check(helper: Helper, mode: str, wanted: list[int]) -> list[Op]:
    ops: list[Op] = [
        {"op": "criu_restore", "ids": wanted, "mode": mode, "signo": SIGRTMIN},
        {"op": "proc_timers"},
    ]
    for n, tid in enumerate(wanted):
        ops.append({"op": "settime", "id": tid, "value_ns": (5 + n) * MS})
    ops += [{"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000} for _ in wanted]
    return helper.run(ops, timeout=600)


def test_legacy_restore_sparse_ids(helper: Helper, features: dict[str, bool]) -> None:
    res = restore_then_check(helper, "legacy", SPARSE)
    restore = ok(res[0])
    assert restore["restored"] == len(SPARSE)
    # One create per ID up to the highest, plus one delete per unwanted ID.
    top = SPARSE[-1]
    assert restore["syscalls"] == (top + 1) + (top + 1 - len(SPARSE))
    if features["proc_timers"]:  # CONFIG_CHECKPOINT_RESTORE
        assert sorted(t.id for t in parse(ok(res[1])["text"])) == SPARSE
    for r in res[2 : 2 + len(SPARSE)]:
        ok(r)
    fired = sorted(ok(r)["timerid"] for r in res[2 + len(SPARSE) :])
    assert fired == SPARSE, "every restored timer must fire with its own ID"
