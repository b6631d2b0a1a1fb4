"""The Linux multikernel RFC (2025): kexec-loaded kernel instances, each on its CPU set and memory
(``KEXEC_MULTIKERNEL | KEXEC_MK_ID(n)``), talking over a per-instance message ring and an IPI vector.

Boot (``examples/linux-multikernel.cfg``): instance 0 boots by GRUB and kexecs the others. Each
instance runs Linux's early init (``kernels.linux.linux_early``, the steps of
``kernels.linux.linux_init``), sets up its own ring, and announces itself on instance 0's
announcement ring below 1 MiB with the ring's own protocol (claim a slot by CAS on the head, write
the message, release-store its size). The model sends no IPI at boot: the host drains the
announcements when it first handles its vector.

Benches (registered here, as the comparisons the RFC's reviewers asked for):

* ``channels``: one-way latency and throughput of every inter-kernel channel of the personalities
  (``kernels.channels``: URPC, Popcorn's ``pcn_kmsg``, the RFC ring and its doorbell, Twin-Linux's
  shared page; polled and IPI variants) against payload size and path;
* ``split``: a kernel-bound operation with one globally contended kernel line (a ticket-locked
  directory line, like will-it-scale's ``unlink1`` on a shared dentry) on one kernel over N cores
  versus k instances of N/k cores, each with its own copy of the line.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import asm, isa
from hwmodel.config import MachineConfig
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import channels, microbench, plots
from kernels.base import KernelInstance
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality
from kernels.linux import linux_early

LINE = 64
MK_ANNOUNCE = 0x6C000        # below 1 MiB (Popcorn's table at 0x6B000, Twin-Linux's page at 0x6D000):
                             # +0 head, +64 tail, one-line slots from +128 (size word, then the message)
ANNOUNCE_SLOTS = 32         # a power of two: 128 + 32 x 64 bytes stay below 0x6D000


def mk_init(inst: KernelInstance, p: isa.Program) -> None:
    """Linux's early init, then the instance's ring and its announcement on instance 0's ring."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    ring = linux_early(inst, p) + 0x1000
    tl.begin(p, f"{r.name} mk ring")
    p.store(ring, 0, comment="mk: head = 0")
    p.store(ring + LINE, 0, comment="mk: tail = 0")
    tl.end(p, f"{r.name} mk ring")
    tl.begin(p, f"{r.name} announce")
    top = f"{r.name}.announce"
    p.label(top)
    p.load("r2", MK_ANNOUNCE, comment="mk: head of instance 0's ring")
    p.add("r4", "r2", 1)
    p.cas("r1", MK_ANNOUNCE, "r2", "r4", comment="mk: claim a slot (cmpxchg)")
    p.br("ne", "r1", "r2", top)
    p.alu("and", "r1", "r1", ANNOUNCE_SLOTS - 1)
    p.alu("shl", "r1", "r1", 6)
    p.store(MK_ANNOUNCE + 2 * LINE + 8, inst.kernel_id, base="r1", comment="mk: message: our id")
    p.store(MK_ANNOUNCE + 2 * LINE + 16, ring, base="r1", comment="mk: message: our ring")
    p.store(MK_ANNOUNCE + 2 * LINE, 16, base="r1", comment="mk: smp_store_release(&slot->size)")
    tl.end(p, f"{r.name} announce")
    tl.end(p, f"{r.name} init")


# ---------------------------------------------------------------------- channels bench
PAYLOADS = (8, 64, 512, 4096)


def channel_paths(cfg: MachineConfig) -> list[microbench.Path]:
    """The path kinds from core 0 that stay inside its coherence domain (the channels here need
    coherence: across domains only Popcorn's non-coherent ring runs, in the migrate bench)."""
    return [pk for pk in microbench.path_kinds(cfg) if cfg.domain(pk.b) == cfg.domain(pk.a)]


def channel_rows(cfg: MachineConfig, payloads=PAYLOADS, chans=channels.CHANNELS) -> list[dict]:
    """Rows ``{"channel", "path", "payload", "latency_cycles", "msgs_per_kcycle"}``."""
    rows = []
    for pk in channel_paths(cfg):
        for ch in chans:
            for pl in ((0,) if ch.endswith("doorbell") else payloads):
                rows.append({"channel": ch, "path": pk.name, "payload": pl,
                             "latency_cycles": round(channels.latency(cfg, ch, pk.a, pk.b, pl), 1),
                             "msgs_per_kcycle": round(channels.throughput(cfg, ch, pk.a, pk.b, pl), 3)})
    return rows


def _channel_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    top = opts.extra.get("max_payload")
    pls = PAYLOADS if top is None else tuple(x for x in PAYLOADS if x <= top)
    if not pls:
        raise MksimError(f"--max-payload {top}: no payload size left (sizes: {', '.join(map(str, PAYLOADS))})")
    return channel_rows(cfg, pls)


