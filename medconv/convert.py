"""`convert` as a library call: read, optional reorient / cast / slice / window, write."""
from __future__ import annotations

import math
import os

import numpy as np

from . import log
from .errors import OutputError, UsageError
from .formats import ALL_DTYPES, BY_NAME, DEFAULT_EXTENSIONS, RASTER, files, format_for_output
from .naming import stem_of

DTYPES = ALL_DTYPES


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
        centre, width = _parse_window(spec)
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


def _parse_window(spec: str) -> tuple:
    try:
        centre, width = (float(v) for v in spec.split(","))
    except ValueError:
        raise UsageError(f"--window takes 'auto' or CENTER,WIDTH, not {spec!r}") from None
    if width <= 0:
        raise UsageError("--window width must be positive")
    return centre, width


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
            sidecar_keys: dict | None = None, per_input_folder: bool = False, dry_run: bool = False,
            say_dicom: bool = False, philips_scaling: str | None = None, **write_options) -> list:
    """Convert one input; returns the files written.

    DICOM-only reading options: `series` (which series of a directory), `strict` (refuse
    uneven slice spacing) and `fill_gaps` (insert empty slices where slices are missing). `sidecar_path`: also write the BIDS JSON sidecar of the source
    (`sidecar_keys`: {"add": [...], "drop": [...], "only": [...] or None} chooses its keys). A DICOM
    diffusion series written as NIfTI always gets its .bval/.bvec beside it.
    `per_input_folder`: a 3D input to a 2D format writes a folder named after `dst` (without its
    extension) holding one file per slice. `dry_run`: every check of the run, nothing written;
    returns what the run would write. `say_dicom`: note that a DICOM series is being written.
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
        if philips_scaling is not None:
            read_options["philips_scaling"] = philips_scaling
    elif series is not None:
        raise UsageError(f"--series chooses a DICOM series; {os.path.basename(src)} is {src_fmt}")
    if sidecar_path and os.path.lexists(sidecar_path) and not force:
        raise OutputError("sidecar exists (use --force to replace it)", sidecar_path)
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if window_spec not in (None, "auto"):
        _parse_window(window_spec)
    volume = read(src, fmt=src_fmt, header_only=dry_run, **read_options)
    _check_gradient_files(volume, dst, fmt, force, slice_index)
    if dry_run:
        return _check_volume(volume, src, dst, fmt, force=force, dtype=dtype, orient=orient, slice_index=slice_index,
                             window_spec=window_spec, per_input_folder=per_input_folder)
    written = _convert_volume(volume, src, dst, fmt, force=force, dtype=dtype, orient=orient,
                              slice_index=slice_index, window_spec=window_spec, per_input_folder=per_input_folder,
                              say_dicom=say_dicom, **write_options)
    if sidecar_path:
        if volume.metadata.get("sidecar"):
            from .dicom.sidecar import write_sidecar

            plan = _axis_plan(volume, fmt, orient)
            if plan is not None:  # the written voxel axes are not DICOM's: the sidecar follows them
                from .dicom.sidecar import reoriented

                volume.metadata["sidecar"] = reoriented(volume.metadata["sidecar"], *plan)
            written += write_sidecar(volume, sidecar_path, force=force, **(sidecar_keys or {}))
        else:
            log.warn("no acquisition metadata for a sidecar (only DICOM inputs have it)", src)
    return written


def _convert_volume(volume, src, dst, fmt, *, force, dtype, orient, slice_index, window_spec,
                    per_input_folder=False, say_dicom=False, **write_options):
    from . import write

    if orient:
        volume = volume.reoriented(orient)
    if fmt in RASTER:
        return _write_raster(volume, src, dst, fmt, force=force, dtype=dtype, slice_index=slice_index,
                             window_spec=window_spec, per_input_folder=per_input_folder)
    if slice_index is not None:
        volume = slice_volume(volume, slice_index)
    check_capacity(volume, fmt, dst)
    wider = storable_type(volume, fmt, dtype, dst)
    if dtype:
        volume = cast(volume, dtype)
    elif wider is not None:
        log.note(f"{src}: {volume.dtype} values stored as {wider} ({(BY_NAME[fmt].label or fmt)} holds "
                 f"{', '.join(BY_NAME[fmt].dtypes)}; no value changes)")
        volume = volume.replace(data=volume.array.astype(wider))
    if fmt == "dicom" and say_dicom:
        log.note(f"writing a DICOM series of {dicom_file_count(volume)} files into {dst}")
    if _flips_rows(volume, fmt, orient):
        volume = dicom_rows_flipped(volume)
    written = write(volume, dst, to=fmt, force=force, protect=_input_files(src, volume.format), **write_options)
    if fmt in _NIFTI and slice_index is None and volume.metadata.get("diffusion"):
        from .dicom.gradients import write_fsl

        written += write_fsl(volume, dst, force=force)
    return written


_NIFTI = ("nifti1", "nifti2")


def _flips_rows(volume, fmt, orient) -> bool:
    """A DICOM diffusion series written as NIfTI is stored bottom-up, as dcm2niix stores it."""
    return fmt in _NIFTI and volume.format == "dicom" and not orient and bool(volume.metadata.get("diffusion"))


def _axis_plan(volume, fmt, orient):
    """(perm, flips) from the read volume's voxel axes to the written ones, or None when unchanged."""
    from . import geometry

    if fmt in RASTER or volume.ndim < 3:
        return None
    if orient:
        try:
            perm, flips, _ = geometry.reorient_plan(volume.affine, orient, tuple(volume.spatial_shape))
        except UsageError:
            return None
        return perm, flips
    if _flips_rows(volume, fmt, orient):
        return (0, 1, 2), (False, True, False)
    return None


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


