"""The data stage's types: what to read (DataSpec), what came out (Splits), and what happened (DataReport)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .read import row_list

#: a row's label id for a task it has no label for (multi-task): the loss and the metrics skip it
MISSING = -100
#: characters a text keeps, at most: longer texts are cut to it before tokenizing (and counted), so one long line
#: cannot exhaust memory; far beyond the longest window a run reads (512 tokens), with room for long-document chunking
MAX_TEXT_CHARS = 100_000


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
    #: multi-task: two or more label columns, one task (and one head) each; a row may lack some of its labels
    label_columns: list[str] | None = None
    #: multi-task: the kind of a label column's task ({topics: multi_label}: its cells are lists of labels); a
    #: column not named here is single_label
    task_kinds: dict[str, str] | None = None
    #: task multi_label (or a multi_label column of task_kinds): what joins a cell's labels (`billing,cancellation`);
    #: None = inferred among , ; | (per column)
    label_separator: str | None = None
    header: bool | None = None  #: False for files without a header row; None = detected
    encoding: str | None = None  #: None = detected (UTF-8, BOM, legacy encodings)
    delimiter: str | None = None  #: None = by format
    labels: list[str] | None = None  #: label order (ordered sentiment: negative..positive); labels outside it are a problem
    val_fraction: float = 0.1  #: validation share of train when no validation file
    test_fraction: float = 0.1  #: test share of train when no test file
    drop_invalid: bool = False  #: drop (and count) rows with empty text, missing label or train/test duplicates instead of failing
    max_length: int | None = None  #: tokens per text; None = the model's limit (capped at 512)
    join_with: str = "\n"  #: separator between the texts of several text columns
    label_map: dict[str, str | None] | None = None  #: rename or merge labels ({old: new}); {old: null} drops its rows
    label_bins: dict[str, list[float]] | None = None  #: numeric labels to classes by [low, high] ranges, inclusive
    max_drop_fraction: float = 0.5  #: drop_invalid refuses to drop more than this share of a split's rows
    allow_leaks: bool = False  #: let data.text_columns join a column that gives the label away
    slice_columns: list[str] | None = None  #: columns to report metrics per value of (accuracy, macro-F1, recall)
    #: keep what the data stage and tokenization made in the cache ($NLPTRANSFER_CACHE, else ~/.cache/nlptransfer),
    #: keyed by the files' bytes and these settings: a second run over the same files skips both
    cache: bool = True


class LabelMap:
    """Label names in id order: `id("positive") -> 1`, `name(1) -> "positive"`; and the task kind they are labels of
    (single_label: one per row; multi_label: any number per row, each on at or above its threshold)."""

    def __init__(self, names, kind: str = "single_label", thresholds=None, separator: str | None = None):
        self.names = tuple(str(n) for n in names)
        self._ids = {n: i for i, n in enumerate(self.names)}
        self.kind = kind
        #: multi_label: each label's decision threshold, in id order (None: 0.5 each, not yet tuned)
        self.thresholds = None if thresholds is None else tuple(float(t) for t in thresholds)
        #: multi_label: what joins a row's labels in a cell (the separator the run read, "," for label columns)
        self.separator = separator

    def with_thresholds(self, thresholds) -> "LabelMap":
        """The same labels with these thresholds (one per label, in id order)."""
        return LabelMap(self.names, self.kind, thresholds, self.separator)

    def id(self, name) -> int:
        return self._ids[str(name)]

    def name(self, index: int) -> str:
        return self.names[int(index)]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __getitem__(self, index: int) -> str:
        return self.names[index]

    def __contains__(self, name) -> bool:
        return str(name) in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMap) and other.names == self.names and other.kind == self.kind

    def __repr__(self) -> str:
        return f"LabelMap({list(self.names)})" if self.kind == "single_label" else \
            f"LabelMap({list(self.names)}, kind={self.kind!r})"

    def to_dict(self) -> dict:
        """The map as saved in labels.json (transformers' id2label/label2id shape; a multi_label map's kind,
        separator and thresholds beside them)."""
        data = {"id2label": {str(i): n for i, n in enumerate(self.names)},
                "label2id": {n: i for i, n in enumerate(self.names)}}
        if self.kind != "single_label":
            data["kind"] = self.kind
            data["separator"] = self.separator
            if self.thresholds is not None:
                data["thresholds"] = dict(zip(self.names, self.thresholds))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "LabelMap":
        id2label = data["id2label"]
        names = [id2label[str(i)] for i in range(len(id2label))]
        kind, thresholds, separator = data.get("kind", "single_label"), data.get("thresholds"), data.get("separator")
        if kind not in ("single_label", "multi_label"):
            raise ValueError(f"its label kind {str(kind)[:40]!r} is none this version reads")
        if thresholds is not None:
            if not isinstance(thresholds, dict) or set(thresholds) != set(names) or not all(
                    isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds.values()):
                raise ValueError("its thresholds are not one number in [0, 1] per label")
            thresholds = [float(thresholds[n]) for n in names]
        if separator is not None and not (isinstance(separator, str) and 0 < len(separator) <= 8):
            raise ValueError("its label separator is not a short text")
        return cls(names, kind, thresholds, separator)


def labels_json(label_map: LabelMap, tasks: dict[str, LabelMap] | None = None) -> dict:
    """What labels.json holds: the label map (a multi-task run's first task's, so a reader of one label map reads
    that), and for a multi-task run every task's map under "tasks", in order."""
    data = label_map.to_dict()
    if tasks:
        data["tasks"] = {task: m.to_dict() for task, m in tasks.items()}
    return data


