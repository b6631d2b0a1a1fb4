"""``mksim sweep``: run one experiment over a grid of parameter points, on a process pool or Dask.

A spec is a TOML file (see ``examples/sweeps/``)::

    bench = "shm-vs-msg"        # exactly one of: bench = NAME (any ``mksim bench`` NAME),
                                #   boot = "PLAN.cfg" (a boot plan), trace = "FILE" (a trace)
    [fixed]                     # values every point shares
    max_cores = 4
    [grid]                      # every combination of these lists is a point
    machine = ["amd-2x2", "amd-4x4"]
    "interconnect.link_latency" = [0, 20, 40]
    [[points]]                  # optional: explicit points, each combined with the grid
    "coherence.home_occupancy" = 10

A parameter is ``machine`` (a preset name or a TOML file), a machine field by its dotted name
(``machine.clock_ghz``, ``coherence.home_occupancy``, ``interconnect.link_latency``,
``memory.latency``, ``core.atomic_latency``, ``apic.ipi_latency``, ``cache.L2.latency``), or
an option of the experiment (``max_cores``, ``repeat``, ``iters``, ``flow``, ``seed``, ...).
Relative file names are relative to the spec's folder.

Each finished point is written atomically to ``OUT/points/HASH.json`` (HASH: a hash of the
experiment and the point), so a stopped sweep started again runs only the missing points;
``OUT/sweep.json`` records what the sweep is, and a spec that would mix in incompatible results
(another experiment, other fixed values or parameter names, other model sources) is refused.
At the end ``OUT/results.csv`` holds one line per result row, the point's parameters first.
Every point is deterministic, so the results are the same on a pool, on Dask, or resumed.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import signal
import sys
import time
import tomllib
from pathlib import Path

from hwmodel.errors import MksimError

SPEC_VERSION = 1
TARGETS = ("bench", "boot", "trace")
MACHINE_TABLES = ("coherence", "interconnect", "memory", "core", "apic")
MACHINE_TOP = ("packages", "cores_per_package", "clock_ghz")
SOURCE_DIRS = ("hwmodel", "kernels", "boot")
DASK_NEEDS = "--dask needs dask.distributed (pip install 'mksim[sweep]')"

# options of the built-in benches and of boot/trace: name -> (type, default)
_BUILTIN_OPTIONS = {
    "shm-vs-msg": {"max_cores": (int, None), "iters": (int, 40)},
    "urpc": {},
    "boot": {"flow": (str, None), "max_kernels": (int, None), "smp": (str, "linux")},
}
_PLAN_OPTIONS = {"entry": (str, "0"), "smp": (str, "linux")}
_TRACE_OPTIONS = {"format": (str, None), "seed": (int, 0)}
_SMP = ("mp-spec", "linux", "ihk", "barrelfish")
_FLOWS = ("grub", "kexec", "trampoline")


# ----------------------------------------------------------------------------- the spec
@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed sweep spec: the experiment, the fixed values and the points (full parameter dicts)."""
    path: str
    kind: str                  # bench | boot | trace
    target: str                # bench name, plan file or trace file (as written)
    fixed: dict
    names: tuple[str, ...]     # parameter names, in order (fixed first, then grid/points)
    points: tuple[dict, ...]

    @property
    def base_dir(self) -> str:
        return str(Path(self.path).resolve().parent)

    def experiment(self) -> dict:
        return {"kind": self.kind, "target": self.target}


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_key(spec: Spec, point: dict) -> str:
    """The hash that names a point's result file: the experiment and the point's parameters."""
    return hashlib.sha256(_canon({"experiment": spec.experiment(), "point": point}).encode()).hexdigest()[:20]


def _option_table(kind: str, target: str) -> dict:
    """name -> (type, default) of the experiment's options (MksimError for an unknown bench)."""
    if kind == "boot":
        return dict(_PLAN_OPTIONS)
    if kind == "trace":
        return dict(_TRACE_OPTIONS)
    if target in _BUILTIN_OPTIONS:
        return dict(_BUILTIN_OPTIONS[target])
    from kernels import registry
    reg = registry.experiments()
    if target not in reg:
        known = sorted(set(reg) | set(_BUILTIN_OPTIONS))
        raise MksimError(f"bench = {target!r}: unknown bench (known: {', '.join(known)})")
    ex = reg[target][1]
    out = {"repeat": (int, 3)}
    if ex.sweeps_cores:
        out["max_cores"] = (int, None)
    for o in ex.options:
        out[o.dest] = (o.type, o.default)
    return out


