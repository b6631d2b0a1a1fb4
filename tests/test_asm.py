"""The structured layer (hwmodel/asm.py): generated code computes what the equivalent Python computes,
routines keep their calling convention, and the kernel idioms work across cores."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import asm, isa
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.workload import HALTED

OUT = 0x40000          # results: one 8-byte word each
STACK = 0x80000        # core c's stack top: STACK + 0x1000 * (c + 1)
MASK = (1 << 64) - 1


def run(k: asm.Kernel, cores=(0,), preset: str = "amd-4x4", max_ops: int = 2_000_000, setup=None) -> Machine:
    """Place the kernel's program once, start it on ``cores`` (each with its own stack), run it."""
    m = Machine(preset)
    w = m.workload()
    pl = w.place(k.program(), 0x100000)
    for c in cores:
        w.set_reg(c, "sp", STACK + 0x1000 * (c + 1))
        w.set_reg(c, "r1", c)
        w.start(c, pl.pc())
    if setup:
        setup(w)
    m.load_workload(w)
    assert m.execute(max_ops) == "done"
    assert all(int(m.cpu.state[c]) == HALTED for c in cores), m.fault_report()
    return m


def word(m: Machine, i: int) -> int:
    return int.from_bytes(m.read(OUT + 8 * i, 8), "little")


def py_cond(a: int, op: str, b: int) -> bool:
    def s(x):
        x &= MASK
        return x - (1 << 64) if x >> 63 else x
    ua, ub = a & MASK, b & MASK
    return {"==": a == b, "!=": a != b, "<": s(a) < s(b), "<=": s(a) <= s(b), ">": s(a) > s(b),
            ">=": s(a) >= s(b), "<u": ua < ub, "<=u": ua <= ub, ">u": ua > ub, ">=u": ua >= ub}[op]


values = st.one_of(st.integers(-5, 5), st.sampled_from([-(1 << 63), (1 << 63) - 2, 1 << 40]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(st.tuples(values, st.sampled_from(list(asm.CONDS)), values, st.booleans()),
                      min_size=1, max_size=12))
def test_if_else_computes_what_python_computes(cases):
    """Property: ``if_ a op b / else_`` (register or immediate b) takes the branch Python's comparison takes."""
    k = asm.Kernel("conds")
    a, b = k.local("a"), k.local("b")
    for i, (x, op, y, imm) in enumerate(cases):
        k.set(a, x)
        k.set(b, y)
        with k.if_(a, op, y if imm else b):
            k.store(OUT + 8 * i, 1)
        with k.else_():
            k.store(OUT + 8 * i, 2)
    k.halt()
    m = run(k)
    assert [word(m, i) for i in range(len(cases))] == [1 if py_cond(x, op, y) else 2 for x, op, y, _ in cases]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 25), skip=st.integers(2, 5), stop=st.integers(0, 400))
def test_loops_compute_what_python_computes(n, skip, stop):
    """Property: for_range with continue_ and break_if, a while_ and a nested if give Python's results."""
    k = asm.Kernel("loops")
    i, total, t = k.local("i"), k.local("total", 0), k.local("t")
    with k.for_range(i, 0, n):
        k.set(t, i)
        with k.while_(t, ">=", skip):           # t = i % skip by subtraction
            k.sub(t, t, skip)
        with k.if_(t, "==", 0):
            k.continue_()
        k.add(total, total, i)
        k.break_if(total, ">", stop)
    k.store(OUT, total)
    k.halt()
    expect = 0
    for j in range(n):
        if j % skip == 0:
            continue
        expect += j
        if expect > stop:
            break
    assert word(run(k), 0) == expect


