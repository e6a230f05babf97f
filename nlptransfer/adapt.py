"""Domain adaptation (recipe `adapt:`) from the unlabelled texts of the domain the model will serve.

- mmd: the target texts are a second batch stream; cross-entropy on source batches + adapt.weight x multi-kernel MMD
  between the pooled features of each source batch and a target batch (objectives/mmd.py), in the one loop.
- mlm: masked-LM pretraining of the encoder on the target texts first (`pretrain`: the one loop with the mlm
  objective), saved as a model folder (`encoder/`) that any recipe can name as `model:`; then the recipe's strategy
  on the source labels from that encoder. `nlptransfer adapt` runs the pretraining alone.
- mlm+ce (UDALM): the target stream's batches come masked, and adapt.weight x their masked-LM loss is added to the
  cross-entropy on source batches in the one loop, through a masked-LM head attached to the classifier's encoder.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import models
from .adaptation import ADAPT_OBJECTIVES
from .batching import BatchStream, Collator, MaskedTexts, MaskingCollator
from .tokens import tokenize
from .data import DataSpec
from .data.unlabelled import read_texts
from .errors import DataError, RecipeError
from .logs import get_logger
from .objectives.registry import TARGET_STREAM
from .recipe import Recipe
from .run import RunFolder
from .train.settings import LoopSettings

if TYPE_CHECKING:
    from .train.encoder_stage import EncoderJob
    from .train.loop import FitResult

logger = get_logger(__name__)

#: texts of the pretraining set held out to measure the masked-LM loss before and after (at most)
HELD_OUT = 200


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
        raise DataError(f"adapt.target {a.target} has {len(texts)} non-empty texts: adaptation compares and learns "
                        "from batches of target texts, so it needs at least 2 (hundreds to be useful)")
    logger.info(f"adapting to {len(texts)} unlabelled target texts from {a.target} (method {a.method}"
                + (f", weight {a.weight:g})" if a.method in ADAPT_OBJECTIVES else ")"))
    return texts


def target_stream(recipe: Recipe, texts: list[str], tokenizer, limit: int) -> dict[str, BatchStream] | None:
    """The target texts as the loop's second batch stream (a pure function of seed, epoch and position: a resumed
    run sees the same target batches, masked the same way for mlm+ce); None for a method without one (mlm)."""
    a = recipe.adapt
    if a.method not in ADAPT_OBJECTIVES:
        return None
    data = tokenize(tokenizer, texts, limit)  # no labels: an Encoded of token ids only
    collate = (MaskingCollator(tokenizer, a.mask_rate, recipe.training.seed + 1) if a.method == "mlm+ce"
               else Collator(tokenizer.pad_token_id or 0))
    return {TARGET_STREAM: BatchStream(data, data.lengths, a.batch_size or recipe.training.batch_size, collate,
                                       seed=recipe.training.seed + 1, group_by_length=recipe.training.group_by_length)}


def loop_settings(recipe: Recipe, settings: LoopSettings) -> LoopSettings:
    """The loop's settings with the adaptation term added to its objectives, when the recipe adapts in the loop."""
    term = ADAPT_OBJECTIVES.get(recipe.adapt.method) if recipe.adapt.target is not None else None
    if term is None:
        return settings
    return replace(settings, objectives={**settings.objectives, term: recipe.adapt.weight})


def attach_mlm_head(prepared, base: models.ResolvedModel, recipe: Recipe) -> None:
    """mlm+ce: a masked-LM head on `prepared.model`'s encoder (the checkpoint's own head, or a new one tied to the
    word embeddings), its parameters added to what trains. Training only: the run saves the classifier alone."""
    if recipe.adapt.target is None or recipe.adapt.method != "mlm+ce":
        return
    from .model import MlmHead

    masked_lm, new = models.load_masked_lm(base, recipe.trust_remote_code)
    try:
        head = MlmHead(masked_lm, prepared.model.core.get_input_embeddings())
    except ValueError as e:
        raise RecipeError(f"adapt.method mlm+ce: {e}") from None
    del masked_lm
    head.to(next(prepared.model.parameters()).device)
    prepared.model.mlm_head = head
    known = {id(p) for g in prepared.param_groups for p in g["params"]}
    params = [p for p in head.parameters() if p.requires_grad and id(p) not in known]
    lr = prepared.param_groups[0]["lr"]
    prepared.param_groups.append({"params": params, "lr": lr, "weight_decay": recipe.training.weight_decay})
    prepared.trainable += sum(p.numel() for p in params)
    prepared.total += sum(p.numel() for p in params)
    logger.info(f"mlm+ce: a masked-LM head ({'new' if new else 'from the checkpoint'}) on the encoder, "
                f"{sum(p.numel() for p in params):,} more parameters train")


