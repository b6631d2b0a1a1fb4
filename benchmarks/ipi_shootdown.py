"""An IPI TLB-shootdown-shaped program: what the model predicts its cost to be.

    python benchmarks/ipi_shootdown.py [--machine amd-8x4] [--cores N] [--lidt] [--json]

Shaped like Linux 2.6.26's x86-64 ``flush_tlb_others``: core 0 (the initiator)
writes the mask of the other cores to a shared word, then sends each of them a
fixed IPI one after another (physical destination; before each send it polls
the ICR until its delivery status reads idle, then writes ICR high and ICR low,
as ``__send_IPI_dest_field`` does), and spins until the mask is empty.  Each
target sits in a ``spin_until`` with interrupts on; its handler executes an
INVLPG, clears its bit with a locked add, sends an EOI and IRETs.  The time is
core 0's RDTSC after the mask empties minus its RDTSC before the first send.

``--lidt`` gives every core an IDT and a stack, so interrupt entry and IRET
move their frames through the caches.  Nothing here was used to set a machine
parameter: the number is a prediction (the paper's measured Linux figure is
not used by the model).  It uses only ops every version of the ISA has, except
``--lidt``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

try:
    import hwmodel  # noqa: F401
except ImportError:                      # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hwmodel import apic, isa
from hwmodel.machine import Machine

MASK = 0x200000          # the shared cpumask word
DONE = 0x200040          # core 0 sets it when the shootdown is over
VECTOR = 0xFD            # Linux's INVALIDATE_TLB_VECTOR range
IDT = 0x300000
STACKS = 0x400000        # core c's stack top: STACKS + 0x1000 * (c + 1)


def initiator(ncores: int, lidt: bool) -> isa.Program:
    p = isa.Program("initiator")
    if lidt:
        p.lidt(IDT)
        p.movi("r15", STACKS + 0x1000)
        p.mov("sp", "r15")
    others = sum(1 << q for q in range(1, ncores))
    p.store(MASK, others, comment="the cpumask: every other core")
    p.rdtsc("r1")
    for q in range(1, ncores):
        lab = f"idle{q}"
        p.label(lab)
        p.load("r3", apic.APIC_BASE + apic.ICR_LOW, size=4, comment="poll the delivery status")
        p.alu("and", "r3", "r3", 1 << 12)
        p.br("ne", "r3", 0, lab)
        p.ipi(q, VECTOR)
    p.spin_until(MASK, "eq", 0, rd="r4", comment="wait until every target has flushed")
    p.rdtsc("r2")
    p.sub("r2", "r2", "r1")
    p.mark(1, "r2")
    p.store(DONE, 1)
    return p.halt()


def target(q: int, lidt: bool) -> isa.Program:
    p = isa.Program(f"target{q}")
    if lidt:
        p.lidt(IDT)
        p.movi("r15", STACKS + 0x1000 * (q + 1))
        p.mov("sp", "r15")
    p.sti()
    p.spin_until(DONE, "ne", 0, rd="r4")
    return p.halt()


def handler(ncores: int) -> isa.Program:
    p = isa.Program("flush")
    p.invlpg(0x10000000)
    p.load("r6", apic.APIC_BASE + apic.ID, size=4)
    p.alu("shr", "r6", "r6", 24)
    p.movi("r7", 1)
    p.alu("shl", "r7", "r7", "r6")
    p.movi("r8", 0)
    p.sub("r7", "r8", "r7")
    p.fadd("r8", MASK, "r7", comment="clear this core's bit")
    p.eoi()
    return p.iret()


def run(machine: str, ncores: int, lidt: bool) -> dict:
    m = Machine(machine)
    if ncores > m.cfg.cores:
        raise SystemExit(f"{machine} has {m.cfg.cores} cores")
    w = m.workload()
    init = w.place(initiator(ncores, lidt), 0x100000)
    h = w.place(handler(ncores), 0x110000)
    w.start(0, init.pc())
    for q in range(1, ncores):
        t = w.place(target(q, lidt), 0x120000 + 0x1000 * q)
        w.start(q, t.pc())
        w.set_handler(q, VECTOR, h.pc())
    m.load_workload(w)
    status = m.execute()
    tl = m.timeline()
    cycles = int(tl[-1][3]) if len(tl) else -1
    st = m.prog_stats()[0]
    return {"machine": machine, "cores": ncores, "lidt": lidt, "status": status, "cycles": cycles,
            "per_target": cycles / max(1, ncores - 1), "initiator_icr_wait": st.get("icr_wait_cycles", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machine", default="amd-8x4")
    ap.add_argument("--cores", type=int, default=0, help="cores taking part (default: all)")
    ap.add_argument("--lidt", action="store_true", help="interrupt frames through the caches")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = a.cores or Machine(a.machine).cfg.cores
    r = run(a.machine, n, a.lidt)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['machine']}: {r['cores']}-core IPI shootdown{' (LIDT frames)' if a.lidt else ''}: "
              f"{r['cycles']} cycles ({r['per_target']:.0f} per target), status {r['status']}")


if __name__ == "__main__":
    main()
