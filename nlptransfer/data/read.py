"""Read one tabular file (CSV, TSV, JSONL, Parquet) into a DataFrame of raw cells, detecting what is unsaid."""
from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import DataError
from .sniff import (DAMAGED, compression, decode, first_undecodable, open_data, open_lines, physical_lines,
                    read_delimited, read_start, sniff_delimiter, sniff_header)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
#: name endings of compressed files, looked through to tell the format (the content is told by its first bytes)
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")
#: a text file's encoding is detected on its first part of this many bytes (cut at a row's end), whatever stage reads
#: it; a later byte that encoding cannot decode is refused with its offset, never read as another encoding
SNIFF_BYTES = 8 << 20


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


def spread(count: int, k: int) -> np.ndarray:
    """Positions of at most k of `count` rows, evenly spaced over them, the first and last included (all of them
    when count <= k): a sample of a file's rows that a file sorted by its label does not fool."""
    if count <= k:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, k).round().astype(int))


def row_list(numbers: list[int]) -> str:
    """'rows 3, 9, ...': the first eight row numbers of a problem or hint, and whether there are more."""
    shown = ", ".join(map(str, numbers[:8]))
    return f"rows {shown}{' ...' if len(numbers) > 8 else ''}"


def refuse_same_file(input_path: str | Path, output_path: str | Path) -> None:
    """DataError when writing `output_path` would replace `input_path` (the same file, by any path or link)."""
    source, out = Path(input_path), Path(output_path)
    if source.exists() and out.exists() and os.path.samefile(source, out):
        raise DataError(f"the output {out} is the input file {source}: writing the predictions would replace it; "
                        "write them to another file")


def larger_than(path: Path, size: int) -> bool:
    """True when the file's content is larger than `size` bytes (a compressed file's once decompressed: read up to
    there)."""
    if path.stat().st_size > size:
        return True
    if compression(path) is None:
        return False
    try:
        with open_data(path) as f:
            while size >= 0 and (block := f.read(min(size + 1, 1 << 20))):
                size -= len(block)
    except DAMAGED:
        return False  # reading it says what is wrong
    return size < 0


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in COMPRESSED:
        suffix = Path(path.stem).suffix.lower()
    fmt = FORMATS.get(suffix)
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


def _read_jsonl(text: str, path: Path, first_line: int = 1) -> pd.DataFrame:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of objects
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise DataError(f"cannot parse {path} as JSON: {e}")
        bad = [i + 1 for i, r in enumerate(records) if not isinstance(r, dict)]
    else:
        records, bad = [], []
        for number, line in enumerate(text.split("\n"), first_line):  # not splitlines: JSON strings may hold U+2028
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
    text, used = _decode_whole(read_start(path, -1, encoding), path, encoding)
    reasons = {"encoding": used.reason} if not encoding else {}
    if fmt == "jsonl":
        return Table(_read_jsonl(text, path), str(path), fmt, used.value, True, reasons=reasons)
    if fmt not in DELIMITERS and not delimiter:
        raise DataError(f"unknown data.format '{fmt}': use csv, tsv, jsonl or parquet")
    table = _read_delimited(text, path, delimiter, DELIMITERS.get(fmt, ","), header)
    table.format, table.encoding = fmt, used.value
    table.reasons = {**reasons, **table.reasons}
    return table


def _decode_whole(raw: bytes, path: Path, encoding: str | None) -> tuple[str, object]:
    """A whole file's text, its encoding detected on its first SNIFF_BYTES as iter_table detects it (sniff.decode)."""
    wide = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if encoding or wide or len(raw) <= SNIFF_BYTES:
        return decode(raw, path, encoding)
    start = raw[:SNIFF_BYTES]
    _, used = decode(_rows_only(start) or start, path, None)
    try:
        return raw.decode(used.value).removeprefix("\ufeff"), used
    except UnicodeDecodeError as e:
        raise DataError(undecodable(path, used, e.start, e.object[e.start:e.end])) from None


def undecodable(path: Path, used, offset: int, bad: bytes) -> str:
    """The message for a byte past a file's first part that the encoding found there cannot decode."""
    return (f"{path}: the byte at offset {offset:,} (0x{bad.hex()}) cannot be read as {used.value}, the encoding of "
            f"the file's first part ({used.reason}): the encoding is detected once, on the first {SNIFF_BYTES >> 20} "
            "MB; set data.encoding to the file's encoding (e.g. latin-1), or fix the bytes there")


