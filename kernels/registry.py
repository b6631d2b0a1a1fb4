"""The kernel personalities that exist, in one table: the grub.cfg parser (``mksim_kernel
--personality``), the boot commands, ``mksim personalities`` and ``mksim bench`` look names up
here, and an unknown name is an error.

Each name maps to the module that defines its ``PERSONALITY`` (``kernels.personality``).  To add
one: write ``kernels/NAME.py`` with ``PERSONALITY = Personality(...)`` and add a line below.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from hwmodel.errors import MksimError
from kernels.personality import Experiment, Personality

DEFAULT = "minimal"        # the personality of a kernel whose plan line names none

_TABLE: dict[str, str] = {
    "minimal": "kernels.base",
    "linux": "kernels.linux",
    "barrelfish": "kernels.barrelfish",
    "mckernel": "kernels.mckernel",
    "mos": "kernels.mos",
    "popcorn": "kernels.popcorn",
    "twin-linux": "kernels.twinlinux",
    "multikernel": "kernels.multikernel",
    "fos": "kernels.fos",
    "k2": "kernels.k2",
    "rainforest": "kernels.rainforest",
}


def known() -> tuple[str, ...]:
    """The personality names that exist, sorted."""
    return tuple(sorted(_TABLE))


def check(name: str, where: str = "") -> str:
    """``name`` if it is a known personality, else MksimError naming the known ones."""
    if name not in _TABLE:
        raise MksimError(f"unknown personality {name!r} (known: {', '.join(known())})", where=where)
    return name


def get(name: str, where: str = "") -> Personality:
    """The ``Personality`` called ``name`` (MksimError if there is none)."""
    mod = importlib.import_module(_TABLE[check(name, where)])
    pers = getattr(mod, "PERSONALITY", None)
    if not isinstance(pers, Personality) or pers.name != name:
        raise MksimError(f"personality {name!r}: module {mod.__name__} defines no PERSONALITY named {name!r}")
    return pers


def resolve(name: str, where: str = "") -> Callable:
    """The init function of personality ``name``."""
    return get(name, where).init


def experiments() -> dict[str, tuple[Personality, Experiment]]:
    """Every registered experiment by bench name (a name used twice is an error)."""
    out: dict[str, tuple[Personality, Experiment]] = {}
    for name in known():
        pers = get(name)
        for ex in pers.experiments:
            if ex.name in out:
                raise MksimError(f"bench {ex.name!r} is registered by {out[ex.name][0].name} and {name}")
            out[ex.name] = (pers, ex)
    return out