def _is_machine_field(name: str) -> bool:
    head = name.split(".", 1)[0]
    return name != "machine" and "." in name and head in (("machine", "cache") + MACHINE_TABLES)


def _check_value(name: str, v, where: str) -> None:
    if isinstance(v, (dict, list)):
        raise MksimError(f"{name} = {v!r}: a point's value must be a number, string or boolean", where=where)


def load_spec(path: str) -> Spec:
    """Parse and check a sweep spec file (MksimError naming the file and the problem)."""
    p = Path(path)
    if p.is_dir():
        raise MksimError("is a directory, not a sweep spec", where=path)
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise MksimError(f"cannot read sweep spec: {e.strerror or e}", where=path) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MksimError(f"invalid TOML: {e}", where=path) from None
    unknown = set(d) - set(TARGETS) - {"fixed", "grid", "points", "description"}
    if unknown:
        raise MksimError(f"{', '.join(sorted(unknown))}: unknown key(s) (known: bench, boot, trace, fixed, "
                         "grid, points, description)", where=path)
    kinds = [k for k in TARGETS if k in d]
    if len(kinds) != 1:
        raise MksimError("give exactly one of bench = NAME, boot = PLAN.cfg, trace = FILE", where=path)
    kind = kinds[0]
    target = d[kind]
    if not isinstance(target, str) or not target:
        raise MksimError(f"{kind} = {target!r}: must be a non-empty string", where=path)
    fixed = d.get("fixed", {})
    grid = d.get("grid", {})
    listed = d.get("points", [{}])
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise MksimError("fixed and grid must be tables", where=path)
    if not isinstance(listed, list) or not listed or not all(isinstance(x, dict) for x in listed):
        raise MksimError("points must be a non-empty array of tables ([[points]])", where=path)
    for k, v in fixed.items():
        _check_value(k, v, path)
    for k, vs in grid.items():
        if not isinstance(vs, list) or not vs:
            raise MksimError(f"grid.{k} = {vs!r}: must be a non-empty list of values", where=path)
        for v in vs:
            _check_value(f"grid.{k}", v, path)
    keysets = {tuple(sorted(x)) for x in listed}
    if len(keysets) != 1:
        raise MksimError("every [[points]] table must name the same parameters", where=path)
    for x in listed:
        for k, v in x.items():
            _check_value(k, v, path)
    both = (set(fixed) & set(grid)) | (set(fixed) & set(listed[0])) | (set(grid) & set(listed[0]))
    if both:
        raise MksimError(f"{', '.join(sorted(both))}: given in more than one of fixed, grid, points", where=path)
    names = tuple(fixed) + tuple(listed[0]) + tuple(grid)
    if "machine" not in names:
        raise MksimError("no machine: give machine = PRESET (in fixed, grid or points)", where=path)
    opts = _option_table(kind, target)
    for n in names:
        if n != "machine" and not _is_machine_field(n) and n not in opts:
            raise MksimError(f"{n}: neither machine, a machine field (table.field, e.g. "
                             f"interconnect.link_latency) nor an option of {kind} {target} "
                             f"(options: {', '.join(sorted(opts)) or 'none'})", where=path)
    points = []
    for x in listed:
        for combo in itertools.product(*grid.values()):
            pt = dict(fixed)
            pt.update(x)
            pt.update(zip(grid, combo))
            points.append({n: pt[n] for n in names})
    if len({_canon(q) for q in points}) != len(points):
        raise MksimError("two points are the same (a value listed twice?)", where=path)
    return Spec(str(p), kind, target, dict(fixed), names, tuple(points))


# ----------------------------------------------------------------------------- one point
def _resolve(name: str, base_dir: str) -> str:
    """A file parameter relative to the spec's folder (a preset name stays a name)."""
    if os.path.isabs(name):
        return name
    return os.path.join(base_dir, name)


