"""The utiliscope command line.

    utiliscope quickstart                                     fit a synthetic agent, print diagnostics
    utiliscope fit SPEC.toml --out run.nc [--overwrite]       fit the problem a TOML spec declares, save it
    utiliscope report run.nc --out FOLDER [--overwrite]       diagnostics to the terminal, plots and HTML
    utiliscope decide run.nc --rule RULE --out policy.json    a policy decided from a saved run's posterior
    utiliscope study SPEC.toml --workers N --out table.csv    a recovery study on Dask (N = 0: serial)

A spec's keys are documented in examples/README.md. A bad spec, an existing output file or an unreadable run
ends the command with one line "utiliscope: error: ..." and exit status 2.

Output files are written atomically (a hidden temporary beside them, then a link or rename). Without
--overwrite, an --out that another process creates while the command runs is left as it is: the fit or table is
saved beside it (run-1.nc), the error names that file. Every output is checked before the work starts: its
folder must exist and take files, an existing output is replaced only with --overwrite, and an output is never
the spec or the run it reads, whatever the flags (a spec's [decide] out is resolved against the spec's folder).
A study interrupted by Ctrl-C writes the rows finished so far (the others carry an "Interrupted: ..." error),
says so in one line "utiliscope: interrupted: ..." and exits with status 130.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Utilities shown by ``fit`` and ``report``.
TOP = 10
#: Columns of a study table averaged per setting in the printed summary (those present), then each rule's
#: ``policy_loss_<rule>``.
STUDY_SUMMARY = ("mass_on_truth", "rank", "bayes_factor", "g_true_in_90", "cosine", "divergences")


class CommandError(Exception):
    """A mistake in the command's arguments or files, printed as one line."""


class Interrupted(Exception):
    """The command was interrupted after writing what it had finished: one line, exit status 130."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``utiliscope`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(next((word for word in argv if not word.startswith("-")), None))
    args = parser.parse_args(argv)
    from utiliscope._saved import DamagedRunError
    from utiliscope.spec import SpecError

    try:
        args.handler(args)
    except Interrupted as err:
        parser.exit(130, f"utiliscope: interrupted: {err}\n")
    except (CommandError, SpecError, OSError, DamagedRunError) as err:
        message = " ".join(str(err).split())
        parser.exit(2, f"utiliscope: error: {message}\n")
    except MemoryError as err:
        parser.exit(
            2,
            f"utiliscope: error: out of memory ({' '.join(str(err).split()) or 'MemoryError'}); lower the spec's "
            "sizes (draws, n_samples, observed g′, the worlds' states)\n",
        )
    return 0


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` alone (the first word of the command line that is not an
    option; None for ``utiliscope --help``).

    A command's arguments import the modules their choices and defaults come from (the engines, the decision
    rules, and with them PyMC); the list of commands needs none of them.
    """
    parser = argparse.ArgumentParser(
        prog="utiliscope", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in _COMMANDS.items():
        subparser = commands.add_parser(name, help=summary)
        if name == command:
            add_arguments(subparser)
    return parser


def _quickstart_arguments(quick: argparse.ArgumentParser) -> None:
    from utiliscope.models.fit_settings import DEFAULT_SAMPLER, SAMPLERS

    quick.add_argument("--seed", type=int, help="seed of the sampler (default 0)")
    quick.add_argument("--draws", type=int, help="draws per chain (default: fit's, 1000)")
    quick.add_argument("--tune", type=int, help="tuning steps per chain (default: fit's, 1000)")
    quick.add_argument("--chains", type=int, help="chains (default: fit's, 4)")
    quick.add_argument("--sampler", choices=SAMPLERS, help=f"sampler backend (default {DEFAULT_SAMPLER})")
    _progress_flag(quick)
    quick.set_defaults(handler=_quickstart)


def _fit_arguments(fit: argparse.ArgumentParser) -> None:
    fit.add_argument("spec", help="the TOML spec (see examples/README.md)")
    fit.add_argument("--out", required=True, help="netCDF file to write, e.g. run.nc")
    fit.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _progress_flag(fit)
    fit.set_defaults(handler=_fit)


def _report_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("run", help="a run written by 'utiliscope fit' (or utiliscope.save)")
    report.add_argument("--out", required=True, help="folder for index.html and the PNG plots")
    report.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    report.set_defaults(handler=_report)


def _decide_arguments(decide: argparse.ArgumentParser) -> None:
    decide.add_argument("run", help="a run written by 'utiliscope fit' (or utiliscope.save)")
    _rule_options(decide)
    decide.add_argument("--out", required=True, help="JSON file for the policy and its summary, e.g. policy.json")
    decide.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    decide.set_defaults(handler=_decide)


def _study_arguments(study: argparse.ArgumentParser) -> None:
    study.add_argument("spec", help="the TOML spec with a [study] section (see examples/README.md)")
    study.add_argument("--out", required=True, help="CSV file for the table, e.g. table.csv")
    where = study.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=0, help="worker processes of a local Dask cluster (0: serial, no Dask)"
    )
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    study.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _progress_flag(study)
    study.set_defaults(handler=_study)


