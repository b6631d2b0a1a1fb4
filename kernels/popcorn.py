"""Popcorn Linux: kernel replicas, one per core or core group, that together look like one system.

Boot (``examples/popcorn.cfg``): GRUB boots the primary; it kexecs the secondaries, each on its
cores and memory. Each kernel's boot core runs Linux's early init (``kernels.linux.linux_early``, the steps of
``kernels.linux.linux_init``), then sets up its own ``pcn_kmsg`` ring (``kernels.channels``: one
ring per receiver) and registers it in the kernels' shared table below 1 MiB (the one memory all
kernels may write at boot); a secondary also takes its place in the registration count the primary
reads.

Thread migration (``migrate``), as core programs on two kernels' cores:

1. *state message*: the source kernel sends the thread's state to the destination over its
   ``pcn_kmsg`` ring: ``struct pt_regs`` (168 bytes on x86-64), the FXSAVE area (512 bytes, Intel
   SDM vol. 1, 10.5.1) and one 64-byte descriptor per VMA (text, data, heap, stack: an assumption
   of a small process);
2. *shadow*: the destination creates the shadow task as ``copy_process`` does: ``dup_task_struct``
   copies a task_struct (``TASK_STRUCT`` bytes, an assumption of its size), ``pgd_alloc`` clears a
   page for the new page-table root, the received registers go into the task's ``pt_regs``;
3. *page faults*: each page the thread touches afterwards faults on the destination (exception
   entry, ``core.interrupt_entry``), which asks the owning kernel for it by message; the owner
   drops its own copy (the consistency protocol: a write invalidates other kernels' copies: clear
   its PTE, INVLPG) and sends the page back as one long message (4096 bytes in 48-byte chunks);
   the destination copies it into a new frame, sets the PTE and returns (``core.iret_latency``).

Across core types (the ``xeon-phi`` preset: a Xeon host and a Xeon Phi without coherence between
them) the ring runs over the non-coherent window (``coherent=False``: CLFLUSH on both sides) and the
destination's work runs at its own clock; cycles are ticks of the machine's reference clock.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import isa
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import channels, microbench
from kernels.base import KernelInstance
from kernels.linux import linux_early
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

LINE, PAGE = 64, 4096

# ---------------------------------------------------------------------- boot-time shared memory
# Below 1 MiB, where every kernel may write at boot (boot.flows grants it to all), in a gap of the
# trampolines' data (boot.smp: mailbox 0x60000, alive 0x61000, up flags 0x6A000, GDT 0x6F000).
POPCORN_TABLE = 0x6B000       # +0: secondaries registered (count); +64 + 8k: kernel k's ring address


def ring_setup(p: isa.Program, ring: int, what: str) -> None:
    """pcn_kmsg_init: zero the ticket head, enable the ring interrupt, clear every slot's ready flag."""
    p.store(ring, 0, comment=f"{what}: head (ticket) = 0")
    p.store(ring + 2 * LINE, 1, comment=f"{what}: ring interrupt enabled")
    for i in range(channels.POPCORN_SLOTS):
        p.store(ring + 3 * LINE + i * LINE + channels.POPCORN_READY, 0,
                comment=f"{what}: slot ready flags = 0" if i == 0 else "")


