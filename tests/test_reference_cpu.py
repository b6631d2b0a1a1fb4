"""The plain-Python core model (``hwmodel.reference_cpu``) on its own: small programs, checked by hand."""
from __future__ import annotations

import dataclasses
import struct

import pytest

from hwmodel import apic, isa
from hwmodel.config import (
    ApicConfig,
    CacheConfig,
    CoherenceConfig,
    InterconnectConfig,
    MachineConfig,
    MemoryConfig,
    load_machine,
)
from hwmodel.isa import Program
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.workload import (
    COALESCED,
    DELIVERED,
    FAULTED,
    FK_BAD_MSR,
    FK_NOT_PAGING,
    FK_NOT_PRESENT,
    FK_NOT_WRITABLE,
    FK_PARTITION,
    HALTED,
    IGNORED,
    PROG_STATS,
    RUN,
    S_ATOMICS,
    S_FAULTS,
    S_FETCH_STALL,
    S_INTERRUPTS,
    S_IPIS_SENT,
    S_LOADS,
    S_OPS,
    S_SLEEP_CYCLES,
    S_SPIN_SLEEPS,
    S_STORES,
    S_TLB_HITS,
    S_TLB_MISSES,
    S_WALK_CYCLES,
    SPIN,
    WFI,
    WFS,
    Workload,
)

FLAG, DATA, B = 0x10000, 0x10040, 0x10080


def small(packages: int = 2, cpp: int = 2, **apic_kw) -> MachineConfig:
    """A tiny 2-package machine: private L1D/L1I, a package-shared L2, a crossbar."""
    caches = (CacheConfig("L1D", 1, 1024, 2, latency=2, kind="data"),
              CacheConfig("L1I", 1, 1024, 2, latency=2, kind="instruction"),
              CacheConfig("L2", 2, 8192, 4, latency=10, sharing="package", inclusion="inclusive"))
    return MachineConfig(name="small", packages=packages, cores_per_package=cpp, clock_ghz=2.0, caches=caches,
                         coherence=CoherenceConfig("moesi", 10),
                         interconnect=InterconnectConfig("crossbar", hop_latency=30, link_latency=5),
                         memory=MemoryConfig(latency=80, occupancy=4, interleave="page"),
                         apic=ApicConfig(**apic_kw)).validate()


def u64(cpu: ReferenceCpu, addr: int) -> int:
    return struct.unpack("<Q", cpu.read(addr, 8))[0]


def run(cfg: MachineConfig, w: Workload, expect: str = "done") -> ReferenceCpu:
    cpu = ReferenceCpu(cfg)
    cpu.load_workload(w)
    assert cpu.execute() == expect
    return cpu


# ------------------------------------------------------------------ stores and SPIN

def test_store_wakes_spinner_on_other_core():
    cfg = small()
    w = Workload(cfg.cores)
    writer = Program("writer").compute(500).store(DATA, 42).store(FLAG, 1).mark(1).halt()
    waiter = (Program("waiter").spin_until(FLAG, "eq", 1, rd="r3").rdtsc("r4").load("r5", DATA)
              .mark(2, "r4").halt())
    w.start(0, w.place(writer, 0x1000).pc())
    w.start(2, w.place(waiter, 0x2000).pc())       # other package: remote coherence traffic
    cpu = run(cfg, w)
    assert cpu.state[0] == cpu.state[2] == HALTED
    assert cpu.regs[2][3] == 1 and cpu.regs[2][5] == 42
    st = cpu.prog_stats[2]
    assert st[S_SPIN_SLEEPS] == 1 and st[S_LOADS] == 3          # the SPIN twice, then the load
    assert st[S_SLEEP_CYCLES] > 0
    assert cpu.prog_stats[0][S_STORES] == 2
    (c0, t_mark, _, _), (c2, _, _, woke) = cpu.timeline()
    assert (c0, c2) == (0, 2)
    # the writer's MARK starts when its flag store completes (same I-line: no fetch stall); the waiter is woken
    # at that completion and pays its SPIN's miss before its RDTSC
    assert woke > t_mark > 500
    assert cpu.waits() == []


