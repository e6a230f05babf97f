"""The recipe's own sections (training, evaluation, output, report) and the checks of those and of `data`; the
sections of registry entries (contrastive, labels, adapt, peft, a plugin's) live with their entries."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import quoted, shortened

if TYPE_CHECKING:
    from .recipe import Recipe

METRICS = ("accuracy", "macro_f1", "micro_f1")
#: what a recipe's `task` may say: one label per row (ordered labels for sentiment), or any number (multi_label)
TASKS = ("classification", "sentiment", "multi_label")


def task_kind_of(recipe: "Recipe") -> str:
    """The registered task kind of a recipe's `task`: multi_label, else single_label (classification, sentiment)."""
    return "multi_label" if recipe.task == "multi_label" else "single_label"


def threshold_objective(metric: str) -> str:
    """What a multi-label run's thresholds maximise on validation, by its training.metric: micro-F1 over every label
    at once (micro_f1), else each label's F1 (which maximises macro-F1)."""
    return "micro_f1" if metric == "micro_f1" else "label_f1"


@dataclass(frozen=True)
class TrainingSection:
    """How the single training loop runs."""

    epochs: float = 3  #: passes over the training data
    batch_size: int = 32  #: examples per optimizer step (before accumulation)
    eval_batch_size: int = 64  #: examples per evaluation batch
    lr: float | None = None  #: None = the strategy's default
    head_lr: float | None = None  #: learning rate of the task head; None = lr
    weight_decay: float = 0.01  #: AdamW weight decay
    warmup_fraction: float = 0.06  #: share of steps with linear warmup, then linear decay
    grad_accum: int = 1  #: gradient accumulation steps
    max_grad_norm: float = 1.0  #: clip the gradient norm to this; 0 = no clipping
    mixed_precision: str = "auto"  #: auto | no | fp16 | bf16 (auto: bf16/fp16 on GPU, none on CPU)
    #: weight the loss by inverse class frequency (multi_label: each label's positives by its negatives / positives)
    class_weights: bool = False
    eval_every: int = 0  #: evaluate every N optimizer steps; 0 = each epoch
    early_stopping: int = 0  #: stop after N evaluations without improvement; 0 = off
    #: validation metric for best checkpoint and early stopping (micro_f1: task multi_label only)
    metric: str = "accuracy"
    checkpoint_every: int = 0  #: save a resumable checkpoint every N steps; 0 = each evaluation
    group_by_length: bool = True  #: length-grouped batches (random order, mixed within groups)
    cache_features: bool = True  #: head/top_k: run the frozen layers once and reuse their output
    seed: int = 42  #: seed of the split, the initialisation and the batch order
    progress: bool = True  #: show a progress bar
    #: loss terms and their weights: registered objective names (nlptransfer.objectives), summed once
    objectives: dict[str, float] = field(default_factory=lambda: {"cross_entropy": 1.0})
    #: multi-task (data.label_columns): each task's loss weight (1 for a task not named), with task_weighting fixed
    task_weights: dict[str, float] = field(default_factory=dict)
    #: multi-task: fixed (the task_weights) | uncertainty (learned per task, Kendall et al. 2018: each task's loss
    #: times exp(-s), plus s, with s trained beside the heads)
    task_weighting: str = "fixed"


@dataclass(frozen=True)
class EvaluationSection:
    """What the test split (and `nlptransfer evaluate`) reports beside accuracy, macro-F1, per-class metrics and ECE."""

    #: more metrics: local names (macro_precision, macro_recall, weighted_f1, ...) or evaluate modules by local
    #: path (hub ids when online)
    metrics: list[str] = field(default_factory=list)
    #: task multi_label: one decision threshold for every label; None = each label's own, tuned on the validation
    #: split to maximise training.metric: micro_f1 jointly over the labels, else each label's F1 (so macro-F1); 0.5 for
    #: a label with fewer than 5 validation positives, or without a validation split
    threshold: float | None = None


@dataclass(frozen=True)
class OutputSection:
    """Where the run folder goes."""

    dir: str = "runs"  #: parent folder of run folders
    name: str | None = None  #: run folder name; None = the recipe name (suffixed -2, -3 if taken)
    #: write predictions.csv's text cells that begin with = + - @ (or a tab or carriage return) as they are; by default
    #: they get a leading ' so a spreadsheet shows them instead of running them (CSV injection)
    keep_formulas: bool = False


