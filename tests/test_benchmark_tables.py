"""The benchmarks' table formats: no number is rounded into passing a target it fails."""

import importlib.util
from pathlib import Path

import pandas as pd

SPEC = importlib.util.spec_from_file_location(
    "tables", Path(__file__).resolve().parents[1] / "benchmarks" / "tables.py"
)
tables = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tables)


def test_rhat_keeps_the_decimal_that_decides_a_threshold_of_1_01():
    assert tables.cell("max_rhat", 1.0149) == "1.0149"
    assert tables.cell("max_rhat", 1.0104) == "1.0104"
    assert tables.cell("seconds", 1.0149) == "1.01"
    assert tables.cell("divergences", 3) == "3"


def test_text_and_pipe_tables_format_each_column_alike():
    table = pd.DataFrame({"problem": ["a"], "total_s": [21.234], "max_rhat": [1.0149]})
    assert tables.pipe_table(table).splitlines() == [
        "| problem | total_s | max_rhat |",
        "|---|---|---|",
        "| a | 21.2 | 1.0149 |",
    ]
    assert "1.0149" in tables.text_table(table) and "21.2" in tables.text_table(table)
