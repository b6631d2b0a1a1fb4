"""Mutation testing of hwmodel's engine sources (run by hand; pytest does not collect this file).

    PYTHONPATH=. python tests/mutants.py --list            # the mutants, each checked to apply
    PYTHONPATH=. python tests/mutants.py -j 2              # run them all, two at a time
    PYTHONPATH=. python tests/mutants.py --only walk_writable_or --only tlb_lru_evicts_newest
    PYTHONPATH=. python tests/mutants.py --baseline        # run the unmutated copy first (it must pass)

Each mutant changes one line of one file.  For each, the repository (hwmodel/ and what the tests
import) is copied to a temporary folder, the mutant applied there (a snippet that is not found exactly
once is an error: a stale mutant must be visible, not skipped), and the fast differential and property
tests that can see the mutated file (``tests_for``) run there with ``-x``, without shrinking (the
``mutants`` hypothesis profile of tests/conftest.py) and under their own ``NUMBA_CACHE_DIR``: every
mutant costs a numba compile (a minute or two).  Whenever a cpu.py mutant is chosen, an unmutated copy
first compiles the engine (two quick tests; ``--baseline``: all of ``TESTS``, which must pass) and
cpu.py mutants start from its compiled memory system, which cannot call into cpu.py.  A mutant is *killed* when a test fails, *survived* when they all pass; the table names the
first failing test.

A mutant applied to a rule both the engine and the reference read (``coherence.py``'s tables, the
hop matrix) cannot be seen by a differential test; only a property test can kill it.  The others
mutate the engine side only (``cpu.py``, ``engine.py``, ``replacement/`` numba functions).

To add one: append a ``Mutant(name, file, original, replacement, what)`` to ``MUTANTS``; ``original``
must occur exactly once in the file (include a neighbouring line to make it unique) and the
replacement should differ from it in one line.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = ("hwmodel", "tests", "kernels", "boot", "mksim", "native", "pyproject.toml")
WARMUP = ("tests/test_cpu_properties.py::test_a_stale_tlb_entry_survives_a_pte_change_until_invlpg",
          "tests/test_cpu_properties.py::test_a_burst_of_ipis_to_a_waiting_core_is_taken_once_each")
CPU_TESTS = ("tests/test_cpu_vs_reference.py", "tests/test_cpu_properties.py",
             # the OS-level hardware: each file pins one feature's rules with exact numbers
             "tests/test_timer_irq.py", "tests/test_ipi_costs.py", "tests/test_kernel_isa.py",
             "tests/test_hetero_domains.py", "tests/test_timing_rules.py", "tests/test_partition_changes.py")
MEMORY_TESTS = ("tests/test_engine_vs_reference.py", "tests/test_properties.py", "tests/test_replay_fast_paths.py")
TESTS = CPU_TESTS + MEMORY_TESTS


def tests_for(file: str) -> tuple[str, ...]:
    """The tests that can see a change to ``file``, the likeliest killers first: nothing but the core
    engine runs cpu.py's code; the memory system's files are run by every test."""
    if file == "hwmodel/cpu.py":
        return CPU_TESTS
    if file == "hwmodel/coherence.py":
        return ("tests/test_properties.py", "tests/test_engine_vs_reference.py") + CPU_TESTS
    return MEMORY_TESTS + CPU_TESTS


def cache_subdir(root: str, folder: str) -> str:
    """numba's cache folder for the sources in ``root/folder`` (as numba names it for NUMBA_CACHE_DIR)."""
    path = os.path.abspath(os.path.join(root, folder))
    return f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def seed_cache(warm: str, dst: str, mutated: str) -> None:
    """Copy the baseline copy's numba cache into ``dst``'s for the sources that cannot see the mutated
    file (only when it is cpu.py: no other compiled code calls into it); numba recompiles cpu.py's
    functions itself (their source stamp changed)."""
    if mutated != "hwmodel/cpu.py":
        return
    for folder, _dirs, files in os.walk(os.path.join(warm, "hwmodel")):
        if "__pycache__" in folder or not any(f.endswith(".py") for f in files):
            continue
        rel = os.path.relpath(folder, warm)
        src = os.path.join(warm, ".numba-cache", cache_subdir(warm, rel))
        if not os.path.isdir(src):
            continue
        out = os.path.join(dst, ".numba-cache", cache_subdir(dst, rel))
        os.makedirs(out, exist_ok=True)
        for f in os.listdir(src):
            if not (rel == "hwmodel" and f.startswith("cpu.")):
                shutil.copy2(os.path.join(src, f), os.path.join(out, f))


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str           # relative to the repository root
    original: str       # must occur exactly once
    replacement: str
    what: str


