"""DICOM backend: files, series directories and DICOMDIR trees -> Volume (and series writing)."""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from ..errors import InputError, UsageError


def _quiet(func):
    """Silence pydicom's lazy-decoding warnings; turn any stray exception into CorruptInput."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ..errors import CorruptInput, MedconvError

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return func(*args, **kwargs)
            except (MedconvError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                path = os.fspath(args[0]) if args else None
                raise CorruptInput(f"malformed DICOM ({type(exc).__name__}: {exc})", path) from None
    return wrapper


def before_workers() -> None:
    """Before a batch forks its workers: when a series scanned in this process has a header the
    light view does not hold (every worker then reads it through pydicom), pydicom is imported once
    here, not once per worker."""
    import multiprocessing
    import sys

    from .gradients import is_light
    from .scan import SCANS

    if "pydicom" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return
    if any(not is_light(f.ds) for frames in list(SCANS.values()) for f in frames):
        import pydicom  # noqa: F401


def _all_series(path, with_unplaced=False):
    """The series under `path`; a series that lost a file to damage is listed too (and refused when read).
    With `with_unplaced`, also the damaged files no series claims: (series, [Skip])."""
    from .assemble import group
    from .damage import attach, unplaced, without_copies
    from .scan import scan

    frames = without_copies(scan(path))
    series = attach(group(frames), frames)
    return (series, unplaced(frames, series)) if with_unplaced else series


@_quiet
def list_series(path) -> list:
    """One dict per series found under `path` (series_uid, series_number, ..., n_files, selector);
    `refused` says why a series that lost a file to damage cannot be read."""
    path = os.fspath(path)
    return [_described(s, path) for s in _all_series(path)]


@_quiet
def survey(path) -> tuple:
    """What a batch plan needs of `path`, from one scan: (series, damaged). `series` holds one dict
    per series as list_series gives it, with the series itself under "scanned" (`read` takes it as
    `series` without scanning again); `damaged` the (file, error) of a folder's damaged files that no
    series claims."""
    from .damage import unplaced_error

    path = os.fspath(path)
    if not os.path.isdir(path):
        return [{**_described(s, path), "scanned": s} for s in _all_series(path)], []
    all_series, lost = _all_series(path, with_unplaced=True)
    return ([{**_described(s, path), "scanned": s} for s in all_series],
            [(k.path, unplaced_error(k, path)) for k in lost])


@_quiet
def series_of_files(paths) -> list:
    """The series that the DICOM files `paths` form (headers only)."""
    from .assemble import group
    from .scan import read_file

    frames = []
    for p in paths:
        frames.extend(read_file(p))
    return group(frames)


def _described(s, path) -> dict:
    from .damage import refusal

    d = s.as_dict()
    exc = refusal(s, path)
    if exc is not None:
        d["refused"] = exc.message
    return d


def _choose(all_series, path, series):
    if series is None:
        if len(all_series) == 1:
            return all_series[0]
        _refuse_mixed_sizes(all_series, path)
        listing = ", ".join(s.describe() for s in all_series[:20])
        more = "" if len(all_series) <= 20 else ", ..."
        raise UsageError(f"holds {len(all_series)} series ({listing}{more}): choose one with --series "
                         f"(convert can write them all with -o DIR)", path)
    key = str(series).strip()
    exact = [s for s in all_series if s.selector == key]
    if exact:
        return exact[0]
    hits = [s for s in all_series if s.series_uid == key or (s.series_number is not None and str(s.series_number) == key)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listing = ", ".join(s.describe() for s in all_series[:20])
        raise UsageError(f"no series {key!r} here (found: {listing})", path)
    listing = ", ".join(s.describe() for s in hits)
    raise UsageError(f"series {key!r} matches {len(hits)} series ({listing}): choose one of these selectors", path)


def _refuse_mixed_sizes(all_series, path):
    """One SeriesInstanceUID whose images differ only in size or pixel spacing is a broken series
    (exit 3), not a choice between series: say so, with the parts --series can still pick."""
    from ..errors import CorruptInput

    if len({s.series_uid for s in all_series}) != 1:
        return
    sigs = [s.frames[0].signature() for s in all_series]
    # signature: (uid, iop, rows, columns, samples, bits, photometric, echo, kind, spacing)
    if len({sig[:2] + sig[4:9] for sig in sigs}) != 1:
        return  # orientation, echo or image type differ: a real split (localizers, echoes)
    parts = "; ".join(f"{s.frames[0].rows}x{s.frames[0].columns}"
                      + (f" at {'x'.join(format(v, 'g') for v in s.frames[0].pixel_spacing)} mm"
                         if s.frames[0].pixel_spacing is not None else "")
                      + f" in {len(s.files)} file(s) (--series {s.selector})" for s in all_series[:6])
    raise CorruptInput(f"series {all_series[0].series_number if all_series[0].series_number is not None else ''} "
                       f"mixes image sizes ({parts}): its images cannot form one volume; pick a part with "
                       "--series or convert each with -o DIR", path)


def select(path, series=None):
    """The series of `path` that `series` (a selector, or a series `survey` found) names."""
    from .assemble import Series

    if isinstance(series, Series):
        return series
    path = os.fspath(path)
    return _choose(_all_series(path), path, series)


def _first_value(ds, keyword):
    try:
        v = ds.get(keyword)
        if v is None or v == "":
            return None
        if hasattr(v, "__len__") and not isinstance(v, str):
            v = v[0]
        return float(v)
    except Exception:
        return None


def _guarded_load(path, func, *args, **kwargs):
    """Run a (possibly lazy) pixel load with pydicom quiet and I/O failures as input errors."""
    from ..errors import MedconvError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(*args, **kwargs)
        except MedconvError:
            raise
        except OSError as exc:
            raise InputError(f"cannot read pixel data ({exc.strerror or exc})", path) from None


#: how Philips stored values become real ones: "fp" (floating-point values from the private scale
#: slope, dcm2niix's default) or "display" (RescaleSlope/Intercept only, dcm2niix -p n)
PHILIPS_SCALINGS = ("fp", "display")


def scaling_rule(frames, philips="fp") -> str:
    """Which rule maps the stored values of these frames to real ones (said by info and header)."""
    if any(f.philips_ss is not None for f in frames):
        return "philips-fp" if philips == "fp" else "philips-display"
    if any(f.slope != 1.0 or f.intercept != 0.0 for f in frames):
        return "rescale"
    return "none"


def scaling_note(ds):
    """One line for `header`: which rule turns this Philips file's stored values into real ones."""
    try:
        if not str(ds.get("Manufacturer") or "").strip().upper().startswith("PHILIPS"):
            return None
        ss = ds.get((0x2005, 0x100E))
        if ss is None:
            per = ds.get("PerFrameFunctionalGroupsSequence")
            private = per[0].get((0x2005, 0x140F)) if per else None
            ss = private.value[0].get((0x2005, 0x100E)) if private is not None and len(private.value) else None
    except Exception:
        return None
    if ss is None:
        return None
    return ("Philips scaling: convert writes floating-point values, (stored x RescaleSlope + RescaleIntercept) / "
            "(RescaleSlope x private scale slope (2005,100E)); --philips-scaling display keeps the display values")


