"""THE training loop, on Accelerate: accumulation, mixed precision, schedule, evaluation, early stopping,
best checkpoint and exact resume. Strategies only change what trains and whether features are cached."""
from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from .batching import Collator, Encoded, Features, LengthGroupedBatches, States, collate_features
from .cpu import cpu_training
from .metrics import classification_metrics
from .recipe import Recipe
from .run import RunFolder, atomic_dir
from .strategies import Prepared


@dataclass
class FitResult:
    """What training produced: the trained model (unwrapped, best weights loaded) and its history."""

    model: torch.nn.Module
    best: dict | None  # validation metrics of the best evaluation
    best_step: int
    steps: int
    train_seconds: float
    examples_seen: int
    history: list[dict] = field(default_factory=list)


def make_accelerator(recipe: Recipe):
    """An Accelerator for this recipe: batches split across processes so a step sees batch_size examples."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    precision = recipe.training.mixed_precision
    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "no"
    # with no accelerator, say so: Accelerate then runs processes started by torchrun on gloo (MULTI_CPU)
    cpu_only = not (torch.cuda.is_available() or torch.backends.mps.is_available()
                    or (hasattr(torch, "xpu") and torch.xpu.is_available()))
    return Accelerator(mixed_precision=precision, cpu=cpu_only,
                       dataloader_config=DataLoaderConfiguration(split_batches=True))


class _Indexed(torch.utils.data.Dataset):
    """Adds each example's position so gathered predictions can be put back in file order."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return {**self.inner[i], "index": i}


def _collate(inner):
    def collate(items):
        batch = inner([{k: v for k, v in it.items() if k != "index"} for it in items])
        batch["index"] = torch.tensor([it["index"] for it in items])
        return batch
    return collate


def _own_generator() -> torch.Generator:
    """A loader's own generator: starting an epoch must not draw from the global RNG that dropout uses, or a
    run resumed mid-epoch would see different dropout masks than an uninterrupted one."""
    return torch.Generator().manual_seed(0)


def eval_loader(data, batch_size: int, pad_id: int) -> DataLoader:
    """Batches for evaluation/prediction: longest first, with each row's index."""
    if isinstance(data, Features):
        lengths, collate = [1] * len(data), collate_features
    else:
        lengths, collate = data.lengths, Collator(pad_id)
    sampler = LengthGroupedBatches(lengths, batch_size, seed=0, shuffle=False)
    return DataLoader(_Indexed(data), batch_sampler=sampler, collate_fn=_collate(collate), generator=_own_generator())


