"""NRRD: .nrrd (attached data) and .nhdr + detached data files (one file, LIST or a numbered pattern).

Read and written with numpy alone (raw data memory-mapped, gzip through ISA-L).
Encodings read: raw, gzip, bzip2, ascii/text, hex; written: gzip (default for .nrrd)
or raw (`.nhdr` writes `.raw` beside it; the option `encoding="raw"` or "gzip" chooses).

Axes: the axes with a space direction (or, without a space, the domain/space axes)
are the spatial i, j, k of the Volume in file order; an RGB-color / RGBA-color axis
(or a 3-/4-color axis of 8-bit samples) becomes the colour channels; any other
axis (time, list, vector, ...) becomes the 4th axis. Spaces: left-posterior-superior
and right-anterior-superior (and their -time forms), left-anterior-superior; an
unnamed space ("space dimension: N", as ITK writes 2D and 4D images) is ITK's LPS;
scanner-xyz / 3D-handed spaces and files with no space at all (spacings, axis mins)
are read as LPS too, as ITK does, with the orientation reported as unknown.
Cell-centred axis mins are shifted by half a spacing to the first sample's centre.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .. import fileio, geometry, untrusted
from ..errors import CorruptInput, OutputError, UnsupportedFormat
from ..volume import Volume
from . import _scrub
from .metaimage import (
    Chunk,
    check_chunks,
    data_dtype,
    file_order_bytes,
    finish_read,
    load_elements,
    number,
    write_array,
)

_TYPES = {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",), "f8": ("double",),
}
TYPES = {name: code for code, names in _TYPES.items() for name in names}
_WRITE_TYPE = {"i1": "int8", "u1": "uint8", "i2": "short", "u2": "unsigned short", "i4": "int",
               "u4": "unsigned int", "i8": "int64", "u8": "uint64", "f4": "float", "f8": "double"}
ENCODINGS = {"raw": "raw", "gz": "zlib", "gzip": "zlib", "bz2": "bzip2", "bzip2": "bzip2", "txt": "ascii",
             "text": "ascii", "ascii": "ascii", "hex": "hex"}
#: space name -> (signs turning its axes into LPS, anatomical?)
SPACES = {
    "left-posterior-superior": ((1, 1, 1), True), "lps": ((1, 1, 1), True),
    "right-anterior-superior": ((-1, -1, 1), True), "ras": ((-1, -1, 1), True),
    "left-anterior-superior": ((1, -1, 1), True), "las": ((1, -1, 1), True),
    "left-posterior-superior-time": ((1, 1, 1), True), "lpst": ((1, 1, 1), True),
    "right-anterior-superior-time": ((-1, -1, 1), True), "rast": ((-1, -1, 1), True),
    "left-anterior-superior-time": ((1, -1, 1), True), "last": ((1, -1, 1), True),
    "scanner-xyz": ((1, 1, 1), False), "scanner-xyz-time": ((1, 1, 1), False),
    "3d-right-handed": ((1, 1, 1), False), "3d-left-handed": ((1, 1, 1), False),
    "3d-right-handed-time": ((1, 1, 1), False), "3d-left-handed-time": ((1, 1, 1), False),
}
_UNITS_MM = {"mm": 1.0, "millimeter": 1.0, "millimeters": 1.0, "m": 1000.0, "meter": 1000.0, "cm": 10.0,
             "um": 1e-3, "micron": 1e-3, "microns": 1e-3}
_COLOUR_KINDS = {"rgb-color": "rgb", "rgba-color": "rgba"}
_PER_AXIS_FLOAT = ("spacings", "thicknesses", "axis mins", "axismins", "axis maxs", "axismaxs")
_MAX_HEADER = 16 << 20


# -- header ----------------------------------------------------------------------------
def _read_head(path: str) -> tuple:
    """(header lines, offset of the attached data or None when the header ends at EOF, head bytes)."""
    blob, match = fileio.read_until(path, rb"\r?\n\r?\n", _MAX_HEADER)
    if not blob.startswith(b"NRRD000"):
        raise CorruptInput("not a NRRD file (no NRRD000x magic line)", path)
    end = match.end() if match else None
    text = (blob[:match.start()] if match else blob).decode("latin-1")
    return text.splitlines(), end, blob


def _parse_vector(word: str, path: str):
    word = word.strip()
    if word.lower() == "none":
        return None
    if not (word.startswith("(") and word.endswith(")")):
        raise CorruptInput(f"bad NRRD vector {word[:40]!r}", path)
    try:
        return [float(v) for v in word[1:-1].split(",")]
    except ValueError:
        raise CorruptInput(f"bad NRRD vector {word[:40]!r}", path) from None


def _vectors(value: str, path: str) -> list:
    words = re.findall(r"\([^)]*\)|\S+", value)
    return [_parse_vector(w, path) for w in words]


def _typed(field: str, value: str, path: str):
    try:
        if field in ("dimension", "space dimension", "line skip", "lineskip", "byte skip", "byteskip"):
            return int(value)
        if field == "sizes":
            return [int(v) for v in value.split()]
        if field in _PER_AXIS_FLOAT:
            return [float(v) for v in value.split()]
        if field in ("min", "max", "old min", "oldmin", "old max", "oldmax"):
            return float(value)
    except ValueError:
        raise CorruptInput(f"NRRD field {field!r} is not numeric: {value[:60]!r}", path) from None
    if field == "space directions":
        return _vectors(value, path)
    if field == "space origin":
        return _parse_vector(value, path)
    if field == "measurement frame":
        return _vectors(value, path)
    if field in ("kinds", "centers", "centerings", "space units", "units", "labels"):
        # quoted words lose their quotes ("x axis" is one label)
        return [w[1:-1] if len(w) >= 2 and w[0] == w[-1] == '"' else w for w in re.findall(r'"[^"]*"|\S+', value)]
    return value


KEY_VALUES = "key/values"  # parse()'s group of key:=value pairs
ORDER = "line order"  # parse()'s record of the order of fields and pairs


def parse(path: str) -> tuple:
    """(header dict: magic, fields in file order, key:=value pairs, comments; data offset; head bytes)."""
    lines, end, blob = _read_head(path)
    hdr = {"magic": lines[0].strip()}
    comments, pairs = [], {}
    order = []  # ("field" | "pair", name) as the lines come, for read_header
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if ":=" in line:  # key/value pairs live apart: `type:=x` never replaces the field `type`
            key, _, value = line.partition(":=")
            pairs[key.strip()] = value.strip()
            order.append(("pair", key.strip()))
            continue
        field, sep, value = line.partition(": ")
        if not sep:
            field, sep, value = line.partition(":")
        if not sep:
            raise CorruptInput(f"NRRD header line {n} is not 'field: value': {line.strip()[:60]!r}", path)
        field = field.strip().lower()
        hdr[field] = _typed(field, value.strip(), path)
        order.append(("field", field))
        if field in ("data file", "datafile") and str(value).strip().upper().startswith("LIST"):
            # the rest of the header names the data files, one per line
            more = blob[end:end + _MAX_HEADER].decode("latin-1").splitlines() if end is not None else []
            rest = []
            for name in (l.strip() for src in (lines[n:], more) for l in src):
                if not name:
                    continue
                if len(rest) >= untrusted.MAX_FILES:  # bounded as they come: 16 MB of names is millions
                    raise CorruptInput(f"the data file LIST names more than {untrusted.MAX_FILES} files", path)
                rest.append(name)
            hdr["data files"] = rest
            end = None
            break
    hdr[KEY_VALUES] = pairs
    hdr["comments"] = comments
    hdr[ORDER] = order
    return hdr, end, blob


def _get(hdr, *names, default=None):
    for n in names:
        if n in hdr:
            return hdr[n]
    return default


def _layout(hdr: dict, path: str):
    dim = hdr.get("dimension")
    if not isinstance(dim, int) or dim < 1:
        raise CorruptInput("NRRD header has no valid dimension", path)
    if dim > 5:
        raise UnsupportedFormat(f"NRRD with {dim} axes is not supported", path)
    sizes = hdr.get("sizes")
    if not isinstance(sizes, list) or len(sizes) != dim or any(s <= 0 for s in sizes):
        raise CorruptInput(f"sizes {sizes} do not give {dim} positive numbers", path)
    tname = str(hdr.get("type", "")).strip().lower()
    if tname == "block":
        raise UnsupportedFormat("NRRD 'block' type data is not supported", path)
    if tname not in TYPES:
        raise UnsupportedFormat(f"unknown NRRD type {hdr.get('type')!r}", path)
    encoding = ENCODINGS.get(str(hdr.get("encoding", "")).strip().lower())
    if encoding is None:
        raise UnsupportedFormat(f"unsupported NRRD encoding {hdr.get('encoding')!r}", path)
    dtype = np.dtype(TYPES[tname])
    endian = str(hdr.get("endian", "little")).strip().lower()
    if dtype.itemsize > 1 and encoding not in ("ascii",):
        if endian not in ("little", "big"):
            raise CorruptInput(f"bad endian {endian!r}", path)
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    return dim, sizes, dtype, encoding


def _per_axis(hdr, names, dim, default):
    v = _get(hdr, *names)
    return v if isinstance(v, list) and len(v) == dim else [default] * dim


def _axes(hdr: dict, dim: int, sizes: list, dtype: np.dtype, path: str):
    """(spatial axes, colour axis or None, value kind, other axes) in file order."""
    kinds = [k.strip('"').lower() for k in _per_axis(hdr, ("kinds",), dim, "")]
    dirs = hdr.get("space directions")
    if dirs is not None and (not isinstance(dirs, list) or len(dirs) != dim):
        raise CorruptInput(f"space directions give {len(dirs) if isinstance(dirs, list) else 0} entries "
                           f"for {dim} axes", path)
    colour, kind = None, "scalar"
    for ax, k in enumerate(kinds):
        if k in _COLOUR_KINDS or (k in ("3-color", "4-color") and dtype == np.uint8):
            colour, kind = ax, _COLOUR_KINDS.get(k, "rgb" if k == "3-color" else "rgba")
            if sizes[ax] != (3 if kind == "rgb" else 4):
                raise CorruptInput(f"a {k} axis must have {3 if kind == 'rgb' else 4} samples, not {sizes[ax]}",
                                   path)
            break
    spatial, others = [], []
    for ax in range(dim):
        if ax == colour:
            continue
        if dirs is not None:
            is_space = dirs[ax] is not None
        elif kinds[ax]:
            is_space = kinds[ax] in ("domain", "space")
        else:
            is_space = True
        (spatial if is_space and len(spatial) < 3 else others).append(ax)
    if len(others) > 1:
        raise UnsupportedFormat(f"NRRD with {len(others)} non-spatial axes is not supported", path)
    if not spatial:
        raise UnsupportedFormat("NRRD without a spatial axis is not supported", path)
    return spatial, colour, kind, others


def _geometry(hdr: dict, dim: int, spatial: list, others: list, path: str):
    """(RAS affine, orientation known, time step)."""
    space = hdr.get("space")
    sdim = hdr.get("space dimension")
    dirs = hdr.get("space directions")
    n = len(spatial)
    lin = np.eye(3)
    origin = np.zeros(3)
    known = False
    time_step = None
    if space is not None or isinstance(sdim, int):
        signs, known = (1, 1, 1), True  # an unnamed space is ITK's (LPS), as ITK writes 2D and 4D
        if space is not None:
            key = str(space).strip().lower()
            if key not in SPACES:
                raise UnsupportedFormat(f"unknown NRRD space {space!r}", path)
            signs, known = SPACES[key]
        if dirs is None:
            raise CorruptInput("NRRD has a space but no space directions", path)
        given = [d for d in dirs if d is not None]
        if not given:
            raise CorruptInput("space directions are all 'none'", path)
        width = len(given[0])
        if any(d is not None and len(d) != width for d in dirs) or width < 2:
            raise CorruptInput("space directions differ in length", path)
        for col, ax in enumerate(spatial):
            v = np.array(dirs[ax][:3], dtype=float)
            lin[:len(v), col] = v
            if len(v) < 3:
                lin[2, col] = 0.0
        if n == 2:  # a plane in space: its normal stands in for the missing third axis
            normal = np.cross(lin[:, 0], lin[:, 1])
            lin[:, 2] = normal / (np.linalg.norm(normal) or 1.0)
        raw_origin = hdr.get("space origin")
        if raw_origin is not None:
            o = np.array(raw_origin[:3], dtype=float)
            origin[:len(o)] = o
        for ax in others:
            if dirs[ax] is not None and len(dirs[ax]) > 3:
                time_step = float(np.linalg.norm(dirs[ax]))
        units = [u.strip('"').lower() for u in (hdr.get("space units") or [])]
        scale = np.array([_UNITS_MM.get(units[i], 1.0) if i < len(units) else 1.0 for i in range(3)])
        lin, origin = lin * scale[:, None], origin * scale
        sign = np.array(signs, dtype=float)
        lin, origin = lin * sign[:, None], origin * sign
    else:
        spacings = _per_axis(hdr, ("spacings",), dim, float("nan"))
        mins = _per_axis(hdr, ("axis mins", "axismins"), dim, float("nan"))
        centers = [c.strip('"').lower() for c in _per_axis(hdr, ("centers", "centerings"), dim, "")]
        for col, ax in enumerate(spatial):
            s = spacings[ax] if np.isfinite(spacings[ax]) else 1.0
            lin[col, col] = s
            if np.isfinite(mins[ax]):
                origin[col] = mins[ax] + (s / 2 if centers[ax] == "cell" else 0.0)
    for ax in others:
        sp = _per_axis(hdr, ("spacings",), dim, float("nan"))[ax]
        if np.isfinite(sp):
            time_step = float(sp)
    if not (np.isfinite(lin).all() and np.isfinite(origin).all()):
        raise CorruptInput("the geometry holds NaN or infinite values", path)
    if abs(np.linalg.det(lin)) < 1e-12:
        raise CorruptInput("the space directions are degenerate (zero or parallel)", path)
    aff = np.eye(4)
    aff[:3, :3], aff[:3, 3] = lin, origin
    return geometry.lps_to_ras(aff), known, time_step


def _data_chunks(hdr: dict, end, path: str, sizes: list, itemsize: int, encoding: str) -> list:
    total = int(np.prod(sizes, dtype=object)) * itemsize
    lineskip = max(int(_get(hdr, "line skip", "lineskip", default=0) or 0), 0)
    byteskip = int(_get(hdr, "byte skip", "byteskip", default=0) or 0)
    if byteskip < -1:
        raise CorruptInput(f"bad byte skip {byteskip}", path)
    if byteskip == -1 and encoding != "raw":
        raise CorruptInput("byte skip -1 is only allowed with raw encoding", path)

    def chunk(file, nbytes, base_offset=0):
        if encoding == "raw":
            return Chunk(file, -1 if byteskip == -1 else base_offset + byteskip, nbytes, encoding, 0, lineskip)
        return Chunk(file, base_offset, nbytes, encoding, byteskip, lineskip)

    spec = _get(hdr, "data file", "datafile")
    if spec is None:
        if end is None:
            raise CorruptInput("NRRD header has no data (no blank line, no data file)", path)
        return [chunk(path, total, end)]
    words = str(spec).split()
    if words and words[0].upper() == "LIST":
        sub = int(words[1]) if len(words) > 1 and words[1].isdigit() else len(sizes) - 1
        names = hdr.get("data files") or []
        if 1 <= sub <= len(sizes) and len(names) != int(np.prod(sizes[sub:], dtype=object)):
            return _split(hdr, names, sub, sizes, itemsize, chunk, path)  # refused: the count is wrong
        return _split(hdr, untrusted.list_names(path, names), sub, sizes, itemsize, chunk, path)
    if len(words) >= 4 and "%" in words[0]:
        try:
            lo, hi, step = int(words[1]), int(words[2]), int(words[3])
            sub = int(words[4]) if len(words) > 4 else len(sizes) - 1
        except ValueError:
            raise CorruptInput(f"bad data file pattern {untrusted.shown(spec)}", path) from None
        if not 1 <= sub <= len(sizes):
            raise CorruptInput(f"bad data file sub-dimension {sub}", path)
        expected = int(np.prod(sizes[sub:], dtype=object))
        if step and (hi - lo) * step >= 0 and (hi - lo) // step + 1 != expected:
            raise CorruptInput(f"the data file pattern names {(hi - lo) // step + 1} files but the sizes "
                               f"need {expected}", path)
        files = untrusted.pattern_names(path, words[0], lo, hi, step)
        return _split(hdr, files, sub, sizes, itemsize, chunk, path)
    return [chunk(untrusted.reference(path, str(spec).strip()), total)]


def _split(hdr, files, sub, sizes, itemsize, chunk, path):
    if not 1 <= sub <= len(sizes):
        raise CorruptInput(f"bad data file sub-dimension {sub}", path)
    per = int(np.prod(sizes[:sub], dtype=object)) * itemsize
    expected = int(np.prod(sizes[sub:], dtype=object))
    if len(files) != expected:
        raise CorruptInput(f"the header names {len(files)} data files but the sizes need {expected}", path)
    return [chunk(f, per) for f in files]


def read(path: str, fmt: str | None = None, header_only: bool = False, **options) -> Volume:
    hdr, end, _ = parse(path)
    dim, sizes, dtype, encoding = _layout(hdr, path)
    spatial, colour, kind, others = _axes(hdr, dim, sizes, dtype, path)
    affine, known, time_step = _geometry(hdr, dim, spatial, others, path)
    chunks = check_chunks(_data_chunks(hdr, end, path, sizes, dtype.itemsize, encoding), path)
    count = int(np.prod(sizes, dtype=object))
    order = spatial + others + ([colour] if colour is not None else [])
    shape = tuple(sizes[a] for a in order)
    if len(spatial) == 1:  # one spatial axis: a 2D image of one row
        order_shape = (shape[0], 1) + shape[1:]
    else:
        order_shape = shape

    def loader():
        arr = load_elements(chunks, dtype, count, path).reshape(sizes, order="F")
        arr = arr.transpose(order) if order != list(range(dim)) else arr
        return arr.reshape(order_shape) if order_shape != shape else arr

    metadata = {}
    if others:  # a DWI NRRD (3D Slicer's DWMRI keys): its gradients, for .bval/.bvec and info
        from ..dicom.gradients import from_dwmri

        diffusion = from_dwmri(hdr.get(KEY_VALUES, {}), hdr, sizes[others[0]])
        if diffusion:
            metadata["diffusion"] = diffusion
    vol = Volume(affine=affine, value_kind=kind, time_step=time_step if others else None, metadata=metadata,
                 header=hdr, format="nrrd", path=path, orientation_known=known, loader=loader,
                 stored_shape=order_shape, stored_dtype=dtype.newbyteorder("="))
    return finish_read(vol, chunks, dtype, header_only,
                       streamable=colour is None and order == list(range(dim)) and order_shape == shape)


def read_header(path: str, fmt: str | None = None) -> dict:
    """The magic line, then every field (typed) and key:=value pair in file order, then the comments.

    A pair is listed under its key, or as `key:=` when a field (or magic/comments) has that name,
    so a pair never hides a field."""
    hdr, _, _ = parse(path)
    pairs = hdr.pop(KEY_VALUES, {})
    comments = hdr.pop("comments", [])
    order = hdr.pop(ORDER, [])
    fields = set(hdr) | {"comments"}
    out = {"magic": hdr.pop("magic")}
    for kind, name in order:
        if kind == "field" and name in hdr:
            out[name] = hdr.pop(name)
        elif kind == "pair" and name in pairs:
            out[f"{name}:=" if name in fields else name] = pairs.pop(name)
    out.update(hdr)  # derived entries (the data files of a LIST)
    out["comments"] = comments
    return out


# -- writing ---------------------------------------------------------------------------
def files(path: str) -> list:
    """The header and the data files it names (formats.header_and_data)."""
    from . import header_and_data

    return header_and_data(path, "nrrd")


def stream_slabs(volume, planes: int):
    """The voxels slab by slab while inflating (the "stream" capability): a compressed NRRD chunk
    is read as a MetaImage one is."""
    from .metaimage import stream_slabs as chunk_slabs

    return chunk_slabs(volume, planes)


def output_paths(path: str, encoding: str) -> list:
    if path.lower().endswith(".nhdr"):
        return [path, path[:-5] + (".raw.gz" if encoding == "gzip" else ".raw")]
    return [path]


def _vec(values) -> str:
    return "(" + ",".join(number(v) for v in values) + ")"


def _header_text(volume: Volume, dtype: np.dtype, encoding: str, data_name) -> str:
    """Header lines in the order ITK writes them; the space is LPS (plus time for 4D).

    ITK reads only images whose space has as many components as there are domain axes,
    so a 2D image in the z = 0 plane gets a 2-component space (as ITK writes it), an
    oblique 2D image becomes one slice of a 3D image, and 4D uses left-posterior-superior-time.
    """
    lps = geometry.ras_to_lps(volume.affine)
    grid = list(volume.grid_shape)
    nd = volume.ndim
    if nd == 2 and (np.abs(lps[2, :2]).max() > 1e-9 or abs(lps[2, 3]) > 1e-9):
        nd, grid = 3, grid + [1]  # keeps the plane's place in space
    width = {2: 2, 3: 3, 4: 4}[nd]
    sizes, dirs, kinds = [], [], []
    if volume.value_kind in ("rgb", "rgba"):
        sizes.append(volume.channels)
        dirs.append("none")
        kinds.append("RGB-color" if volume.value_kind == "rgb" else "RGBA-color")
    for ax in range(min(nd, 3)):
        sizes.append(grid[ax])
        dirs.append(_vec(list(lps[:min(width, 3), ax]) + [0.0] * (width - 3)))
        kinds.append("domain")
    origin = list(lps[:min(width, 3), 3]) + [0.0] * (width - 3)
    if nd == 4:
        sizes.append(grid[3])
        dirs.append(_vec([0.0, 0.0, 0.0, float(volume.time_step or 1.0)]))
        kinds.append("time")
    space = {2: "space dimension: 2", 3: "space: left-posterior-superior",
             4: "space: left-posterior-superior-time"}[nd]
    dwi = _dwmri(volume) if nd == 4 else None
    if dwi is not None:
        # a diffusion series as 3D Slicer and DWIConvert write it: the gradient axis first (fastest), a list
        space, origin = "space: left-posterior-superior", origin[:3]
        sizes = [sizes[-1]] + sizes[:-1]
        dirs = ["none"] + [_vec([float(x) for x in d.strip("()").split(",")][:3]) for d in dirs[:-1]]
        kinds = ["list"] + kinds[:-1]
    lines = ["NRRD0004", "# Complete NRRD file format specification at:",
             "# http://teem.sourceforge.net/nrrd/format.html",
             f"type: {_WRITE_TYPE[dtype.str.lstrip('<>=|')]}", f"dimension: {len(sizes)}",
             space, f"sizes: {' '.join(str(int(s)) for s in sizes)}",
             f"space directions: {' '.join(dirs)}", f"kinds: {' '.join(kinds)}"]
    if dtype.itemsize > 1:
        lines.append(f"endian: {'little' if np.little_endian else 'big'}")
    lines += [f"encoding: {encoding}", f"space origin: {_vec(origin)}"]
    if dwi is not None:
        lines.append("measurement frame: (1,0,0) (0,1,0) (0,0,1)")
    if data_name:
        lines.append(f"data file: {data_name}")
    if dwi is not None:
        lines += dwi
    return "\n".join(lines) + "\n" + ("" if data_name else "\n")


def _dwmri(volume):
    """NRRD key/value lines of a diffusion series (gradients in patient LPS axes, identity measurement
    frame, each gradient scaled so |g|^2 x DWMRI_b-value is its b-value), or None."""
    diffusion = volume.metadata.get("diffusion")
    if not diffusion or len(diffusion["bvals"]) != volume.n_volumes:
        return None
    bmax = max(diffusion["bvals"])
    if bmax <= 0:
        return None
    out = ["modality:=DWMRI", f"DWMRI_b-value:={number(bmax)}"]
    for t, (b, g) in enumerate(zip(diffusion["bvals"], diffusion["vectors"])):
        scale = (b / bmax) ** 0.5
        out.append(f"DWMRI_gradient_{t:04d}:=" + " ".join(number(float(v) * scale + 0.0) for v in g))
    return out


def write(volume: Volume, path: str, fmt: str = "nrrd", *, force: bool = False, protect=(),
          encoding: str | None = None, **options) -> list:
    """Write .nrrd (attached, gzip by default) or .nhdr + .raw (raw by default)."""
    volume = volume.unscaled()  # real values are stored: NRRD has no slope/intercept readers honour
    dtype = data_dtype(volume, "NRRD", path)
    if volume.ndim > 4:
        raise OutputError(f"medconv writes NRRD of at most 4 dimensions, this volume has {volume.ndim}", path)
    if not np.isfinite(volume.affine).all():
        raise OutputError("the volume's affine holds NaN or infinite values", path)
    detached = path.lower().endswith(".nhdr")
    encoding = (encoding or ("raw" if detached else "gzip")).lower()
    if encoding not in ("raw", "gzip"):
        raise OutputError(f"medconv writes NRRD data raw or gzip, not {encoding!r}", path)
    paths = output_paths(path, encoding)
    if volume.ndim == 4 and _dwmri(volume) is not None:  # gradient axis fastest (see _header_text)
        arr = np.ascontiguousarray(np.moveaxis(volume.array, 3, 0).T)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
    else:
        arr = file_order_bytes(volume)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    header = _header_text(volume, dtype, encoding, os.path.basename(paths[1]) if detached else None)
    with fileio.atomic_outputs(paths, force=force, protect=protect) as temps:
        with open(temps[0], "wb") as fh:
            fh.write(header.encode("latin-1"))
            if not detached:
                _write_payload(fh, arr, encoding)
        if detached:
            with open(temps[1], "wb") as fh:
                _write_payload(fh, arr, encoding)
    return paths


def _write_payload(fh, arr: np.ndarray, encoding: str) -> None:
    if encoding == "raw":
        write_array(fh, arr)
        return
    gz = fileio.open_write(fh, True)
    try:
        write_array(gz, arr)
    finally:
        gz.close()


# -- scrubbing (anonymize) ------------------------------------------------------------------
#: the fields a scrubbed header keeps (geometry and data layout; labels and units only as below)
SCRUB_FIELDS = {
    "type", "dimension", "space", "space dimension", "sizes", "space directions", "kinds", "endian", "encoding",
    "space origin", "measurement frame", "spacings", "thicknesses", "axis mins", "axismins", "axis maxs",
    "axismaxs", "centers", "centerings", "labels", "units", "space units", "min", "max", "old min", "oldmin",
    "old max", "oldmax", "data file", "datafile", "line skip", "lineskip", "byte skip", "byteskip",
    "block size", "blocksize", "sample units", "sampleunits",
}
#: bytes per type name, as the scrubber sizes the data (a bare `char` taken for one byte too)
_SCRUB_SIZES = {**{name: np.dtype(code).itemsize for name, code in TYPES.items()}, "char": 1}
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def scrub(data: bytes, path: str, fmt: str = "nrrd", *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, [(data file, its new bytes)]) of a NRRD header: comments,
    key:=value pairs, content and unknown fields dropped (labels and units unless empty or known
    units), the data (attached, or the detached data file) cut to what the header describes."""
    new, changed = scrub_nrrd(data, path)
    layout = nrrd_layout(data[:data.find(b"\n\n") + 1] if b"\n\n" in data else data, path)
    companions, more = _scrub.detached_data(layout, path)
    return new, changed + more, companions


