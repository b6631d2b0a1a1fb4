"""Memory-access traces: reading valgrind *lackey* logs and mksim's own multi-core format.

A :class:`Trace` is a struct of arrays, one entry per memory access, in program order.

Formats
=======

``lackey``
    What ``valgrind --tool=lackey --trace-mem=yes --log-file=FILE PROG`` writes::

        I  0400d7d4,8
         L 0421e9b0,8
         S 7ff0001f8,8
         M 0421e9b0,4

    One access per line: an op letter (``I`` instruction fetch, ``L`` load, ``S`` store,
    ``M`` modify = read-modify-write of the same bytes), blanks, the address in hex
    (a ``0x`` prefix is tolerated), a comma and the size in decimal.  Leading and trailing
    blanks (and a trailing ``\\r``) are ignored.  Lines starting with ``==`` or ``--``
    (valgrind's own messages, e.g. ``==123== Command: ./a.out`` or ``--123-- warning: ...``)
    and blank lines are skipped.  Anything else is an error naming the line.  Every access
    gets core 0.

``mksim``
    Our own multi-core format.  One access per line, four whitespace-separated fields::

        CORE OP ADDR SIZE
        3 L 0x7f001040 8      # core 3 loads 8 bytes at 0x7f001040

    * ``CORE``: decimal, ``0 <= CORE <= 2**31 - 1``;
    * ``OP``: one of ``I L S M`` (same meaning as in lackey);
    * ``ADDR``: hexadecimal with an optional ``0x``/``0X`` prefix, at most 64 bits
      (at most 16 significant digits);
    * ``SIZE``: decimal bytes, ``1 <= SIZE <= 4096``.

    ``#`` starts a comment that runs to the end of the line; blank and comment-only lines
    are skipped; blanks are spaces, tabs and ``\\r`` (so CRLF files work).  Accesses are in
    global program order (the order in which a simulator should present them).

Both formats: sizes must be ``1..4096`` and addresses fit in 64 bits; an address
``>= 2**63`` is stored with its uint64 bit pattern in the int64 ``addr`` array (it reads
back negative).  Files may be plain, gzip or xz; compression is recognised by the magic
bytes (a ``.gz``/``.xz`` file whose content is not of that kind is an error).

Every bad input raises :class:`~hwmodel.errors.MksimError` whose ``where`` is
``FILE:LINE`` and whose message names the offending value and quotes the line.

Parsing is a numba loop over the raw bytes (two passes: count newlines, then parse), so a
10**7-line trace parses in a couple of seconds.
"""
from __future__ import annotations

import gzip
import lzma
import os
import zlib
from dataclasses import dataclass

import numpy as np

try:  # the project's njit sets up a writable cache dir when NUMBA_CACHE_DIR is unset
    from hwmodel._numba import njit
except ImportError:  # pragma: no cover - fallback until/unless that module exists
    from numba import njit

from hwmodel.errors import MksimError

__all__ = [
    "KIND_I", "KIND_L", "KIND_S", "KIND_M", "KIND_NAMES", "FORMATS", "MAX_SIZE",
    "Trace", "read_trace", "parse_trace_bytes", "decompress",
]

KIND_I = 0  #: instruction fetch
KIND_L = 1  #: data load
KIND_S = 2  #: data store
KIND_M = 3  #: data modify (read-modify-write of the same bytes)
KIND_NAMES = "ILSM"
FORMATS = ("lackey", "mksim")
MAX_SIZE = 4096
MAX_CORE = 2**31 - 1


@dataclass
class Trace:
    """A memory-access trace as parallel arrays (index = position in program order)."""

    core: np.ndarray  # int32, core id (0 for lackey)
    kind: np.ndarray  # int8, KIND_I / KIND_L / KIND_S / KIND_M
    addr: np.ndarray  # int64, uint64 bit pattern of the address
    size: np.ndarray  # int32, bytes, >= 1
    source: str = "<trace>"  # file name, for messages

    def __len__(self) -> int:
        return int(self.kind.shape[0])


