"""medconv: convert and inspect medical image files.

The public API (nothing heavy is imported here):

    >>> import medconv
    >>> vol = medconv.read("ct.nii.gz")        # -> Volume
    >>> medconv.write(vol, "ct.mha")           # -> list of files written
    >>> medconv.detect("scan.dcm")             # -> "dicom"
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: F401
    CorruptInput,
    InputError,
    MedconvError,
    MissingDependency,
    OutputError,
    UnsupportedFormat,
    UsageError,
    guard,
)


def detect(path) -> str:
    """The format name of a file or directory (content first, extension second)."""
    from .formats import detect as _detect

    return _detect(path)


def read(path, *, header_only: bool = False, fmt: str | None = None, **options):
    """Read any supported file (or DICOM directory) into a Volume.

    With `header_only`, voxel data is not read until `volume.array` is used.
    """
    import os

    from .formats import backend
    from .formats import detect as _detect

    path = os.fspath(path)
    name = fmt or _detect(path)
    module = backend(name)
    with guard(path, f"{name} file"):
        volume = module.read(path, name, header_only=header_only, **options)
    if name != "dicom":  # a DICOM gantry tilt is explained where the series is assembled
        _warn_if_sheared(volume, path)
    return volume


def _warn_if_sheared(volume, path) -> None:
    """Voxel axes that are not perpendicular are kept as stored (every voxel stays where the file
    puts it), but ITK-based tools refuse such images: say so, so that a later failure there is
    not a surprise."""
    import numpy as np

    from . import geometry, log

    aff = np.asarray(volume.affine, dtype=float)
    if aff.shape != (4, 4) or not np.isfinite(aff).all() or geometry.is_orthogonal(aff, tol=1e-4):
        return
    _, direction, _ = geometry.decompose(aff)
    cos = np.abs(np.clip(direction.T @ direction, -1, 1)[np.triu_indices(3, 1)]).max()
    shear = 90.0 - float(np.degrees(np.arccos(cos)))
    log.warn(f"the voxel axes are not perpendicular ({shear:.2f} degrees of shear); kept as stored, so every "
             "voxel keeps its position (ITK-based tools refuse such images)", path)


def write(volume, path, *, to: str | None = None, force: bool = False, protect=(), **options) -> list:
    """Write a Volume; the format comes from `to` or the extension. Returns the files written."""
    import os

    from .formats import BY_NAME, backend, format_for_output

    path = os.fspath(path)
    name = format_for_output(path, to)
    if not BY_NAME[name].can_write:
        raise OutputError(f"medconv cannot write {name} files", path)
    import numpy as np

    # absurd geometry (a huge spacing from a corrupt header) overflows while a writer derives
    # its fields; each writer refuses what its format cannot hold, so numpy need not warn too
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return backend(name).write(volume, path, name, force=force, protect=protect, **options)


def __getattr__(name):
    """`medconv.Volume` is the Volume class, imported on first use (numpy stays unloaded until then)."""
    if name == "Volume":
        from .volume import Volume

        return Volume
    raise AttributeError(f"module 'medconv' has no attribute {name!r}")
