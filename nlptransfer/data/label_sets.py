"""Multi-label reading: a label cell that holds a set of labels (`billing,cancellation`, a JSON list, or empty: no
label), or several 0/1 columns read as one set; each row's set is coded by its key (its sorted labels, as JSON), so
the checks over codes (the same text with another label set, texts also in train) work on sets as on labels. Also
the per-label checks, the label matrix a split is stratified on, and the hint for a column whose cells look like
lists."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from ..logs import get_logger
from .labels import LabelTask, ParsedLabels, sort_labels
from .problems import no_positive_problem, unknown_labels_problem
from .read import cell_text

logger = get_logger(__name__)

#: the separators a list cell may use, in the order a tie is broken
SEPARATORS = (",", ";", "|")
#: cells of an indicator column read as 1 and 0 (case aside)
ON, OFF = {"1", "1.0", "true", "yes", "y"}, {"0", "0.0", "false", "no", "n", ""}
#: rows two labels must share before their co-occurrence is reported
CO_OCCURRENCE_ROWS = 20


def key_of(labels) -> str:
    """The code key of a label set: its labels sorted, as a JSON list."""
    return json.dumps(sorted(set(labels)), ensure_ascii=False)


def members(key: str) -> list[str]:
    """The labels of a code key."""
    return json.loads(key) if key else []


def infer_separator(cells: pd.Series) -> tuple[str, str]:
    """The separator of a list column's cells (the one that splits most of them, "," when none does) and why."""
    texts = [t for t in cells.map(cell_text).str.strip() if t and not t.startswith("[")]
    counts = {s: sum(s in t for t in texts) for s in SEPARATORS}
    best = max(SEPARATORS, key=lambda s: counts[s])
    if not counts[best]:
        return ",", "no cell holds more than one label; ',' assumed"
    return best, f"{counts[best]} of {len(texts)} non-empty cells hold '{best}'"


def parse_cell(text: str, separator: str) -> tuple[str, ...] | None:
    """The labels of one cell (sorted, each once): a JSON list, or labels joined by `separator`; () for an empty cell;
    None for a cell that starts as a JSON list and is not one (of strings or numbers)."""
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                  for v in value):
            return None
        return tuple(sorted({str(v).strip() for v in value} - {""}))
    return tuple(sorted({part.strip() for part in text.split(separator)} - {""}))


def parse_list_cells(cells: pd.Series, separator: str) -> tuple[list[str | None], list]:
    """Each cell's code key (None: a cell that cannot be read) and the first unreadable cells as read."""
    keys, bad = [], []
    for text in cells.map(cell_text):
        labels = parse_cell(text, separator)
        keys.append(None if labels is None else key_of(labels))
        if labels is None and len(bad) < 5:
            bad.append(text)
    return keys, bad


def parse_indicator_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str | None], list]:
    """Each row's code key from 0/1 (or true/false) columns (None: a row with a cell that is neither) and the first
    such cells as read."""
    on = np.zeros((len(frame), len(columns)), bool)
    bad_rows = np.zeros(len(frame), bool)
    bad: list = []
    for j, column in enumerate(columns):
        cells = frame[column].map(cell_text).str.strip()
        lower = cells.str.lower()
        on[:, j] = lower.isin(ON).to_numpy()
        wrong = ~(lower.isin(ON) | lower.isin(OFF)).to_numpy()
        bad_rows |= wrong
        bad += [f"{column}={v}" for v in cells[wrong].unique()[:5 - len(bad)]] if len(bad) < 5 else []
    keys = [None if bad_rows[i] else key_of(c for c, x in zip(columns, row) if x) for i, row in enumerate(on)]
    return keys, bad


def parse_sets(task: LabelTask, frame: pd.DataFrame, codes: dict[str, int]) -> ParsedLabels:
    """A multi-label task's rows coded by their label set (`codes` grows with new sets; the empty set is one), from its
    list column or its 0/1 columns; rows that cannot be read are dropped as `unbinned`, with their first cells."""
    keys, bad = (parse_indicator_columns(frame, task.columns) if task.columns else
                 parse_list_cells(frame[task.column], task.separator))
    unreadable = np.array([k is None for k in keys], bool)
    encoded = np.array([-1 if k is None else codes.setdefault(k, len(codes)) for k in keys], dtype=np.int32)
    return ParsedLabels(encoded, unreadable, unreadable, bad, 0)


def label_matrix(keys: np.ndarray, names: list[str]) -> np.ndarray:
    """The 0/1 matrix [keys, labels] of code keys (labels not in `names` are left out)."""
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(keys), len(names)), np.int8)
    for row, key in enumerate(keys):
        for label in members(key):
            if label in index:
                matrix[row, index[label]] = 1
    return matrix


def positives(codes: np.ndarray, keys: np.ndarray, names: list[str]) -> pd.Series:
    """Rows per label (how many coded rows hold it), in `names` order."""
    counts = np.bincount(codes[codes >= 0], minlength=len(keys))
    return pd.Series(label_matrix(keys, names).T.astype(np.int64) @ counts, index=list(names))


def labels_seen(codes: np.ndarray, keys: np.ndarray) -> list[str]:
    """The labels of the coded rows, sorted."""
    return sorted({label for c in np.unique(codes[codes >= 0]) for label in members(keys[c])})


def per_text(codes: np.ndarray, keys: np.ndarray) -> dict[str, int]:
    """Rows by how many labels they hold ({"0": rows, "1": rows, ...})."""
    sizes = np.array([len(members(k)) for k in keys] or [0])
    counts = np.bincount(sizes[codes[codes >= 0]]) if (codes >= 0).any() else np.zeros(0, np.int64)
    return {str(n): int(c) for n, c in enumerate(counts) if c}


