"""Inter-kernel channels of the replicated-Linux systems, as core programs.

Three channels, each written as the sender's and the receiver's kernel code (``isa.Program``
fragments), plus a harness that measures any of them (and Barrelfish's URPC, ``kernels.urpc``)
between two cores:

* ``popcorn``: Popcorn Linux's messaging layer (``pcn_kmsg``).  One ring per *receiver*: a
  ticket line (``head``, senders take a slot with an atomic fetch-add), the receiver's
  interrupt-enable flag (its own line) and ``slots`` 64-byte slots.  A slot is one cache line:
  48 payload bytes, a header word (size, chunk) at +48 and the ready flag at +56, written last.
  A sender waits until its slot's ready flag is clear (the receiver has copied out the previous
  lap's message), copies the payload in, sets ready, and sends an IPI only if the receiver has
  its ring interrupt enabled: the receiver clears the flag while it drains (NAPI style), so a
  burst costs one IPI.  The receiver copies every message out of the slot and clears ready.
  A message longer than 48 bytes goes as line-sized chunks, one ticket each.
  ``coherent=False`` is the same ring across a PCIe window without coherence (the Xeon /
  Xeon Phi machine): one sender, its ticket kept privately, every slot line CLFLUSHed after it
  is written and before it is read (the receiver polls with CLFLUSH + load, as no store of
  the other domain wakes it).
* ``multikernel``: the 2025 Linux multikernel RFC's message ring (``kernel/multikernel/``): a
  head the senders claim a slot with by compare-and-swap, a tail the receiver advances, and
  ``slots`` slots of a size line plus up to 4096 payload bytes.  The sender copies the payload,
  publishes the size with a release store (a plain store on x86: stores are not reordered with
  older stores) and sends one IPI on the multikernel vector; the receiver drains the ring in the
  interrupt handler.  ``doorbell``: the bare IPI, no payload.
* ``twin-linux``: Twin-Linux's shared page: a flag line (the message length, 0 = free) and a
  page of data.  One message at a time: the sender waits for the page to be free, copies in,
  writes the length and sends an IPI; the receiver's handler copies out and frees the page.

Every variant ends with ``-poll`` (the receiver spins on the slot) or ``-ipi`` (it sleeps in
WFI and is woken by the IPI).  Costs are the machine model's: cache-line transfers, atomics,
the ICR write and the IPI's delivery and entry (``[core]`` and ``[apic]`` of the preset).
"""
from __future__ import annotations

import numpy as np

from hwmodel import isa
from hwmodel.config import MachineConfig
from hwmodel.errors import MksimError
from hwmodel.machine import Machine
from kernels import microbench, urpc

LINE = 64
WORD = 8
VECTOR = 0xF2                  # the inter-kernel message vector (any fixed vector >= 32)
CODE = 0x10_0000               # programs from here, 64 KiB a core (handlers in the upper half)
PRIV = 0x60_0000               # per-core private buffers (copy source / destination), 16 KiB a core
RING = 0x90_0000               # channel memory, in the receiver's node

POPCORN_SLOTS = 64             # pcn_kmsg ring size (a power of two)
POPCORN_CHUNK = 48             # payload bytes of one slot; header at +48, ready flag at +56
POPCORN_HEADER, POPCORN_READY = 48, 56
MK_SLOTS = 64                  # the RFC's ring: 64 slots of up to 4096 bytes
MK_MAX = 4096
MK_STRIDE = LINE + MK_MAX      # slot: size line, then the payload
TWIN_PAGE = 4096

EV_SEND, EV_RECV, EV_START, EV_END = 0x400, 0x401, 0x402, 0x403

CHANNELS = ("urpc-poll", "popcorn-poll", "popcorn-ipi", "multikernel-poll", "multikernel-ipi",
            "multikernel-doorbell", "twin-linux-poll", "twin-linux-ipi")


def _words(nbytes: int) -> int:
    return (nbytes + WORD - 1) // WORD


