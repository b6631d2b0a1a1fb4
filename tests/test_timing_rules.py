"""One timing model: trace replay follows the program engine's rules (cpu_spec.md, 'Trace replay').

* A trace of loads, stores and modifies gives the same cycles and memory-system
  state as the same accesses run as a program (LOAD / STORE / XCHG with
  ``atomic_latency`` 0) with instruction fetch out of the way.
* The one-core replay path (``hwmodel.uniprocessor``) gives the same numbers as
  the general engine on one-core machines.
* Locked read-modify-writes hold their line from read to write (issue 8, item 5).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.config import load_machine
from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.trace import KIND_L, KIND_M, KIND_S
from tests.harness import LINE, machines

CODE = 0x7000000        # every program's code: one line, fetched before the run (see pin_fetch)


def data_traces(cores: int, max_len: int = 60, max_lines: int = 12):
    """(core, kind, addr, size) of loads, stores and modifies that never cross a 4 KiB page
    (a program op splits there into two accesses; a trace access does not)."""
    @st.composite
    def build(draw):
        n = draw(st.integers(1, max_len))
        nlines = draw(st.integers(1, max_lines))
        spread = draw(st.sampled_from([1, 7, 4096 // LINE, 1 << 20]))
        rows = []
        for _ in range(n):
            size = draw(st.sampled_from([1, 2, 4, 8]))
            a = draw(st.integers(0, nlines - 1)) * spread * LINE + draw(st.integers(0, LINE - 1))
            a = min(a, (a | 4095) - size + 1)             # keep the access inside its page
            rows.append((draw(st.integers(0, cores - 1)), draw(st.sampled_from([KIND_L, KIND_S, KIND_M])),
                         a, size))
        core, kind, addr, size = (np.array(x, np.int64) for x in zip(*rows))
        return core, kind, addr, size
    return build()


def as_program_machine(cfg, core, kind, addr, size) -> Machine:
    """The trace as one program per core: L -> LOAD, S -> STORE, M -> XCHG (atomic_latency 0), then HALT."""
    m = Machine(cfg)
    w = m.workload()
    for c in range(cfg.cores):
        p = isa.Program(f"core{c}")
        for k, a, n in zip(kind[core == c], addr[core == c], size[core == c]):
            if k == KIND_L:
                p.load("r1", int(a), int(n))
            elif k == KIND_S:
                p.store(int(a), 7, int(n))
            else:
                p.xchg("r1", int(a), 7, int(n))
        p.halt()
        w.start(c, w.place(p, CODE + 0x100000 * c).pc())
    m.load_workload(w)
    pin_fetch(m)
    assert m.execute() == "done"
    return m


def pin_fetch(m: Machine) -> None:
    """Take instruction fetch out of the way: every op sits at one address whose line each core has
    'just fetched', so no op fetches (cpu_spec.md step 5) and only the ops' own accesses remain."""
    m.cpu.opaddr[:] = CODE
    m.cpu.lastf[:] = CODE // m.cfg.line


def no_atomic_cost(cfg):
    return dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, atomic_latency=0))


def assert_same_machine(a: Machine, b: Machine) -> None:
    assert a.stats() == b.stats()
    assert a.cache_contents() == b.cache_contents()
    assert a.directory() == b.directory()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_trace_runs_like_the_same_accesses_in_a_program(data):
    """Same cycles per core, stats, caches and directory: two-phase misses, store hits at alu cost."""
    cfg = no_atomic_cost(data.draw(machines(max_cores=8)))
    tr = data.draw(data_traces(cfg.cores))
    replay = Machine(cfg, one_core_path=False)
    replay.run(*tr)
    prog = as_program_machine(cfg, *tr)
    assert_same_machine(replay, prog)


def test_a_trace_runs_like_a_program_on_a_preset():
    cfg = no_atomic_cost(load_machine("amd-2x2"))
    rng = np.random.default_rng(11)
    n = 600
    core = rng.integers(0, cfg.cores, n)
    kind = rng.choice([KIND_L, KIND_S, KIND_M], n)
    addr = rng.integers(0, 48, n) * 64 + rng.integers(0, 8, n) * 8
    tr = (core, kind, addr, np.full(n, 8))
    replay = Machine(cfg)
    replay.run(*tr)
    assert_same_machine(replay, as_program_machine(cfg, *tr))


def test_store_hits_cost_alu_latency_in_replay_as_in_a_program():
    """The issue's example: 300 stores to one line, 299 of them hits, cost what a program pays."""
    cfg = load_machine("amd-2x2")
    n = 300
    tr = (np.zeros(n, np.int64), np.full(n, KIND_S), np.full(n, 0x1000), np.full(n, 8))
    replay = Machine(cfg)
    lat = replay.run(*tr)
    first = int(lat[0])
    assert first > 100                                    # the miss: a memory read
    w = cfg.core.issue_width
    hits = sum(cfg.core.alu_latency if i % w == 0 else 0 for i in range(n - 1))
    assert int(replay.stats()["cores"][0]["cycles"]) == first + hits
    assert_same_machine(replay, as_program_machine(cfg, *tr))


