"""Every training experiment at smoke scale: files, schema, verdict consistent with the checks.

(one-by-one, bottleneck and small-filters are run in test_claims.py and test_experiment_cli.py;
these train several small networks each, so they are marked slow; CI runs them.)
"""
import json

import pytest

from cnnlab.experiments import get_experiment, run_experiment
from cnnlab.experiments.stats import HELD, INCONCLUSIVE, NOT_HELD

TRAINING = ["degradation", "stochastic-depth", "wide-vs-deep", "ensemble", "aux-heads", "dense-efficiency"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINING)
def test_smoke(name, tmp_path):
    out = tmp_path / name
    res = run_experiment(name, scale="smoke", out=out, progress="none", threads=1)
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiment"] == name and saved["scale"] == "smoke"
    exp = get_experiment(name)
    assert len(saved["seeds"]) == exp.default_seeds["smoke"]
    assert saved["runs_total"] == len(saved["runs"]) == saved["runs_executed"]
    for run in saved["runs"]:
        assert set(run) >= {"key", "arm", "seed", "settings", "metrics", "kind"}
        if run["kind"] == "train":
            assert run["epochs"] and run["epochs"][-1]["epoch"] == run["settings"]["epochs"]
            assert run["metrics"]["params"] > 0 and 0 <= run["metrics"]["test_top1"] <= 1
    verdicts = [c["verdict"] for c in saved["checks"]]
    expected = NOT_HELD if NOT_HELD in verdicts else HELD if all(v == HELD for v in verdicts) else INCONCLUSIVE
    assert saved["verdict"] == expected
    for f in saved["figures"]:
        assert (out / f).stat().st_size > 1000
    assert {f.rsplit(".", 1)[1] for f in saved["figures"]} == {"png", "svg"}
    report = (out / "report.md").read_text()
    assert exp.claim in report and f"**Verdict: {res['verdict']}**" in report
