"""PEFT adapter strategies: lora, ia3 and every other PEFT method by its name. The base model stays frozen; the
adapter and the task head train (PEFT's task_type SEQ_CLS, the head in modules_to_save), and both are saved."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..architectures import adapter_targets
from ..errors import RecipeError
from .parameters import check_pooling, head_modules, prepared
from .registry import Prepared, Strategy, register_strategy, register_strategy_family

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import Recipe

#: default learning rates of the methods we measured; any other PEFT method starts at OTHER_LR
DEFAULT_LR = {"lora": 5e-4, "ia3": 3e-3}
OTHER_LR = 5e-4


def peft_config(recipe: "Recipe", model_type: str, head: list[str]):
    """The PEFT config of the recipe's method: its settings, the architecture's targets, the head to save."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, TaskType

    method = recipe.strategy.upper()
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[method]
    p = recipe.peft
    kwargs = dict(task_type=TaskType.SEQ_CLS, modules_to_save=[h.split(".")[-1] for h in head])
    targets, feedforward = adapter_targets(recipe.strategy.lower(), model_type)
    if method == "LORA":
        kwargs.update(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout)
        kwargs["target_modules"] = p.target_modules or targets
    elif method == "IA3":
        kwargs["target_modules"] = p.target_modules or targets
        kwargs["feedforward_modules"] = feedforward if not p.target_modules else p.options.get("feedforward_modules", [])
    elif p.target_modules:
        kwargs["target_modules"] = p.target_modules
    kwargs.update(p.options)
    if kwargs.get("target_modules") is None:
        kwargs.pop("target_modules", None)  # let PEFT use its own per-architecture default
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"invalid peft settings for {recipe.strategy}: {e}") from None


def prepare_adapter(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """`net` wrapped by PEFT with the recipe's adapter method."""
    from peft import get_peft_model

    check_pooling(net, recipe)
    head = head_modules(net, new_weights)
    return prepared(get_peft_model(net, peft_config(recipe, net.config.model_type, head)), recipe)


def _describe(recipe: "Recipe") -> str:
    p = recipe.peft
    return f"r={p.r}, alpha={p.alpha}, dropout {p.dropout}" if recipe.strategy == "lora" else ""


def _adapter(name: str) -> Strategy:
    return register_strategy(name, prepare=prepare_adapter, default_lr=DEFAULT_LR.get(name, OTHER_LR),
                             describe=_describe, adapter=True)


def _peft_methods() -> list[str]:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    return sorted(k.lower() for k in PEFT_TYPE_TO_CONFIG_MAPPING)


def _peft_method(name: str) -> Strategy | None:
    """Any other PEFT method, registered on first use (PEFT is imported only then)."""
    return _adapter(name) if name.lower() in _peft_methods() else None


for _name in DEFAULT_LR:
    _adapter(_name)
register_strategy_family(_peft_method, _peft_methods)
