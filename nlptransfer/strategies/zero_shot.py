"""zero_shot: a classifier from what the labels mean, with no labelled training data.

Each label's descriptions (recipe `labels.descriptions`, the label's name when it has none) and each text are
embedded by the encoder as sentence embeddings (pooling: embedding, the normalised mean all-MiniLM-L6-v2 was trained
for); a text's probabilities are softmax(cosine similarity / labels.temperature). That is a linear layer on the
embedding, its rows the labels' mean description embeddings / temperature: the head's output layer is set to it, so
the run folder is an ordinary one (predict, evaluate, serve, push and ONNX read it like any other). With
labels.self_train it then pseudo-labels the training texts it is confident on and fits that layer on them (the
encoder frozen, its features cached, as strategy `head`); the data's labels are never read for training."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..architectures import final_linear
from ..errors import DataError, RecipeError
from ..logs import get_logger
from ..registry import Section
from .parameters import check_pooling, freeze_all_but, head_modules, prepared
from .registry import Prepared, register_strategy

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import Recipe

logger = get_logger(__name__)


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


def check_section(recipe: "Recipe") -> list[str]:
    """Problems of the labels section's values (checked whatever the strategy)."""
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


def descriptions(recipe: "Recipe", names) -> list[list[str]]:
    """Each label's description texts, in label order: labels.descriptions (report.label_descriptions, its older
    place, when that is empty), else the label's name."""
    given = {str(k): v for k, v in (recipe.labels.descriptions or recipe.report.label_descriptions).items()}
    out = []
    for name in names:
        value = given.get(str(name), str(name))
        out.append([str(value)] if isinstance(value, str) else [str(v) for v in value])
    return out


@torch.no_grad()
def label_embeddings(model, tokenizer, texts: list[list[str]], max_length: int) -> torch.Tensor:
    """[labels, hidden]: the normalised mean of each label's description embeddings (`model` a TransferModel with
    embedding pooling)."""
    flat = [t for group in texts for t in group]
    was_training = model.training
    model.eval()
    batch = tokenizer(flat, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    embedded = model.encode(batch["input_ids"].to(device), batch["attention_mask"].to(device))[:, 0].float()
    model.train(was_training)
    rows, start = [], 0
    for group in texts:
        rows.append(embedded[start:start + len(group)].mean(0))
        start += len(group)
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def prepare_zero_shot(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """The encoder frozen; the head's output layer set from the label descriptions (and trained when self-training)."""
    from .. import models

    check_pooling(net, recipe)
    freeze_all_but(net, head_modules(net, new_weights))
    ready = prepared(net, recipe, [net.base_model])
    base = models.resolve(recipe.model, recipe.model_revision)
    tokenizer = models.load_tokenizer(base, recipe.trust_remote_code)
    limit = models.max_length(tokenizer, net.config, recipe.data.max_length)
    names = [net.config.id2label[i] for i in range(net.config.num_labels)]
    unknown = [str(k) for k in recipe.labels.descriptions if str(k) not in names]
    if unknown:
        raise RecipeError(f"labels.descriptions names {', '.join(map(repr, unknown))}, which the data's labels "
                          f"({', '.join(names)}) lack: correct the names, or add rows of those labels")
    embedded = label_embeddings(ready.model, tokenizer, descriptions(recipe, names), limit)
    set_prototypes(net, dict(enumerate(embedded)), recipe.labels.temperature)
    return ready


@torch.no_grad()
def set_prototypes(net: "nn.Module", rows: dict[int, torch.Tensor], temperature: float) -> None:
    """The head's output layer as a cosine classifier on the (normalised) sentence embedding: row k of the weight the
    normalised rows[k] / temperature, the bias 0; a label not in `rows` keeps its row. zero_shot's rows are the labels'
    description embeddings, contrastive's start its training texts' mean embedding per label."""
    layer = final_linear(net)
    for k, row in rows.items():
        layer.weight[k] = torch.nn.functional.normalize(row.float(), dim=-1).to(layer.weight) / temperature
    layer.bias.zero_()


def pseudo_labels(probabilities, recipe: "Recipe", names) -> tuple[list[int], list[int], dict] | None:
    """labels.self_train: the training rows the zero-shot classifier is confident on (`probabilities()`: its class
    probabilities of them), labelled with its own predictions (with `balance`, the same number of the most confident
    of each label), and what was kept; None when it does not self-train (nothing trains)."""
    s = recipe.labels
    if not s.self_train:
        return None
    probs = probabilities()
    predicted, confidence = probs.argmax(1), probs.max(1)
    order = np.argsort(-confidence, kind="stable")
    confident = {k: [int(i) for i in order if predicted[i] == k and confidence[i] >= s.confidence]
                 for k in range(len(names))}
    missing = [names[k] for k, rows in confident.items() if not rows]
    if missing:
        raise DataError(f"self-training: no training text is predicted {', '.join(map(repr, missing))} with "
                        f"probability >= {s.confidence:g} (labels.confidence), so the head would learn never to "
                        f"predict it: lower labels.confidence, describe that label better (labels.descriptions), or "
                        f"set labels.self_train=false")
    keep = min(len(rows) for rows in confident.values()) if s.balance else None
    chosen = sorted(i for rows in confident.values() for i in rows[:keep])
    summary = {"texts": len(probs), "used": len(chosen), "confidence": s.confidence, "balance": s.balance,
               "per_label": {names[k]: len(rows[:keep]) for k, rows in confident.items()}}
    logger.info(f"self-training: {len(chosen)} of {len(probs)} training texts pseudo-labelled (probability >= "
                f"{s.confidence:g}{', balanced' if s.balance else ''}: "
                + ", ".join(f"{k} {v}" for k, v in summary["per_label"].items()) + ")")
    return chosen, [int(predicted[i]) for i in chosen], summary


def self_train(plan) -> None:
    """Before the loop: no gold label chooses (there is no validation split to choose by); the head trains on the
    pseudo-labelled training rows (labels.self_train), or nothing trains."""
    plan.validation = None
    chosen = pseudo_labels(plan.probabilities, plan.recipe, plan.names)
    plan.summary["self_training"] = None if chosen is None else chosen[2]
    if chosen is None:
        plan.trains = False
    else:
        plan.relabel(chosen[0], chosen[1])


def _describe(recipe: "Recipe") -> str:
    return "self-trained" if recipe.labels.self_train else "no training"


def _check(recipe: "Recipe") -> list[str]:
    if recipe.task == "multi_label":
        return ["strategy zero_shot picks the one label whose description is nearest: it takes one label per row, not "
                "task multi_label"]
    return []


register_strategy("zero_shot", prepare=prepare_zero_shot, default_lr=1e-2, cacheable="features", describe=_describe,
                  check=_check,
                  labels_optional=True, pooling="embedding", before_fit=self_train,
                  single_task="it classifies by label descriptions, with no heads to train per task",
                  section=Section("labels", LabelsSection, check_section))
