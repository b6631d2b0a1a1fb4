"""Linux SMP, the shared-memory baseline: one kernel on all its cores.

Boot: GRUB or kexec loads the bzImage; the boot core runs the init below, then brings up the
APs with INIT-SIPI-SIPI (``boot.smp``, the ``linux`` variant), as the plans already do.

Kernel services (core programs, below the init): one process's address space shared by its CPUs
(real x86-64 page tables, the mm_struct with its pte lock and ``cpu_vm_mask``, per-CPU areas), and the
unmap of one of its pages with the IPI TLB shootdown of Linux 2.6.26 on x86-64 (``flush_tlb_page`` ->
``flush_tlb_others`` -> ``smp_invalidate_interrupt``).  ``unmap_cycles`` / ``unmap_rows`` measure it
(the Barrelfish paper's Figure 7 baseline); ``system="windows"`` is a broadcast variant (one
all-excluding-self IPI, one global lock).
"""
from __future__ import annotations

import statistics

from boot import timeline as tl
from hwmodel import apic, isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.pagetable import PAGE_4K, PageTables
from kernels import locks
from kernels.base import KernelInstance, kernel_area
from kernels.personality import Personality

LINE = 64


def linux_early(inst: KernelInstance, p: isa.Program) -> int:
    """Linux's early init steps (the body of ``linux_init``): read the zero page, touch the kernel
    text, write one per-CPU line per core (``setup_per_cpu_areas``).  The per-CPU lines go to a free
    piece of the partition (``kernel_area``), not onto a kexec-loaded image.  Returns that area
    (64 KiB: the per-CPU lines, then the personality's early data from +4 KiB)."""
    r = inst.record
    area = kernel_area(inst, 0x10000)
    tl.begin(p, f"{r.name} boot params")
    for off in range(0, 4096, 512):
        p.load("r5", r.bootinfo_addr + off, comment="zero page: boot_params")
    p.load("r5", r.entry & ~0x7, comment="first touch of the kernel's own text")
    tl.end(p, f"{r.name} boot params")
    tl.begin(p, f"{r.name} per-cpu areas")
    for i, _ in enumerate(r.cores):
        p.store(area + i * LINE, i, comment="this_cpu_off for cpu i")
    tl.end(p, f"{r.name} per-cpu areas")
    return area


def linux_init(inst: KernelInstance, p: isa.Program) -> None:
    """The boot core's early init (``linux_early``) as the ``linux init`` step."""
    tl.begin(p, f"{inst.name} init")
    linux_early(inst, p)
    tl.end(p, f"{inst.name} init")


PERSONALITY = Personality(
    name="linux",
    summary="Linux SMP: one kernel on all its cores, shared page tables, IPI TLB shootdown",
    boot="smp",
    init=linux_init,
)


# ============================================================================ unmap + TLB shootdown
#
# Linux 2.6.26 on x86-64, the path a page unmap takes when other CPUs run the mm:
#
#   spin_lock(&mm->page_table_lock)                       (the pte lock; a ticket spinlock since 2.6.25)
#   pte = ptep_get_and_clear(mm, va, ptep)                 (xchg(&ptep->pte, 0) on SMP, pgtable_64.h)
#   flush_tlb_page(vma, va)                                (arch/x86/kernel/tlb_64.c)
#       cpu_mask = mm->cpu_vm_mask minus this CPU
#       __flush_tlb_one(va)                                (INVLPG)
#       flush_tlb_others(cpu_mask, mm, va)
#           f = &per_cpu(flush_state, cpu % NUM_INVALIDATE_TLB_VECTORS)
#           spin_lock(&f->tlbstate_lock); f->flush_mm = mm; f->flush_va = va
#           cpus_or(f->flush_cpumask, cpumask, f->flush_cpumask)
#           send_IPI_mask(cpumask, INVALIDATE_TLB_VECTOR_START + sender)
#           while (!cpus_empty(f->flush_cpumask)) cpu_relax();
#           f->flush_mm = NULL; f->flush_va = 0; spin_unlock(&f->tlbstate_lock)
#   spin_unlock(&mm->page_table_lock)
#
# and on every target, smp_invalidate_interrupt (entered through entry_64.S's apicinterrupt /
# interrupt macros: push ~vector, SAVE_ARGS, irqcount; ret_from_intr: RESTORE_ARGS, iretq):
#
#   if (!cpu_isset(cpu, f->flush_cpumask)) goto out;
#   if (f->flush_mm == read_pda(active_mm) && read_pda(mmu_state) == TLBSTATE_OK) __flush_tlb_one(f->flush_va);
#   out: ack_APIC_irq(); cpu_clear(cpu, f->flush_cpumask); add_pda(irq_tlb_count, 1);
#
# send_IPI_mask is the machine's genapic: "flat" (one IPI, logical destination = the CPU bitmap) when
# every APIC id is below 8, else "physflat" (send_IPI_mask_sequence: one physical IPI per CPU of the
# mask, each through __send_IPI_dest_field, which first polls the ICR until it is idle)
# (arch/x86/kernel/genapic_64.c, setup_apic_routing; genapic_flat_64.c).
#
# Kernel data is addressed physically (the kernel's direct map); the user page is addressed
# virtually through the process's real x86-64 page tables, so every core's TLB holds it.

