"""Popcorn Linux, Twin-Linux and the Linux multikernel RFC: their plans boot with their own init steps,
their channels deliver what was sent and order by the work they do, migration grows with the state it
moves, and k instances beat one kernel on a contended line."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from kernels import channels, microbench, multikernel, popcorn, registry
from mksim.cli import main

AMD2 = load_machine("amd-2x2")


def _boot(capsys, plan: str, machine: str) -> tuple[dict, dict]:
    assert main(["boot", plan, "--machine", machine, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert all(k["up"] for k in res["kernels"])
    return {s["step"]: s for s in res["steps"]}, res


def test_the_three_personalities_and_their_benches_are_registered():
    assert {"popcorn", "twin-linux", "multikernel"} <= set(registry.known())
    benches = registry.experiments()
    assert benches["migrate"][0].name == "popcorn"
    assert benches["channels"][0].name == benches["split"][0].name == "multikernel"


def test_each_plan_boots_with_its_own_init_steps(capsys):
    """Every kernel of a plan runs its system's steps, and the three summaries differ where the systems do."""
    pop, _ = _boot(capsys, "examples/popcorn.cfg", "amd-4x4")
    mk, _ = _boot(capsys, "examples/linux-multikernel.cfg", "amd-4x4")
    twin, _ = _boot(capsys, "examples/twin-linux.cfg", "amd-2x2")
    for k in ("primary", "secondary1", "secondary2", "secondary3"):
        assert {f"{k} pcn_kmsg ring", f"{k} register", f"{k} per-cpu areas"} <= set(pop)
    for k in ("mk0", "mk1", "mk2", "mk3"):
        assert {f"{k} mk ring", f"{k} announce"} <= set(mk)
    assert {"linux0 shared page", "linux1 shared page"} <= set(twin)

    def kinds(steps):
        return {s.split(" ", 1)[1] for s in steps if " " in s and s.split(" ", 1)[0][-1].isdigit()}
    assert "pcn_kmsg ring" in kinds(pop) - kinds(mk) - kinds(twin)
    assert "announce" in kinds(mk) - kinds(pop)
    assert "shared page" in kinds(twin) - kinds(pop) - kinds(mk)


@pytest.fixture(scope="module")
def amd2_rows():
    return multikernel.channel_rows(AMD2, payloads=(8, 512, 4096))


def test_channel_rows_have_the_issue_keys_and_cover_every_channel(amd2_rows):
    assert all(list(r) == ["channel", "path", "payload", "latency_cycles", "msgs_per_kcycle"] for r in amd2_rows)
    assert {r["channel"] for r in amd2_rows} == set(channels.CHANNELS)
    assert {r["path"] for r in amd2_rows} == {p.name for p in microbench.path_kinds(AMD2)}


def test_an_ipi_adds_at_least_its_delivery_to_a_polled_channel(amd2_rows):
    """The same protocol woken by an IPI instead of polling pays at least the IPI's delivery latency
    when the IPI follows the whole message (the RFC ring, Twin-Linux, a one-slot Popcorn message; a
    long Popcorn message is kicked at its first chunk, and the receiver drains while the rest comes)."""
    lat = {(r["channel"], r["path"], r["payload"]): r["latency_cycles"] for r in amd2_rows}
    for base in ("popcorn", "multikernel", "twin-linux"):
        for (ch, path, pl), v in lat.items():
            if ch == f"{base}-poll" and (base != "popcorn" or pl <= channels.POPCORN_CHUNK):
                assert lat[(f"{base}-ipi", path, pl)] - v >= AMD2.apic.ipi_latency


def test_fewer_lines_touched_is_faster(amd2_rows):
    """8-byte messages on one path: URPC (one line) < Popcorn (slot + its own ticket line) < the RFC ring
    (head, the receiver's tail, size line and payload line)."""
    lat = {(r["channel"], r["path"]): r["latency_cycles"] for r in amd2_rows if r["payload"] == 8}
    for path in {r["path"] for r in amd2_rows}:
        assert lat[("urpc-poll", path)] < lat[("popcorn-poll", path)] < lat[("multikernel-poll", path)]


def test_latency_grows_with_payload_and_a_pipelined_ring_beats_ping_pong(amd2_rows):
    by = {}
    for r in amd2_rows:
        by.setdefault((r["channel"], r["path"]), []).append(r)
    for (ch, _), rs in by.items():
        lats = [r["latency_cycles"] for r in sorted(rs, key=lambda r: r["payload"])]
        assert lats == sorted(lats), ch
        if ch in ("urpc-poll", "popcorn-poll", "multikernel-poll"):
            small = min(rs, key=lambda r: r["payload"])
            assert small["msgs_per_kcycle"] > 1000.0 / small["latency_cycles"], ch


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(channel=st.sampled_from(["popcorn-poll", "popcorn-ipi", "multikernel-poll", "multikernel-ipi",
                                "twin-linux-poll", "twin-linux-ipi"]),
       words=st.integers(1, 512), b=st.integers(1, 3))
def test_a_channel_delivers_the_bytes_sent(channel, words, b):
    """Whatever the size and path, the receiver's copy holds exactly the sender's bytes (Popcorn's chunks
    reassembled in order)."""
    data = bytes((i * 37 + words) % 251 + 1 for i in range(8 * words))
    m = channels.run_channel(AMD2, channel, 0, b, len(data), 3, lockstep=False, data=data)
    assert m.read(channels.buffers(AMD2, 0, b)[1], len(data)) == data


