"""The lecture's claims, each as an experiment (registered in the order of ``cnnlab experiment list``).

Cheapest first: ``one-by-one`` and ``bottleneck`` train nothing; ``small-filters``,
``degradation``, ``stochastic-depth`` and ``wide-vs-deep`` train small networks with
:func:`cnnlab.train.fit`. Each scale's settings are a table at the top of its class.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

from cnnlab.experiments.core import Context, Experiment, Run, register_experiment
from cnnlab.experiments.report import markdown_table
from cnnlab.experiments.stats import Check, compare, exact, fmt, holds, summarize

__all__ = ["OneByOne", "Bottleneck", "SmallFilters", "Degradation", "StochasticDepth", "WideVsDeep",
           "NaiveInception", "ReducedInception"]

# Offline datasets: installed with a package, no download (see `cnnlab datasets`).
OFFLINE = ("digits", "mnist_5k", "shapes")
DOWNLOADED = ("mnist", "fashion_mnist", "cifar10", "cifar100")


def _arm_stats(records: list[dict], metric: str) -> dict[str, dict]:
    """``{arm: summarize(values of metric over the arm's seeds)}`` for training records."""
    out: dict[str, list[float]] = {}
    for r in records:
        value = r.get("metrics", {}).get(metric)
        if value is not None:
            out.setdefault(r["arm"], []).append(value)
    return {arm: summarize(v) for arm, v in out.items()}


def _fit_options(cfg: dict) -> dict:
    keys = ("epochs", "batch_size", "lr", "train_samples", "recipe", "weight_decay", "label_smoothing")
    return {k: cfg[k] for k in keys if k in cfg}


def _mean_curve(records: list[dict], arm: str, field: str) -> tuple[list[int], list[float]]:
    per_epoch: dict[int, list[float]] = {}
    for r in records:
        if r["arm"] == arm:
            for e in r.get("epochs", []):
                if e.get(field) is not None:
                    per_epoch.setdefault(e["epoch"], []).append(e[field])
    epochs = sorted(per_epoch)
    return epochs, [statistics.fmean(per_epoch[e]) for e in epochs]


# ---------------------------------------------------------------------------------------
# one-by-one


@register_experiment
class OneByOne(Experiment):
    """Lin et al. 2013 (Network in Network): a 1x1 convolution is a fully connected layer
    shared across the pixels. Checked numerically in float64 on random weights."""

    name = "one-by-one"
    title = "A 1x1 convolution is a fully connected layer applied at every pixel"
    claim = ("A 1x1 convolution with C inputs and K outputs computes, at every pixel, the same thing as "
             "one fully connected layer C -> K shared by all pixels: same output, same weights "
             "(K*C + K), and H*W*C*K multiply-accumulates per image.")
    source = "Lin, Chen & Yan 2013, Network in Network (arXiv:1312.4400), Sec. 3.2; Szegedy et al. 2014 (GoogLeNet)"
    scales = {
        "smoke": {"in_channels": 16, "out_channels": 8, "size": 7, "batch": 2},
        "small": {"in_channels": 256, "out_channels": 64, "size": 28, "batch": 4},
        "paper": {"in_channels": 832, "out_channels": 384, "size": 7, "batch": 8},
    }
    default_seeds = {"smoke": 2, "small": 5, "paper": 5}

    def plan(self, ctx: Context) -> list[Run]:
        return [Run(f"seed{s}", "conv-vs-fc", s, dict(ctx.config), compute=_one_by_one) for s in ctx.seeds]

    def evaluate(self, records, ctx):
        cfg = ctx.config
        c, k, h = cfg["in_channels"], cfg["out_channels"], cfg["size"]
        worst = max(r["metrics"]["max_abs_diff"] for r in records)
        scale = max(r["metrics"]["max_abs_output"] for r in records)
        tol = 1e-10 * max(1.0, scale)
        checks = [
            exact("same output", "the 1x1 convolution's output equals the FC layer applied pixel by pixel",
                  worst, 0.0, tol=tol, what=f"largest |difference| over {len(records)} random draws (float64)"),
            exact("same weights", "the convolution has K*C + K parameters, as the FC layer",
                  records[0]["metrics"]["conv_params"], k * c + k, what="conv parameters vs K*C + K by hand"),
            exact("same weights (FC)", "the FC layer C -> K has K*C + K parameters",
                  records[0]["metrics"]["fc_params"], k * c + k, what="FC parameters vs K*C + K by hand"),
            exact("cost", "the 1x1 convolution costs H*W*C*K multiply-accumulates per image",
                  records[0]["metrics"]["conv_macs"], h * h * c * k,
                  what="analyze() MACs vs H*W*C*K by hand"),
        ]
        summary = {"max_abs_diff": worst, "max_abs_output": scale, "tolerance": tol,
                   "per_seed": {r["key"]: r["metrics"]["max_abs_diff"] for r in records}}
        return summary, checks

    def tables(self, records, summary, ctx):
        rows = [[r["seed"], f"{r['metrics']['max_abs_diff']:.3g}", f"{r['metrics']['max_abs_output']:.3g}",
                 f"{r['metrics']['conv_params']:,}", f"{r['metrics']['conv_macs']:,}"] for r in records]
        return [markdown_table(["seed", "max |conv - FC|", "max |output|", "params", "MACs"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, (ax,) = new_figure(width=4.5, height=4.2)
        m = records[0]["metrics"]
        ax.plot(m["sample_fc"], m["sample_conv"], ".", ms=3)
        lo, hi = min(m["sample_fc"]), max(m["sample_fc"])
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
        ax.set_xlabel("FC layer at each pixel")
        ax.set_ylabel("1x1 convolution")
        ax.set_title(f"max |difference| = {summary['max_abs_diff']:.2g}")
        return [save(fig, out, "one_by_one")]


def _one_by_one(run: Run, folder: Path) -> dict:
    from cnnlab.anatomy import analyze

    cfg = run.settings
    c, k, h, n = cfg["in_channels"], cfg["out_channels"], cfg["size"], cfg["batch"]
    g = torch.Generator().manual_seed(run.seed)
    x = torch.randn(n, c, h, h, generator=g, dtype=torch.float64)
    conv = nn.Conv2d(c, k, kernel_size=1).double()
    fc = nn.Linear(c, k).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(k, c, 1, 1, generator=g, dtype=torch.float64))
        conv.bias.copy_(torch.randn(k, generator=g, dtype=torch.float64))
        fc.weight.copy_(conv.weight.reshape(k, c))
        fc.bias.copy_(conv.bias)
        y_conv = conv(x)  # N x K x H x W
        # the FC layer applied to each pixel's C-vector: pixels become rows
        y_fc = fc(x.permute(0, 2, 3, 1).reshape(-1, c)).reshape(n, h, h, k).permute(0, 3, 1, 2)
    diff = (y_conv - y_fc).abs()
    flat_conv, flat_fc = y_conv.flatten(), y_fc.flatten()
    pick = torch.randperm(flat_conv.numel(), generator=g)[:300]
    return {
        "max_abs_diff": float(diff.max()),
        "max_abs_output": float(y_conv.abs().max()),
        "conv_params": sum(p.numel() for p in conv.parameters()),
        "fc_params": sum(p.numel() for p in fc.parameters()),
        "conv_macs": analyze(conv.float(), (c, h, h)).totals["macs"],
        "sample_conv": flat_conv[pick].tolist(),
        "sample_fc": flat_fc[pick].tolist(),
    }


# ---------------------------------------------------------------------------------------
# bottleneck


class NaiveInception(nn.Module):
    """The naive inception module: 1x1, 3x3, 5x5 convolutions and a 3x3 max pool side by
    side on the input, concatenated (Szegedy et al. 2014, Fig. 2a)."""

    def __init__(self, in_chs: int, c1: int = 128, c3: int = 192, c5: int = 96):
        super().__init__()
        self.branch1 = nn.Conv2d(in_chs, c1, 1)
        self.branch3 = nn.Conv2d(in_chs, c3, 3, padding=1)
        self.branch5 = nn.Conv2d(in_chs, c5, 5, padding=2)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_chs = c1 + c3 + c5 + in_chs  # the pool branch passes every input channel on

    def forward(self, x):
        return torch.cat([self.branch1(x).relu(), self.branch3(x).relu(), self.branch5(x).relu(), self.pool(x)], 1)


class ReducedInception(nn.Module):
    """The inception module with 1x1 reductions before the 3x3 and 5x5 convolutions and a
    1x1 projection after the pool (Szegedy et al. 2014, Fig. 2b)."""

    def __init__(self, in_chs: int, c1: int = 128, c3: int = 192, c5: int = 96, r3: int = 64, r5: int = 64,
                 pool_proj: int = 64):
        super().__init__()
        self.branch1 = nn.Conv2d(in_chs, c1, 1)
        self.reduce3 = nn.Conv2d(in_chs, r3, 1)
        self.branch3 = nn.Conv2d(r3, c3, 3, padding=1)
        self.reduce5 = nn.Conv2d(in_chs, r5, 1)
        self.branch5 = nn.Conv2d(r5, c5, 5, padding=2)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.pool_proj = nn.Conv2d(in_chs, pool_proj, 1)
        self.out_chs = c1 + c3 + c5 + pool_proj

    def forward(self, x):
        b3 = self.branch3(self.reduce3(x).relu()).relu()
        b5 = self.branch5(self.reduce5(x).relu()).relu()
        return torch.cat([self.branch1(x).relu(), b3, b5, self.pool_proj(self.pool(x)).relu()], 1)


# The lecture's example, counted by hand (see docs/experiments.md):
#   naive:   28*28*256*(1*1*128 + 3*3*192 + 5*5*96)                       = 854,196,224
#   reduced: 28*28*(256*128 + 256*64 + 64*9*192 + 256*64 + 64*25*96 + 256*64) = 271,351,808
LECTURE_NAIVE_MACS = 854_196_224
LECTURE_REDUCED_MACS = 271_351_808


@register_experiment
class Bottleneck(Experiment):
    name = "bottleneck"
    title = "1x1 bottlenecks cut the cost of the inception module"
    claim = ("On a 28x28x256 input (branches 1x1 128, 3x3 192, 5x5 96, 3x3 pool) the naive inception module "
             "costs 854M multiply-accumulates; 1x1 reductions to 64 channels before the 3x3 and 5x5 "
             "convolutions and after the pool cut that to 271M, and the module runs faster. Stacked naive "
             "modules grow in depth (channels) because the pool branch passes every channel on.")
    source = "Szegedy et al. 2014, Going Deeper with Convolutions (arXiv:1409.4842), Sec. 4 and Fig. 2"
    paper_result = ("the lecture's slide: 854M ops naive; the reduced module's six convolutions sum to "
                    "271,351,808 MACs (the slide prints 358M).")
    scales = {
        "smoke": {"size": 28, "in_channels": 256, "batch": 1, "repeats": 3, "stack": 3},
        "small": {"size": 28, "in_channels": 256, "batch": 8, "repeats": 10, "stack": 4},
        "paper": {"size": 28, "in_channels": 256, "batch": 32, "repeats": 30, "stack": 6},
    }
    default_seeds = {"smoke": 2, "small": 5, "paper": 5}

    def plan(self, ctx):
        runs = [Run("count", "count", 0, dict(ctx.config), compute=_bottleneck_count)]
        for s in ctx.seeds:
            for arm in ("naive", "reduced"):
                runs.append(Run(f"time-{arm}-seed{s}", arm, s, {**ctx.config, "module": arm},
                                compute=_bottleneck_time))
        return runs

    def evaluate(self, records, ctx):
        count = next(r for r in records if r["arm"] == "count")["metrics"]
        times = {arm: summarize([r["metrics"]["seconds_per_batch"] for r in records if r["arm"] == arm])
                 for arm in ("naive", "reduced")}
        example = ctx.config["size"] == 28 and ctx.config["in_channels"] == 256
        checks = []
        if example:
            checks += [
                exact("naive MACs", "the naive module costs 854,196,224 MACs (the lecture's example)",
                      count["naive_macs"], LECTURE_NAIVE_MACS, what="analyze() vs hand count"),
                exact("reduced MACs", "the reduced module costs 271,351,808 MACs",
                      count["reduced_macs"], LECTURE_REDUCED_MACS, what="analyze() vs hand count"),
            ]
        checks.append(holds("fewer MACs", "the 1x1 reductions cut the MACs",
                            count["reduced_macs"] < count["naive_macs"], rule="counted MACs, reduced < naive",
                            evidence=f"reduced/naive = {count['reduced_macs'] / count['naive_macs']:.3f}"))
        checks.append(compare("faster", "the reduced module takes less time per forward batch",
                              times["reduced"], times["naive"], a_label="reduced", b_label="naive",
                              greater=False, metric="ms per batch", scale=1e3))
        stack = count["stack"]
        checks.append(holds("depth growth", "stacked naive modules grow in output channels, reduced ones do not",
                            stack["naive_channels"][-1] > stack["naive_channels"][0]
                            and stack["reduced_channels"][-1] == stack["reduced_channels"][0],
                            rule="output channels of the last stacked module vs the first",
                            evidence=f"naive channels {stack['naive_channels']}, reduced {stack['reduced_channels']}"))
        summary = {**{k: count[k] for k in ("naive_macs", "reduced_macs", "naive_params", "reduced_params",
                                            "naive_branch_macs", "reduced_branch_macs")},
                   "stack": stack, "seconds_per_batch": times,
                   "speedup": times["naive"]["mean"] / times["reduced"]["mean"],
                   "timing": f"forward pass, batch {ctx.config['batch']}, median of {ctx.config['repeats']} "
                             f"repetitions after one warm-up, torch.inference_mode, {torch.get_num_threads()} "
                             "thread(s); one value per seed"}
        return summary, checks

    def tables(self, records, summary, ctx):
        t = summary["seconds_per_batch"]
        rows = [["naive", f"{summary['naive_macs']:,}", f"{summary['naive_params']:,}", fmt(t["naive"], 1e3, unit=" ms")],
                ["1x1 reduced", f"{summary['reduced_macs']:,}", f"{summary['reduced_params']:,}",
                 fmt(t["reduced"], 1e3, unit=" ms")]]
        st = summary["stack"]
        srows = [[i + 1, st["naive_in"][i], f"{st['naive_macs'][i]:,}", st["reduced_in"][i], f"{st['reduced_macs'][i]:,}"]
                 for i in range(len(st["naive_macs"]))]
        return [markdown_table(["module", "MACs (analyze)", "params", "time per batch (mean ± std)"], rows)
                + f"\n\nTiming: {summary['timing']}. Speed-up {summary['speedup']:.2f}x.",
                "Stacked modules (input channels and MACs of each):\n\n"
                + markdown_table(["module #", "naive: in channels", "naive: MACs", "reduced: in channels",
                                  "reduced: MACs"], srows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, (a1, a2) = new_figure(2)
        nb, rb = summary["naive_branch_macs"], summary["reduced_branch_macs"]
        names = list(dict.fromkeys(list(nb) + list(rb)))
        bottom_n = bottom_r = 0
        for name in names:
            a1.bar(0, nb.get(name, 0) / 1e6, bottom=bottom_n, label=name)
            a1.bar(1, rb.get(name, 0) / 1e6, bottom=bottom_r, color=a1.patches[-1].get_facecolor())
            bottom_n += nb.get(name, 0) / 1e6
            bottom_r += rb.get(name, 0) / 1e6
        a1.set_xticks([0, 1], ["naive", "1x1 reduced"])
        a1.set_ylabel("MACs (millions)")
        a1.legend(fontsize=7)
        a1.set_title("one module, 28x28x256 input")
        st = summary["stack"]
        k = range(1, len(st["naive_macs"]) + 1)
        a2.plot(k, [m / 1e9 for m in st["naive_macs"]], "o-", label="naive")
        a2.plot(k, [m / 1e9 for m in st["reduced_macs"]], "s-", label="1x1 reduced")
        a2.set_xlabel("module in the stack")
        a2.set_ylabel("GMACs of the module")
        a2.set_title("stacked modules")
        a2.legend()
        return [save(fig, out, "bottleneck")]


def _branch_macs(anatomy) -> dict[str, int]:
    return {r["name"]: r["macs"] for r in anatomy.leaves() if r["macs"]}


def _bottleneck_count(run: Run, folder: Path) -> dict:
    from cnnlab.anatomy import analyze

    cfg = run.settings
    c, h = cfg["in_channels"], cfg["size"]
    naive, reduced = NaiveInception(c), ReducedInception(c)
    an, ar = analyze(naive, (c, h, h)), analyze(reduced, (c, h, h))
    stack = {"naive_in": [], "naive_macs": [], "naive_channels": [], "reduced_in": [], "reduced_macs": [],
             "reduced_channels": []}
    cn = cr = c
    for _ in range(cfg["stack"]):
        for kind, cls, chs in (("naive", NaiveInception, cn), ("reduced", ReducedInception, cr)):
            m = cls(chs)
            stack[f"{kind}_in"].append(chs)
            stack[f"{kind}_macs"].append(analyze(m, (chs, h, h)).totals["macs"])
            stack[f"{kind}_channels"].append(m.out_chs)
        cn, cr = stack["naive_channels"][-1], stack["reduced_channels"][-1]
    return {"naive_macs": an.totals["macs"], "reduced_macs": ar.totals["macs"],
            "naive_params": an.totals["params"], "reduced_params": ar.totals["params"],
            "naive_branch_macs": _branch_macs(an), "reduced_branch_macs": _branch_macs(ar), "stack": stack}


def _bottleneck_time(run: Run, folder: Path) -> dict:
    cfg = run.settings
    torch.manual_seed(run.seed)
    cls = NaiveInception if cfg["module"] == "naive" else ReducedInception
    m = cls(cfg["in_channels"]).eval()
    x = torch.randn(cfg["batch"], cfg["in_channels"], cfg["size"], cfg["size"])
    times = []
    with torch.inference_mode():
        m(x)  # warm-up
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            m(x)
            times.append(time.perf_counter() - t0)
    return {"seconds_per_batch": statistics.median(times), "all_seconds": times,
            "threads": torch.get_num_threads()}
