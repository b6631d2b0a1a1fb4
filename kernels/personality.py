"""The kernel personality contract: what a system module in ``kernels/`` fills in.

A personality is one module (``kernels/linux.py``, ``kernels/barrelfish.py``, ...) that
defines ``PERSONALITY = Personality(...)``; ``kernels/registry.py`` maps each name to its
module and is the one place a name is looked up.  A personality says:

* ``boot``: how its kernels are laid out on the machine (``"per-core"``: one kernel per core,
  as a multikernel; ``"smp"``: one kernel for all its cores; ``"any"``: whatever the plan says).
  The boot plan's ``mksim_kernel --personality NAME`` line picks it for one kernel.
* ``init``: the ops its kernel's boot core runs after boot hands over (``init(inst, p)``, with
  ``inst`` a ``kernels.base.KernelInstance`` and ``p`` the core's ``isa.Program``).  They are
  timed and appear in the boot summary as ``NAME init`` (begin/end timeline marks).
* ``experiments``: the benches it owns, found by ``mksim bench NAME``.  An experiment makes JSON
  rows from a machine (``rows(cfg, opts)``), formats them as a text table with the published
  numbers beside the model's where they exist (``table``), and draws them (``plot`` gets
  ``matplotlib.pyplot`` on a file backend and returns the figure; ``mksim bench --plot F``
  writes it atomically, so personalities never import matplotlib themselves).

Kernel services (message loops, interrupt handlers, locks, page-table code, TLB shootdown) are
core programs built from shared mechanisms: ``kernels/urpc.py`` (Barrelfish's URPC channel),
``kernels/channels.py`` (Popcorn's, the Linux multikernel RFC's and Twin-Linux's rings),
``kernels/multicast.py`` (send-to-all trees), ``kernels/locks.py`` (Linux's ticket spinlock),
``kernels/noise.py`` (the Linux tick, fixed work quanta, barriers), ``kernels/plots.py`` (what
every bench plot shares) and ``hwmodel/asm.py`` (structured code).  Defaults: a personality with
no init of its own uses ``kernels.base.minimal_init``; one with no experiments registers none.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

BOOT_STYLES = ("per-core", "smp", "any")


@dataclass(frozen=True)
class BenchOption:
    """An option of one bench beyond the common ones (``--kernel linux``): argparse's flag, help,
    choices, default and type.  Its value reaches ``rows`` as ``opts.extra[dest]``, where ``dest``
    is the flag without its dashes, ``-`` turned into ``_``."""
    flag: str
    help: str
    choices: tuple[str, ...] | None = None
    default: object = None
    type: Callable = str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class BenchOptions:
    """The options a registered bench gets (``mksim bench NAME --machine M ...``)."""
    max_cores: int | None = None       # largest core count of a sweep (None: the whole machine)
    repeat: int = 3                    # measured rounds per point (the median is reported)
    extra: dict = field(default_factory=dict)     # the bench's own options (Experiment.options), by dest


@dataclass(frozen=True)
class Experiment:
    """One bench: ``mksim bench NAME`` runs ``rows`` and prints ``table`` (or the rows as JSON)."""
    name: str
    summary: str
    keys: tuple[str, ...]                                  # the keys of every JSON row, in order
    rows: Callable[..., list[dict]]                        # rows(cfg, opts: BenchOptions) -> rows
    table: Callable[..., str]                              # table(rows, cfg) -> text
    plot: Callable[..., object] | None = None              # plot(rows, cfg, plt) -> a matplotlib Figure
    sweeps_cores: bool = True                              # takes --max-cores
    options: tuple[BenchOption, ...] = ()                  # its own options (BenchOption)
    default_machine: str | None = None                     # --machine may be left out: this preset


def _default_init(inst, p) -> None:
    from kernels.base import minimal_init
    minimal_init(inst, p)


@dataclass(frozen=True)
class Personality:
    """A kernel personality: name, one-line summary, boot style, boot-core init, experiments."""
    name: str
    summary: str
    boot: str = "any"
    init: Callable = _default_init
    experiments: tuple[Experiment, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.boot not in BOOT_STYLES:
            raise ValueError(f"personality {self.name}: boot {self.boot!r} not in {BOOT_STYLES}")
