"""Progress on stderr for long commands, and the one-time engine-compile notice.

``Progress`` draws a tqdm bar when tqdm is installed (the ``sweep`` extra) and a plain
``\\r``-rewritten counter line otherwise; a disabled one draws nothing.  Commands decide
whether to show it with :func:`wanted`: only when stderr is a terminal, never with ``--quiet``,
never with ``--json`` when stdout is not a terminal (a pipe or a file gets only the result).
"""
from __future__ import annotations

import glob
import os
import sys

COMPILE_NOTICE = ("mksim: compiling the simulation engine, first run only "
                  "(one to a few minutes; later runs use the cache)")


def wanted(quiet: bool = False, json_out: bool = False) -> bool:
    """Whether a command should draw progress on stderr."""
    if quiet or not sys.stderr.isatty():   # a log file or a test's captured stderr: no bar
        return False
    if json_out and not sys.stdout.isatty():
        return False
    return True


def engine_cache_dir() -> str:
    """The numba cache folder the engine uses (sets NUMBA_CACHE_DIR as the engine would)."""
    from hwmodel import _numba  # noqa: F401  (sets NUMBA_CACHE_DIR when unset)
    return os.environ.get("NUMBA_CACHE_DIR", "")


def engine_compiled(cache_dir: str | None = None) -> bool:
    """True when the numba cache (``cache_dir``, default the engine's) holds compiled functions."""
    d = engine_cache_dir() if cache_dir is None else cache_dir
    return bool(d) and bool(glob.glob(os.path.join(d, "**", "*.nbi"), recursive=True))


def compile_notice(enabled: bool = True, cache_dir: str | None = None) -> bool:
    """Say once on stderr that the engine is about to compile (when its cache is empty).
    Returns True when the engine was not compiled yet."""
    cold = not engine_compiled(cache_dir)
    if cold and enabled:
        sys.stderr.write(COMPILE_NOTICE + "\n")
        sys.stderr.flush()
    return cold


class Progress:
    """A progress bar (tqdm) or counter line on stderr; ``enabled=False`` draws nothing."""

    def __init__(self, total: int, desc: str, enabled: bool = True, initial: int = 0, unit: str = "it"):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, initial
        self._bar = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._line()
            return
        self._bar = tqdm(total=total, desc=desc, initial=initial, file=sys.stderr, unit=unit,
                         dynamic_ncols=True, leave=True)

    def _line(self) -> None:
        sys.stderr.write(f"\r{self.desc}: {self.n}/{self.total}")
        sys.stderr.flush()

    def update(self, k: int = 1) -> None:
        """``k`` more items done."""
        self.n += k
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(k)
        else:
            self._line()

    def close(self) -> None:
        """End the bar (a newline after the counter line)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.enabled = False
