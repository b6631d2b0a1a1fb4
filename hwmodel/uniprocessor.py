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
def _fill(geo, tag, flags, meta, rng, tick, dpath, ipath, nlev, inst, line, t, mem_busy, occ, lstats, cstats):
    ways = geo[inst, WAYS]
    b = geo[inst, BASE] + (line & (geo[inst, SETS] - 1)) * ways
    pol = geo[inst, POL]
    way = -1
    if pol == 0:
        # LRU: the first invalid way and the least recent valid one in one pass
        lru = 0
        for w in range(ways):
            if (flags[b + w] & VALID) == 0:
                way = w
                break
            if meta[b + w] < meta[b + lru]:
                lru = w
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
            way = _r.victim(pol, meta, b, ways, tick[0], rng[inst:inst + 1])
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
    """
    record = out_lat.shape[0] > 0
    lb = params[P_LINEBITS]
    npriv, nlev = params[P_NPRIV], params[P_NLEV]
    occ, memlat, dirlat = params[P_MEMOCC], params[P_MEMLAT], params[P_DIRLAT]
    alu_lat, width = params[P_ALU], params[P_WIDTH]
    # request_delay: the whole path (the same last level for both paths unless L1 is the only level);
    # the home is in the core's package
    ddelay, idelay = geo[dpath[0, nlev - 1], LAT], geo[ipath[0, nlev - 1], LAT]
    # the line the last data access left in its level-1 cache, and its slot (-1: none known)
    last_d, slot_d = np.int64(-1), np.int64(-1)
    d1 = dpath[0, 0]
    d1lat, d1pol, d1ways, d1base, d1mask = geo[d1, LAT], geo[d1, POL], geo[d1, WAYS], geo[d1, BASE], geo[d1, SETS] - 1
    d1cfg = geo[d1, CFG]
    for i in range(start, stop):
        t0 = clock[0]
        k = kind[i]
        ifetch = k == KIND_I
        write = k >= KIND_S
        first = np.int64(np.uint64(addr[i]) >> np.uint64(lb))
        last = np.int64((np.uint64(addr[i]) + np.uint64(max(size[i], 1) - 1)) >> np.uint64(lb))
        if first == last_d and last == first and not ifetch:
            # the line of the last data access, still in its level-1 slot: a level-1 hit (no look-up)
            lstats[0, d1cfg, L_HITS] += 1
            tick[0] += 1
            b = d1base + (first & d1mask) * d1ways
            _r.on_hit(d1pol, meta, b, d1ways, slot_d - b, tick[0], rng[d1:d1 + 1])
            if write:
                flags[slot_d] |= DIRTY
            cstats[0, C_ACCESSES] += 1
            if k == KIND_S:
                cost = alu_lat if alu[0] == 0 else 0
                alu[0] = 0 if alu[0] + 1 >= width else alu[0] + 1     # n % width, wrapping
            else:
                cost = d1lat
            if record:
                out_lat[i] = cost
                out_issue[i] = t0
                out_eff[i] = t0
            clock[0] = t0 + cost
            continue
        last_d = -1           # a full access may move any line
        hits = True                 # would every line hit a private level (checked before any is performed)?
        if first != last:
            for line in range(first, last + 1):
                if not _in_private(geo, tag, flags, ipath if ifetch else dpath, npriv, line):
                    hits = False
                    break
        lat = 0
        for line in range(first, last + 1):
            t = t0 + lat
            # one scan down the path: a hit in a private level is a hit, in a
            # shared level a local transaction, nowhere a memory read
            hit_k = -1
            hit_slot = -1
            for k in range(nlev):
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
                    tick[0] += 1
                    b = geo[inst, BASE] + (line & (geo[inst, SETS] - 1)) * geo[inst, WAYS]
                    _r.on_hit(geo[inst, POL], meta, b, geo[inst, WAYS], hit_slot - b, tick[0], rng[inst:inst + 1])
                else:
                    cstats[0, C_LOCAL_TXN] += 1
            else:
                last_inst = ipath[0, nlev - 1] if ifetch else dpath[0, nlev - 1]
                arrive = t + geo[last_inst, LAT] + dirlat
                arrive = max(arrive, mem_busy[1])          # the home's coherence engine
                mem_busy[1] = arrive + params[P_HOMEOCC]
                ms = max(arrive, mem_busy[0])
                mem_busy[0] = ms + occ
                done = ms + memlat
                cstats[0, C_MEM_READS] += 1
                cstats[0, C_REMOTE_TXN] += 1
                top = nlev
            slot0 = hit_slot
            for k in range(top - 1, -1, -1):
                # every level above ``top`` was just looked up and missed
                inst = ipath[0, k] if ifetch else dpath[0, k]
                slot0 = _fill(geo, tag, flags, meta, rng, tick, dpath, ipath, nlev, inst, line,
                              t, mem_busy, occ, lstats, cstats)
            if write:
                flags[slot0] |= DIRTY
            if first == last and not ifetch:
                last_d, slot_d = line, slot0
            l1 = ipath[0, 0] if ifetch else dpath[0, 0]
            cstats[0, C_STALL] += (done - t) - geo[l1, LAT]
            lat += done - t
        cstats[0, C_ACCESSES] += 1
        # the cost (cpu_spec.md, 'Trace replay'; engine.run_trace)
        eff = t0
        if not hits:
            eff = t0 + (idelay if ifetch else ddelay)
            cost = max(lat, eff - t0)
        elif kind[i] == KIND_S:
            cost = alu_lat if alu[0] == 0 else 0
            alu[0] = 0 if alu[0] + 1 >= width else alu[0] + 1     # n % width, wrapping
        else:
            cost = lat
        if record:
            out_lat[i] = cost
            out_issue[i] = t0
            out_eff[i] = eff
        clock[0] = t0 + cost
    return stop - start