def pretraining_texts(recipe: Recipe, target: list[str], source: list[str]) -> tuple[list[str], list[str]]:
    """(texts to pretrain on, held-out target texts to measure the masked-LM loss on): a seeded share of the
    target texts is held out; the source training texts join when adapt.include_source."""
    order = list(range(len(target)))
    random.Random(recipe.training.seed).shuffle(order)
    held = min(HELD_OUT, len(target) // 10)
    train = [target[i] for i in order[held:]] + (list(source) if recipe.adapt.include_source else [])
    return train, [target[i] for i in order[:held]]


def pretrain(recipe: Recipe, texts: list[str], held_out: list[str], folder: RunFolder, accelerator, *,
             steps: int | None = None, listeners=()) -> models.ResolvedModel:
    """Masked-LM pretraining of the recipe's encoder on `texts` in `folder` (checkpoints, train log, and the result
    as folder/encoder, a model folder a recipe names as `model:`), through the one loop with the mlm objective, for
    `steps` steps (None: adapt.steps, else adapt.epochs); done once, resumed exactly. Its metrics.json holds the
    masked-LM loss on `held_out` before and after."""
    from .train.encoder_stage import encoder_stage

    encoder, metrics = encoder_stage(folder, accelerator,
                                     lambda: _pretraining(recipe, texts, held_out, accelerator, steps), listeners)
    if metrics is not None:
        loss = metrics["masked_lm_loss"]
        logger.info(f"masked-LM loss on {len(held_out)} held-out target texts: {loss['before']} -> {loss['after']}; "
                    f"encoder saved to {folder.path('encoder')}")
    return encoder


def _pretraining(recipe: Recipe, texts: list[str], held_out: list[str], accelerator, steps: int | None) -> "EncoderJob":
    """The encoder stage's job of masked-LM pretraining (the model, its masked texts, the loop's settings)."""
    from .model import MaskedLM
    from .strategies.registry import Prepared
    from .train.encoder_stage import EncoderJob

    a, started = recipe.adapt, time.perf_counter()
    base = models.resolve(recipe.model, recipe.model_revision)
    tokenizer = models.load_tokenizer(base, recipe.trust_remote_code)
    limit = models.max_length(tokenizer, models.load_config(base, recipe.trust_remote_code), recipe.data.max_length)
    net, new = models.load_masked_lm(base, recipe.trust_remote_code)
    try:
        model = MaskedLM(net)
        collate = MaskingCollator(tokenizer, a.mask_rate, recipe.training.seed)
    except ValueError as e:
        raise RecipeError(f"adapt.method mlm: {e}") from None
    data = MaskedTexts(tokenize(tokenizer, texts, limit), collate)
    held = (MaskedTexts(tokenize(tokenizer, held_out, limit), MaskingCollator(tokenizer, a.mask_rate, recipe.training.seed))
            if held_out else None)  # its own collator: the same masks before and after
    settings = _pretraining_settings(recipe, len(texts), a.steps if steps is None else steps)
    groups = _groups(net, recipe, math.ceil(settings.epochs * _updates(recipe, len(texts))))
    prepared = Prepared(model, groups, sum(p.numel() for g in groups for p in g["params"]),
                        sum(p.numel() for p in net.parameters()))
    logger.info(f"masked-LM pretraining of {recipe.model} on {len(texts)} texts ({len(held_out)} held out), "
                f"{'new' if new else 'its own'} masked-LM head, mask rate {a.mask_rate:g}, lr {a.lr:g}, "
                f"{math.ceil(settings.epochs * math.ceil(len(texts) / settings.batch_size))} steps")
    before = masked_lm_loss(model, held, settings.eval_batch_size, accelerator.device)

    def summary(result: "FitResult") -> dict:
        after = masked_lm_loss(result.model, held, settings.eval_batch_size, accelerator.device)
        return {"method": a.method, "model": recipe.model, "texts": len(texts), "held_out": len(held_out),
                "new_head_weights": len(new), "head_warmup_steps": a.head_warmup_steps, "mask_rate": a.mask_rate,
                "steps": result.steps, "masked_lm_loss": {"before": before, "after": after},
                "train_seconds": round(result.train_seconds, 3), "seconds": round(time.perf_counter() - started, 3)}

    def save(trained, folder: Path) -> None:
        trained.net.save_pretrained(folder, safe_serialization=True)
        if not any(p.requires_grad for p in trained.net.base_model.parameters()):
            _keep_pooler(base, trained.net, folder, recipe.trust_remote_code)
        tokenizer.save_pretrained(folder)

    return EncoderJob(prepared, data, settings, tokenizer.pad_token_id or 0, recipe, summary, save)


def _keep_pooler(base: models.ResolvedModel, masked_lm, folder: Path, trust_remote_code: bool) -> None:
    """Copy the base checkpoint's encoder weights that a masked-LM model leaves out (BERT's pooler, which its
    classification head reads) into the saved encoder, so that a classifier loaded from it starts from them. Done
    when the encoder stayed as it was (mlm+ce's head warm-up). After `mlm` moved the encoder, the pooler is left out
    and the classifier makes a new one, like its head: the old pooler, fitted to the old first-token states,
    measured worse (books->electronics, seeds 42-44, 1 epoch: target 81.2% against 83.5%, source 79.4% against
    83.7%)."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    weights = folder / "model.safetensors"
    if not weights.is_file():  # sharded: a model this size has its own pooler story; nothing to add here
        return
    bare = AutoModel.from_pretrained(base.path, revision=base.revision, trust_remote_code=trust_remote_code)
    present = set(masked_lm.base_model.state_dict())
    missing = {f"{masked_lm.base_model_prefix}.{k}": v.contiguous() for k, v in bare.state_dict().items()
               if k not in present}
    if missing:
        save_file({**load_file(str(weights)), **missing}, str(weights), metadata={"format": "pt"})


def _pretraining_settings(recipe: Recipe, n_texts: int, steps: int | None) -> LoopSettings:
    """The loop's settings of masked-LM pretraining: the mlm objective alone, the adapt budget, no evaluation."""
    a, updates = recipe.adapt, _updates(recipe, n_texts)
    epochs = (steps - 1e-6) / updates if steps else a.epochs  # the loop runs ceil(epochs x updates) steps
    return replace(LoopSettings.from_recipe(recipe), epochs=epochs,
                   batch_size=a.batch_size or recipe.training.batch_size, objectives={"mlm": 1.0}, class_weights=False,
                   eval_every=0, early_stopping=0)


def _updates(recipe: Recipe, n_texts: int) -> int:
    """Optimizer steps per epoch of masked-LM pretraining on `n_texts`."""
    size = recipe.adapt.batch_size or recipe.training.batch_size
    return math.ceil(math.ceil(n_texts / size) / recipe.training.grad_accum)


def _groups(net, recipe: Recipe, steps: int) -> list[dict]:
    """Parameter groups of masked-LM pretraining: everything trains at adapt.lr (matrices weight-decayed); the
    encoder's groups hold still for adapt.head_warmup_steps while the head alone trains. When that is every one of
    the `steps`, the encoder is frozen instead (no gradient computed for it: the head trains at a third of the cost)."""
    hold = recipe.adapt.head_warmup_steps
    if hold >= steps:
        net.base_model.requires_grad_(False)
    encoder = {id(p) for p in net.base_model.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for p in net.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in encoder, p.ndim >= 2), []).append(p)
    return [{"params": ps, "lr": recipe.adapt.lr, "weight_decay": recipe.training.weight_decay if decayed else 0.0,
             "hold_steps": hold if in_encoder else 0} for (in_encoder, decayed), ps in groups.items()]


