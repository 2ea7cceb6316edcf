"""CLI error handling, the CI verdict, and the plugin's --kernel validation."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.paths import REPO
from harness.pytest_plugin import resolve_kernel


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTIMERS_CACHE", str(tmp_path / "cache"))


def test_help_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: ptimers")
    for sub in ("source", "config", "build", "boot", "test", "main"):
        assert sub in proc.stdout


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n")
    (tree / "Kconfig").write_text('mainmenu "Linux"\n')
    return tree


def test_unknown_flavor_is_one_error_line(
    fake_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["build", "--flavor", "nope", "--source", str(fake_tree)])
    out, err = capsys.readouterr()
    assert rc != 0
    assert rc == 2
    assert [li for li in err.splitlines() if li.startswith("error:")] == [
        "error: unknown flavor 'nope'"
    ]
    assert "next: choose one of: debug, default" in err
    assert "Traceback" not in out + err


def test_source_that_is_not_a_kernel_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["config", "--source", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.splitlines()[0] == f"error: {tmp_path.resolve()} is not a kernel source tree"


def test_config_prints_the_merged_request(
    fake_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["config", "--source", str(fake_tree), "--config", "CONFIG_POSIX_TIMERS=n"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.splitlines()[0].startswith("# flavor default: base.config")
    assert "# CONFIG_POSIX_TIMERS is not set" in out.splitlines()
    assert "# CONFIG_POSIX_TIMERS: command line overrides posix-timers.config" in err


def good_run() -> dict[str, object]:
    return {
        "pytest_exit": 0,
        "counts": {"passed": 12, "failed": 0, "skipped": 1, "error": 0},
        "features": {"sigev_timer_id": True, "prctl_restore_ids": True, "proc_timers": True},
    }


def test_judge_good_run() -> None:
    assert cli.judge("patched", good_run(), ["sigev_timer_id", "prctl_restore_ids"]) == []


def test_judge_no_tests_collected() -> None:
    data = {**good_run(), "pytest_exit": 5, "counts": {"passed": 0}}
    problems = cli.judge("unpatched", data, [])
    assert any("no tests" in p for p in problems)
    assert all(p.startswith("unpatched: ") for p in problems)


def test_judge_nothing_passed() -> None:
    data = {**good_run(), "counts": {"passed": 0, "skipped": 12}}
    assert cli.judge("unpatched", data, []) == ["unpatched: no vmtest passed (were they skipped?)"]


def test_judge_missing_results() -> None:
    # A run that crashed before writing results.json: only pytest_exit is known.
    problems = cli.judge("patched", {"pytest_exit": 3}, ["sigev_timer_id"])
    assert problems == [
        "patched: pytest exited 3",
        "patched: no vmtest passed (were they skipped?)",
        "patched: kernel lacks sigev_timer_id; its tests were skipped",
    ]


def test_judge_required_feature_missing() -> None:
    data = good_run()
    data["features"] = {"sigev_timer_id": True, "prctl_restore_ids": False}
    assert cli.judge("patched", data, ["sigev_timer_id", "prctl_restore_ids"]) == [
        "patched: kernel lacks prctl_restore_ids; its tests were skipped"
    ]


def test_judge_failed_tests() -> None:
    data = {**good_run(), "pytest_exit": 1}
    assert cli.judge("patched", data, []) == ["patched: pytest exited 1"]


def test_resolve_kernel_missing(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match="no such kernel image"):
        resolve_kernel(str(tmp_path / "nope"))
    with pytest.raises(pytest.UsageError, match="no such kernel image"):
        resolve_kernel(str(tmp_path))  # a directory without a bzImage


def fake_bzimage(path: Path, magic: bytes = b"HdrS") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(0x1000)
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x202:0x206] = magic
    path.write_bytes(bytes(data))
    return path


def test_resolve_kernel_rejects_non_bzimage(tmp_path: Path) -> None:
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"\x7fELF" + bytes(0x300))
    with pytest.raises(pytest.UsageError, match="not an x86 bzImage"):
        resolve_kernel(str(vmlinux))
    short = tmp_path / "short"
    short.write_bytes(b"HdrS")
    with pytest.raises(pytest.UsageError, match="HdrS"):
        resolve_kernel(str(short))
    wrong = fake_bzimage(tmp_path / "wrong", magic=b"HDRS")
    with pytest.raises(pytest.UsageError):
        resolve_kernel(str(wrong))


def test_resolve_kernel_accepts_bzimage(tmp_path: Path) -> None:
    image = fake_bzimage(tmp_path / "bzImage")
    assert resolve_kernel(str(image)) == image.resolve()
    # A cache entry (dir/bzImage) and a build directory (arch/x86/boot/bzImage).
    assert resolve_kernel(str(tmp_path)) == image.resolve()
    build = tmp_path / "build"
    built = fake_bzimage(build / "arch/x86/boot/bzImage")
    assert resolve_kernel(str(build)) == built.resolve()


def test_pytest_with_missing_kernel_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "vmtests/",
            "--kernel=/nonexistent",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--results-dir={tmp_path / 'results'}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output
    errors = [li for li in output.splitlines() if li.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert "/nonexistent" in errors[0]
    assert "Traceback" not in output


def test_pytest_args_after_double_dash_follow_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bisect GOOD BAD --tree X -- -k t`: argparse alone rejects the tail."""
    seen: dict[str, object] = {}

    def fake(args: object) -> int:
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(cli, "cmd_bisect", fake)
    argv = ["bisect", "v1", "v2", "--tree", "/x", "--", "-k", "test_exact_id", "--", "-x"]
    assert cli.main(argv) == 0
    assert (seen["good"], seen["bad"], seen["tree"]) == ("v1", "v2", Path("/x"))
    assert seen["pytest_args"] == ["-k", "test_exact_id", "--", "-x"]


