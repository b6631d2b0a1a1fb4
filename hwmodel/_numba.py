"""numba entry point: ``njit`` with on-disk caching into a writable directory.

numba writes its cache next to the source file by default; an installed
package may sit in a read-only site-packages.  And numba checks only the
file a function is defined in, so a function that inlines code from another
module would keep stale machine code after that module changes.  When
``NUMBA_CACHE_DIR`` is unset we therefore point it at a writable directory
named after a hash of every ``hwmodel`` source file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile


def _fingerprint(here: str) -> str:
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(here)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


CHOSEN_DIR = None       # the folder _ensure_cache_dir chose (None: NUMBA_CACHE_DIR was set by the user)


def _ensure_cache_dir() -> None:
    global CHOSEN_DIR
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    tag = _fingerprint(here)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for cand in (os.path.join(here, "__pycache__", "numba", tag), os.path.join(base, "mksim", "numba", tag),
                 os.path.join(tempfile.gettempdir(), f"mksim-numba-{os.getuid()}", tag)):
        try:
            os.makedirs(cand, exist_ok=True)
            if os.access(cand, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = cand
                CHOSEN_DIR = cand
                return
        except OSError:
            continue


_ensure_cache_dir()

from numba import njit as _njit  # noqa: E402  (after the cache dir is set)


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True`` unless told otherwise."""
    kwargs.setdefault("cache", True)
    return _njit(*args, **kwargs)