_LOSSLESS_ORDER = ALL_DTYPES  # narrowest first
#: significant bits of each float type: an integer type fits when its value bits do not exceed them
_MANTISSA = {"float32": 24, "float64": 53}


def _holds_every_value(src: np.dtype, dst: np.dtype) -> bool:
    """Every value of type `src` is a value of type `dst` (a lossless widening)."""
    if src == dst:
        return True
    if dst.kind in "iu" and src.kind in "iub":
        return bool(np.can_cast(src, dst, "safe"))
    if dst.kind == "f" and src.kind == "f":
        return dst.itemsize >= src.itemsize
    if dst.kind == "f" and src.kind in "iub":
        bits = 1 if src.kind == "b" else src.itemsize * 8 - (1 if src.kind == "i" else 0)
        return bits <= _MANTISSA.get(dst.name, 0)
    return False


def storable_type(volume, fmt: str, dtype: str | None, path: str):
    """The rule for the type a format stores: never a silent change.

    Returns None when the values are stored as they are (or as `--dtype` names), the smaller type of
    the format that holds every value of the volume's type (a lossless widening, to be noted), and
    raises OutputError naming the types the format holds for anything that could change a value.
    DICOM and the 2D rasters keep their own documented, announced handling (quantised floats with
    a printed error bound; display windowing); scaled data written to a format without scaling keeps
    the documented real-value rule of its writer; colour and complex voxels are checked by the writer.
    """
    if fmt == "dicom" or fmt in RASTER or volume.value_kind != "scalar":
        return None
    allowed = BY_NAME[fmt].dtypes
    label = (BY_NAME[fmt].label or fmt)
    if dtype is not None:
        if dtype not in allowed:
            raise OutputError(f"{label} cannot hold {dtype}; it holds {', '.join(allowed)} (choose one with "
                              "--dtype)", path)
        return None
    if volume.scaling is not None:
        return None
    have = volume.dtype
    if have.name in allowed:
        return None
    for name in sorted(allowed, key=lambda n: (np.dtype(n).kind == "f", _LOSSLESS_ORDER.index(n)
                                               if n in _LOSSLESS_ORDER else 99)):
        if name in _LOSSLESS_ORDER and _holds_every_value(have, np.dtype(name)):
            return np.dtype(name)
    raise OutputError(f"{label} cannot hold {have} values without possibly changing them; it holds "
                      f"{', '.join(allowed)}: choose one with --dtype", path)


