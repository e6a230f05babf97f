"""Masked-language-model cross-entropy at the masked tokens: the whole loss of masked-LM pretraining on the target
domain's texts (adapt.method mlm), or, beside the classification loss, the UDALM term on the target stream's
batches (adapt.method mlm+ce). The batches come masked from batching.MaskingCollator."""
from __future__ import annotations

import torch.nn.functional as F

from .registry import TARGET_STREAM, Objective, ObjectiveContext, register_objective


def _mlm(context: ObjectiveContext) -> Objective:
    def mlm(outputs: dict, batch: dict) -> dict:
        streams = outputs.get("streams") or {}
        out, given = (streams[TARGET_STREAM], batch["streams"][TARGET_STREAM]) if TARGET_STREAM in streams \
            else (outputs, batch)
        if "mlm_logits" not in out:
            raise ValueError("the mlm objective needs masked-LM batches: set adapt.target and adapt.method mlm+ce")
        labels = given["labels"][given["mlm_mask"]]
        if not len(labels):  # a batch of a few very short texts drew no mask: nothing to learn from it
            return {"mlm": out["mlm_logits"].float().sum() * 0.0}
        return {"mlm": F.cross_entropy(out["mlm_logits"].float(), labels)}

    return mlm


register_objective("mlm", _mlm)
