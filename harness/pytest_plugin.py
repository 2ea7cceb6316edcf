"""pytest plugin: ``pytest vmtests/ --kernel=PATH`` boots PATH once and tests it.

Registered from the repository's root conftest.  Responsibilities:

* options (``--kernel``, ``--bisect``, ``--results-dir``, boot knobs);
* one guest per session, torn down on every exit path;
* after each vmtest, the kernel log records it printed (``/dev/kmsg``, by
  sequence number) are scanned for splats and the test fails if the kernel
  complained, even when the helper was happy, or if records were overwritten
  before they could be read; the records printed after the last test are
  scanned at session end and fail the session;
* features are probed in the guest and ``@pytest.mark.needs("...")`` skips
  tests whose feature is missing (bisecting inside the series works);
* ``results.json``, ``summary.md`` and a JUnit file per run;
* with ``--bisect``, infrastructure failures exit 125 (``git bisect run``
  skips the commit), real failures exit 1 -- including a kernel that
  crashes or hangs in a test -- and usage errors 128 (abort the bisection).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import failslab, kconfig, procfs
from . import helper as helper_mod
from .errors import (
    BootError,
    GuestError,
    GuestUnreachable,
    GuestWedged,
    HarnessError,
    KernelBroken,
)
from .guest import Guest
from .helper import ContractError, Helper, Op
from .kmsg import KmsgCursor
from .paths import KERNEL_CONFIG_DIR
from .results import RunRecord, TestRecord, markdown_summary, write_json
from .splat import Detector, report
from .vm import CONSOLE_FAILURES, VirtmeVM, tail
from .watchdog import ConsoleWatch

INFRA_EXIT = 125
BISECT_ABORT = 128
_VMTESTS = "vmtests"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "kernel under test")
    group.addoption(
        "--kernel",
        metavar="PATH",
        help="bzImage to boot (or a build/cache directory containing one)",
    )
    group.addoption(
        "--model-examples",
        type=int,
        default=40,
        help="examples of the model-based sequence test (vmtests/test_model.py)",
    )
    group.addoption(
        "--model-steps",
        type=int,
        default=40,
        help="most operations per example of the model-based sequence test",
    )
    group.addoption(
        "--fuzz-cases",
        type=int,
        default=100_000,
        help="inputs of the timer_create() fuzzer, half with the flag (vmtests/test_fuzz.py); "
        "only the default's trace is recorded for comparison with 6.12",
    )
    group.addoption(
        "--run-first",
        action="append",
        default=[],
        metavar="NODEID",
        help="run the tests whose node ID starts with NODEID first (repeatable): the same "
        "suite in another order, so that with -x the expected failure ends the session early",
    )
    group.addoption(
        "--bisect",
        action="store_true",
        help="exit 125 on build/boot/config problems so 'git bisect run' skips",
    )
    group.addoption(
        "--boot-failure-is-bad",
        action="store_true",
        help="with --bisect: a kernel that panics, splats or hangs while booting is a bad "
        "commit (exit 1), not an untestable one (125) -- for bisecting a boot regression",
    )
    group.addoption(
        "--results-dir",
        metavar="DIR",
        default="results/vmtests",
        help="where results.json, summary.md and junit.xml go",
    )
    group.addoption(
        "--boot-timeout",
        type=float,
        default=240.0,
        help="seconds to wait for the guest (TCG is slow)",
    )
    group.addoption(
        "--ssh-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for SSH once the guest is up (then one more boot is tried)",
    )
    group.addoption(
        "--selftests",
        metavar="DIR",
        help="built tools/testing/selftests/timers of the kernel's tree",
    )
    group.addoption(
        "--helper32",
        action="store_true",
        help="drive every test with the -m32 helper (the compat syscalls)",
    )
    group.addoption(
        "--expect-features",
        metavar="LIST",
        action="append",
        default=[],
        help="comma-separated features the kernel must have (" + ", ".join(EXPECTABLE) + "); "
        "one that is absent fails the session instead of skipping its tests (repeatable)",
    )
    group.addoption(
        "--splat-grace",
        type=float,
        default=30.0,
        help="seconds a guest command may keep running after the kernel splatted on the "
        "console before the test fails as a hang (0 disables the console watch)",
    )
    group.addoption("--vm-cpus", type=int, default=2)
    group.addoption("--vm-memory", default="2G")


def resolve_kernel(value: str) -> Path:
    """Accept a bzImage, a cache entry, or a build directory."""
    path = Path(value).expanduser()
    for cand in (path, path / "bzImage", path / "arch/x86/boot/bzImage"):
        if cand.is_file():
            with cand.open("rb") as f:
                head = f.read(0x206)
            if len(head) == 0x206 and head[0x202:0x206] == b"HdrS":
                return cand.resolve()
            raise pytest.UsageError(
                f"--kernel {value}: {cand} is not an x86 bzImage (no 'HdrS' boot header); "
                "pass arch/x86/boot/bzImage from a kernel build"
            )
    raise pytest.UsageError(
        f"--kernel {value}: no such kernel image; build one with './ptimers build' "
        "or pass the path of an x86 bzImage"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(feature): skip unless the guest has the feature")
    config.addinivalue_line("markers", "bench: benchmark smoke case")
    config.addinivalue_line(
        "markers",
        "floods_kmsg: the test overflows the kernel log on purpose; the records it pushes "
        "out do not fail it (what is read is still scanned)",
    )
    results_dir = Path(config.getoption("--results-dir"))
    if config.getoption("--kernel"):
        try:
            kernel = resolve_kernel(config.getoption("--kernel"))
        except pytest.UsageError as exc:
            if not config.getoption("--bisect"):
                raise
            # Mid-bisection a missing image means this commit did not build.
            pytest.exit(f"error: {exc}", returncode=INFRA_EXIT)
        config.stash[_KERNEL] = kernel
        if not config.option.xmlpath:
            config.option.xmlpath = str(results_dir / "junit.xml")
    global _SESSION_STATE
    _SESSION_STATE = config.stash[_STATE] = _State(results_dir)


class _State:
    """Per-session bookkeeping shared by hooks and fixtures."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self.vm: VirtmeVM | None = None
        self.guest: Guest | None = None
        self.dmesg: KmsgCursor | None = None
        self.run: RunRecord | None = None
        self.infra_error: str | None = None
        self.crashed: str | None = None
        self.detector = Detector.default()
        #: the console watch polled during guest commands (None: disabled)
        self.watch: ConsoleWatch | None = None
        #: what the session-end scan of the kernel log found ('' if nothing)
        self.late: str = ""


