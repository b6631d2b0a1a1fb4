"""Host ground truth: describe the host from sysfs and run the C benchmarks in native/.

The benchmarks (native/hostbench.c, built by cffi at install time as ``native._hostbench``)
measure the host the user runs on, so the model's predictions can be checked against it:
memory latency by working-set size (dependent pointer chase) and the core-to-core
cache-line latency (pinned CAS ping-pong). Everything here runs without root. The package
works without the extension; only ``run_host_bench`` needs it and says how to build it.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import os
import platform
import random
import statistics
from pathlib import Path

from hwmodel.errors import MksimError

SYSFS_CPU = "/sys/devices/system/cpu"
SYSFS_CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource0/current_clocksource"
KIB = 1024
QUICK_MAX_BYTES = 64 * KIB * KIB
FULL_MAX_BYTES = 1024 * KIB * KIB
MAX_PAIRS = 64            # core-to-core pairs measured at most (a sample on large hosts)
PINGPONG_TIMEOUT_S = 20.0  # one pair; a host whose other CPU is busy must not hang us

BUILD_HINT = ("the host benchmarks (native._hostbench) are not built: they need a C compiler "
              "and the Python headers (Debian/Ubuntu: apt-get install gcc python3-dev), then "
              "reinstall with `pip install -e .` or build in place with "
              "`python native/build_hostbench.py`")


# ----------------------------------------------------------------------------- sysfs
def parse_size(text: str, where: str) -> int:
    """A sysfs cache size ("32K", "1024K", "32M" or plain bytes) in bytes."""
    t = text.strip()
    mult = {"K": KIB, "M": KIB * KIB, "G": KIB ** 3}
    try:
        if t and t[-1].upper() in mult:
            return int(t[:-1]) * mult[t[-1].upper()]
        return int(t)
    except ValueError:
        raise MksimError(f"not a cache size: {t!r}", where=where) from None


def parse_cpu_list(text: str, where: str) -> list[int]:
    """A sysfs CPU list such as "0-3,8,10-11" as a sorted list of CPU numbers."""
    cpus: set[int] = set()
    try:
        for part in text.strip().split(","):
            if not part:
                continue
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise MksimError(f"not a CPU list: {text.strip()!r}", where=where) from None
    return sorted(cpus)


def _read(path: Path) -> str:
    """One sysfs file's text; a missing one is a clear error naming it."""
    try:
        return path.read_text()
    except OSError as e:
        raise MksimError(f"cannot read: {e.strerror or e}", where=str(path)) from None


def read_caches(cpu_dir: Path) -> list[dict]:
    """The caches of one CPU (its cache/index*/ entries), innermost first."""
    cache = cpu_dir / "cache"
    if not cache.is_dir():
        raise MksimError("no cache/ directory (sysfs does not describe this CPU's caches)",
                         where=str(cpu_dir))
    out = []
    for idx in sorted(cache.glob("index*"), key=lambda p: int(p.name[5:] or 0)):
        ways = _read(idx / "ways_of_associativity").strip()
        shared_file = idx / "shared_cpu_list"
        out.append({
            "level": int(_read(idx / "level")),
            "type": _read(idx / "type").strip(),
            "size_bytes": parse_size(_read(idx / "size"), str(idx / "size")),
            "ways": int(ways),   # 0 means fully associative in sysfs
            "line_bytes": int(_read(idx / "coherency_line_size")),
            "shared_cpus": parse_cpu_list(_read(shared_file), str(shared_file)),
        })
    if not out:
        raise MksimError("no cache/index*/ entries", where=str(cache))
    return sorted(out, key=lambda c: (c["level"], c["type"]))


def read_topology(base: Path, cpus: list[int]) -> dict:
    """Packages, cores and SMT threads of the online CPUs, from each cpuN/topology/.

    A core is one (physical_package_id, core_id); its SMT threads are the CPUs that share it
    (the same set as thread_siblings_list, which is checked against it)."""
    cores: dict[tuple[int, int], list[int]] = {}
    package_of: dict[int, int] = {}
    for cpu in cpus:
        topo = base / f"cpu{cpu}" / "topology"
        pkg = int(_read(topo / "physical_package_id"))
        core = int(_read(topo / "core_id"))
        package_of[cpu] = pkg
        cores.setdefault((pkg, core), []).append(cpu)
    for cpu in cpus:
        sib_file = base / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        sibs = [c for c in parse_cpu_list(_read(sib_file), str(sib_file)) if c in package_of]
        core_key = next(k for k, v in cores.items() if cpu in v)
        if sorted(sibs) != sorted(cores[core_key]):
            raise MksimError(f"thread siblings {sibs} disagree with core_id/physical_package_id "
                             f"(CPUs {cores[core_key]} share package {core_key[0]} core {core_key[1]})",
                             where=str(sib_file))
    threads = sorted({len(v) for v in cores.values()})
    return {"packages": len(set(package_of.values())), "cores": len(cores),
            "threads_per_core": threads[0] if len(threads) == 1 else threads,
            "package_of_cpu": {str(c): p for c, p in sorted(package_of.items())},
            "smt_siblings": sorted(sorted(v) for v in cores.values())}


