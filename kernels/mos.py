"""mOS: Linux and a lightweight kernel in one node; LWK cores (``lwkcpus=``) run the application,
designated Linux CPUs serve the system calls the LWK does not implement.

Boot (``examples/mos.cfg``): Linux comes up first; the LWK partition (``lwkcpus=``, ``lwkmem=``) is
handed to the LWK, whose init (``mos_init``) parses the partition, sets up each LWK CPU's run queue
and the per-call routing table, and leaves the LVT timer unarmed (tickless).

System calls go where the routing table says (``ROUTES``):

* ``local``: the LWK runs the call on the calling core.
* ``migrate``: the mOS way: the calling thread moves to its Linux CPU, runs the call there under
  Linux, and moves back (``migrate_programs``)::

      LWK core                                   Linux core
      SYSCALL; routing table -> Linux
      save the thread's state (registers, FXSAVE area) into its task
      spin_lock(linux rq); enqueue; need_resched; unlock
      reschedule IPI --------------------------> scheduler_ipi (irq_enter / irq_exit)
      idle (safe_halt)                           schedule(): rq->lock, dequeue, switch_mm, restore the state
                                                 the system call runs under Linux
                                                 save the state; spin_lock(LWK rq); enqueue; unlock
      scheduler IPI   <------------------------- IPI the LWK CPU; idle
      schedule(): restore the state; SYSRET

* ``remote``: the call is forwarded off the node; the model has no network, so this is a stub whose
  cost the user gives (``--remote-cycles``); it is shown only then.

The thread move is timed step by step (state transfer, run queues, IPIs) from timeline marks on the
model, so the steps add up to the call's cycles.  Costs as in ``kernels/mckernel.py``.
"""
from __future__ import annotations

from boot import timeline as tl
from hwmodel import isa
from hwmodel.config import MachineConfig
from hwmodel.errors import MksimError
from kernels import mckernel as mck
from kernels import noise
from kernels.base import KernelInstance
from kernels.noise import _cfg
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

ROUTES = ("local", "migrate", "remote")
NR_SYSCALLS = 320                # about the x86-64 system-call table's size (arch/x86/syscalls/syscall_64.tbl, 3.x)
RESCHEDULE_VECTOR = 0xFD         # arch/x86/include/asm/irq_vectors.h (3.x): RESCHEDULE_VECTOR 0xfd
FXSAVE_BYTES = 512               # the FXSAVE area (Intel SDM vol. 1, 10.5.1)
FRAME_BYTES = 8 * 21             # struct pt_regs on x86-64: 21 eight-byte slots
# offsets from mck.mck_base (LWK memory)
ROUTE_TABLE = 0x4000             # one 8-byte entry per system call number
TASK = 0x6000                    # the migrating thread: pt_regs, then the FXSAVE area
LWK_RQ_LOCK, LWK_RQ, LWK_NEED_RESCHED = 0x5000, 0x5040, 0x5080
# Linux memory: the Linux CPU's rq in mckernel's layout (mck.L_RQ_LOCK, ...)


def mos_init(inst: KernelInstance, p: isa.Program) -> None:
    """The LWK's init: parse lwkcpus= / lwkmem=, set up each LWK CPU's run queue, fill the routing
    table, stay tickless."""
    r = inst.record
    base = r.partition[0][0] + 0x10_0000
    tl.begin(p, f"{r.name} init")
    tl.begin(p, f"{r.name} lwk partition")
    for off in range(0, 256, 64):
        p.load("r5", r.bootinfo_addr + off, comment="boot parameters: lwkcpus=, lwkmem=")
    tl.end(p, f"{r.name} lwk partition")
    tl.begin(p, f"{r.name} run queues")
    for i, _ in enumerate(r.cores):
        p.store(base + LWK_RQ + 0x100 * i, 0, comment="this LWK CPU's run queue")
    tl.end(p, f"{r.name} run queues")
    tl.begin(p, f"{r.name} syscall routing table")
    for nr in range(0, NR_SYSCALLS * 8, 64):
        p.store(base + ROUTE_TABLE + nr, 1, comment="route: LWK-local or a Linux CPU")
    tl.end(p, f"{r.name} syscall routing table")
    noise.tickless(p, r.name)
    tl.end(p, f"{r.name} init")


