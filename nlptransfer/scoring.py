"""The one scorer: a run's tasks, the gold labels and the model's logits (or outputs) of the same rows in, the
metrics block out (accuracy, macro-F1, per class, confusion matrix, ECE, loss with logits, ordinal error, extra
metrics, slices; a multi-task run's per task under "tasks", with their means). The loop's validation, a run's test,
`evaluate`, the report and the card read the numbers it makes, so the same rows give the same numbers everywhere."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tasks import Task, is_multitask

#: the means a multi-task block gives over its tasks (with logits: "loss" too)
MEANS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class Scoring:
    """How to score beyond the kind's own metrics: the recipe's evaluation.metrics (and any evaluate modules loaded
    for them), ordinal error (ordered sentiment labels), and the seed of the slice-gap intervals (the run's)."""

    seed: int = 0
    extra: tuple[str, ...] = ()
    modules: dict = field(default_factory=dict)
    ordinal: bool = False

    @classmethod
    def of(cls, recipe, modules: dict | None = None) -> "Scoring":
        """A run's scoring settings, from its recipe."""
        return cls(recipe.training.seed, tuple(recipe.evaluation.metrics), dict(modules or {}),
                   recipe.task == "sentiment")


def score(tasks: dict[str, Task], labels: list, outputs: dict[str, np.ndarray], *, logits: dict | None = None,
          slices: dict[str, list] | None = None, scoring: Scoring = Scoring()) -> dict:
    """The metrics block of `outputs` (task -> [rows, ...], as tasks.decode gives) against `labels` (a split's):
    one task's block, or a multi-task run's under "tasks" with the means over them and "n"; with `logits` (head ->
    logits), each task's loss too."""
    blocks = {name: _task_block(task, labels, outputs[name], logits, slices or {}, scoring)
              for name, task in tasks.items()}
    if not is_multitask(tasks):
        return next(iter(blocks.values()))
    result = {"tasks": blocks}
    for key in MEANS + (("loss",) if logits is not None else ()):
        result[key] = float(np.mean([b[key] for b in blocks.values()]))
    result["n"] = len(labels)
    return result


def _task_block(task: Task, labels: list, outputs: np.ndarray, logits: dict | None, slices: dict[str, list],
                scoring: Scoring) -> dict:
    kind = task.kind
    gold, present = task.gold(labels)
    mine = outputs[present]
    block = kind.metrics(task, gold, mine)
    if logits is not None:
        block["loss"] = kind.loss_value(logits[task.head][present], gold) if len(gold) else 0.0
    if scoring.ordinal and task.index is None:  # one-task runs of ordered labels, as metrics.json has always had
        block["ordinal_error"] = float(np.abs(gold - kind.predicted(mine)).mean()) if len(gold) else 0.0
    block.update(kind.extra_metrics(task, list(scoring.extra), gold, mine, scoring.modules))
    if slices:
        block["slices"] = [kind.slice_metrics(task, gold, mine, [values[k] for k in present], column, scoring.seed)
                           for column, values in slices.items()]
    return block


def warnings_of(tasks: dict[str, Task], block: dict, where: str = "") -> list[str]:
    """Each task's kind's warning about its scores (nothing learnt), as 'where, task: message' lines (a one-task
    block's: 'where: message', or the message alone)."""
    found = []
    scored = block.get("tasks") if is_multitask(tasks) else {None: block}
    for name, scores in (scored or {}).items():
        kind = tasks[name].kind if name is not None else next(iter(tasks.values())).kind
        if (warning := kind.warning(scores)) is not None:
            head = ", ".join(part for part in (where, name) if part)
            found.append(f"{head}: {warning}" if head else warning)
    return found
