"""Where the compiled engine spends its time: a per-function profile from Linux ``perf``.

    python benchmarks/engine_profile.py [--workload engine_speed|trace:CASE] [--freq HZ] [--top N]

numba inlines the engine's helpers into a few big entry points, so a sampling profiler sees one
function.  This script builds the engine with ``MKSIM_NUMBA_NOINLINE=1`` (every ``@njit`` function
stays a function of its own; compiled once into a cache folder of its own, a few minutes), runs a
workload under ``perf record -e cpu-clock``, and attributes each sample that falls in compiled code
to its function, from the symbol tables of the compiled objects as they were loaded.  Calls that
are inlined in the real build cost extra here, so small helpers come out heavier than they are;
the order of the big items is what to read.

Workloads: ``engine_speed`` (``benchmarks/engine_speed.py``, the program engine) or
``trace:CASE`` (one case of ``benchmarks/trace_speed.py``, trace replay).  Needs ``perf`` and
``nm`` on the PATH; the percentages are of the samples in compiled code.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _child(workload: str, out: str) -> None:
    """Run ``workload`` with the engine loaded from numba's cache; keep each loaded object file and
    the address of one of its symbols (``out``/libs.json)."""
    sys.path.insert(0, ROOT)
    import runpy

    import hwmodel._numba  # noqa: F401  (cache folder, before numba)
    from numba.core import codegen
    loaded = []
    unserialize = codegen.JITCodeLibrary._unserialize.__func__

    def _keep(cls, cg, state):
        lib = unserialize(cls, cg, state)
        if state[1] == "object":
            loaded.append((lib, state[2][0]))
        return lib
    codegen.JITCodeLibrary._unserialize = classmethod(_keep)
    if workload == "engine_speed":
        sys.argv = ["engine_speed.py", "--repeat", "8"]
        script = os.path.join(HERE, "engine_speed.py")
    else:
        sys.argv = ["trace_speed.py", "--cases", workload.split(":", 1)[1], "--repeat", "5"]
        script = os.path.join(HERE, "trace_speed.py")
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    libs = []
    for k, (lib, obj) in enumerate(loaded):
        wrappers = [f.name for f in lib._shared_module.functions
                    if not f.is_declaration and f.name.startswith("_ZN7cpython")]
        if not wrappers:
            continue
        path = os.path.join(out, f"lib{k}.o")
        with open(path, "wb") as f:
            f.write(obj)
        libs.append((path, wrappers[0], lib._codegen._engine.get_function_address(wrappers[0])))
    with open(os.path.join(out, "libs.json"), "w") as f:
        json.dump(libs, f)


def _short(sym: str) -> str:
    """``module.function`` of a numba-mangled name (``_ZN[7cpython]7hwmodel3cpu3run...``)."""
    m = re.match(r".*?7hwmodel(\d+)", sym)
    if not m:
        return sym[:60]
    rest = sym[m.end():]
    n = int(m.group(1))
    mod, rest = rest[:n], rest[n:]
    m2 = re.match(r"(\d+)", rest)
    if not m2:
        return mod
    n2 = int(m2.group(1))
    return mod + "." + rest[len(m2.group(1)):len(m2.group(1)) + n2]


def _functions(libs) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function in the loaded objects, by address."""
    out = []
    for path, anchor, addr in libs:
        syms = []
        nm = subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True, text=True, check=True)
        for line in nm.stdout.splitlines():
            p = line.split()
            if len(p) == 4 and p[2] in "TtWw":
                syms.append((int(p[0], 16), int(p[1], 16), p[3]))
        offset = {name: v for v, _, name in syms}
        if anchor not in offset:
            continue
        base = addr - offset[anchor]
        out += [(base + v, base + v + size, _short(name)) for v, size, name in syms]
    return sorted(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="engine_speed", help="engine_speed or trace:CASE")
    ap.add_argument("--freq", type=int, default=4000, help="samples per second (perf -F)")
    ap.add_argument("--top", type=int, default=30, help="functions to list")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.workload, args.child)
        return 0
    if args.workload != "engine_speed" and not args.workload.startswith("trace:"):
        sys.exit(f"engine_profile.py: --workload {args.workload!r}: expected engine_speed or trace:CASE")
    if args.workload.startswith("trace:"):
        sys.path.insert(0, ROOT)
        sys.path.insert(0, HERE)
        from trace_speed import CASES
        if args.workload[6:] not in CASES:
            sys.exit(f"engine_profile.py: --workload {args.workload!r}: unknown case (known: {', '.join(CASES)})")
    for tool in ("perf", "nm"):
        if shutil.which(tool) is None:
            sys.exit(f"engine_profile.py: needs {tool!r} on the PATH")
    env = dict(os.environ, MKSIM_NUMBA_NOINLINE="1")
    env.pop("NUMBA_CACHE_DIR", None)            # hwmodel._numba picks the no-inline build's own folder
    me = [sys.executable, os.path.abspath(__file__), "--workload", args.workload]
    with tempfile.TemporaryDirectory(prefix="mksim-profile-") as out:
        sys.stderr.write("engine_profile.py: compiling the no-inline engine (first time: minutes), then profiling\n")
        data = os.path.join(out, "perf.data")
        for what, cmd in (("compiling the workload", me + ["--child", out]),
                          ("perf record", ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq), "-o",
                                           data, "--"] + me + ["--child", out])):
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                sys.exit(f"engine_profile.py: {what} failed (its messages are above)")
        with open(os.path.join(out, "libs.json")) as f:
            funcs = _functions(json.load(f))
        ips = subprocess.run(["perf", "script", "-i", data, "-F", "ip"], capture_output=True, text=True,
                             check=True).stdout.split()
    starts = [f[0] for f in funcs]
    count = collections.Counter()
    for ip in ips:
        a = int(ip, 16)
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a < funcs[i][1]:
            count[funcs[i][2]] += 1
    inside = sum(count.values())
    print(f"{args.workload}: {len(ips)} samples, {inside} in compiled code (no-inline build)")
    for name, n in count.most_common(args.top):
        print(f"{100 * n / max(inside, 1):6.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