# timeline events of the migrate path, in order
EV = {"issue": 80, "trap": 81, "saved": 82, "enqueued": 83, "ipi_send": 84, "handler": 85, "on_linux": 86,
      "called": 87, "sent_back": 88, "back_handler": 89, "resumed": 90, "done": 91}
MIGRATE_STEPS = (("trap", "issue", "trap"), ("save_state", "trap", "saved"),
                 ("enqueue_linux", "saved", "enqueued"), ("ipi_send", "enqueued", "ipi_send"),
                 ("ipi_delivery", "ipi_send", "handler"), ("schedule_in_linux", "handler", "on_linux"),
                 ("syscall", "on_linux", "called"), ("move_back", "called", "sent_back"),
                 ("ipi_back_delivery", "sent_back", "back_handler"), ("schedule_in_lwk", "back_handler", "resumed"),
                 ("sysret", "resumed", "done"))
REMOTE_STEPS = (("trap", "issue", "trap"), ("remote_stub", "trap", "called"), ("sysret", "called", "done"))


def _state(p: isa.Program, task: int, load: bool, what: str) -> None:
    """Save (stores) or restore (loads) the thread's state: pt_regs and the FXSAVE area."""
    for off in range(0, FRAME_BYTES + FXSAVE_BYTES, 8):
        if load:
            p.load("r6", task + off, comment=f"{what}: restore the thread's state")
        else:
            p.store(task + off, "r1", comment=f"{what}: save the thread's state")


def _enqueue(p: isa.Program, lock: int, rq: int, need: int, what: str) -> None:
    """Put the thread on another CPU's run queue (under its lock) and mark that CPU for rescheduling."""
    mck.ticket_lock(p, lock, "r3", "r4", f"{what} rq->lock")
    p.store(rq, "r1", comment="enqueue_task: the thread on the run queue")
    p.store(need, 1, comment="resched: set need_resched")
    mck.ticket_unlock(p, lock, "r4", f"{what} rq->lock")


def _idle_until(p: isa.Program, need: int, label: str) -> None:
    p.label(label)
    p.cli()
    p.load("r2", need, comment="idle: need_resched()?")
    p.br("ne", "r2", 0, label + "_go")
    p.wfi(comment="safe_halt")
    p.jmp(label)
    p.label(label + "_go")
    p.store(need, 0, comment="clear need_resched")


def migrate_caller(cfg: MachineConfig, cpu: int, nbytes: int, rounds: int = mck.ROUNDS) -> isa.Program:
    """The LWK side: route the call to Linux, move the thread there, idle until it comes back."""
    mb, lb = mck.mck_base(cfg, cpu), mck.linux_base(cfg)
    p = isa.Program(f"mos-migrate-cpu{cpu}")
    p.movi("r1", 0)
    p.label("call")
    p.add("r1", "r1", 1)
    mck.produce(p, mb + mck.USER_BUF, nbytes)
    p.mark(EV["issue"])
    mck.syscall_entry(p, cfg, "enter the LWK")
    p.load("r2", mb + ROUTE_TABLE + 8 * 39, comment="syscall routing table[nr]: a Linux CPU")
    p.mark(EV["trap"])
    _state(p, mb + TASK, False, "migrate to Linux")
    p.mark(EV["saved"])
    _enqueue(p, lb + mck.L_RQ_LOCK, lb + mck.L_RQ, lb + mck.L_NEED_RESCHED, "the Linux CPU's")
    p.mark(EV["enqueued"])
    p.ipi(mck.LINUX_CPU, RESCHEDULE_VECTOR, comment="smp_send_reschedule(linux cpu)")
    p.mark(EV["ipi_send"])
    _idle_until(p, mb + LWK_NEED_RESCHED, "lwk_idle")
    mck.ticket_lock(p, mb + LWK_RQ_LOCK, "r3", "r4", "this LWK CPU's rq->lock")
    p.load("r2", mb + LWK_RQ, comment="pick the returned thread")
    mck.ticket_unlock(p, mb + LWK_RQ_LOCK, "r4", "rq->lock")
    _state(p, mb + TASK, True, "back on the LWK")
    p.mark(EV["resumed"])
    mck.syscall_exit(p, cfg, "back to the application")
    p.mark(EV["done"])
    p.br("lt", "r1", rounds, "call")
    p.halt()
    return p


