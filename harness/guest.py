"""SSH sessions into a virtme-ng guest with paramiko, on loopback only.

vng authorizes its own key (``~/.cache/virtme-ng/.ssh/id_virtme``) in the
guest.  Every command runs with a timeout; a timeout or a dropped
connection is a :class:`GuestError` that carries the command and whatever
output arrived, so a hung test fails with context instead of hanging.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .errors import BootError, GuestError

KEY = Path.home() / ".cache" / "virtme-ng" / ".ssh" / "id_virtme"


@dataclass
class Result:
    """Outcome of one guest command."""

    command: str
    status: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self, limit: int = 3000) -> str:
        """Human-readable summary for failure messages."""
        return (
            f"$ {self.command}\n[exit {self.status}, {self.seconds:.2f}s]\n"
            f"--- stdout ---\n{self.stdout[-limit:]}\n--- stderr ---\n{self.stderr[-limit:]}"
        )


class Guest:
    """A paramiko connection to the guest's sshd."""

    def __init__(self, port: int, host: str = "127.0.0.1", key: Path = KEY) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise GuestError(f"refusing to connect to {host}: guests are reached on loopback only")
        self.host = host
        self.port = port
        self.key = key
        self.client: paramiko.SSHClient | None = None

    def connect(self, timeout: float = 120.0) -> float:
        """Retry until sshd accepts our key; return the seconds it took."""
        start = time.monotonic()
        last: Exception | None = None
        while time.monotonic() - start < timeout:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect(
                    self.host,
                    port=self.port,
                    username="root",
                    key_filename=str(self.key),
                    # QEMU's user network accepts the TCP connection even
                    # when the guest has no address: cap the wait for the
                    # banner so a caller's timeout means what it says.
                    timeout=min(10.0, timeout),
                    banner_timeout=min(30.0, timeout),
                    auth_timeout=min(30.0, timeout),
                    look_for_keys=False,
                    allow_agent=False,
                )
                transport = client.get_transport()
                if transport is not None:
                    transport.set_keepalive(5)
                self.client = client
                return time.monotonic() - start
            except (OSError, paramiko.SSHException, EOFError) as exc:
                last = exc
                client.close()
                time.sleep(1.0)
        raise BootError(
            f"SSH to 127.0.0.1:{self.port} did not answer within {timeout:.0f}s: {last}"
        )

    def run(
        self, command: str, stdin: str | None = None, timeout: float = 120.0, check: bool = False
    ) -> Result:
        """Run a command; raise GuestError on timeout, a dropped link, or (check) non-zero."""
        if self.client is None:
            raise GuestError("not connected to the guest")
        start = time.monotonic()
        try:
            chan_in, chan_out, chan_err = self.client.exec_command(command, timeout=timeout)
            if stdin is not None:
                chan_in.write(stdin)
            chan_in.channel.shutdown_write()
            out = chan_out.read().decode(errors="replace")
            err = chan_err.read().decode(errors="replace")
            status = chan_out.channel.recv_exit_status()
        except TimeoutError as exc:
            raise GuestError(f"guest command timed out after {timeout:.0f}s: {command}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise GuestError(f"SSH connection lost while running: {command} ({exc})") from exc
        result = Result(command, status, out, err, time.monotonic() - start)
        if check and status != 0:
            raise GuestError(f"guest command failed (exit {status})", detail=result.describe())
        return result

    def read_file(self, path: str, timeout: float = 30.0) -> str:
        """Contents of a guest file (empty if unreadable)."""
        return self.run(f"cat {shlex.quote(path)} 2>/dev/null", timeout=timeout).stdout

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