def test_wake_time_is_store_completion():
    """The sleeper is scheduled at the completion of the store to its line, then re-executes SPIN."""
    cfg = small()
    w = Workload(cfg.cores)
    writer = Program("writer").compute(1000).store(FLAG, 1).rdtsc("r1").halt()
    waiter = Program("waiter").spin_until(FLAG, "ne", 0).rdtsc("r1").halt()
    w.start(0, w.place(writer, 0x1000).pc())
    w.start(1, w.place(waiter, 0x2000).pc())
    cpu = ReferenceCpu(cfg)
    cpu.load_workload(w)
    slept_from = None
    while slept_from is None or cpu.state[1] == SPIN:      # until the store wakes the spinner
        assert cpu.execute(max_ops=1) == "limit"
        if cpu.state[1] == SPIN:
            slept_from = cpu.clock[1]
    woke = cpu.sched[1]
    assert cpu.execute() == "done"
    # the store missed, so it ended at its completion, where the writer's RDTSC ran (same I-line)
    assert woke == cpu.regs[0][1] > 1000 > slept_from
    assert cpu.prog_stats[1][S_SLEEP_CYCLES] == woke - slept_from
    assert cpu.regs[1][1] > woke                           # the second SPIN's miss came first


def test_miss_takes_effect_at_the_home():
    """A load that misses is in flight until its request reaches the home: last level + message."""
    cfg = small()
    w = Workload(cfg.cores)
    w.write(DATA, (77).to_bytes(8, "little"))
    w.start(2, w.place(Program("p").load("r1", DATA).halt(), 0x1000).pc())     # package 1; DATA's home is 0
    cpu = ReferenceCpu(cfg)
    cpu.load_workload(w)
    assert cpu.execute(max_ops=1) == "limit"
    t1 = cpu.prog_stats[2][S_FETCH_STALL]
    assert cpu.pc[2] == 0 and cpu.regs[2][1] == 0 and cpu.inflight[2] is not None
    assert cpu.clock[2] == t1 + 10 + (5 + 30)          # L2 latency + link + one hop
    assert cpu.prog_stats[2][S_OPS] == 1 and cpu.prog_stats[2][S_LOADS] == 0
    assert cpu.execute() == "done"
    assert cpu.regs[2][1] == 77 and cpu.prog_stats[2][S_LOADS] == 1 and cpu.prog_stats[2][S_OPS] == 2


def test_store_hit_retires_at_alu_cost():
    cfg = small()
    w = Workload(cfg.cores)
    p = Program("p").store(DATA, 1).rdtsc("r1").store(DATA + 8, 2).rdtsc("r2").halt()   # the 2nd store hits (M)
    w.start(0, w.place(p, 0x1000).pc())
    cpu = run(cfg, w)
    assert cpu.regs[0][2] - cpu.regs[0][1] == cfg.core.rdtsc_latency + cfg.core.alu_latency
    assert u64(cpu, DATA) == 1 and u64(cpu, DATA + 8) == 2


def test_issue_width_groups_register_ops():
    cfg = dataclasses.replace(small(), core=dataclasses.replace(small().core, alu_latency=3, issue_width=2))
    w = Workload(cfg.cores)
    w.start(0, w.place(Program("p").nop().nop().nop().rdtsc("r1").halt(), 0x1000).pc())
    cpu = run(cfg, w)
    assert cpu.regs[0][1] == cpu.prog_stats[0][S_FETCH_STALL] + 3 + 0 + 3


def test_deadlock_two_cores_spinning_on_each_other():
    cfg = small()
    w = Workload(cfg.cores)
    a = Program("a").spin_until(FLAG, "eq", 1).store(B, 1).halt()
    b = Program("b").spin_until(B, "eq", 1).store(FLAG, 1).halt()
    w.start(0, w.place(a, 0x1000).pc())
    w.start(1, w.place(b, 0x2000).pc())
    cpu = run(cfg, w, "deadlock")
    assert cpu.state[:2] == [SPIN, SPIN]
    assert cpu.waits() == [(0, "spin", f"line {FLAG:#x}"), (1, "spin", f"line {B:#x}")]


