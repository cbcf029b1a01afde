"""Figure helpers (matplotlib, the ``cnnlab[experiments]`` extra): headless, PNG + SVG."""
from __future__ import annotations

from pathlib import Path

__all__ = ["new_figure", "save"]


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, out: Path, stem: str) -> str:
    """Save ``fig`` as ``out/stem.png`` and ``out/stem.svg`` and close it; returns ``stem``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(Path(out) / f"{stem}.png", dpi=120)
    fig.savefig(Path(out) / f"{stem}.svg", metadata={"Date": None})
    plt.close(fig)
    return stem


def errorbar_groups(ax, labels, stats, *, scale: float = 1.0, ylabel: str = ""):
    """Mean with its 95% CI (the interval the verdict rule uses) per group; dots are the seeds."""
    xs = list(range(len(labels)))
    for x, s in zip(xs, stats):
        ax.plot([x + 0.12] * len(s["values"]), [v * scale for v in s["values"]], ".", color="#7f8c8d", ms=5)
        err = None if s["ci95"] is None else [[(s["mean"] - s["ci95"][0]) * scale], [(s["ci95"][1] - s["mean"]) * scale]]
        ax.errorbar([x], [s["mean"] * scale], yerr=err, fmt="o", capsize=5, color="#2c3e50")
    ax.set_xticks(xs, labels, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_ylabel(ylabel)
