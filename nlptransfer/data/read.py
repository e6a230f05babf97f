"""Read one tabular file (CSV, TSV, JSONL, Parquet) into a DataFrame of raw cells, detecting what is unsaid."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from .sniff import decode, physical_lines, read_delimited, sniff_delimiter, sniff_header

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = {"csv": ",", "tsv": "\t"}


@dataclass
class Table:
    """A file's rows as a DataFrame, with how it was read (format, encoding, delimiter, quoting, header) and why,
    for the report."""

    frame: pd.DataFrame
    path: str
    format: str
    encoding: str | None
    header: bool
    delimiter: str | None = None
    #: why each setting was chosen: encoding, delimiter, quoting, header (detected ones only)
    reasons: dict = field(default_factory=dict)
    quoting: str = "standard"  #: standard | none (quote characters read as plain characters)
    lines: int | None = None  #: physical lines with content (delimited files)

    def info(self) -> dict:
        info = {"path": self.path, "format": self.format, "encoding": self.encoding, "header": self.header,
                "rows_read": len(self.frame)}
        if self.delimiter is not None:
            info.update(delimiter=self.delimiter, quoting=self.quoting, lines=self.lines)
        if self.reasons:
            info["reasons"] = dict(self.reasons)
        return info


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot tell the format of {path} from its extension '{path.suffix}': "
                        f"set data.format to one of csv, tsv, jsonl, parquet")
    return fmt


def _read_delimited(text: str, path: Path, delimiter: str | None, default: str, header: bool | None
                    ) -> Table:
    reasons = {}
    if delimiter is None:
        guess = sniff_delimiter(text, default)
        delimiter, reasons["delimiter"] = guess.value, guess.reason
    frame, quoting = read_delimited(text, path, delimiter)
    if quoting.value == "none" or "inside quoted" in quoting.reason:
        reasons["quoting"] = quoting.reason
    if header is None and len(frame):
        guess = sniff_header(list(frame.iloc[0]), frame.iloc[1:])
        header, reasons["header"] = guess.value, guess.reason
    if header and len(frame):
        names = [str(c).strip() or f"column_{j + 1}" for j, c in enumerate(frame.iloc[0])]
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
    else:
        frame.columns = [f"column_{j + 1}" for j in range(frame.shape[1])]
    lines = len(physical_lines(text))
    return Table(frame, str(path), "", None, bool(header), delimiter, reasons, quoting.value, lines)


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of objects
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise DataError(f"cannot parse {path} as JSON: {e}")
        bad = [i + 1 for i, r in enumerate(records) if not isinstance(r, dict)]
    else:
        records, bad = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise DataError(f"{path}: {len(bad)} lines are not JSON objects (lines {shown}); "
                        f"JSONL needs one object per line, like {{\"text\": \"...\", \"label\": \"...\"}}")
    return pd.DataFrame(records, dtype=object)  # values as JSON gave them: 1 stays 1, a missing one None


def read_table(path: str | Path, format: str | None = None, header: bool | None = None,
               encoding: str | None = None, delimiter: str | None = None) -> Table:
    """Read a CSV/TSV/JSONL/Parquet file; cells stay raw (strings for CSV/TSV, JSON values otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    fmt = detect_format(path, format)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"cannot read {path} as Parquet: {e}")
        return Table(frame, str(path), fmt, None, True)
    text, used = decode(path.read_bytes(), path, encoding)
    reasons = {"encoding": used.reason} if not encoding else {}
    if fmt == "jsonl":
        return Table(_read_jsonl(text, path), str(path), fmt, used.value, True, reasons=reasons)
    if fmt not in DELIMITERS and not delimiter:
        raise DataError(f"unknown data.format '{fmt}': use csv, tsv, jsonl or parquet")
    table = _read_delimited(text, path, delimiter, DELIMITERS.get(fmt, ","), header)
    table.format, table.encoding = fmt, used.value
    table.reasons = {**reasons, **table.reasons}
    return table


def cell_text(value) -> str:
    """A cell as text: missing values (None, NaN) become the empty string."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)
