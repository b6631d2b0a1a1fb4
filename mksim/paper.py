"""The model next to the Barrelfish paper (Baumann et al., The Multikernel, SOSP 2009).

* :func:`load_table2` reads the published URPC numbers (Table 2) from
  ``kernels/data/barrelfish_table2.toml``.
* :func:`compare_urpc` puts them beside the rows of
  :func:`kernels.microbench.urpc_rows` and adds the error of each row.
* :func:`figure3_points` computes chosen points of Figure 3 (cycles per update
  of SHMn / MSGn / SERVER) without running every core count.
* :func:`format_urpc` and :func:`format_shm_vs_msg` are the plain-text tables
  that ``mksim bench`` and ``benchmarks/paper_tables.py`` print.

Path names: the model names a path by what core 0 and the other core share
(``kernels.microbench.path_kinds``: "shared L2"/"shared L3", "same package",
"one hop", "two hops", "three hops"); the paper by its own wording. They are
the same where the words are equal; otherwise :data:`PATH_ALIASES` maps them,
and a model path with no counterpart (amd-8x4's "three hops") has none.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

from hwmodel.errors import MksimError

__all__ = [
    "BARRELFISH_MACHINES",
    "PATH_ALIASES",
    "SOURCE",
    "TABLE2",
    "compare_urpc",
    "figure3_points",
    "format_shm_vs_msg",
    "format_urpc",
    "has_paper",
    "load_table2",
    "paper_path",
]

#: the published Table 2 numbers
TABLE2 = Path(__file__).resolve().parent.parent / "kernels" / "data" / "barrelfish_table2.toml"
SOURCE = "Baumann et al., The Multikernel, SOSP 2009, Table 2"

#: the presets that model the paper's four machines
BARRELFISH_MACHINES = ("intel-2x4", "amd-2x2", "amd-4x4", "amd-8x4")

#: (machine, model path) -> the paper's path, where the names differ.  On intel-2x4 the paper
#: has one row for every pair of cores that shares no L2, inside a package or across the bus.
PATH_ALIASES = {
    ("intel-2x4", "same package"): "non-shared",
    ("intel-2x4", "one hop"): "non-shared",
    ("amd-2x2", "same package"): "same die",
}

_FIELDS = {"machine": str, "path": str, "latency_cycles": (int, float), "msgs_per_kcycle": (int, float),
           "source": str}
_cache: dict[str, list[dict]] = {}


def load_table2(path: str | Path | None = None) -> list[dict]:
    """The rows of the Table 2 data file: machine, path, latency_cycles, msgs_per_kcycle, source."""
    p = Path(path) if path is not None else TABLE2
    key = str(p)
    if key in _cache:
        return [dict(r) for r in _cache[key]]
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise MksimError(f"cannot read the paper's Table 2: {e.strerror or e}", where=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise MksimError(f"not valid TOML: {e}", where=str(p)) from None
    rows = data.get("row")
    if not isinstance(rows, list) or not rows:
        raise MksimError("no [[row]] tables", where=str(p))
    out, seen = [], set()
    for i, r in enumerate(rows):
        where = f"{p}: row {i + 1}"
        for k, t in _FIELDS.items():
            v = r.get(k)
            if v is None:
                raise MksimError(f"missing field {k!r}", where=where)
            if not isinstance(v, t) or isinstance(v, bool):
                raise MksimError(f"field {k!r} = {v!r} has the wrong type", where=where)
            if k in ("latency_cycles", "msgs_per_kcycle") and not (math.isfinite(v) and v > 0):
                raise MksimError(f"field {k!r} = {v!r} must be positive", where=where)
        extra = set(r) - set(_FIELDS)
        if extra:
            raise MksimError(f"unknown field(s) {', '.join(sorted(extra))}", where=where)
        if (r["machine"], r["path"]) in seen:
            raise MksimError(f"{r['machine']} {r['path']!r} given twice", where=where)
        seen.add((r["machine"], r["path"]))
        out.append({k: r[k] for k in _FIELDS})
    _cache[key] = out
    return [dict(r) for r in out]


def paper_path(machine: str, model_path: str) -> str:
    """The paper's name for the model's path ``model_path`` on ``machine``."""
    return PATH_ALIASES.get((machine, model_path), model_path)


def has_paper(machine: str, table: list[dict] | None = None) -> bool:
    """Whether the paper gives Table 2 numbers for ``machine``."""
    table = load_table2() if table is None else table
    return any(r["machine"] == machine for r in table)


def _err_pct(model: float, paper: float) -> float:
    return round(100.0 * (model - paper) / paper, 1)


def compare_urpc(rows: list[dict], table: list[dict] | None = None) -> list[dict]:
    """Copies of ``urpc_rows`` rows with the paper's numbers and the model's error added.

    Added fields: ``paper_path``, ``paper_latency_cycles``, ``paper_msgs_per_kcycle``,
    ``latency_error_pct`` and ``msgs_error_pct`` (100 * (model - paper) / paper, one decimal).
    All five are None where the paper has no counterpart of the row.
    """
    table = load_table2() if table is None else table
    by_key = {(r["machine"], r["path"]): r for r in table}
    out = []
    for row in rows:
        r = dict(row)
        pp = paper_path(r["machine"], r["path"])
        ref = by_key.get((r["machine"], pp))
        if ref is None:
            r.update(paper_path=None, paper_latency_cycles=None, paper_msgs_per_kcycle=None,
                     latency_error_pct=None, msgs_error_pct=None)
        else:
            r.update(paper_path=pp, paper_latency_cycles=ref["latency_cycles"],
                     paper_msgs_per_kcycle=ref["msgs_per_kcycle"],
                     latency_error_pct=_err_pct(r["latency_cycles"], ref["latency_cycles"]),
                     msgs_error_pct=_err_pct(r["msgs_per_kcycle"], ref["msgs_per_kcycle"]))
        out.append(r)
    return out


# ------------------------------------------------------------------------- Figure 3
def figure3_points(machine, cores: list[int], iters: int = 40,
                   series: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of ``kernels.microbench.shm_vs_msg_rows`` for the given core counts only.

    Same definitions: SHMn runs on cores 0..k-1; MSGn has k-1 clients and the server
    on core 0 (so it needs k >= 2); SERVER is the server's cycles per update with
    MSG8's clients.  Rows: {"series", "cores", "cycles_per_update"}.
    """
    from hwmodel.config import load_machine
    from kernels import microbench as mb
    cfg = load_machine(machine) if isinstance(machine, str) else machine
    series = mb.SERIES if series is None else series
    rows = []
    for k in cores:
        if not 1 <= k <= cfg.cores:
            raise MksimError(f"{k} cores: {cfg.name} has {cfg.cores}")
        msg8 = None
        for name in series:
            if name.startswith("SHM"):
                v = mb.shm_cost(cfg, k, int(name[3:]), iters)
            elif k < 2:
                continue
            elif name in ("MSG8", "SERVER"):
                msg8 = msg8 or mb.msg_cost(cfg, k - 1, 8, iters)   # one run gives both
                v = msg8[0] if name == "MSG8" else msg8[1]
            elif name.startswith("MSG"):
                v = mb.msg_cost(cfg, k - 1, int(name[3:]), iters)[0]
            else:
                raise MksimError(f"unknown Figure 3 series {name!r}")
            rows.append({"series": name, "cores": k, "cycles_per_update": round(v, 1)})
    return rows


