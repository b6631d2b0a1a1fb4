"""Barrelfish's monitor-to-monitor "send to all, all reply" protocols, as core programs on URPC.

Baumann et al., "The Multikernel" (SOSP 2009), section 5.1, compares four ways for the monitor
of one core (the initiator) to deliver a request to the monitors of a set of cores and collect
every reply (the message part of a TLB shootdown):

* ``broadcast``: one ring written by the initiator that every receiver polls; each receiver
  replies on its own ring back.
* ``unicast``: one URPC link per receiver; the initiator sends on each in turn, then collects.
* ``multicast``: one message per package, to the first target core of that package, which
  forwards it to the package's other targets (channels in the package's own memory, so the
  lines move through the shared L3), collects their replies and sends one aggregated reply.
  The initiator serves its own package's targets itself.
* ``numa-multicast``: as multicast, with the packages ordered by decreasing round-trip time
  from the initiator, measured on the machine model at "boot" (Barrelfish's system knowledge
  base builds the tree from measured message latencies, ``usr/skb/programs/multicast.pl``),
  so the farthest package gets its message first.

Every receiving monitor does a replica's unmap work (a store clearing its page-table
replica's PTE, then INVLPG) before it replies.  ``Tree`` says who sends to whom;
``build_programs`` turns a tree into one monitor program per core.

A monitor with several channels keeps each channel end's state (the eight URPC state words)
in a line of its own memory, as Barrelfish keeps it in the binding, and loads it into the
URPC registers around every send and receive; one copy of the send and receive code serves
all its bindings in a loop (see ``END_PTR``).  Every message also runs the monitor's
``urpc.Stub`` (the UMP stack's bookkeeping lines and code: Table 2's 9 I-cache + 8 D-cache lines
per message, as ``kernels/microbench.py`` uses them).

Memory: each core's code, private state (bindings, counters, page-table replica, stub lines,
notification page) live in its own package's node; a ring lives in the node of the package
that sends on it (NUMA-aware multicast: of the receiving aggregation node).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hwmodel import isa
from hwmodel.config import MachineConfig
from hwmodel.errors import MksimError
from kernels import urpc
from kernels.microbench import STUB_DLINES, STUB_ILINES, node_base

PROTOCOLS = ("broadcast", "unicast", "multicast", "numa-multicast")

LINE = 64
CODE = 0x100_0000          # per core: CODE + node base + core * CODE_STRIDE
CODE_STRIDE = 0x1_0000
CHANNELS = 0x800_0000      # rings: CHANNELS + node base of the ring's home package + a bump offset
PRIV = 0x1000_0000         # per core private memory: PRIV + node base + core * PRIV_STRIDE
PRIV_STRIDE = 0x4_0000
ENDS = 0x0000              # +64 * i: channel end i's URPC state (8 words)
COUNTS = 0x1000            # +0: requests received, +8: replies counted (cores covered)
REPLICA = 0x2000           # the core's page-table replica: one PTE per page (8 bytes)
STUBS = 0x3000             # the monitor's UMP stub bookkeeping lines
NOTIFY_STATE = 0x4000      # notification handler's state (kernels/barrelfish.py)
NOTIFY_PAGE = 0x1_0000     # the core's notification page: one FIFO per sending core
VBASE = 0x4000_0000        # virtual address of page 0 (page k at VBASE + k * 4096)
PTE_PRESENT = 0x8000_0000_0067   # a present, writable, user, accessed, dirty 4 KiB PTE (frame 0x80000000)

EV_ROUND = 0x300           # initiator: one round done, value = cycles (RDTSC after - before)
EV_REQ = 0x301             # receiver: got the request (value: page)

# URPC state registers in the order they are kept in an end's state line
_R = urpc.REGS
_TX = (_R.txp, _R.txe, _R.txs, _R.txa)
_RX = (_R.rxp, _R.rxe, _R.rxn, _R.rxl)


@dataclass(frozen=True)
class Tree:
    """Who sends the request to whom.  ``children[c]``: the cores ``c`` sends to, in order."""
    protocol: str
    initiator: int
    targets: tuple[int, ...]                       # every core that must get the request
    children: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def parent(self, c: int) -> int | None:
        """The core that sends ``c`` the request (None for the initiator)."""
        for p, kids in self.children.items():
            if c in kids:
                return p
        return None


def package_of(cfg: MachineConfig, c: int) -> int:
    return c // cfg.cores_per_package


def check_coherent(cfg: MachineConfig) -> None:
    """URPC needs cache-coherent shared memory between the monitors: refuse a machine with
    several coherence domains (messages across them would need explicit flushes)."""
    if cfg.ndomains > 1:
        raise MksimError(f"machine {cfg.name}: {cfg.ndomains} coherence domains; the monitors' URPC "
                         f"channels need one (cache flushes across domains are not modelled here)")


def _check(cfg: MachineConfig, protocol: str, initiator: int, targets) -> tuple[int, ...]:
    check_coherent(cfg)
    if protocol not in PROTOCOLS:
        raise MksimError(f"protocol {protocol!r}: must be one of {', '.join(PROTOCOLS)}")
    if not 0 <= initiator < cfg.cores:
        raise MksimError(f"initiator core {initiator}: {cfg.name} has cores 0..{cfg.cores - 1}")
    ts = tuple(sorted(set(targets)))
    if not ts:
        raise MksimError("a shootdown needs at least one target core besides the initiator")
    for t in ts:
        if not 0 <= t < cfg.cores or t == initiator:
            raise MksimError(f"target core {t}: must be a core of {cfg.name} (0..{cfg.cores - 1}) "
                             f"other than the initiator {initiator}")
    return ts


def plan(cfg: MachineConfig, protocol: str, initiator: int, targets, order: list[int] | None = None) -> Tree:
    """The send tree of ``protocol`` from ``initiator`` to ``targets``.

    ``order``: the packages in the order the initiator serves them (multicast protocols; default
    0, 1, 2, ...; ``numa-multicast`` needs the measured order, see ``numa_order``)."""
    ts = _check(cfg, protocol, initiator, targets)
    if protocol in ("broadcast", "unicast"):
        return Tree(protocol, initiator, ts, {initiator: ts})
    if order is None:
        if protocol == "numa-multicast":
            raise MksimError("numa-multicast needs the package order measured at boot (numa_order)")
        order = list(range(cfg.packages))
    if sorted(order) != list(range(cfg.packages)):
        raise MksimError(f"package order {order}: must list each of the {cfg.packages} packages once")
    by_pkg: dict[int, list[int]] = {}
    for t in ts:
        by_pkg.setdefault(package_of(cfg, t), []).append(t)
    home = package_of(cfg, initiator)
    top: list[int] = []
    children: dict[int, tuple[int, ...]] = {}
    for pkg in order:
        members = by_pkg.get(pkg, [])
        if not members:
            continue
        if pkg == home:
            top.extend(members)                    # the initiator leads its own package
        else:
            leader, rest = members[0], members[1:]
            top.append(leader)
            if rest:
                children[leader] = tuple(rest)
    children[initiator] = tuple(top)
    return Tree(protocol, initiator, ts, children)


# ---------------------------------------------------------------------- memory layout
def priv(cfg: MachineConfig, c: int) -> int:
    """Base of core ``c``'s private memory (in its package's node on node-interleaved machines)."""
    return PRIV + node_base(cfg, package_of(cfg, c)) + c * PRIV_STRIDE


def code_addr(cfg: MachineConfig, c: int) -> int:
    """Where core ``c``'s programs are placed (in its node): CODE_STRIDE bytes of its own."""
    if CODE + cfg.cores * CODE_STRIDE > CHANNELS or PRIV + cfg.cores * PRIV_STRIDE > node_base(cfg, 1) > 0:
        raise MksimError(f"machine {cfg.name}: {cfg.cores} cores do not fit the monitors' memory layout")
    return CODE + node_base(cfg, package_of(cfg, c)) + c * CODE_STRIDE


