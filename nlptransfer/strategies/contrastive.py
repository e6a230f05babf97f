"""contrastive: few-shot classification, SetFit's method in the one loop.

First the body: the encoder (all of it, or an adapter: recipe `contrastive.body`) learns from pairs of the labelled
texts, the cosine similarity of their sentence embeddings pulled to 1 for two texts of the same label and to 0 for two
of different labels (`batching.TextPairs`, the `cosine_pairs` objective; with contrastive.all_pairs every two texts of
a batch, not only its drawn pairs), into `body/` in the run folder (its own checkpoints and log, so a stopped run
resumes where it was; an adapter is merged into the encoder it saves). Then the classifier loads that encoder and its
head's output layer trains on the frozen sentence embeddings (pooling: embedding, features cached, as strategy `head`)
with training.*: SetFit's logistic regression on the body's embeddings, through the same loop. The head starts as a
nearest-centroid classifier (each label's row the mean embedding of its training texts / labels.temperature, as
zero_shot's rows are of its descriptions): replaying the head's training on the saved body embeddings of SST-2 at 8
labelled rows per class (seeds 42-44), that start gave 0.640 dev accuracy against 0.628 from the random one, and
within half a point of it at 16 to 64. The body stage itself is a stage of training (nlptransfer/fewshot.py), like the
masked-LM pretraining of domain adaptation: a strategy only says what trains."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import quoted
from ..registry import Section
from .frozen import prepare_head
from .registry import far_from, find_strategy, register_strategy
from .zero_shot import set_prototypes

if TYPE_CHECKING:
    from ..recipe import Recipe


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


def check_section(recipe: "Recipe") -> list[str]:
    """Problems of the contrastive section's values (checked whatever the strategy)."""
    c, problems = recipe.contrastive, []
    if c.iterations < 1 or (c.pairs is not None and c.pairs < 1):
        problems.append(f"contrastive.iterations must be at least 1 and contrastive.pairs at least 1, got "
                        f"{c.iterations} and {c.pairs}")
    if c.epochs <= 0 or c.lr <= 0 or c.batch_size < 1:
        problems.append(f"contrastive.epochs and contrastive.lr must be positive and contrastive.batch_size at "
                        f"least 1, got {c.epochs}, {c.lr} and {c.batch_size}")
    return problems


def lr_warnings(recipe: "Recipe") -> list[str]:
    """With strategy contrastive, contrastive.lr far from its body's usual rate (contrastive.body=ia3 at a full body's
    4e-5 barely moves the adapter)."""
    c = recipe.contrastive
    body = find_strategy(c.body) if recipe.strategy == "contrastive" else None
    if body is None or not (text := far_from(c.lr, body.default_lr)):
        return []
    return [f"contrastive.lr {c.lr:g} is {text} strategy {body.name}'s usual {body.default_lr:g} for the body it "
            f"trains (contrastive.body={body.name}); set contrastive.lr for that body"]


def init_head(model, features: torch.Tensor, labels: list[int], recipe: "Recipe") -> None:
    """The head's output layer as nearest class centroid: row k the normalized mean of label k's training features,
    / labels.temperature, bias 0 (a label with no training row keeps its row)."""
    gold, features = torch.tensor(labels), features.reshape(len(features), -1)  # [rows, 1, width]: first position
    set_prototypes(model.net, {k: features[gold == k].float().mean(0) for k in gold.unique().tolist()},
                   recipe.labels.temperature)


def start_from_centroids(plan) -> None:
    """Before the loop: the head's output layer starts as the nearest class centroid of the training rows."""
    features = plan.features()
    init_head(plan.model, features.features, features.labels, plan.recipe)


def _check(recipe: "Recipe") -> list[str]:
    if recipe.task == "multi_label":
        return ["strategy contrastive trains on pairs of texts with the same label or not: it takes one label per row, "
                "not task multi_label; for little multi-label data use strategy head (frozen features) or lora"]
    body = find_strategy(recipe.contrastive.body)
    if body is None or not (recipe.contrastive.body == "full" or body.adapter):
        return [f"contrastive.body must be full or an adapter strategy (lora, ia3, ...), got "
                f"{quoted(recipe.contrastive.body)}"]
    return []


register_strategy("contrastive", prepare=prepare_head, default_lr=1e-3, check=_check, cacheable="features",
                  describe=lambda r: f"body {r.contrastive.body}, {r.contrastive.iterations} rounds of pairs"
                  + (f" (at most {r.contrastive.pairs:,})" if r.contrastive.pairs else "")
                  + (", every two texts of a batch" if r.contrastive.all_pairs else ""),
                  pooling="embedding", encoder_stage="pairs", before_fit=start_from_centroids,
                  single_task="its pairs are of one label column (same label or not)",
                  section=Section("contrastive", ContrastiveSection, check_section, lr_warnings))
