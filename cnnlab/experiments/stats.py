"""Summary statistics over seeds and the verdict rules experiments are judged by.

A verdict is one of :data:`HELD`, :data:`NOT_HELD` or :data:`INCONCLUSIVE`. It is
decided by a rule written in code, never by hand:

* :func:`compare` -- a claim "A is larger than B" (or smaller) about a measured figure
  holds when the two 95% confidence intervals of the mean over seeds do not overlap and
  A lies on the claimed side; it did not hold when they do not overlap and A lies on
  the other side; anything else (overlapping intervals, fewer than two seeds) is
  inconclusive at this scale.
* :func:`not_below` -- a claim "A is at least as good as B" holds when A's interval lies
  above B's mean less a stated margin (non-inferiority), did not hold when A's interval
  lies wholly below B's, and is inconclusive otherwise.
* :func:`exact` -- a deterministic claim (a count, a numerical identity) holds when the
  measured value equals the expected one within a stated tolerance, else it did not hold.
* :func:`combine` -- a claim made of several checks holds when every check held, did not
  hold when any did not hold, and is inconclusive otherwise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

__all__ = ["HELD", "NOT_HELD", "INCONCLUSIVE", "VERDICTS", "Check", "summarize", "t_quantile",
           "compare", "not_below", "exact", "holds", "combine"]

HELD = "held"
NOT_HELD = "did not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)

COMPARE_RULE = ("non-overlapping 95% confidence intervals of the mean over seeds (Student's t, n-1 "
                "degrees of freedom) on the claimed side: held; on the other side: did not hold; "
                "overlapping intervals or fewer than 2 seeds: inconclusive")


@dataclass
class Check:
    """One claim checked against the numbers: its verdict, the rule and the evidence."""

    name: str
    claim: str
    verdict: str
    rule: str
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(df: int, p: float = 0.975) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def summarize(values: Iterable[float]) -> dict:
    """Mean, sample standard deviation (ddof 1), n and the 95% confidence interval of the mean.

    With one value the standard deviation and the interval are ``None``.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("summarize() needs at least one value")
    mean = sum(xs) / n
    if n < 2:
        return {"mean": mean, "std": None, "n": n, "ci95": None, "values": xs}
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95": [mean - half, mean + half], "values": xs}


def fmt(stats: dict, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    """``mean ± std (n=N)``, values multiplied by ``scale``."""
    mean = stats["mean"] * scale
    if stats["std"] is None:
        return f"{mean:.{digits}f}{unit} (n={stats['n']})"
    return f"{mean:.{digits}f} ± {stats['std'] * scale:.{digits}f}{unit} (n={stats['n']})"


def compare(name: str, claim: str, a: dict, b: dict, *, a_label: str, b_label: str, greater: bool,
            metric: str = "", scale: float = 1.0, unit: str = "") -> Check:
    """Check the claim "``a`` > ``b``" (``greater=True``) or "``a`` < ``b``" on summaries from
    :func:`summarize`, by the non-overlapping-interval rule."""
    evidence = (f"{metric + ': ' if metric else ''}{a_label} {fmt(a, scale, unit=unit)}, "
                f"{b_label} {fmt(b, scale, unit=unit)}")
    if a["ci95"] is None or b["ci95"] is None:
        return Check(name, claim, INCONCLUSIVE, COMPARE_RULE, evidence + "; fewer than 2 seeds, no interval")
    a_lo, a_hi = a["ci95"]
    b_lo, b_hi = b["ci95"]
    evidence += (f"; 95% CIs [{a_lo * scale:.3f}, {a_hi * scale:.3f}] vs [{b_lo * scale:.3f}, "
                 f"{b_hi * scale:.3f}]")
    if a_lo > b_hi:
        verdict = HELD if greater else NOT_HELD
    elif a_hi < b_lo:
        verdict = NOT_HELD if greater else HELD
    else:
        verdict = INCONCLUSIVE
        evidence += " (overlap)"
    return Check(name, claim, verdict, COMPARE_RULE, evidence)


def not_below(name: str, claim: str, a: dict, b: dict, *, a_label: str, b_label: str, margin: float,
              metric: str = "", scale: float = 1.0, unit: str = "") -> Check:
    """Check the claim "``a`` is at least as good as ``b``" (non-inferiority with ``margin``).

    Held when the lower end of A's 95% interval is at least B's mean minus ``margin``; did
    not hold when A's whole interval lies below B's; inconclusive otherwise (wide intervals
    cannot show "at least as good").
    """
    rule = (f"non-inferiority with a margin of {margin * scale:g}{unit or ''}: held when the lower end of "
            "A's 95% interval is at least B's mean minus the margin; did not hold when A's interval lies wholly "
            "below B's; otherwise (or with fewer than 2 seeds) inconclusive")
    evidence = (f"{metric + ': ' if metric else ''}{a_label} {fmt(a, scale, unit=unit)}, "
                f"{b_label} {fmt(b, scale, unit=unit)}")
    if a["ci95"] is None or b["ci95"] is None:
        return Check(name, claim, INCONCLUSIVE, rule, evidence + "; fewer than 2 seeds, no interval")
    evidence += (f"; 95% CIs [{a['ci95'][0] * scale:.3f}, {a['ci95'][1] * scale:.3f}] vs "
                 f"[{b['ci95'][0] * scale:.3f}, {b['ci95'][1] * scale:.3f}]")
    if a["ci95"][0] >= b["mean"] - margin:
        verdict = HELD
    elif a["ci95"][1] < b["ci95"][0]:
        verdict = NOT_HELD
    else:
        verdict = INCONCLUSIVE
    return Check(name, claim, verdict, rule, evidence)


def exact(name: str, claim: str, measured: float, expected: float, *, tol: float = 0.0,
          what: str = "") -> Check:
    """Check a deterministic figure: held when ``|measured - expected| <= tol``."""
    diff = abs(float(measured) - float(expected))
    ok = diff <= tol
    rule = "exact equality" if tol == 0 else f"equal within an absolute tolerance of {tol:g}"
    def show(v):
        return f"{v:,}" if float(v).is_integer() and abs(v) < 1e18 else f"{v:.3g}"
    evidence = f"{what + ': ' if what else ''}measured {show(measured)}, expected {show(expected)}"
    if tol:
        evidence += f" (difference {diff:.3g})"
    return Check(name, claim, HELD if ok else NOT_HELD, rule, evidence)


def holds(name: str, claim: str, ok: bool, *, rule: str, evidence: str) -> Check:
    """Check a deterministic yes/no property (``rule`` says what is compared)."""
    return Check(name, claim, HELD if ok else NOT_HELD, rule, evidence)


def combine(checks: Sequence[Check]) -> str:
    """The verdict of a claim made of several checks."""
    if not checks:
        return INCONCLUSIVE
    verdicts = [c.verdict for c in checks]
    if any(v == NOT_HELD for v in verdicts):
        return NOT_HELD
    if all(v == HELD for v in verdicts):
        return HELD
    return INCONCLUSIVE
