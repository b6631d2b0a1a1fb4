"""Headers of real kernel image files: what a boot loader reads before it loads one.

Formats (written from their specifications):

* the Linux x86 boot protocol setup header of a bzImage (``Documentation/arch/x86/boot.rst``),
  every field from ``setup_sects`` (0x1F1) to ``kernel_info_offset`` (0x268) under the name
  boot.rst gives it, each only when the image's protocol ``version`` defines it;
* Multiboot 1 (magic 0x1BADB002, first 8192 bytes, 4-byte aligned), including the
  "a.out kludge" (flag bit 16: the address fields are valid and override ELF);
* Multiboot 2 (magic 0xE85250D6, first 32768 bytes, 8-byte aligned) with its tags;
* ELF32/ELF64 file header and program headers.

Only headers are read: a file cut short after its headers still inspects.  gzip and xz
files are decompressed, but only their first :data:`DECOMPRESS_LIMIT` bytes.

``inspect_image(data, name)`` returns a dict with the sections found
(``linux_setup_header``, ``multiboot1``, ``multiboot2``, ``elf``) plus ``compression``
and ``format``; every bad input raises :class:`hwmodel.errors.MksimError` naming the
file, the field and the value.
"""
from __future__ import annotations

import lzma
import struct
import zlib

from hwmodel.errors import MksimError

DECOMPRESS_LIMIT = 512 << 10   # bytes of a gzip/xz image that are decompressed

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"

MB1_MAGIC = 0x1BADB002
MB1_SEARCH = 8192
MB1_ALIGN = 4
MB2_MAGIC = 0xE85250D6
MB2_SEARCH = 32768
MB2_ALIGN = 8

HDRS = 0x53726448             # "HdrS" at 0x202, little-endian
BOOT_FLAG = 0xAA55


class NoImageHeader(MksimError):
    """No known kernel image header in the file (it may be something else, e.g. text)."""


# ----------------------------------------------------------------------------- helpers
def _u(data: bytes, off: int, size: int) -> int:
    return int.from_bytes(data[off:off + size], "little")


def _truncated(name: str, what: str, need: int, have: int) -> MksimError:
    return MksimError(f"truncated: {what} needs {need} bytes, file has {have}", where=name)


def decompress(data: bytes, name: str, limit: int = DECOMPRESS_LIMIT) -> tuple[bytes, str | None]:
    """(up to ``limit`` leading bytes of the decompressed image, "gzip"/"xz"/None).

    A stream cut short is fine (its leading bytes are returned); corrupt data is an error.
    """
    if data[:2] == GZIP_MAGIC:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(data, limit)
        except zlib.error as e:
            raise MksimError(f"gzip data corrupt: {e}", where=name) from None
        return out, "gzip"
    if data[:6] == XZ_MAGIC:
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            out = d.decompress(data, max_length=limit)
        except lzma.LZMAError as e:
            raise MksimError(f"xz data corrupt: {e}", where=name) from None
        return out, "xz"
    return data, None


