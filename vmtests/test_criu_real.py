"""Real CRIU, old and new, dumps and restores a process holding timers.

``test_criu_restore.py`` imitates CRIU's restore loop in the helper; this
module runs CRIU itself, the client the whole series exists for:

* Debian 12's CRIU 3.17.1 (host package) restores IDs with the legacy
  create/delete loop and must keep working on every kernel;
* CRIU >= 4.2 (Debian unstable, in a chroot: see :mod:`harness.criu`)
  creates each timer at its ID with ``PR_TIMER_CREATE_RESTORE_IDS`` where
  the kernel has it (``criu check --feature timer_cr_ids``) and falls back
  to the loop elsewhere.

The process (``vmtests/helper/criutimers.c``) holds timers at sparse IDs
with every notify kind and clock, checks itself before the dump and again
after the restore (each timer under its ID with its interval, the right
listing, each armed one firing with its own ID and value in the right
thread), and the test compares ``/proc/<pid>/timers`` before and after.
Restore wall times land in results.json (``measurements``) for the README's
table; they are TCG times and are never asserted on.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import INT_MAX
from harness import criu as criu_mod
from harness import helper as helper_mod
from harness import procfs
from harness.guest import Guest
from harness.paths import HELPER_DIR
from harness.pytest_plugin import criu_options_missing

#: How long the guest may take to set a layout up (the loop to ID 100000
#: under TCG takes about a second) and CRIU to dump or restore it (seconds
#: here).  CRIU runs under timeout(1) in the guest: a CRIU 3.17.1 whose
#: create/delete loop never meets its ID (a kernel that skips IDs) is killed
#: and reported with its log, not left to a guest command's timeout.
SETUP_TIMEOUT = 300.0
CRIU_TIMEOUT = 180

HIGH_LOOP_ID = 100_000
TOP_ID = INT_MAX - 1


@dataclass(frozen=True)
class Timer:
    """One SPEC of criutimers: ID, clock, notify kind, signal, interval (ms), value."""

    id: int
    clock: str
    notify: str
    signo: int
    interval_ms: int
    value: int

    def spec(self) -> str:
        return f"{self.id},{self.clock},{self.notify},{self.signo},{self.interval_ms},{self.value}"


# Process-directed signals 40-45, thread-directed 50-55: the worker and the
# main thread each wait for their own set.
SPARSE = [
    Timer(0, "m", "s", 40, 100, 7000),
    Timer(2, "r", "t", 50, 130, 7002),
    Timer(3, "p", "s", 41, 60, 7003),  # process CPU clock
    Timer(6, "t", "s", 42, 80, 7006),  # the main thread's CPU clock
    Timer(7, "b", "n", 43, 200, 7007),  # SIGEV_NONE, armed
    Timer(9, "m", "s", 44, 0, 7009),  # disarmed
    Timer(HIGH_LOOP_ID, "m", "t", 51, 90, 7100),
]
TOP = [
    Timer(0, "m", "t", 50, 110, 8000),
    Timer(5, "p", "s", 40, 70, 8005),
    Timer(1000, "b", "n", 41, 150, 8100),
    Timer(TOP_ID, "r", "s", 42, 120, 8200),
]
LAYOUTS = {"sparse": ("loop", SPARSE), "top": ("exact", TOP)}
#: /proc/<pid>/timers' ClockID per SPEC clock: CPU clocks show the kernel's
#: encoding of "this process" / "this thread" (MAKE_{PROCESS,THREAD}_CPUCLOCK(0, SCHED)).
CLOCK_IDS = {"r": 0, "m": 1, "b": 7, "p": -6, "t": -2}
# SIGEV_THREAD_ID shows as "signal/tid.N" (fs/proc/base.c: the kind without the
# THREAD_ID bit, then the target).
NOTIFY = {"s": ("signal", "pid"), "t": ("signal", "tid"), "n": ("none", "pid")}


def expected_records(timers: list[Timer], pid: int, worker: int) -> list[procfs.ProcTimer]:
    """What /proc/<pid>/timers must list for ``timers``: compared before the dump
    too, so a kernel that stores a wrong clock, value or target cannot pass
    because CRIU faithfully kept the wrong thing."""
    out = []
    for t in timers:
        notify, target = NOTIFY[t.notify]
        out.append(
            procfs.ProcTimer(
                id=t.id,
                signo=t.signo,
                sival_ptr=t.value,
                notify=notify,
                target=target,
                target_id=worker if t.notify == "t" else pid,
                clock=CLOCK_IDS[t.clock],
            )
        )
    return out


@dataclass(frozen=True)
class Criu:
    """How to run one CRIU in the guest."""

    name: str
    version: str
    #: prefix that puts a command into CRIU's root ('' for the host root)
    chroot: str
    #: the guest path of that root ('/' for the host root)
    root: str
    #: why this CRIU cannot run on the kernel at all (see OLD_CRIU_VDSO), or None
    unusable: str | None = None

    def outside(self, path: str) -> str:
        """A path inside CRIU's root as seen from the guest's own root."""
        return path if self.root == "/" else self.root + path


@pytest.fixture(scope="session")
def criutimers() -> Path:
    return helper_mod.build("criutimers")


@pytest.fixture(scope="session")
def criu_tools(guest: Guest, criutimers: Path) -> dict[str, Criu]:
    """Both CRIUs, ready in the guest (the unstable root mounted as a chroot).

    A kernel built without CRIU's options (kernel-config/criu.config) is not
    broken: the tests skip naming them (./ptimers test demands them with
    --expect-features=criu_config).
    """
    config = guest.run("zcat /proc/config.gz", timeout=60)
    if config.status != 0:
        pytest.skip("kernel has no /proc/config.gz (CONFIG_IKCONFIG_PROC) to check CRIU's options")
    if missing := criu_options_missing(config.stdout):
        pytest.skip(
            "kernel lacks what CRIU needs (kernel-config/criu.config): " + ", ".join(missing)
        )
    old = Criu("3.17", criu_mod.host_criu_version(), "", "/")
    root = criu_mod.unstable_root()
    guest.run(criu_mod.chroot_setup(root.path), timeout=60, check=True)
    r = shlex.quote(str(root.path))
    guest.run(f"cp {shlex.quote(str(criutimers))} {r}/tmp/criutimers", timeout=60, check=True)
    new = Criu("4.2", root.criu_version, f"chroot {r} ", str(root.path))
    old = dataclasses.replace(old, unusable=old_criu_cannot_work(guest, old))
    return {"3.17": old, "4.2": new}


def criu_errors(log: str, limit: int = 25) -> str:
    """The lines of a CRIU log that say what went wrong."""
    lines = [ln for ln in log.splitlines() if re.search(r"Error|Warn|fail", ln)]
    return "\n".join(lines[-limit:]) or "\n".join(log.splitlines()[-limit:])


def run_criu(guest: Guest, c: Criu, args: str, log: str) -> tuple[int, float]:
    """Run ``criu ARGS -o LOG``; its exit status and wall seconds in the guest."""
    res = guest.run(
        f"s=$(date +%s%N); timeout -s KILL {CRIU_TIMEOUT} {c.chroot}criu {args} -v4 "
        f"-o {shlex.quote(log)}; rc=$?; "
        'e=$(date +%s%N); echo "$rc $(( (e - s) / 1000 ))"',
        timeout=CRIU_TIMEOUT + 60,
    )
    words = res.stdout.split()
    assert res.status == 0 and len(words) >= 2, (
        f"timing wrapper around criu failed:\n{res.describe()}"
    )
    rc, usec = words[-2:]
    return int(rc), int(usec) / 1e6


def criu_step(guest: Guest, c: Criu, step: str, args: str, work_dir: str) -> float:
    """``criu ARGS -D WORK/img``; its seconds, or the test fails with CRIU's log lines."""
    log = f"{work_dir}/img/{step}.log"
    rc, seconds = run_criu(guest, c, f"{args} -D {work_dir}/img", log)
    if rc != 0:
        text = guest.read_file(c.outside(log))
        what = f"killed after {CRIU_TIMEOUT} s" if rc == 137 else f"exit {rc}"
        pytest.fail(f"criu {c.version} {step} failed ({what}):\n{criu_errors(text)}")
    return seconds


