"""The CLI's promise: every bad spec or file ends the command with one line on stderr and exit status 2.

The bad specs are generated from the spec schema (``utiliscope.spec``): for every key of every table (each world,
prior, agent and likelihood type with its own keys), a value of a wrong type and, where the key is numeric, values
out of range (−1, and NaN for keys that take any number). Each runs in-process through ``utiliscope.cli.main``,
which must refuse it before fitting anything: with one line that names the key, and nothing on stdout.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys

import arviz as az
import numpy as np
import pytest

from utiliscope.cli import main
from utiliscope.decisions import rule_class, rule_names
from utiliscope.likelihoods import registered_likelihoods
from utiliscope.spec import problems, schema

LAYOUT = ["Sa", "bc"]  # four cells, three colours: 5^4 = 625 deterministic policies, so building is quick
AGENT_PARAMETERS = {
    "optimal": {},
    "boltzmann": {"beta": 4.0},
    "epsilon_greedy": {"epsilon": 0.1},
    "quantilizer": {"q": 0.1},
    "myopic": {"horizon": 2},
    "random": {},
}
FIT = {
    "worlds": {"type": "gridworld", "layout": LAYOUT, "slip": 0.1, "gamma": 0.9, "weights": [1.0]},
    "prior": {"type": "library", "simplicity_weight": 1.0, "max_terms": 1, "max_weight": 1, "max_size": 1000},
    "agent": {
        "type": "boltzmann",
        "utility": "+a",
        "beta": 4.0,
        "demonstrations": {"n_trajectories": 5, "horizon": 3, "seed": 0},
    },
    "world_model": {"kind": "dirichlet", "concentration": 1.0, "n_policies": 10, "seed": 0},
    "likelihood": {"name": "normal", "observed": 2.0, "sigma": 2.0},
    "model": {
        "g_method": "exact",
        "n_samples": 100,
        "seed": 0,
        "smoothing": 0.01,
        "policy_prior": "uniform_deterministic",
        "policy_concentration": 1.0,
    },
    "sampler": {"draws": 10, "tune": 10, "chains": 1, "seed": 0, "sampler": "auto", "target_accept": 0.8},
}
GARNET = {
    **{k: v for k, v in FIT.items() if k != "agent"},
    "worlds": {"type": "garnet", "n_states": 3, "n_actions": 2, "branching": 2, "n_features": 3, "seed": 0},
    "observations": {"counts": [[1, 0], [0, 1], [1, 1]]},
}
POLICIES = {
    **GARNET,
    "world_model": {"kind": "policies"},
    "observations": {"policies": [[[0.5, 0.5]] * 3, [[1.0, 0.0]] * 3], "weights": [0.5, 0.5]},
}
LINEAR = {
    **FIT,
    "prior": {"type": "linear", "sparsity": "laplace", "scale": 1.0, "slab_scale": 1.0, "slab_probability": 0.5},
    "agent": {**{k: v for k, v in FIT["agent"].items() if k != "utility"}, "theta": [1.0, 0.0, 0.0]},
}
STUDY = {
    **{k: v for k, v in FIT.items() if k != "agent"},
    "world_model": {"kind": "sampled", "n_policies": 10},
    "study": {
        "n_agents": 1,
        "seed": 0,
        "agents": [{"type": "boltzmann", "beta": 4.0}],
        "utilities": ["+a"],
        "demonstrations": {"n_trajectories": 5, "horizon": 3},
        "grid": {"simplicity_weight": [1.0], "observed": [2.0], "n_trajectories": [5], "likelihood": ["normal"]},
    },
}
#: Keys whose value may be any finite number, so −1 is in range.
SIGNED = {"alpha"}


def _value(v) -> str:
    """``v`` as a TOML value (inline tables and arrays)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items() if x is not None) + "}"


def toml(spec: dict) -> str:
    """A spec as TOML: one table per section, nested tables inline; None leaves a key out."""
    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in table.items() if v is not None)
        if isinstance(table, dict)
        else f"{name} = {_value(table)}\n"
        for name, table in spec.items()
    )


