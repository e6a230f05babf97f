"""Markdown pieces shared by the model card, the transfer report and the strategy comparison. Every string that
comes from a user (labels, texts, file and model names) goes through escape(): it then shows as the text it is,
never as markup, HTML or a table break."""
from __future__ import annotations

import re

#: characters that start Markdown markup (or a table cell) inline; backslash-escaped
_MARKUP = re.compile(r"([\\`*_\[\]|#~!{}])")


def escape(text) -> str:
    """`text` as literal Markdown text on one line: markup characters backslash-escaped, <, > and & as entities
    (so no HTML tag survives), line breaks as spaces."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKUP.sub(r"\\\1", re.sub(r"[\r\n]+", " ", s))


def code(text) -> str:
    """`text` as an inline code span that no backtick in it can close (on one line)."""
    s = re.sub(r"[\r\n]+", " ", str(text))
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def fence(text: str, language: str = "") -> str:
    """`text` as a fenced code block that no line in it can close."""
    ticks = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{language}\n{text.rstrip(chr(10))}\n{ticks}"


def cell(value) -> str:
    """A table cell: the value as literal text that keeps the row one row."""
    return escape(value)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; every cell escaped."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])