# ----------------------------------------------------------------------------- Linux
# (offset, size, name, minimum protocol version) -- the table "The real-mode kernel
# header" of boot.rst; 0 means "ALL" (every version, including pre-2.00 images).
LINUX_FIELDS: tuple[tuple[int, int, str, int], ...] = (
    (0x1F1, 1, "setup_sects", 0),
    (0x1F2, 2, "root_flags", 0),
    (0x1F4, 4, "syssize", 0x0204),
    (0x1F8, 2, "ram_size", 0),
    (0x1FA, 2, "vid_mode", 0),
    (0x1FC, 2, "root_dev", 0),
    (0x1FE, 2, "boot_flag", 0),
    (0x200, 2, "jump", 0x0200),
    (0x202, 4, "header", 0x0200),
    (0x206, 2, "version", 0x0200),
    (0x208, 4, "realmode_swtch", 0x0200),
    (0x20C, 2, "start_sys_seg", 0x0200),
    (0x20E, 2, "kernel_version", 0x0200),
    (0x210, 1, "type_of_loader", 0x0200),
    (0x211, 1, "loadflags", 0x0200),
    (0x212, 2, "setup_move_size", 0x0200),
    (0x214, 4, "code32_start", 0x0200),
    (0x218, 4, "ramdisk_image", 0x0200),
    (0x21C, 4, "ramdisk_size", 0x0200),
    (0x220, 4, "bootsect_kludge", 0x0200),
    (0x224, 2, "heap_end_ptr", 0x0201),
    (0x226, 1, "ext_loader_ver", 0x0202),
    (0x227, 1, "ext_loader_type", 0x0202),
    (0x228, 4, "cmd_line_ptr", 0x0202),
    (0x22C, 4, "initrd_addr_max", 0x0203),
    (0x230, 4, "kernel_alignment", 0x0205),
    (0x234, 1, "relocatable_kernel", 0x0205),
    (0x235, 1, "min_alignment", 0x020A),
    (0x236, 2, "xloadflags", 0x020C),
    (0x238, 4, "cmdline_size", 0x0206),
    (0x23C, 4, "hardware_subarch", 0x0207),
    (0x240, 8, "hardware_subarch_data", 0x0207),
    (0x248, 4, "payload_offset", 0x0208),
    (0x24C, 4, "payload_length", 0x0208),
    (0x250, 8, "setup_data", 0x0209),
    (0x258, 8, "pref_address", 0x020A),
    (0x260, 4, "init_size", 0x020A),
    (0x264, 4, "handover_offset", 0x020B),
    (0x268, 4, "kernel_info_offset", 0x020F),
)
LINUX_FIELD_NAMES = tuple(f[2] for f in LINUX_FIELDS)
KERNEL_VERSION_MAX = 256   # longest kernel version string read


def _fmt_proto(v: int) -> str:
    return f"{v >> 8}.{v & 0xFF:02d}"


def parse_linux_setup_header(data: bytes, name: str) -> dict | None:
    """The setup header of a Linux x86 boot-protocol image, or None if there is none.

    There is one when the boot sector ends in boot_flag 0xAA55 (0x1FE); with "HdrS" at
    0x202 the protocol ``version`` at 0x206 says which fields exist (2.00+), otherwise
    it is a pre-2.00 image (or another boot sector) and only the "ALL" fields exist.
    """
    if len(data) < 0x200 or _u(data, 0x1FE, 2) != BOOT_FLAG:
        return None
    magic = data[0x202:0x206]
    if 0 < len(magic) < 4 and b"HdrS".startswith(magic):
        raise _truncated(name, "Linux setup header (header 'HdrS' at 0x202)", 0x206, len(data))
    if magic == b"HdrS":
        if len(data) < 0x208:
            raise _truncated(name, "Linux setup header (version at 0x206)", 0x208, len(data))
        version = _u(data, 0x206, 2)
        if version < 0x0200:
            raise MksimError(f"Linux setup header: version {version:#06x} with header 'HdrS' "
                             f"at 0x202 (a 'HdrS' image has protocol 2.00 or later)", where=name)
    else:
        version = 0   # before 2.00: no "HdrS", only the fields marked ALL
    fields = [f for f in LINUX_FIELDS if version >= f[3]]
    need = max(off + size for off, size, _, _ in fields)
    if len(data) < need:
        raise _truncated(name, f"Linux setup header (protocol {_fmt_proto(version) if version else '< 2.00'})",
                         need, len(data))
    hdr: dict = {"protocol": _fmt_proto(version) if version else "pre-2.00"}
    for off, size, fname, _ in fields:
        hdr[fname] = _u(data, off, size)
    if hdr["setup_sects"] == 0:
        hdr["setup_sects"] = 4    # boot.rst: 0 means 4, for backwards compatibility
    kv = hdr.get("kernel_version", 0)
    if kv:
        start = kv + 0x200
        if start < len(data):     # a file cut short after its headers has no string
            raw = data[start:start + KERNEL_VERSION_MAX]
            raw = raw.split(b"\0", 1)[0]
            hdr["kernel_version_string"] = raw.decode("ascii", "replace")
    return hdr


# ----------------------------------------------------------------------------- Multiboot 1
MB1_ADDR_FIELDS = ("header_addr", "load_addr", "load_end_addr", "bss_end_addr", "entry_addr")
MB1_VIDEO_FIELDS = ("mode_type", "width", "height", "depth")
MB1_FLAG_VIDEO = 1 << 2
MB1_FLAG_ADDR = 1 << 16


