"""The error matrix of timer_create and the ID-taking syscalls."""

from __future__ import annotations

import pytest

from conftest import INT_MAX, SIGEV_SIGNAL, create, err, ok
from harness.helper import Helper


@pytest.mark.parametrize(
    ("kw", "errno"),
    [
        ({"clock": 12345}, "EINVAL"),
        ({"clock": -12345678}, "EINVAL"),
        ({"clock": "monotonic_raw"}, "EOPNOTSUPP"),
        ({"notify_raw": SIGEV_SIGNAL | 54321}, "EINVAL"),
        ({"notify_raw": INT_MAX}, "EINVAL"),
        ({"notify_raw": -1}, "EINVAL"),
        ({"notify": "signal", "signo": 0}, "EINVAL"),
        ({"notify": "signal", "signo": 65}, "EINVAL"),
        ({"notify": "thread", "signo": -1}, "EINVAL"),
        ({"notify": "thread_id", "tid": 1}, "EINVAL"),
        ({"notify": "thread_id", "tid": 999999}, "EINVAL"),
        ({"bad_sev_ptr": True}, "EFAULT"),
        ({"bad_id_ptr": True}, "EFAULT"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_create_rejects(helper: Helper, kw: dict[str, object], errno: str) -> None:
    assert err(helper.one(create(**kw))) == errno


def test_sigev_none_ignores_signo(helper: Helper) -> None:
    ok(helper.one(create(notify="none", signo=0)))


@pytest.mark.parametrize("timer_id", [1, 7, 4096, INT_MAX, -1, -INT_MAX - 1])
@pytest.mark.parametrize("op", ["delete", "settime", "gettime", "getoverrun"])
def test_unknown_and_negative_ids(helper: Helper, op: str, timer_id: int) -> None:
    extra = {"value_ns": 1_000_000} if op == "settime" else {}
    res = helper.run([create(), {"op": op, "id": timer_id, **extra}, {"op": op, "id": 0, **extra}])
    assert err(res[1]) == "EINVAL"
    ok(res[2])


def test_delete_twice(helper: Helper) -> None:
    res = helper.run([create(), {"op": "delete", "id": 0}, {"op": "delete", "id": 0}])
    ok(res[1])
    assert err(res[2]) == "EINVAL"


def test_other_process_ids_are_invisible(helper: Helper) -> None:
    """IDs are per process: a child cannot touch its parent's timer 0."""
    res = helper.run(
        [
            create(),
            {"op": "fork", "script": [{"op": "gettime", "id": 0}, {"op": "delete", "id": 0}]},
            {"op": "gettime", "id": 0},
        ]
    )
    child = res[1]["results"]
    assert err(child[0]) == "EINVAL"
    assert err(child[1]) == "EINVAL"
    ok(res[2])
