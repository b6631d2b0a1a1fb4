"""boot package (see DESIGN.md)."""
