"""Exceptions that carry a user-facing message and what to do next.

Every failure the user can cause or fix (missing package, wrong --kernel,
a kernel lacking an option, a guest that does not boot) is raised as a
HarnessError, so the CLI and the pytest plugin can print one clear line
instead of a traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A failure with a message for the user and an optional next step."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def render(self) -> str:
        """Format as shown to the user: message, next step, then detail."""
        out = f"error: {self.message}"
        if self.hint:
            out += f"\n  next: {self.hint}"
        if self.detail:
            out += "\n" + "\n".join("  | " + line for line in self.detail.splitlines())
        return out


class SetupError(HarnessError):
    """Host prerequisites missing (package, tool, source tarball)."""


class ConfigError(HarnessError):
    """Kernel configuration could not be composed or did not stick."""


class BuildError(HarnessError):
    """The kernel or the helper failed to build."""


class SeriesError(HarnessError):
    """The patch series is malformed or does not apply."""


class BootError(HarnessError):
    """The guest did not come up (panic, hang, SSH never answered)."""


class GuestUnreachable(BootError):
    """The guest booted but SSH never answered: its network or sshd, not the
    kernel under test, so one more boot is worth trying."""


class GuestError(HarnessError):
    """A command in a running guest failed or timed out."""


class GuestWedged(GuestError):
    """A guest command was ended early because the kernel died or splatted
    under it and the command did not finish (see harness.watchdog)."""


class KernelBroken(HarnessError):
    """The kernel under test answered a feature probe with something neither
    an old kernel nor a working new one says, or lacks a feature the caller
    expected: a failure of the kernel (a bad commit), never a skip."""

    exit_code = 1
