"""Least recently used: a stamp per line, the smallest stamp is evicted."""
from hwmodel._numba import njit


@njit(forceinline=True, _nrt=False)
def hit(meta, base, ways, way, tick, rng):
    meta[base + way] = tick


@njit(forceinline=True, _nrt=False)
def fill(meta, base, ways, way, tick, rng):
    meta[base + way] = tick


@njit(forceinline=True, _nrt=False)
def victim(meta, base, ways, tick, rng):
    best = 0
    oldest = meta[base]
    for w in range(1, ways):
        mv = meta[base + w]          # selects, not branches: which way is oldest is not predictable
        lt = mv < oldest
        oldest = mv if lt else oldest
        best = w if lt else best
    return best


class Reference:
    """Recency list per set: front is most recent."""

    def __init__(self, ways: int, seed: int):
        self.order: dict[int, list[int]] = {}

    def hit(self, s: int, way: int) -> None:
        o = self.order.setdefault(s, [])
        if way in o:
            o.remove(way)
        o.insert(0, way)

    fill = hit

    def victim(self, s: int) -> int:
        return self.order[s][-1]

    def forget(self, s: int, way: int) -> None:
        o = self.order.get(s, [])
        if way in o:
            o.remove(way)
