"""Tokenize once: token ids of every text, cut at a token limit, counting the cut ones.

`tokenize` gives Python lists (a request's or a predict chunk's texts). `tokenize_cached` gives a run's splits: their
ids in an Arrow file (list<int32>: 4 bytes a token, against about 5 KB a short sentence as Python lists), read
memory-mapped, and kept in the cache folder under a key of the texts, the tokenizer and the limit, so a second run
over the same data reads them instead of tokenizing again. Both call the fast tokenizer's Rust backend directly
(`encode_batch_fast`: no character offsets), in chunks, truncating in the same pass."""
from __future__ import annotations

import bisect
import hashlib
import os
import weakref
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from torch.utils.data import Dataset

from .cache import Entry, Hold, cache_root, kind_folder
from .data.schema import MAX_TEXT_CHARS
from .logs import get_logger

logger = get_logger(__name__)

CHUNK = 10_000  #: texts tokenized (and written) at a time
FORMAT = "1"  #: part of every cache key: a change to what is stored makes old entries unreachable


@dataclass
class Encoded(Dataset):
    """Token ids of every text (unpadded; lists, or TokenIds over Arrow), their labels, and how many texts were
    truncated."""

    input_ids: Sequence[list[int]]
    labels: list[int] | None
    truncated: int = 0
    cut: list[int] = field(default_factory=list)  #: positions of the texts that were truncated
    cached: bool = False  #: the ids were read from the cache, not tokenized

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item

    @property
    def lengths(self) -> list[int]:
        lengths = getattr(self.input_ids, "lengths", None)
        return lengths if lengths is not None else [len(ids) for ids in self.input_ids]


class TokenIds(Sequence):
    """Read-only token id lists over Arrow list<int32> arrays (in memory or memory-mapped): `ids[i]` is a list of
    ints, read from the Arrow buffers when asked for. `hold`: the cache's lock on their file, kept as long as they
    are."""

    def __init__(self, arrays, hold=None):
        self.hold = hold
        self._parts = [(a.offsets.to_numpy(), a.values.to_numpy()) for a in arrays if len(a)]
        self._starts = [0]
        for offsets, _ in self._parts:
            self._starts.append(self._starts[-1] + len(offsets) - 1)

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = bisect.bisect_right(self._starts, i) - 1
        offsets, values = self._parts[k]
        j = i - self._starts[k]
        return values[offsets[j]:offsets[j + 1]].tolist()

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    @property
    def lengths(self) -> list[int]:
        return np.concatenate([np.diff(offsets) for offsets, _ in self._parts]).tolist() if self._parts else []


#: a fast tokenizer's Rust backend, copied without truncation or padding, and one that truncates (per limit)
_PLAIN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CUTTING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _plain_backend(tokenizer):
    """A copy of a fast tokenizer's `tokenizers.Tokenizer`, set to neither truncate nor pad, or None (a slow
    tokenizer). Calling it directly skips the Python of `tokenizer(...)`: 20 us for a sentence instead of 150, which
    a server pays on every request; the copy keeps the shared tokenizer's settings untouched (thread-safe)."""
    try:
        return _PLAIN[tokenizer]
    except (KeyError, TypeError):
        pass
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch") or not hasattr(backend, "to_str"):
        return None
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    plain.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
    try:
        _PLAIN[tokenizer] = plain
    except TypeError:
        pass
    return plain


def _cutting_backend(tokenizer, max_length: int):
    """The plain backend's copy that truncates at `max_length` as `tokenizer(..., truncation=True)` does (longest
    first, no stride, the tokenizer's truncation side), or None (a slow tokenizer)."""
    plain = _plain_backend(tokenizer)
    if plain is None:
        return None
    try:
        by_limit = _CUTTING.setdefault(tokenizer, {})
    except TypeError:
        by_limit = {}
    if max_length not in by_limit:
        from tokenizers import Tokenizer

        cutting = Tokenizer.from_str(plain.to_str())
        cutting.encode_special_tokens = plain.encode_special_tokens
        cutting.enable_truncation(max_length, stride=0, strategy="longest_first",
                                  direction=getattr(tokenizer, "truncation_side", "right"))
        by_limit[max_length] = cutting
    return by_limit[max_length]


