"""``cnnlab bench MODEL...`` and ``cnnlab compare [MODEL...]``."""
from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["register", "parse_batch_sizes"]


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; a clear ValueError for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError("--batch-sizes is empty: give e.g. 1,2,4,8")
    sizes = []
    for p in parts:
        try:
            n = int(p)
        except ValueError:
            raise ValueError(f"--batch-sizes: {p!r} is not an integer (give e.g. 1,2,4,8)") from None
        if n < 1:
            raise ValueError(f"--batch-sizes: every batch size must be positive, got {n}")
        sizes.append(n)
    return sizes


def expand_models(names: list[str]) -> list[str]:
    """Model names; shell patterns (``'resnet*'``) expand to the registered names."""
    from cnnlab.registry import list_models, model_info

    out: list[str] = []
    for n in names:
        if any(ch in n for ch in "*?["):
            found = list_models(n)
            if not found:
                raise ValueError(f"no model matches {n!r}")
            out += [m for m in found if m not in out]
        else:
            model_info(n)  # unknown names fail here, with suggestions
            if n not in out:
                out.append(n)
    return out


def _settings(args) -> dict:
    return dict(input_size=args.input_size, mode=args.mode, precision=args.precision,
                channels_last=args.channels_last, compile=args.compile, device=args.device,
                threads=args.threads, min_time=args.min_time, warmup=args.warmup)


def _cmd_bench(args: argparse.Namespace) -> int:
    from cnnlab.bench.export import format_table, table_rows, to_csv
    from cnnlab.bench.runner import BenchConfig, bench, check_config

    sizes = parse_batch_sizes(args.batch_sizes)
    models = expand_models(args.models)
    cfg = BenchConfig(batch_sizes=tuple(sizes), imports=list(args.imports), **_settings(args))
    check_config(models, cfg)  # every bad argument is reported before anything runs
    if args.csv and os.path.isdir(args.csv):
        raise ValueError(f"--csv {args.csv} is a directory; give a file name")
    records: list[dict] = []
    interrupted = False
    try:
        records = bench(models, out=args.out, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, config=cfg)
    except KeyboardInterrupt:
        interrupted = True
        if args.out and os.path.exists(args.out):
            from cnnlab.bench.runner import read_results

            records = [r for r in read_results(args.out) if r.get("type") == "result"]
    if args.csv:
        to_csv(records, args.csv)
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif records:
        sys.stdout.write(format_table(table_rows(records), markdown=args.markdown))
    if interrupted:
        where = f"; kept in {args.out} (run again with --resume to continue)" if args.out else ""
        print(f"cnnlab bench: interrupted after {len(records)} measurement(s){where}", file=sys.stderr)
        return 130
    if args.out:
        print(f"results: {args.out}" + (f", {args.csv}" if args.csv else ""), file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.bench.compare import compare

    models = expand_models(args.models) if args.models else None
    result = compare(models, preset=args.preset, family=args.family, all_models=args.all,
                     bench_file=args.bench, accuracy_file=args.accuracy, out=args.out,
                     batch_sizes=parse_batch_sizes(args.batch_sizes) if args.batch_sizes else None,
                     run_missing=not args.no_run, progress=not args.no_progress,
                     figures=not args.no_figures, clock=args.clock, **_settings(args))
    if args.json:
        json.dump(result.rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(result.table(markdown=args.markdown))
    print(f"written to {args.out}/: report.md, table.(md|csv|json), "
          f"{sum('png' in f for f in result.figures.values())} figure(s) as PNG + SVG + CSV", file=sys.stderr)
    return 0


def _add_settings(p: argparse.ArgumentParser, *, defaults: dict) -> None:
    p.add_argument("--input-size", type=int, default=None, help="input height = width (default: each model's own)")
    p.add_argument("--mode", choices=("infer", "train"), default="infer",
                   help="infer: forward in eval mode; train: forward + backward + SGD step (default infer)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32, or bf16/fp16 under torch.autocast (default fp32)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout for weights and input")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up pays the compile)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: PyTorch's own)")
    p.add_argument("--min-time", type=float, default=defaults["min_time"],
                   help=f"seconds of timed runs per point, at least (default {defaults['min_time']})")
    p.add_argument("--warmup", type=int, default=defaults["warmup"],
                   help=f"untimed runs before timing (default {defaults['warmup']})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="latency (median/p90/p99), images/s, peak memory, energy per batch size",
        description="Measure registered models on this machine, each in its own subprocess: per batch size the "
                    "latency per batch (median, p90, p99 and the number of timed runs), images per second, time "
                    "per image, peak memory above the baseline, and energy per image / average power where a "
                    "meter exists (NVML, RAPL). Results stream to a JSONL file as they are measured.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="registered model names or patterns ('resnet*')")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64", help="comma-separated (default 1,2,4,8,16,32,64)")
    _add_settings(p, defaults={"min_time": 1.0, "warmup": 3})
    p.add_argument("--out", default=None, help="JSONL file the results stream to (default: none, table only)")
    p.add_argument("--resume", action="store_true", help="continue --out: skip what it already holds")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--csv", default=None, help="also write a CSV (timm benchmark.py column names)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register more models); repeatable")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the records as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_bench)

    c = subparsers.add_parser(
        "compare",
        help="Canziani-style comparison: accuracy, operations, params, time, memory, power",
        description="Join, per model, the published top-1/top-5, parameters, MACs and activation memory "
                    "(cnnlab.analyze) and the measured figures (running `cnnlab bench` for what is missing) into "
                    "a table and the figures of Canziani et al. 2017 (arXiv:1605.07678), with a report.",
    )
    c.add_argument("models", nargs="*", metavar="MODEL", help="registered model names or patterns")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=("lecture",), default=None,
                       help="lecture: the 14 ImageNet networks of the lecture (AlexNet ... NASNet-A mobile)")
    which.add_argument("--family", default=None, help="every model of this family (e.g. resnet)")
    which.add_argument("--all", action="store_true", help="every registered model")
    c.add_argument("--bench", default=None, help="bench JSONL file to take measurements from")
    c.add_argument("--accuracy", default=None,
                   help="measured accuracies (JSON/JSONL/CSV with model, top1[, top5, dataset]) to use "
                        "beside or instead of the published ones")
    c.add_argument("--out", default="compare", help="output folder (default ./compare)")
    c.add_argument("--batch-sizes", default=None, help="batch sizes to measure what is missing (default 1,4,16)")
    c.add_argument("--no-run", action="store_true", help="never run bench; what is not measured is unavailable")
    c.add_argument("--no-figures", action="store_true", help="tables only")
    c.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="times from the wall clock (default) or the process CPU time per run (with --threads 1: "
                        "what an idle core needs, robust on a busy machine)")
    _add_settings(c, defaults={"min_time": 0.5, "warmup": 2})
    fmt = c.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the joined rows as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    c.set_defaults(func=_cmd_compare)
