"""The main job: `cnnlab train lenet5` trains LeNet-5 on the bundled digits to >= 98% test accuracy."""
import contextlib
import io
import json

import pytest

from cnnlab.cli import main
from cnnlab.registry import is_model

pytestmark = pytest.mark.skipif(not is_model("lenet5"), reason="lenet5 is not registered in this checkout")


@pytest.mark.slow
def test_lenet5_on_digits_reaches_98_percent(tmp_path):
    out = tmp_path / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "lenet5", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert results["model"] == "lenet5" and results["dataset"] == "digits"  # the defaults
    assert config["recipe"]["name"] == "lenet5" and config["model"]["input_size"] == [1, 32, 32]
    assert results["test"]["top1"] >= 0.98, results["test"]
    # 359 held-out digits: the accuracy is a count over all of them.
    assert round(results["test"]["top1"] * 359) == pytest.approx(results["test"]["top1"] * 359, abs=1e-6)
    assert f"test accuracy {100 * results['test']['top1']:.2f}%" in printed.getvalue()
