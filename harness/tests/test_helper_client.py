"""The host side of the helper protocol: encoding, decoding, result checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from harness.errors import GuestError
from harness.guest import Guest, Result
from harness.helper import ContractError, Helper, HelperError, Op, decode, encode, violations


class FakeGuest:
    """Stands in for Guest: records commands, answers with canned output."""

    def __init__(self, stdout: str, status: int = 0, stderr: str = "") -> None:
        self.stdout = stdout
        self.status = status
        self.stderr = stderr
        self.calls: list[tuple[str, str | None, float]] = []

    def run(self, command: str, stdin: str | None = None, timeout: float = 120.0) -> Result:
        self.calls.append((command, stdin, timeout))
        return Result(command, self.status, self.stdout, self.stderr, 0.01)


def make_helper(guest: FakeGuest, prefix: str = "") -> Helper:
    return Helper(cast(Guest, guest), Path("/opt/ptimers/ptimerctl"), prefix=prefix)


OPS: list[Op] = [
    {"op": "create", "clock": 1, "notify": "none"},
    {"op": "settime", "timer": 0, "value_ns": 1_000_000, "interval_ns": 0},
    {"op": "proc_timers"},
]


def lines(*results: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in results)


def test_encode_decode_round_trip() -> None:
    text = encode(OPS)
    assert text.count("\n") == len(OPS)
    assert " " not in text  # compact separators
    assert decode(text) == OPS
    assert encode([]) == ""
    assert decode("") == []


def test_decode_skips_blank_lines() -> None:
    assert decode('\n{"op":"create","ret":0}\n   \n{"op":"delete","ret":0}\n') == [
        {"op": "create", "ret": 0},
        {"op": "delete", "ret": 0},
    ]


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"op":"create"}\nSegmentation fault\n', "line 2 is not JSON"),
        ('{"op":"create"', "line 1 is not JSON"),
        ('{"op":"create"}\n[1, 2]\n', "line 2 is not an object"),
        ("42\n", "line 1 is not an object"),
    ],
)
def test_decode_rejects_non_objects(text: str, what: str) -> None:
    with pytest.raises(GuestError, match=what):
        decode(text)


def test_run_returns_parsed_results() -> None:
    answer = lines(
        {"op": "create", "ret": 0, "id": 0},
        {"op": "settime", "ret": 0},
        {"op": "proc_timers", "ret": 0, "text": "ID: 0\n"},
    )
    guest = FakeGuest(answer)
    helper = make_helper(guest, prefix="prlimit --sigpending=200000 ")
    results = helper.run(OPS, timeout=7.0)
    assert [r["op"] for r in results] == ["create", "settime", "proc_timers"]
    assert results[0]["id"] == 0
    assert results[2]["text"] == "ID: 0\n"
    ((command, stdin, timeout),) = guest.calls
    assert command == "prlimit --sigpending=200000 /opt/ptimers/ptimerctl"
    assert stdin is not None and decode(stdin) == OPS
    assert timeout == 7.0
    assert helper.last is not None and helper.last.stdout == answer


def test_one() -> None:
    guest = FakeGuest(lines({"op": "create", "ret": 0, "id": 7}))
    assert make_helper(guest).one(OPS[0]) == {"op": "create", "ret": 0, "id": 7}


def test_expect_overrides_count() -> None:
    # exec adds the lines its new image prints.
    guest = FakeGuest(lines({"op": "exec", "ret": 0}, {"op": "hello"}, {"op": "bye"}))
    results = make_helper(guest).run([{"op": "exec"}], expect=3)
    assert len(results) == 3


def test_error_line_raises() -> None:
    guest = FakeGuest(
        lines({"op": "create", "ret": 0}, {"op": "error", "error": "unknown op 'frob'"}),
        status=1,
    )
    with pytest.raises(HelperError) as info:
        make_helper(guest).run([OPS[0], {"op": "frob"}])
    assert info.value.message == "helper rejected the script: unknown op 'frob'"
    assert info.value.detail is not None
    assert "$ /opt/ptimers/ptimerctl" in info.value.detail


def test_wrong_count_raises_with_command() -> None:
    guest = FakeGuest(lines({"op": "create", "ret": 0}), stderr="killed by SIGSEGV")
    with pytest.raises(HelperError) as info:
        make_helper(guest).run(OPS)
    err = info.value
    assert err.message == "helper exited 0 with 1 result(s), expected 3"
    assert err.detail is not None
    assert err.detail.startswith("$ /opt/ptimers/ptimerctl\n[exit 0,")
    assert "killed by SIGSEGV" in err.detail


def test_nonzero_status_raises_with_command() -> None:
    answer = lines({"op": "create", "ret": 0}, {"op": "settime", "ret": 0}, {"op": "proc_timers"})
    guest = FakeGuest(answer, status=139)
    with pytest.raises(HelperError) as info:
        make_helper(guest, prefix="ulimit -i 10; ").run(OPS)
    assert info.value.message == "helper exited 139 with 3 result(s), expected 3"
    assert info.value.detail is not None
    assert "$ ulimit -i 10; /opt/ptimers/ptimerctl" in info.value.detail
    assert "[exit 139," in info.value.detail


def test_non_json_output_fails_the_run() -> None:
    guest = FakeGuest('{"op":"create","ret":0}\n*** stack smashing detected ***\n', status=134)
    with pytest.raises(GuestError, match="line 2 is not JSON"):
        make_helper(guest).run([OPS[0]])


def test_helper_error_is_a_guest_error() -> None:
    assert issubclass(HelperError, GuestError)


def test_confirm_error_fails_the_run_wherever_it_is() -> None:
    """A create the helper could not confirm is a kernel contract violation,
    even nested in a fork's results."""
    child = {"op": "create", "ret": 0, "id": 7, "confirm_error": "lists it 2 times"}
    out = lines({"op": "fork", "ret": 0, "pid": 9, "status": 0, "signal": 0, "results": [child]})
    helper = make_helper(FakeGuest(out))
    with pytest.raises(ContractError) as exc:
        helper.run([{"op": "fork", "script": [{"op": "create"}]}])
    assert "lists it 2 times" in exc.value.message


