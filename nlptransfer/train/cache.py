"""Run the frozen part of a model once and train from its output: cached head features (the whole encoder is
frozen) or cached hidden states entering the first trained layer (top_k). Exact: frozen modules run in eval mode,
and padding is masked out of attention; the batch order depends on token lengths only, so it is unchanged."""
from __future__ import annotations


import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..logs import get_logger
from ..architectures import architecture, supports_head_path
from ..batching import Collator, eval_loader, label_tensor, sorted_loader
from ..tokens import Encoded

logger = get_logger(__name__)

#: the most memory cached frozen-layer states may take, as a share of the memory available when caching
STATES_MEMORY_SHARE = 0.25


class Features(Dataset):
    """Cached encoder outputs (what the head reads) with labels and the token lengths of their texts."""

    def __init__(self, features: torch.Tensor, labels: list[int] | None, lengths: list[int]):
        self.features = features
        self.labels = labels
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        item = {"features": self.features[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


class States(Dataset):
    """Cached hidden states entering the first trained layer, one [tokens, hidden] block per text (unpadded,
    slices of one tensor), with the token ids the attention mask is built from: the batches of a top_k run."""

    def __init__(self, encoded: Encoded, states: torch.Tensor, offsets: list[int]):
        self.encoded = encoded
        self.states = states
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        return {**self.encoded[i], "states": self.states[self.offsets[i]:self.offsets[i + 1]]}

    @property
    def lengths(self) -> list[int]:
        return self.encoded.lengths

    @property
    def labels(self) -> list[int] | None:
        return self.encoded.labels


def collate_features(items: list[dict]) -> dict:
    """Stack cached features (all the same shape) into a batch."""
    batch = {"features": torch.stack([it["features"] for it in items])}
    if "labels" in items[0]:
        batch["labels"] = label_tensor([it["labels"] for it in items])
    return batch


def collate_for(data: Dataset, pad_id: int):
    """How batches of `data` (token ids, cached states or cached features, or a dataset with its own `collate`: masked
    texts) are put together."""
    if hasattr(data, "collate"):
        return data.collate
    return collate_features if isinstance(data, Features) else Collator(pad_id)


def evaluation_batches(data: Dataset, batch_size: int, pad_id: int) -> DataLoader:
    """Evaluation batches of token ids, cached states or cached features, each row with its index."""
    if isinstance(data, Features):  # one size fits all: keep the rows in order
        return sorted_loader(data, [1] * len(data), batch_size, collate_features)
    return sorted_loader(data, data.lengths, batch_size, Collator(pad_id))


def cache_kind(cacheable: str | None, model) -> str | None:
    """What of `model`'s frozen part can be cached: the strategy's `cacheable` when the architecture allows it."""
    if cacheable == "features" and model.encoder_frozen and supports_head_path(model.net):
        return "features"
    known = architecture(model.core.config.model_type)
    if cacheable == "states" and known is not None and known.layer_loop and (model.first_trained_layer or 0) > 0:
        return "states"
    return None


@torch.no_grad()
def cache_features(model, encoded: Encoded, batch_size: int, pad_id: int, device) -> Features:
    """Run the frozen encoder once over `encoded`; the head then trains on these outputs (exact: eval mode)."""
    model.eval()
    out = [None] * len(encoded)
    for batch in eval_loader(encoded, batch_size, pad_id):  # the loader's own generator: the RNG stream stays as it was
        feats = model.encode(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()
        for row, i in enumerate(batch["index"].tolist()):
            out[i] = feats[row]
    return Features(torch.stack(out), encoded.labels, encoded.lengths)


def states_bytes(model, encoded: Encoded) -> int:
    """Memory the cached hidden states of `encoded` take (float32, unpadded)."""
    return sum(encoded.lengths) * model.core.config.hidden_size * 4


def states_fit_in_memory(model, parts: list[Encoded]) -> bool:
    """True when the cached states of every part fit in STATES_MEMORY_SHARE of the available memory."""
    import psutil

    need = sum(states_bytes(model, part) for part in parts)
    allowed = STATES_MEMORY_SHARE * psutil.virtual_memory().available
    if need > allowed:
        logger.info(f"not caching the frozen layers' output: it would take {need / 2**30:.1f} GiB, more than "
                    f"{allowed / 2**30:.1f} GiB ({STATES_MEMORY_SHARE:.0%} of the available memory); training runs "
                    "them each step")
    return need <= allowed


@torch.no_grad()
def cache_states(model, encoded: Encoded, batch_size: int, pad_id: int, device) -> States:
    """Run the frozen bottom layers once over `encoded`; the top layers then train from their output."""
    model.eval()
    lengths = encoded.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    states = torch.empty((offsets[-1], model.core.config.hidden_size))
    for batch in eval_loader(encoded, batch_size, pad_id):
        hidden = model.frozen_states(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()
        for row, i in enumerate(batch["index"].tolist()):
            states[offsets[i]:offsets[i + 1]] = hidden[row, :lengths[i]]
    return States(encoded, states, offsets)


def cache_inputs(model, cacheable: str | None, parts: dict[str, Encoded], batch_size: int, pad_id: int,
                 device) -> dict[str, Dataset]:
    """`parts` (train, validation) as the loop should read them: cached features or states where the strategy and
    the architecture allow it (and states fit in memory), else as given."""
    kind = cache_kind(cacheable, model)
    if kind == "states" and not states_fit_in_memory(model, list(parts.values())):
        kind = None
    if kind is None:
        return dict(parts)
    model.to(device)
    build = cache_features if kind == "features" else cache_states
    return {name: build(model, part, batch_size, pad_id, device) for name, part in parts.items()}
