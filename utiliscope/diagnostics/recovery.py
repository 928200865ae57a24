r"""Recovery of a synthetic agent's truth: did the fit find the utility U* and intelligence g* it was built from?

Library priors (``U`` in the posterior is ``P(U = i | pi, g′)`` per draw, dim ``utility``):

- the posterior mass on U*, ``P(U* | data) = mean over draws of P(U* | pi, g′)`` (Rao–Blackwellised), and its
  rank among the library's entries (1 = the most mass; ties share the better rank);
- the Bayes factor ``P(U* | data) / P(U*)``: reported beside the mass (docs/model.md#weak-evidence), since simpler
  utilities correlated with U* can take more mass than U* without the data speaking against it;
- the mass on the constant utility and on the negation −U* (``library.constant_index``, ``negation_index``).

Linear priors (``U`` is the unit direction theta, dim ``feature``), with θ* projected into the prior's
constant-free complement and normalised (``prior.project``):

- the cosine of the posterior mean direction with θ*, ``cos = (θ̄ · θ*) / ||θ̄||``, θ̄ the mean of the draws;
- the per-draw angles ``arccos(θ_d · θ*)`` in degrees, their median and equal-tailed credible interval, and the
  fraction of draws pointing away from θ* (cos < 0).

Both: whether g* lies in the equal-tailed credible interval of g — g of the posterior's pi under U* for library
priors (``posterior["g"].sel(utility=U*)``), the scalar g for linear priors; and, for each decision rule of
:mod:`utiliscope.decisions`, the policy loss ``1 − Ṽ_U*`` of the policy decided from the posterior and its g
under U* (:func:`decision_outcomes`), beside the agent's own g*.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import arviz as az
import numpy as np

from utiliscope._validation import as_float_array, check_positive
from utiliscope.decisions import Rule, decide, policy_loss, rule_from, rule_names, value_ranges
from utiliscope.diagnostics.fitted import (
    policy_prior_of,
    posterior_summary,
    posterior_utilities,
    utility_posterior_mass,
    utility_prior_of,
    worlds_of,
)
from utiliscope.intelligence import intelligence, truth_g_method
from utiliscope.priors import LinearUtility, UtilityLibrary
from utiliscope.priors.library import CANONICAL_ATOL, canonical_forms

#: Default probability of the credible intervals.
INTERVAL = 0.9
#: Relative residual below which an agent's reward counts as a linear function of the prior's features.
LINEAR_RTOL = 1e-8


@dataclass(frozen=True, eq=False)
class Truth:
    """What a synthetic agent really is: its utility U* and intelligence g* (bits).

    Parameters
    ----------
    utility : str or array_like
        For a library prior, the name of the library entry equal to U* (up to a positive affine map); for a
        linear prior, θ* (K,), any scale and shift (it is projected and normalised when compared).
    g : float
        g* = g(pi*, U*) in bits (may be +inf).
    name : str, optional
        A label for reports, e.g. the agent's repr.
    """

    utility: str | np.ndarray
    g: float
    name: str | None = None

    @classmethod
    def from_agent(cls, agent, scope, *, name: str | None = None) -> Truth:
        """The truth of ``agent`` in ``scope``'s problem.

        g* is computed with the scope's g method, policy prior ξ, number of samples and seed, so that it is
        measured like the model's g. For a library prior U* is the entry equal to the agent's reward up to a
        positive affine map (ValueError if there is none); for a linear prior θ* solves
        ``r = c · phi @ θ + d`` by least squares (ValueError if the reward is not of that form).
        """
        reward = agent.reward_table(scope.worlds)
        g_star = agent.true_intelligence(
            scope.worlds, scope.policy_prior, method=scope.g_method, n_samples=scope.n_samples, seed=scope.seed
        )
        return cls(
            utility_in_prior(scope.utility_prior, reward), float(g_star), name if name is not None else repr(agent)
        )


def utility_in_prior(prior, reward) -> str | np.ndarray:
    """U* as the prior expresses it: the name of the library entry equal to ``reward`` up to a positive affine
    map, or θ* for a linear prior (ValueError when the prior cannot express it)."""
    if isinstance(prior, UtilityLibrary):
        return prior.names[library_index_of(prior, reward)]
    return linear_direction_of(prior, reward)


def library_index_of(library: UtilityLibrary, reward) -> int:
    """Index of the library entry equal to ``reward[s, a]`` up to a positive affine map ``c·r + d`` (c > 0)."""
    table = np.asarray(reward, dtype=float)
    rewards = library.reward_table(table.shape[1]).reshape(len(library), -1)
    if rewards.shape[1] != table.size:
        raise ValueError(
            f"reward has shape {table.shape}; the library's rewards have {rewards.shape[1]} entries per utility"
        )
    canonical, constant = canonical_forms(rewards)
    target, target_constant = canonical_forms(table.reshape(1, -1))
    distance = np.abs(canonical - target).max(axis=1)
    found = np.flatnonzero((distance <= CANONICAL_ATOL) & (constant == target_constant[0]))
    if not found.size:
        raise ValueError(
            "reward is not equal to any library utility up to a positive affine map; add it to the library "
            "(UtilityLibrary(rewards=...)) or give Truth(utility=<library name>, g=...) directly"
        )
    return int(found[0])


def linear_direction_of(prior: LinearUtility, reward) -> np.ndarray:
    """θ* with ``reward[s, a] = c · phi[s, a] @ θ* + d``, projected into the prior's complement (unit norm)."""
    table = np.asarray(reward, dtype=float)
    phi = np.asarray(prior.features, dtype=float)
    if phi.ndim == 2:
        phi = np.repeat(phi[:, None, :], table.shape[1], axis=1)
    design = np.column_stack([phi.reshape(-1, phi.shape[-1]), np.ones(table.size)])
    solution, *_ = np.linalg.lstsq(design, table.ravel(), rcond=None)
    residual = np.linalg.norm(design @ solution - table.ravel())
    if residual > LINEAR_RTOL * max(np.linalg.norm(table), 1.0):
        raise ValueError(
            f"reward is not a linear function of the prior's features (least-squares residual {residual:.3g}); "
            "give Truth(utility=theta_star, g=...) directly"
        )
    return prior.project(solution[:-1], name="the agent's reward direction")


