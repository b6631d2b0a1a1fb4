"""Size of the simulated machine's state, per preset.

    python benchmarks/memory_size.py [--json] [--presets a,b] [--no-touch]

For every preset, ``hwmodel.state.build_state(load_machine(name))`` is built
and ``MachineState.nbytes()`` (the sum of its numpy arrays) printed, with the
largest arrays.  ``mesh-1024`` is built first, in a fresh process state, and
the process's peak resident set size (``ru_maxrss``) is read right after
building it.  ``np.zeros`` memory is committed lazily (the kernel maps
pages on first write), so that peak understates what a long simulation
ends up resident; the script therefore also writes every page of the
mesh-1024 state once and reads the peak again ("after touch").  The target
is a mesh-1024 state under 2 GiB.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys

import numpy as np

# the code of the checkout this script is in, even where another copy is installed (so that
# two trees can be compared by running each one's script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hwmodel.config import load_machine, preset_names  # noqa: E402
from hwmodel.state import build_state  # noqa: E402

TARGET = 2 << 30
BIG = "mesh-1024"


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def arrays(state) -> dict[str, int]:
    return {k: v.nbytes for k, v in vars(state).items() if isinstance(v, np.ndarray)}


def touch(state) -> None:
    """Write every page of every array once (as a simulation eventually does)."""
    for v in vars(state).values():
        if isinstance(v, np.ndarray) and v.size:
            flat = v.reshape(-1).view(np.uint8)
            flat[::4096] = flat[::4096].copy()   # numpy skips a self-assignment


def fmt(n: int) -> str:
    for unit, s in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= s:
            return f"{n / s:.2f} {unit}"
    return f"{n} B"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--presets", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--no-touch", action="store_true", help="skip writing the mesh-1024 pages")
    args = ap.parse_args(argv)
    names = preset_names()
    if args.presets:
        want = [p.strip() for p in args.presets.split(",") if p.strip()]
        unknown = [p for p in want if p not in names]
        if unknown:
            ap.error(f"unknown preset(s) {', '.join(unknown)} (known: {', '.join(names)})")
        names = want
    order = ([BIG] if BIG in names else []) + [n for n in names if n != BIG]

    rss_before = peak_rss()
    rows = {}
    big = None
    for name in order:
        cfg = load_machine(name)
        st = build_state(cfg)
        row = {"name": name, "cores": cfg.cores, "nbytes": int(st.nbytes())}
        top = sorted(arrays(st).items(), key=lambda kv: -kv[1])[:4]
        row["largest_arrays"] = {k: int(v) for k, v in top}
        if name == BIG:
            big = {"name": name, "nbytes": row["nbytes"], "peak_rss_before": rss_before,
                   "peak_rss_after_build": peak_rss(), "peak_rss_after_touch": None,
                   "target_bytes": TARGET, "under_target": row["nbytes"] < TARGET}
            if not args.no_touch:
                touch(st)
                big["peak_rss_after_touch"] = peak_rss()
        rows[name] = row
        del st
        gc.collect()

    out = {"presets": [rows[n] for n in names], BIG: big}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'preset':12s} {'cores':>5s} {'state':>12s}   largest arrays")
    for n in names:
        r = rows[n]
        print(f"{n:12s} {r['cores']:5d} {fmt(r['nbytes']):>12s}   "
              + ", ".join(f"{k} {fmt(v)}" for k, v in r["largest_arrays"].items()))
    if big:
        print(f"\n{BIG}: state {fmt(big['nbytes'])} (target < {fmt(TARGET)}: "
              f"{'ok' if big['under_target'] else 'OVER'}); peak RSS before {fmt(big['peak_rss_before'])}, "
              f"after build {fmt(big['peak_rss_after_build'])}"
              + (f", after touching every page {fmt(big['peak_rss_after_touch'])}" if big["peak_rss_after_touch"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
