"""Barrelfish: one CPU driver and monitor per core, monitors connected by URPC channels.

Boot: each core's kernel is loaded by the plan (GRUB for the first, the trampoline for the
others, as ``examples/barrelfish.cfg`` does); the boot core of each runs the init below.

Experiments (Baumann et al., "The Multikernel", SOSP 2009), all run as core programs on the
machine model; nothing here knows a published number except the tables that print it beside
the model's:

* ``shootdown_rows``: the message part of a TLB shootdown (Figure 6): the initiator's monitor
  sends the unmap request to every other core's monitor and collects every reply, by broadcast,
  unicast, multicast or NUMA-aware multicast (``kernels/multicast.py``); each receiver clears
  its page-table replica's PTE and INVLPGs before replying.
* ``unmap_rows``: an unmap end to end (Figure 7, Barrelfish line): the user domain's LRPC to
  its monitor (Table 1's measured same-core LRPC, a sourced cost), the monitor's own replica
  edit, the one-phase commit by NUMA-aware multicast, the reply.
* ``notify_rows``: one message with the receiver polling vs asleep and woken by a notification
  IPI (channel id in the receiver's per-sender FIFO, then the IPI; Technical Note 009).
"""
from __future__ import annotations

import statistics

import numpy as np

from boot import timeline as tl
from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import microbench, multicast, plots, urpc
from kernels.base import KernelInstance
from kernels.multicast import PROTOCOLS
from kernels.personality import BenchOptions, Experiment, Personality


def barrelfish_init(inst: KernelInstance, p: isa.Program) -> None:
    """The CPU driver's init on its core: read the Multiboot information, touch its text, then
    start the monitor (its first module): read the module's first lines."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    tl.begin(p, f"{r.name} cpu driver")
    for off in range(0, 256, 64):
        p.load("r5", r.bootinfo_addr + off, comment="multiboot information")
    p.load("r5", r.entry & ~0x7, comment="first touch of the CPU driver's text")
    tl.end(p, f"{r.name} cpu driver")
    tl.begin(p, f"{r.name} monitor")
    for start, _end, _cmd in r.modules[:1]:
        for off in range(0, 256, 64):
            p.load("r5", start + off, comment="monitor image")
    tl.end(p, f"{r.name} monitor")
    tl.end(p, f"{r.name} init")



# ---------------------------------------------------------------------- TLB shootdown (Figure 6)
_ORDERS: dict[tuple[str, int], list[int]] = {}
RTT_ROUNDS = 20            # ping-pong round trips of the boot-time latency measurement


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return load_machine(machine) if isinstance(machine, str) else machine


def numa_order(cfg: MachineConfig, initiator: int = 0) -> list[int]:
    """The packages by decreasing message round-trip time from ``initiator``, farthest first.

    As Barrelfish's system knowledge base does at boot: a URPC ping-pong from the initiator to
    the first core of every package, run on the machine model; ties keep package order.  The
    initiator's own package is timed to its next core (0 if it has none)."""
    key = (repr(cfg), initiator)
    if key not in _ORDERS:
        home = multicast.package_of(cfg, initiator)
        rtt = {}
        for pkg in range(cfg.packages):
            first = pkg * cfg.cores_per_package
            peer = first if pkg != home else next(
                (c for c in range(first, first + cfg.cores_per_package) if c != initiator), None)
            rtt[pkg] = 0.0 if peer is None else 2 * microbench.urpc_latency(cfg, initiator, peer, RTT_ROUNDS)
        _ORDERS[key] = sorted(range(cfg.packages), key=lambda k: (-rtt[k], k))
    return list(_ORDERS[key])


def run_protocol(cfg: MachineConfig, protocol: str, initiator: int, targets, rounds: int,
                 local_work: bool = False, lrpc_cycles: int = 0) -> tuple[Machine, multicast.Built]:
    """Run ``rounds`` rounds of ``protocol`` from ``initiator`` to ``targets``; the finished machine."""
    order = numa_order(cfg, initiator) if protocol == "numa-multicast" else None
    tree = multicast.plan(cfg, protocol, initiator, targets, order)
    built = multicast.build_programs(cfg, tree, rounds, local_work=local_work, lrpc_cycles=lrpc_cycles)
    m = Machine(cfg)
    multicast.load_built(m, cfg, built, rounds)
    status = m.execute()
    if status != "done":
        raise RuntimeError(f"{protocol} shootdown on {cfg.name} from core {initiator} to {len(tree.targets)} "
                           f"cores ended {status}")
    return m, built


