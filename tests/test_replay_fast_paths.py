"""The replay fast paths give exactly the numbers of the plain paths and of the references.

* ``hwmodel.uniprocessor``: a data access to the line the previous one left in level 1 skips
  the look-up, and the clock, stamps and counters stay in registers for a whole run;
* ``hwmodel.engine``: the ``OWNM`` hint lets a store hit skip the directory look-up, and the
  directory starts small and doubles (``run_trace`` stops, ``Machine`` rehashes, the replay
  resumes);
* ``hwmodel.cachegrind``: each L1 remembers its last block, and LL ways are narrow (int32,
  ``block >> set bits``) until an address needs them wide.

Traces here run on the same few lines over and over (so the fast paths are taken often) and are
stepped in uneven chunks (so every fast path also starts cold, mid-trace).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel.state as state_mod
from hwmodel.cachegrind import simulate
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.reference import ReferenceMachine
from hwmodel.state import OWNM
from hwmodel.trace import Trace
from tests.harness import machines, traces
from tests.test_cachegrind import T, _ref_sim
from tests.test_engine_vs_reference import assert_same


@st.composite
def runs_of_lines(draw, cores: int, max_len: int = 200):
    """A trace of short runs on one line each (several accesses to a line in a row, as programs do)."""
    core, kind, addr, size = draw(traces(cores, max_len=max_len // 4, max_lines=40))
    reps = draw(st.lists(st.integers(1, 6), min_size=core.size, max_size=core.size))
    idx = np.repeat(np.arange(core.size), reps)
    bump = draw(st.lists(st.integers(0, 56), min_size=idx.size, max_size=idx.size))
    a = (addr[idx] & ~np.int64(63)) + np.array(bump, np.int64)        # same line, other words
    k = np.array(draw(st.lists(st.integers(0, 3), min_size=idx.size, max_size=idx.size)), np.int64)
    s = np.minimum(size[idx], 64 - (a & 63))                          # mostly within the line
    s[::7] = size[idx][::7]                                           # some straddle the next one
    return core[idx], k, a, s


def _stepped(m: Machine, trace, chunks: list[int]) -> np.ndarray:
    """Run ``trace`` on ``m`` in chunks of the given sizes (then the rest)."""
    m.load(*trace)
    for c in chunks:
        m.step(c)
    m.step(-1)
    return m.latencies


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_core_fast_path_matches_reference_and_general_engine(data):
    cfg = data.draw(machines(max_cores=1))
    trace = data.draw(runs_of_lines(1))
    seed = data.draw(st.integers(0, 2**32))
    chunks = data.draw(st.lists(st.integers(1, 9), max_size=6))
    fast = Machine(cfg, seed=seed)
    la = _stepped(fast, trace, chunks)
    ref = ReferenceMachine(cfg, seed=seed)
    lb = ref.run(*trace)
    assert_same(fast, la, ref, lb)
    general = Machine(cfg, seed=seed, one_core_path=False)
    lg = general.run(*trace)
    assert list(la) == list(lg)
    assert list(fast.issue_times) == list(general.issue_times)
    assert list(fast.effect_times) == list(general.effect_times)
    assert fast.stats() == general.stats()
    assert fast.cache_contents() == general.cache_contents()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_store_hints_and_a_growing_directory_match_reference(data, monkeypatch_dir):
    """Many lines on a tiny starting directory (it doubles several times mid-trace), stores that
    hit owned lines, reads that take ownership away; stepped in chunks."""
    monkeypatch_dir(8)
    cfg = data.draw(machines(max_cores=8))
    trace = data.draw(runs_of_lines(cfg.cores, max_len=300))
    chunks = data.draw(st.lists(st.integers(1, 9), max_size=6))
    m = Machine(cfg)
    assert m.state.dirt.shape[0] <= 8
    la = _stepped(m, trace, chunks)
    r = ReferenceMachine(cfg)
    assert_same(m, la, r, r.run(*trace))


@pytest.fixture
def monkeypatch_dir(monkeypatch):
    """Set the directory's starting size (rows) for the machines built in a test."""
    return lambda rows: monkeypatch.setattr(state_mod, "DIR_START", rows)


