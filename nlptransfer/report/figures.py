"""The report's figures as base64 PNG (matplotlib's Agg canvas directly: no pyplot, no global backend)."""
from __future__ import annotations

import base64
import io

import numpy as np

TRANSFER, BASELINE, OTHER = "#1f77b4", "#ff7f0e", "#7f7f7f"


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png(figure) -> str:
    """The figure as a base64-encoded PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plain(text: str) -> str:
    """`text` shown as it is: matplotlib reads $...$ as math, so a label like '$x$' (or '$\\bad$') must be escaped."""
    return str(text).replace("$", r"\$")


def learning_curve(points: list[dict], metric: str = "accuracy") -> str:
    """Test score against training rows, transfer and baseline."""
    figure = _figure()
    ax = figure.add_subplot()
    rows = [p["train_rows"] for p in points]
    for key, color, label in (("transfer", TRANSFER, "transfer"), ("baseline", BASELINE, "tf-idf baseline")):
        ax.plot(rows, [p[key][metric] for p in points], "o-", color=color, label=label)
    ax.set_xscale("log")
    ax.set_xticks(rows, [f"{p['fraction']:.0%}\n{p['train_rows']}" for p in points])
    ax.minorticks_off()
    ax.set_xlabel("training data (fraction, rows)")
    ax.set_ylabel(f"test {metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    return png(figure)


def training_curves(log: list[dict], metric: str, baseline_score: float | None) -> str:
    """Training loss per step and validation score per evaluation, with the baseline's validation score."""
    figure = _figure(9, 3.4)
    left, right = figure.subplots(1, 2)
    steps = [r for r in log if "loss" in r]
    left.plot([r["step"] for r in steps], [r["loss"] for r in steps], color=TRANSFER, lw=1)
    left.set_xlabel("optimizer step")
    left.set_ylabel("training loss")
    left.grid(alpha=0.3)
    evals = [r for r in log if "eval" in r]
    if evals:
        right.plot([r["step"] for r in evals], [r["eval"][metric] for r in evals], "o-", color=TRANSFER,
                   label="transfer")
    if baseline_score is not None:
        right.axhline(baseline_score, color=BASELINE, ls="--", label="baseline (final)")
    right.set_xlabel("optimizer step")
    right.set_ylabel(f"validation {metric}")
    right.grid(alpha=0.3)
    if evals or baseline_score is not None:
        right.legend()
    else:
        right.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=right.transAxes)
    return png(figure)


def confusion_matrices(matrices: dict[str, list[list[int]]], names: tuple[str, ...]) -> str:
    """Confusion matrices side by side (rows gold, columns predicted)."""
    size = max(3.2, 0.5 * len(names) + 2)
    figure = _figure(size * len(matrices), size)
    for ax, (title, matrix) in zip(np.atleast_1d(figure.subplots(1, len(matrices))), matrices.items()):
        m = np.asarray(matrix)
        ax.imshow(m, cmap="Blues")
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > m.max() / 2 else "black", fontsize=8)
        ax.set_xticks(range(len(names)), [plain(n) for n in names], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), [plain(n) for n in names], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title)
    return png(figure)


def reliability(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], bins: int = 10) -> str:
    """Reliability diagram: accuracy against confidence of the top prediction, per model, with its ECE."""
    figure = _figure(5, 4)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], ls=":", color=OTHER, label="perfect calibration")
    edges = np.linspace(0, 1, bins + 1)
    for (name, (probs, gold, ece)), color in zip(curves.items(), (TRANSFER, BASELINE)):
        confidence, correct = probs.max(1), (probs.argmax(1) == gold)
        which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            if (which == b).any():
                xs.append(confidence[which == b].mean())
                ys.append(correct[which == b].mean())
        ax.plot(xs, ys, "o-", color=color, label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return png(figure)


def indicator_bars(scores: dict[str, float], metric: str = "accuracy") -> str:
    """Test score of zero-shot, linear probe, baseline and transfer, as bars."""
    figure = _figure(6, 3)
    ax = figure.add_subplot()
    names = list(scores)
    colors = [TRANSFER if n == "transfer" else BASELINE if "baseline" in n else OTHER for n in names]
    bars = ax.barh(names, [scores[n] for n in names], color=colors)
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"test {metric}")
    ax.invert_yaxis()
    return png(figure)


def pareto_plot(rows: list[dict], metric: str = "accuracy") -> str:
    """Score against trainable parameters and against training time; Pareto-best points ringed and joined."""
    figure = _figure(10, 4)
    for ax, key, label in zip(figure.subplots(1, 2), ("trainable_parameters", "train_seconds"),
                              ("trainable parameters", "training seconds")):
        best = [r for r in rows if r["pareto"][key]]
        for r in rows:
            color = BASELINE if r["kind"] == "baseline" else TRANSFER
            ax.scatter(r[key], r[metric], color=color, s=60, zorder=3)
            ax.annotate(plain(r["name"]), (r[key], r[metric]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        best.sort(key=lambda r: r[key])
        ax.scatter([r[key] for r in best], [r[metric] for r in best], s=220, facecolors="none",
                   edgecolors="green", linewidths=2, zorder=4, label="Pareto-best")
        ax.step([r[key] for r in best], [r[metric] for r in best], where="post", color="green", alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    return png(figure)
