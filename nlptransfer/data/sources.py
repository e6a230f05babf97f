"""Data that is not one file: a `datasets.Dataset` or `DatasetDict` (Python), a folder written by
`Dataset.save_to_disk`, or a hub data set (`hf://datasets/NAME[:config]`). Each is written once as Parquet files, one
per split (train / validation / test), into the cache under the data's fingerprint, and the data stage reads those
like any file: every check and the data report apply, and the run's recipe names files a resume reads again."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError
from ..logs import get_logger

logger = get_logger(__name__)

HUB_PREFIX = "hf://datasets/"
#: a data set's split names, as the data stage names them; other splits are left out (and said so)
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


def is_saved_dataset(path: Path) -> bool:
    """A folder written by Dataset.save_to_disk or DatasetDict.save_to_disk."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def data_settings(data: Any) -> dict[str, str] | None:
    """The data.train / data.validation / data.test settings that stand for `data` (a Dataset, a DatasetDict, a
    save_to_disk folder or an hf://datasets/ id), its splits written as Parquet in the cache; None for anything
    else (a file path: the data stage reads it as it is)."""
    splits = _splits_of(data)
    if splits is None:
        return None
    from ..cache import Entry, cache_root, kind_folder

    fingerprint = "-".join(f"{name}={ds._fingerprint}" for name, ds in sorted(splits.items()))
    import hashlib

    entry = Entry(kind_folder(cache_root() / "datasets") / hashlib.sha256(fingerprint.encode()).hexdigest()[:32], True)
    folder = entry.path
    if entry.open() is None or not all((folder / f"{name}.parquet").is_file() for name in splits):
        _write(splits, entry)
    return {f"data.{name}": str(folder / f"{name}.parquet") for name in splits}


def _splits_of(data: Any) -> dict | None:
    """{train|validation|test: Dataset} for `data`, or None when it is not a data set."""
    text = str(data) if isinstance(data, (str, Path)) else None
    if text is not None and not (text.startswith(HUB_PREFIX) or is_saved_dataset(Path(text))):
        return None  # a file: the data stage reads it
    try:
        import datasets
    except ImportError:
        raise DataError("reading a data set (not a file) needs the `datasets` package: pip install datasets") from None
    if text is not None:
        if text.startswith(HUB_PREFIX):
            data = _from_hub(text[len(HUB_PREFIX):])
        else:
            try:
                data = datasets.load_from_disk(text)
            except Exception as e:  # a damaged folder: several error types
                raise DataError(f"cannot read the saved data set {text}: {e}")
    if isinstance(data, datasets.Dataset):
        return {"train": data}
    if isinstance(data, (datasets.DatasetDict, dict)):
        named = {SPLIT_NAMES.get(str(k).lower()): v for k, v in data.items()}
        left = [str(k) for k in data if SPLIT_NAMES.get(str(k).lower()) is None]
        if left:
            logger.info(f"data set splits left out (only train, validation and test are used): {', '.join(left)}")
        named.pop(None, None)
        if "train" not in named:
            raise DataError(f"the data set has no train split (its splits: {', '.join(map(str, data))}): name one "
                            "'train', or pass that split as a Dataset")
        return named
    if isinstance(data, datasets.IterableDataset) or isinstance(data, datasets.IterableDatasetDict):
        raise DataError("a streaming (iterable) data set cannot be split and checked: load it without streaming=True")
    return None


def _from_hub(spec: str):
    """The hub data set NAME[:config] (datasets.load_dataset); one DataError naming it when it cannot be loaded."""
    import datasets

    name, _, config = spec.partition(":")
    if not name:
        raise DataError(f"{HUB_PREFIX}{spec}: name a data set, e.g. {HUB_PREFIX}stanfordnlp/sst2 or "
                        f"{HUB_PREFIX}glue:sst2")
    try:
        return datasets.load_dataset(name, config or None)
    except Exception as e:  # offline: ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise DataError(f"could not load the hub data set {name!r}" + (f" (config {config!r})" if config else "")
                        + f" with datasets.load_dataset: {type(e).__name__}: {first}. Offline, or without access, "
                        "download it where the hub can be reached and pass the folder Dataset.save_to_disk wrote, "
                        "or a CSV/JSONL/Parquet file")


def _write(splits: dict, entry) -> None:
    """Each split as <split>.parquet in the cache.Entry `entry`, class-label columns as their label names (a missing
    label, -1, as none); written into a temporary folder renamed onto it (its build)."""
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    bars = is_progress_bar_enabled()
    disable_progress_bar()  # a few "Map" / "Creating parquet" bars would say nothing the run's log does not
    try:
        with entry.build() as temp:
            for name, ds in splits.items():
                _named_labels(ds).to_parquet(str(temp / f"{name}.parquet"))
        logger.info(f"data set written as Parquet ({', '.join(f'{k} {len(v):,} rows' for k, v in splits.items())}): "
                    f"{entry.path}")
    finally:
        if bars:
            enable_progress_bar()


def _named_labels(ds):
    """`ds` with every ClassLabel column as the label names (strings), -1 (no label) as None."""
    import datasets

    named = {c: f.names for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    if not named:
        return ds

    def to_names(batch):
        return {c: [names[v] if v is not None and 0 <= v < len(names) else None for v in batch[c]]
                for c, names in named.items()}

    features = ds.features.copy()
    for c in named:
        features[c] = datasets.Value("string")
    return ds.map(to_names, batched=True, features=features, load_from_cache_file=False, desc=None)
