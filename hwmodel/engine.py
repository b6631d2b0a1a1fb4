"""The compiled memory-system engine (numba).

One access of one core at a time, in timestamp order (ties: lowest core id).
Each access is performed atomically when it takes effect (a hit at its issue
time, a miss when its request reaches the line's home: cpu_spec.md, which
programs and trace replay both follow), timed from its issue time; its
latency is decided by where the line is found and which coherence messages
it needs:

1. The core's private levels, top down.  A hit with enough permission
   (``coherence.HIT_OK``) costs that level's latency.
2. Otherwise a *transaction*.  The cores it must involve are the old owner
   (reads) or every other holder (writes).  If all of them share a cache
   with the requester through an *inclusive* cache (which tracks its cores'
   copies), and the data is on chip (owner's cache or a shared cache on the
   requester's path), it is *local*: it costs the deepest shared
   level involved (+ the owner's private latency for a cache-to-cache copy).
   Otherwise it is *remote*: the request travels to the line's home package
   (link_latency + hops x hop_latency per message leaving a package), waits for the line's busy-until there, looks up the
   directory, then gathers data (owner forward, or memory controller with its
   own busy-until) and invalidation acks in parallel.  The line's entry stays
   busy until the transaction completes: that is where contention on one line
   comes from.
3. The line is filled into every level of the path above where it was found
   (deepest first); victims are written back (dirty) into the next level that
   holds them, or to memory, and inclusive levels back-invalidate the caches
   above them.  A core that no longer holds a line leaves its directory entry.

Coherence domains (``package_domains``): each domain keeps its own directory
entry per line (key ``line * domains + domain``), so a transaction involves
only holders in its own domain and a store invalidates nothing in another
domain; memory controllers and homes are shared.  ``flush_line`` (CLFLUSH)
and ``flush_domain`` (WBINVD) write back and empty one line / every cache of
a domain.  Caches of a core type with its own clock have their latencies
converted to reference ticks when the state is built (``hwmodel.state``).

Two things only make it faster, never change a number.  A private copy whose
core owns the line in M carries the ``OWNM`` hint (``hwmodel.state``): a
store that hits it needs no directory look-up; a reader that downgrades the
owner clears it (``drop_hint``), and it goes with the copy.  The directory
starts small and doubles when half full (``run_trace`` stops, ``Machine``
calls ``dir_grow``), so its probes stay in the host's caches while few lines
live; programs (``cpu.run``) get its full size first.

``hwmodel.reference`` implements the same rules in plain Python.
"""
from __future__ import annotations

import numpy as np

from hwmodel import replacement as _r
from hwmodel._numba import njit
from hwmodel.trace import KIND_I, KIND_M, KIND_S
from hwmodel.coherence import E, HIT_OK, I, M, O, READ_OWNER_NEXT, READ_REQ, READ_SOURCE, READ_WRITEBACK, S
from hwmodel.state import (MachineState, P_NDOM, BASE, C_ACCESSES, C_C2C, C_HOPS, C_INV_RECV, C_INV_SENT, C_LOCAL_TXN, C_MEM_READS,
                           C_MEM_WRITES, C_REMOTE_TXN, C_STALL, C_UPGRADES, CFG, COHINV, DIRTY, GFIRST, GSIZE, INCL,
                           L_COH_MISSES, L_HITS, L_MISSES, L_WRITEBACKS, LAT, OWNM, P_CPP, P_DIRFULL, P_DIRLAT, P_DIRMASK, P_INTERLEAVE, P_LINEBITS, P_MEMLAT, P_MEMOCC, P_NLEV, P_NODEBYTES, P_NPRIV, P_NPRIVINST, P_HOMEOCC, P_PKGS, P_ALU, P_WIDTH, P_PROTO, P_WORDS, POL, POS, PRIV, SETS, VALID, WAYS, MachineState)


_HIT_OK = HIT_OK
_RREQ, _ROWN, _RSRC, _RWB = READ_REQ, READ_OWNER_NEXT, READ_SOURCE, READ_WRITEBACK


def pack(ms: MachineState) -> tuple:
    """The state arrays as one tuple, the form compiled code takes them in."""
    return (ms.geo, ms.rng, ms.tag, ms.flags, ms.meta, ms.dpath, ms.ipath, ms.privs, ms.shared,
            ms.hops, ms.params, ms.dirt, ms.d_count, ms.mem_busy, ms.clock, ms.tick, ms.lstats, ms.cstats,
            ms.scratch, ms.msglat, ms.paths, ms.cdom, ms.memlat)


# tuple positions
(GEO, RNG, TAG, FLAGS, META, DPATH, IPATH, PRIVS, SHARED, HOPS, PARAMS, DIRT, DCOUNT, MEMBUSY, CLOCK, TICK,
 LSTATS, CSTATS, SCRATCH, MSG, PATHS, CDOM, MEMLAT) = range(23)
# directory columns: one row per tracked line
D_USED, D_KEY, D_STATE, D_OWNER, D_BUSY, D_SH = range(6)


# ------------------------------------------------------------------ caches

@njit(forceinline=True, _nrt=False)
def set_base(geo, inst, line):
    return geo[inst, BASE] + (line & (geo[inst, SETS] - 1)) * geo[inst, WAYS]


@njit(forceinline=True, _nrt=False)
def find_(geo, tag, flags, inst, line):
    """Slot of a valid copy of ``line`` in cache ``inst``, or -1."""
    b = set_base(geo, inst, line)
    for w in range(geo[inst, WAYS]):
        if tag[b + w] == line and (flags[b + w] & VALID) != 0:
            return b + w
    return -1


