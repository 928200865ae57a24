"""TOML specs: every mistake names its key and what is allowed; a valid spec builds the problem it declares."""

import copy
import tomllib
from pathlib import Path

import numpy as np
import pytest

import utiliscope as us
from utiliscope.models.fit_settings import DEFAULT_TARGET_ACCEPT
from utiliscope.spec import SpecError, fit_problem, read_spec, study_problem, truth_from_attrs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LAYOUT = ["S.a", "b.c"]
DELETE = object()

BASE = {
    "worlds": {"type": "gridworld", "layout": LAYOUT, "slip": [0.1, 0.3]},
    "prior": {"type": "library", "max_terms": 2, "max_weight": 2},
    "agent": {"type": "boltzmann", "utility": "+a-b", "beta": 4.0},
    "world_model": {"kind": "agent_policy"},
    "likelihood": {"name": "asymmetric_laplace", "observed": "agent"},
    "sampler": {"draws": 50, "chains": 2},
}
STUDY = {
    **{k: v for k, v in BASE.items() if k != "agent"},
    "study": {"n_agents": 2, "agents": [{"type": "boltzmann", "beta": 4.0}], "grid": {"simplicity_weight": [0.0]}},
}


def changed(base: dict, **sections) -> dict:
    """``base`` with the given sections merged in key by key (DELETE removes a key or a whole section)."""
    spec = copy.deepcopy(base)
    for name, table in sections.items():
        if table is DELETE:
            del spec[name]
            continue
        target = spec.setdefault(name, {})
        for key, value in table.items():
            if value is DELETE:
                del target[key]
            else:
                target[key] = value
    return spec