def test_a_miss_takes_effect_at_the_home():
    """Core 1's miss is issued before core 0's store but reaches the home later: it sees the store."""
    cfg = load_machine("amd-2x2")       # cores 0, 1 on package 0; the line's home is package 0
    # core 0: a load brings the line into its cache in E, then a store hit at t = load's end;
    # core 1: issues its load at 0, a miss: it takes effect only at request_delay.
    core = np.array([0, 0, 1])
    kind = np.array([KIND_L, KIND_S, KIND_L])
    addr = np.array([0x1000, 0x1000, 0x1000])
    m = Machine(cfg)
    m.run(core, kind, addr, np.full(3, 8))
    order = list(m.performed)
    assert order.index(2) > order.index(0)              # core 1's miss went behind core 0's first access
    assert m.effect_times[order.index(2)] > m.issue_times[2] == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_core_path_gives_the_general_engines_numbers(data):
    """hwmodel.uniprocessor against engine.run_trace on one-core machines: every output the same."""
    from tests.harness import traces
    cfg = data.draw(machines(max_cores=1))
    tr = data.draw(traces(1, max_len=300, max_lines=60))
    seed = data.draw(st.integers(0, 2**32))
    a, b = Machine(cfg, seed=seed), Machine(cfg, seed=seed, one_core_path=False)
    la, lb = a.run(*tr), b.run(*tr)
    assert list(la) == list(lb)
    assert list(a.issue_times) == list(b.issue_times)
    assert list(a.effect_times) == list(b.effect_times)
    assert list(a.performed) == list(b.performed)
    assert a.stats() == b.stats()
    assert a.cache_contents() == b.cache_contents()


# ---------------------------------------------------------------- item 5: atomics hold the line

def fadd_hammer(cfg, per_core: int, cores: list[int]):
    """Every core in ``cores`` fetch-adds 1 to one shared counter ``per_core`` times."""
    counter = 0x200000
    m = Machine(cfg)
    w = m.workload()
    for c in cores:
        p = isa.Program(f"fadd{c}")
        p.movi("r2", per_core)
        p.label("loop")
        p.fadd("r1", counter, 1)
        p.mark(1, "r1")
        p.sub("r2", "r2", 1)
        p.br("ne", "r2", 0, "loop")
        p.halt()
        w.start(c, w.place(p, 0x100000 + 0x10000 * c).pc())
    return m, w, counter


def test_fetch_add_from_many_cores_loses_no_update():
    cfg = load_machine("amd-4x4")
    cores = [0, 1, 4, 9, 15]            # same package and remote packages
    m, w, counter = fadd_hammer(cfg, 40, cores)
    m.load_workload(w)
    assert m.execute() == "done"
    assert int.from_bytes(m.read(counter, 8), "little") == 40 * len(cores)
    # every old value 0..N-1 was returned exactly once: each FADD read the line the previous one wrote
    olds = sorted(int(v) for _, _, ev, v in m.timeline() if ev == 1)
    assert olds == list(range(40 * len(cores)))


def test_a_competing_request_waits_for_the_locked_line():
    """Two cores on two packages fetch-add one line.  A FADD holds the line in M until it ends
    (atomic_latency included), so the other core's FADD, whose request waits at the home for the
    line, ends at least a transfer plus atomic_latency after it.  The reference model agrees."""
    cfg = load_machine("amd-4x4")
    m, w, counter = fadd_hammer(cfg, 20, [0, 4])      # two packages: every hand-over is a remote transaction
    m.load_workload(w)
    assert m.execute() == "done"
    ref = ReferenceCpu(cfg)
    ref.load_workload(w)
    assert ref.execute(-1) == "done"
    assert m.timeline().tolist() == [list(r) for r in ref.timeline()]
    marks = sorted((int(v), int(c), int(t)) for c, t, ev, v in m.timeline() if ev == 1)
    times = [t for _, _, t in marks]               # old value k went to the k-th FADD performed
    assert times == sorted(times)
    transfer = int(m.state.msglat[0, 1])           # the line's home is package 0 (node 0)
    handovers = [(t0, t1) for (_, c0, t0), (_, c1, t1) in zip(marks, marks[1:]) if c0 != c1]
    assert len(handovers) >= 10
    for t0, t1 in handovers:
        assert t1 - t0 >= transfer + cfg.core.atomic_latency


def test_a_load_waits_until_the_locked_operation_ends():
    """A plain load that reaches the home while another core's FADD holds the line completes only
    after the FADD has ended (its mark), not when the FADD's write access completed."""
    cfg = load_machine("amd-4x4")
    line = 0x200000
    m = Machine(cfg)
    w = m.workload()
    a = isa.Program("locker").fadd("r1", line, 1).mark(1, 0).halt()
    b = isa.Program("reader").compute(300).load("r2", line).mark(2, "r2").halt()
    w.start(0, w.place(a, 0x100000).pc())
    w.start(4, w.place(b, 0x140000).pc())
    m.load_workload(w)
    assert m.execute() == "done"
    tl = {int(ev): (int(t), int(v)) for _, t, ev, v in m.timeline()}
    fadd_end = tl[1][0]
    assert tl[2][1] == 1                            # the load sees the add
    assert tl[2][0] >= fadd_end + int(m.state.msglat[0, 1])
