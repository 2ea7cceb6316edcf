"""Run a command in its own process group and kill that group when told.

The parent (pytest or the CLI) holds the write end of our stdin.  When it
closes it -- a clean stop, an exception, Ctrl-C, or even SIGKILL of the
parent, where the kernel closes the pipe for it -- we kill the whole group
(vng, its shell, virtme-run and QEMU).  This is what guarantees that no QEMU
outlives the harness on any exit path.

Usage: python -m harness.reaper STDOUT STDERR -- CMD...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def _kill_group(pgid: int, proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                # The leader is gone; QEMU may linger a moment in the group.
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    """Start the command, then block until our stdin closes or it exits."""
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out_path, err_path, cmd = argv[0], argv[1], argv[3:]
    with open(out_path, "ab") as out, open(err_path, "ab") as err, open(os.devnull, "rb") as nul:
        proc = subprocess.Popen(cmd, stdin=nul, stdout=out, stderr=err, start_new_session=True)
    pgid = proc.pid
    print(pgid, flush=True)

    def watch_parent() -> None:
        # Block until EOF: the parent closed or died.  Read the raw fd, not
        # sys.stdin.buffer: a daemon thread blocked inside BufferedReader holds
        # its lock, and interpreter shutdown then aborts with "Fatal Python
        # error: _enter_buffered_busy" when the command exits by itself.
        while os.read(0, 4096):
            pass
        _kill_group(pgid, proc)

    def on_signal(signum: int, frame: object) -> None:
        _kill_group(pgid, proc)
        os._exit(128 + signum)

    threading.Thread(target=watch_parent, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    rc = proc.wait()
    _kill_group(pgid, proc)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