# (change, fragments the message must contain): the key and what is allowed there.
FIT_ERRORS = [
    ({"colour": {}}, ["[colour]", "worlds", "likelihood"]),
    ({"worlds": DELETE}, ["[worlds]"]),
    ({"worlds": {"type": "hexworld"}}, ["[worlds].type", "'hexworld'", "'gridworld'", "'garnet'"]),
    ({"worlds": {"slipp": 0.1}}, ["'slipp'", "[worlds]", "slip", "layout"]),
    ({"worlds": {"gamma": "high"}}, ["[worlds].gamma", "a number"]),
    ({"worlds": {"gamma": True}}, ["[worlds].gamma", "a number"]),
    ({"worlds": {"gamma": 1.5}}, ["[worlds]", "gamma", "[0, 1)"]),
    ({"worlds": {"layout": ["S.a", "b.%"]}}, ["[worlds]", "layout[1][2]"]),
    ({"worlds": {"layout": [1, 2]}}, ["[worlds].layout[0]"]),
    (
        {"worlds": {"slip": [0.1, 0.2, 0.3], "layout": [LAYOUT, LAYOUT]}},
        ["[worlds].layout has 2 entries", "give 1 or 3"],
    ),
    ({"worlds": {"type": "garnet", "layout": DELETE, "slip": DELETE}}, ["[worlds]", "'n_states'"]),
    ({"prior": {"type": "neural"}}, ["[prior].type", "'library'", "'linear'"]),
    ({"prior": {"max_terms": 1.5}}, ["[prior].max_terms", "an integer"]),
    ({"prior": {"sparsity": "laplace"}}, ["'sparsity'", "[prior]", "max_terms"]),
    (
        {"prior": {"type": "linear", "max_terms": DELETE, "max_weight": DELETE, "sparsity": "l0"}},
        ["[prior].sparsity", "'laplace'", "'spike_and_slab'"],
    ),
    ({"prior": {"simplicity_weight": -1}}, ["[prior]", "simplicity_weight", "≥ 0"]),
    ({"agent": {"type": "boltzman"}}, ["[agent].type", "'boltzmann'", "'quantilizer'", "'myopic'"]),
    ({"agent": {"beta": DELETE}}, ["[agent]", "'beta'"]),
    ({"agent": {"betta": 4}}, ["'betta'", "[agent]", "beta"]),
    ({"agent": {"beta": -1.0}}, ["[agent]", "beta", "> 0"]),
    ({"agent": {"utility": "+a+z"}}, ["[agent].utility", "'+a+z'", "not in the library"]),
    ({"agent": {"reward": [1, 0, 0, 0, 0, 0]}}, ["[agent]", "utility and reward", "only one"]),
    ({"agent": {"utility": DELETE}}, ["[agent]", "utility, reward, theta"]),
    ({"agent": {"utility": DELETE, "reward": [1, 2]}}, ["[agent].reward", "shape"]),
    ({"agent": {"type": "myopic", "beta": DELETE, "horizon": 2.5}}, ["[agent]", "horizon", "integer"]),
    ({"observations": {"counts": np.ones((6, 5)).tolist()}}, ["exactly one of [agent]", "[observations]"]),
    ({"world_model": {"kind": "dirichlet"}}, ["[agent.demonstrations]", "n_trajectories", "agent_policy"]),
    ({"world_model": {"kind": "posterior"}}, ["[world_model].kind", "'dirichlet'", "'sampled'"]),
    ({"world_model": {"kind": "policies"}}, ["[world_model].kind", "'policies'", "[observations].policies"]),
    (
        {"world_model": {"kind": "dirichlet"}, "agent": {"demonstrations": {"n_trajectories": 5}}},
        ["[agent.demonstrations]", "'horizon'"],
    ),
    (
        {"world_model": {"kind": "dirichlet"}, "agent": {"demonstrations": {"n_trajectories": 5, "horizon": 0}}},
        ["[agent.demonstrations]", "horizon", "≥ 1"],
    ),
    ({"likelihood": {"name": "cauchy"}}, ["[likelihood].name", "'asymmetric_laplace'", "'normal'"]),
    ({"likelihood": {"sigma": 2.0}}, ["'sigma'", "[likelihood]", "kappa"]),
    ({"likelihood": {"observed": "high"}}, ["[likelihood].observed", "'agent'", "bits"]),
    ({"likelihood": {"observed": -1.0}}, ["[likelihood]", "observed"]),
    ({"likelihood": {"name": "exponential"}}, ["'observed'", "[likelihood]", "rate"]),
    ({"likelihood": {"observed": DELETE}}, ["[likelihood]", "'observed'"]),
    ({"model": {"g_method": "magic"}}, ["[model].g_method", "'exact'", "'monte_carlo'", "'gaussian'"]),
    ({"model": {"policy_prior": "uniform"}}, ["[model].policy_prior", "'uniform_deterministic'"]),
    ({"sampler": {"sampler": "emcee"}}, ["[sampler].sampler", "'pymc'", "'nutpie'"]),
    ({"sampler": {"draws": "many"}}, ["[sampler].draws", "an integer"]),
    ({"sampler": {"thin": 2}}, ["'thin'", "[sampler]", "draws"]),
    ({"sampler": {"cores": 2}}, ["[sampler].cores", "'auto'", 'sampler = "pymc"']),
    ({"sampler": {"cores": 2, "sampler": "nutpie"}}, ["[sampler].cores", "'nutpie'"]),
    ({"sampler": {"n_steps": 5, "sampler": "iid"}}, ["[sampler].n_steps", "'iid'", 'sampler = "smc"']),
    ({"sampler": {"max_draws": -1}}, ["[sampler]", "max_draws"]),
    ({"sampler": {"target_mcse": 0.0, "sampler": "iid"}}, ["[sampler]", "target_mcse"]),
    ({"study": {"n_agents": 2}}, ["[study]", "utiliscope study"]),
]


@pytest.mark.parametrize(("change", "fragments"), FIT_ERRORS, ids=[str(c) for c, _ in FIT_ERRORS])
def test_bad_fit_spec_names_the_key_and_the_allowed_values(change, fragments):
    with pytest.raises(SpecError) as caught:
        fit_problem(changed(BASE, **change))
    assert isinstance(caught.value, ValueError)
    for fragment in fragments:
        assert fragment in str(caught.value)