def build_volume(s, path, header_only=False, strict=False, gaps="refuse", philips_scaling="fp"):
    """Assemble one Series into a Volume (pixels loaded lazily with header_only).

    `philips_scaling`: "fp" (default) or "display", see PHILIPS_SCALINGS.
    """
    if philips_scaling not in PHILIPS_SCALINGS:
        raise UsageError(f"--philips-scaling takes {' or '.join(PHILIPS_SCALINGS)}, not {philips_scaling!r}")
    from ..volume import Volume
    from . import damage, gradients, mosaic, pixels, sidecar
    from .assemble import layout

    damage.check(s, path)  # a series that lost a file is refused on its own
    f0 = s.frames[0]
    pixels.check_decodable(f0)

    if mosaic.kind(f0):
        return _mosaic_volume(s, path, header_only)
    by_t, nz, nt, affine, step_t = layout(s, strict=strict, path=path, gaps=gaps)
    diffusion = gradients.from_frames(by_t=by_t) if s.modality == "MR" else None
    by_t, diffusion = gradients.drop_derived(by_t, diffusion)
    nt = len(by_t)
    f0 = next(f for f in by_t[0] if f is not None)
    frames = [f for row in by_t for f in row if f is not None]
    dtype = pixels.stored_dtype(f0)
    colour = pixels.is_colour(f0)

    def scale_of(f):
        return f.scaling(philips_scaling)

    scales = {scale_of(f) for f in frames}
    real_float = len(scales) > 1 and not colour
    scaling = None if real_float or colour else next(iter(scales))
    shape = (f0.columns, f0.rows, nz) + ((nt,) if nt > 1 else ()) + ((3,) if colour else ())
    for f in frames:
        if f.rows is None or f.columns is None or f.rows <= 0 or f.columns <= 0:
            raise InputError("DICOM image has no valid Rows/Columns", f.path)
    ds = f0.ds
    meta = {
        "modality": s.modality, "series_uid": s.series_uid or None, "series_number": s.series_number,
        "series_description": s.series_description, "protocol": s.protocol, "n_files": len(s.files),
        "transfer_syntax": f0.transfer_syntax, "photometric": f0.photometric,
        "window_center": _first_value(ds, "WindowCenter"), "window_width": _first_value(ds, "WindowWidth"),
        "size_bytes": s.size_bytes,
    }
    rule = scaling_rule(frames, philips_scaling)
    if rule.startswith("philips"):
        meta["scaling_rule"] = rule
    if s.suffix:
        meta["suffix"] = s.suffix  # the name part dcm2niix gives this output (_e2, _ph, ...)
    pad = _first_value(ds, "PixelPaddingValue")
    if pad is not None:
        meta["pixel_padding_value"] = pad
    if diffusion:
        meta["diffusion"] = diffusion
    part = sidecar.part_of_suffix(s.suffix)
    meta["sidecar"] = sidecar.build(ds, by_t=by_t, affine=affine, part=part)

    flip_rows = f0.pe_reversed  # GE epi_pepolar: reversed volumes are stored with their rows upside down

    def loader():
        arr = _guarded_load(path, pixels.load, by_t, nz, nt, dtype, real_float=real_float, scale_of=scale_of)
        return np.ascontiguousarray(arr[:, ::-1]) if flip_rows else arr

    known = all(f.iop is not None and f.ipp is not None for f in frames)
    common = {"affine": affine, "scaling": scaling, "value_kind": "rgb" if colour else "scalar", "time_step": step_t,
              "metadata": meta, "header": ds, "format": "dicom", "path": path, "orientation_known": known}
    stored = np.dtype(np.float32) if real_float else dtype
    if header_only:
        return Volume(loader=loader, stored_shape=shape, stored_dtype=stored, **common)
    return Volume(data=loader(), **common)


