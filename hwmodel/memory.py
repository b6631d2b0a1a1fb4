"""The functional store: values, kept apart from timing.

Caches decide how long an access takes; this store decides what a load
returns: the bytes the last store in global (performed) order wrote there.
Byte-granular, in an open-addressing table keyed by byte address.
"""
from __future__ import annotations

import numpy as np

from hwmodel._numba import njit


@njit(_nrt=True)
def _replay(seq, kind, addr, size, cap):
    mask = cap - 1
    used = np.zeros(cap, np.uint8)
    keys = np.zeros(cap, np.int64)
    vals = np.zeros(cap, np.uint8)
    out = np.full(kind.shape[0], -1, np.int64)
    for j in range(seq.shape[0]):
        i = seq[j]
        k = kind[i]
        n = min(size[i], 8)
        if k == 2 or k == 3:          # store / modify: write the bytes of i+1
            v = i + 1
            for b in range(n):
                a = addr[i] + b
                h = (a * 0x9E3779B1) & mask
                while used[h] and keys[h] != a:
                    h = (h + 1) & mask
                used[h] = 1
                keys[h] = a
                vals[h] = (v >> (8 * b)) & 0xFF
        elif k == 1:                  # load: gather bytes
            r = 0
            for b in range(n):
                a = addr[i] + b
                h = (a * 0x9E3779B1) & mask
                while used[h] and keys[h] != a:
                    h = (h + 1) & mask
                if used[h]:
                    r |= np.int64(vals[h]) << (8 * b)
            out[i] = r
    return out


def functional_replay(seq: np.ndarray, kind: np.ndarray, addr: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Values returned by loads when the accesses are performed in order ``seq``."""
    written = int(np.minimum(size[seq], 8)[np.isin(kind[seq], (2, 3))].sum()) if seq.size else 0
    cap = 1
    while cap < 2 * written + 16:
        cap <<= 1
    return _replay(np.ascontiguousarray(seq, np.int64), kind.astype(np.int64), addr.astype(np.int64),
                   size.astype(np.int64), cap)
