"""What the loop is about to train on, which a strategy's `before_fit` hook may read and change before it starts:
the head's starting weights from the training rows' features (contrastive), or rows and labels of its own choosing
with no validation split to choose by (zero_shot's self-training)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..tokens import Encoded
from .cache import Features, cache_features, cache_inputs

if TYPE_CHECKING:
    from ..recipe import Recipe


class FitPlan:
    """The prepared model and the rows the loop trains and chooses on: token ids, or the frozen part's output once
    cached (`cached()`: where the strategy allows it and the recipe asks). `predict(model, rows)`: class
    probabilities."""

    def __init__(self, model, train: Encoded, validation: Encoded | None, recipe: "Recipe", names,
                 cacheable: str | None, pad_id: int, device, predict: Callable[[Any, Any], np.ndarray]):
        self.model, self.recipe, self.names, self.predict = model, recipe, names, predict
        self.train, self.validation = train, validation
        self.cacheable, self.pad_id, self.device = cacheable, pad_id, device
        self.batch_size = recipe.training.eval_batch_size
        self.trains = True  #: False: nothing trains, the prepared model is the classifier
        self.summary: dict[str, Any] = {}  #: what a hook reports, into metrics.json
        self._cached = not recipe.training.cache_features

    def cached(self) -> None:
        """Cache the frozen part's output of the training and validation rows, once (when the recipe asks)."""
        if self._cached:
            return
        self._cached = True
        parts = {"train": self.train, **({"validation": self.validation} if self.validation is not None else {})}
        parts = cache_inputs(self.model, self.cacheable, parts, self.batch_size, self.pad_id, self.device)
        self.train, self.validation = parts["train"], parts.get("validation")

    def features(self) -> Features:
        """The training rows' features as the head's output layer reads them (the model left in training mode)."""
        self.cached()
        if isinstance(self.train, Features):
            return self.train
        features = cache_features(self.model, self.train, self.batch_size, self.pad_id, self.device)
        self.model.train()
        return features

    def probabilities(self) -> np.ndarray:
        """The prepared model's class probabilities of the training rows (the model left in training mode)."""
        self.cached()
        probs = self.predict(self.model, self.train)
        self.model.train()
        return probs

    def relabel(self, rows: list[int], labels: list[int]) -> None:
        """Train on the training rows `rows` only, with `labels` (a strategy's own)."""
        data = self.train
        if isinstance(data, Features):
            self.train = Features(data.features[rows], labels, [data.lengths[i] for i in rows])
        else:
            self.train = Encoded([data.input_ids[i] for i in rows], labels)
