"""``cnnlab datasets`` and ``cnnlab download``."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _size_text(n: int | None) -> str:
    if not n:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _check_data_dir(data_dir: str | None) -> None:
    if data_dir and os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ValueError(f"--data-dir {data_dir} is a file; give the folder datasets are stored in")


def _cmd_datasets(args: argparse.Namespace) -> int:
    from cnnlab.data import dataset_info, is_present, list_datasets
    from cnnlab.data.core import resolve_data_dir

    _check_data_dir(args.data_dir)
    rows = []
    for name in list_datasets():
        info = dataset_info(name)
        rows.append({
            "name": name,
            "classes": info.num_classes,
            "channels": info.channels,
            "image_size": list(info.image_size),
            "train": info.num_train,
            "test": info.num_test,
            "kind": info.kind,
            "download_bytes": info.download_bytes,
            "present": is_present(name, args.data_dir),
            "description": info.description,
        })
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    header = ("name", "classes", "image", "train/test", "download", "local", "description")
    table = [header]
    for r in rows:
        h, w = r["image_size"]
        split = f"{r['train']}/{r['test']}" if r["train"] else "-"
        local = ("yes" if r["present"] else "no") if r["download_bytes"] else "built-in"
        if r["name"] == "imagefolder":
            local = "your folder"
        table.append((r["name"], str(r["classes"] or "any"), f"{r['channels']}x{h}x{w}", split,
                      _size_text(r["download_bytes"]), local, r["description"][:60]))
    widths = [max(len(t[i]) for t in table) for i in range(len(header))]
    for k, t in enumerate(table):
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(t)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\ndata folder: {resolve_data_dir(args.data_dir)}  (--data-dir or $CNNLAB_DATA)")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from cnnlab.data import dataset_files, download_dataset
    from cnnlab.data.datasets import load_dataset

    _check_data_dir(args.data_dir)
    for name in args.dataset:
        if not dataset_files(name):
            print(f"{name}: nothing to download")
            continue
        folder = download_dataset(name, args.data_dir)
        for split in ("train", "test"):  # parse once now and cache the tensors
            load_dataset(name, split, data_dir=args.data_dir, download=False)
        print(f"{name}: ready in {folder}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="list the datasets, their sizes and whether they are here")
    p.add_argument("--data-dir", help="data folder (default $CNNLAB_DATA or ~/.cache/cnnlab)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=_cmd_datasets)

    p = subparsers.add_parser("download", help="download datasets (checksummed, resumable) into the data folder")
    p.add_argument("dataset", nargs="+", help="dataset name(s), e.g. mnist cifar10")
    p.add_argument("--data-dir", help="data folder (default $CNNLAB_DATA or ~/.cache/cnnlab)")
    p.set_defaults(func=_cmd_download)
