"""An executable specification of the POSIX timer ID ABI, for model-based tests.

The rules are 6.12's (``kernel/time/posix-timers.c``), which the series must
keep, plus the exact-ID interfaces (``SIGEV_TIMER_ID`` and upstream's
``PR_TIMER_CREATE_RESTORE_IDS``).  Each method applies one operation to the
model and returns what the kernel must answer, in the shape
:func:`outcome` gives a helper result, so a test can compare step by step.

Why a model and not a recorded trace: the same model serves unpatched 6.12,
every step of the series and upstream (the operations a kernel lacks are
simply not generated), and a failing sequence can be shrunk, which a
recorded trace cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INT_MAX = 2**31 - 1

Outcome = tuple[Any, ...]


@dataclass
class IdModel:
    """One process: its ID cursor, its live timers and its restore mode."""

    cursor: int = 0
    live: set[int] = field(default_factory=set)
    restore_mode: bool = False

    def _alloc(self) -> int | None:
        """6.12: the lowest free ID at or above the cursor, else from 0."""
        if len(self.live) > INT_MAX:
            return None
        tid = self.cursor
        while tid in self.live:
            tid = (tid + 1) & INT_MAX
        self.cursor = (tid + 1) & INT_MAX
        return tid

    def plain_create(self) -> Outcome:
        """timer_create() that succeeds, with the mode off."""
        assert not self.restore_mode
        tid = self._alloc()
        if tid is None:
            return ("errno", "EAGAIN")
        self.live.add(tid)
        return ("id", tid)

    def create_failing_late(self, errno: str) -> Outcome:
        """A create rejected after the ID was allocated: the ID is consumed.

        6.12 allocates the ID before it validates the sigevent
        (good_sigevent()) and before it copies the ID out, so an invalid
        notify type (EINVAL) or an unwritable ID pointer (EFAULT) moves
        the cursor although no timer is created.
        """
        assert not self.restore_mode
        self._alloc()
        return ("errno", errno)

    def create_failing_early(self, errno: str) -> Outcome:
        """A create rejected before allocation (unknown clock, bad sigevent pointer)."""
        return ("errno", errno)

    def exact_create(self, want: int) -> Outcome:
        """SIGEV_TIMER_ID, or a create in PR_TIMER_CREATE_RESTORE_IDS mode.

        A negative ID is EINVAL and a taken one EBUSY, neither consuming
        anything; otherwise the timer gets that ID and the cursor continues
        after it.
        """
        if want < 0:
            return ("errno", "EINVAL")
        if want in self.live:
            return ("errno", "EBUSY")
        self.live.add(want)
        self.cursor = (want + 1) & INT_MAX
        return ("id", want)

    def exact_create_failing_late(self, want: int, errno: str) -> Outcome:
        """An exact create rejected after the timer was stored at ``want``.

        The ID is read and the timer stored before the sigevent is validated
        (in the restore mode an invalid notify type reaches that point) and
        before the ID is copied out (a read-only ID variable): EINVAL or
        EFAULT then, no timer, and the cursor continues after ``want`` as
        after a successful exact create.  A negative or taken ID fails
        first, consuming nothing.
        """
        if want < 0:
            return ("errno", "EINVAL")
        if want in self.live:
            return ("errno", "EBUSY")
        self.cursor = (want + 1) & INT_MAX
        return ("errno", errno)

    def delete(self, tid: int) -> Outcome:
        if tid in self.live:
            self.live.discard(tid)
            return ("ok",)
        return ("errno", "EINVAL")

    def lookup(self, tid: int) -> Outcome:
        """timer_gettime() and friends: only live IDs answer."""
        return ("ok",) if tid in self.live else ("errno", "EINVAL")

    def set_mode(self, on: bool) -> Outcome:
        self.restore_mode = on
        return ("ret", 0)

    def get_mode(self) -> Outcome:
        return ("ret", int(self.restore_mode))

    def listing(self) -> Outcome:
        """/proc/<pid>/timers: every live timer exactly once (order aside)."""
        return ("listing", sorted(self.live))

    def exec(self) -> Outcome:
        """exec: timers gone, cursor kept (same signal_struct), mode off."""
        self.live.clear()
        self.restore_mode = False
        return ("ok",)

    @staticmethod
    def forked_child(creates: int) -> Outcome:
        """A forked child starts with no timers and the cursor at 0."""
        return ("fork", list(range(creates)))

    def threads(self, per_thread: int, threads: int = 2) -> Outcome:
        """Plain creates from several threads: which thread gets which ID is
        open, the set of IDs is not."""
        got = set()
        for _ in range(per_thread * threads):
            tid = self._alloc()
            assert tid is not None
            self.live.add(tid)
            got.add(tid)
        return ("threads", sorted(got))


def outcome(res: dict[str, Any]) -> Outcome:
    """The comparable outcome of one helper result, shaped like IdModel's."""
    op = res.get("op")
    if op == "fork":
        return ("fork", [r.get("id") for r in res["results"]])
    if op == "threads":
        return (
            "threads",
            sorted(r["id"] for script in res["results"] for r in script if r["ret"] == 0),
        )
    if res.get("ret") == -1:
        return ("errno", res["errno"])
    if op == "create":
        return ("id", res["id"])
    if op == "prctl":
        return ("ret", res["ret"])
    return ("ok",)


def expectation(model: IdModel, op: dict[str, Any]) -> Outcome:
    """What ``model`` says about one helper op of the kinds the model test
    generates, applying it to the model.

    The test builds its expectations rule by rule; this reads them back from
    the ops alone, so that a failing sequence can be cut down op by op (a
    removed op changes what every later one must answer).
    """
    kind = op["op"]
    if kind == "create":
        flagged = "timer_id" in op.get("flags", [])
        exact = flagged or model.restore_mode
        if op.get("bad_sev_ptr"):
            return model.create_failing_early("EFAULT")
        if "clock" in op:
            return model.create_failing_early("EINVAL")
        if op.get("bad_id_ptr"):
            if exact:
                return model.create_failing_early("EFAULT")
            return model.create_failing_late("EFAULT")
        # Rejected after the ID was allocated: an invalid notify type
        # (with it the flag is not taken for a flag), signal 0 or a
        # read-only ID variable (the copy-out faults).
        invalid_notify = "notify_raw" in op or op.get("tid") == 1
        late = invalid_notify or op.get("signo") == 0 or op.get("ro_id_ptr")
        errno = "EFAULT" if op.get("ro_id_ptr") else "EINVAL"
        if late and (model.restore_mode or (flagged and not invalid_notify)):
            return model.exact_create_failing_late(int(op["id"]), errno)
        if late:
            return model.create_failing_late(errno)
        if exact:
            return model.exact_create(int(op["id"]))
        return model.plain_create()
    if kind == "delete":
        return model.delete(int(op["id"]))
    if kind == "gettime":
        return model.lookup(int(op["id"]))
    if kind == "proc_timers":
        return model.listing()
    if kind == "prctl":
        return model.get_mode() if op["arg2"] == 2 else model.set_mode(bool(op["arg2"]))
    if kind == "fork":
        return model.forked_child(len(op["script"]))
    if kind == "threads":
        return model.threads(len(op["scripts"][0]), len(op["scripts"]))
    if kind == "exec":
        return model.exec()
    raise ValueError(f"no model rule for op {kind!r}")