# --------------------------------------------------------------------------- error codes
E_OK = 0
E_LINE = 1          # lackey: the line is not an access line
E_OP = 2            # bad op letter / token
E_ADDR = 3          # bad hex address
E_ADDR_RANGE = 4    # address wider than 64 bits
E_SIZE = 5          # bad decimal size
E_SIZE_RANGE = 6    # size outside 1..MAX_SIZE
E_CORE = 7          # bad decimal core
E_CORE_RANGE = 8    # core too large
E_MISSING = 9       # line ends before all fields were read
E_TRAILING = 10     # text after the last field
E_COMMA = 11        # lackey: no ',' between address and size

_MESSAGES = {
    E_LINE: "not a lackey trace line (expected 'I  ADDR,SIZE' or ' L|S|M ADDR,SIZE'): {tok}",
    E_OP: "bad op {tok} (expected one of I L S M)",
    E_ADDR: "bad address {tok} (expected hexadecimal)",
    E_ADDR_RANGE: "address {tok} does not fit in 64 bits",
    E_SIZE: "bad size {tok} (expected a decimal number of bytes)",
    E_SIZE_RANGE: "size {tok} out of range 1.." + str(MAX_SIZE),
    E_CORE: "bad core {tok} (expected a decimal core id >= 0)",
    E_CORE_RANGE: "core {tok} out of range 0.." + str(MAX_CORE),
    E_MISSING: "missing field(s): expected 'CORE OP ADDR SIZE'",
    E_TRAILING: "unexpected text after the size: {tok}",
    E_COMMA: "expected ',' between address and size, found {tok}",
}


# --------------------------------------------------------------------------- numba kernels
@njit(cache=True, nogil=True)
def _count_lines(buf):
    n = 0
    for i in range(buf.shape[0]):
        if buf[i] == 10:
            n += 1
    return n + 1


@njit(cache=True, inline="always")
def _is_blank(c):
    return c == 32 or c == 9 or c == 13


@njit(cache=True, inline="always")
def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, inline="always")
def _op_kind(c):
    if c == 73:  # I
        return 0
    if c == 76:  # L
        return 1
    if c == 83:  # S
        return 2
    if c == 77:  # M
        return 3
    return -1


@njit(cache=True, nogil=True)
def _parse_lackey(buf, kind, addr, size):
    """Parse lackey lines.  Returns (n, code, line_no, line_start, tok_start)."""
    n = buf.shape[0]
    i = 0
    line = 0
    out = 0
    while i < n:
        line += 1
        ls = i
        # valgrind's own messages: '==PID== ...' and '--PID-- ...'
        if i + 1 < n and ((buf[i] == 61 and buf[i + 1] == 61) or (buf[i] == 45 and buf[i + 1] == 45)):
            while i < n and buf[i] != 10:
                i += 1
            i += 1
            continue
        j = i
        while j < n and _is_blank(buf[j]):
            j += 1
        if j >= n or buf[j] == 10:  # blank line
            i = j + 1
            continue
        k = _op_kind(buf[j])
        if k < 0 or j + 1 >= n or not (buf[j + 1] == 32 or buf[j + 1] == 9):
            return out, E_LINE, line, ls, j
        j += 1
        while j < n and (buf[j] == 32 or buf[j] == 9):
            j += 1
        # address
        ts = j
        if j + 1 < n and buf[j] == 48 and (buf[j + 1] == 120 or buf[j + 1] == 88):
            j += 2
        a = np.int64(0)
        nd = 0
        sig = 0
        while j < n:
            h = _hexval(buf[j])
            if h < 0:
                break
            a = (a << 4) | h
            nd += 1
            if sig > 0 or h != 0:
                sig += 1
            j += 1
        if nd == 0 or (j < n and buf[j] != 44 and not _is_blank(buf[j]) and buf[j] != 10):
            return out, E_ADDR, line, ls, ts
        if sig > 16:
            return out, E_ADDR_RANGE, line, ls, ts
        while j < n and (buf[j] == 32 or buf[j] == 9):
            j += 1
        if j >= n or buf[j] != 44:
            return out, E_COMMA, line, ls, j
        j += 1
        # size
        ts = j
        s = 0
        nd = 0
        while j < n and 48 <= buf[j] <= 57:
            if s <= 100000:
                s = s * 10 + (buf[j] - 48)
            nd += 1
            j += 1
        if nd == 0 or (j < n and not _is_blank(buf[j]) and buf[j] != 10):
            return out, E_SIZE, line, ls, ts
        if s < 1 or s > 4096:
            return out, E_SIZE_RANGE, line, ls, ts
        while j < n and _is_blank(buf[j]):
            j += 1
        if j < n and buf[j] != 10:
            return out, E_TRAILING, line, ls, j
        kind[out] = k
        addr[out] = a
        size[out] = s
        out += 1
        i = j + 1
    return out, E_OK, line, 0, 0


