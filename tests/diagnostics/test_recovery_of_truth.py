"""Recovery against a synthetic agent's truth, checked against numbers computed by hand from the draws."""

import json
import math

import arviz as az
import numpy as np
import pytest

import utiliscope as us
from utiliscope.diagnostics import LibraryRecovery, LinearRecovery, Truth, recovery
from utiliscope.io import load, save

TRUE = "+a-b"


@pytest.fixture(scope="module")
def agent(worlds, library):
    return us.agents.Boltzmann(library.reward_table(worlds.n_actions)[library.index(TRUE)], beta=4.0)


@pytest.fixture(scope="module")
def fitted(worlds, library, agent):
    """A finite world model holding the agent's policy and five others: exact i.i.d. draws, instant."""
    others = np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(5, worlds.n_states))
    policies = np.concatenate([agent.policy(worlds)[None], others])
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.AsymmetricLaplace(observed=6.0)
    )
    return scope, scope.fit(draws=400, chains=2, seed=1, progressbar=False)


def _affine_key(table: np.ndarray) -> np.ndarray:
    """A reward table centred and scaled to unit norm: equal keys mean equal up to c·r + d with c > 0."""
    centred = table.ravel() - table.mean()
    return centred / np.linalg.norm(centred)


def _interval_by_sorting(draws: np.ndarray, probability: float = 0.9) -> tuple[float, float]:
    """Equal-tailed interval: the ⌈n·q⌉-th smallest draw for q = 5% and 95%."""
    ordered = np.sort(np.ravel(draws))
    n = ordered.size
    return ordered[math.ceil(n * (1 - probability) / 2) - 1], ordered[math.ceil(n * (1 + probability) / 2) - 1]


def test_truth_from_agent_finds_the_library_entry_up_to_affine_maps(worlds, library, agent, fitted):
    scope, _ = fitted
    truth = Truth.from_agent(agent, scope)
    assert truth.utility == TRUE
    assert truth.g == pytest.approx(us.intelligence(worlds, agent.policy(worlds), agent.reward_table(worlds)))
    scaled = us.agents.Boltzmann(3.0 * agent.reward_table(worlds) + 2.0, beta=4.0)
    assert Truth.from_agent(scaled, scope).utility == TRUE
    negated = us.agents.Boltzmann(-agent.reward_table(worlds), beta=4.0)
    rewards = library.reward_table(worlds.n_actions)
    target = _affine_key(-rewards[library.index(TRUE)])
    expected = next(
        n
        for n, r in zip(library.names, rewards, strict=True)
        if np.ptp(r) > 0 and np.allclose(_affine_key(r), target)
    )
    assert Truth.from_agent(negated, scope).utility == expected


def test_truth_from_agent_refuses_a_reward_outside_the_library(worlds, fitted):
    scope, _ = fitted
    odd = us.agents.Optimal(np.arange(worlds.n_states, dtype=float) ** 2)
    with pytest.raises(ValueError, match="not equal to any library utility"):
        Truth.from_agent(odd, scope)


def test_library_recovery_matches_hand_computed_numbers(library, agent, fitted):
    scope, idata = fitted
    truth = Truth.from_agent(agent, scope)
    result = recovery(idata, truth)
    assert isinstance(result, LibraryRecovery)
    # Rao–Blackwellised mass against the closed form: within 4 Monte Carlo standard errors.
    exact = scope.exact_posterior().values
    per_draw = idata.posterior["U"].values.reshape(-1, len(library))
    mass = per_draw.mean(axis=0) / per_draw.mean(axis=0).sum()
    i = library.names.index(TRUE)
    se = per_draw[:, i].std() / math.sqrt(per_draw.shape[0])
    assert abs(result.mass_on_truth - exact[i]) <= 4 * se
    assert result.mass_on_truth == pytest.approx(mass[i], rel=1e-12)
    assert result.rank == 1 + sorted(mass, reverse=True).index(mass[i])
    prior = 2.0 ** -np.asarray(library.description_bits)
    assert result.bayes_factor == pytest.approx(mass[i] / (prior[i] / prior.sum()), rel=1e-10)
    constant = [n for n, r in zip(library.names, library.reward_table(5), strict=True) if np.ptp(r) == 0]
    assert result.mass_on_constant == pytest.approx(mass[library.names.index(constant[0])], rel=1e-12)
    rewards = library.reward_table(5)
    target = _affine_key(-rewards[i])
    negation = next(j for j, r in enumerate(rewards) if np.ptp(r) > 0 and np.allclose(_affine_key(r), target))
    assert result.mass_on_negation == pytest.approx(mass[negation], rel=1e-12)
    lower, upper = _interval_by_sorting(idata.posterior["g"].sel(utility=TRUE).values)
    assert (result.g_lower, result.g_upper) == (lower, upper)
    assert result.g_covered == (lower <= truth.g <= upper)
    assert result.top == library.names[int(np.argmax(mass))]


