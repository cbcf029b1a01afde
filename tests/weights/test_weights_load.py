"""Pretrained weights end to end, without the internet: the tests make checkpoint files
from cnnlab models' state_dicts, register them as weights of ``resnet20`` (a small CIFAR
net) and serve them from an HTTP server on 127.0.0.1 that honours Range and can cut a
connection half-way."""
import dataclasses
import hashlib
import http.server
import io
import json
import logging
import math
import os
import socket

import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.weights import WeightsError, cached_path, freeze_backbone, imagenet_classes, verify_cached
from cnnlab.weights import spec as S
from cnnlab.weights.spec import Preprocessing, Weights
from tests.conftest import local_http_server

MODEL = "resnet20"  # 0.27M parameters, input 32x32


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    log: list = []
    cut_next = False  # send half of the next response, then drop the connection

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path)
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        if body is None:
            self.send_error(404)
            return
        start = int(rng[6:].split("-")[0]) if rng else 0
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if _Handler.cut_next:
            _Handler.cut_next = False
            self.wfile.write(chunk[: len(chunk) // 2])
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.log, _Handler.cut_next = {}, [], False
    with local_http_server(_Handler) as srv:
        yield srv


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    S._ensure_loaded()
    monkeypatch.setitem(S._REGISTRY, MODEL, {})
    return tmp_path / "home" / "weights"


def _source_state(seed=1, num_classes=1000, name=MODEL):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in cnnlab.create_model(name, num_classes=num_classes).state_dict().items()}


def _pickle_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _flip_a_byte_keeping_the_time(path, body):
    """Rewrite the cached file with one byte flipped, restoring its modification time as a
    tamperer would; returns its original stat."""
    st = path.stat()
    data = bytearray(body)
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return st


def _publish(server, state=None, *, fmt="pickle", full_hash=False, tag="TEST", body=None, served=None, **kw):
    """Register weights for resnet20 whose file (made from ``state``) the server offers."""
    state = _source_state() if state is None else state
    if body is None:
        if fmt == "safetensors":
            from safetensors.torch import save

            body = save(state)
        else:
            body = _pickle_bytes(state)
    digest = hashlib.sha256(body).hexdigest()
    file_name = f"{MODEL}-{tag.lower()}-{digest[:8]}.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    _Handler.files[f"/{file_name}"] = body if served is None else served
    fields = dict(
        model=MODEL, tag=tag, url=f"{server.url}/{file_name}", format=fmt,
        preprocessing=Preprocessing(resize=36, crop=32, interpolation="bilinear", mean=(0.5, 0.5, 0.5),
                                    std=(0.25, 0.25, 0.25), source="test"),
        license="test", publisher="test", publisher_name="test", source="made by the test",
        sha256=digest if full_hash else None, sha256_prefix=None if full_hash else digest[:8],
        default=True, top1=50.0, top5=70.0)
    fields.update(kw)
    w = Weights(**fields)
    S._REGISTRY[MODEL][w.tag] = w
    return w, body


def _equal_to(model, state, skip=()):
    own = model.state_dict()
    return all(torch.equal(own[k], state[k]) for k in state if not k.startswith(skip))


# ---------------------------------------------------------------------------------- download, formats


@pytest.mark.parametrize("fmt,full_hash", [("pickle", False), ("safetensors", True), ("pickle", True)])
def test_download_verify_and_load(server, home, fmt, full_hash):
    state = _source_state()
    w, body = _publish(server, state, fmt=fmt, full_hash=full_hash)
    model = cnnlab.create_model(MODEL, pretrained=True)
    assert _equal_to(model, state) and model.num_classes == 1000
    path = cached_path(w)
    assert path.parent == home and path.read_bytes() == body
    assert not path.with_name(path.name + ".part").exists()
    # the second use trusts the record (size + mtime + hash): no request, no re-download
    again = cnnlab.create_model(MODEL, pretrained="test")
    assert _equal_to(again, state) and len(_Handler.log) == 1


def test_resume_after_a_cut_connection(server, home):
    w, body = _publish(server)
    _Handler.cut_next = True
    with pytest.raises(WeightsError, match="connection closed after") as exc:
        cnnlab.create_model(MODEL, pretrained=True)
    part = home / (w.file_name + ".part")
    assert "resumes it" in str(exc.value) and part.stat().st_size == len(body) // 2
    model = cnnlab.create_model(MODEL, pretrained=True)  # the second attempt asks only for the rest
    assert _Handler.log[-1] == (f"/{w.file_name}", f"bytes={len(body) // 2}-")
    assert cached_path(w).read_bytes() == body and _equal_to(model, _source_state())


@pytest.mark.parametrize("full_hash", [True, False])
def test_checksum_mismatch_deletes_the_download_and_says_so(server, home, full_hash):
    good = _pickle_bytes(_source_state())
    evil = _pickle_bytes(_source_state(seed=2))  # a valid checkpoint, but not the published one
    w, _ = _publish(server, body=good, served=evil, full_hash=full_hash)
    with pytest.raises(WeightsError, match="checksum mismatch") as exc:
        cnnlab.create_model(MODEL, pretrained=True)
    msg = str(exc.value)
    assert "deleted" in msg and (w.sha256 in msg if full_hash else f"start with {w.sha256_prefix}" in msg)
    assert not home.exists() or list(home.iterdir()) == []


def test_offline_error_names_the_url_and_the_exact_path(home, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    w, body = _publish(dataclasses.make_dataclass("Srv", [("url", str)])(f"http://127.0.0.1:{port}"))
    with pytest.raises(WeightsError) as exc:
        cnnlab.create_model(MODEL, pretrained=True)
    msg = str(exc.value)
    assert w.url in msg and str(home / w.file_name) in msg
    # placing the file there by hand is enough: it is verified and used
    home.mkdir(parents=True, exist_ok=True)
    (home / w.file_name).write_bytes(body)
    assert _equal_to(cnnlab.create_model(MODEL, pretrained=True), _source_state())


def test_no_download_names_the_path(server, home):
    w, _ = _publish(server)
    from cnnlab.weights import fetch_weights

    with pytest.raises(WeightsError, match="downloading is off") as exc:
        fetch_weights(w, download=False)
    assert str(home / w.file_name) in str(exc.value) and _Handler.log == []


def test_tampered_cache_is_caught_deleted_and_fetched_again(server, home, caplog):
    state = _source_state()
    w, body = _publish(server, state)
    cnnlab.create_model(MODEL, pretrained=True)
    path = cached_path(w)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes, new mtime
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="cnnlab.weights"):
        model = cnnlab.create_model(MODEL, pretrained=True)
    assert "did not match their checksum" in caplog.text and "deleted" in caplog.text
    assert len(_Handler.log) == 2 and path.read_bytes() == body and _equal_to(model, state)


def test_cheap_check_trusts_size_and_mtime_full_check_does_not(server, home):
    w, body = _publish(server)
    cnnlab.create_model(MODEL, pretrained=True)
    path = cached_path(w)
    st = _flip_a_byte_keeping_the_time(path, body)
    assert verify_cached(w) == "ok"  # documented limit of the cheap check
    assert verify_cached(w, full=True) == "deleted" and not path.exists()
    # a size change alone is caught without the full flag
    cnnlab.create_model(MODEL, pretrained=True)
    with open(path, "ab") as f:
        f.write(b"x")
    assert verify_cached(w) == "deleted"


# ---------------------------------------------------------------------------------- what is refused


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_malicious_pickle_is_refused_without_running_it(server, home, tmp_path):
    marker = tmp_path / "pwned"
    body = _pickle_bytes({"fc.weight": torch.zeros(1), "payload": _Evil(str(marker))})
    _publish(server, body=body)
    with pytest.raises(WeightsError, match="refused to load.*weights_only=True"):
        cnnlab.create_model(MODEL, pretrained=True)
    assert not marker.exists()


def test_weights_of_another_architecture_are_refused_naming_the_keys(server, home):
    _publish(server, _source_state(name="resnet32"))  # 5 blocks per stage instead of 3
    with pytest.raises(WeightsError, match="does not fit resnet20") as exc:
        cnnlab.create_model(MODEL, pretrained=True)
    assert "unexpected key(s): layer1.3." in str(exc.value)
    _publish(server, _source_state(num_classes=10), tag="TEN")  # entry says 1000 classes
    with pytest.raises(WeightsError, match=r"fc.weight \(10, 64\) vs \(1000, 64\)"):
        cnnlab.create_model(MODEL, pretrained="TEN")


def test_in_chans_other_than_the_weights_is_refused(server, home):
    _publish(server)
    with pytest.raises(WeightsError, match="3-channel"):
        cnnlab.create_model(MODEL, pretrained=True, in_chans=1)


# ---------------------------------------------------------------------------------- fine-tuning start


def test_other_num_classes_replaces_the_classifier_saying_so_once(server, home, caplog):
    state = _source_state()
    _publish(server, state)
    with caplog.at_level(logging.WARNING, logger="cnnlab.weights"):
        a = cnnlab.create_model(MODEL, pretrained=True, num_classes=7)
        b = cnnlab.create_model(MODEL, pretrained=True, num_classes=7)
    assert a.fc.weight.shape == (7, 64) and b.num_classes == 7
    assert _equal_to(a, state, skip=("fc.",))  # the backbone is the published one
    notes = [r for r in caplog.records if "classifier (fc) was replaced" in r.getMessage()]
    assert len(notes) == 1 and "1000 classes" in notes[0].getMessage()
    trainable = freeze_backbone(a)
    assert trainable == ["fc.weight", "fc.bias"]
    assert sum(p.numel() for p in a.parameters() if p.requires_grad) == 7 * 64 + 7


def test_train_pretrained_with_frozen_backbone(server, home, tmp_path):
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.loop import train

    state = _source_state()
    _publish(server, state)
    cfg = TrainConfig(model=MODEL, dataset="shapes", out=str(tmp_path / "run"), progress="none",
                      pretrained=True, freeze_backbone=True, data_options={"num_samples": 96},
                      overrides={"epochs": 1, "batch_size": 32})
    train(cfg)
    trained = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    backbone = [k for k in state if not k.startswith("fc.") and "running" not in k and "num_batches" not in k]
    assert all(torch.equal(trained[k], state[k]) for k in backbone)  # frozen: bit for bit the published weights
    assert trained["fc.weight"].shape == (10, 64)  # shapes has 10 classes: a new classifier
    with pytest.raises(ValueError, match="freeze_backbone needs pretrained"):
        TrainConfig(model=MODEL, freeze_backbone=True).validate()


# ---------------------------------------------------------------------------------- predict, eval, CLI


def _biased_state(scores: dict[int, float]):
    """Weights whose logits are the same for every image: ``scores`` on those classes, 0 elsewhere."""
    state = _source_state()
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.zeros_like(state["fc.bias"])
    for k, v in scores.items():
        state["fc.bias"][k] = v
    return state


def _image(path, size=(40, 30), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return path


def test_predict_prints_imagenet_class_names(server, home, tmp_path, capsys):
    _publish(server, _biased_state({1: 10.0}))
    img = _image(tmp_path / "photo.png")
    assert main(["predict", MODEL, "--pretrained", str(img), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    p = math.exp(10) / (math.exp(10) + 999)  # softmax: one logit of 10, 999 of 0
    assert out[0].endswith("photo.png") and out[1].split() == [f"{100 * p:.2f}%", "goldfish"]
    assert imagenet_classes()[1] == "goldfish"
    # a tag, given as --pretrained=TAG or as the next word, and the image after it
    for flags in (["--pretrained=test"], ["--pretrained", "TEST"]):
        assert main(["predict", MODEL, *flags, str(img), "--top-k", "1", "--json", "--device", "cpu"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r[0]["weights"] == f"{MODEL}.TEST" and r[0]["top"][0]["class"] == "goldfish"


def test_eval_pretrained_on_an_imagenet_style_folder(server, home, tmp_path, capsys):
    _publish(server, _biased_state({1: 10.0, 0: 5.0}))  # always "goldfish", "tench" second
    root = tmp_path / "val"
    for wnid, n in (("n01443537", 3), ("n01440764", 1), ("n01484850", 2)):  # goldfish, tench, great white shark
        (root / wnid).mkdir(parents=True)
        for i in range(n):
            _image(root / wnid / f"{i}.jpg", size=(48 + i, 40))
    assert main(["eval", MODEL, "--pretrained", "--data-root", str(tmp_path), "--device", "cpu", "--json"]) == 0

    r = json.loads(capsys.readouterr().out)
    assert r["samples"] == 6
    assert r["top1"] == pytest.approx(3 / 6)  # only the goldfish images are right
    # top-5 holds goldfish, tench and three classes tied at 0: the shark (index 2) only by chance;
    # the goldfish and tench images are certainly in it
    assert r["top5"] >= 4 / 6
    assert r["published"]["top1"] == 50.0 and r["weights"] == f"{MODEL}.TEST"


def test_cli_weights_table_and_errors(server, home, capsys):
    _publish(server)
    assert main(["weights", MODEL]) == 0
    out = capsys.readouterr().out
    assert "TEST *" in out and out.splitlines()[2].rstrip().endswith("no")
    cnnlab.create_model(MODEL, pretrained=True)
    assert main(["weights", MODEL]) == 0
    assert capsys.readouterr().out.splitlines()[2].rstrip().endswith("yes")
    assert main(["weights", "lenet5"]) == 2
    assert "no published weights for lenet5" in capsys.readouterr().err
    assert main(["predict", "lenet5", "--pretrained", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab predict: error: lenet5 has no published pretrained weights")


def test_a_cache_folder_of_ones_own_is_the_one_checked(server, home, tmp_path):
    from cnnlab.weights import fetch_weights
    from cnnlab.weights.store import is_cached

    w, body = _publish(server)
    elsewhere = tmp_path / "elsewhere"
    path = fetch_weights(w, elsewhere, progress=False)
    assert path == elsewhere / w.file_name and path.read_bytes() == body
    assert is_cached(w, elsewhere) and not is_cached(w)  # the default folder ($CNNLAB_HOME) is empty
    assert verify_cached(w, elsewhere) == "ok" and verify_cached(w) == "missing"
    path.unlink()
    assert not is_cached(w, elsewhere)  # a record without its file vouches for nothing


@pytest.mark.parametrize("full_hash", [True, False])
def test_a_file_placed_by_hand_is_hashed_before_it_is_trusted(server, home, full_hash):
    # no record next to it: nothing vouches for the file, so it is hashed in full, never trusted as is
    w, body = _publish(server, full_hash=full_hash)
    path = cached_path(w)
    path.parent.mkdir(parents=True)
    path.write_bytes(body[:-1] + bytes([body[-1] ^ 1]))  # same size, last byte wrong
    assert verify_cached(w) == "deleted" and not path.exists()
    path.write_bytes(body)
    assert verify_cached(w) == "ok"
    record = json.loads(path.with_name(path.name + ".sha256.json").read_text())
    assert record["sha256"] == hashlib.sha256(body).hexdigest() and record["size"] == len(body)
    assert _Handler.log == []  # nothing was downloaded


def test_the_cheap_check_with_a_published_size(server, home):
    body = _pickle_bytes(_source_state())
    w, _ = _publish(server, body=body, size_bytes=len(body))
    cnnlab.create_model(MODEL, pretrained=True)
    path = cached_path(w)
    st = _flip_a_byte_keeping_the_time(path, body)
    assert verify_cached(w) == "ok"  # size (the published one) and mtime match the record: trusted
    assert verify_cached(w, full=True) == "deleted"
