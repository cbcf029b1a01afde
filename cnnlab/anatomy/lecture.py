"""The lecture's worked calculations, recomputed by building the modules and analyzing them.

Each example returns ``(data, text)``: a JSON-able dict and the lecture-style
explanation. Where the lecture's own figure differs from the computed one, the text
says so and ``data["lecture_differs"]`` explains it.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cnnlab.anatomy.core import analyze

__all__ = ["EXAMPLES", "run_example", "NaiveInception", "BottleneckInception", "vgg16_stack"]


def _weights(module: nn.Module) -> int:
    """Parameters without biases, as the lecture counts them."""
    return sum(p.numel() for n, p in module.named_parameters() if not n.endswith("bias"))


# ---------------------------------------------------------------------------
# alexnet-conv1
# ---------------------------------------------------------------------------

def alexnet_conv1() -> tuple[dict, str]:
    stem = nn.Sequential()
    stem.add_module("conv1", nn.Conv2d(3, 96, kernel_size=11, stride=4))
    stem.add_module("pool1", nn.MaxPool2d(kernel_size=3, stride=2))
    a = analyze(stem, (3, 227, 227), training_estimate=False)
    conv, pool = a["conv1"], a["pool1"]
    data = {
        "input": [227, 227, 3],
        "conv1": {"output_volume": conv["output_shape"][1:], "weights": _weights(stem.conv1),
                  "params_with_bias": conv["params"], "macs": conv["macs"], "receptive_field": conv["receptive_field"]},
        "pool1": {"output_volume": pool["output_shape"][1:], "params": pool["params"],
                  "receptive_field": pool["receptive_field"]},
    }
    c, h, w = conv["output_shape"][1:]
    text = "\n".join([
        "AlexNet CONV1: 96 filters of 11x11x3 at stride 4, pad 0, on a 227x227x3 input",
        f"  output volume: (227 - 11)/4 + 1 = {h}  ->  [{h}x{w}x{c}]",
        f"  weights: (11*11*3)*96 = {data['conv1']['weights']:,} (the lecture's ~35K); with the 96 biases "
        f"{conv['params']:,}",
        f"  MACs: {h}*{w}*{c} outputs x 11*11*3 = {conv['macs']:,}",
        f"  receptive field: {conv['receptive_field']} px, jump {conv['rf_jump']}",
        f"POOL1: 3x3 at stride 2  ->  [{'x'.join(map(str, pool['output_shape'][2:] + pool['output_shape'][1:2]))}], "
        f"{pool['params']} params, receptive field {pool['receptive_field']} px",
    ])
    return data, text


# ---------------------------------------------------------------------------
# vgg16-memory
# ---------------------------------------------------------------------------

# VGG16 (configuration D) as the lecture's table lists it: conv widths, "M" = 2x2 max pool.
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_stack() -> nn.Module:
    """The lecture's VGG16 as a plain stack (used when the registry's ``vgg16`` is absent)."""
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG16_CONFIG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    classifier = [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True),
                  nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000)]
    return nn.Sequential(nn.Sequential(*layers), nn.Sequential(*classifier))


def _vgg16_model() -> tuple[nn.Module, str]:
    from cnnlab.registry import create_model, is_model

    if is_model("vgg16"):
        with torch.device("meta"):
            return create_model("vgg16"), "registry model vgg16"
    with torch.device("meta"):
        return vgg16_stack(), "a plain VGG16 stack (the registry has no vgg16 yet)"


LECTURE_VGG16_TOTAL = 24_000_000  # "TOTAL memory: 24M * 4 bytes ~ 96MB / image"


def vgg16_memory() -> tuple[dict, str]:
    model, source = _vgg16_model()
    a = analyze(model, (3, 224, 224), training_estimate=False)
    modules = dict(model.named_modules())
    table = [{"layer": "INPUT", "volume": [224, 224, 3], "memory": 224 * 224 * 3, "params": 0}]
    for r in a.leaves():
        if r["type"] not in ("Conv2d", "MaxPool2d", "Linear"):
            continue
        label = {"Conv2d": f"CONV3-{r['output_shape'][1]}", "MaxPool2d": "POOL2", "Linear": "FC"}[r["type"]]
        shape = r["output_shape"][1:]
        volume = [shape[1], shape[2], shape[0]] if len(shape) == 3 else [1, 1, shape[0]]
        table.append({"layer": label, "name": r["name"], "volume": volume, "memory": r["activations"],
                      "params": _weights(modules[r["name"]])})
    total_memory = sum(row["memory"] for row in table)
    total_params = sum(row["params"] for row in table)
    b = a.breakdown()
    early = sum(row["memory"] for row in table[:8])  # INPUT .. POOL2 after the 128-wide convs
    fc_params = sum(row["params"] for row in table if row["layer"] == "FC")
    data = {
        "source": source,
        "table": table,
        "total_memory_values": total_memory,
        "total_memory_bytes_fp32": 4 * total_memory,
        "total_params_without_biases": total_params,
        "total_params": a.totals["params"],
        "forward_values_with_input": a.totals["forward_values_with_input"],
        "lecture_total_memory": LECTURE_VGG16_TOTAL,
        "lecture_differs": (
            f"the lecture's 'TOTAL memory: 24M * 4 bytes ~ 96MB / image' is a miscount of its own table: "
            f"its rows sum to {total_memory:,} values (~{4 * total_memory / 1e6:.0f} MB at fp32)"
        ),
        "memory_in_first_layers_pct": 100 * early / total_memory,
        "params_in_fc_pct": 100 * fc_params / total_params,
        "breakdown": b,
    }
    lines = [f"VGG16 at 224x224x3 ({source}); memory = values in each layer's output per image, "
             "params without biases, as in the lecture", ""]
    lines.append(f"{'layer':<10} {'volume':>14} {'memory':>12} {'params':>13}")
    for row in table:
        vol = "[" + "x".join(map(str, row["volume"])) + "]"
        lines.append(f"{row['layer']:<10} {vol:>14} {row['memory']:>12,} {row['params']:>13,}")
    lines += [
        "",
        f"TOTAL memory: {total_memory:,} values x 4 bytes = {4 * total_memory / 1e6:.1f} MB / image (forward)",
        f"  (the lecture prints '24M * 4 bytes ~ 96MB': a miscount of its own table, whose rows sum to "
        f"{total_memory / 1e6:.1f}M values)",
        f"TOTAL params: {total_params:,} without biases ({a.totals['params']:,} with), ~138M as in the lecture",
        f"Most memory is in the early CONV layers: {data['memory_in_first_layers_pct']:.0f}% in the input and the "
        "first four convs with their two pools",
        f"Most params are in the late FC layers: {data['params_in_fc_pct']:.0f}% in the three FCs "
        f"(FC6 alone {table[-3]['params']:,})",
    ]
    if a.totals["forward_values_with_input"] != total_memory:
        lines.append(f"(The model's own forward writes {a.totals['forward_values_with_input']:,} values: "
                     "layers outside the lecture's table, such as torchvision's adaptive average pool, add to it.)")
    return data, "\n".join(lines)


# ---------------------------------------------------------------------------
# stacked-3x3
# ---------------------------------------------------------------------------

def stacked_3x3(channels: int = 64, size: int = 56) -> tuple[dict, str]:
    stacked = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Sequential(nn.Conv2d(channels, channels, 7, padding=3, bias=False))
    s = analyze(stacked, (channels, size, size), training_estimate=False)
    o = analyze(single, (channels, size, size), training_estimate=False)
    c2 = channels * channels
    data = {
        "channels": channels,
        "input": [size, size, channels],
        "stacked_3x3": {"receptive_field": s.totals["receptive_field"], "params": s.totals["params"],
                        "params_over_C2": s.totals["params"] / c2, "macs": s.totals["macs"],
                        "rf_per_layer": [r["receptive_field"] for r in s.leaves()]},
        "single_7x7": {"receptive_field": o.totals["receptive_field"], "params": o.totals["params"],
                       "params_over_C2": o.totals["params"] / c2, "macs": o.totals["macs"]},
    }
    text = "\n".join([
        f"Three 3x3 convs (stride 1) vs one 7x7 conv, {channels} channels in and out, on {size}x{size}:",
        f"  receptive field after each 3x3 conv: {', '.join(map(str, data['stacked_3x3']['rf_per_layer']))}"
        f" -> the stack sees {data['stacked_3x3']['receptive_field']}x{data['stacked_3x3']['receptive_field']}, "
        f"like the 7x7 ({data['single_7x7']['receptive_field']})",
        f"  weights: 3 x (3*3*C*C) = 27C^2 = {s.totals['params']:,}  vs  7*7*C*C = 49C^2 = {o.totals['params']:,}",
        f"  MACs: {s.totals['macs']:,} vs {o.totals['macs']:,} ({o.totals['macs'] / s.totals['macs']:.2f}x more for "
        "the 7x7); with a ReLU after each conv the stack is also more nonlinear",
    ])
    return data, text


# ---------------------------------------------------------------------------
# inception-cost
# ---------------------------------------------------------------------------

class _Branches(nn.Module):
    """Parallel branches whose outputs are concatenated along the channels."""

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class NaiveInception(_Branches):
    """The lecture's naive module: 1x1, 3x3 and 5x5 convs and a 3x3 max pool, side by side."""

    def __init__(self, in_chs=256, c1=128, c3=192, c5=96):
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_chs, c1, 1)
        self.conv3x3 = nn.Conv2d(in_chs, c3, 3, padding=1)
        self.conv5x5 = nn.Conv2d(in_chs, c5, 5, padding=2)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)


