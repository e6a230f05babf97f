"""THE training loop, on Accelerate: accumulation, mixed precision, schedule, evaluation, early stopping, best
checkpoint and exact resume. Strategies only change what trains (and what was cached before the loop starts);
objectives only add loss terms, which the loop sums and backpropagates once; listeners see every step and
evaluation."""
from __future__ import annotations

import atexit
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..logs import get_logger
from ..batching import BatchStream, LengthGroupedBatches, own_generator, predict_task_logits
from ..data.schema import MISSING
from ..objectives import Losses, ObjectiveContext
from ..run import RunFolder
from ..scoring import score
from ..tasks import decode, is_multitask, label_slots, run_tasks
from .cache import collate_for, evaluation_batches
from .cpu import cpu_training
from .events import notify
from .settings import LoopSettings
from .state import TrainState, load_checkpoint, load_weights, save_best, save_checkpoint

logger = get_logger(__name__)
#: what a batch holds for the objectives, never given to the model: labels (and the text pairs of contrastive batches)
TARGETS = ("labels", "pairs", "task_totals")


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


def make_accelerator(precision: str):
    """An Accelerator with mixed precision `precision` (auto | no | fp16 | bf16; auto: bf16/fp16 on a GPU, none on a
    CPU): batches split across processes so a step sees batch_size examples."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "no"
    # with no accelerator, say so: Accelerate then runs processes started by torchrun on gloo (MULTI_CPU)
    cpu_only = not (torch.cuda.is_available() or torch.backends.mps.is_available()
                    or (hasattr(torch, "xpu") and torch.xpu.is_available()))
    accelerator = Accelerator(mixed_precision=precision, cpu=cpu_only,
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    if accelerator.num_processes > 1:
        atexit.unregister(_leave_process_group)  # once, however many runs this process makes
        atexit.register(_leave_process_group)
    return accelerator


def _leave_process_group() -> None:
    """At exit, while the interpreter still runs: a process that ends with its gloo group alive can abort in the
    group's worker threads during interpreter teardown (SIGABRT, "terminate called without an active exception"), and
    torchrun then kills the others, the main one mid-save. Destroying the group first is what torch asks of scripts."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def evaluate(model, loader, labels: list, names, accelerator=None) -> tuple[dict, np.ndarray | dict]:
    """The scorer's metrics block (with each task's loss) of `model` on the rows of `loader`, and its outputs (class
    probabilities). `names`: the label names, or a multi-task run's tasks (task -> LabelMap): then the block is per
    task under "tasks" with the means ("accuracy", "macro_f1", "loss": what the loop chooses the best checkpoint by),
    and the outputs each task's."""
    tasks = run_tasks(names)
    logits, _ = predict_task_logits(model, loader, accelerator)
    outputs = decode(tasks, logits)
    metrics = score(tasks, labels, outputs, logits=logits)
    return metrics, (outputs if is_multitask(tasks) else next(iter(outputs.values())))


def schedule(optimizer, warmup_fraction: float, total: int):
    """Linear warm-up over `warmup_fraction` of the steps, then linear decay to 0 (transformers' linear schedule).
    A parameter group with "hold_steps" stays at lr 0 for its first hold_steps steps and follows the same shape over
    the steps after them (a new head warms up before the encoder under it moves)."""
    def shape(hold: int):
        span = max(1, total - hold)
        warmup = int(warmup_fraction * span)

        def factor(step: int) -> float:
            step -= hold
            if step < 0:
                return 0.0
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (span - step) / max(1, span - warmup))

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [shape(g.get("hold_steps", 0)) for g in optimizer.param_groups])


def fit(prepared, train, validation, settings: LoopSettings, names, pad_id: int, accelerator,
        run: RunFolder | None = None, resume: bool = False, listeners=(),
        streams: dict[str, BatchStream] | None = None) -> FitResult:
    """Train `prepared.model` on `train` (token ids, or cached features/states) as `settings` say, evaluating on
    `validation`; returns the best model. `names`: the label names, or a multi-task run's tasks (task -> LabelMap). `streams`: extra batch streams, one batch of each per training batch, given to the
    model and the objectives as batch["streams"][name] / outputs["streams"][name]."""
    with cpu_training(prepared.model, enabled=accelerator.device.type == "cpu"):
        loop = _Loop(prepared, train, validation, settings, names, pad_id, accelerator, run, list(listeners),
                     dict(streams or {}))
        if resume and run is not None:
            loop.resume()
        return loop.run()


