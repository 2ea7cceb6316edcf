"""The CRIU helpers that need no guest: versions, the cache, the chroot script."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import criu


@pytest.mark.parametrize(
    ("have", "want", "ok"),
    [
        ("4.2.1-1", "4.2", True),
        ("4.2", "4.2", True),
        ("4.10-1", "4.2", True),  # Debian order, not string order
        ("4.1.1-1", "4.2", False),
        ("3.17.1-2+deb12u2", "4.2", False),
        ("4.2~rc1-1", "4.2", False),
    ],
)
def test_version_order_is_debians(have: str, want: str, ok: bool) -> None:
    assert criu.version_at_least(have, want) is ok


def test_cached_root_is_reused_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTIMERS_CACHE", str(tmp_path))
    base = tmp_path / "criu-unstable"
    for name, versions in (
        ("criu-4.2.1-1_libc-2.43-7", "4.2.1-1 2.43-7"),
        ("criu-4.3-1_libc-2.44-1", "4.3-1 2.44-1"),
        ("criu-4.1-1_libc-2.41-1", "4.1-1 2.41-1"),  # too old: never used
    ):
        (base / name / "root").mkdir(parents=True)
        (base / name / "COMPLETE").write_text(versions + "\n")
    (base / "build" / "root").mkdir(parents=True)  # an interrupted build: no COMPLETE

    def no_debootstrap(*args: object, **kw: object) -> None:
        raise AssertionError("a cached root must be reused, not rebuilt")

    monkeypatch.setattr("harness.criu.subprocess.run", no_debootstrap)
    monkeypatch.setattr(criu, "version_at_least", lambda a, b: not a.startswith("4.1"))
    root = criu.unstable_root()
    assert root.criu_version == "4.3-1"
    assert root.path == base / "criu-4.3-1_libc-2.44-1" / "root"


def test_chroot_setup_mounts_each_directory_once() -> None:
    script = criu.chroot_setup(Path("/c/root dir"))
    assert script.startswith(
        "set -e; mountpoint -q '/c/root dir' || mount --bind '/c/root dir' '/c/root dir'; "
    )
    assert "mountpoint -q '/c/root dir'/$d || mount --rbind /$d '/c/root dir'/$d" in script
    assert "for d in proc sys dev;" in script and "for d in tmp run;" in script
