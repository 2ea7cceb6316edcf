"""Build the kernel tree's own timer selftests for running in the guest.

The kernel's ``tools/testing/selftests/timers`` is a suite we did not
write: running it from the same tree on the unpatched and the patched
kernel shows whether the series changes anything it checks.  Binaries go
to the cache (``OUTPUT=``) so the source tree stays clean and its content
identity -- the kernel's cache key -- does not change.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import BuildError
from .kbuild import tree_identity
from .paths import cache_dir

PROGRAMS = ("posix_timers", "timer_create_id")


def build(tree: Path) -> Path:
    """Build the timer selftests of ``tree``; return the output directory."""
    src = tree / "tools" / "testing" / "selftests" / "timers"
    out = cache_dir("selftests", tree_identity(tree)[:16])
    wanted = [p for p in PROGRAMS if (src / f"{p}.c").exists()]
    if all((out / p).exists() for p in wanted):
        return out
    proc = subprocess.run(
        ["make", "-s", "-C", str(src), f"OUTPUT={out}", *[str(out / p) for p in wanted]],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"building the timer selftests of {tree} failed",
            detail=(proc.stdout + proc.stderr)[-3000:],
        )
    return out
