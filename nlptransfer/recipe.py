"""Recipe: a validated, frozen description of a run, read from YAML plus dotted key=value overrides."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .data.schema import DataSpec
from .errors import RecipeError

METRICS = ("accuracy", "macro_f1")
#: what the head reads: native (the architecture's own head input, the first token), mean (the masked mean of the
#: token states, through the architecture's head), embedding (the sentence embedding: the masked mean, L2-normalised,
#: read by the head's output layer alone, as sentence-transformers models such as all-MiniLM-L6-v2 embed)
POOLINGS = ("native", "mean", "embedding")
_SCIENTIFIC = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


@dataclass(frozen=True)
class PeftSection:
    """Adapter settings for PEFT strategies (lora, ia3, ...)."""

    r: int = 8  #: LoRA rank
    alpha: int = 16  #: LoRA scaling
    dropout: float = 0.1  #: LoRA dropout
    target_modules: list[str] | None = None  #: None = the architecture preset
    options: dict[str, Any] = field(default_factory=dict)  #: extra keyword arguments for the PEFT config


@dataclass(frozen=True)
class TrainingSection:
    """How the single training loop runs."""

    epochs: float = 3  #: passes over the training data
    batch_size: int = 32  #: examples per optimizer step (before accumulation)
    eval_batch_size: int = 64  #: examples per evaluation batch
    lr: float | None = None  #: None = the strategy's default
    head_lr: float | None = None  #: learning rate of the task head; None = lr
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06  #: share of steps with linear warmup, then linear decay
    grad_accum: int = 1  #: gradient accumulation steps
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  #: auto | no | fp16 | bf16 (auto: bf16/fp16 on GPU, none on CPU)
    class_weights: bool = False  #: weight the loss by inverse class frequency
    eval_every: int = 0  #: evaluate every N optimizer steps; 0 = each epoch
    early_stopping: int = 0  #: stop after N evaluations without improvement; 0 = off
    metric: str = "accuracy"  #: validation metric for best checkpoint and early stopping
    checkpoint_every: int = 0  #: save a resumable checkpoint every N steps; 0 = each evaluation
    group_by_length: bool = True  #: length-grouped batches (random order, mixed within groups)
    cache_features: bool = True  #: head/top_k: run the frozen layers once and reuse their output
    seed: int = 42
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


@dataclass(frozen=True)
class OutputSection:
    """Where the run folder goes."""

    dir: str = "runs"  #: parent folder of run folders
    name: str | None = None  #: run folder name; None = the recipe name (suffixed -2, -3 if taken)


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


@dataclass(frozen=True)
class LabelsSection:
    """What the labels mean, for the strategies that read it: zero_shot embeds each label's descriptions and gives a
    text the label whose descriptions it is nearest to."""

    #: label -> a description or a list of them (their embeddings averaged); a label without one is described by its
    #: name. Without a label column in the data, the keys are the labels (in this order)
    descriptions: dict[str, Any] = field(default_factory=dict)
    #: zero_shot probabilities: softmax(cosine similarity / temperature)
    temperature: float = 0.05
    #: zero_shot: pseudo-label the training texts it is confident on, then fit the head on them (labels never read)
    self_train: bool = False
    confidence: float = 0.8  #: self_train: the least probability of a pseudo-label kept
    #: self_train: keep as many pseudo-labels of every label (the most confident ones), so that one label predicted
    #: more often does not teach the head to predict it always
    balance: bool = True


@dataclass(frozen=True)
class ContrastiveSection:
    """strategy contrastive (few-shot, SetFit's method in the one loop): the encoder first learns from pairs of the
    labelled texts (same label: cosine similarity 1, different labels: 0), then the head trains on its frozen
    features (training.*)."""

    body: str = "full"  #: how the encoder trains on the pairs: full, or an adapter strategy (lora, ...; merged after)
    #: rounds of pairs: in each, every labelled text is paired once with a text of its label and once with a text of
    #: another (SetFit's num_iterations)
    iterations: int = 20
    pairs: int | None = None  #: a budget of pairs instead: this many of them, drawn from the rounds
    #: the loss over every two distinct texts of a batch (same label: 1, different: 0, each kind weighing half), not
    #: only its drawn pairs, which then choose the texts of each batch: many more pairs per step at the same cost
    all_pairs: bool = True
    epochs: float = 1.0  #: passes over the pairs
    batch_size: int = 16  #: pairs per step
    lr: float = 2.0e-5  #: the encoder's learning rate on the pairs


#: adaptation methods: mmd (a feature-distance term), mlm (masked-LM pretraining on the target texts first),
#: mlm+ce (the masked-LM loss on target batches beside cross-entropy, UDALM)
ADAPT_METHODS = ("mmd", "mlm", "mlm+ce")
#: the methods that add a term to the classification loss (and so need gradients to reach the encoder)
IN_LOOP_METHODS = ("mmd", "mlm+ce")


@dataclass(frozen=True)
class AdaptSection:
    """Domain adaptation from unlabelled texts of the domain the model will serve (nlptransfer.adapt); off while
    `target` is None."""

    target: str | None = None  #: unlabelled target-domain texts: any data file, its text column inferred
    target_test: str | None = None  #: labelled target-domain texts: evaluation only, never trains or chooses
    #: mmd: cross-entropy on source batches + weight x MK-MMD(source, target pooled features); mlm: masked-LM
    #: pretraining of the encoder on the target texts, then the recipe's strategy; mlm+ce: weight x masked-LM loss on
    #: target batches beside cross-entropy in the one loop (UDALM)
    method: str = "mmd"
    #: lambda, the weight of the adaptation term (1.0 collapsed MiniLM on books->electronics with either method: mmd
    #: 52% on both domains; mlm+ce, whose new masked-LM head starts at a loss of 10.8, 50% on the target)
    weight: float = 0.1
    text_columns: list[str] | None = None  #: the target file's text columns; None = inferred
    batch_size: int | None = None  #: target texts per training batch; None = training.batch_size
    #: mmd, mlm+ce: grow the weight from 0 as 2 / (1 + exp(-10 p)) - 1 with training progress p (Ganin & Lempitsky)
    ramp: bool = False
    #: masked-LM settings (mlm, mlm+ce): the share of tokens masked (BERT's 80/10/10 replacement)
    mask_rate: float = 0.15
    #: mlm: the pretraining budget, in epochs over its texts, or in steps when `steps` is set
    epochs: float = 2.0
    steps: int | None = None
    lr: float = 1e-4  #: mlm: the pretraining learning rate (linear decay, training.warmup_fraction warm-up)
    #: mlm: also pretrain on the source training texts (the target texts alone when False)
    include_source: bool = False
    #: mlm: steps that train the masked-LM head alone before the encoder moves; mlm+ce: steps that train the head
    #: alone (on the target texts, encoder still) before the joint loop. A head the checkpoint lacks starts random:
    #: all-MiniLM-L6-v2 ships none
    head_warmup_steps: int = 0


@dataclass(frozen=True)
class Recipe:
    """A complete run description: model, task, strategy, data, training and output."""

    name: str = "run"
    description: str = ""
    model: str = "minilm"  #: alias, hub id or local path
    model_revision: str | None = None  #: hub revision (branch, tag or commit)
    trust_remote_code: bool = False  #: run code shipped with a hub model
    task: str = "classification"  #: classification | sentiment (ordered labels)
    strategy: str = "full"  #: head | top_k | full | lora | ia3 | any PEFT method name | a registered strategy
    top_k: int = 2  #: top_k: encoder layers that train (from the top)
    layer_lr_decay: float = 1.0  #: top_k/full: lr multiplier per layer going down (1 = none)
    pooling: str = "native"  #: native | mean | embedding (POOLINGS)
    data: DataSpec = field(default_factory=DataSpec)
    peft: PeftSection = field(default_factory=PeftSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    output: OutputSection = field(default_factory=OutputSection)
    report: ReportSection = field(default_factory=ReportSection)
    adapt: AdaptSection = field(default_factory=AdaptSection)
    labels: LabelsSection = field(default_factory=LabelsSection)
    contrastive: ContrastiveSection = field(default_factory=ContrastiveSection)

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (every default filled in)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with dotted-key changes applied and validated, e.g. replace(**{"training.lr": 1e-4})."""
        data = self.to_dict()
        for key, value in changes.items():
            _set_dotted(data, key, value)
        return from_dict(data)


# ---------------------------------------------------------------- parsing and validation


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_type(path: str, value: Any, hint: Any, problems: list[str]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(path, value, inner[0], problems)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            problems.append(f"'{path}' must be a mapping of its keys, got {value!r}")
            return hint()
        return _build(hint, value, path + ".", problems)
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            problems.append(f"'{path}' must be a list, got {value!r}")
            return None
        return [_check_type(f"{path}[{i}]", v, args[0], problems) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            problems.append(f"'{path}' must be a mapping, got {value!r}")
            return {}
        if not args:
            return dict(value)
        return {k: _check_type(f"{path}.{k}", v, args[1], problems) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"'{path}' must be true or false, got {value!r}")
        return False
    if hint is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    problems.append(f"'{path}' must be {getattr(hint, '__name__', hint)}, got {value!r}")
    return None


def _build(cls: type, data: dict, prefix: str, problems: list[str]) -> Any:
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            valid = ", ".join(fields)
            problems.append(f"unknown key '{prefix}{key}'{_suggest(key, list(fields))}; valid keys here: {valid}")
            continue
        kwargs[key] = _check_type(prefix + key, value, fields[key], problems)
    if problems:
        return None
    return cls(**kwargs)


def _check_combinations(recipe: Recipe, registered: bool) -> list[str]:
    problems = []
    t, d = recipe.training, recipe.data
    if recipe.task not in ("classification", "sentiment"):
        problems.append(f"task must be 'classification' or 'sentiment', got '{recipe.task}'")
    if registered:
        problems += _check_strategy(recipe)
    if recipe.pooling not in POOLINGS:
        problems.append(f"pooling must be one of {', '.join(POOLINGS)}, got '{recipe.pooling}'")
    if not 0 < recipe.layer_lr_decay <= 1:
        problems.append(f"layer_lr_decay must be in (0, 1], got {recipe.layer_lr_decay}")
    if t.metric not in METRICS:
        problems.append(f"training.metric must be one of {', '.join(METRICS)}, got '{t.metric}'")
    if t.mixed_precision not in ("auto", "no", "fp16", "bf16"):
        problems.append(f"training.mixed_precision must be auto, no, fp16 or bf16, got '{t.mixed_precision}'")
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
    if registered:
        problems += _check_objectives(t.objectives)
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(d, key) < 1:
            problems.append(f"data.{key} must be in [0, 1), got {getattr(d, key)}")
    if d.val_fraction + d.test_fraction >= 0.9:
        problems.append("data.val_fraction + data.test_fraction leave less than 10% to train; lower them")
    no_validation = d.validation is None and d.val_fraction == 0
    if no_validation and t.early_stopping:
        problems.append("training.early_stopping needs a validation split: set data.val_fraction or data.validation")
    if d.max_length is not None and d.max_length < 8:
        problems.append(f"data.max_length must be at least 8, got {d.max_length}")
    if not 0 < d.max_drop_fraction <= 1:
        problems.append(f"data.max_drop_fraction must be in (0, 1], got {d.max_drop_fraction}")
    if d.label_bins:
        from .data.labels import bins_problems

        problems += bins_problems(d.label_bins)
    problems += _check_report(recipe) + _check_finite(recipe) + _check_names(recipe) + _check_peft(recipe)
    problems += _check_adapt(recipe) + _check_labels(recipe) + _check_contrastive(recipe) + _check_tasks(recipe)
    if not 0 <= t.seed < 2 ** 32:
        problems.append(f"training.seed must be in [0, 2**32), got {t.seed}")
    for key in ("weight_decay", "max_grad_norm"):
        if getattr(t, key) < 0:
            problems.append(f"training.{key} must be 0 or more, got {getattr(t, key)}")
    if t.head_lr is not None and t.head_lr <= 0:
        problems.append(f"training.head_lr must be positive, got {t.head_lr}")
    return problems


#: strategies a multi-task run cannot use, and why
NOT_MULTITASK = {"zero_shot": "it classifies by label descriptions, with no heads to train per task",
                 "contrastive": "its pairs are of one label column (same label or not)"}


def _check_tasks(recipe: Recipe) -> list[str]:
    """Multi-task settings: data.label_columns (two or more distinct columns) and what works with it."""
    d, t = recipe.data, recipe.training
    problems = []
    if t.task_weighting not in ("fixed", "uncertainty"):
        problems.append(f"training.task_weighting must be fixed or uncertainty, got '{t.task_weighting}'")
    for task, weight in t.task_weights.items():
        if not 0 <= weight < float("inf"):
            problems.append(f"training.task_weights.{task} must be a weight of 0 or more, got {weight!r}")
    columns = d.label_columns or []
    if len(columns) < 2:
        if t.task_weights:
            problems.append("training.task_weights is given but data.label_columns names fewer than two label columns")
        return problems
    if len(set(columns)) != len(columns):
        problems.append(f"data.label_columns names a column twice: {columns}")
    unknown = [k for k in t.task_weights if k not in columns]
    if unknown:
        problems.append(f"training.task_weights names {', '.join(map(repr, unknown))}, not in data.label_columns "
                        f"{columns}")
    if t.task_weights and all(t.task_weights.get(c, 1.0) == 0 for c in columns):
        problems.append("training.task_weights gives every task weight 0: nothing would train")
    single = [key for key, value in (("data.label_column", d.label_column), ("data.label_map", d.label_map),
                                     ("data.label_bins", d.label_bins), ("data.labels", d.labels)) if value]
    if single:
        problems.append(f"{', '.join(single)} {'applies' if len(single) == 1 else 'apply'} to a single label column; with data.label_columns (multi-task) "
                        "leave them out (each task's labels are its column's values)")
    if recipe.strategy in NOT_MULTITASK:
        problems.append(f"strategy {recipe.strategy} cannot train several label columns: "
                        f"{NOT_MULTITASK[recipe.strategy]}; use head, top_k, full or an adapter (lora, ia3)")
    if recipe.pooling == "embedding":
        problems.append("pooling: embedding reads one output layer; multi-task heads need pooling native or mean")
    if recipe.task == "sentiment":
        problems.append("task: sentiment (ordered labels) is for one label column; use task: classification with "
                        "data.label_columns")
    if recipe.adapt.target:
        problems.append("domain adaptation (adapt.*) trains one label column; leave it out with data.label_columns")
    extra = [name for name in t.objectives if name != "cross_entropy"]
    if extra:
        problems.append(f"training.objectives {', '.join(extra)} with data.label_columns: a multi-task run trains "
                        "cross_entropy per task (weighted by training.task_weights)")
    return problems


def _check_finite(recipe: Recipe, prefix: str = "") -> list[str]:
    """Every number in the recipe must be finite (a NaN passes every range check, then breaks training)."""
    problems = []
    for f in dataclasses.fields(recipe):
        value, path = getattr(recipe, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            problems += _check_finite(value, path + ".")
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in values:
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"'{path}{'' if key is None else '.' + str(key)}' must be a finite number, got {v}")
    return problems


#: a run folder name: one path component, no separators, not . or ..
_FOLDER_NAME = re.compile(r"[^/\\\x00-\x1f]+")


def _check_names(recipe: Recipe) -> list[str]:
    """Names that become a run folder under output.dir must stay inside it."""
    problems = []
    for key, value in (("name", recipe.name), ("output.name", recipe.output.name)):
        if value is not None and (not _FOLDER_NAME.fullmatch(value) or value in (".", "..") or value != value.strip()):
            problems.append(f"{key} {value!r} must be a plain folder name (no '/', '\\', '..' or control characters): "
                            f"the run folder goes inside output.dir")
    return problems


def _check_adapt(recipe: Recipe) -> list[str]:
    a, problems = recipe.adapt, []
    if a.method not in ADAPT_METHODS:
        problems.append(f"adapt.method must be one of {', '.join(ADAPT_METHODS)}, got '{a.method}'"
                        f"{_suggest(a.method, list(ADAPT_METHODS))}")
    if a.weight < 0:
        problems.append(f"adapt.weight must be 0 or more, got {a.weight}")
    if a.batch_size is not None and a.batch_size < 2:
        problems.append(f"adapt.batch_size must be at least 2 (MMD compares batches), got {a.batch_size}")
    if not 0 < a.mask_rate < 1:
        problems.append(f"adapt.mask_rate must be in (0, 1), got {a.mask_rate}")
    if a.epochs <= 0 or (a.steps is not None and a.steps < 1):
        problems.append(f"adapt.epochs must be positive and adapt.steps at least 1, got {a.epochs} and {a.steps}")
    if a.lr <= 0 or a.head_warmup_steps < 0:
        problems.append(f"adapt.lr must be positive and adapt.head_warmup_steps 0 or more, got {a.lr} and "
                        f"{a.head_warmup_steps}")
    if a.target is None and a.target_test is not None:
        problems.append("adapt.target_test is given without adapt.target (the unlabelled texts to adapt to)")
    if a.target is not None and recipe.strategy == "head" and a.method in IN_LOOP_METHODS:
        problems.append(f"adapt.method {a.method} moves the encoder's features toward the target domain, but strategy "
                        "'head' trains only the classifier on fixed features: use top_k, full or an adapter (lora, ...), or "
                        "adapt.method mlm (it adapts the encoder before the head trains)")
    from .objectives.registry import ADAPT_OBJECTIVES

    term = ADAPT_OBJECTIVES.get(a.method)
    if a.target is not None and term in recipe.training.objectives:
        problems.append(f"training.objectives names {term} and adapt.method {a.method} adds it too: set its weight "
                        "as adapt.weight")
    return problems


def _check_labels(recipe: Recipe) -> list[str]:
    s, problems = recipe.labels, []
    for name, value in s.descriptions.items():
        texts = [value] if isinstance(value, str) else value
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) and t.strip() for t in texts)):
            problems.append(f"labels.descriptions.{name} must be a text or a list of texts, got {value!r}")
    if not s.temperature > 0:
        problems.append(f"labels.temperature must be positive, got {s.temperature}")
    if not 0 < s.confidence < 1:
        problems.append(f"labels.confidence must be in (0, 1), got {s.confidence}")
    if recipe.data.labels and s.descriptions:
        unknown = [n for n in s.descriptions if str(n) not in map(str, recipe.data.labels)]
        if unknown:
            problems.append(f"labels.descriptions names {', '.join(map(repr, unknown))}, not in data.labels "
                            f"({', '.join(map(str, recipe.data.labels))})")
    return problems