def _mosaic_volume(s, path, header_only):
    """Mosaic files (Siemens MOSAIC, UIH VFRAME: one volume per file, tiles in one image) -> 3D/4D volume."""
    from ..volume import Volume
    from . import gradients, mosaic, pixels, sidecar
    from .assemble import order_key

    # one file per volume, in NIfTI volume order: files[t].ds is volume t's data set (per-volume
    # sidecar values such as b-values and gradients come from there)
    files = sorted(s.frames, key=order_key)
    f0 = files[0]
    lay = mosaic.layout(f0)
    mosaic.check_files(files, lay)
    affine = mosaic.affine(f0, lay)
    nt = len(files)
    dtype = pixels.stored_dtype(f0)
    scales = {(f.slope, f.intercept) for f in files}
    real_float = len(scales) > 1
    shape = (lay.tile_cols, lay.tile_rows, lay.n_tiles) + ((nt,) if nt > 1 else ())

    def loader():
        raw = _guarded_load(path, pixels.load, [files], len(files), 1, dtype,
                            real_float=real_float)  # [col, row, file]
        out = mosaic.demosaic(raw, lay, f0.columns)
        return out if nt > 1 else out[..., 0]

    tr_s = _first_value(f0.ds, "RepetitionTime")
    meta = {
        "modality": s.modality, "series_uid": s.series_uid or None, "series_number": s.series_number,
        "series_description": s.series_description, "protocol": s.protocol, "n_files": len(s.files),
        "transfer_syntax": f0.transfer_syntax, "photometric": f0.photometric,
        "window_center": _first_value(f0.ds, "WindowCenter"), "window_width": _first_value(f0.ds, "WindowWidth"),
        "size_bytes": s.size_bytes,
        "sidecar": sidecar.build(datasets=[f.ds for f in files], grid=(lay.tile_cols, lay.tile_rows),
                                 slice_times=lay.timing),
    }
    diffusion = gradients.from_frames(datasets=[f.ds for f in files])
    if diffusion:
        meta["diffusion"] = diffusion
    common = {"affine": affine, "scaling": None if real_float else (f0.slope, f0.intercept), "metadata": meta,
              "header": f0.ds, "time_step": (tr_s / 1000.0) if tr_s and nt > 1 else None, "format": "dicom",
              "path": path}
    stored = np.dtype(np.float32) if real_float else dtype
    if header_only:
        return Volume(loader=loader, stored_shape=shape, stored_dtype=stored, **common)
    return Volume(data=loader(), **common)


