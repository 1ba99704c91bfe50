"""Format detection (content first, extension second), backend lookup and dispatch (scrub, streaming)."""
from __future__ import annotations

import importlib
import os

from .. import fileio
from ..errors import CorruptInput, InputError, OutputError, UnsupportedFormat, UsageError
from . import _sniff
from ._registry import ALIASES, ALL_DTYPES, BY_NAME, CAPABILITIES, FORMATS, RASTER, Format


def list_formats():
    return FORMATS


def _ext_matches(path: str, fmt: Format) -> bool:
    low = path.lower()
    return any(low.endswith(e) for e in fmt.extensions)


def formats_for_extension(path: str) -> list:
    return [f for f in FORMATS if _ext_matches(path, f)]


def _paired(path: str):
    """The format whose two-file images (header + data) `path` names one file of, else None."""
    low = path.lower()
    for f in FORMATS:
        # a header's extension, or a data file's that the format reads (an .img; not any .raw)
        if any(low.endswith(h) or (d in f.extensions and low.endswith(d)) for h, d in f.pairs):
            return f
    return None


def files(path: str, fmt: str | None = None) -> list:
    """The files that make up one image on disk: the path first, then its partner (the .img of a
    .hdr, the .hdr of an .img) or the data file a detached header names (MetaImage .mhd, NRRD
    .nhdr; its default name when the header is not there yet). `fmt` (the format read from the
    file) asks its backend, which also finds data files named by an attached header."""
    f = BY_NAME[fmt] if fmt else None
    if f is None or not f.pairs:
        f = _paired(path)  # by the name (a NIfTI-2 pair is read as one, without a row of its own)
    if f is None:
        return [path]
    return backend(f.name).files(path)


def header_files(paths) -> set:
    """The files among `paths`' companions that are not images of their own: the data file of
    each header in `paths` (.img of a .hdr, .raw of a .mhd), as absolute paths."""
    skip = set()
    for p in paths:
        f = _paired(p)
        if f is not None and p.lower().endswith(f.pairs[0][0]):
            skip.update(os.path.abspath(q) for q in files(p)[1:])
    return skip


def header_and_data(path: str, name: str) -> list:
    """The files of a text-header format `name`: the header and the data files it names; for a
    detached header not written yet, the data file a write names by default."""
    if os.path.isfile(path):
        return named_files(path)
    header, data = BY_NAME[name].pairs[0]
    if path.lower().endswith(header):
        return [path, path[: -len(header)] + data]
    return [path]


def named_files(path: str) -> list:
    """A text header (MetaImage, NRRD) plus the data files it names."""
    found = [path]
    try:
        with open(path, "rb") as fh:
            text = fh.read(65536).decode("latin-1", "replace")
    except OSError:
        return found
    for line in text.splitlines():
        key, _, value = line.partition("=") if "=" in line else line.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if key in ("elementdatafile", "data file", "datafile") and value and value.upper() not in ("LOCAL", "LIST") \
                and "%" not in value:
            found.append(os.path.join(os.path.dirname(path), value))
    return found


def values_to_write(volume, name: str, path: str, storable):
    """The voxels a backend of format `name` writes, `storable(volume, path)`, a 2D image as one
    slice of a 3D grid; a volume with more dimensions than the format holds (its row's ndims) is
    refused first."""
    most = max(BY_NAME[name].ndims)
    if volume.ndim > most:
        raise OutputError(f"{BY_NAME[name].label or name} holds at most {most} dimensions, not {volume.ndim}", path)
    arr = storable(volume, path)
    if volume.ndim == 2:
        arr = arr.reshape(volume.grid_shape + (1,))
    return arr


def capable(name: str, capability: str) -> bool:
    """Whether the backend of format `name` declares `capability` (see CAPABILITIES)."""
    return BY_NAME[name].can(capability)