def _coerce(name: str, ftype: str, v, where: str):
    ok = {"int": isinstance(v, int) and not isinstance(v, bool),
          "float": isinstance(v, (int, float)) and not isinstance(v, bool),
          "str": isinstance(v, str), "bool": isinstance(v, bool)}.get(ftype)
    if ok is None:
        raise MksimError(f"{name}: cannot be swept (a {ftype} field)", where=where)
    if not ok:
        raise MksimError(f"{name} = {v!r}: must be {'a number' if ftype == 'float' else 'an ' + ftype if ftype == 'int' else 'a ' + ftype}", where=where)
    return float(v) if ftype == "float" else v


def _replace_field(obj, field: str, v, name: str, where: str):
    fs = {f.name: f for f in dataclasses.fields(obj)}
    if field not in fs or field in ("source", "origin", "defaults", "name"):
        known = sorted(f for f in fs if f not in ("source", "origin", "defaults", "name"))
        raise MksimError(f"{name}: unknown machine field (known: {', '.join(known)})", where=where)
    return dataclasses.replace(obj, **{field: _coerce(name, fs[field].type, v, where)})


def machine_for(point: dict, base_dir: str = ".", where: str = "<sweep>"):
    """The MachineConfig of a point: its preset or file, with every dotted machine field of the point
    replaced (``dataclasses.replace``), then validated as a machine file is."""
    from hwmodel.config import load_machine
    spec = point["machine"]
    if not isinstance(spec, str) or not spec:
        raise MksimError(f"machine = {spec!r}: must be a preset name or a TOML file", where=where)
    if spec.endswith(".toml") or "/" in spec:
        spec = _resolve(spec, base_dir)
        if os.path.isdir(spec):
            raise MksimError("is a directory, not a machine file", where=spec)
    cfg = load_machine(spec)
    changed = []
    for name, v in point.items():
        if not _is_machine_field(name):
            continue
        head, rest = name.split(".", 1)
        if head == "machine":
            if rest not in MACHINE_TOP:
                raise MksimError(f"{name}: unknown machine field (known: {', '.join(MACHINE_TOP)})", where=where)
            cfg = _replace_field(cfg, rest, v, name, where)
        elif head == "cache":
            cname, _, field = rest.partition(".")
            idx = [i for i, c in enumerate(cfg.caches) if c.name == cname]
            if not idx or not field:
                raise MksimError(f"{name}: want cache.NAME.field with NAME one of "
                                 f"{', '.join(c.name for c in cfg.caches)}", where=where)
            caches = list(cfg.caches)
            caches[idx[0]] = _replace_field(caches[idx[0]], field, v, name, where)
            cfg = dataclasses.replace(cfg, caches=tuple(caches))
        else:
            cfg = dataclasses.replace(cfg, **{head: _replace_field(getattr(cfg, head), rest, v, name, where)})
        changed.append(f"{name}={v}")
    if changed:
        cfg = dataclasses.replace(cfg, origin=f"{cfg.origin} with {', '.join(changed)}")
    return cfg.validate()


def _options(kind: str, target: str, point: dict, where: str) -> dict:
    """The experiment's options of a point: its own values over the defaults, type-checked."""
    table = _option_table(kind, target)
    out = {}
    for name, (typ, default) in table.items():
        v = point.get(name, default)
        if v is not None and name in point:
            want = getattr(typ, "__name__", "str")
            if want in ("int", "float", "str", "bool"):
                v = _coerce(name, want, v, where)
            else:
                v = typ(v)
        out[name] = v
    return out


def _flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _bench_rows(target: str, cfg, o: dict) -> list[dict]:
    from kernels import microbench as mb
    if target == "shm-vs-msg":
        if o["max_cores"] is not None and not 1 <= o["max_cores"] <= cfg.cores:
            raise MksimError(f"max_cores = {o['max_cores']}: must be between 1 and {cfg.cores}")
        return [{k: r[k] for k in ("series", "cores", "cycles_per_update")}
                for r in mb.shm_vs_msg_rows(cfg, o["max_cores"], o["iters"])]
    if target == "urpc":
        return mb.urpc_rows(cfg)
    if target == "boot":
        from boot.bench import boot_rows
        if o["flow"] not in _FLOWS:
            raise MksimError(f"flow = {o['flow']!r}: must be one of {', '.join(_FLOWS)}")
        if o["smp"] not in _SMP:
            raise MksimError(f"smp = {o['smp']!r}: must be one of {', '.join(_SMP)}")
        return boot_rows(cfg, o["flow"], o["max_kernels"], o["smp"])
    from kernels import registry
    from kernels.personality import BenchOptions
    ex = registry.experiments()[target][1]
    for opt in ex.options:
        if opt.choices and o[opt.dest] not in opt.choices:
            raise MksimError(f"{opt.dest} = {o[opt.dest]!r}: must be one of {', '.join(opt.choices)}")
    extra = {opt.dest: o[opt.dest] for opt in ex.options}
    rows = ex.rows(cfg, BenchOptions(max_cores=o.get("max_cores"), repeat=o["repeat"], extra=extra))
    return [{k: r[k] for k in ex.keys} for r in rows]


