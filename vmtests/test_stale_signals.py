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

from conftest import SIGRTMIN, create, ok
from harness.helper import Helper

MS = 1_000_000


@pytest.mark.needs("sigev_timer_id")
def test_stale_signal_after_exact_reuse(helper: Helper, features: dict[str, bool]) -> None:
    res = helper.run(
        [
            create(signo=SIGRTMIN, value=111),
            {"op": "settime", "id": 0, "value_ns": 1 * MS},
            {"op": "sleep", "ms": 50},  # the signal is queued now
            {"op": "delete", "id": 0},
            create(id=0, flags=["timer_id"], signo=SIGRTMIN, value=222),
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 200},
            {"op": "settime", "id": 0, "value_ns": 1 * MS},
            {"op": "wait_signal", "signo": SIGRTMIN, "timeout_ms": 5000},
        ]
    )
    assert ok(res[4])["id"] == 0
    first, second = res[5], ok(res[7])
    # The new timer's own expiry carries its own value.
    assert (second["timerid"], second["value"]) == (0, 222)
    if first["ret"] == -1:
        # A kernel that flushes queued timer signals on delete (6.13+ behaviour).
        assert first["errno"] == "EAGAIN"
    else:
        # 6.12 behaviour, pinned: the old signal arrives with the reused ID
        # but the old timer's value.
        assert (first["timerid"], first["value"]) == (0, 111)
