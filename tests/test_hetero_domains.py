"""Heterogeneous cores (core types with their own clocks and costs) and coherence domains
(no hardware coherence between them; CLFLUSH / WBINVD): unit tests, engine vs reference, properties."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.config import CacheOverride, CoreConfig, CoreType, load_machine, machine_from_dict
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from tests.harness import cpu_machines, workloads
from tests.test_cpu_vs_reference import MAX_OPS, assert_same, snapshot_engine, snapshot_reference

CODE = 0x100000
X = 0x20000          # a shared word


def _run(cfg, programs: dict, starts: dict | None = None, memory=()):
    """Place one program per core, start them, run engine and reference; both must agree."""
    m = Machine(cfg)
    w = m.workload()
    for a, data in memory:
        w.write(a, data)
    for i, (core, p) in enumerate(sorted(programs.items())):
        placed = w.place(p, CODE + 0x10000 * i)
        w.start(core, placed.pc(), at=(starts or {}).get(core, 0))
    m.load_workload(w)
    status = m.execute()
    r = ReferenceCpu(cfg)
    r.load_workload(w)
    assert r.execute() == status
    assert_same(snapshot_engine(m, [X]), snapshot_reference(r, [X]))
    for d in range(cfg.ndomains):
        assert m.read(X, 8, domain=d) == r.read_domain(d, X, 8)
    return m, r, status


def two_types(ratio_clock: float = 1.0, domains: bool = False):
    """A 2 x 2 machine whose second package is a slower core type (a small generated config)."""
    base = load_machine("omap4")
    slow = CoreType("slow", ratio_clock, replace(base.core, alu_latency=1, issue_width=1))
    fast = CoreType("fast", base.clock_ghz, base.core)
    return replace(base, core_types=(fast, slow), package_types=("fast", "slow"),
                   package_domains=(0, 1) if domains else ()).validate()


# ---------------------------------------------------------------- clocks

def test_slow_core_compute_takes_its_own_cycles():
    """compute(1000) on a 1 GHz core takes 2.5x the wall time of a 2.5 GHz core's."""
    base = load_machine("omap4")
    cfg = replace(base, clock_ghz=2.5, core_types=(CoreType("big", 2.5, base.core), CoreType("little", 1.0, base.core)),
                  package_types=("big", "little"), package_domains=()).validate()
    progs = {c: isa.Program(f"p{c}").compute(1000).mark(1).halt() for c in (0, 2)}
    m, _, status = _run(cfg, progs)
    assert status == "done"
    t = {int(r[0]): int(r[1]) for r in m.timeline()}
    fetch0, fetch2 = t[0] - 1000, t[2] - 2500      # what is left is the first fetch
    assert t[2] - fetch2 == 2.5 * (t[0] - fetch0)
    st_ = m.stats()["cores"]
    for c in (0, 2):
        assert st_[c]["ns"] == pytest.approx(int(m.state.clock[c]) / 2.5)
    assert st_[2]["cycles"] == int(m.state.clock[2]) * 2 // 5


def test_fractional_ratio_carries_the_remainder():
    """An own-cycle costs num/den ticks; n single-cycle ops cost floor(n * num / den) ticks, no drift."""
    cfg = two_types(0.5)           # 1.2 GHz reference, 500 MHz core: 12/5 ticks a cycle
    assert cfg.clock_ratio(2) == (12, 5)
    p = isa.Program("p").mark(0)
    for _ in range(6):
        p.nop()
    p.mark(1).halt()                  # ops 0..7 fill one 32-byte line: one fetch, before the first mark
    m, _, _ = _run(cfg, {2: p})
    t = [int(r[1]) for r in m.timeline()]
    assert t[1] - t[0] == (7 * 12) // 5        # 7 one-cycle ops: 16.8 ticks, 16 whole, 0.8 carried