def test_fetch_and_add_from_all_cores():
    cfg = small()
    w = Workload(cfg.cores)
    n = 25
    for c in range(cfg.cores):
        p = Program(f"adder{c}").movi("r1", 0)
        p.label("loop").fadd("r2", DATA, c + 1).add("r1", "r1", 1).br("lt", "r1", n, "loop").halt()
        w.start(c, w.place(p, 0x1000 * (c + 1)).pc())
    cpu = run(cfg, w)
    assert u64(cpu, DATA) == n * sum(c + 1 for c in range(cfg.cores))
    assert [s[S_ATOMICS] for s in cpu.prog_stats] == [n] * cfg.cores


def test_cas_and_xchg_values():
    cfg = small()
    w = Workload(cfg.cores)
    w.write(DATA, (7).to_bytes(8, "little"))
    p = (Program("p").movi("r1", 7).movi("r2", 9).cas("r3", DATA, "r1", "r2")      # succeeds: 7 -> 9
         .cas("r4", DATA, "r1", "r2")                                            # fails: stays 9
         .xchg("r5", DATA, 0x1FF, size=1).halt())                                 # low byte only
    w.start(0, w.place(p, 0x1000).pc())
    cpu = run(cfg, w)
    assert (cpu.regs[0][3], cpu.regs[0][4], cpu.regs[0][5]) == (7, 9, 9)
    assert u64(cpu, DATA) == 0xFF


# ------------------------------------------------------------------ IPIs

def _wfi_target(w: Workload, core: int, vector: int, x2apic: bool = False):
    """Core waits for an interrupt; its handler marks 2, counts at DATA, EOIs and IRETs."""
    body = Program("target").wfi().mark(1).halt()
    h = Program("handler").mark(2).fadd("r9", DATA, 1).eoi(x2apic=x2apic).iret()
    w.start(core, w.place(body, 0x3000).pc())
    w.set_handler(core, vector, w.place(h, 0x4000).pc())


def test_xapic_fixed_ipi_runs_handler_of_core_in_wfi():
    cfg = small()
    w = Workload(cfg.cores)
    _wfi_target(w, 3, 0x40)
    w.start(0, w.place(Program("sender").compute(200).ipi(3, 0x40).halt(), 0x1000).pc())
    cpu = run(cfg, w)
    (src, dst, vec, mode, ts, arrive, outcome, ot), = cpu.ipis()
    assert (src, dst, vec, mode, outcome) == (0, 3, 0x40, apic.FIXED, DELIVERED)
    # sender and target are in different packages: one crossbar hop
    assert arrive == ts + cfg.apic.ipi_latency + 5 + 30 and ot >= arrive
    assert [e[2] for e in cpu.timeline() if e[0] == 3] == [2, 1]      # handler first, then after the WFI
    assert cpu.prog_stats[3][S_INTERRUPTS] == 1 and cpu.prog_stats[0][S_IPIS_SENT] == 1
    assert u64(cpu, DATA) == 1
    assert cpu.state[3] == HALTED and cpu.iflag[3] == 1 and cpu.isr[3] == set()


def test_x2apic_fixed_ipi():
    cfg = dataclasses.replace(small(), apic=ApicConfig(mode="x2apic", ipi_latency=100))
    w = Workload(cfg.cores)
    _wfi_target(w, 1, 0x41, x2apic=True)
    w.start(0, w.place(Program("sender").ipi(1, 0x41, x2apic=True).halt(), 0x1000).pc())
    cpu = run(cfg, w)
    (_, dst, vec, _, ts, arrive, outcome, _), = cpu.ipis()
    assert (dst, vec, outcome) == (1, 0x41, DELIVERED)
    assert arrive == ts + 100                     # same package: no message latency
    assert u64(cpu, DATA) == 1 and cpu.isr[1] == set()
    assert cpu.faults() == []


def test_xapic_msr_is_bad_in_xapic_mode():
    cfg = small()
    w = Workload(cfg.cores)
    w.start(0, w.place(Program("p").ipi(1, 0x41, x2apic=True).halt(), 0x1000).pc())
    cpu = run(cfg, w)
    assert cpu.state[0] == FAULTED and cpu.faults()[0][3] == FK_BAD_MSR
    assert cpu.ipis() == []


