"""Machine description: dataclasses, TOML loading and validation.

A machine is packages (sockets, or tiles on a mesh) of cores, a list of
caches (each a level, a geometry, a hit latency and who shares it), a
coherence protocol, an interconnect between packages and memory controllers.
Every number in a preset carries a ``source`` string; ``"assumption: ..."``
marks a number we chose.  See ``hwmodel/presets/*.toml``.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from hwmodel.errors import MksimError

PRESET_DIR = Path(__file__).parent / "presets"

SHARING = ("private", "pair", "package", "global")
KINDS = ("unified", "data", "instruction")
INCLUSION = ("inclusive", "non-inclusive")
PROTOCOLS = ("mesi", "moesi")
TOPOLOGIES = ("bus", "crossbar", "ring", "mesh2d", "ht-square", "twisted-ladder")
INTERLEAVE = ("line", "page", "node")
APIC_MODES = ("xapic", "x2apic")


def _pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


@dataclass(frozen=True)
class CacheConfig:
    """One cache level.  ``latency`` is the load-to-use latency of a hit at this level."""

    name: str
    level: int
    size: int
    ways: int
    line: int = 64
    latency: int = 4
    sharing: str = "private"
    kind: str = "unified"
    inclusion: str = "non-inclusive"
    replacement: str = "lru"
    source: str = ""

    @property
    def sets(self) -> int:
        return self.size // (self.ways * self.line)


@dataclass(frozen=True)
class CoherenceConfig:
    """Directory protocol: lookup latency at the home node; protocol by name."""

    protocol: str = "mesi"
    directory_latency: int = 10
    home_occupancy: int = 0     # cycles a remote transaction keeps its home's coherence engine busy
    source: str = ""


@dataclass(frozen=True)
class InterconnectConfig:
    """Network between packages.  A message from package a to b costs
    ``link_latency + hops(a, b) * hop_latency`` cycles one way (0 inside a package)."""

    topology: str = "crossbar"
    hop_latency: int = 20
    link_latency: int = 0  # paid once by a message that leaves its package (SerDes, link layer)
    width: int = 0  # mesh2d: columns (0 = square)
    source: str = ""


@dataclass(frozen=True)
class MemoryConfig:
    """DRAM: one controller per package; latency at the controller, occupancy per request."""

    latency: int = 100
    occupancy: int = 4
    size: int = 1 << 32
    interleave: str = "node"  # which package is home to an address
    source: str = ""


@dataclass(frozen=True)
class CoreConfig:
    """What a core's micro-ops cost (cycles) and its TLB.  Memory ops cost what
    the memory system says; these are the rest (see ``hwmodel.isa``)."""

    alu_latency: int = 1        # register ops, branches, marks, store hits
    issue_width: int = 1        # that many of those issue together: every issue_width-th costs alu_latency
    spin_wake_latency: int = 0  # a spinning core restarts this long after the write that wakes it (pipeline clear)
    atomic_latency: int = 20    # extra cycles of a locked read-modify-write
    rdtsc_latency: int = 25
    msr_latency: int = 40       # WRMSR (x2APIC ICR) and RDMSR
    mmio_latency: int = 40      # an xAPIC register access (uncached)
    interrupt_entry: int = 250  # from taking an interrupt to the handler's first op
    iret_latency: int = 80
    invlpg_latency: int = 100
    cr3_latency: int = 100      # CR3 write or mode switch (and its TLB flush)
    lidt_latency: int = 100     # LIDT (loads the IDT base)
    tlb_entries: int = 64
    tlb_ways: int = 4
    pause_latency: int = 10     # PAUSE, the spin-loop hint
    source: str = ""
    clflush_latency: int = 50   # CLFLUSH, besides its write-back (assumption: see README)
    wbinvd_latency: int = 2000  # WBINVD, plus memory.occupancy per dirty copy written back (assumption)


@dataclass(frozen=True)
class CacheOverride:
    """A core type's own geometry for one cache of the machine's list (found by ``name``).
    ``latency`` is in the core type's own cycles."""

    name: str
    size: int = 0
    ways: int = 0
    latency: int = 0
    source: str = ""