@torch.no_grad()
def masked_lm_loss(model, data: MaskedTexts | None, batch_size: int, device) -> float | None:
    """The mean masked-LM cross-entropy per masked token over `data` (masks as the collator draws them: the same
    for the same texts), in eval mode; None without data."""
    if data is None or not len(data):
        return None
    was_training = model.training
    model.eval().to(device)
    total, count = 0.0, 0
    order = sorted(range(len(data)), key=lambda i: data.lengths[i])
    for start in range(0, len(order), batch_size):
        batch = data.collate([data[i] for i in order[start:start + batch_size]])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       mlm_mask=batch["mlm_mask"])["mlm_logits"]
        target = batch["labels"][batch["mlm_mask"]]
        total += float(torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum"))
        count += len(target)
    model.train(was_training)
    return round(total / max(1, count), 4)


def adapted_encoder(recipe: Recipe, run: RunFolder, target: list[str] | None, source: list[str], accelerator,
                    listeners=()) -> models.ResolvedModel | None:
    """adapt.method mlm: the encoder pretrained on the target texts in run/adapt/ (done once: a resumed run reuses
    it, or resumes its pretraining from its last checkpoint), as the model the classifier then loads. mlm+ce with
    adapt.head_warmup_steps: the same pretraining with the encoder held still throughout, so that only the masked-LM
    head learns before the joint loop (a new head's loss starts near 11 and its gradient, 13x cross-entropy's on
    MiniLM, would swamp the classifier's under gradient clipping). None for other methods."""
    a = recipe.adapt
    if target is None or not (a.method == "mlm" or (a.method == "mlm+ce" and a.head_warmup_steps)):
        return None
    texts, held_out = pretraining_texts(recipe, target, source)
    return pretrain(recipe, texts, held_out, RunFolder(run.path("adapt")), accelerator,
                    steps=a.head_warmup_steps if a.method == "mlm+ce" else None, listeners=listeners)
