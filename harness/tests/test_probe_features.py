"""The plugin's feature probes: three answers, and --expect-features."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from harness.errors import KernelBroken
from harness.guest import Guest, Result
from harness.helper import Helper, Op
from harness.pytest_plugin import (
    DEBUG_TOOLS,
    _lockdep_on,
    _probe_features,
    _probe_reserved_slot,
    check_expected,
    parse_expected,
)


class StubGuest:
    """No /proc/config.gz, no debugfs: only the helper's answers matter here."""

    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Result:
        return Result(command, 1, "", "", 0.0)


class StubHelper:
    def __init__(self, probe: Op) -> None:
        self.probe = probe

    def run(self, ops: list[Op], **_: Any) -> list[Op]:
        if ops[-1]["op"] == "probe":
            return [{"op": "proc_timers", "ret": -1, "errno": "ENOENT"}, self.probe]
        return [{"op": "create", "ret": 0, "id": i} for i in range(3)] + [
            {"op": "proc_timers", "ret": -1, "errno": "ENOENT"}
        ]


def probe(flag: str, prctl: str) -> Op:
    return {
        "op": "probe",
        "ret": 0,
        "flag": flag,
        "flag_detail": f"flag {flag}",
        "prctl": prctl,
        "prctl_detail": f"prctl {prctl}",
    }


def features(answer: Op) -> dict[str, bool]:
    return _probe_features(cast(Guest, StubGuest()), cast(Helper, StubHelper(answer)))


@pytest.mark.parametrize(
    ("flag", "prctl", "want"),
    [
        ("absent", "absent", (False, False)),
        ("present", "absent", (True, False)),
        ("present", "present", (True, True)),
        ("absent", "present", (False, True)),
    ],
)
def test_present_and_absent_map_to_features(flag: str, prctl: str, want: tuple[bool, bool]) -> None:
    feats = features(probe(flag, prctl))
    assert (feats["sigev_timer_id"], feats["prctl_restore_ids"]) == want


@pytest.mark.parametrize(("flag", "prctl"), [("broken", "absent"), ("present", "broken")])
def test_a_broken_answer_fails_instead_of_skipping(flag: str, prctl: str) -> None:
    with pytest.raises(KernelBroken) as exc:
        features(probe(flag, prctl))
    assert "broken" in exc.value.message and exc.value.exit_code == 1


def test_expect_features_parses_and_rejects_unknown_names() -> None:
    assert parse_expected(" sigev_timer_id, prctl_restore_ids ,") == [
        "sigev_timer_id",
        "prctl_restore_ids",
    ]
    assert parse_expected("") == []
    with pytest.raises(pytest.UsageError):
        parse_expected("sigev_timer_idd")


def test_an_expected_feature_that_is_absent_fails() -> None:
    check_expected({"sigev_timer_id": True, "prctl_restore_ids": True}, ["sigev_timer_id"])
    with pytest.raises(KernelBroken) as exc:
        check_expected({"sigev_timer_id": False}, ["sigev_timer_id"])
    assert "sigev_timer_id" in exc.value.message


@pytest.mark.parametrize(
    ("stats", "on"),
    [
        (" lock-classes:                          1393 [max: 8192]\n debug_locks:   1\n", True),
        # Lockdep switched itself off after a report: no longer a checker.
        (" lock-classes:                          1393 [max: 8192]\n debug_locks:   0\n", False),
        ("", False),  # no CONFIG_LOCKDEP
    ],
)
def test_lockdep_counts_only_while_it_still_checks(stats: str, on: bool) -> None:
    assert _lockdep_on(stats) is on


def test_debug_tools_can_be_expected_and_fail_when_absent() -> None:
    names = parse_expected(",".join(DEBUG_TOOLS))
    with pytest.raises(KernelBroken, match="kasan"):
        check_expected({n: n != "kasan" for n in names}, names)


class Item:
    def __init__(self, nodeid: str, last: bool = False) -> None:
        self.nodeid = nodeid
        self.last = last

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "runs_last" and self.last else None


