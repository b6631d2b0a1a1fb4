"""IHK/McKernel: Linux on a few cores, the McKernel lightweight kernel (LWK) on the cores IHK reserved.

Boot (``examples/mckernel.cfg``): Linux boots first; IHK reserves cores and memory from it
(``ihkconfig reserve cpu / mem``), creates an OS instance, assigns them, loads the McKernel image and
boots it by INIT-SIPI (the plan's ``--flow trampoline --by linux``).  The LWK's own init
(``mckernel_init``) reads IHK's boot parameters, sets up the IKC queues with Linux and leaves the LVT
timer unarmed: McKernel cores are tickless and run only the application.

System calls: McKernel implements the performance-critical calls itself (``local``); any other is
offloaded (``offload_programs``)::

    LWK core (the caller)                          Linux core
    SYSCALL; syscall_table[nr] is NULL -> do_syscall
    ihk_ikc_send: CAS on the write offset,
      copy the 64-byte request packet,
      CAS on the readable offset
    ihk_mc_interrupt_cpu: IPI to the Linux core --> IKC interrupt handler: ihk_ikc_recv (copy the packet
                                                    into the process's request slot), wake_up(&wq):
                                                    try_to_wake_up(mcexec) under rq->lock, need_resched
                                                    schedule(): context switch to mcexec (CR3, switch_to),
                                                    return from ioctl(MCEXEC_UP_WAIT_SYSCALL)
                                                    mcexec performs the call (a Linux system call)
    while (resp->status != seq) cpu_pause();  <--   ioctl(MCEXEC_UP_RET_SYSCALL): the reply is written into
    read the return value; SYSRET                   McKernel memory by physical address, then the status

Every step is timed by timeline marks on the model (``offload_steps``): the steps are differences of
consecutive marks and add up to the call's cycles.  Costs: the machine model's (memory traffic, IPIs,
APIC writes, CR3 writes); the privilege changes SYSCALL and SYSRET are charged the model's
``core.interrupt_entry`` and ``core.iret_latency`` (an assumption: no sourced SYSCALL/SYSRET latency for
these parts; a trap into the kernel and a return are what the model has).

Experiments (shared with ``kernels/mos.py``): ``noise`` (FWQ) and ``bsp`` (noise amplification).
"""
from __future__ import annotations

import numpy as np

from boot import timeline as tl
from hwmodel import isa
from hwmodel.config import MachineConfig
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import noise, plots
from kernels.base import KernelInstance
from kernels.noise import _cfg, node_base
from kernels.personality import BenchOption, BenchOptions, Experiment, Personality

# ---------------------------------------------------------------------------- init (boot)


def mckernel_init(inst: KernelInstance, p: isa.Program) -> None:
    """McKernel's boot core: read IHK's boot parameters (the reserved cores and memory), set up the IKC
    master channel's queues, and stay tickless (the LVT timer is left masked, never armed)."""
    r = inst.record
    tl.begin(p, f"{r.name} init")
    tl.begin(p, f"{r.name} ihk boot params")
    for off in range(0, 256, 64):
        p.load("r5", r.bootinfo_addr + off, comment="ihk_smp_boot_param: reserved cpus, memory ranges")
    p.load("r5", r.entry & ~0x7, comment="first touch of the LWK's own text")
    tl.end(p, f"{r.name} ihk boot params")
    tl.begin(p, f"{r.name} ikc queues")
    base = r.partition[0][0]
    for off in (IKC_WOFF, IKC_ROFF, IKC_RDOFF, RESP_STATUS):
        p.store(base + 0x10_0000 + off, 0, comment="ihk_ikc_init_queue: write / readable / read offsets")
    tl.end(p, f"{r.name} ikc queues")
    noise.tickless(p, r.name)
    tl.end(p, f"{r.name} init")


# ---------------------------------------------------------------------------- system calls