@dataclass(frozen=True)
class ReportSection:
    """The transfer report ("did transfer help?"): baseline, indicators, verdict; see nlptransfer.report."""

    enabled: bool = False  #: build report/ in the run folder after training
    price_per_hour: float = 0.5  #: machine price per hour, for the cost per 1,000 predictions
    learning_curve: list[float] = field(default_factory=lambda: [0.05, 0.2, 0.5, 1.0])  #: training-data fractions
    #: zero-shot text per label, read when labels.descriptions is empty (its place before labels.descriptions)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    bootstrap: int = 2000  #: paired bootstrap resamples of the test rows
    alpha: float = 0.05  #: significance level of the verdict (95% interval, McNemar p < alpha)
    latency_texts: int = 50  #: texts timed one at a time for latency p50/p95
    mistakes: int = 10  #: most confident mistakes listed


def check_training(recipe: "Recipe") -> list[str]:
    """Problems of the training section's values."""
    t, problems = recipe.training, []
    if t.metric not in METRICS:
        problems.append(f"training.metric must be one of {', '.join(METRICS)}, got {quoted(t.metric)}")
    elif t.metric == "micro_f1" and recipe.task != "multi_label":
        problems.append("training.metric micro_f1 is a multi-label metric: it needs task: multi_label")
    if t.mixed_precision not in ("auto", "no", "fp16", "bf16"):
        problems.append(f"training.mixed_precision must be auto, no, fp16 or bf16, got {quoted(t.mixed_precision)}")
    for key in ("batch_size", "eval_batch_size", "grad_accum"):
        if getattr(t, key) < 1:
            problems.append(f"training.{key} must be at least 1, got {getattr(t, key)}")
    for key in ("eval_every", "early_stopping", "checkpoint_every"):
        if getattr(t, key) < 0:
            problems.append(f"training.{key} must be 0 or more, got {getattr(t, key)}")
    if t.epochs <= 0:
        problems.append(f"training.epochs must be positive, got {t.epochs}")
    if t.lr is not None and t.lr <= 0:
        problems.append(f"training.lr must be positive, got {t.lr}")
    if not 0 <= t.warmup_fraction < 1:
        problems.append(f"training.warmup_fraction must be in [0, 1), got {t.warmup_fraction}")
    if not 0 <= t.seed < 2 ** 32:
        problems.append(f"training.seed must be in [0, 2**32), got {t.seed}")
    for key in ("weight_decay", "max_grad_norm"):
        if getattr(t, key) < 0:
            problems.append(f"training.{key} must be 0 or more, got {getattr(t, key)}")
    if t.head_lr is not None and t.head_lr <= 0:
        problems.append(f"training.head_lr must be positive, got {t.head_lr}")
    return problems


def check_data(recipe: "Recipe") -> list[str]:
    """Problems of the data section's values, and of training settings that need a split it may not make."""
    d, problems = recipe.data, []
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(d, key) < 1:
            problems.append(f"data.{key} must be in [0, 1), got {getattr(d, key)}")
    if d.val_fraction + d.test_fraction >= 0.9:
        problems.append("data.val_fraction + data.test_fraction leave less than 10% to train; lower them")
    no_validation = d.validation is None and d.val_fraction == 0
    if no_validation and recipe.training.early_stopping:
        problems.append("training.early_stopping needs a validation split: set data.val_fraction or data.validation")
    if d.max_length is not None and d.max_length < 8:
        problems.append(f"data.max_length must be at least 8, got {d.max_length}")
    if not 0 < d.max_drop_fraction <= 1:
        problems.append(f"data.max_drop_fraction must be in (0, 1], got {d.max_drop_fraction}")
    if d.label_bins:
        from .data.labels import bins_problems

        problems += bins_problems(d.label_bins)
    return problems


def check_registered(recipe: "Recipe") -> list[str]:
    """Problems of the strategy and the objectives the recipe names, against their registries."""
    from .objectives import objective_names
    from .strategies import find_strategy, unknown_strategy

    strategy, objectives, known = find_strategy(recipe.strategy), recipe.training.objectives, objective_names()
    problems = [unknown_strategy(recipe.strategy)] if strategy is None else strategy.problems(recipe)
    for name in objectives:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            problems.append(f"unknown objective {quoted(f'training.objectives.{name}')}"
                            + (f" (did you mean '{close[0]}'?)" if close else "") + f"; registered: {', '.join(known)}")
    for name, weight in objectives.items():
        if not 0 <= weight < float("inf"):  # its type was checked with the other fields
            problems.append(f"{shortened(f'training.objectives.{name}')} must be a weight of 0 or more, got "
                            f"{weight!r}")
    if not objectives:
        problems.append("training.objectives is empty: name at least one loss term, e.g. {cross_entropy: 1.0}")
    return problems


#: a run folder name: one path component, no separators, not . or .., no control characters or lone surrogates
_FOLDER_NAME = re.compile(r"[^/\\\x00-\x1f\ud800-\udfff]+")
#: the most bytes (UTF-8) a run folder name may have: file systems allow 255 in one name; the rest is room for what
#: a run adds to it (-2, -3 when the name is taken; -encoder for an adapted encoder; compare- for a comparison)
MAX_NAME_BYTES = 200


