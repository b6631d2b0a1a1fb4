"""Loaders: place real kernel images, modules, command lines and boot information in simulated memory.

``place`` reads an image (gzip/xz are decompressed), picks the boot protocol
the plan names (or the one the image has), and returns a ``BootRecord``: the
plain record of what was loaded where, which ``kernels/base.py`` wraps as a
kernel instance.  Nothing is written yet; ``write`` puts the record's bytes
into a workload.  Every byte must land inside the kernel's partition.

* Multiboot (GRUB's ``multiboot``/``multiboot2``): ELF PT_LOAD segments at
  their physical addresses, or the Multiboot1 address fields when flag bit 16
  is set (a.out kludge); modules page-aligned after the kernel; the boot
  information structure after the modules.  Magic in EAX, address in EBX.
* Linux (GRUB's ``linux``, the 64-bit boot protocol): the protected-mode
  kernel at ``pref_address`` when it lies in the partition, otherwise at the
  partition's start rounded up to ``kernel_alignment`` (relocatable images) or
  at ``code32_start``; the zero page with the setup header copy and an E820
  map of the partition; the command line; the initrd placed as GRUB does.
"""
from __future__ import annotations

import gzip
import lzma
import os
from dataclasses import dataclass, field

from boot import bootinfo as bi
from boot import images
from hwmodel.errors import MksimError

PAGE = 4096


@dataclass
class BootRecord:
    name: str
    cores: list[int]
    partition: list[tuple[int, int]]
    image: str
    protocol: str                       # multiboot | multiboot2 | linux
    entry: int
    cmdline: str
    bootinfo_addr: int
    magic: int                          # EAX at entry (Multiboot), 0 for Linux (RSI = zero page)
    segments: list[tuple[int, bytes]] = field(default_factory=list)   # (physical address, bytes)
    modules: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, cmdline)
    info: dict = field(default_factory=dict)
    reserved: list[tuple[int, int]] = field(default_factory=list)   # memory the kernel will use (init_size)
    personality: str = "minimal"        # the plan line's --personality (kernels.registry.DEFAULT)

    @property
    def loaded_bytes(self) -> int:
        return sum(len(b) for _, b in self.segments)


def resolve(path: str, base_dir) -> str:
    """A relative image path against each base folder in turn (the first that has it; else the first)."""
    if os.path.isabs(path):
        return path
    bases = [base_dir] if isinstance(base_dir, str) else list(base_dir)
    for b in bases:
        if os.path.exists(os.path.join(b, path)):
            return os.path.join(b, path)
    return os.path.join(bases[0], path)