def place(w, prog: isa.Program, addr: int, limit: int = CODE_STRIDE):
    """Place ``prog`` at ``addr``, refusing one longer than ``limit`` bytes (the room it has)."""
    size = len(prog.ops) * isa.OP_BYTES
    if size > limit:
        raise MksimError(f"program {prog.name}: {size} bytes of code, room for {limit}")
    return w.place(prog, addr)


def replica_pte(cfg: MachineConfig, c: int, page: int) -> int:
    """Physical address of the PTE of ``page`` in core ``c``'s page-table replica."""
    return priv(cfg, c) + REPLICA + 8 * page


class _Rings:
    """Bump allocator of URPC rings, each in the memory of a chosen package's node.  One offset
    for all packages: on machines whose memory is interleaved by line every node base is 0."""

    def __init__(self, cfg: MachineConfig, slots: int):
        self.cfg, self.slots, self.next = cfg, slots, 0

    def ring(self, pkg: int) -> urpc.Channel:
        off = self.next
        self.next += self.slots * LINE
        if self.next > PRIV - CHANNELS:
            raise MksimError(f"{self.next} bytes of URPC rings do not fit below the monitors' private memory")
        return urpc.Channel(CHANNELS + node_base(self.cfg, pkg) + off, self.slots)


@dataclass(frozen=True)
class End:
    """One channel end of a monitor: its rings and the line holding its state (words 0..3: tx
    state, 4..7: rx state; a broadcast initiator's ends share one tx-state line)."""
    side: urpc.Side
    state: int             # this end's state line (rx state in words 4..7)
    tx_state: int          # the line whose words 0..3 hold the tx state


