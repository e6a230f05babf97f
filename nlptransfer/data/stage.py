"""The data stage: read (the whole file, or chunks: data.streamed), choose the columns, check the rows on arrays
(data.checks), carve the splits (data.carve) and make Splits, collecting every problem into one DataError. A run of
one label column is one task named after it; a multi-task run (data.label_columns) one task per column, each row
with a label for some of them; the splits are carved stratified on the first task."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .checks import LeakCounter, also_in_train, clashes, label_counts, later_repeats
from .columns import infer_label_column, infer_text_columns, missing_column, run_on_columns
from .label_sets import (co_occurrences, indicator_hint, label_leaks, label_matrix, label_set_names, labels_seen, list_hint,
                         list_task, multi_label_task, positives)
from .labels import (DROPPED_BY_MAP, NOT_BINNED, LabelTask, bins_problems, numeric_hint, sort_labels,
                     stratification_key)
from .problems import (CONFLICT, DUPLICATE, EMPTY_TEXT, EVALUATION, IN_TRAIN, IN_TRAIN_CONFLICT, NO_TEXT, NO_TRAIN,
                       TRAINING, Words, carve_problem, clash_problem, drop_share_problems, empty_problem,
                       in_file_problem, in_train_problem, leak_problems, multitask_settings_problems,
                       no_label_column_problem, no_label_wording, no_labels_problem, no_task_in_file_problem,
                       no_text_column_problem, single_class_problem, small_classes_problem, split_sizes_problem,
                       unbinned_problem, unknown_labels_problem)
from .read import Table
from .readers import SLICE, Read, open_files, read_rows
from .tally import fill_report, label_ids
from .schema import DataReport, DataSpec, LabelledTexts, Splits

logger = get_logger(__name__)
SPLITS = ("train", "validation", "test")


@dataclass
class Run:
    """One pass of the stage: its settings, the tasks, and the problems and report so far."""

    spec: DataSpec
    seed: int
    purpose: str
    multi: bool  #: a multi-task run (data.label_columns): messages name tasks, labels are a list per row
    known: dict[str, list[str]] | None
    kind: str = "single_label"  #: multi_label: one task of label sets (labels are a 0/1 list per row)
    report: DataReport = dataclasses.field(default_factory=DataReport)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def words(self) -> Words:
        return EVALUATION if self.purpose == "evaluate" else TRAINING

    def named(self, task: LabelTask) -> str | None:
        """The task as messages name it: None in a run of one label column."""
        return task.name if self.multi else None

    def stop(self):
        self.report.problems = list(self.problems)
        raise DataError(self.problems, self.report)


def start(spec: DataSpec, seed: int, purpose: str, multi: bool, known: dict[str, list[str]] | None = None,
          rows: int | None = None, kind: str = "single_label") -> tuple[Run, dict[str, Table], dict]:
    """A Run and the files opened (whole, or a chunk of `rows` rows at a time), their report filled in."""
    if not spec.train:
        raise DataError(NO_TRAIN)
    run = Run(spec, seed, purpose, multi, known, kind)
    firsts, chunks = open_files(spec, rows, run.problems)
    for name, table in firsts.items():
        run.report.files[name] = table.info()
    return run, firsts, chunks


def choose_columns(run: Run, firsts: dict[str, Table], sample: pd.DataFrame | None = None
                   ) -> tuple[list[str], list[LabelTask]]:
    """The text columns and the tasks, named or inferred from the training file (from `sample`, rows spread over a
    file read in chunks, when given); a column missing from a file is a problem."""
    spec, words, train = run.spec, run.words, firsts["train"]
    columns = [str(c) for c in train.frame.columns]
    rows = train.frame if sample is None else sample
    if run.multi or (run.kind == "multi_label" and spec.label_columns):
        labels = list(spec.label_columns) if not run.multi or run.purpose != "evaluate" else _tasks_in_file(run, train)
        label_key = "data.label_columns"
    else:
        labels, label_key = [spec.label_column] if spec.label_column else [], words.label_key
        if not labels:
            column, why = infer_label_column(rows, set(spec.text_columns or []))
            if column is None:
                run.problems.append(no_label_column_problem(train.path, why, words, columns,
                                                            train.reasons.get("delimiter")))
            else:
                labels = [column]
                run.report.inferred["label_column"] = {"column": column, "reason": why}
                logger.info(f"label column: '{column}' (inferred: {why})")
    text_columns = list(spec.text_columns or [])
    if not text_columns and (labels or not run.multi):
        text_columns, why = infer_text_columns(rows, set(spec.label_columns or labels))
        if not text_columns:
            run.problems.append(no_text_column_problem(train.path, why, words.text_key))
        else:
            run.report.inferred["text_columns"] = {"columns": text_columns, "reason": why}
            logger.info(f"text column: '{text_columns[0]}' (inferred: {why})")
    if text_columns and (hint := run_on_columns(train.frame, text_columns, set(spec.label_columns or labels))):
        run.report.hints.append(hint)
    if run.kind != "multi_label" and not run.multi and (hint := indicator_hint(rows, text_columns)):
        run.report.hints.append(hint)
    for name, table in firsts.items():
        present = [str(c) for c in table.frame.columns]
        wanted = [(c, words.text_key) for c in text_columns] + [(c, label_key) for c in labels]
        wanted += [(c, "data.slice_columns") for c in spec.slice_columns or []]
        run.problems += [in_file_problem(words, name, table.path, missing_column(c, present, key))
                         for c, key in wanted if c not in present]
    if run.kind == "multi_label" and labels:
        return text_columns, [multi_label_task(run.spec, train.frame, labels, run.report)]
    kinds = (spec.task_kinds or {}) if run.multi else {}
    return text_columns, [list_task(spec, train.frame, c, run.report, several=True)
                          if kinds.get(c) == "multi_label" else LabelTask(c, c) for c in labels]


def _tasks_in_file(run: Run, table: Table) -> list[str]:
    """The tasks whose label column the file to evaluate has (the others are not scored, and said so); a problem
    when it has none."""
    tasks, columns = list(run.spec.label_columns), [str(c) for c in table.frame.columns]
    present, absent = [t for t in tasks if t in columns], [t for t in tasks if t not in columns]
    if not present:
        run.problems.append(no_task_in_file_problem(run.words, table.path, tasks, columns))
    elif absent:
        which = "that task is" if len(absent) == 1 else "those tasks are"
        why = f"{', '.join(map(repr, absent))} not in {table.path}: {which} not scored"
        run.report.inferred["tasks"] = {"columns": present, "reason": why}
        logger.info(f"tasks scored: {', '.join(present)} ({why})")
    return present


@dataclass
class Checked:
    """The files as read and checked: where each row goes (an index into SPLITS, -1: dropped), the tasks, each
    task's label names in id order and the names of its codes."""

    read: dict[str, Read]
    where: dict[str, np.ndarray]
    tasks: list[LabelTask]
    names: dict[str, list[str]]
    names_of: list[np.ndarray]


