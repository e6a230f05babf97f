"""Texts without labels: a file's rows to predict on, with the text columns named or inferred, refusing files with no
texts; and the training file of a strategy that needs no labels (zero_shot), read as texts alone."""
from __future__ import annotations

import dataclasses
from typing import Iterator

from ..errors import DataError
from ..logs import get_logger
from .columns import LABEL_NAMES, infer_label_column, infer_text_columns, missing_column
from .problems import (EMPTY_TEXT, NO_TEXT, TRAINING, empty_problem, in_file_problem, no_text_column_problem,
                       no_texts_problem, texts_only_files_problem, too_few_names_problem)
from .read import Table, cell_text, iter_table, read_table
from .readers import text_rows
from .schema import DataReport, DataSpec, LabelledTexts, LabelMap, Splits

logger = get_logger(__name__)


def read_texts(path: str, spec: DataSpec | None = None, text_columns: list[str] | None = None
               ) -> tuple[list[str], Table]:
    """The texts of a file to predict on (columns named or inferred; "" where a row has none) and the table read."""
    s = spec or DataSpec()
    table = read_table(path, s.format, s.header, s.encoding, s.delimiter)
    return table_texts(table, path, s, _text_columns(table, path, text_columns or s.text_columns)), table


def iter_texts(path: str, spec: DataSpec | None = None, text_columns: list[str] | None = None, rows: int = 50_000
               ) -> Iterator[tuple[list[str], Table]]:
    """As read_texts, chunk by chunk (data.read.iter_table): memory bounded by `rows` rows, not the file. The text
    columns are chosen on the first chunk."""
    s = spec or DataSpec()
    chosen = None
    for table in iter_table(path, s.format, s.header, s.encoding, s.delimiter, rows):
        if chosen is None:
            chosen = _text_columns(table, path, text_columns or s.text_columns)
        yield table_texts(table, path, s, chosen), table


def _text_columns(table: Table, path: str, chosen: list[str] | None) -> list[str]:
    """The columns holding the texts: those named (each must be there), or inferred (never one named like labels)."""
    if len(table.frame) == 0:
        raise DataError(f"{path} is empty: it has no data rows")
    columns = [str(c) for c in table.frame.columns]
    if chosen:
        missing = [missing_column(c, columns, "--text-column") for c in chosen if c not in columns]
        if missing:
            raise DataError(missing)
        return list(chosen)
    label, _ = infer_label_column(table.frame, set()) if len(columns) > 1 else (None, "")
    chosen, why = infer_text_columns(table.frame, {label} if label else set())
    if not chosen or chosen[0].lower().strip() in LABEL_NAMES:
        raise DataError(f"{path} has no text column to predict on (columns: {', '.join(columns)}): "
                        f"{'its only column' if len(columns) == 1 else 'the column found'} "
                        f"'{chosen[0] if chosen else ''}' is named like labels; name the texts with --text-column")
    return chosen


def table_texts(table: Table, path: str, spec: DataSpec, chosen: list[str]) -> list[str]:
    """The texts of `table`'s rows from the `chosen` columns (joined), refusing columns of lists or mappings. A
    column a chunk lacks (no JSON line of it has the key) is empty there."""
    absent = [c for c in chosen if c not in table.frame.columns]
    if absent:
        table = dataclasses.replace(table, frame=table.frame.assign(**dict.fromkeys(absent)))
    nested = {c: int(table.frame[c].map(lambda v: isinstance(v, (list, dict))).sum()) for c in chosen}
    if any(nested.values()):
        listed = ", ".join(f"'{c}' in {n} rows" for c, n in nested.items() if n)
        raise DataError(f"{path}: the text column holds lists or mappings, not texts ({listed}); "
                        "name a column of texts with --text-column")
    return text_rows(table, chosen, spec.join_with)["text"].tolist()


def without_labels(spec: DataSpec, table: Table, names: list[str]) -> bool:
    """True when the training file has no label column: none named, and none inferred, or an inferred one not named
    like labels none of whose values is one of `names` (a category column of texts to classify zero-shot, not their
    labels; a column named like labels is always the labels, so a misspelt description is reported, not guessed)."""
    if spec.label_column is not None:
        return False
    column, _ = infer_label_column(table.frame, set(spec.text_columns or []))
    if column is None:
        return True
    if column.lower().strip() in LABEL_NAMES:
        return False
    values = set(table.frame[column].map(cell_text).str.strip())
    return bool(names) and not values & set(names)


def texts_only(spec: DataSpec, table: Table, names: list[str], report: DataReport) -> Splits:
    """The training file's texts as the train split, without labels (and no validation or test split)."""
    if len(names) < 2:
        raise DataError(too_few_names_problem(table.path), report)
    if spec.validation or spec.test:
        raise DataError(texts_only_files_problem(table.path), report)
    columns = list(spec.text_columns or [])
    if not columns:
        columns, why = infer_text_columns(table.frame, set())
        if not columns:
            raise DataError(no_text_column_problem(table.path, why, "data.text_columns"), report)
        report.inferred["text_columns"] = {"columns": columns, "reason": why}
    missing = [in_file_problem(TRAINING, "train", table.path, missing_column(c, [str(x) for x in table.frame.columns],
                                                                             "data.text_columns"))
               for c in columns if c not in table.frame.columns]
    if missing:
        raise DataError(missing, report)
    frame = text_rows(table, columns, spec.join_with)
    empty = frame["text"] == ""
    if empty.any() and not spec.drop_invalid:
        raise DataError(empty_problem(TRAINING, "train", int(empty.sum()), NO_TEXT,
                                      frame.loc[empty, "row"].tolist()), report)
    report.drop("train", EMPTY_TEXT, int(empty.sum()))
    frame = frame[~empty]
    if not len(frame):
        raise DataError(no_texts_problem(table.path), report)
    report.rows_used["train"] = len(frame)
    report.inferred["labels"] = {"column": None, "reason": f"no label column: the texts are classified into "
                                                            f"{', '.join(names)}"}
    logger.info(f"{table.path}: {len(frame)} texts without labels, classified into {', '.join(names)}")
    return Splits(LabelledTexts(frame["text"].tolist(), None, frame["row"].tolist()), None, None, LabelMap(names),
                  report)
