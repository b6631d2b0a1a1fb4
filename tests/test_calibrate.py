"""mksim calibrate (mksim/host.py calibrate): a host-bench report built from the sysfs fixtures
and a made-up latency table becomes a machine TOML that loads; no real benchmark runs here."""
from __future__ import annotations

import copy
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from mksim import host
from tests.test_host import FIXTURE, FIXTURE_2S

KIB = 1024
TSC_HZ = 2.5e9


def _report(fixture, chase_cycles=None, c2c_cycles=300.0, mem_total=16 * KIB ** 3) -> dict:
    """A host-bench report shaped as run_host_bench's, from a sysfs fixture and made-up numbers."""
    d = host.describe_host(fixture)
    sizes = host.working_sets(256 * KIB * KIB)
    if chase_cycles is None:   # a step per level: 4 / 14 / 50 / 250 cycles
        chase_cycles = [4 if s <= 32 * KIB else 14 if s <= 1 * KIB * KIB else 50 if s <= 8 * KIB * KIB
                        else 250 for s in sizes]
    mem = [{"bytes": s, "ns": {"median": c / 2.5}, "tsc_cycles": c} for s, c in zip(sizes, chase_cycles)]
    c2c = [] if c2c_cycles is None else [{"cpus": [a, b], "ns": {"median": c2c_cycles / 2.5},
                                          "tsc_cycles": c2c_cycles}
                                         for a, b in host.choose_pairs(d["online"])]
    return {"kind": "mksim host-bench", "date": "2026-01-02T00:00:00+00:00", "quick": True,
            "host": {**d, "allowed_cpus": d["online"], "machine": "x86_64",
                     "clock": {"tsc_hz": TSC_HZ}, "mem_total_bytes": mem_total},
            "memory_latency": {"rows": mem},
            "core_to_core": {"rows": c2c, "note": None if c2c else "skipped: one CPU"}}


def _load(tmp_path, text):
    p = tmp_path / "host.toml"
    p.write_text(text)
    return load_machine(str(p)), tomllib.loads(text)


@pytest.mark.parametrize("fixture", [FIXTURE, FIXTURE_2S])
def test_calibrated_toml_loads_and_matches_sysfs(tmp_path, fixture):
    rep = _report(fixture)
    cfg, d = _load(tmp_path, host.calibrate(rep))
    t = rep["host"]["topology"]
    assert d["packages"] == t["packages"] and d["packages"] * d["cores_per_package"] == t["cores"]
    assert d["clock_ghz"] == pytest.approx(TSC_HZ / 1e9)
    sysfs = {(c["level"], c["type"].lower()): c for c in rep["host"]["caches"]}
    assert len(d["cache"]) == len(sysfs)
    for c in d["cache"]:
        s = sysfs[(c["level"], {"data": "data", "instruction": "instruction"}.get(c["kind"], "unified"))]
        assert (c["size"], c["ways"], c["line"]) == (s["size_bytes"], s["ways"], s["line_bytes"])
    assert len(cfg.caches) == len(sysfs)


def test_every_table_and_cache_has_a_source(tmp_path):
    _, d = _load(tmp_path, host.calibrate(_report(FIXTURE)))
    for sec in ("coherence", "interconnect", "memory", "core", "apic"):
        assert d[sec]["source"].strip(), sec
    assert all(c["source"].strip() for c in d["cache"])
    assert "assumption" in d["core"]["source"] and "assumption" in d["apic"]["source"]
    assert any("sysfs" in s for s in d["sources"])


def test_shared_cache_sharing_follows_the_sysfs_list(tmp_path):
    _, d = _load(tmp_path, host.calibrate(_report(FIXTURE_2S)))
    by = {c["name"]: c["sharing"] for c in d["cache"]}
    # two-socket-smt: L1/L2 shared by SMT siblings only (one physical core), L3 by the package
    assert by["L1D"] == "private" and by["L2"] == "private" and by["L3"] == "package"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(1, 2000), min_size=17, max_size=17))
def test_latencies_never_decrease_by_level_whatever_the_chase(cycles):
    d = tomllib.loads(host.calibrate(_report(FIXTURE, chase_cycles=cycles)))
    data = sorted((c["level"], c["latency"]) for c in d["cache"] if c["kind"] != "instruction")
    lats = [lat for _, lat in data]
    assert lats == sorted(lats) and lats[0] >= 1
    assert d["memory"]["latency"] >= 1


def test_directory_latency_follows_the_engine_rule_for_a_cache_to_cache_transfer():
    d = tomllib.loads(host.calibrate(_report(FIXTURE, c2c_cycles=300.0)))
    lat = {c["name"]: c["latency"] for c in d["cache"]}
    assert d["coherence"]["directory_latency"] == round(300 - lat["L3"] - lat["L2"])
    assert "derived" in d["coherence"]["source"]


def test_no_core_to_core_data_is_a_stated_assumption():
    d = tomllib.loads(host.calibrate(_report(FIXTURE, c2c_cycles=None)))
    assert "assumption" in d["coherence"]["source"] and "no core-to-core" in d["coherence"]["source"]


def test_a_cache_without_ways_is_a_clear_error():
    rep = _report(FIXTURE)
    rep["host"]["caches"][0]["ways"] = 0
    with pytest.raises(MksimError, match="ways_of_associativity is 0"):
        host.calibrate(rep)


def test_missing_pieces_are_named():
    rep = _report(FIXTURE)
    bad = copy.deepcopy(rep)
    bad["host"]["clock"]["tsc_hz"] = None
    with pytest.raises(MksimError, match="tsc_hz"):
        host.calibrate(bad)
    with pytest.raises(MksimError, match="not a host-bench report"):
        host.calibrate({"kind": "something else"})
    small = copy.deepcopy(rep)   # no working set beyond the last level: no memory latency
    small["memory_latency"]["rows"] = [r for r in rep["memory_latency"]["rows"] if r["bytes"] <= 8 * KIB * KIB]
    with pytest.raises(MksimError, match="does not exceed the last-level cache"):
        host.calibrate(small)


def test_no_mem_total_is_a_stated_assumption():
    d = tomllib.loads(host.calibrate(_report(FIXTURE, mem_total=None)))
    assert "size: assumption" in d["memory"]["source"]
    d2 = tomllib.loads(host.calibrate(_report(FIXTURE)))
    assert d2["memory"]["size"] == 16 * KIB ** 3 and "MemTotal" in d2["memory"]["source"]


def test_a_size_without_power_of_two_sets_is_rounded_down_and_said_so(tmp_path):
    rep = _report(FIXTURE)
    l3 = next(c for c in rep["host"]["caches"] if c["level"] == 3)
    l3["size_bytes"], l3["ways"] = 30 * KIB * KIB, 20       # 24576 sets: not a power of two
    cfg, d = _load(tmp_path, host.calibrate(rep))
    c = next(c for c in d["cache"] if c["level"] == 3)
    assert c["size"] < 30 * KIB * KIB and "rounded down" in c["source"]