@njit(cache=True, inline="always")
def _is_end(buf, j, n):
    """True when position j ends a token (blank, comment, newline or end of data)."""
    if j >= n:
        return True
    c = buf[j]
    return c == 32 or c == 9 or c == 13 or c == 10 or c == 35


@njit(cache=True, nogil=True)
def _parse_mksim(buf, core, kind, addr, size):
    """Parse 'CORE OP ADDR SIZE' lines.  Returns (n, code, line_no, line_start, tok_start)."""
    n = buf.shape[0]
    i = 0
    line = 0
    out = 0
    while i < n:
        line += 1
        ls = i
        j = i
        while j < n and _is_blank(buf[j]):
            j += 1
        if j >= n or buf[j] == 10 or buf[j] == 35:  # blank or comment-only line
            while j < n and buf[j] != 10:
                j += 1
            i = j + 1
            continue
        # core
        ts = j
        c = 0
        nd = 0
        while j < n and 48 <= buf[j] <= 57:
            if c <= MAX_CORE:
                c = c * 10 + (buf[j] - 48)
            nd += 1
            j += 1
        if nd == 0 or not _is_end(buf, j, n):
            return out, E_CORE, line, ls, ts
        if c > MAX_CORE:
            return out, E_CORE_RANGE, line, ls, ts
        while j < n and _is_blank(buf[j]):
            j += 1
        if _is_end(buf, j, n):
            return out, E_MISSING, line, ls, j
        # op
        ts = j
        k = _op_kind(buf[j])
        j += 1
        if k < 0 or not _is_end(buf, j, n):
            return out, E_OP, line, ls, ts
        while j < n and _is_blank(buf[j]):
            j += 1
        if _is_end(buf, j, n):
            return out, E_MISSING, line, ls, j
        # address
        ts = j
        if j + 1 < n and buf[j] == 48 and (buf[j + 1] == 120 or buf[j + 1] == 88):
            j += 2
        a = np.int64(0)
        nd = 0
        sig = 0
        while j < n:
            h = _hexval(buf[j])
            if h < 0:
                break
            a = (a << 4) | h
            nd += 1
            if sig > 0 or h != 0:
                sig += 1
            j += 1
        if nd == 0 or not _is_end(buf, j, n):
            return out, E_ADDR, line, ls, ts
        if sig > 16:
            return out, E_ADDR_RANGE, line, ls, ts
        while j < n and _is_blank(buf[j]):
            j += 1
        if _is_end(buf, j, n):
            return out, E_MISSING, line, ls, j
        # size
        ts = j
        s = 0
        nd = 0
        while j < n and 48 <= buf[j] <= 57:
            if s <= 100000:
                s = s * 10 + (buf[j] - 48)
            nd += 1
            j += 1
        if nd == 0 or not _is_end(buf, j, n):
            return out, E_SIZE, line, ls, ts
        if s < 1 or s > 4096:
            return out, E_SIZE_RANGE, line, ls, ts
        while j < n and _is_blank(buf[j]):
            j += 1
        if j < n and buf[j] == 35:  # comment
            while j < n and buf[j] != 10:
                j += 1
        if j < n and buf[j] != 10:
            return out, E_TRAILING, line, ls, j
        core[out] = c
        kind[out] = k
        addr[out] = a
        size[out] = s
        out += 1
        i = j + 1
    return out, E_OK, line, 0, 0


# --------------------------------------------------------------------------- python side
_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"


