"""CALL / RET / JMPR / CALLR / RDMSR / PAUSE: engine against reference on generated programs, and unit and
property tests of the rules in cpu_spec.md ('Calls and the stack', 'RDMSR')."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.config import load_machine
from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.workload import (FK_BAD_MSR, FK_NO_CODE, FK_PARTITION, FAULTED, HALTED, S_LOADS, S_STORES,
                              Workload)
from tests.harness import DATA_PAGES, cpu_machines
from tests.test_cpu_vs_reference import run_both

STACKS = DATA_PAGES[3]            # 0x13000: the stacks live in this page (and grow into the one below)
TABLE = DATA_PAGES[1]             # 0x11000: a dispatch table of code addresses
MSRS = (0x10, 0x1B, 0x802, 0x803, 0x80D, 0x80E, 0x810, 0x813, 0x820, 0x823, 0x828, 0x830, 0x831, 0x808, 0x839, 0x6E0, 0x1234)
VECTORS = (0x31, 0x62)


# ---------------------------------------------------------------- generated programs

@st.composite
def call_workloads(draw, cfg):
    """Cores running programs full of calls: nested and recursive routines placed once, calls through a
    dispatch table to a second placed program, forward JMPRs, RDMSR of known and unknown MSRs, PAUSE,
    IPIs whose handlers read ISR, stacks that are private, shared, misaligned, on a page boundary or in
    another kernel's partition, and stray RETs."""
    x2 = cfg.apic.mode == "x2apic"
    ncores = cfg.cores
    w = Workload(ncores)
    words = [DATA_PAGES[0] + 8 * i for i in range(4)]
    nlib = draw(st.integers(1, 3))

    def body(p: isa.Program, n: int, where: str, depth: int = 0):
        for _ in range(n):
            k = draw(st.sampled_from(["load", "store", "fadd", "alu", "compute", "pause", "rdmsr", "call",
                                      "callr", "jmpr", "rec", "ipi", "save", "badret", "sp"]))
            reg = f"r{draw(st.integers(1, 3))}"
            if k == "load":
                p.load(reg, draw(st.sampled_from(words)))
            elif k == "store":
                p.store(draw(st.sampled_from(words)), draw(st.one_of(st.integers(-3, 3), st.just(reg))))
            elif k == "fadd":
                p.fadd(reg, draw(st.sampled_from(words)), 1)
            elif k == "alu":
                p.add(reg, reg, draw(st.integers(-5, 5)))
            elif k == "compute":
                p.compute(draw(st.integers(0, 30)))
            elif k == "pause":
                p.pause()
            elif k == "rdmsr":       # mostly MSRs this APIC mode has: a BAD_MSR stops the core
                ok = [m for m in MSRS if x2 and m != 0x1234 or m in (0x10, 0x1B)]
                p.rdmsr(reg, draw(st.sampled_from(MSRS if draw(st.integers(0, 5)) == 0 else ok)))
            elif k == "call" and where not in ("f0", "lib"):
                # main calls any routine, routine fi calls only fj with j < i: no unbounded recursion
                top = nlib if where == "main" else int(where[1:])
                p.call(f"f{draw(st.integers(0, top - 1))}")
            elif k == "callr" and where == "main":
                p.load("r5", TABLE + 8 * draw(st.integers(0, 2)))     # entry 2 holds no code address
                p.callr("r5")
            elif k == "jmpr" and depth < 2:
                lab = f"j{len(p.ops)}_{where}"
                p.code_addr("r5", lab)
                p.jmpr("r5")
                body(p, draw(st.integers(0, 2)), where, depth + 1)
                p.label(lab)
            elif k == "rec" and where == "main":
                p.movi("r4", draw(st.integers(0, 4)))
                p.call("rec")
            elif k == "ipi":
                p.ipi(draw(st.integers(0, ncores - 1)), draw(st.sampled_from(VECTORS)), x2apic=x2)
                p.sti()
            elif k == "save" and where != "main":
                p.sub("sp", "sp", 16).store(0, reg, base="sp").store(8, "r4", base="sp")
                p.compute(draw(st.integers(0, 5)))
                p.load(reg, 0, base="sp").load("r4", 8, base="sp").add("sp", "sp", 16)
            elif k == "badret" and draw(st.integers(0, 5)) == 0:
                p.ret()                                  # pops whatever lies on the stack
            elif k == "sp" and draw(st.integers(0, 3)) == 0:
                p.add("sp", "sp", draw(st.sampled_from([-3, 4, 8])))

    prog = isa.Program("kernel")
    for c in range(ncores):               # a loop: the second pass finds code and stack lines cached
        prog.label(f"main{c}")
        prog.movi("r9", draw(st.integers(1, 3)))
        prog.label(f"top{c}")
        body(prog, draw(st.integers(1, 12)), "main")
        prog.sub("r9", "r9", 1).br("ne", "r9", 0, f"top{c}")
        prog.halt()
    for i in range(nlib):
        prog.label(f"f{i}")
        body(prog, draw(st.integers(0, 5)), f"f{i}")
        prog.ret()
    prog.label("rec")                                    # recursion r4 deep
    prog.sub("r4", "r4", 1)
    prog.br("lt", "r4", 1, "rec_end")
    prog.call("rec")
    prog.label("rec_end")
    prog.ret()
    lib = isa.Program("lib")                             # reached only through the dispatch table
    for i in range(2):
        lib.label(f"g{i}")
        body(lib, draw(st.integers(0, 3)), "lib")
        lib.ret()
    placed = w.place(prog, 0x100000)
    pl = w.place(lib, 0x180000)
    w.write(TABLE, b"".join(pl.code_addr(f"g{i}").to_bytes(8, "little") for i in range(2))
            + (0x180002).to_bytes(8, "little"))
    handler = isa.Program("handler")
    handler.rdmsr("r6", 0x810 + (VECTORS[0] >> 5)).mark(1, "r6").eoi(x2apic=x2).iret()
    hp = w.place(handler, 0x190000)
    for core in range(ncores):
        for v in VECTORS:
            w.set_handler(core, v, hp.pc())
    kind = draw(st.sampled_from(["private", "private", "shared", "boundary", "misaligned"]))
    nstart = draw(st.integers(1, ncores))
    for i, core in enumerate(draw(st.permutations(range(ncores)))[:nstart]):
        top = {"private": STACKS + 0x200 * (i + 1), "shared": STACKS + 0x800, "boundary": STACKS,
               "misaligned": STACKS + 0x200 * (i + 1) - draw(st.integers(1, 7))}[kind]
        w.set_reg(core, "sp", top)
        w.start(core, placed.pc(f"main{core}"), at=draw(st.integers(0, 20)))
        words += [top - 8, top - 16, top - 24]
    if draw(st.integers(0, 3)) == 0:                     # the stacks belong to another kernel
        w.partition(1, STACKS - 0x1000, STACKS + 0x1000)
        w.partition(0, 0x100000, 0x200000)
        w.partition(0, DATA_PAGES[0], DATA_PAGES[0] + 0x2000)
        for core in range(ncores):
            w.assign(core, 0)
    return w, words


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_engine_matches_reference_on_programs_with_calls(data):
    cfg = data.draw(cpu_machines())
    cfg = replace(cfg, core=replace(cfg.core, pause_latency=data.draw(st.integers(0, 150)))).validate()
    w, words = data.draw(call_workloads(cfg))
    run_both(cfg, w, words)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_calls_in_flight_resume_exactly(data):
    """Stopping and resuming the run (calls and returns in flight included) changes nothing."""
    cfg = data.draw(cpu_machines())
    w, words = data.draw(call_workloads(cfg))
    run_both(cfg, w, words, data.draw(st.lists(st.integers(0, 30), min_size=1, max_size=6)))


