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
"""
from __future__ import annotations

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
