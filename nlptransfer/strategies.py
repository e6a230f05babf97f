"""Transfer strategies: head | top_k | full | <peft method>. They decide what trains; they never fork the loop."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import RecipeError
from .recipe import Recipe, learning_rate
from .tasks import LAYER_LOOP_TYPES, TransferModel, layer_stack, supports_head_path

#: Attention projections LoRA adapts, per architecture.
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "deberta-v2": ["query_proj", "value_proj"],
    "deberta": ["in_proj"],
}

#: IA3: (target modules, the feed-forward subset), per architecture.
IA3_TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "bert": (["key", "value", "output.dense"], ["output.dense"]),
    "roberta": (["key", "value", "output.dense"], ["output.dense"]),
    "xlm-roberta": (["key", "value", "output.dense"], ["output.dense"]),
    "camembert": (["key", "value", "output.dense"], ["output.dense"]),
    "electra": (["key", "value", "output.dense"], ["output.dense"]),
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
    "deberta-v2": (["key_proj", "value_proj", "output.dense"], ["output.dense"]),
}

#: Names of head modules (trained by every strategy, saved with adapters).
HEAD_MODULES = ("classifier", "pre_classifier", "score")


@dataclass
class Prepared:
    """A model ready for the loop: what trains, its parameter groups, and whether features can be cached."""

    model: TransferModel
    param_groups: list[dict]
    trainable: int
    total: int
    cacheable: bool  # the whole encoder is frozen: its output can be computed once and reused
    #: top_k: the frozen layers below the trained ones run as a plain loop, so their output can be cached
    states_cacheable: bool = False


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers."""
    net = model.net if isinstance(model, TransferModel) else model
    found = layer_stack(net)
    if found is None:
        raise RecipeError(f"cannot find the layer stack of model type '{net.config.model_type}' for top_k")
    return found[1]


def _head_and_new(model: nn.Module, new_weights: list[str]) -> list[str]:
    """Module names that belong to the task head: the classifier, and any newly initialised module (a pooler)."""
    names = {n for n, _ in model.named_modules() if n.split(".")[-1] in HEAD_MODULES and n.count(".") == 0}
    for weight in new_weights:
        module = weight.rsplit(".", 2)[0] if weight.count(".") >= 2 else weight.rsplit(".", 1)[0]
        if module.split(".")[0] not in names:
            names.add(module)
    return sorted(names)


def _freeze_all_but(model: nn.Module, trainable_prefixes: list[str]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad = any(name == p or name.startswith(p + ".") for p in trainable_prefixes)


def _peft_config(recipe: Recipe, model_type: str, head: list[str]):
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, TaskType

    method = recipe.strategy.upper()
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[method]
    p = recipe.peft
    kwargs = dict(task_type=TaskType.SEQ_CLS, modules_to_save=[h.split(".")[-1] for h in head])
    if method == "LORA":
        kwargs.update(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout)
        kwargs["target_modules"] = p.target_modules or LORA_TARGETS.get(model_type)
    elif method == "IA3":
        targets, ff = IA3_TARGETS.get(model_type, (None, None))
        kwargs["target_modules"] = p.target_modules or targets
        kwargs["feedforward_modules"] = ff if not p.target_modules else p.options.get("feedforward_modules", [])
    elif p.target_modules:
        kwargs["target_modules"] = p.target_modules
    kwargs.update(p.options)
    if kwargs.get("target_modules") is None:
        kwargs.pop("target_modules", None)  # let PEFT use its own per-architecture default
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"invalid peft settings for {recipe.strategy}: {e}") from None


def _layer_groups(model: nn.Module, recipe: Recipe, lr: float) -> list[dict]:
    """Parameter groups with layer-wise learning-rate decay (the head gets head_lr or lr)."""
    decay, wd = recipe.layer_lr_decay, recipe.training.weight_decay
    layers = encoder_layers(model)
    depth = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    n = len(layers)
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.split(".")[1] in HEAD_MODULES if name.startswith("net.") else False
        if is_head:
            group_lr = recipe.training.head_lr or lr
        elif id(param) in depth:
            group_lr = lr * decay ** (n - 1 - depth[id(param)])
        else:  # embeddings sit below the first layer; pooler sits with the top
            group_lr = lr * decay ** n if "embeddings" in name else lr
        no_decay = param.ndim < 2
        groups.setdefault((group_lr, 0.0 if no_decay else wd), []).append(param)
    return [{"params": ps, "lr": g_lr, "weight_decay": g_wd} for (g_lr, g_wd), ps in groups.items()]


def _plain_groups(model: nn.Module, recipe: Recipe, lr: float) -> list[dict]:
    decayed = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    flat = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    head_lr = recipe.training.head_lr or lr
    groups = [{"params": decayed, "lr": lr, "weight_decay": recipe.training.weight_decay},
              {"params": flat, "lr": lr, "weight_decay": 0.0}]
    if head_lr != lr:
        head = {id(p) for n, p in model.named_parameters() if any(f".{h}." in n for h in HEAD_MODULES)}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in head]} for g in groups] + [
            {"params": [p for p in model.parameters() if id(p) in head and p.requires_grad], "lr": head_lr,
             "weight_decay": recipe.training.weight_decay}]
    return [g for g in groups if g["params"]]


def prepare(net: nn.Module, recipe: Recipe, new_weights: list[str]) -> Prepared:
    """Freeze / wrap `net` (an AutoModelForSequenceClassification) as the recipe's strategy says."""
    model_type = net.config.model_type
    head = _head_and_new(net, new_weights)
    lr = learning_rate(recipe)
    frozen: list[nn.Module] = []
    first_trained = None
    if recipe.pooling == "mean" and not supports_head_path(net):
        raise RecipeError(f"pooling: mean is not supported for model type '{model_type}'; use pooling: native")
    if recipe.strategy == "head":
        _freeze_all_but(net, head)
        frozen = [net.base_model]
        if any(h.startswith(net.base_model_prefix + ".") for h in head):
            frozen = []  # a newly initialised pooler lives inside the encoder module: keep train mode
    elif recipe.strategy == "top_k":
        layers = encoder_layers(net)
        if recipe.top_k > len(layers):
            raise RecipeError(f"top_k={recipe.top_k} but the model has only {len(layers)} layers")
        prefix = next(n for n, m in net.named_modules() if m is layers)
        top = [f"{prefix}.{i}" for i in range(len(layers) - recipe.top_k, len(layers))]
        pooler = [n for n, _ in net.named_modules() if n.endswith(".pooler") and n.count(".") == 1]
        _freeze_all_but(net, head + top + pooler)
        first_trained = len(layers) - recipe.top_k
        frozen = [net.base_model.embeddings] + [layers[i] for i in range(first_trained)]
    elif recipe.strategy == "full":
        for param in net.parameters():
            param.requires_grad_(True)
    else:
        from peft import get_peft_model

        net = get_peft_model(net, _peft_config(recipe, model_type, head))
    model = TransferModel(net, recipe.pooling, frozen, first_trained)
    if recipe.strategy in ("top_k", "full") and recipe.layer_lr_decay < 1:
        groups = _layer_groups(model, recipe, lr)
    else:
        groups = _plain_groups(model, recipe, lr)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    cacheable = recipe.strategy == "head" and bool(frozen) and supports_head_path(net)
    states_cacheable = recipe.strategy == "top_k" and model_type in LAYER_LOOP_TYPES and 0 < first_trained
    return Prepared(model, groups, trainable, total, cacheable, states_cacheable)
