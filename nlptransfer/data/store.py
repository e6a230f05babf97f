"""The data stage's result kept in the cache: a second run over the same files with the same data settings and seed
reads its splits, label map and report back (Arrow) instead of reading, checking and splitting the files again.

The key is a sha256 of every data file's bytes, the data settings, the seed, the purpose, the label names a
label-free strategy knows, and this code's version: change any and the stage runs again."""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from ..errors import DataError
from ..logs import get_logger
from ..version import __version__
from .problems import write_failed_problem
from .schema import DataSpec, Splits
from .splitfiles import FORMAT, SPLITS, read_entry, slot_widths, write_meta, write_split
from .stage import load_multitask_splits, load_splits

logger = get_logger(__name__)


def load_splits_cached(spec: DataSpec, seed: int, unlabelled: list[str] | None, folder: Path, cache: bool = True,
                       kind: str = "single_label") -> Splits:
    """load_splits(spec, seed, unlabelled=unlabelled) through the cache under `folder`: an entry with the same key
    is read back (report.files then says `cached`); a new result is stored. Problems raise as from load_splits,
    and nothing is stored for them. A data file larger than streamed.STREAM_BYTES (of a labelled run) goes through
    the streamed stage, into the cache entry, or with `cache` False into a temporary folder removed at exit.
    Multi-task (two or more data.label_columns) goes the same ways (load_multitask_splits); one entry is
    data.label_column. An entry is read only when the cache trusts it (cache.Entry: its files' sha256 match, it is
    this user's alone), and held (a shared lock) for as long as its split files are read. `kind` multi_label: one task
    of label sets (data.label_columns its 0/1 columns), read whole (not streamed), as a multi-task run with a
    multi_label task (data.task_kinds) is."""
    from ..cache import Entry, kind_folder
    from .streamed import load_splits_streamed, streams, write_splits_streamed

    multi_label = kind == "multi_label" or "multi_label" in (spec.task_kinds or {}).values()  # read whole
    spec = spec if kind == "multi_label" else _one_label_column(spec)
    multi = spec.label_columns is not None and kind != "multi_label"
    key = _key(spec, seed, unlabelled, kind) if cache else None
    entry = Entry(kind_folder(folder) / key, folder=True) if key else None
    if entry is not None and (hold := entry.open()) is not None:
        try:
            splits = read_entry(entry.path, hold)
            if multi_label or not streams(spec):  # files read whole: their splits are held in memory, as a first run holds them
                splits = _in_memory(splits)
                hold.close()
            logger.info(f"data: read, checked and split as by an earlier run with the same files and settings "
                        f"(cached: {entry.path})")
            inferred = splits.report.inferred
            if "label_column" in inferred:
                logger.info(f"label column: '{inferred['label_column']['column']}' "
                            f"(inferred: {inferred['label_column']['reason']})")
            if "text_columns" in inferred:
                logger.info(f"text column: '{inferred['text_columns']['columns'][0]}' "
                            f"(inferred: {inferred['text_columns']['reason']})")
            return splits
        except (OSError, ValueError, KeyError, TypeError) as e:  # written by another version of this code: made again
            logger.warning(f"cache: {entry.path} is not used: it cannot be read ({e}); made again")
            hold.close()
    if unlabelled is None and not multi_label and streams(spec):
        if entry is None:
            where = Path(tempfile.mkdtemp(prefix="nlptransfer-splits-"))
            atexit.register(shutil.rmtree, where, True)
        try:
            if entry is None:
                return load_splits_streamed(spec, seed, where / "splits")
            where = entry.path.parent
            with entry.build() as temp:
                write_splits_streamed(spec, seed, temp)
            return read_entry(entry.path, entry.hold)
        except OSError as e:  # the splits of a large file live on disk: it must take them
            raise DataError(write_failed_problem(spec.train, where, e))
    splits = (load_multitask_splits(spec, seed) if multi else
              load_splits(spec, seed=seed, unlabelled=unlabelled, kind=kind))
    if entry is not None:
        try:
            _write(entry, splits)
        except OSError as e:  # a full or read-only cache never stops a run
            logger.warning(f"could not cache the data stage's result in {folder}: {e.strerror or e}")
    return splits


def _one_label_column(spec: DataSpec) -> DataSpec:
    """`spec` with a single entry of data.label_columns as data.label_column (the same run)."""
    columns = spec.label_columns or []
    if len(columns) != 1:
        return spec
    if spec.label_column not in (None, columns[0]):
        raise DataError(f"data.label_column '{spec.label_column}' and data.label_columns {columns} name different "
                        f"label columns: give one of them")
    return dataclasses.replace(spec, label_column=columns[0], label_columns=None)


def _in_memory(splits: Splits) -> Splits:
    """`splits` with the texts, rows and slices of each split read into lists."""
    def read(part):
        if part is None:
            return None
        return dataclasses.replace(part, texts=list(part.texts), rows=list(part.rows),
                                   slices={c: list(values) for c, values in part.slices.items()})

    return dataclasses.replace(splits, train=read(splits.train), validation=read(splits.validation),
                               test=read(splits.test))


def _key(spec: DataSpec, seed: int, unlabelled: list[str] | None, kind: str = "single_label") -> str | None:
    """sha256 of the files' bytes and everything else the result depends on; None when a file is missing (the
    data stage says so)."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "version": __version__, "spec": dataclasses.asdict(spec),
                                   "seed": seed, "unlabelled": unlabelled, **({"kind": kind} if kind != "single_label" else {})},
                                  sort_keys=True, default=str).encode())
    for name in SPLITS:
        path = getattr(spec, name)
        if not path:
            continue
        path = Path(path)
        if not path.is_file():
            return None
        h.update(f"\0{name}\0".encode())
        with path.open("rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
    return h.hexdigest()


def _write(entry, splits: Splits) -> None:
    """Each split as an Arrow file (SplitWriter) and meta.json (label map, report), in a temporary folder renamed
    onto the cache.Entry `entry` (its build)."""
    with entry.build() as temp:
        for name in SPLITS:
            part = getattr(splits, name)
            if part is not None:
                write_split(temp / f"{name}.arrow", part,
                            per_task=splits.tasks is not None or splits.label_map.kind == "multi_label",
                            widths=slot_widths(splits.tasks))
        write_meta(temp, splits)


