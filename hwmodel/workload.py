"""What the cores will run: placed programs, start points, handlers,
partitions, initial memory and registers.

A ``Workload`` is plain data.  ``Machine.execute`` (compiled engine) and
``ReferenceCpu`` (plain Python) both take one, so a test builds the same
setup once for both.  Constants shared by both implementations live here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwmodel import isa
from hwmodel.errors import MksimError

# core states
RUN, SPIN, WFI, WFS, HALTED, FAULTED = range(6)
STATE_NAMES = ("run", "spin", "wfi", "wait-for-sipi", "halted", "faulted")
# fault kinds
(FK_NOT_PRESENT, FK_NOT_WRITABLE, FK_NONCANONICAL, FK_NOT_PAGING, FK_PARTITION, FK_BAD_MSR, FK_MISALIGNED,
 FK_UNSUPPORTED, FK_NO_HANDLER, FK_STACK, FK_NO_CODE, FK_APIC, FK_DOUBLE, FK_PRIVILEGE, FK_REPART) = range(15)
FAULT_NAMES = ("not-present", "not-writable", "noncanonical", "not-paging", "partition", "bad-msr",
               "misaligned", "unsupported", "no-handler", "stack", "no-code", "apic", "double-fault",
               "privilege", "repartition")
NO_SUPERVISOR = -2   # Workload.supervisor unset: no kernel may run PART / ASSIGN
# IPI outcomes (ERROR: sent to a core the machine lacks, or a logical destination no core matches)
PENDING, DELIVERED, COALESCED, IGNORED, ERROR = range(5)
OUTCOME_NAMES = ("pending", "delivered", "coalesced", "ignored", "error")
# run status
DONE, DEADLOCK, LIMIT = range(3)
STATUS_NAMES = ("done", "deadlock", "limit")
# per-core program statistics
(S_OPS, S_LOADS, S_STORES, S_ATOMICS, S_SPIN_SLEEPS, S_IPIS_SENT, S_INTERRUPTS, S_TLB_HITS, S_TLB_MISSES,
 S_WALK_CYCLES, S_FAULTS, S_FETCH_STALL, S_SLEEP_CYCLES, S_TIMER_INTS, S_TIMER_LOST, S_PREEMPTED, S_ICR_WAIT) = range(17)
PROG_STATS = ("ops", "loads", "stores", "atomics", "spin_sleeps", "ipis_sent", "interrupts", "tlb_hits",
              "tlb_misses", "walk_cycles", "faults", "fetch_stall_cycles", "sleep_cycles", "timer_interrupts",
              "timer_lost", "computes_interrupted", "icr_wait_cycles")
RSTACK = 16          # return-stack depth (nested interrupts)
PAGE = 4096
# ops whose field holds a code target (an op index of their program until placed): (op, field)
_CODE_TARGETS = ((isa.BR, 5), (isa.JMP, 1), (isa.SETVEC, 2), (isa.CALL, 1))


@dataclass
class Placed:
    """A program placed in memory: its first op's global index and its labels."""
    name: str
    pc0: int
    addr: int
    n: int
    labels: dict

    def pc(self, label: str | int = 0) -> int:
        if isinstance(label, int):
            if not 0 <= label < self.n:
                raise MksimError(f"{self.name}: op index {label} outside 0..{self.n - 1}")
            return self.pc0 + label
        if label not in self.labels:
            raise MksimError(f"{self.name}: no label {label!r}")
        return self.pc0 + self.labels[label]

    def code_addr(self, label: str | int = 0) -> int:
        """The physical code address of a label (or op index): what JMPR/CALLR and RET jump to."""
        return self.addr + isa.OP_BYTES * (self.pc(label) - self.pc0)


