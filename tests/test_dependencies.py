"""The default path needs no NUTS backend: importing the package and fitting by structure never loads one."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys

import pytest
import numpy as np
import utiliscope as us

world = us.worlds.gridworld(["S.a", "b.c"], slip=0.1)
library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1, max_weight=1)
agent = us.agents.Boltzmann(library.rewards[1], beta=4.0)
demos = agent.demonstrate(world, n_trajectories=10, horizon=8, seed=0)
scope = us.Utiliscope(world, us.WorldModel.from_demonstrations(demos), library,
                      us.likelihoods.AsymmetricLaplace(observed=4.0))
idata = scope.fit(seed=0, progressbar=False)
scope.decide(idata)
loaded = sorted(name for name in ("jax", "blackjax", "nutpie") if name in sys.modules)
print("loaded:", loaded)
"""


@pytest.mark.slow
def test_default_fit_loads_no_nuts_backend():
    command = [sys.executable, "-c", SCRIPT]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "loaded: []"
