"""Compare two images (or two folders of images) through the Volume model.

`compare(a, b)` reads two inputs of any formats and returns a plain dict saying what differs:
world geometry (shape, the voxel-to-world affine within `atol_mm`, the time step), the stored
dtype, the value kind, the real values (slope/intercept applied; exact unless `rtol`/`atol`;
NaN equals NaN) and, with `header=True`, the native header fields both files have.
`compare_trees(dir_a, dir_b)` pairs the files of two folders by relative path (DICOM series by
SeriesInstanceUID) and compares each pair; files present on one side only are differences too.

Values are visited slab by slab (a few planes at a time, in file order), so memory holds one slab
of each input: a .nii.gz is inflated as it is compared and an uncompressed file is memory-mapped.
"""
from __future__ import annotations

import os

import numpy as np

from . import geometry
from .errors import InputError, UsageError

#: default tolerance (mm) on the world position of the corner voxels
ATOL_MM = 1e-3
#: voxels per slab (about 2 M: two float64 temporaries of 16 MiB at most)
SLAB_VOXELS = 1 << 21
#: relative tolerance on the time step of 4D images
_TIME_RTOL = 1e-6


def _read(spec, series=None):
    """A Volume from a path, or from a DICOM series spec made by `pair_trees`."""
    from . import read

    if isinstance(spec, (tuple, list)):
        return _read_series(*spec)
    if series is not None:
        from .formats import detect

        if detect(spec) == "dicom":
            return read(spec, header_only=True, series=series)
    return read(spec, header_only=True)


def _read_series(kind, label, uid, index, files):
    """One DICOM series of a folder, from its files only (the tree is not scanned again)."""
    from .dicom import build_volume
    from .dicom.assemble import group
    from .dicom.scan import read_file
    from .errors import guard

    with guard(label, "DICOM series"):
        frames = [f for path in files for f in read_file(path)]
        found = [s for s in group(frames) if s.series_uid == uid]
        if index >= len(found):
            raise InputError(f"series {uid} is no longer complete here", label)
        return build_volume(found[index], label, header_only=True)


def _label(spec) -> str:
    return spec[1] if isinstance(spec, (tuple, list)) else str(spec)


# -- one pair --------------------------------------------------------------------------------------

def compare(a, b, *, rtol: float = 0.0, atol: float = 0.0, atol_mm: float = ATOL_MM, header: bool = False,
            dtype: bool = True, same_layout: bool = False, series=None, slab_voxels: int = SLAB_VOXELS) -> dict:
    """What differs between two inputs (paths, DICOM series specs or Volumes), as a plain dict.

    Keys: `a`, `b` (the inputs), `same` (bool), `differences` (one dict per differing field:
    `field`, `a`, `b` and details), `values` (the voxel comparison, or None when the grids differ)
    and, with `header`, `header_fields` (how many native fields both have).

    When B holds the same world grid as A in another voxel order (axes swapped or flipped), B is
    reordered to A's and compared in the world; `layout` then gives both orientation codes, and
    with `same_layout` the different order is a difference too.
    """
    for name, value in (("rtol", rtol), ("atol", atol), ("atol-mm", atol_mm)):
        if not (value >= 0 and np.isfinite(value)):
            raise UsageError(f"--{name} must be a finite number >= 0, not {value}")
    va = a if hasattr(a, "affine") else _read(a, series)
    vb = b if hasattr(b, "affine") else _read(b, series)
    la = _label(a) if not hasattr(a, "affine") else (a.path or "A")
    lb = _label(b) if not hasattr(b, "affine") else (b.path or "B")
    diffs = []
    layout = None
    if va.orientation != vb.orientation:
        # the same world grid stored in another voxel order (e.g. rows flipped by a converter):
        # compared in the world, and a difference only when asked for
        turned = _same_grid_reordered(va, vb, atol_mm)
        if turned is not None:
            layout = {"a": va.orientation, "b": vb.orientation}
            if same_layout:
                diffs.append({"field": "layout", **layout})
            vb = turned
    same_grid = _geometry(va, vb, atol_mm, diffs)
    if va.value_kind != vb.value_kind:
        diffs.append({"field": "value_kind", "a": va.value_kind, "b": vb.value_kind})
    if dtype and _dtype_name(va) != _dtype_name(vb):
        diffs.append({"field": "dtype", "a": _dtype_name(va), "b": _dtype_name(vb)})
    values = None
    if same_grid and va.channels == vb.channels and _comparable(va, vb):
        values = compare_values(va, vb, rtol=rtol, atol=atol, slab_voxels=slab_voxels)
        if values["differing"]:
            diffs.append({"field": "values", "a": None, "b": None, "differing": values["differing"]})
    result = {"a": la, "b": lb, "same": not diffs, "differences": diffs, "values": values}
    if layout is not None:
        result["layout"] = layout
    if header:
        fields, hdiffs = compare_headers(va, vb, _header_source(a, va), _header_source(b, vb), series)
        result["header_fields"] = fields
        diffs.extend(hdiffs)
        result["same"] = not diffs
    return result