def scrub(name: str, data: bytes, path: str, *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, [(companion path, its new bytes)]) of the file `path`
    of format `name`, whose bytes are `data` (gzipped for .nii.gz and .mgz): its identifying header
    text and every byte no header field accounts for removed, in it and in its data file (a detached
    one, the .img of a .hdr); with `verify`, MINC and pictures are decoded again and compared."""
    if not capable(name, "scrub"):
        raise UnsupportedFormat(f"no scrubber for {name}", path)
    return backend(name).scrub(data, path, name, verify=verify)


def point_to(name: str, header: bytes, data_name: str) -> bytes:
    """A scrubbed header of format `name` naming `data_name` as its detached data file (any other
    header as it is: its data file's name follows its own)."""
    return backend(name).point_to(header, data_name) if capable(name, "detached") else header


def stream_slabs(volume, planes: int):
    """The voxels of `volume` slab by slab, read while inflating, when its reader left it a
    stream (see Volume.stream); None when it has to be loaded."""
    if volume.stream is None or volume.data is not None or not capable(volume.format, "stream"):
        return None
    return backend(volume.format).stream_slabs(volume, planes)


def read_head(path: str) -> bytes:
    """The first bytes of a file (decompressed when gzip), for the sniffers."""
    raw = fileio.read_bytes(path, _sniff.HEAD_SIZE) if not path.lower().endswith(".gz") else None
    if raw is None or raw[:2] == fileio.GZIP_MAGIC:
        raw = fileio.read_bytes(path, _sniff.HEAD_SIZE)
    return raw


def gzip_head(path: str):
    """The first HEAD_SIZE inflated bytes of a gzip file's first member (bytes after that member
    cannot make it an image), for the sniffers; None when the stream cannot be inflated."""
    import zlib

    try:
        with open(path, "rb") as fh:
            return zlib.decompressobj(31).decompress(fh.read(1 << 16), _sniff.HEAD_SIZE)
    except (OSError, zlib.error):
        return None


def detect(path) -> str:
    """Name of the format of `path` (a file or a directory)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise InputError("no such file or directory", path)
    if os.path.isdir(path):
        return "dicom"
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", path)
    if os.path.getsize(path) == 0:
        raise CorruptInput("empty file", path)
    from ..errors import guard

    with guard(path):
        head = read_head(_header_of(path))
    found = [BY_NAME[name] for name in sniff(head)]
    if found:
        by_ext = [f for f in found if _ext_matches(path, f)]
        return (by_ext or found)[0].name
    by_ext = formats_for_extension(path)
    if by_ext:
        names = " or ".join(sorted({f.name for f in by_ext}))
        raise CorruptInput(f"not a valid {names} file (its content is not recognised)", path)
    raise UnsupportedFormat("unsupported or unrecognised file format", path)


def is_pair_data(path: str) -> bool:
    """Whether `path` names the data file of a two-file image (an .img), which goes with its header."""
    f = _paired(path)
    return f is not None and not any(path.lower().endswith(h) for h, _ in f.pairs)


def _header_of(path: str) -> str:
    """For the data file of a two-file image (an .img), its header, which holds what sniffing needs."""
    if not is_pair_data(path):
        return path
    return backend(_paired(path).name).header_of(path)


#: how many first bytes of a file (decompressed when gzip) the sniffers look at
HEAD_SIZE = _sniff.HEAD_SIZE


def sniff(head: bytes) -> list:
    """The names of the formats whose content sniffer accepts `head`, in registry order."""
    return [f.name for f in FORMATS if f.sniff(head)]


def backend(name: str):
    """The backend module of a format, imported on first use."""
    module = BY_NAME[name].module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        from ..errors import MissingDependency

        missing = exc.name or module
        if missing.startswith("medconv"):
            raise UnsupportedFormat(f"this medconv build has no {name} backend") from None
        raise MissingDependency(f"reading {name} needs the Python package {missing!r}: pip install {missing}") from None


#: the file each format name writes by default (a DICOM series is a directory)
DEFAULT_EXTENSIONS = {f.name: f.default_extension for f in FORMATS}
#: every extension medconv writes, as --to takes it: the format, and exactly that file (a DICOM
#: series, whatever its token, is a folder)
OUTPUT_EXTENSIONS = {e.lstrip("."): (f.name, "/" if f.default_extension == "/" else e)
                     for f in sorted(FORMATS, key=lambda f: f.default_extension == "/") for e in f.written}
#: the registered two-part extensions (.nii.gz, .img.gz): a file's stem is what precedes them
GZ_EXTENSIONS = tuple(dict.fromkeys(e for f in FORMATS for e in f.extensions if e.endswith(".gz")))
#: the same with the compressed header of a pair (.hdr.gz): what a written file's name ends in
GZ_FILE_EXTENSIONS = tuple(dict.fromkeys(e for f in FORMATS for e in f.extensions + tuple(h for h, _ in f.pairs)
                                         if e.endswith(".gz")))
#: the data files' extensions of two-file images (.img of a .hdr, .raw/.zraw of a .mhd, ...)
DATA_EXTENSIONS = tuple(dict.fromkeys(d for f in FORMATS for _, d in f.pairs))
#: every extension a file of a registered format has (data files included), longest first
FILE_EXTENSIONS = tuple(sorted(dict.fromkeys(e for f in FORMATS for e in f.extensions + sum(f.pairs, ())),
                               key=len, reverse=True))
#: what --to accepts (and completes): format names, then extensions
TO_CHOICES = tuple(f.name for f in FORMATS if f.can_write) + ("nifti",) + tuple(
    k for k in OUTPUT_EXTENSIONS if k not in BY_NAME)


def output_choice(token: str) -> tuple:
    """(format, extension) that --to TOKEN writes: an extension means exactly that file (`mgh` is
    .mgh, `mgz` .mgz), a format name its default file (`nifti1` -> .nii.gz, `metaimage` -> .mha,
    `jpeg` -> .jpg, `tiff` -> .tif, `dicom` -> a series folder)."""
    key = token.lower().strip().lstrip(".")
    if key in OUTPUT_EXTENSIONS and key not in ("jpeg", "tiff"):
        return OUTPUT_EXTENSIONS[key]
    if key in BY_NAME:
        return key, DEFAULT_EXTENSIONS[key]
    if key in ALIASES:
        name = ALIASES[key]
        return name, DEFAULT_EXTENSIONS[name]
    raise UsageError(f"unknown output format {token!r}; choose a format ({', '.join(f.name for f in FORMATS)}) "
                     f"or an extension ({', '.join(OUTPUT_EXTENSIONS)})")


def extension_in_name(name: str):
    """(name without it, token) when a name ends in an extension medconv writes, else (name, None)."""
    low = name.lower()
    for token in sorted(OUTPUT_EXTENSIONS, key=len, reverse=True):
        if low.endswith("." + token) and len(name) > len(token) + 1:
            return name[: -len(token) - 1], token
    return name, None


def resolve_format_name(name: str) -> str:
    return output_choice(name)[0]


def format_for_output(path: str, to: str | None = None) -> str:
    """The format to write: `to` when given, else from the destination's extension."""
    if to:
        return resolve_format_name(to)
    if path.endswith(("/", os.sep)):
        return "dicom"
    paired = _paired(path)
    if paired is not None:
        return paired.name  # NIfTI-1: a pair keeps orientation; --to analyze writes Analyze 7.5
    for f in FORMATS:
        if f.written and _ext_matches(path, f):
            return f.name
    raise UsageError(f"cannot tell the output format from {os.path.basename(path)!r}; use --to FORMAT")


__all__ = ["ALL_DTYPES", "BY_NAME", "CAPABILITIES", "DATA_EXTENSIONS", "DEFAULT_EXTENSIONS", "FILE_EXTENSIONS", "FORMATS", "GZ_EXTENSIONS",
           "GZ_FILE_EXTENSIONS", "HEAD_SIZE", "OUTPUT_EXTENSIONS", "RASTER", "TO_CHOICES", "backend",
           "capable", "detect", "extension_in_name", "files", "format_for_output", "gzip_head", "header_files",
           "is_pair_data", "list_formats", "output_choice", "point_to", "resolve_format_name", "scrub", "sniff",
           "stream_slabs", "values_to_write"]