def tasks_from_json(data: dict) -> dict[str, LabelMap] | None:
    """A multi-task run's task label maps from its labels.json (None for a single-task run)."""
    tasks = data.get("tasks")
    return {task: LabelMap.from_dict(m) for task, m in tasks.items()} if tasks else None


@dataclass
class LabelledTexts:
    """One split: texts and their label ids (and the 1-based data row each came from). Multi-task: each row's labels
    are a list, one id per task in the order of Splits.tasks, MISSING where the row has none for that task."""

    texts: list[str]
    labels: list | None  #: None: texts without labels (a training file for zero_shot)
    rows: list[int] = field(default_factory=list)
    slices: dict[str, list[str]] = field(default_factory=dict)  #: column -> each row's value (data.slice_columns)

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
    leaks: list = field(default_factory=list)  #: columns that give the label away (see data.checks)
    hints: list = field(default_factory=list)  #: what a setting could do better (numeric labels...)
    #: multi-label: split -> {number of labels: rows holding that many}
    labels_per_text: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  #: what stops a run (filled when the check fails)
    #: multi-task: task -> {"class_balance": {split: {label: rows}}, "missing": {split: rows without its label}}, and
    #: a multi-label task's "labels_per_text" ({split: {number of labels: rows}})
    tasks: dict = field(default_factory=dict)

    def drop(self, split: str, reason: str, count: int) -> None:
        if count:
            bucket = self.dropped.setdefault(split, {})
            bucket[reason] = bucket.get(reason, 0) + count

    def to_dict(self) -> dict:
        return {"files": self.files, "inferred": self.inferred, "dropped": self.dropped,
                "rows_used": self.rows_used, "class_balance": self.class_balance, "truncated": self.truncated,
                "leaks": self.leaks, "hints": self.hints, "problems": self.problems, "tasks": self.tasks,
                **({"labels_per_text": self.labels_per_text} if self.labels_per_text else {})}

    def rows_before(self, split: str) -> int:
        """Rows of `split` before any was dropped: its file's rows (train: before validation and test were carved)."""
        read = self.files.get(split, {}).get("rows_read")
        return read if read is not None else self.rows_used.get(split, 0) + sum(self.dropped.get(split, {}).values())

    def describe(self) -> list[str]:
        """Everything the report says, for a person: how each file was read and why, what was inferred and why,
        rows used and dropped, class balance, truncations, leaks, hints and problems."""
        lines = []
        for split, info in self.files.items():
            if info.get("made_from"):
                lines.append(f"{split}: carved from {info['made_from']} ({info['fraction']:g}, seed {info['seed']})")
                continue
            how = [info.get("format")] + [f"{k} {info[k]!r}" for k in ("encoding", "delimiter") if info.get(k)]
            how.append("header row" if info.get("header") else "no header row")
            lines.append(f"{split}: {info['path']}: {info['rows_read']:,} rows read ({', '.join(map(str, how))})")
            for key, why in info.get("reasons", {}).items():
                lines.append(f"  {key}: {why}")
            if info.get("texts_cut"):
                cut = info["texts_cut"]
                lines.append(f"  {cut['count']} texts longer than {MAX_TEXT_CHARS:,} characters cut to them before "
                             f"tokenizing ({row_list(cut['rows'])})")
        for key, value in self.inferred.items():
            chosen = value.get("column") or ", ".join(value.get("columns", []))
            lines.append(f"{key.replace('_', ' ')}: {chosen!r} (inferred: {value['reason']})")
        lines += self.summary_lines()
        if self.truncated:
            lines.append("texts cut to the token limit: " + ", ".join(f"{k} {v}" for k, v in self.truncated.items()))
        return lines

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the run's console summary."""
        lines = []
        for split, n in self.rows_used.items():
            balance = ", ".join(f"{k} {v}" for k, v in self.class_balance.get(split, {}).items())
            lines.append(f"{split}: {n} rows" + (f" ({balance})" if balance else ""))
            if split in self.labels_per_text:
                lines.append("  labels per text: " + ", ".join(f"{k}: {v}" for k, v in
                                                                 self.labels_per_text[split].items()))
            for task, info in self.tasks.items():
                counts = ", ".join(f"{k} {v}" for k, v in info["class_balance"].get(split, {}).items())
                missing = info["missing"].get(split, 0)
                lines.append(f"  {task}: {counts}" + (f"; {missing} row(s) without a {task} label" if missing else ""))
                if split in info.get("labels_per_text", {}):
                    lines.append(f"  {task}, labels per text: " + ", ".join(
                        f"{k}: {v}" for k, v in info["labels_per_text"][split].items()))
        for split, reasons in self.dropped.items():
            total = self.rows_before(split)
            for reason, count in reasons.items():
                share = f" ({count / total:.1%} of {total:,})" if total else ""
                lines.append(f"dropped {count} {split} rows{share}: {reason}")
        lines += [f"warning: {leak['column']!r} gives the {'label' if 'task' not in leak else repr(leak['task']) + ' label'}"
                  f" away: {leak['why']}" for leak in self.leaks]
        lines += [f"hint: {hint}" for hint in self.hints]
        return lines


@dataclass
class Splits:
    """Train, validation and test splits with one label map and the report of how they were made. Multi-task: `tasks`
    holds each task's label map in order (task name = its label column), and `label_map` is the first task's."""

    train: LabelledTexts
    validation: LabelledTexts | None
    test: LabelledTexts | None
    label_map: LabelMap
    report: DataReport
    tasks: dict[str, LabelMap] | None = None

    def task_split(self, task: str) -> "Splits":
        """One task of a multi-task Splits as single-task splits: the rows labelled for it (the same rows, in the
        same order, the multi-task run trained and was tested on), its labels and label map."""
        index = list(self.tasks).index(task)

        def part(split: LabelledTexts | None) -> LabelledTexts | None:
            if split is None:
                return None
            keep = [i for i, row in enumerate(split.labels) if row[index] != MISSING]
            if not keep and split is not self.train:
                return None  # no validation (or test) row has this task's label
            return LabelledTexts([split.texts[i] for i in keep], [split.labels[i][index] for i in keep],
                                 [split.rows[i] for i in keep] if split.rows else [],
                                 {k: [v[i] for i in keep] for k, v in split.slices.items()})

        return Splits(part(self.train), part(self.validation), part(self.test), self.tasks[task], self.report)
