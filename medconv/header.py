"""The native header of any file: DICOM elements or a backend's field -> value dict.

`load` reads it (never decoding pixel data), `to_json` gives the DICOM JSON model
(PS3.18 F.2) or a plain object, `lines` the dcmdump-like text, `lookup` answers
--get paths (keyword, tag, field, `Seq[0].Keyword`), `differences` compares the
files of a DICOM series.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

from .errors import CorruptInput, InputError, MedconvError

# Values larger than this many bytes are binary bulk data in JSON (omitted unless --bulk).
BULK_THRESHOLD = 1024
# Deferred reading keeps large values (pixel data above all) on disk until asked for.
_DEFER = 4096
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW", "US or SS or OW"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


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
def _read_dicom_file(path: str):
    """Full Dataset with file meta; large values deferred so pixels are neither decoded nor loaded."""
    import pydicom

    from .dicom.scan import open_dicom

    try:
        fh = open_dicom(path)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A gzip-inflated buffer cannot be re-opened by name, so it is read whole.
            defer = _DEFER if hasattr(fh, "name") else None
            ds = pydicom.dcmread(fh if defer is None else path, defer_size=defer, force=True)
            if defer is not None and _transfer_syntax(ds) == _DEFLATED:
                # offsets of a deflated data set point into the inflated stream: nothing can be deferred
                defer = None
                fh.seek(0)
                ds = pydicom.dcmread(fh, force=True)
            # Parse every element now (sequences included) so malformed data fails here, cleanly.
            _walk_all(ds)
            if defer is not None:
                _warn_truncated(ds, path)
            return ds
    except MedconvError:
        raise
    except Exception as exc:
        raise CorruptInput(f"malformed DICOM header ({type(exc).__name__}: {exc})", path) from None
    finally:
        fh.close()


_DEFLATED = "1.2.840.10008.1.2.1.99"


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""


def _warn_truncated(ds, path) -> None:
    """Deferred values are not read, so say when the file ends before one of them does."""
    from pydicom.dataelem import RawDataElement

    from . import log

    size = os.path.getsize(path)
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset would read the deferred values
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length and raw.length != 0xFFFFFFFF:
            present = max(0, size - raw.value_tell)
            if present < raw.length:
                log.warn(f"{_tag(raw.tag)} is truncated: {present} of {raw.length} bytes present", path)


def _walk_all(ds) -> None:
    for elem, deferred in _elements(ds):
        if not deferred and elem.VR == "SQ":
            for item in elem.value:
                _walk_all(item)


def load(path, series=None) -> Header:
    """The header of `path` (for a DICOM directory: the first file of the chosen series)."""
    from . import formats

    path = os.fspath(path)
    fmt = formats.detect(path)
    if fmt != "dicom":
        data = formats.backend(fmt).read_header(path, fmt)
        return Header(path, fmt, data)
    if os.path.isdir(path) or series is not None:
        from . import dicom

        chosen = dicom.select(path, series)
        files = list(dict.fromkeys(f.path for f in chosen.frames))
        return Header(path, "dicom", _read_dicom_file(files[0]), files)
    return Header(path, "dicom", _read_dicom_file(path), [path])


# -- DICOM helpers ------------------------------------------------------------------------
def _elements(ds):
    """(element, summarise) in tag order; pixel data and deferred binary values stay on disk."""
    from pydicom.dataelem import RawDataElement

    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        deferred = isinstance(raw, RawDataElement) and raw.value is None and raw.length
        if int(tag) in _PIXEL_TAGS or (deferred and _raw_vr(raw, ds) in _BINARY_VRS):
            yield raw, True
        else:
            yield ds[tag], False


def _raw_vr(raw, ds) -> str:
    """VR of an element possibly still raw (implicit VR files store none)."""
    if raw.VR:
        return raw.VR
    from pydicom.datadict import dictionary_VR

    try:
        vr = dictionary_VR(raw.tag)
    except KeyError:
        return "UN"
    if " or " in vr:
        bits = ds.get("BitsAllocated", 16)
        return "OB" if isinstance(bits, int) and bits <= 8 and "OB" in vr else "OW"
    return vr


def _tag(tag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _name(elem, ds=None) -> str:
    tag = elem.tag
    if tag.is_private:
        creator = getattr(elem, "private_creator", None)
        if tag.is_private_creator:
            return "PrivateCreator"
        name = elem.name if elem.name and elem.name != "Private tag data" else "Unknown"
        return f"[{creator}] {name.strip('[]')}" if creator else name
    return elem.keyword or elem.name or "Unknown"


def _ts_name(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        return "unknown transfer syntax"
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _pixel_summary(raw, ds, pixel=True) -> str:
    length = getattr(raw, "length", None)
    encapsulated = length == 0xFFFFFFFF or getattr(raw, "is_undefined_length", False)
    if encapsulated or length is None or raw.value is not None:
        value = raw.value
        length = len(value) if value is not None else 0
    if not pixel:
        return f"<{length} bytes>"
    kind = "encapsulated, " if encapsulated else ""
    return f"<{length} bytes, {kind}{_ts_name(ds)}>"


def _value_text(elem, terminal: bool, width: int = 64) -> str:
    vr = elem.VR
    value = elem.value
    if vr in _BINARY_VRS or isinstance(value, (bytes, bytearray)):
        n = 0 if value is None else len(value)
        return f"<{n} bytes>"
    if value is None or value == "":
        return ""
    if elem.VM > 1:
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    if terminal and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def dicom_lines(ds, terminal: bool = False, depth: int = 0) -> list:
    """dcmdump-like lines: (depth, tag, vr, name, value) for file meta and data set, sequences nested."""
    out = []
    meta = getattr(ds, "file_meta", None) if depth == 0 else None
    if meta is not None and len(meta):
        out.append((0, "#", "", "File meta information", ""))
        out.extend(_dataset_lines(meta, ds, terminal, 0))
        out.append((0, "#", "", "Data set", ""))
    out.extend(_dataset_lines(ds, ds, terminal, depth))
    return out


def _dataset_lines(ds, root, terminal, depth) -> list:
    out = []
    from pydicom.datadict import keyword_for_tag

    for elem, summarise in _elements(ds):
        tag = _tag(elem.tag)
        if summarise:
            pixel = int(elem.tag) in _PIXEL_TAGS
            name = keyword_for_tag(elem.tag) or ("PrivateData" if elem.tag.is_private else "Unknown")
            out.append((depth, tag, _raw_vr(elem, ds), name, _pixel_summary(elem, root, pixel)))
            continue
        if elem.VR == "SQ":
            n = len(elem.value)
            out.append((depth, tag, "SQ", _name(elem), f"({n} item{'s' if n != 1 else ''})"))
            for i, item in enumerate(elem.value, 1):
                out.append((depth + 1, ">", "", f"Item {i}", ""))
                out.extend(_dataset_lines(item, root, terminal, depth + 1))
            continue
        out.append((depth, tag, elem.VR, _name(elem), _value_text(elem, terminal)))
    return out


# -- generic (non-DICOM) helpers ----------------------------------------------------------
def dict_lines(data, depth: int = 0) -> list:
    """(depth, name, value_text) rows of a nested dict/list header."""
    from .cli.render import format_get

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
    from .cli.render import format_get

    return {k: (f"{format_get(v)} ({', '.join(parts)})" if parts else v) for k, (v, parts) in out.items()
            if k not in folded}


def _is_matrix(value) -> bool:
    return all(isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v) for v in value)


# -- JSON ---------------------------------------------------------------------------------
_OMIT = "medconv:omitted"


def _strip_omitted(node):
    if isinstance(node, dict):
        if node.get("BulkDataURI") == _OMIT:
            del node["BulkDataURI"]
        for v in node.values():
            _strip_omitted(v)
    elif isinstance(node, list):
        for v in node:
            _strip_omitted(v)
    return node


def dicom_json(ds, bulk: bool = False) -> dict:
    """The DICOM JSON model of file meta + data set; bulk data inline only with `bulk`."""
    kwargs = {} if bulk else {"bulk_data_threshold": BULK_THRESHOLD, "bulk_data_element_handler": lambda e: _OMIT}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            out.update(meta.to_json_dict(**kwargs))
        out.update(_top_level_json(ds, bulk, kwargs))
    return _strip_omitted(out)


def _top_level_json(ds, bulk, kwargs) -> dict:
    """Without --bulk, deferred binary values (pixel data) are described, never read from disk."""
    if bulk:
        return ds.to_json_dict(**kwargs)
    from pydicom.dataset import Dataset

    kept = Dataset()
    skipped = {}
    for elem, summarise in _elements(ds):
        if summarise and (getattr(elem, "length", None) or 0) > BULK_THRESHOLD and elem.value is None:
            skipped[f"{int(elem.tag):08X}"] = {"vr": _raw_vr(elem, ds)}
        else:
            kept.add(ds[elem.tag])
    kept.set_original_encoding(ds.is_implicit_VR, ds.is_little_endian, ds.original_character_set)
    doc = kept.to_json_dict(**kwargs)
    doc.update(skipped)
    return dict(sorted(doc.items()))


def to_json(header: Header, bulk: bool = False):
    from .cli.render import jsonable

    if header.is_dicom:
        return dicom_json(header.data, bulk)
    return jsonable(header.data)


# -- lookup -------------------------------------------------------------------------------
_TAG_RE = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")
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


def _dicom_tag(name: str):
    from pydicom.datadict import tag_for_keyword

    m = _TAG_RE.match(name)
    if m:
        return int(m.group(1) + m.group(2), 16)
    return tag_for_keyword(name)


def _missing(field_name: str, path: str):
    return InputError(f"no header field {field_name!r}", path)


def lookup(header: Header, field_name: str):
    """The value of a field, keyword, tag or path into sequences/nested fields (InputError if absent)."""
    segments = _split(field_name)
    if not segments:
        raise _missing(field_name, header.path)
    if header.is_dicom:
        return _dicom_lookup(header, field_name, segments)
    node = header.data
    for name, indexes in segments:
        if not isinstance(node, dict):
            raise _missing(field_name, header.path)
        if name in node:
            node = node[name]
        else:
            folded = [k for k in node if str(k).lower() == name.lower()]
            if len(folded) != 1:
                raise _missing(field_name, header.path)
            node = node[folded[0]]
        node = _index(node, indexes, header, field_name)
    return node


def _index(node, indexes, header, field_name):
    for i in indexes:
        if isinstance(node, (str, bytes, dict)):
            raise _missing(field_name, header.path)
        try:
            node = node[i]
        except (IndexError, KeyError, TypeError):
            raise _missing(field_name, header.path) from None
    return node


def _dicom_lookup(header, field_name, segments):
    ds = header.data
    node = ds
    for n, (name, indexes) in enumerate(segments):
        last = n == len(segments) - 1
        tag = _dicom_tag(name)
        if tag is None:
            raise _missing(field_name, header.path)
        holder = node
        if n == 0 and (tag >> 16) == 0x0002 and getattr(ds, "file_meta", None) is not None:
            holder = ds.file_meta
        if tag not in holder:
            raise _missing(field_name, header.path)
        if tag in _PIXEL_TAGS:
            if indexes or not last:
                raise _missing(field_name, header.path)
            return _pixel_summary(holder.get_item(tag, keep_deferred=True), ds)
        elem = holder[tag]
        if elem.VR == "SQ":
            if not indexes:
                if last:
                    return _plain(elem)
                raise _missing(field_name, header.path)
            if len(indexes) > 1:
                raise _missing(field_name, header.path)
            node = _index(elem.value, indexes, header, field_name)
            if last:
                _missing_seq(field_name, header.path)
            continue
        # only a sequence has elements inside it
        if not last or len(indexes) > 1:
            raise _missing(field_name, header.path)
        value = _plain(elem)
        if indexes:
            return _index(value if isinstance(value, list) else [value], indexes, header, field_name)
        return value
    raise _missing(field_name, header.path)


def _missing_seq(field_name, path):
    raise InputError(f"{field_name!r} is a sequence item; name an element inside it", path)


def _plain(elem):
    """A DICOM value as plain Python (multi-values as lists; binary as its length)."""
    value = elem.value
    if elem.VR == "SQ":
        return f"({len(value)} items)"
    if elem.VR in _BINARY_VRS or isinstance(value, (bytes, bytearray)):
        return f"<{0 if value is None else len(value)} bytes>"
    if elem.VM > 1:
        return [_scalar(v) for v in value]
    return _scalar(value) if value is not None else ""


def _scalar(v):
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    return str(v)


# -- series differences -------------------------------------------------------------------
def differences(header: Header, limit: int = 3) -> list:
    """Elements whose values differ across the files of the series: tag, name, distinct, values."""
    import pydicom

    seen: dict = {}
    order: list = []
    n_files = len(header.files)
    for path in header.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from .dicom.scan import open_dicom

                with open_dicom(path) as fh:
                    ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            except Exception as exc:
                raise CorruptInput(f"malformed DICOM header ({type(exc).__name__}: {exc})", path) from None
        values = {}
        meta = getattr(ds, "file_meta", None)
        for group in ([] if meta is None else meta, ds):
            for elem in group:
                values[int(elem.tag)] = (elem, _compare_text(elem))
        for tag, (elem, text) in values.items():
            if tag not in seen:
                seen[tag] = {"tag": _tag(elem.tag), "name": _name(elem), "values": {}}
                order.append(tag)
            seen[tag]["values"].setdefault(text, 0)
            seen[tag]["values"][text] += 1
    rows = []
    for tag in sorted(order):
        info = seen[tag]
        counts = info["values"]
        present = sum(counts.values())
        distinct = list(counts)
        if present < n_files:
            distinct.append("(absent)")
        if len(distinct) <= 1:
            continue
        rows.append({"tag": info["tag"], "name": info["name"], "distinct": len(distinct), "files": n_files,
                     "values": distinct[:limit]})
    return rows


def _compare_text(elem) -> str:
    if elem.VR == "SQ":
        return repr([sorted((str(e.tag), str(e.value)) for e in item) for item in elem.value])
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return _value_text(elem, terminal=True)
