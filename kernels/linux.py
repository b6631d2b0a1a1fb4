"""Linux SMP, the shared-memory baseline: one kernel on all its cores.

Boot: GRUB or kexec loads the bzImage; the boot core runs the init below, then brings up the
APs with INIT-SIPI-SIPI (``boot.smp``, the ``linux`` variant), as the plans already do.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import isa
from kernels.base import KernelInstance
from kernels.personality import Personality

LINE = 64


def linux_init(inst: KernelInstance, p: isa.Program) -> None:
    """The boot core's early init: read the zero page (boot parameters and command line), touch the
    kernel text, and write one per-CPU area line for each core the kernel will run on
    (``setup_per_cpu_areas``) at the bottom of its partition's reserved space."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    tl.begin(p, f"{r.name} boot params")
    for off in range(0, 4096, 512):
        p.load("r5", r.bootinfo_addr + off, comment="zero page: boot_params")
    p.load("r5", r.entry & ~0x7, comment="first touch of the kernel's own text")
    tl.end(p, f"{r.name} boot params")
    tl.begin(p, f"{r.name} per-cpu areas")
    base = r.partition[0][0]
    for i, _ in enumerate(r.cores):
        p.store(base + i * LINE, i, comment="this_cpu_off for cpu i")
    tl.end(p, f"{r.name} per-cpu areas")
    tl.end(p, f"{r.name} init")


PERSONALITY = Personality(
    name="linux",
    summary="Linux SMP: one kernel on all its cores, shared page tables, IPI TLB shootdown",
    boot="smp",
    init=linux_init,
)
