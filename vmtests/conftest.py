"""Fixtures shared by the vmtests: a helper runner and result checks.

The session guest, feature probes and splat checks come from
``harness.pytest_plugin`` (registered by the repository's root conftest).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.helper import Helper, Op

SIGALRM = 14
SIGUSR1 = 10
SIGRTMIN = 34
SI_TIMER = -2
INT_MAX = 2**31 - 1
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SIGEV_TIMER_ID = 8
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3
CLOCK_BOOTTIME = 7
PR_TIMER_CREATE_RESTORE_IDS = 77


def ok(result: Op) -> Op:
    """Assert a helper operation succeeded; return it for chaining."""
    assert result.get("ret", 0) >= 0, f"{result.get('op')} failed: {result}"
    return result


def err(result: Op) -> str:
    """The errno name of a failed operation (fails the test if it succeeded)."""
    assert result.get("ret") == -1, f"{result.get('op')} unexpectedly succeeded: {result}"
    name: str = result["errno"]
    return name


def ids(results: list[Op]) -> list[int]:
    """IDs returned by the create operations among ``results``."""
    return [r["id"] for r in results if r.get("op") == "create" and r.get("ret") == 0]


def create(**kw: Any) -> Op:
    """A create operation (see vmtests/helper/ptimerctl.c for the keys)."""
    return {"op": "create", **kw}


@pytest.fixture
def run(helper: Helper) -> Helper:
    """The helper, for tests that read better as ``run.run([...])``."""
    return helper
