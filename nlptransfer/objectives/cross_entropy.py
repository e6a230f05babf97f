"""Cross-entropy of the head's logits against the labels (inverse-frequency class weights when the recipe asks); for a
multi-task model, one masked term per task (rows without that task's label are left out), weighted by
training.task_weights or by learned task weights."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.schema import MISSING
from ..model import HEAD
from .registry import Objective, ObjectiveContext, register_objective


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                         total: torch.Tensor | None = None) -> torch.Tensor:
    """The mean cross-entropy over the rows whose label is not MISSING (class-weighted mean with `weight`), or the
    summed loss over `total` (the loop's count for the whole step's batch, when processes share it); 0, still joined
    to the graph, for a batch with none of them (a plain mean would be NaN)."""
    summed = F.cross_entropy(logits, labels, weight=weight, ignore_index=MISSING, reduction="sum")
    if total is None:
        present = labels != MISSING
        total = weight[labels[present]].sum() if weight is not None else present.sum()
    return summed / total.float().clamp(min=1e-12)  # no labelled row: 0 / tiny = 0


def _cross_entropy(context: ObjectiveContext) -> Objective:
    t = context.recipe.training
    weights = context.class_weights

    def cross_entropy(outputs: dict, batch: dict) -> dict:
        logits = outputs["logits"]
        if HEAD in logits and len(logits) == 1:
            return {"cross_entropy": F.cross_entropy(logits[HEAD].float(), batch["labels"], weight=weights)}
        log_vars = outputs.get("task_log_vars")
        terms = {}
        for i, (task, task_logits) in enumerate(logits.items()):
            loss = masked_cross_entropy(task_logits.float(), batch["labels"][:, i],
                                        weights.get(task) if weights else None,
                                        batch["task_totals"][i] if "task_totals" in batch else None)
            if log_vars is not None:  # learned: exp(-s) x loss + s
                loss = torch.exp(-log_vars[i].float()) * loss + log_vars[i].float()
            else:
                loss = t.task_weights.get(task, 1.0) * loss
            terms[f"cross_entropy[{task}]"] = loss
        return terms

    return cross_entropy


register_objective("cross_entropy", _cross_entropy)
