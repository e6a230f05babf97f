"""The data stage for files larger than memory: the same reading, checks and splits as split.load_splits, a chunk
of rows at a time. Each file's rows go to an Arrow file on disk as they are read; what the checks across rows need
stays in memory as a few numbers per row (a 64-bit hash of the text as a reader compares it, whitespace aside; the
label; the row number), so memory grows by about 30 bytes a row, not with the texts. The splits are then written
as split files (store.SplitWriter) and read back as ArrowColumns.

Column inference, when the recipe does not name the columns, reads the training file once before the main pass and
keeps SAMPLE_ROWS rows of each chunk, spread over it (a file sorted by its label, as Sentiment140 is, shows one label
in its first chunk); a leak check gives up a column with more than 100,000 distinct values. A problem with the
chosen columns stops at once (the other checks need them)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .checks import LeakCounter, drop_share_problems
from .columns import missing_column
from .labels import DROPPED_BY_MAP, NOT_BINNED, bins_problems, map_labels, numeric_hint, sort_labels
from .read import cell_text, iter_table, spread
from .schema import DataReport, DataSpec, LabelMap, Splits
from .split import (CONFLICT, DUPLICATE, IN_TRAIN, IN_TRAIN_CONFLICT, NO_TRAIN, SLICE, TRAINING, _choose_columns,
                    _split_sizes_problem, clash_problem, empty_problem, in_train_problem, leak_problems,
                    single_class_problem, stratified, table_rows, unbinned_problem, unknown_labels_problem)
from .splitfiles import SPLITS, SplitWriter, read_entry, write_meta

logger = get_logger(__name__)

STREAM_BYTES = 16 << 20  #: a data file larger than this goes through this stage
CHUNK_ROWS = 50_000  #: rows read at a time
SAMPLE_ROWS = 2_000  #: rows of each chunk column inference sees


def spread_sample(spec: DataSpec) -> pd.DataFrame:
    """SAMPLE_ROWS rows of each chunk of the training file, evenly spaced in it: rows spread over the whole file
    for column inference (one pass, memory bounded by a chunk)."""
    parts = []
    for table in iter_table(spec.train, spec.format, spec.header, spec.encoding, spec.delimiter, rows=CHUNK_ROWS):
        parts.append(table.frame.iloc[spread(len(table.frame), SAMPLE_ROWS)])
    return pd.concat(parts, ignore_index=True)


def streams(spec: DataSpec) -> bool:
    """True when a data file is larger than STREAM_BYTES."""
    return any(path and Path(path).is_file() and Path(path).stat().st_size > STREAM_BYTES
               for path in (spec.train, spec.validation, spec.test))


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
    """One file as read: its rows' hashes, label codes (-1: no label), row numbers and whether the text is empty,
    and the Arrow file holding its texts."""

    path: Path
    rows_read: int = 0
    hashes: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    numbers: list = field(default_factory=list)
    empty: list = field(default_factory=list)
    unbinned: Found = field(default_factory=Found)
    empty_text: Found = field(default_factory=Found)
    empty_label: Found = field(default_factory=Found)
    map_dropped: int = 0

    def done(self) -> None:
        self.hashes = np.concatenate(self.hashes or [np.zeros(0, np.uint64)])
        self.codes = np.concatenate(self.codes or [np.zeros(0, np.int32)])
        self.numbers = np.concatenate(self.numbers or [np.zeros(0, np.int32)])
        self.empty = np.concatenate(self.empty or [np.zeros(0, bool)])


def load_splits_streamed(spec: DataSpec, seed: int, folder: Path) -> Splits:
    """load_splits(spec, seed) for files larger than memory; the splits are written to `folder` (replaced as a
    whole: fsio.atomic_dir) and read from there. Raises one DataError listing the problems found."""
    from ..fsio import atomic_dir

    if not spec.train:
        raise DataError(NO_TRAIN)
    problems: list[str] = []
    report = DataReport()

    def stop():
        report.problems = list(problems)
        raise DataError(problems, report)

    files = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    chunks, firsts = {}, {}
    for name, path in files.items():
        if not path:
            continue
        try:
            it = iter_table(path, spec.format, spec.header, spec.encoding, spec.delimiter, rows=CHUNK_ROWS)
            first = next(it)
        except DataError as e:
            problems.extend(e.problems)
            continue
        if len(first.frame) == 0:
            problems.append(f"{path} is empty: it has no data rows")
            continue
        firsts[name], chunks[name] = first, itertools.chain([first], it)
    sample = None
    if "train" in firsts and (spec.label_column is None or not spec.text_columns):
        try:
            sample = spread_sample(spec)
        except DataError as e:  # the main pass would stop at the same place: say it once, now
            problems.extend(e.problems)
            stop()
    text_columns, label_column = _choose_columns(spec, firsts, report, problems, TRAINING, sample)
    for name, table in firsts.items():
        present = [str(c) for c in table.frame.columns]
        problems += [f"{TRAINING.file(name)} {table.path}: " + missing_column(c, present, "data.slice_columns")
                     for c in spec.slice_columns or [] if c not in present]
    if spec.label_bins:
        problems += bins_problems(spec.label_bins)
    if problems or "train" not in firsts or not label_column or not text_columns:
        stop()
    logger.info(f"data: reading {', '.join(f for f in files.values() if f)} a chunk of {CHUNK_ROWS:,} rows at a time")

    with atomic_dir(Path(folder)) as temp:
        codes: dict[str, int] = {}
        leaks = LeakCounter({label_column})
        read = {name: _read_file(name, chunks[name], spec, text_columns, label_column, codes,
                                 leaks if name == "train" else None, temp)
                for name in files if name in chunks}
        for name, r in read.items():
            report.files[name] = {**firsts[name].info(), "rows_read": r.rows_read}
        names_of = np.array(list(codes) or [""], dtype=object)
        dest = _check(spec, seed, read, codes, names_of, leaks, text_columns, report, problems)
        if problems:
            stop()
        label_map = LabelMap(dest.pop("names"))
        ids = np.array([label_map.id(n) if n in label_map.names else -1 for n in names_of], dtype=np.int32)
        slices = list(spec.slice_columns or [])
        writers = {s: SplitWriter(temp / f"{s}.arrow", True, slices) for s in SPLITS if s in dest["made"]}
        for name, r in read.items():
            _write_splits(temp / f"source-{name}.arrow", dest[name], ids, writers)
            (temp / f"source-{name}.arrow").unlink()
        for w in writers.values():
            w.close()
        for split in SPLITS:
            if split in writers:
                counts = dest["balance"][split]
                report.rows_used[split] = int(sum(counts.values()))
                report.class_balance[split] = {n: int(counts.get(n, 0)) for n in label_map.names}
        splits = Splits(*(_Sized(writers[s].rows, slices) if s in writers else None for s in SPLITS), label_map,
                        report)
        write_meta(temp, splits)
    return read_entry(Path(folder))


class _Sized:
    """A stand-in split for write_meta: its size, labels and slices."""

    def __init__(self, rows: int, slices: list[str]):
        self.rows, self.labels, self.slices = rows, True, dict.fromkeys(slices)

    def __len__(self) -> int:
        return self.rows


def _read_file(name: str, chunks, spec: DataSpec, text_columns: list[str], label_column: str, codes: dict,
               leaks: LeakCounter | None, temp: Path) -> Read:
    """Stream one file: labels mapped, empty rows found (dropped with drop_invalid), each kept row's text hash, label
    code and number kept, its text, row and slices written to temp/source-NAME.arrow."""
    slices = list(spec.slice_columns or [])
    out = Read(temp / f"source-{name}.arrow")
    writer = SplitWriter(out.path, True, slices)
    offset = 0
    for table in chunks:
        frame = table_rows(table, text_columns, label_column, spec.join_with)
        frame["row"] += offset
        start, offset = offset, offset + len(table.frame)
        for column in slices:  # prefixed: a slice column may be called text, label or row
            frame[SLICE + column] = table.frame[column].map(cell_text).tolist()
        if spec.label_map or spec.label_bins:
            frame = _map(frame, spec, out)
        for column, found in (("text", out.empty_text), ("label", out.empty_label)):
            bad = frame[column] == ""
            found.add(frame.loc[bad, "row"].tolist())
            if spec.drop_invalid:
                frame = frame[~bad]
        if leaks is not None:
            leaks.add(table.frame.iloc[frame["row"].to_numpy() - 1 - start], frame["label"])
        labels = frame["label"].tolist()
        chunk_codes = np.array([-1 if not x else codes.setdefault(x, len(codes)) for x in labels], dtype=np.int32)
        keys = np.array([" ".join(t.split()) for t in frame["text"]], dtype=object)
        out.hashes.append(pd.util.hash_array(keys, categorize=False))
        out.codes.append(chunk_codes)
        out.numbers.append(frame["row"].to_numpy(np.int32 if offset < 2**31 else np.int64))
        out.empty.append((frame["text"] == "").to_numpy())
        writer.add(frame["text"].tolist(), frame["row"].tolist(), chunk_codes.tolist(),
                   *(frame[SLICE + c].tolist() for c in slices))
    writer.close()
    out.rows_read = offset
    out.done()
    return out


def _map(frame: pd.DataFrame, spec: DataSpec, out: Read) -> pd.DataFrame:
    """data.label_map, then data.label_bins (as split._map_labels): dropped rows counted, unbinned ones found."""
    labels, dropped = map_labels(frame["label"], spec.label_map, spec.label_bins)
    nulls = {str(k) for k, v in (spec.label_map or {}).items() if v is None}
    unbinned = labels.isna() & ~frame["label"].isin(nulls)
    out.unbinned.add(frame.loc[unbinned, "row"].tolist(), frame.loc[unbinned, "label"].tolist())
    out.map_dropped += dropped.get(DROPPED_BY_MAP, 0)
    return frame.assign(label=labels)[labels.notna()]


def _groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts `hashes` (stable: equal ones keep their order) and where each run of equal ones starts in
    it."""
    order = np.argsort(hashes, kind="stable").astype(np.int32 if len(hashes) < 2**31 else np.int64)
    ordered = hashes[order]
    return order, np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else order