def _find_magic(data: bytes, magic: int, window: int, align: int, fields: int) -> list[int]:
    """Offsets (aligned, inside the first ``window`` bytes, with room for ``fields`` u32s
    there) where the u32 ``magic`` occurs."""
    pat = magic.to_bytes(4, "little")
    end = min(len(data), window) - 4 * fields
    out, i = [], data.find(pat, 0, max(0, end + 4))
    while 0 <= i <= end:
        if i % align == 0:
            out.append(i)
        i = data.find(pat, i + 1, end + 4)
    return out


def _partial_header(data: bytes, magic: int, window: int, align: int) -> int | None:
    """Offset of an aligned magic at the very end of a short file (a header cut off)."""
    pat = magic.to_bytes(4, "little")
    lo = max(0, min(len(data), window) - 16)
    i = data.find(pat, lo)
    while i >= 0:
        if i % align == 0 and i < window:
            return i
        i = data.find(pat, i + 1)
    return None


def parse_multiboot1(data: bytes, name: str) -> dict | None:
    """The Multiboot 1 header, or None if the first 8192 bytes hold none.

    The first magic (4-byte aligned) whose magic + flags + checksum == 0 (mod 2**32) is the
    header; a magic there without a valid checksum anywhere is an error (GRUB refuses it).
    """
    cands = _find_magic(data, MB1_MAGIC, MB1_SEARCH, MB1_ALIGN, 3)
    if not cands:
        if len(data) < MB1_SEARCH:
            off = _partial_header(data, MB1_MAGIC, MB1_SEARCH, MB1_ALIGN)
            if off is not None:
                raise _truncated(name, f"multiboot1 header at {off:#x}", off + 12, len(data))
        return None
    for off in cands:
        flags, checksum = _u(data, off + 4, 4), _u(data, off + 8, 4)
        if (MB1_MAGIC + flags + checksum) & 0xFFFFFFFF == 0:
            break
    else:
        off = cands[0]
        flags, checksum = _u(data, off + 4, 4), _u(data, off + 8, 4)
        raise MksimError(f"multiboot1 header at {off:#x}: checksum {checksum:#010x} with flags "
                         f"{flags:#010x} does not sum to 0 (magic + flags + checksum = "
                         f"{(MB1_MAGIC + flags + checksum) & 0xFFFFFFFF:#010x})", where=name)
    mb: dict = {"offset": off, "flags": flags, "checksum": checksum}
    need = 12
    if flags & MB1_FLAG_ADDR:
        need = 32
    if flags & MB1_FLAG_VIDEO:
        need = 48
    if len(data) < off + need:
        raise _truncated(name, f"multiboot1 header at {off:#x} (flags {flags:#x})", off + need, len(data))
    if flags & MB1_FLAG_ADDR:
        for i, f in enumerate(MB1_ADDR_FIELDS):
            mb[f] = _u(data, off + 12 + 4 * i, 4)
    if flags & MB1_FLAG_VIDEO:
        for i, f in enumerate(MB1_VIDEO_FIELDS):
            mb[f] = _u(data, off + 32 + 4 * i, 4)
    return mb


# ----------------------------------------------------------------------------- Multiboot 2
# tag type -> (name, fields after the 8-byte tag head, each a u32)
MB2_TAGS: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("end", ()),
    1: ("information_request", ()),          # + mbi_tag_types[] to the end of the tag
    2: ("address", ("header_addr", "load_addr", "load_end_addr", "bss_end_addr")),
    3: ("entry_address", ("entry_addr",)),
    4: ("console_flags", ("console_flags",)),
    5: ("framebuffer", ("width", "height", "depth")),
    6: ("module_alignment", ()),
    7: ("efi_boot_services", ()),
    8: ("efi_i386_entry_address", ("entry_addr",)),
    9: ("efi_amd64_entry_address", ("entry_addr",)),
    10: ("relocatable", ("min_addr", "max_addr", "align", "preference")),
}
MB2_ARCHITECTURES = {0: "i386", 4: "mips32"}


