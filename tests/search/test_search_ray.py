"""The Ray backend end to end: a local Ray instance, two real trials as Ray tasks."""
import json

import pytest

from cnnlab.search.run import SearchConfig, load_trials, run_search

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_local_ray_runs_two_real_trials(tmp_path):
    cfg = SearchConfig(space="layers-tiny", strategy="random", dataset="digits", budget=2, seed=1, epochs=1,
                       workers=2, backend="ray", cpus_per_trial=1, final_eval=False)
    res = run_search(cfg, tmp_path / "s", log=None)
    assert res["trials"] == 2 and res["failed"] == 0
    trials = load_trials(tmp_path / "s")
    assert [t["status"] for t in trials] == ["ok", "ok"]
    for t in trials:
        run = json.loads((tmp_path / "s" / "trials" / f"{t['id']:04d}" / "results.json").read_text())
        assert t["reward"] == run["val"]["top1"]  # trained by cnnlab's trainer inside the Ray task
    assert not ray.is_initialized()  # the search shut down the instance it started
