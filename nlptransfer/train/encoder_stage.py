"""The encoder stage: an encoder trained through the one loop in a run folder of its own (masked-LM pretraining of
adapt.method mlm, contrastive's body on pairs), before a classifier loads from it. Written once for both: done once
(a finished folder is reused), resumed exactly from its last checkpoint, and its encoder saved atomically. A
strategy names the stage it needs (Strategy.encoder_stage) among those registered here by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import models
from ..errors import RecipeError
from ..registry import Registry, origin
from ..fsio import atomic_dir, writing
from ..run import RunFolder
from .settings import LoopSettings

if TYPE_CHECKING:
    from .loop import FitResult
    from torch import nn

    from ..recipe import Recipe
    from ..strategies.registry import Prepared


#: name -> (run context) -> the trained encoder; filled by register_encoder_stage
_STAGES: Registry[Callable] = Registry("encoder stage")


def register_encoder_stage(name: str, stage: Callable) -> None:
    """Register `stage(run context) -> models.ResolvedModel` as the encoder stage `name`; RegistryError naming both
    when the name is taken."""
    _STAGES.add(name, stage, origin(stage))


def get_encoder_stage(name: str) -> Callable:
    """The registered encoder stage `name`."""
    if name not in _STAGES:
        raise RecipeError(f"no encoder stage '{name}' is registered (known: {', '.join(_STAGES.names()) or 'none'})")
    return _STAGES[name]


@dataclass
class EncoderJob:
    """What an encoder stage trains, and how its result is measured and saved."""

    prepared: "Prepared"
    data: Any  #: the training rows (a Dataset the loop reads)
    settings: LoopSettings
    pad_id: int
    recipe: "Recipe"  #: the recipe the stage comes from, saved as its folder's recipe.yaml
    summary: Callable[["FitResult"], dict]  #: the stage's metrics (its metrics.json) from the loop's result
    save: Callable[["nn.Module", Path], None]  #: writes the trained encoder's files (weights, tokenizer) into a folder
    names: Any = ()  #: the label names the loop is given


def encoder_stage(folder: RunFolder, accelerator, build: Callable[[], EncoderJob], listeners=()
                  ) -> tuple[models.ResolvedModel, dict | None]:
    """The encoder trained by the job `build()` makes, in `folder` (folder/encoder, a model folder a classifier or a
    recipe's `model:` loads), and the stage's metrics: reused when the folder already holds it (metrics None), else
    trained (resuming from the folder's last checkpoint) and saved."""
    from .loop import fit

    encoder = folder.path("encoder")
    done = models.ResolvedModel(str(encoder), str(encoder))
    if folder.path("metrics").exists() and encoder.is_dir():
        return done, None
    main = accelerator.is_main_process
    if main:
        folder.root.mkdir(exist_ok=True)
        if not (folder.path("checkpoints") / "last").exists() and folder.path("log").exists():
            folder.truncate_log(0)  # stopped before its first checkpoint: it starts over
    accelerator.wait_for_everyone()
    job = build()
    if main:
        folder.write_text("recipe", job.recipe.to_yaml())
    result = fit(job.prepared, job.data, None, job.settings, job.names, job.pad_id, accelerator, folder, resume=True,
                 listeners=listeners)
    metrics = job.summary(result)
    accelerator.free_memory()  # forget the prepared model, optimizer and loaders: the next fit checkpoints its own only
    if main:
        with writing(encoder), atomic_dir(encoder) as tmp:
            job.save(result.model, Path(tmp))
        folder.write_json("metrics", metrics)
    accelerator.wait_for_everyone()
    return done, metrics
