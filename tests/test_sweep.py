"""mksim sweep: specs, machine-field overrides, pool vs Dask, resume after SIGKILL, refusal of a
changed spec, results.csv and the plot."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwmodel.errors import MksimError
from mksim import sweep

ROOT = Path(__file__).resolve().parent.parent

SMALL = """
bench = "shm-vs-msg"
[fixed]
machine = "amd-2x2"
max_cores = {cores}
iters = {iters}
[grid]
"interconnect.link_latency" = {links}
"""


def _spec(tmp_path: Path, name: str = "s.toml", cores: int = 3, iters: int = 4, links=(0, 40)) -> str:
    p = tmp_path / name
    p.write_text(SMALL.format(cores=cores, iters=iters, links=json.dumps(list(links))))
    return str(p)


def test_grid_points_and_keys(tmp_path):
    spec = sweep.load_spec(_spec(tmp_path, links=(0, 10, 20)))
    assert len(spec.points) == 3
    assert spec.names[0] == "machine" and spec.names[-1] == "interconnect.link_latency"
    keys = {sweep.point_key(spec, p) for p in spec.points}
    assert len(keys) == 3   # distinct points, distinct files


@pytest.mark.parametrize("text, what", [
    ('bench = "shm-vs-msg"\n[fixed]\nmachine = "amd-2x2"\nflow = "grub"\n', "flow"),
    ('bench = "nosuch"\n[fixed]\nmachine = "amd-2x2"\n', "unknown bench"),
    ('[fixed]\nmachine = "amd-2x2"\n', "exactly one"),
    ('bench = "urpc"\n[grid]\nmachine = []\n', "non-empty list"),
    ('bench = "urpc"\n[fixed]\nmachine = "amd-2x2"\niters = 3\n', "iters"),
])
def test_bad_specs_name_the_problem(tmp_path, text, what):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(MksimError, match=what):
        sweep.load_spec(str(p))


def test_machine_override_replaces_and_validates():
    cfg = sweep.machine_for({"machine": "amd-2x2", "interconnect.link_latency": 77,
                             "coherence.home_occupancy": 5, "cache.L2.latency": 21})
    assert cfg.interconnect.link_latency == 77 and cfg.coherence.home_occupancy == 5
    assert next(c for c in cfg.caches if c.name == "L2").latency == 21
    with pytest.raises(MksimError, match="unknown machine field"):
        sweep.machine_for({"machine": "amd-2x2", "interconnect.nosuch": 1})
    with pytest.raises(MksimError, match="must be an int"):
        sweep.machine_for({"machine": "amd-2x2", "interconnect.link_latency": "fast"})
    with pytest.raises(MksimError, match="ways"):   # validated as a machine file is
        sweep.machine_for({"machine": "amd-2x2", "cache.L1D.ways": 3})


def _csv(out: Path) -> str:
    return (out / "results.csv").read_text()


def test_pool_and_dask_give_identical_results(tmp_path):
    spec = sweep.load_spec(_spec(tmp_path))
    a = sweep.run_sweep(spec, tmp_path / "pool", workers=2, progress=False)
    assert a["ran"] == 2 and a["rows"] > 0
    serial = sweep.run_sweep(spec, tmp_path / "serial", workers=1, progress=False)
    assert _csv(tmp_path / "pool") == _csv(tmp_path / "serial")
    lines = _csv(tmp_path / "pool").splitlines()
    assert lines[0].startswith("machine,max_cores,iters,interconnect.link_latency,series,cores,")
    assert serial["rows"] == len(lines) - 1
    pytest.importorskip("dask.distributed")
    d = sweep.run_sweep(spec, tmp_path / "dask", workers=2, dask="local", progress=False)
    assert d["ran"] == 2
    assert _csv(tmp_path / "dask") == _csv(tmp_path / "pool")


def test_resume_after_sigkill_runs_only_missing_points(tmp_path):
    path = _spec(tmp_path, cores=4, iters=8, links=(0, 10, 20, 30, 40, 50))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "mksim", "sweep", path, "--workers", "1", "--out", str(out),
                             "--quiet"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "points").is_dir() and any((out / "points").glob("*.json")):
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = {f.name: f.stat().st_mtime_ns for f in (out / "points").glob("*.json")}
    assert 1 <= len(first) < 6, "the sweep was killed after its first point"
    assert not (out / "results.csv").exists()
    for f in (out / "points").glob("*.json"):
        json.loads(f.read_text())           # every finished point is whole
    # a kill during a write leaves that point's temporary file (nothing can remove it then): simulate one
    (out / "points" / ".0123.json.abcdef0123.tmp").write_text('{"point": ')
    spec = sweep.load_spec(path)
    res = sweep.run_sweep(spec, out, workers=1, progress=False)
    assert not [f for f in (out / "points").iterdir() if not f.name.endswith(".json")], "the resume removed it"
    assert res["reused"] == len(first) and res["ran"] == 6 - len(first)
    assert {f.name: f.stat().st_mtime_ns for f in (out / "points").glob("*.json") if f.name in first} == first
    again = sweep.run_sweep(spec, out, workers=1, progress=False)
    assert again["ran"] == 0 and _csv(out).count("\n") == res["rows"] + 1


def test_changed_spec_is_refused_and_grid_extension_is_not(tmp_path):
    out = tmp_path / "out"
    sweep.run_sweep(sweep.load_spec(_spec(tmp_path, cores=2)), out, workers=1, progress=False)
    more = sweep.run_sweep(sweep.load_spec(_spec(tmp_path, "more.toml", cores=2, links=(0, 40, 80))), out,
                           workers=1, progress=False)
    assert more["reused"] == 2 and more["ran"] == 1
    with pytest.raises(MksimError, match=r"another sweep.*fixed"):
        sweep.run_sweep(sweep.load_spec(_spec(tmp_path, "iters.toml", cores=2, iters=6)), out,
                        workers=1, progress=False)
    other = tmp_path / "other.toml"
    other.write_text('bench = "urpc"\n[grid]\nmachine = ["amd-2x2"]\n')
    with pytest.raises(MksimError, match=r"another sweep.*experiment"):
        sweep.run_sweep(sweep.load_spec(str(other)), out, workers=1, progress=False)
    (tmp_path / "notasweep").mkdir()
    (tmp_path / "notasweep" / "x").write_text("data")
    with pytest.raises(MksimError, match="no sweep"):
        sweep.run_sweep(sweep.load_spec(str(other)), tmp_path / "notasweep", workers=1, progress=False)
    with pytest.raises(MksimError, match="does not exist"):
        sweep.run_sweep(sweep.load_spec(str(other)), tmp_path / "missing" / "out", workers=1, progress=False)


def test_cli_sweep_json_and_plot(tmp_path, capsys):
    from mksim.cli import main
    out = tmp_path / "o"
    assert main(["sweep", _spec(tmp_path, cores=2), "--workers", "1", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["points"] == 2 and len(res["results"]) == res["rows"]
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    assert main(["sweep", "plot", str(out), "--x", "interconnect.link_latency", "--y", "cycles_per_update",
                 "--series", "series", "--where", "cores=2", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["sweep", "plot", str(out), "--x", "interconnect.link_latency", "--y", "cycles_per_update"]) == 2
    assert "two rows share" in capsys.readouterr().err


def test_version_does_not_import_the_engine():
    code = "import sys; from mksim.cli import main; main(['--version']); print('numba' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["mksim", "0.1.0", "False"] or r.stdout.split()[-1] == "False"


def test_boot_plan_trace_and_registered_bench_specs(tmp_path):
    import shutil
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("sweeps"))
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(ROOT / "tests" / "data" / "traces" / "two_cores.mksim", tmp_path / "t.mksim")
    (tmp_path / "boot.toml").write_text('boot = "examples/twin-linux.cfg"\n[grid]\nmachine = ["amd-2x2"]\n'
                                        '"apic.ipi_latency" = [200, 800]\n')
    (tmp_path / "trace.toml").write_text('trace = "t.mksim"\n[fixed]\nmachine = "amd-2x2"\n[grid]\nseed = [0, 1]\n')
    (tmp_path / "shoot.toml").write_text('bench = "shootdown"\n[fixed]\nmachine = "amd-2x2"\nrepeat = 1\n'
                                         '[grid]\nmax_cores = [2, 3]\n')
    os.chdir(tmp_path / "elsewhere")   # relative names are the spec's folder's, not the working directory's
    try:
        boot = sweep.run_sweep(sweep.load_spec(str(tmp_path / "boot.toml")), tmp_path / "b", workers=1,
                               progress=False)
        trace = sweep.run_sweep(sweep.load_spec(str(tmp_path / "trace.toml")), tmp_path / "t", workers=1,
                                progress=False)
        shoot = sweep.run_sweep(sweep.load_spec(str(tmp_path / "shoot.toml")), tmp_path / "s", workers=1,
                                progress=False)
    finally:
        os.chdir(ROOT)
    assert boot["rows"] == 2 and "all_up_cycles" in boot["columns"]
    cols, recs = sweep.read_results(str(tmp_path / "b"))
    slow, fast = sorted(recs, key=lambda r: -r["apic.ipi_latency"])
    assert slow["all_up_cycles"] >= fast["all_up_cycles"]     # a slower IPI never speeds the boot up
    assert trace["rows"] == 2 and "total_cycles" in trace["columns"]
    assert shoot["rows"] > 0 and {"protocol", "cores", "cycles"} <= set(shoot["columns"])


def test_a_failing_point_stops_the_sweep_naming_the_point(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('bench = "shm-vs-msg"\n[fixed]\nmachine = "amd-2x2"\niters = 4\n[grid]\nmax_cores = [2, 99]\n')
    with pytest.raises(MksimError, match=r'sweep point .*"max_cores":99.*must be between 1 and 4'):
        sweep.run_sweep(sweep.load_spec(str(p)), tmp_path / "o", workers=2, progress=False)
    assert not (tmp_path / "o" / "results.csv").exists()
