"""The benchmark scripts' own logic: what they count and how they name things (their timings are not tested)."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("cores", [1, 3])
def test_engine_speed_alu_mix_runs_and_counts_every_op(capsys, cores):
    """--mix alu: per core two MOVIs, 24 ops an iteration, a HALT; the engine's op count says exactly that."""
    es = _load("engine_speed")
    assert es.main(["--ops", str(cores * 24 * 10), "--repeat", "1", "--json", "--mix", "alu", "--cores", str(cores)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ops"] == cores * (2 + 24 * 10 + 1)
    assert out["mix"] == "alu" and out["cores"] == cores and out["ops_per_s"] > 0


def test_engine_speed_refuses_a_partial_sharing_mix():
    es = _load("engine_speed")
    with pytest.raises(SystemExit):
        es.main(["--mix", "sharing", "--cores", "4"])


@pytest.mark.parametrize("sym,name", [
    ("_ZN7hwmodel3cpu3runB2v2B42c8tJTC_2fWwGaMLSgd6CjA4xXKR0tsqKIYSQssrQkAE5TupleI5ArrayIxLi2E1C7mutable", "cpu.run"),
    ("_ZN7cpython7hwmodel6engine11line_accessB2v9B42c8tJTC_2fWwGaMLSgd6CjA4xXKR0tsqKIYSQssrQkAE5Tuple", "engine.line_access"),
    ("cfunc._ZN7hwmodel12uniprocessor10run_singleB3v12B42c8tJTC", "uniprocessor.run_single"),
])
def test_engine_profile_names_functions_by_module_and_name(sym, name):
    assert _load("engine_profile")._short(sym) == name


def test_engine_profile_refuses_an_unknown_workload():
    with pytest.raises(SystemExit, match="engine_speed or trace:CASE"):
        _load("engine_profile").main(["--workload", "bogus"])


def test_engine_profile_refuses_an_unknown_trace_case():
    with pytest.raises(SystemExit, match="unknown case"):
        _load("engine_profile").main(["--workload", "trace:no_such_case"])


@pytest.mark.parametrize("script", ["engine_speed", "ipi_shootdown", "memory_size", "paper_tables", "trace_speed"])
def test_a_benchmark_script_runs_the_checkout_it_is_in(tmp_path, script):
    """Run from another tree, a script imports that tree's ``hwmodel``, not the installed one (so
    that two trees can be compared by running each one's copy of the script)."""
    import shutil
    import subprocess
    import sys
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(os.path.join(ROOT, "benchmarks", f"{script}.py"), tmp_path / "benchmarks")
    (tmp_path / "hwmodel").mkdir()
    (tmp_path / "hwmodel" / "__init__.py").write_text("raise SystemExit('the other tree')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(tmp_path / "benchmarks" / f"{script}.py"), "--help"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert r.returncode == 1 and "the other tree" in r.stderr
