"""NIfTI-1, NIfTI-2 and Analyze 7.5: .nii, .nii.gz, .hdr/.img pairs.

The binary header is parsed with `struct` (no nibabel import: `info` on a NIfTI
file stays fast); voxel data of an uncompressed file is memory-mapped, of a
compressed one streamed through ISA-L into one preallocated array.

Orientation follows the NIfTI rules: sform when its code is > 0, else qform when
its code is > 0, else the Analyze convention (x flipped, origin at the centre or
at SPM's `originator`), in which case the orientation is reported as unknown.
"""
from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np

from .. import fileio, geometry, log, untrusted
from ..errors import CorruptInput, InputError, OutputError, UnsupportedFormat
from ..volume import Volume
from . import _scrub
from ._registry import BY_NAME

# -- header layouts (field name, struct code) ----------------------------------------
NIFTI1_FIELDS = (
    ("sizeof_hdr", "i"), ("data_type", "10s"), ("db_name", "18s"), ("extents", "i"),
    ("session_error", "h"), ("regular", "c"), ("dim_info", "B"), ("dim", "8h"),
    ("intent_p1", "f"), ("intent_p2", "f"), ("intent_p3", "f"), ("intent_code", "h"),
    ("datatype", "h"), ("bitpix", "h"), ("slice_start", "h"), ("pixdim", "8f"),
    ("vox_offset", "f"), ("scl_slope", "f"), ("scl_inter", "f"), ("slice_end", "h"),
    ("slice_code", "B"), ("xyzt_units", "B"), ("cal_max", "f"), ("cal_min", "f"),
    ("slice_duration", "f"), ("toffset", "f"), ("glmax", "i"), ("glmin", "i"),
    ("descrip", "80s"), ("aux_file", "24s"), ("qform_code", "h"), ("sform_code", "h"),
    ("quatern_b", "f"), ("quatern_c", "f"), ("quatern_d", "f"),
    ("qoffset_x", "f"), ("qoffset_y", "f"), ("qoffset_z", "f"),
    ("srow_x", "4f"), ("srow_y", "4f"), ("srow_z", "4f"), ("intent_name", "16s"), ("magic", "4s"),
)
NIFTI2_FIELDS = (
    ("sizeof_hdr", "i"), ("magic", "4s"), ("eol_check", "4B"), ("datatype", "h"), ("bitpix", "h"), ("dim", "8q"),
    ("intent_p1", "d"), ("intent_p2", "d"), ("intent_p3", "d"), ("pixdim", "8d"),
    ("vox_offset", "q"), ("scl_slope", "d"), ("scl_inter", "d"), ("cal_max", "d"), ("cal_min", "d"),
    ("slice_duration", "d"), ("toffset", "d"), ("slice_start", "q"), ("slice_end", "q"),
    ("descrip", "80s"), ("aux_file", "24s"), ("qform_code", "i"), ("sform_code", "i"),
    ("quatern_b", "d"), ("quatern_c", "d"), ("quatern_d", "d"),
    ("qoffset_x", "d"), ("qoffset_y", "d"), ("qoffset_z", "d"),
    ("srow_x", "4d"), ("srow_y", "4d"), ("srow_z", "4d"),
    ("slice_code", "i"), ("xyzt_units", "i"), ("intent_code", "i"), ("intent_name", "16s"),
    ("dim_info", "B"), ("unused_str", "15s"),
)
ANALYZE_FIELDS = (
    ("sizeof_hdr", "i"), ("data_type", "10s"), ("db_name", "18s"), ("extents", "i"),
    ("session_error", "h"), ("regular", "c"), ("hkey_un0", "B"), ("dim", "8h"),
    ("vox_units", "4s"), ("cal_units", "8s"), ("unused1", "h"),
    ("datatype", "h"), ("bitpix", "h"), ("dim_un0", "h"), ("pixdim", "8f"),
    ("vox_offset", "f"), ("funused1", "f"), ("funused2", "f"), ("funused3", "f"),
    ("cal_max", "f"), ("cal_min", "f"), ("compressed", "f"), ("verified", "f"),
    ("glmax", "i"), ("glmin", "i"), ("descrip", "80s"), ("aux_file", "24s"),
    ("orient", "B"), ("originator", "5h"), ("generated", "10s"), ("scannum", "10s"),
    ("patient_id", "10s"), ("exp_date", "10s"), ("exp_time", "10s"), ("hist_un0", "3s"),
    ("views", "i"), ("vols_added", "i"), ("start_field", "i"), ("field_skip", "i"),
    ("omax", "i"), ("omin", "i"), ("smax", "i"), ("smin", "i"),
)


def _layout(fields):
    fmt = "".join(code for _, code in fields)
    counts = []
    for _, code in fields:
        n = int(code[:-1]) if code[:-1].isdigit() and code[-1] != "s" else 1
        counts.append(n)
    return fmt, counts


_LAYOUTS = {name: _layout(f) for name, f in
            (("nifti1", NIFTI1_FIELDS), ("nifti2", NIFTI2_FIELDS), ("analyze", ANALYZE_FIELDS))}
_FIELDS = {"nifti1": NIFTI1_FIELDS, "nifti2": NIFTI2_FIELDS, "analyze": ANALYZE_FIELDS}
HEADER_SIZE = {"nifti1": 348, "nifti2": 540, "analyze": 348}

