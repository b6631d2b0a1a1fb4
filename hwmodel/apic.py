"""The local APIC's interrupt command register, as the Intel SDM (vol. 3A,
10.6.1 and 10.12.9) defines it, and the delivery rules the engine follows.

xAPIC: ICR low dword at ``APIC_BASE + 0x300`` (writing it sends), high dword
at ``+ 0x310`` (destination APIC id in bits 31:24).  x2APIC: one 64-bit MSR
0x830, destination in bits 63:32.  Low dword: vector 7:0, delivery mode 10:8,
destination mode 11 (0 physical), delivery status 12, level 14, trigger 15,
destination shorthand 19:18.  APIC ids are core numbers.

Delivery status (bit 12 of the xAPIC ICR low dword) reads 1 while the local
APIC is still sending the last IPI (``apic.icr_busy`` cycles a message); the
x2APIC ICR has no delivery status (SDM 10.12.9).  Logical destination mode
uses LDR (0xD0) and DFR (0xE0) in xAPIC mode and the logical ID derived from
the APIC ID in x2APIC mode (``x2apic_logical_id``).

Delivery (``hwmodel.cpu``): an IPI arrives ``ipi_latency`` plus the
interconnect's message latency after the ICR write.  Fixed and lowest-priority
IPIs set the vector's IRR bit (a second one while the bit is set is
*coalesced*, as on hardware); the core takes the highest pending vector
whose priority class (vector >> 4) is above that of every vector in service,
when interrupts are enabled.  NMI is taken regardless of IF.  INIT puts the
core in wait-for-SIPI; a start-up IPI with vector VV starts a core waiting
for SIPI at 0xVV000 in real mode and is ignored by any other core.

The rest of the register file (Table 10-1) is ``REGISTERS``: each offset with
the accesses it allows; the engine faults any other access.  The APIC timer
(10.5.4) is set up through the LVT timer entry, the initial count and the
divide configuration (``divide_config``/``divisor``), or IA32_TSC_DEADLINE.
"""
from __future__ import annotations

import numpy as np

from hwmodel._numba import njit
from hwmodel.errors import MksimError

APIC_BASE = 0xFEE00000
APIC_PAGE = 0x1000
ID, EOI, ICR_LOW, ICR_HIGH = 0x20, 0xB0, 0x300, 0x310
LDR, DFR, ESR = 0xD0, 0xE0, 0x280          # logical destination, destination format, error status
ICR_BUSY = 1 << 12                         # ICR delivery status: send pending (xAPIC only, SDM 10.12.9)
DFR_FLAT, DFR_CLUSTER = 0xF, 0x0           # DFR bits 31:28 (SDM 10.6.2.2); DFR resets to all ones
ESR_SEND_ILLEGAL = 1 << 5                  # SDM 10.5.3: a sent fixed/lowest-priority vector below 16
MULTICAST = ("bus", "serial")              # apic.multicast: one message for every target, or one per target

FIXED, LOWEST, SMI, NMI, INIT, STARTUP = 0, 1, 2, 4, 5, 6
MODES = {"fixed": FIXED, "lowest": LOWEST, "smi": SMI, "nmi": NMI, "init": INIT, "startup": STARTUP}
MODE_NAMES = {v: k for k, v in MODES.items()}
SH_NONE, SH_SELF, SH_ALL, SH_OTHERS = 0, 1, 2, 3
SHORTHANDS = {"none": SH_NONE, "self": SH_SELF, "all": SH_ALL, "all-but-self": SH_OTHERS}

NMI_VECTOR = 2

# ---------------------------------------------------------------- the register file (SDM vol. 3A, Table 10-1)
# xAPIC registers sit at APIC_BASE + offset, 16-byte aligned, accessed with 4-byte loads and stores (10.4.1);
# in x2APIC mode register ``offset`` is MSR 0x800 + (offset >> 4) (Table 10-6).
VERSION, TPR, APR, PPR, RRD, LDR, DFR, SVR = 0x30, 0x80, 0x90, 0xA0, 0xC0, 0xD0, 0xE0, 0xF0
ISR0, TMR0, IRR0, ESR, LVT_CMCI = 0x100, 0x180, 0x200, 0x280, 0x2F0
LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR = 0x320, 0x330, 0x340, 0x350, 0x360, 0x370
TIMER_INIT, TIMER_CUR, TIMER_DIV = 0x380, 0x390, 0x3E0
MSR_X2APIC_BASE = 0x800
MSR_TSC_DEADLINE = 0x6E0           # IA32_TSC_DEADLINE (SDM 10.5.4.1)