def _initial_state(w, end: End) -> None:
    """Write an end's state words as ``urpc.emit_init`` would set them (rings at slot 0, epoch 1)."""
    def put(addr, words):
        w.write(addr, b"".join(int(v).to_bytes(8, "little") for v in words))
    put(end.tx_state, (end.side.tx.base, urpc.EPOCH_BIT, 0, 0))
    put(end.state + 32, (end.side.rx.base, urpc.EPOCH_BIT, 0, 0))


def monitor_stub(cfg: MachineConfig, c: int) -> urpc.Stub:
    """The UMP stack's work on every send and receive of core ``c``'s monitor (Table 2's 9 I-cache
    + 8 D-cache lines per message, as ``kernels/microbench.py`` models it): its bookkeeping lines."""
    return urpc.Stub(dlines=STUB_DLINES, ilines=STUB_ILINES, base=priv(cfg, c) + STUBS)


# A monitor serves several bindings with the same code, as Barrelfish's monitor calls one stub for
# each of its bindings: the URPC fragments are emitted once, for the first end's rings, and run
# over each end in turn with that end's state loaded from its line (register END_PTR points at
# it).  The fragments' only ring-specific constants are the wrap test and the ring size; every
# ring has the same size and build_programs sizes the rings so that none ever wraps, so the shared
# code is exact for every end (``_slots``).
END_PTR = "r5"


def _load(p: isa.Program, tx_line, rx_ptr: str) -> None:
    """Load the URPC registers: tx state from ``tx_line`` (an address, or None: the line at
    END_PTR), rx state from the line at ``rx_ptr``."""
    for k, r in enumerate(_TX):
        if tx_line is None:
            p.load(r, 8 * k, base=rx_ptr, comment="binding: tx state")
        else:
            p.load(r, tx_line + 8 * k, comment="binding: tx state (shared ring)")
    for k, r in enumerate(_RX):
        p.load(r, 32 + 8 * k, base=rx_ptr, comment="binding: rx state")


def _save(p: isa.Program, tx_line, rx_ptr: str) -> None:
    for k, r in enumerate(_TX):
        if tx_line is None:
            p.store(8 * k, r, base=rx_ptr, comment="binding: tx state")
        else:
            p.store(tx_line + 8 * k, r, comment="binding: tx state (shared ring)")
    for k, r in enumerate(_RX):
        p.store(32 + 8 * k, r, base=rx_ptr, comment="binding: rx state")


def _tx_line(end: End):
    return None if end.tx_state == end.state else end.tx_state


def _each_end(p: isa.Program, ends: list[End], body, stem: str) -> None:
    """Emit a loop running ``body(end0)`` once per end, END_PTR at each end's state line in turn
    (the ends' lines are consecutive)."""
    for i, e in enumerate(ends):
        if e.state != ends[0].state + LINE * i or e.tx_state != (ends[0].tx_state if _tx_line(ends[0]) else e.state):
            raise MksimError("a monitor's bindings for one loop must have consecutive state lines")
    lab = f"{stem}@{len(p.ops)}"
    p.movi(END_PTR, ends[0].state, comment=f"{stem}: first binding")
    p.label(lab)
    body(ends[0])
    p.add(END_PTR, END_PTR, LINE, comment=f"{stem}: next binding")
    p.br("ltu", END_PTR, ends[0].state + LINE * len(ends), lab)


