"""Texts to predict on: a file's rows with the text columns named or inferred, refusing files with no texts."""
from __future__ import annotations

import dataclasses
from typing import Iterator

from ..errors import DataError
from .columns import LABEL_NAMES, infer_label_column, infer_text_columns, missing_column
from .read import Table, iter_table, read_table
from .schema import DataSpec
from .split import table_rows


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
    return table_rows(table, chosen, None, spec.join_with)["text"].tolist()
