"""An IPI TLB shootdown, predicted: a thin wrapper over the Linux personality's unmap path.

    python benchmarks/ipi_shootdown.py [--machine amd-8x4] [--cores N] [--lidt] [--system linux|windows] [--json]

The program is ``kernels/linux.py`` (``run_unmap``): core 0 unmaps one page of a process that runs on
cores 0..N-1, as Linux 2.6.26 does on x86-64 (pte lock, ``ptep_get_and_clear`` on the process's real
page tables, local INVLPG, ``flush_tlb_others``: the cpumask in the sender's ``flush_state`` line, one
IPI per target through the ICR after polling its delivery status (physflat) or one logical IPI (flat,
machines with fewer than 8 APIC ids), every target's ``smp_invalidate_interrupt`` INVLPGs, EOIs and
clears its bit with a locked op, the initiator spins until the mask is empty and unlocks).  The time
is core 0's RDTSC after the unlock minus its RDTSC before the lock, of the second unmap (the first
warms the caches).

``--lidt`` gives every core an IDT, so interrupt entry and IRET move their frames through the caches
(``mksim``'s Linux personality always runs that way; without it interrupt entry is the fixed
``core.interrupt_entry``).  Nothing here was used to set a machine parameter: the number is a
prediction.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

# the code of the checkout this script is in, even where another copy is installed (so that
# two trees can be compared by running each one's script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hwmodel.config import load_machine
from kernels import linux


def run(machine: str, ncores: int, lidt: bool, system: str = "linux") -> dict:
    """One warm-up unmap and one timed one on cores 0..ncores-1; the result row."""
    cfg = load_machine(machine)
    if ncores > cfg.cores:
        raise SystemExit(f"{machine} has {cfg.cores} cores")
    m = linux.run_unmap(cfg, ncores, 2, system=system, lidt=lidt)
    tl = m.timeline()
    marks = tl[(tl[:, 0] == 0) & (tl[:, 2] == linux.EV_UNMAP)]
    cycles = int(marks[-1, 3]) if len(marks) else -1
    st = m.prog_stats()[0]
    return {"machine": machine, "cores": ncores, "lidt": lidt, "system": system, "status": "done",
            "cycles": cycles, "per_target": cycles / max(1, ncores - 1),
            "initiator_icr_wait": st.get("icr_wait_cycles", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machine", default="amd-8x4")
    ap.add_argument("--cores", type=int, default=0, help="cores taking part (default: all)")
    ap.add_argument("--lidt", action="store_true", help="interrupt frames through the caches")
    ap.add_argument("--system", default="linux", choices=linux.SYSTEMS)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n = a.cores or load_machine(a.machine).cores
    r = run(a.machine, n, a.lidt, a.system)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['machine']}: {r['cores']}-core IPI shootdown{' (LIDT frames)' if a.lidt else ''}: "
              f"{r['cycles']} cycles ({r['per_target']:.0f} per target), status {r['status']}")


if __name__ == "__main__":
    main()
