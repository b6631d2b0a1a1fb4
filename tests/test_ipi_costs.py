"""IPIs that cost what they cost, logical destinations, the ESR, and interrupt frames in memory.

Each rule of ``cpu_spec.md`` ('IPIs', 'Entering a handler', 'Other ops') has a unit test here with its
expected numbers worked out from the rule; generated programs hold the engine to the reference.
"""
from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import apic, isa
from hwmodel.config import load_machine
from hwmodel.machine import Machine
from hwmodel.workload import FAULTED, FK_DOUBLE
from tests.harness import cpu_machines
from tests.test_cpu_vs_reference import run_both

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
VEC = 0x40
COUNT = 0x30000                 # handlers count their interrupts here
STACK = 0x20000
IDT = 0x8000


def machine(busy=100, multicast="bus", mode="xapic", mmio=40, msr=40, preset="amd-2x2"):
    cfg = load_machine(preset)
    return replace(cfg, apic=replace(cfg.apic, icr_busy=busy, multicast=multicast, mode=mode),
                   core=replace(cfg.core, mmio_latency=mmio, msr_latency=msr)).validate()


def setup(cfg, main: isa.Program, others: isa.Program | None = None, handler: isa.Program | None = None):
    """main on core 0; ``others`` (default: interrupts on, idle in a spin) on every other core; ``handler``
    (default: count, EOI, IRET) for VEC on every core."""
    x2 = cfg.apic.mode == "x2apic"
    w = Machine(cfg).workload()
    if others is None:
        others = isa.Program("idle").sti().spin_until(0x31000, "ne", 0).halt()
    if handler is None:
        handler = isa.Program("h").fadd("r5", COUNT, 1).eoi(x2apic=x2).iret()
    pm = w.place(main, 0x100000)
    po = w.place(others, 0x110000)
    ph = w.place(handler, 0x120000)
    w.start(0, pm.pc())
    for c in range(1, cfg.cores):
        w.start(c, po.pc())
    for c in range(cfg.cores):
        w.set_handler(c, VEC, ph.pc())
    return w


def run(cfg, w, max_ops=20000):
    m = Machine(cfg)
    m.load_workload(w)
    m.execute(max_ops)
    return m


def release(p: isa.Program) -> isa.Program:
    """Let the idle cores finish."""
    return p.compute(3000).store(0x31000, 1).halt()


# ---------------------------------------------------------------- delivery status and send costs

def test_delivery_status_reads_busy_then_idle():
    cfg = machine(busy=200)
    p = isa.Program("m").ipi(1, VEC)
    p.load("r1", apic.APIC_BASE + apic.ICR_LOW, size=4).mark(1, "r1")     # issued 40 after the send: busy
    p.compute(300)
    p.load("r2", apic.APIC_BASE + apic.ICR_LOW, size=4).mark(2, "r2")     # long after: idle
    m = run(cfg, setup(cfg, release(p)))
    tl = {int(e[2]): int(e[3]) for e in m.timeline()}
    low = apic.encode_xapic(1, VEC)[0]
    assert tl[1] == low | apic.ICR_BUSY
    assert tl[2] == low


def test_a_second_icr_write_waits_for_the_first_send():
    busy, mmio = 300, 40
    cfg = machine(busy=busy, mmio=mmio)
    p = isa.Program("m").ipi(1, VEC).ipi(2, VEC)
    m = run(cfg, setup(cfg, release(p)))
    ipis = m.ipi_report()
    assert [r["dst"] for r in ipis] == [1, 2]
    # the ICR_HIGH write of the second send ends mmio after the first send; ICR_LOW then waits until the
    # first send is idle (sent + busy) and takes mmio more
    assert ipis[1]["sent"] == ipis[0]["sent"] + busy + mmio
    assert m.prog_stats()[0]["icr_wait_cycles"] == busy - mmio


def test_x2apic_icr_has_no_delivery_status_but_a_second_write_still_waits():
    busy, msr = 250, 30
    cfg = machine(busy=busy, msr=msr, mode="x2apic")
    p = isa.Program("m").rdtsc("r1").ipi(1, VEC, x2apic=True).ipi(2, VEC, x2apic=True)
    m = run(cfg, setup(cfg, release(p)))
    ipis = m.ipi_report()
    assert ipis[1]["sent"] == ipis[0]["sent"] + busy + msr
    assert m.prog_stats()[0]["icr_wait_cycles"] == busy


