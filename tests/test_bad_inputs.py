"""Bad inputs, as a demanding new user would try them, across every command and the main Python API.

Each case is one bad input and what a good answer to it contains. A command-line case
passes when `cnnlab` exits with status 2 (the user-error code), prints no traceback and
no "internal error", says it in at most three lines, and names the flag, value or path
(the expected fragment). A Python case passes when the call raises the expected
exception class with the fragment in its message. Cases marked ``OK`` are inputs that
look wrong but have a right answer, which the command must give (exit status 0).

Files the cases need (a trained checkpoint, a truncated one, a text file named .png,
...) are made once per module in ``lab``; ``{name}`` in an argument is replaced by the
path of ``lab[name]`` and ``{tmp}`` by a fresh folder for the case.

When the table was written (against commit 7a1e8dc), 67 of its 360 cases misbehaved: 41 unclear
(16 of them argparse's whole usage, 36 lines for `train`, printed above the one-line error), 22
bad inputs accepted in silence, 3 internal errors and 1 lost file (`bench --out NOTES --resume`
truncated a file that was not a bench file). Each was fixed, or, where the behaviour was right,
the case was (those are the OK cases, with a comment saying why).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import cnnlab
from cnnlab import bench as cbench
from cnnlab import data as cdata
from cnnlab import experiments as cexp
from cnnlab import export as cexport
from cnnlab import train as ctrain
from cnnlab import weights as cweights
from cnnlab.cli import main
from cnnlab.train import checkpoint, inference, recipes
from cnnlab.weights import load as wload

OK = "ok"  # expected: handled correctly, exit status 0
HELP = "help"


@dataclass
class Cli:
    id: str
    argv: list[str]
    fragment: str | tuple[str, ...]  # every one must appear in stderr (OK: in stdout + stderr)
    expect: str = "error"  # or OK, or HELP (exit status 2 with the usage: a command given no action)
    max_lines: int = 3
    keeps: str | None = None  # a lab file that must be unchanged afterwards (no lost work)


@dataclass
class Api:
    id: str
    call: Callable[[dict[str, Path]], Any]
    exc: type[BaseException] | tuple[type[BaseException], ...] | None  # None: handled, no exception
    fragment: str | tuple[str, ...]


# Quick training: every train case gets these first, so that one the code wrongly accepts
# trains for a second instead of minutes (the case's own flags come after and win).
_T = ["--dataset", "digits", "--epochs", "1", "--train-samples", "64", "--test-samples", "32", "--progress", "none",
      "--out", "{tmp}/run", "--threads", "1"]


def T(*extra: str, model: str = "lenet5") -> list[str]:
    return ["train", model, *_T, *extra]


_S = ["search", "run", "--space", "layers-tiny", "--strategy", "random", "--budget", "2", "--tabular",
      "--out", "{tmp}/search", "--no-final-eval"]


def S(*extra: str) -> list[str]:
    return [*_S, *extra]


def B(*extra: str) -> list[str]:
    return ["bench", "lenet5", "--batch-sizes", "1", "--min-time", "0.01", "--warmup", "1", "--no-progress", *extra]


def E(*extra: str) -> list[str]:
    return ["export", "lenet5", "--no-check", "--out", "{tmp}/m.onnx", *extra]


CLI_CASES = [
    # -- the command itself ----------------------------------------------------------------
    Cli("misspelt-command", ["trian", "lenet5"], "trian"),
    Cli("unknown-top-flag", ["--verbose", "models"], "--verbose"),
    Cli("no-command-args", ["models", "--jsn"], "--jsn"),
    # -- models ----------------------------------------------------------------------------
    Cli("models-no-match", ["models", "zzz*"], "zzz*"),
    Cli("models-unknown-family", ["models", "--family", "nosuchfamily"], "nosuchfamily"),
    # -- summary / lecture -----------------------------------------------------------------
    Cli("summary-unknown-model", ["summary", "nosuchnet"], "nosuchnet"),
    Cli("summary-close-model", ["summary", "resnet5"], "resnet5"),
    Cli("summary-input-size-text", ["summary", "lenet5", "--input-size", "abc"], "abc"),
    Cli("summary-input-size-zero", ["summary", "lenet5", "--input-size", "0"], "input"),
    Cli("summary-input-size-negative", ["summary", "lenet5", "--input-size=-32"], "-32"),
    Cli("summary-input-size-4d", ["summary", "lenet5", "--input-size", "1x2x3x4"], "1x2x3x4"),
    Cli("summary-input-size-too-small", ["summary", "lenet5", "--input-size", "8"], "32x32"),
    Cli("summary-input-size-small-but-fine", ["summary", "resnet18", "--input-size", "8"], "Coverage",
        OK),  # resnet18 runs at 8x8 (1x1 maps before its adaptive pool)
    Cli("summary-depth-zero", ["summary", "lenet5", "--depth", "0"], "--depth"),
    Cli("summary-input-size-wrong-channels", ["summary", "lenet5", "--input-size", "3x32x32"], "channel"),
    Cli("summary-batch-zero", ["summary", "lenet5", "--batch-size", "0"], "batch"),
    Cli("summary-batch-negative", ["summary", "lenet5", "--batch-size=-1"], "batch"),
    Cli("summary-batch-float", ["summary", "lenet5", "--batch-size", "1.5"], "--batch-size"),
    Cli("summary-depth-negative", ["summary", "lenet5", "--depth=-1"], "depth"),
    Cli("summary-dtype-int", ["summary", "lenet5", "--dtype", "int8"], "int8"),
    Cli("summary-dtype-unknown", ["summary", "lenet5", "--dtype", "floaty"], "floaty"),
    Cli("summary-count-unknown", ["summary", "lenet5", "--count", "conv,foo"], "foo"),
    Cli("summary-count-empty", ["summary", "lenet5", "--count", ""], "count"),
    Cli("summary-optimizer-unknown", ["summary", "lenet5", "--optimizer", "bogus"], "bogus"),
    Cli("summary-mode-unknown", ["summary", "lenet5", "--mode", "test"], "--mode"),
    Cli("summary-json-and-csv", ["summary", "lenet5", "--json", "--csv"], "--csv"),
    Cli("summary-no-weights", ["summary", "lenet5", "--pretrained"], "lenet5"),
    Cli("summary-of-a-checkpoint", ["summary", "{ckpt}"], "not a model name"),
    Cli("summary-missing-arch-file", ["summary", "{tmp}/nope.json"], ("nope.json", "no architecture file")),
    Cli("summary-wrong-schema-json", ["summary", "{wrong_json}"], "wrong.json"),
    Cli("summary-not-json", ["summary", "{not_json}"], "broken.json"),
    Cli("lecture-unknown", ["lecture", "nosuch"], "nosuch"),
    # -- datasets / download ---------------------------------------------------------------
    Cli("datasets-data-dir-is-file", ["datasets", "--data-dir", "{text}"], "notes.txt"),
    Cli("download-unknown", ["download", "nosuchset"], "nosuchset"),
    Cli("download-bundled", ["download", "digits"], "digits", OK),  # "nothing to download": it is bundled
    Cli("download-data-dir-is-file", ["download", "digits", "--data-dir", "{text}"], "notes.txt"),
    # -- train: names ----------------------------------------------------------------------
    Cli("train-unknown-model", T(model="nosuchnet"), "nosuchnet"),
    Cli("train-unknown-dataset", T("--dataset", "nosuchset"), "nosuchset"),
    Cli("train-unknown-recipe", T("--recipe", "nosuch"), "nosuch"),
    Cli("train-unknown-optimizer", T("--optimizer", "sgdd"), "sgdd"),
    Cli("train-unknown-schedule", T("--schedule", "foo"), "--schedule"),
    Cli("train-unknown-precision", T("--precision", "fp8"), "--precision"),
    Cli("train-unknown-tracker", T("--tracker", "foo"), "--tracker"),
    Cli("train-misspelt-flag", T("--learning-rate", "0.1"), "--learning-rate"),
    Cli("train-missing-model", ["train"], "model"),
    Cli("train-flag-without-value", ["train", "lenet5", "--epochs"], "--epochs"),
    # -- train: numbers --------------------------------------------------------------------
    Cli("train-epochs-zero", T("--epochs", "0"), "epochs"),
    Cli("train-epochs-negative", T("--epochs=-3"), "epochs"),
    Cli("train-epochs-float", T("--epochs", "1.5"), "--epochs"),
    Cli("train-lr-nan", T("--lr", "nan"), "lr"),
    Cli("train-lr-inf", T("--lr", "inf"), "lr"),
    Cli("train-lr-overflow", T("--lr", "1e400"), "lr"),
    Cli("train-lr-negative", T("--lr=-0.1"), "lr"),
    Cli("train-lr-zero", T("--lr", "0"), "lr"),
    Cli("train-batch-zero", T("--batch-size", "0"), "batch_size"),
    Cli("train-batch-huge", T("--batch-size", "100000000"), "test accuracy", OK),  # one batch an epoch: fine
    Cli("train-val-fraction-above-one", T("--val-fraction", "1.5"), "val_fraction"),
    Cli("train-val-fraction-negative", T("--val-fraction=-0.1"), "val_fraction"),
    Cli("train-val-fraction-nan", T("--val-fraction", "nan"), "val_fraction"),
    Cli("train-momentum-two", T("--momentum", "2"), "momentum"),
    Cli("train-weight-decay-negative", T("--weight-decay=-1"), "weight_decay"),
    Cli("train-milestones-text", T("--milestones", "0.5,abc"), "milestones"),
    Cli("train-milestones-unsorted", T("--schedule", "multistep", "--milestones", "0.9,0.2"), "milestones"),
    Cli("train-gamma-zero", T("--gamma", "0"), "gamma"),
    Cli("train-label-smoothing-big", T("--label-smoothing", "1.5"), "label_smoothing"),
    Cli("train-grad-clip-negative", T("--grad-clip=-1"), "grad_clip"),
    Cli("train-scale-reversed", T("--scale", "0.9,0.1"), "scale"),
    Cli("train-cutout-negative", T("--cutout=-4"), "cutout"),
    Cli("train-warmup-epochs-negative", T("--warmup-epochs=-1"), "warmup_epochs"),
    Cli("train-ema-decay-above-one", T("--ema-decay", "1.5"), "ema_decay"),
    Cli("train-eps-zero", T("--eps", "0"), "eps"),
    Cli("train-step-epochs-zero", T("--schedule", "step", "--step-epochs", "0"), "step_epochs"),
    Cli("train-plateau-patience-negative", T("--plateau-patience=-1"), "plateau_patience"),
    Cli("train-crop-padding-negative", T("--crop-padding=-2"), "crop_padding"),
    Cli("train-pca-lighting-negative", T("--pca-lighting=-0.1"), "pca_lighting"),
    Cli("train-aux-weight-negative", T("--aux-weight=-1"), "aux_weight"),
    Cli("train-threads-zero", T("--threads", "0"), "threads"),
    Cli("train-threads-huge", T("--threads", "100000"), "threads"),
    Cli("train-image-size-zero", T("--image-size", "0"), "image_size"),
    Cli("train-image-size-too-small", T("--image-size", "4"), "4"),
    Cli("train-train-samples-zero", T("--train-samples", "0"), "train_samples"),
    Cli("train-train-samples-negative", T("--train-samples=-5"), "train_samples"),
    Cli("train-test-samples-zero", T("--test-samples", "0"), "test_samples"),
    Cli("train-num-workers-negative", T("--num-workers=-1"), "--num-workers"),
    # -- train: options and combinations ---------------------------------------------------
    Cli("train-optimizer-option-no-equals", T("--optimizer-option", "foo"), "foo"),
    Cli("train-optimizer-option-unknown", T("--optimizer-option", "bogus=1"), "bogus"),
    Cli("train-data-option-unknown", T("--data-option", "foo=1"), "foo"),
    Cli("train-shapes-num-samples-text", T("--dataset", "shapes", "--data-option", "num_samples=abc"), "num_samples"),
    Cli("train-shapes-image-size-negative", T("--dataset", "shapes", "--data-option", "image_size=-1"), "image_size"),
    Cli("train-freeze-without-pretrained", T("--freeze-backbone"), "--pretrained"),
    Cli("train-pretrained-none-published", T("--pretrained"), "lenet5"),
    Cli("train-pretrained-unknown-tag", T("--pretrained=NOSUCHTAG", model="resnet18"), "NOSUCHTAG"),
    Cli("train-device-cuda-absent", T("--device", "cuda"), "cuda"),
    Cli("train-cifar-offline", T("--dataset", "cifar10", "--no-download", "--data-dir", "{tmp}/data"),
        ("cifar-10-binary.tar.gz", "data/cifar10"), max_lines=4),  # the files to place, one line each
    Cli("train-shapes-num-samples-zero", T("--dataset", "shapes", "--data-option", "num_samples=0"), "num_samples"),
    Cli("train-milestones-empty-string", T("--schedule", "multistep", "--milestones", ""), "test accuracy",
        OK),  # no milestones: no drops, as asked
    Cli("train-scale-one-value", T("--scale", "0.5"), "scale"),
    Cli("train-resume-changed-lr", T("--resume", "--out", "{run}", "--lr", "0.5"), "lr", keeps="ckpt"),
    Cli("train-fp16-on-cpu", T("--precision", "fp16", "--device", "cpu"), "test accuracy", OK),  # CPU autocast
    # -- train: folders ---------------------------------------------------------------------
    Cli("train-imagefolder-no-root", T("--dataset", "imagefolder"), "--data-root"),
    Cli("train-imagefolder-missing-root", T("--dataset", "imagefolder", "--data-root", "{tmp}/nope"), "nope"),
    Cli("train-imagefolder-root-is-file", T("--dataset", "imagefolder", "--data-root", "{text}"), "notes.txt"),
    Cli("train-imagefolder-empty-root", T("--dataset", "imagefolder", "--data-root", "{empty_dir}"), "empty_dir"),
    Cli("train-imagefolder-one-class", T("--dataset", "imagefolder", "--data-root", "{one_class}"), "single class"),
    Cli("train-imagefolder-empty-class", T("--dataset", "imagefolder", "--data-root", "{empty_class}"), "['b']"),
    Cli("train-imagefolder-mean-text", T("--dataset", "imagefolder", "--data-root", "{good_folder}",
                                         "--data-option", "mean=abc"), "mean"),
    Cli("train-imagefolder-mean-without-std", T("--dataset", "imagefolder", "--data-root", "{good_folder}",
                                                "--data-option", "mean=[0.5]"), "std"),
    Cli("train-imagefolder-bad-images", T("--dataset", "imagefolder", "--data-root", "{bad_folder}"), "fake"),
    Cli("train-data-root-without-imagefolder", T("--data-root", "{good_folder}"), "--data-root"),
    Cli("train-resume-empty-out", T("--resume", "--out", "{empty_dir}"), "empty_dir"),
    Cli("train-resume-missing-out", T("--resume", "--out", "{tmp}/nope"), "nope"),
    Cli("train-resume-other-model", T("--resume", "--out", "{run}", model="resnet20"), "lenet5"),
    Cli("train-resume-truncated-last", T("--resume", "--out", "{run_trunc_last}"), "last.pt",
        keeps="run_trunc_best"),
    Cli("train-resume-broken-config-json", T("--resume", "--out", "{run_bad_config}", "--epochs", "2"),
        "test accuracy", OK),  # the run's settings are read from last.pt
    Cli("train-out-is-file", T("--out", "{text}"), ("--out", "notes.txt")),
    Cli("train-out-existing-run", T("--out", "{run}"), "--resume", keeps="ckpt"),
    Cli("train-missing-arch-file", T(model="{tmp}/nope.json"), ("nope.json", "no architecture file")),
    Cli("train-wrong-schema-arch-file", T(model="{wrong_json}"), "wrong.json"),
    # -- recipes ---------------------------------------------------------------------------
    Cli("recipes-unknown", ["recipes", "nosuch"], "nosuch"),
    # -- eval ------------------------------------------------------------------------------
    Cli("eval-missing-file", ["eval", "{tmp}/nope.pt"], "nope.pt"),
    Cli("eval-empty-file", ["eval", "{empty_file}"], "empty.pt"),
    Cli("eval-truncated", ["eval", "{trunc_ckpt}"], "trunc.pt"),
    Cli("eval-text-file", ["eval", "{text_pt}"], "notes.pt"),
    Cli("eval-dir-without-checkpoint", ["eval", "{empty_dir}"], "empty_dir"),
    Cli("eval-foreign-dict", ["eval", "{foreign_ckpt}"], "foreign.pt"),
    Cli("eval-bare-state-dict", ["eval", "{state_dict}"], "state_dict.pt"),
    Cli("eval-other-models-weights", ["eval", "{other_model}"], ("lenet5", "another model")),
    Cli("eval-code-in-pickle", ["eval", "{evil}"], ("evil.pt", "weights_only")),
    Cli("eval-unknown-dataset", ["eval", "{ckpt}", "--dataset", "nosuchset"], "nosuchset"),
    Cli("eval-other-classes-dataset", ["eval", "{ckpt}", "--dataset", "shapes"], "shapes"),
    Cli("eval-batch-zero", ["eval", "{ckpt}", "--batch-size", "0"], "batch"),
    Cli("eval-test-samples-zero", ["eval", "{ckpt}", "--test-samples", "0"], "test"),
    Cli("eval-test-samples-negative", ["eval", "{ckpt}", "--test-samples=-1"], "test"),
    Cli("eval-pretrained-no-root", ["eval", "resnet18", "--pretrained"], "--data-root"),
    Cli("eval-pretrained-unknown-model", ["eval", "nosuchnet", "--pretrained", "--data-root", "{good_folder}"],
        "nosuchnet"),
    Cli("eval-model-name-without-pretrained", ["eval", "lenet5"], ("lenet5", "--pretrained")),
    Cli("eval-device-cuda-absent", ["eval", "{ckpt}", "--device", "cuda"], "cuda"),
    # -- predict ---------------------------------------------------------------------------
    Cli("predict-missing-image", ["predict", "{ckpt}", "{tmp}/nope.png"], "nope.png"),
    Cli("predict-text-as-image", ["predict", "{ckpt}", "{fake_png}"], "fake.png"),
    Cli("predict-truncated-image", ["predict", "{ckpt}", "{trunc_png}"], "trunc.png"),
    Cli("predict-empty-image", ["predict", "{ckpt}", "{empty_png}"], "empty.png"),
    Cli("predict-directory-as-image", ["predict", "{ckpt}", "{empty_dir}"], "empty_dir"),
    Cli("predict-top-k-zero", ["predict", "{ckpt}", "{png}", "--top-k", "0"], "--top-k"),
    Cli("predict-top-k-negative", ["predict", "{ckpt}", "{png}", "--top-k=-1"], "--top-k"),
    Cli("predict-top-k-above-classes", ["predict", "{ckpt}", "{png}", "--top-k", "1000", "--device", "cpu"],
        "digit.png", OK),  # all 10 classes
    Cli("predict-rgba-and-16-bit", ["predict", "{ckpt}", "{rgba_png}", "{i16_png}", "--device", "cpu"], "i16.png",
        OK),  # converted to the model's one channel
    Cli("predict-code-in-pickle", ["predict", "{evil}", "{png}"], ("evil.pt", "weights_only")),
    Cli("predict-missing-checkpoint", ["predict", "{tmp}/nope.pt", "{png}"], "nope.pt"),
    Cli("predict-truncated-checkpoint", ["predict", "{trunc_ckpt}", "{png}"], "trunc.pt"),
    Cli("predict-model-name-without-pretrained", ["predict", "lenet5", "{png}"], ("lenet5", "--pretrained")),
    Cli("predict-no-weights-pretrained", ["predict", "lenet5", "--pretrained", "{png}"], "lenet5"),
    # -- experiment ------------------------------------------------------------------------
    Cli("experiment-unknown", ["experiment", "run", "nosuch"], "nosuch"),
    Cli("experiment-misspelt-sub", ["experiment", "runn", "bottleneck"], "runn"),
    Cli("experiment-scale-unknown", ["experiment", "run", "one-by-one", "--scale", "huge"], "--scale"),
    Cli("experiment-seeds-zero", ["experiment", "run", "one-by-one", "--seeds", "0"], "--seeds"),
    Cli("experiment-seeds-negative", ["experiment", "run", "one-by-one", "--seeds=-1"], "--seeds"),
    Cli("experiment-threads-zero", ["experiment", "run", "one-by-one", "--threads", "0"], "--threads"),
    Cli("experiment-dataset-unknown", ["experiment", "run", "small-filters", "--dataset", "nosuchset",
                                       "--out", "{tmp}/e"], "nosuchset"),
    # --resume with nothing done yet runs everything: right (nothing is repeated or lost)
    Cli("experiment-resume-empty", ["experiment", "run", "bottleneck", "--resume", "--out", "{tmp}/e"],
        "results.json", OK),
    Cli("experiment-out-is-file", ["experiment", "run", "bottleneck", "--out", "{text}"], ("--out", "notes.txt")),
    Cli("experiment-no-sub", ["experiment"], "run", HELP),  # no action: its help, exit status 2
    # -- search ----------------------------------------------------------------------------
    Cli("search-unknown-space", S("--space", "nosuch"), "nosuch"),
    Cli("search-unknown-strategy", S("--strategy", "nosuch"), "nosuch"),
    Cli("search-budget-zero", S("--budget", "0"), "budget"),
    Cli("search-budget-negative", S("--budget=-1"), "budget"),
    Cli("search-workers-zero", S("--workers", "0"), "workers"),
    Cli("search-val-fraction-one", S("--val-fraction", "1.0"), "val_fraction"),
    Cli("search-timeout-negative", S("--trial-timeout=-1"), "trial_timeout"),
    Cli("search-timeout-nan", S("--trial-timeout", "nan"), "trial_timeout"),
    Cli("search-epochs-zero", S("--epochs", "0"), "epochs"),
    Cli("search-dataset-unknown", [a for a in S("--dataset", "nosuchset") if a != "--tabular"], "nosuchset"),
    Cli("search-space-option-unknown", S("--space", "nasnet", "--space-option", "bogus=1"), ("bogus", "num_blocks")),
    Cli("search-strategy-option-unknown", S("--strategy", "evolution", "--strategy-option", "bogus=1"),
        ("bogus", "population_size")),
    Cli("search-address-without-ray", S("--address", "localhost:6379"), "--address"),
    Cli("search-cpus-zero", S("--cpus-per-trial", "0"), "cpus_per_trial"),
    Cli("search-cpus-nan", S("--cpus-per-trial", "nan"), "cpus_per_trial"),
    Cli("search-batch-zero", S("--batch-size", "0"), "batch_size"),
    Cli("search-lr-negative", S("--lr=-1"), "lr"),
    Cli("search-recipe-unknown", [a for a in S("--recipe", "nosuch") if a != "--tabular"], "nosuch"),
    Cli("search-missing-required", ["search", "run", "--space", "layers"], "--strategy"),
    Cli("search-resume-empty", S("--resume", "--out", "{empty_dir}"), "empty_dir"),
    Cli("search-out-existing", S("--out", "{search}"), "--resume", keeps="search_state"),
    Cli("search-show-missing", ["search", "show", "{tmp}/nope"], "nope"),
    Cli("search-show-empty", ["search", "show", "{empty_dir}"], "empty_dir"),
    Cli("search-show-train-run", ["search", "show", "{run}"], "run"),
    Cli("search-show-top-zero", ["search", "show", "{search}", "--top", "0"], "--top"),
    Cli("search-show-batch-zero", ["search", "show", "{search}", "--batch", "0"], "--batch"),
    Cli("search-show-plot-bad-ext", ["search", "show", "{search}", "--plot", "{tmp}/curves.txt"], "curves.txt"),
    Cli("search-export-empty", ["search", "export", "{empty_dir}"], "empty_dir"),
    Cli("search-export-rank-zero", ["search", "export", "{search}", "--rank", "0", "-o", "{tmp}/b.json"], "--rank"),
    Cli("search-export-rank-too-big", ["search", "export", "{search}", "--rank", "99", "-o", "{tmp}/b.json"], "99"),
    Cli("search-compare-strategy-unknown", ["search", "compare", "--strategies", "random,foo", "--seeds", "1",
                                            "--budget", "5"], "foo"),
    Cli("search-compare-seeds-zero", ["search", "compare", "--seeds", "0"], "seeds"),
    Cli("search-compare-budget-zero", ["search", "compare", "--budget", "0", "--seeds", "1"], "budget"),
    Cli("search-compare-seeds-one", ["search", "compare", "--seeds", "1"], "seeds"),
    Cli("search-compare-space-unknown", ["search", "compare", "--space", "nosuch", "--seeds", "2"], "nosuch"),
    Cli("search-compare-batch-zero", ["search", "compare", "--batch", "0", "--seeds", "2", "--budget", "5"],
        "batch"),
    # -- export ----------------------------------------------------------------------------
    Cli("export-unknown-model", ["export", "nosuchnet", "--out", "{tmp}/m.onnx"], "nosuchnet"),
    Cli("export-unknown-format", E("--format", "tflite"), "tflite"),
    Cli("export-opset-tiny", E("--opset", "3"), "opset"),
    Cli("export-batch-zero", E("--batch-size", "0"), "batch"),
    Cli("export-num-classes-negative", E("--num-classes=-3"), "num_classes"),
    Cli("export-input-size-text", E("--input-size", "foo"), "foo"),
    Cli("export-atol-negative", ["export", "lenet5", "--out", "{tmp}/m.onnx", "--atol=-1"], "atol"),
    Cli("export-checkpoint-num-classes", ["export", "{ckpt}", "--num-classes", "5", "--no-check",
                                          "--out", "{tmp}/m.onnx"], "--num-classes"),
    Cli("export-code-in-pickle", ["export", "{evil}", "--out", "{tmp}/m.onnx"], ("evil.pt", "weights_only")),
    # 400 TB: beyond any address space, so refused at once even where memory is overcommitted
    Cli("export-batch-huge", E("--batch-size", "100000000000"), ("out of memory", "--batch-size")),
    Cli("export-truncated-checkpoint", ["export", "{trunc_ckpt}", "--out", "{tmp}/m.onnx"], "trunc.pt"),
    Cli("export-missing-checkpoint", ["export", "{tmp}/nope.pt", "--out", "{tmp}/m.onnx"], "nope.pt"),
    Cli("export-out-under-file", E("--out", "{text}/m.onnx"), ("--out", "notes.txt")),
    Cli("export-input-size-wrong-channels", E("--input-size", "3x32x32"), "channel"),
    Cli("export-input-size-too-small", E("--input-size", "8"), "32x32"),
    # -- serve (the server itself is never started by these tests) ---------------------------
    Cli("serve-port-negative", ["serve", "--port=-1"], "--port"),
    Cli("serve-port-too-big", ["serve", "--port", "70000"], "--port"),
    Cli("serve-port-text", ["serve", "--port", "abc"], "--port"),
    Cli("serve-runs-is-file", ["serve", "--port", "0", "--runs", "{text}"], "notes.txt"),
    Cli("serve-results-missing", ["serve", "--port", "0", "--results", "{tmp}/nope"], "nope"),
    Cli("serve-playground-missing", ["serve", "--port", "0", "--playground", "{tmp}/nope.onnx"], "nope.onnx"),
    Cli("serve-results-is-file", ["serve", "--port", "0", "--results", "{text}"], "notes.txt"),
    # -- weights ---------------------------------------------------------------------------
    Cli("weights-no-match", ["weights", "nosuch*"], "nosuch"),
    Cli("weights-unknown-tag", ["weights", "resnet50", "--tag", "NOSUCH"], "NOSUCH"),
    # -- bench / compare -------------------------------------------------------------------
    Cli("bench-unknown-model", ["bench", "nosuchnet", "--batch-sizes", "1"], "nosuchnet"),
    Cli("bench-batch-zero", B("--batch-sizes", "0"), "batch"),
    Cli("bench-batch-text", B("--batch-sizes", "a,b"), "a"),
    Cli("bench-batch-empty", B("--batch-sizes", ""), "--batch-sizes"),
    Cli("bench-batch-negative", B("--batch-sizes=-1"), "-1"),
    Cli("bench-min-time-negative", B("--min-time=-1"), "min"),
    Cli("bench-min-time-nan", B("--min-time", "nan"), "min"),
    Cli("bench-warmup-negative", B("--warmup=-1"), "warmup"),
    Cli("bench-threads-zero", B("--threads", "0"), "threads"),
    Cli("bench-device-unknown", B("--device", "tpu"), "tpu"),
    Cli("bench-input-size-zero", B("--input-size", "0"), "input"),
    Cli("bench-resume-and-overwrite", B("--out", "{bench_jsonl}", "--resume", "--overwrite"), "--overwrite"),
    Cli("bench-out-exists", B("--out", "{bench_jsonl}"), "--resume", keeps="bench_jsonl"),
    Cli("bench-resume-foreign-file", B("--out", "{mine}", "--resume"), "mine.txt", keeps="mine"),
    Cli("bench-csv-is-dir", B("--csv", "{empty_dir}"), "--csv"),
    Cli("bench-out-is-dir", B("--out", "{empty_dir}"), "empty_dir"),
    Cli("bench-import-missing", B("--import", "nosuchmodule_xyz"), "nosuchmodule_xyz"),
    Cli("bench-resume-without-out", B("--resume"), "--out"),
    Cli("compare-unknown-model", ["compare", "nosuchnet", "--no-run", "--out", "{tmp}/c"], "nosuchnet"),
    Cli("compare-nothing", ["compare", "--no-run", "--out", "{tmp}/c"], "--preset"),
    Cli("compare-bench-missing", ["compare", "lenet5", "--bench", "{tmp}/nope.jsonl", "--no-run", "--out", "{tmp}/c"],
        "nope.jsonl"),
    Cli("compare-bench-not-json", ["compare", "lenet5", "--bench", "{text}", "--no-run", "--out", "{tmp}/c"],
        "notes.txt"),
    Cli("compare-accuracy-missing", ["compare", "lenet5", "--accuracy", "{tmp}/nope.json", "--no-run",
                                     "--out", "{tmp}/c"], "nope.json"),
    Cli("compare-accuracy-not-json", ["compare", "lenet5", "--accuracy", "{text}", "--no-run", "--out", "{tmp}/c"],
        "notes.txt"),
    Cli("compare-family-unknown", ["compare", "--family", "nosuchfamily", "--no-run", "--out", "{tmp}/c"],
        "nosuchfamily"),
    Cli("compare-batch-zero", ["compare", "lenet5", "--batch-sizes", "0", "--out", "{tmp}/c"], "batch"),
    Cli("compare-out-is-file", ["compare", "lenet5", "--no-run", "--no-figures", "--out", "{text}"], "notes.txt"),
]


def _fit(**kw):
    from cnnlab.train import fit

    base = dict(epochs=1, train_samples=64, test_samples=32, progress="none", threads=1)
    base.update(kw)
    return fit("lenet5", "digits", **base)


def _loader(**kw):
    from cnnlab.data import load_dataset, make_loader

    return make_loader(load_dataset("digits"), **{"batch_size": 8, "train": True, **kw})


def _recipe(**kw):
    from cnnlab.train.recipes import get_recipe

    return get_recipe("lenet5", **kw)


def _read_weights(path, fmt):
    from cnnlab.weights.load import read_state_dict

    return read_state_dict(path, fmt)


def _search(**kw):
    from cnnlab.search.run import SearchConfig

    return SearchConfig(**{"space": "layers-tiny", "strategy": "random", "budget": 2, "tabular": True, **kw}).validate()


API_CASES = [
    # -- the registry and models -----------------------------------------------------------
    Api("create-unknown", lambda lab: cnnlab.create_model("nosuchnet"), cnnlab.UnknownModelError, "nosuchnet"),
    Api("create-not-a-string", lambda lab: cnnlab.create_model(123), (TypeError, ValueError), "123"),
    Api("create-unknown-kwarg", lambda lab: cnnlab.create_model("lenet5", bogus=1), TypeError, "bogus"),
    Api("create-misspelt-kwarg", lambda lab: cnnlab.create_model("resnet20", num_clases=5), TypeError, "num_classes"),
    Api("create-num-classes-negative", lambda lab: cnnlab.create_model("lenet5", num_classes=-1), ValueError,
        "num_classes"),
    Api("create-num-classes-float", lambda lab: cnnlab.create_model("resnet20", num_classes=2.5), (TypeError, ValueError),
        "num_classes"),
    Api("create-num-classes-str", lambda lab: cnnlab.create_model("resnet20", num_classes="10"), (TypeError, ValueError),
        "num_classes"),
    Api("create-drop-rate-above-one", lambda lab: cnnlab.create_model("resnet20", drop_rate=1.5), ValueError, "drop_rate"),
    Api("create-drop-rate-nan", lambda lab: cnnlab.create_model("resnet20", drop_rate=math.nan), ValueError, "drop_rate"),
    Api("create-in-chans-zero", lambda lab: cnnlab.create_model("resnet20", in_chans=0), ValueError, "in_chans"),
    Api("create-drop-path-two", lambda lab: cnnlab.create_model("resnet56", drop_path_rate=2.0), ValueError,
        "drop_path_rate"),
    Api("create-no-published-weights", lambda lab: cnnlab.create_model("lenet5", pretrained=True), ValueError, "lenet5"),
    Api("create-unknown-tag", lambda lab: cnnlab.create_model("resnet18", pretrained="NOSUCH"), ValueError, "NOSUCH"),
    Api("create-missing-arch-file", lambda lab: cnnlab.create_model(str(lab["tmp"] / "nope.json")), ValueError,
        ("nope.json", "no architecture file")),
    Api("create-wrong-schema-file", lambda lab: cnnlab.create_model(str(lab["wrong_json"])), ValueError, "wrong.json"),
    Api("list-models-not-a-string", lambda lab: cnnlab.list_models(5), TypeError, "pattern"),
    Api("create-out-indices-out-of-range", lambda lab: cnnlab.create_model("resnet18", features_only=True,
                                                                          out_indices=(9,)), ValueError, "9"),
    Api("create-out-indices-without-features", lambda lab: cnnlab.create_model("resnet18", out_indices=(1,)),
        ValueError, "features_only"),
    Api("model-info-unknown", lambda lab: cnnlab.model_info("nosuchnet"), cnnlab.UnknownModelError, "nosuchnet"),
    Api("forward-wrong-channels", lambda lab: cnnlab.create_model("lenet5")(torch.randn(1, 3, 32, 32)), ValueError,
        "channel"),
    Api("forward-int-tensor", lambda lab: cnnlab.create_model("lenet5")(torch.zeros(1, 1, 32, 32, dtype=torch.long)),
        (TypeError, ValueError), "float"),
    Api("forward-too-small", lambda lab: cnnlab.create_model("lenet5")(torch.randn(1, 1, 8, 8)), ValueError, "32x32"),
    # -- anatomy ---------------------------------------------------------------------------
    Api("analyze-unknown", lambda lab: cnnlab.analyze("nosuchnet"), ValueError, "nosuchnet"),
    Api("analyze-zero-size", lambda lab: cnnlab.analyze("lenet5", input_size=(1, 0, 32)), ValueError, "(1, 0, 32)"),
    Api("analyze-batch-zero", lambda lab: cnnlab.analyze("lenet5", batch_size=0), ValueError, "batch_size"),
    Api("analyze-count-unknown", lambda lab: cnnlab.analyze("lenet5", count=("conv", "bogus")), ValueError, "bogus"),
    Api("analyze-count-string", lambda lab: cnnlab.analyze("lenet5", count="conv,linear"), None, ""),  # as the CLI
    Api("analyze-mode-unknown", lambda lab: cnnlab.analyze("lenet5", mode="test"), ValueError, "test"),
    Api("analyze-optimizer-unknown", lambda lab: cnnlab.analyze("lenet5", optimizer="nosuch"), ValueError, "nosuch"),
    Api("analyze-module-no-size", lambda lab: cnnlab.analyze(torch.nn.Conv2d(3, 4, 3)), ValueError, "input_size"),
    Api("analyze-size-text", lambda lab: cnnlab.analyze("lenet5", input_size="abc"), ValueError, "abc"),
    Api("analyze-batch-float", lambda lab: cnnlab.analyze("lenet5", batch_size=2.5), ValueError, "2.5"),
    Api("analyze-size-nan", lambda lab: cnnlab.analyze("lenet5", input_size=(1, math.nan, 32)), ValueError, "nan"),
    Api("analyze-dtype-text", lambda lab: cnnlab.analyze("lenet5", dtype="floaty"), (TypeError, ValueError), "floaty"),
    # -- training --------------------------------------------------------------------------
    Api("fit-epochs-zero", lambda lab: _fit(epochs=0, out=str(lab["tmp"] / "r")), ValueError, "epochs"),
    Api("fit-lr-nan", lambda lab: _fit(lr=math.nan, out=str(lab["tmp"] / "r")), ValueError, "lr"),
    Api("fit-unknown-option", lambda lab: _fit(bogus=1), TypeError, "bogus"),
    Api("fit-misspelt-option", lambda lab: _fit(epoch=1), TypeError, "epochs"),
    Api("fit-epochs-string", lambda lab: _fit(epochs="2", out=str(lab["tmp"] / "r")), None, ""),  # read as 2
    Api("fit-batch-float", lambda lab: _fit(batch_size=2.5, out=str(lab["tmp"] / "r")), (TypeError, ValueError),
        "batch_size"),
    Api("fit-module-no-dataset", lambda lab: ctrain.fit(torch.nn.Linear(2, 2)),
        ValueError, "dataset"),
    Api("fit-recipe-unknown", lambda lab: _fit(recipe="nosuch"), ValueError, "nosuch"),
    Api("fit-optimizer-unknown", lambda lab: _fit(optimizer="nosuch", out=str(lab["tmp"] / "r")), ValueError, "nosuch"),
    Api("fit-optimizer-not-callable", lambda lab: _fit(optimizer=42, out=str(lab["tmp"] / "r")), (TypeError, ValueError),
        "optimizer"),
    Api("fit-device-unknown", lambda lab: _fit(device="tpu"), ValueError, "tpu"),
    Api("fit-precision-unknown", lambda lab: _fit(precision="fp8"), ValueError, "fp8"),
    Api("fit-trackers-string", lambda lab: _fit(trackers="tensorboard", out=str(lab["tmp"] / "r")),
        (TypeError, ValueError), "trackers"),
    Api("fit-train-samples-zero", lambda lab: _fit(train_samples=0), ValueError, "train_samples"),
    Api("fit-val-fraction-one", lambda lab: _fit(val_fraction=1.0, out=str(lab["tmp"] / "r")), ValueError,
        "val_fraction"),
    Api("fit-milestones-text", lambda lab: _fit(milestones=(0.5, "x"), out=str(lab["tmp"] / "r")), ValueError,
        "milestones"),
    Api("fit-dataset-unknown", lambda lab: ctrain.fit("lenet5", "nosuchset"),
        ValueError, "nosuchset"),
    Api("recipe-unknown-field", lambda lab: recipes.get_recipe(
        "lenet5", bogus=1), (TypeError, ValueError), "bogus"),
    Api("recipe-lr-negative", lambda lab: recipes.get_recipe(
        "lenet5", lr=-1.0), ValueError, "lr"),
    Api("recipe-epochs-bool", lambda lab: _recipe(epochs=True), ValueError, "epochs"),
    Api("recipe-schedule-misspelt", lambda lab: _recipe(schedule="cosinee"), ValueError, "cosinee"),
    Api("recipe-optimizer-options-string", lambda lab: _recipe(optimizer_options="amsgrad=true"), ValueError,
        "optimizer_options"),
    Api("recipe-milestones-string", lambda lab: _recipe(milestones="0.5"), None, ""),  # read as (0.5,), as the CLI
    Api("checkpoint-truncated", lambda lab: checkpoint.load_checkpoint(
        lab["trunc_ckpt"]), ValueError, "trunc.pt"),
    Api("checkpoint-missing", lambda lab: checkpoint.load_checkpoint(
        lab["tmp"] / "nope.pt"), (OSError, ValueError), "nope.pt"),
    Api("evaluate-text-checkpoint", lambda lab: inference.evaluate_checkpoint(
        lab["text_pt"]), ValueError, "notes.pt"),
    Api("predict-not-image", lambda lab: inference.predict(
        lab["ckpt"], [lab["fake_png"]], device="cpu"), ValueError, "fake.png"),
    # -- data ------------------------------------------------------------------------------
    Api("dataset-unknown", lambda lab: cdata.load_dataset("nosuchset"), ValueError,
        "nosuchset"),
    Api("dataset-split-unknown", lambda lab: cdata.load_dataset(
        "digits", split="validation"), ValueError, "validation"),
    Api("dataset-option-unknown", lambda lab: cdata.load_dataset(
        "digits", bogus=1), (TypeError, ValueError), "bogus"),
    Api("shapes-zero-samples", lambda lab: cdata.load_dataset(
        "shapes", num_samples=0), ValueError, "num_samples"),
    Api("shapes-zero-size", lambda lab: cdata.load_dataset(
        "shapes", image_size=0), ValueError, "image_size"),
    Api("imagefolder-missing", lambda lab: cdata.load_dataset(
        "imagefolder", root=str(lab["tmp"] / "nope")), (OSError, ValueError), "nope"),
    Api("loader-batch-zero", lambda lab: _loader(batch_size=0), ValueError, "batch_size"),
    Api("loader-batch-negative", lambda lab: _loader(batch_size=-1), ValueError, "batch_size"),
    Api("loader-batch-float", lambda lab: _loader(batch_size=2.5), (TypeError, ValueError), "batch_size"),
    Api("loader-no-dataset", lambda lab: cdata.make_loader(
        None, batch_size=4, train=True), ValueError, "NoneType"),
    Api("dataset-split-none", lambda lab: cdata.load_dataset("digits", split=None),
        ValueError, "None"),
    Api("augment-crop-negative", lambda lab: cdata.AugmentConfig(crop_padding=-1),
        ValueError, "crop_padding"),
    Api("augment-cutout-nan", lambda lab: _loader(augment=cdata.AugmentConfig(
        cutout=math.nan)), ValueError, "cutout"),
    Api("augment-scale-reversed", lambda lab: cdata.AugmentConfig(
        random_resized_crop=True, scale=(0.9, 0.1)), ValueError, "scale"),
    Api("loader-input-size-zero", lambda lab: _loader(input_size=(1, 0, 0)), ValueError, "input_size"),
    # -- weights ---------------------------------------------------------------------------
    Api("weights-unknown-model", lambda lab: cweights.get_weights("nosuchnet"),
        ValueError, "nosuchnet"),
    Api("weights-unknown-tag", lambda lab: cweights.get_weights(
        "resnet50", "NOSUCH"), ValueError, "NOSUCH"),
    Api("weights-none-published", lambda lab: cweights.get_weights("lenet5"),
        ValueError, "lenet5"),
    # -- bench -----------------------------------------------------------------------------
    Api("weights-read-missing", lambda lab: _read_weights(lab["tmp"] / "nope.pt", "pickle"), ValueError,
        ("nope.pt", "no weights file")),
    Api("weights-read-text", lambda lab: _read_weights(lab["text"], "pickle"), ValueError, "notes.txt"),
    Api("weights-read-text-safetensors", lambda lab: _read_weights(lab["text"], "safetensors"), ValueError,
        "notes.txt"),
    Api("weights-read-code-in-pickle", lambda lab: _read_weights(lab["evil"], "pickle"), ValueError, "refused"),
    Api("weights-read-unknown-format", lambda lab: _read_weights(lab["state_dict"], "onnx"), ValueError, "onnx"),
    Api("weights-of-another-model", lambda lab: wload.load_weights(
        cnnlab.create_model("resnet18"), cweights.get_weights("resnet18"),
        lab["state_dict"]), ValueError, "does not fit resnet18"),
    Api("bench-unknown-model", lambda lab: cbench.bench(["nosuchnet"], [1]),
        ValueError, "nosuchnet"),
    Api("bench-batch-zero", lambda lab: cbench.bench(["lenet5"], [0]), ValueError,
        "batch"),
    Api("bench-unknown-setting", lambda lab: cbench.bench(["lenet5"], [1], bogus=1),
        (TypeError, ValueError), "bogus"),
    Api("bench-min-time-nan", lambda lab: cbench.bench(
        ["lenet5"], [1], min_time=math.nan), ValueError, "min_time"),
    Api("bench-read-missing", lambda lab: cbench.read_results(
        str(lab["tmp"] / "nope.jsonl")), (OSError, ValueError), "nope.jsonl"),
    Api("bench-models-string", lambda lab: cbench.bench("lenet5", [1],
                                                                                              min_time=0.01),
        (TypeError, ValueError), "lenet5"),
    # -- export ----------------------------------------------------------------------------
    Api("compare-nothing", lambda lab: cbench.compare([], out=str(lab["tmp"] / "c")),
        ValueError, "--preset"),
    Api("export-unknown", lambda lab: cexport.export_onnx(
        "nosuchnet", lab["tmp"] / "m.onnx"), ValueError, "nosuchnet"),
    Api("export-opset-zero", lambda lab: cexport.export_onnx(
        "lenet5", lab["tmp"] / "m.onnx", opset=0, check=False), ValueError, "opset"),
    Api("export-batch-zero", lambda lab: cexport.export_onnx(
        "lenet5", lab["tmp"] / "m.onnx", batch_size=0, check=False), ValueError, "batch size"),
    Api("export-atol-nan", lambda lab: cexport.export_onnx(
        "lenet5", lab["tmp"] / "m.onnx", atol=math.nan), ValueError, "atol"),
    # -- search ----------------------------------------------------------------------------
    Api("export-activation-unknown", lambda lab: cexport.export_onnx(
        "lenet5", lab["tmp"] / "m.onnx", activations=["nosuchlayer"], check=False), ValueError, "nosuchlayer"),
    Api("search-budget-zero", lambda lab: _search(budget=0), ValueError, "budget"),
    Api("search-space-unknown", lambda lab: _search(space="nosuch"), ValueError, "nosuch"),
    Api("search-strategy-unknown", lambda lab: _search(strategy="nosuch"), ValueError, "nosuch"),
    Api("search-cpus-nan", lambda lab: _search(cpus_per_trial=math.nan), ValueError, "cpus_per_trial"),
    Api("search-gpus-inf", lambda lab: _search(gpus_per_trial=math.inf), ValueError, "gpus_per_trial"),
    Api("search-batch-zero", lambda lab: _search(batch_size=0), ValueError, "batch_size"),
    Api("search-train-samples-zero", lambda lab: _search(train_samples=0), ValueError, "train_samples"),
    Api("search-budget-float", lambda lab: _search(budget=2.5), ValueError, "budget"),
    # -- experiments -----------------------------------------------------------------------
    Api("experiment-unknown", lambda lab: cexp.run_experiment("nosuch"),
        ValueError, "nosuch"),
    Api("experiment-scale-unknown", lambda lab: cexp.run_experiment(
        "bottleneck", scale="huge", out=lab["tmp"] / "e"), ValueError, "huge"),
    Api("experiment-seeds-zero", lambda lab: cexp.run_experiment(
        "bottleneck", seeds=0, out=lab["tmp"] / "e"), ValueError, "seeds"),
    Api("experiment-device-unknown", lambda lab: cexp.run_experiment(
        "bottleneck", device="tpu", out=lab["tmp"] / "e"), ValueError, "tpu"),
    Api("experiment-progress-unknown", lambda lab: cexp.run_experiment(
        "bottleneck", progress="loud", out=lab["tmp"] / "e"), ValueError, "loud"),
    Api("experiment-threads-zero", lambda lab: cexp.run_experiment(
        "bottleneck", threads=0, out=lab["tmp"] / "e"), ValueError, "threads"),
    Api("experiment-dataset-unused", lambda lab: cexp.run_experiment(
        "bottleneck", dataset="cifar10", out=lab["tmp"] / "e"), ValueError, "--dataset"),
]


# -- the files the cases use -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    root = tmp_path_factory.mktemp("lab")
    lab: dict[str, Path] = {}

    def put(name: str, rel: str, content: bytes | str | None = None) -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content)
        elif content is not None:
            p.write_bytes(content)
        lab[name] = p
        return p

    put("text", "notes.txt", "hello\n")
    put("text_pt", "notes.pt", "this is not a checkpoint\n")
    put("empty_file", "empty.pt", b"")
    (root / "empty_dir").mkdir()
    lab["empty_dir"] = root / "empty_dir"
    put("wrong_json", "wrong.json", json.dumps({"hello": 1}))
    put("not_json", "broken.json", '{"format": "cnnlab-architecture", ')
    png = put("png", "digit.png")
    Image.new("L", (28, 28), 128).save(png)
    put("trunc_png", "trunc.png", png.read_bytes()[:40])
    put("fake_png", "fake.png", "not an image\n")
    put("empty_png", "empty.png", b"")
    for c in ("a", "b"):
        put(f"bad_{c}", f"bad_folder/{c}/fake.png", "not an image\n")
        (root / "good_folder" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (16, 16), 40 * i).save(root / "good_folder" / c / f"{i}.png")
    lab["bad_folder"], lab["good_folder"] = root / "bad_folder", root / "good_folder"
    for folder, classes in (("one_class", ("a",)), ("empty_class", ("a", "b"))):
        for c in classes:
            (root / folder / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (16, 16), 50 * i).save(root / folder / "a" / f"{i}.png")
        lab[folder] = root / folder
    Image.new("RGBA", (40, 20), (10, 200, 30, 128)).save(put("rgba_png", "rgba.png"))
    Image.new("I;16", (28, 28)).save(put("i16_png", "i16.png"))
    put("mine", "mine.txt", "my own notes, not a bench file\n")
    put("bench_jsonl", "bench.jsonl", json.dumps({"type": "environment", "cnnlab": "0.1.0"}) + "\n")

    # a real (tiny) training run and a tabular search
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--train-samples", "64",
                     "--test-samples", "32", "--progress", "none", "--threads", "1", "--out", str(root / "run")]) == 0
        assert main(["search", "run", "--space", "layers-tiny", "--strategy", "random", "--budget", "3", "--tabular",
                     "--out", str(root / "search"), "--no-final-eval"]) == 0
    finally:
        os.chdir(cwd)
    lab["run"], lab["ckpt"], lab["search"] = root / "run", root / "run" / "best.pt", root / "search"
    lab["search_state"] = root / "search" / "state.pt"
    for copy in ("run_trunc_last", "run_bad_config"):
        shutil.copytree(lab["run"], root / copy)
        lab[copy] = root / copy
    last = lab["run_trunc_last"] / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    lab["run_trunc_best"] = lab["run_trunc_last"] / "best.pt"
    (lab["run_bad_config"] / "config.json").write_text('{"model": "lenet5", ')
    put("trunc_ckpt", "trunc.pt", lab["ckpt"].read_bytes()[: lab["ckpt"].stat().st_size // 2])
    torch.save({"foo": 1, "bar": [1, 2]}, put("foreign_ckpt", "foreign.pt"))
    torch.save(cnnlab.create_model("lenet5").state_dict(), put("state_dict", "state_dict.pt"))
    state = torch.load(lab["ckpt"], weights_only=False)
    state["model"] = cnnlab.create_model("resnet20", num_classes=10).state_dict()  # another model's weights
    torch.save(state, put("other_model", "other_model.pt"))
    torch.save({"format": 1, "model": _Evil(str(root / "pwned")), "meta": {"model": "lenet5"}}, put("evil", "evil.pt"))
    return lab


class _Evil:
    """Unpickling this runs code (it would create the file ``marker``): loading must refuse it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fill(arg: str, lab: dict[str, Path], tmp: Path) -> str:
    return arg.format(tmp=tmp, **{k: str(v) for k, v in lab.items()})


