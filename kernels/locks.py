"""Kernel spinlocks as raw core-program code (``isa.Program``), for kernel paths whose registers are
fixed by hand (interrupt handlers, the Linux TLB shootdown in ``kernels/linux.py``).

The ticket spinlock is Linux's x86 one since 2.6.25 (``__ticket_spin_lock`` /
``__ticket_spin_unlock`` in ``include/asm-x86/spinlock.h``): a locked exchange-and-add takes a
ticket, the CPU polls "now serving" with ``rep; nop`` (PAUSE) between reads until it equals its
ticket, and unlock increments "now serving" with an ordinary (unlocked) increment, which x86's
in-order stores make safe.  Linux packs both halves into one 16-bit word; here they are two words of
one cache line (next ticket at +0, now serving at +8, the layout of ``hwmodel.asm.ticket_lock``), which
moves the same line the same way.
"""
from __future__ import annotations

from hwmodel import isa

LOCK_NEXT, LOCK_SERVING = 0, 8


def spin_lock(p: isa.Program, lock: int, label: str, ticket: str = "r6", serving: str = "r7",
              comment: str = "") -> None:
    """Take the ticket lock at physical ``lock`` (``label`` names its poll loop; it must be unique in
    ``p``).  Clobbers the two scratch registers."""
    p.fadd(ticket, lock + LOCK_NEXT, 1, comment=comment or "spin_lock: lock xadd, take a ticket")
    p.label(label)
    p.load(serving, lock + LOCK_SERVING, comment="now serving")
    p.br("eq", serving, ticket, f"{label}.got")
    p.pause(comment="rep; nop (cpu_relax)")
    p.jmp(label)
    p.label(f"{label}.got")


def spin_unlock(p: isa.Program, lock: int, scratch: str = "r7", comment: str = "") -> None:
    """Release the ticket lock at ``lock``: now serving += 1 by a plain load and store (only the holder
    writes it)."""
    p.load(scratch, lock + LOCK_SERVING, comment=comment or "spin_unlock: incb now serving")
    p.add(scratch, scratch, 1)
    p.store(lock + LOCK_SERVING, scratch)
