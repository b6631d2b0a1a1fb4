"""Trace replay on a one-core machine: the same rules with nothing to keep coherent.

With a single core every line it holds is E or M, no other cache can own or
share a line, and the core's clock is always past the line's last
transaction, so the directory and its busy-until times never change an
outcome.  This path skips them and keeps everything else -- levels, fills,
victims, write-backs, inclusion, memory-controller occupancy, statistics,
and the replay timing rules of ``engine.run_trace`` (cpu_spec.md, 'Trace
replay') -- exactly as ``hwmodel.engine`` does.  A miss that takes effect at
the home changes nothing here but its cost: no other core can act between
its issue and its home, so it is performed at once and ends at
``max(issue + latency, issue + request_delay)``.  A one-core ``Machine``
therefore has no directory; differential tests hold this path to the
general one (``Machine(..., one_core_path=False)``) and to the reference.
"""
from __future__ import annotations

import numpy as np

from hwmodel import replacement as _r
from hwmodel._numba import njit
from hwmodel.engine import find_
from hwmodel.trace import KIND_I, KIND_S
from hwmodel.state import (P_HOMEOCC, BASE, C_ACCESSES, C_LOCAL_TXN, C_MEM_READS, C_MEM_WRITES, C_REMOTE_TXN, C_STALL, CFG,
                           DIRTY, INCL, L_HITS, L_MISSES, L_WRITEBACKS, LAT, P_ALU, P_DIRLAT, P_LINEBITS, P_WIDTH,
                           P_MEMLAT, P_MEMOCC, P_NLEV, P_NPRIV, POL, POS, SETS, VALID, WAYS)



@njit(forceinline=True, _nrt=False)
def _push_dirty(geo, tag, flags, dpath, nlev, pos, line, t, mem_busy, occ, lstats, cstats, cfg_idx):
    lstats[0, cfg_idx, L_WRITEBACKS] += 1
    for k in range(pos + 1, nlev):
        s = find_(geo, tag, flags, dpath[0, k], line)
        if s >= 0:
            flags[s] |= DIRTY
            return
    mem_busy[0] = max(mem_busy[0], t) + occ
    cstats[0, C_MEM_WRITES] += 1


@njit(forceinline=True, _nrt=False)
def _store_retire(n_alu, width, alu_lat):
    """(cost, issue counter after it) of a store that hits: it retires into the store buffer and
    issues with the register-class ops, one alu_latency per ``width`` of them (the counter wraps at
    ``width`` instead of taking n % width)."""
    cost = alu_lat if n_alu == 0 else 0
    return cost, (0 if n_alu + 1 >= width else n_alu + 1)


@njit(forceinline=True, _nrt=False)
def _choose_way(flags, meta, b, ways, pol, tk, rng1):
    """(way, evicting) for a fill of the set at ``b``: the first invalid way, else the policy's victim.
    LRU (policy 0) finds both in one pass, the oldest stamp with selects (which way is oldest is not
    predictable, so a branch on it mispredicts)."""
    way = -1
    if pol == 0:
        lru = 0
        best = meta[b]
        for w in range(ways):
            if (flags[b + w] & VALID) == 0:
                way = w
                break
            mv = meta[b + w]
            lt = mv < best
            best = mv if lt else best
            lru = w if lt else lru
        evicting = way < 0
        if evicting:
            way = lru
    else:
        for w in range(ways):
            if (flags[b + w] & VALID) == 0:
                way = w
                break
        evicting = way < 0
        if evicting:
            way = _r.victim(pol, meta, b, ways, tk, rng1)
    return way, evicting


