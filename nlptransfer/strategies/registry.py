"""The strategy registry: one registering call per strategy, and the only place the rest of the code asks what a
strategy does (its default learning rate, recipe checks, what of its frozen part can be cached, how it is saved)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..errors import RecipeError, quoted
from ..plugins import load_plugins
from ..registry import SECTIONS, Registry, Section, origin, register_section

if TYPE_CHECKING:
    from torch import nn

    from ..model import TransferModel
    from ..recipe import Recipe

CACHEABLE = ("features", "states")


@dataclass
class Prepared:
    """A model ready for the loop: what trains and its parameter groups."""

    model: "TransferModel"
    param_groups: list[dict]
    trainable: int
    total: int


@dataclass(frozen=True)
class Strategy:
    """What a transfer strategy is: how it prepares a model, and what the rest of the code needs to know of it."""

    name: str
    #: (net, recipe, names of newly initialised weights) -> Prepared; `net` is an AutoModelForSequenceClassification
    prepare: Callable[["nn.Module", "Recipe", list[str]], Prepared]
    default_lr: float  #: the learning rate when the recipe gives none
    #: recipe -> problems (messages), checked when the recipe is validated, before any model loads
    check: Callable[["Recipe"], list[str]] | None = None
    #: what its frozen part lets the loop compute once: "features" (the whole encoder is frozen: the head's input),
    #: "states" (the layers below model.first_trained_layer are frozen: the hidden states entering it) or None
    cacheable: str | None = None
    #: recipe -> a few words on its settings for model cards (e.g. "top 2 layers"), "" for none
    describe: Callable[["Recipe"], str] | None = None
    #: trains a PEFT adapter: the recipe's `peft` section applies, and the run saves adapter/ (with the head)
    adapter: bool = False
    #: needs no labels in the data: a training file without a label column is read as texts (zero_shot)
    labels_optional: bool = False
    #: the pooling it needs (recipe `pooling`; compare sets it for it), None for any
    pooling: str | None = None
    #: the registered encoder stage (train.encoder_stage.register_encoder_stage) that trains the encoder the
    #: classifier then loads ("pairs": contrastive's body, nlptransfer/fewshot.py); None: the recipe's model
    encoder_stage: str | None = None
    #: (plan: train.plan.FitPlan) -> None, before the loop starts: it may set the head's starting weights from the
    #: training rows (contrastive: the class centroids), or choose the rows and labels that train, or that nothing
    #: does (zero_shot's self-training)
    before_fit: Callable | None = None
    #: why it cannot train several label columns (data.label_columns), or None when it can
    single_task: str | None = None

    def problems(self, recipe: "Recipe") -> list[str]:
        """What is wrong with `recipe` for this strategy."""
        found = list(self.check(recipe)) if self.check else []
        if self.pooling and recipe.pooling != self.pooling:
            found.append(f"strategy {self.name} needs pooling: {self.pooling} (got '{recipe.pooling}')")
        return found

    def description(self, recipe: "Recipe") -> str:
        return self.describe(recipe) if self.describe else ""


_STRATEGIES: Registry[Strategy] = Registry("strategy")
#: lookups for whole families of names (every PEFT method): name -> Strategy or None, and the names they know
_FAMILIES: list[tuple[Callable[[str], Strategy | None], Callable[[], list[str]]]] = []


def register_strategy(name: str, *, prepare: Callable, default_lr: float, check: Callable | None = None,
                      cacheable: str | None = None, describe: Callable | None = None, adapter: bool = False,
                      labels_optional: bool = False, pooling: str | None = None,
                      encoder_stage: str | None = None, before_fit: Callable | None = None,
                      single_task: str | None = None, section: Section | None = None) -> Strategy:
    """Register strategy `name` (recipes then accept `strategy: name`), with the recipe section it owns (its settings,
    e.g. `contrastive:`); returns it. RegistryError when the name (or the section's key) is taken."""
    if cacheable not in (None, *CACHEABLE):
        raise ValueError(f"cacheable must be None or one of {CACHEABLE}, got {cacheable!r}")
    if not default_lr > 0:
        raise ValueError(f"default_lr must be positive, got {default_lr!r}")
    strategy = Strategy(name, prepare, float(default_lr), check, cacheable, describe, adapter, labels_optional,
                        pooling, encoder_stage, before_fit, single_task)
    _STRATEGIES.refuse_taken(name, origin(prepare))
    if section is not None:
        register_section(section, f"strategy {name} ({origin(prepare)})")
    return _STRATEGIES.add(name, strategy, origin(prepare))


def register_strategy_family(lookup: Callable[[str], Strategy | None], names: Callable[[], list[str]]) -> None:
    """Register a family of strategies found by name on first use (e.g. every PEFT method)."""
    _FAMILIES.append((lookup, names))


def find_strategy(name: str) -> Strategy | None:
    """The registered strategy `name` (installed plugins' included), or None."""
    if name not in _STRATEGIES:
        load_plugins("nlptransfer.strategies")
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    for lookup, _ in _FAMILIES:
        found = lookup(name)
        if found is not None:
            return found if name in _STRATEGIES else _STRATEGIES.add(name, found, origin(lookup))
    return None


def strategy_names() -> list[str]:
    """Every strategy name a recipe may use: the registered ones, then the families' names."""
    load_plugins("nlptransfer.strategies")
    names = _STRATEGIES.names()
    for _, family in _FAMILIES:
        names += [n for n in family() if n not in names]
    return names


def unknown_strategy(name: str) -> str:
    """The problem line for a strategy name nothing registered, with the closest names and the valid ones."""
    valid = strategy_names()
    close = difflib.get_close_matches(name, valid, n=1)
    return (f"unknown strategy {quoted(name)}" + (f" (did you mean '{close[0]}'?)" if close else "")
            + f"; valid: {', '.join(valid)}")


def get_strategy(name: str) -> Strategy:
    """The registered strategy `name`; RecipeError naming the valid ones when there is none."""
    found = find_strategy(name)
    if found is None:
        raise RecipeError(unknown_strategy(name))
    return found


def learning_rate(recipe: "Recipe") -> float:
    """The recipe's learning rate, or its strategy's default."""
    if recipe.training.lr is not None:
        return recipe.training.lr
    return get_strategy(recipe.strategy).default_lr


#: how many times above or below its strategy's default a recipe's learning rate may be before a run warns
LR_WARN_FACTOR = 20


def learning_rate_warnings(recipe: "Recipe") -> list[str]:
    """Warnings when a learning rate is LR_WARN_FACTOR x or more from its usual value: training.lr from the recipe's
    strategy's default (a recipe written for another strategy: a full fine-tuning recipe run with strategy=head keeps
    its 5e-5, and a head trained at that barely moves), then each registered section's own (its `warnings`)."""
    found, default = [], get_strategy(recipe.strategy).default_lr
    if (lr := recipe.training.lr) is not None and (text := far_from(lr, default)):
        found.append(f"training.lr {lr:g} is {text} strategy {recipe.strategy}'s usual {default:g}; was the recipe "
                     f"written for another strategy? (training.lr=null takes the strategy's own)")
    for key in recipe.sections:
        section = SECTIONS.get(key)
        if section is not None and section.warnings is not None:
            found += section.warnings(recipe)
    return found


def far_from(lr: float, default: float) -> str | None:
    """'Nx below' / 'Nx above' when lr is LR_WARN_FACTOR x or more from default, else None."""
    if default / LR_WARN_FACTOR < lr < default * LR_WARN_FACTOR:
        return None
    return f"{max(lr / default, default / lr):.0f}x {'below' if lr < default else 'above'}"


def prepare(net: "nn.Module", recipe: "Recipe", new_weights: list[str]) -> Prepared:
    """Freeze or wrap `net` as the recipe's strategy says."""
    return get_strategy(recipe.strategy).prepare(net, recipe, new_weights)
