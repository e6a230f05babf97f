"""Turn the data files into checked train/validation/test splits, collecting every problem into one DataError."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..logs import get_logger
from ..errors import DataError
from .columns import LABEL_NAMES, infer_label_column, infer_text_columns, missing_column
from .read import Table, cell_text, read_table
from .schema import DataReport, DataSpec, LabelledTexts, LabelMap, Splits

logger = get_logger(__name__)
FIX_ROWS = "fix them, or set data.drop_invalid=true to drop them (they are counted in the report)"


@dataclass(frozen=True)
class Words:
    """How messages name things: a training run's files and recipe keys, or an evaluation's file and flags."""

    first_file: str  #: what the main file is called
    fix_rows: str
    text_key: str
    label_key: str

    def split(self, name: str) -> str:
        return self.first_file if name == "train" else name

    def file(self, name: str) -> str:
        split = self.split(name)
        return split if split.endswith("file") else f"{split} file"


TRAINING = Words("train", FIX_ROWS, "data.text_columns", "data.label_column")
EVALUATION = Words("evaluation file", "fix or remove them", "--text-column", "--label-column")


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:8]))
    return f"rows {shown}{' ...' if len(numbers) > 8 else ''}"


def _read(spec: DataSpec, path: str, problems: list[str]) -> Table | None:
    try:
        table = read_table(path, spec.format, spec.header, spec.encoding, spec.delimiter)
    except DataError as e:
        problems.extend(e.problems)
        return None
    if len(table.frame) == 0:
        problems.append(f"{path} is empty: it has no data rows")
        return None
    return table


def _choose_columns(spec: DataSpec, tables: dict[str, Table], report: DataReport, problems: list[str],
                    words: Words = TRAINING):
    """The text columns and label column, named or inferred from the training file, checked in every file."""
    train = tables.get("train")
    text_columns, label_column = list(spec.text_columns or []), spec.label_column
    if train is not None:
        columns = [str(c) for c in train.frame.columns]
        if label_column is None:
            label_column, why = infer_label_column(train.frame, set(text_columns))
            if label_column is None:
                problems.append(f"cannot infer the label column of {train.path} ({why}): set {words.label_key} "
                                f"(columns: {', '.join(columns)})")
            else:
                report.inferred["label_column"] = {"column": label_column, "reason": why}
                logger.info(f"label column: '{label_column}' (inferred: {why})")
        if not text_columns:
            text_columns, why = infer_text_columns(train.frame, {label_column} if label_column else set())
            if not text_columns:
                problems.append(f"cannot infer the text column of {train.path} ({why}): set {words.text_key}")
            else:
                report.inferred["text_columns"] = {"columns": text_columns, "reason": why}
                logger.info(f"text column: '{text_columns[0]}' (inferred: {why})")
    for name, table in tables.items():
        columns = [str(c) for c in table.frame.columns]
        for column in text_columns:
            if column not in columns:
                problems.append(f"{words.file(name)} {table.path}: "
                                + missing_column(column, columns, words.text_key))
        if label_column and label_column not in columns:
            problems.append(f"{words.file(name)} {table.path}: "
                            + missing_column(label_column, columns, words.label_key))
    return text_columns, label_column


def _sort_labels(names: set[str]) -> list[str]:
    """Label names in an order that never depends on the process: numerically when all are finite numbers
    (ties such as '1', '01' and '1.0' by their text), else alphabetically."""
    try:
        values = {n: float(n) for n in names}
    except ValueError:
        return sorted(names)
    if not all(math.isfinite(v) for v in values.values()):
        return sorted(names)
    return sorted(names, key=lambda n: (values[n], n))


def _split_sizes_problem(counts: pd.Series, carve: list[tuple[str, float]]) -> list[str]:
    """Problems that make a stratified split impossible: tiny classes, or too few rows for every class."""
    problems = []
    need = len(carve) + 1
    small = counts[counts < need]
    if len(small):
        listed = ", ".join(f"'{k}' has {v}" for k, v in small.items())
        what = " and ".join(n for n, _ in carve)
        problems.append(f"class too small to split: {listed} row(s) in train; making the {what} split(s) needs at "
                        f"least {need} rows per class: add rows, supply data.validation/data.test files, "
                        f"or set data.val_fraction / data.test_fraction to 0")
    n = int(counts.sum())
    for name, fraction in carve:
        size = math.ceil(fraction * n)
        if size < len(counts):
            problems.append(f"a {name} split of {fraction:g} x {n} rows gives {size} rows for {len(counts)} classes: "
                            f"raise data.{'val' if name == 'validation' else 'test'}_fraction or add rows")
    return problems


def _stratified(frame: pd.DataFrame, fractions: list[tuple[str, float]], seed: int) -> dict[str, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    parts, rest, total = {}, frame, len(frame)
    for name, fraction in fractions:
        size = math.ceil(fraction * total)
        rest, parts[name] = train_test_split(rest, test_size=size, stratify=rest["label"], random_state=seed)
    parts["train"] = rest
    return {k: v.sort_index() for k, v in parts.items()}


def _table_rows(table: Table, text_columns: list[str] | None, label_column: str | None, join_with: str
                ) -> pd.DataFrame:
    """Columns text, label, row (1-based data row); a column that could not be found is None throughout."""
    frame = table.frame
    texts: list = [None] * len(frame)
    if text_columns:
        parts = [frame[c].map(cell_text).str.strip().tolist() for c in text_columns]
        texts = [join_with.join(p for p in row if p) for row in zip(*parts)]
    labels = frame[label_column].map(cell_text).str.strip().tolist() if label_column else [None] * len(frame)
    return pd.DataFrame({"text": texts, "label": labels, "row": range(1, len(frame) + 1)})


NO_TRAIN = "no training data: pass --data FILE (or data=... in Python, or data.train in the recipe)"


def load_splits(spec: DataSpec, seed: int = 42, purpose: str = "train") -> Splits:
    """Read, check and split the data files (carved splits seeded by `seed`); raises one DataError listing every
    problem found. purpose "evaluate": the file is scored as a whole, and may hold a single class."""
    if not spec.train:
        raise DataError(NO_TRAIN)
    problems: list[str] = []
    report = DataReport()
    files = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    tables = {name: t for name, path in files.items() if path for t in [_read(spec, path, problems)] if t is not None}
    for name, table in tables.items():
        report.files[name] = table.info()
    words = EVALUATION if purpose == "evaluate" else TRAINING
    text_columns, label_column = _choose_columns(spec, tables, report, problems, words)
    if "train" not in tables:
        raise DataError(problems)
    # go on with what can be checked, so one message lists every problem
    frames = _frames(tables, text_columns, label_column, spec.join_with)
    _check_empty(frames, spec.drop_invalid, report, problems, words)
    if "train" not in frames:
        raise DataError(problems)
    names = _check_labels(frames, spec.labels, purpose, problems, words)
    _check_leaks(frames, spec.drop_invalid, report, problems)
    carve = [(n, f) for n, f in (("test", spec.test_fraction), ("validation", spec.val_fraction))
             if not files[n] and f > 0]  # a given file is never carved, even when it could not be read
    if carve:
        _drop_duplicates_before_carving(frames, carve, report, problems)
    if problems:
        raise DataError(problems)
    if carve:
        _carve(frames, carve, seed, report)
    return _splits(frames, names, report)


def _frames(tables: dict[str, Table], text_columns: list[str], label_column: str | None, join_with: str
            ) -> dict[str, pd.DataFrame]:
    """Each file's text, label and row columns, for the files that have at least one of the chosen columns."""
    frames = {}
    for name, t in tables.items():
        columns = set(map(str, t.frame.columns))
        has_text = bool(text_columns) and all(c in columns for c in text_columns)
        has_label = bool(label_column) and label_column in columns
        if has_text or has_label:
            frames[name] = _table_rows(t, text_columns if has_text else None, label_column if has_label else None,
                                       join_with)
    return frames


