"""Where things live: the repository and the content-addressed cache.

The cache sits outside the repository (default ``~/.cache/ptimers``, or
``$PTIMERS_CACHE``) so a fresh clone reuses extracted sources and built
kernels, and ``git clean`` never throws away a 4-minute build.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL_CONFIG_DIR = REPO / "kernel-config"
PATCHES_DIR = REPO / "patches"
HELPER_DIR = REPO / "vmtests" / "helper"


def cache_root() -> Path:
    """Root of the cache; created on first use."""
    root = Path(os.environ.get("PTIMERS_CACHE", Path.home() / ".cache" / "ptimers"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    """A subdirectory of the cache, created on first use."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