# ---------------------------------------------------------------- unit tests

def machine(mode: str = "xapic", preset: str = "amd-2x2"):
    cfg = load_machine(preset)
    return replace(cfg, apic=replace(cfg.apic, mode=mode)).validate()


def run(cfg, prog: isa.Program, sp: int = 0x20000, at: int = 0x100000, core: int = 0, setup=None,
        both: bool = True):
    """Run ``prog`` on one core in the engine and (``both``) the reference, held identical; the engine
    Machine.  The properties run the engine only: the generated programs above hold it to the reference."""
    w = Workload(cfg.cores)
    pl = w.place(prog, at)
    w.set_reg(core, "sp", sp)
    w.start(core, pl.pc())
    if setup:
        setup(w, pl)
    if both:
        return run_both(cfg, w, [sp - 8 * i for i in range(1, 6)]), pl
    m = Machine(cfg)
    m.load_workload(w)
    assert m.execute() == "done"
    return m, pl


def test_call_pushes_the_return_address_and_ret_pops_it():
    p = isa.Program("p")
    p.call("f").label("back").halt()
    p.label("f").call("g").ret()
    p.label("g").mark(7, "sp").ret()
    m, pl = run(machine(), p)
    assert m.read(0x20000 - 8, 8) == pl.code_addr("back").to_bytes(8, "little")     # op after the call
    assert m.read(0x20000 - 16, 8) == (pl.code_addr("f") + 4).to_bytes(8, "little")
    assert [int(x) for x in m.timeline()[0][2:]] == [7, 0x20000 - 16]                # sp inside g
    assert int(m.cpu.regs[0, isa.SP]) == 0x20000
    assert int(m.cpu.state[0]) == HALTED
    st_ = m.prog_stats()[0]
    assert (st_["stores"], st_["loads"]) == (2, 2)


