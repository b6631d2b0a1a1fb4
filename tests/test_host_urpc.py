"""Host URPC channel and Figure 3 sweep (native/hostbench.c through mksim/host.py): the layout
against kernels/urpc.py, path kinds and CPU order from the sysfs fixtures, and the C code run
with tiny sizes (shapes only: positive, complete, clear errors; the host's numbers are not
asserted)."""
from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import given, strategies as st

from hwmodel.errors import MksimError
from kernels import microbench, urpc
from mksim import host
from tests.test_host import FIXTURE, FIXTURE_2S, needs_native

ALLOWED = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two allowed CPUs")
BAD_CPU = max(ALLOWED) + 1000          # never online on any test host
ETIMEDOUT, EINVAL = 110, 22


# ----------------------------------------------------------------------------- pure parts
def test_ring_depth_is_the_models():
    assert host.URPC_SLOTS == microbench.SLOTS


@needs_native
def test_c_channel_layout_is_kernels_urpc():
    ffi, lib = host.load_native()
    out = ffi.new("long[8]")
    lib.hb_urpc_layout(out)
    assert list(out) == [urpc.LINE, urpc.CTRL_OFFSET, urpc.EPOCH_SHIFT, urpc.TYPE_SHIFT,
                         urpc.TYPE_MASK, urpc.TYPE_SHIFT, urpc.MSG_DATA, urpc.MSG_ACK]


def test_cpu_order_and_path_kinds_two_sockets_smt():
    d = host.describe_host(FIXTURE_2S)
    t = d["topology"]
    order = host.cpu_order(t, d["online"])
    assert order == [0, 1, 2, 3, 4, 5, 6, 7]          # one per core (package 0 first), then SMT
    paths = host.urpc_paths(t, d["caches"], order)
    assert paths == [{"path": "shared-L3", "cpus": [0, 1]}, {"path": "other-package", "cpus": [0, 2]},
                     {"path": "smt", "cpus": [0, 4]}]


def test_path_kinds_one_socket_and_restricted_cpus():
    d = host.describe_host(FIXTURE)
    t = d["topology"]
    assert host.urpc_paths(t, d["caches"], host.cpu_order(t, [0, 1, 2, 3])) == \
        [{"path": "shared-L3", "cpus": [0, 1]}]
    assert host.urpc_paths(t, d["caches"], host.cpu_order(t, [2])) == []
    assert host.cpu_order(t, [3, 1]) == [1, 3]


@given(st.integers(1, 300), st.booleans())
def test_thread_counts_cover_one_to_n(n, quick):
    c = host.thread_counts(n, quick)
    assert c == sorted(set(c)) and c[0] == 1 and c[-1] == n
    assert set(range(1, min(n, 8) + 1)) <= set(c)


def test_summary_leaves_out_passes_with_a_context_switch():
    s = host.summarize([10.0, 11.0, 500.0, 12.0, 9.0], [0, 0, 3, 0, 0])
    assert s["passes"] == "undisturbed" and s["median"] == 10.5 and s["max"] == 12.0
    assert s["median_all"] == 11.0 and len(s["samples"]) == 5
    few = host.summarize([10.0, 500.0, 600.0, 12.0], [0, 1, 2, 0])   # only 2 undisturbed passes
    assert few["passes"] == "all" and few["max"] == 600.0
    # threads that ran one after the other (overlap 0.2) are as disturbed as a switch
    seq = host.summarize([5.0, 5.0, 100.0, 110.0, 120.0], [0] * 5, [0.2, 0.3, 1.0, 0.95, 0.99])
    assert seq["passes"] == "undisturbed" and seq["median"] == 110.0 and seq["min"] == 100.0
    assert "passes" not in host.summarize([1.0, 2.0])