def read_and_check(run: Run, firsts: dict, chunks: dict, sample: pd.DataFrame | None, sinks) -> Checked:
    """Columns chosen, every file read into its sink (sinks(name) gives it), the rows checked; raises the DataError
    of the problems found."""
    if "train" not in firsts:
        run.stop()
    text_columns, tasks = choose_columns(run, firsts, sample)
    if run.spec.label_bins:
        run.problems += bins_problems(run.spec.label_bins)
    if run.problems or not text_columns or not tasks:
        run.stop()  # the checks need the columns
    codes: list[dict[str, int]] = [{} for _ in tasks]
    exclude = {c for t in tasks for c in t.read_columns}
    leaks = [LeakCounter(exclude) for _ in tasks] if run.purpose == "train" else None
    read = {name: read_rows(chunks[name], run.spec, text_columns, tasks, codes, leaks if name == "train" else None,
                            sinks(name)) for name in SPLITS if name in chunks}
    for name, r in read.items():
        run.report.files[name]["rows_read"] = r.rows_read
        if r.cut.count:
            run.report.files[name]["texts_cut"] = {"count": r.cut.count, "rows": r.cut.rows[:9]}
    names_of = [np.array(list(c) or [""], dtype=object) for c in codes]
    checked = _check(run, read, tasks, names_of, leaks, text_columns)
    if run.problems:
        run.stop()
    return Checked(read, checked["where"], tasks, checked["names"], names_of)