def describe_host(root: str | os.PathLike = SYSFS_CPU) -> dict:
    """Online CPUs, their packages/cores/SMT threads, and the first CPU's caches, from a
    sysfs cpu tree (``/sys/devices/system/cpu``).

    ``root`` may be a fixture directory with the same layout, so this is testable
    without depending on the machine that runs the tests.
    """
    base = Path(root)
    if not base.is_dir():
        raise MksimError("not a sysfs cpu directory", where=str(base))
    online_file = base / "online"
    if online_file.exists():
        online = parse_cpu_list(_read(online_file), str(online_file))
    else:
        online = sorted(int(p.name[3:]) for p in base.glob("cpu[0-9]*"))
    if not online:
        raise MksimError("no online CPUs", where=str(base))
    caches = read_caches(base / f"cpu{online[0]}")
    return {"cpus_online": len(online), "online": online, "topology": read_topology(base, online),
            "cpu": online[0], "caches": caches}


def clock_description(tsc_hz: float | None) -> dict:
    """What times the benchmarks, and the TSC rate when the host has one."""
    try:
        source = Path(SYSFS_CLOCKSOURCE).read_text().strip()
    except OSError:
        source = "unknown"
    return {"timer": "clock_gettime(CLOCK_MONOTONIC)", "kernel_clocksource": source,
            "tsc_hz": tsc_hz or None}


# ----------------------------------------------------------------------------- native
def load_native():
    """The cffi extension (ffi, lib); a clear MksimError if it was not built."""
    try:
        from native._hostbench import ffi, lib
    except ImportError:
        raise MksimError(BUILD_HINT) from None
    return ffi, lib


def summarize(samples: list[float]) -> dict:
    """Median and spread (min, max, and (max - min) / median) of repeated measurements."""
    med = statistics.median(samples)
    return {"median": med, "min": min(samples), "max": max(samples),
            "spread": (max(samples) - min(samples)) / med if med > 0 else None,
            "samples": list(samples)}


def working_sets(max_bytes: int, min_bytes: int = 4 * KIB) -> list[int]:
    """Working-set sizes from min_bytes to max_bytes, doubling (powers of two)."""
    if min_bytes < 128 or max_bytes < min_bytes:
        raise MksimError(f"working sets {min_bytes}..{max_bytes} bytes: need 128 <= min <= max")
    out, s = [], min_bytes
    while s <= max_bytes:
        out.append(s)
        s *= 2
    return out


def memory_latency(sizes: list[int], steps: int, reps: int, seed: int = 1) -> list[dict]:
    """Nanoseconds per dependent load for each working-set size (pointer chase)."""
    ffi, lib = load_native()
    out = ffi.new("double[]", reps)
    rows = []
    for size in sizes:
        rc = lib.hb_chase(size, seed, steps, reps, out)
        if rc == -12:
            raise MksimError(f"pointer chase over {size} bytes: out of memory")
        if rc != 0:
            raise MksimError(f"pointer chase over {size} bytes failed (error {-rc})")
        rows.append({"bytes": size, "ns": summarize([out[i] for i in range(reps)])})
    return rows


def choose_pairs(cpus: list[int], max_pairs: int = MAX_PAIRS, seed: int = 1) -> list[tuple[int, int]]:
    """Every unordered pair of CPUs, or on large hosts every pair with the first CPU plus
    a seeded random sample of the rest (deterministic), at most max_pairs in all."""
    pairs = list(itertools.combinations(cpus, 2))
    if len(pairs) <= max_pairs:
        return pairs
    first = [p for p in pairs if p[0] == cpus[0]][:max_pairs]
    rest = [p for p in pairs if p[0] != cpus[0]]
    extra = random.Random(seed).sample(rest, max(0, max_pairs - len(first)))
    return sorted(first + extra)