LINUX_CPU = 0                    # the Linux core that serves offloads (mcexec runs there)
ROUNDS = 3                       # calls per run; the last one is reported (code and queues warm)
IKC_VECTOR = 0xF3                # the vector IHK's driver allocated for IKC interrupts (a free one)
IKC_SLOTS = 64                   # packets in the queue (a power of two)
PACKET = 64                      # one IKC packet: syscall number, six arguments, pid (struct ikc_scd_packet)
# McKernel memory (node-local to the LWK core), offsets from mck_base
IKC_WOFF, IKC_ROFF, IKC_RDOFF = 0, 64, 128     # write offset, readable offset, read offset (own lines)
IKC_PKTS = 0x1000
RESP_STATUS, RESP_RET = 0x2000, 0x2040         # the response: status (sequence), return value
CURRENT = 0x3000                 # the LWK's current thread: parent pointer
PARENT = 0x3040                  # its parent: tgid
USER_BUF = 0x10000               # the application's buffer (write's data)
MAX_BYTES = 0x10000
# Linux memory (node 0), offsets from linux_base
L_RQ_LOCK, L_RQ, L_NEED_RESCHED = 0, 64, 128
L_REQ = 0x1000                   # per_proc_data's request slot (the packet copied out)
L_IDLE_TASK, L_MCEXEC_TASK = 0x2000, 0x2100    # thread structs: callee-saved registers (switch_to)
L_CURRENT, L_PARENT = 0x3000, 0x3040
L_CR3 = 0x8_0000                 # mcexec's page-table root (written to CR3; no user access is walked)
SYSCALL_CODE = 0x100_0000        # + 0x20000 * core: the programs' code (handler at + 0x1C000)
SWITCH_REGS = 6                  # switch_to saves rbx rbp r12-r15

# timeline events of the offload path, in order (cores: L = LWK caller, X = Linux)
EV = {"issue": 60, "trap": 61, "ikc_packet": 62, "ipi_send": 63, "handler": 64, "woken": 65,
      "proxy_run": 66, "proxy_called": 67, "reply": 68, "seen": 69, "done": 70}
OFFLOAD_STEPS = (("trap", "issue", "trap"), ("ikc_packet", "trap", "ikc_packet"),
                 ("ipi_send", "ikc_packet", "ipi_send"), ("ipi_delivery", "ipi_send", "handler"),
                 ("ikc_recv_wakeup", "handler", "woken"), ("schedule_proxy", "woken", "proxy_run"),
                 ("proxy_syscall", "proxy_run", "proxy_called"), ("reply_write", "proxy_called", "reply"),
                 ("reply_seen", "reply", "seen"), ("sysret", "seen", "done"))
LOCAL_STEPS = (("trap", "issue", "trap"), ("syscall", "trap", "proxy_called"), ("sysret", "proxy_called", "done"))


def mck_base(cfg: MachineConfig, cpu: int) -> int:
    return node_base(cfg, cpu) + 0x60_0000


def linux_base(cfg: MachineConfig) -> int:
    return node_base(cfg, LINUX_CPU) + 0x50_0000


def check_bytes(nbytes: int) -> int:
    if not isinstance(nbytes, int) or not 0 <= nbytes <= MAX_BYTES or nbytes % 8:
        raise MksimError(f"request size {nbytes!r}: a multiple of 8 bytes, 0..{MAX_BYTES}")
    return nbytes


def check_lwk_cpu(cfg: MachineConfig, cpu: int) -> int:
    if not isinstance(cpu, int) or not 0 < cpu < cfg.cores:
        raise MksimError(f"LWK core {cpu!r}: must be 1..{cfg.cores - 1} on {cfg.name} (core {LINUX_CPU} runs Linux)")
    return cpu


def syscall_entry(p: isa.Program, cfg: MachineConfig, what: str) -> None:
    """SYSCALL: the model's cost of entering the kernel (core.interrupt_entry; see the module docstring)."""
    p.compute(cfg.core.interrupt_entry, comment=f"SYSCALL: {what}")


def syscall_exit(p: isa.Program, cfg: MachineConfig, what: str) -> None:
    """SYSRET: the model's cost of returning to user mode (core.iret_latency)."""
    p.compute(cfg.core.iret_latency, comment=f"SYSRET: {what}")


def produce(p: isa.Program, buf: int, nbytes: int) -> None:
    """The application writes the data it is about to pass (so it sits in the caller's cache)."""
    for off in range(0, nbytes, 8):
        p.store(buf + off, "r1", comment="the application fills its buffer")