def _check(run: Run, read: dict[str, Read], tasks: list[LabelTask], names_of: list[np.ndarray],
           leaks: list[LeakCounter] | None, text_columns: list[str]) -> dict:
    """The checks in their order, on the rows' arrays; returns where each row goes and each task's label names."""
    spec, words, drop, report, problems = run.spec, run.words, run.spec.drop_invalid, run.report, run.problems
    for name, r in read.items():
        report.drop(name, DROPPED_BY_MAP, r.map_dropped)
        if r.unbinned.count and not drop:
            problems.append(unbinned_problem(name, r.unbinned.count, r.unbinned.values, r.unbinned.rows,
                                             multi_label=run.kind == "multi_label"))
        elif r.unbinned.count:
            report.drop(name, NOT_BINNED, r.unbinned.count)
    no_label, no_label_reason = no_label_wording(run.multi)
    for name, r in read.items():
        for found, what, reason in ((r.empty_text, NO_TEXT, EMPTY_TEXT),
                                    (r.empty_label, no_label, no_label_reason)):
            if found.count and drop:
                report.drop(name, reason, found.count)
            elif found.count:
                problems.append(empty_problem(words, name, found.count, what, found.rows))
    names = {t.name: _task_labels(run, read, i, t, names_of[i]) for i, t in enumerate(tasks)}
    if leaks is not None:
        for task, counter in zip(tasks, leaks):
            found = (label_leaks(counter, names[task.name]) if task.multi_label else
                     [{**leak, "task": task.name} if run.multi else leak for leak in counter.leaks()])
            report.leaks += found
            problems += leak_problems(found, text_columns, spec.allow_leaks, task=run.named(task))
        train = read["train"]
        for i, task in enumerate(tasks):
            if task.multi_label:
                report.hints += [f"{task.name}: {hint}" if run.multi else hint
                                 for hint in co_occurrences(train.codes[:, i], names_of[i], names[task.name])]
        for i, task in enumerate(tasks):
            if task.multi_label or not run.multi and (spec.label_bins or spec.labels):
                continue
            codes = train.codes[:, i]
            counts = {names_of[i][c]: int((codes == c).sum()) for c in pd.unique(codes[codes >= 0])}
            hint = list_hint(task.column, counts, several=run.multi) or (None if run.multi else numeric_hint(counts))
            if hint:
                report.hints.append(hint)
    keep = _check_repeats(run, read, tasks)
    carve = [(n, f) for n, f in (("test", spec.test_fraction), ("validation", spec.val_fraction))
             if not getattr(spec, n) and f > 0]  # a given file is never carved, even when it could not be read
    if carve:
        _drop_repeats_before_carving(run, read["train"], keep, tasks, names_of, carve)
    if drop:
        problems += drop_share_problems({n: r.rows_read for n, r in read.items()}, report.dropped,
                                        spec.max_drop_fraction)
    if problems:
        return {}
    where = {name: np.where(keep[name], SPLITS.index(name), -1).astype(np.int8) for name in read}
    if carve:
        _carve(run, read["train"], where["train"], keep["train"], tasks[0], names_of[0], carve)
    return {"where": where, "names": names}


def _task_labels(run: Run, read: dict[str, Read], i: int, task: LabelTask, names_of: np.ndarray) -> list[str]:
    """The task's label names in id order (given, else its training labels sorted); labels outside them, and a
    training file with fewer than two of its classes, are problems."""
    given = (run.known or {}).get(task.name) if run.multi else run.spec.labels
    if task.multi_label:
        names, found = label_set_names(read, i, task, names_of, given, run.purpose, run.words, run.named(task))
        run.problems += found
        return names
    train_codes = read["train"].codes[:, i]
    seen = set(np.unique(train_codes[train_codes >= 0]).tolist())
    known = set(given) if given else {names_of[c] for c in seen}
    for name, r in read.items():
        unknown = label_counts(r.codes[:, i], names_of)
        unknown = unknown[~unknown.index.isin(list(known))]
        if len(unknown):
            run.problems.append(unknown_labels_problem(run.words, name, unknown, given, run.purpose,
                                                       task=run.named(task)))
    if run.purpose == "train" and len(seen) == 1:
        run.problems.append(single_class_problem(names_of[next(iter(seen))], task=run.named(task)))
    elif run.purpose == "train" and not seen and run.multi:
        run.problems.append(no_labels_problem(task.name))
    return list(given) if given else sort_labels({names_of[c] for c in seen})


