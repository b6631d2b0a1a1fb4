"""Run a boot plan file end to end: parse grub.cfg, plan, load, boot on the engine, summarize."""
from __future__ import annotations

import os

from boot import flows, grubcfg
from boot import timeline as tl
from hwmodel.errors import MksimError
from hwmodel.machine import Machine

MAX_OPS = 50_000_000


def pick_entry(entries: list, entry: str, path: str):
    if not entries:
        raise MksimError("no menuentry", where=path)
    if entry.isdigit():
        k = int(entry)
        if k >= len(entries):
            raise MksimError(f"menu entry {k}: the plan has {len(entries)} (0..{len(entries) - 1})", where=path)
        return entries[k]
    for e in entries:
        if entry in (e.id, e.title):
            return e
    raise MksimError(f"no menu entry with id or title {entry!r}", where=path)


def boot_plan_file(path: str, cfg, entry: str = "0", smp_variant: str = "linux", base_dir: str | None = None,
                   init=flows.default_init, personalities=None) -> dict:
    """Boot one entry of the plan at ``path`` on machine ``cfg``; returns the summary and the trace.
    ``personalities``: the names a kernel's ``--personality`` may take (None: not checked)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise MksimError(f"cannot read boot plan: {getattr(e, 'strerror', None) or e}", where=path) from None
    e = pick_entry(grubcfg.parse(text, path), entry, path)
    plans = grubcfg.plan(e, personalities)
    # relative image, module and initrd paths: the working directory, the plan's folder, its parent
    here = os.path.dirname(os.path.abspath(path))
    base = [base_dir] if base_dir else [os.getcwd(), here, os.path.dirname(here)]
    run = flows.build(cfg, plans, base, smp_variant, init)
    m = Machine(cfg)
    m.load_workload(run.workload)
    status = m.execute(MAX_OPS)
    if status != "done":
        detail = "; ".join(f"core {c} {s} {d}" for c, s, d in m.waits()) if status == "deadlock" else ""
        raise MksimError(f"boot did not finish: {status} {detail}".strip(), where=path)
    faults = m.fault_report()
    if faults:
        f0 = faults[0]
        raise MksimError(f"boot faulted: core {f0['core']} {f0['kind']} at {f0['address']:#x} "
                         f"(owner {f0['owner']})", where=path)
    from boot import kexec
    for name, (segs, want) in run.kexec.items():      # the purgatory's verdict on what it hashed
        kexec.check(m.read, segs, want)
    evs = tl.events(m.timeline())
    kernels = []
    for r in run.records:
        k = run.kernel_ids[r.name]
        done = [ev.end for ev in evs if ev.name in (f"{r.name} init", "smp boot") and ev.core == r.cores[0]]
        kernels.append({"name": r.name, "cores": r.cores, "protocol": r.protocol,
                        "flow": next(p.flow for p in plans if p.name == r.name),
                        "image": next(p.image for p in plans if p.name == r.name),
                        "entry": r.entry, "bootinfo": r.bootinfo_addr, "loaded_bytes": r.loaded_bytes,
                        "partition": [[a, b] for a, b in r.partition],
                        "up": int.from_bytes(m.read(flows.UP + 8 * k, 8), "little") == 1,
                        "up_cycle": max(done) if done else int(m.state.clock[r.cores[0]])})
    all_up = max(int(m.state.clock[r.cores[0]]) for r in run.records)
    return {"plan": path, "entry": e.title, "machine": cfg.name, "status": status, "all_up_cycle": all_up,
            "all_up_us": all_up / (cfg.clock_ghz * 1000.0), "kernels": kernels, "steps": tl.summary(evs),
            "trace": tl.chrome_trace(evs, cfg.clock_ghz, cfg.name)}