_KERNEL = pytest.StashKey[Path]()
_STATE = pytest.StashKey[_State]()
# pytest_runtest_logreport gets no config; the one session's state is here.
_SESSION_STATE: _State | None = None


def _is_vmtest(item: pytest.Item) -> bool:
    return _VMTESTS in Path(str(item.fspath)).parts


def run_first(items: list[pytest.Item], prefixes: list[str]) -> list[pytest.Item]:
    """``items`` with those whose node ID starts with one of ``prefixes`` first.

    Stable: the order within both groups stays pytest's.  A test marked
    ``runs_last`` (the kmemleak scan, which judges what the suite before it
    left behind) keeps its place: run first it sees nothing and passes.
    """
    if not prefixes:
        return items
    first = [
        i
        for i in items
        if any(i.nodeid.startswith(p) for p in prefixes)
        and i.get_closest_marker("runs_last") is None
    ]
    return first + [i for i in items if i not in first]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = run_first(items, config.getoption("--run-first"))
    if _KERNEL in config.stash:
        return
    skip = pytest.mark.skip(reason="no --kernel given (pytest vmtests/ --kernel=PATH)")
    for item in items:
        if _is_vmtest(item):
            item.add_marker(skip)


def _probe_features(guest: Guest, helper: Helper) -> dict[str, bool]:
    """What the kernel under test offers, asked of the kernel itself."""
    feats: dict[str, bool] = {}
    raw = guest.run("cat /proc/config.gz | base64", timeout=60)
    config_text = ""
    if raw.status == 0 and raw.stdout:
        import base64

        config_text = (
            gzip.GzipFile(fileobj=io.BytesIO(base64.b64decode(raw.stdout))).read().decode()
        )
    feats["ikconfig"] = bool(config_text)
    feats["ia32_emulation"] = "CONFIG_IA32_EMULATION=y" in config_text
    dbg = guest.run(
        "for f in kmemleak failslab fail_page_alloc; do "
        "test -e /sys/kernel/debug/$f && echo $f; done",
        timeout=60,
    ).stdout.split()
    feats["kmemleak"] = "kmemleak" in dbg
    feats["failslab"] = "failslab" in dbg
    feats["fail_page_alloc"] = "fail_page_alloc" in dbg
    # The debug flavor's checkers: a test that relies on KASAN or lockdep
    # to see a memory-safety bug passes silently without them, so the
    # debug run demands them (--expect-features).  Lockdep turns itself off
    # after its first report ("debug_locks: 0"); it is then no checker.
    feats["kasan"] = "CONFIG_KASAN=y" in config_text
    # What real CRIU needs (kernel-config/criu.config): without it the
    # real-CRIU tests skip naming the options; ./ptimers test demands it.
    feats["criu_config"] = bool(config_text) and not criu_options_missing(config_text)
    stats = guest.run("cat /proc/lockdep_stats 2>/dev/null", timeout=60).stdout
    feats["lockdep"] = _lockdep_on(stats)
    res = helper.run([{"op": "proc_timers"}, {"op": "probe"}])
    order = helper.run(
        [{"op": "create"}, {"op": "create"}, {"op": "create"}, {"op": "proc_timers"}]
    )[3]
    listed = [t.id for t in procfs.parse(order["text"])] if order["ret"] == 0 else []
    # 6.12 lists newest first; the series lists by ID (stable under churn).
    feats["proc_timers_by_id"] = listed == [0, 1, 2]
    feats["proc_timers"] = res[0]["ret"] == 0
    probe = res[1]
    for feat, key in (("sigev_timer_id", "flag"), ("prctl_restore_ids", "prctl")):
        # Three answers (vmtests/helper/probe.h): a kernel whose new
        # interface half works must fail, not pass as an old kernel.
        if probe[key] == "broken":
            raise KernelBroken(
                f"the {feat} probe got an answer no kernel should give: {probe[key + '_detail']}",
                hint="this kernel's implementation is broken; see vmtests/helper/probe.h "
                "for what the probe asks",
            )
        feats[feat] = probe[key] == "present"
    feats["reserved_slot"] = _probe_reserved_slot(guest, helper, feats)
    return feats