def migrate_linux(cfg: MachineConfig, lwk: int, nbytes: int, rounds: int = mck.ROUNDS) -> isa.Program:
    """The Linux CPU: idle until the thread arrives, run its call, send it back."""
    mb, lb = mck.mck_base(cfg, lwk), mck.linux_base(cfg)
    p = isa.Program("mos-linux-cpu")
    p.movi("r1", 0)
    p.label("serve")
    p.add("r1", "r1", 1)
    _idle_until(p, lb + mck.L_NEED_RESCHED, "idle")
    mck.ticket_lock(p, lb + mck.L_RQ_LOCK, "r3", "r4", "&rq->lock")
    p.load("r2", lb + mck.L_RQ, comment="pick_next_task: the migrated thread")
    mck.ticket_unlock(p, lb + mck.L_RQ_LOCK, "r4", "&rq->lock")
    p.wrcr3(lb + mck.L_CR3, comment="switch_mm: the process's page tables")
    _state(p, mb + TASK, True, "context switch in on Linux")
    p.mark(EV["on_linux"])
    mck.consume(p, mb + mck.USER_BUF, nbytes, "the call reads the data (same address space)")
    mck.null_call(p, lb + mck.L_CURRENT, lb + mck.L_PARENT)
    p.mark(EV["called"])
    _state(p, mb + TASK, False, "migrate back to the LWK")
    _enqueue(p, mb + LWK_RQ_LOCK, mb + LWK_RQ, mb + LWK_NEED_RESCHED, "the LWK CPU's")
    p.ipi(lwk, RESCHEDULE_VECTOR, comment="wake the LWK CPU")
    p.mark(EV["sent_back"])
    p.br("lt", "r1", rounds, "serve")
    p.halt()
    return p


def resched_handler(event: int) -> isa.Program:
    """scheduler_ipi: ack and return (the idle loop then sees need_resched)."""
    p = isa.Program("scheduler-ipi")
    p.mark(event)
    p.eoi(comment="ack_APIC_irq")
    p.iret()
    return p


def migrate_cycles(machine: str | MachineConfig, lwk_cpu: int = 1, nbytes: int = 0) -> tuple[int, dict[str, int]]:
    """An mOS system call routed to Linux CPU 0 by moving the thread there and back: (cycles, steps)."""
    cfg = _cfg(machine)
    mck.check_lwk_cpu(cfg, lwk_cpu)
    mck.check_bytes(nbytes)
    progs = {lwk_cpu: migrate_caller(cfg, lwk_cpu, nbytes), mck.LINUX_CPU: migrate_linux(cfg, lwk_cpu, nbytes)}
    handlers = {(mck.LINUX_CPU, RESCHEDULE_VECTOR): resched_handler(EV["handler"]),
                (lwk_cpu, RESCHEDULE_VECTOR): resched_handler(EV["back_handler"])}
    tl_ = mck.run_marks(cfg, progs, handlers, "mOS migrate")
    return mck.steps_from_marks(tl_, EV, MIGRATE_STEPS)


def remote_cycles(machine: str | MachineConfig, stub: int, lwk_cpu: int = 1) -> tuple[int, dict[str, int]]:
    """A call forwarded off the node: trap, a stub of ``stub`` cycles (the user's number), return."""
    cfg = _cfg(machine)
    mck.check_lwk_cpu(cfg, lwk_cpu)
    if not isinstance(stub, int) or stub < 1:
        raise MksimError(f"remote stub {stub!r}: cycles must be a positive integer")
    p = isa.Program("mos-remote")
    p.movi("r1", 0)
    p.label("call")
    p.add("r1", "r1", 1)
    p.mark(EV["issue"])
    mck.syscall_entry(p, cfg, "enter the LWK")
    p.mark(EV["trap"])
    p.compute(stub, comment="stub: the request's round trip to another node (given by the user)")
    p.mark(EV["called"])
    mck.syscall_exit(p, cfg, "back to the application")
    p.mark(EV["done"])
    p.br("lt", "r1", mck.ROUNDS, "call")
    p.halt()
    tl_ = mck.run_marks(cfg, {lwk_cpu: p}, {}, "mOS remote stub")
    return mck.steps_from_marks(tl_, EV, REMOTE_STEPS)


# ---------------------------------------------------------------------------- the syscall bench

SIZES = (0, 64, 512, 4096, 16384)