def _check_repeats(run: Run, read: dict[str, Read], tasks: list[LabelTask]) -> dict[str, np.ndarray]:
    """Texts with conflicting labels of a task within a file, and validation/test texts also in train: each a
    problem, or the rows dropped (once, whatever the number of tasks they clash in) and counted."""
    drop, report = run.spec.drop_invalid, run.report
    keep = {name: np.ones(len(r.codes), bool) for name, r in read.items()}
    for name, r in read.items():
        clash_any = np.zeros(len(r.codes), bool)
        for i, task in enumerate(tasks):
            clash, texts = clashes(r.hashes, r.codes[:, i], r.empty)
            if clash.any() and not drop:
                run.problems.append(clash_problem(run.words, name, texts, int(clash.sum()),
                                                  r.numbers[clash][:9].tolist(), task=run.named(task)))
            clash_any |= clash
        if clash_any.any() and drop:
            report.drop(name, CONFLICT, int(clash_any.sum()))
            keep[name] &= ~clash_any
    train = read["train"]
    kept = keep["train"]
    for name in ("validation", "test"):
        r = read.get(name)
        if r is None:
            continue
        shared, other = also_in_train(train.hashes[kept], train.codes[kept], r.hashes, r.codes, r.empty)
        for mask, reason in ((shared & ~other, IN_TRAIN), (other, IN_TRAIN_CONFLICT)):
            if mask.any() and drop:
                report.drop(name, reason, int(mask.sum()))
            elif mask.any():
                run.problems.append(in_train_problem(name, reason, int(mask.sum()), r.numbers[mask][:9].tolist()))
        if drop:
            keep[name] &= ~shared
    return keep


def _drop_repeats_before_carving(run: Run, train: Read, keep: dict, tasks: list[LabelTask], names_of: list,
                                 carve: list[tuple[str, float]]) -> None:
    """Keep the first of training rows sharing a text, whitespace aside (so no text lands in two splits); check every
    task's classes can be split: the first task's fully (the split is stratified on it), the others' for classes
    too small to be in every split."""
    pool = np.flatnonzero(keep["train"] & ~train.empty & (train.codes >= 0).any(axis=1))
    later = later_repeats(train.hashes[pool])
    run.report.drop("train", DUPLICATE, int(later.sum()))
    keep["train"] = np.zeros(len(train.codes), bool)
    keep["train"][pool[~later]] = True
    for i, task in enumerate(tasks):
        if task.multi_label:
            counts = positives(train.codes[keep["train"], i], names_of[i], labels_seen(train.codes[:, i], names_of[i]))
            run.problems.extend(small_classes_problem(counts, carve, task=run.named(task), label=True))
            continue
        counts = label_counts(train.codes[keep["train"], i], names_of[i])
        if len(counts) > 1:  # fewer classes: a problem of its own (or nothing to stratify, evaluating)
            check = split_sizes_problem if i == 0 else small_classes_problem
            run.problems.extend(check(counts, carve, task=run.named(task)))


def _carve(run: Run, train: Read, where: np.ndarray, kept: np.ndarray, task: LabelTask, names_of: np.ndarray,
           carve: list[tuple[str, float]]) -> None:
    """Seeded validation/test splits carved from train, stratified on the first task's stratification key."""
    from .carve import iterative, stratified

    positions = np.flatnonzero(kept)
    try:
        if task.multi_label:  # iterative stratification over the label matrix (Sechidis et al. 2011)
            matrix = label_matrix(names_of, labels_seen(train.codes[:, 0], names_of))[train.codes[positions, 0]]
            parts = iterative(matrix, carve, run.seed)
        else:
            parts = stratified(stratification_key(train.codes[positions, 0], names_of, len(carve) + 1), carve,
                               run.seed)
    except ValueError as e:  # large fractions of tiny classes: what is left cannot be stratified
        run.problems.append(carve_problem(len(positions), run.named(task), e))
        run.stop()
    for split, fraction in carve:
        where[positions[parts[split]]] = SPLITS.index(split)
        run.report.files[split] = {"made_from": "train", "fraction": fraction, "seed": run.seed}


