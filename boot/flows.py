"""Boot flows: a plan of kernels becomes one workload whose core programs do the booting.

* ``grub``: GRUB runs on core 0 and copies every grub-flow kernel's bytes into
  memory (a store per line: the copy costs what the memory system says).  The
  first kernel runs on core 0; GRUB starts each other grub-flow kernel's boot
  core with INIT-SIPI and a trampoline (Twin-Linux style).
* ``kexec``: the parent kernel's boot core copies the child's segments
  (``kexec_load`` rules), runs the purgatory's SHA-256 walk, then starts the
  child's boot core (Popcorn's secondaries, the 2025 multikernel RFC).
* ``trampoline``: RainForest's two-stage trampoline: the parent copies the
  child's bytes, writes the second stage's page tables (built in the child's
  own partition, mapping the child's virtual base onto its partition), then
  starts the child's boot core, which loads that CR3.

Each kernel's boot core then runs its init program (``init`` callback; the
default touches its boot information and marks the kernel up) and starts its
other cores with ``boot.smp``.  Partitions are enforced: each core belongs to
its kernel, and the first MiB (trampolines, mailboxes) is granted to all.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from boot import kexec, loader, smp
from boot import timeline as tl
from hwmodel import isa
from hwmodel.errors import MksimError
from hwmodel.pagetable import PageTables
from hwmodel.workload import Workload

LOW = loader.LOW_RESERVED     # the shared first MiB
UP = 0x6A000                  # kernel k stores 1 at UP + 8*k when its init is done
MAX_KERNELS = 40              # two start-up pages each, vectors 0x10..0x5F below the trampolines' data
KERNEL_VIRT = 0xFFFF_8000_0000_0000   # where the trampoline flow maps a sub-OS's partition
FLOWS = ("grub", "kexec", "trampoline")


@dataclass
class BootPlanRun:
    workload: Workload
    records: list[loader.BootRecord]
    kernel_ids: dict[str, int]
    page_tables: dict[str, PageTables] = field(default_factory=dict)
    kexec: dict[str, tuple[list, bytes]] = field(default_factory=dict)   # child: (segments, SHA-256 at load)


def _copy(p: isa.Program, rec: loader.BootRecord, line: int, step: str) -> None:
    """Copy a record's bytes into place: every destination line is filled and written, as a loader's
    memcpy touches them."""
    tl.begin(p, step)
    for k, (a, b) in enumerate(rec.segments):
        if not b:
            continue
        p.movi("r10", a)
        p.movi("r11", a + len(b))
        lab = f"{step}#{k}@{len(p.ops)}"
        p.label(lab)
        # the loaded bytes are already in memory (values and timing are separate): the copy's cost is
        # one line fill per destination line, modelled by reading and writing back the line's first word
        p.load("r12", 0, base="r10")
        p.store(0, "r12", base="r10")
        p.add("r10", "r10", line)
        p.br("ltu", "r10", "r11", lab)
    tl.end(p, step)


def default_init(rec: loader.BootRecord, kid: int) -> Callable[[isa.Program], None]:
    def init(p: isa.Program) -> None:
        tl.begin(p, f"{rec.name} init")
        p.load("r5", rec.bootinfo_addr, comment="read the boot information")
        p.load("r5", rec.bootinfo_addr + 64)
        tl.end(p, f"{rec.name} init")
    return init


def build(cfg, plans: list, base_dir: str | list[str] = ".", variant: str = "linux",
          init: Callable[[loader.BootRecord, int], Callable[[isa.Program], None]] = default_init) -> BootPlanRun:
    """Load every kernel of ``plans`` and build the boot as core programs."""
    if not plans:
        raise MksimError("boot plan: no kernels")
    records = [loader.place(p, cfg, base_dir) for p in plans]
    for r, p in zip(records, plans):
        if p.personality:
            r.personality = p.personality
    kid = {r.name: i for i, r in enumerate(records)}
    used: dict[int, str] = {}
    for r in records:
        for c in r.cores:
            if c in used:
                raise MksimError(f"boot plan: core {c} is given to {used[c]} and to {r.name}")
            used[c] = r.name
    spans = sorted((a, b, r.name) for r in records for a, b in r.partition)
    for (a0, b0, n0), (a1, b1, n1) in zip(spans, spans[1:]):
        if a1 < b0:
            raise MksimError(f"boot plan: partitions of {n0} [{a0:#x}, {b0:#x}) and {n1} [{a1:#x}, {b1:#x}) overlap")
    if records[0].cores[0] != 0:
        raise MksimError(f"boot plan: GRUB runs on core 0, so the first kernel ({records[0].name}) must list "
                         f"core 0 first (it lists {records[0].cores})")
    w = Workload(cfg.cores)
    line = cfg.line
    for r in records:
        k = kid[r.name]
        for a, b in r.partition:
            if b > LOW:
                w.partition(k, max(a, LOW), b)
        w.grant(k, 0, LOW)
        for c in r.cores:
            w.assign(c, k)
        loader.write(r, w)
    run = BootPlanRun(w, records, kid)
    by_parent: dict[str | None, list[loader.BootRecord]] = {}
    for p, r in zip(plans, records):
        if p.flow not in FLOWS:
            raise MksimError(f"kernel {r.name}: flow {p.flow!r} must be one of {', '.join(FLOWS)}", where=p.where)
        parent = p.parent if p.flow != "grub" else None
        if parent is not None and parent not in kid:
            raise MksimError(f"kernel {r.name}: parent {parent!r} is not in the plan", where=p.where)
        by_parent.setdefault(parent, []).append(r)
        if parent is not None:            # a parent loads its child: an explicit grant on the child's memory
            for a, b in r.partition:
                if b > LOW:
                    w.grant(kid[parent], max(a, LOW), b)
    flow_of = {r.name: p.flow for p, r in zip(plans, records)}
    # GRUB runs on the first kernel's boot core and writes every kernel it loads: grant it their memory
    for r in by_parent.get(None, [])[1:]:
        for a, b in r.partition:
            if b > LOW:
                w.grant(0, max(a, LOW), b)
    # one start-up vector page (below 1 MiB) per kernel: its boot core's and its APs' trampolines
    if len(records) > MAX_KERNELS:
        raise MksimError(f"boot plan: {len(records)} kernels; at most {MAX_KERNELS} (each needs two start-up "
                         "pages below 1 MiB)")
    vec = {r.name: 0x10 + 2 * kid[r.name] for r in records}
    used_holes: dict[str, list[tuple[int, int]]] = {}

    def kernel_program(r: loader.BootRecord, p: isa.Program) -> None:
        """What a kernel's boot core does: init, start its children, start its own APs, mark up."""
        k = kid[r.name]
        if r.name in run.page_tables:
            # a sub-OS started through the two-stage trampoline runs on its own page tables: its first
            # access goes through KERNEL_VIRT, which they map onto its partition
            lo = r.partition[0][0]
            tl.begin(p, f"{r.name} virtual")
            off = 0x1F0 if r.protocol == "linux" else 0       # the setup header copy / total_size
            va = KERNEL_VIRT + lo % (2 << 20) + (r.bootinfo_addr + off - lo)
            p.load("r6", va, virt=True, comment="boot info, through the map")
            tl.end(p, f"{r.name} virtual")
        init(r, k)(p)
        for child in by_parent.get(r.name, []):
            start_child(p, r, child)
        aps = r.cores[1:]
        if aps:
            lay = smp.SmpLayout(vec[r.name] + 1, (vec[r.name] + 1) << 12, r.cores[0], aps, smp.VARIANTS[variant],
                                smp.TRAMP_PT[0])
            smp.bsp_program(cfg, lay, p, mailbox=smp.MAILBOX + 0x40 * k, table=table_for(r, aps))
        p.store(UP + 8 * k, 1, comment=f"kernel {r.name} is up")
        p.halt()

    def table_for(r: loader.BootRecord, cores: list[int]) -> int:
        """A table of core ids in kernel r's own memory, clear of everything loaded there."""
        avoid = [(a, a + len(b)) for a, b in r.segments] + r.reserved + used_holes.get(r.name, [])
        at = loader._hole(r.partition, max(8 * len(cores), 8), avoid)
        used_holes.setdefault(r.name, []).append((at, at + 4096))
        w.write(at, smp.core_table(cores))
        return at

    def start_core(p: isa.Program, who: loader.BootRecord, target: loader.BootRecord) -> None:
        """Start another kernel's boot core the way the plan's SMP variant starts a core."""
        core = target.cores[0]
        tl.begin(p, f"start {target.name}", core)
        smp.emit_start(p, cfg, table_for(who, [core]), 1, vec[target.name], smp.VARIANTS[variant],
                       smp.MAILBOX + 0x40 * kid[target.name])
        tl.end(p, f"start {target.name}", core)

    def start_child(p: isa.Program, parent: loader.BootRecord, child: loader.BootRecord) -> None:
        flow = flow_of[child.name]
        if flow == "kexec":
            segs = _page_segments(child.segments)
            kexec.validate(segs, [(lo, hi) for lo, hi in child.partition][0] if len(child.partition) == 1
                           else None)
            run.kexec[child.name] = (segs, kexec.digest(segs))
            _copy(p, child, line, f"kexec load {child.name}")
            pg = kexec.purgatory(segs, line)
            p.extend(pg, f"purgatory-{child.name}")
        else:   # trampoline: copy, then the second stage's page tables in the child's own partition
            _copy(p, child, line, f"load {child.name}")
            lo, hi = child.partition[0]
            at = loader._hole(child.partition, 64 * 4096,
                              [(a, a + len(b)) for a, b in child.segments] + child.reserved)
            pt = PageTables(at, at + 64 * 4096)
            _map_partition(pt, KERNEL_VIRT, child.partition)
            run.page_tables[child.name] = pt
            for a, b in pt.writes():
                w.write(a, b)
            used_holes.setdefault(child.name, []).append((at, at + 64 * 4096))
            stage = loader.BootRecord(child.name, child.cores, child.partition, "", "tables", 0, "", 0, 0,
                                      pt.writes())
            _copy(p, stage, line, f"second stage {child.name}")
        start_core(p, parent, child)

    # GRUB on core 0: copy the grub-flow kernels, start the other grub-flow kernels, run the first
    first = records[0]
    g = isa.Program("grub")
    tl.begin(g, "grub")
    for r in by_parent.get(None, []):
        _copy(g, r, line, f"grub load {r.name}")
    tl.end(g, "grub")
    for r in by_parent.get(None, [])[1:]:
        start_core(g, first, r)
    kernel_program(first, g)
    w.start(first.cores[0], w.place(g, 0x80000).pc())
    # every other kernel: its boot core's trampoline (real -> long mode), then its kernel program
    for r in records[1:]:
        p = smp.trampoline(cfg, vec[r.name], None, run.page_tables[r.name].cr3 if r.name in run.page_tables
                           else smp.TRAMP_PT[0], mailbox=smp.MAILBOX + 0x40 * kid[r.name])
        p.ops.pop()                                    # drop its HALT: the kernel program follows
        kernel_program(r, p)
        if len(p) * isa.OP_BYTES > 4096:
            raise MksimError(f"kernel {r.name}: its boot program needs {len(p)} ops, more than the 4 KiB "
                             "start-up page holds (too many children for a kernel that is not the first)")
        w.place(p, vec[r.name] << 12)
    for r in records:                                  # the kernels' AP trampolines
        if r.cores[1:]:
            w.place(smp.trampoline(cfg, vec[r.name] + 1, None, smp.TRAMP_PT[0],
                                   mailbox=smp.MAILBOX + 0x40 * kid[r.name]), (vec[r.name] + 1) << 12)
    smp.write_trampoline_data(w)
    return run


