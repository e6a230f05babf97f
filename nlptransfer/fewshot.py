"""The body stage of strategy contrastive (few-shot, SetFit's method): the encoder, all of it or an adapter, learns
from pairs of the labelled texts through the one loop, into body/ in the run folder (its own recipe, log,
checkpoints and metrics, and the trained encoder, an adapter merged into it); the pipeline then loads the classifier
from that encoder and trains its head (strategies/contrastive.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import models
from .batching import TextPairs
from .errors import RecipeError
from .logs import get_logger
from .models import merge_adapter
from .fsio import atomic_dir, writing
from .run import RunFolder
from .strategies import find_strategy
from .strategies.contrastive import body_recipe

if TYPE_CHECKING:
    from .recipe import Recipe

logger = get_logger(__name__)


def body_stage(recipe: "Recipe", run, splits, encoded, tokenizer, accelerator, listeners_for):
    """Train the body on pairs of the training rows in run/body/ (done once: a resumed run reuses it, or resumes its
    training from its last checkpoint); returns the encoder folder the classifier then loads."""
    from accelerate.utils import set_seed

    from .train.loop import fit

    folder = RunFolder(run.path("body"))
    encoder = folder.path("encoder")
    if folder.path("metrics").exists() and encoder.is_dir():
        return models.ResolvedModel(str(encoder), str(encoder))
    if accelerator.num_processes > 1:
        raise RecipeError("strategy contrastive trains on one process: its batches hold each text once, with the "
                          "pairs as positions into them, which splitting a batch across processes would break")
    if accelerator.is_main_process:
        folder.root.mkdir(exist_ok=True)
        if not (folder.path("checkpoints") / "last").exists() and folder.path("log").exists():
            folder.truncate_log(0)  # stopped before its first checkpoint: it starts over
    c, loop = recipe.contrastive, body_recipe(recipe)
    pad_id = tokenizer.pad_token_id or 0
    pairs = TextPairs(encoded["train"], c.iterations, recipe.training.seed, pad_id, c.pairs, c.all_pairs)
    set_seed(recipe.training.seed)
    net, new = models.load_classifier(models.resolve(recipe.model, recipe.model_revision), splits.label_map,
                                      recipe.trust_remote_code)
    prepared = find_strategy(c.body).prepare(net, loop, new)
    logger.info(f"contrastive: the body ({c.body}, {prepared.trainable:,} trainable parameters) on {len(pairs):,} pairs "
                f"of {len(encoded['train'])} labelled texts ({c.iterations} rounds"
                + (f", {c.pairs:,} kept" if c.pairs else "")
                + ("; the loss over every two texts of a batch" if c.all_pairs else "") + f"), lr {c.lr:g}")
    if accelerator.is_main_process:
        folder.write_text("recipe", loop.to_yaml())
    result = fit(prepared, pairs, None, loop, splits.label_map.names, pad_id, accelerator, folder, resume=True,
                 listeners=listeners_for(folder))
    accelerator.free_memory()
    log = [r for r in folder.read_log() if "loss" in r] if folder.path("log").exists() else []
    metrics = {"body": c.body, "pairs": len(pairs), "same_label_pairs": int(sum(pairs.labels)), "steps": result.steps,
               "loss": {"first": log[0]["loss"] if log else None, "last": log[-1]["loss"] if log else None},
               "train_seconds": round(result.train_seconds, 3)}
    if accelerator.is_main_process:
        net = result.model.net
        merged = merge_adapter(net) if find_strategy(c.body).adapter else net
        with writing(encoder), atomic_dir(encoder) as tmp:
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        folder.write_json("metrics", metrics)
    accelerator.wait_for_everyone()
    logger.info(f"contrastive: pair loss {metrics['loss']['first']} -> {metrics['loss']['last']} in {result.steps} "
                f"steps; body saved to {encoder}")
    return models.ResolvedModel(str(encoder), str(encoder))
