"""Task heads: the classifier module the loop trains, pooling, and the per-architecture head path."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

TASKS = ("classification", "sentiment")
#: Architectures whose encoder runs its layer list as a plain loop: the top layers can run alone from the
#: cached hidden states entering them (DeBERTa's encoder treats its first layer specially, so it is not here).
LAYER_LOOP_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")


def core_model(net: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    from peft import PeftModel

    return net.base_model.model if isinstance(net, PeftModel) else net


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, shaped [batch, 1, hidden] so a first-token head can read it."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1e-9)


def head_forward(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    """Logits from encoder output `seq` [batch, tokens, hidden], using only the first token like the model's own head."""
    kind = model.config.model_type
    if kind == "bert":
        pooled = model.bert.pooler(seq) if model.bert.pooler is not None else seq[:, 0]
        return model.classifier(model.dropout(pooled))
    if kind in ("roberta", "xlm-roberta", "electra", "camembert"):
        return model.classifier(seq)
    if kind == "distilbert":
        x = torch.relu(model.pre_classifier(seq[:, 0]))
        return model.classifier(model.dropout(x))
    if kind in ("deberta-v2", "deberta"):
        return model.classifier(model.dropout(model.pooler(seq)))
    raise NotImplementedError(f"mean pooling and cached features are not supported for model type '{kind}'")


def layer_stack(model: nn.Module) -> tuple[nn.Module, nn.ModuleList] | None:
    """The module that owns the encoder's list of transformer layers, and that list (None if not found)."""
    base = core_model(model).base_model
    for owner_name in ("encoder", "transformer"):
        owner = getattr(base, owner_name, None)
        if isinstance(getattr(owner, "layer", None), nn.ModuleList):
            return owner, owner.layer
    return None


class _Captured(Exception):
    """Ends a forward pass once the hidden states entering a layer have been captured."""


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs.get("hidden_states", kwargs.get("hidden_state"))


def supports_head_path(model: nn.Module) -> bool:
    """True when head_forward knows this architecture (needed for mean pooling and feature caching)."""
    return core_model(model).config.model_type in (
        "bert", "roberta", "xlm-roberta", "electra", "camembert", "distilbert", "deberta-v2", "deberta"
    )


class TransferModel(nn.Module):
    """What the loop trains: a sequence classifier (maybe PEFT-wrapped) with its pooling and frozen parts.

    forward() takes token batches, or cached encoder `features` when the encoder is frozen.
    Frozen modules stay in eval mode so that cached features equal a fresh forward pass.
    """

    def __init__(self, net: nn.Module, pooling: str = "native", frozen: list[nn.Module] | None = None,
                 first_trained_layer: int | None = None):
        super().__init__()
        self.net = net
        self.pooling = pooling
        self._frozen = frozen or []
        #: top_k: the first layer that trains; everything below it is frozen and its output can be cached
        self.first_trained_layer = first_trained_layer

    @property
    def core(self) -> nn.Module:
        return core_model(self.net)

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        """What the head reads: first-token states [batch, 1, hidden] (native) or the masked mean (mean)."""
        hidden = self.core.base_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        return hidden[:, :1]

    @torch.no_grad()
    def frozen_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the first trained layer [batch, tokens, hidden]: the frozen part's output."""
        _, layers = layer_stack(self.core)
        captured = []

        def capture(module, args, kwargs):
            captured.append(_hidden_arg(args, kwargs))
            raise _Captured

        handle = layers[self.first_trained_layer].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            self.core.base_model(input_ids=input_ids, attention_mask=attention_mask)
        except _Captured:
            pass
        finally:
            handle.remove()
        return captured[0]

    @contextmanager
    def _from_cached_states(self, states: torch.Tensor):
        """Within: the encoder skips its frozen layers and its first trained layer reads `states` instead."""
        owner, layers = layer_stack(self.core)
        first = self.first_trained_layer

        def inject(module, args, kwargs):
            if args:
                return (states, *args[1:]), kwargs
            key = "hidden_states" if "hidden_states" in kwargs else "hidden_state"
            return args, {**kwargs, key: states}

        handle = layers[first].register_forward_pre_hook(inject, with_kwargs=True)
        owner.layer = nn.ModuleList(layers[first:])
        try:
            yield
        finally:
            owner.layer = layers
            handle.remove()

    def forward(self, input_ids=None, attention_mask=None, features=None, states=None, **extra) -> torch.Tensor:
        """Logits [batch, labels]; from cached head `features` (head) or cached frozen-layer `states` (top_k)."""
        if features is not None:
            return head_forward(self.core, features)
        if states is not None:
            with self._from_cached_states(states):
                return self.forward(input_ids, attention_mask, **extra)
        if self.pooling == "native":
            return self.net(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        return head_forward(self.core, self.encode(input_ids, attention_mask, **extra))


def ordinal_error(gold: list[int], predicted: list[int]) -> float:
    """Mean absolute distance between gold and predicted label positions (ordered sentiment labels)."""
    if not gold:
        return 0.0
    return float(sum(abs(g - p) for g, p in zip(gold, predicted)) / len(gold))