def consume(p: isa.Program, buf: int, nbytes: int, what: str) -> None:
    """The kernel reads ``nbytes`` of the caller's buffer (the work of write(fd, buf, n) to a null device)."""
    for off in range(0, nbytes, 8):
        p.load("r6", buf + off, comment=what)


def null_call(p: isa.Program, current: int, parent: int) -> None:
    """getppid(): current->real_parent->tgid (two dependent loads)."""
    p.load("r6", current, comment="current->real_parent")
    p.load("r6", parent, comment="->tgid")


def ticket_lock(p: isa.Program, lock: int, rd: str, scratch: str, what: str) -> None:
    """spin_lock: a ticket spinlock (next at +0, now-serving at +8), as x86 Linux since 2.6.25."""
    p.fadd(rd, lock, 1, comment=f"spin_lock({what}): take a ticket")
    p.spin_until(lock + 8, "eq", rd, rd=scratch, comment="wait for now-serving")


def ticket_unlock(p: isa.Program, lock: int, scratch: str, what: str) -> None:
    p.fadd(scratch, lock + 8, 1, comment=f"spin_unlock({what})")


def local_program(cfg: MachineConfig, cpu: int, nbytes: int, rounds: int = ROUNDS) -> isa.Program:
    """A system call the kernel runs on the calling core: trap, the call, return."""
    mb = mck_base(cfg, cpu)
    p = isa.Program(f"local-syscall-cpu{cpu}")
    p.movi("r1", 0)
    p.label("call")
    p.add("r1", "r1", 1)
    produce(p, mb + USER_BUF, nbytes)
    p.mark(EV["issue"])
    syscall_entry(p, cfg, "enter the kernel")
    p.mark(EV["trap"])
    consume(p, mb + USER_BUF, nbytes, "copy_from_user of the data")
    null_call(p, mb + CURRENT, mb + PARENT)
    p.mark(EV["proxy_called"])
    syscall_exit(p, cfg, "back to the application")
    p.mark(EV["done"])
    p.br("lt", "r1", rounds, "call")
    p.halt()
    return p


def offload_caller(cfg: MachineConfig, cpu: int, nbytes: int, rounds: int = ROUNDS) -> isa.Program:
    """The LWK side of an offloaded call (McKernel's syscall.c do_syscall -> ihk_ikc_send)."""
    mb = mck_base(cfg, cpu)
    p = isa.Program(f"mckernel-offload-cpu{cpu}")
    p.movi("r1", 0)
    p.label("call")
    p.add("r1", "r1", 1)
    produce(p, mb + USER_BUF, nbytes)
    p.mark(EV["issue"])
    syscall_entry(p, cfg, "enter McKernel")
    p.load("r2", mb + CURRENT, comment="syscall_table[nr] == NULL: not implemented here -> offload")
    p.mark(EV["trap"])
    # ihk_ikc_send: reserve a packet with a CAS on the write offset
    p.label("reserve")
    p.load("r3", mb + IKC_WOFF, comment="ihk_ikc_send: queue->write_off")
    p.add("r4", "r3", 1)
    p.cas("r5", mb + IKC_WOFF, "r3", "r4", comment="CAS on the write offset: claim the packet")
    p.br("ne", "r5", "r3", "reserve")
    p.movi("r6", IKC_SLOTS - 1)
    p.alu("and", "r6", "r3", "r6")
    p.movi("r2", 6)
    p.alu("shl", "r6", "r6", "r2")
    for off in range(0, PACKET, 8):
        p.store(mb + IKC_PKTS + off, "r1", base="r6", comment="copy the request into the packet")
    p.label("publish")
    p.cas("r5", mb + IKC_ROFF, "r3", "r4", comment="CAS on the readable offset: publish in order")
    p.br("eq", "r5", "r3", "published")
    p.pause()
    p.jmp("publish")
    p.label("published")
    p.mark(EV["ikc_packet"])
    p.ipi(LINUX_CPU, IKC_VECTOR, comment="ihk_mc_interrupt_cpu: IPI the Linux core")
    p.mark(EV["ipi_send"])
    p.label("wait")
    p.load("r2", mb + RESP_STATUS, comment="while (res->status != seq)")
    p.br("eq", "r2", "r1", "answered")
    p.pause(comment="cpu_pause()")
    p.jmp("wait")
    p.label("answered")
    p.mark(EV["seen"])
    p.load("r2", mb + RESP_RET, comment="the return value")
    syscall_exit(p, cfg, "back to the application")
    p.mark(EV["done"])
    p.br("lt", "r1", rounds, "call")
    p.halt()
    return p


