"""numba entry point: ``njit`` with on-disk caching into a writable directory.

numba writes its cache next to the source file by default; an installed
package may sit in a read-only site-packages.  When ``NUMBA_CACHE_DIR`` is
unset we point it at a per-user cache directory that we can write.
"""
from __future__ import annotations

import os
import tempfile


def _ensure_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    if os.access(here, os.W_OK):
        return  # numba's default (__pycache__ beside the source) works
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for cand in (os.path.join(base, "mksim", "numba"), os.path.join(tempfile.gettempdir(), f"mksim-numba-{os.getuid()}")):
        try:
            os.makedirs(cand, exist_ok=True)
            if os.access(cand, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = cand
                return
        except OSError:
            continue


_ensure_cache_dir()

from numba import njit as _njit  # noqa: E402  (after the cache dir is set)


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True`` unless told otherwise."""
    kwargs.setdefault("cache", True)
    return _njit(*args, **kwargs)
