"""The experiment framework: a declarative plan of runs, resumable execution, results files.

An :class:`Experiment` declares a claim, the scales it runs at, and a ``plan`` -- a list of
:class:`Run` objects. A run either trains a network with :func:`cnnlab.train.fit` (``train``)
or computes something without training (``compute``: a count from :func:`cnnlab.analyze`, a
numerical identity, a timing). :func:`run_experiment` executes the runs that have no record
yet (so an interrupted experiment continues and finished runs are never repeated), then
lets the experiment turn the records into a summary, checks with verdicts and figures, and
writes ``results.json``, ``report.md`` and the figures (PNG and SVG) into the output folder::

    OUT/experiment.json        what was asked (name, scale, seeds, dataset): checked on --resume
    OUT/runs/KEY/record.json   one finished run (settings, seed, metrics, per-epoch records)
    OUT/runs/KEY/...           the trainer's run folder (checkpoints, metrics.jsonl)
    OUT/results.json           every record, the summary, the checks and the verdict
    OUT/report.md              claim, what was measured, tables, verdict, figures
    OUT/*.png, OUT/*.svg       the figures
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from cnnlab.experiments.stats import INCONCLUSIVE, Check, combine

__all__ = ["Run", "Context", "Experiment", "register_experiment", "list_experiments", "get_experiment",
           "run_experiment", "SCALES", "UnknownExperimentError"]

SCALES = ("smoke", "small", "paper")
_EXPERIMENTS: dict[str, type["Experiment"]] = {}


class UnknownExperimentError(ValueError):
    pass


@dataclass
class Run:
    """One unit of work in an experiment's plan.

    ``key`` names the run (unique in the experiment; its folder name); ``arm`` is the group
    it belongs to (runs of one arm differ only in ``seed``); ``settings`` are recorded as
    they are. Exactly one of ``build`` (a function ``seed -> nn.Module`` trained with
    :func:`cnnlab.train.fit` and the keyword arguments ``fit``) and ``compute`` (a function
    ``(run, folder) -> dict`` of metrics) is given.
    """

    key: str
    arm: str
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    build: Callable[[int], Any] | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    compute: Callable[["Run", Path], dict] | None = None
    keep_test_outputs: bool = False  # training runs: save the test set's softmax to test_probs.pt

    def __post_init__(self):
        if (self.build is None) == (self.compute is None):
            raise ValueError(f"run {self.key!r}: give exactly one of build= (a training run) or compute=")
        if not self.key or any(c in self.key for c in "/\\") or self.key.startswith("."):
            raise ValueError(f"run key {self.key!r} must be a plain folder name")

    @property
    def kind(self) -> str:
        return "train" if self.build is not None else "compute"


@dataclass
class Context:
    """What an experiment is asked to do: the scale's settings, seeds, dataset, device."""

    scale: str
    seeds: list[int]
    dataset: str | None
    device: str = "auto"
    threads: int | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the experiment's settings for this scale
    train_progress: str = "none"  # the trainer's own bar: shown inside the bar over the runs


class Experiment:
    """A claim of the lecture turned into runs, numbers, a verdict and figures.

    Subclasses set the class attributes and implement :meth:`plan`, :meth:`evaluate`
    (records -> summary and checks) and, optionally, :meth:`figures` and :meth:`tables`.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    claim: ClassVar[str] = ""
    source: ClassVar[str] = ""  # the paper(s) the claim comes from
    paper_result: ClassVar[str] = ""  # what the paper reports, in words and numbers
    datasets: ClassVar[tuple[str, ...]] = ()  # datasets it can use; () = it uses none
    default_dataset: ClassVar[dict[str, str]] = {}  # per scale
    default_seeds: ClassVar[dict[str, int]] = {"smoke": 1, "small": 3, "paper": 3}
    scales: ClassVar[dict[str, dict[str, Any]]] = {}
    notes: ClassVar[str] = ""  # caveats printed in the report

    def plan(self, ctx: Context) -> list[Run]:
        raise NotImplementedError

    def evaluate(self, records: list[dict], ctx: Context) -> tuple[dict, list[Check]]:
        """The summary (JSON-able) and the checks that decide the verdict."""
        raise NotImplementedError

    def tables(self, records: list[dict], summary: dict, ctx: Context) -> list[str]:
        """Markdown tables for the report."""
        return []

    def figures(self, records: list[dict], summary: dict, ctx: Context, out: Path) -> list[str]:
        """Write figures into ``out`` and return their stems (each saved as PNG and SVG)."""
        return []


def register_experiment(cls: type[Experiment]) -> type[Experiment]:
    if not cls.name or cls.name in _EXPERIMENTS:
        raise ValueError(f"experiment name {cls.name!r} is empty or already registered")
    _EXPERIMENTS[cls.name] = cls
    return cls


def _load_catalog() -> None:
    import cnnlab.experiments.claims  # noqa: F401  (registers the lecture's experiments)


def list_experiments() -> list[str]:
    """The names of the registered experiments, in the order they were registered."""
    _load_catalog()
    return list(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    _load_catalog()
    if name not in _EXPERIMENTS:
        import difflib

        close = difflib.get_close_matches(name, list(_EXPERIMENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownExperimentError(f"unknown experiment {name!r}{hint}; choose from {', '.join(_EXPERIMENTS)}")
    return _EXPERIMENTS[name]()


# ---------------------------------------------------------------------------------------
# running


def _write_json(path: Path, obj: Any) -> None:
    """Write atomically: a kill leaves either the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any):
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return repr(obj)


