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

VECTORS = (0x30, 0x41, 0x52, 0x3C)         # 0x3C: the priority class of 0x30
DATA_PAGES = (0x10000, 0x11000, 0x12000, 0x13000)
PT_BASE = 0x1000                       # PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000, 2 MiB PD 0x5000
PTE_4K = 0x4000                        # the PTE of VIRT_4K + i*4096 is at PTE_4K + 8*i
PDE_2M = 0x5000                        # the PD entry of VIRT_2M + k*2 MiB is at PDE_2M + 8*k
VIRT_4K = 0x400000                     # 4 KiB pages: VIRT_4K + i*4096 -> DATA_PAGES[i] (i < 4; 4, 5 absent)
VIRT_2M = 0x40000000                   # 2 MiB pages: VIRT_2M + k*2 MiB -> FRAMES_2M[k]
BIG = 1 << 21
FRAMES_2M = (0x200000, 0x800000)
HOT_2M = (0x0, 0x38, 0x1FFC, 0x7FF8, BIG - 4)   # offsets in a 2 MiB page (4 KiB and 2 MiB straddles)
PT_PAGES = (0x1000, 0x6000)            # [lo, hi) of the page tables
CLEAN_BASE = 0xA000                    # a second, pristine set of tables (all writable, no page absent)
SHARED_PAGE = 0x8000                   # spin flags and the fault counter; granted to every kernel
SPIN_WORDS = (0x8000, 0x8008, 0x8040)
FAULT_COUNT = 0x8080                   # faults taken so far (all cores): handlers stop the core past FAULT_CAP
FAULT_CAP = 2
IPI_COUNT = 0x80C0                     # IPIs sent by handlers: none past IPI_CAP (no endless interrupt storms)
IPI_CAP = 4
HANDLER_BASE = 0x500000                # handler of HANDLER_VECTORS[i] at HANDLER_BASE + 0x1000 * i
HANDLER_VECTORS = VECTORS + (2, 13, 14)
IDT_BASE = 0x300000                    # LIDT targets and interrupt stacks (frames land in the snapshot's words)
STACK_TOP = 0x310000


def _ent(addr: int, flags: int) -> bytes:
    return (addr | flags).to_bytes(8, "little")


def page_table_bytes(writable_mask: int = 0xF, big_writable: int = 0x3, base: int = PT_BASE,
                     aliases: bool = False) -> list[tuple[int, bytes]]:
    """A small x86-64 page table at ``base`` (PML4, PDPT, PD, PT, 2 MiB PD in five pages): 4 KiB pages
    over DATA_PAGES (writable per bit of ``writable_mask``), two 2 MiB pages over FRAMES_2M (writable per
    bit of ``big_writable``); with ``aliases`` the next two 4 KiB pages map DATA_PAGES[0] and [1] again.
    At PT_BASE its PTEs are at PTE_4K and its 2 MiB entries at PDE_2M."""
    pml4, pdpt, pd, pt, pd2 = (bytearray(4096) for _ in range(5))
    pml4[0:8] = _ent(base + 0x1000, 3)
    pdpt[0:8] = _ent(base + 0x2000, 3)             # va 0 .. 1 GiB
    pdpt[8:16] = _ent(base + 0x4000, 3)            # va 1 GiB .. 2 GiB (the 2 MiB pages)
    pd[2 * 8:3 * 8] = _ent(base + 0x3000, 3)       # va 0x400000: the 4 KiB table
    for k, pa in enumerate(FRAMES_2M):
        pd2[k * 8:(k + 1) * 8] = _ent(pa, 1 | 0x80 | (2 if (big_writable >> k) & 1 else 0))
    for i, pa in enumerate(DATA_PAGES):
        pt[i * 8:(i + 1) * 8] = _ent(pa, 1 | (2 if (writable_mask >> i) & 1 else 0))
    if aliases:
        pt[32:48] = _ent(DATA_PAGES[0], 3) + _ent(DATA_PAGES[1], 3)
    return [(base + 0x1000 * i, bytes(t)) for i, t in enumerate((pml4, pdpt, pd, pt, pd2))]


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
                      cr3_latency=draw(st.integers(0, 9)), tlb_entries=ways * draw(st.sampled_from([1, 2, 4])),
                      issue_width=draw(st.integers(1, 4)), spin_wake_latency=draw(st.integers(0, 30)),
                      tlb_ways=ways, lidt_latency=draw(st.integers(0, 9)))
    apic = ApicConfig(mode=draw(st.sampled_from(["xapic", "x2apic"])), ipi_latency=draw(st.integers(0, 60)),
                      icr_busy=draw(st.sampled_from([0, 5, 30, 90])), multicast=draw(st.sampled_from(["bus", "serial"])))
    return replace(cfg, core=core, apic=apic).validate()


