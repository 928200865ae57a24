r"""The Utiliscope's g′ evidence and the Boltzmann action likelihood in one model, each weighted.

For a utility library, a world model P(pi | WM), an observed intelligence g′ and demonstrations with counts
``n[s, a]``, the weighted joint density over the library entry U_i and the operator's policy pi is

.. math::

    p(U_i, \pi) \propto P(U_i)\, P(\pi \mid WM)\, P(g' \mid g(\pi, U_i))^{w_g}
        \prod_{s,a} \pi^{β}_i(a \mid s)^{w_a\, n[s, a]},

with ``pi^β_i`` entry i's Boltzmann policy at the fixed inverse temperature β
(:class:`~utiliscope.models.BoltzmannIRL`) and the weights ``w_g, w_a ≥ 0`` given by the user (default 1).
``w_g = 0`` is Boltzmann IRL, ``w_a = 0`` the Utiliscope. The library (and a finite world model's candidate
policies) are summed out exactly by log-sum-exp inside the observed ``g_prime``:

.. math::

    P(U_i \mid \text{data}) \propto P(U_i) \Big(\prod_{s,a} \pi^{β}_i(a \mid s)^{n[s, a]}\Big)^{w_a}
        \sum_j w_j\, P(g' \mid g(\pi_j, U_i))^{w_g}

for a finite world model (``WorldModel.from_policies``); :meth:`CombinedIRL.exact_posterior` computes it in
closed form. With Dirichlet rows every engine fits the same target (:mod:`utiliscope.models.target`): the
Utiliscope's terms with the g′ term weighted by ``w_g``, plus :class:`~utiliscope.models.target.ActionLikelihood`.

The demonstrations usually also made the world model (``WorldModel.from_demonstrations``): with both weights 1
they then count twice, once as a belief about pi and once as Boltzmann evidence. The weights make that choice
explicit rather than hidden. Only the Boltzmann term depends on the reward's scale (g does not).

Nodes: those of the Utiliscope (``U``, ``pi``, ``g``, ``g_prime``, ``g_prime_observed``), plus ``counts`` and
``action_log_likelihood`` (``Σ n log pi^β_i`` per entry, dim ``utility``), both data.
"""

from __future__ import annotations

import json

import numpy as np

from utiliscope._validation import check_positive
from utiliscope.counting import RTOL
from utiliscope.diagnostics.fitted import demonstrations_of, saved_json, saved_setting
from utiliscope.models.boltzmann import BoltzmannIRL
from utiliscope.models.target import ActionLikelihood
from utiliscope.models.utiliscope import Utiliscope


class CombinedIRL(Utiliscope):
    """The Utiliscope with the Boltzmann action likelihood of the demonstrations as a second, weighted evidence.

    Parameters
    ----------
    worlds : TabularMDP or WorldSet
        ζ.
    world_model : WorldModel
        P(pi | WM), as for :class:`~utiliscope.models.Utiliscope`.
    demonstrations : Demonstrations
        The observed behaviour whose counts enter the Boltzmann likelihood.
    utility_prior : UtilityLibrary
        P(U) ∝ 2^(−λ K(U)); only library priors.
    likelihood : Likelihood
        P(g′ | g).
    beta : float
        The Boltzmann inverse temperature, > 0, fixed.
    policy_prior, g_method, seed, n_samples, smoothing, rtol
        As for :class:`~utiliscope.models.Utiliscope`.
    g_weight, action_weight : float
        ``w_g`` and ``w_a`` ≥ 0, the exponents of the g′ likelihood and of the action likelihood.

    Examples
    --------
    >>> import utiliscope as us
    >>> from utiliscope.models.combined import CombinedIRL
    >>> world = us.worlds.gridworld(["S.a", "b.a"], slip=0.1)
    >>> library = us.priors.UtilityLibrary.from_features(world.features)
    >>> agent = us.agents.Boltzmann(library.rewards[1], beta=5.0)
    >>> demos = agent.demonstrate(world, n_trajectories=20, horizon=10, seed=0)
    >>> candidates = us.WorldModel.from_demonstrations(demos).sample(50, seed=0)
    >>> combined = CombinedIRL(world, us.WorldModel.from_policies(candidates), demos, library,
    ...                        us.likelihoods.AsymmetricLaplace(observed=4.0), beta=5.0)
    >>> bool(abs(float(combined.exact_posterior().sum()) - 1.0) < 1e-12)
    True
    """

    model_name = "combined_irl"

    def __init__(
        self,
        worlds,
        world_model,
        demonstrations,
        utility_prior,
        likelihood,
        beta: float,
        policy_prior=None,
        g_method: str = "exact",
        seed: int = 0,
        *,
        g_weight: float = 1.0,
        action_weight: float = 1.0,
        n_samples: int = 1000,
        smoothing: float | None = None,
        rtol: float = RTOL,
    ) -> None:
        if getattr(utility_prior, "kind", None) == "linear":
            raise TypeError(
                "CombinedIRL takes a UtilityLibrary prior; for a LinearUtility prior fit Utiliscope and "
                "BoltzmannIRL separately"
            )
        super().__init__(
            worlds,
            world_model,
            utility_prior,
            likelihood,
            policy_prior,
            g_method,
            seed,
            n_samples=n_samples,
            smoothing=smoothing,
            rtol=rtol,
        )
        self.boltzmann = BoltzmannIRL(self.worlds, demonstrations, utility_prior, beta)
        self.g_weight = check_positive(g_weight, "g_weight", allow_zero=True)
        self.action_weight = check_positive(action_weight, "action_weight", allow_zero=True)
        self.target.g_prime.weight = self.g_weight
        self.target.add(
            ActionLikelihood(self.action_log_likelihoods(), self.demonstrations.counts, self.action_weight)
        )

    @property
    def demonstrations(self):
        """The demonstrations of the action likelihood."""
        return self.boltzmann.demonstrations

    @property
    def beta(self) -> float:
        """The Boltzmann inverse temperature."""
        return self.boltzmann.beta

    def action_log_likelihoods(self) -> np.ndarray:
        """``Σ_{s,a} n[s, a] log pi^β_i(a | s)`` per library entry, shape (N,) (unweighted)."""
        return self.boltzmann.log_likelihoods()

    @classmethod
    def _saved_arguments(cls, idata) -> dict:
        return {
            **super()._saved_arguments(idata),
            "demonstrations": demonstrations_of(idata),
            "beta": saved_json(idata, "beta"),
            "g_weight": saved_setting(idata, "g_weight", float),
            "action_weight": saved_setting(idata, "action_weight", float),
        }

    def settings(self) -> dict:
        """The Utiliscope's settings plus the model's name, β, the weights and the demonstrations' counts."""
        return {
            **super().settings(),
            "beta": json.dumps(self.beta),
            "g_weight": self.g_weight,
            "action_weight": self.action_weight,
            "demonstrations": json.dumps({"counts": self.demonstrations.counts.tolist()}),
        }


__all__ = ["CombinedIRL"]
