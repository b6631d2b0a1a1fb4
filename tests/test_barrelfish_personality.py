"""The Barrelfish personality: monitor send-to-all protocols, TLB shootdown, unmap, notifications.

Small machines only (amd-2x2, amd-4x4); the amd-8x4 sweeps are for the bench."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from hwmodel.interconnect import hop_matrix
from kernels import barrelfish as bf
from kernels import multicast as mc
from kernels import registry
from kernels.personality import BenchOptions

A44 = load_machine("amd-4x4")
A22 = load_machine("amd-2x2")


def _word(m, addr: int) -> int:
    return int.from_bytes(m.read(addr, 8), "little")


def _delivered(m, cfg, initiator: int, targets, rounds: int, local_work: bool = False) -> None:
    """Every target got each round's request exactly once, counted it, cleared its replica's PTEs;
    no other core got anything; the initiator's replies covered every target every round."""
    t = m.timeline()
    req = t[t[:, 2] == mc.EV_REQ]
    got = sorted((int(r[0]), int(r[3])) for r in req)
    assert got == sorted((c, k) for c in targets for k in range(rounds))
    for c in targets:
        assert _word(m, mc.priv(cfg, c) + mc.COUNTS) == rounds
        assert all(_word(m, mc.replica_pte(cfg, c, k)) == 0 for k in range(rounds))
    assert _word(m, mc.priv(cfg, initiator) + mc.COUNTS + 8) == rounds * len(set(targets))
    init_pte = _word(m, mc.replica_pte(cfg, initiator, 0))
    assert init_pte == (0 if local_work else mc.PTE_PRESENT)
    assert len(t[(t[:, 0] == initiator) & (t[:, 2] == mc.EV_ROUND)]) == rounds


@pytest.mark.parametrize("protocol", mc.PROTOCOLS)
def test_every_receiver_gets_the_request_once_and_clears_its_replica(protocol):
    m, _ = bf.run_protocol(A44, protocol, 0, range(1, 16), rounds=2)
    _delivered(m, A44, 0, range(1, 16), 2)