def run_point(kind: str, target: str, point: dict, base_dir: str) -> list[dict]:
    """Run one point; returns its result rows (flat dicts).  Top-level and picklable, so a
    spawned pool worker or a Dask worker can run it; deterministic for a given point.
    An error names the point."""
    where = f"sweep point {_canon(point)}"
    try:
        return _run_point(kind, target, point, base_dir, where)
    except MksimError as e:
        if e.where and e.where.startswith("sweep point"):
            raise
        raise MksimError(str(e), where=where) from None


def _run_point(kind: str, target: str, point: dict, base_dir: str, where: str) -> list[dict]:
    try:
        cfg = machine_for(point, base_dir, where)
        o = _options(kind, target, point, where)
        if kind == "bench":
            rows = _bench_rows(target, cfg, o)
        elif kind == "boot":
            from boot import bootrun
            from kernels.base import init_for
            from kernels.registry import known
            if o["smp"] not in _SMP:
                raise MksimError(f"smp = {o['smp']!r}: must be one of {', '.join(_SMP)}")
            res = bootrun.boot_plan_file(_resolve(target, base_dir), cfg, entry=o["entry"], smp_variant=o["smp"],
                                         init=init_for(), personalities=known())
            rows = [{"status": res["status"], "kernels": len(res["kernels"]),
                     "all_up_cycles": res["all_up_cycle"], "all_up_us": round(res["all_up_us"], 3)}]
        else:
            from hwmodel.machine import Machine
            from hwmodel.trace import read_trace
            from mksim.cli import _guess_format, _nonempty, summarize_stats
            path = _resolve(target, base_dir)
            trace = _nonempty(read_trace(path, o["format"] or _guess_format(path)), path)
            m = Machine(cfg, seed=o["seed"])
            m.run(trace.core, trace.kind, trace.addr, trace.size, record=False)
            s = summarize_stats(m.stats())
            rows = [{"accesses": len(trace), "total_cycles": s["total_cycles"],
                     "sum_core_cycles": s["sum_core_cycles"], **s["totals"]}]
    except RuntimeError as e:   # a benchmark program that did not finish
        raise MksimError(f"{kind} {target}: {e}", where=where) from None
    return [_flatten(r) for r in rows]


