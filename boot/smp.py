"""Starting application processors: INIT-SIPI-SIPI, the AP trampoline, real to long mode.

The bootstrap processor (BSP) runs a program that sends each application
processor (AP) an INIT IPI, waits, sends start-up IPIs (SIPIs) with the
trampoline's vector, waits as the chosen variant does, then waits until the
AP says it is alive.  Each AP starts in real mode at ``vector << 12`` (the
trampoline, copied below 1 MiB), loads its GDT, enters protected mode, loads
CR3 with the trampoline's page table and enters long mode, marks itself alive
and runs its kernel's init ops.  Every step is a timeline event
(``boot.timeline``); its cost comes from the engine.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from boot import timeline as tl
from hwmodel import isa
from hwmodel.errors import MksimError
from hwmodel.pagetable import PageTables
from hwmodel.workload import Workload


@dataclass(frozen=True)
class Variant:
    """How long the BSP waits after INIT and after each SIPI (microseconds)."""
    name: str
    init_wait_us: float
    sipi_waits_us: tuple[float, ...]
    source: str


VARIANTS = {
    "mp-spec": Variant("mp-spec", 10_000.0, (200.0, 200.0),
                       "Intel MultiProcessor Specification 1.4, B.4: INIT, 10 ms, STARTUP, 200 us, STARTUP, 200 us"),
    "linux": Variant("linux", 0.0, (10.0, 10.0),
                     "Linux smpboot: no 10 ms INIT delay on recent CPUs (init_udelay 0), short waits after each "
                     "STARTUP (the 10 us figure is an assumption)"),
    "ihk": Variant("ihk", 10_000.0, (300.0, 200.0), "IHK: INIT, 10 ms, STARTUP, 300 us, STARTUP, 200 us"),
    "barrelfish": Variant("barrelfish", 0.0, (0.0,),
                          "Barrelfish: one STARTUP with vector 0x06, trampoline at 0x6000; no fixed waits "
                          "(assumption: it polls for the AP right away)"),
}

# where the trampoline keeps its data (all below 1 MiB)
# Below 1 MiB: start-up pages (vectors 0x01..0x5F) first, then the trampolines' data.
MAILBOX = 0x60000         # BSP -> AP: the id of the AP being started (kernel k's at MAILBOX + 0x40 * k)
ALIVE = 0x61000           # AP c stores 1 at ALIVE + 8 * c (up to 4096 cores)
TRAMP_PT = (0x70000, 0x80000)   # the trampoline's page tables: identity map of the first 4 MiB
GDT = 0x6F000
AP_TABLE = 0x200000       # smp_workload's table of AP ids (a kernel's own lies in its partition)


@dataclass
class SmpLayout:
    vector: int
    trampoline: int
    bsp: int
    aps: list[int]
    variant: Variant
    cr3: int


def _cycles(us: float, clock_ghz: float) -> int:
    return int(round(us * 1000.0 * clock_ghz))


def trampoline(cfg, vector: int, ap_init: Callable[[isa.Program], None] | None = None,
               cr3: int = TRAMP_PT[0], mailbox: int = MAILBOX) -> isa.Program:
    """The AP's first code: real mode -> protected mode -> long mode, then alive, then ``ap_init``.

    r1 holds the AP's own id (read from the mailbox the BSP fills before the SIPI)."""
    p = isa.Program(f"ap-trampoline-{vector:#04x}")
    tl.begin(p, "ap real mode")
    p.load("r1", mailbox, 4, comment="which AP am I (the BSP wrote it before the SIPI)")
    p.load("r2", GDT, 8, comment="lgdt: the GDT descriptor")
    tl.end(p, "ap real mode")
    tl.begin(p, "ap protected mode")
    p.mode(isa.PROTECTED, comment="CR0.PE = 1, far jump to 32-bit code")
    tl.end(p, "ap protected mode")
    tl.begin(p, "ap long mode")
    p.wrcr3(cr3, comment="CR4.PAE, CR3 = the trampoline's page table")
    p.mode(isa.LONG, comment="EFER.LME, CR0.PG: long mode")
    tl.end(p, "ap long mode")
    p.alu("shl", "r3", "r1", 3)
    p.store(ALIVE, 1, base="r3", comment="tell the BSP this AP is up")
    if ap_init is not None:
        tl.begin(p, "ap kernel init")
        ap_init(p)
        tl.end(p, "ap kernel init")
    p.halt()
    return p


def _icr(p: isa.Program, cfg, dest_reg: str, mode: str, vector: int) -> None:
    """Write the ICR for ``mode`` to the core whose id is in ``dest_reg`` (r11 is scratch)."""
    from hwmodel import apic
    if cfg.apic.mode == "x2apic":
        low = apic.encode_x2apic(0, vector, mode)
        p.alu("shl", "r11", dest_reg, 32)
        p.alu("or", "r11", "r11", low)
        p.wrmsr(isa.MSR_X2APIC_ICR, "r11", comment=f"x2APIC ICR: {mode}")
    else:
        low, _ = apic.encode_xapic(0, vector, mode)
        p.alu("shl", "r11", dest_reg, 24)
        p.store(apic.APIC_BASE + apic.ICR_HIGH, "r11", 4, comment="ICR high: destination")
        p.store(apic.APIC_BASE + apic.ICR_LOW, low, 4, comment=f"ICR low: {mode}, sends")