@dataclass
class Workload:
    cores: int
    segments: list = field(default_factory=list)   # (addr, relocated ops, name)
    starts: dict = field(default_factory=dict)     # core -> (pc, mode, at)
    handlers: dict = field(default_factory=dict)   # (core, vector) -> pc
    kernels: dict = field(default_factory=dict)    # core -> kernel id
    regions: list = field(default_factory=list)    # (lo, hi, owner)
    grants: list = field(default_factory=list)     # (lo, hi, kernel)
    memory: list = field(default_factory=list)     # (addr, bytes)
    regs: dict = field(default_factory=dict)       # core -> {reg index: value}
    supervisor: int = NO_SUPERVISOR                # the kernel whose cores may run PART / ASSIGN
    _n: int = 0

    def _core(self, core: int) -> int:
        if not isinstance(core, int) or not 0 <= core < self.cores:
            raise MksimError(f"core {core!r} does not exist (0..{self.cores - 1})")
        return core

    def place(self, program: isa.Program, addr: int) -> Placed:
        """Put ``program``'s code at physical ``addr`` (4 bytes an op)."""
        ops = program.assemble()
        n = len(ops)
        if n == 0:
            raise MksimError(f"{program.name}: empty program")
        if addr < 0 or addr % isa.OP_BYTES or addr + n * isa.OP_BYTES > 1 << 52:
            raise MksimError(f"{program.name}: code address {addr:#x} must be 4-byte aligned, below 2**52")
        for a, o, nm in self.segments:
            if addr < a + len(o) * isa.OP_BYTES and a < addr + n * isa.OP_BYTES:
                raise MksimError(f"{program.name}: code at {addr:#x} overlaps {nm} at {a:#x}")
        ops = ops.copy()
        for op, fno in _CODE_TARGETS:               # branch targets: program op index -> global op index
            ops[ops[:, 0] == op, fno] += self._n
        for i in program.code_refs:                 # code_addr: op index -> code address
            ops[i, 2] = addr + isa.OP_BYTES * ops[i, 2]
        self.segments.append((addr, ops, program.name))
        p = Placed(program.name, self._n, addr, n, dict(program.labels))
        self._n += n
        return p

    def start(self, core: int, pc: int, mode: int = isa.LONG, at: int = 0) -> None:
        """Core ``core`` starts running at global op ``pc`` at cycle ``at`` (already booted: long mode)."""
        self.starts[self._core(core)] = (self._pc(pc), mode, at)

    def set_handler(self, core: int, vector: int, pc: int) -> None:
        if not 0 <= vector <= 255:
            raise MksimError(f"vector {vector!r}: must be 0..255")
        self.handlers[(self._core(core), vector)] = self._pc(pc)

    def assign(self, core: int, kernel: int) -> None:
        self.kernels[self._core(core)] = kernel

    def _range(self, lo: int, hi: int, what: str) -> None:
        if lo % PAGE or hi % PAGE or not 0 <= lo < hi <= 1 << 52:
            raise MksimError(f"{what} [{lo:#x}, {hi:#x}): must be page-aligned, non-empty, below 2**52")

    def partition(self, owner: int, lo: int, hi: int) -> None:
        self._range(lo, hi, "partition")
        for a, b, o in self.regions:
            if lo < b and a < hi:
                raise MksimError(f"partition [{lo:#x}, {hi:#x}) of kernel {owner} overlaps [{a:#x}, {b:#x}) of kernel {o}")
        self.regions.append((lo, hi, owner))

    def reserve_partitions(self, n: int) -> list[int]:
        """Add ``n`` empty slots to the partition table (for PART to fill at run time); their indices."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 4096:
            raise MksimError(f"reserve_partitions: {n!r} slots, must be 0..4096")
        first = len(self.regions)
        self.regions.extend([(0, 0, -1)] * n)
        return list(range(first, first + n))

    def partition_slot(self, lo: int, hi: int) -> int:
        """The slot index of the partition [lo, hi) (what PART names to resize or drop it)."""
        for i, (a, b, _) in enumerate(self.regions):
            if (a, b) == (lo, hi) and a < b:
                return i
        raise MksimError(f"no partition [{lo:#x}, {hi:#x}) in the table")

    def supervise(self, kernel: int) -> None:
        """Kernel ``kernel`` is the supervisor: only its cores may change the partition table (PART) or
        move a stopped core to another kernel (ASSIGN) at run time; any other core faults ``privilege``."""
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 0:
            raise MksimError(f"supervisor kernel {kernel!r}: must be a kernel id >= 0")
        self.supervisor = kernel

    def grant(self, kernel: int, lo: int, hi: int) -> None:
        self._range(lo, hi, "grant")
        self.grants.append((lo, hi, kernel))

    def write(self, addr: int, data: bytes) -> None:
        self.memory.append((addr, bytes(data)))

    def set_reg(self, core: int, reg, value: int) -> None:
        self.regs.setdefault(self._core(core), {})[isa._reg(reg)] = isa.wrap64(value)

    def _pc(self, pc: int) -> int:
        if not 0 <= pc < self._n:
            raise MksimError(f"pc {pc} is not a placed op (0..{self._n - 1})")
        return pc

    def code(self) -> tuple[np.ndarray, np.ndarray]:
        """(ops [n, NF], op_addr [n]) in global op order."""
        if not self.segments:
            return np.zeros((0, isa.NF), np.int64), np.zeros(0, np.int64)
        ops = np.concatenate([o for _, o, _ in self.segments])
        addr = np.concatenate([a + isa.OP_BYTES * np.arange(len(o), dtype=np.int64) for a, o, _ in self.segments])
        return ops, addr
