"""Interruptible work and the local APIC timer (cpu_spec.md, 'Interruptible COMPUTE', 'APIC registers',
'APIC timer'): SDM semantics pinned by hand-built programs, each run in the compiled engine and the reference
(which must agree exactly), properties, and generated programs compared engine vs reference."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import apic, isa
from hwmodel.config import ApicConfig, CacheConfig, CoreConfig, MachineConfig, load_machine
from hwmodel.isa import Program
from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.workload import (DELIVERED, FAULTED, FK_APIC, FK_BAD_MSR, PROG_STATS, WFS,
                              Workload)
from tests.harness import cpu_machines, workloads
from tests.test_cpu_vs_reference import assert_same, run_both, snapshot_engine, snapshot_reference

DATA = 0x10000
VEC = 0x40
STAT = {k: i for i, k in enumerate(PROG_STATS)}


def small(num: int = 1, den: int = 1, tsc_deadline: bool = True, mode: str = "xapic", **core) -> MachineConfig:
    c = dict(interrupt_entry=100, iret_latency=30, msr_latency=20, mmio_latency=10, alu_latency=1)
    c.update(core)
    return MachineConfig(
        name="small", packages=1, cores_per_package=2, clock_ghz=2.0,
        caches=(CacheConfig(name="L1D", level=1, size=4096, ways=4, latency=2),),
        core=CoreConfig(**c),
        apic=ApicConfig(mode=mode, ipi_latency=50, timer_period_num=num, timer_period_den=den,
                        tsc_deadline=tsc_deadline)).validate()


def both(cfg: MachineConfig, w: Workload, words=(DATA,)) -> tuple[Machine, ReferenceCpu]:
    """Run w to the end in the engine and the reference; they must agree on everything."""
    m = Machine(cfg)
    m.load_workload(w)
    sm = m.execute()
    r = ReferenceCpu(cfg)
    r.load_workload(w)
    sr = r.execute()
    assert sm == sr
    assert_same(snapshot_engine(m, list(words)), snapshot_reference(r, list(words)))
    return m, r


def marks(r: ReferenceCpu, event: int, core: int | None = None) -> list[int]:
    return [t for c, t, e, _ in r.timeline() if e == event and (core is None or c == core)]


def place_with_handler(w: Workload, prog: Program, h: Program, addr: int) -> tuple[int, int]:
    """Place prog at addr and the handler right behind it: programs of up to 16 ops in all share one I-line, so
    entering the handler fetches nothing (its first op runs exactly interrupt_entry after the interrupt)."""
    p = w.place(prog, addr)
    return p.pc(), w.place(h, addr + isa.OP_BYTES * len(prog)).pc()


def handler(x2apic: bool = False, work: int = 0) -> Program:
    """Marks its entry (event 7), optionally computes, EOIs, marks its exit (event 8), returns."""
    h = Program("h").mark(7)
    if work:
        h.compute(work)
    return h.eoi(x2apic=x2apic).mark(8).iret()


# ------------------------------------------------------------------ interruptible COMPUTE

def compute_victim(n, sti: bool = True) -> Program:
    p = Program("victim")
    if sti:
        p.sti()
    return p.mark(1).compute(n).mark(2).halt()


def test_ipi_preempts_compute_at_its_arrival():
    """The issue's case: an IPI arriving at t=861 during compute(100000) is taken at 861, not after the compute."""
    cfg = small()
    w = Workload(cfg.cores)
    pc, hpc = place_with_handler(w, compute_victim(100000), handler(work=500), 0x2000)
    w.start(1, pc)
    w.set_handler(1, VEC, hpc)
    w.start(0, w.place(Program("s").compute(800).ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (src, dst, vec, mode, ts, arrive, outcome, taken), = r.ipis()
    assert outcome == DELIVERED and taken == arrive < 2000
    (start,), (entered,), (left,), (end,) = marks(r, 1), marks(r, 7), marks(r, 8), marks(r, 2)
    assert entered == arrive + cfg.core.interrupt_entry
    # the compute's cycles all ran: before the arrival, and after IRET
    iret_end = left + cfg.core.alu_latency + cfg.core.iret_latency
    assert (arrive - start - 1) + (end - iret_end) == 100000      # mark 1 costs one cycle
    assert r.prog_stats[1][STAT["computes_interrupted"]] == 1
    assert r.prog_stats[1][STAT["sleep_cycles"]] == 0


@pytest.mark.parametrize("how", ["wfi", "spin"])
def test_sleepers_are_interrupted_at_the_arrival(how):
    cfg = small()
    w = Workload(cfg.cores)
    p = Program("t").sti()
    if how == "wfi":
        p.wfi()
    else:
        p.spin_until(DATA, "eq", 1)
    pc, hpc = place_with_handler(w, p.halt(), handler(), 0x2000)
    w.start(1, pc)
    w.set_handler(1, VEC, hpc)
    w.start(0, w.place(Program("s").compute(3000).ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    assert outcome == DELIVERED and taken == arrive and marks(r, 7) == [arrive + cfg.core.interrupt_entry]


def test_compute_with_interrupts_off_runs_to_its_end_then_takes_the_interrupt():
    cfg = small()
    w = Workload(cfg.cores)
    w.start(1, w.place(Program("v").compute(20000).sti().nop().halt(), 0x2000).pc())
    w.set_handler(1, VEC, w.place(handler(), 0x3000).pc())
    w.start(0, w.place(Program("s").ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    assert arrive < 20000 < taken and outcome == DELIVERED
    assert r.prog_stats[1][STAT["computes_interrupted"]] == 0


def test_nmi_preempts_compute_with_interrupts_off():
    cfg = small()
    w = Workload(cfg.cores)
    pc, hpc = place_with_handler(w, compute_victim(50000, sti=False), Program("nmi").mark(7).iret(), 0x2000)
    w.start(1, pc)
    w.set_handler(1, 2, hpc)
    w.start(0, w.place(Program("s").ipi(1, 2, mode="nmi").halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    assert taken == arrive and marks(r, 7) == [arrive + cfg.core.interrupt_entry]
    (start,), (end,) = marks(r, 1), marks(r, 2)
    assert end - start == 1 + 50000 + cfg.core.interrupt_entry + 1 + cfg.core.iret_latency


def test_init_during_compute_abandons_it():
    cfg = small()
    w = Workload(cfg.cores)
    w.start(1, w.place(compute_victim(50000), 0x2000).pc())
    w.start(0, w.place(Program("s").ipi(1, mode="init").halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    assert r.state[1] == WFS and r.clock[1] == arrive == taken and marks(r, 2) == []


def test_register_compute_keeps_its_remainder_when_the_handler_clobbers_the_register():
    cfg = small()
    w = Workload(cfg.cores)
    v = Program("v").sti().movi("r3", 40000).mark(1).compute("r3").mark(2).halt()
    h = Program("h").movi("r3", 7).eoi().iret()
    w.start(1, w.place(v, 0x2000).pc())
    w.set_handler(1, VEC, w.place(h, 0x3000).pc())
    w.start(0, w.place(Program("s").ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (start,), (end,) = marks(r, 1), marks(r, 2)
    assert end - start > 40000 and r.regs[1][3] == 7


def test_nested_interrupts_preempt_a_handler_compute():
    """A handler that re-enables interrupts and computes is itself preempted by a higher-class vector."""
    cfg = small()
    w = Workload(cfg.cores)
    low = Program("low").sti().mark(3).compute(20000).mark(4).eoi().iret()
    pc, lpc = place_with_handler(w, compute_victim(60000), low, 0x2000)
    w.start(1, pc)
    high = Program("high").mark(5).eoi().iret()
    w.set_handler(1, 0x40, lpc)
    w.set_handler(1, 0x80, w.place(high, 0x2000 + 4 * 11).pc())
    w.start(0, w.place(Program("s").ipi(1, 0x40).compute(3000).ipi(1, 0x80).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (_, a1, *_), (_, a2, *_) = [x[4:] for x in r.ipis()]
    assert a1 < a2
    assert marks(r, 5) == [a2 + cfg.core.interrupt_entry]
    (s3,), (e4,) = marks(r, 3), marks(r, 4)
    assert s3 < a2 < e4 and r.prog_stats[1][STAT["computes_interrupted"]] == 2
    (start,), (end,) = marks(r, 1), marks(r, 2)
    assert end - start > 60000 + 20000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 20000), sends=st.lists(st.integers(0, 25000), min_size=1, max_size=4),
       work=st.integers(0, 300), entry=st.integers(0, 200), iret=st.integers(0, 50))
def test_property_interrupts_during_compute_are_taken_on_arrival_and_all_cycles_run(n, sends, work, entry, iret):
    """Every IPI arriving while compute(n) runs (IF = 1) is taken at its arrival (+ entry cost); the compute's
    cycles outside handlers add up to n exactly."""
    cfg = small(interrupt_entry=entry, iret_latency=iret)
    w = Workload(cfg.cores)
    pc, hpc = place_with_handler(w, compute_victim(n), handler(work=work), 0x2000)
    w.start(1, pc)
    w.set_handler(1, VEC, hpc)
    s = Program("s")
    for at in sorted(sends):
        s.movi("r1", at).rdtsc("r2").sub("r1", "r1", "r2").compute("r1").ipi(1, VEC)
    w.start(0, w.place(s.halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (start,), (end,) = marks(r, 1), marks(r, 2)
    delivered = sorted((x[7], x[5]) for x in r.ipis() if x[6] == DELIVERED)       # (taken, arrived)
    windows = [(taken, left + 1 + iret) for (taken, _), left in zip(delivered, marks(r, 8))]  # taken -> IRET done
    for taken, arrive in delivered:
        if start < arrive < end and not any(a <= arrive < b for a, b in windows):
            assert taken == arrive                       # preempted the compute when it arrived
    assert end - start - 1 - sum(b - a for a, b in windows if a < end) == n


# ------------------------------------------------------------------ the APIC timer (SDM 10.5.4)

def timer_core(setup: Program, tail: Program | None = None) -> Program:
    """sti; the timer set-up; mark 1; the tail (compute(200000) by default); mark 2; halt."""
    p = Program("t").sti()
    p.extend(setup, "setup")
    p.mark(1)
    if tail is None:
        tail = Program("tail").compute(200000)
    p.extend(tail, "tail")
    return p.mark(2).halt()


def timer_run(cfg: MachineConfig, setup: Program, tail: Program | None = None, work: int = 0,
              x2apic: bool = False) -> tuple[Machine, ReferenceCpu]:
    w = Workload(cfg.cores)
    pc, hpc = place_with_handler(w, timer_core(setup, tail), handler(x2apic, work), 0x1000)
    w.start(0, pc)
    w.set_handler(0, VEC, hpc)
    return both(cfg, w)


@pytest.mark.parametrize("num,den,divide,count", [(1, 1, 1, 1000), (8, 1, 16, 100), (25, 2, 2, 333),
                                                  (14, 1, 128, 7), (10, 3, 4, 1001)])
def test_periodic_interval_is_count_times_divisor_times_clock_ratio_without_drift(num, den, divide, count):
    cfg = small(num, den)
    m, r = timer_run(cfg, Program("s").timer_periodic(VEC, count, divide), work=50)
    entries = marks(r, 7)
    assert len(entries) >= 5
    t0 = entries[0] - cfg.core.interrupt_entry - (count * divide * num + den - 1) // den
    for j, e in enumerate(entries, start=1):        # exact: t0 + ceil(j * count * divide * num / den)
        assert e - cfg.core.interrupt_entry == t0 + (j * count * divide * num + den - 1) // den
    assert r.prog_stats[0][STAT["timer_interrupts"]] == len(entries)


def test_one_shot_fires_once_and_the_count_stays_at_zero():
    cfg = small()
    tail = Program("tail").compute(5000).apic_read("r4", apic.TIMER_CUR).compute(5000)
    m, r = timer_run(cfg, Program("s").timer_oneshot(VEC, 1000, 2), tail)
    assert len(marks(r, 7)) == 1 and r.regs[0][4] == 0
    assert r.prog_stats[0][STAT["timer_interrupts"]] == 1


def test_current_count_counts_down_from_the_initial_count():
    cfg = small(4, 1)                                # a tick every 4 cycles; divisor 8: a count every 32
    setup = Program("s").timer_oneshot(VEC, 1000, 8, masked=True).rdtsc("r5")
    tail = Program("tail").compute(3200).rdtsc("r6").apic_read("r4", apic.TIMER_CUR)
    m, r = timer_run(cfg, setup, tail)
    start = r.timer[0].start
    read_at = r.regs[0][6] + cfg.core.rdtsc_latency       # the load's issue time
    assert r.regs[0][4] == 1000 - (read_at - start) // 32
    assert 880 < r.regs[0][4] < 900


def test_masked_timer_latches_nothing_but_keeps_counting():
    cfg = small()
    m, r = timer_run(cfg, Program("s").timer_periodic(VEC, 1000, 1, masked=True))
    assert marks(r, 7) == [] and r.prog_stats[0][STAT["timer_interrupts"]] == 0
    assert r.prog_stats[0][STAT["timer_lost"]] == 200


def test_initial_count_zero_stops_the_timer():
    cfg = small()
    tail = Program("tail").compute(2500).timer_stop().compute(20000)
    m, r = timer_run(cfg, Program("s").timer_periodic(VEC, 1000), tail, work=10)
    assert len(marks(r, 7)) == 2


def test_rewriting_the_initial_count_restarts_the_count():
    cfg = small()
    tail = Program("tail").compute(900).apic_write(apic.TIMER_INIT, 1000).compute(900).timer_stop()
    m, r = timer_run(cfg, Program("s").timer_oneshot(VEC, 1000), tail)
    assert marks(r, 7) == []


def test_deadline_in_the_past_fires_at_once_and_zero_disarms():
    cfg = small()
    m, r = timer_run(cfg, Program("s").timer_deadline(VEC, 5), Program("tail").compute(1000))
    (e,), (resumed,) = marks(r, 7), marks(r, 1)
    assert e < resumed and r.timer[0].deadline == 0 and r.timer[0].next is None
    m, r = timer_run(cfg, Program("s").timer_deadline(VEC, 3000).wrmsr(apic.MSR_TSC_DEADLINE, 0))
    assert marks(r, 7) == []


def test_deadline_fires_when_the_tsc_reaches_it():
    cfg = small()
    m, r = timer_run(cfg, Program("s").rdtsc("r3").add("r3", "r3", 5000).timer_deadline(VEC, "r3"))
    assert marks(r, 7) == [r.regs[0][3] + cfg.core.interrupt_entry]


def test_mode_change_disarms():
    cfg = small()
    setup = Program("s").timer_oneshot(VEC, 1000).apic_write(apic.LVT_TIMER, VEC | apic.TIMER_DEADLINE << 17)
    m, r = timer_run(cfg, setup)
    assert marks(r, 7) == [] and r.prog_stats[0][STAT["timer_lost"]] == 0


def test_x2apic_timer_through_msrs():
    cfg = small(mode="x2apic")
    m, r = timer_run(cfg, Program("s").timer_periodic(VEC, 10000, 4, x2apic=True), x2apic=True)
    e = marks(r, 7)
    assert len(e) == 5 and {b - a for a, b in zip(e, e[1:])} == {40000}


def test_os_noise_periodic_tick_stretches_compute_by_ticks_times_handler_cost():
    """A 10000-cycle tick whose handler costs H: compute(N) takes N + ticks x H wall-clock cycles."""
    cfg = small()
    work = 300
    m, r = timer_run(cfg, Program("s").timer_periodic(VEC, 10000), work=work)
    ticks = r.prog_stats[0][STAT["interrupts"]]
    (start,), (end,) = marks(r, 1), marks(r, 2)
    h = cfg.core.interrupt_entry + 1 + work + cfg.core.mmio_latency + 1 + cfg.core.iret_latency
    assert ticks == r.prog_stats[0][STAT["computes_interrupted"]] == r.prog_stats[0][STAT["timer_interrupts"]]
    assert ticks == 20 and end - start == 1 + 200000 + ticks * h


# ------------------------------------------------------------------ the register file: modelled or a fault

@pytest.mark.parametrize("prog,kind", [
    (Program("p").store(apic.APIC_BASE + 0x3F0, 1, size=4), FK_APIC),            # reserved
    (Program("p").store(apic.APIC_BASE + apic.VERSION, 1, size=4), FK_APIC),     # read-only
    (Program("p").load("r1", apic.APIC_BASE + apic.EOI, size=4), FK_APIC),       # write-only
    (Program("p").load("r1", apic.APIC_BASE + apic.TIMER_CUR, size=2), FK_APIC),  # not a 4-byte access
    (Program("p").load("r1", apic.APIC_BASE + apic.APR, size=4), FK_APIC),       # APR: not modelled
    (Program("p").apic_write(apic.SVR, 0xFF), FK_APIC),                          # software disable
    (Program("p").apic_write(apic.LVT_TIMER, 3 << 17 | VEC), FK_APIC),           # reserved timer mode
])
def test_apic_accesses_that_fault(prog, kind):
    cfg = small()
    w = Workload(cfg.cores)
    w.start(0, w.place(prog.halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (_, _, addr, k, _, _), = r.faults()
    assert k == kind and r.state[0] == FAULTED and addr & ~0xFFF == apic.APIC_BASE


def test_tsc_deadline_absent_on_machines_without_it():
    cfg = small(tsc_deadline=False)
    for prog, kind in ((Program("p").apic_write(apic.LVT_TIMER, VEC | apic.TIMER_DEADLINE << 17), FK_APIC),
                       (Program("p").wrmsr(apic.MSR_TSC_DEADLINE, 5), FK_BAD_MSR)):
        w = Workload(cfg.cores)
        w.start(0, w.place(prog.halt(), 0x1000).pc())
        m, r = both(cfg, w)
        assert [f[3] for f in r.faults()] == [kind]


def test_x2apic_msrs_read_only_or_absent_fault():
    cfg = small(mode="x2apic")
    for msr in (0x839, 0x831, 0x802, 0x803, 0x8FF):
        w = Workload(cfg.cores)
        w.start(0, w.place(Program("p").wrmsr(msr, 0).halt(), 0x1000).pc())
        m, r = both(cfg, w)
        assert [f[3] for f in r.faults()] == [FK_BAD_MSR], hex(msr)


def test_register_reads():
    cfg = dataclasses.replace(small(), apic=dataclasses.replace(small().apic, version=0x80050010))
    w = Workload(cfg.cores)
    p = (Program("p").apic_write(apic.TPR, 0x35).apic_read("r1", apic.TPR).apic_read("r2", apic.VERSION)
         .apic_read("r3", apic.PPR).apic_read("r4", apic.SVR).apic_read("r5", apic.LVT_TIMER)
         .apic_read("r6", apic.LVT_LINT0).apic_read("r7", apic.ID).apic_read("r8", apic.TMR0).halt())
    w.start(1, w.place(p, 0x1000).pc())
    m, r = both(cfg, w)
    assert r.regs[1][1:9] == [0x35, 0x80050010, 0x35, 0x1FF, apic.LVT_MASK, apic.LVT_MASK, 1 << 24, 0]


def test_tpr_holds_back_lower_classes_and_ppr_and_isr_read_back():
    cfg = small()
    w = Workload(cfg.cores)
    t = (Program("t").apic_write(apic.TPR, 0x50).sti().mark(1).compute(5000).apic_write(apic.TPR, 0)
         .compute(1000).halt())
    h = (Program("h").mark(7).apic_read("r4", apic.ISR0 + 0x20).apic_read("r5", apic.PPR).eoi().iret())
    w.start(1, w.place(t, 0x2000).pc())
    w.set_handler(1, VEC, w.place(h, 0x3000).pc())
    w.start(0, w.place(Program("s").ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    assert arrive < 5000 < taken
    assert r.regs[1][4] == 1 << (VEC - 64) and r.regs[1][5] == VEC & 0xF0


# ------------------------------------------------------------------ presets

def test_presets_timer_clock():
    """The timer's input clock: the FSB clock on intel-2x4, the 200 MHz reference clock on the Opterons."""
    for name, ghz_per_tick in (("intel-2x4", 2.66 / 8), ("amd-2x2", 0.2), ("amd-4x4", 0.2), ("amd-8x4", 0.2)):
        cfg = load_machine(name)
        tick = cfg.apic.timer_period_num / cfg.apic.timer_period_den
        assert abs(cfg.clock_ghz / tick - ghz_per_tick) < 0.005, name
        assert not cfg.apic.tsc_deadline and cfg.apic.timer_source


# ------------------------------------------------------------------ generated programs

@st.composite
def irq_machines(draw):
    cfg = draw(cpu_machines(max_cores=4))
    ap = dataclasses.replace(cfg.apic, timer_period_num=draw(st.integers(1, 30)),
                             timer_period_den=draw(st.integers(1, 4)), tsc_deadline=draw(st.booleans()))
    return dataclasses.replace(cfg, apic=ap).validate()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_engine_matches_reference_with_timers_and_long_computes(data):
    cfg = data.draw(irq_machines())
    w, words = data.draw(workloads(cfg, irq=True))
    run_both(cfg, w, words)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_stepping_in_chunks_with_timers_changes_nothing(data):
    cfg = data.draw(irq_machines())
    w, words = data.draw(workloads(cfg, irq=True))
    run_both(cfg, w, words, data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=6)))


# ------------------------------------------------------------------ interrupts in a run of register ops

def register_loop(n: int, width: int = 3) -> Program:
    """mark 3; n iterations of ``width`` register ops, the counter and the back branch; mark 4."""
    p = Program("loop").movi("r1", 0).mark(3).label("top")
    for k in range(width):
        p.add("r2", "r2", k + 1)
    p.add("r1", "r1", 1).br("lt", "r1", n, "top")
    return p.mark(4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(50, 600), at=st.integers(0, 3000), width=st.integers(1, 6), issue=st.integers(1, 4))
def test_an_ipi_interrupts_a_run_of_register_ops_at_the_first_op_boundary_after_it_arrives(n, at, width, issue):
    """The run loop executes a quiet core's register ops many at a time; another core that is due first
    still acts in between: an IPI sent meanwhile is taken at the first op boundary at or after its
    arrival, exactly as the reference takes it."""
    cfg = small(issue_width=issue)
    w = Workload(cfg.cores)
    victim = Program("v").sti()
    victim.extend(register_loop(n, width), "l")
    pc, hpc = place_with_handler(w, victim.halt(), handler(), 0x2000)
    w.start(1, pc)
    w.set_handler(1, VEC, hpc)
    w.start(0, w.place(Program("s").compute(at + 1).ipi(1, VEC).halt(), 0x1000).pc())
    m, r = both(cfg, w)
    (*_, arrive, outcome, taken), = r.ipis()
    (start,), (end,) = marks(r, 3), marks(r, 4)
    if start < arrive < end - cfg.core.alu_latency:         # arrived inside the loop
        assert outcome == DELIVERED
        (entered,) = marks(r, 7)
        assert arrive <= taken <= arrive + cfg.core.alu_latency and entered == taken + cfg.core.interrupt_entry


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(50, 600), count=st.integers(1, 800), width=st.integers(1, 6))
def test_the_timer_interrupts_a_run_of_register_ops_when_it_fires(n, count, width):
    """A one-shot timer that fires while the core runs register ops is taken at the first op boundary at or
    after it fires (the run of register ops stops for it), exactly as in the reference."""
    cfg = small()
    m, r = timer_run(cfg, Program("s").timer_oneshot(VEC, count, 1), register_loop(n, width))
    (start,), (end,) = marks(r, 3), marks(r, 4)
    entries = marks(r, 7)
    if start + count + 2 < end:      # armed before the loop began, so it fired inside it: taken before its end
        assert len(entries) == 1 and r.prog_stats[0][STAT["timer_interrupts"]] == 1
        assert entries[0] < end
