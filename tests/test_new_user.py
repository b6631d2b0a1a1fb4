"""What a new user hit (issue 15), one test each: the compile notice, packaging extras, empty and
binary traces, machines show DIR, --D1 with a negative number, --out parents, SIGTERM during
the demo, machines show's [core]/[apic] tables, urpc --json's paper columns, stale docs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from hwmodel.errors import MksimError
from mksim import progress
from mksim.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_compile_notice_only_when_the_cache_is_empty(tmp_path, capsys):
    d = str(tmp_path)   # an empty cache folder (NUMBA_CACHE_DIR is read once, at numba's import)
    assert not progress.engine_compiled(d)
    assert progress.compile_notice(True, d) is True
    assert progress.COMPILE_NOTICE in capsys.readouterr().err
    progress.compile_notice(False, d)
    assert capsys.readouterr().err == ""
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "cpu.run-1.py311.nbi").write_bytes(b"x")
    assert progress.engine_compiled(d) and progress.compile_notice(True, d) is False
    assert capsys.readouterr().err == ""


def test_progress_is_silent_when_quiet_or_json_piped(capsys):
    assert not progress.wanted(quiet=True)
    assert not progress.wanted(json_out=True)      # pytest's stdout is not a terminal
    p = progress.Progress(3, "x", enabled=False)
    p.update()
    p.close()
    assert capsys.readouterr().err == ""


def test_pytest_and_hypothesis_only_in_the_test_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta["dependencies"])
    assert "pytest" not in deps and "hypothesis" not in deps
    extras = meta["optional-dependencies"]
    assert any(d.startswith("pytest") for d in extras["test"])
    assert any(d.startswith("hypothesis") for d in extras["test"])
    assert any(d.startswith("dask[distributed]") for d in extras["sweep"])


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_trace_is_an_error_naming_the_file(tmp_path, capsys, text):
    f = tmp_path / "empty.mksim"
    f.write_text(text)
    assert main(["trace", str(f), "--machine", "amd-2x2"]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "no accesses" in err
    g = tmp_path / "empty.lackey"
    g.write_text("\n" * len(text))   # lackey has no comments: blank lines
    assert main(["trace", str(g)]) == 2
    assert "no accesses" in capsys.readouterr().err


def test_binary_trace_says_binary_not_the_bytes(tmp_path, capsys):
    f = tmp_path / "junk.mksim"
    f.write_bytes(b"0 L 0x10 8\n\x7fELF\x00\x01\xff\xfe garbage")
    assert main(["trace", str(f), "--machine", "amd-2x2"]) == 2
    err = capsys.readouterr().err
    assert "not a text trace (binary data at byte 15)" in err and "ELF" not in err


def test_machines_show_a_directory(tmp_path, capsys, monkeypatch):
    (tmp_path / "somedir").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["machines", "show", "somedir"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_cache_spec_with_a_leading_minus_reaches_the_parser(tmp_path, capsys):
    f = tmp_path / "t.lackey"
    f.write_text("I  00400000,4\n")
    assert main(["trace", str(f), "--D1", "-32768,8,64"]) == 2
    err = capsys.readouterr().err
    assert "--D1" in err and "expected one argument" not in err


def test_out_parent_must_exist_for_demo_as_for_trace(tmp_path, capsys):
    dest = tmp_path / "missing" / "rep"
    assert main(["demo", "--machine", "amd-2x2", "--out", str(dest)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
    f = tmp_path / "t.lackey"
    f.write_text("I  00400000,4\n")
    assert main(["trace", str(f), "--out", str(dest)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_folder_make_parents(tmp_path):
    from mksim.report import report_folder
    with pytest.raises(MksimError, match="does not exist"):
        with report_folder(tmp_path / "a" / "r"):
            pass
    with report_folder(tmp_path / "a" / "r", make_parents=True) as d:
        (d / "report.json").write_text("{}")
    assert (tmp_path / "a" / "r" / "report.json").is_file()


def test_sigterm_during_demo_removes_its_temporary_folder(tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.Popen([sys.executable, "-m", "mksim", "demo", "--machine", "amd-2x2", "--accesses", "200000",
                             "--out", str(out)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(".rep.*.tmp")):
        time.sleep(0.01)
    assert proc.poll() is None, "the demo ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=300)
    assert rc == 143 and b"terminated" in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []


def test_machines_show_text_has_core_and_apic_tables(capsys):
    assert main(["machines", "show", "amd-2x2"]) == 0
    out = capsys.readouterr().out
    assert "\ncore\n" in out and "atomic_latency" in out
    assert "\napic\n" in out and "ipi_latency" in out


def test_bench_urpc_json_has_paper_values_and_error(capsys):
    assert main(["bench", "urpc", "--machine", "amd-2x2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    paper = [r for r in rows if r["paper_latency_cycles"] is not None]
    assert paper, "amd-2x2 is a machine of the paper's Table 2"
    for r in paper:
        want = round(100 * (r["latency_cycles"] - r["paper_latency_cycles"]) / r["paper_latency_cycles"], 1)
        assert abs(r["latency_error_pct"] - want) <= 0.1
    assert all("msgs_error_pct" in r for r in rows)


def test_docs_are_not_stale():
    ex = (ROOT / "examples" / "README.md").read_text()
    assert "not yet in the repository" not in ex and (ROOT / "boot" / "mkimage.py").is_file()
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/activate" in readme and "## Sweeps" in readme
    for p in (ROOT / "hwmodel" / "presets").glob("*.toml"):
        text = p.read_text()
        assert "/work/" not in text and "/home/" not in text and "REFERENCES.md" not in text, p.name


def _boot_rows(n: int) -> list[dict]:
    steps = ["grub", "grub load", "smp boot", "startup wait", "load", "second stage", "start kernel"]
    return [{"flow": "trampoline", "kernels": k, "all_up_cycles": 1_000_000 * k, "all_up_us": 400.0 * k,
             "steps": {**{s: 123_456 * k for s in steps}, **{f"k{i} virtual": 1000 for i in range(1, k)}}}
            for k in range(1, n + 1)]


def test_bench_boot_table_fits_100_columns_and_groups_kernel_steps():
    from mksim.cli import format_boot_table
    text = format_boot_table(_boot_rows(40), "m", "trampoline")
    assert max(len(ln) for ln in text.splitlines()) <= 100
    assert "kN virtual" in text and "k3 virtual" not in text
    assert text.count("\nkernels ") >= 2            # columns in blocks
    kn = [ln for ln in text.splitlines() if ln.startswith("kN virtual")]
    assert kn[-1].split()[-1] == str(1000 * 39)     # summed over the kernels


def test_bench_boot_plot_keeps_end_to_end_apart_and_legend_outside():
    plt = pytest.importorskip("matplotlib.pyplot")
    from mksim.cli import plot_boot

    class Cfg:
        name = "m"
    fig = plot_boot(_boot_rows(12), Cfg(), "trampoline", plt)
    top, steps = fig.axes
    assert len(top.lines) == 1 and len(steps.lines) == 8
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in steps.lines}
    assert len(styles) == len(steps.lines)
    leg = steps.get_legend()
    fig.canvas.draw()
    assert leg.get_window_extent().x0 >= steps.get_window_extent().x1   # outside the axes
    plt.close(fig)


def test_inspect_plan_shows_the_plan_and_validates_it(tmp_path, capsys):
    assert main(["inspect", str(ROOT / "examples" / "twin-linux.cfg")]) == 0
    out = capsys.readouterr().out
    assert "multi-kernel plan" in out and "linux0" in out and "linux1" in out
    assert len(out.splitlines()) < 10
    assert main(["inspect", str(ROOT / "examples" / "twin-linux.cfg"), "--commands"]) == 0
    assert "menuentries" in capsys.readouterr().out
    bad = tmp_path / "overlap.cfg"
    bad.write_text((ROOT / "examples" / "twin-linux.cfg").read_text()
                   .replace("--memory 0x40000000-0x80000000", "--memory 0x20000000-0x80000000"))
    assert main(["inspect", str(bad)]) == 2
    assert "overlapping memory partitions" in capsys.readouterr().err
