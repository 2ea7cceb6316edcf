"""Host-side checks of the ptimerctl helper protocol.

The helper is built into a temporary directory and run directly on the host
kernel, so these tests need no VM.  They pin down the JSON protocol (one
result line per operation, errors as ``{"op": "error"}``) and check that
each operation really reaches the kernel, by asserting on parsed values.

Features the host kernel may lack (``PR_TIMER_CREATE_RESTORE_IDS``,
``SIGEV_TIMER_ID``, ``/proc/PID/timers``) are probed and skipped, never
assumed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HELPER_SRC = Path(__file__).resolve().parents[2] / "vmtests" / "helper"

Op = dict[str, Any]

SIGALRM = int(signal.SIGALRM)
SIGUSR1 = int(signal.SIGUSR1)
SIGUSR2 = int(signal.SIGUSR2)
MS = 1_000_000


class Run:
    """One helper invocation: parsed result lines and the exit status."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.status = proc.returncode
        self.stderr = proc.stderr
        self.results: list[Op] = [json.loads(line) for line in proc.stdout.splitlines()]

    def __getitem__(self, i: int) -> Op:
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc/make not available")
    out = tmp_path_factory.mktemp("ptimerctl")
    proc = subprocess.run(
        ["make", "-s", "-C", str(HELPER_SRC), f"O={out}", "ptimerctl"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # Warning-free is part of the contract
    assert "warning" not in proc.stderr, proc.stderr
    return out


@pytest.fixture(scope="session", params=["ptimerctl", "ptimerctl32"])
def ptimerctl(request: pytest.FixtureRequest, build_dir: Path) -> Path:
    """Each test runs against the 64-bit and the -m32 binary."""
    name: str = request.param
    if name == "ptimerctl32":
        proc = subprocess.run(
            ["make", "-s", "-C", str(HELPER_SRC), f"O={build_dir}", "ptimerctl32"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"-m32 build failed (gcc-multilib missing?): {proc.stderr[-300:]}")
        assert "warning" not in proc.stderr, proc.stderr
    return build_dir / name


def run(binary: Path, ops: list[Op], *args: str, timeout: float = 10.0) -> Run:
    """Run a fresh helper process with ``ops`` as JSON lines on stdin."""
    text = "".join(json.dumps(op) + "\n" for op in ops)
    proc = subprocess.run(
        [str(binary), *args], input=text, capture_output=True, text=True, timeout=timeout
    )
    return Run(proc)


def ok(binary: Path, ops: list[Op]) -> list[Op]:
    """Run ops that must all be accepted; one result per op."""
    r = run(binary, ops)
    assert r.status == 0, (r.results, r.stderr)
    assert len(r) == len(ops), r.results
    for op, res in zip(ops, r.results, strict=True):
        assert res["op"] == op["op"], res
    return r.results


CAP_SYS_RESOURCE = 24


def has_cap(cap: int) -> bool:
    status = Path("/proc/self/status").read_text()
    eff = next(li for li in status.splitlines() if li.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) & (1 << cap))


def proc_timer_ids(text: str) -> list[int]:
    return sorted(int(line.split()[1]) for line in text.splitlines() if line.startswith("ID:"))


@pytest.fixture(scope="session")
def host_has_restore_prctl(build_dir: Path) -> bool:
    r = run(build_dir / "ptimerctl", [{"op": "prctl", "option": 77, "arg2": 2}])
    return bool(r[0]["ret"] == 0)


@pytest.fixture(scope="session")
def host_has_proc_timers(build_dir: Path) -> bool:
    r = run(build_dir / "ptimerctl", [{"op": "proc_timers"}])
    return bool(r[0]["ret"] == 0)


# --------------------------------------------------------------------------
# Protocol
# --------------------------------------------------------------------------


def test_version(ptimerctl: Path) -> None:
    proc = subprocess.run([str(ptimerctl), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    bits = "32" if ptimerctl.name.endswith("32") else "64"
    assert proc.stdout.startswith("ptimerctl ") and f"({bits}-bit)" in proc.stdout


def test_errors_are_reported_and_processing_continues(ptimerctl: Path) -> None:
    lines = [
        "",
        "   ",
        '{"op":"getpid"}',
        "{bad json",
        '{"op":"nosuchop"}',
        '{"op":"create","clok":"monotonic"}',
        '{"op":"create","signo":"14"}',
        '{"op":"create","clock":"nosuchclock"}',
        '{"op":"create","value":1.5}',
        '{"op":"create","value":9223372036854775808}',
        '{"op":"getpid","op":"getpid"}',
        "[1,2]",
        '{"nop":1}',
        '{"op":"delete"}',
        '{"op":"getpid"} trailing',
        '{"op":"caf\\u00e9"}',
        '{"op":"getpid"}',
    ]
    proc = subprocess.run(
        [str(ptimerctl)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=10
    )
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 2
    assert [o["op"] for o in out] == ["getpid"] + ["error"] * 13 + ["getpid"]
    errors = [o["error"] for o in out[1:-1]]
    assert "unknown op 'nosuchop'" in errors[1]
    assert "unknown key 'clok'" in errors[2]
    assert "'signo' must be an integer" in errors[3]
    assert "unknown clock 'nosuchclock'" in errors[4]
    assert "only integers" in errors[5]
    assert "64-bit range" in errors[6]
    assert "duplicate key" in errors[7]
    assert "missing required key 'id'" in errors[10]
    assert "trailing garbage" in errors[11]
    assert "café" in errors[12]


def test_int64_extremes_roundtrip(ptimerctl: Path) -> None:
    """Full 64-bit integers parse; sival_ptr comes back pointer-sized."""
    big, small = 2**63 - 1, -(2**63)
    res = ok(
        ptimerctl,
        [
            {"op": "create", "value": big},
            {"op": "create", "value": small, "signo": SIGUSR1},
            {"op": "settime", "id": 0, "value_ns": 1},
            {"op": "settime", "id": 1, "value_ns": 1},
            {"op": "wait_signal", "signo": SIGALRM},
            {"op": "wait_signal", "signo": SIGUSR1},
        ],
    )
    if ptimerctl.name.endswith("32"):
        assert (res[4]["value"], res[5]["value"]) == (-1, 0)
    else:
        assert (res[4]["value"], res[5]["value"]) == (big, small)


def test_script_mode(ptimerctl: Path) -> None:
    script = json.dumps([{"op": "getpid"}, {"op": "create"}])
    proc = subprocess.run(
        [str(ptimerctl), "--script", script],
        input='{"op":"getpid"}\n',
        capture_output=True,
        text=True,
        timeout=10,
    )
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0
    assert [o["op"] for o in out] == ["getpid", "create"]  # stdin is ignored
    assert out[1] == {"op": "create", "ret": 0, "id": 0}

    proc = subprocess.run(
        [str(ptimerctl), "--script", '{"op":"getpid"}'], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["op"] == "error"


def test_exit_stops_immediately(ptimerctl: Path) -> None:
    r = run(ptimerctl, [{"op": "getpid"}, {"op": "exit", "status": 7}, {"op": "getpid"}])
    assert r.status == 7
    assert [o["op"] for o in r.results] == ["getpid"]


@pytest.fixture
def live(ptimerctl: Path) -> Iterator[subprocess.Popen[str]]:
    """A helper process kept alive, with an extra inherited fd."""
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [str(ptimerctl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(rfd, wfd),
    )
    os.close(rfd)
    os.close(wfd)
    yield proc
    proc.kill()
    proc.wait()


def ask(proc: subprocess.Popen[str], op: Op) -> Op:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(op) + "\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 5)
    assert ready, "helper did not answer"
    result: Op = json.loads(proc.stdout.readline())
    return result


def test_startup_closes_fds_and_blocks_signals(live: subprocess.Popen[str]) -> None:
    pid = ask(live, {"op": "getpid"})["pid"]
    assert pid == live.pid
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]

    status = Path(f"/proc/{pid}/status").read_text()
    blocked = int(next(li for li in status.splitlines() if li.startswith("SigBlk:")).split()[1], 16)
    for sig in (signal.SIGALRM, signal.SIGUSR1, signal.SIGRTMIN, 32, 33, signal.SIGRTMAX):
        assert blocked & (1 << (int(sig) - 1)), sig
    for sig in (signal.SIGSEGV, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGABRT):
        assert not blocked & (1 << (int(sig) - 1)), sig

    # A blocked signal stays pending until wait_signal takes it
    os.kill(pid, signal.SIGUSR2)
    res = ask(live, {"op": "wait_signal", "timeout_ms": 2000})
    assert (res["ret"], res["signo"], res["code_name"]) == (SIGUSR2, SIGUSR2, "SI_USER")
    assert res["code"] == 0


# --------------------------------------------------------------------------
# Timer operations
# --------------------------------------------------------------------------


def test_create_ids_are_sequential_and_not_reused(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "create"},
            {"op": "create", "clock": "realtime"},
            {"op": "create", "clock": 7},  # CLOCK_BOOTTIME as a raw int
            {"op": "delete", "id": 1},
            {"op": "delete", "id": 1},
            {"op": "create"},
            {"op": "delete", "id": 12345},
        ],
    )
    assert [r["id"] for r in res[:3]] == [0, 1, 2]
    assert res[3] == {"op": "delete", "ret": 0}
    assert res[4] == {"op": "delete", "ret": -1, "errno": "EINVAL"}
    assert res[5]["id"] == 3
    assert res[6]["errno"] == "EINVAL"


def test_create_variants(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "create", "notify": "none"},
            {"op": "create", "notify": "null"},
            {"op": "create", "notify": "thread", "signo": SIGUSR1},
            {"op": "create", "notify": "thread_id"},
            {"op": "create", "notify": "thread_id", "tid": 1},
            {"op": "create", "notify_raw": 99},
            {"op": "create", "signo": 0},
            {"op": "create", "bad_sev_ptr": True},
            {"op": "create", "bad_id_ptr": True},
            {"op": "create", "clock": "process_cputime"},
            {"op": "create", "clock": "thread_cputime"},
            {"op": "create", "clock": {"cpu_pid": 0, "kind": "prof"}},
            {"op": "create", "clock": {"cpu_pid": 0, "kind": "virt", "thread": True}},
            {"op": "create", "clock": {"cpu_pid": 0}},
            {"op": "create", "clock": "tai"},
            {"op": "create", "clock": "boottime"},
            {"op": "create", "clock": "monotonic_raw"},
            {"op": "create", "clock": 12345},
            {"op": "create", "clock": "realtime_alarm"},
        ],
    )
    for i in (0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15):
        assert res[i]["ret"] == 0, (i, res[i])
    assert res[4]["errno"] == "EINVAL"  # tid 1 is not in our thread group
    assert res[5]["errno"] == "EINVAL"
    assert res[6]["errno"] == "EINVAL"
    assert res[7]["errno"] == "EFAULT"
    assert res[8] == {"op": "create", "ret": -1, "errno": "EFAULT"}
    assert res[16]["errno"] == "EOPNOTSUPP"  # no timers on MONOTONIC_RAW
    assert res[17]["errno"] == "EINVAL"
    # Alarm timers need CAP_WAKE_ALARM and a wakeup-capable RTC
    assert res[18]["ret"] == 0 or res[18]["errno"] in ("EPERM", "EOPNOTSUPP", "ENOTSUPP")


def test_timer_id_flag(ptimerctl: Path) -> None:
    """SIGEV_TIMER_ID: EINVAL where unsupported, else the wanted ID or EBUSY."""
    res = ok(
        ptimerctl,
        [
            {"op": "create"},
            {"op": "create", "flags": ["timer_id"], "id": 42},
            {"op": "create", "flags": ["timer_id"], "id": 0},
            {"op": "create", "flags": ["timer_id"], "id": -3},
        ],
    )
    if res[1]["ret"] == -1:
        assert res[1]["errno"] == "EINVAL"
        assert res[2]["errno"] == res[3]["errno"] == "EINVAL"
    else:
        assert res[1]["id"] == 42
        assert res[2]["errno"] == "EBUSY"
        assert res[3]["errno"] == "EINVAL"


def test_settime_gettime_and_signal(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "create", "value": 4242},
            {"op": "settime", "id": 0, "value_ns": 10 * MS},
            {"op": "gettime", "id": 0},
            {"op": "wait_signal", "timeout_ms": 2000},
            {"op": "gettime", "id": 0},
            {"op": "settime", "id": 0, "value_ns": 5000 * MS, "interval_ns": 7 * MS},
            {"op": "settime", "id": 0, "value_ns": 0},
            {"op": "gettime", "id": 0},
            {"op": "settime", "id": 0, "value_ns": -1},
            {"op": "gettime", "id": 99},
            {"op": "getoverrun", "id": 0},
        ],
    )
    assert res[1] == {"op": "settime", "ret": 0, "old_value_ns": 0, "old_interval_ns": 0}
    assert 0 < res[2]["value_ns"] <= 10 * MS and res[2]["interval_ns"] == 0
    sig = res[3]
    assert sig["ret"] == sig["signo"] == SIGALRM
    assert sig["code_name"] == "SI_TIMER" and sig["code"] == -2
    assert (sig["timerid"], sig["value"], sig["overrun"]) == (0, 4242, 0)
    assert res[4]["value_ns"] == 0
    assert 4000 * MS < res[6]["old_value_ns"] <= 5000 * MS
    assert res[6]["old_interval_ns"] == 7 * MS
    assert (res[7]["value_ns"], res[7]["interval_ns"]) == (0, 0)
    assert res[8]["errno"] == "EINVAL"
    assert res[9]["errno"] == "EINVAL"
    assert res[10] == {"op": "getoverrun", "ret": 0}


