"""The command line, run as a user would: in a subprocess."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_command_fits_and_prints_diagnostics():
    result = subprocess.run(
        [sys.executable, "-m", "utiliscope.cli", "quickstart", "--draws", "100", "--tune", "100", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for expected in ("divergences:", "max R-hat", "Bayes factor", "True utility '+a-b': rank"):
        assert expected in result.stdout


def test_unknown_command_is_an_error():
    result = subprocess.run(
        [sys.executable, "-m", "utiliscope.cli", "frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "quickstart" in result.stderr