OBSERVED_ERRORS = [
    ({"observations": {"counts": [[1, 2]]}}, ["[observations].counts", "shape (1, 2)", "S = 6, A = 5"]),
    ({"observations": {}}, ["[observations]", "exactly one of counts"]),
    ({"observations": {"counts": np.ones((6, 5)).tolist(), "weights": [1.0]}}, ["weights", "policies"]),
    ({"observations": {"policies": [np.full((6, 5), 0.3).tolist()]}}, ["[world_model]", "sums to"]),
    (
        {"observations": {"counts": np.ones((6, 5)).tolist()}, "likelihood": {"observed": "agent"}},
        ['observed = "agent"', "needs an agent"],
    ),
]


@pytest.mark.parametrize(("change", "fragments"), OBSERVED_ERRORS, ids=[str(c)[:60] for c, _ in OBSERVED_ERRORS])
def test_bad_observations_name_the_key(change, fragments):
    base = changed(BASE, agent=DELETE, world_model=DELETE, likelihood={"observed": 5.0})
    with pytest.raises(SpecError) as caught:
        fit_problem(changed(base, **change))
    for fragment in fragments:
        assert fragment in str(caught.value)


STUDY_ERRORS = [
    ({"study": DELETE}, ["[study] section"]),
    ({"agent": BASE["agent"]}, ["[[study.agents]]", "remove [agent]"]),
    ({"study": {"n_agents": DELETE}}, ["[study]", "'n_agents'"]),
    ({"study": {"agents": []}}, ["[study].agents is empty", "boltzmann"]),
    ({"study": {"agents": [{"type": "boltzmann"}]}}, ["[[study.agents]][0]", "'beta'"]),
    (
        {"study": {"agents": [{"type": "boltzmann", "beta": 1, "utility": "+a"}]}},
        ["'utility'", "[[study.agents]][0]"],
    ),
    ({"study": {"grid": {"lambda": [0.5]}}}, ["'lambda'", "[study.grid]", "simplicity_weight", "observed"]),
    ({"study": {"grid": {"simplicity_weight": 0.5}}}, ["[study.grid].simplicity_weight", "array"]),
    ({"study": {"grid": {"simplicity_weight": ["a lot"]}}}, ["[study.grid] setting 0", "simplicity_weight"]),
    ({"study": {"grid": {"likelihood": ["normal", "gauss"]}}}, ["setting", "'gauss'", "'normal'"]),
    ({"study": {"grid": {"observed": [4.0, "high"]}}}, ["[likelihood].observed", "'high'"]),
    ({"study": {"utilities": ["+a", "+q"]}}, ["[study].utilities[1]", "'+q'"]),
    ({"study": {"grid": {"n_trajectories": [10]}}}, ["n_trajectories", "agent's policy"]),
    ({"world_model": {"kind": "dirichlet"}}, ["[study.demonstrations]", "n_trajectories"]),
    ({"prior": {"type": "linear", "max_terms": DELETE, "max_weight": DELETE}}, ["[prior].type", "'library'"]),
]


