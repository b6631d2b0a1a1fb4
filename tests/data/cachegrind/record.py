#!/usr/bin/env python3
"""Re-record the cachegrind reference data used by tests/test_cachegrind.py.

For every program in PROGRAMS this script
  1. compiles src/NAME.c (statically linked, so no dynamic loader / libc version noise;
     '/bin/true' is also recorded as-is as a dynamically linked example),
  2. records a lackey trace:   valgrind --tool=lackey --trace-mem=yes --log-file=T ./NAME
     and stores it as NAME.lackey.xz (the log is kept verbatim, '==PID==' lines included),
  3. runs cachegrind for each config in CONFIGS:
         valgrind --tool=cachegrind --cache-sim=yes --I1=.. --D1=.. --LL=..
                  --cachegrind-out-file=/dev/null ./NAME
     and stores the numbers of its summary (plus the exact command lines) in NAME.json.

Determinism (see README.md next to this script): both tools are run on the same binary,
from the same directory, as './NAME', with the same minimal environment (env -i
PATH=/usr/bin:/bin), stdin from /dev/null and stdout to /dev/null.  The stdout detail
matters: glibc's stdio takes different code paths for a pipe, a tty and /dev/null, so
a program whose stdout differs between the lackey and the cachegrind run executes a few
dozen different instructions and the counts no longer match.  Valgrind places the client
itself (stack at 0x1fff000000, brk/mmap areas fixed), independent of the kernel's ASLR,
so no 'setarch -R' is needed.

Usage:  python3 tests/data/cachegrind/record.py [NAME ...]     (needs valgrind and gcc)
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {"PATH": "/usr/bin:/bin"}

# name -> gcc flags (None: an existing binary, recorded as-is)
PROGRAMS = {
    "matmul": ["-O2", "-static"],
    "listwalk": ["-O1", "-static"],
    "memcpyloop": ["-O2", "-static"],
    "simd": ["-O2", "-mavx2", "-static"],
    "oddities": ["-O2", "-mcx16", "-static"],
    "true": None,  # /bin/true: dynamically linked, exercises ld.so
}
EXISTING = {"true": "/bin/true"}

# name -> (I1, D1, LL) as cachegrind option values.  Line sizes must be >= 32 on an AVX
# host: cachegrind refuses smaller lines ("minimum line size (16) must be equal to or
# larger than the maximum register size (32)").
CONFIGS = {
    "small32": ("8192,2,32", "8192,4,32", "131072,8,32"),
    "default64": ("32768,8,64", "32768,8,64", "8388608,16,64"),
    "direct64": ("4096,1,64", "4096,1,64", "65536,1,64"),
    "mixed": ("16384,4,32", "16384,2,64", "262144,8,128"),
    "odd_assoc": ("12288,3,64", "24576,6,64", "196608,12,256"),
}

_NUM = r"([\d,]+)"


def _num(s: str) -> int:
    return int(s.replace(",", ""))


def parse_cachegrind_summary(text: str) -> dict:
    """The numbers of cachegrind's end-of-run summary (stderr) as a dict."""
    def one(label):
        m = re.search(re.escape(label) + r":\s+" + _NUM, text)
        if not m:
            raise ValueError(f"no {label!r} in cachegrind output:\n{text}")
        return _num(m.group(1))

    def three(label):
        m = re.search(re.escape(label) + r":\s+" + _NUM + r"\s+\(\s*" + _NUM + r" rd\s+\+\s+"
                      + _NUM + r" wr\)", text)
        if not m:
            raise ValueError(f"no {label!r} in cachegrind output:\n{text}")
        return tuple(_num(g) for g in m.groups())

    d_refs, d_rd, d_wr = three("D   refs")
    d1, d1r, d1w = three("D1  misses")
    lld, lldr, lldw = three("LLd misses")
    ll_refs = three("LL refs")[0]
    ll_misses = three("LL misses")[0]
    return {
        "I_refs": one("I   refs"), "I1_misses": one("I1  misses"), "LLi_misses": one("LLi misses"),
        "D_refs": d_refs, "D_reads": d_rd, "D_writes": d_wr,
        "D1_misses": d1, "D1_read_misses": d1r, "D1_write_misses": d1w,
        "LLd_misses": lld, "LLd_read_misses": lldr, "LLd_write_misses": lldw,
        "LL_refs": ll_refs, "LL_misses": ll_misses,
    }


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=True)


def record(name: str, work: str) -> None:
    flags = PROGRAMS[name]
    meta = {"program": name}
    if flags is None:
        src = EXISTING[name]
        shutil.copy(src, os.path.join(work, name))
        meta["binary"] = src
        meta["compile"] = None
    else:
        src = os.path.join(HERE, "src", name + ".c")
        cmd = ["gcc", *flags, "-o", name, src]
        subprocess.run(cmd, cwd=work, check=True)
        meta["source"] = f"src/{name}.c"
        meta["compile"] = " ".join(["gcc", *flags, "-o", name, f"src/{name}.c"])
    with open(os.path.join(work, name), "rb") as f:
        meta["binary_sha256"] = hashlib.sha256(f.read()).hexdigest()
    meta["valgrind"] = subprocess.run(["valgrind", "--version"], capture_output=True,
                                      text=True).stdout.strip()
    meta["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[0]
    meta["environment"] = "env -i PATH=/usr/bin:/bin, cwd = build dir, stdin and stdout /dev/null"

    lackey = ["valgrind", "--tool=lackey", "--trace-mem=yes", "--log-file=trace.txt", f"./{name}"]
    run(lackey, work)
    meta["lackey_command"] = " ".join(lackey)
    with open(os.path.join(work, "trace.txt"), "rb") as f:
        raw = f.read()
    with open(os.path.join(HERE, f"{name}.lackey.xz"), "wb") as f:
        f.write(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
    meta["trace"] = f"{name}.lackey.xz"
    meta["trace_lines"] = raw.count(b"\n")

    meta["configs"] = {}
    for cname, (i1, d1, ll) in CONFIGS.items():
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--I1={i1}", f"--D1={d1}",
               f"--LL={ll}", "--cachegrind-out-file=/dev/null", f"./{name}"]
        err = run(cmd, work).stderr
        summary = [ln for ln in err.splitlines() if re.search(r"(refs|misses):", ln)]
        meta["configs"][cname] = {
            "I1": [int(x) for x in i1.split(",")],
            "D1": [int(x) for x in d1.split(",")],
            "LL": [int(x) for x in ll.split(",")],
            "command": " ".join(cmd),
            "cachegrind_summary": summary,
            "expected": parse_cachegrind_summary(err),
        }
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{name}: {meta['trace_lines']} trace lines, {len(CONFIGS)} configs", file=sys.stderr)


def main(argv):
    names = argv or list(PROGRAMS)
    for n in names:
        if n not in PROGRAMS:
            sys.exit(f"unknown program {n!r}; known: {', '.join(PROGRAMS)}")
    with tempfile.TemporaryDirectory(prefix="mksim-cg-") as work:
        for n in names:
            record(n, work)


if __name__ == "__main__":
    main(sys.argv[1:])