# ----------------------------------------------------------------------------- the output folder
def source_fingerprint() -> str:
    """A hash of the model's sources (hwmodel, kernels, boot, this module): results made by other
    sources are not mixed with these."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    files = [Path(__file__).resolve()]
    for d in SOURCE_DIRS:
        files += sorted((root / d).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def identity(spec: Spec) -> dict:
    """What a results folder must agree on to take more points of ``spec``."""
    return {"spec_version": SPEC_VERSION, "experiment": spec.experiment(), "fixed": spec.fixed,
            "parameters": sorted(spec.names), "sources": source_fingerprint()}


_WHAT = {"experiment": "the experiment", "fixed": "the [fixed] values", "parameters": "the parameter names",
         "sources": "the model's sources (hwmodel, kernels, boot)", "spec_version": "the spec format"}


def prepare_out(out: Path, spec: Spec) -> None:
    """Create ``out`` (its parent must exist) or check that it holds results of this same sweep."""
    from mksim.report import remove_stale_files, write_json
    ident = identity(spec)
    meta = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise MksimError("exists and is not a folder", where=str(out))
    if out.is_dir() and any(out.iterdir()):
        if not meta.is_file():
            raise MksimError("is a folder that holds no sweep (no sweep.json); choose another --out",
                             where=str(out))
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MksimError(f"cannot read sweep.json: {e}", where=str(out)) from None
        diff = [k for k in ident if _canon(old.get(k)) != _canon(ident[k])]
        if diff:
            what = "; ".join(f"{_WHAT.get(k, k)}: was {_canon(old.get(k))}, now {_canon(ident[k])}"
                             if k != "sources" else f"{_WHAT[k]} changed" for k in diff)
            raise MksimError(f"holds results of another sweep, refusing to mix them ({what}); "
                             "use another --out or remove the folder", where=str(out))
        (out / "points").mkdir(exist_ok=True)
        remove_stale_files(out / "points")      # a point half-written by a run that was killed
        return
    if not out.parent.is_dir():
        raise MksimError(f"cannot create the sweep folder: directory {str(out.parent)!r} does not exist",
                         where=str(out))
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MksimError(f"cannot create the sweep folder: {e.strerror or e}", where=str(out)) from None
    write_json(meta, ident)


def done_points(out: Path) -> dict[str, dict]:
    """The finished points in ``out``: hash -> {"point", "rows"} (a half-written file cannot exist:
    each is written atomically)."""
    res = {}
    for f in sorted((out / "points").glob("*.json")):
        try:
            res[f.stem] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MksimError(f"cannot read a finished point: {e}", where=str(f)) from None
    return res


def _csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return repr(v)
    return str(v)


def results_table(spec: Spec, done: dict[str, dict]) -> tuple[list[str], list[list]]:
    """(columns, rows) over the spec's points in spec order: parameters, then every row key."""
    params = list(spec.names)
    keys: list[str] = []
    lines = []
    for pt in spec.points:
        rec = done[point_key(spec, pt)]
        for r in rec["rows"]:
            for k in r:
                if k not in keys and k not in params:
                    keys.append(k)
            lines.append((pt, r))
    cols = params + keys
    return cols, [[pt.get(c) if c in params else r.get(c) for c in cols] for pt, r in lines]


def write_results(out: Path, spec: Spec, done: dict[str, dict]) -> tuple[list[str], list[list]]:
    """results.csv (and results.json, the same records) over the spec's points."""
    from mksim.report import write_json, write_text
    cols, rows = results_table(spec, done)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_cell(v) for v in r])
    write_text(out / "results.csv", buf.getvalue())
    write_json(out / "results.json", [dict(zip(cols, r)) for r in rows])
    return cols, rows


# ----------------------------------------------------------------------------- running
class _Stop(Exception):
    """SIGTERM: stop like Ctrl-C (finished points are kept)."""


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _run_pool(spec: Spec, todo: list[dict], workers: int, record, warm_first: bool) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            queue = list(todo)
            if warm_first and queue:   # a cold numba cache: one point compiles it, then the others load it
                pt = queue.pop(0)
                record(pt, pool.submit(run_point, spec.kind, spec.target, pt, spec.base_dir).result())
            running = {pool.submit(run_point, spec.kind, spec.target, pt, spec.base_dir): pt for pt in queue}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    record(running.pop(f), f.result())
        except BaseException:   # a failed point, Ctrl-C, SIGTERM: stop the workers now
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
            raise


def _dask_client(address: str, workers: int):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MksimError(DASK_NEEDS) from None
    if address == "local":
        import logging
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.CRITICAL)
        return Client(cluster), cluster
    try:
        return Client(address, timeout="20s"), None
    except (OSError, TimeoutError) as e:
        raise MksimError(f"--dask {address}: cannot reach the scheduler: {e}") from None


