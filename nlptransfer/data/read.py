"""Read one tabular file (CSV, TSV, JSONL, Parquet) into a DataFrame of raw cells, detecting what is unsaid."""
from __future__ import annotations

import codecs
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
#: column names that mark a first row as a header (lower-cased)
HEADER_WORDS = {"text", "texts", "review", "reviews", "review_text", "sentence", "sentence1", "content", "body",
                "comment", "comments", "message", "title", "summary", "document", "tweet", "description",
                "label", "labels", "sentiment", "class", "category", "target", "y", "rating", "stars", "topic",
                "id", "idx", "score", "polarity", "intent", "headline"}
_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*$")
#: the non-letters Western European cp1252 text holds: curly quotes, dashes, ellipsis, euro, guillemets, degree, pound
_WESTERN_MARKS = set("\u201c\u201d\u2018\u2019\u2013\u2014\u2026\u20ac\xab\xbb\xb0\xa3")


@dataclass
class Table:
    """A file's rows as a DataFrame, with how it was read (format, encoding, header) for the report."""

    frame: pd.DataFrame
    path: str
    format: str
    encoding: str | None
    header: bool

    def info(self) -> dict:
        return {"path": self.path, "format": self.format, "encoding": self.encoding, "header": self.header,
                "rows_read": len(self.frame)}


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot tell the format of {path} from its extension '{path.suffix}': "
                        f"set data.format to one of csv, tsv, jsonl, parquet")
    return fmt


def _reads_as_western(text: str) -> bool:
    """Whether cp1252-decoded text looks like Western European text: few non-ASCII characters, all letters."""
    extra = [c for c in text if ord(c) > 127]
    letters = sum(c.isalpha() for c in text)
    return len(extra) <= 0.3 * letters and all(c.isalpha() or c in _WESTERN_MARKS for c in extra)


def decode(raw: bytes, path: Path, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding used: the given one, a BOM's, UTF-8, or the detected legacy one."""
    if encoding:
        try:
            return raw.decode(encoding).removeprefix("\ufeff"), encoding  # a BOM is no part of the first cell
        except (UnicodeDecodeError, LookupError) as e:
            raise DataError(f"cannot decode {path} as {encoding}: {e}; fix data.encoding or leave it unset to detect")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:  # detectors often misname short Latin-1/cp1252 text (café -> cp1257 'crčme'), so try it first
        text = raw.decode("cp1252")
        if _reads_as_western(text):
            return text, "cp1252"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    name = best.encoding if best is not None else "cp1252"
    try:
        return raw.decode(name), name
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"  # every byte string decodes; the report says so


def _looks_like_header(first: list[str], rest: pd.DataFrame) -> bool:
    """A first row is a header when it names a known column, or is text above a numeric column."""
    cells = [str(c).strip() for c in first]
    if any(c.lower() in HEADER_WORDS for c in cells):
        return True
    if len(rest) == 0 or len(set(cells)) < len(cells):
        return False
    for j, cell in enumerate(cells):
        values = rest.iloc[:200, j].astype(str)
        numeric = values.str.match(_NUMBER).mean() if len(values) else 0.0
        if numeric >= 0.9 and not _NUMBER.match(cell):
            return True
    return False


def _read_delimited(text: str, path: Path, sep: str, header: bool | None) -> tuple[pd.DataFrame, bool]:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=True, quotechar='"')
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), bool(header)
    except pd.errors.ParserError as e:
        raise DataError(f"cannot parse {path} as {'TSV' if sep == chr(9) else 'CSV'}: {e}; "
                        f"check quoting, or set data.format / data.delimiter")
    if header is None:
        header = len(frame) > 0 and _looks_like_header(list(frame.iloc[0]), frame.iloc[1:])
    if header:
        names = [str(c).strip() or f"column_{j + 1}" for j, c in enumerate(frame.iloc[0])]
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
    else:
        frame.columns = [f"column_{j + 1}" for j in range(frame.shape[1])]
    return frame, bool(header)


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
    if fmt == "jsonl":
        return Table(_read_jsonl(text, path), str(path), fmt, used, True)
    if fmt not in DELIMITERS and not delimiter:
        raise DataError(f"unknown data.format '{fmt}': use csv, tsv, jsonl or parquet")
    frame, has_header = _read_delimited(text, path, delimiter or DELIMITERS[fmt], header)
    return Table(frame, str(path), fmt, used, has_header)


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