@torch.no_grad()
def predict_logits(model, loader, accelerator=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and row indices, in file order, for every row the loader yields (gathered across processes)."""
    model.eval()
    all_logits, all_index = [], []
    for batch in loader:
        index = batch.pop("index")
        batch.pop("labels", None)
        logits = model(**batch).float()
        if accelerator is not None:
            logits, index = accelerator.gather_for_metrics((logits, index))
        all_logits.append(logits.cpu())
        all_index.append(index.cpu())
    if not all_logits:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    logits, index = torch.cat(all_logits), torch.cat(all_index)
    order = torch.argsort(index)
    return logits[order].numpy(), index[order].numpy()


@torch.no_grad()
def cache_features(model, encoded: Encoded, batch_size: int, pad_id: int, device) -> Features:
    """Run the frozen encoder once over `encoded`; the head then trains on these outputs (exact: eval mode)."""
    model.eval()
    loader = eval_loader(encoded, batch_size, pad_id)
    out = [None] * len(encoded)
    for batch in loader:  # the loader has its own generator: caching leaves the training RNG stream as it was
        feats = model.encode(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()
        for row, i in enumerate(batch["index"].tolist()):
            out[i] = feats[row]
    return Features(torch.stack(out), encoded.labels)


#: the most memory cached frozen-layer states may take, as a share of the memory available when caching
STATES_MEMORY_SHARE = 0.25


def states_bytes(model, encoded: Encoded) -> int:
    """Memory the cached hidden states of `encoded` take (float32, unpadded)."""
    return sum(encoded.lengths) * model.core.config.hidden_size * 4


def states_fit_in_memory(model, parts: list[Encoded], log=print) -> bool:
    """True when the cached states of every part fit in STATES_MEMORY_SHARE of the available memory."""
    import psutil

    need = sum(states_bytes(model, part) for part in parts)
    allowed = STATES_MEMORY_SHARE * psutil.virtual_memory().available
    if need > allowed:
        log(f"not caching the frozen layers' output: it would take {need / 2**30:.1f} GiB, more than "
            f"{allowed / 2**30:.1f} GiB ({STATES_MEMORY_SHARE:.0%} of the available memory); training runs them each step")
    return need <= allowed


@torch.no_grad()
def cache_states(model, encoded: Encoded, batch_size: int, pad_id: int, device) -> States:
    """Run the frozen bottom layers once over `encoded`; the top layers then train from their output (exact:
    frozen layers run in eval mode, and padding is masked out of attention)."""
    model.eval()
    lengths = encoded.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    states = torch.empty((offsets[-1], model.core.config.hidden_size))
    for batch in eval_loader(encoded, batch_size, pad_id):
        hidden = model.frozen_states(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()
        for row, i in enumerate(batch["index"].tolist()):
            states[offsets[i]:offsets[i + 1]] = hidden[row, :lengths[i]]
    return States(encoded, states, offsets)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(1, keepdims=True)


def evaluate(model, loader, labels: list[int], names, accelerator=None) -> tuple[dict, np.ndarray]:
    """Metrics and class probabilities of `model` on the rows of `loader`."""
    logits, _ = predict_logits(model, loader, accelerator)
    probs = softmax(logits)
    metrics = classification_metrics(labels, probs.argmax(1), names, probs)
    gold = torch.tensor(labels)
    metrics["loss"] = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), gold)) if len(labels) else 0.0
    return metrics, probs


def class_weights(labels: list[int], n: int) -> torch.Tensor:
    """Inverse-frequency weights, averaging 1 over the examples."""
    counts = np.bincount(labels, minlength=n).astype(float)
    weights = np.where(counts > 0, len(labels) / (n * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(accelerator, run: RunFolder, state: dict) -> None:
    """checkpoints/last: everything needed to resume exactly (model, optimizer, scheduler, RNG, data position)."""
    target = run.path("checkpoints") / "last"
    tmp = run.path("checkpoints") / f".last.{state['step']}.tmp"
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        with atomic_dir(target) as staged:
            staged.rmdir()
            tmp.rename(staged)
    accelerator.wait_for_everyone()


def _save_best(accelerator, run: RunFolder | None, model) -> dict[str, torch.Tensor]:
    state = _trainable_state(accelerator.unwrap_model(model))
    if run is not None and accelerator.is_main_process:
        from safetensors.torch import save_file

        with atomic_dir(run.path("checkpoints") / "best") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "trainable.safetensors"))
    return state


def fit(prepared: Prepared, train: Encoded, validation: Encoded | None, recipe: Recipe, names, pad_id: int,
        accelerator, run: RunFolder | None = None, resume: bool = False, log=print) -> FitResult:
    """Train `prepared.model` on `train`, evaluating on `validation`; returns the best model."""
    with cpu_training(prepared.model, enabled=accelerator.device.type == "cpu"):
        return _fit(prepared, train, validation, recipe, names, pad_id, accelerator, run, resume, log)


def _fit(prepared: Prepared, train: Encoded, validation: Encoded | None, recipe: Recipe, names, pad_id: int,
         accelerator, run: RunFolder | None, resume: bool, log) -> FitResult:
    t = recipe.training
    model = prepared.model
    device = accelerator.device
    lengths = train.lengths  # the batch order depends on token lengths only, so cached features train identically
    if prepared.cacheable and t.cache_features:
        model.to(device)
        train = cache_features(model, train, t.eval_batch_size, pad_id, device)
        validation = cache_features(model, validation, t.eval_batch_size, pad_id, device) if validation else None
    elif (prepared.states_cacheable and t.cache_features
          and states_fit_in_memory(model, [p for p in (train, validation) if p is not None], log)):
        model.to(device)
        train = cache_states(model, train, t.eval_batch_size, pad_id, device)
        validation = cache_states(model, validation, t.eval_batch_size, pad_id, device) if validation else None
    features = isinstance(train, Features)
    collate = collate_features if features else Collator(pad_id)
    sampler = LengthGroupedBatches(lengths, t.batch_size, t.seed, t.group_by_length)
    train_loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate, generator=_own_generator())
    val_loader = eval_loader(validation, t.eval_batch_size, pad_id) if validation is not None else None
    batches_per_epoch = len(sampler)
    updates_per_epoch = math.ceil(batches_per_epoch / t.grad_accum)
    total_steps = max(1, math.ceil(t.epochs * updates_per_epoch))
    n_epochs = math.ceil(total_steps / updates_per_epoch)

    optimizer = torch.optim.AdamW(prepared.param_groups, lr=prepared.param_groups[0]["lr"],
                                  **({"fused": True} if device.type in ("cpu", "cuda") else {}))
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_fraction * total_steps), total_steps)
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    weights = class_weights(train.labels, len(names)).to(device) if t.class_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)

    state = {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_step": 0, "bad_evals": 0, "seen": 0,
             "seconds": 0.0, "history": []}
    best_weights = None
    last = run.path("checkpoints") / "last" if run is not None else None
    if resume and last is not None and (last / "trainer_state.json").exists():
        accelerator.load_state(str(last))
        state = json.loads((last / "trainer_state.json").read_text())
        best_file = run.path("checkpoints") / "best" / "trainable.safetensors"
        if best_file.exists():
            from safetensors.torch import load_file

            best_weights = load_file(str(best_file))
        if accelerator.is_main_process:
            run.truncate_log(state["step"])
        log(f"resumed from step {state['step']} (epoch {state['epoch'] + 1}, batch {state['batch']})")

    higher = True  # accuracy and macro-F1: higher is better
    progress = _progress(accelerator, t.progress, total_steps, state["step"])
    started = time.perf_counter() - state["seconds"]
    stop = state["step"] >= total_steps

    def run_evaluation() -> None:
        nonlocal best_weights, stop
        if val_loader is None:
            return
        metrics, _ = evaluate(model, val_loader, validation.labels, names, accelerator)
        model.train()
        score = metrics[t.metric]
        record = {"step": state["step"], "epoch": round(state["step"] / updates_per_epoch, 4),
                  "seconds": round(time.perf_counter() - started, 3),
                  "eval": {k: metrics[k] for k in ("loss", "accuracy", "macro_f1")}}
        state["history"].append(record)
        if run is not None and accelerator.is_main_process:
            run.append_log(record)
        if state["best"] is None or (score > state["best"] if higher else score < state["best"]):
            state.update(best=score, best_step=state["step"], bad_evals=0)
            best_weights = _save_best(accelerator, run, model)
        else:
            state["bad_evals"] += 1
            if t.early_stopping and state["bad_evals"] >= t.early_stopping:
                log(f"early stopping at step {state['step']}: {t.metric} did not improve for {t.early_stopping} evaluations")
                stop = True
        progress.set_postfix_str(f"val {t.metric} {score:.4f}")

    def checkpoint() -> None:
        if run is not None:
            state["seconds"] = time.perf_counter() - started
            _save_checkpoint(accelerator, run, state)

    model.train()
    while not stop and state["epoch"] < n_epochs:
        sampler.epoch, sampler.start = state["epoch"], state["batch"]
        n_batches = batches_per_epoch
        for batch in train_loader:
            labels = batch.pop("labels")
            state["batch"] += 1
            is_update = state["batch"] % t.grad_accum == 0 or state["batch"] == n_batches
            with nullcontext() if is_update else accelerator.no_sync(model):
                with accelerator.autocast():
                    loss = loss_fn(model(**batch).float(), labels)
                accelerator.backward(loss / t.grad_accum)
            state["seen"] += len(labels) * accelerator.num_processes
            if not is_update:
                continue
            if t.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            step_loss = accelerator.reduce(loss.detach(), "mean").item()
            if run is not None and accelerator.is_main_process:
                run.append_log({"step": state["step"], "epoch": round(state["step"] / updates_per_epoch, 4),
                                "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0]})
            progress.update(1)
            progress.set_postfix_str(f"loss {step_loss:.4f}", refresh=False)
            done = state["step"] >= total_steps
            if t.eval_every and state["step"] % t.eval_every == 0 and not done:
                run_evaluation()
            if t.checkpoint_every and state["step"] % t.checkpoint_every == 0 and not done and not stop:
                checkpoint()
            if done or stop:
                break
        if state["batch"] >= n_batches or state["step"] >= total_steps:
            state["epoch"] += 1
            state["batch"] = 0
        if not stop:
            if not t.eval_every or state["step"] >= total_steps:
                run_evaluation()
            if state["step"] >= total_steps:
                stop = True
            elif not t.checkpoint_every and not stop:
                checkpoint()
    progress.close()
    seconds = time.perf_counter() - started
    unwrapped = accelerator.unwrap_model(model)
    if best_weights is not None:
        current = dict(unwrapped.named_parameters())
        with torch.no_grad():
            for name, value in best_weights.items():
                current[name].copy_(value.to(current[name].device))
    best = _best_record(state) if state["best"] is not None else None
    return FitResult(unwrapped, best, state["best_step"], state["step"], seconds, state["seen"], state["history"])


def _best_record(state: dict) -> dict:
    for record in state["history"]:
        if record["step"] == state["best_step"]:
            return record["eval"]
    return {}


def _progress(accelerator, enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", dynamic_ncols=True,
                disable=not (enabled and accelerator.is_local_main_process))
