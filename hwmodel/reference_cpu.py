"""Plain-Python reference model of cores running micro-op programs.

Implements the rules of ``cpu_spec.md`` (beside this file) step by step, for
reading, not speed; ``hwmodel.cpu`` is the compiled engine held to identical
results.  Memory timing comes from ``hwmodel.reference.ReferenceMachine``
(``self.mem``); values come from a byte-granular functional store.

Readings of points the spec leaves open (the engine must match them):

* Wake check after every step: a step that leaves the core in any state but
  RUN ends with the wake check (the sleep check, for SPIN/WFI).  The spec
  says the sleep check runs when a core goes to SPIN/WFI and that step 2
  "ends (not rescheduled)"; read literally that strands an IPI that would wake
  the core but arrives after a step that left it WFS/HALTED/FAULTED (STARTUP
  sent right behind INIT, both in flight; INIT pending while the core HALTs or
  faults): nothing would ever step the core again.  "Not rescheduled" is read
  as "not scheduled at its clock like a RUN core".
* Scheduling: ``sleep_cycles`` gets ``sched - clock`` whenever a core is
  popped with ``sched > clock`` (only cores woken from SPIN, WFI, WFS, HALTED
  or FAULTED can be).  ``max_ops`` counts the ops of one ``execute`` call and
  is checked before "nothing scheduled": a run whose last op is the
  max_ops-th returns 'limit', and the next call 'done'.
* A started core has IF = 0 and CR3 = 0.  INIT leaves pc, handlers, the
  kernel assignment and the latched ICR values alone; IPIs whose IRR bits it
  clears keep outcome PENDING.
* Taking an interrupt (step 3) first accepts it (IRR -> ISR, or the NMI
  cleared; the IPI DELIVERED at t), then looks for the handler (NO_HANDLER)
  and stack room (STACK); those faults are logged at t with the vector as the
  address, the core FAULTED at clock t, and ``interrupts`` counts only entered
  handlers.
* Fault addresses (logged as int64): the chunk's virtual address for
  translation faults, its physical address for PARTITION, the op's address
  for MISALIGNED and NOT_PAGING, the MSR number for BAD_MSR, the vector for NO_HANDLER and for STACK on interrupt entry, 0 for
  STACK on IRET, ``vector << 12`` for NO_CODE of a STARTUP (logged with
  pc = -1; the mode is already REAL) and 0 for NO_CODE of a pc outside the
  placed ops (running off the end of the code: fault at t, nothing fetched,
  no op counted).  Owner is -1 except for PARTITION.  A FAULTED core's clock
  is the fault's time; the fault time of a WRMSR is t1.
* A trap needs a handler for its vector AND room on the return stack;
  otherwise the core is FAULTED (one fault logged).
* The walk that finds a read-only page fills the TLB, then the write faults
  NOT_WRITABLE.  A walk fault's time includes the latency of the entry load
  that revealed it (its cycles count in ``walk_cycles``).  A non-canonical
  chunk counts neither TLB hit nor miss.  PS in a PML4 entry is ignored.
  INVLPG of a non-canonical address drops nothing.
* Memory ops in flight (spec: "Misses take effect at the home"): the op is
  in flight iff some line of a non-APIC chunk would miss, and its delay is
  the ``request_delay`` of the first such line (chunk order, then line order),
  even when that delay is 0.  The perform step does not count an op.  A STORE
  retires into the store buffer only if it was not in flight and has no APIC
  chunk.  ``loads``/``stores``/``atomics`` count performed ops only (not ones
  that fault), when they are performed.
* ``core.issue_width`` (not in the spec; as the engine does): register-class
  ops (NOP, MOVI, MOV, ALU, BR, JMP, STI, CLI, SETVEC, MARK), WFI and store
  hits draw from one per-core counter n (never reset, not even by INIT), and
  cost ``alu_latency`` when ``n % issue_width == 0``, else 0.
* STARTUP finds the op whose address is ``vector << 12``, wherever it lies in
  a placed program.
* The store wake time d is the completion of the chunk's write access
  (without ``atomic_latency``); a chunk covering two lines wakes sleepers on
  both.
* APIC register accesses: a chunk at offset ``off`` of size k reads
  ``value(off) & mask(k)``; a write gives the register the chunk's k bytes
  (only chunks that start at ID/EOI/ICR_* do anything).  Atomics on the APIC
  page read then write the register.  The send time is ``ts = t1 +
  mmio_latency`` as the spec says, even when walk cycles came first (a
  virtual ICR address; the engine uses the chunk's completion ti +
  mmio_latency, equal for physical ICR writes).  A logical-destination fault
  is at ti = t1 + walk cycles ("t1 plus the walk cycles"; the engine uses
  ti + mmio_latency), and at t1 for WRMSR (the engine: t1 + msr_latency).
  It stops the later chunks.
* Calls (spec: 'Calls and the stack'): the stack access of CALL/CALLR/RET is
  an 8-byte physical memory op issued and performed like STORE/LOAD (same
  in-flight rule, same store-buffer retirement of a hit).  NO_CODE of
  JMPR/CALLR is at t1 with the register's value as the address (CALLR pushes
  nothing); NO_CODE of RET is at the load's end with the loaded value as the
  address, sp unchanged, the load counted in ``loads``.  RDMSR: the table
  ``readable_msr`` below; WRMSR 0x830 also keeps the value for RDMSR 0x830.
* Interruptible COMPUTE: a core in a COMPUTE keeps ``clock`` = the compute's end; when it is stepped
  earlier (an IPI or timer expiry arrives) its clock is set to that time first.  The remaining cycles ride
  on the return stack as a third element of (pc, IF, left); 0 for faults and non-compute interrupts.
* Timer expiries are not IPIs: they set IRR with no IPI log row (``irr`` maps the vector to -1).
* IPI costs (spec: 'IPIs'): reads of the ICR see delivery status busy until the
  local APIC has sent the message; an ICR write waits for it (counted in
  ``icr_wait_cycles``); LDR/DFR/ESR are kept per core.  With LIDT, interrupts
  push real frames; the return stack shadows them with (return pc, IF, the
  rest of an interrupted COMPUTE), so nesting is limited to the same 16 levels
  and an IRET resumes a COMPUTE only when it returns to where it was
  interrupted.
* ALU: MUL keeps the low 64 bits; SHL/SHR shift by ``rb & 63``; SHR is a
  logical (unsigned) shift.  COMPUTE costs ``max(0, n)`` with an immediate
  too.  HALT advances pc.  SPIN/BR comparands are full 64-bit (not masked
  to the access size).  CAS ignores F_IMM (f and g are registers).
"""
from __future__ import annotations

from dataclasses import dataclass

from hwmodel import apic, isa
from hwmodel.coherence import E, M
from hwmodel.config import MachineConfig
from hwmodel.reference import ReferenceMachine
from hwmodel.trace import KIND_I, KIND_L, KIND_S
from hwmodel.workload import (
    COALESCED,
    DEADLOCK,
    DELIVERED,
    DONE,
    ERROR,
    FAULTED,
    FK_APIC,
    FK_DOUBLE,
    FK_BAD_MSR,
    FK_MISALIGNED,
    FK_NO_CODE,
    FK_NO_HANDLER,
    FK_NONCANONICAL,
    FK_NOT_PAGING,
    FK_NOT_PRESENT,
    FK_NOT_WRITABLE,
    FK_PARTITION,
    FK_PRIVILEGE,
    FK_REPART,
    FK_STACK,
    FK_UNSUPPORTED,
    HALTED,
    IGNORED,
    LIMIT,
    NO_SUPERVISOR,
    PENDING,
    PROG_STATS,
    RSTACK,
    RUN,
    S_ATOMICS,
    S_FAULTS,
    S_FETCH_STALL,
    S_ICR_WAIT,
    S_INTERRUPTS,
    S_IPIS_SENT,
    S_LOADS,
    S_OPS,
    S_PREEMPTED,
    S_SLEEP_CYCLES,
    S_SPIN_SLEEPS,
    S_STORES,
    S_TIMER_INTS,
    S_TIMER_LOST,
    S_TLB_HITS,
    S_TLB_MISSES,
    S_WALK_CYCLES,
    SPIN,
    STATE_NAMES,
    STATUS_NAMES,
    WFI,
    WFS,
    Workload,
)

MASK64 = isa.MASK64
PAGE = 4096
HORIZON = 1 << 50                       # times at or beyond this are never reached in a run
LVT_REGS = (apic.LVT_CMCI, apic.LVT_TIMER, apic.LVT_THERMAL, apic.LVT_PERF, apic.LVT_LINT0, apic.LVT_LINT1,
            apic.LVT_ERROR)
