"""What a delimited text file does not say, guessed as a careful person would, each guess with its reason: the
encoding, the delimiter, whether quote characters delimit fields, and whether the first row is a header."""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import lzma
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from ..errors import DataError

#: delimiters tried, in order of preference when several split the lines equally well
CANDIDATES = (",", "\t", ";", "|", "@", ":")
NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", "@": "@", ":": "colon"}
#: column names that mark a first row as a header (lower-cased)
HEADER_WORDS = {"text", "texts", "review", "reviews", "review_text", "sentence", "sentence1", "content", "body",
                "comment", "comments", "message", "title", "summary", "document", "tweet", "description",
                "label", "labels", "sentiment", "class", "category", "target", "y", "rating", "stars", "topic",
                "id", "idx", "score", "polarity", "intent", "headline"}
_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*$")
_NAME_LIKE = re.compile(r"^[A-Za-z_][\w .()-]{0,39}$")
#: the non-letters Western European cp1252 text holds: curly quotes, dashes, ellipsis, euro, guillemets, degree, pound...
_WESTERN_MARKS = set("\u201c\u201d\u201e\u2018\u2019\u201a\u2013\u2014\u2026\u20ac\xab\xbb\xb0\xa3\xa7\xa9\xae"
                     "\xb1\xb2\xb3\xb5\xb7\xbc\xbd\xbe\xd7\xf7\xa2\xa5\xaa\xba\xbf\xa1\xa0\u2122\u2022")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def physical_lines(text: str) -> list[str]:
    """The non-empty lines of `text`, broken where a CSV reader breaks them (str.splitlines also breaks at form
    feeds and Unicode separators, which can sit inside a text)."""
    return [line for line in _LINE_BREAK.split(text) if line.strip()]


@dataclass(frozen=True)
class Guess:
    """One thing detected, and why."""

    value: object
    reason: str


# ---------------------------------------------------------------- compressed and binary files

#: compressions told by a file's first bytes (magic numbers), read as they go whatever the file's name
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"),
         (b"\x28\xb5\x2f\xfd", "zstd"))
_BINARY = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
           (b"%PDF", "a PDF document"), (b"PAR1", "a Parquet file"), (b"\x7fELF", "a program"),
           (b"ARROW1", "an Arrow file"), (b"SQLite format 3", "an SQLite database"))


#: what reading a damaged compressed file raises, by kind (gzip, zlib, bz2, xz, zip)
DAMAGED = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def compression(path: Path) -> str | None:
    """gzip | bz2 | xz | zip | zstd when the file's first bytes say it is compressed, else None."""
    with open(path, "rb") as f:
        head = f.read(8)
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def open_data(path: Path) -> BinaryIO:
    """The file's bytes as a stream, decompressed as they are read when its first bytes say it is compressed; a zip
    must hold one file, and zstd needs the zstandard package."""
    kind = compression(path)
    if kind in ("gzip", "bz2", "xz"):
        import bz2
        import gzip

        return {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind](path, "rb")
    if kind == "zip":
        archive = zipfile.ZipFile(path)
        files = [i for i in archive.infolist() if not i.is_dir()]
        if len(files) != 1:
            raise DataError(f"{path} is a zip archive of {len(files)} files: it must hold exactly one data file")
        return archive.open(files[0])
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{path} is zstd-compressed: pip install zstandard to read it, or decompress it "
                            "first") from None
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


#: a line (a row, unless quoted fields hold line breaks) longer than this is refused when a file is read in chunks:
#: no reader bounds the memory one line takes, and texts are cut at 100,000 characters (schema.MAX_TEXT_CHARS) anyway
MAX_LINE_BYTES = 32 << 20


