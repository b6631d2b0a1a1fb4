"""mksim calibrate on multi-package hosts: NUMA nodes from sysfs node fixtures
(tests/data/sysfs/node-*: one node, two nodes plus a memory-only node, four nodes in two
packages) and the interconnect fitted to a made-up two-socket core-to-core matrix."""
from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from mksim import host
from tests.test_calibrate import _report
from tests.test_host import FIXTURE, FIXTURE_2S, FIXTURES


def _with_matrix(same: float, cross: float, smt: float = 40.0, numa=None) -> dict:
    """The two-socket SMT fixture's report with a made-up core-to-core matrix (TSC cycles)."""
    rep = _report(FIXTURE_2S)
    topo = rep["host"]["topology"]
    pkg = topo["package_of_cpu"]
    core = {c: i for i, sib in enumerate(topo["smt_siblings"]) for c in sib}
    for r in rep["core_to_core"]["rows"]:
        a, b = r["cpus"]
        r["tsc_cycles"] = smt if core[a] == core[b] else same if pkg[str(a)] == pkg[str(b)] else cross
    if numa is not None:
        rep["host"]["numa_nodes"] = numa
    return rep


def _toml(tmp_path, rep) -> dict:
    p = tmp_path / "host.toml"
    p.write_text(host.calibrate(rep))
    load_machine(str(p))          # the preset loads
    return tomllib.loads(p.read_text())


def test_read_numa_fixtures():
    assert host.read_numa(FIXTURES / "node-one") == [{"node": 0, "cpus": [0, 1, 2, 3]}]
    two = host.read_numa(FIXTURES / "node-two")
    assert two == [{"node": 0, "cpus": [0, 1, 4, 5]}, {"node": 1, "cpus": [2, 3, 6, 7]},
                   {"node": 2, "cpus": []}]
    assert len(host.read_numa(FIXTURES / "node-four-snc")) == 4
    assert host.read_numa(FIXTURES / "absent") is None


def test_interconnect_fitted_to_a_two_socket_matrix(tmp_path):
    d = _toml(tmp_path, _with_matrix(same=300.0, cross=500.0))
    ic = d["interconnect"]
    assert ic["link_latency"] == 100 and ic["hop_latency"] == 0
    assert "fitted to core-to-core matrix" in ic["source"]
    # SMT pairs are not same-package pairs of distinct cores: they change nothing
    assert _toml(tmp_path, _with_matrix(same=300.0, cross=500.0, smt=5.0))["interconnect"] == ic


@settings(max_examples=25, deadline=None)
@given(st.floats(100, 2000), st.floats(0, 3000))
def test_link_grows_with_the_cross_package_gap_and_is_never_negative(same, extra):
    link_a, _ = host._interconnect(2, [same], [same + extra], "d")
    link_b, _ = host._interconnect(2, [same], [same + extra + 100], "d")
    assert 0 <= link_a <= link_b
    link_c, src = host._interconnect(2, [same], [same / 2], "d")
    assert link_c == 0 and "CLAMPED" in src


def test_interconnect_without_cross_pairs_is_an_assumption_said_so():
    link, src = host._interconnect(2, [300.0], [], "d")
    assert link == 20 and "assumption" in src and "cross-package" in src
    assert host._interconnect(1, [300.0], [], "d")[0] == 0


@pytest.mark.parametrize("fixture,interleave,words", [
    ("node-two", "node", "one per package"),
    ("node-four-snc", "node", "sub-NUMA"),
    ("node-one-spanning", "page", "spans 2 packages"),
])
def test_numa_nodes_set_the_memory_interleave(tmp_path, fixture, interleave, words):
    numa = ([{"node": 0, "cpus": list(range(8))}] if fixture == "node-one-spanning"
            else host.read_numa(FIXTURES / fixture))
    mem = _toml(tmp_path, _with_matrix(300.0, 500.0, numa=numa))["memory"]
    assert mem["interleave"] == interleave and words in mem["source"]
    assert "/sys/devices/system/node" in mem["source"]


def test_one_package_one_node(tmp_path):
    rep = _report(FIXTURE)
    rep["host"]["numa_nodes"] = host.read_numa(FIXTURES / "node-one")
    mem = _toml(tmp_path, rep)["memory"]
    assert mem["interleave"] == "node" and "one package" in mem["source"]


def test_nodes_that_do_not_map_onto_packages_are_an_error():
    numa = [{"node": 0, "cpus": [0, 1, 2, 4, 5, 6]}, {"node": 1, "cpus": [3, 7]}]
    with pytest.raises(MksimError, match="numa_nodes.*do not map onto the 2 packages"):
        host.calibrate(_with_matrix(300.0, 500.0, numa=numa))


def test_report_without_numa_says_assumption(tmp_path):
    mem = _toml(tmp_path, _with_matrix(300.0, 500.0))["memory"]
    assert mem["interleave"] == "node" and "assumption" in mem["source"]
