"""The report of a multi-task run: "did sharing help?", per task. For each task, the same recipe is trained on that
task alone, on the very rows the multi-task run had labelled for it (its train, validation and test rows, written out
and read back, nothing re-split), and the two models' test predictions are compared on the same test rows: accuracy
and macro-F1 of both, the paired bootstrap interval of the difference, McNemar's test, and a verdict (sharing helped /
hurt / no clear difference) by the rule the transfer report uses."""
from __future__ import annotations

import csv
import dataclasses
import datetime
import html
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data import LabelMap, Splits
from ..data.schema import tasks_from_json
from ..errors import RunError
from ..logs import get_logger
from ..markdown import escape, table
from ..recipe import Recipe
from ..fsio import atomic_dir
from ..run import RunFolder
from ..tasks import Task, run_tasks
from . import stats
from .curve import split_recipe, transfer_score

logger = get_logger(__name__)
#: the transfer report's verdicts, said of sharing an encoder between tasks
VERDICTS = {"positive transfer": "sharing helped", "negative transfer": "sharing hurt",
            "no clear difference": "no clear difference"}
RULE = ("sharing helped if the {level:.0%} paired bootstrap interval of (multi-task - single-task) test accuracy lies "
        "above 0 and McNemar's p < {alpha:g}; sharing hurt if it lies below 0 and p < {alpha:g}; otherwise no clear "
        "difference (a multi-label task: the interval of the micro-F1 difference alone decides)")


def task_probabilities(run: RunFolder, splits: Splits, keep_formulas: bool = False) -> dict[str, np.ndarray]:
    """Each task's test probabilities from the run's predictions.csv (every test row), checked to be the rows the
    splits give."""
    from ..data.cells import read_predictions

    rows = read_predictions(run.path("predictions"), keep_formulas)
    if [r["text"] for r in rows] != list(splits.test.texts):
        raise RunError(f"{run.path('predictions')} does not hold the test rows the recipe's data gives now: "
                       "the data files changed since the run; re-run it to report on it")
    return {task: np.array([[float(r[f"prob_{task}_{n}"]) for n in m.names] for r in rows]).reshape(len(rows), len(m))
            for task, m in splits.tasks.items()}


def single_task_recipe(recipe: Recipe, kind: str = "single_label") -> Recipe:
    """The recipe with one label column of the task's `kind`: what trains each task alone (its label column is set
    by split_recipe; a multi-label task's thresholds are chosen as the multi-task run chose them)."""
    multi_label = kind == "multi_label"
    return recipe.replace(**{"data.label_columns": None, "data.task_kinds": None, "data.label_separator": None,
                             "training.task_weights": {}, "training.task_weighting": "fixed",
                             "task": "multi_label" if multi_label else recipe.task,
                             "evaluation.threshold": recipe.evaluation.threshold if multi_label else None})


def _single_probs(folder: Path, names) -> np.ndarray:
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows]).reshape(len(rows), len(names))


def compare_task(recipe: Recipe, gold: np.ndarray, multi: np.ndarray, single: np.ndarray, task: Task,
                 alone: Task | None = None) -> dict:
    """The multi-task model against the single-task one on the same test rows: scores, paired interval, McNemar
    (not for a multi-label task), verdict. `alone`: the task as the single-task run decides it (a multi-label task's
    own thresholds), else `task`."""
    r = recipe.report
    kind, alone = task.kind, alone or task
    keep = ("accuracy", *kind.report_scores, "n")
    scored = {name: kind.metrics(t, gold, p) for name, p, t in (("multi_task", multi, task),
                                                                 ("single_task", single, alone))}
    right_m, right_s = kind.verdict_statistic(gold, multi, task), kind.verdict_statistic(gold, single, alone)
    interval, test = stats.paired_comparison(right_m, right_s, r.bootstrap, recipe.training.seed, 1 - r.alpha)
    return {**{name: {k: m[k] for k in dict.fromkeys(keep)} for name, m in scored.items()},
            "score": kind.report_scores[0], "difference": stats.as_dict(interval),
            "mcnemar": stats.as_dict(test) if test is not None else None,
            "verdict": VERDICTS[stats.verdict(interval, test, r.alpha)]}


