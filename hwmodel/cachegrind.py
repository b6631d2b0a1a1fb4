"""Cachegrind-exact single-core cache simulation of a :class:`~hwmodel.trace.Trace`.

A cache-count model, not a timing model: it counts references, hits and misses as
cachegrind does and has no notion of cycles (``hwmodel.machine.Machine`` replays a trace
on a timing model: cpu_spec.md, 'Trace replay').

Reproduces the cache simulation of valgrind 3.19 ``--tool=cachegrind --cache-sim=yes``
(``cachegrind/cg_sim.c``, ``cg_main.c``, ``cg_arch.c``): on a lackey trace of a program the
counts equal what cachegrind prints for that program (verified on real programs, see
``tests/data/cachegrind/``).

Model (all of it is cachegrind's, including the odd corners):

* three caches: I1, D1 and a unified LL; each is LRU, write-allocate, and nothing is modelled
  about write-backs (a store is just a reference);
* instruction fetches go to I1, loads/stores/modifies to D1; an L1 miss references LL with
  the *original* ``(addr, size)`` (LL may have another line size);
* a reference whose bytes span two lines references both lines (both LRU states are updated)
  and counts as ONE access that misses if either line missed; it is never two misses;
* the tag of a line is its block number ``addr >> log2(line)``, sets are ``block & (sets-1)``;
  the tag arrays start zeroed (``calloc``), so block 0 is initially "present" in every way of
  set 0: the very first reference to addresses ``0 .. line-1`` hits;
* a modify (``M``) counts as ONE data read (``Dr``): it is simulated once and counted in
  ``D_reads`` / ``D1_read_misses`` / ``LLd_read_misses``; never in the writes;
* data sizes larger than the smallest of the three line sizes are clamped to it (cachegrind
  does this at instrumentation time for dirty helpers such as ``fxsave`` and for CAS; real
  cachegrind refuses to run at all when the smallest line is smaller than the largest guest
  register, 32 B with AVX, so with lines >= 32 B nothing else can exceed it);
* sizes are passed to the simulator as an ``unsigned char`` (only matters for lines >= 256 B);
* a reference spanning more than two lines makes cachegrind panic ("item straddles more than
  two cache sets"); here it raises :class:`~hwmodel.errors.MksimError` (only possible with
  hand-written traces, e.g. instruction fetches larger than a line).

Multi-core (mksim format) traces: the ``core`` column is ignored -- all accesses, in trace
order, go through one I1/D1/LL hierarchy (single-core mode).
"""
from __future__ import annotations

import math
import re

import numpy as np

try:  # the project's njit sets up a writable cache dir when NUMBA_CACHE_DIR is unset
    from hwmodel._numba import njit
except ImportError:  # pragma: no cover
    from numba import njit

from hwmodel.errors import MksimError
from hwmodel.trace import Trace

__all__ = ["MIN_LINE_SIZE", "DEFAULT_I1", "DEFAULT_D1", "DEFAULT_LL", "RESULT_KEYS",
           "parse_cache_spec", "check_cache", "simulate", "format_summary"]

MIN_LINE_SIZE = 16
DEFAULT_I1 = (32768, 8, 64)
DEFAULT_D1 = (32768, 8, 64)
DEFAULT_LL = (8388608, 16, 64)
_INT_MAX = 2**31 - 1

#: keys of :func:`simulate`'s result, in cachegrind's printing order (plus the LL totals)
RESULT_KEYS = (
    "I_refs", "I1_misses", "LLi_misses",
    "D_refs", "D_reads", "D_writes",
    "D1_misses", "D1_read_misses", "D1_write_misses",
    "LLd_misses", "LLd_read_misses", "LLd_write_misses",
    "LL_refs", "LL_misses",
)


# --------------------------------------------------------------------------- configuration
def _where(option: str, size, assoc, line) -> str:
    return f"{option} {size},{assoc},{line}"


