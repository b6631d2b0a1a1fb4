"""The ``mksim`` command line: in process (``main(argv)``) and as a real subprocess."""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwmodel import cachegrind
from hwmodel.config import load_machine, preset_names
from hwmodel.machine import Machine
from hwmodel.trace import read_trace
from mksim import report
from mksim.cli import main, make_demo_trace

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
TRACES = DATA / "traces"
CG = DATA / "cachegrind"
TWO = TRACES / "two_cores.mksim"
TINY = TRACES / "tiny.lackey"


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, fragment: str | None = None) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mksim: error: "), err
    if fragment is not None:
        assert fragment.lower() in lines[0].lower(), lines[0]


def listing(d: Path) -> list[str]:
    """Every path under ``d`` (hidden temp files included), relative, sorted."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


# ------------------------------------------------------------------------- help, version
@pytest.mark.parametrize("argv", [[], ["machines"], ["machines", "show"], ["trace"], ["demo"]],
                         ids=lambda a: " ".join(a) or "top")
def test_help_of_every_subcommand(capsys, argv):
    rc, out, err = run(capsys, *argv, "--help")
    assert rc == 0
    assert out.startswith("usage: mksim")
    assert err == ""


def test_help_lists_subcommands(capsys):
    _, out, _ = run(capsys, "--help")
    for cmd in ("machines", "trace", "demo"):
        assert cmd in out


def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0
    assert out.strip() == "mksim 0.1.0"


# ------------------------------------------------------------------------- machines
def test_machines_lists_every_preset(capsys):
    rc, out, err = run(capsys, "machines")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "cores", "clock"]
    for name in preset_names():
        cfg = load_machine(name)
        row = next(ln for ln in lines if ln.split()[0] == name)
        assert f"{cfg.cores} ({cfg.packages}x{cfg.cores_per_package})" in row
        assert f"{cfg.clock_ghz:g} GHz" in row
    assert len(lines) == 1 + len(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_machines_show_text(capsys, name):
    cfg = load_machine(name)
    rc, out, err = run(capsys, "machines", "show", name)
    assert rc == 0, err
    assert out.startswith(cfg.name)
    for c in cfg.caches:
        assert f"cache {c.name}" in out
        if c.source:
            assert c.source in out
    for f in dataclasses.fields(type(cfg.caches[0])):
        assert f"  {f.name} " in out
    for sec in (cfg.coherence, cfg.interconnect, cfg.memory):
        for f in dataclasses.fields(sec):
            assert f"  {f.name} " in out
        if sec.source:
            assert sec.source in out
    for s in cfg.sources:
        assert s in out


@pytest.mark.parametrize("name", preset_names())
def test_machines_show_json(capsys, name):
    rc, out, err = run(capsys, "machines", "show", name, "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert got == json.loads(json.dumps(dataclasses.asdict(load_machine(name))))


SMALL_TOML = """\
name = "tiny-4"
description = "two packages of two cores"
packages = 2
cores_per_package = 2
clock_ghz = 1.0
sources = ["[me] made up for a test"]
[[cache]]
name = "L1D"
level = 1
size = 4096
ways = 2
source = "assumption: test"
[[cache]]
name = "L2"
level = 2
size = 65536
ways = 8
latency = 12
sharing = "package"
source = "assumption: test"
"""


def test_machines_show_file(capsys, tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SMALL_TOML)
    rc, out, err = run(capsys, "machines", "show", p)
    assert rc == 0, err
    assert "tiny-4" in out and "assumption: test" in out
    rc, out, err = run(capsys, "machines", "show", p, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["name"] == "tiny-4" and d["packages"] == 2 and len(d["caches"]) == 2
    assert d["origin"] == str(p)


# ------------------------------------------------------------------------- trace: cachegrind mode
def test_trace_cachegrind_text(capsys):
    rc, out, err = run(capsys, "trace", TINY, "--format", "lackey")
    assert rc == 0, err
    expect = cachegrind.format_summary(cachegrind.simulate(read_trace(str(TINY), "lackey")))
    assert out == expect + "\n(a cache-count model, cachegrind's: hits and misses, no cycles; " \
        "--machine replays the trace on a timing model)\n"
    assert out.startswith("I   refs:")


def test_trace_format_from_file_name(capsys):
    rc1, out1, _ = run(capsys, "trace", TINY)
    rc2, out2, _ = run(capsys, "trace", TINY, "--format", "lackey")
    assert rc1 == rc2 == 0 and out1 == out2


def test_trace_cachegrind_json_keys(capsys):
    rc, out, err = run(capsys, "trace", TINY, "--format", "lackey", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert tuple(d) == cachegrind.RESULT_KEYS
    assert d["I_refs"] == 2 and d["D_refs"] == 3


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_trace_cachegrind_mksim_format(capsys, suffix):
    """A multi-core trace in cachegrind mode: one hierarchy, core column ignored."""
    rc, out, err = run(capsys, "trace", f"{TWO}{suffix}", "--format", "mksim", "--json")
    assert rc == 0, err
    assert json.loads(out) == cachegrind.simulate(read_trace(str(TWO), "mksim"))


def _cg_cases():
    out = []
    for prog, configs in (("simd", None), ("true", ["default64", "mixed"])):
        meta = json.loads((CG / f"{prog}.json").read_text())
        for cname in configs or sorted(meta["configs"]):
            out.append(pytest.param(prog, cname, id=f"{prog}-{cname}"))
    return out


@pytest.mark.parametrize("prog, config", _cg_cases())
def test_trace_matches_recorded_cachegrind(capsys, prog, config):
    meta = json.loads((CG / f"{prog}.json").read_text())
    c = meta["configs"][config]
    spec = lambda t: ",".join(str(x) for x in t)  # noqa: E731
    rc, out, err = run(capsys, "trace", CG / meta["trace"], "--format", "lackey", "--json",
                       "--I1", spec(c["I1"]), "--D1", spec(c["D1"]), "--LL", spec(c["LL"]))
    assert rc == 0, err
    got = json.loads(out)
    for k, v in c["expected"].items():
        assert got[k] == v, (k, got[k], v)


def test_trace_cachegrind_defaults_are_cachegrinds(capsys):
    meta = json.loads((CG / "true.json").read_text())
    rc, out, err = run(capsys, "trace", CG / "true.lackey.xz", "--format", "lackey", "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert {k: got[k] for k in meta["configs"]["default64"]["expected"]} == \
        meta["configs"]["default64"]["expected"]


# ------------------------------------------------------------------------- trace: machine mode
def _machine_stats(path, fmt, machine, seed=0):
    t = read_trace(str(path), fmt)
    m = Machine(machine, seed=seed)
    m.run(t.core, t.kind, t.addr, t.size)
    return m.stats(), len(t)


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_trace_machine_json(capsys, suffix):
    rc, out, err = run(capsys, "trace", f"{TWO}{suffix}", "--format", "mksim",
                       "--machine", "amd-2x2", "--json")
    assert rc == 0, err
    d = json.loads(out)
    stats, n = _machine_stats(TWO, "mksim", "amd-2x2")
    assert d["trace"] == f"{TWO}{suffix}"
    assert d["accesses"] == n == 10
    del d["trace"], d["accesses"]
    assert d == json.loads(json.dumps(stats))
    assert d["machine"] == "amd-2x2" and len(d["cores"]) == 4


def test_trace_machine_text(capsys):
    rc, out, err = run(capsys, "trace", TWO, "--format", "mksim", "--machine", "amd-2x2")
    assert rc == 0, err
    stats, _ = _machine_stats(TWO, "mksim", "amd-2x2")
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.split()[:2] == ["core", "cycles"])
    assert "L1D hit/miss" in head and "c2c" in head and "inv_sent" in head
    for c in stats["cores"]:
        row = next(ln for ln in lines if ln.split() and ln.split()[0] == str(c["core"]))
        assert row.split()[1] == str(c["cycles"])
    assert f"total cycles {stats['total_cycles']:,}" in out
    assert "cache-to-cache" in out and "invalidations" in out and "memory:" in out


def test_trace_machine_from_toml_file_and_seed(capsys, tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SMALL_TOML)
    rc, out, err = run(capsys, "trace", TWO, "--format", "mksim", "--machine", p, "--seed", "7",
                       "--json")
    assert rc == 0, err
    assert json.loads(out)["machine"] == "tiny-4"


def test_trace_machine_lackey(capsys):
    rc, out, err = run(capsys, "trace", TINY, "--format", "lackey", "--machine", "intel-2x4", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["accesses"] == 5
    assert d["cores"][0]["accesses"] == 5
    assert all(c["accesses"] == 0 for c in d["cores"][1:])


@pytest.mark.parametrize("machine", [False, True], ids=["cachegrind", "machine"])
def test_trace_out_file(capsys, tmp_path, machine):
    out_file = tmp_path / "res.json"
    extra = ["--machine", "amd-2x2"] if machine else []
    rc, out, err = run(capsys, "trace", TWO, "--format", "mksim", *extra, "--json", "--out", out_file)
    assert rc == 0, err
    assert json.loads(out_file.read_text()) == json.loads(out)
    assert listing(tmp_path) == ["res.json"]
    # without --json: text on stdout, JSON in the file
    out_file.unlink()
    rc, out, err = run(capsys, "trace", TWO, "--format", "mksim", *extra, "--out", out_file)
    assert rc == 0, err
    assert not out.lstrip().startswith("{")
    assert json.loads(out_file.read_text())
    assert listing(tmp_path) == ["res.json"]


# ------------------------------------------------------------------------- demo
def test_demo_report_folder(capsys, tmp_path):
    dest = tmp_path / "rep"
    rc, out, err = run(capsys, "demo", "--out", dest)
    assert rc == 0, err
    files = {p.name for p in dest.iterdir()}
    try:
        import matplotlib  # noqa: F401
        has_mpl = True
    except ImportError:
        has_mpl = False
    assert files == ({"report.json", "trace.mksim", "summary.txt", "boot-trace.json", "boot"}
                     | ({"cycles.png", "shm-vs-msg.png"} if has_mpl else set()))
    if has_mpl:
        assert (dest / "cycles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((dest / "report.json").read_text())
    assert rep["machine"]["name"] == "amd-4x4"
    assert sorted(rep["files"]) == sorted(files)
    t = read_trace(str(dest / "trace.mksim"), "mksim")
    assert len(t) == rep["trace"]["accesses"] == rep["summary"]["totals"]["accesses"]
    assert 90_000 <= len(t) <= 110_000
    assert set(np.unique(t.core).tolist()) == set(range(16))
    stats = rep["stats"]
    assert stats["total_cycles"] > 0 and len(stats["cores"]) == 16
    tot = rep["summary"]["totals"]
    assert tot["invalidations_sent"] > 0 and tot["cache_to_cache"] > 0 and tot["memory_reads"] > 0
    # the printed summary is summary.txt, followed by where the report went
    assert out.startswith((dest / "summary.txt").read_text())
    assert "total cycles" in out and str(dest) in out
    # the boot part: every kernel up, a trace Perfetto opens, a plan mksim boot reruns
    assert len(rep["boot"]["kernels"]) == 16 and all(k["up"] for k in rep["boot"]["kernels"])
    bt = json.loads((dest / "boot-trace.json").read_text())
    assert {e["tid"] for e in bt["traceEvents"] if e["ph"] == "X"} == set(range(16))
    assert (dest / "boot" / "plan.cfg").is_file() and "boot:" in out
    series = {r["series"] for r in rep["shm_vs_msg"]["rows"]}
    assert series == {"SHM1", "SHM2", "SHM4", "SHM8", "MSG1", "MSG8", "SERVER"}
    # nothing left beside the report folder
    assert [p for p in listing(tmp_path) if not p.startswith("rep/boot/")] == (
        ["rep"] + sorted(f"rep/{f}" for f in files))


def test_demo_is_deterministic_and_replays_the_same(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "3000", "--out", d)
        assert rc == 0, err
    assert (a / "trace.mksim").read_bytes() == (b / "trace.mksim").read_bytes()
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert ra["stats"] == rb["stats"]
    # the report's stats are what replaying the written trace gives
    stats, n = _machine_stats(a / "trace.mksim", "mksim", "amd-2x2")
    assert ra["stats"] == json.loads(json.dumps(stats)) and n == 3000
    # another seed, another trace
    c = tmp_path / "c"
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "3000", "--seed", "1", "--out", c)
    assert rc == 0, err
    assert (a / "trace.mksim").read_bytes() != (c / "trace.mksim").read_bytes()


def test_demo_default_folder_and_replace(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "500")
    assert rc == 0, err
    dest = tmp_path / "reports" / "demo-amd-2x2"
    assert (dest / "report.json").is_file()
    (dest / "stale.txt").write_text("from an older run")
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "600")
    assert rc == 0, err
    assert not (dest / "stale.txt").exists()
    assert json.loads((dest / "report.json").read_text())["trace"]["accesses"] == 600
    assert [p for p in listing(tmp_path / "reports") if not p.startswith("demo-amd-2x2/boot/")] == sorted(
        ["demo-amd-2x2"] + [f"demo-amd-2x2/{p.name}" for p in dest.iterdir()])


def test_make_demo_trace_shape():
    cfg = load_machine("amd-4x4")
    core, kind, addr, size = make_demo_trace(cfg, 1600, seed=0)
    assert core.size == kind.size == addr.size == size.size == 1600
    assert np.bincount(core).tolist() == [100] * 16
    assert set(np.unique(kind).tolist()) == {0, 1, 2, 3}
    assert (size >= 1).all() and (addr >= 0).all()


# ------------------------------------------------------------------------- bad input
TOMLS = {
    "unknown_field": SMALL_TOML + "bogus = 3\n",
    "wrong_type": SMALL_TOML.replace("packages = 2", 'packages = "two"'),
    "bad_value": SMALL_TOML.replace("size = 4096", "size = 3000"),
    "not_toml": "name = \n",
}


def _bad_cases():
    """(id, argv with {in} for the input folder, a fragment of the message)."""
    two, tiny = str(TWO), str(TINY)
    return [
        ("missing_file", ["trace", "{in}/nope.mksim", "--format", "mksim"], "cannot read"),
        ("directory", ["trace", "{in}", "--format", "mksim"], "cannot read"),
        ("corrupt_xz", ["trace", "{in}/cut.lackey.xz", "--format", "lackey"], "decompress"),
        ("gz_not_gzip", ["trace", "{in}/plain.mksim.gz", "--format", "mksim"], "not gzip"),
        ("malformed_mksim", ["trace", "{in}/bad.mksim", "--format", "mksim"], "bad.mksim:2"),
        ("malformed_mksim_machine", ["trace", "{in}/bad.mksim", "--format", "mksim",
                                     "--machine", "amd-2x2"], "bad.mksim:2"),
        ("malformed_lackey", ["trace", "{in}/bad.lackey", "--format", "lackey"], "bad.lackey:3"),
        ("binary", ["trace", "{in}/binary.mksim", "--format", "mksim"], "binary.mksim:1"),
        ("wrong_format", ["trace", tiny, "--format", "mksim"], "tiny.lackey"),
        ("unknown_format_name", ["trace", "{in}/trace.txt"], "--format"),
        ("i1_sets", ["trace", tiny, "--I1", "1000,3,64"], "--I1"),
        ("d1_line", ["trace", tiny, "--D1", "8192,2,8"], "--D1"),
        ("ll_syntax", ["trace", tiny, "--LL", "abc"], "--LL"),
        ("ll_assoc", ["trace", tiny, "--LL", "8192,0,64"], "--LL"),
        ("spans_lines", ["trace", "{in}/span.mksim", "--format", "mksim"], "more than two"),
        ("unknown_preset", ["trace", two, "--format", "mksim", "--machine", "nope"],
         "unknown machine preset"),
        ("missing_toml", ["trace", two, "--format", "mksim", "--machine", "{in}/none.toml"],
         "cannot read"),
        *[(f"toml_{k}", ["trace", two, "--format", "mksim", "--machine", f"{{in}}/{k}.toml"],
           f"{k}.toml") for k in TOMLS],
        ("cg_opts_with_machine", ["trace", two, "--format", "mksim", "--machine", "amd-2x2",
                                  "--D1", "32768,8,64"], "--machine"),
        ("core_out_of_range", ["trace", "{in}/core9.mksim", "--format", "mksim",
                               "--machine", "amd-2x2"], "core 9"),
        ("seed_without_machine", ["trace", two, "--format", "mksim", "--seed", "3"], "--seed"),
        ("show_unknown", ["machines", "show", "nope"], "unknown machine preset"),
        ("show_bad_toml", ["machines", "show", "{in}/unknown_field.toml"], "bogus"),
        ("show_directory", ["machines", "show", "{in}/"], "director"),
        ("demo_unknown", ["demo", "--machine", "nope"], "unknown machine preset"),
        ("demo_bad_toml", ["demo", "--machine", "{in}/wrong_type.toml"], "packages"),
        ("demo_accesses", ["demo", "--accesses", "0", "--machine", "amd-2x2"], "--accesses"),
        ("demo_not_toml", ["demo", "--machine", "{in}/not_toml.toml"], "invalid toml"),
    ]


USAGE_ERRORS = [
    ["frobnicate"],
    ["trace"],
    ["trace", str(TINY), "--format", "pdf"],
    ["trace", str(TWO), "--machine", "amd-2x2", "--seed", "abc"],
    ["trace", str(TWO), "--machine", "amd-2x2", "--seed", "-1"],
    ["machines", "list-all"],
    ["machines", "show"],
    ["demo", "--accesses", "many"],
    ["demo", "--bogus"],
]


@pytest.fixture
def bad_inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "cut.lackey.xz").write_bytes((CG / "simd.lackey.xz").read_bytes()[:200])
    (d / "plain.mksim.gz").write_bytes(TWO.read_bytes())
    (d / "bad.mksim").write_text("0 L 0x10 8\n0 Q 0x10 8\n")
    (d / "bad.lackey").write_text("I  0400d7d4,8\n L 0421e9b0,8\n L zz,8\n")
    (d / "binary.mksim").write_bytes(bytes(range(256)) * 4)
    (d / "trace.txt").write_text("0 L 0x10 8\n")
    (d / "span.mksim").write_text("0 I 0x10 4000\n")
    (d / "core9.mksim").write_text("0 L 0x10 8\n9 L 0x10 8\n")
    for k, text in TOMLS.items():
        (d / f"{k}.toml").write_text(text)
    return d


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input(capsys, tmp_path, bad_inputs, case):
    _, argv, fragment = case
    argv = [a.replace("{in}", str(bad_inputs)) for a in argv]
    outdir = tmp_path / "out"
    outdir.mkdir()
    if argv[0] == "trace":
        argv += ["--out", str(outdir / "r.json")]
    elif argv[0] == "demo":
        argv += ["--out", str(outdir / "rep")]
    before = listing(bad_inputs)
    rc, out, err = run(capsys, *argv)
    assert_one_line_error(rc, err, fragment)
    assert listing(outdir) == []  # no result, no temp file
    assert listing(bad_inputs) == before


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=lambda a: " ".join(a)[-40:])
def test_usage_errors(capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert_one_line_error(rc, err)
    assert out == ""


def test_out_into_missing_folder(capsys, tmp_path):
    rc, _, err = run(capsys, "trace", TINY, "--out", tmp_path / "no" / "r.json")
    assert_one_line_error(rc, err, "does not exist")
    assert listing(tmp_path) == []


def test_out_is_a_directory(capsys, tmp_path):
    rc, _, err = run(capsys, "trace", TINY, "--out", tmp_path)
    assert_one_line_error(rc, err, "directory")
    assert listing(tmp_path) == []


def test_demo_refuses_foreign_folder_and_file(capsys, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "100", "--out", d)
    assert_one_line_error(rc, err, "not an mksim report")
    assert (d / "thesis.tex").read_text() == "precious"
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "100", "--out", f)
    assert_one_line_error(rc, err, "not a folder")
    assert f.read_text() == "x"
    assert listing(tmp_path) == ["file", "mine", "mine/thesis.tex"]


# ------------------------------------------------------------------------- atomicity
def test_out_untouched_when_the_run_fails(capsys, tmp_path, bad_inputs):
    res = tmp_path / "r.json"
    res.write_text("OLD")
    rc, _, err = run(capsys, "trace", bad_inputs / "bad.mksim", "--format", "mksim", "--out", res)
    assert_one_line_error(rc, err)
    assert res.read_text() == "OLD"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["r.json"]


def test_out_untouched_when_the_write_fails(capsys, tmp_path, monkeypatch):
    res = tmp_path / "r.json"
    res.write_text("OLD")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "replace", boom)
    rc, out, err = run(capsys, "trace", TINY, "--json", "--out", res)
    assert_one_line_error(rc, err, "No space left")
    assert res.read_text() == "OLD"
    assert listing(tmp_path) == ["r.json"]  # the temp file is gone
    assert out == ""  # nothing printed as if it had worked


def test_out_replaced_whole(capsys, tmp_path):
    res = tmp_path / "r.json"
    res.write_text("x" * 100_000)  # longer than the new content: no stale tail may remain
    rc, out, err = run(capsys, "trace", TINY, "--json", "--out", res)
    assert rc == 0, err
    assert res.read_text() == out


def test_demo_failure_leaves_old_report(capsys, tmp_path, monkeypatch):
    dest = tmp_path / "rep"
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "200", "--out", dest)
    assert rc == 0, err
    def snapshot():
        return {str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}
    old = snapshot()

    from hwmodel.errors import MksimError

    def fail(*a, **k):
        raise MksimError("simulated failure half way")

    monkeypatch.setattr("mksim.cli.summarize_stats", fail)
    rc, _, err = run(capsys, "demo", "--machine", "amd-2x2", "--accesses", "300", "--out", dest)
    assert_one_line_error(rc, err, "half way")
    assert snapshot() == old
    assert [p for p in listing(tmp_path) if p.count("/") <= 1] == ["rep"] + sorted(
        f"rep/{n}" for n in {k.split("/")[0] for k in old})


def test_report_folder_unit(tmp_path):
    dest = tmp_path / "r"
    with report.report_folder(dest) as d:
        (d / "report.json").write_text("{}")
        assert not dest.exists()  # built beside, renamed at the end
    assert listing(tmp_path) == ["r", "r/report.json"]
    with pytest.raises(RuntimeError):
        with report.report_folder(dest) as d:
            (d / "report.json").write_text('{"new": 1}')
            raise RuntimeError("bug")
    assert (dest / "report.json").read_text() == "{}"
    assert listing(tmp_path) == ["r", "r/report.json"]


def test_write_json_unit(tmp_path):
    p = report.write_json(tmp_path / "x.json", {"a": np.int64(3), "b": np.arange(2), "c": (1.5,)})
    assert json.loads(p.read_text()) == {"a": 3, "b": [0, 1], "c": [1.5]}
    assert listing(tmp_path) == ["x.json"]


# ------------------------------------------------------------------------- real processes
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _py(*argv, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mksim", *map(str, argv)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_subprocess_python_m_mksim():
    p = _py("--version")
    assert p.returncode == 0 and p.stdout.strip() == "mksim 0.1.0"
    p = _py("trace", TINY, "--format", "lackey", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == cachegrind.simulate(read_trace(str(TINY), "lackey"))


def test_subprocess_bad_input_exit_code(tmp_path):
    bad = tmp_path / "bad.mksim"
    bad.write_text("0 L 0x10 8\nnot a line\n")
    p = _py("trace", bad, "--format", "mksim", "--machine", "amd-2x2", "--out", tmp_path / "r.json")
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("mksim: error: ")
    assert f"{bad}:2" in p.stderr and "Traceback" not in p.stderr
    assert listing(tmp_path) == ["bad.mksim"]
    p = _py("trace", "--format", "nope", bad)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_subprocess_gzip_trace_on_machine(tmp_path):
    gz = tmp_path / "t.mksim.gz"
    gz.write_bytes(gzip.compress(TWO.read_bytes()))
    p = _py("trace", gz, "--machine", "amd-2x2", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["accesses"] == 10


def _console_script() -> str | None:
    here = Path(sys.executable).parent / "mksim"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("mksim")


@pytest.mark.skipif(_console_script() is None, reason="the mksim console script is not installed")
def test_console_script():
    exe = _console_script()
    p = subprocess.run([exe, "machines"], capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL, env=_env())
    assert p.returncode == 0, p.stderr
    assert all(n in p.stdout for n in preset_names())
    p = subprocess.run([exe, "machines", "show", "nope"], capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL, env=_env())
    assert p.returncode == 2 and p.stderr.startswith("mksim: error: ") and p.stderr.count("\n") == 1


# ------------------------------------------------------------------------- bench
SHM_ARGS = ("bench", "shm-vs-msg", "--machine", "amd-2x2", "--max-cores", "3", "--iters", "8")
URPC_KEYS = ["machine", "path", "hops", "shared_cache", "latency_cycles", "msgs_per_kcycle",
             # the paper's Table 2 values and the model's error (None where the paper has no row)
             "paper_path", "paper_latency_cycles", "paper_msgs_per_kcycle", "latency_error_pct", "msgs_error_pct"]
PLOT_MSG = "mksim: error: --plot needs matplotlib (pip install 'mksim[plot]')\n"


@pytest.mark.parametrize("argv", [["bench"], ["bench", "shm-vs-msg"], ["bench", "urpc"]],
                         ids=lambda a: " ".join(a))
def test_bench_help(capsys, argv):
    rc, out, err = run(capsys, *argv, "--help")
    assert rc == 0 and out.startswith("usage: mksim bench") and err == ""


def test_help_lists_bench(capsys):
    _, out, _ = run(capsys, "--help")
    assert "bench" in out
    _, out, _ = run(capsys, "bench", "--help")
    assert "shm-vs-msg" in out and "urpc" in out


def test_bench_shm_vs_msg_json(capsys):
    rc, out, err = run(capsys, *SHM_ARGS, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert list(doc) == ["rows"]
    rows = doc["rows"]
    assert rows
    for r in rows:
        assert list(r) == ["series", "cores", "cycles_per_update"]
        assert isinstance(r["series"], str) and type(r["cores"]) is int
        assert isinstance(r["cycles_per_update"], (int, float)) and r["cycles_per_update"] > 0
    v = {(r["series"], r["cores"]): r["cycles_per_update"] for r in rows}
    assert len(v) == len(rows)                       # one row per (series, cores)
    for s in ("SHM1", "SHM2", "SHM4", "SHM8"):
        assert [k for (x, k) in v if x == s] == [1, 2, 3]
        assert v[(s, 1)] < v[(s, 2)] < v[(s, 3)], s  # contention grows with the cores
    for s in ("MSG1", "MSG8", "SERVER"):            # a server core and at least one client
        assert sorted(k for (x, k) in v if x == s) == [2, 3], s
    assert v[("SHM8", 1)] > v[("SHM1", 1)]          # more lines, more work


def test_bench_shm_vs_msg_text(capsys):
    rc, out, err = run(capsys, *SHM_ARGS)
    assert rc == 0, err
    assert "amd-2x2" in out
    head = next(ln for ln in out.splitlines() if ln.startswith("cores"))
    assert head.split() == ["cores", "SHM1", "SHM2", "SHM4", "SHM8", "MSG1", "MSG8", "SERVER"]
    one = next(ln for ln in out.splitlines() if ln.split()[:1] == ["1"])
    assert one.split()[5:] == ["-", "-", "-"]       # no MSG with one core
    assert [ln.split()[0] for ln in out.splitlines() if ln.split() and ln.split()[0].isdigit()] == ["1", "2", "3"]


def test_bench_urpc_json(capsys):
    rc, out, err = run(capsys, "bench", "urpc", "--machine", "amd-2x2", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert list(doc) == ["rows"]
    rows = doc["rows"]
    assert [r["path"] for r in rows] == ["same package", "one hop"]
    for r in rows:
        assert list(r) == URPC_KEYS
        assert r["machine"] == "amd-2x2"
        assert type(r["hops"]) is int and r["hops"] >= 0
        assert type(r["shared_cache"]) is bool
        assert r["latency_cycles"] > 0 and r["msgs_per_kcycle"] > 0
    assert [r["hops"] for r in rows] == [0, 1]
    assert [r["shared_cache"] for r in rows] == [False, False]
    assert rows[1]["latency_cycles"] > rows[0]["latency_cycles"]   # a hop costs


def test_bench_urpc_text_shows_the_paper(capsys):
    rc, out, err = run(capsys, "bench", "urpc", "--machine", "amd-2x2")
    assert rc == 0, err
    assert "SOSP 2009" in out and "Table 2" in out
    head = next(ln for ln in out.splitlines() if ln.startswith("path"))
    assert "paper latency" in head and "paper msgs/kcycle" in head and "error" in head
    same = next(ln for ln in out.splitlines() if ln.startswith("same package"))
    hop = next(ln for ln in out.splitlines() if ln.startswith("one hop"))
    assert "same die" in same and " 450 " in same and "3.42" in same and "%" in same
    assert " 532 " in hop and "3.19" in hop and "%" in hop


def test_bench_urpc_text_without_paper(capsys):
    rc, out, err = run(capsys, "bench", "urpc", "--machine", "mesh-64")
    assert rc == 0, err
    assert "paper" not in out and "one hop" in out


def test_table2_data_file():
    from mksim import paper
    t = paper.load_table2()
    assert len(t) == 10
    got = {(r["machine"], r["path"]): (r["latency_cycles"], r["msgs_per_kcycle"]) for r in t}
    assert got[("intel-2x4", "shared L2")] == (180, 11.97)
    assert got[("intel-2x4", "non-shared")] == (570, 3.78)
    assert got[("amd-2x2", "same die")] == (450, 3.42)
    assert got[("amd-4x4", "two hops")] == (558, 3.51)
    assert got[("amd-8x4", "one hop")] == (613, 2.79)
    assert {r["machine"] for r in t} == set(paper.BARRELFISH_MACHINES)
    assert all(r["source"] == paper.SOURCE for r in t)


def test_compare_urpc_maps_the_paths():
    from mksim import paper

    def row(machine, path, lat=100.0, thr=2.0):
        return {"machine": machine, "path": path, "cores": [0, 1], "hops": 0, "shared_cache": False,
                "latency_cycles": lat, "msgs_per_kcycle": thr}
    rows = [row("intel-2x4", "shared L2", 198.0, 11.97), row("intel-2x4", "same package"),
            row("intel-2x4", "one hop"), row("amd-2x2", "same package", 450.0, 3.42),
            row("amd-2x2", "one hop"), row("amd-8x4", "three hops"), row("amd-8x4", "shared L3"),
            row("mesh-64", "one hop")]
    c = paper.compare_urpc(rows)
    assert [r["paper_path"] for r in c] == ["shared L2", "non-shared", "non-shared", "same die", "one hop",
                                            None, "shared L3", None]
    assert c[0]["paper_latency_cycles"] == 180 and c[0]["latency_error_pct"] == 10.0
    assert c[0]["msgs_error_pct"] == 0.0
    assert c[1]["paper_latency_cycles"] == c[2]["paper_latency_cycles"] == 570
    assert c[3]["latency_error_pct"] == 0.0
    assert c[5]["paper_latency_cycles"] is None and c[5]["latency_error_pct"] is None
    assert "paper_path" not in rows[0]                 # the input rows are left as they were
    text = paper.format_urpc(c[5:7])
    three = next(ln for ln in text.splitlines() if ln.startswith("three hops"))
    assert three.split()[-5:] == ["-"] * 5


@pytest.mark.parametrize("argv,fragment", [
    (("bench", "urpc", "--machine", "nope"), "nope"),
    (("bench", "shm-vs-msg", "--machine", "nope"), "nope"),
    (("bench", "shm-vs-msg", "--machine", "amd-2x2", "--max-cores", "0"), "--max-cores"),
    (("bench", "shm-vs-msg", "--machine", "amd-2x2", "--max-cores", "5"), "--max-cores"),
    (("bench", "shm-vs-msg", "--machine", "amd-2x2", "--max-cores", "two"), "--max-cores"),
    (("bench", "shm-vs-msg", "--machine", "amd-2x2", "--iters", "0"), "--iters"),
    (("bench", "urpc"), "--machine"),
    (("bench",), "ACTION"),
    (("bench", "nope", "--machine", "amd-2x2"), "nope"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else None)
def test_bench_bad_input(capsys, argv, fragment):
    rc, out, err = run(capsys, *argv)
    assert_one_line_error(rc, err, fragment)
    assert out == ""


def test_bench_benchmark_failure_is_one_line(capsys, monkeypatch):
    from kernels import microbench

    def boom(*a, **k):
        raise RuntimeError("URPC ping-pong on amd-2x2 cores 0,1 ended deadlock")
    monkeypatch.setattr(microbench, "urpc_rows", boom)
    rc, out, err = run(capsys, "bench", "urpc", "--machine", "amd-2x2")
    assert_one_line_error(rc, err, "deadlock")
    assert out == ""


@pytest.mark.parametrize("argv", [SHM_ARGS, ("bench", "urpc", "--machine", "amd-2x2")],
                         ids=["shm-vs-msg", "urpc"])
def test_bench_plot_without_matplotlib(capsys, tmp_path, monkeypatch, argv):
    from kernels import microbench
    for mod in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, mod, None)     # import fails as when it is not installed

    def not_called(*a, **k):
        raise AssertionError("the benchmark ran before the plot was refused")
    monkeypatch.setattr(microbench, "shm_vs_msg_rows", not_called)
    monkeypatch.setattr(microbench, "urpc_rows", not_called)
    rc, out, err = run(capsys, *argv, "--plot", tmp_path / "f.png")
    assert rc == 2
    assert err == PLOT_MSG
    assert out == ""
    assert listing(tmp_path) == []


@pytest.mark.parametrize("argv", [SHM_ARGS, ("bench", "urpc", "--machine", "amd-2x2")],
                         ids=["shm-vs-msg", "urpc"])
def test_bench_plot_writes_png(capsys, tmp_path, argv):
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    png.write_bytes(b"old")
    rc, out, err = run(capsys, *argv, "--json", "--plot", png)
    assert rc == 0, err
    assert json.loads(out)["rows"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert listing(tmp_path) == ["f.png"]              # replaced whole, no temporary file left


def test_bench_plot_into_missing_folder(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    rc, _, err = run(capsys, "bench", "urpc", "--machine", "amd-2x2", "--plot", tmp_path / "no" / "f.png")
    assert_one_line_error(rc, err, "does not exist")
    assert listing(tmp_path) == []


def test_subprocess_bench_urpc():
    p = _py("bench", "urpc", "--machine", "amd-2x2", "--json")
    assert p.returncode == 0, p.stderr
    assert [list(r) for r in json.loads(p.stdout)["rows"]] == [URPC_KEYS] * 2
    p = _py("bench", "urpc", "--machine", "nope")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_figure3_points_match_shm_vs_msg_rows():
    from kernels import microbench
    from mksim import paper
    full = microbench.shm_vs_msg_rows("amd-2x2", 3, 8)
    assert paper.figure3_points("amd-2x2", [1, 3], 8) == [r for r in full if r["cores"] in (1, 3)]
