"""Batches for evaluation and prediction (length-sorted, each row with its index) and the logits of a model over
them, gathered across processes and put back in the order of the rows."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..batching import Collator, LengthGroupedBatches
from ..tokens import Encoded
from ..model import HEAD


class _Indexed(Dataset):
    """Adds each example's position so gathered predictions can be put back in file order."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return {**self.inner[i], "index": i}


def _with_index(inner):
    def collate(items):
        batch = inner([{k: v for k, v in it.items() if k != "index"} for it in items])
        batch["index"] = torch.tensor([it["index"] for it in items])
        return batch
    return collate


def own_generator() -> torch.Generator:
    """A loader's own generator: starting an epoch must not draw from the global RNG that dropout uses, or a
    run resumed mid-epoch would see different dropout masks than an uninterrupted one."""
    return torch.Generator().manual_seed(0)


def sorted_loader(data: Dataset, lengths: list[int], batch_size: int, collate) -> DataLoader:
    """Batches of `data`, longest first, each row with its index."""
    sampler = LengthGroupedBatches(lengths, batch_size, seed=0, shuffle=False)
    return DataLoader(_Indexed(data), batch_sampler=sampler, collate_fn=_with_index(collate),
                      generator=own_generator())


def eval_loader(data: Encoded, batch_size: int, pad_id: int) -> DataLoader:
    """Batches of token ids for evaluation/prediction: longest first, padded per batch, with each row's index."""
    return sorted_loader(data, data.lengths, batch_size, Collator(pad_id))


def predict_logits(model, loader, accelerator=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and row indices, in file order, for every row the loader yields (gathered across processes)."""
    logits, index = predict_task_logits(model, loader, accelerator)
    return logits.get(HEAD, np.zeros((0, 0))), index


@torch.no_grad()
def predict_task_logits(model, loader, accelerator=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every head's logits (a multi-task model's: one per task; else {HEAD: ...}) and the row indices, in file
    order, for every row the loader yields (gathered across processes)."""
    model.eval()
    all_logits, all_index = {}, []
    for batch in loader:
        index = batch.pop("index")
        batch.pop("labels", None)
        heads = {name: v.float() for name, v in model(**batch)["logits"].items()}
        if accelerator is not None:
            heads, index = accelerator.gather_for_metrics((heads, index))
        for name, v in heads.items():
            all_logits.setdefault(name, []).append(v.cpu())
        all_index.append(index.cpu())
    if not all_index:
        return {}, np.zeros(0, dtype=np.int64)
    order = torch.argsort(torch.cat(all_index))
    return {name: torch.cat(v)[order].numpy() for name, v in all_logits.items()}, torch.cat(all_index)[order].numpy()


@torch.no_grad()
def predict_outputs(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features (what the head reads) for every row of the loader, in file order (a multi-task
    model's first task's logits: the drift profile and the server's monitoring follow that task)."""
    model.eval()
    logits, features, index = [], [], []
    for batch in loader:
        index.append(batch.pop("index"))
        batch.pop("labels", None)
        out = model(**batch, return_features=True)
        logits.append(next(iter(out["logits"].values())).float().cpu())
        features.append(out["features"].float().cpu())
    if not logits:
        return np.zeros((0, 0)), np.zeros((0, 0))
    order = torch.argsort(torch.cat(index))
    return torch.cat(logits)[order].numpy(), torch.cat(features)[order].numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits [rows, labels]."""
    shifted = logits - logits.max(1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(1, keepdims=True)
