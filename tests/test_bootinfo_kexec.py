"""Boot information parses back to what was written; kexec_load's rules; the purgatory's check."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boot import bootinfo as bi
from boot import kexec
from boot import timeline as tl
from hwmodel.errors import MksimError
from hwmodel.machine import Machine

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
u32 = st.integers(0, 2**32 - 1)
regions = st.lists(st.builds(bi.Region, st.integers(0, 2**52), st.integers(0, 2**40), st.integers(1, 5)),
                   max_size=8)
modules = st.lists(st.builds(bi.Module, u32, u32, text), max_size=5)
infos = st.builds(bi.BootInfo, text, text, modules.map(tuple), regions.map(tuple), st.integers(0, 640), u32)


@settings(max_examples=200, deadline=None)
@given(infos)
def test_multiboot2_information_parses_back(info):
    raw = bi.mb2_info(info)
    assert len(raw) % 8 == 0 and int.from_bytes(raw[:4], "little") == len(raw)
    assert bi.parse_mb2_info(raw) == info


@settings(max_examples=200, deadline=None)
@given(infos, st.integers(0, 2**31).map(lambda a: a & ~3))
def test_multiboot1_information_parses_back(info, at):
    raw = bi.mb1_info(info, at)
    assert bi.parse_mb1_info(raw, at) == info


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_mb2_parser_refuses_garbage_cleanly(raw):
    try:
        bi.parse_mb2_info(raw)
    except MksimError:
        pass


def test_zero_page_carries_the_setup_header_and_the_loader_fields():
    setup = bytearray(0x300)
    setup[0x1F1] = 27                                   # setup_sects
    setup[0x201] = 0x6A                                 # jump: the header ends at 0x202 + 0x6A
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = (0x020F).to_bytes(2, "little")
    setup[0x26C] = 0x55                                 # beyond the header: not copied
    ram = [bi.Region(0, 0x9F000), bi.Region(0x100000, 0x7FF00000)]
    rd = bi.place_initrd(0x123456, 0x7FFFFFFF, ram, avoid=[(0x7F000000, 0x80000000)])
    assert rd % 4096 == 0 and rd + 0x123456 <= 0x7F000000
    zp = bi.zero_page(bytes(setup), bi.LinuxParams(0x20000, rd, 0x123456, ram, 0x72))
    assert zp[0x1F1] == 27 and zp[0x202:0x206] == b"HdrS" and zp[0x26C] == 0
    back = bi.parse_zero_page(zp)
    assert (back.cmd_line_ptr, back.ramdisk_image, back.ramdisk_size, back.e820, back.type_of_loader) == (
        0x20000, rd, 0x123456, ram, 0x72)


def test_initrd_that_cannot_fit_is_an_error():
    with pytest.raises(MksimError, match="initrd"):
        bi.place_initrd(1 << 30, 0x37FFFFFF, [bi.Region(0x100000, 0x1000000)], [])


def seg(mem, memsz, n=10):
    return kexec.Segment(bytes(n), mem, memsz)


@pytest.mark.parametrize("segs, res, crash, msg", [
    ([seg(0x1000, 0x1000)] * 17, None, False, "at most 16"),
    ([seg(0x1800, 0x1000)], None, False, "page aligned"),
    ([seg(0x1000, 0x1000, 5000)], None, False, "exceeds memsz"),
    ([seg(0x1000, 0x2000), seg(0x2000, 0x1000)], None, False, "overlap"),
    ([seg(0x1000, 0x1000)], (0x10000, 0x20000), False, "outside the reservation"),
    ([seg(0x10000, 0x1000)], None, True, "crash-kernel"),
])
def test_kexec_load_refuses_what_the_kernel_refuses(segs, res, crash, msg):
    with pytest.raises(MksimError, match=msg):
        kexec.validate(segs, res, crash)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 4), st.binary(max_size=300)), min_size=1, max_size=16))
def test_loaded_segments_lie_inside_the_reservation_and_hash_as_loaded(raw):
    res = (0x100000, 0x100000 + 64 * 4096 * 5)
    segs, at = [], res[0]
    for gap, pages, buf in raw:
        at += gap * 4096
        segs.append(kexec.Segment(buf, at, pages * 4096))
        at += pages * 4096
    if at > res[1]:
        with pytest.raises(MksimError):
            kexec.validate(segs, res)
        return
    m = Machine("amd-2x2")
    w = m.workload()
    expected = kexec.load(w, segs, res)
    p = kexec.purgatory(segs)
    p.halt()
    w.start(1, w.place(p, 0x80000).pc())
    m.load_workload(w)
    assert m.execute() == "done"
    for s in segs:
        assert res[0] <= s.mem and s.mem + s.memsz <= res[1]
    kexec.check(m.read, segs, expected)
    ev = [e for e in tl.events(m.timeline()) if e.name == "purgatory sha256"]
    assert len(ev) == 1 and ev[0].cycles >= sum(s.memsz for s in segs) * kexec.SHA256_CYCLES_PER_BYTE
    m.write(segs[0].mem, b"\xff")                       # something tramples a segment
    if segs[0].buf[:1] != b"\xff":
        with pytest.raises(MksimError, match="overwritten"):
            kexec.check(m.read, segs, expected)


def test_mpart_reservations_keep_linux_inside_its_partition():
    from boot.loader import mpart_args
    assert mpart_args([(0x40000000, 0x80000000)]) == "memmap=1023M$0x100000 mem=2G"
    assert mpart_args([(0x0, 0x40000000)]) == "mem=1G"
    assert mpart_args([(0x1000000, 0x2000000), (0x3000000, 0x4000000)]) == (
        "memmap=15M$0x100000 memmap=16M$0x2000000 mem=64M")
