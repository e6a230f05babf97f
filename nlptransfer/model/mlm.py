"""The masked-LM heads: one attached to a classifier (adapt.method mlm+ce) and the masked-LM model pretraining
trains (adapt.method mlm)."""
from __future__ import annotations

import torch
from torch import nn

from ..architectures import architecture


class MlmHead(nn.Module):
    """The masked-LM head of an AutoModelForMaskedLM (its modules under their own names, without its encoder), its
    decoder tied to `embeddings` (the classifier's word embeddings): token logits from token states [n, hidden]."""

    def __init__(self, masked_lm: nn.Module, embeddings: nn.Embedding):
        super().__init__()
        known = architecture(masked_lm.config.model_type)
        if known is None or known.mlm is None:
            raise ValueError(f"nlptransfer has no masked-LM head path for model_type '{masked_lm.config.model_type}'")
        self._logits = known.mlm
        for name, module in masked_lm.named_children():
            if name != masked_lm.base_model_prefix and not isinstance(module, nn.modules.loss._Loss):
                self.add_module(name, module)
        masked_lm.get_output_embeddings().weight = embeddings.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._logits(self, hidden)


class MaskedLM(nn.Module):
    """What the loop trains for masked-LM pretraining (adapt.method mlm): an AutoModelForMaskedLM whose forward
    returns {"logits": {}, "mlm_logits": [masked tokens, vocabulary]}, the logits at the batch's `mlm_mask` only (15% of
    the tokens: the vocabulary projection of the others would be thrown away)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        known = architecture(net.config.model_type)
        if known is None or known.mlm is None:
            raise ValueError(f"nlptransfer has no masked-LM head path for model_type '{net.config.model_type}'")
        self.net = net
        self._logits = known.mlm

    def forward(self, input_ids, attention_mask, mlm_mask, **extra) -> dict:
        hidden = self.net.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"logits": {}, "mlm_logits": self._logits(self.net, hidden[mlm_mask])}
