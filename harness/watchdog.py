"""Watch the guest's console while a test's command runs in the guest.

A kernel that oopses or reports a KASAN error under a helper often leaves
the helper blocked for good (a lock never released, a task stuck in D
state).  The SSH command then ends only at its own timeout, up to 900 s
for the long tests, and the console that explains why is read only after.
:class:`ConsoleWatch` is polled by :meth:`harness.guest.Guest.run` while a
command runs: it ends the command at once when QEMU exits or the kernel
panics, and ``grace`` seconds after a splat (WARN, BUG, KASAN, lockdep, a
stall: the same deny/allow patterns as the kernel-log check) if the
command has not finished by then.  A splat under a command that does
finish is left to the per-test kernel-log check, which reports it whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .splat import Detector, Splat


class ConsoleWatch:
    """Polled during guest commands; says why the command should end now, or None.

    :meth:`begin` at each command's start, the call while it runs.
    """

    def __init__(
        self,
        console: Path,
        detector: Detector,
        alive: Callable[[], bool],
        panic_markers: tuple[str, ...],
        grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.detector = detector
        self.alive = alive
        self.panic_markers = panic_markers
        self.grace = grace
        self.clock = clock
        self.offset = 0
        self.partial = ""
        #: the first splat seen since the last reset, and when it was seen
        self.first: tuple[float, Splat] | None = None
        #: when the running command began (each command gets its own grace)
        self.command_start = clock()
        self.reset()

    def begin(self) -> None:
        """A command starts: it gets ``grace`` seconds even after an earlier splat.

        Otherwise every command after a WARN in the same test (the harness's
        own kernel-log read among them) would be ended at its first poll.
        """
        self.command_start = self.clock()

    def reset(self) -> None:
        """Forget what came before: a test's watch starts at its own first command."""
        try:
            self.offset = self.console.stat().st_size
        except OSError:
            self.offset = 0
        self.partial = ""
        self.first = None

    def _new_lines(self) -> list[str]:
        try:
            with self.console.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        text = self.partial + data.decode(errors="replace")
        lines = text.split("\n")
        # The console may be mid-line: keep the tail for the next poll.
        self.partial = lines.pop()
        return [line.rstrip("\r") for line in lines]

    def __call__(self) -> str | None:
        lines = self._new_lines()
        for line in lines:
            for marker in self.panic_markers:
                if marker in line:
                    return f"the kernel panicked ({marker!r} on the console)"
        if not self.alive():
            return "QEMU exited"
        if self.first is None and (splats := self.detector.scan(lines)):
            self.first = (self.clock(), splats[0])
        if self.first is not None:
            seen, splat = self.first
            now = self.clock()
            if now - max(seen, self.command_start) >= self.grace:
                return (
                    f"the kernel reported {splat.line!r} on the console and the command "
                    f"was still running {now - seen:.0f}s later"
                )
        return None