def scrub_nrrd(data: bytes, path: str) -> tuple:
    """Drop NRRD comments, key:=value pairs, content and unknown fields; data untouched."""
    out, changed, pos = [], [], 0
    first = True
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            raise CorruptInput("NRRD header is not terminated by a blank line", path)
        line = data[pos:end + 1]
        pos = end + 1
        text = line.decode("latin-1").rstrip("\r\n")
        if first:
            out.append(line)
            first = False
            continue
        if not text:
            out.append(line)
            layout = nrrd_layout(data[:pos], path)
            if layout["file"]:  # detached: see scrub
                if any(data[pos:]):
                    changed.append("data after the header")
                return b"".join(out), changed
            kept, more = _scrub.data_region(data, pos, layout, path)
            return b"".join(out) + kept, changed + more
        if text.startswith("#"):
            changed.append("comment")
            continue
        if ":=" in text:
            changed.append(text.split(":=", 1)[0])
            continue
        field, _, value = text.partition(":")
        field = field.strip().lower()
        if field in ("labels", "units", "space units", "sample units", "sampleunits"):
            if _plain_labels(field, value):
                out.append(line)
            else:
                changed.append(field)
        elif field in ("line skip", "lineskip", "byte skip", "byteskip"):
            pass  # the bytes they skip are dropped with them (data_region)
        elif field in SCRUB_FIELDS:
            out.append(line)
        else:
            changed.append(field)
    # A detached header ends without a blank line.
    return b"".join(out), changed