def test_core_type_validation_names_the_field():
    base = load_machine("omap4")
    with pytest.raises(MksimError, match="package_types"):
        replace(base, package_types=("cortex-a9",)).validate()
    with pytest.raises(MksimError, match="no such core type"):
        replace(base, package_types=("cortex-a9", "nope")).validate()
    with pytest.raises(MksimError, match="whole number of MHz"):
        replace(base, core_types=(base.core_types[0], replace(base.core_types[1], clock_ghz=0.2000001))).validate()
    bad_cache = replace(base.core_types[1], caches=(CacheOverride("L9", 64, 2, 1),))
    with pytest.raises(MksimError, match="no cache of that name"):
        replace(base, core_types=(base.core_types[0], bad_cache)).validate()
    with pytest.raises(MksimError, match="package_domains"):
        replace(base, package_domains=(0, 2)).validate()


def test_toml_core_types_and_errors(tmp_path):
    import tomllib
    from hwmodel.config import PRESET_DIR
    d = tomllib.loads((PRESET_DIR / "omap4.toml").read_text())
    d["core_type"][1]["bogus"] = 1
    with pytest.raises(MksimError, match=r"core_type\[1\]\.bogus: unknown field"):
        machine_from_dict(d)
    del d["core_type"][1]["bogus"]
    d["core_type"][1]["clock_ghz"] = "fast"
    with pytest.raises(MksimError, match="must be a number"):
        machine_from_dict(d)


def test_homogeneous_machine_has_one_implicit_type():
    cfg = load_machine("amd-4x4")
    assert cfg.ndomains == 1 and all(cfg.clock_ratio(c) == (1, 1) for c in range(cfg.cores))
    assert cfg.core_type(5).core == cfg.core


# ---------------------------------------------------------------- coherence domains

def test_stale_read_until_writer_cleans_and_reader_invalidates():
    """A9 core 0 writes X; M3 core 2 keeps reading its stale cached copy until the writer's CLFLUSH
    reaches memory and its own CLFLUSH drops the stale copy."""
    cfg = load_machine("omap4")
    w = (isa.Program("writer").compute(100).store(X, 7).mark(1).compute(3000).clflush(X).mark(2).halt())
    r = (isa.Program("reader").load("r1", X).mark(10, "r1")      # fills the M3 domain's copy: 0
         .compute(2000).load("r2", X).mark(11, "r2")               # after the store: still 0
         .compute(4000).load("r3", X).mark(12, "r3")               # after the writer's clflush: still 0
         .clflush(X).load("r4", X).mark(13, "r4").halt())          # invalidated: memory's 7
    m, ref, status = _run(cfg, {0: w, 2: r})
    assert status == "done"
    marks = {int(x[2]): (int(x[1]), int(x[3])) for x in m.timeline()}
    assert marks[10][1] == 0 and marks[11][1] == 0 and marks[12][1] == 0 and marks[13][1] == 7
    assert marks[11][0] > marks[1][0] and marks[12][0] > marks[2][0]
    assert m.read(X, 8) == (7).to_bytes(8, "little")           # memory has the written-back value


def test_same_domain_sees_stores_at_once():
    cfg = load_machine("omap4")
    w = isa.Program("w").store(X, 5).halt()
    r = isa.Program("r").compute(3000).load("r1", X).mark(1, "r1").halt()
    m, _, _ = _run(cfg, {0: w, 1: r})
    assert int(m.timeline()[0][3]) == 5