def wait_file(guest: Guest, path: str, timeout: float, pid: int) -> str:
    """Contents of a guest file once it exists (the process writes it atomically).

    Fails at once if process ``pid`` is gone before the file appears.
    """
    q = shlex.quote(path)
    res = guest.run(
        f"end=$(( $(date +%s) + {int(timeout)} )); "
        f"while [ $(date +%s) -lt $end ]; do [ -e {q} ] && exec cat {q}; "
        f"kill -0 {pid} 2>/dev/null || exit 2; sleep 0.2; done; exit 1",
        timeout=timeout + 60,
    )
    assert res.status != 2, f"process {pid} exited before writing {path}"
    assert res.status == 0, f"{path} did not appear within {timeout:.0f}s"
    return res.stdout


def verdict(text: str) -> list[str]:
    """The FAIL lines of a criutimers self-check (which must have ended)."""
    lines = text.splitlines()
    assert lines and lines[-1] == "end", f"self-check did not finish:\n{text}"
    return [ln for ln in lines if ln.startswith("FAIL")]


def proc_timers(guest: Guest, pid: int) -> list[procfs.ProcTimer]:
    res = guest.run(f"cat /proc/{pid}/timers", timeout=60)
    assert res.status == 0, f"cannot read /proc/{pid}/timers: {res.stderr}"
    return sorted(procfs.parse(res.stdout), key=lambda t: t.id)


