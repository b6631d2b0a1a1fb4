"""hwmodel: the machine -- caches, coherence, interconnect, memory -- as numpy state and numba loops."""
from hwmodel.errors import MksimError

__all__ = ["MksimError"]
