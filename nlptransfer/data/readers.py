"""The two readers of the data stage, the whole file or a chunk of rows at a time, and the one pass that turns rows
into what the checks need: per kept row a 64-bit hash of its text as a reader compares it (whitespace aside), its
label codes (one per task), its row number and whether its text is empty. The rows' texts, numbers and slices go to
a sink as they are read: a list of frames in memory, or an Arrow file on disk (data.streamed)."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from .checks import LeakCounter
from .label_sets import parse_sets
from .labels import LabelTask, parse_task_labels
from .problems import empty_file_problem
from .read import Table, cell_text, iter_table, read_table
from .schema import MAX_TEXT_CHARS, DataSpec

SLICE = "slice:"  #: prefix of the frame columns that carry data.slice_columns


def text_rows(table: Table, text_columns: list[str], join_with: str) -> pd.DataFrame:
    """Columns text (the text columns' cells joined) and row (1-based data row)."""
    frame = table.frame
    parts = [frame[c].map(cell_text).str.strip().tolist() for c in text_columns]
    texts = [join_with.join(p for p in row if p) for row in zip(*parts)] if parts else [""] * len(frame)
    return pd.DataFrame({"text": texts, "row": range(1, len(frame) + 1)})


def cut_texts(texts: list[str]) -> tuple[list[str], list[int]]:
    """`texts` each cut to MAX_TEXT_CHARS characters, and the positions of those that were longer."""
    long = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if not long:
        return texts, long
    texts = list(texts)
    for i in long:
        texts[i] = texts[i][:MAX_TEXT_CHARS]
    return texts, long


def open_files(spec: DataSpec, rows: int | None, problems: list[str]
               ) -> tuple[dict[str, Table], dict[str, Iterable[Table]]]:
    """Each data file's first Table (the whole file when `rows` is None, else its first chunk of `rows` rows) and
    all its Tables, as they will be read; a file that cannot be read, or has no rows, is a problem."""
    firsts, chunks = {}, {}
    for name, path in (("train", spec.train), ("validation", spec.validation), ("test", spec.test)):
        if not path:
            continue
        try:
            if rows is None:
                first, rest = read_table(path, spec.format, spec.header, spec.encoding, spec.delimiter), iter(())
            else:
                rest = iter_table(path, spec.format, spec.header, spec.encoding, spec.delimiter, rows=rows)
                first = next(rest)
        except DataError as e:
            problems.extend(e.problems)
            continue
        if len(first.frame) == 0:
            problems.append(empty_file_problem(path))
            continue
        firsts[name], chunks[name] = first, itertools.chain([first], rest)
    return firsts, chunks


@dataclass
class Found:
    """Rows with one problem: how many, the first row numbers, the first distinct values."""

    count: int = 0
    rows: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def add(self, rows, values=()) -> None:
        self.count += len(rows)
        if len(self.rows) <= 8:
            self.rows += list(rows[:9])
        for v in values:
            if len(self.values) >= 5:
                break
            if v not in self.values:
                self.values.append(v)


@dataclass
class Read:
    """One file as read: its kept rows' text hashes, label codes [rows, tasks] (-1: no label), row numbers and
    whether the text is empty; the rows found without a text, without a label, or with a label no range holds."""

    rows_read: int = 0
    hashes: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    numbers: list = field(default_factory=list)
    empty: list = field(default_factory=list)
    unbinned: Found = field(default_factory=Found)
    empty_text: Found = field(default_factory=Found)
    empty_label: Found = field(default_factory=Found)
    cut: Found = field(default_factory=Found)  #: texts longer than MAX_TEXT_CHARS, cut to it
    map_dropped: int = 0

    def done(self, tasks: int) -> None:
        self.hashes = np.concatenate(self.hashes or [np.zeros(0, np.uint64)])
        self.codes = np.concatenate(self.codes or [np.zeros((0, tasks), np.int32)])
        self.numbers = np.concatenate(self.numbers or [np.zeros(0, np.int32)])
        self.empty = np.concatenate(self.empty or [np.zeros(0, bool)])


def text_hashes(texts) -> np.ndarray:
    """A 64-bit hash of each text with runs of whitespace as one space."""
    return pd.util.hash_array(np.array([" ".join(t.split()) for t in texts], dtype=object), categorize=False)


def read_rows(chunks: Iterable[Table], spec: DataSpec, text_columns: list[str], tasks: list[LabelTask],
              codes: list[dict], leaks: list[LeakCounter] | None, sink: Callable[[pd.DataFrame], None]) -> Read:
    """One file, chunk by chunk: each task's labels parsed and coded, rows without a text or without any label found
    (dropped with data.drop_invalid), the kept rows' arrays kept and their text, row and slices given to `sink`."""
    slices = list(spec.slice_columns or [])
    out = Read()
    offset = 0
    for table in chunks:
        frame = text_rows(table, text_columns, spec.join_with)
        frame["row"] += offset
        texts, long = cut_texts(frame["text"].tolist())
        if long:
            out.cut.add(frame["row"].to_numpy()[long].tolist())
            frame["text"] = texts
        start, offset = offset, offset + len(table.frame)
        for column in slices:  # prefixed: a slice column may be called text or row
            frame[SLICE + column] = table.frame[column].map(cell_text).tolist()
        parsed = [parse_sets(t, table.frame, c) if t.multi_label else parse_task_labels(t, table.frame, spec, c)
                  for t, c in zip(tasks, codes)]
        labels = np.stack([p.codes for p in parsed], axis=1)
        keep = ~np.any([p.dropped for p in parsed], axis=0)
        for p in parsed:
            out.unbinned.add(frame.loc[p.unbinned, "row"].tolist(), p.unbinned_values)
            out.map_dropped += p.map_dropped
        frame, labels = frame[keep], labels[keep]
        for found in (out.empty_text, out.empty_label):  # with drop_invalid, a row is counted for its first lack
            bad = (frame["text"] == "").to_numpy() if found is out.empty_text else (labels < 0).all(axis=1)
            found.add(frame.loc[bad, "row"].tolist())
            if spec.drop_invalid:
                frame, labels = frame[~bad], labels[~bad]
        if leaks is not None:
            source = table.frame.iloc[frame["row"].to_numpy() - 1 - start]
            for i, (leak, names) in enumerate(zip(leaks, codes)):
                names = np.array([""] + list(names), dtype=object)  # code -1 (no label) is ""
                leak.add(source, pd.Series(names[labels[:, i] + 1]))
        out.hashes.append(text_hashes(frame["text"]))
        out.codes.append(labels)
        out.numbers.append(frame["row"].to_numpy(np.int32 if offset < 2**31 else np.int64))
        out.empty.append((frame["text"] == "").to_numpy())
        sink(frame)
    out.rows_read = offset
    out.done(len(tasks))
    return out
