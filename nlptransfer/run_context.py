"""One run of a recipe as the pipeline's stages fill it in (RunContext), and what the stages share: the run
folder opened (or resumed) and locked, what it holds from the start, the listeners of a folder, the token ids of
every split."""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .adapt import attach_mlm_head
from .data import LabelMap, Splits
from .data.cells import safe_rows
from .data.schema import labels_json
from .errors import RunError
from .logs import get_logger
from .scoring import warnings_of
from .recipe import Recipe
from .run import RunFolder
from .tasks import is_multitask, run_tasks
from .cache import cache_root
from .tokens import Encoded, tokenize, tokenize_cached, unknown_hint
from .train.events import Listener, ProgressBar, RunLog

logger = get_logger(__name__)


@dataclass
class RunContext:
    """One run of a recipe, as its stages fill it in."""

    recipe: Recipe  #: the caller's, until a resumed run's saved recipe replaces it
    accelerator: Any
    held: ExitStack  #: what the run holds until it ends: its folder's lock
    listeners: list[Listener]  #: the caller's listeners (the main process's only)
    resume: bool | str | Path = False
    started: float = field(default_factory=time.perf_counter)
    run: RunFolder | None = None
    resuming: bool = False  #: the run folder has a checkpoint to continue from
    made: bool = False  #: this run made its folder
    splits: Splits | None = None
    target: list[str] | None = None  #: the target domain's texts (adapt.target)
    tokenizer: Any = None
    config: Any = None
    encoded: dict[str, Encoded] = field(default_factory=dict)
    strategy: Any = None
    prepared: Any = None  #: the model ready for the loop (strategies.Prepared)
    lr_warnings: list[str] = field(default_factory=list)
    modules: dict = field(default_factory=dict)  #: the evaluate modules of the recipe's extra metrics
    model: Any = None  #: the trained model
    metrics: dict = field(default_factory=dict)
    probs: Any = None  #: the test probabilities (None without a test split)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def listeners_for(self, folder: RunFolder) -> list[Listener]:
        """The listeners of a stage training in `folder`: its run log and the progress bar (main process only)."""
        return run_listeners(self.recipe, folder, self.main)

    def load_model(self, source: models.ResolvedModel) -> None:
        """The classifier loaded from `source` and prepared by the strategy (with the masked-LM head of mlm+ce)."""
        net, new_weights = models.load_classifier(source, self.splits.label_map, self.recipe.trust_remote_code,
                                                  **model_tasks(self.recipe, self.splits))
        self.prepared = self.strategy.prepare(net, self.recipe, new_weights)
        attach_mlm_head(self.prepared, source, self.recipe)


def model_tasks(recipe: Recipe, splits: Splits) -> dict:
    """load_classifier's multi-task arguments: every task's label map and whether task weights are learned."""
    if not splits.tasks:
        return {}
    return {"tasks": splits.tasks, "uncertainty": recipe.training.task_weighting == "uncertainty"}


def label_names(splits: Splits):
    """What the loop and the scoring take as the labels: the label map (its names and kind), or a multi-task run's
    tasks (task -> LabelMap)."""
    return splits.tasks or splits.label_map


def first_files(run: RunFolder, recipe: Recipe, splits: Splits) -> None:
    """What a run folder holds from the start: the resolved recipe (so that it can be resumed), labels, data report."""
    run.write_text("recipe", recipe.to_yaml())
    run.write_json("labels", labels_json(splits.label_map, splits.tasks))
    run.write_json("data_report", splits.report.to_dict())


def with_saved_labels(recipe: Recipe, run: RunFolder | None) -> Recipe:
    """A resumed run keeps the label order it started with (labels.json), whatever the data gives now (a multi-task
    run's label orders follow from its files and seed alone)."""
    if run is None or not run.path("labels").exists() or recipe.data.label_columns:
        return recipe
    names = list(LabelMap.from_dict(run.read_json("labels")).names)
    return recipe.replace(**{"data.labels": names})


def run_listeners(recipe: Recipe, run: RunFolder, main: bool) -> list[Listener]:
    """The run's own listeners, on the main process only: the run log and the progress bar."""
    if not main:
        return []
    return [RunLog(run)] + ([ProgressBar()] if recipe.training.progress else [])


def open_run(recipe: Recipe, resume: bool | str | Path, accelerator, held: ExitStack) -> tuple[RunFolder, bool]:
    """The run folder (new, or the one to resume), agreed across processes and locked by the main process for as
    long as `held` is, and whether it has a checkpoint."""
    from accelerate.utils import broadcast_object_list

    out = recipe.output
    name = out.name or recipe.name
    chosen = [None]
    if accelerator.is_main_process:
        if resume:
            root = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else Path(out.dir) / name
            run = RunFolder.existing(root, need=("recipe",))
            held.enter_context(run.lock())
            if run.is_complete:
                raise RunError(f"{root} already finished (metrics.json exists); nothing to resume")
        else:
            run = RunFolder.new(out.dir, name)
            held.enter_context(run.lock())
        chosen = [str(run.root)]
    broadcast_object_list(chosen)
    run = RunFolder(chosen[0])
    return run, bool(resume) and (run.path("checkpoints") / "last").exists()


