"""The README's Python blocks run as written, in order, as one session (later blocks use earlier names), and its
command-line block runs as written on a fresh clone right after the set-up command."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from utiliscope.quickstart import DEMONSTRATION_SEED

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def shell_blocks(section: str) -> list[list[str]]:
    """The lines of each bash block under the README heading ``## {section}``."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


SET_UP, TEST_COMMAND = shell_blocks("Set-up: two commands")
(COMMAND_LINE,) = shell_blocks("Command line")


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


def test_the_quickstarts_share_their_demonstrations_and_g_prime():
    """One quickstart posterior everywhere: `utiliscope quickstart`, the README's first fit, the example spec and
    tutorial 01 fit the same demonstrations with g′ = g*."""
    spec = tomllib.loads((ROOT / "examples" / "quickstart_fit.toml").read_text())
    assert spec["agent"]["demonstrations"]["seed"] == DEMONSTRATION_SEED
    assert spec["likelihood"]["observed"] == "agent"
    demonstrate = f"n_trajectories=100, horizon=12, seed={DEMONSTRATION_SEED})"
    for text in (BLOCKS[0], (ROOT / "tutorials" / "01_quickstart.py").read_text()):
        assert demonstrate in text and "round(" not in text


@pytest.mark.slow
def test_readme_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write run.nc and report/ into the working directory
    namespace: dict = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md block {index}", "exec"), namespace)
    assert (tmp_path / "run.nc").exists()
    assert (tmp_path / "report" / "index.html").exists()


def test_command_line_block_calls_the_venv_the_set_up_command_creates():
    """The set-up command does not activate .venv, so the block calls .venv/bin/utiliscope."""
    assert "python3 -m venv .venv" in SET_UP[0]
    assert COMMAND_LINE and all(line.startswith(".venv/bin/utiliscope ") for line in COMMAND_LINE)


def test_ci_runs_the_readme_test_command_in_a_fresh_venv_with_caches_outside_the_clone():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert lines[-1] == TEST_COMMAND[0] and "python3 -m venv .venv" in lines
    caches = [line for line in lines if re.search(r"PYTENSOR_FLAGS|MPLCONFIGDIR|NUMBA_CACHE_DIR", line)]
    assert len(caches) == 3 and all("$CACHE/" in line for line in caches)
    assert any(re.match(r"CACHE=.*\$HOME/\.cache", line) for line in lines)


def outputs(lines: list[str]) -> list[str]:
    """The files and folders the lines write: each ``--out``, and the decision a spec's ``[decide]`` adds."""
    written = [words[words.index("--out") + 1] for words in map(shlex.split, lines) if "--out" in words]
    return [*written, "run.decision.json"]


def test_what_the_command_line_block_writes_is_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = outputs(COMMAND_LINE)
    assert {"run.nc", "report/", "policy.json", "study.csv"} <= set(names)
    result = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True, check=False)
    assert sorted(result.stdout.split()) == sorted(names)


@pytest.fixture(scope="module")
def command_line_run(tmp_path_factory):
    """Every line of the command-line block, in order, in a copy of the files git tracks, with the running venv as
    the clone's .venv: the clone and each line's finished process."""
    venv = Path(sys.prefix)
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    if not (venv / "bin" / "utiliscope").exists():
        pytest.skip(f"{venv} is not a venv with the utiliscope command installed")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    clone = tmp_path_factory.mktemp("readme") / "clone"
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(venv)
    results = {}
    for line in COMMAND_LINE:
        results[line] = subprocess.run(
            line, shell=True, cwd=clone, env=os.environ, capture_output=True, text=True, timeout=900, check=False
        )
        if results[line].returncode != 0:
            break  # the later lines need this one's output
    return clone, results


@pytest.mark.slow
def test_command_line_block_runs_as_written_on_a_fresh_clone(command_line_run):
    clone, results = command_line_run
    for line in COMMAND_LINE:
        result = results.get(line)
        assert result is not None and result.returncode == 0, (
            f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}" if result else f"{line} did not run"
        )
    for name in outputs(COMMAND_LINE):
        assert (clone / name).exists(), name
    assert (clone / "report" / "index.html").exists()


@pytest.mark.slow
def test_the_quickstart_command_prints_its_diagnostics(command_line_run):
    """The block's ``utiliscope quickstart`` (the CLI tests rely on this run rather than fitting it again)."""
    (line,) = [line for line in COMMAND_LINE if shlex.split(line)[1:2] == ["quickstart"]]
    result = command_line_run[1][line]
    assert result.returncode == 0, result.stderr[-3000:]
    for expected in (
        "Convergence check:",
        "r_hat",
        "ess_bulk",
        "Bayes factor",
        "True utility '+a-b': rank",
        "policy loss",
    ):
        assert expected in result.stdout
    # The explanation of a g* above the interval appears exactly when it is above.
    high, g_star = map(
        float, re.search(r"90% interval \[[-\d.]+, ([-\d.]+)\] bits \(g\* = ([-\d.]+)\)", result.stdout).groups()
    )
    assert ("g* lies above it" in result.stdout) == (g_star > high)
