"""FreeSurfer MGH / MGZ (.mgz is the same bytes gzipped), read and written by hand.

Layout: a 284-byte big-endian header (version, width, height, depth, nframes,
type, dof, goodRASflag, spacing, Mdc, c_ras), the voxel data in Fortran order
(i fastest, then j, k, frame), then an optional tail (TR ms, flip angle, TE, TI,
FOV) and optional tags. The affine follows FreeSurfer (and nibabel):
centre voxel = dims / 2 maps to c_ras. goodRASflag 0 means the orientation is
unknown; FreeSurfer's default coronal orientation is then assumed.

Voxel types: uchar, int32, float32, short (int16) and ushort (read only).
Written values are never changed: other integer types are widened losslessly
when they fit, anything else is refused.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .. import fileio
from ..errors import CorruptInput, OutputError
from ..volume import Volume
from . import _scrub

HEADER_SIZE = 284
_HEAD = ">7ih3f9f3f"  # 90 bytes of meaning, zero padded to 284
TYPES = {0: ("uchar", ">u1"), 1: ("int", ">i4"), 3: ("float", ">f4"), 4: ("short", ">i2"), 10: ("ushort", ">u2")}
_WRITE_CODES = {np.dtype("uint8"): 0, np.dtype("int32"): 1, np.dtype("float32"): 3, np.dtype("int16"): 4}
TAG_NAMES = {1: "old_colortable", 2: "old_usereal_ras", 3: "cmdline", 4: "usereal_ras", 5: "colortable",
             10: "gcamorph_geom", 11: "gcamorph_type", 12: "gcamorph_labels", 20: "old_surf_geom",
             21: "surf_geom", 30: "old_mgh_xform", 31: "mgh_xform", 32: "group_avg_surface_area",
             33: "auto_align", 40: "scalar_double", 41: "pedir", 42: "mri_frame", 43: "fieldstrength",
             44: "orig_ras2vox"}
_DEFAULT_MDC = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # rows: x, y, z direction (FreeSurfer coronal)


def _is_compressed(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == fileio.GZIP_MAGIC


def _parse(raw: bytes, path: str) -> dict:
    if len(raw) < HEADER_SIZE:
        raise CorruptInput(f"file is too short for an MGH header ({len(raw)} of {HEADER_SIZE} bytes)", path)
    vals = struct.unpack_from(_HEAD, raw, 0)
    hdr = {"version": vals[0], "width": vals[1], "height": vals[2], "depth": vals[3], "nframes": vals[4],
           "type": vals[5], "dof": vals[6], "goodRASflag": vals[7], "spacing": list(vals[8:11]),
           "Mdc": [list(vals[11:14]), list(vals[14:17]), list(vals[17:20])], "c_ras": list(vals[20:23])}
    if hdr["version"] != 1:
        raise CorruptInput(f"not an MGH file (version {hdr['version']}, expected 1)", path)
    dims = (hdr["width"], hdr["height"], hdr["depth"], hdr["nframes"])
    if any(n <= 0 for n in dims):
        raise CorruptInput(f"invalid dimensions {list(dims)}", path)
    if hdr["type"] not in TYPES:
        raise CorruptInput(f"unknown MGH voxel type {hdr['type']}", path)
    return hdr


def _layout(hdr):
    dims = (hdr["width"], hdr["height"], hdr["depth"], hdr["nframes"])
    dtype = np.dtype(TYPES[hdr["type"]][1])
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    return dims, dtype, nbytes


def affine_of(hdr) -> tuple:
    """(affine, orientation known) from the header, as FreeSurfer computes it."""
    dims = np.array([hdr["width"], hdr["height"], hdr["depth"]], float)
    if hdr["goodRASflag"] > 0:
        mdc = np.array(hdr["Mdc"], dtype=np.float32).astype(float)
        delta = np.array(hdr["spacing"], dtype=np.float32).astype(float)
        centre = np.array(hdr["c_ras"], dtype=np.float32).astype(float)
        known = True
    else:
        mdc, delta, centre, known = _DEFAULT_MDC, np.ones(3), np.zeros(3), False
    if not (np.isfinite(mdc).all() and np.isfinite(delta).all() and np.isfinite(centre).all()):
        raise CorruptInput("the header's orientation contains NaN or infinite values")
    rot = mdc.T * delta
    aff = np.eye(4)
    aff[:3, :3] = rot
    aff[:3, 3] = centre - rot.dot(dims) / 2.0
    return aff, known


#: bytes a compressed MGH file may hold after its voxels (TR, flip angle, TE, TI, FOV, tags)
TAIL_SLACK = 16 << 20


def _read_head(path: str) -> tuple:
    raw = fileio.read_bytes(path, HEADER_SIZE)
    return _parse(raw, path), _is_compressed(path)


def read(path: str, fmt: str | None = None, header_only: bool = False, **options) -> Volume:
    hdr, compressed = _read_head(path)
    dims, dtype, nbytes = _layout(hdr)
    if not compressed:
        fileio.check_size(path, HEADER_SIZE + nbytes, fileio.file_size(path), offset=HEADER_SIZE)
    else:
        # gzip rarely beats ~1000:1; refuse absurd claims before decompressing anything
        fileio.check_size(path, HEADER_SIZE + nbytes, fileio.file_size(path) * 1032 + 1024, offset=HEADER_SIZE,
                      compressed=fileio.file_size(path))
    try:
        affine, known = affine_of(hdr)
    except CorruptInput as exc:
        raise CorruptInput(exc.message, path) from None
    shape = dims if dims[3] > 1 else dims[:3]
    cache = {}
    # a gzip tail (TR) costs a full decompression: pay it for 4D files, where TR is the time step
    if compressed and (not header_only or dims[3] > 1):
        cache["blob"] = fileio.read_bytes(path, most=HEADER_SIZE + nbytes + TAIL_SLACK)
    if not compressed or "blob" in cache:
        hdr.update(_tail(path, compressed, nbytes, cache.get("blob")))
    tr = hdr.get("tr")
    time_step = tr / 1000.0 if (len(shape) > 3 and tr) else None
    metadata = {k: hdr[k] for k in ("tr", "te", "ti", "flip_angle") if hdr.get(k)}
    if time_step is not None:
        metadata["time_unit"] = "ms"  # MGH gives TR in milliseconds

    def loader():
        blob = cache.pop("blob", None) or fileio.read_bytes(path, most=HEADER_SIZE + nbytes + TAIL_SLACK)
        if len(blob) < HEADER_SIZE + nbytes:
            raise CorruptInput(f"truncated: {len(blob) - HEADER_SIZE} of {nbytes} bytes of voxel data present",
                               path)
        arr = np.frombuffer(blob, dtype=dtype, count=nbytes // dtype.itemsize, offset=HEADER_SIZE)
        arr = arr.reshape(shape, order="F").astype(dtype.newbyteorder("="))
        return arr

    vol = Volume(affine=affine, header=hdr, format="mgh", path=path, orientation_known=known,
                 time_step=time_step, metadata=metadata, loader=loader, stored_shape=tuple(shape),
                 stored_dtype=dtype.newbyteorder("="))
    if not header_only:
        vol.array  # noqa: B018 - load now so a truncated file fails in read()
    return vol


def _tail(path: str, compressed: bool, nbytes: int, blob: bytes | None = None) -> dict:
    """TR, flip angle, TE, TI, FOV and tags after the voxel data (all optional)."""
    if compressed:
        blob = blob if blob is not None else fileio.read_bytes(path, most=HEADER_SIZE + nbytes + TAIL_SLACK)
        rest = blob[HEADER_SIZE + nbytes:]
    else:
        with open(path, "rb") as fh:
            fh.seek(HEADER_SIZE + nbytes)
            rest = fh.read()
    out = {}
    if len(rest) >= 20:
        tr, flip, te, ti, fov = struct.unpack_from(">5f", rest, 0)
        out.update(tr=tr, flip_angle=flip, te=te, ti=ti, fov=fov)
        out["tags"] = tag_list(rest[20:])
    return out


def tag_list(blob: bytes) -> list:
    tags, pos = [], 0
    while pos + 4 <= len(blob):
        (code,) = struct.unpack_from(">i", blob, pos)
        if code == 0:
            break
        if code == 30:  # the old transform tag has a 32-bit length
            if pos + 8 > len(blob):
                break
            (length,) = struct.unpack_from(">i", blob, pos + 4)
            start = pos + 8
        else:
            if pos + 12 > len(blob):
                break
            (length,) = struct.unpack_from(">q", blob, pos + 4)
            start = pos + 12
        if length < 0 or start + length > len(blob):
            break
        body = blob[start:start + length]
        tag = {"tag": code, "name": TAG_NAMES.get(code, "unknown"), "length": int(length)}
        text = body.split(b"\x00", 1)[0]
        if code in (3, 30, 31) or (text and all(32 <= c < 127 for c in text)):
            # command lines, file names, and any tag holding plain text (pedir, ...)
            tag["text"] = text.decode("latin-1")
        tags.append(tag)
        pos = start + length
    return tags


def read_header(path: str, fmt: str | None = None) -> dict:
    """Every header field in file order, then the tail (TR, flip angle, TE, TI, FOV, tags)."""
    hdr, compressed = _read_head(path)
    dims, dtype, nbytes = _layout(hdr)
    out = {"format": "mgz" if compressed else "mgh"}
    out.update(hdr)
    out["type_name"] = TYPES[hdr["type"]][0]
    if compressed or fileio.file_size(path) >= HEADER_SIZE + nbytes:
        out.update(_tail(path, compressed, nbytes))
    return out


def _real_values(volume: Volume) -> np.ndarray:
    """Real values of scaled data: integers when slope and intercept are integers and the range fits a
    type MGH holds (a CT's int16 with intercept -1024 stays int16), float otherwise."""
    arr = volume.unscaled().array
    if arr.dtype.kind in "iu" and arr.dtype not in _WRITE_CODES and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if not any(np.iinfo(c).min <= lo and hi <= np.iinfo(c).max for c in (np.int16, np.int32)):
            return volume.real()
    return arr


def _storable(volume: Volume, path: str) -> np.ndarray:
    """The values as a dtype MGH holds, unchanged, or OutputError."""
    if volume.value_kind in ("rgb", "rgba", "complex"):
        raise OutputError(f"MGH cannot hold {volume.value_kind} voxels (it holds uchar, short, int, float)", path)
    arr = volume.array if volume.scaling is None else _real_values(volume)
    dt = arr.dtype
    if dt in _WRITE_CODES:
        return arr
    if dt.kind in "iub":
        if arr.size == 0:
            return arr.astype(np.int16)
        lo, hi = int(arr.min()), int(arr.max())
        for cand in (np.int16, np.int32):
            info = np.iinfo(cand)
            if info.min <= lo and hi <= info.max and (dt.itemsize < np.dtype(cand).itemsize or dt.kind == "b"):
                return arr.astype(cand)
        raise OutputError(f"MGH cannot hold {dt} values {lo}..{hi} (it holds uchar, short, int32, float32)", path)
    if dt.kind == "f":
        as32 = arr.astype(np.float32)
        if np.array_equal(as32, arr, equal_nan=True):
            return as32
        raise OutputError(f"MGH holds float32, and these {dt} values would lose precision "
                          "(use --dtype float32 to accept that)", path)
    raise OutputError(f"MGH cannot hold {dt} values (it holds uchar, short, int32, float32)", path)


def write(volume: Volume, path: str, fmt: str = "mgh", *, force: bool = False, protect=(), **options) -> list:
    from . import values_to_write

    arr = values_to_write(volume, "mgh", path, _storable)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape + (1,))
    dims = arr.shape
    rot = volume.affine[:3, :3]
    delta = np.sqrt((rot ** 2).sum(axis=0))
    if np.any(delta == 0):
        raise OutputError("the affine has a zero-length voxel axis", path)
    mdc = (rot / delta).T  # rows: direction of i, j, k
    c_ras = volume.affine[:3, :3].dot(np.array(dims[:3], float) / 2.0) + volume.affine[:3, 3]
    _check_float32({"voxel size": delta, "direction cosines": mdc, "centre (c_ras)": c_ras}, path)
    head = struct.pack(_HEAD, 1, dims[0], dims[1], dims[2], dims[3], _WRITE_CODES[arr.dtype],
                       0, 1, *delta, *mdc.reshape(-1), *c_ras)
    tr = (volume.time_step or 0.0) * 1000.0 if volume.ndim > 3 else float(volume.metadata.get("tr") or 0.0)
    md = volume.metadata
    scan = [tr, float(md.get("flip_angle") or 0.0), float(md.get("te") or 0.0), float(md.get("ti") or 0.0)]
    # optional acquisition parameters: one MGH cannot hold is left out (0), not a failure
    scan = [v if np.isfinite(v) and abs(v) <= _FLOAT32_MAX else 0.0 for v in scan]
    tail = struct.pack(">5f", *scan, 0.0)
    data = np.asarray(arr, dtype=arr.dtype.newbyteorder(">"))
    compress = path.lower().endswith(".mgz") or path.lower().endswith(".mgh.gz")
    with fileio.atomic_outputs([path], force=force, protect=protect) as temps:
        with fileio.open_write(temps[0], compress) as fh:
            fh.write(head + b"\x00" * (HEADER_SIZE - len(head)))
            flat = data.reshape(-1, order="F") if data.size else np.zeros(0, np.uint8)
            raw = flat.view(np.uint8) if data.size else flat
            step = 1 << 24
            for start in range(0, raw.size, step):
                fh.write(memoryview(raw[start:start + step]))
            fh.write(tail)
    return [os.path.abspath(path)]


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32(values: dict, path: str) -> None:
    """OutputError when a geometry value is not finite or beyond float32, which MGH stores."""
    for what, v in values.items():
        arr = np.asarray(v, dtype=float)
        if not np.isfinite(arr).all():
            raise OutputError(f"MGH cannot hold this geometry value: the {what} holds NaN or infinite values", path)
        worst = float(np.abs(arr).max()) if arr.size else 0.0
        if worst > _FLOAT32_MAX:
            raise OutputError(f"MGH cannot hold this geometry value: the {what} ({worst:.6g}) is beyond the "
                              "float32 range MGH stores", path)