def fact_kernel() -> asm.Kernel:
    k = asm.Kernel("fact")
    n, acc = k.local("n"), k.local("acc")

    @k.routine("fact", ["n"])
    def fact(k, n):
        with k.if_(n, "<=", 1):
            k.ret(1)
        m = k.local("m", n)                     # n is caller-saved: keep it in a local across the call
        k.sub(m, m, 1)
        r = k.call("fact", m)
        k.add(m, m, 1)
        k.mul(m, m, r)
        k.ret(m)

    @k.routine("sum3", ["a", "b", "c"])
    def sum3(k, a, b, c):
        s = k.local("s", a)
        k.add(s, s, b)
        k.add(s, s, c)
        k.ret(s)

    with k.for_range(n, 0, 8):
        k.set(acc, 1000)                        # a callee-saved local: survives the calls
        r = k.call("fact", n)
        t = k.local("t")
        k.shl(t, n, 3)
        k.add(t, t, OUT + 16)
        k.store(t, r, comment="fact(n)")
        k.free(t)
        r = k.call("sum3", acc, n, 7)
        k.store(OUT + 8, r)
    k.halt()
    return k


def test_recursive_routine_and_calling_convention():
    k = fact_kernel()
    m = run(k)
    assert [word(m, 2 + i) for i in range(8)] == [1, 1, 2, 6, 24, 120, 720, 5040]
    assert word(m, 1) == 1000 + 7 + 7
    assert int(m.cpu.regs[0, isa.SP]) == STACK + 0x1000          # every push popped
    assert m.prog_stats()[0]["stores"] >= 2 * sum(range(1, 8))   # return addresses and saved registers
    text = k.listing()
    assert text.count("\nfact:") == 1 and text.count("\nsum3:") == 1   # each routine placed once


def test_routine_saves_exactly_the_locals_it_uses():
    k = asm.Kernel("k")

    @k.routine("leaf", ["x"])
    def leaf(k, x):
        k.add(x, x, 1)
        k.ret(x)

    @k.routine("two", [])
    def two(k):
        a, b = k.local("a", 1), k.local("b", 2)
        k.add(a, a, b)
        k.ret(a)
    k.call("leaf", 1)
    k.call("two")
    k.halt()
    text = k.listing()
    leaf_code = text.split("leaf:")[1].split("two:")[0]
    assert "sp" not in leaf_code and leaf_code.strip().endswith("ret")
    two_code = text.split("two:")[1]
    assert "sub     sp, sp, 16" in two_code and two_code.count("store   [sp") == 2


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vals=st.lists(st.integers(-1000, 1000), min_size=8, max_size=8))
def test_callee_saved_locals_survive_calls(vals):
    """Property: every r8..r15 local of the caller holds its value after a call to a routine that uses
    all eight locals itself."""
    k = asm.Kernel("k")

    @k.routine("clobber", [])
    def clobber(k):
        ls = [k.local(f"x{i}", -7) for i in range(8)]
        k.add(ls[0], ls[0], ls[7])
        k.ret(ls[0])
    ls = [k.local(f"v{i}", v) for i, v in enumerate(vals)]
    k.call("clobber")
    for i, v in enumerate(ls):
        k.store(OUT + 8 * i, v)
    k.halt()
    m = run(k)
    assert [word(m, i) for i in range(8)] == [v & MASK for v in vals]


def test_errors_are_clear():
    k = asm.Kernel("k")
    for i in range(8):
        k.local(f"v{i}")
    with pytest.raises(MksimError, match="out of registers for local 'w'.*v0=r8"):
        k.local("w")
    k = asm.Kernel("k")

    def bad(k, x):
        k.call("bad", 1)
        k.add(x, x, 1)              # x (r1) was overwritten by the call's argument
    with pytest.raises(MksimError, match="argument 'x'.*overwritten by a later call"):
        k.routine("bad", ["x"], bad)
    k = asm.Kernel("k")
    with pytest.raises(MksimError, match="else_ must come right after"):
        with k.else_():
            pass
    k = asm.Kernel("k")
    k.routine("f", [], lambda k: k.ret(0))
    k.call("f")
    with pytest.raises(MksimError, match="must end with halt"):
        k.program()
    k = asm.Kernel("k")
    k.routine("g", ["a", "b"], lambda k, a, b: k.ret(a))
    with pytest.raises(MksimError, match="1 arguments, the routine takes 2"):
        k.call("g", 1)
    k = asm.Kernel("k")
    a, b = k.local("a"), k.local("b")
    with pytest.raises(MksimError, match="condition"):
        with k.if_(a, "=<", b):
            pass
    with pytest.raises(MksimError, match="outside a loop"):
        k.break_()


