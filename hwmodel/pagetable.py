"""Real x86-64 4-level page tables, built in Python, laid out in simulated
physical memory for the cores' page walker (``cpu_spec.md``, *TLB and page
walks*).

``PageTables(alloc_lo, alloc_hi)`` takes its 4 KiB table pages from the
physical range ``[alloc_lo, alloc_hi)``; the first one is the PML4 (``cr3``).
``map`` installs 4 KiB pages (PT level) or 2 MiB pages (PS at PD level);
``writes()`` gives every table page as ``(address, 4096 bytes)`` and
``apply(workload)`` puts them in a ``Workload``'s initial memory.

Entry format (8 bytes, little-endian), as the walker reads it:

=========  ==========================================================
bit 0      present
bit 1      writable (the walker ANDs it over the levels; intermediate
           entries here are always writable, the leaf decides)
bit 7      PS: in a PD entry, a 2 MiB page (never set at other levels)
bits 51:12 physical address of the next table or the 4 KiB page
           (51:21 for a 2 MiB page)
=========  ==========================================================

Levels are numbered as in the Intel SDM: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT;
the index of level L is ``(va >> (12 + 9 * (L - 1))) & 511``.

Table pages are never freed by ``unmap`` (a cleared entry stays where it
was), so a PTE address from ``pte_address`` stays valid: programs change a
mapping by storing ``make_entry(...)`` there, then ``INVLPG``.  (The one
exception: mapping a 2 MiB page over an emptied page table recycles that
table page.)
"""
from __future__ import annotations

from collections.abc import Callable

from hwmodel.errors import MksimError

PAGE_4K = 4096
PAGE_2M = 2 << 20
ENTRIES = 512
ENTRY_BYTES = 8

PTE_P = 1 << 0          # present
PTE_W = 1 << 1          # writable
PTE_PS = 1 << 7         # 2 MiB page (PD level)
ADDR_MASK = ((1 << 52) - 1) & ~(PAGE_4K - 1)        # bits 51:12
ADDR_MASK_2M = ((1 << 52) - 1) & ~(PAGE_2M - 1)     # bits 51:21
PHYS_LIMIT = 1 << 52
MASK64 = (1 << 64) - 1
LEVEL_NAMES = {4: "PML4", 3: "PDPT", 2: "PD", 1: "PT"}


def canonical(va: int) -> int:
    """``va`` as an unsigned 64-bit value, checked canonical (bits 63:47 all equal).

    Negative Python ints are accepted as their two's-complement 64-bit form."""
    if isinstance(va, bool) or not isinstance(va, int):
        raise MksimError(f"virtual address {va!r} must be an integer")
    if not -(1 << 63) <= va < (1 << 64):
        raise MksimError(f"virtual address {va:#x} does not fit in 64 bits")
    va &= MASK64
    top = va >> 47
    if top not in (0, (1 << 17) - 1):
        raise MksimError(f"virtual address {va:#x} is not canonical (bits 63:47 must all equal bit 47)")
    return va


def index(va: int, level: int) -> int:
    """The 9-bit table index of ``va`` at ``level`` (4 = PML4 .. 1 = PT)."""
    _check_level(level)
    return (va >> (12 + 9 * (level - 1))) & (ENTRIES - 1)


def make_entry(pa: int, writable: bool = True, large: bool = False) -> int:
    """A present entry pointing at ``pa`` (a table, a 4 KiB page, or with ``large`` a 2 MiB page)."""
    align = PAGE_2M if large else PAGE_4K
    if isinstance(pa, bool) or not isinstance(pa, int) or not 0 <= pa < PHYS_LIMIT or pa % align:
        raise MksimError(f"entry address {pa!r}: must be a {align // 1024} KiB-aligned physical address below 2**52")
    return pa | PTE_P | (PTE_W if writable else 0) | (PTE_PS if large else 0)


def decode_entry(e: int) -> tuple[bool, bool, bool, int]:
    """``(present, writable, large, address)`` of an entry (address bits 51:12)."""
    return bool(e & PTE_P), bool(e & PTE_W), bool(e & PTE_PS), e & ADDR_MASK


def _check_level(level: int) -> None:
    if level not in LEVEL_NAMES:
        raise MksimError(f"page-table level {level!r}: must be 4 (PML4), 3 (PDPT), 2 (PD) or 1 (PT)")


