"""The fos, K2 and RainForest personalities: their benches' shapes and invariants on small machines.

fos: the allocator fleet scales where the zone lock saturates; every frame handed out is handed out
once, also when the servers must rebalance their free lists by messages.  K2: the software coherence
protocol loses no update (and dropping its flushes does), each transfer is counted and costed, offload
lowers energy.  RainForest: isolation lowers the service's tail at high load; its plan boots with its
init steps.  Bad input is refused everywhere."""
from __future__ import annotations

import json

import numpy as np
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hwmodel.config import load_machine  # noqa: E402
from hwmodel.errors import MksimError  # noqa: E402
from hwmodel.interconnect import hop_matrix  # noqa: E402
from kernels import fos, k2, rainforest, registry  # noqa: E402
from mksim.cli import main  # noqa: E402

SMALL = load_machine("amd-2x2")
MID = load_machine("amd-4x4")


@pytest.fixture
def plt():
    """matplotlib.pyplot on a file backend (the plot extra is optional: skip without it)."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


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


def test_alloc_rows_table_and_plot(plt):
    rows = fos.alloc_rows(SMALL, 4, n=10)
    assert {r["system"] for r in rows} == {"fos", "linux", "linux-percpu"}
    assert all(set(r) == {"system", "cores", "servers", "allocs_per_kcycle"} for r in rows)
    assert all(r["servers"] < r["cores"] for r in rows if r["system"] == "fos")
    assert "published" in fos.ALLOC.table(rows, SMALL)
    fig = fos.ALLOC.plot(rows, SMALL, plt)
    assert fig.axes[0].get_legend() is not None and fig.axes[0].get_ylabel()
    plt.close(fig)


# ---------------------------------------------------------------------- K2
OMAP = load_machine("omap4")


def test_k2_is_registered_with_the_omap4_preset():
    pers, ex = registry.experiments()["k2"]
    assert pers.name == "k2" and ex.default_machine == "omap4"
    assert ex.keys[:5] == ("config", "ops", "cycles", "energy_nj", "coherence_transfers")


@pytest.mark.parametrize("config,every", [("strong", 4), ("k2", 4), ("k2", 3), ("k2", 24)])
def test_software_coherence_loses_no_driver_update(config, every):
    """Every wake-up increments each word of the shared driver state once: whichever domain ends
    owning it sees all ``ops`` increments, although the domains share no coherence."""
    out = []
    r = k2.run(OMAP, config, ops=12, strong_every=every, period_us=50, machine_out=out)
    last = k2.domain_of(OMAP, k2.schedule(config, 12, every)[-1])
    assert k2.driver_words(OMAP, out[0], last) == [12] * 4
    assert r["ops"] == 12


def test_without_the_protocol_updates_are_lost():
    """The same run with the release's flushes removed loses updates: the protocol is what keeps it right."""
    out = []
    orig = k2._release

    def no_flush(p, cfg, to_dom, handover):
        box = k2.MAILBOX + 0x100 * to_dom
        p.mark(k2.EV_REL, handover)
        p.store(box, handover)
        p.clflush(box)
        p.mark(k2.EV_REL_END, handover)
    k2._release = no_flush
    try:
        k2.run(OMAP, "k2", ops=12, strong_every=3, period_us=50, machine_out=out)
    finally:
        k2._release = orig
    last = k2.domain_of(OMAP, k2.schedule("k2", 12, 3)[-1])
    assert k2.driver_words(OMAP, out[0], last) != [12] * 4


def test_each_ownership_move_is_counted_and_costed():
    """Transfers: one per change of the running domain (plus the boot handover); each costs at least
    the CLFLUSHes of the state's two 32-byte lines and the mailbox line."""
    ops, every = 16, 4
    sched = k2.schedule("k2", ops, every)
    doms = [k2.domain_of(OMAP, c) for c in sched]
    expect = sum(1 for a, b in zip([0] + doms, doms) if a != b)
    r = k2.run(OMAP, "k2", ops, every, 50)
    assert r["coherence_transfers"] == expect
    assert r["transfer_cycles"] >= 3 * OMAP.core.clflush_latency
    assert k2.run(OMAP, "strong", ops, every, 50)["coherence_transfers"] == 0


