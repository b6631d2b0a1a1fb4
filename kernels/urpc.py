"""URPC (Barrelfish's UMP channel) generated as core programs.

A *link* is two one-way rings in shared memory (``Link(a_to_b, b_to_a)``).
A ring (``Channel(base, slots)``) is ``slots`` 64-byte lines; each slot is
7 payload words (bytes 0..55) and a control word (bytes 56..63).  Only the
sender writes a ring and only the receiver reads it.  The sender writes the
payload, then the control word LAST; the receiver polls (``SPIN``) the
control word of its next slot and takes the message when the epoch bit
matches the one it expects.  Both ends flip their epoch when their index
wraps, so a slot left over from the previous lap never looks new.  The rings
start zeroed (epoch 0) and both ends start expecting / writing epoch 1, so
nothing has to be written to memory before the programs run.

Control word (64 bits)::

    bit  63      epoch (1 on the first lap, flips at every wrap)
    bits 62..56  message type: MSG_DATA (1) or MSG_ACK (2); others are user data types
    bits 55..0   ack: how many messages the writer has received so far on the
                 reverse ring (data and ack-only alike)

Flow control: an end may have at most ``slots`` unacknowledged messages on
its transmit ring (``sent - ack < slots``).  Acks ride on every message in
the other direction.  A sender with a full ring waits by taking the next
message of its reverse ring (which must be an ack-only message: a data
message there is a protocol error, MARK ``EV_PROTOCOL_ERROR`` then HALT;
the programs here never cause it).  A receiver that has taken ``slots // 2``
messages since it last sent anything sends an ack-only message (control
word only) so that a one-way stream never stalls; it skips it if its own
transmit ring has no credit (cannot happen for the programs here: an ack
goes out every half ring, and the data carries acks for those).  Receivers
skip ack-only messages, taking only their ack.

Register conventions (``Regs``; the default ``REGS`` is below).  The
fragments keep an end's whole channel state in ten registers:

=====  =====  ============================================================
reg    name   meaning
=====  =====  ============================================================
r15    txp    address of the next slot to write on the transmit ring
r14    txe    transmit epoch as a mask: 1 << 63 (epoch 1) or 0
r13    txs    messages sent on the transmit ring
r12    txa    latest ack from the peer (its count of messages received)
r11    rxp    address of the next slot to read on the receive ring
r10    rxe    expected receive epoch as a mask: 1 << 63 or 0
r9     rxn    messages received on the receive ring
r8     rxl    value of rxn carried by the last message sent (last ack sent)
r7     t1     scratch
r6     t0     scratch; after ``emit_recv``: the taken message's control word
=====  =====  ============================================================

``r0``..``r5`` (``APP_REGS``) belong to the caller; the full programs below
use r0..r2.  ``emit_init`` sets the ten state registers.

Addresses that change at run time (the slot) are ``register + offset``:
payload word k at ``txp/rxp + 8k``, the control word at ``+ 56``.  Fixed
addresses (stub bookkeeping lines, results) are immediates.

MARK events (``EV_*``): ``EV_SEND`` before a send (value: sequence number),
``EV_RECV`` after a receive (value: the payload's word 0),
``EV_STREAM_START`` / ``EV_STREAM_END`` around a stream, ``EV_DONE`` when a
program finishes, ``EV_PROTOCOL_ERROR`` (value: the control word).

Barrelfish's measured path touches 9 I-cache and 8 D-cache lines per message
(Table 2).  ``Stub`` adds that stack's work to every send and receive:
``dlines`` private bookkeeping lines read-modified-written, ``cycles`` of
compute and ``ilines`` extra instruction lines fetched (a chain of jumps
64 bytes apart).  The slot line itself is one of the 8 D-lines and the
fragments span a few I-lines of their own, so roughly
``Stub(dlines=7, ilines=6)`` models the full stack (count the lines a
placed fragment spans to settle ``ilines``); the default ``None`` is the
bare channel.  Code is fetched from wherever the caller places the program
(``Workload.place``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from hwmodel.errors import MksimError
from hwmodel.isa import OP_BYTES, Program, _is_reg, _reg

LINE = 64
PAYLOAD_WORDS = 7
WORD = 8
CTRL_OFFSET = PAYLOAD_WORDS * WORD          # 56
EPOCH_SHIFT = 63
EPOCH_BIT = 1 << EPOCH_SHIFT
TYPE_SHIFT = 56
TYPE_MASK = 0x7F
ACK_MASK = (1 << TYPE_SHIFT) - 1
MSG_DATA, MSG_ACK = 1, 2
LOG_STRIDE = LINE                            # checker log record: 7 payload words + control word

EV_SEND, EV_RECV, EV_STREAM_START, EV_STREAM_END, EV_DONE, EV_PROTOCOL_ERROR = range(0x100, 0x106)

APP_REGS = ("r0", "r1", "r2", "r3", "r4", "r5")

# one payload word: a register, an immediate, or (register, immediate) meaning their sum
Word = str | int | tuple


def encode_ctrl(epoch: int, kind: int, ack: int) -> int:
    """Control word (unsigned 64-bit) from its fields; see the module docstring."""
    if epoch not in (0, 1):
        raise MksimError(f"epoch {epoch!r}: must be 0 or 1")
    if isinstance(kind, bool) or not isinstance(kind, int) or not 1 <= kind <= TYPE_MASK:
        raise MksimError(f"message type {kind!r}: must be 1..{TYPE_MASK}")
    if isinstance(ack, bool) or not isinstance(ack, int) or not 0 <= ack <= ACK_MASK:
        raise MksimError(f"ack {ack!r}: must be 0..2**56-1")
    return (epoch << EPOCH_SHIFT) | (kind << TYPE_SHIFT) | ack


def decode_ctrl(word: int) -> tuple[int, int, int]:
    """``(epoch, kind, ack)`` of a control word (signed int64 or unsigned)."""
    word &= (1 << 64) - 1
    return word >> EPOCH_SHIFT, (word >> TYPE_SHIFT) & TYPE_MASK, word & ACK_MASK


def seq_payload(seq: int) -> list[int]:
    """The 7 words the checker sender writes for message ``seq``: word k = seq + (k << 48)."""
    return [seq + (k << 48) for k in range(PAYLOAD_WORDS)]


def seq_words(reg: str) -> list[Word]:
    """Payload operands that make ``seq_payload(reg's value)`` at run time."""
    return [reg] + [(reg, k << 48) for k in range(1, PAYLOAD_WORDS)]


# ---------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Channel:
    """One one-way ring: ``slots`` 64-byte lines from ``base`` (virtual if ``virt``)."""

    base: int
    slots: int
    virt: bool = False

    def __post_init__(self):
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 2:
            raise MksimError(f"URPC ring slots {self.slots!r}: must be an integer >= 2")
        if isinstance(self.base, bool) or not isinstance(self.base, int) or self.base % LINE:
            raise MksimError(f"URPC ring base {self.base!r}: must be a 64-byte aligned address")
        if self.base < 0 and not self.virt:
            raise MksimError(f"URPC ring base {self.base:#x}: a physical address must be >= 0")
        if self.base + self.size > (1 << 64):
            raise MksimError(f"URPC ring at {self.base:#x} runs past 2**64")

    @property
    def size(self) -> int:
        return self.slots * LINE

    @property
    def end(self) -> int:
        """First address past the ring."""
        return self.base + self.size

    def slot_addr(self, i: int) -> int:
        if not 0 <= i < self.slots:
            raise MksimError(f"slot {i} outside 0..{self.slots - 1}")
        return self.base + i * LINE

    def ctrl_addr(self, i: int) -> int:
        return self.slot_addr(i) + CTRL_OFFSET

    def word_addr(self, i: int, k: int) -> int:
        if not 0 <= k < PAYLOAD_WORDS:
            raise MksimError(f"payload word {k} outside 0..{PAYLOAD_WORDS - 1}")
        return self.slot_addr(i) + k * WORD

    def overlaps(self, other: Channel) -> bool:
        return self.virt == other.virt and self.base < other.end and other.base < self.end


@dataclass(frozen=True)
class Side:
    """One end of a link: the ring it writes (``tx``) and the ring it reads (``rx``)."""

    tx: Channel
    rx: Channel


@dataclass(frozen=True)
class Link:
    """A bidirectional URPC link: two rings, ends ``a`` and ``b``."""

    a_to_b: Channel
    b_to_a: Channel

    def __post_init__(self):
        if self.a_to_b.overlaps(self.b_to_a):
            raise MksimError(f"URPC rings at {self.a_to_b.base:#x} and {self.b_to_a.base:#x} overlap")

    @classmethod
    def at(cls, base: int, slots: int, virt: bool = False) -> Link:
        """Both rings back to back from ``base``: a->b first, then b->a."""
        return cls(Channel(base, slots, virt), Channel(base + slots * LINE, slots, virt))

    @property
    def a(self) -> Side:
        return Side(tx=self.a_to_b, rx=self.b_to_a)

    @property
    def b(self) -> Side:
        return Side(tx=self.b_to_a, rx=self.a_to_b)


@dataclass(frozen=True)
class Regs:
    """Registers holding one end's channel state (see the module docstring)."""

    txp: str = "r15"
    txe: str = "r14"
    txs: str = "r13"
    txa: str = "r12"
    rxp: str = "r11"
    rxe: str = "r10"
    rxn: str = "r9"
    rxl: str = "r8"
    t1: str = "r7"
    t0: str = "r6"

    def __post_init__(self):
        names = [getattr(self, f.name) for f in fields(self)]
        nums = [_reg(r, f"URPC register {f.name}") for r, f in zip(names, fields(self))]
        if len(set(nums)) != len(nums):
            raise MksimError(f"URPC registers must be distinct: {names}")

    def all(self) -> set[int]:
        return {_reg(getattr(self, f.name)) for f in fields(self)}


REGS = Regs()


@dataclass(frozen=True)
class Stub:
    """Extra work of the messaging stack on every send and receive of one end.

    ``dlines`` private lines at ``base + 64*i`` are each read, incremented and
    written back (channel bookkeeping; the count of touches is left in
    memory); ``cycles`` of COMPUTE; ``ilines`` extra instruction lines
    fetched.  ``base`` is this end's own memory (give each end its own)."""

    dlines: int = 0
    cycles: int = 0
    ilines: int = 0
    base: int | None = None
    virt: bool = False

    def __post_init__(self):
        for f in ("dlines", "cycles", "ilines"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MksimError(f"stub {f} {v!r}: must be an integer >= 0")
        if self.dlines and (self.base is None or self.base % LINE):
            raise MksimError(f"stub with {self.dlines} bookkeeping lines needs a 64-byte aligned base, "
                             f"got {self.base!r}")

    def line_addr(self, i: int) -> int:
        return self.base + i * LINE


# ---------------------------------------------------------------------- fragments
def _prefix(p: Program, stem: str) -> str:
    """A label prefix no label of ``p`` uses yet."""
    pre, k = f"{stem}@{len(p.ops)}", 0
    while any(lab.startswith(pre + ".") for lab in p.labels):
        k += 1
        pre = f"{stem}@{len(p.ops)}#{k}"
    return pre


def emit_init(p: Program, side: Side, regs: Regs = REGS) -> None:
    """Set one end's channel-state registers: both rings at slot 0, epoch 1, no messages."""
    r = regs
    p.movi(r.txp, side.tx.base, comment="urpc: tx slot pointer")
    p.movi(r.txe, EPOCH_BIT, comment="urpc: tx epoch 1")
    p.movi(r.txs, 0, comment="urpc: sent")
    p.movi(r.txa, 0, comment="urpc: acked by peer")
    p.movi(r.rxp, side.rx.base, comment="urpc: rx slot pointer")
    p.movi(r.rxe, EPOCH_BIT, comment="urpc: rx epoch 1")
    p.movi(r.rxn, 0, comment="urpc: received")
    p.movi(r.rxl, 0, comment="urpc: last ack sent")


def _wait_slot(p: Program, ring: Channel, r: Regs, pre: str) -> None:
    """Sleep until the control word at rxp has the expected epoch; t0 = that word."""
    p.br("eq", r.rxe, 0, f"{pre}.even", comment="urpc: which epoch do we expect?")
    p.spin_until(CTRL_OFFSET, "lt", 0, rd=r.t0, base=r.rxp, virt=ring.virt, comment="urpc: wait for epoch 1")
    p.jmp(f"{pre}.got")
    p.label(f"{pre}.even")
    p.spin_until(CTRL_OFFSET, "ge", 0, rd=r.t0, base=r.rxp, virt=ring.virt, comment="urpc: wait for epoch 0")
    p.label(f"{pre}.got")


def _advance(p: Program, ring: Channel, ptr: str, epoch: str, count: str, pre: str) -> None:
    """Next slot: ptr += 64, back to the base with the epoch flipped at the end; count += 1."""
    p.add(ptr, ptr, LINE, comment="urpc: next slot")
    p.br("ne", ptr, ring.end, f"{pre}.nowrap")
    p.movi(ptr, ring.base, comment="urpc: wrap")
    p.alu("xor", epoch, epoch, EPOCH_BIT, comment="urpc: flip epoch")
    p.label(f"{pre}.nowrap")
    p.add(count, count, 1)


def _take_type(p: Program, r: Regs) -> None:
    """txa = the ack in t0 (the peer's receive count); t1 = the message type."""
    p.alu("and", r.txa, r.t0, ACK_MASK, comment="urpc: piggybacked ack")
    p.alu("shr", r.t1, r.t0, TYPE_SHIFT)
    p.alu("and", r.t1, r.t1, TYPE_MASK, comment="urpc: message type")


def _post(p: Program, side: Side, r: Regs, kind: int, reg: str, pre: str) -> None:
    """Write the control word (epoch | kind | rxn) via ``reg``; rxl = rxn; sent += 1; advance tx."""
    p.alu("or", reg, r.txe, r.rxn)
    p.alu("or", reg, reg, kind << TYPE_SHIFT)
    p.store(CTRL_OFFSET, reg, base=r.txp, virt=side.tx.virt, comment="urpc: control word last")
    p.mov(r.rxl, r.rxn, comment="urpc: everything received is now acked")
    _advance(p, side.tx, r.txp, r.txe, r.txs, pre + ".tx")


def _stub(p: Program, stub: Stub | None, r: Regs, pre: str) -> None:
    if stub is None:
        return
    for i in range(stub.dlines):
        a = stub.line_addr(i)
        p.load(r.t1, a, virt=stub.virt, comment=f"stub: bookkeeping line {i}")
        p.add(r.t1, r.t1, 1)
        p.store(a, r.t1, virt=stub.virt)
    if stub.cycles:
        p.compute(stub.cycles, comment="stub: compute")
    if stub.ilines:
        # jumps 16 ops (64 bytes) apart: each hop fetches one more instruction line
        p.jmp(f"{pre}.i0", comment=f"stub: {stub.ilines} instruction lines")
        pad = LINE // OP_BYTES - 1
        for k in range(stub.ilines):
            for _ in range(pad):
                p.nop()
            p.label(f"{pre}.i{k}")
            p.jmp(f"{pre}.i{k + 1}" if k + 1 < stub.ilines else f"{pre}.iend")
        p.label(f"{pre}.iend")


def _check_word(w: Word, r: Regs) -> None:
    scratch = {_reg(r.t0), _reg(r.t1)}
    if isinstance(w, tuple):
        if len(w) != 2 or not _is_reg(w[0]) or isinstance(w[1], bool) or not isinstance(w[1], int):
            raise MksimError(f"payload word {w!r}: a (register, immediate) pair must be ('rN', int)")
        w = w[0]
    if isinstance(w, str):
        if _reg(w, "payload register") in scratch:
            raise MksimError(f"payload register {w}: {r.t0} and {r.t1} are URPC scratch registers")
    elif isinstance(w, bool) or not isinstance(w, int):
        raise MksimError(f"payload word {w!r}: must be a register, an integer or (register, integer)")


def emit_send(p: Program, side: Side, payload: Sequence[Word] = (), kind: int = MSG_DATA,
              regs: Regs = REGS, stub: Stub | None = None) -> None:
    """Append a send of one message on ``side.tx``.

    Waits for credit (taking ack-only messages from ``side.rx``) while
    ``slots`` messages are unacknowledged, runs the stub, writes the 7
    payload words (missing ones are 0; a word is a register, an immediate or
    ``(register, immediate)`` = their sum), then the control word, and
    advances.  Clobbers t0, t1."""
    if kind == MSG_ACK or isinstance(kind, bool) or not isinstance(kind, int) or not 1 <= kind <= TYPE_MASK:
        raise MksimError(f"message type {kind!r}: must be 1..{TYPE_MASK} and not MSG_ACK ({MSG_ACK})")
    if len(payload) > PAYLOAD_WORDS:
        raise MksimError(f"payload has {len(payload)} words; a URPC message carries {PAYLOAD_WORDS}")
    for w in payload:
        _check_word(w, regs)
    r, pre = regs, _prefix(p, "send")
    # flow control: at most `slots` messages unacknowledged
    p.label(f"{pre}.credit")
    p.sub(r.t1, r.txs, r.txa, comment="urpc send: unacknowledged messages")
    p.br("ltu", r.t1, side.tx.slots, f"{pre}.go")
    _wait_slot(p, side.rx, r, pre + ".w")
    _take_type(p, r)
    p.br("eq", r.t1, MSG_ACK, f"{pre}.ackonly")
    p.mark(EV_PROTOCOL_ERROR, r.t0, comment="urpc: data message while waiting for credit")
    p.halt()
    p.label(f"{pre}.ackonly")
    _advance(p, side.rx, r.rxp, r.rxe, r.rxn, pre + ".rx")
    p.jmp(f"{pre}.credit")
    p.label(f"{pre}.go")
    _stub(p, stub, r, pre)
    words = list(payload) + [0] * (PAYLOAD_WORDS - len(payload))
    for k, w in enumerate(words):
        if isinstance(w, tuple):
            p.add(r.t1, w[0], w[1])
            w = r.t1
        p.store(k * WORD, w, base=r.txp, virt=side.tx.virt, comment=f"urpc: payload word {k}")
    _post(p, side, r, kind, r.t0, pre)


def emit_recv(p: Program, side: Side, out: Sequence[str | None] = (), regs: Regs = REGS,
              stub: Stub | None = None, copy_to: str | None = None) -> None:
    """Append a receive of one data message from ``side.rx``.

    Sleeps on the next slot's control word until its epoch matches, takes the
    piggybacked ack, skips ack-only messages, reads the 7 payload words (word
    k into ``out[k]`` where given, else into scratch), and with ``copy_to`` (a
    register holding an address) copies them to ``[copy_to + 8k]`` and the
    control word to ``[copy_to + 56]``.  Then advances, runs the stub, and
    sends an ack-only message if half the ring was taken since the last send.
    Afterwards t0 holds the message's control word.  Clobbers t1."""
    if len(out) > PAYLOAD_WORDS:
        raise MksimError(f"{len(out)} output registers; a URPC message carries {PAYLOAD_WORDS} words")
    taken = regs.all()
    used = []
    for o in list(out) + ([copy_to] if copy_to is not None else []):
        if o is None:
            continue
        n = _reg(o, "URPC output register")
        if n in taken:
            raise MksimError(f"output register {o} holds URPC state; use one of {', '.join(APP_REGS)}")
        if n in used:
            raise MksimError(f"register {o} is used twice in a receive (outputs and copy_to must differ)")
        used.append(n)
    r, pre = regs, _prefix(p, "recv")
    p.label(f"{pre}.next")
    _wait_slot(p, side.rx, r, pre + ".w")
    _take_type(p, r)
    p.br("ne", r.t1, MSG_ACK, f"{pre}.data")
    _advance(p, side.rx, r.rxp, r.rxe, r.rxn, pre + ".skip")     # ack-only: nothing to read
    p.jmp(f"{pre}.next")
    p.label(f"{pre}.data")
    outs = list(out) + [None] * (PAYLOAD_WORDS - len(out))
    for k, o in enumerate(outs):
        dst = o if o is not None else r.t1
        p.load(dst, k * WORD, base=r.rxp, virt=side.rx.virt, comment=f"urpc: payload word {k}")
        if copy_to is not None:
            p.store(k * WORD, dst, base=copy_to)
    if copy_to is not None:
        p.store(CTRL_OFFSET, r.t0, base=copy_to, comment="urpc: log the control word")
    _advance(p, side.rx, r.rxp, r.rxe, r.rxn, pre + ".rx")
    _stub(p, stub, r, pre)
    # a receiver that has taken half the ring without answering sends an ack-only message
    p.sub(r.t1, r.rxn, r.rxl, comment="urpc: taken since our last send")
    p.br("ltu", r.t1, max(1, side.rx.slots // 2), f"{pre}.done")
    p.sub(r.t1, r.txs, r.txa)
    p.br("geu", r.t1, side.tx.slots, f"{pre}.done", comment="urpc: no credit for an ack: skip it")
    _post(p, side, r, MSG_ACK, r.t1, pre + ".ack")
    p.label(f"{pre}.done")


# ---------------------------------------------------------------------- programs
def _count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MksimError(f"message count {n!r}: must be an integer >= 1")


def _delay(p: Program, cycles: int) -> None:
    if cycles:
        p.compute(cycles)


def pingpong_programs(link: Link, n: int, stub_a: Stub | None = None, stub_b: Stub | None = None,
                      server_work: int = 0) -> tuple[Program, Program]:
    """(client on end a, server on end b): ``n`` round trips.

    Client: MARK EV_SEND seq, send [seq, 0..], receive, MARK EV_RECV reply.
    Server: receive, MARK EV_RECV seq, ``server_work`` cycles, MARK EV_SEND
    seq, send [seq, 0..].  One-way latency = server's EV_RECV time - client's
    EV_SEND time of the same seq (and reply: client EV_RECV - server EV_SEND).
    Registers: r0 loop counter / seq, r1 received word 0."""
    _count(n)
    c = Program("urpc-pingpong-client")
    emit_init(c, link.a)
    c.movi("r0", 0, comment="seq")
    c.label("loop")
    c.mark(EV_SEND, "r0")
    emit_send(c, link.a, ["r0"], stub=stub_a)
    emit_recv(c, link.a, ["r1"], stub=stub_a)
    c.mark(EV_RECV, "r1")
    c.add("r0", "r0", 1)
    c.br("lt", "r0", n, "loop")
    c.mark(EV_DONE, "r0")
    c.halt()

    s = Program("urpc-pingpong-server")
    emit_init(s, link.b)
    s.movi("r0", 0, comment="round")
    s.label("loop")
    emit_recv(s, link.b, ["r1"], stub=stub_b)
    s.mark(EV_RECV, "r1")
    _delay(s, server_work)
    s.mark(EV_SEND, "r1")
    emit_send(s, link.b, ["r1"], stub=stub_b)
    s.add("r0", "r0", 1)
    s.br("lt", "r0", n, "loop")
    s.mark(EV_DONE, "r0")
    s.halt()
    return c, s


def stream_programs(link: Link, n: int, stub_a: Stub | None = None, stub_b: Stub | None = None,
                    result_addr: int | None = None, send_delay: int = 0, recv_delay: int = 0,
                    marks: bool = False) -> tuple[Program, Program]:
    """(sender on end a, receiver on end b): a one-way stream of ``n`` messages, payload [seq, 0..].

    Sender MARKs EV_STREAM_START before the first send; receiver MARKs
    EV_STREAM_END (value: errors) after the last receive, so throughput is
    ``n / (end - start)`` messages per cycle.  The receiver counts messages
    whose word 0 is not the expected seq in r2 and, with ``result_addr``,
    stores [result_addr] = messages received, [result_addr + 8] = errors.
    ``marks`` adds EV_SEND / EV_RECV per message; ``*_delay`` adds compute
    cycles per message (a slow receiver fills the ring)."""
    _count(n)
    s = Program("urpc-stream-sender")
    emit_init(s, link.a)
    s.movi("r0", 0, comment="seq")
    s.mark(EV_STREAM_START, n)
    s.label("loop")
    if marks:
        s.mark(EV_SEND, "r0")
    _delay(s, send_delay)
    emit_send(s, link.a, ["r0"], stub=stub_a)
    s.add("r0", "r0", 1)
    s.br("lt", "r0", n, "loop")
    s.mark(EV_DONE, "r0")
    s.halt()

    r = Program("urpc-stream-receiver")
    emit_init(r, link.b)
    r.movi("r1", 0, comment="expected seq")
    r.movi("r2", 0, comment="errors")
    r.label("loop")
    emit_recv(r, link.b, ["r0"], stub=stub_b)
    if marks:
        r.mark(EV_RECV, "r0")
    r.br("eq", "r0", "r1", "inorder")
    r.add("r2", "r2", 1, comment="out of sequence")
    r.label("inorder")
    r.add("r1", "r1", 1)
    _delay(r, recv_delay)
    r.br("lt", "r1", n, "loop")
    r.mark(EV_STREAM_END, "r2")
    if result_addr is not None:
        r.store(result_addr, "r1", comment="messages received")
        r.store(result_addr + 8, "r2", comment="sequence errors")
    r.mark(EV_DONE, "r1")
    r.halt()
    return s, r


def checker_programs(link: Link, n: int, log_addr: int, stub_a: Stub | None = None, stub_b: Stub | None = None,
                     send_delay: int = 0, recv_delay: int = 0) -> tuple[Program, Program]:
    """(sender on end a, receiver on end b) for property tests.

    The sender sends ``seq_payload(i)`` for i = 0..n-1; the receiver copies
    message i to the log record at ``log_addr + 64*i`` (7 payload words, then
    the control word).  ``expected_log(n)`` / ``decode_log`` check it: no
    loss, duplication or reordering."""
    _count(n)
    if isinstance(log_addr, bool) or not isinstance(log_addr, int) or log_addr < 0 or log_addr % WORD:
        raise MksimError(f"log address {log_addr!r}: must be an 8-byte aligned physical address")
    s = Program("urpc-check-sender")
    emit_init(s, link.a)
    s.movi("r0", 0, comment="seq")
    s.label("loop")
    _delay(s, send_delay)
    emit_send(s, link.a, seq_words("r0"), stub=stub_a)
    s.add("r0", "r0", 1)
    s.br("lt", "r0", n, "loop")
    s.mark(EV_DONE, "r0")
    s.halt()

    r = Program("urpc-check-receiver")
    emit_init(r, link.b)
    r.movi("r0", 0, comment="received")
    r.movi("r1", log_addr, comment="log pointer")
    r.label("loop")
    emit_recv(r, link.b, stub=stub_b, copy_to="r1")
    r.add("r1", "r1", LOG_STRIDE)
    r.add("r0", "r0", 1)
    _delay(r, recv_delay)
    r.br("lt", "r0", n, "loop")
    r.mark(EV_DONE, "r0")
    r.halt()
    return s, r


def expected_log(n: int) -> list[list[int]]:
    """The payloads a correct checker run logs, in order."""
    return [seq_payload(i) for i in range(n)]


def decode_log(data: bytes, n: int) -> list[tuple[list[int], tuple[int, int, int]]]:
    """``[(payload words, (epoch, kind, ack))]`` of ``n`` log records read from memory."""
    if len(data) < n * LOG_STRIDE:
        raise MksimError(f"log has {len(data)} bytes; {n} records need {n * LOG_STRIDE}")
    out = []
    for i in range(n):
        rec = data[i * LOG_STRIDE:(i + 1) * LOG_STRIDE]
        words = [int.from_bytes(rec[k * WORD:(k + 1) * WORD], "little") for k in range(PAYLOAD_WORDS + 1)]
        out.append((words[:PAYLOAD_WORDS], decode_ctrl(words[PAYLOAD_WORDS])))
    return out