#: The commands: name → (the line ``utiliscope --help`` shows, the function that adds the command's arguments).
_COMMANDS = {
    "quickstart": ("fit a synthetic agent and print diagnostics", _quickstart_arguments),
    "fit": ("fit the problem declared by a TOML spec and save the run", _fit_arguments),
    "report": ("diagnose a saved run: terminal summary, plots and HTML", _report_arguments),
    "decide": ("choose a policy from a saved run's posterior, as JSON", _decide_arguments),
    "study": ("a recovery study of synthetic agents on Dask", _study_arguments),
}


def _rule_options(parser: argparse.ArgumentParser) -> None:
    """``--rule`` and one option per parameter of the registered rules (``--n-candidates`` for ``n_candidates``),
    with each owning rule's help and default."""
    from utiliscope.decisions import DEFAULT_RULE, rule_class, rule_names, rule_parameters

    rules = "; ".join(f"{name}: {rule_class(name).description}" for name in rule_names()).replace("%", "%%")
    parser.add_argument(
        "--rule",
        choices=rule_names(),
        default=DEFAULT_RULE,
        help=f"the decision rule ({rules}; default {DEFAULT_RULE})",
    )
    for name, info in rule_parameters().items():
        text = "; ".join(
            f"{rule}: {info.helps[rule]} (default {_number_text(default)})"
            for rule, default in info.defaults.items()
        )
        parser.add_argument(_option(name), dest=name, type=info.type, help=text.replace("%", "%%"))


def _option(parameter: str) -> str:
    """The command-line option of a rule's parameter: ``n_candidates`` → ``--n-candidates``."""
    return f"--{parameter.replace('_', '-')}"


def _number_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


# ---------------------------------------------------------------------------------------------- commands
def _quickstart(args) -> None:
    from utiliscope.quickstart import run

    chosen = {key: getattr(args, key) for key in ("seed", "draws", "tune", "chains", "sampler")}
    run(**{key: value for key, value in chosen.items() if value is not None}, progressbar=not args.no_progress)


def _fit(args) -> None:
    from utiliscope.io import save
    from utiliscope.spec import fit_problem, read_spec

    out = _output_file(args.out, args.overwrite, inputs={"the spec": args.spec})
    problem = fit_problem(read_spec(args.spec))
    decision_out = _decision_file(problem.decide, args, out)
    scope = problem.scope
    print(f"Worlds: {scope.worlds}")
    print(
        f"Prior: {scope.utility_prior!r}; likelihood: {scope.likelihood!r}; world model: {scope.world_model.kind}"
    )
    if problem.agent is not None:
        print(f"Agent: {problem.agent!r}")
    if problem.truth is not None:
        print(f"Truth: U* = {_utility_text(problem.truth.utility)}, g* = {problem.truth.g:.3f} bits")
    idata = scope.fit(**problem.fit_kwargs, progressbar=not args.no_progress)
    idata.attrs.update(problem.attrs)
    _write_output(out, lambda path, overwrite: save(idata, path, overwrite=overwrite), args.overwrite, "fit")
    _diagnose(idata, problem.truth)
    print(f"\nSaved the run to {out}; diagnose it with `utiliscope report {out} --out FOLDER`.")
    if problem.decide is not None:
        settings = {key: value for key, value in problem.decide.items() if key != "out"}
        _write_decision(scope.decide(idata, **settings), decision_out, args.overwrite, DECIDE_OUT)