def test_wbinvd_writes_back_the_whole_domain():
    cfg = load_machine("omap4")
    w = isa.Program("w").store(X, 9).store(X + 4096, 4).wbinvd().mark(1).halt()
    r = isa.Program("r").compute(30000).load("r1", X).load("r2", X + 4096).add("r1", "r1", "r2").mark(2, "r1").halt()
    m, _, _ = _run(cfg, {0: w, 2: r})
    assert int(m.timeline()[-1][3]) == 13
    assert m.read(X, 8, domain=0) == m.read(X, 8)
    from hwmodel.state import GFIRST
    # domain 0's caches hold only what was touched after the WBINVD: nothing (the writer halted)
    assert not any(m.lines_in(i) - {CODE // cfg.line + j for j in range(4)}
                   for i in range(m.state.geo.shape[0]) if m.state.cdom[m.state.geo[i, GFIRST]] == 0)


def test_cross_domain_writes_do_not_invalidate():
    cfg = load_machine("omap4")
    r = isa.Program("r").load("r1", X).compute(2000).load("r2", X).halt()
    w = isa.Program("w").compute(500).store(X, 1).halt()
    m, _, _ = _run(cfg, {2: r, 0: w})
    st_ = m.stats()["cores"]
    assert st_[2]["invalidations_received"] == 0 and st_[0]["invalidations_sent"] == 0


def test_spinner_in_other_domain_is_not_woken():
    """A store in domain 0 does not wake (or update) a domain-1 core spinning on that line: deadlock."""
    cfg = load_machine("omap4")
    s = isa.Program("s").spin_until(X, "eq", 1).halt()
    w = isa.Program("w").compute(500).store(X, 1).halt()
    m, _, status = _run(cfg, {2: s, 0: w})
    assert status == "deadlock"


# ---------------------------------------------------------------- engine vs reference

@st.composite
def hetero_machines(draw):
    """cpu_machines() with two core types (any MHz clocks) and, sometimes, two domains."""
    cfg = draw(cpu_machines())
    if cfg.packages < 2:
        cfg = replace(cfg, packages=2, memory=replace(cfg.memory, size=2 * 4096 * 16))
        if any(c.sharing == "global" for c in cfg.caches):
            cfg = replace(cfg, caches=tuple(replace(c, sharing="package") if c.sharing == "global" else c
                                            for c in cfg.caches))
        cfg = cfg.validate()
    mhz = draw(st.sampled_from([300, 700, 1000, 1300, 2000, 2500]))
    k = cfg.core
    slow = CoreConfig(alu_latency=draw(st.integers(0, 3)), atomic_latency=draw(st.integers(0, 9)),
                      rdtsc_latency=draw(st.integers(0, 9)), msr_latency=draw(st.integers(0, 20)),
                      mmio_latency=draw(st.integers(0, 20)), interrupt_entry=draw(st.integers(0, 40)),
                      iret_latency=draw(st.integers(0, 20)), invlpg_latency=draw(st.integers(0, 9)),
                      cr3_latency=draw(st.integers(0, 9)), tlb_entries=k.tlb_entries, tlb_ways=k.tlb_ways,
                      issue_width=draw(st.integers(1, 3)), spin_wake_latency=draw(st.integers(0, 30)),
                      clflush_latency=draw(st.integers(0, 30)), wbinvd_latency=draw(st.integers(0, 300)))
    overrides = []
    for c in cfg.caches:
        if c.sharing != "global" and draw(st.booleans()):
            ways = draw(st.integers(1, 3))
            overrides.append(CacheOverride(c.name, ways * c.line * draw(st.sampled_from([1, 2])), ways,
                                           draw(st.integers(1, 3)) * c.level))
    types = (CoreType("a", cfg.clock_ghz, replace(k, clflush_latency=draw(st.integers(0, 30)))),
             CoreType("b", mhz / 1000, slow, tuple(overrides), memory_latency=draw(st.sampled_from([0, 0, 7, 150]))))
    pt = tuple(draw(st.sampled_from(["a", "b"])) for _ in range(cfg.packages))
    doms = ()
    if draw(st.integers(0, 3)) > 0 and any(c.sharing == "global" for c in cfg.caches):
        cfg = replace(cfg, caches=tuple(replace(c, sharing="package") if c.sharing == "global" else c
                                        for c in cfg.caches))
    if all(c.sharing != "global" for c in cfg.caches) and draw(st.integers(0, 3)) > 0:
        doms = tuple(draw(st.integers(0, 1)) for _ in range(cfg.packages - 1)) + (1,)
        if 0 not in doms:
            doms = (0,) + doms[1:]
    try:
        return replace(cfg, core_types=types, package_types=pt, package_domains=doms).validate()
    except MksimError:
        return replace(cfg, core_types=types, package_types=("a",) * cfg.packages).validate()


@st.composite
def flushing_workloads(draw, cfg):
    """``workloads`` with some NOP/COMPUTE ops replaced by CLFLUSH (of a test word) or WBINVD:
    programs keep their length, so every branch target stays put."""
    import numpy as np
    w, words = draw(workloads(cfg))
    segs = []
    for a, ops, name in w.segments:
        ops = ops.copy()
        for i in range(len(ops)):
            if ops[i, 0] in (isa.NOP, isa.COMPUTE) and draw(st.booleans()):
                if draw(st.integers(0, 3)) == 0:
                    ops[i] = np.array([isa.WBINVD, 0, 0, 0, 0, 0, 0, 0], np.int64)
                else:
                    ops[i] = np.array([isa.CLFLUSH, 0, -1, draw(st.sampled_from(words)), 0, 0, 0, 0], np.int64)
        segs.append((a, ops, name))
    w.segments = segs
    return w, words


def run_both(cfg, w, words):
    m = Machine(cfg)
    m.load_workload(w)
    sm = m.execute(MAX_OPS)
    r = ReferenceCpu(cfg)
    r.load_workload(w)
    sr = r.execute(MAX_OPS)
    assert sm == sr
    assert_same(snapshot_engine(m, words), snapshot_reference(r, words))
    for d in range(cfg.ndomains):
        for a in words:
            assert m.read(a, 8, domain=d) == r.read_domain(d, a, 8), (d, hex(a))
    return m, r


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_engine_matches_reference_on_hetero_machines(data):
    cfg = data.draw(hetero_machines())
    w, words = data.draw(flushing_workloads(cfg))
    run_both(cfg, w, words)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), name=st.sampled_from(["omap4", "xeon-phi"]))