def check_cache(size: int, assoc: int, line: int, option: str = "cache") -> tuple[int, int, int]:
    """Apply cachegrind's ``check_cache`` rules (same order); raise MksimError naming the option."""
    where = _where(option, size, assoc, line)
    for name, v in (("size", size), ("associativity", assoc), ("line size", line)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise MksimError(f"{name} {v!r} is not an integer", where=where)
        if v < 1:
            raise MksimError(f"{name} ({v}) must be >= 1", where=where)
        if v > _INT_MAX:
            raise MksimError(f"{name} ({v}) too large (cachegrind's limit is {_INT_MAX})",
                             where=where)
    size, assoc, line = int(size), int(assoc), int(line)
    sets = size / (line * assoc)
    nsets = size // (line * assoc)
    if size % (line * assoc) != 0 or nsets < 1 or nsets & (nsets - 1):
        raise MksimError(
            f"number of sets ({sets:.2f} = size / (line size * associativity)) "
            f"is not a power of two", where=where)
    if line & (line - 1):
        raise MksimError(f"line size ({line}) is not a power of two", where=where)
    if line < MIN_LINE_SIZE:
        raise MksimError(f"line size ({line}) is too small (minimum {MIN_LINE_SIZE})",
                         where=where)
    if size <= line:
        raise MksimError(f"cache size ({size}) <= line size ({line})", where=where)
    if assoc > size // line:
        raise MksimError(f"associativity ({assoc}) > size / line size ({size // line})",
                         where=where)
    return size, assoc, line


_SPEC_RE = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*")


def parse_cache_spec(text: str, option: str) -> tuple[int, int, int]:
    """Parse cachegrind's ``--I1/--D1/--LL`` argument ``"SIZE,ASSOC,LINE"`` and check it."""
    m = _SPEC_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise MksimError(f"bad cache specification {text!r}: expected SIZE,ASSOC,LINE_SIZE "
                         f"(three decimal integers, e.g. 32768,8,64)", where=option)
    size, assoc, line = (int(g) for g in m.groups())
    return check_cache(size, assoc, line, option)


def _geometry(cfg, option):
    try:
        size, assoc, line = cfg
    except (TypeError, ValueError):
        raise MksimError(f"expected a (size, assoc, line_size) triple, got {cfg!r}",
                         where=option) from None
    size, assoc, line = check_cache(size, assoc, line, option)
    nsets = size // (line * assoc)
    return nsets, assoc, int(math.log2(line))


# --------------------------------------------------------------------------- numba kernel
# Each set's tags are kept in MRU-first order, as cg_sim.c keeps them.  Two things make
# the loop fast without changing a count: the most recent block of I1 and of D1 is
# remembered (it is the MRU way of its set until the next reference to that cache, so a
# reference to it alone is a hit that changes nothing), and the checks of the input
# (kind, size) are made inside the same pass.
@njit(cache=True, inline="always")
def _setref_is_miss(tags, set_no, assoc, tag):
    """cg_sim.c cachesim_setref_is_miss: tags[set*assoc : ...] kept in MRU-first order."""
    base = set_no * assoc
    if tags[base] == tag:
        return False
    i = 1
    while i < assoc and tags[base + i] != tag:
        i += 1
    miss = i == assoc
    if miss:
        i = assoc - 1
    for j in range(i, 0, -1):
        tags[base + j] = tags[base + j - 1]
    tags[base] = tag
    return miss


@njit(cache=True, inline="always")
def _ref_blocks(tags, sets_min_1, assoc, block1, block2, setbits=0):
    """cg_sim.c cachesim_ref_is_miss on the reference's first and last block; a way holds
    ``block >> setbits`` (0: the block itself, as cachegrind keeps it).
    Returns 0 hit, 1 miss, 2 spans > 2 lines (panic)."""
    if block1 == block2:
        return 1 if _setref_is_miss(tags, block1 & sets_min_1, assoc, block1 >> setbits) else 0
    if block1 + 1 == block2:
        # always do both, as state is updated as side effect
        m1 = _setref_is_miss(tags, block1 & sets_min_1, assoc, block1 >> setbits)
        m2 = _setref_is_miss(tags, block2 & sets_min_1, assoc, block2 >> setbits)
        return 1 if (m1 or m2) else 0
    return 2


@njit(cache=True, nogil=True)
def _simulate(kind, addr, size, start, i1, d1, ll, i1_assoc, i1_bits, d1_assoc, d1_bits,
              ll_assoc, ll_bits, ll_setbits, ll_limit, min_line, counts):
    """Run the trace from access ``start`` on the caches' tag arrays ``i1``, ``d1``, ``ll``.

    counts[0:9] = Ir, I1m, ILm, Dr, D1mr, DLmr, Dw, D1mw, DLmw (carried across calls), counts[10:12]
    the blocks last referenced in I1 and D1.  LL keeps ``block >> ll_setbits`` (the set is the
    rest), so a narrow (int32) LL holds every address below ``ll_limit`` (0: no limit).
    Returns -1 on success, else the index of the access it stopped at, with counts[9] = 1 (it
    spans more than two lines), 2 (a bad kind or size) or 3 (above ``ll_limit``: widen LL and
    call again from there; nothing of that access was done).
    """
    i1m = i1.shape[0] // i1_assoc - 1
    d1m = d1.shape[0] // d1_assoc - 1
    llm = ll.shape[0] // ll_assoc - 1
    imask = (np.int64(1) << (64 - i1_bits)) - 1
    dmask = (np.int64(1) << (64 - d1_bits)) - 1
    lmask = (np.int64(1) << (64 - ll_bits)) - 1
    ir, i1_miss, ili_miss = counts[0], counts[1], counts[2]
    dr, d1r, dlr, dw, d1w, dlw = counts[3], counts[4], counts[5], counts[6], counts[7], counts[8]
    last_i = counts[10]      # the block last referenced in I1 / D1: the MRU way of its set
    last_d = counts[11]
    stop = -1
    n = kind.shape[0]
    for t in range(start, n):
        k = kind[t]
        a = addr[t]
        s = np.int64(size[t])
        if k < 0 or k > 3 or s < 1:
            counts[9] = 2
            stop = t
            break
        if k == 0:
            s = s & 0xFF  # UChar instr_len
            b1 = (a >> i1_bits) & imask
            b2 = ((a + (s - 1)) >> i1_bits) & imask
            if b1 == last_i and b2 == last_i:
                ir += 1
                continue
        else:
            if s > min_line:
                s = min_line
            s = s & 0xFF  # UChar size in cachesim_D1_doref
            b1 = (a >> d1_bits) & dmask
            b2 = ((a + (s - 1)) >> d1_bits) & dmask
            if b1 == last_d and b2 == last_d:
                if k == 2:
                    dw += 1
                else:
                    dr += 1
                continue
        if ll_limit != 0 and (np.uint64(a) >= ll_limit or np.uint64(a + (s - 1)) >= ll_limit):
            counts[9] = 3
            stop = t
            break
        if k == 0:
            r = _ref_blocks(i1, i1m, i1_assoc, b1, b2)
            if r == 2:
                counts[9] = 1
                stop = t
                break
            ir += 1
            last_i = b2
            if r == 1:
                i1_miss += 1
                r = _ref_blocks(ll, llm, ll_assoc, ((a >> ll_bits) & lmask),
                                ((a + (s - 1)) >> ll_bits) & lmask, ll_setbits)
                if r == 2:
                    counts[9] = 1
                    stop = t
                    break
                if r == 1:
                    ili_miss += 1
        else:
            r = _ref_blocks(d1, d1m, d1_assoc, b1, b2)
            if r == 2:
                counts[9] = 1
                stop = t
                break
            last_d = b2
            miss_l1 = r == 1
            miss_ll = False
            if miss_l1:
                r = _ref_blocks(ll, llm, ll_assoc, ((a >> ll_bits) & lmask),
                                ((a + (s - 1)) >> ll_bits) & lmask, ll_setbits)
                if r == 2:
                    counts[9] = 1
                    stop = t
                    break
                miss_ll = r == 1
            if k == 2:  # store
                dw += 1
                if miss_l1:
                    d1w += 1
                    if miss_ll:
                        dlw += 1
            else:  # load or modify: one read
                dr += 1
                if miss_l1:
                    d1r += 1
                    if miss_ll:
                        dlr += 1
    counts[0], counts[1], counts[2] = ir, i1_miss, ili_miss
    counts[3], counts[4], counts[5], counts[6], counts[7], counts[8] = dr, d1r, dlr, dw, d1w, dlw
    counts[10], counts[11] = last_i, last_d
    return stop


def _zeros_aligned(n: int, dtype) -> np.ndarray:
    """Zeroed array whose data starts on a 64-byte boundary (a host cache line), so that
    a set of 64 bytes is one host line."""
    item = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // item, dtype)
    off = (-raw.ctypes.data % 64) // item
    return raw[off:off + n]


def _check_arrays(kind, size, where) -> None:
    """The trace's kinds and sizes, checked in this order (the first bad one is named)."""
    if kind.size and (kind.min() < 0 or kind.max() > 3):
        bad = int(np.flatnonzero((kind < 0) | (kind > 3))[0])
        raise MksimError(f"access #{bad}: bad kind {int(kind[bad])} (expected 0..3)", where=where)
    if size.size and size.min() < 1:
        bad = int(np.flatnonzero(size < 1)[0])
        raise MksimError(f"access #{bad}: bad size {int(size[bad])} (must be >= 1)", where=where)


# --------------------------------------------------------------------------- public API
def simulate(trace: Trace, i1=DEFAULT_I1, d1=DEFAULT_D1, ll=DEFAULT_LL) -> dict:
    """Simulate ``trace`` like ``cachegrind --cache-sim=yes --I1=i1 --D1=d1 --LL=ll``.

    ``i1``, ``d1``, ``ll`` are ``(size_bytes, assoc, line_bytes)``.  Returns a dict of ints
    with the keys in :data:`RESULT_KEYS` (cachegrind's summary: ``I refs``, ``I1 misses``,
    ``LLi misses``, ``D refs`` with its rd/wr split, ``D1 misses`` and ``LLd misses`` with
    their rd/wr splits, ``LL refs`` and ``LL misses``).  The core column is ignored.
    """
    gi = _geometry(i1, "--I1")
    gd = _geometry(d1, "--D1")
    gl = _geometry(ll, "--LL")
    min_line = min(1 << gi[2], 1 << gd[2], 1 << gl[2])
    kind = np.ascontiguousarray(trace.kind, dtype=np.int8)
    addr = np.ascontiguousarray(trace.addr, dtype=np.int64)
    size = np.ascontiguousarray(trace.size, dtype=np.int32)
    if not (kind.shape == addr.shape == size.shape) or kind.ndim != 1:
        raise MksimError("trace arrays kind/addr/size differ in length",
                         where=getattr(trace, "source", "<trace>"))
    counts = np.zeros(12, dtype=np.int64)
    i1 = _zeros_aligned(gi[0] * gi[1], np.int64)      # calloc'd, like cachegrind
    d1 = _zeros_aligned(gd[0] * gd[1], np.int64)
    # LL is referenced on L1 misses, spread over a big array: narrow (int32) ways keep more of
    # it in the host's caches; it is widened (same contents) if an address does not fit
    ll_setbits = gl[0].bit_length() - 1
    ll = _zeros_aligned(gl[0] * gl[1], np.int32)
    ll[gl[1]:] = -1        # cachegrind's zeroed ways hold block 0, in set 0 only (-1: no block)
    limit = 1 << (31 + ll_setbits + gl[2])
    start = 0
    while True:
        bad = _simulate(kind, addr, size, start, i1, d1, ll, gi[1], gi[2], gd[1], gd[2], gl[1], gl[2],
                        ll_setbits, np.uint64(limit if limit < 2**64 else 0), min_line, counts)
        if bad < 0 or counts[9] != 3:
            break
        wide = _zeros_aligned(ll.size, np.int64)
        wide[:] = ll
        ll, limit, start, counts[9] = wide, 0, bad, 0
    if bad >= 0:
        # a bad kind or size anywhere is reported first (the kernel stops at the first problem)
        _check_arrays(kind, size, getattr(trace, "source", "<trace>"))
        bad = int(bad)
        k = "ILSM"[int(kind[bad])]
        a = int(addr[bad]) & (2**64 - 1)
        raise MksimError(
            f"access #{bad} ({k} {a:#x},{int(size[bad])}) spans more than two cache lines; "
            f"cachegrind cannot simulate it (it would panic: 'item straddles more than two "
            f"cache sets')", where=getattr(trace, "source", "<trace>"))
    ir, i1m, ilm, dr, d1r, dlr, dw, d1w, dlw = (int(x) for x in counts[:9])
    return {
        "I_refs": ir, "I1_misses": i1m, "LLi_misses": ilm,
        "D_refs": dr + dw, "D_reads": dr, "D_writes": dw,
        "D1_misses": d1r + d1w, "D1_read_misses": d1r, "D1_write_misses": d1w,
        "LLd_misses": dlr + dlw, "LLd_read_misses": dlr, "LLd_write_misses": dlw,
        "LL_refs": i1m + d1r + d1w, "LL_misses": ilm + dlr + dlw,
    }


def format_summary(r: dict) -> str:
    """cachegrind-like text summary of a :func:`simulate` result (for humans; no rates)."""
    return (
        f"I   refs:      {r['I_refs']:,}\n"
        f"I1  misses:    {r['I1_misses']:,}\n"
        f"LLi misses:    {r['LLi_misses']:,}\n"
        f"D   refs:      {r['D_refs']:,}  ({r['D_reads']:,} rd   + {r['D_writes']:,} wr)\n"
        f"D1  misses:    {r['D1_misses']:,}  ({r['D1_read_misses']:,} rd   + "
        f"{r['D1_write_misses']:,} wr)\n"
        f"LLd misses:    {r['LLd_misses']:,}  ({r['LLd_read_misses']:,} rd   + "
        f"{r['LLd_write_misses']:,} wr)\n"
        f"LL refs:       {r['LL_refs']:,}\n"
        f"LL misses:     {r['LL_misses']:,}\n")
