"""The executable specification agrees with 6.12's allocation rules."""

from __future__ import annotations

from typing import Any

from harness.idmodel import INT_MAX, IdModel, outcome


def test_cursor_rules() -> None:
    m = IdModel()
    assert [m.plain_create() for _ in range(3)] == [("id", 0), ("id", 1), ("id", 2)]
    assert m.delete(1) == ("ok",)
    assert m.plain_create() == ("id", 3), "the cursor does not go back to a freed ID"
    assert m.delete(1) == ("errno", "EINVAL")


def test_exact_ids_and_wrap() -> None:
    m = IdModel()
    assert m.exact_create(1) == ("id", 1)
    assert m.exact_create(0) == ("id", 0)
    assert m.delete(1) == ("ok",)
    assert m.plain_create() == ("id", 1), "the review's two-slot sequence"
    assert m.exact_create(INT_MAX) == ("id", INT_MAX)
    assert m.plain_create() == ("id", 2), "after INT_MAX: the lowest free from 0"
    assert m.exact_create(2) == ("errno", "EBUSY")
    assert m.exact_create(-1) == ("errno", "EINVAL")
    assert m.plain_create() == ("id", 3), "failed exact creates move nothing"


def test_failures_consume_ids_as_612() -> None:
    m = IdModel()
    assert m.create_failing_late("EINVAL") == ("errno", "EINVAL")
    assert m.create_failing_early("EFAULT") == ("errno", "EFAULT")
    assert m.plain_create() == ("id", 1)


def test_exec_fork_threads() -> None:
    m = IdModel()
    m.plain_create()
    m.set_mode(True)
    assert m.get_mode() == ("ret", 1)
    m.exec()
    assert (m.listing(), m.get_mode()) == (("listing", []), ("ret", 0))
    assert m.plain_create() == ("id", 1), "exec keeps the cursor"
    assert IdModel.forked_child(2) == ("fork", [0, 1])
    assert m.threads(2) == ("threads", [2, 3, 4, 5])


def test_outcome_shapes() -> None:
    assert outcome({"op": "create", "ret": 0, "id": 7}) == ("id", 7)
    assert outcome({"op": "create", "ret": -1, "errno": "EBUSY"}) == ("errno", "EBUSY")
    assert outcome({"op": "prctl", "ret": 1}) == ("ret", 1)
    fork = {"op": "fork", "ret": 0, "results": [{"op": "create", "ret": 0, "id": 0}]}
    assert outcome(fork) == ("fork", [0])
    threads = {
        "op": "threads",
        "results": [[{"ret": 0, "id": 3}], [{"ret": 0, "id": 2}, {"ret": -1, "errno": "EAGAIN"}]],
    }
    assert outcome(threads) == ("threads", [2, 3])


def test_expectation_reads_the_model_tests_ops() -> None:
    """The op interpreter the reducer uses gives what the rules gave."""
    from harness.idmodel import expectation

    m = IdModel()
    flag: dict[str, Any] = {"flags": ["timer_id"], "notify": "none"}
    ops: list[dict[str, Any]] = [
        {"op": "create", "id": 1, **flag},
        {"op": "create", "id": 0, **flag},
        {"op": "delete", "id": 1},
        {"op": "create", "notify": "none"},
        {"op": "create", "notify_raw": 3},
        {"op": "create", "bad_id_ptr": True, **flag},
        {"op": "create", "clock": 12345},
        {"op": "gettime", "id": 1},
        {"op": "proc_timers"},
        {"op": "prctl", "option": 77, "arg2": 1},
        {"op": "create", "id": 7, "notify": "none"},
        {"op": "prctl", "option": 77, "arg2": 2},
        {"op": "exec", "script": []},
        {"op": "create", "notify": "none"},
    ]
    got = [expectation(m, op) for op in ops]
    assert got == [
        ("id", 1),
        ("id", 0),
        ("ok",),
        ("id", 1),
        ("errno", "EINVAL"),  # consumed ID 2
        ("errno", "EFAULT"),
        ("errno", "EINVAL"),
        ("ok",),
        ("listing", [0, 1]),
        ("ret", 0),
        ("id", 7),
        ("ret", 1),
        ("ok",),
        ("id", 8),  # exec keeps the cursor
    ]
