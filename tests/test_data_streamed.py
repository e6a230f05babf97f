"""The streamed data stage (data.streamed, for files larger than memory) gives what the in-memory one gives: the
same splits, rows, report and problems, read a few rows at a time; and the split files (data.store) it writes."""
from __future__ import annotations

import dataclasses
import math
import pickle
import random
from pathlib import Path

import pandas as pd
import pytest

from nlptransfer.data import DataSpec, LabelledTexts, load_splits, streamed
from nlptransfer.data.problems import CONFLICT, DUPLICATE, FIX_ROWS
from nlptransfer.data.splitfiles import ArrowColumn, read_entry, write_split
from nlptransfer.errors import DataError

from .test_data import write_jsonl, write_rows

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"


def both(spec: DataSpec, tmp_path: Path, chunk: int = 7, seed: int = 42, whole=load_splits):
    """(in-memory result of `whole`, streamed result), each Splits or the DataError's problems."""
    def run(f):
        try:
            return f()
        except DataError as e:
            return e.problems

    plain = run(lambda: whole(spec, seed=seed))
    old = streamed.CHUNK_ROWS
    streamed.CHUNK_ROWS = chunk
    try:
        folder = tmp_path / f"streamed-{random.random()}"
        stream = run(lambda: streamed.load_splits_streamed(spec, seed, folder))
    finally:
        streamed.CHUNK_ROWS = old
    if isinstance(plain, list) or isinstance(stream, list):
        assert not folder.exists()  # a failed stage leaves nothing
    return plain, stream


def assert_same(plain, stream) -> None:
    assert not isinstance(plain, list), plain
    assert not isinstance(stream, list), stream
    assert stream.label_map.names == plain.label_map.names
    for name in ("train", "validation", "test"):
        a, b = getattr(plain, name), getattr(stream, name)
        assert (a is None) == (b is None), name
        if a is None:
            continue
        assert isinstance(b.texts, ArrowColumn)
        assert list(b.texts) == a.texts and b.labels == a.labels and list(b.rows) == a.rows, name
        assert {c: list(v) for c, v in b.slices.items()} == a.slices, name
    want, got = plain.report.to_dict(), stream.report.to_dict()
    for info in (*want["files"].values(), *got["files"].values()):
        info.pop("lines", None)  # counted when a file is read whole
    for inferred in (want["inferred"], got["inferred"]):  # the reasons quote shares of the rows seen: a chunk's
        for why in inferred.values():
            why.pop("reason")
    assert got == want


def messy_rows(n: int = 120) -> list[tuple[str, str, str]]:
    """Texts with a duplicate, a conflict, extra whitespace, an empty text and an empty label; a category column."""
    rows = [(f"text number {i} is {'fine' if i % 3 else 'poor'}", "pos" if i % 3 else "neg", f"c{i % 4}")
            for i in range(n)]
    rows[10] = ("text  number 3 is poor ", "neg", "c1")  # the same text as row 3 (whitespace aside), same label
    rows[20] = ("text number 5 is   fine", "neg", "c0")  # row 5's text with another label
    rows[30] = ("", "pos", "c2")
    rows[40] = ("a text without its label", "", "c3")
    return rows


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_carved_splits_and_report_match_the_in_memory_stage(tmp_path, drop, chunk):
    rows = [(*row, f"r{i % 3}") for i, row in enumerate(messy_rows())]  # a slice column called row, as the stage's own
    train = write_rows(tmp_path / "train.csv", rows, header=("text", "label", "shop", "row"))
    spec = DataSpec(train=str(train), val_fraction=0.15, test_fraction=0.15, drop_invalid=drop, max_drop_fraction=0.5,
                    slice_columns=["shop", "row"])
    plain, stream = both(spec, tmp_path, chunk)
    if drop:
        assert_same(plain, stream)
        assert sum(stream.report.dropped["train"].values()) == 5  # 2 conflicting, 1 empty text, 1 no label, 1 duplicate
    else:
        assert stream == plain and len(plain) == 3, plain  # empty text, missing label, conflict: the same messages


