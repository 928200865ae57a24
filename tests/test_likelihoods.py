"""Likelihood shapes P(g′ | g), checked against scipy.stats densities and brute-force grids written here."""

import inspect
import math
import pickle

import matplotlib
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from utiliscope import likelihoods as lk

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LN2 = math.log(2.0)
GRID = np.linspace(0.0, 60.0, 601)


class Logistic(lk.Likelihood):
    """A user-defined shape: only a name, defaults and dist()."""

    name = "logistic_test_shape"
    defaults = {"s": 1.0}  # noqa: RUF012  (the base class declares it a ClassVar)

    def dist(self, g):
        return pm.Logistic.dist(mu=g, s=self.s)


def scipy_logpdf(likelihood, g):
    """log P(g′_obs | g) from scipy.stats, with each family's own parametrisation mapped here."""
    x, p = likelihood.observed, likelihood.params
    if isinstance(likelihood, lk.AsymmetricLaplace):
        # PyMC: b/(κ + 1/κ) · exp(−(x − μ) b s κ^s), s = sign(x − μ); scipy: f((x − loc)/scale)/scale with
        # f(y) = exp(−yκ) (y ≥ 0), exp(y/κ) (y < 0), over κ + 1/κ: the same κ, and scale = 1/b.
        return stats.laplace_asymmetric.logpdf(x, p["kappa"], loc=g, scale=1.0 / p["b"])
    if isinstance(likelihood, lk.Normal):
        return stats.norm.logpdf(x, loc=g, scale=p["sigma"])
    if isinstance(likelihood, lk.StudentT):
        return stats.t.logpdf(x, p["nu"], loc=g, scale=p["sigma"])
    if isinstance(likelihood, lk.SkewNormal):
        return stats.skewnorm.logpdf(x, p["alpha"], loc=g, scale=p["sigma"])
    if isinstance(likelihood, Logistic):
        return stats.logistic.logpdf(x, loc=g, scale=p["s"])
    raise AssertionError(type(likelihood))


def scipy_frozen(likelihood, g):
    """The scipy distribution of g′ given g, for checking draws."""
    p = likelihood.params
    if isinstance(likelihood, lk.AsymmetricLaplace):
        return stats.laplace_asymmetric(p["kappa"], loc=g, scale=1.0 / p["b"])
    if isinstance(likelihood, lk.Normal):
        return stats.norm(loc=g, scale=p["sigma"])
    if isinstance(likelihood, lk.StudentT):
        return stats.t(p["nu"], loc=g, scale=p["sigma"])
    return stats.skewnorm(p["alpha"], loc=g, scale=p["sigma"])


DEFAULTS = {
    "asymmetric_laplace": lk.AsymmetricLaplace(10.0),
    "normal": lk.Normal(10.0),
    "student_t": lk.StudentT(10.0),
    "skew_normal": lk.SkewNormal(10.0),
}
OTHERS = {
    "asymmetric_laplace": lk.AsymmetricLaplace(25.0, b=1.3, kappa=0.6),
    "normal": lk.Normal(0.0, sigma=1.7),
    "student_t": lk.StudentT(40.0, sigma=1.5, nu=3.0),
    "skew_normal": lk.SkewNormal(25.0, sigma=2.5, alpha=3.0),
}
ALL = [*DEFAULTS.values(), *OTHERS.values()]
IDS = [repr(likelihood) for likelihood in ALL]


@pytest.mark.parametrize("likelihood", ALL, ids=IDS)
def test_logp_matches_scipy(likelihood):
    np.testing.assert_allclose(likelihood.logp(GRID), scipy_logpdf(likelihood, GRID), rtol=1e-10, atol=1e-12)
    assert likelihood.logp(7.5) == pytest.approx(scipy_logpdf(likelihood, 7.5), rel=1e-10)


