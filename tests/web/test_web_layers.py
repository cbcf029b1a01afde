"""The run page's layer view (`cnnlab train --layer-stats N`) and the zoo's weights column, in Chromium."""
import json

import pytest

from tests.web.conftest import follow_live_run, open_view, start_server, stop_server, wait_js
from tests.web.test_web_browser import SHOTS, not_blank


@pytest.mark.slow
def test_live_run_shows_layer_charts_filters_and_top3(page, tmp_path):
    runs = tmp_path / "runs"  # a server of its own: this LeNet-5 run must not become the playground's
    out = runs / "layers"
    server = start_server("--runs", str(runs))
    try:
        seen = follow_live_run(page, server.url + "#/runs/layers", out, "--layer-stats", "10", selector="#layers-view",
                               attribute="data-records", epochs=4)
    finally:
        stop_server(server)
    rows = [json.loads(line) for line in (out / "layers.jsonl").read_text().splitlines()]
    stats = [r for r in rows if r["kind"] == "layers"]
    final = int(page.get_attribute("#layers-view", "data-records"))
    assert final == len(stats) > 4
    assert sorted(v for v in seen if 0 < v < final), f"the layer view never showed a partial run: saw {sorted(seen)}"
    # the per-layer charts and the table of the latest record
    for cid in ("chart-layer-wstd", "chart-layer-astd", "chart-layer-grad"):
        assert page.query_selector(f"#{cid} canvas") is not None, cid
    meta, last = rows[0], stats[-1]
    assert page.eval_on_selector_all("#layers-table tbody tr", "r => r.map(x => x.dataset.layer)") == \
        [l["name"] for l in meta["layers"]] == ["c1", "c3", "c5", "f6"]
    shown = page.eval_on_selector_all("#layers-table td[data-field='weight_std']", "c => c.map(x => x.textContent)")
    assert [float(v) for v in shown] == pytest.approx(last["weight_std"], rel=1e-3)
    # C1's six 5x5 filters (LeCun et al. 1998), the last epoch's
    filters = [r for r in rows if r["kind"] == "filters"][-1]
    assert filters["epoch"] == 4 and filters["shape"] == [6, 1, 5, 5]
    assert len(page.query_selector_all("#layer-filters canvas")) == 6
    assert "at epoch 4" in page.inner_text("#layer-filters-note")
    pixels = page.evaluate("""() => { const c = document.querySelector('#layer-filters canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from({length: c.width * c.height}, (_, k) => d[4 * k]); }""")
    assert pixels == filters["values"][:25]  # the first filter, as written
    # eight held-out images, each with its top-3 bars, in the order and with the classes of the record
    preds = [r for r in rows if r["kind"] == "predictions"][-1]
    cards = page.query_selector_all("#layer-preds .pred")
    assert [int(c.get_attribute("data-index")) for c in cards] == [it["index"] for it in preds["items"]]
    assert len(cards) == 8
    for card, item in zip(cards, preds["items"]):
        assert card.query_selector("canvas") is not None
        assert [b.get_attribute("data-class") for b in card.query_selector_all(".bars > div")] == \
            [meta["classes"][k] for k, _ in item["top"]]
        assert len(card.query_selector_all(".bar")) == 3
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.query_selector("#layers-view").screenshot(path=str(SHOTS / "run-layers.png"))
    not_blank(SHOTS / "run-layers.png")


def test_zoo_weights_column_names_the_published_checkpoints(page, server):
    from cnnlab.weights import models_with_weights, weight_tags

    open_view(page, server.url + "#/zoo")
    cells = dict(page.eval_on_selector_all("tr[data-model]", """rows => rows.map(r => [r.dataset.model,
        r.querySelector("td[data-field='weights']").textContent])"""))
    have = set(models_with_weights())
    assert {m for m, text in cells.items() if text} == have and len(have) >= 30
    for model in have:
        tags = weight_tags(model)
        assert cells[model] == tags[0] + (f" +{len(tags) - 1}" if len(tags) > 1 else "")
    title = page.get_attribute("tr[data-model='resnet50'] td[data-field='weights'] span", "title")
    assert all(tag in title for tag in weight_tags("resnet50"))
    page.click("th[data-key='weights']")
    page.click("th[data-key='weights']")  # descending: the models with the most checkpoints first
    first = page.get_attribute("tbody tr", "data-model")
    assert len(weight_tags(first)) == max(len(weight_tags(m)) for m in have)
