"""boot.images: kernel image headers, checked on real images from Debian packages
(tests/data/boot/README.md says which) and on images built here to probe each rule."""
from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boot import images
from boot.images import LINUX_FIELD_NAMES, NoImageHeader, inspect_image
from hwmodel.errors import MksimError

DATA = Path(__file__).resolve().parent / "data" / "boot"
VMLINUZ = DATA / "vmlinuz-6.1.0-50-cloud-amd64.head"
IPXE = DATA / "ipxe.lkrn.head"
MEMTEST_BIN = DATA / "memtest86+x64.bin.head"
MEMTEST_EFI = DATA / "memtest86+x64.efi.head"
INVADERS = DATA / "invaders.exec.head"
XEN_GZ = DATA / "xen-4.17-amd64.head.gz"
XEN_EFI = DATA / "xen-4.17-amd64.efi.head"
GNUMACH_GZ = DATA / "gnumach-1.8-486.head.gz"
ALL_SAMPLES = [VMLINUZ, IPXE, MEMTEST_BIN, MEMTEST_EFI, INVADERS, XEN_GZ, XEN_EFI, GNUMACH_GZ]

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# boot.rst's table, written out again here (name -> protocol that defines it) so the
# gating is checked against an independent copy.
PROTO = {
    "setup_sects": 0, "root_flags": 0, "syssize": 0x204, "ram_size": 0, "vid_mode": 0,
    "root_dev": 0, "boot_flag": 0, "jump": 0x200, "header": 0x200, "version": 0x200,
    "realmode_swtch": 0x200, "start_sys_seg": 0x200, "kernel_version": 0x200,
    "type_of_loader": 0x200, "loadflags": 0x200, "setup_move_size": 0x200, "code32_start": 0x200,
    "ramdisk_image": 0x200, "ramdisk_size": 0x200, "bootsect_kludge": 0x200, "heap_end_ptr": 0x201,
    "ext_loader_ver": 0x202, "ext_loader_type": 0x202, "cmd_line_ptr": 0x202,
    "initrd_addr_max": 0x203, "kernel_alignment": 0x205, "relocatable_kernel": 0x205,
    "min_alignment": 0x20A, "xloadflags": 0x20C, "cmdline_size": 0x206, "hardware_subarch": 0x207,
    "hardware_subarch_data": 0x207, "payload_offset": 0x208, "payload_length": 0x208,
    "setup_data": 0x209, "pref_address": 0x20A, "init_size": 0x20A, "handover_offset": 0x20B,
    "kernel_info_offset": 0x20F,
}


def read(p: Path) -> bytes:
    return p.read_bytes()


def linux_fields(hdr: dict) -> set[str]:
    return set(hdr) - {"protocol", "kernel_version_string"}


def with_u(data: bytes, off: int, size: int, value: int) -> bytes:
    b = bytearray(data)
    b[off:off + size] = value.to_bytes(size, "little")
    return bytes(b)


# ----------------------------------------------------------------------------- real images
def test_field_names_are_boot_rst_names():
    assert list(LINUX_FIELD_NAMES) == list(PROTO)          # same names, boot.rst order
    assert LINUX_FIELD_NAMES[0] == "setup_sects" and LINUX_FIELD_NAMES[-1] == "kernel_info_offset"


def test_vmlinuz_debian_6_1():
    r = inspect_image(read(VMLINUZ), VMLINUZ.name)
    assert set(r) == {"linux_setup_header", "compression", "format"}   # the PE stub is not ELF
    h = r["linux_setup_header"]
    assert h["version"] >= 0x020F and h["protocol"] == "2.15"
    assert linux_fields(h) == set(PROTO)                  # 2.15: every field up to 0x268
    assert h["header"] == 0x53726448                       # "HdrS"
    assert h["boot_flag"] == 0xAA55
    assert h["setup_sects"] == 39
    assert h["kernel_version_string"].startswith("6.1.0-50-cloud-amd64 ")
    assert "Debian 6.1.176-1" in h["kernel_version_string"]   # the package's version
    assert h["relocatable_kernel"] == 1
    assert h["xloadflags"] & 1                             # XLF_KERNEL_64
    assert h["loadflags"] & 1                              # LOADED_HIGH
    assert h["kernel_alignment"] == 0x200000
    assert h["pref_address"] == 0x1000000
    assert h["cmdline_size"] == 2047
    assert h["init_size"] > 0 and h["handover_offset"] > 0 and h["kernel_info_offset"] > 0
    assert r["compression"] is None
    assert r["format"].startswith("Linux x86 boot protocol 2.15 (kernel 6.1.0-50-cloud-amd64)")


