"""Replacement policies, one folder each, chosen by name in the machine file.

The contract a policy fills in (see ``lru/__init__.py`` for the smallest one):

- ``hit(meta, base, ways, way, tick, rng)``   -- a hit on ``way`` of the set at ``base``
- ``fill(meta, base, ways, way, tick, rng)``  -- a new line was put in ``way``
- ``victim(meta, base, ways, tick, rng) -> way`` -- which valid way to evict
  (only asked when every way is valid; invalid ways are always filled first,
  lowest index first)

``meta`` is one int64 per line (a stamp, a counter...), ``tick`` a counter
that rises by one per cache access, ``rng`` a one-element uint64 array
holding the cache's own random state.  Each policy also gives a plain-Python
class ``Reference`` with the same behaviour, used by ``hwmodel.reference``.

To add a policy: make a folder with those three numba functions and a
``Reference`` class, then add it to ``POLICIES`` and to the dispatch below.
"""
from __future__ import annotations

from hwmodel._numba import njit
from hwmodel.replacement import fifo, lru, random

#: name -> policy id used in the compiled state
POLICIES = {"lru": 0, "fifo": 1, "random": 2}
MODULES = {"lru": lru, "fifo": fifo, "random": random}


@njit(forceinline=True, _nrt=False)
def on_hit(pol, meta, base, ways, way, tick, rng):
    if pol == 0:
        lru.hit(meta, base, ways, way, tick, rng)
    elif pol == 1:
        fifo.hit(meta, base, ways, way, tick, rng)
    else:
        random.hit(meta, base, ways, way, tick, rng)


@njit(forceinline=True, _nrt=False)
def on_fill(pol, meta, base, ways, way, tick, rng):
    if pol == 0:
        lru.fill(meta, base, ways, way, tick, rng)
    elif pol == 1:
        fifo.fill(meta, base, ways, way, tick, rng)
    else:
        random.fill(meta, base, ways, way, tick, rng)


@njit(forceinline=True, _nrt=False)
def victim(pol, meta, base, ways, tick, rng):
    if pol == 0:
        return lru.victim(meta, base, ways, tick, rng)
    elif pol == 1:
        return fifo.victim(meta, base, ways, tick, rng)
    return random.victim(meta, base, ways, tick, rng)
