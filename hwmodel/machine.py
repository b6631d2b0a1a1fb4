"""A machine you can run traces on: state + compiled engine + readable results."""
from __future__ import annotations

import numpy as np

from hwmodel import cpu, engine, uniprocessor
from hwmodel.coherence import STATE_NAMES
from hwmodel.config import MachineConfig, load_machine
from hwmodel.errors import MksimError
from hwmodel.memory import functional_replay
from hwmodel.state import CORE_STATS, DIRTY, LEVEL_STATS, P_LINEBITS, SHOWN_FLAGS, VALID, build_state
from hwmodel.workload import FAULT_NAMES, OUTCOME_NAMES, PROG_STATS, SPIN, STATUS_NAMES, WFI, Workload
from hwmodel.workload import STATE_NAMES as CORE_STATE_NAMES


class Machine:
    """The memory system of one machine.  ``run`` replays accesses; state persists between runs."""

    def __init__(self, cfg: MachineConfig | str, seed: int = 0, one_core_path: bool = True):
        """``one_core_path=False`` replays a one-core machine's traces on the general engine (with a
        directory) instead of ``hwmodel.uniprocessor``: the same numbers, slower; tests compare the two."""
        self.cfg = load_machine(cfg) if isinstance(cfg, str) else cfg
        self._one_core = one_core_path and self.cfg.cores == 1
        self.state = build_state(self.cfg, seed)
        self._st = engine.pack(self.state)
        self._trace = None
        self.cpu = None

    # ------------------------------------------------------------ programs
    def workload(self) -> Workload:
        """An empty workload sized for this machine (place programs, start cores, then ``load_workload``)."""
        return Workload(self.cfg.cores)

    def load_workload(self, w: Workload) -> None:
        """Set up the cores to run ``w`` (programs, starts, handlers, partitions, memory)."""
        if w.cores != self.cfg.cores:
            raise MksimError(f"workload is for {w.cores} cores; {self.cfg.name} has {self.cfg.cores}")
        self.cpu = cpu.build(self.state, self.cfg, w)

    def execute(self, max_ops: int = -1) -> str:
        """Run the loaded workload: 'done', 'deadlock', or 'limit' after ``max_ops`` ops (resumable)."""
        if self.cpu is None:
            raise MksimError("no workload loaded (Machine.load_workload)")
        start = int(self.cpu.out[1])
        while True:
            left = -1 if max_ops < 0 else max_ops - (int(self.cpu.out[1]) - start)
            status = int(cpu.run(self._st, cpu.pack(self.cpu), left))
            if status != cpu.GROW:
                return STATUS_NAMES[status]
            what = int(self.cpu.out[0])
            if what == cpu.G_DIR:       # the directory is half full: double it (same entries)
                self._grow_directory(2 * self.state.dirt.shape[0])
            else:
                cpu.grow(self.cpu, what)

    def read(self, addr: int, n: int, domain: int | None = None) -> bytes:
        """Bytes of simulated physical memory (the functional store); with ``domain``, as that
        coherence domain's cores would read them now (its cached copies over memory)."""
        if domain is None or self.cfg.ndomains == 1:
            return cpu.read_phys(self.cpu, addr, n)
        if not 0 <= domain < self.cfg.ndomains:
            raise MksimError(f"domain {domain!r} does not exist on {self.cfg.name} (0..{self.cfg.ndomains - 1})")
        return cpu.read_domain(self.cpu, self.cfg, domain, addr, n)

    def write(self, addr: int, data: bytes) -> None:
        cpu.write_phys(self.cpu, addr, data)

    def ipis(self) -> np.ndarray:
        """[n, 8]: src, dst, vector, mode, send time, arrival, outcome, outcome time."""
        return self.cpu.ipi[: int(self.cpu.nipi[0])].copy()

    def faults(self) -> np.ndarray:
        """[n, 6]: core, pc, address, kind, owner, time."""
        return self.cpu.faults[: int(self.cpu.nfault[0])].copy()

    def partitions(self) -> list[tuple[int, int, int]]:
        """The partition table now, slot by slot: (lo, hi, owner kernel); an empty slot is (0, 0, -1)."""
        return [tuple(int(x) for x in r) for r in self.cpu.regions]

    def kernels(self) -> list[int]:
        """Each core's kernel now (-1: unrestricted)."""
        return [int(k) for k in self.cpu.kern]

    def timeline(self) -> np.ndarray:
        """[n, 4]: core, time, event id, value (MARK ops)."""
        return self.cpu.tl[: int(self.cpu.ntl[0])].copy()

    def waits(self) -> list[tuple[int, str, str]]:
        """What each sleeping core waits on (the deadlock report)."""
        out = []
        for c in range(self.cfg.cores):
            s = int(self.cpu.state[c])
            if s == SPIN:
                out.append((c, CORE_STATE_NAMES[s], f"line {int(self.cpu.wait[c]) << (self.cfg.line.bit_length() - 1):#x}"))
            elif s == WFI:
                out.append((c, CORE_STATE_NAMES[s], "interrupt"))
        return out

    def prog_stats(self) -> list[dict]:
        return [{k: int(self.cpu.pst[c, i]) for i, k in enumerate(PROG_STATS)} for c in range(self.cfg.cores)]

    def fault_report(self) -> list[dict]:
        return [{"core": int(f[0]), "pc": int(f[1]), "address": int(f[2]), "kind": FAULT_NAMES[int(f[3])],
                 "owner": int(f[4]), "time": int(f[5])} for f in self.faults()]

    def ipi_report(self) -> list[dict]:
        return [{"src": int(r[0]), "dst": int(r[1]), "vector": int(r[2]), "mode": int(r[3]), "sent": int(r[4]),
                 "arrive": int(r[5]), "outcome": OUTCOME_NAMES[int(r[6])], "at": int(r[7])} for r in self.ipis()]

    # ------------------------------------------------------------ running
    def load(self, core: np.ndarray, kind: np.ndarray, addr: np.ndarray, size: np.ndarray,
             record: bool = True) -> None:
        """Queue per-core access streams (in trace order within each core).

        ``record=False`` skips the per-access outputs (latency, issue time,
        performed order): faster for long traces that need only the totals.
        """
        if self.cfg.core_types:
            raise MksimError(f"{self.cfg.name}: trace replay on a machine with core types is not modelled "
                             "(store-hit costs and issue widths are per core type only in the program engine); "
                             "run the accesses as core programs instead")
        core = np.ascontiguousarray(core, dtype=np.int64)
        if core.size and (core.min() < 0 or core.max() >= self.cfg.cores):
            bad = int(core[(core < 0) | (core >= self.cfg.cores)][0])
            raise MksimError(f"core {bad} does not exist on {self.cfg.name} ({self.cfg.cores} cores)")
        if core.size < 2 or bool((core[1:] >= core[:-1]).all()):
            order = np.arange(core.size, dtype=np.int64)              # already grouped by core
        else:
            order = np.argsort(core.astype(np.uint16), kind="stable").astype(np.int64)  # radix sort
        counts = np.bincount(core, minlength=self.cfg.cores).astype(np.int64)
        ends = np.cumsum(counts)
        starts = ends - counts
        kind = np.ascontiguousarray(kind, dtype=np.int64)
        size = np.ascontiguousarray(size, dtype=np.int64)
        addr = np.ascontiguousarray(addr, dtype=np.int64)
        if kind.size and (kind.min() < 0 or kind.max() > 3):
            raise MksimError(f"access kind {int(kind[(kind < 0) | (kind > 3)][0])} is not one of 0..3 (I, L, S, M)")
        if size.size and (size.min() < 0 or size.max() >= 1 << 40):
            raise MksimError(f"access size {int(size[(size < 0) | (size >= 1 << 40)][0])} out of range")
        if addr.size:
            ua = addr.view(np.uint64)
            wraps = ua > (np.uint64(2**64 - 1) - np.maximum(size, 1).astype(np.uint64) + np.uint64(1))
            if wraps.any():
                i = int(np.nonzero(wraps)[0][0])
                raise MksimError(f"access {i} at {int(ua[i]):#x} of {int(size[i])} bytes runs past the top "
                                 "of the 64-bit address space")
        if not self._one_core and addr.size:
            # one access adds at most one directory entry per line it touches: keep room for the widest
            lb = np.uint64(int(self.state.params[P_LINEBITS]))
            ua = addr.view(np.uint64)
            span = int((((ua + np.maximum(size, 1).astype(np.uint64) - np.uint64(1)) >> lb) - (ua >> lb)).max()) + 1
            if span > 1 and self.state.dirt.shape[0] < 4 * span:
                self._grow_directory(4 * span)
        if self._one_core:
            rec = np.empty((0, 2), np.int64)        # the one-core path reads kind/addr/size directly
        else:
            rec = np.empty((core.size, 2), np.int64)   # per-core contiguous rows: address, size << 8 | kind
            rec[:, 0] = addr[order]
            rec[:, 1] = (size[order] << 8) | kind[order]
        self._trace = dict(order=order, starts=starts, ends=ends, pos=starts.copy(), rec=rec,
                           kind=kind, addr=addr, size=size,
                           lat=np.zeros(core.size if record else 0, np.int64),
                           issue=np.zeros(core.size if record else 0, np.int64),
                           seq=np.full(core.size if record else 0, -1, np.int64),
                           eff=np.zeros(core.size if record else 0, np.int64), done=np.zeros(1, np.int64),
                           inflight=np.full(self.cfg.cores, -1, np.int64), alu=np.zeros(self.cfg.cores, np.int64))

    def step(self, n: int = -1) -> int:
        """Run up to ``n`` queued accesses (-1: all); returns how many ran."""
        t = self._trace
        if t is None:
            return 0
        if self._one_core:
            s = self.state
            start = int(t["pos"][0])
            stop = int(t["ends"][0]) if n < 0 else min(int(t["ends"][0]), start + n)
            ran = int(uniprocessor.run_single(s.geo, s.tag, s.flags, s.meta, s.rng, s.tick, s.dpath, s.ipath,
                                              s.params, s.mem_busy, s.clock, s.lstats, s.cstats, t["kind"],
                                              t["addr"], t["size"], start, stop, t["lat"], t["issue"], t["eff"], t["alu"]))
            if t["seq"].size:
                t["seq"][start:stop] = np.arange(start, stop)
            t["pos"][0] = stop
            t["done"][0] = stop
            return ran
        ran = 0
        heap = np.empty(self.cfg.cores, np.int64)
        while True:
            if engine.dir_wants_room(self.state):
                self._grow_directory(2 * self.state.dirt.shape[0])
            ran += int(engine.run_trace(self._st, t["order"], t["starts"], t["ends"], t["pos"],
                                        t["rec"], n if n < 0 else n - ran, t["lat"], t["issue"], t["seq"], t["eff"],
                                        t["done"], heap, t["inflight"], t["alu"]))
            if self.state.d_count[1] == 0:
                return ran
            self.state.d_count[1] = 0      # it stopped for a bigger directory (see run_trace)

    def _grow_directory(self, rows: int) -> None:
        """A directory of at least ``rows`` rows (a power of two, at most its full size); same entries."""
        p = 1
        while p < rows:
            p <<= 1
        if p > self.state.dirt.shape[0]:
            engine.dir_grow(self.state, p)
            self._st = engine.pack(self.state)

    def run(self, core, kind, addr, size, record: bool = True) -> np.ndarray:
        """Replay a whole trace; returns each access's cost, end - issue (empty if ``record=False``)."""
        self.load(core, kind, addr, size, record)
        self.step(-1)
        return self._trace["lat"]

    @property
    def latencies(self) -> np.ndarray:
        return self._trace["lat"] if self._trace else np.zeros(0, np.int64)

    @property
    def issue_times(self) -> np.ndarray:
        """Cycle at which each access was issued by its core."""
        return self._trace["issue"] if self._trace else np.zeros(0, np.int64)

    @property
    def effect_times(self) -> np.ndarray:
        """When each performed access took effect (in ``performed`` order): its issue time, or for a
        miss the time its request reached the line's home (cpu_spec.md, 'Trace replay')."""
        return self._trace["eff"][: int(self._trace["done"][0])] if self._trace else np.zeros(0, np.int64)

    @property
    def performed(self) -> np.ndarray:
        """Trace indices in the global order the accesses were performed."""
        return self._trace["seq"][: int(self._trace["done"][0])] if self._trace else np.zeros(0, np.int64)

    def load_values(self) -> np.ndarray:
        """What each load returned, from the functional store replayed in global order.

        Values and timing are separate: stores write the bytes of (trace index
        + 1), little-endian, truncated to their size; a load of up to 8 bytes
        returns the bytes last stored there (0 if never).  -1 for non-loads.
        """
        t = self._trace
        return functional_replay(self.performed, t["kind"], t["addr"], t["size"])

    # ------------------------------------------------------------ results
    def stats(self) -> dict:
        """Per-core cycles and counters, per-core per-cache hit/miss counters."""
        s = self.state
        cores = []
        for c in range(self.cfg.cores):
            d = {"core": c, "cycles": self.cfg.own_cycles(c, int(s.clock[c])), "ns": self.cfg.ns(int(s.clock[c]))}
            d.update({k: int(s.cstats[c, i]) for i, k in enumerate(CORE_STATS)})
            d["caches"] = {name: {k: int(s.lstats[c, ci, j]) for j, k in enumerate(LEVEL_STATS)}
                           for ci, name in enumerate(s.cache_names)}
            cores.append(d)
        return {"machine": self.cfg.name, "cores": cores,
                "total_cycles": int(s.clock.max()) if s.clock.size else 0}

    def cache_contents(self) -> dict[int, dict[int, tuple[int, int]]]:
        """{instance: {slot offset: (tag, flags)}} for every non-empty way."""
        s = self.state
        out = {}
        for inst in range(s.geo.shape[0]):
            base, sets, ways = s.geo[inst, 0], s.geo[inst, 1], s.geo[inst, 2]
            fl = s.flags[base:base + sets * ways] & SHOWN_FLAGS     # without the engine's hints
            idx = np.nonzero(fl)[0]
            out[inst] = {int(i): (int(s.tag[base + i]), int(fl[i])) for i in idx}
        return out

    def directory(self) -> dict[int, tuple[str, int, tuple[int, ...], int]]:
        """{line: (state, owner, holders, busy_until)}; empty on a one-core machine replayed on its one-core
        path (``one_core_path``), which keeps none."""
        s = self.state
        out = {}
        d = s.dirt
        for i in np.nonzero(d[:, 0])[0]:
            bits = []
            for w in range(d.shape[1] - 5):
                x = int(d[i, 5 + w]) & (2**64 - 1)
                bits += [w * 64 + b for b in range(64) if (x >> b) & 1]
            out[int(d[i, 1])] = (STATE_NAMES[int(d[i, 2])], int(d[i, 3]), tuple(bits), int(d[i, 4]))
        return out

    def lines_in(self, inst: int, dirty: bool = False) -> set[int]:
        """Lines held validly (and dirty, if asked) by cache instance ``inst``."""
        s = self.state
        base, sets, ways = s.geo[inst, 0], s.geo[inst, 1], s.geo[inst, 2]
        fl = s.flags[base:base + sets * ways]
        keep = (fl & VALID) != 0
        if dirty:
            keep &= (fl & DIRTY) != 0
        return {int(s.tag[base + i]) for i in np.nonzero(keep)[0]}

    def holders_by_cache(self, dirty: bool = False) -> dict[int, set[int]]:
        """{line: cores holding it (dirty, if asked) in a private cache}, read from the caches themselves."""
        out: dict[int, set[int]] = {}
        for core in range(self.cfg.cores):
            for inst in self.state.privs[core]:
                for line in self.lines_in(int(inst), dirty):
                    out.setdefault(line, set()).add(core)
        return out
