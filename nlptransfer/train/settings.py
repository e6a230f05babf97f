"""What the training loop is told: a small frozen settings object, built from a recipe in one place
(`LoopSettings.from_recipe`). A stage that trains differently (masked-LM pretraining, contrastive's body on pairs,
domain adaptation's extra term) adjusts a copy with dataclasses.replace; no recipe is rewritten to steer the loop."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..adaptation import ADAPT_OBJECTIVES

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclass(frozen=True)
class LoopSettings:
    """How one fit runs: its budget and batches, schedule, evaluation, checkpoints and loss terms."""

    epochs: float  #: passes over the training data (the loop runs ceil(epochs x updates per epoch) steps)
    batch_size: int  #: examples per optimizer step (before accumulation)
    eval_batch_size: int  #: examples per evaluation batch
    grad_accum: int  #: batches accumulated into one optimizer step
    warmup_fraction: float  #: share of the steps with linear warm-up, then linear decay (lr: the parameter groups')
    max_grad_norm: float  #: gradient clipping; 0 = off
    seed: int  #: the batch order's seed
    group_by_length: bool  #: length-grouped batches (random order, mixed within groups)
    eval_every: int  #: evaluate every N optimizer steps; 0 = each epoch
    early_stopping: int  #: stop after N evaluations without improvement; 0 = off
    metric: str  #: the validation metric that chooses the best weights
    checkpoint_every: int  #: a resumable checkpoint every N steps; 0 = each evaluation
    objectives: dict[str, float] = field(default_factory=lambda: {"cross_entropy": 1.0})  #: loss terms, weighted
    class_weights: bool = False  #: weight the loss by inverse class frequency
    task_weights: dict[str, float] = field(default_factory=dict)  #: multi-task: each task's loss weight (1 if absent)
    ramped: str | None = None  #: the objective whose weight grows from 0 over training (adapt.ramp), if any

    @classmethod
    def from_recipe(cls, recipe: "Recipe") -> "LoopSettings":
        """The loop's settings of `recipe`'s training section."""
        t, adapt = recipe.training, recipe.adapt
        return cls(epochs=t.epochs, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
                   grad_accum=t.grad_accum, warmup_fraction=t.warmup_fraction, max_grad_norm=t.max_grad_norm,
                   seed=t.seed, group_by_length=t.group_by_length, eval_every=t.eval_every,
                   early_stopping=t.early_stopping, metric=t.metric, checkpoint_every=t.checkpoint_every,
                   objectives=dict(t.objectives), class_weights=t.class_weights, task_weights=dict(t.task_weights),
                   ramped=ADAPT_OBJECTIVES.get(adapt.method) if adapt.ramp else None)
