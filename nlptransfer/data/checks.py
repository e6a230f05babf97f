"""Checks across rows and columns: duplicate and conflicting texts (whitespace aside), columns that give the label
away, and how much of a split dropping invalid rows would leave."""
from __future__ import annotations

import pandas as pd

from .columns import kind_of
from .read import cell_text

#: fewest rows with a value a column needs before it can be called a leak
LEAK_ROWS = 20
#: share of those rows whose label the column's value must predict
LEAK_ACCURACY = 0.98


def text_key(texts: pd.Series) -> pd.Series:
    """Texts compared as a reader would: runs of whitespace are one space."""
    return texts.fillna("").map(lambda t: " ".join(str(t).split()))


def conflicting(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose text (whitespace aside) appears in the frame with another label too."""
    keys = text_key(frame["text"])
    labels_per_text = frame.assign(key=keys).groupby("key")["label"].transform("nunique")
    return (labels_per_text > 1) & (keys != "")


def leaking_columns(frame: pd.DataFrame, labels: pd.Series, exclude: set[str]) -> list[dict]:
    """Columns other than the texts and labels whose values give the label away (see LeakCounter)."""
    counter = LeakCounter(exclude)
    counter.add(frame, labels)
    return counter.leaks()


class LeakCounter:
    """Columns other than the texts and labels whose values give the label away: where such a column has a value
    (on at least LEAK_ROWS rows), each value's most common label is right for LEAK_ACCURACY of them, well above
    what guessing the most common label gets. Columns with a different value almost per row (ids, texts) are not
    counted: a value per row predicts nothing (a value must cover 3 rows on average). Fed a chunk of rows at a
    time (`add`), it counts (value, label) pairs; a column with more than `most` distinct values is given up (a
    value per row, or nearly: it predicts nothing), so memory stays bounded on any file."""

    def __init__(self, exclude: set[str], most: int = 100_000):
        self.exclude, self.most = exclude, most
        self.pairs: dict[str, dict[tuple[str, str], int]] = {}
        self.values: dict[str, set[str]] = {}
        self.skipped: set[str] = set()
        self.label_counts: dict[str, int] = {}

    def add(self, frame: pd.DataFrame, labels: pd.Series) -> None:
        labels = labels.reset_index(drop=True)
        has_label = labels.notna() & (labels != "")
        for label, n in labels[has_label].value_counts(sort=False).items():
            self.label_counts[label] = self.label_counts.get(label, 0) + int(n)
        for column in map(str, frame.columns):
            if column in self.exclude or column in self.skipped:
                continue
            if column not in self.pairs:
                if kind_of(frame, column) in ("id", "timestamp"):  # judged on the first rows seen
                    self.skipped.add(column)
                    continue
                self.pairs[column], self.values[column] = {}, set()
            cells = frame[column].reset_index(drop=True).map(cell_text).str.strip()
            filled = (cells != "") & has_label
            pairs, values = self.pairs[column], self.values[column]
            for key, n in pd.DataFrame({"v": cells[filled], "l": labels[filled]}).value_counts(sort=False).items():
                pairs[key] = pairs.get(key, 0) + int(n)
                values.add(key[0])
            if len(values) > self.most:
                self.skipped.add(column)
                del self.pairs[column], self.values[column]

    def leaks(self) -> list[dict]:
        total = sum(self.label_counts.values())
        base = max(self.label_counts.values()) / total if total else 1.0
        found = []
        for column, pairs in self.pairs.items():
            n = sum(pairs.values())
            if n < LEAK_ROWS or len(self.values[column]) > n / 3:
                continue  # values shared by too few rows predict nothing
            best: dict[str, int] = {}
            for (value, _), count in pairs.items():
                best[value] = max(best.get(value, 0), count)
            accuracy = sum(best.values()) / n
            if accuracy >= LEAK_ACCURACY and accuracy >= base + 0.1:
                only = list(dict.fromkeys(label for _, label in pairs))
                why = (f"it is filled only for label '{only[0]}' ({n} rows)" if len(only) == 1 else
                       f"its value predicts the label for {accuracy:.1%} of the {n} rows that have one")
                found.append({"column": column, "rows": n, "accuracy": round(accuracy, 4), "why": why})
        return found


def drop_share_problems(read: dict[str, int], dropped: dict[str, dict[str, int]], limit: float) -> list[str]:
    """A problem for every split where dropping invalid rows would take more than `limit` of the rows read."""
    problems = []
    for split, reasons in dropped.items():
        total = read.get(split, 0)
        gone = sum(reasons.values())
        if total and gone / total > limit:
            listed = "; ".join(f"{n} {reason}" for reason, n in reasons.items())
            problems.append(f"{split}: data.drop_invalid would drop {gone:,} of {total:,} rows ({gone / total:.1%}: "
                            f"{listed}), more than data.max_drop_fraction ({limit:.0%}): fix the data or the chosen "
                            "columns, or raise data.max_drop_fraction to train on what is left")
    return problems