def _round_cycles(m: Machine, initiator: int) -> list[int]:
    tl_ = m.timeline()
    return [int(v) for v in tl_[(tl_[:, 0] == initiator) & (tl_[:, 2] == multicast.EV_ROUND)][:, 3]]


def _check_cores(cfg: MachineConfig, cores: int) -> None:
    if isinstance(cores, bool) or not isinstance(cores, int) or not 2 <= cores <= cfg.cores:
        raise MksimError(f"cores {cores!r}: must be 2..{cfg.cores} on {cfg.name}")


def _check_repeat(repeat: int) -> None:
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise MksimError(f"repeat {repeat!r}: must be an integer >= 1")


def shootdown_cycles(cfg: MachineConfig, protocol: str, cores: int, repeat: int = 3) -> int:
    """Cycles of the message part of a shootdown over cores 0..cores-1 from core 0: the median of
    ``repeat`` rounds after one warm-up round."""
    cfg = _cfg(cfg)
    _check_cores(cfg, cores)
    _check_repeat(repeat)
    m, _ = run_protocol(cfg, protocol, 0, range(1, cores), repeat + 1)
    return int(statistics.median(_round_cycles(m, 0)[1:]))


def sweep_cores(cfg: MachineConfig, max_cores: int | None) -> list[int]:
    """Core counts of a sweep: every count up to 8, then every package boundary (multiples of
    ``cores_per_package``, at least every 4th count) and the top, so amd-8x4 runs 2..8, 12, 16, 20,
    24, 28, 32."""
    top = cfg.cores if max_cores is None else max_cores
    if isinstance(top, bool) or not isinstance(top, int) or not 2 <= top <= cfg.cores:
        raise MksimError(f"max cores {max_cores!r}: must be 2..{cfg.cores} on {cfg.name}")
    step = max(4, cfg.cores_per_package)
    ks = [k for k in range(2, top + 1) if k <= 8 or k % step == 0]
    return ks if ks[-1] == top else ks + [top]


def shootdown_rows(cfg: MachineConfig, max_cores: int | None, repeat: int = 3) -> list[dict]:
    """Figure 6: rows ``{"protocol", "cores", "cycles"}`` for every protocol and core count."""
    cfg = _cfg(cfg)
    return [{"protocol": proto, "cores": k, "cycles": shootdown_cycles(cfg, proto, k, repeat)}
            for proto in PROTOCOLS for k in sweep_cores(cfg, max_cores)]


# ---------------------------------------------------------------------- unmap (Figure 7)
# The user domain's LRPC to its local monitor: Baumann et al., "The Multikernel" (SOSP 2009),
# Table 1, same-core LRPC latency measured on each machine (a sourced cost, not fitted; charged
# once for the call and its reply).  Machines the paper did not measure need it given.
LRPC_TABLE1 = {"intel-2x4": 845, "amd-2x2": 757, "amd-4x4": 1463, "amd-8x4": 1549}


def lrpc_cost(cfg: MachineConfig, lrpc_cycles: int | None = None) -> int:
    """The LRPC cost to charge: ``lrpc_cycles`` if given, else Table 1's figure for the preset."""
    if lrpc_cycles is not None:
        if isinstance(lrpc_cycles, bool) or not isinstance(lrpc_cycles, int) or lrpc_cycles < 0:
            raise MksimError(f"lrpc cycles {lrpc_cycles!r}: must be an integer >= 0")
        return lrpc_cycles
    if cfg.name not in LRPC_TABLE1:
        raise MksimError(f"machine {cfg.name}: no published LRPC latency (Table 1 has "
                         f"{', '.join(LRPC_TABLE1)}); give lrpc_cycles")
    return LRPC_TABLE1[cfg.name]


