"""Checks across rows and columns, on arrays (a text hash, label codes [rows, tasks] with -1 for no label, row
numbers: a few numbers a row, whatever the file's size): texts (whitespace aside) with conflicting labels, texts
also in train, repeated texts; and columns that give the label away."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .columns import kind_of
from .read import cell_text

#: fewest rows with a value a column needs before it can be called a leak
LEAK_ROWS = 20
#: share of those rows whose label the column's value must predict
LEAK_ACCURACY = 0.98


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

    def leaks(self, fold=None) -> list[dict]:
        """The columns that give the label away; `fold` maps each label to what is judged instead (multi-label: a
        label set to whether it holds one label, so each label is judged on its own)."""
        label_counts, all_pairs = self.label_counts, self.pairs
        if fold is not None:
            label_counts = _folded(label_counts, lambda key: fold(key))
            all_pairs = {c: _folded(p, lambda key: (key[0], fold(key[1]))) for c, p in all_pairs.items()}
        total = sum(label_counts.values())
        base = max(label_counts.values()) / total if total else 1.0
        found = []
        for column, pairs in all_pairs.items():
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


def _folded(counts: dict, fold) -> dict:
    out: dict = {}
    for key, n in counts.items():
        out[fold(key)] = out.get(fold(key), 0) + n
    return out


def groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts `hashes` (stable: equal ones keep their order) and where each run of equal ones starts in
    it."""
    order = np.argsort(hashes, kind="stable").astype(np.int32 if len(hashes) < 2**31 else np.int64)
    ordered = hashes[order]
    return order, np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else order


def clashes(hashes: np.ndarray, codes: np.ndarray, empty: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows (a mask) whose text appears with another label of one task (`codes`, a column), among the rows with a
    text and a label of it; and how many texts do."""
    valid = np.flatnonzero((codes >= 0) & ~empty)
    order, starts = groups(hashes[valid])
    ordered = codes[valid][order]
    if not len(ordered):
        return np.zeros(len(codes), bool), 0
    mixed = np.minimum.reduceat(ordered, starts) != np.maximum.reduceat(ordered, starts)
    clash = np.zeros(len(codes), bool)
    clash[valid[order[np.repeat(mixed, np.diff(np.r_[starts, len(ordered)]))]]] = True
    return clash, int(mixed.sum())


def also_in_train(train_hashes: np.ndarray, train_codes: np.ndarray, hashes: np.ndarray, codes: np.ndarray,
                  empty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose text is also in train, those of them with another label): a row's label of a task differs from
    that of the last training row with its text labelled for that task (one task: the last training row's)."""
    shared = np.isin(hashes, train_hashes) & ~empty
    other = np.zeros(len(hashes), bool)
    several = train_codes.shape[1] > 1
    for task in range(train_codes.shape[1]):
        labelled = train_codes[:, task] >= 0 if several else np.ones(len(train_codes), bool)
        seen_hashes, seen_codes = train_hashes[labelled], train_codes[labelled, task]
        order, starts = groups(seen_hashes)
        if not len(order):
            continue
        seen = seen_hashes[order][starts]  # each text once (sorted), with the label of its last row
        last = seen_codes[order[np.r_[starts[1:], len(order)] - 1]]
        at = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
        theirs = np.where(seen[at] == hashes, last[at], -2)
        ours = codes[:, task]
        other |= shared & (theirs != -2) & (theirs != ours) & ((ours >= 0) | (not several))
    return shared, other


def later_repeats(hashes: np.ndarray) -> np.ndarray:
    """Rows (a mask) whose text an earlier row has."""
    order, starts = groups(hashes)
    later = np.ones(len(hashes), bool)
    later[order[starts]] = False
    return later


def label_counts(codes: np.ndarray, names: np.ndarray) -> pd.Series:
    """Rows per label name of the labelled rows (`codes` of one task), most first (as value_counts orders them)."""
    counts = pd.Series(codes[codes >= 0]).value_counts()
    counts.index = names[counts.index.to_numpy()]
    return counts