class _Loop:
    """One fit: the prepared model, optimizer, schedule and loaders, and the TrainState they advance."""

    def __init__(self, prepared, train, validation, settings, names, pad_id, accelerator, run, listeners, streams):
        t = self.t = settings
        self.names, self.accelerator, self.folder, self.listeners, self.streams = names, accelerator, run, listeners, streams
        self.validation = validation
        device = accelerator.device
        self.sampler = LengthGroupedBatches(train.lengths, t.batch_size, t.seed, t.group_by_length)
        self.collate = collate_for(train, pad_id)
        train_loader = DataLoader(train, batch_sampler=self.sampler, collate_fn=self.collate, generator=own_generator())
        self.batches_per_epoch = len(self.sampler)
        self.updates_per_epoch = math.ceil(self.batches_per_epoch / t.grad_accum)
        self.total_steps = max(1, math.ceil(t.epochs * self.updates_per_epoch))
        self.n_epochs = math.ceil(self.total_steps / self.updates_per_epoch)

        optimizer = torch.optim.AdamW(prepared.param_groups, lr=prepared.param_groups[0]["lr"],
                                      **({"fused": True} if device.type in ("cpu", "cuda") else {}))
        scheduler = schedule(optimizer, t.warmup_fraction, self.total_steps)
        self.model, self.optimizer, self.train_loader, self.scheduler = accelerator.prepare(
            prepared.model, optimizer, train_loader, scheduler)
        self.val_loader = None
        if validation is not None:
            self.val_loader = accelerator.prepare(evaluation_batches(validation, t.eval_batch_size, pad_id))
        tasks, weights = run_tasks(names), None
        if t.class_weights:  # each task's kind's, over the rows labelled for it: inverse class frequency, or each
            weights = {name: torch.tensor(task.kind.class_weights(task, task.gold(train.labels)[0].tolist()),
                                          dtype=torch.float32).to(device) for name, task in tasks.items()}
            weights = weights if isinstance(names, dict) else next(iter(weights.values()))  # label's negatives / positives
        self.losses = Losses(t.objectives, ObjectiveContext(t, len(names), weights, device, tasks))
        #: a multi-task run (names: task -> LabelMap): where each task's labels lie in a batch's label rows, and
        #: the class weights that weigh its rows (None: its rows count 1 each)
        self.multitask = isinstance(names, dict)
        self.task_slots = list(label_slots(tasks).values())
        self.task_class_weights = [weights[name] if isinstance(weights, dict) and task.kind.weighs_rows else None
                                   for name, task in tasks.items()]
        self.state = TrainState()
        self.best_weights = None
        self.stop = False

    def resume(self) -> None:
        """Continue from the run folder's last checkpoint (nothing to do when there is none)."""
        loaded = load_checkpoint(self.accelerator, self.folder)
        if loaded is not None:
            self.state, self.best_weights = loaded
            if self.accelerator.is_main_process:
                self.folder.truncate_log(self.state.step)  # the steps after the checkpoint are replayed

    def run(self) -> FitResult:
        state, t = self.state, self.t
        self.started = time.perf_counter() - state.seconds
        self.stop = state.step >= self.total_steps
        notify(self.listeners, "on_train_begin", self.total_steps, state.step)
        try:
            self.model.train()
            while not self.stop and state.epoch < self.n_epochs:
                self._epoch()
                if not self.stop:
                    if not t.eval_every or state.step >= self.total_steps:
                        self._evaluate()
                    if state.step >= self.total_steps:
                        self.stop = True
                    elif not t.checkpoint_every and not self.stop:
                        self._checkpoint()
        finally:
            notify(self.listeners, "on_train_end")
        seconds = time.perf_counter() - self.started
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self.best_weights is not None:
            load_weights(unwrapped, self.best_weights)
        return FitResult(unwrapped, state.best_record(), state.best_step, state.step, seconds, state.seen,
                         state.history)

    def _epoch(self) -> None:
        """The rest of the current epoch (all of it, unless resuming mid-epoch), or up to a stop."""
        state, t = self.state, self.t
        self.sampler.epoch, self.sampler.start = state.epoch, state.batch
        if hasattr(self.collate, "epoch"):  # masked texts: each epoch masks anew
            self.collate.epoch = state.epoch
        for batch in self.train_loader:
            state.batch += 1
            is_update = state.batch % t.grad_accum == 0 or state.batch == self.batches_per_epoch
            with nullcontext() if is_update else self.accelerator.no_sync(self.model):
                with self.accelerator.autocast():
                    loss, terms = self._losses(batch)
                self.accelerator.backward(loss / t.grad_accum)
            state.seen += len(batch["labels"]) * self.accelerator.num_processes
            if not is_update:
                continue
            self._update(loss, terms)
            done = state.step >= self.total_steps
            if t.eval_every and state.step % t.eval_every == 0 and not done:
                self._evaluate()
            if t.checkpoint_every and state.step % t.checkpoint_every == 0 and not done and not self.stop:
                self._checkpoint()
            if done or self.stop:
                break
        if state.batch >= self.batches_per_epoch or state.step >= self.total_steps:
            state.epoch += 1
            state.batch = 0

    def _losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's outputs on `batch` (and on each stream's batch), then every weighted loss term."""
        features = self.losses.needs_features
        if self.multitask:
            batch["task_totals"] = self._task_totals(batch["labels"])
        inputs = {k: v for k, v in batch.items() if k not in TARGETS}
        outputs = self.model(**inputs, return_features=True) if features else self.model(**inputs)
        if self.streams:
            device = self.accelerator.device
            batch["streams"], outputs["streams"] = {}, {}
            for name, stream in self.streams.items():
                extra = {k: v.to(device) for k, v in stream.batch(self.state.epoch, self.state.batch - 1).items()}
                batch["streams"][name] = extra
                stream_inputs = {k: v for k, v in extra.items() if k not in TARGETS}
                outputs["streams"][name] = self.model(**stream_inputs, return_features=features)
        return self.losses(outputs, batch, progress=self.state.step / self.total_steps)

    def _task_totals(self, labels: torch.Tensor) -> torch.Tensor:
        """What each task's loss is averaged over [tasks]: its labelled rows in the whole step's batch (class-weighted
        when the settings weight classes), per process. Each process holds part of the batch, and DDP averages their
        gradients: dividing each part's summed loss by the batch's count over the processes makes that average the
        mean over the whole batch's labelled rows, as one process gives (a part's own count would weigh its rows more
        when it holds fewer of them)."""
        first = torch.stack([labels[:, span.start] for span in self.task_slots], 1)  # MISSING in each slot, or none
        present = (first != MISSING).float()
        present = torch.stack([present[:, i] if w is None else w[first[:, i].clamp(min=0)] * present[:, i]
                               for i, w in enumerate(self.task_class_weights)], 1)
        totals = present.sum(0)
        if self.accelerator.num_processes > 1:
            totals = self.accelerator.reduce(totals, "sum") / self.accelerator.num_processes
        return totals

    def _update(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """One optimizer step, logged."""
        state, t = self.state, self.t
        if t.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        values = [loss.detach().float()] + ([v.detach().float() for v in terms.values()] if len(terms) > 1 else [])
        reduced = self.accelerator.reduce(torch.stack(values), "mean").tolist()
        record = {"step": state.step, "epoch": round(state.step / self.updates_per_epoch, 4),
                  "loss": round(reduced[0], 6), "lr": self.scheduler.get_last_lr()[0]}
        if len(terms) > 1:
            record["terms"] = {name: round(v, 6) for name, v in zip(terms, reduced[1:])}
        notify(self.listeners, "on_step", record)

    def _evaluate(self) -> None:
        """Score the validation split; keep the best weights; stop early when the settings say so."""
        if self.val_loader is None:
            return
        state, t = self.state, self.t
        metrics, _ = evaluate(self.model, self.val_loader, self.validation.labels, self.names, self.accelerator)
        self.model.train()
        score = metrics[t.metric]
        record = {"step": state.step, "epoch": round(state.step / self.updates_per_epoch, 4),
                  "seconds": round(time.perf_counter() - self.started, 3),
                  "eval": {k: metrics[k] for k in ("loss", "accuracy", "macro_f1", t.metric)}}
        if "tasks" in metrics:  # multi-task: the means above, and each task's
            record["eval"]["tasks"] = {task: {k: m[k] for k in ("loss", "accuracy", "macro_f1")}
                                       for task, m in metrics["tasks"].items()}
        state.history.append(record)
        notify(self.listeners, "on_evaluation", record, t.metric)
        if state.best is None or score > state.best:  # accuracy and macro-F1: higher is better
            state.best, state.best_step, state.bad_evals = score, state.step, 0
            self.best_weights = save_best(self.accelerator, self.folder, self.model)
        else:
            state.bad_evals += 1
            if t.early_stopping and state.bad_evals >= t.early_stopping:
                logger.info(f"early stopping at step {state.step}: {t.metric} did not improve for "
                            f"{t.early_stopping} evaluations")
                self.stop = True

    def _checkpoint(self) -> None:
        if self.folder is not None:
            self.state.seconds = time.perf_counter() - self.started
            save_checkpoint(self.accelerator, self.folder, self.state)
