"""The machine's state as numpy struct-of-arrays, built from a MachineConfig.

Cache *instances* are the physical caches: a private cache has one instance
per core, a package-shared one one per package.  Every instance's lines live
in three flat arrays (``tag``, ``flags``, ``meta``) at ``geo[inst, BASE]``;
``dpath[core, k]`` / ``ipath[core, k]`` name the instance a core's data /
instruction accesses meet at path position ``k`` (level k+1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodel.coherence import PROTOCOL_IDS
from hwmodel.config import MachineConfig
from hwmodel.interconnect import hop_matrix
from hwmodel.replacement import POLICIES

# geo columns
BASE, SETS, WAYS, LAT, POL, INCL, PRIV, CFG, GFIRST, GSIZE, POS = range(11)
NGEO = 11
# flags bits
VALID, DIRTY, COHINV = 1, 2, 4
# a hint on a private copy: its core owns the line in M (the directory says so), so a store that
# hits it needs no directory look-up.  Never set where it does not hold; a missing hint only costs
# the look-up.  Not part of a cache's visible contents (``Machine.cache_contents`` masks it).
OWNM = 8
SHOWN_FLAGS = VALID | DIRTY | COHINV
# params
(P_LINEBITS, P_NPRIV, P_NLEV, P_CORES, P_CPP, P_PKGS, P_HOPLAT, P_DIRLAT, P_MEMLAT,
 P_MEMOCC, P_INTERLEAVE, P_NODEBYTES, P_PROTO, P_WORDS, P_DIRMASK, P_NPRIVINST, P_HOMEOCC, P_NDOM,
 P_ALU, P_WIDTH, P_DIRFULL) = range(21)
NPARAMS = 21
# P_DIRFULL: the directory's largest size (rows); it starts at DIR_START rows (or that) and doubles
# when half full (``Machine``), so that its probes stay in the host's caches while few lines live
DIR_START = 4096
# (P_ALU, P_WIDTH: core.alu_latency and core.issue_width, for the store-hit cost of trace replay)
INTERLEAVE_IDS = {"node": 0, "line": 1, "page": 2}
# per (core, cache config) stats
L_HITS, L_MISSES, L_COH_MISSES, L_WRITEBACKS = range(4)
LEVEL_STATS = ("hits", "misses", "coherence_misses", "writebacks")
# per core stats
(C_ACCESSES, C_STALL, C_INV_SENT, C_INV_RECV, C_UPGRADES, C_C2C, C_HOPS, C_MEM_READS,
 C_MEM_WRITES, C_LOCAL_TXN, C_REMOTE_TXN) = range(11)
CORE_STATS = ("accesses", "stall_cycles", "invalidations_sent", "invalidations_received",
              "upgrades", "cache_to_cache", "hops", "memory_reads", "memory_writes",
              "local_transactions", "remote_transactions")


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


@dataclass
class MachineState:
    cfg: MachineConfig
    geo: np.ndarray        # int64 [inst, NGEO]
    rng: np.ndarray        # uint64 [inst]
    tag: np.ndarray        # int64 [lines]
    flags: np.ndarray      # int8 [lines]
    meta: np.ndarray       # int64 [lines]
    dpath: np.ndarray      # int64 [cores, nlev]
    ipath: np.ndarray      # int64 [cores, nlev]
    paths: np.ndarray      # int64 [2, cores, nlev]  dpath and ipath stacked (they are views of it)
    privs: np.ndarray      # int64 [cores, nprivinst]  every private instance of a core
    shared: np.ndarray     # int64 [n]  every shared instance
    hops: np.ndarray       # int64 [pkgs, pkgs]
    msglat: np.ndarray     # int64 [pkgs, pkgs]  one-way message latency (0 inside a package)
    params: np.ndarray     # int64 [NPARAMS]
    dirt: np.ndarray       # int64 [cap, 5 + words] directory hash table, one row per line:
                           #   used, line, state, owner, busy-until at the home, holder bit words
    d_count: np.ndarray    # int64 [2]: live entries; 1 when the replay stopped for a bigger directory
    mem_busy: np.ndarray   # int64 [2 * pkgs]: memory controllers, then the homes' coherence engines
    clock: np.ndarray      # int64 [cores]
    tick: np.ndarray       # int64 [1]  replacement stamp counter
    lstats: np.ndarray     # int64 [cores, ncfg, 4]
    cstats: np.ndarray     # int64 [cores, 11]
    scratch: np.ndarray    # int64 [cores]  work space
    cache_names: tuple[str, ...]
    cdom: np.ndarray = None  # int64 [cores]  coherence domain of each core
    memlat: np.ndarray = None  # int64 [pkgs]  latency at each package's memory controller (ticks)

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


def build_state(cfg: MachineConfig, seed: int = 0) -> MachineState:
    """Empty caches, empty directory, clocks at zero."""
    cores, cpp = cfg.cores, cfg.cores_per_package
    levels = sorted({c.level for c in cfg.caches})
    nlev = len(levels)
    npriv = sum(1 for lv in levels if cfg._level_sharing(lv) == "private")
    if npriv == 0:
        from hwmodel.errors import MksimError
        raise MksimError("level 1 must be private to each core", where=cfg.origin)
    geo_rows, base = [], 0
    inst_of: dict[tuple[int, int], int] = {}  # (cfg index, group) -> inst
    for ci, c in enumerate(cfg.caches):
        g = cfg.group_size(c.sharing)
        for grp in range(cores // g):
            inst_of[(ci, grp)] = len(geo_rows)
            c = cfg.cache_for(ci, grp * g)      # a core type's own geometry and latency (in ticks)
            sets = c.sets
            geo_rows.append([base, sets, c.ways, c.latency, POLICIES[c.replacement],
                             int(c.inclusion == "inclusive"), int(c.sharing == "private"),
                             ci, grp * g, g, c.level - 1])
            base += sets * c.ways
    geo = np.array(geo_rows, dtype=np.int64)
    dpath = np.zeros((cores, nlev), np.int64)
    ipath = np.zeros((cores, nlev), np.int64)
    for ci, c in enumerate(cfg.caches):
        g = cfg.group_size(c.sharing)
        for core in range(cores):
            inst = inst_of[(ci, core // g)]
            if c.kind in ("unified", "data"):
                dpath[core, c.level - 1] = inst
            if c.kind in ("unified", "instruction"):
                ipath[core, c.level - 1] = inst
    # a level-1 data cache without an instruction cache: fetches use the data cache
    l1_kinds = {c.kind for c in cfg.caches if c.level == 1}
    if l1_kinds == {"data"}:
        ipath[:, 0] = dpath[:, 0]
    paths = np.ascontiguousarray(np.stack([dpath, ipath]))   # dpath / ipath are views of it
    privs_l = []
    for core in range(cores):
        s = []
        for k in range(npriv):
            for inst in (dpath[core, k], ipath[core, k]):
                if inst not in s:
                    s.append(int(inst))
        privs_l.append(s)
    privs = np.array(privs_l, dtype=np.int64)
    shared = np.array([i for i in range(len(geo)) if not geo[i, PRIV]], dtype=np.int64)
    total_private_lines = int(sum(geo[i, SETS] * geo[i, WAYS] for i in range(len(geo)) if geo[i, PRIV]))
    # every live entry has a holder with a private copy: at most total_private_lines entries
    full = _pow2_at_least(2 * total_private_lines + 64)
    cap = min(full, DIR_START)
    words = (cores + 63) // 64
    line = cfg.line
    params = np.zeros(NPARAMS, np.int64)
    params[P_LINEBITS] = line.bit_length() - 1
    params[P_NPRIV], params[P_NLEV], params[P_CORES], params[P_CPP] = npriv, nlev, cores, cpp
    params[P_PKGS] = cfg.packages
    params[P_HOPLAT] = cfg.interconnect.hop_latency
    params[P_DIRLAT] = cfg.coherence.directory_latency
    params[P_HOMEOCC] = cfg.coherence.home_occupancy
    params[P_ALU], params[P_WIDTH] = cfg.core.alu_latency, cfg.core.issue_width
    params[P_MEMLAT], params[P_MEMOCC] = cfg.memory_latency(0), cfg.memory.occupancy   # P_MEMLAT: one package
    params[P_INTERLEAVE] = INTERLEAVE_IDS[cfg.memory.interleave]
    params[P_NODEBYTES] = (cfg.memory.size // cfg.packages) // 4096 * 4096   # page-aligned nodes
    params[P_PROTO] = PROTOCOL_IDS[cfg.coherence.protocol]
    params[P_WORDS], params[P_DIRMASK], params[P_NPRIVINST] = words, cap - 1, privs.shape[1]
    params[P_DIRFULL] = full
    params[P_NDOM] = cfg.ndomains
    hops = hop_matrix(cfg.interconnect, cfg.packages)
    msglat = np.where(hops > 0, cfg.interconnect.link_latency + hops * cfg.interconnect.hop_latency, 0).astype(np.int64)
    rng = np.array([(seed * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9 + 1) % 2**64
                    for i in range(len(geo))], dtype=np.uint64)
    return MachineState(
        cfg=cfg, geo=geo, rng=rng,
        tag=np.zeros(base, np.int64), flags=np.zeros(base, np.int8), meta=np.zeros(base, np.int64),
        dpath=paths[0], ipath=paths[1], paths=paths, privs=privs, shared=shared,
        hops=hops, msglat=msglat, params=params,
        dirt=np.zeros((cap, 5 + words), np.int64), d_count=np.zeros(2, np.int64),
        mem_busy=np.zeros(2 * cfg.packages, np.int64), clock=np.zeros(cores, np.int64),
        tick=np.zeros(1, np.int64),
        lstats=np.zeros((cores, len(cfg.caches), len(LEVEL_STATS)), np.int64),
        cstats=np.zeros((cores, len(CORE_STATS)), np.int64),
        scratch=np.zeros(cores, np.int64),
        cache_names=tuple(c.name for c in cfg.caches),
        cdom=np.array([cfg.domain(q) for q in range(cores)], np.int64),
        memlat=np.array([cfg.memory_latency(p) for p in range(cfg.packages)], np.int64),
    )
