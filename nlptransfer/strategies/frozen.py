"""The strategies that choose which of the pretrained weights train: head (frozen encoder), top_k (the top k
layers train) and full (everything trains)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import RecipeError
from .parameters import check_pooling, encoder_layers, freeze_all_but, head_modules, prepared
from .registry import Prepared, register_strategy

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import Recipe


def prepare_head(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """Only the head (and newly initialised modules) train; the encoder stays frozen in eval mode."""
    check_pooling(net, recipe)
    head = head_modules(net, new_weights)
    freeze_all_but(net, head)
    frozen = [net.base_model]
    if any(h.startswith(net.base_model_prefix + ".") for h in head):
        frozen = []  # a newly initialised pooler lives inside the encoder module: keep train mode
    return prepared(net, recipe, frozen)


def prepare_top_k(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """The top `recipe.top_k` encoder layers, the pooler and the head train; embeddings and lower layers are frozen."""
    check_pooling(net, recipe)
    head = head_modules(net, new_weights)
    layers = encoder_layers(net)
    if recipe.top_k > len(layers):
        raise RecipeError(f"top_k={recipe.top_k} but the model has only {len(layers)} layers")
    prefix = next(n for n, m in net.named_modules() if m is layers)
    top = [f"{prefix}.{i}" for i in range(len(layers) - recipe.top_k, len(layers))]
    pooler = [n for n, _ in net.named_modules() if n.endswith(".pooler") and n.count(".") == 1]
    freeze_all_but(net, head + top + pooler)
    first_trained = len(layers) - recipe.top_k
    frozen = [net.base_model.embeddings] + [layers[i] for i in range(first_trained)]
    return prepared(net, recipe, frozen, first_trained, layer_decay=True)


def prepare_full(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """Every weight trains (with layer-wise learning-rate decay when the recipe sets layer_lr_decay < 1)."""
    check_pooling(net, recipe)
    for param in net.parameters():
        param.requires_grad_(True)
    return prepared(net, recipe, layer_decay=True)


def _check_top_k(recipe: "Recipe") -> list[str]:
    return [f"top_k must be at least 1, got {recipe.top_k}"] if recipe.top_k < 1 else []


# head: a linear probe on frozen features (1e-2 measured on SST-2 2k); top_k and full: the usual fine-tuning rates
register_strategy("head", prepare=prepare_head, default_lr=1e-2, cacheable="features")
register_strategy("top_k", prepare=prepare_top_k, default_lr=1e-4, check=_check_top_k, cacheable="states",
                  describe=lambda r: f"top {r.top_k} layers")
register_strategy("full", prepare=prepare_full, default_lr=5e-5)