def copy(p: isa.Program, src: str, dst: str, nbytes: int, tag: str, comment: str = "memcpy") -> None:
    """memcpy of ``nbytes`` (rounded up to words) from the address in register ``src`` to ``dst``, as
    the kernel's 8-byte copy loop: one load and one store a word.  Clobbers src, dst, r3 and r5."""
    n = _words(nbytes)
    if n == 0:
        return
    if n <= 8:                                  # short copies are unrolled, as memcpy does
        for i in range(n):
            p.load("r3", i * WORD, base=src, comment=comment if i == 0 else "")
            p.store(i * WORD, "r3", base=dst)
        return
    p.add("r5", src, n * WORD)
    p.label(f"{tag}.copy")
    p.load("r3", 0, base=src, comment=comment)
    p.store(0, "r3", base=dst)
    p.add(src, src, WORD)
    p.add(dst, dst, WORD)
    p.br("ltu", src, "r5", f"{tag}.copy")


def _addr_reg(p: isa.Program, rd: str, addr: int | str, off: int) -> None:
    """rd = addr + off, ``addr`` an address or a register holding one."""
    if isinstance(addr, str):
        p.add(rd, addr, off)
    else:
        p.movi(rd, addr + off)


def _notify(p: isa.Program, dest: int, comment: str) -> None:
    """Send the message IPI as Linux's apic->send_IPI does: wait for the ICR to be idle, write it."""
    p.wait_icr_idle("r5")
    p.ipi(dest, VECTOR, comment=comment)


# ============================================================================ Popcorn (pcn_kmsg)

