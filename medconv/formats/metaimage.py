"""MetaImage (ITK): .mha (header and data in one file), .mhd + .raw/.zraw, LIST and pattern data files.

Read and written with numpy alone: raw data is memory-mapped, zlib data inflated
through ISA-L into one preallocated array. The world is LPS (as in ITK); it is
converted to RAS only through `geometry.lps_to_ras`.

Decisions:
- TransformMatrix lists the direction matrix column by column (one voxel axis after
  the other), as ITK reads and writes it; Rotation and Orientation are its synonyms,
  Position and Origin synonyms of Offset; CenterOfRotation is kept but ignored.
- ElementNumberOfChannels 3 or 4 with integer elements is an RGB/RGBA image (ITK writes
  RGBPixel<unsigned short> that way). Any other channel count, and float elements
  (displacement fields, tensors), becomes an
  extra grid axis after the spatial ones (the 4th axis of the Volume); a 4D image
  with channels is refused.
- A 4D image's 4th spacing is its time step; its 4th offset is not kept.
- Writing: `.mha` holds everything; `.mhd` writes its data beside it as `.raw`, or
  `.zraw` (zlib, CompressedData = True) with the option `compress=True`, which also
  compresses the data inside a `.mha`. A 2D volume is written with NDims = 2 when its
  plane is the z = 0 plane of LPS space, else as one slice of a 3D image so that its
  world position survives.
"""
from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple

import numpy as np

from .. import fileio, geometry, untrusted
from ..errors import CorruptInput, OutputError, UnsupportedFormat
from ..volume import Volume
from . import _scrub

#: MetaIO element types -> numpy dtype codes (MET_LONG is 4 bytes in MetaIO, whatever C's long is)
ELEMENT_TYPES = {
    "MET_CHAR": "i1", "MET_ASCII_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
_TYPE_FOR_DTYPE = {"i1": "MET_CHAR", "u1": "MET_UCHAR", "i2": "MET_SHORT", "u2": "MET_USHORT", "i4": "MET_INT",
                   "u4": "MET_UINT", "i8": "MET_LONG_LONG", "u8": "MET_ULONG_LONG", "f4": "MET_FLOAT",
                   "f8": "MET_DOUBLE"}
_INT_KEYS = {"NDims", "DimSize", "HeaderSize", "HeaderSizesPerDataFile", "ElementNumberOfChannels",
             "CompressedDataSize", "ID", "ParentID"}
_FLOAT_KEYS = {"ElementSpacing", "ElementSize", "TransformMatrix", "Rotation", "Orientation", "Offset",
               "Position", "Origin", "CenterOfRotation", "ElementMin", "ElementMax", "Color"}
_BOOL_KEYS = {"BinaryData", "BinaryDataByteOrderMSB", "ElementByteOrderMSB", "CompressedData"}
#: how far a header may extend before its ElementDataFile line (LIST headers name many files)
_MAX_HEADER = 16 << 20
_CHUNK = 1 << 24


# -- shared data plumbing (NRRD uses it too) -----------------------------------------------
class Chunk(NamedTuple):
    """One data file's share of the voxels: where it starts and how it is encoded."""

    file: str
    offset: int  # byte offset in the file; -1: the data ends the file
    nbytes: int  # decoded bytes wanted from this file
    encoding: str = "raw"  # raw, zlib (zlib or gzip stream), bzip2, ascii, hex
    skip: int = 0  # decoded bytes to skip first (NRRD byte skip of compressed data)
    lineskip: int = 0  # text lines to skip before `offset` (NRRD line skip)


def check_chunks(chunks, path: str) -> list:
    """Refuse missing files and sizes the files cannot hold, before anything is allocated.

    Returns the chunks with line skips and end-anchored offsets resolved.
    """
    out = []
    for ch in chunks:
        if not os.path.isfile(ch.file):
            raise CorruptInput(f"data file {os.path.basename(ch.file)} is missing", path)
        size = fileio.file_size(ch.file)
        offset = ch.offset
        if ch.lineskip:
            offset = _after_lines(ch.file, ch.lineskip, path) + max(offset, 0)
        if ch.encoding == "raw":
            if offset < 0:
                offset = size - ch.nbytes
                if offset < 0:
                    fileio.check_size(path, ch.nbytes, size)
            fileio.check_size(path, offset + ch.skip + ch.nbytes, size, offset=offset + ch.skip)
        else:
            offset = max(offset, 0)
            avail = size - offset
            # deflate cannot expand more than ~1032:1, text needs at least one character per value
            factor = {"zlib": 1032, "bzip2": 1 << 20, "ascii": 8, "hex": 1}[ch.encoding]
            fileio.check_size(path, ch.skip + ch.nbytes, max(avail, 0) * factor + 1024 * (factor > 1), offset=ch.skip,
                          compressed=max(avail, 0))
        out.append(ch._replace(offset=offset, lineskip=0))
    return out


def _after_lines(file: str, lines: int, path: str) -> int:
    with open(file, "rb") as fh:
        for _ in range(lines):
            if not fh.readline(1 << 20):
                raise CorruptInput(f"data file {os.path.basename(file)} has fewer than {lines} lines to skip", path)
        return fh.tell()


def load_elements(chunks, dtype: np.dtype, count: int, path: str) -> np.ndarray:
    """`count` elements of `dtype` from checked chunks, one native-endian 1-D array."""
    dtype = np.dtype(dtype)
    nbytes = count * dtype.itemsize
    if count == 0:
        return np.zeros(0, dtype.newbyteorder("="))
    if len(chunks) == 1 and chunks[0].encoding == "raw":
        ch = chunks[0]
        arr = np.memmap(ch.file, dtype=dtype, mode="c", offset=ch.offset + ch.skip, shape=(count,))
    else:
        arr = np.empty(count, dtype=dtype)
        view = memoryview(arr.view(np.uint8))
        pos = 0
        for ch in chunks:
            _decode_into(ch, view[pos:pos + ch.nbytes], dtype, path)
            pos += ch.nbytes
        if pos < nbytes:
            raise CorruptInput(f"data files hold {pos} of {nbytes} bytes of voxel data", path)
    if not dtype.isnative and dtype.itemsize > 1:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))  # in place: no second copy
    return arr