def test_engine_matches_reference_on_the_presets(data, name):
    cfg = load_machine(name)
    w, words = data.draw(flushing_workloads(cfg))
    run_both(cfg, w, words)


# ---------------------------------------------------------------- properties

GAP = 40000          # ticks between the global slots of the property's ops


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["load", "store", "clflush", "wbinvd"]),
                              st.integers(0, 3), st.integers(1, 200)), min_size=1, max_size=16))
def test_loads_return_what_their_domain_can_see(ops):
    """On the two-domain preset every load returns the value its domain last wrote to the word or, if
    its domain held no copy of the line, the value last written back to memory.  Op k runs in its own
    time slot (a core waits on RDTSC until k * GAP), so the global order is known; a shadow model of
    the rule (per-domain line copies over memory, CLFLUSH/WBINVD write back dirty copies) checks it."""
    cfg = load_machine("omap4")
    words = [X, X + 8, X + 4096, X + 64]
    progs = {c: isa.Program(f"p{c}") for c in range(4)}
    for k, (core, kind, wi, val) in enumerate(ops):
        p = progs[core]
        p.label(f"w{k}").compute(200).rdtsc("r5").br("lt", "r5", (k + 1) * GAP, f"w{k}")
        if kind == "load":
            p.load("r1", words[wi]).mark(k, "r1")
        elif kind == "store":
            p.store(words[wi], val).mark(k, val)
        elif kind == "clflush":
            p.clflush(words[wi]).mark(k, 0)
        else:
            p.wbinvd().mark(k, 0)
    for p in progs.values():
        p.halt()
    m, _, _ = _run(cfg, {c: p for c, p in progs.items() if p.ops[0][0] != isa.HALT})
    seen = {int(r[2]): int(r[3]) for r in m.timeline()}
    line = lambda a: a // cfg.line
    mem = {a: 0 for a in words}
    copy: dict = {0: {}, 1: {}}        # domain -> line -> {word: value}
    dirty: dict = {0: set(), 1: set()}

    def fill(d, ln):
        if ln not in copy[d]:
            copy[d][ln] = {a: mem[a] for a in words if line(a) == ln}

    def clean(d, ln):
        if ln in copy[d]:
            if ln in dirty[d]:
                mem.update(copy[d][ln])
            del copy[d][ln]
            dirty[d].discard(ln)

    for k, (core, kind, wi, val) in enumerate(ops):
        d, a = cfg.domain(core), words[wi]
        if kind == "load":
            fill(d, line(a))
            assert seen[k] == copy[d][line(a)][a], (k, core, hex(a))
        elif kind == "store":
            fill(d, line(a))
            copy[d][line(a)][a] = val
            dirty[d].add(line(a))
        elif kind == "clflush":
            clean(d, line(a))
        else:
            for ln in list(copy[d]):
                clean(d, ln)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_one_domain_machine_values_are_global(data):
    """With one domain, CLFLUSH/WBINVD change no value: memory is every core's view."""
    cfg = data.draw(cpu_machines())
    w, words = data.draw(flushing_workloads(cfg))
    m, r = run_both(cfg, w, words)
    assert r.copies == {}
    for a in words:
        assert m.read(a, 8, domain=0) == m.read(a, 8)