def load_splits(spec: DataSpec, seed: int = 42, purpose: str = "train", unlabelled: list[str] | None = None,
                kind: str = "single_label") -> Splits:
    """Read, check and split the data files (carved splits seeded by `seed`); raises one DataError listing every
    problem found (with the report so far). purpose "evaluate": the file is scored as a whole, may hold a single
    class, and messages name an evaluation's flags. `unlabelled` (a strategy that needs no labels: the label names
    it knows, maybe none): a training file with no label column named or inferred, or an inferred one that shares
    no value with those names, is read as texts: the train split alone, without labels, labelled by these names."""
    from .unlabelled import texts_only, without_labels

    run, firsts, chunks = start(spec, seed, purpose, multi=False, kind=kind)
    if unlabelled is not None and "train" in firsts and without_labels(spec, firsts["train"], unlabelled):
        return texts_only(spec, firsts["train"], unlabelled, run.report)
    return _in_memory(run, firsts, chunks)


def load_multitask_splits(spec: DataSpec, seed: int = 42, purpose: str = "train",
                          known: dict[str, list[str]] | None = None) -> Splits:
    """Read, check and split the data files of a multi-task run (one task per column of data.label_columns); raises
    one DataError listing every problem found (with the report so far). Each split's labels hold one id per task
    and row, MISSING where the row has no label for that task. purpose "evaluate": a task whose column is not in the
    file is left out, and `known` gives the label names each task was trained on (task -> names in id order)."""
    refuse_multitask_settings(spec)
    run, firsts, chunks = start(spec, seed, purpose, multi=True, known=known)
    return _in_memory(run, firsts, chunks)


def refuse_multitask_settings(spec: DataSpec) -> None:
    """One DataError for settings a multi-task run cannot take (the recipe check refuses them too: this is a safety
    net for Python callers)."""
    columns = list(spec.label_columns or [])
    joined = [c for c in spec.text_columns or [] if c in columns]
    single = [f"data.{key}" for key in ("label_column", "label_map", "label_bins", "labels") if getattr(spec, key)]
    problems = multitask_settings_problems(columns, joined, single)
    kinds = spec.task_kinds or {}
    problems += [f"data.task_kinds: {k!r} is not in data.label_columns {columns}" for k in kinds if k not in columns]
    problems += [f"data.task_kinds: {k}: {v!r} is no task kind a data file is read as (single_label, multi_label)"
                 for k, v in kinds.items() if v not in ("single_label", "multi_label")]
    if problems:
        raise DataError(problems)


def _in_memory(run: Run, firsts: dict, chunks: dict) -> Splits:
    """The stage over files read whole, its splits held in memory as lists."""
    frames: dict[str, list[pd.DataFrame]] = {}
    checked = read_and_check(run, firsts, chunks, None, lambda name: frames.setdefault(name, []).append)
    maps, ids = label_ids(run, checked)
    fill_report(run, checked, maps)
    parts = {}
    for name, r in checked.read.items():
        frame = pd.concat(frames[name], ignore_index=True)
        for index, split in enumerate(SPLITS):
            rows = np.flatnonzero(checked.where[name] == index)
            if not len(rows) and split != name:
                continue
            part = frame.iloc[rows]
            # per task: a label id per row, or a multi-label task's 0/1 list per row
            columns = [i[r.codes[rows, k]].astype(np.int64).tolist() for k, i in enumerate(ids)]
            labels = [list(row) for row in zip(*columns)] if run.multi else columns[0]
            parts[split] = LabelledTexts(part["text"].tolist(), labels,
                                         part["row"].tolist(), {c[len(SLICE):]: part[c].tolist()
                                                                for c in part.columns if c.startswith(SLICE)})
    first = maps[checked.tasks[0].name]
    return Splits(parts["train"], parts.get("validation"), parts.get("test"), first, run.report,
                  tasks=maps if run.multi else None)
