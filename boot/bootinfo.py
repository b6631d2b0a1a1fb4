"""Boot information a loader writes into simulated memory, and parsers that read it back.

* Multiboot2 boot information (Multiboot2 spec 3.6): ``u32 total_size, u32
  reserved``, then 8-byte aligned tags ``u32 type, u32 size``: command line
  (1), boot loader name (2), module (3), basic memory (4), memory map (6), end
  (0).  The loader passes magic 0x36D76289 in EAX and the address in EBX.
* Multiboot1 information (Multiboot 0.6.96, 3.3): a 72-byte structure whose
  ``flags`` say which fields are valid, module entries of 16 bytes, memory
  map entries ``u32 size, u64 base, u64 length, u32 type`` (size excludes
  itself).  Magic 0x2BADB002.
* Linux ``boot_params`` (the zero page, Documentation/arch/x86/boot.rst and
  zero-page.rst): the setup header copied from the image at 0x1F1, the E820
  map at 0x2D0 (20-byte entries, count at 0x1E8), the command line pointer,
  and the initrd placed as GRUB places it.

Addresses in these structures are 32-bit where the formats say so; a value
that does not fit is an error, not a silent truncation.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hwmodel.errors import MksimError

MB2_MAGIC = 0x36D76289
MB1_MAGIC = 0x2BADB002
E820_RAM, E820_RESERVED = 1, 2


@dataclass(frozen=True)
class Region:
    """One memory-map entry: [base, base + length) of ``type`` (1 RAM, 2 reserved, ...)."""
    base: int
    length: int
    type: int = E820_RAM


@dataclass(frozen=True)
class Module:
    start: int
    end: int          # exclusive, as both Multiboot specs define mod_end
    cmdline: str = ""


@dataclass(frozen=True)
class BootInfo:
    cmdline: str = ""
    loader_name: str = "mksim"
    modules: tuple[Module, ...] = ()
    mmap: tuple[Region, ...] = ()
    mem_lower_kib: int = 640
    mem_upper_kib: int = 0


def _u32(v: int, what: str) -> int:
    if not 0 <= v < 1 << 32:
        raise MksimError(f"{what} = {v:#x} does not fit the 32 bits the boot information format gives it")
    return v


def _cstr(s: str) -> bytes:
    b = s.encode("utf-8")
    if b"\0" in b:
        raise MksimError(f"string {s!r} contains a NUL byte")
    return b + b"\0"


def _pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


# ---------------------------------------------------------------- Multiboot2

def mb2_info(info: BootInfo) -> bytes:
    """The Multiboot2 boot information structure for ``info`` (position independent)."""
    tags = []

    def tag(t: int, payload: bytes) -> None:
        tags.append(_pad8(struct.pack("<II", t, 8 + len(payload)) + payload))

    tag(1, _cstr(info.cmdline))
    tag(2, _cstr(info.loader_name))
    for m in info.modules:
        tag(3, struct.pack("<II", _u32(m.start, "module start"), _u32(m.end, "module end")) + _cstr(m.cmdline))
    tag(4, struct.pack("<II", _u32(info.mem_lower_kib, "mem_lower"), _u32(info.mem_upper_kib, "mem_upper")))
    if info.mmap:
        ents = b"".join(struct.pack("<QQII", r.base, r.length, r.type, 0) for r in info.mmap)
        tag(6, struct.pack("<II", 24, 0) + ents)
    tags.append(struct.pack("<II", 0, 8))
    body = b"".join(tags)
    return struct.pack("<II", 8 + len(body), 0) + body


def parse_mb2_info(data: bytes) -> BootInfo:
    """Read a Multiboot2 boot information structure back (what a kernel would see)."""
    if len(data) < 16:
        raise MksimError(f"multiboot2 boot information: {len(data)} bytes, at least 16 needed")
    total, _ = struct.unpack_from("<II", data)
    if total > len(data) or total < 16 or total % 8:
        raise MksimError(f"multiboot2 boot information: total_size {total} does not fit the {len(data)} bytes given")
    off = 8
    cmd, name, mods, mmap, lower, upper = "", "", [], [], 0, 0
    while True:
        if off + 8 > total:
            raise MksimError(f"multiboot2 boot information: no end tag before byte {total}")
        t, size = struct.unpack_from("<II", data, off)
        if size < 8 or off + size > total:
            raise MksimError(f"multiboot2 boot information: tag {t} at {off} has size {size}")
        body = data[off + 8:off + size]
        if t == 0:
            break
        if t in (1, 2):
            s = body.split(b"\0", 1)[0].decode("utf-8", "replace")
            cmd, name = (s, name) if t == 1 else (cmd, s)
        elif t == 3:
            a, b = struct.unpack_from("<II", body)
            mods.append(Module(a, b, body[8:].split(b"\0", 1)[0].decode("utf-8", "replace")))
        elif t == 4:
            lower, upper = struct.unpack_from("<II", body)
        elif t == 6:
            esz, _ = struct.unpack_from("<II", body)
            for k in range(8, len(body) - esz + 1, esz):
                base, length, typ, _ = struct.unpack_from("<QQII", body, k)
                mmap.append(Region(base, length, typ))
        off += size + (-size % 8)
    return BootInfo(cmd, name, tuple(mods), tuple(mmap), lower, upper)


# ---------------------------------------------------------------- Multiboot1

MB1_SIZE = 72


def mb1_info(info: BootInfo, at: int) -> bytes:
    """The Multiboot1 information structure placed at physical ``at``, with its strings, module
    list and memory map after it (the structure holds their physical addresses)."""
    out = bytearray(MB1_SIZE)
    extra = bytearray()

    def put(b: bytes) -> int:
        a = at + MB1_SIZE + len(extra)
        extra.extend(b)
        extra.extend(bytes(-len(extra) % 4))
        return a

    flags = 1 | 4 | 8 | (1 << 9)
    cmd = put(_cstr(info.cmdline))
    name = put(_cstr(info.loader_name))
    mod_strs = [put(_cstr(m.cmdline)) for m in info.modules]
    mods = put(b"".join(struct.pack("<IIII", _u32(m.start, "module start"), _u32(m.end, "module end"), s, 0)
                        for m, s in zip(info.modules, mod_strs)))
    struct.pack_into("<III", out, 0, flags, _u32(info.mem_lower_kib, "mem_lower"),
                     _u32(info.mem_upper_kib, "mem_upper"))
    struct.pack_into("<I", out, 16, _u32(cmd, "cmdline address"))
    struct.pack_into("<II", out, 20, len(info.modules), _u32(mods, "module list address"))
    if info.mmap:
        mm = b"".join(struct.pack("<IQQI", 20, r.base, r.length, r.type) for r in info.mmap)
        struct.pack_into("<II", out, 44, len(mm), _u32(put(mm), "memory map address"))
        flags |= 1 << 6
        struct.pack_into("<I", out, 0, flags)
    struct.pack_into("<I", out, 64, _u32(name, "boot loader name address"))
    return bytes(out + extra)


def parse_mb1_info(data: bytes, at: int) -> BootInfo:
    """Read back a Multiboot1 structure that sits at physical ``at`` within ``data``."""
    if len(data) < MB1_SIZE:
        raise MksimError(f"multiboot1 information: {len(data)} bytes, {MB1_SIZE} needed")

    def cstr(addr: int) -> str:
        o = addr - at
        if not 0 <= o < len(data):
            raise MksimError(f"multiboot1 information: string address {addr:#x} outside the structure")
        return data[o:].split(b"\0", 1)[0].decode("utf-8", "replace")

    flags, lower, upper = struct.unpack_from("<III", data, 0)
    cmd = cstr(struct.unpack_from("<I", data, 16)[0]) if flags & 4 else ""
    mods = []
    if flags & 8:
        n, addr = struct.unpack_from("<II", data, 20)
        for k in range(n):
            a, b, s, _ = struct.unpack_from("<IIII", data, addr - at + 16 * k)
            mods.append(Module(a, b, cstr(s)))
    mmap = []
    if flags & (1 << 6):
        length, addr = struct.unpack_from("<II", data, 44)
        o = addr - at
        while o < addr - at + length:
            size, base, ln, typ = struct.unpack_from("<IQQI", data, o)
            mmap.append(Region(base, ln, typ))
            o += size + 4
    name = cstr(struct.unpack_from("<I", data, 64)[0]) if flags & (1 << 9) else ""
    return BootInfo(cmd, name, tuple(mods), tuple(mmap), lower if flags & 1 else 0, upper if flags & 1 else 0)


# ---------------------------------------------------------------- Linux boot_params

ZERO_PAGE = 4096
E820_AT, E820_COUNT_AT, E820_MAX = 0x2D0, 0x1E8, 128
# setup header fields the loader fills in (offsets in boot_params)
TYPE_OF_LOADER, LOADFLAGS, RAMDISK_IMAGE, RAMDISK_SIZE, HEAP_END_PTR, CMD_LINE_PTR = (
    0x210, 0x211, 0x218, 0x21C, 0x224, 0x228)
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
CAN_USE_HEAP = 0x80


@dataclass
class LinuxParams:
    """What the zero page tells the kernel."""
    cmd_line_ptr: int = 0
    ramdisk_image: int = 0
    ramdisk_size: int = 0
    e820: list = field(default_factory=list)
    type_of_loader: int = 0xFF


def place_initrd(size: int, initrd_addr_max: int, ram: list[Region], avoid: list[tuple[int, int]]) -> int:
    """Where GRUB puts an initrd: the highest page-aligned address at which it fits in RAM below
    ``initrd_addr_max`` (inclusive limit of its last byte), clear of ``avoid`` ranges."""
    best = -1
    for r in ram:
        if r.type != E820_RAM:
            continue
        top = min(r.base + r.length, initrd_addr_max + 1)
        a = (top - size) & ~0xFFF
        while a >= r.base:
            clash = [(lo, hi) for lo, hi in avoid if a < hi and lo < a + size]
            if not clash:
                best = max(best, a)
                break
            a = (min(lo for lo, _ in clash) - size) & ~0xFFF
    if best < 0:
        raise MksimError(f"initrd of {size} bytes does not fit below initrd_addr_max {initrd_addr_max:#x}")
    return best


def zero_page(setup: bytes, params: LinuxParams) -> bytes:
    """boot_params: the image's setup header copied in at 0x1F1, then the loader's fields."""
    if len(setup) < 0x202:
        raise MksimError(f"setup header: {len(setup)} bytes of the image, 0x202 at least needed")
    end = 0x202 + setup[0x201]
    zp = bytearray(ZERO_PAGE)
    zp[0x1F1:end] = setup[0x1F1:end]
    if len(params.e820) > E820_MAX:
        raise MksimError(f"E820 map: {len(params.e820)} entries, at most {E820_MAX}")
    zp[E820_COUNT_AT] = len(params.e820)
    for k, r in enumerate(params.e820):
        struct.pack_into("<QQI", zp, E820_AT + 20 * k, r.base, r.length, r.type)
    zp[TYPE_OF_LOADER] = params.type_of_loader
    zp[LOADFLAGS] |= CAN_USE_HEAP
    struct.pack_into("<H", zp, HEAP_END_PTR, 0xFE00)      # as GRUB sets it: the heap ends at 0xFE00
    for lo_at, hi_at, v in ((RAMDISK_IMAGE, EXT_RAMDISK_IMAGE, params.ramdisk_image),
                            (RAMDISK_SIZE, EXT_RAMDISK_SIZE, params.ramdisk_size),
                            (CMD_LINE_PTR, EXT_CMD_LINE_PTR, params.cmd_line_ptr)):
        struct.pack_into("<I", zp, lo_at, v & 0xFFFFFFFF)
        struct.pack_into("<I", zp, hi_at, v >> 32)
    return bytes(zp)


def parse_zero_page(zp: bytes) -> LinuxParams:
    def both(lo_at: int, hi_at: int) -> int:
        return struct.unpack_from("<I", zp, lo_at)[0] | struct.unpack_from("<I", zp, hi_at)[0] << 32
    n = zp[E820_COUNT_AT]
    e820 = [Region(*struct.unpack_from("<QQI", zp, E820_AT + 20 * k)) for k in range(n)]
    return LinuxParams(both(CMD_LINE_PTR, EXT_CMD_LINE_PTR), both(RAMDISK_IMAGE, EXT_RAMDISK_IMAGE),
                       both(RAMDISK_SIZE, EXT_RAMDISK_SIZE), e820, zp[TYPE_OF_LOADER])
