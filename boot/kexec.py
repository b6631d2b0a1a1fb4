"""kexec_load(2) semantics: segments into a reservation, and the purgatory's SHA-256 check.

A kexec load is at most ``KEXEC_SEGMENT_MAX`` (16) segments ``{buf, mem,
memsz}``: ``mem`` and ``memsz`` page aligned, ``len(buf) <= memsz`` (the rest
is zeroed), no two overlapping, all inside the memory reserved for the new
kernel (for ``KEXEC_ON_CRASH``, the crash-kernel reservation, which must
exist).  Before jumping to the new kernel, kexec-tools' purgatory hashes the
segments with SHA-256 and compares the digest computed at load time; a
mismatch (something overwrote a segment) stops the jump.  Here the hash walk
is a core program, so its cost comes from the memory system, plus
``cycles_per_byte`` of compute for the hash itself.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from boot import timeline as tl
from hwmodel import isa
from hwmodel.errors import MksimError
from hwmodel.workload import Workload

KEXEC_SEGMENT_MAX = 16
PAGE = 4096
SHA256_CYCLES_PER_BYTE = 15   # assumption: order of a scalar SHA-256 on these cores (no SHA extensions)


@dataclass(frozen=True)
class Segment:
    buf: bytes
    mem: int
    memsz: int


def validate(segments: list[Segment], reservation: tuple[int, int] | None, crash: bool = False) -> None:
    """Raise MksimError naming the segment and the value for anything kexec_load would refuse."""
    if crash and reservation is None:
        raise MksimError("KEXEC_ON_CRASH needs a crash-kernel reservation (crashkernel=), and there is none")
    if not segments:
        raise MksimError("kexec: no segments")
    if len(segments) > KEXEC_SEGMENT_MAX:
        raise MksimError(f"kexec: {len(segments)} segments, at most {KEXEC_SEGMENT_MAX}")
    for i, s in enumerate(segments):
        if s.mem % PAGE or s.memsz % PAGE or s.memsz <= 0 or s.mem < 0:
            raise MksimError(f"kexec segment {i}: mem {s.mem:#x} and memsz {s.memsz:#x} must be page aligned, "
                             "memsz > 0")
        if len(s.buf) > s.memsz:
            raise MksimError(f"kexec segment {i}: bufsz {len(s.buf)} exceeds memsz {s.memsz}")
        if reservation is not None and not (reservation[0] <= s.mem and s.mem + s.memsz <= reservation[1]):
            raise MksimError(f"kexec segment {i}: [{s.mem:#x}, {s.mem + s.memsz:#x}) lies outside the reservation "
                             f"[{reservation[0]:#x}, {reservation[1]:#x})")
    order = sorted(range(len(segments)), key=lambda k: segments[k].mem)
    for a, b in zip(order, order[1:]):
        sa, sb = segments[a], segments[b]
        if sa.mem + sa.memsz > sb.mem:
            raise MksimError(f"kexec segments {a} and {b} overlap: [{sa.mem:#x}, {sa.mem + sa.memsz:#x}) and "
                             f"[{sb.mem:#x}, {sb.mem + sb.memsz:#x})")


def image_bytes(s: Segment) -> bytes:
    """What the segment holds once loaded: its buffer, zero-filled to memsz."""
    return s.buf + bytes(s.memsz - len(s.buf))


def digest(segments: list[Segment]) -> bytes:
    h = hashlib.sha256()
    for s in sorted(segments, key=lambda s: s.mem):
        h.update(image_bytes(s))
    return h.digest()


def load(w: Workload, segments: list[Segment], reservation: tuple[int, int] | None, crash: bool = False) -> bytes:
    """Validate, copy the segments into simulated memory, and return the SHA-256 the purgatory will check."""
    validate(segments, reservation, crash)
    for s in segments:
        w.write(s.mem, image_bytes(s))
    return digest(segments)


def purgatory(segments: list[Segment], line: int = 64, cycles_per_byte: int = SHA256_CYCLES_PER_BYTE) -> isa.Program:
    """The purgatory's hash walk: read every line of every segment, hash it, then jump (HALT here:
    the caller appends the jump to the new kernel by placing its entry after this program)."""
    p = isa.Program("kexec-purgatory")
    tl.begin(p, "purgatory sha256")
    for k, s in enumerate(sorted(segments, key=lambda s: s.mem)):
        p.movi("r1", s.mem)
        p.movi("r2", s.mem + s.memsz)
        p.label(f"seg{k}")
        p.load("r3", 0, base="r1", comment="read the segment a line at a time")
        p.compute(line * cycles_per_byte, comment="SHA-256 of one line")
        p.add("r1", "r1", line)
        p.br("ltu", "r1", "r2", f"seg{k}")
    tl.end(p, "purgatory sha256")
    return p


def check(read, segments: list[Segment], expected: bytes) -> None:
    """The purgatory's verdict on the bytes now in memory (``read(addr, n) -> bytes``)."""
    h = hashlib.sha256()
    for s in sorted(segments, key=lambda s: s.mem):
        h.update(read(s.mem, s.memsz))
    if h.digest() != expected:
        raise MksimError(f"kexec purgatory: SHA-256 of the segments is {h.hexdigest()}, expected "
                         f"{expected.hex()}: a segment was overwritten after kexec_load; not jumping")
