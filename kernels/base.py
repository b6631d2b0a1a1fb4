"""Kernel instances: what boot yields, wrapped for the personalities.

``boot`` returns plain records (``boot.loader.BootRecord``: cores, partition,
image, command line, boot information); a personality turns each into a
``KernelInstance`` and hands boot the init program its boot core runs
(``init_for``).  Personalities (one module per system) build on this.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from boot import timeline as tl
from boot.loader import BootRecord
from hwmodel import isa
from hwmodel.errors import MksimError
from kernels.personality import Personality


@dataclass
class KernelInstance:
    record: BootRecord
    kernel_id: int
    personality: str = "minimal"

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def cores(self) -> list[int]:
        return self.record.cores

    @property
    def boot_core(self) -> int:
        return self.record.cores[0]

    @property
    def partition(self) -> list[tuple[int, int]]:
        return self.record.partition

    def owns(self, addr: int) -> bool:
        return any(a <= addr < b for a, b in self.record.partition)


PAGE = 4096


def kernel_area(inst: KernelInstance, size: int) -> int:
    """A ``size``-byte, page-aligned piece of the kernel's own partition that nothing was loaded into
    (its image, modules, boot information, reserved ranges), for its early data.  It starts 1 MiB into
    the first hole large enough, leaving the hole's start to the boot flow's own tables (AP ids, the
    trampoline's second-stage page tables: at most 256 KiB)."""
    skip = 1 << 20
    need = skip + size
    taken = sorted([(a, a + len(b)) for a, b in inst.record.segments] + list(inst.record.reserved))
    for lo, hi in inst.partition:
        at = (max(lo, 1 << 20) + PAGE - 1) // PAGE * PAGE
        while at + need <= hi:
            clash = [e for s, e in taken if s < at + need and at < e]
            if not clash:
                return at + skip
            at = (max(clash) + PAGE - 1) // PAGE * PAGE
    raise MksimError(f"kernel {inst.name}: no {size} free bytes in its partition for its early data")


def minimal_init(inst: KernelInstance, p: isa.Program) -> None:
    """The smallest kernel init: read its boot information (command line, memory map) and its entry
    page, as a kernel's early code does before it brings up its other cores."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    for off in range(0, 256, 64):
        p.load("r5", r.bootinfo_addr + off, comment="parse the boot information")
    p.load("r5", r.entry & ~0x7, comment="first touch of the kernel's own text")
    tl.end(p, f"{r.name} init")


def init_for(personality: str | None = None) -> Callable[[BootRecord, int], Callable[[isa.Program], None]]:
    """The ``init`` parameter of ``boot.flows.build``: each kernel's init ops.  ``personality``:
    one name for every kernel; None: each kernel's own (its plan line's ``--personality``, else
    ``kernels.registry.DEFAULT``).  An unknown name is an error (``kernels.registry``)."""
    from kernels.registry import get   # local: the registry imports the personality modules

    if personality is not None:
        get(personality)

    def make(rec: BootRecord, kid: int) -> Callable[[isa.Program], None]:
        name = personality if personality is not None else rec.personality
        inst = KernelInstance(rec, kid, name)
        fn = get(name).init
        return lambda p: fn(inst, p)
    return make


PERSONALITY = Personality(
    name="minimal",
    summary="the smallest kernel: reads its boot information and first text page, then brings up its cores",
    boot="any",
    init=minimal_init,
)