def test_custom_shape_logp_matches_scipy():
    custom = Logistic(4.0, s=0.5)
    np.testing.assert_allclose(custom.logp(GRID), scipy_logpdf(custom, GRID), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("likelihood", [*ALL, Logistic(4.0, s=0.5)], ids=[*IDS, "logistic"])
def test_rises_then_falls(likelihood):
    peak = likelihood.peak()
    values = likelihood.logp(GRID)
    steps = np.diff(values)
    below = GRID[1:] <= peak
    above = GRID[:-1] >= peak
    assert (below | above).sum() >= steps.size - 1, "only the step across the peak may go unchecked"
    assert np.all(steps[below] > 0), "logp must rise strictly up to the peak"
    assert np.all(steps[above] < 0), "logp must fall strictly after the peak"


@pytest.mark.parametrize("likelihood", [*ALL, Logistic(4.0, s=0.5)], ids=[*IDS, "logistic"])
def test_peak_is_the_maximum_of_a_brute_force_grid(likelihood):
    # Coarse scan of scipy's density over the reals, then a 1e-5-bit scan around its best point.
    coarse = np.linspace(-100.0, 200.0, 30001)
    centre = coarse[np.argmax(scipy_logpdf(likelihood, coarse))]
    fine = np.linspace(centre - 0.02, centre + 0.02, 4001)
    brute = fine[np.argmax(scipy_logpdf(likelihood, fine))]
    assert likelihood.peak() == pytest.approx(brute, abs=2e-5)


def test_skew_normal_peak_lies_on_the_side_of_the_gentle_fall():
    assert DEFAULTS["skew_normal"].peak() > 10.0  # alpha < 0: steep rise, peak above g′_obs
    assert OTHERS["skew_normal"].peak() < 25.0  # alpha > 0: the mirror image


@pytest.mark.parametrize("likelihood", [*DEFAULTS.values(), Logistic(4.0)], ids=[*DEFAULTS, "logistic"])
def test_plus_infinity_has_zero_density_and_no_nan_gradient(likelihood):
    g = pt.vector("g", dtype="float64")
    logp = likelihood.logp_tensor(g)
    grad = pytensor.grad(logp.sum(), g)
    values, slopes = pytensor.function([g], [logp, grad])(np.array([np.inf, 5.0]))
    assert values[0] == -np.inf
    assert np.isfinite(values[1])
    assert np.all(np.isfinite(slopes))
    assert likelihood.logp(np.inf) == -np.inf


def test_logistic_needs_the_guard():
    # Why the base class guards g = +inf: PyMC's own Logistic logp is NaN at mu = +inf.
    assert np.isnan(pm.logp(pm.Logistic.dist(mu=np.inf, s=1.0), 4.0).eval())


@pytest.mark.parametrize(
    ("likelihood", "rise", "fall"),
    [(lk.AsymmetricLaplace(10.0), LN2, 1.0), (lk.AsymmetricLaplace(3.0, b=1.3, kappa=0.6), 1.3 * 0.6, 1.3 / 0.6)],
    ids=["defaults", "b=1.3,kappa=0.6"],
)
def test_asymmetric_laplace_slopes_per_bit(likelihood, rise, fall):
    x = likelihood.observed
    assert likelihood.logp(x - 1.0) - likelihood.logp(x - 2.0) == pytest.approx(rise, rel=1e-9)
    assert likelihood.logp(x + 2.0) - likelihood.logp(x + 1.0) == pytest.approx(-fall, rel=1e-9)


def test_asymmetric_laplace_defaults_reproduce_two_to_the_g_below_the_peak():
    likelihood = lk.AsymmetricLaplace(20.0)
    g = np.arange(0.0, 20.0)
    ratios = np.exp(likelihood.logp(g + 1.0) - likelihood.logp(g))
    np.testing.assert_allclose(ratios, 2.0, rtol=1e-9)


@pytest.mark.parametrize("likelihood", ALL, ids=IDS)
def test_random_matches_the_distribution(likelihood):
    n, g = 20000, 3.0
    draws = likelihood.random(np.full(n, g), np.random.default_rng(12345))
    assert draws.shape == (n,)
    reference = scipy_frozen(likelihood, g)
    assert abs(draws.mean() - reference.mean()) < 4.0 * reference.std() / math.sqrt(n)
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3


def test_random_is_reproducible_and_keeps_the_shape():
    likelihood = DEFAULTS["normal"]
    first = likelihood.random(np.zeros((2, 3)), 7)
    assert first.shape == (2, 3)
    np.testing.assert_array_equal(first, likelihood.random(np.zeros((2, 3)), 7))
    assert isinstance(likelihood.random(1.0, np.random.default_rng(0)), float)
    with pytest.raises(ValueError, match="g"):
        likelihood.random([1.0, np.inf], 0)


def model_logp(likelihood, g_value):
    with pm.Model() as model:
        g = pm.Flat("g")
        likelihood.create_variable(g)
    assert [rv.name for rv in model.observed_RVs] == ["g_prime"]
    return model.compile_logp()({"g": g_value})


@pytest.mark.parametrize("likelihood", [*DEFAULTS.values(), Logistic(4.0, s=0.5)], ids=[*DEFAULTS, "logistic"])
def test_create_variable_adds_observed_g_prime_with_the_same_logp(likelihood):
    expected = scipy_logpdf(likelihood, 7.3)
    assert model_logp(likelihood, 7.3) == pytest.approx(expected, rel=1e-10)
    assert likelihood.logp(7.3) == pytest.approx(expected, rel=1e-10)


def test_create_variable_for_a_vector_g_and_at_infinity():
    likelihood = DEFAULTS["student_t"]
    with pm.Model() as model:
        g = pm.Flat("g", shape=3)
        likelihood.create_variable(g)
    values = np.array([1.0, 12.0, 30.0])
    assert model.compile_logp()({"g": values}) == pytest.approx(scipy_logpdf(likelihood, values).sum(), rel=1e-10)
    assert model.compile_logp()({"g": np.array([1.0, np.inf, 3.0])}) == -np.inf


@pytest.mark.parametrize(
    "likelihood", [DEFAULTS["normal"], DEFAULTS["skew_normal"]], ids=["normal", "skew_normal"]
)
def test_the_model_variable_draws_from_the_distribution(likelihood):
    n, g = 5000, 3.0
    with pm.Model():
        g_prime = likelihood.create_variable(pt.as_tensor(np.float64(g)))
    draws = pm.draw(g_prime, draws=n, random_seed=11)
    reference = scipy_frozen(likelihood, g)
    assert abs(draws.mean() - reference.mean()) < 4.0 * reference.std() / math.sqrt(n)
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3


def test_observed_can_be_model_data_and_logp_tensor_takes_a_value():
    likelihood = DEFAULTS["skew_normal"]
    with pm.Model() as model:
        g = pm.Flat("g")
        observed = pm.Data("g_prime_observed", 10.0)
        likelihood.create_variable(g, observed=observed)
    logp = model.compile_logp()
    assert logp({"g": 7.3}) == pytest.approx(scipy_logpdf(likelihood, 7.3), rel=1e-10)
    with model:
        pm.set_data({"g_prime_observed": 4.0})
    moved = lk.SkewNormal(4.0)
    assert model.compile_logp()({"g": 7.3}) == pytest.approx(scipy_logpdf(moved, 7.3), rel=1e-10)
    value = likelihood.logp_tensor(pt.as_tensor(np.array([7.3, np.inf])), value=4.0).eval()
    np.testing.assert_allclose(value, [scipy_logpdf(moved, 7.3), -np.inf], rtol=1e-10)


def test_exponential_is_the_monotone_two_to_the_g():
    plain = lk.Exponential()
    assert plain.rate == LN2 and plain.cap is None and plain.observed is None and not plain.generative
    np.testing.assert_allclose(np.exp(plain.logp(GRID)), 2.0**GRID, rtol=1e-12)
    assert np.all(np.diff(plain.logp(GRID)) > 0)
    assert plain.peak() == math.inf

    capped = lk.Exponential(rate=1.5, cap=12.0)
    np.testing.assert_allclose(capped.logp(GRID), 1.5 * np.minimum(GRID, 12.0), rtol=1e-12)
    assert capped.logp(np.inf) == pytest.approx(18.0)
    assert capped.peak() == 12.0
    assert model_logp(capped, 5.0) == pytest.approx(7.5)
    assert model_logp(capped, 30.0) == pytest.approx(18.0)


def test_exponential_cannot_be_simulated():
    with pytest.raises(TypeError, match="asymmetric_laplace"):
        lk.Exponential().random(3.0, 0)
    with pytest.raises(TypeError, match="generative"):
        lk.Exponential().dist(pt.as_tensor(3.0))


@pytest.mark.parametrize("likelihood", [*ALL, lk.Exponential(cap=9.0), Logistic(2.0, s=0.3)])
def test_dict_and_pickle_round_trips(likelihood):
    settings = likelihood.to_dict()
    assert settings["name"] == likelihood.name
    assert settings["observed"] == likelihood.observed
    rebuilt = lk.likelihood_from_dict(settings)
    assert type(rebuilt) is type(likelihood)
    assert rebuilt == likelihood and hash(rebuilt) == hash(likelihood)
    assert rebuilt.to_dict() == settings
    assert pickle.loads(pickle.dumps(likelihood)) == likelihood
    assert lk.as_likelihood(settings) == likelihood


def test_registry_lists_built_in_and_user_shapes():
    registry = lk.registered_likelihoods()
    expected = {"asymmetric_laplace", "normal", "student_t", "skew_normal", "exponential", Logistic.name}
    assert expected <= set(registry)
    assert registry[Logistic.name] is Logistic


def test_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="'normal' is already taken"):

        class Impostor(lk.Likelihood):
            name = "normal"


