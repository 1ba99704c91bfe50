"""`convert` as a library call: read, optional reorient / cast / slice / window, write."""
from __future__ import annotations

import os

import numpy as np

from . import log
from .errors import OutputError, UsageError
from .formats import RASTER, format_for_output

DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")


def cast(volume, dtype: str):
    """Real values stored as `dtype`: exact for floats, rounded for integers (range checked)."""
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    target = np.dtype(dtype)
    if volume.value_kind == "complex":
        raise UsageError("cannot cast complex data to a real type")
    if volume.scaling is None and volume.dtype == target:
        return volume
    real = volume.real()
    if target.kind in "iu":
        if real.dtype.kind == "f":
            if not np.isfinite(real).all():
                raise OutputError(f"NaN or infinite values cannot be stored as {dtype}", volume.path)
            real = np.rint(real)
        if real.size:
            lo, hi = real.min(), real.max()
            info = np.iinfo(target)
            if lo < info.min or hi > info.max:
                raise OutputError(f"values {_num(lo)}..{_num(hi)} do not fit in {dtype} "
                                  f"({info.min}..{info.max}); choose a wider --dtype", volume.path)
    return volume.replace(data=real.astype(target), scaling=None)


def _num(v) -> str:
    return format(float(v), ".6g")


def window(volume, spec: str | None):
    """8-bit display values through a VOI window: 'auto' or 'CENTER,WIDTH' (DICOM's linear rule)."""
    real = volume.real()
    if real.dtype.kind == "c":
        raise UsageError("cannot window complex data")
    lo = hi = None
    if spec in (None, "auto"):
        centre, width = volume.metadata.get("window_center"), volume.metadata.get("window_width")
        if centre is None or width is None or not width or width <= 0:
            finite = real[np.isfinite(real)] if real.dtype.kind == "f" else real
            if finite.size == 0:
                lo, hi = 0.0, 1.0
            else:
                lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
            if hi <= lo:
                hi = lo + 1.0
    else:
        try:
            centre, width = (float(v) for v in spec.split(","))
        except ValueError:
            raise UsageError(f"--window takes 'auto' or CENTER,WIDTH, not {spec!r}") from None
        if width <= 0:
            raise UsageError("--window width must be positive")
    x = real.astype(np.float64)
    if lo is not None:  # robust range: a plain linear map of [lo, hi]
        out = np.clip((x - lo) / (hi - lo) * 255.0, 0, 255)
    elif width <= 1:  # DICOM PS3.3 C.11.2.1.2: a width of 1 is a threshold at centre - 0.5
        out = np.where(x <= centre - 0.5, 0.0, 255.0)
    else:  # DICOM's linear VOI rule: ((x - (c - 0.5)) / (w - 1) + 0.5) over the output range
        out = np.clip(((x - (centre - 0.5)) / (width - 1) + 0.5) * 255.0, 0, 255)
    out = np.nan_to_num(out, nan=0.0)
    if volume.metadata.get("photometric") == "MONOCHROME1":
        out = 255.0 - out  # invert after the window (display white = low values)
    return volume.replace(data=np.rint(out).astype(np.uint8), scaling=None)


def _raster_ready(volume, fmt: str, window_spec, dtype):
    """Values a 2D raster can hold: raw when they fit, else windowed to 8 bits."""
    if volume.value_kind in ("rgb", "rgba"):
        return volume
    if window_spec is not None:
        return window(volume, window_spec)
    if dtype is not None:
        return volume
    meta = volume.metadata
    if volume.format == "dicom" and (meta.get("window_width") or meta.get("photometric") == "MONOCHROME1"):
        return window(volume, "auto")  # the file's own VOI window (or MONOCHROME1 needs inverting)
    from .formats._registry import BY_NAME

    allowed = BY_NAME[fmt].dtypes
    if volume.scaling is None and volume.dtype.name in allowed:
        return volume
    exact = _as_raster_integers(volume, allowed)
    if exact is not None:  # a label map or a small-range int16 image: its values, not a stretch
        return exact
    log.note(f"{volume.dtype} values windowed to 8 bits for {fmt} (use --dtype uint16 or --window to choose)")
    return window(volume, "auto")


def _as_raster_integers(volume, allowed):
    """The real values as uint8 (or uint16) when they are whole numbers that fit; else None."""
    real = volume.real()
    if real.dtype.kind not in "iuf" or real.size == 0:
        return None
    if real.dtype.kind == "f" and not (np.isfinite(real).all() and np.array_equal(real, np.rint(real))):
        return None
    lo, hi = float(real.min()), float(real.max())
    for name in ("uint8", "uint16"):
        if name in allowed and lo >= 0 and hi <= np.iinfo(name).max:
            return volume.replace(data=real.astype(name), scaling=None)
    return None