#: prctl(2) option of upstream's restore mode (include/uapi/linux/prctl.h).
PR_TIMER_CREATE_RESTORE_IDS = 77


def _probe_reserved_slot(guest: Guest, helper: Helper, feats: dict[str, bool]) -> bool:
    """Whether a delete keeps the timer's slot (and its array nodes) reserved.

    Only an xarray kernel allocates nodes in timer_create(), and only
    failslab makes that visible: with node allocations failing, an exact
    create of the ID just deleted (64, alone in its leaf) succeeds where the
    slot is kept and fails with -EAGAIN where it is not.  In the same window
    an exact create of 4096 (a new root, inner node and leaf) must fail, or
    the injection was not working and the answer means nothing.  Anything
    else is a broken kernel.  Without failslab (the default flavor) or an
    exact-ID interface the answer is "absent", and --expect-features cannot
    demand it.
    """
    if not (feats["failslab"] and feats["proc_timers_by_id"]):
        return False
    mode: Op = {"op": "prctl", "option": PR_TIMER_CREATE_RESTORE_IDS, "arg3": 0}

    def exact(want: int) -> list[Op]:
        if feats["sigev_timer_id"]:
            return [{"op": "create", "id": want, "flags": ["timer_id"]}]
        return [{**mode, "arg2": 1}, {"op": "create", "id": want}, {**mode, "arg2": 0}]

    if not (feats["sigev_timer_id"] or feats["prctl_restore_ids"]):
        return False
    make_it_fail = {"op": "write_file", "path": "/proc/self/make-it-fail"}
    ops: list[Op] = [
        {"op": "create"},
        *exact(64),
        {"op": "delete", "id": 64},
        {"op": "mlockall"},
        {**make_it_fail, "data": "1"},
        *exact(64),
        *exact(4096),
        {**make_it_fail, "data": "0"},
    ]
    with failslab.armed(guest):
        failslab.fail_cache(guest, "radix_tree_node")
        before = failslab.injected(guest)
        res = helper.run(ops)
        hit = failslab.injected(guest) - before
    setup = [r for r in res if r.get("op") in ("delete", "mlockall", "write_file", "prctl")]
    creates = [r for r in res if r.get("op") == "create"]
    again, control = creates[-2], creates[-1]
    answer = f"{again} then, for 4096, {control}, with {hit} injected failure(s)"
    if any(r.get("ret", -1) < 0 for r in setup) or [c.get("id") for c in creates[:2]] != [0, 64]:
        raise KernelBroken(
            f"the reserved-slot probe's set-up failed: {res}",
            hint="see harness/pytest_plugin.py:_probe_reserved_slot for the sequence",
        )
    injecting = control.get("ret") == -1 and control.get("errno") == "EAGAIN" and hit > 0
    if injecting and again.get("ret") == 0 and again.get("id") == 64:
        return True
    if injecting and again.get("ret") == -1 and again.get("errno") == "EAGAIN":
        return False
    raise KernelBroken(
        "the reserved-slot probe got an answer no kernel should give: an exact create "
        f"of a just-deleted ID under failing node allocations answered {answer}",
        hint="see harness/pytest_plugin.py:_probe_reserved_slot for the sequence",
    )


