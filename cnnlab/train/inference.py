"""Using a trained checkpoint: rebuild its model, evaluate it on a dataset, classify images."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from cnnlab.train.checkpoint import CheckpointError, load_checkpoint
from cnnlab.train.loop import evaluate, resolve_device

__all__ = ["model_from_checkpoint", "evaluate_checkpoint", "predict", "evaluate_pretrained", "predict_pretrained"]


def model_from_checkpoint(state: dict[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """The registered model a checkpoint was trained as, with its weights, in eval mode."""
    from cnnlab.registry import create_model, is_model

    meta = state["meta"]
    name = meta["model"]
    if not meta.get("registered", True) or not is_model(name):
        raise CheckpointError(f"the checkpoint holds a custom model ({name!r}) that is not in the registry; "
                              "load its 'model' state_dict into your own module instead")
    model = create_model(name, num_classes=int(meta["num_classes"]))
    weights = state["model"]
    if state.get("ema"):  # the run was evaluated with its moving-average weights: use those
        weights = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        mine, theirs = set(model.state_dict()), set(weights)
        missing, extra = sorted(mine - theirs), sorted(theirs - mine)
        detail = (f"{len(missing)} of its tensors missing (e.g. {missing[0]}), {len(extra)} unexpected (e.g. "
                  f"{extra[0] if extra else '-'}); were they saved from another model?" if missing or extra
                  else str(exc).splitlines()[-1].strip() or str(exc).splitlines()[0])
        raise CheckpointError(f"the checkpoint's weights do not fit {name}: {detail}") from None
    return model.to(device).eval()


def evaluate_checkpoint(path: str | os.PathLike, dataset: str | None = None, *, device: str = "auto",
                        batch_size: int = 256, precision: str = "fp32", data_dir: str | None = None,
                        data_root: str | None = None, test_samples: int | None = None) -> dict[str, Any]:
    """Test loss, top-1 and top-5 of a checkpoint on ``dataset`` (default: the one it trained on)."""
    from cnnlab import data as cdata

    dev = resolve_device(device)
    state = load_checkpoint(path, map_location=dev)
    meta = state["meta"]
    dataset = dataset or meta["dataset"]
    options = {"root": data_root} if data_root else dict(state["config"].get("data_options") or {})
    if data_root is None and state["config"].get("data_root") and dataset == meta["dataset"]:
        options["root"] = state["config"]["data_root"]
    if dataset == "imagefolder" and dataset == meta["dataset"]:
        # the training run's normalisation and channels, not statistics re-measured on another folder
        options.setdefault("mean", list(meta["mean"]))
        options.setdefault("std", list(meta["std"]))
        options.setdefault("channels", int(meta["dataset_channels"]))
    test_set = cdata.load_dataset(dataset, "test", data_dir=data_dir, **options)
    classes = list(getattr(test_set, "classes", None) or [])
    if classes and len(classes) != meta["num_classes"]:
        raise ValueError(f"the checkpoint classifies {meta['num_classes']} classes ({meta['dataset']}); "
                         f"{dataset} has {len(classes)}")
    trained = [str(c) for c in meta.get("classes") or []]
    if classes and trained and [str(c) for c in classes] != trained:
        differ = next(i for i, (a, b) in enumerate(zip(trained, classes)) if str(a) != str(b))
        raise ValueError(f"the checkpoint's classes are not {dataset}'s: its class {differ} is "
                         f"{trained[differ]!r} ({meta['dataset']}), {dataset}'s is {classes[differ]!r}; "
                         "its scores would be read against the wrong labels")
    if test_samples is not None and test_samples < len(test_set):
        test_set = test_set.subset(list(range(test_samples)))
    model = model_from_checkpoint(state, dev)
    loader = cdata.make_loader(test_set, batch_size=batch_size, train=False, device=dev,
                               input_size=tuple(meta["input_size"]))
    result = evaluate(model, loader, device=dev, precision=precision)
    return {"checkpoint": str(path), "model": meta["model"], "dataset": dataset, "epoch": state["epoch"], **result}


def _load_image(path: str | os.PathLike, channels: int, size: tuple[int, int],
                eval_crop: float | None = None) -> torch.Tensor:
    """An image file as uint8 (C, H, W), decoded as image folders are (every Pillow mode,
    16-bit scaled, EXIF orientation, size bounded): resized to ``size`` (the training
    data's native size), or, with ``eval_crop``, prepared as an image folder's test images
    (shorter side to size / eval_crop, centre crop)."""
    from PIL import Image

    from cnnlab.data.folder import _open_image, _to_tensor, decode_image

    if not Path(path).exists():
        raise FileNotFoundError(f"no image at {path}")
    try:
        if eval_crop is not None:
            return decode_image(str(path), size, eval_crop=eval_crop, channels=channels)
        img = _open_image(str(path), channels)
    except ValueError as exc:  # DataError
        raise ValueError(f"{path} is not an image Pillow can read: {str(exc).split(': ', 1)[-1]}") from None
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return _to_tensor(img)


def predict(checkpoint: str | os.PathLike, images: Sequence[str | os.PathLike], *, top_k: int = 5,
            device: str = "auto") -> list[dict[str, Any]]:
    """Top-``top_k`` classes with probabilities for each image file.

    Each image is converted to the training data's channels and native size and then
    goes through the same evaluation pipeline (resize/pad, normalization) as the test set.
    """
    from cnnlab import data as cdata

    if not images:
        raise ValueError("give at least one image")
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint, map_location=dev)
    meta = state["meta"]
    model = model_from_checkpoint(state, dev)
    channels = int(meta["dataset_channels"])
    native = tuple(meta["dataset_image_size"] or meta["input_size"][1:])
    crop = None
    if meta["dataset"] == "imagefolder":
        # decoded exactly as the folder's test images were: shorter side to size / crop_pct, centre crop
        from cnnlab.data.folder import EVAL_CROP, LARGE_INPUT

        native = tuple(meta["input_size"][1:])
        crop = (state["config"].get("data_options") or {}).get("crop_pct")
        crop = crop if crop is not None else (EVAL_CROP if min(native) >= LARGE_INPUT else 1.0)
    x = torch.stack([_load_image(p, channels, native, crop) for p in images])
    classes = list(meta["classes"]) or [str(i) for i in range(meta["num_classes"])]
    info = cdata.dataset_info(meta["dataset"])
    info = info.with_(mean=tuple(meta["mean"]), std=tuple(meta["std"]), channels=channels,
                      image_size=native) if hasattr(info, "with_") else info
    ds = cdata.InMemoryDataset(x, torch.zeros(len(x), dtype=torch.long), classes, info, "test")
    loader = cdata.make_loader(ds, batch_size=len(x), train=False, device=dev, input_size=tuple(meta["input_size"]))
    with torch.no_grad():
        probs = torch.cat([model(xb).float().softmax(dim=1) for xb, _ in loader])
    k = min(top_k, probs.shape[1])
    top = probs.topk(k, dim=1)
    return [
        {"image": str(Path(p)), "top": [{"class": classes[int(i)], "index": int(i), "probability": float(v)}
                                        for v, i in zip(top.values[n], top.indices[n])]}
        for n, p in enumerate(images)
    ]


# ---------------------------------------------------------------------------------- published weights


def evaluate_pretrained(model: str, tag: bool | str = True, *, data_root: str | os.PathLike, device: str = "auto",
                        batch_size: int = 64, precision: str = "fp32", test_samples: int | None = None,
                        num_workers: int | None = None) -> dict[str, Any]:
    """Top-1/top-5 of ``model``'s published weights on an ImageNet-style folder (one
    subfolder per class, named by WordNet id or class name), with the weights' own
    preprocessing, beside the publisher's figures."""
    from cnnlab.registry import create_model
    from cnnlab.weights import get_weights
    from cnnlab.weights.transforms import ImageFiles, folder_samples

    w = get_weights(model, tag)
    samples = folder_samples(data_root, w)
    if test_samples is not None and test_samples < len(samples):
        samples = samples[:test_samples]
    dev = resolve_device(device)
    net = create_model(model, pretrained=w.tag).to(dev).eval()
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(ImageFiles(samples, w.preprocessing), batch_size=batch_size,
                                         num_workers=workers, shuffle=False)
    result = evaluate(net, ((x.to(dev), y.to(dev)) for x, y in loader), device=dev, precision=precision)
    return {"model": model, "weights": w.name, "data_root": str(data_root), **result,
            "published": {"top1": w.top1, "top5": w.top5, "source": w.accuracy_source},
            "preprocessing": w.preprocessing.describe()}


def predict_pretrained(model: str, images: Sequence[str | os.PathLike], tag: bool | str = True, *, top_k: int = 5,
                       device: str = "auto") -> list[dict[str, Any]]:
    """Top-``top_k`` ImageNet classes with probabilities for each image, with the
    published weights of ``model`` and their preprocessing."""
    from cnnlab.registry import create_model
    from cnnlab.weights import get_weights
    from cnnlab.weights.spec import class_names
    from cnnlab.weights.transforms import load_image

    if not images:
        raise ValueError("give at least one image")
    w = get_weights(model, tag)
    x = torch.stack([load_image(p, w.preprocessing) for p in images])
    dev = resolve_device(device)
    net = create_model(model, pretrained=w.tag).to(dev).eval()
    with torch.no_grad():
        probs = net(x.to(dev)).float().softmax(dim=1)
    classes = class_names(w)
    top = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        {"image": str(Path(p)), "weights": w.name,
         "top": [{"class": classes[int(i)], "index": int(i), "probability": float(v)}
                 for v, i in zip(top.values[n], top.indices[n])]}
        for n, p in enumerate(images)
    ]