def test_ipxe_lkrn_old_protocol():
    h = inspect_image(read(IPXE), IPXE.name)["linux_setup_header"]
    assert h["protocol"] == "2.07"
    assert linux_fields(h) == {k for k, v in PROTO.items() if v <= 0x207}
    for later in ("min_alignment", "xloadflags", "payload_offset", "setup_data", "pref_address",
                  "handover_offset", "kernel_info_offset"):
        assert later not in h
    assert h["cmdline_size"] == 2047 and h["relocatable_kernel"] == 0
    assert h["kernel_version_string"] == "1.0.0+git-20190125.36a4c85-5.1"


@pytest.mark.parametrize("path", [MEMTEST_BIN, MEMTEST_EFI])
def test_memtest86plus(path):
    data = read(path)
    r = inspect_image(data, path.name)
    h = r["linux_setup_header"]
    assert h["protocol"] == "2.12"
    assert "kernel_info_offset" not in h and "handover_offset" in h and "xloadflags" in h
    assert h["kernel_version_string"] == "Memtest86+ v6.10"
    assert h["code32_start"] == 0x100000
    assert data[:2] == (b"MZ" if path == MEMTEST_EFI else b"\xea\x05")


def test_grub_invaders_aout_kludge():
    r = inspect_image(read(INVADERS), INVADERS.name)
    mb = r["multiboot1"]
    assert mb == {"offset": 0x84, "flags": 0x10003, "checksum": 0xE4514FFB,
                  "header_addr": 0x100004, "load_addr": 0x100000, "load_end_addr": 0x1019D8,
                  "bss_end_addr": 0x105B50, "entry_addr": 0x100024}
    assert (0x1BADB002 + mb["flags"] + mb["checksum"]) % 2**32 == 0
    e = r["elf"]
    assert e["class"] == "ELF32" and e["machine"] == 3 and e["entry"] == 0x100000
    assert [s["type"] for s in e["segments"]] == [1, 1]
    assert "linux_setup_header" not in r and "multiboot2" not in r
    assert "a.out kludge" in r["format"]


def xen_check(r: dict) -> None:
    assert r["multiboot1"] == {"offset": 0x88, "flags": 3, "checksum": 0xE4524FFB}
    mb2 = r["multiboot2"]
    assert mb2["offset"] == 0x98 and mb2["architecture"] == 0 and mb2["header_length"] == 136
    assert (0xE85250D6 + 0 + 136 + mb2["checksum"]) % 2**32 == 0
    tags = mb2["tags"]
    assert [t["type"] for t in tags] == [1, 6, 10, 4, 5, 7, 9, 0]
    assert [t["offset"] for t in tags] == [0xA8, 0xB8, 0xC0, 0xD8, 0xE8, 0x100, 0x108, 0x118]
    assert all(t["offset"] % 8 == 0 for t in tags)
    by = {t["type"]: t for t in tags}
    assert by[1]["mbi_tag_types"] == [4, 6]
    assert {k: by[10][k] for k in ("min_addr", "max_addr", "align", "preference")} == \
        {"min_addr": 0x200000, "max_addr": 0xFFFFFFFF, "align": 0x200000, "preference": 2}
    assert by[10]["flags"] == 1                           # optional
    assert by[4]["console_flags"] == 2
    assert (by[5]["width"], by[5]["height"], by[5]["depth"]) == (0, 0, 0)
    assert by[9]["entry_addr"] > 0x200000
    assert by[0] == {"type": 0, "flags": 0, "size": 8, "offset": 0x118, "name": "end"}


def test_xen_gz_multiboot1_and_2():
    r = inspect_image(read(XEN_GZ), XEN_GZ.name)
    assert r["compression"] == "gzip"
    xen_check(r)
    e = r["elf"]
    assert (e["class"], e["machine"], e["entry"]) == ("ELF32", 3, 0x200000)
    assert e["segments"][0]["paddr"] == 0x200000
    assert r["format"] == "Multiboot1 + Multiboot2 (i386) + ELF32 EXEC i386, gzip-compressed"


def test_xen_as_xz():
    raw = gzip.decompress(read(XEN_GZ))
    r = inspect_image(lzma.compress(raw, format=lzma.FORMAT_XZ), "xen.xz")
    assert r["compression"] == "xz"
    xen_check(r)