@given(st.lists(st.tuples(st.floats(0.1, 1e6), st.integers(0, 3), st.floats(0, 1)), min_size=1, max_size=30))
def test_summary_invariants(passes):
    s = host.summarize([x for x, _, _ in passes], [c for _, c, _ in passes], [o for _, _, o in passes])
    assert s["min"] <= s["median"] <= s["max"]
    assert min(x for x, _, _ in passes) <= s["median_all"] <= max(x for x, _, _ in passes)
    clean = [x for x, c, o in passes if c == 0 and o >= host.MIN_OVERLAP]
    assert s["passes"] == ("undisturbed" if len(clean) >= host.MIN_UNDISTURBED else "all")
    if s["passes"] == "undisturbed":
        assert min(clean) == s["min"] and max(clean) == s["max"]


@pytest.mark.parametrize("rc,pattern", [(-ETIMEDOUT, "no progress"), (-EINVAL, "cannot pin"),
                                        (-71, "protocol error"), (-12, "failed")])
def test_native_errors_become_clear_messages(rc, pattern):
    with pytest.raises(MksimError, match=pattern):
        host._check_rc(rc, "URPC ping-pong", [0, 1], 20.0)
    host._check_rc(0, "ok", [0, 1], 20.0)


# ----------------------------------------------------------------------------- native, tiny
@needs_native
@needs_two
def test_urpc_latency_and_throughput_positive():
    rows = host.urpc_bench([{"path": "p", "cpus": ALLOWED[:2]}], iters=300, msgs=500, reps=3)
    (r,) = rows
    for key in ("latency_ns", "throughput_msgs_per_us"):
        s = r[key]
        assert s["median"] > 0 and s["min"] <= s["median"] <= s["max"] and len(s["samples"]) == 3
        assert len(s["switches"]) == 3 and all(c >= 0 for c in s["switches"])


@needs_native
@needs_two
@pytest.mark.parametrize("slots", [2, 3, 16])
def test_stream_wraps_the_ring_in_order(slots):
    # many laps of a tiny ring: every epoch flip and credit wait; the receiver checks every
    # sequence number in C (a lost/duplicated/reordered message returns -EPROTO)
    ffi, lib = host.load_native()
    out = ffi.new("double[2]")
    assert lib.hb_urpc_stream(ALLOWED[0], ALLOWED[1], slots, 10 * slots + 1, 7, 2, 20.0, out, ffi.NULL) == 0
    assert lib.hb_urpc_pingpong(ALLOWED[0], ALLOWED[1], slots, 3 * slots + 1, 1, 2, 20.0, out, ffi.NULL) == 0
    assert out[0] > 0 and out[1] > 0


@needs_native
@pytest.mark.parametrize("k", [1, 8])
def test_shm_one_thread_and_msg_positive(k):
    s = host.shm_run(ALLOWED[:1], k, iters=200, reps=2)
    assert s["median"] > 0
    if len(ALLOWED) >= 2:
        two = host.shm_run(ALLOWED[:2], k, iters=200, reps=2)
        assert two["median"] > 0 and len(two["overlap"]) == 2 and all(0 <= o <= 1 for o in two["overlap"])
        assert host.msg_run(ALLOWED[0], ALLOWED[1:2], k, iters=100, reps=2)["median"] > 0


@needs_native
def test_pinning_refused_is_a_clear_error_not_a_hang():
    t0 = time.monotonic()
    with pytest.raises(MksimError, match="cannot pin"):
        host.urpc_bench([{"path": "p", "cpus": [ALLOWED[0], BAD_CPU]}], iters=10, msgs=10, reps=1)
    with pytest.raises(MksimError, match="cannot pin"):
        host.shm_run([ALLOWED[0], BAD_CPU], 1, iters=10, reps=1)
    with pytest.raises(MksimError, match="cannot pin"):
        host.msg_run(ALLOWED[0], [BAD_CPU], 1, iters=10, reps=1)
    assert time.monotonic() - t0 < 10