def check_names(recipe: "Recipe") -> list[str]:
    """Names that become a run folder under output.dir must stay inside it, and fit the file system's limits."""
    problems = []
    for key, value in (("name", recipe.name), ("output.name", recipe.output.name)):
        if value is not None and (not _FOLDER_NAME.fullmatch(value) or value in (".", "..") or value != value.strip()):
            problems.append(f"{key} {quoted(value)} must be a plain folder name (no '/', '\\', '..' or control "
                            f"characters): the run folder goes inside output.dir")
    key, folder = ("output.name", recipe.output.name) if recipe.output.name else ("name", recipe.name)
    if not problems and len(folder.encode("utf-8")) > MAX_NAME_BYTES:
        problems.append(f"{key} {quoted(folder)} is {len(folder.encode('utf-8')):,} bytes in UTF-8: a run folder name "
                        f"may have at most {MAX_NAME_BYTES} (file systems allow 255, and a run may add to it, e.g. -2 "
                        f"when the name is taken); choose a shorter one")
    long = [part for part in Path(recipe.output.dir).parts if len(part.encode("utf-8", "surrogateescape")) > 255]
    if long:
        problems.append(f"output.dir has a folder name of more than 255 bytes ({quoted(long[0])}): file systems allow "
                        f"at most 255 in one name")
    return problems


def check_report(recipe: "Recipe") -> list[str]:
    """Problems of the report section's values, and a report without a test split to score."""
    r, d = recipe.report, recipe.data
    problems = []
    if r.enabled and d.test is None and d.test_fraction == 0:
        problems.append("report.enabled needs a test split (the report compares test scores): set data.test or "
                        "data.test_fraction")
    if not r.learning_curve or any(not 0 < f <= 1 for f in r.learning_curve):
        problems.append(f"report.learning_curve must be fractions in (0, 1], got {quoted(r.learning_curve)}")
    if r.price_per_hour < 0:
        problems.append(f"report.price_per_hour must be 0 or more, got {r.price_per_hour}")
    if r.bootstrap < 100:
        problems.append(f"report.bootstrap must be at least 100, got {r.bootstrap}")
    if not 0 < r.alpha < 1:
        problems.append(f"report.alpha must be in (0, 1), got {r.alpha}")
    for key in ("latency_texts", "mistakes"):
        if getattr(r, key) < 1:
            problems.append(f"report.{key} must be at least 1, got {getattr(r, key)}")
    return problems


def check_tasks(recipe: "Recipe") -> list[str]:
    """The task kind, and multi-task settings: data.label_columns (two or more distinct columns) and what works with
    it (with task multi_label, data.label_columns are the 0/1 columns of one multi-label task)."""
    d, t = recipe.data, recipe.training
    problems = []
    if recipe.task not in TASKS:
        return [f"task must be one of {', '.join(TASKS)}, got {quoted(recipe.task)}"]
    if recipe.task == "multi_label":
        return problems + _multi_label_settings(recipe)
    problems += _task_kinds(recipe)
    if "multi_label" not in (d.task_kinds or {}).values():
        for key, value in (("data.label_separator", d.label_separator),
                           ("evaluation.threshold", recipe.evaluation.threshold)):
            if value is not None:
                problems.append(f"{key} is a multi-label setting: it needs task: multi_label (or a multi_label task "
                                "in data.task_kinds)")
    elif d.label_separator is not None and not d.label_separator.strip():
        problems.append(f"data.label_separator must be a visible character such as , ; or |, got {d.label_separator!r}")
    if recipe.evaluation.threshold is not None and not 0 < recipe.evaluation.threshold < 1:
        problems.append(f"evaluation.threshold must be in (0, 1), got {recipe.evaluation.threshold!r}")
    if t.task_weighting not in ("fixed", "uncertainty"):
        problems.append(f"training.task_weighting must be fixed or uncertainty, got {quoted(t.task_weighting)}")
    for task, weight in t.task_weights.items():
        if not 0 <= weight < float("inf"):
            problems.append(f"{shortened(f'training.task_weights.{task}')} must be a weight of 0 or more, got "
                            f"{weight!r}")
    columns = d.label_columns or []
    if len(columns) < 2:
        if t.task_weights:
            problems.append("training.task_weights is given but data.label_columns names fewer than two label columns")
        return problems
    if len(set(columns)) != len(columns):
        problems.append(f"data.label_columns names a column twice: {quoted(columns)}")
    unknown = [k for k in t.task_weights if k not in columns]
    if unknown:
        problems.append(f"training.task_weights names {', '.join(map(quoted, unknown[:5]))}"
                        f"{f' and {len(unknown) - 5:,} more' if len(unknown) > 5 else ''}, not in data.label_columns "
                        f"{quoted(columns)}")
    if t.task_weights and all(t.task_weights.get(c, 1.0) == 0 for c in columns):
        problems.append("training.task_weights gives every task weight 0: nothing would train")
    single = [key for key, value in (("data.label_column", d.label_column), ("data.label_map", d.label_map),
                                     ("data.label_bins", d.label_bins), ("data.labels", d.labels)) if value]
    if single:
        problems.append(f"{', '.join(single)} {'applies' if len(single) == 1 else 'apply'} to a single label column; with data.label_columns (multi-task) "
                        "leave them out (each task's labels are its column's values)")
    problems += _multitask_settings(recipe)
    return problems


