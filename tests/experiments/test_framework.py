"""The runner: resume without repeating finished runs, refusals, fabricated records -> known verdicts."""
import json

import pytest

from cnnlab.experiments import (HELD, INCONCLUSIVE, NOT_HELD, Experiment, Run, exact, get_experiment,
                                run_experiment, summarize)
from cnnlab.experiments.stats import compare


class Counting(Experiment):
    """A compute-only experiment that records which runs executed and can be made to fail."""

    name = "counting-test"
    title = "test"
    claim = "arm b is larger than arm a"
    source = "a test"
    scales = {"smoke": {"fail_at": None}}
    default_seeds = {"smoke": 3}

    def __init__(self):
        self.executed = []

    def plan(self, ctx):
        def compute(run, folder):
            if ctx.config.get("fail_at") == run.key:
                raise KeyboardInterrupt  # a Ctrl-C in the middle of the experiment
            self.executed.append(run.key)
            (folder / "scratch.txt").write_text("x")
            return {"value": (10.0 if run.arm == "b" else 1.0) + 0.1 * run.seed}
        return [Run(f"{arm}-seed{s}", arm, s, {"arm": arm}, compute=compute) for s in ctx.seeds for arm in "ab"]

    def evaluate(self, records, ctx):
        stats = {arm: summarize([r["metrics"]["value"] for r in records if r["arm"] == arm]) for arm in "ab"}
        return {"value": stats}, [compare("b > a", self.claim, stats["b"], stats["a"], a_label="b", b_label="a",
                                          greater=True)]


def test_interrupted_experiment_resumes_without_repeating_finished_runs(tmp_path):
    out = tmp_path / "exp"
    exp = Counting()
    exp.scales = {"smoke": {"fail_at": "a-seed1"}}
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, out=out, progress="none")
    assert exp.executed == ["a-seed0", "b-seed0"]
    assert sorted(p.name for p in (out / "runs").iterdir() if (p / "record.json").exists()) == ["a-seed0", "b-seed0"]
    assert not (out / "results.json").exists()

    # without --resume the folder is refused (no silent overwrite)
    again = Counting()
    with pytest.raises(ValueError, match="--resume"):
        run_experiment(again, out=out, progress="none")
    # resuming with other settings is refused
    with pytest.raises(ValueError, match="seeds"):
        run_experiment(again, out=out, seeds=2, resume=True, progress="none")

    results = run_experiment(again, out=out, resume=True, progress="none")
    assert again.executed == ["a-seed1", "b-seed1", "a-seed2", "b-seed2"]  # the first two were not repeated
    assert results["runs_executed"] == 4 and results["runs_resumed"] == 2
    assert [r["key"] for r in results["runs"]] == ["a-seed0", "b-seed0", "a-seed1", "b-seed1", "a-seed2", "b-seed2"]
    assert results["verdict"] == HELD
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["value"]["b"]["n"] == 3
    assert saved["summary"]["value"]["b"]["mean"] == pytest.approx(10.1)

    # a finished experiment resumed again executes nothing
    third = Counting()
    results = run_experiment(third, out=out, resume=True, progress="none")
    assert third.executed == [] and results["runs_resumed"] == 6


def test_fabricated_degradation_records_get_the_known_verdict(tmp_path):
    """Records written by hand (no training): the rule, not the numbers' source, decides."""
    exp = get_experiment("degradation")
    out = tmp_path / "deg"

    def fabricate(train_error):  # arm -> list of training errors (one per seed)
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps(
            {"experiment": "degradation", "scale": "smoke", "seeds": 3, "dataset": "digits"}))
        for kind in ("plain", "residual"):
            for d in (8, 14):
                for s, err in enumerate(train_error[f"{kind}-{d}"]):
                    folder = out / "runs" / f"{kind}{d}-seed{s}"
                    folder.mkdir(exist_ok=True)
                    rec = {"key": folder.name, "arm": f"{kind}-{d}", "seed": s, "kind": "train", "settings": {},
                           "epochs": [], "metrics": {"train_error": err, "test_error": err, "params": 1000,
                                                     "seconds_per_epoch": 1.0}}
                    (folder / "record.json").write_text(json.dumps(rec))

    # the paper's picture: deep plain worse, residual deep best
    fabricate({"plain-8": [0.10, 0.11, 0.09], "plain-14": [0.30, 0.31, 0.29],
               "residual-8": [0.08, 0.09, 0.07], "residual-14": [0.02, 0.03, 0.01]})
    res = run_experiment(exp, seeds=3, out=out, resume=True, progress="none")
    assert res["runs_executed"] == 0
    assert [c["verdict"] for c in res["checks"]] == [HELD, HELD, HELD] and res["verdict"] == HELD
    report = (out / "report.md").read_text()
    assert "**Verdict: held**" in report and "plain-14" in report

    # the opposite picture: deeper plain trains better
    fabricate({"plain-8": [0.30, 0.31, 0.29], "plain-14": [0.10, 0.11, 0.09],
               "residual-8": [0.08, 0.09, 0.07], "residual-14": [0.02, 0.03, 0.01]})
    res = run_experiment(exp, seeds=3, out=out, resume=True, progress="none")
    assert res["checks"][0]["verdict"] == NOT_HELD and res["verdict"] == NOT_HELD

    # noise: everything overlaps
    noisy = [0.1, 0.3, 0.2]
    fabricate({a: noisy for a in ("plain-8", "plain-14", "residual-8", "residual-14")})
    res = run_experiment(exp, seeds=3, out=out, resume=True, progress="none")
    assert res["verdict"] == INCONCLUSIVE