def test_recursion_leaves_one_return_address_per_level():
    p = isa.Program("p")
    p.movi("r1", 4).call("rec").halt()
    p.label("rec").sub("r1", "r1", 1).br("eq", "r1", 0, "out").call("rec").label("out").mark(1, "sp").ret()
    m, pl = run(machine(), p)
    ret_addr = pl.code_addr("out")          # the op after the recursive call
    assert [int.from_bytes(m.read(0x20000 - 8 * i, 8), "little") for i in range(1, 5)] == \
        [pl.code_addr(2)] + [ret_addr] * 3
    assert int(m.timeline()[0][3]) == 0x20000 - 32
    assert int(m.cpu.regs[0, isa.SP]) == 0x20000


def test_a_routine_called_from_two_places_is_fetched_once():
    """One copy of the routine in memory: its I-lines miss once; an inlined copy misses again."""
    def lines(prog, at):
        return {(at + 4 * i) >> 6 for i in range(len(prog))}
    body = [("compute", 1)] * 40                     # 160 bytes: three I-lines
    shared = isa.Program("shared")
    shared.call("f").call("f").halt()
    shared.label("f")
    for _ in body:
        shared.compute(1)
    shared.ret()
    inlined = isa.Program("inlined")
    for _ in range(2):
        for _ in body:
            inlined.compute(1)
    inlined.halt()
    cfg = machine()
    m1, _ = run(cfg, shared)
    m2, _ = run(cfg, inlined)
    miss1 = m1.stats()["cores"][0]["caches"]["L1I"]["misses"]
    miss2 = m2.stats()["cores"][0]["caches"]["L1I"]["misses"]
    assert miss1 == len(lines(shared, 0x100000))
    assert miss2 == len(lines(inlined, 0x100000))
    assert miss1 < miss2


def test_a_push_into_another_kernels_partition_faults_and_changes_nothing():
    p = isa.Program("p")
    p.call("f").halt()
    p.label("f").ret()

    def setup(w, pl):
        w.partition(0, 0x100000, 0x101000)
        w.partition(1, 0x1F000, 0x20000)          # the stack page belongs to kernel 1
        w.assign(0, 0)
    m, _ = run(machine(), p, setup=setup)
    f = m.faults()[0]
    assert (int(f[1]), int(f[2]), int(f[3]), int(f[4])) == (0, 0x20000 - 8, FK_PARTITION, 1)
    assert int(m.cpu.state[0]) == FAULTED
    assert int(m.cpu.regs[0, isa.SP]) == 0x20000
    assert m.read(0x20000 - 8, 8) == bytes(8)


