"""Output renderings shared by the inspecting commands: table, plain text, JSON, TSV, --get."""
from __future__ import annotations

import json
import os
import sys

from ..errors import UsageError
from ..values import format_get, jsonable, safe


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def colour_allowed(stream=None) -> bool:
    stream = stream or sys.stdout
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def print_json(records, many: bool) -> None:
    doc = [jsonable(r) for r in records] if many else jsonable(records[0])
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def print_get(records, fields, lookup=None) -> None:
    """One line per record, the fields tab-separated. `lookup(record, field)` may raise.

    With the default lookup a field no record has is a usage error (before anything is printed);
    a record without a field another record has (an input that failed under -k, a row kind
    without it) prints an empty value, so each record keeps its line.
    """
    if lookup is None:
        for f in fields:
            if records and not any(f in r for r in records):
                default_lookup(records[0], f)  # raises, naming the fields there are

        def lookup(record, field):
            return record.get(field)
    for record in records:
        sys.stdout.write("\t".join(format_get(lookup(record, f)) for f in fields) + "\n")


def default_lookup(record: dict, field: str):
    if field not in record:
        known = ", ".join(k for k in record if not k.startswith("_"))
        raise UsageError(f"unknown field {field!r}; fields are: {known}")
    return record[field]


def cell(value) -> str:
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], (list, tuple)):
            return "\n".join(" ".join(_short(v) for v in row) for row in value)
        return " x ".join(_short(v) for v in value) if all(isinstance(v, (int, float)) for v in value) else \
            ", ".join(safe(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{safe(k)}={_short(v)}" for k, v in value.items())
    if value is None:
        return "-"
    return _short(value)


def _short(value) -> str:
    if isinstance(value, float):
        return format(value, ".6g")
    return safe(value)


#: table columns holding free text, folded when the terminal is narrow (the others stay whole)
_FREE_TEXT = ("path", "series_description", "description", "label", "name", "extensions")


def print_records(records, columns, title=None) -> None:
    """Key/value blocks for one record, a table for several; rich on a terminal, plain on a pipe."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        console = Console(no_color=not colour_allowed(), highlight=False, markup=False, emoji=False)
        if len(records) == 1:
            table = Table(show_header=False, box=None, pad_edge=False, title=title)
            table.add_column(style="bold")
            table.add_column()
            for key in columns:
                if key in records[0]:
                    table.add_row(key, cell(records[0][key]))
        else:
            # compact: no borders, a two-line header (series\nnumber); when the terminal holds the
            # table's natural width, short cells stay whole and only free text may fold
            rows = [[cell(r.get(k)) for k in columns] for r in records]
            natural = sum(max([max(len(w) for w in k.split("_"))] + [len(line) for row in rows
                                                                       for line in row[i].splitlines()])
                          for i, k in enumerate(columns)) + 2 * (len(columns) - 1)
            whole = natural <= console.width
            table = Table(title=title, box=None, pad_edge=False, show_edge=False, header_style="bold underline")
            for key in columns:
                table.add_column(key.replace("_", "\n"), overflow="fold", no_wrap=whole and key not in _FREE_TEXT)
            for row in rows:
                table.add_row(*row)
        console.print(table)
        return
    if len(records) == 1:
        width = max(len(k) for k in columns)
        for key in columns:
            if key in records[0]:
                text = cell(records[0][key]).replace("\n", "\n" + " " * (width + 2))
                sys.stdout.write(f"{key:<{width}}  {text}\n")
        return
    rows = [[cell(r.get(k)).replace("\n", " ; ") for k in columns] for r in records]
    widths = [max(len(k), *(len(row[i]) for row in rows)) for i, k in enumerate(columns)]
    sys.stdout.write("  ".join(k.ljust(w) for k, w in zip(columns, widths)).rstrip() + "\n")
    for row in rows:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def print_tsv(header, rows) -> None:
    sys.stdout.write("\t".join(header) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(format_get(v) for v in row) + "\n")


def render(records, *, as_json=False, get_fields=(), columns=(), lookup=None, many=None, title=None) -> None:
    """The one way inspecting commands print: --get, then --json, then a table."""
    many = len(records) != 1 if many is None else many
    if get_fields:
        print_get(records, get_fields, lookup)
    elif as_json:
        print_json(records, many)
    else:
        print_records(records, columns, title)