class BottleneckInception(_Branches):
    """The same branches with 1x1 reductions before the 3x3 and 5x5 and after the pool."""

    def __init__(self, in_chs=256, c1=128, c3=192, c5=96, reduce=64, pool_proj=64):
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_chs, c1, 1)
        self.conv3x3 = nn.Sequential(nn.Conv2d(in_chs, reduce, 1), nn.Conv2d(reduce, c3, 3, padding=1))
        self.conv5x5 = nn.Sequential(nn.Conv2d(in_chs, reduce, 1), nn.Conv2d(reduce, c5, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_chs, pool_proj, 1))


LECTURE_BOTTLENECK_MACS = 358_000_000  # the slide's "Total: 358M ops"
LECTURE_NAIVE_MACS = 854_000_000  # the slide's "Total: 854M ops"


def _inception_summary(module: nn.Module) -> dict:
    a = analyze(module, (256, 28, 28), training_estimate=False)
    branches = {}
    for r in a.layers:
        if r["depth"] == 1 and r["kind"] == "module":
            convs = [c for c in a.layers if c["type"] == "Conv2d" and (c["name"] == r["name"] or c["parent"] == r["name"])]
            branches[r["name"]] = {"macs": r["macs"], "output_shape": r["output_shape"],
                                   "convs": {c["name"]: c["macs"] for c in convs}}
    return {"macs": a.totals["macs"], "output_shape": a.layers[-1]["output_shape"], "branches": branches,
            "params": a.totals["params"], "pool_ops": a.totals["ops"]["pool"]}