def _check_empty(frames: dict[str, pd.DataFrame], drop: bool, report: DataReport, problems: list[str],
                 words: Words) -> None:
    """Rows with an empty text or label: a problem, or dropped and counted."""
    checks = [("text", "an empty or missing text", "empty or missing text"), ("label", "a missing label", "missing label")]
    for name, frame in list(frames.items()):
        for column, what, reason in checks:
            bad = frame[frame[column] == ""]
            if len(bad) and drop:
                report.drop(name, reason, len(bad))
                frame = frame[frame[column] != ""]
            elif len(bad):
                problems.append(f"{words.split(name)}: {len(bad)} row(s) have {what} ({_rows(bad['row'].tolist())}); "
                                f"{words.fix_rows}")
        frames[name] = frame


def _check_labels(frames: dict[str, pd.DataFrame], given: list[str] | None, purpose: str, problems: list[str],
                  words: Words) -> list[str]:
    """The label names in id order; labels outside them, and a single training class, are problems."""
    train_labels = set(frames["train"]["label"].dropna()) - {""}
    known = set(given) if given else train_labels
    names = list(given) if given else _sort_labels(train_labels)
    for name, frame in frames.items():
        if frame["label"].isna().any():
            continue
        unknown = frame[(frame["label"] != "") & ~frame["label"].isin(known)]
        if len(unknown):
            counts = unknown["label"].value_counts()
            listed = ", ".join(f"'{k}' ({v} rows)" for k, v in counts.items())
            if purpose == "evaluate":
                where = f"the run was not trained on (it knows {', '.join(map(repr, given or []))})"
            else:
                where = f"not in data.labels {list(given)}" if given else "never seen in training"
            problems.append(f"{words.split(name)}: labels {where}: {listed}")
    if purpose == "train" and len(train_labels) == 1:
        only = next(iter(train_labels))
        problems.append(f"train has a single class '{only}': a classifier needs at least two labels")
    return names


