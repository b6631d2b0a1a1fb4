"""One error type for every bad input: it names where (file, field or line) and what."""
from __future__ import annotations


class MksimError(Exception):
    """A user-facing error: the CLI prints ``str(err)`` on one line and exits 2."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