#: NIfTI datatype codes: code -> (name, numpy dtype string or None for colour)
DATATYPES = {
    1: ("binary", None), 2: ("uint8", "u1"), 4: ("int16", "i2"), 8: ("int32", "i4"), 16: ("float32", "f4"),
    32: ("complex64", "c8"), 64: ("float64", "f8"), 128: ("rgb24", "rgb"), 256: ("int8", "i1"),
    512: ("uint16", "u2"), 768: ("uint32", "u4"), 1024: ("int64", "i8"), 1280: ("uint64", "u8"),
    1536: ("float128", None), 1792: ("complex128", "c16"), 2048: ("complex256", None), 2304: ("rgba32", "rgba"),
}
_CODE_FOR_DTYPE = {v[1]: k for k, v in DATATYPES.items() if v[1]}
ANALYZE_CODES = {2, 4, 8, 16, 32, 64, 128}
XFORM_CODES = {0: "unknown", 1: "scanner", 2: "aligned", 3: "talairach", 4: "mni", 5: "template"}
SPACE_UNITS = {0: "unknown", 1: "meter", 2: "mm", 3: "micron"}
TIME_UNITS = {0: "unknown", 8: "sec", 16: "msec", 24: "usec", 32: "hz", 40: "ppm", 48: "rads"}
SLICE_CODES = {0: "unknown", 1: "seq_inc", 2: "seq_dec", 3: "alt_inc", 4: "alt_dec", 5: "alt_inc2", 6: "alt_dec2"}
_TIME_TO_SECONDS = {8: 1.0, 16: 1e-3, 24: 1e-6}
_SPACE_TO_MM = {1: 1000.0, 2: 1.0, 3: 1e-3}
INTENT_CODES = {
    0: "none", 2: "correl", 3: "ttest", 4: "ftest", 5: "zscore", 6: "chisq", 7: "beta", 8: "binom", 9: "gamma",
    10: "poisson", 11: "normal", 12: "ftest_nonc", 13: "chisq_nonc", 14: "logistic", 15: "laplace", 16: "uniform",
    17: "ttest_nonc", 18: "weibull", 19: "chi", 20: "invgauss", 21: "extval", 22: "pval", 23: "logpval",
    24: "log10pval", 1001: "estimate", 1002: "label", 1003: "neuroname", 1004: "genmatrix", 1005: "symmatrix",
    1006: "dispvect", 1007: "vector", 1008: "pointset", 1009: "triangle", 1010: "quaternion", 1011: "dimless",
    2001: "time_series", 2002: "node_index", 2003: "rgb_vector", 2004: "rgba_vector", 2005: "shape",
}
EXTENSION_CODES = {0: "ignore", 2: "dicom", 4: "afni", 6: "comment", 8: "xcede", 10: "jimdiminfo",
                   12: "workflow_fwds", 14: "freesurfer", 16: "pypickle", 18: "mind_ident", 20: "b_value",
                   22: "spherical_direction", 24: "dt_component", 26: "shc_degreeorder", 28: "voxbo",
                   30: "caret", 32: "cifti", 34: "variable_frame_timing", 38: "eval", 40: "matlab",
                   42: "quantiphyse", 44: "mrs"}


# -- parsing --------------------------------------------------------------------------
def _endian(raw: bytes, size: int) -> str:
    if len(raw) >= 4 and struct.unpack_from("<i", raw, 0)[0] == size:
        return "<"
    if len(raw) >= 4 and struct.unpack_from(">i", raw, 0)[0] == size:
        return ">"
    return ""


def parse_header(raw: bytes, kind: str, path: str | None = None) -> dict:
    """The fields of a binary header as a dict (tuples for arrays, bytes stripped to str)."""
    size = HEADER_SIZE[kind]
    if len(raw) < size:
        raise CorruptInput(f"file is too short for a {kind} header ({len(raw)} of {size} bytes)", path)
    endian = _endian(raw, size)
    if not endian:
        raise CorruptInput(f"not a {kind} header (sizeof_hdr is not {size})", path)
    fmt, counts = _LAYOUTS[kind]
    values = struct.unpack_from(endian + fmt, raw, 0)
    hdr = {"_endian": endian}
    pos = 0
    for (name, code), n in zip(_FIELDS[kind], counts):
        if n > 1:
            hdr[name] = tuple(values[pos: pos + n])
        else:
            v = values[pos]
            if code.endswith("s") or code == "c":
                v = v.split(b"\x00", 1)[0].decode("latin-1")
            hdr[name] = v
        pos += n
    return hdr


def _kind_of(raw: bytes) -> str:
    from . import _sniff

    if _sniff.nifti2(raw):
        return "nifti2"
    if _sniff.nifti1(raw):
        return "nifti1"
    return "analyze"


def _pair_paths(path: str, need_data: bool = True):
    """(header path, data path, compressed) for .nii/.nii.gz or a .hdr/.img pair."""
    low = path.lower()
    if low.endswith((".nii", ".nii.gz")) or not low.endswith((".hdr", ".img", ".img.gz", ".hdr.gz")) \
            or low.endswith((".hdr", ".hdr.gz")) and _single_file_magic(path):
        # content wins over the name: an n+1/n+2 header holds its own data whatever it is called
        return path, path, path.lower().endswith(".gz") or _is_gzip(path)
    base = path
    for ext in (".img.gz", ".hdr.gz", ".img", ".hdr"):
        if low.endswith(ext):
            base = path[: -len(ext)]
            break
    hdr = next((base + e for e in (".hdr", ".HDR", ".hdr.gz") if os.path.exists(base + e)), base + ".hdr")
    img = next((base + e for e in (".img", ".IMG", ".img.gz") if os.path.exists(base + e)), None)
    if img is None and not need_data:
        return hdr, None, False
    if img is None:
        raise CorruptInput(f"the image file of this pair is missing ({os.path.basename(base)}.img)", path)
    if path != img:  # the header names its image file by its own name: a symbolic link may not lead away
        untrusted.reference(hdr, os.path.basename(img), "image file")
    return hdr, img, img.lower().endswith(".gz")


def _single_file_magic(path: str) -> bool:
    """True when the header at `path` says its data follows it in the same file (magic n+1 / n+2)."""
    try:
        head = fileio.read_bytes(path, 548)
    except Exception:
        return False
    return head[344:348] == b"n+1\0" or head[4:8] == b"n+2\0"


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == fileio.GZIP_MAGIC
    except OSError:
        return False


def _read_head(path: str, n: int) -> bytes:
    return fileio.read_bytes(path, n)


def _quaternion_matrix(b: float, c: float, d: float) -> np.ndarray:
    a2 = 1.0 - (b * b + c * c + d * d)
    if a2 < 1e-7:  # b, c, d describe a 180-degree rotation: renormalise
        norm = math.sqrt(b * b + c * c + d * d) or 1.0
        b, c, d, a = b / norm, c / norm, d / norm, 0.0
    else:
        a = math.sqrt(a2)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ])


