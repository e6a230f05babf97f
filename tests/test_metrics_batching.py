"""Metrics against hand-computed values; batching covers every row once and pads exactly."""
from __future__ import annotations

import numpy as np
import pytest

from nlptransfer.batching import Collator, LengthGroupedBatches
from nlptransfer.tokens import tokenize
from nlptransfer.metrics import classification_metrics, expected_calibration_error

from .conftest import sentiment_rows


def test_metrics_match_hand_computed_values():
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(gold, pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = (m["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"], b["f1"]) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    assert (c["precision"], c["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert [m["per_class"][k]["support"] for k in "abc"] == [3, 2, 1]


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    m = classification_metrics(gold, pred, list("wxyz"))
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))


def test_expected_calibration_error():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    gold = np.array([0, 1, 0, 1])
    # bins: 0.9 (2 rows, acc 0.5) -> |0.9-0.5|*2/4 = 0.2 ; 0.6 (acc 1) -> 0.4/4 = 0.1 ; 0.7 (acc 1) -> 0.3/4
    assert expected_calibration_error(probs, gold) == pytest.approx(0.2 + 0.1 + 0.075)


@pytest.mark.parametrize("group", [True, False])
def test_batches_cover_every_row_once_and_are_seeded(group):
    lengths = list(np.random.default_rng(1).integers(3, 60, 1003))
    sampler = LengthGroupedBatches(lengths, 32, seed=7, group_by_length=group)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1003))
        assert all(len(b) == 32 for b in batches[:-1]) and len(batches[-1]) == 1003 % 32
    assert sampler.batches(0) != sampler.batches(1)
    assert LengthGroupedBatches(lengths, 32, seed=7, group_by_length=group).batches(2) == sampler.batches(2)


def test_grouped_batches_cut_padding_but_stay_mixed():
    rng = np.random.default_rng(2)
    lengths = list(rng.integers(3, 60, 4000))
    labels = rng.integers(0, 2, 4000)

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    grouped = LengthGroupedBatches(lengths, 32, seed=0).batches(0)
    plain = LengthGroupedBatches(lengths, 32, seed=0, group_by_length=False).batches(0)
    assert padded(grouped) < 0.7 * padded(plain)
    # content stays mixed: the label share in each batch is as spread as in random batches
    share = [labels[b].mean() for b in grouped[:-1]]
    assert 0.35 < np.mean(share) < 0.65 and np.std(share) < 0.15
    # and order stays random: batch lengths are not sorted over the epoch
    means = [np.mean([lengths[i] for i in b]) for b in grouped]
    assert abs(np.corrcoef(range(len(means)), means)[0, 1]) < 0.3


def test_resume_offset_skips_used_batches():
    sampler = LengthGroupedBatches(list(range(1, 101)), 10, seed=3)
    sampler.epoch, sampler.start = 1, 4
    assert list(sampler) == sampler.batches(1)[4:]
    assert len(sampler) == 6


