"""SSH sessions into a virtme-ng guest with paramiko, on loopback only.

vng authorizes its own key (``~/.cache/virtme-ng/.ssh/id_virtme``) in the
guest.  Every command runs with a timeout; a timeout or a dropped
connection is a :class:`GuestError` that carries the command and whatever
output arrived, so a hung test fails with context instead of hanging.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from .errors import BootError, GuestError, GuestWedged

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


class CommandTimeout(Exception):
    """The command's deadline passed."""


class Wedged(Exception):
    """The watchdog asked to end the command."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Watchdog(Protocol):
    """What a guest command asks while it runs (see :mod:`harness.watchdog`)."""

    def begin(self) -> None: ...

    def __call__(self) -> str | None: ...


class Channel(Protocol):
    """What :func:`collect` needs of a paramiko channel."""

    def recv_ready(self) -> bool: ...
    def recv(self, nbytes: int) -> bytes: ...
    def recv_stderr_ready(self) -> bool: ...
    def recv_stderr(self, nbytes: int) -> bytes: ...
    @property
    def eof_received(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def exit_status_ready(self) -> bool: ...
    def recv_exit_status(self) -> int: ...
    def close(self) -> None: ...


def collect(
    chan: Channel,
    deadline: float,
    watchdog: Callable[[], str | None] | None = None,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, str, int]:
    """Stdout, stderr and exit status of a running command, polling instead of blocking.

    A blocking read would wait out the whole timeout on a guest whose
    kernel died under the command; polling lets the watchdog end it.  Data
    is drained on every round so a chatty command never stalls on a full
    window.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    next_check = clock()
    while True:
        busy = False
        while chan.recv_ready():
            out.append(chan.recv(65536))
            busy = True
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
            busy = True
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if chan.closed and not chan.eof_received and drained:
            # The link dropped (paramiko closes the channel and makes up an
            # exit status): not the command's answer.
            raise OSError("the SSH channel closed before the command's end")
        # sshd may send the exit status before the last output: done only
        # once the channel's EOF arrived and both buffers are empty.
        if chan.exit_status_ready() and chan.eof_received and drained:
            status = chan.recv_exit_status()
            chan.close()
            return (
                b"".join(out).decode(errors="replace"),
                b"".join(err).decode(errors="replace"),
                status,
            )
        now = clock()
        if now >= deadline:
            chan.close()
            raise CommandTimeout()
        if watchdog is not None and now >= next_check:
            next_check = now + poll
            if (reason := watchdog()) is not None:
                chan.close()
                raise Wedged(reason)
        if not busy:
            sleep(0.02)


class Guest:
    """A paramiko connection to the guest's sshd."""

    def __init__(self, port: int, host: str = "127.0.0.1", key: Path = KEY) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise GuestError(f"refusing to connect to {host}: guests are reached on loopback only")
        self.host = host
        self.port = port
        self.key = key
        self.client: paramiko.SSHClient | None = None
        #: asked while a command runs (see :mod:`harness.watchdog`)
        self.watchdog: Watchdog | None = None

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
        """Run a command; raise GuestError on timeout, a dropped link, or (check) non-zero.

        With a :attr:`watchdog` set, it is asked every half second while the
        command runs; a reason from it ends the command with
        :class:`GuestWedged` (the kernel died or splatted under it).
        """
        if self.client is None:
            raise GuestError("not connected to the guest")
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise GuestError(f"SSH connection lost before running: {command}")
        start = time.monotonic()
        if self.watchdog is not None:
            self.watchdog.begin()
        try:
            chan = transport.open_session(timeout=min(timeout, 30.0))
            chan.exec_command(command)
            # The deadline covers the input too (a wedged reader would
            # otherwise block sendall for good); the loop below polls.
            chan.settimeout(timeout)
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            out, err, status = collect(chan, start + timeout, self.watchdog)
        except CommandTimeout as exc:
            raise GuestError(f"guest command timed out after {timeout:.0f}s: {command}") from exc
        except Wedged as exc:
            raise GuestWedged(
                f"{exc.reason}; ended after {time.monotonic() - start:.0f}s: {command}"
            ) from exc
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