def test_init_deassert_and_illegal_vectors_send_nothing():
    cfg = machine(busy=500)
    p = isa.Program("m")
    p.store(apic.APIC_BASE + apic.ICR_HIGH, 1 << 24, size=4)
    p.store(apic.APIC_BASE + apic.ICR_LOW, 0x8500, size=4)              # INIT level de-assert
    p.load("r1", apic.APIC_BASE + apic.ICR_LOW, size=4).mark(1, "r1")   # no busy period
    p.ipi(1, 5)                                                          # fixed, vector 5: illegal
    p.load("r2", apic.APIC_BASE + apic.ESR, size=4).mark(2, "r2")       # not latched yet
    p.store(apic.APIC_BASE + apic.ESR, 0, size=4)
    p.load("r3", apic.APIC_BASE + apic.ESR, size=4).mark(3, "r3")
    p.store(apic.APIC_BASE + apic.ESR, 0, size=4)
    p.load("r4", apic.APIC_BASE + apic.ESR, size=4).mark(4, "r4")       # cleared by the latch
    m = run(cfg, setup(cfg, release(p)))
    tl = {int(e[2]): int(e[3]) for e in m.timeline()}
    assert m.ipi_report() == []
    assert tl[1] == 0x8500 and tl[2] == 0 and tl[3] == apic.ESR_SEND_ILLEGAL and tl[4] == 0


def test_ipi_to_a_missing_core_is_an_error_in_the_log():
    cfg = machine(busy=50)
    p = isa.Program("m").ipi(cfg.cores + 3, VEC).ipi(0x30, VEC, logical=True)     # nobody has LDR bits 4,5
    m = run(cfg, setup(cfg, release(p)))
    ipis = m.ipi_report()
    assert [(r["dst"], r["outcome"]) for r in ipis] == [(cfg.cores + 3, "error"), (-1, "error")]
    assert ipis[0]["at"] == ipis[0]["sent"] == ipis[0]["arrive"]
    assert m.prog_stats()[0]["ipis_sent"] == 2


def test_broadcast_bus_is_one_message_serial_one_per_target():
    busy = 120
    for multicast in ("bus", "serial"):
        cfg = machine(busy=busy, multicast=multicast, preset="amd-4x4")
        p = isa.Program("m").ipi(0, VEC, shorthand="all-but-self")
        p.rdtsc("r1").label("w").load("r2", apic.APIC_BASE + apic.ICR_LOW, size=4)
        p.alu("and", "r2", "r2", apic.ICR_BUSY).br("ne", "r2", 0, "w").rdtsc("r3").mark(1, "r1").mark(2, "r3")
        m = run(cfg, setup(cfg, release(p)))
        ipis = m.ipi_report()
        assert [r["dst"] for r in ipis] == list(range(1, cfg.cores))
        ts = ipis[0]["sent"]
        n = cfg.cores - 1
        if multicast == "bus":
            assert all(r["sent"] == ts for r in ipis)
        else:
            assert [r["sent"] for r in ipis] == [ts + busy * k for k in range(n)]
        tl = {int(e[2]): int(e[3]) for e in m.timeline()}
        assert tl[2] >= ts + busy * (n if multicast == "serial" else 1)      # idle only once all are sent
        assert all(r["outcome"] == "delivered" for r in ipis)


# ---------------------------------------------------------------- logical destinations

def lid_program(ldr: int, dfr: int) -> isa.Program:
    p = isa.Program("lid")
    p.store(apic.APIC_BASE + apic.LDR, ldr << 24, size=4).store(apic.APIC_BASE + apic.DFR, dfr, size=4)
    return p.sti().spin_until(0x31000, "ne", 0).halt()


def logical_targets(cfg, ldrs, dfr, mda, mode="fixed"):
    w = Machine(cfg).workload()
    main = isa.Program("m").compute(5000).ipi(mda, VEC, mode, logical=True)   # every LDR and DFR set by then
    main.store(apic.APIC_BASE + apic.LDR, ldrs[0] << 24, size=4)
    pm = w.place(release(main), 0x100000)
    h = w.place(isa.Program("h").eoi().iret(), 0x120000)
    w.start(0, pm.pc())
    for c in range(1, cfg.cores):
        w.start(c, w.place(lid_program(ldrs[c], dfr), 0x110000 + 0x1000 * c).pc())
    for c in range(cfg.cores):
        w.set_handler(c, VEC, h.pc())
    m = run(cfg, w)
    return [r["dst"] for r in m.ipi_report()]