@needs_native
def test_runs_that_cannot_finish_time_out():
    ffi, lib = host.load_native()
    out = ffi.new("double[1]")
    t0 = time.monotonic()
    cpus = ffi.new("int[]", ALLOWED[:1])
    assert lib.hb_shm(cpus, 1, 1, 0, 10 ** 15, 0, 1, 0.05, out, ffi.NULL, ffi.NULL) == -ETIMEDOUT
    if len(ALLOWED) >= 2:
        assert lib.hb_urpc_pingpong(ALLOWED[0], ALLOWED[1], 16, 10 ** 15, 0, 1, 0.05, out, ffi.NULL) == -ETIMEDOUT
        clients = ffi.new("int[]", ALLOWED[1:2])
        assert lib.hb_msg(ALLOWED[0], clients, 1, 1, 16, 10 ** 15, 0, 1, 0.05, out, ffi.NULL, ffi.NULL) == -ETIMEDOUT
    assert time.monotonic() - t0 < 10


@needs_native
def test_bad_arguments_are_rejected():
    ffi, lib = host.load_native()
    out = ffi.new("double[1]")
    cpus = ffi.new("int[]", [0, 1])
    assert lib.hb_urpc_pingpong(0, 0, 16, 10, 1, 1, 1.0, out, ffi.NULL) == -EINVAL       # same CPU
    assert lib.hb_urpc_stream(0, 1, 1, 10, 1, 1, 1.0, out, ffi.NULL) == -EINVAL         # one slot
    assert lib.hb_shm(cpus, 0, 1, 0, 10, 1, 1, 1.0, out, ffi.NULL, ffi.NULL) == -EINVAL           # no thread
    assert lib.hb_msg(0, cpus, 1, 1, 16, 10, 1, 1, 1.0, out, ffi.NULL, ffi.NULL) == -EINVAL       # client on the server


@needs_native
@needs_two
def test_cli_host_bench_json_has_every_urpc_and_fig3_metric(tmp_path, monkeypatch):
    from mksim import cli
    monkeypatch.setattr(host, "QUICK_MAX_BYTES", 64 * 1024)
    real = {n: getattr(host, n) for n in ("memory_latency", "core_to_core", "urpc_bench", "fig3_sweep")}
    monkeypatch.setattr(host, "memory_latency", lambda s, steps, reps: real["memory_latency"](s, 5_000, 2))
    monkeypatch.setattr(host, "core_to_core", lambda p, iters, reps: real["core_to_core"](p[:1], 500, 2))
    monkeypatch.setattr(host, "urpc_bench", lambda p, iters, msgs, reps: real["urpc_bench"](p, 200, 400, 2))
    monkeypatch.setattr(host, "fig3_sweep",
                        lambda order, quick, iters, reps: real["fig3_sweep"](order[:3], quick, 200, 2))
    out = tmp_path / "host.json"
    assert cli.main(["host-bench", "--quick", "--json", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    u, f = rep["urpc"], rep["fig3"]
    assert u["slots"] == host.URPC_SLOTS and u["method"] and u["unit"] and u["note"] is None
    assert [r["path"] for r in u["rows"]] == [p["path"] for p in host.urpc_paths(
        rep["host"]["topology"], rep["host"]["caches"], f["cpu_order"])]
    for r in u["rows"]:
        assert r["latency_ns"]["median"] > 0 and r["throughput_msgs_per_us"]["median"] > 0
        if rep["host"]["clock"]["tsc_hz"]:
            assert r["latency_tsc_cycles"] > 0 and r["msgs_per_kcycle"] > 0
    n = min(3, len(f["cpu_order"]))
    want = {(f"SHM{k}", t) for k in host.SHM_SERIES for t in host.thread_counts(n, True)} | \
           {(f"MSG{k}", t) for k in host.MSG_SERIES for t in host.thread_counts(n - 1, True)}
    assert {(r["series"], r["threads"]) for r in f["rows"]} == want
    assert all(r["ns"]["median"] > 0 for r in f["rows"])
    assert all(len(r["cpus"]) == r["threads"] + (r["series"].startswith("MSG")) for r in f["rows"])
    text = host.format_report(rep)
    assert "URPC" in text and "Figure 3" in text and "MSG8" in text
