"""Interconnect between packages: hop counts by topology.

A package is a socket on the Barrelfish machines and a tile on a mesh.  The
hop matrix is all-pairs shortest paths over the topology's links; latency of a
message is ``hops * hop_latency``.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from hwmodel.config import InterconnectConfig


def links(topology: str, n: int, width: int = 0) -> list[tuple[int, int]]:
    """Undirected links of a topology over ``n`` packages."""
    if n == 1:
        return []
    if topology in ("bus", "crossbar"):
        # one shared medium / a switch: every pair is one hop apart
        return [(a, b) for a in range(n) for b in range(a + 1, n)]
    if topology == "ring":
        return [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(0, 1)]
    if topology == "mesh2d":
        w = width or int(round(n ** 0.5))
        out = []
        for i in range(n):
            r, c = divmod(i, w)
            if c + 1 < w:
                out.append((i, i + 1))
            if i + w < n:
                out.append((i, i + w))
        return out
    if topology == "ht-square":
        # four packages at the corners of a square: 0-1, 1-3, 3-2, 2-0
        return [(0, 1), (1, 3), (3, 2), (2, 0)]
    if topology == "twisted-ladder":
        # two rails of n/2 packages joined by rungs; the end rungs cross over
        # (package r on rail 0 is 2r, on rail 1 is 2r+1)
        k = n // 2
        out = [(2 * r, 2 * r + 1) for r in range(1, k - 1)]  # inner rungs
        for r in range(k - 1):
            out.append((2 * r, 2 * (r + 1)))
            out.append((2 * r + 1, 2 * (r + 1) + 1))
        out.append((0, 2 * (k - 1) + 1))  # twisted ends
        out.append((1, 2 * (k - 1)))
        return out
    raise ValueError(f"unknown topology {topology!r}")


def hop_matrix(ic: InterconnectConfig, n: int) -> np.ndarray:
    """``hops[a, b]``: links on a shortest path from package a to b (0 on the diagonal)."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in links(ic.topology, n, ic.width):
        adj[a].append(b)
        adj[b].append(a)
    hops = np.full((n, n), -1, dtype=np.int64)
    for s in range(n):
        hops[s, s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            for v in adj[u]:
                if hops[s, v] < 0:
                    hops[s, v] = hops[s, u] + 1
                    q.append(v)
    if (hops < 0).any():
        raise ValueError(f"topology {ic.topology} over {n} packages is not connected")
    return hops
