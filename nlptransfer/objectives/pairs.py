"""The contrastive objective of few-shot training (strategy contrastive, SetFit's CosineSimilarityLoss): the mean
squared difference between the cosine similarity of a pair's sentence embeddings and its target, 1 for two texts of
the same label and 0 for two of different labels. A batch holds each of its texts once (`input_ids`) and its pairs
as rows of positions into them (`pairs` [pairs, 2], targets in `labels`)."""
from __future__ import annotations

import torch

from .registry import Objective, ObjectiveContext, register_objective


def cosine_pairs_loss(features: torch.Tensor, pairs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between cos(features[a], features[b]) and the target of each pair (a, b), the pairs of the same label
    (target 1) and those of different labels weighing half each when a batch holds both: with every pair of a batch's
    texts (contrastive.all_pairs) and several labels, most pairs are of different labels."""
    a, b = features[pairs[:, 0]].float(), features[pairs[:, 1]].float()
    errors = (torch.nn.functional.cosine_similarity(a, b, dim=-1) - targets.float()) ** 2
    same = targets > 0.5
    if bool(same.any()) and not bool(same.all()):
        return (errors[same].mean() + errors[~same].mean()) / 2
    return errors.mean()


def _cosine_pairs(context: ObjectiveContext) -> Objective:
    def cosine_pairs(outputs: dict, batch: dict) -> dict:
        if "pairs" not in batch:
            raise ValueError("the cosine_pairs objective needs batches of text pairs (strategy contrastive)")
        return {"cosine_pairs": cosine_pairs_loss(outputs["features"], batch["pairs"], batch["labels"])}

    return cosine_pairs


register_objective("cosine_pairs", _cosine_pairs, needs_features=True)