def counter_kernel(iters: int, locked: bool, wait: str = "pause") -> asm.Kernel:
    """Each core adds 1 to a shared counter ``iters`` times by a plain load / add / store."""
    lock, counter = 0x50000, 0x51000
    k = asm.Kernel("counter")
    i, v = k.local("i"), k.local("v")
    with k.for_range(i, 0, iters):
        if locked:
            asm.ticket_lock(k, lock, wait)
        k.load(v, counter)
        k.compute(20)                           # the window a lost update needs
        k.add(v, v, 1)
        k.store(counter, v)
        if locked:
            asm.ticket_unlock(k, lock)
        k.compute(37)
    k.halt()
    return k


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ncores=st.integers(2, 8), iters=st.integers(1, 12), wait=st.sampled_from(["pause", "spin"]))
def test_ticket_lock_gives_mutual_exclusion(ncores, iters, wait):
    """Property: N cores incrementing a shared counter under the ticket lock end at exactly N * k."""
    m = run(counter_kernel(iters, True, wait), cores=range(0, 2 * ncores, 2))
    assert int.from_bytes(m.read(0x51000, 8), "little") == ncores * iters
    assert int.from_bytes(m.read(0x50000, 8), "little") == ncores * iters      # tickets taken
    assert int.from_bytes(m.read(0x50008, 8), "little") == ncores * iters      # and served


def test_without_the_lock_updates_are_lost():
    """The control for the property above: the same code without the lock loses increments."""
    m = run(counter_kernel(10, False), cores=range(8))
    assert int.from_bytes(m.read(0x51000, 8), "little") < 80


def test_atomic_add_counts_every_core():
    k = asm.Kernel("k")
    i = k.local("i")
    with k.for_range(i, 0, 10):
        asm.atomic_add(k, 0x52000, 3)
    k.halt()
    m = run(k, cores=range(6))
    assert int.from_bytes(m.read(0x52000, 8), "little") == 6 * 10 * 3


@pytest.mark.parametrize("slots,n", [(4, 11), (1, 3), (8, 8)])
def test_ring_send_recv_delivers_in_order(slots, n):
    """Core 0 sends 1..n through a ring of ``slots``, core 2 receives them (register-based ring address)
    and records each one: every message arrives once and in order, through a full ring."""
    ring = 0x60000
    k = asm.Kernel("ring")
    me, i, r, v = k.local("me", "r1"), k.local("i"), k.local("ring", ring), k.local("v")
    with k.if_(me, "==", 0):
        with k.for_range(i, 1, n + 1):
            asm.ring_send(k, r, i, slots)
    with k.else_():
        with k.for_range(i, 0, n):
            asm.ring_recv(k, r, v, slots)
            k.shl(me, i, 3)
            k.add(me, me, OUT)
            k.store(me, v)
    k.halt()
    m = run(k, cores=(0, 2))
    assert [word(m, j) for j in range(n)] == list(range(1, n + 1))


def spinlock_listing() -> str:
    """The README's example: a ticket lock around a shared counter increment."""
    k = asm.Kernel("locked_inc")
    asm.ticket_lock(k, 0x50000)
    asm.atomic_add(k, 0x51000, 1)
    asm.ticket_unlock(k, 0x50000)
    k.halt()
    return k.listing()


def test_readme_shows_the_generated_spinlock():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"<!-- spinlock listing -->\n```\n(.*?)```", readme, re.S)
    assert block, "README lacks the spinlock listing"
    assert block.group(1).rstrip("\n") == spinlock_listing()
