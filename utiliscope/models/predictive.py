"""Prior and posterior predictive draws of g′ for a Utiliscope fit (the groups ArviZ's checks read)."""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import softmax

from utiliscope._validation import check_count
from utiliscope.models.target import Latents


def predictive(scope, idata: az.InferenceData, seed: int = 0, prior_draws: int | None = None) -> az.InferenceData:
    """A copy of a fit with draws of g′: groups ``posterior_predictive`` and ``prior_predictive`` (variable
    ``g_prime``, dims ``chain``, ``draw``) and ``prior`` (``g`` and ``U``, a library index or a direction).

    Posterior: one g′ per posterior draw, from the likelihood at that draw's g; with a library, at the g of
    an entry drawn from the draw's ``U`` probabilities, P(U | pi, g′_obs); with a linear prior over a finite
    world model, at the g of a candidate policy drawn from P(policy | theta, g′_obs). Prior: pi from the
    world model, U from the prior, g by the model's hard estimator (as the structure engines count), g′ from
    the likelihood; ``prior_draws`` of them (default: as many as the posterior has). A g of +inf gives g′ =
    +inf. Needs a generative likelihood (:attr:`~utiliscope.likelihoods.Likelihood.generative`).

    pm.sample_posterior_predictive is not used: the library's mixture node would draw the entry from its
    prior weights, not from each draw's P(U | pi, g′), and its g is the smoothed one of NUTS.
    """
    if not scope.likelihood.generative:
        raise TypeError(
            f"{type(scope.likelihood).__name__} is an unnormalised potential, not a distribution of g′: "
            "there is nothing to draw g′ from; use a generative likelihood shape for predictive checks"
        )
    rng = np.random.default_rng(seed)
    posterior = idata.posterior
    g_post = posterior_g(scope, posterior, rng)[0]
    n_prior = g_post.size if prior_draws is None else check_count(prior_draws, "prior_draws")
    g_prior, utility, utility_dims = _prior_g(scope, n_prior, rng)
    dims = ("chain", "draw")
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    prior_coords = {} if scope.is_library else {"feature": list(scope.utility_prior.feature_names)}
    groups = {
        "posterior_predictive": xr.Dataset({"g_prime": (dims, draw_g_prime(scope, g_post, rng))}, coords),
        "prior": xr.Dataset(
            {"g": (dims, g_prior[None]), "U": ((*dims, *utility_dims), utility[None])}, prior_coords
        ),
        "prior_predictive": xr.Dataset({"g_prime": (dims, draw_g_prime(scope, g_prior, rng)[None])}),
    }
    out = idata.copy()
    out.extend(az.InferenceData(**groups), join="right")
    return out


def posterior_g(scope, posterior, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """g per posterior draw (chain, draw), and the marginalised library entry or candidate policy drawn for it
    (None where the draw holds one g: a linear prior with Dirichlet rows)."""
    g = posterior["g"]
    if "utility" in g.dims:
        table = g.transpose("chain", "draw", "utility").values
        probabilities = posterior["U"].transpose("chain", "draw", "utility").values
    elif "policy" in g.dims:
        table = g.transpose("chain", "draw", "policy").values
        with np.errstate(divide="ignore"):
            log_w = np.log(scope.world_model.weights) + scope.target.g_prime.log_weight(Latents(g=table))
        probabilities = softmax(log_w, axis=-1)
    else:
        return g.transpose("chain", "draw").values, None
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=-1, keepdims=True), axis=-1)
    picks = (cumulative < rng.random(cumulative.shape[:-1])[..., None]).sum(axis=-1)
    picks = np.minimum(picks, table.shape[-1] - 1)
    return np.take_along_axis(table, picks[..., None], axis=-1)[..., 0], picks


def _prior_g(scope, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``n`` prior draws: (g, U, U's dims), U a library index or a linear direction."""
    policies = scope.world_model.sample(n, seed=rng)
    prior = scope.utility_prior
    if scope.is_library:
        picks = rng.choice(len(prior), size=n, p=prior.prior)
        return scope.target.hard_g(policies)[np.arange(n), picks], picks, ()
    theta = prior.sample_prior(n, seed=rng)
    return scope.target.hard_g(policies, theta), theta, ("feature",)


def draw_g_prime(scope, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One g′ from the likelihood at each g; +inf where g is +inf."""
    out = np.full(g.shape, np.inf)
    finite = np.isfinite(g)
    if finite.any():
        out[finite] = scope.likelihood.random(g[finite], rng)
    return out


__all__ = ["draw_g_prime", "posterior_g", "predictive"]
