"""Parsers for the raw file formats: IDX (MNIST, Fashion-MNIST) and CIFAR's binary
version. Nothing here unpickles: CIFAR is read from its binary records, straight
out of the tar.gz (no extraction to disk)."""
from __future__ import annotations

import gzip
import os
import tarfile

import numpy as np
import torch

from cnnlab.data.core import DataError

__all__ = ["read_idx", "read_cifar_tar", "CIFAR_LAYOUT"]

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in .gz).

    Header: two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension (LeCun et al., the MNIST page).
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims))
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says {dims} but the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


# name -> (archive folder, train members, test members, label bytes per record, label byte used)
CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, 0, "batches.meta.txt"),
    "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"], 2, 1, "fine_label_names.txt"),
}
_PIXELS = 3 * 32 * 32


def read_cifar_tar(path: str | os.PathLike, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """Images uint8 (N, 3, 32, 32), labels int64 and class names (if the archive has
    them) of one split, read from the binary-version tar.gz. Each record is the label
    byte(s) then 1024 red, 1024 green and 1024 blue bytes, row-major (Krizhevsky's
    CIFAR page); CIFAR-100 records carry the coarse label first, then the fine one."""
    folder, train, test, label_bytes, which, names_file = CIFAR_LAYOUT[name]
    members = train if split == "train" else test
    record = label_bytes + _PIXELS
    chunks, names = [], None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in members:
                data = _member(tar, f"{folder}/{m}", path)
                if len(data) == 0 or len(data) % record:
                    raise DataError(f"{path}: {folder}/{m} has {len(data)} bytes, not a multiple of the {record}-byte CIFAR record")
                chunks.append(np.frombuffer(data, dtype=np.uint8).reshape(-1, record))
            try:
                text = _member(tar, f"{folder}/{names_file}", path).decode("utf-8", "replace")
                names = [line.strip() for line in text.splitlines() if line.strip()]
            except DataError:
                names = None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read the CIFAR archive {path}: {exc}") from exc
    rows = np.concatenate(chunks)
    labels = torch.from_numpy(rows[:, which].astype(np.int64))
    images = torch.from_numpy(rows[:, label_bytes:].copy()).view(-1, 3, 32, 32)
    return images, labels, names


def _member(tar: tarfile.TarFile, member: str, path) -> bytes:
    try:
        info = tar.getmember(member)
    except KeyError:
        raise DataError(f"{path} has no member {member}: is it the binary version of CIFAR?") from None
    if not info.isfile():
        raise DataError(f"{path}: {member} is not a regular file")
    f = tar.extractfile(info)
    return f.read() if f is not None else b""