def _same_grid_reordered(va, vb, atol_mm):
    """B reordered to A's voxel order when that makes both the same world grid, else None."""
    try:
        perm, _, affine = geometry.reorient_plan(vb.affine, va.orientation, tuple(vb.spatial_shape))
    except (UsageError, ValueError, IndexError, StopIteration):
        return None
    if va.ndim < 3 or vb.ndim < 3 or "?" in va.orientation:
        return None
    shape = tuple(vb.spatial_shape[p] for p in perm)
    if shape != tuple(va.spatial_shape) or not geometry.world_distance(va.affine, affine, shape) <= atol_mm:
        return None
    return vb.reoriented(va.orientation)


def _header_source(spec, volume):
    """The file whose native header describes an input: the first file of a DICOM series spec."""
    if isinstance(spec, (tuple, list)):
        return spec[4][0]
    return volume.path if hasattr(spec, "affine") else str(spec)


def _dtype_name(volume) -> str:
    dt = volume.dtype
    return "rgb" if dt.names is not None else dt.name


def _comparable(va, vb) -> bool:
    """Complex values compare only with complex values (a magnitude image is not the same image)."""
    return (va.dtype.kind == "c") == (vb.dtype.kind == "c")


def _rounded(value):
    if isinstance(value, np.ndarray):
        return [_rounded(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, 6) + 0.0
    return value


def _geometry(va, vb, atol_mm, diffs) -> bool:
    """Append the differing geometry fields; True when the voxel grids match (values comparable)."""
    ga, gb = tuple(va.grid_shape), tuple(vb.grid_shape)
    if ga != gb:
        diffs.append({"field": "shape", "a": list(ga), "b": list(gb)})
    spatial = tuple(va.spatial_shape)
    if tuple(vb.spatial_shape) == spatial:
        dist = geometry.world_distance(va.affine, vb.affine, spatial)
    else:  # different grids: how far apart the first voxels are, and the axes, say enough
        dist = float(np.abs(np.asarray(va.affine) - np.asarray(vb.affine)).max())
    if not dist <= atol_mm:  # NaN in an affine is a difference too
        diffs.append({"field": "affine", "a": _rounded(va.affine), "b": _rounded(vb.affine),
                      "max_mm": _rounded(float(dist)), "orientation": [va.orientation, vb.orientation]})
    if va.orientation_known != vb.orientation_known:
        diffs.append({"field": "orientation_known", "a": va.orientation_known, "b": vb.orientation_known})
    if va.ndim > 3 and vb.ndim > 3:
        ta, tb = va.time_step, vb.time_step
        if (ta is None) != (tb is None) or (ta is not None and abs(ta - tb) > _TIME_RTOL * max(abs(ta), abs(tb))):
            diffs.append({"field": "time_step", "a": ta, "b": tb})
    return ga == gb


# -- values ----------------------------------------------------------------------------------------

def iter_slabs(volume, planes: int, t_only: int | None = None):
    """(t, k0, k1, stored slab [i, j, k0:k1(, c)]) in file order: inflated while read for a .nii.gz,
    sliced from the (memory-mapped or decoded) array otherwise. With `t_only`, the slabs of that
    volume of a 4D image only (a .nii.gz stops inflating after it)."""
    from .formats import stream_slabs
    from .stats import grid4, release_pages

    streamed = stream_slabs(volume, planes)
    if streamed is not None:
        for item in streamed:
            if t_only is None or item[0] == t_only:
                yield item
            elif item[0] > t_only:
                return
        return
    arr = grid4(volume)
    nz, nt = arr.shape[2], arr.shape[3]
    for t in range(nt) if t_only is None else [t_only]:
        for k0 in range(0, nz, planes):
            k1 = min(nz, k0 + planes)
            slab = arr[:, :, k0:k1, t]
            yield t, k0, k1, np.asarray(slab)
            release_pages(slab)


def _real(volume, slab: np.ndarray) -> np.ndarray:
    """Real values of a slab, in float64 when scaled (stored * slope + intercept)."""
    if volume.scaling is None:
        return slab
    slope, inter = volume.scaling
    if slab.dtype.kind == "c":
        return slab * slope + inter
    return slab.astype(np.float64) * slope + inter


def _as_plain(slab: np.ndarray) -> np.ndarray:
    """A structured RGB slab as a plain uint8 array with the channels last."""
    if slab.dtype.names is not None:
        return np.stack([slab[n] for n in slab.dtype.names], axis=-1)
    return slab


def _differ(ra: np.ndarray, rb: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Voxels whose real values differ: exact (NaN equal to NaN) or beyond |a-b| <= atol + rtol*|b|."""
    if rtol == 0 and atol == 0:
        out = ra != rb
        if ra.dtype.kind in "fc" or rb.dtype.kind in "fc":
            out &= ~(_isnan(ra) & _isnan(rb))
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        a = ra.astype(np.complex128 if ra.dtype.kind == "c" or rb.dtype.kind == "c" else np.float64)
        b = rb.astype(a.dtype)
        close = np.abs(a - b) <= atol + rtol * np.abs(b)
        close |= a == b  # infinities of the same sign
        close |= _isnan(a) & _isnan(b)
    return ~close


def _isnan(x: np.ndarray) -> np.ndarray:
    return np.isnan(x) if x.dtype.kind in "fc" else np.zeros(x.shape, bool)


def _difference(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """|a - b| of a few voxels, in float64 (inf where only one side is NaN or infinite)."""
    kind = np.complex128 if ra.dtype.kind == "c" or rb.dtype.kind == "c" else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(ra.astype(kind) - rb.astype(kind)).astype(np.float64)
    return np.where(np.isnan(d), np.inf, d)


def compare_values(va, vb, *, rtol: float = 0.0, atol: float = 0.0, slab_voxels: int = SLAB_VOXELS) -> dict:
    """Voxel-by-voxel comparison of the real values of two volumes on the same grid.

    Returns `compared` (voxels), `differing` (voxels where any channel differs), `share`,
    `max_difference` with `max_at` (the first voxel where it occurs: index, world mm, both values)
    and `first_at` (the first differing voxel in file order: i fastest, then j, k, volume).
    """
    shape = tuple(int(n) for n in va.grid_shape) + (1,) * max(0, 3 - len(va.grid_shape))
    nx, ny = shape[0], shape[1]
    planes = max(1, int(slab_voxels) // max(1, nx * ny * max(1, va.channels)))
    exact_stored = (rtol == 0 and atol == 0 and va.scaling == vb.scaling and va.dtype == vb.dtype
                    and va.dtype.names is None)
    compared = differing = 0
    first = best = None
    best_diff = -1.0
    for (t, k0, k1, sa), (_, _, _, sb) in zip(iter_slabs(va, planes), iter_slabs(vb, planes)):
        sa, sb = _as_plain(sa), _as_plain(sb)
        if exact_stored:  # same dtype and scaling: equal stored values are equal real values
            mask = _differ(sa, sb, 0.0, 0.0)
            ra, rb = sa, sb
        else:
            ra, rb = _real(va, sa), _real(vb, sb)
            mask = _differ(ra, rb, rtol, atol)
        if mask.ndim == 4:  # colour: a voxel differs when any channel does
            mask = mask.any(axis=-1)
        n_vox = mask.size
        compared += n_vox
        flat = mask.ravel(order="F")
        hits = np.flatnonzero(flat)
        if not hits.size:
            continue
        differing += int(hits.size)
        idx = np.unravel_index(hits, mask.shape, order="F")
        if exact_stored and va.scaling is not None:
            pa, pb = _real(va, sa[idx]), _real(vb, sb[idx])
        else:
            pa, pb = ra[idx], rb[idx]
        d = _difference(pa, pb)
        if d.ndim == 2:
            d = d.max(axis=-1)
        if first is None:
            first = _where(va, idx, 0, k0, t, shape, pa, pb, d)
        j = int(np.argmax(d))
        if float(d[j]) > best_diff:
            best_diff = float(d[j])
            best = _where(va, idx, j, k0, t, shape, pa, pb, d)
    return {
        "compared": compared, "differing": differing,
        "share": (differing / compared) if compared else 0.0,
        "max_difference": best_diff if best is not None else 0.0,
        "max_at": best, "first_at": first,
    }


def _where(volume, idx, n, k0, t, shape, pa, pb, d) -> dict:
    """Index, world position (mm) and both real values of the n-th differing voxel of a slab."""
    i, j, k = int(idx[0][n]), int(idx[1][n]), int(idx[2][n]) + k0
    index = [i, j, k][: max(2, min(3, volume.ndim))]
    if volume.ndim > 3:
        index.append(int(t))
    world = (np.asarray(volume.affine, float) @ np.array([i, j, k, 1.0]))[:3]
    return {"index": index, "world": [round(float(v), 4) + 0.0 for v in world],
            "a": _value(pa[n]), "b": _value(pb[n]), "difference": float(d[n])}


def _value(v):
    v = np.asarray(v)
    if v.ndim:
        return [_value(x) for x in v]
    if v.dtype.kind == "c":
        return [float(v.real), float(v.imag)]
    return v.item() if v.dtype.kind in "iub" else float(v)


# -- native headers --------------------------------------------------------------------------------

#: header fields that say where data sits in the file, not what the image is
_LAYOUT_FIELDS = {"vox_offset", "sizeof_hdr", "ElementDataFile", "data file", "datafile", "HeaderSize",
                  "magic", "extents", "regular", "glmax", "glmin"}
#: DICOM elements compared with --header: everything but pixel data and the file meta group
_DICOM_SKIP_GROUPS = (0x0002, 0x7FE0)


def header_fields(volume, label, series=None) -> dict:
    """The native header of the file `label` (a volume's source) as flat field -> plain value
    (DICOM elements by keyword; sequences and pixel data left out)."""
    from . import header as header_mod
    from .values import jsonable

    path = label
    if not path or not os.path.exists(path):
        return {}
    hdr = header_mod.load(path, series=series if volume.format == "dicom" and os.path.isdir(path) else None)
    if hdr.is_dicom:
        out = {}
        for elem in hdr.data:
            if elem.tag.group in _DICOM_SKIP_GROUPS or elem.VR == "SQ":
                continue
            key = elem.keyword or str(elem.tag)
            try:
                out[key] = jsonable(_dicom_plain(elem.value))
            except Exception:
                continue
        return out
    return _flatten(jsonable(hdr.data))


def _dicom_plain(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if len(value) <= 64 else f"<{len(value)} bytes>"
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return [_dicom_plain(v) for v in value]
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _flatten(data, prefix="") -> dict:
    out = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flatten(value, name))
            else:
                out[name] = value
    return out


def compare_headers(va, vb, la, lb, series=None) -> tuple:
    """(number of fields both headers have, differences among them)."""
    ha, hb = header_fields(va, la, series), header_fields(vb, lb, series)
    common = [k for k in ha if k in hb and k not in _LAYOUT_FIELDS]
    diffs = [{"field": f"header.{k}", "a": ha[k], "b": hb[k]} for k in common if not _equal(ha[k], hb[k])]
    return len(common), diffs


def _equal(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (x != x and y != y)
    return x == y


# -- folders ---------------------------------------------------------------------------------------

def _is_dicom(path: str) -> bool:
    from .dicom.scan import looks_like_dicom

    try:
        return looks_like_dicom(path)
    except OSError:
        return False


def _companions(files: list) -> set:
    """Data files named by a header in the same folder (.img of a .hdr, .raw of a .mhd, ...)."""
    from .formats import header_files

    return header_files(files)


def _tree(root: str):
    """(images by relative path, DICOM series by (uid, n) -> (label, files)) under a folder."""
    from .dicom.scan import walk

    files = walk(root)
    skip = _companions(files)
    images, dicom_files = {}, []
    for f in files:
        if os.path.abspath(f) in skip:
            continue
        if _is_dicom(f):
            dicom_files.append(f)
        else:
            images[os.path.relpath(f, root)] = f
    series = {}
    if dicom_files:
        from .dicom import series_of_files

        count: dict = {}
        for s in series_of_files(dicom_files):
            n = count.get(s.series_uid, 0)
            count[s.series_uid] = n + 1
            paths = list(dict.fromkeys(fr.path for fr in s.frames))
            folder = os.path.relpath(os.path.dirname(paths[0]), root)
            number = f"series {s.series_number}" if s.series_number is not None else "series"
            shown = os.path.join(root, folder) if folder != "." else root
            series[(s.series_uid, n)] = (f"{shown} ({number}, {s.series_uid}"
                                         + (f" part {n + 1}" if n else "") + ")", paths)
    return images, series


def pair_trees(dir_a: str, dir_b: str) -> tuple:
    """(pairs [(name, spec_a, spec_b)], only in A [names], only in B [names]) of two folders.

    Files pair by relative path; DICOM series by SeriesInstanceUID (wherever their files sit), and a
    series left without a partner pairs with the one series left in the same relative folder.
    A spec is a path, or for a DICOM series (kind, label, uid, n, files) that `compare` reads.
    """
    for d in (dir_a, dir_b):
        if not os.path.isdir(d):
            raise InputError("not a directory (compare a folder with a folder)", d)
    ia, sa = _tree(dir_a)
    ib, sb = _tree(dir_b)
    pairs, only_a, only_b = [], [], []
    for rel in sorted(set(ia) | set(ib)):
        if rel in ia and rel in ib:
            pairs.append((rel, ia[rel], ib[rel]))
        elif rel in ia:
            only_a.append(ia[rel])
        else:
            only_b.append(ib[rel])
    matched = {key: key for key in sa if key in sb}
    # series written anew get new UIDs (a converter run twice): one unmatched series on each side
    # in the same relative folder pairs by that folder
    by_folder_a, by_folder_b = {}, {}
    for side, series, by in ((dir_a, sa, by_folder_a), (dir_b, sb, by_folder_b)):
        for key, (_, files) in series.items():
            if key not in matched and key not in matched.values():
                by.setdefault(os.path.relpath(os.path.dirname(files[0]), side), []).append(key)
    for folder, keys in by_folder_a.items():
        if len(keys) == 1 and len(by_folder_b.get(folder, ())) == 1:
            matched[keys[0]] = by_folder_b[folder][0]
    for key_a, key_b in sorted(matched.items(), key=lambda kv: sa[kv[0]][0]):
        spec_a = ("dicom", sa[key_a][0], key_a[0], key_a[1], sa[key_a][1])
        spec_b = ("dicom", sb[key_b][0], key_b[0], key_b[1], sb[key_b][1])
        pairs.append((sa[key_a][0], spec_a, spec_b))
    paired_b = set(matched.values())
    only_a += [sa[k][0] for k in sorted(sa, key=lambda k: sa[k][0]) if k not in matched]
    only_b += [sb[k][0] for k in sorted(sb, key=lambda k: sb[k][0]) if k not in paired_b]
    return pairs, only_a, only_b


def compare_pair(pair, **options) -> dict:
    """`compare` of one (name, spec_a, spec_b) of `pair_trees` (picklable for the process pool)."""
    name, spec_a, spec_b = pair
    if not isinstance(spec_a, (tuple, list)) and not _is_image(spec_a):
        return compare_bytes(spec_a, spec_b)
    return compare(spec_a, spec_b, **options)


def _is_image(path: str) -> bool:
    from .errors import UnsupportedFormat
    from .formats import detect

    try:
        detect(path)
    except UnsupportedFormat:
        return False
    except InputError:
        return True  # an image medconv recognises but cannot read: compare says why
    return True


def compare_bytes(a: str, b: str) -> dict:
    """Files medconv does not read as images (sidecars, text): compared byte for byte."""
    import filecmp

    try:
        same = filecmp.cmp(a, b, shallow=False)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", exc.filename or a) from None
    diffs = [] if same else [{"field": "bytes", "a": os.path.getsize(a), "b": os.path.getsize(b)}]
    return {"a": a, "b": b, "same": same, "differences": diffs, "values": None}


def compare_trees(dir_a: str, dir_b: str, *, jobs=None, keep_going: bool = False, on_error=None,
                  progress: str | None = None, **options) -> dict:
    """Compare two folders: {`a`, `b`, `same`, `pairs` (compare results), `only_a`, `only_b`,
    `failed` [(name, error)]}."""
    import functools

    from . import batch

    pairs, only_a, only_b = pair_trees(dir_a, dir_b)
    one = functools.partial(compare_pair, **options)
    results, failures = batch.run(pairs, one, keep_going=keep_going, on_error=on_error, jobs=jobs,
                                  progress=progress)
    same = not only_a and not only_b and not failures and all(r["same"] for r in results)
    return {"a": dir_a, "b": dir_b, "same": same, "pairs": results, "only_a": only_a, "only_b": only_b,
            "failed": failures, "total": len(pairs)}
