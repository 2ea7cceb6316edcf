"""A signal queued by a deleted timer, and a new timer with the same ID.

On 6.12 (and this series, which keeps 6.12's signal code) a timer signal
that is already queued survives timer_delete(): it is delivered later with
the old timer's si_timerid and si_value.  When the ID is reused -- after
the cursor wraps on any 6.12 kernel, or at once with an exact create --
the receiver sees the old signal carrying the new timer's ID.  Upstream
fixed this with the 6.13 signal rework; backporting it is out of scope.
CRIU restores into fresh processes, which have no queued timer signals.

This test pins the behaviour: the stale signal is recognisable by its
si_value, so applications that reuse IDs must use distinct sigev_values
(the same advice glibc bug 32833 gives for timer_delete()/timer_create()).
"""

from __future__ import annotations

import pytest

from conftest import PR_TIMER_CREATE_RESTORE_IDS, SIGRTMIN, create, err, ok
from harness.helper import Helper

MS = 1_000_000


def kernel_version(helper: Helper) -> tuple[int, int]:
    release = helper.guest.run("uname -r", check=True).stdout.strip()
    major, minor = release.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()))


@pytest.mark.parametrize("method", ["flag", "prctl"])
def test_stale_signal_after_exact_reuse(
    helper: Helper, features: dict[str, bool], method: str
) -> None:
    """The ID is reused at once by an exact create (the flag, or the prctl
    where upstream has only that); which signal the receiver sees then
    depends on the signal code, not on the series: pinned per version."""
    feature = "sigev_timer_id" if method == "flag" else "prctl_restore_ids"
    if not features[feature]:
        pytest.skip(f"the kernel lacks {feature}")
    again = (
        [create(id=0, flags=["timer_id"], signo=SIGRTMIN, value=222)]
        if method == "flag"
        else [
            {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": 1},
            create(id=0, signo=SIGRTMIN, value=222),
            {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg2": 0},
        ]
    )
    ops = [
        create(signo=SIGRTMIN, value=111),
        {"op": "settime", "id": 0, "value_ns": 1 * MS},
        {"op": "sleep", "ms": 50},  # the signal is queued now
        {"op": "delete", "id": 0},
        *again,
        {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 200},
        {"op": "settime", "id": 0, "value_ns": 1 * MS},
        {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
    ]
    res = helper.run(ops)
    n = 4 + len(again)
    made = next(r for r in res[4:n] if r["op"] == "create")
    assert ok(made)["id"] == 0
    first, second = res[n], ok(res[n + 2])
    # The new timer's own expiry carries its own value.
    assert (second["timerid"], second["value"]) == (0, 222)
    if kernel_version(helper) >= (6, 13):
        # 6.13's signal rework drops a deleted timer's queued signal.
        assert err(first) == "EAGAIN", f"a stale signal arrived: {first}"
    else:
        # 6.12 (and the series, which keeps its signal code): the old signal
        # arrives with the reused ID but the old timer's value.
        assert (ok(first)["timerid"], first["value"]) == (0, 111)