# access rights of each register (index offset >> 4): readable; writable as xAPIC MMIO; writable by WRMSR in
# x2APIC mode.  Anything else (reserved offsets, a write to a read-only register, a read of EOI) is an APIC
# fault.  In x2APIC mode the LDR is read-only (derived from the id) and there is no DFR (SDM 10.12.10).
A_R, A_W, A_X = 1, 2, 4
REGISTERS = {          # offset: (name, rights)
    ID: ("id", A_R), VERSION: ("version", A_R), TPR: ("tpr", A_R | A_W | A_X), APR: ("apr", 0),
    PPR: ("ppr", A_R), EOI: ("eoi", A_W | A_X), RRD: ("rrd", 0),
    LDR: ("ldr", A_R | A_W), DFR: ("dfr", A_R | A_W),      # logical destination (xAPIC)
    SVR: ("svr", A_R | A_W | A_X), ESR: ("esr", A_R | A_W | A_X),
    **{ISR0 + 0x10 * k: (f"isr{k}", A_R) for k in range(8)},
    **{TMR0 + 0x10 * k: (f"tmr{k}", A_R) for k in range(8)},
    **{IRR0 + 0x10 * k: (f"irr{k}", A_R) for k in range(8)},
    LVT_CMCI: ("lvt_cmci", A_R | A_W | A_X), ICR_LOW: ("icr_low", A_R | A_W), ICR_HIGH: ("icr_high", A_R | A_W),
    LVT_TIMER: ("lvt_timer", A_R | A_W | A_X), LVT_THERMAL: ("lvt_thermal", A_R | A_W | A_X),
    LVT_PERF: ("lvt_perf", A_R | A_W | A_X), LVT_LINT0: ("lvt_lint0", A_R | A_W | A_X),
    LVT_LINT1: ("lvt_lint1", A_R | A_W | A_X), LVT_ERROR: ("lvt_error", A_R | A_W | A_X),
    TIMER_INIT: ("timer_initial_count", A_R | A_W | A_X), TIMER_CUR: ("timer_current_count", A_R),
    TIMER_DIV: ("timer_divide", A_R | A_W | A_X),
}
ACCESS = np.zeros(64, np.int64)
for _off, (_name, _rights) in REGISTERS.items():
    ACCESS[_off >> 4] = _rights
LVT_MASK = 1 << 16                 # the mask bit of every LVT entry; set at reset (10.4.7.1)
LVT_BITS = 0x7A7FF                 # bits an LVT write keeps: vector, delivery mode, polarity, trigger, mask, timer mode
TIMER_ONESHOT, TIMER_PERIODIC, TIMER_DEADLINE = 0, 1, 2     # LVT timer bits 18:17 (Table 10-2)
SVR_ENABLE = 1 << 8


def divide_config(divisor: int) -> int:
    """The divide configuration register value (bits 0, 1, 3) for divisor 1, 2, 4, ..., 128 (Figure 10-10)."""
    if divisor not in (1, 2, 4, 8, 16, 32, 64, 128):
        raise MksimError(f"APIC timer divisor {divisor!r}: must be 1, 2, 4, 8, 16, 32, 64 or 128")
    v = 7 if divisor == 1 else divisor.bit_length() - 2
    return (v & 3) | ((v & 4) << 1)


@njit(_nrt=False, forceinline=True)
def divisor(dcr):
    """The divisor a divide configuration value selects: bits 3,1,0 = 000 -> 2, ..., 110 -> 128, 111 -> 1."""
    v = (dcr & 3) | ((dcr >> 1) & 4)
    return np.int64(1) << ((v + 1) & 7)


