"""What trains: freezing by name, the task head's modules, and parameter groups (plain, or with layer-wise
learning-rate decay). Shared by the built-in strategies; a new strategy may use them too."""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ..architectures import HEAD_MODULES, layer_stack, supports_head_path
from ..errors import RecipeError
from ..model import TASK_MODULES, TransferModel
from .registry import Prepared, learning_rate

if TYPE_CHECKING:
    from ..recipe import Recipe


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers."""
    net = model.net if isinstance(model, TransferModel) else model
    found = layer_stack(net)
    if found is None:
        raise RecipeError(f"cannot find the layer stack of model type '{net.config.model_type}' for top_k")
    return found[1]


def head_modules(model: nn.Module, new_weights: list[str]) -> list[str]:
    """Module names that belong to the task head: the classifier (and a multi-task model's other heads and task
    weights), and any newly initialised module (a pooler)."""
    names = {n for n, _ in model.named_modules()
             if n.split(".")[-1] in (*HEAD_MODULES, *TASK_MODULES) and n.count(".") == 0}
    for weight in new_weights:
        module = weight.rsplit(".", 2)[0] if weight.count(".") >= 2 else weight.rsplit(".", 1)[0]
        if module.split(".")[0] not in names:
            names.add(module)
    return sorted(names)


def freeze_all_but(model: nn.Module, trainable_prefixes: list[str]) -> None:
    """Parameters under one of the prefixes train; every other one is frozen."""
    for name, param in model.named_parameters():
        param.requires_grad = any(name == p or name.startswith(p + ".") for p in trainable_prefixes)


def layer_groups(model: nn.Module, recipe: "Recipe", lr: float) -> list[dict]:
    """Parameter groups with layer-wise learning-rate decay (the head gets head_lr or lr)."""
    decay, wd = recipe.layer_lr_decay, recipe.training.weight_decay
    layers = encoder_layers(model)
    depth = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    n = len(layers)
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.split(".")[1] in (*HEAD_MODULES, *TASK_MODULES) if name.startswith("net.") else False
        if is_head:
            group_lr = recipe.training.head_lr or lr
        elif id(param) in depth:
            group_lr = lr * decay ** (n - 1 - depth[id(param)])
        else:  # embeddings sit below the first layer; pooler sits with the top
            group_lr = lr * decay ** n if "embeddings" in name else lr
        no_decay = param.ndim < 2
        groups.setdefault((group_lr, 0.0 if no_decay else wd), []).append(param)
    return [{"params": ps, "lr": g_lr, "weight_decay": g_wd} for (g_lr, g_wd), ps in groups.items()]


def plain_groups(model: nn.Module, recipe: "Recipe", lr: float) -> list[dict]:
    """Weight-decayed matrices and undecayed vectors at `lr`; the head apart when training.head_lr differs."""
    decayed = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    flat = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    head_lr = recipe.training.head_lr or lr
    groups = [{"params": decayed, "lr": lr, "weight_decay": recipe.training.weight_decay},
              {"params": flat, "lr": lr, "weight_decay": 0.0}]
    if head_lr != lr:
        head = {id(p) for n, p in model.named_parameters()
                if any(f".{h}." in n for h in (*HEAD_MODULES, *TASK_MODULES))}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in head]} for g in groups] + [
            {"params": [p for p in model.parameters() if id(p) in head and p.requires_grad], "lr": head_lr,
             "weight_decay": recipe.training.weight_decay}]
    return [g for g in groups if g["params"]]


def check_pooling(net: nn.Module, recipe: "Recipe") -> None:
    """RecipeError when the recipe asks for mean pooling on an architecture whose head path is unknown (embedding
    pooling needs only the head's output layer)."""
    if recipe.pooling == "mean" and not supports_head_path(net):
        raise RecipeError(f"pooling: mean is not supported for model type '{net.config.model_type}'; "
                          "use pooling: native or embedding")
    if recipe.pooling == "embedding":
        from ..architectures import final_linear

        try:
            final_linear(net)
        except NotImplementedError as e:
            raise RecipeError(f"pooling: embedding: {e}; use pooling: native") from None


def _freeze_unread(net: nn.Module) -> None:
    """Embedding pooling reads the encoder's token states and the head's output layer alone: the rest of the head
    (BERT's pooler, RoBERTa's dense layer, DistilBERT's pre-classifier) is frozen, as it gets no gradient (and under
    DDP an unused trained parameter is an error)."""
    from ..architectures import core_model, final_linear

    core = core_model(net)
    keep = {id(p) for p in final_linear(net).parameters()}
    unread = [m for name, m in core.named_children() if name in (*HEAD_MODULES, "pooler")]  # DeBERTa's pooler
    unread += [m for name, m in core.base_model.named_children() if name == "pooler" and m is not None]
    for module in unread:
        for p in module.parameters():
            if id(p) not in keep:
                p.requires_grad_(False)


def prepared(net: nn.Module, recipe: "Recipe", frozen: list[nn.Module] | None = None,
             first_trained_layer: int | None = None, layer_decay: bool = False) -> Prepared:
    """`net` (its trainable parameters already chosen) as the loop's TransferModel, with its parameter groups."""
    if recipe.pooling == "embedding":
        _freeze_unread(net)
    model = TransferModel(net, recipe.pooling, frozen, first_trained_layer)
    lr = learning_rate(recipe)
    use_decay = layer_decay and recipe.layer_lr_decay < 1
    groups = layer_groups(model, recipe, lr) if use_decay else plain_groups(model, recipe, lr)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return Prepared(model, groups, trainable, total)
