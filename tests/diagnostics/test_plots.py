"""Plots return figures (never show them) that draw the numbers they claim; the report writes real PNGs."""

import json
import sys

import arviz as az
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import utiliscope as us
from utiliscope.diagnostics import (
    Truth,
    plot_g_posterior,
    plot_rank,
    plot_recovery_vs_lambda,
    plot_trace,
    plot_utility_posterior,
    report,
)
from utiliscope.diagnostics.plots import TRUTH_COLOUR

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRUE = "+a-b"


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    """Fail if anything calls plt.show; close every figure after each test."""

    def refuse(*args, **kwargs):
        raise AssertionError("plt.show was called")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted():
    worlds = us.WorldSet([us.worlds.gridworld(["S.a", "b.c"], slip=s) for s in (0.1, 0.3)])
    library = us.priors.UtilityLibrary.from_features(
        worlds.features, max_terms=2, max_weight=1, feature_names=worlds.feature_names
    )
    agent = us.agents.Boltzmann(library.reward_table(5)[library.index(TRUE)], beta=4.0)
    others = np.random.default_rng(4).dirichlet(np.full(5, 0.3), size=(3, worlds.n_states))
    policies = np.concatenate([agent.policy(worlds)[None], others])
    scope = us.Utiliscope(
        worlds, us.WorldModel.from_policies(policies), library, us.likelihoods.AsymmetricLaplace(observed=6.0)
    )
    # Exact i.i.d. draws, enough that R-hat of i.i.d. draws stays under 1.01 (4 chains × 1000 draws).
    idata = scope.fit(draws=1000, chains=4, seed=1, progressbar=False)
    return scope, idata, Truth.from_agent(agent, scope)


def test_trace_and_rank_plots_show_each_variables_worst_element(fitted):
    _, idata, _ = fitted
    check = us.diagnostics.check(idata)
    for figure in (plot_trace(idata), plot_rank(idata, convergence=check)):
        assert isinstance(figure, Figure)
        titles = {ax.get_title() for ax in figure.axes}
        assert check.table.loc["pi", "r_hat_at"] in titles
        assert not any(title.startswith("g[const") for title in titles)  # constant elements are not plotted


def test_utility_posterior_bars_are_the_largest_masses_with_the_truth_marked(fitted):
    scope, idata, truth = fitted
    mass = scope.utility_posterior(idata).to_series().sort_values(ascending=False, kind="stable")
    ax = plot_utility_posterior(idata, truth, top=3)
    assert isinstance(ax, Axes)
    bars = ax.patches
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    top3 = list(mass.index[:3])
    expected = top3 if TRUE in top3 else [*top3, TRUE]
    assert labels == expected
    np.testing.assert_allclose([bar.get_height() for bar in bars], mass[expected].values, rtol=1e-12)
    colours = [bar.get_facecolor() for bar in bars]
    star = plt.matplotlib.colors.to_rgba(TRUTH_COLOUR)
    assert [c == star for c in colours] == [name == TRUE for name in expected]


def test_linear_utility_bars_mark_the_projected_truth():
    colours = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    prior = us.priors.LinearUtility(colours)
    theta_star = prior.project([1.0, -1.0, 0.0])
    theta = prior.project(theta_star + 0.2 * np.random.default_rng(0).normal(size=(400, 3))).reshape(2, 200, 3)
    idata = az.from_dict(
        posterior={"U": theta, "g": np.ones((2, 200))},
        coords={"feature": list(prior.feature_names)},
        dims={"U": ["feature"]},
        attrs={"utility_prior": json.dumps(prior.to_dict())},
    )
    ax = plot_utility_posterior(idata, Truth(np.array([1.0, -1.0, 0.0]) + 3.0, g=1.0))
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], theta.reshape(-1, 3).mean(axis=0))
    dots = [line for line in ax.lines if line.get_label() == "theta*"]
    np.testing.assert_allclose(dots[0].get_ydata(), theta_star, atol=1e-12)