SYSTEMS = ("linux", "windows")
EV_UNMAP = 1                     # timeline mark of the initiator: the unmap's cycles

# physical layout (node 0 unless per-CPU); code, IDT, shared kernel data, the harness, page tables, user pages
CODE_INIT, CODE_HANDLER, CODE_TARGET = 0x10_0000, 0x11_0000, 0x12_0000
IDT = 0x18_0000                  # idt_table: one for the whole kernel
MM = 0x20_0000                   # the process's mm_struct: page_table_lock (+0, +8)
MM_CPU_VM_MASK = MM + 0x40       # mm->cpu_vm_mask: CPUs that have run the mm (its own line)
FLUSH_STATE = 128                # per-CPU union smp_flush_state (tlb_64.c: DEFINE_PER_CPU), its own line
FS_MASK, FS_MM, FS_VA, FS_LOCK = 0, 8, 16, 24     # flush_cpumask, flush_mm, flush_va, tlbstate_lock (+24, +32)
PER_CPU_OFFSET = 0x20_2000       # __per_cpu_offset[NR_CPUS]: each CPU's per-CPU area
GLOBAL_TB_LOCK = 0x20_3000       # "windows": one lock for every TB flush
HARNESS_GO = 0x20_4000           # benchmark harness (not kernel state): the round whose page is live
HARNESS_READY = 0x20_4040        # targets that have touched the live page (cumulative)
PT_POOL = (0x40_0000, 0x48_0000)  # the process's page tables
USER_FRAMES = 0x50_0000          # physical frames of the user pages
USER_VA = 0x7F00_0000_0000       # where the process maps them (one page per round)
# per-CPU (node-local) memory: the PDA and per-CPU variables, and the CPU's kernel stack
PERCPU = 0x30_0000               # + node base + 0x1000 * cpu
PDA_CPUNUMBER, PDA_ACTIVE_MM, PDA_MMU_STATE, PDA_IRQ_TLB_COUNT, PDA_IRQCOUNT, PDA_APICID = 0, 8, 16, 24, 32, 64
STACKS = 0x38_0000               # + node base: CPU c's stack top at + 0x2000 * (c + 1)
TLBSTATE_OK = 1
INVALIDATE_TLB_VECTOR_START = 0xF0
NUM_INVALIDATE_TLB_VECTORS = 8
SAVE_ARGS = ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r14")   # stand-ins for rdi rsi rdx rcx rax r8-r11
GS = "r15"                       # this CPU's per-CPU base (%gs base); set per core, never touched by user code


