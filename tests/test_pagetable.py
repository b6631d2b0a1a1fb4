"""hwmodel.pagetable: the tables it lays out decode, byte for byte, per cpu_spec.md's walk rules."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import pagetable as ptm
from hwmodel.errors import MksimError
from hwmodel.pagetable import PAGE_2M, PAGE_4K, PageTables
from hwmodel.workload import Workload

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = (0x100000, 0x100000 + 4096 * 4096)      # room for 4096 table pages


def sign_extend(va47: int) -> int:
    """A canonical address (unsigned 64-bit) from 48 bits."""
    return va47 | (((1 << 16) - 1) << 48) if va47 >> 47 else va47


def walk_bytes(mem: dict[int, bytes], cr3: int, va: int) -> tuple[int, bool] | None:
    """An independent walker over raw table bytes, written from cpu_spec.md."""
    def entry(addr: int) -> int:
        page = mem[addr & ~0xFFF]
        off = addr & 0xFFF
        return int.from_bytes(page[off:off + 8], "little")
    table, writable = cr3 & 0x000F_FFFF_FFFF_F000, True
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        e = entry(table + 8 * ((va >> shift) & 511))
        if not e & 1:
            return None
        writable &= bool(e & 2)
        if e & 0x80:
            assert level == 2, f"PS bit at level {level}"
            return (e & 0x000F_FFFF_FFE0_0000) | (va & (PAGE_2M - 1)), writable
        table = e & 0x000F_FFFF_FFFF_F000
    return table | (va & 0xFFF), writable


def memory_of(pt: PageTables) -> dict[int, bytes]:
    w = pt.writes()
    assert all(len(b) == 4096 and a % 4096 == 0 for a, b in w)
    assert all(POOL[0] <= a < POOL[1] for a, _ in w)
    return dict(w)


# a mapping request: (va, pa, size, writable); va drawn either anywhere or from a small window so conflicts occur
def _va(size: int):
    anywhere = st.integers(0, (1 << 48) // size - 1).map(lambda k: sign_extend(k * size))
    window = st.integers(0, (8 * PAGE_2M) // size - 1).map(lambda k: 0x7FFF_0000_0000 + k * size)
    return st.one_of(anywhere, window)


def _req(size: int):
    return st.tuples(_va(size), st.integers(0, (1 << 52) // size - 1).map(lambda k: k * size), st.just(size),
                     st.booleans())


requests = st.lists(st.one_of(_req(PAGE_4K), _req(PAGE_2M)), min_size=1, max_size=25)


def _conflicts(req, done) -> bool:
    va, _pa, size, _w = req
    return any(va < v + s and v < va + size for v, _p, s, _ww in done)


@SETTINGS
@given(requests, st.data())
def test_map_translate_round_trip(reqs, data):
    pt = PageTables(*POOL)
    done = []
    for req in reqs:
        va, pa, size, w = req
        if _conflicts(req, done):
            with pytest.raises(MksimError):
                pt.map(va, pa, size, w)
        else:
            pt.map(va, pa, size, w)
            done.append(req)
    mem = memory_of(pt)
    for va, pa, size, w in done:
        off = data.draw(st.integers(0, size - 1))
        assert pt.translate(va + off) == (pa + off, w)
        assert walk_bytes(mem, pt.cr3, va + off) == (pa + off, w)
        # the leaf entry decodes per the spec bits
        level = 1 if size == PAGE_4K else 2
        e = pt.read_entry(pt.pte_address(va, level))
        present, writable, large, addr = ptm.decode_entry(e)
        assert present and writable == w and large == (size == PAGE_2M) and addr == pa
        assert e >> 52 == 0 and e & ~(0x000F_FFFF_FFFF_F000 | 0x83) == 0
    # intermediate entries: writable, PS only at PD level, pointing at table pages
    def check(table: int, level: int) -> None:
        for k in range(512):
            e = int.from_bytes(mem[table][8 * k:8 * k + 8], "little")
            if not e & 1:
                continue
            assert not e & 0x80 or level == 2
            if level > 1 and not e & 0x80:
                assert e & 2 and (e & 0x000F_FFFF_FFFF_F000) in mem
                check(e & 0x000F_FFFF_FFFF_F000, level - 1)
    check(pt.cr3, 4)
    # unmapping every page leaves nothing mapped
    for va, _pa, size, _w in done:
        assert pt.unmap(va) == size
        assert pt.translate(va) is None
        assert walk_bytes(memory_of(pt), pt.cr3, va) is None


@SETTINGS
@given(st.integers(0, (1 << 36) - 1), st.integers(0, (1 << 40) - 1), st.integers(0, (1 << 40) - 1))
def test_pte_store_remaps(vpn, pfn1, pfn2):
    """A program changes a mapping by storing make_entry at pte_address: the walker then sees the new page."""
    va = sign_extend(vpn << 12)
    pt = PageTables(*POOL)
    pt.map(va, pfn1 << 12)
    mem = {a: bytearray(b) for a, b in pt.writes()}
    addr = ptm.pte_address(pt.cr3, va, 1, pt.read_entry)
    assert addr == pt.pte_address(va, 1)
    mem[addr & ~0xFFF][addr & 0xFFF:(addr & 0xFFF) + 8] = ptm.make_entry(pfn2 << 12, writable=False).to_bytes(8, "little")
    assert walk_bytes({a: bytes(b) for a, b in mem.items()}, pt.cr3, va + 5) == ((pfn2 << 12) + 5, False)
    # the entry addresses of all levels lie in table pages, at the spec's indices
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        a = pt.pte_address(va, level)
        assert a & ~0xFFF in mem and (a & 0xFFF) == 8 * ((va >> shift) & 511)
    assert ptm.pte_address(pt.cr3, va, 4) == pt.cr3 + 8 * ((va >> 39) & 511)


def test_layout_known_example():
    pt2 = PageTables(0x10000, 0x20000)
    assert pt2.cr3 == 0x10000
    pt2.map((1 << 30) | (1 << 21) | (3 << 12), 0xABC000, writable=False)
    mem = dict(pt2.writes())
    # PML4 index 0, PDPT index 1, PD index 1, PT index 3
    pml4 = int.from_bytes(mem[0x10000][0:8], "little")
    assert pml4 == 0x11000 | 3
    pdpt = int.from_bytes(mem[0x11000][8:16], "little")
    assert pdpt == 0x12000 | 3
    pd = int.from_bytes(mem[0x12000][8:16], "little")
    assert pd == 0x13000 | 3
    pte = int.from_bytes(mem[0x13000][24:32], "little")
    assert pte == 0xABC000 | 1
    pt2.map(-PAGE_2M, 0x4000_0000, PAGE_2M)             # top of the address space: PML4 511, PDPT 511, PD 511
    mem = dict(pt2.writes())
    pml4 = int.from_bytes(mem[0x10000][511 * 8:512 * 8], "little")
    assert pml4 & 3 == 3
    assert pt2.translate(0xFFFF_FFFF_FFFF_FFFF) == (0x4000_0000 + PAGE_2M - 1, True)
    assert pt2.translate(-1) == pt2.translate(0xFFFF_FFFF_FFFF_FFFF)
    e = pt2.read_entry(pt2.pte_address(-PAGE_2M, 2))
    assert e == 0x4000_0000 | 0x83


def test_apply_writes_into_workload():
    pt = PageTables(0x10000, 0x40000)
    pt.map(0x1000, 0x2000)
    w = Workload(cores=1)
    pt.apply(w)
    assert w.memory == pt.writes()
    assert len(w.memory) == 4 and all(len(b) == 4096 for _, b in w.memory)


@pytest.mark.parametrize("call, match", [
    (lambda pt: pt.map(0x1001, 0x2000), "not 4 KiB-aligned"),
    (lambda pt: pt.map(0x1000, 0x2001), "physical address"),
    (lambda pt: pt.map(0x20_1000, 0x40_0000, PAGE_2M), "not 2048 KiB-aligned"),
    (lambda pt: pt.map(0x20_0000, 0x40_1000, PAGE_2M), "physical address"),
    (lambda pt: pt.map(0x1000, 1 << 52), "physical address"),
    (lambda pt: pt.map(0x1000, -4096), "physical address"),
    (lambda pt: pt.map(0x8000_0000_0000, 0x2000), "not canonical"),
    (lambda pt: pt.map(0xFFFF_7FFF_FFFF_F000, 0x2000), "not canonical"),
    (lambda pt: pt.map(1 << 64, 0x2000), "64 bits"),
    (lambda pt: pt.map(0x1000, 0x2000, size=8192), "page size"),
    (lambda pt: pt.map("0x1000", 0x2000), "must be an integer"),
    (lambda pt: pt.unmap(0x5000), "not mapped"),
    (lambda pt: pt.translate(0x8000_0000_0000), "not canonical"),
    (lambda pt: pt.read_entry(0x1234), "not an entry"),
    (lambda pt: pt.pte_address(0x1000, 5), "level"),
])
def test_bad_input(call, match):
    pt = PageTables(0x10000, 0x40000)
    with pytest.raises(MksimError, match=match):
        call(pt)


def test_conflicts():
    pt = PageTables(0x10000, 0x80000)
    pt.map(0x1000, 0x2000)
    with pytest.raises(MksimError, match="already mapped"):
        pt.map(0x1000, 0x3000)
    with pytest.raises(MksimError, match="4 KiB pages are mapped"):
        pt.map(0, 0x20_0000, PAGE_2M)
    pt.map(0x40_0000, 0x20_0000, PAGE_2M)
    with pytest.raises(MksimError, match="inside the 2 MiB page"):
        pt.map(0x40_3000, 0x3000)
    with pytest.raises(MksimError, match="inside the 2 MiB page"):
        pt.map(0x40_0000, 0x60_0000, PAGE_2M)
    with pytest.raises(MksimError, match="inside the 2048 KiB page"):
        pt.unmap(0x40_1000)
    # a failed map changes nothing
    before = pt.writes()
    with pytest.raises(MksimError):
        pt.map(0x1000, 0x9000)
    assert pt.writes() == before
    # an emptied page table makes way for a 2 MiB page (and its table page is recycled)
    pt.unmap(0x1000)
    n = len(pt.table_pages)
    pt.map(0, 0x20_0000, PAGE_2M)
    assert pt.translate(0x1234) == (0x20_1234, True)
    assert len(pt.table_pages) == n - 1


def test_pool_exhaustion_changes_nothing():
    pt = PageTables(0x10000, 0x13000)          # PML4 + 2 pages: a 4 KiB mapping needs 3 more
    with pytest.raises(MksimError, match="exhausted"):
        pt.map(0x1000, 0x2000)
    assert pt.table_pages == [0x10000]
    pt.map(0x20_0000, 0x20_0000, PAGE_2M)       # needs PDPT + PD only
    assert pt.translate(0x20_0010) == (0x20_0010, True)


def test_bad_pool_and_pte_address_without_read():
    with pytest.raises(MksimError, match="pool"):
        PageTables(0x10001, 0x20000)
    with pytest.raises(MksimError, match="pool"):
        PageTables(0x20000, 0x20000)
    pt = PageTables(0x10000, 0x20000)
    with pytest.raises(MksimError, match="needs read"):
        ptm.pte_address(pt.cr3, 0x1000, 1)
    with pytest.raises(MksimError, match="not present"):
        pt.pte_address(0x1000, 1)
    pt.map(0, 0, PAGE_2M)
    with pytest.raises(MksimError, match="large page"):
        pt.pte_address(0x1000, 1)


def test_map_range():
    pt = PageTables(0x10000, 0x40000)
    pt.map_range(0x10_0000, 0x80_0000, 5 * PAGE_4K, writable=False)
    for k in range(5):
        assert pt.translate(0x10_0000 + k * PAGE_4K + 7) == (0x80_0000 + k * PAGE_4K + 7, False)
    assert pt.translate(0x10_0000 + 5 * PAGE_4K) is None
    with pytest.raises(MksimError, match="multiple"):
        pt.map_range(0, 0, 100)