def _check(dest: int, vector: int, mode: str, shorthand: str, max_dest: int,
           logical: bool = False) -> tuple[int, int]:
    if mode not in MODES:
        raise MksimError(f"IPI delivery mode {mode!r}: must be one of {', '.join(MODES)}")
    if shorthand not in SHORTHANDS:
        raise MksimError(f"IPI shorthand {shorthand!r}: must be one of {', '.join(SHORTHANDS)}")
    if not 0 <= vector <= 255:
        raise MksimError(f"IPI vector {vector!r}: must be 0..255")
    if not 0 <= dest <= max_dest:
        raise MksimError(f"IPI destination {dest!r}: must be 0..{max_dest} in this APIC mode")
    m = MODES[mode]
    low = vector | (m << 8) | (SHORTHANDS[shorthand] << 18)
    if m == INIT:
        low |= 1 << 14          # level assert: INIT de-assert (0x8500) is a separate, ignored write
    if m in (INIT,):
        low |= 1 << 15
    if logical:
        low |= 1 << 11
    return low, m


def encode_xapic(dest: int, vector: int = 0, mode: str = "fixed", shorthand: str = "none",
                 logical: bool = False) -> tuple[int, int]:
    """(ICR low, ICR high) dwords; e.g. INIT assert is 0x0000C500, SIPI 0x000006VV."""
    low, _ = _check(dest, vector, mode, shorthand, 0xFF, logical)
    return low, dest << 24


def encode_x2apic(dest: int, vector: int = 0, mode: str = "fixed", shorthand: str = "none",
                  logical: bool = False) -> int:
    low, _ = _check(dest, vector, mode, shorthand, 0xFFFFFFFF, logical)
    return (dest << 32) | low


def x2apic_logical_id(apic_id: int) -> int:
    """The x2APIC logical ID the hardware derives from the APIC ID (SDM 10.12.10.2): cluster
    ``id >> 4`` in bits 31:16, bit ``id & 15`` of the 16-bit bitmap.  Read-only (LDR MSR 0x80D)."""
    return ((apic_id >> 4) << 16) | (1 << (apic_id & 15))


@njit(_nrt=False, forceinline=True)
def logical_match(x2, dest, ldr, dfr, q):
    """Does core q (xAPIC LDR ``ldr``, DFR ``dfr``) accept logical destination ``dest`` (SDM 10.6.2.2,
    10.12.10.1)?  xAPIC: the 8-bit MDA against LDR bits 31:24, flat (DFR model 0xF: MDA & id != 0)
    or cluster (model 0: high nibbles equal, low nibbles intersect); MDA 0xFF is a broadcast.  x2APIC:
    cluster dest[31:16] equal to q >> 4 and bit q & 15 set in dest[15:0]; 0xFFFFFFFF is a broadcast."""
    if x2:
        if dest == 0xFFFFFFFF:
            return True
        return (dest >> 16) == (q >> 4) and ((dest >> (q & 15)) & 1) == 1
    mda = dest & 0xFF
    if mda == 0xFF:
        return True
    lid = (ldr >> 24) & 0xFF
    if ((dfr >> 28) & 0xF) == DFR_FLAT:
        return (mda & lid) != 0
    return (mda >> 4) == (lid >> 4) and (mda & lid & 0xF) != 0


@njit(_nrt=False, forceinline=True)
def decode(low, dest):
    """(vector, delivery mode, logical?, shorthand, is INIT de-assert) of an ICR write."""
    vector = low & 0xFF
    mode = (low >> 8) & 7
    logical = (low >> 11) & 1
    shorthand = (low >> 18) & 3
    deassert = mode == INIT and ((low >> 14) & 1) == 0 and ((low >> 15) & 1) == 1
    return vector, mode, logical, shorthand, deassert


def describe(low: int, high: int, x2apic: bool = False) -> dict:
    """A readable decoding of an ICR value (for reports and tests)."""
    vector, mode, logical, sh, deassert = decode(low, 0)
    dest = high if x2apic else (high >> 24) & 0xFF
    return {"vector": vector, "mode": MODE_NAMES.get(mode, f"reserved({mode})"),
            "destination_mode": "logical" if logical else "physical",
            "shorthand": {v: k for k, v in SHORTHANDS.items()}[sh], "destination": dest,
            "init_deassert": bool(deassert)}