def check_capacity(volume, fmt: str, path: str) -> None:
    """Dimensions and voxel kinds the format cannot hold, refused before anything is written."""
    info = BY_NAME[fmt]
    label = (BY_NAME[fmt].label or fmt)
    if volume.ndim not in info.ndims and volume.ndim > 1:
        dims = f"{min(info.ndims)}D-{max(info.ndims)}D" if len(info.ndims) > 1 else f"{info.ndims[0]}D"
        raise OutputError(f"{label} holds {dims} images, not {volume.ndim}D", path)
    kind = volume.value_kind
    if kind in ("rgb", "rgba") and kind not in info.colour:
        alpha = " (an alpha channel: it holds RGB only)" if kind == "rgba" and "rgb" in info.colour else ""
        raise OutputError(f"{label} cannot hold {kind} voxels{alpha}", path)
    if kind == "complex" and not any(d.startswith("complex") for d in info.dtypes):
        raise OutputError(f"{label} cannot hold complex voxels", path)
    if fmt == "analyze" and not _axis_aligned(volume.affine):
        raise OutputError("Analyze 7.5 cannot hold a rotated (oblique) orientation; "
                          "write NIfTI (.nii, .nii.gz or a .hdr/.img pair) instead", path)


def _axis_aligned(affine) -> bool:
    from .geometry import is_axis_aligned

    return is_axis_aligned(affine, tol=1e-5)


def dicom_file_count(volume) -> int:
    """Files of a DICOM series written from `volume`: one per slice of every volume."""
    grid = volume.grid_shape
    if len(grid) < 3:
        return 1
    return int(np.prod(grid[2:]))


def _check_volume(volume, src, dst, fmt, *, force, dtype, orient, slice_index, window_spec,
                  per_input_folder) -> str:
    """Every check `_convert_volume` makes: the destination the run would write. The header is
    enough, except for the range check of --dtype, which takes the run's own steps on the voxels."""
    from . import geometry

    with_values = bool(dtype)
    if orient and with_values:
        volume = volume.reoriented(orient)
    elif orient:  # the new geometry and shape, without touching the voxels
        flat = volume.ndim == 2
        shape3 = tuple(volume.spatial_shape) + ((1,) if flat else ())
        perm, _, affine = geometry.reorient_plan(volume.affine, orient, shape3)
        if flat and perm[2] != 2:
            raise UsageError(f"a 2D image cannot be reoriented to {orient.upper()}: its plane would change")
        shape = list(volume.shape)
        shape[:3] = [shape3[p] for p in perm][: 2 if flat else 3]
        volume = volume.replace(data=None, affine=affine, stored_shape=tuple(shape), stored_dtype=volume.dtype,
                                loader=_no_voxels)
    if volume.ndim >= 3 and slice_index is not None:
        nz = volume.spatial_shape[2]
        if not -nz <= slice_index < nz:
            raise UsageError(f"--slice {slice_index} is outside 0..{nz - 1}")
    if fmt in RASTER:
        folder = _raster_folder(volume, src, dst, fmt, slice_index, per_input_folder)
        _check_raster_dtype(fmt, dtype, dst)
        if with_values:
            shown = display_oriented(volume)
            if folder is None and shown.ndim == 3:
                shown = slice_volume(shown, slice_index or 0)
            _raster_values(shown, fmt, window_spec, dtype, dst)
        if folder is not None:
            directory, stem, ext = folder
            names = _slice_names(directory, stem, ext, volume.spatial_shape[2])
            _check_destinations(names, src, volume.format, force)
            return f"{directory}  ({len(names)} files)"
        _check_destinations([dst], src, volume.format, force)
        return dst
    if slice_index is not None and volume.ndim >= 3:
        if with_values:
            volume = slice_volume(volume, slice_index)
        else:
            grid = list(volume.shape)
            del grid[2]
            volume = volume.replace(data=None, stored_shape=tuple(grid), stored_dtype=volume.dtype,
                                    loader=_no_voxels)
    check_capacity(volume, fmt, dst)
    storable_type(volume, fmt, dtype, dst)
    if fmt == "dicom":
        if os.path.isdir(dst) and os.listdir(dst) and not force:
            raise OutputError("destination exists (use --force to replace it)", dst)
    else:
        _check_destinations(files(dst), src, volume.format, force)
    if with_values:
        cast(volume, dtype)
    return dst


def _no_voxels():
    raise RuntimeError("a dry run's planned geometry has no voxels")  # a bug if ever reached