def co_occurrences(codes: np.ndarray, keys: np.ndarray, names: list[str]) -> list[str]:
    """Warnings for pairs of labels that are on for exactly the same rows (at least CO_OCCURRENCE_ROWS of them): one
    gives the other away (derived labels, or one label under two names)."""
    rows = label_matrix(keys, names)[codes[codes >= 0]].astype(bool)
    found = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            both = int((rows[:, a] & rows[:, b]).sum())
            if both >= CO_OCCURRENCE_ROWS and both == rows[:, a].sum() == rows[:, b].sum():
                found.append(f"labels '{names[a]}' and '{names[b]}' are on for exactly the same {both} training rows: "
                             "one gives the other away (merge them with data.label_map, or check how they were made)")
    return found


_LIST_LIKE = re.compile(r"^\s*\[.*\]\s*$|[,;|]")


def list_hint(column: str, counts: dict[str, int], several: bool = False) -> str | None:
    """For a single-label column whose cells look like lists of labels (JSON lists, or labels joined by , ; |) on a
    fifth of its rows or of its distinct values: the setting that reads each cell as a set (`several`: the column is
    one of a multi-task run's). `counts`: rows per distinct cell."""
    values = [v for v in counts if v]
    listed = [v for v in values if _LIST_LIKE.search(v)]
    rows = sum(counts[v] for v in listed)
    if len(values) < 2 or len(listed) < 2 or (rows < 0.2 * sum(counts[v] for v in values)
                                               and len(listed) < 0.2 * len(values)):
        return None  # lists on a fifth of the rows, or a fifth of the distinct values (each list is rarer)
    separator, _ = infer_separator(pd.Series(listed))
    shown = ", ".join(repr(v) for v in listed[:3])
    return (f"the '{column}' cells look like lists of labels ({len(listed)} of {len(values)} distinct values, e.g. "
            f"{shown}): each distinct list is read as one class; to read each cell as a set of labels, set "
            + (f"'data.task_kinds={{{column}: multi_label}}'" if several else "task=multi_label")
            + f" (data.label_separator='{separator}')")


def multi_label_task(spec, train: pd.DataFrame, labels: list[str], report) -> LabelTask:
    """The one multi-label task: of the 0/1 columns data.label_columns, or of a column of label lists."""
    if spec.label_columns:
        return LabelTask("labels", labels[0], "multi_label", tuple(labels))
    return list_task(spec, train, labels[0], report)


def list_task(spec, train: pd.DataFrame, column: str, report, several: bool = False) -> LabelTask:
    """A multi-label task of a column of label lists whose separator is data.label_separator or inferred from the
    training file (and said in `report`; `several`: one of a multi-task run's tasks, the column named in the key)."""
    separator = spec.label_separator
    if separator is None and column in train.columns:
        separator, why = infer_separator(train[column])
        report.inferred[f"label_separator ({column})" if several else "label_separator"] = {"column": separator,
                                                                                            "reason": why}
        logger.info(f"label separator{f' of {column}' if several else ''}: '{separator}' (inferred: {why})")
    return LabelTask(column, column, "multi_label", (), separator or ",")


def label_set_names(read: dict, i: int, task: LabelTask, keys: np.ndarray, given: list[str] | None, purpose: str,
                    words, named: str | None = None) -> tuple[list[str], list[str]]:
    """A multi-label task's label names (given: data.labels, else its 0/1 columns, else the labels of its training
    sets, sorted) and the problems: labels outside them per file, labels no training row has. `i`: the task's column
    of the codes; `named`: the task as messages name it (a multi-task run's)."""
    names = list(given or task.columns) or sort_labels(set(labels_seen(read["train"].codes[:, i], keys)))
    problems = []
    for name, r in read.items():
        unknown = [x for x in labels_seen(r.codes[:, i], keys) if x not in names]
        if unknown:
            problems.append(unknown_labels_problem(words, name, positives(r.codes[:, i], keys, unknown), given,
                                                   purpose, task=named))
    if purpose == "train":
        counts = positives(read["train"].codes[:, i], keys, names)
        if (counts == 0).any():
            problems.append(no_positive_problem(list(counts[counts == 0].index), named))
    return names, problems


def label_leaks(counter, names: list[str]) -> list[dict]:
    """The columns that give one label of a multi-label task away (data.checks.LeakCounter fed label-set keys), each
    judged on whether a row holds that label."""
    return [{**leak, "task": name} for name in names
            for leak in counter.leaks(lambda key, name=name: str(int(name in members(key))))]


def indicator_hint(frame: pd.DataFrame, text_columns: list[str]) -> str | None:
    """For a file with three or more 0/1 (or true/false) columns besides its texts, read as one label column: the
    setting that reads them as the labels of one multi-label task."""
    binary = []
    for column in map(str, frame.columns):
        if column in text_columns:
            continue
        cells = set(frame[column].map(cell_text).str.strip().str.lower().unique()) - {""}
        if cells and cells <= ON | OFF and cells & ON:
            binary.append(column)
    if len(binary) < 3:
        return None
    return (f"the columns {', '.join(map(repr, binary[:8]))}{' ...' if len(binary) > 8 else ''} hold only 0/1 values: "
            f"to read them as the labels of one multi-label task, set task=multi_label "
            f"'data.label_columns=[{', '.join(binary)}]'")