def test_recovery_reads_the_prior_from_a_saved_run(tmp_path, agent, fitted):
    scope, idata = fitted
    truth = Truth.from_agent(agent, scope)
    loaded = load(save(idata, tmp_path / "fit.nc"))
    assert recovery(loaded, truth).as_dict() == recovery(idata, truth, scope).as_dict()


def test_as_dict_is_flat_numbers(agent, fitted):
    scope, idata = fitted
    numbers = recovery(idata, Truth.from_agent(agent, scope)).as_dict()
    assert {"mass_on_truth", "rank", "bayes_factor", "mass_on_constant", "mass_on_negation", "g_covered"} <= set(
        numbers
    )
    assert all(isinstance(v, int | float | bool) for v in numbers.values())
    far = recovery(idata, Truth(TRUE, g=1e6))
    assert not far.g_covered and "OUTSIDE the 90% interval" in str(far)
    assert "g* lies above it" in str(far)  # with the explanation
    assert "g* lies below it" in str(recovery(idata, Truth(TRUE, g=-1e6)))


def _linear_idata(prior, theta_star, rng, n=(2, 300), noise=0.3):
    """Hand-built draws of theta around theta* and of a scalar g, with the prior in attrs like a fit."""
    raw = theta_star + noise * rng.normal(size=(*n, prior.n_features))
    theta = prior.project(raw.reshape(-1, prior.n_features)).reshape(raw.shape)
    g = rng.normal(5.0, 1.0, size=n)
    return az.from_dict(
        posterior={"U": theta, "g": g},
        coords={"feature": list(prior.feature_names)},
        dims={"U": ["feature"]},
        attrs={"utility_prior": json.dumps(prior.to_dict())},
    )


def test_linear_recovery_matches_hand_computed_angles():
    colours = np.eye(3)[[0, 1, 2, 0, 1, 2]]  # one-hot colours covering every state: theta + c·1 is the same
    prior = us.priors.LinearUtility(colours)
    theta_star = np.array([1.0, -1.0, 0.0]) / math.sqrt(2.0)
    idata = _linear_idata(prior, theta_star, np.random.default_rng(7))
    result = recovery(idata, Truth(theta_star + 5.0, g=5.0))  # the shift only adds a constant
    assert isinstance(result, LinearRecovery)
    theta = idata.posterior["U"].values.reshape(-1, 3)
    mean = theta.mean(axis=0)
    assert result.cosine == pytest.approx(mean @ theta_star / np.linalg.norm(mean), rel=1e-10)
    angles = np.degrees(np.arccos(np.clip(theta @ theta_star, -1, 1)))
    assert (result.angle_lower, result.angle_upper) == pytest.approx(_interval_by_sorting(angles), rel=1e-12)
    assert result.angle_median == pytest.approx(np.median(angles))
    assert result.p_opposite == np.mean(theta @ theta_star < 0)
    lower, upper = _interval_by_sorting(idata.posterior["g"].values)
    assert (result.g_lower, result.g_upper) == (lower, upper)
    assert result.g_covered
    assert not recovery(idata, Truth(theta_star, g=50.0)).g_covered
    assert recovery(idata, Truth(-theta_star, g=5.0)).cosine == pytest.approx(-result.cosine)


def test_truth_from_agent_with_a_linear_prior(worlds):
    prior = us.priors.LinearUtility(worlds.features, feature_names=worlds.feature_names)
    demos = us.Demonstrations.from_counts(np.ones((worlds.n_states, worlds.n_actions)))
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_demonstrations(demos), prior, us.likelihoods.Normal(observed=3.0)
    )
    agent = us.agents.Optimal(worlds.features @ np.array([2.0, -2.0, 0.0]) + 0.5)
    truth = Truth.from_agent(agent, scope)
    np.testing.assert_allclose(truth.utility, prior.project([1.0, -1.0, 0.0]), atol=1e-12)
    with pytest.raises(ValueError, match="not a linear function"):
        Truth.from_agent(us.agents.Optimal(np.arange(worlds.n_states, dtype=float) ** 2), scope)


def test_bad_arguments_are_named(fitted):
    _, idata = fitted
    with pytest.raises(TypeError, match=r"truth must be a diagnostics\.Truth"):
        recovery(idata, TRUE)
    with pytest.raises(ValueError, match="interval"):
        recovery(idata, Truth(TRUE, 1.0), interval=1.5)
    with pytest.raises(ValueError, match="not in the library"):
        recovery(idata, Truth("nonsense", 1.0))
    bare = az.from_dict(posterior={"U": idata.posterior["U"].values})
    with pytest.raises(ValueError, match="pass scope"):
        recovery(bare, Truth(TRUE, 1.0))
