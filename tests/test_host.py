"""Host ground truth (mksim/host.py, native/hostbench.c): the sysfs reader on a fixture tree,
and the C benchmarks with tiny sizes (shapes only: the host's numbers are not asserted)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwmodel.errors import MksimError
from mksim import host

FIXTURES = Path(__file__).parent / "data" / "sysfs"
FIXTURE = FIXTURES / "one-socket-4c"          # 1 package, 4 cores, SMT off
FIXTURE_2S = FIXTURES / "two-socket-smt"      # 2 packages x 2 cores x 2 threads

try:
    import native._hostbench  # noqa: F401
    HAVE_NATIVE = True
except ImportError:
    HAVE_NATIVE = False
needs_native = pytest.mark.skipif(not HAVE_NATIVE, reason=host.BUILD_HINT)


# ----------------------------------------------------------------------------- sysfs
def test_describe_host_reads_the_one_socket_fixture():
    d = host.describe_host(FIXTURE)
    assert d["cpus_online"] == 4 and d["online"] == [0, 1, 2, 3]
    by = {(c["level"], c["type"]): c for c in d["caches"]}
    assert set(by) == {(1, "Data"), (1, "Instruction"), (2, "Unified"), (3, "Unified")}
    assert by[(1, "Data")]["size_bytes"] == 48 * 1024 and by[(1, "Data")]["ways"] == 12
    assert by[(2, "Unified")]["size_bytes"] == 1280 * 1024
    assert by[(3, "Unified")]["shared_cpus"] == [0, 1, 2, 3]
    assert by[(1, "Data")]["shared_cpus"] == [0]
    assert all(c["line_bytes"] == 64 for c in d["caches"])
    t = d["topology"]
    assert (t["packages"], t["cores"], t["threads_per_core"]) == (1, 4, 1)


def test_describe_host_reads_two_sockets_with_smt():
    d = host.describe_host(FIXTURE_2S)
    t = d["topology"]
    assert d["cpus_online"] == 8
    assert (t["packages"], t["cores"], t["threads_per_core"]) == (2, 4, 2)
    assert t["smt_siblings"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert {t["package_of_cpu"][str(c)] for c in (0, 1, 4, 5)} == {0}
    l1 = next(c for c in d["caches"] if c["level"] == 1 and c["type"] == "Data")
    l3 = next(c for c in d["caches"] if c["level"] == 3)
    assert l1["shared_cpus"] == [0, 4] and l3["shared_cpus"] == [0, 1, 4, 5]


def test_thread_siblings_that_disagree_with_core_ids_are_an_error(tmp_path):
    import shutil
    tree = tmp_path / "cpu"
    shutil.copytree(FIXTURE_2S, tree)
    (tree / "cpu4" / "topology" / "thread_siblings_list").write_text("4\n")
    with pytest.raises(MksimError, match="cpu4/topology/thread_siblings_list.*disagree"):
        host.describe_host(tree)


@pytest.mark.parametrize("text,want", [("0", [0]), ("0-3", [0, 1, 2, 3]),
                                       ("0-1,4,6-7\n", [0, 1, 4, 6, 7])])
def test_parse_cpu_list(text, want):
    assert host.parse_cpu_list(text, "x") == want


def test_parse_size_units_and_bad_input():
    assert host.parse_size("32K\n", "x") == 32 * 1024
    assert host.parse_size("32M", "x") == 32 * 1024 * 1024
    assert host.parse_size("4096", "x") == 4096
    with pytest.raises(MksimError, match="not a cache size"):
        host.parse_size("lots", "x")


def test_missing_cache_file_names_the_file(tmp_path):
    tree = tmp_path / "cpu"
    (tree / "cpu0" / "cache" / "index0").mkdir(parents=True)
    (tree / "online").write_text("0\n")
    with pytest.raises(MksimError, match=r"index0/\w+: cannot read"):
        host.describe_host(tree)


def test_not_a_sysfs_dir(tmp_path):
    with pytest.raises(MksimError, match="not a sysfs cpu directory"):
        host.describe_host(tmp_path / "absent")


def test_pair_sample_is_bounded_deterministic_and_distinct():
    cpus = list(range(32))
    a = host.choose_pairs(cpus, max_pairs=40)
    assert a == host.choose_pairs(cpus, max_pairs=40)
    assert len(a) == 40 == len(set(a))
    assert all(x < y for x, y in a)
    assert [p for p in a if p[0] == 0] == [(0, j) for j in range(1, 32)]
    assert host.choose_pairs([0, 1, 2]) == [(0, 1), (0, 2), (1, 2)]


def test_working_sets_double():
    assert host.working_sets(64 * 1024) == [4096 * 2 ** i for i in range(5)]


# ----------------------------------------------------------------------------- native
@needs_native
def test_pointer_chase_l1_not_slower_than_beyond_llc():
    llc = max(c["size_bytes"] for c in host.describe_host()["caches"])
    big = 4 * llc
    rows = host.memory_latency([4096, big], steps=100_000, reps=3)
    for r in rows:
        assert r["ns"]["median"] > 0 and r["ns"]["min"] <= r["ns"]["median"] <= r["ns"]["max"]
        assert len(r["ns"]["samples"]) == 3
    small, large = rows[0]["ns"]["median"], rows[1]["ns"]["median"]
    assert large >= small, (small, large)


@needs_native
def test_chase_rejects_bad_arguments():
    ffi, lib = host.load_native()
    out = ffi.new("double[1]")
    assert lib.hb_chase(64, 1, 10, 1, out) != 0      # one line: no cycle to chase
    assert lib.hb_chase(4096, 1, 0, 1, out) != 0


@needs_native
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two allowed CPUs")
def test_pingpong_positive_on_two_allowed_cpus():
    a, b = sorted(os.sched_getaffinity(0))[:2]
    rows = host.core_to_core([(a, b)], iters=2000, reps=3)
    assert rows[0]["cpus"] == [a, b] and rows[0]["ns"]["median"] > 0


@needs_native
def test_pinning_to_a_cpu_we_may_not_use_is_a_clear_error():
    bad = max(os.sched_getaffinity(0)) + 1000     # never online on any test host
    with pytest.raises(MksimError, match="cannot pin"):
        host.core_to_core([(0, bad)], iters=10, reps=1)


@needs_native
def test_cli_host_bench_json_is_complete(tmp_path, monkeypatch):
    from mksim import cli
    # shrink the run: tiny working sets and passes (shape check, not a measurement)
    monkeypatch.setattr(host, "QUICK_MAX_BYTES", 64 * 1024)
    real_mem, real_c2c = host.memory_latency, host.core_to_core
    monkeypatch.setattr(host, "memory_latency", lambda s, steps, reps: real_mem(s, 10_000, 2))
    monkeypatch.setattr(host, "core_to_core", lambda p, iters, reps: real_c2c(p[:1], 1000, 2))
    # URPC and Figure 3 are checked in tests/test_host_urpc.py
    monkeypatch.setattr(host, "urpc_bench", lambda p, iters, msgs, reps: [])
    monkeypatch.setattr(host, "fig3_sweep", lambda order, quick, iters, reps: [])
    out = tmp_path / "host.json"
    assert cli.main(["host-bench", "--quick", "--json", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert {"kind", "date", "quick", "host", "memory_latency", "core_to_core"} <= set(rep)
    assert rep["host"]["cpus_online"] >= 1 and rep["host"]["caches"]
    assert {"timer", "kernel_clocksource", "tsc_hz"} <= set(rep["host"]["clock"])
    assert [r["bytes"] for r in rep["memory_latency"]["rows"]] == host.working_sets(64 * 1024)
    assert all(r["ns"]["median"] > 0 for r in rep["memory_latency"]["rows"])
    if rep["host"]["clock"]["tsc_hz"]:
        assert all(r["tsc_cycles"] > 0 for r in rep["memory_latency"]["rows"] + rep["core_to_core"]["rows"])
    if len(os.sched_getaffinity(0)) >= 2:
        assert len(rep["core_to_core"]["rows"]) == 1


def test_cli_host_bench_without_extension_says_how_to_build(monkeypatch, capsys):
    import builtins
    from mksim import cli
    real_import = builtins.__import__

    def no_native(name, *a, **k):
        if name == "native._hostbench":
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_native)
    assert cli.main(["host-bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "not built" in err and "build_hostbench.py" in err


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI must have built the extension")
def test_ci_built_the_extension():
    # the install makes the build optional (a machine without gcc still installs mksim);
    # CI has gcc and the Python headers, so there a missing extension is a build bug
    assert HAVE_NATIVE, host.BUILD_HINT
