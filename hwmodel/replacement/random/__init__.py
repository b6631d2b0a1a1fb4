"""Random: a 64-bit LCG per cache instance (seeded from the run's seed) picks the victim."""
import numpy as np

from hwmodel._numba import njit

MUL = 6364136223846793005
INC = 1442695040888963407


@njit(forceinline=True, _nrt=False)
def hit(meta, base, ways, way, tick, rng):
    pass


@njit(forceinline=True, _nrt=False)
def fill(meta, base, ways, way, tick, rng):
    pass


@njit(forceinline=True, _nrt=False)
def victim(meta, base, ways, tick, rng):
    rng[0] = rng[0] * np.uint64(MUL) + np.uint64(INC)
    return np.int64((rng[0] >> np.uint64(33)) % np.uint64(ways))


class Reference:
    def __init__(self, ways: int, seed: int):
        self.ways = ways
        self.state = seed % 2**64

    def hit(self, s: int, way: int) -> None:
        pass

    fill = hit

    def victim(self, s: int) -> int:
        self.state = (self.state * MUL + INC) % 2**64
        return (self.state >> 33) % self.ways

    def forget(self, s: int, way: int) -> None:
        pass
