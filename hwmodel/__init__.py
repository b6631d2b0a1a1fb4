"""hwmodel: the machine -- caches, coherence, interconnect, memory -- as numpy state and numba loops.

    from hwmodel import Machine, load_machine
    m = Machine(load_machine("amd-4x4"))
    latencies = m.run(core, kind, addr, size)
"""
from hwmodel.config import MachineConfig, load_machine, preset_names
from hwmodel.errors import MksimError
from hwmodel.machine import Machine

__all__ = ["Machine", "MachineConfig", "MksimError", "load_machine", "preset_names"]
