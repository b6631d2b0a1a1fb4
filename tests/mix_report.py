"""What the differential test's generated programs spend their ops on (run by hand, not collected by pytest).

    PYTHONPATH=. python tests/mix_report.py [N]

Draws N (default 300) machine + workload pairs from ``tests.harness`` exactly as
``tests/test_cpu_vs_reference.py`` does (derandomized: the same N every time), runs each on the
plain-Python reference for at most ``MAX_OPS`` ops and classifies every executed op by where its
code lies: the main programs, the IPI/NMI handlers, the fault handlers (vectors 13 and 14) or the
start-up (SIPI) code.  Prints:

* status mix (done / deadlock / limit);
* programs that deadlock within 20 ops ("instant deadlocks");
* fault loops: programs where one op of one core faults 3 or more times (the handler retries it),
  and programs where more than half of the executed ops are in fault handlers;
* the share of all executed ops in each code region, and per op kind in the main programs.
"""
from __future__ import annotations

import sys
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel import isa
from hwmodel.reference_cpu import ReferenceCpu
from hwmodel.workload import FAULT_NAMES
from tests.harness import HANDLER_BASE, HANDLER_VECTORS, cpu_machines, workloads

MAX_OPS = 400          # as in tests/test_cpu_vs_reference.py


def region(addr: int) -> str:
    """Which kind of code the op at physical ``addr`` belongs to."""
    if HANDLER_BASE <= addr < HANDLER_BASE + 0x100000:
        vi = (addr - HANDLER_BASE) >> 12
        return "fault handler" if HANDLER_VECTORS[vi] in (13, 14) else "ipi/nmi handler"
    if addr < 0x10000:
        return "sipi code"
    return "main program"


class CountingCpu(ReferenceCpu):
    """The reference, counting executed ops by code region and op name."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.by_region: Counter = Counter()
        self.by_op: Counter = Counter()

    def execute_op(self, c, row, t1):
        reg = region(self.op_addr[self.pc[c]])
        self.by_region[reg] += 1
        if reg == "main program":
            self.by_op[isa.OP_NAMES[row[0]]] += 1
        return super().execute_op(c, row, t1)


def collect(n: int) -> list[dict]:
    rows: list[dict] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data):
        cfg = data.draw(cpu_machines())
        w, _words = data.draw(workloads(cfg))
        r = CountingCpu(cfg)
        r.load_workload(w)
        status = r.execute(MAX_OPS)
        rows.append({"status": status, "ops": r.ops_executed, "regions": r.by_region, "by_op": r.by_op,
                     "faults": len(r.faults()),
                     "retries": max(Counter((f[0], f[1]) for f in r.faults()).values(), default=0), "fault_kinds": Counter(FAULT_NAMES[f[3]] for f in r.faults()),
                     "waits": r.waits() if status == "deadlock" else []})

    one()
    return rows


def report(rows: list[dict]) -> str:
    n = len(rows)
    status = Counter(r["status"] for r in rows)
    instant = sum(1 for r in rows if r["status"] == "deadlock" and r["ops"] <= 20)
    heavy = sum(1 for r in rows if r["ops"] and r["regions"]["fault handler"] > r["ops"] / 2)
    loops = sum(1 for r in rows if r["retries"] >= 3)
    regions: Counter = Counter()
    ops: Counter = Counter()
    for r in rows:
        regions.update(r["regions"])
        ops.update(r["by_op"])
    total = sum(regions.values()) or 1
    main = sum(ops.values()) or 1
    out = [f"programs: {n}, executed ops: {total} (mean {total / max(n, 1):.0f}, cap {MAX_OPS})",
           "status: " + ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(status.items())),
           f"deadlock within 20 ops: {instant / n:.1%}",
           f"fault loops (one op of one core faulting 3 or more times): {loops / n:.1%}",
           f"programs with over half their ops in fault handlers: {heavy / n:.1%}",
           f"faults per program: {sum(r['faults'] for r in rows) / n:.1f}",
           "fault kinds: " + ", ".join(f"{k} {v}" for k, v in sum((r["fault_kinds"] for r in rows), Counter()).most_common()),
           "instant deadlocks wait on: " + ", ".join(f"{k} {v}" for k, v in Counter(
               w[1] for r in rows if r["status"] == "deadlock" and r["ops"] <= 20 for w in r["waits"]).most_common()),
           "ops by region: " + ", ".join(f"{k} {v / total:.1%}" for k, v in regions.most_common()),
           "main-program ops: " + ", ".join(f"{k} {v / main:.1%}" for k, v in ops.most_common())]
    return "\n".join(out)


if __name__ == "__main__":
    print(report(collect(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