def _run_dask(spec: Spec, todo: list[dict], address: str, workers: int, record, warm_first: bool) -> None:
    client, cluster = _dask_client(address, workers)
    try:
        from dask.distributed import as_completed
        queue = list(todo)
        if warm_first and queue:
            pt = queue.pop(0)
            record(pt, client.submit(run_point, spec.kind, spec.target, pt, spec.base_dir, pure=False).result())
        futs = {client.submit(run_point, spec.kind, spec.target, pt, spec.base_dir, pure=False): i
                for i, pt in enumerate(queue)}
        for f in as_completed(list(futs)):
            record(queue[futs[f]], f.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(spec: Spec, out: Path, workers: int | None = None, dask: str | None = None,
              progress: bool = True) -> dict:
    """Run the points of ``spec`` that ``out`` lacks; write each as it finishes, then results.csv.
    Returns {"out", "points", "ran", "reused", "seconds", "columns", "rows"}.  Stopped (Ctrl-C,
    SIGTERM, an error), it keeps the finished points and leaves no temporary file behind."""
    from mksim.report import unfinished_removed
    with unfinished_removed():
        return _run_sweep(spec, out, workers, dask, progress)


def _run_sweep(spec: Spec, out: Path, workers: int | None, dask: str | None, progress: bool) -> dict:
    from mksim.progress import Progress, compile_notice
    from mksim.report import write_json
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise MksimError(f"--workers {workers}: must be >= 1")
    prepare_out(out, spec)
    done = done_points(out)
    todo = [pt for pt in spec.points if point_key(spec, pt) not in done]
    t0 = time.perf_counter()
    cold = compile_notice(progress) if todo else False
    bar = Progress(len(spec.points), f"sweep {out.name}", progress, initial=len(spec.points) - len(todo),
                   unit="pt")

    def record(pt: dict, rows: list[dict]) -> None:
        key = point_key(spec, pt)
        rec = {"point": pt, "rows": rows}
        write_json(out / "points" / f"{key}.json", rec)
        done[key] = rec
        bar.update()

    old = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        if dask:
            _run_dask(spec, todo, dask, workers, record, cold and workers > 1)
        elif workers == 1 or len(todo) <= 1:
            for pt in todo:
                record(pt, run_point(spec.kind, spec.target, pt, spec.base_dir))
        else:
            _run_pool(spec, todo, workers, record, cold)
    finally:
        bar.close()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    cols, rows = write_results(out, spec, done)
    summary = {"out": str(out), "points": len(spec.points), "ran": len(todo),
               "reused": len(spec.points) - len(todo), "seconds": round(time.perf_counter() - t0, 2),
               "columns": cols, "rows": len(rows)}
    write_json(out / "summary.json", summary)
    return summary


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- plot
def read_results(folder: str) -> tuple[list[str], list[dict]]:
    """The columns and records of ``folder/results.csv`` (numbers parsed back)."""
    path = Path(folder) / "results.csv"
    if not Path(folder).is_dir():
        raise MksimError("no such sweep folder", where=folder)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MksimError(f"cannot read results.csv (has the sweep finished?): {e.strerror or e}",
                         where=str(path)) from None
    rd = csv.DictReader(io.StringIO(text))
    recs = []
    for r in rd:
        recs.append({k: _number(v) for k, v in r.items()})
    return list(rd.fieldnames or []), recs


def _number(s: str):
    if s == "":
        return None
    for t in (int, float):
        try:
            return t(s)
        except ValueError:
            pass
    return s


def plot_results(folder: str, x: str, y: str, series: str | None, where: list[str], plt):
    """Lines of ``y`` against ``x``, one per value of ``series``; ``where`` filters rows (FIELD=VALUE).
    Two rows at the same (series, x) are an error: name another --series or a --where."""
    cols, recs = read_results(folder)
    for c in [x, y] + ([series] if series else []):
        if c not in cols:
            raise MksimError(f"{c}: no such column (columns: {', '.join(cols)})", where=folder)
    for w in where:
        field, eq, val = w.partition("=")
        if not eq or field not in cols:
            raise MksimError(f"--where {w!r}: want FIELD=VALUE with FIELD one of {', '.join(cols)}")
        recs = [r for r in recs if str(r[field]) == val or r[field] == _number(val)]
    if not recs:
        raise MksimError("no rows left to plot", where=folder)
    groups: dict = {}
    for r in recs:
        pts = groups.setdefault(r[series] if series else y, {})
        if r[x] in pts:
            others = [c for c in cols if c not in (x, y, series) and len({str(q[c]) for q in recs}) > 1]
            raise MksimError(f"two rows share {series + '=' + str(r[series]) + ', ' if series else ''}{x}={r[x]}; "
                             f"pick --series or --where among the columns that vary: {', '.join(others)}")
        if r[y] is not None:
            pts[r[x]] = r[y]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = "os^vD<>ph*x+"
    styles = ("-", "--", ":", "-.")
    for i, (name, pts) in enumerate(groups.items()):
        xs = sorted(pts)
        ax.plot(xs, [pts[v] for v in xs], linestyle=styles[(i // 10) % 4], marker=markers[i % len(markers)],
                markersize=4, label=str(name))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{Path(folder).name}: {y} vs {x}" + (f" by {series}" if series else "")
                 + (f"\n({', '.join(where)})" if where else ""), fontsize="medium")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(title=series, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
