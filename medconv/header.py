"""The native header of any file: DICOM elements or a backend's field -> value dict.

`load` reads it (never decoding pixel data), `to_json` gives the DICOM JSON model
(PS3.18 F.2) or a plain object, `dict_lines`/`dicom_lines` the text rows, `lookup` answers
--get paths (keyword, tag, field, `Seq[0].Keyword`), `differences` compares the
files of a DICOM series. Each format's backend reads its own header; the DICOM one is
read, printed and searched by medconv.dicom.dump (imported only for DICOM).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .errors import InputError


@dataclass
class Header:
    """One file's header: `fmt` names the format; `data` is a pydicom Dataset or a dict."""

    path: str
    fmt: str
    data: object
    files: list = field(default_factory=list)  # the series' files (DICOM directories)

    @property
    def is_dicom(self) -> bool:
        return self.fmt == "dicom"


# -- reading -------------------------------------------------------------------------------
def load(path, series=None) -> Header:
    """The header of `path` (for a DICOM directory: the first file of the chosen series)."""
    from . import formats

    path = os.fspath(path)
    fmt = formats.detect(path)
    if fmt != "dicom":
        data = formats.backend(fmt).read_header(path, fmt)
        return Header(path, fmt, data)
    from .dicom import dump

    if os.path.isdir(path) or series is not None:
        from . import dicom

        chosen = dicom.select(path, series)
        files = list(dict.fromkeys(f.path for f in chosen.frames))
        return Header(path, "dicom", dump.read(files[0]), files)
    return Header(path, "dicom", dump.read(path), [path])


def load_many(paths, *, series=None, keep_going: bool = False, on_error=None) -> tuple:
    """The headers of many paths, read one after the other (cheap, and printed in order):
    (headers, failures). Under `keep_going`, failures are reported through on_error(path, error)
    (default: a warning); end with batch.finish."""
    from . import batch, log

    def report(path, exc):
        log.warn(f"skipped: {exc.message}", exc.path or path)

    return batch.run(paths, lambda p: load(p, series=series), keep_going=keep_going, on_error=on_error or report,
                     jobs=1)


# -- text ----------------------------------------------------------------------------------
def dicom_lines(ds, terminal: bool = False, depth: int = 0) -> list:
    """dcmdump-like lines: (depth, tag, vr, name, value) for file meta and data set, sequences nested."""
    from .dicom import dump

    return dump.lines(ds, terminal, depth)


def dict_lines(data, depth: int = 0) -> list:
    """(depth, name, value_text) rows of a nested dict/list header."""
    from .values import format_get

    out = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        name = f"[{key}]" if isinstance(key, int) else str(key)
        if isinstance(value, dict):
            out.append((depth, name, ""))
            out.extend(dict_lines(value, depth + 1))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value) \
                and not _is_matrix(value):
            out.append((depth, name, f"({len(value)} item{'s' if len(value) != 1 else ''})"))
            out.extend(dict_lines(list(value), depth + 1))
        elif isinstance(value, (bytes, bytearray)):
            out.append((depth, name, f"<{len(value)} bytes>"))
        else:
            out.append((depth, name, format_get(value) if not isinstance(value, str) else value))
    return out


_NIFTI_DECODED = {"xyzt_units": ("xyzt_units_space", "xyzt_units_time"),
                  "dim_info": ("freq_dim", "phase_dim", "slice_dim")}


def text_fields(header: Header):
    """The fields to print as text: NIfTI/Analyze codes shown beside their numbers, once."""
    data = header.data
    if header.fmt not in ("nifti1", "nifti2", "analyze") or not isinstance(data, dict):
        return data
    out = {}
    folded = set()
    for key, value in data.items():
        parts = []
        name = data.get(f"{key}_name")
        if isinstance(name, str) and not isinstance(value, (dict, list, tuple)):
            parts.append(name)
            folded.add(f"{key}_name")
        for sub in _NIFTI_DECODED.get(key, ()):
            if sub in data:
                parts.append(f"{sub.split('_')[-1] if key == 'xyzt_units' else sub}={data[sub]}")
                folded.add(sub)
        out[key] = (value, parts)
    from .values import format_get

    return {k: (f"{format_get(v)} ({', '.join(parts)})" if parts else v) for k, (v, parts) in out.items()
            if k not in folded}


def _is_matrix(value) -> bool:
    return all(isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v) for v in value)


# -- JSON ---------------------------------------------------------------------------------
def dicom_json(ds, bulk: bool = False) -> dict:
    """The DICOM JSON model of file meta + data set; bulk data inline only with `bulk`."""
    from .dicom import dump

    return dump.to_json(ds, bulk)


def to_json(header: Header, bulk: bool = False):
    from .values import jsonable

    if header.is_dicom:
        return dicom_json(header.data, bulk)
    return jsonable(header.data)


# -- lookup -------------------------------------------------------------------------------
_SEG_RE = re.compile(r"^([^\[\]]+)((?:\[-?\d+\])*)$")


def _split(path: str) -> list:
    """'Seq[0].Key' -> [('Seq', [0]), ('Key', [])]; tags with commas and parentheses survive."""
    segments = []
    for part in path.split("."):
        m = _SEG_RE.match(part.strip())
        if not m:
            return []
        indexes = [int(i) for i in re.findall(r"\[(-?\d+)\]", m.group(2))]
        segments.append((m.group(1), indexes))
    return segments


def _missing(field_name: str, path: str):
    return InputError(f"no header field {field_name!r}", path)


def lookup(header: Header, field_name: str):
    """The value of a field, keyword, tag or path into sequences/nested fields (InputError if absent)."""
    segments = _split(field_name)
    if not segments:
        raise _missing(field_name, header.path)
    if header.is_dicom:
        from .dicom import dump

        return dump.lookup(header.data, segments, field_name, header.path)
    node = header.data
    for n, (name, indexes) in enumerate(segments):
        if not isinstance(node, dict):
            raise _missing(field_name, header.path)
        found = _field(node, name)
        if found is None and n == 0:
            # a field of a group (EXIF `Make`, NRRD key/value pairs) by its own name, when one group has it
            groups = [g for g in node.values() if isinstance(g, dict) and _field(g, name) is not None]
            found = _field(groups[0], name) if len(groups) == 1 else None
        if found is None:
            raise _missing(field_name, header.path)
        node = _index(found[0], indexes, header, field_name)
    return node


def _field(node: dict, name: str):
    """(value,) of the field `name` (exact, else the one case-insensitive match), or None."""
    if name in node:
        return (node[name],)
    folded = [k for k in node if str(k).lower() == name.lower()]
    return (node[folded[0]],) if len(folded) == 1 else None


def _index(node, indexes, header, field_name):
    for i in indexes:
        if isinstance(node, (str, bytes, dict)):
            raise _missing(field_name, header.path)
        try:
            node = node[i]
        except (IndexError, KeyError, TypeError):
            raise _missing(field_name, header.path) from None
    return node


# -- series differences -------------------------------------------------------------------
def differences(header: Header, limit: int = 3) -> list:
    """Elements whose values differ across the files of the series: tag, name, distinct, values."""
    from .dicom import dump

    return dump.differences(header.files, limit)
