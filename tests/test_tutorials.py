"""The tutorials parse, are listed in their README, and run end to end with their own checks passing."""

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
FILES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
#: Seconds one tutorial may take as a notebook: a bound against a hung kernel, several times the longest run.
TIMEOUT = 600


def test_there_are_seven_tutorials():
    assert [f.name[:2] for f in FILES] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tutorial_parses_as_percent_notebook(path):
    notebook = jupytext.read(path)
    kinds = {cell.cell_type for cell in notebook.cells}
    assert kinds == {"markdown", "code"}
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    assert "assert" in notebook.cells[-1].source  # every tutorial ends with checks of its claims


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tutorial_is_listed_in_readme(path):
    assert f"`{path.name}`" in (TUTORIALS / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tutorial_runs(path):
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()
    assert "all claims hold" in notebook.cells[-1].outputs[-1]["text"]
