"""RainForest: a supervisor and isolated sub-OSes, each with its own cores, memory and kernel state.

RainForest (Lu, Zhan et al., "RainForest: a holistic approach to ...", arXiv 1604.01378) partitions one
machine between a *supervisor* (the resource provider) and *sub-OS* instances (resource users), each a
Linux kernel on its own cores and memory, booted by the supervisor through a two-stage trampoline that
remaps its physical memory (``examples/rainforest.cfg``).  Supervisor and sub-OSes talk over FICM, a
fast inter-core channel: a shared-memory ring plus an IPI (here Popcorn's ring-plus-IPI code,
``kernels/channels.py``, the same mechanism).

Inits: the supervisor's boot core builds its resource table (one entry per core of the machine: which
sub-OS owns it) and its FICM rings, both in its own partition; a sub-OS's boot core parses its boot
information and attaches to its FICM ring (its descriptor line in its own partition).

Experiment ``tail``: a latency-critical service (a request is a small kernel path: take the zone lock
with interrupts off, pop a page, touch four shared kernel lines -- vm_stat counters, a socket hash
bucket, an inode, a dentry -- and write the page's struct page) shares the machine with a batch tenant
that hammers the kernel (page allocations and frees under the zone lock, page faults under the mm's
page_table_lock touching the same vm_stat lines, and TLB shootdown IPIs to every other CPU of its
kernel, waiting for their acknowledgements).  ``linux``: one shared kernel, so the service contends for
the batch's lock and lines and takes its shootdown IPIs.  ``rainforest``: the service and the batch run
in two sub-OSes: their kernel state is disjoint and no IPI crosses; the hardware (caches of a package,
memory controllers, interconnect) is still shared.  Requests arrive open-loop (seeded exponential
inter-arrival times) at a rising fraction of the service's unloaded capacity; rows give p50 and p99
latency and the throughput achieved.

Experiment ``resize``: the supervisor's run-time steps timed as programs on a running machine (two
sub-OSes idling in WFI, FICM = a command line + an IPI), each in its own partition (kernel 0 the
supervisor, 1 and 2 the sub-OSes, 3 the one created): *grow* (sub-OS A's core goes offline --
write-back of its caches, acknowledgement -- then INIT, ASSIGN to B with its per-cpu page (PART), and
SIPI through the boot trampoline, Linux's start-up waits, into sub-OS B, whose kernel onlines it),
*shrink* (B offlines a memory range page by page; PART shrinks B's partition and gives the range to
the supervisor, which scrubs it), *destroy* (INIT the sub-OS's cores, ASSIGN them and PART its memory
back to the supervisor, scrub) and *create* (reserve, copy the image in, PART the memory and ASSIGN the
core to the new sub-OS, INIT-SIPI its boot core).  The engine checks every access against the table
as it stands and refuses to move a running core; the supervisor retries an ASSIGN (#GP handler) until
the core has stopped.  Rows ``{"step", "cycles"}``.

Left out: the supervisor's elastic policy (when to resize); RainForest's own sub-OS kernel changes
beyond the partitioning; the FICM lines and the boot trampoline's data are one shared page set granted
to every sub-OS, not one page per sub-OS.
"""
from __future__ import annotations

import numpy as np

from boot import timeline as tl
from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import channels, microbench
from kernels.base import KernelInstance, kernel_area, minimal_init
from kernels.locks import spin_lock, spin_unlock
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

SYSTEMS = ("linux", "rainforest")
CODE = 0x10_0000                  # core c's program at CODE + c * 0x10000, its handler at +0x8000
STACK = 0x60_0000                 # interrupt stacks, 8 KiB a core
KERNEL = 0x80_0000                # kernel state of kernel k at KERNEL + k * KSTRIDE (+ its node's base)
KSTRIDE = 0x10_0000
ARRIVALS = 0x200_0000             # the service's arrival-time table
BATCH_PAGES = 0x300_0000          # the batch's pages (fault targets), 64 KiB a core
STOP = 0x1F0_0000                 # the service's "done" flag, its own line
VECTOR = 0xFD                     # INVALIDATE_TLB_VECTOR-like shootdown vector

# offsets inside one kernel's state
K_ZONE_LOCK, K_ZONE_COUNT, K_PTL, K_ACK, K_LINES, K_STACK, K_MEMMAP = 0, 64, 128, 192, 256, 0x1000, 0x8000
SHARED_LINES = 4                  # vm_stat counters, socket hash bucket, inode, dentry
FRAMES = 1024
SHOOTDOWN_EVERY = 4               # the batch's shootdown thread unmaps once every this many iterations

