"""The data stage for files larger than memory: the stage of data.stage, fed a chunk of CHUNK_ROWS rows at a time.
Each file's rows go to an Arrow file on disk as they are read; what the checks need stays in memory as a few numbers
per row (data.readers), so memory grows by about 30 bytes a row, not with the texts. The splits are then written as
split files (splitfiles.SplitWriter) and read back as ArrowColumns.

Column inference, when the recipe does not name the columns, reads the training file once before the main pass and
keeps SAMPLE_ROWS rows of each chunk, spread over it (a file sorted by its label, as Sentiment140 is, shows one label
in its first chunk); a leak check gives up a column with more than 100,000 distinct values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .read import iter_table, larger_than, spread
from .readers import SLICE
from .schema import DataSpec, Splits
from .splitfiles import SPLITS, SplitWriter, read_entry, write_meta
from .stage import Checked, read_and_check, refuse_multitask_settings, start
from .tally import fill_report, label_ids

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
    """True when a data file is larger than STREAM_BYTES (a compressed one once decompressed)."""
    return any(path and Path(path).is_file() and larger_than(Path(path), STREAM_BYTES)
               for path in (spec.train, spec.validation, spec.test))


def load_splits_streamed(spec: DataSpec, seed: int, folder: Path) -> Splits:
    """load_splits(spec, seed) (load_multitask_splits for data.label_columns) for files larger than memory; the
    splits are written to `folder` (replaced as a whole: fsio.atomic_dir) and read from there. Raises one DataError
    listing the problems found."""
    from ..fsio import atomic_dir

    with atomic_dir(Path(folder)) as temp:
        write_splits_streamed(spec, seed, temp)
    return read_entry(Path(folder))


def write_splits_streamed(spec: DataSpec, seed: int, temp: Path) -> None:
    """The splits of load_splits_streamed written into the new folder `temp` (split files and meta.json)."""
    multi = spec.label_columns is not None
    if "multi_label" in (spec.task_kinds or {}).values():  # load_splits_cached reads these whole
        raise DataError("a multi-task run with a multi_label task (data.task_kinds) reads its files whole, not in "
                        "chunks: use load_multitask_splits")
    if multi:
        refuse_multitask_settings(spec)
    run, firsts, chunks = start(spec, seed, "train", multi, rows=CHUNK_ROWS)
    sample = None
    if "train" in firsts and (not spec.text_columns or not multi and spec.label_column is None):
        try:
            sample = spread_sample(spec)
        except DataError as e:  # the main pass would stop at the same place: say it once, now
            run.problems.extend(e.problems)
            run.stop()
    slices = list(spec.slice_columns or [])
    sources: dict[str, SplitWriter] = {}

    def sink(name: str):
        writer = sources[name] = SplitWriter(temp / f"source-{name}.arrow", False, slices)
        if len(sources) == 1:
            logger.info(f"data: reading {', '.join(f for f in (spec.train, spec.validation, spec.test) if f)} "
                        f"a chunk of {CHUNK_ROWS:,} rows at a time")
        return lambda frame: writer.add(frame["text"].tolist(), frame["row"].tolist(),
                                        *(frame[SLICE + c].tolist() for c in slices))

    checked = read_and_check(run, firsts, chunks, sample, sink)
    for writer in sources.values():
        writer.close()
    maps, ids = label_ids(run, checked)
    fill_report(run, checked, maps)
    writers = {s: SplitWriter(temp / f"{s}.arrow", True, slices, per_task=multi)
               for s in SPLITS if s in run.report.rows_used}
    for name in checked.read:
        _write_splits(temp / f"source-{name}.arrow", checked, name, ids, writers, multi)
        (temp / f"source-{name}.arrow").unlink()
    for w in writers.values():
        w.close()
    splits = Splits(*(_Sized(writers[s].rows, slices) if s in writers else None for s in SPLITS),
                    maps[checked.tasks[0].name], run.report, tasks=maps if multi else None)
    write_meta(temp, splits)


class _Sized:
    """A stand-in split for write_meta: its size, labels and slices."""

    def __init__(self, rows: int, slices: list[str]):
        self.rows, self.labels, self.slices = rows, True, dict.fromkeys(slices)

    def __len__(self) -> int:
        return self.rows


def _write_splits(source: Path, checked: Checked, name: str, ids: list[np.ndarray], writers: dict, multi: bool
                  ) -> None:
    """Each row of a source file to the split checked.where says (-1: dropped), with its label ids."""
    import pyarrow as pa

    where, codes = checked.where[name], checked.read[name].codes
    reader = pa.ipc.open_file(pa.OSFile(str(source)))
    start = 0
    for b in range(reader.num_record_batches):
        batch = reader.get_batch(b)
        to = where[start:start + batch.num_rows]
        for i, split in enumerate(SPLITS):
            rows = np.flatnonzero(to == i)
            if not len(rows):
                continue
            part = batch.take(pa.array(rows))
            columns = [part.column(j).to_pylist() for j in range(part.num_columns)]
            labels = np.stack([task_ids[codes[start + rows, k]] for k, task_ids in enumerate(ids)], axis=1)
            columns.insert(2, labels.tolist() if multi else labels[:, 0].tolist())
            writers[split].add(*columns)
        start += batch.num_rows
