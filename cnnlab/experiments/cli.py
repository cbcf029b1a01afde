"""``cnnlab experiment list`` and ``cnnlab experiment run NAME``."""
from __future__ import annotations

import argparse
import json
import sys

SCALES = ("smoke", "small", "paper")


def _cmd_list(args: argparse.Namespace) -> int:
    from cnnlab.experiments import get_experiment, list_experiments

    rows = []
    for name in list_experiments():
        exp = get_experiment(name)
        rows.append({"name": name, "title": exp.title, "scales": list(exp.scales),
                     "datasets": list(exp.datasets), "source": exp.source})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        data = f"  [data: {', '.join(r['datasets'])}]" if r["datasets"] else "  [no training]"
        print(f"{r['name'].ljust(width)}  {r['title']}{data}")
    print(f"\n{len(rows)} experiment(s); run one with: cnnlab experiment run NAME --scale smoke")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.experiments import run_experiment

    out = args.out or f"runs/experiments/{args.name}-{args.scale}"
    try:
        results = run_experiment(args.name, scale=args.scale, seeds=args.seeds, dataset=args.dataset, out=out,
                                 resume=args.resume, device=args.device, threads=args.threads,
                                 progress=args.progress)
    except KeyboardInterrupt:
        seeds = f" --seeds {args.seeds}" if args.seeds else ""
        dataset = f" --dataset {args.dataset}" if args.dataset else ""
        print(f"cnnlab experiment: interrupted; finished runs are kept in {out}/runs; continue with: cnnlab "
              f"experiment run {args.name} --scale {args.scale}{seeds}{dataset} --out {out} --resume", file=sys.stderr)
        return 130
    print(f"{results['experiment']} ({results['scale']}, {len(results['seeds'])} seed(s)"
          + (f", {results['dataset']}" if results["dataset"] else "") + f"): {results['verdict'].upper()}")
    for c in results["checks"]:
        print(f"  {c['verdict']:<13} {c['name']}: {c['evidence']}")
    print(f"results: {results['out']}/results.json, report: {results['out']}/report.md"
          + (f", {len(results['figures'])} figure file(s)" if results["figures"] else ""))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("experiment", help="the lecture's claims as experiments with verdicts",
                              description="Run the lecture's claims as experiments: numbers, figures, a verdict.")
    sub = p.add_subparsers(dest="experiment_command", metavar="ACTION")
    q = sub.add_parser("list", help="the experiments")
    q.add_argument("--json", action="store_true", help="print JSON for scripts")
    q.set_defaults(func=_cmd_list)
    q = sub.add_parser("run", help="run (or --resume) one experiment")
    q.add_argument("name", help="an experiment (cnnlab experiment list)")
    q.add_argument("--scale", default="smoke", choices=SCALES,
                   help="smoke: seconds; small: minutes on a CPU; paper: the papers' settings, for a GPU")
    q.add_argument("--seeds", type=_positive_int, default=None, help="seeds per arm (default: the experiment's)")
    q.add_argument("--dataset", default=None, help="a dataset the experiment can use (default: its own)")
    q.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where training runs (auto: cuda when available)")
    q.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for training runs")
    q.add_argument("--out", default=None, help="output folder (default: runs/experiments/NAME-SCALE)")
    q.add_argument("--resume", action="store_true", help="continue an interrupted experiment in --out")
    q.add_argument("--progress", default="auto", choices=("auto", "bar", "lines", "none"),
                   help="a bar over the runs (auto: on a terminal)")
    q.set_defaults(func=_cmd_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
