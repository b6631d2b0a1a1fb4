"""The HPC personalities (kernels/mckernel.py, kernels/mos.py) and the noise machinery (kernels/noise.py):
FWQ and BSP shapes under a ticking Linux and the tickless LWKs, system-call paths whose steps add up,
plans that boot, and bad input refused."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from kernels import mckernel, mos, noise, registry
from mksim.cli import main

SMALL = load_machine("amd-2x2")
Q = 50_000


def test_both_personalities_are_registered_with_their_benches():
    assert {"mckernel", "mos"} <= set(registry.known())
    ex = registry.experiments()
    assert ex["noise"][0].name == "mckernel" and ex["bsp"][0].name == "mckernel" and ex["syscall"][0].name == "mos"
    assert {"kernel", "cores", "quanta", "min", "median", "p99", "max", "slowed_fraction"} <= set(ex["noise"][1].keys)
    assert ex["syscall"][1].keys[:3] == ("kernel", "syscall", "path")


@pytest.mark.parametrize("kernel", ["mckernel", "mos", "linux-nohz"])
def test_tickless_cores_see_no_noise(kernel):
    """An LWK core (and nohz_full within its 1 s residual tick) runs every quantum in the same time."""
    times = noise.fwq_times(SMALL, kernel, [1, 2, 3], quantum=Q, quanta=120)
    s = noise.fwq_stats(times)
    assert s["max"] / s["min"] < 1.001 and s["slowed_fraction"] == 0.0


def test_linux_ticks_interrupt_at_the_tick_period():
    """Under Linux the slowed quanta come once per tick period, and their share is quantum / period."""
    period = noise.tick_period(SMALL, 1000)
    quanta = 3 * period // Q
    times = noise.fwq_times(SMALL, "linux", [0, 1, 2, 3], quantum=Q, quanta=quanta)
    for c, t in times.items():
        slow = np.nonzero(t > t.min() * 1.01)[0]
        assert len(slow) >= 2, c
        gap = np.diff(slow) * float(np.median(t))
        assert np.all(np.abs(gap - period) < 2 * Q), (c, gap)
    s = noise.fwq_stats(times)
    assert abs(s["slowed_fraction"] - Q / period) < 1.5 / (period / Q)
    # each tick costs at least the interrupt's entry and IRET (the model's fixed costs)
    t = times[1]
    extra = t[t > t.min() * 1.01] - t.min()
    assert extra.min() >= SMALL.core.interrupt_entry + SMALL.core.iret_latency


def test_a_lower_hz_slows_fewer_quanta():
    a = noise.fwq_stats(noise.fwq_times(SMALL, "linux", [1], quantum=Q, quanta=4 * noise.tick_period(SMALL, 250) // Q,
                                        hz=250))
    b = noise.fwq_stats(noise.fwq_times(SMALL, "linux", [1], quantum=Q, quanta=4 * noise.tick_period(SMALL, 250) // Q,
                                        hz=1000))
    assert 0 < a["slowed_fraction"] < b["slowed_fraction"]


def test_the_tick_cpu_advances_jiffies_and_the_others_read_it():
    """Only tick_do_timer_cpu writes jiffies (do_timer); the other CPUs' handlers only load it."""
    h0 = noise.tick_handler(SMALL, 0, 0, [0, 1], 1000).listing()
    h1 = noise.tick_handler(SMALL, 1, 0, [0, 1], 1000).listing()
    assert "jiffies_64++" in h0 and "jiffies_64++" not in h1
    assert "write_seqlock" in h0 and "write_seqlock" not in h1


def test_bsp_noise_amplification_grows_with_cores_and_the_lwk_stays_flat():
    cfg = load_machine("amd-4x4")
    work = Q
    lin, lwk = {}, {}
    for n in (2, 8):
        base = noise.bsp_cycles(cfg, "none", list(range(n)), work)
        lin[n] = noise.bsp_cycles(cfg, "linux", list(range(n)), work) / base
        lwk_cores = list(range(1, n + 1))
        lwk[n] = noise.bsp_cycles(cfg, "mckernel", lwk_cores, work) / noise.bsp_cycles(cfg, "none", lwk_cores, work)
    assert 1.0 < lin[2] < lin[8]
    assert all(abs(v - 1.0) < 0.01 for v in lwk.values())


def test_bsp_without_skew_does_not_amplify_as_much():
    """Aligned ticks (skew_tick=0) hit all cores in the same iteration: less amplification than staggered ones."""
    cfg = load_machine("amd-4x4")
    cores = list(range(8))
    base = noise.bsp_cycles(cfg, "none", cores, Q)
    assert noise.bsp_cycles(cfg, "linux", cores, Q, skew=False) / base < noise.bsp_cycles(cfg, "linux", cores, Q) / base


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nbytes=st.sampled_from([0, 8, 64, 200, 1024]), lwk=st.integers(1, 3))
def test_syscall_steps_add_up_and_are_positive(nbytes, lwk):
    for fn in (mckernel.local_cycles, mckernel.offload_cycles, mos.migrate_cycles):
        total, steps = fn(SMALL, lwk, nbytes)
        assert sum(steps.values()) == total
        assert all(v > 0 for v in steps.values()), (fn.__name__, steps)