def _check_contrastive(recipe: Recipe) -> list[str]:
    c, problems = recipe.contrastive, []
    if c.iterations < 1 or (c.pairs is not None and c.pairs < 1):
        problems.append(f"contrastive.iterations must be at least 1 and contrastive.pairs at least 1, got "
                        f"{c.iterations} and {c.pairs}")
    if c.epochs <= 0 or c.lr <= 0 or c.batch_size < 1:
        problems.append(f"contrastive.epochs and contrastive.lr must be positive and contrastive.batch_size at "
                        f"least 1, got {c.epochs}, {c.lr} and {c.batch_size}")
    return problems


def _check_peft(recipe: Recipe) -> list[str]:
    p, problems = recipe.peft, []
    if p.r < 1:
        problems.append(f"peft.r must be at least 1, got {p.r}")
    if p.alpha <= 0:
        problems.append(f"peft.alpha must be positive, got {p.alpha}")
    if not 0 <= p.dropout < 1:
        problems.append(f"peft.dropout must be in [0, 1), got {p.dropout}")
    return problems


def _check_strategy(recipe: Recipe) -> list[str]:
    from .strategies import find_strategy, unknown_strategy

    strategy = find_strategy(recipe.strategy)
    if strategy is None:
        return [unknown_strategy(recipe.strategy)]
    problems = strategy.problems(recipe)
    if not strategy.adapter and recipe.peft != PeftSection():
        problems.append(f"'peft' settings are given but strategy is '{recipe.strategy}'; remove them or use lora/ia3/...")
    return problems