def unmap_cycles(cfg: MachineConfig, cores: int, repeat: int = 3, lrpc_cycles: int | None = None) -> int:
    """Cycles of an unmap of one page by a domain spanning cores 0..cores-1, seen by the domain on
    core 0: LRPC to its monitor, which unmaps its own replica and runs the one-phase commit with
    NUMA-aware multicast (every core clears its replica's PTE and INVLPGs), and the reply.
    Median of ``repeat`` rounds after a warm-up round."""
    cfg = _cfg(cfg)
    _check_cores(cfg, cores)
    _check_repeat(repeat)
    m, _ = run_protocol(cfg, "numa-multicast", 0, range(1, cores), repeat + 1, local_work=True,
                        lrpc_cycles=lrpc_cost(cfg, lrpc_cycles))
    return int(statistics.median(_round_cycles(m, 0)[1:]))


def unmap_rows(cfg: MachineConfig, max_cores: int | None, repeat: int = 3,
               lrpc_cycles: int | None = None) -> list[dict]:
    """Figure 7, Barrelfish line: rows ``{"system": "barrelfish", "cores", "cycles"}``."""
    cfg = _cfg(cfg)
    return [{"system": "barrelfish", "cores": k, "cycles": unmap_cycles(cfg, k, repeat, lrpc_cycles)}
            for k in sweep_cores(cfg, max_cores)]


# ---------------------------------------------------------------------- notifications
NOTIFY_VECTOR = 0xF0           # the notification IPI's vector (any fixed vector >= 32)
FIFO_ENTRIES = 64              # per-sender FIFO in the receiver's notification page (Technical Note 009)
FIFO_ENTRY = 2                 # bytes: a channel id
NOTIFY_CHAN = 1                # the channel id the sender posts (0 means an empty entry)
NOTIFY_ROUNDS = 12
EV_NSEND, EV_NRECV = 0x310, 0x311


def _fifo(cfg: MachineConfig, recv_core: int, sender: int) -> int:
    """Address of ``sender``'s FIFO in ``recv_core``'s notification page (in its node)."""
    return multicast.priv(cfg, recv_core) + multicast.NOTIFY_PAGE + sender * FIFO_ENTRIES * FIFO_ENTRY