def _context(exp: Experiment, scale: str, seeds: int | None, dataset: str | None, device: str,
             threads: int | None) -> Context:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if scale not in exp.scales:
        raise ValueError(f"experiment {exp.name!r} has no {scale!r} scale; it has {', '.join(exp.scales)}")
    if seeds is None:
        seeds = exp.default_seeds.get(scale, 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if dataset is not None and dataset not in exp.datasets:
        if not exp.datasets:
            raise ValueError(f"experiment {exp.name!r} uses no dataset; drop --dataset")
        raise ValueError(f"experiment {exp.name!r} cannot use dataset {dataset!r}; it can use "
                         f"{', '.join(exp.datasets)}")
    if exp.datasets and dataset is None:
        dataset = exp.default_dataset.get(scale, exp.datasets[0])
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' is not available here (torch.cuda.is_available() is False)")
    return Context(scale=scale, seeds=list(range(seeds)), dataset=dataset, device=device, threads=threads,
                   config=dict(exp.scales[scale]))


def _environment() -> dict:
    import torch

    from cnnlab import __version__

    return {"cnnlab": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads()}


def _execute(run: Run, folder: Path, ctx: Context) -> dict:
    """Run one plan entry and return its record (not yet written)."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"key": run.key, "arm": run.arm, "seed": run.seed, "kind": run.kind,
                              "settings": run.settings}
    if run.compute is not None:
        record["metrics"] = run.compute(run, folder)
    else:
        record.update(_train(run, folder, ctx))
    record["seconds"] = time.perf_counter() - t0
    return record


def _train(run: Run, folder: Path, ctx: Context) -> dict:
    import torch

    from cnnlab.anatomy import analyze
    from cnnlab.data import dataset_info
    from cnnlab.train import fit

    torch.manual_seed(run.seed)  # the weights' initialisation (fit seeds data order and augmentation)
    model = run.build(run.seed)
    options = dict(run.fit)
    dataset = options.pop("dataset", ctx.dataset)
    info = dataset_info(dataset)
    size = options.get("image_size") or info.image_size[0]
    anatomy = analyze(model, (info.channels, size, size))
    resume = (folder / "last.pt").exists()
    results = fit(model, dataset, out=str(folder), seed=run.seed, progress=ctx.train_progress, device=ctx.device,
                  threads=ctx.threads, resume=resume, **options)
    epochs = []
    metrics_file = folder / "metrics.jsonl"
    if metrics_file.exists():
        for line in metrics_file.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("kind") == "epoch":
                    epochs.append(rec)
    last = epochs[-1] if epochs else {}
    if run.keep_test_outputs:
        if results.get("evaluated_weights") != "final":
            raise ValueError(f"run {run.key}: test outputs are kept for the final weights only, "
                             f"the trainer evaluated {results.get('evaluated_weights')!r}")
        top1 = _save_test_outputs(model, dataset, info, size, folder, ctx)
        if abs(top1 - results["test"]["top1"]) > 1e-6:  # the same weights and images as the trainer's test
            raise RuntimeError(f"run {run.key}: the kept test outputs score {top1:.4f}, the trainer "
                               f"{results['test']['top1']:.4f}")
    metrics = {
        "params": anatomy.totals["params"],
        "macs": anatomy.totals["macs"],
        "test_top1": results["test"]["top1"],
        "test_error": 1.0 - results["test"]["top1"],
        "val_top1": results["val"]["top1"] if results.get("val") else None,
        "best_val_top1": results.get("best_val_top1"),
        "train_top1": last.get("train_top1"),
        "train_error": None if last.get("train_top1") is None else 1.0 - last["train_top1"],
        "train_loss": last.get("train_loss"),
        "wall_seconds": results.get("wall_seconds"),
        "images_per_second": results.get("images_per_second"),
        # the median epoch excludes the first one's warm-up
        "seconds_per_epoch": _median([e["epoch_seconds"] for e in epochs[1:] or epochs if "epoch_seconds" in e]),
        "steps": results.get("steps"),
    }
    return {"dataset": dataset, "fit": {k: v for k, v in options.items()}, "metrics": metrics,
            "epochs": epochs, "trainer_results": results}


def _save_test_outputs(model, dataset: str, info, size: int, folder: Path, ctx: Context) -> float:
    """Softmax of ``model`` over the test split (as the trainer's test loader feeds it), saved
    with the labels to ``folder/test_probs.pt``; returns the top-1 accuracy it implies."""
    import torch

    from cnnlab import data as cdata
    from cnnlab.train.loop import resolve_device

    dev = resolve_device(ctx.device)
    test_set = cdata.load_dataset(dataset, "test")
    loader = cdata.make_loader(test_set, batch_size=256, train=False, device=dev,
                               input_size=(info.channels, size, size))
    model.eval()
    probs, labels = [], []
    with torch.inference_mode():
        for x, y in loader:
            probs.append(torch.softmax(model(x).float(), dim=1).cpu())
            labels.append(y.cpu())
    probs, labels = torch.cat(probs), torch.cat(labels)
    torch.save({"probs": probs, "labels": labels}, folder / "test_probs.pt")
    return float((probs.argmax(1) == labels).double().mean())


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _progress(total: int, mode: str, name: str):
    from tqdm.auto import tqdm

    disable = mode in ("none", "lines") or (mode == "auto" and not sys.stderr.isatty())
    return tqdm(total=total, desc=f"{name}: runs", unit="run", disable=disable, file=sys.stderr)


def run_experiment(name: str | Experiment, *, scale: str = "smoke", seeds: int | None = None,
                   dataset: str | None = None, out: str | os.PathLike | None = None, resume: bool = False,
                   device: str = "auto", threads: int | None = None, progress: str = "auto") -> dict:
    """Run an experiment (or continue it with ``resume=True``) and return its results dict.

    ``out`` defaults to ``runs/experiments/NAME-SCALE``. A folder that already holds an
    experiment is refused unless ``resume`` is set; resuming checks that the scale, seeds
    and dataset are the ones the folder was started with, and runs only what has no record.
    """
    exp = get_experiment(name) if isinstance(name, str) else name
    if progress not in ("auto", "bar", "lines", "none"):
        raise ValueError(f"progress must be auto, bar, lines or none, got {progress!r}")
    ctx = _context(exp, scale, seeds, dataset, device, threads)
    out = Path(out) if out is not None else Path("runs") / "experiments" / f"{exp.name}-{scale}"
    asked = {"experiment": exp.name, "scale": ctx.scale, "seeds": len(ctx.seeds), "dataset": ctx.dataset}
    state = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the experiment")
    if state.exists():
        if not resume:
            raise ValueError(f"{out} already holds an experiment; pass --resume to continue it, or choose "
                             "another --out")
        stored = json.loads(state.read_text())
        for key in ("experiment", "scale", "seeds", "dataset"):
            if stored.get(key) != asked[key]:
                raise ValueError(f"--resume: {out} was started with {key} {stored.get(key)!r}, not "
                                 f"{asked[key]!r}")
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not an experiment folder; choose another --out")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    _write_json(state, {**asked, "config": ctx.config, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    plan = exp.plan(ctx)
    keys = [r.key for r in plan]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {exp.name!r}: its plan repeats a run key")
    records: list[dict] = []
    done = skipped = 0
    bar = _progress(len(plan), progress, exp.name)
    ctx.train_progress = "none" if bar.disable else "bar"  # the trainer's bar (leave=False) nests under it
    try:
        for run in plan:
            folder = out / "runs" / run.key
            record_file = folder / "record.json"
            if record_file.exists():
                records.append(json.loads(record_file.read_text()))
                skipped += 1
                bar.update(1)
                continue
            if folder.exists() and not (folder / "last.pt").exists():
                shutil.rmtree(folder)  # started but left nothing to continue from
            folder.mkdir(parents=True, exist_ok=True)
            bar.set_postfix_str(run.key)
            if progress == "lines":
                print(f"{exp.name}: run {len(records) + 1}/{len(plan)} {run.key}", file=sys.stderr, flush=True)
            record = _execute(run, folder, ctx)
            _write_json(record_file, record)
            records.append(record)
            done += 1
            bar.update(1)
    finally:
        bar.close()

    summary, checks = exp.evaluate(records, ctx)
    verdict = combine(checks)
    figures = []
    try:
        figures = exp.figures(records, summary, ctx, out)
    except ImportError as exc:  # matplotlib is an extra
        summary.setdefault("notes", []).append(f"figures not drawn: {exc} (pip install 'cnnlab[experiments]')")
    results = {
        "experiment": exp.name,
        "title": exp.title,
        "claim": exp.claim,
        "source": exp.source,
        "paper_result": exp.paper_result,
        "scale": ctx.scale,
        "seeds": ctx.seeds,
        "dataset": ctx.dataset,
        "device": ctx.device,
        "config": ctx.config,
        "environment": _environment(),
        "runs_total": len(plan),
        "runs_executed": done,
        "runs_resumed": skipped,
        "runs": records,
        "summary": summary,
        "checks": [c.to_dict() for c in checks],
        "verdict": verdict,
        "figures": [f"{s}.{ext}" for s in figures for ext in ("png", "svg")],
        "out": str(out),
    }
    _write_json(out / "results.json", results)
    from cnnlab.experiments.report import write_report

    (out / "report.md").write_text(write_report(exp, results, exp.tables(records, summary, ctx)))
    return results
