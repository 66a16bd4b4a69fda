"""Reading a benchmark page (docs/perf/<area>.md, docs/results/<area>.md) just enough to take numbers
from it: its title, tables (cells by column and row), text patterns, command and where it was measured.

>>> page = Page("perf/x.md", "# X\\n\\nCommand: `python -m x`\\n\\n| what | s |\\n|---|---|\\n| a | **1.5** |\\n")
>>> page.title, page.command, page.cell("s", first="a"), number("1,234.5 ms")
('X', 'python -m x', '1.5', 1234.5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property


class Missing(LookupError):
    """A page lacks what a summary row reads."""


def _clean(cell: str) -> str:
    return cell.replace("**", "").replace("\\|", "|").strip()


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Page:
    """One detailed page, parsed just enough to read numbers from it."""

    rel: str  # path under docs/, e.g. "perf/train_step.md"
    text: str

    @cached_property
    def title(self) -> str:
        for line in self.text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.rel

    @cached_property
    def tables(self) -> list[Table]:
        tables, block = [], []
        for line in self.text.splitlines() + [""]:
            if line.startswith("|"):
                block.append(line)
                continue
            if len(block) >= 2 and set(block[1].replace("|", "").strip()) <= set("-: "):
                split = [[_clean(c) for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]] for row in block]
                tables.append(Table(split[0], split[2:]))
            block = []
        return tables

    def cell(
        self,
        column: str,
        where: dict[str, str] | None = None,
        *,
        first: str | None = None,
        like: dict[str, str] | None = None,
    ) -> str:
        """The cell under ``column`` of the first row (of the first table that has one) where every
        ``where`` column equals its value, every ``like`` column contains its value and the first cell
        starts with ``first``."""
        for table in self.tables:
            if column not in table.header:
                continue
            for row in table.rows:
                cells = dict(zip(table.header, row))
                if first is not None and not row[0].startswith(first):
                    continue
                if any(cells.get(k) != v for k, v in (where or {}).items()):
                    continue
                if any(v not in cells.get(k, "") for k, v in (like or {}).items()):
                    continue
                return cells.get(column, "")
        raise Missing(f"no {column!r} cell for {first or ''} {where or ''} {like or ''}".replace("  ", " "))

    def column(self, column: str) -> list[tuple[str, str]]:
        """(first cell, value) of every row of the first table with ``column``."""
        for table in self.tables:
            if column in table.header:
                j = table.header.index(column)
                return [(row[0], row[j]) for row in table.rows if len(row) > j]
        raise Missing(f"no table with a {column!r} column")

    def search(self, pattern: str) -> re.Match:
        match = re.search(pattern, self.text, flags=re.DOTALL)
        if match is None:
            raise Missing(f"no text matching {pattern!r}")
        return match

    @cached_property
    def command(self) -> str:
        match = re.search(r"^Commands?: `([^`]+)`", self.text, flags=re.MULTILINE)
        return match.group(1) if match else ""

    @cached_property
    def measured_on(self) -> tuple[str, str]:
        """(machine, date) from ``Measured on: MACHINE; DATE.``, else the ``Machine:`` line and first date."""
        match = re.search(r"^Measured on: (.+?)\s*$", self.text, flags=re.MULTILINE)
        if match:
            text = match.group(1).rstrip(" .")
            machine, _, date = text.rpartition(";")
            return _short_machine(machine or text), date.strip() if machine else ""
        machine = re.search(r"Machine: ([^\n]+)", self.text)
        date = re.search(r"\b(20\d\d-\d\d-\d\d)\b", self.text)
        short = _short_machine(", ".join(machine.group(1).split(", ")[:2])) if machine else ""
        return short, date.group(1) if date else ""


def _short_machine(text: str) -> str:
    """The machine without parenthesised detail: the summary's column stays narrow."""
    while True:
        shorter = re.sub(r"\s*\([^()]*\)", "", text)
        if shorter == text:
            return re.sub(r"^(?:a|an) ", "", shorter.strip(" ,;"))
        text = shorter


def number(text: str) -> float:
    """The first number in ``text`` (thousands commas allowed)."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", text)
    if match is None:
        raise Missing(f"no number in {text!r}")
    return float(match.group(0).replace(",", ""))


def at_most(value: float, limit: float) -> str:
    """The verdict of a target that is an upper limit."""
    return "met" if value <= limit else "missed"


def at_least(value: float, limit: float) -> str:
    """The verdict of a target that is a lower limit."""
    return "met" if value >= limit else "missed"
