"""The tutorials parse, are listed in their README, and run end to end as notebooks with their own checks passing
and their figures shown."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
FILES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
#: Seconds one tutorial may take as a notebook: a bound against a hung kernel, several times the longest run.
TIMEOUT = 600


def test_there_are_eight_tutorials():
    assert [f.name[:2] for f in FILES] == ["01", "02", "03", "04", "05", "06", "07", "08"]


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


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tutorial_leaves_the_backend_to_jupyter_and_shows_what_it_saves(path):
    """A notebook's inline backend shows each figure at ``plt.show()``; a script's backend saves it silently."""
    source = path.read_text()
    assert "matplotlib.use(" not in source
    assert source.count("plt.show()") == source.count(".savefig(") > 0


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tutorial_runs(path):
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    # The kernel chooses its backend as Jupyter does for a user, not the Agg the tests set for themselves.
    client.execute(env={key: value for key, value in os.environ.items() if key != "MPLBACKEND"})
    assert "all claims hold" in notebook.cells[-1].outputs[-1]["text"]
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == path.read_text().count("plt.show()")