def ikc_handler(cfg: MachineConfig, lwk: int) -> isa.Program:
    """Linux's IKC interrupt handler: receive the packet into the process's request slot and wake mcexec."""
    mb, lb = mck_base(cfg, lwk), linux_base(cfg)
    p = isa.Program("ihk-ikc-irq")
    p.mark(EV["handler"])
    p.movi("r7", 40)
    p.sub("sp", "sp", "r7", comment="save the interrupted registers")
    for i, r in enumerate(noise.HANDLER_REGS):
        p.store(8 * i, r, base="sp")
    p.eoi(comment="ack_APIC_irq")
    p.load("r9", mb + IKC_ROFF, comment="ihk_ikc_recv: queue->readable_off")
    p.load("r10", mb + IKC_RDOFF, comment="queue->read_off")
    p.movi("r11", IKC_SLOTS - 1)
    p.alu("and", "r11", "r10", "r11")
    p.movi("r12", 6)
    p.alu("shl", "r11", "r11", "r12")
    for off in range(0, PACKET, 8):
        p.load("r12", mb + IKC_PKTS + off, base="r11", comment="copy the packet out")
        p.store(lb + L_REQ + off, "r12", comment="into per_proc_data's request slot")
    p.add("r10", "r10", 1)
    p.store(mb + IKC_RDOFF, "r10", comment="queue->read_off++")
    ticket_lock(p, lb + L_RQ_LOCK, "r9", "r12", "&rq->lock")
    p.store(lb + L_MCEXEC_TASK, 0, comment="try_to_wake_up: mcexec->state = TASK_RUNNING")
    p.load("r12", lb + L_RQ, comment="activate_task: rq->nr_running++")
    p.add("r12", "r12", 1)
    p.store(lb + L_RQ, "r12")
    p.store(lb + L_NEED_RESCHED, 1, comment="check_preempt_curr: resched_task(idle)")
    ticket_unlock(p, lb + L_RQ_LOCK, "r12", "&rq->lock")
    p.mark(EV["woken"])
    for i, r in enumerate(noise.HANDLER_REGS):
        p.load(r, 8 * i, base="sp")
    p.movi("r7", 40)
    p.add("sp", "sp", "r7")
    p.iret()
    return p


def linux_schedule_in(p: isa.Program, cfg: MachineConfig, cr3: int | None) -> None:
    """schedule() on the Linux core: rq->lock, pick the woken task, context_switch (switch_mm, switch_to)."""
    lb = linux_base(cfg)
    ticket_lock(p, lb + L_RQ_LOCK, "r9", "r10", "&rq->lock")
    p.load("r10", lb + L_RQ, comment="pick_next_task_fair")
    p.store(lb + L_NEED_RESCHED, 0, comment="clear_tsk_need_resched")
    if cr3 is not None:
        p.wrcr3(cr3, comment="switch_mm: load_cr3(next->mm->pgd)")
    for i in range(SWITCH_REGS):
        p.store(lb + L_IDLE_TASK + 8 * i, "r10", comment="switch_to: save prev's callee-saved registers")
    for i in range(SWITCH_REGS):
        p.load("r11", lb + L_MCEXEC_TASK + 8 * i, comment="switch_to: restore next's")
    ticket_unlock(p, lb + L_RQ_LOCK, "r10", "&rq->lock (finish_task_switch)")


def linux_idle_wait(p: isa.Program, cfg: MachineConfig, label: str) -> None:
    """cpu_idle: with interrupts off check need_resched, else safe_halt (STI; HLT = WFI, which sets IF)."""
    lb = linux_base(cfg)
    p.label(label)
    p.cli()
    p.load("r2", lb + L_NEED_RESCHED, comment="cpu_idle: need_resched()?")
    p.br("ne", "r2", 0, label + "_go")
    p.wfi(comment="safe_halt")
    p.jmp(label)
    p.label(label + "_go")