def iter_table(path: str | Path, format: str | None = None, header: bool | None = None,
               encoding: str | None = None, delimiter: str | None = None, rows: int = 50_000,
               sniff_bytes: int = SNIFF_BYTES) -> Iterator[Table]:
    """The file as Tables of at most `rows` rows each, read as it goes (memory bounded by a chunk, not the file):
    Parquet by record batches; CSV/TSV/JSONL with the encoding, delimiter, quoting and header `read_table` finds in
    the file's first `sniff_bytes` (a file no larger is read whole, exactly as `read_table` reads it). Every chunk
    has the first one's columns; `lines` is not counted."""
    path = Path(path)
    fmt = detect_format(path, format)
    raw = b""
    if fmt != "parquet" and path.is_file() and (path.stat().st_size > sniff_bytes or compression(path)):
        raw = read_start(path, sniff_bytes + 1, encoding)  # a compressed file's content may be small: read it whole
    if len(raw) > sniff_bytes:
        raw = _rows_only(raw[:sniff_bytes]) or raw[:sniff_bytes]
        wide = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (encoding or "").lower().startswith("utf-16")
        text, used = ("", None) if wide else decode(raw, path, encoding)  # UTF-16 (two bytes a newline): read whole
        if used is not None and not (fmt == "jsonl" and text.lstrip().startswith("[")):  # a JSON array is read whole
            yield from _iter_text_file(path, fmt, text, used, header, delimiter, rows)
            return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
            for batch in batches:
                yield Table(batch.to_pandas(), str(path), fmt, None, True)
            return
        except FileNotFoundError:
            pass  # read_table says what is wrong
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"cannot read {path} as Parquet: {e}")
    table = read_table(path, format, header, encoding, delimiter)
    for start in range(0, max(len(table.frame), 1), rows):
        yield dataclasses.replace(table, frame=table.frame.iloc[start:start + rows].reset_index(drop=True))


def _rows_only(raw: bytes) -> bytes:
    """`raw` cut after its last line break outside double quotes (an even number of quote characters before it), so
    a quoted field over several lines is not cut in two; after its last line break when there is none such (a file
    whose quotes delimit nothing)."""
    end = raw.rfind(b"\n") + 1
    cut, quotes = end, raw.count(b'"', 0, end)
    while cut > 0 and quotes % 2:
        start = raw.rfind(b"\n", 0, cut - 1) + 1
        quotes -= raw.count(b'"', start, cut)
        cut = start
    return raw[:cut] if cut > 0 else raw[:end]


def _iter_text_file(path: Path, fmt: str, text: str, used, header: bool | None, delimiter: str | None,
                    rows: int) -> Iterator[Table]:
    """A large CSV/TSV/JSONL file in chunks, read as its first part `text` (decoded as `used` says) was read."""
    reasons = {"encoding": used.reason}
    try:
        if fmt == "jsonl":
            with io.TextIOWrapper(open_lines(path), encoding=used.value, errors="strict", newline="\n") as f:
                number = 1
                while lines := list(itertools.islice(f, rows)):
                    frame = _read_jsonl("".join(lines), path, number)
                    number += len(lines)
                    yield Table(frame, str(path), fmt, used.value, True, reasons=reasons)
            return
        if fmt not in DELIMITERS and not delimiter:
            raise DataError(f"unknown data.format '{fmt}': use csv, tsv, jsonl or parquet")
        first = _read_delimited(text, path, delimiter, DELIMITERS.get(fmt, ","), header)
        columns = list(first.frame.columns)
        data = open_lines(path)
        chunks = pd.read_csv(data, sep=first.delimiter, header=None, dtype=str, keep_default_na=False, na_filter=False,
                             skip_blank_lines=True, quotechar='"', encoding=used.value, chunksize=rows,
                             quoting=csv.QUOTE_NONE if first.quoting == "none" else csv.QUOTE_MINIMAL,
                             skiprows=1 if first.header else 0, engine="python" if len(first.delimiter) > 1 else "c")
        with data:
            for frame in chunks:
                if frame.shape[1] != len(columns):
                    raise DataError(f"{path}: rows with {frame.shape[1]} fields where the file's first part has "
                                    f"{len(columns)}; check quoting, or set data.delimiter")
                frame.columns = columns
                yield Table(frame, str(path), fmt, used.value, first.header, first.delimiter,
                            {**reasons, **first.reasons}, first.quoting)
    except UnicodeDecodeError as e:
        offset, bad = first_undecodable(path, used.value) or (None, e.object[e.start:e.end])
        raise DataError(undecodable(path, used, offset, bad) if offset is not None else
                        f"cannot decode {path} as {used.value} past its first part ({e}); set data.encoding") from None
    except pd.errors.ParserError as e:
        raise DataError(f"cannot parse {path} as {fmt.upper()}: {e}; check quoting, or set data.delimiter")
    except DAMAGED as e:  # a compressed file cut short or damaged past its first part
        raise DataError(f"cannot read {path}: {e}") from None


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