@_quiet
def read(path, fmt="dicom", header_only=False, series=None, strict=False, fill_gaps=False, philips_scaling="fp",
         **options):
    """A DICOM file, or one series of a directory tree, as a Volume.

    A series with a missing slice is refused unless `fill_gaps` (empty slices inserted).
    `philips_scaling`: "fp" (floating-point values, the default) or "display" (see PHILIPS_SCALINGS).
    """
    path = os.fspath(path)
    return build_volume(select(path, series), path, header_only=header_only, strict=strict,
                        gaps="fill" if fill_gaps else "refuse", philips_scaling=philips_scaling)


@_quiet
def info_records(path, series=None) -> list:
    """`info` records, one per series (headers only; pixels are never decoded).

    Of several series, one that cannot be read (a file of it damaged, slices that cannot be stacked)
    gives a record holding only `path`, `selector`, `error` (why) and `exit_code`, and so does (with
    `file` instead of `selector`) a damaged file no series claims; when no series can be read, the
    error is raised.
    """
    from ..errors import MedconvError
    from ..summary import volume_record
    from .damage import unplaced_error

    path = os.fspath(path)
    all_series, lost = _all_series(path, with_unplaced=True)
    # a damaged file no series claims is a part of the directory that failed (not when one is chosen)
    lost = [] if series is not None else [
        {"path": path, "file": k.path, "error": unplaced_error(k, path).message, "exit_code": 3} for k in lost]
    if series is not None:
        all_series = [_choose(all_series, path, series)]
    if len(all_series) == 1 and not lost:
        s = all_series[0]
        vol = build_volume(s, path, header_only=True, gaps="warn")
        rec = volume_record(vol, path, size_bytes=s.size_bytes)
        _table_fields(rec, s, path)
        if series is not None:
            rec["selector"] = s.selector
        return [rec]
    records, failed = [], []
    for s in all_series:  # one series that cannot be read never hides the others
        try:
            vol = build_volume(s, path, header_only=True, gaps="warn")
        except MedconvError as exc:
            failed.append(exc)
            records.append({"path": path, "selector": s.selector, "error": exc.message,
                            "exit_code": exc.exit_code})
            continue
        rec = volume_record(vol, path, size_bytes=s.size_bytes)
        _table_fields(rec, s, path)
        if len(all_series) > 1 or series is not None:
            rec["selector"] = s.selector
        records.append(rec)
    if len(failed) == len(all_series):
        if len(failed) == 1:
            raise failed[0]
        raise failed[0].__class__(f"no series here can be read ({len(failed)} series; first: {failed[0].message})",
                                  path)
    return records + lost


def _table_fields(rec, s, path):
    """DICOM's time unit and the series' own folder, relative to the directory given."""
    if "time_unit" in rec:
        rec["time_unit"] = "ms"  # DICOM gives repetition and trigger times in milliseconds
    if os.path.isdir(path):
        try:
            rec["folder"] = os.path.relpath(os.path.commonpath([os.path.dirname(f) for f in s.files]), path)
        except ValueError:
            pass


@_quiet
def read_header(path, fmt="dicom", series=None):
    """The pydicom Dataset (file meta + data set, pixel data not read) of the file or series."""
    s = select(os.fspath(path), series)
    ds = s.frames[0].ds
    return ds.dataset() if hasattr(ds, "dataset") else ds


def write(volume, path, fmt, *, force=False, protect=(), **options):
    from .writer import (
        write_series,  # not `.write`: a submodule of that name would shadow this function
    )

    return write_series(volume, path, force=force, protect=protect, **options)