def test_absolute_timer_in_the_past_fires(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "create", "clock": "monotonic", "signo": SIGUSR1, "value": 5},
            {"op": "settime", "id": 0, "value_ns": 1, "abs": True},
            {"op": "wait_signal", "signo": SIGUSR1, "timeout_ms": 1000},
        ],
    )
    assert res[2]["signo"] == SIGUSR1 and res[2]["value"] == 5


def test_periodic_overrun_and_drain(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "drain"},
            {"op": "create", "signo": SIGUSR1},
            {"op": "settime", "id": 0, "value_ns": 1, "interval_ns": 1 * MS},
            {"op": "sleep", "ms": 30},
            {"op": "drain"},
            {"op": "getoverrun", "id": 0},
            {"op": "delete", "id": 0},
            {"op": "wait_signal", "timeout_ms": 20},
        ],
    )
    assert res[0] == {"op": "drain", "ret": 0, "signals": []}
    sigs = res[4]["signals"]
    # One queued signal per timer, the missed expiries are overruns.  A
    # second one may sneak in if drain is preempted for a whole interval.
    assert 1 <= len(sigs) <= 3
    assert sigs[0]["signo"] == SIGUSR1 and sigs[0]["code_name"] == "SI_TIMER"
    assert sigs[0]["timerid"] == 0 and sigs[0]["overrun"] >= 5
    assert res[5]["ret"] == sigs[-1]["overrun"]
    assert res[7] == {"op": "wait_signal", "ret": -1, "errno": "EAGAIN"}


