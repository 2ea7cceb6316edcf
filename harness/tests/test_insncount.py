"""Host tests: the instruction-count plugin's output turned into per-op counts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import bench, insncount
from harness.paths import cache_dir


def test_windows_are_read_in_order(tmp_path: Path) -> None:
    out = tmp_path / "insns.txt"
    out.write_text("window 1 6003927\nwindow 2 5985207\nnoise\nwindow 3 12\n")
    assert insncount.read(out) == [6003927, 5985207, 12]


def test_the_metric_window_is_the_named_one() -> None:
    data: dict[str, Any] = {
        "windows": [{"name": "create", "ops": 5000}, {"name": "getoverrun", "ops": 5000}]
    }
    insncount.attach(data, "getoverrun", [11_006_098, 1_700_087])
    assert data["insns"]["create"]["insns"] == 11_006_098
    assert data["insns_per_op"] == 1_700_087 / 5000
    wrong: dict[str, Any] = {"windows": [{"name": "create", "ops": 1}]}
    insncount.attach(wrong, "workers", [5])
    assert "insns_per_op" not in wrong and "no 'workers' window" in wrong["insns_error"]


def test_a_case_without_a_loop_has_no_count_and_no_error() -> None:
    data: dict[str, Any] = {"windows": []}
    insncount.attach(data, "", [])
    assert "insns_per_op" not in data and "insns_error" not in data


def test_a_window_the_plugin_did_not_count_is_an_error_not_a_number() -> None:
    data: dict[str, Any] = {"windows": [{"name": "pairs", "ops": 2000}]}
    insncount.attach(data, "pairs", [])
    assert "insns_per_op" not in data
    assert data["insns_error"] == "ptbench reported 1 window(s), the plugin counted 0"


class FakeGuest:
    def __init__(self, out: dict[str, str]) -> None:
        self.out = out

    def run(self, cmd: str, check: bool = False, timeout: float = 0) -> Any:
        return type("R", (), {"stdout": self.out[cmd.split()[-1]]})()


def test_boot_facts_upstream_hash_from_the_kernel_log() -> None:
    g = FakeGuest(
        {
            "/sys/devices/system/cpu/possible": "0-63\n",
            "dmesg": "[ 0.4] posixtimers hash table entries: 32768 (order: 9, 2097152 bytes, "
            "linear)\n",
        }
    )
    facts = bench.boot_facts(g)  # type: ignore[arg-type]
    assert facts["possible_cpus_seen"] == "0-63"
    assert (facts["timer_hash_buckets"], facts["timer_table_bytes"]) == (32768, 2097152)


def test_boot_facts_612_static_table_from_the_source(tmp_path: Path) -> None:
    src = tmp_path / "kernel" / "time"
    src.mkdir(parents=True)
    (src / "posix-timers.c").write_text("static DEFINE_HASHTABLE(posix_timers_hashtable, 9);\n")
    g = FakeGuest({"/sys/devices/system/cpu/possible": "0-1", "dmesg": ""})
    facts = bench.boot_facts(g, tmp_path)  # type: ignore[arg-type]
    assert (facts["timer_hash_buckets"], facts["timer_table_bytes"]) == (512, 4096)
    (src / "posix-timers.c").write_text("/* per-process xarray */\n")
    assert bench.boot_facts(g, tmp_path)["timer_table_bytes"] == 0  # type: ignore[arg-type]
    assert "timer_table_bytes" not in bench.boot_facts(g)  # type: ignore[arg-type]


def test_plugin_source_compiles_against_its_api(tmp_path: Path) -> None:
    """The plugin builds against a minimal stand-in of the API-1 header."""
    hdr = tmp_path / "qemu-plugin.h"
    hdr.write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        '#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))\n'
        "#define QEMU_PLUGIN_VERSION 1\n"
        "typedef uint64_t qemu_plugin_id_t; typedef struct qemu_info_t qemu_info_t;\n"
        "struct qemu_plugin_tb; struct qemu_plugin_insn;\n"
        "enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };\n"
        "typedef void (*cb_t)(unsigned int, void *);\n"
        "size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);\n"
        "uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);\n"
        "struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);\n"
        "const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *);\n"
        "size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *);\n"
        "void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, cb_t,"
        " enum qemu_plugin_cb_flags, void *);\n"
        "void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, cb_t,"
        " enum qemu_plugin_cb_flags, void *);\n"
        "void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t,"
        " void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));\n"
        "void qemu_plugin_register_atexit_cb(qemu_plugin_id_t,"
        " void (*)(qemu_plugin_id_t, void *), void *);\n"
    )
    if subprocess.run(["which", "gcc"], capture_output=True).returncode:
        pytest.skip("no gcc on this host")
    # The real header once the harness has fetched it, else the stand-in
    real = sorted(cache_dir("qemu-src").glob("*/qemu-plugin.h"))
    include = real[-1].parent if real else tmp_path
    proc = subprocess.run(
        ["gcc", "-Wall", "-Werror", "-fsyntax-only", "-I", str(include), str(insncount.SOURCE)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_profile_lines_attribute_instructions_to_functions(tmp_path: Path) -> None:
    out = tmp_path / "insns.txt"
    out.write_text(
        "window 1 1000\n"
        "tb ffffffff81000010 600\ntb ffffffff81000100 300\ntb 401000 100\n"
        "window 2 50\n"
    )
    windows = insncount.read_profiles(out)
    assert [n for n, _ in windows] == [1000, 50]
    syms = insncount.Symbols(
        "ffffffff81000000 T posix_timer_add\nffffffff81000080 t xas_store\n"
        "ffffffff81000090 d some_data\n"
    )
    data: dict[str, Any] = {"windows": [{"name": "pairs", "ops": 10}, {"name": "x", "ops": 1}]}
    insncount.attach(data, "pairs", [n for n, _ in windows], [p for _, p in windows], syms)
    assert data["insns"]["pairs"]["functions"] == [
        ["posix_timer_add", 60.0],
        ["xas_store", 30.0],
        ["(user space)", 10.0],
    ]
    assert "functions" not in data["insns"]["x"]


def test_every_loop_case_names_a_window_ptbench_closes() -> None:
    """Cases whose ptbench case brackets a loop name one of ptbench's windows.

    (An edit once left the t.* cases without one, and their instruction
    counts silently went missing; a typo would do the same.)
    """
    src = (Path(__file__).resolve().parents[2] / "vmtests/helper/ptbench.c").read_text()
    closed = set(re.findall(r'window_end\("([a-z_]+)"', src))
    closed |= set(re.findall(r'time_lookups\([^;]*"([a-z_]+)"\)', src))
    # A window a child closed, recorded by its parent (either name of a ternary)
    for args in re.findall(r"window_record\(([^;]*)\);", src):
        closed |= set(re.findall(r'"([a-z_]+)"', args))
    assert {"pairs", "lookups", "create", "getoverrun", "workers", "exact", "restore"} <= closed
    looped = {
        "pairs",
        "lookup",
        "create_getoverrun",
        "create_many",
        "churn",
        "exact_high",
        "sparse_restore",
        "exit",
    }
    for case in bench.cases(1.0, 2):
        if case.case in looped:
            assert case.window in closed, case.name
        else:
            assert not case.window, case.name


def test_boot_facts_do_not_call_an_allocated_hash_none(tmp_path: Path) -> None:
    src = tmp_path / "kernel" / "time"
    src.mkdir(parents=True)
    (src / "posix-timers.c").write_text(
        'timer_buckets = alloc_large_system_hash("posixtimers", sizeof(*timer_buckets),\n'
    )
    g = FakeGuest({"/sys/devices/system/cpu/possible": "0-63", "dmesg": ""})
    facts = bench.boot_facts(g, tmp_path)  # type: ignore[arg-type]
    assert "timer_table_bytes" not in facts and facts["timer_table"].startswith("unknown")


def test_cpulist_count() -> None:
    assert bench.cpulist_count("0-63\n") == 64
    assert bench.cpulist_count("0,2-3") == 3
    assert bench.cpulist_count("0") == 1


def test_windows_of_one_name_add_up() -> None:
    """A loop repeated per rep (the exit, the exact create) is one count per op."""
    data: dict[str, Any] = {
        "windows": [
            {"name": "exit", "ops": 10},
            {"name": "plain", "ops": 1},
            {"name": "exit", "ops": 20},
        ]
    }
    insncount.attach(data, "exit", [100, 7, 500])
    assert data["insns"]["exit"] == {"ops": 30, "insns": 600, "windows": 2, "insns_per_op": 20.0}
    assert data["insns_per_op"] == 20.0
    assert data["insns"]["plain"]["insns_per_op"] == 7.0
