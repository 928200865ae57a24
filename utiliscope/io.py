"""Saved runs: a fit to netCDF and back, with nothing lost.

A Utiliscope fit carries everything needed to re-diagnose it: the draws (``posterior``, ``sample_stats``), the
problem's constants (``constant_data``: rewards, description lengths, Dirichlet alpha), the observation
(``observed_data``) and the settings as JSON strings in ``attrs`` (likelihood, utility prior, policy prior, world
model, g method, package version). :func:`save` writes all of it with ArviZ's netCDF writer and :func:`load`
reads it back, group for group and attribute for attribute.

:func:`save` never leaves a half-written file at ``path``: it writes to a hidden temporary file in the same
folder and flushes it to disk (``fsync``); then, with ``overwrite``, renames it over ``path`` in one step
(``os.replace``), so ``path`` holds either the old file or the complete new one, and without it publishes it
with a hard link (``os.link``), which fails if ``path`` exists at that moment: the no-overwrite promise holds
when the file is written, not only when :func:`save` starts, so of two writers racing to one new path exactly one
succeeds and the other gets FileExistsError (its fit is still in memory). A filesystem without hard links gets
an exclusive create of ``path`` (``O_EXCL``, an empty placeholder claiming the name) before the rename.
:func:`write_atomically` does the same for any file (the command line's CSV tables).

A writer that fails or is interrupted (KeyboardInterrupt, and SIGTERM while the main thread writes: the signal
is handled for the duration of the write, the temporary removed, and the signal's previous handling then
applied) removes its temporary file; one killed outright (SIGKILL, power loss) can leave a hidden
``.<name>.*.tmp`` beside ``path``, never a damaged ``path``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import arviz as az
import dask

from utiliscope._version import __version__

VERSION_KEY = "utiliscope_version"
#: ``os.link`` errors meaning the filesystem (or the platform) has no hard links there.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def save(idata: az.InferenceData, path, overwrite: bool = False) -> Path:
    """Write a fit to the netCDF file ``path``, atomically.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit, e.g. from ``Utiliscope.fit``. It is not modified.
    path : str or os.PathLike
        The file to write (``.nc`` by convention); its folder must exist.
    overwrite : bool
        Replace an existing file. Without it an existing ``path`` raises FileExistsError, also one that another
        writer created while this one wrote (see the module docstring); ``idata`` is then still yours to save
        elsewhere.

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

    def write(temporary: Path) -> None:
        # Write with dask's synchronous scheduler: a distributed Client closed earlier (a study, SBC) can leave
        # dask configured for a scheduler that no longer exists, and xarray would fail on it.
        with dask.config.set(scheduler="synchronous"):
            _with_version(idata).to_netcdf(temporary)

    return write_atomically(path, write, overwrite=overwrite, what="path")


def write_atomically(path, write: Callable[[Path], object], overwrite: bool = False, what: str = "path") -> Path:
    """Create the file ``path`` with ``write(temporary)``, atomically, refusing to replace it unless ``overwrite``.

    ``write`` writes the whole file to the hidden temporary path it is given (in ``path``'s folder). The
    temporary is then flushed to disk and published: renamed over ``path`` with ``overwrite``, hard-linked to
    ``path`` without it, which raises FileExistsError if ``path`` exists at that moment (see the module
    docstring). The temporary is removed on any failure, on KeyboardInterrupt and on SIGTERM.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create; its folder must exist.
    write : callable
        ``write(temporary: pathlib.Path)``, e.g. ``lambda p: table.to_csv(p, index=False)``.
    overwrite : bool
        Replace an existing ``path``.
    what : str
        What ``path`` is called in error messages (``"path"``, ``"--out"``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{what} {str(target)!r} is a folder; give a file name such as 'fit.nc'")
    # A first check, so that a refused path costs no write; the one that counts is the link below.
    if target.exists() and not overwrite:
        raise FileExistsError(_exists_message(target, what))
    if not target.parent.is_dir():
        raise FileNotFoundError(f"the folder of {what} {str(target)!r} does not exist; create it first")
    holder: list[Path] = []
    try:
        with _removed_on_sigterm(holder):
            temporary = _create_temporary(target, holder)
            write(temporary)
            _fsync(temporary)
            if overwrite:
                os.replace(temporary, target)
            else:
                _publish_new(temporary, target, what)
    except BaseException:
        # BaseException: an interrupted write (KeyboardInterrupt) must not leave its temporary file either.
        _remove_temporary(holder)
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

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not an ArviZ netCDF file, or holds no ``posterior`` group (e.g. a plain xarray dataset).
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
    if "posterior" not in idata.groups():
        groups = ", ".join(idata.groups()) or "none"
        raise ValueError(
            f"{str(source)!r} holds no posterior (its ArviZ groups: {groups}), so it is not a fit; give a file "
            "written by utiliscope.save or InferenceData.to_netcdf from a fit"
        )
    _warn_on_version(idata, source)
    return idata


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


def _exists_message(target: Path, what: str) -> str:
    fix = "pass overwrite=True to replace it" if what == "path" else "pass --overwrite to replace it"
    return f"{what} {str(target)!r} already exists; {fix}"


def _create_temporary(target: Path, holder: list[Path]) -> Path:
    """A new, empty, hidden file beside ``target``, named in ``holder`` before it is created (so that a signal
    handler that removes ``holder``'s files never misses it).

    Not ``tempfile.mkstemp``: it creates files with mode 0600, which the rename would give the saved fit; a
    plain exclusive create gets the permissions the user's umask gives any new file.
    """
    while True:
        candidate = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
        holder[:] = [candidate]
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate


def _publish_new(temporary: Path, target: Path, what: str) -> None:
    """Give the complete ``temporary`` the name ``target``, failing if ``target`` exists now.

    A hard link is atomic and refuses an existing name; the temporary's own name is then removed. Where the
    filesystem has no hard links, an exclusive create claims ``target`` (an empty file, briefly) and the rename
    fills it: the name is still never taken from another writer.
    """
    appeared = _exists_message(target, what) + " (it was created while this file was being written)"
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise FileExistsError(appeared) from None
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise FileExistsError(appeared) from None
        try:
            os.replace(temporary, target)
        except BaseException:
            os.remove(target)  # the empty placeholder this writer created
            raise
        return
    os.remove(temporary)


def _remove_temporary(holder: list[Path]) -> None:
    for temporary in holder:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


@contextlib.contextmanager
def _removed_on_sigterm(holder: list[Path]):
    """While the block runs, a SIGTERM first removes the temporary file named in ``holder``, then gets its usual
    handling: the default one (the process ends, killed by SIGTERM as it would have been), or the handler
    installed before (which may raise, e.g. SystemExit; a handler that returns lets the write go on, so the
    temporary is kept for it). Only in the main thread, where Python runs signal handlers; elsewhere, and for a
    handler not installed from Python, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None or previous == signal.SIG_IGN:
        yield
        return

    def handler(signum, frame):
        if callable(previous):
            previous(signum, frame)  # an exception it raises removes the temporary in write_atomically
            return
        _remove_temporary(holder)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # signals cannot be handled here (e.g. a subinterpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


__all__ = ["load", "save", "write_atomically"]
