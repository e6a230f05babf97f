"""The data stage's result kept in the cache: a second run over the same files with the same data settings and seed
reads its splits, label map and report back (Arrow) instead of reading, checking and splitting the files again.

The key is a sha256 of every data file's bytes, the data settings, the seed, the purpose, the label names a
label-free strategy knows, and this code's version: change any and the stage runs again."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from ..logs import get_logger
from ..version import __version__
from .schema import DataReport, DataSpec, LabelledTexts, LabelMap, Splits
from .split import load_splits

logger = get_logger(__name__)

FORMAT = "1"  #: part of the key: a change to what is stored makes old entries unreachable
SPLITS = ("train", "validation", "test")


def load_splits_cached(spec: DataSpec, seed: int, unlabelled: list[str] | None, folder: Path) -> Splits:
    """load_splits(spec, seed, unlabelled=unlabelled) through the cache under `folder`: an entry with the same key
    is read back (report.files then says `cached`); a new result is stored. Problems raise as from load_splits,
    and nothing is stored for them."""
    key = _key(spec, seed, unlabelled)
    entry = folder / key if key else None
    if entry is not None and (entry / "meta.json").is_file():
        try:
            splits = _read(entry)
            logger.info(f"data: read, checked and split as by an earlier run with the same files and settings "
                        f"(cached: {entry})")
            inferred = splits.report.inferred
            if "label_column" in inferred:
                logger.info(f"label column: '{inferred['label_column']['column']}' "
                            f"(inferred: {inferred['label_column']['reason']})")
            if "text_columns" in inferred:
                logger.info(f"text column: '{inferred['text_columns']['columns'][0]}' "
                            f"(inferred: {inferred['text_columns']['reason']})")
            return splits
        except (OSError, ValueError, KeyError, TypeError):  # damaged: made again
            shutil.rmtree(entry, ignore_errors=True)
    splits = load_splits(spec, seed=seed, unlabelled=unlabelled)
    if entry is not None:
        try:
            _write(entry, splits)
        except OSError as e:  # a full or read-only cache never stops a run
            logger.warning(f"could not cache the data stage's result in {folder}: {e.strerror or e}")
    return splits


def _key(spec: DataSpec, seed: int, unlabelled: list[str] | None) -> str | None:
    """sha256 of the files' bytes and everything else the result depends on; None when a file is missing (the
    data stage says so)."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "version": __version__, "spec": dataclasses.asdict(spec),
                                   "seed": seed, "unlabelled": unlabelled}, sort_keys=True, default=str).encode())
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


def _write(entry: Path, splits: Splits) -> None:
    """Each split as Arrow (text, label, row, slice columns) and meta.json (label map, report), in a temporary
    folder renamed onto `entry` (run.atomic_dir)."""
    import pyarrow as pa

    from ..run import atomic_dir

    with atomic_dir(entry) as temp:
        present = {}
        for name in SPLITS:
            part = getattr(splits, name)
            if part is None:
                continue
            columns = {"text": pa.array(part.texts, pa.large_string()), "row": pa.array(part.rows, pa.int64())}
            if part.labels is not None:
                columns["label"] = pa.array(part.labels, pa.int32())
            columns.update({f"slice:{c}": pa.array(v, pa.string()) for c, v in part.slices.items()})
            table = pa.table(columns)
            with pa.OSFile(str(temp / f"{name}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            present[name] = {"labels": part.labels is not None, "slices": list(part.slices)}
        (temp / "meta.json").write_text(json.dumps({"splits": present, "labels": list(splits.label_map.names),
                                                    "report": splits.report.to_dict()}, ensure_ascii=False))


def _read(entry: Path) -> Splits:
    import pyarrow as pa

    meta = json.loads((entry / "meta.json").read_text())
    parts = {}
    for name, info in meta["splits"].items():
        table = pa.ipc.open_file(pa.memory_map(str(entry / f"{name}.arrow"), "r")).read_all()
        parts[name] = LabelledTexts(texts=table.column("text").to_pylist(),
                                    labels=table.column("label").to_pylist() if info["labels"] else None,
                                    rows=table.column("row").to_pylist(),
                                    slices={c: table.column(f"slice:{c}").to_pylist() for c in info["slices"]})
    report = DataReport(**meta["report"])
    return Splits(train=parts["train"], validation=parts.get("validation"), test=parts.get("test"),
                  label_map=LabelMap(meta["labels"]), report=report)