#: How the spec's decision file is named in messages.
DECIDE_OUT = "[decide] out"


def _decision_file(decide: dict | None, args, out: Path) -> Path | None:
    """The file ``[decide]`` writes (None without the section), checked before the fit: ``out`` resolved
    against the spec's folder (default: the run's name with ``.decision.json``), never the run or the spec."""
    if decide is None:
        return None
    target = out.with_suffix(".decision.json") if "out" not in decide else Path(args.spec).parent / decide["out"]
    return _output_file(target, args.overwrite, DECIDE_OUT, {"the spec": args.spec, "the run --out": out})


def _decide(args) -> None:
    from utiliscope.decisions import rule_class, rule_parameters
    from utiliscope.diagnostics import decide_fit
    from utiliscope.io import load

    out = _output_file(args.out, args.overwrite, inputs={"the run": args.run})
    parameters = rule_parameters()
    settings = {name: getattr(args, name) for name in parameters if getattr(args, name) is not None}
    for name in settings:
        if name not in rule_class(args.rule).parameter_names():
            owners = " or ".join(f"--rule {rule}" for rule in parameters[name].defaults)
            raise CommandError(f"{_option(name)} is a setting of {owners}, not of --rule {args.rule}; remove it")
    try:
        idata = load(args.run)
        decision = decide_fit(idata, args.rule, **settings)
    except ValueError as err:
        raise CommandError(str(err)) from err
    _write_decision(decision, out, args.overwrite)


