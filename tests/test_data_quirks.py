"""Real files read right the first time: each quirk that real public data sets showed, on a small file built here
with the same quirk (never a copy of anyone's data), and the pre-flight `check` that says what a run would do."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

import nlptransfer
from nlptransfer.cli import main
from nlptransfer.data import DataSpec, load_splits, read_table
from nlptransfer.errors import DataError

from .conftest import NEGATIVE, POSITIVE, quick_overrides, sentiment_rows, write_csv

WORDS = "the service was slow but the staff were friendly and the room clean quiet cheap noisy".split()


def _sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ("positive", "negative")[i % 2]
        words = rng.sample(WORDS, 6) + [rng.choice(POSITIVE if label == "positive" else NEGATIVE), f"n{i}"]
        rows.append((" ".join(words), label))
    return rows


def _problems(spec: DataSpec) -> list[str]:
    with pytest.raises(DataError) as e:
        load_splits(spec)
    return e.value.problems


def whole(path: Path, **kw) -> DataSpec:
    return DataSpec(train=str(path), val_fraction=0.0, test_fraction=0.0, **kw)


# -- 1. quote characters that do not delimit fields ----------------------------------------------------------------

def test_1_a_lone_quote_in_a_headerless_tsv_keeps_every_line_a_row(tmp_path):
    rows = [('"' + t if i % 7 == 0 else t, str(i % 2)) for i, (t, _) in enumerate(_sentences(60))]  # opening quotes
    path = tmp_path / "sentences.txt"
    path.write_text("".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    table = read_table(path)
    assert len(table.frame) == 60 and table.frame.shape[1] == 2
    assert table.quoting == "none" and table.info()["lines"] == 60
    assert "quote characters do not delimit fields" in table.reasons["quoting"]
    assert table.frame.iloc[0, 0] == rows[0][0]  # the quote kept as a character
    splits = load_splits(whole(path))
    assert len(splits.train) == 60  # no merged rows, so no false duplicates


def test_1_quoted_line_breaks_stay_one_row_and_are_counted(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"first line\nsecond line",pos\n"one, with a comma",neg\nplain,pos\n', encoding="utf-8")
    table = read_table(path)
    assert table.frame["text"].tolist() == ["first line\nsecond line", "one, with a comma", "plain"]
    assert table.quoting == "standard" and "1 line breaks are inside quoted fields" in table.reasons["quoting"]


# -- 2. delimiters other than comma and tab ------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter, name", [("@", "@"), (";", "semicolon"), ("|", "pipe")])
def test_2_the_delimiter_is_sniffed_and_said(tmp_path, delimiter, name):
    rows = [(t.replace("slow", "slow, and"), y) for t, y in _sentences(40)]  # commas inside the texts
    path = tmp_path / "file.csv"
    path.write_bytes("".join(f"{t}{delimiter}{y}\r\n" for t, y in rows).encode("latin-1"))
    table = read_table(path)
    assert table.delimiter == delimiter and table.frame.shape == (40, 2)
    assert table.reasons["delimiter"].startswith(f"{name} splits 100% of the first lines (or records) into 2 fields")
    splits = load_splits(whole(path))
    assert splits.label_map.names == ("negative", "positive") and len(splits.train) == 40


def test_2_one_column_says_which_delimiters_were_tried(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{t} ~ {y}\n" for t, y in _sentences(20)), encoding="utf-8")
    table = read_table(path)
    assert table.frame.shape[1] == 1
    assert "no delimiter of ',', '\\t', ';', '|', '@', ':' splits the lines consistently" in table.reasons["delimiter"]
    assert "set data.delimiter" in table.reasons["delimiter"]


# -- 3. the label column of a wide CSV -------------------------------------------------------------------------------

def _wide_rows(n: int = 120) -> tuple[list[str], list[tuple]]:
    header = ["tweet_id", "airline_sentiment", "airline_sentiment_confidence", "negativereason", "airline",
              "airline_sentiment_gold", "name", "text", "tweet_created"]
    rows = []
    for i, (text, label) in enumerate(_sentences(n)):
        label = ("positive", "negative", "neutral")[i % 3]
        rows.append((f"5703061{i:05d}", label, f"0.{i % 9 + 1}", "late flight" if label == "negative" and i % 2 else
                     ("rude staff" if label == "negative" else ""), ("Virgin", "United")[i % 2],
                     label if i in (3, 40) else "", f"user{i}", text, f"2015-02-24 11:{i % 60:02d}:00 -0800"))
    return header, rows


def test_3_the_full_label_column_wins_over_a_sparse_gold_one_and_the_runner_up_is_named(tmp_path):
    header, rows = _wide_rows()
    path = write_csv(tmp_path / "tweets.csv", rows, header=tuple(header))
    splits = load_splits(whole(path))
    inferred = splits.report.inferred
    assert inferred["label_column"]["column"] == "airline_sentiment"
    assert "runner-up" in inferred["label_column"]["reason"]
    assert inferred["text_columns"]["columns"] == ["text"]
    hint = inferred["text_columns"]["reason"]
    assert "tweet_id" not in hint and "tweet_created" not in hint  # ids and timestamps are not text


def test_3_a_text_that_ran_on_into_unnamed_columns_is_hinted_and_can_be_joined(tmp_path):
    """The SMS Spam Collection's spam.csv: header 'class,message,,,' and, in a few rows, a message whose unquoted
    commas carried its rest into the unnamed columns after it."""
    rows = [(label, text, "", "", "") for text, label in _sentences(40)]
    rows[4] = (rows[4][0], "free prize call now", " PO Box 5249", " MK17 92H", "")
    rows[9] = (rows[9][0], "win cash", " reply stop", "", "")
    path = tmp_path / "spam.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("class", "message", "", "", "")] + rows)
    splits = load_splits(whole(path))
    assert splits.report.inferred["text_columns"]["columns"] == ["message"]
    assert splits.report.hints == [
        "2 row(s) have values in the unnamed column(s) column_3, column_4 after 'message' (rows 5, 10): texts with an "
        "unquoted delimiter that ran on? Those parts are not read; to join them: data.text_columns=[message, column_3, "
        "column_4]"]
    assert "free prize call now" in splits.train.texts
    joined = load_splits(whole(path, text_columns=["message", "column_3", "column_4"]))
    assert joined.report.hints == []
    assert any(t.startswith("free prize call now") and "PO Box 5249" in t and "MK17 92H" in t
               for t in joined.train.texts)
    # the same in a multi-task file, its label columns before the text
    tasks = tmp_path / "tasks.csv"
    with open(tasks, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("class", "topic", "message", "", "", "")]
                                + [(r[0], ("a", "b")[i % 2], *r[1:]) for i, r in enumerate(rows)])
    hints = load_splits(whole(tasks, label_columns=["class", "topic"])).report.hints
    assert hints == [splits.report.hints[0].replace("column_3, column_4", "column_4, column_5")]
    assert "data.text_columns=[message, column_4, column_5]" in hints[0]


def test_3b_a_file_sorted_by_its_label_has_its_label_column_found_and_counted_over_every_row(tmp_path):
    """Twitter US Airline Sentiment's Tweets.csv sorted by its label (a usual layout: the negatives, then the rest):
    the columns were judged on its first 2,000 rows, where 'airline_sentiment' held one value and so was no label,
    and 'airline' (6 values) was chosen with '2 values'. Judged on rows spread over the file, counted over all."""
    airlines = ["American", "Delta", "Southwest", "US Airways", "United", "Virgin America"]
    labels = ["negative"] * 2100 + ["neutral"] * 250 + ["positive"] * 250
    rows = [(f"{i}", label, airlines[i * 6 // len(labels)], f"@{airlines[i * 6 // len(labels)]} flight {i} was "
             + {"negative": "late and awful", "neutral": "on a tuesday", "positive": "great, thanks"}[label])
            for i, label in enumerate(labels)]
    rows.sort(key=lambda r: (r[1], r[2]))  # sorted by label, then airline within it, as the real file sorts
    path = write_csv(tmp_path / "tweets.csv", rows, header=("tweet_id", "airline_sentiment", "airline", "text"))
    report = load_splits(whole(path)).report
    assert report.inferred["label_column"] == {
        "column": "airline_sentiment", "reason": "its name 'airline_sentiment' says labels, and it has 3 distinct "
        "values; runner-up 'airline' (6 values, 100% filled): set data.label_column to choose it"}
    # headerless and sorted: the label column found, its classes counted over all rows
    bare = tmp_path / "bare.csv"
    with open(bare, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([(r[3], r[1]) for r in rows])
    splits = load_splits(whole(bare))
    assert splits.report.inferred["label_column"] == {
        "column": "column_2", "reason": "it has the fewest distinct values (3) of the short columns"}
    assert list(splits.label_map.names) == ["negative", "neutral", "positive"] and len(splits.train) == 2600


# -- 4. training on a sliver ---------------------------------------------------------------------------------------

def test_4_dropping_most_of_a_split_is_refused_and_the_share_is_said(tmp_path):
    rows = [(t, y if i < 5 else "") for i, (t, y) in enumerate(_sentences(100))]
    path = write_csv(tmp_path / "sparse.csv", rows)
    problems = _problems(whole(path, drop_invalid=True))
    assert any("data.drop_invalid would drop 95 of 100 rows (95.0%" in p and "data.max_drop_fraction" in p
               for p in problems)
    rows = [(t, y if i % 10 else "") for i, (t, y) in enumerate(_sentences(100))]
    path = write_csv(tmp_path / "some.csv", rows)
    splits = load_splits(whole(path, drop_invalid=True))
    assert "dropped 10 train rows (10.0% of 100): missing label" in splits.report.summary_lines()


# -- 5. labels that need mapping -----------------------------------------------------------------------------------

def _ratings(tmp_path) -> Path:
    values = [str(v) for v in (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5)]
    rows = [(t, values[i % len(values)]) for i, (t, _) in enumerate(_sentences(90))]
    rows += [("I like it a lot", "Like")] + [(f"no rating {i}", "") for i in range(5)]
    return write_csv(tmp_path / "ratings.csv", rows, header=("Review", "Rating"))


def test_5_ratings_are_binned_and_odd_labels_mapped(tmp_path):
    path = _ratings(tmp_path)
    with pytest.raises(DataError) as e:
        load_splits(whole(path))
    assert any("numeric or ordinal" in h for h in e.value.report.hints)
    assert e.value.report.hints[-1] == (
        "the labels look numeric or ordinal (10 values from 1 to 5 (1 non-numeric: 'Like': map them with "
        "data.label_map)): each value is its own class, as codes of unordered classes should be (0 = sport, "
        "1 = politics, ...); if they are a rating scale, to make ranges of them classes, set data.label_bins={negative: "
        "[1, 2], neutral: [2.5, 3.5], positive: [4, 5]}")
    bins = {"negative": [1, 2.5], "neutral": [3, 3.5], "positive": [4, 5]}
    splits = load_splits(whole(path, label_bins=bins, label_map={"Like": None}, drop_invalid=True))
    assert splits.label_map.names == ("negative", "neutral", "positive")
    assert splits.report.class_balance["train"] == {"negative": 40, "neutral": 20, "positive": 30}
    assert splits.report.dropped["train"] == {"label dropped by data.label_map": 1, "missing label": 5}
    problems = _problems(whole(path, label_bins=bins))
    assert any("a label no data.label_bins range holds ('Like'" in p for p in problems)
    renamed = load_splits(whole(path, label_map={"Like": "5", "1.5": "1"}, drop_invalid=True))
    assert "1.5" not in renamed.label_map.names and renamed.report.class_balance["train"]["5"] == 11


def test_5_overlapping_bins_are_refused_with_the_recipe():
    from nlptransfer import recipe as recipes
    from nlptransfer.errors import RecipeError

    with pytest.raises(RecipeError, match="the ranges of 'a' and 'b' overlap"):
        recipes.load("sentiment-minilm", {"data.label_bins": {"a": [1, 3], "b": [2, 5]}})


# -- 6. label leakage ------------------------------------------------------------------------------------------------

def test_6_a_column_that_gives_the_label_away_is_named_and_joining_it_is_refused(tmp_path):
    header, rows = _wide_rows()
    path = write_csv(tmp_path / "tweets.csv", rows, header=tuple(header))
    splits = load_splits(whole(path))
    leaks = {leak["column"]: leak["why"] for leak in splits.report.leaks}
    assert leaks["negativereason"] == "it is filled only for label 'negative' (40 rows)"
    assert "airline" not in leaks and "text" not in leaks and "tweet_id" not in leaks
    problems = _problems(whole(path, text_columns=["text", "negativereason"], label_column="airline_sentiment"))
    assert any("data.text_columns joins 'negativereason', which gives the label away" in p for p in problems)
    allowed = load_splits(whole(path, text_columns=["text", "negativereason"], label_column="airline_sentiment",
                                allow_leaks=True))
    assert len(allowed.train) == 120


# -- 7. predict and evaluate read as the run did ----------------------------------------------------------------------

def test_7_a_run_on_an_at_file_predicts_and_evaluates_that_file_as_it_read_it(tiny_models, tmp_path, capsys):
    path = tmp_path / "news.txt"
    path.write_bytes("".join(f"{t}.@{y}\r\n" for t, y in sentiment_rows(120)).encode("latin-1"))
    assert main(["run", "sentiment-minilm", "--data", str(path), f"model={tiny_models['bert']}",
                 "--output", str(tmp_path / "runs"), "--name", "news", "training.epochs=1", "training.progress=false",
                 "data.delimiter=@"]) == 0
    run = tmp_path / "runs" / "news"
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(path), "--output", str(tmp_path / "p.csv")]) == 0
    assert "wrote 120 predictions" in capsys.readouterr().out
    import pandas as pd

    out = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    assert len(out) == 120 and out.columns.tolist()[:2] == ["column_1", "column_2"]
    assert not out["column_1"].str.contains("@").any()  # the label is not inside the text
    assert main(["evaluate", str(run), "--data", str(path)]) == 0
    assert "rows 120" in capsys.readouterr().out


def test_7_predict_reuses_the_run_text_columns(tiny_models, tmp_path):
    rows = [(f"title {i}", t, y) for i, (t, y) in enumerate(sentiment_rows(120))]
    data = write_csv(tmp_path / "news.csv", rows, header=("title", "description", "label"))
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(
        tiny_models["bert"], tmp_path, **{"data.text_columns": ["title", "description"], "training.epochs": 1}))
    nlptransfer.predict_file(run.path, str(data), str(tmp_path / "p.csv"))
    import pandas as pd

    predicted = pd.read_csv(tmp_path / "p.csv")["predicted"].tolist()
    clf = run.classifier()
    joined = [p.label for p in clf.predict([f"{a}\n{b}" for a, b, _ in rows])]
    assert predicted == joined
    assert nlptransfer.evaluate_run(run.path, str(data))["n"] == 120


# -- 8. legacy encodings ---------------------------------------------------------------------------------------------

def test_8_latin1_with_umlauts_and_pounds_reads_as_latin1_and_says_why(tmp_path):
    rows = [(f"Lemminkäinen said sales rose to £{i} million © 2007 ½ §", ("positive", "negative")[i % 2])
            for i in range(30)]
    path = tmp_path / "news.csv"
    path.write_bytes(("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows)).encode("latin-1"))
    table = read_table(path)
    assert table.encoding == "latin-1"
    assert table.frame["text"][0].startswith("Lemminkäinen said sales rose to £0")
    assert "0xe4 (ä)" in table.reasons["encoding"] and "Western European" in table.reasons["encoding"]


def test_8_cyrillic_is_not_read_as_western(tmp_path):
    path = tmp_path / "ru.csv"
    text = "text,label\n" + "".join(f"Привет как дела сегодня {i},pos\n" for i in range(20))
    path.write_bytes(text.encode("cp1251"))
    table = read_table(path)
    assert table.encoding != "latin-1" and "Привет" in table.frame["text"][0]


# -- 9. duplicates with different labels ------------------------------------------------------------------------------

def test_9_conflicting_duplicates_are_label_noise_and_whitespace_is_no_difference(tmp_path):
    rows = _sentences(40) + [("a  duplicated   text", "positive"), ("a duplicated text", "negative"),
                             ("same words twice", "positive"), ("same  words twice", "positive")]
    path = write_csv(tmp_path / "dups.csv", rows)
    problems = _problems(DataSpec(train=str(path)))
    assert any("1 text(s) appear with different labels (2 rows: rows 41, 42): label noise" in p for p in problems)
    splits = load_splits(DataSpec(train=str(path), drop_invalid=True))
    dropped = splits.report.dropped["train"]
    assert dropped["the same text as another row with another label (label noise)"] == 2
    assert dropped["the same text and label as an earlier row (kept the first, so no text is in two splits)"] == 1
    assert not any("exact" in reason for reason in dropped)
    train = write_csv(tmp_path / "train.csv", _sentences(40))
    test = write_csv(tmp_path / "test.csv", [(_sentences(40)[0][0], "negative" if _sentences(40)[0][1] == "positive"
                                              else "positive"), ("fresh words here", "positive")])
    problems = _problems(DataSpec(train=str(train), test=str(test), val_fraction=0.0))
    assert any("test: 1 text(s) also appear in train with another label" in p and "label noise" in p for p in problems)


# -- 10. headers and an unreachable hub ------------------------------------------------------------------------------

def test_10_a_header_with_unusual_names_over_text_labels_is_found(tmp_path):
    path = write_csv(tmp_path / "odd.csv", _sentences(40), header=("words", "verdict"))
    table = read_table(path)
    assert table.header and table.frame.columns.tolist() == ["words", "verdict"]
    assert "'verdict' sits above a column of 2 repeated values" in table.reasons["header"]
    headerless = tmp_path / "none.csv"
    headerless.write_text("".join(f"{t},{y}\n" for t, y in _sentences(40)))
    assert not read_table(headerless).header


@pytest.mark.slow
def test_10_an_unreachable_hub_fails_at_once_with_the_reason(tmp_path, reviews_csv):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "nlptransfer", "run", "sentiment-minilm", "--data", str(reviews_csv),
                           "model=someone/not-a-model", f"output.dir={tmp_path}"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2
    assert "the hub at http://127.0.0.1:9 cannot be reached (no network?), and it is not in the local cache" in done.stderr


# -- 11. the verdict of an under-trained run -------------------------------------------------------------------------

def test_11_the_report_says_when_the_transfer_model_is_under_trained_or_zero_shot_names_mean_nothing():
    import numpy as np

    from nlptransfer.report.build import caveats

    collapsed = np.tile([[0.2, 0.8]], (10, 1))
    log = [{"step": 1, "eval": {"accuracy": 0.5}}, {"step": 2, "eval": {"accuracy": 0.61}}]
    notes = caveats(collapsed, [0, 1] * 5, ("neg", "pos"), log, "accuracy", {"label_texts": {"1": "1", "2": "2"}})
    assert len(notes) == 3
    assert notes[0].startswith("the transfer model predicts 'pos' for every test text: it is under-trained")
    assert "still rising when training stopped (0.5000 -> 0.6100)" in notes[1]
    assert "carry no meaning" in notes[2] and "labels.descriptions" in notes[2]
    fine = np.array([[0.8, 0.2], [0.2, 0.8]] * 5)
    flat = [{"step": 1, "eval": {"accuracy": 0.7}}, {"step": 2, "eval": {"accuracy": 0.69}}]
    assert caveats(fine, [0, 1] * 5, ("neg", "pos"), flat, "accuracy", {"label_texts": {"neg": "bad"}}) == []


# -- new: check, run flags, slices, extra metrics ----------------------------------------------------------------------

def test_check_says_what_a_run_would_do_and_exits_by_whether_one_could_start(tiny_models, tmp_path, capsys):
    header, rows = _wide_rows()
    path = write_csv(tmp_path / "tweets.csv", rows, header=tuple(header))
    code = main(["check", "sentiment-minilm", "--data", str(path), f"model={tiny_models['bert']}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "label column: 'airline_sentiment' (inferred:" in out and "runner-up" in out
    assert "warning: 'negativereason' gives the label away: it is filled only for label 'negative'" in out
    assert "texts cut to the token limit: train" in out and out.rstrip().endswith("a run can start")
    code = main(["check", "sentiment-minilm", "--data", str(path), f"model={tiny_models['bert']}",
                 "data.text_columns=[text,negativereason]", "--json"])
    captured = capsys.readouterr()
    assert code == 2 and "gives the label away" in captured.err
    report = json.loads(captured.out)
    assert set(report) >= {"files", "inferred", "dropped", "rows_used", "class_balance", "truncated", "leaks",
                           "problems"}
    assert report["problems"] and report["files"]["train"]["rows_read"] == 120


def test_check_gives_the_report_the_run_writes(tiny_models, tmp_path, capsys):
    header, rows = _wide_rows()
    path = write_csv(tmp_path / "tweets.csv", rows, header=tuple(header))
    args = ["--data", str(path), f"model={tiny_models['bert']}", "data.max_length=32"]
    assert main(["check", "sentiment-minilm", *args, "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert main(["run", "sentiment-minilm", *args, f"output.dir={tmp_path}", "training.epochs=1",
                 "training.progress=false"]) == 0
    assert json.loads((tmp_path / "sentiment-minilm" / "data_report.json").read_text()) == checked


@pytest.mark.slow
def test_run_takes_validation_test_output_and_name_flags(tiny_models, tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(80))
    val = write_csv(tmp_path / "val.csv", sentiment_rows(100)[80:90])
    test = write_csv(tmp_path / "test.csv", sentiment_rows(100)[90:])
    assert main(["run", "sentiment-minilm", "--data", str(train), "--validation", str(val), "--test", str(test),
                 "--output", str(tmp_path / "out"), "--name", "mine", f"model={tiny_models['bert']}",
                 "training.epochs=1", "training.progress=false"]) == 0
    report = json.loads((tmp_path / "out" / "mine" / "data_report.json").read_text())
    assert report["rows_used"] == {"train": 80, "validation": 10, "test": 10}


def test_slice_metrics_on_a_constructed_gap():
    from nlptransfer.metrics import slice_metrics

    gold = [0, 1] * 20 + [0, 1] * 20
    predicted = [0, 1] * 20 + [0, 0] * 20  # slice a: all right; slice b: the 1s wrong
    result = slice_metrics(gold, predicted, ("neg", "pos"), ["a"] * 40 + ["b"] * 40, "domain", resamples=500)
    assert result["slices"]["a"] == {"n": 40, "accuracy": 1.0, "macro_f1": 1.0, "recall": {"neg": 1.0, "pos": 1.0}}
    assert result["slices"]["b"]["accuracy"] == 0.5 and result["slices"]["b"]["recall"] == {"neg": 1.0, "pos": 0.0}
    gap = result["gap"]
    assert gap["between"] == ["a", "b"] and gap["estimate"] == 0.5 and gap["low"] < 0.5 < gap["high"] <= 0.75


@pytest.mark.slow
def test_slices_reach_metrics_json_evaluate_and_the_report(tiny_models, tmp_path, capsys):
    rows = [(t, y, ("web", "app")[i % 2]) for i, (t, y) in enumerate(sentiment_rows(120))]
    data = write_csv(tmp_path / "d.csv", rows, header=("text", "label", "channel"))
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(
        tiny_models["bert"], tmp_path, **{"data.slice_columns": ["channel"], "training.epochs": 1,
                                          "report.enabled": True, "report.learning_curve": [1.0],
                                          "report.latency_texts": 5}))
    slices = run.metrics["test"]["slices"][0]
    assert slices["column"] == "channel" and set(slices["slices"]) == {"web", "app"}
    assert sum(s["n"] for s in slices["slices"].values()) == 12
    assert "## Test metrics by channel" in (run.path / "report" / "report.md").read_text()
    assert main(["evaluate", str(run.path), "--data", str(data), "--slice-by", "channel",
                 "--output", str(tmp_path / "e.json")]) == 0
    evaluated = json.loads((tmp_path / "e.json").read_text())["slices"][0]
    assert sum(s["n"] for s in evaluated["slices"].values()) == 120


METRIC_SCRIPT = '''
import datasets
import evaluate


class MatchRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="share of exact matches", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"match_rate": sum(p == r for p, r in zip(predictions, references)) / len(references)}
'''


def test_extra_metrics_local_and_an_evaluate_module_from_a_local_path(tiny_models, reviews_csv, tmp_path):
    pytest.importorskip("evaluate")
    script = tmp_path / "match_rate" / "match_rate.py"
    script.parent.mkdir()
    script.write_text(METRIC_SCRIPT)
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path, **{"training.epochs": 1,
                                          "evaluation.metrics": ["macro_precision", str(script.parent)]}))
    test = run.metrics["test"]
    assert test[str(script.parent)] == {"match_rate": test["accuracy"]}
    per = [c for c in test["per_class"].values() if c["support"]]
    assert test["macro_precision"] == pytest.approx(sum(c["precision"] for c in per) / len(per))


def test_an_evaluate_hub_id_offline_fails_before_training(tiny_models, reviews_csv, tmp_path, capsys):
    pytest.importorskip("evaluate")
    code = main(["run", "sentiment-minilm", "--data", str(reviews_csv), f"model={tiny_models['bert']}",
                 f"output.dir={tmp_path}", "evaluation.metrics=[someone/some_metric]"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot load the evaluate module 'someone/some_metric': offline" in err
    assert list(tmp_path.iterdir()) == []


def test_texts_the_tokenizer_cannot_read_are_said_to_by_check_and_run(tiny_models, tmp_path, capsys):
    """Thai social-media posts (wisesight-like, a Parquet file of a public repository) through all-MiniLM-L6-v2's
    English vocabulary: 37% of the tokens are [UNK], and the model learns from what is left. Written here: a few
    Thai phrases of my own, and the embedded tokenizer."""
    from transformers import AutoTokenizer

    from nlptransfer.models import embedded_path
    from nlptransfer.tokens import Encoded, tokenize, unknown_hint, unknown_share

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_path()))
    thai = ["อาหารอร่อยมาก บริการดี", "ร้านนี้แย่มาก รอนานเกินไป", "ชอบมากเลยค่ะ จะมาอีก", "ไม่ประทับใจ ราคาแพง"] * 5
    english = ["the food was great and the staff friendly", "slow service, cold soup"] * 10
    assert unknown_share(tokenizer, tokenize(tokenizer, english, 64)) == 0.0
    assert unknown_hint(tokenizer, tokenize(tokenizer, english, 64)) is None
    assert unknown_share(tokenizer, tokenize(tokenizer, thai, 64)) == 1.0  # each word one [UNK]
    mixed = [f"{t} #{i} ok" for i, t in enumerate(thai)]  # as the real posts: Thai with hashtags, digits, Latin
    share = unknown_share(tokenizer, tokenize(tokenizer, mixed, 64))
    assert 0.2 < share < 0.8
    assert unknown_hint(tokenizer, tokenize(tokenizer, mixed, 64)) == (
        f"{share:.0%} of the training texts' tokens are unknown to the model's tokenizer ([UNK]): its vocabulary "
        "lacks much of these texts (another script or language?), so the model reads little of them; a multilingual "
        "model covers more (model=xlm-roberta-base)")
    assert unknown_share(tokenizer, Encoded([], None)) is None
    # check and a run say it (the tiny test tokenizer knows only a few English words: the Thai texts are all [UNK])
    path = write_csv(tmp_path / "thai.csv", [(f"{thai[i % 4]} {thai[i // 4 % 4]} {i}", ("pos", "neg")[i % 2])
                                             for i in range(60)])
    args = ["--data", str(path), f"model={tiny_models['bert']}"]
    assert main(["check", "sentiment-minilm", *args]) == 0
    said = "100% of the training texts' tokens are unknown to the model's tokenizer ([UNK])"
    assert f"hint: {said}" in capsys.readouterr().out
    assert main(["run", "sentiment-minilm", *args, f"output.dir={tmp_path}", "training.epochs=1",
                 "training.progress=false"]) == 0
    assert f"warning: {said}" in capsys.readouterr().out
    report = json.loads((tmp_path / "sentiment-minilm" / "data_report.json").read_text())
    assert [h for h in report["hints"] if said in h] and str(tiny_models["bert"]) not in json.dumps(report["hints"])
    # (data_report.json is published with the model: the hint names no model, whose local path would leak)


# -- issue 38: compressed and binary files, one encoding rule, texts cut at a character bound ---------------------------

def _compressed(path: Path, kind: str) -> Path:
    """`path`'s bytes compressed as `kind`, under a name that ends .csv all the same."""
    import bz2
    import gzip
    import lzma
    import zipfile

    out = path.with_name(f"{kind}-{path.name}")
    if kind == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(path, path.name)
    else:
        out.write_bytes({"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](path.read_bytes()))
    return out


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zip"])
def test_a_compressed_file_named_csv_is_read_as_the_file_it_holds_in_both_stages(tmp_path, kind):
    from nlptransfer.data.read import iter_table

    plain = write_csv(tmp_path / "reviews.csv", _sentences(300) + [("café «crème» déjà vu", "positive")])
    packed = _compressed(plain, kind)
    assert packed.read_bytes()[:2] != plain.read_bytes()[:2]
    want, got = read_table(plain), read_table(packed)
    assert got.frame.equals(want.frame) and (got.encoding, got.delimiter, got.header) == ("utf-8", ",", True)
    chunks = list(iter_table(packed, rows=100, sniff_bytes=4096))  # as the streamed stage reads a large file
    assert [len(c.frame) for c in chunks] == [100, 100, 100, 1]
    assert chunks[-1].frame.iloc[0].tolist() == ["café «crème» déjà vu", "positive"]
    a, b = load_splits(DataSpec(train=str(plain))), load_splits(DataSpec(train=str(packed)))
    assert a.train.texts == b.train.texts and a.test.labels == b.test.labels
    cut = tmp_path / f"cut-{kind}.csv"  # a compressed file cut short: one error in either stage, not a traceback
    cut.write_bytes(packed.read_bytes()[:len(packed.read_bytes()) * 2 // 3])
    with pytest.raises(DataError, match=f"cannot read {cut}"):
        read_table(cut)
    with pytest.raises(DataError, match=f"cannot read {cut}"):
        list(iter_table(cut, rows=100, sniff_bytes=1024))


def test_a_small_archive_of_a_large_file_goes_through_the_streamed_stage(tmp_path, monkeypatch):
    from nlptransfer.data import streamed

    plain = write_csv(tmp_path / "reviews.csv", _sentences(300))
    packed = _compressed(plain, "gzip")
    monkeypatch.setattr(streamed, "STREAM_BYTES", packed.stat().st_size + 10)  # the archive is smaller, its file not
    assert plain.stat().st_size > streamed.STREAM_BYTES
    assert streamed.streams(DataSpec(train=str(plain))) and streamed.streams(DataSpec(train=str(packed)))
    monkeypatch.setattr(streamed, "STREAM_BYTES", plain.stat().st_size)
    assert not streamed.streams(DataSpec(train=str(plain))) and not streamed.streams(DataSpec(train=str(packed)))


def test_a_binary_file_is_refused_naming_it_whatever_its_name(tmp_path):
    from nlptransfer.data.read import iter_table

    png = tmp_path / "reviews.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    with pytest.raises(DataError, match=f"{png} is a PNG image, not a text file of CSV/TSV/JSONL"):
        read_table(png)
    with pytest.raises(DataError, match="is a PNG image"):
        next(iter_table(png, sniff_bytes=1024))
    nul = tmp_path / "texts.jsonl"
    nul.write_bytes(b'{"text": "fine", "label": "a"}\n' + b"\x00\x01\x02garbage" * 50)
    assert _problems(whole(nul)) == [f"{nul} is binary (a NUL byte at offset 31), not a text file of CSV/TSV/JSONL: "
                                     "give the data file itself"]
    utf16 = tmp_path / "wide.csv"  # NUL bytes in UTF-16 text with its byte-order mark are text
    utf16.write_bytes("text,label\ngood film,positive\nbad film,negative\n".encode("utf-16"))
    assert read_table(utf16).frame["label"].tolist() == ["positive", "negative"]


def test_a_byte_past_the_first_part_that_its_encoding_cannot_read_is_refused_by_both_stages_alike(tmp_path):
    from nlptransfer.data.read import iter_table

    rows = "".join(f"{t},{label}\n" for t, label in _sentences(20)).encode()
    path = tmp_path / "late.csv"  # the Latin-1 row comes past the part the encoding is detected on
    path.write_bytes(b"text,label\n" + rows * ((8 << 20) // len(rows) + 50) + "un caf\xe9 tr\xe8s bon,positive\n"
                     .encode("latin-1"))
    offset = path.read_bytes().index(b"caf\xe9") + 3
    said = (f"{path}: the byte at offset {offset:,} (0xe9) cannot be read as utf-8, the encoding of the file's first part (ASCII "
            f"only): the encoding is detected once, on the first 8 MB; set data.encoding to the file's encoding (e.g. "
            "latin-1), or fix the bytes there")
    with pytest.raises(DataError) as whole_file:
        read_table(path)
    with pytest.raises(DataError) as streamed:
        list(iter_table(path, rows=50_000))
    assert whole_file.value.problems == streamed.value.problems == [said]
    assert read_table(path, encoding="latin-1").frame.iloc[-1, 0] == "un caf\xe9 tr\xe8s bon"


def test_a_text_over_the_character_bound_is_cut_before_tokenizing_and_counted_in_both_stages(tmp_path):
    from nlptransfer.data.streamed import load_splits_streamed

    long = "good " * 23_000
    rows = _sentences(40)
    rows[3] = (long, "positive")
    rows[17] = ("bad " + long, "negative")
    path = write_csv(tmp_path / "long.csv", rows)
    spec = DataSpec(train=str(path), val_fraction=0.0, test_fraction=0.25)
    plain = load_splits(spec)
    streamed = load_splits_streamed(spec, 42, tmp_path / "entry")
    for splits in (plain, streamed):
        texts = list(splits.train.texts) + list(splits.test.texts)
        assert max(map(len, texts)) == 100_000
        assert sorted(t[:8] for t in texts if len(t) == 100_000) == ["bad good", "good goo"]
        assert splits.report.files["train"]["texts_cut"] == {"count": 2, "rows": [4, 18]}
    assert ("  2 texts longer than 100,000 characters cut to them before tokenizing (rows 4, 18)"
            in plain.report.describe())