class _LineBound(io.RawIOBase):
    """A file's bytes as they are read, refusing a line longer than `most` bytes (DataError naming the line)."""

    def __init__(self, source: BinaryIO, path, most: int):
        self.source, self.path, self.most, self.line, self.run = source, path, most, 1, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        block = self.source.read(len(buffer))
        if len(block) <= self.most:  # no whole line inside it can be too long: only the one it continues
            first = block.find(b"\n")
            if first >= 0 and self.run + first <= self.most:
                self.line, self.run = self.line + block.count(b"\n"), len(block) - block.rfind(b"\n") - 1
            elif first < 0:
                self.run += len(block)
            else:
                self._refuse()
        else:
            start = 0
            while (end := block.find(b"\n", start)) >= 0:
                if self.run + end - start > self.most:
                    self._refuse()
                self.line, self.run, start = self.line + 1, 0, end + 1
            self.run += len(block) - start
        if self.run > self.most:
            self._refuse()
        buffer[:len(block)] = block
        return len(block)

    def _refuse(self):
        raise DataError(f"{self.path}: line {self.line:,} is longer than {self.most >> 20} MB, more than a row needs "
                        "(texts are cut at 100,000 characters): check that it is the data file, and its quoting and "
                        "line breaks")

    def close(self) -> None:
        self.source.close()
        super().close()


def open_lines(path: Path, most: int | None = None) -> BinaryIO:
    """open_data(path) as a buffered stream that refuses a line longer than `most` bytes (MAX_LINE_BYTES)."""
    return io.BufferedReader(_LineBound(open_data(path), path, most or MAX_LINE_BYTES))


def read_start(path: Path, size: int, encoding: str | None = None) -> bytes:
    """The first `size` bytes of the file's content (decompressed), refusing a binary file: NUL bytes in a file
    neither given as nor marked UTF-16/32, or a known binary format's first bytes."""
    try:
        with open_data(path) as f:
            raw = f.read(size)
    except DAMAGED as e:
        raise DataError(f"cannot read {path}: {e}") from None
    refuse_binary(raw, path, encoding)
    return raw


def refuse_binary(raw: bytes, path, encoding: str | None) -> None:
    """DataError when `raw` (a file's first bytes) is not text."""
    known = next((what for magic, what in _BINARY if raw.startswith(magic)), None)
    wide = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (encoding or "").lower().startswith(
        ("utf-16", "utf16", "utf-32", "utf32"))
    nul = raw.find(b"\x00", 0, 1 << 16)
    if known or (nul >= 0 and not wide):
        what = known or f"binary (a NUL byte at offset {nul:,})"
        raise DataError(f"{path} is {what}, not a text file of CSV/TSV/JSONL: give the data file itself"
                        + (" (or set data.format=parquet)" if known == "a Parquet file" else ""))