@pytest.mark.parametrize(("change", "fragments"), STUDY_ERRORS, ids=[str(c)[:60] for c, _ in STUDY_ERRORS])
def test_bad_study_spec_names_the_key(change, fragments):
    with pytest.raises(SpecError) as caught:
        study_problem(changed(STUDY, **change))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_unreadable_files_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="no spec file"):
        read_spec(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[worlds\ntype = 'gridworld'\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        read_spec(broken)


def worlds_by_hand():
    return us.WorldSet([us.worlds.gridworld(LAYOUT, slip=0.1), us.worlds.gridworld(LAYOUT, slip=0.3)])


def test_fit_spec_builds_the_declared_problem():
    problem = fit_problem(changed(BASE, model={"g_method": "exact", "seed": 3}))
    scope, worlds = problem.scope, worlds_by_hand()
    np.testing.assert_array_equal(scope.worlds.transitions, worlds.transitions)
    library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    assert scope.utility_prior.names == library.names
    reward = library.reward_table(5)[library.index("+a-b")]
    agent = us.agents.Boltzmann(reward, beta=4.0)
    np.testing.assert_allclose(scope.world_model.policies[0], agent.policy(worlds), atol=1e-12)
    g_star = agent.true_intelligence(worlds)
    assert scope.likelihood.observed == pytest.approx(g_star, abs=1e-12)
    assert problem.truth.utility == "+a-b" and problem.truth.g == pytest.approx(g_star, abs=1e-12)
    assert problem.fit_kwargs == {
        "draws": 50,
        "tune": 1000,
        "chains": 2,
        "seed": 0,
        "sampler": "auto",
        "target_accept": DEFAULT_TARGET_ACCEPT,
    }


def test_truth_survives_the_attrs_round_trip():
    problem = fit_problem(BASE)
    truth = truth_from_attrs(problem.attrs)
    assert (truth.utility, truth.g, truth.name) == (problem.truth.utility, problem.truth.g, problem.truth.name)
    assert truth_from_attrs({}) is None


def test_demonstrations_and_the_dirichlet_world_model_follow_the_seed():
    demonstrations = {"n_trajectories": 30, "horizon": 8, "seed": 5}
    problem = fit_problem(
        changed(
            BASE, agent={"demonstrations": demonstrations}, world_model={"kind": "dirichlet", "concentration": 0.5}
        )
    )
    worlds = worlds_by_hand()
    library = us.priors.UtilityLibrary.from_features(worlds.features, feature_names=worlds.feature_names)
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index("+a-b")], beta=4.0)
    counts = agent.demonstrate(worlds, 30, 8, seed=5).counts
    np.testing.assert_array_equal(problem.scope.world_model.alpha, counts + 0.5)


def test_sampled_world_model_draws_dirichlet_rows():
    counts = np.arange(30.0).reshape(6, 5)
    spec = changed(
        BASE,
        agent=DELETE,
        observations={"counts": counts.tolist()},
        world_model={"kind": "sampled", "n_policies": 4000, "seed": 2, "concentration": 1.0},
        likelihood={"observed": 5.0},
    )
    policies = fit_problem(spec).scope.world_model.policies
    assert policies.shape == (4000, 6, 5)
    np.testing.assert_allclose(policies.sum(axis=2), 1.0, atol=1e-12)
    alpha = counts + 1.0
    total = alpha.sum(axis=1, keepdims=True)
    mean, var = alpha / total, alpha * (total - alpha) / (total**2 * (total + 1))
    standard_error = np.sqrt(var / 4000)
    assert np.all(np.abs(policies.mean(axis=0) - mean) < 5 * standard_error)


def test_observed_policies_give_the_closed_form_posterior():
    # Two candidate policies, a three-entry library: P(U_i | g') ∝ 2^(−K_i) Σ_j w_j N(g' | g_ji, σ), by hand.
    worlds = worlds_by_hand()
    uniform = np.full((6, 5), 0.2)
    stay = np.eye(5)[np.full(6, 4)]
    spec = changed(
        BASE,
        agent=DELETE,
        world_model=DELETE,
        prior={"max_terms": 1, "max_weight": 1},
        observations={"policies": [uniform.tolist(), stay.tolist()], "weights": [0.25, 0.75]},
        likelihood={"name": "normal", "observed": 3.0, "sigma": 1.5},
    )
    scope = fit_problem(spec).scope
    library = us.priors.UtilityLibrary.from_features(worlds.features, max_terms=1, max_weight=1)
    g, _ = us.intelligence_table(worlds, np.stack([uniform, stay]), library.reward_table(5))
    density = np.exp(-((3.0 - g) ** 2) / (2 * 1.5**2))
    unnormalised = 2.0**-library.description_bits * (np.array([0.25, 0.75]) @ density)
    np.testing.assert_allclose(scope.exact_posterior().values, unnormalised / unnormalised.sum(), rtol=1e-9)


