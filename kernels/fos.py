"""fos: a factored OS -- a microkernel per core, OS services as fleets of servers reached by messages.

fos (Wentzlaff et al., "An operating system for multicore and clouds", SIGOPS OSR 2009; "Fleets:
scalable services in a factored operating system", MIT-CSAIL-TR-2011-012) runs one microkernel per
core and splits every OS service into a *fleet* of cooperating servers on dedicated cores.  This
module models the physical page allocator fleet, the service the Fleets report measures:

* every server owns a private free list (a stack of page frame numbers and a count, in its own
  memory) and the ``struct page`` lines of the frames it hands out;
* a client (an application core's microkernel) sends its allocation request over a URPC link
  (``kernels/urpc.py``) to its *nearest* server (fewest interconnect hops, then nearest core) and
  waits for the reply carrying the frame number;
* a server whose list runs below a low watermark asks a peer server (round robin) for a batch by a
  message; the peer pops up to ``BATCH`` frames off its own list and sends them back in one
  message.  A server with no free frame leaves requests queued in its rings until a batch arrives.

The comparison is the Linux buddy allocator's fast path as its two shapes on the same machine:
``linux``, one zone free list under the zone spinlock (``zone->lock`` taken in ``rmqueue``: a
ticket lock, ``kernels/locks.py``), and ``linux-percpu``, per-CPU lists (``per_cpu_pages``) refilled
``PCP_BATCH`` frames at a time under the zone lock (``rmqueue_bulk``).  All three do the same work
per page: pop a frame off a stack (count line + array line) and write its ``struct page``.

Experiment ``alloc``: allocations per kilocycle against cores, every core of a point either a
client or (fos) a server.  A server polls its links in turn with plain loads; with one client per
server the poll is so frequent that it takes the request line back between the client's stores to the
slot (an upgrade per store), which the model charges: a fleet is fastest with a few clients per server.  Nothing here knows a published number except ``PAPER_ALLOC``, printed
beside the model's.  Left out: frees (every run only allocates), NUMA placement of the free lists
(each list lives in its owner's first-touch memory only by address), fos's name service (the
client's server is fixed at start), and server fleets of other services.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.interconnect import hop_matrix
from hwmodel.machine import Machine
from kernels import plots, urpc
from kernels.locks import spin_lock, spin_unlock
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

LINE = 64
CODE = 0x10_0000           # program of core c at CODE + c * CODE_STRIDE
CODE_STRIDE = 0x1_0000
PRIV = 0x80_0000           # per-core private kernel state: PRIV + c * PRIV_STRIDE
PRIV_STRIDE = 0x4000
LINKS = 0x100_0000         # URPC links, LINK_STRIDE apart
LINK_STRIDE = 0x1000
STACKS = 0x200_0000        # free-list arrays (one per server / per CPU / the zone), STACK_STRIDE apart
STACK_STRIDE = 0x10_0000
MEMMAP = 0x800_0000        # struct page array: frame n's struct page at MEMMAP + 64 n
GLOBAL = 0x7F0_0000        # zone lock, zone free count, fleet done counter, start flag (own lines)
ZONE_LOCK, ZONE_COUNT, FLEET_DONE, START_FLAG = GLOBAL, GLOBAL + 0x40, GLOBAL + 0x80, GLOBAL + 0xC0

SLOTS = 16                 # URPC ring slots per direction
BATCH = 5                  # frames per rebalancing message: 1 count word + 5 frame words of the 7
LOW = 2 * BATCH            # a server below this many free frames asks a peer for a batch
# Linux's per-CPU list batch: zone_batchsize() gives 31 for zones over ~128 MiB (mm/page_alloc.c,
# the pcp->batch of 2.6-era kernels): rmqueue_bulk moves that many frames under zone->lock.
PCP_BATCH = 31
MSG_NEED, MSG_GIVE = 3, 4  # server-to-server message types (kernels/urpc.py: 1, 2 are taken)

SYSTEMS = ("fos", "linux", "linux-percpu")
# Fleets report (MIT-CSAIL-TR-2011-012), page allocator: the fleet at 32 cores allocates about
# 4.5x as many pages per unit time as Linux.  A prediction of the model, never a fitted value.
PAPER_ALLOC = {"cores": 32, "fos_over_linux": 4.5}

EV_START, EV_END = 0x300, 0x301

# server private state (offsets from the server's PRIV base)
S_FREE, S_PENDING, S_RR, S_SERVED, S_ANNOUNCED, S_SAVE, S_SCRATCH = 0, 64, 72, 80, 88, 128, 0x3000
C_LOG = 0x1000             # a client's log of the frames it got (offset from its PRIV base)
STATE_REGS = (urpc.REGS.txp, urpc.REGS.txe, urpc.REGS.txs, urpc.REGS.txa,
              urpc.REGS.rxp, urpc.REGS.rxe, urpc.REGS.rxn, urpc.REGS.rxl)


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return load_machine(machine) if isinstance(machine, str) else machine


def _priv(core: int) -> int:
    return PRIV + core * PRIV_STRIDE


@dataclass(frozen=True)
class FleetPlan:
    """Who is what in one fos run: server cores, client cores, each client's server."""
    servers: tuple[int, ...]
    clients: tuple[int, ...]
    home: dict          # client core -> server core