def emit_start(p: isa.Program, cfg, table: int, count: int, vector: int, v: Variant,
               mailbox: int = MAILBOX) -> None:
    """Start the ``count`` cores whose ids are the 8-byte words at ``table``, one after another: mailbox,
    INIT, the variant's waits, its SIPIs, then wait until the core is alive.  A loop, so the code stays
    small however many cores there are (registers r11-r14)."""
    if count <= 0:
        return
    lab = f"start@{len(p.ops)}"
    p.movi("r13", table)
    p.movi("r14", table + 8 * count)
    p.label(lab)
    p.load("r12", 0, base="r13", comment="the next core to start")
    p.store(mailbox, "r12", 4, comment="mailbox: its id")
    tl.begin(p, "init ipi", "r12")
    _icr(p, cfg, "r12", "init", 0)
    tl.end(p, "init ipi", "r12")
    if v.init_wait_us:
        tl.begin(p, "init wait", "r12")
        p.compute(_cycles(v.init_wait_us, cfg.clock_ghz), comment=f"wait {v.init_wait_us} us")
        tl.end(p, "init wait", "r12")
    for wait in v.sipi_waits_us:
        tl.begin(p, "startup ipi", "r12")
        _icr(p, cfg, "r12", "startup", vector)
        tl.end(p, "startup ipi", "r12")
        if wait:
            tl.begin(p, "startup wait", "r12")
            p.compute(_cycles(wait, cfg.clock_ghz), comment=f"wait {wait} us")
            tl.end(p, "startup wait", "r12")
    tl.begin(p, "wait for ap", "r12")
    p.alu("shl", "r11", "r12", 3)
    p.spin_until(ALIVE, "eq", 1, base="r11", comment="alive?")
    tl.end(p, "wait for ap", "r12")
    p.add("r13", "r13", 8)
    p.br("ltu", "r13", "r14", lab)


def core_table(cores: list[int]) -> bytes:
    return b"".join(c.to_bytes(8, "little") for c in cores)


def bsp_program(cfg, layout: SmpLayout, p: isa.Program | None = None, mailbox: int = MAILBOX,
                table: int = 0x200000) -> isa.Program:
    """The BSP's start-up loop over the AP table at ``table`` (write ``core_table(layout.aps)`` there).
    Appends to ``p`` (then no HALT) or builds a program of its own."""
    v = layout.variant
    own = p is None
    p = p if p is not None else isa.Program(f"bsp-smp-{v.name}")
    tl.begin(p, "smp boot")
    emit_start(p, cfg, table, len(layout.aps), layout.vector, v, mailbox)
    tl.end(p, "smp boot")
    if own:
        p.halt()
    return p


def write_trampoline_data(w: Workload) -> int:
    """The trampolines' shared data: their page tables (identity map of the first 4 MiB) and the GDT
    descriptor. Returns the tables' CR3."""
    pt = PageTables(*TRAMP_PT)
    pt.map_range(0, 0, 4 << 20, size=2 << 20)
    pt.apply(w)
    w.write(GDT, (0x0000_0000_0000_0017).to_bytes(8, "little"))
    return pt.cr3


def smp_workload(cfg, bsp: int = 0, aps: list[int] | None = None, variant: str = "linux", vector: int = 0x06,
                 ap_init: Callable[[isa.Program], None] | None = None,
                 w: Workload | None = None) -> tuple[Workload, SmpLayout]:
    """A workload that boots ``aps`` (default: every other core) from ``bsp``."""
    if variant not in VARIANTS:
        raise MksimError(f"SMP start-up variant {variant!r}: must be one of {', '.join(VARIANTS)}")
    if not 0x01 <= vector <= 0x5F:
        raise MksimError(f"start-up vector {vector:#x}: must be 0x01..0x5F (0xVV000 must be below the "
                         "trampolines' data at 0x60000; 0xA0..0xBF are reserved by the architecture)")
    if not 0 <= bsp < cfg.cores:
        raise MksimError(f"BSP {bsp}: {cfg.name} has cores 0..{cfg.cores - 1}")
    aps = [c for c in range(cfg.cores) if c != bsp] if aps is None else list(aps)
    if len(set(aps)) != len(aps) or bsp in aps or any(not 0 <= c < cfg.cores for c in aps):
        raise MksimError(f"APs {aps}: each core once, not the BSP ({bsp}), within 0..{cfg.cores - 1}")
    w = w or Workload(cfg.cores)
    layout = SmpLayout(vector, vector << 12, bsp, aps, VARIANTS[variant], write_trampoline_data(w))
    w.place(trampoline(cfg, vector, ap_init, layout.cr3), layout.trampoline)
    w.write(AP_TABLE, core_table(aps))
    b = w.place(bsp_program(cfg, layout, table=AP_TABLE), 0x100000)
    w.start(bsp, b.pc())
    return w, layout