def _page_segments(chunks: list[tuple[int, bytes]]) -> list[kexec.Segment]:
    """kexec segments for bytes at arbitrary addresses: page-rounded spans, each buffer holding every
    chunk at its exact offset (chunks sharing a page share a segment)."""
    spans: list[list] = []
    for a, b in sorted(chunks):
        lo, hi = a & ~0xFFF, (a + len(b) + 0xFFF) & ~0xFFF
        if spans and lo < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
            spans[-1][2].append((a, b))
        else:
            spans.append([lo, hi, [(a, b)]])
    out = []
    for lo, hi, parts in spans:
        buf = bytearray(max(a + len(b) for a, b in parts) - lo)
        for a, b in parts:
            buf[a - lo:a - lo + len(b)] = b
        out.append(kexec.Segment(bytes(buf), lo, hi - lo))
    return out


def _map_partition(pt: PageTables, va: int, partition: list[tuple[int, int]], limit: int = 1 << 30) -> None:
    """Map the partition's first ``limit`` bytes at ``va``, contiguously: 2 MiB pages where both sides
    are aligned, 4 KiB pages for the unaligned head and tail of each range."""
    left = limit
    va += sorted(partition)[0][0] % (2 << 20)       # va and pa congruent mod 2 MiB: big pages line up
    for lo, hi in sorted(partition):
        at = lo
        while at < hi and left > 0:
            big = (at % (2 << 20) == 0 and va % (2 << 20) == 0 and at + (2 << 20) <= hi and left >= 2 << 20)
            size = 2 << 20 if big else 4096
            pt.map(va, at, size=size)
            va, at, left = va + size, at + size, left - size
