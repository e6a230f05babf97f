"""TrainState, the loop's position and history, and the checkpoints that make a resumed run exact:
checkpoints/last (model, optimizer, scheduler and RNG states through Accelerate, plus trainer_state.json) and
checkpoints/best (the trainable weights of the best evaluation)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import torch

from ..logs import get_logger
from ..run import RunFolder, atomic_dir

logger = get_logger(__name__)
STATE_FILE = "trainer_state.json"


@dataclass
class TrainState:
    """Where training is (optimizer step, epoch, batch within it) and what it has seen; saved with each checkpoint."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  #: batches of the current epoch already used
    best: float | None = None  #: the best validation score so far
    best_step: int = 0
    bad_evals: int = 0  #: evaluations since the best one
    seen: int = 0  #: training examples seen, over all processes
    seconds: float = 0.0  #: training time before this process started (a resumed run continues the clock)
    history: list[dict] = field(default_factory=list)  #: evaluation records

    @classmethod
    def from_json(cls, text: str) -> "TrainState":
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def best_record(self) -> dict | None:
        """The validation metrics of the best evaluation."""
        if self.best is None:
            return None
        return next((r["eval"] for r in self.history if r["step"] == self.best_step), {})


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Copies of the parameters that train, by name."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(accelerator, run: RunFolder, state: TrainState) -> None:
    """checkpoints/last: everything needed to resume exactly (model, optimizer, scheduler, RNG, data position)."""
    target = run.path("checkpoints") / "last"
    tmp = run.path("checkpoints") / f".last.{state.step}.tmp"
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(state.to_json())
        with atomic_dir(target) as staged:
            staged.rmdir()
            tmp.rename(staged)
    accelerator.wait_for_everyone()


def save_best(accelerator, run: RunFolder | None, model) -> dict[str, torch.Tensor]:
    """The trainable weights of `model`, also written to checkpoints/best (main process)."""
    state = trainable_state(accelerator.unwrap_model(model))
    if run is not None and accelerator.is_main_process:
        from safetensors.torch import save_file

        with atomic_dir(run.path("checkpoints") / "best") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "trainable.safetensors"))
    return state


def load_checkpoint(accelerator, run: RunFolder) -> tuple[TrainState, dict[str, torch.Tensor] | None] | None:
    """The state and best weights of checkpoints/last (loading model, optimizer, scheduler, RNG), or None."""
    last = run.path("checkpoints") / "last"
    if not (last / STATE_FILE).exists():
        return None
    accelerator.load_state(str(last))
    state = TrainState.from_json((last / STATE_FILE).read_text())
    best_file = run.path("checkpoints") / "best" / "trainable.safetensors"
    best = None
    if best_file.exists():
        from safetensors.torch import load_file

        best = load_file(str(best_file))
    logger.info(f"resumed from step {state.step} (epoch {state.epoch + 1}, batch {state.batch})")
    return state, best


def load_weights(model, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` (by parameter name) into `model`."""
    current = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            current[name].copy_(value.to(current[name].device))
