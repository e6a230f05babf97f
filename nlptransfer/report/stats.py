"""Paired statistics on the same test rows: bootstrap interval, McNemar's test, error reduction, the verdict."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..multilabel_metrics import micro_f1_of_sums, row_counts

#: McNemar uses the exact binomial test below this many discordant rows, chi-square (continuity-corrected) above.
EXACT_BELOW = 25

VERDICT_RULE = ("positive transfer if the {level:.0%} paired bootstrap interval of (transfer - baseline) test "
                "accuracy lies above 0 and McNemar's p < {alpha:g}; negative transfer if the interval lies below 0 "
                "and p < {alpha:g}; otherwise no clear difference")
INTERVAL_RULE = ("positive transfer if the {level:.0%} paired bootstrap interval of (transfer - baseline) test {metric}, "
                 "texts resampled, lies above 0; negative transfer if it lies below 0; otherwise no clear difference "
                 "(no McNemar test: it pairs right/wrong outcomes, and a multi-label text can be partly right)")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired correct/wrong outcomes: b = only A right, c = only B right."""

    b: int
    c: int
    statistic: float | None  # chi-square statistic; None for the exact test
    p_value: float
    method: str  # "exact binomial" | "chi-square with continuity correction" | "no discordant rows"


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95,
                     chunk: int = 200) -> Interval:
    """Percentile interval of mean(a - b) over rows resampled with replacement (the same rows for a and b).

    Draws `rng.integers(0, n, (resamples, n))` from numpy's default_rng(seed), in chunks of rows so that
    memory stays small; the chunks give the same numbers as one draw.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired_bootstrap needs two non-empty 1-D arrays of the same length")
    diff, n = a - b, len(a)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        means[start:start + k] = diff[rng.integers(0, n, size=(k, n))].mean(1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(diff.mean()), float(low), float(high), level, resamples, seed)


def paired_bootstrap_micro_f1(gold, predicted_a, predicted_b, resamples: int = 2000, seed: int = 0,
                              level: float = 0.95, chunk: int = 200):
    """Percentile interval  of micro-F1(a) - micro-F1(b) over rows resampled with
    replacement, drawn as stats.paired_bootstrap draws them; the estimate is the difference on all rows."""
    gold = np.asarray(gold)
    return paired_bootstrap_counts(row_counts(gold, predicted_a), row_counts(gold, predicted_b), resamples, seed,
                                   level, chunk)


def paired_bootstrap_counts(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95,
                            chunk: int = 200) -> Interval:
    """Percentile interval of micro-F1(a) - micro-F1(b) from per-row (tp, fp, fn) counts [n, 3] of two models on the
    same rows, resampled with replacement as stats.paired_bootstrap draws them; the estimate is on all rows."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0 or a.shape != b.shape:
        raise ValueError("paired_bootstrap_micro_f1 needs at least one row, the same rows for both")
    both, n = np.concatenate([a, b], 1), len(a)  # [n, 6]: a's (tp, fp, fn), then b's
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        rows = rng.integers(0, n, size=(k, n))
        sums = np.stack([both[:, c][rows].sum(1) for c in range(6)], 1)  # [k, 6], one column at a time
        diffs[start:start + k] = micro_f1_of_sums(sums[:, :3]) - micro_f1_of_sums(sums[:, 3:])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    estimate = micro_f1_of_sums(a.sum(0)) - micro_f1_of_sums(b.sum(0))
    return Interval(float(estimate), float(low), float(high), level, resamples, seed)


def paired_comparison(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[Interval, McNemar | None]:
    """The paired interval and test of two models' per-row verdict statistics (TaskKind.verdict_statistic): right/wrong
    per row [n] -> the bootstrap of the accuracy difference and McNemar's test; (tp, fp, fn) per row [n, 3] -> the
    bootstrap of the micro-F1 difference and no test (McNemar needs one right/wrong outcome per row; a multi-label
    text can be partly right, so the interval alone decides)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2:
        return paired_bootstrap_counts(a, b, resamples, seed, level), None
    return paired_bootstrap(a, b, resamples, seed, level), mcnemar(a, b)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of k successes in n trials at p = 1/2 (doubled smaller tail)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mcnemar(correct_a, correct_b) -> McNemar:
    """McNemar's test of whether A and B err on the same test rows equally often."""
    ca, cb = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    return mcnemar_counts(int((ca & ~cb).sum()), int((~ca & cb).sum()))


def mcnemar_counts(b: int, c: int) -> McNemar:
    """McNemar's test from the discordant counts: exact below EXACT_BELOW rows, else chi-square (1 df, corrected)."""
    n = b + c
    if n == 0:
        return McNemar(b, c, None, 1.0, "no discordant rows")
    if n < EXACT_BELOW:
        return McNemar(b, c, None, binomial_two_sided(min(b, c), n), "exact binomial")
    statistic = (abs(b - c) - 1) ** 2 / n
    p = math.erfc(math.sqrt(statistic / 2))  # survival function of chi-square with 1 degree of freedom
    return McNemar(b, c, float(statistic), float(p), "chi-square with continuity correction")


def error_reduction(transfer_accuracy: float, baseline_accuracy: float) -> float | None:
    """Percent of the baseline's errors that transfer removes (negative: it adds errors); None if no errors."""
    baseline_error = 1 - baseline_accuracy
    if baseline_error <= 0:
        return None
    return 100 * (baseline_error - (1 - transfer_accuracy)) / baseline_error


def verdict(interval: Interval, test: McNemar | None, alpha: float = 0.05) -> str:
    """'positive transfer' | 'negative transfer' | 'no clear difference', by VERDICT_RULE (by INTERVAL_RULE, the
    interval alone, without a test)."""
    significant = test is None or test.p_value < alpha
    if significant and interval.low > 0:
        return "positive transfer"
    if significant and interval.high < 0:
        return "negative transfer"
    return "no clear difference"


def verdict_rule(level: float = 0.95, alpha: float = 0.05, metric: str | None = None) -> str:
    """The rule `verdict` applies, in words (written into the report): VERDICT_RULE, or with `metric` (a multi-label
    task's micro_f1) INTERVAL_RULE."""
    if metric is None:
        return VERDICT_RULE.format(level=level, alpha=alpha)
    return INTERVAL_RULE.format(level=level, metric=metric.replace("_f1", "-F1"))


def as_dict(value) -> dict:
    """A result dataclass as plain JSON-ready data."""
    return asdict(value)