@pytest.mark.parametrize(
    ("script", "status", "signal", "bad"),
    [
        ([{"op": "create"}], 0, 0, False),
        ([{"op": "create"}], 2, 0, True),  # the child's script had an error
        ([{"op": "create"}], -1, 11, True),  # the child crashed
        ([{"op": "exit", "status": 3}], 3, 0, False),  # asked for
        ([{"op": "exit", "status": 3}], 0, 0, True),
    ],
)
def test_fork_child_status_is_checked(
    script: list[Op], status: int, signal: int, bad: bool
) -> None:
    res = {"op": "fork", "ret": 0, "pid": 9, "status": status, "signal": signal, "results": []}
    found = violations([{"op": "fork", "script": script}], [res])
    assert bool(found) == bad, found


def test_nested_fork_status_is_checked() -> None:
    inner = {"op": "fork", "ret": 0, "pid": 10, "status": 2, "signal": 0, "results": []}
    outer = {"op": "fork", "ret": 0, "pid": 9, "status": 0, "signal": 0, "results": [inner]}
    ops: list[Op] = [{"op": "fork", "script": [{"op": "fork", "script": []}]}]
    assert len(violations(ops, [outer])) == 1


def test_pairing_stops_at_exec() -> None:
    """After exec the new image's lines do not pair with the ops."""
    ops: list[Op] = [{"op": "exec", "script": []}, {"op": "fork", "script": []}]
    results: list[Op] = [{"op": "fork", "ret": 0, "status": 2, "signal": 0, "results": []}]
    assert violations(ops, results) == []
