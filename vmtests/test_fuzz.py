"""Fuzzing timer_create(): 100,000 seeded inputs per run, valid and invalid.

Clocks (valid, invalid, CPU clocks of this process, its threads and other
processes), sigev_notify bit patterns, signal numbers, thread ids, wanted
IDs (negative, INT_MAX, taken ones) and bad pointers.  Every outcome must
be a success or a documented errno, and the kernel must not complain
(the plugin's dmesg check).  Inputs without SIGEV_TIMER_ID run in their own
process; their trace (IDs and errnos) is written to ``fuzz.json`` so that
``./ptimers test`` can require it to be identical on the unpatched and the
patched kernel.  Override the seed with PTIMERS_SEED.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from conftest import INT_MAX
from harness.helper import Helper, Op

CASES = 100_000
DOCUMENTED = {"EINVAL", "EFAULT", "EAGAIN", "EBUSY", "EOPNOTSUPP", "EPERM"}
NO_PID = 2**22 + 1  # above PID_MAX_LIMIT
NAMED_CLOCKS = [
    "realtime",
    "monotonic",
    "boottime",
    "tai",
    "process_cputime",
    "thread_cputime",
    "monotonic_raw",
    "realtime_coarse",
    "monotonic_coarse",
]


def random_create(rnd: random.Random, pid_pool: list[int], with_flag: bool) -> Op:
    op: Op = {"op": "create"}
    r = rnd.random()
    if r < 0.55:
        op["clock"] = rnd.choice(NAMED_CLOCKS)
    elif r < 0.75:
        op["clock"] = {
            "cpu_pid": rnd.choice(pid_pool),
            "kind": rnd.choice(["prof", "virt", "sched"]),
            "thread": rnd.random() < 0.3,
        }
    else:
        op["clock"] = (
            rnd.randint(-(2**31), 2**31 - 1) if rnd.random() < 0.3 else rnd.randint(-40, 40)
        )
    r = rnd.random()
    if r < 0.6:
        op["notify"] = rnd.choice(["signal", "none", "thread", "thread_id", "null"])
    else:
        raw = rnd.choice([rnd.randint(0, 15), rnd.randint(-(2**31), 2**31 - 1)])
        # Bit 3 is SIGEV_TIMER_ID: without the flag it must stay clear, or
        # the input is a flag request (read before anything is allocated)
        # and legitimately differs from 6.12, where it consumes an ID.
        op["notify_raw"] = raw if with_flag else raw & ~8
    op["signo"] = rnd.randint(-3, 70)
    if op.get("notify") == "thread_id" or rnd.random() < 0.2:
        op["tid"] = rnd.choice(["self", *pid_pool])
    op["value"] = rnd.randint(0, 2**32)
    if with_flag:
        op["flags"] = ["timer_id"]
        op["id"] = rnd.choice(
            [rnd.randint(0, 4096), INT_MAX, INT_MAX - 1, -1, -(2**31), rnd.randint(0, INT_MAX)]
        )
    if rnd.random() < 0.02:
        op["bad_sev_ptr"] = True
    if rnd.random() < 0.02:
        op["bad_id_ptr"] = True
    return op


def script(seed: int, count: int, with_flag: bool, block: int = 250) -> list[Op]:
    """Blocks of creates, each in a forked child so its timers vanish with it."""
    rnd = random.Random(seed * 2 + with_flag)
    ops: list[Op] = [{"op": "rlimit", "resource": "sigpending", "value": 1 << 20}]
    for start in range(0, count, block):
        # Deterministic targets only (the trace is compared across boots):
        # 0 = this process, 1 = init (another process), NO_PID never exists.
        sub = [
            random_create(rnd, [0, 1, NO_PID], with_flag) for _ in range(min(block, count - start))
        ]
        ops.append({"op": "fork", "script": sub})
    return ops


def check(results: list[Op]) -> list[Any]:
    trace: list[Any] = []
    for fork in results:
        if fork["op"] != "fork":
            continue
        assert fork["status"] == 0, f"a fuzz child died: {fork}"
        for r in fork["results"]:
            if r["ret"] == 0:
                trace.append(r["id"])
            else:
                assert r["errno"] in DOCUMENTED, f"undocumented errno: {r}"
                trace.append(r["errno"])
    return trace


@pytest.mark.parametrize("with_flag", [False, True], ids=["no-flag", "flag"])
def test_fuzz_timer_create(
    helper: Helper, features: dict[str, bool], with_flag: bool, request: pytest.FixtureRequest
) -> None:
    seed = int(os.environ.get("PTIMERS_SEED", "20261128"))
    count = CASES // 2
    ops = script(seed, count, with_flag)
    results = helper.run(ops, timeout=1800)
    trace = check(results)
    assert len(trace) == count
    if with_flag and not features["sigev_timer_id"]:
        # Without the flag support every flagged valid request is EINVAL
        # (or fails for another documented reason): no ID is ever chosen.
        return
    if not with_flag:
        digest = hashlib.sha256(json.dumps(trace).encode()).hexdigest()[:16]
        out = Path(request.config.getoption("--results-dir")) / "fuzz.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"seed": seed, "cases": count, "sha256": digest}) + "\n")