def test_omap4_every_number_has_a_source():
    cfg = load_machine("omap4")
    assert cfg.ndomains == 2 and {t.name for t in cfg.core_types} == set(cfg.package_types)
    for t in cfg.core_types:
        assert t.source.strip() and t.core.source.strip()
        assert all(o.source.strip() for o in t.caches)
    # the M3 package's caches are its own: unicache latency 2 M3 cycles = 12 ticks at 6 ticks a cycle
    m3 = cfg.cores_per_package
    l2 = next(i for i, c in enumerate(cfg.caches) if c.name == "L2")
    assert cfg.clock_ratio(m3) == (6, 1) and cfg.cache_for(l2, m3).latency == 12 and cfg.cache_for(l2, m3).size == 32768


def test_machines_show_prints_types_and_domains(capsys):
    from mksim.cli import main
    assert main(["machines", "show", "omap4"]) == 0
    out = capsys.readouterr().out
    assert "core_type cortex-m3" in out and "one cycle = 6/1 reference ticks" in out
    assert "package 1   cores 2..3  type cortex-m3    domain 1" in out
    assert "clflush_latency" in out


def test_xeon_phi_preset():
    """Two core types (2.4 and 1.1 GHz: 24/11 ticks a Phi cycle), two domains, the Phi's own memory."""
    cfg = load_machine("xeon-phi")
    phi = cfg.cores_per_package
    assert cfg.clock_ratio(phi) == (24, 11) and cfg.ndomains == 2
    assert cfg.memory_latency(0) == cfg.memory.latency and cfg.memory_latency(1) == -(-500 * 24 // 11)
    for t in cfg.core_types:
        assert t.source.strip() and all(o.source.strip() for o in t.caches)
    # a Phi core's miss to its own GDDR costs the Phi memory latency; a host core's to DDR3 the host's
    far = cfg.memory.size // 2 + 0x10000
    progs = {0: isa.Program("h").load("r1", 0x30000).halt(), phi: isa.Program("p").load("r1", far).halt()}
    m, _, status = _run(cfg, progs)
    assert status == "done"
    assert m.stats()["cores"][phi]["memory_reads"] >= 1


@pytest.mark.parametrize("name", ["omap4", "xeon-phi"])
def test_new_presets_source_every_table(name):
    from tests.test_config import test_every_number_has_a_source
    test_every_number_has_a_source(name)
    assert name in load_machine(name).name
