"""Invariants of the memory system, checked after every access on generated machines and traces."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.coherence import STATE_NAMES
from hwmodel.machine import Machine
from tests.harness import machines, traces

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(m: Machine) -> None:
    check_inclusion(m)
    if m.cfg.cores == 1:
        return                 # no directory on a one-core machine
    d = m.directory()
    held = m.holders_by_cache()
    # the directory's holders are exactly the cores whose private caches hold the line
    assert {ln: set(v[2]) for ln, v in d.items()} == held
    for line, (state, owner, holders, _busy) in d.items():
        assert holders, f"entry without holders for line {line}"
        if state in ("M", "E"):   # one writer ...
            assert holders == (owner,), (line, state, owner, holders)
        elif state == "S":        # ... or many readers
            assert owner == -1
        elif state == "O":
            assert owner in holders
        else:
            raise AssertionError(f"line {line} in state {state} with holders")
    # dirty private copies only at an owner in M or O
    for line, cores in m.holders_by_cache(dirty=True).items():
        state, owner, _h, _b = d[line]
        assert cores == {owner} and state in ("M", "O"), (line, cores, state, owner)


def check_inclusion(m: Machine) -> None:
    """An inclusive cache holds every line held above it, for the cores it covers."""
    s = m.state
    for inst in range(s.geo.shape[0]):
        if not s.geo[inst, 5]:
            continue
        pos, first, size = s.geo[inst, 10], s.geo[inst, 8], s.geo[inst, 9]
        mine = m.lines_in(inst)
        for q in range(first, first + size):
            for k in range(pos):
                for path in (s.dpath, s.ipath):
                    above = m.lines_in(int(path[q, k]))
                    assert above <= mine, f"inclusion broken: {above - mine} above cache {inst}"


@SETTINGS
@given(data=st.data())
def test_invariants_hold_after_every_access(data):
    cfg = data.draw(machines())
    tr = data.draw(traces(cfg.cores))
    m = Machine(cfg)
    m.load(*tr)
    while m.step(1):
        check_invariants(m)


@SETTINGS
@given(data=st.data())
def test_timestamp_order_and_program_order(data):
    """Accesses are performed in non-decreasing time of effect (ties: lower core first), each core in
    program order; an access takes effect at its issue or, a miss, after it (cpu_spec.md, 'Trace replay')."""
    cfg = data.draw(machines())
    core, kind, addr, size = data.draw(traces(cfg.cores))
    m = Machine(cfg)
    m.run(core, kind, addr, size)
    seq = m.performed
    assert sorted(seq.tolist()) == list(range(len(core)))
    eff = m.effect_times
    keys = [(int(eff[k]), int(core[i])) for k, i in enumerate(seq)]
    assert keys == sorted(keys)
    for k, i in enumerate(seq):
        assert m.issue_times[i] <= eff[k] <= m.issue_times[i] + m.latencies[i]
    for c in range(cfg.cores):
        mine = [i for i in seq if core[i] == c]
        assert mine == sorted(mine)
    # each core's clock is the sum of its latencies
    for c in range(cfg.cores):
        assert m.state.clock[c] == int(m.latencies[core == c].sum())


@SETTINGS
@given(data=st.data())
def test_a_load_returns_the_last_value_stored(data):
    cfg = data.draw(machines())
    core, kind, addr, size = data.draw(traces(cfg.cores))
    m = Machine(cfg)
    m.run(core, kind, addr, size)
    got = m.load_values()
    mem: dict[int, int] = {}
    for i in m.performed:
        n = min(int(size[i]), 8)
        if kind[i] in (2, 3):
            for b in range(n):
                mem[int(addr[i]) + b] = ((int(i) + 1) >> (8 * b)) & 0xFF
        elif kind[i] == 1:
            want = sum(mem.get(int(addr[i]) + b, 0) << (8 * b) for b in range(n))
            assert got[i] == want


@SETTINGS
@given(data=st.data())
def test_stats_add_up(data):
    cfg = data.draw(machines())
    core, kind, addr, size = data.draw(traces(cfg.cores))
    m = Machine(cfg)
    m.run(core, kind, addr, size)
    stats = m.stats()
    sent = sum(c["invalidations_sent"] for c in stats["cores"])
    recv = sum(c["invalidations_received"] for c in stats["cores"])
    assert sent == recv
    l1 = [c.name for c in cfg.caches if c.level == 1]
    for c in stats["cores"]:
        n_lines_touched = sum(
            ((int(a) + max(int(s), 1) - 1) >> 6) - (int(a) >> 6) + 1
            for a, s, cc in zip(addr, size, core) if cc == c["core"])
        assert sum(c["caches"][n]["hits"] + c["caches"][n]["misses"] for n in l1) == n_lines_touched
        assert c["accesses"] == int((core == c["core"]).sum())
        assert c["stall_cycles"] >= 0


def test_single_writer_scenario_counts():
    """Two cores store to one line: each change of writer (in the order the stores were performed)
    invalidates the other copy and takes the line from it; store hits between changes cost alu."""
    from hwmodel.config import load_machine
    m = Machine(load_machine("amd-4x4"))
    n = 20
    core = np.array([0, 4] * n)          # different packages
    kind = np.full(2 * n, 2)             # stores
    m.run(core, kind, np.zeros(2 * n, np.int64), np.full(2 * n, 8))
    st = m.stats()
    writers = [int(core[i]) for i in m.performed]
    changes = [(a, b) for a, b in zip(writers, writers[1:]) if a != b]
    assert changes                                  # the line did move between the cores
    assert sum(c["invalidations_sent"] for c in st["cores"]) == len(changes)
    assert st["cores"][4]["cache_to_cache"] == sum(1 for a, b in changes if b == 4)
    assert st["cores"][0]["cache_to_cache"] == sum(1 for a, b in changes if b == 0)
    assert m.directory()[0][:3] == ("M", writers[-1], (writers[-1],))
    hits = [i for i in range(2 * n) if m.latencies[i] <= 1]
    assert len(hits) == 2 * n - 1 - len(changes)    # the first store and each change of writer miss
    assert STATE_NAMES[3] == "M"


def test_protocol_transitions_of_one_line():
    """The MESI and MOESI rows, access by access: the first reader gets E and writes it silently (no
    upgrade); a reader of a dirty line leaves the writer in S (MESI, written back) or O (MOESI);
    a writer ends alone in M.  (The tables are shared by the engine and the reference, so only a
    test like this one sees a wrong row.)"""
    from dataclasses import replace

    from hwmodel.config import load_machine
    from hwmodel.trace import KIND_L, KIND_S
    a, b = 0, 4                                        # two packages
    for proto in ("mesi", "moesi"):
        base = load_machine("amd-4x4")
        m = Machine(replace(base, coherence=replace(base.coherence, protocol=proto)))
        shared_dirty = ("S", -1, (a, b)) if proto == "mesi" else ("O", a, (a, b))
        steps = [(a, KIND_L, ("E", a, (a,))), (a, KIND_S, ("M", a, (a,))), (b, KIND_L, shared_dirty),
                 (b, KIND_S, ("M", b, (b,))), (b, KIND_L, ("M", b, (b,)))]
        for core, kind, want in steps:
            m.run(np.array([core]), np.array([kind]), np.array([0x1000]), np.array([8]))
            assert m.directory()[0x1000 >> 6][:3] == want, (proto, core, kind)
        st = m.stats()["cores"]
        assert st[a]["upgrades"] == 0                  # E -> M needed no transaction
        assert st[a]["caches"]["L2"]["writebacks"] + st[a]["caches"]["L1D"]["writebacks"] == (proto == "mesi")
        m.run(np.array([a, b]), np.array([KIND_L, KIND_L]), np.array([0x2000, 0x2000]), np.array([8, 8]))
        assert m.directory()[0x2000 >> 6][:3] == ("S", -1, (a, b))          # E shared: both S
