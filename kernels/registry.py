"""The kernel personalities that exist, in one table: the grub.cfg parser (``mksim_kernel
--personality``) and the boot commands look names up here, and an unknown name is an error.

Today one personality has its own init program: ``minimal`` (``kernels.base.minimal_init``).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from hwmodel.errors import MksimError

# name -> (module, function): the init ops the kernel's boot core runs (``kernels.base.init_for``)
_TABLE: dict[str, tuple[str, str]] = {
    "minimal": ("kernels.base", "minimal_init"),
}


def known() -> tuple[str, ...]:
    """The personality names that exist, sorted."""
    return tuple(sorted(_TABLE))


def check(name: str, where: str = "") -> str:
    """``name`` if it is a known personality, else MksimError naming the known ones."""
    if name not in _TABLE:
        raise MksimError(f"unknown personality {name!r} (known: {', '.join(known())})", where=where)
    return name


def resolve(name: str, where: str = "") -> Callable:
    """The init function of personality ``name`` (MksimError if there is none)."""
    mod, fn = _TABLE[check(name, where)]
    return getattr(importlib.import_module(mod), fn)