MUTANTS = [
    # ---- the run loop's register-op fast path
    Mutant("fast_steps_ignore_due_core", "hwmodel/cpu.py",
           "        if n > 0 and heapn[0] > 0 and heap[0] <= t * 8192 + c:",
           "        if n < 0 and heapn[0] > 0 and heap[0] <= t * 8192 + c:",
           "a core runs its register ops past another core that is due first"),
    Mutant("fast_steps_ignore_timer", "hwmodel/cpu.py",
           "        if (tn >= 0 and tn <= t) or pc < 0",
           "        if (tn >= 0 and tn < 0) or pc < 0",
           "register ops run on past a due timer interrupt"),
    # ---- TLB: 4 KiB / 2 MiB lookup, INVLPG, fill / LRU
    Mutant("invlpg_keeps_2m", "hwmodel/cpu.py",
           "    e = tlb_find(cs, c, ((v2 << 1) | 1) + 1, v2)\n    if e >= 0:\n        cs[C_TLB][c, e, 0] = 0",
           "    e = tlb_find(cs, c, ((v2 << 1) | 1) + 1, v2)\n    if e >= 0:\n        cs[C_TLB][c, e, 0] = cs[C_TLB][c, e, 0]",
           "INVLPG leaves the 2 MiB entry"),
    Mutant("invlpg_keeps_4k", "hwmodel/cpu.py",
           "    e = tlb_find(cs, c, (v4 << 1) + 1, v4)\n    if e >= 0:\n        cs[C_TLB][c, e, 0] = 0",
           "    e = tlb_find(cs, c, (v4 << 1) + 1, v4)\n    if e >= 0:\n        cs[C_TLB][c, e, 0] = cs[C_TLB][c, e, 0]",
           "INVLPG leaves the 4 KiB entry"),
    Mutant("tlb_lookup_skips_2m", "hwmodel/cpu.py",
           "        e = tlb_find(cs, c, ((v2 << 1) | 1) + 1, v2)\n        big = e >= 0",
           "        e = -1\n        big = e >= 0",
           "2 MiB entries never hit"),
    Mutant("tlb_2m_offset_mask", "hwmodel/cpu.py",
           "off = va & (0x1FFFFF if big else 0xFFF)", "off = va & (0xFFFFF if big else 0xFFF)",
           "a 2 MiB TLB hit keeps only 20 offset bits"),
    Mutant("tlb_lru_evicts_newest", "hwmodel/cpu.py",
           "            if tlb[c, b + w, 3] < tlb[c, e, 3]:", "            if tlb[c, b + w, 3] > tlb[c, e, 3]:",
           "a full TLB set evicts the most recent entry"),
    Mutant("tlb_hit_no_stamp", "hwmodel/cpu.py",
           "        cs[C_TLBTICK][0] += 1\n        tlb[c, e, 3] = cs[C_TLBTICK][0]",
           "        cs[C_TLBTICK][0] += 1\n        tlb[c, e, 3] = tlb[c, e, 3]",
           "a TLB hit does not refresh LRU"),
    Mutant("mode_no_flush", "hwmodel/cpu.py",
           "        cs[C_MODE][c] = a\n        tlb_flush(cs, c)",
           "        cs[C_MODE][c] = a\n        pass",
           "MODE keeps the TLB"),
    Mutant("wrcr3_no_flush", "hwmodel/cpu.py",
           "        cs[C_CR3][c] = a if d else regs[c, a]\n        tlb_flush(cs, c)",
           "        cs[C_CR3][c] = a if d else regs[c, a]\n        pass",
           "WRCR3 keeps the TLB"),
    # ---- page walk
    Mutant("walk_writable_or", "hwmodel/cpu.py",
           "        wr &= (ent >> 1) & 1", "        wr |= (ent >> 1) & 1",
           "writable is the OR of the levels"),
    Mutant("walk_ps_bit8", "hwmodel/cpu.py",
           "        if level == 2 and (ent >> 7) & 1:", "        if level == 2 and (ent >> 8) & 1:",
           "the PD entry's PS bit is read from bit 8"),
    # ---- APIC: priority classes, coalescing, NMI blocking, EOI
    Mutant("apic_same_class_preempts", "hwmodel/cpu.py",
           "    if (v >> 4) > (s >> 4 if s >= 0 else -1) and (v >> 4) > (tpr >> 4 if tpr >= 16 else -1):",
           "    if (v >> 4) >= (s >> 4 if s >= 0 else -1) and (v >> 4) > (tpr >> 4 if tpr >= 16 else -1):",
           "a vector of the in-service priority class interrupts it"),
    Mutant("apic_no_coalescing", "hwmodel/cpu.py",
           "            if (cs[C_IRR][q, v >> 6] >> (v & 63)) & 1:", "            if (cs[C_IRR][q, v >> 6] >> (v & 63)) & 0:",
           "a fixed IPI whose IRR bit is set is not coalesced"),
    Mutant("nmi_never_blocked", "hwmodel/cpu.py",
           "    if cs[C_NMIP][q] >= 0 and cs[C_INF][q, F_NMIB] == 0:", "    if cs[C_NMIP][q] >= 0:",
           "an NMI interrupts an NMI handler"),
    Mutant("eoi_wrong_bit", "hwmodel/cpu.py",
           "        cs[C_ISR][q, s >> 6] &= ~(np.int64(1) << (s & 63))",
           "        cs[C_ISR][q, s >> 6] &= ~(np.int64(1) << ((s + 1) & 63))",
           "EOI clears the bit above the highest in-service vector"),
    Mutant("fault_returns_past_op", "hwmodel/cpu.py",
           "    te = enter_handler(st, cs, c, vec, pc, h, t, np.int64(0))",
           "    te = enter_handler(st, cs, c, vec, pc + 1, h, t, np.int64(0))",
           "a fault's handler returns past the faulting op"),
    # ---- IPIs: arrival latency, shorthand
    Mutant("ipi_no_latency", "hwmodel/cpu.py",
           "        arrive = depart + cs[C_CPAR][c, K_IPILAT] + st[MSG][c // cpp, q // cpp]",
           "        arrive = depart + st[MSG][c // cpp, q // cpp]",
           "IPIs arrive without ipi_latency"),
    Mutant("all_but_self_includes_self", "hwmodel/cpu.py",
           "    if sh == 3:\n        return q != c",
           "    if sh == 3:\n        return q != c + 1",
           "all-but-self skips the next core instead of the sender"),
    # ---- partitions: region and grant checks
    Mutant("partition_region_inclusive_end", "hwmodel/cpu.py",
           "        if regions[r, 0] <= pa < regions[r, 1]:", "        if regions[r, 0] <= pa <= regions[r, 1]:",
           "a region includes the byte at its end"),
    Mutant("partition_grant_any_kernel", "hwmodel/cpu.py",
           "        if grants[g, 0] <= pa < grants[g, 1] and grants[g, 2] == k:",
           "        if grants[g, 0] <= pa < grants[g, 1]:",
           "a grant to one kernel admits every kernel"),
    # ---- memory: size masks, page split, atomics
    Mutant("size_mask_short", "hwmodel/cpu.py",
           "    return (np.int64(1) << (8 * n)) - 1", "    return (np.int64(1) << (8 * n - 1)) - 1",
           "size masks lose their top bit (CAS compare)"),
    Mutant("no_page_split", "hwmodel/cpu.py",
           "    n1 = min(n, 4096 - (addr & 4095))", "    n1 = min(n, 8192 - (addr & 4095))",
           "an access crossing 4 KiB is one chunk"),
    Mutant("cas_compare_unmasked", "hwmodel/cpu.py",
           "new = val if old == (expect & size_mask(n)) else old", "new = val if old == expect else old",
           "CAS compares the whole expected register"),
    Mutant("assign_running_core", "hwmodel/cpu.py",
           "        if k < -1 or not (s == WFS or s == HALTED or s == FAULTED):",
           "        if k < -1:",
           "ASSIGN moves a running core"),
    Mutant("part_no_overlap_check", "hwmodel/cpu.py",
           "                if r != a and regions[r, 0] < hi and lo < regions[r, 1]:",
           "                if False:",
           "PART lets two slots overlap"),
    Mutant("part_any_kernel", "hwmodel/cpu.py",
           "    if par[c, K_SUPER] < 0 or kern[c] != par[c, K_SUPER]:",
           "    if par[c, K_SUPER] < -1:",
           "any core may change the partition table"),
    Mutant("atomic_no_latency", "hwmodel/cpu.py",
           "        end += ticks(cs, c, cs[C_CPAR][c, K_ATOMIC])",
           "        end += 0",
           "atomics cost no atomic_latency"),
    # ---- coherence tables (shared by engine and reference: only property tests can see these)
    Mutant("mesi_m_read_no_writeback", "hwmodel/coherence.py",
           "        (M,     S,      S,         FROM_OWNER,  True),   # dirty data goes to memory too",
           "        (M,     S,      S,         FROM_OWNER,  False),   # dirty data goes to memory too",
           "MESI: a read of an M line leaves the old owner's copy dirty in S"),
    Mutant("hit_ok_write_in_s", "hwmodel/coherence.py",
           "    [0, 0, 1, 1, 0],   # write", "    [0, 1, 1, 1, 0],   # write",
           "a write hits a line held in S without invalidating the sharers"),
    Mutant("moesi_read_of_i_gives_s", "hwmodel/coherence.py",
           "        (I,     E,      -1,        FROM_MEMORY, False),\n        (S,     S,      -1,        FROM_MEMORY, False),\n        (E,     S,      S,         FROM_OWNER,  False),\n        (M,     S,      O,",
           "        (I,     S,      -1,        FROM_MEMORY, False),\n        (S,     S,      -1,        FROM_MEMORY, False),\n        (E,     S,      S,         FROM_OWNER,  False),\n        (M,     S,      O,",
           "MOESI: the first reader of a line gets S, not E"),
    # ---- timing formulas
    Mutant("request_delay_no_msg", "hwmodel/engine.py",
           "    return st[GEO][last, LAT] + st[MSG][c // params[P_CPP], home_of(params, line)]",
           "    return st[GEO][last, LAT]",
           "a miss takes effect without the message to the home"),
    Mutant("store_hit_no_buffer", "hwmodel/cpu.py",
           "        if res[4]:                  # a store that hits retires into the store buffer\n            end = max(issued + alu_cost(cs, c), now)",
           "        if res[4]:                  # a store that hits retires into the store buffer\n            end = max(res[1] + alu_cost(cs, c), now)",
           "a store hit waits for the cache instead of retiring into the store buffer"),
    Mutant("issue_width_off_by_one", "hwmodel/cpu.py",
           "    return ticks(cs, c, cs[C_CPAR][c, K_ALU]) if n == 0 else 0",
           "    return ticks(cs, c, cs[C_CPAR][c, K_ALU]) if n == 1 else 0",
           "the width-th register op, not the first, pays alu_latency"),
    Mutant("spin_wake_free", "hwmodel/cpu.py",
           "schedule(cs, q, max(d, st[CLOCK][q]) + ticks(cs, q, cs[C_CPAR][q, K_SPINWAKE]))",
           "schedule(cs, q, max(d, st[CLOCK][q]))",
           "a woken spinner pays no spin_wake_latency"),
    Mutant("fetch_stall_whole_latency", "hwmodel/cpu.py",
           "        stall = lat - st[GEO][st[IPATH][c, 0], LAT]", "        stall = lat",
           "a fetch stalls for the whole latency, L1I included"),
    Mutant("mmio_free", "hwmodel/cpu.py",
           "            t += ticks(cs, c, cs[C_CPAR][c, K_MMIO])",
           "            t += 0",
           "xAPIC register accesses cost nothing"),
    Mutant("wrmsr_free", "hwmodel/cpu.py",
           "        v = b if d else regs[c, b]\n        end = t1 + ticks(cs, c, par[c, K_MSR])",
           "        v = b if d else regs[c, b]\n        end = t1",
           "WRMSR costs nothing"),
    Mutant("entry_free", "hwmodel/cpu.py",
           "    st[CLOCK][q] = te + ticks(cs, q, cs[C_CPAR][q, K_ENTRY])",
           "    st[CLOCK][q] = te",
           "taking an interrupt costs no interrupt_entry"),
    # ---- replacement (numba side; the reference has its own classes)
    Mutant("lru_evicts_newest", "hwmodel/replacement/lru/__init__.py",
           "        lt = mv < oldest", "        lt = mv > oldest",
           "LRU evicts the most recently used way"),
    Mutant("fifo_acts_as_lru", "hwmodel/replacement/fifo/__init__.py",
           "def hit(meta, base, ways, way, tick, rng):\n    pass",
           "def hit(meta, base, ways, way, tick, rng):\n    meta[base + way] = tick",
           "FIFO refreshes a line on a hit"),
    Mutant("random_other_bits", "hwmodel/replacement/random/__init__.py",
           "    return np.int64((rng[0] >> np.uint64(33)) % np.uint64(ways))",
           "    return np.int64((rng[0] >> np.uint64(32)) % np.uint64(ways))",
           "random replacement draws from other bits of its generator"),
    # ---- memory system (engine.py): coherence timing and actions
    Mutant("home_occupancy_ignored", "hwmodel/engine.py",
           "        hb[npk + ph] = start + params[P_HOMEOCC]", "        hb[npk + ph] = start",
           "the home's coherence engine is never busy"),
    Mutant("memory_latency_no_return_msg", "hwmodel/engine.py",
           "            done = ms + st[MEMLAT][ph] + msg[ph, pc]",
           "            done = ms + st[MEMLAT][ph]",
           "memory data needs no message back from the home"),
    Mutant("invalidation_acks_free", "hwmodel/engine.py",
           "                if ack > done:\n                    done = ack", "                if ack > done:\n                    done = done",
           "a write does not wait for invalidation acks"),
    Mutant("silent_e_to_m_missing", "hwmodel/engine.py",
           "        if cstate == E:\n            st[DIRT][dir_find_(st[DIRT], st[PARAMS][P_DIRMASK], key), D_STATE] = M",
           "        if cstate == E:\n            pass",
           "a write hit in E leaves the directory in E"),
    Mutant("owner_keeps_store_hint", "hwmodel/engine.py",
           "    mask = ~(OWNM | DIRTY) if clean else ~OWNM",
           "    mask = ~DIRTY if clean else ~0",
           "a reader downgrades the owner but its copies keep the OWNM hint: its next store hits"),
    # ---- APIC timer (cpu.py; the reference decodes and schedules it itself)
    Mutant("timer_periodic_rearm_late", "hwmodel/cpu.py",
           "        tm[q, T_NEXT] = tm[q, T_START] + timer_span(cs, q, jmax + 1)",
           "        tm[q, T_NEXT] = tm[q, T_START] + timer_span(cs, q, jmax + 1) + 1",
           "a periodic timer re-arms one tick late"),
    Mutant("timer_span_floor", "hwmodel/cpu.py",
           "    return (a + par[q, K_TDEN] - 1) // par[q, K_TDEN]",
           "    return a // par[q, K_TDEN]",
           "a timer expiry rounds down instead of up (ceil of count * divisor * num / den)"),
    Mutant("timer_divide_bit3_ignored", "hwmodel/cpu.py",
           "    tm[q, T_DIV] = apic.divisor(cs[C_APIC][q, apic.TIMER_DIV >> 4])",
           "    tm[q, T_DIV] = apic.divisor(cs[C_APIC][q, apic.TIMER_DIV >> 4] & 3)",
           "the divide configuration's bit 3 is ignored (divide by 32/64/128/1 decodes as 2/4/8/16)"),
    Mutant("masked_timer_latches", "hwmodel/cpu.py",
           "    if (lvt & apic.LVT_MASK or v < 16 or s == WFS or s == HALTED or s == FAULTED",
           "    if (v < 16 or s == WFS or s == HALTED or s == FAULTED",
           "a masked APIC timer's expiry still latches its vector in IRR"),
    # ---- interruptible COMPUTE
    Mutant("compute_rem_lost_on_iret", "hwmodel/cpu.py",
           "        rem = cs[C_RSTK][c, sp, 2]\n        if rem > 0:                 # back into an interrupted COMPUTE: its remaining cycles",
           "        rem = np.int64(0)\n        if rem > 0:                 # back into an interrupted COMPUTE: its remaining cycles",
           "IRET (no LIDT) drops the remaining cycles of the COMPUTE it returns into"),
    Mutant("compute_rem_whole", "hwmodel/cpu.py",
           "    rem = busy[q, 1] - t if busy[q, 1] > t else 0     # the rest of a COMPUTE it interrupts",
           "    rem = busy[q, 1] - busy[q, 0] if busy[q, 1] > t else 0     # the rest of a COMPUTE it interrupts",
           "an interrupted COMPUTE resumes with its whole length, not what was left"),
    Mutant("compute_from_fetch_start", "hwmodel/cpu.py",
           "        end = t1 + ticks(cs, c, max(n, 0))",
           "        end = t + ticks(cs, c, max(n, 0))",
           "COMPUTE is counted from before its fetch stall, not from its issue"),
    # ---- ICR delivery status, logical destinations, multicast
    Mutant("icr_xapic_no_wait", "hwmodel/cpu.py",
           "            if write and off == ICR_LOW and cs[C_ICRIDLE][c] > t:",
           "            if write and off == ICR_LOW and cs[C_ICRIDLE][c] < 0:",
           "an xAPIC ICR write does not wait for the previous IPI's icr_busy"),
    Mutant("icr_x2apic_no_wait", "hwmodel/cpu.py",
           "            if cs[C_ICRIDLE][c] > t1:                     # the APIC is still sending: the write waits",
           "            if cs[C_ICRIDLE][c] < 0:                     # the APIC is still sending: the write waits",
           "an x2APIC ICR write (WRMSR) does not wait for the previous IPI's icr_busy"),
    Mutant("icr_status_never_busy", "hwmodel/cpu.py",
           "        return cs[C_ICRLO][c] | (ICR_BUSY if t < cs[C_ICRIDLE][c] else 0)",
           "        return cs[C_ICRLO][c] | (ICR_BUSY if t < 0 else 0)",
           "reading ICR low never shows delivery status busy"),
    Mutant("logical_cluster_as_flat", "hwmodel/cpu.py",
           "        return logical_match(x2, dest, cs[C_LDR][q], cs[C_DFR][q], q)",
           "        return logical_match(x2, dest, cs[C_LDR][q], cs[C_DFR][q] | np.int64(0xF0000000), q)",
           "xAPIC logical destinations always use the flat model, even with DFR in cluster mode"),
    Mutant("serial_multicast_no_spacing", "hwmodel/cpu.py",
           "        depart = ts + busy * k if serial else ts",
           "        depart = ts",
           "serial multicast sends every copy at once instead of icr_busy apart"),
    # ---- coherence domains, CLFLUSH
    Mutant("store_wakes_other_domain", "hwmodel/cpu.py",
           "        if q != c and state[q] == SPIN and first <= wait[q] <= last and cdom[q] == cdom[c]:",
           "        if q != c and state[q] == SPIN and first <= wait[q] <= last:",
           "a store wakes spinners in another coherence domain"),
    Mutant("clflush_values_no_writeback", "hwmodel/cpu.py",
           "        dom_writeback(cs, s, page, line & ((1 << (12 - lb)) - 1), lb, True)",
           "        cs[C_LST][s, line & ((1 << (12 - lb)) - 1)] = 0",
           "CLFLUSH drops the domain's dirty copy without writing it back to memory"),
    Mutant("clflush_timing_no_writeback", "hwmodel/engine.py",
           "            if (flags[s] & DIRTY) != 0:\n                dirty = True",
           "            if (flags[s] & DIRTY) != 0:\n                dirty = False",
           "CLFLUSH of a dirty line costs no memory write and counts no writeback"),
    # ---- core types, locked RMW, interrupt frames
    Mutant("ticks_remainder_dropped", "hwmodel/cpu.py",
           "    r[c, 2] = x % den",
           "    r[c, 2] = 0",
           "core-type tick conversion drops the remainder instead of carrying it"),
    Mutant("rmw_no_line_hold", "hwmodel/cpu.py",
           "                hold_lines(st, c, inf[c, F_PA0 + k], inf[c, F_LEN0 + k], end)",
           "                pass",
           "a locked read-modify-write does not hold its line until it ends"),
    Mutant("iret_rflags_wrong_slot", "hwmodel/cpu.py",
           "        elif k == 2:\n            rflags = v",
           "        elif k == 1:\n            rflags = v",
           "IRET (with LIDT) reads RFLAGS from the CS slot of the frame"),
    Mutant("frame_rflags_no_if", "hwmodel/cpu.py",
           "            v = 2 | (cs[C_IF][c] << 9)",
           "            v = np.int64(2)",
           "the pushed interrupt frame's RFLAGS loses IF"),
]


