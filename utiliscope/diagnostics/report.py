"""A one-page HTML report of a fit: the convergence check, the recovery numbers and the plots, as PNG files.

:func:`report` writes into a folder::

    index.html              the page: settings, convergence table and failures, recovery numbers, the images
    trace.png, rank.png     ArviZ's trace and rank plots of each variable's element with the worst R-hat
    utility_posterior.png   the posterior over U with U* marked
    g_posterior.png         the posterior of g with g* and the likelihood shape

The page references the images by relative path, so the folder can be moved or archived as a whole.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import pandas as pd

from utiliscope.diagnostics.convergence import check, format_r_hat
from utiliscope.diagnostics.plots import plot_g_posterior, plot_rank, plot_trace, plot_utility_posterior
from utiliscope.diagnostics.recovery import Truth, recovery
from utiliscope.io import write_atomically

PAGE = "index.html"
#: Settings from ``idata.attrs`` shown at the top of the page, in this order.
SETTINGS = ("utiliscope_version", "g_method", "n_samples", "seed", "likelihood", "policy_prior")
DPI = 100


def report(
    idata: az.InferenceData, truth: Truth | None, path, scope=None, *, check_kwargs: dict | None = None
) -> Path:
    """Write the PNG plots and a one-page HTML summary of a fit into the folder ``path``.

    Parameters
    ----------
    idata : arviz.InferenceData
        A Utiliscope fit (from ``fit`` or :func:`utiliscope.load`).
    truth : Truth or None
        The synthetic agent's U* and g*; None leaves out the recovery section and the truth markers.
    path : str or os.PathLike
        Folder to write into; created if missing. Files of the same names in it are replaced, each atomically
        (a reader sees the old file or the whole new one).
    scope : Utiliscope, optional
        Supplies the prior; otherwise it is read from ``idata.attrs``.
    check_kwargs : dict, optional
        Thresholds passed on to :func:`~utiliscope.diagnostics.check`.

    Returns
    -------
    pathlib.Path
        The HTML page.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path {str(folder)!r} is a file; report writes a folder of files: give a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    convergence = check(idata, **(check_kwargs or {}))
    recovered = recovery(idata, truth, scope) if truth is not None else None
    images = {
        "trace.png": (
            "Trace of each variable's worst element (by R-hat)",
            plot_trace(idata, convergence=convergence),
        ),
        "rank.png": ("Rank plots of the same elements", plot_rank(idata, convergence=convergence)),
        "utility_posterior.png": (
            "Posterior over the utility",
            plot_utility_posterior(idata, truth, scope).figure,
        ),
        "g_posterior.png": ("Posterior of g with g* and the likelihood", plot_g_posterior(idata, truth).figure),
    }
    for name, (_, figure) in images.items():
        write_atomically(
            folder / name,
            lambda temporary, figure=figure: figure.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight"),
            overwrite=True,
        )
        plt.close(figure)
    page = folder / PAGE
    text = _page(idata, convergence, recovered, truth, images)
    write_atomically(page, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=True)
    return page


def _page(idata, convergence, recovered, truth, images: dict) -> str:
    status = "OK" if convergence.ok else f"FAILED ({len(convergence.failures)} problem(s))"
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>utiliscope fit report</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd}img{max-width:100%}</style></head><body>",
        "<h1>utiliscope fit report</h1>",
        _settings_table(idata),
        f"<h2>Convergence: {html.escape(status)}</h2>",
        _list([failure.message for failure in convergence.failures]),
        _list(convergence.notes, "Notes"),
        convergence.table.to_html(
            formatters={"r_hat": lambda x: format_r_hat(x, missing="–")},
            float_format=lambda x: f"{x:.4g}",
            na_rep="–",
        ),
    ]
    if recovered is not None:
        label = f" of {html.escape(truth.name)}" if truth.name else ""
        numbers = pd.Series(recovered.as_dict(), name="value").to_frame()
        parts += [
            f"<h2>Recovery{label}</h2>",
            f"<pre>{html.escape(str(recovered))}</pre>",
            numbers.to_html(float_format=lambda x: f"{x:.4g}"),
        ]
    for name, (title, _) in images.items():
        parts += [f"<h2>{html.escape(title)}</h2>", f'<img src="{name}" alt="{html.escape(title)}">']
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


def _settings_table(idata) -> str:
    rows = [(key, idata.attrs[key]) for key in SETTINGS if key in idata.attrs]
    if not rows:
        return ""
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_setting(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _setting(value) -> str:
    """A setting for display: JSON strings as compact ``name(key=value, ...)``, anything else as text."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return str(value)
    if isinstance(data, dict):
        name = data.get("name", data.get("kind", ""))
        rest = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("name", "kind"))
        return f"{name}({rest})"
    return str(data)


def _list(items: list[str], title: str = "") -> str:
    if not items:
        return ""
    heading = f"<p>{html.escape(title)}:</p>" if title else ""
    return heading + "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


__all__ = ["report"]