def first_undecodable(path: Path, encoding: str) -> tuple[int, bytes] | None:
    """The byte offset (in the file's content) and the bytes of the first sequence `encoding` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open_data(path) as f:
        while block := f.read(1 << 20):
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                return offset - pending + e.start, e.object[e.start:e.end]
            offset += len(block)
    pending = len(decoder.getstate()[0])
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        return offset - pending + e.start, e.object[e.start:e.end]
    return None


# ---------------------------------------------------------------- encoding

def _western_share(text: str) -> tuple[float, int]:
    """Of the non-ASCII characters of `text` read as Western European: the share that are letters or usual signs,
    and how many there are."""
    extra = [c for c in text if ord(c) > 127]
    if not extra:
        return 1.0, 0
    fine = sum(c.isalpha() or c in _WESTERN_MARKS for c in extra)
    return fine / len(extra), len(extra)


def _evidence(raw: bytes, text: str) -> str:
    high = Counter(b for b in raw if b > 127)
    shown = ", ".join(f"0x{b:02x} ({bytes([b]).decode('cp1252', 'replace')}) x{n}" for b, n in high.most_common(4))
    return f"{sum(high.values())} non-ASCII bytes ({shown}{', ...' if len(high) > 4 else ''})"


def decode(raw: bytes, path, encoding: str | None) -> tuple[str, Guess]:
    """The file's text and the encoding used (with why): the given one, a BOM's, UTF-8, Western European (Latin-1 /
    cp1252, preferred over other 8-bit code pages unless the evidence for one is strong), or the detected one."""
    if encoding:
        try:
            return raw.decode(encoding).removeprefix("\ufeff"), Guess(encoding, "given (data.encoding)")
        except (UnicodeDecodeError, LookupError) as e:
            raise DataError(f"cannot decode {path} as {encoding}: {e}; fix data.encoding or leave it unset to detect")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), Guess("utf-8-sig", "UTF-8 byte-order mark")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), Guess("utf-16", "UTF-16 byte-order mark")
    try:
        text = raw.decode("utf-8")
        extra = sum(ord(c) > 127 for c in text)
        return text, Guess("utf-8", f"valid UTF-8 ({extra} non-ASCII characters)" if extra else "ASCII only")
    except UnicodeDecodeError:
        pass
    # detectors often misname short Western text (Latin-1 read as cp1250: '£' becomes 'Ł'), so it is tried first
    cp1252_only = any(0x80 <= b <= 0x9F for b in raw)  # curly quotes, dashes, euro: cp1252, not Latin-1
    name = "cp1252" if cp1252_only else "latin-1"
    try:
        text = raw.decode(name)
    except UnicodeDecodeError:  # a byte cp1252 leaves undefined
        text, name = raw.decode("latin-1"), "latin-1"
    share, extra = _western_share(text)
    letters = sum(c.isalpha() for c in text)
    few = extra <= 0.3 * max(letters, 1)  # Western text is mostly ASCII; a non-Latin script is not
    if share >= 0.8 and few:
        return text, Guess(name, f"not UTF-8; its {_evidence(raw, text)} read as Western European letters and signs")
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None and best.encoding not in ("latin_1", "cp1252", "iso8859_1", "windows_1252"):
        try:
            other = raw.decode(best.encoding)
            other_share, _ = _letter_share(other)
            if other_share >= 0.9 and (other_share >= share + 0.1 or not few):  # strong evidence for another
                return other, Guess(best.encoding, f"not UTF-8; read as Western European only {share:.0%} of its "
                                                   f"{extra} non-ASCII characters are letters or usual signs, as "
                                                   f"{best.encoding} (charset detection) {other_share:.0%}")
        except (UnicodeDecodeError, LookupError):
            pass
    return text, Guess(name, f"not UTF-8, and no code page reads its {_evidence(raw, text)} as letters well "
                             f"({share:.0%} as Western European): read as {name}, every byte kept")


def _letter_share(text: str) -> tuple[float, int]:
    extra = [c for c in text if ord(c) > 127]
    return (sum(c.isalpha() for c in extra) / len(extra) if extra else 1.0), len(extra)


# ---------------------------------------------------------------- delimiter and quoting

def _field_counts(lines: list[str], delimiter: str, quoting: int) -> list[int]:
    """Fields per line, each line read on its own (so a lone quote cannot run into the next line)."""
    counts = []
    for line in lines:
        try:
            counts.append(len(next(csv.reader([line], delimiter=delimiter, quotechar='"', quoting=quoting), [])))
        except csv.Error:
            counts.append(0)
    return counts


def _shares(counts: list[int]) -> tuple[float, int]:
    if not counts:
        return 0.0, 1
    fields, n = Counter(counts).most_common(1)[0]
    return n / len(counts), fields


def _records(sample: str, delimiter: str) -> list[int]:
    """Fields per record of `sample` read as CSV with quotes that may span lines (its last record may be cut)."""
    try:
        rows = list(itertools.islice(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, quotechar='"'), 301))
    except csv.Error:
        return []
    return [len(r) for r in rows[:-1] if r] if len(rows) > 1 else [len(r) for r in rows if r]


def _consistency(lines: list[str], sample: str, delimiter: str) -> tuple[float, int]:
    """How consistently `delimiter` splits the sample: the share of lines (each alone, quotes read as quotes or not)
    or of records (quoted fields may span lines) with the most common field count, whichever is highest, and that
    count."""
    return max(_shares(_field_counts(lines, delimiter, csv.QUOTE_MINIMAL)),
               _shares(_field_counts(lines, delimiter, csv.QUOTE_NONE)), _shares(_records(sample, delimiter)))


def sniff_delimiter(text: str, default: str) -> Guess:
    """The delimiter that splits the first lines (or records) into the same number (2 or more) of fields most
    consistently."""
    sample = text[:200_000]
    lines = physical_lines(sample)[:300]
    scores = {d: _consistency(lines, sample, d) for d in CANDIDATES}
    usable = {d: s for d, s in scores.items() if s[1] >= 2 and s[0] >= 0.6}
    tried = ", ".join(repr(d) for d in CANDIDATES)
    if not usable:
        return Guess(default, f"no delimiter of {tried} splits the lines consistently: one column "
                              "(set data.delimiter if the file has several)")
    chosen = max(usable, key=lambda d: (round(usable[d][0], 2), d == default, -CANDIDATES.index(d)))
    share, fields = usable[chosen]
    return Guess(chosen, f"{NAMES[chosen]} splits {share:.0%} of the first lines (or records) into {fields} fields "
                         f"(tried {tried})")


def read_delimited(text: str, path, delimiter: str) -> tuple[pd.DataFrame, Guess]:
    """The file's cells (all strings, no header handling yet), and how quote characters were read: as quotes, or
    not at all when they do not delimit fields (a lone '"' in a text must not swallow the next lines)."""
    physical = physical_lines(text)
    lines = len(physical)
    kind = "TSV" if delimiter == "\t" else "CSV" if delimiter == "," else f"{NAMES.get(delimiter, delimiter)}-separated"

    def parse(quoting: int) -> pd.DataFrame:
        return pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str, keep_default_na=False,
                           na_filter=False, skip_blank_lines=True, quotechar='"', quoting=quoting,
                           engine="python" if len(delimiter) > 1 else "c")

    try:
        quoted, error = parse(csv.QUOTE_MINIMAL), None
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), Guess("standard", "empty file")
    except pd.errors.ParserError as e:
        quoted, error = None, e
    if quoted is not None and len(quoted) == lines:
        return quoted, Guess("standard", "one row per line")
    counts = Counter(_field_counts(physical, delimiter, csv.QUOTE_NONE))
    fields, consistent = counts.most_common(1)[0] if counts else (0, 0)
    odd = len(physical) - consistent  # lines that read unquoted do not have the usual number of fields
    merged = lines - len(quoted) if quoted is not None else lines
    plain = None
    if consistent >= 0.98 * len(physical) and merged > odd:  # quotes lose more lines than plain reading misreads
        try:
            plain = parse(csv.QUOTE_NONE)
        except pd.errors.ParserError:
            plain = None
    if plain is not None and len(plain) == lines:
        what = f"{lines} lines became {len(quoted)} rows" if quoted is not None else "the quoted reading failed"
        return plain, Guess("none", f'quote characters do not delimit fields here (read as quotes, {what}): read as '
                                    f'plain characters, one row per line ({odd} lines without {fields} fields)'
                            if odd else f'quote characters do not delimit fields here (read as quotes, {what}): '
                                        'read as plain characters, one row per line')
    if quoted is None:
        raise DataError(f"cannot parse {path} as {kind}: {error}; check quoting, or set data.format / data.delimiter")
    return quoted, Guess("standard", f"{lines - len(quoted)} line breaks are inside quoted fields: "
                                     f"{lines} lines make {len(quoted)} rows")


# ---------------------------------------------------------------- header

def sniff_header(first: list[str], rest: pd.DataFrame) -> Guess:
    """Whether the first row names the columns: a known column name, a name over a numeric column, or names over
    columns of repeated values that never repeat the name."""
    cells = [str(c).strip() for c in first]
    known = [c for c in cells if c.lower() in HEADER_WORDS]
    if known:
        return Guess(True, f"the first row names a usual column ({known[0]!r})")
    if len(rest) == 0 or len(set(cells)) < len(cells):
        return Guess(False, "the first row is data (no column name in it)")
    sample = rest.iloc[:500]
    for j, cell in enumerate(cells):
        values = sample.iloc[:, j].astype(str).str.strip()
        if len(values) and values.str.match(_NUMBER).mean() >= 0.9 and not _NUMBER.match(cell):
            return Guess(True, f"{cell!r} is text above a numeric column")
    for j, cell in enumerate(cells):
        values = sample.iloc[:, j].astype(str).str.strip()
        counts = values.value_counts()
        repeated = len(values) >= 10 and len(counts) <= min(50, len(values) // 3)
        if repeated and _NAME_LIKE.match(cell) and cell not in counts.index and cell.lower() not in {
                v.lower() for v in counts.index} and all(unicodedata.category(ch)[0] != "C" for ch in cell):
            return Guess(True, f"{cell!r} sits above a column of {len(counts)} repeated values and is none of them")
    return Guess(False, "the first row is data (no column name in it)")
