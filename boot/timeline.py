"""Boot timeline: steps as (core, start, end) events, from the MARK ops of core programs.

A boot step is bracketed by two marks in the program that performs it:
``begin(p, "name")`` and ``end(p, "name")`` emit ``MARK`` ops whose ids encode
the step; ``events`` pairs them up per core.  ``chrome_trace`` writes the
events as Chrome Trace Event JSON (one track per core), which Perfetto and
chrome://tracing open.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodel import isa
from hwmodel.errors import MksimError

BASE = 0x1000            # step mark ids: BASE + 2*k (begin), BASE + 2*k + 1 (end)
_NAMES: list[str] = []


def step_id(name: str) -> int:
    """The step's number, registering the name on first use (same order, same ids, every run)."""
    if name not in _NAMES:
        _NAMES.append(name)
    return _NAMES.index(name)


def begin(p: isa.Program, name: str, value=0) -> isa.Program:
    return p.mark(BASE + 2 * step_id(name), value, comment=f"boot step begins: {name}")


def end(p: isa.Program, name: str, value=0) -> isa.Program:
    return p.mark(BASE + 2 * step_id(name) + 1, value, comment=f"boot step ends: {name}")


@dataclass(frozen=True)
class Event:
    core: int
    name: str
    start: int
    end: int
    value: int = 0

    @property
    def cycles(self) -> int:
        return self.end - self.start


def events(timeline: np.ndarray) -> list[Event]:
    """Pair the begin/end marks of ``Machine.timeline()`` rows (core, time, id, value) per core and step."""
    open_: dict[tuple[int, int], tuple[int, int]] = {}
    out = []
    for core, t, mid, val in (tuple(int(x) for x in r) for r in timeline):
        if mid < BASE or mid >= BASE + 2 * len(_NAMES):
            continue
        k, is_end = divmod(mid - BASE, 2)
        if not is_end:
            open_[(core, k)] = (t, val)
        else:
            if (core, k) not in open_:
                raise MksimError(f"boot step {_NAMES[k]!r} ends on core {core} at cycle {t} without a beginning")
            t0, v0 = open_.pop((core, k))
            out.append(Event(core, _NAMES[k], t0, t, v0))
    out.sort(key=lambda e: (e.start, e.core, e.end))
    return out


def chrome_trace(evs: list[Event], clock_ghz: float, machine: str = "") -> dict:
    """Chrome Trace Event JSON: complete events ('X') in microseconds, one thread (track) per core."""
    us = 1.0 / (clock_ghz * 1000.0)
    trace = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"mksim {machine}".strip()}}]
    for core in sorted({e.core for e in evs}):
        trace.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": core, "args": {"name": f"core {core}"}})
    for e in evs:
        trace.append({"name": e.name, "ph": "X", "pid": 0, "tid": e.core, "ts": e.start * us,
                      "dur": max(e.cycles, 0) * us, "args": {"start_cycle": e.start, "end_cycle": e.end,
                                                             "value": e.value}})
    return {"traceEvents": trace, "displayTimeUnit": "ns"}


def summary(evs: list[Event]) -> list[dict]:
    """Per step: how many times, on how many cores, total and longest cycles, first start, last end."""
    by: dict[str, list[Event]] = {}
    for e in evs:
        by.setdefault(e.name, []).append(e)
    rows = []
    for name, es in by.items():
        rows.append({"step": name, "count": len(es), "cores": len({e.core for e in es}),
                     "first_start": min(e.start for e in es), "last_end": max(e.end for e in es),
                     "max_cycles": max(e.cycles for e in es), "total_cycles": sum(e.cycles for e in es)})
    rows.sort(key=lambda r: (r["first_start"], r["step"]))
    return rows
