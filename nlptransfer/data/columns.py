"""Choose the text and label columns: the ones named, or inferred (with the reason, and the runner-up) when not
given. A label column is nearly complete, has a small set of repeated values and, best, a label-like name; a text
column holds text, never ids, numbers or timestamps."""
from __future__ import annotations

import difflib
import re

import numpy as np
import pandas as pd

from .read import cell_text, row_list, spread

TEXT_NAMES = ("text", "review", "review_text", "sentence", "content", "body", "comment", "message", "document",
              "tweet", "description", "sentence1", "summary", "headline", "title")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target", "topic", "rating", "stars",
               "polarity", "intent", "y")
#: parts of a column name that suggest labels (airline_sentiment, star_rating, product_category ...)
LABEL_WORDS = ("label", "sentiment", "class", "category", "rating", "stars", "polarity", "topic", "intent",
               "emotion", "verdict", "target")
#: parts of a column name that suggest something about a label, not the label itself
SIDE_WORDS = ("confidence", "gold", "reason", "score", "prob", "id", "count", "date", "time")
_UNNAMED = re.compile(r"^column_\d+$")  # read.py's name for a column whose header cell is empty (or no header row)
#: the largest share of rows an unnamed column after the text may fill and still read as a text that ran on into it
SPILL = 0.1
_ID = re.compile(r"^[0-9a-fA-F-]{6,}$|^\d+$")
_NUMBER = re.compile(r"^\s*[-+]?\d+([.,]\d+)?\s*$")
_TIMESTAMP = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}[:.]\d{2}([:.]\d{2})?)?")
#: the least share of non-empty cells a label column needs when another one is fuller
COMPLETE = 0.9


def missing_column(name: str, columns: list[str], key: str) -> str:
    """The problem line for a column that is not in the file, with the closest names."""
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{key}: column '{name}' not found{hint} (columns: {', '.join(columns)})"


def _cells(frame: pd.DataFrame, column: str, n: int | None = 2000) -> pd.Series:
    """`column`'s cells as stripped text: n rows spread evenly over the frame (its first and last included), all of
    them with n None. Spread, not the first n: a file sorted by its label (all negatives, then all positives) shows one
    label in its first rows."""
    cells = frame[column] if n is None else frame[column].iloc[spread(len(frame), n)]
    return cells.map(cell_text).str.strip()


def _counted(frame: pd.DataFrame, candidate: dict) -> dict:
    """A label candidate with its distinct values and filled share counted over every row (the ranking counts a
    sample): the numbers a reason shows."""
    cells = _cells(frame, candidate["column"], None)
    filled = cells[cells != ""]
    return {**candidate, "distinct": filled.nunique(), "complete": len(filled) / max(len(cells), 1)}


def _mean_length(frame: pd.DataFrame, column: str) -> float:
    values = _cells(frame, column, 500)
    return float(values.str.len().mean()) if len(values) else 0.0


def kind_of(frame: pd.DataFrame, column: str) -> str | None:
    """'id', 'number', 'timestamp' or 'category' (few values, each repeated) when nearly every cell of `column` is
    one: such columns are never text."""
    values = _cells(frame, column)
    values = values[values != ""]
    if not len(values):
        return None
    if len(values) >= 50 and values.nunique() <= 0.2 * len(values):
        return "category"
    for kind, pattern in (("timestamp", _TIMESTAMP), ("number", _NUMBER)):
        if values.str.match(pattern).mean() >= 0.95:
            if kind == "number" and values.nunique() >= 0.95 * len(values) and values.str.match(_ID).mean() >= 0.95:
                return "id"
            return kind
    if values.str.match(_ID).mean() >= 0.95 and values.nunique() == len(values):
        return "id"
    return None


def _named(columns: list[str], names: tuple[str, ...], exclude: set[str]) -> str | None:
    lower = {c.lower().strip(): c for c in columns if c not in exclude}
    return next((lower[n] for n in names if n in lower), None)


def _name_weight(column: str) -> int:
    """2 for a usual label name, 1 for a name with a label word and no side word, 0 otherwise."""
    name = column.lower().strip()
    if name in LABEL_NAMES:
        return 2
    parts = set(re.split(r"[^a-z0-9]+", name))
    if any(w in name for w in LABEL_WORDS) and not parts & set(SIDE_WORDS):
        return 1
    return 0


