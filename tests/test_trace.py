"""Tests for hwmodel.trace: lackey and mksim trace parsing, compression, bad input."""
from __future__ import annotations

import gzip
import lzma
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.errors import MksimError
from hwmodel.trace import (KIND_I, KIND_L, KIND_M, KIND_S, Trace, parse_trace_bytes,
                           read_trace)

DATA = os.path.join(os.path.dirname(__file__), "data", "traces")


def _u64(a: np.ndarray) -> list[int]:
    return [int(x) & (2**64 - 1) for x in a]


# ----------------------------------------------------------------------------- happy paths
def test_constants():
    assert (KIND_I, KIND_L, KIND_S, KIND_M) == (0, 1, 2, 3)


def test_lackey_sample():
    t = read_trace(os.path.join(DATA, "tiny.lackey"), "lackey")
    assert isinstance(t, Trace)
    assert t.kind.dtype == np.int8 and t.addr.dtype == np.int64
    assert t.size.dtype == np.int32 and t.core.dtype == np.int32
    assert list(t.kind) == [KIND_I, KIND_L, KIND_S, KIND_M, KIND_I]
    assert _u64(t.addr) == [0x0400D7D4, 0x0421E9B0, 0x7FF0001F8, 0x0421E9B0, 0xFFFFFFFFFF600000]
    assert list(t.size) == [8, 8, 8, 4, 3]
    assert list(t.core) == [0] * 5
    assert t.source.endswith("tiny.lackey")
    assert len(t) == 5


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_mksim_sample(suffix):
    t = read_trace(os.path.join(DATA, "two_cores.mksim" + suffix), "mksim")
    assert list(t.core) == [0, 0, 1, 1, 0, 0, 1, 1, 2, 3]
    assert "".join("ILSM"[k] for k in t.kind) == "ILIMISILLS"
    assert _u64(t.addr) == [0x400000, 0x7F001040, 0x400000, 0x7F001040, 0x400004, 0x7F001048,
                            0x400004, 0x7F001040, 0xFFFFFFFFFFFFFFF0, 0]
    assert list(t.size) == [4, 8, 4, 8, 3, 8, 3, 8, 16, 1]
    assert t.addr[8] == -16  # uint64 bit pattern in int64


def test_compression_detected_by_magic_not_suffix(tmp_path):
    text = b"0 L 0x10 8\n1 S 0x20 4\n"
    for name, blob in (("a.txt", gzip.compress(text)), ("b.trace", lzma.compress(text)),
                       ("c", text)):
        p = tmp_path / name
        p.write_bytes(blob)
        t = read_trace(str(p), "mksim")
        assert list(t.core) == [0, 1] and _u64(t.addr) == [0x10, 0x20]


def test_parse_trace_bytes_plain_and_compressed():
    text = b"I  00401000,3\n L 00602000,8\n"
    for blob in (text, gzip.compress(text), lzma.compress(text)):
        t = parse_trace_bytes(blob, "lackey", "mem")
        assert list(t.kind) == [0, 1] and t.source == "mem"


def test_empty_and_comment_only():
    assert len(parse_trace_bytes(b"", "lackey", "x")) == 0
    assert len(parse_trace_bytes(b"", "mksim", "x")) == 0
    t = parse_trace_bytes(b"# nothing\n\n   \n\t# more\n", "mksim", "x")
    assert len(t) == 0 and t.core.dtype == np.int32


def test_crlf_no_final_newline_and_extremes():
    t = parse_trace_bytes(b"0 L 0x10 8\r\n7 S ffffffffffffffff 4096\r\n2147483647 I 0 1", "mksim", "x")
    assert list(t.core) == [0, 7, 2147483647]
    assert _u64(t.addr) == [0x10, 2**64 - 1, 0]
    assert list(t.size) == [8, 4096, 1]
    t = parse_trace_bytes(b"I  0x00401000,3\r\n L 00000000000000000000602000,8", "lackey", "x")
    assert _u64(t.addr) == [0x401000, 0x602000]


def test_mksim_comment_glued_to_size():
    t = parse_trace_bytes(b"0 L 0x10 8#comment\n", "mksim", "x")
    assert list(t.size) == [8]


# ----------------------------------------------------------------------------- bad input
def _err(data: bytes, fmt: str, line: int, *fragments: str) -> MksimError:
    with pytest.raises(MksimError) as ei:
        parse_trace_bytes(data, fmt, "t.txt")
    msg = str(ei.value)
    assert f"t.txt:{line}:" in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    assert ei.value.where == f"t.txt:{line}"
    return ei.value