def syscall_rows(machine: str | MachineConfig, lwk_cpu: int = 1, sizes=SIZES, remote: int | None = None) -> list[dict]:
    """A null call (getppid) on each path, then write(fd, buf, n) with the request-size sweep."""
    cfg = _cfg(machine)
    rows = []
    for n in sizes:
        name = "getppid" if n == 0 else "write"
        for kernel, path, fn in (("linux", "local", mck.local_cycles), ("mckernel", "local", mck.local_cycles),
                                 ("mckernel", "offload", mck.offload_cycles), ("mos", "local", mck.local_cycles),
                                 ("mos", "migrate", migrate_cycles)):
            cyc, steps = fn(cfg, lwk_cpu, n)
            rows.append({"kernel": kernel, "syscall": name, "path": path, "core": lwk_cpu, "bytes": n,
                         "cycles": cyc, "steps": steps})
    if remote is not None:
        cyc, steps = remote_cycles(cfg, remote, lwk_cpu)
        rows.append({"kernel": "mos", "syscall": "getppid", "path": "remote", "core": lwk_cpu, "bytes": 0,
                     "cycles": cyc, "steps": steps})
    return rows


def _syscall_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    rc = opts.extra.get("remote_cycles")
    lwk = opts.extra.get("lwk_core")
    return syscall_rows(cfg, lwk_cpu=1 if lwk is None else int(lwk), remote=int(rc) if rc is not None else None)


def _syscall_table(rows: list[dict], cfg: MachineConfig) -> str:
    core = rows[0]["core"] if rows else "-"
    out = [f"System call paths on {cfg.name} (cycles; the caller on core {core}, Linux on core 0)",
           f"{'kernel':<9} {'syscall':<8} {'path':<8} {'bytes':>6} {'cycles':>8}  steps"]
    for r in rows:
        st = " + ".join(f"{k} {v}" for k, v in r["steps"].items())
        out.append(f"{r['kernel']:<9} {r['syscall']:<8} {r['path']:<8} {r['bytes']:>6} {r['cycles']:>8}  {st}")
    out.append("steps are differences of timeline marks on the model; they add up to the cycles")
    return "\n".join(out)


def _syscall_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    null = [r for r in rows if r["bytes"] == 0]
    names = list(dict.fromkeys(k for r in null for k in r["steps"]))
    labels = [f"{r['kernel']}\n{r['path']}" for r in null]
    bottom = [0] * len(null)
    cmap = plt.get_cmap("tab20")
    for i, s in enumerate(names):
        vals = [r["steps"].get(s, 0) for r in null]
        ax1.bar(labels, vals, bottom=bottom, label=s, color=cmap(i % 20))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_ylabel("cycles")
    ax1.set_title("null call (getppid): steps")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    series = list(dict.fromkeys((r["kernel"], r["path"]) for r in rows if r["path"] != "remote"))
    for i, (kernel, path) in enumerate(series):
        pts = sorted((r["bytes"], r["cycles"]) for r in rows if (r["kernel"], r["path"]) == (kernel, path))
        ax2.plot([max(x, 8) for x, _ in pts], [y for _, y in pts], marker="os^vD"[i % 5],
                 linestyle=("-", "--", ":", "-.")[i % 4], label=f"{kernel} {path}")
    ax2.set_yscale("log")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("request size (bytes; 0 drawn at 8)")
    ax2.set_ylabel("cycles (log)")
    ax2.set_title("write(fd, buf, n): request-size sweep")
    ax2.grid(True, alpha=0.3)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    fig.suptitle(f"System call paths on {cfg.name}")
    fig.tight_layout()
    return fig


SYSCALL = Experiment(
    name="syscall",
    summary="System call cost: local vs McKernel offload (IKC + IPI + mcexec) vs mOS thread migration, by step",
    keys=("kernel", "syscall", "path", "core", "bytes", "cycles", "steps"),
    rows=_syscall_rows, table=_syscall_table, plot=_syscall_plot, sweeps_cores=False,
    options=(BenchOption("--lwk-core", "the core the calling thread runs on (default 1; core 0 runs Linux)",
                         type=int, default=1),
             BenchOption("--remote-cycles", "add the remote path: a stub of this many cycles for the round trip "
                         "to another node (the model has no network)", type=int),),
    default_machine="amd-4x4")


PERSONALITY = Personality(
    name="mos",
    summary="mOS LWK: tickless LWK CPUs in a Linux node; system calls routed locally or by moving the thread "
            "to a Linux CPU",
    boot="smp",
    init=mos_init,
    experiments=(SYSCALL,),
)
