"""Host ground truth: describe the host from sysfs and run the C benchmarks in native/.

The benchmarks (native/hostbench.c, built by cffi at install time as ``native._hostbench``)
measure the host the user runs on, so the model's predictions can be checked against it:
memory latency by working-set size (dependent pointer chase), the core-to-core
cache-line latency (pinned CAS ping-pong), a URPC channel laid out as kernels/urpc.py lays
out Barrelfish's (one-way latency and pipelined throughput per path kind), and the Figure 3
sweep (SHMk: threads update k shared lines; MSGk: clients call a server that owns them).
Everything here runs without root. The package
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
SYSFS_NODE = "/sys/devices/system/node"
KIB = 1024
QUICK_MAX_BYTES = 64 * KIB * KIB
FULL_MAX_BYTES = 1024 * KIB * KIB
MAX_PAIRS = 64            # core-to-core pairs measured at most (a sample on large hosts)
PINGPONG_TIMEOUT_S = 20.0  # one pair; a host whose other CPU is busy must not hang us
RUN_TIMEOUT_S = 20.0       # one URPC or Figure 3 run (all its passes)
URPC_SLOTS = 16            # the ring depth of the model's URPC and MSG benchmarks (microbench.SLOTS)
SHM_SERIES = (1, 2, 4, 8)  # SHMk: k shared lines
MSG_SERIES = (1, 8)        # MSGk
ERRNO_TIMEDOUT, ERRNO_PROTO = 110, 71

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


def read_numa(root: str | os.PathLike = SYSFS_NODE) -> list[dict] | None:
    """NUMA nodes and their CPUs (nodeN/cpulist) from a sysfs node tree; None where there is no
    such tree (a kernel without NUMA support). ``root`` may be a fixture directory."""
    base = Path(root)
    if not base.is_dir():
        return None
    nodes = sorted(base.glob("node[0-9]*"), key=lambda p: int(p.name[4:]))
    return [{"node": int(p.name[4:]),
             "cpus": parse_cpu_list(_read(p / "cpulist"), str(p / "cpulist"))} for p in nodes]


def clock_description(tsc_hz: float | None) -> dict:
    """What times the benchmarks, and the TSC rate when the host has one."""
    try:
        source = Path(SYSFS_CLOCKSOURCE).read_text().strip()
    except OSError:
        source = "unknown"
    return {"timer": "clock_gettime(CLOCK_MONOTONIC)", "kernel_clocksource": source,
            "tsc_hz": tsc_hz or None}


def read_mem_total(path: str = "/proc/meminfo") -> int | None:
    """MemTotal in bytes from /proc/meminfo; None where the file or the line is missing."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        return None
    return None


# ----------------------------------------------------------------------------- native
def load_native():
    """The cffi extension (ffi, lib); a clear MksimError if it was not built."""
    try:
        from native._hostbench import ffi, lib
    except ImportError:
        raise MksimError(BUILD_HINT) from None
    return ffi, lib


MIN_UNDISTURBED = 3   # undisturbed passes needed to leave the others out
MIN_OVERLAP = 0.9     # a pass whose threads ran side by side less than this is disturbed


