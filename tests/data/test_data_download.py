"""Downloads, checksums, resume, offline errors and the real file formats (IDX, CIFAR
binary in a tar.gz), served by a local HTTP server on 127.0.0.1 that honours Range."""
import dataclasses
import gzip
import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.data import DataError, load_dataset, make_loader
from cnnlab.data import datasets as D
from cnnlab.data.download import RemoteFile, download_file, verify_file
from cnnlab.data.formats import read_cifar_tar, read_idx
from tests.conftest import local_http_server


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
            if start >= len(body):  # what real servers answer for a range past the end
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if self.server.cut:  # half of the promised bytes, then the connection drops
            self.server.cut = False
            chunk = chunk[: len(chunk) // 2]
            self.close_connection = True
        self.wfile.write(chunk)
        self.server.sent += len(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.log = {}, []
    with local_http_server(_Handler) as srv:
        srv.ranges, srv.sent, srv.cut = True, 0, False
        yield srv


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


def _idx_raw(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written by hand from the format's definition (big-endian everything)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(dtype).tobytes()


@pytest.mark.parametrize("code,values", [(0x08, [0, 255, 7]), (0x09, [-128, 127, -1]), (0x0B, [-30000, 2, 300]),
                                         (0x0C, [-70000, 1 << 30, 5]), (0x0D, [0.5, -2.25, 3e5]), (0x0E, [1e-300, -3.5, 2.0])])
def test_read_idx_reads_every_type_big_endian_compressed_or_not(tmp_path, code, values):
    a = np.array(values * 4).reshape(3, 4)
    plain, packed = tmp_path / "x-idx2", tmp_path / "x-idx2.gz"
    plain.write_bytes(_idx_raw(a, code))
    packed.write_bytes(gzip.compress(_idx_raw(a, code)))
    for p in (plain, packed):
        got = read_idx(p)
        assert got.shape == (3, 4) and np.array_equal(got.astype(np.float64), a.astype(np.float64)), p


def test_read_idx_header_edge_cases(tmp_path):
    p = tmp_path / "e-idx"
    # empty arrays are valid IDX files; the first byte of a dimension counts (dims are 4 bytes)
    for shape in ((0,), (1 << 24, 0), (0, 1 << 24)):
        p.write_bytes(_idx_raw(np.zeros(shape, dtype=np.uint8)))
        assert read_idx(p).shape == shape
    for raw, message in ((b"\x00\x00\x08", "magic"), (b"\x01\x00\x08\x01" + bytes(5), "magic"),
                         (b"\x00\x01\x08\x01" + bytes(5), "magic"), (b"\x00\x00\x07\x01" + bytes(5), "magic"),
                         (b"\x00\x00\x08\x00", "truncated IDX header"), (b"\x00\x00\x08\x02" + bytes(7), "truncated IDX header"),
                         (b"\x00\x00\x0c\x01" + (2).to_bytes(4, "big") + bytes(7), "holds 7 bytes")):
        p.write_bytes(raw)
        with pytest.raises(DataError, match=message):
            read_idx(p)
    gz = tmp_path / "bad-idx.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=f"cannot read IDX file {re.escape(str(gz))}"):
        read_idx(gz)


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
            assert f.md5 and re.fullmatch(r"[0-9a-f]{32}", f.md5), f.md5
            # MD5 collisions can be made on purpose: every official file is pinned by SHA-256 too
            assert f.sha256 and re.fullmatch(r"[0-9a-f]{64}", f.sha256), (name, f.name)
            assert isinstance(f.size, int) and f.size > 0  # a partial file is recognised by its size
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


# ---------------------------------------------------------------------------------- checksums, partial downloads


def _hashes(body: bytes) -> dict:
    return {"md5": hashlib.md5(body).hexdigest(), "sha256": hashlib.sha256(body).hexdigest()}


def test_verify_file_checks_every_checksum_it_is_given(tmp_path):
    body = b"the official bytes\n" * 100
    path = tmp_path / "f.bin"
    path.write_bytes(body)
    h = _hashes(body)
    other = _hashes(body + b"!")
    ok = RemoteFile("f.bin", ("http://x/f.bin",), **h)
    assert verify_file(path, ok) is None
    assert verify_file(path, RemoteFile("f.bin", ("u",), md5=h["md5"])) is None
    assert verify_file(path, RemoteFile("f.bin", ("u",), sha256=h["sha256"].upper())) is None  # hex case ignored
    # a wrong MD5 is refused on its own and next to a right SHA-256, and vice versa
    for md5, sha in ((other["md5"], None), (other["md5"], h["sha256"]), (None, other["sha256"]), (h["md5"], other["sha256"])):
        problem = verify_file(path, RemoteFile("f.bin", ("u",), md5=md5, sha256=sha))
        algorithm = "sha256" if sha == other["sha256"] else "md5"
        assert problem == f"{algorithm} is {h[algorithm]}, expected {other[algorithm]}", (md5, sha)
    # torch.hub-style prefix of the SHA-256
    assert verify_file(path, RemoteFile("f.bin", ("u",), sha256_prefix=h["sha256"][:8])) is None
    bad_prefix = RemoteFile("f.bin", ("u",), sha256_prefix=other["sha256"][:8])
    assert verify_file(path, bad_prefix) == f"sha256 is {h['sha256']}, expected it to start with {other['sha256'][:8]}"
    # an empty file is not the official one
    path.write_bytes(b"")
    assert verify_file(path, ok) is not None


def test_a_remote_file_needs_a_well_formed_checksum():
    with pytest.raises(ValueError, match="at least one checksum"):
        RemoteFile("f.bin", ("u",))
    with pytest.raises(ValueError, match="at least one checksum"):
        RemoteFile("f.bin", ("u",), md5="", sha256="", sha256_prefix="")
    for bad in (dict(md5="abc"), dict(md5="z" * 32), dict(sha256="0" * 63), dict(sha256="g" * 64),
                dict(sha256_prefix="ab"), dict(sha256_prefix="xyz123"), dict(md5=" " * 32)):
        with pytest.raises(ValueError, match="hex"):
            RemoteFile("f.bin", ("u",), **bad)
    with pytest.raises(ValueError, match=r"f.bin: sha256_prefix must be 6-64 hex digits, got 'ab'"):
        RemoteFile("f.bin", ("u",), sha256_prefix="ab")
    RemoteFile("f.bin", ("u",), md5="A" * 32, sha256="0" * 64, sha256_prefix="0123ab")  # hex in either case


@pytest.mark.parametrize("wrong", ["md5", "sha256", "both"])
def test_a_download_with_a_wrong_md5_or_sha256_is_refused_and_deleted(server, tmp_path, wrong):
    body = b"served bytes" * 1000
    spec = _remote(server, "w.bin", body)
    other = _hashes(b"published bytes")
    fields = {"md5": other["md5"], "sha256": other["sha256"]} if wrong == "both" else {wrong: other[wrong]}
    with pytest.raises(DataError, match=f"checksum mismatch, {'sha256' if wrong != 'md5' else 'md5'} is") as exc:
        download_file(dataclasses.replace(spec, **fields), tmp_path, progress=False)
    assert "deleted" in str(exc.value) and list(tmp_path.iterdir()) == []


def test_an_md5_only_file_is_still_verified(server, tmp_path):
    # a file known by its MD5 alone (a RemoteFile of your own) is checked, not skipped
    body = b"md5 only" * 500
    _Handler.files["/m.bin"] = body
    good = RemoteFile("m.bin", (f"{server.url}/m.bin",), md5=hashlib.md5(body).hexdigest(), size=len(body))
    bad = dataclasses.replace(good, md5=hashlib.md5(body[:-1]).hexdigest())
    with pytest.raises(DataError, match="md5 is"):
        download_file(bad, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert download_file(good, tmp_path, progress=False).read_bytes() == body


def test_an_existing_file_that_fails_its_checksum_is_refused_not_replaced(server, tmp_path):
    body = b"good" * 100
    spec = _remote(server, "e.bin", body)
    (tmp_path / "e.bin").write_bytes(b"bad!" * 100)  # same size, other bytes
    with pytest.raises(DataError, match="exists but does not match its checksum"):
        download_file(spec, tmp_path, progress=False)
    assert (tmp_path / "e.bin").read_bytes() == b"bad!" * 100 and _Handler.log == []


def test_a_corrupted_partial_download_is_not_accepted(server, tmp_path):
    body = np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    spec = _remote(server, "p.bin", body)
    part = tmp_path / "p.bin.part"
    part.write_bytes(b"\x00" * 80_000)  # the first bytes are wrong: resuming completes a corrupt file
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(spec, tmp_path, progress=False)
    assert _Handler.log == [("/p.bin", "bytes=80000-")]
    assert list(tmp_path.iterdir()) == []  # the corrupt bytes are gone: the next attempt starts afresh
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body
    assert _Handler.log[-1] == ("/p.bin", None)


def test_a_partial_file_of_full_size_is_verified_before_use(server, tmp_path):
    body = b"0123456789" * 1000
    spec = _remote(server, "s.bin", body)
    part = tmp_path / "s.bin.part"
    part.write_bytes(b"9876543210" * 1000)  # as long as the file: nothing to fetch, but wrong
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(spec, tmp_path, progress=False)
    assert _Handler.log == [] and list(tmp_path.iterdir()) == []
    part.write_bytes(body)  # complete and right: accepted without a request
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body and _Handler.log == []


def test_a_partial_file_longer_than_the_file_is_restarted(server, tmp_path):
    body = b"abc" * 1000
    spec = _remote(server, "l.bin", body)
    (tmp_path / "l.bin.part").write_bytes(body + b"trailing junk")
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body
    assert _Handler.log == [("/l.bin", None)]  # no Range: the whole file again


def test_a_complete_partial_file_of_unknown_size_is_checked_after_416(server, tmp_path):
    body = b"whole" * 1000
    spec = dataclasses.replace(_remote(server, "u.bin", body), size=None)
    part = tmp_path / "u.bin.part"
    part.write_bytes(body[:-1] + b"X")  # all bytes there, the last one wrong
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(spec, tmp_path, progress=False)
    assert _Handler.log == [("/u.bin", f"bytes={len(body)}-")] and not part.exists()
    part.write_bytes(body)
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body


def test_a_cut_connection_keeps_the_bytes_and_is_never_accepted(server, tmp_path):
    body = np.random.default_rng(4).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    spec = dataclasses.replace(_remote(server, "c.bin", body), size=None)  # only Content-Length tells
    server.cut = True
    with pytest.raises(DataError, match="connection closed after 50,000 of 100,000 bytes") as exc:
        download_file(spec, tmp_path, progress=False)
    assert "partial file" in str(exc.value) and "resumes" in str(exc.value)
    assert not (tmp_path / "c.bin").exists() and (tmp_path / "c.bin.part").read_bytes() == body[:50_000]
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body
    assert _Handler.log[-1] == ("/c.bin", "bytes=50000-") and server.sent == 100_000


def test_a_corrupt_mirror_is_skipped_for_a_good_one(server, tmp_path):
    body = b"genuine" * 300
    spec = _remote(server, "g.bin", body)
    _Handler.files["/evil/g.bin"] = b"tampered" * 300
    spec = dataclasses.replace(spec, urls=(f"{server.url}/evil/g.bin", *spec.urls))
    assert download_file(spec, tmp_path, progress=False).read_bytes() == body
    assert [p for p, _ in _Handler.log] == ["/evil/g.bin", "/g.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.bin"]


# ---------------------------------------------------------------------------------- CIFAR records, directly


def _tar(path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_read_cifar_tar_reads_records_and_refuses_broken_members(tmp_path):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    coarse, fine = np.array([1, 2, 3], dtype=np.uint8), np.array([97, 0, 42], dtype=np.uint8)
    records = np.concatenate([coarse[:, None], fine[:, None], img.reshape(3, -1)], 1).tobytes()
    path = tmp_path / "c100.tar.gz"
    names = "apple\n\xe9t\xe9\n\n".encode("latin-1")  # not UTF-8: read with a replacement character
    _tar(path, {"cifar-100-binary/train.bin": records, "cifar-100-binary/fine_label_names.txt": names})
    images, labels, classes = read_cifar_tar(path, "cifar100", "train")
    assert labels.dtype == torch.int64 and labels.tolist() == [97, 0, 42]  # the fine label, second byte
    assert images.dtype == torch.uint8 and np.array_equal(images.numpy(), img)
    assert classes == ["apple", "\ufffdt\ufffd"]
    _tar(path, {"cifar-100-binary/train.bin": records})
    assert read_cifar_tar(path, "cifar100", "train")[2] is None  # no names file: no names
    for member, message in ((records[:-1], "not a multiple of the 3074-byte"), (b"", "has 0 bytes"),
                            (None, "is not a regular file")):
        _tar(path, {"cifar-100-binary/train.bin": member})
        with pytest.raises(DataError, match=message):
            read_cifar_tar(path, "cifar100", "train")
    _tar(path, {"cifar-100-binary/test.bin": records})
    with pytest.raises(DataError, match=f"{re.escape(str(path))} has no member cifar-100-binary/train.bin"):
        read_cifar_tar(path, "cifar100", "train")
    path.write_bytes(b"\x1f\x8b truncated gzip")
    with pytest.raises(DataError, match=f"cannot read the CIFAR archive {re.escape(str(path))}"):
        read_cifar_tar(path, "cifar100", "train")


def test_missing_files_message_lists_each_file_its_url_and_checksum(tmp_path):
    from cnnlab.data.download import missing_files_message

    files = (RemoteFile("a.gz", ("https://example.org/a.gz", "https://mirror/a.gz"), md5="0" * 32),
             RemoteFile("b.gz", ("https://example.org/b.gz",), sha256="1" * 64))
    msg = missing_files_message("toy", tmp_path, files)
    lines = msg.splitlines()
    assert lines[0] == "toy: files are missing."
    assert lines[1] == f"Place these files (unchanged, still compressed) in {tmp_path}/ :"
    assert lines[2] == f"  a.gz    from https://example.org/a.gz  (md5 {'0' * 32})"
    assert lines[3] == "  b.gz    from https://example.org/b.gz"  # no MD5 to show
    assert lines[4].startswith("or run `cnnlab download toy`") and len(lines) == 5
    assert missing_files_message("toy", tmp_path, files, "no network.").splitlines()[0] == "toy: no network."