def _channel_table(rows: list[dict], cfg: MachineConfig) -> str:
    pls = sorted({r["payload"] for r in rows if r["payload"]})
    out = [f"Inter-kernel channels on {cfg.name}: one-way latency (cycles) | stream throughput (msgs/kcycle)"]
    for path in dict.fromkeys(r["path"] for r in rows):
        out.append(f"path: {path}")
        out.append(f"  {'channel':<21}" + "".join(f"{str(p) + ' B':>9}" for p in pls) + "  |"
                   + "".join(f"{str(p) + ' B':>9}" for p in pls))
        for ch in dict.fromkeys(r["channel"] for r in rows):
            by = {r["payload"]: r for r in rows if r["path"] == path and r["channel"] == ch}
            cols = pls if 0 not in by else [0]
            lat = "".join(f"{by[p]['latency_cycles']:>9.0f}" if p in by else f"{'':>9}" for p in cols)
            tput = "".join(f"{by[p]['msgs_per_kcycle']:>9.3f}" if p in by else f"{'':>9}" for p in cols)
            if cols == [0]:
                lat, tput = f"{lat:<{9 * len(pls)}}", f"{tput}  (no payload)"
            out.append(f"  {ch:<21}{lat}  |{tput}")
    out.append("latency: sender's first instruction to the receiver's copy done, one message at a time; "
               "throughput: a one-way stream (doorbell: one at a time, coalesced IPIs carry no count)")
    return "\n".join(out)


def _channel_plot(rows: list[dict], cfg: MachineConfig, plt):
    path = rows[0]["path"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, ch in enumerate(dict.fromkeys(r["channel"] for r in rows if r["payload"])):
        pts = sorted((r["payload"], r["latency_cycles"]) for r in rows if r["channel"] == ch and r["path"] == path)
        ls, mk = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ("-", "v"), ("--", "x"), ("-.", "*")][i % 7]
        ax.plot([x for x, _ in pts], [y for _, y in pts], linestyle=ls, marker=mk, label=ch)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return plots.finish(fig, ax, "payload (bytes)", "one-way latency (cycles)", f"Inter-kernel channels on {cfg.name}, path: {path}")


CHANNELS = Experiment(
    name="channels",
    summary="One-way latency and throughput of every inter-kernel channel (URPC, Popcorn, the multikernel "
            "RFC ring, Twin-Linux), polled and IPI-notified, vs payload and path",
    keys=("channel", "path", "payload", "latency_cycles", "msgs_per_kcycle"),
    rows=_channel_rows, table=_channel_table, plot=_channel_plot, sweeps_cores=False,
    options=(BenchOption("--max-payload", "largest payload, bytes (default 4096)", type=int),))


# ---------------------------------------------------------------------- split bench
SPLIT_OPS, SPLIT_WARM = 24, 6      # operations per core, of which the first are warm-up
PRIVATE_LINES = 16                 # lines an operation touches besides the contended one (assumption)
EV_SPLIT_START, EV_SPLIT_END = 0x430, 0x431
SPLIT_LOCK = 0xB0_0000             # the contended line of each instance (ticket lock + data), its node
SPLIT_PRIV = 0xC0_0000             # each core's private lines


def instance_counts(cfg: MachineConfig, cores: int) -> list[int]:
    """k = 1, 2, 4, ... up to the packages, each k dividing ``cores``."""
    out, k = [], 1
    while k <= cfg.packages and cores % k == 0:
        out.append(k)
        k *= 2
    return out


def instance_cores(cfg: MachineConfig, k: int, cores: int) -> list[list[int]]:
    """The cores of each of k instances: instance i on the i-th k-th of the machine (a group of whole
    packages), its first ``cores // k`` cores."""
    per = cores // k
    span = cfg.cores // k
    if per > span:
        raise MksimError(f"{k} instances of {per} cores do not fit on {cfg.name}")
    return [[i * span + j for j in range(per)] for i in range(k)]


