"""kernels.urpc without the engine: control-word layout, slot addresses, program assembly, and the
protocol's logic run on a tiny functional interpreter (no timing) under random interleavings.

The interpreter below is a stand-in until ``hwmodel.cpu`` / ``reference_cpu`` exist: it executes the
ops the URPC programs use with the ISA's functional meaning (SPIN that fails just yields), one op per
step, on cores picked at random.  It checks protocol logic (no loss, duplication, reordering,
overwrite of unread slots, deadlock), not cycles.
"""
from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.errors import MksimError
from hwmodel.workload import Workload
from kernels import urpc
from kernels.urpc import (
    ACK_MASK,
    EV_PROTOCOL_ERROR,
    EV_RECV,
    EV_SEND,
    MSG_ACK,
    MSG_DATA,
    Channel,
    Link,
    Regs,
    Stub,
    decode_ctrl,
    encode_ctrl,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
M64 = (1 << 64) - 1


# ---------------------------------------------------------------------- layout
@given(st.integers(0, 1), st.integers(1, 127), st.integers(0, ACK_MASK))
def test_ctrl_round_trip(epoch, kind, ack):
    w = encode_ctrl(epoch, kind, ack)
    assert 0 <= w <= M64
    assert decode_ctrl(w) == (epoch, kind, ack)
    assert decode_ctrl(isa.wrap64(w)) == (epoch, kind, ack)          # as an int64 register holds it
    assert (isa.wrap64(w) < 0) == (epoch == 1)                       # the receiver's SPIN test: lt 0 / ge 0
    assert w >> 63 == epoch and (w >> 56) & 0x7F == kind and w & ((1 << 56) - 1) == ack


def test_ctrl_layout_and_errors():
    assert encode_ctrl(1, MSG_DATA, 5) == (1 << 63) | (1 << 56) | 5
    assert encode_ctrl(0, MSG_ACK, 0) == 2 << 56
    assert decode_ctrl(0) == (0, 0, 0)          # zeroed memory: epoch 0, never taken on the first lap
    for bad in [(2, 1, 0), (0, 0, 0), (0, 128, 0), (0, 1, -1), (0, 1, 1 << 56)]:
        with pytest.raises(MksimError):
            encode_ctrl(*bad)


def test_slot_addresses():
    ch = Channel(0x10000, 8)
    assert ch.size == 512 and ch.end == 0x10200
    assert [ch.slot_addr(i) for i in range(8)] == [0x10000 + 64 * i for i in range(8)]
    assert ch.ctrl_addr(3) == 0x10000 + 3 * 64 + 56
    assert ch.word_addr(2, 6) == 0x10000 + 2 * 64 + 48
    with pytest.raises(MksimError):
        ch.slot_addr(8)
    with pytest.raises(MksimError):
        ch.word_addr(0, 7)
    link = Link.at(0x20000, 4)
    assert link.a_to_b.base == 0x20000 and link.b_to_a.base == 0x20100
    assert link.a.tx == link.b.rx == link.a_to_b and link.a.rx == link.b.tx == link.b_to_a
    for bad in [lambda: Channel(0x10010, 4), lambda: Channel(0x10000, 1), lambda: Channel(-64, 4),
                lambda: Link(Channel(0, 4), Channel(128, 4)), lambda: Regs(t0="r15"),
                lambda: Stub(dlines=2), lambda: Stub(cycles=-1)]:
        with pytest.raises(MksimError):
            bad()
    Link(Channel(0, 4), Channel(0, 4, virt=True))        # different address spaces may coincide


def test_fragment_argument_errors():
    side = Link.at(0x1000, 4).a
    p = isa.Program("x")
    with pytest.raises(MksimError, match="7"):
        urpc.emit_send(p, side, ["r0"] * 8)
    with pytest.raises(MksimError, match="scratch"):
        urpc.emit_send(p, side, ["r6"])
    with pytest.raises(MksimError, match="MSG_ACK"):
        urpc.emit_send(p, side, [], kind=MSG_ACK)
    with pytest.raises(MksimError, match="URPC state"):
        urpc.emit_recv(p, side, ["r9"])
    with pytest.raises(MksimError, match="twice"):
        urpc.emit_recv(p, side, ["r1"], copy_to="r1")
    with pytest.raises(MksimError):
        urpc.pingpong_programs(Link.at(0x1000, 4), 0)


def _all_programs(link, n, stub_a=None, stub_b=None):
    return (urpc.pingpong_programs(link, n, stub_a, stub_b, server_work=5)
            + urpc.stream_programs(link, n, stub_a, stub_b, result_addr=0x9000, send_delay=3, recv_delay=4,
                                   marks=True)
            + urpc.checker_programs(link, n, 0xA000, stub_a, stub_b))


def test_programs_assemble_place_and_list():
    link = Link.at(0x40000, 8)
    sa, sb = Stub(3, 20, 4, base=0x50000), Stub(2, 0, 1, base=0x51000)
    progs = _all_programs(link, 5, sa, sb)
    w = Workload(cores=2)
    addr = 0x100000
    for p in progs:
        ops = p.assemble()
        assert ops.shape == (len(p), isa.NF)
        assert ((0 <= ops[:, 0]) & (ops[:, 0] < isa.NOPS)).all()
        text = p.listing()
        assert "urpc: control word last" in text or "urpc: payload word 0" in text
        assert "spin" in text and "halt" in text
        placed = w.place(p, addr)
        addr += (len(p) * isa.OP_BYTES + 4095) // 4096 * 4096
        assert placed.pc("loop") >= placed.pc0
    # two fragments in one program get distinct labels
    p = isa.Program("twice")
    side = link.a
    urpc.emit_init(p, side)
    for _ in range(3):
        urpc.emit_send(p, side, ["r0"], stub=sa)
        urpc.emit_recv(p, side, ["r1"], stub=sa)
    p.halt()
    p.assemble()


def test_stub_instruction_lines_are_64_bytes_apart():
    p = isa.Program("s")
    urpc.emit_send(p, Link.at(0, 4).a, [], stub=Stub(ilines=5))
    hops = sorted(v for k, v in p.labels.items() if ".i" in k and not k.endswith("iend"))
    assert len(hops) == 5
    lines = {(h * isa.OP_BYTES) // 64 for h in hops}
    assert len(lines) == 5 and all(b - a == 16 for a, b in itertools.pairwise(hops))


def test_ring_accesses_go_through_registers():
    """Every ring access goes through the slot-pointer register (base + offset), never an immediate."""
    link = Link.at(0x40000, 4)
    for p in _all_programs(link, 3):
        for row in p.assemble():
            op, b, c = int(row[0]), int(row[2]), int(row[3])
            if op in (isa.LOAD, isa.STORE, isa.SPIN) and b == -1:
                assert not link.a_to_b.base <= c < link.b_to_a.end, p.listing()


# ---------------------------------------------------------------------- a functional stand-in interpreter
class Deadlock(Exception):
    pass


class Mini:
    """Functional execution of isa programs on several cores: one op per step, random core order."""

    def __init__(self, progs, seed: int, bursts: tuple[int, ...] = (1,), mem: dict | None = None):
        self.progs = [p.assemble() for p in progs]
        self.regs = [[0] * isa.NREGS for _ in progs]
        self.pc = [0] * len(progs)
        self.halted = [False] * len(progs)
        self.blocked = [None] * len(progs)       # store count seen when a SPIN last failed
        self.mem: dict[int, int] = dict(mem or {})
        self.stores = 0
        self.marks: list[tuple[int, int, int, int]] = []     # (step, core, id, value)
        self.rng = random.Random(seed)
        self.bursts = bursts
        self.steps = 0
        self.writes: list[tuple[int, int, int]] = []          # (core, addr, value)
        self.rings: list[list] = []                           # [ring, sender, receiver, messages written]

    def watch(self, link: Link, a: int = 0, b: int = 1) -> Mini:
        """Check flow control on both rings of ``link`` (ends on cores a and b, default registers)."""
        self.rings = [[link.a_to_b, a, b, 0], [link.b_to_a, b, a, 0]]
        return self

    def on_store(self, c: int, a: int) -> None:
        """A store to a ring must come from its sender and land in a slot whose previous message the
        receiver has finished with (its rxn register counts messages taken)."""
        for w in self.rings:
            ring, snd, rcv, j = w
            if ring.base <= a < ring.end:
                assert c == snd, f"core {c} wrote the ring at {ring.base:#x} it does not send on"
                assert (a - ring.base) // 64 == j % ring.slots, "write outside the current slot"
                taken = self.regs[rcv][isa._reg(urpc.REGS.rxn)]
                assert taken >= j - ring.slots + 1, f"message {j} overwrites one not taken yet ({taken} taken)"
                if (a - ring.base) % 64 == urpc.CTRL_OFFSET:
                    w[3] += 1

    def load(self, a: int) -> int:
        assert a % 8 == 0, f"unaligned {a:#x}"
        return self.mem.get(a, 0)

    def run(self, limit: int = 400_000) -> None:
        n = len(self.progs)
        while not all(self.halted):
            live = [c for c in range(n) if not self.halted[c] and self.blocked[c] != self.stores]
            if not live:
                raise Deadlock(f"all cores asleep: pcs {self.pc}")
            c = self.rng.choice(live)
            for _ in range(self.rng.choice(self.bursts)):
                if self.halted[c] or self.blocked[c] == self.stores:
                    break
                self.step(c)
            assert self.steps < limit, "step limit"

    def step(self, c: int) -> None:
        self.steps += 1
        r, ops = self.regs[c], self.progs[c]
        op, a, b, cc, d, e, f, _g = (int(x) for x in ops[self.pc[c]])
        nxt = self.pc[c] + 1

        def val(x, imm):
            return x if imm else r[x]

        def addr():
            return ((r[b] if b >= 0 else 0) + cc) & M64

        def cond(code, x, y):
            ux, uy = x & M64, y & M64
            return [x == y, x != y, x < y, x >= y, ux < uy, ux >= uy][code]

        if op in (isa.NOP, isa.COMPUTE):
            pass
        elif op == isa.MOVI:
            r[a] = b
        elif op == isa.MOV:
            r[a] = r[b]
        elif op in (isa.ADD, isa.SUB, isa.MUL, isa.AND, isa.OR, isa.XOR, isa.SHL, isa.SHR):
            x, y = r[b] & M64, val(cc, d) & M64
            res = {isa.ADD: x + y, isa.SUB: x - y, isa.MUL: x * y, isa.AND: x & y, isa.OR: x | y,
                   isa.XOR: x ^ y, isa.SHL: x << (y & 63), isa.SHR: x >> (y & 63)}[op]
            r[a] = isa.wrap64(res)
        elif op == isa.BR:
            if cond(a, r[b], val(cc, d)):
                nxt = e
        elif op == isa.JMP:
            nxt = a
        elif op == isa.LOAD:
            assert d == 8
            r[a] = isa.wrap64(self.load(addr()))
        elif op == isa.STORE:
            assert d == 8
            v = val(a, e & isa.F_IMM) & M64
            self.mem[addr()] = v
            self.writes.append((c, addr(), v))
            self.on_store(c, addr())
            self.stores += 1
        elif op == isa.SPIN:
            v = isa.wrap64(self.load(addr()))
            r[a] = v
            if not cond(e >> 2, v, val(f, e & isa.F_IMM)):
                nxt = self.pc[c]
                self.blocked[c] = self.stores
        elif op == isa.MARK:
            self.marks.append((self.steps, c, a, val(b, d)))
        elif op == isa.HALT:
            self.halted[c] = True
        else:
            raise AssertionError(f"op {isa.OP_NAMES[op]} not expected in URPC programs")
        self.pc[c] = nxt


def check_epochs(m: Mini, link: Link) -> None:
    """Control words land in slot order, each with the epoch of its lap (1 on the first)."""
    for ring in (link.a_to_b, link.b_to_a):
        count = 0
        for _c, a, v in m.writes:
            if ring.base <= a < ring.end and (a - ring.base) % 64 == urpc.CTRL_OFFSET:
                lap, slot = divmod(count, ring.slots)
                assert a == ring.ctrl_addr(slot)
                assert decode_ctrl(v)[0] == 1 - lap % 2
                count += 1


def _mem_bytes(m: Mini, addr: int, n: int) -> bytes:
    return b"".join(m.mem.get(addr + 8 * k, 0).to_bytes(8, "little") for k in range(n // 8))


@SETTINGS
@given(n=st.integers(1, 60), slots=st.integers(2, 9), seed=st.integers(0, 2**32 - 1),
       bursts=st.sampled_from([(1,), (1, 5, 40), (1, 200)]), stubbed=st.booleans())
def test_checker_no_loss_duplication_reordering(n, slots, seed, bursts, stubbed):
    link = Link.at(0x40000, slots)
    sa, sb = (Stub(2, 5, 1, base=0x60000), Stub(1, 0, 2, base=0x61000)) if stubbed else (None, None)
    snd, rcv = urpc.checker_programs(link, n, 0x80000, sa, sb)
    m = Mini([snd, rcv], seed, bursts).watch(link)
    m.run()
    assert not [x for x in m.marks if x[2] == EV_PROTOCOL_ERROR]
    log = urpc.decode_log(_mem_bytes(m, 0x80000, 64 * n), n)
    assert [words for words, _ in log] == urpc.expected_log(n)
    for i, (_w, (epoch, kind, ack)) in enumerate(log):
        assert epoch == 1 - (i // slots) % 2 and kind == MSG_DATA
    check_epochs(m, link)
    if stubbed:     # each send touches every sender stub line once, each receive every receiver line
        assert m.mem[0x60000] == n and m.mem[0x60040] == n and m.mem[0x61000] == n


@SETTINGS
@given(n=st.integers(1, 80), slots=st.integers(2, 8), seed=st.integers(0, 2**32 - 1),
       bursts=st.sampled_from([(1,), (1, 3, 300)]))
def test_stream_never_stalls_and_checks_sequence(n, slots, seed, bursts):
    link = Link.at(0x40000, slots)
    snd, rcv = urpc.stream_programs(link, n, result_addr=0x9000, marks=True)
    m = Mini([snd, rcv], seed, bursts).watch(link)
    m.run()
    assert m.mem[0x9000] == n and m.mem[0x9008] == 0
    assert [v for _s, c, i, v in m.marks if i == EV_RECV] == list(range(n))
    assert not [x for x in m.marks if x[2] == EV_PROTOCOL_ERROR]
    check_epochs(m, link)
    acks = [v for _c, a, v in m.writes if link.b_to_a.base <= a < link.b_to_a.end]
    assert all(decode_ctrl(v)[1] == MSG_ACK for v in acks)
    assert len(acks) == n // (slots // 2)          # one ack-only message per half ring taken


def test_stream_sender_waits_for_acks_when_receiver_is_slow():
    """A sender far ahead of its receiver fills the ring and proceeds only on ack-only messages."""
    link = Link.at(0x40000, 4)
    snd, rcv = urpc.stream_programs(link, 40, result_addr=0x9000)
    m = Mini([snd, rcv], seed=1, bursts=(1,)).watch(link)
    # run the sender alone until it blocks: exactly `slots` messages go out
    while m.blocked[0] != m.stores:
        m.step(0)
    assert sum(1 for _c, a, _v in m.writes if (a - 0x40000) % 64 == 56) == 4
    m.run()
    assert m.mem[0x9000] == 40 and m.mem[0x9008] == 0
    acks = [decode_ctrl(v) for _c, a, v in m.writes if link.b_to_a.base <= a < link.b_to_a.end]
    assert [k for _e, k, _a in acks] == [MSG_ACK] * 20          # one every half ring
    assert [a for _e, _k, a in acks] == list(range(2, 41, 2))


@SETTINGS
@given(n=st.integers(1, 30), slots=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_pingpong_round_trips(n, slots, seed):
    link = Link.at(0x40000, slots)
    cl, sv = urpc.pingpong_programs(link, n, server_work=10)
    m = Mini([cl, sv], seed, (1, 7)).watch(link)
    m.run()
    assert not [x for x in m.marks if x[2] == EV_PROTOCOL_ERROR]
    sends = [(c, v) for _s, c, i, v in m.marks if i == EV_SEND]
    recvs = [(c, v) for _s, c, i, v in m.marks if i == EV_RECV]
    assert [v for c, v in sends if c == 0] == list(range(n)) == [v for c, v in recvs if c == 1]
    assert [v for c, v in recvs if c == 0] == list(range(n)) == [v for c, v in sends if c == 1]
    # each receive follows its send
    order = {(c, i, v): s for s, c, i, v in m.marks}
    for k in range(n):
        assert order[(0, EV_SEND, k)] < order[(1, EV_RECV, k)] < order[(1, EV_SEND, k)] < order[(0, EV_RECV, k)]
    check_epochs(m, link)
    if slots >= 4:      # a reply per request: no ack-only messages on the latency path
        assert all(decode_ctrl(v)[1] == MSG_DATA for _c, a, v in m.writes if (a - 0x40000) % 64 == 56)


def test_credit_wait_flags_a_data_message_as_protocol_error():
    """A sender whose ring is full and finds data (not an ack) on the reverse ring marks an error and halts."""
    link = Link.at(0x40000, 2)
    p = isa.Program("p")
    urpc.emit_init(p, link.a)
    for _ in range(3):
        urpc.emit_send(p, link.a, ["r0"])
    p.halt()
    mem = {link.b_to_a.ctrl_addr(0): encode_ctrl(1, MSG_DATA, 0)}
    m = Mini([p], 0, mem=mem)
    m.run()
    assert [x[2] for x in m.marks] == [EV_PROTOCOL_ERROR]