@st.composite
def workloads(draw, cfg, max_ops: int = 14, irq: bool = False):
    """Random programs on random cores: memory ops (physical and virtual through 4 KiB and 2 MiB pages,
    some straddling lines and pages), page-table edits with and without INVLPG (stale TLB entries),
    atomics, spin-waits, IPIs of every kind (logical destinations, ICR polls), handlers, LIDT and interrupt
    frames on a stack, WFI, TLB ops, partitions.  ``irq`` adds long COMPUTEs (interruptible), the APIC timer
    in every mode, APIC register reads, TPR writes, faulting APIC accesses, and handlers that re-enable
    interrupts (nesting).

    Built so that most ops do useful work: fault handlers (vectors 13, 14) repair the page tables, CR3
    and the mode, and stop the core once FAULT_CAP faults were taken (no endless fault loops); every
    main program ends by releasing the spin flags and interrupting the other cores (no spin or WFI
    waits for nothing).  Returns (workload, physical words worth comparing)."""
    from hwmodel import isa
    from hwmodel.workload import Workload
    x2 = cfg.apic.mode == "x2apic"
    ncores = cfg.cores
    w = Workload(ncores)
    for a, b in page_table_bytes(draw(st.sampled_from([15, 15, 15, 7, 10, 0])), draw(st.sampled_from([3, 3, 1, 2]))):
        w.write(a, b)
    for a, b in page_table_bytes(base=CLEAN_BASE, aliases=True):
        w.write(a, b)
    nwords = draw(st.integers(1, 6))
    words = [draw(st.sampled_from(DATA_PAGES)) + draw(st.integers(0, 4095 - 8)) for _ in range(nwords)]
    words += [PTE_4K + 8 * draw(st.integers(0, 3))]                 # a PTE: stale-TLB material
    words += [DATA_PAGES[0] + 4096 - 4]                              # straddles into the next page
    words += [STACK_TOP - 8 * i for i in range(1, 13)] + [DATA_PAGES[2] + 4096 - 8 * i for i in range(1, 6)]
    words += [draw(st.sampled_from(FRAMES_2M)) + draw(st.sampled_from(HOT_2M)) for _ in range(2)]
    words += list(SPIN_WORDS)
    for a in words[:3]:
        w.write(a, draw(st.integers(0, 3)).to_bytes(8, "little"))
    for a in SPIN_WORDS:
        w.write(a, draw(st.integers(0, 3)).to_bytes(8, "little"))

    parts = not irq and draw(st.booleans())
    if parts:                                # partitions: up to 2 kernels over the data pages
        for pg in DATA_PAGES + FRAMES_2M:
            if draw(st.integers(0, 3)) > 0:
                w.partition(draw(st.integers(0, 1)), pg, pg + (BIG if pg in FRAMES_2M else 0x1000))
        if draw(st.booleans()):
            pg = draw(st.sampled_from(DATA_PAGES))
            w.grant(draw(st.integers(0, 1)), pg, pg + 0x1000)
        for kern in (0, 1):                  # page tables and flags: everybody's
            w.grant(kern, *PT_PAGES)
            w.grant(kern, SHARED_PAGE, SHARED_PAGE + 0x1000)
        w.reserve_partitions(draw(st.integers(0, 2)))
        if draw(st.integers(0, 3)):
            w.supervise(draw(st.integers(0, 1)))
        for core in range(ncores):
            w.assign(core, draw(st.integers(-1, 1)))
    pextra = ["part", "part", "assign"] if parts else []

    extra = ["lcompute", "lcompute", "timer", "timer", "apicrd", "tpr", "apicbad"] if irq else []
    hextra = ["lcompute", "timer", "apicrd"] if irq else []

    def virtual_address() -> int:
        """A 4 KiB-page address aliasing one of the words, or a hot 2 MiB-page address."""
        c = draw(st.integers(0, 19))
        if c == 0:
            return 1 << 47                                          # non-canonical
        if c < 10:
            off = draw(st.sampled_from(words)) & 0xFFF if draw(st.booleans()) else draw(st.integers(0, 4095))
            page = draw(st.integers(0, 3)) if draw(st.integers(0, 7)) else draw(st.integers(4, 5))   # 4, 5: absent
            return VIRT_4K + page * 4096 + off
        off = draw(st.sampled_from(HOT_2M)) if draw(st.integers(0, 3)) else draw(st.integers(0, BIG - 1))
        return VIRT_2M + draw(st.integers(0, 1)) * BIG + off

    def pte_edit(p: isa.Program, reg: str, size: int):
        """Rewrite a 4 KiB PTE or a 2 MiB PD entry; maybe INVLPG it; maybe use it."""
        if draw(st.booleans()):
            i = draw(st.integers(0, 3))
            entry, va = PTE_4K + 8 * i, VIRT_4K + 4096 * i
            new = draw(st.sampled_from(DATA_PAGES)) | draw(st.sampled_from([3, 3, 3, 1, 1, 0]))
            inv = va + draw(st.integers(0, 4095))
        else:
            k = draw(st.integers(0, 1))
            entry, va = PDE_2M + 8 * k, VIRT_2M + BIG * k
            new = draw(st.sampled_from(FRAMES_2M)) | draw(st.sampled_from([0x83, 0x83, 0x83, 0x81, 0x81, 0x80]))
            inv = va + (draw(st.sampled_from(HOT_2M)) if draw(st.booleans()) else draw(st.integers(0, BIG - 1)))
        p.store(entry, new, 8)
        how = draw(st.sampled_from(["invlpg", "invlpg", "invlpg", "stale", "stale", "mode", "cr3"]))
        if how == "invlpg":
            p.invlpg(inv)
        elif how == "mode":                                          # MODE and WRCR3 flush the whole TLB
            p.mode(isa.LONG)
        elif how == "cr3":
            p.wrcr3(PT_BASE)                                         # "stale": the TLB entry stays
        if draw(st.booleans()):
            use = va + (draw(st.sampled_from(HOT_2M)) & (4095 if va < VIRT_2M else BIG - 1))
            if draw(st.booleans()):
                p.load(reg, use, size, virt=True)
            else:
                p.store(use, reg, size, virt=True)

    def body(p: isa.Program, depth: int, n: int, handler: bool, alone: bool = False):
        for _ in range(n):
            k = draw(st.sampled_from(["load", "store", "fadd", "xchg", "cas", "spin", "vload", "vstore",
                                      "vload", "vstore", "pte", "pte", "ipi", "compute", "alu", "br", "mark",
                                      "rdtsc", "wfi", "tlb", "cli", "sti", "apic", "vpages", "apicreg", "lidt",
                                      "sp"] + extra + pextra if not handler else
                                     ["load", "store", "fadd", "spin", "ipi", "compute", "mark", "vload",
                                      "pte", "sti"] + hextra))
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
                if not handler and (alone or draw(st.booleans())):   # wake myself: that handler releases
                    p.sti()
                    p.ipi(0, VECTORS[0], "fixed", "self", x2apic=x2)
                if draw(st.integers(0, 3)) and not (handler and alone):      # may sleep until a release
                    cond = draw(st.sampled_from(["eq", "ne", "geu", "geu"]))
                    p.spin_until(draw(st.sampled_from(SPIN_WORDS)), cond,
                                 100 if cond == "eq" else draw(st.integers(0, 3)), rd=reg)
                else:                                                       # holds at once
                    p.spin_until(a & ~7, "geu", 0, rd=reg)
            elif k == "vload":
                p.load(reg, virtual_address(), size, virt=True)
            elif k == "vstore":
                p.store(virtual_address(), reg, size, virt=True)
            elif k == "pte":
                pte_edit(p, reg, size)
            elif k == "vpages":                             # TLB pressure: a few pages, reused
                pages = [virtual_address() & ~0xFFF for _ in range(3)]
                for _ in range(draw(st.integers(3, 6))):
                    p.load(reg, draw(st.sampled_from(pages)) + (a & 0xFF8), 8, virt=True)
            elif k == "apic":                               # xAPIC register reads (x2APIC: plain memory)
                from hwmodel import apic
                off = draw(st.sampled_from([apic.ID, apic.ICR_LOW, apic.ICR_HIGH, apic.EOI - 0x10]))
                p.load(reg, apic.APIC_BASE + off, draw(st.sampled_from([1, 2, 4])))
            elif k == "ipi":
                if handler:
                    lab = f"i{len(p.ops)}_{depth}"
                    p.fadd("r6", IPI_COUNT, 1)
                    p.br("geu", "r6", IPI_CAP, lab)
                mode = draw(st.sampled_from(["fixed", "fixed", "fixed", "nmi", "init", "startup", "lowest"]))
                sh = draw(st.sampled_from(["none", "none", "none", "self", "all", "all-but-self"]))
                logical = sh == "none" and draw(st.integers(0, 2)) == 0
                dest = draw(st.integers(0, ncores))       # ncores: an id nobody has
                if logical:
                    dest = draw(st.sampled_from([0xFFFFFFFF, (draw(st.integers(0, 1)) << 16) | draw(st.integers(0, 0xFFFF))])
                                if x2 else st.integers(0, 0xFF))
                elif draw(st.integers(0, 7)) == 0:
                    dest = 0xFFFFFFFF if x2 else 0xFF     # broadcast by destination
                vec = draw(st.sampled_from(VECTORS + (5,))) if mode != "startup" else draw(st.sampled_from([6, 7, 9]))
                if draw(st.booleans()) and not x2:
                    p.wait_icr_idle(reg)
                p.ipi(dest, vec, mode, sh, x2apic=x2, logical=logical)
                if handler:
                    p.label(lab)
            elif k == "compute":
                p.compute(draw(st.integers(0, 50)))
            elif k == "alu":
                p.alu(draw(st.sampled_from(["add", "sub", "mul", "and", "or", "xor", "shl", "shr"])), reg,
                      f"r{draw(st.integers(0, 3))}", draw(st.one_of(st.integers(-9, 70), st.just("r2"))))
            elif k == "br":
                lab = f"l{len(p.ops)}_{depth}"
                p.br(draw(st.sampled_from(list(isa.CONDS))), reg, draw(st.integers(-2, 3)), lab)
                body(p, depth + 1, draw(st.integers(0, 2)), handler, alone)
                p.label(lab)
            elif k == "mark":
                p.mark(draw(st.integers(0, 5)), reg)
            elif k == "rdtsc":
                p.rdtsc(reg)
            elif k == "wfi":
                if alone or draw(st.integers(0, 2)):              # an interrupt on its way
                    p.ipi(0, VECTORS[0], "fixed", "self", x2apic=x2)
                p.wfi()
            elif k == "tlb":
                c = draw(st.integers(0, 3))
                if c == 0:
                    p.invlpg(VIRT_4K + draw(st.integers(0, 3)) * 4096 + draw(st.integers(0, 4095)))
                elif c == 1:
                    p.invlpg(VIRT_2M + draw(st.integers(0, 1)) * BIG + draw(st.integers(0, BIG - 1)))
                elif c == 2:
                    p.wrcr3(PT_BASE)
                else:
                    p.mode(isa.LONG)
            elif k == "apicreg":                # logical-destination and error registers, ICR delivery status
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
            elif k in ("part", "assign"):
                supervisor_op(p, k, reg)
            elif k == "cli":
                p.cli()
            elif k == "sti":
                p.sti()
            else:
                irq_op(p, k, reg)

    def supervisor_op(p: isa.Program, k: str, reg: str):
        """PART (mostly valid: a data page or 2 MiB frame, whole or empty; sometimes misaligned, inverted,
        overlapping or an absent slot) or ASSIGN (any core, the nonexistent one included, to -2..1)."""
        def operand(v: int, r: str):
            if draw(st.booleans()):
                return v
            p.movi(r, v)
            return r
        if k == "part":
            pg = draw(st.sampled_from(DATA_PAGES + FRAMES_2M))
            lo = pg + draw(st.sampled_from([0, 0, 0, 0, 0x800, 0x1000]))
            hi = lo + draw(st.sampled_from([0x1000, 0x1000, BIG, 0, -0x1000, 0x1800]))
            slot = draw(st.integers(0, len(w.regions)))
            p.part(slot, operand(lo, "r10"), operand(hi, "r11"), operand(draw(st.integers(-2, 1)), "r12"))
        else:
            p.assign(operand(draw(st.integers(0, ncores)), "r10"), operand(draw(st.integers(-2, 1)), "r11"))

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

    def repair(p: isa.Program):
        """Fault handler: count the fault, stop past the cap, else switch to whole page tables: the
        pristine ones, or (sometimes) the edited ones made whole again."""
        p.fadd("r7", FAULT_COUNT, 1)
        p.br("geu", "r7", FAULT_CAP, "stop")
        if draw(st.integers(0, 2)):
            p.wrcr3(CLEAN_BASE)
        else:
            for i, pa in enumerate(DATA_PAGES + DATA_PAGES[:2]):
                p.store(PTE_4K + 8 * i, pa | 3)
            for k, pa in enumerate(FRAMES_2M):
                p.store(PDE_2M + 8 * k, pa | 0x83)
            p.wrcr3(PT_BASE)
        p.mode(isa.LONG)

    def release(p: isa.Program):
        """Every spin condition the generator makes on SPIN_WORDS holds after this."""
        for a in SPIN_WORDS:
            p.store(a, 100)

    def program(name: str, vec: int | None, alone: bool = False) -> isa.Program:
        p = isa.Program(name)
        if vec is not None:
            if vec in (13, 14):
                repair(p)
            body(p, 0, draw(st.integers(0, 3)), True, nstart == 1)
            if vec == VECTORS[0]:
                release(p)
            if draw(st.integers(0, 5)):              # else its in-service bit stays (no EOI)
                p.eoi(x2apic=x2)
            p.iret()
            if vec in (13, 14):
                p.label("stop")
                p.halt()
            return p
        if draw(st.integers(0, 19)) > 0:
            p.wrcr3(PT_BASE)
        if draw(st.integers(0, 9)) < (8 if irq else 5):
            p.sti()
        loops = draw(st.integers(1, 2))
        p.movi("r9", loops)
        p.label("top")
        body(p, 0, draw(st.integers(1, max_ops)), False, alone)
        if irq:                                 # time for timers and IPIs to arrive during a compute
            p.compute(draw(st.integers(0, 6000)))
        p.sub("r9", "r9", 1)
        p.br("ne", "r9", 0, "top")
        release(p)
        if ncores > 1:
            p.ipi(0, VECTORS[0], "fixed", "all-but-self", x2apic=x2)      # wakes WFI sleepers
        p.halt()
        return p

    nstart = draw(st.integers(1, ncores))
    started = draw(st.permutations(range(ncores)))[:nstart]
    for i, core in enumerate(started):
        pl = w.place(program(f"core{core}", None, nstart == 1), 0x100000 + 0x1000 * i)
        w.start(core, pl.pc(), at=draw(st.integers(0, 30)))
    for vi, vec in enumerate(HANDLER_VECTORS):
        if vec == VECTORS[0] or draw(st.integers(0, 3)) > 0:
            hp = w.place(program(f"h{vec}", vec), HANDLER_BASE + 0x1000 * vi)
            for core in range(ncores):
                w.set_handler(core, vec, hp.pc())
    for vec in (6, 7):                       # start-up targets (0x9000 has no code)
        sp = isa.Program(f"sipi{vec}")
        body(sp, 0, draw(st.integers(0, 3)), False)
        sp.halt()
        w.place(sp, vec << 12)
    return w, words
