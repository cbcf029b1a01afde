"""``cnnlab train``, ``cnnlab recipes``, ``cnnlab eval`` and ``cnnlab predict``.

Every recipe field is also a flag of ``cnnlab train`` (``--weight-decay``,
``--milestones 0.5,0.75``, ``--no-flip``, ...); only the flags given override the recipe.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from typing import Any

from cnnlab.train.config import DEVICES, PRECISIONS, PROGRESS
from cnnlab.train.recipes import OPTIMIZERS, SCHEDULES, WARMUPS, Recipe
from cnnlab.train.trackers import TRACKERS

__all__ = ["register"]

# Flags written by hand in _add_train (with short help); the rest are generated from Recipe.
_HAND_WRITTEN = {"epochs", "batch_size", "lr", "optimizer", "optimizer_options", "val_fraction"}
_TAG = re.compile(r"[A-Za-z0-9_]+")
_CHOICES = {"schedule": SCHEDULES, "warmup": WARMUPS, "padding_mode": ("constant", "reflect"),
            "plateau_metric": ("val", "train")}


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_recipe_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("recipe fields (override the recipe; see `cnnlab recipes NAME`)")
    base = Recipe()
    for f in dataclasses.fields(Recipe):
        if f.name in _HAND_WRITTEN:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(base, f.name)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if isinstance(default, tuple):
            kw.update(type=str, metavar="A,B,...")
        elif f.name in _CHOICES:
            kw.update(choices=_CHOICES[f.name])
        elif default is None or isinstance(default, float) or f.name == "eps":
            kw.update(type=float)
        elif isinstance(default, int):
            kw.update(type=int)
        group.add_argument(flag, **kw)


def _add_pretrained(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help=f"{what} the model's published weights (`cnnlab weights`): its DEFAULT, or --pretrained=TAG")
    # `predict resnet50 --pretrained photo.jpg`: argparse would read the image as the tag. A value that
    # cannot be a tag (tags are letters, digits and _) stays a positional argument instead.
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        if args is not None:
            args = list(args)
            for i in range(len(args) - 1):
                if args[i] == "--pretrained" and not args[i + 1].startswith("-") and not _TAG.fullmatch(args[i + 1]):
                    args[i] = "--pretrained=DEFAULT"
        return parse(args, namespace)

    p.parse_known_args = parse_known_args


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model with its paper's recipe",
        description="Train a registered model. Defaults come from the model: `cnnlab train lenet5` trains "
                    "LeNet-5 on the bundled digits with the LeNet-5 recipe. Under torchrun it trains with DDP.")
    p.add_argument("model", help="registered model name (`cnnlab models`)")
    p.add_argument("--dataset", help="dataset (default: digits for MNIST-sized models, cifar10 for CIFAR models, "
                                     "imagefolder for ImageNet models)")
    p.add_argument("--recipe", help="training recipe (`cnnlab recipes`); default: the model's paper")
    p.add_argument("--epochs", type=int, default=argparse.SUPPRESS)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=argparse.SUPPRESS,
                   help="per-process batch size")
    p.add_argument("--lr", type=float, default=argparse.SUPPRESS, help="base learning rate")
    p.add_argument("--optimizer", default=argparse.SUPPRESS, metavar="NAME",
                   help=f"{', '.join(OPTIMIZERS)} or any other torch.optim class name (e.g. NAdam)")
    p.add_argument("--optimizer-option", dest="optimizer_options", action="append", type=_key_value,
                   default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="another keyword argument for the optimizer, e.g. amsgrad=true (repeatable)")
    p.add_argument("--val-fraction", dest="val_fraction", type=float, default=argparse.SUPPRESS,
                   help="fraction of each class held out of the training set for validation "
                        "(best.pt, plateau schedules; default 0.1; 0: none)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the validation hold-out (default 0)")
    p.add_argument("--out", help="run directory (default: runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: the latest run) from last.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--tracker", action="append", choices=TRACKERS, default=[],
                   help="where metrics go besides metrics.jsonl (repeatable)")
    p.add_argument("--progress", choices=PROGRESS, default="auto",
                   help="auto: a bar on a terminal, one line per epoch otherwise")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: chosen from the machine and the "
                                               "model's size, recorded in config.json)")
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", help="where datasets are stored (default: $CNNLAB_DATA or a user cache folder)")
    d.add_argument("--data-root", help="imagefolder: the folder of class subfolders")
    d.add_argument("--data-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="extra dataset option, e.g. num_samples=2000 for shapes (repeatable)")
    d.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")
    d.add_argument("--image-size", type=int, help="train at this height = width instead of the model's input size")
    d.add_argument("--train-samples", type=int, help="use a seeded random subset of this many training images")
    d.add_argument("--test-samples", type=int, help="use a seeded random subset of this many test images")
    d.add_argument("--num-workers", type=int, help="decoding processes for image folders")
    p.add_argument("--json", action="store_true", help="print results.json to stdout at the end")
    p.add_argument("--layer-stats", dest="layer_stats", type=int, default=0, metavar="N",
                   help="every N steps and at each epoch's end, record per-layer weight, gradient and activation "
                        "statistics, the first layer's filters and top-3 predictions in RUN/layers.jsonl (default 0: off)")
    _add_pretrained(p, "start from")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="with --pretrained: train only the classifier (a new one when the class count differs)")
    _add_recipe_flags(p)
    p.set_defaults(func=_cmd_train)


def _not_a_checkpoint(path: str) -> None:
    """``cnnlab eval lenet5`` / ``predict lenet5 x.png``: a model name where a checkpoint belongs."""
    import os

    from cnnlab.registry import is_model

    if not os.path.exists(path) and is_model(path):
        raise ValueError(f"{path!r} is a model name, not a checkpoint: give a .pt file or a run folder (train one "
                         f"with `cnnlab train {path}`), or add --pretrained for its published weights")


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from cnnlab.train.config import TrainConfig
    from cnnlab.train.loop import train

    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a file; give a folder for the run")
    if args.num_workers is not None and args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0 (0: decode in the main process), got {args.num_workers}")
    recipe_names = {f.name for f in dataclasses.fields(Recipe)}
    overrides = {k: v for k, v in vars(args).items() if k in recipe_names}
    if "optimizer_options" in overrides:
        overrides["optimizer_options"] = dict(overrides["optimizer_options"])
    cfg = TrainConfig(
        model=args.model, dataset=args.dataset, recipe=args.recipe, overrides=overrides, out=args.out,
        resume=args.resume, seed=args.seed, device=args.device, precision=args.precision,
        channels_last=args.channels_last, compile=args.compile, trackers=tuple(args.tracker),
        progress=args.progress, threads=args.threads, split_seed=args.split_seed, data_dir=args.data_dir, data_root=args.data_root,
        data_options=dict(args.data_option), download=not args.no_download, image_size=args.image_size,
        train_samples=args.train_samples, test_samples=args.test_samples, num_workers=args.num_workers,
        pretrained=args.pretrained, freeze_backbone=args.freeze_backbone, layer_stats_every=args.layer_stats,
    )
    results = train(cfg)
    if not _is_main_process():
        return 0
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    t, v = results["test"], results["val"]
    where = "" if results["world_size"] == 1 else f" on {results['world_size']} processes"
    shown_val = f"validation {100 * v['top1']:.2f}% (best {100 * results['best_val_top1']:.2f}% at epoch " \
                f"{results['best_epoch']}), " if v else ""
    print(f"{results['model']} on {results['dataset']}: test accuracy {100 * t['top1']:.2f}% "
          f"(top-5 {100 * t['top5']:.2f}%, loss {t['loss']:.4f}, {t['samples']} images), {shown_val}"
          f"after {results['epochs']} epochs{where}, {results['wall_seconds']:.1f} s, "
          f"{results['images_per_second'] or 0:.0f} train images/s, {results['threads']} thread(s) -> {results['out']}")
    return 0


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _add_recipes(sub) -> None:
    p = sub.add_parser("recipes", help="list the training recipes from the papers",
                       description="The training recipes, each with its paper. Give a NAME for all its fields.")
    p.add_argument("name", nargs="?", help="show this recipe in full")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=_cmd_recipes)


def _cmd_recipes(args: argparse.Namespace) -> int:
    from cnnlab.train.recipes import get_recipe, list_recipes

    names = [args.name] if args.name else list_recipes()
    recipes = [get_recipe(n) for n in names]
    if args.json:
        payload = [r.describe() for r in recipes]
        json.dump(payload[0] if args.name else payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.name:
        r = recipes[0]
        print(f"{r.name}: {r.citation}\n")
        for key, value in r.to_dict().items():
            print(f"  {key:<20} {value}")
        print(f"\n{r.notes}")
        return 0
    rows = [("name", "epochs", "batch", "optimizer", "lr", "schedule", "paper")]
    for r in recipes:
        opt = r.optimizer + ("+nesterov" if r.nesterov and r.optimizer == "sgd" else "") + (
            "+ema" if r.ema_decay else "")
        rows.append((r.name, str(r.epochs), str(r.batch_size), opt, f"{r.lr:g}", r.schedule,
                     r.citation.split(")")[0] + ")" if r.citation else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        if k == 0:
            print("  ".join("-" * w for w in widths) + "  -----")
    print(f"\n{len(recipes)} recipe(s); `cnnlab recipes NAME` shows one in full")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (or a model's published weights) on a test set")
    p.add_argument("checkpoint", help="a .pt file (or a run directory: its best.pt); with --pretrained a model name")
    _add_pretrained(p, "evaluate, on an ImageNet-style --data-root with their own preprocessing,")
    p.add_argument("--dataset", help="default: the dataset it was trained on")
    p.add_argument("--data-dir")
    p.add_argument("--data-root", help="imagefolder: the folder of class subfolders")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--test-samples", type=int, help="only the first N test images")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.train.inference import evaluate_checkpoint

    if args.test_samples is not None and args.test_samples < 1:
        raise ValueError(f"--test-samples must be a positive integer, got {args.test_samples}")
    if args.pretrained:
        return _eval_pretrained(args)
    _not_a_checkpoint(args.checkpoint)
    r = evaluate_checkpoint(args.checkpoint, args.dataset, device=args.device, batch_size=args.batch_size,
                            precision=args.precision, data_dir=args.data_dir, data_root=args.data_root,
                            test_samples=args.test_samples)
    if args.json:
        json.dump(r, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{r['model']} (epoch {r['epoch']}) on {r['dataset']}: top-1 {100 * r['top1']:.2f}%  "
              f"top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}  ({r['samples']} images)")
    return 0


def _eval_pretrained(args: argparse.Namespace) -> int:
    from cnnlab.train.inference import evaluate_pretrained

    if args.dataset not in (None, "imagefolder"):
        raise ValueError("--pretrained evaluates ImageNet weights: give ImageNet-style images with --data-root "
                         f"(class folders such as n01440764/), not --dataset {args.dataset}")
    if not args.data_root:
        raise ValueError("--pretrained needs --data-root: an ImageNet-style folder (e.g. ILSVRC2012 val sorted "
                         "into one folder per class, named by WordNet id such as n01440764)")
    r = evaluate_pretrained(args.checkpoint, args.pretrained, data_root=args.data_root, device=args.device,
                            batch_size=args.batch_size, precision=args.precision, test_samples=args.test_samples)
    if args.json:
        json.dump(r, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    pub = r["published"]
    print(f"{r['weights']} on {r['data_root']} ({r['samples']} images): top-1 {100 * r['top1']:.2f}%  "
          f"top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}")
    print(f"published (ImageNet-1k val, 50,000 images): top-1 {pub['top1']:.2f}%  top-5 {pub['top5']:.2f}%  "
          f"[{pub['source']}]")
    print(f"preprocessing: {r['preprocessing']}")
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify image files with a checkpoint (or a model's published weights)")
    p.add_argument("checkpoint", help="a .pt file (or a run directory: its best.pt); with --pretrained a model name")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _add_pretrained(p, "classify into the 1000 ImageNet classes with")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.train.inference import predict

    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.pretrained:
        from cnnlab.train.inference import predict_pretrained

        results = predict_pretrained(args.checkpoint, args.images, args.pretrained, top_k=args.top_k,
                                     device=args.device)
    else:
        _not_a_checkpoint(args.checkpoint)
        results = predict(args.checkpoint, args.images, top_k=args.top_k, device=args.device)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in results:
        print(r["image"])
        for t in r["top"]:
            print(f"  {100 * t['probability']:6.2f}%  {t['class']}")
    return 0


def register(subparsers) -> None:
    _add_train(subparsers)
    _add_recipes(subparsers)
    _add_eval(subparsers)
    _add_predict(subparsers)
