"""Small but real kernel images, written by mksim itself, for the example plans and the tests.

* ``multiboot2_elf``: an ELF64 x86-64 executable with one PT_LOAD segment and
  a Multiboot2 header (information request for the command line, modules and
  memory map; entry address tag; end tag) in its first 32 KiB.
* ``multiboot1_elf``: the same with a Multiboot1 header (flags: page-align
  modules, memory info).
* ``bzimage``: a Linux boot-protocol image: a boot sector with 0xAA55, a
  setup header ("HdrS", protocol 2.15, relocatable, kernel_alignment,
  pref_address, init_size, a kernel version string) and a protected-mode
  payload after the setup sectors.

The payload bytes are filler: the kernel's behaviour in mksim comes from the
personality's core programs, not from executing x86 code.  What the images
get right is every header field a loader reads.
"""
from __future__ import annotations

import struct

from hwmodel.errors import MksimError

PAGE = 4096


def _elf64(entry: int, paddr: int, payload: bytes, header: bytes, header_at: int) -> bytes:
    """ELF64 little-endian x86-64 executable: one PT_LOAD covering the file, ``header`` at ``header_at``."""
    ehsize, phsize = 64, 56
    if header_at < ehsize + phsize or header_at % 8:
        raise MksimError(f"header offset {header_at:#x}: must be 8-aligned and after the ELF headers")
    body = bytearray(max(header_at + len(header), PAGE))
    body[header_at:header_at + len(header)] = header
    body += payload
    filesz = len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, paddr, paddr, filesz, filesz + PAGE, PAGE)
    body[0:ehsize] = eh
    body[ehsize:ehsize + phsize] = ph
    return bytes(body)


def multiboot2_header(entry: int, relocatable: bool = True) -> bytes:
    """Multiboot2 header: information request (1 cmdline, 3 modules, 6 memory map), entry address,
    relocatable (the loader may move the image, as Barrelfish's per-core CPU drivers need), end."""
    tags = b""
    req = struct.pack("<HHI", 1, 0, 8 + 12) + struct.pack("<III", 1, 3, 6)
    tags += req + bytes(-len(req) % 8)
    tags += struct.pack("<HHII", 3, 0, 12, entry) + bytes(4)
    if relocatable:   # tag 10: min_addr, max_addr, align, preference (1: lowest address)
        tags += struct.pack("<HHIIIII", 10, 0, 24, 0x100000, 0xFFFFFFFF, PAGE, 1)
    tags += struct.pack("<HHI", 0, 0, 8)
    length = 16 + len(tags)
    magic, arch = 0xE85250D6, 0
    checksum = (-(magic + arch + length)) & 0xFFFFFFFF
    return struct.pack("<IIII", magic, arch, length, checksum) + tags


def multiboot1_header() -> bytes:
    magic, flags = 0x1BADB002, 0x3           # page-align modules, give memory information
    return struct.pack("<III", magic, flags, (-(magic + flags)) & 0xFFFFFFFF)


def multiboot2_elf(entry: int = 0x100000 + PAGE, load: int = 0x100000, size: int = 16 * 1024) -> bytes:
    if load % PAGE or not load <= entry < load + PAGE + size:
        raise MksimError(f"entry {entry:#x} must lie in the image loaded at {load:#x}")
    return _elf64(entry, load, bytes([0x90]) * size, multiboot2_header(entry), 0x1000 - 0x100)


def multiboot1_elf(entry: int = 0x100000 + PAGE, load: int = 0x100000, size: int = 16 * 1024) -> bytes:
    return _elf64(entry, load, bytes([0x90]) * size, multiboot1_header(), 0x1000 - 0x100)


def bzimage(version: str = "6.1.0-mksim (mksim) #1 SMP", payload: int = 64 * 1024, setup_sects: int = 4,
            pref_address: int = 0x1000000, kernel_alignment: int = 0x200000) -> bytes:
    """A protocol 2.15 bzImage: boot sector, setup header, setup code sectors, protected-mode payload."""
    if not 1 <= setup_sects <= 64:
        raise MksimError(f"setup_sects {setup_sects}: must be 1..64")
    setup = bytearray(512 * (1 + setup_sects))
    setup[0x1F1] = setup_sects
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x6a"                      # jump over the header: it ends at 0x202 + 0x6A
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x020F)
    vs = 0x400                                           # the version string, in the setup sectors
    setup[vs:vs + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<H", setup, 0x20E, vs - 0x200)
    setup[0x211] = 0x01                                  # loadflags: LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, 0x100000)       # code32_start
    struct.pack_into("<I", setup, 0x22C, 0x7FFFFFFF)     # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = 1                                     # relocatable_kernel
    setup[0x235] = (kernel_alignment.bit_length() - 1) & 0xFF   # min_alignment (log2)
    struct.pack_into("<H", setup, 0x236, 0x1 | 0x2 | 0x8)      # xloadflags: 64-bit entry, above 4 GiB, EFI handover 64
    struct.pack_into("<I", setup, 0x238, 2047)           # cmdline_size
    struct.pack_into("<I", setup, 0x248, 0)              # payload_offset
    struct.pack_into("<I", setup, 0x24C, payload)        # payload_length
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, payload + 0x100000)   # init_size
    syssize = (payload + 15) // 16
    struct.pack_into("<I", setup, 0x1F4, syssize)
    return bytes(setup) + bytes([0xF4]) * payload


def elf_module(size: int = 8 * 1024, load: int = 0x400000) -> bytes:
    """A plain ELF64 executable (no Multiboot header): what a Multiboot module such as Barrelfish's
    monitor is."""
    return _elf64(load + PAGE, load, bytes([0x90]) * size, b"", 0x100)


def initrd_cpio(files: dict[str, bytes] | None = None) -> bytes:
    """An initramfs: a cpio archive in the 'newc' format (what the kernel unpacks), mtime 0."""
    files = files if files is not None else {"init": b"#!/bin/sh\necho mksim\n"}
    out = bytearray()

    def entry(name: str, data: bytes, mode: int, ino: int) -> None:
        nm = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + nm)
        out.extend(bytes(-len(out) % 4))
        out.extend(data)
        out.extend(bytes(-len(out) % 4))

    for ino, (name, data) in enumerate(sorted(files.items()), start=1):
        entry(name, data, 0o100755, ino)
    entry("TRAILER!!!", b"", 0, 0)
    out.extend(bytes(-len(out) % 512))
    return bytes(out)


IMAGES = {
    "mini-mb2.elf": multiboot2_elf,
    "mini-mb1.elf": multiboot1_elf,
    "mini-bzImage": bzimage,
    "mini-monitor.elf": elf_module,
    "mini-initrd.cpio": initrd_cpio,
}


def write_examples(folder: str) -> list[str]:
    """Write the example images (deterministic bytes) into ``folder``; returns their paths."""
    import os
    os.makedirs(folder, exist_ok=True)
    out = []
    for name, make in IMAGES.items():
        path = os.path.join(folder, name)
        data = make()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        out.append(path)
    return out