def _node_base(cfg: MachineConfig, cpu: int) -> int:
    """First byte of the memory local to ``cpu``'s package (node-interleaved machines), else 0."""
    if cfg.memory.interleave != "node":
        return 0
    return (cfg.memory.size // cfg.packages) // PAGE_4K * PAGE_4K * (cpu // cfg.cores_per_package)


def percpu_base(cfg: MachineConfig, cpu: int) -> int:
    """Physical address of ``cpu``'s per-CPU area (node-local, as setup_per_cpu_areas allocates it)."""
    return _node_base(cfg, cpu) + PERCPU + 0x1000 * cpu


def stack_top(cfg: MachineConfig, cpu: int) -> int:
    return _node_base(cfg, cpu) + STACKS + 0x2000 * (cpu + 1)


def genapic(cfg: MachineConfig) -> str:
    """The IPI mode Linux 2.6.26 picks for this machine (setup_apic_routing): ``flat`` if every APIC id
    is below 8 and the APIC is an xAPIC, else ``physflat``."""
    return "flat" if cfg.cores <= 8 and cfg.apic.mode == "xapic" else "physflat"


def user_va(page: int) -> int:
    return USER_VA + PAGE_4K * page


def _flush_state(cfg: MachineConfig, cpu: int) -> int:
    """&per_cpu(flush_state, cpu % NUM_INVALIDATE_TLB_VECTORS): the flush_state the sender ``cpu`` uses."""
    return percpu_base(cfg, cpu % NUM_INVALIDATE_TLB_VECTORS) + FLUSH_STATE


def _vector(sender_cpu: int) -> int:
    return INVALIDATE_TLB_VECTOR_START + sender_cpu % NUM_INVALIDATE_TLB_VECTORS


# ---------------------------------------------------------------------------- the address space

class AddressSpace:
    """One process's shared state: real page tables mapping ``pages`` user pages, the mm_struct and
    the per-CPU data of the CPUs running it."""

    def __init__(self, cfg: MachineConfig, cpus: list[int], pages: int):
        if not 1 <= pages <= 512:
            raise MksimError(f"unmap: {pages} pages; 1..512 (one page table)")
        self.cfg, self.cpus, self.pages = cfg, cpus, pages
        self.pt = PageTables(*PT_POOL)
        for i in range(pages):
            self.pt.map(user_va(i), USER_FRAMES + PAGE_4K * i)
        self.cr3 = self.pt.cr3

    def pte(self, page: int) -> int:
        """Physical address of the PTE that maps user page ``page``."""
        return self.pt.pte_address(user_va(page), 1)

    def apply(self, w) -> None:
        """Write the page tables, mm_struct and per-CPU areas into the workload's initial memory."""
        self.pt.apply(w)
        mask = sum(1 << c for c in self.cpus)
        w.write(MM_CPU_VM_MASK, mask.to_bytes(8, "little"))              # switch_mm: cpu_set(cpu, cpu_vm_mask)
        for c in range(self.cfg.cores):
            w.write(PER_CPU_OFFSET + 8 * c, percpu_base(self.cfg, c).to_bytes(8, "little"))
        for c in self.cpus:
            b = percpu_base(self.cfg, c)
            for off, v in ((PDA_CPUNUMBER, c), (PDA_ACTIVE_MM, MM), (PDA_MMU_STATE, TLBSTATE_OK),
                           (PDA_APICID, c)):
                w.write(b + off, v.to_bytes(8, "little"))


def _cpu_setup(p: isa.Program, cfg: MachineConfig, cpu: int, cr3: int | None, lidt: bool) -> None:
    """What boot and the first switch_mm leave on a CPU: its IDT, the process's CR3, and in flat mode
    its logical APIC id (init_apic_ldr of genapic_flat: DFR flat, LDR bit ``cpu``)."""
    if lidt:
        p.lidt(IDT, comment="load_idt(idt_descr)")
    if cr3 is not None:
        p.wrcr3(cr3, comment="switch_mm: load_cr3(mm->pgd)")
    if genapic(cfg) == "flat":
        p.apic_write(apic.DFR, 0xFFFFFFFF, comment="init_apic_ldr: APIC_DFR_FLAT")
        p.apic_write(apic.LDR, (1 << cpu) << 24, comment="init_apic_ldr: logical id = 1 << cpu")


# ---------------------------------------------------------------------------- the initiator

def apic_wait_icr_idle(p: isa.Program, scratch: str, label: str) -> None:
    """__send_IPI_dest_field's first step (apic_64.c): ``while (apic_read(APIC_ICR) & APIC_ICR_BUSY)
    cpu_relax();``.  ``label`` must be unique in ``p``."""
    p.label(label)
    p.load(scratch, apic.APIC_BASE + apic.ICR_LOW, size=4, comment="apic_wait_icr_idle: read the ICR")
    p.alu("and", scratch, scratch, apic.ICR_BUSY)
    p.br("eq", scratch, 0, f"{label}.done", comment="delivery status idle")
    p.pause(comment="cpu_relax()")
    p.jmp(label)
    p.label(f"{label}.done")


def _send_ipi_mask(p: isa.Program, cfg: MachineConfig, system: str, mask: str, vector: int) -> None:
    """send_IPI_mask(mask, vector) with the machine's genapic (register ``mask`` holds the CPU bitmap)."""
    if system == "windows":
        apic_wait_icr_idle(p, "r5", "icr_idle.bcast")
        lo, hi = apic.encode_xapic(0, vector, shorthand="all-but-self")
        p.store(apic.APIC_BASE + apic.ICR_LOW, lo, size=4, comment="one IPI, all-excluding-self shorthand")
        return
    if genapic(cfg) == "flat":
        # flat_send_IPI_mask -> __send_IPI_dest_field(mask, vector, APIC_DEST_LOGICAL)
        lo, _ = apic.encode_xapic(0, vector, logical=True)
        apic_wait_icr_idle(p, "r5", "icr_idle.flat")
        p.alu("shl", "r5", mask, 24, comment="__prepare_ICR2(mask)")
        p.store(apic.APIC_BASE + apic.ICR_HIGH, "r5", size=4, comment="apic_write(APIC_ICR2)")
        p.store(apic.APIC_BASE + apic.ICR_LOW, lo, size=4, comment="apic_write(APIC_ICR): logical, fixed")
        return
    # physflat_send_IPI_mask -> send_IPI_mask_sequence: for_each_cpu_mask(query_cpu, mask)
    lo, _ = apic.encode_xapic(0, vector)
    p.movi("r4", 0, comment="query_cpu = 0")
    p.label("seq.next")
    p.alu("shr", "r5", mask, "r4")
    p.alu("and", "r5", "r5", 1)
    p.br("eq", "r5", 0, "seq.skip", comment="not in the mask")
    p.alu("shl", "r5", "r4", 3)
    p.load("r5", PER_CPU_OFFSET, base="r5", comment="__per_cpu_offset[query_cpu]")
    p.load("r5", PDA_APICID, base="r5", comment="per_cpu(x86_cpu_to_apicid, query_cpu)")
    apic_wait_icr_idle(p, "r3", "icr_idle.seq")
    p.alu("shl", "r5", "r5", 24, comment="SET_APIC_DEST_FIELD(apicid)")
    p.store(apic.APIC_BASE + apic.ICR_HIGH, "r5", size=4, comment="apic_write(APIC_ICR2)")
    p.store(apic.APIC_BASE + apic.ICR_LOW, lo, size=4, comment="apic_write(APIC_ICR): physical, fixed")
    p.label("seq.skip")
    p.add("r4", "r4", 1)
    p.br("lt", "r4", cfg.cores, "seq.next")


def _unmap_page(p: isa.Program, cfg: MachineConfig, system: str, cpu: int, space: AddressSpace,
                page_reg: str) -> None:
    """Unmap the user page whose index is in ``page_reg`` and shoot it down on the other CPUs."""
    f = _flush_state(cfg, cpu)
    lock = GLOBAL_TB_LOCK if system == "windows" else MM
    p.alu("shl", "r0", page_reg, 3)
    p.add("r0", "r0", space.pte(0), comment="ptep for the page (one page table)")
    p.alu("shl", "r1", page_reg, 12)
    p.alu("add", "r1", "r1", USER_VA, comment="va")
    p.mov("r12", "r0")
    p.mov("r13", "r1")
    locks.spin_lock(p, lock, "pt_lock", comment="spin_lock(ptl): the pte lock" if system == "linux"
                    else "the global TB flush lock")
    p.xchg("r2", 0, 0, base="r12", comment="ptep_get_and_clear: xchg(&ptep->pte, 0)")
    # flush_tlb_page(vma, va)
    p.load("r1", MM_CPU_VM_MASK, comment="cpu_mask = mm->cpu_vm_mask")
    p.alu("and", "r1", "r1", ~(1 << cpu), comment="cpu_clear(smp_processor_id(), cpu_mask)")
    p.load("r2", PDA_ACTIVE_MM, base=GS, comment="current->active_mm == mm (it is: this thread runs the mm)")
    p.invlpg(0, base="r13", comment="__flush_tlb_one(va): INVLPG")
    p.br("eq", "r1", 0, "others.done", comment="cpus_empty(cpu_mask)")
    # flush_tlb_others(cpu_mask, mm, va)
    if system == "linux":
        locks.spin_lock(p, f + FS_LOCK, "tlbstate_lock", comment="spin_lock(&f->tlbstate_lock)")
    p.store(f + FS_MM, MM, comment="f->flush_mm = mm")
    p.store(f + FS_VA, "r13", comment="f->flush_va = va")
    p.load("r2", f + FS_MASK)
    p.alu("or", "r2", "r2", "r1")
    p.store(f + FS_MASK, "r2", comment="cpus_or(f->flush_cpumask, cpumask, f->flush_cpumask)")
    _send_ipi_mask(p, cfg, system, "r1", _vector(cpu))
    p.label("flush.wait")
    p.load("r2", f + FS_MASK, comment="while (!cpus_empty(f->flush_cpumask))")
    p.br("eq", "r2", 0, "flush.done")
    p.pause(comment="cpu_relax()")
    p.jmp("flush.wait")
    p.label("flush.done")
    p.store(f + FS_MM, 0, comment="f->flush_mm = NULL")
    p.store(f + FS_VA, 0, comment="f->flush_va = 0")
    if system == "linux":
        locks.spin_unlock(p, f + FS_LOCK, comment="spin_unlock(&f->tlbstate_lock)")
    p.label("others.done")
    locks.spin_unlock(p, lock, comment="spin_unlock(ptl)" if system == "linux" else "release the TB flush lock")


def initiator_program(cfg: MachineConfig, system: str, cpu: int, ntargets: int, space: AddressSpace,
                      rounds: int, lidt: bool = True, probe: bool = False) -> isa.Program:
    """The process's thread on ``cpu``: each round it touches the round's page (user code), waits until
    every target has touched it too (the harness), then unmaps it, timed by RDTSC around the kernel
    path (mark ``EV_UNMAP``), and starts the next round.  ``probe``: a last virtual load of the last
    unmapped page (it must fault not-present)."""
    p = isa.Program(f"{system}-unmap-cpu{cpu}")
    _cpu_setup(p, cfg, cpu, space.cr3, lidt)
    p.movi("r8", 0, comment="round = page index")
    p.label("round")
    p.alu("shl", "r9", "r8", 12)
    p.alu("add", "r9", "r9", USER_VA)
    p.load("r9", 0, base="r9", virt=True, comment="user code touches the page (TLB fill)")
    p.add("r9", "r8", 1)
    p.alu("mul", "r9", "r9", ntargets)
    p.spin_until(HARNESS_READY, "geu", "r9", rd="r0", comment="harness: every target has touched the page")
    p.rdtsc("r10", comment="start: before the lock")
    _unmap_page(p, cfg, system, cpu, space, "r8")
    p.rdtsc("r11", comment="end: after the unlock")
    p.sub("r11", "r11", "r10")
    p.mark(EV_UNMAP, "r11")
    p.add("r8", "r8", 1)
    p.store(HARNESS_GO, "r8", comment="harness: next round")
    p.br("ltu", "r8", rounds, "round")
    if probe:
        p.movi("r9", user_va(rounds - 1))
        p.label("probe")
        p.load("r9", 0, base="r9", virt=True, comment="probe: the unmapped page must fault")
    return p.halt()


def target_program(cfg: MachineConfig, cpu: int, space: AddressSpace, rounds: int, lidt: bool = True,
                   probe: bool = False) -> isa.Program:
    """Another thread of the process on ``cpu``: each round it touches the live page through its TLB, then
    runs "user work" (a spin with interrupts on) until the round is over; the shootdown IPI interrupts it."""
    p = isa.Program(f"user-cpu{cpu}")
    _cpu_setup(p, cfg, cpu, space.cr3, lidt)
    p.sti()
    p.movi("r8", 0)
    p.label("round")
    p.spin_until(HARNESS_GO, "geu", "r8", rd="r10", comment="harness: this round's page is live")
    p.alu("shl", "r9", "r8", 12)
    p.alu("add", "r9", "r9", USER_VA)
    p.load("r10", 0, base="r9", virt=True, comment="user work: touch the page (TLB fill)")
    p.fadd("r10", HARNESS_READY, 1, comment="harness: touched")
    p.add("r11", "r8", 1)
    p.spin_until(HARNESS_GO, "geu", "r11", rd="r10", comment="user work, interrupts on, until the round ends")
    p.add("r8", "r8", 1)
    p.br("ltu", "r8", rounds, "round")
    if probe:
        p.movi("r9", user_va(rounds - 1))
        p.label("probe")
        p.load("r9", 0, base="r9", virt=True, comment="probe: the unmapped page must fault")
    return p.halt()


def idle_program(cfg: MachineConfig, cpu: int, rounds: int, lidt: bool = True) -> isa.Program:
    """A CPU that does not run the mm ("windows": the broadcast still interrupts it)."""
    p = isa.Program(f"idle-cpu{cpu}")
    _cpu_setup(p, cfg, cpu, None, lidt)
    p.sti()
    p.spin_until(HARNESS_GO, "geu", rounds, rd="r10", comment="idle, interrupts on, until the run ends")
    return p.halt()


def invalidate_handler(senders: list[int], invalidate: bool = True) -> isa.Program:
    """The INVALIDATE_TLB_VECTOR_START + s entry stubs (one per sender group s) and
    smp_invalidate_interrupt.  Uses r0..r7 only, after saving them (SAVE_ARGS); r15 is the CPU's
    per-CPU base.  ``invalidate=False`` leaves out the INVLPG (a broken kernel, for tests)."""
    p = isa.Program("smp_invalidate_interrupt")
    for s in senders:
        p.label(f"vec{s}")
        p.sub("sp", "sp", 8)
        p.store(0, ~(INVALIDATE_TLB_VECTOR_START + s), base="sp", comment="apicinterrupt: pushq $~vector")
        p.jmp("common")
    p.label("common")
    n = len(SAVE_ARGS)
    p.sub("sp", "sp", 8 * n, comment="SAVE_ARGS")
    for i, r in enumerate(SAVE_ARGS):
        p.store(8 * i, r, base="sp")
    p.load("r0", PDA_IRQCOUNT, base=GS, comment="interrupt: incl %gs:pda_irqcount")
    p.add("r0", "r0", 1)
    p.store(PDA_IRQCOUNT, "r0", base=GS)
    p.load("r1", 8 * n, base="sp", comment="sender = ~regs->orig_ax - INVALIDATE_TLB_VECTOR_START")
    p.alu("xor", "r1", "r1", -1)
    p.sub("r1", "r1", INVALIDATE_TLB_VECTOR_START)
    p.alu("shl", "r1", "r1", 3)
    p.load("r1", PER_CPU_OFFSET, base="r1", comment="__per_cpu_offset[sender]")
    p.add("r1", "r1", FLUSH_STATE, comment="f = &per_cpu(flush_state, sender)")
    p.load("r2", PDA_CPUNUMBER, base=GS, comment="cpu = smp_processor_id()")
    p.movi("r3", 1)
    p.alu("shl", "r3", "r3", "r2")
    p.load("r4", FS_MASK, base="r1", comment="cpu_isset(cpu, f->flush_cpumask)")
    p.alu("and", "r4", "r4", "r3")
    p.br("eq", "r4", 0, "ack_only")
    p.load("r4", FS_MM, base="r1", comment="f->flush_mm")
    p.load("r5", PDA_ACTIVE_MM, base=GS, comment="read_pda(active_mm)")
    p.br("ne", "r4", "r5", "leave_mm")
    p.load("r5", PDA_MMU_STATE, base=GS, comment="read_pda(mmu_state) == TLBSTATE_OK")
    p.br("ne", "r5", TLBSTATE_OK, "leave_mm")
    p.load("r4", FS_VA, base="r1", comment="f->flush_va")
    if invalidate:
        p.invlpg(0, base="r4", comment="__flush_tlb_one(f->flush_va)")
    p.eoi(comment="out: ack_APIC_irq()")
    p.movi("r5", 0)
    p.sub("r5", "r5", "r3")
    p.fadd("r6", FS_MASK, "r5", base="r1", comment="cpu_clear(cpu, f->flush_cpumask): lock btr")
    p.jmp("tail")
    p.label("ack_only")
    p.eoi(comment="out: ack_APIC_irq() (cpu_clear of a clear bit changes nothing)")
    p.label("tail")
    p.load("r0", PDA_IRQ_TLB_COUNT, base=GS, comment="add_pda(irq_tlb_count, 1)")
    p.add("r0", "r0", 1)
    p.store(PDA_IRQ_TLB_COUNT, "r0", base=GS)
    p.load("r0", PDA_IRQCOUNT, base=GS, comment="ret_from_intr: decl %gs:pda_irqcount")
    p.sub("r0", "r0", 1)
    p.store(PDA_IRQCOUNT, "r0", base=GS)
    for i, r in enumerate(SAVE_ARGS):
        p.load(r, 8 * i, base="sp", comment="RESTORE_ARGS" if i == 0 else "")
    p.add("sp", "sp", 8 * n + 8, comment="drop the saved registers and orig_ax")
    p.iret(comment="iretq")
    p.label("leave_mm")
    p.halt(comment="leave_mm (lazy TLB): not modelled; no CPU here is lazy, so a run that gets here stops")
    return p


# ---------------------------------------------------------------------------- running it

def _check_args(cfg, cores, system: str, what: str) -> MachineConfig:
    if isinstance(cfg, str):
        cfg = load_machine(cfg)
    if not isinstance(cfg, MachineConfig):
        raise MksimError(f"{what}: machine {cfg!r} must be a MachineConfig or a preset name")
    if system not in SYSTEMS:
        raise MksimError(f"{what}: unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    if isinstance(cores, bool) or not isinstance(cores, int) or not 2 <= cores <= cfg.cores:
        raise MksimError(f"{what}: cores {cores!r} on {cfg.name}: must be 2..{cfg.cores} "
                         f"(an initiator and at least one other CPU)")
    if cfg.cores > 64:
        raise MksimError(f"{what}: {cfg.name} has {cfg.cores} cores; the model's cpumask is one 64-bit word")
    domains = {cfg.domain(c) for c in range(cores)}
    if len(domains) > 1:
        raise MksimError(f"{what}: cores 0..{cores - 1} of {cfg.name} span {len(domains)} coherence domains; "
                         f"one SMP kernel needs its CPUs cache-coherent")
    if cfg.apic.mode != "xapic":
        raise MksimError(f"{what}: {cfg.name} has an {cfg.apic.mode} APIC; the Linux 2.6.26 path is "
                         f"xAPIC only (x2APIC support came in 2.6.27)")
    return cfg


def run_unmap(cfg: MachineConfig | str, cores: int, rounds: int, system: str = "linux", initiator: int = 0,
              lidt: bool = True, probe: bool = False, invalidate: bool = True) -> Machine:
    """Run ``rounds`` unmaps of a process on CPUs 0..cores-1, ``initiator`` unmapping; returns the
    finished Machine (timeline: the initiator's ``EV_UNMAP`` marks).  ``probe``: every CPU of the mm
    loads the last unmapped page afterwards (each must fault).  Raises MksimError on bad arguments and
    RuntimeError if the run does not finish."""
    cfg = _check_args(cfg, cores, system, "unmap")
    if isinstance(initiator, bool) or not isinstance(initiator, int) or not 0 <= initiator < cores:
        raise MksimError(f"unmap: initiator {initiator!r} must be one of the CPUs 0..{cores - 1}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 512:
        raise MksimError(f"unmap: rounds {rounds!r} must be 1..512 (one fresh page each)")
    cpus = list(range(cores))
    space = AddressSpace(cfg, cpus, rounds)
    m = Machine(cfg)
    w = m.workload()
    space.apply(w)
    for c in range(cfg.cores):
        b = percpu_base(cfg, c)
        w.write(b + PDA_CPUNUMBER, c.to_bytes(8, "little"))
        w.write(b + PDA_APICID, c.to_bytes(8, "little"))
    sender = initiator % NUM_INVALIDATE_TLB_VECTORS
    h = w.place(invalidate_handler([sender], invalidate), CODE_HANDLER)
    started = cpus if system == "linux" else list(range(cfg.cores))
    for c in started:
        if c == initiator:
            prog = initiator_program(cfg, system, c, cores - 1, space, rounds, lidt, probe)
            addr = CODE_INIT
        elif c < cores:
            prog = target_program(cfg, c, space, rounds, lidt, probe)
            addr = CODE_TARGET + 0x1000 * c
        else:
            prog = idle_program(cfg, c, rounds, lidt)
            addr = CODE_TARGET + 0x1000 * c
        w.start(c, w.place(prog, addr).pc())
        w.set_reg(c, "sp", stack_top(cfg, c))
        w.set_reg(c, GS, percpu_base(cfg, c))
        if c != initiator:
            w.set_handler(c, _vector(initiator), h.pc(f"vec{sender}"))
    m.load_workload(w)
    status = m.execute()
    faults = m.fault_report()
    if status != "done" or (faults and not probe):
        raise RuntimeError(f"{system} unmap on {cfg.name}, {cores} cores: run ended {status}, "
                           f"faults {faults[:3]}")
    return m


def unmap_cycles(cfg: MachineConfig, cores: int, repeat: int = 3, system: str = "linux") -> int:
    """End-to-end latency (cycles) of unmapping one page of a process that runs on CPUs 0..cores-1,
    initiated on CPU 0: from its RDTSC before taking the lock to its RDTSC after releasing it.  The median
    of ``repeat`` unmaps (each a fresh page) after one warm-up unmap.  Deterministic."""
    cfg = _check_args(cfg, cores, system, "unmap_cycles")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 100:
        raise MksimError(f"unmap_cycles: repeat {repeat!r} must be 1..100")
    m = run_unmap(cfg, cores, repeat + 1, system)
    tl = m.timeline()
    vals = [int(v) for v in tl[(tl[:, 0] == 0) & (tl[:, 2] == EV_UNMAP)][:, 3]]
    if len(vals) != repeat + 1:
        raise RuntimeError(f"unmap_cycles: {len(vals)} unmaps recorded, expected {repeat + 1}")
    return int(statistics.median_low(vals[1:]))


def sweep_cores(top: int) -> list[int]:
    """The core counts of a sweep up to ``top``: every count 2..8, then every fourth (12, 16, ...), and
    ``top`` itself (on amd-8x4: 2..8, 12, 16, 20, 24, 28, 32)."""
    ns = [n for n in range(2, min(top, 8) + 1)] + [n for n in range(12, top + 1, 4)]
    if top >= 2 and top not in ns:
        ns.append(top)
    return ns


def unmap_rows(cfg: MachineConfig, max_cores: int | None, repeat: int = 3,
               system: str = "linux") -> list[dict]:
    """Rows ``{"system", "cores", "cycles"}`` of ``unmap_cycles`` for the counts of ``sweep_cores``
    up to ``max_cores`` (None: the whole machine)."""
    if isinstance(cfg, str):
        cfg = load_machine(cfg)
    if max_cores is not None and (isinstance(max_cores, bool) or not isinstance(max_cores, int)
                                  or not 2 <= max_cores <= cfg.cores):
        raise MksimError(f"unmap_rows: max_cores {max_cores!r} on {cfg.name}: must be 2..{cfg.cores} "
                         f"(or None: the whole machine)")
    top = max_cores or cfg.cores
    return [{"system": system, "cores": n, "cycles": unmap_cycles(cfg, n, repeat, system)}
            for n in sweep_cores(top)]
