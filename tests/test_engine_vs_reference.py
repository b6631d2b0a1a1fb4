"""Differential tests: the compiled engine and the plain-Python reference agree exactly."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.machine import Machine
from hwmodel.reference import ReferenceMachine
from tests.harness import machines, traces


def run_both(cfg, trace, seed=0):
    m = Machine(cfg, seed=seed)
    la = m.run(*trace)
    r = ReferenceMachine(cfg, seed=seed)
    lb = r.run(*trace)
    return m, la, r, lb


def assert_same(m, la, r, lb):
    assert list(la) == list(lb), "per-access latencies differ"
    assert m.stats() == r.stats()
    assert m.cache_contents() == r.cache_contents()
    if m.cfg.cores > 1:        # a one-core machine keeps no directory (hwmodel/uniprocessor.py)
        assert m.directory() == r.directory()
    else:
        assert m.directory() == {}
        assert {ln for ln, v in r.directory().items()} == set(m.holders_by_cache())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_matches_reference(data):
    cfg = data.draw(machines())
    trace = data.draw(traces(cfg.cores))
    seed = data.draw(st.integers(0, 2**32))
    assert_same(*run_both(cfg, trace, seed))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_matches_reference_long_traces(data):
    """Longer traces over more lines: capacity evictions, back-invalidations, writebacks."""
    cfg = data.draw(machines(max_cores=16))
    trace = data.draw(traces(cfg.cores, max_len=600, max_lines=80))
    assert_same(*run_both(cfg, trace))


def test_engine_matches_reference_on_a_preset_with_random_traffic():
    from hwmodel.config import load_machine
    cfg = load_machine("amd-4x4")
    rng = np.random.default_rng(7)
    n = 4000
    core = rng.integers(0, cfg.cores, n)
    kind = rng.integers(0, 4, n)
    addr = np.where(rng.random(n) < 0.3, rng.integers(0, 64, n) * 64, rng.integers(0, 1 << 26, n))
    size = rng.integers(1, 17, n)
    assert_same(*run_both(cfg, (core, kind, addr, size)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_core_path_matches_reference(data):
    """The uniprocessor path (no directory) against the reference on one-core machines."""
    cfg = data.draw(machines(max_cores=1))
    assert cfg.cores == 1
    trace = data.draw(traces(1, max_len=300, max_lines=60))
    assert_same(*run_both(cfg, trace, data.draw(st.integers(0, 2**32))))


def test_same_inputs_same_cycles():
    from hwmodel.config import load_machine
    cfg = load_machine("amd-8x4")
    rng = np.random.default_rng(3)
    n = 20000
    tr = (rng.integers(0, 32, n), rng.integers(0, 4, n), rng.integers(0, 1 << 20, n), np.full(n, 8))
    a, b = Machine(cfg, seed=5), Machine(cfg, seed=5)
    assert list(a.run(*tr)) == list(b.run(*tr))
    assert a.stats() == b.stats()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_matches_reference_at_the_top_of_the_address_space(data):
    """Addresses at and above 2**63 (negative as int64), accesses straddling 2**63."""
    cfg = data.draw(machines(max_cores=4))
    core, kind, addr, size = data.draw(traces(cfg.cores, max_len=80))
    base = data.draw(st.sampled_from([2**63 - 128, 2**64 - 4096, 2**62]))
    ua = [min((int(a) + base) % 2**64, 2**64 - 64) for a in addr]   # never past the top
    addr = np.array(ua, dtype=np.uint64).view(np.int64)
    assert_same(*run_both(cfg, (core, kind, addr, size)))


def test_an_access_past_the_top_of_the_address_space_is_an_error():
    import pytest
    from hwmodel.errors import MksimError
    m = Machine("amd-2x2")
    addr = np.array([2**64 - 4], np.uint64).view(np.int64)
    with pytest.raises(MksimError, match="past the top"):
        m.run(np.zeros(1, np.int64), np.ones(1, np.int64), addr, np.full(1, 8))