@pytest.mark.parametrize("line, frags", [
    (b"X 00400000,4", ["X 00400000,4", "not a lackey trace line"]),
    (b"SB 00400000", ["SB"]),
    (b"I00400000,4", ["I00400000,4"]),
    (b"I  0040zz00,4", ["bad address", "'0040zz00'"]),
    (b"I  ,4", ["bad address"]),
    (b"I  00400000;4", ["bad address", "'00400000;4'"]),
    (b"I  00400000 ;4", ["expected ','", "';4'"]),
    (b"I  00400000", ["expected ','", "found end of line"]),
    (b"I  00400000,", ["bad size"]),
    (b"I  00400000,x", ["bad size", "'x'"]),
    (b"I  00400000,4b", ["bad size", "'4b'"]),
    (b"I  00400000,0", ["size '0' out of range"]),
    (b"I  00400000,4097", ["size '4097' out of range"]),
    (b"I  00400000,99999999999999999999", ["out of range"]),
    (b"I  00400000,4 junk", ["unexpected text", "'junk'"]),
    (b"I  11112222333344445,4", ["does not fit in 64 bits", "11112222333344445"]),
    (b"= not valgrind", ["not a lackey trace line"]),
])
def test_lackey_bad_lines(line, frags):
    data = b"==1== header\nI  00400000,4\n\n" + line + b"\n L 00500000,8\n"
    _err(data, "lackey", 4, *frags)


@pytest.mark.parametrize("line, frags", [
    (b"-1 L 0x10 8", ["bad core", "'-1'"]),
    (b"a L 0x10 8", ["bad core", "'a'"]),
    (b"3x L 0x10 8", ["bad core", "'3x'"]),
    (b"2147483648 L 0x10 8", ["core '2147483648' out of range"]),
    (b"99999999999999999999999 L 0x10 8", ["out of range"]),
    (b"0 Q 0x10 8", ["bad op", "'Q'"]),
    (b"0 LL 0x10 8", ["bad op", "'LL'"]),
    (b"0 l 0x10 8", ["bad op", "'l'"]),
    (b"0 L 0xzz1 8", ["bad address", "'0xzz1'"]),
    (b"0 L zz1 8", ["bad address", "'zz1'"]),
    (b"0 L 0x 8", ["bad address", "'0x'"]),
    (b"0 L 0x1g 8", ["bad address", "'0x1g'"]),
    (b"0 L 0x10000000000000000 8", ["does not fit in 64 bits"]),
    (b"0 L 0x10 0", ["size '0' out of range"]),
    (b"0 L 0x10 4097", ["size '4097' out of range"]),
    (b"0 L 0x10 -8", ["bad size", "'-8'"]),
    (b"0 L 0x10 8x", ["bad size", "'8x'"]),
    (b"0 L 0x10 0x8", ["bad size", "'0x8'"]),
    (b"0 L 0x10", ["missing field"]),
    (b"0 L", ["missing field"]),
    (b"0", ["missing field"]),
    (b"0 L 0x10 8 9", ["unexpected text", "'9'"]),
    (b"0,L,0x10,8", ["bad core"]),
])
def test_mksim_bad_lines(line, frags):
    data = b"# header\n0 I 0x400000 4\n\n" + line + b"\n1 L 0x10 8\n"
    _err(data, "mksim", 4, *frags)


def test_error_quotes_line_truncated():
    long = b"0 L 0x10 8 " + b"y" * 200
    err = _err(b"\n" * 16 + long + b"\n", "mksim", 17)
    quoted = re.search(r"in line '(.*)'$", str(err)).group(1)
    assert len(quoted) <= 60 and quoted.startswith("0 L 0x10 8 yyy") and quoted.endswith("...")


def test_error_on_non_utf8_line():
    # binary data is named as such, with its offset, not echoed (issue 15)
    _err(b"0 L 0x10 8\n\xff\xfe\x00garbage\n", "mksim", 2, "not a text trace (binary data at byte 11)")
    _err(b"I  00400000,4\n\xff\xfe\x00garbage\n", "lackey", 2, "not a text trace (binary data at byte 14)")


def test_bad_format_name(tmp_path):
    with pytest.raises(MksimError, match="unknown trace format 'pin'"):
        parse_trace_bytes(b"", "pin", "x")
    p = tmp_path / "t"
    p.write_bytes(b"")
    with pytest.raises(MksimError, match="unknown trace format"):
        read_trace(str(p), "csv")