@dataclass(frozen=True)
class DecisionOutcome:
    """How a policy decided from the posterior by ``rule`` does under the true utility U*.

    ``policy_loss`` is ``1 − Ṽ_U*`` (0 optimal, 1 no better than uniform); ``g`` its intelligence under U* in
    bits, measured like the model's g (its method, ξ, sample size and seed).
    """

    rule: str
    policy_loss: float
    g: float


def decision_outcomes(
    idata: az.InferenceData,
    true_reward: np.ndarray,
    scope=None,
    rules: Sequence[str | Rule] | None = None,
) -> tuple[DecisionOutcome, ...]:
    """Decide with each rule from the fit's posterior and score the decision under ``true_reward`` (S, A).

    ``rules`` are rule names (with their default parameters) or rule objects; None: every registered rule. The
    worlds, ξ and g method are the scope's, or read from the run when ``scope`` is None. A decision that is a
    mixture of policies over several worlds is scored as a mixture (one policy per episode) for the loss, and by
    its occupancy-matched stationary policy for g, as the synthetic agents' g* is.
    """
    chosen = [rule_from(rule) for rule in (rule_names() if rules is None else rules)]
    worlds = scope.worlds if scope is not None else worlds_of(idata)
    policy_prior = getattr(scope, "policy_prior", None) if scope is not None else policy_prior_of(idata)
    method = (
        getattr(scope, "g_method", None) or idata.attrs.get("g_method") or truth_g_method(worlds, policy_prior)
    )
    n_samples = getattr(scope, "n_samples", None) or int(idata.attrs.get("n_samples", 1000))
    seed = getattr(scope, "seed", None) if scope is not None else int(idata.attrs.get("seed", 0))
    prior = utility_prior_of(idata, scope)
    sample = posterior_utilities(idata, prior, worlds.n_actions)
    # One set of ranges for every rule: each costs an optimum per posterior utility.
    ranges = value_ranges(worlds, sample.rewards)
    summary = posterior_summary(idata, sample, prior)
    outcomes = []
    for rule in chosen:
        decision = decide(worlds, sample, rule, policy_prior=policy_prior, posterior=summary, ranges=ranges)
        g = intelligence(
            worlds, decision.acting_policy(worlds), true_reward, policy_prior, method, n_samples, seed or 0
        )
        outcomes.append(DecisionOutcome(rule.name, policy_loss(worlds, decision, true_reward), g))
    return tuple(outcomes)