def _wrong_type(rule: schema.Key):
    """A value of a TOML type the key does not take."""
    for candidate in ("text", 1.5, [1.0], {"x": 1}):
        if not isinstance(candidate, rule.types):
            return candidate
    raise AssertionError(rule)


def _bad_values(key: str, rule: schema.Key) -> list:
    values = [_wrong_type(rule)]
    if rule.choices is not None:
        values.append("nonsense")
    numeric = int in rule.types or float in rule.types
    if numeric and key not in SIGNED:
        values.append(-1)
    if float in rule.types:
        values.append(math.nan)
    return values


def _cases(base: dict, path: tuple[str, ...], keys: dict[str, schema.Key], label: str) -> list:
    """One bad spec per bad value of each key of the table at ``path`` in ``base``."""
    cases = []
    for key, rule in keys.items():
        for value in _bad_values(key, rule):
            spec = copy.deepcopy(base)
            table = spec
            for part in path:
                table = table[part]
            table[key] = value
            if key in ("utility", "reward", "theta"):  # one utility at a time
                for other in {"utility", "reward", "theta"} - {key}:
                    table.pop(other, None)
            cases.append(pytest.param(spec, key, id=f"{label}.{key}={value!r}"))
    return cases


def _agent(kind: str) -> dict:
    utility = {} if kind == "random" else {"utility": "+a"}
    return {"type": kind, **AGENT_PARAMETERS[kind], **utility, "demonstrations": FIT["agent"]["demonstrations"]}


def _fit_cases() -> list:
    cases = _cases(FIT, ("worlds",), schema.world_schema("gridworld"), "gridworld")
    cases += _cases(GARNET, ("worlds",), schema.world_schema("garnet"), "garnet")
    cases += _cases(FIT, ("prior",), schema.prior_schema("library"), "library")
    cases += _cases(LINEAR, ("prior",), schema.prior_schema("linear"), "linear")
    for kind in schema.AGENTS:
        base = {**FIT, "agent": _agent(kind)}
        if kind == "random":
            base["likelihood"] = FIT["likelihood"]
        cases += _cases(base, ("agent",), schema.agent_schema(kind, True), kind)
    cases += _cases(FIT, ("agent", "demonstrations"), schema.DEMONSTRATION_KEYS, "demonstrations")
    cases += _cases(FIT, ("world_model",), schema.WORLD_MODEL_KEYS, "world_model")
    cases += _cases(GARNET, ("observations",), schema.OBSERVATION_KEYS, "counts")
    cases += _cases(POLICIES, ("observations",), schema.OBSERVATION_KEYS, "policies")
    for name in registered_likelihoods():
        table = {"name": name, **({"observed": 2.0} if "observed" in schema.likelihood_schema(name) else {})}
        cases += _cases({**FIT, "likelihood": table}, ("likelihood",), schema.likelihood_schema(name), name)
    cases += _cases(FIT, ("model",), schema.MODEL_KEYS, "model")
    cases += _cases(FIT, ("sampler",), schema.SAMPLER_KEYS, "sampler")
    decide = schema.decide_schema()  # read from the rule registry: each rule with its own parameters
    cases += _cases({**FIT, "decide": {}}, ("decide",), {key: decide[key] for key in ("rule", "out")}, "decide")
    for name in rule_names():
        own = {key: decide[key] for key in rule_class(name).parameter_names()}
        cases += _cases({**FIT, "decide": {"rule": name}}, ("decide",), own, f"decide.{name}")
    return cases


