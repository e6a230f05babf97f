"""Length-grouped batches in random order; dynamic padding; pairs and masked texts for the extra objectives (the
token ids come from tokens.py); the evaluation loader (length-sorted, each row with its index) and a model's logits
over it, gathered across processes and put back in the order of the rows."""
from __future__ import annotations

import random
import zlib

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .model import HEAD
from .tokens import Encoded


class LengthGroupedBatches:
    """Batches of indices: shuffled, then sorted by length inside groups of `group` batches, in random order.

    The order is a pure function of (seed, epoch), so a resumed run replays it exactly; `start` skips the
    batches an interrupted epoch already used. Sorting only within random groups keeps each batch's content
    mixed; shuffling the batches keeps their order random. `group` = 64 batches pads SST-2 by 4% over its real
    tokens (16: 15%, as many as the Trainer's 50-batch megabatches: 5%, random batches: 198%).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True, group: int = 64,
                 shuffle: bool = True):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.group = group
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    def batches(self, epoch: int) -> list[list[int]]:
        """All batches of `epoch`, every index exactly once."""
        n = len(self.lengths)
        if not self.shuffle:  # evaluation: longest first so memory peaks early, same padding savings
            order = sorted(range(n), key=lambda i: -self.lengths[i])
            return [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        if not self.group_by_length:
            return [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        span = self.batch_size * self.group
        batches = []
        for s in range(0, n, span):
            chunk = sorted(order[s:s + span], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        partial = [b for b in batches if len(b) < self.batch_size]
        perm = torch.randperm(len(full), generator=g).tolist()
        return [full[i] for i in perm] + partial  # a short batch goes last, as in an ungrouped epoch

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start:]

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size - self.start


class Collator:
    """Pads a list of examples to the longest in the batch (dynamic padding)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict:
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            ids[row, :n] = torch.tensor(it["input_ids"])
            mask[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "states" in items[0]:  # cached frozen-layer output: zeros at padding, which attention masks out
            states = torch.zeros((len(items), width, items[0]["states"].shape[-1]), dtype=items[0]["states"].dtype)
            for row, it in enumerate(items):
                states[row, :len(it["states"])] = it["states"]
            batch["states"] = states
        if "labels" in items[0]:
            batch["labels"] = label_tensor([it["labels"] for it in items])
        return batch


def label_tensor(rows: list) -> torch.Tensor:
    """A batch's labels as one tensor: a label per row, or multi-task rows (a label per task) [rows, slots], a
    multi-label task's 0/1 list taking as many slots as it has labels (tasks.label_slots says where)."""
    if rows and isinstance(rows[0], (list, tuple)) and any(isinstance(x, (list, tuple)) for x in rows[0]):
        rows = [[y for x in row for y in (x if isinstance(x, (list, tuple)) else (x,))] for row in rows]
    return torch.tensor(rows)


class MaskingCollator:
    """Pads like Collator, then masks `rate` of each text's real, non-special tokens BERT's way (80% the mask token,
    10% a random token, 10% left as they are): batch["mlm_mask"] marks them and batch["labels"] holds their original
    ids (-100 elsewhere). A text's masks are a pure function of its token ids, `seed` and `epoch` (which whoever
    batches sets: the loop, a BatchStream), not of the batch it is in: a resumed run masks exactly as the
    interrupted one did, N processes mask as one does, and each epoch masks anew (dynamic masking)."""

    def __init__(self, tokenizer, rate: float, seed: int):
        if tokenizer.mask_token_id is None:
            raise ValueError("masked-LM training needs a tokenizer with a mask token; this one has none")
        self.pad = Collator(tokenizer.pad_token_id or 0)
        self.mask_id, self.vocabulary = tokenizer.mask_token_id, len(tokenizer)
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.rate, self.seed = rate, seed
        self.epoch = 0

    def _draws(self, ids: list[int], width: int) -> torch.Tensor:
        """Three uniforms per token of one text, [width, 3] (zero-padded): the text's own random numbers."""
        key = zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes())
        g = torch.Generator().manual_seed((key + (self.seed * 1_000_003 + self.epoch) * 4_294_967_311) % 2 ** 63)
        draws = torch.zeros(width, 3)
        draws[:len(ids)] = torch.rand(len(ids), 3, generator=g)
        return draws

    def __call__(self, items: list[dict]) -> dict:
        batch = self.pad([{"input_ids": it["input_ids"]} for it in items])
        ids = batch["input_ids"]
        draws = torch.stack([self._draws(it["input_ids"], ids.shape[1]) for it in items])
        candidates = batch["attention_mask"].bool() & ~torch.isin(ids, self.special)
        chosen = (draws[..., 0] < self.rate) & candidates
        roll = draws[..., 1]
        replace = (draws[..., 2] * self.vocabulary).long().clamp(max=self.vocabulary - 1)
        masked = torch.where(chosen & (roll < 0.8), self.mask_id, ids)
        masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), replace, masked)
        return {"input_ids": masked, "attention_mask": batch["attention_mask"],
                "labels": torch.where(chosen, ids, -100), "mlm_mask": chosen}


class MaskedTexts(Dataset):
    """Token ids of unlabelled texts for masked-LM training, with the collator that masks them (the loop batches a
    dataset with its own `collate`)."""

    def __init__(self, encoded: Encoded, collate: MaskingCollator):
        self.encoded, self.collate = encoded, collate
        self.labels = None

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.encoded.input_ids[i]}

    @property
    def lengths(self) -> list[int]:
        return self.encoded.lengths