def core_to_core(pairs: list[tuple[int, int]], iters: int, reps: int) -> list[dict]:
    """One-way cache-line latency (ns) for each CPU pair (pinned CAS ping-pong)."""
    ffi, lib = load_native()
    out = ffi.new("double[]", reps)
    rows = []
    for a, b in pairs:
        rc = lib.hb_pingpong(a, b, iters, max(1, iters // 10), reps, PINGPONG_TIMEOUT_S, out)
        if rc == -110:   # ETIMEDOUT
            raise MksimError(f"core-to-core {a}<->{b}: no progress within {PINGPONG_TIMEOUT_S:.0f} s "
                             "(is the other CPU busy or throttled?)")
        if rc in (-1, -22, -13):   # EPERM, EINVAL (CPU not allowed/online), EACCES
            raise MksimError(f"core-to-core {a}<->{b}: cannot pin a thread to CPU {a} or {b} "
                             f"(sched_setaffinity: {os.strerror(-rc)}); this process may run "
                             f"only on CPUs {sorted(os.sched_getaffinity(0))}")
        if rc != 0:
            raise MksimError(f"core-to-core {a}<->{b} failed: {os.strerror(-rc)}")
        rows.append({"cpus": [a, b], "ns": summarize([out[i] for i in range(reps)])})
    return rows


def to_tsc_cycles(ns: float, tsc_hz: float) -> float | None:
    """Nanoseconds as TSC cycles (the model counts cycles); None on hosts without a TSC.

    The TSC ticks at a constant nominal rate, not at the core's current clock, so this is a
    unit conversion, not a count of core cycles under turbo or power saving."""
    return ns * tsc_hz / 1e9 if tsc_hz > 0 else None


def run_host_bench(quick: bool = False) -> dict:
    """Describe the host and run every host benchmark; a JSON-ready dict.

    quick: working sets up to 64 MiB and fewer passes (under a minute on 2 cores);
    otherwise up to 1 GiB.
    """
    ffi, lib = load_native()
    host = describe_host()
    allowed = sorted(os.sched_getaffinity(0))
    tsc_hz = lib.hb_tsc_hz(0.05 if quick else 0.2)
    max_bytes = QUICK_MAX_BYTES if quick else FULL_MAX_BYTES
    reps = 7 if quick else 11
    mem = memory_latency(working_sets(max_bytes), steps=1_000_000 if quick else 2_000_000, reps=reps)
    if len(allowed) < 2:
        c2c: list[dict] = []
        c2c_note = f"skipped: this process may run only on CPU {allowed}, no pair to measure"
    else:
        c2c = core_to_core(choose_pairs(allowed), iters=100_000 if quick else 200_000, reps=reps)
        c2c_note = None
    for row in mem + c2c:
        row["tsc_cycles"] = to_tsc_cycles(row["ns"]["median"], tsc_hz)
    return {
        "kind": "mksim host-bench",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "host": {**host, "allowed_cpus": allowed, "machine": platform.machine(),
                 "clock": clock_description(tsc_hz),
                 "clock_resolution_ns": lib.hb_clock_res_ns()},
        "memory_latency": {"method": "dependent pointer chase over a random cyclic permutation "
                                     "of 64-byte lines, 4 KiB pages, one warm-up pass",
                           "unit": "ns per load (tsc_cycles: the median in TSC cycles)", "rows": mem},
        "core_to_core": {"method": "two threads pinned with sched_setaffinity hand one line "
                                   "back and forth with compare-and-swap; round trip / 2",
                         "unit": "ns one way (tsc_cycles: the median in TSC cycles)", "rows": c2c,
                         "note": c2c_note},
    }


# ----------------------------------------------------------------------------- text
def _size(b: int) -> str:
    """4096 -> '4 KiB'."""
    for unit, mult in (("GiB", KIB ** 3), ("MiB", KIB * KIB), ("KiB", KIB)):
        if b >= mult and b % mult == 0:
            return f"{b // mult} {unit}"
    return f"{b} B"


def _cyc(c: float | None) -> str:
    """A TSC-cycle cell, '-' without a TSC."""
    return f"{c:8.0f}" if c is not None else f"{'-':>8}"


def format_report(rep: dict) -> str:
    """The host description and both benchmarks as a plain-text table."""
    h = rep["host"]
    clk = h["clock"]
    tsc = f"{clk['tsc_hz'] / 1e9:.3f} GHz" if clk["tsc_hz"] else "none"
    t = h["topology"]
    lines = [f"host: {h['cpus_online']} CPUs online ({h['machine']}): {t['packages']} package(s), "
             f"{t['cores']} cores, {t['threads_per_core']} thread(s) per core; allowed {h['allowed_cpus']}",
             f"timer {clk['timer']} (kernel clocksource {clk['kernel_clocksource']}), TSC {tsc}",
             "caches of cpu%d:" % h["cpu"]]
    for c in h["caches"]:
        lines.append(f"  L{c['level']} {c['type']:<11} {_size(c['size_bytes']):>8}  "
                     f"{c['ways']:>2}-way  {c['line_bytes']} B lines  shared by CPUs {c['shared_cpus']}")
    lines += ["", "memory latency (ns per dependent load):",
              f"  {'working set':>11}  {'median':>8}  {'min':>8}  {'max':>8}  {'spread':>6}  {'TSC cyc':>8}"]
    for r in rep["memory_latency"]["rows"]:
        s = r["ns"]
        lines.append(f"  {_size(r['bytes']):>11}  {s['median']:8.2f}  {s['min']:8.2f}  "
                     f"{s['max']:8.2f}  {s['spread']:6.1%}  {_cyc(r['tsc_cycles'])}")
    lines += ["", "core-to-core cache-line latency (ns one way, CAS round trip / 2):"]
    cc = rep["core_to_core"]
    if cc["note"]:
        lines.append(f"  {cc['note']}")
    else:
        lines.append(f"  {'pair':>9}  {'median':>8}  {'min':>8}  {'max':>8}  {'spread':>6}  {'TSC cyc':>8}")
        for r in cc["rows"]:
            s = r["ns"]
            pair = f"{r['cpus'][0]}<->{r['cpus'][1]}"
            lines.append(f"  {pair:>9}  {s['median']:8.2f}  {s['min']:8.2f}  "
                         f"{s['max']:8.2f}  {s['spread']:6.1%}  {_cyc(r['tsc_cycles'])}")
    return "\n".join(lines)