def parse_multiboot2(data: bytes, name: str) -> dict | None:
    """The Multiboot 2 header with its tags, or None if the first 32768 bytes hold none."""
    cands = _find_magic(data, MB2_MAGIC, MB2_SEARCH, MB2_ALIGN, 4)
    if not cands:
        if len(data) < MB2_SEARCH:
            off = _partial_header(data, MB2_MAGIC, MB2_SEARCH, MB2_ALIGN)
            if off is not None:
                raise _truncated(name, f"multiboot2 header at {off:#x}", off + 16, len(data))
        return None
    for off in cands:
        arch, hlen, checksum = (_u(data, off + 4 + 4 * i, 4) for i in range(3))
        if (MB2_MAGIC + arch + hlen + checksum) & 0xFFFFFFFF == 0:
            break
    else:
        off = cands[0]
        arch, hlen, checksum = (_u(data, off + 4 + 4 * i, 4) for i in range(3))
        raise MksimError(f"multiboot2 header at {off:#x}: checksum {checksum:#010x} does not sum to 0 "
                         f"(magic + architecture {arch} + header_length {hlen} + checksum = "
                         f"{(MB2_MAGIC + arch + hlen + checksum) & 0xFFFFFFFF:#010x})", where=name)
    where = f"multiboot2 header at {off:#x}"
    if hlen < 16 + 8:
        raise MksimError(f"{where}: header_length {hlen} is too small (16 bytes of header and "
                         f"an 8-byte end tag at least)", where=name)
    if len(data) < off + hlen:
        raise _truncated(name, f"{where} (header_length {hlen})", off + hlen, len(data))
    tags: list[dict] = []
    pos = off + 16
    end = off + hlen
    while True:
        if pos + 8 > end:
            raise MksimError(f"{where}: no end tag (type 0) within header_length {hlen}", where=name)
        ttype, tflags, tsize = _u(data, pos, 2), _u(data, pos + 2, 2), _u(data, pos + 4, 4)
        twhere = f"{where}: tag type {ttype} at {pos:#x}"
        if tsize < 8:
            raise MksimError(f"{twhere}: size {tsize} is smaller than the 8-byte tag head", where=name)
        if pos + tsize > end:
            raise MksimError(f"{twhere}: size {tsize} runs past header_length {hlen} "
                             f"(header ends at {end:#x})", where=name)
        tag: dict = {"type": ttype, "flags": tflags, "size": tsize, "offset": pos}
        known = MB2_TAGS.get(ttype)
        if known is not None:
            tname, tfields = known
            tag["name"] = tname
            need = 8 + 4 * len(tfields)
            if tsize < need:
                raise MksimError(f"{twhere} ({tname}): size {tsize} is smaller than the {need} bytes "
                                 f"its fields need", where=name)
            for i, f in enumerate(tfields):
                tag[f] = _u(data, pos + 8 + 4 * i, 4)
            if ttype == 1:
                tag["mbi_tag_types"] = [_u(data, pos + 8 + 4 * i, 4) for i in range((tsize - 8) // 4)]
        tags.append(tag)
        if ttype == 0:
            if tsize != 8:
                raise MksimError(f"{twhere}: end tag size {tsize}, must be 8", where=name)
            break
        pos += (tsize + 7) & ~7   # the next tag starts 8-byte aligned
    return {"offset": off, "architecture": arch, "header_length": hlen, "checksum": checksum,
            "tags": tags}


# ----------------------------------------------------------------------------- ELF
ELF_MACHINES = {0: "none", 2: "SPARC", 3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64",
                22: "S390", 40: "ARM", 43: "SPARCV9", 50: "IA-64", 62: "x86-64", 183: "AArch64",
                243: "RISC-V", 258: "LoongArch"}
ELF_TYPES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
PT_NAMES = {0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR",
            7: "TLS", 0x6474E550: "GNU_EH_FRAME", 0x6474E551: "GNU_STACK", 0x6474E552: "GNU_RELRO",
            0x6474E553: "GNU_PROPERTY"}
PN_XNUM = 0xFFFF


def parse_elf(data: bytes, name: str) -> dict | None:
    """ELF file header and program headers, or None if the file is not ELF."""
    if data[:4] != ELF_MAGIC:
        return None
    if len(data) < 6:
        raise _truncated(name, "ELF identification", 16, len(data))
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2):
        raise MksimError(f"ELF header: EI_CLASS {ei_class} (must be 1 for ELF32 or 2 for ELF64)", where=name)
    if ei_data not in (1, 2):
        raise MksimError(f"ELF header: EI_DATA {ei_data} (must be 1 little-endian or 2 big-endian)",
                         where=name)
    is64 = ei_class == 2
    e = "<" if ei_data == 1 else ">"
    ehsize = 64 if is64 else 52
    if len(data) < ehsize:
        raise _truncated(name, f"ELF{64 if is64 else 32} header", ehsize, len(data))
    if is64:
        (e_type, e_machine, _ver, e_entry, e_phoff, e_shoff, _fl, _eh, e_phentsize, e_phnum,
         _shentsize, _shnum, _shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
        ph_fmt, ph_min = e + "IIQQQQQQ", 56
    else:
        (e_type, e_machine, _ver, e_entry, e_phoff, e_shoff, _fl, _eh, e_phentsize, e_phnum,
         _shentsize, _shnum, _shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)
        ph_fmt, ph_min = e + "IIIIIIII", 32
    if e_phnum == PN_XNUM:   # the real count is in sh_info of section header 0
        sh_info_at = e_shoff + (44 if is64 else 28)
        if e_shoff == 0 or len(data) < sh_info_at + 4:
            raise _truncated(name, f"ELF e_phnum {PN_XNUM:#x}: section header 0 at e_shoff {e_shoff:#x}",
                             sh_info_at + 4, len(data))
        e_phnum = struct.unpack_from(e + "I", data, sh_info_at)[0]
    segments = []
    if e_phnum:
        if e_phentsize < ph_min:
            raise MksimError(f"ELF header: e_phentsize {e_phentsize} is smaller than a program header "
                             f"({ph_min} bytes)", where=name)
        need = e_phoff + e_phnum * e_phentsize
        if len(data) < need:
            raise _truncated(name, f"ELF program headers ({e_phnum} at e_phoff {e_phoff:#x})",
                             need, len(data))
        for i in range(e_phnum):
            v = struct.unpack_from(ph_fmt, data, e_phoff + i * e_phentsize)
            if is64:
                p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = v
            else:
                p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align = v
            segments.append({"type": p_type, "type_name": PT_NAMES.get(p_type, f"{p_type:#x}"),
                             "offset": p_offset, "vaddr": p_vaddr, "paddr": p_paddr,
                             "filesz": p_filesz, "memsz": p_memsz, "flags": p_flags, "align": p_align})
    return {"class": "ELF64" if is64 else "ELF32",
            "endianness": "little" if ei_data == 1 else "big",
            "type": e_type, "type_name": ELF_TYPES.get(e_type, f"{e_type:#x}"),
            "machine": e_machine, "machine_name": ELF_MACHINES.get(e_machine, f"{e_machine}"),
            "entry": e_entry, "phoff": e_phoff, "phnum": e_phnum, "segments": segments}


# ----------------------------------------------------------------------------- inspect
def _summary(res: dict) -> str:
    parts = []
    lh = res.get("linux_setup_header")
    if lh is not None:
        if lh["protocol"] == "pre-2.00":
            parts.append("boot sector with boot_flag 0xAA55 and no 'HdrS' (Linux boot protocol "
                         "before 2.00, or not Linux)")
        else:
            s = f"Linux x86 boot protocol {lh['protocol']}"
            if lh.get("kernel_version_string"):
                s += f" (kernel {lh['kernel_version_string'].split(' ')[0]})"
            parts.append(s)
    mb1 = res.get("multiboot1")
    if mb1 is not None:
        parts.append("Multiboot1" + (" (a.out kludge: address fields)" if mb1["flags"] & MB1_FLAG_ADDR else ""))
    mb2 = res.get("multiboot2")
    if mb2 is not None:
        arch = MB2_ARCHITECTURES.get(mb2["architecture"], f"architecture {mb2['architecture']}")
        parts.append(f"Multiboot2 ({arch})")
    elf = res.get("elf")
    if elf is not None:
        parts.append(f"{elf['class']} {elf['type_name']} {elf['machine_name']}")
    s = " + ".join(parts)
    if res.get("compression"):
        s += f", {res['compression']}-compressed"
    return s


def inspect_image(data: bytes, name: str) -> dict:
    """The headers of a kernel image: a dict with the sections found, ``compression`` and
    ``format``.  Raises :class:`MksimError` (``NoImageHeader`` when nothing is known)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MksimError(f"expected bytes, got {type(data).__name__}", where=name)
    raw, comp = decompress(bytes(data), name)
    res: dict = {}
    for key, parse in (("linux_setup_header", parse_linux_setup_header),
                       ("multiboot1", parse_multiboot1),
                       ("multiboot2", parse_multiboot2),
                       ("elf", parse_elf)):
        try:
            sec = parse(raw, name)
        except MksimError as e:
            if comp:   # say which bytes the offsets refer to
                raise MksimError(f"{e} (in the {comp}-decompressed image)") from None
            raise
        if sec is not None:
            res[key] = sec
    if not res:
        what = f" (in the first {len(raw)} bytes of the {comp}-decompressed image)" if comp else ""
        raise NoImageHeader(f"no known kernel image header{what}: not a Linux bzImage, Multiboot1, "
                            f"Multiboot2 or ELF image", where=name)
    res["compression"] = comp
    res["format"] = _summary(res)
    return res


def inspect_file(path: str) -> dict:
    """``inspect_image`` of the file at ``path`` (read errors become MksimError)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise MksimError("is a directory, not an image file", where=path) from None
    except OSError as e:
        raise MksimError(f"cannot read: {e.strerror or e}", where=path) from None
    return inspect_image(data, path)


# ----------------------------------------------------------------------------- text
def _hex(v) -> str:
    return f"{v:#x}" if isinstance(v, int) else str(v)


def format_inspection(res: dict, name: str = "") -> str:
    """Readable text of an ``inspect_image`` result."""
    lines = [f"{name}: {res['format']}" if name else res["format"]]
    lh = res.get("linux_setup_header")
    if lh is not None:
        lines += ["", f"linux_setup_header (protocol {lh['protocol']})"]
        for k, v in lh.items():
            if k == "protocol":
                continue
            if k == "header" and v == HDRS:
                v = "0x53726448 ('HdrS')"
            elif k == "version":
                v = f"{v:#06x} ({_fmt_proto(v)})"
            elif k == "kernel_version_string":
                v = repr(v)
            elif k == "setup_sects":
                v = str(v)
            lines.append(f"  {k:<22} {_hex(v)}")
    mb1 = res.get("multiboot1")
    if mb1 is not None:
        lines += ["", f"multiboot1 header at {mb1['offset']:#x}"]
        for k, v in mb1.items():
            if k != "offset":
                lines.append(f"  {k:<22} {v if k in ('width', 'height', 'depth', 'mode_type') else _hex(v)}")
    mb2 = res.get("multiboot2")
    if mb2 is not None:
        arch = MB2_ARCHITECTURES.get(mb2["architecture"], "?")
        lines += ["", f"multiboot2 header at {mb2['offset']:#x}",
                  f"  {'architecture':<22} {mb2['architecture']} ({arch})",
                  f"  {'header_length':<22} {mb2['header_length']}",
                  f"  {'checksum':<22} {mb2['checksum']:#010x}"]
        for t in mb2["tags"]:
            extra = {k: v for k, v in t.items() if k not in ("type", "flags", "size", "offset", "name")}
            opt = " optional" if t["flags"] & 1 else ""
            desc = ", ".join(f"{k}={v if isinstance(v, list) or k in ('width', 'height', 'depth') else _hex(v)}"
                             for k, v in extra.items())
            lines.append(f"  tag {t['type']:<2} {t.get('name', '(unknown)'):<24} size {t['size']:<3}"
                         f" at {t['offset']:#x}{opt}{'  ' + desc if desc else ''}")
    elf = res.get("elf")
    if elf is not None:
        lines += ["", (f"elf: {elf['class']} {elf['endianness']}-endian, type {elf['type']} "
                       f"({elf['type_name']}), machine {elf['machine']} ({elf['machine_name']}), "
                       f"entry {elf['entry']:#x}")]
        if elf["segments"]:
            lines.append(f"  {'type':<13} {'offset':>10} {'vaddr':>18} {'paddr':>18} {'filesz':>10} "
                         f"{'memsz':>10} flags {'align':>8}")
        for s in elf["segments"]:
            fl = "".join(c if s["flags"] & b else "-" for c, b in (("R", 4), ("W", 2), ("X", 1)))
            lines.append(f"  {s['type_name']:<13} {s['offset']:>#10x} {s['vaddr']:>#18x} {s['paddr']:>#18x} "
                         f"{s['filesz']:>#10x} {s['memsz']:>#10x} {fl:<5} {s['align']:>#8x}")
    return "\n".join(lines) + "\n"
