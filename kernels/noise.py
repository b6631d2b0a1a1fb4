"""OS noise on the machine model: Linux's periodic timer tick, fixed work quanta (FWQ) and a
bulk-synchronous (BSP) loop, shared by the HPC personalities (``kernels/mckernel.py``, ``kernels/mos.py``).

A *kernel* here is what a core runs under:

* ``linux``: the local APIC timer in periodic mode at ``HZ`` (``LOCAL_TIMER_VECTOR``), each expiry
  running the tick handler below (Linux 2.6.2x names), with ``skew_tick`` optional.
* ``linux-nohz``: ``nohz_full``: the tick stops while one task runs, except a residual 1 Hz tick.
* ``mckernel`` / ``mos``: a lightweight kernel's core: tickless, the LVT timer never armed.
* ``none``: the noise-free reference (no timer, as the LWKs, but named so the tables say what it is).

The tick handler (``tick_handler``), as ``smp_apic_timer_interrupt`` runs it::

    ack_APIC_irq(); irq_enter()                                   (EOI; per-CPU irq count)
    tick_periodic():  if (cpu == tick_do_timer_cpu) do_timer(1)   (write_seqlock(&xtime_lock);
                                                                   jiffies_64++; update_wall_time();
                                                                   write_sequnlock: shared lines)
    update_process_times(user):
        account_process_tick        (per-CPU kstat, current->utime)
        run_local_timers            (raise_softirq(TIMER_SOFTIRQ): per-CPU pending mask)
        rcu_check_callbacks         (per-CPU rcu_data; reads the global rcu_ctrlblk)
        scheduler_tick              (spin_lock(&rq->lock); update_rq_clock; task_tick_fair;
                                     spin_unlock; trigger_load_balance: jiffies vs rq->next_balance)
    irq_exit() -> do_softirq():
        run_timer_softirq           (spin_lock(&base->lock); base->timer_jiffies = jiffies; unlock)
        run_rebalance_domains       (when due: reads every other CPU's rq->nr_running, rq->load)

Every cost of the handler comes from the machine model: the interrupt entry and IRET
(``core.interrupt_entry``, ``core.iret_latency``), the EOI (an APIC register write), and the
memory traffic of the lines above (per-CPU lines stay in the CPU's cache; jiffies, xtime_lock
and the timekeeper are written by the tick CPU every tick and read by the others, so they miss;
a rebalance reads the other CPUs' run-queue lines).  The handler's register-only instruction work
is not costed: no published per-instruction count of this path was found (a missing mechanism,
not a knob), so the model's tick is a lower bound.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from boot import timeline as tl
from hwmodel import apic, isa
from hwmodel.config import MachineConfig, clock_mhz, load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine

LINE = 64
KERNELS = ("linux", "linux-nohz", "mckernel", "mos", "none")
TICKLESS = ("mckernel", "mos", "none")       # kernels whose cores never arm the LVT timer
HZ_CHOICES = (100, 250, 300, 1000)           # kernel/Kconfig.hz: the HZ values Linux offers

# arch/x86/include/asm/irq_vectors.h (2.6.2x): LOCAL_TIMER_VECTOR 0xef
LOCAL_TIMER_VECTOR = 0xEF
# arch/x86/kernel/apic_64.c: #define APIC_DIVISOR 16 (setup_APIC_timer programs divide-by-16)
APIC_DIVISOR = 16
# kernel/time/tick-sched.c (nohz_full, since 3.10): the tick is deferred at most 1 s while one task runs
NOHZ_FULL_RESIDUAL_HZ = 1
# include/linux/topology.h (2.6.2x) SD_CPU_INIT: balance interval 1 ms, busy_factor 64: a busy CPU
# rebalances its package domain every 64 ms (from the header as recalled; not re-checked)
BUSY_BALANCE_MS = 64

# timeline events
EV_QUANTUM = 40        # value: one quantum's cycles (RDTSC difference)
EV_BSP_START, EV_BSP_END = 41, 42
EV_TICK = 43           # the tick handler's entry (value: the CPU)

# physical layout: code, shared kernel data (node 0), per-CPU areas and stacks (node-local)
CODE = 0x10_0000                 # + 0x4000 * core (main) ; handler at + 0x2000
JIFFIES = 0x20_0000              # jiffies_64 (its own line)
XTIME_LOCK = 0x20_0040           # seqlock_t xtime_lock
TIMEKEEPER = 0x20_0080           # xtime / the clocksource's cycle_last (update_wall_time)
RCU_CTRLBLK = 0x20_00C0          # rcu_ctrlblk.cur: read by every CPU's rcu_check_callbacks
BARRIER = 0x24_0000              # BSP dissemination flags (node-local, + 0x1000 * rank)
PERCPU = 0x30_0000               # + node base + 0x1000 * cpu: the CPU's per-CPU area
PC_IRQCOUNT, PC_KSTAT, PC_CURR_UTIME, PC_SOFTIRQ, PC_RCU = 0, 64, 128, 192, 256
PC_RQ_LOCK, PC_RQ, PC_TVEC_LOCK, PC_TVEC = 320, 384, 448, 512     # rq lock (next, serving), rq data, timer base
PC_DAEMON, PC_PREV_TASK, PC_KTHREAD = 576, 640, 704                # daemon tick count; switch_to's two tasks
RQ_CLOCK, RQ_NR_RUNNING, RQ_LOAD, RQ_NEXT_BALANCE = 0, 8, 16, 24
STACKS = 0x38_0000               # + node base: the CPU's kernel stack top at + 0x2000 * (cpu + 1)
HANDLER_REGS = ("r9", "r10", "r11", "r12", "r13")     # the registers the handler uses (saved on the stack)


def tickless(p: isa.Program, kernel: str) -> None:
    """An LWK core's ``tickless`` init step: the LVT timer masked with no initial count, so no
    periodic tick ever interrupts it."""
    tl.begin(p, f"{kernel} tickless")
    p.apic_write(apic.LVT_TIMER, apic.LVT_MASK | LOCAL_TIMER_VECTOR,
                 comment="LVT timer masked, no initial count: no periodic tick on this core")
    tl.end(p, f"{kernel} tickless")


def _cfg(machine: str | MachineConfig) -> MachineConfig:
    return machine if isinstance(machine, MachineConfig) else load_machine(machine)


def node_base(cfg: MachineConfig, cpu: int) -> int:
    """First byte of the memory local to ``cpu``'s package on node-interleaved machines, else 0."""
    if cfg.memory.interleave != "node":
        return 0
    return (cfg.memory.size // cfg.packages) // 4096 * 4096 * (cpu // cfg.cores_per_package)


def percpu(cfg: MachineConfig, cpu: int) -> int:
    return node_base(cfg, cpu) + PERCPU + 0x1000 * cpu


def stack_top(cfg: MachineConfig, cpu: int) -> int:
    return node_base(cfg, cpu) + STACKS + 0x2000 * (cpu + 1)


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise MksimError(f"kernel {kernel!r}: must be one of {', '.join(KERNELS)}")
    return kernel


def check_hz(hz: int) -> int:
    if hz not in HZ_CHOICES:
        raise MksimError(f"HZ {hz!r}: must be one of {', '.join(map(str, HZ_CHOICES))} (kernel/Kconfig.hz)")
    return hz


def tick_period(cfg: MachineConfig, hz: int) -> int:
    """Core cycles between two ticks at ``hz``: the APIC timer count Linux calibrates
    (calibrate_APIC_clock: timer ticks per jiffy, truncated) times the divisor, in core cycles."""
    cycles_per_tick = Fraction(cfg.apic.timer_period_num, cfg.apic.timer_period_den)
    count = timer_count(cfg, hz)
    return int(count * APIC_DIVISOR * cycles_per_tick)


def timer_count(cfg: MachineConfig, hz: int) -> int:
    """The LVT timer's initial count for ``hz`` with divide-by-16 (the value Linux writes to APIC_TMICT)."""
    period = Fraction(clock_mhz(cfg.clock_ghz) * 1_000_000, hz)
    count = int(period / (APIC_DIVISOR * Fraction(cfg.apic.timer_period_num, cfg.apic.timer_period_den)))
    if not 1 <= count < 1 << 32:
        raise MksimError(f"{cfg.name}: HZ {hz} needs an APIC timer count {count}, outside 1..2**32-1")
    return count


def skew_offset(cfg: MachineConfig, hz: int, cpu: int, ncpus: int) -> int:
    """skew_tick=1 (kernel/time/tick-sched.c, tick_setup_sched_timer): CPU ``cpu``'s tick is offset by
    half a tick period times cpu / nr_cpus, so the CPUs do not all take jiffies_lock at once."""
    return tick_period(cfg, hz) // 2 * cpu // max(ncpus, 1)


# ---------------------------------------------------------------------------- the tick

def check_daemon(daemon) -> tuple[int, int] | None:
    """``daemon``: None, or (every, work): a kernel thread woken every ``every`` ticks that runs ``work`` cycles."""
    if daemon is None:
        return None
    if (not isinstance(daemon, tuple) or len(daemon) != 2 or not all(isinstance(x, int) for x in daemon)
            or daemon[0] < 1 or daemon[1] < 1):
        raise MksimError(f"daemon {daemon!r}: must be (every ticks >= 1, work cycles >= 1)")
    return daemon


def parse_daemon(text: str | None) -> tuple[int, int] | None:
    """``EVERY:WORK`` (ticks, cycles) from the command line, or None."""
    if text is None:
        return None
    try:
        every, work = (int(x) for x in text.split(":"))
    except ValueError:
        raise MksimError(f"--daemon {text!r}: must be EVERY:WORK (ticks between wake-ups : cycles of work)") from None
    return check_daemon((every, work))


def _daemon(p: isa.Program, pc: int, daemon: tuple[int, int]) -> None:
    """A per-CPU kernel thread (a kworker, say) that a timer wakes every ``every`` ticks: at irq_exit the
    woken thread preempts the application (context switch in), runs ``work`` cycles (the user's number:
    what the daemon does is not modelled), and switches back.  The switches cost their memory traffic."""
    every, work = daemon
    p.load("r10", pc + PC_DAEMON, comment="the daemon's timer: ticks since it last ran")
    p.add("r10", "r10", 1)
    p.br("lt", "r10", every, "daemon_sleeps")
    p.store(pc + PC_DAEMON, 0)
    for what in ("switch to the kernel thread", "switch back to the application"):
        p.fadd("r11", pc + PC_RQ_LOCK, 1, comment=f"schedule: spin_lock(&rq->lock) ({what})")
        p.spin_until(pc + PC_RQ_LOCK + 8, "eq", "r11", rd="r12")
        for i in range(6):
            p.store(pc + PC_PREV_TASK + 8 * i, "r10", comment="switch_to: save prev's callee-saved registers")
        for i in range(6):
            p.load("r12", pc + PC_KTHREAD + 8 * i, comment="switch_to: load next's")
        p.fadd("r12", pc + PC_RQ_LOCK + 8, 1, comment="spin_unlock(&rq->lock)")
        if what.startswith("switch to"):
            p.compute(work, comment="the daemon's work (given by the user)")
    p.jmp("daemon_done")
    p.label("daemon_sleeps")
    p.store(pc + PC_DAEMON, "r10")
    p.label("daemon_done")


def tick_handler(cfg: MachineConfig, cpu: int, tick_cpu: int, balance_cpus: list[int], hz: int,
                 daemon: tuple[int, int] | None = None) -> isa.Program:
    """smp_apic_timer_interrupt on ``cpu`` (see the module docstring); ``tick_cpu`` is
    tick_do_timer_cpu (the CPU that advances jiffies), ``balance_cpus`` the CPUs of its sched domain;
    ``daemon``: optionally a kernel thread woken every so many ticks (``_daemon``)."""
    pc = percpu(cfg, cpu)
    p = isa.Program(f"tick-cpu{cpu}")
    p.mark(EV_TICK, cpu, comment="apicinterrupt LOCAL_TIMER_VECTOR")
    p.movi("r7", 8 * len(HANDLER_REGS))
    p.sub("sp", "sp", "r7", comment="SAVE_ARGS: the registers the C code clobbers")
    for i, r in enumerate(HANDLER_REGS):
        p.store(8 * i, r, base="sp")
    p.eoi(comment="ack_APIC_irq")
    p.fadd("r9", pc + PC_IRQCOUNT, 1, comment="irq_enter: add_preempt_count(HARDIRQ_OFFSET)")
    if cpu == tick_cpu:
        p.fadd("r9", XTIME_LOCK, 1, comment="do_timer: write_seqlock(&xtime_lock)")
        p.load("r10", JIFFIES, comment="jiffies_64++")
        p.add("r10", "r10", 1)
        p.store(JIFFIES, "r10")
        p.load("r11", TIMEKEEPER, comment="update_wall_time: clock->cycle_last, xtime")
        p.store(TIMEKEEPER, "r10")
        p.fadd("r9", XTIME_LOCK, 1, comment="write_sequnlock(&xtime_lock)")
    p.load("r10", pc + PC_KSTAT, comment="account_process_tick: kstat_this_cpu.cpustat.user += 1")
    p.add("r10", "r10", 1)
    p.store(pc + PC_KSTAT, "r10")
    p.store(pc + PC_CURR_UTIME, "r10", comment="current->utime")
    p.load("r11", pc + PC_SOFTIRQ, comment="run_local_timers: raise_softirq(TIMER_SOFTIRQ)")
    p.store(pc + PC_SOFTIRQ, 1)
    p.load("r11", pc + PC_RCU, comment="rcu_check_callbacks: this CPU's rcu_data")
    p.load("r11", RCU_CTRLBLK, comment="rcu_ctrlblk.cur (global, read-mostly)")
    # scheduler_tick: spin_lock(&rq->lock) (a ticket spinlock since 2.6.25), update_rq_clock, task_tick_fair
    p.fadd("r11", pc + PC_RQ_LOCK, 1, comment="scheduler_tick: spin_lock(&rq->lock): take a ticket")
    p.spin_until(pc + PC_RQ_LOCK + 8, "eq", "r11", rd="r12", comment="wait for now-serving")
    p.load("r12", pc + PC_RQ + RQ_CLOCK, comment="update_rq_clock")
    p.add("r12", "r12", 1)
    p.store(pc + PC_RQ + RQ_CLOCK, "r12")
    p.store(pc + PC_RQ + RQ_LOAD, "r12", comment="task_tick_fair: update_curr (vruntime, load)")
    p.fadd("r12", pc + PC_RQ_LOCK + 8, 1, comment="spin_unlock(&rq->lock)")
    # trigger_load_balance: if time_after_eq(jiffies, rq->next_balance) raise SCHED_SOFTIRQ
    p.load("r10", JIFFIES, comment="trigger_load_balance: jiffies (written by tick_do_timer_cpu)")
    p.load("r12", pc + PC_RQ + RQ_NEXT_BALANCE, comment="rq->next_balance")
    # irq_exit -> do_softirq: run_timer_softirq
    p.fadd("r13", pc + PC_TVEC_LOCK, 1, comment="run_timer_softirq: spin_lock_irq(&base->lock)")
    p.spin_until(pc + PC_TVEC_LOCK + 8, "eq", "r13", rd="r11")
    p.store(pc + PC_TVEC, "r10", comment="base->timer_jiffies = jiffies (no timer expires)")
    p.fadd("r13", pc + PC_TVEC_LOCK + 8, 1, comment="spin_unlock_irq(&base->lock)")
    p.store(pc + PC_SOFTIRQ, 0, comment="softirq pending mask cleared")
    p.br("ltu", "r10", "r12", "no_balance")
    # run_rebalance_domains -> load_balance -> find_busiest_group: read every other CPU's rq load
    for other in balance_cpus:
        if other != cpu:
            p.load("r11", percpu(cfg, other) + PC_RQ + RQ_NR_RUNNING,
                   comment=f"find_busiest_group: cpu{other} rq->nr_running, rq->load")
    interval = BUSY_BALANCE_MS * hz // 1000 or 1
    p.movi("r11", interval)
    p.add("r12", "r10", "r11")
    p.store(pc + PC_RQ + RQ_NEXT_BALANCE, "r12", comment="rq->next_balance = jiffies + interval")
    p.label("no_balance")
    if daemon is not None:
        _daemon(p, pc, daemon)
    p.fadd("r9", pc + PC_IRQCOUNT, -1, comment="irq_exit: sub_preempt_count(HARDIRQ_OFFSET)")
    for i, r in enumerate(HANDLER_REGS):
        p.load(r, 8 * i, base="sp", comment="RESTORE_ARGS")
    p.movi("r7", 8 * len(HANDLER_REGS))
    p.add("sp", "sp", "r7")
    p.iret(comment="iretq")
    return p


def setup_core(w, cfg: MachineConfig, cpu: int, kernel: str, hz: int, linux_cpus: list[int],
               daemon: tuple[int, int] | None = None) -> None:
    """Stack pointer, and on a ticking kernel the timer-interrupt handler of ``cpu`` (with its daemon)."""
    w.set_reg(cpu, "sp", stack_top(cfg, cpu))
    if kernel in TICKLESS:
        return
    h = tick_handler(cfg, cpu, linux_cpus[0], [c for c in linux_cpus
                                               if c // cfg.cores_per_package == cpu // cfg.cores_per_package], hz,
                     daemon)
    w.set_handler(cpu, LOCAL_TIMER_VECTOR, w.place(h, CODE + 0x4000 * cpu + 0x2000).pc())


def arm_tick(p: isa.Program, cfg: MachineConfig, kernel: str, hz: int) -> None:
    """setup_APIC_timer (Linux) or nothing (a tickless LWK: the LVT timer is never armed)."""
    p.sti()                          # interrupts on, as in user mode
    if kernel == "linux":
        p.timer_periodic(LOCAL_TIMER_VECTOR, timer_count(cfg, hz), divide=APIC_DIVISOR,
                         comment="setup_APIC_timer: periodic, LOCAL_TIMER_VECTOR, divide by 16")
    elif kernel == "linux-nohz":
        p.timer_periodic(LOCAL_TIMER_VECTOR, timer_count(cfg, NOHZ_FULL_RESIDUAL_HZ), divide=APIC_DIVISOR,
                         comment="nohz_full: the residual 1 Hz tick")


def _init_memory(w, cfg: MachineConfig, cpus: list[int], hz: int) -> None:
    """rq->next_balance starts one interval out (as after the first rebalance)."""
    interval = BUSY_BALANCE_MS * hz // 1000 or 1
    for c in cpus:
        w.write(percpu(cfg, c) + PC_RQ + RQ_NEXT_BALANCE, interval.to_bytes(8, "little"))


def _run(m: Machine, w, what: str) -> np.ndarray:
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise MksimError(f"{what} on {m.cfg.name} ended {status}: {m.waits() or m.fault_report()}")
    return m.timeline()


# ---------------------------------------------------------------------------- FWQ

def fwq_program(cfg: MachineConfig, cpu: int, kernel: str, hz: int, quantum: int, quanta: int) -> isa.Program:
    """Fixed work quanta: RDTSC, ``quantum`` cycles of work, RDTSC, record the difference; ``quanta`` times."""
    p = isa.Program(f"fwq-{kernel}-cpu{cpu}")
    arm_tick(p, cfg, kernel, hz)
    p.movi("r1", 0)
    p.label("quantum")
    p.rdtsc("r2")
    p.compute(quantum, comment="the fixed work quantum")
    p.rdtsc("r3")
    p.sub("r4", "r3", "r2")
    p.mark(EV_QUANTUM, "r4")
    p.add("r1", "r1", 1)
    p.br("lt", "r1", quanta, "quantum")
    p.halt()
    return p


def fwq_times(machine: str | MachineConfig, kernel: str, cores: list[int], quantum: int = 50_000,
              quanta: int = 400, hz: int = 1000, skew: bool = False,
              daemon: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
    """Each core of ``cores`` runs FWQ under ``kernel``; returns the quantum times (cycles) per core, in order.
    ``daemon`` (Linux kernels only): a kernel thread on every core (``_daemon``)."""
    cfg = _cfg(machine)
    check_kernel(kernel)
    check_hz(hz)
    check_daemon(daemon)
    if quantum < 1 or quanta < 1:
        raise MksimError(f"FWQ: quantum {quantum} and quanta {quanta} must be >= 1")
    if not cores or any(not 0 <= c < cfg.cores for c in cores) or len(set(cores)) != len(cores):
        raise MksimError(f"FWQ: cores {cores} must be distinct cores of {cfg.name} (0..{cfg.cores - 1})")
    m = Machine(cfg)
    w = m.workload()
    _init_memory(w, cfg, cores, hz)
    for i, c in enumerate(cores):
        setup_core(w, cfg, c, kernel, hz, cores, daemon)
        at = skew_offset(cfg, hz, i, len(cores)) if skew else 0
        w.start(c, w.place(fwq_program(cfg, c, kernel, hz, quantum, quanta), CODE + 0x4000 * c).pc(), at=at)
    tl = _run(m, w, f"FWQ ({kernel})")
    return {c: tl[(tl[:, 0] == c) & (tl[:, 2] == EV_QUANTUM)][:, 3].astype(np.int64) for c in cores}


def fwq_stats(times: dict[int, np.ndarray]) -> dict:
    """min, median, p99, max over all quanta of all cores, and the fraction slowed more than 1 % over the minimum."""
    allq = np.concatenate(list(times.values()))
    lo = int(allq.min())
    return {"quanta": int(allq.size), "min": lo, "median": float(np.median(allq)),
            "p99": float(np.percentile(allq, 99)), "max": int(allq.max()),
            "slowed_fraction": float(np.mean(allq > lo * 1.01))}


def interruption_period(times: np.ndarray, quantum_cycles: float) -> float | None:
    """The noise spectrum's main period: the mean distance (in quanta x the quantum's time) between slowed quanta."""
    lo = times.min()
    idx = np.nonzero(times > lo * 1.01)[0]
    if idx.size < 2:
        return None
    return float(np.mean(np.diff(idx)) * quantum_cycles)


# ---------------------------------------------------------------------------- BSP

def _barrier_flag(cfg: MachineConfig, cores: list[int], rank: int, rnd: int) -> int:
    return node_base(cfg, cores[rank]) + BARRIER + 0x1000 * rank + LINE * rnd


def bsp_program(cfg: MachineConfig, cores: list[int], rank: int, kernel: str, hz: int, work: int,
                iters: int, warm: int) -> isa.Program:
    """Compute ``work`` cycles, then a dissemination barrier (Hensgen, Finkel and Manber 1988): in round
    r, rank i writes the epoch into the flag of rank (i + 2^r) mod k and waits for its own flag.
    Flags only grow (the epoch is the iteration number), so they are never reset."""
    k = len(cores)
    rounds = max(1, (k - 1).bit_length())
    p = isa.Program(f"bsp-{kernel}-rank{rank}")
    arm_tick(p, cfg, kernel, hz)
    p.movi("r1", 1)
    p.label("iter")
    if rank == 0:
        p.br("ne", "r1", warm + 1, "work")
        p.mark(EV_BSP_START)
    p.label("work")
    p.compute(work, comment="the superstep's computation")
    if k > 1:
        for r in range(rounds):
            p.store(_barrier_flag(cfg, cores, (rank + (1 << r)) % k, r), "r1", comment=f"barrier round {r}: signal")
            p.spin_until(_barrier_flag(cfg, cores, rank, r), "ge", "r1", rd="r2", comment="wait for my partner")
    p.add("r1", "r1", 1)
    p.br("lt", "r1", warm + iters + 1, "iter")
    if rank == 0:
        p.mark(EV_BSP_END)
    p.halt()
    return p


def bsp_cycles(machine: str | MachineConfig, kernel: str, cores: list[int], work: int = 50_000,
               iters: int | None = None, hz: int = 1000, skew: bool = True, warm: int = 2,
               daemon: tuple[int, int] | None = None) -> float:
    """Cycles per BSP iteration on ``cores`` under ``kernel`` (rank 0's timeline, after ``warm`` iterations).
    By default the run covers four tick periods, so every core takes the same number of ticks."""
    cfg = _cfg(machine)
    check_kernel(kernel)
    check_hz(hz)
    check_daemon(daemon)
    if work < 1:
        raise MksimError(f"BSP: work {work} must be >= 1")
    if not cores or any(not 0 <= c < cfg.cores for c in cores) or len(set(cores)) != len(cores):
        raise MksimError(f"BSP: cores {cores} must be distinct cores of {cfg.name} (0..{cfg.cores - 1})")
    if iters is None:
        ticks = 4 * (daemon[0] if daemon else 1)
        iters = max(8, ticks * tick_period(cfg, hz) // work)
    m = Machine(cfg)
    w = m.workload()
    _init_memory(w, cfg, cores, hz)
    for rank, c in enumerate(cores):
        setup_core(w, cfg, c, kernel, hz, cores, daemon)
        at = skew_offset(cfg, hz, rank, len(cores)) if (skew and kernel == "linux") else 0
        prog = bsp_program(cfg, cores, rank, kernel, hz, work, iters, warm)
        w.start(c, w.place(prog, CODE + 0x4000 * c).pc(), at=at)
    tl = _run(m, w, f"BSP ({kernel}, {len(cores)} cores)")
    t0 = tl[tl[:, 2] == EV_BSP_START][0, 1]
    t1 = tl[tl[:, 2] == EV_BSP_END][0, 1]
    return float(t1 - t0) / iters