EV_LAT, EV_REQ = 0x600, 0x601
LOADS = (0.2, 0.4, 0.6, 0.8, 0.9)
WORK = 2000                       # a request's own processing (cycles): a workload parameter, not a fit
P99_LIMIT = 5.0                   # the table's tail limit: p99 within 5x the unloaded service time

# RainForest (arXiv 1604.01378, via the survey): 25-43 % more throughput than Linux under a tail limit.
PAPER_TAIL = {"throughput_gain": "25-43 %"}


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return load_machine(machine) if isinstance(machine, str) else machine


# ---------------------------------------------------------------------- inits and FICM
def rainforest_init(inst: KernelInstance, p: isa.Program) -> None:
    """Supervisor (command line ``role=supervisor``): the resource table and the FICM rings; a sub-OS:
    its boot information and its FICM descriptor.  All in the kernel's own partition."""
    r = inst.record
    minimal_init(inst, p)
    area = kernel_area(inst, 0x4000)
    if "role=supervisor" in r.cmdline.split():
        tl.begin(p, f"{r.name} resource table")
        for core in range(64):
            p.store(area + 8 * core, -1, comment="resource table: core not yet given to a sub-OS")
        for core in inst.cores:
            p.store(area + 8 * core, 0, comment="resource table: the supervisor's own core")
        tl.end(p, f"{r.name} resource table")
        tl.begin(p, f"{r.name} FICM rings")
        for ring in range(8):
            base = area + 0x1000 + ring * 0x400
            for off in (0, 64, 128):
                p.store(base + off, 0, comment="FICM ring: head, tail, interrupt-enable lines")
        tl.end(p, f"{r.name} FICM rings")
    else:
        tl.begin(p, f"{r.name} FICM attach")
        for off in (0, 64, 128):
            p.store(area + off, 0, comment="FICM: this sub-OS's ring descriptor")
        p.store(area + 192, inst.boot_core, comment="FICM: the core the supervisor IPIs")
        tl.end(p, f"{r.name} FICM attach")


def ficm_latency(cfg: MachineConfig, supervisor: int, subos: int, payload: int = 48) -> float:
    """One FICM message (shared-memory ring + IPI, Popcorn's ring code) from the supervisor's core to a
    sub-OS's core, in cycles: the receiver asleep and woken by the IPI."""
    return channels.latency(cfg, "popcorn-ipi", supervisor, subos, payload)


