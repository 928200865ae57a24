"""Formatting of the benchmarks' tables: one cell format for the printed tables and their Markdown copies."""

from __future__ import annotations

import functools

import pandas as pd

from utiliscope.diagnostics.convergence import format_r_hat


def cell(column: str, value) -> str:
    """A table cell: floats to three significant digits, R-hat columns as ``check`` shows R-hat (four decimals:
    ``.3g`` reads 1.014 as 1.01, which would pass a "≤ 1.01" target it fails)."""
    if not isinstance(value, float):
        return str(value)
    return format_r_hat(value) if "rhat" in column else f"{value:.3g}"


def text_table(table: pd.DataFrame) -> str:
    """The table as ``DataFrame.to_string`` prints it, without the index, in :func:`cell`'s formats."""
    formatters = {column: functools.partial(cell, column) for column in table.columns}
    return table.to_string(index=False, formatters=formatters)


def pipe_table(table: pd.DataFrame) -> str:
    """The table as a Markdown pipe table (written here: pandas' ``to_markdown`` needs ``tabulate``)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += [
        "| " + " | ".join(cell(c, v) for c, v in zip(table.columns, row, strict=True)) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)