# ------------------------------------------------------------------------- tables
def _table(head: list[str], rows: list[list[str]], left: tuple[int, ...] = ()) -> list[str]:
    """Columns padded to width; the columns in ``left`` left-aligned, the rest right-aligned."""
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join(x.ljust(w[i]) if i in left else x.rjust(w[i]) for i, x in enumerate(r)).rstrip()
    out = [line(head), "-" * len(line(head))]
    out += [line(r) for r in rows]
    return out


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _pct(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def format_urpc(rows: list[dict], paper: bool | None = None) -> str:
    """Plain-text table of ``urpc_rows`` rows; with the paper's columns (``paper``: default
    when the paper has numbers for the rows' machine).  Rows may be from several machines."""
    if not rows:
        return "(no paths: a machine with one core)\n"
    machines = list(dict.fromkeys(r["machine"] for r in rows))
    if paper is None:
        paper = any(has_paper(m) for m in machines)
    if paper and "paper_path" not in rows[0]:
        rows = compare_urpc(rows)
    multi = len(machines) > 1
    head = (["machine"] if multi else []) + ["path", "cores", "hops", "shared cache", "latency (cycles)",
                                              "msgs/kcycle"]
    if paper:
        head += ["paper path", "paper latency", "error", "paper msgs/kcycle", "error"]
    body = []
    for r in rows:
        cores = r.get("cores")
        line = ([r["machine"]] if multi else []) + [
            r["path"], f"{cores[0]}->{cores[1]}" if cores else "-", str(r["hops"]),
            "yes" if r["shared_cache"] else "no", f"{r['latency_cycles']:.1f}", f"{r['msgs_per_kcycle']:.2f}"]
        if paper:
            line += [r["paper_path"] or "-", _num(r["paper_latency_cycles"], "g"), _pct(r["latency_error_pct"]),
                     _num(r["paper_msgs_per_kcycle"], ".2f"), _pct(r["msgs_error_pct"])]
        body.append(line)
    out = _table(head, body, left=tuple(i for i, h in enumerate(head) if h in ("machine", "path", "paper path")))
    if paper:
        out.append("")
        out.append(f"paper: {SOURCE}; error = (model - paper) / paper; '-': no such path in the paper")
    return "\n".join(out) + "\n"


def format_shm_vs_msg(rows: list[dict]) -> str:
    """Plain-text table of Figure 3 rows: one line per core count, one column per series."""
    if not rows:
        return "(no rows)\n"
    series = list(dict.fromkeys(r["series"] for r in rows))
    cores = sorted({r["cores"] for r in rows})
    v = {(r["series"], r["cores"]): r["cycles_per_update"] for r in rows}
    body = [[str(k)] + [_num(v.get((s, k)), ".1f") for s in series] for k in cores]
    return "\n".join(_table(["cores"] + series, body)) + "\n"
