"""Saved runs: a fit to netCDF and back, with nothing lost.

A Utiliscope fit carries everything needed to re-diagnose it: the draws (``posterior``, ``sample_stats``), the
problem's constants (``constant_data``: rewards, description lengths, Dirichlet alpha), the observation
(``observed_data``) and the settings as JSON strings in ``attrs`` (likelihood, utility prior, policy prior, world
model, g method, package version). :func:`save` writes all of it with ArviZ's netCDF writer and :func:`load`
reads it back, group for group and attribute for attribute.

:func:`save` never leaves a half-written file at ``path``: it writes to a hidden temporary file in the same
folder, flushes it to disk (``fsync``) and renames it over ``path`` in one step (``os.replace``), so ``path``
holds either the old file or the complete new one. A writer that fails or is interrupted (KeyboardInterrupt)
removes its temporary file; one killed outright (SIGKILL, power loss) can leave a hidden ``.<name>.*.tmp``
beside ``path``, never a damaged ``path``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from pathlib import Path

import arviz as az
import dask

from utiliscope._version import __version__

VERSION_KEY = "utiliscope_version"


def save(idata: az.InferenceData, path, overwrite: bool = False) -> Path:
    """Write a fit to the netCDF file ``path``, atomically.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit, e.g. from ``Utiliscope.fit``. It is not modified.
    path : str or os.PathLike
        The file to write (``.nc`` by convention); its folder must exist.
    overwrite : bool
        Replace an existing file. Without it an existing ``path`` raises FileExistsError.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The file's attributes gain ``utiliscope_version`` (this package's version) when ``idata`` has none, so that
    :func:`load` can tell which version wrote it.

    Examples
    --------
    >>> import arviz as az, numpy as np, tempfile, os
    >>> idata = az.from_dict(posterior={"x": np.zeros((2, 10))})
    >>> path = save(idata, os.path.join(tempfile.mkdtemp(), "fit.nc"))
    >>> bool(load(path).posterior.identical(idata.posterior))
    True
    """
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"idata must be an arviz.InferenceData (the result of fit); got {type(idata).__name__}")
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"path {str(target)!r} is a folder; give a file name such as 'fit.nc'")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} already exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"the folder of path {str(target)!r} does not exist; create it first")
    temporary = _create_temporary(target)
    try:
        # Write with dask's synchronous scheduler: a distributed Client closed earlier (a study, SBC) can leave
        # dask configured for a scheduler that no longer exists, and xarray would fail on it.
        with dask.config.set(scheduler="synchronous"):
            _with_version(idata).to_netcdf(temporary)
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        # BaseException: an interrupted write (KeyboardInterrupt) must not leave its temporary file either.
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_folder(target.parent)
    return target


def load(path) -> az.InferenceData:
    """Read a fit written by :func:`save` (or any ArviZ netCDF file) fully into memory.

    Warns (UserWarning) when the file was written by another utiliscope version, or by none, naming it: the
    data still load, but settings stored by another version may not rebuild.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    arviz.InferenceData
        Every group and attribute as saved; no file handle stays open.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no file at {str(source)!r}; give the path that save() wrote")
    try:
        # Eager: ArviZ's default lazy load keeps the file open, which ties the data to a file a later save
        # may replace.
        with az.rc_context({"data.load": "eager"}):
            with dask.config.set(scheduler="synchronous"):
                idata = az.from_netcdf(source)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"{str(source)!r} cannot be read as an ArviZ netCDF file ({type(err).__name__}: {err}); "
            "give a file written by utiliscope.save or InferenceData.to_netcdf"
        ) from err
    _warn_on_version(idata, source)
    return idata


def write_text(path, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a reader sees the old file or the whole new one.

    Without ``overwrite`` the no-overwrite promise holds at the moment of writing: the finished temporary file is
    hard-linked to ``path``, which fails with FileExistsError if any other writer created ``path`` meanwhile.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"path {str(target)!r} is a folder; give a file name")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"the folder of path {str(target)!r} does not exist; create it first")
    temporary = _create_temporary(target)
    try:
        temporary.write_text(text, encoding="utf-8")
        _fsync(temporary)
        if overwrite:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise FileExistsError(
                    f"{str(target)!r} already exists; pass overwrite=True (--overwrite) to replace it"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
    _fsync_folder(target.parent)
    return target


def _with_version(idata: az.InferenceData) -> az.InferenceData:
    """``idata`` itself, or a shallow copy with ``utiliscope_version`` added to its attributes."""
    if VERSION_KEY in idata.attrs:
        return idata
    groups = {name: idata[name] for name in idata.groups()}
    return az.InferenceData(attrs={**idata.attrs, VERSION_KEY: __version__}, **groups)


def _warn_on_version(idata: az.InferenceData, source: Path) -> None:
    written_by = idata.attrs.get(VERSION_KEY)
    if written_by is None:
        warnings.warn(
            f"{str(source)!r} has no {VERSION_KEY!r} attribute: it was not written by utiliscope "
            f"{__version__}; its settings may not rebuild",
            UserWarning,
            stacklevel=3,
        )
    elif str(written_by) != __version__:
        warnings.warn(
            f"{str(source)!r} was written by utiliscope {written_by}; this is utiliscope {__version__}. The data "
            "load, but settings stored by another version may not rebuild",
            UserWarning,
            stacklevel=3,
        )


def _create_temporary(target: Path) -> Path:
    """A new, empty, hidden file beside ``target``.

    Not ``tempfile.mkstemp``: it creates files with mode 0600, which the rename would give the saved fit; a
    plain exclusive create gets the permissions the user's umask gives any new file.
    """
    while True:
        candidate = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate


def _fsync(path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush the rename to disk (POSIX; folders cannot be opened this way on Windows)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["load", "save", "write_text"]
