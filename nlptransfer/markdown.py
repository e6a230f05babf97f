"""Markdown pieces shared by the model card, the transfer report and the strategy comparison."""
from __future__ import annotations


def cell(value) -> str:
    """A table cell: the value as text, with pipes escaped and line breaks flattened so the row stays one row."""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])
