"""Atomic result writing: a result file or report folder is either complete or absent.

* :func:`write_bytes` / :func:`write_text` / :func:`write_json` write to a temporary
  file in the destination's directory, ``fsync`` it, then ``os.replace`` it over the
  destination.  A reader never sees a half-written file; on any error the temporary
  file is removed and an existing destination is left untouched.
* :func:`report_folder` is a context manager that yields a fresh temporary folder
  beside the destination; when the ``with`` block ends without an exception the
  folder is synced and renamed into place (an older *report* folder there is
  replaced); on an exception it is removed.

An interrupt (Ctrl-C, SIGTERM) can arrive between any two Python steps, including the step that
creates a temporary and the one that would record it.  So each temporary's name is recorded in
:data:`UNFINISHED` *before* it is created, and :func:`unfinished_removed` (the block the command
line and sweeps run in) removes whatever an interrupt left behind.

Every failure is raised as :class:`~hwmodel.errors.MksimError` naming the path.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from hwmodel.errors import MksimError

__all__ = ["to_json", "write_bytes", "write_text", "write_json", "check_writable_file",
           "report_folder", "REPORT_MARKER", "UNFINISHED", "remove_unfinished",
           "unfinished_removed", "remove_stale_files"]

#: a folder holding this file is a report folder (safe to replace)
REPORT_MARKER = "report.json"


#: temporaries (files and folders) that exist, or may, and are not yet renamed into place or removed
UNFINISHED: set[Path] = set()


def _new_temp(parent: Path, prefix: str, suffix: str, make):
    """Create a fresh temporary ``parent/prefix<random>suffix`` with ``make(path)`` (which must
    fail with FileExistsError when the name is taken) and return ``(path, make's result)``.  The
    name is in :data:`UNFINISHED` before ``make`` runs, so no interrupt can leave it unrecorded."""
    for _ in range(100):
        path = parent / _temp_name(prefix, suffix)
        UNFINISHED.add(path)
        try:
            return path, make(path)
        except FileExistsError:     # someone else's: not ours to remove
            UNFINISHED.discard(path)
        except OSError:
            UNFINISHED.discard(path)
            raise
    raise FileExistsError(f"no free temporary name in {str(parent)!r}")


_TEMP_HEX = 10      # the random part of a temporary's name: secrets.token_hex(5)


def _temp_name(prefix: str, suffix: str) -> str:
    return f"{prefix}{secrets.token_hex(_TEMP_HEX // 2)}{suffix}"


def remove_stale_files(folder: Path) -> None:
    """Remove the temporary files a killed process (SIGKILL, a power cut: nothing could clean up)
    left in ``folder`` while writing a result there (``.NAME.<random>.tmp``)."""
    for f in Path(folder).glob(".*.tmp"):
        rnd = f.name[:-len(".tmp")].rsplit(".", 1)[-1]
        if len(rnd) == _TEMP_HEX and all(ch in "0123456789abcdef" for ch in rnd) and f.is_file():
            f.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _done(path: Path) -> None:
    """``path`` is renamed into place or removed: forget it."""
    UNFINISHED.discard(path)


def remove_unfinished(keep: frozenset[Path] | set[Path] = frozenset()) -> None:
    """Remove every temporary an interrupt left behind (see the module's docstring), but those
    in ``keep`` (temporaries of an outer caller, still in use)."""
    for path in list(UNFINISHED - set(keep)):
        _remove(path)
        _done(path)


@contextlib.contextmanager
def unfinished_removed() -> Iterator[None]:
    """On an exception or interrupt inside the ``with`` block, remove the temporaries created in
    it that are left (the command line and sweeps run their work inside one)."""
    before = frozenset(UNFINISHED)
    try:
        yield
    except BaseException:
        remove_unfinished(keep=before)
        raise


def _mkdir(path: Path) -> None:
    os.mkdir(path, 0o700)


def _create_file(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)


def _default(o):
    import numpy as np      # here, not at the top: the command line imports this module early
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def to_json(obj) -> str:
    """Pretty JSON text (ends with a newline); numpy scalars and arrays are converted."""
    return json.dumps(obj, indent=2, default=_default) + "\n"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable_file(path: str | os.PathLike) -> Path:
    """Fail early (before a long run) when ``path`` cannot become a result file."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise MksimError("is a directory, not a file", where=str(p))
    if not parent.is_dir():
        raise MksimError(f"cannot write result: directory {str(parent)!r} does not exist",
                         where=str(p))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MksimError(f"cannot write result: directory {str(parent)!r} is not writable",
                         where=str(p))
    return p


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    p = check_writable_file(path)
    parent = p.parent if str(p.parent) else Path(".")
    tmp = None
    try:
        tmp, fd = _new_temp(parent, f".{p.name}.", ".tmp", _create_file)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
        _done(tmp)
        tmp = None
        _fsync_dir(parent)
    except OSError as e:
        raise MksimError(f"cannot write result: {e.strerror or e}", where=str(p)) from None
    finally:
        if tmp is not None:
            _remove(tmp)
            _done(tmp)
    return p


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_bytes(path, to_json(obj).encode("utf-8"))


def _is_report_folder(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and (p / REPORT_MARKER).is_file()


@contextlib.contextmanager
def report_folder(dest: str | os.PathLike, make_parents: bool = False) -> Iterator[Path]:
    """Build a report folder in a temporary folder beside ``dest``, then rename it there.

    ``dest``'s parent folder must exist, as for every ``--out`` (a mistyped path is an error,
    not a new tree of folders); ``make_parents`` creates it (for a command's default folder).

    An existing ``dest`` is replaced only if it is itself a report folder (holds
    ``report.json``); any other existing file or folder is an error, so a mistyped
    ``--out`` never deletes someone's data.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if dest.exists() or dest.is_symlink():
        if not _is_report_folder(dest):
            what = "a folder that is not an mksim report" if dest.is_dir() else "not a folder"
            raise MksimError(f"already exists and is {what}; choose another --out",
                             where=str(dest))
    if not make_parents and not parent.is_dir():
        raise MksimError(f"cannot create report folder: directory {str(parent)!r} does not exist",
                         where=str(dest))
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp, _ = _new_temp(parent, f".{dest.name}.", ".tmp", _mkdir)
    except OSError as e:
        raise MksimError(f"cannot create report folder: {e.strerror or e}", where=str(dest)) from None
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        os.chmod(tmp, 0o755)
        old = None
        try:
            if dest.exists():
                old, _ = _new_temp(parent, f".{dest.name}.", ".old", _mkdir)
                os.replace(dest, old / "r")  # move the previous report aside
            os.replace(tmp, dest)
            _done(tmp)
        except BaseException:           # an error or an interrupt: the previous report goes back
            if old is not None and (old / "r").exists() and not dest.exists():
                os.replace(old / "r", dest)
            raise
        finally:
            if old is not None:
                if (old / "r").exists() and not dest.exists():
                    _done(old)      # the previous report could not go back: keep it, never delete it
                else:
                    _remove(old)
                    _done(old)
        _fsync_dir(parent)
    except OSError as e:
        _remove(tmp)
        _done(tmp)
        raise MksimError(f"cannot write report folder: {e.strerror or e}", where=str(dest)) from None
    except BaseException:
        _remove(tmp)
        _done(tmp)
        raise