# ---------------------------------------------------------------------- the tail experiment
def _kbase(cfg: MachineConfig, kernel: int, core: int) -> int:
    return KERNEL + kernel * KSTRIDE + microbench.node_base(cfg, core // cfg.cores_per_package)


def _pop(p: isa.Program, k: int, out: str) -> None:
    p.load("r2", k + K_ZONE_COUNT, comment="__rmqueue: the zone's free list")
    p.sub("r2", "r2", 1)
    p.store(k + K_ZONE_COUNT, "r2")
    p.alu("shl", "r4", "r2", 3)
    p.load(out, k + K_STACK, base="r4")


def _push(p: isa.Program, k: int, val: str) -> None:
    p.load("r2", k + K_ZONE_COUNT, comment="__free_one_page: back on the zone's free list")
    p.alu("shl", "r4", "r2", 3)
    p.store(k + K_STACK, val, base="r4")
    p.add("r2", "r2", 1)
    p.store(k + K_ZONE_COUNT, "r2")


def _shared_lines(p: isa.Program, k: int, n: int, comment: str) -> None:
    for i in range(n):
        a = k + K_LINES + 64 * i
        p.load("r2", a, comment=comment)
        p.add("r2", "r2", 1)
        p.store(a, "r2")


def service_program(k: int, requests: int, work: int = 0) -> isa.Program:
    """The latency-critical service: for each request, wait for its arrival time (RDTSC), run the kernel
    path and ``work`` cycles of its own (user-level) processing, MARK its latency (completion minus
    arrival, queueing included)."""
    p = isa.Program("service")
    p.sti()
    p.movi("r0", 0)
    p.label("next")
    p.alu("shl", "r1", "r0", 3)
    p.load("r1", ARRIVALS, base="r1", comment="this request's arrival time")
    p.label("wait")
    p.rdtsc("r3")
    p.br("geu", "r3", "r1", "go")
    p.pause()
    p.jmp("wait")
    p.label("go")
    p.mark(EV_REQ, "r0")
    p.cli()
    spin_lock(p, k + K_ZONE_LOCK, "svc.zl")
    _pop(p, k, "r5")
    spin_unlock(p, k + K_ZONE_LOCK)
    p.sti()
    p.alu("shl", "r4", "r5", 6)
    p.store(k + K_MEMMAP, "r0", base="r4", comment="prep_new_page: struct page")
    _shared_lines(p, k, SHARED_LINES, "request: vm_stat / socket / inode / dentry lines")
    if work:
        p.compute(work, comment="the request's own processing")
    p.cli()
    spin_lock(p, k + K_ZONE_LOCK, "svc.zl2")
    _push(p, k, "r5")
    spin_unlock(p, k + K_ZONE_LOCK)
    p.sti()
    p.rdtsc("r3")
    p.sub("r3", "r3", "r1")
    p.mark(EV_LAT, "r3")
    p.add("r0", "r0", 1)
    p.br("lt", "r0", requests, "next")
    p.store(STOP, 1, comment="the service is done: the batch stops")
    p.halt()
    return p


def batch_program(k: int, core: int, targets: list[int], shooter: bool) -> isa.Program:
    """The batch tenant on ``core``: allocate a page (zone lock, IRQs off), fault it in (the mm's
    page_table_lock, vm_stat lines), free it; the ``shooter`` also unmaps every SHOOTDOWN_EVERY
    iterations: an IPI to each of ``targets`` and a wait for their acknowledgements."""
    p = isa.Program(f"batch{core}")
    pages = BATCH_PAGES + core * 0x1_0000
    p.sti()
    p.movi("r0", 0)
    p.label("loop")
    p.load("r1", STOP)
    p.br("ne", "r1", 0, "done")
    p.cli()
    spin_lock(p, k + K_ZONE_LOCK, "b.zl")
    _pop(p, k, "r5")
    spin_unlock(p, k + K_ZONE_LOCK)
    p.sti()
    spin_lock(p, k + K_PTL, "b.ptl", comment="handle_mm_fault: spin_lock(&mm->page_table_lock)")
    p.alu("and", "r3", "r0", 63)
    p.alu("shl", "r3", "r3", 6)
    p.store(pages, "r5", base="r3", comment="set_pte_at + the first touch of the page")
    _shared_lines(p, k, 1, "vm_stat: NR_ANON_PAGES")
    spin_unlock(p, k + K_PTL)
    p.cli()
    spin_lock(p, k + K_ZONE_LOCK, "b.zl2")
    _push(p, k, "r5")
    spin_unlock(p, k + K_ZONE_LOCK)
    p.sti()
    if shooter and targets:
        p.alu("and", "r3", "r0", SHOOTDOWN_EVERY - 1)
        p.br("ne", "r3", 0, "noshoot")
        p.load("r1", k + K_ACK, comment="flush_tlb_others: acks so far")
        p.add("r1", "r1", len(targets))
        for t in targets:
            p.ipi(t, VECTOR, comment=f"flush_tlb_others: IPI CPU {t}")
        p.label("waitack")
        p.load("r3", k + K_ACK)
        p.br("ge", "r3", "r1", "noshoot")
        p.load("r3", STOP)
        p.br("ne", "r3", 0, "done")
        p.pause()
        p.jmp("waitack")
        p.label("noshoot")
    p.add("r0", "r0", 1)
    p.jmp("loop")
    p.label("done")
    p.halt()
    return p


def shootdown_handler(k: int) -> isa.Program:
    """smp_invalidate_interrupt: INVLPG the page, acknowledge (a locked add), EOI.  Saves what it uses."""
    h = isa.Program("invalidate-interrupt")
    h.sub("sp", "sp", 8)
    h.store(0, "r5", base="sp")
    h.invlpg(BATCH_PAGES, comment="flush the unmapped page's TLB entry")
    h.fadd("r5", k + K_ACK, 1, comment="ack the initiator")
    h.eoi()
    h.load("r5", 0, base="sp")
    h.add("sp", "sp", 8)
    h.iret()
    return h


def arrivals(requests: int, interval: float, seed: int = 1, start: int = 20_000) -> np.ndarray:
    """Open-loop arrival times: seeded exponential inter-arrival gaps of mean ``interval`` cycles."""
    rng = np.random.default_rng(seed)
    return (start + np.cumsum(rng.exponential(interval, requests))).astype(np.int64)


def run_tail(cfg: MachineConfig, system: str, batch_cores: int, requests: int, interval: float,
             work: int = 0) -> np.ndarray:
    """Latencies (cycles) of ``requests`` service requests on core 0 with the batch on cores
    1..batch_cores, under one shared kernel (``linux``) or two sub-OSes (``rainforest``)."""
    if system not in SYSTEMS:
        raise MksimError(f"tail system {system!r}: must be one of {', '.join(SYSTEMS)}")
    if not 0 <= batch_cores < cfg.cores:
        raise MksimError(f"tail: {batch_cores} batch cores on {cfg.name} ({cfg.cores} cores, one is the service's)")
    if requests < 1 or interval <= 0 or work < 0:
        raise MksimError(f"tail: requests {requests} and interval {interval} must be positive, work {work} >= 0")
    m = Machine(cfg)
    w = m.workload()
    batch = list(range(1, batch_cores + 1))
    ksvc = _kbase(cfg, 0, 0)
    kbat = ksvc if system == "linux" else _kbase(cfg, 1, batch[0] if batch else 0)
    for k in {ksvc, kbat}:
        w.write(k + K_ZONE_COUNT, FRAMES.to_bytes(8, "little"))
        w.write(k + K_STACK, np.arange(FRAMES, dtype=np.int64).tobytes())
    w.write(ARRIVALS, arrivals(requests, interval).tobytes())
    kernel_cores = [0] + batch if system == "linux" else batch
    for c in [0] + batch:
        w.set_reg(c, "sp", STACK + 0x2000 * (c + 1))
        w.set_handler(c, VECTOR, w.place(shootdown_handler(ksvc if c == 0 else kbat),
                                         CODE + c * 0x10000 + 0x8000).pc())
    w.start(0, w.place(service_program(ksvc, requests, work), CODE).pc())
    for c in batch:
        targets = [t for t in kernel_cores if t != c]
        w.start(c, w.place(batch_program(kbat, c, targets, c == batch[-1]), CODE + c * 0x10000).pc())
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise MksimError(f"tail {system} on {cfg.name} ended {status}: {m.waits()}")
    t = m.timeline()
    lat = t[(t[:, 0] == 0) & (t[:, 2] == EV_LAT)][:, 3]
    if len(lat) != requests:
        raise MksimError(f"tail {system}: {len(lat)} of {requests} requests completed")
    return lat


def service_time(cfg: MachineConfig, work: int = 0) -> float:
    """The unloaded service time (cycles): the median latency with no batch and sparse arrivals."""
    return float(np.median(run_tail(cfg, "rainforest", 0, 40, 20_000 + 10 * work, work)))


def tail_rows(machine: str | MachineConfig, batch_cores: int | None = None, requests: int = 200,
              loads: tuple[float, ...] = LOADS, work: int = WORK) -> list[dict]:
    """Rows {"system", "load", "p50", "p99", "throughput"}: latencies in cycles, throughput in requests
    per million cycles, at each load (offered rate as a fraction of the unloaded capacity)."""
    cfg = _cfg(machine)
    if requests < 1:
        raise MksimError(f"tail bench: requests {requests}: must be >= 1")
    nb = cfg.cores - 1 if batch_cores is None else batch_cores
    s0 = service_time(cfg, work)
    rows = []
    for load in loads:
        if not 0 < load:
            raise MksimError(f"tail load {load}: must be > 0")
        interval = s0 / load
        span = float(arrivals(requests, interval)[-1] - arrivals(requests, interval)[0])
        for system in SYSTEMS:
            lat = run_tail(cfg, system, nb, requests, interval, work)
            rows.append({"system": system, "load": load, "p50": float(np.percentile(lat, 50)),
                         "p99": float(np.percentile(lat, 99)),
                         "throughput": round(1e6 * requests / (span + float(lat[-1])), 1)})
    return rows


def _table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"Latency-critical service beside a kernel-heavy batch tenant on {cfg.name} (cycles)",
           f"{'load':>5} {'system':<11} {'p50':>9} {'p99':>9} {'req/Mcycle':>11}"]
    for r in rows:
        out.append(f"{r['load']:>5} {r['system']:<11} {r['p50']:>9.0f} {r['p99']:>9.0f} {r['throughput']:>11}")
    base = min(r["p50"] for r in rows)
    limit = P99_LIMIT * base
    best = {s: max([r["throughput"] for r in rows if r["system"] == s and r["p99"] <= limit], default=0.0)
            for s in SYSTEMS}
    out.append(f"throughput with p99 <= {limit:.0f} cycles ({P99_LIMIT:g}x the best p50): "
               + ", ".join(f"{s} {v}" for s, v in best.items())
               + f"; published (RainForest): {PAPER_TAIL['throughput_gain']} more than Linux")
    return "\n".join(out)