def build_multitask_report(run: RunFolder, recipe: Recipe, splits: Splits) -> dict:
    """Train each task alone on its rows, compare it with the multi-task model per task, write report/; returns it."""
    started = time.perf_counter()
    if splits.test is None or not run.path("predictions").exists():
        raise RunError(f"{run.root} has no test split: the report compares test scores; set data.test or "
                       "data.test_fraction and re-run")
    multi = task_probabilities(run, splits, recipe.output.keep_formulas)
    metrics = run.read_json("metrics")
    logger.info(f"report: {len(splits.tasks)} single-task training(s), one per task, on the rows labelled for it")
    saved = tasks_from_json(run.read_json("labels")) or {}  # the run's label maps: a multi-label task's thresholds
    tasks = {}
    with tempfile.TemporaryDirectory(prefix="nlptransfer-tasks-") as tmp:
        for i, (task, one) in enumerate(run_tasks({t: saved.get(t, m) for t, m in splits.tasks.items()}).items()):
            label_map = one.labels
            alone = splits.task_split(task)
            gold, present = one.gold(splits.test.labels)
            folder = Path(tmp) / f"task-{i}"
            folder.mkdir()
            single_recipe = split_recipe(single_task_recipe(recipe, label_map.kind), alone, alone.train, folder,
                                         "single")
            scores = transfer_score(single_recipe, keys=())
            single = _single_probs(folder / "single", label_map.names)
            result = compare_task(recipe, gold, multi[task][present], single, one,
                                  dataclasses.replace(one, labels=_thresholds_of(folder / "single", label_map)))
            result["rows"] = {name: len(part) for name, part in (("train", alone.train),
                                                                 ("validation", alone.validation),
                                                                 ("test", alone.test)) if part is not None}
            result["single_task_train_seconds"] = scores["train_seconds"]
            tasks[task] = result
            score = result["score"]
            logger.info(f"report: {task}: multi-task {_named(score)} {result['multi_task'][score]:.4f}, alone "
                        f"{result['single_task'][score]:.4f}: {result['verdict']}")
    r = recipe.report
    report = {"run": str(run.root), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "model": recipe.model, "strategy": recipe.strategy, "multi_task": True,
              "task_weighting": recipe.training.task_weighting, "metric": recipe.training.metric,
              "multi_task_train_seconds": metrics.get("train_seconds"), "tasks": tasks,
              "rule": RULE.format(level=1 - r.alpha, alpha=r.alpha)}
    report["seconds"] = round(time.perf_counter() - started, 3)
    markdown = report_markdown(report)
    with atomic_dir(run.root / "report") as out:
        (out / "report.md").write_text(markdown, encoding="utf-8")
        (out / "report.html").write_text(_html(report), encoding="utf-8")
        (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for line in _summary(report):
        logger.info(line)
    logger.info(f"report: {run.root / 'report' / 'report.html'}")
    return report


HEADER = ["task", "test rows", "score", "multi-task", "alone", "difference (interval)", "McNemar p",
          "multi-task macro-F1", "alone macro-F1", "verdict"]


def _named(score: str) -> str:
    return score.replace("_f1", "-F1")


def _thresholds_of(folder: Path, labels: LabelMap) -> LabelMap:
    """A multi-label task's label map with the thresholds its single-task run chose (from its labels.json)."""
    if labels.kind != "multi_label":
        return labels
    return LabelMap.from_dict(json.loads((folder / "labels.json").read_text(encoding="utf-8")))


def _rows(report: dict) -> list[list[str]]:
    rows = []
    for task, t in report["tasks"].items():
        d, score = t["difference"], t.get("score", "accuracy")
        rows.append([task, str(t["multi_task"]["n"]), _named(score), f"{t['multi_task'][score]:.4f}",
                     f"{t['single_task'][score]:.4f}",
                     f"{d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]",
                     f"{t['mcnemar']['p_value']:.3g}" if t.get("mcnemar") else "-",
                     f"{t['multi_task']['macro_f1']:.4f}", f"{t['single_task']['macro_f1']:.4f}", t["verdict"]])
    return rows


def _summary(report: dict) -> list[str]:
    return [f"report: {task}: {t['verdict']} (multi-task {_named(t.get('score', 'accuracy'))} "
            f"{t['multi_task'][t.get('score', 'accuracy')]:.4f} vs alone {t['single_task'][t.get('score', 'accuracy')]:.4f}"
            f" on {t['multi_task']['n']} test rows)" for task, t in report["tasks"].items()]


def report_markdown(report: dict) -> str:
    """The multi-task report for a person: a row per task, and the rule behind the verdicts."""
    return "\n".join([f"# Did sharing help? {escape(Path(report['run']).name)}", "",
                      f"Model {escape(report['model'])}, strategy {escape(report['strategy'])}, task weighting "
                      f"{escape(report['task_weighting'])}. Each task alone: the same recipe on the rows the "
                      "multi-task run had labelled for it, tested on the same test rows.", "",
                      table(HEADER, _rows(report)), "", f"Rule: {escape(report['rule'])}.", ""])


def _html(report: dict) -> str:
    from .render import STYLE, _html_table

    e = html.escape
    verdicts = "".join(f"<li><b>{e(task)}</b>: {e(t['verdict'])}</li>" for task, t in report["tasks"].items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Did sharing help? {e(Path(report['run']).name)}"
            f"</title><style>{STYLE}</style></head><body><h1>Did sharing help?</h1><ul class='verdict'>{verdicts}</ul>"
            f"<p>Model {e(report['model'])}, strategy {e(report['strategy'])}, task weighting "
            f"{e(report['task_weighting'])}. Each task alone: the same recipe on the rows the multi-task run had "
            f"labelled for it, tested on the same test rows.</p>{_html_table(HEADER, _rows(report))}"
            f"<p>Rule: {e(report['rule'])}.</p></body></html>\n")