@dataclass(frozen=True)
class CoreType:
    """A kind of core: its own clock, its ``[core]`` costs (in its own cycles) and its own
    geometry for caches private to it or shared only within its package."""

    name: str
    clock_ghz: float
    core: CoreConfig = field(default_factory=CoreConfig)
    caches: tuple[CacheOverride, ...] = ()
    source: str = ""
    memory_latency: int = 0     # own cycles at the memory controller of its packages (0: memory.latency)


def clock_mhz(ghz: float) -> int:
    """A clock in whole MHz (core types need an exact ratio to the reference clock)."""
    return int(round(ghz * 1000))


@dataclass(frozen=True)
class ApicConfig:
    """Local APICs.  An IPI arrives ``ipi_latency`` cycles plus the interconnect's
    message latency after the ICR write."""

    mode: str = "xapic"         # xapic | x2apic: how software writes the ICR
    ipi_latency: int = 400
    icr_busy: int = 0           # cycles the local APIC takes to send one IPI message (ICR delivery status busy)
    multicast: str = "bus"      # bus: a multi-target IPI is one message; serial: one message per target
    source: str = ""
    # the APIC timer's input clock: one tick every timer_period_num / timer_period_den core cycles
    timer_period_num: int = 1
    timer_period_den: int = 1
    tsc_deadline: bool = True   # CPUID.01H:ECX[24]: the LVT timer's TSC-deadline mode and MSR 0x6E0 exist
    version: int = 0x00050014   # what the APIC version register (0x30) reads
    timer_source: str = ""