#: What a recovery reports of each rule's decision, as columns ``<number>_<rule>``.
DECISION_NUMBERS = ("policy_loss", "g_decided")


def decision_numbers(outcomes) -> dict[str, float]:
    """``policy_loss_<rule>`` and ``g_decided_<rule>`` columns."""
    numbers = {}
    for outcome in outcomes:
        numbers.update(zip(_columns(outcome.rule), (outcome.policy_loss, outcome.g), strict=True))
    return numbers


def decision_columns(numbers: tuple[str, ...] = DECISION_NUMBERS) -> tuple[str, ...]:
    """The columns :func:`decision_numbers` writes for every registered rule, in the registry's order (only
    those of ``numbers``, e.g. ``("policy_loss",)``)."""
    return tuple(column for rule in rule_names() for column in _columns(rule, numbers))


def _columns(rule: str, numbers: tuple[str, ...] = DECISION_NUMBERS) -> tuple[str, ...]:
    return tuple(f"{number}_{rule}" for number in numbers)


def _decision_lines(outcomes, g_star: float) -> list[str]:
    if not outcomes:
        return []
    head = f"  acting on the posterior (policy loss under U*: 0 optimal, 1 uniform; g* = {g_star:.3g} bits):"
    return [head] + [f"    {o.rule:<10} loss {o.policy_loss:.4g}, g {o.g:.3g} bits" for o in outcomes]


@dataclass(frozen=True, kw_only=True)
class Recovery:
    """What every recovery reports: g* against the credible interval of g, notes, and each decision's outcome."""

    g_star: float
    g_lower: float
    g_upper: float
    g_covered: bool
    interval: float
    notes: list[str] = field(default_factory=list)
    decisions: tuple[DecisionOutcome, ...] = ()

    def as_dict(self) -> dict[str, float]:
        """The numbers as a flat dict (names and notes left out), one row of a recovery study."""
        return {**_numbers(self), **decision_numbers(self.decisions)}

    def _summary(self) -> list[str]:
        """The lines of the prior's own numbers."""
        raise NotImplementedError

    def __str__(self) -> str:
        notes = (f"  note: {note}" for note in self.notes)
        return "\n".join([*self._summary(), _g_line(self), *_decision_lines(self.decisions, self.g_star), *notes])


@dataclass(frozen=True, kw_only=True)
class LibraryRecovery(Recovery):
    """Recovery numbers of a fit with a library prior (see the module docstring)."""

    truth: str
    mass_on_truth: float
    rank: int
    n_utilities: int
    prior_on_truth: float
    bayes_factor: float
    top: str
    mass_on_top: float
    mass_on_constant: float
    mass_on_negation: float

    kind = "library"

    def _summary(self) -> list[str]:
        return [
            f"Recovery of U* = {self.truth!r} (library of {self.n_utilities}):",
            f"  posterior mass {self.mass_on_truth:.4g} (prior {self.prior_on_truth:.4g}, Bayes factor "
            f"{self.bayes_factor:.4g}), rank {self.rank} of {self.n_utilities}",
            f"  most mass: {self.top!r} with {self.mass_on_top:.4g}",
            f"  mass on the constant utility {self.mass_on_constant:.4g}; on −U* {self.mass_on_negation:.4g}",
        ]


@dataclass(frozen=True, kw_only=True)
class LinearRecovery(Recovery):
    """Recovery numbers of a fit with a linear prior (see the module docstring)."""

    cosine: float
    angle: float
    angle_median: float
    angle_lower: float
    angle_upper: float
    p_opposite: float

    kind = "linear"

    def _summary(self) -> list[str]:
        return [
            "Recovery of theta* (linear prior):",
            f"  cosine of the posterior mean direction with theta*: {self.cosine:.4f} ({self.angle:.1f}°)",
            f"  angle per draw: median {self.angle_median:.1f}°, {100 * self.interval:g}% interval "
            f"[{self.angle_lower:.1f}°, {self.angle_upper:.1f}°]; pointing away (cos < 0): {self.p_opposite:.3g}",
        ]