def test_flat_logical_mode_delivers_to_every_matching_core():
    cfg = machine(preset="amd-4x4")                      # 16 cores
    ldrs = [0] + [1 << (c % 8) for c in range(1, 16)]
    assert logical_targets(cfg, ldrs, 0xFFFFFFFF, 0b00000110) == [1, 2, 9, 10]
    assert logical_targets(cfg, ldrs, 0xFFFFFFFF, 0xFF) == list(range(16))       # broadcast
    assert logical_targets(cfg, ldrs, 0xFFFFFFFF, 0b00000110, "lowest") == [1]    # lowest-numbered


def test_cluster_logical_mode_matches_the_cluster_then_the_bits():
    cfg = machine(preset="amd-4x4")
    ldrs = [0] + [((c // 4) << 4) | (1 << (c % 4)) for c in range(1, 16)]   # cluster c // 4, bit c % 4
    assert logical_targets(cfg, ldrs, 0x0FFFFFFF, 0x25) == [8, 10]
    assert logical_targets(cfg, ldrs, 0x0FFFFFFF, 0x3F) == [12, 13, 14, 15]


def test_logical_match_rules():
    f = apic.logical_match.py_func
    flat, cluster = 0xFFFFFFFF, 0x0FFFFFFF
    assert f(0, 0x06, 0x04 << 24, flat, 3) and not f(0, 0x06, 0x08 << 24, flat, 3)
    assert f(0, 0x21, 0x23 << 24, cluster, 3) and not f(0, 0x31, 0x21 << 24, cluster, 3)
    assert not f(0, 0x22, 0x21 << 24, cluster, 3)
    assert f(0, 0xFF, 0, flat, 5) and f(0, 0xFF, 0, cluster, 5)
    # x2APIC: cluster id >> 4, bit id & 15 (SDM 10.12.10.2)
    assert apic.x2apic_logical_id(0x23) == (2 << 16) | (1 << 3)
    assert f(1, (2 << 16) | 0b1000, 0, 0, 0x23) and not f(1, (1 << 16) | 0b1000, 0, 0, 0x23)
    assert f(1, 0xFFFFFFFF, 0, 0, 77)


def test_x2apic_logical_ipi_reaches_the_cluster_members_named():
    cfg = machine(mode="x2apic", preset="amd-8x4")         # 32 cores: clusters 0 and 1
    p = isa.Program("m").ipi((1 << 16) | 0b1010_0000_0000_0001, VEC, x2apic=True, logical=True)
    m = run(cfg, setup(cfg, release(p)))
    assert [r["dst"] for r in m.ipi_report()] == [16, 29, 31]


def test_ldr_dfr_read_back():
    cfg = machine()
    p = isa.Program("m")
    p.store(apic.APIC_BASE + apic.LDR, 0x12345678, size=4).store(apic.APIC_BASE + apic.DFR, 0x0, size=4)
    p.load("r1", apic.APIC_BASE + apic.LDR, size=4).mark(1, "r1")
    p.load("r2", apic.APIC_BASE + apic.DFR, size=4).mark(2, "r2")
    m = run(cfg, setup(cfg, release(p)))
    tl = {int(e[2]): int(e[3]) for e in m.timeline()}
    assert tl[1] == 0x12000000 and tl[2] == 0x0FFFFFFF


def test_init_resets_ldr_dfr_and_the_idt():
    """After INIT and a start-up IPI, core 1's LDR is 0, its DFR all ones and it has no IDT: an interrupt
    then uses the return stack and leaves its old stack untouched."""
    cfg = machine(busy=0)
    first = isa.Program("t").lidt(IDT).movi("sp", STACK).store(apic.APIC_BASE + apic.LDR, 0x05000000, size=4)
    first.store(apic.APIC_BASE + apic.DFR, 0, size=4).halt()
    again = isa.Program("again").load("r1", apic.APIC_BASE + apic.LDR, size=4).mark(5, "r1")
    again.load("r2", apic.APIC_BASE + apic.DFR, size=4).mark(6, "r2").movi("sp", STACK).sti()
    again.spin_until(0x31000, "ne", 0).halt()
    main = isa.Program("m").compute(3000).ipi(1, 0, "init").compute(2000).ipi(1, 9, "startup")
    main.compute(3000).ipi(1, VEC)
    w = setup(cfg, release(main), first)
    w.place(again, 9 << 12)
    m = run(cfg, w)
    tl = {int(e[2]): int(e[3]) for e in m.timeline()}
    assert tl[5] == 0 and tl[6] == 0xFFFFFFFF
    assert int.from_bytes(m.read(COUNT, 8), "little") == 1          # the interrupt was taken
    assert m.read(STACK - 64, 64) == bytes(64)                       # without a frame in memory


# ---------------------------------------------------------------- interrupt frames

def frame_setup(cfg, handler: isa.Program, sp: int = STACK + 8):
    """Core 1 runs LIDT, sets sp and spins with interrupts on; core 0 sends it VEC."""
    target = isa.Program("t").lidt(IDT).movi("sp", sp).sti().label("spin")
    target.spin_until(0x31000, "ne", 0).mark(7, "sp").halt()
    main = release(isa.Program("m").compute(200).ipi(1, VEC))
    w = setup(cfg, main, target, handler)
    return w


def test_entry_pushes_the_real_frame_and_reads_the_idt_entry():
    cfg = machine()
    w = frame_setup(cfg, isa.Program("h").halt())        # stop inside the handler to look at the frame
    m = run(cfg, w)
    new = (STACK + 8) // 16 * 16 - 40
    words = [int.from_bytes(m.read(new + 8 * k, 8), "little") for k in range(5)]
    spin_addr = 0x110000 + 4 * 3                          # the spin op: lidt, movi, sti, spin
    assert words == [spin_addr, isa.FRAME_CS, 0x202, STACK + 8, isa.FRAME_SS]
    assert int(m.cpu.regs[1, isa.SP]) == new


def test_iret_pops_the_frame_and_uses_what_it_reads():
    cfg = machine()
    # the handler rewrites the saved RIP to the op after the spin: IRET must go there, not back to the spin
    h = isa.Program("h").fadd("r5", COUNT, 1).eoi()
    h.movi("r6", 0x110000 + 4 * 4).store(0, "r6", base="sp").iret()
    w = frame_setup(cfg, h)
    m = run(cfg, w)
    tl = [(int(e[0]), int(e[2]), int(e[3])) for e in m.timeline()]
    # mark 7 ran on core 1 although DONE was never set when it left the handler
    marks = [x for x in tl if x[0] == 1 and x[1] == 7]
    assert marks and marks[0][2] == STACK + 8                        # sp restored from the frame
    assert int(m.cpu.iflag[1]) == 1                                   # IF restored from RFLAGS bit 9
    assert int.from_bytes(m.read(COUNT, 8), "little") == 1


def test_entry_with_the_stack_in_another_partition_is_a_double_fault():
    cfg = machine()
    w = frame_setup(cfg, isa.Program("h").iret(), sp=0x50000)
    w.partition(0, 0x0, 0x40000)
    w.partition(1, 0x40000, 0x60000)
    w.partition(0, 0x100000, 0x200000)
    for c in range(cfg.cores):
        w.assign(c, 0)
    m = run(cfg, w)
    f = m.faults()
    assert [(int(r[0]), int(r[3]), int(r[4])) for r in f] == [(1, FK_DOUBLE, 1)]
    assert int(m.cpu.state[1]) == FAULTED
    assert m.read(0x50000 - 48, 48) == bytes(48)                     # nothing written


def test_without_lidt_interrupts_leave_memory_alone():
    cfg = machine()
    target = isa.Program("t").movi("sp", STACK).sti().spin_until(0x31000, "ne", 0).halt()
    w = setup(cfg, release(isa.Program("m").compute(200).ipi(1, VEC)), target)
    m = run(cfg, w)
    assert m.read(STACK - 64, 64) == bytes(64)
    assert int.from_bytes(m.read(COUNT, 8), "little") == 1


def test_frames_match_the_reference():
    for mode in ("xapic", "x2apic"):
        cfg = machine(mode=mode)
        x2 = mode == "x2apic"
        target = isa.Program("t").lidt(IDT).movi("sp", STACK + 24).sti().spin_until(0x31000, "ne", 0)
        target.mark(3, "sp").halt()
        main = isa.Program("m").lidt(IDT).movi("sp", STACK + 0x800).sti()
        main.ipi(0, VEC, shorthand="all", x2apic=x2).ipi(1, VEC, x2apic=x2).compute(2000).store(0x31000, 1).halt()
        h = isa.Program("h").fadd("r5", COUNT, 1).mark(4, "sp").eoi(x2apic=x2).iret()
        w = setup(cfg, main, target, h)
        words = [STACK + 24 - 8 * k for k in range(8)] + [STACK + 0x800 - 8 * k for k in range(8)] + [COUNT]
        run_both(cfg, w, words)


# ---------------------------------------------------------------- generated programs and a property

@st.composite
def ipi_workloads(draw):
    """Cores that set logical IDs, take IDTs, and send bursts of IPIs of every shape, reading the ICR."""
    cfg = draw(cpu_machines(max_cores=8))
    x2 = cfg.apic.mode == "x2apic"
    n = cfg.cores
    w = Machine(cfg).workload()
    h = isa.Program("h").fadd("r5", COUNT, 1).mark(9, "sp").eoi(x2apic=x2).iret()
    ph = w.place(h, 0x120000)
    for c in range(n):
        p = isa.Program(f"c{c}")
        if draw(st.booleans()):
            p.lidt(IDT).movi("sp", STACK + 0x400 * c + draw(st.sampled_from([0, 8, 24])))
        if not x2:
            p.store(apic.APIC_BASE + apic.LDR, draw(st.integers(0, 255)) << 24, size=4)
            p.store(apic.APIC_BASE + apic.DFR, draw(st.sampled_from([0xFFFFFFFF, 0x0FFFFFFF])), size=4)
        p.sti()
        for _ in range(draw(st.integers(0, 6))):
            k = draw(st.sampled_from(["ipi", "ipi", "logical", "bcast", "read", "wait", "compute"]))
            if k == "ipi":
                p.ipi(draw(st.integers(0, n)), VEC, draw(st.sampled_from(["fixed", "lowest", "nmi"])), x2apic=x2)
            elif k == "logical":
                dest = ((draw(st.integers(0, 1)) << 16) | draw(st.integers(0, 0xFFFF))) if x2 else draw(st.integers(0, 255))
                p.ipi(dest, VEC, draw(st.sampled_from(["fixed", "lowest"])), x2apic=x2, logical=True)
            elif k == "bcast":
                p.ipi(0, VEC, shorthand=draw(st.sampled_from(["all", "all-but-self", "self"])), x2apic=x2)
            elif k == "read" and not x2:
                p.load("r1", apic.APIC_BASE + apic.ICR_LOW, size=4).mark(1, "r1")
            elif k == "wait" and not x2:
                p.wait_icr_idle("r2")
            else:
                p.compute(draw(st.integers(0, 200)))
        p.compute(draw(st.integers(0, 400))).halt()
        w.start(c, w.place(p, 0x100000 + 0x1000 * c).pc(), at=draw(st.integers(0, 50)))
        w.set_handler(c, VEC, ph.pc())
        w.set_handler(c, 2, ph.pc())
    words = [STACK + 0x400 * c + 24 - 8 * k for c in range(n) for k in range(8)] + [COUNT]
    return cfg, w, words


@settings(max_examples=60, **SETTINGS)
@given(ipi_workloads())
def test_engine_matches_reference_on_ipi_bursts(case):
    cfg, w, words = case
    run_both(cfg, w, words)


@settings(max_examples=40, **SETTINGS)
@given(n=st.integers(1, 6), busy=st.integers(0, 400), mmio=st.integers(0, 80), x2=st.booleans(),
       poll=st.booleans())
def test_n_serial_unicasts_cost_at_least_n_sends(n, busy, mmio, x2, poll):
    """The sender's time from before its first ICR write until its APIC is idle after the n-th is at
    least n x (the ICR write + the APIC's send time), whether it polls the ICR or lets writes wait."""
    cfg = machine(busy=busy, mmio=mmio, msr=mmio, mode="x2apic" if x2 else "xapic", preset="amd-4x4")
    p = isa.Program("m").rdtsc("r1")
    for k in range(n):
        if poll and not x2:
            p.wait_icr_idle("r3")
        p.ipi(1 + k, VEC, x2apic=x2)
    if x2:
        p.compute(busy)                  # no delivery status to poll: wait the send time out
    else:
        p.wait_icr_idle("r3")
    p.rdtsc("r2").sub("r2", "r2", "r1").mark(1, "r2")
    m = run(cfg, setup(cfg, release(p)))
    elapsed = int(m.timeline()[0][3])
    assert elapsed >= n * (mmio + busy)
    ipis = m.ipi_report()
    assert len(ipis) == n
    assert all(b["sent"] - a["sent"] >= busy for a, b in zip(ipis, ipis[1:]))
