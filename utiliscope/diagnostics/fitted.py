"""What a fit holds, read back from its InferenceData: the utility prior, the posterior over U (as library mass or
as weighted rewards), the worlds it was fitted on, its ξ, likelihood, world model and demonstrations, so that a
saved run can be acted on, diagnosed and rebuilt (``Utiliscope.from_idata``) without the script that made it."""

from __future__ import annotations

import arviz as az
import numpy as np

from utiliscope._saved import (
    DamagedRunError,
    check_axes_match,
    check_inference_data,
    converted,
    decoded,
    probabilities,
    reading,
)
from utiliscope._validation import check_count
from utiliscope.decisions import (
    DEFAULT_RULE,
    MAX_ENUMERATE,
    Decision,
    Rule,
    UtilitySample,
    decide,
    rule_from,
    sample_of_library,
)
from utiliscope.demonstrations import Demonstrations
from utiliscope.likelihoods import Likelihood, likelihood_from_dict
from utiliscope.policies import PolicyPrior, policy_prior_from_dict
from utiliscope.priors import UtilityLibrary, UtilityPrior
from utiliscope.world_model import WorldModel
from utiliscope.worlds.mdp import WorldSet

#: Linear priors: the posterior draws a decision uses (each needs its own optimum for its range).
MAX_UTILITIES = 1000


def saved_setting(idata: az.InferenceData, key: str, convert=None):
    """``idata.attrs[key]`` as the fit stored it, or ``convert`` of it (``int``, ``float``); a ValueError
    naming ``key`` when the run lacks it or ``convert`` fails."""
    if key not in idata.attrs:
        raise ValueError(
            f"this run's attrs have no {key!r} (it was saved by an older version, or not made by fit), so the "
            "model cannot be rebuilt from it; act on it with the model that made it, e.g. scope.decide(idata)"
        )
    if convert is not None:
        return converted(idata.attrs[key], convert, f"attrs[{key!r}]")
    return idata.attrs[key]


def saved_json(idata: az.InferenceData, key: str):
    """:func:`saved_setting` of a setting stored as a JSON string, decoded."""
    return decoded(saved_setting(idata, key), f"attrs[{key!r}]")


def likelihood_of(idata: az.InferenceData) -> Likelihood:
    """The fit's P(g′ | g), rebuilt from ``idata.attrs["likelihood"]``."""
    with reading("attrs['likelihood']"):
        return likelihood_from_dict(saved_json(idata, "likelihood"))


def world_model_of(idata: az.InferenceData) -> WorldModel:
    """The fit's P(pi | WM), rebuilt from ``idata.attrs["world_model"]``."""
    with reading("attrs['world_model']"):
        return WorldModel.from_dict(saved_json(idata, "world_model"))


def demonstrations_of(idata: az.InferenceData) -> Demonstrations:
    """The counts of a BoltzmannIRL or CombinedIRL fit (``idata.attrs["demonstrations"]``; no trajectories)."""
    with reading("attrs['demonstrations']"):
        return Demonstrations.from_counts(saved_json(idata, "demonstrations")["counts"])


def utility_prior_of(idata: az.InferenceData, scope=None) -> UtilityPrior:
    """``scope.utility_prior``, or the prior rebuilt from ``idata.attrs["utility_prior"]``."""
    if scope is not None:
        return scope.utility_prior
    if "utility_prior" not in idata.attrs:
        raise ValueError(
            "idata.attrs has no 'utility_prior' (it was not made by Utiliscope.fit); pass scope=... as well"
        )
    with reading("attrs['utility_prior']"):
        return UtilityPrior.from_dict(decoded(idata.attrs["utility_prior"], "attrs['utility_prior']"))


def utility_posterior_mass(idata: az.InferenceData) -> np.ndarray:
    """``P(U_i | data)``: the ``iid`` or ``smc`` engine's estimate over all its weighted draws (group
    ``utility_estimate``) when the fit has one, else the average over draws of ``posterior["U"]`` (dim
    ``utility``); normalised."""
    check_inference_data(idata)
    if "utility_estimate" in idata.groups():
        with reading("group utility_estimate"):
            return probabilities(idata.utility_estimate["probability"].values, "utility_estimate.probability")
    if "posterior" not in idata.groups() or "U" not in idata.posterior:
        raise DamagedRunError(
            "this run holds neither the group utility_estimate nor posterior['U'], so it has no posterior over U: "
            "save the run again from the fit"
        )
    with reading("posterior['U']"):
        return probabilities(idata.posterior["U"].mean(dim=("chain", "draw")).values, "posterior['U']")