def mcexec_program(cfg: MachineConfig, lwk: int, nbytes: int, rounds: int = ROUNDS) -> isa.Program:
    """The Linux core: idle until the IKC handler wakes mcexec, which performs the call and replies."""
    mb, lb = mck_base(cfg, lwk), linux_base(cfg)
    p = isa.Program("linux-mcexec")
    p.movi("r1", 0)
    p.label("serve")
    p.add("r1", "r1", 1)
    linux_idle_wait(p, cfg, "idle")
    linux_schedule_in(p, cfg, lb + L_CR3)
    for off in range(0, PACKET, 8):
        p.load("r3", lb + L_REQ + off, comment="ioctl(MCEXEC_UP_WAIT_SYSCALL): copy_to_user of the request")
    syscall_exit(p, cfg, "the wait ioctl returns to mcexec")
    p.mark(EV["proxy_run"])
    syscall_entry(p, cfg, "mcexec performs the call on Linux")
    consume(p, mb + USER_BUF, nbytes, "the call reads the data through mcexec's mapping of McKernel memory")
    null_call(p, lb + L_CURRENT, lb + L_PARENT)
    syscall_exit(p, cfg, "the call returns to mcexec")
    p.mark(EV["proxy_called"])
    syscall_entry(p, cfg, "ioctl(MCEXEC_UP_RET_SYSCALL)")
    p.store(mb + RESP_RET, "r6", comment="write the return value into McKernel memory (by physical address)")
    p.mark(EV["reply"])
    p.store(mb + RESP_STATUS, "r1", comment="res->status = seq: the caller may go on")
    syscall_exit(p, cfg, "mcexec waits for the next request")
    p.br("lt", "r1", rounds, "serve")
    p.halt()
    return p


def run_marks(cfg: MachineConfig, progs: dict[int, isa.Program], handlers: dict[tuple[int, int], isa.Program],
              what: str) -> np.ndarray:
    """Run the programs (core -> program) with their interrupt handlers; the timeline."""
    m = Machine(cfg)
    w = m.workload()
    for c, prog in progs.items():
        w.set_reg(c, "sp", noise.stack_top(cfg, c))
        w.start(c, w.place(prog, SYSCALL_CODE + 0x2_0000 * c).pc())
    for (c, vec), h in handlers.items():
        w.set_handler(c, vec, w.place(h, SYSCALL_CODE + 0x2_0000 * c + 0x1_C000).pc())
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise MksimError(f"{what} on {cfg.name} ended {status}: {m.waits() or m.fault_report()}")
    return m.timeline()


def steps_from_marks(tl: np.ndarray, events: dict[str, int], steps) -> tuple[int, dict[str, int]]:
    """Each step's cycles from the last occurrence of its two marks (the last call); the total is the
    first mark to the last, so the steps add up to it exactly."""
    def last(name: str) -> int:
        t = tl[tl[:, 2] == events[name]][:, 1]
        if t.size == 0:
            raise MksimError(f"no timeline mark {name!r}")
        return int(t[-1])
    out = {name: last(b) - last(a) for name, a, b in steps}
    total = last(steps[-1][2]) - last(steps[0][1])
    return total, out


def local_cycles(machine: str | MachineConfig, lwk_cpu: int = 1, nbytes: int = 0) -> tuple[int, dict[str, int]]:
    """A system call the kernel runs where it is called: (cycles, steps)."""
    cfg = _cfg(machine)
    check_lwk_cpu(cfg, lwk_cpu)
    check_bytes(nbytes)
    tl_ = run_marks(cfg, {lwk_cpu: local_program(cfg, lwk_cpu, nbytes)}, {}, "local system call")
    return steps_from_marks(tl_, EV, LOCAL_STEPS)


def offload_cycles(machine: str | MachineConfig, lwk_cpu: int = 1, nbytes: int = 0) -> tuple[int, dict[str, int]]:
    """A McKernel system call offloaded to mcexec on Linux core 0: (cycles, steps)."""
    cfg = _cfg(machine)
    check_lwk_cpu(cfg, lwk_cpu)
    check_bytes(nbytes)
    progs = {lwk_cpu: offload_caller(cfg, lwk_cpu, nbytes), LINUX_CPU: mcexec_program(cfg, lwk_cpu, nbytes)}
    tl_ = run_marks(cfg, progs, {(LINUX_CPU, IKC_VECTOR): ikc_handler(cfg, lwk_cpu)}, "McKernel offload")
    return steps_from_marks(tl_, EV, OFFLOAD_STEPS)


