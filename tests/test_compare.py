"""mksim compare host (mksim/compare.py): rows built from a made-up host-bench report (the sysfs
fixtures plus invented numbers: nothing depends on the speed of the machine running the tests),
the model run on the preset calibrated from it, and bad input."""
from __future__ import annotations

import copy
import json

import pytest

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from mksim import compare, host
from tests.test_calibrate import _report
from tests.test_host import FIXTURE, FIXTURE_2S


def _summary(med: float) -> dict:
    return {"median": med, "min": 0.8 * med, "max": 1.5 * med, "spread": 0.7, "samples": [med]}


def _full_report(fixture=FIXTURE_2S, threads=(1, 2)) -> dict:
    """_report (sysfs fixture + made-up latencies) with made-up URPC and Figure 3 sections."""
    rep = _report(fixture)
    d = rep["host"]
    order = host.cpu_order(d["topology"], d["online"])
    paths = host.urpc_paths(d["topology"], d["caches"], order)
    rep["urpc"] = {"slots": 16, "rows": [{"path": p["path"], "cpus": p["cpus"],
                                          "latency_ns": _summary(100.0 + 10 * i),
                                          "throughput_msgs_per_us": _summary(5.0)}
                                         for i, p in enumerate(paths)], "note": None}
    rows = [{"series": f"SHM{k}", "threads": t, "ns": _summary(10.0 * k * t)} for k in (1, 8) for t in threads]
    rows += [{"series": "MSG8", "threads": t, "ns": _summary(300.0)} for t in threads[:-1]]
    rep["fig3"] = {"cpu_order": order, "rows": rows, "note": None}
    return rep


@pytest.fixture
def fast_model(monkeypatch):
    """Short model runs (shapes, not steady-state numbers)."""
    monkeypatch.setattr(compare, "FIG3_ITERS", 16)
    monkeypatch.setattr(compare, "URPC_ROUNDS", 20)
    monkeypatch.setattr(compare, "URPC_MSGS", 40)


# ----------------------------------------------------------------------------- host side
def test_host_metrics_names_and_units():
    hm = compare.host_metrics(_full_report())
    assert set(hm) == {"urpc_latency/shared-L3", "urpc_latency/other-package", "urpc_latency/smt",
                       "urpc_throughput/shared-L3", "urpc_throughput/other-package",
                       "urpc_throughput/smt", "shm1/1", "shm1/2", "shm8/1", "shm8/2", "msg8/1"}
    assert hm["shm8/2"]["value"] == 160.0 and hm["shm8/2"]["unit"] == "ns per update"
    assert hm["urpc_throughput/smt"]["unit"] == "messages/us"
    assert all(h["min"] <= h["value"] <= h["max"] for h in hm.values())


@pytest.mark.parametrize("edit,pattern", [
    (lambda r: r.pop("urpc"), "no 'urpc' section"),
    (lambda r: r["urpc"]["rows"][0]["latency_ns"].pop("median"), r"urpc\.rows\[0\]\.latency_ns\.median: missing"),
    (lambda r: r["urpc"]["rows"][1].update(throughput_msgs_per_us={"median": -1, "min": 1, "max": 2}),
     r"rows\[1\]\.throughput_msgs_per_us\.median = -1"),
    (lambda r: r["fig3"]["rows"][0]["ns"].update(min=1e9), r"fig3\.rows\[0\]\.ns: min"),
    (lambda r: r["fig3"]["rows"][2].update(series="SHMx"), r"fig3\.rows\[2\]\.series = 'SHMx'"),
    (lambda r: r["fig3"]["rows"][2].update(threads=0), r"fig3\.rows\[2\]\.threads = 0"),
    (lambda r: r["fig3"].update(rows="none"), r"fig3\.rows\[0\]: expected a JSON object"),
])
def test_malformed_reports_name_the_field(edit, pattern):
    rep = copy.deepcopy(_full_report())
    edit(rep)
    with pytest.raises(MksimError, match=pattern):
        compare.host_metrics(rep, "host.json")


