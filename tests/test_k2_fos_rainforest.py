"""The fos, K2 and RainForest personalities: their benches' shapes and invariants on small machines.

fos: the allocator fleet scales where the zone lock saturates; every frame handed out is handed out
once, also when the servers must rebalance their free lists by messages; bad input is refused."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hwmodel.config import load_machine  # noqa: E402
from hwmodel.errors import MksimError  # noqa: E402
from hwmodel.interconnect import hop_matrix  # noqa: E402
from kernels import fos, registry  # noqa: E402

SMALL = load_machine("amd-2x2")
MID = load_machine("amd-4x4")


# ---------------------------------------------------------------------- fos
def test_fos_is_registered_with_its_bench():
    assert "fos" in registry.known()
    pers, ex = registry.experiments()["alloc"]
    assert pers.name == "fos" and ex.keys == ("system", "cores", "servers", "allocs_per_kcycle")


def test_fleet_scales_where_the_zone_lock_saturates():
    """Linux's one zone lock: more cores give no more allocations per cycle.  The fos fleet with more
    servers on more cores: more allocations per cycle, and more than the lock at 16 cores."""
    n = 30
    lin4, lin16 = fos.linux_alloc(MID, 4, n), fos.linux_alloc(MID, 16, n)
    fos4 = fos.fos_alloc(MID, 4, 1, n)
    fos16 = fos.fos_alloc(MID, 16, 4, n)
    assert lin16 <= lin4 * 1.05
    assert fos16 > 1.5 * fos4
    assert fos16 > 2 * lin16


def test_percpu_lists_beat_the_zone_lock():
    """Per-CPU lists take the zone lock once per PCP_BATCH frames, so they out-allocate the lock."""
    assert fos.linux_alloc(MID, 8, 40, percpu=True) > fos.linux_alloc(MID, 8, 40)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.integers(0, 50), n=st.integers(3, 12))
def test_every_frame_is_handed_out_once_even_when_servers_rebalance(first, n):
    """Two servers, two clients each side: whatever the split of the free frames between the servers
    (one may start empty and must borrow by messages), every client gets n frames, all distinct and
    all from the initial pool."""
    total = 2 * n + fos.LOW
    shares = [first * total // 50, total - first * total // 50]
    out = []
    fos.fos_alloc(SMALL, 4, 2, n, shares=shares, machine_out=out)
    m, plan = out[0]
    got = fos.client_frames(m, plan, n)
    frames = [f for fr in got.values() for f in fr]
    assert all(len(fr) == n for fr in got.values())
    assert len(set(frames)) == len(frames)
    assert all(0 <= f < sum(shares) for f in frames)


def test_clients_go_to_their_nearest_server():
    hops = hop_matrix(MID.interconnect, MID.packages)
    cpp = MID.cores_per_package
    plan = fos.place_fleet(MID, 16, 4)
    assert len(plan.servers) == 4 and set(plan.clients).isdisjoint(plan.servers)
    for c, s in plan.home.items():
        best = min(int(hops[c // cpp, t // cpp]) for t in plan.servers)
        assert int(hops[c // cpp, s // cpp]) == best


def test_fos_runs_are_deterministic():
    assert fos.fos_alloc(SMALL, 4, 2, 10) == fos.fos_alloc(SMALL, 4, 2, 10)


@pytest.mark.parametrize("cores,servers,shares", [(2, 2, None), (4, 0, None), (64, 2, None), (4, 2, [1, 1])])
def test_fos_bad_input_is_refused(cores, servers, shares):
    with pytest.raises(MksimError):
        fos.fos_alloc(SMALL, cores, servers, 10, shares=shares)


def test_alloc_rows_table_and_plot():
    rows = fos.alloc_rows(SMALL, 4, n=10)
    assert {r["system"] for r in rows} == {"fos", "linux", "linux-percpu"}
    assert all(set(r) == {"system", "cores", "servers", "allocs_per_kcycle"} for r in rows)
    assert all(r["servers"] < r["cores"] for r in rows if r["system"] == "fos")
    assert "published" in fos.ALLOC.table(rows, SMALL)
    fig = fos.ALLOC.plot(rows, SMALL, plt)
    assert fig.axes[0].get_legend() is not None and fig.axes[0].get_ylabel()
    plt.close(fig)
