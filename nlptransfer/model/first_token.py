"""The first-token speed-up: with first-token pooling, the encoder's last layer runs for the first token alone; and
the layer swap that runs it (and that lets top_k's trained layers read cached frozen states)."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import nn

from ..architectures import architecture, core_model, layer_stack

#: held while a forward pass runs with swapped layers (`swapped_layers`): threads that predict with one model
#: at once (a user's thread pool) must not see each other's swap; a module-level lock, since a lock attribute
#: would stop the model from being copied (merging an adapter copies it)
_SWAPPING = threading.RLock()


class FirstTokenLayer(nn.Module):
    """A BERT-style encoder's last layer run for the first token only.

    With first-token pooling the classifier reads nothing of the last layer but the first token's output, so
    keys and values are computed for every token and everything else (query, attention output, feed-forward)
    for the first token alone: about 5/6 of the last layer's work is skipped, with the same result."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        import sys

        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        attention = self.layer.attention.self
        first = hidden_states[:, :1]
        batch, tokens, _ = hidden_states.shape
        size = attention.attention_head_size
        query = attention.query(first).view(batch, 1, -1, size).transpose(1, 2)
        key = attention.key(hidden_states).view(batch, tokens, -1, size).transpose(1, 2)
        value = attention.value(hidden_states).view(batch, tokens, -1, size).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[2] != 1:
            attention_mask = attention_mask[:, :, :1]  # the first query's row
        eager = sys.modules[type(attention).__module__].eager_attention_forward
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
        context, _ = interface(attention, query, key, value, attention_mask,
                               dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling)
        out = self.layer.attention.output(context.reshape(batch, 1, -1), first)
        return self.layer.output(self.layer.intermediate(out), out)


def first_token_layer_ok(model: nn.Module) -> bool:
    """True when the last encoder layer of `model` can run for the first token alone (FirstTokenLayer)."""
    found = layer_stack(model)
    if found is None:
        return False
    last = found[1][-1]
    known = architecture(core_model(model).config.model_type)
    return (known is not None and type(last).__name__ == known.first_token_layer and not getattr(last, "add_cross_attention", False)
            and hasattr(last.attention.self, "attention_head_size"))


@contextmanager
def swapped_layers(core: nn.Module, first: int, first_token_only: bool, states: torch.Tensor | None):
    """Within: `core`'s encoder runs its layers from `first` on, the last for the first token only (when
    `first_token_only`), and with cached `states`, its layer `first` reads `states` instead of its input."""
    with _SWAPPING:  # the swap is visible to every thread: one swapped forward pass at a time
        owner, layers = layer_stack(core)
        run = list(layers[first:])
        if first_token_only:
            run[-1] = FirstTokenLayer(run[-1])
        handle = None
        if states is not None:
            def inject(module, args, kwargs):
                if args:
                    return (states, *args[1:]), kwargs
                key = "hidden_states" if "hidden_states" in kwargs else "hidden_state"
                return args, {**kwargs, key: states}

            handle = run[0].register_forward_pre_hook(inject, with_kwargs=True)
        owner.layer = nn.ModuleList(run)
        try:
            yield
        finally:
            owner.layer = layers
            if handle is not None:
                handle.remove()