def test_custom_shape_defaults_attributes_and_signature():
    custom = Logistic(3.0)
    assert custom.s == 1.0 and custom.params == {"s": 1.0}
    assert str(inspect.signature(Logistic)) == "(observed, *, s=1.0)"


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: lk.AsymmetricLaplace(1.0, b=0.0), "b"),
        (lambda: lk.AsymmetricLaplace(1.0, kappa=-1.0), "kappa"),
        (lambda: lk.Normal(-1.0), "observed"),
        (lambda: lk.Normal(float("nan")), "observed"),
        (lambda: lk.Normal(float("inf")), "observed"),
        (lambda: lk.StudentT(1.0, nu=0.0), "nu"),
        (lambda: lk.SkewNormal(1.0, alpha=float("nan")), "alpha"),
        (lambda: lk.Exponential(rate=0.0), "rate"),
        (lambda: lk.Exponential(cap=-2.0), "cap"),
        (lambda: lk.likelihood_from_dict({"name": "cauchy", "observed": 1.0}), r"d\['name'\]"),
    ],
)
def test_bad_input_names_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_bad_types_name_the_argument():
    with pytest.raises(TypeError, match="sgima"):
        lk.Normal(1.0, sgima=2.0)
    with pytest.raises(TypeError, match="observed"):
        lk.Normal("ten")
    with pytest.raises(TypeError, match="likelihood"):
        lk.as_likelihood(3.0)


def test_skew_normal_alpha_may_be_negative_or_zero():
    assert lk.SkewNormal(1.0, alpha=0.0).alpha == 0.0
    assert lk.SkewNormal(1.0).alpha == -4.0


@pytest.mark.parametrize(
    "likelihood", [DEFAULTS["skew_normal"], lk.Exponential(), lk.Exponential(cap=8.0)], ids=["skew", "exp", "cap"]
)
def test_plot_returns_axes_with_lines(likelihood):
    ax = likelihood.plot()
    assert ax.get_lines()
    assert ax.get_xlabel() == "g (bits)"
    plt.close(ax.figure)


def test_plot_on_given_axes_and_grid():
    _, ax = plt.subplots()
    likelihood = DEFAULTS["asymmetric_laplace"]
    assert likelihood.plot(ax=ax, g=np.linspace(0, 30, 50)) is ax
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), scipy_logpdf(likelihood, np.linspace(0, 30, 50)))
    plt.close(ax.figure)
