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

from typing import TYPE_CHECKING

import torch

from .frozen import prepare_head
from .registry import find_strategy, register_strategy
from .zero_shot import set_prototypes

if TYPE_CHECKING:
    from ..recipe import Recipe


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
    body = find_strategy(recipe.contrastive.body)
    if body is None or not (recipe.contrastive.body == "full" or body.adapter):
        return [f"contrastive.body must be full or an adapter strategy (lora, ia3, ...), got "
                f"'{recipe.contrastive.body}'"]
    return []


register_strategy("contrastive", prepare=prepare_head, default_lr=1e-3, check=_check, cacheable="features",
                  describe=lambda r: f"body {r.contrastive.body}, {r.contrastive.iterations} rounds of pairs"
                  + (f" (at most {r.contrastive.pairs:,})" if r.contrastive.pairs else "")
                  + (", every two texts of a batch" if r.contrastive.all_pairs else ""),
                  pooling="embedding", encoder_stage="pairs", before_fit=start_from_centroids)