def criu_options_missing(config_text: str) -> list[str]:
    """kernel-config/criu.config's options the running kernel's config lacks."""
    wanted = kconfig.Fragment.load(KERNEL_CONFIG_DIR / "criu.config").values
    return kconfig.missing(wanted, kconfig.read_config(config_text))


def _lockdep_on(stats: str) -> bool:
    """Whether /proc/lockdep_stats says lockdep is built in and still checking."""
    for line in stats.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "debug_locks":
            return value.strip() == "1"
    return False


#: The debug flavor's checkers (kernel-config/debug.config), demanded by
#: ``./ptimers test --flavor debug``.
DEBUG_TOOLS: tuple[str, ...] = ("kasan", "lockdep", "kmemleak", "failslab", "fail_page_alloc")
# Features --expect-features can demand, and what each needs to be present.
EXPECTABLE: tuple[str, ...] = (
    "sigev_timer_id",
    "prctl_restore_ids",
    "proc_timers_by_id",
    "reserved_slot",
    "proc_timers",
    "criu_config",
    *DEBUG_TOOLS,
)


def parse_expected(value: str) -> list[str]:
    """The --expect-features list; an unknown name is a usage error."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPECTABLE]
    if unknown:
        raise pytest.UsageError(
            f"--expect-features: unknown feature(s) {', '.join(unknown)}; "
            f"known: {', '.join(EXPECTABLE)}"
        )
    return names


def check_expected(feats: dict[str, bool], expected: list[str]) -> None:
    """Fail the session when a feature the caller expects is absent."""
    missing = [n for n in expected if not feats.get(n)]
    if missing:
        raise KernelBroken(
            f"expected feature(s) absent on this kernel: {', '.join(missing)}",
            hint="the kernel lacks what --expect-features demands (a regression, or the "
            "wrong kernel); drop the option to test an older kernel",
        )


def _announce(config: pytest.Config, line: str) -> None:
    """Print a line on the terminal now, even from inside a test's setup.

    Output during setup is captured (and shown only if the test fails);
    a retried boot must be visible in every run.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is None:
        reporter.write_line(line, yellow=True)
        return
    with capman.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line, yellow=True)


