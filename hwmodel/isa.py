"""The micro-op ISA cores run, and a readable builder for programs.

A program is a list of micro-ops, each one row of ``NF`` int64 fields
``[op, a, b, c, d, e, f, g]``.  Cores have 17 registers ``r0``..``r15`` and
``sp`` (``r16``, the stack pointer that CALL/RET and interrupt frames use;
int64, arithmetic wraps modulo 2**64).  Code lives in simulated physical
memory: op ``i`` of a program placed at ``addr`` sits at ``addr + 4*i``
(``OP_BYTES``), so instruction fetch goes through the I-cache like data.

Addresses are ``base register + offset`` (``b`` = register or -1 for none,
``c`` = offset).  Memory ops take ``d`` = size (1, 2, 4 or 8 bytes) and
``e`` = flag bits: ``F_VIRT`` (translate through the TLB and the page
tables at CR3), ``F_IMM`` (the value/comparand operand is an immediate) and,
for ``SPIN``, a condition code in ``e >> 2``.

Semantics of each op (costs in cycles come from the machine's ``[core]``
table; memory ops cost what the memory system says):

=========  =====================================================  =============
op         fields                                                  cost
=========  =====================================================  =============
NOP        -                                                       alu
MOVI       a=rd, b=imm                                             alu
MOV        a=rd, b=rs                                              alu
ADD..SHR   a=rd, b=ra, c=rb or imm, d=1 if imm                     alu
BR         a=cond, b=ra, c=rb or imm, d=1 if imm, e=target         alu
JMP        a=target                                                alu
COMPUTE    a=cycles or reg, d=1 if imm (interruptible)             n (>= 0)
LOAD       a=rd, b/c address, d=size, e=flags                      memory
STORE      a=rs or imm, b/c address, d=size, e=flags               memory
FADD       a=rd (old value), b/c, d, e, f=addend (reg or imm)      memory + atomic
XCHG       a=rd (old value), b/c, d, e, f=new value (reg or imm)   memory + atomic
CAS        a=rd (old value), b/c, d, e, f=expected reg, g=new reg  memory + atomic
SPIN       a=rd, b/c, d, e (cond in e >> 2), f=comparand           memory, then sleeps
WRMSR      a=msr, b=rs or imm, d=1 if imm (x2APIC, TSC deadline)   msr
WFI        - (enables interrupts, sleeps until one is taken)       alu
STI / CLI  -                                                       alu
IRET       - (returns from a handler: pc and IF restored)          iret
SETVEC     a=vector, b=handler target                              alu
INVLPG     b/c virtual address                                     invlpg
WRCR3      a=rs or imm, d=1 if imm                                 cr3
MODE       a=0 real, 1 protected, 2 long (paging on)               cr3
RDTSC      a=rd                                                    rdtsc
MARK       a=event id, b=rs or imm, d=1 if imm                     alu
HALT       - (the core stops for good; only INIT revives it)       0
CALL       a=target (push the return address at sp - 8)            a store
RET        - (pop a code address at sp, jump to it)                a load
JMPR       a=rs (jump to the code address in rs)                   alu
CALLR      a=rs (call the code address in rs)                      a store
RDMSR      a=rd, b=msr                                             msr
PAUSE      - (spin-loop hint)                                      pause
CLFLUSH    b/c physical address (write back + invalidate the       clflush
           line in every cache of the core's coherence domain)
WBINVD     - (write back + invalidate every cache of the domain)   wbinvd + memory
                                                                   occupancy per
                                                                   dirty copy
LIDT       a=rs or imm, d=1 if imm: the core's IDT base (physical)  lidt
PART       a=slot, b=lo, c=hi, d=owner (reg or imm: e bits 0,1,2)  msr
           supervisor only: partition slot a := [lo, hi) of owner
ASSIGN     a=core, b=kernel (reg or imm: e bits 0, 1)               msr
           supervisor only: a stopped core moves to another kernel
=========  =====================================================  =============

Calls
    ``sp`` (register 16, also ``r16``) is the stack pointer.  CALL and CALLR
    push the code address of the op after them (``op_addr + 4``, as x86
    pushes RIP) with an 8-byte physical store at ``sp - 8`` and set
    ``sp -= 8``; RET loads 8 bytes at ``sp``, sets ``sp += 8`` and jumps to
    the op placed at the loaded address.  These are ordinary accesses through
    the caches (they can miss, fault on a partition, straddle lines), so a
    routine placed once is fetched once.  A code address that is no placed
    op is fault ``NO_CODE``.  ``code_addr`` puts a label's code address in a
    register (for JMPR/CALLR and dispatch tables); ``Placed.addr`` gives it
    from Python.

Memory ops
    Atomics are one write access (x86 locked RMW take the line exclusive even
    when a CAS fails) plus ``atomic_latency``.  ``SPIN`` loads the value; if
    ``cond(value, comparand)`` holds, ``rd`` = value and execution goes on.
    Otherwise the core sleeps, burning no simulated iterations, until some
    core's store or atomic to that line performs; it wakes when that write
    completes and executes ``SPIN`` again (paying the miss).  Stores to the
    xAPIC page (``APIC_BASE``) are APIC register writes (``hwmodel.apic``).
Interrupts
    An IPI is sent by writing the ICR: in xAPIC mode two 4-byte stores to
    ``APIC_BASE + 0x310`` (destination) then ``+ 0x300`` (sends); in x2APIC
    mode ``WRMSR 0x830``.  ``apic.encode`` builds the values; the builder's
    ``ipi`` emits the right ops.  Handlers are per core and vector
    (``SETVEC`` or ``Machine.set_handler``); they run with interrupts off
    until ``IRET`` and must send an EOI (``eoi``) to unblock their priority
    class, as on hardware.  Handlers share the registers of the code they
    interrupt: use registers the interrupted code does not.  A ``COMPUTE``
    is interrupted by an interrupt that arrives while it runs; ``IRET``
    resumes its remaining cycles.
APIC registers and timer
    ``apic_write``/``apic_read`` access any local APIC register by its
    offset (a store/load in the xAPIC page, or WRMSR 0x800 + offset/16 in
    x2APIC mode); a reserved offset or a disallowed access is an ``apic``
    fault.  ``timer_oneshot``, ``timer_periodic``, ``timer_deadline`` and
    ``timer_stop`` emit the register writes that program the APIC timer.
    ``wait_icr_idle`` polls the ICR's delivery status as Linux does.
Interrupt frames
    After ``LIDT`` a core's interrupts read their IDT entry and push the
    64-bit frame at ``sp`` through the memory system, and ``IRET`` pops it;
    before, they use a return stack with no memory traffic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwmodel.errors import MksimError

NF = 8
OP_BYTES = 4

(NOP, MOVI, MOV, ADD, SUB, MUL, AND, OR, XOR, SHL, SHR, BR, JMP, COMPUTE, LOAD, STORE, FADD, XCHG, CAS,
 SPIN, WRMSR, WFI, STI, CLI, IRET, SETVEC, INVLPG, WRCR3, MODE, RDTSC, MARK, HALT) = range(32)
(CALL, RET, JMPR, CALLR, RDMSR, PAUSE, CLFLUSH, WBINVD, LIDT, PART, ASSIGN) = range(32, 43)
NOPS = 43
OP_NAMES = ("nop", "movi", "mov", "add", "sub", "mul", "and", "or", "xor", "shl", "shr", "br", "jmp",
            "compute", "load", "store", "fadd", "xchg", "cas", "spin", "wrmsr", "wfi", "sti", "cli", "iret",
            "setvec", "invlpg", "wrcr3", "mode", "rdtsc", "mark", "halt",
            "call", "ret", "jmpr", "callr", "rdmsr", "pause", "clflush", "wbinvd", "lidt", "part", "assign")
ALU_OPS = {"add": ADD, "sub": SUB, "mul": MUL, "and": AND, "or": OR, "xor": XOR, "shl": SHL, "shr": SHR}

# branch / spin conditions
EQ, NE, LT, GE, LTU, GEU = range(6)
CONDS = {"eq": EQ, "ne": NE, "lt": LT, "ge": GE, "ltu": LTU, "geu": GEU}

# memory-op flag bits
F_VIRT, F_IMM = 1, 2

# x86 MSRs the engine models
MSR_X2APIC_ICR = 0x830
MSR_X2APIC_EOI = 0x80B
MSR_TSC = 0x10                  # IA32_TSC: RDMSR reads the cycle, as RDTSC
MSR_APIC_BASE = 0x1B            # IA32_APIC_BASE: base 0xFEE00000, BSP (core 0), EXTD (x2APIC), EN
MSR_X2APIC_ID = 0x802
MSR_X2APIC_VERSION = 0x803
MSR_X2APIC_ISR0 = 0x810         # ISR bits 32i..32i+31 at 0x810 + i (i < 8)
MSR_X2APIC_IRR0 = 0x820         # IRR, likewise
APIC_VERSION = 0x00050014       # version 14h (integrated APIC), max LVT entry 5 (SDM 3A 11.4.8)
MSR_X2APIC_ESR = 0x828
MSR_X2APIC_LDR = 0x80D

# selectors written into interrupt frames (Linux x86-64's __KERNEL_CS and __KERNEL_DS)
FRAME_CS, FRAME_SS = 0x10, 0x18

# processor modes
REAL, PROTECTED, LONG = 0, 1, 2

NREGS = 17
SP = 16              # the stack pointer "sp" (also "r16"): CALL/RET push and pop through it, interrupt frames are pushed at it
VALID_SIZES = (1, 2, 4, 8)
MASK64 = (1 << 64) - 1


def wrap64(x: int) -> int:
    """Python int -> the int64 the engine holds (two's complement wrap)."""
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


_ZERO_FIELDS = (0,) * NF
_REG_NAMES = {"sp": SP, **{f"r{i}": i for i in range(NREGS)}}


def _reg(r, what: str = "register") -> int:
    n = _REG_NAMES.get(r) if isinstance(r, str) else None
    if n is not None:
        return n
    if isinstance(r, str) and r.startswith("r") and r[1:].isdigit() and int(r[1:]) < NREGS:
        return int(r[1:])
    if isinstance(r, int) and not isinstance(r, bool) and 0 <= r < NREGS:
        return r
    raise MksimError(f"{what} {r!r}: must be r0..r{NREGS - 1} or sp")


def _is_reg(x) -> bool:
    return isinstance(x, str) and (x == "sp" or x.startswith("r") and x[1:].isdigit())


@dataclass
class Program:
    """A core program under construction.  Operands: registers as ``"r3"``,
    immediates as ints, branch targets as label names."""

    name: str = "program"
    ops: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    comments: dict = field(default_factory=dict)
    _fix: list = field(default_factory=list)     # (op index, field, label)
    code_refs: list = field(default_factory=list)  # MOVIs whose value is a label's code address (code_addr)

    # -------------------------------------------------------------- plumbing
    def _emit(self, op: int, *fields_, comment: str = "") -> "Program":
        row = [op, *map(int, fields_)]
        row.extend(_ZERO_FIELDS[len(row):])
        self.ops.append(row)
        if comment:
            self.comments[len(self.ops) - 1] = comment
        return self

    def _target(self, label: str, fieldno: int) -> int:
        self._fix.append((len(self.ops), fieldno, label))
        return 0

    def _src(self, x, what: str) -> tuple[int, int]:
        """(value field, imm flag) of a register-or-immediate operand."""
        if _is_reg(x) or isinstance(x, str):
            return _reg(x, what), 0
        if isinstance(x, bool) or not isinstance(x, int):
            raise MksimError(f"{self.name}: {what} {x!r} must be a register or an integer")
        return wrap64(x), 1

    def _addr(self, addr, base) -> tuple[int, int]:
        """(base register or -1, offset): ``addr`` an int, or a register with ``base`` None."""
        if _is_reg(addr):
            return _reg(addr, "address register"), 0
        if base is not None:
            return _reg(base, "base register"), wrap64(addr)
        if isinstance(addr, bool) or not isinstance(addr, int):
            raise MksimError(f"{self.name}: address {addr!r} must be an integer or a register")
        return -1, wrap64(addr)

    @staticmethod
    def _size(size: int) -> int:
        if size not in VALID_SIZES:
            raise MksimError(f"access size {size!r}: must be one of 1, 2, 4, 8")
        return size

    def label(self, name: str) -> "Program":
        if name in self.labels:
            raise MksimError(f"{self.name}: label {name!r} defined twice")
        self.labels[name] = len(self.ops)
        return self

    # -------------------------------------------------------------- registers and control
    def nop(self, comment: str = "") -> "Program":
        return self._emit(NOP, comment=comment)

    def movi(self, rd, imm: int, comment: str = "") -> "Program":
        return self._emit(MOVI, _reg(rd), self._src(imm, "immediate")[0], comment=comment)

    def mov(self, rd, rs, comment: str = "") -> "Program":
        return self._emit(MOV, _reg(rd), _reg(rs), comment=comment)

    def alu(self, name: str, rd, ra, rb, comment: str = "") -> "Program":
        if name not in ALU_OPS:
            raise MksimError(f"alu op {name!r}: must be one of {', '.join(ALU_OPS)}")
        v, imm = self._src(rb, "operand")
        return self._emit(ALU_OPS[name], _reg(rd), _reg(ra), v, imm, comment=comment)

    def add(self, rd, ra, rb, comment: str = "") -> "Program":
        return self.alu("add", rd, ra, rb, comment)

    def sub(self, rd, ra, rb, comment: str = "") -> "Program":
        return self.alu("sub", rd, ra, rb, comment)

    def br(self, cond: str, ra, rb, target: str, comment: str = "") -> "Program":
        if cond not in CONDS:
            raise MksimError(f"branch condition {cond!r}: must be one of {', '.join(CONDS)}")
        v, imm = self._src(rb, "operand")
        self._target(target, 5)
        return self._emit(BR, CONDS[cond], _reg(ra), v, imm, 0, comment=comment)

    def jmp(self, target: str, comment: str = "") -> "Program":
        self._target(target, 1)
        return self._emit(JMP, 0, comment=comment)

    def compute(self, cycles, comment: str = "") -> "Program":
        v, imm = self._src(cycles, "cycles")
        if imm and v < 0:
            raise MksimError(f"{self.name}: compute cycles {cycles!r} must be >= 0")
        return self._emit(COMPUTE, v, 0, 0, imm, comment=comment)

    # -------------------------------------------------------------- memory
    def load(self, rd, addr, size: int = 8, base=None, virt: bool = False, comment: str = "") -> "Program":
        b, off = self._addr(addr, base)
        return self._emit(LOAD, _reg(rd), b, off, self._size(size), F_VIRT if virt else 0, comment=comment)

    def store(self, addr, value, size: int = 8, base=None, virt: bool = False, comment: str = "") -> "Program":
        b, off = self._addr(addr, base)
        v, imm = self._src(value, "store value")
        return self._emit(STORE, v, b, off, self._size(size), (F_VIRT if virt else 0) | (F_IMM * imm),
                          comment=comment)

    def _rmw(self, op, rd, addr, value, size, base, virt, comment):
        b, off = self._addr(addr, base)
        v, imm = self._src(value, "operand")
        return self._emit(op, _reg(rd), b, off, self._size(size), (F_VIRT if virt else 0) | (F_IMM * imm), v,
                          comment=comment)

    def fadd(self, rd, addr, value, size: int = 8, base=None, virt: bool = False, comment: str = "") -> "Program":
        """Atomic fetch-and-add: rd = old, memory = old + value."""
        return self._rmw(FADD, rd, addr, value, size, base, virt, comment)

    def xchg(self, rd, addr, value, size: int = 8, base=None, virt: bool = False, comment: str = "") -> "Program":
        return self._rmw(XCHG, rd, addr, value, size, base, virt, comment)

    def cas(self, rd, addr, expected, new, size: int = 8, base=None, virt: bool = False,
            comment: str = "") -> "Program":
        """Compare-and-swap: rd = old; memory = new if old == expected (registers)."""
        b, off = self._addr(addr, base)
        return self._emit(CAS, _reg(rd), b, off, self._size(size), F_VIRT if virt else 0, _reg(expected),
                          _reg(new), comment=comment)

    def spin_until(self, addr, cond: str, value, rd="r0", size: int = 8, base=None, virt: bool = False,
                   comment: str = "") -> "Program":
        """Wait until ``mem[addr] <cond> value``; rd receives the value seen."""
        if cond not in CONDS:
            raise MksimError(f"spin condition {cond!r}: must be one of {', '.join(CONDS)}")
        b, off = self._addr(addr, base)
        v, imm = self._src(value, "comparand")
        e = (F_VIRT if virt else 0) | (F_IMM * imm) | (CONDS[cond] << 2)
        return self._emit(SPIN, _reg(rd), b, off, self._size(size), e, v, comment=comment)

    # -------------------------------------------------------------- system
    def wrmsr(self, msr: int, value, comment: str = "") -> "Program":
        v, imm = self._src(value, "msr value")
        return self._emit(WRMSR, msr, v, 0, imm, comment=comment)

    def ipi(self, dest: int, vector: int = 0, mode: str = "fixed", shorthand: str = "none",
            x2apic: bool = False, comment: str = "", logical: bool = False) -> "Program":
        """Send an IPI by writing the ICR, as software does in that APIC mode (``logical``: ``dest`` is a
        logical destination, an MDA in xAPIC mode or cluster << 16 | bitmap in x2APIC mode)."""
        from hwmodel import apic
        if x2apic:
            return self.wrmsr(MSR_X2APIC_ICR, apic.encode_x2apic(dest, vector, mode, shorthand, logical),
                              comment=comment)
        lo, hi = apic.encode_xapic(dest, vector, mode, shorthand, logical)
        self.store(apic.APIC_BASE + apic.ICR_HIGH, hi, size=4, comment=comment)
        return self.store(apic.APIC_BASE + apic.ICR_LOW, lo, size=4)

    def eoi(self, x2apic: bool = False, comment: str = "") -> "Program":
        from hwmodel import apic
        if x2apic:
            return self.wrmsr(MSR_X2APIC_EOI, 0, comment=comment)
        return self.store(apic.APIC_BASE + apic.EOI, 0, size=4, comment=comment)

    def apic_write(self, reg: int, value, x2apic: bool = False, comment: str = "") -> "Program":
        """Write local APIC register ``reg`` (an offset, e.g. ``apic.LVT_TIMER``): a 4-byte store to the xAPIC
        page, or WRMSR 0x800 + (reg >> 4) in x2APIC mode."""
        from hwmodel import apic
        if reg not in apic.REGISTERS:
            raise MksimError(f"{self.name}: APIC register offset {reg:#x} is reserved (SDM vol. 3A, Table 10-1)")
        if x2apic:
            return self.wrmsr(apic.MSR_X2APIC_BASE + (reg >> 4), value, comment=comment)
        return self.store(apic.APIC_BASE + reg, value, size=4, comment=comment)

    def apic_read(self, rd, reg: int, comment: str = "") -> "Program":
        """Load xAPIC register ``reg`` into rd (x2APIC registers are MSRs: read them with RDMSR)."""
        from hwmodel import apic
        if reg not in apic.REGISTERS:
            raise MksimError(f"{self.name}: APIC register offset {reg:#x} is reserved (SDM vol. 3A, Table 10-1)")
        return self.load(rd, apic.APIC_BASE + reg, size=4, comment=comment)

    def _timer(self, vector: int, mode: int, masked: bool, x2apic: bool, comment: str) -> "Program":
        from hwmodel import apic
        if not 16 <= vector <= 255:
            raise MksimError(f"{self.name}: timer vector {vector!r} must be 16..255")
        lvt = vector | (mode << 17) | (apic.LVT_MASK if masked else 0)
        return self.apic_write(apic.LVT_TIMER, lvt, x2apic, comment=comment)

    def timer_oneshot(self, vector: int, count, divide: int = 1, masked: bool = False, x2apic: bool = False,
                      comment: str = "") -> "Program":
        """Program the APIC timer to interrupt once with ``vector`` after ``count`` x ``divide`` timer ticks:
        divide configuration, LVT timer (one-shot), then the initial count (which starts it; 0 stops it)."""
        from hwmodel import apic
        self.apic_write(apic.TIMER_DIV, apic.divide_config(divide), x2apic, comment=comment)
        self._timer(vector, apic.TIMER_ONESHOT, masked, x2apic, "")
        return self.apic_write(apic.TIMER_INIT, count, x2apic)

    def timer_periodic(self, vector: int, count, divide: int = 1, masked: bool = False, x2apic: bool = False,
                       comment: str = "") -> "Program":
        """Program the APIC timer to interrupt with ``vector`` every ``count`` x ``divide`` timer ticks."""
        from hwmodel import apic
        self.apic_write(apic.TIMER_DIV, apic.divide_config(divide), x2apic, comment=comment)
        self._timer(vector, apic.TIMER_PERIODIC, masked, x2apic, "")
        return self.apic_write(apic.TIMER_INIT, count, x2apic)

    def timer_deadline(self, vector: int, deadline, masked: bool = False, x2apic: bool = False,
                       comment: str = "") -> "Program":
        """TSC-deadline mode: interrupt with ``vector`` when the TSC (the core clock) reaches ``deadline``
        (a register or an immediate; 0 disarms): LVT timer, then WRMSR IA32_TSC_DEADLINE."""
        from hwmodel import apic
        self._timer(vector, apic.TIMER_DEADLINE, masked, x2apic, comment)
        return self.wrmsr(apic.MSR_TSC_DEADLINE, deadline)

    def timer_stop(self, x2apic: bool = False, comment: str = "") -> "Program":
        """Stop a one-shot or periodic count (initial count 0)."""
        from hwmodel import apic
        return self.apic_write(apic.TIMER_INIT, 0, x2apic, comment=comment)
    def wait_icr_idle(self, rd="r0", comment: str = "") -> "Program":
        """Poll the xAPIC ICR until its delivery status (bit 12) reads idle, as Linux does before a send."""
        from hwmodel import apic
        lab = f"_icr_idle{len(self.ops)}"
        self.label(lab)
        self.load(rd, apic.APIC_BASE + apic.ICR_LOW, size=4, comment=comment)
        self.alu("and", rd, rd, apic.ICR_BUSY)
        return self.br("ne", rd, 0, lab)

    def wfi(self, comment: str = "") -> "Program":
        return self._emit(WFI, comment=comment)

    def sti(self) -> "Program":
        return self._emit(STI)

    def cli(self) -> "Program":
        return self._emit(CLI)

    def iret(self, comment: str = "") -> "Program":
        return self._emit(IRET, comment=comment)

    def setvec(self, vector: int, target: str, comment: str = "") -> "Program":
        if not 0 <= vector <= 255:
            raise MksimError(f"vector {vector!r}: must be 0..255")
        self._target(target, 2)
        return self._emit(SETVEC, vector, 0, comment=comment)

    def invlpg(self, addr, base=None, comment: str = "") -> "Program":
        b, off = self._addr(addr, base)
        return self._emit(INVLPG, 0, b, off, comment=comment)

    def wrcr3(self, value, comment: str = "") -> "Program":
        v, imm = self._src(value, "cr3 value")
        return self._emit(WRCR3, v, 0, 0, imm, comment=comment)

    def mode(self, m: int, comment: str = "") -> "Program":
        if m not in (REAL, PROTECTED, LONG):
            raise MksimError(f"mode {m!r}: must be 0 (real), 1 (protected) or 2 (long)")
        return self._emit(MODE, m, comment=comment)

    def rdtsc(self, rd, comment: str = "") -> "Program":
        return self._emit(RDTSC, _reg(rd), comment=comment)

    def mark(self, event: int, value=0, comment: str = "") -> "Program":
        v, imm = self._src(value, "mark value")
        return self._emit(MARK, event, v, 0, imm, comment=comment)

    def halt(self, comment: str = "") -> "Program":
        return self._emit(HALT, comment=comment)

    # -------------------------------------------------------------- calls, indirect jumps, MSR reads
    def call(self, target: str, comment: str = "") -> "Program":
        """Push the return address (8-byte store at sp - 8, sp -= 8) and jump to ``target``."""
        self._target(target, 1)
        return self._emit(CALL, 0, comment=comment)

    def ret(self, comment: str = "") -> "Program":
        """Pop a code address (8-byte load at sp, sp += 8) and jump to the op placed there."""
        return self._emit(RET, comment=comment)

    def jmpr(self, rs, comment: str = "") -> "Program":
        """Jump to the op placed at the code address in register ``rs``."""
        return self._emit(JMPR, _reg(rs), comment=comment)

    def callr(self, rs, comment: str = "") -> "Program":
        """``call`` the op placed at the code address in register ``rs``."""
        return self._emit(CALLR, _reg(rs), comment=comment)

    def code_addr(self, rd, label: str, comment: str = "") -> "Program":
        """rd = the code address of ``label`` (a MOVI whose value is filled in when the program is placed)."""
        self._target(label, 2)
        self.code_refs.append(len(self.ops))
        return self._emit(MOVI, _reg(rd), 0, comment=comment)

    def rdmsr(self, rd, msr: int, comment: str = "") -> "Program":
        """rd = MSR ``msr`` (the MSRs the machine has: ``cpu_spec.md``, 'RDMSR')."""
        if isinstance(msr, bool) or not isinstance(msr, int) or not 0 <= msr <= 0xFFFFFFFF:
            raise MksimError(f"{self.name}: MSR {msr!r} must be an integer 0..0xFFFFFFFF")
        return self._emit(RDMSR, _reg(rd), msr, comment=comment)

    def pause(self, comment: str = "") -> "Program":
        """The spin-loop hint: costs ``core.pause_latency``."""
        return self._emit(PAUSE, comment=comment)

    def clflush(self, addr, base=None, comment: str = "") -> "Program":
        """Write back (if dirty) and invalidate the line at physical ``addr`` in every cache of this
        core's coherence domain."""
        b, off = self._addr(addr, base)
        return self._emit(CLFLUSH, 0, b, off, comment=comment)

    def wbinvd(self, comment: str = "") -> "Program":
        """Write back and invalidate every cache of this core's coherence domain."""
        return self._emit(WBINVD, comment=comment)

    def lidt(self, base, comment: str = "") -> "Program":
        """Set the core's IDT base (a physical address): interrupts then read their IDT entry and push
        their frame at ``sp`` through the memory system, and IRET pops it (``cpu_spec.md``)."""
        v, imm = self._src(base, "IDT base")
        return self._emit(LIDT, v, 0, 0, imm, comment=comment)

    def part(self, slot: int, lo, hi, owner, comment: str = "") -> "Program":
        """Supervisor only: partition-table slot ``slot`` becomes [lo, hi) owned by kernel ``owner``
        (lo == hi empties it).  The model checks the change (``cpu_spec.md``, 'Partition changes')."""
        if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
            raise MksimError(f"{self.name}: partition slot {slot!r} must be an integer >= 0")
        f, flags = [], 0
        for i, (x, what) in enumerate(((lo, "partition lo"), (hi, "partition hi"), (owner, "partition owner"))):
            v, imm = self._src(x, what)
            f.append(v)
            flags |= imm << i
        return self._emit(PART, slot, f[0], f[1], f[2], flags, comment=comment)

    def assign(self, core, kernel, comment: str = "") -> "Program":
        """Supervisor only: stopped core ``core`` (waiting for SIPI, halted or faulted) now belongs to
        kernel ``kernel``; a running core cannot move (fault ``repartition``)."""
        q, qi = self._src(core, "core")
        k, ki = self._src(kernel, "kernel")
        return self._emit(ASSIGN, q, k, 0, 0, qi | ki << 1, comment=comment)

    def extend(self, other: "Program", prefix: str) -> "Program":
        """Append ``other``'s ops; its labels (and its branches to them) are renamed ``prefix.label``."""
        base = len(self.ops)
        self.ops.extend(list(r) for r in other.ops)
        self.comments.update({base + i: c for i, c in other.comments.items()})
        self.labels.update({f"{prefix}.{lab}": base + at for lab, at in other.labels.items()})
        self._fix.extend((base + i, f, f"{prefix}.{lab}") for i, f, lab in other._fix)
        self.code_refs.extend(base + i for i in other.code_refs)
        return self

    # -------------------------------------------------------------- output
    def assemble(self) -> np.ndarray:
        """The ops as an int64 array [n, NF], branch targets resolved to op indices."""
        rows = [list(r) for r in self.ops]
        for i, fno, lab in self._fix:
            if lab not in self.labels:
                raise MksimError(f"{self.name}: op {i} ({OP_NAMES[rows[i][0]]}) jumps to undefined label {lab!r}")
            rows[i][fno] = self.labels[lab]
        return np.array(rows, dtype=np.int64).reshape(-1, NF)

    def __len__(self) -> int:
        return len(self.ops)

    def listing(self) -> str:
        """Readable disassembly with labels and comments."""
        at = {}
        for k, v in self.labels.items():
            at.setdefault(v, []).append(k)
        out = []
        arr = self.assemble()
        for i, row in enumerate(arr):
            for lab in at.get(i, []):
                out.append(f"{lab}:")
            txt = f"  {i:4d}  {OP_NAMES[row[0]]:8s} " + " ".join(str(int(x)) for x in row[1:])
            if i in self.comments:
                txt += f"   ; {self.comments[i]}"
            out.append(txt)
        return "\n".join(out)