@njit(forceinline=True, _nrt=False)
def find2_(geo, tag, flags, inst, line):
    """Like ``find_``, but -2 when the line's tag is there only as a coherence-invalidated way."""
    b = set_base(geo, inst, line)
    r = -1
    for w in range(geo[inst, WAYS]):
        if tag[b + w] == line:
            f = flags[b + w]
            if (f & VALID) != 0:
                return b + w
            if f == COHINV:
                r = -2
    return r


@njit(forceinline=True, _nrt=False)
def coh_invalid_here_(geo, tag, flags, inst, line):
    """Was ``line`` in this cache until a coherence invalidation took it?"""
    b = set_base(geo, inst, line)
    for w in range(geo[inst, WAYS]):
        if flags[b + w] == COHINV and tag[b + w] == line:
            return True
    return False


@njit(forceinline=True, _nrt=False)
def touch_(geo, tag, meta, rng, tick, inst, slot):
    tick[0] += 1
    b = set_base(geo, inst, tag[slot])
    _r.on_hit(geo[inst, POL], meta, b, geo[inst, WAYS], slot - b, tick[0], rng[inst:inst + 1])


@njit(forceinline=True, _nrt=False)
def home_of(params, line):
    lb = params[P_LINEBITS]
    mode = params[P_INTERLEAVE]
    if mode == 0:       # contiguous page-aligned block per package
        return (line // (params[P_NODEBYTES] >> lb)) % params[P_PKGS]
    if mode == 1:       # line-interleaved
        return line % params[P_PKGS]
    return (line >> (12 - lb)) % params[P_PKGS]   # page-interleaved


@njit(forceinline=True, _nrt=False)
def mem_write(st, line, t, core):
    """A line written back to DRAM at its home controller (off the critical path)."""
    h = home_of(st[PARAMS], line)
    mb = st[MEMBUSY]
    mb[h] = max(mb[h], t) + st[PARAMS][P_MEMOCC]
    st[CSTATS][core, C_MEM_WRITES] += 1


# ------------------------------------------------------------------ directory (open addressing)

@njit(forceinline=True, _nrt=False)
def _hash(line, mask):
    x = np.uint64(line) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(x >> np.uint64(20)) & mask


@njit(forceinline=True, _nrt=False)
def dkey(st, core, line):
    """The directory key of ``line`` in ``core``'s coherence domain: each domain keeps its own
    entries (``line * domains + domain``; just ``line`` on a one-domain machine)."""
    nd = st[PARAMS][P_NDOM]
    if nd == 1:
        return line
    return line * nd + st[CDOM][core]


@njit(forceinline=True, _nrt=False)
def dir_find_(dt, mask, line):
    i = _hash(line, mask)
    while dt[i, D_USED] != 0:
        if dt[i, D_KEY] == line:
            return i
        i = (i + 1) & mask
    return -1


@njit(forceinline=True, _nrt=False)
def dir_insert(st, line):
    dt, mask = st[DIRT], st[PARAMS][P_DIRMASK]
    i = _hash(line, mask)
    while dt[i, D_USED] != 0:
        if dt[i, D_KEY] == line:
            return i
        i = (i + 1) & mask
    dt[i, D_USED] = 1
    dt[i, D_KEY] = line
    dt[i, D_STATE] = I
    dt[i, D_OWNER] = -1
    dt[i, D_BUSY] = 0
    for w in range(st[PARAMS][P_WORDS]):
        dt[i, D_SH + w] = 0
    st[DCOUNT][0] += 1
    return i


@njit(_nrt=False)
def dir_rehash(old, new):
    """Every entry of the directory ``old`` into the empty, bigger ``new`` (same columns)."""
    mask = new.shape[0] - 1
    for r in range(old.shape[0]):
        if old[r, D_USED] != 0:
            i = _hash(old[r, D_KEY], mask)
            while new[i, D_USED] != 0:
                i = (i + 1) & mask
            for c in range(old.shape[1]):
                new[i, c] = old[r, c]


def dir_grow(ms: MachineState, rows: int) -> None:
    """Give ``ms`` a directory of ``rows`` rows (a power of two; never above P_DIRFULL), same entries."""
    rows = min(rows, int(ms.params[P_DIRFULL]))
    if rows <= ms.dirt.shape[0]:
        return
    new = np.zeros((rows, ms.dirt.shape[1]), np.int64)
    dir_rehash(ms.dirt, new)
    ms.dirt = new
    ms.params[P_DIRMASK] = rows - 1


@njit(forceinline=True, _nrt=False)
def dir_over_half(params, dcount, extra):
    """Is the directory over half full, counting ``extra`` entries to come, and still able to grow?
    (Trace replay and the program engine stop for ``Machine`` to double it when it is.)"""
    rows = params[P_DIRMASK] + 1
    return rows < params[P_DIRFULL] and 2 * (dcount[0] + extra) > rows


def dir_wants_room(ms: MachineState, extra: int = 0) -> bool:
    """``dir_over_half`` from Python (its plain-Python body: nothing to compile)."""
    return bool(dir_over_half.py_func(ms.params, ms.d_count, extra))


@njit(_nrt=False)
def dir_delete(st, i):
    """Backward-shift deletion keeps every probe chain unbroken."""
    dt, mask = st[DIRT], st[PARAMS][P_DIRMASK]
    ncol = dt.shape[1]
    j = i
    while True:
        j = (j + 1) & mask
        if dt[j, D_USED] == 0:
            break
        k = _hash(dt[j, D_KEY], mask)
        # move j into the hole at i unless its home k lies cyclically in (i, j]
        if (i <= j and (i < k <= j)) or (i > j and (k > i or k <= j)):
            continue
        for c in range(1, ncol):
            dt[i, c] = dt[j, c]
        i = j
    dt[i, D_USED] = 0
    st[DCOUNT][0] -= 1


@njit(forceinline=True, _nrt=False)
def has_bit(st, e, c):
    return ((st[DIRT][e, D_SH + (c >> 6)] >> (c & 63)) & 1) != 0


@njit(forceinline=True, _nrt=False)
def set_bit(st, e, c):
    st[DIRT][e, D_SH + (c >> 6)] |= np.int64(1) << (c & 63)


@njit(forceinline=True, _nrt=False)
def clear_bit(st, e, c):
    st[DIRT][e, D_SH + (c >> 6)] &= ~(np.int64(1) << (c & 63))


@njit(forceinline=True, _nrt=False)
def popcount(x):
    """Bits set in a uint64 (SWAR)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(forceinline=True, _nrt=False)
def n_holders(st, e):
    n = 0
    for w in range(st[PARAMS][P_WORDS]):
        n += popcount(np.uint64(st[DIRT][e, D_SH + w]))
    return n


@njit(forceinline=True, _nrt=False)
def holders(st, e, out):
    """Fill ``out`` with the cores holding entry ``e``, ascending; returns how many."""
    n = 0
    for w in range(st[PARAMS][P_WORDS]):
        x = np.uint64(st[DIRT][e, D_SH + w])
        while x != np.uint64(0):
            low = x & (~x + np.uint64(1))          # lowest set bit
            out[n] = w * 64 + popcount(low - np.uint64(1))
            n += 1
            x ^= low
    return n


@njit(forceinline=True, _nrt=False)
def holds_(geo, tag, flags, privs, npi, core, line):
    # deepest first: a line leaving an upper level is most often still in the level below
    for j in range(npi - 1, -1, -1):
        if find_(geo, tag, flags, privs[core, j], line) >= 0:
            return True
    return False


@njit(_nrt=False)
def dir_drop(st, core, line):
    """``core`` no longer holds ``line`` in any private cache."""
    e = dir_find_(st[DIRT], st[PARAMS][P_DIRMASK], dkey(st, core, line))
    if e < 0 or not has_bit(st, e, core):
        return
    clear_bit(st, e, core)
    left = n_holders(st, e)
    was_owner = st[DIRT][e, D_OWNER] == core
    if was_owner:
        st[DIRT][e, D_OWNER] = -1
    if left == 0:
        dir_delete(st, e)
    elif was_owner:
        st[DIRT][e, D_STATE] = S


# ------------------------------------------------------------------ evictions

@njit(_nrt=False)
def push_dirty(st, core, pos, line, t, stat_core, stat_cfg):
    """Dirty data leaving path position ``pos`` of ``core``: into the next level holding it, else memory."""
    dpath, flags = st[DPATH], st[FLAGS]
    st[LSTATS][stat_core, stat_cfg, L_WRITEBACKS] += 1
    for k in range(pos + 1, st[PARAMS][P_NLEV]):
        s = find_(st[GEO], st[TAG], st[FLAGS], dpath[core, k], line)
        if s >= 0:
            flags[s] |= DIRTY
            return
    mem_write(st, line, t, stat_core)


@njit(_nrt=False)
def back_invalidate(st, inst, line, t):
    """An inclusive cache lost ``line``: remove it from every cache above it that it covers."""
    geo, flags = st[GEO], st[FLAGS]
    pos = geo[inst, POS]
    first, size = geo[inst, GFIRST], geo[inst, GSIZE]
    for q in range(first, first + size):
        for k in range(pos):
            for path in (st[DPATH], st[IPATH]):
                u = path[q, k]
                s = find_(st[GEO], st[TAG], st[FLAGS], u, line)
                if s >= 0:
                    d = (flags[s] & DIRTY) != 0
                    flags[s] = 0
                    if d:
                        push_dirty(st, q, pos, line, t, q, geo[u, CFG])
        if not holds_(st[GEO], st[TAG], st[FLAGS], st[PRIVS], st[PARAMS][P_NPRIVINST], q, line):
            dir_drop(st, q, line)


@njit(forceinline=True, _nrt=False)
def evict(st, inst, slot, t, actor):
    geo, flags, tag = st[GEO], st[FLAGS], st[TAG]
    line = tag[slot]
    d = (flags[slot] & DIRTY) != 0
    flags[slot] = 0
    q = geo[inst, GFIRST]
    if d:
        push_dirty(st, q, geo[inst, POS], line, t, q if geo[inst, PRIV] else actor, geo[inst, CFG])
    if geo[inst, INCL]:
        back_invalidate(st, inst, line, t)
    if geo[inst, PRIV] and not holds_(st[GEO], st[TAG], st[FLAGS], st[PRIVS], st[PARAMS][P_NPRIVINST], q, line):
        dir_drop(st, q, line)


@njit(forceinline=True, _nrt=False)
def fill(st, inst, line, t, actor):
    """Put ``line`` into cache ``inst`` (not present there); returns its slot."""
    geo, flags, tag = st[GEO], st[FLAGS], st[TAG]
    ways = geo[inst, WAYS]
    b = set_base(geo, inst, line)
    # the way that held this line before a coherence invalidation, else the first invalid way
    meta = st[META]
    pol = geo[inst, POL]
    way = -1
    lru = -1             # for LRU, the least recent valid way, found in the same pass
    best = np.int64(0x7FFFFFFFFFFFFFFF)
    for w in range(ways):
        f = flags[b + w]
        if (f & VALID) == 0:
            if f == COHINV and tag[b + w] == line:
                way = w
                break
            if way < 0:
                way = w
        else:
            mv = meta[b + w]     # the oldest stamp, with selects: which way is oldest is not predictable
            lt = mv < best
            best = mv if lt else best
            lru = w if lt else lru
    if way < 0:
        way = lru if pol == 0 else _r.victim(pol, meta, b, ways, st[TICK][0], st[RNG][inst:inst + 1])
        evict(st, inst, b + way, t, actor)
    tag[b + way] = line
    flags[b + way] = VALID
    st[TICK][0] += 1
    _r.on_fill(geo[inst, POL], st[META], b, ways, way, st[TICK][0], st[RNG][inst:inst + 1])
    return b + way


@njit(_nrt=False)
def invalidate_core(st, q, line):
    """Coherence invalidation of every private copy ``q`` holds (tag kept, marked COHINV)."""
    privs, flags = st[PRIVS], st[FLAGS]
    for j in range(st[PARAMS][P_NPRIVINST]):
        s = find_(st[GEO], st[TAG], st[FLAGS], privs[q, j], line)
        if s >= 0:
            flags[s] = COHINV
    st[CSTATS][q, C_INV_RECV] += 1


@njit(_nrt=False)
def drop_hint(st, q, line, clean):
    """``q`` no longer owns ``line`` in M: its private copies lose the ``OWNM`` hint, and their dirty
    bit too when ``clean`` (the owner's data was written back), in one pass."""
    privs, flags = st[PRIVS], st[FLAGS]
    mask = ~(OWNM | DIRTY) if clean else ~OWNM
    for j in range(st[PARAMS][P_NPRIVINST]):
        s = find_(st[GEO], st[TAG], st[FLAGS], privs[q, j], line)
        if s >= 0:
            flags[s] &= mask


# ------------------------------------------------------------------ one access

@njit(forceinline=True, _nrt=False)
def shared_level_with_(geo, dpath, npriv, nlev, a, b):
    """Lowest path position where cores a and b meet one *inclusive* cache, or -1.

    Only an inclusive shared cache knows which of its cores hold a line, so
    only it can resolve coherence between them without the home directory.
    """
    for k in range(npriv, nlev):
        if dpath[a, k] == dpath[b, k] and geo[dpath[a, k], INCL] != 0:
            return k
    return -1


@njit(forceinline=True, _nrt=False)
def private_lookup(st, core, line, write, pv):
    """Step 1 of an access, changing nothing: the core's private levels, top down (``pv``: 0 data
    path, 1 instruction path).  Returns (hit level or -1, its slot, bit k set if level k missed on
    a coherence-invalidated copy, the core's coherence state for the line, its directory key).
    The access hits when ``_HIT_OK[write, state]`` and the level >= 0 (``is_hit``)."""
    paths = st[PATHS]
    hit_k = -1
    hit_slot = -1
    cohmask = 0
    for k in range(st[PARAMS][P_NPRIV]):
        s = find2_(st[GEO], st[TAG], st[FLAGS], paths[pv, core, k], line)
        if s >= 0:
            hit_k = k
            hit_slot = s
            break
        if s == -2:
            cohmask |= 1 << k
    cstate = S  # a read that hits needs no directory look-up: holding a copy means holding it validly
    key = dkey(st, core, line)
    if write and hit_k >= 0 and (st[FLAGS][hit_slot] & OWNM) != 0:
        cstate = M  # the copy's hint: this core owns the line in M (no directory look-up)
    elif write or hit_k < 0:
        cstate = I
        e = dir_find_(st[DIRT], st[PARAMS][P_DIRMASK], key)
        if e >= 0 and has_bit(st, e, core):
            cstate = st[DIRT][e, D_STATE] if st[DIRT][e, D_OWNER] == core else S
    return hit_k, hit_slot, cohmask, cstate, key


@njit(forceinline=True, _nrt=False)
def is_hit(write, hit_k, cstate):
    """A private level holds the line with enough permission: no transaction."""
    return hit_k >= 0 and _HIT_OK[1 if write else 0, cstate] != 0


@njit(forceinline=True, _nrt=False)
def perform_hit(st, core, line, write, pv, hit_k, hit_slot, cohmask, cstate, key, t):
    """Perform an access that ``private_lookup`` found to hit: statistics, replacement state, fills of
    the levels above the hit, the dirty bit (E -> M); returns its latency."""
    geo, lstats, paths = st[GEO], st[LSTATS], st[PATHS]
    for k in range(hit_k):
        inst = paths[pv, core, k]
        lstats[core, geo[inst, CFG], L_MISSES] += 1
        if (cohmask >> k) & 1:
            lstats[core, geo[inst, CFG], L_COH_MISSES] += 1
    lstats[core, geo[paths[pv, core, hit_k], CFG], L_HITS] += 1
    touch_(st[GEO], st[TAG], st[META], st[RNG], st[TICK], paths[pv, core, hit_k], hit_slot)
    slot0 = hit_slot
    hint = st[FLAGS][hit_slot] & OWNM           # the copies filled above carry the hit copy's hint
    for k in range(hit_k - 1, -1, -1):
        slot0 = fill(st, paths[pv, core, k], line, t, core)
        st[FLAGS][slot0] |= hint
    if write:
        st[FLAGS][slot0] |= DIRTY
        if cstate == E:
            st[DIRT][dir_find_(st[DIRT], st[PARAMS][P_DIRMASK], key), D_STATE] = M
        st[FLAGS][slot0] |= OWNM                # it is M and this core's now
        st[FLAGS][hit_slot] |= OWNM
    lat = geo[paths[pv, core, hit_k], LAT]
    st[CSTATS][core, C_STALL] += lat - geo[paths[pv, core, 0], LAT]
    return lat


@njit(forceinline=True, _nrt=False)
def line_access(st, core, line, write, ifetch, t):
    """Perform one access to one line at time ``t``; returns its latency."""
    geo, params, lstats, cstats = st[GEO], st[PARAMS], st[LSTATS], st[CSTATS]
    paths = st[PATHS]
    pv = 1 if ifetch else 0
    npriv, nlev = params[P_NPRIV], params[P_NLEV]
    # 1. private levels
    hit_k, hit_slot, cohmask, cstate, key = private_lookup(st, core, line, write, pv)
    if is_hit(write, hit_k, cstate):
        return perform_hit(st, core, line, write, pv, hit_k, hit_slot, cohmask, cstate, key, t)

    # 2. a transaction
    upgrade = hit_k >= 0
    if upgrade:
        cstats[core, C_UPGRADES] += 1
    e = dir_insert(st, key)
    dstate = st[DIRT][e, D_STATE]
    owner = st[DIRT][e, D_OWNER]
    if owner == core:
        owner = -1          # an O owner upgrading: itself is no source
    proto = params[P_PROTO]
    from_owner = False
    if not write and owner >= 0:
        from_owner = _RSRC[proto, dstate] == 1
    if write and owner >= 0 and not upgrade:
        from_owner = True
    # where on my path the data is, when it does not come from the owner
    k_data = -1
    if not from_owner and not upgrade:
        for k in range(npriv, nlev):
            if find_(st[GEO], st[TAG], st[FLAGS], paths[pv, core, k], line) >= 0:
                k_data = k
                break
    # the cores to involve, and whether they all share a cache with me
    k_loc = -1
    local_ok = True
    hl = st[SCRATCH]
    nh = holders(st, e, hl)
    if write:
        for j in range(nh):
            q = hl[j]
            if q == core:
                continue
            sl = shared_level_with_(st[GEO], st[DPATH], st[PARAMS][P_NPRIV], st[PARAMS][P_NLEV], core, q)
            if sl < 0:
                local_ok = False
            elif sl > k_loc:
                k_loc = sl
    elif owner >= 0:
        sl = shared_level_with_(st[GEO], st[DPATH], st[PARAMS][P_NPRIV], st[PARAMS][P_NLEV], core, owner)
        if sl < 0:
            local_ok = False
        else:
            k_loc = sl
    # memory is always remote; an upgrade with nobody to ask is local only if a shared level exists
    if not from_owner and not upgrade and k_data < 0:
        local_ok = False
    kstar = k_loc
    if k_data > kstar:
        kstar = k_data
    if kstar < 0:
        # nobody else to involve (an upgrade): an inclusive shared level on my path can grant it
        for k in range(npriv, nlev):
            if geo[paths[pv, core, k], INCL] != 0:
                kstar = k
                break
        if kstar < 0:
            local_ok = False
    busy = st[DIRT][e, D_BUSY]
    hops = 0
    if local_ok:
        start = max(t, busy)
        done = start + geo[paths[pv, core, kstar], LAT]
        if from_owner:
            done += geo[paths[pv, core, npriv - 1], LAT]
        cstats[core, C_LOCAL_TXN] += 1
    else:
        cstats[core, C_REMOTE_TXN] += 1
        hops_m = st[HOPS]
        msg = st[MSG]
        cpp = params[P_CPP]
        pc = core // cpp
        ph = home_of(params, line)
        lookup = geo[paths[pv, core, hit_k], LAT] if upgrade else geo[paths[pv, core, nlev - 1], LAT]
        arrive = t + lookup + msg[pc, ph] + params[P_DIRLAT]
        hops += hops_m[pc, ph]
        start = max(arrive, busy)
        hb = st[MEMBUSY]                  # [pkgs + ph]: the home's coherence engine
        npk = params[P_PKGS]
        if hb[npk + ph] > start:
            start = hb[npk + ph]
        hb[npk + ph] = start + params[P_HOMEOCC]
        if from_owner:
            po = owner // cpp
            done = start + msg[ph, po] + msg[po, pc] + geo[paths[pv, core, npriv - 1], LAT]
            hops += hops_m[ph, po] + hops_m[po, pc]
        elif upgrade:
            done = start + msg[ph, pc]
            hops += hops_m[ph, pc]
        elif k_data >= 0:
            done = t + geo[paths[pv, core, k_data], LAT]
            if done < start:
                done = start
        else:
            mb = st[MEMBUSY]
            ms = max(start, mb[ph])
            mb[ph] = ms + params[P_MEMOCC]
            done = ms + st[MEMLAT][ph] + msg[ph, pc]
            hops += hops_m[ph, pc]
            cstats[core, C_MEM_READS] += 1
        if write:
            for j in range(nh):
                q = hl[j]
                if q == core or q == owner:
                    continue
                pq = q // cpp
                ack = start + msg[ph, pq] + msg[pq, pc]
                hops += hops_m[ph, pq] + hops_m[pq, pc]
                if ack > done:
                    done = ack
    st[DIRT][e, D_BUSY] = done
    cstats[core, C_HOPS] += hops
    if from_owner:
        cstats[core, C_C2C] += 1
    # stats for the levels looked up
    last = hit_k if upgrade else (k_data if k_data >= 0 else nlev - 1)
    for k in range(last + 1):
        inst = paths[pv, core, k]
        if upgrade and k == hit_k:
            lstats[core, geo[inst, CFG], L_HITS] += 1
        elif k == k_data:
            lstats[core, geo[inst, CFG], L_HITS] += 1
        else:
            lstats[core, geo[inst, CFG], L_MISSES] += 1
            if coh_invalid_here_(st[GEO], st[TAG], st[FLAGS], inst, line):
                lstats[core, geo[inst, CFG], L_COH_MISSES] += 1

    # 3. coherence actions on the other cores
    if write:
        for j in range(nh):
            q = hl[j]
            if q == core:
                continue
            invalidate_core(st, q, line)
            cstats[core, C_INV_SENT] += 1
            clear_bit(st, e, q)
        # stale copies in shared caches off my path (in my coherence domain)
        sh = st[SHARED]
        for j in range(sh.shape[0]):
            inst = sh[j]
            if params[P_NDOM] > 1 and st[CDOM][geo[inst, GFIRST]] != st[CDOM][core]:
                continue
            onpath = False
            for k in range(npriv, nlev):
                if st[DPATH][core, k] == inst:
                    onpath = True
            if not onpath:
                s = find_(st[GEO], st[TAG], st[FLAGS], inst, line)
                if s >= 0:
                    st[FLAGS][s] = COHINV
        st[DIRT][e, D_OWNER] = core
        st[DIRT][e, D_STATE] = M
        set_bit(st, e, core)
    else:
        if owner >= 0:
            nxt = _ROWN[proto, dstate]
            wb = _RWB[proto, dstate]
            drop_hint(st, owner, line, wb)      # the owner keeps no M: its stores must ask again
            if wb:
                mem_write(st, line, t, owner)
                st[LSTATS][owner, geo[st[DPATH][owner, npriv - 1], CFG], L_WRITEBACKS] += 1
            if nxt == O:
                st[DIRT][e, D_STATE] = O
            else:
                st[DIRT][e, D_STATE] = S
                st[DIRT][e, D_OWNER] = -1
        elif cstate != I:
            pass            # already a holder (through its other level-1 cache)
        else:               # no owner: I or S; the READ table says what the reader gets
            nxt = _RREQ[proto, dstate]
            st[DIRT][e, D_STATE] = nxt
            if nxt == E:
                st[DIRT][e, D_OWNER] = core
        set_bit(st, e, core)

    # 4. fill my path above where the data was found
    top = hit_k if upgrade else (k_data if k_data >= 0 else nlev)
    slot0 = hit_slot
    if upgrade:
        touch_(st[GEO], st[TAG], st[META], st[RNG], st[TICK], paths[pv, core, hit_k], hit_slot)
    for k in range(top - 1, -1, -1):
        # a level may already hold it (a shared level behind an owner's copy): leave it be
        s = find_(st[GEO], st[TAG], st[FLAGS], paths[pv, core, k], line)
        slot0 = s if s >= 0 else fill(st, paths[pv, core, k], line, t, core)
        if write and k < npriv:
            st[FLAGS][slot0] |= OWNM            # M and this core's: its next stores need no look-up
    if write:
        st[FLAGS][slot0] |= DIRTY
        if upgrade:
            st[FLAGS][hit_slot] |= OWNM
    lat = done - t
    cstats[core, C_STALL] += lat - geo[paths[pv, core, 0], LAT]
    return lat


@njit(forceinline=True, _nrt=False)
def access(st, core, kind, addr, size, t):
    """One trace access (possibly straddling lines, done one after another); returns its latency."""
    lb = st[PARAMS][P_LINEBITS]
    # line numbers of the unsigned 64-bit address: 0 .. 2**(64 - line bits) - 1
    first = np.int64(np.uint64(addr) >> np.uint64(lb))
    last = np.int64((np.uint64(addr) + np.uint64(max(size, 1) - 1)) >> np.uint64(lb))
    lat = 0
    for ln in range(first, last + 1):
        lat += line_access(st, core, ln, kind >= KIND_S, kind == KIND_I, t + lat)
    st[CSTATS][core, C_ACCESSES] += 1
    return lat


# ------------------------------------------------------------------ cache maintenance (CLFLUSH, WBINVD)

@njit(_nrt=False)
def flush_line(st, core, line, t):
    """CLFLUSH: ``line`` leaves every cache of ``core``'s coherence domain, written back to memory
    (at ``t``) if some copy was dirty; the domain's directory entry goes.  Returns 1 if written back."""
    geo, flags = st[GEO], st[FLAGS]
    nd = st[PARAMS][P_NDOM]
    dom = st[CDOM][core]
    dirty = False
    for inst in range(geo.shape[0]):
        if nd > 1 and st[CDOM][geo[inst, GFIRST]] != dom:
            continue
        s = find_(geo, st[TAG], flags, inst, line)
        if s >= 0:
            if (flags[s] & DIRTY) != 0:
                dirty = True
            flags[s] = 0
    e = dir_find_(st[DIRT], st[PARAMS][P_DIRMASK], dkey(st, core, line))
    if e >= 0:
        dir_delete(st, e)
    if dirty:
        st[LSTATS][core, geo[st[DPATH][core, 0], CFG], L_WRITEBACKS] += 1
        mem_write(st, line, t, core)
        return 1
    return 0


@njit(_nrt=False)
def flush_domain(st, core, t):
    """WBINVD: every cache of ``core``'s coherence domain is written back (each dirty copy, in cache
    and slot order, one memory write at ``t``) and emptied; the domain's directory entries go.
    Returns how many copies were written back."""
    geo, flags, tag = st[GEO], st[FLAGS], st[TAG]
    nd = st[PARAMS][P_NDOM]
    dom = st[CDOM][core]
    n = 0
    for inst in range(geo.shape[0]):
        if nd > 1 and st[CDOM][geo[inst, GFIRST]] != dom:
            continue
        b = geo[inst, BASE]
        for s in range(b, b + geo[inst, SETS] * geo[inst, WAYS]):
            if (flags[s] & VALID) != 0 and (flags[s] & DIRTY) != 0:
                n += 1                   # every dirty copy is one write to memory
                mem_write(st, tag[s], t, core)
            flags[s] = 0
    dt = st[DIRT]
    i = 0
    while i < dt.shape[0]:
        if dt[i, D_USED] != 0 and (nd == 1 or dt[i, D_KEY] % nd == dom):
            dir_delete(st, i)        # backward shift may move another entry into i: look at i again
        else:
            i += 1
    st[LSTATS][core, geo[st[DPATH][core, 0], CFG], L_WRITEBACKS] += n
    return n
# ------------------------------------------------------------------ the program rules, shared with cpu.py

@njit(forceinline=True, _nrt=False)
def would_hit(st, c, line, write):
    """Does a data access to ``line`` hit a private level with enough permission (no transaction)?"""
    hit_k, _, _, cstate, _ = private_lookup(st, c, line, write, 0)
    return is_hit(write, hit_k, cstate)


@njit(forceinline=True, _nrt=False)
def request_delay(st, c, line):
    """When a miss takes effect: after the lookups of every level on the path and the message to the
    line's home, where its directory serializes it against other cores' requests."""
    return line_delay(st, c, line, 0)


@njit(forceinline=True, _nrt=False)
def fetch_would_hit(st, c, line):
    """Does a private level of the core's instruction path hold ``line``?"""
    hit_k, _, _, _, _ = private_lookup(st, c, line, False, 1)
    return hit_k >= 0


@njit(forceinline=True, _nrt=False)
def miss_delay(st, c, kind, addr, size):
    """-1 if every line of a trace access would hit (a fetch: ``fetch_would_hit``; data:
    ``would_hit``), else the ``line_delay`` of its first missing line."""
    lb = st[PARAMS][P_LINEBITS]
    first = np.int64(np.uint64(addr) >> np.uint64(lb))
    last = np.int64((np.uint64(addr) + np.uint64(max(size, 1) - 1)) >> np.uint64(lb))
    for ln in range(first, last + 1):
        if kind == KIND_I:
            if not fetch_would_hit(st, c, ln):
                return line_delay(st, c, ln, 1)
        elif not would_hit(st, c, ln, kind >= KIND_S):
            return line_delay(st, c, ln, 0)
    return -1


@njit(forceinline=True, _nrt=False)
def line_delay(st, c, line, pv):
    """``request_delay`` along the data (pv 0) or instruction (pv 1) path: the last level's look-up
    and the message to the line's home."""
    params = st[PARAMS]
    last = st[PATHS][pv, c, params[P_NLEV] - 1]
    return st[GEO][last, LAT] + st[MSG][c // params[P_CPP], home_of(params, line)]


@njit(_nrt=False)
def hold_lines(st, c, addr, size, until):
    """A locked read-modify-write holds its lines in M until it ends: each line's busy-until at its
    home is raised to ``until``, so a competing request waits for it (cpu_spec.md, 'Memory ops')."""
    lb = st[PARAMS][P_LINEBITS]
    first = np.int64(np.uint64(addr) >> np.uint64(lb))
    last = np.int64((np.uint64(addr) + np.uint64(max(size, 1) - 1)) >> np.uint64(lb))
    dt = st[DIRT]
    for ln in range(first, last + 1):
        e = dir_find_(dt, st[PARAMS][P_DIRMASK], dkey(st, c, ln))
        if e >= 0 and dt[e, D_BUSY] < until:
            dt[e, D_BUSY] = until


@njit(forceinline=True, _nrt=False)
def store_hit_cost(alu, c, alu_lat, width):
    """``alu_cost``: a store hit retires into the store buffer; ``width`` of them issue per cycle
    (``alu[c]`` is the core's issue-width counter)."""
    n = alu[c]                     # counts 0 .. width-1 and wraps (n % width without a division)
    alu[c] = 0 if n + 1 >= width else n + 1
    return alu_lat if n == 0 else 0


# ------------------------------------------------------------------ the loop

@njit(_nrt=False)
def _heap_push(heap, n, key):
    i = n
    heap[i] = key
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= heap[i]:
            break
        heap[p], heap[i] = heap[i], heap[p]
        i = p
    return n + 1


@njit(_nrt=False)
def _heap_pop(heap, n):
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = 0
    while True:
        l = 2 * i + 1
        if l >= n:
            break
        r = l + 1
        c = l if (r >= n or heap[l] <= heap[r]) else r
        if heap[i] <= heap[c]:
            break
        heap[i], heap[c] = heap[c], heap[i]
        i = c
    return top, n


@njit(_nrt=False)
def run_trace(st_tuple, order, starts, ends, pos, rec, max_steps, out_lat, out_issue, out_seq, out_eff, done, heap,
              inflight, alu):
    """Replay per-core access streams under the program engine's rules (cpu_spec.md, 'Trace replay').

    ``rec[starts[c]:ends[c]]`` are core c's accesses, one row each
    (address, size << 8 | kind), so that every core reads one sequential
    stream; ``order[j]`` is row j's index in the original trace and
    ``pos[c]`` how far core c has got.  The core with the smallest
    (clock, id) goes next.  A data access that would hit is performed at
    once; one that misses takes effect at the home: the core's clock moves
    to issue + ``request_delay`` and the access is performed (timed from its
    issue, ``inflight[c]``) when the core comes up again.  ``alu[c]`` is the
    core's issue-width counter.  Runs at most ``max_steps`` accesses
    (-1: all; an access counts when performed) and returns how many it ran,
    so callers can step the machine and check invariants between accesses.
    ``out_lat[i]`` / ``out_issue[i]`` receive trace access i's cost (end -
    issue) and issue time; ``out_seq[k]`` the trace index of the k-th access
    performed and ``out_eff[k]`` the time it took effect (its issue time, or
    the core's clock when a miss reached its home); ``done[0]`` counts them
    across calls.  The outputs are skipped when they are empty
    (a run that wants only the totals); ``heap`` is work space (int64, one
    per core).  It also stops after an access that leaves the directory more
    than half full while it can still grow (``d_count[1]`` set to 1): the
    caller doubles it (``dir_grow``) and calls again, which changes nothing
    but speed.  The state tuple stays a value here (unlike ``cpu.run``, which
    passes it down by reference): every hot path below is inlined, so its
    arrays live in registers, and the calls that remain (evictions,
    invalidations) are rare.  A core that is still the earliest after its
    access keeps running without a trip through the heap; that changes
    nothing but speed.
    """
    st = st_tuple
    clock = st[CLOCK]
    params = st[PARAMS]
    dcount = st[DCOUNT]
    alu_lat, width = params[P_ALU], params[P_WIDTH]
    ncores = clock.shape[0]
    record = out_lat.shape[0] > 0
    n = 0
    for c in range(ncores):
        if pos[c] < ends[c]:
            n = _heap_push(heap, n, clock[c] * 8192 + c)
    steps = 0
    c = -1                 # the core being run; it keeps running while it is the earliest (no heap trip)
    while max_steps < 0 or steps < max_steps:
        if c < 0:
            if n == 0:
                break
            key, n = _heap_pop(heap, n)
            c = key & 8191
        j = pos[c]
        ks = rec[j, 1]
        kind = ks & 255
        now = clock[c]
        ti = inflight[c]
        if ti >= 0:                       # the second half of a miss: performed now, timed from its issue
            inflight[c] = -1
            end = max(ti + access(st, c, kind, rec[j, 0], ks >> 8, ti), now)
        else:
            ti = now
            addr, size = rec[j, 0], ks >> 8
            first = np.int64(np.uint64(addr) >> np.uint64(params[P_LINEBITS]))
            if first == np.int64((np.uint64(addr) + np.uint64(max(size, 1) - 1)) >> np.uint64(params[P_LINEBITS])):
                # one line (nearly every access): look it up once; a hit is performed from the look-up
                write = kind >= KIND_S
                pv = 1 if kind == KIND_I else 0
                hit_k, hit_slot, cohmask, cstate, key = private_lookup(st, c, first, write, pv)
                if is_hit(write, hit_k, cstate):
                    d = -1
                    lat = perform_hit(st, c, first, write, pv, hit_k, hit_slot, cohmask, cstate, key, ti)
                    st[CSTATS][c, C_ACCESSES] += 1
                else:
                    d = line_delay(st, c, first, pv)
            else:
                d = miss_delay(st, c, kind, addr, size)
                if d < 0:
                    lat = access(st, c, kind, addr, size, ti)
            if d >= 0:                    # a miss takes effect when its request reaches the home
                inflight[c] = ti
                clock[c] = ti + d
                if n > 0 and heap[0] < clock[c] * 8192 + c:
                    n = _heap_push(heap, n, clock[c] * 8192 + c)
                    c = -1
                continue
            end = ti + (store_hit_cost(alu, c, alu_lat, width) if kind == KIND_S else lat)
        if kind == KIND_M:
            hold_lines(st, c, rec[j, 0], ks >> 8, end)       # a modify holds its line like a locked op
        if record:
            i = order[j]
            out_lat[i] = end - ti
            out_issue[i] = ti
            out_seq[done[0]] = i
            out_eff[done[0]] = now
        done[0] += 1
        clock[c] = end
        pos[c] += 1
        steps += 1
        if dir_over_half(params, dcount, 0):
            dcount[1] = 1                 # half full: the caller doubles the directory and calls again
            break
        if pos[c] >= ends[c]:
            c = -1
        elif n > 0 and heap[0] < clock[c] * 8192 + c:
            n = _heap_push(heap, n, clock[c] * 8192 + c)
            c = -1
    return steps