def test_bad_requests_are_refused_with_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'degradaton'.*did you mean 'degradation'"):
        run_experiment("degradaton", out=tmp_path / "x")
    with pytest.raises(ValueError, match="cannot use dataset 'imagefolder'"):
        run_experiment("degradation", dataset="imagefolder", out=tmp_path / "x")
    with pytest.raises(ValueError, match="uses no dataset"):
        run_experiment("bottleneck", dataset="digits", out=tmp_path / "x")
    with pytest.raises(ValueError, match="scale must be one of"):
        run_experiment("bottleneck", scale="huge", out=tmp_path / "x")
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        run_experiment("bottleneck", seeds=0, out=tmp_path / "x")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            run_experiment("bottleneck", device="cuda", out=tmp_path / "x")
    (tmp_path / "notexp").mkdir()
    (tmp_path / "notexp" / "f.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an experiment folder"):
        run_experiment("bottleneck", out=tmp_path / "notexp")
    assert (tmp_path / "notexp" / "f.txt").read_text() == "mine"


def test_run_needs_exactly_one_action():
    with pytest.raises(ValueError, match="exactly one"):
        Run("k", "a")
    with pytest.raises(ValueError, match="plain folder name"):
        Run("../k", "a", compute=lambda r, f: {})


class _Interrupting(__import__("torch").nn.Module):
    """A tiny classifier that raises KeyboardInterrupt at its ``stop_at``-th training forward."""

    def __init__(self, stop_at):
        super().__init__()
        import torch.nn as nn

        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 10))
        self.calls, self.stop_at = 0, stop_at

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
        return self.net(x)


class OneTrainingRun(Experiment):
    name = "one-training-run-test"
    title = "test"
    claim = "test"
    datasets = ("digits",)
    scales = {"smoke": {}}
    default_seeds = {"smoke": 1}

    def __init__(self, stop_at=None):
        self.stop_at = stop_at

    def plan(self, ctx):
        return [Run("tiny", "tiny", 0, {"epochs": 3}, build=lambda seed: _Interrupting(self.stop_at),
                    fit={"epochs": 3, "batch_size": 256, "recipe": "fast", "train_samples": 512})]

    def evaluate(self, records, ctx):
        return {}, [exact("ran", "it ran", len(records), 1)]


def test_a_training_run_interrupted_mid_way_continues_from_its_checkpoint(tmp_path):
    out = tmp_path / "t"
    # one step an epoch (512 samples less the validation hold-out, full batches of 256):
    # the 3rd training forward falls after at least one finished epoch
    with pytest.raises(KeyboardInterrupt):
        run_experiment(OneTrainingRun(stop_at=3), out=out, progress="none", threads=1)
    folder = out / "runs" / "tiny"
    assert (folder / "last.pt").exists() and not (folder / "record.json").exists()
    finished = [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()
                if '"epoch"' in line and json.loads(line)["kind"] == "epoch"]
    assert 1 <= len(finished) < 3
    res = run_experiment(OneTrainingRun(), out=out, resume=True, progress="none", threads=1)
    rec = res["runs"][0]
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2, 3]  # the finished epochs kept, not repeated
    assert rec["trainer_results"]["resumed_from_epoch"] == finished[-1]


@pytest.mark.parametrize("scale", ["small", "paper"])
def test_every_plan_builds_at_every_scale(scale):
    """The small and paper plans are valid without running them: recipes exist, models build."""
    import torch

    from cnnlab.experiments import list_experiments
    from cnnlab.experiments.core import _context
    from cnnlab.train import list_recipes

    for name in list_experiments():
        exp = get_experiment(name)
        ctx = _context(exp, scale, None, None, "auto", None)
        runs = exp.plan(ctx)
        assert len({r.key for r in runs}) == len(runs)
        built = set()
        for run in runs:
            if run.build is not None and run.arm not in built:
                assert run.fit.get("recipe", "fast") in list_recipes()
                with torch.device("meta"):
                    model = run.build(0)
                assert sum(p.numel() for p in model.parameters()) > 0
                built.add(run.arm)