# -- scrubbing (anonymize) ------------------------------------------------------------------
_USED = 90  # bytes of the fixed header that mean something; the rest is unused padding
_ITEMSIZE = {code: np.dtype(code_str).itemsize for code, (_, code_str) in TYPES.items()}


def scrub(data: bytes, path: str, fmt: str = "mgh", *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, []) of an MGH file (or .mgz, inflated and compressed
    again): header and voxels kept byte for byte (unused header padding zeroed), the tail's five
    acquisition floats kept (a whole plausible block only, alone or followed by tags), every tag
    (command lines, file names, transforms) dropped."""
    if data[:2] == fileio.GZIP_MAGIC:
        return _scrub.gzipped(data, path, _gz_limit, lambda raw: scrub(raw, path, fmt), "tail data")
    return (*scrub_mgh(data, path), [])


def _dims(data: bytes):
    """(version, voxels, voxel type) of the first 24 bytes of a header."""
    version, w, h, d, frames, dtype = struct.unpack_from(">6i", data, 0)
    return version, (w * h * d * frames if min(w, h, d, frames) > 0 else 0), dtype


def scrub_mgh(data: bytes, path: str) -> tuple:
    """(new bytes, fields removed) for an MGH file (inflated .mgz)."""
    if len(data) < HEADER_SIZE:
        raise CorruptInput(f"file is too short for an MGH header ({len(data)} of {HEADER_SIZE} bytes)", path)
    version, count, dtype = _dims(data)
    if version != 1 or dtype not in _ITEMSIZE or not count:
        raise CorruptInput("not a valid MGH header", path)
    end = HEADER_SIZE + count * _ITEMSIZE[dtype]
    if len(data) < end:
        raise CorruptInput(f"truncated: {len(data) - HEADER_SIZE} of {end - HEADER_SIZE} bytes of voxel data", path)
    changed = []
    head = bytearray(data[:HEADER_SIZE])
    if any(head[_USED:]):
        changed.append("header padding")
        head[_USED:] = bytes(HEADER_SIZE - _USED)
    tail = data[end:]
    # TR, flip angle, TE, TI, FoV: kept only as a whole block of five plausible floats that is the
    # whole tail or is followed by tags; anything else (a short or text tail) is dropped
    floats = tail[:20]
    values = struct.unpack(">5f", floats) if len(floats) == 20 else ()
    if not (values and all(abs(v) < 1e6 for v in values) and (not any(tail[20:]) or tag_list(tail[20:]))):
        floats = b""
        if any(tail):
            changed.append("tail data")
    rest = tail[len(floats):]
    if floats and any(rest):
        names = [t["name"] if t["name"] != "unknown" else f"tag {t['tag']}" for t in tag_list(rest)]
        changed += names or ["tail data"]
    return bytes(head) + data[HEADER_SIZE:end] + floats, changed


def _gz_limit(head: bytes):
    """Inflated bytes a gzipped MGH header accounts for: header, voxels and room for the tail."""
    if len(head) < 28:
        return None
    _, count, dtype = _dims(head)
    if dtype not in _ITEMSIZE or not count:
        return None
    return HEADER_SIZE + count * _ITEMSIZE[dtype] + TAIL_SLACK
