"""After the whole suite: kmemleak must find no unreferenced objects.

Runs last (file order).  A kmemleak scan reports an object only when it
was unreferenced, unchanged since the previous scan and at least 5 s old
(mm/kmemleak.c: the checksum test and MSECS_MIN_AGE), hence two scans with
a pause; the pause before them lets RCU free what is queued.  The report
in debugfs lists every object reported so far, whichever scan found it.
Each leak is named with the test during which it was allocated
(:func:`harness.kmemleak.attribute`), and only a pattern on its backtrace
(``vmtests/kmemleak-allowlist.txt``) can excuse it.
"""

from __future__ import annotations

import pytest

from harness import kmemleak
from harness.guest import Guest

KML = "/sys/kernel/debug/kmemleak"


@pytest.mark.runs_last
@pytest.mark.needs("kmemleak")
def test_no_leaks_after_suite(guest: Guest, kernel_timeline: list[tuple[str, int]]) -> None:
    guest.run(f"sleep 2; echo scan > {KML}; sleep 6; echo scan > {KML}", timeout=300, check=True)
    report = guest.run(f"cat {KML}", timeout=60, check=True).stdout
    leaks = kmemleak.parse(report)
    allow = kmemleak.load_allowlist()
    leaked = [leak for leak in leaks if not kmemleak.allowed(leak, allow)]
    assert leaked == [], f"kmemleak found {len(leaked)} leak(s):\n" + "\n".join(
        kmemleak.describe(leak, kernel_timeline) for leak in leaked
    )