def test_collator_pads_dynamically():
    batch = Collator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [5], "labels": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_tokenize_truncates_and_counts(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    texts = ["good movie", " ".join(["very"] * 40), "bad " * 3]
    encoded = tokenize(tok, texts, max_length=16)
    assert encoded.truncated == 1
    assert encoded.lengths == [4, 16, 5]
    assert encoded.input_ids[1][-1] == tok.sep_token_id  # truncation keeps the closing special token


@pytest.mark.parametrize("cli_default", [True, False])
def test_a_bulk_pass_uses_the_tokenizers_threads_unless_the_user_turned_them_off(tiny_models, monkeypatch, cli_default):
    """The command line turns the fast tokenizer's threads off for its process (marking that it did); a bulk pass turns
    them on for its duration and back off after. A user's own TOKENIZERS_PARALLELISM=false stays off."""
    import os

    from transformers import AutoTokenizer

    from nlptransfer import tokens

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    backend = tokens._cutting_backend(tok, 16)
    seen = []

    class Recording:
        def encode_batch_fast(self, texts, add_special_tokens):
            seen.append(os.environ.get("TOKENIZERS_PARALLELISM"))
            return backend.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

        encode_batch = encode_batch_fast

    monkeypatch.setattr(tokens, "_cutting_backend", lambda tokenizer, limit: Recording())
    monkeypatch.setattr(tokens, "CHUNK", 2)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    if cli_default:
        monkeypatch.setenv(tokens.BULK_THREADS, "bulk")
    else:
        monkeypatch.delenv(tokens.BULK_THREADS, raising=False)
    encoded = tokenize(tok, ["good movie", "bad film", "fine"], max_length=16)
    assert len(encoded) == 3 and seen == ["true" if cli_default else "false"] * 2
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


def _byte_level_bpe():
    """A RoBERTa-style tokenizer (byte-level BPE, <s> ... </s>) trained in memory on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator([t for t, _ in sentiment_rows(200)] * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
    raw.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", sep_token="</s>", cls_token="<s>")


def test_tokenize_gives_what_the_tokenizer_gives(tiny_models):
    """The fast path (the Rust backend, called directly) gives the ids `tokenizer(...)` gives, on WordPiece (the
    tiny BERT and the embedded MiniLM) and byte-level BPE, truncation included, and leaves the tokenizer's own
    settings alone."""
    from transformers import AutoTokenizer

    from nlptransfer.tokens import _plain_backend
    from nlptransfer.models import embedded_path

    texts = [t for t, _ in sentiment_rows(30, seed=4)] + ["", "  spaces  ", "Émile's café, naïve!", "very " * 50,
                                                          "[SEP] <s> special-looking text"]
    for tok in (AutoTokenizer.from_pretrained(tiny_models["bert"]), AutoTokenizer.from_pretrained(embedded_path()),
                _byte_level_bpe()):
        assert _plain_backend(tok) is not None and _plain_backend(tok) is _plain_backend(tok)  # made once
        expected = tok(texts, truncation=True, max_length=24)["input_ids"]
        encoded = tokenize(tok, texts, max_length=24)
        assert encoded.input_ids == expected
        assert encoded.cut == [i for i, t in enumerate(tok(texts)["input_ids"]) if len(t) > 24] and encoded.cut
        assert tok(["good movie"], padding="max_length", max_length=8)["input_ids"][0][-1] == tok.pad_token_id


def test_cached_token_ids_are_the_tokenized_ones_read_back_memory_mapped(tiny_models, tmp_path):
    """tokenize_cached stores the ids in an Arrow file keyed by texts, tokenizer and limit: the first call tokenizes,
    the second reads the same ids, cut positions and lengths back; another limit or other texts are another entry; a
    damaged entry is made again."""
    from transformers import AutoTokenizer

    from nlptransfer.tokens import TokenIds, cache_key, tokenize_cached

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    texts = [t for t, _ in sentiment_rows(25, seed=5)] + ["very " * 30, ""]
    plain = tokenize(tok, texts, max_length=12)
    first = tokenize_cached(tok, texts, 12, labels=list(range(len(texts))), folder=tmp_path)
    second = tokenize_cached(tok, texts, 12, folder=tmp_path)
    entries = sorted(tmp_path.glob("*.arrow"))
    assert [p.name for p in entries] == [f"{cache_key(tok, texts, 12)}.arrow"]
    assert (first.cached, second.cached) == (False, True)
    assert isinstance(second.input_ids, TokenIds)
    for got in (first, second):
        assert [got.input_ids[i] for i in range(len(texts))] == plain.input_ids
        assert got.lengths == plain.lengths and got.cut == plain.cut and got.truncated == plain.truncated > 0
    assert first[3] == {"input_ids": plain.input_ids[3], "labels": 3}
    assert second.input_ids[-1] == plain.input_ids[-1] and second.input_ids[1:3] == plain.input_ids[1:3]
    with pytest.raises(IndexError):
        second.input_ids[len(texts)]
    assert not tokenize_cached(tok, texts, 16, folder=tmp_path).cached
    assert not tokenize_cached(tok, texts[:-1], 12, folder=tmp_path).cached
    assert len(list(tmp_path.glob("*.arrow"))) == 3
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # cut short, as by a full disk
    again = tokenize_cached(tok, texts, 12, folder=tmp_path)
    assert not again.cached and list(again.input_ids) == plain.input_ids


def test_split_by_length_cuts_where_padding_costs_more_than_a_pass():
    from nlptransfer.batching import split_by_length

    lengths = [5, 50, 6, 48, 7, 30]
    assert split_by_length(lengths, 1000) == [[0, 2, 4, 5, 3, 1]]  # a pass costs more than any padding
    assert split_by_length(lengths, 1e-6) == [[0], [2], [4], [5], [3], [1]]  # padding costs more than any pass
    # 25 tokens a pass: [5,6,7] (3x7 + 25 = 46) + [30,48,50] (3x50 + 25 = 175) beats one pass (6x50 + 25 = 325),
    # [5,6,7] [30] [48,50] (46 + 55 + 125 = 226) and [5,6,7,30] [48,50] (145 + 125 = 270)
    assert split_by_length(lengths, 25) == [[0, 2, 4], [5, 3, 1]]
    assert split_by_length([], 10) == [] and split_by_length([9], 10) == [[0]]
    parts = split_by_length(list(np.random.default_rng(0).integers(3, 60, 300)), 50)
    assert sorted(i for p in parts for i in p) == list(range(300))


def test_scores_no_better_than_the_class_balance_are_named():
    from nlptransfer.metrics import majority_warning

    names = ["neg", "pos", "neutral"]
    collapsed = classification_metrics([0, 1, 1, 1, 2], [1] * 5, names)
    assert majority_warning(collapsed) == (
        "the model predicts 'pos' for all 5 rows: its accuracy 0.6000 is that class's share, nothing learnt from the "
        "texts (more epochs or rows, training.class_weights=true, or the strategy's own training.lr may help)")
    below = classification_metrics([0, 1, 1, 1, 2], [0, 0, 2, 1, 1], names)  # 0.4 against 'pos' 0.6
    assert majority_warning(below) == ("accuracy 0.4000 is no better than always predicting 'pos' (0.6000, its share "
                                       "of the 5 rows)")
    assert majority_warning(classification_metrics([0, 1, 1, 1, 2], [0, 1, 1, 1, 1], names)) is None  # 0.8 > 0.6
    assert majority_warning(classification_metrics([1, 1], [1, 1], names)) is None  # one gold class: nothing to say
    assert majority_warning({"accuracy": 0.0, "mse": 1.0}) is None  # no confusion matrix (regression)


def test_a_run_summary_warns_per_task_when_a_model_learnt_only_the_balance(tmp_path):
    from types import SimpleNamespace

    from nlptransfer.run_context import say_metrics

    from .conftest import captured_messages

    names = ["a", "b"]
    tasks = {"topic": classification_metrics([0, 1, 1, 1], [1, 1, 1, 1], names),
             "urgency": classification_metrics([0, 1, 1, 1], [0, 1, 1, 1], names)}
    run = SimpleNamespace(root=tmp_path, path=lambda name: tmp_path / name)
    with captured_messages() as lines:
        say_metrics({"test": {"tasks": tasks, "accuracy": 0.875, "macro_f1": 0.7, "n": 4}}, run)
        say_metrics({"test": classification_metrics([0, 0, 1], [1, 1, 0], names)}, run)
    assert [line for line in lines if "predicts" in line or "no better" in line] == [
        "test, topic: the model predicts 'b' for all 4 rows: its accuracy 0.7500 is that class's share, nothing learnt "
        "from the texts (more epochs or rows, training.class_weights=true, or the strategy's own training.lr may help)",
        "test: accuracy 0.0000 is no better than always predicting 'a' (0.6667, its share of the 3 rows)"]