def recovery(
    idata: az.InferenceData,
    truth: Truth,
    scope=None,
    *,
    interval: float = INTERVAL,
    rules: Sequence[str | Rule] | None = None,
) -> LibraryRecovery | LinearRecovery:
    """How well a fit recovers a synthetic agent's truth.

    Parameters
    ----------
    idata : arviz.InferenceData
        A Utiliscope fit (from ``fit`` or :func:`utiliscope.load`).
    truth : Truth
        U* and g*, e.g. ``Truth.from_agent(agent, scope)``.
    scope : Utiliscope, optional
        Its ``utility_prior`` is used when given; otherwise the prior is rebuilt from
        ``idata.attrs["utility_prior"]``, so that a saved run can be re-diagnosed.
    interval : float
        Probability of the equal-tailed credible intervals, in (0, 1).
    rules : sequence of str or Rule, optional
        Decision rules whose policy loss and g under U* are reported (:func:`decision_outcomes`): names (default
        parameters) or rule objects; None (default) every registered rule, ``()`` none. They need the worlds:
        the scope's, or those saved with the run.

    Returns
    -------
    LibraryRecovery or LinearRecovery
        With ``as_dict()`` (flat numbers) and ``str()``.
    """
    chosen = tuple(rule_from(rule) for rule in (rule_names() if rules is None else rules))
    if not isinstance(truth, Truth):
        raise TypeError(f"truth must be a diagnostics.Truth (e.g. Truth.from_agent(agent, scope)); got {truth!r}")
    probability = check_positive(interval, "interval")
    if probability >= 1:
        raise ValueError(f"interval is {interval}; it must lie in (0, 1), e.g. 0.9")
    prior = utility_prior_of(idata, scope)
    if isinstance(prior, UtilityLibrary):
        result = _library_recovery(idata, truth, prior, probability)
    else:
        result = _linear_recovery(idata, truth, prior, probability)
    if not chosen:
        return result
    if scope is None and "worlds" not in idata.groups():
        note = "the run holds no worlds (saved by an older version): decisions are not scored; pass scope=..."
        return replace(result, notes=[*result.notes, note])
    n_actions = scope.worlds.n_actions if scope is not None else idata["worlds"].sizes["action"]
    return replace(
        result, decisions=decision_outcomes(idata, _true_reward(truth, prior, n_actions), scope, chosen)
    )


def _true_reward(truth: Truth, prior, n_actions: int) -> np.ndarray:
    """U* as a reward table: the library entry, or ``phi @ θ*`` (equal to U* up to a positive affine map)."""
    if isinstance(prior, UtilityLibrary):
        return prior.reward_table(n_actions)[prior.index(truth.utility)]
    reward = np.asarray(prior.features, dtype=float) @ prior.project(truth.utility, name="truth.utility")
    return np.repeat(reward[:, None], n_actions, axis=1) if reward.ndim == 1 else reward


def credible_interval(draws: np.ndarray, interval: float) -> tuple[float, float]:
    """Equal-tailed interval of ``draws``, from empirical quantiles without interpolation.

    ``method="inverted_cdf"`` returns draws themselves, so +inf draws (g of a policy that beats every policy of
    ξ) give an infinite bound rather than the NaN that interpolating between infinities would.
    """
    tail = (1.0 - interval) / 2.0
    lower, upper = np.quantile(np.ravel(draws), [tail, 1.0 - tail], method="inverted_cdf")
    return float(lower), float(upper)


def _library_recovery(idata, truth: Truth, library: UtilityLibrary, interval: float) -> LibraryRecovery:
    if not isinstance(truth.utility, str):
        raise TypeError(
            f"truth.utility is {type(truth.utility).__name__}; with a library prior it is the name of a library "
            "entry (Truth.from_agent finds it)"
        )
    i = library.index(truth.utility)
    mass = utility_posterior_mass(idata)
    constant, negation = library.constant_index(), library.negation_index(i)
    top = int(np.argmax(mass))
    g_draws = idata.posterior["g"].sel(utility=truth.utility).values
    lower, upper = credible_interval(g_draws, interval)
    notes = [
        f"no {what} in the library" for what, index in (("constant", constant), ("−U*", negation)) if index is None
    ]
    return LibraryRecovery(
        truth=truth.utility,
        mass_on_truth=float(mass[i]),
        rank=int(1 + np.sum(mass > mass[i])),
        n_utilities=len(library),
        prior_on_truth=float(library.prior[i]),
        bayes_factor=float(mass[i] / library.prior[i]),
        top=library.names[top],
        mass_on_top=float(mass[top]),
        mass_on_constant=np.nan if constant is None else float(mass[constant]),
        mass_on_negation=np.nan if negation is None else float(mass[negation]),
        g_star=float(truth.g),
        g_lower=lower,
        g_upper=upper,
        g_covered=bool(lower <= truth.g <= upper),
        interval=interval,
        notes=notes,
    )


