"""Model-based sequences: random interleavings of timer operations, shrunk.

Hypothesis' stateful testing generates sequences of operations (plain,
exact and failing creates, deletes, the prctl mode, fork, exec, threads,
/proc and lookups), :class:`harness.idmodel.IdModel` says what 6.12's rules
answer at each step, and the sequence runs in one fresh helper process in
the guest; the first step that differs fails the example, and Hypothesis
shrinks it to a short reproducer printed as ready-to-paste helper input.

The features of the kernel under test decide which rules exist, so the
same test runs on unpatched 6.12, every step of the series and upstream.
The bugs the review found in the series' first version lived in exactly
such interleavings (a timer in two slots after exact creates and a delete).

Budget: ``--model-examples`` (default 40) examples of up to
``--model-steps`` (default 40) steps, derandomized: the same kernel gives
the same examples in every run.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    rule,
    run_state_machine_as_test,
)

from conftest import INT_MAX, PR_TIMER_CREATE_RESTORE_IDS
from harness.errors import HarnessError
from harness.helper import Helper, HelperError, Op
from harness.idmodel import IdModel, Outcome, expectation, outcome
from harness.procfs import parse

# IDs where the interesting branches are: the array's head (0), the first
# ID of each level (64, 4096, 2^18, 2^24, 2^30) and its neighbours, the
# wrap at INT_MAX, and invalid ones.
EDGE_IDS = [
    *(0, 1, 2, 3, 5, 63, 64, 65, 4095, 4096, 2**18, 2**24, 2**30),
    *(INT_MAX - 2, INT_MAX - 1, INT_MAX),
]
# Mostly IDs around the cursor of a short sequence, where exact and plain
# creates meet; the rest at the edges.
TINY = st.integers(0, 3)
IDS = st.one_of(st.sampled_from(EDGE_IDS), st.sampled_from([-1, -(2**31)]))
FLAG = {"flags": ["timer_id"]}
NONE = {"notify": "none"}


class Script:
    """The helper input being built: ops, nested into exec scripts after an exec."""

    def __init__(self) -> None:
        self.top: list[Op] = [{"op": "rlimit", "resource": "sigpending", "value": 1 << 20}]
        self.current = self.top
        self.expected: list[tuple[Op, Outcome]] = []

    def add(self, op: Op, expect: Outcome) -> None:
        if op["op"] == "create":
            # The helper counts /proc/self/timers around every create: a
            # timer in two slots is the create's failure, at that step.
            op["verify"] = True
        self.current.append(op)
        self.expected.append((op, expect))

    def add_exec(self) -> None:
        op: Op = {"op": "exec", "script": []}
        self.add(op, ("ok",))
        self.current = op["script"]


def until(ops: list[Op], last: Op) -> list[Op]:
    """``ops`` up to and including ``last`` (also inside exec scripts): the
    reproducer, without what ran after the first wrong answer."""
    out: list[Op] = []
    for op in ops:
        if op is last:
            out.append(op)
            return out
        if op["op"] == "exec":
            inner = until(op["script"], last)
            out.append({**op, "script": inner})
            if inner and inner[-1] is last:
                return out
            continue
        out.append(op)
    return out


def observed(res: Op) -> Outcome:
    if "confirm_error" in res:
        # The create succeeded but its timer is not (only) where it says
        return ("unconfirmed", res["confirm_error"])
    if "skipped" in res:
        return ("skipped",)
    if res.get("op") == "fork":
        # The child's own creates: confirmed, and the child exited cleanly
        bad = [r["confirm_error"] for r in res.get("results", []) if "confirm_error" in r]
        if bad or res.get("status") or res.get("signal"):
            return ("child_failed", res.get("status"), res.get("signal"), bad)
    if res.get("op") == "proc_timers" and res.get("ret") == 0:
        return ("listing", sorted(t.id for t in parse(res["text"])))
    return outcome(res)


class GuestLost(BaseException):
    """The guest died mid-example.  A BaseException, so that Hypothesis does
    not take it for a failing example and shrink on a dead guest."""


class TimerIds(RuleBasedStateMachine):
    """One example: one process, a sequence of operations, checked at the end."""

    helper: ClassVar[Helper]
    features: ClassVar[dict[str, bool]]
    # Set at the first wrong answer: the kernel is broken, and while
    # Hypothesis shrinks, even an example that matches the model may leave
    # a corrupted array whose exit takes the guest down (seen on the
    # series' first version), so no process is released any more.
    kernel_failed: ClassVar[bool] = False
    # The shortest failing example so far (steps, message): what is reported
    # if the guest dies before Hypothesis has finished shrinking
    shortest: ClassVar[tuple[int, str] | None] = None
    shortest_ops: ClassVar[list[Op]] = []
    # Examples run in the guest (generation and shrinking), for the rate
    examples_run: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.model = IdModel()
        self.script = Script()
        self.deleted: list[int] = []

    # Three rules, so that creates and deletes, where the ID rules live,
    # make up two thirds of the steps; each draws its variant.

    def wanted(self, data: st.DataObject) -> int:
        """An ID for an exact create.  Mostly where exact creates, plain
        creates at the cursor and deletes meet: just below a live timer
        (which puts the cursor on it) or in a tiny ID space; else next to
        the cursor (which can be anywhere after an exact create), or an
        edge (node boundaries, INT_MAX for the wrap) or an invalid ID."""
        c = self.model.cursor
        live = self.model.live
        # A free ID just below a live timer: the cursor then points at it
        gaps = sorted(x - 1 for x in live if x > 0 and x - 1 not in live)
        choices = ["gap"] * 3 * bool(gaps) + ["tiny"] * 2 + ["cursor", "edge"]
        which = data.draw(st.sampled_from(choices), label="near")
        if which == "gap":
            return data.draw(st.sampled_from(gaps), label="want")
        if which == "tiny":
            return data.draw(TINY, label="want")
        if which == "cursor":
            near = [c, (c + 1) & INT_MAX, max(c - 1, 0)]  # the cursor may be INT_MAX
            return data.draw(st.sampled_from(near), label="want")
        return data.draw(IDS, label="want")

    @rule(data=st.data())
    def create_(self, data: st.DataObject) -> None:
        """A second rule for creates: half of all steps create something."""
        self.create(data)

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        kinds = (
            ["exact"] * 3 + ["exact_bad_pointer", "exact_failing_late"]
            if self.exact_possible()
            else []
        )
        if not self.model.restore_mode:
            kinds += ["plain"] * 3 + ["failing_late"]
        kinds += ["failing_early"]
        kind = data.draw(st.sampled_from(kinds), label="create")
        if kind == "plain":
            self.script.add({"op": "create", **NONE}, self.model.plain_create())
        elif kind == "exact":
            want = self.wanted(data)
            op: Op = {"op": "create", "id": want, **NONE}
            if not self.model.restore_mode:
                op.update(FLAG)
            self.script.add(op, self.model.exact_create(want))
        elif kind == "exact_bad_pointer":
            # The wanted ID cannot be read: EFAULT before anything is allocated
            op = {"op": "create", "bad_id_ptr": True, **NONE}
            if not self.model.restore_mode:
                op.update(FLAG)
            self.script.add(op, self.model.create_failing_early("EFAULT"))
        elif kind == "exact_failing_late":
            # The timer is stored at the wanted ID, then the create fails:
            # the ID copy-out faults (read-only variable), or, in the
            # restore mode, the notify type is invalid.  No timer; the
            # cursor continues after the wanted ID.
            want = self.wanted(data)
            late = ["ro_id_ptr", "signo0"] + ["notify"] * self.model.restore_mode
            which = data.draw(st.sampled_from(late), label="late")
            op = {"op": "create", "id": want}
            if which == "ro_id_ptr":
                op.update(NONE, ro_id_ptr=True)
            elif which == "signo0":
                op["signo"] = 0  # good_sigevent() runs after the store
            else:
                op["notify_raw"] = 3
            if not self.model.restore_mode:
                op.update(FLAG)
            errno = "EFAULT" if which == "ro_id_ptr" else "EINVAL"
            self.script.add(op, self.model.exact_create_failing_late(want, errno))
        elif kind == "failing_late":
            # Rejected after the ID was allocated: consumes it (6.12's rule)
            how = data.draw(
                st.sampled_from(["notify", "notify_flag", "id_ptr", "tid", "signo0", "ro_id_ptr"])
            )
            op = {"op": "create"}
            if how == "notify":
                op["notify_raw"] = 3
            elif how == "notify_flag":
                op["notify_raw"] = 3 | 8  # the flag with an invalid type: as without it
            elif how == "id_ptr":
                op.update(NONE, bad_id_ptr=True)
            elif how == "ro_id_ptr":
                op.update(NONE, ro_id_ptr=True)
            elif how == "signo0":
                op["signo"] = 0
            else:
                op.update(notify="thread_id", tid=1)
            errno = "EFAULT" if how in ("id_ptr", "ro_id_ptr") else "EINVAL"
            self.script.add(op, self.model.create_failing_late(errno))
        else:
            how = data.draw(st.sampled_from(["clock", "sev_ptr"]))
            op = (
                {"op": "create", "clock": 12345}
                if how == "clock"
                else {
                    "op": "create",
                    "bad_sev_ptr": True,
                }
            )
            errno = "EINVAL" if how == "clock" else "EFAULT"
            self.script.add(op, self.model.create_failing_early(errno))

    def exact_possible(self) -> bool:
        if self.model.restore_mode:
            return True
        return self.features["sigev_timer_id"]

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        """Mostly the live timer at the cursor (after an exact create below
        it: the slot the next plain create must take), else any live timer,
        sometimes an ID that is not one."""
        live = sorted(self.model.live)
        c = self.model.cursor
        choices = ["cursor"] * 6 * (c in self.model.live) + ["live"] * bool(live)
        which = data.draw(st.sampled_from([*choices, "any"]), label="which")
        if which == "cursor":
            tid = c
        elif which == "live":
            tid = data.draw(st.sampled_from(live), label="id")
        else:
            tid = data.draw(IDS, label="id")
        if tid in self.model.live:
            self.deleted.append(tid)
        self.script.add({"op": "delete", "id": tid}, self.model.delete(tid))

    @rule(data=st.data())
    def other(self, data: st.DataObject) -> None:
        kinds = ["observe", "fork", "exec"]
        if not self.model.restore_mode:
            kinds.append("threads")
        if self.features["prctl_restore_ids"]:
            kinds += ["prctl_on", "prctl_off", "prctl_get"]
        kind = data.draw(st.sampled_from(kinds), label="other")
        if kind == "observe":
            self.observe()
        elif kind == "threads":
            per_thread = data.draw(st.integers(1, 4))
            script = [{"op": "create", **NONE}] * per_thread
            self.script.add(
                {"op": "threads", "scripts": [script, script]}, self.model.threads(per_thread)
            )
            # Creates in threads are not counted against /proc (the others
            # run concurrently): look at once, and the helper stops on an
            # ID listed twice before anything touches the array again.
            self.script.add({"op": "proc_timers"}, self.model.listing())
        elif kind == "fork":
            creates = data.draw(st.integers(1, 3))
            op: Op = {"op": "fork", "script": [{"op": "create", **NONE}] * creates}
            self.script.add(op, self.model.forked_child(creates))
        elif kind == "exec":
            # exec tears the timers down: a corrupted array must be seen
            # (and the helper stop) before, not crash the guest during it
            self.observe()
            self.script.add_exec()
            self.model.exec()
            # The new image's first look: no timers.
            self.script.add({"op": "proc_timers"}, self.model.listing())
        elif kind == "prctl_get":
            op = {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": 2}
            self.script.add(op, self.model.get_mode())
        else:
            on = kind == "prctl_on"
            op = {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": int(on)}
            self.script.add(op, self.model.set_mode(on))

    def observe(self) -> None:
        """/proc lists each live timer once; live IDs answer, deleted ones do not."""
        self.script.add({"op": "proc_timers"}, self.model.listing())
        for tid in sorted(self.model.live | set(self.deleted[-3:])):
            self.script.add({"op": "gettime", "id": tid}, self.model.lookup(tid))

    # -- the check -----------------------------------------------------

    def teardown(self) -> None:
        self.observe()
        self.script.current.append({"op": "hold"})
        ops = self.script.top
        want = len(self.script.expected) + 1  # + the rlimit
        # Held: on a kernel that corrupted its timer array the exit could
        # take the guest down, and with it the shrinking of this example.
        TimerIds.examples_run += 1
        try:
            res, pid = self.helper.run_held(ops, expect=want, timeout=300, check=False)
        except HelperError:
            raise  # the script is wrong: this test's bug, shrunk like any failure
        except HarnessError as exc:
            # The guest died or stopped answering: shrinking cannot go on
            # (every later example would fail the same way), so fail now,
            # past Hypothesis, with the sequence that did it.
            lines = "\n".join(json.dumps(o) for o in ops)
            raise GuestLost(
                f"the guest failed during an example ({exc.message}); its sequence:\n"
                f"printf '%s\\n' {shlex.quote(lines)} | vmtests/helper/ptimerctl"
            ) from exc
        for n, ((op, expect), got) in enumerate(zip(self.script.expected, res[1:], strict=True)):
            seen = observed(got)
            if seen != expect:
                # Not released: the exit of a broken kernel's process is not run
                TimerIds.kernel_failed = True
                lines = "\n".join(json.dumps(o) for o in until(ops, op))
                message = (
                    f"step {n}: {json.dumps(op)} gave {seen}, the model says {expect}\n"
                    f"reproducer (ptimerctl input, one process):\n"
                    f"printf '%s\\n' {shlex.quote(lines)} | vmtests/helper/ptimerctl"
                )
                if TimerIds.shortest is None or n < TimerIds.shortest[0]:
                    TimerIds.shortest = (n, message)
                    TimerIds.shortest_ops = until(ops, op)
                raise AssertionError(message)
        if TimerIds.kernel_failed:
            return
        try:
            self.helper.release(pid)
        except HarnessError as exc:
            lines = "\n".join(json.dumps(o) for o in ops)
            raise GuestLost(
                f"the guest failed at the exit of an example that matched the model "
                f"({exc.message}); its sequence:\n"
                f"printf '%s\\n' {shlex.quote(lines)} | vmtests/helper/ptimerctl"
            ) from exc


def linear(ops: list[Op]) -> list[Op]:
    """The ops of a script, exec scripts flattened (an exec marks the new image)."""
    out: list[Op] = []
    for op in ops:
        if op["op"] == "exec":
            out.append({"op": "exec", "script": []})
            out.extend(linear(op["script"]))
        elif op["op"] != "hold":
            out.append(op)
    return out


def nested(flat: list[Op]) -> list[Op]:
    """The inverse of :func:`linear`, with a final hold in the last image."""
    top: list[Op] = []
    current = top
    for op in flat:
        if op["op"] == "exec":
            ex: Op = {"op": "exec", "script": []}
            current.append(ex)
            current = ex["script"]
        else:
            current.append(op)
    current.append({"op": "hold"})
    return top


def first_wrong(helper: Helper, flat: list[Op]) -> tuple[int, str] | None:
    """Run a flattened sequence; the index and text of its first wrong
    answer, or None if the kernel answered as the model says (or the
    sequence is not one the model covers)."""
    model = IdModel()
    try:
        expected = [expectation(model, op) for op in flat[1:]]  # [0] is the rlimit
    except (AssertionError, ValueError):
        return None
    res, _ = helper.run_held(nested(flat), expect=len(flat), timeout=300, check=False)
    for n, (op, want, got) in enumerate(zip(flat[1:], expected, res[1:], strict=True)):
        seen = observed(got)
        if seen != want:
            return n + 1, f"{json.dumps(op)} gave {seen}, the model says {want}"
    return None


def reduce(helper: Helper, flat: list[Op], budget: int = 120) -> tuple[list[Op], str]:
    """Cut a failing sequence down op by op, from the end, while it still
    fails (Hypothesis' own shrinking is weak here: every draw depends on
    the model's state, so removing one step reinterprets all later ones).

    Each try is one helper run in the guest; none is released.
    """
    found = first_wrong(helper, flat)
    assert found is not None, "the sequence to reduce does not fail"
    flat = flat[: found[0] + 1]
    why = found[1]
    changed = True
    try:
        while changed and budget > 0:
            changed = False
            for i in range(len(flat) - 1, 0, -1):
                if budget <= 0 or i >= len(flat):
                    continue
                budget -= 1
                candidate = flat[:i] + flat[i + 1 :]
                hit = first_wrong(helper, candidate)
                if hit is not None:
                    flat, why, changed = candidate[: hit[0] + 1], hit[1], True
    except HarnessError as exc:
        # A broken kernel took the guest down: the shortest sequence so far
        why += f" (reduction stopped, the guest failed: {exc.message.splitlines()[0][:120]})"
    return flat, why


def reduction(helper: Helper, ops: list[Op], reduced: list[Op]) -> str:
    """The failure's sequence cut down (see :func:`reduce`), as text to
    append to the failure; fills ``reduced``."""
    if not ops:
        return ""
    try:
        flat, why = reduce(helper, linear(ops))
    except (HarnessError, AssertionError) as exc:
        return f"\n\n(no reduction: {exc})"
    reduced[:] = flat
    lines = "\n".join(json.dumps(o) for o in nested(flat))
    return (
        f"\n\nreduced to {len(flat) - 1} steps after the rlimit: {why}\n"
        f"printf '%s\\n' {shlex.quote(lines)} | vmtests/helper/ptimerctl"
    )


def test_timer_id_sequences_match_the_model(
    helper: Helper, features: dict[str, bool], request: pytest.FixtureRequest
) -> None:
    TimerIds.helper = helper
    TimerIds.features = features
    TimerIds.kernel_failed = False
    TimerIds.shortest = None
    TimerIds.shortest_ops = []
    TimerIds.examples_run = 0
    examples = int(request.config.getoption("--model-examples"))
    steps = int(request.config.getoption("--model-steps"))
    out = Path(request.config.getoption("--results-dir"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    failure = ""
    reduced: list[Op] = []
    try:
        try:
            run(examples, steps)
        except GuestLost as exc:
            failure = str(exc)
            if TimerIds.shortest is None:
                pytest.fail(failure)
            # Hypothesis had found a failure and was shrinking it: go on
            # from the shortest failing example it had reached
            failure = (
                f"{TimerIds.shortest[1]}\n\n(Hypothesis' shrinking stopped when the guest "
                f"failed: {failure.splitlines()[0]})"
            )
        except Exception as exc:
            # Hypothesis raises the shrunk example's error, or a group of
            # them when it found distinct ones
            parts = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            failure = "\n\n".join(str(e) for e in parts)
        if failure:
            failure += reduction(helper, TimerIds.shortest_ops, reduced)
            pytest.fail(failure, pytrace=False)
    finally:
        # What the README quotes: the rate, and a failure as printed
        seconds = time.monotonic() - start
        stats = {
            "reduced_steps": len(reduced) - 1 if reduced else None,
            "budget_examples": examples,
            "budget_steps": steps,
            "examples_run": TimerIds.examples_run,
            "seconds": round(seconds, 1),
            "examples_per_minute": round(60 * TimerIds.examples_run / seconds, 1),
            "failed": bool(failure) or TimerIds.kernel_failed,
            "failure": failure,
        }
        (out / "model.json").write_text(json.dumps(stats, indent=1) + "\n")


def run(examples: int, steps: int) -> None:
    """The state machine under the test's budget, derandomized."""
    run_state_machine_as_test(
        TimerIds,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=True,
            database=None,
            # No shrinking: on a broken kernel every replay risks the guest
            # (the first version's corrupted arrays crashed it mid-shrink),
            # and reduce() cuts the failing sequence down better, op by op.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
