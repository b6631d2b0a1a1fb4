"""numba entry point: ``njit`` with on-disk caching into a writable directory.

numba writes its cache next to the source file by default; an installed
package may sit in a read-only site-packages.  And numba checks only the
file a function is defined in, so a function that inlines code from another
module would keep stale machine code after that module changes.  When
``NUMBA_CACHE_DIR`` is unset we therefore point it at a writable directory
named after a hash of every ``hwmodel`` source file.

Compile time (``_optimise_call_trees_once``): numba compiles every ``@njit``
function that compiled code calls as a library of its own -- optimised at
-O3 and turned into machine code -- and links that library's IR into the
caller, which is optimised and turned into machine code again, and so on up
to the function Python calls.  Only the entry point's copy ever runs.  With
the engine's call tree (``cpu.run`` -> ``step`` -> ``accept_ipis`` ->
``log_fault`` -> ``enter_handler`` -> ``maccess`` -> ``engine.access``)
the same code went through LLVM's module optimiser a dozen times.  Libraries
compiled for a caller now skip the module-level optimisation (their
functions still get numba's per-function passes); the entry point optimises
the whole linked tree once, at -O3, as before.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading


def _fingerprint(here: str) -> str:
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(here)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


CHOSEN_DIR = None       # the folder _ensure_cache_dir chose (None: NUMBA_CACHE_DIR was set by the user)
# MKSIM_NUMBA_NOINLINE=1: every function stays a function of its own (no forceinline), so that a
# sampling profiler can say which one the time is spent in (benchmarks/engine_profile.py); slower
# to run and to compile, and compiled into a cache folder of its own
NOINLINE = os.environ.get("MKSIM_NUMBA_NOINLINE") == "1"


def _ensure_cache_dir() -> None:
    global CHOSEN_DIR
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    tag = _fingerprint(here) + ("-noinline" if NOINLINE else "")
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


def _optimise_call_trees_once() -> None:
    """Skip numba's module-level optimisation of a library compiled inside another compile (a callee:
    its IR is linked into the caller, which optimises it with everything else), keep it for the
    function Python calls.  The same functions go through the same -O3 pipeline once, after linking,
    instead of once per library that links them; the results are unchanged, and a callee called
    from Python as well runs code optimised per function only.  MKSIM_NUMBA_STOCK=1 turns this off
    (numba's own behaviour, for comparison); numba without these internals is left as it is."""
    if os.environ.get("MKSIM_NUMBA_STOCK") == "1":
        return
    try:
        from numba.core import codegen, event
        library = codegen.CPUCodeLibrary
        optimise = library._optimize_final_module
    except (ImportError, AttributeError):        # another numba: its own behaviour (slower to compile)
        return
    if getattr(optimise, "mksim_once", False):
        return
    nesting = threading.local()                 # numba compiles one function at a time per thread

    class _Nesting(event.Listener):
        def on_start(self, ev):
            nesting.depth = getattr(nesting, "depth", 0) + 1

        def on_end(self, ev):
            nesting.depth -= 1

    def _optimize_final_module(self):
        if getattr(nesting, "depth", 0) <= 1:    # the function Python calls (or a library built outside a compile)
            optimise(self)

    _optimize_final_module.mksim_once = True
    event.register("numba:compile", _Nesting())
    library._optimize_final_module = _optimize_final_module


_optimise_call_trees_once()


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True`` unless told otherwise."""
    kwargs.setdefault("cache", True)
    if NOINLINE:
        kwargs.pop("forceinline", None)
    return _njit(*args, **kwargs)
