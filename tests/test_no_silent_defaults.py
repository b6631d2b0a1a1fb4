"""No silent fallbacks (issue 8, item 11): machine-file defaults are shown as assumptions, and an
unknown kernel personality is an error."""
from __future__ import annotations

import json

import pytest

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from kernels import registry
from mksim.cli import main

BARE = """\
name = "bare"
packages = 1
cores_per_package = 2
clock_ghz = 1.0
[[cache]]
name = "L1D"
level = 1
size = 4096
ways = 2
latency = 3
line = 64
sharing = "private"
kind = "unified"
inclusion = "non-inclusive"
replacement = "lru"
source = "assumption: test"
[coherence]
protocol = "mesi"
directory_latency = 10
"""


def test_a_machine_file_without_tables_lists_every_default(tmp_path):
    p = tmp_path / "bare.toml"
    p.write_text(BARE)
    cfg = load_machine(str(p))
    assert "coherence.home_occupancy" in cfg.defaults
    assert "coherence.directory_latency" not in cfg.defaults and "coherence.protocol" not in cfg.defaults
    for table in ("memory", "core", "apic"):
        assert any(d.startswith(table + ".") for d in cfg.defaults), table
    assert "core.atomic_latency" in cfg.defaults and "apic.ipi_latency" in cfg.defaults
    assert not any(d.startswith("cache[0].") for d in cfg.defaults)   # every cache field given
    assert "interconnect.width" not in cfg.defaults                     # unused off a mesh


def test_machines_show_marks_each_default(tmp_path, capsys):
    p = tmp_path / "bare.toml"
    p.write_text(BARE)
    cfg = load_machine(str(p))
    assert main(["machines", "show", str(p)]) == 0
    out = capsys.readouterr().out
    marked = [ln for ln in out.splitlines() if ln.endswith("default (assumption)")]
    assert len(marked) == len(cfg.defaults)
    assert any(ln.strip().startswith("atomic_latency") for ln in marked)
    assert not any(ln.strip().startswith("directory_latency") for ln in marked)
    assert main(["machines", "show", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["defaults"] == list(cfg.defaults)


def test_a_preset_that_gives_every_field_has_no_defaults():
    assert load_machine("amd-4x4").defaults == ()


def test_the_registry_names_what_exists():
    import importlib
    assert set(registry.known()) >= {"minimal", "linux", "barrelfish"}
    for name in registry.known():           # every name has its module and a PERSONALITY of that name
        pers = registry.get(name)
        assert pers.name == name and pers.summary
        assert importlib.import_module(registry._TABLE[name]).PERSONALITY is pers
    from kernels.base import minimal_init
    assert registry.resolve("minimal") is minimal_init
    import re
    with pytest.raises(MksimError, match=re.escape(f"unknown personality 'nosuchos' (known: {', '.join(registry.known())})")):
        registry.resolve("nosuchos")


def test_an_unknown_personality_in_a_plan_is_an_error(tmp_path, capsys):
    src = open("examples/twin-linux.cfg").read()
    bad = tmp_path / "bad.cfg"
    assert "--personality twin-linux" in src
    bad.write_text(src.replace("--personality twin-linux", "--personality nosuchos", 1))
    rc = main(["boot", str(bad), "--machine", "amd-2x2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "nosuchos" in err and f"known: {', '.join(registry.known())}" in err and f"{bad}:" in err


def test_init_for_an_unknown_personality_is_an_error():
    from kernels.base import init_for
    with pytest.raises(MksimError, match="unknown personality"):
        init_for("nosuchos")