def _study_cases() -> list:
    cases = _cases(STUDY, ("study",), schema.STUDY_KEYS, "study")
    demonstrations = {k: v for k, v in schema.DEMONSTRATION_KEYS.items() if k != "seed"}
    cases += _cases(STUDY, ("study", "demonstrations"), demonstrations, "study.demonstrations")
    grid = {key: schema.Key((list,)) for key in schema.GRID_KEYS}
    cases += _cases(STUDY, ("study", "grid"), grid, "study.grid")
    for key, value in (("simplicity_weight", -1.0), ("observed", math.nan), ("n_trajectories", 0)):
        spec = copy.deepcopy(STUDY)
        spec["study"]["grid"][key] = [value]
        cases.append(pytest.param(spec, key, id=f"study.grid.{key}=[{value!r}]"))
    for kind in schema.AGENTS:
        base = copy.deepcopy(STUDY)
        base["study"]["agents"] = [{"type": kind, **AGENT_PARAMETERS[kind]}]
        cases += _cases(base, ("study", "agents", 0), schema.agent_schema(kind, False), f"study.{kind}")
    # The sampler's settings of a study, without the seed that each fit draws from the study's.
    cases += _cases(STUDY, ("sampler",), {k: v for k, v in schema.SAMPLER_KEYS.items() if k != "seed"}, "sampler")
    return cases


#: Impossible combinations of valid values, and the key each message names.
COMBINATIONS = [
    pytest.param({**FIT, "model": {**FIT["model"], "g_method": "importance", "policy_prior": "dirichlet"}},
                 "policy_prior", id="importance_with_dirichlet_xi"),
    pytest.param({**FIT, "world_model": {"kind": "sampled"}, "sampler": {**FIT["sampler"], "sampler": "iid"}},
                 "sampler", id="iid_on_a_finite_world_model"),
    pytest.param({**FIT, "sampler": {**FIT["sampler"], "cores": 2}}, "cores", id="cores_without_pymc"),
    pytest.param({**FIT, "sampler": {**FIT["sampler"], "sampler": "blackjax", "draws": 1}}, "draws",
                 id="nuts_one_draw"),
]  # fmt: skip


def run_main(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str, key: str | None = None) -> None:
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("utiliscope: error: "), err
    assert out == "", out
    if key is not None:
        assert key in lines[0], lines[0]


def test_the_valid_bases_are_valid():
    """The generated specs differ from these bases by one key, so each failure below is that key's."""
    for base in (FIT, GARNET, POLICIES, LINEAR):
        problems.fit_problem(copy.deepcopy(base))
    problems.study_problem(copy.deepcopy(STUDY))


@pytest.mark.parametrize(("spec", "key"), _fit_cases() + COMBINATIONS)
def test_every_bad_fit_spec_is_one_line_and_status_2(spec, key, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml(spec), encoding="utf-8")
    assert_one_line_error(*run_main(capsys, "fit", path, "--out", tmp_path / "run.nc"), key)
    assert not (tmp_path / "run.nc").exists()


@pytest.mark.parametrize(("spec", "key"), _study_cases())
def test_every_bad_study_spec_is_one_line_and_status_2(spec, key, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml(spec), encoding="utf-8")
    assert_one_line_error(*run_main(capsys, "study", path, "--out", tmp_path / "table.csv"), key)
    assert not (tmp_path / "table.csv").exists()


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes(toml(FIT).replace("normal", "normál").encode("latin-1"))
    code, out, err = run_main(capsys, "fit", path, "--out", tmp_path / "run.nc")
    assert_one_line_error(code, out, err, "UTF-8")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"not a netCDF file", "cannot be read"), (b"", "cannot be read"), (None, "holds no fit of this package")],
    ids=["text", "empty", "foreign_netcdf"],
)
def test_report_on_a_file_this_package_did_not_write_is_one_line(content, fragment, tmp_path, capsys):
    path = tmp_path / "run.nc"
    if content is None:
        az.from_dict(posterior={"x": np.zeros((2, 5))}).to_netcdf(str(path))
    else:
        path.write_bytes(content)
    assert_one_line_error(*run_main(capsys, "report", path, "--out", tmp_path / "report"), fragment)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "key"),
    [(("draws = 10", "draws = 0"), "draws"), (("seed = 0\nsampler", "seed = -1\nsampler"), "seed")],
    ids=["draws_zero", "negative_seed"],
)
def test_the_installed_command_keeps_the_promise(change, key, tmp_path):
    """Two bad specs through the real command line (a subprocess): one line, exit status 2."""
    path = tmp_path / "bad.toml"
    path.write_text(toml(FIT).replace(*change), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "utiliscope.cli", "fit", str(path), "--out", str(tmp_path / "run.nc")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert key in result.stderr