def _write_decision(decision, out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Print the decision and write its :meth:`~utiliscope.decisions.Decision.to_dict` as JSON to ``out``."""
    from utiliscope.io import write_atomically

    print(f"\n{decision}")
    text = json.dumps(decision.to_dict(), indent=1)

    def write(path: Path, replace: bool) -> None:
        write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), replace, flag)

    _write_output(out, write, overwrite, "decision", flag)
    print(f"Wrote the decided policy to {out}.")


def _report(args) -> None:
    from utiliscope.diagnostics import report
    from utiliscope.io import load
    from utiliscope.spec import truth_from_attrs

    _output_folder(args.out, args.overwrite, inputs={"the run": args.run})
    # The version warning of a file this package did not write would add lines to the one-line error below.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            idata = load(args.run)
        except ValueError as err:
            raise CommandError(str(err)) from err
    if "utility_prior" not in idata.attrs:
        raise CommandError(
            f"{args.run!r} holds no fit of this package (its attributes name no utility prior); give a run "
            "written by `utiliscope fit`, or by utiliscope.save of a Utiliscope fit"
        )
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=2)
    truth = truth_from_attrs(idata.attrs)
    _diagnose(idata, truth)
    if truth is None:
        print("\nNo agent's truth is recorded in this run: the report leaves out recovery.")
    try:
        page = report(idata, truth, args.out)
    except ValueError as err:
        raise CommandError(f"cannot write the report to {args.out!r}: {err}") from err
    print(f"\nReport: {page}")


def _study(args) -> None:
    from utiliscope.diagnostics import recovery_study
    from utiliscope.spec import read_spec, study_problem

    out = _output_file(args.out, args.overwrite, inputs={"the spec": args.spec})
    if args.workers < 0:
        raise CommandError(f"--workers is {args.workers}; give 0 (serial) or more worker processes")
    problem = study_problem(read_spec(args.spec))
    print(
        f"Study: {problem.n_agents} agent(s) × {len(problem.settings)} setting(s); "
        f"fit settings {problem.fit_kwargs}"
    )
    with _dask_client(args.workers, args.scheduler) as client:
        table = recovery_study(
            problem.agent_factory,
            problem.scope_factory,
            problem.n_agents,
            problem.settings,
            seed=problem.seed,
            client=client,
            fit_kwargs=problem.fit_kwargs,
            progressbar=not args.no_progress,
        )
    print(study_summary(table, list(problem.settings[0])).to_string(float_format=lambda x: f"{x:.3g}"))
    _write_output(out, partial(_write_csv, table), args.overwrite, "study")
    if table.attrs.get("incomplete"):
        finished = int((~table["error"].fillna("").str.startswith("Interrupted:")).sum())
        raise Interrupted(
            f"the study was interrupted; wrote the {finished} finished row(s) of {len(table)} to {out}, the "
            "others carry an 'Interrupted: ...' error"
        )
    print(f"\nWrote {len(table)} rows to {out}.")


def _write_csv(table: pd.DataFrame, path: Path, overwrite: bool) -> None:
    from utiliscope.io import write_atomically

    write_atomically(path, lambda temporary: table.to_csv(temporary, index=False), overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- helpers
def _output_file(path, overwrite: bool, flag: str = "--out", inputs: Mapping = MappingProxyType({})) -> Path:
    """``path`` once it is known to be writable: its folder exists and takes files, it is none of ``inputs`` (the
    spec, the run: an output never replaces them, even with ``overwrite``), and it does not exist unless
    ``overwrite``. ``flag`` names it in messages."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{flag} {str(target)!r} is a folder; give a file name")
    _refuse_inputs(target, flag, inputs)
    if target.exists() and not overwrite:
        raise CommandError(f"{flag} {str(target)!r} already exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise CommandError(f"the folder of {flag} {str(target)!r} does not exist; create it first")
    _check_writable(target.parent, flag, target)
    return target


def _output_folder(path, overwrite: bool, inputs: Mapping = MappingProxyType({})) -> Path:
    """The report folder ``path`` once it is known to be writable: not a file, and without a report in it unless
    ``overwrite``."""
    from utiliscope.diagnostics.report import PAGE

    folder = Path(path)
    _refuse_inputs(folder, "--out", inputs)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"--out {str(folder)!r} is a file; give a folder for the report's files")
    if (folder / PAGE).exists() and not overwrite:
        raise CommandError(
            f"--out {str(folder)!r} already holds a report ({PAGE}); pass --overwrite to replace it, or give "
            "another folder"
        )
    existing = next(parent for parent in (folder, *folder.absolute().parents) if parent.exists())
    _check_writable(existing, "--out", folder)
    return folder


def _refuse_inputs(target: Path, flag: str, inputs: Mapping) -> None:
    """An output that is one of the command's files (``inputs``: what it is, its path), the spec, the run, would
    destroy it: refused whatever ``--overwrite`` says."""
    for role, path in inputs.items():
        source = Path(path)
        same = target.exists() and source.exists() and target.samefile(source)
        if same or target.resolve() == source.resolve():
            raise CommandError(
                f"{flag} {str(target)!r} is {role} {str(source)!r}; an output never replaces the spec or the run: "
                "give another name"
            )


