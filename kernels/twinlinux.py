"""Twin-Linux: GRUB boots two Linux kernels on one machine (one core of a Core 2 Duo and half of the
memory each, one kernel doing network I/O and one storage); they exchange data through a shared page
and notify each other by IPI.

Boot (``examples/twin-linux.cfg``): GRUB loads both kernels; each boot core runs Linux's early init
(``kernels.linux.linux_early``, the steps of ``kernels.linux.linux_init``) and then maps the
shared page: it writes the page's PTE into its own page table (the page lies below 1 MiB, outside
both kernels' memory, where both may write), clears its half of the page's header and marks itself
online there.

The channel itself (``kernels.channels``, ``twin-linux-ipi`` / ``twin-linux-poll``): one message at a
time in the page, the length word written last, an IPI to wake the other kernel.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import isa
from kernels.base import KernelInstance
from kernels.personality import Personality
from kernels.linux import linux_early

# below 1 MiB, beside Popcorn's table (kernels.popcorn) in the trampolines' gap: +0 the length word
# (0 = free, its own line), +64 + 8k kernel k's online word, data in the next page
TWIN_SHARED = 0x6D000
PTE_PRESENT_RW = 0x3


def twin_init(inst: KernelInstance, p: isa.Program) -> None:
    """Linux's early init, then map the shared page and announce the kernel in it."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    pt = linux_early(inst, p) + 0x1000
    tl.begin(p, f"{r.name} shared page")
    for i, page in enumerate((TWIN_SHARED, TWIN_SHARED + 0x1000)):
        p.store(pt + 8 * i, page | PTE_PRESENT_RW, comment="ioremap: the shared page's PTE" if i == 0 else "")
    if inst.kernel_id == 0:
        p.store(TWIN_SHARED, 0, comment="the first kernel frees the page (length 0)")
    p.store(TWIN_SHARED + 64 + 8 * inst.kernel_id, 1, comment="this kernel is online")
    tl.end(p, f"{r.name} shared page")
    tl.end(p, f"{r.name} init")


PERSONALITY = Personality(
    name="twin-linux",
    summary="Twin-Linux: two Linux kernels booted by GRUB, a shared page and IPIs between them",
    boot="any",
    init=twin_init,
)