def test_channel_runs_are_deterministic():
    assert channels.latency(AMD2, "popcorn-ipi", 0, 2, 64) == channels.latency(AMD2, "popcorn-ipi", 0, 2, 64)


@pytest.mark.parametrize("args, match", [
    (("nochannel", 0, 1, 8), "channel 'nochannel'"),
    (("popcorn-poll", 0, 1, 8192), "payload 8192"),
    (("multikernel-doorbell", 0, 1, 8), "carries no payload"),
    (("popcorn-poll", 1, 1, 8), "two different cores"),
])
def test_bad_channel_arguments_are_refused(args, match):
    ch, a, b, pl = args
    with pytest.raises(MksimError, match=match):
        channels.run_channel(AMD2, ch, a, b, pl, 2, lockstep=True)


def test_migration_grows_with_state_and_costs_more_across_core_types():
    cfg = load_machine("xeon-phi")
    rows = popcorn.migrate_rows(cfg, sizes=(0, 4096, 16384))
    assert {(r["from_type"], r["to_type"]) for r in rows} == {("xeon-e5-2695v2", "xeon-e5-2695v2"),
                                                              ("xeon-e5-2695v2", "xeon-phi-3120a")}
    for r in rows:
        assert sum(r["steps"].values()) == r["cycles"] and list(r["steps"]) == list(popcorn.STEPS)
    for pair in {(r["from_type"], r["to_type"]) for r in rows}:
        cyc = [r["cycles"] for r in rows if (r["from_type"], r["to_type"]) == pair]
        assert cyc == sorted(cyc) and len(set(cyc)) == len(cyc)
    same = {r["state_bytes"]: r for r in rows if r["to_type"] == "xeon-e5-2695v2"}
    cross = {r["state_bytes"]: r for r in rows if r["to_type"] == "xeon-phi-3120a"}
    for size in same:
        assert cross[size]["cycles"] > same[size]["cycles"]
        for step in popcorn.STEPS[:2]:
            assert cross[size]["steps"][step] > same[size]["steps"][step]


@pytest.mark.parametrize("size, match", [(100, "multiple of 4096"), (2 << 20, "from 0 to 1 MiB")])
def test_bad_migration_state_is_refused(size, match):
    with pytest.raises(MksimError, match=match):
        popcorn.migrate(AMD2, 0, 2, size)


def test_migration_to_the_same_core_is_refused():
    with pytest.raises(MksimError, match="to itself"):
        popcorn.migrate(AMD2, 1, 1, 0)


def test_split_instances_beat_one_kernel_on_a_contended_line():
    """One kernel's line saturates (more cores do not add throughput); two instances with their own
    lines on the same cores do better than one."""
    rows = multikernel.split_rows(AMD2)
    assert all(list(r) == ["instances", "cores", "ops_per_kcycle"] for r in rows)
    val = {(r["instances"], r["cores"]): r["ops_per_kcycle"] for r in rows}
    assert set(val) == {(1, 1), (1, 2), (1, 4), (2, 2), (2, 4)}
    assert val[(1, 4)] <= val[(1, 2)] * 1.1
    assert val[(2, 4)] > 1.5 * val[(1, 4)]


def test_split_refuses_a_machine_without_coherence_everywhere():
    with pytest.raises(MksimError, match="coherence domains"):
        multikernel.split_rows(load_machine("xeon-phi"))


def test_the_benches_run_from_the_command_line(capsys):
    assert main(["bench", "channels", "--machine", "amd-2x2", "--max-payload", "8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["payload"] for r in rows} == {0, 8}
    assert main(["bench", "migrate", "--machine", "amd-2x2", "--max-state", "4096"]) == 0
    out = capsys.readouterr().out
    assert "page faults" in out and "4096" in out


def test_heterogeneous_balance_gains_but_not_past_the_combined_capacity():
    """On the Xeon + Xeon Phi preset the job on both types, with Popcorn migrating a share of the tasks,
    beats the host alone, but no more than the two types' combined clock capacity allows."""
    cfg = load_machine("xeon-phi")
    rows = popcorn.balance_rows(cfg, tasks=16)
    assert [r["run"] for r in rows] == ["xeon-e5-2695v2", "xeon-phi-3120a", "both (popcorn)"]
    host, phi, both = (r["cycles"] for r in rows)
    assert phi > host > both
    assert rows[2]["other_tasks"] > 0 and rows[2]["host_tasks"] + rows[2]["other_tasks"] == 16
    capacity = sum(t.clock_ghz for t in cfg.core_types) / cfg.core_type(0).clock_ghz
    assert host / both <= capacity


def test_balance_needs_two_core_types():
    with pytest.raises(MksimError, match="needs two"):
        popcorn.balance_rows(AMD2)


def test_migration_across_coherence_domains_with_32_byte_lines():
    """omap4's Cortex-A9 and Cortex-M3 share no coherence and use 32-byte lines: a 64-byte Popcorn slot
    spans two lines, and the non-coherent ring must flush both for the message to cross."""
    from hwmodel.config import load_machine
    from kernels import popcorn
    cfg = load_machine("omap4")
    assert cfg.line == 32 and cfg.ndomains == 2
    a, b = [(x, y) for x, y in popcorn.migration_pairs(cfg) if cfg.domain(x) != cfg.domain(y)][0]
    r = popcorn.migrate(cfg, a, b, 4096)
    assert r["cycles"] == sum(r["steps"].values()) and r["steps"]["page faults"] > 0
