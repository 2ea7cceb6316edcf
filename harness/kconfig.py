"""Kernel config fragments: parse, compose per flavor, verify after build.

Fragments in ``kernel-config/`` are applied on top of the tree's tinyconfig
(``kernel/configs/tiny-base.config``, ``tiny.config`` and the arch's
``tiny.config``) through ``KCONFIG_ALLCONFIG`` + ``allnoconfig``: the result
is minimal and deterministic.  Kconfig silently drops a request whose
dependencies are unmet, so after configuring, :func:`missing` names every
requested value that did not stick.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .paths import KERNEL_CONFIG_DIR

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")

#: The tree's own files that make up "tinyconfig", in the order make uses.
TINY_BASE = ("kernel/configs/tiny-base.config", "kernel/configs/tiny.config")


@dataclass
class Fragment:
    """Requested option values from one file, in file order."""

    name: str
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, text: str) -> Fragment:
        """Parse ``CONFIG_X=v`` and ``# CONFIG_X is not set`` lines.

        Anything else that is not a comment is rejected, so a typo such as
        ``CONFIG_FOO = y`` cannot be ignored silently.
        """
        frag = cls(name)
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if m := _SET.match(line):
                frag.values[m.group(1)] = m.group(2)
            elif m := _UNSET.match(line):
                frag.values[m.group(1)] = "n"
            elif line and not line.startswith("#"):
                raise ConfigError(
                    f"{name}:{lineno}: cannot parse {raw!r}",
                    hint="use CONFIG_FOO=y or '# CONFIG_FOO is not set'",
                )
        return frag

    @classmethod
    def load(cls, path: Path) -> Fragment:
        """Read and parse a fragment file."""
        try:
            return cls.parse(path.name, path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config fragment {path} does not exist") from None


@dataclass
class Composition:
    """The merged request of a flavor and which fragment overrode what."""

    flavor: str
    fragments: list[Fragment]
    values: dict[str, str]
    overrides: list[tuple[str, str, str]]  # (option, earlier fragment, later fragment)

    def render(self) -> str:
        """The merged fragment as a KCONFIG_ALLCONFIG file."""
        lines = [f"# flavor {self.flavor}: " + " ".join(f.name for f in self.fragments)]
        for opt, val in self.values.items():
            lines.append(f"# {opt} is not set" if val == "n" else f"{opt}={val}")
        return "\n".join(lines) + "\n"


def merge(flavor: str, fragments: list[Fragment]) -> Composition:
    """Merge fragments in order; later fragments win and overrides are recorded."""
    values: dict[str, str] = {}
    owner: dict[str, str] = {}
    overrides: list[tuple[str, str, str]] = []
    for frag in fragments:
        for opt, val in frag.values.items():
            if opt in values and values[opt] != val:
                overrides.append((opt, owner[opt], frag.name))
            values[opt] = val
            owner[opt] = frag.name
    return Composition(flavor, fragments, values, overrides)


def flavors(config_dir: Path = KERNEL_CONFIG_DIR) -> dict[str, list[str]]:
    """Flavor name -> ordered fragment file names, from flavors.toml."""
    path = config_dir / "flavors.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    out: dict[str, list[str]] = {}
    for name, table in data.items():
        frags = table.get("fragments") if isinstance(table, dict) else None
        if not isinstance(frags, list) or not all(isinstance(f, str) for f in frags):
            raise ConfigError(f"{path}: flavor {name!r} needs a list 'fragments'")
        out[name] = list(frags)
    return out


def compose(
    flavor: str,
    source: Path | None = None,
    extra: list[str] | None = None,
    config_dir: Path = KERNEL_CONFIG_DIR,
    arch: str = "x86",
) -> Composition:
    """Compose a flavor: the tree's tinyconfig files, then our fragments.

    ``extra`` takes ``CONFIG_X=v`` items given on the command line (they win
    over everything, e.g. ``CONFIG_POSIX_TIMERS=n`` for the bisectability
    check).
    """
    table = flavors(config_dir)
    if flavor not in table:
        raise ConfigError(
            f"unknown flavor {flavor!r}", hint=f"choose one of: {', '.join(sorted(table))}"
        )
    frags: list[Fragment] = []
    if source is not None:
        for rel in (*TINY_BASE, f"arch/{arch}/configs/tiny.config"):
            path = source / rel
            if path.exists():
                frags.append(Fragment.parse(rel, path.read_text()))
    frags.extend(Fragment.load(config_dir / name) for name in table[flavor])
    if extra:
        frags.append(Fragment.parse("command line", "\n".join(extra)))
    return merge(flavor, frags)


def read_config(text: str) -> dict[str, str]:
    """Parse a full .config into option -> value ('n' for "is not set")."""
    return Fragment.parse(".config", text).values


def requested(comp: Composition, own_only: bool = True) -> dict[str, str]:
    """What we ask for: our fragments only (tinyconfig's files are defaults)."""
    if not own_only:
        return dict(comp.values)
    tiny = {f.name for f in comp.fragments if f.name.startswith(("kernel/", "arch/"))}
    out: dict[str, str] = {}
    for frag in comp.fragments:
        if frag.name not in tiny:
            out.update(frag.values)
    return out


def missing(wanted: dict[str, str], config: dict[str, str]) -> list[str]:
    """Requested values that did not stick, as ``CONFIG_X=want (got: v)``."""
    out = []
    for opt, want in wanted.items():
        got = config.get(opt, "n")
        if got != want:
            out.append(f"{opt}={want} (got {got if opt in config else 'unset'})")
    return out
