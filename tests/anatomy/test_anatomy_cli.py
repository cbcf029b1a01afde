"""`cnnlab summary` and `cnnlab lecture`, the renderers, and bad input."""
import csv
import io
import json

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab import registry
from cnnlab.anatomy import cli as anatomy_cli
from cnnlab.anatomy.lecture import EXAMPLES
from cnnlab.cli import main
from cnnlab.models.base import CnnModel, InputSizeError


class TinyNet(CnnModel):
    """Two convs, a pool and a classifier; for the CLI tests (registered only inside them)."""

    def __init__(self, num_classes=10, in_chans=3):
        super().__init__()
        self.num_classes, self.num_features, self.in_chans = num_classes, 16, in_chans
        self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3), nn.ReLU(inplace=True))
        self.fc = nn.Linear(16, num_classes)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)


@pytest.fixture
def tiny(monkeypatch):
    registry.list_models()  # load the real registry first
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_INFOS", dict(registry._INFOS))

    @registry.register_model(family="test", paper=registry.Paper("Tiny", "Nobody", 2024), input_size=(3, 32, 32),
                             min_input_size=8, dataset="cifar")
    def anatomy_tiny(*, num_classes=10, in_chans=3):
        return TinyNet(num_classes, in_chans)

    return "anatomy_tiny"


def _hand_macs(size=32):
    a = size - 2
    b = a // 2 - 2
    return a * a * 8 * 27 + b * b * 16 * 72 + 16 * 10


