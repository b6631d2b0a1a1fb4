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
                double *out_ns, long *out_csw);
void hb_urpc_layout(long *out);
int hb_urpc_pingpong(int cpu_a, int cpu_b, int slots, long iters, long warm, int reps,
                     double timeout_s, double *out_ns, long *out_csw);
int hb_urpc_stream(int cpu_a, int cpu_b, int slots, long msgs, long warm, int reps,
                   double timeout_s, double *out_ns, long *out_csw);
int hb_shm(const int *cpus, int nthreads, int nlines, int locked, long iters, long warm, int reps,
           double timeout_s, double *out_ns, long *out_csw, double *out_overlap);
int hb_msg(int server_cpu, const int *client_cpus, int nclients, int nlines, int slots,
           long iters, long warm, int reps, double timeout_s, double *out_ns, long *out_csw,
           double *out_overlap);
double hb_tsc_hz(double window_s);
double hb_clock_res_ns(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
# native/hostbench.c is compiled into the extension as a second source file (paths are
# relative to the project root, where setuptools runs; listing it in `sources` also puts it
# in the sdist). The wrapper only needs the prototypes, which are the cdef itself.
ffibuilder.set_source(
    "native._hostbench",
    "#include <stddef.h>\n#include <stdint.h>\n" + CDEF,
    sources=["native/hostbench.c"],
    extra_compile_args=["-O2", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    import os
    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=True)
