"""Host measurements through cffi: the C benchmarks of native/hostbench.c, compiled at install into
native._hostbench (optional: mksim.host says how to build it when it is missing)."""
