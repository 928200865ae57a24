r"""Simulation-based calibration of a Utiliscope (Talts et al. 2018), with the fits run on Dask.

Simulation i, with its own seed (``numpy.random.SeedSequence(seed).spawn``):

1. draw U from the prior (a library index with probability ``library.prior``, or a direction
   ``prior.sample_prior``) and pi from the world model (a candidate index with probability ``w``, or Dirichlet
   rows);
2. compute ``g* = g(pi, U)`` by the hard count of the *simulator's own* g method (its reference policies and
   method, unsmoothed: the g that the exact, i.i.d. and SMC engines condition on; a NUTS fit's smoothed g
   differs from it by the smoothing's bias, which SBC then shows). A draw with ``g* = +inf`` has zero likelihood
   for every g′ (docs/model.md#infinite-g), so it carries no mass in the joint distribution of (U, pi, g′): it
   is redrawn, which is exact rejection sampling from that joint, and the table counts the redraws. The
   prior × world-model variants draw themselves (``target.draw_utility``, ``draw_policy``, ``g_of``);
3. draw ``g′ ~ P(g′ | g*)`` from the likelihood (``Exponential``, the 2^g potential, is not a distribution of
   g′: :func:`sbc` raises);
4. observe g′ on the fitted model's g′ term (its one home, read by every engine and the PyMC model's Data node)
   and refit, on a model built once per worker ("one compile per study"). A library prior with a finite world
   model has a closed-form posterior, the target's exact sum over the model's ``g`` table; every other case
   runs ``scope.fit``;
5. record the probability integral transform (PIT) of every true value under its posterior.

The PITs are randomised, so that they are exactly uniform on [0, 1] under a calibrated posterior even for
discrete variables and ties (Talts et al.'s rank statistic, rescaled):

* *Rao–Blackwellised* variables, whose posterior is a weighted set of values ``x_k`` with weights ``p_k``:
  ``PIT = Σ_k p_k [x_k < x*] + V · Σ_k p_k [x_k = x*]`` with ``V ~ Uniform(0, 1)``. These are the library index
  U (``p`` = the posterior ``P(U | g′)``, averaged over draws of ``P(U | pi, g′)``), the candidate index of a
  finite world model, and g (the values ``g[pi, U]`` of every draw and entry, weighted by ``P(U, pi | g′)``).
* *Sampled* variables (theta's components, pi's elements under Dirichlet rows, a linear prior's g): with L
  posterior draws, ``PIT = (#{x_d < x*} + V · (#{x_d = x*} + 1)) / (L + 1)``, Talts et al.'s rank of x* among
  the draws, randomised over ties and divided by L + 1.

g is ranked as the g of the posterior's own (pi, U) pairs, not as g(pi, U*) under the *true* U: a test
function that depends on the truth is not covered by SBC's uniformity theorem (the true pi is drawn from its
posterior given U*, not from its marginal posterior), and the latter is not uniform in general.

Uniformity test, per variable: the one-sample Kolmogorov–Smirnov test of the PITs against Uniform(0, 1)
(``scipy.stats.kstest``; exact for randomised PITs). :attr:`SBCResult.ok` asks every variable to pass at
``alpha / n_variables`` (Bonferroni). MCMC draws are autocorrelated, which makes sampled variables' ranks
over-dispersed (a ∩-shaped histogram) even for a correct model; use draws close to the effective sample size.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian inference
algorithms with simulation-based calibration. arXiv:1804.06788.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from pymc.pytensorf import compile as compile_pymc
from pymc.pytensorf import find_rng_nodes, reseed_rngs
from scipy import stats
from scipy.special import logsumexp, softmax

from utiliscope._validation import check_count, check_fraction, check_seed
from utiliscope.models.engines import auto_engine
from utiliscope.models.fit_settings import many_fits_kwargs
from utiliscope.models.many_fits import check_many_fits
from utiliscope.models.target import Latents
from utiliscope.models.utiliscope import Utiliscope
from utiliscope.studies.parallel import TaskSeed, run_tasks

#: Prior draws with g = +inf tried per simulation before it fails (they are redrawn, see the module docstring).
MAX_REDRAWS = 1000
#: Fit settings passed to ``scope.fit`` unless overridden (with PyMC's sampler also one core per fit, since Dask
#: runs fits in parallel: ``models.base.PYMC_MANY_FITS_OPTIONS``).
DEFAULT_FIT_KWARGS = {"progressbar": False}


# ---------------------------------------------------------------------------------------------------- PITs
# Why not simuk (ArviZ's SBC library, 0.2.0 here; checked for issue 25): it ranks the reference among the
# unweighted draws of pm.sample of a model's free RVs (count of draws < truth), so it cannot rank our
# library's U or a finite world model's policy, which are marginalised (Deterministic, not free RVs), nor
# use the iid/exact engines' weighted, Rao–Blackwellised P(U) (weighted_pit below); and it needs arviz_base
# (ArviZ 1.x), which this package's ArviZ 0.x environment lacks. So this package keeps its own ranks.
def weighted_pit(values: np.ndarray, weights: np.ndarray, truth: float, v: float) -> float:
    """``Σ p [x < x*] + v · Σ p [x = x*]``: the randomised PIT of ``truth`` under a weighted set of values."""
    values, weights = np.ravel(values), np.ravel(weights)
    return float(weights[values < truth].sum() + v * weights[values == truth].sum())


def rank_pit(draws: np.ndarray, truth: float, v: float) -> float:
    """``(#{x < x*} + v · (#{x = x*} + 1)) / (L + 1)``: the randomised rank of ``truth`` among L draws."""
    draws = np.ravel(draws)
    below, tied = np.count_nonzero(draws < truth), np.count_nonzero(draws == truth)
    return (below + v * (tied + 1)) / (draws.size + 1)


# ---------------------------------------------------------------------------------------------------- problem
@dataclass
class _Truth:
    utility: int | np.ndarray
    policy_index: int | None
    policy: np.ndarray
    g: float
    redraws: int


class _Problem:
    """What every simulation shares: the fitted scope, the simulating scope, and the fit settings.

    The compiled functions are cached properties, built on a worker's own copy the first time it needs them.
    """

    def __init__(self, scope: Utiliscope, simulator: Utiliscope, fit_settings: dict) -> None:
        self.scope = scope
        self.simulator = simulator
        self.fit_settings = fit_settings

    @property
    def exact(self) -> bool:
        """Whether the fitted model's posterior is a closed-form sum (its automatic engine is exhaustive)."""
        return auto_engine(self.scope).exhaustive

    @cached_property
    def variables(self) -> tuple[str, ...]:
        target = self.scope.target
        return (*target.utility_variables(), "g", *target.policy_variables())

    @cached_property
    def fit_g_table(self) -> np.ndarray:
        return self.scope.g_table_finite()

    @cached_property
    def g_prime_sampler(self):
        """``(g, seed) → g′ ~ P(g′ | g)`` under the simulator's likelihood, compiled once.

        The draws of ``likelihood.random`` (the same ``likelihood.dist``), without its per-call compile: that
        compile (``pm.draw``) cost 85% of a simulation of an exact problem.
        """
        g = pt.scalar("g", dtype="float64")
        draw = self.simulator.likelihood.dist(g)
        rngs = find_rng_nodes([draw])
        function = compile_pymc([g], draw)

        def sample(g_value: float, seed: np.random.SeedSequence) -> float:
            reseed_rngs(rngs, int(seed.generate_state(1)[0]))
            return float(function(g_value))

        return sample

    # -------------------------------------------------------------- simulation
    def simulate(self, rng: np.random.Generator) -> _Truth:
        """Draw (U, pi) from the simulator's target until g(pi, U) is finite (see the module docstring)."""
        target = self.simulator.target
        for redraws in range(MAX_REDRAWS + 1):
            utility = target.draw_utility(rng)
            index, policy = target.draw_policy(rng)
            g = target.g_of(utility, policy)
            if np.isfinite(g):
                return _Truth(utility, index, policy, g, redraws)
        raise ValueError(
            f"{MAX_REDRAWS + 1} prior draws of (U, pi) all gave g = +inf, which has zero likelihood; the "
            "simulator's world model puts (almost) all its mass on policies that beat every policy of ξ"
        )

    # -------------------------------------------------------------- posterior and PITs
    def pits(self, truth: _Truth, g_prime: float, fit_seed: int, v: np.ndarray) -> tuple[dict, dict]:
        """PIT of every variable (in :attr:`variables` order) and the fit's diagnostics."""
        self.scope.target.g_prime.set_observed(g_prime)
        if self.exact:
            return self._exact_pits(truth, v), {}
        idata = self.scope.fit(seed=fit_seed, **self.fit_settings)
        posterior = idata.posterior.stack(sample=("chain", "draw"))
        # A finite world model's pi is data, not a posterior variable: only U and g are then drawn.
        draws = {
            name: np.moveaxis(posterior[name].values, -1, 0) for name in ("U", "g", "pi") if name in posterior
        }
        diagnostics = {}
        if "sample_stats" in idata and "diverging" in idata.sample_stats:
            diagnostics["divergences"] = int(idata.sample_stats["diverging"].sum())
        return self._sampled_pits(truth, draws, v), diagnostics

    def _exact_pits(self, truth: _Truth, v: np.ndarray) -> dict:
        """Closed form: ``P(pi_j, U_i | g′) ∝ w_j exp(Σ terms)``, the fitted scope's target with its g table."""
        g = self.fit_g_table
        log_joint = self.scope.target.exact_log_joint(g)
        joint = np.exp(log_joint - logsumexp(log_joint))
        return {
            "U": weighted_pit(np.arange(g.shape[1]), joint.sum(axis=0), truth.utility, v[0]),
            "g": weighted_pit(g, joint, truth.g, v[1]),
            "pi": weighted_pit(np.arange(g.shape[0]), joint.sum(axis=1), truth.policy_index, v[2]),
        }

    def _sampled_pits(self, truth: _Truth, draws: dict, v: np.ndarray) -> dict:
        n_draws = draws["U"].shape[0]
        if self.scope.is_library:
            # Rao–Blackwellised: each draw carries P(U | pi_d, g′) and g[pi_d, U] for every library entry.
            u_weights = draws["U"] / n_draws
            pits = {
                "U": weighted_pit(np.arange(u_weights.shape[1]), u_weights.sum(axis=0), truth.utility, v[0]),
                "g": weighted_pit(draws["g"], u_weights, truth.g, v[1]),
            }
        else:
            theta = draws["U"]
            pits = {f"U[{k}]": rank_pit(theta[:, i], truth.utility[i], v[i]) for i, k in enumerate(self._features)}
            pits["g"] = self._linear_g_pit(draws["g"], truth, v[len(pits)])
        offset = len(pits)
        if self.scope.is_finite_world_model:
            pits["pi"] = self._linear_policy_pit(draws["g"], truth, v[offset])
            return pits
        flat_draws = draws["pi"].reshape(n_draws, -1)
        for i, (name, true_value) in enumerate(zip(self.variables[offset:], truth.policy.ravel(), strict=True)):
            pits[name] = rank_pit(flat_draws[:, i], true_value, v[offset + i])
        return pits

    @property
    def _features(self) -> tuple[str, ...]:
        return tuple(self.scope.utility_prior.feature_names)

    def _policy_weights(self, g_draws: np.ndarray) -> np.ndarray:
        """``P(pi_j | theta_d, g′) ∝ w_j P(g′ | g_dj)`` per draw of a linear prior over a finite world model."""
        log_w = np.log(self.scope.world_model.weights)[None, :] + self.scope.target.g_prime.log_weight(
            Latents(g=g_draws)
        )
        return softmax(log_w, axis=1) / g_draws.shape[0]

    def _linear_g_pit(self, g_draws: np.ndarray, truth: _Truth, v: float) -> float:
        if self.scope.is_finite_world_model:
            return weighted_pit(g_draws, self._policy_weights(g_draws), truth.g, v)
        return rank_pit(g_draws, truth.g, v)

    def _linear_policy_pit(self, g_draws: np.ndarray, truth: _Truth, v: float) -> float:
        weights = self._policy_weights(g_draws).sum(axis=0)
        return weighted_pit(np.arange(weights.size), weights, truth.policy_index, v)


def _simulation(problem: _Problem, payload: tuple[int, TaskSeed]) -> dict:
    """One simulation: draw the truth and g′, refit, and return the table row."""
    index, seed_sequence = payload
    simulate_seed, g_prime_seed, fit_seed, pit_seed = seed_sequence.spawn(4)
    truth = problem.simulate(np.random.default_rng(simulate_seed))
    g_prime = problem.g_prime_sampler(truth.g, g_prime_seed)
    v = np.random.default_rng(pit_seed).random(len(problem.variables))
    pits, diagnostics = problem.pits(truth, g_prime, int(fit_seed.generate_state(1)[0]), v)
    row = {"simulation": index, "g_true": truth.g, "g_prime": g_prime, "redraws": truth.redraws}
    if problem.simulator.is_library:
        row["U_true"] = problem.simulator.utility_prior.names[truth.utility]
    if truth.policy_index is not None:
        row["policy_true"] = truth.policy_index
    return {**row, **{f"pit_{name}": pits[name] for name in problem.variables}, **diagnostics}


# ---------------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SBCResult:
    """The outcome of :func:`sbc`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per simulation: ``simulation``, the true values (``U_true`` for a library, ``policy_true`` for
        a finite world model, ``g_true``), the simulated ``g_prime``, ``redraws`` (prior draws rejected for
        g = +inf), one ``pit_<variable>`` column per variable, ``divergences`` (MCMC fits) and ``error``
        (None, or the message of a failed simulation, whose PITs are NaN: ``"WorkerDied: ..."`` when its
        worker process died). ``table.attrs["incomplete"]`` is True when the run was interrupted
        (KeyboardInterrupt): the simulations finished before it are kept, the others carry an
        ``"Interrupted: ..."`` error and count as failed.
    variables : tuple of str
        ``U`` (library index) or ``U[feature]`` (theta's components), ``g``, and ``pi`` (finite world model:
        the candidate index) or ``pi[state,action]`` (Dirichlet rows).
    alpha : float
        Family-wise level of :attr:`ok`.
    """

    table: pd.DataFrame
    variables: tuple[str, ...]
    alpha: float = 0.01
    n_failed: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_failed", int(self.table["error"].notna().sum()))

    def pit(self, variable: str) -> np.ndarray:
        """The PITs of ``variable`` over the simulations that succeeded."""
        if variable not in self.variables:
            raise ValueError(f"variable is {variable!r}; choose one of {', '.join(self.variables)}")
        return self.table.loc[self.table["error"].isna(), f"pit_{variable}"].to_numpy(dtype=float, copy=True)

    @cached_property
    def tests(self) -> pd.DataFrame:
        """Per variable: the number of PITs, the Kolmogorov–Smirnov statistic against Uniform(0, 1), its
        p-value, and whether it passes at the Bonferroni level ``alpha / n_variables``."""
        rows = []
        level = self.alpha / len(self.variables)
        for name in self.variables:
            pit = self.pit(name)
            result = stats.kstest(pit, "uniform") if pit.size else None
            statistic = np.nan if result is None else float(result.statistic)
            p_value = np.nan if result is None else float(result.pvalue)
            rows.append(
                {"variable": name, "n": pit.size, "ks_statistic": statistic, "p_value": p_value,
                 "passed": bool(p_value > level)}
            )  # fmt: skip
        return pd.DataFrame(rows)

    @property
    def ok(self) -> bool:
        """Whether every variable passes its uniformity test (Bonferroni over variables) and none failed."""
        return bool(self.tests["passed"].all()) and self.n_failed == 0

    def histogram(self, variable: str, bins: int = 10) -> np.ndarray:
        """Counts of the PITs of ``variable`` in ``bins`` equal bins of [0, 1] (the SBC rank histogram)."""
        bins = check_count(bins, "bins")
        return np.histogram(self.pit(variable), bins=bins, range=(0.0, 1.0))[0]

    def plot(self, variables=None, axes=None):
        """ECDF of each variable's PITs minus the uniform CDF, with ArviZ's simultaneous 95% band.

        Drawn with ``arviz.plot_ecdf(pit, cdf=uniform.cdf, difference=True, confidence_bands=True)``; a
        calibrated variable stays inside its band.

        Parameters
        ----------
        variables : sequence of str, optional
            Default: all of :attr:`variables`.
        axes : sequence of matplotlib Axes, optional
            One per variable; new ones by default.

        Returns
        -------
        ndarray of matplotlib Axes
        """
        import arviz as az
        import matplotlib.pyplot as plt

        names = list(self.variables if variables is None else variables)
        if axes is None:
            _, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
        axes = np.ravel(axes)
        # A PIT is continuous on [0, 1]: the ECDF is drawn on a fixed grid there and the bands are simulated from
        # the uniform (ArviZ warns when it has to assume either).
        grid = np.linspace(0.0, 1.0, 101)
        for name, ax in zip(names, axes, strict=True):
            az.plot_ecdf(
                self.pit(name),
                cdf=stats.uniform.cdf,
                difference=True,
                confidence_bands=True,
                eval_points=grid,
                rvs=stats.uniform().rvs,
                ax=ax,
            )
            ax.set_title(f"SBC: {name}")
            ax.set_xlabel("PIT")
        return axes

    def __str__(self) -> str:
        verdict = "calibrated" if self.ok else "NOT calibrated"
        lines = [f"SBC over {len(self.table)} simulations ({self.n_failed} failed): {verdict}"]
        lines += [
            f"  {row.variable:<20} KS = {row.ks_statistic:.3f}  p = {row.p_value:.3g}  "
            f"{'ok' if row.passed else 'FAIL'}"
            for row in self.tests.itertuples()
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- entry
def sbc(
    scope: Utiliscope,
    n_simulations: int,
    seed: int = 0,
    client=None,
    *,
    simulate_from: Utiliscope | None = None,
    draws: int = 400,
    tune: int = 400,
    chains: int = 2,
    fit_kwargs: dict | None = None,
    alpha: float = 0.01,
    progressbar: bool = True,
) -> SBCResult:
    """Simulation-based calibration of ``scope`` (see the module docstring for what is drawn and ranked).

    Parameters
    ----------
    scope : Utiliscope
        The model to check; its likelihood must be generative (not ``Exponential``).
    n_simulations : int
        Number of simulated data sets (≥ 1); each is one fit.
    seed : int
        Root of the per-simulation seeds (``SeedSequence(seed).spawn``): the same seed gives the same table
        whatever the client and its number of workers.
    client : None, "serial", str or distributed.Client
        Where the fits run (:mod:`utiliscope.studies.parallel`): None starts a LocalCluster for the call.
    simulate_from : Utiliscope, optional
        Draw U, pi and g′ from this scope's prior, world model and likelihood instead of ``scope``'s (same
        library size or features, same world model kind and size). A mismatch, e.g. another λ, is how one
        checks that the test can fail.
    draws, tune, chains : int
        MCMC settings of each fit (unused when the posterior is exact: library prior and finite world model).
    fit_kwargs : dict, optional
        More arguments of ``scope.fit``, on top of ``DEFAULT_FIT_KWARGS`` (one core per fit, no progress bar).
    alpha : float
        Family-wise level of the uniformity tests in :attr:`SBCResult.ok`.
    progressbar : bool
        Show Dask's progress bar.

    Returns
    -------
    SBCResult
        ``.table`` (one row per simulation), ``.tests`` (KS per variable), ``.ok``, ``.plot()``.

    Examples
    --------
    >>> import numpy as np, utiliscope as us
    >>> world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    >>> library = us.priors.UtilityLibrary.from_features(world.features, max_terms=1)
    >>> policies = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, world.n_states))
    >>> scope = us.Utiliscope(world, us.WorldModel.from_policies(policies), library,
    ...                       us.likelihoods.Normal(observed=3.0))
    >>> result = us.diagnostics.sbc(scope, 50, client="serial", progressbar=False)
    >>> len(result.table), result.variables
    (50, ('U', 'g', 'pi'))
    """
    simulator = scope if simulate_from is None else simulate_from
    _check_scopes(scope, simulator)
    n_simulations = check_count(n_simulations, "n_simulations")
    alpha = check_fraction(alpha, "alpha", "0.01, the family-wise level of the uniformity tests")
    seed = check_seed(seed)
    counts = {"draws": draws, "tune": tune, "chains": chains}
    settings = check_many_fits(many_fits_kwargs({**counts, **DEFAULT_FIT_KWARGS}, fit_kwargs))
    problem = _Problem(scope, simulator, settings)
    payloads = list(enumerate(TaskSeed.children(seed, n_simulations)))
    results = run_tasks(_simulation, problem, payloads, client, progressbar=progressbar, label="simulation")
    rows = [
        {"simulation": i, **(r.row or {}), "error": r.error} for (i, _), r in zip(payloads, results, strict=True)
    ]
    table = pd.DataFrame(rows)
    for name in problem.variables:
        if f"pit_{name}" not in table:
            table[f"pit_{name}"] = np.nan
    table.attrs["incomplete"] = any(r.interrupted for r in results)
    return SBCResult(table, problem.variables, alpha)


def _check_scopes(scope, simulator) -> None:
    for name, value in (("scope", scope), ("simulate_from", simulator)):
        if not isinstance(value, Utiliscope):
            raise TypeError(f"{name} must be a us.Utiliscope; got {type(value).__name__}")
        if not value.likelihood.generative:
            raise TypeError(
                f"{name}.likelihood is {value.likelihood!r}, the 2^g potential, which is not a distribution of "
                "g′: SBC must simulate g′. Use a generative shape, e.g. us.likelihoods.AsymmetricLaplace"
            )
    if _shape_signature(scope) != _shape_signature(simulator):
        raise ValueError(
            f"simulate_from has {_shape_signature(simulator)} but scope has {_shape_signature(scope)}; the "
            "simulating scope must match the fitted one in prior kind and size, world model kind and size, "
            "states and actions"
        )


def _shape_signature(scope: Utiliscope) -> tuple:
    prior = scope.utility_prior
    size = len(prior) if scope.is_library else prior.n_features
    wm = scope.world_model
    candidates = wm.weights.size if scope.is_finite_world_model else None
    return (prior.kind, size, wm.kind, candidates, scope.worlds.n_states, scope.worlds.n_actions)


__all__ = ["DEFAULT_FIT_KWARGS", "MAX_REDRAWS", "SBCResult", "rank_pit", "sbc", "weighted_pit"]
