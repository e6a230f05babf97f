"""The data stage's types: what to read (DataSpec), what came out (Splits), and what happened (DataReport)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataSpec:
    """Which files to read and how; None means detect or infer."""

    train: str
    validation: str | None = None
    test: str | None = None
    format: str | None = None  #: csv | tsv | jsonl | parquet; None = from the extension
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    header: bool | None = None
    encoding: str | None = None
    delimiter: str | None = None
    labels: tuple[str, ...] | None = None  #: the label order; labels outside it are a problem
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    drop_invalid: bool = False  #: drop and count invalid rows instead of failing
    seed: int = 42
    join_with: str = "\n"  #: separator when several text columns are joined
    purpose: str = "train"  #: train | evaluate (an evaluation file may hold one class)


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
