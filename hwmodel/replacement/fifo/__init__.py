"""First in, first out: the line filled longest ago is evicted; hits change nothing."""
from hwmodel._numba import njit


@njit(forceinline=True, _nrt=False)
def hit(meta, base, ways, way, tick, rng):
    pass


@njit(forceinline=True, _nrt=False)
def fill(meta, base, ways, way, tick, rng):
    meta[base + way] = tick


@njit(forceinline=True, _nrt=False)
def victim(meta, base, ways, tick, rng):
    best = 0
    for w in range(1, ways):
        if meta[base + w] < meta[base + best]:
            best = w
    return best


class Reference:
    """Queue of ways per set in fill order."""

    def __init__(self, ways: int, seed: int):
        self.queue: dict[int, list[int]] = {}

    def hit(self, s: int, way: int) -> None:
        pass

    def fill(self, s: int, way: int) -> None:
        q = self.queue.setdefault(s, [])
        if way in q:
            q.remove(way)
        q.append(way)

    def victim(self, s: int) -> int:
        return self.queue[s][0]

    def forget(self, s: int, way: int) -> None:
        q = self.queue.get(s, [])
        if way in q:
            q.remove(way)