def test_given_files_unknown_labels_and_texts_also_in_train(tmp_path):
    rows = [(f"train text {i}", ["a", "b", "c"][i % 3]) for i in range(60)]
    train = write_rows(tmp_path / "train.csv", rows)
    val = write_rows(tmp_path / "val.csv", [("train text 1", "b"), ("train  text 2", "a"), ("new text", "d"),
                                            *[(f"val text {i}", "a") for i in range(5)]])
    test = write_rows(tmp_path / "test.csv", [(f"test text {i}", "b") for i in range(4)])
    spec = DataSpec(train=str(train), validation=str(val), test=str(test))
    plain, stream = both(spec, tmp_path, 9)
    assert stream == plain and len(plain) == 3, plain  # unknown 'd', one text in train, one with another label
    plain, stream = both(DataSpec(train=str(train), validation=str(val), test=str(test), drop_invalid=True,
                                  labels=["a", "b", "c", "d"]), tmp_path, 9)
    assert_same(plain, stream)
    assert stream.report.dropped["validation"] == {
        "the same text as a training row (whitespace aside)": 1,
        "the same text as a training row, with another label (label noise)": 1}


@pytest.mark.parametrize("drop", [True, False])
def test_label_map_bins_and_the_numeric_hint(tmp_path, drop):
    rows = [(f"review {i}", str(1 + i % 5)) for i in range(80)] + [(f"odd {i}", "n/a") for i in range(3)]
    train = write_rows(tmp_path / "stars.csv", rows)
    spec = DataSpec(train=str(train), label_map={"3": None}, drop_invalid=drop,
                    label_bins={"negative": [1, 2], "positive": [4, 5]})
    plain, stream = both(spec, tmp_path, 11)
    if drop:
        assert_same(plain, stream)
        assert stream.report.dropped["train"]["label dropped by data.label_map"] == 16
    else:
        assert stream == plain and "no data.label_bins range holds ('n/a'" in plain[0]
    plain, stream = both(DataSpec(train=str(train), test_fraction=0.2, val_fraction=0.2), tmp_path, 11)
    assert_same(plain, stream)
    assert "look numeric or ordinal (6 values from 1 to 5" in stream.report.hints[0]


def test_a_column_that_gives_the_label_away(tmp_path):
    rows = [(f"text {i}", "pos" if i % 2 else "neg", "shop" if i % 2 else "", f"t{i % 5}") for i in range(100)]
    train = write_rows(tmp_path / "leak.csv", rows, header=("text", "label", "source", "topic"))
    plain, stream = both(DataSpec(train=str(train), text_columns=["text", "source"]), tmp_path, 13)
    assert stream == plain and "gives the label away (it is filled only for label 'pos' (50 rows))" in plain[0]
    plain, stream = both(DataSpec(train=str(train), val_fraction=0.1, test_fraction=0.1), tmp_path, 13)
    assert_same(plain, stream)
    assert [leak["column"] for leak in stream.report.leaks] == ["source"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "tsv"])
def test_other_formats(tmp_path, fmt):
    records = [{"review": f"the {i}th item", "stars": "good" if i % 4 else "bad"} for i in range(90)]
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, records)
    elif fmt == "parquet":
        pd.DataFrame(records).to_parquet(path)
    else:
        write_rows(path, [tuple(r.values()) for r in records], header=("review", "stars"), delimiter="\t")
    plain, stream = both(DataSpec(train=str(path), val_fraction=0.2, test_fraction=0.2), tmp_path, 16)
    assert_same(plain, stream)


def test_column_problems_stop_at_once(tmp_path):
    train = write_rows(tmp_path / "train.csv", [("a", "x"), ("b", "y")] * 20)
    _, stream = both(DataSpec(train=str(train), label_column="stars", slice_columns=["shop"]), tmp_path)
    assert len(stream) == 2 and "'stars'" in stream[0] and "data.slice_columns" in stream[1]
    _, stream = both(DataSpec(train=str(tmp_path / "missing.csv")), tmp_path)
    assert stream == [f"data file not found: {tmp_path / 'missing.csv'}"]


