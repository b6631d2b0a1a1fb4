"""Speed of the compiled program engine (``Machine.execute``) on a sharing-heavy mix.

    python benchmarks/engine_speed.py [--ops N] [--repeat R] [--json] [--mix sharing|alu] [--cores N]

All 16 cores of ``amd-4x4`` run the same loop (core c, iteration i):

* ALU ops and a branch that pick one of 4 shared counter lines, ``(i + c) % 4``,
  and a fetch-and-add on it (node 0);
* a load from one of 16 shared read-mostly lines (node 0), ``(i + c) % 16``;
  every 8th iteration a store to it as well (the readers' copies are invalidated);
* a store and a load on the core's private 32 KiB region, one line further each
  iteration (the region sits in the core's own memory node);
* a few more ALU ops (xor, mul, shr);
* a store of ``i`` to the core's own flag line (node 0), then a ``spin_until`` on
  core (c + 1) % 16's flag reaching ``i - 1``: a core that runs more than one
  iteration ahead of its neighbour sleeps until the neighbour's store wakes it
  (a few percent of the iterations).  A sleeping core always waits on a core that
  is behind it, so going round the ring can never close a cycle: no deadlock.
* the loop counter and the back branch.

That is 24 ops an iteration (2 loads, 2 stores, 1 fetch-and-add, 1 spin, 16 ALU ops,
2 branches), 25 on every 8th (the shared store); the number of iterations is chosen
so that the 16 cores execute about ``--ops`` ops in all.

``--mix alu`` runs register ops only (22 ALU ops, the counter and the back branch: 24 an
iteration) on cores 0..``--cores``-1: the speed of the run loop's register-op path.

Timed: ``Machine.execute`` only, on a fresh ``Machine`` with the workload already
loaded (``Machine(...)``, building the programs and ``load_workload`` are outside
the timed region).  A short warm-up run goes first, so numba compiling (or loading
its cache) is never timed.  ``ops`` is the engine's own count of executed ops
(``m.cpu.out[1]``); the speed is ops / seconds, best of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# the code of the checkout this script is in, even where another copy is installed (so that
# two trees can be compared by running each one's script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hwmodel import isa  # noqa: E402
from hwmodel.config import load_machine  # noqa: E402
from hwmodel.machine import Machine  # noqa: E402

MACHINE = "amd-4x4"
CORES = 16
LINE = 64
CODE = 0x10_0000            # core c's program at CODE + c * 64 KiB
COUNTERS = 0x80_0000        # 4 fetch-and-add lines (node 0)
N_COUNTERS = 4
SHARED = 0x81_0000          # 16 read-mostly lines (node 0)
N_SHARED = 16
FLAGS = 0x82_0000           # one flag line per core (node 0)
PRIVATE = 0x100_0000        # + node base + core * 1 MiB: 32 KiB private region
PRIVATE_BYTES = 32 << 10
LAG = 1                     # a core may run this many iterations ahead of its neighbour


def _node_base(cfg, core: int) -> int:
    if cfg.memory.interleave != "node":
        return 0
    return (cfg.memory.size // cfg.packages) // 4096 * 4096 * (core // cfg.cores_per_package)


def program(cfg, c: int, iters: int) -> isa.Program:
    """Core ``c``'s loop (see the module docstring)."""
    p = isa.Program(f"mix-core{c}")
    nxt = (c + 1) % CORES
    p.movi("r0", 0, comment="i")
    p.movi("r1", _node_base(cfg, c) + PRIVATE + c * (1 << 20), comment="private region")
    p.movi("r2", 0, comment="private offset")
    p.label("loop")
    # fetch-and-add on one of a few shared lines
    p.add("r3", "r0", c)
    p.alu("and", "r3", "r3", N_COUNTERS - 1)
    p.alu("shl", "r3", "r3", 6)
    p.fadd("r4", COUNTERS, 1, base="r3", comment="shared counter")
    # a shared read-mostly line; every 8th iteration a store to it
    p.add("r5", "r0", c)
    p.alu("and", "r5", "r5", N_SHARED - 1)
    p.alu("shl", "r5", "r5", 6)
    p.load("r6", SHARED, base="r5", comment="shared line")
    p.alu("and", "r7", "r0", 7)
    p.br("ne", "r7", 0, "nostore")
    p.store(SHARED + 8, "r4", base="r5", comment="write the shared line")
    p.label("nostore")
    # private lines
    p.add("r8", "r1", "r2")
    p.store(0, "r0", base="r8", comment="private store")
    p.load("r9", 8, base="r8", comment="private load")
    p.add("r2", "r2", LINE)
    p.alu("and", "r2", "r2", PRIVATE_BYTES - 1)
    # ALU work
    p.alu("xor", "r10", "r6", "r9")
    p.alu("mul", "r10", "r10", 0x9E3779B1)
    p.alu("shr", "r10", "r10", 7)
    p.add("r11", "r11", "r10")
    # flags: publish my progress, wait (bounded lag) for my neighbour's
    p.store(FLAGS + c * LINE, "r0", comment="my flag")
    p.sub("r12", "r0", LAG)
    p.spin_until(FLAGS + nxt * LINE, "ge", "r12", rd="r13", comment=f"core {nxt} at least at i - {LAG}")
    p.add("r0", "r0", 1)
    p.br("lt", "r0", iters, "loop")
    p.halt()
    return p


