"""The real-CRIU matrix as a table: CRIU version x kernel x highest ID.

``vmtests/test_criu_real.py`` records each dump/restore it ran in its run's
results.json (``measurements``) and each cell it skipped in its test
records.  :func:`collect` gathers one ``./ptimers test`` run's kernels into
one file (``bench-data/criu/results.json`` in the repository), and
:func:`render_readme` writes the README's table from such a file, so every
time in the README comes from a file the code wrote.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import readmeblocks
from .errors import HarnessError
from .paths import REPO
from .results import write_json

KERNELS = ("unpatched", "patched", "upstream")
TEST = "vmtests/test_criu_real.py::test_criu_dump_restore"
_PARAM = re.compile(r"\[(?P<which>[^-\]]+)-(?P<layout>[^\]]+)\]$")


def block_marker(path: str) -> str:
    return readmeblocks.marker("criu", path, "./ptimers criu-table --readme")


def collect(results: Path, out: Path) -> dict[str, Any]:
    """One file from the per-kernel results.json files under ``results``."""
    kernels: dict[str, Any] = {}
    for label in KERNELS:
        path = results / label / "results.json"
        if not path.is_file():
            continue
        run = json.loads(path.read_text())
        cells = []
        for t in run.get("tests", []):
            nodeid = t["nodeid"]
            if not nodeid.startswith(TEST) or (m := _PARAM.search(nodeid)) is None:
                continue
            cell = {
                "criu": m.group("which"),
                "layout": m.group("layout"),
                "outcome": t["outcome"],
                "message": t.get("message", ""),
            }
            cell.update(run.get("measurements", {}).get(nodeid, {}))
            cells.append(cell)
        kernels[label] = {
            "release": run.get("release", ""),
            "accel": run.get("accel", ""),
            "prctl_restore_ids": run.get("features", {}).get("prctl_restore_ids"),
            "cells": cells,
        }
    if not any(k["cells"] for k in kernels.values()):
        raise HarnessError(
            f"no test_criu_dump_restore results under {results}",
            hint="run ./ptimers test first (it runs the real-CRIU tests on each kernel)",
        )
    data = {"collected": datetime.now(UTC).isoformat(timespec="seconds"), "kernels": kernels}
    write_json(out, data)
    return data


def _cell(c: dict[str, Any]) -> str:
    if c["outcome"] == "passed":
        path = "prctl" if c.get("prctl_path") else "loop"
        return f"{c['restore_s']:.2f} s ({path}; dump {c['dump_s']:.2f} s)"
    if c["outcome"] == "skipped":
        why = c["message"].removeprefix("Skipped: ")
        return "skipped: " + " ".join(why.replace("|", "/").split())
    return f"**{c['outcome'].upper()}**: " + " ".join(c["message"].replace("|", "/").split())[:160]


def render(data: dict[str, Any]) -> str:
    """The Markdown table (restore wall time in the guest, TCG) plus its provenance."""
    kernels = data["kernels"]
    labels = [k for k in KERNELS if k in kernels]
    head = [f"{k} ({kernels[k]['release']})" for k in labels]
    rows = ["| CRIU | highest ID | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(labels)]
    keys: list[tuple[str, str]] = []
    # A skipped cell records nothing: name each CRIU and layout from any run.
    version: dict[str, str] = {}
    highest: dict[str, str] = {}
    for k in labels:
        for c in kernels[k]["cells"]:
            if (c["criu"], c["layout"]) not in keys:
                keys.append((c["criu"], c["layout"]))
            if "criu_version" in c:
                version[c["criu"]] = c["criu_version"]
            if "highest_id" in c:
                highest[c["layout"]] = str(c["highest_id"])
    for which, layout in sorted(keys):
        cells = []
        for k in labels:
            found = [c for c in kernels[k]["cells"] if (c["criu"], c["layout"]) == (which, layout)]
            cells.append(_cell(found[0]) if found else "-")
        rows.append(
            f"| {version.get(which, which)} | {highest.get(layout, layout)} | "
            + " | ".join(cells)
            + " |"
        )
    accel = {kernels[k]["accel"] for k in labels}
    return (
        "\n".join(rows)
        + f"\n\nCRIU's restore wall time in the guest ({'/'.join(sorted(accel))}: emulated, "
        f"one run each); collected {data['collected']}.\n"
    )


def render_readme(readme: Path = REPO / "README.md") -> list[Path]:
    """Re-render every criu block of the README from the file its marker names."""
    return readmeblocks.rerender(readme, REPO, "criu", render, "real-CRIU table")
