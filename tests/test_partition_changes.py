"""Run-time partition changes (PART, ASSIGN): the supervisor-only operations the engine checks.

Properties: the table never gives an address two owners and follows its rule op by op; a core changes
kernel only while it is stopped (no core runs in two kernels); no access escapes a shrunk partition;
only the supervisor's cores may change anything.  The engine and the reference agree on all of it
(also in the generated programs of test_cpu_vs_reference.py)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.workload import FAULT_NAMES, FK_PRIVILEGE, FK_REPART, Workload

CFG = load_machine("amd-2x2")
SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAGE = 0x1000
BASE = 0x400000                 # the pages the tests hand around
SKIPS = 0x9000                  # the skip handler's fault counter
EV_BEFORE, EV_AFTER, EV_STORE = 1, 2, 3


def skip_handler() -> isa.Program:
    """#GP handler that counts the fault and resumes at the code address in r5 (the op after the faulting
    one), so one run can try many changes; the return stack holds at most 16, so at most 12 faults."""
    h = isa.Program("skip")
    h.fadd("r6", SKIPS, 1)
    h.jmpr("r5")
    return h


def run(w: Workload) -> Machine:
    """Run w in the engine and the reference; they must agree; the engine's machine."""
    m = Machine(CFG)
    m.load_workload(w)
    status = m.execute(20_000)
    r = ReferenceCpu(CFG)
    r.load_workload(w)
    assert r.execute(20_000) == status
    assert m.partitions() == r.partitions()
    assert m.kernels() == r.kernels()
    assert [tuple(int(x) for x in f) for f in m.faults()] == [tuple(f) for f in r.faults()]
    assert m.state.clock.tolist() == list(r.clock)
    return m


def supervisor_setup(w: Workload) -> None:
    w.supervise(0)
    w.assign(0, 0)
    w.grant(0, SKIPS, SKIPS + PAGE)          # not a slot: PART cannot take the counter away


def fold(table: list[tuple[int, int, int]], slot: int, lo: int, hi: int, owner: int):
    """The rule of cpu_spec.md, 'Partition changes': the new table, or None if PART faults."""
    ok = 0 <= slot < len(table) and 0 <= lo <= hi <= 1 << 52 and lo % PAGE == 0 and hi % PAGE == 0 and owner >= -1
    if not ok or any(j != slot and a < hi and lo < b for j, (a, b, _) in enumerate(table) if lo < hi):
        return None
    new = list(table)
    new[slot] = (lo, hi, owner) if lo < hi else (0, 0, -1)
    return new


changes = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8), st.integers(-1, 8),
                             st.sampled_from([-2, -1, 0, 1, 2]), st.sampled_from([0, 0, 0, 0x800])),
                   min_size=1, max_size=10)


@settings(**SETTINGS)
@given(initial=st.lists(st.integers(0, 2), min_size=0, max_size=3), spare=st.integers(0, 2), ops=changes)
def test_the_table_follows_its_rule_and_no_address_has_two_owners(initial, spare, ops):
    w = Workload(CFG.cores)
    supervisor_setup(w)
    for i, owner in enumerate(initial):
        w.partition(owner, BASE + 2 * i * PAGE, BASE + (2 * i + 1) * PAGE)
    w.reserve_partitions(spare)
    p = isa.Program("supervisor")
    expect, faults = list(w.regions), 0
    for i, (slot, lo_page, npages, owner, skew) in enumerate(ops):
        lo, hi = BASE + lo_page * PAGE + skew, BASE + (lo_page + npages) * PAGE
        p.code_addr("r5", f"next{i}")
        p.part(slot, lo, hi, owner)
        p.label(f"next{i}")
        new = fold(expect, slot, lo, hi, owner)
        faults += new is None
        expect = expect if new is None else new
    p.halt()
    w.set_handler(0, 13, w.place(skip_handler(), 0x20000).pc())
    w.start(0, w.place(p, 0x10000).pc())
    m = run(w)
    assert m.partitions() == expect
    kinds = [FAULT_NAMES[int(f[3])] for f in m.faults()]
    assert kinds == ["repartition"] * faults
    live = [(a, b) for a, b, _ in m.partitions() if a < b]
    assert all(b1 <= a2 or b2 <= a1 for i, (a1, b1) in enumerate(live) for a2, b2 in live[i + 1:])


@settings(**SETTINGS)
@given(work=st.integers(0, 3000), wait=st.integers(0, 3000), second=st.booleans())
def test_a_core_changes_kernel_only_while_stopped(work, wait, second):
    """Core 1 (kernel 1) works, then halts; the supervisor tries to move it to kernel 2 after a while
    (and again once more on request).  Moved => it had halted; refused => it was still running."""
    w = Workload(CFG.cores)
    supervisor_setup(w)
    w.assign(1, 1)
    p = isa.Program("supervisor")
    p.compute(wait)
    for i in range(2 if second else 1):
        p.mark(EV_BEFORE, i)
        p.code_addr("r5", f"next{i}")
        p.assign(1, 2 + i)
        p.label(f"next{i}")
        p.mark(EV_AFTER, i)
        p.compute(wait)
    p.halt()
    q = isa.Program("worker")
    q.compute(work)
    q.halt()
    w.set_handler(0, 13, w.place(skip_handler(), 0x20000).pc())
    w.start(0, w.place(p, 0x10000).pc())
    w.start(1, w.place(q, 0x30000).pc())
    m = run(w)
    halted_at = int(m.state.clock[1])          # HALT costs nothing: the core's clock is its HALT's time
    tl = m.timeline()
    refused = [f for f in m.faults() if int(f[3]) == FK_REPART]
    for f in refused:
        assert int(f[0]) == 0 and int(f[2]) == 1 and int(f[4]) == 1    # the core, and its kernel then
        assert int(f[5]) <= halted_at
    after = [int(t) for c, t, ev, _ in tl if ev == EV_AFTER]
    moved = (2 + len(after) - 1) if len(refused) == 0 else None
    if not refused:
        assert m.kernels()[1] == moved and after[0] >= halted_at
    elif len(refused) == len(after):
        assert m.kernels()[1] == 1
    else:                                      # refused first, moved second
        assert m.kernels()[1] == 3 and after[1] >= halted_at


