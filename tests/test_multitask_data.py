"""The data stage of multi-task runs (data.label_columns): per-task label maps and checks, rows missing some labels,
carved splits stratified on the first task, evaluation files with some label columns; no models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlptransfer.data import DataSpec, LabelMap, load_multitask_splits, load_splits
from nlptransfer.data.schema import MISSING
from nlptransfer.data.carve import stratified
from nlptransfer.data.store import load_splits_cached
from nlptransfer.errors import DataError

from .test_data import write_jsonl, write_rows

HEADER = ("text", "sentiment", "category")
TASKS = ["sentiment", "category"]
FIX = "fix them, or set data.drop_invalid=true to drop them (they are counted in the report)"
AMAZON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon-domains"


def two_tasks(n: int, sentiments=("neg", "pos"), categories=("books", "food", "toys")) -> list[tuple[str, str, str]]:
    """n distinct texts, sentiment cycling by 2 and category by 3 (independent of each other)."""
    return [(f"text {i} about something", sentiments[i % len(sentiments)], categories[i % len(categories)])
            for i in range(n)]


def spec_of(path: Path, whole: bool = True, **kw) -> DataSpec:
    """A two-task spec of `path`; `whole` keeps every row in train (no carving)."""
    if whole:
        kw = {"val_fraction": 0.0, "test_fraction": 0.0, **kw}
    return DataSpec(train=str(path), label_columns=kw.pop("label_columns", TASKS), **kw)


def problems(spec: DataSpec, **kw) -> list[str]:
    with pytest.raises(DataError) as e:
        load_multitask_splits(spec, **kw)
    assert e.value.report is None or e.value.report.problems == e.value.problems
    return e.value.problems


# ---------------------------------------------------------------- reading


def test_two_tasks_are_read_with_a_label_map_each(tmp_path):
    rows = two_tasks(12)
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    splits = load_multitask_splits(spec_of(path))
    assert splits.tasks == {"sentiment": LabelMap(["neg", "pos"]), "category": LabelMap(["books", "food", "toys"])}
    assert list(splits.tasks) == TASKS
    assert splits.label_map == splits.tasks["sentiment"]
    assert splits.train.texts == [t for t, _, _ in rows]
    assert splits.train.labels == [[i % 2, i % 3] for i in range(12)]
    assert splits.train.rows == list(range(1, 13))
    assert (splits.validation, splits.test) == (None, None)
    report = splits.report
    assert report.rows_used == {"train": 12} and report.class_balance == {}
    assert report.tasks == {
        "sentiment": {"column": "sentiment", "class_balance": {"train": {"neg": 6, "pos": 6}}, "missing": {"train": 0}},
        "category": {"column": "category", "class_balance": {"train": {"books": 4, "food": 4, "toys": 4}},
                     "missing": {"train": 0}}}
    assert report.inferred["text_columns"]["columns"] == ["text"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["tasks"]["category"]["class_balance"]["train"] == {"books": 4, "food": 4, "toys": 4}
    assert "  category: books 4, food 4, toys 4" in report.summary_lines()


def test_the_task_order_is_the_label_columns_order(tmp_path):
    path = write_rows(tmp_path / "d.csv", two_tasks(12), header=HEADER)
    splits = load_multitask_splits(spec_of(path, label_columns=["category", "sentiment"]))
    assert list(splits.tasks) == ["category", "sentiment"]
    assert splits.label_map == LabelMap(["books", "food", "toys"])
    assert splits.train.labels[:3] == [[0, 0], [1, 1], [2, 0]]


def test_a_row_missing_one_label_keeps_missing_for_it(tmp_path):
    records = [{"text": f"text {i}", "sentiment": ["neg", "pos"][i % 2], "category": ["a", "b"][i % 2]}
               for i in range(10)]
    records[1]["category"] = None  # null: no label
    del records[2]["category"]  # absent: no label
    records[3]["sentiment"] = "  "  # blank: no label
    path = write_jsonl(tmp_path / "d.jsonl", records)
    splits = load_multitask_splits(spec_of(path))
    assert splits.train.labels[:5] == [[0, 0], [1, MISSING], [0, MISSING], [MISSING, 1], [0, 0]]
    assert splits.report.tasks["category"]["missing"] == {"train": 2}
    assert splits.report.tasks["sentiment"]["missing"] == {"train": 1}
    assert splits.report.tasks["category"]["class_balance"] == {"train": {"a": 4, "b": 4}}
    assert "  category: a 4, b 4; 2 row(s) without a category label" in splits.report.summary_lines()
    assert splits.report.dropped == {}


def test_a_row_without_any_label_is_a_problem_or_dropped(tmp_path):
    rows = two_tasks(20)
    rows[4] = (rows[4][0], "", "")
    rows[7] = (rows[7][0], " ", "")
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert problems(spec_of(path)) == [
        f"train: 2 row(s) have no label in any of the label columns (rows 5, 8); {FIX}"]
    splits = load_multitask_splits(spec_of(path, drop_invalid=True))
    assert splits.report.dropped == {"train": {"no label in any label column": 2}}
    assert splits.train.rows == [r for r in range(1, 21) if r not in (5, 8)]
    assert "dropped 2 train rows (10.0% of 20): no label in any label column" in splits.report.summary_lines()


def test_empty_texts_are_a_problem_or_dropped(tmp_path):
    rows = two_tasks(20)
    rows[0] = ("", "neg", "books")
    rows[3] = ("  ", "", "")  # each check names it (as load_splits does); dropped, it is counted once
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert problems(spec_of(path)) == [f"train: 2 row(s) have an empty or missing text (rows 1, 4); {FIX}",
                                       f"train: 1 row(s) have no label in any of the label columns (rows 4); {FIX}"]
    splits = load_multitask_splits(spec_of(path, drop_invalid=True))
    assert splits.report.dropped == {"train": {"empty or missing text": 2}}
    assert len(splits.train) == 18


def test_drop_invalid_refuses_to_drop_too_much(tmp_path):
    rows = [(t, "", "") if i % 4 >= 2 else (t, s, c) for i, (t, s, c) in enumerate(two_tasks(20))]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    found = problems(spec_of(path, drop_invalid=True, max_drop_fraction=0.3))
    assert found == ["train: data.drop_invalid would drop 10 of 20 rows (50.0%: 10 no label in any label column), "
                     "more than data.max_drop_fraction (30%): fix the data or the chosen columns, or raise "
                     "data.max_drop_fraction to train on what is left"]


def test_a_missing_label_column_in_the_training_file_is_a_problem(tmp_path):
    path = write_rows(tmp_path / "d.csv", two_tasks(10), header=("text", "sentiment", "categroy"))
    found = problems(spec_of(path))
    assert found == [f"train file {path}: data.label_columns: column 'category' not found; did you mean 'categroy'? "
                     f"(columns: text, sentiment, categroy)"]
    val = write_rows(tmp_path / "val.csv", [("v", "pos")], header=("text", "sentiment"))
    good = write_rows(tmp_path / "good.csv", two_tasks(10), header=HEADER)
    found = problems(spec_of(good, validation=str(val)))
    assert found == [f"validation file {val}: data.label_columns: column 'category' not found "
                     f"(columns: text, sentiment)"]


def test_single_label_column_settings_are_refused_at_once(tmp_path):
    path = write_rows(tmp_path / "d.csv", two_tasks(10), header=HEADER)
    with pytest.raises(DataError) as e:
        load_multitask_splits(spec_of(path, label_column="sentiment", label_map={"neg": "negative"}))
    assert str(e.value) == ("data.label_column, data.label_map apply to a single label column; with "
                            "data.label_columns (multi-task) leave them out (each task's labels are its column's "
                            "values)")
    assert problems(spec_of(path, labels=["neg", "pos"]))[0].startswith("data.labels applies to a single label column")
    assert problems(spec_of(path, text_columns=["text", "category"])) == [
        "data.text_columns joins the label column(s) 'category': the model would read the labels it is to predict; "
        "remove them from data.text_columns"]


# ---------------------------------------------------------------- checks per task


def test_an_unknown_validation_label_names_its_task(tmp_path):
    train = write_rows(tmp_path / "train.csv", two_tasks(12), header=HEADER)
    val = write_rows(tmp_path / "val.csv", [("v1", "pos", "books"), ("v2", "neg", "games"), ("v3", "", "games")],
                     header=HEADER)
    found = problems(spec_of(train, validation=str(val)))
    assert found == ["validation, task 'category': labels never seen in training: 'games' (2 rows)"]


def test_a_single_class_names_its_task(tmp_path):
    path = write_rows(tmp_path / "d.csv", two_tasks(10, categories=("books",)), header=HEADER)
    assert problems(spec_of(path)) == [
        "train, task 'category' has a single class 'books': a classifier needs at least two labels"]
    empty = write_rows(tmp_path / "e.csv", two_tasks(10, categories=("",)), header=HEADER)
    assert problems(spec_of(empty)) == [
        "train, task 'category' has no labels: column 'category' is empty in every row; fill it, or leave it out of "
        "data.label_columns"]


def test_a_column_that_copies_the_second_task_leaks_for_it(tmp_path):
    rows = [(t, s, c, f"shelf-{c}") for t, s, c in two_tasks(40)]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER + ("shelf",))
    splits = load_multitask_splits(spec_of(path, text_columns=["text"]))
    assert splits.report.leaks == [{"column": "shelf", "rows": 40, "accuracy": 1.0, "task": "category",
                                    "why": "its value predicts the label for 100.0% of the 40 rows that have one"}]
    found = problems(spec_of(path, text_columns=["text", "shelf"]))
    assert found == ["task 'category': data.text_columns joins 'shelf', which gives the label away (its value "
                     "predicts the label for 100.0% of the 40 rows that have one): the model would learn that column, "
                     "not the texts; remove it from data.text_columns, or set data.allow_leaks=true if you mean it"]
    assert load_multitask_splits(spec_of(path, text_columns=["text", "shelf"], allow_leaks=True)).train.texts[0] == (
        "text 0 about something\nshelf-books")


def test_leaks_are_judged_on_the_rows_labelled_for_the_task(tmp_path):
    # 'shelf' copies the category where there is one: a leak on those 30 rows, nothing for the sentiment
    rows = [(t, s, "", "") if i % 4 == 0 else (t, s, c, f"shelf-{c}") for i, (t, s, c) in enumerate(two_tasks(40))]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER + ("shelf",))
    splits = load_multitask_splits(spec_of(path, text_columns=["text"]))
    assert [(leak["task"], leak["column"], leak["rows"]) for leak in splits.report.leaks] == [
        ("category", "shelf", 30)]


def test_label_clashes_are_found_per_task(tmp_path):
    rows = two_tasks(12)
    rows[5] = (rows[1][0], rows[1][1], "toys")  # the text of row 2, same sentiment, another category
    rows[9] = (rows[3][0], rows[3][1], "")  # the text of row 4 without a category: no clash
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert problems(spec_of(path)) == [
        f"train, task 'category': 1 text(s) appear with different labels (2 rows: rows 2, 6): label noise; {FIX}"]
    rows[5] = (rows[1][0], "neg", "toys")  # now another sentiment too: one problem per task, the rows dropped once
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert [p.split(":")[0] for p in problems(spec_of(path))] == ["train, task 'sentiment'", "train, task 'category'"]
    splits = load_multitask_splits(spec_of(path, drop_invalid=True))
    assert splits.report.dropped == {"train": {"the same text as another row with another label (label noise)": 2}}
    assert 2 not in splits.train.rows and 6 not in splits.train.rows and 10 in splits.train.rows


def test_texts_also_in_train_are_a_problem_or_dropped(tmp_path):
    rows = two_tasks(12)
    train = write_rows(tmp_path / "train.csv", rows, header=HEADER)
    test_rows = [rows[0], ("fresh", "pos", "toys"), (rows[1][0], rows[1][1], "books"), ("no labels", "", "")]
    test = write_rows(tmp_path / "test.csv", test_rows, header=HEADER)
    found = problems(spec_of(train, test=str(test)))
    assert found == [f"test: 1 row(s) have no label in any of the label columns (rows 4); {FIX}",
                     f"test: 1 text(s) also appear in train (rows 1), which inflates the test score; {FIX}",
                     f"test: 1 text(s) also appear in train with another label (rows 3), label noise, not a leak; "
                     f"{FIX}"]
    splits = load_multitask_splits(spec_of(train, test=str(test), drop_invalid=True, max_drop_fraction=0.9))
    assert splits.report.dropped["test"] == {
        "no label in any label column": 1, "the same text as a training row (whitespace aside)": 1,
        "the same text as a training row, with another label (label noise)": 1}
    assert splits.test.texts == ["fresh"] and splits.test.labels == [[1, 2]]


def test_every_problem_is_collected_into_one_error(tmp_path):
    rows = two_tasks(12, categories=("books",))
    rows[2] = ("", "neg", "books")
    rows[3] = (rows[3][0], "", "")
    train = write_rows(tmp_path / "train.csv", rows, header=HEADER)
    val = write_rows(tmp_path / "val.csv", [("v1", "meh", "books")], header=HEADER)
    with pytest.raises(DataError) as e:
        load_multitask_splits(spec_of(train, validation=str(val)))
    found = e.value.problems
    assert len(found) == 4
    assert found[0] == f"train: 1 row(s) have an empty or missing text (rows 3); {FIX}"
    assert found[1] == f"train: 1 row(s) have no label in any of the label columns (rows 4); {FIX}"
    assert found[2] == "validation, task 'sentiment': labels never seen in training: 'meh' (1 rows)"
    assert found[3] == "train, task 'category' has a single class 'books': a classifier needs at least two labels"
    assert str(e.value).startswith("4 problems with the data:\n  - train: 1 row(s)")
    assert e.value.report.problems == found and e.value.report.files["train"]["rows_read"] == 12


# ---------------------------------------------------------------- splits


def test_carved_splits_are_seeded_stratified_on_the_first_task_and_disjoint(tmp_path):
    rows = [(f"text {i}", "a" if i < 60 else "b" if i < 90 else "c", ["x", "y", ""][i % 3]) for i in range(100)]
    rows += [rows[7], rows[8]]  # duplicates: dropped before carving
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    spec = spec_of(path, whole=False, val_fraction=0.1, test_fraction=0.2)
    splits = load_multitask_splits(spec, seed=7)
    assert splits.report.dropped == {"train": {"the same text and label as an earlier row (kept the first, so no "
                                               "text is in two splits)": 2}}
    assert splits.report.rows_used == {"train": 70, "validation": 10, "test": 20}
    assert splits.report.files["test"] == {"made_from": "train", "fraction": 0.2, "seed": 7}
    # exactly the rows the stratified split of the first task's labels picks
    expected = stratified(np.array([r[1] for r in rows[:100]], dtype=object), [("test", 0.2), ("validation", 0.1)], 7)
    for name in ("train", "validation", "test"):
        assert getattr(splits, name).rows == [int(i) + 1 for i in expected[name]]
    balance = splits.report.tasks["sentiment"]["class_balance"]
    assert balance["test"] == {"a": 12, "b": 6, "c": 2} and balance["validation"] == {"a": 6, "b": 3, "c": 1}
    parts = [set(getattr(splits, n).rows) for n in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 100 and set.union(*parts) == set(range(1, 101))
    assert sum(splits.report.tasks["category"]["missing"].values()) == 33
    again = load_multitask_splits(spec, seed=7)
    assert again.test.rows == splits.test.rows and again.validation.labels == splits.validation.labels
    assert load_multitask_splits(spec, seed=8).test.rows != splits.test.rows


def test_rows_without_a_first_task_label_are_a_stratum_of_their_own(tmp_path):
    rows = [(f"text {i}", "" if i % 5 == 0 else ["a", "b"][i % 2], ["x", "y"][i % 2]) for i in range(50)]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    splits = load_multitask_splits(spec_of(path, whole=False, val_fraction=0.2, test_fraction=0.2))
    missing = splits.report.tasks["sentiment"]["missing"]
    assert missing == {"train": 6, "validation": 2, "test": 2}  # 10 of 50: a fifth in each split
    # one such row is too few to be a stratum (sklearn needs 2 per class): it goes with the most common class
    rows = [(f"text {i}", "" if i == 0 else ["a", "b"][i % 2], ["x", "y"][i % 2]) for i in range(50)]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    splits = load_multitask_splits(spec_of(path, whole=False, val_fraction=0.2, test_fraction=0.2))
    assert splits.report.rows_used == {"train": 30, "validation": 10, "test": 10}
    assert sum(splits.report.tasks["sentiment"]["missing"].values()) == 1


def test_a_class_too_small_for_another_task_names_it(tmp_path):
    rows = two_tasks(30, categories=("books", "food"))
    rows[4] = (rows[4][0], rows[4][1], "rare")
    rows[5] = (rows[5][0], rows[5][1], "rare")
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert problems(spec_of(path, whole=False)) == [
        "task 'category': class too small to split: 'rare' has 2 row(s) in train; making the test and validation "
        "split(s) needs at least 3 rows per class: add rows, supply data.validation/data.test files, or set "
        "data.val_fraction / data.test_fraction to 0"]
    # the first task, which the split is stratified on: the same wording, and the split sizes checked too
    rows = rows[:6] + [(f"more {i}", "neg", "toys") for i in range(4)]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    assert problems(spec_of(path, whole=False, label_columns=["category", "sentiment"])) == [
        "task 'category': class too small to split: 'books' has 2, 'food' has 2, 'rare' has 2 row(s) in train; "
        "making the test and validation split(s) needs at least 3 rows per class: add rows, supply "
        "data.validation/data.test files, or set data.val_fraction / data.test_fraction to 0",
        "task 'category': a test split of 0.1 x 10 rows gives 1 rows for 4 classes: raise data.test_fraction or add "
        "rows",
        "task 'category': a validation split of 0.1 x 10 rows gives 1 rows for 4 classes: raise data.val_fraction or "
        "add rows"]


def test_slice_columns_follow_the_rows(tmp_path):
    rows = [(t, s, c, ["web", "app"][i % 2]) for i, (t, s, c) in enumerate(two_tasks(12))]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER + ("channel",))
    splits = load_multitask_splits(spec_of(path, text_columns=["text"], slice_columns=["channel"]))
    assert splits.train.slices == {"channel": ["web", "app"] * 6}
    assert splits.task_split("category").train.slices == {"channel": ["web", "app"] * 6}


def test_task_split_gives_the_rows_labelled_for_one_task(tmp_path):
    rows = [(t, s, "" if i % 4 == 0 else c) for i, (t, s, c) in enumerate(two_tasks(40))]
    path = write_rows(tmp_path / "d.csv", rows, header=HEADER)
    splits = load_multitask_splits(spec_of(path, whole=False, val_fraction=0.2, test_fraction=0.2))
    one = splits.task_split("category")
    assert one.label_map == LabelMap(["books", "food", "toys"]) and one.tasks is None
    for name in ("train", "validation", "test"):
        full, part = getattr(splits, name), getattr(one, name)
        keep = [i for i, labels in enumerate(full.labels) if labels[1] != MISSING]
        assert part.rows == [full.rows[i] for i in keep]
        assert part.labels == [full.labels[i][1] for i in keep]
        assert part.texts == [full.texts[i] for i in keep]
        assert len(part) == len(full) - splits.report.tasks["category"]["missing"][name]
    assert len(splits.task_split("sentiment").train) == len(splits.train)


# ---------------------------------------------------------------- evaluation


def test_evaluating_a_file_with_one_of_two_label_columns_scores_that_task(tmp_path):
    path = write_rows(tmp_path / "eval.csv", [(f"t{i}", "pos") for i in range(5)], header=("text", "sentiment"))
    known = {"sentiment": ["neg", "pos"], "category": ["books", "food"]}
    splits = load_multitask_splits(spec_of(path), purpose="evaluate", known=known)
    assert splits.tasks == {"sentiment": LabelMap(["neg", "pos"])}
    assert splits.train.labels == [[1]] * 5
    assert splits.report.tasks["sentiment"]["class_balance"] == {"train": {"neg": 0, "pos": 5}}
    assert splits.report.inferred["tasks"] == {"columns": ["sentiment"],
                                               "reason": f"'category' not in {path}: that task is not scored"}
    bad = write_rows(tmp_path / "bad.csv", [("t", "pos"), ("u", "meh")], header=("text", "sentiment"))
    assert problems(spec_of(bad), purpose="evaluate", known=known) == [
        "evaluation file, task 'sentiment': labels the run was not trained on (it knows 'neg', 'pos'): 'meh' (1 rows)"]
    none = write_rows(tmp_path / "none.csv", [("t", "pos")], header=("text", "label"))
    assert problems(spec_of(none), purpose="evaluate", known=known) == [
        f"evaluation file {none}: none of the run's label columns (sentiment, category) is in it (columns: text, "
        f"label): it needs at least one to score the run"]


# ---------------------------------------------------------------- wiring


def test_the_cached_stage_caches_the_multitask_stage(tmp_path, caplog):
    path = write_rows(tmp_path / "d.csv", two_tasks(30), header=HEADER)
    folder = tmp_path / "cache"
    splits = load_splits_cached(spec_of(path, whole=False), 42, None, folder)
    assert list(splits.tasks) == TASKS and splits.train.labels[0] in ([0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2])
    assert [p.name for p in next(folder.iterdir()).iterdir()] and len(list(folder.iterdir())) == 1
    caplog.set_level("INFO")
    caplog.clear()
    again = load_splits_cached(spec_of(path, whole=False), 42, None, folder)
    assert again.tasks == splits.tasks and again.train.labels == splits.train.labels
    assert f"(cached: {next(folder.iterdir())})" in caplog.text  # read back from the entry
    one = load_splits_cached(spec_of(path, whole=False, label_columns=["category"]), 42, None, folder)
    plain = load_splits(DataSpec(train=str(path), label_column="category"))
    assert one.tasks is None and one.label_map == plain.label_map and one.train.labels == plain.train.labels
    with pytest.raises(DataError, match="name different label columns"):
        load_splits_cached(spec_of(path, label_columns=["category"], label_column="sentiment"), 42, None, folder)


def test_messages_name_no_task_when_given_none():
    from nlptransfer.data.problems import TRAINING, clash_problem, single_class_problem, unknown_labels_problem

    assert single_class_problem("a") == "train has a single class 'a': a classifier needs at least two labels"
    assert unknown_labels_problem(TRAINING, "test", pd.Series({"x": 2}), None, "train") == (
        "test: labels never seen in training: 'x' (2 rows)")
    assert clash_problem(TRAINING, "train", 1, 2, [1, 2], task="t").startswith("train, task 't': 1 text(s)")


# ---------------------------------------------------------------- a real public file


def test_amazon_reviews_of_two_domains_load_as_two_tasks(tmp_path):
    if not (AMAZON / "books" / "labelled.csv").is_file():
        pytest.skip(f"{AMAZON} is absent (the Amazon multi-domain sentiment folder of ../shared/data)")
    parts = []
    for domain in ("books", "kitchen"):
        frame = pd.read_csv(AMAZON / domain / "labelled.csv", dtype=str, keep_default_na=False)
        parts.append(frame.sample(n=200, random_state=0).assign(domain=domain))
    pool = pd.concat(parts, ignore_index=True).rename(columns={"label": "sentiment"})
    pool.loc[pool.index % 10 == 3, "sentiment"] = ""  # some rows without a sentiment label: they train domain only
    path = tmp_path / "pooled.csv"
    pool[["text", "sentiment", "domain"]].to_csv(path, index=False)
    splits = load_multitask_splits(DataSpec(train=str(path), label_columns=["sentiment", "domain"]), seed=13)
    assert splits.tasks == {"sentiment": LabelMap(["negative", "positive"]), "domain": LabelMap(["books", "kitchen"])}
    assert splits.report.rows_used == {"train": 320, "validation": 40, "test": 40}
    assert sum(splits.report.tasks["sentiment"]["missing"].values()) == 40
    for name in ("validation", "test"):  # stratified on sentiment: both sentiments and both domains in every split
        assert all(v > 0 for v in splits.report.tasks["sentiment"]["class_balance"][name].values())
        assert all(v > 0 for v in splits.report.tasks["domain"]["class_balance"][name].values())
    assert splits.report.leaks == [] and splits.report.dropped == {}
    assert sorted(splits.train.rows + splits.validation.rows + splits.test.rows) == list(range(1, 401))
