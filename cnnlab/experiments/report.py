"""``report.md``: the claim, what was measured, the tables, the checks and the verdict."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.experiments.core import Experiment

__all__ = ["write_report", "markdown_table", "figure_path"]


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure_path(stem: str) -> str:
    return f"{stem}.png"


def write_report(exp: "Experiment", results: dict, tables: list[str]) -> str:
    env = results["environment"]
    seeds = results["seeds"]
    lines = [
        f"# {exp.title}",
        "",
        f"**Verdict: {results['verdict']}** (scale `{results['scale']}`)",
        "",
        "## Claim",
        "",
        exp.claim,
        "",
        f"Source: {exp.source}",
        "",
    ]
    if exp.paper_result:
        lines += [f"The paper: {exp.paper_result}", ""]
    lines += [
        "## What was measured",
        "",
        f"- experiment `{exp.name}`, scale `{results['scale']}`, {len(seeds)} seed(s) ({', '.join(map(str, seeds))})"
        + (f", dataset `{results['dataset']}`" if results["dataset"] else ", no dataset"),
        f"- settings: `{results['config']}`",
        f"- {results['runs_total']} runs ({results['runs_executed']} executed now, "
        f"{results['runs_resumed']} taken from the records of an earlier invocation)",
        f"- machine: {env['platform']}, {env['cpus']} logical CPUs, torch {env['torch']}"
        + (f", {env['cuda']}" if env.get("cuda") else ", no GPU")
        + f", device `{results['device']}`",
        "",
    ]
    for table in tables:
        lines += [table, ""]
    lines += ["## Checks", "",
              "| check | claim | verdict | evidence |", "|---|---|---|---|"]
    for c in results["checks"]:
        lines.append(f"| {_cell(c['name'])} | {_cell(c['claim'])} | **{c['verdict']}** | {_cell(c['evidence'])} |")
    lines += ["", "Rules:", ""]
    for rule in dict.fromkeys(c["rule"] for c in results["checks"]):
        lines.append(f"- {rule}")
    lines += ["", "The claim's verdict: held when every check held, did not hold when any check did not "
                  "hold, inconclusive otherwise.", ""]
    notes = list(results["summary"].get("notes", []))
    if exp.notes:
        notes.insert(0, exp.notes)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if results["figures"]:
        lines += ["## Figures", ""]
        for f in results["figures"]:
            if f.endswith(".png"):
                lines += [f"![{f[:-4]}]({f})", ""]
    return "\n".join(lines)
