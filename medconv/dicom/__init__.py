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


@_quiet
def list_series(path) -> list:
    """One dict per series found under `path` (series_uid, series_number, ..., n_files, selector)."""
    from .assemble import group
    from .scan import scan

    return [s.as_dict() for s in group(scan(os.fspath(path)))]


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
    from .assemble import group
    from .scan import scan

    path = os.fspath(path)
    return _choose(group(scan(path)), path, series)


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


def build_volume(s, path, header_only=False, strict=False, gaps="refuse"):
    """Assemble one Series into a Volume (pixels loaded lazily with header_only)."""
    from ..volume import Volume
    from . import gradients, pixels, sidecar
    from .assemble import layout

    f0 = s.frames[0]
    pixels.check_decodable(f0)
    if "MOSAIC" in f0.image_type and f0.index is None:
        return _mosaic_volume(s, path, header_only)
    by_t, nz, nt, affine, step_t = layout(s, strict=strict, path=path, gaps=gaps)
    diffusion = gradients.from_frames(by_t=by_t) if s.modality == "MR" else None
    by_t, diffusion = gradients.drop_derived(by_t, diffusion)
    nt = len(by_t)
    f0 = next(f for f in by_t[0] if f is not None)
    frames = [f for row in by_t for f in row if f is not None]
    dtype = pixels.stored_dtype(f0)
    colour = pixels.is_colour(f0)
    scales = {(f.slope, f.intercept) for f in frames}
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
    pad = _first_value(ds, "PixelPaddingValue")
    if pad is not None:
        meta["pixel_padding_value"] = pad
    if diffusion:
        meta["diffusion"] = diffusion
    meta["sidecar"] = sidecar.build(ds, by_t=by_t, affine=affine)

    def loader():
        return _guarded_load(path, pixels.load, by_t, nz, nt, dtype, real_float=real_float)

    known = all(f.iop is not None and f.ipp is not None for f in frames)
    common = {"affine": affine, "scaling": scaling, "value_kind": "rgb" if colour else "scalar", "time_step": step_t,
              "metadata": meta, "header": ds, "format": "dicom", "path": path, "orientation_known": known}
    stored = np.dtype(np.float32) if real_float else dtype
    if header_only:
        return Volume(loader=loader, stored_shape=shape, stored_dtype=stored, **common)
    return Volume(data=loader(), **common)


def _mosaic_slice_timing(wrapper, n_tiles):
    """Slice times (s) of a mosaic from the CSA image header's MosaicRefAcqTimes (ms), as dcm2niix."""
    try:
        from nibabel.nicom import csareader

        times = csareader.get_vector(wrapper.csa_header, "MosaicRefAcqTimes", n_tiles)
        if times is None:
            return None
        return [round(float(t) / 1000.0, 6) for t in times]
    except Exception:  # no or odd CSA header: the sidecar simply has no SliceTiming
        return None


def _mosaic_volume(s, path, header_only):
    """Siemens mosaic files (one volume per file, tiles in one image) -> 3D/4D volume."""
    import math

    from .. import geometry
    from ..errors import CorruptInput
    from ..volume import Volume
    from . import gradients, pixels, sidecar
    from .assemble import _order_key

    files = sorted(s.frames, key=_order_key)
    f0 = files[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import dicomwrappers

        try:
            w = dicomwrappers.wrapper_from_data(f0.ds)
            n_tiles = int(w.n_mosaic)
            origin = np.asarray(w.image_position, dtype=float)
            normal = np.asarray(w.slice_normal, dtype=float)
            step = float(w.voxel_sizes[2])
        except Exception as exc:
            raise CorruptInput(f"Siemens mosaic without a usable CSA header ({exc})", f0.path) from None
        timing = _mosaic_slice_timing(w, n_tiles)
    per_side = math.ceil(math.sqrt(n_tiles))
    tr, tc = f0.rows // per_side, f0.columns // per_side
    if tr < 1 or tc < 1:
        raise CorruptInput(f"mosaic of {f0.rows}x{f0.columns} cannot hold {n_tiles} tiles", f0.path)
    row, col = np.array(f0.iop[:3]), np.array(f0.iop[3:])
    ps = f0.pixel_spacing or [1.0, 1.0]
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = row * ps[1], col * ps[0], normal * step, origin
    affine = geometry.lps_to_ras(aff)
    nt = len(files)
    dtype = pixels.stored_dtype(f0)
    shape = (tc, tr, n_tiles) + ((nt,) if nt > 1 else ())

    def loader():
        raw = _guarded_load(path, pixels.load, [files], len(files), 1, dtype)  # [col, row, file]
        out = np.empty((tc, tr, n_tiles, nt), dtype=raw.dtype)
        for k in range(n_tiles):
            r, c = divmod(k, per_side)
            out[:, :, k, :] = raw[c * tc:(c + 1) * tc, r * tr:(r + 1) * tr, :]
        return out if nt > 1 else out[..., 0]

    tr_s = _first_value(f0.ds, "RepetitionTime")
    meta = {
        "modality": s.modality, "series_uid": s.series_uid or None, "series_number": s.series_number,
        "series_description": s.series_description, "protocol": s.protocol, "n_files": len(s.files),
        "transfer_syntax": f0.transfer_syntax, "photometric": f0.photometric,
        "window_center": _first_value(f0.ds, "WindowCenter"), "window_width": _first_value(f0.ds, "WindowWidth"),
        "size_bytes": s.size_bytes,
        "sidecar": sidecar.build(datasets=[f.ds for f in files], grid=(tc, tr), slice_times=timing),
    }
    diffusion = gradients.from_frames(datasets=[f.ds for f in files])
    if diffusion:
        meta["diffusion"] = diffusion
    common = {"affine": affine, "scaling": (f0.slope, f0.intercept), "metadata": meta, "header": f0.ds,
              "time_step": (tr_s / 1000.0) if tr_s and nt > 1 else None, "format": "dicom", "path": path}
    if header_only:
        return Volume(loader=loader, stored_shape=shape, stored_dtype=dtype, **common)
    return Volume(data=loader(), **common)


@_quiet
def read(path, fmt="dicom", header_only=False, series=None, strict=False, fill_gaps=False, **options):
    """A DICOM file, or one series of a directory tree, as a Volume.

    A series with a missing slice is refused unless `fill_gaps` (empty slices inserted).
    """
    path = os.fspath(path)
    return build_volume(select(path, series), path, header_only=header_only, strict=strict,
                        gaps="fill" if fill_gaps else "refuse")


@_quiet
def info_records(path, series=None) -> list:
    """`info` records, one per series (headers only; pixels are never decoded)."""
    from ..inspect import volume_record
    from .assemble import group
    from .scan import scan

    path = os.fspath(path)
    all_series = group(scan(path))
    if series is not None:
        all_series = [_choose(all_series, path, series)]
    records = []
    for s in all_series:
        vol = build_volume(s, path, header_only=True, gaps="warn")
        rec = volume_record(vol, path, size_bytes=s.size_bytes)
        if len(all_series) > 1 or series is not None:
            rec["selector"] = s.selector
        records.append(rec)
    return records


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