def test_init_then_startup_starts_core_at_vector_page():
    cfg = small()
    w = Workload(cfg.cores)
    ap = Program("ap").mark(7).movi("r1", 5).store(DATA, "r1").compute(5000).halt()   # runs past the 2nd SIPI
    w.place(ap, 0x6000)
    bsp = (Program("bsp").ipi(2, mode="init")
           .compute(2000)                       # the INIT is applied before the SIPI is sent, as software waits
           .ipi(2, 6, mode="startup")
           .compute(2000).ipi(2, 6, mode="startup")   # a second SIPI finds the core running: ignored
           .halt())
    w.start(0, w.place(bsp, 0x1000).pc())
    cpu = run(cfg, w)
    outs = [(m, o) for (_, _, _, m, _, _, o, _) in cpu.ipis()]
    assert outs == [(apic.INIT, DELIVERED), (apic.STARTUP, DELIVERED), (apic.STARTUP, IGNORED)]
    assert cpu.state[2] == HALTED and cpu.mode[2] == isa.REAL
    assert u64(cpu, DATA) == 5
    assert [e[:1] + e[2:] for e in cpu.timeline()] == [(2, 7, 0)]
    assert cpu.timeline()[0][1] >= cpu.ipis()[1][5]       # ran after the SIPI arrived


def test_startup_right_behind_init_is_not_lost():
    """INIT and SIPI both in flight: the step that applies INIT ends with a wake check for the SIPI."""
    cfg = small()
    w = Workload(cfg.cores)
    w.place(Program("ap").mark(7).halt(), 0x6000)
    w.start(0, w.place(Program("bsp").ipi(1, mode="init").ipi(1, 6, mode="startup").halt(), 0x1000).pc())
    cpu = run(cfg, w)
    (_, _, _, _, _, a_init, o1, t1), (_, _, _, _, _, a_sipi, o2, t2) = cpu.ipis()
    assert (o1, o2) == (DELIVERED, DELIVERED) and (t1, t2) == (a_init, a_sipi) and a_sipi > a_init
    assert cpu.timeline() == [(1, a_sipi + cpu.prog_stats[1][S_FETCH_STALL], 7, 0)]
    assert cpu.state[1] == HALTED


def test_init_resets_a_running_core():
    cfg = small()
    w = Workload(cfg.cores)
    w.start(1, w.place(Program("victim").movi("r1", 3).label("l").jmp("l"), 0x2000).pc())
    w.start(0, w.place(Program("p").ipi(1, mode="init").halt(), 0x1000).pc())
    cpu = run(cfg, w)
    assert cpu.state[1] == WFS and cpu.regs[1][1] == 0 and cpu.mode[1] == isa.REAL


def test_coalesced_fixed_ipi():
    cfg = small()
    w = Workload(cfg.cores)
    target = Program("t").compute(5000).sti().nop().nop().halt()      # IF = 0 while both IPIs arrive
    h = Program("h").fadd("r9", DATA, 1).eoi().iret()
    w.start(1, w.place(target, 0x2000).pc())
    w.set_handler(1, 0x50, w.place(h, 0x3000).pc())
    w.start(0, w.place(Program("s").ipi(1, 0x50).ipi(1, 0x50).halt(), 0x1000).pc())
    cpu = run(cfg, w)
    outcomes = [r[6] for r in cpu.ipis()]
    assert outcomes == [DELIVERED, COALESCED]
    assert cpu.prog_stats[1][S_INTERRUPTS] == 1 and u64(cpu, DATA) == 1
    # both were accepted when they arrived, during the COMPUTE (IF = 0: it went on); the first was taken after it
    assert cpu.ipis()[1][7] == cpu.ipis()[1][5] < 5000 < cpu.ipis()[0][7]


