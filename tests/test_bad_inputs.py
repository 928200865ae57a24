"""Every bad input to the public API raises a ValueError or TypeError that names the argument and the fix.

One table, one test: each row is a call with a mistake a researcher could make, the error it must raise, and a
pattern its message must contain (the argument's name, and the offending index where there is one). Every
message must also say how to fix the mistake (one of :data:`FIX_WORDS`). Warnings are errors here, so a call
that warns and carries on fails; an IndexError, a PyTensor error or any other exception escapes
``pytest.raises`` and fails too.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import utiliscope as us
from utiliscope.agents.planning import MAX_UNIT_BETA
from utiliscope.likelihoods import likelihood_from_dict

#: Words with which a message says what a valid value looks like or what to do instead.
FIX_WORDS = re.compile(r"\b(must|use|choose|give|pass|needs?|expected|lower|raise|add|wrap|build|import)\b")

#: A 3-state, 2-action world with 3 features, and its parts, for the rows below.
WORLD = us.worlds.garnet(3, 2, 2, gamma=0.9, n_features=3, seed=0)
P = np.asarray(WORLD.transitions)
UNIFORM = np.full((3, 2), 0.5)
REWARD = np.array([0.0, 1.0, 2.0])
LIBRARY = us.priors.UtilityLibrary(np.eye(3), description_bits=[1.0, 2.0, 2.0], names=["a", "b", "c"])
POINT_MASS = us.WorldModel.from_policies(UNIFORM)
DIRICHLET = us.WorldModel.dirichlet(np.ones((3, 2)))
TWO = np.stack([UNIFORM, UNIFORM])
LIKELIHOOD = us.likelihoods.Normal(observed=2.0)


def _with(array: np.ndarray, index: tuple, value: float) -> np.ndarray:
    """A copy of ``array`` with one entry replaced."""
    out = np.array(array, dtype=float)
    out[index] = value
    return out


def _shifted(array: np.ndarray, index: tuple, delta: float) -> np.ndarray:
    """A copy of ``array`` with ``delta`` moved from ``index`` to the next entry of its row (sum kept)."""
    out = np.array(array, dtype=float)
    out[index] -= delta
    out[(*index[:-1], (index[-1] + 1) % out.shape[-1])] += delta
    return out


def _scope(**changes) -> us.Utiliscope:
    """A small exact problem (finite world model, library prior), with some arguments replaced."""
    arguments = {
        "worlds": WORLD,
        "world_model": POINT_MASS,
        "utility_prior": LIBRARY,
        "likelihood": LIKELIHOOD,
        **changes,
    }
    return us.Utiliscope(**arguments)


def _fit(**kwargs):
    return _scope().fit(**{"draws": 10, "tune": 0, "chains": 1, "progressbar": False, **kwargs})


@dataclass(frozen=True)
class Bad:
    """A call with a mistake, the error it must raise and a regex its message must match.

    ``known_issue`` marks a row that fails today in a module this test's author may not edit (utiliscope/models/):
    the row is a strict xfail that says what to fix, and turns into a failure (remove the mark) once fixed.
    """

    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str
    known_issue: str | None = None

    def param(self):
        marks = () if self.known_issue is None else pytest.mark.xfail(reason=self.known_issue, strict=True)
        return pytest.param(self, id=self.id, marks=marks)


CASES = [
    # ---------------------------------------------------------------- worlds
    Bad("transitions_2d", lambda: us.TabularMDP(P[0], [1, 0, 0], 0.9), ValueError, r"transitions must be 3-d"),
    Bad("transitions_not_square", lambda: us.TabularMDP(P[:, :, :2], [1, 0, 0], 0.9), ValueError,
        r"transitions has shape \(3, 2, 2\); it must be \(S, A, S\)"),
    Bad("transitions_row_sum", lambda: us.TabularMDP(_with(P, (1, 0, 0), P[1, 0, 0] + 0.2), [1, 0, 0], 0.9),
        ValueError, r"transitions\[1, 0\] sums to 1\.2"),
    Bad("transitions_negative", lambda: us.TabularMDP(_shifted(P, (2, 1, 0), P[2, 1, 0] + 0.1), [1, 0, 0], 0.9),
        ValueError, r"transitions\[2, 1, 0\] is -0\.1.*non-negative"),
    Bad("transitions_nan", lambda: us.TabularMDP(_with(P, (0, 1, 2), np.nan), [1, 0, 0], 0.9), ValueError,
        r"transitions\[0, 1, 2\] is nan.*finite"),
    Bad("transitions_not_numbers", lambda: us.TabularMDP("abc", [1, 0, 0], 0.9), TypeError,
        r"transitions must be an array of numbers"),
    Bad("transitions_no_actions", lambda: us.TabularMDP(np.zeros((3, 0, 3)), [1, 0, 0], 0.9), ValueError,
        r"transitions has shape \(3, 0, 3\).*at least one state and action"),
    Bad("start_shape", lambda: us.TabularMDP(P, [0.5, 0.5], 0.9), ValueError, r"start has shape \(2,\)"),
    Bad("start_sum", lambda: us.TabularMDP(P, [0.5, 0.2, 0.2], 0.9), ValueError,
        r"start sums to 0\.9.*must sum to 1"),
    Bad("start_negative", lambda: us.TabularMDP(P, [1.5, -0.5, 0.0], 0.9), ValueError,
        r"start\[1\] is -0\.5"),
    Bad("gamma_one", lambda: us.TabularMDP(P, [1, 0, 0], 1.0), ValueError, r"gamma is 1\.0.*\[0, 1\)"),
    Bad("gamma_above_one", lambda: us.worlds.garnet(3, 2, 2, gamma=1.5), ValueError, r"gamma is 1\.5"),
    Bad("gamma_negative", lambda: us.worlds.gridworld(["S.a"], gamma=-0.1), ValueError, r"gamma is -0\.1"),
    Bad("gamma_nan", lambda: us.TabularMDP(P, [1, 0, 0], float("nan")), ValueError, r"gamma is nan"),
    Bad("gamma_none", lambda: us.TabularMDP(P, [1, 0, 0], None), TypeError, r"gamma must be a number"),
    Bad("features_rows", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, features=np.ones((2, 4))), ValueError,
        r"features has shape \(2, 4\); it must be \(3, K\)"),
    Bad("features_nan", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, features=_with(np.ones((3, 2)), (2, 1), np.nan)),
        ValueError, r"features\[2, 1\] is nan"),
    Bad("state_names_duplicate", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, state_names=["x", "y", "x"]),
        ValueError, r"state_names\[2\] = 'x' repeats state_names\[0\]"),
    Bad("action_names_length", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, action_names=["go"]), ValueError,
        r"action_names has 1 entries; it needs one per item \(2\)"),
    Bad("world_set_empty", lambda: us.WorldSet([]), ValueError, r"worlds is empty"),
    Bad("world_set_not_worlds", lambda: us.WorldSet([WORLD, P]), TypeError, r"worlds\[1\] is a ndarray"),
    Bad("world_set_sizes", lambda: us.WorldSet([WORLD, us.worlds.garnet(4, 2, 2)]), ValueError,
        r"worlds\[1\] has n_states=4"),
    Bad("world_set_weights_sum", lambda: us.WorldSet([WORLD, WORLD], weights=[0.5, 0.6]), ValueError,
        r"weights sums to 1\.1"),
    Bad("world_set_weights_negative", lambda: us.WorldSet([WORLD, WORLD], weights=[1.5, -0.5]), ValueError,
        r"weights\[1\] is -0\.5"),
    Bad("gridworld_ragged", lambda: us.worlds.gridworld(["S.a", "b."]), ValueError, r"layout\[1\] has 2 cells"),
    Bad("gridworld_symbol", lambda: us.worlds.gridworld(["S*a"]), ValueError, r"layout\[0\]\[1\] is '\*'"),
    Bad("gridworld_slip", lambda: us.worlds.gridworld(["S.a"], slip=1.5), ValueError, r"slip is 1\.5"),
    Bad("garnet_branching", lambda: us.worlds.garnet(3, 2, 4), ValueError, r"branching is 4.*n_states \(3\)"),
    Bad("garnet_states_zero", lambda: us.worlds.garnet(0, 2, 1), ValueError, r"n_states is 0"),
    Bad("garnet_states_float", lambda: us.worlds.garnet(3.0, 2, 1), TypeError, r"n_states must be an integer"),
    # ---------------------------------------------------------------- policies and evaluation
    Bad("worlds_wrong_type", lambda: us.evaluate(P, UNIFORM, REWARD), TypeError, r"worlds must be a TabularMDP"),
    Bad("policy_shape", lambda: us.evaluate(WORLD, np.full((2, 2), 0.5), REWARD), ValueError,
        r"policy has shape \(2, 2\); it must end in \(3, 2\)"),
    Bad("policy_row_sum", lambda: us.evaluate(WORLD, _with(UNIFORM, (1, 0), 0.7), REWARD), ValueError,
        r"policy\[1\] sums to 1\.2"),
    Bad("policy_negative", lambda: us.evaluate(WORLD, _shifted(UNIFORM, (2, 0), 0.7), REWARD), ValueError,
        r"policy\[2, 0\] is -0\.2"),
    Bad("policy_nan", lambda: us.evaluate(WORLD, _with(UNIFORM, (0, 1), np.nan), REWARD), ValueError,
        r"policy\[0, 1\] is nan"),
    Bad("reward_shape", lambda: us.evaluate(WORLD, UNIFORM, np.ones(4)), ValueError,
        r"reward has shape \(4,\); it must be \(3,\) or \(3, 2\)"),
    Bad("reward_nan", lambda: us.evaluate(WORLD, UNIFORM, _with(REWARD, (2,), np.nan)), ValueError,
        r"reward\[2\] is nan"),
    Bad("reward_infinite", lambda: us.intelligence(WORLD, UNIFORM, _with(REWARD, (1,), np.inf)), ValueError,
        r"rewards\[1\] is inf"),
    Bad("integer_policies_out_of_range", lambda: us.evaluate_policies(WORLD, np.array([[0, 1, 2]]), REWARD),
        ValueError, r"policies\[0, 2\] is 2, an action index outside 0\.\.1"),
    Bad("dirichlet_xi_concentration", lambda: us.DirichletPolicies(concentration=0.0), ValueError,
        r"concentration is 0\.0; it must be a finite number > 0"),
    Bad("dirichlet_xi_nan", lambda: us.DirichletPolicies(concentration=float("nan")), ValueError,
        r"concentration is nan"),
    Bad("policy_set_weights", lambda: us.PolicySet(np.array([[0, 1, 0], [1, 1, 0]]), weights=[0.2, 0.2]),
        ValueError, r"weights sums to 0\.4"),
    Bad("policy_set_negative_action", lambda: us.PolicySet(np.array([[0, -1, 0]])), ValueError,
        r"policies\[0, 1\] is -1"),
    Bad("policy_set_wrong_size",
        lambda: us.intelligence(WORLD, UNIFORM, REWARD, us.PolicySet(np.full((1, 4, 2), 0.5))), ValueError,
        r"PolicySet holds policies of shape \(4, 2\) but the worlds have 3 states"),
    # ---------------------------------------------------------------- intelligence
    Bad("method_unknown", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="exakt"), ValueError,
        r"method is 'exakt'; choose one of 'exact', 'monte_carlo'"),
    Bad("exact_too_large", lambda: us.intelligence(us.worlds.garnet(21, 2, 1), np.full((21, 2), 0.5), np.ones(21)),
        ValueError, r"exceeds max_enumerate=1048576; use method='monte_carlo'"),
    Bad("exact_dirichlet_xi", lambda: us.intelligence(WORLD, UNIFORM, REWARD, us.DirichletPolicies()), ValueError,
        r"DirichletPolicies has infinite support.*use method='monte_carlo'"),
    Bad("n_samples_zero", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="monte_carlo", n_samples=0),
        ValueError, r"n_samples is 0; it must be an integer ≥ 1"),
    Bad("policy_prior_type", lambda: us.intelligence(WORLD, UNIFORM, REWARD, policy_prior="uniform"), TypeError,
        r"policy_prior must be a PolicyPrior"),
    Bad("importance_dirichlet_xi",
        lambda: us.intelligence(WORLD, UNIFORM, REWARD, us.DirichletPolicies(), method="importance"), ValueError,
        r"policy_prior is DirichletPolicies.*use method='monte_carlo'"),
    Bad("importance_budget", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="importance", budget=10),
        ValueError, r"budget is 10; it must be an integer ≥ 2000"),
    Bad("rtol_negative", lambda: us.intelligence(WORLD, UNIFORM, REWARD, rtol=-1e-9), ValueError,
        r"rtol is -1e-09; it must be a finite number ≥ 0"),
    Bad("rtol_nan", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="gaussian", rtol=float("nan")),
        ValueError, r"rtol is nan"),
    Bad("seed_negative", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="monte_carlo", seed=-1),
        ValueError, r"seed is -1; it must be a non-negative integer or a numpy\.random\.Generator"),
    Bad("seed_text", lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="gaussian", seed="abc"),
        TypeError, r"seed is 'abc'; it must be"),
    Bad("intelligence_of_a_stack", lambda: us.intelligence(WORLD, np.stack([UNIFORM, UNIFORM]), REWARD),
        ValueError, r"intelligence takes one policy.*use intelligence_table"),
    # ---------------------------------------------------------------- priors over U
    Bad("library_empty", lambda: us.priors.UtilityLibrary(np.zeros((0, 3)), []), ValueError,
        r"rewards is empty; a UtilityLibrary needs at least one utility"),
    Bad("library_names_duplicate", lambda: us.priors.UtilityLibrary(np.eye(3), [1, 2, 2], names=["a", "b", "a"]),
        ValueError, r"names\[2\] = 'a' repeats names\[0\]"),
    Bad("library_bits_negative", lambda: us.priors.UtilityLibrary(np.eye(3), [1.0, -2.0, 2.0]), ValueError,
        r"description_bits\[1\] is -2\.0; description lengths must be ≥ 0"),
    Bad("library_bits_nan", lambda: us.priors.UtilityLibrary(np.eye(3), [1.0, 2.0, np.nan]), ValueError,
        r"description_bits\[2\] is nan"),
    Bad("library_bits_length", lambda: us.priors.UtilityLibrary(np.eye(3), [1.0, 2.0]), ValueError,
        r"description_bits has 2 entries; it needs one per utility in rewards \(3\)"),
    Bad("library_rewards_nan", lambda: us.priors.UtilityLibrary(_with(np.eye(3), (1, 2), np.nan), [1, 1, 1]),
        ValueError, r"rewards\[1, 2\] is nan"),
    Bad("library_weight_negative", lambda: us.priors.UtilityLibrary(np.eye(3), [1, 1, 1], simplicity_weight=-1),
        ValueError, r"simplicity_weight is -1; it must be a finite number ≥ 0"),
    Bad("library_too_large", lambda: us.priors.UtilityLibrary.from_features(np.eye(30), max_terms=4), ValueError,
        r"more than max_size=100000; lower max_terms or max_weight"),
    Bad("library_unknown_name", lambda: LIBRARY.index("z"), ValueError, r"name 'z' is not in the library"),
    Bad("linear_sparsity", lambda: us.priors.LinearUtility(np.eye(3), sparsity="l0"), ValueError,
        r"sparsity is 'l0'; choose one of"),
    Bad("linear_one_direction", lambda: us.priors.LinearUtility(np.eye(2)), ValueError,
        r"features leave 1 direction\(s\)"),
    Bad("linear_slab_probability", lambda: us.priors.LinearUtility(np.eye(3), slab_probability=1.0), ValueError,
        r"slab_probability is 1\.0; it must lie in \(0, 1\)"),
    # ---------------------------------------------------------------- likelihoods
    Bad("observed_negative", lambda: us.likelihoods.AsymmetricLaplace(observed=-1.0), ValueError,
        r"observed is -1\.0; it must be a finite number ≥ 0"),
    Bad("observed_nan", lambda: us.likelihoods.Normal(observed=float("nan")), ValueError, r"observed is nan"),
    Bad("observed_infinite", lambda: us.likelihoods.StudentT(observed=float("inf")), ValueError,
        r"observed is inf"),
    Bad("laplace_b_zero", lambda: us.likelihoods.AsymmetricLaplace(observed=4.0, b=0.0), ValueError,
        r"b is 0\.0; it must be a finite number > 0"),
    Bad("laplace_kappa_negative", lambda: us.likelihoods.AsymmetricLaplace(observed=4.0, kappa=-1.0), ValueError,
        r"kappa is -1\.0"),
    Bad("normal_sigma_zero", lambda: us.likelihoods.Normal(observed=4.0, sigma=0.0), ValueError, r"sigma is 0\.0"),
    Bad("student_nu_negative", lambda: us.likelihoods.StudentT(observed=4.0, nu=-2.0), ValueError,
        r"nu is -2\.0"),
    Bad("skew_alpha_nan", lambda: us.likelihoods.SkewNormal(observed=4.0, alpha=float("nan")), ValueError,
        r"alpha is nan; it must be a finite number"),
    Bad("exponential_rate_zero", lambda: us.likelihoods.Exponential(rate=0.0), ValueError, r"rate is 0\.0"),
    Bad("likelihood_unknown_parameter", lambda: us.likelihoods.Normal(observed=4.0, sd=1.0), TypeError,
        r"Normal has no parameter 'sd'; pass only its parameters: sigma"),
    Bad("likelihood_unknown_name", lambda: likelihood_from_dict({"name": "cauchy"}), ValueError,
        r"d\['name'\] is 'cauchy', not a known likelihood shape"),
    # ---------------------------------------------------------------- demonstrations and world models
    Bad("counts_negative", lambda: us.Demonstrations.from_counts([[1, 2], [3, -1]]), ValueError,
        r"counts\[1, 1\] is -1; counts must be non-negative"),
    Bad("counts_1d", lambda: us.Demonstrations.from_counts([1, 2]), ValueError, r"counts must be 2-d"),
    Bad("alpha_zero", lambda: us.WorldModel.dirichlet([[1.0, 0.0], [1.0, 1.0]]), ValueError,
        r"alpha\[0, 1\] is 0; Dirichlet concentrations must be > 0"),
    Bad("world_model_policies_rows",
        lambda: us.WorldModel.from_policies(np.stack([UNIFORM, _with(UNIFORM, (2, 1), 0.9)])), ValueError,
        r"policies\[1, 2\] sums to 1\.4"),
    Bad("world_model_weights", lambda: us.WorldModel.from_policies(TWO, [1.0]), ValueError,
        r"weights has shape \(1,\); it needs one weight per policy \(2\)"),
    Bad("world_model_demos_type", lambda: us.WorldModel.from_demonstrations(np.ones((3, 2))), TypeError,
        r"demos must be a Demonstrations.*Demonstrations\.from_counts"),
    Bad("world_model_concentration",
        lambda: us.WorldModel.from_demonstrations(us.Demonstrations.from_counts(np.ones((3, 2))), concentration=0),
        ValueError, r"concentration is 0"),
    # ---------------------------------------------------------------- agents
    Bad("boltzmann_beta", lambda: us.agents.Boltzmann(REWARD, beta=0.0), ValueError, r"beta is 0\.0"),
    Bad("epsilon_above_one", lambda: us.agents.EpsilonGreedy(REWARD, epsilon=1.5), ValueError, r"epsilon is 1\.5"),
    Bad("quantilizer_q", lambda: us.agents.Quantilizer(REWARD, q=0.0), ValueError, r"q is 0\.0"),
    Bad("myopic_horizon", lambda: us.agents.Myopic(REWARD, horizon=0), ValueError, r"horizon is 0"),
    Bad("agent_reward_shape", lambda: us.agents.Optimal(np.ones(5)).policy(WORLD), ValueError,
        r"reward has shape \(5,\)"),
    Bad("agent_without_reward", lambda: us.agents.Random().true_intelligence(WORLD), ValueError,
        r"Random has no reward; pass reward="),
    Bad("demonstrate_trajectories", lambda: us.agents.Random().demonstrate(WORLD, 0, 5, seed=0), ValueError,
        r"n_trajectories is 0"),
    Bad("demonstrate_seed", lambda: us.agents.Random().demonstrate(WORLD, 3, 4, seed=-2), ValueError,
        r"seed is -2"),
    Bad("garnet_seed", lambda: us.worlds.garnet(3, 2, 2, seed=1.5), TypeError, r"seed is 1\.5"),
    Bad("world_model_sample_seed", lambda: POINT_MASS.sample(3, seed=-1), ValueError, r"seed is -1"),
    Bad("demonstrate_horizon", lambda: us.agents.Random().demonstrate(WORLD, 3, -1, seed=0), ValueError,
        r"horizon is -1"),
    # ---------------------------------------------------------------- the model and its fit
    Bad("g_method_unknown", lambda: _scope(g_method="magic"), ValueError, r"g_method is 'magic'; choose one of"),
    Bad("g_method_importance_prior", lambda: _scope(g_method="importance", policy_prior=us.DirichletPolicies()),
        ValueError, r"policy_prior is DirichletPolicies.*method='monte_carlo'"),
    Bad("scope_world_model_size", lambda: _scope(world_model=us.WorldModel.dirichlet(np.ones((4, 2)))), ValueError,
        r"the world model is over 4 states and 2 actions but the worlds have 3 and 2"),
    Bad("scope_prior_type", lambda: _scope(utility_prior=np.eye(3)), TypeError,
        r"utility_prior must be a us\.priors\.UtilityLibrary or us\.priors\.LinearUtility"),
    Bad("scope_library_size", lambda: _scope(utility_prior=us.priors.UtilityLibrary(np.eye(4), [1, 1, 1, 1])),
        ValueError, r"utility_prior holds rewards of shape \(4, 2\) but the worlds have 3 states"),
    Bad("scope_likelihood_type", lambda: _scope(likelihood="normal"), TypeError,
        r"likelihood must be a Likelihood"),
    Bad("scope_world_model_type", lambda: _scope(world_model=UNIFORM), TypeError,
        r"world_model is a ndarray; it must be a WorldModel"),
    Bad("fit_seed_negative", lambda: _fit(seed=-1), ValueError, r"seed is -1; it must be a non-negative integer"),
    Bad("scope_exact_too_large",
        lambda: _scope(worlds=us.worlds.garnet(21, 2, 1), world_model=us.WorldModel.dirichlet(np.ones((21, 2))),
                       utility_prior=us.priors.UtilityLibrary(np.eye(21), np.ones(21)), g_method="exact"),
        ValueError, r"exceeds max_enumerate.*use method='monte_carlo' or method='gaussian'"),
    Bad("scope_n_samples", lambda: _scope(g_method="monte_carlo", n_samples=-5), ValueError, r"n_samples is -5"),
    Bad("fit_draws_zero", lambda: _fit(draws=0), ValueError, r"draws is 0; it must be an integer ≥ 1"),
    Bad("fit_chains_zero", lambda: _fit(chains=0), ValueError, r"chains is 0; it must be an integer ≥ 1"),
    Bad("fit_tune_negative", lambda: _fit(tune=-1), ValueError, r"tune is -1; it must be an integer ≥ 0"),
    Bad("fit_draws_float", lambda: _fit(draws=100.0), TypeError, r"draws must be an integer"),
    Bad("fit_sampler_unknown", lambda: _fit(sampler="stan"), ValueError,
        r"sampler is 'stan'; choose one of 'auto'"),
    Bad("exact_posterior_dirichlet", lambda: _scope(world_model=DIRICHLET).exact_posterior(), ValueError,
        r"exact_posterior needs a UtilityLibrary prior and a finite world model"),
    # ---------------------------------------------------------------- types: strings, bools, complex numbers
    Bad("gamma_string", lambda: us.TabularMDP(P, [1, 0, 0], "0.9"), TypeError,
        r"gamma must be a number in \[0, 1\)"),
    Bad("gamma_bool", lambda: us.worlds.garnet(3, 2, 2, gamma=True), TypeError, r"gamma must be a number.*True"),
    Bad("gamma_complex", lambda: us.TabularMDP(P, [1, 0, 0], 0.9 + 0j), TypeError, r"gamma must be a number"),
    Bad("slip_string", lambda: us.worlds.gridworld(["S.a"], slip="0.1"), TypeError, r"slip must be a number"),
    Bad("transitions_strings", lambda: us.TabularMDP(P.astype(str), [1, 0, 0], 0.9), TypeError,
        r"transitions must be an array of numbers; got an array of strings"),
    Bad("start_strings", lambda: us.TabularMDP(P, ["1", "0", "0"], 0.9), TypeError,
        r"start must be an array of numbers"),
    Bad("observed_string", lambda: us.likelihoods.Normal(observed="5"), TypeError, r"observed must be a number"),
    Bad("observed_bool", lambda: us.likelihoods.AsymmetricLaplace(observed=True), TypeError,
        r"observed must be a number"),
    Bad("sigma_string", lambda: us.likelihoods.Normal(observed=5.0, sigma="1"), TypeError,
        r"sigma must be a number"),
    Bad("skew_alpha_string", lambda: us.likelihoods.SkewNormal(observed=5.0, alpha="-4"), TypeError,
        r"alpha must be a number"),
    Bad("reward_complex", lambda: us.evaluate(WORLD, UNIFORM, REWARD + 0j), TypeError,
        r"reward must be an array of numbers; got an array of complex numbers"),
    Bad("library_rewards_complex", lambda: us.priors.UtilityLibrary(np.eye(3) + 0j, [1, 1, 1]), TypeError,
        r"rewards must be an array of numbers; got an array of complex"),
    Bad("agent_reward_complex", lambda: us.agents.Optimal(REWARD + 1j), TypeError,
        r"reward must be an array of numbers"),
    Bad("state_names_string", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, state_names="abc"), TypeError,
        r"state_names is the string 'abc'; pass a list of names"),
    Bad("action_names_string", lambda: us.TabularMDP(P, [1, 0, 0], 0.9, action_names="ab"), TypeError,
        r"action_names is the string 'ab'"),
    Bad("library_names_string", lambda: us.priors.UtilityLibrary(np.eye(3), [1, 1, 1], names="abc"), TypeError,
        r"names is the string 'abc'"),
    Bad("beta_string", lambda: us.agents.Boltzmann(REWARD, beta="1"), TypeError, r"beta must be a number"),
    Bad("beta_bool", lambda: us.agents.Boltzmann(REWARD, beta=True), TypeError, r"beta must be a number"),
    Bad("counts_strings", lambda: us.Demonstrations.from_counts([["1", "2"], ["3", "4"]]), TypeError,
        r"counts must be an array of numbers; got an array of strings"),
    Bad("alpha_bool", lambda: us.WorldModel.dirichlet(np.ones((3, 2), dtype=bool)), TypeError,
        r"alpha must be an array of numbers; got an array of booleans"),
    Bad("scope_smoothing_string", lambda: _scope(g_method="monte_carlo", smoothing="0.1"), TypeError,
        r"smoothing must be a number"),
    Bad("scope_rtol_string", lambda: _scope(rtol="1e-9"), TypeError, r"rtol must be a number"),
    # ---------------------------------------------------------------- sampler settings and seeds
    Bad("fit_target_accept_above_one", lambda: _fit(target_accept=1.5), ValueError,
        r"target_accept is 1\.5; it must lie in \(0, 1\)"),
    Bad("fit_target_accept_zero", lambda: _fit(target_accept=0), ValueError, r"target_accept is 0;"),
    Bad("fit_target_accept_negative", lambda: _fit(target_accept=-1), ValueError, r"target_accept is -1;"),
    Bad("fit_target_accept_nan", lambda: _fit(target_accept=float("nan")), ValueError, r"target_accept is nan"),
    Bad("fit_target_accept_string", lambda: _fit(target_accept="0.9"), TypeError,
        r"target_accept must be a number"),
    Bad("fit_seed_float", lambda: _fit(seed=1.5), TypeError, r"seed is 1\.5; it must be a non-negative integer"),
    Bad("fit_seed_string", lambda: _fit(seed="1"), TypeError, r"seed is '1'"),
    Bad("fit_seed_2_63", lambda: _fit(seed=2**63), ValueError, r"seed is 9223372036854775808.*2\*\*63"),
    Bad("fit_progressbar_string", lambda: _fit(progressbar="no"), TypeError,
        r"progressbar is 'no'; it must be True"),
    Bad("fit_strict_string", lambda: _fit(strict="yes"), TypeError, r"strict is 'yes'"),
    Bad("fit_nuts_one_draw", lambda: _scope(world_model=DIRICHLET, g_method="exact").fit(draws=1, sampler="pymc"),
        ValueError, r"draws is 1; the NUTS sampler 'pymc' needs at least 4 draws"),
    Bad("fit_exact_unknown_argument", lambda: _fit(cores=2), TypeError,
        r"sampler 'exact' takes no extra arguments; got \['cores'\]"),
    Bad("scope_seed_negative", lambda: _scope(seed=-1), ValueError, r"seed is -1"),
    Bad("scope_seed_float", lambda: _scope(g_method="monte_carlo", seed=0.5), TypeError, r"seed is 0\.5"),
    Bad("scope_seed_too_large", lambda: _scope(seed=2**64), ValueError, r"seed is 18446744073709551616"),
    Bad("quantilizer_seed", lambda: us.agents.Quantilizer(REWARD, q=0.1, seed=2**63), ValueError, r"seed is 9223"),
    Bad("sbc_alpha", lambda: us.diagnostics.sbc(_scope(), 2, client="serial", alpha=5), ValueError,
        r"alpha is 5; it must lie in \(0, 1\)"),
    Bad("sbc_seed", lambda: us.diagnostics.sbc(_scope(), 2, seed=-3, client="serial"), ValueError, r"seed is -3"),
    Bad("sbc_target_accept",
        lambda: us.diagnostics.sbc(_scope(), 2, client="serial", fit_kwargs={"target_accept": 2}), ValueError,
        r"target_accept is 2"),
    Bad("sbc_draws", lambda: us.diagnostics.sbc(_scope(), 2, client="serial", draws=0), ValueError, r"draws is 0"),
    Bad("study_seed", lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 1, seed=1.5,
                                                            client="serial"), TypeError, r"seed is 1\.5"),
    Bad("study_fit_kwargs_chains",
        lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 1, client="serial",
                                              fit_kwargs={"chains": 0}), ValueError, r"chains is 0"),
    Bad("study_fit_kwargs_type",
        lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 1, client="serial",
                                              fit_kwargs=[1]), TypeError, r"fit_kwargs is a list; pass a dict"),
    Bad("study_fit_kwargs_seed",
        lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 1, client="serial",
                                              fit_kwargs={"seed": 1}), ValueError, r"fit_kwargs sets seed"),
    Bad("study_metric_not_callable",
        lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 1, client="serial",
                                              metric="cosine"), TypeError, r"metric must be callable"),
    # ---------------------------------------------------------------- sizes refused before allocating
    Bad("garnet_too_large", lambda: us.worlds.garnet(50_000, 2, 1, sparse=False), ValueError,
        r"dense garnet of 50,000 states needs .* = 40,000,000,000 bytes .* limit of 8,589,934,592 bytes.*lower"),
    Bad("demonstrate_too_many", lambda: us.agents.Random().demonstrate(WORLD, 10**10, 5, seed=0), ValueError,
        r"10,000,000,000 trajectories of 5 steps needs .* bytes.*lower n_trajectories"),
    Bad("world_model_sample_too_many", lambda: POINT_MASS.sample(10**10), ValueError,
        r"drawing 10,000,000,000 policies needs .*480,000,000,000 bytes.*lower n"),
    Bad("dirichlet_sample_too_many", lambda: DIRICHLET.sample(10**10), ValueError, r"480,000,000,000 bytes"),
    Bad("intelligence_n_samples_too_many",
        lambda: us.intelligence(WORLD, UNIFORM, REWARD, method="monte_carlo", n_samples=10**11), ValueError,
        r"drawing 100,000,000,000 policies from ξ needs .* bytes.*lower n_samples"),
    Bad("scope_n_samples_too_many", lambda: _scope(g_method="monte_carlo", n_samples=10**11), ValueError,
        r"2,400,000,000,000 bytes"),
    Bad("importance_n_samples_too_many", lambda: _scope(g_method="importance", n_samples=10**11), ValueError,
        r"tilting 100,000,000,000 policies a level .*needs .* bytes.*lower n_samples"),
    Bad("enumeration_past_max_enumerate", lambda: us.UniformDeterministic(max_enumerate=2**62).support(40, 2),
        ValueError, r"enumerating ξ's 2\^40 policies needs .* bytes.*lower max_enumerate"),
    # ---------------------------------------------------------------- sets of worlds
    Bad("world_set_state_names",
        lambda: us.WorldSet([us.TabularMDP(P, [1, 0, 0], 0.9, state_names=["a", "b", "c"]),
                             us.TabularMDP(P, [1, 0, 0], 0.9, state_names=["a", "b", "d"])]), ValueError,
        r"worlds\[1\]\.state_names\[2\] is 'd' but worlds\[0\]\.state_names\[2\] is 'c'"),
    # ---------------------------------------------------------------- diagnostics and saving
    Bad("save_not_idata", lambda: us.save({"posterior": None}, "fit.nc"), TypeError,
        r"idata must be an arviz\.InferenceData"),
    Bad("predictive_check_level", lambda: us.diagnostics.predictive_check(_scope(), _fit(), level=0.0), ValueError,
        r"level is 0\.0; it must lie in \(0, 1\)"),
    Bad("predictive_check_max_draws", lambda: us.diagnostics.predictive_check(_scope(), _fit(), max_draws=0),
        ValueError, r"max_draws"),
    Bad("predictive_check_model", lambda: us.diagnostics.predictive_check(_fit(), _fit()), TypeError,
        r"model is a InferenceData; predictive_check checks a Utiliscope"),
    Bad("predictive_check_potential",
        lambda: us.diagnostics.predictive_check(_scope(likelihood=us.likelihoods.Exponential()), _fit()),
        TypeError, r"Exponential is an unnormalised potential.*use a generative likelihood"),
    Bad("predictive_check_demonstrations",
        lambda: us.diagnostics.predictive_check(_scope(), _fit(), demonstrations=us.Demonstrations.from_counts(
            np.ones((WORLD.n_states, WORLD.n_actions)))), ValueError,
        r"demonstrations is only used by a Utiliscope whose Dirichlet world model"),
    Bad("study_no_agents",
        lambda: us.diagnostics.recovery_study(lambda *a: None, lambda *a: None, 0, client="serial"), ValueError,
        r"n_agents is 0"),
]  # fmt: skip


def test_the_table_is_large_and_its_ids_distinct():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_bad_input_raises_a_clear_error(case: Bad):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises((ValueError, TypeError)) as info:
            case.call()
    message = str(info.value)
    assert info.type is case.error, f"{info.type.__name__}: {message}"
    assert re.search(case.match, message), message
    assert FIX_WORDS.search(message), f"the message does not say how to fix it: {message}"


# -------------------------------------------------------------------- impossible evidence, every engine
#: A Normal of vanishing sigma: no g that a utility gives lies within its reach of g′.
VANISHING = us.likelihoods.Normal(observed=2.3, sigma=1e-300)
LINEAR = us.priors.LinearUtility(np.eye(3))


def _infinite_g(world_model: us.WorldModel) -> us.Utiliscope:
    """A library whose only utility gives g = +inf: ξ holds only the worst policy, which the world model's
    policies beat, and every kernel gives g = +inf zero density."""
    worst = us.agents.Optimal(-REWARD).actions(WORLD)
    only = us.priors.UtilityLibrary(REWARD[None], [1.0], names=["only"])
    return _scope(world_model=world_model, utility_prior=only, policy_prior=us.PolicySet(worst[None]))


#: The problems: a vanishing sigma (library or linear prior), or a library whose only entry gives g = +inf.
PROBLEMS = {
    "vanishing_sigma": lambda wm: _scope(world_model=wm, likelihood=VANISHING, g_method="exact"),
    "vanishing_sigma_linear": lambda wm: _scope(world_model=wm, utility_prior=LINEAR, likelihood=VANISHING),
    "infinite_g": _infinite_g,
}
NUTS = {"tune": 10, "draws": 10, "chains": 1, "progressbar": False}
#: (problem, world model, how it is fitted: exact_posterior or fit's arguments, slow).
IMPOSSIBLE = [
    ("vanishing_sigma", POINT_MASS, "exact_posterior", False),
    ("vanishing_sigma", POINT_MASS, {"draws": 10, "chains": 1}, False),
    ("vanishing_sigma", DIRICHLET, {"draws": 10, "chains": 1}, False),
    ("vanishing_sigma", DIRICHLET, {"draws": 50, "chains": 1, "sampler": "smc"}, False),
    ("vanishing_sigma", DIRICHLET, {**NUTS, "sampler": "pymc"}, False),
    ("vanishing_sigma", DIRICHLET, {**NUTS, "sampler": "blackjax"}, True),
    ("vanishing_sigma_linear", DIRICHLET, {"draws": 10, "chains": 1}, False),
    ("vanishing_sigma_linear", DIRICHLET, {"draws": 50, "chains": 1, "sampler": "smc"}, False),
    ("infinite_g", POINT_MASS, "exact_posterior", False),
    ("infinite_g", POINT_MASS, {"draws": 10, "chains": 1}, False),
    ("infinite_g", DIRICHLET, {"draws": 10, "chains": 1}, False),
    ("infinite_g", DIRICHLET, {"draws": 50, "chains": 1, "sampler": "smc"}, False),
    ("infinite_g", DIRICHLET, {**NUTS, "sampler": "blackjax"}, True),
]


def test_a_vanishing_scale_puts_the_likelihood_mass_at_g_prime_without_a_warning():
    """``g_method="auto"`` asks where the likelihood's mass lies: at g′ itself, not a NaN of (−inf) − (−inf)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert us.models.likelihood_mass_range(VANISHING) == (2.3, 2.3)


