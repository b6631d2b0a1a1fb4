"""Coherence versus messages: the microbenchmarks of the Barrelfish paper, as core programs.

* ``urpc_rows``: URPC one-way latency (ping-pong) and pipelined throughput
  (a one-way stream) between core 0 and one core of every path kind the
  machine has (Table 2 of the paper).
* ``shm_vs_msg_rows``: the cost of one update of n shared cache lines by k
  cores, directly through shared memory (SHMn), or by an RPC over URPC to a
  server core that owns the data (MSGn), and the server's own cost per
  update (SERVER) (Figure 3 of the paper).

Both only build programs (``kernels.urpc`` for the channel) and read the
timeline the engine records; nothing here knows a published number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.machine import Machine
from kernels import urpc

LINE = 64
CODE = 0x10_0000          # programs are placed from here, 64 KiB apart
STATE = 0x40_0000         # per-core private stub lines
DATA = 0x80_0000          # channels and shared data

# The Barrelfish UMP stack touches 9 I-cache and 8 D-cache lines per message [Barrelfish, Table 2]: the slot
# line plus 7 lines of binding/channel state, and the stub code.
STUB_DLINES = 7
STUB_ILINES = 6
SLOTS, STUB = 16, True    # the URPC benchmark's ring size, and whether it models the full stack


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return load_machine(machine) if isinstance(machine, str) else machine


def node_base(cfg: MachineConfig, pkg: int) -> int:
    """First byte of package ``pkg``'s local memory (node-interleaved machines), else 0."""
    if cfg.memory.interleave != "node":
        return 0
    return (cfg.memory.size // cfg.packages) // 4096 * 4096 * pkg


def shares_cache(cfg: MachineConfig, a: int, b: int) -> str | None:
    """Name of the first cache level cores a and b share, or None."""
    for lv in sorted({c.level for c in cfg.caches}):
        c = next(x for x in cfg.caches if x.level == lv)
        g = cfg.group_size(c.sharing)
        if a // g == b // g:
            return c.name
    return None


@dataclass(frozen=True)
class Path:
    name: str
    a: int
    b: int
    hops: int
    shared_cache: str | None


def path_kinds(cfg: MachineConfig) -> list[Path]:
    """One pair of cores (core 0 and the lowest core of the kind) for every path kind of the machine."""
    from hwmodel.interconnect import hop_matrix
    hops = hop_matrix(cfg.interconnect, cfg.packages)
    seen, out = set(), []
    words = {1: "one hop", 2: "two hops", 3: "three hops"}
    for b in range(1, cfg.cores):
        h = int(hops[0, b // cfg.cores_per_package])
        sc = shares_cache(cfg, 0, b)
        key = (h, sc)
        if key in seen:
            continue
        seen.add(key)
        if sc:
            name = f"shared {sc}"
        elif h == 0:
            name = "same package"
        else:
            name = words.get(h, f"{h} hops")
        out.append(Path(name, 0, b, h, sc))
    return out


def _stubs(a: int, b: int, stub: bool) -> tuple[urpc.Stub | None, urpc.Stub | None]:
    if not stub:
        return None, None
    return (urpc.Stub(dlines=STUB_DLINES, ilines=STUB_ILINES, base=STATE + a * 4096),
            urpc.Stub(dlines=STUB_DLINES, ilines=STUB_ILINES, base=STATE + b * 4096))


def run_pair(cfg: MachineConfig, a: int, b: int, make, what: str) -> np.ndarray:
    """Run the program pair ``make(link, stub_a, stub_b)`` on cores a and b; returns the timeline."""
    m = Machine(cfg)
    w = m.workload()
    link = urpc.Link.at(DATA + node_base(cfg, a // cfg.cores_per_package), SLOTS)
    pa, pb = make(link, *_stubs(a, b, STUB))
    w.start(a, w.place(pa, CODE + a * 0x10000).pc())
    w.start(b, w.place(pb, CODE + b * 0x10000).pc())
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise RuntimeError(f"URPC {what} on {cfg.name} cores {a},{b} ended {status}")
    return m.timeline()


def urpc_latency(cfg: MachineConfig, a: int, b: int, rounds: int = 200) -> float:
    """Mean one-way latency (cycles) of a URPC ping-pong between cores a and b, warm (second half)."""
    tl = run_pair(cfg, a, b, lambda link, sa, sb: urpc.pingpong_programs(link, rounds, sa, sb), "ping-pong")
    send = tl[(tl[:, 0] == a) & (tl[:, 2] == urpc.EV_SEND)][:, 1]
    recv = tl[(tl[:, 0] == b) & (tl[:, 2] == urpc.EV_RECV)][:, 1]
    rsend = tl[(tl[:, 0] == b) & (tl[:, 2] == urpc.EV_SEND)][:, 1]
    rrecv = tl[(tl[:, 0] == a) & (tl[:, 2] == urpc.EV_RECV)][:, 1]
    h = rounds // 2
    one_way = np.concatenate([recv[h:] - send[h:], rrecv[h:] - rsend[h:]])
    return float(one_way.mean())


def urpc_throughput(cfg: MachineConfig, a: int, b: int, n: int = 400) -> float:
    """Messages per kilocycle of a one-way URPC stream from a to b."""
    tl = run_pair(cfg, a, b, lambda link, sa, sb: urpc.stream_programs(link, n, sa, sb), "stream")
    t0 = tl[tl[:, 2] == urpc.EV_STREAM_START][0, 1]
    end = tl[tl[:, 2] == urpc.EV_STREAM_END][0]
    if end[3] != 0:
        raise RuntimeError("URPC stream delivered messages out of sequence")
    return 1000.0 * n / float(end[1] - t0)


def urpc_rows(machine: str | MachineConfig, rounds: int = 200, n: int = 400) -> list[dict]:
    """One row per path kind: latency (cycles) and throughput (messages per kilocycle)."""
    cfg = _cfg(machine)
    rows = []
    for p in path_kinds(cfg):
        rows.append({"machine": cfg.name, "path": p.name, "cores": [p.a, p.b], "hops": p.hops,
                     "shared_cache": p.shared_cache is not None,
                     "latency_cycles": round(urpc_latency(cfg, p.a, p.b, rounds), 1),
                     "msgs_per_kcycle": round(urpc_throughput(cfg, p.a, p.b, n), 2)})
    return rows


# ---------------------------------------------------------------------- Figure 3

def _update(p: isa.Program, base: int | str, nlines: int, comment: str = "") -> None:
    """One update: every one of ``nlines`` lines is read, incremented and written back (``x++``)."""
    for i in range(nlines):
        if isinstance(base, str):
            p.load("r3", i * LINE, base=base, comment=comment)
            p.add("r3", "r3", 1)
            p.store(i * LINE, "r3", base=base)
        else:
            p.load("r3", base + i * LINE, comment=comment)
            p.add("r3", "r3", 1)
            p.store(base + i * LINE, "r3")


def shm_cost(cfg: MachineConfig, cores: int, nlines: int, iters: int = 40) -> float:
    """Cycles per update when ``cores`` cores (0..cores-1) each update the same ``nlines`` lines directly
    (timed after the first quarter of the iterations, once the caches are warm)."""
    warm = iters // 4
    m = Machine(cfg)
    w = m.workload()
    data = DATA + node_base(cfg, 0)
    for c in range(cores):
        p = isa.Program(f"shm{nlines}-core{c}")
        p.movi("r1", 0)
        p.label("loop")
        p.br("ne", "r1", warm, "nomark")
        p.mark(1, comment="warm: start timing")
        p.label("nomark")
        _update(p, data, nlines, "shm: update the shared lines")
        p.add("r1", "r1", 1)
        p.br("lt", "r1", iters, "loop")
        p.mark(2)
        p.halt()
        w.start(c, w.place(p, CODE + c * 0x10000).pc())
    m.load_workload(w)
    if m.execute() != "done":
        raise RuntimeError("SHM benchmark did not finish")
    tl = m.timeline()
    per = [(tl[(tl[:, 0] == c) & (tl[:, 2] == 2)][0, 1] - tl[(tl[:, 0] == c) & (tl[:, 2] == 1)][0, 1])
           / (iters - warm) for c in range(cores)]
    return float(np.mean(per))


def msg_cost(cfg: MachineConfig, clients: int, nlines: int, iters: int = 40, slots: int = 16,
             stub: bool = False) -> tuple[float, float]:
    """(cycles per update seen by a client, server cycles per update) for ``clients`` clients
    (cores 1..clients) calling a server on core 0 that updates ``nlines`` lines it owns.
    The call is the paper's lightweight RPC that fits one cache line: the bare channel, no stub stack.

    Each client has its own URPC link to the server; the server polls its links in turn (plain loads:
    a poll of an untouched channel hits in its cache).  Timed after the first quarter of the calls."""
    warm = iters // 4
    m = Machine(cfg)
    w = m.workload()
    server_node = node_base(cfg, 0)
    data = DATA + server_node
    links = [urpc.Link.at(DATA + server_node + 0x10000 * (i + 1), slots) for i in range(clients)]
    for i in range(clients):
        core = i + 1
        sa, _ = _stubs(core, 0, stub)
        p = isa.Program(f"msg-client{core}")
        urpc.emit_init(p, links[i].a)
        p.movi("r0", 0)
        p.label("loop")
        p.br("ne", "r0", warm, "nomark")
        p.mark(1, comment="warm: start timing")
        p.label("nomark")
        urpc.emit_send(p, links[i].a, ["r0"], stub=sa)
        urpc.emit_recv(p, links[i].a, ["r1"], stub=sa)
        p.add("r0", "r0", 1)
        p.br("lt", "r0", iters, "loop")
        p.mark(2)
        p.halt()
        w.start(core, w.place(p, CODE + core * 0x10000).pc())
    # the server: one routine per client link, each keeping its channel registers in memory
    s = isa.Program("msg-server")
    _, sb = _stubs(1, 0, stub)
    regs = urpc.REGS
    state_regs = [regs.txp, regs.txe, regs.txs, regs.txa, regs.rxp, regs.rxe, regs.rxn, regs.rxl]
    save = STATE + 0x100000
    for i in range(clients):
        urpc.emit_init(s, links[i].b)
        for k, r in enumerate(state_regs):
            s.store(save + i * 64 + 8 * k, r)
    s.movi("r0", 0, comment="updates done")
    s.movi("r2", 0, comment="timing started?")
    s.label("poll")
    s.br("ne", "r2", 0, "nomark")
    s.br("ltu", "r0", clients * warm, "nomark")
    s.mark(1, comment="warm: start timing")
    s.movi("r2", 1)
    s.label("nomark")
    irxp, irxe = state_regs.index(regs.rxp), state_regs.index(regs.rxe)
    for i in range(clients):
        s.load("r4", save + i * 64 + 8 * irxp, comment=f"poll client {i + 1}: its next slot")
        s.load("r5", urpc.CTRL_OFFSET, base="r4")
        s.load("r3", save + i * 64 + 8 * irxe)
        s.alu("xor", "r5", "r5", "r3")
        s.br("lt", "r5", 0, f"skip{i}", comment="epoch not yet flipped: nothing new")
        for k, r in enumerate(state_regs):
            s.load(r, save + i * 64 + 8 * k)
        urpc.emit_recv(s, links[i].b, ["r1"], stub=sb)
        _update(s, data, nlines, "server: update its own lines")
        urpc.emit_send(s, links[i].b, ["r1"], stub=sb)
        for k, r in enumerate(state_regs):
            s.store(save + i * 64 + 8 * k, r)
        s.add("r0", "r0", 1)
        s.label(f"skip{i}")
    s.br("lt", "r0", clients * iters, "poll")
    s.mark(2)
    s.halt()
    w.start(0, w.place(s, CODE).pc())
    m.load_workload(w)
    if m.execute() != "done":
        raise RuntimeError("MSG benchmark did not finish")
    tl = m.timeline()
    per = [(tl[(tl[:, 0] == c) & (tl[:, 2] == 2)][0, 1] - tl[(tl[:, 0] == c) & (tl[:, 2] == 1)][0, 1])
           / (iters - warm) for c in range(1, clients + 1)]
    srv = tl[tl[:, 0] == 0]
    server = (srv[srv[:, 2] == 2][0, 1] - srv[srv[:, 2] == 1][0, 1]) / (clients * (iters - warm))
    return float(np.mean(per)), float(server)


SERIES = ("SHM1", "SHM2", "SHM4", "SHM8", "MSG1", "MSG8", "SERVER")


def shm_vs_msg_rows(machine: str | MachineConfig, max_cores: int | None = None, iters: int = 40,
                    series: tuple[str, ...] = SERIES) -> list[dict]:
    """Figure 3: cycles per update for every series and every core count 1..all (MSG: clients = cores - 1,
    the server takes a core; SERVER: the server's cycles per update with MSG8's clients)."""
    cfg = _cfg(machine)
    top = min(max_cores or cfg.cores, cfg.cores)
    rows = []
    for k in range(1, top + 1):
        msg: dict[int, tuple[float, float]] = {}     # one MSG8 run gives MSG8 and SERVER
        for name in series:
            if name.startswith("SHM"):
                v = shm_cost(cfg, k, int(name[3:]), iters)
            elif k < 2:
                continue
            else:
                n = int(name[3:]) if name.startswith("MSG") else 8
                if n not in msg:
                    msg[n] = msg_cost(cfg, k - 1, n, iters)
                v = msg[n][0] if name.startswith("MSG") else msg[n][1]
            rows.append({"series": name, "cores": k, "cycles_per_update": round(v, 1)})
    return rows
