"""Downloads, checksums, resume, offline errors and the real file formats (IDX, CIFAR
binary in a tar.gz), served by a local HTTP server on 127.0.0.1 that honours Range."""
import dataclasses
import gzip
import hashlib
import http.server
import io
import socket
import tarfile
import threading

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.data import DataError, load_dataset, make_loader
from cnnlab.data import datasets as D
from cnnlab.data.download import RemoteFile, download_file
from cnnlab.data.formats import read_idx


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    log: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.files.get(self.path)
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and rng.startswith("bytes=") and self.server.ranges:
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        self.wfile.write(chunk)
        self.server.sent += len(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.ranges, srv.sent = True, 0
    _Handler.files, _Handler.log = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _remote(server, name, body, **kw):
    _Handler.files[f"/{name}"] = body
    return RemoteFile(name, (f"{server.url}/{name}",), sha256=hashlib.sha256(body).hexdigest(),
                      md5=hashlib.md5(body).hexdigest(), size=len(body), **kw)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------- downloads


def test_download_writes_the_verified_file(server, tmp_path):
    body = bytes(range(256)) * 1000
    spec = _remote(server, "blob.bin", body)
    path = download_file(spec, tmp_path, progress=False)
    assert path.read_bytes() == body and not (tmp_path / "blob.bin.part").exists()
    download_file(spec, tmp_path, progress=False)  # present and verified: no second request
    assert len(_Handler.log) == 1


def test_download_resumes_a_partial_file_with_range(server, tmp_path):
    body = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    spec = _remote(server, "big.bin", body)
    (tmp_path / "big.bin.part").write_bytes(body[:120_000])
    download_file(spec, tmp_path, progress=False)
    assert (tmp_path / "big.bin").read_bytes() == body
    assert _Handler.log == [("/big.bin", "bytes=120000-")]
    assert server.sent == 180_000  # only the missing bytes travelled


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    server.ranges = False
    body = b"x" * 5000 + b"y" * 5000
    spec = _remote(server, "f.bin", body)
    (tmp_path / "f.bin.part").write_bytes(b"x" * 3000)
    download_file(spec, tmp_path, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body


def test_checksum_mismatch_is_an_error_and_nothing_is_kept(server, tmp_path):
    good = _remote(server, "data.gz", b"the real bytes")
    _Handler.files["/data.gz"] = b"something else!"
    bad = dataclasses.replace(good, size=None)
    with pytest.raises(DataError, match="checksum mismatch.*sha256") as exc:
        download_file(bad, tmp_path, progress=False)
    assert "deleted" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_a_mirror_is_tried_after_a_failing_url(server, tmp_path):
    spec = _remote(server, "m.bin", b"payload")
    spec = dataclasses.replace(spec, urls=(f"{server.url}/missing", *spec.urls))
    assert download_file(spec, tmp_path, progress=False).read_bytes() == b"payload"


def test_offline_error_names_every_file_and_the_folder(monkeypatch, tmp_path):
    port = _closed_port()
    files = tuple(dataclasses.replace(f, urls=(f"http://127.0.0.1:{port}/{f.name}",)) for f in D.MNIST_FILES)
    monkeypatch.setitem(D._SPECS, "mnist", dataclasses.replace(D._SPECS["mnist"], files=files))
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(exc.value)
    assert f"{tmp_path / 'mnist'}/" in msg
    for f in D.MNIST_FILES:
        assert f.name in msg
    with pytest.raises(DataError, match="download=False") as exc:
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(exc.value)


def test_existing_corrupt_file_is_reported(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in D.MNIST_FILES:
        (folder / f.name).write_bytes(b"not mnist")
    with pytest.raises(DataError, match="corrupt or not the official file"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------------- IDX


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _serve_idx_dataset(server, monkeypatch, name, n_train=30, n_test=12):
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    files = tuple(_remote(server, fname, _idx(a)) for fname, a in arrays.items())
    monkeypatch.setitem(D._SPECS, name, dataclasses.replace(D._SPECS[name], files=files))
    return arrays


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_dataset_downloads_parses_and_caches(server, monkeypatch, tmp_path, name):
    arrays = _serve_idx_dataset(server, monkeypatch, name)
    train = load_dataset(name, data_dir=tmp_path)
    assert train.images.shape == (30, 1, 28, 28) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte.gz"])
    assert np.array_equal(train.labels.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    test = load_dataset(name, "test", data_dir=tmp_path)
    assert len(test) == 12 and len(train.classes) == 10
    # parsed tensors are cached: the raw files are no longer needed
    for f in (tmp_path / name).glob("*.gz"):
        f.unlink()
    again = load_dataset(name, data_dir=tmp_path, download=False)
    assert torch.equal(again.images, train.images)
    # MNIST digits reach LeNet-5 padded to 32x32 (LeCun et al., 1998)
    x, _ = next(iter(make_loader(test, batch_size=4, train=False, input_size=(1, 32, 32))))
    assert x.shape == (4, 1, 32, 32)
    assert torch.allclose(x[:, :, :2, :], x[0, 0, 0, 0])  # the border is padding


def test_cli_download_fetches_and_lists_present(server, monkeypatch, tmp_path, capsys):
    _serve_idx_dataset(server, monkeypatch, "mnist")
    assert main(["download", "mnist", "--data-dir", str(tmp_path)]) == 0
    assert "ready" in capsys.readouterr().out
    assert main(["datasets", "--json", "--data-dir", str(tmp_path)]) == 0
    import json

    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mnist"]["present"] and not rows["cifar10"]["present"]
    assert main(["download", "shapes", "--data-dir", str(tmp_path)]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_read_idx_rejects_bad_files(tmp_path):
    good = np.arange(24).reshape(2, 3, 4)
    p = tmp_path / "a-idx3-ubyte.gz"
    p.write_bytes(_idx(good))
    assert np.array_equal(read_idx(p), good)
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 5))
    with pytest.raises(DataError, match="holds 5 bytes"):
        read_idx(p)
    p.write_bytes(gzip.compress(b"PK\x03\x04 zip file"))
    with pytest.raises(DataError, match="magic"):
        read_idx(p)


# ---------------------------------------------------------------------------------- CIFAR


def _cifar_tar(name: str, n_train: int, n_test: int):
    """A tar.gz in CIFAR's binary layout: label byte(s), then R, G, B planes of 32x32."""
    rng = np.random.default_rng(2)
    folder, train_members, test_members, label_bytes, which, names_file = {
        "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, 0, "batches.meta.txt"),
        "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"], 2, 1, "fine_label_names.txt"),
    }[name]
    k = 10 if name == "cifar10" else 100
    truth = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(member, data):
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for split, members, n in (("train", train_members, n_train), ("test", test_members, n_test)):
            imgs, labs = [], []
            for m in members:
                img = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
                lab = rng.integers(0, k, n)
                coarse = rng.integers(0, 20, n)
                lead = [lab] if label_bytes == 1 else [coarse, lab]
                rec = np.concatenate([np.stack(lead, 1).astype(np.uint8), img.reshape(n, -1)], 1)
                add(m, rec.tobytes())
                imgs.append(img)
                labs.append(lab)
            truth[split] = (np.concatenate(imgs), np.concatenate(labs))
        add(names_file, "\n".join(f"class_{i}" for i in range(k)).encode() + b"\n\n")
    return buf.getvalue(), truth


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_binary_archive_parses(server, monkeypatch, tmp_path, name):
    body, truth = _cifar_tar(name, 4, 6)
    spec = D._SPECS[name]
    remote = _remote(server, spec.files[0].name, body)
    monkeypatch.setitem(D._SPECS, name, dataclasses.replace(spec, files=(remote,)))
    train = load_dataset(name, data_dir=tmp_path)
    test = load_dataset(name, "test", data_dir=tmp_path)
    n_train = 20 if name == "cifar10" else 4  # five data batches for CIFAR-10
    assert train.images.shape == (n_train, 3, 32, 32) and len(test) == 6
    assert np.array_equal(train.images.numpy(), truth["train"][0])  # R plane first, row-major
    assert np.array_equal(train.labels.numpy(), truth["train"][1])  # fine label for CIFAR-100
    assert np.array_equal(test.labels.numpy(), truth["test"][1])
    assert train.classes[:2] == ["class_0", "class_1"]  # names read from the archive


def test_cifar_archive_without_the_binary_members_is_explained(server, monkeypatch, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    spec = D._SPECS["cifar10"]
    remote = _remote(server, spec.files[0].name, buf.getvalue())
    monkeypatch.setitem(D._SPECS, "cifar10", dataclasses.replace(spec, files=(remote,)))
    with pytest.raises(DataError, match="binary version"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_official_checksums_are_well_formed():
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        for f in D.dataset_files(name):
            assert f.md5 and len(f.md5) == 32 and int(f.md5, 16) >= 0
            assert f.sha256 is None or len(f.sha256) == 64
            assert all(u.startswith(("http://", "https://")) and u.endswith(f.name) for u in f.urls)


def test_concurrent_downloads_fetch_the_file_once(server, tmp_path):
    body = b"z" * 200_000
    spec = _remote(server, "shared.bin", body)
    errors = []

    def fetch():
        try:
            download_file(spec, tmp_path, progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and (tmp_path / "shared.bin").read_bytes() == body
    assert len(_Handler.log) == 1