def test_offload_lowers_energy_and_fewer_transfers_lower_it_more():
    """Offloaded wake-ups let the A9 sleep in its deep state: less energy than the strong domain alone;
    a foreground touch every 16 periods costs less energy than every 2 (each move is paid)."""
    strong = k2.run(OMAP, "strong", 32, 16, 100)
    rare = k2.run(OMAP, "k2", 32, 16, 100)
    often = k2.run(OMAP, "k2", 32, 2, 100)
    assert rare["energy_nj"] < strong["energy_nj"]
    assert rare["energy_nj"] < often["energy_nj"]
    assert often["coherence_transfers"] > rare["coherence_transfers"]


def test_idle_energy_picks_the_state_by_residency():
    """A gap shorter than C2's residency is spent in WFI; at the residency both states cost the same
    (its definition); a longer gap is cheaper in C2 than it would be in WFI."""
    pw = k2.POWER["cortex-a9"]
    wfi = pw.idle[0].power_mw
    assert k2.idle_energy_pj(pw, 500_000) == pytest.approx(wfi * 500_000)
    assert k2.idle_energy_pj(pw, 960_000) == pytest.approx(wfi * 960_000)
    assert k2.idle_energy_pj(pw, 5_000_000) < wfi * 5_000_000


def test_k2_bad_input_is_refused():
    with pytest.raises(MksimError):
        k2.run(SMALL, "k2")                       # one coherence domain
    with pytest.raises(MksimError):
        k2.run(OMAP, "weak")
    with pytest.raises(MksimError):
        k2.run(OMAP, "k2", ops=0)


def test_k2_table_and_plot(plt):
    rows = k2.k2_rows(OMAP, ops=8, strong_every=4, period_us=50)
    assert [r["config"] for r in rows] == ["strong", "k2"]
    assert "published" in k2.K2_BENCH.table(rows, OMAP)
    fig = k2.K2_BENCH.plot(rows, OMAP, plt)
    assert all(ax.get_ylabel() for ax in fig.axes)
    plt.close(fig)


