"""Boot plans on the engine: every kernel up, every core started once, isolation, bad plans refused."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from boot import bootrun, flows, grubcfg
from boot import timeline as tl
from hwmodel.config import load_machine
from hwmodel.errors import MksimError
from hwmodel.machine import Machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.cfg")))


def run_plan(path: str, machine: str = "amd-4x4"):
    cfg = load_machine(machine)
    with open(path) as f:
        plans = grubcfg.plan(grubcfg.parse(f.read(), path)[0])
    run = flows.build(cfg, plans, ROOT)
    m = Machine(cfg)
    m.load_workload(run.workload)
    assert m.execute(50_000_000) == "done"
    return cfg, plans, run, m, tl.events(m.timeline())


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_plan_boots_every_kernel_and_core_once(path):
    cfg, plans, run, m, evs = run_plan(path)
    assert not m.fault_report()
    for k, r in enumerate(run.records):
        assert int.from_bytes(m.read(flows.UP + 8 * k, 8), "little") == 1, f"{r.name} never came up"
        assert f"{r.name} init" in {e.name for e in evs if e.core == r.cores[0]}
    first = run.records[0].cores[0]
    for c in range(cfg.cores):
        n = sum(1 for e in evs if e.core == c and e.name == "ap long mode")
        owned = any(c in r.cores for r in run.records)
        assert n == (0 if c == first or not owned else 1), f"core {c} entered long mode {n} times"
    # partitions disjoint and inside memory
    spans = sorted((a, b) for r in run.records for a, b in r.partition)
    assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    assert all(0 <= a < b <= cfg.memory.size for a, b in spans)
    # every loaded byte lies in its kernel's partition
    for r in run.records:
        for a, b in r.segments:
            assert any(lo <= a and a + len(b) <= hi for lo, hi in r.partition)
    # the two-stage trampoline's page tables map each sub-OS only onto its own partition
    for name, pt in run.page_tables.items():
        rec = next(r for r in run.records if r.name == name)
        for va in range(flows.KERNEL_VIRT, flows.KERNEL_VIRT + (1 << 30), 2 << 20):
            hit = pt.translate(va)
            if hit is not None:
                assert any(lo <= hit[0] < hi for lo, hi in rec.partition)
        assert all(any(lo <= a < hi for lo, hi in rec.partition) for a, _ in pt.writes())


def test_kexec_children_are_hashed_before_they_start():
    _, plans, run, m, evs = run_plan(os.path.join(ROOT, "examples", "popcorn.cfg"))
    kids = [p.name for p in plans if p.flow == "kexec"]
    assert kids
    for name in kids:
        start = next(e for e in evs if e.name == f"start {name}")
        load = next(e for e in evs if e.name == f"kexec load {name}")
        hashed = [e for e in evs if e.name == "purgatory sha256" and load.end <= e.start <= start.start]
        assert hashed and hashed[0].end <= start.start


@pytest.mark.parametrize("bad, msg", [
    ("--cores 0 --memory 0x1000000-0x2000000", "core 0"),
    ("--cores 1 --memory 0x1800000-0x3000000", "overlap"),
])
def test_bad_plans_are_refused_with_one_error(tmp_path, bad, msg):
    img = os.path.join(ROOT, "examples", "images", "mini-mb2.elf")
    cfgtext = (f"menuentry 'x' {{\n mksim_kernel --name a --cores 0 --memory 0x1000000-0x2000000\n"
               f" multiboot2 {img}\n mksim_kernel --name b {bad} --flow trampoline\n multiboot2 {img}\n}}\n")
    p = tmp_path / "bad.cfg"
    p.write_text(cfgtext)
    with pytest.raises(MksimError, match=msg):
        bootrun.boot_plan_file(str(p), load_machine("amd-4x4"))
    r = subprocess.run([sys.executable, "-m", "mksim", "boot", str(p), "--machine", "amd-4x4"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("mksim: error:") and "Traceback" not in r.stderr


def test_cli_boot_json_and_trace(tmp_path):
    out = tmp_path / "boot.json"
    r = subprocess.run([sys.executable, "-m", "mksim", "boot", "examples/twin-linux.cfg", "--machine", "amd-2x2",
                        "--json", "--trace", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["status"] == "done" and [k["name"] for k in res["kernels"]] == ["linux0", "linux1"]
    assert all(k["up"] for k in res["kernels"]) and res["all_up_cycle"] > 0
    trace = json.loads(out.read_text())
    assert {e["tid"] for e in trace["traceEvents"] if e["ph"] == "X"} == {0, 1}


@pytest.mark.parametrize("flow", ["grub", "kexec", "trampoline"])
def test_bench_boot_rows_every_kernel_count(flow):
    from boot.bench import boot_rows
    cfg = load_machine("amd-2x2")
    rows = boot_rows(cfg, flow)
    assert [r["kernels"] for r in rows] == [1, 2, 3, 4]
    assert all(r["all_up_cycles"] > 0 and r["steps"] for r in rows)
    if flow == "kexec":     # every secondary is loaded and hashed by the primary, one after another
        ups = [r["all_up_cycles"] for r in rows]
        assert ups == sorted(ups) and ups[-1] > ups[0]
        assert rows[-1]["steps"]["purgatory sha256"] > rows[1]["steps"]["purgatory sha256"] > 0


def test_cli_bench_boot_json():
    r = subprocess.run([sys.executable, "-m", "mksim", "bench", "boot", "--machine", "amd-2x2", "--flow",
                        "trampoline", "--max-kernels", "2", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(x["flow"], x["kernels"]) for x in rows] == [("trampoline", 1), ("trampoline", 2)]
    assert "second stage" in rows[1]["steps"]
    bad = subprocess.run([sys.executable, "-m", "mksim", "bench", "boot", "--machine", "amd-2x2", "--flow", "grub",
                          "--max-kernels", "9"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--max-kernels" in bad.stderr


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["amd-2x2", "amd-4x4", "intel-2x4", "amd-8x4", "mesh-64"]), flow=st.sampled_from(["grub", "kexec",
       "trampoline"]), smp_variant=st.sampled_from(["linux", "barrelfish", "mp-spec"]), data=st.data())
def test_generated_plans_boot_every_core_once_inside_disjoint_partitions(tmp_path_factory, name, flow, smp_variant,
                                                                         data):
    from boot import plans
    cfg = load_machine(name)
    n = data.draw(st.integers(1, min(cfg.cores, flows.MAX_KERNELS)))
    d = str(tmp_path_factory.mktemp("plan"))
    path = plans.write_plan(d, cfg, n, flow)
    res = bootrun.boot_plan_file(path, cfg, smp_variant=smp_variant, base_dir=d)
    assert res["status"] == "done" and all(k["up"] for k in res["kernels"])
    cores = [c for k in res["kernels"] for c in k["cores"]]
    assert sorted(cores) == list(range(cfg.cores))                   # every core in exactly one kernel
    spans = sorted((a, b) for k in res["kernels"] for a, b in k["partition"])
    assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    assert all(0 <= a < b <= cfg.memory.size for a, b in spans)
    long_mode = {}
    for e in res["trace"]["traceEvents"]:
        if e.get("ph") == "X" and e["name"] == "ap long mode":
            long_mode[e["tid"]] = long_mode.get(e["tid"], 0) + 1
    assert all(v == 1 for v in long_mode.values())                   # nobody starts twice
    assert set(long_mode) == set(range(1, cfg.cores))                # everyone but GRUB's core starts


def test_boot_information_in_memory_parses_back_after_the_boot():
    from boot import bootinfo as bi
    cfg, plans, run, m, _ = run_plan(os.path.join(ROOT, "examples", "barrelfish.cfg"))
    for p, r in zip(plans, run.records):
        info = bi.parse_mb2_info(m.read(r.bootinfo_addr, 4096))
        assert info.cmdline == p.cmdline and len(info.modules) == len(p.modules)
        assert all(mod.start % 4096 == 0 and any(lo <= mod.start < mod.end <= hi for lo, hi in r.partition)
                   for mod in info.modules)
        assert [(x.base, x.base + x.length) for x in info.mmap] == list(r.partition)


@pytest.mark.parametrize("image, cut", [("mini-mb2.elf", 6000), ("mini-bzImage", 9000)])
def test_truncated_images_are_refused(tmp_path, image, cut):
    data = open(os.path.join(ROOT, "examples", "images", image), "rb").read()[:cut]
    img = tmp_path / image
    img.write_bytes(data)
    cmd = "multiboot2" if image.endswith(".elf") else "linux"
    p = tmp_path / "plan.cfg"
    p.write_text(f"menuentry 'x' {{\n mksim_kernel --name a --cores 0 --memory 0x1000000-0x40000000\n"
                 f" {cmd} {img}\n}}\n")
    with pytest.raises(MksimError, match="truncated"):
        bootrun.boot_plan_file(str(p), load_machine("amd-2x2"))


def test_sub_os_reads_its_boot_information_through_its_own_page_tables():
    from boot import bootinfo as bi
    _, plans, run, m, evs = run_plan(os.path.join(ROOT, "examples", "rainforest.cfg"))
    subs = [r for r in run.records if r.name in run.page_tables]
    assert subs
    for r in subs:
        assert any(e.name == f"{r.name} virtual" and e.core == r.cores[0] for e in evs)
        off = 0x1F0 if r.protocol == "linux" else 0
        word = int.from_bytes(m.read(r.bootinfo_addr + off, 8), "little", signed=True)
        assert int(m.cpu.regs[r.cores[0], 6]) == word != 0        # the setup header copy, read via the map
        assert m.prog_stats()[r.cores[0]]["tlb_misses"] >= 1
        # walk the tables as they stand in simulated memory: every mapped 2 MiB page lands in the partition
        from hwmodel.pagetable import decode_entry, pte_address
        pt = run.page_tables[r.name]
        lo, hi = r.partition[0]

        def read(a):
            return int.from_bytes(m.read(a, 8), "little")
        for k, va in enumerate(range(flows.KERNEL_VIRT, flows.KERNEL_VIRT + min(hi - lo, 1 << 30), 2 << 20)):
            present, _w, large, pa = decode_entry(read(pte_address(pt.cr3, va, 2, read)))
            assert present and large and pa == lo + k * (2 << 20) and lo <= pa < hi
    del bi


def test_missing_image_is_one_error(tmp_path):
    p = tmp_path / "plan.cfg"
    p.write_text("menuentry 'x' {\n mksim_kernel --name a --cores 0 --memory 0x1000000-0x40000000\n"
                 " multiboot2 /nonexistent/kernel.elf\n}\n")
    r = subprocess.run([sys.executable, "-m", "mksim", "boot", str(p), "--machine", "amd-2x2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "cannot read kernel image" in r.stderr and len(r.stderr.splitlines()) == 1


def _plan_file(tmp_path, text: str) -> str:
    p = tmp_path / "plan.cfg"
    p.write_text("function mksim_kernel { true; }\n" + text)
    return str(p)


def test_kexec_child_with_unaligned_segments_hashes_what_was_loaded(tmp_path):
    from boot import mkimage
    img = tmp_path / "unal.elf"
    img.write_bytes(mkimage._elf64(0x5001100, 0x5000100, bytes([0x90]) * 16384,
                                   mkimage.multiboot2_header(0x5001100, relocatable=False), 0xF00))
    plan = _plan_file(tmp_path, f"""menuentry 'x' {{
 mksim_kernel --name a --cores 0-1 --memory 16M-64M
 linux examples/images/mini-bzImage console=ttyS0
 mksim_kernel --name b --cores 2-3 --memory 0x5000000-0x9000000 --flow kexec --by a
 multiboot2 {img}
 module2 examples/images/mini-monitor.elf mon
}}""")
    res = bootrun.boot_plan_file(plan, load_machine("amd-4x4"), base_dir=ROOT)
    assert all(k["up"] for k in res["kernels"])


@pytest.mark.parametrize("memory", ["0xFFF000-0x9000000", "0x11FF000-0x9000000"])
def test_zero_page_and_command_line_never_overlap_the_kernel(tmp_path, memory):
    from boot import loader
    plan = _plan_file(tmp_path, f"menuentry 'x' {{\n mksim_kernel --name a --cores 0 --memory {memory}\n"
                                f" linux examples/images/mini-bzImage console=ttyS0\n}}\n")
    cfg = load_machine("amd-2x2")
    p = grubcfg.plan(grubcfg.parse(open(plan).read(), plan)[0])[0]
    rec = loader.place(p, cfg, ROOT)
    spans = sorted([(a, a + len(b)) for a, b in rec.segments[1:]] + rec.reserved)   # [0] is the kernel itself
    assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:])), spans
    assert bootrun.boot_plan_file(plan, cfg, base_dir=ROOT)["kernels"][0]["up"]


@pytest.mark.parametrize("memory", ["0x5000000-0x5100000,0x6000000-0x9000000", "0x5100000-0x9000000",
                                    "0x5000000-0x5180000"])
def test_trampoline_children_on_unaligned_or_split_partitions(tmp_path, memory):
    plan = _plan_file(tmp_path, f"""menuentry 'x' {{
 mksim_kernel --name sup --cores 0 --memory 16M-64M
 multiboot2 examples/images/mini-mb2.elf
 mksim_kernel --name c --cores 1-2 --memory {memory} --flow trampoline --by sup
 linux examples/images/mini-bzImage
}}""")
    cfg = load_machine("amd-2x2")
    res = bootrun.boot_plan_file(plan, cfg, base_dir=ROOT)
    assert all(k["up"] for k in res["kernels"])
    run = flows.build(cfg, grubcfg.plan(grubcfg.parse(open(plan).read(), plan)[0]), ROOT)
    rec = next(r for r in run.records if r.name == "c")
    lo_pt = min(a for a, _ in run.page_tables["c"].writes())
    assert not any(a <= lo_pt < b for a, b in rec.reserved)           # tables clear of the kernel's memory


def test_many_aps_and_children_fit_their_code(tmp_path):
    from boot import plans
    cfg = load_machine("mesh-1024")
    d = str(tmp_path)
    res = bootrun.boot_plan_file(plans.write_plan(d, cfg, 2, "trampoline"), cfg, base_dir=d)
    assert all(k["up"] for k in res["kernels"]) and len(res["kernels"][1]["cores"]) == 512


def test_a_written_plan_reruns_from_anywhere(tmp_path, monkeypatch):
    from boot import plans
    cfg = load_machine("amd-2x2")
    path = plans.write_plan(str(tmp_path / "rep" / "boot"), cfg, 4, "grub")
    monkeypatch.chdir(tmp_path)
    assert all(k["up"] for k in bootrun.boot_plan_file(path, cfg)["kernels"])
