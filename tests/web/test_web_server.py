"""`cnnlab serve` without a browser: what it serves, what it refuses, its binding."""
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from cnnlab.web import runs as R
from cnnlab.web.app import MAX_BODY_BYTES, create_app
from tests.web.conftest import ENV, start_server, stop_server

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def runs_tree(tmp_path):
    """runs/a (finished), runs/group/b (running: no results yet), a secret outside."""
    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "a" / "config.json").write_text(json.dumps({"config": {"model": "lenet5", "dataset": "digits"}}))
    recs = [{"kind": "epoch", "epoch": e, "train_loss": 1.0 / e, "test_top1": 0.5 + e / 10, "lr": 0.1}
            for e in (1, 2)]
    (runs / "a" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (runs / "a" / "results.json").write_text(json.dumps({"test": {"top1": 0.7}, "best_top1": 0.7}))
    (runs / "group" / "b").mkdir(parents=True)
    (runs / "group" / "b" / "metrics.jsonl").write_text(json.dumps(recs[0]) + "\n" + '{"kind": "ep')
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.json").write_text('{"password": "hunter2"}')
    os.symlink(tmp_path / "secret", runs / "link")
    return runs


def test_find_runs_and_summary(runs_tree):
    found = [p.relative_to(runs_tree).as_posix() for p in R.find_runs(runs_tree)]
    assert sorted(found) == ["a", "group/b"]  # the symlink to a folder outside is not followed
    a = R.run_summary(runs_tree, runs_tree / "a")
    assert (a["status"], a["epochs_done"], a["test_top1"], a["best_top1"]) == ("finished", 2, 0.7, 0.7)
    c = runs_tree / "c"  # a run with a validation split: the best epoch is chosen on it
    c.mkdir()
    c.joinpath("metrics.jsonl").write_text("".join(json.dumps({"kind": "epoch", "epoch": e, "val_top1": v}) + "\n"
                                                   for e, v in ((1, 0.8), (2, 0.9), (3, 0.85))))
    c_sum = R.run_summary(runs_tree, c)
    assert (c_sum["best_top1"], c_sum["best_on"], c_sum["val_top1"]) == (0.9, "validation", 0.85)
    b = R.run_summary(runs_tree, runs_tree / "group" / "b")
    assert (b["status"], b["epochs_done"]) == ("running", 1)  # the half-written line is not read


@pytest.mark.parametrize("run_id", ["../secret", "link", "a/../../secret", "/etc", "..", "", ".", "a/..",
                                    "group", "missing", "group/b/../../../secret"])
def test_resolve_run_refuses_paths_outside(runs_tree, run_id):
    with pytest.raises(R.RunError):
        R.resolve_run(runs_tree, run_id)


def test_metrics_tail_follows_appends_and_truncation(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = R.MetricsTail(path)
    assert tail.poll() == ([], False)
    path.write_text('{"kind": "epoch", "epoch": 1}\n{"kind": "ep')
    assert tail.poll() == ([{"kind": "epoch", "epoch": 1}], False)
    with open(path, "a") as f:
        f.write('och", "epoch": 2}\n')
    assert tail.poll() == ([{"kind": "epoch", "epoch": 2}], False)
    path.write_text('{"kind": "epoch", "epoch": 1}\n')  # a restarted run rewrote the file
    assert tail.poll() == ([{"kind": "epoch", "epoch": 1}], True)


@pytest.fixture
def client(runs_tree):
    from starlette.testclient import TestClient

    with TestClient(create_app(runs_tree), base_url="http://127.0.0.1:8765") as c:
        yield c


def test_api_serves_runs_and_refuses_traversal(client, runs_tree):
    listed = client.get("/api/runs").json()["runs"]
    assert sorted(r["id"] for r in listed) == ["a", "group/b"]
    run = client.get("/api/run", params={"id": "a"}).json()
    assert [r["epoch"] for r in run["records"] if r["kind"] == "epoch"] == [1, 2]
    for bad in ("../secret", "link", "a/../../secret", "%2e%2e/secret"):
        r = client.get("/api/run", params={"id": bad})
        assert r.status_code == 404 and "hunter2" not in r.text
        assert client.get("/api/run/events", params={"id": bad}).status_code == 404
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f__init__.py",
                 "/app.py", "/static//etc/passwd", "/static/vendor/../../app.py"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "create_app" not in r.text and "root:" not in r.text


def test_compare_figures_stay_in_the_results_folder(tmp_path):
    from starlette.testclient import TestClient

    results = tmp_path / "compare"
    results.mkdir()
    (results / "fig.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "outside.png").write_bytes(b"\x89PNG secret")
    os.symlink(tmp_path / "outside.png", results / "link.png")
    with TestClient(create_app(tmp_path / "runs"), base_url="http://localhost") as c:  # compare/ next to the runs folder is found
        listing = c.get("/api/compare").json()
        assert listing["figures"] == ["fig.png"] and listing["folder"] == str(results.resolve())
        assert c.get("/api/compare/figure", params={"name": "fig.png"}).content == b"\x89PNG fake"
        for bad in ("link.png", "../outside.png", "/etc/passwd", "fig.png/../../outside.png", "x.txt"):
            assert c.get("/api/compare/figure", params={"name": bad}).status_code == 404, bad


def test_other_host_names_are_refused(client):
    """A page on another site that resolves its name to 127.0.0.1 (DNS rebinding) gets nothing."""
    r = client.get("/api/runs", headers={"host": "evil.example:8765"})
    assert r.status_code == 400 and "runs" not in r.text
    assert client.get("/api/runs", headers={"host": "localhost:8765"}).status_code == 200


def test_security_headers_and_own_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and "cnnlab" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert "http://" not in r.text and "https://" not in r.text  # no CDN


def test_oversized_bodies_are_refused(client):
    big = b"x" * (MAX_BODY_BYTES + 1)
    assert client.post("/api/models", content=big).status_code == 413
    # a body that does not announce its length is counted as it arrives
    def chunks():
        for _ in range(3):
            yield b"y" * (MAX_BODY_BYTES // 2 + 1)
    assert client.post("/api/runs", content=chunks()).status_code == 413
    assert client.post("/api/runs", content=b"small").status_code == 405  # no upload endpoint at all


def test_sse_streams_a_growing_file(client, runs_tree):
    """The event stream of a finished run sends its records, then `done`."""
    with client.stream("GET", "/api/run/events", params={"id": "a"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [block for block in text.split("\n\n") if block.startswith("event:")]
    assert [e.splitlines()[0] for e in events] == ["event: record"] * 2 + ["event: done"]
    assert json.loads(events[1].splitlines()[1].removeprefix("data: "))["epoch"] == 2


def test_analyze_api_errors(client):
    assert client.get("/api/analyze", params={"model": "nope"}).status_code == 404
    r = client.get("/api/analyze", params={"model": "lenet5", "batch_size": "0"})
    assert r.status_code == 400 and "batch size" in r.json()["error"]
    r = client.get("/api/analyze", params={"model": "lenet5", "input_size": "__import__('os')"})
    assert r.status_code == 400
    r = client.get("/api/analyze", params={"model": "lenet5", "input_size": "1x99999x99999"})
    assert r.status_code == 400 and "over" in r.json()["error"]


def test_playground_without_a_run_says_how_to_get_one(client, runs_tree):
    r = client.get("/api/playground").json()
    assert r["available"] is False and "cnnlab train lenet5" in r["message"]
    assert client.get("/api/playground/model.onnx").status_code == 404


def test_binds_to_localhost_by_default_and_warns_otherwise(server, tmp_path):
    assert server.url.startswith("http://127.0.0.1:")  # the session's server, started without --host
    assert "warning" not in "".join(server.stderr_lines)
    assert httpx.get(server.url + "api/runs", timeout=30).status_code == 200
    # another address (here a second loopback one, so nothing is exposed) is served with a warning
    s = start_server("--runs", str(tmp_path), "--host", "127.0.0.2")
    try:
        assert "warning: listening on 127.0.0.2" in "".join(s.stderr_lines)
        assert s.url.startswith("http://127.0.0.2:")
        assert httpx.get(s.url + "api/runs", timeout=30).json()["runs"] == []
    finally:
        stop_server(s)


def test_serve_errors_are_one_line(tmp_path, capsys):
    from cnnlab.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err == "cnnlab serve: error: --port must be in 0..65535, got 70000\n"
    assert main(["serve", "--playground", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab serve: error: no checkpoint at") and err.count("\n") == 1


def _layers_run(runs_tree):
    """runs/a gets a layers.jsonl (what `cnnlab train --layer-stats N` writes), one value not finite."""
    recs = [{"kind": "layers_meta", "every": 2, "layers": [{"name": "c1", "type": "Conv2d", "weights": 150}],
             "omitted": [], "classes": ["0", "1"], "images": [], "batch": {"source": "test"}},
            {"kind": "layers", "epoch": 0, "step": 0, "at": "start", "weight_std": [0.1], "act_std": [NAN]},
            {"kind": "filters", "epoch": 1, "step": 2, "layer": "c1", "shape": [1, 1, 2, 2], "values": [0, 85, 170, 255]}]
    (runs_tree / "a" / "layers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"kind": "lay')
    return recs


NAN = float("nan")


def test_layers_api_serves_the_runs_layers_jsonl(client, runs_tree, tmp_path):
    assert client.get("/api/run/layers", params={"id": "a"}).json() == {"records": []}  # a run without --layer-stats
    recs = _layers_run(runs_tree)
    got = client.get("/api/run/layers", params={"id": "a"}).json()["records"]
    assert [r["kind"] for r in got] == ["layers_meta", "layers", "filters"]  # the half-written line is not read
    assert got[1]["act_std"] == [None] and got[1]["weight_std"] == [0.1]  # NaN, deep in a list, is null
    assert got[2] == recs[2]
    for bad in ("../secret", "link", "missing"):
        r = client.get("/api/run/layers", params={"id": bad})
        assert r.status_code == 404 and "hunter2" not in r.text
    # a layers.jsonl that is a link (here to a file outside the runs folder) is not read
    (tmp_path / "outside.jsonl").write_text('{"kind": "layers_meta", "secret": "hunter2"}\n')
    (runs_tree / "a" / "layers.jsonl").unlink()
    os.symlink(tmp_path / "outside.jsonl", runs_tree / "a" / "layers.jsonl")
    r = client.get("/api/run/layers", params={"id": "a"})
    assert r.json() == {"records": []} and "hunter2" not in r.text
    with client.stream("GET", "/api/run/events", params={"id": "a"}) as s:
        assert "hunter2" not in "".join(s.iter_text())


def test_sse_streams_the_layers_records_too(client, runs_tree):
    _layers_run(runs_tree)
    with client.stream("GET", "/api/run/events", params={"id": "a"}) as r:
        text = "".join(r.iter_text())
    events = [block.splitlines() for block in text.split("\n\n") if block.startswith("event:")]
    assert [e[0] for e in events] == ["event: record"] * 2 + ["event: layers"] * 3 + ["event: done"]
    assert json.loads(events[3][1].removeprefix("data: "))["act_std"] == [None]


def test_zoo_rows_name_the_published_weights():
    from cnnlab.registry import list_models
    from cnnlab.web.app import Zoo
    from cnnlab.weights import models_with_weights, weight_tags

    zoo = Zoo()  # rows as the table serves them, without starting its background thread
    rows = {name: zoo._info(name) for name in list_models()}
    with_weights = {n for n, r in rows.items() if r["weights"]}
    assert with_weights == set(models_with_weights()) and len(with_weights) >= 30
    assert rows["resnet50"]["weights"] == weight_tags("resnet50") and rows["resnet50"]["weights"][0] == "IMAGENET1K_V2"
    assert rows["lenet5"]["weights"] == [] and rows["resnet20"]["weights"] == []