def _plain_labels(field: str, value: str) -> bool:
    """Whether free text is harmless: labels when all empty, units when every one is a known unit string."""
    strings = _QUOTED.findall(value)
    rest = _QUOTED.sub("", value).strip()
    if not strings and field != "labels":
        strings, rest = [rest], ""  # `sample units` is written without quotes
    ok = (not any(s.strip() for s in strings)) if field == "labels" else \
        all(s.strip().lower() in _scrub.KNOWN_UNITS for s in strings)
    return ok and not rest


def nrrd_layout(header: bytes, path: str) -> dict:
    """Data size, encoding, skips and data file of a NRRD header."""
    h = _scrub.header_lines(header, ":")
    try:
        sizes = [int(x) for x in h["sizes"].split()]
        elem = _SCRUB_SIZES[re.sub(r"\s+", " ", h["type"].lower())]
        enc = ENCODINGS[h.get("encoding", "").lower()]
        line_skip = int(h.get("line skip", h.get("lineskip", "0")) or 0)
        byte_skip = int(h.get("byte skip", h.get("byteskip", "0")) or 0)
    except (KeyError, ValueError):
        raise CorruptInput("NRRD header without valid sizes, type or encoding", path) from None
    size = 1
    for d in sizes:
        size *= d
    return {"size": size if enc in ("ascii",) else size * elem, "encoding": enc, "line_skip": max(line_skip, 0),
            "byte_skip": max(byte_skip, -1), "skip_decoded": True,
            "file": h.get("data file", h.get("datafile", ""))}


def point_to(header: bytes, name: str) -> bytes:
    """A scrubbed detached header naming `name` as its data file."""
    return _scrub.point_to(header, (b"data file", b"datafile"), b":", name)
