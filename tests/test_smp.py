"""SMP start-up: INIT-SIPI-SIPI variants, the trampoline, real to long mode, the boot timeline."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boot import timeline as tl
from boot import smp
from boot.smp import VARIANTS, smp_workload
from hwmodel import isa
from hwmodel.apic import INIT, STARTUP
from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.workload import DELIVERED, HALTED, IGNORED


def boot(name: str, variant: str, aps=None, bsp: int = 0, vector: int = 0x06):
    m = Machine(name)
    w, lay = smp_workload(m.cfg, bsp=bsp, aps=aps, variant=variant, vector=vector)
    m.load_workload(w)
    assert m.execute() == "done"
    return m, lay, tl.events(m.timeline())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["amd-2x2", "amd-4x4", "intel-2x4", "mesh-64"]), variant=st.sampled_from(sorted(VARIANTS)),
       data=st.data())
def test_every_ap_starts_exactly_once_in_real_mode_and_reaches_long_mode(name, variant, data):
    cfg = load_machine(name)
    bsp = data.draw(st.integers(0, cfg.cores - 1))
    others = [c for c in range(cfg.cores) if c != bsp]
    aps = data.draw(st.lists(st.sampled_from(others), unique=True, max_size=min(6, len(others))))
    vector = data.draw(st.sampled_from([0x06, 0x08, 0x5F, 0x10]))
    m, lay, evs = boot(name, variant, aps, bsp, vector)
    for ap in aps:
        mine = [e for e in evs if e.core == ap]
        assert [e.name for e in mine] == ["ap real mode", "ap protected mode", "ap long mode"]
        assert int(m.cpu.mode[ap]) == isa.LONG and int(m.cpu.state[ap]) == HALTED
        ipis = [r for r in m.ipis() if r[1] == ap]
        assert [int(r[3]) for r in ipis][:2] == [INIT, STARTUP]
        assert int(ipis[0][6]) == DELIVERED and int(ipis[1][6]) == DELIVERED
        assert all(int(r[6]) == IGNORED for r in ipis[2:])       # a second SIPI finds the AP running
        assert int.from_bytes(m.read(smp.ALIVE + 8 * ap, 8), "little") == 1
    idle = [c for c in range(cfg.cores) if c != bsp and c not in aps]
    assert all(int(m.cpu.state[c]) != HALTED for c in idle)      # nobody else was started
    # the trampoline's first op is at vector << 12, below 1 MiB
    assert int(m.cpu.opaddr[m.cpu.segs[0, 1]]) == vector << 12 < 1 << 20


def test_variant_delays_show_in_the_timeline():
    cfg = load_machine("amd-4x4")
    totals = {}
    for v in VARIANTS:
        m, lay, evs = boot("amd-4x4", v, aps=[1, 4])
        totals[v] = next(e for e in evs if e.name == "smp boot").cycles
        waits = [e for e in evs if e.name == "init wait"]
        if VARIANTS[v].init_wait_us:
            assert all(e.cycles >= VARIANTS[v].init_wait_us * 1000 * cfg.clock_ghz for e in waits)
        else:
            assert not waits
    assert totals["barrelfish"] < totals["linux"] < totals["mp-spec"] < totals["ihk"]
    # 2 APs x 10 ms at 2.5 GHz: the MP-spec boot takes at least 50 M cycles
    assert totals["mp-spec"] >= 2 * 25_000_000


def test_remote_aps_take_longer_to_come_up():
    """An AP on another package sees the IPIs and its trampoline's lines later."""
    _, _, evs = boot("amd-4x4", "barrelfish", aps=[1, 12])
    waited = {e.value: e.cycles for e in evs if e.name == "wait for ap"}
    assert waited[12] > waited[1]


def test_chrome_trace_has_one_track_per_core():
    m, lay, evs = boot("amd-2x2", "linux")
    trace = tl.chrome_trace(evs, m.cfg.clock_ghz, m.cfg.name)
    json.loads(json.dumps(trace))
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["tid"] for e in xs} == {0, 1, 2, 3}
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"core 0", "core 1", "core 2", "core 3"}
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in xs)


@pytest.mark.parametrize("kw, msg", [({"vector": 0xA5}, "reserved"), ({"variant": "grub"}, "variant"),
                                     ({"aps": [0]}, "APs"), ({"bsp": 99}, "BSP")])
def test_bad_start_up_requests_are_refused(kw, msg):
    cfg = load_machine("amd-2x2")
    with pytest.raises(MksimError, match=msg):
        smp_workload(cfg, **kw)
