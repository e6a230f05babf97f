"""The objective registry: loss terms the training loop sums. Each objective is registered by name
(`register_objective`), and a recipe names the ones it uses with their weights (`training.objectives`, default
{cross_entropy: 1.0}).

An objective is built once per run from an ObjectiveContext and is then a pure function
`(outputs, batch) -> {term name: scalar tensor}` of what the model returned for a batch (outputs["logits"][head],
outputs["features"] when it asks for them, outputs["streams"][name] for a second batch stream) and the batch itself
(batch["labels"], batch["streams"][name]). It never calls the model: the loop runs the model once per batch,
sums every weighted term and backpropagates the sum once, so DDP/FSDP wrapping stays correct."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..plugins import load_plugins
from ..registry import Registry, Section, origin, register_section

if TYPE_CHECKING:
    import torch

    from ..train.settings import LoopSettings

Objective = Callable[[dict, dict], "dict[str, torch.Tensor]"]
#: the second batch stream domain adaptation adds: the target domain's texts (recipe adapt.target)
TARGET_STREAM = "target"


@dataclass(frozen=True)
class ObjectiveContext:
    """What an objective may be built from: the loop's settings, the label count, inverse-frequency class weights (when
    the settings ask for them; on the training device), the device and the run's tasks."""

    settings: "LoopSettings"
    n_labels: int
    class_weights: "torch.Tensor | dict[str, torch.Tensor] | None"  #: multi-task: per task
    device: Any
    #: the run's tasks (tasks.Task by name, in head order): each head's kind owns its loss term; {}: one single_label
    tasks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredObjective:
    name: str
    build: Callable[[ObjectiveContext], Objective]
    needs_features: bool  #: the model must also return outputs["features"] (the pooled features the head reads)


_OBJECTIVES: Registry[RegisteredObjective] = Registry("objective")
#: names the loop writes in a log record; a term may not take them
RESERVED = ("step", "epoch", "loss", "lr", "eval", "seconds")


def register_objective(name: str, build: Callable[[ObjectiveContext], Objective], *,
                       needs_features: bool = False, section: Section | None = None) -> None:
    """Register objective `name`: `build(context)` returns the function `(outputs, batch) -> {term: tensor}`; with
    the recipe section it owns (its settings). RegistryError when the name (or the section's key) is taken."""
    if name in RESERVED:
        raise ValueError(f"'{name}' is a name the training log uses; choose another objective name")
    _OBJECTIVES.refuse_taken(name, origin(build))
    if section is not None:
        register_section(section, f"objective {name} ({origin(build)})")
    _OBJECTIVES.add(name, RegisteredObjective(name, build, needs_features), origin(build))


def objective_names() -> list[str]:
    """The registered objective names (installed plugins' included)."""
    load_plugins("nlptransfer.objectives")
    return _OBJECTIVES.names()


class Losses:
    """A recipe's weighted objectives, built for one run: `losses(outputs, batch) -> (total, {term: value})`."""

    def __init__(self, weights: dict[str, float], context: ObjectiveContext):
        load_plugins("nlptransfer.objectives")
        self.terms = [(name, w, _OBJECTIVES[name].build(context)) for name, w in weights.items()]
        self.needs_features = any(_OBJECTIVES[name].needs_features for name in weights)
        #: the adaptation term, when adapt.ramp asks for its weight to grow from 0 over training
        self.ramped = context.settings.ramped

    def __call__(self, outputs: dict, batch: dict, progress: float = 1.0
                 ) -> tuple["torch.Tensor", "dict[str, torch.Tensor]"]:
        """The weighted sum and each term; `progress` (0 at the first step, 1 at the last) scales a ramped term."""
        total, terms = 0.0, {}
        for name, weight, objective in self.terms:
            if name == self.ramped:
                weight = weight * ramp(progress)
            for key, value in objective(outputs, batch).items():
                if key in terms or key in RESERVED:
                    raise ValueError(f"two loss terms are named '{key}' (or it is a name the log uses)")
                terms[key] = value
                total = total + weight * value
        return total, terms


def ramp(progress: float) -> float:
    """Ganin & Lempitsky (2015)'s schedule for an adaptation weight: 2 / (1 + exp(-10 p)) - 1, from 0 at p = 0 to
    0.987 at p = 0.5 and 0.99991 at p = 1; the early steps, when the features are still poor, adapt little."""
    import math

    return 2 / (1 + math.exp(-10 * progress)) - 1
