"""Differential tests: cores running generated programs in the compiled engine and in the reference."""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from tests.harness import cpu_machines, workloads

MAX_OPS = 400
# MKSIM_HEAVY=1 runs ten times as many generated programs
SCALE = 10 if os.environ.get("MKSIM_HEAVY") else 1


def engine_memory(m: Machine) -> dict[int, bytes]:
    """Every page of the engine's functional store (each page any load or program ever wrote)."""
    c = m.cpu
    return {int(k) - 1: c.pool[int(s)].tobytes() for k, s in zip(c.pkeys, c.pslot) if k}


def reference_memory(r: ReferenceCpu) -> dict[int, bytes]:
    """Every page of the reference's functional store, as ``engine_memory``."""
    pages: dict[int, bytearray] = {}
    for a, b in r.store.items():
        pages.setdefault(a >> 12, bytearray(4096))[a & 4095] = b
    return {p: bytes(v) for p, v in pages.items()}


def assert_same_memory(em: dict[int, bytes], rm: dict[int, bytes]):
    assert sorted(em) == sorted(rm), f"written pages differ: engine {sorted(em)} reference {sorted(rm)}"
    for p in sorted(em):
        if em[p] != rm[p]:
            diff = np.nonzero(np.frombuffer(em[p], np.uint8) != np.frombuffer(rm[p], np.uint8))[0]
            a = (p << 12) + int(diff[0])
            raise AssertionError(f"{len(diff)} bytes of page {p << 12:#x} differ, first at {a:#x}: "
                                 f"engine {em[p][diff[0]]:#x} reference {rm[p][diff[0]]:#x}")


def snapshot_engine(m: Machine, words):
    c = m.cpu
    return {
        "regs": c.regs.tolist(), "pc": c.pc.tolist(), "state": c.state.tolist(), "if": c.iflag.tolist(),
        "mode": c.mode.tolist(), "cr3": c.cr3.tolist(), "clock": m.state.clock.tolist(),
        "ipis": [tuple(int(x) for x in r) for r in m.ipis()],
        "faults": [tuple(int(x) for x in r) for r in m.faults()],
        "timeline": [tuple(int(x) for x in r) for r in m.timeline()],
        "mem": [m.read(a, 8) for a in words], "pstats": c.pst.tolist(),
        "stats": m.stats(), "caches": m.cache_contents(), "dir": m.directory(), "waits": m.waits(),
        "partitions": m.partitions(), "kernels": m.kernels(),
    }


def snapshot_reference(r: ReferenceCpu, words):
    return {
        "regs": [list(x) for x in r.regs], "pc": list(r.pc), "state": list(r.state), "if": list(r.iflag),
        "mode": list(r.mode), "cr3": list(r.cr3), "clock": list(r.clock),
        "ipis": [tuple(x) for x in r.ipis()], "faults": [tuple(x) for x in r.faults()],
        "timeline": [tuple(x) for x in r.timeline()], "mem": [r.read(a, 8) for a in words],
        "pstats": [list(x) for x in r.prog_stats],
        "stats": r.mem.stats(), "caches": r.mem.cache_contents(), "dir": r.mem.directory(), "waits": r.waits(),
        "partitions": r.partitions(), "kernels": r.kernels(),
    }


def assert_same(a: dict, b: dict):
    for k in a:
        assert a[k] == b[k], f"{k} differs:\nengine    {a[k]}\nreference {b[k]}"


def run_both(cfg, w, words, chunks=None):
    m = Machine(cfg)
    m.load_workload(w)
    if chunks:
        for n in chunks:
            sm = m.execute(n)
            if sm != "limit":
                break
    sm = m.execute(MAX_OPS - int(m.cpu.out[1]))
    r = ReferenceCpu(cfg)
    r.load_workload(w)
    sr = r.execute(MAX_OPS)
    assert sm == sr
    assert_same(snapshot_engine(m, words), snapshot_reference(r, words))
    assert_same_memory(engine_memory(m), reference_memory(r))
    return m


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_engine_matches_reference_on_generated_programs(data):
    cfg = data.draw(cpu_machines())
    w, words = data.draw(workloads(cfg))
    run_both(cfg, w, words)


@settings(max_examples=30 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_stepping_in_chunks_changes_nothing(data):
    """A run stopped every few ops and resumed ends exactly where one run ends."""
    cfg = data.draw(cpu_machines())
    w, words = data.draw(workloads(cfg))
    chunks = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=8))
    run_both(cfg, w, words, chunks)
