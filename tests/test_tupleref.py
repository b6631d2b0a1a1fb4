"""hwmodel.tupleref: a tuple passed down by reference reads and writes the same arrays as the tuple."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel._numba import njit
from hwmodel.tupleref import ref


@njit(_nrt=False)
def _callee(r, i, v):
    r[0][i] += v            # a write through the reference lands in the caller's array
    r[2][i, 1] = r[1][i] * 2
    return r[-1][0]


@njit(_nrt=False)
def _caller(tup, i, v):
    r = ref(tup)
    rr = ref(r)             # a reference to a reference is the same reference
    return _callee(rr, i, v) + r[1][i]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 7), st.integers(-10**6, 10**6), st.lists(st.integers(-10**6, 10**6), min_size=8, max_size=8))
def test_reads_and_writes_go_to_the_tuples_arrays(i, v, b):
    a = np.zeros(8, np.int64)
    bb = np.array(b, np.int64)
    c = np.zeros((8, 2), np.int64)
    last = np.array([7], np.int64)
    got = _caller((a, bb, c, last), i, v)
    assert got == 7 + bb[i]
    assert a[i] == v and a.sum() == v
    assert c[i, 1] == 2 * bb[i] and c.sum() == 2 * bb[i]
