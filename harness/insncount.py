"""Guest instruction counts per benchmark loop, from a QEMU TCG plugin.

Under TCG, medians of emulated time move between runs, so a small ratio
measured in time alone decides little.  The number of guest
instructions a loop executes barely moves.  ``qemu/insncount.c`` counts
them between two marker instructions that ptbench executes around each
measured loop (its ``windows``); this module builds the plugin and turns
its output into instructions per operation.

Debian's QEMU accepts ``-plugin`` but ships neither plugins nor the
plugin header, so the header comes from the source package of the
installed QEMU (fetched with a private apt configuration, like the
upstream kernel: the machine's apt setup is never changed) and the plugin
is compiled against it, cached by the hash of both.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path
from typing import Any

from . import upstream
from .errors import SetupError
from .paths import cache_dir
from .upstream import KEYRING, MIRROR, _apt_options

SOURCE = Path(__file__).parent / "qemu" / "insncount.c"
SECURITY = "http://deb.debian.org/debian-security"
HEADER = "include/qemu/qemu-plugin.h"
WINDOW = re.compile(r"^window (\d+) (\d+)$")
TB = re.compile(r"^tb ([0-9a-f]+) (\d+)$")
TOP_FUNCTIONS = 25


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    return upstream._run(
        cmd, what, cwd, hint="check that deb.debian.org is reachable (QEMU's source package)"
    )


def qemu_source_version() -> str:
    """The source package version of the installed qemu-system-x86."""
    out = _run(
        ["dpkg-query", "-W", "-f", "${source:Package} ${source:Version}", "qemu-system-x86"],
        "dpkg-query qemu-system-x86",
    )
    package, _, version = out.strip().partition(" ")
    if package != "qemu" or not version:
        raise SetupError(
            f"qemu-system-x86 comes from source {out.strip()!r}, not Debian's qemu",
            hint="install Debian's qemu-system-x86 (./ptimers setup)",
        )
    return version


def header(version: str | None = None) -> Path:
    """qemu-plugin.h of the installed QEMU, from its Debian source package."""
    version = version or qemu_source_version()
    root = cache_dir("qemu-src") / version.replace(":", "_")
    dest = root / "qemu-plugin.h"
    if dest.exists():
        return dest
    for sub in ("lists/partial", "archives/partial", "cache", "dl"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(
        f"deb-src [signed-by={KEYRING}] {MIRROR} bookworm main\n"
        f"deb-src [signed-by={KEYRING}] {SECURITY} bookworm-security main\n"
    )
    opts = _apt_options(root)
    print(f"fetching QEMU {version}'s source for qemu-plugin.h ...", flush=True)
    _run(["apt-get", *opts, "update"], "apt-get update (deb-src)")
    # apt verifies the files against the signed Sources index
    _run(
        ["apt-get", *opts, "source", "--download-only", f"qemu={version}"],
        "apt-get source qemu",
        cwd=root / "dl",
    )
    origs = sorted((root / "dl").glob("qemu_*.orig.tar.*"))
    if not origs:
        raise SetupError(f"apt-get source left no qemu orig tarball in {root / 'dl'}")
    with tarfile.open(origs[0]) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/" + HEADER)), None)
        if member is None:
            raise SetupError(f"{origs[0]} has no {HEADER}")
        data = tar.extractfile(member)
        if data is None:
            raise SetupError(f"{origs[0]}: {HEADER} is not a file")
        dest.write_bytes(data.read())
    for f in (root / "dl").iterdir():
        f.unlink()
    return dest


def build() -> Path:
    """The plugin, compiled against the installed QEMU's header (cached)."""
    hdr = header()
    digest = hashlib.sha256(SOURCE.read_bytes() + hdr.read_bytes()).hexdigest()[:16]
    out = cache_dir("insncount") / digest / "insncount.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    _run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-shared",
            "-fPIC",
            "-I",
            str(hdr.parent),
            "-o",
            str(tmp),
            str(SOURCE),
        ],
        "compiling the insncount QEMU plugin",
    )
    tmp.rename(out)
    return out