def pte_address(cr3: int, va: int, level: int, read: Callable[[int], int] | None = None) -> int:
    """Physical address of the entry that maps ``va`` at ``level`` in the tables at ``cr3``.

    Level 4 needs only ``cr3``; lower levels follow the entries above, so
    ``read(addr) -> int`` must give the 8-byte entry at a physical address
    (``PageTables.read_entry`` does, for tables it built)."""
    _check_level(level)
    va = canonical(va)
    table = cr3 & ADDR_MASK
    for lv in range(4, level, -1):
        if read is None:
            raise MksimError(f"pte_address: level {level} ({LEVEL_NAMES[level]}) needs read() to follow "
                             f"the {LEVEL_NAMES[lv]} entry")
        e = read(table + ENTRY_BYTES * index(va, lv))
        present, _w, large, addr = decode_entry(e)
        if not present:
            raise MksimError(f"pte_address: {LEVEL_NAMES[lv]} entry for {va:#x} is not present, "
                             f"there is no {LEVEL_NAMES[level]} entry")
        if large:
            raise MksimError(f"pte_address: {va:#x} is mapped by a large page at the {LEVEL_NAMES[lv]} level, "
                             f"there is no {LEVEL_NAMES[level]} entry")
        table = addr
    return table + ENTRY_BYTES * index(va, level)