def test_double_dash_on_a_command_without_pytest_args(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["source", "--", "-k", "x"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ptimers: error: 'source' takes nothing after --"
    )


def test_boot_takes_the_guest_command_after_dashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # README: ./ptimers boot --kernel BZIMAGE -- CMD
    seen: list[list[str]] = []

    def fake_boot(args: argparse.Namespace) -> int:
        seen.append(args.command)
        return 0

    monkeypatch.setattr(cli, "cmd_boot", fake_boot)
    assert cli.main(["boot", "--kernel", "bz", "--", "cat", "/proc/self/timers"]) == 0
    assert cli.main(["boot", "--kernel", "bz", "uname"]) == 0
    assert seen == [["cat", "/proc/self/timers"], ["uname"]]


def test_bisect_step_never_reports_bad_for_a_harness_problem(tmp_path: Path) -> None:
    # Not a kernel tree: the step cannot test anything -> 125 (skip), not 1 or 2.
    assert cli.main(["bisect-step", "--tree", str(tmp_path)]) == 125


@pytest.mark.parametrize(
    ("flavor", "root", "summary"),
    [
        ("default", "results", "test-summary.json"),
        ("debug", "results/debug", "test-summary-debug.json"),
    ],
)
def test_test_results_are_kept_apart_per_flavor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavor: str, root: str, summary: str
) -> None:
    # A debug run must not overwrite the default run's results/patched/.
    monkeypatch.setattr(cli, "REPO", tmp_path)
    seen: list[Path] = []

    def fake_run(kernel: Path, results_dir: Path, extra: list[str]) -> dict[str, object]:
        seen.append(results_dir)
        return {
            "pytest_exit": 0,
            "counts": {"passed": 3},
            "features": {"sigev_timer_id": True, "prctl_restore_ids": True},
        }

    monkeypatch.setattr(cli, "run_vmtests", fake_run)
    args = argparse.Namespace(
        skip_unit=True,
        kernel=[str(tmp_path / "patched")],
        flavor=flavor,
        pytest_args=[],
        no_compat=False,
        which="patched",
        source=None,
    )
    assert cli.cmd_test(args) == 0
    assert seen == [tmp_path / root / "patched", tmp_path / root / "patched-compat"]
    data = json.loads((tmp_path / "results" / summary).read_text())
    assert data["patched"]["counts"] == {"passed": 3}


def test_bench_given_kernels(tmp_path: Path) -> None:
    """--kernel LABEL=BZIMAGE: bad specs are one clear error naming the fix."""
    from harness.cli import given_kernels
    from harness.errors import HarnessError

    image = tmp_path / "bzImage"
    image.write_bytes(b"x")
    ks = given_kernels([f"parked={image}", f"patched={image}"])
    assert [(k.label, k.image) for k in ks] == [("parked", image), ("patched", image)]
    for bad in ("parked", f"={image}", "parked=/nonexistent/bzImage"):
        with pytest.raises(HarnessError) as exc:
            given_kernels([bad])
        assert exc.value.message.startswith(f"--kernel {bad!r}:")
    with pytest.raises(HarnessError) as exc:
        given_kernels([f"a={image}", f"a={image}"])
    assert exc.value.message == "--kernel: label 'a' given twice; give each kernel its own"


def test_bench_case_selection() -> None:
    from harness import bench
    from harness.errors import HarnessError

    names = [c.name for c in bench.select(bench.cases(0.1), ["a.pairs*"])]
    assert names == ["a.pairs"] + [f"a.pairs_at.{d}" for d, _ in bench.PAIR_DEPTHS]
    with pytest.raises(HarnessError):
        bench.select(bench.cases(0.1), ["nothing.*"])


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["test"], True),
        (["test", "--no-upstream"], False),
        (["test", "--which", "patched"], False),
        (["test", "--which", "upstream"], True),
        (["test", "--flavor", "debug", "--which", "patched"], False),
        (["test", "--flavor", "debug"], False),
        (["test", "--kernel", "/tmp/bzImage"], False),
        (["test", "--source", "/tmp/linux"], False),
        (["main"], True),
    ],
)
def test_upstream_peer_joins_the_default_run_only(argv: list[str], want: bool) -> None:
    assert cli.with_upstream(cli.parser().parse_args(argv)) is want


def test_main_runs_the_bench_with_complete_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """main once crashed with AttributeError (no args.cases) after all its tests."""
    seen: dict[str, object] = {}

    def bench(args: argparse.Namespace) -> int:
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(cli, "cmd_test", lambda args: 0)
    monkeypatch.setattr(cli, "cmd_bench", bench)
    assert cli.main(["main"]) == 0
    assert seen["cases"] is None and seen["kernel"] is None
    assert (seen["rounds"], seen["scale"]) == (1, 0.25)
    assert seen["out"] == str(REPO / "results" / "main-bench"), "never the release run's results"


def test_bench_failures_are_listed() -> None:
    from harness import bench

    results = {
        "cases": [{"name": "a.pairs", "metric": "ns_per_pair"}, {"name": "b", "metric": "ns"}],
        "rounds": [
            {"round": 0, "kernel": "patched", "cases": {"a.pairs": {"ns_per_pair": 5.0}}},
            {"round": 0, "kernel": "unpatched", "cases": {"b": {"skipped": "lacks prctl"}}},
            {"round": 1, "kernel": "upstream", "cases": {"a.pairs": {"error": "no JSON"}}},
            {"round": 1, "kernel": "patched", "cases": {"b": {"id_ok": True}}},
        ],
    }
    assert bench.failures(results) == [
        "round 2, upstream, a.pairs: no JSON",
        "round 2, patched, b: no ns in ['id_ok']",
    ]