def test_the_directory_grows_to_its_live_lines_not_to_its_bound(monkeypatch_dir):
    """16 cores each touching 300 lines of their own: the directory ends a power of two at least twice
    the live entries, below its full size; and the results equal those on a full-size directory."""
    monkeypatch_dir(16)
    cfg = Machine("amd-4x4").cfg
    n = 16 * 300
    core = np.arange(n) % 16
    addr = (core << 24) + (np.arange(n) // 16) * 64
    trace = (core, np.where(np.arange(n) % 3 == 0, 2, 1), addr, np.full(n, 8))
    small = Machine(cfg)
    small.run(*trace)
    live = int(small.state.d_count[0])
    rows = small.state.dirt.shape[0]
    assert live == n
    assert 2 * live <= rows < 4 * live + 32
    assert rows < small.state.params[state_mod.P_DIRFULL]
    monkeypatch_dir(1 << 30)
    full = Machine(cfg)
    full.run(*trace)
    assert full.state.dirt.shape[0] == full.state.params[state_mod.P_DIRFULL]
    assert list(small.latencies) == list(full.latencies)
    assert small.stats() == full.stats()
    assert small.directory() == full.directory()


def test_a_store_after_a_remote_read_asks_the_directory_again():
    """Core 0 owns a line in M (its copy carries the hint); core 1 reads it; core 0's next store must
    upgrade (a transaction), not hit on a stale hint.  The reference agrees on every number."""
    cfg = Machine("amd-2x2").cfg
    line = 0x40000
    alone = Machine(cfg)
    alone.run(np.zeros(2, np.int64), np.full(2, 2), np.full(2, line), np.full(2, 8))
    valid = (alone.state.flags & 1) != 0
    held = alone.state.flags[valid & (alone.state.tag == line >> 6)]
    assert held.size and (held & OWNM).any(), "a core that stored to its line in M carries the hint"
    # core 0: store, store, 80 loads elsewhere, store; core 1: 40 loads elsewhere, then reads the line
    far = 0x1000000 + 64 * np.arange(120)
    core = np.array([0, 0] + [0] * 80 + [0] + [1] * 40 + [1])
    kind = np.array([2, 2] + [1] * 80 + [2] + [1] * 40 + [1])
    addr = np.concatenate([[line, line], far[:80], [line], far[80:] + (1 << 28), [line]])
    trace = (core, kind, addr, np.full(core.size, 8))
    m = Machine(cfg)
    la = m.run(*trace)
    r = ReferenceMachine(cfg)
    assert_same(m, la, r, r.run(*trace))
    assert m.stats()["cores"][0]["upgrades"] >= 1       # the read came between: the store asked again


# ---------------------------------------------------------------- cachegrind mode

@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ILSM"), st.sampled_from([0, 2**36, 2**47, 2**63 - 4096]),
                          st.integers(0, 1023), st.integers(1, 16)), max_size=80),
       st.integers(0, 40))
def test_cachegrind_narrow_and_wide_ll_match_reference(accs, repeat_from):
    """Low addresses first (narrow LL), then high ones (LL widened mid-trace), runs of one block
    (the L1s' last-block shortcut): the counts of the plain restatement of cg_sim.c."""
    accs = sorted(accs, key=lambda a: a[1])                      # the high region comes later
    accs = [(op, base + off, s) for op, base, off, s in accs]
    accs = accs + accs[repeat_from:repeat_from + 10]            # repeats: MRU hits on a known block
    for i1, d1, ll in (((64, 2, 16), (64, 2, 16), (64, 2, 16)),     # LL limit 2**36: widens
                       ((128, 2, 32), (256, 4, 32), (1024, 4, 64))):
        got = simulate(T(*accs), i1, d1, ll)
        exp = _ref_sim(accs, i1, d1, ll)
        assert {k: got[k] for k in exp} == exp


def test_cachegrind_reports_a_bad_kind_before_an_earlier_straddle():
    """The kernel stops at the first problem, but input errors anywhere are still named first."""
    tr = Trace(core=np.zeros(3, np.int32), kind=np.array([0, 1, 7], np.int8),      # a 200-byte fetch first
               addr=np.array([0, 60, 0], np.int64), size=np.array([200, 4, 4], np.int32))
    with pytest.raises(MksimError, match="bad kind 7"):
        simulate(tr)
    tr.kind[2] = 1
    with pytest.raises(MksimError, match="spans more than two cache lines"):
        simulate(tr)