def worlds_of(idata: az.InferenceData) -> WorldSet:
    """The worlds ζ a fit was made on (its group ``worlds``)."""
    if "worlds" not in idata.groups():
        raise ValueError(
            "this run has no 'worlds' group (it was saved by an older version or not made by fit); act on it "
            "with the model that made it, e.g. scope.decide(idata)"
        )
    with reading("group worlds"):
        worlds = WorldSet.from_dataset(idata["worlds"])
    check_axes_match(idata, worlds)
    return worlds


def policy_prior_of(idata: az.InferenceData) -> PolicyPrior:
    """The fit's ξ, rebuilt from ``idata.attrs["policy_prior"]`` (uniform deterministic if absent)."""
    if "policy_prior" not in idata.attrs:
        return policy_prior_from_dict({"name": "uniform_deterministic"})
    with reading("attrs['policy_prior']"):
        return policy_prior_from_dict(decoded(idata.attrs["policy_prior"], "attrs['policy_prior']"))


def posterior_utilities(
    idata: az.InferenceData, prior: UtilityPrior, n_actions: int, max_utilities: int = MAX_UTILITIES
) -> UtilitySample:
    """The posterior over U as weighted rewards: a library's entries with their posterior mass, or up to
    ``max_utilities`` of a linear prior's draws of theta (evenly spaced over chains and draws, equal weights)."""
    if isinstance(prior, UtilityLibrary):
        mass = utility_posterior_mass(idata)
        if len(mass) != len(prior):
            raise ValueError(
                f"idata holds a posterior over {len(mass)} utilities but the library has {len(prior)}; act on a "
                "fit with the model that made it"
            )
        return sample_of_library(prior.reward_table(n_actions), mass, prior.names)
    limit = check_count(max_utilities, "max_utilities")
    theta = idata.posterior["U"].transpose("chain", "draw", "feature").values
    theta = theta.reshape(-1, theta.shape[-1])
    keep = np.unique(np.linspace(0, len(theta) - 1, min(len(theta), limit)).round().astype(int))
    features = np.asarray(prior.features, dtype=float)
    if features.ndim == 2:
        features = np.repeat(features[:, None, :], n_actions, axis=1)
    rewards = np.einsum("sak,nk->nsa", features, theta[keep])
    return UtilitySample(rewards, np.full(len(keep), 1.0 / len(keep)), tuple(f"draw {i}" for i in keep))


def posterior_summary(idata: az.InferenceData, sample: UtilitySample, prior: UtilityPrior) -> dict:
    """What a decision records of the posterior it used: library mass per entry, or the linear mean direction."""
    if isinstance(prior, UtilityLibrary):
        return {"kind": "library", "probabilities": dict(zip(sample.labels, sample.weights.tolist(), strict=True))}
    theta = idata.posterior["U"].mean(("chain", "draw")).values
    return {"kind": "linear", "draws": len(sample.labels), "mean_direction": theta.tolist()}


def decide_fit(
    idata: az.InferenceData,
    rule: str | Rule = DEFAULT_RULE,
    *,
    scope=None,
    seed: int = 0,
    max_enumerate: int = MAX_ENUMERATE,
    max_utilities: int = MAX_UTILITIES,
    **parameters,
) -> Decision:
    """Choose a policy from a fit's posterior over U by a registered rule (see :mod:`utiliscope.decisions` and
    :meth:`~utiliscope.models.base.PosteriorModel.decide`); ``parameters`` are the rule's.

    With ``scope`` the worlds, prior and ξ are the model's; without it they are read from the run, so a saved
    run can be acted on alone (``us.load("run.nc")``).
    """
    check_inference_data(idata)
    chosen = rule_from(rule, **parameters)
    if scope is not None:
        worlds, prior = scope.worlds, scope.utility_prior
        policy_prior = getattr(scope, "policy_prior", None)
    else:
        worlds, prior, policy_prior = worlds_of(idata), utility_prior_of(idata), policy_prior_of(idata)
    sample = posterior_utilities(idata, prior, worlds.n_actions, max_utilities)
    return decide(
        worlds,
        sample,
        chosen,
        policy_prior=policy_prior,
        seed=seed,
        max_enumerate=max_enumerate,
        posterior=posterior_summary(idata, sample, prior),
    )


__all__ = [
    "MAX_UTILITIES",
    "decide_fit",
    "demonstrations_of",
    "likelihood_of",
    "policy_prior_of",
    "posterior_summary",
    "posterior_utilities",
    "saved_json",
    "saved_setting",
    "utility_posterior_mass",
    "utility_prior_of",
    "world_model_of",
    "worlds_of",
]