def send_each(p: isa.Program, cfg: MachineConfig, c: int, ends: list[End], payload) -> None:
    """Send the same message on every end in ``ends``, one after another."""
    def body(e):
        _load(p, _tx_line(e), END_PTR)
        urpc.emit_send(p, e.side, payload, stub=monitor_stub(cfg, c))
        _save(p, _tx_line(e), END_PTR)
    _each_end(p, ends, body, "send-each")


def recv_each(p: isa.Program, cfg: MachineConfig, c: int, ends: list[End], out, after=None) -> None:
    """Receive one message on every end in ``ends`` in turn; ``after(p)`` runs after each."""
    def body(e):
        _load(p, _tx_line(e), END_PTR)
        urpc.emit_recv(p, e.side, out, stub=monitor_stub(cfg, c))
        _save(p, _tx_line(e), END_PTR)
        if after is not None:
            after(p)
    _each_end(p, ends, body, "recv-each")


def unmap_replica(p: isa.Program, cfg: MachineConfig, c: int, page_reg: str = "r0") -> None:
    """A monitor's unmap of one page in its own page-table replica: clear the PTE, then INVLPG."""
    p.alu("shl", "r3", page_reg, 3, comment="unmap: PTE offset of the page")
    p.store(priv(cfg, c) + REPLICA, 0, base="r3", comment="unmap: clear the replica's PTE")
    p.alu("shl", "r3", page_reg, 12, comment="unmap: the page's virtual offset")
    p.invlpg(VBASE, base="r3", comment="unmap: invlpg the page")


def _count(p: isa.Program, addr: int, reg: str) -> None:
    p.load("r5", addr)
    p.add("r5", "r5", reg)
    p.store(addr, "r5")


# ---------------------------------------------------------------------- programs
@dataclass
class Built:
    """The programs of one protocol run, and the initial memory words to write."""
    tree: Tree
    programs: dict[int, isa.Program]
    ends: list[End]                # every end (to write its initial state)


def _links(cfg: MachineConfig, tree: Tree, slots: int):
    """Channel ends per core: down[c] (c's ends towards its children, in order), up[c] (c's end
    towards its parent).  Broadcast: the initiator writes one ring that every receiver reads."""
    rings = _Rings(cfg, slots)
    nend = {c: 0 for c in range(cfg.cores)}

    def new_end(c, side, tx_state=None):
        line = priv(cfg, c) + ENDS + LINE * nend[c]
        nend[c] += 1
        if nend[c] > COUNTS // LINE:
            raise MksimError(f"core {c}: more than {COUNTS // LINE} monitor bindings")
        return End(side, line, line if tx_state is None else tx_state)

    down: dict[int, list[End]] = {}
    up: dict[int, End] = {}
    init = tree.initiator
    if tree.protocol == "broadcast":
        home = package_of(cfg, init)
        bring = rings.ring(home)
        shared_tx = priv(cfg, init) + ENDS + LINE * len(tree.targets)   # the line after the ends
        down[init] = []
        for t in tree.targets:
            reply = rings.ring(home)
            down[init].append(new_end(init, urpc.Side(tx=bring, rx=reply), tx_state=shared_tx))
            up[t] = new_end(t, urpc.Side(tx=reply, rx=bring))
        return down, up
    for parent, kids in tree.children.items():
        down[parent] = []
        for k in kids:
            # the link's memory: NUMA-aware multicast allocates the buffers from memory local to
            # the receiving aggregation node [Baumann et al. 2009, 5.1]; the others in the
            # sender's package (inside a package the lines move through the shared L3)
            home = package_of(cfg, k if tree.protocol == "numa-multicast" else parent)
            link = urpc.Link(rings.ring(home), rings.ring(home))
            down[parent].append(new_end(parent, link.a))
            up[k] = new_end(k, link.b)
    return down, up


