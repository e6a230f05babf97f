"""The task loss: each head's kind's loss term against the labels (single_label: cross-entropy, inverse-frequency
class weights when the recipe asks; multi_label: binary cross-entropy); for a multi-task model, one term per task
over its slots of the batch's label rows (rows without that task's label are left out), weighted by
training.task_weights or by learned task weights."""
from __future__ import annotations

import torch

from ..model import HEAD
from ..tasks import DEFAULT_KIND, label_slots, task_kind
from .registry import Objective, ObjectiveContext, register_objective


def _cross_entropy(context: ObjectiveContext) -> Objective:
    t = context.settings
    weights = context.class_weights
    default = task_kind(DEFAULT_KIND)
    kinds = [task.kind for task in context.tasks.values()]  # in head order, as the model returns its logits
    spans = list(label_slots(context.tasks).values())

    def cross_entropy(outputs: dict, batch: dict) -> dict:
        logits = outputs["logits"]
        if HEAD in logits and len(logits) == 1:
            kind = kinds[0] if kinds else default
            return {"cross_entropy": kind.loss(logits[HEAD].float(), batch["labels"], weights, masked=False)}
        log_vars = outputs.get("task_log_vars")
        terms = {}
        for i, (task, task_logits) in enumerate(logits.items()):
            kind = kinds[i] if i < len(kinds) else default
            span = spans[i] if i < len(spans) else slice(i, i + 1)
            gold = kind.slot_gold(batch["labels"][:, span])
            loss = kind.loss(task_logits.float(), gold, weights.get(task) if weights else None,
                             batch["task_totals"][i] if "task_totals" in batch else None)
            if log_vars is not None:  # learned: exp(-s) x loss + s
                loss = torch.exp(-log_vars[i].float()) * loss + log_vars[i].float()
            else:
                loss = t.task_weights.get(task, 1.0) * loss
            terms[f"cross_entropy[{task}]"] = loss
        return terms

    return cross_entropy


register_objective("cross_entropy", _cross_entropy)