def test_ret_to_an_address_with_no_code_faults():
    p = isa.Program("p")
    p.store(0x20000, 0x100002).ret().halt()        # not 4-byte aligned: no op sits there
    m, _ = run(machine(), p, sp=0x20000)
    f = m.faults()[0]
    assert (int(f[1]), int(f[2]), int(f[3])) == (1, 0x100002, FK_NO_CODE)
    assert int(m.cpu.state[0]) == FAULTED
    assert int(m.cpu.regs[0, isa.SP]) == 0x20000     # sp unchanged by a faulting RET


def test_callr_and_jmpr_through_a_dispatch_table():
    p = isa.Program("p")
    p.movi("r2", 1)
    p.load("r1", 0x30000 + 8).callr("r1")            # handler 1
    p.load("r1", 0x30000).callr("r1")                # handler 0
    p.code_addr("r3", "skip").jmpr("r3").mark(9).label("skip")
    p.load("r1", 0x30000 + 16).callr("r1")           # no code there: NO_CODE, nothing pushed
    p.halt()
    p.label("h0").mark(0, "r2").ret()
    p.label("h1").add("r2", "r2", 10).mark(1, "r2").ret()

    def setup(w, pl):
        w.write(0x30000, b"".join(a.to_bytes(8, "little") for a in
                                  (pl.code_addr("h0"), pl.code_addr("h1"), 0x5000)))
    m, pl = run(machine(), p, setup=setup)
    assert [(int(r[2]), int(r[3])) for r in m.timeline()] == [(1, 11), (0, 11)]     # mark 9 skipped
    f = m.faults()[0]
    assert (int(f[2]), int(f[3])) == (0x5000, FK_NO_CODE)
    assert int(m.cpu.regs[0, isa.SP]) == 0x20000
    assert m.prog_stats()[0]["stores"] == 2


def test_misaligned_stack_straddles_lines_and_still_returns():
    p = isa.Program("p")
    p.call("f").halt()
    p.label("f").ret()
    m, pl = run(machine(), p, sp=0x20000 + 0x40 + 3)          # push at 0x2003B..0x20042: two lines
    assert int(m.cpu.state[0]) == HALTED
    assert m.read(0x2003B, 8) == pl.code_addr(1).to_bytes(8, "little")


def test_rdmsr_table_in_both_apic_modes():
    p = isa.Program("p")
    p.rdtsc("r1").rdmsr("r2", 0x10).rdmsr("r3", 0x1B)
    p.wrmsr(0x830, (5 << 32) | 0x4031)                        # x2APIC only: ICR
    p.rdmsr("r4", 0x802).rdmsr("r5", 0x803).rdmsr("r6", 0x830).halt()
    cfg = machine("x2apic")
    m, _ = run(cfg, p, core=1)
    r = [int(x) for x in m.cpu.regs[1]]
    assert r[2] == r[1] + cfg.core.rdtsc_latency                # TSC: the cycle, as RDTSC
    assert r[3] == 0xFEE00000 | 1 << 11 | 1 << 10             # EN, EXTD; core 1 is no BSP
    assert (r[4], r[5], r[6]) == (1, cfg.apic.version, (5 << 32) | 0x4031)   # version: the preset's
    q = isa.Program("q")
    q.rdmsr("r3", 0x1B).rdmsr("r4", 0x802).halt()
    m, _ = run(machine("xapic"), q)
    assert int(m.cpu.regs[0, 3]) == 0xFEE00000 | 1 << 11 | 1 << 8    # BSP on core 0, no EXTD
    f = m.faults()[0]
    assert (int(f[2]), int(f[3])) == (0x802, FK_BAD_MSR)               # x2APIC MSR in xAPIC mode


def test_rdmsr_reads_isr_inside_a_handler_and_irr_while_blocked():
    """A self-IPI with interrupts off sits in IRR; in its handler it is in ISR."""
    v = 0x45
    p = isa.Program("p")
    p.setvec(v, "h").ipi(0, v, shorthand="self", x2apic=True).compute(2000)
    p.rdmsr("r1", 0x820 + (v >> 5)).sti().nop().halt()
    p.label("h").rdmsr("r2", 0x810 + (v >> 5)).eoi(x2apic=True).rdmsr("r3", 0x810 + (v >> 5)).iret()
    m, _ = run(machine("x2apic"), p)
    r = [int(x) for x in m.cpu.regs[0]]
    assert (r[1], r[2], r[3]) == (1 << (v & 31), 1 << (v & 31), 0)


