"""Shared test harness: hypothesis strategies for machines and multi-core traces."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from hwmodel.config import (CacheConfig, CoherenceConfig, InterconnectConfig, MachineConfig,
                            MemoryConfig)

LINE = 64


@st.composite
def machines(draw, max_cores: int = 8) -> MachineConfig:
    """Small random machines: tiny caches so that evictions and conflicts are frequent."""
    choices = [(p, c) for p in (1, 2, 4) for c in (1, 2, 4) if p * c <= max_cores]
    packages, cpp = draw(st.sampled_from(choices))
    cores = packages * cpp

    def geom(name, level, sharing, kind="unified", incl="non-inclusive"):
        sets = draw(st.sampled_from([1, 2, 4]))
        ways = draw(st.integers(1, 4))
        return CacheConfig(name=name, level=level, size=sets * ways * LINE, ways=ways, line=LINE,
                           latency=draw(st.integers(1, 6)) + 6 * (level - 1), sharing=sharing, kind=kind,
                           inclusion=incl, replacement=draw(st.sampled_from(["lru", "fifo", "random"])))

    caches = [geom("L1D", 1, "private", "data")]
    if draw(st.booleans()):
        caches.append(geom("L1I", 1, "private", "instruction"))
    level = 2
    if draw(st.booleans()):
        caches.append(geom("L2", 2, "private", incl=draw(st.sampled_from(["inclusive", "non-inclusive"]))))
        level = 3
    shar = ["global"] + (["package"] if cpp > 1 else []) + (["pair"] if cpp % 2 == 0 else [])
    nshared = draw(st.integers(0, 2))
    used = []
    for i in range(nshared):
        opts = [s for s in shar if not used or
                {"pair": 2, "package": cpp, "global": cores}[s] % {"pair": 2, "package": cpp, "global": cores}[used[-1]] == 0
                and {"pair": 2, "package": cpp, "global": cores}[s] >= {"pair": 2, "package": cpp, "global": cores}[used[-1]]]
        opts = [s for s in opts if s not in used]
        if not opts:
            break
        s = draw(st.sampled_from(opts))
        used.append(s)
        caches.append(geom(f"L{level}", level, s, incl=draw(st.sampled_from(["inclusive", "non-inclusive"]))))
        level += 1
    topo = draw(st.sampled_from(["bus", "crossbar", "ring", "mesh2d"] + (["ht-square"] if packages == 4 else [])))
    cfg = MachineConfig(
        name="random", packages=packages, cores_per_package=cpp, clock_ghz=2.0, caches=tuple(caches),
        coherence=CoherenceConfig(protocol=draw(st.sampled_from(["mesi", "moesi"])),
                                  directory_latency=draw(st.integers(0, 20))),
        interconnect=InterconnectConfig(topology=topo, hop_latency=draw(st.integers(0, 40)),
                                        link_latency=draw(st.integers(0, 60))),
        memory=MemoryConfig(latency=draw(st.integers(0, 200)), occupancy=draw(st.integers(0, 30)),
                            size=packages * 4096 * 16, interleave=draw(st.sampled_from(["node", "line", "page"]))),
    )
    return cfg.validate()


@st.composite
def traces(draw, cores: int, max_len: int = 120, max_lines: int = 24):
    """(core, kind, addr, size) arrays: few distinct lines, so sharing and evictions are heavy."""
    n = draw(st.integers(1, max_len))
    nlines = draw(st.integers(1, max_lines))
    core = draw(st.lists(st.integers(0, cores - 1), min_size=n, max_size=n))
    kind = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    line = draw(st.lists(st.integers(0, nlines - 1), min_size=n, max_size=n))
    off = draw(st.lists(st.integers(0, LINE - 1), min_size=n, max_size=n))
    size = draw(st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=n, max_size=n))
    spread = draw(st.sampled_from([1, 7, 4096 // LINE, 1 << 20]))  # lines far apart hit other homes/sets
    addr = [(l * spread) * LINE + o for l, o in zip(line, off)]
    return (np.array(core, np.int64), np.array(kind, np.int64), np.array(addr, np.int64),
            np.array(size, np.int64))
