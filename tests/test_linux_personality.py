"""The Linux SMP personality's unmap + TLB shootdown (kernels/linux.py): the shape of its cost, the TLB
property it exists for, and its argument errors."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from hwmodel.workload import FAULT_NAMES, FK_NOT_PRESENT
from kernels import linux

AMD44 = load_machine("amd-4x4")
AMD22 = load_machine("amd-2x2")


# ------------------------------------------------------------------ shape

def test_cycles_grow_with_cores():
    """More CPUs in the mm: more IPIs, more handlers clearing bits in one line -> a longer unmap."""
    c = [linux.unmap_cycles(AMD44, n) for n in (2, 4, 6, 8)]
    assert c == sorted(c) and len(set(c)) == 4, c
    assert c[-1] >= 2 * c[0], c


def test_each_serial_target_costs_at_least_one_icr_busy_period():
    """physflat sends one IPI per target and polls the ICR before each: every added target adds at least
    the APIC's busy time to the initiator's path."""
    a, b = linux.unmap_cycles(AMD44, 2), linux.unmap_cycles(AMD44, 8)
    assert (b - a) / 6 >= AMD44.apic.icr_busy


def test_deterministic():
    assert linux.unmap_cycles(AMD44, 5, 2) == linux.unmap_cycles(AMD44, 5, 2)


def test_serial_ipis_one_per_target_logical_ipi_one_in_all():
    """physflat (amd-4x4: 16 APIC ids) sends one IPI per other CPU; flat (amd-2x2: ids below 8) sends one
    logical IPI whose destination is the CPU bitmap, delivered to every other CPU of the mm."""
    assert linux.genapic(AMD44) == "physflat" and linux.genapic(AMD22) == "flat"
    rounds = 2
    m = linux.run_unmap(AMD44, 6, rounds)
    assert m.prog_stats()[0]["ipis_sent"] == 5 * rounds
    delivered = [r for r in m.ipi_report() if r["outcome"] == "delivered"]
    assert sorted(r["dst"] for r in delivered) == sorted(list(range(1, 6)) * rounds)
    assert len({r["sent"] for r in delivered}) == 5 * rounds            # one ICR write each
    m = linux.run_unmap(AMD22, 4, rounds)
    assert m.prog_stats()[0]["ipis_sent"] == 3 * rounds
    delivered = [r for r in m.ipi_report() if r["outcome"] == "delivered"]
    assert sorted(r["dst"] for r in delivered) == sorted([1, 2, 3] * rounds)
    assert len({r["sent"] for r in delivered}) == rounds                # one ICR write a round


def test_rows():
    rows = linux.unmap_rows(AMD22, None, repeat=1)
    assert [r["cores"] for r in rows] == [2, 3, 4]
    assert all(set(r) == {"system", "cores", "cycles"} and r["system"] == "linux" and r["cycles"] > 0
               for r in rows)
    assert linux.sweep_cores(32) == [2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 28, 32]
    assert linux.sweep_cores(10) == [2, 3, 4, 5, 6, 7, 8, 10]


def test_windows_variant_broadcasts():
    """"windows": one all-excluding-self IPI a round, taken by every other core of the machine."""
    m = linux.run_unmap(AMD22, 3, 2, system="windows")
    assert m.prog_stats()[0]["ipis_sent"] == 3 * 2          # the machine's 3 other cores, one message
    assert linux.unmap_cycles(AMD44, 4, 1, "windows") > 0


# ------------------------------------------------------------------ the TLB property

def _probe_faults(m):
    return {f["core"]: f for f in m.fault_report()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), machine=st.sampled_from(["amd-4x4", "amd-2x2"]), system=st.sampled_from(linux.SYSTEMS))
def test_no_core_translates_the_page_after_the_unmap(data, machine, system):
    """Before the unmap every CPU of the mm loads the page through its TLB without a fault; after it,
    the same virtual load faults not-present on every one of them (the initiator and each target)."""
    cfg = AMD44 if machine == "amd-4x4" else AMD22
    cores = data.draw(st.integers(2, min(8, cfg.cores)), label="cores")
    initiator = data.draw(st.integers(0, cores - 1), label="initiator")
    rounds = data.draw(st.integers(1, 2), label="rounds")
    m = linux.run_unmap(cfg, cores, rounds, system=system, initiator=initiator, probe=True)
    faults = _probe_faults(m)
    assert sorted(faults) == list(range(cores)), m.fault_report()
    va = linux.user_va(rounds - 1)
    for c, f in faults.items():
        assert f["kind"] == FAULT_NAMES[FK_NOT_PRESENT] and f["address"] == va, f
    st_ = m.prog_stats()
    for c in range(cores):
        assert st_[c]["faults"] == 1                 # only the probe: every touch before the unmap worked
        assert st_[c]["tlb_misses"] >= rounds        # each round's touch filled the TLB
    for i in range(rounds):                          # the PTEs in the shared page tables are cleared
        assert m.read(linux.AddressSpace(cfg, list(range(cores)), rounds).pte(i), 8) == bytes(8)


def test_property_catches_a_missing_remote_invlpg():
    """The probe is not vacuous: a handler that skips its INVLPG leaves the targets translating the
    page through stale TLB entries, so only the initiator faults."""
    m = linux.run_unmap(AMD44, 4, 1, probe=True, invalidate=False)
    assert sorted(_probe_faults(m)) == [0]


# ------------------------------------------------------------------ bad arguments

@pytest.mark.parametrize("cores", [0, 1, 17, -3, True, 2.0])
def test_bad_core_counts(cores):
    with pytest.raises(MksimError, match="cores"):
        linux.unmap_cycles(AMD44, cores)


def test_bad_system_and_repeat():
    with pytest.raises(MksimError, match="unknown system 'plan9'"):
        linux.unmap_cycles(AMD44, 2, system="plan9")
    with pytest.raises(MksimError, match="repeat"):
        linux.unmap_cycles(AMD44, 2, repeat=0)
    for bad in (1, 17):
        with pytest.raises(MksimError, match="max_cores"):
            linux.unmap_rows(AMD44, bad)
    with pytest.raises(MksimError, match="initiator"):
        linux.run_unmap(AMD44, 3, 1, initiator=3)
    with pytest.raises(MksimError, match="coherence domains"):
        linux.unmap_cycles(load_machine("omap4"), 3)
    with pytest.raises(MksimError, match="x2apic"):
        linux.unmap_cycles(load_machine("xeon-phi"), 2)
