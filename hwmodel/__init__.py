"""hwmodel: the machine -- caches, coherence, interconnect, memory -- as numpy state and numba loops.

    from hwmodel import Machine, load_machine
    m = Machine(load_machine("amd-4x4"))
    latencies = m.run(core, kind, addr, size)

The names below are imported on first use, so that ``import hwmodel.errors`` (the command
line's first import) does not load numba and the engine (``mksim --version`` stays fast).
"""
from __future__ import annotations

import importlib

__all__ = ["Machine", "MachineConfig", "MksimError", "load_machine", "preset_names"]

_WHERE = {"Machine": "hwmodel.machine", "MachineConfig": "hwmodel.config", "load_machine": "hwmodel.config",
          "preset_names": "hwmodel.config", "MksimError": "hwmodel.errors"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hwmodel' has no attribute {name!r}")
