"""Machine files: the presets, the hop matrices, and how bad files are rejected.

Covers ``hwmodel.config`` (loading + validation) and ``hwmodel/presets/*.toml``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.config import (
    INCLUSION, INTERLEAVE, PRESET_DIR, PROTOCOLS, CacheConfig, CoherenceConfig,
    InterconnectConfig, MachineConfig, MemoryConfig, load_machine, preset_names)
from hwmodel.errors import MksimError
from hwmodel.interconnect import hop_matrix
from hwmodel.replacement import POLICIES

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# ------------------------------------------------------------------ presets

# name: (packages, cores_per_package, clock_ghz, protocol, topology, max hops,
#        {cache name: (level, kind, size, sharing)})
EXPECTED = {
    "intel-2x4": (2, 4, 2.66, "mesi", "bus", 1, {
        "L1D": (1, "data", 32 * KiB, "private"),
        "L1I": (1, "instruction", 32 * KiB, "private"),
        "L2": (2, "unified", 4 * MiB, "pair")}),
    "amd-2x2": (2, 2, 2.8, "moesi", "crossbar", 1, {
        "L1D": (1, "data", 64 * KiB, "private"),
        "L1I": (1, "instruction", 64 * KiB, "private"),
        "L2": (2, "unified", 1 * MiB, "private")}),
    "amd-4x4": (4, 4, 2.5, "moesi", "ht-square", 2, {
        "L1D": (1, "data", 64 * KiB, "private"),
        "L1I": (1, "instruction", 64 * KiB, "private"),
        "L2": (2, "unified", 512 * KiB, "private"),
        "L3": (3, "unified", 6 * MiB, "package")}),
    "amd-8x4": (8, 4, 2.0, "moesi", "twisted-ladder", 3, {
        "L1D": (1, "data", 64 * KiB, "private"),
        "L1I": (1, "instruction", 64 * KiB, "private"),
        "L2": (2, "unified", 512 * KiB, "private"),
        "L3": (3, "unified", 2 * MiB, "package")}),
    "mesh-64": (64, 1, 1.0, "mesi", "mesh2d", 14, {
        "L1D": (1, "data", 32 * KiB, "private"),
        "L1I": (1, "instruction", 32 * KiB, "private"),
        "L2": (2, "unified", 256 * KiB, "private")}),
    "mesh-1024": (1024, 1, 1.0, "mesi", "mesh2d", 62, {
        "L1D": (1, "data", 32 * KiB, "private"),
        "L1I": (1, "instruction", 16 * KiB, "private"),
        "L2": (2, "unified", 128 * KiB, "private")}),
}


def test_preset_list_is_complete():
    assert set(EXPECTED) <= set(preset_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_loads_and_matches_hardware(name):
    cfg = load_machine(name)
    pk, cpp, ghz, proto, topo, _, caches = EXPECTED[name]
    assert cfg.validate() is cfg
    assert cfg.name == name and cfg.origin == f"preset {name}"
    assert (cfg.packages, cfg.cores_per_package, cfg.cores) == (pk, cpp, pk * cpp)
    assert cfg.clock_ghz == pytest.approx(ghz)
    assert cfg.coherence.protocol == proto
    assert cfg.interconnect.topology == topo
    got = {c.name: (c.level, c.kind, c.size, c.sharing) for c in cfg.caches}
    assert got == caches
    assert cfg.line == 64 and all(c.line == 64 and c.replacement == "lru" for c in cfg.caches)
    # data path: one data-bearing cache per level, hit latency grows with the level
    data = sorted((c for c in cfg.caches if c.kind != "instruction"), key=lambda c: c.level)
    assert [c.level for c in data] == list(range(1, len(data) + 1))
    assert all(a.latency < b.latency for a, b in zip(data, data[1:]))
    assert all(c.latency > 0 for c in cfg.caches)
    assert cfg.memory.latency > 0 and cfg.memory.occupancy > 0
    ic = cfg.interconnect
    assert (ic.link_latency + ic.hop_latency > 0 or cfg.packages == 1) and cfg.coherence.directory_latency > 0


def test_preset_specifics():
    amd44 = load_machine("amd-4x4")
    assert amd44.cores == 16
    assert len([c for c in amd44.caches if c.kind != "instruction"]) == 3
    l3 = next(c for c in amd44.caches if c.level == 3)
    assert l3.sharing == "package" and amd44.group_size(l3.sharing) == 4
    assert l3.inclusion == "non-inclusive"          # victim cache
    amd84 = load_machine("amd-8x4")
    assert amd84.cores == 32 and amd84.packages == 8
    intel = load_machine("intel-2x4")
    assert intel.group_size(next(c for c in intel.caches if c.level == 2).sharing) == 2
    assert intel.memory.interleave == "line"        # one north-bridge controller
    for n in ("amd-2x2", "amd-4x4", "amd-8x4"):
        assert load_machine(n).memory.interleave == "node"
    for n in ("mesh-64", "mesh-1024"):
        cfg = load_machine(n)
        assert all(c.sharing == "private" for c in cfg.caches)   # no shared level
        assert cfg.memory.interleave in ("line", "page")


@pytest.mark.parametrize("name", ["amd-2x2", "amd-4x4", "amd-8x4"])
def test_amd_directory_latency_covers_the_broadcast(name):
    """No probe filter: the home waits for a probe round trip to the farthest node, so the fitted
    directory latency can be no less than that round trip plus one cache lookup there."""
    cfg = load_machine(name)
    ic = cfg.interconnect
    diameter = int(hop_matrix(ic, cfg.packages).max())
    l2 = next(c for c in cfg.caches if c.level == 2)
    assert cfg.coherence.directory_latency >= 2 * (ic.link_latency + diameter * ic.hop_latency) + l2.latency
    # leaving a package costs more than each further hop (Table 2: the first hop costs most)
    assert ic.link_latency >= ic.hop_latency


def _tables(doc: dict):
    """Every table of a parsed machine file, with a printable name."""
    for i, c in enumerate(doc.get("cache", [])):
        yield f"cache[{i}]", c
    for k in ("coherence", "interconnect", "memory"):
        yield k, doc.get(k)
    for k in ("core", "apic"):
        if k in doc:
            yield k, doc[k]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_number_has_a_source(name):
    doc = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())
    for where, table in _tables(doc):
        assert isinstance(table, dict), f"{name}: {where} missing"
        src = table.get("source")
        assert isinstance(src, str) and src.strip(), f"{name}: {where} has no source"
    assert doc.get("sources") and all(s.strip() for s in doc["sources"])
    assert doc.get("description", "").strip()
    cfg = load_machine(name)
    assert all(c.source for c in cfg.caches)
    assert cfg.coherence.source and cfg.interconnect.source and cfg.memory.source


def test_mesh_1024_state_fits_budget():
    """Directory sized from total private lines (2x slack, power of two), ~154 B per entry at 1024 cores."""
    cfg = load_machine("mesh-1024")
    lines = sum(c.size // c.line for c in cfg.caches) * cfg.cores
    entries = 1 << (2 * lines + 64 - 1).bit_length()
    words = (cfg.cores + 63) // 64
    per_entry = 1 + 8 + 1 + 8 + 8 + 8 * words
    cache_bytes = lines * (8 + 1 + 8)
    assert entries * per_entry + cache_bytes < 2 * GiB


# ------------------------------------------------------------------ hop matrices

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hop_matrix(name):
    cfg = load_machine(name)
    h = hop_matrix(cfg.interconnect, cfg.packages)
    assert h.shape == (cfg.packages, cfg.packages)
    assert (h == h.T).all()
    assert (np.diag(h) == 0).all()
    assert (h[~np.eye(cfg.packages, dtype=bool)] >= 1).all()
    assert h.max() == EXPECTED[name][5]


@pytest.mark.parametrize("name", ["mesh-64", "mesh-1024"])
def test_mesh_hops_are_manhattan(name):
    cfg = load_machine(name)
    n = cfg.packages
    w = cfg.interconnect.width or int(round(math.sqrt(n)))
    idx = np.arange(n)
    r, c = idx // w, idx % w
    manhattan = np.abs(r[:, None] - r[None, :]) + np.abs(c[:, None] - c[None, :])
    assert (hop_matrix(cfg.interconnect, n) == manhattan).all()


def test_twisted_ladder_and_square_distances():
    sq = hop_matrix(InterconnectConfig(topology="ht-square"), 4)
    assert sorted(sq[0].tolist()) == [0, 1, 1, 2]          # two neighbours, one diagonal
    tl = hop_matrix(InterconnectConfig(topology="twisted-ladder"), 8)
    assert tl.max() == 3
    assert all(2 <= (row == 1).sum() <= 3 for row in tl)    # an Opteron has at most 3 coherent HT links


# ------------------------------------------------------------------ writing machine files

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    """A machine document as TOML: scalars first, then [tables] and [[cache]]."""
    out = []
    for k, v in doc.items():
        if k != "cache" and not isinstance(v, dict):
            out.append(f"{json.dumps(k)} = {_toml_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            out.append(f"\n[{json.dumps(k)}]")
            out += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    cache = doc.get("cache")
    if isinstance(cache, list) and all(isinstance(c, dict) for c in cache):
        for c in cache:
            out.append("\n[[cache]]")
            out += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in c.items()]
    elif "cache" in doc and not isinstance(cache, dict):
        out.insert(0, f"cache = {_toml_value(cache)}")
    return "\n".join(out) + "\n"


def base_doc() -> dict:
    return {
        "name": "tiny", "packages": 2, "cores_per_package": 2, "clock_ghz": 2.0,
        "cache": [
            {"name": "L1D", "level": 1, "kind": "data", "size": 32 * KiB, "ways": 8, "latency": 3, "source": "s"},
            {"name": "L1I", "level": 1, "kind": "instruction", "size": 32 * KiB, "ways": 8, "latency": 3, "source": "s"},
            {"name": "L2", "level": 2, "size": 1 * MiB, "ways": 16, "latency": 14, "sharing": "package", "source": "s"},
        ],
        "coherence": {"protocol": "moesi", "directory_latency": 20, "source": "s"},
        "interconnect": {"topology": "crossbar", "hop_latency": 30, "source": "s"},
        "memory": {"latency": 100, "occupancy": 10, "size": 1 * GiB, "interleave": "node", "source": "s"},
    }


def write(dirpath: Path, doc_or_text) -> Path:
    p = dirpath / f"m-{uuid.uuid4().hex[:12]}.toml"
    p.write_text(doc_or_text if isinstance(doc_or_text, str) else to_toml(doc_or_text), encoding="utf-8")
    return p


def test_base_doc_is_valid(tmp_path):
    cfg = load_machine(str(write(tmp_path, base_doc())))
    assert cfg.cores == 4 and cfg.caches[2].sets == 1024


# ------------------------------------------------------------------ bad files: file, field and value named

def _mutated(fn):
    d = base_doc()
    fn(d)
    return d


BAD = {
    "size_not_divisible": (lambda d: d["cache"][0].update(size=32 * KiB + 8), "size", "32776"),
    "zero_ways": (lambda d: d["cache"][2].update(ways=0), "ways", "0"),
    "sets_not_pow2": (lambda d: d["cache"][2].update(size=3 * 16 * 64 * 32), "size", str(3 * 16 * 64 * 32)),
    "unknown_cache_field": (lambda d: d["cache"][1].update(colour="blue"), "colour", "colour"),
    "unknown_top_field": (lambda d: d.update(sockets=2), "sockets", "sockets"),
    "unknown_memory_field": (lambda d: d["memory"].update(channels=2), "channels", "channels"),
    "wrong_type_int": (lambda d: d["cache"][0].update(ways="eight"), "ways", "'eight'"),
    "wrong_type_top": (lambda d: d.update(packages="two"), "packages", "'two'"),
    "wrong_type_float": (lambda d: d.update(clock_ghz="fast"), "clock_ghz", "'fast'"),
    "wrong_type_str": (lambda d: d["coherence"].update(protocol=3), "protocol", "3"),
    "unknown_topology": (lambda d: d["interconnect"].update(topology="hypercube"), "topology", "'hypercube'"),
    "unknown_replacement": (lambda d: d["cache"][2].update(replacement="plru"), "replacement", "'plru'"),
    "unknown_sharing": (lambda d: d["cache"][2].update(sharing="socket"), "sharing", "'socket'"),
    "unknown_protocol": (lambda d: d["coherence"].update(protocol="mosi"), "protocol", "'mosi'"),
    "unknown_interleave": (lambda d: d["memory"].update(interleave="bank"), "interleave", "'bank'"),
    "negative_latency": (lambda d: d["cache"][2].update(latency=-1), "latency", "-1"),
    "line_mismatch": (lambda d: d["cache"][2].update(line=128, size=2 * MiB), "line", "128"),
    "level_gap": (lambda d: d["cache"][2].update(level=3), "level", "[1, 3]"),
    "duplicate_name": (lambda d: d["cache"][1].update(name="L1D"), "name", "'L1D'"),
    "split_at_level_2": (lambda d: d["cache"][2].update(kind="data"), "kind", "'data'"),
    "sharing_narrows": (lambda d: d["cache"].append({"name": "L3", "level": 3, "size": 2 * MiB, "ways": 16,
                                                     "latency": 40, "sharing": "private"}),
                        "sharing", "'private'"),
    "pair_with_odd_cores": (lambda d: d.update(cores_per_package=3) or d["cache"][2].update(sharing="pair"),
                            "sharing", "'pair'"),
    "memory_size": (lambda d: d["memory"].update(size=4096 * 3 + 8), "memory.size", "12296"),
    "square_needs_4": (lambda d: d["interconnect"].update(topology="ht-square"), "topology", "'ht-square'"),
    "zero_clock": (lambda d: d.update(clock_ghz=0), "clock_ghz", "0"),
    "cache_not_array": (lambda d: d.update(cache={"name": "x"}), "cache", "array"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_machine_file_names_file_field_and_value(tmp_path, case):
    fn, field, value = BAD[case]
    path = write(tmp_path, _mutated(fn))
    with pytest.raises(MksimError) as ei:
        load_machine(str(path))
    msg = str(ei.value)
    assert str(path) in msg and ei.value.where == str(path)
    assert field in msg, msg
    assert value in msg, msg


def test_missing_required_field(tmp_path):
    d = base_doc()
    del d["cache"][2]["ways"]
    path = write(tmp_path, d)
    with pytest.raises(MksimError, match="ways") as ei:
        load_machine(str(path))
    assert str(path) in str(ei.value)


def test_invalid_toml_syntax(tmp_path):
    path = write(tmp_path, to_toml(base_doc()) + "\n[memory\nlatency = = 3\n")
    with pytest.raises(MksimError, match="invalid TOML") as ei:
        load_machine(str(path))
    assert str(path) in str(ei.value) and "line" in str(ei.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(to_toml(base_doc()).replace('"tiny"', '"t\xefny"').encode("latin-1"))
    with pytest.raises(MksimError) as ei:
        load_machine(str(path))
    assert str(path) in str(ei.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "machine.toml"
    with pytest.raises(MksimError) as ei:
        load_machine(str(path))
    assert str(path) in str(ei.value) and "cannot read" in str(ei.value)


def test_unknown_preset_name():
    with pytest.raises(MksimError) as ei:
        load_machine("amd-16x16")
    msg = str(ei.value)
    assert "'amd-16x16'" in msg and "amd-4x4" in msg    # names the value and the known presets


# ------------------------------------------------------------------ property: random geometries

SHARING_ORDER = ("private", "pair", "package", "global")
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def machine_docs(draw):
    """A random *valid* machine document and the MachineConfig it must load as."""
    line = draw(st.sampled_from([8, 16, 32, 64, 128, 256]))
    cpp = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    packages = draw(st.integers(1, 8))
    cores = cpp * packages
    allowed = [s for s in SHARING_ORDER if s != "pair" or cpp % 2 == 0]
    nlev = draw(st.integers(1, 3))
    idx = sorted(draw(st.lists(st.integers(0, len(allowed) - 1), min_size=nlev, max_size=nlev)))
    sharing = ["private"] + [allowed[i] for i in idx][1:]   # level 1 is always private
    split = draw(st.sampled_from(["unified", "data", "split"]))
    caches = []

    def one(name, level, kind, share):
        c = {"name": name, "level": level, "size": None, "ways": draw(st.integers(1, 16))}
        c["size"] = (1 << draw(st.integers(0, 10))) * c["ways"] * line
        if line != 64 or draw(st.booleans()):
            c["line"] = line
        if kind != "unified" or draw(st.booleans()):
            c["kind"] = kind
        if share != "private" or draw(st.booleans()):
            c["sharing"] = share
        for k, strat in (("latency", st.integers(100 * (level - 1) + 4, 100 * level)),  # deeper is slower
                         ("inclusion", st.sampled_from(INCLUSION)),
                         ("replacement", st.sampled_from(sorted(POLICIES))),
                         ("source", TEXT)):
            if draw(st.booleans()):
                c[k] = draw(strat)
        if level > 1:
            c.setdefault("latency", 100 * (level - 1) + 4)   # the default (4) would undercut level 1
        return c

    for lv in range(1, nlev + 1):
        if lv == 1 and split != "unified":
            caches.append(one("L1D", 1, "data", sharing[0]))
            if split == "split":
                caches.append(one("L1I", 1, "instruction", sharing[0]))
        else:
            caches.append(one(f"L{lv}", lv, "unified", sharing[lv - 1]))
    caches = draw(st.permutations(caches))   # order of [[cache]] tables does not matter to validity

    topologies = ["bus", "crossbar", "ring"]
    widths = [w for w in range(1, packages + 1) if packages % w == 0]
    if packages % int(round(packages ** 0.5)) == 0:
        widths.append(0)
    topologies.append("mesh2d")
    if packages == 4:
        topologies.append("ht-square")
    if packages >= 4 and packages % 2 == 0:
        topologies.append("twisted-ladder")
    doc = {"name": draw(TEXT.filter(bool)), "packages": packages, "cores_per_package": cpp,
           "clock_ghz": draw(st.one_of(st.integers(1, 10),
                                       st.floats(0.001, 100, allow_nan=False, allow_infinity=False))),
           "cache": list(caches)}
    if draw(st.booleans()):
        doc["description"] = draw(TEXT)
    if draw(st.booleans()):
        doc["sources"] = draw(st.lists(TEXT, max_size=3))
    if draw(st.booleans()):
        doc["coherence"] = {"protocol": draw(st.sampled_from(PROTOCOLS)),
                            "directory_latency": draw(st.integers(0, 500)), "source": draw(TEXT)}
    if draw(st.booleans()):
        topo = draw(st.sampled_from(topologies))
        ic = {"topology": topo, "hop_latency": draw(st.integers(0, 200))}
        if topo == "mesh2d":
            ic["width"] = draw(st.sampled_from(widths))
        doc["interconnect"] = ic
    if draw(st.booleans()) or (1 << 32) % (packages * 4096):   # the default size needs 2^k packages
        doc["memory"] = {"latency": draw(st.integers(0, 1000)), "occupancy": draw(st.integers(0, 100)),
                         "size": packages * 4096 * draw(st.integers(1, 1 << 20)),
                         "interleave": draw(st.sampled_from(INTERLEAVE))}
    expected = MachineConfig(
        name=doc["name"], packages=packages, cores_per_package=cpp,
        clock_ghz=float(doc["clock_ghz"]),
        caches=tuple(CacheConfig(**c) for c in doc["cache"]),
        coherence=CoherenceConfig(**doc.get("coherence", {})),
        interconnect=InterconnectConfig(**doc.get("interconnect", {})),
        memory=MemoryConfig(**doc.get("memory", {})),
        description=doc.get("description", ""), sources=tuple(doc.get("sources", ())))
    assert cores == expected.cores
    return doc, expected


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("machines")


PROP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(machine_docs())
def test_valid_geometries_round_trip(fuzz_dir, case):
    doc, expected = case
    path = write(fuzz_dir, doc)
    cfg = load_machine(str(path))
    assert cfg.origin == str(path)
    assert dataclasses.replace(cfg, origin="x") == dataclasses.replace(expected, origin="x")
    for c in cfg.caches:
        assert c.sets * c.ways * c.line == c.size


def _break(d: dict, how: str, rnd) -> bool:
    """Make a valid document invalid in one way; False if this way does not apply to it."""
    caches = d["cache"]
    c = rnd.choice(caches)
    if how == "size_not_divisible":
        c["size"] = c["size"] + 1
    elif how == "zero_ways":
        c["ways"] = 0
    elif how == "sets_not_pow2":
        c["size"] = 3 * c["ways"] * c.get("line", 64)
    elif how == "unknown_field":
        rnd.choice([c, d, d.setdefault("memory", {}), d.setdefault("coherence", {})])["bogus_field"] = 1
    elif how == "wrong_type":
        key = rnd.choice(["size", "ways", "level", "latency", "line"])
        c[key] = rnd.choice([str(c.get(key, 1)), 1.5, True, [1]])
    elif how == "bad_enum":
        tbl, key = rnd.choice([(c, "replacement"), (c, "sharing"), (c, "inclusion"),
                               (d.setdefault("interconnect", {}), "topology"),
                               (d.setdefault("coherence", {}), "protocol"),
                               (d.setdefault("memory", {}), "interleave")])
        tbl[key] = "no-such-" + key
    elif how == "negative":
        tbl, key = rnd.choice([(c, "latency"), (d.setdefault("memory", {}), "latency"),
                               (d.setdefault("memory", {}), "occupancy"),
                               (d.setdefault("interconnect", {}), "hop_latency"),
                               (d.setdefault("coherence", {}), "directory_latency")])
        tbl[key] = -1 - rnd.randrange(100)
    elif how == "missing":
        del c[rnd.choice(["name", "level", "size", "ways"])]
    elif how == "level_gap":
        c["level"] = max(x["level"] for x in caches) + 2
    elif how == "bad_line":
        c["line"] = rnd.choice([0, 4, 48, 100])
    elif how == "bad_counts":
        d[rnd.choice(["packages", "cores_per_package"])] = rnd.choice([0, -2, 5000])
    elif how == "bad_clock":
        d["clock_ghz"] = rnd.choice([0, -1.5, float("nan")])
    elif how == "memory_size":
        d.setdefault("memory", {})["size"] = d["packages"] * 4096 + 1
    elif how == "not_a_table":
        d[rnd.choice(["coherence", "interconnect", "memory"])] = 7
    elif how == "duplicate_name":
        if len(caches) < 2:
            return False
        caches[1]["name"] = caches[0]["name"]
    else:
        raise AssertionError(how)
    return True


BREAKS = ["size_not_divisible", "zero_ways", "sets_not_pow2", "unknown_field", "wrong_type",
          "bad_enum", "negative", "missing", "level_gap", "bad_line", "bad_counts", "bad_clock",
          "memory_size", "not_a_table", "duplicate_name"]


@PROP
@given(machine_docs(), st.sampled_from(BREAKS), st.randoms(use_true_random=False))
def test_invalid_geometries_raise_mksim_error(fuzz_dir, case, how, rnd):
    doc, _ = case
    if not _break(doc, how, rnd):
        return
    path = write(fuzz_dir, doc)
    with pytest.raises(MksimError) as ei:
        load_machine(str(path))
    assert str(path) in str(ei.value)


JUNK = st.one_of(st.integers(-(1 << 70), 1 << 70), st.floats(), st.booleans(), TEXT,
                 st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from("ab"), st.integers(0, 3)))


@PROP
@given(machine_docs(), st.data())
def test_any_value_anywhere_loads_or_raises_mksim_error(fuzz_dir, case, data):
    doc, _ = case
    tables = [doc] + doc["cache"] + [doc.setdefault(k, {}) for k in ("coherence", "interconnect", "memory")]
    for _ in range(data.draw(st.integers(1, 3))):
        tbl = data.draw(st.sampled_from(tables))
        keys = sorted(tbl) + ["extra"]
        tbl[data.draw(st.sampled_from(keys))] = data.draw(JUNK)
    path = write(fuzz_dir, doc)
    try:
        load_machine(str(path))
    except MksimError as e:
        assert str(path) in str(e)


def test_infinite_clock_is_rejected(tmp_path):
    d = base_doc()
    d["clock_ghz"] = float("inf")
    with pytest.raises(MksimError):
        load_machine(str(write(tmp_path, d)))
