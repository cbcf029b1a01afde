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
from cnnlab.experiments.stats import Check, compare, exact, fmt, holds, not_below, summarize

__all__ = ["OneByOne", "Bottleneck", "SmallFilters", "Degradation", "StochasticDepth", "WideVsDeep",
           "NaiveInception", "ReducedInception"]

# Offline datasets: installed with a package, no download (see `cnnlab datasets`).
OFFLINE = ("digits", "mnist_5k", "shapes")
DOWNLOADED = ("mnist", "fashion_mnist", "cifar10", "cifar100")
# "At least as accurate" allows one percentage point of test top-1 (a non-inferiority margin).
ACCURACY_MARGIN = 0.01


def epoch_seconds(record: dict) -> float | None:
    """A training run's time per epoch: its fastest epoch after the first (warm-up) one
    (the only epoch of a one-epoch run).

    The minimum, as ``timeit`` advises: on a shared machine other load only ever adds time,
    so the fastest epoch is the best estimate of the network's own cost.
    """
    epochs = record.get("epochs", [])
    times = [e["epoch_seconds"] for e in (epochs[1:] or epochs) if e.get("epoch_seconds") is not None]
    return min(times) if times else None


def _arm_stats(records: list[dict], metric) -> dict[str, dict]:
    """``{arm: summarize(values over the arm's seeds)}``; ``metric`` names a run metric or is
    a function ``record -> value``."""
    out: dict[str, list[float]] = {}
    for r in records:
        value = metric(r) if callable(metric) else r.get("metrics", {}).get(metric)
        if value is not None:
            out.setdefault(r["arm"], []).append(value)
    return {arm: summarize(v) for arm, v in out.items()}


def _fmt(stats: dict, arm: str, *args, **kwargs) -> str:
    """``fmt`` of one arm's summary, or a dash when the runs did not measure it."""
    return fmt(stats[arm], *args, **kwargs) if arm in stats else "—"


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
    paper_result = ("NiN: the cross-channel parametric pooling layer is equivalent to a convolution layer with a "
                    "1x1 kernel; GoogLeNet uses 1x1 convolutions to reduce dimensions before expensive ones.")
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
        a2.set_xticks(list(k))
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


# ---------------------------------------------------------------------------------------
# small-filters


def _conv_bn_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FilterBlock(nn.Sequential):
    """``n`` stacked k x k convolutions C -> C (each followed by BN and ReLU when ``norm``)."""

    def __init__(self, channels: int, kernel: int, n: int, norm: bool = True):
        layers: list[nn.Module] = []
        for _ in range(n):
            layers += _conv_bn_relu(channels, channels, kernel) if norm else [
                nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)]
        super().__init__(*layers)


class FilterNet(nn.Module):
    """A small classifier around one :class:`FilterBlock`: a 3x3 stem to C channels, the
    block, global average pooling, a linear classifier. Only the block differs between arms."""

    def __init__(self, in_chans: int, num_classes: int, channels: int, kernel: int, n: int):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(in_chans, channels, 3))
        self.block = FilterBlock(channels, kernel, n)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


_SMALL_FILTER_ARMS = {"3x3-x3": (3, 3), "7x7-x1": (7, 1)}


def _dataset_shape(name: str) -> tuple[int, int, int]:
    from cnnlab.data import dataset_info

    info = dataset_info(name)
    return info.channels, info.num_classes, info.image_size[0]