def inception_cost() -> tuple[dict, str]:
    naive = _inception_summary(NaiveInception())
    bottleneck = _inception_summary(BottleneckInception())
    conv3x3_term = bottleneck["branches"]["conv3x3"]["convs"]["conv3x3.1"]
    data = {
        "input": [28, 28, 256],
        "naive": naive,
        "bottleneck": bottleneck,
        "ratio": naive["macs"] / bottleneck["macs"],
        "lecture": {"naive": LECTURE_NAIVE_MACS, "bottleneck": LECTURE_BOTTLENECK_MACS},
        "lecture_differs": (
            f"the slide's 'Total: 358M ops' for the bottleneck module is a miscalculation: its six listed convs "
            f"sum to {bottleneck['macs']:,}. 358M is what one gets by counting the 3x3 conv's "
            f"{conv3x3_term:,} twice ({bottleneck['macs'] + conv3x3_term:,})"
        ),
    }
    lines = ["Inception module on a 28x28x256 input; MACs of each branch's convs (pooling is not a MAC; "
             "it reads each input value 9 times)", ""]
    for label, summary in (("Naive", naive), ("With 1x1 bottlenecks", bottleneck)):
        depth = summary["output_shape"][1]
        lines.append(f"{label}: output 28x28x{depth}")
        for name, b in summary["branches"].items():
            convs = "; ".join(f"{n} {m:,}" for n, m in b["convs"].items()) or "no conv"
            lines.append(f"  {name:<8} -> 28x28x{b['output_shape'][1]:<4} MACs {b['macs']:>13,}  ({convs})")
        lines.append(f"  total {summary['macs']:,} MACs ({summary['macs'] / 1e6:.0f}M); params {summary['params']:,}")
        lines.append("")
    lines.append(f"The bottleneck version costs {data['ratio']:.2f}x less (and its output is "
                 f"{bottleneck['output_shape'][1]} deep instead of {naive['output_shape'][1]}).")
    lines.append(f"The slide's naive total (854M) agrees; {data['lecture_differs']}.")
    return data, "\n".join(lines)


# ---------------------------------------------------------------------------
# 1x1-conv
# ---------------------------------------------------------------------------

