"""The stored tabular benchmark and the strategy comparison on it."""
import json

import pytest

from cnnlab.cli import main
from cnnlab.search.run import SearchConfig, load_trials, run_search
from cnnlab.search.strategies import RandomSearch
from cnnlab.search.tabular import compare, load_table, table_path

PATH = table_path("layers-tiny", "digits")
RAW = json.loads(PATH.read_text())


def _val(tokens):
    # all 9 decisions of layers-tiny are binary: the index is the tokens read as a binary number
    index = int("".join(str(t) for t in tokens), 2)
    (entry,) = [e for e in RAW["entries"] if e["index"] == index]
    return entry["val"]["top1"]


def test_the_table_holds_every_architecture_once_and_says_how_it_was_made():
    assert RAW["space"] == "layers-tiny" and RAW["dataset"] == "digits"
    assert sorted(e["index"] for e in RAW["entries"]) == list(range(512))
    for e in RAW["entries"]:
        assert int("".join(map(str, e["tokens"])), 2) == e["index"]
        assert 0 <= e["val"]["top1"] <= 1 and 0 <= e["test"]["top1"] <= 1
    how = RAW["how"]
    assert how["settings"]["epochs"] >= 1 and how["settings"]["val_fraction"] > 0
    assert how["script"] == "benchmarks/search_table.py" and how["cpu_seconds"] > 0 and "torch" in how["versions"]


def test_a_tabular_search_rewards_are_the_tables_validation_accuracy(tmp_path):
    res = run_search(SearchConfig(space="layers-tiny", strategy="evolution", budget=30, tabular=True, seed=2),
                     tmp_path / "s", log=None)
    trials = load_trials(tmp_path / "s")
    assert len(trials) == 30 and all(t["reward"] == _val(t["tokens"]) for t in trials)
    best = max(trials, key=lambda t: (t["reward"], -t["id"]))
    # the final choice is the best by validation; its test figure is the table's, looked up once
    index = int("".join(map(str, best["tokens"])), 2)
    (entry,) = [e for e in RAW["entries"] if e["index"] == index]
    assert res["final"]["trial"] == best["id"] and res["final"]["test"]["top1"] == entry["test"]["top1"]


def test_resume_to_a_larger_budget_equals_one_longer_search(tmp_path):
    cfg = dict(space="layers-tiny", strategy="reinforce", tabular=True, seed=4, final_eval=False)
    run_search(SearchConfig(budget=12, **cfg), tmp_path / "a", log=None)
    run_search(SearchConfig(budget=25, **cfg), tmp_path / "a", resume=True, log=None)
    run_search(SearchConfig(budget=25, **cfg), tmp_path / "b", log=None)
    assert [t["tokens"] for t in load_trials(tmp_path / "a")] == [t["tokens"] for t in load_trials(tmp_path / "b")]


def test_compare_curves_against_an_independent_replay():
    res = compare("layers-tiny", "digits", ("random", "reinforce"), seeds=3, budget=20)
    table_best = max(e["val"]["top1"] for e in RAW["entries"])
    assert res["table"]["best_val"] == table_best
    # random search replayed by hand: the best-so-far after 1 and after 20 trials, mean over the 3 seeds
    firsts, bests = [], []
    for seed in range(3):
        s = RandomSearch(load_table("layers-tiny", "digits").space, seed=seed)
        vals = [_val(s.ask()[0]) for _ in range(20)]
        firsts.append(vals[0])
        bests.append(max(vals))
    assert res["strategies"]["random"]["best_so_far"][0][0] == pytest.approx(sum(firsts) / 3)
    assert res["strategies"]["random"]["best_so_far"][19][0] == pytest.approx(sum(bests) / 3)
    for s in res["strategies"].values():
        means = [m for m, _ in s["best_so_far"]]
        assert all(a <= b for a, b in zip(means, means[1:])) and means[-1] <= table_best
        assert len(s["block_mean_reward"]) == 4


def test_compare_command(capsys, tmp_path):
    rc = main(["search", "compare", "--seeds", "2", "--budget", "10", "--plot", str(tmp_path / "c.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "| reinforce |" in out and "| evolution |" in out and "| random |" in out
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["search", "compare", "--seeds", "1"]) == 2
    assert "seeds must be at least 2" in capsys.readouterr().err
    assert main(["search", "compare", "--strategies", "hillclimb"]) == 2
    assert "unknown strategy hillclimb" in capsys.readouterr().err