def check(m: Mutant, root: str = ROOT) -> str:
    """The mutated text of m's file; raises if the snippet is not there exactly once."""
    path = os.path.join(root, m.file)
    with open(path) as f:
        text = f.read()
    n = text.count(m.original)
    if n != 1:
        raise SystemExit(f"mutant {m.name}: snippet not found exactly once in {m.file} (found {n} times)")
    changed = [a for a, b in zip(m.original.split("\n"), m.replacement.split("\n")) if a != b]
    if len(changed) != 1 or m.original.count("\n") != m.replacement.count("\n"):
        raise SystemExit(f"mutant {m.name}: must change exactly one line")
    return text.replace(m.original, m.replacement)


def copy_repo(dst: str, root: str = ROOT) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc", ".numba-cache")
    for name in COPY:
        src = os.path.join(root, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, name), ignore=ignore)
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dst, name))


def run_one(m: Mutant | None, timeout: int, seed: int, keep: bool, warm: str | None = None,
            tmp: str | None = None, source: str = ROOT, tests: tuple[str, ...] = TESTS) -> tuple[str, str, float]:
    """(status, killing test or note, seconds) for mutant m (None: the unmutated copy, in ``tmp``),
    in a copy of ``source``."""
    tmp = tmp or tempfile.mkdtemp(prefix=f"mksim-mutant-{m.name if m else 'baseline'}-")
    t0 = time.time()
    try:
        copy_repo(tmp, source)
        if m is not None:
            text = check(m, source)
            with open(os.path.join(tmp, m.file), "w") as f:
                f.write(text)
            if warm:
                seed_cache(warm, tmp, m.file)
        env = dict(os.environ, PYTHONPATH=tmp, NUMBA_CACHE_DIR=os.path.join(tmp, ".numba-cache"))
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}",
               "--hypothesis-profile=mutants", *(tests_for(m.file) if m else tests)]
        try:
            p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", f"no result in {timeout} s", time.time() - t0
        out = p.stdout + p.stderr
        if p.returncode == 0:
            return "survived", "", time.time() - t0
        if p.returncode == 1:
            failed = re.findall(r"^FAILED (\S+)", out, re.M)
            return "killed", failed[0] if failed else "(a test failed)", time.time() - t0
        return "error", f"pytest exit {p.returncode}: {out.strip().splitlines()[-1] if out.strip() else ''}", \
            time.time() - t0
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutants (checking each applies) and stop")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these (repeatable)")
    ap.add_argument("-j", type=int, default=1, help="mutants run at once")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutant (compile included)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    ap.add_argument("--baseline", action="store_true", help="run the unmutated copy (it must pass)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies")
    ap.add_argument("--no-share", dest="share", action="store_false",
                    help="compile every mutant from cold (by default cpu.py mutants reuse the baseline's "
                         "compiled memory system)")
    a = ap.parse_args(argv)
    names = {m.name for m in MUTANTS}
    if len(names) != len(MUTANTS):
        raise SystemExit("two mutants share a name")
    unknown = set(a.only) - names
    if unknown:
        raise SystemExit(f"no mutant named {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not a.only or m.name in a.only]
    for m in chosen:
        check(m)
    if a.list:
        for m in chosen:
            print(f"{m.name:32s} {m.file:38s} {m.what}")
        return 0
    snapshot = tempfile.mkdtemp(prefix="mksim-mutant-source-")      # edits made while this runs do not leak in
    copy_repo(snapshot)
    warm = None
    if a.baseline or (a.share and any(m.file == "hwmodel/cpu.py" for m in chosen)):
        warm = tempfile.mkdtemp(prefix="mksim-mutant-baseline-")
        status, note, secs = run_one(None, a.timeout, a.seed, True, tmp=warm, source=snapshot,
                                     tests=TESTS if a.baseline else WARMUP)
        print(f"{'baseline' if a.baseline else 'warm-up'} (unmutated): "
              f"{'passed' if status == 'survived' else status} {note} ({secs:.0f} s)", flush=True)
        if status != "survived":
            shutil.rmtree(snapshot, ignore_errors=True)
            return 1
    results: dict[str, tuple[str, str, float]] = {}

    def job(m: Mutant):
        r = run_one(m, a.timeout, a.seed, a.keep, warm if a.share else None, source=snapshot)
        results[m.name] = r
        print(f"{m.name:32s} {r[0]:9s} {r[2]:5.0f} s  {r[1]}", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
        list(ex.map(job, chosen))
    if warm and not a.keep:
        shutil.rmtree(warm, ignore_errors=True)
    shutil.rmtree(snapshot, ignore_errors=True)
    print()
    print(f"{'mutant':32s} {'result':9s} {'killed by / note'}")
    for m in chosen:
        status, note, _ = results[m.name]
        print(f"{m.name:32s} {status:9s} {note}")
    killed = sum(1 for s, _, _ in results.values() if s == "killed")
    print(f"\nkilled {killed} / {len(chosen)}; survived: "
          + (", ".join(m.name for m in chosen if results[m.name][0] != "killed") or "none"))
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
