"""Cross-entropy of the head's logits against the labels (inverse-frequency class weights when the recipe asks)."""
from __future__ import annotations

import torch.nn.functional as F

from ..heads import HEAD
from .registry import Objective, ObjectiveContext, register_objective


def _cross_entropy(context: ObjectiveContext) -> Objective:
    def cross_entropy(outputs: dict, batch: dict) -> dict:
        return {"cross_entropy": F.cross_entropy(outputs["logits"][HEAD].float(), batch["labels"],
                                                 weight=context.class_weights)}

    return cross_entropy


register_objective("cross_entropy", _cross_entropy)
