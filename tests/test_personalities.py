"""The personality contract: the registry, `mksim personalities`, a plan line's --personality picking
its kernel's init, and `mksim bench` refusing names nobody registered."""
from __future__ import annotations

import json

import pytest

from hwmodel.errors import MksimError
from kernels import registry
from kernels.personality import BOOT_STYLES, Experiment, Personality
from mksim.cli import main

SMP = "examples/linux-smp.cfg"


def test_every_personality_fills_in_the_contract():
    for name in registry.known():
        pers = registry.get(name)
        assert pers.boot in BOOT_STYLES and callable(pers.init)
        for ex in pers.experiments:
            assert isinstance(ex, Experiment) and ex.keys and callable(ex.rows) and callable(ex.table)


def test_a_bad_boot_style_is_refused():
    with pytest.raises(ValueError, match="boot 'sometimes'"):
        Personality(name="x", summary="x", boot="sometimes")


def test_personalities_lists_every_name_once(capsys):
    assert main(["personalities"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[1:]]
    assert names == list(registry.known())


def test_an_unregistered_bench_is_refused(capsys):
    assert main(["bench", "nosuchbench", "--machine", "amd-2x2"]) == 2
    assert "invalid choice: 'nosuchbench'" in capsys.readouterr().err


@pytest.fixture
def boot_steps(tmp_path, capsys):
    def run(plan, machine, replace=None):
        if replace:
            src = open(plan).read()
            assert replace[0] in src
            p = tmp_path / "plan.cfg"
            p.write_text(src.replace(replace[0], replace[1]))
            plan = str(p)
        assert main(["boot", plan, "--machine", machine, "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        return {s["step"]: s for s in res["steps"]}, res
    return run


def test_the_plan_line_picks_the_kernels_init(boot_steps):
    linux, _ = boot_steps(SMP, "amd-2x2")
    assert {"linux init", "linux boot params", "linux per-cpu areas"} <= set(linux)
    minimal, _ = boot_steps(SMP, "amd-2x2", ("--personality linux", "--personality minimal"))
    assert "linux init" in minimal and "linux per-cpu areas" not in minimal
    none, _ = boot_steps(SMP, "amd-2x2", ("--personality linux", ""))     # the default: minimal
    assert set(none) == set(minimal)


def test_each_kernel_runs_its_own_personality(boot_steps):
    """Two kernels of one plan with different personalities: each gets its own init steps."""
    steps, res = boot_steps("examples/twin-linux.cfg", "amd-2x2",
                            ("--name linux1 --cores 1 --memory 0x40000000-0x80000000 --flow grub --personality twin-linux",
                             "--name linux1 --cores 1 --memory 0x40000000-0x80000000 --flow grub --personality minimal"))
    assert "linux0 per-cpu areas" in steps and "linux1 per-cpu areas" not in steps
    assert "linux0 shared page" in steps and "linux1 shared page" not in steps
    assert "linux1 init" in steps
    assert all(k["up"] for k in res["kernels"])


def test_the_per_cpu_areas_step_grows_with_the_kernels_cores(boot_steps):
    """Linux's init writes one per-CPU line per core it runs on: more cores, a longer step."""
    four, _ = boot_steps(SMP, "amd-2x2")
    two, _ = boot_steps(SMP, "amd-2x2", ("--cores 0-3", "--cores 0-1"))
    assert four["linux per-cpu areas"]["max_cycles"] > two["linux per-cpu areas"]["max_cycles"]


def test_get_refuses_a_module_without_its_personality(monkeypatch):
    monkeypatch.setitem(registry._TABLE, "broken", "kernels.urpc")
    with pytest.raises(MksimError, match="defines no PERSONALITY named 'broken'"):
        registry.get("broken")


def test_the_registered_benches_are_the_issues_three():
    assert {"shootdown", "unmap", "notify"} <= set(registry.experiments())


def test_unmap_bench_rows_cover_every_system_and_core_count(capsys):
    assert main(["bench", "unmap", "--machine", "amd-2x2", "--repeat", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(list(r) == ["system", "cores", "cycles"] for r in rows)
    by = {(r["system"], r["cores"]): r["cycles"] for r in rows}
    assert {s for s, _ in by} == {"barrelfish", "linux", "windows"}
    assert {k for _, k in by} == {2, 3, 4}
    assert len(by) == len(rows) == 9 and all(c > 0 for c in by.values())
    assert by[("barrelfish", 2)] < by[("barrelfish", 3)] < by[("barrelfish", 4)]   # one more reply each
    assert by[("linux", 2)] < by[("linux", 4)]     # flat mode on amd-2x2: one logical IPI, more handlers


def test_unmap_table_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "unmap.png"
    assert main(["bench", "unmap", "--machine", "amd-2x2", "--repeat", "1", "--max-cores", "3",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "barrelfish" in out and "linux" in out and "windows" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,msg", [
    (["bench", "unmap", "--machine", "amd-2x2", "--max-cores", "1"], "--max-cores 1: must be between 2 and 4"),
    (["bench", "shootdown", "--machine", "amd-2x2", "--max-cores", "5"], "--max-cores 5: must be between 2 and 4"),
    (["bench", "unmap", "--machine", "amd-2x2", "--repeat", "0"], "--repeat 0: must be between 1"),
    (["bench", "notify", "--machine", "nosuchmachine"], "nosuchmachine"),
])
def test_registered_benches_refuse_bad_options(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_a_bench_with_its_own_option_and_default_machine(monkeypatch, capsys):
    """A bench's own options (BenchOption) and default machine reach its rows through the CLI."""
    from kernels.personality import BenchOption
    seen = {}

    def rows(cfg, opts):
        seen.update(machine=cfg.name, **opts.extra)
        return [{"kernel": opts.extra["kernel"], "cycles": 1}]
    ex = Experiment(name="toybench", summary="a toy", keys=("kernel", "cycles"), rows=rows,
                    table=lambda rows, cfg: "table", sweeps_cores=False, default_machine="amd-2x2",
                    options=(BenchOption("--kernel", "which kernel", choices=("a", "b"), default="a"),))
    toy = Personality(name="toy", summary="toy", experiments=(ex,))
    real = registry.experiments

    def experiments():
        d = dict(real())
        d["toybench"] = (toy, ex)
        return d
    monkeypatch.setattr(registry, "experiments", experiments)
    assert main(["bench", "toybench", "--kernel", "b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [{"kernel": "b", "cycles": 1}]
    assert seen == {"machine": "amd-2x2", "kernel": "b"}
    assert main(["bench", "toybench", "--kernel", "c"]) == 2
    assert "invalid choice: 'c'" in capsys.readouterr().err


def test_linux_init_leaves_a_kexec_loaded_image_alone(boot_steps):
    """Linux's per-CPU lines go to a free piece of the partition: a kexec'd Linux kernel's image (hashed
    by the purgatory before it runs, checked after the boot) is not overwritten."""
    src = open("examples/popcorn.cfg").read()
    assert "--personality popcorn" in src and "--flow kexec" in src
    steps, res = boot_steps("examples/popcorn.cfg", "amd-4x4", ("--personality popcorn", "--personality linux"))
    assert all(k["up"] for k in res["kernels"]) and len(res["kernels"]) == 4
    assert all(f"{k['name']} per-cpu areas" in steps for k in res["kernels"])
