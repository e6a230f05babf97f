"""Cells as a CSV or TSV file a spreadsheet may open holds them: a text cell that a spreadsheet would run as a formula
(it begins with =, +, -, @, a tab or a carriage return) is written with a single quote before it (OWASP's advice on
CSV injection), numbers stay numbers, and lists or mappings (nested Parquet or JSON columns) are written as JSON. A
cell that already begins with quotes before such a character gets one more, so reading back (`restored`) is exact."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

#: a text a spreadsheet would run: one of these first, after any single quotes (those are given one more)
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")
#: a number as a text cell holds it (-1.5, +2, -3e-4): a spreadsheet reads it as a number, so it is left as it is
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _runs(text: str) -> bool:
    return bool(_FORMULA.match(text)) and not _NUMBER.match(text)


def neutral(value):
    """`value` with a single quote before it when it is a text a spreadsheet would run as a formula; else as it is."""
    return "'" + value if isinstance(value, str) and _runs(value) else value


def restored(text: str) -> str:
    """The text `neutral` was given: one leading quote fewer where it added one."""
    return text[1:] if text.startswith("'") and _runs(text[1:]) else text


def _as_json(value):
    """A list, mapping or array cell as JSON text; any other cell as it is."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=_plain)
    return value


def _plain(value):
    """What json.dumps cannot write itself: numpy values and arrays inside a nested cell, anything else as text."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def spreadsheet_safe(frame: pd.DataFrame, keep_formulas: bool = False) -> pd.DataFrame:
    """`frame` as a CSV/TSV file should hold it: nested cells as JSON, and (unless `keep_formulas`) text cells and
    column names that a spreadsheet would run quoted (`neutral`). Columns of numbers are left as they are."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            cells = out[column].map(_as_json)
            out[column] = cells if keep_formulas else cells.map(neutral)
    if not keep_formulas:
        out.columns = [neutral(str(c)) for c in out.columns]
    return out


def safe_rows(rows: list[list], keep_formulas: bool = False) -> list[list]:
    """Rows of cells as spreadsheet_safe writes them (for csv.writer)."""
    return rows if keep_formulas else [[neutral(cell) for cell in row] for row in rows]


def read_predictions(path, keep_formulas: bool = False, most: int | None = None) -> list[dict]:
    """The (first `most`) rows of a run's predictions.csv as csv.DictReader gives them, each cell as it was before it
    was written (`restored`, unless the run kept formulas: output.keep_formulas)."""
    import csv
    import itertools

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(itertools.islice(csv.DictReader(f), most))
    return rows if keep_formulas else [{k: restored(v) for k, v in row.items()} for row in rows]
