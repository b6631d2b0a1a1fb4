"""Plain-Python reference model of the memory system.

Same rules as ``hwmodel.engine`` (read its docstring), written for reading,
not speed: caches are lists of ways, the directory a dict of line -> Entry,
each step spelled out.  Differential tests run both on generated traces and
require identical latencies, statistics, cache contents and directory.

Cache instances are numbered like the engine's: for each cache of the
config in order, one instance per sharing group in core order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hwmodel.coherence import E, HIT_OK, I, M, O, READ, S, STATE_NAMES
from hwmodel.config import MachineConfig
from hwmodel.interconnect import hop_matrix
from hwmodel.replacement import MODULES
from hwmodel.state import COHINV, CORE_STATS, DIRTY, LEVEL_STATS, VALID
from hwmodel.trace import KIND_I, KIND_M, KIND_S



@dataclass
class Way:
    tag: int = 0
    flags: int = 0


@dataclass
class Cache:
    cfg_index: int
    level: int           # path position (0 = level 1)
    sets: int
    ways: int
    latency: int
    private: bool
    inclusive: bool
    cores: range         # the cores it serves
    policy: object
    lines: list = field(default_factory=list)  # sets x ways of Way

    def set_of(self, line: int) -> list[Way]:
        return self.lines[line % self.sets]

    def find(self, line: int) -> int:
        for w, way in enumerate(self.set_of(line)):
            if way.flags & VALID and way.tag == line:
                return w
        return -1


@dataclass
class Entry:
    state: int = I
    owner: int = -1
    holders: set = field(default_factory=set)
    busy: int = 0


class ReferenceMachine:
    def __init__(self, cfg: MachineConfig, seed: int = 0):
        self.cfg = cfg
        cores = cfg.cores
        self.caches: list[Cache] = []
        inst_of = {}
        for ci, c in enumerate(cfg.caches):
            g = cfg.group_size(c.sharing)
            for grp in range(cores // g):
                inst = len(self.caches)
                inst_of[(ci, grp)] = inst
                c = cfg.cache_for(ci, grp * g)       # the core type's own geometry, latency in ticks
                rseed = (seed * 0x9E3779B97F4A7C15 + inst * 0xBF58476D1CE4E5B9 + 1) % 2**64
                self.caches.append(Cache(ci, c.level - 1, c.sets, c.ways, c.latency, c.sharing == "private",
                                         c.inclusion == "inclusive", range(grp * g, grp * g + g),
                                         MODULES[c.replacement].Reference(c.ways, rseed),
                                         [[Way() for _ in range(c.ways)] for _ in range(c.sets)]))
        levels = sorted({c.level for c in cfg.caches})
        self.nlev = len(levels)
        self.npriv = sum(1 for lv in levels if cfg._level_sharing(lv) == "private")
        self.dpath = [[None] * self.nlev for _ in range(cores)]
        self.ipath = [[None] * self.nlev for _ in range(cores)]
        for ci, c in enumerate(cfg.caches):
            g = cfg.group_size(c.sharing)
            for core in range(cores):
                if c.kind in ("unified", "data"):
                    self.dpath[core][c.level - 1] = inst_of[(ci, core // g)]
                if c.kind in ("unified", "instruction"):
                    self.ipath[core][c.level - 1] = inst_of[(ci, core // g)]
        if {c.kind for c in cfg.caches if c.level == 1} == {"data"}:
            for core in range(cores):
                self.ipath[core][0] = self.dpath[core][0]
        self.privs = [sorted({p[k] for p in (self.dpath[c], self.ipath[c]) for k in range(self.npriv)})
                      for c in range(cores)]
        self.hops = hop_matrix(cfg.interconnect, cfg.packages).tolist()
        self.dir: dict[int, Entry] = {}
        self.mem_busy = [0] * cfg.packages
        self.home_busy = [0] * cfg.packages      # each home's coherence engine
        self.clock = [0] * cores
        self.tick = 0
        self.lstats = [[dict.fromkeys(LEVEL_STATS, 0) for _ in cfg.caches] for _ in range(cores)]
        self.cstats = [dict.fromkeys(CORE_STATS, 0) for _ in range(cores)]
        self.line_bits = cfg.line.bit_length() - 1
        self.proto = cfg.coherence.protocol
        self.read_rule = {row[0]: row[1:] for row in READ[self.proto]}
        self.ndom = cfg.ndomains
        self.memlat = [cfg.memory_latency(p) for p in range(cfg.packages)]
        self.dom = [cfg.domain(q) for q in range(cores)]

    def key(self, core: int, line: int) -> int:
        """Directory key: each coherence domain keeps its own entries."""
        return line if self.ndom == 1 else line * self.ndom + self.dom[core]

    def cache_domain(self, inst: int) -> int:
        return self.dom[self.caches[inst].cores[0]]

    # ------------------------------------------------------------ helpers
    def home(self, line: int) -> int:
        m, P = self.cfg.memory, self.cfg.packages
        if m.interleave == "node":      # contiguous page-aligned block per package
            node_bytes = (m.size // P) // 4096 * 4096
            return (line * self.cfg.line // node_bytes) % P
        if m.interleave == "line":
            return line % P
        return (line * self.cfg.line // 4096) % P

    def pkg(self, core: int) -> int:
        return core // self.cfg.cores_per_package

    def lat(self, inst: int) -> int:
        return self.caches[inst].latency

    def holds(self, core: int, line: int) -> bool:
        return any(self.caches[i].find(line) >= 0 for i in self.privs[core])

    def core_state(self, core: int, line: int) -> int:
        e = self.dir.get(self.key(core, line))
        if e is None or core not in e.holders:
            return I
        return e.state if e.owner == core else S

    def shared_level_with(self, a: int, b: int) -> int:
        """Lowest level where a and b meet one inclusive cache (the only kind that tracks its cores)."""
        for k in range(self.npriv, self.nlev):
            if self.dpath[a][k] == self.dpath[b][k] and self.caches[self.dpath[a][k]].inclusive:
                return k
        return -1

    def msg(self, a: int, b: int) -> int:
        """One-way latency of a message from package a to package b."""
        ic = self.cfg.interconnect
        h = self.hops[a][b]
        return ic.link_latency + h * ic.hop_latency if h else 0

    def mem_write(self, line: int, t: int, core: int) -> None:
        h = self.home(line)
        self.mem_busy[h] = max(self.mem_busy[h], t) + self.cfg.memory.occupancy
        self.cstats[core]["memory_writes"] += 1

    def touch(self, inst: int, line: int, way: int) -> None:
        self.tick += 1
        c = self.caches[inst]
        c.policy.hit(line % c.sets, way)

    # ------------------------------------------------------------ leaving caches
    def drop(self, core: int, line: int) -> None:
        e = self.dir.get(self.key(core, line))
        if e is None or core not in e.holders:
            return
        e.holders.discard(core)
        was_owner = e.owner == core
        if was_owner:
            e.owner = -1
        if not e.holders:
            del self.dir[self.key(core, line)]
        elif was_owner:
            e.state = S

    def push_dirty(self, core: int, pos: int, line: int, t: int, stat_core: int, stat_cfg: int) -> None:
        self.lstats[stat_core][stat_cfg]["writebacks"] += 1
        for k in range(pos + 1, self.nlev):
            c = self.caches[self.dpath[core][k]]
            w = c.find(line)
            if w >= 0:
                c.set_of(line)[w].flags |= DIRTY
                return
        self.mem_write(line, t, stat_core)

    def back_invalidate(self, inst: int, line: int, t: int) -> None:
        x = self.caches[inst]
        for q in x.cores:
            for k in range(x.level):
                for path in (self.dpath, self.ipath):
                    u = self.caches[path[q][k]]
                    w = u.find(line)
                    if w >= 0:
                        way = u.set_of(line)[w]
                        dirty = bool(way.flags & DIRTY)
                        way.flags = 0
                        u.policy.forget(line % u.sets, w)
                        if dirty:
                            self.push_dirty(q, x.level, line, t, q, u.cfg_index)
            if not self.holds(q, line):
                self.drop(q, line)

    def evict(self, inst: int, s: int, w: int, t: int, actor: int) -> None:
        x = self.caches[inst]
        way = x.lines[s][w]
        line, dirty = way.tag, bool(way.flags & DIRTY)
        way.flags = 0
        x.policy.forget(s, w)
        q = x.cores[0]
        if dirty:
            self.push_dirty(q, x.level, line, t, q if x.private else actor, x.cfg_index)
        if x.inclusive:
            self.back_invalidate(inst, line, t)
        if x.private and not self.holds(q, line):
            self.drop(q, line)

    def fill(self, inst: int, line: int, t: int, actor: int) -> tuple[int, int]:
        x = self.caches[inst]
        s = line % x.sets
        ways = x.lines[s]
        pick = next((w for w, way in enumerate(ways) if way.flags == COHINV and way.tag == line), None)
        if pick is None:
            pick = next((w for w, way in enumerate(ways) if not way.flags & VALID), None)
        if pick is None:
            pick = x.policy.victim(s)
            self.evict(inst, s, pick, t, actor)
        ways[pick].tag, ways[pick].flags = line, VALID
        self.tick += 1
        x.policy.fill(s, pick)
        return s, pick

    # ------------------------------------------------------------ one access
    def count_lookup(self, core: int, path: list, k: int, hit: bool, line: int) -> None:
        c = self.caches[path[k]]
        st = self.lstats[core][c.cfg_index]
        if hit:
            st["hits"] += 1
        else:
            st["misses"] += 1
            if any(way.flags == COHINV and way.tag == line for way in c.set_of(line)):
                st["coherence_misses"] += 1

    def line_access(self, core: int, line: int, write: bool, ifetch: bool, t: int) -> int:
        path = self.ipath[core] if ifetch else self.dpath[core]
        cs = self.cstats[core]
        hit_k = next((k for k in range(self.npriv) if self.caches[path[k]].find(line) >= 0), -1)
        cstate = self.core_state(core, line)
        if hit_k >= 0 and HIT_OK[int(write), cstate]:
            for k in range(hit_k):
                self.count_lookup(core, path, k, False, line)
            self.count_lookup(core, path, hit_k, True, line)
            self.touch(path[hit_k], line, self.caches[path[hit_k]].find(line))
            top = (path[hit_k], None)
            for k in range(hit_k - 1, -1, -1):
                top = (path[k], self.fill(path[k], line, t, core))
            if write:
                self.set_dirty(top[0], line)
                if cstate == E:
                    self.dir[self.key(core, line)].state = M
            lat = self.lat(path[hit_k])
            cs["stall_cycles"] += lat - self.lat(path[0])
            return lat

        upgrade = hit_k >= 0
        if upgrade:
            cs["upgrades"] += 1
        e = self.dir.setdefault(self.key(core, line), Entry())
        owner = e.owner if e.owner != core else -1
        dstate = e.state
        if write:
            from_owner = owner >= 0 and not upgrade
        else:
            from_owner = owner >= 0 and self.read_rule[dstate][2] == 1
        k_data = -1
        if not from_owner and not upgrade:
            k_data = next((k for k in range(self.npriv, self.nlev) if self.caches[path[k]].find(line) >= 0), -1)
        others = sorted(e.holders - {core})
        involved = others if write else ([owner] if owner >= 0 else [])
        levels = [self.shared_level_with(core, q) for q in involved]
        local = all(k >= 0 for k in levels)
        k_loc = max(levels, default=-1)
        if not from_owner and not upgrade and k_data < 0:
            local = False        # data from memory
        kstar = max(k_loc, k_data)
        if kstar < 0:
            incl = [k for k in range(self.npriv, self.nlev) if self.caches[path[k]].inclusive]
            if incl:
                kstar = incl[0]
            else:
                local = False
        nhops = 0
        if local:
            start = max(t, e.busy)
            done = start + self.lat(path[kstar]) + (self.lat(path[self.npriv - 1]) if from_owner else 0)
            cs["local_transactions"] += 1
        else:
            cs["remote_transactions"] += 1
            H = self.hops
            pc, ph = self.pkg(core), self.home(line)
            lookup = self.lat(path[hit_k]) if upgrade else self.lat(path[self.nlev - 1])
            start = max(t + lookup + self.msg(pc, ph) + self.cfg.coherence.directory_latency, e.busy,
                        self.home_busy[ph])
            self.home_busy[ph] = start + self.cfg.coherence.home_occupancy
            nhops += H[pc][ph]
            if from_owner:
                po = self.pkg(owner)
                done = start + self.msg(ph, po) + self.msg(po, pc) + self.lat(path[self.npriv - 1])
                nhops += H[ph][po] + H[po][pc]
            elif upgrade:
                done = start + self.msg(ph, pc)
                nhops += H[ph][pc]
            elif k_data >= 0:
                done = max(start, t + self.lat(path[k_data]))
            else:
                ms = max(start, self.mem_busy[ph])
                self.mem_busy[ph] = ms + self.cfg.memory.occupancy
                done = ms + self.memlat[ph] + self.msg(ph, pc)
                nhops += H[ph][pc]
                cs["memory_reads"] += 1
            if write:
                for q in others:
                    if q == owner:
                        continue
                    pq = self.pkg(q)
                    done = max(done, start + self.msg(ph, pq) + self.msg(pq, pc))
                    nhops += H[ph][pq] + H[pq][pc]
        e.busy = done
        cs["hops"] += nhops
        if from_owner:
            cs["cache_to_cache"] += 1
        last = hit_k if upgrade else (k_data if k_data >= 0 else self.nlev - 1)
        for k in range(last + 1):
            self.count_lookup(core, path, k, (upgrade and k == hit_k) or k == k_data, line)

        if write:
            for q in others:
                for i in self.privs[q]:
                    c = self.caches[i]
                    w = c.find(line)
                    if w >= 0:
                        c.set_of(line)[w].flags = COHINV
                        c.policy.forget(line % c.sets, w)
                self.cstats[q]["invalidations_received"] += 1
                cs["invalidations_sent"] += 1
            mine = set(self.dpath[core][self.npriv:])
            for i, c in enumerate(self.caches):
                if not c.private and i not in mine and self.cache_domain(i) == self.dom[core]:
                    w = c.find(line)
                    if w >= 0:
                        c.set_of(line)[w].flags = COHINV
                        c.policy.forget(line % c.sets, w)
            e.holders = {core}
            e.owner, e.state = core, M
        else:
            if owner >= 0:
                _, old_owner_next, _, writeback = self.read_rule[dstate]
                if writeback:
                    for i in self.privs[owner]:
                        c = self.caches[i]
                        w = c.find(line)
                        if w >= 0:
                            c.set_of(line)[w].flags &= ~DIRTY
                    self.mem_write(line, t, owner)
                    self.lstats[owner][self.caches[self.dpath[owner][self.npriv - 1]].cfg_index]["writebacks"] += 1
                if old_owner_next == O:
                    e.state = O
                else:
                    e.state, e.owner = S, -1
            elif cstate != I:
                pass
            else:                                   # I or S: what the reader gets
                e.state = self.read_rule[dstate][0]
                if e.state == E:
                    e.owner = core
            e.holders.add(core)

        top_inst = path[hit_k] if upgrade else None
        if upgrade:
            self.touch(path[hit_k], line, self.caches[path[hit_k]].find(line))
        stop = hit_k if upgrade else (k_data if k_data >= 0 else self.nlev)
        for k in range(stop - 1, -1, -1):
            if self.caches[path[k]].find(line) < 0:
                self.fill(path[k], line, t, core)
            top_inst = path[k]
        if write:
            self.set_dirty(top_inst, line)
        lat = done - t
        cs["stall_cycles"] += lat - self.lat(path[0])
        return lat

    def set_dirty(self, inst: int, line: int) -> None:
        c = self.caches[inst]
        c.set_of(line)[c.find(line)].flags |= DIRTY

    def access(self, core: int, kind: int, addr: int, size: int, t: int) -> int:
        ua = addr % 2**64                  # the unsigned 64-bit address
        first = ua >> self.line_bits
        last = (ua + max(size, 1) - 1) >> self.line_bits
        lat = 0
        for ln in range(first, last + 1):
            lat += self.line_access(core, ln, kind >= KIND_S, kind == KIND_I, t + lat)
        self.cstats[core]["accesses"] += 1
        return lat

    # ------------------------------------------------------------ cache maintenance
    def flush_line(self, core: int, line: int, t: int) -> int:
        """CLFLUSH: the line leaves every cache of core's domain (written back if any copy was dirty)."""
        dirty = False
        for i, c in enumerate(self.caches):
            if self.cache_domain(i) != self.dom[core]:
                continue
            w = c.find(line)
            if w >= 0:
                way = c.set_of(line)[w]
                dirty = dirty or bool(way.flags & DIRTY)
                way.flags = 0
                c.policy.forget(line % c.sets, w)
        self.dir.pop(self.key(core, line), None)
        if dirty:
            self.lstats[core][self.caches[self.dpath[core][0]].cfg_index]["writebacks"] += 1
            self.mem_write(line, t, core)
        return int(dirty)

    def flush_domain(self, core: int, t: int) -> int:
        """WBINVD: every cache of core's domain written back (one memory write per dirty copy) and emptied."""
        n = 0
        for i, c in enumerate(self.caches):
            if self.cache_domain(i) != self.dom[core]:
                continue
            for s in range(c.sets):
                for w, way in enumerate(c.lines[s]):
                    if way.flags & VALID and way.flags & DIRTY:
                        n += 1
                        self.mem_write(way.tag, t, core)
                    if way.flags:
                        way.flags = 0
                        c.policy.forget(s, w)
        d = self.dom[core]
        for k in [k for k in self.dir if self.ndom == 1 or k % self.ndom == d]:
            del self.dir[k]
        self.lstats[core][self.caches[self.dpath[core][0]].cfg_index]["writebacks"] += n
        return n

    # ------------------------------------------------------------ a trace
    def would_hit(self, c: int, line: int, write: bool, fetch: bool = False) -> bool:
        """A private level of c's data (fetch: instruction) path holds the line, and for a write the
        core owns it in E or M."""
        path = self.ipath[c] if fetch else self.dpath[c]
        if not any(self.caches[path[k]].find(line) >= 0 for k in range(self.npriv)):
            return False
        if not write:
            return True
        e = self.dir.get(self.key(c, line))
        return e is not None and e.owner == c and e.state in (E, M)

    def request_delay(self, c: int, line: int, fetch: bool = False) -> int:
        """Lookups down the whole data (fetch: instruction) path, then the message to the line's home."""
        path = self.ipath[c] if fetch else self.dpath[c]
        return self.lat(path[self.nlev - 1]) + self.msg(self.pkg(c), self.home(line))

    def hold_lines(self, c: int, addr: int, size: int, until: int) -> None:
        """A locked read-modify-write (or a trace's modify) holds its lines until it ends: a competing
        request waits at the home until ``until``."""
        ua = addr % 2**64
        for ln in range(ua >> self.line_bits, ((ua + max(size, 1) - 1) >> self.line_bits) + 1):
            e = self.dir.get(self.key(c, ln))
            if e is not None:
                e.busy = max(e.busy, until)

    def run(self, core, kind, addr, size, max_steps: int = -1) -> list[int]:
        """Replay a trace under the program rules (cpu_spec.md, 'Trace replay'); returns each access's
        cost (end - issue).  Per-core streams; the core with the lowest (clock, id) goes next."""
        n = len(core)
        streams = [[i for i in range(n) if int(core[i]) == c] for c in range(self.cfg.cores)]
        pos = [0] * self.cfg.cores
        inflight: list[int | None] = [None] * self.cfg.cores     # issue time of a miss on its way home
        issued = [0] * self.cfg.cores                            # the issue-width counter
        cost = [0] * n
        steps = 0
        while max_steps < 0 or steps < max_steps:
            ready = [c for c in range(self.cfg.cores) if pos[c] < len(streams[c])]
            if not ready:
                break
            c = min(ready, key=lambda x: (self.clock[x], x))
            i = streams[c][pos[c]]
            k, a, sz = int(kind[i]), int(addr[i]), int(size[i])
            now = self.clock[c]
            if inflight[c] is not None:         # the second half of a miss, timed from its issue
                ti, inflight[c] = inflight[c], None
                end = max(ti + self.access(c, k, a, sz, ti), now)
            else:
                ti = now
                ua = a % 2**64
                lines = range(ua >> self.line_bits, ((ua + max(sz, 1) - 1) >> self.line_bits) + 1)
                missing = next((ln for ln in lines if not self.would_hit(c, ln, k >= KIND_S, k == KIND_I)), None)
                if missing is not None:         # takes effect when its request reaches the home
                    inflight[c] = ti
                    self.clock[c] = ti + self.request_delay(c, missing, k == KIND_I)
                    continue
                lat = self.access(c, k, a, sz, ti)
                if k == KIND_S:                 # a store hit retires into the store buffer: alu_cost
                    w = self.cfg.core.issue_width
                    end = ti + (self.cfg.core.alu_latency if issued[c] % w == 0 else 0)
                    issued[c] += 1
                else:                           # a load, fetch or modify hit: its latency
                    end = ti + lat
            if k == KIND_M:
                self.hold_lines(c, a, sz, end)
            cost[i] = end - ti
            self.clock[c] = end
            pos[c] += 1
            steps += 1
        return cost

    # ------------------------------------------------------------ views like Machine's
    def stats(self) -> dict:
        cores = []
        for c in range(self.cfg.cores):
            d = {"core": c, "cycles": self.cfg.own_cycles(c, self.clock[c]), "ns": self.cfg.ns(self.clock[c])}
            d.update(self.cstats[c])
            d["caches"] = {cc.name: dict(self.lstats[c][ci]) for ci, cc in enumerate(self.cfg.caches)}
            cores.append(d)
        return {"machine": self.cfg.name, "cores": cores, "total_cycles": max(self.clock, default=0)}

    def cache_contents(self) -> dict[int, dict[int, tuple[int, int]]]:
        out = {}
        for inst, c in enumerate(self.caches):
            d = {}
            for s in range(c.sets):
                for w, way in enumerate(c.lines[s]):
                    if way.flags:
                        d[s * c.ways + w] = (way.tag, way.flags)
            out[inst] = d
        return out

    def directory(self) -> dict[int, tuple[str, int, tuple[int, ...], int]]:
        return {line: (STATE_NAMES[e.state], e.owner, tuple(sorted(e.holders)), e.busy)
                for line, e in self.dir.items()}
