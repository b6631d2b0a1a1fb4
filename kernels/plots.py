"""What every bench plot shares: distinct line styles per series, axis labels with units, a light
grid, and the legend outside the axes so that it covers no data.  A personality's ``plot(rows, cfg,
plt)`` draws its data and ends with ``finish``."""
from __future__ import annotations

STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ("-", "v"), ("--", "x"), ("-.", "*"))


def style(i: int) -> tuple[str, str]:
    """(line style, marker) of the i-th series."""
    return STYLES[i % len(STYLES)]


def finish(fig, ax, xlabel: str, ylabel: str, title: str, legend: bool = True):
    """Label the axes (with units), title, grid, the legend outside the axes; returns the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def series(plt, rows: list[dict], key: str, names, title: str, x: str = "cores", y: str = "cycles",
           xlabel: str = "cores", ylabel: str = "cycles"):
    """One line per name: the rows whose ``key`` is that name, ``y`` against ``x``, distinct styles."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, name in enumerate(names):
        pts = sorted((r[x], r[y]) for r in rows if r[key] == name)
        if pts:
            ls, mk = style(i)
            ax.plot([a for a, _ in pts], [b for _, b in pts], linestyle=ls, marker=mk, label=name)
    return finish(fig, ax, xlabel, ylabel, title)