def _decode_into(ch: Chunk, out: memoryview, dtype: np.dtype, path: str) -> None:
    name = os.path.basename(ch.file)
    want = len(out)
    if ch.encoding in ("ascii", "hex"):
        with open(ch.file, "rb") as fh:
            fh.seek(ch.offset)
            text = fh.read()
        if ch.encoding == "hex":
            try:
                blob = bytes.fromhex(re.sub(rb"\s+", b"", text).decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                raise CorruptInput(f"data file {name} is not valid hex text", path) from None
            blob = blob[ch.skip:]
            if len(blob) < want:
                raise CorruptInput(f"truncated: {len(blob)} of {want} bytes of voxel data in {name}", path)
            out[:] = blob[:want]
            return
        values = _parse_text_values(text, dtype, want // dtype.itemsize, name, path)
        out[:] = values.astype(dtype).view(np.uint8).reshape(-1)
        return
    got = 0
    if ch.encoding != "raw":  # inflated piece by piece, never past the bytes wanted; short refused
        for piece in inflated_pieces(ch._replace(nbytes=want), path):
            out[got:got + len(piece)] = piece
            got += len(piece)
        return
    with open(ch.file, "rb") as fh:
        fh.seek(ch.offset)
        while got < want:
            n = fh.readinto(out[got:got + _CHUNK])
            if not n:
                break
            got += n
    if got < want:
        raise CorruptInput(f"truncated: {got} of {want} bytes of voxel data in {name}", path)


def inflated_pieces(ch: Chunk, path: str):
    """The decoded bytes of one compressed chunk (zlib, gzip or bzip2), piece by piece, exactly
    `ch.nbytes` of them after `ch.skip`: never more inflated than that, a short stream refused."""
    name = os.path.basename(ch.file)
    if ch.encoding == "bzip2":
        import bz2

        new, errors = bz2.BZ2Decompressor, (OSError, ValueError, EOFError)
    else:
        from isal import isal_zlib

        def new():
            return isal_zlib.decompressobj(wbits=47)

        errors = (Exception,)
    want, skip = ch.nbytes, ch.skip
    try:
        with open(ch.file, "rb") as fh:
            fh.seek(ch.offset)
            dec, pending = new(), b""
            while want > 0:
                if not pending:
                    pending = fh.read(_CHUNK)
                if not pending:
                    piece = dec.flush() if ch.encoding != "bzip2" and not dec.eof else b""
                    if not piece:
                        break
                else:
                    limit = min(_CHUNK, want + skip)
                    if ch.encoding == "bzip2":
                        piece = dec.decompress(pending, max_length=limit)
                        pending = b""
                    else:
                        piece = dec.decompress(pending, limit)
                        pending = dec.unconsumed_tail
                if skip:
                    cut = min(skip, len(piece))
                    piece, skip = piece[cut:], skip - cut
                piece = piece[:want]
                if piece:
                    want -= len(piece)
                    yield piece
                if dec.eof and want > 0:
                    pending = dec.unused_data + pending or fh.read(_CHUNK)
                    if not pending:
                        break
                    dec = new()
    except errors as exc:
        raise CorruptInput(f"compressed data in {name} is corrupt ({exc})", path) from None
    if want > 0:
        raise CorruptInput(f"truncated: {ch.nbytes - want} of {ch.nbytes} bytes of voxel data in {name}", path)


def stream_slabs(volume, planes: int):
    """Yield (t, k0, k1, slab[i, j, k0:k1]) of a compressed MetaImage/NRRD volume in file order
    while inflating (see nifti.stream_slabs): memory holds one slab, never the volume."""
    ch, dtype = volume.stream
    shape = tuple(volume.stored_shape) + (1,) * max(0, 3 - len(volume.stored_shape))
    nx, ny, nz = shape[:3]
    nt = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
    plane = nx * ny * dtype.itemsize
    planes = max(1, int(planes))
    pieces = inflated_pieces(ch, volume.path)
    carry = b""
    for t in range(nt):
        for k0 in range(0, nz, planes):
            k1 = min(nz, k0 + planes)
            want = plane * (k1 - k0)
            buf = bytearray(want)
            got = min(len(carry), want)
            buf[:got] = carry[:got]
            carry = carry[got:]
            while got < want:
                piece = next(pieces, None)
                if piece is None:
                    raise CorruptInput("truncated: the compressed voxel data ends early", volume.path)
                n = min(len(piece), want - got)
                buf[got:got + n] = piece[:n]
                got += n
                carry = piece[n:]
            slab = np.frombuffer(buf, dtype=dtype).reshape((nx, ny, k1 - k0), order="F")
            yield t, k0, k1, slab if dtype.isnative else slab.astype(dtype.newbyteorder("="))


def _parse_text_values(text: bytes, dtype: np.dtype, count: int, name: str, path: str) -> np.ndarray:
    words = text.replace(b",", b" ").split()
    if len(words) < count:
        raise CorruptInput(f"truncated: {len(words)} of {count} values in {name}", path)
    try:
        if dtype.kind == "f":
            return np.array([float(w) for w in words[:count]], dtype=dtype.newbyteorder("="))
        return np.array([int(w) for w in words[:count]], dtype=dtype.newbyteorder("="))
    except (ValueError, OverflowError):
        raise CorruptInput(f"data file {name} holds a value that is not a {dtype.name} number", path) from None


def file_order_bytes(volume: Volume) -> np.ndarray:
    """The voxels as C-contiguous native array in file order (i fastest, channels fastest of all)."""
    arr = volume.array
    if volume.value_kind in ("rgb", "rgba"):
        arr = np.moveaxis(arr, -1, 0)
    arr = np.ascontiguousarray(arr.T)  # no copy for a Fortran-ordered array
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def write_array(fh, arr: np.ndarray) -> None:
    flat = arr.reshape(-1).view(np.uint8) if arr.size else np.zeros(0, np.uint8)
    for start in range(0, flat.size, _CHUNK):
        fh.write(memoryview(flat[start:start + _CHUNK]))


def deflate(arr: np.ndarray) -> list:
    """zlib stream of an array, as a list of pieces (chunked: no second full copy)."""
    comp = fileio.compressobj()
    flat = arr.reshape(-1).view(np.uint8) if arr.size else np.zeros(0, np.uint8)
    pieces = [comp.compress(memoryview(flat[s:s + _CHUNK])) for s in range(0, flat.size, _CHUNK)]
    pieces.append(comp.flush())
    return pieces


def number(v) -> str:
    """A number as ITK and teem write it: integers bare, others in shortest round-trip form."""
    v = float(v)
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def data_dtype(volume: Volume, fmt_name: str, path: str) -> np.dtype:
    """The volume's dtype if the format holds it, else a clean OutputError."""
    dt = volume.dtype
    if volume.value_kind == "complex" or dt.kind == "c":
        raise OutputError(f"{fmt_name} cannot store complex data; write NIfTI, or use --dtype "
                          "to store real values", path)
    key = dt.newbyteorder("=").str.lstrip("<>=|")
    if key not in _TYPE_FOR_DTYPE:
        raise OutputError(f"{fmt_name} cannot store {dt} data; use --dtype to choose another type", path)
    return np.dtype(key)


# -- header ----------------------------------------------------------------------------
def _read_text_header(path: str):
    """(list of (key, raw value) in order, data offset for LOCAL, names listed after LIST)."""
    # the ElementDataFile line ends the header; it must be complete (a line end, or the end of the file)
    blob, match = fileio.read_until(path, rb"^[ \t]*ElementDataFile[ \t]*=[^\r\n]*(\r\n|\n|\r|$)", _MAX_HEADER,
                                complete=lambda m: bool(m.group(1)))
    if not match:
        raise CorruptInput("MetaImage header has no ElementDataFile line", path)
    head = blob[:match.start()].decode("latin-1")
    items = []
    for n, line in enumerate(head.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or " " in key.strip():
            raise CorruptInput(f"MetaImage header line {n} is not 'Key = Value': {line.strip()[:60]!r}", path)
        items.append((key.strip(), value.strip()))
    last = blob[match.start():match.end()].decode("latin-1")
    items.append(("ElementDataFile", last.partition("=")[2].strip()))
    return items, match.end(), blob


_CANONICAL = {k.lower(): k for k in _INT_KEYS | _FLOAT_KEYS | _BOOL_KEYS}


def _typed(key: str, value: str, path: str):
    key = _CANONICAL.get(key.lower(), key)  # MetaIO writers agree on names, not always on case
    try:
        if key in _INT_KEYS:
            nums = [int(float(v)) for v in value.split()]
            return nums if (len(nums) != 1 or key == "DimSize") else nums[0]
        if key in _FLOAT_KEYS:
            nums = [float(v) for v in value.split()]
            # ElementMin/Max are single numbers in MetaIO (a list only if a writer gave several)
            return nums[0] if key in ("ElementMin", "ElementMax") and len(nums) == 1 else nums
    except (ValueError, OverflowError):
        raise CorruptInput(f"MetaImage {key} is not numeric: {value[:60]!r}", path) from None
    if key in _BOOL_KEYS:
        return value.lower() in ("true", "1", "yes")
    return value


def parse(path: str) -> tuple:
    """(header dict in file order with typed values, end of header offset, raw head bytes)."""
    items, end, blob = _read_text_header(path)
    hdr = {}
    for key, value in items:
        hdr[key] = _typed(key, value, path)
    return hdr, end, blob


def _get(hdr: dict, *names, default=None):
    lower = {k.lower(): v for k, v in hdr.items()}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return default


def _list_files(hdr: dict, end: int, blob: bytes, path: str, ndims: int, resolve: bool = True,
                expected=None) -> tuple:
    """(file paths, dimensions per file) for LIST and pattern ElementDataFile forms (None, None for
    others). Every name passes the rule of `untrusted` (`resolve`); a count other than `expected(file
    dimensions)` is refused before any name is resolved."""
    spec = str(hdr["ElementDataFile"])
    words = spec.split()
    if words and words[0].upper() == "LIST":
        file_dim = ndims - 1
        if len(words) > 1:
            m = re.match(r"(\d+)", words[1])
            if not m or not 1 <= int(m.group(1)) <= ndims:
                raise CorruptInput(f"bad LIST dimension {untrusted.shown(words[1])}", path)
            file_dim = int(m.group(1))
        names = []
        try:  # the names fill the rest of the file (the header was read in blocks: it may hold more)
            with open(path, "rb") as fh:
                fh.seek(end)
                rest = fh.read(_MAX_HEADER)
        except OSError:
            rest = blob[end:]
        for line in rest.decode("latin-1").splitlines():
            if line.strip():
                if len(names) >= untrusted.MAX_FILES:
                    raise CorruptInput(f"ElementDataFile LIST names more than {untrusted.MAX_FILES} files", path)
                names.append(line.strip())
        _check_count(len(names), expected, file_dim, path)
        if not resolve:
            return names, file_dim
        return untrusted.list_names(path, names), file_dim
    if len(words) >= 4 and "%" in words[0]:
        try:
            lo, hi, step = int(words[1]), int(words[2]), int(words[3])
            file_dim = int(words[4]) if len(words) > 4 else ndims - 1
        except ValueError:
            raise CorruptInput(f"bad ElementDataFile pattern {untrusted.shown(spec)}", path) from None
        if step == 0 or (hi - lo) * step < 0 or not 1 <= file_dim <= ndims:
            raise CorruptInput(f"bad ElementDataFile pattern {untrusted.shown(spec)}", path)
        _check_count((hi - lo) // step + 1, expected, file_dim, path)
        return untrusted.pattern_names(path, words[0], lo, hi, step, resolve=resolve), file_dim
    return None, None


def _check_count(count: int, expected, file_dim: int, path: str) -> None:
    if expected is not None and count != expected(file_dim):
        raise CorruptInput(f"ElementDataFile lists {count} files but DimSize needs {expected(file_dim)}", path)


def _layout(hdr: dict, path: str):
    ndims = _get(hdr, "NDims")
    if not isinstance(ndims, int):
        raise CorruptInput("MetaImage header has no valid NDims", path)
    if not 1 <= ndims <= 4:
        raise UnsupportedFormat(f"MetaImage with NDims = {ndims} is not supported (1 to 4)", path)
    dims = _get(hdr, "DimSize")
    if not isinstance(dims, list) or len(dims) != ndims or any(n <= 0 for n in dims):
        raise CorruptInput(f"DimSize {dims} does not give {ndims} positive sizes", path)
    etype = str(_get(hdr, "ElementType", default="")).upper().replace("_ARRAY", "")
    if etype not in ELEMENT_TYPES:
        raise UnsupportedFormat(f"unknown MetaImage ElementType {_get(hdr, 'ElementType')!r}", path)
    channels = _get(hdr, "ElementNumberOfChannels", default=1)
    if not isinstance(channels, int) or channels < 1:
        raise CorruptInput(f"bad ElementNumberOfChannels {channels!r}", path)
    msb = _get(hdr, "ElementByteOrderMSB", "BinaryDataByteOrderMSB", default=False)
    dtype = np.dtype(ELEMENT_TYPES[etype]).newbyteorder(">" if msb else "<")
    return ndims, [int(n) for n in dims], dtype, channels


def _geometry(hdr: dict, ndims: int, path: str):
    def vec(names, default):
        v = _get(hdr, *names)
        if v is None:
            return np.array(default, dtype=float)
        if not isinstance(v, list) or len(v) < ndims:
            raise CorruptInput(f"{names[0]} needs {ndims} values", path)
        return np.array(v[:ndims], dtype=float)

    spacing = vec(("ElementSpacing", "ElementSize"), [1.0] * ndims)
    origin = vec(("Offset", "Position", "Origin"), [0.0] * ndims)
    matrix = np.eye(ndims).reshape(-1)
    mat = _get(hdr, "TransformMatrix", "Rotation", "Orientation")
    if mat is not None:
        if not isinstance(mat, list) or len(mat) < ndims * ndims:
            raise CorruptInput(f"TransformMatrix needs {ndims * ndims} values", path)
        matrix = np.array(mat[:ndims * ndims], dtype=float)
    if not (np.isfinite(spacing).all() and np.isfinite(origin).all() and np.isfinite(matrix).all()):
        raise CorruptInput("the geometry holds NaN or infinite values", path)
    if (spacing == 0).any():
        raise CorruptInput(f"ElementSpacing {spacing.tolist()} has a zero", path)
    # TransformMatrix lists the direction column by column: one voxel axis after another
    direction_n = matrix.reshape(ndims, ndims).T
    n = min(ndims, 3)
    direction = np.eye(3)
    direction[:n, :n] = direction_n[:n, :n]
    spacing3 = np.ones(3)
    spacing3[:n] = spacing[:n]
    origin3 = np.zeros(3)
    origin3[:n] = origin[:n]
    affine = geometry.lps_to_ras(geometry.compose(direction, spacing3, origin3))
    time_step = float(spacing[3]) if ndims == 4 else None
    return affine, time_step


def _chunks(hdr: dict, end: int, blob: bytes, path: str, ndims: int, dims: list, elem_bytes: int) -> list:
    spec = str(hdr["ElementDataFile"])
    compressed = bool(_get(hdr, "CompressedData", default=False))
    binary = _get(hdr, "BinaryData", default=True)
    encoding = "zlib" if compressed else ("raw" if binary else "ascii")
    total = int(np.prod(dims, dtype=object)) * elem_bytes
    header_size = _get(hdr, "HeaderSize", default=0)
    header_size = header_size if isinstance(header_size, int) else 0
    if spec.upper() == "LOCAL":
        if header_size == -1:
            return [Chunk(path, -1, total, encoding)]
        return [Chunk(path, end + max(header_size, 0), total, encoding)]
    files, file_dim = _list_files(hdr, end, blob, path, ndims,
                                  expected=lambda d: int(np.prod(dims[d:], dtype=object)))
    if files is None:
        data = untrusted.reference(path, spec)
        offset = -1 if header_size == -1 else max(header_size, 0)
        return [Chunk(data, offset, total, encoding)]
    per_file = int(np.prod(dims[:file_dim], dtype=object)) * elem_bytes
    expected = int(np.prod(dims[file_dim:], dtype=object))
    if len(files) != expected:
        raise CorruptInput(f"ElementDataFile lists {len(files)} files but DimSize needs {expected}", path)
    offset = -1 if header_size == -1 else max(header_size, 0)
    return [Chunk(f, offset, per_file, encoding) for f in files]


def read(path: str, fmt: str | None = None, header_only: bool = False, **options) -> Volume:
    hdr, end, blob = parse(path)
    ndims, dims, dtype, channels = _layout(hdr, path)
    affine, time_step = _geometry(hdr, ndims, path)
    count = int(np.prod(dims, dtype=object)) * channels
    chunks = check_chunks(_chunks(hdr, end, blob, path, ndims, dims, dtype.itemsize * channels), path)
    value_kind = "scalar"
    grid = list(dims) if ndims > 1 else [dims[0], 1]
    if channels > 1:
        if channels in (3, 4) and dtype.kind in "ui":
            value_kind = "rgb" if channels == 3 else "rgba"
            shape = tuple(grid) + (channels,)
        elif ndims == 4:
            raise UnsupportedFormat(f"a 4D MetaImage with {channels} channels per voxel is not supported", path)
        else:
            shape = tuple(grid + [1] * (3 - len(grid))) + (channels,)
    else:
        shape = tuple(grid)

    def loader():
        arr = load_elements(chunks, dtype, count, path)
        if channels == 1:
            return arr.reshape(shape, order="F")
        arr = np.moveaxis(arr.reshape((channels,) + tuple(dims), order="F"), 0, -1)
        while arr.ndim < len(shape):  # a vector axis goes after three spatial axes
            arr = np.expand_dims(arr, arr.ndim - 1)
        return arr

    vol = Volume(affine=affine, value_kind=value_kind, time_step=time_step if len(shape) > 3 else None,
                 header=hdr, format="metaimage", path=path, loader=loader, stored_shape=shape,
                 stored_dtype=dtype.newbyteorder("="))
    return finish_read(vol, chunks, dtype, header_only, streamable=channels == 1)


def finish_read(vol: Volume, chunks: list, dtype: np.dtype, header_only: bool, streamable: bool) -> Volume:
    """A read volume made ready: one compressed chunk of scalar voxels in file order is left to be
    inflated when used, as stats streams it slab by slab (Volume.stream, see stream_slabs), and a
    corrupt stream fails then; anything else is read now unless header-only, so that a corrupt
    file fails inside read()."""
    if streamable and len(chunks) == 1 and chunks[0].encoding in ("zlib", "bzip2"):
        vol.stream = (chunks[0], dtype)
        header_only = True
    if not header_only:
        vol.array  # noqa: B018
    return vol


def read_header(path: str, fmt: str | None = None) -> dict:
    """Every key in file order with numbers, lists and booleans decoded; LIST file names after."""
    hdr, end, blob = parse(path)
    out = dict(hdr)
    ndims = _get(hdr, "NDims")
    if isinstance(ndims, int) and 1 <= ndims <= 4:
        files, _ = _list_files(hdr, end, blob, path, ndims, resolve=False)
        if files is not None:
            out["ElementDataFiles"] = files
    return out


# -- writing ---------------------------------------------------------------------------
def files(path: str) -> list:
    """The header and the data files it names (formats.header_and_data)."""
    from . import header_and_data

    return header_and_data(path, "metaimage")


def output_paths(path: str, compress: bool = False) -> list:
    low = path.lower()
    if low.endswith(".mhd"):
        return [path, path[:-4] + (".zraw" if compress else ".raw")]
    return [path]


def itk_orientation(affine_ras: np.ndarray) -> str:
    """ITK's AnatomicalOrientation: each axis named by where it comes FROM (RAI = identity LPS)."""
    opposite = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S", "?": "?"}
    return "".join(opposite[c] for c in geometry.axcodes(affine_ras))


def _header_text(volume: Volume, ndims: int, dtype: np.dtype, data_name: str, compressed_size) -> str:
    affine_lps = geometry.ras_to_lps(volume.affine)
    spacing, direction, origin = geometry.decompose(affine_lps)
    n = min(ndims, 3)
    matrix = np.eye(ndims)
    matrix[:n, :n] = direction[:n, :n]
    spacing_n = list(spacing[:n]) + ([float(volume.time_step or 1.0)] if ndims == 4 else [])
    origin_n = list(origin[:n]) + ([0.0] if ndims == 4 else [])
    dims = list(volume.grid_shape) + [1] * (ndims - volume.ndim)
    msb = sys.byteorder == "big"
    lines = [
        ("ObjectType", "Image"), ("NDims", str(ndims)), ("BinaryData", "True"),
        ("BinaryDataByteOrderMSB", str(msb)), ("CompressedData", str(compressed_size is not None)),
    ]
    if compressed_size is not None:
        lines.append(("CompressedDataSize", str(compressed_size)))
    lines += [
        ("TransformMatrix", " ".join(number(v) for v in matrix.T.reshape(-1))),  # column by column
        ("Offset", " ".join(number(v) for v in origin_n)),
        ("CenterOfRotation", " ".join("0" for _ in range(ndims))),
    ]
    if ndims == 3:
        lines.append(("AnatomicalOrientation", itk_orientation(volume.affine)))
    lines += [("ElementSpacing", " ".join(number(v) for v in spacing_n)),
              ("DimSize", " ".join(str(int(d)) for d in dims))]
    if volume.value_kind in ("rgb", "rgba"):
        lines.append(("ElementNumberOfChannels", str(volume.channels)))
    lines += [("ElementType", _TYPE_FOR_DTYPE[dtype.str.lstrip("<>=|")]), ("ElementDataFile", data_name)]
    return "".join(f"{k} = {v}\n" for k, v in lines)


def _ndims_for(volume: Volume, path: str) -> int:
    nd = volume.ndim
    if nd > 4:
        raise OutputError(f"MetaImage holds at most 4 dimensions, this volume has {nd}", path)
    if nd == 1:
        return 2
    if nd == 2:
        lps = geometry.ras_to_lps(volume.affine)
        # the plane must be z = 0 with in-plane axes, or NDims = 2 would move it
        if np.abs(lps[2, :2]).max() > 1e-9 or abs(lps[2, 3]) > 1e-9:
            return 3
    return nd


def write(volume: Volume, path: str, fmt: str = "metaimage", *, force: bool = False, protect=(),
          compress: bool = False, **options) -> list:
    """Write .mha (one file) or .mhd + .raw/.zraw; returns the files written."""
    volume = volume.unscaled()  # MetaImage has no slope/intercept: real values are stored
    dtype = data_dtype(volume, "MetaImage", path)
    if volume.value_kind == "label":
        volume = volume.replace(value_kind="scalar")
    ndims = _ndims_for(volume, path)
    if not np.isfinite(volume.affine).all():
        raise OutputError("the volume's affine holds NaN or infinite values", path)
    paths = output_paths(path, compress)
    arr = file_order_bytes(volume)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    pieces = deflate(arr) if compress else None
    csize = sum(len(p) for p in pieces) if compress else None
    data_name = os.path.basename(paths[1]) if len(paths) > 1 else "LOCAL"
    header = _header_text(volume, ndims, dtype, data_name, csize).encode("latin-1")
    with fileio.atomic_outputs(paths, force=force, protect=protect) as temps:
        with open(temps[0], "wb") as fh:
            fh.write(header)
            if len(paths) == 1:
                _write_payload(fh, arr, pieces)
        if len(paths) > 1:
            with open(temps[1], "wb") as fh:
                _write_payload(fh, arr, pieces)
    return paths


def _write_payload(fh, arr, pieces) -> None:
    if pieces is None:
        write_array(fh, arr)
    else:
        for p in pieces:
            fh.write(p)


# -- scrubbing (anonymize) ------------------------------------------------------------------
#: the keys a scrubbed header keeps (geometry and data layout); every other line goes
SCRUB_KEYS = {
    "objecttype", "objectsubtype", "ndims", "binarydata", "binarydatabyteordermsb", "byteordermsb",
    "compresseddata", "compresseddatasize", "transformmatrix", "rotation", "orientation", "offset", "origin",
    "position", "centerofrotation", "anatomicalorientation", "elementspacing", "elementsize", "dimsize",
    "elementtype", "elementnumberofchannels", "elementmin", "elementmax", "headersize", "elementdatafile",
    "elementbyteordermsb",
}


def scrub(data: bytes, path: str, fmt: str = "metaimage", *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, [(data file, its new bytes)]) of a MetaImage header:
    only the keys of SCRUB_KEYS kept, the data (attached, or the detached data file) cut to what
    the header describes and otherwise untouched."""
    new, changed = scrub_metaimage(data, path)
    companions, more = _scrub.detached_data(metaimage_layout(data, path), path)
    return new, changed + more, companions


def scrub_metaimage(data: bytes, path: str) -> tuple:
    """Keep only the known geometry/data keys of a MetaImage header; the data is untouched."""
    out, changed, pos = [], [], 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        pos = end
        key = line.split(b"=", 1)[0].strip().decode("latin-1").lower()
        if key == "headersize":
            pass  # the bytes it skips are dropped with it (data_region)
        elif key in SCRUB_KEYS:
            out.append(line)
        elif line.strip():
            changed.append(key or "?")
        if key == "elementdatafile":
            layout = metaimage_layout(data[:pos], path)
            if layout["file"].upper() != "LOCAL":  # detached: see scrub
                if any(data[pos:]):
                    changed.append("data after the header")
                return b"".join(out), changed
            kept, more = _scrub.data_region(data, pos, layout, path)
            return b"".join(out) + kept, changed + more
    raise CorruptInput("MetaImage header has no ElementDataFile line", path)


def metaimage_layout(header: bytes, path: str) -> dict:
    """Data size, encoding, header size and data file of a MetaImage header."""
    h = _scrub.header_lines(header, "=")
    try:
        dims = [int(x) for x in h["dimsize"].split()]
        elem = np.dtype(ELEMENT_TYPES[h["elementtype"].upper()]).itemsize
        channels = int(h.get("elementnumberofchannels", "1") or 1)
        skip = int(h.get("headersize", "0") or 0)
    except (KeyError, ValueError):
        raise CorruptInput("MetaImage header without a valid DimSize or ElementType", path) from None
    size = channels
    for d in dims:
        size *= d
    compressed = h.get("compresseddata", "false").lower() == "true"
    binary = h.get("binarydata", "true").lower() != "false"
    return {"size": size if not binary else size * elem,
            "encoding": "zlib" if compressed else ("raw" if binary else "ascii"),
            "byte_skip": max(skip, -1), "file": h.get("elementdatafile", "")}


def point_to(header: bytes, name: str) -> bytes:
    """A scrubbed detached header naming `name` as its data file."""
    return _scrub.point_to(header, (b"elementdatafile",), b"=", name)
