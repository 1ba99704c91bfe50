"""Mosaic DICOM: one file per volume, its slices laid out as tiles of one image.

Siemens (ImageType MOSAIC): the number of tiles, the slice normal and the position of the first
slice come from the CSA image header; tiles fill a square grid of ceil(sqrt(n)) per side.
UIH "GRID" images (ImageType VFRAME): the tile size is (0065,1004) ("64*64"), each slice's
position is an item of the private sequence (0065,1051); tiles fill the grid row by row.

Either way each file becomes one 3D volume, and several files of a series a 4D one.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np

from .. import geometry, log
from ..errors import CorruptInput

#: (0065,1004) tile size "ROWS*COLUMNS", (0065,1050) number of slices, (0065,1051) per-slice items
UIH_TILE = 0x00651004
UIH_COUNT = 0x00651050
UIH_SLICES = 0x00651051


def kind(frame):
    """'siemens', 'uih' or None for a single-frame image that is not a mosaic."""
    if frame.index is not None:
        return None
    if "MOSAIC" in frame.image_type:
        return "siemens"
    if "VFRAME" in frame.image_type:
        return "uih"
    return None


def _full(ds):
    """The pydicom Dataset behind a light header (private tags are only read there)."""
    return ds.dataset() if getattr(ds, "is_light", False) else ds


def _value(ds, tag):
    """The value of element `tag` of a light header (its own view) or a pydicom Dataset, or None."""
    from .gradients import is_light

    if is_light(ds):
        return ds.value(tag)
    el = ds.get(tag)
    return None if el is None else el.value


def _uih_slices(ds):
    """(data set, the items of (0065,1051)): the light header's own when it parsed them as a
    sequence, else the full pydicom Dataset's."""
    from .gradients import is_light

    if is_light(ds):
        items = ds.value(UIH_SLICES)
        if isinstance(items, list):
            return ds, items
    ds = _full(ds)
    el = ds.get(UIH_SLICES)
    return ds, (list(el.value) if el is not None and el.VR == "SQ" else [])


class Layout:
    """Where the tiles are in a mosaic image and where the slices are in the world (LPS)."""

    def __init__(self, n_tiles, tile_rows, tile_cols, starts, origin, slice_vec, timing=None):
        self.n_tiles = n_tiles
        self.tile_rows, self.tile_cols = tile_rows, tile_cols
        self.starts = starts  # flat (row-major) pixel offset of each tile's first pixel, slice order
        self.origin = origin
        self.slice_vec = slice_vec
        self.timing = timing

    def index(self, columns):
        """Flat pixel indices (n_tiles, tile_rows, tile_cols) of every slice in the mosaic image."""
        y = np.arange(self.tile_rows, dtype=np.int64)[:, None] * columns
        x = np.arange(self.tile_cols, dtype=np.int64)[None, :]
        return np.asarray(self.starts, dtype=np.int64)[:, None, None] + y + x


def _siemens_timing(wrapper, n_tiles):
    """Slice times (s) of a mosaic from the CSA image header's MosaicRefAcqTimes (ms), as dcm2niix."""
    try:
        from nibabel.nicom import csareader

        times = csareader.get_vector(wrapper.csa_header, "MosaicRefAcqTimes", n_tiles)
        if times is None:
            return None
        return [round(float(t) / 1000.0, 6) for t in times]
    except Exception:  # no or odd CSA header: the sidecar simply has no SliceTiming
        return None


