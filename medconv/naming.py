"""Output names for many inputs: template fields sanitised into safe file-name components."""
from __future__ import annotations

import os
import re
import string

from . import log
from .errors import UsageError

FIELDS = ("stem", "parent", "series_number", "series_description", "modality", "protocol", "index")
#: fields only a read of the input (or its DICOM series list) can fill
METADATA_FIELDS = ("series_number", "series_description", "modality", "protocol")
DEFAULT_TEMPLATE = "{stem}"
SERIES_TEMPLATE = "{series_number}_{series_description}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_DOTS = re.compile(r"\.{2,}")
_SPEC = re.compile(r"^0?[1-9]?d?$")
_DIGITS = re.compile(r"^[0-9]{1,18}$")
#: bounded so that name + clash suffix + extension stays well under NAME_MAX (255 bytes)
MAX_COMPONENT = 120
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def sanitise(value) -> str:
    """A value as one safe file-name component: ASCII letters, digits and ._+- only; no path
    separators, no '..', no control characters, no leading dot or dash, bounded length, never empty."""
    text = _UNSAFE.sub("_", str(value))
    # no leading '-' either: such a name reads as an option to the next tool in the pipeline
    text = _DOTS.sub(".", text).strip("._").lstrip("-._") or "x"
    text = text[:MAX_COMPONENT].rstrip("._") or "x"
    if text.split(".")[0].lower() in _RESERVED:  # names Windows shares refuse
        text = "_" + text
    return text


def stem_of(path: str) -> str:
    """A file's name without its extension (.nii.gz, .img.gz and .tar.gz whole); a folder's name."""
    name = os.path.basename(os.path.normpath(path))
    from .formats import GZ_EXTENSIONS

    for ext in (*GZ_EXTENSIONS, ".tar.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0] or "image"


def fields_for(path: str, index: int, metadata: dict | None = None) -> dict:
    """The raw (unsanitised) template fields of one input."""
    metadata = metadata or {}
    parent = os.path.basename(os.path.dirname(os.path.abspath(os.path.normpath(path))))

    def meta(key):
        value = metadata.get(key)
        return "" if value is None else value

    return {"stem": stem_of(path), "parent": parent, "index": index,
            "series_number": meta("series_number"), "series_description": meta("series_description"),
            "modality": meta("modality"), "protocol": meta("protocol")}


def template_fields(template: str) -> set:
    """The field names a template uses; a UsageError for anything but plain known fields."""
    used = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"bad --name template {template!r} ({exc})") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise UsageError(f"unknown field {{{field}}} in --name template; fields: "
                             + " ".join(f"{{{f}}}" for f in FIELDS))
        # only zero-padding of numbers: attribute access, conversions and huge widths are refused
        if conversion or (spec and not _SPEC.match(spec)):
            raise UsageError(f"--name template field {{{field}}} takes only a width like {{{field}:03d}}")
        used.add(field)
    return used


def render_name(template: str, fields: dict) -> str:
    """Fill the template; every field is sanitised first and the whole name once more."""
    template_fields(template)
    # a width like {series_number:03d} applies to numbers (or digit strings); a field that is
    # missing (an input that is not DICOM, an empty SeriesNumber) or not a number renders as its
    # sanitised text without it, so one such input never breaks the batch
    pieces = []
    for literal, key, spec, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if key is None:
            continue
        if key not in fields:
            raise UsageError(f"bad --name template {template!r} (no field {key!r})")
        value = fields[key]
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif spec and isinstance(value, str) and _DIGITS.match(value.strip()):
            number = int(value.strip())  # ASCII digits, at most 18: a 5,000-digit value stays text
        if number is not None:
            pieces.append(format(number, spec or ""))
        else:
            pieces.append(sanitise(value) if value not in ("", None) else "")
    name = "".join(pieces)
    return sanitise(name)


def unique_names(names, sources=None) -> list:
    """Distinct names, deterministic: a later duplicate gets _2, _3, ... (case-insensitively,
    so the outputs also stay apart on case-insensitive file systems), with a warning."""
    taken = {n.lower() for n in names if n}
    used, out = set(), []
    for i, name in enumerate(names):
        candidate = name
        if candidate.lower() in used:
            n = 2
            while f"{name}_{n}".lower() in used or f"{name}_{n}".lower() in taken:
                n += 1
            candidate = f"{name}_{n}"
            src = sources[i] if sources else None
            log.warn(f"output name {name!r} is already used by an earlier input; writing {candidate!r} instead", src)
        used.add(candidate.lower())
        out.append(candidate)
    return out


def destination(outdir: str, name: str, fmt_name: str) -> str:
    """outdir/name plus the extension `fmt_name` (a format name or an extension, as --to takes) writes."""
    from .formats import output_choice

    ext = output_choice(fmt_name)[1]
    if ext == "/":
        return os.path.join(outdir, name) + os.sep
    return os.path.join(outdir, name + ext)

