"""The data stage (nlptransfer.data): formats, headers, encodings, columns, labels, problems and splits; no models."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from nlptransfer.data import DataSpec, LabelMap, load_splits, read_table, read_texts
from nlptransfer.errors import DataError

from .conftest import captured_messages

DUP_REASON = "the same text and label as an earlier row (kept the first, so no text is in two splits)"
ROWS = [(f"review number {i} was {'good' if i % 2 == 0 else 'bad'}", "pos" if i % 2 == 0 else "neg")
        for i in range(12)]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text as bytes in `encoding` (newlines kept as given)."""
    path.write_bytes(text.encode(encoding))
    return path


def write_rows(path: Path, rows, header=("text", "label"), delimiter: str = ",") -> Path:
    """A CSV/TSV file of rows written with the csv module (quoting as needed); header=None writes none."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def balanced(n: int, labels=("neg", "pos"), prefix: str = "text") -> list[tuple[str, str]]:
    """n distinct texts whose labels cycle through `labels`."""
    return [(f"{prefix} {i} about something", labels[i % len(labels)]) for i in range(n)]


def whole(path: Path, **kw) -> DataSpec:
    """A spec that keeps every row of `path` in train (no carving), so order and content can be compared."""
    return DataSpec(train=str(path), val_fraction=0.0, test_fraction=0.0, **kw)


def problems(spec: DataSpec) -> list[str]:
    with pytest.raises(DataError) as e:
        load_splits(spec)
    return e.value.problems


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", ["csv", "tsv", "txt", "jsonl", "json", "parquet"])
def test_every_format_gives_the_same_texts_and_labels(tmp_path, ext):
    path = tmp_path / f"data.{ext}"
    frame = pd.DataFrame(ROWS, columns=["text", "label"])
    if ext == "csv":
        write_rows(path, ROWS)
    elif ext in ("tsv", "txt"):
        write_rows(path, ROWS, delimiter="\t")
    elif ext == "jsonl":
        write_jsonl(path, frame.to_dict("records"))
    elif ext == "json":
        path.write_text(json.dumps(frame.to_dict("records"), indent=2), encoding="utf-8")
    else:
        frame.to_parquet(path)
    splits = load_splits(whole(path))
    assert splits.train.texts == [t for t, _ in ROWS]
    assert splits.label_map.names == ("neg", "pos")
    assert splits.train.labels == [1 if lab == "pos" else 0 for _, lab in ROWS]
    assert splits.train.rows == list(range(1, 13))
    expected = {"csv": "csv", "tsv": "tsv", "txt": "tsv", "jsonl": "jsonl", "json": "jsonl", "parquet": "parquet"}
    info = splits.report.files["train"]
    assert info["format"] == expected[ext]
    assert info["rows_read"] == 12
    assert info["encoding"] == (None if ext == "parquet" else "utf-8")
    assert splits.validation is None and splits.test is None


def test_format_override_reads_an_odd_extension(tmp_path):
    path = write_rows(tmp_path / "export.dat", ROWS)
    with pytest.raises(DataError) as e:
        read_table(path)
    assert "cannot tell the format of" in str(e.value) and "'.dat'" in str(e.value)
    assert "set data.format to one of csv, tsv, jsonl, parquet" in str(e.value)
    assert problems(whole(path)) == [e.value.problems[0]]
    splits = load_splits(whole(path, format="csv"))
    assert splits.train.texts == [t for t, _ in ROWS]
    assert splits.report.files["train"]["format"] == "csv"
    tsv = write_rows(tmp_path / "export.csv", ROWS, delimiter="\t")  # misnamed: tab-separated
    assert read_table(tsv, format="tsv").frame.columns.tolist() == ["text", "label"]


def test_unknown_format_name_and_explicit_delimiter(tmp_path):
    path = write_rows(tmp_path / "data.csv", ROWS)
    with pytest.raises(DataError, match=r"unknown data.format 'xml': use csv, tsv, jsonl or parquet"):
        read_table(path, format="xml")
    semi = write_rows(tmp_path / "semi.csv", ROWS, delimiter=";")
    table = read_table(semi, delimiter=";")
    assert table.frame.columns.tolist() == ["text", "label"]
    assert table.frame["text"].tolist() == [t for t, _ in ROWS]


# ---------------------------------------------------------------- headers


def test_header_row_is_detected_and_named(tmp_path):
    path = write_rows(tmp_path / "h.csv", ROWS, header=("review", "sentiment"))
    table = read_table(path)
    assert table.header is True
    assert table.frame.columns.tolist() == ["review", "sentiment"]
    assert len(table.frame) == 12
    assert load_splits(whole(path)).report.files["train"]["header"] is True


def test_headerless_file_gets_numbered_columns_and_inferred_roles(tmp_path):
    path = write_rows(tmp_path / "nohead.csv", ROWS, header=None)
    table = read_table(path)
    assert table.header is False
    assert table.frame.columns.tolist() == ["column_1", "column_2"]
    assert len(table.frame) == 12
    splits = load_splits(whole(path))
    assert splits.train.texts == [t for t, _ in ROWS]
    assert splits.label_map.names == ("neg", "pos")
    inferred = splits.report.inferred
    assert inferred["label_column"] == {
        "column": "column_2", "reason": "it has the fewest distinct values (2) of the short columns"}
    assert inferred["text_columns"]["columns"] == ["column_1"]
    assert inferred["text_columns"]["reason"].startswith("it has the longest texts (mean ")
    assert splits.report.files["train"]["header"] is False


def test_headerless_file_with_numeric_labels(tmp_path):
    rows = [(t, "1" if lab == "pos" else "0") for t, lab in ROWS]
    path = write_rows(tmp_path / "num.csv", rows, header=None)
    assert read_table(path).header is False
    splits = load_splits(whole(path))
    assert splits.label_map.names == ("0", "1")
    assert splits.train.texts[0] == ROWS[0][0]  # the first row is data, not a header
    assert splits.train.labels == [1 if lab == "pos" else 0 for _, lab in ROWS]
    assert splits.report.inferred["label_column"]["column"] == "column_2"


def test_first_row_above_a_numeric_column_is_a_header(tmp_path):
    rows = [(t, str(i % 3)) for i, (t, _) in enumerate(ROWS)]
    path = write_rows(tmp_path / "grades.csv", rows, header=("phrase", "grade"))
    table = read_table(path)
    assert (table.header, table.frame.columns.tolist(), len(table.frame)) == (True, ["phrase", "grade"], 12)


def test_header_can_be_forced_either_way(tmp_path):
    named = write_rows(tmp_path / "named.csv", ROWS)
    table = read_table(named, header=False)
    assert table.header is False
    assert table.frame.columns.tolist() == ["column_1", "column_2"]
    assert table.frame.iloc[0].tolist() == ["text", "label"]
    assert len(table.frame) == 13
    # unusual names over text labels are detected as a header (issue 13); header=False still says otherwise
    odd = write_rows(tmp_path / "odd.csv", ROWS, header=("words", "verdict"))
    assert read_table(odd).header is True
    assert len(read_table(odd, header=False).frame) == 13
    forced = read_table(odd, header=True)
    assert forced.frame.columns.tolist() == ["words", "verdict"]
    assert len(forced.frame) == 12
    splits = load_splits(whole(odd, header=True, text_columns=("words",), label_column="verdict"))
    assert splits.train.texts == [t for t, _ in ROWS]


# ---------------------------------------------------------------- encodings


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    path = write(tmp_path / "bom.csv", "text,label\nhéllo wörld,pos\nbye,neg\n", "utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    table = read_table(path)
    assert table.frame.columns.tolist() == ["text", "label"]
    assert table.encoding == "utf-8-sig"
    assert table.frame["text"].tolist() == ["héllo wörld", "bye"]
    # also when the encoding is given as plain utf-8, and for JSONL (json.loads rejects a leading BOM)
    assert read_table(path, encoding="utf-8").frame.columns.tolist() == ["text", "label"]
    jsonl = write(tmp_path / "bom.jsonl", '{"text": "héllo", "label": "pos"}\n', "utf-8-sig")
    for given in (None, "utf-8"):
        assert read_table(jsonl, encoding=given).frame.to_dict("records") == [{"text": "héllo", "label": "pos"}]


@pytest.mark.parametrize("encoding,text", [
    ("latin-1", "café crème brûlée"),
    ("cp1252", "“smart quotes” for a café – 5 €"),
])
def test_legacy_western_encoding_is_detected(tmp_path, encoding, text):  # Latin-1 unless cp1252's own bytes occur
    content = f"text,label\n{text},pos\ntrès mauvais goût,neg\nnaïve façade,pos\nSchöne Grüße,neg\n"
    path = write(tmp_path / "legacy.csv", content, encoding)
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    splits = load_splits(whole(path))
    assert splits.train.texts == [text, "très mauvais goût", "naïve façade", "Schöne Grüße"]
    assert splits.report.files["train"]["encoding"] == encoding


def test_other_legacy_encodings_are_still_detected(tmp_path):
    content = "текст,метка\nочень хороший фильм,хорошо\nплохое кино,плохо\nотличная книга,хорошо\n"
    table = read_table(write(tmp_path / "ru.csv", content, "cp1251"), header=True)
    assert table.encoding == "cp1251"
    assert table.frame.columns.tolist() == ["текст", "метка"]
    assert table.frame["текст"].tolist() == ["очень хороший фильм", "плохое кино", "отличная книга"]
    utf16 = write(tmp_path / "u16.csv", "text,label\nnaïve,pos\nbad,neg\n", "utf-16")
    table = read_table(utf16)
    assert (table.encoding, table.frame["text"].tolist()) == ("utf-16", ["naïve", "bad"])


def test_explicit_encoding_is_used(tmp_path):
    path = write(tmp_path / "l1.csv", "text,label\ncafé crème brûlée,pos\nplain,neg\n", "latin-1")
    splits = load_splits(whole(path, encoding="latin-1"))
    assert splits.train.texts == ["café crème brûlée", "plain"]
    assert splits.report.files["train"]["encoding"] == "latin-1"


def test_wrong_or_unknown_explicit_encoding_is_a_data_error(tmp_path):
    path = write(tmp_path / "u8.csv", "text,label\ncafé crème,pos\nplain,neg\n", "utf-8")
    found = problems(whole(path, encoding="ascii"))
    assert len(found) == 1
    assert found[0].startswith(f"cannot decode {path} as ascii: ")
    assert "fix data.encoding or leave it unset to detect" in found[0]
    with pytest.raises(DataError, match="cannot decode .* as no-such-codec"):
        read_table(path, encoding="no-such-codec")


# ---------------------------------------------------------------- quoting


def test_quoted_fields_with_commas_quotes_and_newlines_survive(tmp_path):
    tricky = ['Great, really great', 'He said "wow", twice', 'line one\nline two, "quoted"\nline three',
              'plain text', 'trailing comma,']
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(tricky)]
    path = write_rows(tmp_path / "q.csv", rows)
    raw = path.read_text()
    assert '"He said ""wow"", twice"' in raw  # the file really uses CSV quoting
    splits = load_splits(whole(path))
    assert splits.train.texts == tricky
    assert splits.train.rows == [1, 2, 3, 4, 5]
    assert splits.report.files["train"]["rows_read"] == 5


def test_unbalanced_quote_is_a_parse_error(tmp_path):
    # a quote that is never closed, where reading it as a plain character does not fit either
    path = write(tmp_path / "bad.csv", 'text,label\n"never closed,pos\nok,neg,extra\n')
    found = problems(whole(path))
    assert len(found) == 1
    assert found[0].startswith(f"cannot parse {path} as CSV: ")
    assert "check quoting, or set data.format / data.delimiter" in found[0]


# ---------------------------------------------------------------- columns


def test_named_columns_are_used_and_nothing_is_inferred(tmp_path):
    rows = [(str(i), t, "x" * i, lab) for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "named.csv", rows, header=("id", "body_text", "padding", "verdict"))
    with captured_messages() as logged:
        splits = load_splits(whole(path, text_columns=("body_text",), label_column="verdict"))
    assert splits.train.texts == [t for t, _ in ROWS]
    assert splits.label_map.names == ("neg", "pos")
    assert splits.report.inferred == {}
    assert logged == []


def test_columns_inferred_by_usual_names_with_reason_logged(tmp_path):
    rows = [(str(i), t, lab) for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "usual.csv", rows, header=("id", "Review", "sentiment"))
    with captured_messages() as logged:
        splits = load_splits(whole(path))
    assert splits.train.texts == [t for t, _ in ROWS]
    assert splits.report.inferred == {
        "label_column": {"column": "sentiment", "reason": "its name 'sentiment' is a usual label column name"},
        "text_columns": {"columns": ["Review"], "reason": "its name 'Review' is a usual text column name"},
    }
    assert logged == ["label column: 'sentiment' (inferred: its name 'sentiment' is a usual label column name)",
                      "text column: 'Review' (inferred: its name 'Review' is a usual text column name)"]


def test_label_inferred_by_few_distinct_values_and_text_by_length(tmp_path):
    rows = [(t, lab, f"u{i}") for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "plain.csv", rows, header=("words", "verdict", "user"))
    splits = load_splits(whole(path, header=True))
    assert splits.report.inferred["label_column"]["column"] == "verdict"
    assert splits.report.inferred["text_columns"]["columns"] == ["words"]
    assert splits.label_map.names == ("neg", "pos")


def test_several_text_columns_are_joined_skipping_empty_parts(tmp_path):
    rows = [("Nice phone", "battery lasts", "pos"), ("", "screen broke", "neg"), ("Meh", "", "neg"),
            ("  Padded  ", " body ", "pos")]
    path = write_rows(tmp_path / "tr.csv", rows, header=("title", "review", "label"))
    splits = load_splits(whole(path, text_columns=("title", "review")))
    assert splits.train.texts == ["Nice phone\nbattery lasts", "screen broke", "Meh", "Padded\nbody"]
    splits = load_splits(whole(path, text_columns=("title", "review"), join_with=" | "))
    assert splits.train.texts == ["Nice phone | battery lasts", "screen broke", "Meh", "Padded | body"]
    assert splits.report.inferred == {"label_column": {
        "column": "label", "reason": "its name 'label' is a usual label column name"}}


def test_hint_names_other_text_like_columns(tmp_path):
    rows = [(f"A fairly long title number {i}", t, lab, "ok") for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "hint.csv", rows, header=("title", "review", "label", "flag"))
    with captured_messages() as logged:
        splits = load_splits(whole(path))
    reason = splits.report.inferred["text_columns"]["reason"]
    assert reason == ("its name 'review' is a usual text column name; other text-like columns not used: title "
                      "(to join them: data.text_columns=[title, review])")
    assert splits.train.texts == [t for t, _ in ROWS]  # the hint does not join
    assert logged[1] == f"text column: 'review' (inferred: {reason})"


def test_title_alone_is_not_taken_by_name_over_a_longer_column(tmp_path):
    rows = [(f"T{i}", t, lab) for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "t.csv", rows, header=("title", "remarks", "label"))
    splits = load_splits(whole(path))
    assert splits.report.inferred["text_columns"]["columns"] == ["remarks"]
    assert splits.train.texts == [t for t, _ in ROWS]


# ---------------------------------------------------------------- labels


def test_string_labels_are_sorted_alphabetically(tmp_path):
    rows = [(f"t{i}", lab) for i, lab in enumerate(["pos", "neutral", "neg", "pos", "neg", "neutral"])]
    splits = load_splits(whole(write_rows(tmp_path / "s.csv", rows)))
    assert splits.label_map.names == ("neg", "neutral", "pos")
    assert splits.train.labels == [2, 1, 0, 2, 0, 1]
    assert splits.report.class_balance["train"] == {"neg": 2, "neutral": 2, "pos": 2}


def test_integer_labels_are_sorted_numerically(tmp_path):
    rows = [(f"t{i}", lab) for i, lab in enumerate(["10", "2", "1", "-3", "10", "2", "1", "-3"])]
    splits = load_splits(whole(write_rows(tmp_path / "i.csv", rows)))
    assert splits.label_map.names == ("-3", "1", "2", "10")
    assert splits.train.labels == [3, 2, 1, 0, 3, 2, 1, 0]


def test_jsonl_float_labels_become_integers_as_text(tmp_path):
    records = [{"text": "a", "label": 1.0}, {"text": "b", "label": 0.0}, {"text": "c", "label": 2.0},
               {"text": "d", "label": 1}, {"text": "e", "label": None}]
    path = write_jsonl(tmp_path / "f.jsonl", records)
    splits = load_splits(whole(path, drop_invalid=True))
    assert splits.label_map.names == ("0", "1", "2")
    assert splits.train.labels == [1, 0, 2, 1]
    assert splits.report.dropped == {"train": {"missing label": 1}}
    ints = pd.DataFrame({"text": ["a", "b", "c"], "label": [3, 1, 3]})
    ints.to_parquet(tmp_path / "i.parquet")
    assert load_splits(whole(tmp_path / "i.parquet")).label_map.names == ("1", "3")


def test_given_labels_fix_the_order(tmp_path):
    path = write_rows(tmp_path / "l.csv", balanced(6, ("neg", "neutral", "pos")))
    splits = load_splits(whole(path, labels=("pos", "neutral", "neg")))
    assert splits.label_map.names == ("pos", "neutral", "neg")
    assert splits.train.labels == [2, 1, 0, 2, 1, 0]
    assert list(splits.report.class_balance["train"]) == ["pos", "neutral", "neg"]
    # a label never seen is kept (with a zero count), a label outside the list is a problem
    splits = load_splits(whole(path, labels=("neg", "neutral", "pos", "mixed")))
    assert splits.report.class_balance["train"] == {"neg": 2, "neutral": 2, "pos": 2, "mixed": 0}
    found = problems(whole(path, labels=("neg", "pos")))
    assert found == ["train: labels not in data.labels ['neg', 'pos']: 'neutral' (2 rows)"]


def test_label_map_round_trips_and_looks_up():
    m = LabelMap(["neg", "pos", 3])
    assert m.names == ("neg", "pos", "3")
    assert (m.id("pos"), m.id(3), m.name(0), m.name("1"), len(m)) == (1, 2, "neg", "pos", 3)
    assert "neg" in m and 3 in m and "neutral" not in m
    assert m.to_dict() == {"id2label": {"0": "neg", "1": "pos", "2": "3"}, "label2id": {"neg": 0, "pos": 1, "3": 2}}
    again = LabelMap.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m and again.names == m.names
    assert LabelMap(["pos", "neg"]) != m and m != ("neg", "pos", "3")
    assert repr(m) == "LabelMap(['neg', 'pos', '3'])"
    with pytest.raises(KeyError):
        m.id("neutral")


# ---------------------------------------------------------------- problems


def test_misspelled_column_suggests_the_closest_name(tmp_path):
    path = write_rows(tmp_path / "m.csv", [(i, t, lab) for i, (t, lab) in enumerate(balanced(20))],
                      header=("id", "review", "label"))
    found = problems(DataSpec(train=str(path), text_columns=("reviw",)))
    assert found == [f"train file {path}: data.text_columns: column 'reviw' not found; did you mean 'review'? "
                     f"(columns: id, review, label)"]
    found = problems(DataSpec(train=str(path), label_column="lable"))
    assert found == [f"train file {path}: data.label_column: column 'lable' not found; did you mean 'label'? "
                     f"(columns: id, review, label)"]
    found = problems(DataSpec(train=str(path), text_columns=("zzz",), label_column="qqq"))
    assert len(found) == 2
    assert found[0] == f"train file {path}: data.text_columns: column 'zzz' not found (columns: id, review, label)"
    assert "did you mean" not in found[1] and "column 'qqq' not found" in found[1]


def test_missing_column_in_the_validation_file_is_reported(tmp_path):
    train = write_rows(tmp_path / "train.csv", balanced(10))
    val = write_rows(tmp_path / "val.csv", balanced(4, prefix="val"), header=("txt", "label"))
    found = problems(DataSpec(train=str(train), validation=str(val), test_fraction=0.0))
    assert found == [f"validation file {val}: data.text_columns: column 'text' not found; did you mean 'txt'? "
                     f"(columns: txt, label)"]


@pytest.mark.parametrize("name,content", [("header_only.csv", "text,label\n"), ("zero.csv", ""),
                                          ("zero.jsonl", ""), ("empty.json", "[]"), ("blank.tsv", "\n\n")])
def test_empty_files_are_a_problem(tmp_path, name, content):
    path = write(tmp_path / name, content)
    assert problems(DataSpec(train=str(path))) == [f"{path} is empty: it has no data rows"]


def test_missing_file_is_a_problem_listed_with_the_others(tmp_path):
    missing = tmp_path / "nope.csv"
    assert problems(DataSpec(train=str(missing))) == [f"data file not found: {missing}"]
    assert problems(DataSpec(train=str(tmp_path))) == [f"data file not found: {tmp_path} (it is a folder)"]
    train = write_rows(tmp_path / "train.csv", balanced(10))
    test = write(tmp_path / "test.csv", "text,label\n")
    found = problems(DataSpec(train=str(train), validation=str(missing), test=str(test)))
    assert found == [f"data file not found: {missing}", f"{test} is empty: it has no data rows"]
    with pytest.raises(DataError, match="data file not found"):
        read_table(missing)


def test_single_class_is_a_problem_for_training(tmp_path):
    path = write_rows(tmp_path / "one.csv", balanced(10, ("pos",)))
    assert problems(DataSpec(train=str(path))) == [
        "train has a single class 'pos': a classifier needs at least two labels"]


def test_single_class_is_fine_for_evaluation(tmp_path):
    path = write_rows(tmp_path / "one.csv", balanced(5, ("pos",)))
    splits = load_splits(whole(path), purpose="evaluate")
    assert splits.label_map.names == ("pos",)
    assert splits.train.labels == [0] * 5
    splits = load_splits(whole(path, labels=("neg", "pos")), purpose="evaluate")
    assert splits.train.labels == [1] * 5
    assert splits.report.class_balance == {"train": {"neg": 0, "pos": 5}}


def test_class_too_small_to_split(tmp_path):
    rows = balanced(10) + [("rare one", "rare"), ("rare two", "rare")]
    path = write_rows(tmp_path / "small.csv", rows)
    found = problems(DataSpec(train=str(path), val_fraction=0.2, test_fraction=0.2))
    assert found == ["class too small to split: 'rare' has 2 row(s) in train; making the test and validation "
                     "split(s) needs at least 3 rows per class: add rows, supply data.validation/data.test files, "
                     "or set data.val_fraction / data.test_fraction to 0"]
    # carving only one split needs 2 rows per class
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.0, test_fraction=0.25))
    assert splits.label_map.names == ("neg", "pos", "rare")
    assert splits.report.class_balance["test"]["rare"] == 1
    assert splits.report.class_balance["train"]["rare"] == 1
    one = write_rows(tmp_path / "one.csv", balanced(10) + [("rare one", "rare")])
    found = problems(DataSpec(train=str(one), val_fraction=0.3, test_fraction=0.0))
    assert len(found) == 1
    assert found[0].startswith("class too small to split: 'rare' has 1 row(s) in train; making the validation "
                               "split(s) needs at least 2 rows per class")


def test_too_few_rows_for_each_split_to_hold_every_class(tmp_path):
    path = write_rows(tmp_path / "few.csv", balanced(12, ("a", "b", "c")))
    found = problems(DataSpec(train=str(path)))
    assert found == ["a test split of 0.1 x 12 rows gives 2 rows for 3 classes: raise data.test_fraction or add rows",
                     "a validation split of 0.1 x 12 rows gives 2 rows for 3 classes: "
                     "raise data.val_fraction or add rows"]
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.25, test_fraction=0.25))
    assert splits.report.rows_used == {"train": 6, "validation": 3, "test": 3}


def test_fractions_too_large_to_stratify_are_a_data_error(tmp_path):
    path = write_rows(tmp_path / "nine.csv", balanced(9, ("a", "b", "c")))
    found = problems(DataSpec(train=str(path), val_fraction=0.4, test_fraction=0.4))
    assert len(found) == 1
    assert found[0].startswith("cannot make stratified splits of 9 train rows: ")
    assert found[0].endswith("lower data.val_fraction / data.test_fraction, or add rows")
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.3, test_fraction=0.3))
    assert splits.report.rows_used == {"train": 3, "validation": 3, "test": 3}
    assert all(splits.report.class_balance[s] == {"a": 1, "b": 1, "c": 1} for s in ("train", "validation", "test"))


def test_labels_unseen_in_training_are_a_problem(tmp_path):
    train = write_rows(tmp_path / "train.csv", balanced(10))
    val = write_rows(tmp_path / "val.csv", [("v1", "pos"), ("v2", "meh"), ("v3", "meh"), ("v4", "neg")])
    test = write_rows(tmp_path / "test.csv", [("t1", "pos"), ("t2", "other")])
    found = problems(DataSpec(train=str(train), validation=str(val), test=str(test)))
    assert found == ["validation: labels never seen in training: 'meh' (2 rows)",
                     "test: labels never seen in training: 'other' (1 rows)"]


def test_empty_texts_and_missing_labels_are_numbered_among_data_rows(tmp_path):
    rows = balanced(40)
    rows[2] = ("", "pos")
    rows[4] = ("   ", "pos")
    rows[5] = ("no label here", "")
    path = write_rows(tmp_path / "bad.csv", rows)
    found = problems(DataSpec(train=str(path)))  # an empty label is no class, two empty texts no duplicate
    assert found == [
        "train: 2 row(s) have an empty or missing text (rows 3, 5); fix them, or set data.drop_invalid=true to "
        "drop them (they are counted in the report)",
        "train: 1 row(s) have a missing label (rows 6); fix them, or set data.drop_invalid=true to drop them "
        "(they are counted in the report)"]
    splits = load_splits(DataSpec(train=str(path), drop_invalid=True, val_fraction=0.0, test_fraction=0.0))
    assert splits.report.dropped == {"train": {"empty or missing text": 2, "missing label": 1}}
    assert splits.train.rows == [1, 2, 4] + list(range(7, 41))
    assert splits.report.rows_used == {"train": 37}
    splits = load_splits(DataSpec(train=str(path), drop_invalid=True))
    assert splits.report.rows_used == {"train": 29, "validation": 4, "test": 4}  # ceil(0.1 x 37) = 4
    assert splits.report.dropped == {"train": {"empty or missing text": 2, "missing label": 1}}


def test_null_and_absent_jsonl_fields_are_missing(tmp_path):
    records = [{"text": "fine", "label": "a"}, {"text": None, "label": "a"}, {"label": "b"},
               {"text": "no label"}, {"text": "fine too", "label": "b"}]
    path = write_jsonl(tmp_path / "n.jsonl", records)
    found = problems(whole(path))
    assert len(found) == 2
    assert found[0].startswith("train: 2 row(s) have an empty or missing text (rows 2, 3); ")
    assert found[1].startswith("train: 1 row(s) have a missing label (rows 4); ")
    assert "data.drop_invalid" in found[0] and "data.drop_invalid" in found[1]


def test_long_row_lists_are_shortened(tmp_path):
    rows = balanced(12)
    for i in range(10):
        rows[i] = ("", rows[i][1])
    found = problems(whole(write_rows(tmp_path / "many.csv", rows)))
    assert found[0].startswith("train: 10 row(s) have an empty or missing text (rows 1, 2, 3, 4, 5, 6, 7, 8 ...); ")


def test_texts_shared_between_train_and_a_test_file(tmp_path):
    train_rows = balanced(10)
    train = write_rows(tmp_path / "train.csv", train_rows)
    test = write_rows(tmp_path / "test.csv", [train_rows[3], ("new text", "pos"), train_rows[0], ("other", "neg")])
    spec = DataSpec(train=str(train), test=str(test), val_fraction=0.0)
    assert problems(spec) == [
        "test: 2 text(s) also appear in train (rows 1, 3), which inflates the test score; fix them, or set "
        "data.drop_invalid=true to drop them (they are counted in the report)"]
    splits = load_splits(DataSpec(train=str(train), test=str(test), val_fraction=0.0, drop_invalid=True))
    assert splits.report.dropped == {"test": {"the same text as a training row (whitespace aside)": 2}}
    assert splits.test.texts == ["new text", "other"]
    assert splits.test.rows == [2, 4]
    assert splits.report.rows_used == {"train": 10, "test": 2}


def test_every_problem_is_collected_into_one_error(tmp_path):
    rows = balanced(10)
    rows[1] = ("", "neg")
    rows[3] = ("label missing", "")
    train = write_rows(tmp_path / "train.csv", rows)
    val = write_rows(tmp_path / "val.csv", [("v1", "pos"), ("v2", "meh")])
    test = write_rows(tmp_path / "test.csv", [rows[0], ("t2", "neg")])
    with pytest.raises(DataError) as e:
        load_splits(DataSpec(train=str(train), validation=str(val), test=str(test)))
    found = e.value.problems
    assert len(found) == 4
    assert found[0].startswith("train: 1 row(s) have an empty or missing text (rows 2)")
    assert found[1].startswith("train: 1 row(s) have a missing label (rows 4)")
    assert found[2] == "validation: labels never seen in training: 'meh' (1 rows)"
    assert found[3].startswith("test: 1 text(s) also appear in train (rows 1)")
    assert str(e.value) == "4 problems with the data:\n" + "\n".join(f"  - {p}" for p in found)
    # the same files with drop_invalid: only the unseen label is left
    with pytest.raises(DataError) as e:
        load_splits(DataSpec(train=str(train), validation=str(val), test=str(test), drop_invalid=True))
    assert e.value.problems == ["validation: labels never seen in training: 'meh' (1 rows)"]
    assert str(e.value) == e.value.problems[0]


def test_drop_invalid_drops_counts_and_proceeds(tmp_path):
    rows = balanced(30)
    rows[0] = ("", "neg")
    rows[7] = ("orphan text", "")
    rows[8] = rows[9]  # a duplicate inside train
    train = write_rows(tmp_path / "train.csv", rows)
    test = write_rows(tmp_path / "test.csv", [rows[2], ("fresh", "neg"), ("", "pos")])
    splits = load_splits(DataSpec(train=str(train), test=str(test), drop_invalid=True, max_drop_fraction=0.7))
    assert splits.report.dropped == {
        "train": {"empty or missing text": 1, "missing label": 1, DUP_REASON: 1},
        "test": {"empty or missing text": 1, "the same text as a training row (whitespace aside)": 1}}
    assert splits.test.texts == ["fresh"]
    assert splits.report.rows_used == {"train": 24, "validation": 3, "test": 1}  # 27 rows: ceil(2.7) = 3
    lines = splits.report.summary_lines()
    assert "dropped 1 train rows (3.3% of 30): empty or missing text" in lines
    assert f"dropped 1 train rows (3.3% of 30): {DUP_REASON}" in lines
    assert "dropped 1 test rows (33.3% of 3): the same text as a training row (whitespace aside)" in lines
    assert "test: 1 rows (neg 1, pos 0)" in lines


def test_malformed_jsonl_lines_are_listed(tmp_path):
    content = '{"text": "a", "label": "x"}\n{not json}\n\n[1, 2]\n{"text": "b", "label": "y"}\n"str"\n'
    path = write(tmp_path / "bad.jsonl", content)
    found = problems(DataSpec(train=str(path)))
    assert found == [f"{path}: 3 lines are not JSON objects (lines 2, 4, 6); JSONL needs one object per line, "
                     'like {"text": "...", "label": "..."}']
    many = write(tmp_path / "many.jsonl", "oops\n" * 12)
    with pytest.raises(DataError) as e:
        read_table(many)
    assert "12 lines are not JSON objects (lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ...)" in str(e.value)
    broken = write(tmp_path / "broken.json", '[{"text": "a", "label": "x"},')
    with pytest.raises(DataError, match=f"cannot parse {broken} as JSON"):
        read_table(broken)


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize("n,val,test,sizes", [
    (50, 0.1, 0.2, (35, 5, 10)),
    (47, 0.15, 0.15, (31, 8, 8)),  # ceil(7.05) = 8 each, both of the whole file
    (40, 0.1, 0.0, (36, 4, None)),
    (40, 0.0, 0.1, (36, None, 4)),
])
def test_split_sizes(tmp_path, n, val, test, sizes):
    path = write_rows(tmp_path / "d.csv", balanced(n))
    splits = load_splits(DataSpec(train=str(path), val_fraction=val, test_fraction=test))
    got = tuple(None if s is None else len(s) for s in (splits.train, splits.validation, splits.test))
    assert got == sizes
    assert splits.report.rows_used == {k: v for k, v in zip(("train", "validation", "test"), sizes) if v}
    for name, fraction in (("validation", val), ("test", test)):
        if fraction:
            assert splits.report.files[name] == {"made_from": "train", "fraction": fraction, "seed": 42}
        else:
            assert name not in splits.report.files


def test_no_fractions_keep_every_row_in_file_order(tmp_path):
    path = write_rows(tmp_path / "d.csv", balanced(9))
    splits = load_splits(whole(path))
    assert (splits.validation, splits.test) == (None, None)
    assert splits.train.rows == list(range(1, 10))
    assert splits.report.rows_used == {"train": 9}
    assert list(splits.report.files) == ["train"]


def test_splits_are_stratified(tmp_path):
    rows = [(f"text {i}", "a" if i < 60 else "b" if i < 90 else "c") for i in range(100)]
    path = write_rows(tmp_path / "s.csv", rows)
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.1, test_fraction=0.2))
    balance = splits.report.class_balance
    assert sum(balance["test"].values()) == 20 and sum(balance["validation"].values()) == 10
    for name, size in (("test", 20), ("validation", 10)):
        for label, total in (("a", 60), ("b", 30), ("c", 10)):
            assert abs(balance[name][label] - total * size / 100) <= 1, (name, label, balance)
    assert {k: sum(balance[s][k] for s in balance) for k in "abc"} == {"a": 60, "b": 30, "c": 10}
    for name in ("train", "validation", "test"):  # class_balance agrees with the label ids
        split = getattr(splits, name)
        assert balance[name] == {n: split.labels.count(i) for i, n in enumerate(splits.label_map.names)}
        assert split.rows == sorted(split.rows)  # each split keeps file order


def test_splits_are_seeded(tmp_path):
    path = write_rows(tmp_path / "s.csv", balanced(60))

    def texts(seed):
        s = load_splits(DataSpec(train=str(path)), seed=seed)
        return s.train.texts, s.validation.texts, s.test.texts

    assert texts(1) == texts(1)
    assert texts(1) != texts(2)
    assert load_splits(DataSpec(train=str(path)), seed=2).report.files["test"]["seed"] == 2


def test_no_text_is_in_two_splits(tmp_path):
    rows = balanced(40)
    rows += [rows[0], rows[1], rows[5], rows[0]]  # 4 duplicates of earlier rows
    path = write_rows(tmp_path / "dups.csv", rows)
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.1, test_fraction=0.1))
    assert splits.report.dropped == {"train": {DUP_REASON: 4}}
    parts = [set(splits.train.texts), set(splits.validation.texts), set(splits.test.texts)]
    assert sum(map(len, parts)) == 40
    assert set.union(*parts) == {t for t, _ in balanced(40)}
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert splits.report.rows_used == {"train": 32, "validation": 4, "test": 4}
    assert f"dropped 4 train rows (9.1% of 44): {DUP_REASON}" in splits.report.summary_lines()


def test_separate_files_are_used_as_given(tmp_path):
    train = write_rows(tmp_path / "train.csv", balanced(20))
    val_rows = [(f"val {i}", "pos" if i % 3 else "neg") for i in range(6)]
    test_rows = [(f"test {i}", "neg") for i in range(7)]
    val = write_rows(tmp_path / "val.csv", val_rows)
    test = write_rows(tmp_path / "test.tsv", test_rows, delimiter="\t")
    splits = load_splits(DataSpec(train=str(train), validation=str(val), test=str(test), val_fraction=0.5,
                                  test_fraction=0.5))
    assert splits.train.texts == [t for t, _ in balanced(20)]
    assert splits.validation.texts == [t for t, _ in val_rows]
    assert splits.test.texts == [t for t, _ in test_rows]
    assert splits.validation.labels == [0, 1, 1, 0, 1, 1]
    assert splits.report.rows_used == {"train": 20, "validation": 6, "test": 7}
    assert splits.report.files["validation"]["path"] == str(val)
    assert splits.report.files["test"]["format"] == "tsv"
    assert "made_from" not in splits.report.files["test"]
    # only a validation file: the test split is still carved from train
    splits = load_splits(DataSpec(train=str(train), validation=str(val), test_fraction=0.2))
    assert splits.report.rows_used == {"train": 16, "validation": 6, "test": 4}
    assert splits.report.files["test"]["made_from"] == "train"
    assert splits.report.files["validation"]["path"] == str(val)


def test_report_is_json_and_summarises(tmp_path):
    rows = balanced(20) + [balanced(20)[3]]
    path = write_rows(tmp_path / "r.csv", rows)
    splits = load_splits(DataSpec(train=str(path), val_fraction=0.1, test_fraction=0.1))
    data = json.loads(json.dumps(splits.report.to_dict()))
    assert set(data) == {"files", "inferred", "dropped", "rows_used", "class_balance", "truncated", "leaks", "hints",
                         "problems", "tasks"}
    assert data["rows_used"] == {"train": 16, "validation": 2, "test": 2}
    assert data["class_balance"] == {"train": {"neg": 8, "pos": 8}, "validation": {"neg": 1, "pos": 1},
                                     "test": {"neg": 1, "pos": 1}}
    assert data["dropped"] == {"train": {DUP_REASON: 1}}
    assert data["files"]["train"] == {"path": str(path), "format": "csv", "encoding": "utf-8", "header": True,
                                      "rows_read": 21, "delimiter": ",", "quoting": "standard", "lines": 22,
                                      "reasons": data["files"]["train"]["reasons"]}
    assert set(data["files"]["train"]["reasons"]) == {"encoding", "delimiter", "header"}
    assert splits.report.summary_lines() == [
        "train: 16 rows (neg 8, pos 8)", "validation: 2 rows (neg 1, pos 1)", "test: 2 rows (neg 1, pos 1)",
        f"dropped 1 train rows (4.8% of 21): {DUP_REASON}"]


# ---------------------------------------------------------------- read_texts


def test_read_texts_infers_the_text_column_even_with_labels(tmp_path):
    rows = [(str(i), t, lab) for i, (t, lab) in enumerate(ROWS)]
    path = write_rows(tmp_path / "p.csv", rows, header=("id", "comment_body", "verdict"))
    texts, table = read_texts(str(path))
    assert texts == [t for t, _ in ROWS]
    assert table.frame.columns.tolist() == ["id", "comment_body", "verdict"]
    named = write_rows(tmp_path / "named.csv", ROWS)
    assert read_texts(str(named))[0] == [t for t, _ in ROWS]


def test_read_texts_one_text_per_line(tmp_path):
    path = write(tmp_path / "lines.txt", "first thing to classify\nsecond, with a comma\nthird\n")
    texts, table = read_texts(str(path))
    assert texts == ["first thing to classify", "second, with a comma", "third"]
    assert table.frame.columns.tolist() == ["column_1"]


def test_read_texts_joins_named_columns(tmp_path):
    rows = [("Title A", "body a", "x"), ("", "body b", "y"), ("Title C", "body c", "x")]
    path = write_rows(tmp_path / "j.csv", rows, header=("title", "body", "label"))
    texts, _ = read_texts(str(path), text_columns=["title", "body"])
    assert texts == ["Title A\nbody a", "body b", "Title C\nbody c"]
    spec = DataSpec(train=str(path), text_columns=("body", "title"), join_with=" - ")
    assert read_texts(str(path), spec)[0] == ["body a - Title A", "body b", "body c - Title C"]


def test_read_texts_missing_column_suggests(tmp_path):
    path = write_rows(tmp_path / "p.csv", ROWS)
    with pytest.raises(DataError) as e:
        read_texts(str(path), text_columns=["txt", "nothing_like_it"])
    assert e.value.problems == ["--text-column: column 'txt' not found; did you mean 'text'? (columns: text, label)",
                                "--text-column: column 'nothing_like_it' not found (columns: text, label)"]
    with pytest.raises(DataError, match="data file not found"):
        read_texts(str(tmp_path / "missing.csv"))
    empty = write(tmp_path / "empty.csv", "text\n")
    with pytest.raises(DataError, match="is empty: it has no data rows"):
        read_texts(str(empty))


def test_read_texts_keeps_every_row_in_order(tmp_path):
    rows = [("b first", "1", "x"), ("", "2", "y"), ("a third", "3", ""), ("   ", "4", "x"), ("b first", "5", "x")]
    path = write_rows(tmp_path / "all.csv", rows, header=("text", "id", "label"))
    texts, table = read_texts(str(path))
    frame = table.frame
    assert texts == ["b first", "", "a third", "", "b first"]
    assert frame["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert frame["text"].tolist() == ["b first", "", "a third", "   ", "b first"]  # the original cells
    assert frame.columns.tolist() == ["text", "id", "label"]
    jsonl = write_jsonl(tmp_path / "all.jsonl", [{"text": "x", "n": 1}, {"text": None, "n": 2}, {"n": 3}])
    texts, table = read_texts(str(jsonl))
    frame = table.frame
    assert texts == ["x", "", ""]
    assert frame["n"].tolist() == [1, 2, 3]


# ---------------------------------------------------------------- reading in chunks


def _chunked_equals_whole(path: Path, **given) -> list:
    """iter_table with a first part smaller than the file (the chunked path) gives read_table's rows and columns."""
    from nlptransfer.data.read import iter_table

    whole = read_table(path, **given)
    chunks = list(iter_table(path, rows=7, sniff_bytes=300, **given))
    assert len(chunks) == -(-len(whole.frame) // 7) and all(len(c.frame) <= 7 for c in chunks)
    joined = pd.concat([c.frame for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole.frame)
    first = chunks[0]
    assert (first.format, first.encoding, first.header, first.delimiter) == (
        whole.format, whole.encoding, whole.header, whole.delimiter)
    return chunks


def test_a_large_file_reads_in_chunks_as_it_reads_whole(tmp_path):
    rows = [(f"review {i}, \"quoted\" and long enough to fill the first part of the file", "pos" if i % 3 else "neg")
            for i in range(40)]
    rows[25] = ("a review over\ntwo lines", "pos")
    _chunked_equals_whole(write_rows(tmp_path / "a.csv", rows))
    _chunked_equals_whole(write_rows(tmp_path / "b.tsv", rows, header=None, delimiter="\t"))
    from nlptransfer.data.read import iter_table

    lines = [(f"review {i} first line\nsecond line, with a comma\nthird \"quoted\" line", "pos") for i in range(60)]
    multi = write_rows(tmp_path / "multi.csv", lines)
    for size in (300, 1000, 1500, 2999):  # first parts that end inside a quoted field over several lines
        frames = [c.frame for c in iter_table(multi, rows=7, sniff_bytes=size)]
        pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), read_table(multi).frame)
    latin = "".join(f"café crème n°{i} était très bon;{i % 2}\n" for i in range(40))
    chunks = _chunked_equals_whole(write(tmp_path / "c.csv", latin, "latin-1"))
    assert chunks[0].encoding == "latin-1" and chunks[0].delimiter == ";"
    records = [{"text": f"line {i}\u2028with a line separator inside its JSON string", "label": "x"} for i in range(30)]
    records[20] = {"label": "y", "other": 1}  # a chunk without a key the others have
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    whole = read_table(path).frame
    assert whole["text"][0] == "line 0\u2028with a line separator inside its JSON string" and len(whole) == 30
    from nlptransfer.data.unlabelled import iter_texts

    assert sum(len(c.frame) for c in iter_table(path, rows=7, sniff_bytes=300)) == 30
    texts = [t for chunk, _ in iter_texts(str(path), rows=7) for t in chunk]
    assert texts == read_texts(str(path))[0] and texts[20] == ""


def test_a_bad_json_line_past_the_first_part_is_named_by_its_line_in_the_file(tmp_path):
    from nlptransfer.data.read import iter_table

    path = tmp_path / "e.jsonl"
    lines = [json.dumps({"text": f"row {i} " * 5, "label": "a"}) for i in range(30)]
    lines[22] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"1 lines are not JSON objects \(lines 23\)"):
        list(iter_table(path, rows=7, sniff_bytes=300))