def test_missing_file(tmp_path):
    p = str(tmp_path / "nope.trace")
    with pytest.raises(MksimError) as ei:
        read_trace(p, "lackey")
    assert p in str(ei.value) and "cannot read" in str(ei.value)


def test_directory_is_not_a_trace(tmp_path):
    with pytest.raises(MksimError, match="cannot read"):
        read_trace(str(tmp_path), "mksim")


@pytest.mark.parametrize("compress, suffix", [(gzip.compress, ".gz"), (lzma.compress, ".xz")])
def test_truncated_compressed(tmp_path, compress, suffix):
    text = b"".join(b"%d L 0x%x 8\n" % (i % 4, i * 64) for i in range(20000))
    blob = compress(text)
    for cut in (len(blob) // 2, len(blob) - 3, 8):
        p = tmp_path / ("t" + suffix)
        p.write_bytes(blob[:cut])
        with pytest.raises(MksimError) as ei:
            read_trace(str(p), "mksim")
        assert str(p) in str(ei.value) and "decompress" in str(ei.value)


def test_corrupt_compressed(tmp_path):
    blob = bytearray(gzip.compress(b"0 L 0x10 8\n" * 1000))
    blob[len(blob) // 2] ^= 0xFF
    blob[-6] ^= 0xFF  # CRC/size trailer
    with pytest.raises(MksimError, match="decompress"):
        parse_trace_bytes(bytes(blob), "mksim", "c.gz")


def test_suffix_without_magic(tmp_path):
    for suffix in (".gz", ".xz"):
        p = tmp_path / ("plain" + suffix)
        p.write_bytes(b"0 L 0x10 8\n")
        with pytest.raises(MksimError, match=r"ends in \%s" % suffix):
            read_trace(str(p), "mksim")


def test_binary_garbage(tmp_path):
    rng = np.random.default_rng(7)
    blob = b"\x00\x01" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    p = tmp_path / "garbage.bin"
    p.write_bytes(blob)
    for fmt in ("lackey", "mksim"):
        with pytest.raises(MksimError) as ei:
            read_trace(str(p), fmt)
        assert re.search(re.escape(str(p)) + r":\d+: ", str(ei.value))


# ----------------------------------------------------------------------------- properties
_access = st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 3), st.integers(0, 2**64 - 1),
                    st.integers(1, 4096))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_access, max_size=40), st.data())
def test_mksim_roundtrip(accs, data):
    lines = []
    for core, k, a, s in accs:
        ws = data.draw(st.sampled_from([" ", "\t", "  ", " \t "]))
        hx = data.draw(st.sampled_from(["0x%x", "0X%X", "%x", "%X", "0x%016x"])) % a
        tail = data.draw(st.sampled_from(["", " ", "  # c", "#x", "\r"]))
        lead = data.draw(st.sampled_from(["", " ", "\t"]))
        lines.append(f"{lead}{core}{ws}{'ILSM'[k]}{ws}{hx}{ws}{s}{tail}")
        if data.draw(st.booleans()):
            lines.append(data.draw(st.sampled_from(["", "# comment", "   ", "\t#"])))
    t = parse_trace_bytes("\n".join(lines).encode(), "mksim", "rt")
    assert list(t.core) == [x[0] for x in accs]
    assert list(t.kind) == [x[1] for x in accs]
    assert _u64(t.addr) == [x[2] for x in accs]
    assert list(t.size) == [x[3] for x in accs]


@settings(max_examples=150, deadline=None)
@given(st.lists(_access, max_size=40), st.data())
def test_lackey_roundtrip(accs, data):
    lines = []
    for _, k, a, s in accs:
        lines.append(("I  %08x,%d" if k == 0 else " %s %%08x,%%d" % "ILSM"[k]) % (a, s))
        if data.draw(st.booleans()):
            lines.append(data.draw(st.sampled_from(["", "==12== x", "--12-- y"])))
    t = parse_trace_bytes("\n".join(lines).encode(), "lackey", "rt")
    assert list(t.core) == [0] * len(accs)
    assert list(t.kind) == [x[1] for x in accs]
    assert _u64(t.addr) == [x[2] for x in accs]
    assert list(t.size) == [x[3] for x in accs]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["lackey", "mksim"]))
def test_arbitrary_bytes_only_raise_mksim_error(blob, fmt):
    try:
        t = parse_trace_bytes(blob, fmt, "fuzz")
    except MksimError as e:
        assert str(e).startswith("fuzz")
    else:
        assert len(t.kind) == len(t.addr) == len(t.size) == len(t.core)
        assert (t.size >= 1).all() and (t.size <= 4096).all()