@settings(max_examples=30, deadline=None)
@given(msr=st.one_of(st.sampled_from(MSRS), st.integers(0, 0xFFFFFFFF)), x2=st.booleans())
def test_rdmsr_reads_exactly_the_table(msr, x2):
    """Property: an MSR in the table (x2APIC rows in x2APIC mode only) reads; any other faults BAD_MSR."""
    from hwmodel.reference_cpu import readable_msr
    p = isa.Program("p")
    p.rdmsr("r1", msr).halt()
    m, _ = run(machine("x2apic" if x2 else "xapic"), p, both=False)
    cfg = machine("x2apic" if x2 else "xapic")
    readable = readable_msr(msr, x2, cfg.apic.tsc_deadline)
    assert (int(m.cpu.state[0]) == HALTED) == readable
    if not readable:
        assert (int(m.faults()[0][2]), int(m.faults()[0][3])) == (msr, FK_BAD_MSR)


@settings(max_examples=20, deadline=None)
@given(lat=st.integers(0, 200), n=st.integers(1, 6))
def test_pause_costs_pause_latency(lat, n):
    """Property: n PAUSEs between two RDTSCs add n * pause_latency."""
    cfg = machine()
    cfg = replace(cfg, core=replace(cfg.core, pause_latency=lat)).validate()
    p = isa.Program("p")
    p.rdtsc("r1")
    for _ in range(n):
        p.pause()
    p.rdtsc("r2").halt()
    q = isa.Program("q")
    q.rdtsc("r1").rdtsc("r2").halt()
    m, _ = run(cfg, p, both=False)
    m0, _ = run(cfg, q, both=False)
    d = int(m.cpu.regs[0, 2] - m.cpu.regs[0, 1])
    d0 = int(m0.cpu.regs[0, 2] - m0.cpu.regs[0, 1])
    assert d - d0 == n * lat


@settings(max_examples=20, deadline=None)
@given(depth=st.integers(1, 8), misalign=st.integers(0, 7))
def test_call_depth_property(depth, misalign):
    """Property: a recursion d deep writes d return addresses below sp and comes back to the same sp,
    whatever sp's alignment; the stack accesses are counted as stores and loads."""
    p = isa.Program("p")
    p.movi("r1", depth).call("rec").halt()
    p.label("rec").sub("r1", "r1", 1).br("eq", "r1", 0, "out").call("rec").label("out").ret()
    sp = 0x20000 + misalign
    m, pl = run(machine(), p, sp=sp, both=False)
    assert int(m.cpu.regs[0, isa.SP]) == sp and int(m.cpu.state[0]) == HALTED
    addrs = [int.from_bytes(m.read(sp - 8 * i, 8), "little") for i in range(1, depth + 1)]
    assert addrs == [pl.code_addr(2)] + [pl.code_addr("out")] * (depth - 1)
    assert m.cpu.pst[0, S_STORES] == depth and m.cpu.pst[0, S_LOADS] == depth


def test_a_push_that_misses_is_timed_like_a_store_that_misses():
    """CALL's push goes through the same memory path as STORE: same clock, same cache state."""
    cfg = machine()
    a = isa.Program("a")
    a.call("f").label("f").halt()
    b = isa.Program("b")
    b.store(0x20000 - 8, 0x100004).label("f").halt()        # the same bytes to the same place
    ma, _ = run(cfg, a)
    mb, _ = run(cfg, b)
    assert int(ma.state.clock[0]) == int(mb.state.clock[0])
    assert ma.cache_contents() == mb.cache_contents()


def test_sp_is_register_16_and_builder_names():
    assert isa._reg("sp") == isa.SP == 16 and isa._reg("r16") == 16 and isa.NREGS == 17
    with pytest.raises(Exception):
        isa._reg("r17")
    r = ReferenceCpu(machine())
    assert len(r.regs[0]) == 17