def infer_label_column(frame: pd.DataFrame, exclude: set[str]) -> tuple[str | None, str]:
    """The label column and why it was chosen, naming the runner-up (or None and why none fits)."""
    columns = [str(c) for c in frame.columns]
    candidates = []
    for c in columns:
        if c in exclude or c.lower().strip() in TEXT_NAMES[:-3]:  # a column named 'text' is never the label
            continue
        cells = _cells(frame, c)
        filled = cells[cells != ""]
        distinct = filled.nunique()
        complete = len(filled) / max(len(cells), 1)
        if 2 <= distinct <= max(2, min(50, len(filled) // 2)) or (_name_weight(c) == 2 and distinct >= 1):
            candidates.append({"column": c, "distinct": distinct, "complete": complete, "name": _name_weight(c),
                               "length": _mean_length(frame, c)})
    if not candidates:
        return None, "no column has a small set of repeated values"
    fullest = max(c["complete"] for c in candidates)
    # nearly complete first, then a label-like name, then fewer distinct values, then shorter values
    ranked = sorted(candidates, key=lambda c: (c["complete"] < min(COMPLETE, fullest), -c["name"], c["distinct"],
                                               c["length"], c["column"]))
    best = _counted(frame, ranked[0])
    if best["name"] == 2:
        why = f"its name '{best['column']}' is a usual label column name"
    elif best["name"] == 1:
        why = f"its name '{best['column']}' says labels, and it has {best['distinct']} distinct values"
    else:
        why = f"it has the fewest distinct values ({best['distinct']}) of the short columns"
    if best["complete"] < 1:
        why += f", {best['complete']:.0%} filled"
    if len(ranked) > 1:
        runner = _counted(frame, ranked[1])
        why += (f"; runner-up '{runner['column']}' ({runner['distinct']} values, {runner['complete']:.0%} filled): "
                "set data.label_column to choose it")
    return best["column"], why


def infer_text_columns(frame: pd.DataFrame, exclude: set[str]) -> tuple[list[str], str]:
    """The text column (one) and why; other text-like columns are mentioned so the user can join them."""
    columns = [str(c) for c in frame.columns if str(c) not in exclude]
    if not columns:
        return [], "no column is left for text"
    named = _named(columns, TEXT_NAMES[:-3], exclude)  # summary/headline/title only by length
    lengths = {c: _mean_length(frame, c) for c in columns}
    texts = [c for c in columns if kind_of(frame, c) is None]
    if named:
        column, reason = named, f"its name '{named}' is a usual text column name"
    else:
        pool = texts or columns
        column = max(pool, key=lambda c: lengths[c])
        reason = f"it has the longest texts (mean {lengths[column]:.0f} characters)"
    others = [c for c in texts if c != column and lengths[c] >= 15]
    if others:
        reason += (f"; other text-like columns not used: {', '.join(others)} "
                   f"(to join them: data.text_columns=[{', '.join(others + [column])}])")
    return [column], reason


def run_on_columns(frame: pd.DataFrame, text_columns: list[str], skip: set[str]) -> str | None:
    """A hint when unnamed columns after the last text column hold values in a few rows only: texts with unquoted
    commas (or other delimiters) that ran on past their column, whose rest would not be read (the SMS Spam
    Collection's spam.csv: 'class,message,,,'). None when there are none, or when such a column is filled in more
    than SPILL of the rows (a column of its own)."""
    columns = [str(c) for c in frame.columns]
    present = [columns.index(c) for c in text_columns if c in columns]
    if not present or len(frame) == 0:
        return None
    after = [c for c in columns[max(present) + 1:] if _UNNAMED.match(c) and c not in skip and c not in text_columns]
    filled = {c: frame[c].map(cell_text).str.strip() != "" for c in after}
    spilled = [c for c, mask in filled.items() if 0 < mask.sum() <= SPILL * len(frame)]
    if not spilled:
        return None
    rows = (np.flatnonzero(np.logical_or.reduce([filled[c].to_numpy() for c in spilled])) + 1).tolist()
    return (f"{len(rows)} row(s) have values in the unnamed column(s) {', '.join(spilled)} after "
            f"'{columns[max(present)]}' ({row_list(rows)}): texts with an unquoted delimiter that ran on? Those parts "
            f"are not read; to join them: data.text_columns=[{', '.join(text_columns + spilled)}]")