def test_run_first_moves_matching_tests_ahead_and_keeps_the_rest() -> None:
    from harness.pytest_plugin import run_first

    items = cast(
        list[pytest.Item], [Item(n) for n in ("a.py::t1", "b.py::t2[x]", "b.py::t3", "c.py::t4")]
    )
    got = run_first(items, ["b.py::t2", "c.py"])
    assert [i.nodeid for i in got] == ["b.py::t2[x]", "c.py::t4", "a.py::t1", "b.py::t3"]
    assert run_first(items, []) == items


def test_run_first_leaves_a_runs_last_test_in_place() -> None:
    """Mutant 37's Caught-by is the kmemleak scan: run first, it saw no leak."""
    from harness.pytest_plugin import run_first

    items = cast(list[pytest.Item], [Item("a.py::t1"), Item("zz.py::scan", last=True)])
    assert [i.nodeid for i in run_first(items, ["zz.py::scan"])] == ["a.py::t1", "zz.py::scan"]


def test_a_contradiction_while_probing_is_a_broken_kernel_not_an_infra_error() -> None:
    """Mutant 01 (IDs reported one off) made the probe's own create fail its
    confirmation: that is the kernel's fault (exit 1), not a skip (125)."""
    from harness.helper import ContractError
    from harness.pytest_plugin import _probe, _State

    class Contradicting(StubHelper):
        def run(self, ops: list[Op], **_: Any) -> list[Op]:
            raise ContractError("create: the new timer 1 does not answer timer_getoverrun()")

    state = _State(Path("/nonexistent"))
    state.vm = cast(Any, object())
    state.dmesg = cast(Any, object())
    with pytest.raises(KernelBroken, match="inconsistently: create: the new timer 1"):
        _probe(
            state, cast(Guest, StubGuest()), cast(Helper, Contradicting(probe("absent", "absent")))
        )


def test_criu_options_are_read_from_the_fragment() -> None:
    from harness import kconfig
    from harness.paths import KERNEL_CONFIG_DIR
    from harness.pytest_plugin import criu_options_missing

    wanted = kconfig.Fragment.load(KERNEL_CONFIG_DIR / "criu.config").values
    full = "\n".join(f"{k}={v}" for k, v in wanted.items()) + "\nCONFIG_OTHER=y\n"
    assert criu_options_missing(full) == []
    partial = full.replace("CONFIG_TUN=y\n", "# CONFIG_TUN is not set\n")
    assert criu_options_missing(partial) == ["CONFIG_TUN=y (got n)"]


def test_a_wedged_command_re_raised_by_a_test_still_stops_the_session() -> None:
    """test_model re-raises GuestWedged as its own error: still a hang after a splat."""
    from harness.errors import GuestError, GuestWedged
    from harness.pytest_plugin import _wedged

    wedged = GuestWedged("the kernel reported X")
    try:
        try:
            raise wedged
        except GuestWedged as exc:
            raise GuestError("guest lost during step 7") from exc
    except GuestError as outer:
        assert _wedged(outer) is wedged
    assert _wedged(GuestError("plain timeout")) is None


class FailslabGuest:
    """A guest with failslab whose ``times`` counter drops by ``hits`` once
    the helper has run (what an injected failure does)."""

    def __init__(self, hits: int) -> None:
        self.hits = hits
        self.ran = False
        self.commands: list[str] = []

    def run(
        self, command: str, stdin: str | None = None, timeout: float = 60.0, check: bool = False
    ) -> Result:
        self.commands.append(command)
        if command.startswith("cat ") and command.endswith("/times"):
            left = 1_000_000 - (self.hits if self.ran else 0)
            return Result(command, 0, f"{left}\n", "", 0.0)
        return Result(command, 0, "", "", 0.0)


class ReservedHelper:
    """Answers each op; the creates in the failing window (after the
    make-it-fail write of "1") answer ``last`` and ``control``."""

    def __init__(self, guest: FailslabGuest, last: Op, control: Op) -> None:
        self.guest, self.last, self.control = guest, last, control
        self.sent: list[Op] = []

    def run(self, ops: list[Op], **_: Any) -> list[Op]:
        self.sent = ops
        self.guest.ran = True
        out: list[Op] = []
        failing = False
        window = [self.last, self.control]
        plain = iter([0, 64])
        for op in ops:
            if op["op"] == "write_file":
                failing = op["data"] == "1"
                out.append({"op": "write_file", "ret": 1})
            elif op["op"] == "create":
                out.append(
                    window.pop(0) if failing else {"op": "create", "ret": 0, "id": next(plain)}
                )
            else:
                out.append({"op": op["op"], "ret": 0})
        return out