#: set (to "bulk") by the command line when it turns the fast tokenizer's threads off for its process because the
#: user had not set TOKENIZERS_PARALLELISM: a bulk pass over a run's texts turns them on for its duration (1.4x
#: faster on 2 cores: 400,000 short texts in 7.9 s instead of 11.0; two processes of one thread each: 5.8 s, plus
#: 2 s to start them). A user's own TOKENIZERS_PARALLELISM=false is kept.
BULK_THREADS = "NLPTRANSFER_TOKENIZER_THREADS"


@contextmanager
def _threads():
    if os.environ.get(BULK_THREADS) != "bulk":
        yield
        return
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # read by the Rust backend at every call
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _chunks(tokenizer, texts: Sequence[str], max_length: int) -> Iterator[tuple[list[list[int]], list[int]]]:
    """(token ids, positions in the chunk that were truncated) of each CHUNK of `texts`, in order. A text is cut at
    MAX_TEXT_CHARS first (the data stage and `predict` count those): a tokenizer holds a whole text in memory."""
    cutting = _cutting_backend(tokenizer, max_length)
    for start in range(0, len(texts), CHUNK):
        part = [t if len(t) <= MAX_TEXT_CHARS else t[:MAX_TEXT_CHARS] for t in texts[start:start + CHUNK]]
        if cutting is not None:
            with _threads():
                encodings = getattr(cutting, "encode_batch_fast", cutting.encode_batch)(part, add_special_tokens=True)
            yield [e.ids for e in encodings], [i for i, e in enumerate(encodings) if e.overflowing]
            continue
        saved_limit = tokenizer.model_max_length
        tokenizer.model_max_length = 10**9  # measure full lengths without the "too long" warning
        try:
            full = tokenizer(part, truncation=False, add_special_tokens=True)["input_ids"]
        finally:
            tokenizer.model_max_length = saved_limit
        long_rows = [i for i, ids in enumerate(full) if len(ids) > max_length]
        if long_rows:
            cut = tokenizer([part[i] for i in long_rows], truncation=True, max_length=max_length)["input_ids"]
            for i, ids in zip(long_rows, cut):
                full[i] = ids
        yield full, long_rows


def tokenize(tokenizer, texts: Sequence[str], max_length: int, labels: list[int] | None = None) -> Encoded:
    """Token ids of `texts` as Python lists, truncated to `max_length`, counting the truncated ones."""
    ids, cut = [], []
    for chunk, long_rows in _chunks(tokenizer, texts, max_length):
        cut += [len(ids) + i for i in long_rows]
        ids += chunk
    return Encoded(ids, labels, len(cut), cut)


#: the share of unknown tokens from which a run says the tokenizer does not cover its texts: English reviews and
#: tweets give 0 to 0.2% with all-MiniLM-L6-v2 (emoji), Thai social-media posts 37%
UNKNOWN_WARN = 0.05


def unknown_share(tokenizer, encoded: Encoded, rows: int = 2000) -> float | None:
    """The share of the tokenizer's unknown token among the non-special tokens of `rows` texts spread over `encoded`
    (None when the tokenizer has no unknown token or the texts no tokens)."""
    unk = tokenizer.unk_token_id
    if unk is None or not len(encoded):
        return None
    special = set(tokenizer.all_special_ids) - {unk}
    from .data.read import spread

    ids = np.concatenate([np.asarray(encoded.input_ids[int(i)], dtype=np.int64) for i in spread(len(encoded), rows)])
    ids = ids[~np.isin(ids, list(special))]
    return float((ids == unk).mean()) if len(ids) else None


