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
        res = self.guest.run(cmd, stdin=encode(ops), timeout=timeout)
        self.last = res
        results = decode(res.stdout)
        errors = [r for r in results if r.get("op") == "error"]
        if errors:
            raise HelperError(
                f"helper rejected the script: {errors[0].get('error')}", detail=res.describe()
            )
        want = len(ops) if expect is None else expect
        if res.status != 0 or len(results) != want:
            raise HelperError(
                f"helper exited {res.status} with {len(results)} result(s), expected {want}",
                detail=res.describe(),
            )
        return results

    def one(self, op: Op, timeout: float = 120.0) -> Op:
        """Run a single operation in a fresh process."""
        return self.run([op], timeout=timeout)[0]
