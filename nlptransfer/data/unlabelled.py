"""Texts to predict on: a file's rows with the text columns named or inferred, refusing files with no texts."""
from __future__ import annotations

from ..errors import DataError
from .columns import LABEL_NAMES, infer_label_column, infer_text_columns, missing_column
from .read import Table, read_table
from .schema import DataSpec
from .split import table_rows


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
    frame = table_rows(table, chosen, None, s.join_with)
    return frame["text"].tolist(), table
