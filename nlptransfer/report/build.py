"""Build the transfer report of a finished run: baseline, indicators, statistics, verdict; write report/."""
from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import LabelMap, Splits
from ..errors import RecipeError, RunError
from ..logs import get_logger
from ..recipe import Recipe, overrides as parse_overrides, read_saved, refuse_untrusted_code
from ..run import RunFolder
from ..tasks import Task, run_tasks
from . import stats
from .adaptation import adaptation_section
from .baseline import C_GRID, fit_run_baseline
from .curve import learning_curve
from .indicators import knowledge_alone, time_to_score
from .kpi import cost_per_1000, folder_bytes, serving_speed

logger = get_logger(__name__)
BASELINE_NAME = "tf-idf (word 1-2 + char 2-5 grams) + logistic regression"
#: the baseline of a kind that tunes thresholds (multi_label)
TUNED_BASELINE_NAME = ("tf-idf (word 1-2 + char 2-5 grams) + one-vs-rest logistic regression, thresholds tuned on "
                       "validation as the run tuned its own")


@dataclass(frozen=True)
class ReportPlan:
    """The extra work a report costs, counted before it starts."""

    fractions: list[float]
    transfer_trainings: int
    training_rows: int  # rows the extra transfer trainings train on, together
    baseline_fits: int
    encoded_texts: int  # texts the frozen encoder embeds (train, test and the label texts)
    probe_fits: int

    def describe(self, train_seconds: float | None = None, train_rows: int | None = None) -> str:
        """One line for the console: counts, and a time estimate once the run's own training time is known."""
        if not self.fractions:  # multi-task
            return (f"report: {self.transfer_trainings} extra training(s), each task alone, on {self.training_rows:,} "
                    "rows together")
        line = (f"report: {self.transfer_trainings} extra transfer training(s) on {self.training_rows:,} rows "
                f"(learning curve at {', '.join(f'{f:.0%}' for f in self.fractions)}), {self.baseline_fits} baseline "
                f"fit(s), a frozen-encoder pass over {self.encoded_texts:,} texts (zero-shot + probe), "
                f"{self.probe_fits} probe fit")
        if train_seconds is not None and train_rows:
            line += f"; about {train_seconds * self.training_rows / train_rows:.1f} s of extra transfer training"
        return line


def plan(recipe: Recipe, splits: Splits) -> ReportPlan:
    """What building the report of a run of `recipe` on `splits` will cost; RecipeError for data without labels."""
    from .baseline import training_subset

    if splits.train.labels is None:
        raise RecipeError("the report compares test scores against labels, and the data has no label column "
                          "(zero_shot classified its texts): report on a labelled file, or leave out --report")
    if splits.tasks:  # multi-task: one training of each task alone, on the rows labelled for it
        rows = sum(len(splits.task_split(task).train) for task in splits.tasks)
        return ReportPlan([], len(splits.tasks), rows, 0, 0, 0)

    fractions = sorted(set(recipe.report.learning_curve) | {1.0})
    partial = [f for f in fractions if f < 1]
    task = _task(splits)
    rows = sum(len(training_subset(task, splits.train.labels, f, recipe.training.seed)) for f in partial)
    grid = len(C_GRID) if splits.validation is not None else 1
    encoded = len(splits.train) + (len(splits.test) if splits.test else 0) + len(splits.label_map)
    if task.kind.tunes:  # no zero-shot (no label texts); the probe's thresholds are tuned on validation
        encoded += (len(splits.validation) if splits.validation else 0) - len(splits.label_map)
    adapted = recipe.adapt.target is not None  # + the same recipe source-only (report/adaptation.py)
    return ReportPlan(fractions, len(partial) + adapted, rows + (len(splits.train) if adapted else 0),
                      grid * (1 + len(partial)), encoded, 1)


def _recipe_with(run: RunFolder, overrides: list[str] | dict | None) -> Recipe:
    recipe = read_saved(run.path("recipe"))
    changes = parse_overrides(overrides)
    wrong = [k for k in changes if not k.startswith("report.")]
    if wrong:
        raise RecipeError(f"only report.* settings can change for a finished run, got: {', '.join(wrong)}")
    return recipe.replace(**changes) if changes else recipe