class PageTables:
    """x86-64 4-level page tables for one address space, allocated in ``[alloc_lo, alloc_hi)``."""

    def __init__(self, alloc_lo: int, alloc_hi: int):
        for name, v in (("alloc_lo", alloc_lo), ("alloc_hi", alloc_hi)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise MksimError(f"page-table pool {name} {v!r} must be an integer")
        if alloc_lo % PAGE_4K or alloc_hi % PAGE_4K or not 0 <= alloc_lo < alloc_hi <= PHYS_LIMIT:
            raise MksimError(f"page-table pool [{alloc_lo:#x}, {alloc_hi:#x}): must be 4 KiB-aligned, "
                             f"non-empty and below 2**52")
        self.alloc_lo, self.alloc_hi = alloc_lo, alloc_hi
        self._next = alloc_lo
        self._free: list[int] = []
        self._tables: dict[int, list[int]] = {}     # table page address -> 512 entries
        self.cr3 = self._alloc()

    # ------------------------------------------------------------------ tables
    def _available(self) -> int:
        return len(self._free) + (self.alloc_hi - self._next) // PAGE_4K

    def _alloc(self) -> int:
        if self._free:
            a = self._free.pop()
        elif self._next < self.alloc_hi:
            a, self._next = self._next, self._next + PAGE_4K
        else:
            raise MksimError(f"page-table pool [{self.alloc_lo:#x}, {self.alloc_hi:#x}) is exhausted")
        self._tables[a] = [0] * ENTRIES
        return a

    def _walk(self, va: int, stop: int) -> list[tuple[int, int]]:
        """``[(table, index)]`` from the PML4 down to ``stop`` or the first entry that is
        not present or is a 2 MiB leaf (included)."""
        path, table = [], self.cr3
        for lv in range(4, stop - 1, -1):
            i = index(va, lv)
            path.append((table, i))
            e = self._tables[table][i]
            if lv == stop or not e & PTE_P or e & PTE_PS:
                break
            table = e & ADDR_MASK
        return path

    def read_entry(self, addr: int) -> int:
        """The 8-byte entry at physical ``addr`` in one of these tables."""
        table, off = addr & ~(PAGE_4K - 1), addr & (PAGE_4K - 1)
        if table not in self._tables or off % ENTRY_BYTES:
            raise MksimError(f"{addr:#x} is not an entry of these page tables")
        return self._tables[table][off // ENTRY_BYTES]

    def pte_address(self, va: int, level: int) -> int:
        """Physical address of the entry mapping ``va`` at ``level`` (see module ``pte_address``)."""
        return pte_address(self.cr3, va, level, self.read_entry)

    # ------------------------------------------------------------------ mappings
    def map(self, va: int, pa: int, size: int = PAGE_4K, writable: bool = True) -> None:
        """Map the page at virtual ``va`` to physical ``pa`` (``size`` 4 KiB or 2 MiB).

        Errors (``MksimError``): bad size, misaligned or out-of-range addresses,
        non-canonical ``va``, an existing mapping that overlaps, pool exhausted.
        Nothing changes when it raises."""
        if size not in (PAGE_4K, PAGE_2M):
            raise MksimError(f"page size {size!r}: must be 4096 (4 KiB) or {PAGE_2M} (2 MiB)")
        va = canonical(va)
        kib = size // 1024
        if va % size:
            raise MksimError(f"virtual address {va:#x} is not {kib} KiB-aligned")
        if isinstance(pa, bool) or not isinstance(pa, int) or pa % size or not 0 <= pa <= PHYS_LIMIT - size:
            raise MksimError(f"physical address {pa!r}: must be {kib} KiB-aligned, the page below 2**52")
        leaf_level = 1 if size == PAGE_4K else 2
        path = self._walk(va, leaf_level)
        (table, i), depth = path[-1], 4 - len(path) + 1       # depth: level of the last entry looked at
        e = self._tables[table][i]
        reuse_pt = None
        if e & PTE_P:
            if e & PTE_PS:
                base = va & ~(PAGE_2M - 1) & MASK64
                raise MksimError(f"cannot map {va:#x}: already inside the 2 MiB page at {base:#x}")
            if depth == leaf_level == 1:
                raise MksimError(f"cannot map {va:#x}: already mapped (to {e & ADDR_MASK:#x}); unmap it first")
            if depth == leaf_level == 2:        # a page table sits where the 2 MiB page would go
                pt = e & ADDR_MASK
                if any(x & PTE_P for x in self._tables[pt]):
                    raise MksimError(f"cannot map 2 MiB page at {va:#x}: 4 KiB pages are mapped in that range")
                reuse_pt = pt
        missing = depth - leaf_level if not e & PTE_P else 0    # tables to create below `depth`
        if missing > self._available():
            raise MksimError(f"page-table pool [{self.alloc_lo:#x}, {self.alloc_hi:#x}) is exhausted "
                             f"(mapping {va:#x} needs {missing} more table pages)")
        # create the missing intermediate tables, then the leaf
        lv = depth
        while lv > leaf_level:
            new = self._alloc()
            self._tables[table][i] = make_entry(new, writable=True)
            lv -= 1
            table, i = new, index(va, lv)
        self._tables[table][i] = make_entry(pa, writable, large=size == PAGE_2M)
        if reuse_pt is not None:             # the empty page table is now unreachable
            del self._tables[reuse_pt]
            self._free.append(reuse_pt)

    def map_range(self, va: int, pa: int, length: int, size: int = PAGE_4K, writable: bool = True) -> None:
        """Map ``length`` bytes (a multiple of ``size``) from ``va`` to ``pa`` with pages of ``size``."""
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0 or length % size:
            raise MksimError(f"length {length!r}: must be a positive multiple of the page size {size}")
        for off in range(0, length, size):
            self.map((canonical(va) + off) & MASK64, pa + off, size, writable)

    def unmap(self, va: int) -> int:
        """Remove the mapping whose page starts at ``va``; returns its size.  Table pages stay."""
        va = canonical(va)
        path = self._walk(va, 1)
        table, i = path[-1]
        e = self._tables[table][i]
        if not e & PTE_P:
            raise MksimError(f"cannot unmap {va:#x}: not mapped")
        size = PAGE_2M if e & PTE_PS else PAGE_4K
        if va % size:
            raise MksimError(f"cannot unmap {va:#x}: inside the {size // 1024} KiB page at "
                             f"{va & ~(size - 1) & MASK64:#x}; unmap that address")
        self._tables[table][i] = 0
        return size

    def translate(self, va: int) -> tuple[int, bool] | None:
        """``(pa, writable)`` for ``va`` by walking these tables as the hardware would; None if unmapped."""
        va = canonical(va)
        table, writable = self.cr3, True
        for lv in (4, 3, 2, 1):
            e = self._tables[table][index(va, lv)]
            present, w, large, addr = decode_entry(e)
            if not present:
                return None
            writable &= w
            if lv == 2 and large:
                return (e & ADDR_MASK_2M) | (va & (PAGE_2M - 1)), writable
            table = addr
        return table | (va & (PAGE_4K - 1)), writable

    # ------------------------------------------------------------------ output
    def writes(self) -> list[tuple[int, bytes]]:
        """Every table page as ``(physical address, 4096 bytes)``, ascending."""
        return [(a, b"".join(e.to_bytes(ENTRY_BYTES, "little") for e in self._tables[a]))
                for a in sorted(self._tables)]

    def apply(self, workload) -> None:
        """Write every table page into ``workload``'s initial memory (call after the last ``map``)."""
        for a, data in self.writes():
            workload.write(a, data)

    @property
    def table_pages(self) -> list[int]:
        """Addresses of the table pages in use, ascending."""
        return sorted(self._tables)