def _slots(rounds: int) -> int:
    """Ring size for ``rounds`` rounds: no ring wraps (each carries at most ``rounds`` messages) and
    no receiver ever owes an ack-only message (half a ring > rounds), which the shared loop code
    relies on (see END_PTR)."""
    return max(16, 2 * rounds + 2)


def build_programs(cfg: MachineConfig, tree: Tree, rounds: int, local_work: bool = False,
                   lrpc_cycles: int = 0) -> Built:
    """One monitor program per participating core: ``rounds`` rounds of request + replies.

    Round k unmaps page k.  The initiator MARKs ``EV_ROUND`` with RDTSC(after the last reply)
    - RDTSC(before the first send) and adds the cores covered by the replies to its count word;
    every receiver counts the requests it got and MARKs ``EV_REQ``.  ``local_work``: the initiator
    also unmaps its own replica, after its sends (the full unmap; the message-only benchmark leaves
    it out).  ``lrpc_cycles``: the user domain's LRPC to its monitor and back, inside the timed
    region (a sourced cost given by the caller; 0 for the message-only benchmark)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise MksimError(f"rounds {rounds!r}: must be an integer >= 1")
    if rounds > 4096 // 8:
        raise MksimError(f"rounds {rounds}: the replica page holds {4096 // 8} PTEs")
    down, up = _links(cfg, tree, _slots(rounds))
    progs: dict[int, isa.Program] = {}
    init = tree.initiator

    def add_cover(q):
        q.add("r2", "r2", "r4", comment="cores this reply covers")

    p = isa.Program(f"monitor{init}-{tree.protocol}-initiator")
    p.movi("r0", 0, comment="round = page to unmap")
    p.label("round")
    p.movi("r2", 0, comment="cores covered by the replies")
    p.rdtsc("r1")
    if lrpc_cycles:
        p.compute(lrpc_cycles, comment="user domain -> local monitor LRPC, and its reply")
    if tree.protocol == "broadcast":
        send_each(p, cfg, init, down[init][:1], ["r0", init])    # one message on the shared ring
    else:
        send_each(p, cfg, init, down[init], ["r0", init])
    if local_work:
        unmap_replica(p, cfg, init)
    recv_each(p, cfg, init, down[init], ["r3", "r4"], add_cover)
    p.rdtsc("r4")
    p.sub("r4", "r4", "r1")
    p.mark(EV_ROUND, "r4")
    _count(p, priv(cfg, init) + COUNTS + 8, "r2")
    p.add("r0", "r0", 1)
    p.br("lt", "r0", rounds, "round")
    p.halt()
    progs[init] = p

    for t in tree.targets:
        q = isa.Program(f"monitor{t}-{tree.protocol}")
        q.movi("r1", 0, comment="rounds served")
        q.label("round")
        recv_each(q, cfg, t, [up[t]], ["r0"])
        q.mark(EV_REQ, "r0")
        q.movi("r4", 1)
        _count(q, priv(cfg, t) + COUNTS, "r4")
        sub = down.get(t, [])
        if sub:
            send_each(q, cfg, t, sub, ["r0", t])        # forward inside the package
        unmap_replica(q, cfg, t)
        q.movi("r2", 1, comment="this core")
        if sub:
            recv_each(q, cfg, t, sub, ["r3", "r4"], add_cover)
        send_each(q, cfg, t, [up[t]], ["r0", "r2"])     # the (aggregated) reply
        q.add("r1", "r1", 1)
        q.br("lt", "r1", rounds, "round")
        q.halt()
        progs[t] = q
    ends = [e for d in down.values() for e in d] + list(up.values())
    return Built(tree, progs, ends)


def load_built(m, cfg: MachineConfig, built: Built, extra_pages: int) -> None:
    """Place the programs, write every end's initial state and every replica's PTEs (present)."""
    w = m.workload()
    for c, prog in built.programs.items():
        w.start(c, place(w, prog, code_addr(cfg, c)).pc())
    for e in built.ends:
        _initial_state(w, e)
    for c in built.programs:
        w.write(replica_pte(cfg, c, 0), PTE_PRESENT.to_bytes(8, "little") * extra_pages)
    m.load_workload(w)