def _transfer_predictions(run: RunFolder, splits: Splits, keep_formulas: bool) -> tuple[np.ndarray, list[dict]]:
    """Test probabilities from predictions.csv, checked to be the rows the splits give."""
    from ..data.cells import read_predictions

    rows = read_predictions(run.path("predictions"), keep_formulas)
    names = splits.label_map.names
    if [r["text"] for r in rows] != list(splits.test.texts):
        raise RunError(f"{run.path('predictions')} does not hold the test rows the recipe's data gives now: "
                       "the data files changed since the run; re-run it to report on it")
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows]).reshape(len(rows), len(names))
    return probs, rows


def caveats(probs: np.ndarray, gold: list[int], names, log: list[dict], metric: str, knowledge: dict,
            task: Task | None = None) -> list[str]:
    """What a reader must know before trusting the verdict: a transfer model that predicts one class (multi-label: no
    label, or one label set, for every text), one still improving when training stopped, and zero-shot scored
    against label names that mean nothing."""
    notes = []
    task = task or next(iter(run_tasks(names).values()))
    collapsed = task.kind.collapsed(task, np.asarray(gold), probs)
    if collapsed:
        notes.append(f"{collapsed}: it is under-trained, so the verdict "
                     "compares an unfinished model rather than transfer (train longer, or raise training.lr)")
    scores = [r["eval"][metric] for r in log if "eval" in r and metric in r["eval"]]
    if len(scores) >= 2 and scores[-1] >= max(scores) and scores[-1] - scores[-2] >= 0.005:
        notes.append(f"the transfer run's validation {metric} was still rising when training stopped "
                     f"({scores[-2]:.4f} -> {scores[-1]:.4f}): more epochs may change the verdict")
    label_texts = list(knowledge.get("label_texts", {}).values())
    if label_texts and all(t.strip().replace(".", "", 1).isdigit() or len(t.strip()) <= 1 for t in label_texts):
        notes.append(f"zero-shot compares texts with the label names ({', '.join(map(repr, label_texts))}), which "
                     "carry no meaning; describe each label in labels.descriptions for a fair zero-shot score")
    return notes


def _slices(recipe: Recipe, splits: Splits, probs: np.ndarray, task: Task | None = None) -> list[dict]:
    task = task or _task(splits)
    gold = np.asarray(splits.test.labels)
    return [task.kind.slice_metrics(task, gold, probs, values, column, recipe.training.seed, recipe.report.bootstrap,
                                    1 - recipe.report.alpha)
            for column, values in splits.test.slices.items()]


def _task(splits: Splits) -> Task:
    """A one-task run's task."""
    return next(iter(run_tasks(splits.label_map).values()))


def _mistakes(rows: list[dict], probs: np.ndarray, gold: list[int], names, k: int,
              task: Task | None = None) -> list[dict]:
    """The k most confident wrong predictions (likely label errors, or the model's blind spots); multi-label: wrong
    label decisions."""
    task = task or next(iter(run_tasks(names).values()))
    return task.kind.mistakes(task, np.asarray(gold), probs, [r["text"] for r in rows], k)