@dataclass(frozen=True)
class MachineConfig:
    name: str
    packages: int
    cores_per_package: int
    clock_ghz: float
    caches: tuple[CacheConfig, ...]
    coherence: CoherenceConfig = field(default_factory=CoherenceConfig)
    interconnect: InterconnectConfig = field(default_factory=InterconnectConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    apic: ApicConfig = field(default_factory=ApicConfig)
    description: str = ""
    sources: tuple[str, ...] = ()
    origin: str = "<config>"
    core_types: tuple[CoreType, ...] = ()     # [[core_type]]: none = every core is the [core] table
    package_types: tuple[str, ...] = ()       # core type name per package (needed with core_types)
    package_domains: tuple[int, ...] = ()     # coherence domain per package (empty: one domain)
    # fields the machine file left out, as "table.field" / "cache[i].field": each took its dataclass
    # default, a number nobody sourced for this machine (``mksim machines show`` marks them
    # "default (assumption)"); not part of equality: the same numbers are the same machine
    defaults: tuple[str, ...] = field(default=(), compare=False)

    @property
    def cores(self) -> int:
        return self.packages * self.cores_per_package

    @property
    def line(self) -> int:
        return self.caches[0].line

    def core_type(self, core: int) -> CoreType:
        """The type of ``core``: its package's type, or the implicit one built from [core] and clock_ghz."""
        if not self.package_types:
            return CoreType("default", self.clock_ghz, self.core)
        name = self.package_types[core // self.cores_per_package]
        return next(t for t in self.core_types if t.name == name)

    def clock_ratio(self, core: int) -> tuple[int, int]:
        """(num, den): one cycle of ``core`` is num/den ticks of the reference clock (reduced)."""
        a, b = clock_mhz(self.clock_ghz), clock_mhz(self.core_type(core).clock_ghz)
        if not self.package_types or a == b:
            return 1, 1
        g = math.gcd(a, b)
        return a // g, b // g

    def memory_latency(self, package: int) -> int:
        """Latency (ticks) at ``package``'s memory controller: its core type's own, converted once
        (rounded up), else ``memory.latency``."""
        core = package * self.cores_per_package
        lat = self.core_type(core).memory_latency
        if not lat:
            return self.memory.latency
        num, den = self.clock_ratio(core)
        return -(-lat * num // den)

    def own_cycles(self, core: int, ticks: int) -> int:
        """Reference ticks as whole cycles of ``core``'s own clock (rounded down)."""
        num, den = self.clock_ratio(core)
        return ticks * den // num

    def ns(self, ticks: int) -> float:
        """Reference ticks in nanoseconds."""
        return ticks / self.clock_ghz

    @property
    def ndomains(self) -> int:
        return max(self.package_domains, default=0) + 1

    def domain(self, core: int) -> int:
        """The coherence domain of ``core`` (0 when the machine declares none)."""
        return self.package_domains[core // self.cores_per_package] if self.package_domains else 0

    def cache_for(self, ci: int, core: int) -> CacheConfig:
        """Cache ``ci`` as ``core`` sees it: its type's override applied, latency in reference ticks
        (own cycles x num / den, rounded up, once per latency)."""
        c = self.caches[ci]
        if not self.package_types:
            return c
        o = next((x for x in self.core_type(core).caches if x.name == c.name), None)
        if o is None:
            return c
        num, den = self.clock_ratio(core)
        return replace(c, size=o.size or c.size, ways=o.ways or c.ways,
                       latency=-(-o.latency * num // den) if o.latency else c.latency,
                       source=o.source or c.source)

    def group_size(self, sharing: str) -> int:
        """Cores that share one instance of a cache with this sharing."""
        return {"private": 1, "pair": 2, "package": self.cores_per_package,
                "global": self.cores}[sharing]

    def validate(self) -> "MachineConfig":
        """Raise MksimError naming the file, field and value of the first problem."""
        w = self.origin

        def bad(fieldname: str, value, why: str):
            raise MksimError(f"{fieldname} = {value!r}: {why}", where=w)

        if not isinstance(self.packages, int) or self.packages < 1:
            bad("packages", self.packages, "must be an integer >= 1")
        if not isinstance(self.cores_per_package, int) or self.cores_per_package < 1:
            bad("cores_per_package", self.cores_per_package, "must be an integer >= 1")
        if self.cores > 4096:
            bad("packages", self.packages, f"{self.cores} cores; at most 4096 are supported")
        if not (isinstance(self.clock_ghz, (int, float)) and math.isfinite(self.clock_ghz) and self.clock_ghz > 0):
            bad("clock_ghz", self.clock_ghz, "must be a positive number")
        if not self.caches:
            bad("cache", [], "at least one cache level is required")
        seen_names = set()
        line = self.caches[0].line
        levels = sorted({c.level for c in self.caches})
        if levels != list(range(1, len(levels) + 1)):
            bad("cache.level", levels, "levels must be numbered 1, 2, ... without gaps")
        for i, c in enumerate(self.caches):
            p = f"cache[{i}] ({c.name})"
            for fname in ("size", "ways", "line", "latency", "level"):
                v = getattr(c, fname)
                if not isinstance(v, int) or isinstance(v, bool) or v < (0 if fname == "latency" else 1):
                    bad(f"{p}.{fname}", v, "must be a positive integer")
            if c.name in seen_names:
                bad(f"{p}.name", c.name, "duplicate cache name")
            seen_names.add(c.name)
            if not _pow2(c.line) or c.line < 8 or c.line > 4096:
                bad(f"{p}.line", c.line, "line size must be a power of two from 8 to 4096")
            if c.line != line:
                bad(f"{p}.line", c.line, f"all levels must use one line size ({line})")
            if c.size > 1 << 34:
                bad(f"{p}.size", c.size, "larger than 16 GiB; not a cache")
            if c.ways > 4096:
                bad(f"{p}.ways", c.ways, "at most 4096 ways")
            if c.level == 1 and c.sharing != "private":
                bad(f"{p}.sharing", c.sharing, "level 1 must be private to each core")
            if c.size % (c.ways * c.line):
                bad(f"{p}.size", c.size, f"not divisible by ways*line = {c.ways * c.line}")
            if not _pow2(c.sets):
                bad(f"{p}.size", c.size, f"gives {c.sets} sets; the number of sets must be a power of two")
            if c.sharing not in SHARING:
                bad(f"{p}.sharing", c.sharing, f"must be one of {', '.join(SHARING)}")
            if c.kind not in KINDS:
                bad(f"{p}.kind", c.kind, f"must be one of {', '.join(KINDS)}")
            if c.kind != "unified" and c.level != 1:
                bad(f"{p}.kind", c.kind, "only level 1 may be split into data and instruction caches")
            if c.inclusion not in INCLUSION:
                bad(f"{p}.inclusion", c.inclusion, f"must be one of {', '.join(INCLUSION)}")
            from hwmodel.replacement import POLICIES  # local: avoid import cycle
            if c.replacement not in POLICIES:
                bad(f"{p}.replacement", c.replacement, f"must be one of {', '.join(POLICIES)}")
            g = self.group_size(c.sharing)
            if self.cores % g:
                bad(f"{p}.sharing", c.sharing, f"{self.cores} cores do not divide into groups of {g}")
            if c.sharing == "pair" and self.cores_per_package % 2:
                bad(f"{p}.sharing", c.sharing, "pairs need an even number of cores per package")
        # per level: one unified cache, or a data and/or an instruction cache, one sharing
        for lv in levels:
            cs = [c for c in self.caches if c.level == lv]
            kinds = sorted(c.kind for c in cs)
            if kinds not in (["unified"], ["data"], ["data", "instruction"]):
                bad(f"cache (level {lv})", kinds, "a level is one unified cache, or a data cache plus an optional instruction cache")
            if len({c.sharing for c in cs}) != 1:
                bad(f"cache (level {lv}).sharing", [c.sharing for c in cs], "caches of one level must share alike")
        # a deeper level is no faster than the one above it
        for a_lv, b_lv in zip(levels, levels[1:]):
            above = max(c.latency for c in self.caches if c.level == a_lv)
            for c in self.caches:
                if c.level == b_lv and c.latency < above:
                    bad(f"cache ({c.name}).latency", c.latency, f"is below level {a_lv}'s latency {above}")
        # sharing must widen (or stay) with level
        order = [self.group_size(self._level_sharing(lv)) for lv in levels]
        for a, b in zip(order, order[1:]):
            if b < a or b % a:
                bad("cache.sharing", [self._level_sharing(lv) for lv in levels],
                    "each level must be shared by a multiple of the cores sharing the level above")
        if self.coherence.protocol not in PROTOCOLS:
            bad("coherence.protocol", self.coherence.protocol, f"must be one of {', '.join(PROTOCOLS)}")
        if not isinstance(self.coherence.home_occupancy, int) or self.coherence.home_occupancy < 0:
            bad("coherence.home_occupancy", self.coherence.home_occupancy, "must be a non-negative integer")
        if self.coherence.directory_latency < 0:
            bad("coherence.directory_latency", self.coherence.directory_latency, "must be >= 0")
        ic = self.interconnect
        if ic.topology not in TOPOLOGIES:
            bad("interconnect.topology", ic.topology, f"must be one of {', '.join(TOPOLOGIES)}")
        if ic.hop_latency < 0:
            bad("interconnect.hop_latency", ic.hop_latency, "must be >= 0")
        if ic.link_latency < 0:
            bad("interconnect.link_latency", ic.link_latency, "must be >= 0")
        if ic.width < 0:
            bad("interconnect.width", ic.width, "must be >= 0")
        if ic.topology == "ht-square" and self.packages != 4:
            bad("interconnect.topology", ic.topology, f"a HyperTransport square has 4 packages, not {self.packages}")
        if ic.topology == "twisted-ladder" and (self.packages < 4 or self.packages % 2):
            bad("interconnect.topology", ic.topology, f"a twisted ladder needs an even number >= 4 of packages, not {self.packages}")
        if ic.topology == "mesh2d":
            wdt = ic.width or int(round(self.packages ** 0.5))
            if wdt < 1 or self.packages % wdt:
                bad("interconnect.width", ic.width, f"{self.packages} packages do not form a mesh {wdt} wide")
        m = self.memory
        if m.latency < 0:
            bad("memory.latency", m.latency, "must be >= 0")
        if m.occupancy < 0:
            bad("memory.occupancy", m.occupancy, "must be >= 0")
        if not isinstance(m.size, int) or m.size < self.packages * 4096 or m.size % 4096 or m.size > 1 << 52:
            bad("memory.size", m.size, f"must be a multiple of 4096 between packages*4096 = {self.packages * 4096} and 2**52")
        if m.interleave not in INTERLEAVE:
            bad("memory.interleave", m.interleave, f"must be one of {', '.join(INTERLEAVE)}")
        for f in fields(CoreConfig):
            if f.name != "source":
                v = getattr(self.core, f.name)
                if not isinstance(v, int) or isinstance(v, bool) or v < (1 if f.name.startswith(("tlb", "issue")) else 0):
                    bad(f"core.{f.name}", v, "must be a non-negative integer" + (" >= 1" if f.name.startswith(("tlb", "issue")) else ""))
        if not _pow2(self.core.tlb_ways) or not _pow2(self.core.tlb_entries) or self.core.tlb_entries % self.core.tlb_ways:
            bad("core.tlb_entries", self.core.tlb_entries, f"entries and ways must be powers of two, ways ({self.core.tlb_ways}) dividing entries")
        if self.apic.mode not in APIC_MODES:
            bad("apic.mode", self.apic.mode, f"must be one of {', '.join(APIC_MODES)}")
        if not isinstance(self.apic.ipi_latency, int) or self.apic.ipi_latency < 0:
            bad("apic.ipi_latency", self.apic.ipi_latency, "must be a non-negative integer")
        for fname in ("timer_period_num", "timer_period_den"):
            v = getattr(self.apic, fname)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1024:
                bad(f"apic.{fname}", v, "must be an integer from 1 to 1024")
        if not isinstance(self.apic.tsc_deadline, bool):
            bad("apic.tsc_deadline", self.apic.tsc_deadline, "must be true or false")
        if not isinstance(self.apic.version, int) or isinstance(self.apic.version, bool) or not 0 <= self.apic.version < 1 << 32:
            bad("apic.version", self.apic.version, "must be a 32-bit register value")
        if not isinstance(self.apic.icr_busy, int) or isinstance(self.apic.icr_busy, bool) or self.apic.icr_busy < 0:
            bad("apic.icr_busy", self.apic.icr_busy, "must be a non-negative integer")
        if self.apic.multicast not in ("bus", "serial"):
            bad("apic.multicast", self.apic.multicast, "must be one of bus, serial")
        if self.apic.mode == "xapic" and self.cores > 255:
            bad("apic.mode", self.apic.mode, f"xAPIC ids are 8 bits (0..254 usable); {self.cores} cores need x2apic")
        self._validate_types_and_domains(bad)
        return self

    def _validate_types_and_domains(self, bad) -> None:
        """[[core_type]], package_types and package_domains (see README, 'Heterogeneous machines')."""
        names = [t.name for t in self.core_types]
        for i, t in enumerate(self.core_types):
            p = f"core_type[{i}] ({t.name})"
            if not t.name or names.count(t.name) > 1:
                bad(f"{p}.name", t.name, "core types need distinct, non-empty names")
            if not (isinstance(t.clock_ghz, (int, float)) and math.isfinite(t.clock_ghz) and t.clock_ghz > 0):
                bad(f"{p}.clock_ghz", t.clock_ghz, "must be a positive number")
            if abs(t.clock_ghz * 1000 - clock_mhz(t.clock_ghz)) > 1e-6 or clock_mhz(t.clock_ghz) < 1:
                bad(f"{p}.clock_ghz", t.clock_ghz, "must be a whole number of MHz")
            for f in fields(CoreConfig):
                if f.name != "source":
                    v = getattr(t.core, f.name)
                    lo = 1 if f.name.startswith(("tlb", "issue")) else 0
                    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                        bad(f"{p}.{f.name}", v, f"must be an integer >= {lo}")
            if not isinstance(t.memory_latency, int) or isinstance(t.memory_latency, bool) or t.memory_latency < 0:
                bad(f"{p}.memory_latency", t.memory_latency, "must be a non-negative integer (0: memory.latency)")
            if not _pow2(t.core.tlb_ways) or not _pow2(t.core.tlb_entries) or t.core.tlb_entries % t.core.tlb_ways:
                bad(f"{p}.tlb_entries", t.core.tlb_entries, "entries and ways must be powers of two, ways dividing entries")
            if t.core.tlb_entries != self.core.tlb_entries or t.core.tlb_ways != self.core.tlb_ways:
                bad(f"{p}.tlb_entries", t.core.tlb_entries, f"every core type has the [core] TLB ({self.core.tlb_entries} entries, {self.core.tlb_ways} ways)")
            for j, o in enumerate(t.caches):
                q = f"{p}.cache[{j}]"
                base = next((c for c in self.caches if c.name == o.name), None)
                if base is None:
                    bad(f"{q}.name", o.name, f"no cache of that name (known: {', '.join(c.name for c in self.caches)})")
                if base.sharing == "global":
                    bad(f"{q}.name", o.name, "a globally shared cache cannot differ per core type")
                for fname in ("size", "ways", "latency"):
                    v = getattr(o, fname)
                    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                        bad(f"{q}.{fname}", v, "must be a non-negative integer (0: keep the machine's value)")
                ov = replace(base, size=o.size or base.size, ways=o.ways or base.ways)
                if ov.size % (ov.ways * ov.line) or not _pow2(ov.sets):
                    bad(f"{q}.size", ov.size, f"with {ov.ways} ways of {ov.line} bytes the sets must be a power of two")
        if self.core_types and not self.package_types:
            bad("package_types", [], "core types are declared: name one for every package")
        if self.package_types:
            if len(self.package_types) != self.packages:
                bad("package_types", list(self.package_types), f"needs one core type per package ({self.packages})")
            for i, n in enumerate(self.package_types):
                if n not in names:
                    bad(f"package_types[{i}]", n, f"no such core type (known: {', '.join(names) or 'none'})")
            if abs(self.clock_ghz * 1000 - clock_mhz(self.clock_ghz)) > 1e-6:
                bad("clock_ghz", self.clock_ghz, "with core types the reference clock must be a whole number of MHz")
            levels = sorted({c.level for c in self.caches})
            for core in range(0, self.cores, self.cores_per_package):
                for a_lv, b_lv in zip(levels, levels[1:]):
                    above = max(self.cache_for(i, core).latency for i, c in enumerate(self.caches) if c.level == a_lv)
                    for i, c in enumerate(self.caches):
                        if c.level == b_lv and self.cache_for(i, core).latency < above:
                            bad(f"core_type ({self.core_type(core).name}).cache ({c.name}).latency",
                                self.cache_for(i, core).latency, f"in ticks is below level {a_lv}'s latency {above}")
        if self.package_domains:
            if len(self.package_domains) != self.packages:
                bad("package_domains", list(self.package_domains), f"needs one domain per package ({self.packages})")
            ds = sorted(set(self.package_domains))
            if ds != list(range(len(ds))) or not all(isinstance(d, int) and not isinstance(d, bool) for d in self.package_domains):
                bad("package_domains", list(self.package_domains), "domains are numbered 0, 1, ... without gaps")
            if len(ds) > 64:
                bad("package_domains", list(self.package_domains), "at most 64 domains")
            if len(ds) > 1:
                for c in self.caches:
                    if c.sharing == "global":
                        bad(f"cache ({c.name}).sharing", c.sharing, "a global cache would span coherence domains")

    def _level_sharing(self, lv: int) -> str:
        return next(c.sharing for c in self.caches if c.level == lv)


# ---------------------------------------------------------------- TOML loading

_TOP = {"name", "description", "packages", "cores_per_package", "clock_ghz", "sources",
        "cache", "coherence", "interconnect", "memory", "core", "apic", "core_type", "package_types",
        "package_domains"}


def _build(cls, table: dict, where: str, prefix: str):
    if not isinstance(table, dict):
        raise MksimError(f"{prefix} = {table!r}: must be a table", where=where)
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for k, v in table.items():
        if k not in names or k == "origin":
            raise MksimError(f"{prefix}.{k}: unknown field (known: {', '.join(sorted(n for n in names if n != 'origin'))})", where=where)
        want = names[k].type
        if want in ("int",) and (not isinstance(v, int) or isinstance(v, bool)):
            raise MksimError(f"{prefix}.{k} = {v!r}: must be an integer", where=where)
        if want in ("str",) and not isinstance(v, str):
            raise MksimError(f"{prefix}.{k} = {v!r}: must be a string", where=where)
        if want in ("bool",) and not isinstance(v, bool):
            raise MksimError(f"{prefix}.{k} = {v!r}: must be true or false", where=where)
        if want in ("float",) and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            raise MksimError(f"{prefix}.{k} = {v!r}: must be a number", where=where)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as e:  # missing required fields
        missing = [n for n, f in names.items() if n not in kwargs and n != "origin"
                   and f.default is MISSING and f.default_factory is MISSING]
        raise MksimError(f"{prefix}: missing field(s) {', '.join(missing) or str(e)}", where=where) from None


def _defaulted(cls, table: dict, prefix: str) -> list[str]:
    """``prefix.field`` for every field of ``cls`` (but its source) that ``table`` does not give."""
    return [f"{prefix}.{f.name}" for f in fields(cls)
            if f.name not in ("source", "origin") and f.name not in table
            and (f.default is not MISSING or f.default_factory is not MISSING)]


def machine_from_dict(d: dict, origin: str = "<dict>") -> MachineConfig:
    """Build and validate a MachineConfig from a parsed TOML document."""
    for k in d:
        if k not in _TOP:
            raise MksimError(f"{k}: unknown field (known: {', '.join(sorted(_TOP))})", where=origin)
    for k in ("name", "packages", "cores_per_package", "clock_ghz", "cache"):
        if k not in d:
            raise MksimError(f"missing field {k}", where=origin)
    caches = d["cache"]
    if not isinstance(caches, list):
        raise MksimError("cache: must be an array of tables ([[cache]])", where=origin)
    cs = tuple(_build(CacheConfig, c, origin, f"cache[{i}]") for i, c in enumerate(caches))
    for i, c in enumerate(cs):
        if not c.name or not isinstance(c.level, int):
            raise MksimError(f"cache[{i}]: needs name and level", where=origin)
    defaults = [x for i, c in enumerate(caches) for x in _defaulted(CacheConfig, c, f"cache[{i}]")]
    for key, cls in (("coherence", CoherenceConfig), ("interconnect", InterconnectConfig),
                     ("memory", MemoryConfig), ("core", CoreConfig), ("apic", ApicConfig)):
        t = d.get(key, {})
        defaults += _defaulted(cls, t if isinstance(t, dict) else {}, key)
    if not (isinstance(d.get("interconnect"), dict) and d["interconnect"].get("topology") == "mesh2d"):
        defaults.remove("interconnect.width") if "interconnect.width" in defaults else None  # unused
    top = {}
    for k, typ in (("name", str), ("description", str)):
        if k in d and not isinstance(d[k], typ):
            raise MksimError(f"{k} = {d[k]!r}: must be a string", where=origin)
    for k in ("packages", "cores_per_package"):
        if not isinstance(d[k], int) or isinstance(d[k], bool):
            raise MksimError(f"{k} = {d[k]!r}: must be an integer", where=origin)
    if not isinstance(d["clock_ghz"], (int, float)) or isinstance(d["clock_ghz"], bool):
        raise MksimError(f"clock_ghz = {d['clock_ghz']!r}: must be a number", where=origin)
    sources = d.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise MksimError(f"sources = {sources!r}: must be a list of strings", where=origin)
    core = _build(CoreConfig, d.get("core", {}), origin, "core")
    types = _core_types(d.get("core_type", []), core, origin)
    pt, pd = d.get("package_types", []), d.get("package_domains", [])
    if not isinstance(pt, list) or not all(isinstance(x, str) for x in pt):
        raise MksimError(f"package_types = {pt!r}: must be a list of core type names", where=origin)
    if not isinstance(pd, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in pd):
        raise MksimError(f"package_domains = {pd!r}: must be a list of integers", where=origin)
    cfg = MachineConfig(
        core_types=types, package_types=tuple(pt), package_domains=tuple(pd),
        name=d["name"], description=d.get("description", ""),
        packages=d["packages"], cores_per_package=d["cores_per_package"],
        clock_ghz=float(d["clock_ghz"]), caches=cs,
        coherence=_build(CoherenceConfig, d.get("coherence", {}), origin, "coherence"),
        interconnect=_build(InterconnectConfig, d.get("interconnect", {}), origin, "interconnect"),
        memory=_build(MemoryConfig, d.get("memory", {}), origin, "memory"),
        core=core,
        apic=_build(ApicConfig, d.get("apic", {}), origin, "apic"),
        sources=tuple(sources), origin=origin, defaults=tuple(defaults), **top)
    return cfg.validate()


def _core_types(tables, core: CoreConfig, origin: str) -> tuple[CoreType, ...]:
    """[[core_type]] tables: name, clock_ghz, source, any [core] field (default: the [core] value),
    and [[core_type.cache]] overrides."""
    if not isinstance(tables, list):
        raise MksimError("core_type: must be an array of tables ([[core_type]])", where=origin)
    out = []
    core_fields = {f.name for f in fields(CoreConfig)} - {"source"}
    for i, t in enumerate(tables):
        p = f"core_type[{i}]"
        if not isinstance(t, dict):
            raise MksimError(f"{p} = {t!r}: must be a table", where=origin)
        for k in t:
            if k not in core_fields | {"name", "clock_ghz", "source", "cache", "memory_latency"}:
                raise MksimError(f"{p}.{k}: unknown field (known: {', '.join(sorted(core_fields | {'name', 'clock_ghz', 'source', 'cache', 'memory_latency'}))})", where=origin)
        for k in ("name", "clock_ghz"):
            if k not in t:
                raise MksimError(f"{p}: missing field {k}", where=origin)
        if not isinstance(t["name"], str):
            raise MksimError(f"{p}.name = {t['name']!r}: must be a string", where=origin)
        if not isinstance(t["clock_ghz"], (int, float)) or isinstance(t["clock_ghz"], bool):
            raise MksimError(f"{p}.clock_ghz = {t['clock_ghz']!r}: must be a number", where=origin)
        own = _build(CoreConfig, {k: v for k, v in t.items() if k in core_fields}, origin, p)
        cc = replace(core, **{k: getattr(own, k) for k in t if k in core_fields}, source=t.get("source", ""))
        caches = t.get("cache", [])
        if not isinstance(caches, list):
            raise MksimError(f"{p}.cache: must be an array of tables ([[core_type.cache]])", where=origin)
        ovs = tuple(_build(CacheOverride, c, origin, f"{p}.cache[{j}]") for j, c in enumerate(caches))
        src = t.get("source", "")
        if not isinstance(src, str):
            raise MksimError(f"{p}.source = {src!r}: must be a string", where=origin)
        ml = t.get("memory_latency", 0)
        if not isinstance(ml, int) or isinstance(ml, bool):
            raise MksimError(f"{p}.memory_latency = {ml!r}: must be an integer", where=origin)
        out.append(CoreType(t["name"], float(t["clock_ghz"]), cc, ovs, src, ml))
    return tuple(out)


def load_machine(spec: str) -> MachineConfig:
    """A preset name (``amd-4x4``) or a path to a TOML file."""
    if spec.endswith(".toml") or os.sep in spec or "/" in spec:
        path = Path(spec)
    else:
        path = PRESET_DIR / f"{spec}.toml"
        if not path.exists():
            raise MksimError(f"unknown machine preset {spec!r} (known: {', '.join(preset_names())})")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MksimError(f"cannot read machine file: {e.__class__.__name__}: {getattr(e, 'strerror', None) or e}", where=str(path)) from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MksimError(f"invalid TOML: {e}", where=str(path)) from None
    return machine_from_dict(d, origin=str(path) if path.parent != PRESET_DIR else f"preset {path.stem}")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