def test_cpu_clock_timers_fire_after_spin(ptimerctl: Path) -> None:
    t0 = time.monotonic()
    res = ok(
        ptimerctl,
        [
            {"op": "create", "clock": "process_cputime", "signo": SIGUSR1},
            {
                "op": "create",
                "clock": {"cpu_pid": 0, "kind": "virt", "thread": True},
                "signo": SIGUSR2,
            },
            {"op": "settime", "id": 0, "value_ns": 20 * MS},
            {"op": "settime", "id": 1, "value_ns": 20 * MS},
            {"op": "wait_signal", "timeout_ms": 0},
            {"op": "spin", "ms": 300},
            {"op": "wait_signal", "signo": SIGUSR1, "timeout_ms": 1000},
            {"op": "wait_signal", "signo": SIGUSR2, "timeout_ms": 1000},
        ],
    )
    assert res[4]["errno"] == "EAGAIN"  # no CPU time burnt yet
    assert res[5] == {"op": "spin", "ret": 0}
    assert res[6]["timerid"] == 0 and res[7]["timerid"] == 1
    assert time.monotonic() - t0 >= 0.3


def test_sleep(ptimerctl: Path) -> None:
    t0 = time.monotonic()
    assert ok(ptimerctl, [{"op": "sleep", "ms": 50}])[0] == {"op": "sleep", "ret": 0}
    assert time.monotonic() - t0 >= 0.05