def test_xen_efi_carries_the_same_headers():
    r = inspect_image(read(XEN_EFI), XEN_EFI.name)
    assert r["multiboot1"]["offset"] == 0x308 and r["multiboot2"]["offset"] == 0x318
    assert [t["type"] for t in r["multiboot2"]["tags"]] == [1, 6, 10, 4, 5, 7, 9, 0]
    assert "elf" not in r and "linux_setup_header" not in r


def test_gnumach():
    r = inspect_image(read(GNUMACH_GZ), GNUMACH_GZ.name)
    assert r["compression"] == "gzip"
    assert r["multiboot1"] == {"offset": 0x1004, "flags": 3, "checksum": 0xE4524FFB}
    e = r["elf"]
    assert (e["class"], e["machine"], e["endianness"]) == ("ELF64", 62, "little")
    assert [s["type_name"] for s in e["segments"]][:3] == ["LOAD"] * 3


def test_gzip_cut_short_still_inspects():
    comp = read(XEN_GZ)
    xen_check(inspect_image(comp[:len(comp) // 3], "xen-cut.gz"))


def test_only_a_prefix_is_decompressed():
    big = gzip.decompress(read(XEN_GZ)) + bytes(8 << 20)       # 8 MiB of zeros behind
    r = inspect_image(gzip.compress(big, 1), "big.gz")
    xen_check(r)
    raw, comp = images.decompress(gzip.compress(big, 1), "big.gz")
    assert comp == "gzip" and len(raw) == images.DECOMPRESS_LIMIT


def test_corrupt_gzip_is_an_error():
    comp = bytearray(read(XEN_GZ))
    comp[20:60] = bytes(40)
    with pytest.raises(MksimError, match="gzip data corrupt"):
        inspect_image(bytes(comp), "bad.gz")


# ----------------------------------------------------------------------------- Linux gating
@pytest.mark.parametrize("version", [0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207,
                                     0x208, 0x209, 0x20A, 0x20B, 0x20C, 0x20D, 0x20E, 0x20F, 0x210])
def test_fields_follow_protocol_version(version):
    data = with_u(read(VMLINUZ), 0x206, 2, version)
    h = inspect_image(data, "patched")["linux_setup_header"]
    assert h["version"] == version
    assert linux_fields(h) == {k for k, v in PROTO.items() if v <= version}


def test_version_2_02_drops_later_fields():
    h = inspect_image(with_u(read(VMLINUZ), 0x206, 2, 0x0202), "v202")["linux_setup_header"]
    assert h["protocol"] == "2.02"
    assert "cmd_line_ptr" in h and "ext_loader_type" in h and "syssize" not in h
    for gone in ("initrd_addr_max", "kernel_alignment", "relocatable_kernel", "cmdline_size",
                 "xloadflags", "pref_address", "kernel_info_offset"):
        assert gone not in h
    assert h["kernel_version_string"].startswith("6.1.0-50-cloud-amd64")


def test_version_2_10_has_min_alignment_but_not_xloadflags():
    h = inspect_image(with_u(read(VMLINUZ), 0x206, 2, 0x020A), "v210")["linux_setup_header"]
    assert "min_alignment" in h and "pref_address" in h and "init_size" in h
    assert "xloadflags" not in h and "handover_offset" not in h


def test_pre_2_00_boot_sector():
    data = with_u(read(VMLINUZ), 0x202, 4, 0)     # no "HdrS"
    r = inspect_image(data, "old")
    h = r["linux_setup_header"]
    assert h["protocol"] == "pre-2.00"
    assert linux_fields(h) == {k for k, v in PROTO.items() if v == 0}
    assert "kernel_version_string" not in h and "version" not in h
    assert "before 2.00" in r["format"]


def test_setup_sects_zero_means_four():
    h = inspect_image(with_u(read(VMLINUZ), 0x1F1, 1, 0), "s0")["linux_setup_header"]
    assert h["setup_sects"] == 4


def test_hdrs_with_version_below_2_00_is_an_error():
    with pytest.raises(MksimError, match=r"version 0x0105"):
        inspect_image(with_u(read(VMLINUZ), 0x206, 2, 0x0105), "v105")


# ----------------------------------------------------------------------------- truncation
@pytest.mark.parametrize("cut,need", [(0x203, 0x206), (0x207, 0x208), (0x210, 0x26C), (0x240, 0x26C),
                                      (0x26B, 0x26C)])
def test_linux_cut_inside_the_header(cut, need):
    with pytest.raises(MksimError, match=rf"cut: truncated: Linux setup header .*needs {need} bytes, "
                                         rf"file has {cut}$"):
        inspect_image(read(VMLINUZ)[:cut], "cut")


def test_linux_cut_inside_a_2_07_header():
    data = read(IPXE)
    with pytest.raises(MksimError, match="protocol 2.07.*needs 584 bytes, file has 583"):
        inspect_image(data[:0x247], "ipxe")
    h = inspect_image(data[:0x248], "ipxe")["linux_setup_header"]
    assert h["cmdline_size"] == 2047 and "kernel_version_string" not in h


def test_linux_cut_after_the_header():
    h = inspect_image(read(VMLINUZ)[:0x26C], "cut")["linux_setup_header"]
    assert linux_fields(h) == set(PROTO)
    assert "kernel_version_string" not in h               # it lies further on
    h = inspect_image(read(VMLINUZ)[:0x4600], "cut")["linux_setup_header"]
    assert h["kernel_version_string"].startswith("6.1.0-50-cloud-amd64")


def test_linux_cut_before_boot_flag_is_no_image():
    with pytest.raises(NoImageHeader, match="no known kernel image header"):
        inspect_image(read(VMLINUZ)[:0x1FF], "cut")


def test_multiboot1_cut_inside_the_header():
    data = read(INVADERS)
    with pytest.raises(MksimError, match=r"truncated: multiboot1 header at 0x84 .*needs 164 bytes, "
                                         r"file has 150"):
        inspect_image(data[:0x84 + 18], "inv")
    with pytest.raises(MksimError, match=r"truncated: multiboot1 header at 0x84 needs 144 bytes"):
        inspect_image(data[:0x84 + 6], "inv")
    assert inspect_image(data[:0x84 + 32], "inv")["multiboot1"]["entry_addr"] == 0x100024


def test_multiboot2_cut_inside_the_tags():
    raw = gzip.decompress(read(XEN_GZ))
    with pytest.raises(MksimError, match=r"truncated: multiboot2 header at 0x98 \(header_length 136\) "
                                         r"needs 288 bytes, file has 250 \(in the gzip-decompressed"):
        inspect_image(gzip.compress(raw[:250]), "xen.gz")
    xen_check(inspect_image(raw[:288], "xen"))


def test_elf_cut_inside_program_headers():
    raw = gzip.decompress(read(GNUMACH_GZ))
    phoff = struct.unpack_from("<Q", raw, 32)[0]
    with pytest.raises(MksimError, match=r"truncated: ELF program headers"):
        inspect_image(raw[:phoff + 60], "gnumach")
    with pytest.raises(MksimError, match=r"truncated: ELF64 header needs 64 bytes, file has 40"):
        inspect_image(raw[:40], "gnumach")


# ----------------------------------------------------------------------------- checksums
def test_multiboot1_bad_checksum():
    data = with_u(read(INVADERS), 0x84 + 8, 4, 0xE4514FFC)
    with pytest.raises(MksimError, match=r"inv: multiboot1 header at 0x84: checksum 0xe4514ffc .*"
                                         r"does not sum to 0"):
        inspect_image(data, "inv")


def test_multiboot2_bad_checksum():
    raw = bytearray(gzip.decompress(read(XEN_GZ)))
    raw[0x98 + 12] ^= 1
    with pytest.raises(MksimError, match=r"multiboot2 header at 0x98: checksum 0x17adaea3 does not sum to 0"):
        inspect_image(bytes(raw), "xen")


# ----------------------------------------------------------------------------- built headers
def mb1(flags=0, extra=b"") -> bytes:
    return struct.pack("<III", 0x1BADB002, flags, (-(0x1BADB002 + flags)) % 2**32) + extra


def mb2(tags: bytes, arch=0) -> bytes:
    hlen = 16 + len(tags)
    return struct.pack("<IIII", 0xE85250D6, arch, hlen, (-(0xE85250D6 + arch + hlen)) % 2**32) + tags


def tag(ttype, body=b"", flags=0, size=None) -> bytes:
    size = 8 + len(body) if size is None else size
    t = struct.pack("<HHI", ttype, flags, size) + body
    return t + bytes(-len(t) % 8)


END = tag(0)


@pytest.mark.parametrize("off,found", [(0, True), (8192 - 12, True), (8192 - 8, False), (8192, False),
                                       (8196, False)])
def test_multiboot1_search_window(off, found):
    data = bytes(off) + mb1() + bytes(64)
    if found:
        assert inspect_image(data, "mb1")["multiboot1"]["offset"] == off
    else:
        with pytest.raises(NoImageHeader):
            inspect_image(data, "mb1")


def test_multiboot1_must_be_4_byte_aligned():
    with pytest.raises(NoImageHeader):
        inspect_image(bytes(2) + mb1() + bytes(64), "mb1")


def test_multiboot1_video_fields():
    flags = (1 << 2) | (1 << 16)
    r = inspect_image(mb1(flags, struct.pack("<9I", 1, 2, 3, 4, 5, 0, 1024, 768, 32)), "mb1")["multiboot1"]
    assert (r["header_addr"], r["entry_addr"]) == (1, 5)
    assert (r["mode_type"], r["width"], r["height"], r["depth"]) == (0, 1024, 768, 32)
    r = inspect_image(mb1(1 << 2, struct.pack("<9I", *range(9))), "mb1")["multiboot1"]
    assert "header_addr" not in r and r["width"] == 6          # bit 16 clear: no address fields


def test_multiboot1_first_valid_header_wins():
    bad = struct.pack("<III", 0x1BADB002, 0, 0)
    data = bad + bytes(4) + mb1(2) + bytes(32)
    assert inspect_image(data, "mb1")["multiboot1"] == {"offset": 16, "flags": 2,
                                                         "checksum": (-(0x1BADB002 + 2)) % 2**32}


@pytest.mark.parametrize("off,found", [(0, True), (32768 - 24, True), (32768 - 8, False),
                                       (32768, False), (40000, False)])
def test_multiboot2_search_window(off, found):
    data = bytes(off) + mb2(END) + bytes(64)
    if found:
        assert inspect_image(data, "mb2")["multiboot2"]["offset"] == off
    else:
        with pytest.raises(NoImageHeader):
            inspect_image(data, "mb2")


def test_multiboot2_must_be_8_byte_aligned():
    with pytest.raises(NoImageHeader):
        inspect_image(bytes(4) + mb2(END) + bytes(64), "mb2")


def test_multiboot2_all_tag_types():
    tags = (tag(1, struct.pack("<3I", 1, 4, 6)) + tag(2, struct.pack("<4I", 0x100000, 0x100000, 0x180000, 0x190000))
            + tag(3, struct.pack("<I", 0x100020)) + tag(4, struct.pack("<I", 3), flags=1)
            + tag(5, struct.pack("<3I", 800, 600, 24), flags=1) + tag(6) + tag(7)
            + tag(8, struct.pack("<I", 0x100030)) + tag(9, struct.pack("<I", 0x100040))
            + tag(10, struct.pack("<4I", 0x100000, 0x7FFFFFFF, 4096, 1)) + tag(42, b"abcd", flags=1) + END)
    r = inspect_image(mb2(tags, arch=4), "mb2")["multiboot2"]
    assert r["architecture"] == 4 and r["header_length"] == 16 + len(tags)
    t = {x["type"]: x for x in r["tags"]}
    assert t[1]["mbi_tag_types"] == [1, 4, 6]
    assert (t[2]["header_addr"], t[2]["load_addr"], t[2]["load_end_addr"], t[2]["bss_end_addr"]) == \
        (0x100000, 0x100000, 0x180000, 0x190000)
    assert t[3]["entry_addr"] == 0x100020 and t[4]["console_flags"] == 3
    assert (t[5]["width"], t[5]["height"], t[5]["depth"]) == (800, 600, 24)
    assert t[8]["entry_addr"] == 0x100030 and t[9]["entry_addr"] == 0x100040
    assert (t[10]["min_addr"], t[10]["max_addr"], t[10]["align"], t[10]["preference"]) == \
        (0x100000, 0x7FFFFFFF, 4096, 1)
    assert t[42] == {"type": 42, "flags": 1, "size": 12, "offset": t[42]["offset"]}   # kept, undecoded
    assert [x["offset"] % 8 for x in r["tags"]] == [0] * len(r["tags"])


@pytest.mark.parametrize("tags,msg", [
    (tag(3, size=4) + END, r"tag type 3 at 0x10: size 4 is smaller than the 8-byte tag head"),
    (tag(2, struct.pack("<I", 1)) + END, r"tag type 2 at 0x10 \(address\): size 12 is smaller than the 24"),
    (tag(6) + tag(6), r"no end tag"),
    (tag(6, size=64) + END, r"tag type 6 at 0x10: size 64 runs past header_length 32"),
    (tag(0, b"xxxx"), r"end tag size 12, must be 8"),
    (b"", r"header_length 16 is too small"),
])
def test_multiboot2_bad_tags(tags, msg):
    with pytest.raises(MksimError, match=msg):
        inspect_image(mb2(tags) + bytes(128), "mb2")


def elf32_be() -> bytes:
    hdr = b"\x7fELF" + bytes([1, 2, 1]) + bytes(9)
    hdr += struct.pack(">HHIIIIIHHHHHH", 2, 20, 1, 0x10000, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    ph = struct.pack(">8I", 1, 0x1000, 0x10000, 0x20000, 0x100, 0x200, 5, 0x1000)
    return hdr + ph


def test_elf32_big_endian():
    e = inspect_image(elf32_be(), "ppc")["elf"]
    assert (e["class"], e["endianness"], e["machine"], e["machine_name"]) == ("ELF32", "big", 20, "PowerPC")
    assert e["segments"] == [{"type": 1, "type_name": "LOAD", "offset": 0x1000, "vaddr": 0x10000,
                              "paddr": 0x20000, "filesz": 0x100, "memsz": 0x200, "flags": 5,
                              "align": 0x1000}]


def test_elf_bad_class():
    with pytest.raises(MksimError, match="EI_CLASS 3"):
        inspect_image(b"\x7fELF\x03\x01" + bytes(100), "elf")


def test_no_header_and_empty():
    for data in (b"", b"hello world\n", bytes(100000)):
        with pytest.raises(NoImageHeader, match="x: no known kernel image header"):
            inspect_image(data, "x")


def test_inspect_file_errors(tmp_path):
    with pytest.raises(MksimError, match="cannot read"):
        images.inspect_file(str(tmp_path / "missing"))
    with pytest.raises(MksimError, match="is a directory"):
        images.inspect_file(str(tmp_path))


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=lambda p: p.name)
def test_text_format_of_every_sample(path):
    r = images.inspect_file(str(path))
    text = images.format_inspection(r, path.name)
    assert text.startswith(f"{path.name}: {r['format']}")
    for sec in ("linux_setup_header", "multiboot1", "multiboot2", "elf"):
        assert (sec in text) == (sec in r) or sec == "elf"


# ----------------------------------------------------------------------------- fuzzing
def _plain(p: Path) -> bytes:
    d = p.read_bytes()
    return gzip.decompress(d) if p.suffix == ".gz" else d


SAMPLES = {p.name: _plain(p)[:16384] for p in ALL_SAMPLES}
SAMPLES["xen-4.17-amd64.head.gz"] = read(XEN_GZ)        # also mutate compressed bytes


def _ok_or_mksim(data: bytes) -> None:
    try:
        r = inspect_image(data, "fuzz")
    except MksimError:
        return
    assert isinstance(r, dict) and "format" in r and "compression" in r


@SETTINGS
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _ok_or_mksim(data)


@SETTINGS
@given(st.sampled_from([b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x7fELF\x01\x01", b"\x7fELF\x02\x02", b""]),
       st.binary(max_size=1024))
def test_fuzz_random_bytes_behind_a_magic(prefix, data):
    _ok_or_mksim(prefix + data)


@SETTINGS
@given(st.sampled_from(sorted(SAMPLES)),
       st.lists(st.tuples(st.integers(0, 0x1200), st.integers(0, 255)), max_size=12),
       st.one_of(st.none(), st.integers(0, 16384)))
def test_fuzz_mutated_real_headers(name, edits, cut):
    b = bytearray(SAMPLES[name])
    for pos, val in edits:
        if pos < len(b):
            b[pos] = val
    _ok_or_mksim(bytes(b if cut is None else b[:cut]))


@SETTINGS
@given(st.integers(0, 64), st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1),
       st.binary(max_size=96), st.booleans())
def test_fuzz_built_multiboot_headers(slot, word, hlen, body, two):
    """Valid-checksum headers with arbitrary flags/lengths and tag bytes."""
    if two:
        h = struct.pack("<IIII", 0xE85250D6, word & 0xF, hlen, (-(0xE85250D6 + (word & 0xF) + hlen)) % 2**32)
        data = bytes(8 * slot) + h + body
    else:
        data = bytes(4 * slot) + mb1(word, body)
    _ok_or_mksim(data)