def slice_volume(volume, index: int):
    """One slice (3rd axis) of a 3D volume as a 2D volume with its own affine."""
    nz = volume.spatial_shape[2]
    if not -nz <= index < nz:
        raise UsageError(f"--slice {index} is outside 0..{nz - 1}")
    index %= nz
    arr = volume.array[:, :, index]
    affine = volume.affine.copy()
    affine[:3, 3] = affine[:3, 3] + affine[:3, 2] * index
    return volume.replace(data=arr, affine=affine)


def convert(src: str, dst: str, *, to: str | None = None, force: bool = False, dtype: str | None = None,
            orient: str | None = None, slice_index: int | None = None, window_spec: str | None = None,
            series=None, strict: bool = False, fill_gaps: bool = False, sidecar_path: str | None = None,
            sidecar_keys: dict | None = None, **write_options) -> list:
    """Convert one input; returns the files written.

    DICOM-only reading options: `series` (which series of a directory), `strict` (refuse
    uneven slice spacing) and `fill_gaps` (insert empty slices where slices are missing). `sidecar_path`: also write the BIDS JSON sidecar of the source
    (`sidecar_keys`: {"add": [...], "drop": [...], "only": [...] or None} chooses its keys). A DICOM
    diffusion series written as NIfTI always gets its .bval/.bvec beside it.
    """
    from . import detect, read

    fmt = format_for_output(dst, to)
    src_fmt = detect(src)
    read_options = {}
    if src_fmt == "dicom":
        read_options = {"strict": strict} if strict else {}
        if fill_gaps:
            read_options["fill_gaps"] = True
        if series is not None:
            read_options["series"] = series
    elif series is not None:
        raise UsageError(f"--series chooses a DICOM series; {os.path.basename(src)} is {src_fmt}")
    if sidecar_path and os.path.lexists(sidecar_path) and not force:
        raise OutputError("sidecar exists (use --force to replace it)", sidecar_path)
    volume = read(src, fmt=src_fmt, **read_options)
    _check_gradient_files(volume, dst, fmt, force, slice_index)
    written = _convert_volume(volume, src, dst, fmt, force=force, dtype=dtype, orient=orient,
                              slice_index=slice_index, window_spec=window_spec, **write_options)
    if sidecar_path:
        if volume.metadata.get("sidecar"):
            from .dicom.sidecar import write_sidecar

            if _flips_rows(volume, fmt, orient):
                from .dicom.sidecar import rows_flipped

                volume.metadata["sidecar"] = rows_flipped(volume.metadata["sidecar"])
            written += write_sidecar(volume, sidecar_path, force=force, **(sidecar_keys or {}))
        else:
            log.warn("no acquisition metadata for a sidecar (only DICOM inputs have it)", src)
    return written


def _convert_volume(volume, src, dst, fmt, *, force, dtype, orient, slice_index, window_spec, **write_options):
    from . import write

    if orient:
        volume = volume.reoriented(orient)
    if fmt in RASTER:
        return _write_raster(volume, src, dst, fmt, force=force, dtype=dtype, slice_index=slice_index,
                             window_spec=window_spec)
    if slice_index is not None:
        volume = slice_volume(volume, slice_index)
    if dtype:
        volume = cast(volume, dtype)
    if _flips_rows(volume, fmt, orient):
        volume = dicom_rows_flipped(volume)
    written = write(volume, dst, to=fmt, force=force, protect=_input_files(src), **write_options)
    if fmt in _NIFTI and slice_index is None and volume.metadata.get("diffusion"):
        from .dicom.gradients import write_fsl

        written += write_fsl(volume, dst, force=force)
    return written


_NIFTI = ("nifti1", "nifti2")


def _flips_rows(volume, fmt, orient) -> bool:
    """A DICOM diffusion series written as NIfTI is stored bottom-up, as dcm2niix stores it."""
    return fmt in _NIFTI and volume.format == "dicom" and not orient and bool(volume.metadata.get("diffusion"))


def dicom_rows_flipped(volume):
    """A DICOM volume with its rows in reverse order (the affine follows, no voxel moves): a
    diffusion NIfTI is stored bottom-up as dcm2niix stores it, so its voxel axes, and the
    b-vectors that follow them, are dcm2niix's."""
    import numpy as np

    if volume.ndim < 2:
        return volume
    ny = volume.grid_shape[1]
    affine = volume.affine.copy()
    affine[:3, 3] = affine[:3, 3] + affine[:3, 1] * (ny - 1)
    affine[:3, 1] = -affine[:3, 1]
    return volume.replace(data=np.flip(volume.array, axis=1), affine=affine)