def test_wait_signal_timeout(ptimerctl: Path) -> None:
    t0 = time.monotonic()
    res = ok(ptimerctl, [{"op": "wait_signal", "signo": SIGUSR1, "timeout_ms": 50}])
    assert res[0] == {"op": "wait_signal", "ret": -1, "errno": "EAGAIN"}
    assert time.monotonic() - t0 >= 0.05


def test_rt_and_glibc_internal_signals(ptimerctl: Path) -> None:
    """Signals 32/33 (glibc internal) are blocked too, so they can be used."""
    res = ok(
        ptimerctl,
        [
            {"op": "create", "signo": 33, "notify": "thread", "value": -5},
            {"op": "create", "signo": 64},
            {"op": "settime", "id": 0, "value_ns": 1},
            {"op": "settime", "id": 1, "value_ns": 1},
            {"op": "wait_signal", "signo": 33},
            {"op": "wait_signal", "signo": 64},
        ],
    )
    assert (res[4]["signo"], res[4]["value"], res[4]["timerid"]) == (33, -5, 0)
    assert (res[5]["signo"], res[5]["timerid"]) == (64, 1)


def test_proc_timers(ptimerctl: Path, host_has_proc_timers: bool) -> None:
    if not host_has_proc_timers:
        pytest.skip("host kernel has no /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE)")
    res = ok(
        ptimerctl,
        [
            {"op": "getpid"},
            {"op": "create", "signo": SIGUSR1},
            {"op": "create", "notify": "none", "clock": "realtime"},
            {"op": "proc_timers"},
            {"op": "proc_timers", "pid": 2**31 - 1},
        ],
    )
    pid = res[0]["pid"]
    text = res[3]["text"]
    assert proc_timer_ids(text) == [0, 1]
    assert f"signal: {SIGUSR1}/" in text and f"notify: signal/pid.{pid}" in text
    assert f"notify: none/pid.{pid}" in text and "ClockID: 0" in text
    assert res[4] == {"op": "proc_timers", "ret": -1, "errno": "ENOENT"}