CREATED_64: Op = {"op": "create", "ret": 0, "id": 64}
EAGAIN: Op = {"op": "create", "ret": -1, "errno": "EAGAIN"}


def reserved(
    last: Op, hits: int, control: Op = EAGAIN, **feats: bool
) -> tuple[bool, FailslabGuest, ReservedHelper]:
    base = {
        "failslab": True,
        "proc_timers_by_id": True,
        "sigev_timer_id": True,
        "prctl_restore_ids": False,
    }
    guest = FailslabGuest(hits)
    helper = ReservedHelper(guest, last, control)
    got = _probe_reserved_slot(cast(Guest, guest), cast(Helper, helper), {**base, **feats})
    return got, guest, helper


def test_reserved_slot_present_when_the_create_needs_no_node() -> None:
    got, guest, helper = reserved(CREATED_64, hits=1)
    assert got is True
    # Only the node cache is made to fail, for the helper only, and it is
    # all switched off again afterwards.
    assert "echo 1 > /sys/kernel/slab/radix_tree_node/failslab" in guest.commands
    assert guest.commands[-1] == (
        "echo 0 > /sys/kernel/debug/failslab/probability; for c in "
        "/sys/kernel/slab/*/failslab; do echo 0 > $c 2>/dev/null; done"
    )
    # The exact ops: the deleted ID and the control inside the window.
    fail = "/proc/self/make-it-fail"
    flag = ["timer_id"]
    assert helper.sent == [
        {"op": "create"},
        {"op": "create", "id": 64, "flags": flag},
        {"op": "delete", "id": 64},
        {"op": "mlockall"},
        {"op": "write_file", "path": fail, "data": "1"},
        {"op": "create", "id": 64, "flags": flag},
        {"op": "create", "id": 4096, "flags": flag},
        {"op": "write_file", "path": fail, "data": "0"},
    ]


def test_reserved_slot_absent_when_the_create_fails_on_a_node() -> None:
    got, _, _ = reserved(EAGAIN, hits=2)
    assert got is False


@pytest.mark.parametrize(
    ("last", "hits"),
    [
        (EAGAIN, 0),  # failed with nothing injected
        ({"op": "create", "ret": 0, "id": 65}, 1),  # the wrong ID
        ({"op": "create", "ret": -1, "errno": "EBUSY"}, 1),
    ],
)
def test_reserved_slot_probe_fails_on_impossible_answers(last: Op, hits: int) -> None:
    with pytest.raises(KernelBroken) as exc:
        reserved(last, hits)
    assert exc.value.exit_code == 1


@pytest.mark.parametrize("last", [CREATED_64, EAGAIN])
def test_reserved_slot_probe_needs_proof_that_injection_works(last: Op) -> None:
    """The control create (4096, needing new nodes) succeeding means no
    failure was injected: "present" would be what any kernel answers."""
    with pytest.raises(KernelBroken):
        reserved(last, hits=0, control={"op": "create", "ret": 0, "id": 4096})


@pytest.mark.parametrize(
    "feats",
    [
        {"failslab": False},
        {"proc_timers_by_id": False},  # a hash kernel allocates no node at all
        {"sigev_timer_id": False, "prctl_restore_ids": False},
    ],
)
def test_reserved_slot_not_probed_without_what_it_needs(feats: dict[str, bool]) -> None:
    got, guest, _ = reserved(CREATED_64, 1, EAGAIN, **feats)
    assert got is False and guest.commands == []


def test_reserved_slot_probe_uses_the_prctl_where_there_is_no_flag() -> None:
    _, _, helper = reserved(CREATED_64, 1, sigev_timer_id=False, prctl_restore_ids=True)
    prctls = [o for o in helper.sent if o["op"] == "prctl"]
    assert [o["arg2"] for o in prctls] == [1, 0, 1, 0, 1, 0]