def _check_destinations(paths, src, src_fmt, force) -> None:
    from .fileio import same_file

    protect = _input_files(src, src_fmt)
    for p in paths:
        if os.path.lexists(p) and any(same_file(p, q) for q in protect):
            raise OutputError("refusing to overwrite an input file", p)
        if os.path.lexists(p) and not force:
            raise OutputError("destination exists (use --force to replace it)", p)


def _input_files(src: str, fmt: str | None) -> list:
    """The files of an input image (a header with its data files), never to be overwritten."""
    if os.path.isdir(src):
        return []
    return files(src, fmt)


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


def _raster_folder(volume, src, dst, fmt, slice_index, per_input_folder):
    """(folder, stem, extension) when a 3D input becomes one 2D file per slice, None for one file;
    a UsageError when neither is possible."""
    if volume.ndim > 3:
        raise UsageError(f"a {volume.ndim}D image cannot become {fmt} images; choose a volume first")
    if not (volume.ndim == 3 and volume.spatial_shape[2] > 1 and slice_index is None):
        return None
    if dst.endswith(("/", os.sep)) or os.path.isdir(dst):
        return dst, stem_of(src), DEFAULT_EXTENSIONS[fmt]
    if per_input_folder:  # out/NAME.png -> out/NAME/NAME_000.png ...
        base, ext = os.path.splitext(dst)
        return base + os.sep, os.path.basename(base), ext or DEFAULT_EXTENSIONS[fmt]
    raise UsageError(f"{os.path.basename(src)} has {volume.spatial_shape[2]} slices: use --slice N for "
                     f"one {fmt} image, or give a directory (DST/ --to {fmt}) for one file per slice")


def _check_raster_dtype(fmt, dtype, dst) -> None:
    if dtype and dtype not in BY_NAME[fmt].dtypes:
        raise OutputError(f"{fmt} cannot hold {dtype}; it holds {', '.join(BY_NAME[fmt].dtypes)}", dst)


def _slice_names(directory, stem, ext, nz) -> list:
    width = max(3, len(str(nz - 1)))
    return [os.path.join(directory, f"{stem}_{k:0{width}d}{ext}") for k in range(nz)]


def _write_raster(volume, src, dst, fmt, *, force, dtype, slice_index, window_spec, per_input_folder=False) -> list:
    from . import write

    protect = _input_files(src, volume.format)
    volume = display_oriented(volume)

    folder = _raster_folder(volume, src, dst, fmt, slice_index, per_input_folder)
    _check_raster_dtype(fmt, dtype, dst)
    if folder is not None:
        directory, stem, ext = folder
        volume = _raster_values(volume, fmt, window_spec, dtype, dst)
        nz = volume.spatial_shape[2]
        written = []
        for k, out in enumerate(_slice_names(directory, stem, ext, nz)):
            written += write(slice_volume(volume, k), out, to=fmt, force=force, protect=protect)
        return written
    if volume.ndim == 3:
        volume = slice_volume(volume, slice_index or 0)
    volume = _raster_values(volume, fmt, window_spec, dtype, dst)
    return write(volume, dst, to=fmt, force=force, protect=protect)


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