def test_getpid(ptimerctl: Path) -> None:
    r = run(ptimerctl, [{"op": "getpid"}])
    assert r[0]["pid"] == r[0]["tid"] > 1


def test_prctl_restore_ids(ptimerctl: Path, host_has_restore_prctl: bool) -> None:
    if not host_has_restore_prctl:
        pytest.skip("host kernel lacks PR_TIMER_CREATE_RESTORE_IDS")
    res = ok(
        ptimerctl,
        [
            {"op": "prctl", "option": 77, "arg2": 2},
            {"op": "prctl", "option": 77, "arg2": 1},
            {"op": "prctl", "option": 77, "arg2": 2},
            {"op": "create", "id": 5},
            {"op": "create", "id": 5},
            {"op": "create", "id": -2},
            {"op": "create", "id": 2**31 - 1},
            {"op": "prctl", "option": 77, "arg2": 0},
            {"op": "prctl", "option": 77, "arg2": 3},
            {"op": "create", "id": 5},
        ],
    )
    assert [r["ret"] for r in res[:3]] == [0, 0, 1]
    assert res[3]["id"] == 5
    assert res[4]["errno"] == "EBUSY"
    assert res[5]["errno"] == "EINVAL"
    assert res[6]["id"] == 2**31 - 1
    assert res[7]["ret"] == 0
    assert res[8]["errno"] == "EINVAL"
    assert res[9]["ret"] == 0 and res[9]["id"] != 5  # restore mode off: ignored


def test_rlimit(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "rlimit", "resource": "nofile", "value": 64},
            {"op": "rlimit", "resource": "sigpending", "value": 0},
            {"op": "create"},
            {"op": "rlimit", "resource": "sigpending", "value": -1},
            {"op": "create"},
        ],
    )
    assert res[0] == {"op": "rlimit", "ret": 0}
    assert res[1] == {"op": "rlimit", "ret": 0}
    assert res[2]["errno"] == "EAGAIN"  # the timer's sigqueue is charged
    # Raising the hard limit again needs CAP_SYS_RESOURCE
    if has_cap(CAP_SYS_RESOURCE):
        assert res[3]["ret"] == 0 and res[4]["ret"] == 0
    else:
        assert res[3]["errno"] == "EPERM" and res[4]["errno"] == "EAGAIN"