@njit(forceinline=True, _nrt=False)
def _fill(geo, tag, flags, meta, rng, tick, dpath, ipath, nlev, inst, line, t, mem_busy, occ, lstats, cstats):
    ways = geo[inst, WAYS]
    b = geo[inst, BASE] + (line & (geo[inst, SETS] - 1)) * ways
    pol = geo[inst, POL]
    way, evicting = _choose_way(flags, meta, b, ways, pol, tick[0], rng[inst:inst + 1])
    if evicting:
        slot = b + way
        vline = tag[slot]
        d = (flags[slot] & DIRTY) != 0
        flags[slot] = 0
        pos = geo[inst, POS]
        if d:
            _push_dirty(geo, tag, flags, dpath, nlev, pos, vline, t, mem_busy, occ, lstats, cstats, geo[inst, CFG])
        if geo[inst, INCL]:
            # back-invalidate the levels above, on both paths
            for k in range(pos):
                for p in range(2):
                    u = dpath[0, k] if p == 0 else ipath[0, k]
                    s = find_(geo, tag, flags, u, vline)
                    if s >= 0:
                        dd = (flags[s] & DIRTY) != 0
                        flags[s] = 0
                        if dd:
                            _push_dirty(geo, tag, flags, dpath, nlev, pos, vline, t, mem_busy, occ, lstats,
                                        cstats, geo[u, CFG])
    tag[b + way] = line
    flags[b + way] = VALID
    tick[0] += 1
    _r.on_fill(geo[inst, POL], meta, b, ways, way, tick[0], rng[inst:inst + 1])
    return b + way


@njit(forceinline=True, _nrt=False)
def _in_private(geo, tag, flags, path, npriv, line):
    """Does a private level of the path hold ``line``?  (``engine.would_hit`` with one core.)"""
    for k in range(npriv):
        if find_(geo, tag, flags, path[0, k], line) >= 0:
            return True
    return False