@settings(**SETTINGS)
@given(npages=st.integers(2, 6), keep=st.integers(1, 5), stores=st.lists(st.integers(0, 5), min_size=1,
       max_size=14), wait=st.integers(0, 2500), gap=st.integers(0, 300))
def test_no_access_escapes_a_shrunk_partition(npages, keep, stores, wait, gap):
    """Kernel 1's core stores to its partition while the supervisor shrinks it to ``keep`` pages and
    takes the rest.  A store lands in the removed pages only if it was issued before the change; the
    first store after it to a removed page faults ``partition`` (owner: nobody, or the supervisor once it
    took the range) and stops the
    core; every earlier store landed."""
    keep = min(keep, npages - 1)
    lo, cut, hi = BASE, BASE + keep * PAGE, BASE + npages * PAGE
    w = Workload(CFG.cores)
    supervisor_setup(w)
    w.assign(1, 1)
    w.partition(1, lo, hi)
    slot = len(w.regions) - 1
    spare = w.reserve_partitions(1)[0]
    p = isa.Program("supervisor")
    p.compute(wait)
    p.mark(EV_BEFORE)
    p.part(slot, lo, cut, 1)
    p.part(spare, cut, hi, 0)
    p.mark(EV_AFTER)
    p.halt()
    q = isa.Program("tenant")
    addrs = [lo + (pg % npages) * PAGE + 8 * i for i, pg in enumerate(stores)]
    for i, a in enumerate(addrs):
        q.mark(EV_STORE, i)
        q.store(a, i + 1)
        q.compute(gap)
    q.halt()
    w.start(0, w.place(p, 0x10000).pc())
    w.start(1, w.place(q, 0x30000).pc())
    m = run(w)
    assert m.partitions()[slot] == (lo, cut, 1) and m.partitions()[spare] == (cut, hi, 0)
    tl = m.timeline()
    before = int(tl[tl[:, 2] == EV_BEFORE][0, 1])
    after = int(tl[tl[:, 2] == EV_AFTER][0, 1])
    issued = {int(v): int(t) for c, t, ev, v in tl if ev == EV_STORE}
    faults = m.faults()
    stopped_at = int(faults[0][2]) if len(faults) else None
    if len(faults):
        assert len(faults) == 1
        f = faults[0]
        # owner: nobody between the two PARTs, the supervisor after them -- never the tenant's kernel
        assert FAULT_NAMES[int(f[3])] == "partition" and int(f[0]) == 1 and int(f[4]) in (-1, 0)
        assert cut <= int(f[2]) < hi and int(f[5]) >= before
    for i, a in enumerate(addrs):
        landed = int.from_bytes(m.read(a, 8), "little") == i + 1
        if i not in issued or a == stopped_at:
            assert not landed
            continue
        if stopped_at is None or i < addrs.index(stopped_at):
            assert landed, f"store {i} at {a:#x} was issued before the fault but did not land"
        if landed and a >= cut:
            assert issued[i] <= after, f"store {i} at {a:#x} landed in a removed page after the change"


@pytest.mark.parametrize("op", ["part", "assign"])
def test_only_the_supervisors_cores_may_change_anything(op):
    """A core of another kernel (or an unrestricted one, or any core when no supervisor is named) faults
    ``privilege`` and the table and kernels stay as they were."""
    for supervisor, kernel in ((0, 1), (0, -1), (None, 0)):
        w = Workload(CFG.cores)
        if supervisor is not None:
            w.supervise(supervisor)
        w.assign(0, kernel)
        w.partition(0, BASE, BASE + PAGE)
        w.assign(2, 1)
        p = isa.Program("intruder")
        if op == "part":
            p.part(0, BASE, BASE + 2 * PAGE, kernel)
        else:
            p.assign(2, kernel)
        p.halt()
        w.start(0, w.place(p, 0x10000).pc())
        m = run(w)
        assert [int(f[3]) for f in m.faults()] == [FK_PRIVILEGE]
        assert m.partitions() == [(BASE, BASE + PAGE, 0)]
        assert m.kernels()[2] == 1


def test_setup_errors_are_clear():
    w = Workload(2)
    with pytest.raises(MksimError, match="supervisor kernel"):
        w.supervise(-1)
    with pytest.raises(MksimError, match="reserve_partitions"):
        w.reserve_partitions(-1)
    with pytest.raises(MksimError, match="partition slot"):
        isa.Program("p").part(-1, 0, 0, 0)
    with pytest.raises(MksimError, match="no partition"):
        w.partition_slot(0, PAGE)
