"""cffi (API mode) build script for the host benchmarks in native/hostbench.c.

setuptools runs it at install time through ``cffi_modules`` in setup.py, which compiles
``native._hostbench``; it can also be run by hand: ``python native/build_hostbench.py``
(builds the extension in place, next to this file).
"""
from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
int hb_chase(size_t bytes, uint64_t seed, long steps, int reps, double *out_ns);
int hb_pingpong(int cpu_a, int cpu_b, long iters, long warm, int reps, double timeout_s,
                double *out_ns);
double hb_tsc_hz(double window_s);
double hb_clock_res_ns(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
# The C file is compiled as part of the extension (no separate library to install).
ffibuilder.set_source(
    "native._hostbench",
    '#include "hostbench.c"\n',
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    import os
    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=True)
