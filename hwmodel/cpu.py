"""Cores that run micro-op programs, in compiled code (numba).

The rules are in ``cpu_spec.md`` beside this file; ``reference_cpu.py``
implements the same rules in plain Python.  The state is struct-of-arrays
(``CpuState``), handed to compiled code as one tuple (``pack``), next to the
memory system's tuple (``engine.pack``).  ``run`` is the whole loop: pop the
core with the smallest (time, id), step it, reschedule it.  A core that is
still the earliest after its step keeps running without a trip through the
heap; that changes nothing but speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodel import isa
from hwmodel._numba import njit
from hwmodel import apic
from hwmodel.tupleref import ref
from hwmodel.apic import (APIC_BASE, DFR, EOI, ESR, ESR_SEND_ILLEGAL, ICR_BUSY, ICR_HIGH, ICR_LOW, ID, INIT, LDR, LOWEST,
                          NMI, NMI_VECTOR, STARTUP, FIXED, decode, logical_match)
from hwmodel.engine import (CDOM, CLOCK, DCOUNT, _heap_pop, _heap_push, DPATH, GEO, IPATH, MSG, PARAMS, access,
                            dir_over_half, flush_domain, flush_line, hold_lines, request_delay, would_hit)
from hwmodel.state import LAT, P_CPP, P_LINEBITS, P_MEMOCC, P_NDOM
from hwmodel.trace import KIND_I, KIND_L, KIND_S
from hwmodel.workload import (COALESCED, DEADLOCK, DELIVERED, DONE, ERROR, FAULTED, FK_APIC, FK_BAD_MSR, FK_DOUBLE,
                              FK_MISALIGNED, FK_NO_CODE,
                              FK_NO_HANDLER, FK_NONCANONICAL, FK_NOT_PAGING, FK_NOT_PRESENT, FK_NOT_WRITABLE,
                              FK_PARTITION, FK_PRIVILEGE, FK_REPART, FK_STACK, FK_UNSUPPORTED, HALTED, IGNORED, LIMIT, PENDING, PROG_STATS, RSTACK, RUN,
                              S_ATOMICS, S_FAULTS, S_FETCH_STALL, S_INTERRUPTS, S_IPIS_SENT, S_LOADS, S_OPS,
                              S_ICR_WAIT, S_PREEMPTED, S_SLEEP_CYCLES, S_SPIN_SLEEPS, S_STORES, S_TIMER_INTS,
                              S_TIMER_LOST, S_TLB_HITS, S_TLB_MISSES, S_WALK_CYCLES, SPIN,
                              WFI, WFS, Workload)

GROW = 3            # run() status: a log or the memory pool is full; grow and call again

# cpar[core, K_*]: costs (in the core's own cycles) and modes
(K_ALU, K_ATOMIC, K_RDTSC, K_MSR, K_MMIO, K_ENTRY, K_IRET, K_INVLPG, K_CR3, K_TLBSETS, K_TLBWAYS, K_X2APIC,
 K_IPILAT, K_NSEG, K_WIDTH, K_SPINWAKE) = range(16)
K_TNUM, K_TDEN, K_TSCDL, K_APICVER = range(16, 20)     # APIC timer clock (num/den ticks a timer tick), TSC-deadline, version
K_ICRBUSY, K_MCAST, K_LIDT = 20, 21, 22      # apic.icr_busy, apic.multicast == "serial", core.lidt_latency
K_SUPER = 23                                 # the supervisor kernel (Workload.supervisor; NO_SUPERVISOR: none)
K_PAUSE = 28                                 # 24-27, 29: reserved
K_CLFLUSH, K_WBINVD = 30, 31
NK = 32
# what needs growing (G_DIR: the coherence directory, which ``Machine`` grows)
G_IPI, G_FAULT, G_TL, G_PAGES, G_PEND, G_HEAP, G_DIR = range(7)
# directory entries one step may add at most, with room to spare: its access's (up to) two lines,
# a page walk's table lines, an interrupt frame's lines
DIR_HEADROOM = 64

(C_CODE, C_OPADDR, C_REGS, C_PC, C_STATE, C_IF, C_MODE, C_CR3, C_WAIT, C_SCHED, C_LASTF, C_IRR, C_ISR, C_IRRID,
 C_NMIP, C_HAND, C_RSTK, C_RSP, C_ICRLO, C_ICRHI, C_PEND, C_PENDN, C_IPI, C_NIPI, C_FAULTS, C_NFAULT, C_TL, C_NTL,
 C_TLB, C_TLBTICK, C_REGIONS, C_GRANTS, C_KERN, C_PKEYS, C_PSLOT, C_POOL, C_NPAGES, C_CPAR, C_PST, C_HEAP, C_HEAPN,
 C_SEGS, C_OUT, C_INF, C_BUSY, C_APIC, C_TIMER, C_RATIO, C_LST, C_IDT, C_LDR,
 C_DFR, C_ESR, C_ICRIDLE) = range(54)
# C_BUSY [cores, 2]: start and end of the COMPUTE in progress (-1: none); C_APIC [cores, 64]: APIC registers by
# offset >> 4; C_TIMER [cores, 5]: the APIC timer's count start, latched divisor, index of its next expiry, time of
# its next expiry (-1: not armed) and the TSC-deadline MSR
T_START, T_DIV, T_J, T_NEXT, T_DEADLINE = range(5)
HORIZON = np.int64(1) << 50         # times at or beyond this are never reached (the schedule keys time * 8192)
# C_RATIO[core]: num, den (one own cycle = num/den reference ticks), remainder carried (in 1/den ticks)
# C_LST[pool slot, line in page]: a coherence domain's copy of a line: bit 0 valid, bit 1 dirty
# C_IDT: IDT base set by LIDT (-1: never ran LIDT: interrupts use the return stack, no memory traffic);
# C_LDR / C_DFR: xAPIC logical destination and destination format registers; C_ESR: [errors since the last
# ESR write, the value ESR reads]; C_ICRIDLE: when the local APIC has sent its last IPI (delivery status idle)
# C_OUT: 0 status detail (grow code), 1 ops executed (all calls), 2 spinning cores, 3 longest pending queue,
# 4.. scratch
MASK = np.int64(-1)


@dataclass
class CpuState:
    code: np.ndarray; opaddr: np.ndarray; regs: np.ndarray; pc: np.ndarray; state: np.ndarray
    iflag: np.ndarray; mode: np.ndarray; cr3: np.ndarray; wait: np.ndarray; sched: np.ndarray
    lastf: np.ndarray; irr: np.ndarray; isr: np.ndarray; irrid: np.ndarray; nmip: np.ndarray
    hand: np.ndarray; rstk: np.ndarray; rsp: np.ndarray; icrlo: np.ndarray; icrhi: np.ndarray
    pend: np.ndarray; pendn: np.ndarray; ipi: np.ndarray; nipi: np.ndarray; faults: np.ndarray
    nfault: np.ndarray; tl: np.ndarray; ntl: np.ndarray; tlb: np.ndarray; tlbtick: np.ndarray
    regions: np.ndarray; grants: np.ndarray; kern: np.ndarray; pkeys: np.ndarray; pslot: np.ndarray
    pool: np.ndarray; npages: np.ndarray; cpar: np.ndarray; pst: np.ndarray; heap: np.ndarray
    heapn: np.ndarray; segs: np.ndarray; out: np.ndarray; inf: np.ndarray; busy: np.ndarray
    apic: np.ndarray; timer: np.ndarray; ratio: np.ndarray; lst: np.ndarray; idt: np.ndarray
    ldr: np.ndarray; dfr: np.ndarray; esr: np.ndarray; icridle: np.ndarray

    FIELDS = ("code", "opaddr", "regs", "pc", "state", "iflag", "mode", "cr3", "wait", "sched", "lastf", "irr",
              "isr", "irrid", "nmip", "hand", "rstk", "rsp", "icrlo", "icrhi", "pend", "pendn", "ipi", "nipi",
              "faults", "nfault", "tl", "ntl", "tlb", "tlbtick", "regions", "grants", "kern", "pkeys", "pslot",
              "pool", "npages", "cpar", "pst", "heap", "heapn", "segs", "out", "inf", "busy", "apic", "timer", "ratio",
              "lst", "idt", "ldr", "dfr", "esr", "icridle")


def pack(cs: CpuState) -> tuple:
    return tuple(getattr(cs, f) for f in CpuState.FIELDS)


# ------------------------------------------------------------------ functional memory (4 KiB pages)

@njit(forceinline=True, _nrt=False)
def _phash(page, mask):
    return np.int64((np.uint64(page) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(24)) & mask


@njit(forceinline=True, _nrt=False)
def page_slot(cs, page, create):
    """Pool slot of physical page ``page`` (unsigned page number), or -1 if never written."""
    keys, slots = cs[C_PKEYS], cs[C_PSLOT]
    mask = keys.shape[0] - 1
    h = _phash(page, mask)
    while keys[h] != 0:
        if keys[h] == page + 1:
            return slots[h]
        h = (h + 1) & mask
    if not create:
        return -1
    n = cs[C_NPAGES][0]
    keys[h] = page + 1
    slots[h] = n
    cs[C_NPAGES][0] = n + 1
    return n


@njit(forceinline=True, _nrt=False)
def read_bytes(cs, pa, n):
    """n (<= 8) bytes at physical pa, within one page, little-endian."""
    s = page_slot(cs, np.int64(np.uint64(pa) >> np.uint64(12)), False)
    if s < 0:
        return np.int64(0)
    pool = cs[C_POOL]
    off = pa & 4095
    v = np.uint64(0)
    for i in range(n):
        v |= np.uint64(pool[s, off + i]) << np.uint64(8 * i)
    return np.int64(v)


@njit(forceinline=True, _nrt=False)
def write_bytes(cs, pa, n, v):
    s = page_slot(cs, np.int64(np.uint64(pa) >> np.uint64(12)), True)
    pool = cs[C_POOL]
    off = pa & 4095
    u = np.uint64(v)
    for i in range(n):
        pool[s, off + i] = np.uint8((u >> np.uint64(8 * i)) & np.uint64(255))


@njit(forceinline=True, _nrt=False)
def size_mask(n):
    if n >= 8:
        return np.int64(-1)
    return (np.int64(1) << (8 * n)) - 1


# ------------------------------------------------------------------ coherence domains: each domain's copies

@njit(forceinline=True, _nrt=False)
def key_slot(cs, key, create):
    """Pool slot of page-table key ``key`` (a page's key is page + 1), or -1."""
    keys, slots = cs[C_PKEYS], cs[C_PSLOT]
    mask = keys.shape[0] - 1
    h = _phash(key - 1, mask)
    while keys[h] != 0:
        if keys[h] == key:
            return slots[h]
        h = (h + 1) & mask
    if not create:
        return -1
    n = cs[C_NPAGES][0]
    keys[h] = key
    slots[h] = n
    cs[C_NPAGES][0] = n + 1
    return n


@njit(forceinline=True, _nrt=False)
def dom_key(d, page):
    """Key of domain d's copy of a page: above every memory page's key (page + 1 <= 2**52)."""
    return page + 1 + ((d + 1) << 52)


@njit(_nrt=False)
def dom_page(st, cs, c, pa):
    """Pool slot of core c's domain copy of pa's page, with pa's line valid in it (filled from memory)."""
    lb = st[PARAMS][P_LINEBITS]
    page = np.int64(np.uint64(pa) >> np.uint64(12))
    s = key_slot(cs, dom_key(st[CDOM][c], page), True)
    m = page_slot(cs, page, True)        # memory's page exists too: write-backs need no new page
    li = (pa & 4095) >> lb
    lst = cs[C_LST]
    if (lst[s, li] & 1) == 0:
        pool = cs[C_POOL]
        for i in range(li << lb, (li + 1) << lb):
            pool[s, i] = pool[m, i]
        lst[s, li] = 1
    return s


@njit(_nrt=False)
def dom_writeback(cs, s, page, li, lb, clear):
    """Write line li of the domain copy in slot s back to memory if dirty; drop it if ``clear``."""
    lst = cs[C_LST]
    if (lst[s, li] & 3) == 3:
        m = page_slot(cs, page, True)
        pool = cs[C_POOL]
        for i in range(li << lb, (li + 1) << lb):
            pool[m, i] = pool[s, i]
    lst[s, li] = 0 if clear else lst[s, li] & 1


@njit(forceinline=True, _nrt=False)
def fread(st, cs, c, pa, n):
    """n (<= 8) bytes at physical pa (one page) as core c sees them: memory on a one-domain machine,
    else its domain's copy of each line (filled from memory when the domain has none)."""
    if st[PARAMS][P_NDOM] == 1:
        return read_bytes(cs, pa, n)
    v = np.uint64(0)
    pool = cs[C_POOL]
    for i in range(n):
        s = dom_page(st, cs, c, pa + i)
        v |= np.uint64(pool[s, (pa + i) & 4095]) << np.uint64(8 * i)
    return np.int64(v)


@njit(forceinline=True, _nrt=False)
def fwrite(st, cs, c, pa, n, v):
    if st[PARAMS][P_NDOM] == 1:
        write_bytes(cs, pa, n, v)
        return
    u = np.uint64(v)
    pool, lst = cs[C_POOL], cs[C_LST]
    lb = st[PARAMS][P_LINEBITS]
    for i in range(n):
        s = dom_page(st, cs, c, pa + i)
        pool[s, (pa + i) & 4095] = np.uint8((u >> np.uint64(8 * i)) & np.uint64(255))
        lst[s, ((pa + i) & 4095) >> lb] |= 2


@njit(_nrt=False)
def dom_flush_line(st, cs, c, line):
    """CLFLUSH, values: the domain's copy of ``line`` is written back if dirty, then dropped."""
    lb = st[PARAMS][P_LINEBITS]
    page = np.int64(np.uint64(line) >> np.uint64(12 - lb))
    s = key_slot(cs, dom_key(st[CDOM][c], page), False)
    if s >= 0:
        dom_writeback(cs, s, page, line & ((1 << (12 - lb)) - 1), lb, True)


@njit(_nrt=False)
def dom_flush_all(st, cs, c):
    """WBINVD, values: every copy the domain holds is written back if dirty, then dropped."""
    lb = st[PARAMS][P_LINEBITS]
    d = st[CDOM][c]
    lo = dom_key(d, np.int64(-1))
    keys, slots = cs[C_PKEYS], cs[C_PSLOT]
    for h in range(keys.shape[0]):
        k = keys[h]
        if lo < k <= lo + (np.int64(1) << 52):
            for li in range(4096 >> lb):
                dom_writeback(cs, slots[h], k - lo - 1, li, lb, True)


@njit(forceinline=True, _nrt=False)
def ticks(cs, c, n):
    """n cycles of core c in reference ticks: n * num / den, the remainder carried per core."""
    r = cs[C_RATIO]
    num = r[c, 0]
    den = r[c, 1]
    if num == den:
        return n
    q = n // den
    x = (n - q * den) * num + r[c, 2]
    r[c, 2] = x % den
    return q * num + x // den


# ------------------------------------------------------------------ logs and scheduling

@njit(forceinline=True, _nrt=False)
def heap_push(cs, key):
    cs[C_HEAPN][0] = _heap_push(cs[C_HEAP], cs[C_HEAPN][0], key)


@njit(forceinline=True, _nrt=False)
def heap_pop(cs):
    top, n = _heap_pop(cs[C_HEAP], cs[C_HEAPN][0])
    cs[C_HEAPN][0] = n
    return top


@njit(forceinline=True, _nrt=False)
def schedule(cs, q, w):
    """Schedule core q at time w, keeping an earlier time it already has."""
    sched = cs[C_SCHED]
    if sched[q] < 0 or w < sched[q]:
        sched[q] = w
        heap_push(cs, w * 8192 + q)


@njit(_nrt=False)
def record_fault(st, cs, c, pc, addr, kind, owner, t):
    f = cs[C_FAULTS]
    i = cs[C_NFAULT][0]
    f[i, 0], f[i, 1], f[i, 2], f[i, 3], f[i, 4], f[i, 5] = c, pc, addr, kind, owner, t
    cs[C_NFAULT][0] = i + 1
    cs[C_PST][c, S_FAULTS] += 1


@njit(_nrt=False)
def stop_core(st, cs, c, t):
    """The core is FAULTED at t."""
    if cs[C_STATE][c] == SPIN:
        cs[C_OUT][2] -= 1
    cs[C_STATE][c] = FAULTED
    st[CLOCK][c] = t
    wake_check(st, cs, c)      # an INIT already on its way still revives it


@njit(_nrt=False)
def enter_handler(st, cs, c, vec, ret_pc, h, t, rem):
    """Enter handler h for ``vec`` at t, returning to ``ret_pc``.  A core that never ran LIDT pushes
    (ret_pc, IF) on its return stack; one that did reads the IDT entry and pushes the 64-bit frame at sp
    through the memory system.  ``rem``: the rest of a COMPUTE it interrupts, kept on the return stack in both
    cases (with LIDT the return stack is a shadow of the frames: (ret_pc, IF, rem) per nesting level).
    Returns when the accesses are done, or -1 after a double fault."""
    sp = cs[C_RSP][c]
    if cs[C_IDT][c] < 0:
        cs[C_RSTK][c, sp, 0] = ret_pc
        cs[C_RSTK][c, sp, 1] = cs[C_IF][c]
        cs[C_RSTK][c, sp, 2] = rem
        cs[C_RSP][c] = sp + 1
        cs[C_IF][c] = 0
        cs[C_PC][c] = h
        return t
    ea = cs[C_IDT][c] + 16 * vec
    rsp = cs[C_REGS][c, isa.SP]
    new = (rsp & ~np.int64(15)) - 40
    for k in range(7):              # every address is checked before any access
        a = ea + 8 * k if k < 2 else new + 8 * (k - 2)
        ok, owner = partition_owner_ok(cs, c, a)
        if not ok:
            record_fault(st, cs, c, ret_pc, a, np.int64(FK_DOUBLE), owner, t)
            stop_core(st, cs, c, t)
            return np.int64(-1)
    t += maccess(st, c, np.int64(KIND_L), ea, np.int64(16), t)
    ncode = cs[C_OPADDR].shape[0]
    rip = cs[C_OPADDR][ret_pc] if 0 <= ret_pc < ncode else np.int64(-1)
    for k in range(4, -1, -1):      # SS, RSP, RFLAGS, CS, RIP: pushed from the top down
        if k == 4:
            v = np.int64(isa.FRAME_SS)
        elif k == 3:
            v = rsp
        elif k == 2:
            v = 2 | (cs[C_IF][c] << 9)
        elif k == 1:
            v = np.int64(isa.FRAME_CS)
        else:
            v = rip
        a = new + 8 * k
        t += maccess(st, c, np.int64(KIND_S), a, np.int64(8), t)
        fwrite(st, cs, c, a, np.int64(8), v)
        wake_spinners(st, cs, c, a, np.int64(8), t)
    cs[C_RSTK][c, sp, 0] = ret_pc
    cs[C_RSTK][c, sp, 1] = cs[C_IF][c]
    cs[C_RSTK][c, sp, 2] = rem
    cs[C_RSP][c] = sp + 1
    cs[C_REGS][c, isa.SP] = new
    cs[C_IF][c] = 0
    cs[C_PC][c] = h
    return t


@njit(_nrt=False)
def log_fault(st, cs, c, pc, addr, kind, owner, t):
    """Record a fault; trap to its handler (vector 14 or 13) or stop the core."""
    record_fault(st, cs, c, pc, addr, kind, owner, t)
    vec = 14 if (kind == FK_NOT_PRESENT or kind == FK_NOT_WRITABLE) else 13
    h = cs[C_HAND][c, vec]
    full = cs[C_RSP][c] >= RSTACK
    if kind == FK_NO_HANDLER or kind == FK_STACK or kind == FK_NO_CODE or kind == FK_DOUBLE or h < 0 or full:
        stop_core(st, cs, c, t)
        return
    te = enter_handler(st, cs, c, vec, pc, h, t, np.int64(0))
    if te >= 0:
        st[CLOCK][c] = te + ticks(cs, c, cs[C_CPAR][c, K_ENTRY])


@njit(forceinline=True, _nrt=False)
def timer_wake(cs, q):
    """The next expiry of q's APIC timer if it would latch an interrupt (unmasked, legal vector, IRR bit clear),
    else -1: only such an expiry wakes the core (the others are counted when the core next steps)."""
    te = cs[C_TIMER][q, T_NEXT]
    if te < 0:
        return np.int64(-1)
    lvt = cs[C_APIC][q, apic.LVT_TIMER >> 4]
    v = lvt & 0xFF
    if lvt & apic.LVT_MASK or v < 16 or (cs[C_IRR][q, v >> 6] >> (v & 63)) & 1:
        return np.int64(-1)
    return te


@njit(forceinline=True, _nrt=False)
def wake_check(st, cs, q):
    """A core that is not running, or is in a COMPUTE: schedule it at its earliest pending IPI (every IPI wakes
    its target, so that it takes effect, is ignored or is latched in IRR when it arrives) or timer expiry."""
    s = cs[C_STATE][q]
    busy = cs[C_BUSY]
    if s == RUN and busy[q, 1] < 0:
        return
    ipi = cs[C_IPI]
    best = np.int64(-1)
    for j in range(cs[C_PENDN][q]):
        i = cs[C_PEND][q, j]
        if best < 0 or ipi[i, 5] < best:
            best = ipi[i, 5]
    if s == RUN or s == SPIN or s == WFI:
        tw = timer_wake(cs, q)
        if tw >= 0 and (best < 0 or tw < best):
            best = tw
    if best < 0:
        return
    if s == RUN:
        w = max(best, busy[q, 0])
        if w < busy[q, 1]:
            schedule(cs, q, w)          # an interrupt may preempt the compute when it arrives
    else:
        schedule(cs, q, max(best, st[CLOCK][q]))


@njit(_nrt=False)
def log_ipi(st, cs, c, q, vector, mode, ts, arrive, outcome):
    ipi = cs[C_IPI]
    i = cs[C_NIPI][0]
    cs[C_NIPI][0] = i + 1
    ipi[i, 0], ipi[i, 1], ipi[i, 2], ipi[i, 3] = c, q, vector, mode
    ipi[i, 4], ipi[i, 5], ipi[i, 6], ipi[i, 7] = ts, arrive, outcome, (ts if outcome == ERROR else -1)
    cs[C_PST][c, S_IPIS_SENT] += 1
    return i


@njit(forceinline=True, _nrt=False)
def is_target(cs, c, q, sh, logical, dest, x2):
    """Is core q a target of an ICR write by c (shorthand, destination mode and field)?"""
    if sh == 1:
        return q == c
    if sh == 2:
        return True
    if sh == 3:
        return q != c
    if logical:
        return logical_match(x2, dest, cs[C_LDR][q], cs[C_DFR][q], q)
    return dest == q or dest == (0xFFFFFFFF if x2 else 0xFF)


@njit(_nrt=False)
def send_ipi(st, cs, c, low, dest, ts):
    """An ICR write by core c that the local APIC takes at ts.  Returns when its delivery status goes idle."""
    vector, mode, logical, sh, deassert = decode(low, dest)
    if deassert:
        return ts                   # INIT level de-assert: no message
    if (mode == FIXED or mode == LOWEST) and vector < 16:
        cs[C_ESR][c, 0] |= ESR_SEND_ILLEGAL     # SDM 10.5.3: not sent
        return ts
    ncores = st[CLOCK].shape[0]
    x2 = cs[C_CPAR][c, K_X2APIC]
    busy = cs[C_CPAR][c, K_ICRBUSY]
    n = 0
    first = -1
    if sh == 0 and not logical and dest != (0xFFFFFFFF if x2 else 0xFF):
        if 0 <= dest < ncores:      # one physical destination: no need to look at every core
            n, first = 1, dest
    else:
        for q in range(ncores):
            if is_target(cs, c, q, sh, logical, dest, x2):
                n += 1
                if first < 0:
                    first = q
    if n == 0:                      # a core the machine lacks, or a logical destination nobody matches
        log_ipi(st, cs, c, -1 if logical else dest, vector, mode, ts, ts, np.int64(ERROR))
        return ts + busy
    if mode == LOWEST and n > 1:
        n = 1                       # lowest priority: no TPR is modelled, the lowest-numbered core wins
    serial = cs[C_CPAR][c, K_MCAST]
    cpp = st[PARAMS][P_CPP]
    k = 0
    for q in range(first, ncores):
        if k == n:
            break
        if not is_target(cs, c, q, sh, logical, dest, x2):
            continue
        depart = ts + busy * k if serial else ts
        arrive = depart + cs[C_CPAR][c, K_IPILAT] + st[MSG][c // cpp, q // cpp]
        i = log_ipi(st, cs, c, q, vector, mode, depart, arrive, np.int64(PENDING))
        m = cs[C_PENDN][q]
        cs[C_PEND][q, m] = i
        cs[C_PENDN][q] = m + 1
        if m + 1 > cs[C_OUT][3]:
            cs[C_OUT][3] = m + 1
        wake_check(st, cs, q)
        k += 1
    return ts + busy * (n if serial else 1)



# ------------------------------------------------------------------ the local APIC's registers and timer

@njit(_nrt=False)
def apic_reset(cs, q):
    """Power-up / INIT values (SDM 10.4.7.1): LVT entries masked, TPR, counts and divide 0, timer disarmed.
    SVR reads 0x1FF: the model's APIC is always software-enabled."""
    r = cs[C_APIC]
    for k in range(r.shape[1]):
        r[q, k] = 0
    for off in (apic.LVT_CMCI, apic.LVT_TIMER, apic.LVT_THERMAL, apic.LVT_PERF, apic.LVT_LINT0, apic.LVT_LINT1,
                apic.LVT_ERROR):
        r[q, off >> 4] = apic.LVT_MASK
    r[q, apic.SVR >> 4] = 0x1FF
    tm = cs[C_TIMER]
    tm[q, T_START], tm[q, T_DIV], tm[q, T_J], tm[q, T_NEXT], tm[q, T_DEADLINE] = -1, 2, 0, -1, 0


@njit(forceinline=True, _nrt=False)
def timer_span(cs, q, j):
    """Core cycles from the count's start to its j-th expiry: ceil(j * count * divisor * num / den)."""
    par = cs[C_CPAR]
    a = j * cs[C_APIC][q, apic.TIMER_INIT >> 4] * cs[C_TIMER][q, T_DIV] * par[q, K_TNUM]
    return (a + par[q, K_TDEN] - 1) // par[q, K_TDEN]


@njit(_nrt=False)
def timer_arm(cs, q, t):
    """The initial count was written at t: count from t (0 stops the timer)."""
    tm = cs[C_TIMER]
    tm[q, T_DIV] = apic.divisor(cs[C_APIC][q, apic.TIMER_DIV >> 4])
    if cs[C_APIC][q, apic.TIMER_INIT >> 4] == 0:
        tm[q, T_START], tm[q, T_NEXT] = -1, -1
        return
    tm[q, T_START], tm[q, T_J] = t, 1
    tm[q, T_NEXT] = t + timer_span(cs, q, np.int64(1))


@njit(_nrt=False)
def timer_due(cs, q, upto):
    """Apply the APIC timer's expiries at or before ``upto``: the first latches the LVT vector in IRR unless it
    is masked, illegal (< 16) or already pending, or the core is not running; the rest are lost."""
    tm = cs[C_TIMER]
    te = tm[q, T_NEXT]
    if te < 0 or te > upto:
        return
    lvt = cs[C_APIC][q, apic.LVT_TIMER >> 4]
    mode = (lvt >> 17) & 3
    k = np.int64(1)
    if mode == apic.TIMER_PERIODIC:     # every expiry up to upto, in closed form: no drift
        par = cs[C_CPAR]
        a = cs[C_APIC][q, apic.TIMER_INIT >> 4] * tm[q, T_DIV] * par[q, K_TNUM]
        jmax = ((upto - tm[q, T_START]) * par[q, K_TDEN]) // a
        k = jmax - tm[q, T_J] + 1
        tm[q, T_J] = jmax + 1
        tm[q, T_NEXT] = tm[q, T_START] + timer_span(cs, q, jmax + 1)
    else:
        tm[q, T_NEXT] = -1
        if mode == apic.TIMER_DEADLINE:
            tm[q, T_DEADLINE] = 0       # it disarms itself and clears the MSR (10.5.4.1)
    v = lvt & 0xFF
    s = cs[C_STATE][q]
    pst = cs[C_PST]
    if (lvt & apic.LVT_MASK or v < 16 or s == WFS or s == HALTED or s == FAULTED
            or (cs[C_IRR][q, v >> 6] >> (v & 63)) & 1):
        pst[q, S_TIMER_LOST] += k
        return
    cs[C_IRR][q, v >> 6] |= np.int64(1) << (v & 63)
    cs[C_IRRID][q, v] = -1              # no IPI behind it
    pst[q, S_TIMER_INTS] += 1
    pst[q, S_TIMER_LOST] += k - 1


@njit(_nrt=False)
def timer_current(cs, q, t):
    """The current-count register at t: counts down from the initial count one step every divisor ticks."""
    tm = cs[C_TIMER]
    ic = cs[C_APIC][q, apic.TIMER_INIT >> 4]
    lvt = cs[C_APIC][q, apic.LVT_TIMER >> 4]
    mode = (lvt >> 17) & 3
    if tm[q, T_START] < 0 or mode == apic.TIMER_DEADLINE:
        return np.int64(0)
    par = cs[C_CPAR]
    steps = (max(t - tm[q, T_START], 0) * par[q, K_TDEN] // par[q, K_TNUM]) // tm[q, T_DIV]
    if tm[q, T_NEXT] < 0:
        return np.int64(0)              # a one-shot count that ran out stays at 0
    if mode == apic.TIMER_PERIODIC:
        return ic - steps % ic
    return max(tm[q, T_J] * ic - steps, 0)


@njit(_nrt=False)
def tsc_deadline_write(cs, q, v, t):
    """WRMSR IA32_TSC_DEADLINE at t (10.5.4.1): ignored unless the LVT timer is in TSC-deadline mode; 0 disarms;
    else the timer fires when the TSC (the core clock) reaches v, at once if v is past."""
    tm = cs[C_TIMER]
    if (cs[C_APIC][q, apic.LVT_TIMER >> 4] >> 17) & 3 != apic.TIMER_DEADLINE:
        return
    tm[q, T_DEADLINE] = v
    if v == 0 or np.uint64(v) >= np.uint64(HORIZON):
        tm[q, T_NEXT] = -1              # disarmed, or beyond any run
    else:
        tm[q, T_NEXT] = max(v, t)


@njit(forceinline=True, _nrt=False)
def apic_ok(off, n, rights):
    """Is a chunk at APIC offset ``off`` of n bytes a 4-byte access to a register with these rights?"""
    return n == 4 and (off & 15) == 0 and (apic.ACCESS[off >> 4] & rights) == rights


@njit(_nrt=False)
def apic_read(cs, c, off, t):
    """The value of the xAPIC register at ``off`` (a readable one) read at t."""
    r = cs[C_APIC]
    if off == ID:
        return c << 24
    if off == apic.VERSION:
        return cs[C_CPAR][c, K_APICVER]
    if off == apic.PPR:
        s = highest(cs[C_ISR], c)
        tpr = r[c, apic.TPR >> 4]
        return tpr if s < 0 or (tpr >> 4) >= (s >> 4) else s & 0xF0
    if off >= apic.ISR0 and off < apic.ISR0 + 0x80:
        k = (off - apic.ISR0) >> 4
        return (cs[C_ISR][c, k >> 1] >> (32 * (k & 1))) & 0xFFFFFFFF
    if off >= apic.TMR0 and off < apic.TMR0 + 0x80:
        return np.int64(0)              # every interrupt is edge-triggered
    if off >= apic.IRR0 and off < apic.IRR0 + 0x80:
        k = (off - apic.IRR0) >> 4
        return (cs[C_IRR][c, k >> 1] >> (32 * (k & 1))) & 0xFFFFFFFF
    if off == ICR_LOW:                  # delivery status (bit 12): busy until the APIC has sent the message
        return cs[C_ICRLO][c] | (ICR_BUSY if t < cs[C_ICRIDLE][c] else 0)
    if off == ICR_HIGH:
        return cs[C_ICRHI][c]
    if off == LDR:
        return cs[C_LDR][c]
    if off == DFR:
        return cs[C_DFR][c]
    if off == ESR:
        return cs[C_ESR][c, 1]
    if off == apic.TIMER_CUR:
        return timer_current(cs, c, t)
    return r[c, off >> 4]               # TPR, SVR, LVT entries, initial count, divide


@njit(_nrt=False)
def apic_write(st, cs, c, off, v, t):
    """Write a writable APIC register at t (value: its low 32 bits).  Returns 0, or FK_APIC for a value the
    model refuses."""
    r = cs[C_APIC]
    v &= 0xFFFFFFFF
    k = off >> 4
    if off == EOI:
        eoi(cs, c)
    elif off == ICR_HIGH:
        cs[C_ICRHI][c] = v
    elif off == ICR_LOW:
        cs[C_ICRLO][c] = v & ~np.int64(ICR_BUSY)         # delivery status is read-only
        cs[C_ICRIDLE][c] = max(cs[C_ICRIDLE][c], send_ipi(st, cs, c, v, (cs[C_ICRHI][c] >> 24) & 0xFF, t))
    elif off == LDR:
        cs[C_LDR][c] = v & np.int64(0xFF000000)          # logical APIC ID: bits 31:24
    elif off == DFR:
        cs[C_DFR][c] = v | np.int64(0x0FFFFFFF)          # model in bits 31:28; the rest reads as ones
    elif off == ESR:
        esr_latch(cs, c)
    elif off == apic.TPR:
        r[c, k] = v & 0xFF
    elif off == apic.SVR:
        if (v & apic.SVR_ENABLE) == 0:
            return FK_APIC              # software disable (10.4.7.2) is not modelled
        r[c, k] = v & 0x13FF
    elif off == apic.LVT_TIMER:
        mode = (v >> 17) & 3
        if mode == 3 or (mode == apic.TIMER_DEADLINE and cs[C_CPAR][c, K_TSCDL] == 0):
            return FK_APIC              # reserved timer mode
        if mode != (r[c, k] >> 17) & 3:     # a mode change disarms the timer (10.5.4.1)
            cs[C_TIMER][c, T_START], cs[C_TIMER][c, T_NEXT], cs[C_TIMER][c, T_DEADLINE] = -1, -1, 0
        r[c, k] = v & apic.LVT_BITS
    elif off == apic.TIMER_INIT:
        if (r[c, apic.LVT_TIMER >> 4] >> 17) & 3 != apic.TIMER_DEADLINE:     # ignored in TSC-deadline mode
            r[c, k] = v
            timer_arm(cs, c, t)
    elif off == apic.TIMER_DIV:
        r[c, k] = v & 0xB
    else:                               # the other LVT entries: kept; nothing in the model raises them
        r[c, k] = v & (apic.LVT_BITS & ~np.int64(0x60000))
    return 0


@njit(_nrt=False)
def code_pc(cs, addr):
    """The global op index of the op placed at physical code address ``addr``, or -1 if none is."""
    segs = cs[C_SEGS]
    for k in range(segs.shape[0]):
        off = addr - segs[k, 0]
        if segs[k, 0] >= 0 and 0 <= off < segs[k, 2] * isa.OP_BYTES and off % isa.OP_BYTES == 0:
            return segs[k, 1] + off // isa.OP_BYTES
    return -1


@njit(_nrt=False)
def read_msr(cs, c, msr, t1):
    """(readable, value) of MSR ``msr`` read by core c at t1: the table in cpu_spec.md, 'RDMSR'.
    One branch per row; a row that needs x2APIC mode sits below the mode check."""
    if msr == isa.MSR_TSC:
        return True, t1
    x2 = cs[C_CPAR][c, K_X2APIC]
    if msr == isa.MSR_APIC_BASE:
        return True, np.int64(APIC_BASE) | (np.int64(1) << 11) | (x2 << 10) | (np.int64(256) if c == 0 else 0)
    if msr == apic.MSR_TSC_DEADLINE and cs[C_CPAR][c, K_TSCDL]:
        return True, cs[C_TIMER][c, T_DEADLINE]      # 0 unless armed in TSC-deadline mode
    if x2 == 0 or msr < apic.MSR_X2APIC_BASE or msr >= apic.MSR_X2APIC_BASE + 64:
        return False, np.int64(0)
    if msr == isa.MSR_X2APIC_ID:
        return True, np.int64(c)
    if msr == isa.MSR_X2APIC_LDR:                   # derived from the id, read-only (SDM 10.12.10.2)
        return True, ((np.int64(c) >> 4) << 16) | (np.int64(1) << (c & 15))
    if msr == isa.MSR_X2APIC_ICR:
        return True, (cs[C_ICRHI][c] << 32) | (cs[C_ICRLO][c] & 0xFFFFFFFF)
    off = (msr - apic.MSR_X2APIC_BASE) << 4
    if off == DFR or off == ICR_HIGH or (apic.ACCESS[off >> 4] & apic.A_R) == 0:
        return False, np.int64(0)                   # no DFR and no ICR high half in x2APIC mode
    return True, apic_read(cs, c, off, t1)


@njit(_nrt=False)
def reset_core(st, cs, q):
    """INIT: wait for SIPI with a cleared core."""
    if cs[C_STATE][q] == SPIN:
        cs[C_OUT][2] -= 1
    cs[C_STATE][q] = WFS
    cs[C_IF][q] = 0
    for w in range(4):
        cs[C_IRR][q, w] = 0
        cs[C_ISR][q, w] = 0
    cs[C_NMIP][q] = -1
    cs[C_RSP][q] = 0
    for e in range(cs[C_TLB].shape[1]):
        cs[C_TLB][q, e, 0] = 0
    for r in range(isa.NREGS):
        cs[C_REGS][q, r] = 0
    cs[C_MODE][q] = isa.REAL
    cs[C_CR3][q] = 0
    cs[C_LASTF][q] = -1
    cs[C_INF][q, F_T] = -1          # an op in flight is abandoned
    cs[C_INF][q, F_NMIB] = 0
    cs[C_BUSY][q, 0] = -1           # so is a compute
    cs[C_BUSY][q, 1] = -1
    apic_reset(cs, q)
    cs[C_IDT][q] = -1
    cs[C_LDR][q] = 0
    cs[C_DFR][q] = 0xFFFFFFFF
    cs[C_ESR][q, 0] = 0
    cs[C_ESR][q, 1] = 0


@njit(_nrt=False)
def accept_ipis(st, cs, q, t):
    """Apply the IPIs pending at q that have arrived by t, in (arrive, id) order, and the APIC timer's
    expiries by t (an expiry before an IPI arriving in the same cycle)."""
    ipi = cs[C_IPI]
    pend = cs[C_PEND]
    while True:
        n = cs[C_PENDN][q]
        bj = -1
        for j in range(n):
            i = pend[q, j]
            if ipi[i, 5] <= t and (bj < 0 or ipi[i, 5] < ipi[pend[q, bj], 5]
                                   or (ipi[i, 5] == ipi[pend[q, bj], 5] and i < pend[q, bj])):
                bj = j
        if bj < 0:
            timer_due(cs, q, t)
            return
        i = pend[q, bj]
        timer_due(cs, q, ipi[i, 5])
        for j in range(bj, n - 1):           # keep the rest in order
            pend[q, j] = pend[q, j + 1]
        cs[C_PENDN][q] = n - 1
        mode = ipi[i, 3]
        s = cs[C_STATE][q]
        out = IGNORED
        if mode == INIT:
            reset_core(st, cs, q)
            out = DELIVERED
        elif mode == STARTUP:
            if s == WFS:
                out = DELIVERED
                addr = ipi[i, 2] << 12
                pc = code_pc(cs, addr)
                cs[C_MODE][q] = isa.REAL
                if pc < 0:
                    ipi[i, 6], ipi[i, 7] = out, t
                    log_fault(st, cs, q, np.int64(-1), addr, np.int64(FK_NO_CODE), np.int64(-1), t)
                    continue
                cs[C_PC][q] = pc
                cs[C_STATE][q] = RUN
        elif (mode == NMI or mode == FIXED or mode == LOWEST) and (s == WFS or s == HALTED or s == FAULTED):
            out = IGNORED
        elif mode == NMI:
            if cs[C_NMIP][q] >= 0:
                out = COALESCED
            else:
                cs[C_NMIP][q] = i
                out = PENDING
        elif mode == FIXED or mode == LOWEST:
            v = ipi[i, 2]
            if (cs[C_IRR][q, v >> 6] >> (v & 63)) & 1:
                out = COALESCED
            else:
                cs[C_IRR][q, v >> 6] |= np.int64(1) << (v & 63)
                cs[C_IRRID][q, v] = i
                out = PENDING
        if out != PENDING:
            ipi[i, 6], ipi[i, 7] = out, t


@njit(forceinline=True, _nrt=False)
def highest(words, q):
    for w in range(3, -1, -1):
        x = np.uint64(words[q, w])
        if x != np.uint64(0):
            b = 63
            while ((x >> np.uint64(b)) & np.uint64(1)) == np.uint64(0):
                b -= 1
            return w * 64 + b
    return -1


@njit(forceinline=True, _nrt=False)
def deliverable(cs, q):
    """The vector core q would take now, or -1 (NMI first, then IRR above the in-service class)."""
    if cs[C_NMIP][q] >= 0 and cs[C_INF][q, F_NMIB] == 0:
        return NMI_VECTOR + 256
    if cs[C_IF][q] == 0:
        return -1
    v = highest(cs[C_IRR], q)
    if v < 0:
        return -1
    s = highest(cs[C_ISR], q)
    tpr = cs[C_APIC][q, apic.TPR >> 4]
    if (v >> 4) > (s >> 4 if s >= 0 else -1) and (v >> 4) > (tpr >> 4 if tpr >= 16 else -1):
        return v
    return -1


@njit(_nrt=False)
def take_interrupt(st, cs, q, code, t):
    """Enter the handler for ``code`` (a vector, or 256 + 2 for an NMI)."""
    ipi = cs[C_IPI]
    if code >= 256:
        v = code - 256
        i = cs[C_NMIP][q]
        cs[C_NMIP][q] = -1
        cs[C_INF][q, F_NMIB] = 1          # further NMIs wait for the next IRET
    else:
        v = code
        cs[C_IRR][q, v >> 6] &= ~(np.int64(1) << (v & 63))
        cs[C_ISR][q, v >> 6] |= np.int64(1) << (v & 63)
        i = cs[C_IRRID][q, v]
    if i >= 0:                            # -1: the APIC timer's
        ipi[i, 6], ipi[i, 7] = DELIVERED, t
    cs[C_STATE][q] = RUN            # (the caller has taken it off the spinning count)
    h = cs[C_HAND][q, v]
    if h < 0:
        log_fault(st, cs, q, cs[C_PC][q], v, np.int64(FK_NO_HANDLER), np.int64(-1), t)
        return
    if cs[C_RSP][q] >= RSTACK:
        log_fault(st, cs, q, cs[C_PC][q], v, np.int64(FK_STACK), np.int64(-1), t)
        return
    busy = cs[C_BUSY]
    rem = busy[q, 1] - t if busy[q, 1] > t else 0     # the rest of a COMPUTE it interrupts
    busy[q, 0] = -1
    busy[q, 1] = -1
    te = enter_handler(st, cs, q, v, cs[C_PC][q], h, t, rem)
    if te < 0:
        return
    cs[C_PST][q, S_INTERRUPTS] += 1
    if rem > 0:
        cs[C_PST][q, S_PREEMPTED] += 1
    st[CLOCK][q] = te + ticks(cs, q, cs[C_CPAR][q, K_ENTRY])


@njit(forceinline=True, _nrt=False)
def eoi(cs, q):
    s = highest(cs[C_ISR], q)
    if s >= 0:
        cs[C_ISR][q, s >> 6] &= ~(np.int64(1) << (s & 63))


# ------------------------------------------------------------------ memory: TLB, walk, partitions

@njit(_nrt=False)
def maccess(st, c, kind, addr, n, t):
    """One timed access through the memory system (not inlined: one copy of the engine's code)."""
    return access(st, c, kind, addr, n, t)


@njit(forceinline=True, _nrt=False)
def tlb_find(cs, c, key, vpn):
    sets, ways = cs[C_CPAR][c, K_TLBSETS], cs[C_CPAR][c, K_TLBWAYS]
    b = (vpn & (sets - 1)) * ways
    tlb = cs[C_TLB]
    for w in range(ways):
        if tlb[c, b + w, 0] == key:
            return b + w
    return -1


@njit(_nrt=False)
def tlb_fill(cs, c, key, vpn, frame, wr):
    sets, ways = cs[C_CPAR][c, K_TLBSETS], cs[C_CPAR][c, K_TLBWAYS]
    b = (vpn & (sets - 1)) * ways
    tlb = cs[C_TLB]
    e = -1
    for w in range(ways):
        if tlb[c, b + w, 0] == 0:
            e = b + w
            break
    if e < 0:
        e = b
        for w in range(1, ways):
            if tlb[c, b + w, 3] < tlb[c, e, 3]:
                e = b + w
    cs[C_TLBTICK][0] += 1
    tlb[c, e, 0], tlb[c, e, 1], tlb[c, e, 2], tlb[c, e, 3] = key, frame, wr, cs[C_TLBTICK][0]


@njit(_nrt=False)
def translate(st, cs, c, va, write, t, res):
    """Virtual -> physical.  res[0] = pa, res[1] = walk cycles, res[2] = fault kind or -1."""
    res[1] = 0
    res[2] = -1
    top = va >> 47
    if top != 0 and top != -1:
        res[2] = FK_NONCANONICAL
        return
    v4 = np.int64(np.uint64(va) >> np.uint64(12)) & np.int64(0xFFFFFFFFF)
    v2 = v4 >> 9
    pst = cs[C_PST]
    tlb = cs[C_TLB]
    e = tlb_find(cs, c, (v4 << 1) + 1, v4)
    big = False
    if e < 0:
        e = tlb_find(cs, c, ((v2 << 1) | 1) + 1, v2)
        big = e >= 0
    if e >= 0:
        pst[c, S_TLB_HITS] += 1
        cs[C_TLBTICK][0] += 1
        tlb[c, e, 3] = cs[C_TLBTICK][0]
        if write and tlb[c, e, 2] == 0:
            res[2] = FK_NOT_WRITABLE
            return
        off = va & (0x1FFFFF if big else 0xFFF)
        res[0] = tlb[c, e, 1] | off
        return
    pst[c, S_TLB_MISSES] += 1
    table = cs[C_CR3][c] & np.int64(0x000FFFFFFFFFF000)
    wr = 1
    cyc = 0
    for level in range(4):
        shift = 39 - 9 * level
        ea = table + ((va >> shift) & 511) * 8
        cyc += maccess(st, c, np.int64(KIND_L), ea, np.int64(8), t + cyc)
        ent = fread(st, cs, c, ea, np.int64(8))
        if (ent & 1) == 0:
            res[1] = cyc
            res[2] = FK_NOT_PRESENT
            pst[c, S_WALK_CYCLES] += cyc
            return
        wr &= (ent >> 1) & 1
        if level == 1 and (ent >> 7) & 1:
            res[1] = cyc
            res[2] = FK_UNSUPPORTED
            pst[c, S_WALK_CYCLES] += cyc
            return
        if level == 2 and (ent >> 7) & 1:
            frame = ent & np.int64(0x000FFFFFFFE00000)
            tlb_fill(cs, c, ((v2 << 1) | 1) + 1, v2, frame, wr)
            res[1] = cyc
            pst[c, S_WALK_CYCLES] += cyc
            if write and wr == 0:
                res[2] = FK_NOT_WRITABLE
                return
            res[0] = frame | (va & 0x1FFFFF)
            return
        table = ent & np.int64(0x000FFFFFFFFFF000)
    tlb_fill(cs, c, (v4 << 1) + 1, v4, table, wr)
    res[1] = cyc
    pst[c, S_WALK_CYCLES] += cyc
    if write and wr == 0:
        res[2] = FK_NOT_WRITABLE
        return
    res[0] = table | (va & 0xFFF)


@njit(_nrt=False)
def invlpg(cs, c, va):
    top = va >> 47
    if top != 0 and top != -1:
        return                      # a non-canonical address maps nothing
    v4 = np.int64(np.uint64(va) >> np.uint64(12)) & np.int64(0xFFFFFFFFF)
    v2 = v4 >> 9
    e = tlb_find(cs, c, (v4 << 1) + 1, v4)
    if e >= 0:
        cs[C_TLB][c, e, 0] = 0
    e = tlb_find(cs, c, ((v2 << 1) | 1) + 1, v2)
    if e >= 0:
        cs[C_TLB][c, e, 0] = 0


@njit(_nrt=False)
def tlb_flush(cs, c):
    for e in range(cs[C_TLB].shape[1]):
        cs[C_TLB][c, e, 0] = 0


@njit(forceinline=True, _nrt=False)
def partition_owner_ok(cs, c, pa):
    """(allowed, owner of pa) for core c's kernel."""
    regions = cs[C_REGIONS]
    owner = -1
    for r in range(regions.shape[0]):
        if regions[r, 0] <= pa < regions[r, 1]:
            owner = regions[r, 2]
    k = cs[C_KERN][c]
    if regions.shape[0] == 0 or k < 0:
        return True, owner
    if owner == k and owner >= 0:
        return True, owner
    grants = cs[C_GRANTS]
    for g in range(grants.shape[0]):
        if grants[g, 0] <= pa < grants[g, 1] and grants[g, 2] == k:
            return True, owner
    return False, owner


@njit(_nrt=False)
def supervisor_op(st, cs, c, pc, op, a, b, cc, d, e, t1):
    """PART / ASSIGN at t1 (cpu_spec.md, *Partition changes*): the supervisor changes the partition table
    or moves a stopped core to another kernel.  Returns the op's end, or -1 after logging its fault."""
    par = cs[C_CPAR]
    regs = cs[C_REGS]
    kern = cs[C_KERN]
    if par[c, K_SUPER] < 0 or kern[c] != par[c, K_SUPER]:
        log_fault(st, cs, c, pc, np.int64(0), np.int64(FK_PRIVILEGE), np.int64(-1), t1)
        return np.int64(-1)
    if op == isa.PART:
        lo = b if e & 1 else regs[c, b]
        hi = cc if e & 2 else regs[c, cc]
        owner = d if e & 4 else regs[c, d]
        regions = cs[C_REGIONS]
        n = regions.shape[0]
        bad = a < 0 or a >= n or lo < 0 or lo > hi or hi > (np.int64(1) << 52) or (lo & 4095) != 0 \
            or (hi & 4095) != 0 or owner < -1
        other = np.int64(-1)
        if not bad and lo < hi:
            for r in range(n):
                if r != a and regions[r, 0] < hi and lo < regions[r, 1]:
                    bad = True
                    other = regions[r, 2]
                    break
        if bad:
            log_fault(st, cs, c, pc, lo, np.int64(FK_REPART), other, t1)
            return np.int64(-1)
        if lo == hi:
            lo, hi, owner = np.int64(0), np.int64(0), np.int64(-1)
        regions[a, 0], regions[a, 1], regions[a, 2] = lo, hi, owner
    else:
        q = a if e & 1 else regs[c, a]
        k = b if e & 2 else regs[c, b]
        ncores = kern.shape[0]
        if q < 0 or q >= ncores:
            log_fault(st, cs, c, pc, q, np.int64(FK_REPART), np.int64(-1), t1)
            return np.int64(-1)
        s = cs[C_STATE][q]
        if k < -1 or not (s == WFS or s == HALTED or s == FAULTED):
            log_fault(st, cs, c, pc, q, np.int64(FK_REPART), kern[q], t1)
            return np.int64(-1)
        kern[q] = k
    return t1 + ticks(cs, c, par[c, K_MSR])


@njit(forceinline=True, _nrt=False)
def is_apic(cs, c, pa):
    return cs[C_CPAR][c, K_X2APIC] == 0 and (pa & ~np.int64(0xFFF)) == APIC_BASE


@njit(_nrt=False)
def wake_spinners(st, cs, c, pa, n, d):
    """A write to the lines of [pa, pa+n) completed at d: wake other cores spinning on them."""
    if cs[C_OUT][2] == 0:
        return
    lb = st[PARAMS][P_LINEBITS]
    first = np.int64(np.uint64(pa) >> np.uint64(lb))
    last = np.int64((np.uint64(pa) + np.uint64(n - 1)) >> np.uint64(lb))
    state, wait = cs[C_STATE], cs[C_WAIT]
    cdom = st[CDOM]
    for q in range(state.shape[0]):
        if q != c and state[q] == SPIN and first <= wait[q] <= last and cdom[q] == cdom[c]:
            state[q] = RUN
            cs[C_OUT][2] -= 1
            schedule(cs, q, max(d, st[CLOCK][q]) + ticks(cs, q, cs[C_CPAR][q, K_SPINWAKE]))


# memory-op kinds for mem_op
M_LOAD, M_STORE, M_FADD, M_XCHG, M_CAS, M_SPIN = range(6)
# per-core in-flight record (C_INF columns): issue time of the data access (-1: none in flight),
# chunks, physical address / length / is-APIC of each chunk
F_T, F_N, F_PA0, F_PA1, F_LEN0, F_LEN1, F_MM0, F_MM1, F_HIT, F_ALU, F_NMIB = range(11)
# (F_ALU: the issue-width counter; F_NMIB: an NMI was taken and no IRET followed yet, SDM 6.7.1)


@njit(forceinline=True, _nrt=False)
def mem_prepare(st, cs, c, pc, mk, addr, n, virt, t1):
    """Translate and check a memory op; record its chunks in the core's in-flight row.

    Returns -1 if it faulted (logged and trapped), else the time it takes effect: its issue time
    (after the walk) if every chunk hits, else when the first missing line's request reaches its home."""
    write = mk != M_LOAD and mk != M_SPIN
    n1 = min(n, 4096 - (addr & 4095))
    nch = 1 if n1 == n else 2
    inf = cs[C_INF]
    tr = cs[C_OUT][8:11]
    t = t1
    for k in range(nch):
        a = addr if k == 0 else addr + n1
        if virt:
            if cs[C_MODE][c] != isa.LONG:
                log_fault(st, cs, c, pc, a, np.int64(FK_NOT_PAGING), np.int64(-1), t)
                return -1
            translate(st, cs, c, a, write, t, tr)
            t += tr[1]
            if tr[2] >= 0:
                log_fault(st, cs, c, pc, a, tr[2], np.int64(-1), t)
                return -1
            inf[c, F_PA0 + k] = tr[0]
        else:
            inf[c, F_PA0 + k] = a
    lb = st[PARAMS][P_LINEBITS]
    delay = -1
    rights = (apic.A_R if mk != M_STORE else 0) | (apic.A_W if write else 0)
    for k in range(nch):
        pa = inf[c, F_PA0 + k]
        inf[c, F_MM0 + k] = 0
        if is_apic(cs, c, pa):
            inf[c, F_MM0 + k] = 1
            if not apic_ok(pa & 0xFFF, n1 if k == 0 else n - n1, rights):
                log_fault(st, cs, c, pc, pa, np.int64(FK_APIC), np.int64(-1), t)
                return -1
            continue
        ok, owner = partition_owner_ok(cs, c, pa)
        if not ok:
            log_fault(st, cs, c, pc, pa, np.int64(FK_PARTITION), owner, t)
            return -1
        ln = k and n - n1 or n1
        first = np.int64(np.uint64(pa) >> np.uint64(lb))
        last = np.int64((np.uint64(pa) + np.uint64(ln - 1)) >> np.uint64(lb))
        for line in range(first, last + 1):
            if delay < 0 and not would_hit(st, c, line, write):
                delay = request_delay(st, c, line)      # in flight even when the delay is 0
    inf[c, F_T] = t
    inf[c, F_HIT] = 1 if delay < 0 else 0
    inf[c, F_N] = nch
    inf[c, F_LEN0] = n1
    inf[c, F_LEN1] = n - n1
    return t + max(delay, 0)


@njit(forceinline=True, _nrt=False)
def esr_latch(cs, c):
    """An ESR write: the errors since the last one become readable and are cleared (SDM 10.5.3)."""
    cs[C_ESR][c, 1] = cs[C_ESR][c, 0]
    cs[C_ESR][c, 0] = 0


@njit(forceinline=True, _nrt=False)
def mem_perform(st, cs, c, pc, mk, val, expect, res):
    """Perform the chunks recorded by ``mem_prepare``, timed from their issue time.
    res[0] = old/loaded value, res[1] = completion, res[2] = first line, res[3] = 1 on a fault,
    res[4] = 1 if every chunk hit."""
    write = mk != M_LOAD and mk != M_SPIN
    inf = cs[C_INF]
    t = inf[c, F_T]
    nch = inf[c, F_N]
    inf[c, F_T] = -1
    res[3] = 0
    n = inf[c, F_LEN0] + inf[c, F_LEN1]
    lb = st[PARAMS][P_LINEBITS]
    res[2] = np.int64(np.uint64(inf[c, F_PA0]) >> np.uint64(lb))
    old = np.int64(0)
    if mk != M_STORE:
        sh = 0
        for k in range(nch):
            pa, ln = inf[c, F_PA0 + k], inf[c, F_LEN0 + k]
            if inf[c, F_MM0 + k]:
                old |= (apic_read(cs, c, pa & 0xFFF, t) & size_mask(ln)) << (8 * sh)
            else:
                old |= fread(st, cs, c, pa, ln) << (8 * sh)
            sh += ln
    new = val
    if mk == M_FADD:
        new = old + val
    elif mk == M_CAS:
        new = val if old == (expect & size_mask(n)) else old
    res[0] = old
    kind = KIND_S if write else KIND_L
    allhit = inf[c, F_HIT]
    sh = 0
    for k in range(nch):
        pa, ln = inf[c, F_PA0 + k], inf[c, F_LEN0 + k]
        if inf[c, F_MM0 + k]:
            off = pa & 0xFFF
            if write and off == ICR_LOW and cs[C_ICRIDLE][c] > t:
                cs[C_PST][c, S_ICR_WAIT] += cs[C_ICRIDLE][c] - t      # the APIC is still sending
                t = cs[C_ICRIDLE][c]
            t += ticks(cs, c, cs[C_CPAR][c, K_MMIO])
            allhit = 0
            if write:
                fk = apic_write(st, cs, c, off, (new >> (8 * sh)) & size_mask(ln), t)
                if fk:
                    log_fault(st, cs, c, pc, pa, fk, np.int64(-1), t)
                    res[3] = 1
                    return
        else:
            t += maccess(st, c, kind, pa, ln, t)
            if write:
                fwrite(st, cs, c, pa, ln, new >> (8 * sh))
                wake_spinners(st, cs, c, pa, ln, t)
        sh += ln
    res[1] = t
    res[4] = allhit


# ------------------------------------------------------------------ one step

@njit(forceinline=True, _nrt=False)
def cond_true(cond, a, b):
    if cond == isa.EQ:
        return a == b
    if cond == isa.NE:
        return a != b
    if cond == isa.LT:
        return a < b
    if cond == isa.GE:
        return a >= b
    if cond == isa.LTU:
        return np.uint64(a) < np.uint64(b)
    return np.uint64(a) >= np.uint64(b)


@njit(forceinline=True, _nrt=False)
def go_to_sleep(st, cs, c, state):
    cs[C_STATE][c] = state
    if state == SPIN:
        cs[C_OUT][2] += 1
    wake_check(st, cs, c)


@njit(forceinline=True, _nrt=False)
def reg_op(cs, c, op, a, b, cc, d, e, npc):
    """A register-class op (NOP .. JMP: no memory, alu cost): returns the next pc."""
    regs = cs[C_REGS]
    if op == isa.MOVI:
        regs[c, a] = b
    elif op == isa.MOV:
        regs[c, a] = regs[c, b]
    elif op <= isa.SHR:
        x = regs[c, b]
        y = cc if d else regs[c, cc]
        if op == isa.ADD:
            r = x + y
        elif op == isa.SUB:
            r = x - y
        elif op == isa.MUL:
            r = x * y
        elif op == isa.AND:
            r = x & y
        elif op == isa.OR:
            r = x | y
        elif op == isa.XOR:
            r = x ^ y
        elif op == isa.SHL:
            r = x << (y & 63)
        else:
            r = np.int64(np.uint64(x) >> np.uint64(y & 63))
        regs[c, a] = r
    elif op == isa.BR:
        y = cc if d else regs[c, cc]
        if cond_true(a, regs[c, b], y):
            return e
    elif op == isa.JMP:
        return a
    return npc


@njit(forceinline=True, _nrt=False)
def alu_cost(cs, c):
    """Register ops and store hits issue ``issue_width`` to a cycle: every width-th one costs alu_latency."""
    n = cs[C_INF][c, F_ALU]            # counts 0 .. width-1 and wraps (n % width without a division)
    cs[C_INF][c, F_ALU] = 0 if n + 1 >= cs[C_CPAR][c, K_WIDTH] else n + 1
    return ticks(cs, c, cs[C_CPAR][c, K_ALU]) if n == 0 else 0


@njit(_nrt=False)
def finish_call(st, cs, c, pc, op, issued, now, res):
    """After the stack access of CALL / CALLR / RET: move sp and jump (cpu_spec.md, 'Calls')."""
    regs = cs[C_REGS]
    pst = cs[C_PST]
    end = max(res[1], now)
    if op == isa.RET:
        pst[c, S_LOADS] += 1
        target = code_pc(cs, res[0])
        if target < 0:
            log_fault(st, cs, c, pc, res[0], np.int64(FK_NO_CODE), np.int64(-1), end)
            return
        regs[c, isa.SP] += 8
    else:
        pst[c, S_STORES] += 1
        if res[4]:                  # the push hit: it retires into the store buffer
            end = max(issued + alu_cost(cs, c), now)
        a = cs[C_CODE][pc, 1]
        target = a if op == isa.CALL else code_pc(cs, regs[c, a])
        regs[c, isa.SP] -= 8
    cs[C_PC][c] = target
    st[CLOCK][c] = end


@njit(forceinline=True, _nrt=False)
def complete_mem(st, cs, c, now, res):
    """Perform the memory op at pc whose chunks are in flight; ``now`` is the time it takes effect."""
    pc = cs[C_PC][c]
    code, regs = cs[C_CODE], cs[C_REGS]
    op, a, e, f, g = code[pc, 0], code[pc, 1], code[pc, 5], code[pc, 6], code[pc, 7]
    imm = (e & isa.F_IMM) != 0
    mk = op - isa.LOAD
    val = np.int64(0)
    expect = np.int64(0)
    stack = op > isa.SPIN               # CALL, CALLR push the return address; RET pops one
    if stack:
        mk = M_LOAD if op == isa.RET else M_STORE
        val = cs[C_OPADDR][pc] + isa.OP_BYTES
    elif op == isa.STORE:
        val = a if imm else regs[c, a]
    elif op == isa.FADD or op == isa.XCHG:
        val = f if imm else regs[c, f]
    elif op == isa.CAS:
        val = regs[c, g]
        expect = regs[c, f]
    issued = cs[C_INF][c, F_T]
    mem_perform(st, cs, c, pc, mk, val, expect, res)     # one call site: this is inlined into step
    if res[3]:
        return
    if stack:
        finish_call(st, cs, c, pc, op, issued, now, res)
        return
    pst = cs[C_PST]
    end = max(res[1], now)
    if mk == M_LOAD:
        regs[c, a] = res[0]
        pst[c, S_LOADS] += 1
    elif mk == M_STORE:
        pst[c, S_STORES] += 1
        if res[4]:                  # a store that hits retires into the store buffer
            end = max(issued + alu_cost(cs, c), now)
    elif mk == M_SPIN:
        regs[c, a] = res[0]
        pst[c, S_LOADS] += 1
        y = f if imm else regs[c, f]
        if not cond_true((e >> 2) & 7, res[0], y):
            cs[C_WAIT][c] = res[2]
            pst[c, S_SPIN_SLEEPS] += 1
            st[CLOCK][c] = end
            go_to_sleep(st, cs, c, np.int64(SPIN))
            return
    else:
        regs[c, a] = res[0]
        pst[c, S_ATOMICS] += 1
        end += ticks(cs, c, cs[C_CPAR][c, K_ATOMIC])
        inf = cs[C_INF]
        for k in range(inf[c, F_N]):            # the line stays locked in M until the op ends
            if inf[c, F_MM0 + k] == 0:
                hold_lines(st, c, inf[c, F_PA0 + k], inf[c, F_LEN0 + k], end)
    cs[C_PC][c] = pc + 1
    st[CLOCK][c] = end


@njit(forceinline=True, _nrt=False)
def complete_miss(st, cs, c, now, res):
    """``complete_mem`` for an op that was in flight (a miss), not inlined: step keeps one inlined copy, for
    hits (compile time: the engine is one large function)."""
    complete_mem(st, cs, c, now, res)


@njit(_nrt=False)
def iret_frame(st, cs, c, pc, t1):
    """IRET of a core that ran LIDT: pop RIP, CS, RFLAGS, RSP, SS at sp through the memory system and use
    them (pc = the op at RIP, IF = RFLAGS bit 9, sp = RSP).  Returns the op's end, or -1 on a fault."""
    sp = cs[C_REGS][c, isa.SP]
    for k in range(5):
        ok, owner = partition_owner_ok(cs, c, sp + 8 * k)
        if not ok:
            log_fault(st, cs, c, pc, sp + 8 * k, np.int64(FK_PARTITION), owner, t1)
            return np.int64(-1)
    t = t1
    rip = np.int64(0)
    rflags = np.int64(0)
    rsp = np.int64(0)
    for k in range(5):
        a = sp + 8 * k
        t += maccess(st, c, np.int64(KIND_L), a, np.int64(8), t)
        v = fread(st, cs, c, a, np.int64(8))
        if k == 0:
            rip = v
        elif k == 2:
            rflags = v
        elif k == 3:
            rsp = v
    cs[C_PC][c] = code_pc(cs, rip)
    cs[C_IF][c] = (rflags >> 9) & 1
    cs[C_REGS][c, isa.SP] = rsp
    cs[C_INF][c, F_NMIB] = 0
    return t + ticks(cs, c, cs[C_CPAR][c, K_IRET])


@njit(_nrt=False)
def step(st, cs, c, res):
    """One step of core c at its clock (cpu_spec.md, 'One step').  Returns 1 if an op executed."""
    clock = st[CLOCK]
    t = clock[c]
    tn = cs[C_TIMER][c, T_NEXT]
    if cs[C_PENDN][c] > 0 or (tn >= 0 and tn <= t):
        accept_ipis(st, cs, c, t)
    state = cs[C_STATE]
    s = state[c]
    if s == WFS or s == HALTED or s == FAULTED:
        wake_check(st, cs, c)
        return 0
    if cs[C_INF][c, F_T] >= 0:
        complete_miss(st, cs, c, t, res)      # the second half of a memory op that missed
        return 0
    v = deliverable(cs, c)
    if v >= 0:
        if s == SPIN:
            cs[C_OUT][2] -= 1
            state[c] = RUN           # off its line already: a NO_HANDLER / STACK fault must not count it again
        take_interrupt(st, cs, c, v, t)
        wake_check(st, cs, c)
        return 0
    if s == SPIN or s == WFI:
        wake_check(st, cs, c)
        return 0
    busy = cs[C_BUSY]
    if busy[c, 1] >= 0:
        if busy[c, 1] > t:          # an event during a COMPUTE that does not interrupt it: the compute goes on
            clock[c] = busy[c, 1]
            wake_check(st, cs, c)
            return 0
        busy[c, 0] = -1
        busy[c, 1] = -1
    par = cs[C_CPAR]
    pst = cs[C_PST]
    pc = cs[C_PC][c]
    if pc < 0 or pc >= cs[C_CODE].shape[0] or par[c, K_NSEG] == 0:
        log_fault(st, cs, c, pc, np.int64(0), np.int64(FK_NO_CODE), np.int64(-1), t)     # ran off the end of the placed code
        return 0
    # fetch
    opaddr = cs[C_OPADDR][pc]
    iline = np.int64(np.uint64(opaddr) >> np.uint64(st[PARAMS][P_LINEBITS]))
    t1 = t
    if iline != cs[C_LASTF][c]:
        lat = maccess(st, c, np.int64(KIND_I), opaddr, np.int64(isa.OP_BYTES), t)
        stall = lat - st[GEO][st[IPATH][c, 0], LAT]
        if stall > 0:
            t1 = t + stall
            pst[c, S_FETCH_STALL] += stall
        cs[C_LASTF][c] = iline
    code = cs[C_CODE]
    op = code[pc, 0]
    a, b, cc, d, e = code[pc, 1], code[pc, 2], code[pc, 3], code[pc, 4], code[pc, 5]
    regs = cs[C_REGS]
    pst[c, S_OPS] += 1
    cs[C_OUT][1] += 1
    npc = pc + 1
    end = np.int64(-1)         # register-class ops: alu_cost() at the end
    if op <= isa.JMP:
        npc = reg_op(cs, c, op, a, b, cc, d, e, npc)
    elif op == isa.COMPUTE:
        n = a if d else regs[c, a]
        end = t1 + ticks(cs, c, max(n, 0))
        if n > 0:                   # interruptible: busy from t1 to end
            busy[c, 0] = t1
            busy[c, 1] = end
            cs[C_PC][c] = npc
            clock[c] = end
            wake_check(st, cs, c)
            return 1
    elif (op >= isa.LOAD and op <= isa.SPIN) or op == isa.CALL or op == isa.RET or op == isa.CALLR:
        if op <= isa.SPIN:
            addr = cc + (regs[c, b] if b >= 0 else 0)
            if op == isa.SPIN and addr & (d - 1):
                log_fault(st, cs, c, pc, addr, np.int64(FK_MISALIGNED), np.int64(-1), t1)
                return 1
            mk = op - isa.LOAD
            n = d
            virt = (e & isa.F_VIRT) != 0
        else:                   # the stack access of a call or return: 8 bytes, physical
            if op == isa.CALLR and code_pc(cs, regs[c, a]) < 0:
                log_fault(st, cs, c, pc, regs[c, a], np.int64(FK_NO_CODE), np.int64(-1), t1)
                return 1
            mk = M_LOAD if op == isa.RET else M_STORE
            addr = regs[c, isa.SP] - (0 if op == isa.RET else 8)
            n = 8
            virt = False
        te = mem_prepare(st, cs, c, pc, mk, addr, n, virt, t1)
        if te < 0:
            return 1
        if cs[C_INF][c, F_HIT] == 0:
            clock[c] = te          # a miss: it takes effect when its request reaches the home
            return 1
        complete_mem(st, cs, c, te, res)
        return 1
    elif op == isa.WRMSR:
        v = b if d else regs[c, b]
        end = t1 + ticks(cs, c, par[c, K_MSR])
        if par[c, K_X2APIC] and a == isa.MSR_X2APIC_ICR:
            cs[C_ICRLO][c] = v & 0xFFFFFFFF
            cs[C_ICRHI][c] = np.int64(np.uint64(v) >> np.uint64(32))
            if cs[C_ICRIDLE][c] > t1:                     # the APIC is still sending: the write waits
                pst[c, S_ICR_WAIT] += cs[C_ICRIDLE][c] - t1
                end = cs[C_ICRIDLE][c] + ticks(cs, c, par[c, K_MSR])
            cs[C_ICRIDLE][c] = max(cs[C_ICRIDLE][c],
                                   send_ipi(st, cs, c, v & 0xFFFFFFFF, np.int64(np.uint64(v) >> np.uint64(32)), end))
        elif par[c, K_X2APIC] and a == isa.MSR_X2APIC_EOI:
            eoi(cs, c)
        elif par[c, K_X2APIC] and a == isa.MSR_X2APIC_ESR and v == 0:
            esr_latch(cs, c)
        elif par[c, K_TSCDL] and a == apic.MSR_TSC_DEADLINE:
            tsc_deadline_write(cs, c, v, end)
        elif par[c, K_X2APIC] and a >= apic.MSR_X2APIC_BASE and a < apic.MSR_X2APIC_BASE + 64 and \
                (apic.ACCESS[a - apic.MSR_X2APIC_BASE] & apic.A_X) and (v >> 32) == 0:
            if apic_write(st, cs, c, (a - apic.MSR_X2APIC_BASE) << 4, v, end):
                log_fault(st, cs, c, pc, a, np.int64(FK_BAD_MSR), np.int64(-1), t1)
                return 1
        else:
            log_fault(st, cs, c, pc, a, np.int64(FK_BAD_MSR), np.int64(-1), t1)
            return 1
    elif op == isa.WFI:
        cs[C_IF][c] = 1
        cs[C_PC][c] = npc
        clock[c] = t1 + alu_cost(cs, c)
        if deliverable(cs, c) < 0:
            go_to_sleep(st, cs, c, np.int64(WFI))
        return 1
    elif op == isa.STI:
        cs[C_IF][c] = 1
    elif op == isa.CLI:
        cs[C_IF][c] = 0
    elif op == isa.IRET and cs[C_IDT][c] >= 0:
        end = iret_frame(st, cs, c, pc, t1)
        if end < 0:
            return 1
        npc = cs[C_PC][c]
        sp = cs[C_RSP][c]
        if sp > 0:                  # the shadow of the frame: back into an interrupted COMPUTE if it returns there
            sp -= 1
            cs[C_RSP][c] = sp
            rem = cs[C_RSTK][c, sp, 2]
            if rem > 0 and cs[C_RSTK][c, sp, 0] == npc:
                busy[c, 0] = end
                busy[c, 1] = end + rem
                clock[c] = end + rem
                wake_check(st, cs, c)
                return 1
    elif op == isa.IRET:
        sp = cs[C_RSP][c]
        if sp == 0:
            log_fault(st, cs, c, pc, np.int64(0), np.int64(FK_STACK), np.int64(-1), t1)
            return 1
        sp -= 1
        cs[C_RSP][c] = sp
        npc = cs[C_RSTK][c, sp, 0]
        cs[C_IF][c] = cs[C_RSTK][c, sp, 1]
        cs[C_INF][c, F_NMIB] = 0
        end = t1 + ticks(cs, c, par[c, K_IRET])
        rem = cs[C_RSTK][c, sp, 2]
        if rem > 0:                 # back into an interrupted COMPUTE: its remaining cycles
            busy[c, 0] = end
            busy[c, 1] = end + rem
            cs[C_PC][c] = npc
            clock[c] = end + rem
            wake_check(st, cs, c)
            return 1
    elif op == isa.SETVEC:
        cs[C_HAND][c, a] = b
    elif op == isa.INVLPG:
        invlpg(cs, c, cc + (regs[c, b] if b >= 0 else 0))
        end = t1 + ticks(cs, c, par[c, K_INVLPG])
    elif op == isa.WRCR3:
        cs[C_CR3][c] = a if d else regs[c, a]
        tlb_flush(cs, c)
        end = t1 + ticks(cs, c, par[c, K_CR3])
    elif op == isa.MODE:
        cs[C_MODE][c] = a
        tlb_flush(cs, c)
        end = t1 + ticks(cs, c, par[c, K_CR3])
    elif op == isa.RDTSC:
        regs[c, a] = t1
        end = t1 + ticks(cs, c, par[c, K_RDTSC])
    elif op == isa.MARK:
        tl = cs[C_TL]
        i = cs[C_NTL][0]
        tl[i, 0], tl[i, 1], tl[i, 2], tl[i, 3] = c, t1, a, (b if d else regs[c, b])
        cs[C_NTL][0] = i + 1
    elif op == isa.CLFLUSH:
        pa = cc + (regs[c, b] if b >= 0 else 0)
        line = np.int64(np.uint64(pa) >> np.uint64(st[PARAMS][P_LINEBITS]))
        flush_line(st, c, line, t1)
        if st[PARAMS][P_NDOM] > 1:
            dom_flush_line(st, cs, c, line)
        end = t1 + ticks(cs, c, par[c, K_CLFLUSH])
    elif op == isa.WBINVD:
        nwb = flush_domain(st, c, t1)
        if st[PARAMS][P_NDOM] > 1:
            dom_flush_all(st, cs, c)
        end = t1 + ticks(cs, c, par[c, K_WBINVD]) + nwb * st[PARAMS][P_MEMOCC]
    elif op == isa.LIDT:
        cs[C_IDT][c] = a if d else regs[c, a]
        end = t1 + ticks(cs, c, par[c, K_LIDT])
    elif op == isa.HALT:
        state[c] = HALTED
        clock[c] = t1
        cs[C_PC][c] = npc
        wake_check(st, cs, c)
        return 1
    elif op == isa.JMPR:
        npc = code_pc(cs, regs[c, a])
        if npc < 0:
            log_fault(st, cs, c, pc, regs[c, a], np.int64(FK_NO_CODE), np.int64(-1), t1)
            return 1
    elif op == isa.RDMSR:
        ok, v = read_msr(cs, c, b, t1)
        if not ok:
            log_fault(st, cs, c, pc, b, np.int64(FK_BAD_MSR), np.int64(-1), t1)
            return 1
        regs[c, a] = v
        end = t1 + ticks(cs, c, par[c, K_MSR])
    elif op == isa.PAUSE:
        end = t1 + ticks(cs, c, par[c, K_PAUSE])
    elif op == isa.PART or op == isa.ASSIGN:
        end = supervisor_op(st, cs, c, pc, op, a, b, cc, d, e, t1)
        if end < 0:
            return 1
    if end < 0:
        end = t1 + alu_cost(cs, c)
    cs[C_PC][c] = npc
    clock[c] = end
    return 1


@njit(forceinline=True, _nrt=False)
def fast_steps(st, cs, c, budget):
    """``step`` for the common case, inlined into ``run``: the register-class ops a running core runs in
    a row (at most ``budget``; -1: no limit), each on the instruction line the core fetched last, while
    nothing is pending, no miss is in flight, no interrupt can be taken, the core is not in a COMPUTE,
    its timer is not due and no other core is due first.  Returns how many ran, each exactly as
    ``step`` would run it (0: ``step`` takes the core).  A register op changes only the core's
    registers, pc, clock and issue counter, so what ``run`` checks between two ops (the logs' room,
    the core's state and schedule) stays as it was and only the clock-dependent checks repeat."""
    if cs[C_PENDN][c] > 0 or cs[C_STATE][c] != RUN or cs[C_INF][c, F_T] >= 0 or cs[C_BUSY][c, 1] >= 0 \
            or cs[C_CPAR][c, K_NSEG] == 0 or deliverable(cs, c) >= 0:
        return 0
    t = st[CLOCK][c]
    tn = cs[C_TIMER][c, T_NEXT]
    pc = cs[C_PC][c]
    code = cs[C_CODE]
    opaddr = cs[C_OPADDR]
    heap, heapn = cs[C_HEAP], cs[C_HEAPN]
    lb = np.uint64(st[PARAMS][P_LINEBITS])
    lastf = cs[C_LASTF][c]
    n = 0
    while n != budget:
        if (tn >= 0 and tn <= t) or pc < 0 or pc >= code.shape[0] or code[pc, 0] > isa.JMP:
            break
        if np.int64(np.uint64(opaddr[pc]) >> lb) != lastf:
            break
        if n > 0 and heapn[0] > 0 and heap[0] <= t * 8192 + c:
            break                           # another core is due first (run schedules this one)
        pc = reg_op(cs, c, code[pc, 0], code[pc, 1], code[pc, 2], code[pc, 3], code[pc, 4], code[pc, 5], pc + 1)
        t += alu_cost(cs, c)
        n += 1
    if n > 0:
        cs[C_PST][c, S_OPS] += n
        cs[C_OUT][1] += n
        cs[C_PC][c] = pc
        st[CLOCK][c] = t
    return n


# ------------------------------------------------------------------ the loop

@njit(forceinline=True, _nrt=False)
def room(st, cs):
    """0 if every log has room for one more step, else the G_* code of the one to grow (+1)."""
    ncores = st[CLOCK].shape[0]
    if cs[C_NIPI][0] + ncores > cs[C_IPI].shape[0]:
        return G_IPI + 1
    if cs[C_NFAULT][0] + 2 > cs[C_FAULTS].shape[0]:
        return G_FAULT + 1
    if cs[C_NTL][0] + 1 > cs[C_TL].shape[0]:
        return G_TL + 1
    need = 2 if st[PARAMS][P_NDOM] == 1 else 24     # domain copies: a page and its memory page per access
    if cs[C_NPAGES][0] + need > cs[C_POOL].shape[0] or 2 * (cs[C_NPAGES][0] + need) > cs[C_PKEYS].shape[0]:
        return G_PAGES + 1
    if cs[C_HEAPN][0] + ncores + 2 > cs[C_HEAP].shape[0]:
        return G_HEAP + 1
    if cs[C_OUT][3] + 1 > cs[C_PEND].shape[1]:
        return G_PEND + 1
    # the directory starts small and doubles when half full (so that its probes stay in the host's
    # caches while few lines live), up to the size that can never fill
    if dir_over_half(st[PARAMS], st[DCOUNT], DIR_HEADROOM):
        return G_DIR + 1
    return 0


@njit(_nrt=False)
def run(st_tuple, cs_tuple, max_ops):
    """Run until no core is scheduled, or ``max_ops`` ops have executed (-1: no limit).

    Returns DONE, DEADLOCK, LIMIT or GROW (``cs[C_OUT][0]`` says what to grow).  The two state
    tuples are passed down by reference (``hwmodel.tupleref``): one pointer each per call."""
    st = ref(st_tuple)
    cs = ref(cs_tuple)
    clock = st[CLOCK]
    sched = cs[C_SCHED]
    res = cs[C_OUT][20:26]
    ops = 0
    while True:
        if max_ops >= 0 and ops >= max_ops:
            return LIMIT
        if cs[C_HEAPN][0] == 0:
            break
        key = heap_pop(cs)
        c = key & 8191
        t = key >> 13
        if sched[c] != t:
            continue                   # stale: the core was rescheduled earlier
        sched[c] = -1
        while True:
            g = room(st, cs)
            if g:
                cs[C_OUT][0] = g - 1
                schedule(cs, c, t)
                return GROW
            if clock[c] < t:
                cs[C_PST][c, S_SLEEP_CYCLES] += t - clock[c]
                clock[c] = t
            elif clock[c] > t:
                clock[c] = t            # a core in a COMPUTE, stepped when an interrupt may preempt it
            n = fast_steps(st, cs, c, max_ops - ops if max_ops >= 0 else -1)
            if n > 0:
                ops += n
            else:
                ops += step(st, cs, c, res)
            if cs[C_STATE][c] != RUN or sched[c] >= 0:
                break
            t = clock[c]
            if max_ops >= 0 and ops >= max_ops:
                schedule(cs, c, t)
                return LIMIT
            if cs[C_HEAPN][0] > 0 and cs[C_HEAP][0] <= t * 8192 + c:
                schedule(cs, c, t)
                break
    for q in range(clock.shape[0]):
        if cs[C_STATE][q] == SPIN or cs[C_STATE][q] == WFI:
            return DEADLOCK
    return DONE


# ------------------------------------------------------------------ building the state

def build(machine_state, cfg, w: Workload) -> CpuState:
    """CPU state arrays for workload ``w`` on a machine (memory-system state already built)."""
    cores = cfg.cores
    ops, opaddr = w.code()
    if len(ops) == 0:
        ops = np.zeros((1, isa.NF), np.int64)
        ops[0, 0] = isa.HALT
        opaddr = np.zeros(1, np.int64)
    cc = cfg.core
    cpar = np.zeros((cores, NK), np.int64)
    ratio = np.zeros((cores, 3), np.int64)
    for q in range(cores):
        cpar[q] = core_params(cfg, q)
        ratio[q, 0], ratio[q, 1] = cfg.clock_ratio(q)
    segs = np.array([(a, 0, len(o)) for a, o, _ in w.segments] or [(-1, -1, 0)], np.int64).reshape(-1, 3)
    pc0 = 0
    for k, (a, o, _) in enumerate(w.segments):
        segs[k, 1] = pc0
        pc0 += len(o)
    cpar[:, K_NSEG] = len(w.segments)
    cpar[:, K_SUPER] = w.supervisor
    state = np.full(cores, WFS, np.int64)
    pc = np.zeros(cores, np.int64)
    mode = np.full(cores, isa.REAL, np.int64)
    sched = np.full(cores, -1, np.int64)
    heap = np.zeros(4 * cores + 64, np.int64)
    heapn = np.zeros(1, np.int64)
    clock = machine_state.clock
    for core, (p, m, at) in sorted(w.starts.items()):
        state[core], pc[core], mode[core] = RUN, p, m
        clock[core] = max(int(clock[core]), at)
    hand = np.full((cores, 256), -1, np.int64)
    for (core, v), p in w.handlers.items():
        hand[core, v] = p
    kern = np.full(cores, -1, np.int64)
    for core, k in w.kernels.items():
        kern[core] = k
    regs = np.zeros((cores, isa.NREGS), np.int64)
    for core, rs in w.regs.items():
        for r, v in rs.items():
            regs[core, r] = v
    cs = CpuState(
        code=np.ascontiguousarray(ops, np.int64), opaddr=np.ascontiguousarray(opaddr, np.int64), regs=regs, pc=pc,
        state=state, iflag=np.zeros(cores, np.int64), mode=mode, cr3=np.zeros(cores, np.int64),
        wait=np.full(cores, -1, np.int64), sched=sched, lastf=np.full(cores, -1, np.int64),
        irr=np.zeros((cores, 4), np.int64), isr=np.zeros((cores, 4), np.int64),
        irrid=np.full((cores, 256), -1, np.int64), nmip=np.full(cores, -1, np.int64), hand=hand,
        rstk=np.zeros((cores, RSTACK, 3), np.int64), rsp=np.zeros(cores, np.int64),
        icrlo=np.zeros(cores, np.int64), icrhi=np.zeros(cores, np.int64),
        pend=np.zeros((cores, 8), np.int64), pendn=np.zeros(cores, np.int64),
        ipi=np.zeros((max(256, 4 * cores), 8), np.int64), nipi=np.zeros(1, np.int64),
        faults=np.zeros((64, 6), np.int64), nfault=np.zeros(1, np.int64),
        tl=np.zeros((1024, 4), np.int64), ntl=np.zeros(1, np.int64),
        tlb=np.zeros((cores, cc.tlb_entries, 4), np.int64), tlbtick=np.zeros(1, np.int64),
        regions=np.array(w.regions or np.zeros((0, 3)), np.int64).reshape(-1, 3),
        grants=np.array(w.grants or np.zeros((0, 3)), np.int64).reshape(-1, 3), kern=kern,
        pkeys=np.zeros(256, np.int64), pslot=np.zeros(256, np.int64), pool=np.zeros((64, 4096), np.uint8),
        npages=np.zeros(1, np.int64), cpar=cpar, pst=np.zeros((cores, len(PROG_STATS)), np.int64), heap=heap, heapn=heapn,
        segs=segs, out=np.zeros(32, np.int64), inf=np.concatenate([np.full((cores, 9), -1, np.int64), np.zeros((cores, 2), np.int64)], axis=1),
        busy=np.full((cores, 2), -1, np.int64), apic=np.zeros((cores, 64), np.int64), timer=np.zeros((cores, 5), np.int64),
        ratio=ratio, lst=np.zeros((64, 4096 // cfg.line) if cfg.ndomains > 1 else (0, 0), np.int8),
        idt=np.full(cores, -1, np.int64), ldr=np.zeros(cores, np.int64), dfr=np.full(cores, 0xFFFFFFFF, np.int64),
        esr=np.zeros((cores, 2), np.int64), icridle=np.zeros(cores, np.int64))
    for core in range(cores):
        apic_reset(pack(cs), core)
    for core in sorted(w.starts):
        sched[core] = clock[core]
    for core in range(cores):
        if sched[core] >= 0:
            heap[heapn[0]] = sched[core] * 8192 + core
            heapn[0] += 1
    heap[:heapn[0]] = np.sort(heap[:heapn[0]])
    for a, data in w.memory:
        write_phys(cs, a, data)
    return cs


def core_params(cfg, q: int) -> np.ndarray:
    """cpar row of core q: its core type's costs (own cycles) and the machine's modes."""
    cc = cfg.core_type(q).core
    cpar = np.zeros(NK, np.int64)
    cpar[K_ALU], cpar[K_ATOMIC], cpar[K_RDTSC], cpar[K_MSR] = cc.alu_latency, cc.atomic_latency, cc.rdtsc_latency, cc.msr_latency
    cpar[K_MMIO], cpar[K_ENTRY], cpar[K_IRET], cpar[K_INVLPG] = cc.mmio_latency, cc.interrupt_entry, cc.iret_latency, cc.invlpg_latency
    cpar[K_CR3], cpar[K_TLBSETS], cpar[K_TLBWAYS] = cc.cr3_latency, cc.tlb_entries // cc.tlb_ways, cc.tlb_ways
    cpar[K_X2APIC], cpar[K_IPILAT] = int(cfg.apic.mode == "x2apic"), cfg.apic.ipi_latency
    cpar[K_WIDTH] = cc.issue_width
    cpar[K_SPINWAKE] = cc.spin_wake_latency
    cpar[K_CLFLUSH], cpar[K_WBINVD] = cc.clflush_latency, cc.wbinvd_latency
    cpar[K_PAUSE] = cc.pause_latency
    cpar[K_ICRBUSY], cpar[K_MCAST], cpar[K_LIDT] = cfg.apic.icr_busy, int(cfg.apic.multicast == "serial"), cc.lidt_latency
    ap = cfg.apic              # the timer's clock is in reference ticks (engine time), the same for every core
    cpar[K_TNUM], cpar[K_TDEN], cpar[K_TSCDL], cpar[K_APICVER] = ap.timer_period_num, ap.timer_period_den, int(ap.tsc_deadline), ap.version
    return cpar


def _grow_pages(cs: CpuState, need: int) -> None:
    cap = cs.pool.shape[0]
    while cap < need:
        cap *= 2
    if cap != cs.pool.shape[0]:
        pool = np.zeros((cap, 4096), np.uint8)
        pool[: cs.pool.shape[0]] = cs.pool
        cs.pool = pool
        if cs.lst.shape[0]:
            lst = np.zeros((cap, cs.lst.shape[1]), np.int8)
            lst[: cs.lst.shape[0]] = cs.lst
            cs.lst = lst
    kcap = cs.pkeys.shape[0]
    while kcap < 2 * need:
        kcap *= 2
    if kcap != cs.pkeys.shape[0]:
        keys, slots = np.zeros(kcap, np.int64), np.zeros(kcap, np.int64)
        mask = kcap - 1
        for i in np.nonzero(cs.pkeys)[0]:
            h = int(_phash(int(cs.pkeys[i]) - 1, mask))
            while keys[h] != 0:
                h = (h + 1) & mask
            keys[h], slots[h] = cs.pkeys[i], cs.pslot[i]
        cs.pkeys, cs.pslot = keys, slots


def write_phys(cs: CpuState, addr: int, data: bytes) -> None:
    """Python-side write into the functional store (loading images, page tables)."""
    data = bytes(data)
    if addr < 0 or addr + len(data) > 1 << 52:
        from hwmodel.errors import MksimError
        raise MksimError(f"physical write at {addr:#x} of {len(data)} bytes is outside 0..2**52")
    pos = 0
    while pos < len(data):
        a = addr + pos
        n = min(len(data) - pos, 4096 - (a & 4095))
        _grow_pages(cs, int(cs.npages[0]) + 2)
        s = page_slot(pack(cs), a >> 12, True)
        cs.pool[s, a & 4095:(a & 4095) + n] = np.frombuffer(data[pos:pos + n], np.uint8)
        pos += n


def read_phys(cs: CpuState, addr: int, n: int) -> bytes:
    out = bytearray()
    pos = 0
    while pos < n:
        a = addr + pos
        k = min(n - pos, 4096 - (a & 4095))
        s = page_slot(pack(cs), a >> 12, False)
        out += bytes(k) if s < 0 else cs.pool[s, a & 4095:(a & 4095) + k].tobytes()
        pos += k
    return bytes(out)


def read_domain(cs: CpuState, cfg, d: int, addr: int, n: int) -> bytes:
    """n bytes as coherence domain d sees them now: its copy of each line, else memory."""
    lb = cfg.line.bit_length() - 1
    out = bytearray(read_phys(cs, addr, n))
    t = pack(cs)
    for i in range(n):
        a = (addr + i) & (2**64 - 1)
        s = int(key_slot(t, dom_key(d, a >> 12), False))
        if s >= 0 and cs.lst[s, (a & 4095) >> lb] & 1:
            out[i] = cs.pool[s, a & 4095]
    return bytes(out)


def grow(cs: CpuState, what: int) -> None:
    """Double the array ``what`` (a G_* code) that ``run`` found full."""
    def bigger(a, axis=0):
        shape = list(a.shape)
        shape[axis] *= 2
        b = np.zeros(shape, a.dtype)
        b[tuple(slice(0, s) for s in a.shape)] = a
        return b
    if what == G_IPI:
        cs.ipi = bigger(cs.ipi)
    elif what == G_FAULT:
        cs.faults = bigger(cs.faults)
    elif what == G_TL:
        cs.tl = bigger(cs.tl)
    elif what == G_PAGES:
        _grow_pages(cs, 2 * int(cs.npages[0]) + 4)
    elif what == G_PEND:
        cs.out[3] = int(cs.pendn.max())
        if cs.out[3] + 1 > cs.pend.shape[1]:
            cs.pend = bigger(cs.pend, 1)
    elif what == G_HEAP:
        # drop stale entries: rebuild from the schedule
        live = [int(s) * 8192 + q for q, s in enumerate(cs.sched) if s >= 0]
        heap = np.zeros(max(len(cs.heap), 4 * len(live) + 64), np.int64)
        heap[:len(live)] = np.sort(np.array(live, np.int64))
        cs.heap = heap
        cs.heapn[0] = len(live)