def summarize(samples: list[float], switches: list[int] | None = None,
              overlap: list[float] | None = None) -> dict:
    """Median and spread (min, max, and (max - min) / median) of repeated measurements.

    With ``switches`` (involuntary context switches of the process during each pass, from
    getrusage) and ``overlap`` (the share of a pass during which all its threads were running
    it): a pass during which a thread was descheduled for another task, or whose threads ran
    it one after the other, timed the scheduler, not the workload, so such passes are left out
    when at least MIN_UNDISTURBED undisturbed ones remain ("passes": "undisturbed"); otherwise
    every pass is used ("passes": "all"). "median_all" is the median of every pass either way."""
    used, basis = list(samples), "all"
    if switches is not None:
        ok = [o >= MIN_OVERLAP for o in overlap] if overlap is not None else [True] * len(samples)
        clean = [x for x, c, good in zip(samples, switches, ok) if c == 0 and good]
        if len(clean) >= MIN_UNDISTURBED:
            used, basis = clean, "undisturbed"
    med = statistics.median(used)
    out = {"median": med, "min": min(used), "max": max(used),
           "spread": (max(used) - min(used)) / med if med > 0 else None,
           "samples": list(samples)}
    if switches is not None:
        out.update(switches=list(switches), passes=basis, median_all=statistics.median(samples))
    if overlap is not None:
        out["overlap"] = [round(o, 3) for o in overlap]
    return out


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
    out, csw = ffi.new("double[]", reps), ffi.new("long[]", reps)
    rows = []
    for a, b in pairs:
        rc = lib.hb_pingpong(a, b, iters, max(1, iters // 10), reps, PINGPONG_TIMEOUT_S, out, csw)
        _check_rc(rc, f"core-to-core {a}<->{b}", [a, b], PINGPONG_TIMEOUT_S)
        rows.append({"cpus": [a, b], "ns": summarize(list(out), list(csw))})
    return rows


def to_tsc_cycles(ns: float, tsc_hz: float) -> float | None:
    """Nanoseconds as TSC cycles (the model counts cycles); None on hosts without a TSC.

    The TSC ticks at a constant nominal rate, not at the core's current clock, so this is a
    unit conversion, not a count of core cycles under turbo or power saving."""
    return ns * tsc_hz / 1e9 if tsc_hz > 0 else None


# ----------------------------------------------------------------------------- URPC, Figure 3
def cpu_order(topo: dict, allowed: list[int]) -> list[int]:
    """The allowed CPUs, one per physical core first (package by package, as the model numbers
    its cores), then the remaining SMT siblings: the first t of them are the t threads of a sweep."""
    allowed_set = set(allowed)
    groups = [[c for c in sib if c in allowed_set] for sib in topo["smt_siblings"]]
    groups = [g for g in groups if g]
    pkg = topo["package_of_cpu"]
    groups.sort(key=lambda g: (pkg[str(g[0])], g[0]))
    first = [g[0] for g in groups]
    return first + sorted(c for g in groups for c in g[1:])


def path_kind(topo: dict, caches: list[dict], a: int, b: int) -> str:
    """How CPU a reaches CPU b: "smt" (SMT siblings of one core), "shared-L<n>" (distinct cores
    whose innermost shared cache is level n; ``caches`` are a's), "same-package" or
    "other-package" (from sysfs physical_package_id)."""
    if any(a in sib and b in sib for sib in topo["smt_siblings"]):
        return "smt"
    shared = [c["level"] for c in caches if c["type"] != "Instruction"
              and a in c["shared_cpus"] and b in c["shared_cpus"]]
    if shared:
        return f"shared-L{min(shared)}"
    pkg = topo["package_of_cpu"]
    return "same-package" if pkg[str(a)] == pkg[str(b)] else "other-package"


def urpc_paths(topo: dict, caches: list[dict], order: list[int]) -> list[dict]:
    """One CPU pair per path kind: the first CPU of ``order`` and the first CPU of each kind
    (the model's rule: core 0 and the lowest core of the kind)."""
    if len(order) < 2:
        return []
    a, seen, out = order[0], set(), []
    for b in order[1:]:
        kind = path_kind(topo, caches, a, b)
        if kind not in seen:
            seen.add(kind)
            out.append({"path": kind, "cpus": [a, b]})
    return out


def thread_counts(n: int, quick: bool) -> list[int]:
    """Thread counts of a sweep up to n: every count up to 16 (quick: up to 8), then powers of
    two, and n itself."""
    if n < 1:
        return []
    every = 8 if quick else 16
    counts = set(range(1, min(n, every) + 1))
    p = 1
    while p <= n:
        counts.add(p)
        p *= 2
    counts.add(n)
    return sorted(counts)


def _check_rc(rc: int, what: str, cpus: list[int], timeout: float) -> None:
    """A clear MksimError for a failed native run (pinning refused, no progress, a bug)."""
    if rc == 0:
        return
    if rc == -ERRNO_TIMEDOUT:
        raise MksimError(f"{what} on CPUs {cpus}: no progress within {timeout:.0f} s "
                         "(are the other CPUs busy or throttled?)")
    if rc in (-1, -22, -13):   # EPERM, EINVAL (CPU not allowed/online), EACCES
        raise MksimError(f"{what}: cannot pin a thread to CPUs {cpus} (sched_setaffinity: "
                         f"{os.strerror(-rc)}); this process may run only on CPUs "
                         f"{sorted(os.sched_getaffinity(0))}")
    if rc == -ERRNO_PROTO:
        raise MksimError(f"{what} on CPUs {cpus}: URPC protocol error (a lost, duplicated or "
                         "misordered message): a bug in native/hostbench.c")
    raise MksimError(f"{what} on CPUs {cpus} failed: {os.strerror(-rc)}")


def urpc_bench(paths: list[dict], iters: int, msgs: int, reps: int,
               slots: int = URPC_SLOTS) -> list[dict]:
    """URPC one-way latency (ns, ping-pong round trip / 2) and pipelined throughput (messages
    per microsecond, a one-way stream) for each path's CPU pair."""
    ffi, lib = load_native()
    out, csw = ffi.new("double[]", reps), ffi.new("long[]", reps)
    rows = []
    for p in paths:
        a, b = p["cpus"]
        rc = lib.hb_urpc_pingpong(a, b, slots, iters, max(1, iters // 10), reps, RUN_TIMEOUT_S, out, csw)
        _check_rc(rc, f"URPC ping-pong ({p['path']})", [a, b], RUN_TIMEOUT_S)
        lat = summarize(list(out), list(csw))
        rc = lib.hb_urpc_stream(a, b, slots, msgs, max(1, msgs // 10), reps, RUN_TIMEOUT_S, out, csw)
        _check_rc(rc, f"URPC stream ({p['path']})", [a, b], RUN_TIMEOUT_S)
        thr = [1000.0 / x for x in out]   # ns per message -> messages per us
        rows.append({"path": p["path"], "cpus": [a, b], "latency_ns": lat,
                     "throughput_msgs_per_us": summarize(thr, list(csw))})
    return rows


def shm_run(cpus: list[int], nlines: int, iters: int, reps: int, locked: bool = False) -> dict:
    """SHM<nlines> on the given CPUs: ns per update (summary over passes, each the mean of the
    threads)."""
    ffi, lib = load_native()
    out, csw, ovl = ffi.new("double[]", reps), ffi.new("long[]", reps), ffi.new("double[]", reps)
    rc = lib.hb_shm(ffi.new("int[]", cpus), len(cpus), nlines, int(locked), iters,
                    max(1, iters // 10), reps, RUN_TIMEOUT_S, out, csw, ovl)
    _check_rc(rc, f"SHM{nlines}", cpus, RUN_TIMEOUT_S)
    return summarize(list(out), list(csw), list(ovl))


def msg_run(server: int, clients: list[int], nlines: int, iters: int, reps: int,
            slots: int = URPC_SLOTS) -> dict:
    """MSG<nlines>: ns per call seen by a client (summary over passes, each the mean of the
    clients)."""
    ffi, lib = load_native()
    out, csw, ovl = ffi.new("double[]", reps), ffi.new("long[]", reps), ffi.new("double[]", reps)
    rc = lib.hb_msg(server, ffi.new("int[]", clients), len(clients), nlines, slots, iters,
                    max(1, iters // 10), reps, RUN_TIMEOUT_S, out, csw, ovl)
    _check_rc(rc, f"MSG{nlines}", [server] + clients, RUN_TIMEOUT_S)
    return summarize(list(out), list(csw), list(ovl))


def fig3_sweep(order: list[int], quick: bool, iters: int, reps: int,
               shm: tuple[int, ...] = SHM_SERIES, msg: tuple[int, ...] = MSG_SERIES) -> list[dict]:
    """Figure 3 on the host: SHMk with t threads on the first t CPUs of ``order``; MSGk with
    a server on order[0] and t clients on the next t CPUs. Fewer iterations per thread as t
    grows, so a pass stays short on large hosts."""
    rows = []
    for t in thread_counts(len(order), quick):
        n = max(200, iters // t)
        for k in shm:
            rows.append({"series": f"SHM{k}", "threads": t, "cpus": order[:t],
                         "ns": shm_run(order[:t], k, n, reps)})
    for t in thread_counts(len(order) - 1, quick):
        n = max(200, iters // (4 * t))
        for k in msg:
            rows.append({"series": f"MSG{k}", "threads": t, "cpus": order[:t + 1],
                         "ns": msg_run(order[0], order[1:t + 1], k, n, reps)})
    return rows


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
    # thread benchmarks: short passes (about a millisecond) and many of them, so that a pass hit
    # by a descheduled thread (a loaded or virtualized host) moves the median less
    preps = 15 if quick else 31
    mem = memory_latency(working_sets(max_bytes), steps=1_000_000 if quick else 2_000_000, reps=reps)
    if len(allowed) < 2:
        c2c: list[dict] = []
        c2c_note = f"skipped: this process may run only on CPU {allowed}, no pair to measure"
    else:
        c2c = core_to_core(choose_pairs(allowed), iters=5_000 if quick else 10_000, reps=preps)
        c2c_note = None
    for row in mem + c2c:
        row["tsc_cycles"] = to_tsc_cycles(row["ns"]["median"], tsc_hz)
    order = cpu_order(host["topology"], allowed)
    a0 = order[0]
    caches_a0 = host["caches"] if a0 == host["cpu"] else read_caches(Path(SYSFS_CPU) / f"cpu{a0}")
    paths = urpc_paths(host["topology"], caches_a0, order)
    urpc_rows = urpc_bench(paths, iters=5_000 if quick else 10_000,
                           msgs=20_000 if quick else 40_000, reps=preps)
    for row in urpc_rows:
        row["latency_tsc_cycles"] = to_tsc_cycles(row["latency_ns"]["median"], tsc_hz)
        med = row["throughput_msgs_per_us"]["median"]
        row["msgs_per_kcycle"] = med * 1e9 / tsc_hz if tsc_hz > 0 else None
    fig3 = fig3_sweep(order, quick, iters=20_000 if quick else 40_000, reps=preps)
    for row in fig3:
        row["tsc_cycles"] = to_tsc_cycles(row["ns"]["median"], tsc_hz)
    one_cpu = f"skipped: this process may run only on CPU {allowed}, no pair to measure"
    return {
        "kind": "mksim host-bench",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "host": {**host, "allowed_cpus": allowed, "machine": platform.machine(),
                 "clock": clock_description(tsc_hz),
                 "clock_resolution_ns": lib.hb_clock_res_ns(),
                 "mem_total_bytes": read_mem_total(), "numa_nodes": read_numa()},
        "memory_latency": {"method": "dependent pointer chase over a random cyclic permutation "
                                     "of 64-byte lines, 4 KiB pages, one warm-up pass",
                           "unit": "ns per load (tsc_cycles: the median in TSC cycles)", "rows": mem},
        "core_to_core": {"method": "two threads pinned with sched_setaffinity hand one line "
                                   "back and forth with compare-and-swap; round trip / 2",
                         "unit": "ns one way (tsc_cycles: the median in TSC cycles)", "rows": c2c,
                         "note": c2c_note},
        "urpc": {"method": "a URPC channel laid out as kernels/urpc.py (Barrelfish UMP): rings of "
                           f"{URPC_SLOTS} 64-byte slots, 7 payload words and a control word (epoch "
                           "bit 63, type bits 62..56, ack bits 55..0) written last, acks "
                           "piggybacked, an ack-only message every half ring; one CPU pair per "
                           "path kind (smt, shared-L<n>, same-package, other-package). latency: "
                           "ping-pong round trip / 2; throughput: a one-way stream, the sender "
                           "running ahead up to the ring's depth",
                 "slots": URPC_SLOTS,
                 "unit": "latency_ns: ns one way; throughput_msgs_per_us: messages per "
                         "microsecond; latency_tsc_cycles, msgs_per_kcycle: the medians in TSC cycles",
                 "rows": urpc_rows, "note": None if urpc_rows else one_cpu},
        "fig3": {"method": "SHMk: t threads pinned to the first t CPUs of cpu_order each update the "
                           "same k cache lines (load, add 1, store each line, as "
                           "kernels/microbench.py's update); MSGk: t client threads call a server "
                           "thread on cpu_order[0] over their own URPC link, the server updating "
                           "the k lines it owns per call. Passes start together (barrier)",
                 "unit": "ns per update (SHM: mean over threads; MSG: per call, mean over "
                         "clients); tsc_cycles: the median in TSC cycles",
                 "cpu_order": order, "rows": fig3,
                 "note": None if len(order) > 1 else "MSG " + one_cpu},
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
    lines += _format_urpc(rep.get("urpc")) + _format_fig3(rep.get("fig3"))
    return "\n".join(lines)


def _format_urpc(u: dict | None) -> list[str]:
    """The URPC section of format_report."""
    if not u:
        return []
    lines = ["", f"URPC ({u['slots']}-slot rings; latency ns one way, throughput messages/us):"]
    if u["note"]:
        return lines + [f"  {u['note']}"]
    lines.append(f"  {'path':<14} {'cpus':>6}  {'lat med':>8}  {'min':>8}  {'max':>8}  "
                 f"{'spread':>6}  {'thr med':>8}  {'spread':>6}")
    for r in u["rows"]:
        lat, thr = r["latency_ns"], r["throughput_msgs_per_us"]
        lines.append(f"  {r['path']:<14} {r['cpus'][0]:>2}->{r['cpus'][1]:<2}  {lat['median']:8.1f}  "
                     f"{lat['min']:8.1f}  {lat['max']:8.1f}  {lat['spread']:6.1%}  "
                     f"{thr['median']:8.2f}  {thr['spread']:6.1%}")
    return lines


def _format_fig3(f: dict | None) -> list[str]:
    """The Figure 3 section of format_report: one line per (series, threads)."""
    if not f:
        return []
    lines = ["", "Figure 3 (ns per update; SHMk: t threads, MSGk: t clients + 1 server; "
                 f"CPU order {f['cpu_order']}):",
             f"  {'series':<6} {'threads':>7}  {'median':>8}  {'min':>8}  {'max':>8}  {'spread':>6}  "
             f"{'TSC cyc':>8}"]
    for r in f["rows"]:
        s = r["ns"]
        lines.append(f"  {r['series']:<6} {r['threads']:>7}  {s['median']:8.1f}  {s['min']:8.1f}  "
                     f"{s['max']:8.1f}  {s['spread']:6.1%}  {_cyc(r['tsc_cycles'])}")
    if f["note"]:
        lines.append(f"  {f['note']}")
    return lines


# ----------------------------------------------------------------------------- calibrate
# [core] and [apic] are not measured on the host: amd-2x2's assumptions, said so in the file.
_ASSUMED = "assumption: not measured on this host (copied from amd-2x2's assumptions)"
_CORE = {"alu_latency": 1, "issue_width": 3, "spin_wake_latency": 40, "atomic_latency": 20,
         "rdtsc_latency": 25, "msr_latency": 40, "mmio_latency": 40, "interrupt_entry": 250,
         "iret_latency": 80, "invlpg_latency": 100, "cr3_latency": 100, "lidt_latency": 100,
         "tlb_entries": 64, "tlb_ways": 4, "pause_latency": 10, "clflush_latency": 50,
         "wbinvd_latency": 2000}
_APIC = {"mode": "xapic", "ipi_latency": 400, "icr_busy": 300, "multicast": "bus",
         "timer_period_num": 14, "timer_period_den": 1, "tsc_deadline": False}
_HOME_OCCUPANCY = 13       # amd-2x2's assumption (per-request busy time at the home)
_MEM_OCCUPANCY = 17        # amd-2x2's DDR2-667 figure
_LINK_LATENCY = 20         # amd-2x2's fitted HT link crossing (used only with > 1 package)
_ASSUMED_MEM_BYTES = 8 * KIB ** 3


def _need(d: dict, key: str, where: str):
    """d[key], or a clear MksimError naming the missing piece of the report."""
    if not isinstance(d, dict) or key not in d or d[key] is None:
        raise MksimError(f"host-bench report has no {key!r}", where=where)
    return d[key]


def _toml_str(s: str) -> str:
    """A TOML basic string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _sharing(shared_cpus: list[int], core_of_cpu: dict[int, tuple], cpp: int, ncores: int,
             where: str) -> str:
    """private / pair / package / global from the physical cores a cache is shared by."""
    n = len({core_of_cpu[c] for c in shared_cpus if c in core_of_cpu}) or 1
    if n == 1:
        return "private"
    if n == ncores and ncores > cpp:
        return "global"
    if n == cpp:
        return "package"
    if n == 2 and cpp % 2 == 0:
        return "pair"
    raise MksimError(f"cache shared by {n} cores of a {cpp}-core package: the model shares a level "
                     "by 1, 2, a package or all cores", where=where)


def _fit_size(size: int, ways: int, line: int) -> tuple[int, str]:
    """The sysfs size, or the largest smaller one with a power-of-two set count (the model's
    rule), with a note saying so."""
    sets = size // (ways * line)
    if sets >= 1 and sets & (sets - 1) == 0 and sets * ways * line == size:
        return size, ""
    if sets < 1:
        raise MksimError(f"cache of {size} bytes is smaller than one set of {ways} x {line} B")
    p2 = 1 << (sets.bit_length() - 1)
    fitted = p2 * ways * line
    return fitted, (f"; derived: sysfs size {size} B rounded down to {fitted} B "
                    f"({p2} sets: the model needs a power-of-two set count)")


def _chase_cycles(rows: list[dict], max_bytes: float) -> tuple[float, int]:
    """The median chase latency (TSC cycles) at the largest working set <= max_bytes."""
    fit = [r for r in rows if r["bytes"] <= max_bytes and r.get("tsc_cycles") is not None]
    if not fit:
        raise MksimError(f"no pointer-chase working set of at most {int(max_bytes)} bytes "
                         "in the host-bench report")
    r = max(fit, key=lambda r: r["bytes"])
    return r["tsc_cycles"], r["bytes"]


def _interconnect(packages: int, same_pkg: list[float], cross_pkg: list[float],
                  date: str) -> tuple[int, str]:
    """link_latency and its source: fitted to the core-to-core matrix on a multi-package host.

    In the model (hwmodel/engine.py rule 2) a cache-to-cache transfer between cores of two
    packages sends two more messages across a package boundary than one inside a package
    (request to the home and forward to the owner, or forward and the data back, whichever
    package is home), each costing link_latency + hops x hop_latency; on a crossbar (every
    package one hop from every other) with hop_latency 0, the cross-package pairs' extra
    one-way latency is 2 x link_latency."""
    if packages == 1:
        return 0, "one package: nothing to cross (derived: sysfs shows one physical_package_id)"
    if not cross_pkg or not same_pkg:
        missing = "cross-package" if not cross_pkg else "same-package (distinct cores)"
        return _LINK_LATENCY, (f"link_latency 20, hop_latency 0, crossbar: assumption (amd-2x2's "
                               f"values): the core-to-core matrix has no {missing} pair to fit to")
    x, s = statistics.median(cross_pkg), statistics.median(same_pkg)
    link = max(0, round((x - s) / 2))
    src = (f"link_latency: fitted to core-to-core matrix measured {date}: (median of "
           f"{len(cross_pkg)} cross-package pair(s), {x:.1f} TSC cycles - median of {len(same_pkg)} "
           f"same-package pair(s), {s:.1f}) / 2, not below 0: a transfer between packages crosses a "
           "package boundary twice (engine rule 2: request to the home and forward to the owner, or "
           "forward and data back). topology crossbar and hop_latency 0: assumption (every package "
           "one link from every other; hops not separable with this fit)")
    if x < s:
        src += "; CLAMPED: cross-package pairs measured faster than same-package ones"
    return link, src


def _interleave(numa: list[dict] | None, topo: dict, packages: int) -> tuple[str, str]:
    """memory.interleave and its source from the NUMA nodes sysfs reports."""
    if not numa:
        return "node", "interleave node: assumption (the report has no NUMA nodes from sysfs)"
    cpu_nodes = [n for n in numa if n["cpus"]]
    pkg = topo["package_of_cpu"]
    where = f"sysfs /sys/devices/system/node: {len(numa)} node(s), {len(cpu_nodes)} with CPUs"
    if packages == 1:
        return "node", f"interleave node: one package is home to all memory (derived; {where})"
    pkgs_of = [{pkg[str(c)] for c in n["cpus"] if str(c) in pkg} for n in cpu_nodes]
    if len(cpu_nodes) == 1:
        return "page", (f"interleave page: one NUMA node spans {packages} packages, so the firmware "
                        f"interleaves memory across them ({where}); the page granularity is an "
                        "assumption (sysfs does not say)")
    if all(len(p) == 1 for p in pkgs_of) and len(set().union(*pkgs_of)) == packages:
        kind = "one per package" if len(cpu_nodes) == packages else \
            f"{len(cpu_nodes)} nodes in {packages} packages (sub-NUMA clustering; the model has one memory controller per package)"
        return "node", f"interleave node: each package's memory is local to it ({where}: {kind})"
    raise MksimError(f"NUMA nodes {[(n['node'], n['cpus']) for n in cpu_nodes]} do not map onto the "
                     f"{packages} packages (a node spans packages but not all of them): the model homes "
                     "memory by package, by line or by page", where="host-bench report: host.numa_nodes")


def calibrate(rep: dict) -> str:
    """A machine TOML of the host from a host-bench report (``run_host_bench``'s dict).

    Shapes come from sysfs, latencies from the pointer chase and the core-to-core
    ping-pong; every number names its source ("sysfs", "measured", "derived",
    "assumption"). The model counts core cycles and its clock is the TSC rate, so TSC
    cycles are taken as core cycles (stated in the file)."""
    where = "host-bench report"
    if not isinstance(rep, dict) or rep.get("kind") != "mksim host-bench":
        raise MksimError("not a host-bench report (no kind = 'mksim host-bench')", where=where)
    h = _need(rep, "host", where)
    date = str(rep.get("date") or "unknown date")[:10]
    topo = _need(h, "topology", where + ": host")
    tsc_hz = _need(_need(h, "clock", where + ": host"), "tsc_hz", where + ": host.clock")
    packages = int(_need(topo, "packages", where))
    ncores = int(_need(topo, "cores", where))
    if ncores % packages:
        raise MksimError(f"{ncores} cores do not divide into {packages} packages", where=where)
    cpp = ncores // packages
    core_of_cpu = {c: i for i, sib in enumerate(_need(topo, "smt_siblings", where)) for c in sib}
    clock = round(tsc_hz / 1e9, 3)
    chase = _need(_need(rep, "memory_latency", where), "rows", where + ": memory_latency")
    if not chase:
        raise MksimError("host-bench report has no pointer-chase rows", where=where)

    out = ["# Calibrated from this host by `mksim calibrate` (host-bench report of %s)." % date,
           "# See hwmodel/presets/README.md for the schema; every number names its source.",
           'name = "host"',
           f'description = "{h.get("cpus_online")} CPUs online, {packages} package(s), {ncores} '
           f'physical cores, {topo.get("threads_per_core")} thread(s) per core ({h.get("machine")})"',
           f"packages = {packages}",
           f"cores_per_package = {cpp}",
           f"clock_ghz = {clock}",
           "sources = [",
           f'  {_toml_str("sysfs: /sys/devices/system/cpu (topology, caches of cpu%s)" % h.get("cpu"))},',
           f'  {_toml_str(f"measured {date}: mksim host-bench (pointer chase, core-to-core CAS ping-pong)")},',
           f'  {_toml_str("packages, cores_per_package: sysfs physical_package_id/core_id; SMT threads are NOT counted as cores (a model core is a physical core; its sibling threads share its caches). clock_ghz: measured TSC rate; latencies are TSC cycles taken as core cycles (assumption: constant clock, no turbo)")},',
           "]", ""]

    lat_prev = 0
    levels: list[dict] = []
    l1d = None
    for c in sorted(h["caches"], key=lambda c: (c["level"], c["type"] != "Data")):
        w = f"sysfs cache L{c['level']} {c['type']}"
        ways, line = int(c["ways"]), int(c["line_bytes"])
        if ways <= 0:
            raise MksimError("ways_of_associativity is 0 (fully associative or unknown): the "
                             "model needs a set-associative cache", where=w)
        size, size_note = _fit_size(int(c["size_bytes"]), ways, line)
        kind = {"Data": "data", "Instruction": "instruction"}.get(c["type"], "unified")
        name = f"L{c['level']}" + {"data": "D", "instruction": "I"}.get(kind, "")
        sharing = _sharing(c["shared_cpus"], core_of_cpu, cpp, ncores, w)
        src = f"size/ways/line/sharing: sysfs{size_note}; "
        if kind == "instruction":
            if l1d is None:
                raise MksimError("an L1 instruction cache without an L1 data cache", where=w)
            lat = l1d
            src += "latency: assumption: the L1D's (instruction fetch not measured)"
        else:
            cyc, ws = _chase_cycles(chase, c["size_bytes"] / 2)
            lat = max(1, round(cyc), lat_prev)
            src += (f"latency: measured {date}: pointer chase at {ws // KIB} KiB (rule: the "
                    f"largest working set <= half the cache), {cyc:.1f} TSC cycles")
            if lat != max(1, round(cyc)):
                src += f"; raised to {lat} so latencies do not decrease by level (derived)"
            lat_prev = lat
            if kind == "data":
                l1d = lat
        src += "; inclusion non-inclusive, replacement lru: assumption"
        levels.append({"level": c["level"], "kind": kind, "lat": lat, "sharing": sharing,
                       "size": c["size_bytes"]})
        out += ["[[cache]]", f'name = "{name}"', f"level = {c['level']}", f'kind = "{kind}"',
                f"size = {size}", f"ways = {ways}", f"line = {line}", f"latency = {lat}",
                f'sharing = "{sharing}"', 'inclusion = "non-inclusive"', 'replacement = "lru"',
                f"source = {_toml_str(src)}", ""]

    data_levels = [x for x in levels if x["kind"] != "instruction"]
    llc = data_levels[-1]
    priv = [x for x in data_levels if x["sharing"] == "private"]
    priv_lat = priv[-1]["lat"] if priv else llc["lat"]

    # coherence: directory_latency from the core-to-core one-way latency, by the engine's rule
    c2c_rows = [r for r in _need(rep, "core_to_core", where).get("rows") or []
                if r.get("tsc_cycles") is not None]
    same_pkg = [r["tsc_cycles"] for r in c2c_rows
                if topo["package_of_cpu"].get(str(r["cpus"][0])) == topo["package_of_cpu"].get(str(r["cpus"][1]))
                and core_of_cpu.get(r["cpus"][0]) != core_of_cpu.get(r["cpus"][1])]
    if same_pkg:
        c2c = statistics.median(same_pkg)
        dirlat = max(1, round(c2c - llc["lat"] - priv_lat))
        dir_src = (f"directory_latency: derived from the core-to-core one-way latency measured {date} "
                   f"(median of {len(same_pkg)} same-package pair(s) of distinct cores, {c2c:.1f} "
                   f"TSC cycles). The last level is non-inclusive (assumption), so a cache-to-cache "
                   f"transfer is a transaction at the home (hwmodel/engine.py rule 2): it costs the "
                   f"last-level lookup ({llc['lat']}) + link 0 on one package + directory_latency + "
                   f"the requester's deepest private level ({priv_lat}); directory_latency = "
                   f"{c2c:.1f} - {llc['lat']} - {priv_lat}, not below 1")
    else:
        note = (rep.get("core_to_core") or {}).get("note") or "no pair of distinct cores in one package"
        dirlat = 154
        dir_src = (f"directory_latency = 154: assumption (amd-2x2's value): no core-to-core "
                   f"measurement to derive it from ({note})")
    dir_src += (f". home_occupancy = {_HOME_OCCUPANCY}: assumption (amd-2x2's value): a per-request "
                "busy time shows only under contention, which one ping-pong pair does not measure. "
                "protocol mesi: assumption")
    out += ["[coherence]", 'protocol = "mesi"', f"directory_latency = {dirlat}",
            f"home_occupancy = {_HOME_OCCUPANCY}", f"source = {_toml_str(dir_src)}", ""]

    cross_pkg = [r["tsc_cycles"] for r in c2c_rows
                 if topo["package_of_cpu"].get(str(r["cpus"][0])) != topo["package_of_cpu"].get(str(r["cpus"][1]))]
    link, ic_src = _interconnect(packages, same_pkg, cross_pkg, date)
    out += ["[interconnect]", 'topology = "crossbar"', "hop_latency = 0", f"link_latency = {link}",
            f"source = {_toml_str(ic_src)}", ""]

    # memory: the largest working set, minus what the model adds before the controller
    big = max(chase, key=lambda r: r["bytes"])
    if big["bytes"] <= llc["size"] or big.get("tsc_cycles") is None:
        raise MksimError(f"the largest pointer-chase working set ({big['bytes']} B) does not "
                         f"exceed the last-level cache ({llc['size']} B): no memory latency "
                         "(run host-bench without --quick)", where=where)
    raw = big["tsc_cycles"] - llc["lat"] - dirlat
    memlat = max(1, round(raw))
    clamp = ""
    if raw < 1:
        clamp = (f"; CLAMPED to 1: the model's miss path (last level {llc['lat']} + directory "
                 f"{dirlat} = {llc['lat'] + dirlat}) already exceeds the measured chase, so a "
                 "model memory read will be slower than this host's")
    interleave, il_src = _interleave(h.get("numa_nodes"), topo, packages)
    mem_total = h.get("mem_total_bytes")
    unit = packages * 4096
    if mem_total:
        mem_size = max(unit, mem_total // unit * unit)
        size_src = f"size: /proc/meminfo MemTotal rounded down to a multiple of {unit} B"
    else:
        mem_size = _ASSUMED_MEM_BYTES
        size_src = "size: assumption (8 GiB; the report has no MemTotal)"
    mem_src = (f"latency: derived: pointer chase at {big['bytes'] // KIB} KiB measured {date} "
               f"({big['tsc_cycles']:.1f} TSC cycles) minus the last-level lookup ({llc['lat']}) "
               f"and directory_latency ({dirlat}) that the model adds to a miss (engine rule 2), "
               f"not below 1{clamp}; the chase uses 4 KiB pages, so TLB misses are included. "
               f"occupancy {_MEM_OCCUPANCY}: assumption (amd-2x2's value, bandwidth not measured). "
               f"{size_src}. {il_src}")
    out += ["[memory]", f"latency = {memlat}", f"occupancy = {_MEM_OCCUPANCY}", f"size = {mem_size}",
            f'interleave = "{interleave}"', f"source = {_toml_str(mem_src)}", ""]

    out += ["[core]"] + [f"{k} = {v}" for k, v in _CORE.items()] + [f"source = {_toml_str(_ASSUMED)}", ""]
    out += ["[apic]"] + [f"{k} = {_toml_str(v) if isinstance(v, str) else str(v).lower()}"
                         for k, v in _APIC.items()]
    out += ["version = 0x80050010", f"source = {_toml_str(_ASSUMED)}",
            f"timer_source = {_toml_str(_ASSUMED)}", ""]
    return "\n".join(out)