def _impossible_id(problem, world_model, how, slow) -> str:
    engine = how if isinstance(how, str) else how.get("sampler", "auto")
    return f"{problem}-{world_model.kind}-{engine}"


@pytest.mark.parametrize(
    ("problem", "world_model", "how"),
    [
        pytest.param(*case[:3], id=_impossible_id(*case), marks=[pytest.mark.slow] if case[3] else [])
        for case in IMPOSSIBLE
    ],
)
def test_impossible_evidence_is_a_clear_error_from_every_engine(problem, world_model, how):
    """Zero likelihood under every utility is a ValueError that says so and what to change, never a NaN, a
    warning, or an error from inside a sampler (NUTS: before it starts, at its starting point)."""
    scope = PROBLEMS[problem](world_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*BLAS.*")  # PyTensor's note about its C backend
        with pytest.raises(ValueError, match="impossible under every utility") as info:
            scope.exact_posterior() if how == "exact_posterior" else scope.fit(**how)
    assert re.search(r"lower the likelihood's observed g′.*widen its scale", str(info.value)), info.value


# -------------------------------------------------------------------- warnings and stable agents
def test_a_repeated_library_entry_warns_naming_both():
    rewards = np.stack([REWARD, np.eye(3)[0], 2.0 * REWARD + 1.0])
    with pytest.warns(
        UserWarning, match=r"rewards\[2\] \('twice'\) is the same utility as rewards\[0\] \('once'\)"
    ):
        us.priors.UtilityLibrary(rewards, [1.0, 1.0, 2.0], names=["once", "other", "twice"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        us.priors.UtilityLibrary(rewards[:2], [1.0, 1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda r: us.agents.Boltzmann(r, beta=2.0),
        lambda r: us.agents.Myopic(r, horizon=3),
        lambda r: us.agents.Optimal(r),
        lambda r: us.agents.EpsilonGreedy(r, epsilon=0.1),
    ],
    ids=["boltzmann", "myopic", "optimal", "epsilon_greedy"],
)
def test_agents_plan_rewards_near_the_float_maximum(make):
    """Rewards near the float maximum give the policies of the same reward scaled down by a power of two
    (Boltzmann's β scaled up to match, so β·r is unchanged, up to a cap that changes no policy), without overflow
    or NaN."""
    huge = np.array([0.0, 1.7e308, -1.7e308])
    scale = 2.0**-1024
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy = make(huge).policy(WORLD)
    assert np.all(np.isfinite(policy))
    np.testing.assert_allclose(policy.sum(axis=1), 1.0)
    if isinstance(make(REWARD), us.agents.Boltzmann):  # β·r past the float maximum: the cap on the scaled β
        reference = us.agents.Boltzmann(huge * scale, beta=MAX_UNIT_BETA).policy(WORLD)
    else:
        reference = make(huge * scale).policy(WORLD)
    np.testing.assert_array_equal(policy, reference)