def split_program(cfg: MachineConfig, core: int, lock: int) -> isa.Program:
    """One core's loop of kernel operations: touch its private lines, take its instance's lock, update
    the contended line (the directory entry the lock protects, in the same line), unlock."""
    k = asm.Kernel(f"split-core{core}")
    priv = SPLIT_PRIV + microbench.node_base(cfg, core // cfg.cores_per_package) + core * 0x2000
    i, t = k.local("i"), k.local("t")
    with k.for_range(i, 0, SPLIT_OPS):
        with k.if_(i, "==", SPLIT_WARM):
            k.mark(EV_SPLIT_START)
        for j in range(PRIVATE_LINES):
            k.load(t, priv + j * LINE, comment="the operation's own lines (inode, file, ...)" if j == 0 else "")
            k.add(t, t, 1)
            k.store(priv + j * LINE, t)
        asm.ticket_lock(k, lock, wait="spin")
        k.load(t, lock, off=16, comment="the contended line: the parent directory's entry")
        k.add(t, t, 1)
        k.store(lock, t, off=16)
        asm.ticket_unlock(k, lock)
    k.mark(EV_SPLIT_END)
    k.halt()
    return k.program()


def split_throughput(cfg: MachineConfig, k: int, cores: int) -> float:
    """Operations per kilocycle of ``cores`` cores split into k instances (measured ops of all cores
    over the window from the first core's start to the last core's end)."""
    groups = instance_cores(cfg, k, cores)
    m = Machine(cfg)
    w = m.workload()
    for grp in groups:
        lock = SPLIT_LOCK + microbench.node_base(cfg, grp[0] // cfg.cores_per_package) + grp[0] * LINE
        for c in grp:
            w.start(c, w.place(split_program(cfg, c, lock), channels.CODE + c * 0x10000).pc())
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise RuntimeError(f"split bench on {cfg.name}, {k} instances x {cores // k} cores: ended {status}")
    t = m.timeline()
    start = t[t[:, 2] == EV_SPLIT_START][:, 1].min()
    end = t[t[:, 2] == EV_SPLIT_END][:, 1].max()
    return 1000.0 * cores * (SPLIT_OPS - SPLIT_WARM) / float(end - start)


def core_counts(cfg: MachineConfig, top: int, k: int) -> list[int]:
    """k, 2k, 4k, ... up to ``top`` (and ``top`` itself when it is a multiple of k)."""
    out, n = [], k
    while n <= top:
        out.append(n)
        n *= 2
    if top % k == 0 and top not in out:
        out.append(top)
    return out


def split_rows(cfg: MachineConfig, max_cores: int | None = None) -> list[dict]:
    """Rows ``{"instances", "cores", "ops_per_kcycle"}`` for every k and core count."""
    if cfg.ndomains != 1:
        raise MksimError(f"split: {cfg.name} has {cfg.ndomains} coherence domains; one Linux kernel needs one")
    top = min(max_cores or cfg.cores, cfg.cores)
    rows = []
    for k in instance_counts(cfg, top):
        for n in core_counts(cfg, top, k):
            if n // k <= cfg.cores // k:
                rows.append({"instances": k, "cores": n, "ops_per_kcycle": round(split_throughput(cfg, k, n), 3)})
    return rows


def _split_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    return split_rows(cfg, opts.max_cores)


def _split_table(rows: list[dict], cfg: MachineConfig) -> str:
    ks = sorted({r["instances"] for r in rows})
    cores = sorted({r["cores"] for r in rows})
    val = {(r["instances"], r["cores"]): r["ops_per_kcycle"] for r in rows}
    out = [f"One contended kernel line per operation on {cfg.name}: throughput (ops per kilocycle)",
           f"{'cores':>5} " + " ".join(f"{str(k) + ' inst':>9}" for k in ks)]
    for n in cores:
        out.append(f"{n:>5} " + " ".join(f"{val[(k, n)]:>9.3f}" if (k, n) in val else f"{'':>9}" for k in ks))
    full = max(cores)
    if (1, full) in val:
        out.append(f"at {full} cores, relative to one kernel: " + ", ".join(
            f"{k} inst {val[(k, full)] / val[(1, full)]:.2f}x" for k in ks if (k, full) in val)
            + "  (vendor figure: 2 instances on the same 24 cores, 2.6x unlinks)")
    return "\n".join(out)


def _split_plot(rows: list[dict], cfg: MachineConfig, plt):
    named = [{**r, "series": f"{r['instances']} instance(s)"} for r in rows]
    return plots.series(plt, named, "series", list(dict.fromkeys(r["series"] for r in named)),
                        f"One kernel vs k instances: contended-line throughput on {cfg.name}",
                        y="ops_per_kcycle", ylabel="operations per kilocycle")


SPLIT = Experiment(
    name="split",
    summary="A kernel-bound operation on one globally contended kernel line: one Linux over N cores vs k "
            "multikernel instances of N/k cores",
    keys=("instances", "cores", "ops_per_kcycle"),
    rows=_split_rows, table=_split_table, plot=_split_plot)


PERSONALITY = Personality(
    name="multikernel",
    summary="Linux multikernel RFC (2025): kexec'd instances per CPU set, a message ring per instance and "
            "an IPI vector",
    boot="any",
    init=mk_init,
    experiments=(CHANNELS, SPLIT),
)