def _notify_programs(cfg: MachineConfig, a: int, b: int, rounds: int):
    """(sender on a, receiver main on b, receiver's notification handler on b).

    Each round the sender MARKs EV_NSEND, sends a message on the URPC channel, writes the channel
    id into its FIFO in b's notification page, waits for its local APIC's ICR to be idle and sends
    the notification IPI, then polls for b's reply.  The receiver sleeps (WFI); its handler
    scans every sender's FIFO at its read index, takes the channel id, clears the entry, reads
    the message (MARK EV_NRECV), replies on the channel (polled by the sender), EOIs and IRETs."""
    link = urpc.Link.at(multicast.CHANNELS + microbench.node_base(cfg, multicast.package_of(cfg, a)), 16)
    sa, sb = multicast.monitor_stub(cfg, a), multicast.monitor_stub(cfg, b)
    done = multicast.priv(cfg, b) + multicast.NOTIFY_STATE      # rounds handled
    s = isa.Program("notify-sender")
    urpc.emit_init(s, link.a)
    s.movi("r0", 0)
    s.movi("r1", 0, comment="our write index in b's FIFO for us")
    s.label("loop")
    s.mark(EV_NSEND, "r0")
    urpc.emit_send(s, link.a, ["r0"], stub=sa)
    s.alu("shl", "r2", "r1", 1)
    s.store(_fifo(cfg, b, a), NOTIFY_CHAN, size=FIFO_ENTRY, base="r2", comment="notify: channel id into our FIFO")
    s.add("r1", "r1", 1)
    s.alu("and", "r1", "r1", FIFO_ENTRIES - 1)
    s.wait_icr_idle("r3")
    s.ipi(b, NOTIFY_VECTOR, comment="notify: the IPI")
    urpc.emit_recv(s, link.a, ["r2"], stub=sa)
    s.add("r0", "r0", 1)
    s.br("lt", "r0", rounds, "loop")
    s.halt()

    main = isa.Program("notify-receiver")
    main.label("sleep")
    main.cli()                                   # no wakeup lost between the check and the sleep
    main.load("r0", done, comment="rounds handled")
    main.br("ge", "r0", rounds, "out")
    main.wfi(comment="sets IF and sleeps, atomically (as STI; HLT)")
    main.jmp("sleep")
    main.label("out")
    main.halt()

    # the handler keeps the channel state and the FIFO read indices in memory (it runs on
    # whatever registers the interrupted code had)
    st = done + 0x100
    regs = (urpc.REGS.txp, urpc.REGS.txe, urpc.REGS.txs, urpc.REGS.txa,
            urpc.REGS.rxp, urpc.REGS.rxe, urpc.REGS.rxn, urpc.REGS.rxl)
    h = isa.Program("notify-handler")
    idx0, fifo0 = done + 0x200, _fifo(cfg, b, 0)
    h.movi("r2", 0, comment="notify: scan every sender's FIFO, sender r2")
    h.label("scan")
    h.br("eq", "r2", b, "next")
    h.alu("shl", "r5", "r2", 3)
    h.load("r4", idx0, base="r5", comment="notify: our read index in this sender's FIFO")
    h.alu("shl", "r3", "r2", (FIFO_ENTRIES * FIFO_ENTRY).bit_length() - 1)
    h.alu("shl", "r1", "r4", 1)
    h.add("r3", "r3", "r1")
    h.load("r1", fifo0, size=FIFO_ENTRY, base="r3", comment="notify: the FIFO entry")
    h.br("eq", "r1", 0, "next")
    h.store(fifo0, 0, size=FIFO_ENTRY, base="r3", comment="notify: consume the entry")
    h.add("r4", "r4", 1)
    h.alu("and", "r4", "r4", FIFO_ENTRIES - 1)
    h.store(idx0, "r4", base="r5")
    h.br("ne", "r1", NOTIFY_CHAN, "bad", comment="notify: the channel id names the binding")
    for k, r in enumerate(regs):
        h.load(r, st + 8 * k, comment="binding state")
    urpc.emit_recv(h, link.b, ["r0"], stub=sb)
    h.mark(EV_NRECV, "r0")
    urpc.emit_send(h, link.b, ["r0"], stub=sb)
    for k, r in enumerate(regs):
        h.store(st + 8 * k, r)
    h.load("r1", done)
    h.add("r1", "r1", 1)
    h.store(done, "r1")
    h.label("next")
    h.add("r2", "r2", 1)
    h.br("lt", "r2", cfg.cores, "scan")
    h.eoi()
    h.iret()
    h.label("bad")
    h.mark(urpc.EV_PROTOCOL_ERROR, "r3")
    h.halt()
    init_words = (link.b.tx.base, urpc.EPOCH_BIT, 0, 0, link.b.rx.base, urpc.EPOCH_BIT, 0, 0)
    return s, main, h, (st, init_words)


def notify_ipi_cycles(cfg: MachineConfig, a: int, b: int, rounds: int = NOTIFY_ROUNDS) -> float:
    """Median cycles from the sender starting a send to the receiver having read the message, when
    the receiver sleeps and is woken by the notification IPI (rounds after the first)."""
    s, main, h, (st, words) = _notify_programs(cfg, a, b, rounds)
    m = Machine(cfg)
    w = m.workload()
    half = multicast.CODE_STRIDE // 2
    w.start(a, multicast.place(w, s, multicast.code_addr(cfg, a)).pc())
    w.start(b, multicast.place(w, main, multicast.code_addr(cfg, b), half).pc())
    w.set_handler(b, NOTIFY_VECTOR, multicast.place(w, h, multicast.code_addr(cfg, b) + half, half).pc())
    w.write(st, b"".join(int(v).to_bytes(8, "little") for v in words))
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise RuntimeError(f"notification run on {cfg.name} cores {a},{b} ended {status}")
    t = m.timeline()
    sent = t[(t[:, 0] == a) & (t[:, 2] == EV_NSEND)][:, 1]
    got = t[(t[:, 0] == b) & (t[:, 2] == EV_NRECV)][:, 1]
    if len(sent) != rounds or len(got) != rounds:
        raise RuntimeError(f"notification run: {len(sent)} sends, {len(got)} receives of {rounds}")
    return float(np.median(got[1:] - sent[1:]))