def test_offload_and_migrate_cost_more_than_a_local_call():
    local, _ = mckernel.local_cycles(SMALL, 1, 0)
    off, steps = mckernel.offload_cycles(SMALL, 1, 0)
    mig, msteps = mos.migrate_cycles(SMALL, 1, 0)
    assert off - local > 1000
    assert steps["ipi_delivery"] >= SMALL.core.interrupt_entry
    # the thread move: its state goes to Linux and back, each way a run-queue enqueue and an IPI
    assert mig > local and msteps["save_state"] > 0 and msteps["schedule_in_lwk"] > 0
    assert msteps["ipi_delivery"] >= SMALL.core.interrupt_entry


def test_copying_grows_with_the_request_size():
    small = mckernel.offload_cycles(SMALL, 1, 64)[1]["proxy_syscall"]
    big = mckernel.offload_cycles(SMALL, 1, 4096)[1]["proxy_syscall"]
    assert big > 4 * small
    assert mos.migrate_cycles(SMALL, 1, 4096)[0] > mos.migrate_cycles(SMALL, 1, 64)[0]


def test_same_inputs_same_cycles():
    assert mckernel.offload_cycles(SMALL, 2, 64) == mckernel.offload_cycles(SMALL, 2, 64)
    a = noise.fwq_times(SMALL, "linux", [0, 1], quantum=Q, quanta=80)
    b = noise.fwq_times(SMALL, "linux", [0, 1], quantum=Q, quanta=80)
    assert all(np.array_equal(a[c], b[c]) for c in a)


@pytest.mark.parametrize("call, msg", [
    (lambda: noise.fwq_times(SMALL, "windows", [0]), "kernel 'windows'"),
    (lambda: noise.fwq_times(SMALL, "linux", [0], hz=123), "HZ 123"),
    (lambda: noise.fwq_times(SMALL, "linux", [0, 0]), "distinct cores"),
    (lambda: noise.bsp_cycles(SMALL, "linux", [0, 9]), "distinct cores"),
    (lambda: mckernel.offload_cycles(SMALL, 0), "LWK core 0"),
    (lambda: mckernel.offload_cycles(SMALL, 1, 12), "request size 12"),
    (lambda: mos.remote_cycles(SMALL, 0), "remote stub 0"),
])
def test_bad_input_is_refused(call, msg):
    with pytest.raises(MksimError, match=msg):
        call()


@pytest.mark.parametrize("plan, lwk_steps", [
    ("examples/mckernel.cfg", {"lwk init", "lwk ihk boot params", "lwk ikc queues", "lwk tickless"}),
    ("examples/mos.cfg", {"lwk init", "lwk syscall routing table", "lwk run queues", "lwk tickless"}),
])
def test_the_plans_boot_both_kernels(plan, lwk_steps, capsys):
    assert main(["boot", plan, "--machine", "intel-2x4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    steps = {s["step"] for s in res["steps"]}
    assert lwk_steps <= steps and "linux per-cpu areas" in steps
    assert all(k["up"] for k in res["kernels"])


def test_syscall_bench_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sys.png"
    assert main(["bench", "syscall", "--machine", "amd-2x2", "--remote-cycles", "3000", "--json",
                 "--plot", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["path"] for r in rows} == {"local", "offload", "migrate", "remote"}
    assert all(sum(r["steps"].values()) == r["cycles"] for r in rows)
    assert out.stat().st_size > 0


def test_noise_bench_table(capsys):
    assert main(["bench", "noise", "--machine", "amd-2x2", "--kernel", "mckernel"]) == 0
    text = capsys.readouterr().out
    assert "mckernel" in text and "linux " not in text


def test_a_daemon_adds_its_work_to_the_quanta_it_hits():
    """A kernel thread woken every 2 ticks running W cycles: some quanta are slowed by at least W, and the
    tick-only quanta are still there."""
    period = noise.tick_period(SMALL, 1000)
    work = 20_000
    t = noise.fwq_times(SMALL, "linux", [1], quantum=Q, quanta=5 * period // Q, daemon=(2, work))[1]
    extra = np.sort(t[t > t.min() * 1.01] - t.min())
    assert extra[-1] >= work and extra[0] < work


def test_a_daemon_amplifies_bsp_noise_more_than_the_tick_alone():
    cfg = load_machine("amd-4x4")
    cores = list(range(8))
    base = noise.bsp_cycles(cfg, "none", cores, Q, iters=400)
    tick = noise.bsp_cycles(cfg, "linux", cores, Q, iters=400)
    both = noise.bsp_cycles(cfg, "linux", cores, Q, iters=400, daemon=(2, 20_000))
    assert base < tick < both


@pytest.mark.parametrize("text", ["3", "a:b", "0:5", "5:0"])
def test_a_bad_daemon_is_refused(text):
    with pytest.raises(MksimError, match="daemon"):
        noise.parse_daemon(text)


def test_bsp_bench_json_rows(capsys):
    assert main(["bench", "bsp", "--machine", "amd-2x2", "--kernel", "mckernel", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["cores"] for r in rows] == [2, 3]
    assert all(set(r) == {"kernel", "cores", "cycles_per_iteration", "slowdown"} and r["slowdown"] == 1.0 for r in rows)