def test_a_file_sorted_by_its_label_has_its_columns_inferred_from_rows_spread_over_it(tmp_path, monkeypatch):
    """Sentiment140's layout: no header, polarity first, 800,000 rows of 0 then 800,000 of 4, then id, date, query,
    user, text. Its first chunk holds one label, so inference on it chose another column (or none)."""
    rng = random.Random(0)
    words = "good bad day night love hate work home fun boring happy sad".split()
    rows = [("0" if i < 300 else "4", str(1467810369 + i), f"Mon Apr {6 + i % 20:02d} 22:19:45 PDT 2009", "NO_QUERY",
             f"user{rng.randrange(40)}", " ".join(rng.choice(words) for _ in range(8)) + f" #{i}") for i in range(600)]
    spec = DataSpec(train=str(write_rows(tmp_path / "s140.csv", rows, header=None)), val_fraction=0.1,
                    test_fraction=0.1)
    monkeypatch.setattr(streamed, "SAMPLE_ROWS", 20)  # 20 of each chunk of 100: 120 rows spread over the file
    plain, stream = both(spec, tmp_path, chunk=100)
    assert stream.report.inferred["label_column"] == {
        "column": "column_1", "reason": "it has the fewest distinct values (2) of the short columns; runner-up "
        "'column_3' (18 values, 100% filled): set data.label_column to choose it"}  # counted in the 120 rows
    assert_same(plain, stream)  # (it drops the reasons)
    assert stream.report.inferred["text_columns"]["columns"] == ["column_6"]
    assert stream.report.class_balance["train"] == {"0": 240, "4": 240}
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 100)
    sample = streamed.spread_sample(spec)  # what inference saw: 20 of each of the 6 chunks, sorted labels and all
    assert len(sample) == 120 and sample["column_1"].value_counts().to_dict() == {"0": 60, "4": 60}
    # named columns: no sample is read (the recipe's own columns, checked in the first chunk)
    monkeypatch.setattr(streamed, "spread_sample", lambda spec: pytest.fail("read a sample of named columns"))
    named = dataclasses.replace(spec, label_column="column_1", text_columns=["column_6"])
    assert_same(*both(named, tmp_path, chunk=100))


@pytest.mark.skipif(not SST2.is_file(), reason=f"needs {SST2} (../shared/data/sst2)")
def test_sst2_in_chunks_matches(tmp_path):
    spec = DataSpec(train=str(SST2), val_fraction=0.1, test_fraction=0.1, drop_invalid=True)
    plain, stream = both(spec, tmp_path, 5000)
    assert_same(plain, stream)
    assert len(stream.train) > 50_000


def test_arrow_column_reads_a_batch_at_a_time(tmp_path, monkeypatch):
    from nlptransfer.data import splitfiles

    monkeypatch.setattr(splitfiles, "BATCH", 4)
    texts = [f"t{i}" for i in range(10)]
    write_split(tmp_path / "s.arrow", LabelledTexts(texts, list(range(10)), list(range(1, 11)), {"k": ["x"] * 10}))
    column = ArrowColumn(tmp_path / "s.arrow", "text", 10)
    assert len(column) == 10 and column[5] == "t5" and column[-1] == "t9"
    assert column[3:9] == texts[3:9] and column[::3] == texts[::3] and column[8:100] == ["t8", "t9"]
    assert column == texts and texts == column and column != texts[:9] and list(column) == texts
    with pytest.raises(IndexError):
        column[10]
    again = pickle.loads(pickle.dumps(column))
    assert again == texts


def test_large_files_go_through_the_streamed_stage_and_the_cache(tmp_path, monkeypatch):
    from nlptransfer import pipeline
    from nlptransfer.recipe import resolve

    monkeypatch.setattr(streamed, "STREAM_BYTES", 0)
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 10)
    train = write_rows(tmp_path / "train.csv", [(f"text {i}", "pos" if i % 2 else "neg") for i in range(60)])
    for cache in (True, False):
        recipe = resolve("sentiment-minilm", str(train), {"data.cache": cache, "output.dir": str(tmp_path)})
        first = pipeline.load_data(recipe)
        second = pipeline.load_data(recipe)
        assert isinstance(first.train.texts, ArrowColumn) and first.train.texts == second.train.texts
        assert ("cache" in first.train.texts.path) == cache
        assert (first.train.texts.path == second.train.texts.path) == cache  # without the cache, made again
    assert read_entry(Path(first.train.texts.path).parent).train.texts == first.train.texts


