"""The body stage of strategy contrastive (few-shot, SetFit's method): the encoder, all of it or an adapter, learns
from pairs of the labelled texts through the one loop, into body/ in the run folder (an encoder stage: its own recipe,
log, checkpoints and metrics, and the trained encoder, an adapter merged into it); the pipeline then loads the
classifier from that encoder and trains its head (strategies/contrastive.py)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import models
from .batching import TextPairs
from .errors import RecipeError
from .logs import get_logger
from .models import merge_adapter
from .run import RunFolder
from .strategies.registry import find_strategy
from .train.encoder_stage import EncoderJob, encoder_stage, register_encoder_stage
from .train.settings import LoopSettings

if TYPE_CHECKING:
    from .recipe import Recipe
    from .run_context import RunContext
    from .train.loop import FitResult

logger = get_logger(__name__)


def body_stage(ctx: "RunContext") -> models.ResolvedModel:
    """Train the body on pairs of the training rows in run/body/ (done once: a resumed run reuses it, or resumes its
    training from its last checkpoint); returns the encoder folder the classifier then loads."""
    folder = RunFolder(ctx.run.path("body"))
    if ctx.accelerator.num_processes > 1 and not folder.path("metrics").exists():
        raise RecipeError("strategy contrastive trains on one process: its batches hold each text once, with the "
                          "pairs as positions into them, which splitting a batch across processes would break")
    encoder, metrics = encoder_stage(folder, ctx.accelerator, lambda: _body_job(ctx, folder), ctx.listeners_for(folder))
    if metrics is not None:
        logger.info(f"contrastive: pair loss {metrics['loss']['first']} -> {metrics['loss']['last']} in "
                    f"{metrics['steps']} steps; body saved to {encoder.path}")
    return encoder


def _body_job(ctx: "RunContext", folder: RunFolder) -> EncoderJob:
    """The encoder stage's job of the body: the pairs, the body strategy's prepared model, the loop's settings."""
    from accelerate.utils import set_seed

    recipe, c = ctx.recipe, ctx.recipe.contrastive
    pad_id = ctx.tokenizer.pad_token_id or 0
    pairs = TextPairs(ctx.encoded["train"], c.iterations, recipe.training.seed, pad_id, c.pairs, c.all_pairs)
    set_seed(recipe.training.seed)
    net, new = models.load_classifier(models.resolve(recipe.model, recipe.model_revision), ctx.splits.label_map,
                                      recipe.trust_remote_code)
    body = find_strategy(c.body)
    prepared = body.prepare(net, body_recipe(recipe), new)
    logger.info(f"contrastive: the body ({c.body}, {prepared.trainable:,} trainable parameters) on {len(pairs):,} pairs "
                f"of {len(ctx.encoded['train'])} labelled texts ({c.iterations} rounds"
                + (f", {c.pairs:,} kept" if c.pairs else "")
                + ("; the loss over every two texts of a batch" if c.all_pairs else "") + f"), lr {c.lr:g}")

    def summary(result: "FitResult") -> dict:
        log = [r for r in folder.read_log() if "loss" in r] if folder.path("log").exists() else []
        return {"body": c.body, "pairs": len(pairs), "same_label_pairs": int(sum(pairs.labels)),
                "steps": result.steps, "loss": {"first": log[0]["loss"] if log else None,
                                                "last": log[-1]["loss"] if log else None},
                "train_seconds": round(result.train_seconds, 3)}

    def save(trained, tmp: Path) -> None:
        (merge_adapter(trained.net) if body.adapter else trained.net).save_pretrained(tmp, safe_serialization=True)
        ctx.tokenizer.save_pretrained(tmp)

    settings = body_settings(LoopSettings.from_recipe(recipe), recipe)
    return EncoderJob(prepared, pairs, settings, pad_id, recipe, summary, save, ctx.splits.label_map.names)


def body_recipe(recipe: "Recipe") -> "Recipe":
    """The recipe the body is prepared with: contrastive.body as the strategy, at contrastive.lr."""
    c = recipe.contrastive
    return recipe.replace(**{"strategy": c.body, "training.lr": c.lr, "training.head_lr": None})


def body_settings(settings: LoopSettings, recipe: "Recipe") -> LoopSettings:
    """The loop's settings of the body on pairs: the contrastive budget, the cosine_pairs objective alone, no
    evaluation."""
    c = recipe.contrastive
    return replace(settings, epochs=c.epochs, batch_size=c.batch_size, objectives={"cosine_pairs": 1.0},
                   class_weights=False, eval_every=0, early_stopping=0)


register_encoder_stage("pairs", body_stage)
