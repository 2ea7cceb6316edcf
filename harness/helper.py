"""Build the C helper on the host and drive it in the guest.

``ptimerctl`` reads operations as JSON lines on stdin and answers each with
one JSON line.  The guest sees the host's root filesystem, so the binary
built here runs there at the same path.  :class:`Helper` turns a script
into parsed result dicts and fails loudly on protocol errors, so tests
assert on values, never on substrings of output.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import BuildError, GuestError
from .guest import Guest, Result
from .paths import HELPER_DIR

Op = dict[str, Any]


def build(target: str = "ptimerctl", helper_dir: Path = HELPER_DIR) -> Path:
    """``make`` the helper when out of date; return the binary."""
    proc = subprocess.run(
        ["make", "-s", "-C", str(helper_dir), target], capture_output=True, text=True
    )
    if proc.returncode != 0:
        hint = "apt-get install gcc-multilib" if target.endswith("32") else None
        raise BuildError(f"building the helper {target} failed", hint=hint, detail=proc.stderr)
    return helper_dir / target


def encode(ops: Iterable[Op]) -> str:
    """A script as JSON lines."""
    return "".join(json.dumps(op, separators=(",", ":")) + "\n" for op in ops)


def decode(stdout: str) -> list[Op]:
    """Parse the helper's output lines; a non-JSON line is a protocol error."""
    out: list[Op] = []
    for n, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GuestError(f"helper output line {n} is not JSON: {line!r}") from exc
        if not isinstance(value, dict):
            raise GuestError(f"helper output line {n} is not an object: {line!r}")
        out.append(value)
    return out


class HelperError(GuestError):
    """The helper rejected the script or did not answer every operation."""


class ContractError(HelperError):
    """The kernel's answers contradict each other: a create reported success
    but its timer is not where it says (the helper's ``confirm_error``), or a
    forked child's script failed.  A test must not pass over either, so no
    test has to remember to look."""


def _exit_status(script: list[Op]) -> int:
    """The status a forked script ends with: its ``exit`` op's, else 0."""
    for op in script:
        if op.get("op") == "exit" and not op.get("thread"):
            return int(op.get("status", 0))
    return 0


def violations(ops: list[Op], results: list[Op]) -> list[str]:
    """Every contradiction in ``results`` of ``ops`` (see :class:`ContractError`).

    Ops and results pair up by position until an ``exec`` (whose new image
    prints lines of its own); ``confirm_error`` is looked for everywhere.
    """
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "confirm_error" in value:
                found.append(f"{value.get('op')}: {value['confirm_error']} ({value})")
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(results)
    for op, res in zip(ops, results, strict=False):
        if op.get("op") == "exec":
            break
        if op.get("op") != "fork" or res.get("op") != "fork" or res.get("ret") != 0:
            continue
        script = op.get("script", [])
        want = _exit_status(script)
        if res.get("signal") or res.get("status") != want:
            found.append(
                f"fork: the child ended with status {res.get('status')} signal "
                f"{res.get('signal')}, its script says status {want}: {res.get('results')}"
            )
        found.extend(violations(script, res.get("results", [])))
    return found


class Helper:
    """Runs scripts of operations through ptimerctl in the guest."""

    def __init__(self, guest: Guest, binary: Path, prefix: str = "") -> None:
        self.guest = guest
        self.binary = binary
        self.prefix = prefix  # e.g. "prlimit --sigpending=200000 " or "ulimit -i ...;"
        self.last: Result | None = None

    def run(self, ops: list[Op], timeout: float = 120.0, expect: int | None = None) -> list[Op]:
        """Run ``ops`` in one fresh process; return one result per output line.

        ``expect`` is the number of result lines (default: one per op; exec
        adds the lines its new image prints).
        """
        cmd = f"{self.prefix}{shlex.quote(str(self.binary))}"
        res, results = self._exchange(cmd, ops, timeout)
        want = len(ops) if expect is None else expect
        if res.status != 0 or len(results) != want:
            raise HelperError(
                f"helper exited {res.status} with {len(results)} result(s), expected {want}",
                detail=res.describe(),
            )
        return results

    def _exchange(
        self, cmd: str, ops: list[Op], timeout: float, check: bool = True
    ) -> tuple[Result, list[Op]]:
        """Send ``ops`` to ``cmd``; its parsed results, or the helper's own complaint.

        ``check=False`` leaves contract violations to the caller (the model
        test reports them as the step that went wrong).
        """
        res = self.guest.run(cmd, stdin=encode(ops), timeout=timeout)
        self.last = res
        results = decode(res.stdout)
        errors = [r for r in results if r.get("op") == "error"]
        if errors:
            raise HelperError(
                f"helper rejected the script: {errors[0].get('error')}", detail=res.describe()
            )
        if check and (bad := violations(ops, results)):
            raise ContractError(bad[0], detail="\n".join(bad[1:]) or None)
        return res, results

    def one(self, op: Op, timeout: float = 120.0) -> Op:
        """Run a single operation in a fresh process."""
        return self.run([op], timeout=timeout)[0]

    def run_held(
        self, ops: list[Op], expect: int, timeout: float = 120.0, check: bool = True
    ) -> tuple[list[Op], int]:
        """Run ``ops``, which end with a ``hold``, in a background process.

        (After an ``exec`` op the hold belongs at the end of its script.)
        Returns the ``expect`` results (the hold's own line excluded) and the
        process' PID, which stays alive with its timers until
        :meth:`release`: a test decides after comparing whether the exit
        runs now.  Output goes to a file in the guest, so the SSH command
        ends while the process lives on.
        """
        want = expect + 1
        poll = max(1, int(timeout / 0.05))
        cmd = (
            "d=$(mktemp -d /tmp/ptimerctl-held.XXXXXX) || exit 1; cat > $d/in; "
            f"{self.prefix}{shlex.quote(str(self.binary))} < $d/in > $d/out 2> $d/err & "
            f"pid=$!; for i in $(seq {poll}); do "
            f'[ "$(wc -l < $d/out)" -ge {want} ] && break; '
            "kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
            "cat $d/out; rm -rf $d"
        )
        res, results = self._exchange(cmd, ops, timeout + 30, check)
        if res.status != 0 or len(results) != want or results[-1].get("op") != "hold":
            raise HelperError(
                f"held helper gave {len(results)} result(s), expected {expect} and its hold",
                detail=res.describe(),
            )
        return results[:-1], int(results[-1]["pid"])

    def release(self, pid: int, timeout: float = 120.0) -> None:
        """End a held process (SIGTERM) and wait until its exit has run."""
        poll = max(1, int(timeout / 0.05))
        self.guest.run(
            f"kill -TERM {pid}; for i in $(seq {poll}); do "
            f"kill -0 {pid} 2>/dev/null || exit 0; sleep 0.05; done; exit 1",
            timeout=timeout + 30,
            check=True,
        )