def siemens_layout(f0):
    """Tiles and geometry of a Siemens mosaic from its CSA header.

    The grid is ceil(sqrt(n)) tiles per side of floor(size / per side) pixels. An image that is not
    an exact grid (only seen in resampled or synthetic files) is cut as dcm2niix cuts it: each row of
    tiles starts 1/per-side of the image's pixels after the previous one (the two rules agree
    whenever the grid is exact).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import dicomwrappers

        try:
            w = dicomwrappers.wrapper_from_data(_full(f0.ds))
            n_tiles = int(w.n_mosaic)
            origin = np.asarray(w.image_position, dtype=float)
            normal = np.asarray(w.slice_normal, dtype=float)
            step = float(w.voxel_sizes[2])
        except Exception as exc:
            raise CorruptInput(f"Siemens mosaic without a usable CSA header ({exc})", f0.path) from None
        timing = _siemens_timing(w, n_tiles)
    rows, cols = f0.rows, f0.columns
    if n_tiles < 1 or not all(map(math.isfinite, [*origin, *normal, step])):
        raise CorruptInput(f"Siemens mosaic with {n_tiles} tiles or a non-finite position in its CSA header",
                           f0.path)
    per_side = math.ceil(math.sqrt(n_tiles))
    tr, tc = rows // per_side, cols // per_side
    if tr < 1 or tc < 1:
        raise CorruptInput(f"mosaic of {rows}x{cols} cannot hold {n_tiles} tiles", f0.path)
    row_stride = (rows * cols) // per_side  # = tr * cols for an exact grid
    if tr * per_side != rows or tc * per_side != cols:
        log.warn(f"Siemens mosaic of {rows}x{cols} is not an exact grid of {per_side}x{per_side} tiles of "
                 f"{tr}x{tc}; tiles cut as dcm2niix cuts them", f0.path)
    starts = [r * row_stride + c * tc for r, c in (divmod(k, per_side) for k in range(n_tiles))]
    return Layout(n_tiles, tr, tc, starts, origin, normal * step, timing)


def _uih_tile(ds, rows, cols, path):
    """(tile rows, tile columns) from (0065,1004) ("64*64"), else from AcquisitionMatrix."""
    sizes = []
    value = _value(ds, UIH_TILE)
    if value not in (None, b"", ""):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        m = re.fullmatch(r"\s*(\d+)\s*\*\s*(\d+)\s*", text)
        if m:
            sizes.append((int(m.group(1)), int(m.group(2))))
    matrix = ds.get("AcquisitionMatrix")
    try:
        freq_rows, freq_cols, phase_rows, phase_cols = (int(v) for v in matrix)
        sizes.append((max(freq_rows, phase_rows), max(freq_cols, phase_cols)))
    except (TypeError, ValueError):
        pass
    for a, b in sizes:
        for tr, tc in ((a, b), (b, a)):  # which way round the tag is written is not documented
            if 0 < tr <= rows and 0 < tc <= cols and rows % tr == 0 and cols % tc == 0:
                return tr, tc
    raise CorruptInput(f"UIH mosaic of {rows}x{cols} without a tile size that divides it "
                       f"((0065,1004) {sizes[0][0]}*{sizes[0][1]})" if sizes else
                       f"UIH mosaic of {rows}x{cols} without a tile size ((0065,1004) or AcquisitionMatrix)", path)


def _float3(value):
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == 3 and all(map(math.isfinite, out)) else None


def uih_layout(f0):
    """Tiles and geometry of a UIH grid image: tile size from (0065,1004), slice positions from the
    ImagePositionPatient of each (0065,1051) item, tiles in item order, row by row."""
    ds, items = _uih_slices(f0.ds)
    rows, cols = f0.rows, f0.columns
    positions = [_float3(item.get("ImagePositionPatient")) for item in items]
    if not items or any(p is None for p in positions):
        raise CorruptInput("UIH mosaic (ImageType VFRAME) without a slice position for every slice in "
                           "(0065,1051)", f0.path)
    tr, tc = _uih_tile(ds, rows, cols, f0.path)
    across = cols // tc
    n = len(items)
    if n > across * (rows // tr):
        raise CorruptInput(f"UIH mosaic of {rows}x{cols} cannot hold {n} tiles of {tr}x{tc}", f0.path)
    declared = _value(ds, UIH_COUNT)
    try:
        if declared is not None and int(float(declared)) != n:
            log.warn(f"UIH mosaic declares {int(float(declared))} slices in (0065,1050) but lists {n} "
                     "positions; the positions are used", f0.path)
    except (TypeError, ValueError):
        pass
    if f0.iop is None:
        raise CorruptInput("UIH mosaic without ImageOrientationPatient", f0.path)
    row, col = np.array(f0.iop[:3]), np.array(f0.iop[3:])
    normal = np.cross(row, col)
    pos = np.array(positions, dtype=float)
    order = np.argsort(pos @ normal, kind="stable")  # tiles may be stored in acquisition order
    pos = pos[order]
    starts = [(k // across) * tr * cols + (k % across) * tc for k in order.tolist()]
    if n > 1:
        slice_vec = (pos[-1] - pos[0]) / (n - 1)
        steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
        typical = float(np.linalg.norm(slice_vec))
        if typical == 0 or np.any(np.abs(steps - typical) > max(0.01 * typical, 0.01)):
            log.warn(f"UIH mosaic slice positions are unevenly spaced (steps {float(steps.min()):.4g} to "
                     f"{float(steps.max()):.4g} mm); a regular grid is assumed", f0.path)
        if typical == 0:
            slice_vec = normal * (f0.slice_thickness or 1.0)
    else:
        slice_vec = normal * (f0.slice_thickness or 1.0)
    timing = _uih_timing(items, order)
    return Layout(n, tr, tc, starts, pos[0], slice_vec, timing)


def _uih_timing(items, order):
    """Slice times (s, spatial order) from each item's AcquisitionTime, relative to the first."""
    from .sidecar import seconds_of_day

    times = []
    for k in order.tolist():
        tm = items[k].get("AcquisitionTime")
        s = seconds_of_day(tm) if tm else None
        if s is None:
            return None
        times.append(s)
    t0 = min(times)
    return [round(t - t0, 6) for t in times] if len(set(times)) > 1 else None


def layout(f0):
    return siemens_layout(f0) if kind(f0) == "siemens" else uih_layout(f0)


def affine(f0, lay):
    """RAS affine of the demosaicked volume."""
    row, col = np.array(f0.iop[:3]), np.array(f0.iop[3:])
    ps = f0.pixel_spacing or [1.0, 1.0]
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = row * ps[1], col * ps[0], lay.slice_vec, lay.origin
    return geometry.lps_to_ras(aff)


def check_files(files, lay):
    """Every file of a mosaic series must share the first one's image size (already grouped so)."""
    f0 = files[0]
    for f in files[1:]:
        if (f.rows, f.columns) != (f0.rows, f0.columns):
            raise CorruptInput(f"mosaic files differ in size ({f0.rows}x{f0.columns} and {f.rows}x{f.columns})",
                               f.path)
    top = int(lay.index(f0.columns).max()) if lay.n_tiles else 0
    if top >= f0.rows * f0.columns:
        raise CorruptInput(f"mosaic tiles run past the end of the {f0.rows}x{f0.columns} image", f0.path)


def demosaic(raw, lay, columns):
    """raw [column, row, file] mosaic images -> [column, row, slice, file]."""
    idx = lay.index(columns)  # (n, tr, tc) into the row-major image
    nfiles = raw.shape[2]
    out = np.empty((lay.tile_cols, lay.tile_rows, lay.n_tiles, nfiles), dtype=raw.dtype)
    for t in range(nfiles):
        flat = np.ascontiguousarray(raw[:, :, t].T).reshape(-1)  # row-major image
        out[:, :, :, t] = flat[idx].transpose(2, 1, 0)
    return out