def _final(recipe: Recipe, gold, transfer_probs, baseline_probs, names, task: Task | None = None,
           baseline_task: Task | None = None) -> dict:
    """Indicator 3: test scores with and without transfer, paired interval and test, error reduction, verdict. A
    multi-label `task` (the run's thresholds; `baseline_task`: the baseline's): micro-F1 compared, by the interval
    alone, and a per-label table in place of the confusion matrices."""
    r = recipe.report
    gold = np.asarray(gold)
    task = task or next(iter(run_tasks(names).values()))
    baseline_task = baseline_task or task
    kind, main = task.kind, task.kind.report_scores[0]
    transfer, baseline = kind.metrics(task, gold, transfer_probs), kind.metrics(baseline_task, gold, baseline_probs)
    stat_t, stat_b = kind.verdict_statistic(gold, transfer_probs, task), kind.verdict_statistic(gold, baseline_probs,
                                                                                               baseline_task)
    interval, test = stats.paired_comparison(stat_t, stat_b, r.bootstrap, recipe.training.seed, 1 - r.alpha)
    if "confusion_matrix" in transfer:
        keep = ("accuracy", "macro_f1", "ece", "n")
        table = {"confusion": {"transfer": transfer["confusion_matrix"]["matrix"],
                               "baseline": baseline["confusion_matrix"]["matrix"]}}
    else:
        keep = tuple(k for k, v in transfer.items() if isinstance(v, (int, float)))
        table = {"per_label": {"transfer": transfer["per_class"], "baseline": baseline["per_class"]}}
    return {"transfer": {k: transfer[k] for k in keep}, "baseline": {k: baseline[k] for k in keep}, **table,
            "difference": stats.as_dict(interval), "mcnemar": None if test is None else stats.as_dict(test),
            "error_reduction_percent": stats.error_reduction(transfer[main], baseline[main]),
            "verdict": stats.verdict(interval, test, r.alpha),
            "rule": stats.verdict_rule(1 - r.alpha, r.alpha, None if test is not None else main)}


def _kpis(run: RunFolder, recipe: Recipe, metrics: dict, baseline, final: dict, texts: list[str],
          scores: tuple[str, ...] = ("accuracy", "macro_f1")) -> dict:
    from ..inference import TextClassifier

    r = recipe.report
    classifier = TextClassifier.load(run.root, trust_remote_code=recipe.trust_remote_code)  # allowed by the caller
    speed_t = serving_speed(lambda t: classifier.predict_proba(t), texts, r.latency_texts)
    speed_b = serving_speed(lambda t: baseline.pipeline.predict_proba(t), texts, r.latency_texts)
    transfer = {**{k: final["transfer"][k] for k in scores},
                "train_seconds": metrics["train_seconds"], **speed_t,
                "error_reduction_percent": final["error_reduction_percent"],
                "cost_per_1000": cost_per_1000(speed_t["throughput_per_s"], r.price_per_hour),
                "trainable_parameters": metrics["trainable_parameters"],
                "artifact_bytes": folder_bytes(run.weights_dir), "artifact": run.weights_dir.name + "/"}
    base = {**{k: final["baseline"][k] for k in scores},
            "train_seconds": round(baseline.train_seconds, 3), **speed_b, "error_reduction_percent": None,
            "cost_per_1000": cost_per_1000(speed_b["throughput_per_s"], r.price_per_hour),
            "trainable_parameters": baseline.trainable_parameters, "artifact_bytes": baseline.artifact_bytes,
            "artifact": "pickled pipeline"}
    return {"transfer": transfer, "baseline": base, "price_per_hour": r.price_per_hour}


