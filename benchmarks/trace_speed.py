"""Trace-replay speed of the mksim engine, against pycachesim where the two compare.

    python benchmarks/trace_speed.py [--accesses N] [--repeat R] [--json] [--cases a,b] [--seed S]

Cases (N accesses each, 8 bytes, 8-byte aligned, so no access straddles a line):

``l1_random``
    One 32 KiB 8-way 64-byte-line LRU cache (a 1-package, 1-core machine built
    here, memory/interconnect/coherence defaults), loads at uniformly random
    addresses over 1 GiB: nearly every access misses.
``l1_sequential``
    The same cache, loads at ``8*i``: 7 hits per miss.
``3level_single_core``
    The ``amd-4x4`` cache hierarchy (64 KiB L1D/L1I, 512 KiB L2, 6 MiB
    48-way L3) on a one-core machine (the issue's "amd-4x4 hierarchy, one
    core"), random loads and stores (20 % stores) over a 4 MiB working set.
    4 MiB is 8x the L2 and 2/3 of the L3, so after the first pass about
    1.5 % of accesses hit the L1, ~11 % the L2, ~85 % the L3 -- nearly every
    access is an L1 miss that walks all three levels and refills L2 and L1
    (with their evictions and write-backs): the expensive single-core path.
``3level_real_traces``
    The same one-core hierarchy replaying real programs: the six lackey
    traces recorded under ``tests/data/cachegrind`` (instruction fetches
    through the L1I, loads, stores, modifies) back to back, repeated to N.
``coherent16_shared10``
    All 16 cores of ``amd-4x4`` with the protocol switched to MESI.  Each
    access is, independently, to the core's own private 256 KiB region
    (90 %, at a random 8-byte word; the region sits in the core's own NUMA
    node) or to one of 64 shared lines (10 %, in node 0); 30 % of all
    accesses are stores.  Accesses are interleaved round robin by core
    (access i belongs to core i % 16).
``cg_random``
    The cachegrind-exact mode (``hwmodel.cachegrind.simulate``, default
    geometry: I1 and D1 32 KiB 8-way, LL 8 MiB 16-way, 64-byte lines), loads
    at uniformly random addresses over 1 GiB (above the first line, whose
    block cachegrind's zeroed tags make "present": the two simulators then
    count alike).  pycachesim runs the same two data levels (D1 -> LL, LRU).
``cg_sequential``
    The same, loads at ``64 + 8*i``.

Ratios: ``ratio`` is mksim over pycachesim on the same trace (the L1 and
cachegrind cases); ``ratio_to_l1_random`` is a case's rate over pycachesim's
``l1_random`` rate measured in the same run (the yardstick the multi-level
and coherent cases are held to).

The speed is N / seconds of ``Machine.step`` (best of ``--repeat``; the
repeats of mksim and pycachesim alternate, so load from other processes
hits both alike; ``--json`` also gives the slowest repeat; a
fresh Machine each time; ``Machine.load``, which groups the accesses by
core, and numba compilation are outside the timed region; per-access
outputs are off, so both simulators report totals only).

pycachesim 0.3.1 is timed on its fastest bulk path, ``CacheSimulator.load``
given a Python *list* of int addresses (it forwards to the C
``Cache.iterload``, which loops over the list with ``PyLong_AsLong``: full
64-bit addresses).  A numpy array through the same call is 3-4x slower (each
element becomes a numpy scalar); the scalar ``load(addr)`` parses the
address with the ``"I"`` format (32 bits; upper half of the C ``long`` left
uninitialised), so it is neither fast nor correct above 4 GiB.  Only the
``load`` call is timed, not ``tolist()`` nor building the caches.  The script
checks that both simulators report the same hits and misses for the L1 cases
and warns on stderr when they do not.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

# the code of the checkout this script is in, even where another copy is installed (so that
# two trees can be compared by running each one's script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hwmodel.config import CacheConfig, MachineConfig, load_machine  # noqa: E402
from hwmodel.machine import Machine  # noqa: E402

LINE = 64
KIND_LOAD, KIND_STORE = 1, 2
CASES = ("l1_random", "l1_sequential", "cg_random", "cg_sequential", "3level_single_core", "3level_real_traces",
         "coherent16_shared10")


# ------------------------------------------------------------------ machines

def l1_machine() -> MachineConfig:
    """32 KiB, 8-way, 64 B lines, LRU; one core on one package; every other setting the default."""
    return MachineConfig(
        name="bench-l1-32k-8w", packages=1, cores_per_package=1, clock_ghz=1.0,
        caches=(CacheConfig(name="L1", level=1, size=32 * 1024, ways=8, line=LINE, latency=4,
                            sharing="private", kind="unified", replacement="lru"),),
        origin="benchmarks/trace_speed.py").validate()


def amd_machine(protocol: str | None = None) -> MachineConfig:
    cfg = load_machine("amd-4x4")
    if protocol is not None:
        cfg = dataclasses.replace(cfg, coherence=dataclasses.replace(cfg.coherence, protocol=protocol))
    return cfg.validate()


# ------------------------------------------------------------------ traces
# Each returns (cfg, core, kind, addr, size) as int64 arrays.

def trace_l1_random(n: int, rng: np.random.Generator):
    addr = rng.integers(0, (1 << 30) // 8, n, dtype=np.int64) * 8
    return l1_machine(), np.zeros(n, np.int64), np.full(n, KIND_LOAD, np.int64), addr, np.full(n, 8, np.int64)


def trace_l1_sequential(n: int, rng: np.random.Generator):
    addr = np.arange(n, dtype=np.int64) * 8
    return l1_machine(), np.zeros(n, np.int64), np.full(n, KIND_LOAD, np.int64), addr, np.full(n, 8, np.int64)


def amd_one_core() -> MachineConfig:
    """The amd-4x4 cache hierarchy (L1D/L1I, L2, L3), memory and protocol, on one core of one package."""
    cfg = load_machine("amd-4x4")
    return dataclasses.replace(cfg, name="amd-4x4-one-core", packages=1, cores_per_package=1,
                               interconnect=dataclasses.replace(cfg.interconnect, topology="crossbar"),
                               origin="benchmarks/trace_speed.py").validate()


def trace_3level(n: int, rng: np.random.Generator):
    """Random loads/stores over 4 MiB: nearly every access walks L1, L2 and hits the L3."""
    ws = 4 << 20
    addr = rng.integers(0, ws // 8, n, dtype=np.int64) * 8
    kind = np.where(rng.random(n) < 0.20, KIND_STORE, KIND_LOAD).astype(np.int64)
    return amd_one_core(), np.zeros(n, np.int64), kind, addr, np.full(n, 8, np.int64)


def trace_3level_real(n: int, rng: np.random.Generator):
    """Real programs: the lackey traces recorded under tests/data/cachegrind, back to back, repeated to n."""
    import glob

    from hwmodel.trace import read_trace
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "cachegrind")
    ts = [read_trace(f, "lackey") for f in sorted(glob.glob(os.path.join(here, "*.lackey.xz")))]
    kind = np.concatenate([t.kind for t in ts]).astype(np.int64)
    addr = np.concatenate([t.addr for t in ts]).astype(np.int64)
    size = np.concatenate([t.size for t in ts]).astype(np.int64)
    reps = -(-n // kind.size)
    return (amd_one_core(), np.zeros(n, np.int64), np.tile(kind, reps)[:n], np.tile(addr, reps)[:n],
            np.tile(size, reps)[:n])


def trace_coherent16(n: int, rng: np.random.Generator):
    cfg = amd_machine("mesi")
    cores, cpp = cfg.cores, cfg.cores_per_package
    node_bytes = cfg.memory.size // cfg.packages
    region = 256 << 10
    core = np.arange(n, dtype=np.int64) % cores
    # private region of core c: in its own package's node, regions of one package side by side
    base = (core // cpp) * node_bytes + (core % cpp) * region
    priv = base + rng.integers(0, region // 8, n, dtype=np.int64) * 8
    shared_base = 256 << 20  # node 0, away from the private regions
    shared = shared_base + rng.integers(0, 64, n, dtype=np.int64) * LINE + rng.integers(0, LINE // 8, n, dtype=np.int64) * 8
    addr = np.where(rng.random(n) < 0.10, shared, priv).astype(np.int64)
    kind = np.where(rng.random(n) < 0.30, KIND_STORE, KIND_LOAD).astype(np.int64)
    return cfg, core, kind, addr, np.full(n, 8, np.int64)


def trace_cg_random(n: int, rng: np.random.Generator):
    """Random loads over 1 GiB, never in block 0 (cachegrind's zeroed tags hold it from the start)."""
    addr = rng.integers(LINE // 8, (1 << 30) // 8, n, dtype=np.int64) * 8
    return None, np.zeros(n, np.int64), np.full(n, KIND_LOAD, np.int64), addr, np.full(n, 8, np.int64)


def trace_cg_sequential(n: int, rng: np.random.Generator):
    addr = LINE + np.arange(n, dtype=np.int64) * 8
    return None, np.zeros(n, np.int64), np.full(n, KIND_LOAD, np.int64), addr, np.full(n, 8, np.int64)


TRACES = {"l1_random": trace_l1_random, "l1_sequential": trace_l1_sequential,
          "cg_random": trace_cg_random, "cg_sequential": trace_cg_sequential,
          "3level_single_core": trace_3level, "3level_real_traces": trace_3level_real,
          "coherent16_shared10": trace_coherent16}


# ------------------------------------------------------------------ timing

def time_mksim(cfg, core, kind, addr, size):
    """Wall time of one simulation (``Machine.step``) on a fresh machine; also the machine.

    Building the inputs (``Machine.load``: grouping accesses by core) is not
    timed, as pycachesim's list conversion is not; per-access outputs are off
    (``record=False``): both simulators report totals only.
    """
    m = Machine(cfg)
    m.load(core, kind, addr, size, record=False)
    t0 = time.perf_counter()
    m.step(-1)
    return time.perf_counter() - t0, m


def time_cachegrind(trace):
    """Wall time of one ``hwmodel.cachegrind.simulate`` (the whole call: checks, fresh caches, counts)."""
    from hwmodel.cachegrind import simulate
    t0 = time.perf_counter()
    r = simulate(trace)
    return time.perf_counter() - t0, r


def warm_up(cfgs) -> None:
    """Compile (or load from numba's cache) the engine before any timing."""
    rng = np.random.default_rng(12345)
    for cfg in cfgs:
        n = 256
        core = np.arange(n, dtype=np.int64) % cfg.cores
        kind = rng.integers(0, 4, n).astype(np.int64)
        addr = rng.integers(0, 1 << 20, n, dtype=np.int64)
        Machine(cfg).run(core, kind, addr, np.full(n, 8, np.int64))
    from hwmodel.cachegrind import simulate
    from hwmodel.trace import Trace
    n = 256
    simulate(Trace(core=np.zeros(n, np.int32), kind=rng.integers(0, 4, n).astype(np.int8),
                   addr=rng.integers(0, 1 << 20, n, dtype=np.int64), size=np.full(n, 8, np.int32)))


def pycachesim_available() -> bool:
    try:
        import cachesim  # noqa: F401
        return True
    except ImportError:
        return False


def _pcs_l1():
    from cachesim import Cache, CacheSimulator, MainMemory
    cfg = l1_machine().caches[0]
    mem = MainMemory()
    l1 = Cache("L1", cfg.sets, cfg.ways, cfg.line, "LRU")
    mem.load_to(l1)
    mem.store_from(l1)
    return CacheSimulator(l1, mem), l1


def _pcs_cg():
    """pycachesim as cachegrind's two data levels: D1 32 KiB 8-way -> LL 8 MiB 16-way, 64 B lines, LRU."""
    from cachesim import Cache, CacheSimulator, MainMemory
    from hwmodel.cachegrind import DEFAULT_D1, DEFAULT_LL
    mem = MainMemory()
    (ds, da, dl), (ls, la, ll_) = DEFAULT_D1, DEFAULT_LL
    ll = Cache("LL", ls // (la * ll_), la, ll_, "LRU")
    mem.load_to(ll)
    mem.store_from(ll)
    d1 = Cache("D1", ds // (da * dl), da, dl, "LRU", store_to=ll, load_from=ll)
    return CacheSimulator(d1, mem), d1, ll


def time_pycachesim(addr_list, two_level: bool = False):
    """Wall time of one CacheSimulator.load(list) on fresh caches; also [(hits, misses)] per level."""
    cs, *levels = _pcs_cg() if two_level else _pcs_l1()
    t0 = time.perf_counter()
    cs.load(addr_list, length=8)
    dt = time.perf_counter() - t0
    return dt, [(int(c.backend.HIT_count), int(c.backend.MISS_count)) for c in levels]


def pycachesim_paths(addr: np.ndarray, repeat: int) -> dict[str, float]:
    """accesses/s of pycachesim's bulk entry points (informational, --paths)."""
    lst = addr.tolist()
    out = {}
    variants = {
        "CacheSimulator.load(list)": lambda cs, l1: cs.load(lst, length=8),
        "Cache.backend.iterload(list)": lambda cs, l1: l1.backend.iterload(lst, length=8),
        "CacheSimulator.loadstore([(list, None)])": lambda cs, l1: cs.loadstore([(lst, None)], length=8),
        "CacheSimulator.load(ndarray)": lambda cs, l1: cs.load(addr, length=8),
    }
    for name, f in variants.items():
        best = float("inf")
        for _ in range(repeat):
            cs, l1 = _pcs_l1()
            t0 = time.perf_counter()
            f(cs, l1)
            best = min(best, time.perf_counter() - t0)
        out[name] = addr.size / best
    return out


def pycachesim_64bit_check() -> tuple[bool, bool]:
    """(bulk path keeps 64-bit addresses, scalar path keeps 64-bit addresses).

    Two addresses 4 GiB apart map to the same set with different tags: a
    correct simulator reports miss, miss, hit, hit for a, b, a, b.
    """
    a, b = 0x1000, 0x1000 + (1 << 32)
    cs, l1 = _pcs_l1()
    cs.load([a, b, a, b], length=8)
    bulk_ok = (l1.backend.HIT_count, l1.backend.MISS_count) == (2, 2)
    cs, l1 = _pcs_l1()
    for x in (a, b, a, b):
        cs.load(x, length=8)
    scalar_ok = (l1.backend.HIT_count, l1.backend.MISS_count) == (2, 2)
    return bulk_ok, scalar_ok


def run_case(name: str, n: int, repeat: int, args, have_pcs: bool, quiet: bool = False) -> dict:
    """Time one case: mksim and (where it compares) pycachesim repeats alternating; best and slowest."""
    cfg, core, kind, addr, size = TRACES[name](n, np.random.default_rng(args.seed))
    cg = name.startswith("cg_")
    compare = have_pcs and (cg or name.startswith("l1_"))
    lst = addr.tolist() if compare else None
    trace = None
    if cg:
        from hwmodel.trace import Trace
        trace = Trace(core=core.astype(np.int32), kind=kind.astype(np.int8), addr=addr, size=size.astype(np.int32))
    mt, pt = [], []
    m = res = pcounts = None
    for _ in range(repeat):
        if cg:
            dt, res = time_cachegrind(trace)
        else:
            dt, m = time_mksim(cfg, core, kind, addr, size)
        mt.append(dt)
        if compare:
            dt, pcounts = time_pycachesim(lst, two_level=cg)
            pt.append(dt)
    row = {"name": name, "mksim_accesses_per_s": n / min(mt), "mksim_slowest_per_s": n / max(mt),
           "pycachesim_accesses_per_s": None, "pycachesim_slowest_per_s": None, "ratio": None}
    if compare:
        row["pycachesim_accesses_per_s"] = n / min(pt)
        row["pycachesim_slowest_per_s"] = n / max(pt)
        row["ratio"] = row["mksim_accesses_per_s"] / row["pycachesim_accesses_per_s"]
        if cg:
            ours = [(res["D_refs"] - res["D1_misses"], res["D1_misses"]),
                    (res["LL_refs"] - res["LL_misses"], res["LL_misses"])]
        else:
            st = m.stats()["cores"][0]["caches"]["L1"]
            ours = [(st["hits"], st["misses"])]
        if ours != pcounts:
            print(f"warning: {name}: hit/miss counts differ: mksim {ours}, pycachesim {pcounts}", file=sys.stderr)
        elif not (args.json or quiet):
            print(f"{name}: hits/misses agree: {pcounts}", file=sys.stderr)
        if args.paths and not cg and not quiet:
            for pn, v in pycachesim_paths(addr, repeat).items():
                print(f"{name}: pycachesim {pn}: {v / 1e6:.1f} M accesses/s", file=sys.stderr)
    return row


# ------------------------------------------------------------------ main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accesses", "-n", type=int, default=2_000_000, help="accesses per case (default 2,000,000)")
    ap.add_argument("--repeat", "-r", type=int, default=3, help="timed runs per case, best is reported (default 3)")
    ap.add_argument("--json", action="store_true", help="print {\"cases\": [...]} only")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paths", action="store_true", help="also time pycachesim's other bulk entry points (stderr)")
    args = ap.parse_args(argv)
    n, repeat = args.accesses, max(1, args.repeat)
    if n < 1:
        ap.error("--accesses must be >= 1")
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in names:
        if c not in TRACES:
            ap.error(f"unknown case {c!r} (known: {', '.join(CASES)})")
    have_pcs = pycachesim_available()
    if not have_pcs:
        print("warning: pycachesim is not installed; no comparison", file=sys.stderr)
    elif any(c.startswith("l1_") for c in names):
        bulk_ok, scalar_ok = pycachesim_64bit_check()
        if not bulk_ok:
            print("warning: pycachesim's bulk load path truncated a 64-bit address", file=sys.stderr)
        if not args.json:
            print(f"pycachesim bulk path CacheSimulator.load(list) keeps 64-bit addresses: {bulk_ok}; "
                  f"scalar load(addr) does: {scalar_ok}", file=sys.stderr)

    warm_up([l1_machine(), amd_one_core(), amd_machine("mesi")])

    results = []
    pcs_l1_random = None          # pycachesim's l1_random rate: the yardstick of the other cases
    for name in names:
        row = run_case(name, n, repeat, args, have_pcs)
        if name == "l1_random":
            pcs_l1_random = row["pycachesim_accesses_per_s"]
        results.append(row)
    if have_pcs and pcs_l1_random is None and any(not (c.startswith("l1_") or c.startswith("cg_")) for c in names):
        pcs_l1_random = run_case("l1_random", n, repeat, args, have_pcs, quiet=True)["pycachesim_accesses_per_s"]
    for row in results:
        if pcs_l1_random:
            row["ratio_to_l1_random"] = row["mksim_accesses_per_s"] / pcs_l1_random
        if not args.json:
            pc = row["pycachesim_accesses_per_s"]
            print(f"{row['name']:22s} mksim {row['mksim_accesses_per_s'] / 1e6:8.2f} M/s"
                  + (f"   pycachesim {pc / 1e6:8.2f} M/s   ratio {row['ratio']:.2f}" if pc else "")
                  + (f"   (x pycachesim l1_random: {row['ratio_to_l1_random']:.2f})"
                     if row.get("ratio_to_l1_random") is not None and not pc else ""))
    if args.json:
        print(json.dumps({"cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
