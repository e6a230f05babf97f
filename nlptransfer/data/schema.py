"""The data stage's types: what to read (DataSpec), what came out (Splits), and what happened (DataReport)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataSpec:
    """Where the texts come from and how to read and split them: the recipe's `data` section. None means detect
    or infer (and say what was chosen, and why)."""

    train: str | None = None  #: training file (or the only file); `--data` sets it
    validation: str | None = None  #: separate validation file; else split from train
    test: str | None = None  #: separate test file; else split from train
    format: str | None = None  #: csv | tsv | jsonl | parquet; None = from the file extension
    text_columns: list[str] | None = None  #: one or more text columns (joined); None = inferred
    label_column: str | None = None  #: None = inferred
    header: bool | None = None  #: False for files without a header row; None = detected
    encoding: str | None = None  #: None = detected (UTF-8, BOM, legacy encodings)
    delimiter: str | None = None  #: None = by format
    labels: list[str] | None = None  #: label order (ordered sentiment: negative..positive); labels outside it are a problem
    val_fraction: float = 0.1  #: validation share of train when no validation file
    test_fraction: float = 0.1  #: test share of train when no test file
    drop_invalid: bool = False  #: drop (and count) rows with empty text, missing label or train/test duplicates instead of failing
    max_length: int | None = None  #: tokens per text; None = the model's limit (capped at 512)
    join_with: str = "\n"  #: separator between the texts of several text columns


class LabelMap:
    """Label names in id order: `id("positive") -> 1`, `name(1) -> "positive"`."""

    def __init__(self, names):
        self.names = tuple(str(n) for n in names)
        self._ids = {n: i for i, n in enumerate(self.names)}

    def id(self, name) -> int:
        return self._ids[str(name)]

    def name(self, index: int) -> str:
        return self.names[int(index)]

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name) -> bool:
        return str(name) in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMap) and other.names == self.names

    def __repr__(self) -> str:
        return f"LabelMap({list(self.names)})"

    def to_dict(self) -> dict:
        """The map as saved in labels.json (transformers' id2label/label2id shape)."""
        return {"id2label": {str(i): n for i, n in enumerate(self.names)},
                "label2id": {n: i for i, n in enumerate(self.names)}}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelMap":
        id2label = data["id2label"]
        return cls(id2label[str(i)] for i in range(len(id2label)))


@dataclass
class LabelledTexts:
    """One split: texts and their label ids (and the 1-based data row each came from)."""

    texts: list[str]
    labels: list[int]
    rows: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class DataReport:
    """What was read, inferred, dropped (by reason), used and truncated; saved as data_report.json."""

    files: dict = field(default_factory=dict)
    inferred: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    rows_used: dict = field(default_factory=dict)
    class_balance: dict = field(default_factory=dict)
    truncated: dict = field(default_factory=dict)

    def drop(self, split: str, reason: str, count: int) -> None:
        if count:
            bucket = self.dropped.setdefault(split, {})
            bucket[reason] = bucket.get(reason, 0) + count

    def to_dict(self) -> dict:
        return {"files": self.files, "inferred": self.inferred, "dropped": self.dropped,
                "rows_used": self.rows_used, "class_balance": self.class_balance, "truncated": self.truncated}

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the run's console summary."""
        lines = []
        for split, n in self.rows_used.items():
            balance = ", ".join(f"{k} {v}" for k, v in self.class_balance.get(split, {}).items())
            lines.append(f"{split}: {n} rows ({balance})")
        for split, reasons in self.dropped.items():
            for reason, count in reasons.items():
                lines.append(f"dropped {count} {split} rows: {reason}")
        return lines


@dataclass
class Splits:
    """Train, validation and test splits with one label map and the report of how they were made."""

    train: LabelledTexts
    validation: LabelledTexts | None
    test: LabelledTexts | None
    label_map: LabelMap
    report: DataReport