def _fragments(f) -> tuple[str, ...]:
    return (f,) if isinstance(f, str) else tuple(f)


@pytest.fixture
def no_server(monkeypatch):
    """`cnnlab serve` given good input must not block the tests: starting the server returns at once."""
    try:
        import uvicorn
    except ImportError:
        return
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``cnnlab ARGV`` run in this process."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is what we look for
            import traceback

            traceback.print_exc(file=err)
            rc = 1
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input(case: Cli, lab, tmp_path, monkeypatch, no_server):
    monkeypatch.chdir(tmp_path)  # nothing a case writes by default lands in the repository
    monkeypatch.delenv("CNNLAB_DEBUG", raising=False)
    argv = [_fill(a, lab, tmp_path) for a in case.argv]
    kept = lab[case.keeps].read_bytes() if case.keeps else None
    rc, out, err = run_cli(argv)
    assert not (lab["run"].parent / "pwned").exists(), "a checkpoint ran code when loaded"
    if kept is not None:
        assert lab[case.keeps].read_bytes() == kept, f"{lab[case.keeps]} was changed"
    assert "Traceback" not in err and "internal error" not in err, err
    if case.expect in (OK, HELP):
        assert rc == (0 if case.expect == OK else 2), err
        assert case.expect == OK or "usage:" in out + err
        for f in _fragments(case.fragment):
            assert _fill(f, lab, tmp_path) in out + err
        return
    assert rc == 2, f"exit status {rc}; stderr: {err}"
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= case.max_lines, err
    for f in _fragments(case.fragment):
        assert _fill(f, lab, tmp_path) in err, err


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input(case: Api, lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case.exc is None:
        case.call({**lab, "tmp": tmp_path})
        return
    with pytest.raises(case.exc) as info:
        case.call({**lab, "tmp": tmp_path})
    for f in _fragments(case.fragment):
        assert f in str(info.value), str(info.value)


def test_enough_cases():
    assert len(CLI_CASES) + len(API_CASES) >= 120
    for cases in (CLI_CASES, API_CASES):
        ids = [c.id for c in cases]
        assert len(ids) == len(set(ids))


def test_bench_compare_stays_the_function_once_its_module_is_imported():
    # found by the table: `cnnlab.bench.compare(...)` was a lazy wrapper that the import of the
    # submodule cnnlab.bench.compare replaced by that module ("'module' object is not callable")
    import cnnlab.bench
    import cnnlab.bench.compare  # noqa: F401

    assert callable(cnnlab.bench.compare)