def _check_leaks(frames: dict[str, pd.DataFrame], drop: bool, report: DataReport, problems: list[str]) -> None:
    """Validation and test texts that also appear in train: a problem, or dropped and counted."""
    train_texts = set(frames["train"]["text"])
    for name in ("validation", "test"):
        if name in frames and frames[name]["text"].notna().all() and frames["train"]["text"].notna().all():
            shared = frames[name][frames[name]["text"].isin(train_texts)]
            if len(shared) and drop:
                report.drop(name, "exact duplicate of a training text", len(shared))
                frames[name] = frames[name][~frames[name]["text"].isin(train_texts)]
            elif len(shared):
                problems.append(f"{name}: {len(shared)} text(s) also appear in train ({_rows(shared['row'].tolist())}), "
                                f"which inflates the {name} score; {FIX_ROWS}")


def _drop_duplicates_before_carving(frames: dict[str, pd.DataFrame], carve: list[tuple[str, float]],
                                    report: DataReport, problems: list[str]) -> None:
    """Keep the first of rows sharing a text (so no text lands in two splits); check the classes can be split."""
    if not frames["train"]["text"].notna().all():  # no texts (column not found): nothing to split yet
        return
    pool = frames["train"]
    pool = pool[(pool["text"] != "") & (pool["label"] != "")]  # invalid rows: a problem already, not a class
    classes = pool["label"].nunique()
    duplicated = pool["text"].duplicated(keep="first")
    report.drop("train", "duplicate text of an earlier row (kept the first, so no text is in two splits)",
                int(duplicated.sum()))
    frames["train"] = pool = pool[~duplicated]
    if pool["label"].notna().all() and classes > 1:
        problems.extend(_split_sizes_problem(pool["label"].value_counts(), carve))


def _carve(frames: dict[str, pd.DataFrame], carve: list[tuple[str, float]], seed: int, report: DataReport) -> None:
    """Stratified, seeded validation/test splits carved from train."""
    try:
        frames.update(_stratified(frames["train"], carve, seed))
    except ValueError as e:  # large fractions of tiny classes: sklearn cannot stratify what is left
        raise DataError(f"cannot make stratified splits of {len(frames['train'])} train rows: {e}; "
                        f"lower data.val_fraction / data.test_fraction, or add rows")
    for name, _ in carve:
        report.files[name] = {"made_from": "train", "fraction": dict(carve)[name], "seed": seed}


def _splits(frames: dict[str, pd.DataFrame], names: list[str], report: DataReport) -> Splits:
    label_map = LabelMap(names)
    splits = {}
    for name in ("train", "validation", "test"):
        frame = frames.get(name)
        if frame is None:
            splits[name] = None
            continue
        splits[name] = LabelledTexts(frame["text"].tolist(), [label_map.id(x) for x in frame["label"]],
                                     frame["row"].tolist())
        report.rows_used[name] = len(frame)
        counts = frame["label"].value_counts()
        report.class_balance[name] = {n: int(counts.get(n, 0)) for n in names}
    return Splits(splits["train"], splits["validation"], splits["test"], label_map, report)


def read_texts(path: str, spec: DataSpec | None = None, text_columns: list[str] | None = None
               ) -> tuple[list[str], Table]:
    """The texts of a file to predict on (columns named or inferred; "" where a row has none) and the table read."""
    s = spec or DataSpec()
    table = read_table(path, s.format, s.header, s.encoding, s.delimiter)
    if len(table.frame) == 0:
        raise DataError(f"{path} is empty: it has no data rows")
    columns = [str(c) for c in table.frame.columns]
    chosen = list(text_columns or s.text_columns or [])
    if chosen:
        missing = [missing_column(c, columns, "--text-column") for c in chosen if c not in columns]
        if missing:
            raise DataError(missing)
    else:
        label, _ = infer_label_column(table.frame, set()) if len(columns) > 1 else (None, "")
        chosen, why = infer_text_columns(table.frame, {label} if label else set())
        if not chosen or chosen[0].lower().strip() in LABEL_NAMES:
            raise DataError(f"{path} has no text column to predict on (columns: {', '.join(columns)}): "
                            f"{'its only column' if len(columns) == 1 else 'the column found'} "
                            f"'{chosen[0] if chosen else ''}' is named like labels; name the texts with --text-column")
    nested = {c: int(table.frame[c].map(lambda v: isinstance(v, (list, dict))).sum()) for c in chosen}
    if any(nested.values()):
        listed = ", ".join(f"'{c}' in {n} rows" for c, n in nested.items() if n)
        raise DataError(f"{path}: the text column holds lists or mappings, not texts ({listed}); "
                        "name a column of texts with --text-column")
    frame = _table_rows(table, chosen, None, s.join_with)
    return frame["text"].tolist(), table
