"""The engine's first run: compile what a command needs up front, in parallel, and say so once.

numba compiles an entry point of the engine (``cpu.run``, the program engine; ``engine.run_trace``,
trace replay; the trace parsers) the first time it is called and keeps the machine code in its
on-disk cache (``hwmodel._numba``).  A command that finds the entry points it needs missing from
the cache compiles them before it starts, each in its own process (they share no compiled code,
so they compile independently; on two cores the replay engine compiles while the program engine
does), and says so once on stderr with the expected time.  The command itself then loads them
from the cache, as every later run does.

Each worker compiles into a private cache folder and moves only its entry point's files into the
shared one: two processes that compile the same helper (``engine.access`` is in both engines)
would otherwise race on that helper's cache index.  A worker that fails changes nothing: the
command compiles what is missing itself, as numba always does.

    python -m mksim.firstrun NAME...      compile these entry points (program, replay, parse, cachegrind)
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# name -> (the compiled functions it leaves in numba's cache, as "module.function" index-file stems;
#          CPU seconds to compile it on the reference machine: a 2-core VM, see README "first run")
ENTRIES: dict[str, tuple[tuple[str, ...], float]] = {
    "program": (("cpu.run", "cpu.apic_reset", "cpu.page_slot", "cpu._phash", "engine.dir_rehash"), 42.0),
    "replay": (("engine.run_trace", "uniprocessor.run_single"), 21.0),
    "parse": (("trace._count_lines", "trace._parse_mksim", "trace._parse_lackey"), 2.5),
    "cachegrind": (("cachegrind._simulate",), 3.0),
}
# what each command runs on the engine (trace: see needs())
COMMAND_NEEDS: dict[str, tuple[str, ...]] = {
    "demo": ("program", "replay", "parse"),
    "boot": ("program",),
    "bench": ("program",),
    "compare": ("program",),
}
REF_PROBE_S = 0.052         # probe() on the reference machine (best of three, idle)
STARTUP_S = 1.5             # a worker's start: Python, numpy, numba, the engine modules
TIMES_FILE = "compile-seconds.json"
NOTICE = "mksim: compiling the engine (first run only, about {secs} on this machine)"


def needs(command: str, args=None) -> tuple[str, ...]:
    """The entry points ``command`` (with its parsed ``args``) runs."""
    if command == "trace":
        fmt = getattr(args, "format", None) or ""
        parse = ("parse",) if fmt != "npz" else ()
        return parse + (("replay",) if getattr(args, "machine", None) else ("cachegrind",))
    return COMMAND_NEEDS.get(command, ())


def cache_dir() -> str:
    """numba's cache folder for the engine (set by ``hwmodel._numba`` when NUMBA_CACHE_DIR is unset)."""
    from hwmodel import _numba  # noqa: F401  (sets NUMBA_CACHE_DIR; does not import numba's compiler)
    return os.environ.get("NUMBA_CACHE_DIR", "")


def is_cached(name: str, where: str | None = None) -> bool:
    """Whether every function of entry point ``name`` has an index file in the cache."""
    d = cache_dir() if where is None else where
    stems = ENTRIES[name][0]
    return bool(d) and all(glob.glob(os.path.join(d, "*", f"{s}-*.nbi")) for s in stems)


def missing(names, where: str | None = None) -> list[str]:
    """The entry points of ``names`` that are not compiled yet."""
    return [n for n in names if not is_cached(n, where)]


def probe() -> float:
    """Seconds for a fixed piece of pure-Python work: how fast this machine is now, next to the
    reference machine (compiling is single-threaded work of the same kind)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        d = {}
        for i in range(400_000):
            d[i % 977] = d.get(i % 977, 0) + i * 3
        best = min(best, time.perf_counter() - t)
    return best


def _times_path(where: str) -> str:
    """Where measured compile times are kept: beside the cache folders of every version of the
    engine when ``hwmodel._numba`` chose the folder (so that they outlive a code change), else in it."""
    from hwmodel import _numba
    base = os.path.dirname(where) if getattr(_numba, "CHOSEN_DIR", None) == where else where
    return os.path.join(base, TIMES_FILE)


def _recorded(where: str) -> dict:
    try:
        with open(_times_path(where), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _record(where: str, measured: dict[str, float]) -> None:
    data = _recorded(where)
    data.update({k: round(v, 1) for k, v in measured.items()})
    try:
        with open(_times_path(where), "w", encoding="utf-8") as f:
            json.dump(data, f)
    except OSError:
        pass                    # only the next estimate is worse


def workers() -> int:
    """How many compiles run at once: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:     # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def estimate(names, where: str | None = None) -> float:
    """Expected wall seconds to compile ``names`` here: times measured on this machine before,
    else the reference machine's times scaled by ``probe()``; longest first on ``workers()``."""
    d = cache_dir() if where is None else where
    seen = _recorded(d) if d else {}
    scale = None
    secs = []
    for n in names:
        if n in seen:
            secs.append(float(seen[n]))
        else:
            scale = scale if scale is not None else max(0.25, probe() / REF_PROBE_S)
            secs.append(ENTRIES[n][1] * scale + STARTUP_S)
    lanes = [0.0] * workers()
    for s in sorted(secs, reverse=True):
        i = lanes.index(min(lanes))
        lanes[i] += s
    return max(lanes) if secs else 0.0


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, int(round(seconds / 5.0)) * 5)} s"
    return f"{seconds / 60:.0f} min"


