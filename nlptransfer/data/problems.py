"""The wording of every problem the data stage finds, and the reasons rows are dropped for, in one place. `task` is
the task a problem is of in a multi-task run (named in the message), None in a run of one label column."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .read import row_list

FIX_ROWS = "fix them, or set data.drop_invalid=true to drop them (they are counted in the report)"
NO_TRAIN = "no training data: pass --data FILE (or data=... in Python, or data.train in the recipe)"

NO_TEXT = "an empty or missing text"  #: what a row without a text has
# why rows are dropped (the keys of DataReport.dropped)
EMPTY_TEXT = "empty or missing text"
MISSING_LABEL = "missing label"
NO_LABEL = "no label in any label column"
CONFLICT = "the same text as another row with another label (label noise)"
IN_TRAIN = "the same text as a training row (whitespace aside)"
IN_TRAIN_CONFLICT = "the same text as a training row, with another label (label noise)"
DUPLICATE = "the same text and label as an earlier row (kept the first, so no text is in two splits)"


@dataclass(frozen=True)
class Words:
    """How messages name things: a training run's files and recipe keys, or an evaluation's file and flags."""

    first_file: str  #: what the main file is called
    fix_rows: str
    text_key: str
    label_key: str

    def split(self, name: str) -> str:
        return self.first_file if name == "train" else name

    def file(self, name: str) -> str:
        split = self.split(name)
        return split if split.endswith("file") else f"{split} file"


TRAINING = Words("train", FIX_ROWS, "data.text_columns", "data.label_column")
EVALUATION = Words("evaluation file", "fix or remove them", "--text-column", "--label-column")


def _of_task(where: str, task: str | None) -> str:
    """`where` (a split) naming a multi-task run's task: "train, task 'category'"; as given for None."""
    return where if task is None else f"{where}, task '{task}'"


def _task_prefix(task: str | None) -> str:
    """What starts a problem of a multi-task run's task: "task 'category': "; nothing for None."""
    return "" if task is None else f"task '{task}': "


def empty_file_problem(path: str) -> str:
    return f"{path} is empty: it has no data rows"


def no_label_column_problem(path: str, why: str, words: Words, columns: list[str], one_column: str | None) -> str:
    one = f"; it read as one column: {one_column}" if len(columns) == 1 and one_column else ""
    return (f"cannot infer the label column of {path} ({why}): set {words.label_key} "
            f"(columns: {', '.join(columns)}){one}")


def no_text_column_problem(path: str, why: str, key: str) -> str:
    return f"cannot infer the text column of {path} ({why}): set {key}"


def in_file_problem(words: Words, name: str, path: str, problem: str) -> str:
    """A problem of one file (a missing column), naming the file."""
    return f"{words.file(name)} {path}: {problem}"


def no_task_in_file_problem(words: Words, path: str, tasks: list[str], columns: list[str]) -> str:
    return (f"{words.file('train')} {path}: none of the run's label columns ({', '.join(tasks)}) is in it (columns: "
            f"{', '.join(columns)}): it needs at least one to score the run")


def unbinned_problem(name: str, count: int, values, rows: list[int], multi_label: bool = False) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:5])
    if multi_label:
        return (f"{name}: {count} row(s) have labels that cannot be read as a set ({shown}; {row_list(rows)}): a cell "
                "holds labels joined by data.label_separator or a JSON list of them, and a data.label_columns cell is "
                "0/1 (or true/false); fix them, or set data.drop_invalid=true to drop them")
    return (f"{name}: {count} row(s) have a label no data.label_bins range holds ({shown}; {row_list(rows)}): widen the "
            "ranges, map them with data.label_map, or set data.drop_invalid=true to drop them")


def empty_problem(words: Words, name: str, count: int, what: str, rows: list[int]) -> str:
    return f"{words.split(name)}: {count} row(s) have {what} ({row_list(rows)}); {words.fix_rows}"


def no_label_wording(several_tasks: bool) -> tuple[str, str]:
    """(what a row without a label has, the reason it is dropped for): one label column, or several."""
    return ("no label in any of the label columns", NO_LABEL) if several_tasks else ("a missing label", MISSING_LABEL)


def unknown_labels_problem(words: Words, name: str, counts: pd.Series, given: list[str] | None, purpose: str,
                           task: str | None = None) -> str:
    """Labels outside the known ones, with their rows (`counts`, most first)."""
    listed = ", ".join(f"'{k}' ({v} rows)" for k, v in counts.items())
    if purpose == "evaluate":
        where = f"the run was not trained on (it knows {', '.join(map(repr, given or []))})"
    else:
        where = f"not in data.labels {list(given)}" if given else "never seen in training"
    return f"{_of_task(words.split(name), task)}: labels {where}: {listed}"


def single_class_problem(label: str, task: str | None = None) -> str:
    return f"{_of_task('train', task)} has a single class '{label}': a classifier needs at least two labels"


def no_positive_problem(labels: list[str], task: str | None = None) -> str:
    """Multi-label: labels that no training row holds."""
    return (f"{_of_task('train', task)}: no row has the label(s) {', '.join(map(repr, labels))}: a label needs "
            "training rows to be learnt; add rows, or leave it out of "
            + ("data.labels / data.label_columns" if task is None else "the task's column"))