def test_ipi_to_core_with_interrupts_off_does_not_wake_it():
    cfg = small()
    w = Workload(cfg.cores)
    w.start(1, w.place(Program("t").spin_until(FLAG, "eq", 1).halt(), 0x2000).pc())   # IF = 0
    w.start(0, w.place(Program("s").ipi(1, 0x60).halt(), 0x1000).pc())
    cpu = run(cfg, w, "deadlock")
    assert cpu.ipis()[0][6] == 0            # still pending: never applied
    assert cpu.waits() == [(1, "spin", f"line {FLAG:#x}")]


# ------------------------------------------------------------------ partitions and faults

def test_partition_violation_lands_nothing():
    cfg = small()
    w = Workload(cfg.cores)
    w.partition(0, 0x10000, 0x20000)
    w.partition(1, 0x20000, 0x30000)
    w.assign(0, 0)
    w.assign(1, 0)
    w.grant(0, 0x21000, 0x22000)
    w.start(0, w.place(Program("p").store(0x1FFFC, -1).halt(), 0x1000).pc())   # straddles into kernel 1
    w.start(1, w.place(Program("q").store(0x21000, 9).store(0x20000, 9).halt(), 0x2000).pc())
    cpu = run(cfg, w)
    assert cpu.read(0x1FFF8, 16) == bytes(16)                 # nothing of the first chunk landed
    assert cpu.state[0] == cpu.state[1] == FAULTED
    f0, f1 = sorted(cpu.faults())
    assert f0[0] == 0 and f0[2] == 0x20000 and f0[3] == FK_PARTITION and f0[4] == 1
    assert f1[0] == 1 and f1[2] == 0x20000 and f1[3] == FK_PARTITION and f1[4] == 1
    assert u64(cpu, 0x21000) == 9                             # granted
    assert cpu.prog_stats[0][S_FAULTS] == 1 and cpu.prog_stats[0][S_OPS] == 1


def test_fault_traps_to_handler_13():
    cfg = small()
    w = Workload(cfg.cores)
    w.partition(1, 0x20000, 0x30000)
    w.assign(0, 0)
    p = Program("p").store(0x20000, 1).mark(1).halt()
    h = Program("gp").mark(13).halt()
    w.start(0, w.place(p, 0x1000).pc())
    w.set_handler(0, 13, w.place(h, 0x2000).pc())
    cpu = run(cfg, w)
    (_, _, _, _, _, t_fault), = cpu.faults()
    (_, t_mark, ev, _), = cpu.timeline()
    assert ev == 13 and t_mark >= t_fault + cfg.core.interrupt_entry
    assert cpu.rstack[0] == [(0, 0, 0)]                      # would return to the faulting store (no compute left)


# ------------------------------------------------------------------ paging

PML4, PDPT, PD, PT = 0x100000, 0x101000, 0x102000, 0x103000


def _page_tables(w: Workload) -> None:
    ent = lambda addr, flags=3: (addr | flags).to_bytes(8, "little")
    w.write(PML4 + 0 * 8, ent(PDPT))
    w.write(PDPT + 0 * 8, ent(PD))
    w.write(PD + 2 * 8, ent(PT))                    # va 0x400000..: 4 KiB pages
    w.write(PD + 3 * 8, ent(0x800000, 0x83))        # va 0x600000: a 2 MiB page at 0x800000
    w.write(PT + 0 * 8, ent(0x200000))              # va 0x400000 -> 0x200000
    w.write(PT + 1 * 8, ent(0x201000, 1))           # va 0x401000 -> 0x201000, read-only
    w.write(0x200008, (0x1234).to_bytes(8, "little"))
    w.write(0x300008, (0x9999).to_bytes(8, "little"))
    w.write(0x800010 + 0x1000, (0x5678).to_bytes(8, "little"))