def test_summary_table(tiny, capsys):
    assert main(["summary", tiny]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "30x30x8" in out  # lecture-style output volume H x W x C
    assert f"MACs per image: {_hand_macs():,}" in out
    assert "Receptive field" in out and "Coverage:" in out and "no unknown ops" in out
    assert "Memory is " in out and "Params are " in out  # the where-is-it breakdown


def test_summary_depth_flops_and_input_size(tiny, capsys):
    assert main(["summary", tiny, "--depth", "1", "--flops", "--input-size", "3x64x64", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0]
    assert "features.0" not in table and "features " in table
    assert f"FLOPs per image: {2 * _hand_macs(64):,}" in out
    assert "input 4x3x64x64" in out


def test_summary_json_csv_markdown(tiny, capsys):
    assert main(["summary", tiny, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) >= {"model", "input_shape", "layers", "totals"}
    assert d["model"] == tiny and d["input_shape"] == [1, 3, 32, 32]
    assert d["totals"]["macs"] == _hand_macs()
    row = d["layers"][1]
    for key in ("name", "type", "depth", "output_shape", "activations", "params", "macs", "receptive_field", "rf_jump"):
        assert key in row
    assert row["type"] == "Conv2d" and row["output_shape"] == [1, 8, 30, 30] and row["activations"] == 8 * 900

    assert main(["summary", tiny, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[1]["name"] == "features.0" and int(rows[1]["macs"]) == 900 * 8 * 27

    assert main(["summary", tiny, "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.count("|") > 20 and "| features.0 |" in md.replace("&nbsp;", "")


def test_summary_measure(tiny, capsys):
    assert main(["summary", tiny, "--measure", "--batch-size", "2", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert "Measured peak" in out and "adam" in out


def test_measure_builds_the_named_model_as_asked(tiny):
    # measured on a real model built with the same arguments and dtype as the analysed one:
    # one input channel, float64 (8 bytes a value)
    a = cnnlab.analyze(tiny, 32, batch_size=2, dtype=torch.float64, measure=True, in_chans=1, num_classes=3)
    m = a.totals["measured"]
    first_conv_out = 2 * 8 * 30 * 30 * 8  # the largest single output, float64
    assert m["forward_peak_bytes"] >= first_conv_out and m["train_step_peak_bytes"] >= first_conv_out
    assert a.input_shape == [2, 1, 32, 32] and a.layers[-1]["output_shape"] == [2, 3]


@pytest.mark.parametrize("args, message", [
    (["summary", "no_such_model"], "unknown model"),
    (["summary", "TINY", "--input-size", "abc"], "is not a size"),
    (["summary", "TINY", "--input-size", "3x0x32"], "positive integers"),
    (["summary", "TINY", "--input-size", "1x2x3x4"], "input size must be"),
    (["summary", "TINY", "--input-size", "4"], "at least 8x8"),
    (["summary", "TINY", "--input-size", "1x32x32"], "input channel"),
    (["summary", "TINY", "--batch-size", "0"], "batch_size"),
    (["summary", "TINY", "--depth", "0"], "--depth"),
    (["summary", "TINY", "--count", "conv,magic"], "count must be"),
    (["summary", "TINY", "--dtype", "int8"], "--dtype"),
    (["summary", "TINY", "--optimizer", "lion"], "optimizer must be"),
])
def test_summary_bad_input_is_one_line(tiny, capsys, args, message):
    args = [tiny if a == "TINY" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_analyze_bad_input():
    with pytest.raises(ValueError, match="unknown model"):
        cnnlab.analyze("vgg1600")
    with pytest.raises(TypeError, match="model name or an nn.Module"):
        cnnlab.analyze(42)
    with pytest.raises(ValueError, match="input_size is required"):
        cnnlab.analyze(nn.Conv2d(3, 3, 1))
    for bad in ((3, 224), (3, -1, 4), True, "x", (3.0, 8, 8), [3, 8, 8, 8]):
        size = bad if bad != (3, 224) else (3, 224, 0)
        with pytest.raises(ValueError, match="input size"):
            cnnlab.analyze(nn.Conv2d(3, 3, 1), size)
    with pytest.raises(ValueError, match="dtype"):
        cnnlab.analyze(nn.Conv2d(3, 3, 1), 8, dtype=torch.int64)


def test_parse_input_size_defaults_and_messages():
    from cnnlab.anatomy import parse_input_size

    assert parse_input_size(224) == (3, 224, 224) and parse_input_size("224x192") == (3, 224, 192)
    assert parse_input_size(28, channels=1) == (1, 28, 28) and parse_input_size((5, 7), 2) == (2, 5, 7)
    assert parse_input_size("3, 16, 8") == (3, 16, 8) and parse_input_size(torch.Size([1, 4, 4])) == (1, 4, 4)
    for bad, message in (("abc", "input size 'abc' is not a size"), ((3, 0, 4), r"positive integers \(C, H, W\), got \(3, 0, 4\)"),
                         (True, r"an int or \(C, H, W\), got True"), ([1, 2, 3, 4], r"got \[1, 2, 3, 4\]")):
        with pytest.raises(ValueError, match=message):
            parse_input_size(bad)


def test_analyze_defaults_from_the_model_info(tiny):
    # by name: the registered input size, with the channels asked for
    a = cnnlab.analyze(tiny, in_chans=1, training_estimate=False)
    assert a.model == tiny and a.input_shape == [1, 1, 32, 32]
    # a registry model passed as a module: its name and its input size (with its own channels)
    model = cnnlab.create_model(tiny, in_chans=2)
    a = cnnlab.analyze(model, training_estimate=False)
    assert a.model == tiny and a.input_shape == [1, 2, 32, 32]
    # a plain module: its class name, and an input size is needed
    assert cnnlab.analyze(nn.Sequential(nn.Conv2d(3, 3, 1)), 4, training_estimate=False).model == "Sequential"
    with pytest.raises(TypeError, match="model keyword arguments only apply to a model given by name"):
        cnnlab.analyze(nn.Conv2d(3, 3, 1), 8, num_classes=3)
    with pytest.raises(TypeError, match="takes a model name or an nn.Module, got int"):
        cnnlab.analyze(42)


def test_untraceable_models_say_why():
    class PlainTensor(nn.Module):  # a tensor attribute that is not a buffer stays on the CPU
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.scale = torch.ones(1, 3, 1, 1)

        def forward(self, x):
            return self.conv(x) * self.scale

    class DataDependent(nn.Module):  # Python control flow on a value: no data on the meta device
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = self.conv(x)
            return y if y.sum().item() > 0 else -y

    with pytest.raises(ValueError, match="PlainTensor keeps a tensor that is neither a parameter nor a buffer.*register it as a buffer"):
        cnnlab.analyze(PlainTensor(), 8)
    with pytest.raises(ValueError, match="cannot run on a 1x3x8x8 input: .*item"):
        cnnlab.analyze(DataDependent(), 8)


def test_an_error_without_a_message_is_named_by_its_type():
    class Bare(nn.Module):
        def forward(self, x):
            raise IndexError

    with pytest.raises(ValueError, match="^Bare cannot run on a 2x3x4x4 input: IndexError$"):
        cnnlab.analyze(Bare(), 4, batch_size=2)


def test_too_small_input_gives_the_models_message(tiny):
    with pytest.raises(InputSizeError, match="needs inputs of at least 8x8 pixels, got 7x7"):
        cnnlab.analyze(tiny, 7)
    model = TinyNet()
    model.min_input_size = 8
    with pytest.raises(InputSizeError, match="needs inputs of at least 8x8"):
        cnnlab.analyze(model, 5)  # a user's module: its own check, on the meta stand-ins
    with pytest.raises(ValueError, match="cannot run on a 1x3x5x5 input: .*[Kk]ernel size"):
        cnnlab.analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)), 5)


def test_input_size_forms(tiny):
    for size in (32, "32", "32x32", "3x32x32", (3, 32, 32), [32, 32], torch.Size([3, 32, 32])):
        assert cnnlab.analyze(tiny, size, training_estimate=False).input_shape == [1, 3, 32, 32]
    a = cnnlab.analyze(tiny, 32, in_chans=1, num_classes=5)  # builder arguments pass through
    assert a.input_shape == [1, 1, 32, 32] and a.layers[-1]["output_shape"] == [1, 5]


def test_training_estimate_and_dtypes(tiny):
    a32 = cnnlab.analyze(tiny, 32, batch_size=8, optimizer="adam")
    a16 = cnnlab.analyze(tiny, 32, batch_size=8, dtype=torch.float16, optimizer="sgd")
    t = a32.totals
    assert t["params_bytes"] == 4 * t["params"] == 2 * a16.totals["params_bytes"]
    tr = t["training"]
    assert tr["optimizer_state_bytes"] == 2 * tr["params_bytes"] and a16.totals["training"]["optimizer_state_bytes"] == 0
    # autograd keeps at least the input of every conv and of the classifier
    kept = 4 * 8 * (3 * 32 * 32 + 8 * 15 * 15 + 16)
    assert tr["saved_activations_bytes"] >= kept
    assert tr["total_bytes"] == tr["saved_activations_bytes"] + tr["params_bytes"] + tr["grads_bytes"] + tr["optimizer_state_bytes"]
    assert t["forward_bytes_batch"] == 2 * a16.totals["forward_bytes_batch"]


def test_lecture_examples_listed_consistently():
    assert tuple(EXAMPLES) == anatomy_cli.EXAMPLES


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e != "googlenet-vs-alexnet"])
def test_lecture_examples_run(example, capsys):
    assert main(["lecture", example]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["lecture", example, "--json"]) == 0
    json.loads(capsys.readouterr().out)


def test_lecture_inception_cost(capsys):
    assert main(["lecture", "inception-cost", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    hw = 28 * 28
    naive = hw * 128 * 256 + hw * 192 * 9 * 256 + hw * 96 * 25 * 256
    bottleneck = 3 * hw * 64 * 256 + hw * 128 * 256 + hw * 192 * 9 * 64 + hw * 96 * 25 * 64
    assert naive == 854_196_224 and bottleneck == 271_351_808  # PAPERS.md
    assert d["naive"]["macs"] == naive and d["bottleneck"]["macs"] == bottleneck
    assert d["naive"]["output_shape"][1] == 128 + 192 + 96 + 256
    assert d["bottleneck"]["output_shape"][1] == 128 + 192 + 96 + 64
    assert d["naive"]["branches"]["conv5x5"]["macs"] == hw * 96 * 25 * 256
    assert d["bottleneck"]["branches"]["conv5x5"]["macs"] == hw * 64 * 256 + hw * 96 * 25 * 64
    assert d["bottleneck"]["branches"]["pool"]["macs"] == hw * 64 * 256
    assert "358" in d["lecture_differs"]
    assert main(["lecture", "inception-cost"]) == 0
    assert "miscalculation" in capsys.readouterr().out


def test_lecture_vgg16_memory_and_others(capsys):
    assert main(["lecture", "vgg16-memory", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_memory_values"] == 15_237_608 and d["total_params_without_biases"] == 138_344_128
    assert "24M" in d["lecture_differs"]
    assert main(["lecture", "alexnet-conv1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["conv1"]["output_volume"] == [96, 55, 55] and d["conv1"]["weights"] == 34_848
    assert main(["lecture", "stacked-3x3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    c2 = d["channels"] ** 2
    assert d["stacked_3x3"]["receptive_field"] == d["single_7x7"]["receptive_field"] == 7
    assert d["stacked_3x3"]["params"] == 27 * c2 and d["single_7x7"]["params"] == 49 * c2


@pytest.mark.skipif(not (registry.is_model("googlenet") and registry.is_model("alexnet")),
                    reason="googlenet/alexnet not registered yet")
def test_lecture_googlenet_vs_alexnet(capsys):
    assert main(["lecture", "googlenet-vs-alexnet", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["alexnet"]["params"] == 61_100_840 and d["googlenet"]["params_without_aux"] == 6_624_904
    assert d["ratio"] > 9


def test_lecture_unknown_example(capsys):
    with pytest.raises(SystemExit):
        main(["lecture", "resnet-magic"])
    assert "invalid choice" in capsys.readouterr().err
