"""The kernel log reader against the real /dev/kmsg: a wrapped ring is not missed.

The plugin reads the log after every test by sequence number
(harness.kmsg).  This floods the ring with three times its size in
debug-level records (not printed on the console), so the ring wraps
between two reads, and checks on the records read what the per-test check
relies on: the hole is found and counted exactly, and every record printed
after the wrap is read.
"""

from __future__ import annotations

import re
import secrets

import pytest

from harness.guest import Guest
from harness.kmsg import KmsgCursor

PAD = "x" * 900  # a record is at most 1024 bytes (PRINTKRB_RECORD_MAX)


def ring_bytes(guest: Guest) -> int:
    """The printk ring's size from the kernel's own config (CONFIG_LOG_BUF_SHIFT)."""
    res = guest.run("zcat /proc/config.gz 2>/dev/null | grep '^CONFIG_LOG_BUF_SHIFT='")
    m = re.fullmatch(r"CONFIG_LOG_BUF_SHIFT=(\d+)", res.stdout.strip())
    if m is None:
        pytest.skip("no CONFIG_LOG_BUF_SHIFT in /proc/config.gz (needs IKCONFIG_PROC)")
    cmdline = guest.read_file("/proc/cmdline")
    if "log_buf_len=" in cmdline:
        pytest.skip("log_buf_len= on the command line: the ring size is not the config's")
    return 1 << int(m.group(1))


@pytest.mark.floods_kmsg
def test_records_after_a_wrap_are_read_and_the_hole_is_counted(guest: Guest) -> None:
    cursor = KmsgCursor(guest)
    cursor.read()
    before = cursor.last
    assert before is not None
    tag = f"ptimers-kmsg-{secrets.token_hex(4)}"
    count = 3 * ring_bytes(guest) // len(PAD) + 1
    # One open per record: each open of /dev/kmsg has its own write
    # ratelimit (10 per 5 s), a loop over one descriptor would be cut.
    guest.run(
        f"i=0; while [ $i -lt {count} ]; do printf '<7>{tag} %d {PAD}\\n' $i > /dev/kmsg; "
        f"i=$((i+1)); done; printf '<7>{tag} end\\n' > /dev/kmsg",
        timeout=600,
        check=True,
    )
    batch = cursor.read()
    seqs = [r.seq for r in batch.records]
    mine = [r.text.split()[1] for r in batch.records if r.text.startswith(tag + " ")]
    # The ring wrapped: everything from just after the first read up to the
    # oldest record left is one hole, counted exactly.
    assert len(batch.lost) == 1
    first, last = batch.lost[0]
    assert first == before + 1
    assert seqs[0] == last + 1
    assert batch.lost_count == seqs[0] - before - 1
    # What is left is read in full: consecutive sequence numbers, ending
    # with the flood's tail and the record printed after it.
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert mine[-1] == "end"
    numbers = [int(n) for n in mine[:-1]]
    assert numbers == list(range(count - len(numbers), count))
    assert 0 < len(numbers) < count
    # The next read starts right after: no second hole, nothing repeated.
    guest.run(f"printf '<7>{tag} after\\n' > /dev/kmsg", check=True)
    after = cursor.read()
    assert after.lost == []
    assert [r.text for r in after.records if r.text.startswith(tag)] == [f"{tag} after"]
