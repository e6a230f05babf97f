"""Shared fixtures: tiny random encoders built from configs, an in-memory tokenizer, small labelled files."""
from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_CACHE = tempfile.mkdtemp(prefix="nlptransfer-cache-")  # what the tests' runs cache: not the user's ~/.cache
os.environ["NLPTRANSFER_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Each test starts with an empty cache (data stage, token ids): a test sees what its own runs cached."""
    monkeypatch.setenv("NLPTRANSFER_CACHE", str(tmp_path_factory.mktemp("cache")))

POSITIVE = "good great excellent lovely superb amazing wonderful fantastic brilliant perfect".split()
NEGATIVE = "bad awful terrible poor horrible boring broken useless dreadful worst".split()
FILLER = "the a this that movie phone book film product story camera it was is very really quite so and".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER + ["not", "neutral", "okay"]

SHARED_SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"


@contextmanager
def captured_messages() -> Iterator[list[str]]:
    """The messages nlptransfer logs (info and up) while inside, in order."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("nlptransfer"), Collect(logging.INFO)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n short texts whose label is given by one sentiment word among filler (a tiny model can learn it)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        words = rng.sample(FILLER, rng.randint(2, 9))
        words.insert(rng.randint(0, len(words)), word)
        rows.append((" ".join(words) + f" {i}", label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def build_tiny_model(root: Path, kind: str) -> Path:
    """Save a tiny randomly initialised encoder of `kind` (with a WordPiece tokenizer) under root/kind."""
    import torch
    from transformers import (AutoModel, BertConfig, BertTokenizer, DebertaV2Config, DistilBertConfig,
                              ElectraConfig, RobertaConfig, XLMRobertaConfig)

    folder = root / kind
    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    common = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=66, pad_token_id=0)
    configs = {
        "bert": lambda: BertConfig(**common),
        "bert-nodropout": lambda: BertConfig(**common, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        "roberta": lambda: RobertaConfig(**common),
        "xlm-roberta": lambda: XLMRobertaConfig(**common),
        "electra": lambda: ElectraConfig(embedding_size=32, **common),
        "deberta-v2": lambda: DebertaV2Config(**common, relative_attention=True, position_buckets=16,
                                              pos_att_type=["p2c", "c2p"]),
        "distilbert": lambda: DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=3, n_heads=2,
                                               hidden_dim=64, max_position_embeddings=66, pad_token_id=0),
    }
    torch.manual_seed(0)
    AutoModel.from_config(configs[kind]()).save_pretrained(folder)
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, model_max_length=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny random models, built on first use."""
    root = tmp_path_factory.mktemp("tiny_models")

    class Models(dict):
        def __missing__(self, kind):
            self[kind] = build_tiny_model(root, kind)
            return self[kind]

    return Models()


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> Path:
    """A CSV of 120 labelled short texts that a tiny model learns."""
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", sentiment_rows(120))


def quick_overrides(model: Path, out: Path, **extra) -> dict:
    """Recipe overrides for a fast tiny-model run."""
    values = {"model": str(model), "output.dir": str(out), "training.epochs": 3, "training.batch_size": 8,
              "training.progress": False, "data.max_length": 32}
    values.update(extra)
    return values
