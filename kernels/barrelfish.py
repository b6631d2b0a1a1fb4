"""Barrelfish: one CPU driver and monitor per core, monitors connected by URPC channels.

Boot: each core's kernel is loaded by the plan (GRUB for the first, the trampoline for the
others, as ``examples/barrelfish.cfg`` does); the boot core of each runs the init below.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import isa
from kernels.base import KernelInstance
from kernels.personality import Personality


def barrelfish_init(inst: KernelInstance, p: isa.Program) -> None:
    """The CPU driver's init on its core: read the Multiboot information, touch its text, then
    start the monitor (its first module): read the module's first lines."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    tl.begin(p, f"{r.name} cpu driver")
    for off in range(0, 256, 64):
        p.load("r5", r.bootinfo_addr + off, comment="multiboot information")
    p.load("r5", r.entry & ~0x7, comment="first touch of the CPU driver's text")
    tl.end(p, f"{r.name} cpu driver")
    tl.begin(p, f"{r.name} monitor")
    for start, _end, _cmd in r.modules[:1]:
        for off in range(0, 256, 64):
            p.load("r5", start + off, comment="monitor image")
    tl.end(p, f"{r.name} monitor")
    tl.end(p, f"{r.name} init")


PERSONALITY = Personality(
    name="barrelfish",
    summary="Barrelfish multikernel: a CPU driver and monitor per core, URPC messages, replicated state",
    boot="per-core",
    init=barrelfish_init,
)
