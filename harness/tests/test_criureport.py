"""The real-CRIU table from fake per-kernel results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import criureport
from harness.errors import HarnessError

NODE = "vmtests/test_criu_real.py::test_criu_dump_restore"


def write_run(
    root: Path, label: str, tests: list[dict[str, object]], meas: dict[str, object]
) -> None:
    (root / label).mkdir(parents=True)
    run = {
        "release": f"{label}-release",
        "accel": "tcg",
        "features": {"prctl_restore_ids": label != "unpatched"},
        "tests": tests,
        "measurements": meas,
    }
    (root / label / "results.json").write_text(json.dumps(run))


def test_collect_and_render(tmp_path: Path) -> None:
    ok = f"{NODE}[4.2-sparse]"
    skipped = f"{NODE}[4.2-top]"
    write_run(
        tmp_path,
        "unpatched",
        [
            {"nodeid": ok, "outcome": "passed", "message": ""},
            {"nodeid": skipped, "outcome": "skipped", "message": "Skipped: needs an exact create"},
            {"nodeid": "vmtests/test_errors.py::test_x", "outcome": "passed", "message": ""},
        ],
        {
            ok: {
                "criu_version": "4.2.1-1",
                "highest_id": 100000,
                "prctl_path": False,
                "restore_s": 3.5,
                "dump_s": 1.25,
            }
        },
    )
    write_run(
        tmp_path,
        "patched",
        [{"nodeid": ok, "outcome": "failed", "message": "criu restore failed | exit 1"}],
        {},
    )
    data = criureport.collect(tmp_path, tmp_path / "criu.json")
    assert json.loads((tmp_path / "criu.json").read_text()) == data
    assert [c["layout"] for c in data["kernels"]["unpatched"]["cells"]] == ["sparse", "top"]
    table = criureport.render(data).splitlines()
    assert (
        table[0]
        == "| CRIU | highest ID | unpatched (unpatched-release) | patched (patched-release) |"
    )
    row = next(r for r in table if r.startswith("| 4.2.1-1 | 100000 |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells == [
        "4.2.1-1",
        "100000",
        "3.50 s (loop; dump 1.25 s)",
        "**FAILED**: criu restore failed / exit 1",
    ]
    # a skipped cell is named from the other cells of its CRIU; its reason without "Skipped: "
    assert any(
        r.startswith("| 4.2.1-1 | top | skipped: needs an exact create | - |") for r in table
    )
    assert "tcg: emulated" in criureport.render(data)


def test_collect_without_cells_names_the_next_step(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no test_criu_dump_restore results"):
        criureport.collect(tmp_path, tmp_path / "criu.json")