@njit(_nrt=False)
def run_single(geo, tag, flags, meta, rng, tick, dpath, ipath, params, mem_busy, clock, lstats, cstats,
               kind, addr, size, start, stop, out_lat, out_issue, out_eff, alu):
    """Replay accesses ``start:stop`` of a one-core trace; returns how many ran.

    Per-access costs (end - issue), issue times and the times they took
    effect (issue, or issue + request_delay for a miss) go to ``out_lat`` /
    ``out_issue`` / ``out_eff`` unless those are empty (a run that wants only
    the totals);
    ``alu[0]`` is the core's issue-width counter.

    Every access meets a level-1 cache, so their geometry, the clock, the
    replacement stamp, the memory controller's busy-until and the counters
    live in registers for the whole run (written back at the end, or around
    the deeper levels' fills, which work on the arrays); deeper levels go
    through ``find_`` / ``_fill``.  A data access (an instruction fetch) to the
    line the last data access (fetch) left in level 1 is a hit on a known slot
    (no look-up).
    """
    record = out_lat.shape[0] > 0
    lb = params[P_LINEBITS]
    npriv, nlev = params[P_NPRIV], params[P_NLEV]
    occ, memlat, dirlat, homeocc = params[P_MEMOCC], params[P_MEMLAT], params[P_DIRLAT], params[P_HOMEOCC]
    alu_lat, width = params[P_ALU], params[P_WIDTH]
    # request_delay: the whole path (the same last level for both paths unless L1 is the only level);
    # the home is in the core's package
    ddelay, idelay = geo[dpath[0, nlev - 1], LAT], geo[ipath[0, nlev - 1], LAT]
    d1, i1 = dpath[0, 0], ipath[0, 0]
    d1base, d1mask, d1ways, d1lat, d1pol = geo[d1, BASE], geo[d1, SETS] - 1, geo[d1, WAYS], geo[d1, LAT], geo[d1, POL]
    i1base, i1mask, i1ways, i1lat, i1pol = geo[i1, BASE], geo[i1, SETS] - 1, geo[i1, WAYS], geo[i1, LAT], geo[i1, POL]
    d1cfg, i1cfg = geo[d1, CFG], geo[i1, CFG]
    # can an access on one path move a line of the other path's level 1?  Only through one shared
    # level-1 cache, or an inclusive deeper level (its evictions empty the caches above it)
    crossed = d1 == i1
    for k in range(1, nlev):
        if geo[dpath[0, k], INCL] != 0 or geo[ipath[0, k], INCL] != 0:
            crossed = True
    now, tk, m0, m1, n_alu = clock[0], tick[0], mem_busy[0], mem_busy[1], alu[0]
    d1hits = d1miss = i1hits = i1miss = 0
    accesses = stall = memreads = remote = local = 0
    # the line the last data (instruction) access left in its level-1 cache, and its slot (-1: none known)
    last_d, slot_d = np.int64(-1), np.int64(-1)
    last_i, slot_i = np.int64(-1), np.int64(-1)
    for i in range(start, stop):
        t0 = now
        k_ = kind[i]
        ifetch = k_ == KIND_I
        write = k_ >= KIND_S
        first = np.int64(np.uint64(addr[i]) >> np.uint64(lb))
        last = np.int64((np.uint64(addr[i]) + np.uint64(max(size[i], 1) - 1)) >> np.uint64(lb))
        if first == last_d and last == first and not ifetch:
            # the line of the last data access, still in its level-1 slot: a level-1 hit (no look-up)
            d1hits += 1
            tk += 1
            b = d1base + (first & d1mask) * d1ways
            _r.on_hit(d1pol, meta, b, d1ways, slot_d - b, tk, rng[d1:d1 + 1])
            if write:
                flags[slot_d] |= DIRTY
            accesses += 1
            if k_ == KIND_S:
                cost, n_alu = _store_retire(n_alu, width, alu_lat)
            else:
                cost = d1lat
            if record:
                out_lat[i] = cost
                out_issue[i] = t0
                out_eff[i] = t0
            now = t0 + cost
            continue
        if first == last_i and last == first and ifetch:
            # the line of the last instruction fetch, still in its level-1 slot
            i1hits += 1
            tk += 1
            b = i1base + (first & i1mask) * i1ways
            _r.on_hit(i1pol, meta, b, i1ways, slot_i - b, tk, rng[i1:i1 + 1])
            accesses += 1
            if record:
                out_lat[i] = i1lat
                out_issue[i] = t0
                out_eff[i] = t0
            now = t0 + i1lat
            continue
        # a full access may move any line of its own path (and of the other one, if ``crossed``);
        # one that straddles two lines leaves no single line known (its second line may evict the first)
        if ifetch or crossed or first != last:
            last_d = -1
        if not ifetch or crossed or first != last:
            last_i = -1
        if ifetch:
            inst1, base1, mask1, ways1, lat1, pol1, cfg1 = i1, i1base, i1mask, i1ways, i1lat, i1pol, i1cfg
        else:
            inst1, base1, mask1, ways1, lat1, pol1, cfg1 = d1, d1base, d1mask, d1ways, d1lat, d1pol, d1cfg
        hits = True                 # would every line hit a private level (checked before any is performed)?
        if first != last:
            for line in range(first, last + 1):
                if not _in_private(geo, tag, flags, ipath if ifetch else dpath, npriv, line):
                    hits = False
                    break
        lat = 0
        for line in range(first, last + 1):
            t = t0 + lat
            # level 1
            b = base1 + (line & mask1) * ways1
            slot0 = -1
            for w in range(ways1):
                if tag[b + w] == line and (flags[b + w] & VALID) != 0:
                    slot0 = b + w
                    break
            if slot0 >= 0:
                if ifetch:
                    i1hits += 1
                else:
                    d1hits += 1
                done = t + lat1
                tk += 1
                _r.on_hit(pol1, meta, b, ways1, slot0 - b, tk, rng[inst1:inst1 + 1])
            else:
                if ifetch:
                    i1miss += 1
                else:
                    d1miss += 1
                # the deeper levels: a hit in a private level is a hit, in a shared level a local
                # transaction, nowhere a memory read
                hit_k = -1
                hit_slot = -1
                for k in range(1, nlev):
                    inst = ipath[0, k] if ifetch else dpath[0, k]
                    s = find_(geo, tag, flags, inst, line)
                    if s >= 0:
                        hit_k = k
                        hit_slot = s
                        break
                    lstats[0, geo[inst, CFG], L_MISSES] += 1
                if first == last and (hit_k < 0 or hit_k >= npriv):
                    hits = False
                if hit_k >= 0:
                    inst = ipath[0, hit_k] if ifetch else dpath[0, hit_k]
                    lstats[0, geo[inst, CFG], L_HITS] += 1
                    done = t + geo[inst, LAT]
                    top = hit_k
                    if hit_k < npriv:
                        tk += 1
                        bk = geo[inst, BASE] + (line & (geo[inst, SETS] - 1)) * geo[inst, WAYS]
                        _r.on_hit(geo[inst, POL], meta, bk, geo[inst, WAYS], hit_slot - bk, tk, rng[inst:inst + 1])
                    else:
                        local += 1
                else:
                    arrive = t + (idelay if ifetch else ddelay) + dirlat
                    arrive = max(arrive, m1)          # the home's coherence engine
                    m1 = arrive + homeocc
                    ms = max(arrive, m0)
                    m0 = ms + occ
                    done = ms + memlat
                    memreads += 1
                    remote += 1
                    top = nlev
                if top > 1:
                    # fill the deeper levels (deepest first) on the arrays
                    tick[0] = tk
                    mem_busy[0] = m0
                    for k in range(top - 1, 0, -1):
                        inst = ipath[0, k] if ifetch else dpath[0, k]
                        _fill(geo, tag, flags, meta, rng, tick, dpath, ipath, nlev, inst, line,
                              t, mem_busy, occ, lstats, cstats)
                    tk = tick[0]
                    m0 = mem_busy[0]
                # fill level 1 (``_fill`` with the registers; a level-1 cache has nothing above it)
                way, evicting = _choose_way(flags, meta, b, ways1, pol1, tk, rng[inst1:inst1 + 1])
                slot0 = b + way
                if evicting and (flags[slot0] & DIRTY) != 0:
                    vline = tag[slot0]
                    lstats[0, cfg1, L_WRITEBACKS] += 1
                    to_mem = True
                    for k in range(1, nlev):
                        s = find_(geo, tag, flags, dpath[0, k], vline)
                        if s >= 0:
                            flags[s] |= DIRTY
                            to_mem = False
                            break
                    if to_mem:
                        m0 = max(m0, t) + occ
                        cstats[0, C_MEM_WRITES] += 1
                tag[slot0] = line
                flags[slot0] = VALID
                tk += 1
                _r.on_fill(pol1, meta, b, ways1, way, tk, rng[inst1:inst1 + 1])
            if write:
                flags[slot0] |= DIRTY
            if first == last:
                if ifetch:
                    last_i, slot_i = line, slot0
                else:
                    last_d, slot_d = line, slot0
            stall += (done - t) - lat1
            lat += done - t
        accesses += 1
        # the cost (cpu_spec.md, 'Trace replay'; engine.run_trace)
        eff = t0
        if not hits:
            eff = t0 + (idelay if ifetch else ddelay)
            cost = max(lat, eff - t0)
        elif k_ == KIND_S:
            cost, n_alu = _store_retire(n_alu, width, alu_lat)
        else:
            cost = lat
        if record:
            out_lat[i] = cost
            out_issue[i] = t0
            out_eff[i] = eff
        now = t0 + cost
    clock[0], tick[0], mem_busy[0], mem_busy[1], alu[0] = now, tk, m0, m1, n_alu
    lstats[0, d1cfg, L_HITS] += d1hits
    lstats[0, d1cfg, L_MISSES] += d1miss
    lstats[0, i1cfg, L_HITS] += i1hits
    lstats[0, i1cfg, L_MISSES] += i1miss
    cstats[0, C_ACCESSES] += accesses
    cstats[0, C_STALL] += stall
    cstats[0, C_MEM_READS] += memreads
    cstats[0, C_REMOTE_TXN] += remote
    cstats[0, C_LOCAL_TXN] += local
    return stop - start