def _boot(config: pytest.Config, state: _State) -> None:
    """Boot the session's guest; any failure ends the session with one line."""
    kernel = config.stash[_KERNEL]
    state.run = RunRecord(kernel=str(kernel))
    try:
        binary = helper_mod.build()
        vm = VirtmeVM(
            kernel,
            state.results_dir / "guest",
            cpus=config.getoption("--vm-cpus"),
            memory=config.getoption("--vm-memory"),
            boot_timeout=config.getoption("--boot-timeout"),
        )
        state.vm = vm
        try:
            guest, ssh = vm.boot(
                config.getoption("--ssh-timeout"), announce=lambda line: _announce(config, line)
            )
        finally:
            state.run.boot_attempts = vm.attempts
        state.guest = guest
        state.dmesg = KmsgCursor(guest)
        state.run.release = guest.run("uname -r", check=True).stdout.strip()
        state.run.accel = vm.accel.name if vm.accel else ""
        state.run.boot_seconds = round(vm.ready_seconds, 2)
        state.run.ssh_seconds = round(ssh, 2)
        # A kernel that splats while booting is broken before any test.
        boot_log = state.dmesg.new()
        if splats := state.detector.scan(boot_log):
            raise BootError("the kernel complained during boot", detail=report(splats))
        state.dmesg.mark()
        if (grace := config.getoption("--splat-grace")) > 0:
            state.watch = ConsoleWatch(
                vm.console, state.detector, vm.alive, CONSOLE_FAILURES, grace
            )
            guest.watchdog = state.watch
        state.run.features = _probe(state, guest, Helper(guest, binary))
        check_expected(
            state.run.features, parse_expected(",".join(config.getoption("--expect-features")))
        )
    except KernelBroken as exc:
        # The kernel booted and then answered wrongly: a bad commit, not an
        # untestable one, with or without --bisect.
        state.crashed = exc.message
        _teardown(state)
        raise pytest.exit(exc.render(), returncode=1) from None
    except HarnessError as exc:
        code = 3
        if config.getoption("--bisect"):
            # SSH failing twice on a kernel that booted is the host's network,
            # not a bad commit: skip it even with --boot-failure-is-bad.
            if (
                isinstance(exc, BootError)
                and not isinstance(exc, GuestUnreachable)
                and config.getoption("--boot-failure-is-bad")
            ):
                state.crashed = f"failed to boot: {exc.message}"
                code = 1
            else:
                state.infra_error = exc.render()
                code = INFRA_EXIT
        _teardown(state)
        raise pytest.exit(exc.render(), returncode=code) from None


def _probe(state: _State, guest: Guest, helper: Helper) -> dict[str, bool]:
    """Probe the features; a probe that kills the guest or splats is the kernel's fault."""
    assert state.vm is not None and state.dmesg is not None
    try:
        feats = _probe_features(guest, helper)
    except ContractError as exc:
        # The kernel's own answers contradict each other (a create that
        # succeeded without its timer being there): a broken kernel.
        raise KernelBroken(
            f"the kernel answered the feature probes inconsistently: {exc.message}",
            detail=exc.detail,
        ) from exc
    except GuestError as exc:
        marker = state.vm.console_failure()
        if marker is not None or not state.vm.alive() or isinstance(exc, GuestWedged):
            what = marker or (exc.message if isinstance(exc, GuestWedged) else "QEMU exited")
            raise KernelBroken(
                f"the kernel failed while its features were probed ({what})",
                detail=tail(state.vm.console, 60),
            ) from exc
        raise
    if splats := state.detector.scan(state.dmesg.new()):
        raise KernelBroken(
            "the kernel complained while its features were probed", detail=report(splats)
        )
    state.dmesg.mark()
    return feats


def _teardown(state: _State) -> None:
    if state.guest is not None:
        state.guest.close()
    if state.vm is not None:
        state.vm.stop()


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest) -> Generator[Guest, None, None]:
    """The session's booted guest (boots on first use)."""
    state = request.config.stash[_STATE]
    if state.guest is None:
        _boot(request.config, state)
    assert state.guest is not None
    yield state.guest