def notify_rows(cfg: MachineConfig) -> list[dict]:
    """Rows ``{"mode", "path", "cycles"}``: one message's latency per path kind, the receiver
    polling (URPC ping-pong, one way) or asleep and woken by the notification IPI."""
    cfg = _cfg(cfg)
    multicast.check_coherent(cfg)
    rows = []
    for pk in microbench.path_kinds(cfg):
        rows.append({"mode": "poll", "path": pk.name,
                     "cycles": round(microbench.urpc_latency(cfg, pk.a, pk.b, 2 * NOTIFY_ROUNDS), 1)})
        rows.append({"mode": "ipi", "path": pk.name, "cycles": round(notify_ipi_cycles(cfg, pk.a, pk.b), 1)})
    return rows


# ---------------------------------------------------------------------- experiments
# Baumann et al. 2009, Figure 6 at 32 cores on amd-8x4 (read off the plot, +-0.5k cycles)
PAPER_FIG6_32 = {"broadcast": 13800, "unicast": 12700, "multicast": 4800, "numa-multicast": 3100}
# Barrelfish Technical Note 009 (Notify): a polled URPC message, taking an IPI
PAPER_NOTIFY = {"poll": "~600", "ipi": "~2,800 whole path (taking the IPI 500-1000)"}


def _shootdown_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    return shootdown_rows(cfg, opts.max_cores, opts.repeat)


def _shootdown_table(rows: list[dict], cfg: MachineConfig) -> str:
    cores = sorted({r["cores"] for r in rows})
    val = {(r["protocol"], r["cores"]): r["cycles"] for r in rows}
    paper = cfg.name == "amd-8x4" and 32 in cores
    head = f"{'cores':>5} " + " ".join(f"{p:>15}" for p in PROTOCOLS)
    out = [f"TLB shootdown, message part (cycles, initiator core 0) on {cfg.name}", head]
    for k in cores:
        out.append(f"{k:>5} " + " ".join(f"{val.get((p, k), ''):>15}" for p in PROTOCOLS))
    if paper:
        out.append(f"{'paper':>5} " + " ".join(f"{PAPER_FIG6_32[p]:>15}" for p in PROTOCOLS)
                   + "   (32 cores, Baumann et al. 2009 Fig. 6, approx. +-0.5k)")
        m32 = {p: val.get((p, 32)) for p in PROTOCOLS}
        out.append(f"{'err':>5} " + " ".join(f"{100 * (m32[p] - PAPER_FIG6_32[p]) / PAPER_FIG6_32[p]:>+14.0f}%"
                                               for p in PROTOCOLS))
    return "\n".join(out)


def _shootdown_plot(rows: list[dict], cfg: MachineConfig, plt):
    return plots.series(plt, rows, "protocol", PROTOCOLS,
                        f"TLB shootdown message latency on {cfg.name}")


def _notify_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    return notify_rows(cfg)


def _notify_table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"One message, receiver polling vs woken by an IPI (cycles) on {cfg.name}",
           f"{'path':<14} {'poll':>8} {'ipi':>8}"]
    paths = list(dict.fromkeys(r["path"] for r in rows))
    val = {(r["mode"], r["path"]): r["cycles"] for r in rows}
    for pth in paths:
        out.append(f"{pth:<14} {val.get(('poll', pth), ''):>8} {val.get(('ipi', pth), ''):>8}")
    out.append(f"published (Technical Note 009): poll {PAPER_NOTIFY['poll']}; ipi {PAPER_NOTIFY['ipi']}")
    return "\n".join(out)


