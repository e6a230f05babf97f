"""PEFT adapter strategies: lora, ia3 and every other PEFT method by its name. The base model stays frozen; the
adapter and the task head train (PEFT's task_type SEQ_CLS, the head in modules_to_save), and both are saved."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..architectures import adapter_targets
from ..errors import RecipeError
from ..registry import Section, register_section
from .parameters import check_pooling, head_modules, prepared
from .registry import Prepared, Strategy, find_strategy, register_strategy, register_strategy_family

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import Recipe

@dataclass(frozen=True)
class PeftSection:
    """Adapter settings for PEFT strategies (lora, ia3, ...)."""

    r: int = 8  #: LoRA rank
    alpha: int = 16  #: LoRA scaling
    dropout: float = 0.1  #: LoRA dropout
    target_modules: list[str] | None = None  #: None = the architecture preset
    options: dict[str, Any] = field(default_factory=dict)  #: extra keyword arguments for the PEFT config


def check_section(recipe: "Recipe") -> list[str]:
    """Problems of the peft section: its values, and settings given to a strategy that trains no adapter."""
    p, problems = recipe.peft, []
    if p.r < 1:
        problems.append(f"peft.r must be at least 1, got {p.r}")
    if p.alpha <= 0:
        problems.append(f"peft.alpha must be positive, got {p.alpha}")
    if not 0 <= p.dropout < 1:
        problems.append(f"peft.dropout must be in [0, 1), got {p.dropout}")
    strategy = find_strategy(recipe.strategy)
    if strategy is not None and not strategy.adapter and p != PeftSection():
        problems.append(f"'peft' settings are given but strategy is '{recipe.strategy}'; remove them or use lora/ia3/...")
    return problems


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
    kwargs["target_modules"] = p.target_modules or targets
    if method == "LORA":
        kwargs.update(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout)
    elif method == "IA3":
        kwargs["feedforward_modules"] = feedforward if not p.target_modules else p.options.get("feedforward_modules", [])
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
    config = peft_config(recipe, net.config.model_type, head)
    try:
        wrapped = get_peft_model(net, config)
    except (ValueError, TypeError) as e:  # PEFT's word on settings that do not fit this model
        raise RecipeError(f"{recipe.strategy} cannot adapt this {net.config.model_type} model as configured: "
                          f"{str(e).splitlines()[0]} (set peft.r, peft.target_modules or peft.options)") from None
    return prepared(wrapped, recipe)


def _describe(recipe: "Recipe") -> str:
    p = recipe.peft
    return f"r={p.r}, alpha={p.alpha}, dropout {p.dropout}" if recipe.strategy == "lora" else ""


def _adapter(name: str) -> Strategy:
    return register_strategy(name, prepare=prepare_adapter, default_lr=DEFAULT_LR.get(name, OTHER_LR),
                             describe=_describe, adapter=True)


#: PEFT methods that adapt weights but cannot train a classifier here, and why
_CANNOT = {"poly": "it needs a task id with every example", "shadow": "it adapts the layer stack of decoder models"}


def _why_not(name: str) -> str | None:
    """Why PEFT method `name` cannot train a classifier with nlptransfer (None when it can)."""
    import dataclasses

    from peft import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.config import PromptLearningConfig

    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[name.upper()]
    if issubclass(config_cls, PromptLearningConfig):
        return ("it is a prompt-learning method: it adds virtual tokens to the input instead of adapting weights, "
                "which mean pooling, cached features and the first-token head cannot see")
    if "modules_to_save" not in {f.name for f in dataclasses.fields(config_cls)}:
        return "it cannot save the trained classification head with the adapter (no modules_to_save)"
    return _CANNOT.get(name.lower())


def _all_peft_methods() -> list[str]:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    return sorted(k.lower() for k in PEFT_TYPE_TO_CONFIG_MAPPING)


def _peft_methods() -> list[str]:
    """The PEFT methods nlptransfer can train."""
    return [m for m in _all_peft_methods() if _why_not(m) is None]


def _refused(name: str, why: str) -> Strategy:
    def check(recipe: "Recipe") -> list[str]:
        return [f"strategy '{name}' is not supported: {why}; use one of the methods that adapt weights: "
                f"{', '.join(_peft_methods())} (or head, top_k, full)"]

    return Strategy(name, prepare_adapter, OTHER_LR, check=check, adapter=True)


def _peft_method(name: str) -> Strategy | None:
    """Any other PEFT method, registered on first use (PEFT is imported only then); refused with the reason when
    it cannot train a classifier here."""
    if name.lower() not in _all_peft_methods():
        return None
    why = _why_not(name)
    return _adapter(name) if why is None else _refused(name, why)


register_section(Section("peft", PeftSection, check_section), f"the PEFT strategies ({__name__})")
for _name in DEFAULT_LR:
    _adapter(_name)
register_strategy_family(_peft_method, _peft_methods)
