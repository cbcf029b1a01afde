"""The search loop: trial outcomes, crashes and timeouts, resume after SIGKILL, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnlab.search.run import SearchConfig, load_trials, run_search
from search_testkit import reward_of

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _cfg(**kw):
    base = dict(space="layers-tiny", strategy="reinforce", dataset="digits", budget=8, seed=0,
                strategy_args={"batch_size": 2}, trial_fn="search_testkit:slow_trial", workers=1)
    base.update(kw)
    return SearchConfig(**base)


def test_crashing_failing_and_hanging_trials_are_recorded_as_failed(tmp_path):
    cfg = _cfg(strategy="random", strategy_args={}, budget=6, seed=9, workers=2, trial_fn="search_testkit:faulty_trial",
               trial_timeout=10.0, final_eval=False)  # generous: a healthy trial must not time out on a busy machine
    res = run_search(cfg, tmp_path / "s", log=None)
    trials = load_trials(tmp_path / "s")
    assert [t["id"] for t in trials] == list(range(6)) and all(t["status"] != "running" for t in trials)
    for t in trials:
        kind = 2 * t["tokens"][0] + t["tokens"][1]
        if kind == 0:
            assert t["status"] == "failed" and "this architecture is broken" in t["error"]
        elif kind == 1:
            assert t["status"] == "failed" and "signal 9" in t["error"]
        elif kind == 2:
            assert t["status"] == "failed" and "timed out" in t["error"]
        else:
            assert t["status"] == "ok" and t["reward"] == reward_of(t["tokens"])
    kinds = {2 * t["tokens"][0] + t["tokens"][1] for t in trials}
    assert kinds == {0, 1, 2, 3}, "seed 9 should sample every kind of fault; pick another seed"
    assert res["failed"] == sum(t["status"] == "failed" for t in trials)
    assert res["best"][0]["reward"] == max(t["reward"] for t in trials if t["status"] == "ok")


def _search_process(out, budget):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from cnnlab.search.run import SearchConfig, run_search\n"
            "run_search(SearchConfig(space='layers-tiny', strategy='reinforce', budget=%d, "
            "strategy_args={'batch_size': 2}, trial_fn='search_testkit:slow_trial', workers=1), %r, log=None)"
            % (str(HERE), budget, str(out)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    return subprocess.Popen([sys.executable, "-c", code], env=env)


@pytest.mark.slow
def test_resume_after_sigkill_loses_and_repeats_no_trial(tmp_path):
    budget = 6
    whole = run_search(_cfg(budget=budget), tmp_path / "whole", log=None)
    assert whole["trials"] == budget
    killed = tmp_path / "killed"
    proc = _search_process(killed, budget)
    deadline = time.time() + 120
    while time.time() < deadline:
        lines = (killed / "trials.jsonl").read_text().splitlines() if (killed / "trials.jsonl").exists() else []
        if len(lines) >= 2:
            break
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    before = load_trials(killed)
    assert 2 <= sum(t["status"] == "ok" for t in before) < budget
    run_search(_cfg(budget=budget), killed, resume=True, log=None)
    after = load_trials(killed)
    # no trial lost or repeated: ids 0..budget-1, each finished once, in the trials.jsonl view too
    assert [t["id"] for t in after] == list(range(budget)) and all(t["status"] == "ok" for t in after)
    lines = [json.loads(x) for x in (killed / "trials.jsonl").read_text().splitlines()]
    assert sorted(x["id"] for x in lines) == list(range(budget))
    # and the search went on exactly as the uninterrupted one (controller, optimizer and RNG restored)
    assert [t["tokens"] for t in after] == [t["tokens"] for t in load_trials(tmp_path / "whole")]
    finished_before = {t["id"]: t for t in before if t["status"] == "ok"}
    for t in after:  # finished trials were not rerun
        if t["id"] in finished_before:
            assert t["pid"] == finished_before[t["id"]]["pid"]


def test_resume_refuses_other_settings_and_a_smaller_budget(tmp_path):
    run_search(_cfg(budget=4, final_eval=False), tmp_path / "s", log=None)
    with pytest.raises(ValueError, match="other settings: strategy 'random'"):
        run_search(_cfg(budget=4, strategy="random", strategy_args={}), tmp_path / "s", resume=True, log=None)
    with pytest.raises(ValueError, match="--budget 2 is less"):
        run_search(_cfg(budget=2), tmp_path / "s", resume=True, log=None)
    with pytest.raises(ValueError, match="already holds a search"):
        run_search(_cfg(budget=4), tmp_path / "s", log=None)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run_search(_cfg(budget=4), tmp_path / "empty", resume=True, log=None)
    # a larger budget continues the same search
    res = run_search(_cfg(budget=6, final_eval=False), tmp_path / "s", resume=True, log=None)
    assert res["trials"] == 6 and [t["id"] for t in load_trials(tmp_path / "s")] == list(range(6))