def _check_writable(folder: Path, flag: str, target: Path) -> None:
    """Create and remove a file in ``folder``, so that an unwritable output fails before the work, not after."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CommandError(
            f"cannot write {flag} {str(target)!r}: {err.strerror or err} in {str(folder)!r}; give a writable place"
        ) from err


def _write_output(
    out: Path, write: Callable[[Path, bool], object], overwrite: bool, what: str, flag: str = "--out"
) -> Path:
    """``write(out, overwrite)``: atomic and, without ``overwrite``, refusing an ``out`` that exists when it is
    written. If ``out`` was created meanwhile, the output goes beside it (``name-1.ext``, ``name-2.ext``, ...: the
    first free name, taken as atomically) and a CommandError names that file, so nothing computed is lost."""
    try:
        write(out, overwrite)
        return out
    except FileExistsError:
        pass
    for number in itertools.count(1):
        beside = out.with_name(f"{out.stem}-{number}{out.suffix}")
        try:
            write(beside, False)
        except FileExistsError:
            continue
        raise CommandError(
            f"{flag} {str(out)!r} was created by something else while this {what} ran and is left as it is; "
            f"this {what} is saved beside it as {str(beside)!r}"
        )
    raise AssertionError("unreachable")  # itertools.count never ends


def _utility_text(utility) -> str:
    import numpy as np

    return repr(utility) if isinstance(utility, str) else np.array2string(np.asarray(utility), precision=3)


def _diagnose(idata, truth) -> None:
    """Print the convergence check, the most probable utilities and, with a truth, its recovery."""
    from utiliscope.diagnostics import check, recovery

    print()
    print(check(idata))
    print("\nPosterior over the utility:")
    print(utility_table(idata).head(TOP).to_string(float_format=lambda x: f"{x:.4g}"))
    if truth is not None:
        print()
        print(recovery(idata, truth))


def utility_table(idata) -> pd.DataFrame:
    """The posterior over U of a saved fit, the prior rebuilt from ``idata.attrs``.

    Library priors: one row per entry, most probable first, with ``posterior`` (the Rao–Blackwellised
    P(U | data)), ``prior``, ``bayes_factor`` (posterior / prior) and ``bits`` (K). Linear priors: one row per
    feature with the posterior ``mean`` and ``sd`` of the unit direction theta.
    """
    import pandas as pd

    from utiliscope.diagnostics.fitted import utility_posterior_mass, utility_prior_of
    from utiliscope.priors import UtilityLibrary

    prior = utility_prior_of(idata)
    if isinstance(prior, UtilityLibrary):
        posterior = utility_posterior_mass(idata)
        table = pd.DataFrame(
            {
                "posterior": posterior,
                "prior": prior.prior,
                "bayes_factor": posterior / prior.prior,
                "bits": prior.description_bits,
            },
            index=pd.Index(prior.names, name="utility"),
        )
        return table.sort_values("posterior", ascending=False)
    theta = idata.posterior["U"]
    return pd.DataFrame(
        {"mean": theta.mean(("chain", "draw")).values, "sd": theta.std(("chain", "draw")).values},
        index=pd.Index(prior.feature_names, name="feature"),
    )


def study_summary(table: pd.DataFrame, setting_keys: Sequence[str]) -> pd.DataFrame:
    """Per setting: the mean of each recovery column present, the number of fits and of failed fits."""
    from utiliscope.diagnostics.recovery import decision_columns

    metrics = [c for c in (*STUDY_SUMMARY, *decision_columns(("policy_loss",))) if c in table.columns]
    numbers = table[metrics].astype(float).assign(failed=table["error"].notna())
    grouped = numbers.groupby([table["setting"], *(table[key] for key in setting_keys)], dropna=False)
    return grouped.mean().drop(columns="failed").assign(fits=grouped.size(), failed=grouped["failed"].sum())


@contextmanager
def _dask_client(workers: int, scheduler: str | None):
    """``"serial"``, a scheduler address, or a Client of a LocalCluster of ``workers`` worker processes.

    Processes rather than threads: a fit's PyTensor loop holds the GIL, so threads would run the fits one
    after another.
    """
    if scheduler is not None:
        yield scheduler
        return
    if workers == 0:
        yield "serial"
        return
    from utiliscope.studies.parallel import local_cluster

    # A worker process that dies fails only its own fit (see utiliscope.studies.parallel).
    with local_cluster(workers, processes=True, silence_logs=logging.ERROR) as client:
        yield client


if __name__ == "__main__":
    raise SystemExit(main())