def test_garnet_worlds_share_the_first_worlds_features():
    spec = changed(
        BASE,
        worlds={
            "type": "garnet",
            "layout": DELETE,
            "slip": DELETE,
            "n_states": 4,
            "n_actions": 2,
            "branching": 2,
            "n_features": 3,
            "seed": [0, 1],
        },
        prior={"type": "linear", "max_terms": DELETE, "max_weight": DELETE},
        agent={"utility": DELETE, "theta": [1.0, -1.0, 0.0]},
        likelihood={"name": "normal"},
    )
    problem = fit_problem(spec)
    first, second = (
        us.worlds.garnet(4, 2, 2, n_features=3, seed=0),
        us.worlds.garnet(4, 2, 2, n_features=3, seed=1),
    )
    np.testing.assert_array_equal(problem.scope.worlds.transitions[1], second.transitions)
    np.testing.assert_array_equal(problem.scope.worlds.features, first.features)
    expected = problem.scope.utility_prior.project([1.0, -1.0, 0.0])
    np.testing.assert_allclose(problem.truth.utility, expected, atol=1e-9)


def test_study_settings_are_the_grid_product_and_agents_cycle():
    grid = {"simplicity_weight": [0.0, 1.0], "observed": [4.0, "agent"], "likelihood": ["normal", "exponential"]}
    agents = [{"type": "boltzmann", "beta": 2.0}, {"type": "quantilizer", "q": 0.1}]
    problem = study_problem(changed(STUDY, study={"agents": agents, "grid": grid, "utilities": ["+a", "-c"]}))
    assert len(problem.settings) == 8
    assert {tuple(s.values()) for s in problem.settings} == {
        (lam, obs, name) for lam in (0.0, 1.0) for obs in (4.0, "agent") for name in ("normal", "exponential")
    }
    rng = np.random.default_rng(0)
    kinds = [type(problem.agent_factory(i, rng)[0]).__name__ for i in range(4)]
    assert kinds == ["Boltzmann", "Quantilizer", "Boltzmann", "Quantilizer"]
    agent, worlds = problem.agent_factory(0, np.random.default_rng(1))
    setting = {"simplicity_weight": 0.0, "observed": "agent", "likelihood": "normal"}
    assert setting in problem.settings
    scope = problem.scope_factory(agent, worlds, setting, np.random.default_rng(2))
    assert scope.likelihood.observed == pytest.approx(agent.true_intelligence(worlds), abs=1e-12)
    assert scope.utility_prior.simplicity_weight == 0.0


@pytest.mark.parametrize("name", ["quickstart_fit.toml", "quickstart_study.toml"])
def test_example_specs_are_valid(name):
    spec = read_spec(EXAMPLES / name)
    assert spec == tomllib.loads((EXAMPLES / name).read_text())
    problem = study_problem(spec) if "study" in spec else fit_problem(spec)
    assert problem is not None


def test_engine_options_reach_fit_from_the_registry():
    """[sampler] takes the chosen engine's options, the fields of its Options dataclass, and passes them to fit."""
    from utiliscope.spec.builders import sampler_settings

    settings = sampler_settings({"sampler": "iid", "target_mcse": 0.01, "max_draws": 4000})
    assert settings["target_mcse"] == 0.01 and settings["max_draws"] == 4000
    assert sampler_settings({"n_steps": 10})["n_steps"] == 10  # "auto" may move on to SMC


def test_example_readme_documents_every_key():
    text = (EXAMPLES / "README.md").read_text()
    from utiliscope.spec import schema as module

    schemas = [
        module.WORLD_COMMON,
        *module.WORLD_KEYS.values(),
        *module.PRIOR_KEYS.values(),
        module.MODEL_KEYS,
        module.SAMPLER_KEYS,
        module.WORLD_MODEL_KEYS,
        module.OBSERVATION_KEYS,
        module.STUDY_KEYS,
        module.DEMONSTRATION_KEYS,
        module.decide_schema(),
    ]
    keys = {key for schema in schemas for key in schema} | set(module.GRID_KEYS) | set(module.UTILITY_KEYS)
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"examples/README.md does not document {missing}"
