"""Split files: a split's texts, rows, label ids and slice columns as an Arrow IPC file in record batches of BATCH
rows, written as rows come (SplitWriter) and read back a batch at a time (ArrowColumn); a folder of them with
meta.json (label maps, report) is one data-stage result (read_entry), in the cache or made by data.streamed."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from .schema import DataReport, LabelledTexts, LabelMap, Splits

FORMAT = "3"  #: what a folder of split files holds; part of the cache key (a change makes old entries unreachable)
SPLITS = ("train", "validation", "test")


BATCH = 50_000  #: rows per record batch of a split file: what ArrowColumn reads at a time


class SplitWriter:
    """A split file written as rows come (text, row, label id, slice columns), in record batches of exactly BATCH
    rows (the last may be shorter), so ArrowColumn finds row i in batch i // BATCH. `per_task`: a row's label is a
    list, one id per task (multi-task)."""

    def __init__(self, path: Path, labels: bool, slices: list[str], per_task: bool = False):
        import pyarrow as pa

        label = pa.list_(pa.int32()) if per_task else pa.int32()
        self.schema = pa.schema([("text", pa.large_string()), ("row", pa.int64())]
                                + ([("label", label)] if labels else [])
                                + [(f"slice:{c}", pa.string()) for c in slices])
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_file(self.sink, self.schema)
        self.pending: list[list] = [[] for _ in self.schema]
        self.rows = 0

    def add(self, *columns) -> None:
        """Rows given column by column, in the schema's order."""
        for held, values in zip(self.pending, columns):
            held.extend(values)
        while len(self.pending[0]) >= BATCH:
            self._flush(BATCH)

    def _flush(self, n: int) -> None:
        import pyarrow as pa

        arrays = [pa.array(held[:n], f.type) for held, f in zip(self.pending, self.schema)]
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        self.pending = [held[n:] for held in self.pending]
        self.rows += n

    def close(self) -> None:
        if self.pending[0] or not self.rows:
            self._flush(len(self.pending[0]))
        self.writer.close()
        self.sink.close()


def slot_widths(tasks: dict[str, LabelMap] | None) -> list[int] | None:
    """The label slots of each task of a multi-task run's rows (a multi-label task's: one per label), when one of its
    tasks is multi-label (their rows are stored flat); None otherwise (rows are stored as they are)."""
    if not tasks or all(m.kind != "multi_label" for m in tasks.values()):
        return None
    return [len(m) if m.kind == "multi_label" else 1 for m in tasks.values()]


def flat_rows(rows: list, widths: list[int] | None) -> list:
    """Multi-task label rows with a multi-label task's 0/1 list in place of its entry (as stored)."""
    if widths is None:
        return rows
    return [[y for x, w in zip(row, widths) for y in (x if w != 1 or isinstance(x, list) else [x])] for row in rows]


def nested_rows(rows: list, widths: list[int] | None, kinds: list[str] | None = None) -> list:
    """flat_rows undone: each multi-label task's slots back into one list (`kinds`: each task's)."""
    if widths is None:
        return rows
    starts = [sum(widths[:i]) for i in range(len(widths))]
    lists = [k == "multi_label" for k in kinds] if kinds else [w != 1 for w in widths]
    return [[row[s:s + w] if many else row[s] for s, w, many in zip(starts, widths, lists)] for row in rows]


def write_split(path: Path, part: LabelledTexts, per_task: bool = False, widths: list[int] | None = None) -> None:
    """A split's file; `widths`: slot_widths of a multi-task run's tasks (its label rows stored flat)."""
    writer = SplitWriter(path, part.labels is not None, list(part.slices), per_task)
    for start in range(0, len(part), BATCH):
        end = start + BATCH
        writer.add(part.texts[start:end], part.rows[start:end],
                   *([flat_rows(part.labels[start:end], widths)] if part.labels is not None else []),
                   *(values[start:end] for values in part.slices.values()))
    writer.close()