def _source_root() -> str:
    """The folder that holds the ``mksim`` and ``hwmodel`` packages (for the workers' imports)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_up_front(names, notice: bool = True) -> list[str]:
    """Compile the missing entry points of ``names`` before a command runs -- in parallel worker
    processes when there are two or more and more than one CPU, else here -- and say so once on
    stderr (``notice``) with the expected time.  Returns the ones compiled."""
    if os.environ.get("MKSIM_COMPILE_UP_FRONT", "1") == "0":
        return []
    where = cache_dir()
    todo = missing(names, where) if where else []
    if not todo:
        return []
    if notice:
        sys.stderr.write(NOTICE.format(secs=_fmt(estimate(todo, where))) + "\n")
        sys.stderr.flush()
    measured: dict[str, float] = {}
    if len(todo) == 1 or workers() == 1:          # nothing to overlap: compile here, no worker to start
        for n in todo:
            t0 = time.perf_counter()
            WARM[n]()
            measured[n] = time.perf_counter() - t0
        _record(where, measured)
        return sorted(measured)
    env = dict(os.environ, NUMBA_CACHE_DIR=where)
    env["PYTHONPATH"] = os.pathsep.join([_source_root()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    pending = sorted(todo, key=lambda n: -ENTRIES[n][1])          # longest first
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers():
                n = pending.pop(0)
                p = subprocess.Popen([sys.executable, "-m", "mksim.firstrun", n], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                running[n] = (p, time.perf_counter())
            for n, (p, t0) in list(running.items()):
                if p.poll() is not None:
                    del running[n]
                    if p.returncode == 0:
                        measured[n] = time.perf_counter() - t0
            if running:
                time.sleep(0.05)
    finally:                    # interrupted (Ctrl-C, SIGTERM): stop the workers too
        for p, _ in running.values():
            p.kill()
            p.wait()
            for d in glob.glob(os.path.join(where, f".compiling-{p.pid}-*")):
                shutil.rmtree(d, ignore_errors=True)
    if measured:
        _record(where, measured)
    return sorted(measured)


# ------------------------------------------------------------------ the workers

def _warm_program() -> None:
    """Run a two-op program and read and write memory: compiles ``cpu.run``, ``cpu.apic_reset`` (which
    builds the state), the functional memory's page look-up (``Machine.read`` / ``write``) and the
    directory's rehash (a program that caches many lines doubles the directory as it runs)."""
    from hwmodel import engine, isa
    from hwmodel.machine import Machine
    from hwmodel.workload import Workload
    m = Machine("amd-2x2")
    w = Workload(m.cfg.cores)
    prog = isa.Program("warm")
    prog.movi("r1", 1)
    prog.halt()
    w.start(0, w.place(prog, 0x10_0000).pc())
    m.load_workload(w)
    m.execute()
    engine.dir_grow(m.state, 2 * m.state.dirt.shape[0])
    m.write(0x20_0000, b"\x01")
    m.read(0x20_0000, 1)


def _warm_replay() -> None:
    """Replay a four-access trace on two cores and on one: compiles ``engine.run_trace`` and the
    one-core replay ``uniprocessor.run_single``."""
    import numpy as np
    from hwmodel.config import CacheConfig, MachineConfig
    from hwmodel.machine import Machine
    one = MachineConfig(name="warm-one-core", packages=1, cores_per_package=1, clock_ghz=1.0,
                        caches=(CacheConfig(name="L1", level=1, size=4096, ways=4, line=64, latency=4,
                                            sharing="private", kind="unified", replacement="lru"),),
                        origin="mksim.firstrun").validate()
    n = 4
    for cfg, cores in (("amd-2x2", 2), (one, 1)):
        Machine(cfg).run(np.arange(n, dtype=np.int64) % cores, np.ones(n, np.int64),
                         np.arange(n, dtype=np.int64) * 64, np.full(n, 8, np.int64))


def _warm_parse() -> None:
    """Parse a two-line trace in each text format: compiles the trace parsers."""
    from hwmodel.trace import parse_trace_bytes
    parse_trace_bytes(b"0 L 0x1000 8\n1 S 0x1040 4\n", "mksim")
    parse_trace_bytes(b"I  04000000,4\n L 7ff000000,8\n", "lackey")


def _warm_cachegrind() -> None:
    """Simulate a two-access trace in cachegrind mode: compiles its simulator."""
    from hwmodel import cachegrind
    from hwmodel.trace import parse_trace_bytes
    cachegrind.simulate(parse_trace_bytes(b"I  04000000,4\n L 7ff000000,8\n", "lackey"))


WARM = {"program": _warm_program, "replay": _warm_replay, "parse": _warm_parse, "cachegrind": _warm_cachegrind}


def _publish(private: str, shared: str, stems) -> None:
    """Move the cache files of functions ``stems`` from ``private`` into ``shared`` (data first,
    then the index that points at it, so a reader never finds an index without its data)."""
    files = [f for s in stems for f in glob.glob(os.path.join(private, "*", f"{s}-*"))]
    for f in sorted(files, key=lambda f: f.endswith(".nbi")):
        dest = os.path.join(shared, os.path.relpath(f, private))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(f, dest)


def _worker(name: str) -> None:
    """Compile entry point ``name`` into a private cache folder, then publish its files."""
    shared = os.environ["NUMBA_CACHE_DIR"]
    private = tempfile.mkdtemp(prefix=f".compiling-{os.getpid()}-", dir=shared)
    try:
        os.environ["NUMBA_CACHE_DIR"] = private      # before numba is imported
        WARM[name]()
        _publish(private, shared, ENTRIES[name][0])
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    for a in sys.argv[1:]:
        if a not in ENTRIES:
            sys.exit(f"mksim.firstrun: unknown entry point {a!r} (known: {', '.join(ENTRIES)})")
    for a in sys.argv[1:]:
        _worker(a)
