"""``cnnlab search run | show | export | compare | spaces``."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from cnnlab.train.cli import _key_value  # KEY=VALUE flags parse the same way everywhere

__all__ = ["register"]

SPACE_NAMES = ("layers", "layers-tiny", "nasnet")  # cnnlab.search.spaces.SPACES, without importing torch
STRATEGY_NAMES = ("reinforce", "random", "evolution")


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="search a space with a strategy; each trial trains on a proxy task",
        description="Search SPACE with STRATEGY: each sampled architecture is trained by cnnlab's trainer for a "
                    "short budget; its reward is its validation accuracy (a split held out from the training set). "
                    "The best is retrained once and evaluated on test at the end. Interrupt it at any moment "
                    "and continue with --resume.")
    p.add_argument("--space", required=True, help=f"search space: {', '.join(SPACE_NAMES)}")
    p.add_argument("--strategy", required=True, help=f"search strategy: {', '.join(STRATEGY_NAMES)}")
    p.add_argument("--dataset", default="digits", help="proxy dataset (default: digits, bundled)")
    p.add_argument("--budget", type=int, required=True, help="number of trials")
    p.add_argument("--out", help="search directory (default: runs/search-SPACE-STRATEGY-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--space-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="space argument, e.g. num_layers=4 or num_blocks=3 (JSON values; repeatable)")
    p.add_argument("--strategy-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="strategy hyperparameter, e.g. lr=0.01, population_size=50 (repeatable)")
    p.add_argument("--tabular", action="store_true",
                   help="look rewards up in the stored table instead of training (layers-tiny on digits)")
    t = p.add_argument_group("each trial (cnnlab.train.fit)")
    t.add_argument("--recipe", default="fast")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float)
    t.add_argument("--val-fraction", type=float, default=0.1, help="validation split held out from training (the reward)")
    t.add_argument("--train-samples", type=int, help="a seeded subset of the training set")
    t.add_argument("--image-size", type=int)
    t.add_argument("--data-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    t.add_argument("--data-dir")
    t.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    t.add_argument("--no-final-eval", action="store_true", help="do not retrain the best and evaluate it on test")
    e = p.add_argument_group("execution")
    e.add_argument("--workers", type=int, default=1, help="trials at a time (local processes or Ray tasks)")
    e.add_argument("--backend", choices=("local", "ray"), default="local")
    e.add_argument("--address", help="Ray cluster address (HOST:PORT, ray://HOST:PORT or auto); "
                                     "default: start a local Ray instance")
    e.add_argument("--trial-timeout", type=float, help="seconds after which a trial is stopped and recorded as failed")
    e.add_argument("--cpus-per-trial", type=float, default=1)
    e.add_argument("--gpus-per-trial", type=float, default=0)
    p.add_argument("--json", action="store_true", help="print results.json at the end")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.search.run import SearchConfig, run_search

    if args.budget is not None and args.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {args.budget}")
    cfg = SearchConfig(
        space=args.space, strategy=args.strategy, dataset=args.dataset, budget=args.budget, seed=args.seed,
        space_args=dict(args.space_option), strategy_args=dict(args.strategy_option), recipe=args.recipe,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=args.val_fraction,
        train_samples=args.train_samples, image_size=args.image_size, data_options=dict(args.data_option),
        tabular=args.tabular, final_eval=not args.no_final_eval, workers=args.workers, backend=args.backend,
        address=args.address, trial_timeout=args.trial_timeout, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, device=args.device, data_dir=args.data_dir)
    out = args.out
    if out is None:
        if args.resume:
            raise ValueError("--resume needs --out DIR: the search to continue")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = str(Path("runs") / f"search-{args.space}-{args.strategy}-{stamp}")
    quiet = args.json
    results = run_search(cfg, out, resume=args.resume, log=None if quiet else print)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{results['trials']} trials ({results['failed']} failed) -> {out}; "
              f"`cnnlab search show {out}`, `cnnlab search export {out}`")
    return 0


def _add_show(sub) -> None:
    p = sub.add_parser("show", help="trials, best architectures and reward curves of searches",
                       description="The trials of a search (or several, e.g. one per strategy), the best "
                                   "architectures, and with --plot the reward curves as PNG/SVG.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="search directory")
    p.add_argument("--top", type=int, help="only the N best trials (default: all, in order)")
    p.add_argument("--plot", help="write the curves to this .png / .svg file")
    p.add_argument("--batch", type=int, help="trials per block of the mean-reward curve (default: the controller's "
                                             "batch, one block per update; 5 for the other strategies)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_show)


def _cmd_show(args: argparse.Namespace) -> int:
    from cnnlab.search.report import curves, plot_runs, trial_table
    from cnnlab.search.run import load_config, load_trials
    from cnnlab.search.spaces import get_space

    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    runs, payload = {}, []
    batch = args.batch
    for run in args.runs:
        trials = load_trials(run)
        cfg = load_config(run).to_dict()
        if batch is None:
            batch = int(cfg["strategy_args"].get("batch_size", 5)) if cfg["strategy"] == "reinforce" else 5
        results_path = Path(run) / "results.json"
        results = json.loads(results_path.read_text()) if results_path.exists() else None
        label = f"{cfg['strategy']} ({Path(run).name})" if len(args.runs) > 1 else cfg["strategy"]
        runs[label] = trials
        payload.append({"run": run, "config": cfg, "trials": trials, "results": results,
                        "curves": curves(trials, batch)})
        if args.json:
            continue
        space = get_space(cfg["space"], **cfg["space_args"])
        done = [t for t in trials if t["status"] != "running"]
        print(f"== {run}: {cfg['strategy']} on {cfg['space']}, {cfg['dataset']}; {len(done)}/{cfg['budget']} "
              f"trials, {sum(t['status'] == 'failed' for t in trials)} failed; reward = validation top-1")
        print(trial_table(trials, space, top=args.top))
        if results and results.get("final", {}).get("test"):
            f = results["final"]
            print(f"final choice: trial {f['trial']}, validation {100 * f['val']['top1']:.2f}%, "
                  f"test {100 * f['test']['top1']:.2f}% (evaluated once)")
        c = payload[-1]["curves"]
        if c["block_mean"]:
            what = "controller update" if cfg["strategy"] == "reinforce" else "block"
            print(f"mean reward per {what} ({batch} trials; a failed trial counts 0):",
                  " ".join(f"{x:.3f}" for x in c["block_mean"]))
        print()
    if args.plot:
        path = plot_runs(runs, args.plot, batch)
        if not args.json:
            print(f"figure -> {path}")
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a search's best architecture as a file cnnlab train/summary accept",
                       description="Write the best architecture of a search (by validation reward) as a JSON "
                                   "architecture file. `cnnlab summary FILE`, `cnnlab train FILE` and "
                                   "`cnnlab.create_model(FILE)` accept it.")
    p.add_argument("run", metavar="RUN", help="search directory")
    p.add_argument("-o", "--output", help="file to write (default: RUN/best.json)")
    p.add_argument("--rank", type=int, default=1, help="1 = the best, 2 = the second best, ...")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.search.export import export_architecture
    from cnnlab.search.run import load_config, load_trials
    from cnnlab.search.spaces import get_space

    trials = load_trials(args.run)
    cfg = load_config(args.run).to_dict()
    ok = sorted((t for t in trials if t["status"] == "ok"), key=lambda t: (-t["reward"], t["id"]))
    if args.rank < 1:
        raise ValueError(f"--rank must be at least 1, got {args.rank}")
    if len(ok) < args.rank:
        raise ValueError(f"{args.run} has {len(ok)} successful trial(s); nothing at rank {args.rank}")
    t = ok[args.rank - 1]
    space = get_space(cfg["space"], **cfg["space_args"])
    output = args.output or str(Path(args.run) / ("best.json" if args.rank == 1 else f"rank{args.rank}.json"))
    path = export_architecture(output, space=space, tokens=t["tokens"], dataset=cfg["dataset"],
                               source={"search": str(args.run), "trial": t["id"], "reward": t["reward"],
                                       "strategy": cfg["strategy"], "reward_is": "validation top-1"})
    print(f"trial {t['id']} (validation {100 * t['reward']:.2f}%) -> {path}\n"
          f"  cnnlab summary {path}\n  cnnlab train {path} --dataset {cfg['dataset']} --recipe fast --out runs/searched")
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare strategies over many seeds on a tabular benchmark",
                       description="Run each strategy over --seeds seeds on a stored table (every architecture "
                                   "of a small space trained once) and report mean ± std over seeds.")
    p.add_argument("--space", default="layers-tiny")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--strategies", default="reinforce,random,evolution")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--batch", type=int, default=5, help="trials per block of the mean-reward curve")
    p.add_argument("--strategy-option", action="append", type=_key_value, default=[], metavar="STRATEGY.KEY=VALUE",
                   help="e.g. reinforce.lr=0.01 (repeatable)")
    p.add_argument("--plot", help="write the curves to this .png / .svg file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.search.report import plot_compare
    from cnnlab.search.tabular import compare, format_compare

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in strategies if s not in STRATEGY_NAMES]
    if bad or not strategies:
        raise ValueError(f"unknown strategy {', '.join(bad) or '(none)'}; choose from {', '.join(STRATEGY_NAMES)}")
    if args.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {args.budget}")
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1 (trials per block of the curve), got {args.batch}")
    options: dict[str, dict[str, Any]] = {}
    for key, value in args.strategy_option:
        name, _, field = key.partition(".")
        if name not in STRATEGY_NAMES or not field:
            raise ValueError(f"--strategy-option {key}: write it as STRATEGY.KEY=VALUE, e.g. reinforce.lr=0.01")
        options.setdefault(name, {})[field] = value
    res = compare(args.space, args.dataset, strategies, seeds=args.seeds, budget=args.budget, batch=args.batch,
                  strategy_args=options)
    if args.plot:
        plot_compare(res, args.plot)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(format_compare(res))
    if args.plot:
        print(f"\nfigure -> {args.plot}")
    return 0


def _add_spaces(sub) -> None:
    p = sub.add_parser("spaces", help="the search spaces and their decisions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_spaces)


def _cmd_spaces(args: argparse.Namespace) -> int:
    from cnnlab.search.spaces import SPACES, get_space
    from cnnlab.search.tabular import list_tables

    rows = []
    for name in SPACES:
        s = get_space(name)
        rows.append({"space": name, "args": s.args, "decisions": len(s.decisions),
                     "architectures": s.num_architectures,
                     "tables": [d for sp, d in list_tables() if sp == name]})
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        n = r["architectures"]
        size = f"{n:,}" if n < 1e9 else f"{n:.2e}"
        tables = f"  tabular: {', '.join(r['tables'])}" if r["tables"] else ""
        print(f"{r['space']:<12} {r['decisions']:>3} decisions  {size:>10} architectures{tables}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="architecture search: REINFORCE controller, random, evolution",
                              description="Neural architecture search (Zoph & Le 2016; NASNet, Zoph et al. 2017; "
                                          "regularized evolution, Real et al. 2019).")
    sub = p.add_subparsers(dest="search_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    _add_run(sub)
    _add_show(sub)
    _add_export(sub)
    _add_compare(sub)
    _add_spaces(sub)
