"""The first run (issue 14): what each command compiles, the one notice with its expected time,
compiling in worker processes that publish only their own entry point's cache files."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mksim import firstrun
from mksim.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _index(d: Path, stem: str) -> None:
    (d / "hwmodel_0").mkdir(parents=True, exist_ok=True)
    (d / "hwmodel_0" / f"{stem}-99.py311.nbi").write_bytes(b"x")


def test_commands_need_only_their_engines():
    assert firstrun.needs("demo") == ("program", "replay", "parse")
    assert firstrun.needs("boot") == ("program",)
    assert firstrun.needs("machines") == ()
    with_machine = argparse.Namespace(format="mksim", machine="amd-2x2")
    assert firstrun.needs("trace", with_machine) == ("parse", "replay")
    cachegrind = argparse.Namespace(format="lackey", machine=None)
    assert firstrun.needs("trace", cachegrind) == ("parse", "cachegrind")
    assert set(firstrun.COMMAND_NEEDS["demo"]) <= set(firstrun.ENTRIES)


def test_missing_until_every_function_of_an_entry_is_cached(tmp_path):
    assert firstrun.missing(["program", "replay"], str(tmp_path)) == ["program", "replay"]
    first, *rest = firstrun.ENTRIES["program"][0]
    _index(tmp_path, first)
    assert firstrun.missing(["program"], str(tmp_path)) == ["program"]     # the others still missing
    for stem in rest:
        _index(tmp_path, stem)
    assert firstrun.missing(["program", "replay"], str(tmp_path)) == ["replay"]


def test_estimate_uses_times_measured_here_and_runs_entries_side_by_side(tmp_path, monkeypatch):
    d = str(tmp_path)
    monkeypatch.setattr(firstrun, "workers", lambda: 2)
    firstrun._record(d, {"program": 40.0, "replay": 15.0, "parse": 3.0})
    assert firstrun.estimate(["program", "replay", "parse"], d) == pytest.approx(40.0)   # 15 + 3 beside 40
    monkeypatch.setattr(firstrun, "workers", lambda: 1)
    assert firstrun.estimate(["program", "replay"], d) == pytest.approx(55.0)
    monkeypatch.setattr(firstrun, "probe", lambda: 2 * firstrun.REF_PROBE_S)     # a machine half as fast
    assert firstrun.estimate(["cachegrind"], d) == pytest.approx(
        2 * firstrun.ENTRIES["cachegrind"][1] + firstrun.STARTUP_S)


def test_publish_moves_only_the_named_functions(tmp_path):
    private, shared = tmp_path / "p", tmp_path / "s"
    for name in ("cpu.run-1.py311.nbi", "cpu.run-1.py311.1.nbc", "engine.access-2.py311.nbi"):
        (private / "hwmodel_0").mkdir(parents=True, exist_ok=True)
        (private / "hwmodel_0" / name).write_bytes(b"x")
    firstrun._publish(str(private), str(shared), ("cpu.run",))
    assert sorted(p.name for p in (shared / "hwmodel_0").iterdir()) == ["cpu.run-1.py311.1.nbc",
                                                                       "cpu.run-1.py311.nbi"]
    assert [p.name for p in (private / "hwmodel_0").iterdir()] == ["engine.access-2.py311.nbi"]


def test_nothing_to_compile_says_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(firstrun, "cache_dir", lambda: str(tmp_path))
    for stem in firstrun.ENTRIES["program"][0]:
        _index(tmp_path, stem)
    assert firstrun.compile_up_front(["program"], notice=True) == []
    assert capsys.readouterr().err == ""


def test_workers_compile_into_the_shared_cache_with_one_notice(tmp_path, monkeypatch, capsys):
    """The trace parsers and the cachegrind simulator (seconds to compile), side by side: the notice
    once, both published, no private folder left, the times recorded; the next call says nothing."""
    monkeypatch.setattr(firstrun, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(firstrun, "workers", lambda: 2)
    both = ["parse", "cachegrind"]
    assert firstrun.compile_up_front(both, notice=True) == sorted(both)
    err = capsys.readouterr().err
    assert err.count("compiling the engine (first run only, about ") == 1 and "on this machine" in err
    assert firstrun.missing(both, str(tmp_path)) == []
    assert not list(tmp_path.glob(".compiling-*"))
    assert set(both) <= set(firstrun._recorded(str(tmp_path)))
    assert firstrun.compile_up_front(both, notice=True) == []
    assert capsys.readouterr().err == ""


def test_help_and_version_do_not_import_the_engine():
    code = ("import sys; from mksim.cli import main\n"
            "for a in (['--help'], ['--version'], ['demo', '--help']):\n"
            "    assert main(a) == 0\n"
            "bad = [m for m in ('numba', 'numpy', 'hwmodel.machine') if m in sys.modules]\n"
            "sys.exit('imported: ' + ', '.join(bad) if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_bench_help_still_lists_the_registered_benches(capsys):
    from kernels import registry
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry.experiments())


def test_version_is_quick():
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mksim", "--version"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, check=True, timeout=60)
        best = min(best, time.perf_counter() - t)
    assert best < 1.0       # generous: the bound is for a loaded machine; about 0.1 s when idle