# ---------------------------------------------------------------------------- noise and BSP benches

def _kernels(opts: BenchOptions) -> list[str]:
    k = opts.extra.get("kernel") or "all"
    return ["linux", "linux-nohz", "mckernel", "mos"] if k == "all" else [k]


def kernel_cores(cfg: MachineConfig, kernel: str, n: int | None = None) -> list[int]:
    """The cores an application runs on under ``kernel``: all cores for Linux; for an LWK, every core but
    core 0, which stays with Linux (McKernel's reserved cores, mOS's lwkcpus)."""
    cores = list(range(cfg.cores)) if kernel.startswith("linux") or kernel == "none" else list(range(1, cfg.cores))
    return cores if n is None else cores[:n]


def noise_rows(machine: str | MachineConfig, kernels=("linux", "linux-nohz", "mckernel", "mos"), hz: int = 1000,
               quantum: int = 50_000, quanta: int = 400, max_cores: int | None = None,
               daemon: tuple[int, int] | None = None) -> list[dict]:
    """FWQ per kernel: one row each, with the quantum times of the first core kept for the plot.
    ``daemon`` runs on the Linux kernels' cores only (an LWK core runs no kernel threads)."""
    cfg = _cfg(machine)
    rows = []
    for k in kernels:
        cores = kernel_cores(cfg, k, max_cores)
        n = max(quanta, 8 * noise.tick_period(cfg, hz) // quantum)     # at least eight ticks
        if daemon is not None and k.startswith("linux"):      # cover two of the daemon's wake-ups
            n = max(n, (2 * daemon[0] + 1) * noise.tick_period(cfg, hz) // quantum)
        times = noise.fwq_times(cfg, k, cores, quantum, n, hz, daemon=daemon if k.startswith("linux") else None)
        st = noise.fwq_stats(times)
        per = noise.interruption_period(times[cores[0]], float(np.median(times[cores[0]])))
        rows.append({"kernel": k, "cores": len(cores), **st,
                     "period": per, "trace": [int(x) for x in times[cores[0]]]})
    return rows


def _noise_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    return noise_rows(cfg, _kernels(opts), hz=int(opts.extra.get("hz") or 1000), max_cores=opts.max_cores,
                      daemon=noise.parse_daemon(opts.extra.get("daemon")))


def _noise_table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"Fixed work quanta (50,000-cycle quantum) per kernel on {cfg.name} (cycles)",
           f"{'kernel':<11} {'cores':>5} {'quanta':>7} {'min':>8} {'median':>9} {'p99':>9} {'max':>8} "
           f"{'max/min':>8} {'slowed':>7} {'period':>10}"]
    for r in rows:
        per = f"{r['period']:.0f}" if r.get("period") else "-"
        out.append(f"{r['kernel']:<11} {r['cores']:>5} {r['quanta']:>7} {r['min']:>8} {r['median']:>9.0f} "
                   f"{r['p99']:>9.0f} {r['max']:>8} {r['max'] / r['min']:>8.4f} {r['slowed_fraction']:>7.3f} {per:>10}")
    out.append("slowed: quanta more than 1 % over the minimum; period: mean cycles between slowed quanta "
               "(the tick period under Linux)")
    return "\n".join(out)


def _noise_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, r in enumerate(rows):
        ax.plot(range(len(r["trace"])), r["trace"], linewidth=1.0, linestyle=("-", "--", ":", "-.")[i % 4],
                label=f"{r['kernel']} (one core of {r['cores']})")
    return plots.finish(fig, ax, "quantum index (one core)", "quantum time (cycles)", f"FWQ: fixed work quanta under each kernel on {cfg.name}")


def bsp_rows(machine: str | MachineConfig, kernels=("linux", "mckernel", "mos"), hz: int = 1000,
             work: int = 50_000, max_cores: int | None = None, daemon: tuple[int, int] | None = None) -> list[dict]:
    """cycles per BSP iteration on 2, 4, 8, ... cores under each kernel; slowdown vs the noise-free run
    on the same cores.  ``daemon`` runs on Linux's cores only."""
    cfg = _cfg(machine)
    rows = []
    for k in kernels:
        avail = kernel_cores(cfg, k)
        top = min(len(avail), max_cores or len(avail))
        counts = [n for n in (2, 4, 8, 16, 32, 64) if n <= top] + ([top] if top not in (2, 4, 8, 16, 32, 64) else [])
        for n in sorted(set(c for c in counts if c >= 2)):
            cores = avail[:n]
            d = daemon if k.startswith("linux") else None
            base = noise.bsp_cycles(cfg, "none", cores, work, hz=hz, daemon=d)
            cyc = noise.bsp_cycles(cfg, k, cores, work, hz=hz, daemon=d)
            rows.append({"kernel": k, "cores": n, "cycles_per_iteration": round(cyc, 1),
                         "slowdown": round(cyc / base, 5)})
    return rows


def _bsp_rows(cfg: MachineConfig, opts: BenchOptions) -> list[dict]:
    ks = _kernels(opts)
    return bsp_rows(cfg, [k for k in ks if k != "linux-nohz"] or ks, hz=int(opts.extra.get("hz") or 1000),
                    max_cores=opts.max_cores, daemon=noise.parse_daemon(opts.extra.get("daemon")))


def _bsp_table(rows: list[dict], cfg: MachineConfig) -> str:
    out = [f"BSP: 50,000 cycles of work + a dissemination barrier per iteration on {cfg.name}",
           f"{'kernel':<10} {'cores':>5} {'cycles/iter':>12} {'slowdown':>9}"]
    for r in rows:
        out.append(f"{r['kernel']:<10} {r['cores']:>5} {r['cycles_per_iteration']:>12.1f} {r['slowdown']:>9.5f}")
    out.append("slowdown: against the same cores with no tick; Linux ticks are staggered (skew_tick=1); "
               "LWK runs leave core 0 to Linux")
    return "\n".join(out)


def _bsp_plot(rows: list[dict], cfg: MachineConfig, plt):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k in dict.fromkeys(r["kernel"] for r in rows):
        pts = sorted((r["cores"], 100 * (r["slowdown"] - 1)) for r in rows if r["kernel"] == k)
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=k)
    return plots.finish(fig, ax, "cores", "slowdown vs noise-free (%)", f"BSP noise amplification on {cfg.name}")


