"""mksim: the command line, report writing and parameter sweeps of the multi-kernel machine model (see README.md and ARCHITECTURE.md)."""