@register_experiment
class SmallFilters(Experiment):
    name = "small-filters"
    title = "Three stacked 3x3 convolutions see what one 7x7 sees, with fewer weights"
    claim = ("A stack of three 3x3 convolutions (C channels in and out) has the receptive field of one 7x7 "
             "convolution with 27C^2 instead of 49C^2 weights and three non-linearities instead of one; "
             "trained in the same network it is more accurate.")
    source = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks (arXiv:1409.1556), Sec. 2.3"
    paper_result = ("VGG's Table 3: replacing pairs of 3x3 layers by single 5x5 layers (net C vs a shallow "
                    "variant of B) raised top-1 error by 7% on ImageNet.")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 4, "paper": 3}
    scales = {
        "smoke": {"channels": 8, "epochs": 1, "batch_size": 128, "recipe": "fast", "train_samples": 512},
        "small": {"channels": 32, "epochs": 8, "batch_size": 64, "recipe": "fast"},
        "paper": {"channels": 128, "epochs": 30, "batch_size": 128, "recipe": "fast"},
    }

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        runs = [Run("anatomy", "anatomy", 0, {"channels": cfg["channels"]}, compute=_small_filter_anatomy)]
        for s in ctx.seeds:
            for arm, (k, n) in _SMALL_FILTER_ARMS.items():
                runs.append(Run(f"{arm}-seed{s}", arm, s, {"kernel": k, "stack": n, **cfg},
                                build=lambda seed, k=k, n=n: FilterNet(in_chans, classes, cfg["channels"], k, n),
                                fit=_fit_options(cfg)))
        return runs

    def evaluate(self, records, ctx):
        c = ctx.config["channels"]
        an = next(r for r in records if r["arm"] == "anatomy")["metrics"]
        acc = _arm_stats(records, "test_top1")
        params = _arm_stats(records, "params")
        checks = [
            exact("receptive field 3x3 stack", "three stacked 3x3 convolutions see 7x7 input pixels",
                  an["3x3-x3"]["receptive_field"], 7, what="analyze() receptive field"),
            exact("receptive field 7x7", "one 7x7 convolution sees 7x7 input pixels",
                  an["7x7-x1"]["receptive_field"], 7, what="analyze() receptive field"),
            exact("weights 3x3 stack", f"the stack has 27C^2 = {27 * c * c:,} weights (C = {c})",
                  an["3x3-x3"]["params"], 27 * c * c, what="analyze() params vs 27C^2 by hand"),
            exact("weights 7x7", f"the 7x7 convolution has 49C^2 = {49 * c * c:,} weights",
                  an["7x7-x1"]["params"], 49 * c * c, what="analyze() params vs 49C^2 by hand"),
            compare("accuracy", "the 3x3 stack's network is more accurate on held-out test data",
                    acc["3x3-x3"], acc["7x7-x1"], a_label="3x3 stack", b_label="7x7", greater=True,
                    metric="test top-1 %", scale=100),
        ]
        summary = {"anatomy": an, "test_top1": acc, "params": params,
                   "train_error": _arm_stats(records, "train_error"),
                   "seconds_per_epoch": _arm_stats(records, epoch_seconds)}
        return summary, checks

    def tables(self, records, summary, ctx):
        an = summary["anatomy"]
        rows = []
        for arm in _SMALL_FILTER_ARMS:
            rows.append([arm, an[arm]["receptive_field"], f"{an[arm]['params']:,}", an[arm]["nonlinearities"],
                         f"{summary['params'][arm]['mean']:,.0f}", _fmt(summary["test_top1"], arm, 100, unit="%"),
                         _fmt(summary["train_error"], arm, 100, unit="%"),
                         _fmt(summary["seconds_per_epoch"], arm, 1, 3, " s")])
        return [markdown_table(["block", "receptive field", "block weights", "ReLUs", "network params",
                                "test top-1", "final train error", "s / epoch"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import errorbar_groups, new_figure, save

        fig, (a1, a2) = new_figure(2)
        arms = list(_SMALL_FILTER_ARMS)
        a1.bar(arms, [summary["anatomy"][a]["params"] for a in arms], color="#c0d6a4", edgecolor="#34495e")
        a1.set_ylabel("weights of the block")
        a1.set_title(f"receptive field 7 in both (C = {ctx.config['channels']})")
        errorbar_groups(a2, arms, [summary["test_top1"][a] for a in arms], scale=100, ylabel="test top-1 (%)")
        a2.set_title(f"{ctx.dataset}: mean, 95% CI, seeds")
        return [save(fig, out, "small_filters")]


def _small_filter_anatomy(run: Run, folder: Path) -> dict:
    from cnnlab.anatomy import analyze

    c = run.settings["channels"]
    out = {}
    for arm, (k, n) in _SMALL_FILTER_ARMS.items():
        a = analyze(FilterBlock(c, k, n, norm=False), (c, 32, 32))
        out[arm] = {"params": a.totals["params"], "receptive_field": a.totals["output_receptive_field"],
                    "macs_32x32": a.totals["macs"], "nonlinearities": n}
    return out


# ---------------------------------------------------------------------------------------
# degradation


def _cifar_resnet(depth: int, width: int, residual: bool, in_chans: int, classes: int, **kwargs):
    """He et al.'s CIFAR network (6n+2 layers, widths w/2w/4w), with option-A shortcuts or none."""
    from cnnlab.models.resnet import ResNet

    n, rest = divmod(depth - 2, 6)
    if rest or n < 1:
        raise ValueError(f"depth must be 6n + 2, got {depth}")
    return ResNet("basic", (n,) * 3, widths=(width, 2 * width, 4 * width), stem="cifar", stem_width=width,
                  shortcut="A" if residual else False, num_classes=classes, in_chans=in_chans, **kwargs)


@register_experiment
class Degradation(Experiment):
    name = "degradation"
    title = "Deeper plain networks train worse; residual connections fix it"
    claim = ("The deepest plain network has a higher TRAINING error than the shallowest one (degradation, not "
             "overfitting), and with residual connections the deepest network trains better than the deepest "
             "plain one and at least as well as the shallowest residual one.")
    source = "He, Zhang, Ren & Sun 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385), Fig. 1 and 6"
    paper_result = ("CIFAR-10: plain-56 has higher training and test error than plain-20 (Fig. 1); ResNet-110/56 "
                    "reach 6.43%/6.97% test error, lower than ResNet-20's 8.75% (Table 6).")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 1, "small": 3, "paper": 3}
    scales = {
        "smoke": {"depths": [8, 14], "width": 4, "epochs": 1, "batch_size": 128, "recipe": "fast",
                  "train_samples": 256},
        "small": {"depths": [8, 20, 44], "width": 8, "epochs": 10, "batch_size": 64, "recipe": "fast"},
        "paper": {"depths": [20, 32, 44, 56], "width": 16, "epochs": 164, "batch_size": 128,
                  "recipe": "resnet_cifar"},
    }
    notes = ("Training error is the trainer's running top-1 error over the last epoch's training batches "
             "(with the recipe's augmentation), as in the paper's training curves.")

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        runs = []
        for s in ctx.seeds:
            for kind in ("plain", "residual"):
                for d in cfg["depths"]:
                    runs.append(Run(f"{kind}{d}-seed{s}", f"{kind}-{d}", s,
                                    {"depth": d, "residual": kind == "residual", **cfg},
                                    build=lambda seed, d=d, r=kind == "residual": _cifar_resnet(
                                        d, cfg["width"], r, in_chans, classes),
                                    fit=_fit_options(cfg)))
        return runs

    def evaluate(self, records, ctx):
        d0, d1 = ctx.config["depths"][0], ctx.config["depths"][-1]
        tr = _arm_stats(records, "train_error")
        te = _arm_stats(records, "test_error")
        checks = [
            compare("plain degrades", f"plain-{d1} has a higher training error than plain-{d0}",
                    tr[f"plain-{d1}"], tr[f"plain-{d0}"], a_label=f"plain-{d1}", b_label=f"plain-{d0}",
                    greater=True, metric="final training error %", scale=100),
            compare("residual fixes it", f"residual-{d1} has a lower training error than plain-{d1}",
                    tr[f"residual-{d1}"], tr[f"plain-{d1}"], a_label=f"residual-{d1}", b_label=f"plain-{d1}",
                    greater=False, metric="final training error %", scale=100),
            compare("residual gains from depth", f"residual-{d1} has a lower training error than residual-{d0}",
                    tr[f"residual-{d1}"], tr[f"residual-{d0}"], a_label=f"residual-{d1}",
                    b_label=f"residual-{d0}", greater=False, metric="final training error %", scale=100),
        ]
        summary = {"train_error": tr, "test_error": te, "params": _arm_stats(records, "params"),
                   "seconds_per_epoch": _arm_stats(records, epoch_seconds),
                   "judged_on": "final training error (the claim is about optimisation, not generalisation)"}
        return summary, checks

    def tables(self, records, summary, ctx):
        rows = []
        for kind in ("plain", "residual"):
            for d in ctx.config["depths"]:
                arm = f"{kind}-{d}"
                rows.append([arm, f"{summary['params'][arm]['mean']:,.0f}", _fmt(summary["train_error"], arm, 100, unit="%"),
                             _fmt(summary["test_error"], arm, 100, unit="%"),
                             _fmt(summary["seconds_per_epoch"], arm, 1, 3, " s")])
        return [markdown_table(["network", "params", "final training error", "test error", "s / epoch"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, axes = new_figure(2)
        for ax, kind in zip(axes, ("plain", "residual")):
            for d in ctx.config["depths"]:
                ep, tr = _mean_curve(records, f"{kind}-{d}", "train_top1")
                line, = ax.plot(ep, [100 * (1 - v) for v in tr], "-", label=f"{kind}-{d}")
                ep, va = _mean_curve(records, f"{kind}-{d}", "val_top1")
                ax.plot(ep, [100 * (1 - v) for v in va], "--", color=line.get_color(), lw=0.8)
            ax.set_xlabel("epoch")
            ax.set_ylabel("error (%)")
            ax.set_title(f"{kind}: training (solid), validation (dashed)\n{ctx.dataset}, mean of {len(ctx.seeds)} seed(s)",
                         fontsize=9)
            ax.legend(fontsize=7)
        return [save(fig, out, "degradation")]


# ---------------------------------------------------------------------------------------
# stochastic-depth


@register_experiment
class StochasticDepth(Experiment):
    name = "stochastic-depth"
    title = "Stochastic depth shortens training"
    claim = ("Dropping whole residual blocks at random during training (survival probability decaying "
             "linearly to p_L = 0.5) cuts the time per training epoch by about a quarter, without losing "
             "test accuracy.")
    source = "Huang, Sun, Liu, Sedra & Weinberger 2016, Deep Networks with Stochastic Depth (arXiv:1603.09382), Sec. 4"
    paper_result = ("ResNet-110 on CIFAR-10 (54 residual blocks, about 40 kept on average): about 25% less "
                    "training time, test error 5.25% vs 6.41% with constant depth.")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 3, "paper": 3}
    scales = {
        "smoke": {"depth": 14, "width": 4, "p_L": 0.5, "epochs": 2, "batch_size": 128, "recipe": "fast",
                  "train_samples": 256},
        "small": {"depth": 56, "width": 8, "p_L": 0.5, "epochs": 8, "batch_size": 64, "recipe": "fast"},
        "paper": {"depth": 110, "width": 16, "p_L": 0.5, "epochs": 500, "batch_size": 128,
                  "recipe": "stochastic_depth"},
    }
    notes = ("Time per epoch is a run's fastest epoch after the first (the trainer's wall-clock epoch times; "
             "other load on a shared machine only adds time); the two arms alternate run by run.")

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        runs = []
        for s in ctx.seeds:
            for arm, rate in (("constant-depth", 0.0), ("stochastic-depth", cfg["p_L"])):
                runs.append(Run(f"{arm}-seed{s}", arm, s, {"drop_path_rate": rate, **cfg},
                                build=lambda seed, rate=rate: _cifar_resnet(cfg["depth"], cfg["width"], True, in_chans,
                                                                            classes, drop_path_rate=rate),
                                fit=_fit_options(cfg)))
        return runs

    def evaluate(self, records, ctx):
        t = _arm_stats(records, epoch_seconds)
        acc = _arm_stats(records, "test_top1")
        n_blocks = 3 * ((ctx.config["depth"] - 2) // 6)
        from cnnlab.models.resnet import survival_probabilities

        expected_kept = sum(survival_probabilities(n_blocks, ctx.config["p_L"])) / n_blocks
        checks = [
            compare("faster", "an epoch with stochastic depth takes less time",
                    t["stochastic-depth"], t["constant-depth"], a_label="stochastic depth",
                    b_label="constant depth", greater=False, metric="seconds per epoch", unit=" s"),
            not_below("no accuracy lost", "stochastic depth is at least as accurate on test data",
                      acc["stochastic-depth"], acc["constant-depth"], a_label="stochastic depth",
                      b_label="constant depth", margin=ACCURACY_MARGIN, metric="test top-1 %", scale=100),
        ]
        saving = 1 - t["stochastic-depth"]["mean"] / t["constant-depth"]["mean"]
        summary = {"seconds_per_epoch": t, "test_top1": acc, "train_error": _arm_stats(records, "train_error"),
                   "time_saving": saving, "expected_fraction_of_blocks_kept": expected_kept}
        return summary, checks

    def tables(self, records, summary, ctx):
        rows = [[arm, _fmt(summary["seconds_per_epoch"], arm, 1, 3, " s"), _fmt(summary["test_top1"], arm, 100, unit="%"),
                 _fmt(summary["train_error"], arm, 100, unit="%")] for arm in ("constant-depth", "stochastic-depth")]
        return [markdown_table(["training", "s / epoch", "test top-1", "final train error"], rows)
                + f"\n\nMeasured time saving: {100 * summary['time_saving']:.1f}%; blocks kept on average by the "
                  f"linear rule: {100 * summary['expected_fraction_of_blocks_kept']:.1f}% (the saving's upper bound "
                  "for the blocks' share of the time)."]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import errorbar_groups, new_figure, save

        arms = ["constant-depth", "stochastic-depth"]
        fig, (a1, a2) = new_figure(2)
        errorbar_groups(a1, arms, [summary["seconds_per_epoch"][a] for a in arms], ylabel="seconds per epoch")
        errorbar_groups(a2, arms, [summary["test_top1"][a] for a in arms], scale=100, ylabel="test top-1 (%)")
        a1.set_title(f"ResNet-{ctx.config['depth']} on {ctx.dataset}")
        return [save(fig, out, "stochastic_depth")]


# ---------------------------------------------------------------------------------------
# wide-vs-deep


def _wrn(depth: int, k: int, base: int, in_chans: int, classes: int):
    """WRN-depth-k (pre-activation, (depth-4)/6 blocks per group) with base widths base/2base/4base."""
    from cnnlab.models.resnet import ResNet

    n, rest = divmod(depth - 4, 6)
    if rest or n < 1:
        raise ValueError(f"a wide ResNet needs depth = 6n + 4, got {depth}")
    return ResNet("basic", (n,) * 3, widths=(base, 2 * base, 4 * base), widen_factor=k, preact=True, stem="cifar",
                  stem_width=base, shortcut="B", num_classes=classes, in_chans=in_chans)


def _matching_width(deep_params: int, depth: int, base: int, in_chans: int, classes: int) -> tuple[int, int]:
    """The widen factor k whose WRN-depth-k has the parameter count closest to ``deep_params``."""
    from cnnlab.anatomy import analyze

    best = None
    for k in range(1, 33):
        p = analyze(_wrn(depth, k, base, in_chans, classes), (in_chans, 8, 8)).totals["params"]
        if best is None or abs(p - deep_params) < abs(best[1] - deep_params):
            best = (k, p)
        if p > deep_params:
            break
    return best


@register_experiment
class WideVsDeep(Experiment):
    name = "wide-vs-deep"
    title = "A wide shallow ResNet beats a thin deep one per unit of time"
    claim = ("Of two residual networks with about the same number of parameters, the wide shallow one trains "
             "faster per epoch and is at least as accurate as the thin deep one.")
    source = "Zagoruyko & Komodakis 2016, Wide Residual Networks (arXiv:1605.07146), Sec. 3 and Table 4"
    paper_result = ("CIFAR-10: WRN-40-4 (8.9M params) 4.97% error vs ResNet-1001 (10.2M) 4.92%, trained 8x "
                    "faster; WRN-16-4 (2.7M) 5.02% vs ResNet-164 (1.7M) 5.46%.")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 3, "paper": 3}
    scales = {
        "smoke": {"deep_depth": 16, "wide_depth": 10, "base": 4, "epochs": 2, "batch_size": 128,
                  "recipe": "fast", "train_samples": 256},
        "small": {"deep_depth": 40, "wide_depth": 10, "base": 8, "epochs": 8, "batch_size": 64, "recipe": "fast"},
        "paper": {"deep_depth": 100, "wide_depth": 16, "base": 16, "epochs": 200, "batch_size": 128,
                  "recipe": "wide_resnet"},
    }
    notes = ("The wide network's widen factor is chosen by the experiment as the one whose parameter count "
             "(counted by analyze) is closest to the deep, k = 1 network's; time per epoch is a run's fastest "
             "epoch after the first.")

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        from cnnlab.anatomy import analyze

        deep_params = analyze(_wrn(cfg["deep_depth"], 1, cfg["base"], in_chans, classes), (in_chans, 8, 8)).totals["params"]
        k, _ = _matching_width(deep_params, cfg["wide_depth"], cfg["base"], in_chans, classes)
        arms = {f"deep WRN-{cfg['deep_depth']}-1": (cfg["deep_depth"], 1),
                f"wide WRN-{cfg['wide_depth']}-{k}": (cfg["wide_depth"], k)}
        runs = []
        for s in ctx.seeds:
            for arm, (d, kk) in arms.items():
                runs.append(Run(f"{arm.split()[0]}-seed{s}", arm, s, {"depth": d, "widen_factor": kk, **cfg},
                                build=lambda seed, d=d, kk=kk: _wrn(d, kk, cfg["base"], in_chans, classes),
                                fit=_fit_options(cfg)))
        return runs

    def evaluate(self, records, ctx):
        t = _arm_stats(records, epoch_seconds)
        acc = _arm_stats(records, "test_top1")
        deep = next(a for a in t if a.startswith("deep"))
        wide = next(a for a in t if a.startswith("wide"))
        checks = [
            compare("faster", "the wide network takes less time per epoch", t[wide], t[deep], a_label="wide",
                    b_label="deep", greater=False, metric="seconds per epoch", unit=" s"),
            not_below("as accurate", "the wide network is at least as accurate on test data", acc[wide], acc[deep],
                      a_label="wide", b_label="deep", margin=ACCURACY_MARGIN, metric="test top-1 %", scale=100),
        ]
        summary = {"arms": [deep, wide], "seconds_per_epoch": t, "test_top1": acc,
                   "params": _arm_stats(records, "params"), "macs": _arm_stats(records, "macs"),
                   "train_error": _arm_stats(records, "train_error")}
        return summary, checks

    def tables(self, records, summary, ctx):
        rows = [[arm, f"{summary['params'][arm]['mean']:,.0f}", f"{summary['macs'][arm]['mean']:,.0f}",
                 _fmt(summary["seconds_per_epoch"], arm, 1, 3, " s"), _fmt(summary["test_top1"], arm, 100, unit="%"),
                 _fmt(summary["train_error"], arm, 100, unit="%")] for arm in summary["arms"]]
        return [markdown_table(["network", "params", "MACs / image", "s / epoch", "test top-1", "final train error"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, (ax,) = new_figure(width=5.5)
        for arm, marker in zip(summary["arms"], "os"):
            for r in records:
                if r["arm"] == arm:
                    ax.plot(epoch_seconds(r), 100 * r["metrics"]["test_top1"], marker, color="C0" if marker == "o" else "C1")
            ax.plot([], [], marker, color="C0" if marker == "o" else "C1", label=arm)
        ax.set_xlabel("seconds per epoch")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{ctx.dataset}: one point per seed")
        ax.legend()
        return [save(fig, out, "wide_vs_deep")]


# ---------------------------------------------------------------------------------------
# ensemble


def _ensemble_members(cfg: dict, in_chans: int, classes: int) -> dict:
    """Three different networks: the 3x3 VGG-like net, a CIFAR ResNet, a wide ResNet."""
    w = cfg["width"]
    return {
        "vgg-like": lambda seed: FilterNet(in_chans, classes, 4 * w, 3, 3),
        f"resnet-{cfg['resnet_depth']}": lambda seed: _cifar_resnet(cfg["resnet_depth"], w, True, in_chans, classes),
        "wrn-10-2": lambda seed: _wrn(10, 2, w, in_chans, classes),
    }


def _ensemble(run: Run, folder: Path) -> dict:
    """Average the members' softmax over the test set (Shao et al.'s fusion, unweighted)."""
    probs, labels = [], None
    for key in run.settings["members"]:
        saved = torch.load(folder.parent / key / "test_probs.pt")
        if labels is not None and not torch.equal(labels, saved["labels"]):
            raise RuntimeError(f"member {key} was tested on other labels")
        labels = saved["labels"]
        probs.append(saved["probs"])
    mean = torch.stack(probs).mean(0)
    member_top1 = {k: float((p.argmax(1) == labels).double().mean()) for k, p in zip(run.settings["members"], probs)}
    return {"test_top1": float((mean.argmax(1) == labels).double().mean()), "member_test_top1": member_top1,
            "test_samples": int(labels.numel())}


@register_experiment
class Ensemble(Experiment):
    name = "ensemble"
    title = "An ensemble of different networks beats each of them"
    claim = ("Averaging the softmax outputs of several different trained networks gives a higher test accuracy "
             "than any one of them.")
    source = ("Shao et al. 2016 (ILSVRC'16 winner 'Trimps-Soushen', feature/score fusion); Krizhevsky et al. 2012 "
              "and Szegedy et al. 2014 also report ensembles")
    paper_result = ("ILSVRC 2016 classification: the fused ensemble of Inception, Inception-ResNet, ResNet and Wide "
                    "ResNet models reached 2.99% top-5 error, below each single model.")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 3, "paper": 3}
    scales = {
        "smoke": {"width": 4, "resnet_depth": 8, "epochs": 1, "batch_size": 128, "recipe": "fast",
                  "train_samples": 256},
        "small": {"width": 8, "resnet_depth": 20, "epochs": 8, "batch_size": 64, "recipe": "fast"},
        "paper": {"width": 16, "resnet_depth": 56, "epochs": 100, "batch_size": 128, "recipe": "fast"},
    }
    notes = "The ensemble is formed once per seed from the members trained with that seed; no weights are tuned."

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        runs = []
        for s in ctx.seeds:
            keys = []
            for arm, build in _ensemble_members(cfg, in_chans, classes).items():
                keys.append(f"{arm}-seed{s}")
                runs.append(Run(keys[-1], arm, s, {"member": arm, **cfg}, build=build, fit=_fit_options(cfg),
                                keep_test_outputs=True))
            runs.append(Run(f"ensemble-seed{s}", "ensemble", s, {"members": keys}, compute=_ensemble))
        return runs

    def evaluate(self, records, ctx):
        acc = _arm_stats(records, "test_top1")
        members = [a for a in acc if a != "ensemble"]
        checks = [compare(f"beats {m}", f"the ensemble is more accurate than {m}", acc["ensemble"], acc[m],
                          a_label="ensemble", b_label=m, greater=True, metric="test top-1 %", scale=100)
                  for m in members]
        return {"test_top1": acc, "members": members, "params": _arm_stats(records, "params")}, checks

    def tables(self, records, summary, ctx):
        rows = [[m, f"{summary['params'][m]['mean']:,.0f}", _fmt(summary["test_top1"], m, 100, unit="%")]
                for m in summary["members"]]
        total = sum(summary["params"][m]["mean"] for m in summary["members"])
        rows.append(["ensemble (mean softmax)", f"{total:,.0f}", fmt(summary["test_top1"]["ensemble"], 100, unit="%")])
        return [markdown_table(["network", "params", "test top-1"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import errorbar_groups, new_figure, save

        arms = summary["members"] + ["ensemble"]
        fig, (ax,) = new_figure(width=5.5)
        errorbar_groups(ax, arms, [summary["test_top1"][a] for a in arms], scale=100, ylabel="test top-1 (%)")
        ax.set_title(f"{ctx.dataset}: mean, 95% CI, seeds")
        return [save(fig, out, "ensemble")]


# ---------------------------------------------------------------------------------------
# aux-heads


class AuxPlainNet(nn.Module):
    """A plain (no shortcut) CIFAR-style network of 3 stages with ``n`` 3x3 conv layers each,
    and optionally a GoogLeNet-style auxiliary classifier after stage 2 (average pool, 1x1
    conv, FC): in training mode it returns ``AuxOutput(logits, (aux,))`` and the trainer
    adds ``aux_weight * CE(aux)`` to the loss; in eval mode the head is unused."""

    def __init__(self, in_chans: int, classes: int, width: int, n: int, aux: bool, aux_weight: float = 0.3):
        super().__init__()
        w = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(*_conv_bn_relu(in_chans, w[0], 3))
        stages = []
        cin = w[0]
        for i, c in enumerate(w):
            layers = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers += [nn.Conv2d(cin, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
                cin = c
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3 = stages
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w[2], classes))
        self.aux_head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Conv2d(w[1], w[1], 1), nn.ReLU(inplace=True),
                                      nn.Flatten(), nn.Linear(4 * w[1], classes)) if aux else None
        self.aux_loss_weights = (aux_weight,) if aux else ()

    def forward(self, x):
        from cnnlab.models.base import AuxOutput

        mid = self.stage2(self.stage1(self.stem(x)))
        logits = self.head(self.stage3(mid))
        if self.aux_head is not None and self.training:
            return AuxOutput(logits, (self.aux_head(mid),))
        return logits


@register_experiment
class AuxHeads(Experiment):
    name = "aux-heads"
    title = "Auxiliary classifiers inject gradient into a deep network"
    claim = ("A deep plain network trained with a GoogLeNet-style auxiliary classifier (loss weight 0.3) half-way "
             "up reaches a lower training error and a higher test accuracy than the same network without it.")
    source = ("Szegedy et al. 2014, Going Deeper with Convolutions (arXiv:1409.4842), Sec. 5; Szegedy et al. 2015 "
              "(Inception-v3, arXiv:1512.00567) Sec. 4 found they act mostly as regularizers")
    paper_result = ("GoogLeNet: the auxiliary heads' effect was 'relatively minor (around 0.5%)'; Inception-v3: "
                    "no faster early convergence, slightly better accuracy at the end of training.")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 3, "paper": 3}
    scales = {
        "smoke": {"width": 4, "layers_per_stage": 2, "epochs": 1, "batch_size": 128, "recipe": "fast",
                  "train_samples": 256},
        "small": {"width": 8, "layers_per_stage": 6, "epochs": 8, "batch_size": 64, "recipe": "fast"},
        "paper": {"width": 16, "layers_per_stage": 9, "epochs": 100, "batch_size": 128, "recipe": "fast"},
    }
    notes = "Both arms evaluate the same network without the auxiliary head (it is used in training only)."

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        runs = []
        for s in ctx.seeds:
            for arm, aux in (("without aux", False), ("with aux", True)):
                runs.append(Run(f"{'aux' if aux else 'noaux'}-seed{s}", arm, s, {"aux": aux, **cfg},
                                build=lambda seed, aux=aux: AuxPlainNet(in_chans, classes, cfg["width"],
                                                                        cfg["layers_per_stage"], aux),
                                fit=_fit_options(cfg)))
        return runs

    def evaluate(self, records, ctx):
        tr = _arm_stats(records, "train_error")
        acc = _arm_stats(records, "test_top1")
        checks = [
            compare("lower training error", "with the auxiliary head the training error is lower",
                    tr["with aux"], tr["without aux"], a_label="with aux", b_label="without", greater=False,
                    metric="final training error %", scale=100),
            compare("higher test accuracy", "with the auxiliary head the test accuracy is higher",
                    acc["with aux"], acc["without aux"], a_label="with aux", b_label="without", greater=True,
                    metric="test top-1 %", scale=100),
        ]
        return {"train_error": tr, "test_top1": acc, "depth": 3 * ctx.config["layers_per_stage"] + 2}, checks

    def tables(self, records, summary, ctx):
        rows = [[arm, _fmt(summary["train_error"], arm, 100, unit="%"), _fmt(summary["test_top1"], arm, 100, unit="%")]
                for arm in ("without aux", "with aux")]
        return [f"A plain network of {summary['depth']} weight layers.\n\n"
                + markdown_table(["training", "final training error", "test top-1"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, (ax,) = new_figure(width=5.5)
        for arm in ("without aux", "with aux"):
            ep, tr = _mean_curve(records, arm, "train_top1")
            ax.plot(ep, [100 * (1 - v) for v in tr], "-o", ms=3, label=arm)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training error (%)")
        ax.set_title(f"plain-{summary['depth']} on {ctx.dataset}, mean of {len(ctx.seeds)} seed(s)")
        ax.legend()
        return [save(fig, out, "aux_heads")]


# ---------------------------------------------------------------------------------------
# dense-efficiency


def _densenet_bc(depth: int, growth: int, in_chans: int, classes: int):
    """CIFAR DenseNet-BC of ``depth`` (3 blocks of (depth-4)/6 bottleneck layers), growth rate ``growth``."""
    from cnnlab.models.densenet import DenseNet

    n, rest = divmod(depth - 4, 6)
    if rest or n < 1:
        raise ValueError(f"a DenseNet-BC needs depth = 6n + 4, got {depth}")
    return DenseNet(growth, (n, n, n), 2 * growth, stem="cifar", num_classes=classes, in_chans=in_chans)


@register_experiment
class DenseEfficiency(Experiment):
    name = "dense-efficiency"
    title = "Dense connectivity is parameter-efficient"
    claim = ("A DenseNet-BC reaches at least the test accuracy of a ResNet that has several times more "
             "parameters.")
    source = "Huang, Liu, van der Maaten & Weinberger 2017, Densely Connected Convolutional Networks (arXiv:1608.06993), Sec. 4.3 and Fig. 4"
    paper_result = ("CIFAR-10+: DenseNet-BC-100 (k=12, 0.8M params) 4.51% error vs pre-activation ResNet-1001 "
                    "(10.2M) 4.62%; on ImageNet DenseNet-201 (20M) matches ResNet-101 (44.5M).")
    datasets = OFFLINE + DOWNLOADED
    default_dataset = {"smoke": "digits", "small": "digits", "paper": "cifar10"}
    default_seeds = {"smoke": 2, "small": 3, "paper": 3}
    scales = {
        "smoke": {"dense_depth": 16, "growth": 4, "resnet_depth": 8, "resnet_width": 8, "epochs": 1,
                  "batch_size": 128, "recipe": "fast", "train_samples": 256},
        "small": {"dense_depth": 40, "growth": 8, "resnet_depth": 20, "resnet_width": 16, "epochs": 8,
                  "batch_size": 64, "recipe": "fast"},
        "paper": {"dense_depth": 100, "growth": 12, "resnet_depth": 110, "resnet_width": 16, "epochs": 300,
                  "batch_size": 64, "recipe": "densenet_cifar"},
    }

    def plan(self, ctx):
        cfg = ctx.config
        in_chans, classes, _ = _dataset_shape(ctx.dataset)
        arms = {
            f"densenet-bc-{cfg['dense_depth']}-k{cfg['growth']}":
                lambda seed: _densenet_bc(cfg["dense_depth"], cfg["growth"], in_chans, classes),
            f"resnet-{cfg['resnet_depth']}-w{cfg['resnet_width']}":
                lambda seed: _cifar_resnet(cfg["resnet_depth"], cfg["resnet_width"], True, in_chans, classes),
        }
        return [Run(f"{arm.split('-')[0]}-seed{s}", arm, s, {"network": arm, **cfg}, build=build,
                    fit=_fit_options(cfg)) for s in ctx.seeds for arm, build in arms.items()]

    def evaluate(self, records, ctx):
        acc = _arm_stats(records, "test_top1")
        params = _arm_stats(records, "params")
        dense = next(a for a in acc if a.startswith("densenet"))
        res = next(a for a in acc if a.startswith("resnet"))
        ratio = params[res]["mean"] / params[dense]["mean"]
        checks = [
            holds("fewer parameters", "the DenseNet-BC has fewer parameters", params[dense]["mean"] < params[res]["mean"],
                  rule="parameters counted by analyze()",
                  evidence=f"{dense} {params[dense]['mean']:,.0f}, {res} {params[res]['mean']:,.0f} ({ratio:.1f}x)"),
            not_below("as accurate", "the DenseNet-BC is at least as accurate on test data", acc[dense], acc[res],
                      a_label=dense, b_label=res, margin=ACCURACY_MARGIN, metric="test top-1 %", scale=100),
        ]
        return {"arms": [dense, res], "test_top1": acc, "params": params, "param_ratio": ratio,
                "seconds_per_epoch": _arm_stats(records, epoch_seconds),
                "macs": _arm_stats(records, "macs")}, checks

    def tables(self, records, summary, ctx):
        rows = [[a, f"{summary['params'][a]['mean']:,.0f}", f"{summary['macs'][a]['mean']:,.0f}",
                 _fmt(summary["test_top1"], a, 100, unit="%"), _fmt(summary["seconds_per_epoch"], a, 1, 3, " s")]
                for a in summary["arms"]]
        return [markdown_table(["network", "params", "MACs / image", "test top-1", "s / epoch"], rows)]

    def figures(self, records, summary, ctx, out):
        from cnnlab.experiments.plots import new_figure, save

        fig, (ax,) = new_figure(width=5.5)
        for i, arm in enumerate(summary["arms"]):
            xs = [r["metrics"]["params"] for r in records if r["arm"] == arm]
            ys = [100 * r["metrics"]["test_top1"] for r in records if r["arm"] == arm]
            ax.plot(xs, ys, "os"[i], color=f"C{i}", label=arm, alpha=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{ctx.dataset}: one point per seed")
        ax.legend()
        return [save(fig, out, "dense_efficiency")]