def test_build_rows_error_and_missing_model():
    hm = compare.host_metrics(_full_report())
    model = {m: 2 * h["value"] for m, h in hm.items() if not m.endswith("/smt")}
    rows = compare.build_rows(model, hm)
    assert [r["metric"] for r in rows] == list(hm)
    for r in rows:
        assert {"metric", "model", "host", "error", "unit", "host_spread"} <= set(r)
        if r["metric"].endswith("/smt"):
            assert r["model"] is None and r["error"] is None
        else:
            assert r["error"] == pytest.approx(1.0)     # model twice the host: +100 %


# ----------------------------------------------------------------------------- model side
@pytest.mark.parametrize("machine,kinds", [
    ("amd-2x2", {"same-package": (0, 1), "other-package": (0, 2)}),            # no shared level
    ("amd-4x4", {"shared-L3": (0, 1), "other-package": (0, 4)}),
    ("intel-2x4", {"shared-L2": (0, 1), "same-package": (0, 2), "other-package": (0, 4)}),
])
def test_model_paths_follow_the_host_names(machine, kinds):
    cfg = load_machine(machine)
    for kind, pair in kinds.items():
        assert compare.model_pair(cfg, kind) == pair
    assert compare.model_pair(cfg, "smt") is None          # the model has no SMT threads
    assert compare.model_pair(cfg, "shared-L9") is None


def test_compare_from_a_made_up_report_runs_the_model(tmp_path, fast_model):
    rep_file = tmp_path / "host.json"
    rep_file.write_text(json.dumps(_full_report()))
    res = compare.run_compare(report=str(rep_file))
    rows = {r["metric"]: r for r in res["rows"]}
    assert set(rows) == set(compare.host_metrics(_full_report()))
    assert res["machine"] == "host" and res["clock_ghz"] == 2.5 and "clock_ghz" in res["units"]
    assert rows["urpc_latency/smt"]["model"] is None                  # the model has no SMT
    for m in ("urpc_latency/shared-L3", "urpc_latency/other-package", "urpc_throughput/shared-L3",
              "shm1/1", "shm8/2", "msg8/1"):
        assert rows[m]["model"] > 0 and rows[m]["error"] is not None
    # a line crossing packages is not faster than one within the package (the model's own physics)
    assert rows["urpc_latency/other-package"]["model"] >= rows["urpc_latency/shared-L3"]["model"]
    assert "urpc_latency/shared-L3" in compare.format_table(res)


def test_threads_beyond_the_preset_have_no_model_value(tmp_path, fast_model):
    rep = _full_report(FIXTURE, threads=(1, 2, 6))      # 6 threads: more than the 4-core preset
    rep["urpc"]["rows"] = []
    model = compare.model_metrics(compare.preset_from_report(rep), list(compare.host_metrics(rep)))
    assert model["shm8/6"] is None and model["msg8/2"] is not None and model["shm1/2"] > 0


# ----------------------------------------------------------------------------- CLI, bad input
def _cli(args, capsys):
    from mksim import cli
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_missing_report(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    code, _, err = _cli(["compare", "host", "--report", str(missing)], capsys)
    assert code != 0 and "nope.json" in err and "cannot read" in err


def test_cli_malformed_json(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = _cli(["compare", "host", "--report", str(bad)], capsys)
    assert code != 0 and "bad.json" in err and "not JSON" in err


def test_cli_preset_that_does_not_load(tmp_path, capsys):
    rep = tmp_path / "host.json"
    rep.write_text(json.dumps(_full_report()))
    preset = tmp_path / "broken.toml"
    preset.write_text('name = "x"\npackages = 1\n')
    code, _, err = _cli(["compare", "host", "--report", str(rep), "--preset", str(preset)], capsys)
    assert code != 0 and "broken.toml" in err and "missing field" in err


def test_cli_json_and_plot(tmp_path, capsys, fast_model):
    pytest.importorskip("matplotlib")
    rep = tmp_path / "host.json"
    rep.write_text(json.dumps(_full_report()))
    png = tmp_path / "cmp.png"
    code, out, _ = _cli(["compare", "host", "--report", str(rep), "--json", "--plot", str(png)], capsys)
    assert code == 0
    res = json.loads(out)
    assert all({"metric", "model", "host", "error"} <= set(r) for r in res["rows"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
