"""TransferModel, what the loop trains: an encoder with its classification head, pooling, and the frozen parts
whose output can be cached. Its forward returns what every objective needs: logits per head, and on request the
pooled features the head reads."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..architectures import core_model, final_linear, head_forward, layer_stack
from .first_token import first_token_layer_ok, swapped_layers
from .heads import HEAD, task_labels
from .mlm import MlmHead


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, shaped [batch, 1, hidden] so a first-token head can read it."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1e-9)


class _Captured(Exception):
    """Ends a forward pass once the hidden states entering a layer have been captured."""


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs.get("hidden_states", kwargs.get("hidden_state"))


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
        #: native pooling reads only the first token of the last layer: run that layer for it alone
        self.first_token_only = pooling == "native" and first_token_layer_ok(net)
        #: a masked-LM head on the encoder's token states (adapt.method mlm+ce attaches one; never saved with the run)
        self.mlm_head: MlmHead | None = None
        #: a multi-task model's task names, in order (the first is the model's own head); None for one task
        self.tasks = list(task_labels(net) or []) or None

    @property
    def core(self) -> nn.Module:
        return core_model(self.net)

    @property
    def encoder_frozen(self) -> bool:
        """True when the whole encoder is frozen (in eval mode): its output can be computed once and reused."""
        return any(m is self.core.base_model for m in self._frozen)

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        """What the head reads: first-token states [batch, 1, hidden] (native) or the masked mean (mean)."""
        with self._layers():
            return self._pool(input_ids, attention_mask, **extra)

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        hidden = self.core.base_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        if self.pooling == "embedding":
            return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
        return hidden[:, :1]

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from what the head reads [batch, 1, hidden]: through the architecture's own head, or (embedding
        pooling) its output layer alone."""
        if self.pooling == "embedding":
            return final_linear(self.net)(pooled[:, 0])
        return head_forward(self.core, pooled)

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
    def _layers(self, states: torch.Tensor | None = None):
        """Within: the encoder runs its last layer for the first token only (when first_token_only), and with
        cached `states`, skips its frozen layers while its first trained layer reads `states` instead; with
        neither, the encoder is left as it is."""
        if states is None and not self.first_token_only:
            yield
            return
        first = self.first_trained_layer if states is not None else 0
        with swapped_layers(self.core, first, self.first_token_only, states):
            yield

    def forward(self, input_ids=None, attention_mask=None, features=None, states=None, return_features: bool = False,
                mlm_mask=None, **extra) -> dict:
        """{"logits": {HEAD: [batch, labels]}}, plus "features" [batch, hidden] (what the head reads) when asked;
        from cached head `features` (head) or cached frozen-layer `states` (top_k) when given. A batch with an
        `mlm_mask` (masked-LM targets, for the mlm+ce objective) gives {"mlm_logits": [masked tokens, vocabulary]}
        from the attached masked-LM head instead."""
        if mlm_mask is not None:
            if self.mlm_head is None:
                raise ValueError("a masked-LM batch needs a masked-LM head: adapt.method mlm+ce attaches one")
            hidden = self.core.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return {"logits": {}, "mlm_logits": self.mlm_head(hidden[mlm_mask])}
        if self.tasks:
            if features is None:
                with self._layers(states):
                    features = self._pool(input_ids, attention_mask, **extra)
            return self._task_outputs(features, return_features)
        if features is not None:
            return self._outputs(self.head(features), features, return_features)
        with self._layers(states):
            if self.pooling == "native" and not return_features:
                return self._outputs(self.net(input_ids=input_ids, attention_mask=attention_mask, **extra).logits)
            pooled = self._pool(input_ids, attention_mask, **extra)
            return self._outputs(self.head(pooled), pooled, return_features)

    def _task_outputs(self, pooled: torch.Tensor, with_features: bool) -> dict:
        """A multi-task model's outputs: {"logits": {task: [batch, labels]}}, "task_log_vars" [tasks] when it learns its
        task weights, and "features" when asked."""
        core = self.core
        out = {"logits": dict(zip(self.tasks, [self.head(pooled), *core.task_heads(core, pooled)]))}
        if with_features:
            out["features"] = pooled[:, 0]
        weights = getattr(core, "task_weights", None)
        if weights is not None:
            out["task_log_vars"] = weights(None)
        return out

    @staticmethod
    def _outputs(logits: torch.Tensor, pooled: torch.Tensor | None = None, with_features: bool = False) -> dict:
        out = {"logits": {HEAD: logits}}
        if with_features:
            out["features"] = pooled[:, 0]
        return out
