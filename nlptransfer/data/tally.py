"""The data stage's tally once the rows are checked and split: each task's label map and the label of each code, and
the rows used and the class balance (a multi-label task's rows per label and labels per text) of every split."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .label_sets import label_matrix, per_text, positives
from .schema import MISSING, LabelMap

if TYPE_CHECKING:
    from .stage import Checked, Run

SPLITS = ("train", "validation", "test")


def label_ids(run: Run, checked: Checked) -> tuple[dict[str, LabelMap], list[np.ndarray]]:
    """Each task's label map, and per task the label id of each code (MISSING for -1: no label, the last entry)."""
    maps = {t.name: LabelMap(checked.names[t.name], t.kind, separator=t.separator if t.multi_label else None)
            for t in checked.tasks}
    ids = [np.vstack([label_matrix(names_of, maps[t.name].names), np.zeros((1, len(maps[t.name])), np.int8)])
           if t.multi_label else
           np.array([maps[t.name].id(n) if n in maps[t.name] else MISSING for n in names_of] + [MISSING],
                    dtype=np.int64) for t, names_of in zip(checked.tasks, checked.names_of)]
    return maps, ids


def fill_report(run: Run, checked: Checked, maps: dict[str, LabelMap]) -> None:
    """Rows used and class balance of every split (each task's, and its rows without a label, in a multi-task run)."""
    report = run.report
    if run.multi:
        report.tasks = {t.name: {"column": t.column, "class_balance": {}, "missing": {}} for t in checked.tasks}
    for index, split in enumerate(SPLITS):
        codes = [r.codes[checked.where[name] == index] for name, r in checked.read.items()]
        if split not in checked.read and not any(len(c) for c in codes):
            continue
        codes = np.concatenate(codes)
        report.rows_used[split] = len(codes)
        for i, task in enumerate(checked.tasks):
            if task.multi_label:  # rows per label, and rows by how many labels they hold
                balance = positives(codes[:, i], checked.names_of[i], maps[task.name].names).astype(int).to_dict()
                sizes = per_text(codes[:, i], checked.names_of[i])
                if run.multi:  # every row holds a set of the task's labels (an empty cell: the empty set)
                    report.tasks[task.name]["class_balance"][split] = balance
                    report.tasks[task.name]["missing"][split] = 0
                    report.tasks[task.name].setdefault("labels_per_text", {})[split] = sizes
                else:
                    report.class_balance[split], report.labels_per_text[split] = balance, sizes
                continue
            code_of = {n: c for c, n in enumerate(checked.names_of[i])}
            counts = np.bincount(codes[codes[:, i] >= 0, i], minlength=len(code_of))
            balance = {n: int(counts[code_of[n]]) if n in code_of else 0 for n in maps[task.name].names}
            if run.multi:
                report.tasks[task.name]["class_balance"][split] = balance
                report.tasks[task.name]["missing"][split] = int((codes[:, i] < 0).sum())
            else:
                report.class_balance[split] = balance
