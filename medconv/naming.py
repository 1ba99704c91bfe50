"""Output names for many inputs: template fields sanitised into safe file-name components."""
from __future__ import annotations

import os
import re

from . import log
from .errors import UsageError

EXTENSIONS = {"nifti1": ".nii.gz", "nifti2": ".nii.gz", "analyze": ".hdr", "metaimage": ".mha", "nrrd": ".nrrd",
              "minc": ".mnc", "mgh": ".mgz", "png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp",
              "dicom": "/"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_COMPONENT = 120


def sanitise(value) -> str:
    """A value as one safe file-name component: no separators, no '..', no control characters."""
    text = _UNSAFE.sub("_", str(value)).strip("._") or "x"
    return text[:MAX_COMPONENT]


def stem_of(path: str) -> str:
    from .convert import _stem

    return _stem(path)


def fields_for(path: str, index: int, metadata: dict | None = None) -> dict:
    metadata = metadata or {}
    parent = os.path.basename(os.path.dirname(os.path.abspath(os.path.normpath(path))))
    return {"stem": stem_of(path), "parent": parent, "index": index,
            "series_number": metadata.get("series_number", ""),
            "series_description": metadata.get("series_description", ""),
            "modality": metadata.get("modality", ""), "protocol": metadata.get("protocol", "")}


def render_name(template: str, fields: dict) -> str:
    try:
        raw = {k: sanitise(v) if v != "" else "" for k, v in fields.items()}
        name = template.format(**raw)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"bad --name template {template!r} ({exc})") from None
    return sanitise(name)


def plan_outputs(paths, outdir: str, template: str, fmt_name: str) -> list:
    """[(src, dst)] with distinct, deterministic destinations (a warning for each clash)."""
    from .formats import resolve_format_name

    ext = EXTENSIONS[resolve_format_name(fmt_name)]
    plan, seen = [], {}
    for index, src in enumerate(paths):
        name = render_name(template, fields_for(src, index))
        candidate = name
        n = seen.get(candidate.lower(), 0)
        if n:
            candidate = f"{name}_{n + 1}"
            log.warn(f"output name {name!r} is used by an earlier input; writing {candidate!r}", src)
        seen[name.lower()] = n + 1
        seen.setdefault(candidate.lower(), 1)
        dst = os.path.join(outdir, candidate + ext) if ext != "/" else os.path.join(outdir, candidate) + os.sep
        plan.append((src, dst))
    return plan
