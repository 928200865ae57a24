"""The linear utility prior: the constant-free basis, the PyMC variables, the potential and its sampler."""

import json
import math

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from utiliscope.priors import LinearUtility, UtilityPrior

SEED = 11
RNG = np.random.default_rng(SEED)
GENERIC = RNG.standard_normal((6, 3))

#: Feature sets with their directions that only add a constant, known by construction (columns).
FEATURE_SETS = {
    "one_hot_covering": (np.eye(4)[[0, 1, 2, 3, 0, 1, 2]], np.ones((4, 1))),
    "duplicate_column": (GENERIC[:, [0, 1, 2, 0]], np.array([[1.0], [0.0], [0.0], [-1.0]])),
    "constant_column": (np.column_stack([np.full(6, 2.0), GENERIC]), np.eye(4)[:, :1]),
    "generic": (GENERIC, np.zeros((3, 0))),
    "state_action": (RNG.standard_normal((3, 2, 3)), np.zeros((3, 0))),
}


def complement_projector(constant_directions):
    """I − N (NᵀN)⁻¹ Nᵀ for the known constant directions N."""
    n = constant_directions
    return np.eye(n.shape[0]) - n @ np.linalg.pinv(n)


def independent_bits(theta, prior):
    """K(theta) in bits from the formulas, with scipy's normal density."""
    if prior.sparsity == "laplace":
        return np.abs(theta).sum(axis=-1) / prior.scale
    p, s0, s1 = prior.slab_probability, prior.scale, prior.slab_scale
    mixture = (1 - p) * stats.norm.pdf(theta, scale=s0) + p * stats.norm.pdf(theta, scale=s1)
    return -np.log2(mixture).sum(axis=-1)


def uniform_directions(n, dimension, rng):
    z = rng.standard_normal((n, dimension))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


# --- the basis ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_basis_is_orthonormal_and_spans_the_complement(name):
    features, constant = FEATURE_SETS[name]
    prior = LinearUtility(features)
    basis = prior.basis
    assert prior.n_directions == features.shape[-1] - constant.shape[1]
    np.testing.assert_allclose(basis.T @ basis, np.eye(prior.n_directions), atol=1e-12)
    np.testing.assert_allclose(basis @ basis.T, complement_projector(constant), atol=1e-12)


