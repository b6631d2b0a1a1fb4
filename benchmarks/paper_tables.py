"""The model's numbers for the Barrelfish paper's Table 2 and Figure 3, next to the paper's.

    python benchmarks/paper_tables.py [--json] [--iters N]

* **Table 2** (URPC): for each of the paper's four machines (intel-2x4, amd-2x2,
  amd-4x4, amd-8x4), ``kernels.microbench.urpc_rows`` -- one-way latency and
  pipelined throughput between core 0 and one core of every path kind -- beside
  the published numbers and the error, via ``mksim.paper.compare_urpc``.
* **Figure 3** (SHM vs MSG): cycles per update of SHM1, SHM2, SHM4, SHM8, MSG1,
  MSG8 and SERVER at 2, 4, 8 and 16 cores on amd-4x4 and at 32 cores on amd-8x4
  (``mksim.paper.figure3_points``, the definitions of
  ``kernels.microbench.shm_vs_msg_rows``).  The paper gives Figure 3 only as a
  graph, so there are no published numbers to compare with here.

``--json`` prints ``{"urpc": [row, ...], "figure3": [row, ...]}``: URPC rows are
``urpc_rows`` rows plus ``paper_path``, ``paper_latency_cycles``,
``paper_msgs_per_kcycle``, ``latency_error_pct``, ``msgs_error_pct`` (None where
the paper has no such path); Figure 3 rows are ``{"machine", "series", "cores",
"cycles_per_update"}``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# the code of the checkout this script is in, even where another copy is installed (so that
# two trees can be compared by running each one's script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels import microbench  # noqa: E402
from mksim import paper  # noqa: E402

FIGURE3_POINTS = (("amd-4x4", (2, 4, 8, 16)), ("amd-8x4", (32,)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help='print {"urpc": [...], "figure3": [...]}')
    ap.add_argument("--iters", type=int, default=40, help="Figure 3: updates per core (default 40)")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be at least 1")

    t0 = time.perf_counter()
    urpc = []
    for m in paper.BARRELFISH_MACHINES:
        urpc += paper.compare_urpc(microbench.urpc_rows(m))
    fig3 = []
    for m, cores in FIGURE3_POINTS:
        fig3 += [{"machine": m, **r} for r in paper.figure3_points(m, list(cores), args.iters)]
    took = time.perf_counter() - t0

    if args.json:
        sys.stdout.write(json.dumps({"urpc": urpc, "figure3": fig3}, indent=2) + "\n")
        return 0
    print("Table 2: URPC one-way latency and pipelined throughput, model vs paper\n")
    sys.stdout.write(paper.format_urpc(urpc, paper=True))
    for m, _ in FIGURE3_POINTS:
        print(f"\nFigure 3: cycles per update on {m} ({args.iters} updates per core)\n")
        sys.stdout.write(paper.format_shm_vs_msg([r for r in fig3 if r["machine"] == m]))
    print("\nSHMn: every core updates n shared lines itself; MSGn: cores-1 clients call a server on "
          "core 0\nthat updates n lines it owns; SERVER: the server's cycles per update (MSG8).")
    print(f"({took:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