class ArrowColumn(Sequence):
    """One column of a split file as a read-only list of Python values, read a record batch at a time when asked
    (the last one kept), never the whole file: the texts of a split larger than memory. Iterating and slicing are
    fast; scattered single items cost a batch read each. `hold`: the cache's lock on the file's entry, kept for as
    long as the column is (a --clear leaves the entry alone)."""

    def __init__(self, path: str | Path, name: str, length: int, hold=None):
        self.path, self.name, self.length, self.hold = str(path), name, length, hold
        self._reader = None
        self._held: tuple[int, list] | None = None

    def __len__(self) -> int:
        return self.length

    def _batch(self, i: int) -> list:
        import pyarrow as pa

        if self._held is None or self._held[0] != i:
            if self._reader is None:
                self._reader = pa.ipc.open_file(pa.OSFile(self.path))  # read, not memory-mapped: no pages stay
            self._held = (i, self._reader.get_batch(i).column(self.name).to_pylist())
        return self._held[1]

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(self.length)
            if step != 1:
                return list(self)[i]
            out = []
            while start < stop:
                batch = self._batch(start // BATCH)
                offset = start % BATCH
                taken = batch[offset:offset + stop - start]
                out += taken
                start += len(taken)
            return out
        if not -self.length <= i < self.length:
            raise IndexError("ArrowColumn index out of range")
        i %= self.length
        return self._batch(i // BATCH)[i % BATCH]

    def __iter__(self):
        for b in range(math.ceil(self.length / BATCH)):
            yield from self._batch(b)

    def __eq__(self, other) -> bool:
        if isinstance(other, (ArrowColumn, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"ArrowColumn({self.path!r}, {self.name!r}, {self.length} rows)"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None, "_held": None, "hold": None}  # the lock stays with its process


def write_meta(folder: Path, splits: Splits) -> None:
    present = {name: {"labels": part.labels is not None, "slices": list(part.slices), "rows": len(part)}
               for name in SPLITS for part in [getattr(splits, name)] if part is not None}
    (folder / "meta.json").write_text(json.dumps({"format": FORMAT, "splits": present,
                                                  "labels": list(splits.label_map.names),
                                                  "label_map": splits.label_map.to_dict(),
                                                  **({"tasks": {t: m.to_dict() for t, m in splits.tasks.items()}}
                                                     if splits.tasks else {}),
                                                  "report": splits.report.to_dict()}, ensure_ascii=False))


def read_entry(entry: Path, hold=None) -> Splits:
    """The splits stored in `entry`: texts, rows and slices as ArrowColumns (keeping `hold`, the cache's lock on the
    entry), label ids as a list."""
    import pyarrow as pa

    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{entry}: stored by another format")
    tasks = {t: LabelMap.from_dict(m) for t, m in meta["tasks"].items()} if "tasks" in meta else None
    widths = slot_widths(tasks)
    parts = {}
    for name, info in meta["splits"].items():
        path = entry / f"{name}.arrow"
        labels = None
        if info["labels"]:
            reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
            labels = [v for i in range(reader.num_record_batches)
                      for v in reader.get_batch(i).column("label").to_pylist()]
            if len(labels) != info["rows"]:
                raise ValueError(f"{path}: {len(labels)} rows, not {info['rows']}")
            if widths is not None and any(len(row) != sum(widths) for row in labels):
                raise ValueError(f"{path}: label rows of another width than its tasks' {sum(widths)} slots")
            labels = nested_rows(labels, widths, [m.kind for m in tasks.values()] if tasks else None)
        parts[name] = LabelledTexts(texts=ArrowColumn(path, "text", info["rows"], hold), labels=labels,
                                    rows=ArrowColumn(path, "row", info["rows"], hold),
                                    slices={c: ArrowColumn(path, f"slice:{c}", info["rows"], hold)
                                            for c in info["slices"]})
    report = DataReport(**meta["report"])
    return Splits(train=parts["train"], validation=parts.get("validation"), test=parts.get("test"),
                  label_map=LabelMap.from_dict(meta["label_map"]) if "label_map" in meta else LabelMap(meta["labels"]),
                  report=report,
                  tasks=tasks)