def _check_objectives(objectives: dict) -> list[str]:
    from .objectives import objective_names

    known = objective_names()
    problems = [f"unknown objective 'training.objectives.{name}'{_suggest(str(name), known)}; "
                f"registered: {', '.join(known)}" for name in objectives if name not in known]
    for name, weight in objectives.items():
        if not 0 <= weight < float("inf"):  # its type was checked with the other fields
            problems.append(f"training.objectives.{name} must be a weight of 0 or more, got {weight!r}")
    if not objectives:
        problems.append("training.objectives is empty: name at least one loss term, e.g. {cross_entropy: 1.0}")
    return problems


def _check_report(recipe: Recipe) -> list[str]:
    r, d = recipe.report, recipe.data
    problems = []
    if r.enabled and d.test is None and d.test_fraction == 0:
        problems.append("report.enabled needs a test split (the report compares test scores): set data.test or "
                        "data.test_fraction")
    if not r.learning_curve or any(not 0 < f <= 1 for f in r.learning_curve):
        problems.append(f"report.learning_curve must be fractions in (0, 1], got {r.learning_curve}")
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


def from_dict(data: dict | None, source: str = "recipe", registered: bool = True) -> Recipe:
    """Validate plain data into a Recipe, raising RecipeError that lists every problem. registered=False leaves
    out the checks against the strategy and objective registries (prediction needs neither)."""
    problems: list[str] = []
    recipe = _build(Recipe, data or {}, "", problems)
    if recipe is not None:
        problems += _check_combinations(recipe, registered)
    if problems:
        raise RecipeError(f"invalid {source}:\n" + "\n".join(f"  - {p}" for p in problems))
    return recipe


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'training.lr=1e-4' into ('training.lr', 0.0001), parsing the value as YAML."""
    if "=" not in text:
        raise RecipeError(f"override '{text}' must look like key=value, e.g. training.epochs=2")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"override '{key}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def shipped_dir() -> Path:
    """The folder of recipes shipped with the package."""
    return Path(str(resources.files("nlptransfer.recipes")))


def shipped_names() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def find(name_or_path: str) -> Path:
    """The YAML file of a shipped recipe name or a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {name_or_path}")
        return path
    candidate = shipped_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = shipped_names()
    raise RecipeError(
        f"no recipe named '{name_or_path}'{_suggest(name_or_path, names)}; shipped recipes: {', '.join(names)} "
        "(or give a path to a YAML file)"
    )


