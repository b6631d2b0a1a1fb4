"""K2: one kernel per coherence domain, shared-most state kept consistent in software.

K2 (Lin, Wang, Zhong, "K2: A Mobile Operating System for Heterogeneous Coherence Domains", ASPLOS
2014) runs a Linux-derived kernel on each coherence domain of a TI OMAP4 (the Cortex-A9 pair: the
strong domain; the Cortex-M3 pair: the weak domain; no hardware coherence between them).  Its
shared-most model:

* core services are *independent per-domain instances* with no shared state: each kernel has its own
  page allocator (K2 splits physical memory between the kernels); modelled as a private free list
  and ``struct page`` array per domain;
* extended services (device drivers) keep *one* state that both kernels use; K2 keeps it coherent in
  software.  Modelled as a DSM-style ownership protocol over the non-coherent shared DRAM: the owner
  of the driver state releases it by cleaning and invalidating (CLFLUSH, ARM's DCCIMVAC) every line
  of the state it touched -- a 64-byte driver structure spans two 32-byte lines on this machine --
  then posting a grant message (the next handover's number, written to a mailbox line and flushed
  to memory); the new owner polls the mailbox line (flush + load: no store of the other domain can
  wake it), invalidates its own stale copies of the state's lines, and only then reads them.
  Private state never leaves its domain.

Experiment ``k2`` (machine ``omap4``): a light OS workload of periodic wake-ups (the APIC timer),
each allocating a page and touching the driver, run on the strong domain only (``strong``) versus
offloaded to the weak domain under K2 (``k2``: the M3 runs the wake-ups, and every ``--strong-every``
th one is the A9's, as a foreground task touching the same driver, so the driver state's ownership
moves back and forth).  Each run reports time, energy (``energy_nj``, the per-core-type power model
below applied to each core's busy and asleep time) and the number of ownership transfers, and the
table gives each transfer's measured cost.

Left out: K2's page-fault-driven DSM (a non-owner's access faults and *requests* the state; here the
handover points follow the static schedule, so the request leg and its fault are not charged), the
mailbox interrupt (the new owner finds the grant at its next wake-up), idle states deeper than
WFI (OMAP4's MPU OSWR/OFF), DVFS, and everything but the two cores that run the work (the other
core of each pair is idle, and counted at idle power).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

PRESET = "omap4"
STRONG_CORE, WEAK_CORE = 0, 2          # first core of package 0 (Cortex-A9) and package 1 (Cortex-M3)
VECTOR = 0xEF                          # the wake-up timer's vector
CODE = 0x10_0000                       # core c's program at CODE + c * 0x10000, its handler at +0x8000
ALLOC = 0x40_0000                      # per-domain allocator: count, then the free stack, 1 MiB per domain
MEMMAP = 0x100_0000                    # per-domain struct page arrays, 16 MiB per domain
DRIVER = 0x800_0000                    # the shared driver state: 64 bytes
DRIVER_BYTES = 64
MAILBOX = 0x810_0000                   # grant mailbox of domain d at MAILBOX + 0x100 * d
FRAMES = 4096                          # frames per domain's allocator at start

EV_OP, EV_OP_END, EV_REL, EV_REL_END, EV_ACQ, EV_ACQ_END, EV_SLEEP, EV_WAKE = range(0x500, 0x508)
CONFIGS = ("strong", "k2")

# K2 paper (ASPLOS'14): light OS workloads 8-10x more energy-efficient offloaded to the M3 domain;
# under 6 % overhead for a driver shared between the kernels.  Printed beside the model; never fitted.
PAPER_K2 = {"energy_gain": "8-10x"}


@dataclass(frozen=True)
class IdleState:
    """One idle state of a core type: its power (mW) and its target residency (us): the shortest
    idle period for which it saves energy over the shallower state (the cpuidle definition)."""
    name: str
    power_mw: float
    residency_us: float


@dataclass(frozen=True)
class Power:
    """Power of one core type: running (``active_mw``) and its idle states, shallowest first."""
    active_mw: float
    idle: tuple[IdleState, ...]
    source: str


# Per core type.  Cortex-A9 active: ARM's Cortex-A9 power-optimised dual-core hard macro, 0.5 W at
# 800 MHz (ARM, Cortex-A9 hard macro announcement, 2009) = 0.31 mW/MHz per core, taken linear in
# frequency at 1.2 GHz (assumption: same voltage) = 375 mW.  A9 idle states: the OMAP4 cpuidle
# driver's C1 (WFI, target residency 5 us) and C2 (CPUx OFF + MPUSS CSWR, target residency 960 us)
# (Linux arch/arm/mach-omap2/cpuidle44xx.c); their powers (WFI: clock-gated leakage 20 mW; OFF: 2 mW
# of retention) are assumptions -- no per-core figure is published for OMAP4.  Cortex-M3 active: ARM's
# Cortex-M3 product page, 0.19 mW/MHz (a 180 nm figure; OMAP4 is 45 nm, so this over-states the M3),
# at 200 MHz = 38 mW; M3 idle (WFI): 1 mW, assumption.
POWER = {
    "cortex-a9": Power(375.0, (IdleState("C1-WFI", 20.0, 5.0), IdleState("C2-OFF", 2.0, 960.0)),
                       "ARM A9 hard macro 0.5 W dual @ 800 MHz, linear to 1.2 GHz; idle states cpuidle44xx.c"),
    "cortex-m3": Power(38.0, (IdleState("WFI", 1.0, 0.0),), "ARM Cortex-M3 0.19 mW/MHz @ 200 MHz; idle: assumption"),
}


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return load_machine(machine) if isinstance(machine, str) else machine


def _check_machine(cfg: MachineConfig) -> None:
    if cfg.ndomains < 2:
        raise MksimError(f"k2 bench: machine {cfg.name} has one coherence domain; K2 needs two (try {PRESET})")
    for core in (STRONG_CORE, WEAK_CORE):
        t = core_type(cfg, core)
        if t not in POWER:
            raise MksimError(f"k2 bench: no power figures for core type {t!r} (known: {', '.join(POWER)})")


def core_type(cfg: MachineConfig, core: int) -> str:
    """The name of ``core``'s core type."""
    return cfg.package_types[core // cfg.cores_per_package]


def domain_of(cfg: MachineConfig, core: int) -> int:
    return cfg.package_domains[core // cfg.cores_per_package]


def schedule(config: str, ops: int, strong_every: int) -> list[int]:
    """The core that runs each wake-up: all on the A9 (``strong``), or on the M3 with every
    ``strong_every``-th on the A9 (``k2``)."""
    if config not in CONFIGS:
        raise MksimError(f"k2 config {config!r}: must be one of {', '.join(CONFIGS)}")
    if ops < 1 or strong_every < 1:
        raise MksimError(f"k2 workload: ops {ops} and strong_every {strong_every} must be >= 1")
    if config == "strong":
        return [STRONG_CORE] * ops
    return [STRONG_CORE if i % strong_every == strong_every - 1 else WEAK_CORE for i in range(ops)]


# ---------------------------------------------------------------------- kernel code
def _line_addrs(cfg: MachineConfig) -> list[int]:
    line = cfg.caches[0].line
    return list(range(DRIVER, DRIVER + DRIVER_BYTES, line))


def _alloc_page(p: isa.Program, dom: int, seq: int) -> None:
    """alloc_pages() on this domain's own allocator instance: pop a frame, write its struct page."""
    count, stack = ALLOC + dom * 0x10_0000, ALLOC + dom * 0x10_0000 + 0x1000
    p.load("r2", count, comment="K2: this kernel's own free list (no shared state)")
    p.sub("r2", "r2", 1)
    p.store(count, "r2")
    p.alu("shl", "r3", "r2", 3)
    p.load("r4", stack, base="r3", comment="free list: the top frame")
    p.alu("shl", "r3", "r4", 6)
    p.store(MEMMAP + dom * 0x100_0000, seq, base="r3", comment="prep_new_page: struct page")


def _touch_driver(p: isa.Program, cfg: MachineConfig) -> None:
    """The driver's work on its shared state: read-modify-write a status and a counter word in each
    of the structure's lines (e.g. a mailbox driver's queue head and statistics)."""
    for a in _line_addrs(cfg):
        for off in (0, 8):
            p.load("r2", a + off, comment="driver state")
            p.add("r2", "r2", 1)
            p.store(a + off, "r2")


def _release(p: isa.Program, cfg: MachineConfig, to_dom: int, handover: int) -> None:
    """Give the driver state away: clean+invalidate every line of it, then post the grant."""
    p.mark(EV_REL, handover)
    for a in _line_addrs(cfg):
        p.clflush(a, comment="K2 release: clean+invalidate a line of the shared state (DCCIMVAC)")
    box = MAILBOX + 0x100 * to_dom
    p.store(box, handover, comment="K2: grant message (the handover's number)")
    p.clflush(box, comment="push the grant to memory")
    p.mark(EV_REL_END, handover)


def _acquire(p: isa.Program, cfg: MachineConfig, dom: int, handover: int, tag: str) -> None:
    """Take the driver state: wait for the grant, then drop any stale copy of its lines."""
    p.mark(EV_ACQ, handover)
    box = MAILBOX + 0x100 * dom
    p.label(f"{tag}.poll")
    p.clflush(box, comment="drop our stale copy of the mailbox line")
    p.load("r2", box, comment="K2: grant arrived?")
    p.br("eq", "r2", handover, f"{tag}.got")
    p.pause()
    p.jmp(f"{tag}.poll")
    p.label(f"{tag}.got")
    for a in _line_addrs(cfg):
        p.clflush(a, comment="K2 acquire: invalidate our stale copy of the shared state")
    p.mark(EV_ACQ_END, handover)


def core_program(cfg: MachineConfig, core: int, sched: list[int], period: int) -> isa.Program:
    """One kernel's wake-up loop on ``core``: a periodic timer; at each of its own slots allocate a
    page and touch the driver, acquiring / releasing its state where the owner changes."""
    dom = domain_of(cfg, core)
    mine = [i for i, c in enumerate(sched) if c == core]
    p = isa.Program(f"k2-core{core}")
    owner = domain_of(cfg, STRONG_CORE)            # the strong kernel initialised the driver
    handover = 0
    plan = []                                     # per op: (acquire handover or 0, release handover or 0)
    for i, c in enumerate(sched):
        d = domain_of(cfg, c)
        acq = 0
        if d != owner:
            handover += 1
            acq, owner = handover, d
        nxt = domain_of(cfg, sched[i + 1]) if i + 1 < len(sched) else d
        rel = handover + 1 if nxt != d else 0
        plan.append((acq, rel))
    first_dom = domain_of(cfg, sched[0])
    if dom == domain_of(cfg, STRONG_CORE) and first_dom != dom:
        _release(p, cfg, first_dom, 1)            # boot: the driver goes to the kernel that runs first
    if not mine:
        p.mark(EV_SLEEP)
        p.halt()
        return p
    # the timer ticks every `stride` periods: the gcd of its own slots, so a core wakes for its own work
    # only where the schedule allows (the strong core of the k2 config: every strong_every-th period)
    stride = 0
    for i in mine:
        stride = gcd(stride, i + 1)
    p.sti()
    p.timer_periodic(VECTOR, stride * period, divide=1, comment="periodic wake-up timer")
    slot = stride - 1
    for i in mine:
        while slot < i:                           # a slot that is not ours: back to sleep
            _sleep(p)
            slot += stride
        _sleep(p)
        slot += stride
        p.mark(EV_OP, i)
        _alloc_page(p, dom, i + 1)
        acq, rel = plan[i]
        if acq:
            _acquire(p, cfg, dom, acq, f"acq{i}")
        _touch_driver(p, cfg)
        if rel:
            _release(p, cfg, 1 - dom, rel)
        p.mark(EV_OP_END, i)
    p.timer_stop()
    p.cli()
    p.mark(EV_SLEEP)
    p.halt()
    return p


def _sleep(p: isa.Program) -> None:
    """Idle until the next timer interrupt (marks bound the idle period for the energy model)."""
    p.mark(EV_SLEEP)
    p.wfi(comment="sleep until the next wake-up")
    p.mark(EV_WAKE)


def handler() -> isa.Program:
    """The timer interrupt: acknowledge and return (the work runs after the WFI)."""
    p = isa.Program("k2-timer")
    p.eoi(comment="ack the timer interrupt")
    p.iret()
    return p


# ---------------------------------------------------------------------- energy
def idle_energy_pj(pw: Power, gap_ns: float) -> float:
    """Energy (pJ) of one idle period of ``gap_ns``: the deepest state whose target residency fits (the
    cpuidle menu governor's choice with a perfect prediction), plus that state's entry/exit energy.
    The target residency is the break-even time against the shallowest state, so the entry/exit energy
    of state s is (P_shallowest - P_s) x residency_s."""
    first = pw.idle[0]
    st = [s for s in pw.idle if s.residency_us * 1000 <= gap_ns] or [first]
    s = st[-1]
    return s.power_mw * gap_ns + (first.power_mw - s.power_mw) * s.residency_us * 1000


def energy_nj(cfg: MachineConfig, m: Machine) -> float:
    """Energy of the run (nJ) over the whole run (0 to the last core's end): each core at its type's
    active power while running; each of its idle periods (from a sleep mark to the next wake mark, the
    last one to the end of the run; a core that runs nothing is one idle period) in the idle state the
    governor picks for that length, the periods scaled to the core's measured sleep time.  The running
    time is the core's time not asleep."""
    st = m.stats()["cores"]
    ps = m.prog_stats()
    tl = m.timeline()
    end = max(c["ns"] for c in st)
    total = 0.0
    for c in range(cfg.cores):
        pw = POWER[core_type(cfg, c)]
        busy = max(0.0, st[c]["ns"] - cfg.ns(ps[c]["sleep_cycles"])) if ps[c]["ops"] else 0.0
        mine = tl[tl[:, 0] == c]
        sleeps = [cfg.ns(int(t)) for t in mine[mine[:, 2] == EV_SLEEP][:, 1]]
        wakes = [cfg.ns(int(t)) for t in mine[mine[:, 2] == EV_WAKE][:, 1]] + [end]
        gaps = [b - a for a, b in zip(sleeps, wakes) if b > a] if sleeps else [end]
        scale = (end - busy) / sum(gaps) if gaps and sum(gaps) > 0 else 0.0
        total += pw.active_mw * busy + sum(idle_energy_pj(pw, g * scale) for g in gaps)
    return total / 1000.0


def run(cfg: MachineConfig, config: str, ops: int = 48, strong_every: int = 16, period_us: float = 100.0,
        machine_out: list | None = None) -> dict:
    """One run of the light workload: its row, with the mean cost of one ownership transfer (release +
    acquire, reference cycles) and of one wake-up's work.  ``machine_out`` (a list) gets the finished
    ``Machine`` appended (tests read the driver state back from it)."""
    _check_machine(cfg)
    sched = schedule(config, ops, strong_every)
    period = int(round(period_us * 1000 * cfg.clock_ghz))
    if period < 1000:
        raise MksimError(f"k2 period {period_us} us is under 1000 cycles: too short for a wake-up")
    m = Machine(cfg)
    w = m.workload()
    for d in range(2):
        base = ALLOC + d * 0x10_0000
        w.write(base, FRAMES.to_bytes(8, "little"))
        w.write(base + 0x1000, np.arange(FRAMES, dtype=np.int64).tobytes())
    for core in (STRONG_CORE, WEAK_CORE):
        w.start(core, w.place(core_program(cfg, core, sched, period), CODE + core * 0x10000).pc())
        w.set_handler(core, VECTOR, w.place(handler(), CODE + core * 0x10000 + 0x8000).pc())
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise MksimError(f"k2 {config} on {cfg.name} ended {status}: {m.waits()}")
    if machine_out is not None:
        machine_out.append(m)
    tl = m.timeline()
    transfers = int((tl[:, 2] == EV_REL).sum())
    costs = []
    for h in range(1, transfers + 1):
        rel = tl[(tl[:, 2] == EV_REL) & (tl[:, 3] == h)][0, 1], tl[(tl[:, 2] == EV_REL_END) & (tl[:, 3] == h)][0, 1]
        acq = tl[(tl[:, 2] == EV_ACQ) & (tl[:, 3] == h)][0, 1], tl[(tl[:, 2] == EV_ACQ_END) & (tl[:, 3] == h)][0, 1]
        costs.append((rel[1] - rel[0]) + (acq[1] - acq[0]))
    starts, ends = tl[tl[:, 2] == EV_OP], tl[tl[:, 2] == EV_OP_END]
    if len(starts) != ops or len(ends) != ops:
        raise MksimError(f"k2 {config}: {len(ends)} of {ops} wake-ups completed")
    return {"config": config, "ops": ops, "cycles": int(tl[:, 1].max()),
            "energy_nj": round(energy_nj(cfg, m), 1), "coherence_transfers": transfers,
            "transfer_cycles": round(float(np.mean(costs)), 1) if costs else 0.0,
            "op_cycles": round(float(np.mean(ends[:, 1] - starts[:, 1])), 1)}


def driver_words(cfg: MachineConfig, m: Machine, domain: int) -> list[int]:
    """The driver state's counter words as ``domain`` sees them (its cache, else memory)."""
    out = []
    for a in _line_addrs(cfg):
        for off in (0, 8):
            out.append(int.from_bytes(m.read(a + off, 8, domain=domain), "little", signed=True))
    return out


def k2_rows(machine: str | MachineConfig = PRESET, ops: int = 48, strong_every: int = 16,
            period_us: float = 100.0) -> list[dict]:
    """Rows {"config", "ops", "cycles", "energy_nj", "coherence_transfers", "transfer_cycles",
    "op_cycles"} for the strong-only and the K2-offloaded runs (cycles: reference = A9 cycles)."""
    cfg = _cfg(machine)
    return [run(cfg, c, ops, strong_every, period_us) for c in CONFIGS]


def _table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"Light OS workload on {cfg.name}: strong domain only vs offloaded under K2 (A9 cycles)",
           f"{'config':<8} {'ops':>5} {'cycles':>10} {'energy_nJ':>11} {'transfers':>10} "
           f"{'cyc/transfer':>13} {'cyc/wake-up':>12}"]
    for r in rows:
        out.append(f"{r['config']:<8} {r['ops']:>5} {r['cycles']:>10} {r['energy_nj']:>11} "
                   f"{r['coherence_transfers']:>10} {r['transfer_cycles']:>13} {r['op_cycles']:>12}")
    e = {r["config"]: r["energy_nj"] for r in rows}
    if e.get("k2"):
        out.append(f"model: energy strong / k2 = {e['strong'] / e['k2']:.2f}x; "
                   f"published (K2, ASPLOS'14): {PAPER_K2['energy_gain']} for light OS workloads")
    out.append("power (mW): " + "; ".join(
        f"{k} active {v.active_mw:g}, " + ", ".join(f"{s.name} {s.power_mw:g}" for s in v.idle) for k, v in POWER.items()))
    return "\n".join(out)


def _plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    names = [r["config"] for r in rows]
    axes[0].bar(names, [r["energy_nj"] / 1000 for r in rows], color=["tab:red", "tab:green"][:len(rows)])
    axes[0].set_ylabel("energy (uJ)")
    axes[0].set_title("energy")
    axes[1].bar(names, [r["op_cycles"] for r in rows], color=["tab:red", "tab:green"][:len(rows)])
    axes[1].set_ylabel("cycles per wake-up (A9 cycles)")
    axes[1].set_title("wake-up latency")
    fig.suptitle(f"Light OS workload on {cfg.name}: strong only vs K2 offload")
    fig.tight_layout()
    return fig


def _rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    x = opts.extra
    return k2_rows(cfg, int(_opt(x, "ops", 48)), int(_opt(x, "strong_every", 16)),
                   float(_opt(x, "period_us", 100.0)))


def _opt(extra: dict, key: str, default):
    """A bench option's value: the given one (even 0, which the run then refuses), else the default."""
    v = extra.get(key)
    return default if v is None else v


K2_BENCH = Experiment(
    name="k2",
    summary="A light OS workload (periodic wake-ups: allocate a page, touch a shared driver) on the strong "
            "domain vs offloaded to the weak domain under K2's software coherence: time, energy, transfers",
    keys=("config", "ops", "cycles", "energy_nj", "coherence_transfers", "transfer_cycles", "op_cycles"),
    rows=_rows, table=_table, plot=_plot, sweeps_cores=False,
    options=(BenchOption("--ops", "wake-ups per run", None, 48, int),
             BenchOption("--strong-every", "in the k2 config, every Nth wake-up runs on the strong domain",
                         None, 16, int),
             BenchOption("--period-us", "wake-up period in microseconds", None, 100.0, float)),
    default_machine=PRESET)


def k2_init(inst, p: isa.Program) -> None:
    """Each domain's kernel at boot: the minimal init (K2's per-domain setup is not modelled at boot;
    the ``k2`` bench builds its allocator instances and shared driver state itself)."""
    from kernels.base import minimal_init
    minimal_init(inst, p)


PERSONALITY = Personality(
    name="k2",
    summary="K2: a kernel per coherence domain (OMAP4 A9 + M3), private core services, shared driver "
            "state kept coherent in software (clean/invalidate + grant message)",
    boot="any",
    init=k2_init,
    experiments=(K2_BENCH,),
)
