"""Shared test harness: hypothesis strategies for machines and multi-core traces."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from hwmodel.config import (CacheConfig, CoherenceConfig, InterconnectConfig, MachineConfig,
                            MemoryConfig)

LINE = 64


@st.composite
def machines(draw, max_cores: int = 8) -> MachineConfig:
    """Small random machines: tiny caches so that evictions and conflicts are frequent."""
    choices = [(p, c) for p in (1, 2, 4) for c in (1, 2, 4) if p * c <= max_cores]
    packages, cpp = draw(st.sampled_from(choices))
    cores = packages * cpp

    def geom(name, level, sharing, kind="unified", incl="non-inclusive"):
        sets = draw(st.sampled_from([1, 2, 4]))
        ways = draw(st.integers(1, 4))
        return CacheConfig(name=name, level=level, size=sets * ways * LINE, ways=ways, line=LINE,
                           latency=draw(st.integers(1, 6)) + 6 * (level - 1), sharing=sharing, kind=kind,
                           inclusion=incl, replacement=draw(st.sampled_from(["lru", "fifo", "random"])))

    caches = [geom("L1D", 1, "private", "data")]
    if draw(st.booleans()):
        caches.append(geom("L1I", 1, "private", "instruction"))
    level = 2
    if draw(st.booleans()):
        caches.append(geom("L2", 2, "private", incl=draw(st.sampled_from(["inclusive", "non-inclusive"]))))
        level = 3
    shar = ["global"] + (["package"] if cpp > 1 else []) + (["pair"] if cpp % 2 == 0 else [])
    nshared = draw(st.integers(0, 2))
    used = []
    for i in range(nshared):
        opts = [s for s in shar if not used or
                {"pair": 2, "package": cpp, "global": cores}[s] % {"pair": 2, "package": cpp, "global": cores}[used[-1]] == 0
                and {"pair": 2, "package": cpp, "global": cores}[s] >= {"pair": 2, "package": cpp, "global": cores}[used[-1]]]
        opts = [s for s in opts if s not in used]
        if not opts:
            break
        s = draw(st.sampled_from(opts))
        used.append(s)
        caches.append(geom(f"L{level}", level, s, incl=draw(st.sampled_from(["inclusive", "non-inclusive"]))))
        level += 1
    topo = draw(st.sampled_from(["bus", "crossbar", "ring", "mesh2d"] + (["ht-square"] if packages == 4 else [])))
    cfg = MachineConfig(
        name="random", packages=packages, cores_per_package=cpp, clock_ghz=2.0, caches=tuple(caches),
        coherence=CoherenceConfig(protocol=draw(st.sampled_from(["mesi", "moesi"])),
                                  directory_latency=draw(st.integers(0, 20)),
                                  home_occupancy=draw(st.integers(0, 15))),
        interconnect=InterconnectConfig(topology=topo, hop_latency=draw(st.integers(0, 40)),
                                        link_latency=draw(st.integers(0, 60))),
        memory=MemoryConfig(latency=draw(st.integers(0, 200)), occupancy=draw(st.integers(0, 30)),
                            size=packages * 4096 * 16, interleave=draw(st.sampled_from(["node", "line", "page"]))),
    )
    return cfg.validate()


@st.composite
def traces(draw, cores: int, max_len: int = 120, max_lines: int = 24):
    """(core, kind, addr, size) arrays: few distinct lines, so sharing and evictions are heavy."""
    n = draw(st.integers(1, max_len))
    nlines = draw(st.integers(1, max_lines))
    core = draw(st.lists(st.integers(0, cores - 1), min_size=n, max_size=n))
    kind = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    line = draw(st.lists(st.integers(0, nlines - 1), min_size=n, max_size=n))
    off = draw(st.lists(st.integers(0, LINE - 1), min_size=n, max_size=n))
    size = draw(st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=n, max_size=n))
    spread = draw(st.sampled_from([1, 7, 4096 // LINE, 1 << 20]))  # lines far apart hit other homes/sets
    addr = [(l * spread) * LINE + o for l, o in zip(line, off)]
    return (np.array(core, np.int64), np.array(kind, np.int64), np.array(addr, np.int64),
            np.array(size, np.int64))


# ---------------------------------------------------------------- programs for cores

VECTORS = (0x30, 0x41, 0x52)
DATA_PAGES = (0x10000, 0x11000, 0x12000, 0x13000)
PT_BASE = 0x1000                       # PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000
VIRT_4K = 0x400000                     # 4 KiB pages: VIRT_4K + i*4096 -> DATA_PAGES[i]
VIRT_2M = 0x40000000                   # one 2 MiB page -> 0x200000
IDT_BASE = 0x300000                    # LIDT targets and interrupt stacks (frames land in the snapshot's words)
STACK_TOP = 0x310000


def page_table_bytes(writable_mask: int = 0xF) -> list[tuple[int, bytes]]:
    """A small x86-64 page table: 4 KiB pages over DATA_PAGES (writable per bit), one 2 MiB page."""
    def ent(addr, flags):
        return (addr | flags).to_bytes(8, "little")
    pml4 = bytearray(4096)
    pdpt = bytearray(4096)
    pd = bytearray(4096)
    pt = bytearray(4096)
    pml4[0:8] = ent(0x2000, 3)
    pdpt[0:8] = ent(0x3000, 3)                     # va 0 .. 1 GiB
    pdpt[8:16] = ent(0x5000, 3)                    # va 1 GiB .. 2 GiB (the 2 MiB page)
    pd[2 * 8:3 * 8] = ent(0x4000, 3)               # va 0x400000: the 4 KiB table
    pt_pd2 = bytearray(4096)
    pt_pd2[0:8] = ent(0x200000, 3 | 0x80)          # 2 MiB page at va 0x40000000
    for i, pa in enumerate(DATA_PAGES):
        pt[i * 8:(i + 1) * 8] = ent(pa, 1 | (2 if (writable_mask >> i) & 1 else 0))
    return [(0x1000, bytes(pml4)), (0x2000, bytes(pdpt)), (0x3000, bytes(pd)), (0x4000, bytes(pt)),
            (0x5000, bytes(pt_pd2))]


@st.composite
def cpu_machines(draw, max_cores: int = 8):
    """``machines()`` plus random core costs, a tiny TLB and either APIC mode."""
    from dataclasses import replace

    from hwmodel.config import ApicConfig, CoreConfig
    cfg = draw(machines(max_cores))
    ways = draw(st.sampled_from([1, 2]))
    core = CoreConfig(alu_latency=draw(st.integers(0, 2)), atomic_latency=draw(st.integers(0, 9)),
                      rdtsc_latency=draw(st.integers(0, 9)), msr_latency=draw(st.integers(0, 20)),
                      mmio_latency=draw(st.integers(0, 20)), interrupt_entry=draw(st.integers(0, 40)),
                      iret_latency=draw(st.integers(0, 20)), invlpg_latency=draw(st.integers(0, 9)),
                      cr3_latency=draw(st.integers(0, 9)), tlb_entries=ways * draw(st.sampled_from([1, 2])),
                      issue_width=draw(st.integers(1, 4)), spin_wake_latency=draw(st.integers(0, 30)),
                      tlb_ways=ways, lidt_latency=draw(st.integers(0, 9)))
    apic = ApicConfig(mode=draw(st.sampled_from(["xapic", "x2apic"])), ipi_latency=draw(st.integers(0, 60)),
                      icr_busy=draw(st.sampled_from([0, 5, 30, 90])), multicast=draw(st.sampled_from(["bus", "serial"])))
    return replace(cfg, core=core, apic=apic).validate()


@st.composite
def workloads(draw, cfg, max_ops: int = 14, irq: bool = False):
    """Random programs on random cores: memory ops (physical and virtual, some straddling lines and
    pages), atomics, spin-waits, IPIs of every kind, handlers, WFI, TLB ops, partitions.  ``irq`` adds long
    COMPUTEs (interruptible), the APIC timer in every mode, APIC register reads, TPR writes, faulting APIC
    accesses, and handlers that re-enable interrupts (nesting)."""
    from hwmodel import isa
    from hwmodel.workload import Workload
    x2 = cfg.apic.mode == "x2apic"
    ncores = cfg.cores
    w = Workload(ncores)
    for a, b in page_table_bytes(draw(st.integers(0, 15))):
        w.write(a, b)
    nwords = draw(st.integers(1, 6))
    words = [draw(st.sampled_from(DATA_PAGES)) + draw(st.integers(0, 4095 - 8)) for _ in range(nwords)]
    words += [0x4000 + 8 * draw(st.integers(0, 3))]                 # a PTE: stale-TLB material
    words += [DATA_PAGES[0] + 4096 - 4]                              # straddles into the next page
    words += [STACK_TOP - 8 * i for i in range(1, 13)] + [DATA_PAGES[2] + 4096 - 8 * i for i in range(1, 6)]
    for a in words[:3]:
        w.write(a, draw(st.integers(0, 3)).to_bytes(8, "little"))

    extra = ["lcompute", "lcompute", "timer", "timer", "apicrd", "tpr", "apicbad"] if irq else []
    hextra = ["lcompute", "sti", "timer", "apicrd"] if irq else []

    def body(p: isa.Program, depth: int, n: int, handler: bool):
        for _ in range(n):
            k = draw(st.sampled_from(["load", "store", "fadd", "xchg", "cas", "spin", "vload", "vstore",
                                      "ipi", "compute", "alu", "br", "mark", "rdtsc", "wfi", "tlb", "cli",
                                      "sti", "apic", "lidt", "sp", "ipi"] + extra if not handler else
                                     ["load", "store", "fadd", "spin", "ipi", "compute", "mark", "vload"] + hextra))
            reg = f"r{draw(st.integers(1, 3)) + (4 if handler else 0)}"
            size = draw(st.sampled_from([1, 2, 4, 8]))
            a = draw(st.sampled_from(words))
            if k == "load":
                p.load(reg, a, size)
            elif k == "store":
                p.store(a, draw(st.one_of(st.integers(-5, 5), st.just(reg))), size)
            elif k == "fadd":
                p.fadd(reg, a, draw(st.integers(1, 3)), size)
            elif k == "xchg":
                p.xchg(reg, a, reg, size)
            elif k == "cas":
                p.cas(reg, a, f"r{draw(st.integers(1, 3))}", reg, size)
            elif k == "spin":
                a &= ~7
                p.spin_until(a, draw(st.sampled_from(["eq", "ne", "geu"])), draw(st.integers(0, 3)), rd=reg)
            elif k in ("vload", "vstore"):
                if draw(st.booleans()):
                    va = VIRT_4K + draw(st.integers(0, 5)) * 4096 + draw(st.integers(0, 4095))
                else:
                    va = VIRT_2M + draw(st.integers(0, (1 << 21) - 1))
                if draw(st.integers(0, 9)) == 0:
                    va = 1 << 47                                        # non-canonical
                if k == "vload":
                    p.load(reg, va, size, virt=True)
                else:
                    p.store(va, reg, size, virt=True)
            elif k == "ipi":
                mode = draw(st.sampled_from(["fixed", "fixed", "fixed", "nmi", "init", "startup", "lowest"]))
                sh = draw(st.sampled_from(["none", "none", "none", "self", "all", "all-but-self"]))
                logical = sh == "none" and draw(st.integers(0, 2)) == 0
                dest = draw(st.integers(0, ncores))       # ncores: an id nobody has
                if logical:
                    dest = draw(st.sampled_from([0xFFFFFFFF, (draw(st.integers(0, 1)) << 16) | draw(st.integers(0, 0xFFFF))])
                                if x2 else st.integers(0, 0xFF))
                vec = draw(st.sampled_from(VECTORS + (5,))) if mode != "startup" else draw(st.sampled_from([6, 7, 9]))
                if draw(st.booleans()) and not x2:
                    p.wait_icr_idle(reg)
                p.ipi(dest, vec, mode, sh, x2apic=x2, logical=logical)
            elif k == "compute":
                p.compute(draw(st.integers(0, 50)))
            elif k == "alu":
                p.alu(draw(st.sampled_from(["add", "sub", "mul", "and", "or", "xor", "shl", "shr"])), reg,
                      f"r{draw(st.integers(0, 3))}", draw(st.one_of(st.integers(-9, 70), st.just("r2"))))
            elif k == "br":
                lab = f"l{len(p.ops)}_{depth}"
                p.br(draw(st.sampled_from(list(isa.CONDS))), reg, draw(st.integers(-2, 3)), lab)
                body(p, depth + 1, draw(st.integers(0, 2)), handler)
                p.label(lab)
            elif k == "mark":
                p.mark(draw(st.integers(0, 5)), reg)
            elif k == "rdtsc":
                p.rdtsc(reg)
            elif k == "wfi":
                p.wfi()
            elif k == "tlb":
                c = draw(st.integers(0, 2))
                if c == 0:
                    p.invlpg(VIRT_4K + draw(st.integers(0, 3)) * 4096)
                elif c == 1:
                    p.wrcr3(PT_BASE)
                else:
                    p.mode(isa.LONG)
            elif k == "apic":                   # logical-destination and error registers, ICR delivery status
                from hwmodel import apic as ap
                if x2:
                    p.wrmsr(isa.MSR_X2APIC_ESR, draw(st.sampled_from([0, 0, 1])))
                else:
                    off = draw(st.sampled_from([ap.LDR, ap.DFR, ap.ESR, ap.ICR_LOW]))
                    if draw(st.booleans()) and off != ap.ICR_LOW:
                        v = {ap.LDR: draw(st.integers(0, 255)) << 24, ap.DFR: draw(st.sampled_from([0xFFFFFFFF, 0x0FFFFFFF])),
                             ap.ESR: 0}[off]
                        p.store(ap.APIC_BASE + off, v, size=4)
                    else:
                        p.load(reg, ap.APIC_BASE + off, size=4)
            elif k == "lidt":
                p.lidt(draw(st.sampled_from([IDT_BASE, DATA_PAGES[1]])))
            elif k == "sp":
                p.movi("sp", draw(st.sampled_from([STACK_TOP, STACK_TOP - 8, DATA_PAGES[2] + 4096, DATA_PAGES[3] + 8, 0])))
            elif k == "cli":
                p.cli()
            elif k == "sti":
                p.sti()
            else:
                irq_op(p, k, reg)

    def irq_op(p: isa.Program, k: str, reg: str):
        from hwmodel import apic
        if k == "lcompute":
            if draw(st.booleans()):
                p.compute(draw(st.integers(50, 3000)))
            else:
                p.movi(reg, draw(st.integers(-5, 3000)))
                p.compute(reg)
        elif k == "timer":
            vec = draw(st.sampled_from(VECTORS + (0x30, 8)))     # 8: an illegal vector, never latched
            masked = draw(st.integers(0, 5)) == 0
            how = draw(st.sampled_from(["oneshot", "periodic", "deadline", "stop", "div"]))
            if how == "deadline" and not cfg.apic.tsc_deadline:
                how = "oneshot"
            count = draw(st.integers(0, 300))
            divide = draw(st.sampled_from([1, 1, 2, 4, 128]))
            lvt = vec | (apic.LVT_MASK if masked else 0)
            if how == "oneshot":
                p.apic_write(apic.TIMER_DIV, apic.divide_config(divide), x2)
                p.apic_write(apic.LVT_TIMER, lvt, x2)
                p.apic_write(apic.TIMER_INIT, count, x2)
            elif how == "periodic":
                p.apic_write(apic.TIMER_DIV, apic.divide_config(divide), x2)
                p.apic_write(apic.LVT_TIMER, lvt | (apic.TIMER_PERIODIC << 17), x2)
                p.apic_write(apic.TIMER_INIT, max(count, 20), x2)
            elif how == "deadline":
                p.apic_write(apic.LVT_TIMER, lvt | (apic.TIMER_DEADLINE << 17), x2)
                if draw(st.booleans()):
                    p.rdtsc(reg)
                    p.add(reg, reg, draw(st.integers(-50, 600)))
                    p.wrmsr(apic.MSR_TSC_DEADLINE, reg)
                else:
                    p.wrmsr(apic.MSR_TSC_DEADLINE, draw(st.sampled_from([0, 1, 500, 1 << 60])))
            elif how == "stop":
                p.apic_write(apic.TIMER_INIT, 0, x2)
            else:
                p.apic_write(apic.TIMER_DIV, apic.divide_config(divide), x2)
        elif k == "apicrd":
            if not x2:
                p.apic_read(reg, draw(st.sampled_from([apic.TIMER_CUR, apic.TIMER_CUR, apic.PPR, apic.TPR,
                                                       apic.ISR0 + 0x30, apic.IRR0 + 0x20, apic.LVT_TIMER,
                                                       apic.VERSION, apic.SVR])))
        elif k == "tpr":
            p.apic_write(apic.TPR, draw(st.sampled_from([0, 0, 0x10, 0x40, 0x45, 0x60])), x2)
        else:                                   # faults: a reserved offset, a read-only register, a disable
            bad = draw(st.sampled_from(["reserved", "version", "svr", "eoi-read", "byte", "cur", "ok", "ok", "ok"]))
            if bad == "ok":                     # (mostly) a harmless write instead: faults end most runs early
                p.apic_write(apic.LVT_LINT0, draw(st.integers(0, 0x1FFFF)), x2)
            elif x2:
                p.wrmsr(draw(st.sampled_from([0x839, 0x831, 0x803, 0x80F])), 0)
            elif bad == "reserved":
                p.store(apic.APIC_BASE + 0x3F0, 1, size=4)
            elif bad == "version":
                p.store(apic.APIC_BASE + apic.VERSION, 1, size=4)
            elif bad == "svr":
                p.apic_write(apic.SVR, 0xFF)
            elif bad == "eoi-read":
                p.load(reg, apic.APIC_BASE + apic.EOI, size=4)
            elif bad == "byte":
                p.load(reg, apic.APIC_BASE + apic.TIMER_CUR, size=1)
            else:
                p.store(apic.APIC_BASE + apic.TIMER_CUR, 5, size=4)

    # a loop makes spin-waits and IPIs interleave with more traffic
    def program(name: str, handler: bool) -> isa.Program:
        p = isa.Program(name)
        if handler:
            body(p, 0, draw(st.integers(0, 3)), True)
            p.eoi(x2apic=x2)
            p.iret()
            return p
        if draw(st.integers(0, 9)) > 0:
            p.wrcr3(PT_BASE)
        if draw(st.integers(0, 9)) < (8 if irq else 5):
            p.sti()
        loops = draw(st.integers(1, 2))
        p.movi("r9", loops)
        p.label("top")
        body(p, 0, draw(st.integers(1, max_ops)), False)
        if irq:                                 # time for timers and IPIs to arrive during a compute
            p.compute(draw(st.integers(0, 6000)))
        p.sub("r9", "r9", 1)
        p.br("ne", "r9", 0, "top")
        p.halt()
        return p

    nstart = draw(st.integers(1, ncores))
    started = draw(st.permutations(range(ncores)))[:nstart]
    for i, core in enumerate(started):
        pl = w.place(program(f"core{core}", False), 0x100000 + 0x1000 * i)
        w.start(core, pl.pc(), at=draw(st.integers(0, 30)))
    for vi, vec in enumerate(VECTORS + (2, 13, 14)):
        if draw(st.integers(0, 3)) > 0:
            hp = w.place(program(f"h{vec}", True), 0x500000 + 0x1000 * vi)
            for core in range(ncores):
                w.set_handler(core, vec, hp.pc())
    for vec in (6, 7):                       # start-up targets (0x9000 has no code)
        sp = isa.Program(f"sipi{vec}")
        body(sp, 0, draw(st.integers(0, 3)), False)
        sp.halt()
        w.place(sp, vec << 12)
    if not irq and draw(st.booleans()):      # partitions: up to 2 kernels over the data pages
        for i, pg in enumerate(DATA_PAGES + (0x200000,)):
            if draw(st.integers(0, 3)) > 0:
                w.partition(draw(st.integers(0, 1)), pg, pg + (0x200000 if pg == 0x200000 else 0x1000))
        if draw(st.booleans()):
            pg = draw(st.sampled_from(DATA_PAGES))
            w.grant(draw(st.integers(0, 1)), pg, pg + 0x1000)
        for core in range(ncores):
            w.assign(core, draw(st.integers(-1, 1)))
    return w, words