def test_cachegrind_wide_ll_on_the_shipped_traces():
    """The shipped real programs moved up by 2**60 (the same sets, every LL way widened to int64
    from the first reference): still exactly what cachegrind printed for them."""
    import dataclasses
    import glob
    import json
    import os

    from tests.test_cachegrind import CG_DIR, _load
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CG_DIR, "*.json")))
    assert names
    for name in names:
        meta, trace = _load(name)
        assert (trace.addr.view(np.uint64) >= 64).all()       # block 0 (cachegrind's zeroed tags) untouched
        high = dataclasses.replace(trace, addr=trace.addr + np.int64(1 << 60))
        cname, cfg = next(iter(meta["configs"].items()))
        got = simulate(high, tuple(cfg["I1"]), tuple(cfg["D1"]), tuple(cfg["LL"]))
        exp = cfg["expected"]
        assert {k: got[k] for k in exp} == exp, (name, cname)


def test_a_straddling_access_forgets_the_known_line():
    """A one-line level 1: an access straddling lines 0 and 1 leaves line 1 there, so the next access
    to line 0 misses (the one-core shortcut must not take it for the line it knew before)."""
    from hwmodel.config import CacheConfig, MachineConfig
    caches = tuple(CacheConfig(name=nm, level=lv, size=sz, ways=1, line=64, latency=lat, sharing="private",
                               kind=kd, replacement="lru")
                   for nm, lv, sz, lat, kd in (("L1D", 1, 64, 1, "data"), ("L1I", 1, 64, 1, "instruction"),
                                               ("L2", 2, 4096, 7, "unified")))
    cfg = MachineConfig(name="one-line", packages=1, cores_per_package=1, clock_ghz=1.0, caches=caches,
                        origin="test").validate()
    n = 3
    core, kind = np.zeros(n, np.int64), np.zeros(n, np.int64) + 1       # loads
    addr, size = np.array([0, 49, 0], np.int64), np.array([1, 16, 1], np.int64)
    m = Machine(cfg)
    la = m.run(core, kind, addr, size)
    ref = ReferenceMachine(cfg)
    assert_same(m, la, ref, ref.run(core, kind, addr, size))
    # misses: line 0; then line 0 hits and line 1 misses (evicting line 0); line 0 again
    assert m.stats()["cores"][0]["caches"]["L1D"]["misses"] == 3


def _program_run(cfg, lines: int, stride: int, seed: int):
    """Every core stores to ``lines`` lines of its own region and loads one of 4 shared lines each
    iteration; returns the machine after the run."""
    from hwmodel import isa
    m = Machine(cfg, seed=seed)
    w = m.workload()
    for c in range(cfg.cores):
        p = isa.Program(f"dir-grow{c}")
        p.movi("r1", 0x100_0000 + c * (1 << 22))
        p.movi("r0", 0)
        p.label("loop")
        p.store(0, "r0", base="r1")
        p.alu("and", "r2", "r0", 3)
        p.alu("shl", "r2", "r2", 6)
        p.load("r3", 0x80_0000, base="r2")
        p.add("r1", "r1", stride)
        p.add("r0", "r0", 1)
        p.br("lt", "r0", lines, "loop")
        p.halt()
        w.start(c, w.place(p, 0x10_0000 + c * 0x1_0000).pc())
    m.load_workload(w)
    assert m.execute() == "done"
    return m


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.integers(1, 700), stride=st.sampled_from([64, 128, 4096 + 64]), start=st.sampled_from([1, 16, 256]),
       seed=st.integers(0, 3))
def test_programs_grow_the_directory_as_they_run_with_the_same_results(monkeypatch_dir, lines, stride, start, seed):
    """The program engine stops for a bigger directory before a step could fill it past half; a run
    that grows it from a few rows gives exactly the cycles, timeline, statistics and directory of a
    run on the full-size directory from the start."""
    cfg = Machine("amd-2x2").cfg
    monkeypatch_dir(start)
    small = _program_run(cfg, lines, stride, seed)
    monkeypatch_dir(1 << 30)
    full = _program_run(cfg, lines, stride, seed)
    assert full.state.dirt.shape[0] == full.state.params[state_mod.P_DIRFULL]
    live = int(small.state.d_count[0])
    assert small.state.dirt.shape[0] == full.state.dirt.shape[0] or \
        2 * live <= small.state.dirt.shape[0]
    assert np.array_equal(small.timeline(), full.timeline())
    assert small.stats() == full.stats()
    assert small.directory() == full.directory()
    assert np.array_equal(small.state.clock, full.state.clock)
    assert np.array_equal(small.cpu.pst, full.cpu.pst)