def _linear_recovery(idata, truth: Truth, prior: LinearUtility, interval: float) -> LinearRecovery:
    theta_star = prior.project(as_float_array(truth.utility, "truth.utility", ndim=1), name="truth.utility")
    theta = idata.posterior["U"].transpose("chain", "draw", "feature").values.reshape(-1, prior.n_features)
    theta = theta / np.linalg.norm(theta, axis=1, keepdims=True)
    mean = theta.mean(axis=0)
    norm = np.linalg.norm(mean)
    cosine = float(mean @ theta_star / norm) if norm > 0 else np.nan
    per_draw = np.clip(theta @ theta_star, -1.0, 1.0)
    angles = np.degrees(np.arccos(per_draw))
    angle_lower, angle_upper = credible_interval(angles, interval)
    g = idata.posterior["g"]
    notes = []
    if set(g.dims) == {"chain", "draw"}:
        g_lower, g_upper = credible_interval(g.values, interval)
    else:
        g_lower = g_upper = np.nan
        notes.append(
            f"g has dims {g.dims} (one g per candidate policy of a finite world model): no posterior of the "
            "operator's g is stored, so g* is not checked"
        )
    return LinearRecovery(
        cosine=cosine,
        angle=float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))),
        angle_median=float(np.median(angles)),
        angle_lower=angle_lower,
        angle_upper=angle_upper,
        p_opposite=float(np.mean(per_draw < 0)),
        g_star=float(truth.g),
        g_lower=g_lower,
        g_upper=g_upper,
        g_covered=bool(g_lower <= truth.g <= g_upper),
        interval=interval,
        notes=notes,
    )


#: Why g* can lie above the interval of g under U*, printed with the interval wherever it does.
G_ABOVE_INTERVAL = (
    "g* lies above it: g is computed for the world model's policies, not the agent's own; each Dirichlet row "
    "of a world model from demonstrations is shrunk towards uniform by its prior pseudo-count, so policies drawn "
    "from the belief look less intelligent than the agent (more demonstrations narrow the gap)"
)
#: Why g* can lie below it.
G_BELOW_INTERVAL = (
    "g* lies below it: the evidence pulls g towards g', so a g' above g* (or a world model with policies better "
    "than the agent's) moves the interval above g*"
)


def _g_line(result) -> str:
    inside = "inside" if result.g_covered else "OUTSIDE"
    line = (
        f"  g* = {result.g_star:.3g} bits is {inside} the {100 * result.interval:g}% interval of g "
        f"[{result.g_lower:.3g}, {result.g_upper:.3g}]"
    )
    if result.g_star > result.g_upper:
        return f"{line}\n{g_note(G_ABOVE_INTERVAL)}"
    if result.g_star < result.g_lower:
        return f"{line}\n{g_note(G_BELOW_INTERVAL)}"
    return line


def g_note(text: str) -> str:
    """``text`` in parentheses, indented and wrapped, to print under an interval of g."""
    return textwrap.fill(f"({text})", width=110, initial_indent="  ", subsequent_indent="   ")


def _numbers(result) -> dict[str, float]:
    """The int, float and bool fields of a recovery dataclass."""
    return {key: value for key, value in asdict(result).items() if isinstance(value, int | float | bool)}


__all__ = [
    "DECISION_NUMBERS",
    "DecisionOutcome",
    "LibraryRecovery",
    "LinearRecovery",
    "Truth",
    "credible_interval",
    "decision_columns",
    "decision_numbers",
    "decision_outcomes",
    "library_index_of",
    "linear_direction_of",
    "recovery",
    "utility_in_prior",
]
