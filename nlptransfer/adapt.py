"""Domain adaptation (recipe `adapt:`): the target domain's unlabelled texts as a second batch stream, and the
adaptation term added to the recipe's loss. `mmd`: cross-entropy on source batches + adapt.weight x multi-kernel
MMD between the pooled features of each source batch and a target batch (objectives/mmd.py), in the one loop."""
from __future__ import annotations

from pathlib import Path

from .batching import BatchStream, Collator, tokenize
from .data import DataSpec
from .data.unlabelled import read_texts
from .errors import DataError
from .logs import get_logger
from .objectives.mmd import STREAM
from .recipe import Recipe

logger = get_logger(__name__)


def read_target(recipe: Recipe) -> list[str] | None:
    """The target domain's texts (None when the recipe does not adapt); DataError for a file with too few."""
    a = recipe.adapt
    if a.target is None:
        return None
    if a.target_test is not None and not Path(a.target_test).is_file():
        raise DataError(f"adapt.target_test {a.target_test} not found (the labelled target-domain file to score on)")
    spec = DataSpec(encoding=recipe.data.encoding, delimiter=recipe.data.delimiter, join_with=recipe.data.join_with)
    texts, _ = read_texts(a.target, spec, a.text_columns)
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        raise DataError(f"adapt.target {a.target} has {len(texts)} non-empty texts: MMD compares batches of texts, "
                        "so it needs at least 2 (hundreds to be useful)")
    logger.info(f"adapting to {len(texts)} unlabelled target texts from {a.target} (method {a.method}, "
                f"weight {a.weight:g})")
    return texts


def target_stream(recipe: Recipe, texts: list[str], tokenizer, limit: int) -> dict[str, BatchStream]:
    """The target texts as the loop's second batch stream (a pure function of seed, epoch and position: a resumed
    run sees the same target batches)."""
    data = tokenize(tokenizer, texts, limit)  # no labels: an Encoded of token ids only
    size = recipe.adapt.batch_size or recipe.training.batch_size
    return {STREAM: BatchStream(data, data.lengths, size, Collator(tokenizer.pad_token_id or 0),
                                seed=recipe.training.seed + 1, group_by_length=recipe.training.group_by_length)}


def loop_recipe(recipe: Recipe) -> Recipe:
    """The recipe the loop trains with: the adaptation term added to its objectives (the saved recipe keeps the
    `adapt:` section instead, so a resumed run adds it again the same way)."""
    if recipe.adapt.target is None:
        return recipe
    return recipe.replace(**{"training.objectives": {**recipe.training.objectives, "mmd": recipe.adapt.weight},
                             "adapt.target": None, "adapt.target_test": None})
