"""Format detection (content first, extension second) and backend lookup."""
from __future__ import annotations

import importlib
import os

from .. import io
from ..errors import CorruptInput, InputError, UnsupportedFormat, UsageError
from . import _sniff
from ._registry import ALIASES, BY_NAME, FORMATS, RASTER, Format


def list_formats():
    return FORMATS


def _ext_matches(path: str, fmt: Format) -> bool:
    low = path.lower()
    return any(low.endswith(e) for e in fmt.extensions)


def formats_for_extension(path: str) -> list:
    return [f for f in FORMATS if _ext_matches(path, f)]


def companion_header(path: str) -> str:
    """For an Analyze/NIfTI pair given by its .img, the .hdr beside it."""
    low = path.lower()
    for ext in (".img.gz", ".img"):
        if low.endswith(ext):
            base = path[: -len(ext)]
            for cand in (base + ".hdr", base + ".HDR", base + ".hdr.gz"):
                if os.path.exists(cand):
                    return cand
    return path


def read_head(path: str) -> bytes:
    """The first bytes of a file (decompressed when gzip), for the sniffers."""
    raw = io.read_bytes(path, _sniff.HEAD_SIZE) if not path.lower().endswith(".gz") else None
    if raw is None or raw[:2] == io.GZIP_MAGIC:
        raw = io.read_bytes(path, _sniff.HEAD_SIZE)
    return raw


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
        head = read_head(companion_header(path))
    found = [f for f in FORMATS if f.sniff(head)]
    if found:
        by_ext = [f for f in found if _ext_matches(path, f)]
        return (by_ext or found)[0].name
    by_ext = formats_for_extension(path)
    if by_ext:
        names = " or ".join(sorted({f.name for f in by_ext}))
        raise CorruptInput(f"not a valid {names} file (its content is not recognised)", path)
    raise UnsupportedFormat("unsupported or unrecognised file format", path)


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
DEFAULT_EXTENSIONS = {"nifti1": ".nii.gz", "nifti2": ".nii.gz", "analyze": ".hdr", "metaimage": ".mha",
                      "nrrd": ".nrrd", "minc": ".mnc", "mgh": ".mgz", "png": ".png", "jpeg": ".jpg",
                      "tiff": ".tif", "bmp": ".bmp", "dicom": "/"}
#: every extension medconv writes, as --to takes it: the format, and exactly that file
OUTPUT_EXTENSIONS = {
    "nii": ("nifti1", ".nii"), "nii.gz": ("nifti1", ".nii.gz"), "hdr": ("nifti1", ".hdr"),
    "img": ("nifti1", ".img"), "mhd": ("metaimage", ".mhd"), "mha": ("metaimage", ".mha"),
    "nrrd": ("nrrd", ".nrrd"), "nhdr": ("nrrd", ".nhdr"), "mgh": ("mgh", ".mgh"), "mgz": ("mgh", ".mgz"),
    "mnc": ("minc", ".mnc"), "png": ("png", ".png"), "jpg": ("jpeg", ".jpg"), "jpeg": ("jpeg", ".jpeg"),
    "tif": ("tiff", ".tif"), "tiff": ("tiff", ".tiff"), "bmp": ("bmp", ".bmp"), "dcm": ("dicom", "/"),
}
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
    low = path.lower()
    if low.endswith((".hdr", ".img", ".img.gz", ".hdr.gz")):
        return "nifti1"  # a pair keeps orientation; --to analyze writes Analyze 7.5
    for f in FORMATS:
        if f.name in ("nifti2", "analyze"):
            continue
        if _ext_matches(path, f):
            return f.name
    raise UsageError(f"cannot tell the output format from {os.path.basename(path)!r}; use --to FORMAT")


__all__ = ["DEFAULT_EXTENSIONS", "OUTPUT_EXTENSIONS", "RASTER", "TO_CHOICES", "backend", "detect", "extension_in_name",
           "format_for_output", "list_formats", "output_choice", "resolve_format_name"]