def popcorn_init(inst: KernelInstance, p: isa.Program) -> None:
    """Linux's early init, then the messaging ring and the registration with the primary."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    ring = linux_early(inst, p) + 0x1000
    tl.begin(p, f"{r.name} pcn_kmsg ring")
    ring_setup(p, ring, "pcn_kmsg")
    tl.end(p, f"{r.name} pcn_kmsg ring")
    tl.begin(p, f"{r.name} register")
    p.store(POPCORN_TABLE + LINE + 8 * inst.kernel_id, ring, comment="publish our ring's address")
    if inst.kernel_id != 0:
        p.fadd("r5", POPCORN_TABLE, 1, comment="secondary: register with the primary")
    tl.end(p, f"{r.name} register")
    tl.end(p, f"{r.name} init")


# ---------------------------------------------------------------------- thread migration
PT_REGS = 168                 # struct pt_regs on x86-64: 21 x 8 bytes
FXSAVE = 512                  # FXSAVE area (Intel SDM vol. 1, 10.5.1)
VMAS, VMA_DESC = 4, 64        # text, data, heap, stack: one line each (assumption)
STATE_MSG = PT_REGS + FXSAVE + VMAS * VMA_DESC
TASK_STRUCT = 6144            # bytes dup_task_struct copies (assumption of the order of sizeof(task_struct))
STATE_SIZES = (0, 4096, 16384, 65536, 262144, 1 << 20)
EV_M0, EV_M1, EV_M2, EV_M3 = 0x420, 0x421, 0x422, 0x423
STEPS = ("state message", "shadow", "page faults")
MIGRATE_OPS_BASE, MIGRATE_OPS_PAGE = 2_000_000, 200_000   # op bound of one run (far above what it needs)
TO_DST, TO_SRC = 0x90_0000, 0xA0_0000      # the two rings (in the receiver's node)
FRAMES_SRC, FRAMES_DST = 0x200_0000, 0x400_0000   # the thread's pages (1 MiB at most), in each node
PT_SRC, PT_DST = 0x1C0_0000, 0x1D0_0000    # each kernel's PTEs of the thread's pages
SHADOW = 0x1E0_0000                        # the shadow task (task_struct, pt_regs) and its new pgd
TEMPLATE = 0x1F0_0000                      # the task_struct dup_task_struct copies from
USER_VA = 0x7F00_0000_0000
HARNESS = 0x1F8_0000                       # benchmark harness (not kernel state): destination ready


def _node(cfg: MachineConfig, core: int) -> int:
    return microbench.node_base(cfg, core // cfg.cores_per_package)


def _check_pages(state_bytes: int) -> int:
    if isinstance(state_bytes, bool) or not isinstance(state_bytes, int) or not 0 <= state_bytes <= (1 << 20) \
            or state_bytes % PAGE:
        raise MksimError(f"state_bytes {state_bytes!r}: must be a multiple of {PAGE} from 0 to 1 MiB")
    return state_bytes // PAGE


def migration_programs(cfg: MachineConfig, a: int, b: int, state_bytes: int):
    """(source program on a, destination program on b): migrate one thread from a's kernel to b's, then
    let it touch ``state_bytes`` of pages that still live on a."""
    npages = _check_pages(state_bytes)
    coherent = cfg.domain(a) == cfg.domain(b)
    to_dst, to_src = TO_DST + _node(cfg, b), TO_SRC + _node(cfg, a)
    frames_src, frames_dst = FRAMES_SRC + _node(cfg, a), FRAMES_DST + _node(cfg, b)
    pt_src, pt_dst = PT_SRC + _node(cfg, a), PT_DST + _node(cfg, b)
    shadow, template = SHADOW + _node(cfg, b), TEMPLATE + _node(cfg, b)
    buf_src, buf_dst = channels.PRIV + _node(cfg, a) + a * 0x4000, channels.PRIV + _node(cfg, b) + b * 0x4000
    chunks = channels.popcorn_chunks(PAGE)
    ready = HARNESS + _node(cfg, a)

    # --- the source kernel: send the state, then serve page requests
    s = isa.Program("migrate-source")
    s.movi("r8", 0, comment="our tail on the ring to us")
    s.movi("r10", 0, comment="our ticket on the destination's ring (non-coherent window)")
    s.label("wait")
    if not coherent:
        s.clflush(ready)
    s.load("r3", ready, comment="harness: wait until the destination kernel is up")
    s.br("ne", "r3", 0, "go")
    s.pause()
    s.jmp("wait")
    s.label("go")
    s.mark(EV_M0)
    channels.popcorn_send(s, to_dst, b, STATE_MSG, buf_src, "state", coherent, "r10", cfg.line)
    s.movi("r12", 0)
    s.movi("r13", frames_src)
    s.label("serve")
    s.br("geu", "r12", npages, "done")
    channels.popcorn_take(s, to_src, "r8", buf_src, "req", coherent, line=cfg.line)
    s.alu("shl", "r14", "r12", 3)
    s.store(pt_src, 0, base="r14", comment="page owner: drop our copy (clear the PTE)")
    s.alu("shl", "r14", "r12", 12)
    s.invlpg(USER_VA, base="r14", comment="and its TLB entry")
    channels.popcorn_send(s, to_dst, b, PAGE, "r13", "page", coherent, "r10", cfg.line)
    s.add("r13", "r13", PAGE)
    s.add("r12", "r12", 1)
    s.jmp("serve")
    s.label("done")
    s.halt()

    # --- the destination kernel: take the state, build the shadow, run the thread, fault pages in
    core_b = cfg.core_type(b).core
    d = isa.Program("migrate-destination")
    d.movi("r8", 0, comment="our tail on the ring to us")
    d.movi("r10", 0, comment="our ticket on the source's ring (non-coherent window)")
    d.movi("r6", template)
    d.movi("r7", template + 0x8000)
    channels.copy(d, "r6", "r7", TASK_STRUCT, "warm",
                  "the migration kthread runs: its own task_struct (the copy's source) is in its cache")
    d.store(ready, 1, comment="harness: the destination is up")
    if not coherent:
        d.clflush(ready)
    for c in range(channels.popcorn_chunks(STATE_MSG)):
        channels.popcorn_take(d, to_dst, "r8", buf_dst + c * channels.POPCORN_CHUNK, f"state{c}", coherent, line=cfg.line)
    d.mark(EV_M1)
    d.movi("r6", template)
    d.movi("r7", shadow)
    channels.copy(d, "r6", "r7", TASK_STRUCT, "dup", "dup_task_struct: copy the task_struct")
    d.movi("r6", buf_dst)
    d.movi("r7", shadow + TASK_STRUCT)
    channels.copy(d, "r6", "r7", PT_REGS, "regs", "the migrated registers into the shadow's pt_regs")
    d.movi("r6", shadow + 0x4000)
    d.add("r5", "r6", PAGE)
    d.label("pgd")
    d.store(0, 0, base="r6", comment="pgd_alloc: clear the new page-table root")
    d.add("r6", "r6", 8)
    d.br("ltu", "r6", "r5", "pgd")
    d.compute(core_b.iret_latency, comment="return to the thread (iretq)")
    d.mark(EV_M2)
    d.movi("r12", 0)
    d.movi("r13", frames_dst)
    d.label("touch")
    d.br("geu", "r12", npages, "done")
    d.compute(core_b.interrupt_entry, comment="#PF: exception entry (core.interrupt_entry)")
    channels.popcorn_send(d, to_src, a, 8, buf_dst, "req", coherent, "r10", cfg.line)
    d.mov("r11", "r13")
    for c in range(chunks):
        channels.popcorn_take(d, to_dst, "r8", "r11", f"pg{c}", coherent, line=cfg.line)
        d.add("r11", "r11", channels.POPCORN_CHUNK)
    d.alu("shl", "r14", "r12", 3)
    d.store(pt_dst, "r13", base="r14", comment="set_pte: map the new frame")
    d.compute(core_b.iret_latency, comment="iretq: retry the access")
    d.load("r3", 0, base="r13", comment="the thread's access, now a hit in its own frame")
    d.add("r13", "r13", PAGE)
    d.add("r12", "r12", 1)
    d.jmp("touch")
    d.label("done")
    d.mark(EV_M3)
    d.halt()
    return s, d


def migrate(cfg: MachineConfig | str, a: int, b: int, state_bytes: int) -> dict:
    """One migration from core a's kernel to core b's with ``state_bytes`` of touched pages:
    ``{"cycles", "steps": {step: cycles}}`` (reference-clock ticks; the steps add up to cycles)."""
    cfg = load_machine(cfg) if isinstance(cfg, str) else cfg
    for c in (a, b):
        if not 0 <= c < cfg.cores:
            raise MksimError(f"core {c}: {cfg.name} has cores 0..{cfg.cores - 1}")
    if a == b:
        raise MksimError(f"migration from core {a} to itself")
    s, d = migration_programs(cfg, a, b, state_bytes)
    m = Machine(cfg)
    w = m.workload()
    w.start(a, w.place(s, channels.CODE + a * 0x10000).pc())
    w.start(b, w.place(d, channels.CODE + b * 0x10000).pc())
    m.load_workload(w)
    # a bound on the ops, so that a ring that never delivers ends the run instead of polling forever
    status = m.execute(MIGRATE_OPS_BASE + MIGRATE_OPS_PAGE * _check_pages(state_bytes))
    if status != "done":
        raise RuntimeError(f"migration {a}->{b} on {cfg.name} ({state_bytes} B) ended {status}")
    t = m.timeline()
    at = {ev: int(t[t[:, 2] == ev][0, 1]) for ev in (EV_M0, EV_M1, EV_M2, EV_M3)}
    steps = {"state message": at[EV_M1] - at[EV_M0], "shadow": at[EV_M2] - at[EV_M1],
             "page faults": at[EV_M3] - at[EV_M2]}
    return {"cycles": at[EV_M3] - at[EV_M0], "steps": steps}


def migration_pairs(cfg: MachineConfig) -> list[tuple[int, int]]:
    """(source, destination) core pairs: another kernel of the same core type (the first core of
    another package of that type, else another core), and one of every other core type."""
    t0 = cfg.core_type(0).name
    same = [c for c in range(1, cfg.cores) if cfg.core_type(c).name == t0]
    other_pkg = [c for c in same if c // cfg.cores_per_package != 0 and c % cfg.cores_per_package == 0]
    pairs = [(0, (other_pkg or same)[0])] if same else []
    seen = {t0}
    for c in range(cfg.cores):
        name = cfg.core_type(c).name
        if name not in seen:
            seen.add(name)
            pairs.append((0, c))
    return pairs


def migrate_rows(cfg: MachineConfig, sizes=STATE_SIZES) -> list[dict]:
    """Rows ``{"state_bytes", "from_type", "to_type", "cycles", "steps"}`` for every pair and size."""
    rows = []
    for a, b in migration_pairs(cfg):
        for size in sizes:
            r = migrate(cfg, a, b, size)
            rows.append({"state_bytes": size, "from_type": cfg.core_type(a).name, "to_type": cfg.core_type(b).name,
                         "cycles": r["cycles"], "steps": r["steps"]})
    return rows


def _migrate_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    top = opts.extra.get("max_state")
    sizes = STATE_SIZES if top is None else tuple(s for s in STATE_SIZES if s <= top)
    return migrate_rows(cfg, sizes)


def _migrate_table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"Popcorn thread migration (reference-clock cycles, {cfg.clock_ghz} GHz) on {cfg.name}",
           f"{'from':>16} {'to':>16} {'state':>8} {'cycles':>9} " + " ".join(f"{s:>14}" for s in STEPS)]
    for r in rows:
        out.append(f"{r['from_type']:>16} {r['to_type']:>16} {r['state_bytes']:>8} {r['cycles']:>9} "
                   + " ".join(f"{r['steps'][s]:>14}" for s in STEPS))
    out.append("steps: the state message (pt_regs + FXSAVE + VMA descriptors), the shadow task "
               "(dup_task_struct, pgd_alloc), then one remote page fault per touched page")
    return "\n".join(out)


def _migrate_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    pairs = list(dict.fromkeys((r["from_type"], r["to_type"]) for r in rows))
    for (f, t), mk in zip(pairs, "osv^D"):
        pts = [(r["state_bytes"] / 1024, r["cycles"]) for r in rows if (r["from_type"], r["to_type"]) == (f, t)]
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker=mk, label=f"{f} -> {t}")
    ax.set_xscale("symlog", linthresh=4)
    ax.set_yscale("log")
    ax.set_xlabel("state moved (KiB of touched pages)")
    ax.set_ylabel("cycles (reference clock)")
    ax.set_title(f"Popcorn thread migration on {cfg.name}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


MIGRATE = Experiment(
    name="migrate",
    summary="Popcorn thread migration: state message, shadow task, remote page faults, vs the state moved; "
            "same core type and across core types",
    keys=("state_bytes", "from_type", "to_type", "cycles", "steps"),
    rows=_migrate_rows, table=_migrate_table, plot=_migrate_plot, sweeps_cores=False,
    options=(BenchOption("--max-state", "largest state moved, bytes (default 1 MiB)", type=int),),
    default_machine="xeon-phi")


# ---------------------------------------------------------------------- heterogeneous load balancing
BALANCE_TASKS = 16            # the parallel job: independent tasks (a workload choice, not a machine cost)
BALANCE_WORK = 2_000_000      # cycles of work per task, the same count on either core type (no SIMD edge)
BALANCE_DATA = 4096           # bytes of data each task touches (what its migration moves)
EV_JOB0, EV_JOB1 = 0x440, 0x441
JOB_DATA = 0x300_0000


def _job_program(cfg: MachineConfig, core: int, ntasks: int) -> isa.Program:
    """A core's share of the job: ``ntasks`` tasks, each BALANCE_WORK cycles of work and one pass over its
    BALANCE_DATA bytes."""
    base = JOB_DATA + _node(cfg, core) + core * 0x10_0000
    p = isa.Program(f"job-core{core}")
    p.mark(EV_JOB0)
    p.movi("r1", 0)
    p.movi("r2", base)
    p.label("task")
    p.br("geu", "r1", ntasks, "done")
    p.compute(BALANCE_WORK, comment="the task's work (own cycles)")
    p.movi("r4", 0)
    p.label("touch")
    p.load("r3", 0, base="r2", comment="its data")
    p.add("r2", "r2", LINE)
    p.add("r4", "r4", LINE)
    p.br("ltu", "r4", BALANCE_DATA, "touch")
    p.add("r1", "r1", 1)
    p.jmp("task")
    p.label("done")
    p.mark(EV_JOB1)
    p.halt()
    return p


def job_cycles(cfg: MachineConfig, cores: list[int], ntasks: int) -> int:
    """Ticks for ``cores`` to run ``ntasks`` tasks, dealt round-robin (0 tasks: 0)."""
    if ntasks == 0:
        return 0
    m = Machine(cfg)
    w = m.workload()
    for i, c in enumerate(cores):
        share = ntasks // len(cores) + (1 if i < ntasks % len(cores) else 0)
        w.start(c, w.place(_job_program(cfg, c, share), channels.CODE + c * 0x10000).pc())
    m.load_workload(w)
    if m.execute() != "done":
        raise RuntimeError(f"job on {cfg.name} cores {cores} did not finish")
    t = m.timeline()
    return int(t[t[:, 2] == EV_JOB1][:, 1].max() - t[t[:, 2] == EV_JOB0][:, 1].min())


def balance_rows(cfg: MachineConfig, tasks: int = BALANCE_TASKS) -> list[dict]:
    """Rows ``{"run", "host_tasks", "other_tasks", "cycles"}``: the job on core 0's type alone, on the
    other type alone, and on both, its tasks started on core 0's kernel and ``other_tasks`` of them
    migrated by Popcorn (each migration measured on the model, ``migrate``; a kernel's migrations in
    turn, overlapping the host's work), the split with the shortest run."""
    types = list(dict.fromkeys(cfg.core_type(c).name for c in range(cfg.cores)))
    if len(types) != 2:
        raise MksimError(f"balance: {cfg.name} has {len(types)} core type(s); the run needs two (xeon-phi, omap4)")
    host = [c for c in range(cfg.cores) if cfg.core_type(c).name == types[0]]
    other = [c for c in range(cfg.cores) if cfg.core_type(c).name == types[1]]
    mig = migrate(cfg, host[0], other[0], BALANCE_DATA)["cycles"]
    rows = [{"run": types[0], "host_tasks": tasks, "other_tasks": 0, "cycles": job_cycles(cfg, host, tasks)},
            {"run": types[1], "host_tasks": 0, "other_tasks": tasks, "cycles": job_cycles(cfg, other, tasks)}]
    best = None
    for moved in range(tasks + 1):
        per_core = -(-moved // len(other))
        t = max(job_cycles(cfg, host, tasks - moved), per_core * mig + job_cycles(cfg, other, moved))
        if best is None or t < best["cycles"]:
            best = {"run": "both (popcorn)", "host_tasks": tasks - moved, "other_tasks": moved, "cycles": t}
    return rows + [best]


def _balance_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    return balance_rows(cfg)


def _balance_table(rows: list[dict], cfg: MachineConfig) -> str:
    host = rows[0]["cycles"]
    out = [f"A parallel job of {BALANCE_TASKS} tasks on {cfg.name} (reference-clock cycles)",
           f"{'run':<18} {'host tasks':>10} {'other tasks':>11} {'cycles':>11} {'vs first':>9}"]
    for r in rows:
        out.append(f"{r['run']:<18} {r['host_tasks']:>10} {r['other_tasks']:>11} {r['cycles']:>11} "
                   f"{host / r['cycles']:>8.2f}x")
    out.append("both: the split with the shortest run; each moved task pays one measured Popcorn migration "
               f"({BALANCE_DATA} B of pages). Popcorn (EuroSys'15) reports up to 52% over the best native run")
    return "\n".join(out)


def _balance_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar([r["run"] for r in rows], [r["cycles"] for r in rows], edgecolor="black")
    ax.set_ylabel("cycles (reference clock)")
    ax.set_title(f"Heterogeneous load balancing on {cfg.name}")
    fig.tight_layout()
    return fig


BALANCE = Experiment(
    name="balance",
    summary="A parallel job on one core type, the other, and both with Popcorn migration",
    keys=("run", "host_tasks", "other_tasks", "cycles"),
    rows=_balance_rows, table=_balance_table, plot=_balance_plot, sweeps_cores=False,
    default_machine="xeon-phi")


PERSONALITY = Personality(
    name="popcorn",
    summary="Popcorn Linux: kernel replicas per core group, pcn_kmsg rings, thread migration with "
            "page-level consistency",
    boot="any",
    init=popcorn_init,
    experiments=(MIGRATE, BALANCE),
)
