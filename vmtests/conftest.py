"""Fixtures shared by the vmtests: a helper runner and result checks.

The session guest, feature probes and splat checks come from
``harness.pytest_plugin`` (registered by the repository's root conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness import failslab as failslab_mod
from harness.guest import Guest
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
    # Every helper result carries "ret"; one without it (a skipped op, a
    # line of the wrong kind) is not a success.
    assert "ret" in result and result["ret"] >= 0, f"{result.get('op')} failed: {result}"
    if result.get("op") == "create":
        # timer_create() returns 0 and writes the ID; anything else is no success.
        assert result["ret"] == 0 and "id" in result, f"create: {result}"
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


FAILSLAB = failslab_mod.DEBUGFS


@pytest.fixture
def failslab(guest: Guest) -> Iterator[Guest]:
    """failslab armed for tasks that ask for it (make-it-fail) and the caches
    a test enables; everything off again afterwards."""
    with failslab_mod.armed(guest):
        yield guest


@pytest.fixture
def radix_failslab(failslab: Guest) -> Guest:
    """failslab on radix_tree_node (the xarray's nodes) only."""
    failslab_mod.fail_cache(failslab, "radix_tree_node")
    return failslab


def failslab_injected(guest: Guest) -> int:
    """Failures injected so far (see harness.failslab.injected)."""
    return failslab_mod.injected(guest)