def build_report(run_path: str | Path, *, overrides: list[str] | dict | None = None,
                 splits: Splits | None = None, trust_remote_code: bool = False) -> dict:
    """Compute the transfer report of a finished run and write report/ (html, md, json) atomically; returns it."""
    from ..pipeline import load_data
    from .render import write_report

    started = time.perf_counter()
    run = RunFolder.existing(run_path, need=("recipe", "labels", "metrics"))
    recipe = _recipe_with(run, overrides)
    refuse_untrusted_code(recipe, trust_remote_code, run.root)
    splits = splits or load_data(recipe)
    if splits.tasks:  # multi-task: per task, against the same recipe trained on that task alone
        from .multitask import build_multitask_report

        return build_multitask_report(run, recipe, splits)
    if splits.test is None or not run.path("predictions").exists():
        raise RunError(f"{run.root} has no test split: the report compares test scores; set data.test or "
                       "data.test_fraction and re-run")
    metrics = run.read_json("metrics")
    names = splits.label_map.names
    work = plan(recipe, splits)
    logger.info(work.describe(metrics.get("train_seconds"), len(splits.train)))
    transfer_probs, rows = _transfer_predictions(run, splits, recipe.output.keep_formulas)
    metric = recipe.training.metric
    task = _task(splits)
    tuned = task.kind.tunes
    if tuned:  # the run's own thresholds, as labels.json saved them
        task = dataclasses.replace(task, labels=LabelMap.from_dict(run.read_json("labels")))

    baseline = fit_run_baseline(recipe, splits, task)
    logger.info(f"report: baseline fitted in {baseline.train_seconds:.1f} s (C={baseline.C:g})")
    final = _final(recipe, splits.test.labels, transfer_probs, baseline.test_probs, names, task, baseline.task)
    knowledge = knowledge_alone(recipe, splits.train, splits.test, names, splits.validation, task)
    zero = "left out" if knowledge["zero_shot"] is None else f"{knowledge['zero_shot'][metric]:.4f}"
    logger.info(f"report: zero-shot {zero}, linear probe "
        f"{knowledge['linear_probe'][metric]:.4f} ({knowledge['seconds']:.0f} s)")
    # the run's log scores validation at 0.5 per label while it trains: the baseline's target is at 0.5 as well
    target = (baseline.validation_untuned if tuned else baseline.validation) or {}
    time_to = time_to_score(run.read_log(), target.get(metric), metric,
                            metrics["train_seconds"], metrics["steps"], metrics["examples_seen"])
    time_to["baseline_train_seconds"] = round(baseline.train_seconds, 3)
    if tuned:
        time_to["target_thresholds"] = "0.5 per label, as the run's log scores validation while it trains"
    scores = task.kind.report_scores
    curve = learning_curve(recipe, splits, {**{k: final["transfer"][k] for k in scores},
                                            "train_seconds": metrics["train_seconds"]},
                           {**{k: final["baseline"][k] for k in scores},
                            "train_seconds": round(baseline.train_seconds, 3)}, task)
    report = {
        "run": str(run.root), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": recipe.model, "strategy": recipe.strategy, "task": recipe.task, "labels": list(names),
        "metric": metric, "rows": {k: len(v) for k, v in (("train", splits.train), ("validation", splits.validation),
                                                          ("test", splits.test)) if v is not None},
        "verdict": final["verdict"], "rule": final["rule"],
        "caveats": caveats(transfer_probs, splits.test.labels, names, run.read_log(), metric, knowledge, task),
        "slices": _slices(recipe, splits, transfer_probs, task),
        "baseline": {"method": TUNED_BASELINE_NAME if tuned else BASELINE_NAME, "C": baseline.C,
                     "C_grid": list(C_GRID[:baseline.fits]), "train_seconds": round(baseline.train_seconds, 3),
                     "validation": baseline.validation},
        "final": final, "knowledge_alone": knowledge, "time_to_baseline": time_to, "learning_curve": curve,
        "kpi": _kpis(run, recipe, metrics, baseline, final, list(splits.test.texts), scores),
        "mistakes": _mistakes(rows, transfer_probs, splits.test.labels, names, recipe.report.mistakes, task),
        "cost": {"transfer_trainings": work.transfer_trainings, "training_rows": work.training_rows,
                 "baseline_fits": work.baseline_fits, "encoded_texts": work.encoded_texts, "probe_fits": work.probe_fits},
        "settings": {k: v for k, v in recipe.to_dict()["report"].items() if k != "enabled"},
    }
    if tuned:
        report["scores"] = list(scores)
        report["thresholds"] = {"transfer": dict(zip(names, task.labels.thresholds or [0.5] * len(names))),
                                "baseline": dict(zip(names, baseline.task.labels.thresholds)),
                                "baseline_chosen": baseline.thresholds["summary"]}
    adaptation = adaptation_section(run.root, recipe, splits, transfer_probs)
    if adaptation is not None:
        report["adaptation"] = adaptation
    report["seconds"] = round(time.perf_counter() - started, 3)
    summary = write_report(run, report, transfer_probs, baseline.test_probs, splits.test.labels)
    for line in summary.splitlines():
        logger.info(line)
    logger.info(f"report: {run.root / 'report' / 'report.html'}")
    return report