def _task_kinds(recipe: "Recipe") -> list[str]:
    """data.task_kinds: a kind per label column of a multi-task run, each a registered kind."""
    from .tasks import task_kinds

    kinds, columns = recipe.data.task_kinds or {}, recipe.data.label_columns or []
    if not kinds:
        return []
    if len(columns) < 2:
        return ["data.task_kinds sets the kind of each task of a multi-task run (two or more data.label_columns); "
                "for one column of label lists set task: multi_label"]
    problems = []
    unknown = [k for k in kinds if k not in columns]
    if unknown:
        problems.append(f"data.task_kinds names {', '.join(map(quoted, unknown[:5]))}, not in data.label_columns "
                        f"{quoted(columns)}")
    wrong = {k: v for k, v in kinds.items() if v not in task_kinds()}
    if wrong:
        problems.append(f"data.task_kinds: {', '.join(f'{shortened(str(k))}: {quoted(v)}' for k, v in wrong.items())}"
                        f" is no task kind; choose from {', '.join(task_kinds())}")
    return problems


def _multitask_settings(recipe: "Recipe") -> list[str]:
    """What a multi-task run cannot be combined with: a single-task strategy, one output layer, ordered labels,
    adaptation, objectives beside each task's cross-entropy."""
    from .strategies import find_strategy

    problems, strategy = [], find_strategy(recipe.strategy)
    if strategy is not None and strategy.single_task:
        problems.append(f"strategy {recipe.strategy} cannot train several label columns: "
                        f"{strategy.single_task}; use head, top_k, full or an adapter (lora, ia3)")
    if recipe.pooling == "embedding":
        problems.append("pooling: embedding reads one output layer; multi-task heads need pooling native or mean")
    if recipe.task == "sentiment":
        problems.append("task: sentiment (ordered labels) is for one label column; use task: classification with "
                        "data.label_columns")
    if recipe.adapt.target:
        problems.append("domain adaptation (adapt.*) trains one label column; leave it out with data.label_columns")
    extra = [name for name in recipe.training.objectives if name != "cross_entropy"]
    if extra:
        problems.append(f"training.objectives {', '.join(extra)} with data.label_columns: a multi-task run trains "
                        "cross_entropy per task (weighted by training.task_weights)")
    return problems


def _multi_label_settings(recipe: "Recipe") -> list[str]:
    """What task multi_label cannot be combined with, and its own settings' values."""
    d, problems = recipe.data, []
    columns = d.label_columns or []
    if len(set(columns)) != len(columns):
        problems.append(f"data.label_columns names a column twice: {quoted(columns)}")
    if columns and d.label_column:
        problems.append("data.label_column and data.label_columns both given: with task multi_label, name one column "
                        "of label lists (data.label_column) or the 0/1 columns of the labels (data.label_columns)")
    if columns and d.label_separator is not None:
        problems.append("data.label_separator reads a column of label lists; data.label_columns are 0/1 columns")
    if d.label_separator is not None and not d.label_separator.strip():
        problems.append(f"data.label_separator must be a visible character such as , ; or |, got {d.label_separator!r}")
    for key in ("label_map", "label_bins"):
        if getattr(d, key):
            problems.append(f"data.{key} maps one label per row; task multi_label reads sets of labels (name the "
                            "labels to keep, in order, with data.labels)")
    threshold = recipe.evaluation.threshold
    if threshold is not None and not 0 < threshold < 1:
        problems.append(f"evaluation.threshold must be in (0, 1), got {threshold!r}")
    if d.task_kinds:
        problems.append("data.task_kinds sets the kinds of a multi-task run's tasks; with task: multi_label "
                        "data.label_columns are the 0/1 columns of one task: leave it out")
    if recipe.training.task_weights:
        problems.append("training.task_weights weighs the tasks of a multi-task run; task multi_label is one task")
    extra = [name for name in recipe.training.objectives if name != "cross_entropy"]
    if extra:
        problems.append(f"training.objectives {', '.join(extra)} with task multi_label: its loss is cross_entropy "
                        "(binary, one term per label)")
    if recipe.adapt.target:
        problems.append("domain adaptation (adapt.*) compares one label per row; leave it out with task multi_label")
    return problems
