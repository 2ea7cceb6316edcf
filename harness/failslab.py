"""failslab, aimed at one task and chosen caches, for tests and feature probes.

Kept in one place because both the vmtests' fixture and the feature probe
(which asks the kernel whether a create into a deleted timer's slot
allocates) arm it, and the order of the knobs matters: filters first,
probability last, or every allocation of every task in the guest fails in
between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .guest import Guest

DEBUGFS = "/sys/kernel/debug/failslab"
#: failslab's budget of failures; what is left of it tells how many hit.
TIMES = 1_000_000


@contextmanager
def armed(guest: Guest) -> Iterator[Guest]:
    """failslab on for tasks that ask for it (/proc/self/make-it-fail) in the
    caches a caller enables (/sys/kernel/slab/<cache>/failslab); everything
    off again afterwards, also when the caller fails."""
    knobs = {
        "task-filter": "Y",
        "cache-filter": "Y",
        "ignore-gfp-wait": "N",
        "interval": "1",
        "times": str(TIMES),
        "space": "0",
        "verbose": "0",
        "probability": "100",
    }
    try:
        for k, v in knobs.items():
            guest.run(f"echo {v} > {DEBUGFS}/{k}", check=True)
        yield guest
    finally:
        guest.run(
            f"echo 0 > {DEBUGFS}/probability; for c in /sys/kernel/slab/*/failslab; do "
            "echo 0 > $c 2>/dev/null; done",
            check=True,
        )


def injected(guest: Guest) -> int:
    """Failures injected so far: failslab counts ``times`` down per failure.

    (Counting FAULT_INJECTION lines in dmesg would miss rate-limited
    reports, a wrapped ring buffer and the __GFP_NOWARN attempts.)
    """
    out = guest.run(f"cat {DEBUGFS}/times", timeout=60, check=True)
    return TIMES - int(out.stdout.strip())


def fail_cache(guest: Guest, cache: str) -> None:
    """Let failslab hit @cache (until :func:`armed` ends)."""
    guest.run(f"echo 1 > /sys/kernel/slab/{cache}/failslab", check=True)
