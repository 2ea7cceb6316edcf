"""The executable specification agrees with 6.12's allocation rules."""

from __future__ import annotations

from typing import Any

from harness.idmodel import INT_MAX, IdModel, expectation, outcome


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


def test_exact_creates_failing_after_the_store_move_the_cursor_past_the_wanted_id() -> None:
    """Copy-out fault (read-only ID variable) and, in the restore mode, an
    invalid notify type: the timer was stored at the wanted ID first."""
    m = IdModel()
    flag = {"flags": ["timer_id"]}
    ops: list[dict[str, Any]] = [
        {"op": "create", "id": 5, "notify": "none", "ro_id_ptr": True, **flag},
        {"op": "create", "notify": "none"},
        {"op": "create", "id": 5, "notify": "none", **flag},
        {"op": "create", "id": 5, "notify": "none", "ro_id_ptr": True, **flag},
        {"op": "prctl", "option": 77, "arg2": 1},
        {"op": "create", "id": 9, "notify_raw": 3},
        {"op": "create", "id": -1, "notify_raw": 3},
        {"op": "prctl", "option": 77, "arg2": 0},
        {"op": "create", "notify": "none"},
        {"op": "create", "notify": "none", "ro_id_ptr": True},
        {"op": "create", "notify": "none"},
        {"op": "create", "id": 20, "signo": 0, **flag},
        {"op": "create", "signo": 0},
        {"op": "create", "notify": "none"},
    ]
    got = [expectation(m, op) for op in ops]
    assert got == [
        ("errno", "EFAULT"),
        ("id", 6),  # cursor after the wanted 5
        ("id", 5),  # 5 stayed free
        ("errno", "EBUSY"),  # taken: fails before the copy-out
        ("ret", 0),
        ("errno", "EINVAL"),
        ("errno", "EINVAL"),  # negative: rejected first, nothing moves
        ("ret", 0),
        ("id", 10),  # cursor after the wanted 9
        ("errno", "EFAULT"),  # a plain create consumes 11
        ("id", 12),
        ("errno", "EINVAL"),  # signal 0: rejected after the store at 20
        ("errno", "EINVAL"),  # a plain create consumes 21
        ("id", 22),
    ]
