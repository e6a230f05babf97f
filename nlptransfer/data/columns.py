"""Choose the text and label columns: the ones named, or inferred (with the reason) when not given."""
from __future__ import annotations

import difflib

import pandas as pd

from .read import cell_text

TEXT_NAMES = ("text", "review", "review_text", "sentence", "content", "body", "comment", "message", "document",
              "tweet", "description", "sentence1", "summary", "headline", "title")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target", "topic", "rating", "stars",
               "polarity", "intent", "y")


def missing_column(name: str, columns: list[str], key: str) -> str:
    """The problem line for a column that is not in the file, with the closest names."""
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{key}: column '{name}' not found{hint} (columns: {', '.join(columns)})"


def _mean_length(frame: pd.DataFrame, column: str) -> float:
    values = frame[column].iloc[:500].map(cell_text)
    return float(values.str.len().mean()) if len(values) else 0.0


def _named(columns: list[str], names: tuple[str, ...], exclude: set[str]) -> str | None:
    lower = {c.lower().strip(): c for c in columns if c not in exclude}
    return next((lower[n] for n in names if n in lower), None)


def infer_label_column(frame: pd.DataFrame, exclude: set[str]) -> tuple[str | None, str]:
    """The label column and why it was chosen (or None and why none fits)."""
    columns = [str(c) for c in frame.columns]
    named = _named(columns, LABEL_NAMES, exclude)
    if named:
        return named, f"its name '{named}' is a usual label column name"
    candidates = []
    for c in columns:
        if c in exclude or c.lower().strip() in TEXT_NAMES[:-3]:  # a column named 'text' is never the label
            continue
        distinct = frame[c].map(cell_text).nunique()
        if 2 <= distinct <= max(2, min(50, len(frame) // 2)):
            candidates.append((distinct, _mean_length(frame, c), c))
    if not candidates:
        return None, "no column has a small set of repeated values"
    distinct, _, column = min(candidates)
    return column, f"it has the fewest distinct values ({distinct}) of the short columns"


def infer_text_columns(frame: pd.DataFrame, exclude: set[str]) -> tuple[list[str], str]:
    """The text column (one) and why; other text-like columns are mentioned so the user can join them."""
    columns = [str(c) for c in frame.columns if str(c) not in exclude]
    if not columns:
        return [], "no column is left for text"
    named = _named(columns, TEXT_NAMES[:-3], exclude)  # summary/headline/title only by length
    lengths = {c: _mean_length(frame, c) for c in columns}
    if named:
        column, reason = named, f"its name '{named}' is a usual text column name"
    else:
        column = max(columns, key=lambda c: lengths[c])
        reason = f"it has the longest texts (mean {lengths[column]:.0f} characters)"
    others = [c for c in columns if c != column and lengths[c] >= 15]
    if others:
        reason += (f"; other text-like columns not used: {', '.join(others)} "
                   f"(to join them: data.text_columns=[{', '.join(others + [column])}])")
    return [column], reason