def place_fleet(cfg: MachineConfig, cores: int, servers: int) -> FleetPlan:
    """Servers spread evenly over cores 0..cores-1, the rest clients, each client bound to its nearest
    server: fewest interconnect hops between their packages, then the smallest core distance."""
    if servers < 1 or cores < servers + 1:
        raise MksimError(f"fos fleet: {servers} servers on {cores} cores leaves no client core")
    if cores > cfg.cores:
        raise MksimError(f"fos fleet: {cores} cores on {cfg.name}, which has {cfg.cores}")
    srv = tuple(sorted({(i * cores) // servers for i in range(servers)}))
    cli = tuple(c for c in range(cores) if c not in srv)
    hops = hop_matrix(cfg.interconnect, cfg.packages)
    cpp = cfg.cores_per_package
    home = {c: min(srv, key=lambda s: (int(hops[c // cpp, s // cpp]), abs(c - s), s)) for c in cli}
    return FleetPlan(srv, cli, home)


# ---------------------------------------------------------------------- free-list code
def _pop(p: isa.Program, count_addr: int, stack: int, out: str, t: str, t2: str, comment: str) -> None:
    """Pop one frame number off the stack at ``stack`` whose count lives at ``count_addr``; ``out``
    gets it.  The caller knows the list is not empty.  Clobbers ``t``, ``t2``."""
    p.load(t, count_addr, comment=comment)
    p.sub(t, t, 1)
    p.store(count_addr, t)
    p.alu("shl", t2, t, 3)
    p.load(out, stack, base=t2, comment="free list: the top frame")


def _push(p: isa.Program, count_addr: int, stack: int, val: str, t: str, t2: str, comment: str) -> None:
    """Push frame number ``val`` onto the stack at ``stack``.  Clobbers ``t``, ``t2``."""
    p.load(t, count_addr, comment=comment)
    p.alu("shl", t2, t, 3)
    p.store(stack, val, base=t2, comment="free list: new top frame")
    p.add(t, t, 1)
    p.store(count_addr, t)


def _struct_page(p: isa.Program, pfn: str, t: str, value: str, comment: str) -> None:
    """Write frame ``pfn``'s struct page (set_page_refcounted / prep_new_page)."""
    p.alu("shl", t, pfn, 6)
    p.store(MEMMAP, value, base=t, comment=comment)


# ---------------------------------------------------------------------- fos
def _client_program(core: int, side: urpc.Side, n: int) -> isa.Program:
    """A client core: ``n`` allocation RPCs to its server (request: sequence number; reply: frame)."""
    p = isa.Program(f"fos-client{core}")
    urpc.emit_init(p, side)
    p.spin_until(START_FLAG, "ne", 0, rd="r0", comment="wait until every free list is filled")
    p.mark(EV_START)
    p.movi("r0", 0)
    p.label("loop")
    urpc.emit_send(p, side, ["r0"])                       # alloc_pages(): request to the server
    urpc.emit_recv(p, side, ["r1"])                       # the reply: the frame number
    p.alu("shl", "r2", "r0", 3)
    p.store(_priv(core) + C_LOG, "r1", base="r2", comment="log the frame (checked by the tests)")
    p.add("r0", "r0", 1)
    p.br("lt", "r0", n, "loop")
    p.mark(EV_END, "r0")
    p.halt()
    return p


def _save(p: isa.Program, base: int) -> None:
    for k, r in enumerate(STATE_REGS):
        p.store(base + 8 * k, r)


def _restore(p: isa.Program, base: int) -> None:
    for k, r in enumerate(STATE_REGS):
        p.load(r, base + 8 * k)


def _poll(p: isa.Program, save: int, skip: str, comment: str) -> None:
    """Branch to ``skip`` unless the next receive slot of the link saved at ``save`` holds a message."""
    irxp, irxe = STATE_REGS.index(urpc.REGS.rxp), STATE_REGS.index(urpc.REGS.rxe)
    p.load("r4", save + 8 * irxp, comment=comment)
    p.load("r5", urpc.CTRL_OFFSET, base="r4")
    p.load("r3", save + 8 * irxe)
    p.alu("xor", "r5", "r5", "r3")
    p.br("lt", "r5", 0, skip, comment="epoch not flipped: nothing new")


def _server_program(core: int, plan: FleetPlan, client_sides: list, peer_sides: list,
                    stack: int, n_per_client: int) -> isa.Program:
    """A page-allocator server: serve its clients' requests off its own free list, answer peers'
    NEED messages with a batch, ask a peer for a batch when running low; stop when every server's
    clients are served (the fleet's done counter reaches the number of servers)."""
    base = _priv(core)
    free, pending, rr, served, announced = (base + S_FREE, base + S_PENDING, base + S_RR,
                                            base + S_SERVED, base + S_ANNOUNCED)
    scratch = base + S_SCRATCH
    nsrv = len(plan.servers)
    target = n_per_client * len(client_sides)
    p = isa.Program(f"fos-server{core}")
    saves = []
    for i, side in enumerate(client_sides + [s for _, s in peer_sides]):
        urpc.emit_init(p, side)
        _save(p, base + S_SAVE + i * LINE)
        saves.append(base + S_SAVE + i * LINE)
    p.label("loop")
    # 1. clients: one request per client link per pass
    for i, side in enumerate(client_sides):
        sv = saves[i]
        _poll(p, sv, f"c{i}.skip", f"poll client link {i}")
        p.load("r2", free)
        p.br("eq", "r2", 0, f"c{i}.skip", comment="no free frame: leave the request queued")
        _restore(p, sv)
        urpc.emit_recv(p, side, ["r1"])
        _pop(p, free, stack, "r3", "r2", "r4", "fos pager: pop a frame off this server's list")
        _struct_page(p, "r3", "r4", "r1", "fos pager: struct page of the frame")
        urpc.emit_send(p, side, ["r3"])
        _save(p, sv)
        p.load("r0", served)
        p.add("r0", "r0", 1)
        p.store(served, "r0")
        p.label(f"c{i}.skip")
    # 2. peers: NEED -> answer with a batch; GIVE -> push the frames
    for j, (peer, side) in enumerate(peer_sides):
        sv = saves[len(client_sides) + j]
        pre = f"p{j}"
        _poll(p, sv, f"{pre}.skip", f"poll peer server {peer}")
        _restore(p, sv)
        p.movi("r5", scratch)
        urpc.emit_recv(p, side, [], copy_to="r5")
        p.alu("shr", "r4", urpc.REGS.t0, urpc.TYPE_SHIFT)
        p.alu("and", "r4", "r4", urpc.TYPE_MASK)
        p.br("eq", "r4", MSG_GIVE, f"{pre}.give")
        # NEED: give BATCH frames if this server keeps at least LOW + 2 BATCH or its clients are done
        p.movi("r0", 0, comment="frames given")
        p.load("r2", free)
        p.br("geu", "r2", LOW + 2 * BATCH, f"{pre}.donate")
        p.load("r3", announced)
        p.br("eq", "r3", 0, f"{pre}.reply")
        p.label(f"{pre}.donate")
        for k in range(BATCH):
            reg = f"r{k + 1}"
            p.movi(reg, 0)
        for k in range(BATCH):
            reg = f"r{k + 1}"
            p.load(urpc.REGS.t0, free)
            p.br("eq", urpc.REGS.t0, 0, f"{pre}.reply")
            _pop(p, free, stack, reg, urpc.REGS.t0, urpc.REGS.t1, "fos pager: pop a frame for the peer")
            p.add("r0", "r0", 1)
        p.label(f"{pre}.reply")
        urpc.emit_send(p, side, ["r0", "r1", "r2", "r3", "r4", "r5"], kind=MSG_GIVE)
        p.jmp(f"{pre}.done")
        p.label(f"{pre}.give")
        p.load("r0", scratch, comment="GIVE: how many frames")
        for k in range(BATCH):
            p.br("eq", "r0", k, f"{pre}.gdone")
            p.load("r1", scratch + 8 * (k + 1))
            _push(p, free, stack, "r1", "r2", "r3", "fos pager: take a frame from the peer")
        p.label(f"{pre}.gdone")
        p.movi("r1", 0)
        p.store(pending, "r1", comment="the batch request is answered")
        p.label(f"{pre}.done")
        _save(p, sv)
        p.label(f"{pre}.skip")
    # 3. running low: ask the next peer for a batch (one request outstanding at a time)
    if peer_sides:
        p.load("r2", free)
        p.br("geu", "r2", LOW, "nolow")
        p.load("r2", pending)
        p.br("ne", "r2", 0, "nolow")
        p.load("r2", announced)
        p.br("ne", "r2", 0, "nolow", comment="own clients all served: nothing to refill for")
        p.load("r2", rr)
        for j, (peer, side) in enumerate(peer_sides):
            p.br("ne", "r2", j, f"ask{j}.skip")
            sv = saves[len(client_sides) + j]
            _restore(p, sv)
            urpc.emit_send(p, side, [core], kind=MSG_NEED)
            _save(p, sv)
            p.label(f"ask{j}.skip")
        p.add("r2", "r2", 1)
        p.br("ltu", "r2", len(peer_sides), "rrok")
        p.movi("r2", 0)
        p.label("rrok")
        p.store(rr, "r2")
        p.movi("r2", 1)
        p.store(pending, "r2")
        p.label("nolow")
    # 4. done?  announce once, then keep serving peers until every server has announced
    p.load("r0", announced)
    p.br("ne", "r0", 0, "check")
    p.load("r0", served)
    p.br("ltu", "r0", target, "loop")
    p.movi("r0", 1)
    p.store(announced, "r0")
    p.fadd("r0", FLEET_DONE, 1, comment="fleet: this server's clients are all served")
    p.label("check")
    p.load("r0", FLEET_DONE)
    p.br("ltu", "r0", nsrv, "loop")
    p.halt()
    return p


def _frames(total: int, parts: int) -> list[int]:
    """``total`` frames split into ``parts`` shares as even as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _fill(w, count_addr: int, stack: int, first: int, n: int) -> None:
    """Write a free list of ``n`` frames (first, first+1, ...) into memory before the run."""
    w.write(count_addr, int(n).to_bytes(8, "little"))
    if n:
        w.write(stack, np.arange(first, first + n, dtype=np.int64).tobytes())


def _run(m: Machine, w, what: str) -> np.ndarray:
    w.write(START_FLAG, (1).to_bytes(8, "little"))
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise MksimError(f"{what} ended {status}")
    return m.timeline()


def _throughput(tl: np.ndarray, total: int) -> float:
    start = tl[tl[:, 2] == EV_START][:, 1].min()
    end = tl[tl[:, 2] == EV_END][:, 1].max()
    return 1000.0 * total / float(end - start)


def fos_alloc(cfg: MachineConfig, cores: int, servers: int, n: int = 40,
              shares: list[int] | None = None, machine_out: list | None = None) -> float:
    """Allocations per kilocycle of a fos page-allocator fleet of ``servers`` servers on ``cores``
    cores (the rest clients, ``n`` allocations each).  ``shares``: free frames each server starts
    with (default: twice the demand plus LOW per server, split evenly -- free memory is plentiful, as in
    the Fleets benchmark); their sum must cover the demand.  ``machine_out`` (a list) gets the
    finished ``Machine`` appended, for tests that read the clients' frame logs (``client_frames``)."""
    plan = place_fleet(cfg, cores, servers)
    if n < 1:
        raise MksimError(f"fos alloc: allocations per client {n}: must be >= 1")
    m = Machine(cfg)
    w = m.workload()
    links, k = {}, 0
    for c in plan.clients:
        links[c] = urpc.Link.at(LINKS + k * LINK_STRIDE, SLOTS)
        k += 1
    peer = {}
    for i, a in enumerate(plan.servers):
        for b in plan.servers[i + 1:]:
            peer[(a, b)] = urpc.Link.at(LINKS + k * LINK_STRIDE, SLOTS)
            k += 1
    total = n * len(plan.clients)
    if shares is None:
        shares = _frames(2 * total + len(plan.servers) * LOW, len(plan.servers))
    if len(shares) != len(plan.servers) or min(shares) < 0 or sum(shares) < total:
        raise MksimError(f"fos alloc: shares {shares} must be {len(plan.servers)} counts >= 0 "
                         f"covering the demand of {total} frames")
    first = 0
    for sid, s in enumerate(plan.servers):
        stack = STACKS + sid * STACK_STRIDE
        _fill(w, _priv(s) + S_FREE, stack, first, shares[sid])
        first += shares[sid]
        mine = [c for c in plan.clients if plan.home[c] == s]
        sides = [links[c].b for c in mine]
        peers = [(o, peer[(s, o)].a if (s, o) in peer else peer[(o, s)].b) for o in plan.servers if o != s]
        prog = _server_program(s, plan, sides, peers, stack, n)
        w.start(s, w.place(prog, CODE + s * CODE_STRIDE).pc())
    for c in plan.clients:
        w.start(c, w.place(_client_program(c, links[c].a, n), CODE + c * CODE_STRIDE).pc())
    tput = _throughput(_run(m, w, f"fos alloc on {cfg.name}, {cores} cores, {servers} servers"), total)
    if machine_out is not None:
        machine_out.append((m, plan))
    return tput


def client_frames(m: Machine, plan: FleetPlan, n: int) -> dict[int, list[int]]:
    """The frame numbers each client core received, read back from its log."""
    out = {}
    for c in plan.clients:
        raw = m.read(_priv(c) + C_LOG, 8 * n)
        out[c] = [int(x) for x in np.frombuffer(raw, dtype=np.int64)]
    return out


# ---------------------------------------------------------------------- Linux
def _linux_program(core: int, n: int, percpu: bool) -> isa.Program:
    """A core allocating ``n`` frames: __rmqueue off the zone list under zone->lock, or (percpu) off
    its per_cpu_pages list, refilled PCP_BATCH frames at a time under the lock (rmqueue_bulk)."""
    p = isa.Program(f"linux-alloc{core}")
    zstack = STACKS
    pcount, pstack = _priv(core) + S_FREE, STACKS + (core + 1) * STACK_STRIDE
    p.spin_until(START_FLAG, "ne", 0, rd="r0", comment="wait until the zone list is filled")
    p.mark(EV_START)
    p.movi("r0", 0)
    p.label("loop")
    if percpu:
        p.load("r2", pcount, comment="rmqueue_pcplist: this CPU's list")
        p.br("ne", "r2", 0, "have")
        spin_lock(p, ZONE_LOCK, "zl", comment="rmqueue_bulk: spin_lock(&zone->lock)")
        p.movi("r1", 0)
        p.label("bulk")
        _pop(p, ZONE_COUNT, zstack, "r3", "r2", "r4", "__rmqueue: pop a frame off the zone list")
        _push(p, pcount, pstack, "r3", "r2", "r4", "rmqueue_bulk: onto the per-cpu list")
        p.add("r1", "r1", 1)
        p.br("lt", "r1", PCP_BATCH, "bulk")
        spin_unlock(p, ZONE_LOCK, comment="spin_unlock(&zone->lock)")
        p.label("have")
        _pop(p, pcount, pstack, "r3", "r2", "r4", "per-cpu list: pop a frame")
    else:
        spin_lock(p, ZONE_LOCK, "zl", comment="rmqueue: spin_lock_irqsave(&zone->lock)")
        _pop(p, ZONE_COUNT, zstack, "r3", "r2", "r4", "__rmqueue: pop a frame off the zone list")
        spin_unlock(p, ZONE_LOCK, comment="spin_unlock_irqrestore(&zone->lock)")
    _struct_page(p, "r3", "r4", "r0", "prep_new_page: struct page of the frame")
    p.add("r0", "r0", 1)
    p.br("lt", "r0", n, "loop")
    p.mark(EV_END, "r0")
    p.halt()
    return p


def linux_alloc(cfg: MachineConfig, cores: int, n: int = 40, percpu: bool = False) -> float:
    """Allocations per kilocycle of ``cores`` cores each allocating ``n`` frames the Linux way."""
    if cores < 1 or cores > cfg.cores:
        raise MksimError(f"linux alloc: {cores} cores on {cfg.name}, which has {cfg.cores}")
    if n < 1:
        raise MksimError(f"linux alloc: allocations per core {n}: must be >= 1")
    m = Machine(cfg)
    w = m.workload()
    total = n * cores
    _fill(w, ZONE_COUNT, STACKS, 0, total + cores * PCP_BATCH)
    for c in range(cores):
        w.start(c, w.place(_linux_program(c, n, percpu), CODE + c * CODE_STRIDE).pc())
    return _throughput(_run(m, w, f"linux alloc on {cfg.name}, {cores} cores"), total)


# ---------------------------------------------------------------------- experiment
def _core_points(top: int) -> list[int]:
    pts, k = [], 2
    while k < top:
        pts.append(k)
        k *= 2
    return pts + [top]


def _server_counts(top: int) -> list[int]:
    out, s = [], 1
    while s < top:
        out.append(s)
        s *= 2
    return out


def alloc_rows(machine: str | MachineConfig, max_cores: int | None = None, n: int = 40,
               servers: list[int] | None = None) -> list[dict]:
    """Rows {"system", "cores", "servers", "allocs_per_kcycle"}: Linux (zone lock, per-cpu lists)
    and the fos fleet with 1, 2, 4, ... servers at cores 2, 4, 8, ..., max_cores."""
    cfg = _cfg(machine)
    if n < 1:
        raise MksimError(f"alloc bench: allocations per core {n}: must be >= 1")
    top = cfg.cores if max_cores is None else min(max_cores, cfg.cores)
    if top < 2:
        raise MksimError(f"alloc bench: needs at least 2 cores, got {top}")
    rows = []
    for k in _core_points(top):
        rows.append({"system": "linux", "cores": k, "servers": 0,
                     "allocs_per_kcycle": round(linux_alloc(cfg, k, n), 3)})
        rows.append({"system": "linux-percpu", "cores": k, "servers": 0,
                     "allocs_per_kcycle": round(linux_alloc(cfg, k, n, percpu=True), 3)})
        for s in (servers or _server_counts(top)):
            if s < k:
                rows.append({"system": "fos", "cores": k, "servers": s,
                             "allocs_per_kcycle": round(fos_alloc(cfg, k, s, n), 3)})
    return rows


def _series(r: dict) -> str:
    return f"fos-{r['servers']}srv" if r["system"] == "fos" else r["system"]


def _alloc_table(rows: list[dict], cfg: MachineConfig) -> str:
    names = list(dict.fromkeys(_series(r) for r in rows))
    cores = sorted({r["cores"] for r in rows})
    val = {(_series(r), r["cores"]): r["allocs_per_kcycle"] for r in rows}
    out = [f"Page allocations per kilocycle on {cfg.name} (cores = clients + servers)",
           f"{'series':<14}" + "".join(f"{k:>9}" for k in cores)]
    for nm in names:
        out.append(f"{nm:<14}" + "".join(f"{val.get((nm, k), ''):>9}" for k in cores))
    top = cores[-1]
    lin = val.get(("linux", top))
    best = max((r for r in rows if r["system"] == "fos" and r["cores"] == top),
               key=lambda r: r["allocs_per_kcycle"], default=None)
    if lin and best:
        out.append(f"model at {top} cores: best fleet ({best['servers']} servers) / linux = "
                   f"{best['allocs_per_kcycle'] / lin:.2f}x; published (Fleets report, "
                   f"{PAPER_ALLOC['cores']} cores): {PAPER_ALLOC['fos_over_linux']}x")
    return "\n".join(out)


def _alloc_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, nm in enumerate(dict.fromkeys(_series(r) for r in rows)):
        pts = sorted((r["cores"], r["allocs_per_kcycle"]) for r in rows if _series(r) == nm)
        ls, mk = plots.style(i)
        ax.plot([x for x, _ in pts], [y for _, y in pts], linestyle=ls, marker=mk, label=nm)
    return plots.finish(fig, ax, "cores (clients + servers)", "page allocations per 1000 cycles", f"Page allocator throughput on {cfg.name}")


def _rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    n = opts.extra.get("allocs")
    return alloc_rows(cfg, opts.max_cores, n=40 if n is None else int(n))


ALLOC = Experiment(
    name="alloc",
    summary="Page-allocation throughput vs cores: a fos allocator fleet (1, 2, 4, ... servers) vs Linux's "
            "zone lock and per-cpu lists (fos Fleets report, 2011)",
    keys=("system", "cores", "servers", "allocs_per_kcycle"),
    rows=_rows, table=_alloc_table, plot=_alloc_plot,
    options=(BenchOption("--allocs", "allocations per client core", None, 40, int),))


PERSONALITY = Personality(
    name="fos",
    summary="fos factored OS: a microkernel per core, OS services as server fleets reached by URPC "
            "messages (a page-allocator fleet that rebalances its free lists by messages)",
    boot="per-core",
    experiments=(ALLOC,),
)
