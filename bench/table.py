"""The benchmarks' tables on the terminal: a header, a rule under it, then a line a row."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    title: str
    field: str  # the row's attribute it shows
    spec: str  # its cells' format ("<20", ">7.1f"); the title takes its alignment and width


def print_table(columns: Sequence[Column], rows: Sequence[object]) -> None:
    heads = [format(c.title, _alignment_and_width(c.spec)) for c in columns]
    header = " ".join(heads)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(" ".join(format(getattr(row, c.field), c.spec) for c in columns))


def _alignment_and_width(spec: str) -> str:
    found = re.match(r"[<>^]?\d*", spec)
    return found.group() if found else ""