@pytest.fixture(scope="session")
def features(guest: Guest, request: pytest.FixtureRequest) -> dict[str, bool]:
    """Features probed in the guest (see _probe_features)."""
    run = request.config.stash[_STATE].run
    assert run is not None
    return run.features


@pytest.fixture(scope="session")
def helper(guest: Guest, request: pytest.FixtureRequest) -> Helper:
    """The C helper, driven in the guest (32-bit with --helper32)."""
    target = "ptimerctl32" if request.config.getoption("--helper32") else "ptimerctl"
    return Helper(guest, helper_mod.build(target))


@pytest.fixture(scope="session")
def compat_helper(guest: Guest) -> Helper:
    """The helper built with -m32: timer_create through the compat syscall."""
    return Helper(guest, helper_mod.build("ptimerctl32"))


@pytest.fixture(scope="session")
def accel(guest: Guest, request: pytest.FixtureRequest) -> str:
    """How the guest runs: "kvm" or "tcg" (emulated: timing checks are unreliable)."""
    run = request.config.stash[_STATE].run
    assert run is not None and run.accel in ("kvm", "tcg")
    return run.accel


@pytest.fixture(scope="session")
def measurements(guest: Guest, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Numbers a test measured, by node ID: written to results.json (``measurements``).

    For reports (CRIU restore times); tests never assert on times.
    """
    run = request.config.stash[_STATE].run
    assert run is not None
    return run.measurements


@pytest.fixture(scope="session")
def kernel_timeline(guest: Guest, request: pytest.FixtureRequest) -> list[tuple[str, int]]:
    """(label, guest jiffies) at every kernel log read so far: boot, then each test.

    Live: entries are appended as tests run.  Maps a kmemleak allocation
    time to the test that ran then (harness.kmemleak.attribute).
    """
    cursor = request.config.stash[_STATE].dmesg
    assert cursor is not None
    return cursor.history


@pytest.fixture(autouse=True)
def _needs(request: pytest.FixtureRequest) -> None:
    """Skip tests whose ``needs`` feature the guest lacks."""
    wanted = [name for marker in request.node.iter_markers("needs") for name in marker.args]
    if not wanted:
        return
    feats: dict[str, bool] = request.getfixturevalue("features")
    for name in wanted:
        # A misspelt name would skip the test on every kernel.
        if name not in feats:
            pytest.fail(f"needs({name!r}): no such feature; known: {', '.join(sorted(feats))}")
        if not feats[name]:
            pytest.skip(f"kernel under test lacks {name}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start the console watch afresh: an earlier test's splat is that test's."""
    state = item.config.stash[_STATE]
    if state.watch is not None:
        state.watch.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    state = item.config.stash[_STATE]
    if rep.when != "call" or not _is_vmtest(item) or state.guest is None:
        return
    if (crash := _guest_crash(state, call)) is not None:
        # The kernel under test crashed or hung in this test: that is the
        # test's failure (a bad commit when bisecting), not infrastructure.
        # Later tests would only time out one by one: stop the session.
        rep.outcome = "failed"
        console = tail(state.vm.console, 60) if state.vm is not None else "(no console)"
        rep.longrepr = f"the guest {crash} during this test; console tail:\n{console}"
        state.crashed = crash
        item.session.shouldfail = f"the guest {crash} in {item.nodeid}"
        return
    if state.dmesg is None:
        return
    try:
        batch = state.dmesg.read(item.nodeid)
    except HarnessError as exc:
        rep.outcome = "failed"
        rep.longrepr = f"could not read the kernel log after the test: {exc.render()}"
        return
    problems = [report(s)] if (s := state.detector.scan(batch.lines())) else []
    if batch.lost and item.get_closest_marker("floods_kmsg") is None:
        problems.append(batch.lost_report())
    if problems:
        rep.outcome = "failed"
        prev = str(rep.longrepr) + "\n\n" if rep.longrepr else ""
        rep.longrepr = prev + "\n\n".join(problems)


def _wedged(exc: BaseException | None) -> GuestWedged | None:
    """The GuestWedged behind ``exc``, also when a test re-raised it as another error."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, GuestWedged):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _guest_crash(state: _State, call: pytest.CallInfo[None]) -> str | None:
    """How the guest died or hung during the test just run, or None."""
    vm = state.vm
    if vm is None:
        return None
    if (marker := vm.console_failure()) is not None:
        return f"crashed ({marker!r} on the console)"
    if not vm.alive():
        return "died (QEMU exited)"
    if call.excinfo is not None and (wedged := _wedged(call.excinfo.value)) is not None:
        # The console watch ended a command that kept running after a splat:
        # whatever it holds stays held, so later tests would only hang too.
        return f"hung after a splat ({wedged})"
    if call.excinfo is not None and call.excinfo.errisinstance(HarnessError):
        # A guest command timed out or the link dropped: is the guest still there?
        assert state.guest is not None
        try:
            state.guest.run("true", timeout=30)
        except HarnessError:
            return "stopped answering"
    return None


def bisect_exit(exitstatus: int, infra_error: str | None, crashed: str | None) -> int:
    """The exit status ``git bisect run`` needs for this session.

    0 good, 1 bad (a test failed, or the kernel crashed or hung in a test),
    125 skip (the kernel could not be tested: build, config, boot or
    helper problems), 128 abort (an interruption, a collection or usage
    error, or no tests selected would give the same answer at every
    commit; stopping beats a wrong verdict).
    """
    if crashed:
        return 1
    if infra_error:
        return INFRA_EXIT
    if exitstatus in (
        pytest.ExitCode.INTERRUPTED,  # also what a collection error gives
        pytest.ExitCode.USAGE_ERROR,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        return BISECT_ABORT
    if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
        return INFRA_EXIT
    return 0 if exitstatus == pytest.ExitCode.OK else 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each vmtest once: its call phase, or setup if it ended there."""
    state = _SESSION_STATE
    if state is None or state.run is None or _VMTESTS not in Path(report.fspath).parts:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome: str
        if report.when == "call":
            outcome = report.outcome
        else:
            outcome = "skipped" if report.outcome == "skipped" else "error"
        msg = ""
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            msg = str(report.longrepr[2])
        elif report.failed and report.longrepr:
            msg = str(report.longrepr).strip().splitlines()[-1]
        state.run.tests.append(TestRecord(report.nodeid, outcome, round(report.duration, 3), msg))


def _late_scan(state: _State) -> str:
    """Splats (or lost records) in the kernel log after the last test's check.

    Fixture teardowns run after that check, and a splat can arrive late (a
    timer firing, a deferred free): without this scan it would be seen by
    nobody.  '' when the log is clean or there is no live guest to ask (it
    never booted, was already stopped after a boot failure, or crashed).
    """
    if state.guest is None or state.dmesg is None or state.crashed:
        return ""
    if state.vm is None or not state.vm.alive():
        return ""
    try:
        batch = state.dmesg.read("session end")
    except HarnessError as exc:
        return f"could not read the kernel log at session end: {exc.render()}"
    problems = [report(s)] if (s := state.detector.scan(batch.lines())) else []
    if batch.lost:
        problems.append(batch.lost_report())
    return "\n\n".join(problems)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash[_STATE]
    state.late = _late_scan(state)
    if state.late and exitstatus == pytest.ExitCode.OK:
        exitstatus = session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _teardown(state)
    if state.run is not None:
        state.run.session_end = state.late
        state.run.exit_status = int(exitstatus)
        write_json(state.results_dir / "results.json", state.run.to_json())
        (state.results_dir / "summary.md").write_text(markdown_summary(state.run))
    if config.getoption("--bisect"):
        session.exitstatus = bisect_exit(int(exitstatus), state.infra_error, state.crashed)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[_STATE]
    if state.late:
        terminalreporter.write_sep("=", "kernel log after the last test", red=True)
        terminalreporter.write_line(state.late)
    if state.run is not None:
        c = state.run.counts()
        terminalreporter.write_line(
            f"harness: kernel {state.run.release} ({state.run.accel}), "
            f"{len(state.run.tests)} vmtests: {c}; results in {state.results_dir}/results.json"
        )