def _plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s, (ls, mk) in zip(SYSTEMS, (("-", "o"), ("--", "s"))):
        pts = sorted((r["load"], r["p99"], r["p50"]) for r in rows if r["system"] == s)
        (line,) = ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], linestyle=ls, marker=mk,
                          label=f"{s} p99")
        ax.plot([x for x, _, _ in pts], [z for _, _, z in pts], linestyle=":", marker=mk, alpha=0.6,
                color=line.get_color(), label=f"{s} p50")
    ax.set_xlabel("offered load (fraction of the unloaded service capacity)")
    ax.set_ylabel("request latency (cycles)")
    ax.set_yscale("log")
    ax.set_title(f"Service tail latency beside a batch tenant on {cfg.name}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    x = opts.extra
    nb = x.get("batch_cores")
    req = x.get("requests")
    return tail_rows(cfg, None if nb is None else int(nb), 200 if req is None else int(req),
                     work=int(x.get("work") if x.get("work") is not None else WORK))


TAIL = Experiment(
    name="tail",
    summary="A latency-critical service beside a kernel-heavy batch tenant: one shared Linux kernel vs "
            "two isolated RainForest sub-OSes, p50/p99 at rising load",
    keys=("system", "load", "p50", "p99", "throughput"),
    rows=_rows, table=_table, plot=_plot, sweeps_cores=False,
    options=(BenchOption("--batch-cores", "cores of the batch tenant (default: all but the service's)",
                         None, None, int),
             BenchOption("--requests", "service requests per point", None, 200, int),
             BenchOption("--work", "the request's own (user-level) cycles beside its kernel path", None, WORK, int)))


# ---------------------------------------------------------------------- resize (timed steps)
FICM_VECTOR = 0xF3                # the FICM notification vector
MBOX = 0x90_0000                  # FICM command word of core c at MBOX + 64 c (written by the supervisor)
ACK = 0x91_0000                   # core c's acknowledgement at ACK + 64 c
TABLE = 0x92_0000                 # the supervisor's resource table: owner of core c at TABLE + 8 c
PERCPU = 0xA0_0000                # per-cpu areas, 4 KiB a core
SUBOS_MEM = 0x100_0000            # sub-OS memory ranges (scrubbed / loaded), 16 MiB apart
SUPERVISOR_IMAGES = 0x400_0000    # the supervisor's copy of a sub-OS image
CMD_OFFLINE, CMD_ADD_CPU, CMD_REMOVE_MEM = 1, 2, 3
PERCPU_LINES = 8                  # per-cpu area lines a core's bring-up writes (assumption: runqueue, timers...)
START_VECTOR = 0x08               # the start-up page of the resize trampoline
RESIZE_STEPS = ("create", "destroy", "grow", "shrink")
EV_STEP, EV_STEP_END = 0x610, 0x611
SUP, SUB_A, SUB_B, SUB_C = 0, 1, 2, 3        # kernels: the supervisor, sub-OS A, sub-OS B, the created one
SUBOS_SPAN = 0x80_0000            # each sub-OS's memory: A at SUBOS_MEM, B right after it (8 MiB each)
ONLINE_MASK = PERCPU + 0x100_000 - 64      # sub-OS B's online mask (its own page)
RETRY_CAP = 100_000               # supervisor #GP retries before it gives up (a bug, not a slow core)
RETRIES = 0x93_0000               # the supervisor's retry counter


def _percpu_init(p: isa.Program) -> None:
    """A core's bring-up in its (new) kernel: its per-cpu area (r1 = its id, from the trampoline)."""
    p.alu("shl", "r3", "r1", 12)
    for i in range(PERCPU_LINES):
        p.store(PERCPU + 64 * i, "r1", base="r3", comment="per-cpu area: runqueue, timer base, ...")


def subos_core(core: int, remove_pages: int) -> isa.Program:
    """A sub-OS core idling in WFI; a FICM IPI wakes it to take the supervisor's command: go offline
    (write back its caches, acknowledge, stop), online a moved-in core (the boot core: set it in the
    online mask), or offline a memory range (mark each page's struct page reserved)."""
    p = isa.Program(f"subos-core{core}")
    box, ack = MBOX + 64 * core, ACK + 64 * core
    p.label("idle")
    p.sti()
    p.wfi(comment="idle until a FICM notification")
    p.load("r1", box, comment="FICM: the supervisor's command")
    p.br("eq", "r1", 0, "idle")
    p.store(box, 0)
    p.br("ne", "r1", CMD_OFFLINE, "notoff")
    p.cli()
    p.wbinvd(comment="cpu_down: write back this core's caches before it leaves the sub-OS")
    p.store(ack, 1, comment="FICM: offline")
    p.halt()
    p.label("notoff")
    p.br("ne", "r1", CMD_ADD_CPU, "notadd")
    p.fadd("r2", ONLINE_MASK, 1, comment="set_cpu_online: the sub-OS's online mask")
    p.store(ack, 1, comment="FICM: the core is online here")
    p.jmp("idle")
    p.label("notadd")
    p.movi("r2", 0)
    p.label("offl")
    p.alu("shl", "r3", "r2", 6)
    p.store(SUBOS_MEM + SUBOS_SPAN, 1, base="r3", comment="offline_pages: SetPageReserved")
    p.add("r2", "r2", 1)
    p.br("lt", "r2", remove_pages, "offl")
    p.store(ack, 1, comment="FICM: range offline")
    p.jmp("idle")
    return p


def _ficm_call(p: isa.Program, core: int, cmd: int) -> None:
    """Supervisor -> sub-OS core: the command in its FICM line, an IPI, wait for the acknowledgement."""
    p.store(ACK + 64 * core, 0)
    p.store(MBOX + 64 * core, cmd, comment="FICM: command")
    p.ipi(core, FICM_VECTOR, comment="FICM: notify")
    p.spin_until(ACK + 64 * core, "eq", 1, rd="r2", comment="FICM: wait for the acknowledgement")


def _scrub(p: isa.Program, base: int, kib: int, tag: str) -> None:
    """Zero ``kib`` KiB from ``base``, one store per 8 bytes (clear_page)."""
    p.movi("r2", 0)
    p.label(tag)
    p.store(base, 0, base="r2", comment="scrub: clear_page")
    p.add("r2", "r2", 8)
    p.br("lt", "r2", kib * 1024, tag)


def _start_core(p: isa.Program, cfg: MachineConfig, core: int, table: int) -> None:
    from boot import smp
    smp.emit_start(p, cfg, table, 1, START_VECTOR, smp.VARIANTS["linux"])




def _pages(lo: int, n: int) -> tuple[int, int]:
    """[lo, hi) of ``n`` bytes from ``lo``, rounded out to whole pages."""
    return lo & ~0xFFF, (lo + n + 0xFFF) & ~0xFFF


def _retry_handler() -> isa.Program:
    """The supervisor's #GP handler: an ASSIGN that found the core not stopped yet (its INIT still on the
    way, or it has not halted) faults ``repartition``; retry it after a PAUSE, as a control CPU polls a
    dying CPU's state (Linux cpu_wait_death).  Past RETRY_CAP retries the supervisor stops."""
    h = isa.Program("supervisor-gp")
    h.fadd("r9", RETRIES, 1)
    h.br("geu", "r9", RETRY_CAP, "stop")
    h.pause(comment="the core is not stopped yet: wait, then retry the faulting op")
    h.iret()
    h.label("stop")
    h.halt()
    return h


def supervisor_program(cfg: MachineConfig, a: list[int], b: list[int], image_kib: int, scrub_kib: int,
                       tables: dict, slots: dict) -> isa.Program:
    """The supervisor's run: grow B by A's last core, shrink B by a memory range, destroy A, create a
    new sub-OS on A's first core.  Each step between EV_STEP / EV_STEP_END marks; every change of
    ownership goes through the checked partition table (PART) and core assignment (ASSIGN)."""
    p = isa.Program("supervisor")
    mover, b_boot, a_core = a[-1], b[0], a[0]
    scrub = scrub_kib * 1024
    a_lo, b_lo = SUBOS_MEM, SUBOS_MEM + SUBOS_SPAN

    def step(i: int, begin: bool) -> None:
        p.mark(EV_STEP if begin else EV_STEP_END, i)

    def percpu(c: int, kernel: int) -> None:
        lo = PERCPU + (c << 12)
        p.part(slots[("percpu", c)], lo, lo + 0x1000, kernel, comment=f"partition: core {c}'s per-cpu page")
    # grow: take `mover` offline in A, move it and its per-cpu page to B, INIT-SIPI it into B
    step(2, True)
    _ficm_call(p, mover, CMD_OFFLINE)
    p.ipi(mover, 0, mode="init", comment="INIT: the offline core waits for SIPI")
    p.assign(mover, SUB_B, comment="the core is B's (retried until it has stopped)")
    percpu(mover, SUB_B)
    _start_core(p, cfg, mover, tables[mover])
    _ficm_call(p, b_boot, CMD_ADD_CPU)
    p.store(TABLE + 8 * mover, SUB_B, comment="resource table: the core is B's")
    step(2, False)
    # shrink: B offlines a memory range, the supervisor takes it back (partition table), scrubs it
    step(3, True)
    _ficm_call(p, b_boot, CMD_REMOVE_MEM)
    p.part(slots["B"], b_lo + scrub, b_lo + SUBOS_SPAN, SUB_B, comment="partition: B without the range")
    p.part(slots["free"], b_lo, b_lo + scrub, SUP, comment="partition: the range is the supervisor's")
    _scrub(p, b_lo, scrub_kib, "scrub.shrink")
    p.store(TABLE + 0x400, 0, comment="resource table: the range is free")
    step(3, False)
    # destroy A: INIT its cores, reclaim them and its memory, scrub it
    step(1, True)
    for c in a[:-1]:
        p.ipi(c, 0, mode="init", comment="destroy: INIT stops the sub-OS's core")
    for c in a[:-1]:
        p.assign(c, SUP, comment="destroy: the core returns to the supervisor (retried until stopped)")
        percpu(c, SUP)
    p.part(slots["A"], a_lo, a_lo + SUBOS_SPAN, SUP, comment="partition: A's memory is the supervisor's")
    _scrub(p, a_lo, scrub_kib, "scrub.destroy")
    for c in a[:-1]:
        p.store(TABLE + 8 * c, -1, comment="resource table: core free")
    step(1, False)
    # create: reserve, load the image, hand core and memory to the new sub-OS, INIT-SIPI its boot core
    step(0, True)
    p.store(TABLE + 8 * a_core, SUB_C, comment="resource table: reserve the core for the new sub-OS")
    p.movi("r2", 0)
    p.label("load")
    p.load("r3", SUPERVISOR_IMAGES, base="r2", comment="load: copy the sub-OS image")
    p.store(SUBOS_MEM, "r3", base="r2")
    p.add("r2", "r2", 8)
    p.br("lt", "r2", image_kib * 1024, "load")
    p.part(slots["A"], a_lo, a_lo + SUBOS_SPAN, SUB_C, comment="partition: the memory is the new sub-OS's")
    p.assign(a_core, SUB_C, comment="the core is the new sub-OS's")
    percpu(a_core, SUB_C)
    _start_core(p, cfg, a_core, tables[a_core])
    step(0, False)
    for c in b:
        _ficm_call(p, c, CMD_OFFLINE)             # end of the run (untimed): stop B's cores
    p.halt()
    return p


def partition_machine(w, cfg: MachineConfig, a: list[int], b: list[int], image_kib: int) -> dict:
    """Kernels and partitions of the resize run: the supervisor (kernel 0) owns its table, images and the
    trampoline's data (granted to the sub-OSes, as the boot protocol's shared pages); A and B own their
    memory and their cores' per-cpu pages; the FICM lines are the supervisor's, granted to each sub-OS.
    Returns the slots PART names."""
    from boot import smp
    w.supervise(SUP)
    w.assign(0, SUP)
    for c in a:
        w.assign(c, SUB_A)
    for c in b:
        w.assign(c, SUB_B)
    slots = {}

    def region(key, owner: int, lo: int, hi: int) -> None:
        w.partition(owner, lo, hi)
        slots[key] = len(w.regions) - 1
    region("A", SUB_A, SUBOS_MEM, SUBOS_MEM + SUBOS_SPAN)
    region("B", SUB_B, SUBOS_MEM + SUBOS_SPAN, SUBOS_MEM + 2 * SUBOS_SPAN)
    for c in range(1, cfg.cores):
        region(("percpu", c), SUB_A if c in a else SUB_B, PERCPU + (c << 12), PERCPU + (c << 12) + 0x1000)
    region("online", SUB_B, *_pages(ONLINE_MASK, 64))
    region("table", SUP, *_pages(TABLE, 0x408))
    region("retries", SUP, *_pages(RETRIES, 8))
    region("images", SUP, *_pages(SUPERVISOR_IMAGES, image_kib * 1024))
    shared = [_pages(MBOX, 64 * cfg.cores), _pages(ACK, 64 * cfg.cores), (smp.MAILBOX, smp.TRAMP_PT[1]),
              _pages(smp.AP_TABLE, 64 * 2)]
    for i, (lo, hi) in enumerate(shared):
        region(("shared", i), SUP, lo, hi)
        for k in (SUB_A, SUB_B, SUB_C):
            w.grant(k, lo, hi)
    slots["free"] = w.reserve_partitions(1)[0]
    return slots


def resize_rows(machine: str | MachineConfig, image_kib: int = 64, scrub_kib: int = 64) -> list[dict]:
    """Rows {"step", "cycles"}: create, destroy, grow, shrink, each timed on the supervisor's core.  Every
    core runs in its kernel's partition; the supervisor moves cores (ASSIGN) and memory (PART) at run
    time and the engine checks each access against the table as it stands."""
    return run_resize(machine, image_kib, scrub_kib)[1]


def run_resize(machine: str | MachineConfig, image_kib: int = 64, scrub_kib: int = 64) -> tuple[Machine, list[dict]]:
    """The resize run: (the machine after it, its rows) (``resize_rows``)."""
    from boot import smp
    cfg = _cfg(machine)
    if cfg.cores < 4:
        raise MksimError(f"resize bench: needs 4 cores (supervisor, two for sub-OS A, one for B); {cfg.name} "
                         f"has {cfg.cores}")
    if image_kib < 1 or scrub_kib < 1:
        raise MksimError(f"resize bench: image {image_kib} KiB and scrub {scrub_kib} KiB must be >= 1")
    if scrub_kib % 4 or scrub_kib * 1024 >= SUBOS_SPAN or image_kib * 1024 > SUBOS_SPAN:
        raise MksimError(f"resize bench: scrub {scrub_kib} KiB must be whole pages below "
                         f"{SUBOS_SPAN >> 10} KiB, image {image_kib} KiB at most {SUBOS_SPAN >> 10} KiB")
    half = cfg.cores // 2
    a, b = list(range(1, 1 + half)), list(range(1 + half, cfg.cores))      # sub-OS A, sub-OS B
    m = Machine(cfg)
    w = m.workload()
    smp.write_trampoline_data(w)
    w.place(smp.trampoline(cfg, START_VECTOR, _percpu_init), START_VECTOR << 12)
    tables = {}
    for i, c in enumerate((a[-1], a[0])):
        tables[c] = smp.AP_TABLE + 64 * i
        w.write(tables[c], smp.core_table([c]))
    slots = partition_machine(w, cfg, a, b, image_kib)
    remove_pages = scrub_kib // 4
    for c in a + b:
        w.set_handler(c, FICM_VECTOR, w.place(_ficm_handler(), CODE + c * 0x10000 + 0x8000).pc())
        w.start(c, w.place(subos_core(c, remove_pages), CODE + c * 0x10000).pc())
    w.set_handler(0, 13, w.place(_retry_handler(), CODE + 0x8000).pc())
    w.start(0, w.place(supervisor_program(cfg, a, b, image_kib, scrub_kib, tables, slots), CODE).pc())
    m.load_workload(w)
    status = m.execute()
    bad = [f for f in m.fault_report() if not (f["core"] == 0 and f["kind"] == "repartition")]
    if status != "done" or bad:
        raise MksimError(f"resize on {cfg.name} ended {status}, faults {bad[:4]}: {m.waits()}")
    t = m.timeline()
    rows = []
    for i, name in enumerate(RESIZE_STEPS):
        b0 = t[(t[:, 0] == 0) & (t[:, 2] == EV_STEP) & (t[:, 3] == i)]
        b1 = t[(t[:, 0] == 0) & (t[:, 2] == EV_STEP_END) & (t[:, 3] == i)]
        if not len(b0) or not len(b1):
            raise MksimError(f"resize on {cfg.name}: step {name} never finished (faults {m.fault_report()[:4]})")
        rows.append({"step": name, "cycles": int(b1[0, 1] - b0[0, 1])})
    return m, rows


def _ficm_handler() -> isa.Program:
    h = isa.Program("ficm-irq")
    h.eoi(comment="FICM notification: the idle loop reads the command")
    h.iret()
    return h


def _resize_table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"RainForest resize steps on {cfg.name} (cycles; supervisor-side time, partition table and core "
           "assignment changed at run time, every access checked)", f"{'step':<9} {'cycles':>10} {'us':>9}"]
    for r in rows:
        out.append(f"{r['step']:<9} {r['cycles']:>10} {cfg.ns(r['cycles']) / 1000:>9.1f}")
    return "\n".join(out)