def _counts(codes: np.ndarray, names_of: np.ndarray) -> pd.Series:
    """Rows per label name, most first (as value_counts orders them)."""
    counts = pd.Series(codes[codes >= 0]).value_counts()
    counts.index = names_of[counts.index.to_numpy()]
    return counts


def _check(spec: DataSpec, seed: int, read: dict[str, Read], codes: dict, names_of: np.ndarray,
           leaks: LeakCounter, text_columns: list[str], report: DataReport, problems: list[str]) -> dict:
    """The checks of split.load_splits, in its order, on the rows' numbers; returns where each row goes."""
    words, drop = TRAINING, spec.drop_invalid
    for name, r in read.items():
        if r.map_dropped:
            report.drop(name, DROPPED_BY_MAP, r.map_dropped)
        if r.unbinned.count and not drop:
            problems.append(unbinned_problem(name, r.unbinned.count, r.unbinned.values, r.unbinned.rows))
        elif r.unbinned.count:
            report.drop(name, NOT_BINNED, r.unbinned.count)
    for name, r in read.items():
        for found, what, reason in ((r.empty_text, "an empty or missing text", "empty or missing text"),
                                    (r.empty_label, "a missing label", "missing label")):
            if found.count and drop:
                report.drop(name, reason, found.count)
            elif found.count:
                problems.append(empty_problem(words, name, found.count, what, found.rows))
    train = read["train"]
    train_codes = set(np.unique(train.codes[train.codes >= 0]).tolist())
    known = set(spec.labels) if spec.labels else {names_of[c] for c in train_codes}
    names = list(spec.labels) if spec.labels else sort_labels(known)
    for name, r in read.items():
        unknown = _counts(r.codes, names_of)
        unknown = unknown[~unknown.index.isin(list(known))]
        if len(unknown):
            problems.append(unknown_labels_problem(words, name, unknown, spec.labels, "train"))
    if len(train_codes) == 1:
        problems.append(single_class_problem(names_of[next(iter(train_codes))]))
    report.leaks = leaks.leaks()
    problems += leak_problems(report.leaks, text_columns, spec.allow_leaks)
    if not spec.label_bins and not spec.labels:
        hint = numeric_hint({names_of[c]: int((train.codes == c).sum()) for c in pd.unique(train.codes[train.codes >= 0])})
        if hint:
            report.hints.append(hint)

    keep = {name: np.ones(len(r.codes), bool) for name, r in read.items()}
    for name, r in read.items():
        valid = np.flatnonzero((r.codes >= 0) & ~r.empty)
        order, starts = _groups(r.hashes[valid])
        codes = r.codes[valid][order]
        mixed = np.minimum.reduceat(codes, starts) != np.maximum.reduceat(codes, starts) if len(codes) else codes
        clash = np.zeros(len(r.codes), bool)
        clash[valid[order[np.repeat(mixed, np.diff(np.r_[starts, len(codes)]))]]] = True
        if clash.any() and drop:
            report.drop(name, CONFLICT, int(clash.sum()))
            keep[name] &= ~clash
        elif clash.any():
            problems.append(clash_problem(words, name, int(mixed.sum()), int(clash.sum()),
                                          r.numbers[clash][:9].tolist()))
    del valid, order, codes, mixed
    kept = np.flatnonzero(keep["train"])
    order, starts = _groups(train.hashes[kept])
    seen = train.hashes[kept][order][starts]  # each text once (sorted), with the label of its last row in train
    last = train.codes[kept][order[np.r_[starts[1:], len(order)] - 1]] if len(order) else train.codes[:0]
    del kept, order, starts
    for name in ("validation", "test"):
        r = read.get(name)
        if r is None:
            continue
        at = np.minimum(np.searchsorted(seen, r.hashes), max(len(seen) - 1, 0))
        shared = (seen[at] == r.hashes) & ~r.empty if len(seen) else np.zeros(len(r.hashes), bool)
        other = shared & (last[at] != r.codes) if len(seen) else shared
        for mask, reason in ((shared & ~other, IN_TRAIN), (other, IN_TRAIN_CONFLICT)):
            if mask.any() and drop:
                report.drop(name, reason, int(mask.sum()))
            elif mask.any():
                problems.append(in_train_problem(name, reason, int(mask.sum()), r.numbers[mask][:9].tolist()))
        if drop:
            keep[name] &= ~shared

    carve = [(n, f) for n, f in (("test", spec.test_fraction), ("validation", spec.val_fraction))
             if not getattr(spec, n) and f > 0]
    if carve:
        pool = np.flatnonzero(keep["train"] & ~train.empty & (train.codes >= 0))
        classes = len(np.unique(train.codes[pool]))
        order, starts = _groups(train.hashes[pool])
        later = np.ones(len(pool), bool)
        later[starts] = False  # the first row of each text (a stable sort keeps their order)
        report.drop("train", DUPLICATE, int(later.sum()))
        keep["train"] = np.zeros(len(train.codes), bool)
        keep["train"][pool[order[~later]]] = True
        if classes > 1:
            problems.extend(_split_sizes_problem(_counts(train.codes[keep["train"]], names_of), carve))
    if drop:
        problems += drop_share_problems({n: r.rows_read for n, r in read.items()}, report.dropped,
                                        spec.max_drop_fraction)
    if problems:
        return {}
    where = {name: np.where(keep[name], SPLITS.index(name), -1).astype(np.int8) for name in read}
    if carve:
        positions = np.flatnonzero(keep["train"])
        rank = np.argsort(np.argsort(names_of.astype(str))).astype(np.int32)  # a label's place in sorted order
        try:
            parts = stratified(rank[train.codes[positions]], carve, seed)
        except ValueError as e:
            raise DataError(f"cannot make stratified splits of {len(positions)} train rows: {e}; "
                            f"lower data.val_fraction / data.test_fraction, or add rows")
        for split, _ in carve:
            where["train"][positions[parts[split]]] = SPLITS.index(split)
            report.files[split] = {"made_from": "train", "fraction": dict(carve)[split], "seed": seed}
    balance = {s: {} for s in SPLITS}
    for name, r in read.items():
        for i, split in enumerate(SPLITS):
            for label, n in _counts(r.codes[where[name] == i], names_of).items():
                balance[split][label] = balance[split].get(label, 0) + int(n)
    made = {"train", *read, *dict(carve)}
    return {**where, "names": names, "balance": balance, "made": made}


def _write_splits(source: Path, where: np.ndarray, ids: np.ndarray, writers: dict) -> None:
    """Each row of a source file to the split `where` says (-1: dropped), its label code made the label's id."""
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.OSFile(str(source)))
    start = 0
    for b in range(reader.num_record_batches):
        batch = reader.get_batch(b)
        to = where[start:start + batch.num_rows]
        start += batch.num_rows
        for i, split in enumerate(SPLITS):
            rows = np.flatnonzero(to == i)
            if not len(rows):
                continue
            part = batch.take(pa.array(rows))
            columns = [part.column(j).to_pylist() for j in range(part.num_columns)]
            columns[2] = ids[np.array(columns[2], dtype=np.int64)].tolist()
            writers[split].add(*columns)