def no_labels_problem(task: str) -> str:
    return (f"train, task '{task}' has no labels: column '{task}' is empty in every row; fill it, or leave it out of "
            "data.label_columns")


def leak_problems(leaks: list[dict], text_columns: list[str], allowed: bool, task: str | None = None) -> list[str]:
    """A problem for each column joined into the texts that gives the label away (unless data.allow_leaks)."""
    prefix = _task_prefix(task)
    return [] if allowed else [
        f"{prefix}data.text_columns joins {leak['column']!r}, which gives the label away ({leak['why']}): the model "
        "would learn that column, not the texts; remove it from data.text_columns, or set data.allow_leaks=true if "
        "you mean it" for leak in leaks if leak["column"] in text_columns]


def clash_problem(words: Words, name: str, texts: int, count: int, rows: list[int], task: str | None = None) -> str:
    return (f"{_of_task(words.split(name), task)}: {texts} text(s) appear with different labels ({count} rows: "
            f"{row_list(rows)}): label noise; {words.fix_rows}")


def in_train_problem(name: str, reason: str, count: int, rows: list[int]) -> str:
    """Validation/test texts also in train: IN_TRAIN (a leak that inflates the score) or IN_TRAIN_CONFLICT (noise)."""
    other = reason == IN_TRAIN_CONFLICT
    what = "label noise, not a leak" if other else f"which inflates the {name} score"
    return (f"{name}: {count} text(s) also appear in train{' with another label' if other else ''} ({row_list(rows)}), "
            f"{what}; {FIX_ROWS}")


def small_classes_problem(counts: pd.Series, carve: list[tuple[str, float]], task: str | None = None,
                          label: bool = False) -> list[str]:
    """A problem naming the classes (multi-label: the labels, by their rows) with fewer rows than the carved splits
    and train need, one each."""
    need = len(carve) + 1
    small = counts[counts < need]
    if not len(small):
        return []
    listed = ", ".join(f"'{k}' has {v}" for k, v in list(small.items())[:12])
    more = f", and {len(small) - 12:,} more {'labels' if label else 'classes'} as small" if len(small) > 12 else ""
    what, unit = " and ".join(n for n, _ in carve), "label" if label else "class"
    return [f"{_task_prefix(task)}{unit} too small to split: {listed} row(s) in train{more}; making the {what} split(s) needs "
            f"at least {need} rows per {unit}: add rows, supply data.validation/data.test files, "
            f"or set data.val_fraction / data.test_fraction to 0"]


def split_sizes_problem(counts: pd.Series, carve: list[tuple[str, float]], task: str | None = None) -> list[str]:
    """Problems that make a stratified split (on `task`) impossible: tiny classes, or too few rows for every class."""
    problems = small_classes_problem(counts, carve, task)
    n = int(counts.sum())
    for name, fraction in carve:
        size = math.ceil(fraction * n)
        if size < len(counts):
            problems.append(f"{_task_prefix(task)}a {name} split of {fraction:g} x {n} rows gives {size} rows for "
                            f"{len(counts)} classes: raise data.{'val' if name == 'validation' else 'test'}_fraction "
                            "or add rows")
    return problems


def carve_problem(rows: int, task: str | None, error: ValueError) -> str:
    """The stratified carving failed (large fractions of tiny classes): what is left cannot be stratified."""
    on = "" if task is None else f" (on task '{task}')"
    return (f"cannot make stratified splits of {rows} train rows{on}: {error}; lower data.val_fraction / "
            "data.test_fraction, or add rows")


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


def multitask_settings_problems(columns: list[str], joined: list[str], single: list[str]) -> list[str]:
    """What a multi-task run's data settings cannot be: too few or repeated label columns, label columns joined into
    the texts, a single label column's settings."""
    problems = []
    if not columns:
        problems.append("data.label_columns names no label column")
    if len(set(columns)) != len(columns):
        problems.append(f"data.label_columns names a column twice: {columns}")
    if joined:
        problems.append(f"data.text_columns joins the label column(s) {', '.join(map(repr, joined))}: the model would "
                        "read the labels it is to predict; remove them from data.text_columns")
    if single:
        problems.append(f"{', '.join(single)} {'applies' if len(single) == 1 else 'apply'} to a single label column; "
                        "with data.label_columns (multi-task) leave them out (each task's labels are its column's "
                        "values)")
    return problems


def too_few_names_problem(path: str) -> str:
    return (f"{path} has no label column, so the labels must be named: give each a description "
            f"(labels.descriptions={{label: description, ...}}; at least two) or data.labels=[...]")


def texts_only_files_problem(path: str) -> str:
    return (f"{path} has no label column: data.validation and data.test score a classifier against labels, so they "
            f"need a labelled training file too (or leave them out)")


def no_texts_problem(path: str) -> str:
    return f"{path} has no texts"


def write_failed_problem(train: str, where, error: OSError) -> str:
    return (f"cannot write the splits of {train} to {where}: {error.strerror or error}; free space there, or point "
            "NLPTRANSFER_CACHE at a disk with room")