OPS_PER_ITER = 24   # ops of one iteration without the shared store; 25 on every 8th


def program_alu(cfg, c: int, iters: int) -> isa.Program:
    """``--mix alu``: 22 register ops, the loop counter and the back branch (24 ops, no memory)."""
    p = isa.Program(f"alu-core{c}")
    p.movi("r0", 0, comment="i")
    p.movi("r1", c)
    p.label("loop")
    for k in range(11):
        p.add("r2", "r2", "r1")
        p.alu("xor", "r3", "r2", k + 1)
    p.add("r0", "r0", 1)
    p.br("lt", "r0", iters, "loop")
    p.halt()
    return p


MIXES = {"sharing": program, "alu": program_alu}


def build(cfg, iters: int, mix: str = "sharing", cores: int = CORES) -> Machine:
    m = Machine(cfg)
    w = m.workload()
    for c in range(cores):
        pl = w.place(MIXES[mix](cfg, c, iters), CODE + c * 0x10000)
        w.start(c, pl.pc())
    m.load_workload(w)
    return m


def run_once(cfg, iters: int, mix: str = "sharing", cores: int = CORES) -> tuple[int, float, Machine]:
    m = build(cfg, iters, mix, cores)
    before = int(m.cpu.out[1])
    t0 = time.perf_counter()
    status = m.execute()
    dt = time.perf_counter() - t0
    if status != "done":
        raise SystemExit(f"engine_speed: the workload ended {status!r}, not 'done'")
    return int(m.cpu.out[1]) - before, dt, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=2_000_000,
                    help="ops to execute, all cores together (default 2,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the fastest is reported (default 3)")
    ap.add_argument("--json", action="store_true",
                    help='print {"ops_per_s", "ops", "seconds", "machine", "cores"}')
    ap.add_argument("--mix", choices=sorted(MIXES), default="sharing",
                    help="sharing (default: the module docstring's loop) or alu (register ops only)")
    ap.add_argument("--cores", type=int, default=CORES, help=f"run on cores 0..N-1 (default {CORES})")
    args = ap.parse_args(argv)
    if args.mix == "sharing" and args.cores != CORES:
        ap.error(f"--mix sharing runs on all {CORES} cores (its spin ring needs them)")
    if not 1 <= args.cores <= CORES:
        ap.error(f"--cores must be 1..{CORES}")
    if args.ops < args.cores * OPS_PER_ITER or args.repeat < 1:
        ap.error(f"--ops must be at least {args.cores * OPS_PER_ITER}, --repeat at least 1")
    cfg = load_machine(MACHINE)
    if cfg.cores != CORES:
        raise SystemExit(f"engine_speed: {MACHINE} has {cfg.cores} cores, expected {CORES}")
    iters = max(1, round(args.ops / (args.cores * OPS_PER_ITER)))

    t0 = time.perf_counter()
    run_once(cfg, 20, args.mix, args.cores)     # compile (or load numba's cache); not timed
    warm = time.perf_counter() - t0
    best = None
    for _ in range(args.repeat):
        ops, dt, m = run_once(cfg, iters, args.mix, args.cores)
        if best is None or dt < best[1]:
            best = (ops, dt, m)
    ops, dt, m = best
    result = {"ops_per_s": round(ops / dt), "ops": ops, "seconds": round(dt, 4), "machine": MACHINE,
              "cores": args.cores, "mix": args.mix}
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    ps = m.prog_stats()
    tot = {k: sum(s[k] for s in ps) for k in ("ops", "loads", "stores", "atomics", "spin_sleeps")}
    print(f"engine_speed: {MACHINE}, {args.mix} mix, {args.cores} cores, {iters} iterations per core")
    print(f"  {ops:,} ops in {dt:.3f} s (best of {args.repeat}): {ops / dt / 1e6:.2f} M ops/s")
    print(f"  per program: {tot['ops']:,} ops, {tot['loads']:,} loads, {tot['stores']:,} stores, "
          f"{tot['atomics']:,} atomics, {tot['spin_sleeps']:,} spin sleeps")
    print(f"  simulated: {m.stats()['total_cycles']:,} cycles")
    print(f"  (warm-up run, compile or cache load included: {warm:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