def unknown_hint(tokenizer, encoded: Encoded) -> str | None:
    """What to say when UNKNOWN_WARN or more of the training texts' tokens are unknown to the tokenizer: the model
    reads little of them (a script or language its vocabulary lacks). It names no model: data_report.json is
    published with the model, and a model given as a local path would give that path away."""
    share = unknown_share(tokenizer, encoded)
    if share is None or share < UNKNOWN_WARN:
        return None
    return (f"{share:.0%} of the training texts' tokens are unknown to the model's tokenizer "
            f"({tokenizer.unk_token}): its vocabulary lacks much of these texts (another script or language?), so "
            f"the model reads little of them; a multilingual model covers more (model=xlm-roberta-base)")


def cache_key(tokenizer, texts: Sequence[str], max_length: int) -> str | None:
    """sha256 of the texts, the tokenizer (its whole serialized backend: vocabulary, normalizer, special tokens)
    and the limit; None for a slow tokenizer (nothing exact to key it by)."""
    plain = _plain_backend(tokenizer)
    if plain is None:
        return None
    h = hashlib.sha256(f"nlptransfer-tokens {FORMAT} {max_length} {plain.encode_special_tokens} "
                       f"{getattr(tokenizer, 'truncation_side', 'right')}\0".encode())
    h.update(hashlib.sha256(plain.to_str().encode()).digest())
    h.update(len(texts).to_bytes(8, "little"))
    for start in range(0, len(texts), CHUNK):
        h.update("\0".join(texts[start:start + CHUNK]).encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    return h.hexdigest()


def tokenize_cached(tokenizer, texts: Sequence[str], max_length: int, labels: list[int] | None = None,
                    folder: str | Path | None = None) -> Encoded:
    """As `tokenize`, the ids in an Arrow file under `folder` (default cache_root()/tokens), read memory-mapped: an
    entry with the same key is read instead of tokenizing (`cached` True) when the cache trusts it (cache.Entry: its
    sha256 matches, it is this user's alone), and held (a shared lock) as long as its ids are. A slow tokenizer
    tokenizes in memory."""
    key = cache_key(tokenizer, texts, max_length)
    if key is None:
        return tokenize(tokenizer, texts, max_length, labels)
    import pyarrow as pa

    entry = Entry(kind_folder(Path(folder or cache_root() / "tokens")) / f"{key}.arrow", folder=False)
    if (hold := entry.open()) is not None:
        try:
            ids, cut = _read(entry.path, hold)
            if len(ids) == len(texts):
                return Encoded(ids, labels, len(cut), cut, cached=True)
            problem = f"{len(ids)} rows, not {len(texts)}"
        except (OSError, pa.ArrowException) as e:  # written by another version of this code
            problem = str(e)
        logger.warning(f"cache: {entry.path} is not used: it cannot be read ({problem}); made again")
        hold.close()
    from .fsio import writing

    with writing(entry.path), entry.build() as temp:  # a full disk: one RunError naming the entry
        _write(temp, _chunks(tokenizer, texts, max_length))
    ids, cut = _read(entry.path, entry.hold)
    return Encoded(ids, labels, len(cut), cut)


def _write(path: Path, chunks) -> None:
    """The chunks' ids (list<int32>) and truncated flags as one Arrow IPC file at the new `path`."""
    import pyarrow as pa

    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("truncated", pa.bool_())])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for ids, long_rows in chunks:
            flags = np.zeros(len(ids), dtype=bool)
            flags[long_rows] = True
            writer.write_batch(pa.record_batch([pa.array(ids, type=pa.list_(pa.int32())), pa.array(flags)],
                                               schema=schema))


def _read(path: Path, hold: Hold) -> tuple[TokenIds, list[int]]:
    """TokenIds over the file's batches (memory-mapped, keeping `hold`, the cache's lock on it) and the positions of
    its truncated texts."""
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    flags = [b.column("truncated").to_numpy(zero_copy_only=False) for b in batches]
    cut = np.flatnonzero(np.concatenate(flags)).tolist() if flags else []
    return TokenIds([b.column("input_ids") for b in batches], hold), cut
