"""SIGEV_TIMER_ID and PR_TIMER_CREATE_RESTORE_IDS: creating a timer with a given ID.

Skipped on kernels without the interface (probed in the guest), so the
suite runs at every step of the series.
"""

from __future__ import annotations

import pytest

from conftest import (
    INT_MAX,
    PR_TIMER_CREATE_RESTORE_IDS,
    SI_TIMER,
    SIGALRM,
    SIGRTMIN,
    create,
    err,
    ids,
    ok,
)
from harness.helper import Helper, Op
from harness.procfs import parse

FLAG = {"flags": ["timer_id"]}
MS = 1_000_000
ON, OFF, GET = 1, 0, 2


def exact(want: int, **kw: object) -> Op:
    return create(id=want, **FLAG, **kw)


def prctl(arg2: int, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> Op:
    return {
        "op": "prctl",
        "option": PR_TIMER_CREATE_RESTORE_IDS,
        "arg2": arg2,
        "arg3": arg3,
        "arg4": arg4,
        "arg5": arg5,
    }


needs_flag = pytest.mark.needs("sigev_timer_id")


@needs_flag
@pytest.mark.parametrize("want", [0, 1, 4096, INT_MAX - 1, INT_MAX])
def test_exact_id(helper: Helper, want: int) -> None:
    res = helper.run(
        [
            exact(want),
            {"op": "gettime", "id": want},
            {"op": "settime", "id": want, "value_ns": 10_000 * MS},
            {"op": "delete", "id": want},
        ]
    )
    assert ok(res[0])["id"] == want
    for r in res[1:]:
        ok(r)


@needs_flag
def test_cursor_after_exact_creates(helper: Helper) -> None:
    res = helper.run(
        [
            exact(100),
            create(),  # cursor continues after the exact ID
            exact(50),
            create(),  # ... also when it goes backwards
            exact(INT_MAX),
            create(),
            create(),  # wraps to the lowest free ID
        ]
    )
    assert ids(res) == [100, 101, 50, 51, INT_MAX, 0, 1]


@needs_flag
def test_plain_create_wraps_from_a_nonzero_cursor(helper: Helper) -> None:
    """The wrap branch proper: the cursor is not 0 and every ID from it to
    INT_MAX is taken, so the search must start again at 0."""
    res = helper.run(
        [
            exact(INT_MAX),
            exact(INT_MAX - 1),  # cursor INT_MAX, taken
            create(),
            create(),
            exact(INT_MAX - 2),  # cursor INT_MAX - 1, taken up to INT_MAX
            create(),
        ]
    )
    assert ids(res) == [INT_MAX, INT_MAX - 1, 0, 1, INT_MAX - 2, 2]


@needs_flag
def test_exact_create_failing_after_the_store(helper: Helper) -> None:
    """signo 0 is rejected after the ID was stored (good_sigevent() runs
    after posix_timer_add() in 6.12): the slot is free again, the cursor
    stays after the requested ID, as after a successful exact create."""
    res = helper.run([exact(5, signo=0), create(), exact(5), {"op": "proc_timers"}])
    assert err(res[0]) == "EINVAL"
    assert ok(res[1])["id"] == 6
    assert ok(res[2])["id"] == 5
    assert sorted(t.id for t in parse(ok(res[3])["text"])) == [5, 6]


@needs_flag
@pytest.mark.needs("proc_timers")
def test_exact_create_whose_id_copy_out_faults(helper: Helper) -> None:
    """The ID variable is readable but not writable: the wanted ID is read,
    the timer stored, then copying the ID out faults.  EFAULT, no timer,
    the slot free again and the cursor after the wanted ID, as for any
    exact create that fails after the store."""
    res = helper.run(
        [exact(5, notify="none", ro_id_ptr=True), create(), exact(5), {"op": "proc_timers"}]
    )
    assert err(res[0]) == "EFAULT"
    assert ok(res[1])["id"] == 6
    assert ok(res[2])["id"] == 5
    assert sorted(t.id for t in parse(ok(res[3])["text"])) == [5, 6]


@needs_flag
def test_flagged_sigev_none_timer_sends_no_signal(helper: Helper) -> None:
    """The flag is stripped before it_sigev_notify is set: a SIGEV_NONE
    timer created with it expires silently.  Were SIGEV_NONE | 8 stored,
    the "== SIGEV_NONE" tests of the expiry path would send SIGALRM."""
    res = helper.run(
        [
            exact(3, notify="none"),
            {"op": "settime", "id": 3, "value_ns": MS, "interval_ns": MS},
            {"op": "wait_signal", "signo": SIGALRM, "timeout_ms": 300},
        ]
    )
    assert ok(res[0])["id"] == 3
    ok(res[1])
    assert err(res[2]) == "EAGAIN", f"a SIGEV_NONE timer sent a signal: {res[2]}"


@needs_flag
def test_busy_then_normal_create(helper: Helper) -> None:
    res = helper.run([create(), exact(5), exact(5), exact(0), create()])
    assert ids(res[:2]) == [0, 5]
    assert err(res[2]) == "EBUSY"
    assert err(res[3]) == "EBUSY"
    assert res[4]["id"] == 6, "a busy ID must not move the cursor"


@needs_flag
@pytest.mark.parametrize("want", [-1, -INT_MAX - 1])
def test_negative_id_then_normal_create(helper: Helper, want: int) -> None:
    res = helper.run([exact(want), create()])
    assert err(res[0]) == "EINVAL"
    assert res[1]["id"] == 0, "an invalid ID request must not consume an ID"


@needs_flag
def test_bad_id_pointer_then_normal_create(helper: Helper) -> None:
    res = helper.run([create(bad_id_ptr=True, **FLAG), create()])
    assert err(res[0]) == "EFAULT"
    assert res[1]["id"] == 0, "EFAULT reading the wanted ID must not consume an ID"


@needs_flag
@pytest.mark.parametrize("notify", ["signal", "none", "thread", "thread_id"])
def test_flag_with_every_notify_kind(
    helper: Helper, notify: str, features: dict[str, bool]
) -> None:
    res = helper.run(
        [{"op": "getpid"}, exact(1234, notify=notify, signo=SIGRTMIN), {"op": "proc_timers"}]
    )
    assert ok(res[1])["id"] == 1234
    if features["proc_timers"]:
        (timer,) = parse(res[2]["text"])
        expect = {"signal": "signal", "none": "none", "thread": "thread", "thread_id": "signal"}
        assert timer.id == 1234
        assert timer.notify == expect[notify], "the flag must not reach /proc"
        assert timer.target == ("tid" if notify == "thread_id" else "pid")
        assert timer.target_id == res[0]["tid"]


@needs_flag
@pytest.mark.parametrize("raw", [1 | 4, 2 | 4, 3, 16, 54321, INT_MAX])
def test_flag_with_invalid_notify(helper: Helper, raw: int) -> None:
    res = helper.run([create(notify_raw=raw | 8, id=7), create(), exact(7)])
    assert err(res[0]) == "EINVAL"
    # Rejected like the same type without the flag: after an ID was
    # allocated from the cursor (6.12's order), nothing stored at 7.
    assert ok(res[1])["id"] == 1
    assert ok(res[2])["id"] == 7


@needs_flag
@pytest.mark.parametrize("clock", ["process_cputime", "thread_cputime", "realtime", "boottime"])
def test_flag_with_clocks(helper: Helper, clock: str) -> None:
    res = helper.run(
        [
            exact(77, clock=clock, signo=SIGRTMIN, value=3),
            {"op": "settime", "id": 77, "value_ns": 10 * MS},
            {"op": "spin", "ms": 100},
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
        ]
    )
    assert ok(res[0])["id"] == 77
    sig = ok(res[3])
    assert (sig["timerid"], sig["value"], sig["code"]) == (77, 3, SI_TIMER)


@needs_flag
def test_signal_carries_restored_id(helper: Helper) -> None:
    res = helper.run(
        [
            exact(0x7FFF0000, signo=SIGRTMIN, value=11),
            {"op": "settime", "id": 0x7FFF0000, "value_ns": 5 * MS},
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
        ]
    )
    sig = ok(res[2])
    assert (sig["timerid"], sig["value"], sig["code"]) == (0x7FFF0000, 11, SI_TIMER)


@needs_flag
def test_sparse_restore_one_create_per_timer(helper: Helper, features: dict[str, bool]) -> None:
    wanted = [1, 5, 100, 1000, 4096, 10000, 20000, INT_MAX - 1]
    res = helper.run(
        [
            {"op": "criu_restore", "ids": wanted, "mode": "flag", "signo": SIGRTMIN},
            {"op": "proc_timers"},
            create(),
        ]
    )
    restore = ok(res[0])
    assert restore["restored"] == len(wanted)
    assert restore["syscalls"] == len(wanted), "one timer_create per timer"
    if features["proc_timers"]:  # CONFIG_CHECKPOINT_RESTORE
        assert sorted(t.id for t in parse(ok(res[1])["text"])) == wanted
    assert res[2]["id"] == INT_MAX, "the cursor continues after the last restored ID"


@needs_flag
def test_racing_creates_of_one_id(helper: Helper) -> None:
    threads = 4
    for want in (3, 4096):
        res = helper.run(
            [{"op": "threads", "scripts": [[exact(want)]] * threads}, {"op": "proc_timers"}]
        )
        outcomes = [script[0] for script in res[0]["results"]]
        winners = [r for r in outcomes if r["ret"] == 0]
        assert [r["id"] for r in winners] == [want], outcomes
        assert sorted(r.get("errno", "") for r in outcomes if r["ret"] != 0) == ["EBUSY"] * (
            threads - 1
        )
        # The losers left nothing behind: one timer, under the wanted ID
        assert [t.id for t in parse(ok(res[1])["text"])] == [want]


@needs_flag
@pytest.mark.needs("ia32_emulation")
def test_compat_syscall(helper: Helper, compat_helper: Helper) -> None:
    res = compat_helper.run(
        [
            exact(INT_MAX),
            exact(INT_MAX),
            exact(-1),
            create(),
            create(bad_id_ptr=True, **FLAG),
            create(),
        ]
    )
    assert ok(res[0])["id"] == INT_MAX
    assert err(res[1]) == "EBUSY"
    assert err(res[2]) == "EINVAL"
    assert res[3]["id"] == 0
    assert err(res[4]) == "EFAULT"
    assert res[5]["id"] == 1


@pytest.mark.needs("prctl_restore_ids")
class TestPrctl:
    """Upstream's PR_TIMER_CREATE_RESTORE_IDS, same semantics."""

    def test_upstream_check(self, helper: Helper) -> None:
        res = helper.run([prctl(ON), create(id=8), prctl(OFF), create(id=8)])
        ok(res[0])
        assert res[1]["id"] == 8
        ok(res[2])
        assert res[3]["id"] == 9

    def test_get_on_off(self, helper: Helper) -> None:
        res = helper.run([prctl(GET), prctl(ON), prctl(GET), prctl(OFF), prctl(GET)])
        assert [r["ret"] for r in res] == [0, 0, 1, 0, 0]

    @pytest.mark.parametrize(("args"), [(3,), (-1,), (ON, 1), (ON, 0, 1), (ON, 0, 0, 1), (GET, 1)])
    def test_invalid_arguments(self, helper: Helper, args: tuple[int, ...]) -> None:
        assert err(helper.one(prctl(*args))) == "EINVAL"

    def test_mode_reads_id_also_without_sigevent(self, helper: Helper) -> None:
        res = helper.run(
            [
                prctl(ON),
                create(id=20, notify="null"),
                create(id=20),
                create(id=-1),
                create(bad_id_ptr=True),
                prctl(OFF),
                create(),
            ]
        )
        assert res[1]["id"] == 20
        assert err(res[2]) == "EBUSY"
        assert err(res[3]) == "EINVAL"
        assert err(res[4]) == "EFAULT"
        assert res[6]["id"] == 21

    def test_mode_is_per_process_off_in_child_cleared_by_exec(self, helper: Helper) -> None:
        res = helper.run(
            [
                prctl(ON),
                {"op": "threads", "scripts": [[prctl(GET)]]},
                {"op": "fork", "script": [prctl(GET), create(id=500)]},
                prctl(GET),
                {"op": "exec", "script": [prctl(GET), create(id=500)]},
            ],
            expect=7,
        )
        assert res[1]["results"][0][0]["ret"] == 1, "threads share the mode"
        child = res[2]["results"]
        assert child[0]["ret"] == 0, "a forked child starts with the mode off"
        assert child[1]["id"] == 0
        assert res[3]["ret"] == 1
        assert res[5]["ret"] == 0, "exec clears the mode"
        assert res[6]["id"] == 0

    def test_exec_with_timers_clears_the_mode(self, helper: Helper) -> None:
        """exec() ends the mode also when it has timers to tear down."""
        res = helper.run(
            [prctl(ON), create(id=7), {"op": "exec", "script": [prctl(GET), create()]}],
            expect=5,
        )
        assert ok(res[1])["id"] == 7
        assert res[3]["ret"] == 0, "exec clears the mode"
        assert ok(res[4])["id"] == 8, "exec keeps the cursor"

    @needs_flag
    def test_mode_and_flag_together(self, helper: Helper) -> None:
        """The series accepts the flag in the mode (upstream has no flag):
        one exact create, the flag stripped before it reaches /proc."""
        res = helper.run(
            [prctl(ON), exact(40, notify="none"), prctl(OFF), {"op": "proc_timers"}, create()]
        )
        assert ok(res[1])["id"] == 40
        (timer,) = parse(ok(res[3])["text"])
        assert (timer.id, timer.notify) == (40, "none")
        assert ok(res[4])["id"] == 41

    def test_criu_42_restore(self, helper: Helper) -> None:
        wanted = [0, 3, 999, 65536]
        res = helper.run(
            [{"op": "criu_restore", "ids": wanted, "mode": "prctl"}, prctl(GET), create()]
        )
        assert ok(res[0])["syscalls"] == len(wanted)
        assert res[1]["ret"] == 0
        assert res[2]["id"] == 65537