def check_process(guest: Guest, c: Criu, pid: int, work: str, round_: int) -> None:
    guest.run(f"kill -USR1 {pid}", timeout=30, check=True)
    text = wait_file(guest, c.outside(f"{work}/verify.{round_}"), 120, pid)
    assert not (bad := verdict(text)), f"self-check {round_} failed:\n" + "\n".join(bad)


#: What CRIU 3.17.1 prints on kernels >= 6.13, whose vDSO data pages moved
#: (the vvar area CRIU 3.17.1 parses has another size); later CRIUs know the
#: new layout.  On such a kernel 3.17.1 cannot dump anything: its cells skip
#: with this line.  On 6.12 (the series' base) it must work.
OLD_CRIU_VDSO = "vdso: Unexpected rt vDSO area bounds"


def kernel_at_least(guest: Guest, major: int, minor: int) -> bool:
    release = guest.run("uname -r", timeout=30, check=True).stdout.strip()
    m = re.match(r"(\d+)\.(\d+)", release)
    assert m, f"unparsable kernel release {release!r}"
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


def old_criu_cannot_work(guest: Guest, c: Criu) -> str | None:
    """Why CRIU 3.17.1 cannot run on this kernel at all, or None.

    Only its known vDSO failure, only on kernels >= 6.13: anything else is
    a failure of the kernel or of the test.
    """
    if c.name != "3.17" or not kernel_at_least(guest, 6, 13):
        return None
    res = guest.run(f"{c.chroot}criu check", timeout=CRIU_TIMEOUT + 60)
    if res.status != 0 and OLD_CRIU_VDSO in res.stderr:
        line = next(ln for ln in res.stderr.splitlines() if OLD_CRIU_VDSO in ln)
        return f"CRIU {c.version} cannot run on kernels >= 6.13 (vDSO layout): {line.strip()}"
    return None


def test_criu_check(guest: Guest, criu_tools: dict[str, Criu], features: dict[str, bool]) -> None:
    """Both CRIUs accept the kernel; only kernels with the prctl offer timer_cr_ids.

    (CRIU 3.17.1 on kernels >= 6.13: see OLD_CRIU_VDSO.)
    """
    for c in criu_tools.values():
        if c.unusable is not None:
            continue
        res = guest.run(f"{c.chroot}criu check", timeout=CRIU_TIMEOUT + 60)
        assert res.status == 0, f"criu {c.version}: criu check failed:\n{res.stdout}{res.stderr}"
    new = criu_tools["4.2"]
    res = guest.run(f"{new.chroot}criu check --feature timer_cr_ids", timeout=CRIU_TIMEOUT + 60)
    assert (res.status == 0) == features["prctl_restore_ids"], (
        f"criu {new.version} says timer_cr_ids is "
        f"{'there' if res.status == 0 else 'absent'} (exit {res.status}) on a kernel whose "
        f"prctl_restore_ids probe said {features['prctl_restore_ids']}:\n{res.stdout}{res.stderr}"
    )