KERNEL_OPTION = BenchOption("--kernel", "the kernel(s) to run: linux, linux-nohz, mckernel, mos or all",
                            choices=("linux", "linux-nohz", "mckernel", "mos", "all"), default="all")
HZ_OPTION = BenchOption("--hz", "Linux's tick rate (CONFIG_HZ)", choices=("250", "1000"), default="1000")
DAEMON_OPTION = BenchOption("--daemon", "EVERY:WORK: on Linux cores, a kernel thread woken every EVERY ticks "
                            "that runs WORK cycles (default: none)")

NOISE = Experiment(
    name="noise",
    summary="OS noise: fixed work quanta on every core under Linux (HZ tick), tickless Linux, McKernel and mOS",
    keys=("kernel", "cores", "quanta", "min", "median", "p99", "max", "slowed_fraction", "period", "trace"),
    rows=_noise_rows, table=_noise_table, plot=_noise_plot,
    options=(KERNEL_OPTION, HZ_OPTION, DAEMON_OPTION), default_machine="amd-4x4")

BSP = Experiment(
    name="bsp",
    summary="Noise amplification: a bulk-synchronous loop (work + dissemination barrier) on 2..N cores per kernel",
    keys=("kernel", "cores", "cycles_per_iteration", "slowdown"),
    rows=_bsp_rows, table=_bsp_table, plot=_bsp_plot,
    options=(KERNEL_OPTION, HZ_OPTION, DAEMON_OPTION), default_machine="amd-4x4")


PERSONALITY = Personality(
    name="mckernel",
    summary="IHK/McKernel LWK: tickless cores beside Linux, system calls offloaded over IKC to mcexec",
    boot="smp",
    init=mckernel_init,
    experiments=(NOISE, BSP),
)
