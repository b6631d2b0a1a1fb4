"""Directory coherence protocols (MESI, MOESI) as transition tables.

The directory keeps, per line, the set of cores that hold it in their
private caches, the owner (a core in E, M or O) and the line's state:

    I  no core holds it          S  one or more cores hold it clean
    E  one core holds it clean   M  one core holds it dirty
    O  (MOESI) an owner holds it dirty and others share it

A core's own state is derived: the owner is in the directory's state, any
other holder is in S.  Writes always end in M at the writer with every other
holder invalidated, in both protocols; reads differ, which is what the table
below spells out.  ``READ`` rows are indexed by (protocol, directory state):
what the reader gets, what the old owner becomes, where the data comes from,
whether the old owner writes the line back to memory.
"""
from __future__ import annotations

import numpy as np

I, S, E, M, O = 0, 1, 2, 3, 4
STATE_NAMES = "ISEMO"
PROTOCOL_IDS = {"mesi": 0, "moesi": 1}

# data sources
FROM_MEMORY, FROM_OWNER = 0, 1   # FROM_MEMORY: a shared cache on the reader's path, else memory

#            state  reader  old owner  data         writeback
READ = {
    "mesi": [
        (I,     E,      -1,        FROM_MEMORY, False),
        (S,     S,      -1,        FROM_MEMORY, False),
        (E,     S,      S,         FROM_OWNER,  False),
        (M,     S,      S,         FROM_OWNER,  True),   # dirty data goes to memory too
    ],
    "moesi": [
        (I,     E,      -1,        FROM_MEMORY, False),
        (S,     S,      -1,        FROM_MEMORY, False),
        (E,     S,      S,         FROM_OWNER,  False),
        (M,     S,      O,         FROM_OWNER,  False),  # owner keeps the dirty line
        (O,     S,      O,         FROM_OWNER,  False),
    ],
}

#: may a core in this state complete an access in its own cache? [is_write, core state]
HIT_OK = np.array([
    #  I  S  E  M  O
    [0, 1, 1, 1, 1],   # read: any valid copy
    [0, 0, 1, 1, 0],   # write: only E (silently becomes M) or M; S and O must upgrade
], dtype=np.int8)


def read_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """READ as arrays [protocol, state]: reader state, old owner's next state, data source, writeback."""
    n = len(PROTOCOL_IDS)
    req = np.full((n, 5), -1, np.int64)
    own = np.full((n, 5), -1, np.int64)
    src = np.full((n, 5), -1, np.int64)
    wb = np.zeros((n, 5), np.int64)
    for name, rows in READ.items():
        p = PROTOCOL_IDS[name]
        for st, r, o, d, w in rows:
            req[p, st], own[p, st], src[p, st], wb[p, st] = r, o, d, int(w)
    return req, own, src, wb


READ_REQ, READ_OWNER_NEXT, READ_SOURCE, READ_WRITEBACK = read_tables()


def state_after_leave(state: int, leaver_is_owner: bool, holders_left: int) -> int:
    """Directory state after a holder drops the line (eviction)."""
    if holders_left == 0:
        return I
    if leaver_is_owner:
        return S          # an O owner left its sharers behind
    return state          # a sharer left: O stays O, S stays S