ADDR_BITS = 0x000FFFFFFFFFF000          # bits 51:12 of an entry / CR3
ADDR_BITS_2M = 0x000FFFFFFFE00000       # bits 51:21


def mask(n: int) -> int:
    """The low n bytes."""
    return (1 << (8 * n)) - 1


def cond(code: int, x: int, y: int) -> bool:
    """Branch / spin condition on two int64 values."""
    x, y = isa.wrap64(x), isa.wrap64(y)
    if code == isa.EQ:
        return x == y
    if code == isa.NE:
        return x != y
    if code == isa.LT:
        return x < y
    if code == isa.GE:
        return x >= y
    if code == isa.LTU:
        return x & MASK64 < y & MASK64
    if code == isa.GEU:
        return x & MASK64 >= y & MASK64
    return False


def decode_icr(low: int) -> tuple[int, int, int, int, bool]:
    """``apic.decode`` without compiling it: (vector, mode, logical, shorthand, INIT de-assert)."""
    f = getattr(apic.decode, "py_func", apic.decode)
    vector, mode, logical, sh, deassert = f(low, 0)
    return int(vector), int(mode), int(logical), int(sh), bool(deassert)


class Fault(Exception):
    """A fault raised while executing an op (caught by the step)."""

    def __init__(self, kind: int, addr: int, time: int, owner: int = -1):
        super().__init__(kind)
        self.kind, self.addr, self.time, self.owner = kind, addr, time, owner


@dataclass
class Ipi:
    src: int
    dst: int
    vector: int
    mode: int
    send: int
    arrive: int
    outcome: int = PENDING
    outcome_t: int = -1

    def row(self) -> tuple:
        return (self.src, self.dst, self.vector, self.mode, self.send, self.arrive, self.outcome, self.outcome_t)


@dataclass
class TlbEntry:
    big: bool        # a 2 MiB entry (key = 2 MiB vpn) or a 4 KiB one
    vpn: int
    frame: int       # physical base of the page
    writable: bool
    stamp: int


@dataclass
class Chunk:
    va: int          # address as the op computed it (virtual when F_VIRT)
    pa: int          # physical address
    n: int           # bytes
    off: int         # offset of these bytes within the op's n bytes
    apic: bool = False


@dataclass
class Timer:
    """The local APIC timer's count (SDM 10.5.4): when it started, its divisor, the index and time of its next
    expiry (None: not armed), and the TSC-deadline MSR."""
    start: int | None = None
    div: int = 2
    j: int = 0
    next: int | None = None
    deadline: int = 0


@dataclass
class InFlight:
    """A memory op whose request is on its way to the home."""
    t1: int              # when the op executed
    ti: int              # issue time of the data access (t1 + walk cycles)
    chunks: list[Chunk]
    hit: bool            # no line missed: performed at once