def read_image(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MksimError(f"cannot read kernel image: {e.strerror or e}", where=path) from None
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise MksimError(f"corrupt compressed image: {e}", where=path) from None
    return data


def _inside(rng: list[tuple[int, int]], lo: int, hi: int) -> bool:
    return any(a <= lo and hi <= b for a, b in rng)


def _check_inside(name: str, what: str, lo: int, hi: int, partition: list[tuple[int, int]], where: str = "") -> None:
    if not _inside(partition, lo, hi):
        parts = ", ".join(f"[{a:#x}, {b:#x})" for a, b in partition)
        raise MksimError(f"kernel {name}: {what} at [{lo:#x}, {hi:#x}) lies outside its partition {parts}"
                         + (" (the image is not relocatable)" if what == "a segment" else ""), where=where or None)


def _mmap(partition: list[tuple[int, int]]) -> tuple[bi.Region, ...]:
    return tuple(bi.Region(a, b - a, bi.E820_RAM) for a, b in partition)


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


LOW_RESERVED = 1 << 20     # the first MiB: trampolines and their data (boot/smp.py); loaders keep out


def _hole(partition: list[tuple[int, int]], size: int, avoid: list[tuple[int, int]]) -> int:
    """The lowest page-aligned address in the partition (above the first MiB) where ``size`` bytes clear
    every ``avoid`` range."""
    avoid = [(lo // PAGE * PAGE, _align(hi, PAGE)) for lo, hi in avoid]      # whole pages: never share one
    for a, b in sorted(partition):
        at = _align(max(a, LOW_RESERVED), PAGE)
        while at + size <= b:
            clash = [hi for lo, hi in avoid if at < hi and lo < at + size]
            if not clash:
                return at
            at = _align(max(clash), PAGE)
    raise MksimError(f"no room for {size} bytes of boot data in the partition")


def place_multiboot(name: str, path: str, data: bytes, info: dict, protocol: str, cores: list[int],
                    partition: list[tuple[int, int]], cmdline: str, modules: list[tuple[str, str]],
                    base_dir: str) -> BootRecord:
    segs: list[tuple[int, bytes]] = []
    mb1 = info.get("multiboot1")
    entry = None
    if protocol == "multiboot" and mb1 and "load_addr" in mb1:        # a.out kludge: the header's addresses
        off = mb1["offset"] - (mb1["header_addr"] - mb1["load_addr"])
        end = mb1.get("load_end_addr") or (mb1["load_addr"] + len(data) - off)
        segs.append((mb1["load_addr"], data[off:off + end - mb1["load_addr"]]))
        bss_end = mb1.get("bss_end_addr") or 0
        if bss_end > end:
            segs.append((end, bytes(bss_end - end)))
        entry = mb1["entry_addr"]
    else:
        elf = info.get("elf")
        if not elf:
            raise MksimError(f"kernel {name}: a {protocol} kernel must be ELF (or Multiboot1 with address fields)",
                             where=path)
        for s in elf["segments"]:
            if s["type"] != 1 or s["memsz"] == 0:
                continue
            body = data[s["offset"]:s["offset"] + s["filesz"]]
            if len(body) < s["filesz"]:
                raise MksimError(f"kernel {name}: truncated image: a segment needs bytes {s['offset']:#x}.."
                                 f"{s['offset'] + s['filesz']:#x}, the file has {len(data):#x}", where=path)
            segs.append((s["paddr"], body + bytes(s["memsz"] - len(body))))
        entry = elf["entry"]
        mb2 = info.get("multiboot2") or {}
        reloc = None
        for t in mb2.get("tags", []):
            if t.get("type") == 3 and "entry_addr" in t:
                entry = t["entry_addr"]
            if t.get("type") == 10:
                reloc = t
        lo_l = min(a for a, _ in segs)
        hi_l = max(a + len(b) for a, b in segs)
        if protocol == "multiboot2" and reloc is not None and not _inside(partition, lo_l, hi_l):
            # Multiboot2 relocatable tag: move the whole image to the lowest (or highest) aligned place
            al = max(reloc.get("align", PAGE), 1)
            size = hi_l - lo_l
            spots = []
            for a, b in partition:
                first = _align(max(a, reloc.get("min_addr", 0), LOW_RESERVED), al)
                last = min(b, reloc.get("max_addr", 2**32 - 1) + 1) - size
                if first <= last:
                    spots.append(first if reloc.get("preference") != 2 else last // al * al)
            if not spots:
                raise MksimError(f"kernel {name}: no room to relocate its {size} bytes inside its partition",
                                 where=path)
            base = min(spots) if reloc.get("preference") != 2 else max(spots)
            delta = base - lo_l
            segs = [(a + delta, b) for a, b in segs]
            entry += delta
    if not segs:
        raise MksimError(f"kernel {name}: no loadable segment", where=path)
    for a, b in segs:
        _check_inside(name, "a segment", a, a + len(b), partition, path)
    top = _align(max(a + len(b) for a, b in segs), PAGE)
    mods = []
    for mpath, mcmd in modules:
        full = resolve(mpath, base_dir)
        body = read_image(full)
        _check_inside(name, f"module {mpath}", top, top + len(body), partition)
        segs.append((top, body))
        mods.append((top, top + len(body), mcmd or mpath))
        top = _align(top + len(body), PAGE)
    upper_kib = min(max(0, (max(b for _, b in partition) - (1 << 20)) // 1024), 0xFFFFFFFF)   # saturates
    lower_kib = 640 if any(a == 0 for a, _ in partition) else 0
    binfo = bi.BootInfo(cmdline, "mksim (GRUB-style)", tuple(bi.Module(*m) for m in mods), _mmap(partition),
                        lower_kib, upper_kib)
    raw = bi.mb2_info(binfo) if protocol == "multiboot2" else bi.mb1_info(binfo, top)
    _check_inside(name, "the boot information", top, top + len(raw), partition)
    segs.append((top, raw))
    magic = bi.MB2_MAGIC if protocol == "multiboot2" else bi.MB1_MAGIC
    return BootRecord(name, cores, partition, path, protocol, entry, cmdline, top, magic, segs, mods, info)


def _size_arg(n: int) -> str:
    for unit, k in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


def mpart_args(partition: list[tuple[int, int]]) -> str:
    """Kernel command-line reservations that keep a Linux kernel inside its partition, as Popcorn's mpart
    writes them: ``memmap=SIZE$START`` for every hole between 1 MiB and the partition's end, and
    ``mem=END``."""
    holes, at = [], 1 << 20
    for a, b in sorted(partition):
        if a > at:
            holes.append((at, a))
        at = max(at, b)
    args = [f"memmap={_size_arg(b - a)}${a:#x}" for a, b in holes]
    return " ".join(args + [f"mem={_size_arg(at)}"])


def place_linux(name: str, path: str, data: bytes, info: dict, cores: list[int], partition: list[tuple[int, int]],
                cmdline: str, initrd: list[str], base_dir: str) -> BootRecord:
    h = info.get("linux_setup_header")
    if not h or "version" not in h or h["version"] < 0x0206:
        raise MksimError(f"kernel {name}: the Linux boot protocol needs a bzImage of protocol 2.06 or later",
                         where=path)
    setup_size = 512 * (1 + (h["setup_sects"] or 4))
    kernel = data[setup_size:]
    if "syssize" in h and len(kernel) < 16 * h["syssize"]:
        raise MksimError(f"kernel {name}: truncated bzImage: syssize says {16 * h['syssize']} bytes of "
                         f"protected-mode kernel, the file has {len(kernel)}", where=path)
    align = h.get("kernel_alignment", 0x200000) or 0x200000
    need = max(len(kernel), h.get("init_size", 0))
    pref = h.get("pref_address", 0x100000)
    if _inside(partition, pref, pref + need):
        at = pref
    elif h.get("relocatable_kernel"):
        at = next((_align(max(a, LOW_RESERVED), align) for a, b in partition
                   if _align(max(a, LOW_RESERVED), align) + need <= b), -1)
        if at < 0:
            raise MksimError(f"kernel {name}: no {align:#x}-aligned room for {need} bytes in its partition",
                             where=path)
    else:
        at = h.get("code32_start", 0x100000)
    _check_inside(name, "the kernel", at, at + need, partition, path)
    segs = [(at, kernel)]
    zp_at = _hole(partition, 2 * PAGE, [(at, at + need)])
    cmd_at = zp_at + PAGE
    if "mem=" not in cmdline and "memmap=" not in cmdline:
        cmdline = f"{cmdline} {mpart_args(partition)}".strip()
    cmd = cmdline.encode() + b"\0"
    if len(cmd) > h.get("cmdline_size", 255) + 1:
        raise MksimError(f"kernel {name}: command line of {len(cmd) - 1} bytes exceeds cmdline_size "
                         f"{h.get('cmdline_size', 255)}", where=path)
    rd_at, rd_size = 0, 0
    if initrd:
        bodies = []
        for p in initrd:
            body = read_image(resolve(p, base_dir))
            bodies.append(body + bytes(-len(body) % 4))     # GRUB aligns each initrd to 4 bytes
        rd = b"".join(bodies)
        rd_size = len(rd)
        # XLF_CAN_BE_LOADED_ABOVE_4G: the 64-bit protocol takes an initrd anywhere (ext_ramdisk_image)
        limit = 2**64 - 1 if h.get("xloadflags", 0) & 2 else h.get("initrd_addr_max", 0x37FFFFFF)
        rd_at = bi.place_initrd(rd_size, limit, list(_mmap(partition)),
                                [(0, LOW_RESERVED), (at, at + need), (zp_at, cmd_at + PAGE)])
        segs.append((rd_at, rd))
    zp = bi.zero_page(data[:setup_size], bi.LinuxParams(cmd_at, rd_at, rd_size, list(_mmap(partition)), 0x72))
    for a, b in ((zp_at, zp), (cmd_at, cmd)):
        _check_inside(name, "the zero page and command line", a, a + len(b), partition)
        segs.append((a, b))
    entry = at + 0x200 if h.get("xloadflags", 0) & 1 else at      # 64-bit entry: startup_64 at +0x200
    return BootRecord(name, cores, partition, path, "linux", entry, cmdline, zp_at, 0, segs, [], info,
                      [(at, at + need)])


def place(plan, cfg, base_dir: str = ".") -> BootRecord:
    """Load ``plan`` (a ``boot.grubcfg.KernelPlan``) on machine ``cfg``."""
    if not plan.image:
        raise MksimError(f"kernel {plan.name}: no image to load", where=plan.where)
    path = resolve(plan.image, base_dir)
    data = read_image(path)
    info = images.inspect_image(data, path)
    partition = plan.memory or [(0, cfg.memory.size)]
    cores = plan.cores or list(range(cfg.cores))
    for a, b in partition:
        if b > cfg.memory.size:
            raise MksimError(f"kernel {plan.name}: partition [{a:#x}, {b:#x}) runs past the machine's "
                             f"{cfg.memory.size:#x} bytes of memory", where=plan.where)
    if any(c >= cfg.cores for c in cores):
        raise MksimError(f"kernel {plan.name}: cores {cores} but {cfg.name} has {cfg.cores}", where=plan.where)
    proto = plan.loader or ("multiboot2" if info.get("multiboot2") else "multiboot" if info.get("multiboot1")
                            else "linux")
    if proto in ("multiboot", "multiboot2"):
        if not info.get(proto if proto == "multiboot2" else "multiboot1"):
            raise MksimError(f"kernel {plan.name}: {proto} asked for, but the image has no such header", where=path)
        return place_multiboot(plan.name, path, data, info, proto, cores, partition, plan.cmdline,
                               list(plan.modules), base_dir)
    if plan.modules:
        raise MksimError(f"kernel {plan.name}: modules need a Multiboot kernel", where=plan.where)
    return place_linux(plan.name, path, data, info, cores, partition, plan.cmdline, list(plan.initrd), base_dir)


def write(rec: BootRecord, w) -> None:
    """Put the record's bytes into the workload's memory."""
    for a, b in rec.segments:
        w.write(a, b)
