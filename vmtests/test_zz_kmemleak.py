"""After the whole suite: kmemleak must find no unreferenced objects.

Runs last (file order).  kmemleak needs two scans to report an object,
and objects freed through RCU need a grace period first.
"""

from __future__ import annotations

import re

import pytest

from harness.guest import Guest

KML = "/sys/kernel/debug/kmemleak"


@pytest.mark.needs("kmemleak")
def test_no_leaks_after_suite(guest: Guest) -> None:
    guest.run(f"sleep 2; echo scan > {KML}; sleep 6; echo scan > {KML}", timeout=300, check=True)
    report = guest.read_file(KML)
    objects = re.findall(r"^unreferenced object (0x[0-9a-f]+) \(size (\d+)\):", report, re.M)
    assert objects == [], f"kmemleak found {len(objects)} leak(s):\n{report[:6000]}"