class ReferenceCpu:
    """Cores running the programs of a ``Workload`` on a ``ReferenceMachine``."""

    def __init__(self, cfg: MachineConfig, seed: int = 0):
        self.cfg = cfg
        self.mem = ReferenceMachine(cfg, seed)
        self.k = cfg.core
        self.x2apic = cfg.apic.mode == "x2apic"
        n = self.ncores = cfg.cores
        self.line_bits = cfg.line.bit_length() - 1
        self.tlb_sets = self.k.tlb_entries // self.k.tlb_ways
        self.code: list[list[int]] = []
        self.op_addr: list[int] = []
        self.op_at: dict[int, int] = {}            # physical address -> op index
        self.regs = [[0] * isa.NREGS for _ in range(n)]
        self.pc = [0] * n
        self.state = [WFS] * n
        self.iflag = [0] * n
        self.mode = [isa.REAL] * n
        self.cr3 = [0] * n
        self.sched = [-1] * n
        self.spin_line = [-1] * n
        self.last_fetch = [-1] * n
        self.irr: list[dict[int, int]] = [{} for _ in range(n)]   # vector -> id of the IPI that set it
        self.isr: list[set[int]] = [set() for _ in range(n)]
        self.nmi: list[int] = [-1] * n                            # id of the pending NMI, or -1
        self.nmi_blocked: list[bool] = [False] * n                # taken an NMI, no IRET yet (SDM 6.7.1)
        self.rstack: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]   # (pc, IF, compute left)
        self.busy: list[tuple[int, int] | None] = [None] * n      # (start, end) of the COMPUTE in progress
        self.apic_regs: list[dict[int, int]] = [self.apic_reset_values() for _ in range(n)]
        self.timer = [Timer() for _ in range(n)]
        self.handlers = [[-1] * 256 for _ in range(n)]
        self.kernel = [-1] * n
        self.icr_low = [0] * n
        self.icr_high = [0] * n
        self.icr_idle = [0] * n              # when the local APIC has sent its last IPI
        self.idt = [-1] * n                  # IDT base set by LIDT; -1: never ran LIDT (return stack, no traffic)
        self.ldr = [0] * n
        self.dfr = [0xFFFFFFFF] * n
        self.esr_new = [0] * n               # errors since the last ESR write
        self.esr = [0] * n                   # what the ESR reads
        self.pending: list[list[int]] = [[] for _ in range(n)]   # ids of IPIs not yet applied
        self.inflight: list[InFlight | None] = [None] * n
        self.alu_issued = [0] * n            # register-class ops so far (issue_width grouping)
        self.tlb = [[[None] * self.k.tlb_ways for _ in range(self.tlb_sets)] for _ in range(n)]
        self.tlb_stamp = 0
        self.regions: list[tuple[int, int, int]] = []
        self.supervisor = NO_SUPERVISOR      # the kernel whose cores may run PART / ASSIGN
        self.grants: list[tuple[int, int, int]] = []
        self.store: dict[int, int] = {}          # functional memory: byte address -> byte
        self._ipis: list[Ipi] = []
        self._faults: list[tuple] = []
        self._timeline: list[tuple] = []
        self.prog_stats = [[0] * len(PROG_STATS) for _ in range(n)]
        self.ops_executed = 0
        self.kt = [cfg.core_type(c).core for c in range(n)]      # each core's own costs (own cycles)
        self.ratio = [cfg.clock_ratio(c) for c in range(n)]       # one own cycle = num/den ticks
        self.rem = [0] * n                                        # carried remainder, in 1/den ticks
        self.ndom = cfg.ndomains
        self.dom = [cfg.domain(c) for c in range(n)]
        self.copies: dict[tuple[int, int], list] = {}             # (domain, line) -> [bytearray, dirty]

    # ------------------------------------------------------------ set-up and views
    @property
    def clock(self) -> list[int]:
        return self.mem.clock

    def load_workload(self, w: Workload) -> None:
        """Place the code, start cores, install handlers, partitions, memory and registers."""
        ops, addr = w.code()
        self.code = [[int(x) for x in row] for row in ops]
        self.op_addr = [int(a) for a in addr]
        self.op_at = {a: i for i, a in enumerate(self.op_addr)}
        for c, (pc, mode, at) in w.starts.items():
            self.pc[c], self.mode[c], self.state[c] = pc, mode, RUN
            self.clock[c] = at
            self.schedule(c, at)
        for (c, v), pc in w.handlers.items():
            self.handlers[c][v] = pc
        for c, kern in w.kernels.items():
            self.kernel[c] = kern
        self.regions = list(w.regions)
        self.grants = list(w.grants)
        self.supervisor = w.supervisor
        for a, data in w.memory:
            self.write(a, data)
        for c, rs in w.regs.items():
            for r, v in rs.items():
                self.regs[c][r] = isa.wrap64(v)

    def read(self, addr: int, n: int) -> bytes:
        """n bytes of the functional store at physical addr (unwritten bytes are 0)."""
        return bytes(self.store.get((addr + i) & MASK64, 0) for i in range(n))

    def write(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.store[(addr + i) & MASK64] = b

    def ticks(self, c: int, n: int) -> int:
        """n cycles of core c in reference ticks (n * num / den; the remainder carries to the next cost)."""
        num, den = self.ratio[c]
        if num == den:
            return n
        x = n * num + self.rem[c]
        self.rem[c] = x % den
        return x // den

    # ------------------------------------------------------------ values seen by a coherence domain
    def line_copy(self, c: int, addr: int) -> list:
        """Core c's domain's copy of addr's line, filled from memory if the domain has none."""
        line = addr >> self.line_bits
        key = (self.dom[c], line)
        if key not in self.copies:
            self.copies[key] = [bytearray(self.read(line << self.line_bits, 1 << self.line_bits)), False]
        return self.copies[key]

    def dread(self, c: int, pa: int, n: int) -> int:
        """n bytes at pa as core c sees them (memory on a one-domain machine)."""
        if self.ndom == 1:
            return self.read_value(pa, n)
        lm = (1 << self.line_bits) - 1
        return int.from_bytes(bytes(self.line_copy(c, pa + i)[0][(pa + i) & lm] for i in range(n)), "little")

    def dwrite(self, c: int, pa: int, data: bytes) -> None:
        if self.ndom == 1:
            self.write(pa, data)
            return
        lm = (1 << self.line_bits) - 1
        for i, b in enumerate(data):
            cp = self.line_copy(c, pa + i)
            cp[0][(pa + i) & lm] = b
            cp[1] = True

    def clean_copy(self, d: int, line: int) -> None:
        """Write domain d's copy of line back (if dirty) and drop it."""
        cp = self.copies.pop((d, line), None)
        if cp is not None and cp[1]:
            self.write(line << self.line_bits, bytes(cp[0]))

    def read_domain(self, d: int, addr: int, n: int) -> bytes:
        """n bytes as domain d sees them now, without filling anything."""
        out = bytearray()
        lm = (1 << self.line_bits) - 1
        for i in range(n):
            a = (addr + i) & MASK64
            cp = self.copies.get((d, a >> self.line_bits))
            out.append(cp[0][a & lm] if cp is not None else self.store.get(a, 0))
        return bytes(out)

    def ipis(self) -> list[tuple]:
        return [p.row() for p in self._ipis]

    def partitions(self) -> list[tuple[int, int, int]]:
        """The partition table now, slot by slot (as ``Machine.partitions``)."""
        return [tuple(r) for r in self.regions]

    def kernels(self) -> list[int]:
        return list(self.kernel)

    def faults(self) -> list[tuple]:
        return list(self._faults)

    def timeline(self) -> list[tuple]:
        return list(self._timeline)

    def waits(self) -> list[tuple[int, str, str]]:
        """What each sleeping core waits on (the deadlock report)."""
        out = []
        for c in range(self.ncores):
            if self.state[c] == SPIN:
                out.append((c, STATE_NAMES[SPIN], f"line {self.spin_line[c] << self.line_bits:#x}"))
            elif self.state[c] == WFI:
                out.append((c, STATE_NAMES[WFI], "interrupt"))
        return out

    def stat(self, c: int, s: int, n: int = 1) -> None:
        self.prog_stats[c][s] += n

    # ------------------------------------------------------------ the run loop
    def schedule(self, c: int, w: int) -> None:
        """Schedule core c at time w, keeping an earlier time it already has."""
        if self.sched[c] < 0 or w < self.sched[c]:
            self.sched[c] = w

    def execute(self, max_ops: int = -1) -> str:
        """Run until nothing is scheduled ('done' / 'deadlock') or max_ops ops ran ('limit')."""
        start = self.ops_executed
        while True:
            if max_ops >= 0 and self.ops_executed - start >= max_ops:
                return STATUS_NAMES[LIMIT]
            ready = [c for c in range(self.ncores) if self.sched[c] >= 0]
            if not ready:
                stuck = any(s in (SPIN, WFI) for s in self.state)
                return STATUS_NAMES[DEADLOCK if stuck else DONE]
            c = min(ready, key=lambda q: (self.sched[q], q))
            if self.sched[c] > self.clock[c]:
                self.stat(c, S_SLEEP_CYCLES, self.sched[c] - self.clock[c])
                self.clock[c] = self.sched[c]
            elif self.sched[c] < self.clock[c]:         # in a COMPUTE: stepped where an interrupt may preempt it
                self.clock[c] = self.sched[c]
            self.sched[c] = -1
            self.step(c)
            if self.state[c] == RUN:
                self.schedule(c, self.clock[c])
            else:
                self.wake_check(c)      # see 'Wake check after every step' in the module docstring

    def step(self, c: int) -> None:
        """One step of core c at t = clock[c] (spec: 'One step')."""
        t = self.clock[c]
        # 1. accept arrived IPIs, and the APIC timer's expiries (an expiry before an IPI of the same cycle)
        arrived = sorted((i for i in self.pending[c] if self._ipis[i].arrive <= t),
                         key=lambda i: (self._ipis[i].arrive, i))
        for i in arrived:
            self.timer_due(c, self._ipis[i].arrive)
            self.pending[c].remove(i)
            self.apply_ipi(c, i, t)
        self.timer_due(c, t)
        # 2. not running at all
        if self.state[c] in (WFS, HALTED, FAULTED):
            return
        # a memory op in flight takes effect now, before anything else
        if self.inflight[c] is not None:
            try:
                self.perform_memory_op(c, t)
            except Fault as f:
                self.fault(c, f.kind, f.addr, f.time, f.owner)
            return
        # 3. one interrupt
        v = self.deliverable(c)
        if v >= 0:
            self.take_interrupt(c, v, t)
            return
        # 4. woken by an IPI that is not deliverable: sleeps again (the loop's wake check is its sleep check)
        if self.state[c] in (SPIN, WFI):
            return
        # in a COMPUTE: it goes on to its end unless that is now
        if self.busy[c] is not None:
            end = self.busy[c][1]
            if end > t:
                self.clock[c] = end
                self.wake_check(c)
                return
            self.busy[c] = None
        # 5. fetch
        pc = self.pc[c]
        if not 0 <= pc < len(self.code):
            self.fault(c, FK_NO_CODE, 0, t)
            return
        t1 = t
        line = self.op_addr[pc] >> self.line_bits
        if line != self.last_fetch[c]:
            self.last_fetch[c] = line
            lat = self.mem.access(c, KIND_I, self.op_addr[pc], isa.OP_BYTES, t)
            stall = max(0, lat - self.mem.lat(self.mem.ipath[c][0]))
            self.stat(c, S_FETCH_STALL, stall)
            t1 = t + stall
        # 6. execute
        self.ops_executed += 1
        self.stat(c, S_OPS)
        try:
            self.execute_op(c, self.code[pc], t1)
        except Fault as f:
            self.fault(c, f.kind, f.addr, f.time, f.owner)

    # ------------------------------------------------------------ interrupts
    def deliverable(self, c: int) -> int:
        """The vector step 3 would take now, or -1."""
        if self.nmi[c] >= 0 and not self.nmi_blocked[c]:
            return apic.NMI_VECTOR
        if self.iflag[c] and self.irr[c]:
            v = max(self.irr[c])
            top = max(self.isr[c]) >> 4 if self.isr[c] else -1
            tpr = self.apic_regs[c][apic.TPR]
            if v >> 4 > top and (tpr < 16 or v >> 4 > tpr >> 4):
                return v
        return -1

    def take_interrupt(self, c: int, v: int, t: int) -> None:
        """Step 3: the interrupt is accepted (IRR -> ISR, IPI DELIVERED), then the handler entered."""
        if v == apic.NMI_VECTOR and self.nmi[c] >= 0 and not self.nmi_blocked[c]:   # v is the NMI
            ipi, self.nmi[c] = self.nmi[c], -1
            self.nmi_blocked[c] = True          # further NMIs wait for the next IRET
        else:
            ipi = self.irr[c].pop(v)
            self.isr[c].add(v)
        if ipi >= 0:                            # -1: the APIC timer's
            self._ipis[ipi].outcome, self._ipis[ipi].outcome_t = DELIVERED, t
        h = self.handlers[c][v]
        if h < 0:
            self.fault(c, FK_NO_HANDLER, v, t)
            return
        if len(self.rstack[c]) >= RSTACK:
            self.fault(c, FK_STACK, v, t)
            return
        left = self.busy[c][1] - t if self.busy[c] is not None and self.busy[c][1] > t else 0
        self.busy[c] = None
        self.state[c] = RUN
        te = self.enter_handler(c, v, self.pc[c], h, t, left)
        if te is None:
            return
        self.clock[c] = te + self.ticks(c, self.kt[c].interrupt_entry)
        self.stat(c, S_INTERRUPTS)
        if left:
            self.stat(c, S_PREEMPTED)

    def code_address(self, pc: int) -> int:
        return self.op_addr[pc] if 0 <= pc < len(self.op_addr) else -1

    def enter_handler(self, c: int, vec: int, ret_pc: int, h: int, t: int, left: int) -> int | None:
        """Enter handler h at t returning to ret_pc: the return stack for a core that never ran LIDT, else
        the IDT entry read and the 64-bit frame pushed at sp through the memory system.  Returns the time
        the accesses are done, or None after a double fault (logged; the core is FAULTED)."""
        if self.idt[c] < 0:
            self.rstack[c].append((ret_pc, self.iflag[c], left))
        else:
            ea = (self.idt[c] + 16 * vec) & MASK64
            rsp = self.regs[c][isa.SP]
            new = ((rsp & ~15) - 40) & MASK64
            for a in [ea, ea + 8] + [new + 8 * k for k in range(5)]:
                try:
                    self.check_partition(c, a & MASK64, t)
                except Fault as f:
                    self._faults.append((c, ret_pc, isa.wrap64(f.addr), FK_DOUBLE, f.owner, t))
                    self.stat(c, S_FAULTS)
                    self.state[c] = FAULTED
                    self.clock[c] = t
                    return None
            t += self.mem.access(c, KIND_L, ea, 16, t)
            frame = [self.code_address(ret_pc), isa.FRAME_CS, 2 | (self.iflag[c] << 9), rsp, isa.FRAME_SS]
            for k in range(4, -1, -1):          # SS first, RIP last: pushed from the top down
                a = (new + 8 * k) & MASK64
                t += self.mem.access(c, KIND_S, a, 8, t)
                self.dwrite(c, a, (frame[k] & MASK64).to_bytes(8, "little"))
                self.wake_spinners(c, a, 8, t)
            self.rstack[c].append((ret_pc, self.iflag[c], left))     # the frame's shadow
            self.regs[c][isa.SP] = isa.wrap64(new)
        self.iflag[c] = 0
        self.pc[c] = h
        return t

    def iret_frame(self, c: int, t1: int) -> int:
        """IRET after LIDT: pop RIP, CS, RFLAGS, RSP, SS at sp and use them; returns the op's cost."""
        sp = self.regs[c][isa.SP]
        for k in range(5):
            self.check_partition(c, (sp + 8 * k) & MASK64, t1)
        t = t1
        words = []
        for k in range(5):
            a = (sp + 8 * k) & MASK64
            t += self.mem.access(c, KIND_L, a, 8, t)
            words.append(self.dread(c, a, 8))
        self.pc[c] = self.op_at.get(words[0], -1)
        self.iflag[c] = (words[2] >> 9) & 1
        self.regs[c][isa.SP] = isa.wrap64(words[3])
        self.nmi_blocked[c] = False
        return t - t1 + self.ticks(c, self.kt[c].iret_latency)

    def eoi(self, c: int) -> None:
        if self.isr[c]:
            self.isr[c].discard(max(self.isr[c]))

    def fault(self, c: int, kind: int, addr: int, time: int, owner: int = -1, pc: int | None = None) -> None:
        """Log a fault; trap to its handler (vector 14 or 13) or stop the core."""
        self._faults.append((c, self.pc[c] if pc is None else pc, isa.wrap64(addr), kind, owner, time))
        self.stat(c, S_FAULTS)
        vec = 14 if kind in (FK_NOT_PRESENT, FK_NOT_WRITABLE) else 13
        h = self.handlers[c][vec]
        full = len(self.rstack[c]) >= RSTACK
        if kind in (FK_NO_HANDLER, FK_STACK, FK_NO_CODE) or h < 0 or full:
            self.state[c] = FAULTED
            self.clock[c] = time
            return
        te = self.enter_handler(c, vec, self.pc[c] if pc is None else pc, h, time, 0)
        if te is not None:
            self.clock[c] = te + self.ticks(c, self.kt[c].interrupt_entry)

    # ------------------------------------------------------------ IPIs
    def wake_check(self, q: int) -> None:
        """A core not running, or in a COMPUTE, is scheduled for its earliest pending IPI (every IPI wakes its
        target, so that it takes effect, is ignored or is latched in IRR when it arrives) or timer expiry
        that would latch an interrupt."""
        s = self.state[q]
        if s == RUN and self.busy[q] is None:
            return
        times = [self._ipis[i].arrive for i in self.pending[q]]
        tw = self.timer_wake(q)
        if tw is not None and s in (RUN, SPIN, WFI):
            times.append(tw)
        if not times:
            return
        if s == RUN:
            start, end = self.busy[q]
            if max(min(times), start) < end:
                self.schedule(q, max(min(times), start))
        else:
            self.schedule(q, max(min(times), self.clock[q]))

    sleep_check = wake_check

    def targets(self, c: int, sh: int, logical: int, dest: int) -> list[int]:
        """The cores an ICR write by c addresses (shorthand, destination mode and field), ascending."""
        n = self.ncores
        if sh == apic.SH_SELF:
            return [c]
        if sh == apic.SH_ALL:
            return list(range(n))
        if sh == apic.SH_OTHERS:
            return [q for q in range(n) if q != c]
        if logical:
            return [q for q in range(n) if self.logical_match(dest, q)]
        broadcast = 0xFFFFFFFF if self.x2apic else 0xFF
        return list(range(n)) if dest == broadcast else [q for q in range(n) if q == dest]

    def logical_match(self, dest: int, q: int) -> bool:
        """SDM 10.6.2.2 (xAPIC flat / cluster against LDR and DFR) and 10.12.10 (x2APIC cluster)."""
        if self.x2apic:
            if dest == 0xFFFFFFFF:
                return True
            lid = apic.x2apic_logical_id(q)
            return dest >> 16 == lid >> 16 and bool(dest & lid & 0xFFFF)
        mda, lid = dest & 0xFF, (self.ldr[q] >> 24) & 0xFF
        if mda == 0xFF:
            return True
        if self.dfr[q] >> 28 == apic.DFR_FLAT:
            return bool(mda & lid)
        return mda >> 4 == lid >> 4 and bool(mda & lid & 0xF)

    def send_ipi(self, c: int, low: int, dest: int, ts: int) -> int:
        """An ICR write that c's local APIC takes at ts: log, queue and wake-check one IPI per target.
        Returns when the APIC has sent it (delivery status idle)."""
        vector, mode, logical, sh, deassert = decode_icr(low)
        if deassert:
            return ts
        if mode in (apic.FIXED, apic.LOWEST) and vector < 16:
            self.esr_new[c] |= apic.ESR_SEND_ILLEGAL
            return ts
        busy = self.cfg.apic.icr_busy
        targets = self.targets(c, sh, logical, dest)
        if not targets:
            self._ipis.append(Ipi(c, -1 if logical else dest, vector, mode, ts, ts, ERROR, ts))
            self.stat(c, S_IPIS_SENT)
            return ts + busy
        if mode == apic.LOWEST:
            targets = targets[:1]           # no TPR modelled: the lowest-numbered core of the set
        serial = self.cfg.apic.multicast == "serial"
        for k, q in enumerate(targets):
            depart = ts + busy * k if serial else ts
            arrive = depart + self.cfg.apic.ipi_latency + self.mem.msg(self.mem.pkg(c), self.mem.pkg(q))
            self._ipis.append(Ipi(c, q, vector, mode, depart, arrive))
            self.pending[q].append(len(self._ipis) - 1)
            self.wake_check(q)
        self.stat(c, S_IPIS_SENT, len(targets))
        return ts + busy * (len(targets) if serial else 1)

    def apply_ipi(self, q: int, i: int, t: int) -> None:
        """An arrived IPI takes effect at core q (step 1)."""
        p = self._ipis[i]

        def outcome(o: int) -> None:
            p.outcome, p.outcome_t = o, t

        if p.mode == apic.INIT:
            outcome(DELIVERED)
            self.reset(q)
        elif p.mode == apic.STARTUP:
            if self.state[q] != WFS:
                outcome(IGNORED)
                return
            outcome(DELIVERED)
            self.mode[q] = isa.REAL
            pc = self.op_at.get(p.vector << 12, -1)
            if pc < 0:
                self.fault(q, FK_NO_CODE, p.vector << 12, t, pc=-1)
                return
            self.pc[q], self.state[q] = pc, RUN
        elif p.mode in (apic.NMI, apic.FIXED, apic.LOWEST):
            if self.state[q] in (WFS, HALTED, FAULTED):
                outcome(IGNORED)
            elif p.mode == apic.NMI:
                if self.nmi[q] >= 0:
                    outcome(COALESCED)
                else:
                    self.nmi[q] = i
            elif p.vector in self.irr[q]:
                outcome(COALESCED)
            else:
                self.irr[q][p.vector] = i
        else:                                       # SMI, reserved modes
            outcome(IGNORED)

    def reset(self, q: int) -> None:
        """INIT: back to wait-for-SIPI."""
        self.state[q] = WFS
        self.iflag[q] = 0
        self.irr[q] = {}
        self.isr[q] = set()
        self.nmi[q] = -1
        self.nmi_blocked[q] = False
        self.rstack[q] = []
        self.flush_tlb(q)
        self.regs[q] = [0] * isa.NREGS
        self.mode[q] = isa.REAL
        self.cr3[q] = 0
        self.last_fetch[q] = -1
        self.inflight[q] = None             # an op in flight is abandoned
        self.busy[q] = None                 # so is a compute
        self.apic_regs[q] = self.apic_reset_values()
        self.timer[q] = Timer()
        self.idt[q] = -1
        self.ldr[q] = 0
        self.dfr[q] = 0xFFFFFFFF
        self.esr_new[q] = self.esr[q] = 0

    # ------------------------------------------------------------ TLB and page walks
    def flush_tlb(self, c: int) -> None:
        self.tlb[c] = [[None] * self.k.tlb_ways for _ in range(self.tlb_sets)]

    def tlb_find(self, c: int, big: bool, vpn: int) -> TlbEntry | None:
        for e in self.tlb[c][vpn & (self.tlb_sets - 1)]:
            if e is not None and e.big == big and e.vpn == vpn:
                return e
        return None

    def tlb_fill(self, c: int, big: bool, vpn: int, frame: int, writable: bool) -> TlbEntry:
        """Fill the lowest empty way of the set, else the least recently used."""
        ways = self.tlb[c][vpn & (self.tlb_sets - 1)]
        empty = [w for w, e in enumerate(ways) if e is None]
        w = empty[0] if empty else min(range(len(ways)), key=lambda x: ways[x].stamp)
        self.tlb_stamp += 1
        ways[w] = TlbEntry(big, vpn, frame, writable, self.tlb_stamp)
        return ways[w]

    def invlpg(self, c: int, va: int) -> None:
        for big, vpn in ((False, va >> 12), (True, va >> 21)):
            ways = self.tlb[c][vpn & (self.tlb_sets - 1)]
            for w, e in enumerate(ways):
                if e is not None and e.big == big and e.vpn == vpn:
                    ways[w] = None

    def read_value(self, pa: int, n: int) -> int:
        return int.from_bytes(self.read(pa, n), "little")

    def translate(self, c: int, va: int, write: bool, t: int) -> tuple[int, int]:
        """(physical address, walk cycles) of virtual va; the walk starts at t."""
        top = va >> 47
        if top not in (0, (1 << 17) - 1):
            raise Fault(FK_NONCANONICAL, va, t)
        e = self.tlb_find(c, False, va >> 12) or self.tlb_find(c, True, va >> 21)
        cycles = 0
        if e is not None:
            self.tlb_stamp += 1
            e.stamp = self.tlb_stamp
            self.stat(c, S_TLB_HITS)
        else:
            self.stat(c, S_TLB_MISSES)
            table = self.cr3[c] & ADDR_BITS
            writable = True
            for level, shift in enumerate((39, 30, 21, 12)):
                ea = table + ((va >> shift) & 511) * 8
                lat = self.mem.access(c, KIND_L, ea, 8, t + cycles)
                cycles += lat
                self.stat(c, S_WALK_CYCLES, lat)
                entry = self.dread(c, ea, 8)
                if not entry & 1:
                    raise Fault(FK_NOT_PRESENT, va, t + cycles)
                writable = writable and bool(entry & 2)
                if level == 1 and entry & 0x80:
                    raise Fault(FK_UNSUPPORTED, va, t + cycles)
                if level == 2 and entry & 0x80:
                    e = self.tlb_fill(c, True, va >> 21, entry & ADDR_BITS_2M, writable)
                    break
                if level == 3:
                    e = self.tlb_fill(c, False, va >> 12, entry & ADDR_BITS, writable)
                table = entry & ADDR_BITS
        if write and not e.writable:
            raise Fault(FK_NOT_WRITABLE, va, t + cycles)
        offset = va & ((1 << 21) - 1) if e.big else va & (PAGE - 1)
        return e.frame | offset, cycles

    # ------------------------------------------------------------ partitions and the APIC page
    def check_partition(self, c: int, pa: int, t: int) -> None:
        if not self.regions or self.kernel[c] < 0:
            return
        k = self.kernel[c]
        owner = next((o for lo, hi, o in self.regions if lo <= pa < hi), -1)
        if owner == k or any(lo <= pa < hi and g == k for lo, hi, g in self.grants):
            return
        raise Fault(FK_PARTITION, pa, t, owner)

    def supervisor_op(self, c: int, op: int, a: int, b: int, cc: int, d: int, e: int, t1: int) -> None:
        """PART / ASSIGN (cpu_spec.md, 'Partition changes'); raises the op's fault."""
        if self.supervisor < 0 or self.kernel[c] != self.supervisor:
            raise Fault(FK_PRIVILEGE, 0, t1)
        r = self.regs[c]
        if op == isa.PART:
            lo, hi, owner = (x if e >> i & 1 else r[x] for i, x in enumerate((b, cc, d)))
            ok = 0 <= a < len(self.regions) and 0 <= lo <= hi <= 1 << 52 and lo % PAGE == 0 \
                and hi % PAGE == 0 and owner >= -1
            if ok and lo < hi:
                for j, (rlo, rhi, rown) in enumerate(self.regions):
                    if j != a and rlo < hi and lo < rhi:
                        raise Fault(FK_REPART, lo, t1, rown)
            if not ok:
                raise Fault(FK_REPART, lo, t1)
            self.regions[a] = (lo, hi, owner) if lo < hi else (0, 0, -1)
        else:
            q = a if e & 1 else r[a]
            kern = b if e & 2 else r[b]
            if not 0 <= q < self.ncores:
                raise Fault(FK_REPART, q, t1)
            if kern < -1 or self.state[q] not in (WFS, HALTED, FAULTED):
                raise Fault(FK_REPART, q, t1, self.kernel[q])
            self.kernel[q] = kern

    def in_apic_page(self, pa: int) -> bool:
        return not self.x2apic and apic.APIC_BASE <= pa < apic.APIC_BASE + apic.APIC_PAGE

    # ------------------------------------------------------------ the local APIC's registers and timer
    @staticmethod
    def apic_reset_values() -> dict[int, int]:
        """Registers kept as written, at their power-up / INIT values (LVT entries masked; SVR enabled)."""
        regs = {apic.TPR: 0, apic.SVR: 0x1FF, apic.TIMER_INIT: 0, apic.TIMER_DIV: 0}
        regs.update({off: apic.LVT_MASK for off in LVT_REGS})
        return regs

    @staticmethod
    def apic_access_ok(off: int, n: int, read: bool, write: bool) -> bool:
        """A 4-byte access at a register's offset, allowed by the register table."""
        name_rights = apic.REGISTERS.get(off)
        rights = name_rights[1] if name_rights else 0
        need = (apic.A_R if read else 0) | (apic.A_W if write else 0)
        return n == 4 and off % 16 == 0 and rights & need == need

    def apic_read(self, c: int, off: int, t: int) -> int:
        """A readable register at t."""
        if off == apic.ID:
            return c << 24
        if off == apic.VERSION:
            return self.cfg.apic.version
        if off == apic.PPR:
            tpr = self.apic_regs[c][apic.TPR]
            isrv = max(self.isr[c]) if self.isr[c] else None
            return tpr if isrv is None or tpr >> 4 >= isrv >> 4 else isrv & 0xF0
        for base, bits in ((apic.ISR0, self.isr[c]), (apic.TMR0, set()), (apic.IRR0, set(self.irr[c]))):
            if base <= off < base + 0x80:
                k = (off - base) >> 4
                return sum(1 << (v - 32 * k) for v in bits if 32 * k <= v < 32 * k + 32)
        if off == apic.ICR_LOW:
            return self.icr_low[c] | (apic.ICR_BUSY if t < self.icr_idle[c] else 0)
        if off == apic.ICR_HIGH:
            return self.icr_high[c]
        if off == apic.LDR:
            return self.ldr[c]
        if off == apic.DFR:
            return self.dfr[c]
        if off == apic.ESR:
            return self.esr[c]
        if off == apic.TIMER_CUR:
            return self.timer_current(c, t)
        return self.apic_regs[c][off]

    def apic_write(self, c: int, off: int, value: int, ts: int, fault_addr: int, fault_kind: int) -> None:
        """A write to a writable register completing at ts (the IPI's send time, or a fault's time); a value the
        model refuses raises ``fault_kind``."""
        value &= 0xFFFFFFFF
        regs = self.apic_regs[c]
        if off == apic.ICR_HIGH:
            self.icr_high[c] = value
        elif off == apic.ICR_LOW:
            self.icr_low[c] = value & ~apic.ICR_BUSY
            idle = self.send_ipi(c, value, (self.icr_high[c] >> 24) & 0xFF, ts)
            self.icr_idle[c] = max(self.icr_idle[c], idle)
        elif off == apic.LDR:
            self.ldr[c] = value & 0xFF000000
        elif off == apic.DFR:
            self.dfr[c] = value | 0x0FFFFFFF
        elif off == apic.ESR:
            self.esr_latch(c)
        elif off == apic.EOI:
            self.eoi(c)
        elif off == apic.TPR:
            regs[off] = value & 0xFF
        elif off == apic.SVR:
            if not value & apic.SVR_ENABLE:
                raise Fault(fault_kind, fault_addr, ts)          # software disable is not modelled
            regs[off] = value & 0x13FF
        elif off == apic.LVT_TIMER:
            mode = (value >> 17) & 3
            if mode == 3 or (mode == apic.TIMER_DEADLINE and not self.cfg.apic.tsc_deadline):
                raise Fault(fault_kind, fault_addr, ts)          # reserved timer mode
            if mode != (regs[off] >> 17) & 3:                    # a mode change disarms the timer
                tm = self.timer[c]
                tm.start, tm.next, tm.deadline = None, None, 0
            regs[off] = value & apic.LVT_BITS
        elif off == apic.TIMER_INIT:
            if (regs[apic.LVT_TIMER] >> 17) & 3 != apic.TIMER_DEADLINE:  # ignored in TSC-deadline mode
                regs[off] = value
                self.timer_arm(c, ts)
        elif off == apic.TIMER_DIV:
            regs[off] = value & 0xB
        else:                                                    # the other LVT entries
            regs[off] = value & apic.LVT_BITS & ~0x60000

    def esr_latch(self, c: int) -> None:
        """SDM 10.5.3: a write makes the errors since the last write readable, and clears them."""
        self.esr[c], self.esr_new[c] = self.esr_new[c], 0

    def timer_span(self, c: int, j: int) -> int:
        """Core cycles from the count's start to its j-th expiry."""
        a = j * self.apic_regs[c][apic.TIMER_INIT] * self.timer[c].div * self.cfg.apic.timer_period_num
        return -(-a // self.cfg.apic.timer_period_den)

    def timer_arm(self, c: int, t: int) -> None:
        tm = self.timer[c]
        dcr = self.apic_regs[c][apic.TIMER_DIV]
        v = (dcr & 3) | ((dcr >> 1) & 4)
        tm.div = 1 << ((v + 1) & 7)
        if self.apic_regs[c][apic.TIMER_INIT] == 0:
            tm.start, tm.next = None, None
            return
        tm.start, tm.j = t, 1
        tm.next = t + self.timer_span(c, 1)

    def timer_mode(self, c: int) -> int:
        return (self.apic_regs[c][apic.LVT_TIMER] >> 17) & 3

    def timer_wake(self, c: int) -> int | None:
        """The next expiry if it would latch an interrupt (unmasked, legal vector, IRR bit clear)."""
        tm = self.timer[c]
        lvt = self.apic_regs[c][apic.LVT_TIMER]
        v = lvt & 0xFF
        if tm.next is None or lvt & apic.LVT_MASK or v < 16 or v in self.irr[c]:
            return None
        return tm.next

    def timer_due(self, c: int, upto: int) -> None:
        """Every expiry at or before upto: the first may latch the LVT vector; the others are lost."""
        tm = self.timer[c]
        if tm.next is None or tm.next > upto:
            return
        mode = self.timer_mode(c)
        k = 1
        if mode == apic.TIMER_PERIODIC:
            j = tm.j
            while tm.start + self.timer_span(c, j + 1) <= upto:
                j += 1
            k = j - tm.j + 1
            tm.j = j + 1
            tm.next = tm.start + self.timer_span(c, j + 1)
        else:
            tm.next = None
            if mode == apic.TIMER_DEADLINE:
                tm.deadline = 0
        lvt = self.apic_regs[c][apic.LVT_TIMER]
        v = lvt & 0xFF
        if lvt & apic.LVT_MASK or v < 16 or self.state[c] in (WFS, HALTED, FAULTED) or v in self.irr[c]:
            self.stat(c, S_TIMER_LOST, k)
            return
        self.irr[c][v] = -1
        self.stat(c, S_TIMER_INTS)
        self.stat(c, S_TIMER_LOST, k - 1)

    def timer_current(self, c: int, t: int) -> int:
        """The current-count register at t."""
        tm = self.timer[c]
        ic = self.apic_regs[c][apic.TIMER_INIT]
        mode = self.timer_mode(c)
        if tm.start is None or mode == apic.TIMER_DEADLINE or tm.next is None:
            return 0
        ticks = max(t - tm.start, 0) * self.cfg.apic.timer_period_den // self.cfg.apic.timer_period_num
        steps = ticks // tm.div
        if mode == apic.TIMER_PERIODIC:
            return ic - steps % ic
        return max(tm.j * ic - steps, 0)

    def tsc_deadline_write(self, c: int, value: int, t: int) -> None:
        tm = self.timer[c]
        if self.timer_mode(c) != apic.TIMER_DEADLINE:
            return                                              # ignored in the other modes
        tm.deadline = isa.wrap64(value)
        u = value & MASK64
        tm.next = None if u == 0 or u >= HORIZON else max(u, t)

    # ------------------------------------------------------------ memory ops
    def chunks(self, va: int, n: int) -> list[Chunk]:
        """The access split at 4 KiB boundaries."""
        first = min(n, PAGE - (va & (PAGE - 1)))
        out = [Chunk(va, va, first, 0)]
        if first < n:
            out.append(Chunk((va + first) & MASK64, (va + first) & MASK64, n - first, first))
        return out

    def issue_memory_op(self, c: int, row: list[int], t1: int) -> None:
        """LOAD/STORE/FADD/XCHG/CAS/SPIN, first half: translate and check every chunk, then perform at
        once if every line hits, else put the op in flight until its request reaches the home."""
        op, _a, b, off, n, e, _f, _g = row
        r = self.regs[c]
        va = ((r[b] if b >= 0 else 0) + off) & MASK64
        write = op in (isa.STORE, isa.FADD, isa.XCHG, isa.CAS)
        if op == isa.SPIN and va % n:
            raise Fault(FK_MISALIGNED, va, t1)
        self.issue_access(c, va, n, bool(e & isa.F_VIRT), write, t1, read=op != isa.STORE)

    def issue_stack_op(self, c: int, row: list[int], t1: int) -> None:
        """CALL / CALLR / RET, first half: the 8-byte physical push at sp - 8 or pop at sp (spec: 'Calls')."""
        op, a = row[0], row[1]
        r = self.regs[c]
        if op == isa.CALLR and r[a] not in self.op_at:
            raise Fault(FK_NO_CODE, r[a], t1)
        sp = r[isa.SP] & MASK64
        if op == isa.RET:
            self.issue_access(c, sp, 8, False, False, t1, read=True)
        else:
            self.issue_access(c, (sp - 8) & MASK64, 8, False, True, t1, read=False)

    def issue_access(self, c: int, va: int, n: int, virt: bool, write: bool, t1: int, read: bool) -> None:
        """Translate and check every chunk of the op at pc (``read``: it reads memory, i.e. it is not a plain
        store or push), then perform it at once or put it in flight."""
        chunks = self.chunks(va, n)
        walk = 0
        if virt:
            if self.mode[c] != isa.LONG:
                raise Fault(FK_NOT_PAGING, va, t1)
            for ch in chunks:
                ch.pa, cycles = self.translate(c, ch.va, write, t1 + walk)
                walk += cycles
        ti = t1 + walk                          # the data access's issue time
        for ch in chunks:
            ch.apic = self.in_apic_page(ch.pa)
            if ch.apic:
                if not self.apic_access_ok(ch.pa - apic.APIC_BASE, ch.n, read, write):
                    raise Fault(FK_APIC, ch.pa, ti)
            else:
                self.check_partition(c, ch.pa, ti)
        missing = next((line for ch in chunks if not ch.apic for line in self.lines(ch.pa, ch.n)
                        if not self.would_hit(c, line, write)), None)
        self.inflight[c] = InFlight(t1, ti, chunks, missing is None)
        if missing is None:
            self.perform_memory_op(c, ti)
        else:
            self.clock[c] = ti + self.request_delay(c, missing)

    def lines(self, pa: int, n: int) -> range:
        return range(pa >> self.line_bits, ((pa + n - 1) >> self.line_bits) + 1)

    def would_hit(self, c: int, line: int, write: bool) -> bool:
        """A private level of c's data path holds the line, and for a write the core owns it in E or M."""
        m = self.mem
        if not any(m.caches[m.dpath[c][k]].find(line) >= 0 for k in range(m.npriv)):
            return False
        if not write:
            return True
        e = m.dir.get(m.key(c, line))
        return e is not None and e.owner == c and e.state in (E, M)

    def request_delay(self, c: int, line: int) -> int:
        """Lookups down the whole data path, then the message to the line's home."""
        m = self.mem
        return m.lat(m.dpath[c][m.nlev - 1]) + m.msg(m.pkg(c), m.home(line))

    def perform_memory_op(self, c: int, now: int) -> None:
        """Second half: perform the in-flight chunks (timed from their issue time, values as of now)."""
        fl, self.inflight[c] = self.inflight[c], None
        op, a, _b, _off, n, e, f, g = self.code[self.pc[c]]
        r = self.regs[c]
        if op in (isa.CALL, isa.CALLR, isa.RET):
            self.perform_stack_op(c, fl, now)
            return
        imm = bool(e & isa.F_IMM)
        write = op in (isa.STORE, isa.FADD, isa.XCHG, isa.CAS)

        # read the old value (all chunks), then write the new one chunk by chunk through the memory system
        old = 0
        for ch in fl.chunks:
            if ch.apic:
                part = self.apic_read(c, ch.pa - apic.APIC_BASE, fl.ti) & mask(ch.n) if op != isa.STORE else 0
            else:
                part = self.dread(c, ch.pa, ch.n) if op != isa.STORE else 0
            old |= part << (8 * ch.off)
        if op == isa.STORE:
            new = a if imm else r[a]
        elif op == isa.FADD:
            new = old + (f if imm else r[f])
        elif op == isa.XCHG:
            new = f if imm else r[f]
        elif op == isa.CAS:
            new = r[g] if old == r[f] & mask(n) else old
        else:
            new = 0
        new &= mask(n)
        end = max(self.write_chunks(c, fl, new, write), now)
        # performed without a fault: count it
        self.stat(c, S_LOADS if op in (isa.LOAD, isa.SPIN) else S_STORES if op == isa.STORE else S_ATOMICS)
        if op == isa.STORE:
            if fl.hit and not any(ch.apic for ch in fl.chunks):      # retires into the store buffer
                end = max(fl.ti + self.alu_cost(c), now)
        elif op in (isa.FADD, isa.XCHG, isa.CAS):
            end += self.ticks(c, self.kt[c].atomic_latency)
            for ch in fl.chunks:                 # the line stays locked in M until the op ends
                if not ch.apic:
                    self.mem.hold_lines(c, ch.pa, ch.n, end)
        if op != isa.STORE:
            r[a] = isa.wrap64(old)
        self.clock[c] = end
        if op == isa.SPIN and not cond(e >> 2, old, f if imm else r[f]):
            self.state[c] = SPIN
            self.spin_line[c] = fl.chunks[0].pa >> self.line_bits
            self.stat(c, S_SPIN_SLEEPS)
            self.sleep_check(c)
            return
        self.pc[c] += 1

    def write_chunks(self, c: int, fl: InFlight, new: int, write: bool) -> int:
        """Each chunk through the memory system (or the APIC) from the issue time, writing ``new`` if
        ``write``; returns the completion.  One path for memory ops and stack ops, as the engine's
        ``mem_perform``."""
        t = fl.ti
        for ch in fl.chunks:
            part = (new >> (8 * ch.off)) & mask(ch.n)
            if ch.apic:
                if write and ch.pa - apic.APIC_BASE == apic.ICR_LOW and self.icr_idle[c] > t:
                    self.stat(c, S_ICR_WAIT, self.icr_idle[c] - t)      # the APIC is still sending
                    t = self.icr_idle[c]
                t += self.ticks(c, self.kt[c].mmio_latency)
                if write:
                    self.apic_write(c, ch.pa - apic.APIC_BASE, part, t, ch.pa, FK_APIC)
            else:
                t += self.mem.access(c, KIND_S if write else KIND_L, ch.pa, ch.n, t)
                if write:
                    self.dwrite(c, ch.pa, part.to_bytes(ch.n, "little"))
                    self.wake_spinners(c, ch.pa, ch.n, t)
        return t

    def perform_stack_op(self, c: int, fl: InFlight, now: int) -> None:
        """Second half of CALL / CALLR / RET: the push or pop through the memory system, then sp and pc."""
        op, a = self.code[self.pc[c]][0], self.code[self.pc[c]][1]
        r = self.regs[c]
        write = op != isa.RET
        new = (self.op_addr[self.pc[c]] + isa.OP_BYTES) & MASK64
        old = 0
        for ch in fl.chunks:
            if not write:
                part = (self.apic_read(c, ch.pa - apic.APIC_BASE, fl.ti) & mask(ch.n) if ch.apic
                        else self.dread(c, ch.pa, ch.n))
                old |= part << (8 * ch.off)
        end = max(self.write_chunks(c, fl, new, write), now)
        if op == isa.RET:
            self.stat(c, S_LOADS)
            target = self.op_at.get(isa.wrap64(old), -1)
            if target < 0:
                raise Fault(FK_NO_CODE, old, end)
            r[isa.SP] = isa.wrap64(r[isa.SP] + 8)
        else:
            self.stat(c, S_STORES)
            if fl.hit and not any(ch.apic for ch in fl.chunks):      # retires into the store buffer
                end = max(fl.ti + self.alu_cost(c), now)
            target = a if op == isa.CALL else self.op_at[r[a]]
            r[isa.SP] = isa.wrap64(r[isa.SP] - 8)
        self.pc[c] = target
        self.clock[c] = end

    def wake_spinners(self, c: int, pa: int, n: int, d: int) -> None:
        """A write to the lines of [pa, pa+n) completed at d: other cores spinning on them wake."""
        for line in range((pa >> self.line_bits), ((pa + n - 1) >> self.line_bits) + 1):
            for q in range(self.ncores):
                if q != c and self.state[q] == SPIN and self.spin_line[q] == line and self.dom[q] == self.dom[c]:
                    self.state[q] = RUN
                    self.schedule(q, max(d, self.clock[q]) + self.ticks(q, self.kt[q].spin_wake_latency))

    # ------------------------------------------------------------ one op
    def execute_op(self, c: int, row: list[int], t1: int) -> None:
        """Execute op ``row`` at t1: registers, pc and clock of core c."""
        op, a, b, cc, d, e, _f, _g = row
        r = self.regs[c]
        k = self.kt[c]
        cost = None                     # register-class ops: alu_cost() at the end
        nxt = self.pc[c] + 1

        def operand(field: int, is_imm: int) -> int:
            return field if is_imm else r[field]

        if op == isa.NOP:
            pass
        elif op == isa.MOVI:
            r[a] = isa.wrap64(b)
        elif op == isa.MOV:
            r[a] = r[b]
        elif isa.ADD <= op <= isa.SHR:
            x, y = r[b], operand(cc, d)
            if op == isa.ADD:
                v = x + y
            elif op == isa.SUB:
                v = x - y
            elif op == isa.MUL:
                v = x * y
            elif op == isa.AND:
                v = x & y
            elif op == isa.OR:
                v = x | y
            elif op == isa.XOR:
                v = x ^ y
            elif op == isa.SHL:
                v = x << (y & 63)
            else:
                v = (x & MASK64) >> (y & 63)
            r[a] = isa.wrap64(v)
        elif op == isa.BR:
            if cond(a, r[b], operand(cc, d)):
                nxt = e
        elif op == isa.JMP:
            nxt = a
        elif op == isa.COMPUTE:
            cost = self.ticks(c, max(0, operand(a, d)))
            if cost > 0:                        # interruptible: busy from t1 to t1 + cost
                self.busy[c] = (t1, t1 + cost)
                self.pc[c] = nxt
                self.clock[c] = t1 + cost
                self.wake_check(c)
                return
        elif op in (isa.LOAD, isa.STORE, isa.FADD, isa.XCHG, isa.CAS, isa.SPIN):
            self.issue_memory_op(c, row, t1)     # sets pc and clock itself
            return
        elif op in (isa.CALL, isa.CALLR, isa.RET):
            self.issue_stack_op(c, row, t1)      # likewise
            return
        elif op == isa.WRMSR:
            cost = self.wrmsr(c, a, operand(b, d), t1)
        elif op == isa.WFI:
            self.iflag[c] = 1
            self.pc[c] = nxt
            self.clock[c] = t1 + self.alu_cost(c)
            if self.deliverable(c) < 0:
                self.state[c] = WFI
                self.sleep_check(c)
            return
        elif op == isa.STI:
            self.iflag[c] = 1
        elif op == isa.CLI:
            self.iflag[c] = 0
        elif op == isa.IRET and self.idt[c] >= 0:
            cost = self.iret_frame(c, t1)
            nxt = self.pc[c]
            if self.rstack[c]:                  # the frame's shadow: back into an interrupted COMPUTE
                ret_pc, _, left = self.rstack[c].pop()
                if left and ret_pc == nxt:
                    self.busy[c] = (t1 + cost, t1 + cost + left)
                    self.clock[c] = t1 + cost + left
                    self.wake_check(c)
                    return
        elif op == isa.IRET:
            if not self.rstack[c]:
                raise Fault(FK_STACK, 0, t1)
            nxt, self.iflag[c], left = self.rstack[c].pop()
            self.nmi_blocked[c] = False
            cost = self.ticks(c, k.iret_latency)
            if left:                            # back into an interrupted COMPUTE
                self.busy[c] = (t1 + cost, t1 + cost + left)
                self.pc[c] = nxt
                self.clock[c] = t1 + cost + left
                self.wake_check(c)
                return
        elif op == isa.SETVEC:
            self.handlers[c][a] = b
        elif op == isa.INVLPG:
            self.invlpg(c, ((r[b] if b >= 0 else 0) + cc) & MASK64)
            cost = self.ticks(c, k.invlpg_latency)
        elif op == isa.WRCR3:
            self.cr3[c] = operand(a, d)
            self.flush_tlb(c)
            cost = self.ticks(c, k.cr3_latency)
        elif op == isa.MODE:
            self.mode[c] = a
            self.flush_tlb(c)
            cost = self.ticks(c, k.cr3_latency)
        elif op == isa.RDTSC:
            r[a] = isa.wrap64(t1)
            cost = self.ticks(c, k.rdtsc_latency)
        elif op == isa.MARK:
            self._timeline.append((c, t1, a, operand(b, d)))
        elif op == isa.CLFLUSH:
            line = (((r[b] if b >= 0 else 0) + cc) & MASK64) >> self.line_bits
            self.mem.flush_line(c, line, t1)
            if self.ndom > 1:
                self.clean_copy(self.dom[c], line)
            cost = self.ticks(c, k.clflush_latency)
        elif op == isa.WBINVD:
            n = self.mem.flush_domain(c, t1)
            if self.ndom > 1:
                for key in [key for key in self.copies if key[0] == self.dom[c]]:
                    self.clean_copy(*key)
            cost = self.ticks(c, k.wbinvd_latency) + n * self.cfg.memory.occupancy
        elif op == isa.LIDT:
            self.idt[c] = operand(a, d)
            cost = self.ticks(c, k.lidt_latency)
        elif op == isa.HALT:
            self.state[c] = HALTED
            cost = 0
        elif op == isa.JMPR:
            nxt = self.op_at.get(r[a], -1)
            if nxt < 0:
                raise Fault(FK_NO_CODE, r[a], t1)
        elif op == isa.RDMSR:
            r[a] = isa.wrap64(self.rdmsr(c, b, t1))
            cost = self.ticks(c, k.msr_latency)
        elif op == isa.PAUSE:
            cost = self.ticks(c, k.pause_latency)
        elif op in (isa.PART, isa.ASSIGN):
            self.supervisor_op(c, op, a, b, cc, d, e, t1)
            cost = self.ticks(c, k.msr_latency)
        self.pc[c] = nxt
        self.clock[c] = t1 + (self.alu_cost(c) if cost is None else cost)

    def alu_cost(self, c: int) -> int:
        """Register ops (and WFI, store hits) issue ``issue_width`` together: every width-th costs alu_latency."""
        n = self.alu_issued[c]
        self.alu_issued[c] = n + 1
        return self.ticks(c, self.kt[c].alu_latency) if n % self.kt[c].issue_width == 0 else 0

    def wrmsr(self, c: int, msr: int, value: int, t1: int) -> int:
        """WRMSR at t1; returns its cost (an ICR write waits while the APIC is still sending)."""
        cost = self.ticks(c, self.kt[c].msr_latency)
        if self.x2apic and msr == isa.MSR_X2APIC_ICR:
            u = value & MASK64
            self.icr_low[c], self.icr_high[c] = u & 0xFFFFFFFF, u >> 32
            start = max(t1, self.icr_idle[c])
            self.stat(c, S_ICR_WAIT, start - t1)
            if start > t1:
                cost = start - t1 + self.ticks(c, self.kt[c].msr_latency)
            idle = self.send_ipi(c, u & 0xFFFFFFFF, u >> 32, t1 + cost)
            self.icr_idle[c] = max(self.icr_idle[c], idle)
        elif self.x2apic and msr == isa.MSR_X2APIC_EOI:
            self.eoi(c)
        elif self.x2apic and msr == isa.MSR_X2APIC_ESR and value == 0:
            self.esr_latch(c)
        elif self.cfg.apic.tsc_deadline and msr == apic.MSR_TSC_DEADLINE:
            self.tsc_deadline_write(c, value, t1 + cost)
        elif (self.x2apic and apic.MSR_X2APIC_BASE <= msr < apic.MSR_X2APIC_BASE + 64 and value & MASK64 < 1 << 32
              and apic.REGISTERS.get((msr - apic.MSR_X2APIC_BASE) << 4, ("", 0))[1] & apic.A_X):
            try:
                self.apic_write(c, (msr - apic.MSR_X2APIC_BASE) << 4, value, t1 + cost, msr, FK_BAD_MSR)
            except Fault as f:
                raise Fault(FK_BAD_MSR, msr, t1) from None
        else:
            raise Fault(FK_BAD_MSR, msr, t1)
        return cost

    # ------------------------------------------------------------ MSR reads
    def rdmsr(self, c: int, msr: int, t1: int) -> int:
        """The value RDMSR reads (spec: 'RDMSR'); an MSR ``readable_msr`` refuses: fault BAD_MSR."""
        if not readable_msr(msr, self.x2apic, self.cfg.apic.tsc_deadline):
            raise Fault(FK_BAD_MSR, msr, t1)
        if msr == isa.MSR_TSC:
            return t1
        if msr == isa.MSR_APIC_BASE:
            return apic.APIC_BASE | 1 << 11 | int(self.x2apic) << 10 | (1 << 8 if c == 0 else 0)
        if msr == apic.MSR_TSC_DEADLINE:
            return self.timer[c].deadline
        if msr == isa.MSR_X2APIC_ID:
            return c
        if msr == isa.MSR_X2APIC_LDR:
            return apic.x2apic_logical_id(c)
        if msr == isa.MSR_X2APIC_ICR:
            return self.icr_high[c] << 32 | self.icr_low[c]
        return self.apic_read(c, (msr - apic.MSR_X2APIC_BASE) << 4, t1)



def readable_msr(msr: int, x2apic: bool, tsc_deadline: bool) -> bool:
    """The MSRs RDMSR reads (spec: 'RDMSR'): IA32_TSC and IA32_APIC_BASE; IA32_TSC_DEADLINE on machines that
    have it; in x2APIC mode the APIC registers 0x800 + offset/16 that are readable (the ID, the derived LDR
    and the 64-bit ICR included; there is no DFR and no ICR high half)."""
    if msr in (isa.MSR_TSC, isa.MSR_APIC_BASE) or (msr == apic.MSR_TSC_DEADLINE and tsc_deadline):
        return True
    if not x2apic or not apic.MSR_X2APIC_BASE <= msr < apic.MSR_X2APIC_BASE + 64:
        return False
    off = (msr - apic.MSR_X2APIC_BASE) << 4
    if msr in (isa.MSR_X2APIC_ID, isa.MSR_X2APIC_LDR, isa.MSR_X2APIC_ICR):
        return True
    return off not in (apic.DFR, apic.ICR_HIGH) and bool(apic.REGISTERS.get(off, ("", 0))[1] & apic.A_R)
