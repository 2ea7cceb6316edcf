"""Boot a kernel under virtme-ng and keep it running for SSH sessions.

The guest uses the host's root filesystem (read-only 9p, tmpfs overlays),
so the helper binary built on the host is visible in the guest at the same
path.  vng runs under :mod:`harness.reaper`, which kills the whole process
group when we close its stdin or die, so no QEMU survives any exit path.
The serial console goes to ``console.log`` and is what a boot failure
reports.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BootError, GuestUnreachable, HarnessError, SetupError
from .guest import Guest

READY = "PTIMERS-GUEST-READY"

#: Run in the guest before anything else.  sshd runs commands through root's
#: login shell from the shared passwd: bash would source the host's heavy
#: start-up files on every command (seconds each under TCG), so point root at
#: /bin/sh in the guest's own /etc overlay.  Then announce readiness on the
#: console and keep the guest alive.
GUEST_INIT = (
    "sed -i -e 's#^root:.*#root:x:0:0:root:/root:/bin/sh#' /etc/passwd; "
    # debugfs: kmemleak and the fault injection knobs live there.
    "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null; "
    f"echo {READY} > /dev/kmsg; echo {READY}; exec sleep 2147483647"
)

CONSOLE_FAILURES = (
    "Kernel panic - not syncing",
    "---[ end Kernel panic",
    "Attempted to kill init",
)


@dataclass
class Accel:
    """Which accelerator to use and why."""

    name: str  # "kvm" or "tcg"
    reason: str


def probe_accel(timeout: float = 10.0) -> Accel:
    """Decide between KVM and TCG quickly, never hanging.

    ``$PTIMERS_ACCEL`` forces a choice.  Otherwise KVM is trusted only when
    /dev/kvm is usable, a VMX/SVM module (kvm_intel/kvm_amd) is loaded -- a
    nested PVM device is not enough: QEMU aborts setting MSRs or crawls --
    and QEMU can start a paused KVM vCPU with ``-cpu host`` within the
    timeout.
    """
    forced = os.environ.get("PTIMERS_ACCEL")
    if forced in {"kvm", "tcg"}:
        return Accel(forced, "forced by $PTIMERS_ACCEL")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is not accessible")
    if not any(Path("/sys/module", m).exists() for m in ("kvm_intel", "kvm_amd")):
        return Accel("tcg", "/dev/kvm is not backed by kvm_intel/kvm_amd (nested PVM?)")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return Accel("tcg", "qemu-system-x86_64 not found")
    try:
        proc = subprocess.run(
            [
                qemu,
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-nodefaults",
                "-display",
                "none",
                "-S",
                "-monitor",
                "stdio",
            ],
            input="quit\n",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Accel("tcg", f"QEMU with KVM did not start within {timeout:.0f}s")
    if proc.returncode != 0:
        return Accel(
            "tcg", "QEMU with KVM failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        )
    return Accel("kvm", "KVM probe passed")


def free_port() -> int:
    """A free TCP port on loopback for the SSH forward."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class VirtmeVM:
    """A running virtme-ng guest reachable by SSH on 127.0.0.1:port."""

    image: Path
    workdir: Path
    cpus: int = 2
    # Possible CPUs, 0 for as many as cpus.  The kernel sizes per-CPU data
    # by them, and upstream's timer hash table (512 buckets per possible
    # CPU).  QEMU gets that many vCPUs and the kernel maxcpus=cpus: the rest
    # stay present but offline (never started, no host cost).  QEMU's
    # hot-pluggable maxcpus= would not do: under TCG the kernel sees no
    # hypervisor and ignores the MADT's disabled entries.
    possible_cpus: int = 0
    memory: str = "2G"
    boot_timeout: float = 240.0
    append: list[str] = field(default_factory=list)
    # Extra QEMU arguments (e.g. the instruction-counting plugin)
    qemu_opts: list[str] = field(default_factory=list)
    accel: Accel | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready_seconds: float = 0.0
    attempts: int = 0

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    @property
    def stdout(self) -> Path:
        return self.workdir / "guest-stdout.log"

    def command(self) -> list[str]:
        """The vng command line (also shown to the user for reproduction)."""
        accel = self.accel or probe_accel()
        self.accel = accel
        cmd = [
            "vng",
            "--run",
            str(self.image),
            "--force-9p",
            "--verbose",
            "--cpus",
            str(max(self.cpus, self.possible_cpus)),
            "--memory",
            self.memory,
            # vng's 9p root does not put root= on the command line; 6.12
            # then panics looking for init.  /dev/root is vng's mount tag.
            "--append",
            "root=/dev/root",
            # vng asks for net.ifnames=0 so eth0 keeps its name while udhcpc
            # configures it.  But the guest's systemd-udevd sees the host's
            # /.dockerenv (or /run/.containerenv) through the shared root,
            # believes it runs in a container and then reads PID 1's argv
            # instead of /proc/cmdline: it renames eth0 to enp0s9, and when
            # that lands while udhcpc runs, the address goes nowhere and SSH
            # never answers.  The kernel hands unknown NAME=value parameters
            # to init as environment, and udevd (started by vng's init)
            # honours $SYSTEMD_PROC_CMDLINE before anything else.
            "--append",
            "SYSTEMD_PROC_CMDLINE=net.ifnames=0",
            "--ssh",
            str(self.port),
            "--ssh-tcp",
            "--name",
            "ptimers",
        ]
        if accel.name == "tcg":
            cmd.append("--disable-kvm")
        if self.possible_cpus > self.cpus:
            cmd += ["--append", f"maxcpus={self.cpus}"]
        for item in self.append:
            cmd += ["--append", item]
        if self.qemu_opts:
            cmd.append("--qemu-opts=" + " ".join(shlex.quote(o) for o in self.qemu_opts))
        cmd += ["--exec", GUEST_INIT]
        return cmd

    def start(self) -> None:
        """Start the guest; returns once QEMU runs (see :meth:`wait_ready`)."""
        env = dict(os.environ)
        # vng runs virtme-run from PATH: use the ones next to our interpreter.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        if shutil.which("vng", path=env["PATH"]) is None:
            raise SetupError("vng (virtme-ng) is not installed", hint="run ./ptimers setup")
        if not self.image.is_file():
            raise BootError(f"kernel image {self.image} does not exist")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        for f in (self.console, self.stdout):
            f.write_text("")
        cmd = self.command()
        (self.workdir / "vng-command.txt").write_text(" ".join(cmd) + "\n")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.reaper",
                str(self.stdout),
                str(self.console),
                "--",
                *cmd,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_failure(self) -> str | None:
        """A panic marker seen on the console, if any."""
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return None
        return next((m for m in CONSOLE_FAILURES if m in text), None)

    def boot_error(self, what: str, kind: type[BootError] = BootError) -> BootError:
        return kind(
            f"{what} (kernel {self.image}, accel {self.accel.name if self.accel else '?'})",
            hint=f"console log: {self.console}; vng command: {self.workdir / 'vng-command.txt'}",
            detail=tail(self.console),
        )

    def wait_ready(self) -> None:
        """Wait until the guest announced readiness; fail fast on panic/exit."""
        deadline = self.started + self.boot_timeout
        while time.monotonic() < deadline:
            if (marker := self.console_failure()) is not None:
                self.stop()
                raise self.boot_error(f"guest failed to boot: {marker!r} on the console")
            if not self.alive():
                raise self.boot_error("QEMU exited before the guest came up")
            try:
                if READY in self.stdout.read_text(errors="replace"):
                    self.ready_seconds = time.monotonic() - self.started
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise self.boot_error(f"guest not ready within {self.boot_timeout:.0f}s (hang?)")

    def connect(self, timeout: float = 120.0) -> tuple[Guest, float]:
        """SSH into the guest once it announced readiness; return it and the seconds taken.

        sshd answers within seconds of the readiness line (debug kernels
        under TCG: ~4 s), so waiting the whole boot timeout only hides a
        broken guest network.  A failure stops the guest and carries the
        console, whose tail shows why (udhcpc, sshd), and ends at once when
        QEMU dies or the kernel panics meanwhile.
        """
        guest = Guest(self.port)
        start = time.monotonic()
        last: HarnessError | None = None
        while True:
            if (marker := self.console_failure()) is not None:
                self.stop()
                raise self.boot_error(
                    f"guest crashed before SSH answered: {marker!r} on the console"
                )
            if not self.alive():
                self.stop()
                raise self.boot_error("QEMU exited before SSH answered")
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                break
            try:
                guest.connect(timeout=min(10.0, max(1.0, left)))
                return guest, time.monotonic() - start
            except HarnessError as exc:
                last = exc
        self.stop()
        raise self.boot_error(
            f"guest announced readiness but SSH on 127.0.0.1:{self.port} did not answer "
            f"within {timeout:.0f}s ({last.message if last else 'no attempt'})",
            GuestUnreachable,
        )

    def stop(self) -> None:
        """Kill the guest (idempotent); the reaper takes the process group down."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def boot(
        self, ssh_timeout: float = 120.0, announce: Callable[[str], None] = print
    ) -> tuple[Guest, float]:
        """Start the guest, wait for it and log in; boot once more if only SSH failed.

        A guest whose kernel came up but whose network or sshd did not is
        the host's problem, not the kernel's; one more boot is cheap next to
        a lost CI run or a skipped bisect step.  The retry is announced and
        counted (``attempts``), and the second guest logs to
        ``<workdir>-2``, so a recurring cause stays visible.
        """
        retry_dir = self.workdir.with_name(self.workdir.name + "-2")
        shutil.rmtree(retry_dir, ignore_errors=True)  # an earlier run's retry
        for attempt in (1, 2):
            self.attempts = attempt
            self.start()
            self.wait_ready()
            try:
                return self.connect(ssh_timeout)
            except GuestUnreachable as exc:
                if attempt == 2:
                    raise
                announce(f"harness: {exc.message}; booting once more")
                self.workdir, self.port = retry_dir, 0
        raise AssertionError("unreachable")

    def __enter__(self) -> VirtmeVM:
        """The guest is stopped on exit; :meth:`boot` starts it."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