def test_unmap_also_clears_the_initiators_replica():
    m, _ = bf.run_protocol(A44, "numa-multicast", 0, range(1, 6), rounds=2, local_work=True, lrpc_cycles=100)
    _delivered(m, A44, 0, range(1, 6), 2, local_work=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_each_protocol_delivers_to_exactly_the_target_set(data):
    initiator = data.draw(st.integers(0, 15), label="initiator")
    others = [c for c in range(16) if c != initiator]
    targets = data.draw(st.lists(st.sampled_from(others), min_size=1, max_size=8, unique=True), label="targets")
    protocol = data.draw(st.sampled_from(mc.PROTOCOLS), label="protocol")
    m, _ = bf.run_protocol(A44, protocol, initiator, targets, rounds=1)
    _delivered(m, A44, initiator, targets, 1)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_tree_reaches_each_target_once_and_stays_in_its_package(data):
    cfg = data.draw(st.sampled_from([A44, load_machine("amd-8x4"), load_machine("intel-2x4")]))
    initiator = data.draw(st.integers(0, cfg.cores - 1))
    others = [c for c in range(cfg.cores) if c != initiator]
    targets = data.draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
    protocol = data.draw(st.sampled_from(mc.PROTOCOLS))
    order = data.draw(st.permutations(list(range(cfg.packages))))
    tree = mc.plan(cfg, protocol, initiator, targets, order)
    kids = [k for ks in tree.children.values() for k in ks]
    assert sorted(kids) == sorted(targets)
    for parent, ks in tree.children.items():
        if parent != initiator:       # a forwarder serves only its own package
            assert all(mc.package_of(cfg, k) == mc.package_of(cfg, parent) for k in ks)
    if protocol in ("multicast", "numa-multicast"):
        remote = [k for k in tree.children[initiator]
                  if mc.package_of(cfg, k) != mc.package_of(cfg, initiator)]
        pkgs = [mc.package_of(cfg, k) for k in remote]
        assert len(pkgs) == len(set(pkgs)), "one message per remote package"
        assert pkgs == [p for p in order if p in pkgs], "packages served in the given order"


def test_multicast_beats_unicast_at_16_cores_on_amd_4x4():
    uni = bf.shootdown_cycles(A44, "unicast", 16, repeat=1)
    assert bf.shootdown_cycles(A44, "multicast", 16, repeat=1) < uni
    assert bf.shootdown_cycles(A44, "numa-multicast", 16, repeat=1) < uni


def test_unicast_latency_grows_with_cores():
    cyc = [bf.shootdown_cycles(A44, "unicast", k, repeat=1) for k in (2, 4, 8, 16)]
    assert cyc == sorted(cyc) and len(set(cyc)) == len(cyc)


def test_same_inputs_give_the_same_cycles():
    assert bf.shootdown_cycles(A44, "numa-multicast", 9, repeat=2) == bf.shootdown_cycles(A44, "numa-multicast", 9, repeat=2)


def test_numa_order_serves_farther_packages_first():
    hops = hop_matrix(A44.interconnect, A44.packages)[0]
    order = bf.numa_order(A44, 0)
    assert sorted(order) == list(range(A44.packages))
    assert [hops[p] for p in order] == sorted((hops[p] for p in order), reverse=True)


def test_unmap_costs_more_than_its_messages_and_needs_a_sourced_lrpc():
    assert bf.unmap_cycles(A44, 4, repeat=1) > bf.shootdown_cycles(A44, "numa-multicast", 4, repeat=1)
    with pytest.raises(MksimError, match="LRPC"):
        bf.unmap_cycles(load_machine("mesh-64"), 2)
    assert bf.unmap_rows(A22, 3, repeat=1)[0].keys() == {"system", "cores", "cycles"}


def test_bad_inputs_are_named():
    with pytest.raises(MksimError, match="protocol"):
        mc.plan(A44, "gossip", 0, [1])
    with pytest.raises(MksimError, match="target core"):
        mc.plan(A44, "unicast", 0, [0, 1])
    with pytest.raises(MksimError, match="package order"):
        mc.plan(A44, "multicast", 0, [1], order=[0, 1])
    with pytest.raises(MksimError, match="cores"):
        bf.shootdown_cycles(A44, "unicast", 17)
    with pytest.raises(MksimError, match="repeat"):
        bf.shootdown_cycles(A44, "unicast", 2, repeat=0)


def test_notify_ipi_costs_more_than_polling_on_every_path():
    rows = bf.notify_rows(A22)
    paths = {r["path"] for r in rows}
    assert len(rows) == 2 * len(paths) and all(r.keys() == {"mode", "path", "cycles"} for r in rows)
    val = {(r["mode"], r["path"]): r["cycles"] for r in rows}
    for pth in paths:
        assert val[("ipi", pth)] > val[("poll", pth)] > 0


class _Ax:
    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        return lambda *a, **k: self.log.append((name, a, k))


class _Plt:
    """Records what a plot function asks of matplotlib.pyplot."""

    def __init__(self):
        self.log = []

    def subplots(self, *a, **k):
        return _Ax(self.log), _Ax(self.log)


def test_registry_finds_the_experiments_and_they_run_and_draw():
    found = registry.experiments()
    assert found["shootdown"][0].name == "barrelfish" and found["notify"][0].name == "barrelfish"
    ex = found["shootdown"][1]
    rows = ex.rows(A22, BenchOptions(max_cores=3, repeat=1))
    assert {(r["protocol"], r["cores"]) for r in rows} == {(p, k) for p in mc.PROTOCOLS for k in (2, 3)}
    assert all(tuple(r) == ex.keys for r in rows)
    assert "amd-2x2" in ex.table(rows, A22)
    plt = _Plt()
    ex.plot(rows, A22, plt)
    calls = {name: (a, k) for name, a, k in plt.log}
    assert "cycles" in calls["set_ylabel"][0][0] and "cores" in calls["set_xlabel"][0][0]
    assert "amd-2x2" in calls["set_title"][0][0]
    assert "bbox_to_anchor" in calls["legend"][1]
    styles = [(k["linestyle"], k["marker"]) for name, _, k in plt.log if name == "plot"]
    assert len(styles) == len(mc.PROTOCOLS) == len(set(styles))
