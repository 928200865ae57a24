"""The README's Python blocks run as written, in order, as one session (later blocks use earlier names)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.slow
def test_readme_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write run.nc and report/ into the working directory
    namespace: dict = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md block {index}", "exec"), namespace)
    assert (tmp_path / "run.nc").exists()
    assert (tmp_path / "report" / "index.html").exists()