def _check_gradient_files(volume, dst, fmt, force, slice_index):
    """Refuse, before anything is written, a diffusion output whose .bval/.bvec exist (without --force)."""
    if force or fmt not in _NIFTI or slice_index is not None or not volume.metadata.get("diffusion"):
        return
    from .dicom.gradients import fsl_paths

    for p in fsl_paths(dst):
        if os.path.lexists(p):
            raise OutputError("exists (use --force to replace it)", p)


def _input_files(src: str) -> list:
    if os.path.isdir(src):
        return []
    from .inspect import volume_files

    files = volume_files(src)
    low = src.lower()
    if low.endswith((".hdr", ".img", ".img.gz")):
        from .formats.nifti import output_paths

        files += output_paths(src, "analyze")
    return files


#: in-plane display axes of a 2D export, by the world axis the slices are stacked along:
#: columns then rows, as a radiology viewer shows them (DICOM's usual image orientation)
_DISPLAY = {0: ("P", "I"), 1: ("L", "I"), 2: ("L", "P")}
_LETTER = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "S", (2, -1): "I"}


def display_oriented(volume):
    """The volume with its in-plane axes flipped/swapped into the viewing convention of 2D exports.

    The slice axis (the third voxel axis) is kept, so `--slice N` still counts along it; only
    columns and rows change, and no voxel moves in the world.
    """
    from .geometry import axcodes, axis_assignment

    assign = axis_assignment(volume.affine)
    if any(a is None for a in assign):
        return volume
    slice_world, slice_sign = assign[2]
    cols, rows = _DISPLAY[slice_world]
    code = cols + rows + _LETTER[(slice_world, slice_sign)]
    if axcodes(volume.affine) == code:
        return volume
    try:
        return volume.reoriented(code)
    except UsageError:  # a 2D image whose plane is not a slice plane: leave it as it is
        return volume


def _write_raster(volume, src, dst, fmt, *, force, dtype, slice_index, window_spec) -> list:
    from . import write

    volume = display_oriented(volume)

    if volume.ndim > 3 or (volume.ndim == 3 and volume.spatial_shape[2] > 1 and slice_index is None):
        if volume.ndim > 3:
            raise UsageError(f"a {volume.ndim}D image cannot become {fmt} images; choose a volume first")
        if not (dst.endswith(("/", os.sep)) or os.path.isdir(dst)):
            raise UsageError(f"{os.path.basename(src)} has {volume.spatial_shape[2]} slices: use --slice N for "
                             f"one {fmt} image, or give a directory (DST/ --to {fmt}) for one file per slice")
        volume = _raster_values(volume, fmt, window_spec, dtype, dst)
        stem = _stem(src)
        ext = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp"}[fmt]
        nz = volume.spatial_shape[2]
        written = []
        for k in range(nz):
            out = os.path.join(dst, f"{stem}_{k:0{max(3, len(str(nz - 1)))}d}{ext}")
            written += write(slice_volume(volume, k), out, to=fmt, force=force, protect=_input_files(src))
        return written
    if volume.ndim == 3:
        volume = slice_volume(volume, slice_index or 0)
    volume = _raster_values(volume, fmt, window_spec, dtype, dst)
    return write(volume, dst, to=fmt, force=force, protect=_input_files(src))


def _raster_values(volume, fmt, window_spec, dtype, dst=None):
    if dtype and window_spec is None:
        try:
            volume = cast(volume, dtype)
        except OutputError as exc:
            if volume.scaling is None:
                raise OutputError(f"{exc.message.split('; ')[0]}; use --window for a display image", dst) from None
            # raw values: the stored ones (a CT's 0..4095), when the real ones (HU) do not fit
            slope, inter = volume.scaling
            stored = volume.replace(scaling=None)
            try:
                volume = cast(stored, dtype)
            except OutputError:
                raise OutputError(f"{exc.message.split('; ')[0]}, nor do the stored values; use --window "
                                  "for a display image", dst) from None
            log.note(f"real values do not fit in {dtype}: the stored values are written (real = stored x "
                     f"{_num(slope)} + {_num(inter)})")
    return _raster_ready(volume, fmt, window_spec, dtype)



def _stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    for ext in (".nii.gz", ".img.gz", ".tar.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0] or "image"