def decompress(data: bytes, source: str) -> bytes:
    """Return ``data`` decompressed if it starts with gzip or xz magic bytes, else as is."""
    try:
        if data[:2] == _GZIP_MAGIC:
            return gzip.decompress(data)
        if data[:6] == _XZ_MAGIC:
            return lzma.decompress(data, format=lzma.FORMAT_XZ)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError, MemoryError) as e:
        what = "gzip" if data[:2] == _GZIP_MAGIC else "xz"
        raise MksimError(
            f"cannot decompress {what} data (truncated or corrupt file?): {type(e).__name__}: {e}",
            where=source) from None
    return data


def _token(text: bytes, start: int) -> str:
    end = start
    n = len(text)
    while end < n and text[end] not in b" \t\r\n,#":
        end += 1
    if end == start and start < n:  # e.g. a stray ',' or '#': show that character
        end = start + 1
    return text[start:end].decode("utf-8", errors="replace")[:40]


def _raise_parse_error(data: bytes, code: int, line: int, line_start: int, tok_start: int,
                       source: str) -> None:
    end = data.find(b"\n", line_start)
    if end < 0:
        end = len(data)
    text = data[line_start:end].rstrip(b"\r").decode("utf-8", errors="replace")
    shown = text if len(text) <= 60 else text[:57] + "..."
    tok = _token(data, tok_start)
    tok = repr(tok) if tok not in ("", "\n", "\r") else "end of line"
    msg = _MESSAGES.get(code, "parse error {tok}").format(tok=tok)
    raise MksimError(f"{msg} in line {shown!r}", where=f"{source}:{line}")


def _raise_if_binary(data: bytes, line_start: int, where: str) -> None:
    """A parse error in binary data: say so (and where) instead of echoing the raw bytes."""
    end = data.find(b"\n", line_start)
    chunk = data[:len(data) if end < 0 else end]
    bad = chunk.find(b"\0")
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
    if bad >= 0:
        raise MksimError(f"not a text trace (binary data at byte {bad})", where=where)


def parse_trace_bytes(data: bytes, fmt: str, source: str = "<bytes>") -> Trace:
    """Parse a whole trace held in memory (plain, gzip or xz bytes) in format ``fmt``."""
    if fmt not in FORMATS:
        raise MksimError(f"unknown trace format {fmt!r} (expected one of: {', '.join(FORMATS)})",
                         where=source)
    data = decompress(bytes(data) if not isinstance(data, bytes) else data, source)
    buf = np.frombuffer(data, dtype=np.uint8)
    cap = _count_lines(buf)
    kind = np.empty(cap, dtype=np.int8)
    addr = np.empty(cap, dtype=np.int64)
    size = np.empty(cap, dtype=np.int32)
    if fmt == "lackey":
        n, code, line, ls, ts = _parse_lackey(buf, kind, addr, size)
        core = None
    else:
        core = np.empty(cap, dtype=np.int32)
        n, code, line, ls, ts = _parse_mksim(buf, core, kind, addr, size)
    if code != E_OK:
        _raise_if_binary(data, int(ls), f"{source}:{int(line)}")
        _raise_parse_error(data, int(code), int(line), int(ls), int(ts), source)
    n = int(n)
    if core is None:
        core = np.zeros(n, dtype=np.int32)
    if 2 * n < cap:  # many skipped lines: don't keep the over-allocation alive
        core, kind, addr, size = (a[:n].copy() for a in (core, kind, addr, size))
    return Trace(core=core[:n], kind=kind[:n], addr=addr[:n], size=size[:n], source=source)


def read_trace(path: str, fmt: str) -> Trace:
    """Read a trace file (plain, ``.gz`` or ``.xz``, recognised by magic bytes)."""
    path = os.fspath(path)
    if fmt not in FORMATS:
        raise MksimError(f"unknown trace format {fmt!r} (expected one of: {', '.join(FORMATS)})",
                         where=path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MksimError(f"cannot read trace file: {e.strerror or e}", where=path) from None
    low = path.lower()
    if low.endswith(".gz") and data[:2] != _GZIP_MAGIC:
        raise MksimError("file name ends in .gz but the content is not gzip data", where=path)
    if low.endswith(".xz") and data[:6] != _XZ_MAGIC:
        raise MksimError("file name ends in .xz but the content is not xz data", where=path)
    return parse_trace_bytes(data, fmt, path)
