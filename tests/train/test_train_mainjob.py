"""The main job: `cnnlab train lenet5` trains LeNet-5 on real MNIST digits (mnist_5k) to
>= 97% accuracy on the 1,000 held-out test digits."""
import contextlib
import io
import json

import pytest

from cnnlab.cli import main
from cnnlab.registry import is_model

pytestmark = pytest.mark.skipif(not is_model("lenet5"), reason="lenet5 is not registered in this checkout")


@pytest.mark.slow
def test_lenet5_on_real_mnist_reaches_97_percent(tmp_path):
    out = tmp_path / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "lenet5", "--out", str(out), "--progress", "none"]) == 0
    results = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert results["model"] == "lenet5" and results["dataset"] == "mnist_5k"  # the defaults
    assert config["recipe"]["name"] == "lenet5" and config["model"]["input_size"] == [1, 32, 32]
    assert config["threads"] == 1 and "small step" in config["threads_reason"]
    assert results["test"]["samples"] == 1000 and results["val"]["samples"] == 400  # 10% of 4,000 held out
    assert results["test"]["top1"] >= 0.97, results["test"]
    # 1,000 held-out digits: the accuracy is a count over all of them.
    assert results["test"]["top1"] * 1000 == pytest.approx(round(results["test"]["top1"] * 1000), abs=1e-6)
    assert f"test accuracy {100 * results['test']['top1']:.2f}%" in printed.getvalue()