def test_page_walk_tlb_and_invlpg():
    cfg = small()
    w = Workload(cfg.cores)
    _page_tables(w)
    p = (Program("p").wrcr3(PML4)
         .load("r1", 0x400008, virt=True)                   # 4 KiB page: walk
         .load("r2", 0x601010, virt=True)                   # 2 MiB page: walk
         .load("r6", 0x400008, virt=True)                   # TLB hit
         .store(PT, 0x300000 | 3)                            # the PTE now points elsewhere...
         .load("r3", 0x400008, virt=True)                   # ...but the TLB entry is stale
         .invlpg(0x400000)
         .load("r4", 0x400008, virt=True)                   # walk again: the new page
         .store(0x401000, 1, virt=True)                      # read-only page
         .halt())
    w.start(0, w.place(p, 0x1000).pc())
    cpu = run(cfg, w)
    r = cpu.regs[0]
    assert (r[1], r[2], r[6], r[3], r[4]) == (0x1234, 0x5678, 0x1234, 0x1234, 0x9999)
    st = cpu.prog_stats[0]
    assert (st[S_TLB_MISSES], st[S_TLB_HITS]) == (4, 2)
    assert st[S_WALK_CYCLES] > 0
    (core, _pc, addr, kind, owner, _), = cpu.faults()
    assert (core, addr, kind, owner) == (0, 0x401000, FK_NOT_WRITABLE, -1)
    assert cpu.state[0] == FAULTED and u64(cpu, 0x201000) == 0


def test_not_present_and_not_paging():
    cfg = small()
    w = Workload(cfg.cores)
    _page_tables(w)
    w.start(0, w.place(Program("p").wrcr3(PML4).load("r1", 0xA00000, virt=True).halt(), 0x1000).pc())
    w.start(1, w.place(Program("q").load("r1", 0x400008, virt=True).halt(), 0x2000).pc(), mode=isa.PROTECTED)
    cpu = run(cfg, w)
    kinds = sorted((f[0], f[2], f[3]) for f in cpu.faults())
    assert kinds == [(0, 0xA00000, FK_NOT_PRESENT), (1, 0x400008, FK_NOT_PAGING)]
    assert cpu.prog_stats[1][S_TLB_MISSES] == 0


# ------------------------------------------------------------------ resuming

def _busy_workload(cfg: MachineConfig) -> Workload:
    w = Workload(cfg.cores)
    _wfi_target(w, 3, 0x40)
    for c in range(3):
        p = Program(f"adder{c}").movi("r1", 0)
        p.label("loop").fadd("r2", DATA, 1).add("r1", "r1", 1).br("lt", "r1", 6, "loop")
        if c == 0:
            p.spin_until(DATA, "geu", 18).ipi(3, 0x40)
        p.halt()
        w.start(c, w.place(p, 0x5000 + 0x1000 * c).pc())
    return w


def _snapshot(cpu: ReferenceCpu) -> tuple:
    return (cpu.regs, cpu.pc, cpu.state, cpu.iflag, list(cpu.clock), cpu.ipis(), cpu.faults(), cpu.timeline(),
            cpu.prog_stats, cpu.read(DATA, 8), cpu.mem.stats(), cpu.mem.directory(), cpu.ops_executed)


@pytest.mark.parametrize("chunk", [1, 7])
def test_limit_then_resume_matches_one_run(chunk):
    cfg = small()
    whole = run(cfg, _busy_workload(cfg))
    part = ReferenceCpu(cfg)
    part.load_workload(_busy_workload(cfg))
    calls = 0
    while (status := part.execute(max_ops=chunk)) == "limit":
        calls += 1
    assert status == "done" and calls >= whole.ops_executed // chunk - 1
    assert _snapshot(part) == _snapshot(whole)
    assert u64(whole, DATA) == 19 and len(PROG_STATS) == len(whole.prog_stats[0])


def test_preset_machine_runs():
    """amd-4x4 (16 cores): an IPI across the square, and a sleeper's idle time."""
    cfg = load_machine("amd-4x4")
    w = Workload(cfg.cores)
    _wfi_target(w, 15, 0x40)
    w.start(0, w.place(Program("s").ipi(15, 0x40).halt(), 0x1000).pc())
    cpu = run(cfg, w)
    (_, _, _, _, ts, arrive, outcome, _), = cpu.ipis()
    ic = cfg.interconnect
    assert outcome == DELIVERED and arrive == ts + cfg.apic.ipi_latency + ic.link_latency + 2 * ic.hop_latency
    assert cpu.prog_stats[15][S_SLEEP_CYCLES] > 0
    assert all(s in (WFS, HALTED) for s in cpu.state) and RUN not in cpu.state and WFI not in cpu.state
