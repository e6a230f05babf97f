"""The report of a multi-task run: "did sharing help?", per task. For each task, the same recipe is trained on that
task alone, on the very rows the multi-task run had labelled for it (its train, validation and test rows, written out
and read back, nothing re-split), and the two models' test predictions are compared on the same test rows: accuracy
and macro-F1 of both, the paired bootstrap interval of the difference, McNemar's test, and a verdict (sharing helped /
hurt / no clear difference) by the rule the transfer report uses."""
from __future__ import annotations

import csv
import datetime
import html
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data import Splits
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
        "difference")


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


def single_task_recipe(recipe: Recipe) -> Recipe:
    """The recipe with one label column: what trains each task alone (its label column is set by split_recipe)."""
    return recipe.replace(**{"data.label_columns": None, "training.task_weights": {},
                             "training.task_weighting": "fixed"})


def _single_probs(folder: Path, names) -> np.ndarray:
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows]).reshape(len(rows), len(names))


def compare_task(recipe: Recipe, gold: np.ndarray, multi: np.ndarray, single: np.ndarray, task: Task) -> dict:
    """The multi-task model against the single-task one on the same test rows: scores, paired interval, McNemar,
    verdict."""
    r = recipe.report
    keep = ("accuracy", "macro_f1", "n")
    kind = task.kind
    scored = {name: kind.metrics(task, gold, p) for name, p in (("multi_task", multi), ("single_task", single))}
    right_m, right_s = kind.verdict_statistic(gold, multi), kind.verdict_statistic(gold, single)
    interval = stats.paired_bootstrap(right_m, right_s, r.bootstrap, recipe.training.seed, 1 - r.alpha)
    test = stats.mcnemar(right_m, right_s)
    return {**{name: {k: m[k] for k in keep} for name, m in scored.items()},
            "difference": stats.as_dict(interval), "mcnemar": stats.as_dict(test),
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
    tasks = {}
    with tempfile.TemporaryDirectory(prefix="nlptransfer-tasks-") as tmp:
        for i, (task, one) in enumerate(run_tasks(splits.tasks).items()):
            label_map = one.labels
            alone = splits.task_split(task)
            gold, present = one.gold(splits.test.labels)
            folder = Path(tmp) / f"task-{i}"
            folder.mkdir()
            single_recipe = split_recipe(single_task_recipe(recipe), alone, alone.train, folder, "single")
            scores = transfer_score(single_recipe)
            single = _single_probs(folder / "single", label_map.names)
            result = compare_task(recipe, gold, multi[task][present], single, one)
            result["rows"] = {name: len(part) for name, part in (("train", alone.train),
                                                                 ("validation", alone.validation),
                                                                 ("test", alone.test)) if part is not None}
            result["single_task_train_seconds"] = scores["train_seconds"]
            tasks[task] = result
            logger.info(f"report: {task}: multi-task {result['multi_task']['accuracy']:.4f}, alone "
                        f"{result['single_task']['accuracy']:.4f}: {result['verdict']}")
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


HEADER = ["task", "test rows", "multi-task accuracy", "alone accuracy", "difference (interval)", "McNemar p",
          "multi-task macro-F1", "alone macro-F1", "verdict"]


def _rows(report: dict) -> list[list[str]]:
    rows = []
    for task, t in report["tasks"].items():
        d = t["difference"]
        rows.append([task, str(t["multi_task"]["n"]), f"{t['multi_task']['accuracy']:.4f}",
                     f"{t['single_task']['accuracy']:.4f}",
                     f"{d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]", f"{t['mcnemar']['p_value']:.3g}",
                     f"{t['multi_task']['macro_f1']:.4f}", f"{t['single_task']['macro_f1']:.4f}", t["verdict"]])
    return rows


def _summary(report: dict) -> list[str]:
    return [f"report: {task}: {t['verdict']} (multi-task {t['multi_task']['accuracy']:.4f} vs alone "
            f"{t['single_task']['accuracy']:.4f} on {t['multi_task']['n']} test rows)" for task, t in report["tasks"].items()]


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
