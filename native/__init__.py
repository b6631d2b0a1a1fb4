"""native package (see DESIGN.md)."""