def read_saved(path: str | Path, registered: bool = True) -> Recipe:
    """The resolved recipe saved in a run or repo folder (its recipe.yaml), validated again (registered=False:
    without the registry checks, for prediction, which needs no strategy or objective)."""
    from .errors import RunError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunError(f"{path} is damaged: it is not valid YAML ({str(e).splitlines()[0]}); restore it") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} is damaged: it holds no recipe (a mapping of recipe keys); restore it")
    return from_dict(data, source=str(path), registered=registered)


def refuse_untrusted_code(recipe: Recipe, allowed: bool, source: str | Path) -> None:
    """RunError when the recipe saved in `source` asks for trust_remote_code and the caller did not allow it: a
    loaded file never grants that permission itself (as transformers requires the caller to say it)."""
    from .errors import RunError

    if recipe.trust_remote_code and not allowed:
        raise RunError(f"{source} was trained with trust_remote_code: its model {recipe.model!r} runs code that it "
                       f"ships. A loaded folder never grants that itself: pass --trust-remote-code (in Python "
                       f"trust_remote_code=True) if you trust that code")


def overrides(given: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Overrides as {dotted key: value}: from 'key=value' strings (values parsed as YAML) or a mapping."""
    if isinstance(given, dict):
        return dict(given)
    return dict(parse_override(o) for o in given or [])


def load(name_or_path: str, changes: list[str] | dict[str, Any] | None = None) -> Recipe:
    """Load a shipped recipe or YAML file, apply overrides, validate and return it."""
    path = find(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must be a mapping of recipe keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    data = _over_defaults(Recipe, data)  # so that a dotted override adds to a default mapping (training.objectives.x=1)
    for key, value in overrides(changes).items():
        _set_dotted(data, key, value)
    return from_dict(data, source=f"recipe {path.name}")


def _over_defaults(cls: type, data: dict) -> dict:
    """`data` laid over the defaults of `cls`: sections merge key by key; any other value (a mapping such as
    training.objectives too) replaces the default whole. Unknown keys stay, to be reported."""
    merged = dataclasses.asdict(cls())
    hints = _fields(cls)
    for key, value in data.items():
        if key in hints and dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            merged[key] = _over_defaults(hints[key], value)
        else:
            merged[key] = value
    return merged


def resolve(recipe: str | Recipe, data: str | None = None,
            changes: list[str] | dict[str, Any] | None = None) -> Recipe:
    """The recipe to run: a shipped name, YAML path or Recipe, with overrides and the training file applied."""
    given = overrides(changes)
    resolved = recipe.replace(**given) if isinstance(recipe, Recipe) else load(recipe, given)
    return resolved.replace(**{"data.train": str(data)}) if data is not None else resolved