def test_colours_covering_every_cell_give_zero_sum_theta():
    prior = LinearUtility(FEATURE_SETS["one_hot_covering"][0])
    thetas = prior.project(RNG.standard_normal((10, 4)))
    np.testing.assert_allclose(thetas.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(thetas, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(prior.project(thetas), thetas, atol=1e-12)
    np.testing.assert_allclose(prior.initial_direction.sum(), 0.0, atol=1e-12)


def test_project_and_reward():
    features, _ = FEATURE_SETS["constant_column"]
    prior = LinearUtility(features)
    theta = prior.project([5.0, 1.0, -2.0, 0.5])  # the bias weight 5 only adds a constant
    np.testing.assert_allclose(theta, np.array([0.0, 1.0, -2.0, 0.5]) / math.sqrt(5.25), atol=1e-12)
    np.testing.assert_allclose(prior.reward(theta), features @ theta)
    with pytest.raises(ValueError, match="theta only adds a constant"):
        prior.project([3.0, 0.0, 0.0, 0.0])
    action = LinearUtility(FEATURE_SETS["state_action"][0])
    assert action.reward([1.0, 0.0, 0.0]).shape == (3, 2)


# --- the potential --------------------------------------------------------------------------------------------

PRIORS = {
    "laplace": {"sparsity": "laplace", "scale": 0.3, "simplicity_weight": 1.3},
    "spike_and_slab": {
        "sparsity": "spike_and_slab",
        "scale": 0.1,
        "slab_scale": 0.8,
        "slab_probability": 0.3,
        "simplicity_weight": 0.7,
    },
}


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_log_prior_direction_is_minus_lambda_ln2_bits(name):
    prior = LinearUtility(GENERIC, **PRIORS[name])
    thetas = uniform_directions(50, 3, RNG)
    expected = -prior.simplicity_weight * math.log(2) * independent_bits(thetas, prior)
    np.testing.assert_allclose(prior.log_prior_direction(thetas), expected, rtol=1e-12)
    np.testing.assert_allclose(prior.description_bits(thetas[0]), independent_bits(thetas[0], prior), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_a_coordinate_axis_bounds_the_potential(name):
    # sample_prior's ceiling: no direction on the whole sphere beats e_0.
    prior = LinearUtility(np.eye(5)[[0, 1, 2, 3, 4, 0]], **PRIORS[name])
    thetas = uniform_directions(20_000, 5, RNG)
    thetas[:5] = np.eye(5)
    ceiling = -prior.simplicity_weight * math.log(2) * independent_bits(np.eye(5)[0], prior)
    assert np.max(prior.log_prior_direction(thetas)) <= ceiling + 1e-12


# --- the PyMC variables ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(PRIORS))
def colour_model(request):
    features, _ = FEATURE_SETS["one_hot_covering"]
    prior = LinearUtility(features, feature_names=["r", "g", "b", "y"], **PRIORS[request.param])
    with pm.Model(coords={"feature": prior.feature_names}) as model:
        pm.Deterministic("U", prior.create_theta(), dims="feature")
    # FAST_COMPILE skips the C compilation (~20 s cold) and computes the same numbers for these tiny graphs.
    outputs = model.replace_rvs_by_values([model["U"], model["simplicity"]])
    fn = model.compile_fn(outputs, inputs=model.value_vars, mode="FAST_COMPILE")
    return prior, model, model.compile_logp(mode="FAST_COMPILE"), model.compile_dlogp(mode="FAST_COMPILE"), fn


def test_initial_point_is_a_finite_unit_direction(colour_model):
    prior, model, logp, dlogp, outputs = colour_model
    point = model.initial_point()
    theta, _ = outputs(point)
    assert abs(np.linalg.norm(theta) - 1.0) < 1e-12
    assert abs(theta.sum()) < 1e-12
    np.testing.assert_allclose(theta, prior.initial_direction, atol=1e-12)
    assert np.isfinite(logp(point))
    assert np.all(np.isfinite(dlogp(point)))
    assert set(model.named_vars) >= {"z", "U", "simplicity", "z_radius"}


def test_model_density_is_normal_z_plus_the_radius_and_simplicity_potentials(colour_model):
    prior, _, logp, _, outputs = colour_model
    rng = np.random.default_rng(SEED)
    for z in rng.standard_normal((5, prior.n_directions)) * [[0.1], [1.0], [3.0], [1.0], [1.0]]:
        theta, potential = outputs({"z": z})
        assert abs(np.linalg.norm(theta) - 1.0) < 1e-12 and abs(theta.sum()) < 1e-12
        expected = -prior.simplicity_weight * math.log(2) * independent_bits(theta, prior)
        assert potential == pytest.approx(expected, rel=1e-10)
        radius = -0.5 * ((np.linalg.norm(z) - 1.0) / 0.25) ** 2  # isotropic: the direction's prior is unchanged
        assert logp({"z": z}) == pytest.approx(stats.norm.logpdf(z).sum() + radius + expected, rel=1e-10)


@pytest.mark.parametrize("size", [0.0, 1e-200, 1e-20])
def test_no_nan_near_the_origin(colour_model, size):
    prior, _, logp, dlogp, _ = colour_model
    point = {"z": np.full(prior.n_directions, size)}
    assert np.isfinite(logp(point))
    assert np.all(np.isfinite(dlogp(point)))


def test_a_given_initial_direction_is_projected():
    prior = LinearUtility(FEATURE_SETS["one_hot_covering"][0], initial_direction=[2.0, 0.0, 0.0, 0.0])
    expected = np.array([3.0, -1.0, -1.0, -1.0]) / math.sqrt(12.0)
    np.testing.assert_allclose(prior.initial_direction, expected, atol=1e-12)
    with pm.Model(coords={"feature": prior.feature_names}) as model:
        prior.create_theta()
    np.testing.assert_allclose(prior.basis @ model.initial_point()["z"], expected, atol=1e-12)


def test_create_theta_needs_a_model_with_the_feature_coordinate():
    prior = LinearUtility(GENERIC)
    with pytest.raises(TypeError, match=r"inside a `with pm\.Model"):
        prior.create_theta()
    with pm.Model(coords={"feature": ["a", "b"]}), pytest.raises(ValueError, match="'feature' has 2 entries"):
        prior.create_theta()


# --- sampling the prior ---------------------------------------------------------------------------------------


def test_zero_weight_samples_are_uniform_on_the_complement_sphere():
    features, constant = FEATURE_SETS["one_hot_covering"]
    prior = LinearUtility(features, simplicity_weight=0.0)
    n = 4000
    thetas = prior.sample_prior(n, seed=SEED)
    projector = complement_projector(constant)
    assert thetas.shape == (n, 4)
    np.testing.assert_allclose(np.linalg.norm(thetas, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(thetas @ projector, thetas, atol=1e-12)
    # Uniform on the unit sphere of a K'-dimensional subspace: mean 0, second moment P / K'.
    se_mean = thetas.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(thetas.mean(axis=0)) < 4 * se_mean)
    products = thetas[:, :, None] * thetas[:, None, :]
    se_products = products.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - projector / 3) < 4 * se_products + 1e-12)
    np.testing.assert_array_equal(prior.sample_prior(10, seed=SEED), thetas[:10])


@pytest.mark.parametrize(("name", "statistic"), [("laplace", "l1"), ("spike_and_slab", "max")])
def test_weighted_samples_match_importance_sampling(name, statistic):
    """The rejection sampler against self-normalised importance sampling of uniform directions (independent)."""
    prior = LinearUtility(GENERIC, **PRIORS[name])

    def f(theta):
        return np.abs(theta).sum(axis=1) if statistic == "l1" else np.abs(theta).max(axis=1)

    draws = f(prior.sample_prior(3000, seed=SEED))
    uniform = uniform_directions(200_000, 3, np.random.default_rng(SEED + 1))
    log_w = -prior.simplicity_weight * math.log(2) * independent_bits(uniform, prior)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    values = f(uniform)
    target = w @ values
    se_target = math.sqrt(np.sum(w**2 * (values - target) ** 2))
    se_draws = draws.std() / math.sqrt(draws.size)
    assert abs(draws.mean() - target) < 4 * math.hypot(se_target, se_draws)
    # The check has power: the weighted mean is far from the uniform one.
    assert abs(values.mean() - target) > 10 * math.hypot(se_target, se_draws)


def test_sample_prior_gives_up_when_acceptance_is_too_low():
    prior = LinearUtility(GENERIC, simplicity_weight=200.0)
    with pytest.raises(ValueError, match=r"rejection sampling is too slow at simplicity_weight=200\.0"):
        prior.sample_prior(100, seed=0, max_proposals=1000)


# --- saving and validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_dict_round_trip(name):
    prior = LinearUtility(FEATURE_SETS["state_action"][0], feature_names=["x", "y", "z"], **PRIORS[name])
    data = json.loads(json.dumps(prior.to_dict()))
    assert data["kind"] == "linear"
    back = UtilityPrior.from_dict(data)
    assert isinstance(back, LinearUtility)
    for key in ("sparsity", "scale", "slab_scale", "slab_probability", "simplicity_weight", "feature_names"):
        assert getattr(back, key) == getattr(prior, key)
    np.testing.assert_array_equal(back.features, prior.features)
    np.testing.assert_allclose(back.initial_direction, prior.initial_direction, atol=1e-15)
    lighter = prior.with_simplicity_weight(0.0)
    assert lighter.simplicity_weight == 0.0 and prior.simplicity_weight == PRIORS[name]["simplicity_weight"]


def test_default_scales():
    assert LinearUtility(GENERIC).scale == 0.25
    assert LinearUtility(GENERIC, sparsity="spike_and_slab").scale == 0.05


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"features": np.ones(3)}, ValueError, "features must be 2-d or 3-d"),
        ({"features": [[1.0, np.inf], [0.0, 1.0]]}, ValueError, r"features\[0, 1\] is inf"),
        ({"features": np.ones((4, 0))}, ValueError, "at least one state and one feature"),
        ({"features": GENERIC[:, :1]}, ValueError, r"features leave 1 direction\(s\)"),
        ({"features": np.eye(2)[[0, 1, 0]]}, ValueError, r"features leave 1 direction\(s\)"),
        ({"features": GENERIC, "simplicity_weight": -0.5}, ValueError, "simplicity_weight is -0.5"),
        ({"features": GENERIC, "sparsity": "horseshoe"}, ValueError, r"one of \['laplace', 'spike_and_slab'\]"),
        ({"features": GENERIC, "scale": 0.0}, ValueError, "scale is 0.0"),
        ({"features": GENERIC, "slab_scale": -1.0}, ValueError, "slab_scale is -1.0"),
        (
            {"features": GENERIC, "slab_probability": 1.0},
            ValueError,
            r"slab_probability is 1.0; it must lie in \(",
        ),
        ({"features": GENERIC, "feature_names": ["a", "a", "b"]}, ValueError, r"feature_names\[1\] = 'a'"),
        ({"features": np.eye(3), "initial_direction": [1.0, 1.0, 1.0]}, ValueError, "initial_direction only"),
        ({"features": GENERIC, "initial_direction": [1.0, 1.0]}, ValueError, "initial_direction has shape"),
    ],
)
def test_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        LinearUtility(**kwargs)


def test_the_prior_is_immutable():
    prior = LinearUtility(GENERIC)
    with pytest.raises(AttributeError, match="immutable"):
        prior.scale = 1.0
    with pytest.raises(ValueError, match="read-only"):
        prior.basis[0, 0] = 1.0
