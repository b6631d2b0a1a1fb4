"""kernels package (see DESIGN.md)."""