class TextPairs(Dataset):
    """Pairs of labelled texts for contrastive training, SetFit's way: every distinct pair of two texts, those of the
    same label (target 1) and those of different labels (target 0) each in a seeded random order, taken in turn one of
    each kind, `iterations` x the number of texts of each kind (a list that runs out starts again), so the pairs are
    balanced and cover as many distinct pairs as the budget allows before any repeats. A text alone in its label is
    paired with itself. `limit` keeps that many of them (a budget of pairs). A batch holds each of its distinct texts
    once (`collate`): with few labelled rows most texts of a batch of pairs repeat, and each is encoded once. With
    `all_pairs` the batch's pairs are every two of its distinct texts, not only the drawn ones (the drawn pairs then
    choose which texts meet in a batch): 16 drawn pairs hold about 28 texts, so a step learns from about 380 pairs for
    the encoding cost of 16."""

    def __init__(self, encoded: Encoded, iterations: int, seed: int, pad_id: int, limit: int | None = None,
                 all_pairs: bool = False):
        rng = random.Random(seed)
        self.encoded, self.pad, self.all_pairs = encoded, Collator(pad_id), all_pairs
        labels = encoded.labels
        counts = {y: labels.count(y) for y in set(labels)}
        same = [(i, j) for i in range(len(labels)) for j in range(i, len(labels))
                if labels[i] == labels[j] and (i != j or counts[labels[i]] == 1)]
        other = [(i, j) for i in range(len(labels)) for j in range(i + 1, len(labels)) if labels[i] != labels[j]]
        rng.shuffle(same)
        rng.shuffle(other)
        self.pairs: list[tuple[int, int, float]] = []
        for k in range(iterations * len(labels)):
            self.pairs.append((*same[k % len(same)], 1.0))
            if other:
                self.pairs.append((*other[k % len(other)], 0.0))
        if limit is not None and limit < len(self.pairs):
            self.pairs = rng.sample(self.pairs, limit)
        self.labels = [t for _, _, t in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        a, b, target = self.pairs[i]
        return {"pair": (a, b), "target": target}

    @property
    def lengths(self) -> list[int]:
        lengths = self.encoded.lengths
        return [lengths[a] + lengths[b] for a, b, _ in self.pairs]

    def collate(self, items: list[dict]) -> dict:
        """The batch's distinct texts (padded), its pairs as positions into them, and their targets."""
        rows = sorted({r for it in items for r in it["pair"]})
        batch = self.pad([{"input_ids": self.encoded.input_ids[r]} for r in rows])
        if self.all_pairs:
            labels = self.encoded.labels
            pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))] or [(0, 0)]
            batch["pairs"] = torch.tensor(pairs)
            batch["labels"] = torch.tensor([float(labels[rows[i]] == labels[rows[j]]) for i, j in pairs])
            return batch
        at = {r: k for k, r in enumerate(rows)}
        batch["pairs"] = torch.tensor([[at[a], at[b]] for a, b in (it["pair"] for it in items)])
        batch["labels"] = torch.tensor([it["target"] for it in items])
        return batch


def split_by_length(lengths: list[int], overhead_tokens: float) -> list[list[int]]:
    """Positions of `lengths` cut into sub-batches that cost least to run padded: each sub-batch costs
    `overhead_tokens` (what one forward pass costs beyond its tokens: reading the weights, Python, thread start-up,
    in token-equivalents) plus its padded tokens (count x longest). Sorted by length, then the best cut points by
    dynamic programming (n steps of numpy over at most n). Random SST-2 sentences in one
    batch of 64 pad to 1.95x their tokens; cut this way, MiniLM's batch runs 1.6x faster."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    n = len(order)
    best, cut, starts = np.zeros(n + 1), [0] * (n + 1), np.arange(n + 1)
    for end in range(1, n + 1):  # the sub-batch starts..end-1 is as wide as its last (longest) text
        costs = best[:end] + overhead_tokens + lengths[order[end - 1]] * (end - starts[:end])
        cut[end] = int(costs.argmin())
        best[end] = costs[cut[end]]
    parts, end = [], n
    while end:
        parts.append(order[cut[end]:end])
        end = cut[end]
    return parts[::-1]


class BatchStream:
    """A second stream of batches beside the training data (e.g. unlabelled texts of a target domain): the loop
    takes `batch(epoch, i)` for the i-th training batch of each epoch, cycling through the stream when it is shorter.
    The order is a pure function of (seed, epoch, i), like the training batches', so a resumed run replays it
    exactly without saving anything more."""

    def __init__(self, data: Dataset, lengths: list[int], batch_size: int, collate, seed: int,
                 group_by_length: bool = True):
        self.data = data
        self.collate = collate
        self.order = LengthGroupedBatches(lengths, batch_size, seed, group_by_length)
        self._cached: tuple[int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return len(self.order)

    def batch(self, epoch: int, i: int) -> dict:
        """The collated batch for training batch `i` of `epoch`."""
        n = len(self.order)
        cycle, position = divmod(i, n)
        key = epoch * 1_000_003 + cycle  # each pass through the stream is its own shuffle
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.order.batches(key))
        if hasattr(self.collate, "epoch"):  # masks anew on each pass through the stream
            self.collate.epoch = key
        return self.collate([self.data[j] for j in self._cached[1][position]])


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
