"""Differential test: a seeded random workload against a model of 6.12.

The workload never uses the new interfaces.  Its outcome (every ID and
errno) must equal what 6.12's cursor allocation produces, which the model
below reproduces; the same seed therefore gives identical traces on the
unpatched and the patched kernel.  The trace digest is recorded in the
test's properties (results.json/junit) so runs on two kernels can be
compared directly.  Override the seed with PTIMERS_SEED.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import INT_MAX, SIGRTMIN
from harness.helper import Helper, Op

OPS = 10_000
CLOCKS = ["realtime", "monotonic", "boottime", "process_cputime", "thread_cputime"]
NOTIFY = ["signal", "none", "thread", "thread_id", "null"]


@dataclass
class Model:
    """6.12's per-process ID allocation (kernel/time/posix-timers.c)."""

    cursor: int = 0
    live: set[int] = field(default_factory=set)

    def alloc(self) -> int:
        tid = self.cursor
        while tid in self.live:
            tid = (tid + 1) & INT_MAX
        self.cursor = (tid + 1) & INT_MAX
        return tid


@dataclass
class Step:
    op: Op
    expect: Any  # ("id", n) | ("errno", name) | ("ok",) | ("fork", [...]) | ("threads", set)


def generate(seed: int, count: int = OPS) -> list[Step]:
    """A random script and the outcome 6.12 gives for each operation."""
    rnd = random.Random(seed)
    model = Model()
    steps: list[Step] = []
    while len(steps) < count:
        roll = rnd.random()
        if len(model.live) > 400:
            roll = 0.55  # keep RLIMIT_SIGPENDING and the guest's memory in check
        if roll < 0.45:
            op: Op = {
                "op": "create",
                "clock": rnd.choice(CLOCKS),
                "notify": rnd.choice(NOTIFY),
                "signo": rnd.randint(1, 64),
                "value": rnd.randint(0, 2**32),
            }
            if op["notify"] == "thread_id":
                op["tid"] = "self"
            tid = model.alloc()
            model.live.add(tid)
            steps.append(Step(op, ("id", tid)))
        elif roll < 0.65:
            live = sorted(model.live)
            victim = rnd.choice(live) if live and rnd.random() < 0.8 else rnd.randint(-5, 5000)
            if victim in model.live:
                model.live.discard(victim)
                steps.append(Step({"op": "delete", "id": victim}, ("ok",)))
            else:
                steps.append(Step({"op": "delete", "id": victim}, ("errno", "EINVAL")))
        elif roll < 0.75:
            live = sorted(model.live)
            target = rnd.choice(live) if live and rnd.random() < 0.7 else rnd.randint(-3, 9000)
            kind = rnd.choice(["gettime", "getoverrun", "settime"])
            op = {"op": kind, "id": target}
            if kind == "settime":
                op["value_ns"] = 0
            steps.append(Step(op, ("ok",) if target in model.live else ("errno", "EINVAL")))
        elif roll < 0.90:
            # Failing creates: which of them consume an ID is part of the ABI.
            fail = rnd.randrange(6)
            if fail == 0:
                steps.append(Step({"op": "create", "clock": 12345}, ("errno", "EINVAL")))
            elif fail == 1:
                steps.append(Step({"op": "create", "bad_sev_ptr": True}, ("errno", "EFAULT")))
            elif fail == 2:
                model.alloc()
                steps.append(Step({"op": "create", "signo": 0}, ("errno", "EINVAL")))
            elif fail == 3:
                model.alloc()
                steps.append(
                    Step(
                        {"op": "create", "notify_raw": rnd.choice([3, 5, 6, 7, 54321])},
                        ("errno", "EINVAL"),
                    )
                )
            elif fail == 4:
                model.alloc()
                steps.append(Step({"op": "create", "bad_id_ptr": True}, ("errno", "EFAULT")))
            else:
                model.alloc()
                steps.append(
                    Step({"op": "create", "notify": "thread_id", "tid": 1}, ("errno", "EINVAL"))
                )
        elif roll < 0.95:
            n = rnd.randint(1, 5)
            # A forked child starts with no timers and the cursor at 0.
            steps.append(
                Step({"op": "fork", "script": [{"op": "create"}] * n}, ("fork", list(range(n))))
            )
        else:
            n = rnd.randint(1, 8)
            expect: set[int] = set()
            for _ in range(2 * n):
                tid = model.alloc()
                model.live.add(tid)
                expect.add(tid)
            script = [{"op": "create", "signo": SIGRTMIN}] * n
            steps.append(Step({"op": "threads", "scripts": [script, script]}, ("threads", expect)))
    return steps


def outcome(res: Op) -> Any:
    """The comparable outcome of one result, in the shape of Step.expect."""
    if res["op"] == "fork":
        return ("fork", [r.get("id") for r in res["results"]])
    if res["op"] == "threads":
        return ("threads", {r["id"] for script in res["results"] for r in script if r["ret"] == 0})
    if res["ret"] == -1:
        return ("errno", res["errno"])
    if res["op"] == "create":
        return ("id", res["id"])
    return ("ok",)


def test_random_workload_matches_612(helper: Helper, record_property: Any) -> None:
    seed = int(os.environ.get("PTIMERS_SEED", "20261128"))
    steps = generate(seed)
    setup: list[Op] = [{"op": "rlimit", "resource": "sigpending", "value": 1 << 20}]
    res = helper.run(setup + [s.op for s in steps], timeout=900)[1:]
    trace = [outcome(r) for r in res]
    canonical = [[t[0], sorted(t[1]) if isinstance(t[-1], set) else list(t[1:])] for t in trace]
    digest = hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:16]
    record_property("seed", seed)
    record_property("trace_sha256", digest)
    for n, (step, got) in enumerate(zip(steps, trace, strict=True)):
        if got != step.expect:
            pytest.fail(
                f"seed {seed}: operation {n} {step.op} gave {got}, 6.12 gives {step.expect} "
                f"(rerun with PTIMERS_SEED={seed})"
            )
