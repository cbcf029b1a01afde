"""`cnnlab serve` in a real browser: Debian's headless Chromium driven by Playwright."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from tests.web.conftest import ROOT, follow_live_run, open_view, wait_js

SHOTS = ROOT / "docs" / "web"
PAGES = {"zoo": "#/zoo", "model": "#/model/resnet20?size=&batch=1&depth=2", "runs": "#/runs",
         "run": "#/runs/lenet5", "playground": "#/playground", "compare": "#/compare"}


def not_blank(png: Path) -> None:
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert img.std() > 10, f"{png} looks blank (std {img.std():.1f})"
    assert len(np.unique(img)) > 20, f"{png} has almost no detail"


@pytest.mark.slow
def test_every_page_loads_without_errors_and_screenshots(page, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, hash_ in PAGES.items():
        open_view(page, server.url + hash_)
        assert page.query_selector("#view-error") is None, page.inner_text("#view-error")
        if name == "playground":
            wait_js(page, "window.cnnlabPlayground.ready && window.cnnlabPlayground.logits")
        if name == "zoo":
            page.wait_for_selector("tr[data-model='alexnet'] td[data-field='macs']:not(:has(span))", timeout=90_000)
        shot = SHOTS / f"{name}.png"
        page.screenshot(path=str(shot), full_page=name != "playground")
        not_blank(shot)
        assert page.console_errors == [], (name, page.console_errors)


def test_zoo_lists_every_model_sorts_and_filters(page, server):
    open_view(page, server.url + "#/zoo")
    names = page.eval_on_selector_all("tr[data-model]", "rows => rows.map(r => r.dataset.model)")
    assert sorted(names) == sorted(cnnlab.list_models())
    page.select_option("#zoo-family", "vgg")
    wait_js(page, "document.querySelectorAll('td[data-field=params] span').length === 0", timeout=120)  # counted
    shown = page.eval_on_selector_all("tr[data-model]", "rows => rows.map(r => r.dataset.model)")
    assert sorted(shown) == sorted(cnnlab.list_models(family="vgg"))
    page.click("th[data-key='params']")
    page.click("th[data-key='params']")  # descending
    first = page.get_attribute("tbody tr", "data-model")
    assert first == "vgg19" or first == "vgg19_bn"  # the largest VGG: 143.7M parameters (Simonyan & Zisserman)
    page.fill("#zoo-filter", "lenet5")
    page.select_option("#zoo-family", "")
    assert sorted(page.eval_on_selector_all("tr[data-model]", "r => r.map(x => x.dataset.model)")) == \
        sorted(cnnlab.list_models("lenet*"))


def _num(text: str):
    return int(text.replace(",", "")) if text.strip() else None


def test_model_page_numbers_equal_analyze(page, server):
    a = cnnlab.analyze("resnet20", (3, 40, 40), batch_size=4)
    open_view(page, server.url + "#/model/resnet20?size=3x40x40&batch=4&depth=99")
    rows = page.eval_on_selector_all("#layer-table tbody tr", """rows => rows.map(r => [r.dataset.layer,
        ...['output_shape', 'params', 'macs', 'memory', 'memory_bytes', 'receptive_field'].map(
            f => r.querySelector(`[data-field=${f}]`).textContent)])""")
    layers = a.to_dict()["layers"] if hasattr(a, "to_dict") else json.loads(a.to_json())["layers"]
    assert [r[0] for r in rows] == [l["name"] for l in layers]
    for (name, shape, params, macs, memory, mem_bytes, rf), l in zip(rows, layers):
        assert shape == "x".join(str(v) for v in l["output_shape"][1:]), name
        assert (_num(params), _num(macs), _num(memory), _num(mem_bytes)) == \
            (l["params"], l["macs"], l["memory"], l["memory_bytes"]), name
        assert rf == ("" if l["receptive_field"] is None else str(l["receptive_field"])), name
    totals = dict(page.eval_on_selector_all("#model-totals td", "c => c.map(x => [x.dataset.field, x.textContent])"))
    assert _num(totals["params"]) == a.totals["params"] == 269_722  # He et al. 2016, ResNet-20
    assert _num(totals["macs"]) == a.totals["macs"]
    assert totals["input"] == "4 x 3 x 40 x 40"
    # the charts are drawn, one bar per leaf layer
    assert page.query_selector("#chart-memory canvas") and page.query_selector("#chart-params canvas")


def test_model_page_bad_input_is_one_message(page, server):
    open_view(page, server.url + "#/model/lenet5?size=8&batch=1")
    # the browser logs the API's 400 answer itself; nothing else may be logged
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]
    message = page.inner_text("#model-error")
    assert message.startswith("lenet5 needs inputs of at least 32x32 pixels, got 8x8"), message
    assert len(message.splitlines()) == 1


def test_runs_list_and_finished_run(page, server, workdir):
    results = json.loads((workdir / "runs" / "lenet5" / "results.json").read_text())
    open_view(page, server.url + "#/runs")
    row = page.query_selector("tr[data-run='lenet5']")
    assert row is not None and "finished" in row.inner_text()
    assert f"{100 * results['test']['top1']:.2f}%" in row.inner_text()
    open_view(page, server.url + "#/runs/lenet5")
    assert page.get_attribute("#run-view", "data-points") == "2"


@pytest.mark.slow
def test_playground_logits_equal_pytorch(page, server, workdir):
    from cnnlab.data import load_dataset, make_loader
    from cnnlab.train import load_checkpoint, model_from_checkpoint

    open_view(page, server.url + "#/playground")
    wait_js(page, "window.cnnlabPlayground.ready")
    checkpoint = page.evaluate("window.cnnlabPlayground.info.checkpoint")
    # the default: the newest finished LeNet-5 run (here the fixture's, on the bundled MNIST digits)
    assert checkpoint == str(workdir / "runs" / "lenet5" / "best.pt")
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    test = load_dataset(state["meta"]["dataset"], "test", download=False)
    samples = page.evaluate("window.cnnlabPlayground.info.samples.map(s => [s.index, s.label])")
    assert sorted({label for _, label in samples}) == list(range(10))  # one test image of each class at least
    picked = [samples[1][0], samples[-1][0]]
    loader = make_loader(test.subset(picked), batch_size=2, train=False, input_size=tuple(state["meta"]["input_size"]))
    x, _ = next(iter(loader))
    with torch.no_grad():
        want = model(x).numpy()
    for k, i in enumerate(picked):
        page.evaluate("() => { window.cnnlabPlayground.logits = null; }")
        page.click(f"#pg-samples canvas[data-index='{i}']")
        wait_js(page, "window.cnnlabPlayground.logits !== null")
        got = np.array(page.evaluate("window.cnnlabPlayground.logits"))
        np.testing.assert_allclose(got, want[k], atol=1e-4, rtol=0)
        top = page.get_attribute("#pg-topk div", "data-class")
        assert top == str(int(want[k].argmax()))
    # every layer's maps are drawn: C1 has 6 maps, C3 16 (LeCun et al. 1998, Fig. 2)
    assert len(page.query_selector_all("[data-layer='c1'] canvas")) == 6
    assert len(page.query_selector_all("[data-layer='c3'] canvas")) == 16
    # drawing on the pad runs the network on the drawing
    page.evaluate("() => { window.cnnlabPlayground.logits = null; }")
    box = page.query_selector("#pad").bounding_box()
    page.mouse.move(box["x"] + 110, box["y"] + 30)
    page.mouse.down()
    page.mouse.move(box["x"] + 112, box["y"] + 120, steps=8)
    page.mouse.move(box["x"] + 110, box["y"] + 200, steps=8)
    page.mouse.up()
    wait_js(page, "window.cnnlabPlayground.logits !== null")
    assert len(page.evaluate("window.cnnlabPlayground.logits")) == 10


@pytest.mark.slow
def test_live_run_gains_points(page, server, workdir):
    out = workdir / "runs" / "live"
    seen = follow_live_run(page, server.url + "#/runs/live", out, selector="#run-view", attribute="data-points",
                           epochs=6)
    epochs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in l]
    epochs = [r for r in epochs if r.get("kind") == "epoch"]
    assert len(epochs) == 6
    final = int(page.get_attribute("#run-view", "data-points"))
    assert final == 6
    growing = sorted(v for v in seen if 0 < v < final)
    assert growing, f"the view never showed a partial run: saw {sorted(seen)}"
    # the last point drawn is the last epoch logged
    assert "epoch 6:" in page.inner_text("#run-last")
    results = json.loads((out / "results.json").read_text())
    wait_js(page, "document.getElementById('run-results').textContent !== ''", timeout=30)
    assert f"test top-1 {100 * results['test']['top1']:.2f}%" in page.inner_text("#run-results")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "run-live.png"))
    not_blank(SHOTS / "run-live.png")


def test_compare_page(page, server, workdir):
    open_view(page, server.url + "#/compare")
    assert "No results yet" in page.inner_text("#compare-empty")
    rows = [{"model": "resnet20", "batch_size": b, "ms": 1.5 * b} for b in (1, 8, 32)]
    (workdir / "results" / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(workdir / "results" / "time_vs_batch.png")
    try:
        open_view(page, server.url + "#/compare")
        section = page.query_selector("section[data-file='bench.jsonl']")
        assert section is not None and len(section.query_selector_all("tbody tr")) == 3
        assert section.query_selector("canvas") is not None
        img = page.query_selector("#compare-figures img")
        wait_js(page, "document.querySelector('#compare-figures img').naturalWidth > 0")
        assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [64, 48]
    finally:
        (workdir / "results" / "bench.jsonl").unlink()
        (workdir / "results" / "time_vs_batch.png").unlink()