def one_by_one_conv(in_chs: int = 64, out_chs: int = 32, size: int = 56, seed: int = 0) -> tuple[dict, str]:
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(in_chs, out_chs, 1)
    fc = nn.Linear(in_chs, out_chs)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(out_chs, in_chs, 1, 1, generator=gen) / in_chs ** 0.5)
        conv.bias.copy_(torch.randn(out_chs, generator=gen))
        fc.weight.copy_(conv.weight.view(out_chs, in_chs))  # the same weights, as a matrix
        fc.bias.copy_(conv.bias)
        x = torch.randn(2, in_chs, size, size, generator=gen)
        by_conv = conv(x)  # N x out x H x W
        by_fc = fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # the FC applied at every pixel
    diff = (by_conv - by_fc).abs().max().item()
    conv_macs = analyze(conv, (in_chs, size, size), training_estimate=False).totals["macs"]
    fc_macs = analyze(fc, (1, 1, in_chs), training_estimate=False).totals["macs"]
    data = {
        "in_chs": in_chs, "out_chs": out_chs, "size": size,
        "max_abs_difference": diff,
        "equal": bool(torch.allclose(by_conv, by_fc, atol=1e-5, rtol=1e-5)),
        "conv_macs": conv_macs, "fc_macs_per_pixel": fc_macs,
        "conv_params": sum(p.numel() for p in conv.parameters()), "fc_params": sum(p.numel() for p in fc.parameters()),
    }
    text = "\n".join([
        f"A 1x1 conv ({in_chs} -> {out_chs}) is one fully connected layer applied at every pixel:",
        f"  conv(x) vs Linear(x at each of the {size}x{size} pixels), same weights: max |difference| = {diff:.2e}"
        f" ({'equal' if data['equal'] else 'NOT equal'} to float precision)",
        f"  params: conv {data['conv_params']:,} = FC {data['fc_params']:,}; MACs: conv {conv_macs:,} = "
        f"{size}*{size} pixels x FC {fc_macs:,}",
    ])
    return data, text


# ---------------------------------------------------------------------------
# googlenet-vs-alexnet
# ---------------------------------------------------------------------------

def googlenet_vs_alexnet() -> tuple[dict, str]:
    from cnnlab.registry import is_model

    missing = [n for n in ("googlenet", "alexnet") if not is_model(n)]
    if missing:
        raise ValueError(f"googlenet-vs-alexnet needs the registry model(s) {', '.join(missing)}, not registered yet")
    g = analyze("googlenet", training_estimate=False)
    a = analyze("alexnet", training_estimate=False)
    g_used = g.totals["params"] - g.totals["params_not_in_forward"]
    data = {
        "googlenet": {"params": g.totals["params"], "params_without_aux": g_used, "macs": g.totals["macs"]},
        "alexnet": {"params": a.totals["params"], "macs": a.totals["macs"]},
        "ratio": a.totals["params"] / g_used,
        "lecture": {"googlenet_params": 5_000_000, "ratio": 12},
        "lecture_differs": (
            f"the lecture says 'only 5 million parameters, 12x less than AlexNet'; this GoogLeNet has {g_used:,} "
            f"parameters at inference (the paper's own model about 7.0M), {a.totals['params'] / g_used:.1f}x fewer "
            f"than AlexNet's {a.totals['params']:,}"
        ),
    }
    text = "\n".join([
        "GoogLeNet vs AlexNet, parameters (registry models; GoogLeNet in torchvision's layout, with BatchNorm):",
        f"  GoogLeNet: {g_used:,} at inference ({g.totals['params']:,} with the two auxiliary heads), "
        f"{g.totals['macs'] / 1e9:.2f} GMACs",
        f"  AlexNet:   {a.totals['params']:,}, {a.totals['macs'] / 1e9:.2f} GMACs",
        f"  -> {data['ratio']:.1f}x fewer parameters; {data['lecture_differs']}",
    ])
    return data, text


EXAMPLES: dict[str, Callable[[], tuple[dict, str]]] = {
    "alexnet-conv1": alexnet_conv1,
    "vgg16-memory": vgg16_memory,
    "stacked-3x3": stacked_3x3,
    "inception-cost": inception_cost,
    "1x1-conv": one_by_one_conv,
    "googlenet-vs-alexnet": googlenet_vs_alexnet,
}


def run_example(name: str) -> tuple[dict, str]:
    if name not in EXAMPLES:
        raise ValueError(f"unknown lecture example {name!r}; choose from: {', '.join(EXAMPLES)}")
    return EXAMPLES[name]()