def test_g_posterior_marks_g_star_and_overlays_the_likelihood(fitted):
    _, idata, truth = fitted
    ax = plot_g_posterior(idata, truth)
    g_star_lines = [line for line in ax.lines if line.get_label().startswith("g* =")]
    assert g_star_lines and np.all(np.asarray(g_star_lines[0].get_xdata()) == truth.g)
    twin = next(other for other in ax.figure.axes if other is not ax)
    [curve] = twin.lines
    x, y = curve.get_data()
    assert y.max() == pytest.approx(1.0)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=6.0)
    assert x[np.argmax(y)] == pytest.approx(likelihood.peak(), abs=(x[1] - x[0]))
    finite = idata.posterior["g"].sel(utility=TRUE).values
    assert sum(bar.get_height() * bar.get_width() for bar in ax.patches) == pytest.approx(
        np.isfinite(finite).mean(), rel=1e-9
    )


def test_recovery_against_lambda_plots_means_per_lambda():
    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "lambda": np.repeat([0.0, 0.5, 1.0], 4).tolist() * 2,
            "likelihood": ["normal"] * 12 + ["laplace"] * 12,
            "mass_on_truth": rng.uniform(size=24),
            "rank": rng.integers(1, 10, size=24),
        }
    )
    figure = plot_recovery_vs_lambda(table, by="likelihood")
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    expected = table[table["likelihood"] == "laplace"].groupby("lambda")["mass_on_truth"].mean()
    means = [line for line in figure.axes[0].lines if line.get_marker() == "o"]
    laplace = next(line for line in means if np.allclose(line.get_ydata(), expected.values))
    np.testing.assert_allclose(laplace.get_xdata(), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="no column 'bits'"):
        plot_recovery_vs_lambda(table, metrics=["bits"])


def _check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)
    assert image.std() > 0  # not a blank canvas


@pytest.mark.slow
def test_report_writes_real_pngs_and_a_page_that_references_them(tmp_path, fitted):
    _, idata, truth = fitted
    page = report(idata, truth, tmp_path / "run")
    assert page == tmp_path / "run" / "index.html"
    text = page.read_text(encoding="utf-8")
    pngs = sorted((tmp_path / "run").glob("*.png"))
    assert {p.name for p in pngs} == {"trace.png", "rank.png", "utility_posterior.png", "g_posterior.png"}
    for png in pngs:
        _check_png(png)
        assert f'src="{png.name}"' in text
    assert "Convergence: OK" in text and "Recovery of Boltzmann" in text and "mass_on_truth" in text
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        report(idata, truth, tmp_path / "file")


@pytest.mark.slow
def test_report_replaces_its_files_atomically_and_leaves_no_temporary(tmp_path, fitted, monkeypatch):
    _, idata, truth = fitted
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "index.html").write_text("old page")
    report(idata, truth, folder)
    assert "old page" not in (folder / "index.html").read_text(encoding="utf-8")
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sys.modules["utiliscope.diagnostics.report"], "_page", fail)
    before = (folder / "index.html").read_text(encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"):
        report(idata, truth, folder)
    assert (folder / "index.html").read_text(encoding="utf-8") == before
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_report_without_truth_or_settings(tmp_path):
    """A bare InferenceData (no attrs, no truth): no recovery section, plots without markers or likelihood."""
    rng = np.random.default_rng(5)
    names = ["const", "+a", "-a"]
    idata = az.from_dict(
        posterior={"U": rng.dirichlet(np.ones(3), size=(2, 100)), "g": rng.normal(3.0, 1.0, size=(2, 100, 3))},
        coords={"utility": names},
        dims={"U": ["utility"], "g": ["utility"]},
    )
    text = report(idata, None, tmp_path).read_text(encoding="utf-8")
    assert "Recovery" not in text
    for name in ("trace.png", "rank.png", "utility_posterior.png", "g_posterior.png"):
        _check_png(tmp_path / name)
        assert f'src="{name}"' in text
