"""``cnnlab weights [PATTERN]``: the published checkpoints, their sizes and accuracy, and
whether they are in the cache; ``--download`` fetches them, ``--verify`` re-hashes them."""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def _cmd_weights(args: argparse.Namespace) -> int:
    from cnnlab.weights import spec
    from cnnlab.weights.store import cache_dir, cached_path, fetch_weights, is_cached, verify_cached

    rows = spec.list_weights(args.pattern)
    if not rows:
        from cnnlab.registry import list_models

        named = list_models(args.pattern)
        if named:
            raise ValueError(f"no published weights for {', '.join(named[:6])}{' ...' if len(named) > 6 else ''}: "
                             "only models with torchvision's or timm's layout have them; "
                             f"these do: {', '.join(spec.models_with_weights())}")
        raise ValueError(f"no model matches {args.pattern!r} (`cnnlab models` lists them)")
    if args.tag:
        rows = [w for w in rows if w.tag == args.tag.upper() or (args.tag.upper() == "DEFAULT" and w.default)]
        if not rows:
            raise ValueError(f"no weights tagged {args.tag!r} among the models matching {args.pattern!r}")
    for w in rows:
        if args.download:
            path = fetch_weights(w, verify=args.verify)
            print(f"{w.name}: ready at {path}", file=sys.stderr)
        elif args.verify:
            state = verify_cached(w, full=True)
            if state != "missing":
                print(f"{w.name}: {'verified' if state == 'ok' else 'did not match its checksum; deleted'}",
                      file=sys.stderr)
    if args.json:
        out = [{**w.to_dict(), "cached": is_cached(w), "path": str(cached_path(w))} for w in rows]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = [("model", "tag", "publisher", "format", "size", "input", "top-1 / top-5", "cached")]
    for w in rows:
        size = f"{w.size_mb:.0f} MB" if w.size_mb else "?"
        table.append((w.model, w.tag + (" *" if w.default else ""), w.publisher, w.format, size,
                      str(w.preprocessing.crop), w.accuracy_text(), "yes" if is_cached(w) else "no"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    right = {4, 5}
    for k, r in enumerate(table):
        print("  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    n_models = len({w.model for w in rows})
    print(f"\n{len(rows)} checkpoint(s) of {n_models} model(s); * = DEFAULT. Accuracy: ImageNet-1k val, as published "
          f"(`--json` gives sources). Cache: {cache_dir()} ($CNNLAB_HOME)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "weights", help="list the published pretrained weights (size, accuracy, cached?)",
        description="The published ImageNet checkpoints that load into cnnlab models (those with torchvision's or "
                    "timm's layout): tags, sizes, published top-1/top-5, whether they are in the cache. Use them with "
                    "create_model(NAME, pretrained=True) or --pretrained[=TAG] on the command line.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style model name pattern, e.g. 'resnet*'")
    p.add_argument("--tag", help="only this tag (e.g. DEFAULT, IMAGENET1K_V1)")
    p.add_argument("--download", action="store_true", help="download the listed weights into the cache")
    p.add_argument("--verify", action="store_true", help="hash the cached files in full (not just size + record)")
    p.add_argument("--json", action="store_true", help="print JSON (every field with its source) for scripts")
    p.set_defaults(func=_cmd_weights)