def _resize_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([r["step"] for r in rows], [cfg.ns(r["cycles"]) / 1000 for r in rows], color="tab:blue",
           label="supervisor-side time")
    ax.set_xlabel("step")
    ax.set_ylabel("time (us)")
    ax.set_title(f"RainForest resize steps on {cfg.name}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _resize_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    x = opts.extra
    return resize_rows(cfg, 64 if x.get("image_kib") is None else int(x["image_kib"]),
                       64 if x.get("scrub_kib") is None else int(x["scrub_kib"]))


RESIZE = Experiment(
    name="resize",
    summary="RainForest's create / destroy / grow / shrink steps timed as supervisor and sub-OS programs "
            "(FICM calls, INIT-SIPI, checked partition-table and core-assignment changes, scrub, load)",
    keys=("step", "cycles"),
    rows=_resize_rows, table=_resize_table, plot=_resize_plot, sweeps_cores=False,
    options=(BenchOption("--image-kib", "sub-OS image size to load (KiB)", None, 64, int),
             BenchOption("--scrub-kib", "memory scrubbed at destroy and at shrink (KiB)", None, 64, int)))


PERSONALITY = Personality(
    name="rainforest",
    summary="RainForest: a supervisor and isolated sub-OSes (own cores, memory, kernel state), booted by "
            "the two-stage trampoline, FICM (ring + IPI) between them",
    boot="any",
    init=rainforest_init,
    experiments=(TAIL, RESIZE),
)