@pytest.mark.parametrize("counts", [[50, 50], [700, 20, 3], [5, 9, 400, 2000], [2, 2]])
def test_stratified_picks_the_rows_sklearn_picks(counts):
    """carve.stratified (on arrays, for files of millions of rows; no private sklearn helper) gives the rows of
    sklearn's train_test_split."""
    from sklearn.model_selection import train_test_split

    from nlptransfer.data.carve import stratified

    rng = random.Random(sum(counts))
    labels = [f"class {k}" for k, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(labels)
    carve = [("test", 0.1), ("validation", 0.25)]
    for seed in (0, 42):
        try:
            got = stratified(pd.Series(labels).to_numpy(), carve, seed)
        except ValueError as e:
            got = str(e)
        try:
            rest, want, rest_labels, total = list(range(len(labels))), {}, labels, len(labels)
            for name, fraction in carve:
                rest, want[name], rest_labels, _ = train_test_split(
                    rest, rest_labels, test_size=math.ceil(fraction * total), stratify=rest_labels, random_state=seed)
            want["train"] = rest
            want = {k: sorted(v) for k, v in want.items()}
        except ValueError as e:
            want = str(e)
        if isinstance(want, str):
            assert got == want
        else:
            assert {k: v.tolist() for k, v in got.items()} == want


def test_a_cache_it_cannot_write_is_one_clear_message(tmp_path, monkeypatch):
    from nlptransfer import pipeline
    from nlptransfer.recipe import resolve

    monkeypatch.setattr(streamed, "STREAM_BYTES", 0)
    train = write_rows(tmp_path / "train.csv", [(f"text {i}", "pos" if i % 2 else "neg") for i in range(60)])
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("NLPTRANSFER_CACHE", str(blocked))
    with pytest.raises(DataError, match=r"cannot write the splits of .*train.csv to .*blocked.*: .*NLPTRANSFER_CACHE"):
        pipeline.load_data(resolve("sentiment-minilm", str(train), {"output.dir": str(tmp_path)}))
    assert blocked.read_text() == "a file where the cache folder would be"


# ---------------------------------------------------------------- multi-task files (data.label_columns)


def both_tasks(spec: DataSpec, tmp_path: Path, chunk: int = 7, seed: int = 42):
    """(in-memory result, streamed result) of a multi-task spec, each Splits or the DataError's problems."""
    from nlptransfer.data import load_multitask_splits

    plain, stream = both(spec, tmp_path, chunk, seed, whole=load_multitask_splits)
    if not (isinstance(plain, list) or isinstance(stream, list)):
        assert stream.tasks == plain.tasks and list(plain.tasks) == ["sentiment", "topic"]
    return plain, stream


def messy_task_rows(n: int = 120) -> list[tuple[str, str, str, str]]:
    """Two tasks (sentiment, topic) with a duplicate, a clash in one task, an empty text, a row with no label at
    all, rows missing one task's label; a slice column."""
    rows = [(f"text number {i} is {'fine' if i % 3 else 'poor'}", "pos" if i % 3 else "neg",
             ["books", "food", "toys"][i % 3 if i % 7 else (i + 1) % 3], f"c{i % 4}") for i in range(n)]
    rows[10] = ("text  number 3 is poor ", rows[3][1], rows[3][2], "c1")  # row 3's text (whitespace aside), same labels
    rows[20] = ("text number 5 is   fine", "pos", "books", "c0")  # row 5's text, another topic
    rows[30] = ("", "pos", "food", "c2")
    rows[40] = ("a text without any label", "", "", "c3")
    for i in (50, 61, 77):
        rows[i] = (rows[i][0], "", rows[i][2], rows[i][3])  # no sentiment: trains the topic only
    rows[88] = (rows[88][0], rows[88][1], "", rows[88][3])
    return rows


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_multitask_carved_splits_and_report_match_the_in_memory_stage(tmp_path, drop, chunk):
    train = write_rows(tmp_path / "train.csv", messy_task_rows(), header=("text", "sentiment", "topic", "shop"))
    spec = DataSpec(train=str(train), label_columns=["sentiment", "topic"], val_fraction=0.15, test_fraction=0.15,
                    drop_invalid=drop, slice_columns=["shop"])
    plain, stream = both_tasks(spec, tmp_path, chunk)
    if not drop:
        assert stream == plain and len(plain) == 3, plain  # empty text, no label, the topic clash: the same messages
        assert plain[2].startswith("train, task 'topic': 1 text(s) appear with different labels (2 rows: rows 6, 21)")
        return
    assert_same(plain, stream)
    assert stream.report.dropped["train"] == {"empty or missing text": 1, "no label in any label column": 1,
                                              CONFLICT: 2, DUPLICATE: 1}
    assert stream.report.rows_used == {"train": 79, "validation": 18, "test": 18}  # 120 read, 5 dropped
    assert stream.report.tasks["sentiment"]["missing"] == {"train": 2, "validation": 0, "test": 1}
    assert stream.report.tasks["topic"]["class_balance"]["test"] == {"books": 6, "food": 8, "toys": 4}
    assert stream.train.labels[:3] == [[0, 1], [1, 1], [1, 1]] and [-100, 0] in stream.test.labels


def test_multitask_given_files_labels_in_train_per_task(tmp_path):
    rows = [(f"train text {i}", ["a", "b"][i % 2], ["x", "y", "z"][i % 3]) for i in range(60)]
    header = ("text", "sentiment", "topic")
    train = write_rows(tmp_path / "train.csv", rows, header=header)
    val = write_rows(tmp_path / "val.csv", [("train text 1", "b", "y"), ("train  text 2", "a", "x"),
                                            ("train text 4", "", "y"), ("new text", "d", "x"),
                                            *[(f"val text {i}", "a", "z") for i in range(5)]], header=header)
    spec = DataSpec(train=str(train), validation=str(val), label_columns=["sentiment", "topic"], test_fraction=0.2)
    plain, stream = both_tasks(spec, tmp_path, 9)
    assert stream == plain and len(plain) == 3, plain  # unknown 'd'; texts 1 and 4 in train; text 2's topic differs
    assert plain[1] == ("validation: 2 text(s) also appear in train (rows 1, 3), which inflates the validation score; "
                        + FIX_ROWS)
    plain, stream = both_tasks(dataclasses.replace(spec, drop_invalid=True), tmp_path, 9)
    assert stream == plain == ["validation, task 'sentiment': labels never seen in training: 'd' (1 rows)"]


def test_a_large_multitask_file_streams_into_the_cache_and_is_read_back(tmp_path, monkeypatch, caplog):
    import json
    import logging

    from nlptransfer.data import load_multitask_splits, stage
    from nlptransfer.data.store import load_splits_cached

    monkeypatch.setattr(streamed, "STREAM_BYTES", 0)
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 10)
    train = write_rows(tmp_path / "train.csv", messy_task_rows(), header=("text", "sentiment", "topic", "shop"))
    spec = DataSpec(train=str(train), label_columns=["sentiment", "topic"], drop_invalid=True, slice_columns=["shop"])
    folder = tmp_path / "cache"
    first = load_splits_cached(spec, 42, None, folder)
    entries = list(folder.iterdir())
    assert len(entries) == 1 and first.train.texts.path == str(entries[0] / "train.arrow")
    meta = json.loads((entries[0] / "meta.json").read_text())
    assert {t: list(m["label2id"]) for t, m in meta["tasks"].items()} == {"sentiment": ["neg", "pos"],
                                                                          "topic": ["books", "food", "toys"]}
    assert_same(load_multitask_splits(spec, seed=42), first)  # streamed into the cache: what the whole file gives
    monkeypatch.setattr(stage, "read_and_check", lambda *a, **k: pytest.fail("the files were read again"))
    with caplog.at_level(logging.INFO, logger="nlptransfer"):
        second = load_splits_cached(spec, 42, None, folder)
    assert "(cached: " in caplog.text and second.tasks == first.tasks
    assert second.train.labels == first.train.labels and list(second.test.rows) == list(first.test.rows)
    assert {c: list(v) for c, v in second.test.slices.items()} == {c: list(v) for c, v in first.test.slices.items()}
    assert second.task_split("topic").test.labels == first.task_split("topic").test.labels
