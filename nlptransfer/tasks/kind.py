"""Task and the task-kind registry: a Task is a named head over label column(s) of one kind; a kind (one file each,
registered by name) owns everything that differs between kinds of label, so the loop, the scorer and the run folder
never branch on it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.schema import MISSING, LabelMap
from ..errors import RecipeError
from ..registry import Registry

if TYPE_CHECKING:
    import torch

#: the head a one-task model's logits come under (heads.HEAD, spelled here so tasks/ imports nothing above data/)
ONE_HEAD = "label"
#: the kind every run has today
DEFAULT_KIND = "single_label"


class TaskKind:
    """What differs between kinds of task. Outputs are what `decode` makes of a head's logits [rows, output_size]
    (single_label: class probabilities); gold is one encoded label per row, as `encode` gives it."""

    name = ""
    #: whether `tune` chooses decision thresholds on the validation split after training (multi_label)
    tunes = False
    #: the test scores the transfer report shows and plots, the first being the one its verdict compares
    report_scores = ("accuracy", "macro_f1")
    #: whether training.class_weights weigh each row by its class, so a multi-task batch's average counts those
    #: weights (single_label); False where they weigh something else (multi_label: each label's positives)
    weighs_rows = True

    def width(self, task: "Task") -> int:
        """The label slots a row holds for the task in a multi-task batch (1: one label id; multi_label: a 0/1 per
        label)."""
        return 1

    def slot_gold(self, slots: "torch.Tensor") -> "torch.Tensor":
        """The task's gold labels from its slots of a multi-task batch's label rows [rows, width]: one id per row."""
        return slots[:, 0]

    def encode(self, task: "Task", cell: str) -> Any:
        """The encoded label of a (non-empty) label cell; KeyError for a value the task does not know."""
        raise NotImplementedError

    def output_size(self, task: "Task") -> int:
        """The width of the task's head."""
        raise NotImplementedError

    def loss(self, logits: "torch.Tensor", gold: "torch.Tensor", weight: "torch.Tensor | None" = None,
             total: "torch.Tensor | None" = None) -> "torch.Tensor":
        """The training loss term over the rows labelled for the task (MISSING gold left out)."""
        raise NotImplementedError

    def decode(self, logits: np.ndarray) -> np.ndarray:
        """The outputs a prediction gives (probabilities for a classifier) from a head's logits."""
        raise NotImplementedError

    def predicted(self, outputs: np.ndarray, task: "Task | None" = None) -> np.ndarray:
        """What the outputs predict per row (a label id for a classifier; a 0/1 row for multi_label, by the task's
        thresholds)."""
        raise NotImplementedError

    def gold(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A task's encoded labels from a split's (one per row), and the positions of the rows that have one."""
        column = np.asarray(column, dtype=np.int64).reshape(-1)
        present = np.flatnonzero(column != MISSING)
        return column[present], present

    def metrics(self, task: "Task", gold: np.ndarray, outputs: np.ndarray) -> dict:
        """The task's metrics block on labelled rows."""
        raise NotImplementedError

    def loss_value(self, logits: np.ndarray, gold: np.ndarray) -> float:
        """The evaluation loss (the training term, unweighted) on labelled rows."""
        raise NotImplementedError

    def extra_metrics(self, task: "Task", wanted: list[str], gold: np.ndarray, outputs: np.ndarray,
                      modules: dict | None) -> dict:
        """The metrics a recipe's evaluation.metrics asks for."""
        raise NotImplementedError

    def slice_metrics(self, task: "Task", gold: np.ndarray, outputs: np.ndarray, values: list, column: str,
                      seed: int, resamples: int = 1000, level: float = 0.95) -> dict:
        """Metrics per value of a column, and the largest gap between two values with its interval."""
        raise NotImplementedError

    def stratify_key(self, gold: np.ndarray) -> np.ndarray:
        """The per-row key a split keeps the shares of."""
        raise NotImplementedError

    def baseline(self, C: float, seed: int):
        """An unfitted from-scratch scikit-learn model of texts (the report's baseline)."""
        raise NotImplementedError

    def baseline_outputs(self, model, texts: list[str], task: "Task") -> np.ndarray:
        """The fitted baseline's outputs on `texts`, shaped as `decode` shapes the model's."""
        raise NotImplementedError

    def verdict_statistic(self, gold: np.ndarray, outputs: np.ndarray, task: "Task | None" = None) -> np.ndarray:
        """Per-row scores two models are compared on, paired, for the report's verdict (1.0 right, 0.0 wrong)."""
        raise NotImplementedError

    def class_weights(self, task: "Task", labels: list) -> np.ndarray:
        """The loss weights training.class_weights asks for, from the training split's labels."""
        raise NotImplementedError

    def tune(self, task: "Task", gold: np.ndarray | None, outputs: np.ndarray | None, threshold: float | None,
             objective: str = "label_f1"):
        """The task's labels with decision thresholds chosen on validation (`gold`, `outputs`; None without a
        validation split) to maximise `objective` (label_f1 | micro_f1), or `threshold` for every label, and what was
        chosen ({"summary": a line to say, ...})."""
        raise NotImplementedError

    def warning(self, scores: dict) -> str | None:
        """What to say when the scores show nothing learnt; None otherwise."""
        return None

    def mistakes(self, task: "Task", gold: np.ndarray, outputs: np.ndarray, texts: list[str], k: int) -> list[dict]:
        """The k most confident wrong decisions on `texts` (likely label errors, or the model's blind spots)."""
        raise NotImplementedError

    def collapsed(self, task: "Task", gold: np.ndarray, outputs: np.ndarray) -> str | None:
        """What to say when the outputs give every text the same prediction where the gold labels differ (an
        under-trained model); None otherwise."""
        return None


@dataclass(frozen=True)
class Task:
    """One task of a run: its name, label column(s), kind and labels; `index` is its position in a multi-task row's
    labels (None: a one-task run, whose rows hold one label each and whose head is ONE_HEAD)."""

    name: str
    columns: tuple[str, ...]
    labels: LabelMap
    kind_name: str = DEFAULT_KIND
    index: int | None = None

    @property
    def kind(self) -> TaskKind:
        return task_kind(self.kind_name)

    @property
    def head(self) -> str:
        """The key of the model's logits for this task."""
        return ONE_HEAD if self.index is None else self.name

    def column(self, labels: list) -> list:
        """Each row's label of the task as a split's labels hold it (a multi-task row's entry for it; MISSING: none)."""
        return labels if self.index is None else [row[self.index] for row in labels]

    def gold(self, labels: list) -> tuple[np.ndarray, np.ndarray]:
        """The task's encoded labels from a split's labels, and the positions of the rows that have one."""
        return self.kind.gold(self.column(labels))


_KINDS: Registry[TaskKind] = Registry("task kind")


def register_task_kind(name: str, kind: TaskKind) -> TaskKind:
    """Register task kind `name` (recipes' tasks may then name it); RegistryError naming both when it is taken."""
    return _KINDS.add(name, kind, f"{type(kind).__module__}.{type(kind).__qualname__}")


def task_kind(name: str) -> TaskKind:
    """The registered kind `name`; RecipeError naming the registered ones otherwise."""
    if name not in _KINDS:
        raise RecipeError(f"unknown task kind {name!r}; registered: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def task_kinds() -> list[str]:
    """Registered task kind names, sorted."""
    return sorted(_KINDS.names())


def run_tasks(names, tasks: dict[str, LabelMap] | None = None, column: str | None = None) -> dict[str, Task]:
    """A run's tasks: a multi-task run's, one per label column (`tasks`, in order), or a one-task run's one task of
    `names` (label names or a LabelMap), named after its label column (`column`, else ONE_HEAD)."""
    if tasks:
        return {t: Task(t, (t,), m, m.kind, index=i) for i, (t, m) in enumerate(tasks.items())}
    if isinstance(names, dict):  # a multi-task run's {task: LabelMap}, or tasks already
        return dict(names) if all(isinstance(t, Task) for t in names.values()) else run_tasks(None, names)
    labels = names if isinstance(names, LabelMap) else LabelMap(names)
    name = column or ONE_HEAD
    return {name: Task(name, (name,), labels, labels.kind)}


def is_multitask(tasks: dict[str, Task]) -> bool:
    """Whether `tasks` are a multi-task run's (scored per task, with their means)."""
    return any(t.index is not None for t in tasks.values())


def label_slots(tasks: dict[str, Task]) -> dict[str, slice]:
    """Where each task's labels lie in a multi-task batch's label row (its tasks' slots side by side, in order)."""
    spans, start = {}, 0
    for name, task in tasks.items():
        width = task.kind.width(task)
        spans[name], start = slice(start, start + width), start + width
    return spans


def decode(tasks: dict[str, Task], logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every task's outputs (probabilities, for a classifier) from the model's logits per head."""
    return {name: t.kind.decode(logits[t.head]) if t.head in logits else np.zeros((0, t.kind.output_size(t)))
            for name, t in tasks.items()}
