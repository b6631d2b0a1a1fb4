"""The ``mksim`` command line.

    mksim machines                         list the machine presets
    mksim machines show NAME|FILE [--json] one machine, every field with its source
    mksim trace FILE --format lackey|mksim [--I1 S,A,B --D1 S,A,B --LL S,A,B] [--json] [--out F]
                                           cachegrind-compatible single-core simulation
    mksim trace FILE --format ... --machine NAME|FILE [--seed N] [--json] [--out F]
                                           replay a (multi-core) trace on a machine model
    mksim demo [--machine NAME|FILE] [--out DIR]
                                           synthetic multi-core run, writes a report folder
    mksim bench shm-vs-msg --machine M [--max-cores N] [--iters N] [--json] [--plot F.png]
                                           shared memory vs messages (Barrelfish Figure 3)
    mksim bench urpc --machine M [--json] [--plot F.png]
                                           URPC latency and throughput per path (Table 2)
    mksim bench NAME --machine M [--max-cores N] [--repeat N] [--json] [--plot F.png]
                                           a bench a kernel personality registers (shootdown,
                                           unmap, notify, ...; ``mksim bench --help`` lists them)
    mksim personalities                    the kernel personalities and their benches
    mksim inspect FILE [--json]            headers of a kernel image (bzImage, Multiboot1/2,
                                           ELF; gzip/xz) or a grub.cfg
    mksim sweep SPEC.toml [--workers N] [--dask local|ADDRESS] [--out DIR] [--json] [--quiet]
                                           one experiment over a grid of points (resumable)
    mksim sweep plot DIR --x FIELD --y METRIC [--series FIELD] [--where F=V] [--out F.png]

Every bad input ends in one line on stderr, ``mksim: error: <message>``, and exit
status 2; result files are written atomically (see :mod:`mksim.report`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

from hwmodel.errors import MksimError
from kernels.personality import BenchOptions as BenchOptionsDefault

PROG = "mksim"
EXIT_OK = 0
EXIT_ERROR = 2

DEMO_ACCESSES = 100_000
DEMO_MACHINE = "amd-4x4"
DEMO_ITERS = 20

BENCH_ITERS = 40
BENCH_MAX_REPEAT = 101
BENCH_MAX_ITERS = 1_000_000
SHM_VS_MSG_KEYS = ("series", "cores", "cycles_per_update")
URPC_KEYS = ("machine", "path", "hops", "shared_cache", "latency_cycles", "msgs_per_kcycle")
URPC_PAPER_KEYS = ("paper_path", "paper_latency_cycles", "paper_msgs_per_kcycle", "latency_error_pct",
                   "msgs_error_pct")   # None where the paper (Table 2) has no such row
PLOT_NEEDS = "--plot needs matplotlib (pip install 'mksim[plot]')"


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("mksim")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    return "0.1.0"


# ----------------------------------------------------------------------------- argparse
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``mksim: error: ...``) and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_ERROR, f"{PROG}: error: {message}{hint}\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (the package metadata is slow to read)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(message=f"{PROG} {_version()}\n")


def _seed(text: str) -> int:
    """argparse type: a seed is an integer 0 <= seed < 2**63."""
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer >= 0") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: must be 0 <= seed < 2**63")
    return v


def _add_registered_benches(bsub) -> None:
    """One ``mksim bench NAME`` parser per experiment a personality registers (kernels.registry)."""
    from kernels import registry
    for name, (pers, ex) in sorted(registry.experiments().items()):
        pe = bsub.add_parser(
            name, help=f"{ex.summary} [{pers.name}]", formatter_class=_Formatter,
            description=f"{ex.summary}\n(registered by the {pers.name} personality, kernels/{pers.name}.py)",
            epilog=f"examples:\n  mksim bench {name} --machine amd-4x4\n"
                   f"  mksim bench {name} --machine amd-8x4 --json --plot {name}.png")
        if ex.default_machine:
            pe.add_argument("--machine", "-m", metavar="PRESET|FILE.toml", default=ex.default_machine,
                            help=f"machine preset or TOML file (default {ex.default_machine})")
        else:
            pe.add_argument("--machine", "-m", metavar="PRESET|FILE.toml", required=True,
                            help="machine preset or TOML file")
        for opt in ex.options:
            pe.add_argument(opt.flag, dest=f"x_{opt.dest}", choices=opt.choices, default=opt.default,
                            type=opt.type, help=opt.help)
        if ex.sweeps_cores:
            pe.add_argument("--max-cores", type=int, default=None, metavar="N",
                            help="largest core count (default: all cores of the machine)")
        pe.add_argument("--repeat", type=int, default=BenchOptionsDefault.repeat, metavar="N",
                        help=f"measured rounds per point, the median is reported "
                             f"(default {BenchOptionsDefault.repeat})")
        pe.add_argument("--json", action="store_true",
                        help="print {\"rows\": [{" + ", ".join(f'\"{k}\"' for k in ex.keys) + "}, ...]}")
        pe.add_argument("--plot", metavar="FILE.png", help="also draw the rows (needs matplotlib)")


def build_parser(benches: bool = True) -> argparse.ArgumentParser:
    """The command-line parser.  ``benches=False`` leaves out the benches that personalities
    register: listing them imports every personality, and with it numpy and the engine, which
    only ``mksim bench`` needs (``mksim --help`` and the other commands start faster)."""
    p = _Parser(prog=PROG, formatter_class=_Formatter,
                description="mksim: a cycle-approximate many-core machine model.",
                epilog="Run 'mksim COMMAND --help' for the options of a command.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # machines ---------------------------------------------------------------
    pm = sub.add_parser(
        "machines", help="list machine presets, or show one machine",
        formatter_class=_Formatter,
        description="List the machine presets (name, cores, clock, description).",
        epilog="examples:\n  mksim machines\n  mksim machines show amd-4x4\n"
               "  mksim machines show my-machine.toml --json")
    msub = pm.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ps = msub.add_parser(
        "show", help="print one machine: every field with its source",
        formatter_class=_Formatter,
        description="Print one machine (a preset name or a TOML file): every field "
                    "with the source of its numbers.",
        epilog="examples:\n  mksim machines show amd-4x4\n  mksim machines show ./my.toml --json")
    ps.add_argument("machine", metavar="NAME_OR_FILE", help="preset name or path to a .toml file")
    ps.add_argument("--json", action="store_true",
                    help="print the configuration as JSON (dataclasses.asdict)")

    # trace ------------------------------------------------------------------
    pt = sub.add_parser(
        "trace", help="simulate a memory-access trace (cachegrind mode or on a machine)",
        formatter_class=_Formatter,
        description=(
            "Simulate a memory-access trace.\n\n"
            "Without --machine: cachegrind-compatible single-core simulation (I1, D1, LL;\n"
            "the same numbers as valgrind --tool=cachegrind --cache-sim=yes): a cache-count\n"
            "model, hits and misses only, not a timing model.\n"
            "With --machine: replay the trace on a multi-core machine model (caches,\n"
            "coherence, interconnect, memory) and report per-core cycles and coherence stats."),
        epilog=(
            "examples:\n"
            "  mksim trace prog.lackey --format lackey\n"
            "  mksim trace prog.lackey.xz --format lackey --D1 65536,2,64 --json\n"
            "  mksim trace two_cores.mksim --format mksim --machine amd-2x2\n"
            "  mksim trace t.mksim.gz --format mksim --machine my.toml --json --out result.json"))
    pt.add_argument("file", metavar="FILE", help="trace file (plain, .gz or .xz)")
    pt.add_argument("--format", "-f", choices=("lackey", "mksim"), default=None,
                    help="trace format (default: from the file name, e.g. x.lackey, x.mksim.gz)")
    pt.add_argument("--machine", "-m", metavar="PRESET|FILE.toml",
                    help="replay on this machine model (multi-core mode)")
    pt.add_argument("--seed", type=_seed, default=None,
                    help="seed for random replacement policies (multi-core mode; default 0)")
    pt.add_argument("--I1", dest="i1", metavar="S,A,B",
                    help="cachegrind mode: I1 size,assoc,line (default 32768,8,64)")
    pt.add_argument("--D1", dest="d1", metavar="S,A,B",
                    help="cachegrind mode: D1 size,assoc,line (default 32768,8,64)")
    pt.add_argument("--LL", dest="ll", metavar="S,A,B",
                    help="cachegrind mode: LL size,assoc,line (default 8388608,16,64)")
    pt.add_argument("--json", action="store_true", help="print the result as JSON")
    pt.add_argument("--out", "-o", metavar="FILE.json",
                    help="also write the JSON result to this file (atomically)")

    # demo -------------------------------------------------------------------
    pd = sub.add_parser(
        "demo", help="the main job: boot a multi-kernel plan, run shm-vs-msg, replay a trace",
        formatter_class=_Formatter,
        description=(
            "Boot a Barrelfish-style plan (one kernel per core: GRUB loads a Multiboot2 CPU\n"
            "driver and a monitor module per core; the kernels' boot cores start by INIT-SIPI),\n"
            "run the coherence-versus-message microbenchmark (Figure 3 of the Barrelfish paper,\n"
            "up to 16 cores), and replay a short deterministic multi-core trace (each core\n"
            "streams over a private buffer; some accesses share a few lines). Prints a summary\n"
            "and writes a report folder: report.json, summary.txt, boot-trace.json (Chrome\n"
            "Trace Event JSON: open it in Perfetto), boot/ (the plan and its images, to rerun\n"
            "with mksim boot), trace.mksim, and cycles.png / shm-vs-msg.png (with matplotlib)."),
        epilog="examples:\n  mksim demo\n  mksim demo --machine mesh-64 --out /tmp/demo-mesh")
    pd.add_argument("--machine", "-m", metavar="PRESET|FILE.toml", default=DEMO_MACHINE,
                    help=f"machine preset or TOML file (default {DEMO_MACHINE})")
    pd.add_argument("--out", "-o", metavar="DIR",
                    help="report folder (default reports/demo-<machine>/); an older report "
                         "folder there is replaced")
    pd.add_argument("--seed", type=_seed, default=0, help="seed of the trace and the machine (default 0)")
    pd.add_argument("--accesses", type=int, default=DEMO_ACCESSES,
                    help=f"number of accesses in the trace (default {DEMO_ACCESSES}); rounded up to a "
                         f"whole number per core, and the summary says so")
    pd.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    # bench ------------------------------------------------------------------
    pb = sub.add_parser(
        "bench", help="coherence-versus-message microbenchmarks (Barrelfish Figure 3, Table 2)",
        formatter_class=_Formatter,
        description=(
            "Microbenchmarks of the Barrelfish paper (Baumann et al., The Multikernel,\n"
            "SOSP 2009), run as core programs on a machine model."),
        epilog="examples:\n  mksim bench shm-vs-msg --machine amd-4x4 --plot fig3.png\n"
               "  mksim bench urpc --machine amd-8x4 --json")
    bsub = pb.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    bsub.required = True
    pbs = bsub.add_parser(
        "shm-vs-msg", help="cycles per update: shared memory (SHMn) vs URPC to a server (MSGn)",
        formatter_class=_Formatter,
        description=(
            "Figure 3 of the paper: the cost of one update of n shared cache lines by k\n"
            "cores, directly through shared memory (SHM1, SHM2, SHM4, SHM8: every core\n"
            "updates the lines itself), or by a lightweight RPC over URPC to a server on\n"
            "core 0 that owns the lines (MSG1, MSG8: k-1 clients), and the server's own\n"
            "cycles per update (SERVER, with MSG8's clients); for k = 1 .. --max-cores.\n"
            "Timed after the first quarter of the iterations."),
        epilog="examples:\n  mksim bench shm-vs-msg --machine amd-4x4\n"
               "  mksim bench shm-vs-msg --machine amd-2x2 --max-cores 3 --iters 8 --json\n"
               "  mksim bench shm-vs-msg --machine amd-4x4 --plot fig3.png")
    pbs.add_argument("--machine", "-m", metavar="PRESET|FILE.toml", required=True,
                     help="machine preset or TOML file")
    pbs.add_argument("--max-cores", type=int, default=None, metavar="N",
                     help="largest core count (default: all cores of the machine)")
    pbs.add_argument("--iters", type=int, default=BENCH_ITERS, metavar="N",
                     help=f"updates per core (default {BENCH_ITERS}); the first quarter warms the "
                          f"caches and is not timed")
    pbs.add_argument("--json", action="store_true",
                     help='print {"rows": [{"series", "cores", "cycles_per_update"}, ...]}')
    pbs.add_argument("--plot", metavar="FILE.png",
                     help="also draw cycles per update vs cores, one line per series (needs matplotlib)")
    pbu = bsub.add_parser(
        "urpc", help="URPC one-way latency and throughput between core 0 and each path kind",
        formatter_class=_Formatter,
        description=(
            "Table 2 of the paper: one-way URPC latency (ping-pong, cycles) and pipelined\n"
            "throughput (messages per kilocycle) between core 0 and one core of every\n"
            "kind of path the machine has (shared cache, same package, one hop, ...).\n"
            "For the paper's machines (intel-2x4, amd-2x2, amd-4x4, amd-8x4) the table\n"
            "also shows the published numbers and the model's error."),
        epilog="examples:\n  mksim bench urpc --machine amd-4x4\n"
               "  mksim bench urpc --machine amd-2x2 --json\n"
               "  mksim bench urpc --machine amd-8x4 --plot urpc.png")
    pbu.add_argument("--machine", "-m", metavar="PRESET|FILE.toml", required=True,
                     help="machine preset or TOML file")
    pbu.add_argument("--json", action="store_true",
                     help='print {"rows": [{"machine", "path", "hops", "shared_cache", "latency_cycles", '
                          '"msgs_per_kcycle"}, ...]}')
    pbu.add_argument("--plot", metavar="FILE.png",
                     help="also draw latency and throughput per path (needs matplotlib)")
    pbb = bsub.add_parser(
        "boot", help="cycles until every kernel is up, by step, for 1..N kernels",
        formatter_class=_Formatter,
        description=(
            "Boot 1..N kernels (cores and memory split evenly; images generated by mksim) with\n"
            "one flow: grub (GRUB loads every kernel), kexec (a primary kexecs the others),\n"
            "trampoline (a supervisor starts sub-OSes through a two-stage trampoline)."),
        epilog="examples:\n  mksim bench boot --machine amd-4x4 --flow kexec\n"
               "  mksim bench boot --machine amd-8x4 --flow grub --json")
    pbb.add_argument("--machine", "-m", required=True, metavar="PRESET|FILE.toml", help="machine")
    pbb.add_argument("--flow", required=True, choices=["grub", "kexec", "trampoline"], help="boot flow")
    pbb.add_argument("--max-kernels", type=int, metavar="N", help="largest kernel count (default: one per core)")
    pbb.add_argument("--smp", default="linux", choices=["mp-spec", "linux", "ihk", "barrelfish"],
                     help="how each kernel starts its other cores")
    pbb.add_argument("--json", action="store_true",
                     help='print {"rows": [{"flow", "kernels", "all_up_cycles", "all_up_us", "steps"}]}')
    pbb.add_argument("--plot", metavar="FILE.png", help="also draw cycles until all up vs kernels, by step")

    # benches registered by personalities (kernels.registry) -------------------
    if benches:
        _add_registered_benches(bsub)

    # personalities ----------------------------------------------------------
    sub.add_parser(
        "personalities", help="list the kernel personalities and the benches they register",
        formatter_class=_Formatter,
        description="The kernel personalities that exist (kernels/registry.py): the names a plan's\n"
                    "mksim_kernel --personality may take, each with its boot style and benches.",
        epilog="examples:\n  mksim personalities")

    # inspect ----------------------------------------------------------------
    pi = sub.add_parser(
        "inspect", help="show the headers of a kernel image or a grub.cfg",
        formatter_class=_Formatter,
        description=(
            "Show what a boot loader reads from a kernel image: the Linux x86 boot protocol\n"
            "setup header (bzImage), Multiboot1 and Multiboot2 headers, ELF headers and\n"
            "program headers; gzip and xz images are decompressed first. A grub.cfg (a\n"
            "file named *.cfg, or text that is no image) is inspected as a GRUB configuration."),
        epilog="examples:\n  mksim inspect /boot/vmlinuz-6.1.0-50-amd64\n"
               "  mksim inspect /boot/xen-4.17-amd64.gz --json\n  mksim inspect /boot/grub/grub.cfg")
    pi.add_argument("file", metavar="FILE", help="kernel image (plain, .gz or .xz) or grub.cfg")
    pi.add_argument("--json", action="store_true", help="print the inspection as JSON")
    pi.add_argument("--commands", action="store_true",
                    help="a grub.cfg with a multi-kernel plan: print every menu entry's commands too "
                         "(default: the plan only)")

    # sweep ------------------------------------------------------------------
    pw = sub.add_parser(
        "sweep", help="run one experiment over a grid of parameter points (pool or Dask; resumable)",
        formatter_class=_Formatter,
        description=(
            "Run one experiment (a bench, the boot of a plan, or the replay of a trace) over the\n"
            "points of a spec file: machines, machine fields by dotted name, the experiment's\n"
            "options (see examples/sweeps/). Points run on a process pool (--workers) or on a Dask\n"
            "cluster (--dask local or a scheduler address; needs pip install 'mksim[sweep]'),\n"
            "with identical results. Each finished point is written at once to OUT/points/, so a\n"
            "stopped sweep started again runs only the missing points; OUT/results.csv at the end.\n\n"
            "  mksim sweep plot DIR --x FIELD --y METRIC [--series FIELD]   draws DIR/results.csv"),
        epilog="examples:\n  mksim sweep examples/sweeps/boot-scaling.toml --workers 2\n"
               "  mksim sweep examples/sweeps/fig3-sensitivity.toml --dask local --out sweeps/fig3\n"
               "  mksim sweep plot sweeps/fig3 --x interconnect.link_latency --y cycles_per_update "
               "--series series --where cores=4")
    pw.add_argument("target", nargs="+", metavar="SPEC.toml | plot DIR",
                    help="a sweep spec, or 'plot' and a sweep folder")
    pw.add_argument("--workers", "-j", type=int, default=None, metavar="N",
                    help="worker processes (default: the host's cores)")
    pw.add_argument("--dask", metavar="local|ADDRESS",
                    help="run on Dask: 'local' starts a LocalCluster of --workers processes; an address "
                         "(tcp://host:8786) joins a running scheduler")
    pw.add_argument("--out", "-o", metavar="DIR",
                    help="results folder (default sweeps/<spec name>/); its parent must exist")
    pw.add_argument("--json", action="store_true", help="print the summary and result rows as JSON")
    pw.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    pw.add_argument("--x", metavar="FIELD", help="plot: the x axis column")
    pw.add_argument("--y", metavar="METRIC", help="plot: the y axis column")
    pw.add_argument("--series", metavar="FIELD", help="plot: one line per value of this column")
    pw.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                    help="plot: keep only rows with this value (repeatable)")

    # boot -------------------------------------------------------------------
    pb2 = sub.add_parser(
        "boot", help="emulate a multi-kernel boot plan (grub.cfg) on a machine",
        formatter_class=_Formatter,
        description=(
            "Boot the kernels of one menu entry of a grub.cfg plan (see examples/README.md for the\n"
            "mksim_kernel extension) on a machine: GRUB copies images and writes boot information,\n"
            "kernels start each other (GRUB, kexec, two-stage trampoline) and their cores\n"
            "(INIT-SIPI-SIPI); every step runs as core programs, so its cost comes from the model.\n"
            "Prints a per-kernel, per-step summary; --trace writes Chrome Trace Event JSON\n"
            "(one track per core; open it in Perfetto)."),
        epilog="examples:\n  mksim boot examples/barrelfish.cfg --machine amd-4x4\n"
               "  mksim boot examples/popcorn.cfg --machine amd-4x4 --trace boot.json --json")
    pb2.add_argument("plan", metavar="PLAN", help="grub.cfg with mksim_kernel lines")
    pb2.add_argument("--machine", required=True, metavar="M", help="preset name or machine TOML file")
    pb2.add_argument("--entry", default="0", metavar="N|ID|TITLE",
                     help="menu entry: index (default 0), --id or title")
    pb2.add_argument("--smp", default="linux", choices=["mp-spec", "linux", "ihk", "barrelfish"],
                     help="how each kernel starts its other cores")
    pb2.add_argument("--trace", metavar="OUT.json", help="write the boot timeline as Chrome Trace Event JSON")
    pb2.add_argument("--json", action="store_true", help="print the summary as JSON")

    # host-bench ----------------------------------------------------------------
    ph = sub.add_parser(
        "host-bench", help="measure this host: memory latency and core-to-core latency (C, cffi)",
        formatter_class=_Formatter,
        description=(
            "Run the C host benchmarks (native/, built by cffi at install): memory latency by\n"
            "working-set size (dependent pointer chase) and the core-to-core cache-line latency\n"
            "of pinned CPU pairs (CAS ping-pong, round trip / 2), with the host's caches from\n"
            "/sys/devices/system/cpu. Median and spread of repeated passes; no root needed."),
        epilog="examples:\n  mksim host-bench --quick\n  mksim host-bench --json --out host.json")
    ph.add_argument("--quick", action="store_true", help="working sets up to 64 MiB, fewer passes (< 1 min)")
    ph.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ph.add_argument("--out", metavar="F", help="also write the JSON to F (atomically)")

    # calibrate -----------------------------------------------------------------
    pc = sub.add_parser(
        "calibrate", help="write a machine preset of this host (sysfs + host-bench latencies)",
        formatter_class=_Formatter,
        description=(
            "Build a machine TOML of this host: packages, cores and caches from\n"
            "/sys/devices/system/cpu, the clock from the TSC, cache and memory latencies from the\n"
            "pointer chase and the directory cost from the core-to-core latency (mksim host-bench).\n"
            "Every number names its source (sysfs, measured, derived or assumption)."),
        epilog=("examples:\n  mksim calibrate --quick --out host.toml\n"
                "  mksim host-bench --json --out host.json && mksim calibrate --from-json host.json --out host.toml\n"
                "  mksim machines show host.toml"))
    pc.add_argument("--out", metavar="F", help="write the TOML to F (atomically) instead of printing it")
    pc.add_argument("--quick", action="store_true", help="run host-bench --quick (< 1 min)")
    pc.add_argument("--from-json", metavar="F", help="use a saved `mksim host-bench --json` report")

    # compare -------------------------------------------------------------------
    pcm = sub.add_parser(
        "compare", help="the model's predictions next to this host's measurements",
        formatter_class=_Formatter,
        description=(
            "compare host: URPC latency and throughput per path kind and the Figure 3 sweep\n"
            "(SHMk, MSGk) run by the model on a preset of this host (default: calibrated from the\n"
            "report), next to the host's own measurements (mksim host-bench), with the error\n"
            "of each. Same units on both sides (ns, messages/us). See mksim/compare.py."),
        epilog=("examples:\n  mksim compare host\n"
                "  mksim compare host --report host.json --preset host.toml --json --plot cmp.png"))
    pcm.add_argument("target", choices=["host"], help="what to compare with (the host)")
    pcm.add_argument("--preset", metavar="F", help="machine preset or TOML (default: calibrate from the report)")
    pcm.add_argument("--report", metavar="F", help="saved host-bench --json report (default: run host-bench --quick)")
    pcm.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pcm.add_argument("--plot", metavar="F", help="write a PNG: URPC bars and Figure 3 curves")
    return p


# ----------------------------------------------------------------------------- helpers
def _out(text: str = "") -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _load_machine(spec: str):
    from hwmodel.config import load_machine
    if not spec:
        raise MksimError("empty machine name")
    p = Path(spec)
    if p.is_dir():   # also a bare name that is a folder here ("machines show somedir")
        raise MksimError("is a directory, not a machine preset or machine file", where=spec)
    return load_machine(spec)


def _first_line(text: str, width: int = 72) -> str:
    text = " ".join((text or "").split())
    if not text:
        return ""
    cut = text.find(". ")
    if 0 < cut < width:
        text = text[:cut + 1]
    return text if len(text) <= width else text[:width - 3] + "..."


def _fmt_bytes(n: int) -> str:
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n} B"


# ----------------------------------------------------------------------------- machines
def cmd_machines(args) -> int:
    if args.action == "show":
        return cmd_machines_show(args)
    from hwmodel.config import load_machine, preset_names
    rows, errors = [], []
    for name in preset_names():
        try:
            cfg = load_machine(name)
        except MksimError as e:
            rows.append((name, "?", "?", f"(invalid: {e})"))
            errors.append(str(e))
            continue
        rows.append((name, f"{cfg.cores} ({cfg.packages}x{cfg.cores_per_package})",
                     f"{cfg.clock_ghz:g} GHz", _first_line(cfg.description)))
    head = ("name", "cores", "clock", "description")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    _out(f"{head[0]:<{w[0]}}  {head[1]:>{w[1]}}  {head[2]:>{w[2]}}  {head[3]}")
    for r in rows:
        _out(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}")
    if errors:
        raise MksimError(f"{len(errors)} preset(s) failed to load; first: {errors[0]}")
    return EXIT_OK


def _section(title: str, obj, skip=("source",), prefix: str = "", defaults=()) -> list[str]:
    """One table; a field the machine file left out (``prefix.name`` in ``defaults``) is marked."""
    lines = [title]
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        mark = "   default (assumption)" if f"{prefix}.{f.name}" in defaults else ""
        lines.append(f"  {f.name:<18} = {getattr(obj, f.name)!r}{mark}")
    src = getattr(obj, "source", None)
    lines.append(f"  {'source':<18} : {src if src else '(none given)'}")
    return lines


def _core_type_lines(cfg) -> list[str]:
    """The [[core_type]] tables, which package has which type, and the coherence domains."""
    lines: list[str] = []
    for t in cfg.core_types:
        num, den = cfg.clock_ratio(cfg.package_types.index(t.name) * cfg.cores_per_package) \
            if t.name in cfg.package_types else (0, 0)
        lines.append("")
        lines += _section(f"core_type {t.name}  ({t.clock_ghz:g} GHz; one cycle = {num}/{den} reference ticks)",
                          t.core)
        for o in t.caches:
            lines.append(f"  cache {o.name:<12} size={o.size or '(machine)'} ways={o.ways or '(machine)'} "
                         f"latency={o.latency or '(machine)'} (own cycles) : {o.source or '(none given)'}")
    if cfg.package_types or cfg.package_domains:
        lines.append("")
        lines.append("packages (core type, coherence domain)")
        for p in range(cfg.packages):
            first = p * cfg.cores_per_package
            lines.append(f"  package {p:<3} cores {first}..{first + cfg.cores_per_package - 1}  "
                         f"type {cfg.core_type(first).name:<12} domain {cfg.domain(first)}")
    return lines


def format_machine(cfg) -> str:
    """Human-readable dump of a MachineConfig: every field, each table with its source."""
    lines = [f"{cfg.name}  ({cfg.origin})"]
    if cfg.description:
        for ln in cfg.description.strip().splitlines():
            lines.append(f"  | {ln}")
    lines.append("")
    lines.append("machine")
    for k in ("name", "packages", "cores_per_package", "clock_ghz"):
        lines.append(f"  {k:<18} = {getattr(cfg, k)!r}")
    lines.append(f"  {'cores':<18} = {cfg.cores}   (packages x cores_per_package)")
    lines.append(f"  {'origin':<18} = {cfg.origin!r}")
    for i, c in enumerate(cfg.caches):
        lines.append("")
        lines += _section(f"cache {c.name}  (L{c.level} {c.kind}, {_fmt_bytes(c.size)}, "
                          f"{c.ways}-way, {c.sets} sets, {c.sharing})", c, prefix=f"cache[{i}]",
                          defaults=cfg.defaults)
    for title, obj in (("coherence", cfg.coherence), ("interconnect", cfg.interconnect),
                       ("memory", cfg.memory), ("core", cfg.core), ("apic", cfg.apic)):
        lines.append("")
        lines += _section(title, obj, prefix=title, defaults=cfg.defaults)
    lines += _core_type_lines(cfg)
    lines.append("")
    lines.append("sources")
    if cfg.sources:
        lines += [f"  {s}" for s in cfg.sources]
    else:
        lines.append("  (none given)")
    if cfg.defaults:
        lines.append("")
        lines.append(f"defaults: {len(cfg.defaults)} field(s) not in the machine file took built-in values, "
                     "each marked 'default (assumption)' above: " + ", ".join(cfg.defaults))
    return "\n".join(lines) + "\n"


def cmd_machines_show(args) -> int:
    cfg = _load_machine(args.machine)
    if args.json:
        from mksim.report import to_json
        sys.stdout.write(to_json(dataclasses.asdict(cfg)))
    else:
        sys.stdout.write(format_machine(cfg))
    return EXIT_OK


# ----------------------------------------------------------------------------- trace
def _guess_format(path: str) -> str:
    name = os.path.basename(path).lower()
    for ext in (".gz", ".xz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    for fmt in ("lackey", "mksim"):
        if name.endswith("." + fmt):
            return fmt
    raise MksimError("cannot tell the trace format from the file name; "
                     "give --format lackey or --format mksim", where=path)


def summarize_stats(stats: dict) -> dict:
    """Totals over cores of a ``Machine.stats()`` result."""
    cores = stats["cores"]
    keys = [k for k in cores[0] if k not in ("core", "caches", "cycles", "ns")] if cores else []
    tot = {k: sum(c[k] for c in cores) for k in keys}
    levels: dict[str, dict[str, int]] = {}
    for c in cores:
        for name, d in c["caches"].items():
            acc = levels.setdefault(name, {k: 0 for k in d})
            for k, v in d.items():
                acc[k] += v
    return {"total_cycles": stats["total_cycles"],
            "sum_core_cycles": sum(c["cycles"] for c in cores),
            "totals": tot, "caches": levels}


def format_machine_stats(stats: dict, cfg, max_rows: int | None = None) -> str:
    """Per-core table (cycles, hits/misses per cache, coherence counters) and totals."""
    cores = stats["cores"]
    names = list(cores[0]["caches"]) if cores else []
    head = ["core", "cycles", "accesses", "stall"] + [f"{n} hit/miss" for n in names] + \
           ["inv_sent", "inv_recv", "upgr", "c2c", "mem_rd", "mem_wr"]
    rows = []
    shown = cores if max_rows is None or len(cores) <= max_rows else cores[:max_rows]
    for c in shown:
        rows.append([str(c["core"]), str(c["cycles"]), str(c["accesses"]), str(c["stall_cycles"])] +
                    [f"{c['caches'][n]['hits']}/{c['caches'][n]['misses']}" for n in names] +
                    [str(c[k]) for k in ("invalidations_sent", "invalidations_received", "upgrades",
                                         "cache_to_cache", "memory_reads", "memory_writes")])
    s = summarize_stats(stats)
    t, lv = s["totals"], s["caches"]
    if cores:
        rows.append(["all", str(s["total_cycles"]), str(t["accesses"]), str(t["stall_cycles"])] +
                    [f"{lv[n]['hits']}/{lv[n]['misses']}" for n in names] +
                    [str(t[k]) for k in ("invalidations_sent", "invalidations_received", "upgrades",
                                         "cache_to_cache", "memory_reads", "memory_writes")])
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    out = ["  ".join(h.rjust(w[i]) for i, h in enumerate(head))]
    for j, r in enumerate(rows):
        if j == len(rows) - 1 and cores:
            if len(shown) < len(cores):
                out.append(f"... {len(cores) - len(shown)} more cores (see the JSON result)")
            out.append("-" * len(out[0]))
        out.append("  ".join(x.rjust(w[i]) for i, x in enumerate(r)))
    ns = s["total_cycles"] / cfg.clock_ghz if cfg.clock_ghz else 0.0
    out.append("")
    out.append(f"total cycles {s['total_cycles']:,} (slowest core; {ns / 1000:,.2f} us at "
               f"{cfg.clock_ghz:g} GHz)")
    if t:
        out.append(f"coherence: {t['invalidations_sent']:,} invalidations, {t['upgrades']:,} upgrades, "
                   f"{t['cache_to_cache']:,} cache-to-cache transfers, "
                   f"{sum(lv[n]['coherence_misses'] for n in names):,} coherence misses; "
                   f"{t['local_transactions']:,} local / {t['remote_transactions']:,} remote transactions, "
                   f"{t['hops']:,} hops")
        out.append(f"memory: {t['memory_reads']:,} reads, {t['memory_writes']:,} writes")
    return "\n".join(out) + "\n"


CACHE_COUNT_NOTE = ("\n(a cache-count model, cachegrind's: hits and misses, no cycles; "
                    "--machine replays the trace on a timing model)\n")


def _nonempty(trace, path: str):
    """A trace with no accesses is an error (not an all-zero table)."""
    if len(trace) == 0:
        raise MksimError("the trace holds no accesses (empty, or only comments and blank lines)", where=path)
    return trace


def cmd_trace(args) -> int:
    from hwmodel.trace import read_trace
    cg_opts = [o for o, v in (("--I1", args.i1), ("--D1", args.d1), ("--LL", args.ll)) if v is not None]
    if args.machine is not None and cg_opts:
        raise MksimError(f"{'/'.join(cg_opts)} {'is' if len(cg_opts) == 1 else 'are'} for the "
                         f"cachegrind-compatible single-core mode and cannot be combined with "
                         f"--machine (the machine file gives the caches)")
    if args.machine is None and args.seed is not None:
        raise MksimError("--seed only applies with --machine")
    fmt = args.format or _guess_format(args.file)
    if args.out:
        from mksim.report import check_writable_file
        check_writable_file(args.out)

    if args.machine is None:
        from hwmodel import cachegrind as cg
        i1 = cg.parse_cache_spec(args.i1, "--I1") if args.i1 is not None else cg.DEFAULT_I1
        d1 = cg.parse_cache_spec(args.d1, "--D1") if args.d1 is not None else cg.DEFAULT_D1
        ll = cg.parse_cache_spec(args.ll, "--LL") if args.ll is not None else cg.DEFAULT_LL
        trace = _nonempty(read_trace(args.file, fmt), args.file)
        result = cg.simulate(trace, i1, d1, ll)
        text = cg.format_summary(result) + CACHE_COUNT_NOTE
    else:
        from hwmodel.machine import Machine
        cfg = _load_machine(args.machine)
        trace = _nonempty(read_trace(args.file, fmt), args.file)
        m = Machine(cfg, seed=args.seed or 0)
        try:
            m.run(trace.core, trace.kind, trace.addr, trace.size, record=False)
        except MksimError as e:
            raise MksimError(str(e), where=args.file) from None   # name the trace it came from
        result = m.stats()
        result["trace"] = args.file
        result["accesses"] = len(trace)
        text = (f"{cfg.name}: {cfg.cores} cores, trace {args.file} ({len(trace):,} accesses)\n\n"
                + format_machine_stats(result, cfg))

    from mksim.report import to_json, write_json
    if args.out:
        write_json(args.out, result)
    sys.stdout.write(to_json(result) if args.json else text)
    return EXIT_OK


# ----------------------------------------------------------------------------- demo
def make_demo_trace(cfg, accesses: int = DEMO_ACCESSES, seed: int = 0):
    """A deterministic synthetic multi-core trace for ``cfg``.

    Per core, in a loop: an instruction fetch from a shared 1 KiB code region every
    fourth access; otherwise 7/8 of the data accesses stream (3 loads : 1 store,
    8-byte steps) over a private 48 KiB buffer placed in the core's own memory node,
    and 1/8 go to one of four shared lines (half loads, a quarter stores, a quarter
    read-modify-writes), which makes invalidations and cache-to-cache transfers.
    Accesses are interleaved round-robin over the cores.  Returns (core, kind, addr, size).
    """
    import numpy as np
    from hwmodel.trace import KIND_I, KIND_L, KIND_M, KIND_S

    ncores = cfg.cores
    per = max(1, -(-accesses // ncores))
    rng = np.random.default_rng(seed)
    line = cfg.line
    node_bytes = cfg.memory.size // cfg.packages
    buf = 48 << 10
    code_base = 0x400000
    shared_base = 0x10000000
    n_shared = 4

    i = np.arange(per, dtype=np.int64)
    core = np.tile(np.arange(ncores, dtype=np.int64), per)  # round-robin: (step, core)
    step = np.repeat(i, ncores)
    n = core.size
    kind = np.empty(n, np.int64)
    addr = np.empty(n, np.int64)
    size = np.full(n, 8, np.int64)

    is_i = (step % 4) == 0
    r = rng.random(n)
    is_sh = (~is_i) & (r < 0.125)
    is_pv = ~(is_i | is_sh)

    # instruction fetches: 4-byte instructions over a 1 KiB loop body
    kind[is_i] = KIND_I
    addr[is_i] = code_base + ((step[is_i] // 4) * 4) % 1024
    size[is_i] = 4
    # private streams: core c's buffer lies in its package's memory node
    pkg = core // cfg.cores_per_package
    local = core % cfg.cores_per_package
    base = (pkg * node_bytes + (1 << 24) + local * (1 << 20)) % cfg.memory.size
    off = (step * 8) % buf
    addr[is_pv] = (base + off)[is_pv]
    kind[is_pv] = np.where(rng.random(n)[is_pv] < 0.75, KIND_L, KIND_S)
    # shared lines
    which = rng.integers(0, n_shared, n)
    addr[is_sh] = shared_base + which[is_sh] * line
    u = rng.random(n)[is_sh]
    kind[is_sh] = np.where(u < 0.5, KIND_L, np.where(u < 0.75, KIND_S, KIND_M))
    return core, kind, addr, size


def format_mksim_trace(core, kind, addr, size, header: str = "") -> str:
    """Text of a trace in mksim format (``CORE OP ADDR SIZE`` per line)."""
    ops = "ILSM"
    lines = [f"# {ln}" for ln in header.splitlines()] if header else []
    lines.append("# CORE OP ADDR SIZE")
    lines += [f"{c} {ops[k]} {a:#x} {s}" for c, k, a, s in
              zip(core.tolist(), kind.tolist(), addr.tolist(), size.tolist())]
    return "\n".join(lines) + "\n"


def _plot_cycles(stats: dict, cfg, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # matplotlib missing or broken: the plot is optional
        return False
    cores = stats["cores"]
    x = [c["core"] for c in cores]
    stall = [c["stall_cycles"] for c in cores]
    busy = [c["cycles"] - c["stall_cycles"] for c in cores]
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.35 * len(x) + 2)), 4))
    ax.bar(x, busy, label="cycles - stall_cycles", color="#4c72b0", width=0.8)
    ax.bar(x, stall, bottom=busy, label="stall_cycles", color="#dd8452", width=0.8)
    top = max((c["cycles"] for c in cores), default=0)
    ax.set_ylim(0, top * 1.25 if top else 1)  # room for the legend above the bars
    ax.set_xlabel("core")
    ax.set_ylabel("cycles")
    ax.set_title(f"mksim demo on {cfg.name}: cycles per core")
    ax.legend(loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


class _DemoPlots:
    """The demo's two plots, drawn in a child process while the demo runs: matplotlib takes about a
    second to import and draw, which a second core takes off the demo's time.  ``add`` hands over a
    plot as soon as its data exists; ``finish`` says which were drawn (none without matplotlib, as
    in the process itself).  The child writes only the files it is given; ``close`` stops it."""

    def __init__(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in os.environ.get(
            "PYTHONPATH", "").split(os.pathsep) if p]))
        import subprocess
        self.proc = subprocess.Popen([sys.executable, "-c", "from mksim.cli import _demo_plot_child as f; f()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)

    def add(self, kind: str, path: Path, data, machine: str, iters: int = 0) -> None:
        import json
        try:
            self.proc.stdin.write(json.dumps({"kind": kind, "path": str(path), "data": data, "machine": machine,
                                              "iters": iters}, default=lambda x: x.item()) + "\n")   # numpy scalars
            self.proc.stdin.flush()
        except BrokenPipeError:     # the child has ended: no matplotlib (or it failed: finish says so)
            pass

    def finish(self) -> set[str]:
        """The paths drawn (waits for the child); MksimError if drawing failed."""
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            last = (err.strip().splitlines() or ["no message"])[-1]
            raise MksimError(f"drawing the demo's plots failed: {last}")
        return {line[3:] for line in out.splitlines() if line.startswith("ok ")}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _demo_plot_child() -> None:
    """``_DemoPlots``' child: import matplotlib at once, then draw each plot read from stdin (one JSON
    line each) and print ``ok PATH`` for each one drawn."""
    import json
    import types
    try:
        _pyplot()
    except _PlotUnavailable:
        return
    for line in sys.stdin:
        job = json.loads(line)
        cfg = types.SimpleNamespace(name=job["machine"])       # the plots name the machine only
        if job["kind"] == "shm-vs-msg":
            plot_shm_vs_msg(job["data"], cfg, job["path"], job["iters"])
            drawn = True
        else:
            drawn = _plot_cycles(job["data"], cfg, Path(job["path"]))
        if drawn:
            sys.stdout.write(f"ok {job['path']}\n")
            sys.stdout.flush()


def cmd_demo(args) -> int:
    """The main job: boot a Barrelfish-style plan (one kernel per core), run the coherence-versus-
    message microbenchmark, replay a synthetic trace; print a summary and write a report folder."""
    if args.accesses < 1 or args.accesses > 10_000_000:
        raise MksimError(f"--accesses {args.accesses}: must be between 1 and 10000000")
    cfg = _load_machine(args.machine)
    out = Path(args.out) if args.out else Path("reports") / f"demo-{cfg.name}"
    t0 = time.perf_counter()
    from mksim.progress import Progress, wanted
    bar = Progress(3, "demo (trace, shm-vs-msg, boot)", wanted(args.quiet), unit="part")
    return _demo(args, cfg, out, t0, bar, _DemoPlots())


def _demo(args, cfg, out: Path, t0: float, bar, plots: _DemoPlots) -> int:
    """``cmd_demo``'s three parts and its report (plots drawn by ``plots``)."""
    from boot import bootrun, plans
    from hwmodel.machine import Machine
    from hwmodel.trace import read_trace
    from kernels import microbench as mb
    from kernels.base import init_for
    from kernels.registry import known
    from mksim.report import report_folder, to_json
    # the plotting child stops before the report folder is removed (an error, Ctrl-C, SIGTERM)
    with report_folder(out, make_parents=args.out is None) as tmp, contextlib.closing(plots):
        # The three parts run trace first and boot last: each plot's data then exists while another part
        # runs, and the plotting child draws it meanwhile (boot has no plot), not after the last part.
        # 1. a synthetic multi-core trace, replayed
        core, kind, addr, size = make_demo_trace(cfg, args.accesses, args.seed)
        header = (f"mksim demo trace: machine {cfg.name}, {cfg.cores} cores, "
                  f"{core.size} accesses, seed {args.seed}")
        (tmp / "trace.mksim").write_text(format_mksim_trace(core, kind, addr, size, header))
        trace = read_trace(str(tmp / "trace.mksim"), "mksim")  # round trip through the parser
        m = Machine(cfg, seed=args.seed)
        t1 = time.perf_counter()
        m.run(trace.core, trace.kind, trace.addr, trace.size)
        t_run = time.perf_counter() - t1
        stats = m.stats()
        plots.add("cycles", tmp / "cycles.png", {"cores": stats["cores"]}, cfg.name)
        bar.update()
        # 2. coherence versus messages (Figure 3 of the Barrelfish paper), up to 16 cores
        t1 = time.perf_counter()
        fig3 = mb.shm_vs_msg_rows(cfg, min(cfg.cores, 16), DEMO_ITERS)
        t_fig3 = time.perf_counter() - t1
        plots.add("shm-vs-msg", tmp / "shm-vs-msg.png", fig3, cfg.name, DEMO_ITERS)
        bar.update()
        # 3. boot: one kernel per core, GRUB-style, every step as core programs
        from boot.flows import MAX_KERNELS
        nk = min(cfg.cores, MAX_KERNELS)     # one kernel per core, up to 40 kernels (a plan's limit)
        plan = plans.write_plan(str(tmp / "boot"), cfg, nk, "grub", "plan.cfg")
        t1 = time.perf_counter()
        boot = bootrun.boot_plan_file(plan, cfg, base_dir=str(tmp / "boot"), init=init_for(), personalities=known())
        t_boot = time.perf_counter() - t1
        (tmp / "boot-trace.json").write_text(to_json(boot.pop("trace")))
        boot["plan"] = "boot/plan.cfg"
        bar.update()
        bar.close()
        summ = summarize_stats(stats)
        top = max(r["cores"] for r in fig3)
        at_top = {r["series"]: r["cycles_per_update"] for r in fig3 if r["cores"] == top}
        notes = []
        if nk < cfg.cores:
            notes.append(f"note: the boot plan has {nk} kernels on cores 0..{nk - 1} of {cfg.cores} (a boot "
                         f"plan holds at most {MAX_KERNELS} kernels: two start-up pages each below 1 MiB)")
        if len(trace) != args.accesses:
            notes.append(f"note: --accesses {args.accesses} rounded up to {len(trace):,} (the same number on "
                         f"each of the {cfg.cores} cores)")
        text = (f"mksim demo: {cfg.name} ({cfg.cores} cores, {cfg.clock_ghz:g} GHz)\n\n"
                + "".join(n + "\n" for n in notes) +
                f"boot: {len(boot['kernels'])} kernels (GRUB + Multiboot2, SMP by INIT-SIPI), "
                f"all up at cycle {boot['all_up_cycle']:,} ({boot['all_up_us']:.1f} us); "
                f"trace in boot-trace.json (Perfetto)\n"
                f"shm-vs-msg at {top} cores, cycles per update: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in at_top.items()) + "\n\n"
                f"trace replay: {len(trace):,} accesses, seed {args.seed}\n\n"
                + format_machine_stats(stats, cfg, max_rows=32))
        (tmp / "summary.txt").write_text(text)
        drawn = plots.finish()
        has_png, has_fig3_png = str(tmp / "cycles.png") in drawn, str(tmp / "shm-vs-msg.png") in drawn
        files = ["report.json", "trace.mksim", "summary.txt", "boot-trace.json", "boot"]
        files += (["cycles.png"] if has_png else []) + (["shm-vs-msg.png"] if has_fig3_png else [])
        report = {
            "kind": "mksim-demo",
            "mksim_version": _version(),
            "machine": dataclasses.asdict(cfg),
            "boot": boot,
            "shm_vs_msg": {"iters": DEMO_ITERS, "rows": fig3},
            "trace": {"file": "trace.mksim", "format": "mksim", "accesses": len(trace),
                      "seed": args.seed},
            "summary": summ,
            "stats": stats,
            "files": sorted(files),
            "wall_seconds": {"boot": round(t_boot, 3), "shm_vs_msg": round(t_fig3, 3), "replay": round(t_run, 3)},
        }
        (tmp / "report.json").write_text(to_json(report))
    sys.stdout.write(text)
    _out(f"\nreport: {out}/ ({', '.join(report['files'])}) "
         f"in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


# ----------------------------------------------------------------------------- bench
class _PlotUnavailable(Exception):
    """--plot given, but matplotlib cannot be imported."""


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or _PlotUnavailable."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # missing or broken
        raise _PlotUnavailable() from None
    return plt


def _save_png(fig, plt, path: str) -> None:
    """Render ``fig`` to PNG bytes and write them atomically (temporary file, rename)."""
    import io

    from mksim.report import write_bytes
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    write_bytes(path, buf.getvalue())


def plot_shm_vs_msg(rows: list[dict], cfg, path: str, iters: int) -> None:
    """Figure 3 style: cycles per update vs cores, one line per series."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = list(dict.fromkeys(r["series"] for r in rows))
    styles = {"SHM1": "o-", "SHM2": "s-", "SHM4": "^-", "SHM8": "v-", "MSG1": "o--", "MSG8": "v--",
              "SERVER": "x:"}
    for name in series:
        pts = sorted((r["cores"], r["cycles_per_update"]) for r in rows if r["series"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(name, "o-"), label=name, markersize=4)
    ax.set_xlabel("cores")
    ax.set_ylabel("cycles per update")
    ax.set_ylim(bottom=0)
    ax.set_title(f"SHM vs MSG on {cfg.name} ({iters} iterations per core)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize="small")
    fig.tight_layout()
    _save_png(fig, plt, path)


def plot_urpc(rows: list[dict], cfg, path: str) -> None:
    """Bars of one-way latency per path (left) and of throughput (right); the paper's
    Table 2 numbers beside them where it has them."""
    plt = _pyplot()
    paper = any(r.get("paper_latency_cycles") is not None for r in rows)
    n = len(rows)
    if n <= 5:   # side by side
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * n + 3), 4))
    else:        # many paths (a mesh): one above the other
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(min(16.0, 0.8 * n + 3), 7))
    x = list(range(len(rows)))
    w = 0.4 if paper else 0.7
    dx = -w / 2 if paper else 0.0
    for ax, key, pkey, label in ((a1, "latency_cycles", "paper_latency_cycles", "one-way latency (cycles)"),
                                 (a2, "msgs_per_kcycle", "paper_msgs_per_kcycle", "throughput (msgs/kcycle)")):
        ax.bar([i + dx for i in x], [r[key] for r in rows], w, label="model", color="#4c72b0")
        if paper:
            ax.bar([i + w / 2 for i in x], [r[pkey] or 0 for r in rows], w, label="paper (Table 2)",
                   color="#dd8452")
            ax.legend(loc="lower right", fontsize="small")
        ax.set_xticks(x)
        ax.set_xticklabels([r["path"] for r in rows], rotation=20)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"URPC on {cfg.name}")
    fig.tight_layout()
    _save_png(fig, plt, path)


def _check_plot(args) -> None:
    """Before a long run: matplotlib importable, the PNG's folder writable."""
    if args.plot is None:
        return
    _pyplot()
    from mksim.report import check_writable_file
    check_writable_file(args.plot)


def cmd_bench(args) -> int:
    from kernels import microbench as mb
    from mksim import paper

    cfg = _load_machine(args.machine)
    from kernels import registry
    reg = registry.experiments()
    if args.action in reg:
        return _bench_registered(args, cfg, *reg[args.action])
    if args.action == "boot":
        return _bench_boot(args, cfg)
    if args.action == "shm-vs-msg":
        if args.max_cores is not None and not 1 <= args.max_cores <= cfg.cores:
            raise MksimError(f"--max-cores {args.max_cores}: must be between 1 and {cfg.cores} "
                             f"({cfg.name} has {cfg.cores} cores)")
        if not 1 <= args.iters <= BENCH_MAX_ITERS:
            raise MksimError(f"--iters {args.iters}: must be between 1 and {BENCH_MAX_ITERS}")
    _check_plot(args)
    try:
        if args.action == "shm-vs-msg":
            rows = [{k: r[k] for k in SHM_VS_MSG_KEYS}
                    for r in mb.shm_vs_msg_rows(cfg, args.max_cores, args.iters)]
        else:
            rows = mb.urpc_rows(cfg)
    except RuntimeError as e:   # a benchmark program that did not finish
        raise MksimError(f"bench {args.action} on {cfg.name}: {e}") from None

    if args.action == "shm-vs-msg":
        if args.plot:
            plot_shm_vs_msg(rows, cfg, args.plot, args.iters)
        if args.json:
            from mksim.report import to_json
            sys.stdout.write(to_json({"rows": rows}))
        else:
            top = max(r["cores"] for r in rows)
            _out(f"shm-vs-msg on {cfg.name} ({cfg.cores} cores), 1..{top} cores, {args.iters} "
                 f"updates per core: cycles per update\n")
            sys.stdout.write(paper.format_shm_vs_msg(rows))
            _out("\nSHMn: every core updates n shared lines itself; MSGn: cores-1 clients call a server "
                 "on core 0\nthat updates n lines it owns; SERVER: the server's cycles per update (MSG8).")
    else:
        cmp = paper.compare_urpc(rows)
        if args.plot:
            plot_urpc(cmp, cfg, args.plot)
        if args.json:
            from mksim.report import to_json
            sys.stdout.write(to_json({"rows": [{k: r[k] for k in URPC_KEYS + URPC_PAPER_KEYS} for r in cmp]}))
        else:
            _out(f"URPC on {cfg.name} ({cfg.cores} cores): one-way latency (ping-pong) and pipelined "
                 f"throughput,\ncore 0 to one core of each path kind\n")
            sys.stdout.write(paper.format_urpc(cmp, paper=paper.has_paper(cfg.name)))
    return EXIT_OK


def _bench_registered(args, cfg, pers, ex) -> int:
    """A bench a personality registered: rows, then JSON or its text table, and --plot."""
    from kernels.personality import BenchOptions
    max_cores = getattr(args, "max_cores", None)
    if max_cores is not None and not 2 <= max_cores <= cfg.cores:
        raise MksimError(f"--max-cores {max_cores}: must be between 2 and {cfg.cores} "
                         f"({cfg.name} has {cfg.cores} cores)")
    if not 1 <= args.repeat <= BENCH_MAX_REPEAT:
        raise MksimError(f"--repeat {args.repeat}: must be between 1 and {BENCH_MAX_REPEAT}")
    _check_plot(args)
    try:
        extra = {o.dest: getattr(args, f"x_{o.dest}") for o in ex.options}
        rows = ex.rows(cfg, BenchOptions(max_cores=max_cores, repeat=args.repeat, extra=extra))
    except RuntimeError as e:   # a benchmark program that did not finish
        raise MksimError(f"bench {ex.name} on {cfg.name}: {e}") from None
    rows = [{k: r[k] for k in ex.keys} for r in rows]
    if args.plot:
        if ex.plot is None:
            raise MksimError(f"bench {ex.name} has no plot")
        plt = _pyplot()
        _save_png(ex.plot(rows, cfg, plt), plt, args.plot)
    if args.json:
        from mksim.report import to_json
        sys.stdout.write(to_json({"rows": rows}))
    else:
        text = ex.table(rows, cfg)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def cmd_personalities(args) -> int:
    """One line per personality: name, boot style, benches, summary."""
    from kernels import registry
    rows = []
    for name in registry.known():
        pers = registry.get(name)
        rows.append((name, pers.boot, ", ".join(e.name for e in pers.experiments) or "-", pers.summary))
    head = ("name", "boot", "benches", "summary")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    for r in [head] + rows:
        _out(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return EXIT_OK


# ----------------------------------------------------------------------------- inspect
def _looks_like_text(data: bytes) -> bool:
    if b"\0" in data[:65536]:
        return False
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= 65536 - 4   # a character cut at the end of the sample
    return True


def _inspect_grubcfg(path: str) -> dict:
    import importlib
    try:
        grubcfg = importlib.import_module("boot.grubcfg")
    except ModuleNotFoundError as e:
        if e.name != "boot.grubcfg":   # boot.grubcfg is there but lacks something it needs
            raise
        raise MksimError("cannot inspect a grub.cfg: grub.cfg support (boot.grubcfg) is not "
                         "available in this mksim", where=path) from None
    result = grubcfg.inspect(path)
    plans = _grubcfg_plans(grubcfg, path)
    if plans and isinstance(result, dict):
        result["plans"] = plans
    return result


def _grubcfg_plans(grubcfg, path: str) -> list[dict]:
    """The multi-kernel plan of every entry with mksim_kernel lines, validated as ``mksim boot``
    validates it (cores given twice, overlapping memory partitions, ... are errors)."""
    if not (hasattr(grubcfg, "parse") and hasattr(grubcfg, "plan")):
        return []
    from kernels.registry import known
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    out = []
    for i, e in enumerate(grubcfg.parse(text, path)):
        if not any(c and c[0] in getattr(grubcfg, "EXTENSION_COMMANDS", ()) for c in e.commands):
            continue
        kernels = [{"name": k.name, "cores": k.cores, "memory": [[a, b] for a, b in k.memory],
                    "flow": k.flow, "personality": k.personality, "loader": k.loader, "image": k.image,
                    "modules": [m[0] for m in k.modules], "parent": k.parent}
                   for k in grubcfg.plan(e, known())]
        out.append({"entry": i, "title": e.title, "kernels": kernels})
    return out


def _format_plans(plans: list[dict]) -> list[str]:
    lines = []
    for p in plans:
        lines.append(f"  entry {p['entry']}: {p['title']!r}, {len(p['kernels'])} kernel(s)")
        for k in p["kernels"]:
            mem = ", ".join(f"{a >> 20}-{b >> 20} MiB" for a, b in k["memory"]) or "all memory"
            by = f" by {k['parent']}" if k["parent"] else ""
            mods = f" + {len(k['modules'])} module(s)" if k["modules"] else ""
            flow = f"{k['flow']}{by}"
            lines.append(f"    {k['name']:<12} cores {_ranges(k['cores']) or 'all':<8} {mem:<16} {flow:<24} "
                         f"{k['personality'] or '-':<10} {k['loader'] or '-':<10} {k['image'] or '-'}{mods}")
    return lines


def _format_grubcfg(path: str, result, raw: bool = False) -> str:
    """Readable text of a grub.cfg inspection: the dict's items, nested values as
    indented JSON."""
    import json
    lines = [f"{path}: grub.cfg"]
    plans = result.get("plans") if isinstance(result, dict) else None
    if plans and not raw:
        lines.append("multi-kernel plan (validated as mksim boot does; --commands shows every command):")
        lines += _format_plans(plans)
        return "\n".join(lines) + "\n"
    items = result.items() if isinstance(result, dict) else [("result", result)]
    for k, v in items:
        if isinstance(v, (dict, list)):
            body = json.dumps(v, indent=2, default=str).replace("\n", "\n  ")
            lines.append(f"  {k}: {body}")
        else:
            lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


def cmd_inspect(args) -> int:
    from boot import images
    from mksim.report import to_json

    path = args.file
    if os.path.isdir(path):
        raise MksimError("is a directory, not an image file", where=path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MksimError(f"cannot read: {e.strerror or e}", where=path) from None
    if path.endswith(".cfg"):
        result, is_image = _inspect_grubcfg(path), False
    else:
        try:
            result, is_image = images.inspect_image(data, path), True
        except images.NoImageHeader:
            if not (data and _looks_like_text(data)):
                raise
            result, is_image = _inspect_grubcfg(path), False
    if args.json:
        sys.stdout.write(to_json(result))
    elif is_image:
        sys.stdout.write(images.format_inspection(result, path))
    else:
        sys.stdout.write(_format_grubcfg(path, result, raw=args.commands))
    return EXIT_OK


# ----------------------------------------------------------------------------- main
def cmd_boot(args) -> int:
    from boot import bootrun
    from mksim.report import to_json, write_text
    cfg = _load_machine(args.machine)
    from kernels.base import init_for
    from kernels.registry import known
    res = bootrun.boot_plan_file(args.plan, cfg, entry=args.entry, smp_variant=args.smp, init=init_for(), personalities=known())
    if args.trace:
        write_text(args.trace, to_json(res["trace"]))
    out = {k: v for k, v in res.items() if k != "trace"}
    if args.json:
        sys.stdout.write(to_json(out))
        return EXIT_OK
    _out(f"boot of {out['entry']!r} from {args.plan} on {cfg.name}: {out['status']}, "
         f"all kernels up at cycle {out['all_up_cycle']} ({out['all_up_us']:.1f} us)")
    for k in out["kernels"]:
        _out(f"  {k['name']:<14} cores {_ranges(k['cores']):<10} {k['protocol']:<10} flow {k['flow']:<10} "
             f"up at {k['up_cycle']}")
    _out("")
    _out(f"{'step':<28} {'count':>5} {'cores':>5} {'first start':>12} {'last end':>12} {'max cycles':>11}")
    for r in out["steps"]:
        _out(f"{r['step']:<28} {r['count']:>5} {r['cores']:>5} {r['first_start']:>12} {r['last_end']:>12} "
             f"{r['max_cycles']:>11}")
    if args.trace:
        _out(f"\ntrace: {args.trace} (Chrome Trace Event JSON, one track per core)")
    return EXIT_OK


def _bench_boot(args, cfg) -> int:
    from boot.bench import boot_rows
    from mksim.report import to_json
    from boot.flows import MAX_KERNELS
    top = min(cfg.cores, MAX_KERNELS)
    if args.max_kernels is not None and not 1 <= args.max_kernels <= top:
        raise MksimError(f"--max-kernels {args.max_kernels}: must be between 1 and {top}")
    _check_plot(args)
    rows = boot_rows(cfg, args.flow, args.max_kernels, args.smp)
    if args.plot:
        plt = _pyplot()
        _save_png(plot_boot(rows, cfg, args.flow, plt), plt, args.plot)
    if args.json:
        sys.stdout.write(to_json({"rows": rows}))
        return EXIT_OK
    sys.stdout.write(format_boot_table(rows, cfg.name, args.flow))
    return EXIT_OK


BOOT_TABLE_WIDTH = 100


def _grouped_steps(rows: list[dict]) -> list[dict]:
    """Rows whose per-kernel steps ("k3 virtual", "start k3") are summed into one ("kN virtual")."""
    import re
    out = []
    for r in rows:
        steps: dict[str, int] = {}
        for name, v in r["steps"].items():
            g = re.sub(r"\bk\d+\b", "kN", name)
            steps[g] = steps.get(g, 0) + v
        out.append({**r, "steps": steps})
    return out


def format_boot_table(rows: list[dict], machine: str, flow: str, width: int = BOOT_TABLE_WIDTH) -> str:
    """``bench boot`` as text no wider than ``width``: one line per step (per-kernel steps are
    already grouped, e.g. "grub load"), one column per kernel count, in blocks of columns."""
    rows = _grouped_steps(rows)
    names = list(dict.fromkeys(k for r in rows for k in r["steps"]))
    label = max([len("cycles until all up"), len("us until all up")] + [len(n) for n in names])
    cells = [("cycles until all up", [str(r["all_up_cycles"]) for r in rows]),
             ("us until all up", [f"{r['all_up_us']:.1f}" for r in rows])]
    cells += [(n, [str(r["steps"].get(n, 0)) for r in rows]) for n in names]
    col = max(len(v) for _, vs in cells for v in vs) + 2
    per = max(1, (width - label) // col)
    out = [f"boot by {flow} on {machine}: cycles until every kernel is up; below it, per step,",
           "cycles summed over the cores and kernels that ran it (kN: every kernel's own step)"]
    for start in range(0, len(rows), per):
        idx = range(start, min(start + per, len(rows)))
        out.append("")
        out.append(f"{'kernels':<{label}}" + "".join(f"{rows[i]['kernels']:>{col}}" for i in idx))
        for k, (name, vs) in enumerate(cells):
            if k == 2:
                out.append("-" * (label + col * len(idx)))
            out.append(f"{name:<{label}}" + "".join(f"{vs[i]:>{col}}" for i in idx))
    return "\n".join(out) + "\n"


def plot_boot(rows: list[dict], cfg, flow: str, plt):
    """End-to-end cycles (top) and per-step sums (bottom) against kernels, apart; distinct styles
    (colour, marker and dash) for every step; the legend outside the axes."""
    rows = _grouped_steps(rows)
    names = list(dict.fromkeys(k for r in rows for k in r["steps"]))
    xs = [r["kernels"] for r in rows]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    a1.plot(xs, [r["all_up_cycles"] for r in rows], "k-o", markersize=4)
    a1.set_ylabel("cycles until all up")
    a1.set_ylim(bottom=0)
    a1.grid(True, alpha=0.3)
    a1.set_title(f"boot by {flow} on {cfg.name}")
    markers, dashes = "os^vD<>ph*", ("-", "--", ":", "-.")
    cmap = plt.get_cmap("tab20")
    for i, n in enumerate(names):
        a2.plot(xs, [r["steps"].get(n, 0) for r in rows], linestyle=dashes[i % 4], marker=markers[i % 10],
                color=cmap(i % 20), markersize=4, label=n)
    a2.set_xlabel("kernels")
    a2.set_ylabel("cycles per step (sum over cores)")
    a2.set_ylim(bottom=0)
    a2.grid(True, alpha=0.3)
    a2.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="step")
    fig.tight_layout()
    return fig


def _ranges(cores: list[int]) -> str:
    out, i = [], 0
    while i < len(cores):
        j = i
        while j + 1 < len(cores) and cores[j + 1] == cores[j] + 1:
            j += 1
        out.append(str(cores[i]) if i == j else f"{cores[i]}-{cores[j]}")
        i = j + 1
    return ",".join(out)


def cmd_sweep(args) -> int:
    """``mksim sweep SPEC`` runs a sweep; ``mksim sweep plot DIR`` draws its results."""
    from mksim import sweep
    from mksim.progress import wanted
    from mksim.report import to_json
    if args.target[0] == "plot" and not args.target[0].endswith(".toml"):
        if len(args.target) != 2:
            raise MksimError("usage: mksim sweep plot DIR --x FIELD --y METRIC [--series FIELD]")
        if not args.x or not args.y:
            raise MksimError("sweep plot needs --x FIELD and --y METRIC")
        folder = args.target[1]
        out = args.out or str(Path(folder) / f"{args.y.replace('/', '_')}-vs-{args.x.replace('/', '_')}.png")
        plt = _pyplot()
        from mksim.report import check_writable_file
        check_writable_file(out)
        _save_png(sweep.plot_results(folder, args.x, args.y, args.series, args.where, plt), plt, out)
        _out(f"plot: {out}")
        return EXIT_OK
    if len(args.target) != 1:
        raise MksimError(f"one spec file, got {len(args.target)}: {' '.join(args.target)}")
    if args.x or args.y or args.series or args.where:
        raise MksimError("--x, --y, --series and --where are for 'mksim sweep plot DIR'")
    spec = sweep.load_spec(args.target[0])
    out = Path(args.out) if args.out else Path("sweeps") / Path(args.target[0]).stem
    if args.out is None:
        out.parent.mkdir(exist_ok=True)
    res = sweep.run_sweep(spec, out, workers=args.workers, dask=args.dask,
                          progress=wanted(args.quiet, args.json))
    if args.json:
        cols, rows = sweep.read_results(str(out))
        sys.stdout.write(to_json({**res, "results": rows}))
    else:
        _out(f"sweep {spec.path}: {res['points']} points ({res['ran']} run now, {res['reused']} already "
             f"done) in {res['seconds']:.1f} s; {res['rows']} result rows")
        _out(f"results: {out}/results.csv (and results.json; one file per point in {out}/points/)")
    return EXIT_OK



def cmd_host_bench(args) -> int:
    """mksim host-bench: measure the host (mksim/host.py), print a table or JSON."""
    from mksim import host
    from mksim.report import check_writable_file, to_json, write_json
    if args.out:
        check_writable_file(args.out)
    rep = host.run_host_bench(quick=args.quick)
    if args.out:
        write_json(args.out, rep)
    _out(to_json(rep) if args.json else host.format_report(rep))
    return EXIT_OK

def cmd_calibrate(args) -> int:
    """mksim calibrate: a machine TOML of this host (mksim/host.py calibrate)."""
    import json
    from mksim import host
    from mksim.report import check_writable_file, write_text
    if args.out:
        check_writable_file(args.out)
    if args.from_json:
        try:
            rep = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as e:
            raise MksimError(f"cannot read host-bench report: {e}", where=args.from_json) from None
    else:
        rep = host.run_host_bench(quick=args.quick)
    text = host.calibrate(rep)
    if args.out:
        write_text(args.out, text)
        _out(f"wrote {args.out}; check it with `mksim machines show {args.out}`")
    else:
        _out(text)
    return EXIT_OK

def cmd_compare(args) -> int:
    """mksim compare host: model vs host (mksim/compare.py)."""
    from mksim import compare
    _check_plot(args)
    return compare.cli_compare(args, _out)


COMMANDS = {"machines": cmd_machines, "trace": cmd_trace, "demo": cmd_demo, "bench": cmd_bench,
            "inspect": cmd_inspect, "boot": cmd_boot, "personalities": cmd_personalities, "sweep": cmd_sweep,
            "host-bench": cmd_host_bench, "calibrate": cmd_calibrate, "compare": cmd_compare}


ENGINE_COMMANDS = ("trace", "demo", "bench", "boot", "compare")   # sweep says it itself, when it runs points
VALUE_FLAGS = ("--I1", "--D1", "--LL")


class _Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so a report folder being built is removed."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--D1 -32768,8,64``: argparse takes a value that starts with '-' for an option and says
    "expected one argument"; join it as ``--D1=-32768,8,64`` so that the cache-spec parser
    says what is wrong with it."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in VALUE_FLAGS and i + 1 < len(argv) and argv[i + 1][:2].startswith("-") \
                and argv[i + 1][1:2].isdigit():
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _command_word(argv: list[str]) -> str | None:
    """The command a command line runs: its first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:   # fast: no parser, so no personality (and no engine) is imported
        sys.stdout.write(f"{PROG} {_version()}\n")
        return EXIT_OK
    argv = _join_negative_values(argv)
    parser = build_parser(benches=_command_word(argv) == "bench")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    from mksim.report import unfinished_removed
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with unfinished_removed():      # an interrupt leaves no temporary file or folder behind
            if args.command in ENGINE_COMMANDS:     # first run: compile what the command needs, in parallel
                from mksim import firstrun
                from mksim.progress import wanted
                firstrun.compile_up_front(firstrun.needs(args.command, args),
                                          wanted(getattr(args, "quiet", False), getattr(args, "json", False)))
            return COMMANDS[args.command](args)
    except _Terminated:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: terminated\n")
        return 143
    except MksimError as e:
        msg = " ".join(str(e).split())  # exactly one line
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {msg}\n")
        return EXIT_ERROR
    except _PlotUnavailable:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {PLOT_NEEDS}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. `mksim machines | head -1`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
