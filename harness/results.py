"""Machine-readable results and the Markdown summary built from them.

``results.json`` is the single source for every table we publish (the test
summary, the benchmark report, the cover letter's numbers), so numbers in
prose can always be traced back to a raw measurement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TestRecord:
    """Outcome of one test."""

    nodeid: str
    outcome: str  # passed | failed | skipped | error
    seconds: float
    message: str = ""


@dataclass
class RunRecord:
    """One pytest run against one kernel."""

    kernel: str
    release: str = ""
    accel: str = ""
    boot_seconds: float = 0.0
    ssh_seconds: float = 0.0
    boot_attempts: int = 0
    features: dict[str, bool] = field(default_factory=dict)
    tests: list[TestRecord] = field(default_factory=list)
    exit_status: int | None = None
    #: kernel complaints found after the last test (they fail the session)
    session_end: str = ""
    #: numbers tests measured, by test node ID (e.g. CRIU restore times)
    measurements: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        for t in self.tests:
            out[t.outcome] = out.get(t.outcome, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts()
        return data


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (tmp + rename): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def markdown_summary(run: RunRecord) -> str:
    """A short human summary of a test run."""
    c = run.counts()
    lines = [
        f"# vmtests on {run.release or run.kernel}",
        "",
        f"- kernel: `{run.kernel}`",
        f"- guest `uname -r`: `{run.release}`",
        f"- accelerator: {run.accel}; boot to ready {run.boot_seconds:.1f}s, "
        f"SSH {run.ssh_seconds:.1f}s"
        + (
            f" (boot attempt {run.boot_attempts}: SSH failed before)"
            if run.boot_attempts > 1
            else ""
        ),
        "- features: "
        + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in sorted(run.features.items())),
        f"- tests: {len(run.tests)} ({c['passed']} passed, {c['failed']} failed, "
        f"{c['error']} errors, {c['skipped']} skipped)",
        "",
    ]
    bad = [t for t in run.tests if t.outcome in {"failed", "error"}]
    if bad:
        lines += ["## Failures", ""] + [f"- `{t.nodeid}`: {t.message[:200]}" for t in bad] + [""]
    if run.session_end:
        lines += ["## Kernel log after the last test", "", "```", run.session_end, "```", ""]
    skipped = [t for t in run.tests if t.outcome == "skipped"]
    if skipped:
        lines += ["## Skipped", ""] + [f"- `{t.nodeid}`: {t.message[:200]}" for t in skipped] + [""]
    return "\n".join(lines)