# --------------------------------------------------------------------------
# Processes and threads
# --------------------------------------------------------------------------


def test_fork(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "getpid"},
            {"op": "create"},
            {
                "op": "fork",
                "script": [
                    {"op": "getpid"},
                    {"op": "create"},
                    {"op": "create"},
                    {"op": "exit", "status": 3},
                    {"op": "getpid"},
                ],
            },
            {"op": "fork", "script": [{"op": "getpid"}]},
            {"op": "create"},
        ],
    )
    parent = res[0]["pid"]
    f = res[2]
    assert f["ret"] == 0 and f["status"] == 3 and f["signal"] == 0
    assert [r["op"] for r in f["results"]] == ["getpid", "create", "create"]
    assert f["results"][0]["pid"] == f["pid"] != parent
    # The child has its own ID space; timers are not inherited
    assert [r["id"] for r in f["results"][1:]] == [0, 1]
    assert res[3]["status"] == 0 and res[3]["results"][0]["pid"] == res[3]["pid"]
    assert res[4]["id"] == 1


def test_threads(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "getpid"},
            {
                "op": "threads",
                "scripts": [
                    [
                        {"op": "getpid"},
                        {"op": "create", "notify": "thread_id", "signo": SIGUSR1, "value": 1},
                        {"op": "settime", "id": 0, "value_ns": 1 * MS},
                        {"op": "wait_signal", "signo": SIGUSR1},
                    ],
                    [{"op": "getpid"}, {"op": "exit", "thread": True}, {"op": "getpid"}],
                    [],
                ],
            },
            {"op": "threads", "scripts": []},
        ],
    )
    pid = res[0]["pid"]
    t = res[1]
    assert t["ret"] == 0 and len(t["tids"]) == 3 and len(set(t["tids"])) == 3
    assert pid not in t["tids"]
    a, b, c = t["results"]
    assert a[0] == {"op": "getpid", "ret": 0, "pid": pid, "tid": t["tids"][0]}
    assert a[1]["id"] == 0
    assert a[3]["signo"] == SIGUSR1 and a[3]["timerid"] == 0 and a[3]["value"] == 1
    assert b == [
        {"op": "getpid", "ret": 0, "pid": pid, "tid": t["tids"][1]},
        {"op": "exit", "ret": 0},
    ]
    assert c == []
    assert res[2] == {"op": "threads", "ret": 0, "tids": [], "results": []}


def test_threads_create_concurrently(ptimerctl: Path) -> None:
    """IDs handed out to racing threads are unique."""
    n, per = 4, 50
    res = ok(
        ptimerctl,
        [
            {"op": "threads", "scripts": [[{"op": "create_many", "count": per}]] * n},
            {"op": "proc_timers"},
        ],
    )
    counts = [r[0]["created"] for r in res[0]["results"]]
    assert counts == [per] * n
    if res[1]["ret"] == 0:
        assert proc_timer_ids(res[1]["text"]) == list(range(n * per))


def test_exec(ptimerctl: Path, host_has_proc_timers: bool) -> None:
    ops: list[Op] = [
        {"op": "getpid"},
        {"op": "create"},
        {"op": "create"},
        {"op": "exec", "script": [{"op": "getpid"}, {"op": "proc_timers"}, {"op": "create"}]},
        {"op": "getpid"},  # never runs: the new image ignores stdin
    ]
    r = run(ptimerctl, ops)
    assert r.status == 0
    assert [o["op"] for o in r.results] == [
        "getpid",
        "create",
        "create",
        "exec",
        "getpid",
        "proc_timers",
        "create",
    ]
    assert r[3] == {"op": "exec", "ret": 0}
    assert r[4]["pid"] == r[0]["pid"]
    if host_has_proc_timers:
        assert proc_timer_ids(r[5]["text"]) == []  # exec deletes all timers
    assert r[6]["ret"] == 0


