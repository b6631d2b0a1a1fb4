"""``mksim bench boot``: cycles until every kernel is up, by step, for 1..N kernels of one flow."""
from __future__ import annotations

import re
import tempfile

from boot import bootrun, plans

_GENERIC = [(re.compile(r"^grub load k\d+$"), "grub load"), (re.compile(r"^kexec load k\d+$"), "kexec load"),
            (re.compile(r"^load k\d+$"), "load"), (re.compile(r"^second stage k\d+$"), "second stage"),
            (re.compile(r"^start k\d+$"), "start kernel"), (re.compile(r"^k\d+ init$"), "kernel init")]


def generic(step: str) -> str:
    for pat, name in _GENERIC:
        if pat.match(step):
            return name
    return step


def boot_rows(cfg, flow: str, max_kernels: int | None = None, smp_variant: str = "linux") -> list[dict]:
    """One row per kernel count: cycles until all kernels are up, and cycles spent per step (summed over
    cores and kernels)."""
    from boot.flows import MAX_KERNELS
    top = min(max_kernels or cfg.cores, cfg.cores, MAX_KERNELS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mksim-boot-") as d:
        plans.write_images(d)
        for n in range(1, top + 1):
            path = plans.write_plan(d, cfg, n, flow, f"plan-{n}.cfg")
            res = bootrun.boot_plan_file(path, cfg, smp_variant=smp_variant, base_dir=d)
            steps: dict[str, int] = {}
            for s in res["steps"]:
                g = generic(s["step"])
                steps[g] = steps.get(g, 0) + s["total_cycles"]
            rows.append({"flow": flow, "kernels": n, "all_up_cycles": res["all_up_cycle"],
                         "all_up_us": round(res["all_up_us"], 2), "steps": steps})
    return rows
