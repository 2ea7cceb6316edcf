"""The reaper takes the whole process group down when its stdin closes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.paths import REPO

CHILD = ["sh", "-c", "sleep 300 & sleep 300"]


def group_alive(pgid: int) -> bool:
    """Whether any process is still in the group (zombies do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_members(pgid: int) -> int:
    return sum(
        1 for entry in Path("/proc").iterdir() if entry.name.isdigit() and _pgrp(entry) == pgid
    )


def _pgrp(entry: Path) -> int | None:
    try:
        fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])


def wait_gone(pgid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    return False


def wait_members(pgid: int, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while group_members(pgid) < n:
        assert time.monotonic() < deadline, f"group {pgid} never reached {n} processes"
        time.sleep(0.02)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def reaper_cmd(tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.reaper",
        str(tmp_path / "out.log"),
        str(tmp_path / "err.log"),
        "--",
        *CHILD,
    ]


def test_closing_stdin_kills_the_group(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        reaper_cmd(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
    )
    assert proc.stdin is not None and proc.stdout is not None
    pgid = int(proc.stdout.readline())
    try:
        assert pgid != os.getpgrp()
        wait_members(pgid, 3)  # sh and both sleeps
        proc.stdin.close()
        assert wait_gone(pgid), "process group survived the reaper"
        proc.wait(timeout=10)
    finally:
        kill_group(pgid)
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_parent_killed_reaper_still_kills_the_group(tmp_path: Path) -> None:
    """The pipe holder dies by SIGKILL: the kernel closes the pipe, EOF, group killed."""
    pgid_file = tmp_path / "pgid"
    script = textwrap.dedent(
        f"""
        import os, signal, subprocess, sys
        proc = subprocess.Popen({reaper_cmd(tmp_path)!r}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        pgid = proc.stdout.readline().decode().strip()
        with open({str(pgid_file)!r} + ".tmp", "w") as f:
            f.write(f"{{pgid}} {{proc.pid}}")
        os.rename({str(pgid_file)!r} + ".tmp", {str(pgid_file)!r})
        sys.stdin.readline()  # the test says when to die
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, cwd=REPO, text=True
    )
    assert holder.stdin is not None
    deadline = time.monotonic() + 10
    while not pgid_file.exists():
        assert holder.poll() is None, "pipe holder exited early"
        assert time.monotonic() < deadline, "reaper never reported its pgid"
        time.sleep(0.02)
    pgid, reaper_pid = map(int, pgid_file.read_text().split())
    try:
        wait_members(pgid, 3)
        holder.stdin.write("die\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == -signal.SIGKILL
        assert wait_gone(pgid), "process group outlived the SIGKILLed parent"
        # The orphaned reaper itself exits too.
        deadline = time.monotonic() + 10
        while process_alive(reaper_pid):
            assert time.monotonic() < deadline, "the reaper outlived its work"
            time.sleep(0.05)
    finally:
        kill_group(pgid)
        holder.kill()
        holder.wait()
        holder.stdin.close()


def test_command_exit_is_reported(tmp_path: Path) -> None:
    """The command ends on its own (stdin still open): its status is the reaper's."""
    cmd = [*reaper_cmd(tmp_path)[: -len(CHILD)], "sh", "-c", "echo hi; echo oops >&2; exit 3"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert int(proc.stdout.readline()) > 0
        assert proc.wait(timeout=20) == 3
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert (tmp_path / "out.log").read_text() == "hi\n"
    assert (tmp_path / "err.log").read_text() == "oops\n"


def test_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.reaper", "a", "b", "sleep", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
    )
    assert proc.returncode == 2
    assert "Usage: python -m harness.reaper" in proc.stderr
