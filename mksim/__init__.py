"""mksim package (see DESIGN.md)."""
