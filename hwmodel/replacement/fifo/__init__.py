"""First in, first out: the line filled longest ago is evicted; hits change nothing."""
from hwmodel._numba import njit
from hwmodel.replacement import lru


@njit(forceinline=True, _nrt=False)
def hit(meta, base, ways, way, tick, rng):
    pass


# a fill stamps the way and the smallest stamp goes first, exactly as in LRU;
# FIFO differs only in leaving the stamp alone on a hit
fill = lru.fill
victim = lru.victim


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
