"""Domain adaptation's settings: the recipe section `adapt:`, its check, and the registry of adaptation methods
(`register_adapt_method`): mmd (a feature-distance term), mlm (masked-LM pretraining on the target texts first),
mlm+ce (the masked-LM loss on target batches beside cross-entropy, UDALM). The stage itself is nlptransfer/adapt.py."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import quoted
from .registry import Registry, Section, caller, register_section

if TYPE_CHECKING:
    from .recipe import Recipe


@dataclass(frozen=True)
class AdaptSection:
    """Domain adaptation from unlabelled texts of the domain the model will serve (nlptransfer.adapt); off while
    `target` is None."""

    target: str | None = None  #: unlabelled target-domain texts: any data file, its text column inferred
    target_test: str | None = None  #: labelled target-domain texts: evaluation only, never trains or chooses
    #: mmd: cross-entropy on source batches + weight x MK-MMD(source, target pooled features); mlm: masked-LM
    #: pretraining of the encoder on the target texts, then the recipe's strategy; mlm+ce: weight x masked-LM loss on
    #: target batches beside cross-entropy in the one loop (UDALM)
    method: str = "mmd"
    #: lambda, the weight of the adaptation term (1.0 collapsed MiniLM on books->electronics with either method: mmd
    #: 52% on both domains; mlm+ce, whose new masked-LM head starts at a loss of 10.8, 50% on the target)
    weight: float = 0.1
    text_columns: list[str] | None = None  #: the target file's text columns; None = inferred
    batch_size: int | None = None  #: target texts per training batch; None = training.batch_size
    #: mmd, mlm+ce: grow the weight from 0 as 2 / (1 + exp(-10 p)) - 1 with training progress p (Ganin & Lempitsky)
    ramp: bool = False
    #: masked-LM settings (mlm, mlm+ce): the share of tokens masked (BERT's 80/10/10 replacement)
    mask_rate: float = 0.15
    #: mlm: the pretraining budget, in epochs over its texts, or in steps when `steps` is set
    epochs: float = 2.0
    steps: int | None = None  #: mlm: the pretraining budget in optimizer steps instead; None = adapt.epochs
    lr: float = 1e-4  #: mlm: the pretraining learning rate (linear decay, training.warmup_fraction warm-up)
    #: mlm: also pretrain on the source training texts (the target texts alone when False)
    include_source: bool = False
    #: mlm: steps that train the masked-LM head alone before the encoder moves; mlm+ce: steps that train the head
    #: alone (on the target texts, encoder still) before the joint loop. A head the checkpoint lacks starts random:
    #: all-MiniLM-L6-v2 ships none
    head_warmup_steps: int = 0


@dataclass(frozen=True)
class AdaptMethod:
    """An adaptation method: the objective it adds to the loop (weighted by adapt.weight), or None when it adapts the
    encoder before the loop (mlm's pretraining)."""

    name: str
    objective: str | None


_METHODS: Registry[AdaptMethod] = Registry("adaptation method")
#: the objective each in-loop adaptation method adds, weighted by adapt.weight
ADAPT_OBJECTIVES: dict[str, str] = {}


def register_adapt_method(name: str, objective: str | None) -> AdaptMethod:
    """Register adaptation method `name` (recipes then accept `adapt.method: name`); RegistryError if it is taken."""
    method = _METHODS.add(name, AdaptMethod(name, objective), caller())
    if objective is not None:
        ADAPT_OBJECTIVES[name] = objective
    return method


def check_section(recipe: "Recipe") -> list[str]:
    """Problems of the adapt section: its values, and what they cannot be combined with."""
    a, problems = recipe.adapt, []
    method = _METHODS.get(a.method)
    if method is None:
        close = difflib.get_close_matches(a.method, _METHODS.names(), n=1)
        problems.append(f"adapt.method must be one of {', '.join(_METHODS)}, got {quoted(a.method)}"
                        + (f" (did you mean '{close[0]}'?)" if close else ""))
    if a.weight < 0:
        problems.append(f"adapt.weight must be 0 or more, got {a.weight}")
    if a.batch_size is not None and a.batch_size < 2:
        problems.append(f"adapt.batch_size must be at least 2 (MMD compares batches), got {a.batch_size}")
    if not 0 < a.mask_rate < 1:
        problems.append(f"adapt.mask_rate must be in (0, 1), got {a.mask_rate}")
    if a.epochs <= 0 or (a.steps is not None and a.steps < 1):
        problems.append(f"adapt.epochs must be positive and adapt.steps at least 1, got {a.epochs} and {a.steps}")
    if a.lr <= 0 or a.head_warmup_steps < 0:
        problems.append(f"adapt.lr must be positive and adapt.head_warmup_steps 0 or more, got {a.lr} and "
                        f"{a.head_warmup_steps}")
    if a.target is None and a.target_test is not None:
        problems.append("adapt.target_test is given without adapt.target (the unlabelled texts to adapt to)")
    if a.target is not None and method is not None and method.objective is not None:
        problems += _in_loop_problems(recipe, method)
    return problems


def lr_warnings(recipe: "Recipe") -> list[str]:
    """With adapt.method mlm, adapt.lr far from masked-LM pretraining's usual 1e-4 (the whole encoder trains there: a
    rate copied from a head's recipe is far off)."""
    from .strategies.registry import far_from

    a, usual = recipe.adapt, AdaptSection.lr  # the field's default: masked-LM pretraining's own
    if a.target is None or a.method != "mlm" or not (text := far_from(a.lr, usual)):
        return []
    return [f"adapt.lr {a.lr:g} is {text} the usual {usual:g} for masked-LM pretraining of the encoder "
            "(adapt.method=mlm: it trains the whole encoder, as full does)"]


def _in_loop_problems(recipe: "Recipe", method: AdaptMethod) -> list[str]:
    """An in-loop method needs an encoder that trains, and adds its objective itself."""
    from .strategies import find_strategy

    problems, strategy = [], find_strategy(recipe.strategy)
    if strategy is not None and strategy.cacheable == "features":
        problems.append(f"adapt.method {method.name} moves the encoder's features toward the target domain, but "
                        f"strategy '{recipe.strategy}' trains only the classifier on fixed features: use top_k, full or "
                        "an adapter (lora, ...), or adapt.method mlm (it adapts the encoder before the head trains)")
    if method.objective in recipe.training.objectives:
        problems.append(f"training.objectives names {method.objective} and adapt.method {method.name} adds it too: "
                        "set its weight as adapt.weight")
    return problems


register_section(Section("adapt", AdaptSection, check_section, lr_warnings), f"domain adaptation ({__name__})")
register_adapt_method("mmd", "mmd")
register_adapt_method("mlm", None)
register_adapt_method("mlm+ce", "mlm")