def convert_many(tasks, *, jobs: int | None = None, keep_going: bool = False, force: bool = False,
                 dry_run: bool = False, sidecar: bool = False, strict: bool = False, template: str | None = None,
                 compression_level: int | None = None, on_error=None, **options) -> tuple:
    """Run planned tasks (`plan.plan` or `plan.pair`, after `plan.mark_existing`) through the batch engine.

    Returns (done, failures): done holds (task, files written) in task order, or with `dry_run`
    (task, what the run would write) after every check the run makes; failures holds (task or label,
    MedconvError). Skipped tasks are not run. A series refused at planning (a file of it damaged) and
    a damaged file no series claims are failures reported here, while the rest is converted; when
    nothing else is left, the refusal is raised. Without `keep_going` the first failure is raised;
    with it, failures are reported through on_error(task, error) (default: a warning) and the caller
    ends the batch with `batch.finish(failures, len(done) + len(failures))`.

    `options` are those of `convert` (dtype, orient, slice_index, window_spec, fill_gaps, ...);
    `template` a reference DICOM file for DICOM outputs; `compression_level` 0-9 for deflated outputs.
    """
    import contextlib
    import functools

    from . import batch, fileio

    tasks = list(tasks)
    _check_template(template, tasks)
    if compression_level is not None:
        fileio.set_compression(level=compression_level)
    todo = [t for t in tasks if not t.skip and not t.refused]
    skipped = [t for t in tasks if t.skip]
    if skipped and not dry_run:
        why = "up to date" if skipped[0].skip == "destination is up to date" else "destination exists"
        log.note(f"{len(skipped)} of {len(tasks)} inputs skipped ({why})")
    common = {**options, "force": force, "strict": strict, "dry_run": dry_run, "sidecar": sidecar}
    if template is not None:
        common["template"] = template
    if jobs is None:
        small = len(todo) <= SMALL_BATCH_TASKS and _input_bytes(todo) < SMALL_BATCH_BYTES
        jobs = 1 if small else batch.default_jobs(len(todo))
    if jobs > 1:
        _before_fork()
    failures = _refusals(tasks, todo) + [d for t in tasks for d in t.damaged]
    # the workers already use the cores: each compresses its outputs on its own thread
    with fileio.compression_threads(0) if jobs > 1 else contextlib.nullcontext():
        results, failed = batch.run(todo, functools.partial(_run_task, common), keep_going=keep_going,
                                    on_error=on_error or _report_failure, jobs=jobs,
                                    progress=None if dry_run else "convert")
    lost = {id(t) for t, _ in failed}
    return list(zip([t for t in todo if id(t) not in lost], results)), failures + failed


#: a batch of at most this many inputs holding less than this many bytes runs in this process unless
#: -j says otherwise: starting and feeding worker processes costs more than they save on so little
#: (and each output of modest size is deflated on several threads anyway: fileio.BlockGzip)
SMALL_BATCH_TASKS = 16
SMALL_BATCH_BYTES = 16 << 20


def _input_bytes(tasks) -> float:
    """Bytes the tasks read (a DICOM series' files, each file once however many outputs share it; an
    input file); infinite when not known."""
    total, files = 0, {}
    for t in tasks:
        if t.scanned is not None:
            frames = getattr(t.scanned, "frames", None)
            if frames is None:
                total += t.scanned.size_bytes
            else:
                files.update((f.path, f.size) for f in frames)
        else:
            try:
                total += os.path.getsize(t.src) if os.path.isfile(t.src) else math.inf
            except (OSError, TypeError, ValueError):
                return math.inf
    return total + sum(files.values())


def _before_fork() -> None:
    """What every worker would import on its own is imported once, before the pool forks them."""
    try:
        from . import dicom
    except ImportError:
        return
    dicom.before_workers()


def _check_template(template, tasks) -> None:
    if template is None:
        return
    if any(t.fmt != "dicom" for t in tasks):
        raise UsageError("--template applies to DICOM outputs (--to dicom)")
    if not os.path.isfile(template):
        from .errors import InputError

        raise InputError("no such file (--template)", template)


def _report_failure(task, exc) -> None:
    log.warn(f"failed: {exc.message}", exc.path or str(task))


def _refusals(tasks, todo) -> list:
    """(task, error) of the series of a directory refused at planning (a file of theirs is damaged):
    reported and counted as failed while the other series are converted; alone, they are the error."""
    from .errors import CorruptInput

    refused = [t for t in tasks if t.refused and not t.skip]
    out = [(t, CorruptInput(t.refused, t.src)) for t in refused]
    if out and not todo:
        if len(out) == 1:
            raise out[0][1]
        raise CorruptInput(f"no series here can be converted ({len(out)} series refused; first: "
                           f"{out[0][1].message})", refused[0].src)
    for task, exc in out:
        log.warn(f"failed: {exc.message}", str(task))
    return out


def _run_task(common: dict, task):
    """Convert one task (in a worker with jobs > 1): the files written, or with dry_run the planned
    destination."""
    from .plan import sidecar_path

    options = dict(common)
    sidecar = options.pop("sidecar")
    options["force"] = options["force"] or task.force
    if task.implied_dicom:
        options["say_dicom"] = True
    if task.slice_folder:
        options["per_input_folder"] = True
    series = task.scanned if task.scanned is not None else task.series
    return convert(task.src, task.dst, to=task.fmt, series=series,
                   sidecar_path=sidecar_path(task.dst) if sidecar else None, **options)