def qform_affine(hdr: dict) -> np.ndarray:
    pixdim = hdr["pixdim"]
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    zooms = np.array([pixdim[1], pixdim[2], pixdim[3] * qfac], dtype=float)
    zooms = np.where(zooms == 0, 1.0, zooms)
    rot = _quaternion_matrix(hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"])
    aff = np.eye(4)
    aff[:3, :3] = rot * zooms[None, :]
    aff[:3, 3] = (hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"])
    return aff


def sform_affine(hdr: dict) -> np.ndarray:
    aff = np.eye(4)
    aff[0], aff[1], aff[2] = hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]
    return aff


def base_affine(hdr: dict, shape, origin=None) -> np.ndarray:
    """The Analyze convention (as nibabel): x flipped, origin at the centre or `origin` (0-based)."""
    zooms = np.array([abs(z) if z else 1.0 for z in hdr["pixdim"][1:4]], dtype=float)
    dims = np.array(list(shape[:3]) + [1] * (3 - len(shape[:3])), dtype=float)
    center = (dims - 1) / 2.0 if origin is None else np.asarray(origin, dtype=float)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(zooms)
    aff[:3, 3] = -center * zooms
    aff[0] *= -1
    return aff


def _spm_origin(hdr: dict, shape):
    origin = np.array(hdr["originator"][:3], dtype=float)
    dims = np.array(list(shape[:3]) + [1] * (3 - len(shape[:3])), dtype=float)
    if origin.any() and (origin > -dims).all() and (origin < dims * 2).all():
        return origin - 1
    return None


def _affine(hdr: dict, kind: str, shape):
    """(affine, orientation_known, note about qform/sform disagreement or None)."""
    if kind == "analyze":
        return base_affine(hdr, shape, _spm_origin(hdr, shape)), False, None
    scale = _SPACE_TO_MM.get(hdr["xyzt_units"] & 7, 1.0)
    note = None
    if hdr["sform_code"] > 0:
        aff = sform_affine(hdr)
        if hdr["qform_code"] > 0:
            q = qform_affine(hdr)
            if geometry.world_distance(q, aff, shape[:3]) > 1e-3:
                note = "qform and sform differ; using sform (as the NIfTI standard says)"
    elif hdr["qform_code"] > 0:
        aff = qform_affine(hdr)
    else:
        return base_affine(hdr, shape), False, None
    if scale != 1.0:
        aff = aff.copy()
        aff[:3] *= scale
    if not np.isfinite(aff).all():
        raise CorruptInput("the header's orientation matrix contains NaN or infinite values")
    return aff, True, note


def _data_layout(hdr: dict, kind: str, path: str):
    """(shape, numpy dtype, value_kind) from dim/datatype, validated."""
    dim = hdr["dim"]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise CorruptInput(f"invalid number of dimensions dim[0]={ndim}", path)
    shape = tuple(int(n) for n in dim[1: ndim + 1])
    if kind == "nifti1" and shape[:3] == (-1, 1, 1):
        # FreeSurfer's "large vector" convention (surface data past 32767 vertices): the real
        # length is in glmin, as nibabel reads it
        shape = (int(hdr["glmin"]),) + shape[1:]
    elif kind == "nifti1" and shape[:3] == (27307, 1, 6):
        # FreeSurfer's ico7 surface (163842 vertices) folded into 27307 x 1 x 6, as nibabel unfolds it
        shape = (163842, 1, 1) + shape[3:]
    if any(n <= 0 for n in shape):
        raise CorruptInput(f"invalid dimension sizes {list(shape)}", path)
    code = hdr["datatype"]
    if code not in DATATYPES:
        raise CorruptInput(f"unknown datatype code {code}", path)
    name, np_code = DATATYPES[code]
    if np_code is None:
        raise UnsupportedFormat(f"datatype {name} ({code}) is not supported", path)
    endian = hdr["_endian"]
    if np_code in ("rgb", "rgba"):
        return shape + (3 if np_code == "rgb" else 4,), np.dtype("u1"), np_code
    dtype = np.dtype(np_code).newbyteorder(endian) if np.dtype(np_code).itemsize > 1 else np.dtype(np_code)
    return shape, dtype, "complex" if dtype.kind == "c" else "scalar"


def _scaling(hdr: dict, kind: str):
    if kind == "analyze":
        slope, inter = hdr["funused1"], hdr["funused2"]
    else:
        slope, inter = hdr["scl_slope"], hdr["scl_inter"]
    if not slope or not math.isfinite(slope):
        return None
    if not math.isfinite(inter):
        inter = 0.0
    return (float(slope), float(inter))


def _load_array(data_path, offset, shape, dtype, value_kind, compressed, path):
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    native = dtype.newbyteorder("=")
    if not compressed:
        fileio.check_size(path, offset + nbytes, fileio.file_size(data_path), offset=offset)
        if nbytes == 0:
            arr = np.zeros(0, dtype)
        else:
            arr = np.memmap(data_path, dtype=dtype, mode="c", offset=offset, shape=(nbytes // dtype.itemsize,))
    else:
        csize = fileio.file_size(data_path)
        # deflate cannot expand more than ~1032:1; a larger claim is a lie
        fileio.check_size(path, offset + nbytes, csize * 1032 + 1024, offset=offset, compressed=csize)
        from isal import igzip

        arr = np.empty(nbytes // dtype.itemsize, dtype=dtype)
        view = memoryview(arr.view(np.uint8))
        try:
            with igzip.open(data_path, "rb") as fh:
                if offset:
                    skipped = fh.read(offset)
                    if len(skipped) < offset:
                        raise CorruptInput("compressed data ends inside the header", path)
                got = 0
                while got < nbytes:
                    n = fh.readinto(view[got:got + (1 << 24)])  # chunks: one huge read doubles peak memory
                    if not n:
                        break
                    got += n
        except fileio.gzip_errors() as exc:
            raise CorruptInput(f"compressed data is truncated or corrupt ({exc})", path) from None
        if got < nbytes:
            raise CorruptInput(f"truncated: {got} of {nbytes} bytes of voxel data present", path)
    if not dtype.isnative and dtype.itemsize > 1:
        arr = arr.astype(native)
    if value_kind in ("rgb", "rgba"):
        ch = shape[-1]
        arr = arr.reshape((ch,) + tuple(shape[:-1]), order="F")
        return np.moveaxis(arr, 0, -1)
    return arr.reshape(shape, order="F")


def _read_raw_header(path: str, need_data: bool = True):
    hdr_path, data_path, compressed = _pair_paths(path, need_data)
    raw = _read_head(hdr_path, 544 + 16)
    kind = _kind_of(raw)
    return hdr_path, data_path, compressed, raw, kind


def read(path: str, fmt: str | None = None, header_only: bool = False) -> Volume:
    hdr_path, data_path, compressed, raw, kind = _read_raw_header(path)
    hdr = parse_header(raw, kind, path)
    shape, dtype, value_kind = _data_layout(hdr, kind, path)
    spatial = shape[:-1] if value_kind in ("rgb", "rgba") else shape
    try:
        affine, known, note = _affine(hdr, kind, spatial)
    except CorruptInput as exc:
        raise CorruptInput(exc.message, path) from None
    if note:
        log.warn(note, path)
    if hdr_path != data_path and os.path.exists(os.path.splitext(hdr_path)[0] + ".mat"):
        # SPM keeps an image's orientation in a MATLAB file beside the pair (nibabel reads it with
        # scipy); medconv does not, so say which geometry is used instead of moving voxels silently
        log.warn("an SPM .mat file beside this image holds its orientation; medconv does not read it and "
                 "places the voxels by the header alone", path)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    offset = int(hdr["vox_offset"]) if hdr_path == data_path else int(hdr["vox_offset"] or 0)
    if hdr_path == data_path and offset < HEADER_SIZE[kind]:
        offset = _single_file_offset(hdr, kind, path, data_path, compressed, nbytes)
    if kind != "analyze" and hdr.get("intent_code") == 1002:
        value_kind = "label"
    time_step = None
    if len(spatial) > 3:
        step = float(hdr["pixdim"][4])
        units = 8 if kind == "analyze" else hdr["xyzt_units"] & 56  # Analyze has no unit field: seconds
        time_step = step * _TIME_TO_SECONDS.get(units, 1.0) if step else None
    metadata = {}
    if time_step is not None:  # the unit the file states (info shows the step in it)
        metadata["time_unit"] = {16: "ms", 24: "us"}.get(units, "s")
    if kind != "analyze":
        metadata["xform_space"] = XFORM_CODES.get(hdr["sform_code"] or hdr["qform_code"], "unknown")
    if not compressed:
        fileio.check_size(path, offset + nbytes, fileio.file_size(data_path), offset=offset)
    elif offset + nbytes > fileio.file_size(data_path) * 1032 + 1024:
        # deflate expands at most ~1032:1: a tiny .nii.gz cannot hold billions of voxels
        raise CorruptInput(f"header declares {offset + nbytes} bytes of voxel data, more than a "
                           f"{fileio.file_size(data_path)}-byte compressed file can hold", path)

    def loader():
        return _load_array(data_path, offset, shape, dtype, value_kind, compressed, path)

    volume = Volume(
        affine=affine, scaling=_scaling(hdr, kind), value_kind=value_kind, time_step=time_step,
        metadata=metadata, header=hdr, format=kind, path=path, orientation_known=known,
        loader=loader, stored_shape=shape, stored_dtype=dtype.newbyteorder("="),
    )
    if compressed and value_kind in ("scalar", "label"):
        # what stats needs to read the voxels slab by slab while inflating (see stream_slabs)
        volume.stream = (data_path, offset, dtype)
    return volume


def stream_slabs(volume, planes: int):
    """Yield (t, k0, k1, slab[i, j, k0:k1]) of a compressed NIfTI's voxels in file order (every
    trailing axis merged into t), inflating as it goes: memory holds one slab, never the volume."""
    data_path, offset, dtype = volume.stream
    shape = tuple(volume.stored_shape) + (1,) * max(0, 3 - len(volume.stored_shape))
    nx, ny, nz = shape[:3]
    nt = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
    plane = nx * ny * dtype.itemsize
    planes = max(1, int(planes))
    from isal import igzip

    path = volume.path
    try:
        with igzip.open(data_path, "rb") as fh:
            if offset and len(fh.read(offset)) < offset:
                raise CorruptInput("compressed data ends inside the header", path)
            for t in range(nt):
                for k0 in range(0, nz, planes):
                    k1 = min(nz, k0 + planes)
                    want = plane * (k1 - k0)
                    buf = bytearray(want)
                    view, got = memoryview(buf), 0
                    while got < want:
                        n = fh.readinto(view[got:])
                        if not n:
                            raise CorruptInput("truncated: the compressed voxel data ends early", path)
                        got += n
                    slab = np.frombuffer(buf, dtype=dtype).reshape((nx, ny, k1 - k0), order="F")
                    yield t, k0, k1, slab if dtype.isnative else slab.astype(dtype.newbyteorder("="))
    except fileio.gzip_errors() as exc:
        raise CorruptInput(f"compressed data is truncated or corrupt ({exc})", path) from None


#: where the data of a single-file NIfTI starts at the earliest: the header and the 4-byte extension flag
MIN_SINGLE_OFFSET = {"nifti1": 352, "nifti2": 544}


def _single_file_offset(hdr, kind, path, data_path, compressed, nbytes) -> int:
    """The data offset of a single-file NIfTI whose vox_offset is 0 (unset) or inside the header.

    The standard puts the data after the header and its 4-byte extension flag (352 / 544, what
    nibabel writes when vox_offset is unset); only a file exactly the header plus the data long
    says the writer left those 4 bytes out. Either way the file is not what it claims: warn.
    """
    declared = float(hdr["vox_offset"])
    if kind == "analyze":
        return int(declared)
    offset = MIN_SINGLE_OFFSET[kind]
    if not compressed and fileio.file_size(data_path) == HEADER_SIZE[kind] + nbytes:
        offset = HEADER_SIZE[kind]
    log.warn(f"vox_offset {declared:g} is inside the header of a single-file {_label(kind)} image; "
             f"reading the data from byte {offset}", path)
    return offset


#: largest .hdr (header plus extensions) of a pair read whole
MAX_PAIR_HEADER = 64 << 20


def read_extensions(path: str) -> list:
    """NIfTI extensions: [{code, name, size, content bytes}]."""
    hdr_path, data_path, compressed, raw, kind = _read_raw_header(path, need_data=False)
    if kind == "analyze":
        return []
    hdr = parse_header(raw, kind, path)
    size = HEADER_SIZE[kind]
    end = int(hdr["vox_offset"]) if hdr_path == data_path else None
    blob = fileio.read_bytes(hdr_path, end if end else None, most=None if end else MAX_PAIR_HEADER)
    if len(blob) < size + 4 or blob[size] == 0:
        return []
    out, pos = [], size + 4
    endian = hdr["_endian"]
    limit = len(blob) if end is None else min(end, len(blob))
    while pos + 8 <= limit:
        if not any(blob[pos:limit]):  # zero padding up to vox_offset: no more extensions
            break
        esize, ecode = struct.unpack_from(endian + "ii", blob, pos)
        problem = None
        if esize < 16 or esize % 16:
            problem = f"its size {esize} is not a positive multiple of 16"
        elif pos + esize > limit:
            problem = (f"its size {esize} runs past the {'data offset' if end is not None else 'end of the file'}"
                       f" ({limit - pos} bytes left)")
        if problem:
            # shown with what is there (code, declared size, the bytes present), never silently dropped
            log.warn(f"extension {len(out)} is malformed: {problem}; the bytes present are shown", path)
            out.append({"code": ecode, "name": EXTENSION_CODES.get(ecode, "unknown"), "size": esize,
                        "content": bytes(blob[pos + 8: limit]), "malformed": problem})
            break
        out.append({"code": ecode, "name": EXTENSION_CODES.get(ecode, "unknown"), "size": esize,
                    "content": bytes(blob[pos + 8: pos + esize])})
        pos += esize
    return out


def read_header(path: str, fmt: str | None = None) -> dict:
    """Every field of the binary header, codes decoded beside their numbers (no data file needed)."""
    _, _, _, raw, kind = _read_raw_header(path, need_data=False)
    hdr = parse_header(raw, kind, path)
    out = {"format": kind, "endianness": "little" if hdr.pop("_endian") == "<" else "big"}
    out.update(hdr)
    out["datatype_name"] = DATATYPES.get(hdr["datatype"], ("unknown",))[0]
    if kind != "analyze":
        out["qform_code_name"] = XFORM_CODES.get(hdr["qform_code"], "unknown")
        out["sform_code_name"] = XFORM_CODES.get(hdr["sform_code"], "unknown")
        out["xyzt_units_space"] = SPACE_UNITS.get(hdr["xyzt_units"] & 7, "unknown")
        out["xyzt_units_time"] = TIME_UNITS.get(hdr["xyzt_units"] & 56, "unknown")
        out["slice_code_name"] = SLICE_CODES.get(hdr["slice_code"], "unknown")
        out["intent_code_name"] = INTENT_CODES.get(hdr["intent_code"], "unknown")
        dim_info = hdr["dim_info"]
        out["freq_dim"], out["phase_dim"], out["slice_dim"] = dim_info & 3, (dim_info >> 2) & 3, (dim_info >> 4) & 3
        exts = read_extensions(path)
        out["extensions"] = [
            {"code": e["code"], "name": e["name"], "size": e["size"], "content": _ext_text(e["content"]),
             **({"malformed": e["malformed"]} if "malformed" in e else {})}
            for e in exts
        ]
    return out


def _ext_text(content: bytes):
    text = content.rstrip(b"\x00")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(content)} bytes of binary data>"
    if any(ord(c) < 32 and c not in "\r\n\t" for c in decoded):
        return f"<{len(content)} bytes of binary data>"
    return decoded


# -- writing ---------------------------------------------------------------------------
def _quaternion(rot: np.ndarray):
    """(b, c, d) of a proper rotation matrix (the NIfTI-1 reference algorithm)."""
    r = rot
    a = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if a > 0.5:
        a = 0.5 * math.sqrt(a)
        b = 0.25 * (r[2, 1] - r[1, 2]) / a
        c = 0.25 * (r[0, 2] - r[2, 0]) / a
        d = 0.25 * (r[1, 0] - r[0, 1]) / a
    else:
        xd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2])
        yd = 1.0 + r[1, 1] - (r[0, 0] + r[2, 2])
        zd = 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * math.sqrt(xd)
            c = 0.25 * (r[0, 1] + r[1, 0]) / b
            d = 0.25 * (r[0, 2] + r[2, 0]) / b
            a = 0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * math.sqrt(yd)
            b = 0.25 * (r[0, 1] + r[1, 0]) / c
            d = 0.25 * (r[1, 2] + r[2, 1]) / c
            a = 0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * math.sqrt(zd)
            b = 0.25 * (r[0, 2] + r[2, 0]) / d
            c = 0.25 * (r[1, 2] + r[2, 1]) / d
            a = 0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return b, c, d


def qform_parameters(affine: np.ndarray):
    """(quatern b, c, d, qfac, zooms, offset) of the orthogonal part of an affine."""
    spacing, direction, origin = geometry.decompose(affine)
    rot = geometry.orthonormalize(direction)
    qfac = 1.0
    if np.linalg.det(rot) < 0:
        qfac = -1.0
        rot[:, 2] *= -1
    return _quaternion(rot) + (qfac, spacing, origin)


def _dtype_code(volume: Volume, kind: str, path: str) -> tuple:
    if volume.value_kind in ("rgb", "rgba"):
        key = volume.value_kind
        if volume.dtype != np.uint8:
            raise OutputError(f"{kind} stores {key} only as 8-bit channels, not {volume.dtype}", path)
    else:
        key = volume.dtype.newbyteorder("=").str.lstrip("<>=|")
    code = _CODE_FOR_DTYPE.get(key)
    if code is None or (kind == "analyze" and code not in ANALYZE_CODES):
        allowed = sorted(DATATYPES[c][0] for c in (ANALYZE_CODES if kind == "analyze" else _CODE_FOR_DTYPE.values())
                         if DATATYPES[c][1])
        raise OutputError(f"{kind} cannot store {volume.dtype} data (it holds {', '.join(allowed)}); "
                          "use --dtype to choose another type", path)
    bitpix = 24 if key == "rgb" else 32 if key == "rgba" else np.dtype(key).itemsize * 8
    return code, bitpix


def _to_analyze_orientation(volume: Volume, path: str):
    if not geometry.is_axis_aligned(volume.affine, tol=1e-5):
        raise OutputError("Analyze 7.5 cannot hold a rotated (oblique) orientation; "
                          "write NIfTI (.nii, .nii.gz or a .hdr/.img pair) instead", path)
    if geometry.axcodes(volume.affine) != "LAS":
        volume = volume.reoriented("LAS")
    return volume


def _header_bytes(volume: Volume, kind: str, vox_offset: int, path: str) -> bytes:
    grid = list(volume.grid_shape)
    if not np.isfinite(volume.affine).all():
        raise OutputError(f"{_label(kind)} cannot hold this geometry: the affine holds NaN or infinite values",
                          path)
    code, bitpix = _dtype_code(volume, kind, path)
    fields = {name: b"" if c.endswith("s") else (tuple([0] * int(c[:-1])) if c[:-1].isdigit() else 0)
              for name, c in _FIELDS[kind]}
    fields["regular"] = b"r"
    dims = [len(grid)] + grid + [1] * (7 - len(grid))
    fields["dim"] = tuple(dims)
    aff = volume.affine
    spacing = geometry.voxel_sizes(aff)
    pixdim = [1.0] + list(spacing) + [1.0] * 4
    if volume.ndim > 3:
        pixdim[4] = float(volume.time_step or 1.0) if volume.time_step else 1.0
    fields["datatype"], fields["bitpix"] = code, bitpix
    fields["vox_offset"] = vox_offset
    if volume.scaling is not None:
        slope, inter = volume.scaling
    else:
        slope, inter = 1.0, 0.0
    if kind == "analyze":
        fields["sizeof_hdr"] = 348
        fields["funused1"], fields["funused2"] = slope, inter
        spacing3 = list(spacing[:3]) + [1.0] * (3 - len(spacing[:3]))
        origin = np.zeros(3)
        for ax in range(3):
            origin[ax] = -aff[ax, 3] / aff[ax, ax] if aff[ax, ax] else 0.0
        rounded = np.round(origin)
        if np.abs(rounded - origin).max() > 1e-4:
            log.warn("Analyze stores the origin as a whole voxel index: it was rounded "
                     f"({np.round(origin, 3).tolist()} -> {rounded.tolist()})", path)
        dims3 = np.array(list(grid[:3]) + [1] * (3 - len(grid[:3])))
        if not ((rounded + 1 > -dims3).all() and (rounded + 1 < dims3 * 2).all()) or not (rounded + 1).any():
            log.warn("the origin lies outside the range Analyze readers accept for SPM's originator; "
                     "they will place the origin at the centre of the image", path)
        fields["originator"] = tuple(int(v) + 1 for v in rounded) + (0, 0)
        pixdim[1:4] = spacing3
        fields["pixdim"] = tuple(float(v) for v in pixdim)
        fields["vox_units"] = b"mm"
        fields["cal_max"] = fields["cal_min"] = 0.0
    else:
        fields["sizeof_hdr"] = HEADER_SIZE[kind]
        fields["scl_slope"], fields["scl_inter"] = (slope, inter) if volume.scaling is not None else (0.0, 0.0)
        fields["magic"] = (b"n+1\x00" if vox_offset else b"ni1\x00") if kind == "nifti1" else (
            b"n+2\x00" if vox_offset else b"ni2\x00")
        if kind == "nifti2":
            fields["eol_check"] = (13, 10, 26, 10)  # detects text-mode transfer corruption
        fields["xyzt_units"] = 2 | 8
        if not volume.orientation_known:
            # name the convention the reader applied: rasters are placed as ITK places them
            convention = ("LPS, 1 mm pixels, as ITK reads 2D images" if volume.format in ("png", "jpeg", "tiff", "bmp")
                          else "Analyze convention: x flipped")
            log.note(f"{os.path.basename(path)}: the source stored no orientation; writing the assumed one "
                     f"({convention}; see `medconv info`) so every voxel keeps its position")
        b, c, d, qfac, zooms, origin = qform_parameters(aff)
        pixdim[0] = qfac
        pixdim[1:4] = list(zooms)
        fields["quatern_b"], fields["quatern_c"], fields["quatern_d"] = b, c, d
        fields["qoffset_x"], fields["qoffset_y"], fields["qoffset_z"] = (float(v) for v in origin)
        code_num = {v: k for k, v in XFORM_CODES.items()}.get(volume.metadata.get("xform_space"), 1) or 1
        fields["qform_code"] = fields["sform_code"] = code_num
        fields["srow_x"], fields["srow_y"], fields["srow_z"] = (tuple(float(v) for v in aff[r]) for r in range(3))
        fields["pixdim"] = tuple(float(v) for v in pixdim)
        if volume.value_kind == "label":
            fields["intent_code"] = 1002
        if kind == "nifti1":
            fields["slice_code"] = 0
    fmt, _ = _LAYOUTS[kind]
    values = []
    for (name, c) in _FIELDS[kind]:
        v = fields[name]
        _check_field(kind, name, c[-1], v if isinstance(v, tuple) else (v,), path)
        if isinstance(v, tuple):
            values.extend(v)
        else:
            values.append(v)
    return struct.pack("<" + fmt, *values)


def _label(kind: str) -> str:
    return BY_NAME[kind].label


_INT_RANGE = {"h": (-(1 << 15), (1 << 15) - 1), "i": (-(1 << 31), (1 << 31) - 1),
              "q": (-(1 << 63), (1 << 63) - 1), "B": (0, 255)}


def _check_field(kind: str, name: str, code: str, values, path: str) -> None:
    """OutputError when a header field cannot hold a value (a float32 overflow, NaN, an int range)."""
    what = f"{_label(kind)} cannot hold this geometry value: {name}"
    if code in "fd":
        for v in values:
            v = float(v)
            if not np.isfinite(v):
                raise OutputError(f"{what} would be {v} (not a finite number)", path)
            if code == "f" and abs(v) > _FLOAT32_MAX:
                hint = " (NIfTI-2 stores double precision: --nifti2)" if kind == "nifti1" else ""
                raise OutputError(f"{what} = {v:.6g} is beyond the float32 range{hint}", path)
    elif code in _INT_RANGE:
        lo, hi = _INT_RANGE[code]
        for v in values:
            if not lo <= int(v) <= hi:
                raise OutputError(f"{what} = {v} does not fit in its {code!r} field", path)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _needs_nifti2(volume: Volume) -> bool:
    return any(n > 32767 for n in volume.grid_shape)


def files(path: str) -> list:
    """The files of one image: a .hdr or .img with its partner (the path first), else the path."""
    if path.lower().endswith(tuple(e for pair in BY_NAME["nifti1"].pairs for e in pair)):
        return list(dict.fromkeys([path, *output_paths(path, "nifti1")]))
    return [path]


def header_of(path: str) -> str:
    """For an Analyze/NIfTI pair given by its .img, the .hdr beside it (else the path itself)."""
    low = path.lower()
    for ext in (".img.gz", ".img"):
        if low.endswith(ext):
            base = path[: -len(ext)]
            for cand in (base + ".hdr", base + ".HDR", base + ".hdr.gz"):
                if os.path.exists(cand):
                    return cand
    return path


def data_of(path: str):
    """The .img (or .img.gz) beside a .hdr (or .hdr.gz); "" when it is missing, None for a path
    that is no pair's header."""
    base = path[:-3] if path.lower().endswith(".gz") else path
    if not base.lower().endswith(".hdr"):
        return None
    stem, ext = base[:-4], base[-4:]
    img = ".IMG" if ext == ".HDR" else ".img"
    for cand in (stem + img, stem + img + ".gz", stem + img.lower(), stem + img.lower() + ".gz"):
        if os.path.exists(cand):
            return cand
    return ""


def output_paths(path: str, fmt: str) -> list:
    low = path.lower()
    if fmt == "analyze" or low.endswith((".hdr", ".img", ".img.gz")):
        base = path
        gz = low.endswith(".gz")
        for ext in (".img.gz", ".hdr.gz", ".img", ".hdr"):
            if low.endswith(ext):
                base = path[: -len(ext)]
                break
        ext = ".gz" if gz else ""  # a compressed pair compresses both files, as nibabel and FSL expect
        return [base + ".hdr" + ext, base + ".img" + ext]
    return [path]


def _array_bytes(volume: Volume) -> np.ndarray:
    """The voxels in NIfTI file order (x fastest; colour channels fastest of all), C-contiguous."""
    arr = volume.array
    if volume.value_kind in ("rgb", "rgba"):
        arr = np.moveaxis(arr, -1, 0)
    arr = np.ascontiguousarray(arr.T)  # no copy when the array is already Fortran-ordered
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def write(volume: Volume, path: str, fmt: str = "nifti1", *, force: bool = False, protect=(),
          nifti2: bool = False, **options) -> list:
    kind = fmt if fmt in ("analyze", "nifti2") else "nifti1"
    if kind == "nifti1" and (nifti2 or _needs_nifti2(volume)):
        kind = "nifti2"
    if volume.ndim > 7:
        raise OutputError("NIfTI holds at most 7 dimensions", path)
    if kind == "analyze":
        volume = _to_analyze_orientation(volume, path)
        if any(n > 32767 for n in volume.grid_shape):
            raise OutputError("Analyze 7.5 cannot hold a dimension above 32767", path)
    paths = output_paths(path, kind)
    single = len(paths) == 1
    vox_offset = (352 if kind == "nifti1" else 544) if single else 0
    header = _header_bytes(volume, kind, vox_offset, path)
    data = _array_bytes(volume)
    with fileio.atomic_outputs(paths, force=force, protect=protect) as temps:
        if single:
            compress = path.lower().endswith(".gz")
            with fileio.open_write(temps[0], compress, size_hint=vox_offset + data.nbytes) as fh:
                fh.write(header)
                fh.write(b"\x00" * (vox_offset - len(header)))
                _write_data(fh, data)
        else:
            with fileio.open_write(temps[0], paths[0].lower().endswith(".gz")) as fh:
                fh.write(header)
                if kind != "analyze":
                    fh.write(b"\x00" * 4)
            with fileio.open_write(temps[1], paths[1].lower().endswith(".gz")) as fh:
                _write_data(fh, data)
    return paths


def _write_data(fh, arr: np.ndarray) -> None:
    flat = arr.reshape(-1).view(np.uint8) if arr.size else np.zeros(0, np.uint8)
    step = 1 << 24
    for start in range(0, flat.size, step):
        fh.write(memoryview(flat[start: start + step]))


# -- scrubbing (anonymize) ------------------------------------------------------------------
def _spans(kind: str, names: tuple) -> dict:
    """{field: (offset, length)} of the named fields of a header layout, in the order of `names`."""
    at, pos = {}, 0
    for name, code in _FIELDS[kind]:
        size = struct.calcsize("<" + code)
        at[name] = (pos, size)
        pos += size
    return {name: at[name] for name in names}


#: free-text header fields, zeroed in place
NIFTI1_TEXT = ("data_type", "db_name", "extents", "session_error", "descrip", "aux_file", "intent_name")
NIFTI2_TEXT = ("descrip", "aux_file", "intent_name", "unused_str")
ANALYZE_TEXT = ("data_type", "db_name", "descrip", "aux_file", "generated", "scannum", "patient_id", "exp_date",
                "exp_time", "hist_un0")
#: numeric fields no reader uses (NIfTI-1 kept them from Analyze unused; the last eight int32 of
#: Analyze's data history): room for anything, zeroed
NIFTI1_UNUSED = ("glmax", "glmin")
ANALYZE_UNUSED = ("session_error", "hkey_un0", "views", "vols_added", "start_field", "field_skip", "omax", "omin",
                  "smax", "smin")
_SCRUBBED = {"nifti1": _spans("nifti1", NIFTI1_TEXT + NIFTI1_UNUSED), "nifti2": _spans("nifti2", NIFTI2_TEXT),
             "analyze": _spans("analyze", ANALYZE_TEXT + ANALYZE_UNUSED)}


def scrub(data: bytes, path: str, fmt: str, *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, [(companion, its new bytes)]) of a NIfTI-1/2 or Analyze
    file (gzipped or not): free-text header fields and extensions zeroed in place, bytes after the
    voxel data dropped; the .img of a .hdr cut to the voxels the header describes. Voxels and
    geometry are kept byte for byte (`verify` has nothing to compare)."""
    if data[:2] == fileio.GZIP_MAGIC:
        return _scrub.gzipped(data, path, lambda head: _gz_limit(fmt, head), lambda raw: scrub(raw, path, fmt),
                              "data after the voxels")
    new, changed = scrub_nifti_like(data, fmt, path)
    img = data_of(path)
    if img == "":
        raise InputError("the .img file of this .hdr is missing", path)
    if not img:
        return new, changed, []
    img = untrusted.reference(path, os.path.basename(img), "image file")  # a link may lead out
    raw = _scrub.read_file(img)
    if img.lower().endswith(".gz"):
        inflated, more = _scrub.inflate_gzip(raw, img, limit=_pair_limit(data, fmt), what="data after the voxels",
                                             refuse_bombs=True)
        kept, notes = nifti_pair_data(inflated, data, fmt, img)
        kept = gzip.compress(kept, compresslevel=6, mtime=0)
        notes = more + notes
    else:
        kept, notes = nifti_pair_data(raw, data, fmt, img)
    return new, changed + [f"{os.path.basename(img)}: {c}" for c in notes], [(img, kept)]


def _blank(buf: bytearray, fields: dict) -> list:
    changed = []
    for name, (off, n) in fields.items():
        if any(buf[off:off + n]):
            changed.append(name)
            buf[off:off + n] = bytes(n)
    return changed


def _scrub_endian(buf, size: int) -> str:
    """The byte order of a header the sniffers accepted (big when sizeof_hdr does not read little)."""
    return _endian(buf, size) or ">"


def scrub_nifti_like(data: bytes, fmt: str, path: str) -> tuple:
    """(new bytes, fields cleared) for NIfTI-1/2 (single file or .hdr) and Analyze headers."""
    buf = bytearray(data)
    size = HEADER_SIZE[fmt]
    if len(buf) < size:
        raise CorruptInput("header is truncated", path)
    changed = _blank(buf, _SCRUBBED[fmt])
    endian = _scrub_endian(buf, size)
    if fmt == "analyze" and _analyze_originator_text(buf, endian):
        # SPM keeps the origin there as five int16 (geometry, kept); text is cleared only when
        # medconv's reader would not take it for an origin, so the affine stays the same
        changed.append("originator")
        buf[253:263] = bytes(10)
    if fmt in ("nifti1", "nifti2") and len(buf) >= size + 4:
        changed += _scrub_extensions(buf, fmt, size, endian)
    return bytes(buf), changed


def _scrub_extensions(buf: bytearray, fmt: str, size: int, endian: str) -> list:
    """Extensions (dcm2niix and others store DICOM text there): every byte between the header and
    the voxels zeroed, so vox_offset and the data stay where they were; bytes after the voxels dropped."""
    changed = []
    magic = bytes(buf[344:348]) if fmt == "nifti1" else bytes(buf[4:8])
    if magic.startswith(b"n+"):
        vox = struct.unpack_from(endian + ("f" if fmt == "nifti1" else "q"), buf, 108 if fmt == "nifti1" else 168)[0]
        end = min(int(vox), len(buf))
        data_end = _nifti_data_end(buf, fmt, endian, int(vox))
        if data_end is not None and len(buf) > data_end:
            # bytes after the voxel data belong to no field: dropped
            if any(buf[data_end:]):
                changed.append("data after the voxels")
            del buf[data_end:]
    else:
        end = len(buf)  # a .hdr: everything after the header is extension
    if end > size and any(buf[size:end]):
        changed.append("extensions")
        buf[size:end] = bytes(end - size)
    return changed


def _nifti_data_end(buf, fmt: str, endian: str, vox: int):
    """vox_offset + the voxel data's size of a single-file NIfTI, or None when the header's dim
    and bitpix do not give a size (the file is then kept to its end)."""
    if vox < HEADER_SIZE[fmt]:
        return None
    nbytes = _nifti_voxel_bytes(buf, fmt, endian)
    return None if nbytes is None else vox + nbytes


def _analyze_originator_text(buf, endian: str) -> bool:
    """True when Analyze's `originator` (bytes 253..262) holds printable text that medconv's reader
    does not use as SPM's origin (five int16, voxel coordinates within the image's range)."""
    raw = bytes(buf[253:263]).rstrip(b"\x00")
    if len(raw) < 2 or not all(0x20 <= c < 0x7F for c in raw):
        return False
    origin = struct.unpack_from(endian + "3h", buf, 253)
    dims = [max(d, 1) for d in struct.unpack_from(endian + "3h", buf, 42)]
    used = any(origin) and all(-d < o < 2 * d for o, d in zip(origin, dims))
    return not used


def _nifti_voxel_bytes(buf, fmt: str, endian: str):
    """Bytes of voxel data a NIfTI-1/Analyze (fmt "nifti1") or NIfTI-2 header declares, or None."""
    if fmt == "nifti2":
        dims = struct.unpack_from(endian + "8q", buf, 16)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 14)
    else:
        dims = struct.unpack_from(endian + "8h", buf, 40)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 72)
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    count = 1
    for d in dims[1:dims[0] + 1]:
        if d < 1:
            return None
        count *= d
    return count * (bitpix // 8)


def nifti_pair_data(img: bytes, header: bytes, fmt: str, path: str) -> tuple:
    """(kept bytes, what is dropped) of the .img of a NIfTI/Analyze .hdr/.img pair: bytes before
    vox_offset zeroed (the offset stays valid), bytes after the voxels dropped."""
    size = HEADER_SIZE[fmt]
    if len(header) < size:
        raise CorruptInput("header is truncated", path)
    endian = _scrub_endian(header, size)
    two = fmt == "nifti2"
    vox = struct.unpack_from(endian + ("q" if two else "f"), header, 168 if two else 108)[0]
    vox = int(vox) if vox == vox and 0 <= vox < 1 << 40 else 0
    nbytes = _nifti_voxel_bytes(header, "nifti2" if two else "nifti1", endian)
    if nbytes is None:
        return img, []
    end = vox + nbytes
    if len(img) < end:
        raise CorruptInput(f"the .img file is {len(img)} bytes, the header needs {end}", path)
    changed = []
    if any(memoryview(img)[end:]):
        changed.append("data after the voxels")
    if not any(memoryview(img)[:vox]):
        return (img if end == len(img) else img[:end]), changed  # the usual case: no copy to edit
    changed.insert(0, "data before the voxels")
    buf = bytearray(img[:end])
    buf[:vox] = bytes(vox)
    return bytes(buf), changed


def _gz_limit(fmt: str, head: bytes):
    """Inflated bytes a gzipped single-file NIfTI accounts for (None: no bound from the header)."""
    size = HEADER_SIZE[fmt]
    if len(head) < size:
        return None
    endian = _scrub_endian(head, size)
    two = fmt == "nifti2"
    vox = struct.unpack_from(endian + ("q" if two else "f"), head, 168 if two else 108)[0]
    if vox != vox or head[344:346] != b"n+" and not two or two and head[4:6] != b"n+":
        return None  # a .hdr (its data is in the .img) or Analyze: no voxel data here
    return _nifti_data_end(head, "nifti2" if two else "nifti1", endian, int(vox))


def _pair_limit(header: bytes, fmt: str):
    """vox_offset + voxel bytes of the .img a .hdr describes (None: the header does not say)."""
    size = HEADER_SIZE[fmt]
    endian = _scrub_endian(header, size)
    two = fmt == "nifti2"
    vox = struct.unpack_from(endian + ("q" if two else "f"), header, 168 if two else 108)[0]
    nbytes = _nifti_voxel_bytes(header, "nifti2" if two else "nifti1", endian)
    if nbytes is None or vox != vox or not 0 <= vox < 1 << 40:
        return None
    return int(vox) + nbytes