def test_exec_inside_fork(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {
                "op": "fork",
                "script": [
                    {"op": "exec", "script": [{"op": "getpid"}, {"op": "exit", "status": 4}]},
                ],
            },
        ],
    )
    f = res[0]
    assert f["status"] == 4
    assert [o["op"] for o in f["results"]] == ["exec", "getpid"]
    assert f["results"][1]["pid"] == f["pid"]


def test_exec_rejected_in_threads(ptimerctl: Path) -> None:
    r = run(ptimerctl, [{"op": "threads", "scripts": [[{"op": "exec", "script": []}]]}])
    assert r.status == 2
    assert r[0]["results"][0][0]["op"] == "error"


# --------------------------------------------------------------------------
# Bulk and restore operations
# --------------------------------------------------------------------------


def test_create_many_and_delete_range(ptimerctl: Path) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "create_many", "count": 200, "notify": "none"},
            {"op": "delete_range", "first": 0, "last": 209},
            {"op": "create_many", "count": 3, "clock": 12345},
            {"op": "create_many", "count": 0},
        ],
    )
    m = res[0]
    assert (m["ret"], m["created"], m["first"], m["last"]) == (0, 200, 0, 199)
    assert m["contiguous"] is True and m["elapsed_ns"] > 0
    assert res[1] == {"op": "delete_range", "ret": 0, "deleted": 200, "failed": 10}
    bad = res[2]
    assert (bad["ret"], bad["errno"], bad["created"], bad["first"]) == (-1, "EINVAL", 0, -1)
    assert (res[3]["ret"], res[3]["created"]) == (0, 0)


def test_criu_restore_legacy(ptimerctl: Path, host_has_proc_timers: bool) -> None:
    res = ok(
        ptimerctl,
        [
            {"op": "criu_restore", "ids": [0, 3, 7], "mode": "legacy"},
            {"op": "proc_timers"},
            {"op": "criu_restore", "ids": [5], "mode": "legacy"},
            {"op": "criu_restore", "ids": [100000], "mode": "legacy", "max_calls": 100},
        ],
    )
    r = res[0]
    # 0: one create; 3: creates 1,2,3 and deletes 1,2; 7: creates 4..7, deletes 4..6
    assert (r["ret"], r["restored"], r["syscalls"]) == (0, 3, 13)
    if host_has_proc_timers:
        assert proc_timer_ids(res[1]["text"]) == [0, 3, 7]
    skipped = res[2]
    assert (skipped["ret"], skipped["errno"], skipped["reason"]) == (-1, "ENOSPC", "id_skipped")
    assert skipped["syscalls"] == 2 and skipped["failed_id"] == 5
    capped = res[3]
    assert (capped["errno"], capped["reason"], capped["syscalls"]) == ("E2BIG", "max_calls", 100)


def test_criu_restore_prctl(ptimerctl: Path, host_has_restore_prctl: bool) -> None:
    if not host_has_restore_prctl:
        pytest.skip("host kernel lacks PR_TIMER_CREATE_RESTORE_IDS")
    res = ok(
        ptimerctl,
        [
            {"op": "criu_restore", "ids": [2, 1000, 2**31 - 1], "mode": "prctl"},
            {"op": "prctl", "option": 77, "arg2": 2},
            {"op": "criu_restore", "ids": [1000], "mode": "prctl"},
            {"op": "proc_timers"},
        ],
    )
    assert (res[0]["ret"], res[0]["restored"], res[0]["syscalls"]) == (0, 3, 3)
    assert res[1]["ret"] == 0  # switched off again
    assert (res[2]["errno"], res[2]["reason"]) == ("EBUSY", "timer_create")
    if res[3]["ret"] == 0:
        assert proc_timer_ids(res[3]["text"]) == [2, 1000, 2**31 - 1]


def test_criu_restore_flag(ptimerctl: Path) -> None:
    res = ok(ptimerctl, [{"op": "criu_restore", "ids": [4, 9], "mode": "flag"}])
    r = res[0]
    if r["ret"] == -1:  # host kernel without SIGEV_TIMER_ID
        assert (r["errno"], r["reason"], r["restored"], r["syscalls"]) == (
            "EINVAL",
            "timer_create",
            0,
            1,
        )
    else:
        assert (r["restored"], r["syscalls"]) == (2, 2)