# ---------------------------------------------------------------------- RainForest
def test_rainforest_is_registered_and_its_plan_boots_with_its_init_steps(capsys):
    pers, ex = registry.experiments()["tail"]
    assert pers.name == "rainforest" and ex.keys == ("system", "load", "p50", "p99", "throughput")
    assert main(["boot", "examples/rainforest.cfg", "--machine", "amd-4x4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert all(k["up"] for k in res["kernels"])
    steps = {s["step"] for s in res["steps"]}
    assert {"supervisor resource table", "supervisor FICM rings"} <= steps
    assert {f"subos{i} FICM attach" for i in (1, 2, 3)} <= steps
    assert "supervisor FICM attach" not in steps


def test_isolation_lowers_the_tail_at_high_load():
    """At 80 % of the unloaded capacity the service's p99 in its own sub-OS is below its p99 in the
    kernel it shares with the batch tenant."""
    s0 = rainforest.service_time(SMALL, 1000)
    lin = rainforest.run_tail(SMALL, "linux", 3, 60, s0 / 0.8, 1000)
    rf = rainforest.run_tail(SMALL, "rainforest", 3, 60, s0 / 0.8, 1000)
    assert np.percentile(rf, 99) < np.percentile(lin, 99)


@pytest.mark.parametrize("system", ["linux", "rainforest"])
def test_no_request_finishes_faster_than_its_own_work(system):
    lat = rainforest.run_tail(SMALL, system, 2, 30, 5000, 800)
    assert len(lat) == 30 and lat.min() >= 800


def test_an_isolated_service_keeps_its_unloaded_latency_at_low_load():
    """At 20 % load the sub-OS service's median stays within 1.5x of its unloaded service time."""
    s0 = rainforest.service_time(SMALL, 1000)
    rf = rainforest.run_tail(SMALL, "rainforest", 3, 40, s0 / 0.2, 1000)
    assert np.median(rf) < 1.5 * s0


def test_ficm_is_a_ring_and_an_ipi():
    """FICM costs at least the IPI's delivery (the receiver sleeps until it arrives)."""
    assert rainforest.ficm_latency(SMALL, 0, 1) >= SMALL.apic.ipi_latency


def test_tail_bad_input_and_table(plt):
    with pytest.raises(MksimError):
        rainforest.run_tail(SMALL, "xen", 1, 10, 1000)
    with pytest.raises(MksimError):
        rainforest.run_tail(SMALL, "linux", 4, 10, 1000)
    rows = rainforest.tail_rows(SMALL, 1, requests=20, loads=(0.5,), work=500)
    assert {r["system"] for r in rows} == {"linux", "rainforest"}
    assert "published" in rainforest.TAIL.table(rows, SMALL)
    fig = rainforest.TAIL.plot(rows, SMALL, plt)
    assert fig.axes[0].get_legend() is not None
    plt.close(fig)


@pytest.mark.parametrize("argv", [["alloc", "--machine", "amd-2x2", "--allocs", "0"],
                                  ["alloc", "--machine", "amd-2x2", "--max-cores", "1"],
                                  ["k2", "--ops", "0"], ["k2", "--machine", "amd-2x2"],
                                  ["tail", "--machine", "amd-2x2", "--requests", "0"]])
def test_bench_options_out_of_range_are_refused(argv, capsys):
    """A zero count is refused with a message, never replaced by the default."""
    assert main(["bench", *argv]) != 0
    assert "error" in capsys.readouterr().err.lower()


def test_resize_steps_are_timed_and_scale_with_their_work():
    """Every step takes time; scrubbing twice the memory makes destroy and shrink dearer and leaves grow
    (FICM offline + INIT-SIPI + online) unchanged; a bigger image makes create dearer."""
    base = {r["step"]: r["cycles"] for r in rainforest.resize_rows(SMALL, 64, 64)}
    more = {r["step"]: r["cycles"] for r in rainforest.resize_rows(SMALL, 128, 128)}
    assert set(base) == {"create", "destroy", "grow", "shrink"} and min(base.values()) > 0
    assert more["destroy"] > base["destroy"] and more["shrink"] > base["shrink"]
    assert more["create"] > base["create"]
    assert more["grow"] == base["grow"]
    assert base["grow"] >= 2 * SMALL.apic.ipi_latency          # at least the FICM IPIs and the SIPIs
    with pytest.raises(MksimError):
        rainforest.resize_rows(SMALL, 0, 64)


def test_resize_moves_cores_and_memory_through_the_checked_table():
    """After the run: the moved core is B's, the re-created core the new sub-OS's, the destroyed
    sub-OS's other cores the supervisor's; B's partition lost the scrubbed range to the supervisor;
    no slot overlaps another; the only faults are the supervisor's retried ASSIGNs (each at a core
    that was not stopped yet), and no sub-OS core ever faulted on a partition."""
    m, rows = rainforest.run_resize(SMALL, 64, 64)
    half = SMALL.cores // 2
    a, b = list(range(1, 1 + half)), list(range(1 + half, SMALL.cores))
    k = m.kernels()
    assert k[0] == rainforest.SUP and k[a[-1]] == rainforest.SUB_B and k[a[0]] == rainforest.SUB_C
    assert all(k[c] == rainforest.SUP for c in a[1:-1]) and all(k[c] == rainforest.SUB_B for c in b)
    parts = m.partitions()
    b_lo = rainforest.SUBOS_MEM + rainforest.SUBOS_SPAN
    assert (b_lo + 64 * 1024, b_lo + rainforest.SUBOS_SPAN, rainforest.SUB_B) in parts
    assert (b_lo, b_lo + 64 * 1024, rainforest.SUP) in parts
    live = sorted((lo, hi) for lo, hi, _ in parts if lo < hi)
    assert all(h1 <= l2 for (_, h1), (l2, _) in zip(live, live[1:]))
    for f in m.fault_report():
        assert f["core"] == 0 and f["kind"] == "repartition"


def test_resize_bad_sizes_are_refused():
    with pytest.raises(MksimError, match="whole pages"):
        rainforest.resize_rows(SMALL, 64, 6)