def encode_splits(tokenizer, config, recipe: Recipe, splits: Splits) -> dict[str, Encoded]:
    """Token ids of every split, cut at the recipe's (or the model's) limit; truncations counted in the report."""
    limit = models.max_length(tokenizer, config, recipe.data.max_length)
    started = time.perf_counter()
    encode = tokenize_cached if recipe.data.cache else tokenize
    encoded = {name: encode(tokenizer, part.texts, limit, part.labels)
               for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
               if part is not None}
    splits.report.truncated = {name: e.truncated for name, e in encoded.items()}
    if (hint := unknown_hint(tokenizer, encoded["train"])) is not None:
        splits.report.hints.append(hint)  # in data_report.json and check's report; a run also logs it
    how = ("cached" if all(e.cached for e in encoded.values())
           else ", ".join(f"{name} {'cached' if e.cached else 'tokenized'}" for name, e in encoded.items()))
    logger.info(f"tokenized: {how} ({sum(map(len, encoded.values())):,} texts, {time.perf_counter() - started:.1f} s;"
                f" cache {cache_root() if recipe.data.cache else 'off'})")
    truncated = sum(splits.report.truncated.values())
    if truncated:
        logger.info(f"truncated {truncated} texts to {limit} tokens ({splits.report.truncated})")
    return encoded


def write_predictions(run: RunFolder, splits: Splits, probs: np.ndarray | dict, split: str = "test",
                      keep_formulas: bool = False) -> None:
    """predictions.csv: the test rows (text, gold, predicted, probability per class), or the texts of an unlabelled
    training file (without gold). Multi-task: gold_TASK (empty where the row has no label), predicted_TASK and
    prob_TASK_LABEL for every task. A multi-label task's gold and predicted are label lists, joined as the run read
    them. Cells a spreadsheet would run get a leading ' unless `keep_formulas`."""
    from .inference.classifier import label_texts

    tasks = run_tasks(label_names(splits))
    part = getattr(splits, split)
    multi = is_multitask(tasks)
    probs = probs if multi else {next(iter(tasks)): np.asarray(probs)}
    header, columns = ["text"], []
    for name, task in tasks.items():
        prefix = f"_{name}" if multi else ""
        gold = ([_gold_cell(task, g) for g in task.column(part.labels)] if part.labels is not None else None)
        header += [f"gold{prefix}"] * (gold is not None) + [f"predicted{prefix}",
                                                            *[f"prob{prefix}_{n}" for n in task.labels.names]]
        shown = label_texts(probs[name], task) if len(part.texts) else []
        columns.append((gold, shown, probs[name]))
    rows = [[text] + [x for gold, shown, p in columns
                      for x in ([gold[r]] if gold is not None else []) + [shown[r], *[f"{v:.6f}" for v in p[r]]]]
            for r, text in enumerate(part.texts)]
    run.write_csv("predictions", header, safe_rows(rows, keep_formulas))


def _gold_cell(task, value) -> str:
    """A row's gold label(s) of `task` as text: the label name ("" for none), or a multi-label task's labels joined."""
    names = task.labels.names
    if isinstance(value, (list, tuple, np.ndarray)):
        return (task.labels.separator or ",").join(n for n, on in zip(names, value) if on)
    return "" if value < 0 else names[int(value)]


def score_warnings(metrics: dict, tasks: dict | None = None) -> list[str]:
    """The test scores' warnings (each task kind's: no better than the class balance), per task (`tasks`: the run's,
    else read from the block's confusion matrices)."""
    if not metrics.get("test"):
        return []
    return warnings_of(tasks or _tasks_in(metrics["test"]), metrics["test"], "test")


def _tasks_in(block: dict) -> dict:
    """The tasks a metrics block scored (its confusion matrices' labels), of the default kind."""
    if "tasks" in block:
        return run_tasks({t: LabelMap(b["confusion_matrix"]["labels"]) for t, b in block["tasks"].items()})
    return run_tasks(block.get("confusion_matrix", {}).get("labels", ()))


def say_metrics(metrics: dict, run: RunFolder, tasks: dict | None = None) -> None:
    """The run's test scores (each task's, and their mean), its warnings and its folder, logged."""
    test = metrics.get("test")
    for task, scores in (test or {}).get("tasks", {}).items():
        first = (f"micro-F1 {scores['micro_f1']:.4f}" if "micro_f1" in scores else  # a multi-label task
                 f"accuracy {scores['accuracy']:.4f}")
        logger.info(f"test, {task}: {first}, macro-F1 {scores['macro_f1']:.4f} on {scores['n']} rows")
    if test and "tasks" in test:
        logger.info(f"test, mean over {len(test['tasks'])} tasks: accuracy {test['accuracy']:.4f}, macro-F1 "
                    f"{test['macro_f1']:.4f}")
    elif test and "micro_f1" in test:  # multi-label
        logger.info(f"test: micro-F1 {test['micro_f1']:.4f}, macro-F1 {test['macro_f1']:.4f}, subset accuracy "
                    f"{test['subset_accuracy']:.4f} on {test['n']} rows")
    elif test:
        logger.info(f"test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on {test['n']} rows")
    elif metrics.get("validation"):
        logger.info(f"validation: accuracy {metrics['validation']['accuracy']:.4f} (no test split)")
    elif "texts" in metrics:
        logger.info(f"{metrics['texts']} texts without labels: their predictions are in {run.path('predictions')}")
    for warning in score_warnings(metrics, tasks):  # stored in metrics.json "warnings", with any learning-rate warning
        logger.warning(warning)
    logger.info(f"run folder: {run.root}")
