"""Labels as the user wants them: renamed, merged or dropped (data.label_map), numeric values binned into classes
(data.label_bins), and the label order. Also the hint for labels that look numeric or ordinal."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .read import cell_text

#: reasons for rows that data.label_map and data.label_bins drop
DROPPED_BY_MAP = "label dropped by data.label_map"
NOT_BINNED = "label outside every data.label_bins range (or not a number)"


def sort_labels(names: set[str]) -> list[str]:
    """Label names in an order that never depends on the process: numerically when all are finite numbers
    (ties such as '1', '01' and '1.0' by their text), else alphabetically."""
    try:
        values = {n: float(n) for n in names}
    except ValueError:
        return sorted(names)
    if not all(math.isfinite(v) for v in values.values()):
        return sorted(names)
    return sorted(names, key=lambda n: (values[n], n))


def _number(text: str) -> float | None:
    try:
        value = float(str(text).replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def bin_of(value: str, bins: dict[str, list[float]]) -> str | None:
    """The class whose [low, high] range (inclusive) holds the numeric label `value`, or None."""
    number = _number(value)
    if number is None:
        return None
    return next((name for name, (low, high) in bins.items() if low <= number <= high), None)


def map_labels(labels: pd.Series, label_map: dict | None, bins: dict | None) -> tuple[pd.Series, dict[str, int]]:
    """Labels after data.label_map (a name to a new name, or to null: dropped) and then data.label_bins; empty
    labels stay empty (reported as missing). Returns the labels ("" for no label, None for a dropped row) and the
    count of dropped rows by reason."""
    out, dropped = labels.copy(), {}
    if label_map:
        names = {str(k): (None if v is None else str(v)) for k, v in label_map.items()}
        hit = out.isin(names) & (out != "")
        out[hit] = out[hit].map(names)
        dropped[DROPPED_BY_MAP] = int(out.isna().sum())
    if bins:
        present = out.notna() & (out != "")
        binned = out[present].map(lambda v: bin_of(v, bins))
        out[present] = binned
        dropped[NOT_BINNED] = int(binned.isna().sum())
    return out, {k: v for k, v in dropped.items() if v}


def bins_problems(bins: dict) -> list[str]:
    """What is wrong with a data.label_bins mapping ({class: [low, high]})."""
    problems = []
    ranges = []
    for name, span in bins.items():
        if not (isinstance(span, (list, tuple)) and len(span) == 2 and all(_number(x) is not None for x in span)):
            problems.append(f"data.label_bins.{name} must be [low, high], two numbers, got {span!r}")
            continue
        low, high = (_number(x) for x in span)
        if low > high:
            problems.append(f"data.label_bins.{name}: low {low:g} is above high {high:g}")
        ranges.append((low, high, name))
    ranges.sort()
    for (l1, h1, a), (l2, h2, b) in zip(ranges, ranges[1:]):
        if l2 <= h1:
            problems.append(f"data.label_bins: the ranges of '{a}' and '{b}' overlap")
    return problems


def numeric_hint(counts: dict[str, int]) -> str | None:
    """For labels that look numeric or ordinal (ratings, stars): what they are, and the data.label_bins setting that
    would make them negative/neutral/positive classes. Numbers may as well be codes of unordered classes (a Thai
    sentiment set's 0-3 are negative, neutral, positive and question): the hint says both readings, and binning is
    only offered for a scale. `counts`: rows per label value, in order of appearance."""
    counts = {str(v): n for v, n in counts.items() if v is not None and v == v and v != ""}
    values = pd.Series(list(counts), dtype=object)
    numbers = values.map(_number)
    rows = sum(counts.values())
    odd_rows = sum(n for v, n in counts.items() if _number(v) is None)
    if len(values) == 0 or odd_rows / rows > 0.05 or len(values) < 4:
        return None
    low, high = float(numbers.min()), float(numbers.max())
    third = (high - low) / 3
    cut1, cut2 = low + third, high - third
    step = 0.5 if any(v % 1 for v in numbers.dropna()) else 1.0
    below = math.floor(cut1 / step) * step
    above = math.ceil(cut2 / step) * step
    setting = (f"data.label_bins={{negative: [{low:g}, {below:g}], neutral: [{below + step:g}, {above - step:g}], "
               f"positive: [{above:g}, {high:g}]}}" if above - step >= below + step else
               f"data.label_bins={{negative: [{low:g}, {below:g}], positive: [{below + step:g}, {high:g}]}}")
    odd = values[numbers.isna()].tolist()
    extra = f" ({len(odd)} non-numeric: {', '.join(map(repr, odd[:3]))}: map them with data.label_map)" if odd else ""
    return (f"the labels look numeric or ordinal ({len(values)} values from {low:g} to {high:g}{extra}): "
            f"each value is its own class, as codes of unordered classes should be (0 = sport, 1 = politics, ...); if "
            f"they are a rating scale, to make ranges of them classes, set {setting}")


@dataclass(frozen=True)
class LabelTask:
    """A task as the data stage reads it: its name and label column (a run of one label column is one task named
    after it; a multi-task run, one per data.label_columns entry), and its kind. A multi_label task reads a column
    of label lists (joined by `separator`) or, with `columns`, several 0/1 columns (named after the first)."""

    name: str
    column: str
    kind: str = "single_label"
    columns: tuple[str, ...] = ()
    separator: str = ","

    @property
    def multi_label(self) -> bool:
        return self.kind == "multi_label"

    @property
    def read_columns(self) -> list[str]:
        """The file's columns the task's labels are read from."""
        return list(self.columns) or [self.column]


@dataclass
class ParsedLabels:
    """A chunk's labels of one task: a code per row (-1: no label; codes number the names in order of first sight),
    which rows data.label_map / data.label_bins dropped, and those dropped for a value no range holds (and their
    values as read)."""

    codes: np.ndarray
    dropped: np.ndarray
    unbinned: np.ndarray
    unbinned_values: list
    map_dropped: int


def parse_task_labels(task: LabelTask, frame: pd.DataFrame, spec, codes: dict[str, int]) -> ParsedLabels:
    """The one step that differs between kinds of tasks: a label cell parsed (stripped, then data.label_map and
    data.label_bins) and encoded as a code (`codes` grows with new names); a multi_label task's: label_sets.parse_sets."""
    labels = frame[task.column].map(cell_text).str.strip()
    nothing = np.zeros(len(labels), bool)
    dropped, unbinned, values, map_dropped = nothing, nothing, [], 0
    if spec.label_map or spec.label_bins:
        mapped, counts = map_labels(labels, spec.label_map, spec.label_bins)
        nulls = {str(k) for k, v in (spec.label_map or {}).items() if v is None}
        dropped = mapped.isna().to_numpy()
        unbinned = dropped & ~labels.isin(nulls).to_numpy()
        values = labels[unbinned].tolist()
        map_dropped, labels = counts.get(DROPPED_BY_MAP, 0), mapped.where(~dropped, "")
    encoded = np.array([-1 if not x else codes.setdefault(x, len(codes)) for x in labels], dtype=np.int32)
    return ParsedLabels(encoded, dropped, unbinned, values, map_dropped)


def stratification_key(codes: np.ndarray, names: np.ndarray, need: int) -> np.ndarray:
    """What a task's carved splits are stratified on, per row (codes of one task): its label's place in sorted order;
    rows without a label are a stratum of their own, sorted first, or, fewer than `need` (the rows a stratum needs
    to be split), part of the most common label's; a task kind will supply it."""
    rank = np.argsort(np.argsort(names.astype(str))).astype(np.int32) + 1
    unlabelled = codes < 0
    strata = np.where(unlabelled, 0, rank[np.maximum(codes, 0)])
    if unlabelled.any() and unlabelled.sum() < need and (~unlabelled).any():
        strata[unlabelled] = rank[pd.Series(codes[~unlabelled]).value_counts().index[0]]
    return strata
