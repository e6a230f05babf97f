"""TrainState, the loop's position and history, and the checkpoints that make a resumed run exact:
checkpoints/last (model, optimizer, scheduler and RNG states through Accelerate, plus trainer_state.json) and
checkpoints/best (the trainable weights of the best evaluation)."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields

import torch

from ..logs import get_logger
from ..errors import RunError
from ..fsio import atomic_dir, digest_problem, file_digests, writing
from ..run import RunFolder

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
    """checkpoints/last: everything needed to resume exactly (model, optimizer, scheduler, RNG, data position), with
    the sha256 of every part in trainer_state.json so that a damaged part is found before a resume uses it."""
    target = run.path("checkpoints") / "last"
    tmp = run.path("checkpoints") / f".last.{state.step}.tmp"
    try:
        with writing(f"the checkpoint {target}"):
            hook = accelerator.register_save_state_pre_hook(_keep_trained)
            try:
                accelerator.save_state(str(tmp), safe_serialization=True)
            finally:
                hook.remove()
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                parts = file_digests(tmp)
                (tmp / STATE_FILE).write_text(json.dumps({**json.loads(state.to_json()), "parts": parts}))
                with atomic_dir(target) as staged:
                    staged.rmdir()
                    tmp.rename(staged)
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()


def _keep_trained(models, weights: list[dict], output_dir) -> None:
    """Accelerate's save-state hook: each model's weights in the checkpoint are the parameters that train; the frozen
    rest is what the run loads its model from. A head on a frozen MiniLM otherwise wrote its 91 MB encoder again at
    every checkpoint (each epoch: 0.14-0.21 s each here; about 1.2 s of a 13-14 s few-shot run at 8 rows per class)."""
    for i, model in enumerate(models):
        trained = {name for name, p in model.named_parameters() if p.requires_grad}
        if len(trained) < len(weights[i]):
            weights[i] = {k: v for k, v in weights[i].items() if k in trained}


def _check_trained_weights(accelerator, last) -> None:
    """Every parameter that trains has its weights in the checkpoint (which may hold the frozen ones too: older
    checkpoints do); RunError naming the first missing ones otherwise."""
    from safetensors import safe_open

    for i, model in enumerate(accelerator._models):
        path = last / ("model.safetensors" if i == 0 else f"model_{i}.safetensors")
        if not path.is_file():
            continue  # a .bin checkpoint: loaded strictly by Accelerate's own path
        with safe_open(str(path), framework="pt") as f:
            held = set(f.keys())
        missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in held]
        if missing:
            raise RunError(f"{path} lacks the weights of {len(missing)} parameters that train "
                           f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): it was saved by a run "
                           "of another strategy or model; run again without --resume")


def save_best(accelerator, run: RunFolder | None, model) -> dict[str, torch.Tensor]:
    """The trainable weights of `model`, also written to checkpoints/best (main process)."""
    state = trainable_state(accelerator.unwrap_model(model))
    if run is not None and accelerator.is_main_process:
        from safetensors.torch import save_file

        with writing(run.path("checkpoints") / "best"), atomic_dir(run.path("checkpoints") / "best") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "trainable.safetensors"))
    return state


def load_checkpoint(accelerator, run: RunFolder) -> tuple[TrainState, dict[str, torch.Tensor] | None] | None:
    """The state and best weights of checkpoints/last (loading model, optimizer, scheduler, RNG), or None when the
    run has no checkpoint. RunError when any part is missing or damaged: a resume is exact, or it does not start."""
    last = run.path("checkpoints") / "last"
    if not last.exists():
        return None
    state, parts = _verified_state(last, accelerator.process_index)
    _check_trained_weights(accelerator, last)
    try:
        accelerator.load_state(str(last), strict=False)  # the frozen weights are the loaded model's own
    except Exception as e:  # a part that passed its checksum but cannot be read (another library version...)
        raise RunError(f"cannot resume from {last}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    best_file = run.path("checkpoints") / "best" / "trainable.safetensors"
    best = None
    if best_file.exists():
        from safetensors.torch import load_file

        try:
            best = load_file(str(best_file))
        except Exception as e:  # SafetensorError: a truncated or damaged file
            raise RunError(f"{best_file} is damaged ({str(e).splitlines()[0][:200]}): the best weights cannot be "
                           "restored; run again without --resume") from None
    logger.info(f"resumed from step {state.step} (epoch {state.epoch + 1}, batch {state.batch})")
    return state, best


def _verified_state(last, process_index: int) -> tuple[TrainState, dict]:
    """trainer_state.json of checkpoints/last, after checking every part it lists against its sha256."""
    fix = "the checkpoint cannot be resumed exactly; run again without --resume (a new folder)"
    state_file = last / STATE_FILE
    if not state_file.is_file():
        raise RunError(f"{last} has no {STATE_FILE}: the checkpoint is incomplete; {fix}")
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
        state = TrainState.from_json(state_file.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as e:
        raise RunError(f"{state_file} is damaged ({e}); {fix}") from None
    parts = data.get("parts")
    if parts is None:  # a checkpoint of an older nlptransfer: it has no checksums to check
        return state, {}
    problem = digest_problem(last, parts)
    if problem is not None:
        path, what = problem
        raise RunError(f"{path} is missing from the checkpoint; {fix}" if what == "missing" else
                       f"{path} is damaged (its sha256 differs from the one recorded when it was saved); {fix}")
    rng = f"random_states_{process_index}.pkl"
    if rng not in parts:
        raise RunError(f"{last} holds no {rng}: it was saved by a run with another number of processes; resume it "
                       "with the same number")
    return state, parts


def load_weights(model, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` (by parameter name) into `model`."""
    current = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            current[name].copy_(value.to(current[name].device))