@pytest.mark.parametrize("layout", ["sparse", "top"])
@pytest.mark.parametrize("which", ["3.17", "4.2"])
def test_criu_dump_restore(
    guest: Guest,
    criu_tools: dict[str, Criu],
    features: dict[str, bool],
    measurements: dict[str, Any],
    request: pytest.FixtureRequest,
    which: str,
    layout: str,
) -> None:
    """Dump, kill, restore; the process finds every timer as it was."""
    c = criu_tools[which]
    mode, timers = LAYOUTS[layout]
    if c.unusable is not None:
        pytest.skip(c.unusable)
    if mode == "exact" and not features["prctl_restore_ids"]:
        pytest.skip(
            f"setting up ID {TOP_ID} needs an exact create (this kernel has none): "
            f"~2^31 create/delete pairs, hours under TCG"
        )
    if mode == "exact" and which == "3.17":
        pytest.skip(
            f"CRIU {c.version} restores IDs with the create/delete loop: ID {TOP_ID} takes "
            "~2^31 pairs, hours under TCG"
        )
    binary = "/tmp/criutimers" if c.root != "/" else str(HELPER_DIR / "criutimers")
    work = guest.run(f"{c.chroot}mktemp -d /tmp/criu.XXXXXX", timeout=30, check=True)
    work_dir = work.stdout.strip()
    specs = " ".join(t.spec() for t in timers)
    # The redirections happen inside CRIU's root: a file opened outside it
    # sits on a mount CRIU cannot see from there ("Can't lookup mount").
    inner = (
        f"exec setsid {binary} {work_dir} {mode} {specs} </dev/null >/dev/null 2>{work_dir}/stderr"
    )
    # sh and chroot exec, setsid does not fork (no group leader): $! is the process.
    started_pid = guest.run(
        f"{c.chroot}sh -c {shlex.quote(inner)} & echo $!", timeout=30, check=True
    )
    pid = int(started_pid.stdout.split()[-1])
    started = time.monotonic()
    try:
        try:
            ready = wait_file(guest, c.outside(f"{work_dir}/ready"), SETUP_TIMEOUT, pid)
        except AssertionError as exc:
            err = guest.read_file(c.outside(f"{work_dir}/stderr"))
            pytest.fail(f"criutimers did not get ready ({exc}): {err}")
        ready_pid, worker = (int(w) for w in ready.split())
        assert ready_pid == pid, f"ready file names {ready_pid}, started {pid}"
        setup_s = time.monotonic() - started
        before = proc_timers(guest, pid)
        want = expected_records(timers, pid, worker)
        assert before == want, "/proc/<pid>/timers does not list what was created"
        check_process(guest, c, pid, work_dir, 1)

        guest.run(f"{c.chroot}mkdir {work_dir}/img", timeout=30, check=True)
        dump_s = criu_step(guest, c, "dump", f"dump -t {pid}", work_dir)
        gone = guest.run(f"kill -0 {pid} 2>/dev/null", timeout=30)
        assert gone.status != 0, f"process {pid} still alive after the dump"
        restore_s = criu_step(guest, c, "restore", "restore -d", work_dir)
        after = proc_timers(guest, pid)
        assert after == before, "/proc/<pid>/timers differs after the restore"
        check_process(guest, c, pid, work_dir, 2)
        measurements[request.node.nodeid] = {
            "criu_version": c.version,
            "layout": layout,
            "highest_id": max(t.id for t in timers),
            "timers": len(timers),
            "prctl_path": features["prctl_restore_ids"] and which == "4.2",
            "setup_s": round(setup_s, 3),
            "dump_s": round(dump_s, 3),
            "restore_s": round(restore_s, 3),
        }
    finally:
        guest.run(f"kill -KILL {pid} 2>/dev/null; rm -rf {c.outside(work_dir)}", timeout=60)
