"""Tables and figures of searches: ``cnnlab search show`` and ``cnnlab search compare``.

Figures (matplotlib, PNG or SVG by the file's extension), for each run or strategy:
the mean reward of the architectures sampled in each block of ``batch`` trials (for
``reinforce`` one block is one controller update: the policy's mean reward) and the
best reward found so far against the number of trials.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["trial_table", "curves", "plot_runs", "plot_compare"]


def trial_table(trials: Sequence[dict[str, Any]], space, top: int | None = None) -> str:
    rows = [("id", "status", "reward", "params", "seconds", "architecture")]
    shown = sorted(trials, key=lambda t: (t["status"] != "ok", -(t.get("reward") or 0), t["id"])) if top else trials
    for t in shown[:top] if top else shown:
        arch = _short(space, t["tokens"])
        rows.append((str(t["id"]), t["status"], f"{t['reward']:.4f}" if t.get("reward") is not None else "-",
                     f"{t['params']:,}" if t.get("params") else "-", f"{t.get('seconds', 0):.1f}",
                     arch if t["status"] != "failed" else f"{arch}  ({t.get('error', '')[:80]})"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(r[i].rjust(widths[i]) if i in (0, 2, 3, 4) else r[i].ljust(widths[i])
                               for i in range(5)) + "  " + r[5])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 12)
    return "\n".join(lines)


def _short(space, tokens) -> str:
    arch = space.decode(tokens)
    if "layers" in arch:
        return " | ".join(f"{l['filter_height']}x{l['filter_width']}x{l['filters']}"
                          + (f"<{','.join(map(str, l['inputs']))}" if l["inputs"] else "<img") for l in arch["layers"])
    if "normal" in arch:
        def cell(c):
            return " ".join(f"({l},{lo},{r},{ro},{cb})" for l, lo, r, ro, cb in arch[c]["blocks"])
        return f"normal {cell('normal')} / reduction {cell('reduction')}"
    return space.key(tokens)


def curves(trials: Sequence[dict[str, Any]], batch: int = 5) -> dict[str, list[float]]:
    """Best-so-far reward per trial (in finishing order) and mean reward per block of ``batch``."""
    done = sorted((t for t in trials if t["status"] != "running"), key=lambda t: t.get("order", t["id"]))
    rewards = [t["reward"] if t.get("reward") is not None else 0.0 for t in done]
    best, running = [], float("-inf")
    for t in done:
        if t.get("reward") is not None:
            running = max(running, t["reward"])
        best.append(running if running > float("-inf") else float("nan"))
    blocks = [sum(rewards[i:i + batch]) / len(rewards[i:i + batch]) for i in range(0, len(rewards), batch)]
    return {"best_so_far": best, "block_mean": blocks, "rewards": rewards}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("figures need matplotlib: pip install 'cnnlab[search]'") from None
    return plt


def _check_figure_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"figure {path}: give a .png, .svg or .pdf file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot_runs(runs: dict[str, Sequence[dict[str, Any]]], path: str | Path, batch: int = 5) -> Path:
    """One line per run (label -> trials): block-mean reward and best-so-far."""
    path = _check_figure_path(path)
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, trials in runs.items():
        c = curves(trials, batch)
        a.plot([batch * (k + 1) for k in range(len(c["block_mean"]))], c["block_mean"], marker="o", ms=3, label=label)
        b.plot(range(1, len(c["best_so_far"]) + 1), c["best_so_far"], label=label)
    a.set(xlabel="trials", ylabel=f"mean reward of {batch} sampled", title="sampled reward per update / block")
    b.set(xlabel="trials", ylabel="best validation accuracy so far", title="best found")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_compare(res: dict[str, Any], path: str | Path) -> Path:
    """The tabular comparison: mean +- std bands over seeds."""
    path = _check_figure_path(path)
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    batch = res["batch"]
    for name, s in res["strategies"].items():
        for ax, key, xs in ((a, "block_mean_reward", [batch * (k + 1) for k in range(len(s["block_mean_reward"]))]),
                            (b, "best_so_far", list(range(1, res["budget"] + 1)))):
            m = [100 * v[0] for v in s[key]]
            sd = [100 * v[1] for v in s[key]]
            ax.plot(xs, m, label=name)
            ax.fill_between(xs, [x - y for x, y in zip(m, sd)], [x + y for x, y in zip(m, sd)], alpha=0.15)
    a.axhline(100 * res["table"]["mean_val"], color="gray", ls=":", lw=1, label="space mean")
    b.axhline(100 * res["table"]["best_val"], color="gray", ls="--", lw=1, label="space best")
    a.set(xlabel="trials", ylabel=f"mean val. accuracy of {batch} sampled (%)",
          title=f"sampled reward (reinforce: per update), {res['seeds']} seeds")
    b.set(xlabel="trials", ylabel="best val. accuracy found (%)", title=f"best found, mean ± std, {res['seeds']} seeds")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