def popcorn_chunks(payload: int) -> int:
    """Slots a message of ``payload`` bytes takes (a bare notification still takes one)."""
    return max(1, -(-payload // POPCORN_CHUNK))


def _flush_slot(p: isa.Program, line: int, comment: str) -> None:
    """CLFLUSH every cache line of the 64-byte slot at r1 (one on a 64-byte-line machine, two with
    32-byte lines: the header and ready flag are in the slot's last line)."""
    for off in range(0, LINE, line):
        p.clflush(off, base="r1", comment=comment)


def popcorn_send(p: isa.Program, ring: int, dest: int, payload: int, src: int | str, tag: str,
                 coherent: bool = True, ticket_reg: str = "r4", line: int = LINE) -> None:
    """pcn_kmsg_send(): for each chunk take a ticket (fetch-add on the ring's head), wait for the
    slot's ready flag to clear, copy the chunk in, write the header and set ready last; then IPI the
    receiver if its ring interrupt is enabled.  Non-coherent: the single sender counts tickets in
    ``ticket_reg`` (kept across calls), flushes the slot's lines (``line``: the machine's line size)
    after writing, polls the ready flag with CLFLUSH."""
    slots = ring + 3 * LINE
    for c in range(popcorn_chunks(payload)):
        t = f"{tag}.c{c}"
        nbytes = min(POPCORN_CHUNK, payload - c * POPCORN_CHUNK) if payload else 0
        if coherent:
            p.fadd("r1", ring, 1, comment="pcn_kmsg: take a ticket (lock xadd on the ring head)")
        else:
            p.mov("r1", ticket_reg)
            p.add(ticket_reg, ticket_reg, 1, comment="pcn_kmsg: our ticket (one sender per ring)")
        p.alu("and", "r1", "r1", POPCORN_SLOTS - 1)
        p.alu("shl", "r1", "r1", 6)
        p.add("r1", "r1", slots)
        if coherent:
            p.spin_until(POPCORN_READY, "eq", 0, rd="r3", base="r1", comment="wait until the slot is free")
        else:
            p.label(f"{t}.free")
            p.clflush(POPCORN_READY, base="r1", comment="drop our stale copy of the slot")
            p.load("r3", POPCORN_READY, base="r1")
            p.br("eq", "r3", 0, f"{t}.go")
            p.pause()
            p.jmp(f"{t}.free")
            p.label(f"{t}.go")
        _addr_reg(p, "r6", src, c * POPCORN_CHUNK)
        p.mov("r7", "r1")
        copy(p, "r6", "r7", nbytes, t, "pcn_kmsg: copy the chunk into the slot")
        p.store(POPCORN_HEADER, (c << 16) | nbytes, base="r1", comment="header: chunk, size")
        p.store(POPCORN_READY, 1, base="r1", comment="ready flag last")
        if not coherent:
            _flush_slot(p, line, "push the slot across the non-coherent window")
        else:
            p.load("r3", ring + 2 * LINE, comment="receiver's ring interrupt enabled?")
            p.br("eq", "r3", 0, f"{t}.noipi")
            _notify(p, dest, "pcn_kmsg: kick the receiver")
            p.label(f"{t}.noipi")


def popcorn_take(p: isa.Program, ring: int, tail_reg: str, dst: int | str, tag: str, coherent: bool = True,
                 wait: bool = True, empty: str | None = None, line: int = LINE) -> None:
    """Receive the chunk at ``tail_reg``: wait for (or, with ``wait=False``, test and jump to ``empty``
    if absent) its ready flag, copy it out to ``dst``, clear ready, advance the tail."""
    slots = ring + 3 * LINE
    p.mov("r1", tail_reg)
    p.alu("and", "r1", "r1", POPCORN_SLOTS - 1)
    p.alu("shl", "r1", "r1", 6)
    p.add("r1", "r1", slots)
    if not coherent:
        p.label(f"{tag}.poll")
        p.clflush(POPCORN_READY, base="r1", comment="drop our stale copy of the slot")
        p.load("r3", POPCORN_READY, base="r1", comment="pcn_kmsg: ready?")
        p.br("ne", "r3", 0, f"{tag}.got")
        p.pause()
        p.jmp(f"{tag}.poll")
        p.label(f"{tag}.got")
        if line < LINE:
            _flush_slot(p, line, "drop stale copies of the slot's other lines before the copy-out")
    elif wait:
        p.spin_until(POPCORN_READY, "ne", 0, rd="r3", base="r1", comment="pcn_kmsg: wait for ready")
    else:
        p.load("r3", POPCORN_READY, base="r1", comment="pcn_kmsg: anything in the next slot?")
        p.br("eq", "r3", 0, empty)
    p.load("r2", POPCORN_HEADER, base="r1", comment="header")
    p.alu("and", "r2", "r2", 0xFFFF)
    p.mov("r6", "r1")
    _addr_reg(p, "r7", dst, 0)
    copy(p, "r6", "r7", POPCORN_CHUNK, tag, "copy the message out of the slot")
    p.store(POPCORN_READY, 0, base="r1", comment="free the slot")
    if not coherent:
        _flush_slot(p, line, "publish the freed slot to the sender")
    p.add(tail_reg, tail_reg, 1)


# ============================================================================ the RFC's ring

def mk_send(p: isa.Program, ring: int, dest: int, payload: int, src: int, tag: str, ipi: bool = True) -> None:
    """The RFC's send: claim a slot by CAS on the head (if the ring is not full), copy the payload,
    publish its size with a release store, one IPI on the multikernel vector (``ipi=False``: the
    polled variant, whose receiver spins on the slot)."""
    p.label(f"{tag}.claim")
    p.load("r2", ring, comment="mk: head")
    p.load("r3", ring + LINE, comment="mk: tail")
    p.sub("r3", "r2", "r3")
    p.br("ltu", "r3", MK_SLOTS, f"{tag}.room")
    p.pause()
    p.jmp(f"{tag}.claim")
    p.label(f"{tag}.room")
    p.add("r4", "r2", 1)
    p.cas("r1", ring, "r2", "r4", comment="mk: claim the slot (cmpxchg on the head)")
    p.br("ne", "r1", "r2", f"{tag}.claim")
    p.alu("and", "r1", "r1", MK_SLOTS - 1)
    p.movi("r4", MK_STRIDE)
    p.alu("mul", "r1", "r1", "r4")
    p.add("r1", "r1", ring + 2 * LINE)
    p.movi("r6", src)
    p.add("r7", "r1", LINE)
    copy(p, "r6", "r7", payload, tag, "mk: copy the payload into the slot")
    p.store(0, max(payload, 1), base="r1", comment="mk: smp_store_release(&slot->size)")
    if ipi:
        _notify(p, dest, "mk: IPI on the multikernel vector")


def mk_take(p: isa.Program, ring: int, tail_reg: str, dst: int, tag: str, wait: bool, empty: str | None = None
            ) -> None:
    """Receive the slot at ``tail_reg``: wait for (or test) its size, copy out, clear it, advance the
    tail (its own line, read by the senders to see room)."""
    p.mov("r1", tail_reg)
    p.alu("and", "r1", "r1", MK_SLOTS - 1)
    p.movi("r4", MK_STRIDE)
    p.alu("mul", "r1", "r1", "r4")
    p.add("r1", "r1", ring + 2 * LINE)
    if wait:
        p.spin_until(0, "ne", 0, rd="r2", base="r1", comment="mk: wait for a published size")
    else:
        p.load("r2", 0, base="r1", comment="mk: smp_load_acquire(&slot->size)")
        p.br("eq", "r2", 0, empty)
    p.add("r6", "r1", LINE)
    p.movi("r7", dst)
    _copy_out(p, tag, "mk: copy the payload out")
    p.store(0, 0, base="r1", comment="mk: free the slot")
    p.add(tail_reg, tail_reg, 1)
    p.store(ring + LINE, tail_reg, comment="mk: publish the tail")


def _copy_out(p: isa.Program, tag: str, comment: str) -> None:
    """Copy r2 bytes (a length read at run time, a multiple of 8) from r6 to r7, a word at a time
    (clobbers r3, r5, r6, r7)."""
    p.add("r5", "r6", "r2")
    p.label(f"{tag}.copy")
    p.load("r3", 0, base="r6", comment=comment)
    p.store(0, "r3", base="r7")
    p.add("r6", "r6", WORD)
    p.add("r7", "r7", WORD)
    p.br("ltu", "r6", "r5", f"{tag}.copy")


# ============================================================================ Twin-Linux

def twin_send(p: isa.Program, page: int, dest: int, payload: int, src: int, tag: str, ipi: bool) -> None:
    """Wait for the shared page to be free, copy the data in, write its length, IPI the twin."""
    p.spin_until(page, "eq", 0, rd="r3", comment="twin: wait for the shared page")
    p.movi("r6", src)
    p.movi("r7", page + TWIN_PAGE)
    copy(p, "r6", "r7", payload, tag, "twin: copy into the shared page")
    p.store(page, max(payload, 1), comment="twin: the length, last")
    if ipi:
        _notify(p, dest, "twin: IPI the other kernel")


def twin_take(p: isa.Program, page: int, dst: int, tag: str, wait: bool, empty: str | None = None) -> None:
    """Take the message in the shared page: copy it out and free the page."""
    if wait:
        p.spin_until(page, "ne", 0, rd="r2", comment="twin: wait for data")
    else:
        p.load("r2", page, comment="twin: data in the shared page?")
        p.br("eq", "r2", 0, empty)
    p.movi("r6", page + TWIN_PAGE)
    p.movi("r7", dst)
    _copy_out(p, tag, "twin: copy out")
    p.store(page, 0, comment="twin: free the page")


# ============================================================================ the harness

def _check(channel: str, payload: int) -> None:
    if channel not in CHANNELS:
        raise MksimError(f"channel {channel!r}: must be one of {', '.join(CHANNELS)}")
    if isinstance(payload, bool) or not isinstance(payload, int) or not 0 <= payload <= MK_MAX:
        raise MksimError(f"payload {payload!r}: must be 0..{MK_MAX} bytes")
    if channel == "multikernel-doorbell" and payload:
        raise MksimError("multikernel-doorbell carries no payload: payload must be 0")


def _programs(cfg: MachineConfig, channel: str, a: int, b: int, payload: int, n: int, lockstep: bool):
    """(sender on a, receiver main on b, receiver handler or None, memory to write): ``n`` messages of
    ``payload`` bytes from a to b.  The sender MARKs EV_SEND before each message; the receiver MARKs
    EV_RECV once it has the whole message copied out and counts it at DONE (its own line).  With
    ``lockstep`` the sender waits for that count before the next message (latency); without, it
    streams (throughput)."""
    ring = RING + microbench.node_base(cfg, b // cfg.cores_per_package)
    done = ring + 0x3_0000                      # receiver: messages received (harness line)
    tail = done + LINE                          # receiver's own ring state (handler keeps it in memory)
    src, dst = buffers(cfg, a, b)
    kind, mode = channel.rsplit("-", 1)
    writes: list[tuple[int, bytes]] = []
    s, r = isa.Program(f"{channel}-send"), isa.Program(f"{channel}-recv")
    h = None
    s.movi("r0", 0)
    s.mark(EV_START)
    if kind == "urpc":
        link = urpc.Link.at(ring, 16)
        urpc.emit_init(s, link.a)
        urpc.emit_init(r, link.b)
    s.label("loop")
    s.mark(EV_SEND, "r0")
    if kind == "urpc":
        for i in range(max(1, -(-payload // (urpc.PAYLOAD_WORDS * WORD)))):
            urpc.emit_send(s, link.a, ["r0"] + [i] * (urpc.PAYLOAD_WORDS - 1))
    elif kind == "popcorn":
        popcorn_send(s, ring, b, payload, src, "s")
        if mode == "ipi":
            writes.append((ring + 2 * LINE, (1).to_bytes(8, "little")))   # the receiver starts with IRQs on
    elif kind == "multikernel":
        if mode == "doorbell":
            _notify(s, b, "mk: the bare doorbell IPI")
        else:
            mk_send(s, ring, b, payload, src, "s", ipi=(mode == "ipi"))
    else:
        twin_send(s, ring, b, payload, src, "s", ipi=(mode == "ipi"))
    s.add("r0", "r0", 1)
    if lockstep:
        s.spin_until(done, "ge", "r0", rd="r2", comment="harness: wait until it has been taken")
    s.br("lt", "r0", n, "loop")
    s.mark(EV_END)
    s.halt()

    chunks = popcorn_chunks(payload)
    if mode == "poll" or kind == "urpc":
        r.movi("r0", 0)
        if kind != "urpc":
            r.movi("r8", 0, comment="our tail")
        r.label("loop")
        if kind == "urpc":
            for i in range(max(1, -(-payload // (urpc.PAYLOAD_WORDS * WORD)))):
                urpc.emit_recv(r, link.b, ["r3", "r4", "r5"])
                for k, reg in enumerate(("r3", "r4", "r5")):
                    r.store(dst + 8 * k, reg, comment="copy the words out")
        elif kind == "popcorn":
            for c in range(chunks):
                popcorn_take(r, ring, "r8", dst + c * POPCORN_CHUNK, f"take{c}")
        elif kind == "multikernel":
            mk_take(r, ring, "r8", dst, "r", wait=True)
        else:
            twin_take(r, ring, dst, "r", wait=True)
        r.add("r0", "r0", 1)
        r.mark(EV_RECV, "r0")
        r.store(done, "r0")
        r.br("lt", "r0", n, "loop")
        r.halt()
        return s, r, None, writes

    # interrupt-driven receiver: sleep in WFI; the handler drains and counts
    r.label("sleep")
    r.cli()
    r.load("r0", done, comment="messages handled")
    r.br("ge", "r0", n, "out")
    r.wfi(comment="sti; hlt")
    r.jmp("sleep")
    r.label("out")
    r.halt()
    h = isa.Program(f"{channel}-irq")
    if kind == "popcorn":
        h.store(ring + 2 * LINE, 0, comment="pcn_kmsg: disable the ring interrupt while draining (NAPI)")
    h.load("r8", tail, comment="ring state: next slot to take")
    h.load("r9", tail + 8, comment="chunks of the current message taken")
    h.load("r0", done)
    h.label("drain")
    if kind == "popcorn":
        h.movi("r11", POPCORN_CHUNK)
        h.alu("mul", "r11", "r11", "r9")
        h.add("r11", "r11", dst, comment="reassemble: chunk r9 of the message goes to dst + 48 x r9")
        popcorn_take(h, ring, "r8", "r11", "h", wait=False, empty="empty")
        h.add("r9", "r9", 1)
        h.br("lt", "r9", chunks, "drain")
        h.movi("r9", 0)
    elif kind == "multikernel" and mode == "doorbell":
        h.add("r0", "r0", 1, comment="mk: the doorbell: nothing to read")
        h.mark(EV_RECV, "r0")
        h.store(done, "r0")
        h.jmp("empty")
    elif kind == "multikernel":
        mk_take(h, ring, "r8", dst, "h", wait=False, empty="empty")
    else:
        twin_take(h, ring, dst, "h", wait=False, empty="empty")
    h.add("r0", "r0", 1)
    h.mark(EV_RECV, "r0")
    h.store(done, "r0")
    h.jmp("drain")
    h.label("empty")
    h.store(tail, "r8")
    h.store(tail + 8, "r9")
    if kind == "popcorn":
        h.load("r3", ring + 2 * LINE)
        h.br("ne", "r3", 0, "out")
        h.store(ring + 2 * LINE, 1, comment="pcn_kmsg: re-enable the ring interrupt")
        h.jmp("drain", comment="and look once more: a sender may have skipped its IPI")
        h.label("out")
    h.eoi()
    h.iret()
    return s, r, h, writes


def buffers(cfg: MachineConfig, a: int, b: int) -> tuple[int, int]:
    """(where the sender on a copies each message from, where the receiver on b copies it to)."""
    return (PRIV + microbench.node_base(cfg, a // cfg.cores_per_package) + a * 0x4000,
            PRIV + microbench.node_base(cfg, b // cfg.cores_per_package) + b * 0x4000)


def run_channel(cfg: MachineConfig, channel: str, a: int, b: int, payload: int, n: int,
                lockstep: bool, data: bytes = b"") -> Machine:
    """Run ``n`` messages of ``channel`` from core a to core b (``data``: the bytes the sender's buffer
    holds, so a test can read what arrived); returns the machine after the run."""
    _check(channel, payload)
    if a == b or not (0 <= a < cfg.cores and 0 <= b < cfg.cores):
        raise MksimError(f"channel {channel}: cores {a} -> {b}: two different cores of 0..{cfg.cores - 1}")
    s, r, h, writes = _programs(cfg, channel, a, b, payload, n, lockstep)
    if data:
        writes.append((buffers(cfg, a, b)[0], bytes(data)))
    m = Machine(cfg)
    w = m.workload()
    w.start(a, w.place(s, CODE + a * 0x10000).pc())
    w.start(b, w.place(r, CODE + b * 0x10000).pc())
    if h is not None:
        w.set_handler(b, VECTOR, w.place(h, CODE + b * 0x10000 + 0x8000).pc())
    for addr, data in writes:
        w.write(addr, data)
    m.load_workload(w)
    status = m.execute()
    if status != "done":
        raise RuntimeError(f"channel {channel} on {cfg.name} cores {a}->{b}, {payload} B: ended {status}")
    return m


def latency(cfg: MachineConfig, channel: str, a: int, b: int, payload: int, rounds: int = 8) -> float:
    """Mean one-way latency (ticks): sender's EV_SEND to the receiver having copied the message out,
    one message at a time (the first round, cold, is left out; the mean, not the median, so that a
    protocol whose rounds alternate between two paths, such as Popcorn's NAPI re-check catching the
    next message without an IPI, is charged for both)."""
    t = run_channel(cfg, channel, a, b, payload, rounds, lockstep=True).timeline()
    sent = t[(t[:, 0] == a) & (t[:, 2] == EV_SEND)][:, 1]
    got = t[(t[:, 0] == b) & (t[:, 2] == EV_RECV)][:, 1]
    if len(sent) != rounds or len(got) != rounds:
        raise RuntimeError(f"channel {channel}: {len(sent)} sends, {len(got)} receives of {rounds}")
    return float(np.mean(got[1:] - sent[1:]))


def throughput(cfg: MachineConfig, channel: str, a: int, b: int, payload: int, n: int = 24) -> float:
    """Messages per kilocycle of a one-way stream (the sender does not wait), from the sender's start
    to the receiver's last message.  The bare doorbell cannot be streamed (a second IPI of a pending
    vector is coalesced and carries no count), so it runs one at a time."""
    t = run_channel(cfg, channel, a, b, payload, n, lockstep=channel.endswith("doorbell")).timeline()
    t0 = t[(t[:, 0] == a) & (t[:, 2] == EV_START)][0, 1]
    got = t[(t[:, 0] == b) & (t[:, 2] == EV_RECV)]
    if len(got) != n:
        raise RuntimeError(f"channel {channel}: {len(got)} receives of {n}")
    return 1000.0 * n / float(got[-1, 1] - t0)