def read(path: Path) -> list[int]:
    """The instruction counts of the windows closed so far, in order."""
    return [n for n, _ in read_profiles(path)]


def read_profiles(path: Path) -> list[tuple[int, dict[int, int]]]:
    """Each closed window's count and (with profile=on) instructions per block address."""
    out: list[tuple[int, dict[int, int]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if m := WINDOW.match(line):
            out.append((int(m.group(2)), {}))
        elif (m := TB.match(line)) and out:
            pc = int(m.group(1), 16)
            out[-1][1][pc] = out[-1][1].get(pc, 0) + int(m.group(2))
    return out


class Symbols:
    """Guest kernel text symbols (from /proc/kallsyms) for block addresses.

    The kernels are built without KASLR, so the addresses the plugin sees
    are the ones the running kernel lists.
    """

    def __init__(self, kallsyms: str) -> None:
        syms = []
        for line in kallsyms.splitlines():
            f = line.split()
            if len(f) >= 3 and f[1] in "tTwW":
                syms.append((int(f[0], 16), f[2]))
        syms.sort()
        self.addrs = [a for a, _ in syms]
        self.names = [n for _, n in syms]

    def name(self, pc: int) -> str:
        import bisect

        if pc < 1 << 63:
            return "(user space)"
        i = bisect.bisect_right(self.addrs, pc) - 1
        return self.names[i] if i >= 0 and self.addrs[i] else "(kernel, unknown)"


def functions(blocks: dict[int, int], syms: Symbols, ops: int) -> list[list[Any]]:
    """Instructions per operation by function, largest first (top entries and the rest)."""
    per: dict[str, int] = {}
    for pc, n in blocks.items():
        name = syms.name(pc)
        per[name] = per.get(name, 0) + n
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    top = [[name, round(n / ops, 1)] for name, n in ranked[:TOP_FUNCTIONS]]
    rest = sum(n for _, n in ranked[TOP_FUNCTIONS:])
    if rest:
        top.append(["(others)", round(rest / ops, 1)])
    return top


def attach(
    data: dict[str, Any],
    metric_window: str,
    counts: list[int],
    blocks: list[dict[int, int]] | None = None,
    syms: Symbols | None = None,
) -> None:
    """Give a ptbench result its windows' counts.

    With ``blocks`` (profile=on) and the guest's symbols, each window also
    gets its instructions per operation by kernel function.
    ``insns_per_op`` is that of ``metric_window``, the loop behind the
    case's metric (``create_getoverrun`` counts "create", then
    "getoverrun"); none for a case without one.  A mismatch between the
    windows ptbench reports and the counts the plugin wrote, or a missing
    metric window, leaves ``insns_error`` instead of a number.
    """
    windows = data.get("windows", [])
    if "error" in data:
        return
    if len(windows) != len(counts) or (metric_window and not windows):
        data["insns_error"] = (
            f"ptbench reported {len(windows)} window(s), the plugin counted {len(counts)}"
        )
        return
    per: dict[str, Any] = {}
    merged: dict[str, dict[int, int]] = {}
    for i, (w, n) in enumerate(zip(windows, counts, strict=True)):
        # Windows of one name (a loop repeated, e.g. once per rep) add up
        ops = int(w["ops"]) or 1
        cell = per.setdefault(w["name"], {"ops": 0, "insns": 0, "windows": 0})
        cell["ops"] += ops
        cell["insns"] += n
        cell["windows"] += 1
        cell["insns_per_op"] = cell["insns"] / cell["ops"]
        if blocks and i < len(blocks) and blocks[i]:
            into = merged.setdefault(w["name"], {})
            for pc, count in blocks[i].items():
                into[pc] = into.get(pc, 0) + count
    if syms:
        for name, into in merged.items():
            per[name]["functions"] = functions(into, syms, per[name]["ops"])
    data["insns"] = per
    if not metric_window:
        return
    if metric_window not in per:
        data["insns_error"] = f"ptbench reported no {metric_window!r} window: {sorted(per)}"
        return
    data["insns_per_op"] = float(per[metric_window]["insns_per_op"])