def _notify_plot(rows: list[dict], cfg: MachineConfig, plt):
    paths = list(dict.fromkeys(r["path"] for r in rows))
    val = {(r["mode"], r["path"]): r["cycles"] for r in rows}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    x = np.arange(len(paths))
    for i, (mode, hatch) in enumerate((("poll", ""), ("ipi", "//"))):
        ax.bar(x + (i - 0.5) * 0.4, [val.get((mode, pth), 0) for pth in paths], 0.4, hatch=hatch,
               label=mode, edgecolor="black")
    ax.set_xticks(x, paths)
    ax.set_xlabel("path (core pair)")
    ax.set_ylabel("cycles")
    ax.set_title(f"Notification: polled vs IPI on {cfg.name}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- unmap bench (Figure 7)
# end-to-end unmap, Baumann et al. 2009 Figure 7 on amd-8x4 (read off the figure, approx. +-0.5k)
PAPER_FIG7 = {("barrelfish", 2): 10_300, ("barrelfish", 32): 17_500, ("linux", 2): 5_200, ("linux", 32): 29_500,
              ("windows", 2): 5_800, ("windows", 32): 46_000}
UNMAP_SYSTEMS = ("barrelfish", "linux", "windows")


def _unmap_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    """Barrelfish (one-phase commit by NUMA-aware multicast) beside Linux 2.6.26 and the Windows sketch
    (``kernels.linux``).  A machine with no published LRPC latency runs the Barrelfish line without
    the user->monitor hop; the table says so."""
    from kernels import linux
    rows = unmap_rows(cfg, opts.max_cores, opts.repeat, lrpc_cycles=LRPC_TABLE1.get(cfg.name, 0))
    for system in ("linux", "windows"):
        rows += linux.unmap_rows(cfg, opts.max_cores, opts.repeat, system=system)
    return rows


def _unmap_table(rows: list[dict], cfg: MachineConfig) -> str:
    cores = sorted({r["cores"] for r in rows})
    val = {(r["system"], r["cores"]): r["cycles"] for r in rows}
    out = [f"Unmap of one page, end to end (cycles, initiator core 0) on {cfg.name}",
           f"{'cores':>5} " + " ".join(f"{s:>11}" for s in UNMAP_SYSTEMS)]
    for k in cores:
        out.append(f"{k:>5} " + " ".join(f"{val.get((s, k), ''):>11}" for s in UNMAP_SYSTEMS))
    if cfg.name == "amd-8x4":
        for k in (2, 32):
            if k in cores:
                out.append(f"{'paper':>5} " + " ".join(f"{PAPER_FIG7[(s, k)]:>11}" for s in UNMAP_SYSTEMS)
                           + f"   ({k} cores, Baumann et al. 2009 Fig. 7, approx. +-0.5k)")
                out.append(f"{'err':>5} " + " ".join(
                    f"{100 * (val[(s, k)] - PAPER_FIG7[(s, k)]) / PAPER_FIG7[(s, k)]:>+10.0f}%" for s in UNMAP_SYSTEMS))
    bf = [k for k in cores if val.get(("barrelfish", k), 0) < val.get(("linux", k), 0)]
    if bf:
        out.append(f"Barrelfish is cheaper than Linux from {bf[0]} cores (the paper: about 12-13 on amd-8x4)")
    if cfg.name not in LRPC_TABLE1:
        out.append(f"(no published LRPC latency for {cfg.name}: the Barrelfish line does not charge the "
                   f"user->monitor LRPC)")
    out.append("windows: a sketch (a global lock, one broadcast IPI); the model leaves out the munmap "
               "system call's own work in every system")
    return "\n".join(out)


def _unmap_plot(rows: list[dict], cfg: MachineConfig, plt):
    return plots.series(plt, rows, "system", UNMAP_SYSTEMS, f"Unmap latency, end to end, on {cfg.name}")


UNMAP = Experiment(
    name="unmap",
    summary="End-to-end unmap latency: Barrelfish's one-phase commit vs Linux's IPI shootdown (and a "
            "Windows sketch): Figure 7 of the Multikernel paper",
    keys=("system", "cores", "cycles"),
    rows=_unmap_rows, table=_unmap_table, plot=_unmap_plot)

SHOOTDOWN = Experiment(
    name="shootdown",
    summary="TLB shootdown message protocols (broadcast, unicast, multicast, NUMA-aware multicast): "
            "Figure 6 of the Multikernel paper",
    keys=("protocol", "cores", "cycles"),
    rows=_shootdown_rows, table=_shootdown_table, plot=_shootdown_plot)

NOTIFY = Experiment(
    name="notify",
    summary="One URPC message with the receiver polling vs woken by a notification IPI, per path",
    keys=("mode", "path", "cycles"),
    rows=_notify_rows, table=_notify_table, plot=_notify_plot, sweeps_cores=False)


PERSONALITY = Personality(
    name="barrelfish",
    summary="Barrelfish multikernel: a CPU driver and monitor per core, URPC messages, replicated state",
    boot="per-core",
    init=barrelfish_init,
    experiments=(SHOOTDOWN, UNMAP, NOTIFY),
)
