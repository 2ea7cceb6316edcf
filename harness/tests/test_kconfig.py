"""Config fragments: parsing, merging, composing a flavor, verifying the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kconfig
from harness.errors import ConfigError
from harness.kconfig import Fragment
from harness.paths import KERNEL_CONFIG_DIR


def test_parse_set_unset_and_comments() -> None:
    frag = Fragment.parse(
        "a.config",
        "# a comment\n"
        "\n"
        "CONFIG_SMP=y\n"
        "CONFIG_NR_CPUS=8\n"
        '  CONFIG_CMDLINE="console=ttyS0"  \n'
        "# CONFIG_MODULES is not set\n"
        "#CONFIG_FOO=y commented out\n",
    )
    assert frag.name == "a.config"
    assert frag.values == {
        "CONFIG_SMP": "y",
        "CONFIG_NR_CPUS": "8",
        "CONFIG_CMDLINE": '"console=ttyS0"',
        "CONFIG_MODULES": "n",
    }
    assert list(frag.values) == ["CONFIG_SMP", "CONFIG_NR_CPUS", "CONFIG_CMDLINE", "CONFIG_MODULES"]


@pytest.mark.parametrize("bad", ["CONFIG_FOO = y", "FOO=y", "CONFIG_FOO", "y"])
def test_parse_malformed_line_names_file_and_line(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Fragment.parse("frag.config", f"# header\nCONFIG_OK=y\n{bad}\n")
    assert info.value.message.startswith("frag.config:3: ")
    assert repr(bad) in info.value.message
    assert info.value.hint is not None


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Fragment.load(tmp_path / "nope.config")


def test_merge_later_wins_and_records_overrides() -> None:
    a = Fragment("a", {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_C": "m"})
    b = Fragment("b", {"CONFIG_B": "n", "CONFIG_C": "m", "CONFIG_D": "y"})
    c = Fragment("c", {"CONFIG_B": "y"})
    comp = kconfig.merge("f", [a, b, c])
    assert comp.values == {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_C": "m", "CONFIG_D": "y"}
    # Same value again is not an override; each change records who lost to whom.
    assert comp.overrides == [("CONFIG_B", "a", "b"), ("CONFIG_B", "b", "c")]
    rendered = comp.render().splitlines()
    assert rendered[0] == "# flavor f: a b c"
    assert "CONFIG_B=y" in rendered


def test_render_writes_unset_form() -> None:
    comp = kconfig.merge("f", [Fragment("a", {"CONFIG_X": "n", "CONFIG_Y": "y"})])
    assert comp.render().splitlines()[1:] == ["# CONFIG_X is not set", "CONFIG_Y=y"]
    # A rendered composition parses back to the same values.
    assert kconfig.read_config(comp.render()) == comp.values


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kernel-config"
    d.mkdir()
    (d / "flavors.toml").write_text(
        '[default]\nfragments = ["base.config", "timers.config"]\n'
        '[debug]\nfragments = ["base.config", "timers.config", "debug.config"]\n'
    )
    (d / "base.config").write_text("CONFIG_SMP=y\nCONFIG_PRINTK=y\n# CONFIG_EMBEDDED is not set\n")
    (d / "timers.config").write_text("CONFIG_POSIX_TIMERS=y\nCONFIG_CHECKPOINT_RESTORE=y\n")
    (d / "debug.config").write_text("CONFIG_PROVE_LOCKING=y\n")
    return d


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    (tree / "kernel" / "configs").mkdir(parents=True)
    (tree / "arch" / "x86" / "configs").mkdir(parents=True)
    (tree / "kernel/configs/tiny-base.config").write_text("CONFIG_EMBEDDED=y\n")
    (tree / "kernel/configs/tiny.config").write_text(
        "# CONFIG_SMP is not set\nCONFIG_CC_OPTIMIZE_FOR_SIZE=y\n"
    )
    (tree / "arch/x86/configs/tiny.config").write_text(
        "CONFIG_NOHIGHMEM=y\n# CONFIG_POSIX_TIMERS is not set\n"
    )
    return tree


def test_compose_order_and_precedence(config_dir: Path, fake_tree: Path) -> None:
    comp = kconfig.compose(
        "default",
        source=fake_tree,
        extra=["CONFIG_POSIX_TIMERS=n", "CONFIG_HZ=100"],
        config_dir=config_dir,
    )
    assert [f.name for f in comp.fragments] == [
        "kernel/configs/tiny-base.config",
        "kernel/configs/tiny.config",
        "arch/x86/configs/tiny.config",
        "base.config",
        "timers.config",
        "command line",
    ]
    assert comp.values["CONFIG_EMBEDDED"] == "n"  # base.config beats tiny-base
    assert comp.values["CONFIG_SMP"] == "y"  # base.config beats tiny.config
    assert comp.values["CONFIG_CC_OPTIMIZE_FOR_SIZE"] == "y"  # tiny default kept
    assert comp.values["CONFIG_NOHIGHMEM"] == "y"
    assert comp.values["CONFIG_POSIX_TIMERS"] == "n"  # extra wins last
    assert comp.values["CONFIG_HZ"] == "100"
    assert ("CONFIG_SMP", "kernel/configs/tiny.config", "base.config") in comp.overrides
    assert ("CONFIG_EMBEDDED", "kernel/configs/tiny-base.config", "base.config") in comp.overrides
    assert comp.overrides.count(("CONFIG_POSIX_TIMERS", "timers.config", "command line")) == 1
    assert ("CONFIG_POSIX_TIMERS", "arch/x86/configs/tiny.config", "timers.config") in (
        comp.overrides
    )


def test_compose_without_source_and_missing_tiny_files(config_dir: Path, tmp_path: Path) -> None:
    comp = kconfig.compose("debug", config_dir=config_dir)
    assert [f.name for f in comp.fragments] == ["base.config", "timers.config", "debug.config"]
    empty_tree = tmp_path / "empty"
    empty_tree.mkdir()
    comp2 = kconfig.compose("debug", source=empty_tree, config_dir=config_dir)
    assert comp2.values == comp.values


def test_compose_unknown_flavor(config_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        kconfig.compose("nope", config_dir=config_dir)
    assert "unknown flavor 'nope'" in info.value.message
    assert info.value.hint == "choose one of: debug, default"


def test_flavors_rejects_bad_table(tmp_path: Path) -> None:
    (tmp_path / "flavors.toml").write_text('[x]\nfragments = "base.config"\n')
    with pytest.raises(ConfigError, match="needs a list 'fragments'"):
        kconfig.flavors(tmp_path)
    (tmp_path / "flavors.toml").write_text("[x\n")
    with pytest.raises(ConfigError, match="cannot read"):
        kconfig.flavors(tmp_path)


def test_requested_excludes_tiny_files(config_dir: Path, fake_tree: Path) -> None:
    comp = kconfig.compose(
        "default", source=fake_tree, extra=["CONFIG_HZ=100"], config_dir=config_dir
    )
    wanted = kconfig.requested(comp)
    assert wanted == {
        "CONFIG_SMP": "y",
        "CONFIG_PRINTK": "y",
        "CONFIG_EMBEDDED": "n",
        "CONFIG_POSIX_TIMERS": "y",
        "CONFIG_CHECKPOINT_RESTORE": "y",
        "CONFIG_HZ": "100",
    }
    assert "CONFIG_CC_OPTIMIZE_FOR_SIZE" not in wanted
    assert "CONFIG_NOHIGHMEM" not in wanted
    everything = kconfig.requested(comp, own_only=False)
    assert everything["CONFIG_NOHIGHMEM"] == "y"
    assert everything == comp.values


def test_missing_reports_what_did_not_stick() -> None:
    wanted = {
        "CONFIG_A": "y",
        "CONFIG_B": "y",
        "CONFIG_C": "n",
        "CONFIG_D": "n",
        "CONFIG_E": "64",
    }
    config = kconfig.read_config(
        "CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_E=32\nCONFIG_UNRELATED=y\n"
    )
    assert kconfig.missing(wanted, config) == [
        "CONFIG_A=y (got unset)",
        "CONFIG_E=64 (got 32)",
    ]
    assert kconfig.missing({"CONFIG_X": "n"}, {"CONFIG_X": "y"}) == ["CONFIG_X=n (got y)"]
    assert kconfig.missing({"CONFIG_Y": "y"}, {"CONFIG_Y": "n"}) == ["CONFIG_Y=y (got n)"]


def test_real_kernel_config_flavors() -> None:
    table = kconfig.flavors(KERNEL_CONFIG_DIR)
    assert {"default", "debug"} <= set(table)
    for name in {f for frags in table.values() for f in frags}:
        frag = Fragment.load(KERNEL_CONFIG_DIR / name)
        assert frag.values, f"{name} requests nothing"
    default = kconfig.requested(kconfig.compose("default"))
    assert default["CONFIG_POSIX_TIMERS"] == "y"
    assert default["CONFIG_CHECKPOINT_RESTORE"] == "y"
    debug = kconfig.compose("debug")
    # The debug flavor is the default one plus checkers, minus what only
    # real CRIU needs (its tests skip there).
    criu_only = set(Fragment.load(KERNEL_CONFIG_DIR / "criu.config").values)
    assert set(default) - criu_only <= set(debug.values)
    assert kconfig.requested(debug)["CONFIG_POSIX_TIMERS"] == "y"
