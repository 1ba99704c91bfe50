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


def resolve_format_name(name: str) -> str:
    key = name.lower().lstrip(".")
    key = ALIASES.get(key, key)
    if key not in BY_NAME:
        raise UsageError(f"unknown format {name!r}; choose from {', '.join(sorted(BY_NAME))}")
    return key


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


__all__ = ["RASTER", "backend", "detect", "format_for_output", "list_formats", "resolve_format_name"]
