"""The full DICOM header: every element (file meta, nested sequences, private tags), as text lines,
JSON and field lookup, and the elements that differ across the files of a series.

`read` gives a pydicom Dataset whose pixel data and other large values stay on disk (never decoded),
an element that cannot be parsed kept as its raw bytes; `lines` the dcmdump-like rows, `to_json` the
DICOM JSON model (PS3.18 F.2), `lookup` the value at a --get path, `differences` the per-series table.
"""
from __future__ import annotations

import os
import re
import warnings

from ..errors import CorruptInput, InputError, MedconvError
from .elements import DEFLATED, PIXEL_TAGS, UNDEFINED

# Binary values longer than this once base64-encoded (768 bytes) are bulk data in JSON (omitted unless --bulk):
# pydicom's bulk_data_threshold, applied the same way to values left on disk.
BULK_THRESHOLD = 1024
_BULK_BYTES = BULK_THRESHOLD // 4 * 3
# Deferred reading keeps large values (pixel data above all) on disk until asked for.
_DEFER = 4096
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW", "US or SS or OW"}
_PIXEL_TAGS = frozenset(PIXEL_TAGS)
# Bulk data by nature (PS3.18 F.2.7): omitted from --json without --bulk whatever their size, at any depth.
# Pixel data (also encapsulated), waveform, spectroscopy, overlay, curve and audio data, encapsulated documents.
_BULK_TAGS = _PIXEL_TAGS | {0x54001010, 0x56000020, 0x00420011}
_BULK_REPEATING = {(0x6000, 0x3000), (0x5000, 0x3000), (0x5000, 0x200C)}  # (60xx,3000), (50xx,3000), (50xx,200C)


def _is_bulk_tag(tag) -> bool:
    tag = int(tag)
    group, elem = tag >> 16, tag & 0xFFFF
    return tag in _BULK_TAGS or (group & 0xFF01, elem) in _BULK_REPEATING


# -- reading -------------------------------------------------------------------------------
def read(path: str):
    """Full Dataset with file meta; large values deferred so pixels are neither decoded nor loaded."""

    from .. import log
    from . import guards
    from .scan import open_dicom

    try:
        fh = open_dicom(path)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A gzip-inflated buffer cannot be re-opened by name, so it is read whole.
            defer = _DEFER if hasattr(fh, "name") else None
            ds = guards.dcmread(fh if defer is None else path, path, defer_size=defer, force=True)
            if defer is not None and _transfer_syntax(ds) == DEFLATED:
                # offsets of a deflated data set point into the inflated stream: nothing can be deferred
                defer = None
                fh.seek(0)
                ds = guards.dcmread(fh, path, force=True)
            # Parse every element now (sequences included): an element that cannot be parsed is kept as
            # its raw bytes, shown as <unreadable: ...> and reported, while everything else is shown.
            for where, problem in _walk_all(ds):
                log.warn(f"{where} is unreadable ({problem}); shown as <unreadable>", path)
            if defer is not None:
                _warn_truncated(ds, path)
            return ds
    except MedconvError:
        raise
    except Exception as exc:
        raise CorruptInput(f"malformed DICOM header ({type(exc).__name__}: {exc})", path) from None
    finally:
        fh.close()


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""


class Truncated(Exception):
    """A value the file ends inside of (shown as <unreadable: Truncated: N of M bytes present>)."""


def _warn_truncated(ds, path) -> None:
    """Deferred values are not read, so say when the file ends before one of them does."""
    from pydicom.dataelem import RawDataElement

    from .. import log

    size = os.path.getsize(path)
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset would read the deferred values
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length and raw.length != UNDEFINED:
            present = max(0, size - raw.value_tell)
            if present < raw.length:
                log.warn(f"{_tag(raw.tag)} is truncated: {present} of {raw.length} bytes present", path)
                # never read: reading a deferred value allocates the length it claims (gigabytes)
                ds._dict[tag] = _unreadable(raw, ds, Truncated(f"{present} of {raw.length} bytes present"))


def _walk_all(ds, where: str = "") -> list:
    """Parse every element (file meta, nested sequences); return [(where, problem)] for those that fail.

    A failing element is replaced by an Unreadable one (its raw bytes, VR UN) so every later
    rendering shows the rest of the data set and names the fault instead of stopping at it."""
    from pydicom.dataelem import RawDataElement

    problems = []
    meta = getattr(ds, "file_meta", None) if not where else None
    for holder in ([meta] if meta is not None else []) + [ds]:
        for tag in sorted(holder.keys()):
            raw = holder.get_item(tag, keep_deferred=True)
            if isinstance(raw, RawDataElement):
                deferred = raw.value is None and raw.length
                if int(tag) in _PIXEL_TAGS or (deferred and _raw_vr(raw, holder) in _BINARY_VRS):
                    continue
                try:
                    elem = holder[tag]
                except Exception as exc:  # any parse failure of one element
                    bad = _unreadable(raw, holder, exc)
                    holder._dict[tag] = bad  # bypasses __setitem__, which would parse again
                    problems.append((f"{where}{_tag(bad.tag)} {_name(bad)}", bad.error))
                    continue
            else:
                elem = raw
            if elem.VR == "SQ" and not _is_unreadable(elem):
                for i, item in enumerate(elem.value):
                    problems.extend(_walk_all(item, f"{where}{_tag(elem.tag)}[{i}]."))
    return problems


_UNREADABLE = []


def _unreadable_class():
    """A DataElement holding the raw bytes of an element that could not be parsed (made on first use:
    pydicom is imported only for DICOM)."""
    if not _UNREADABLE:
        from pydicom.dataelem import DataElement

        class Unreadable(DataElement):
            error = ""
            read_vr = "UN"

            def to_json_dict(self, bulk_data_element_handler, bulk_data_threshold):
                # a valid DICOM JSON element (VR UN, the raw bytes) plus what went wrong
                doc = super().to_json_dict(bulk_data_element_handler, bulk_data_threshold)
                doc["medconv:unreadable"] = f"<unreadable: {self.error}>"
                return doc

        _UNREADABLE.append(Unreadable)
    return _UNREADABLE[0]


def _unreadable(raw, ds, exc):
    value = raw.value if isinstance(raw.value, (bytes, bytearray)) else b""
    elem = _unreadable_class()(raw.tag, "OB", bytes(value), already_converted=True)
    elem.VR = "UN"  # set afterwards: pydicom would swap UN for the dictionary VR of a known tag
    elem.error = f"{type(exc).__name__}: {exc}"
    elem.read_vr = raw.VR or _raw_vr(raw, ds)
    if raw.tag.is_private and not raw.tag.is_private_creator:
        elem.private_creator = _creator_of(raw.tag, ds)
    return elem


def _is_unreadable(elem) -> bool:
    return bool(_UNREADABLE) and isinstance(elem, _UNREADABLE[0])


def _creator_of(tag, ds):
    """The private creator of a private element (None when its block has no creator element)."""
    from pydicom.tag import Tag

    block = Tag(tag.group, tag.element >> 8)
    if ds is None or ds.get_item(block, keep_deferred=True) is None:
        return None
    try:
        creator = ds[block]
    except Exception:  # an unreadable creator names nothing
        return None
    if _is_unreadable(creator):
        return None
    value = creator.value
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("latin-1")
    return str(value).strip() if value else None


# -- elements ------------------------------------------------------------------------------
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


def _raw_name(raw, ds) -> str:
    """Name of an element left on disk (deferred): private ones with their creator, as _name gives."""
    from pydicom.datadict import keyword_for_tag, private_dictionary_description

    tag = raw.tag
    if not tag.is_private:
        return keyword_for_tag(tag) or "Unknown"
    if tag.is_private_creator:
        return "PrivateCreator"
    creator = _creator_of(tag, ds)
    if not creator:
        return "PrivateData"
    try:
        name = private_dictionary_description(tag, creator)
    except KeyError:
        name = "Unknown"
    return f"[{creator}] {name.strip('[]')}"


def _ts_name(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        return "unknown transfer syntax"
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _pixel_summary(raw, ds, pixel=True) -> str:
    length = getattr(raw, "length", None)
    encapsulated = length == UNDEFINED or getattr(raw, "is_undefined_length", False)
    if encapsulated or length is None or raw.value is not None:
        value = raw.value
        length = len(value) if value is not None else 0
    if not pixel:
        return f"<{length} bytes>"
    kind = "encapsulated, " if encapsulated else ""
    return f"<{length} bytes, {kind}{_ts_name(ds)}>"


def _value_text(elem, terminal: bool, width: int = 64) -> str:
    if _is_unreadable(elem):
        return f"<unreadable: {elem.error}>"
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


def lines(ds, terminal: bool = False, depth: int = 0) -> list:
    """dcmdump-like lines: (depth, tag, vr, name, value) for file meta and data set, sequences nested."""
    out = []
    meta = getattr(ds, "file_meta", None) if depth == 0 else None
    if depth == 0:
        from . import scaling_note

        note = scaling_note(ds)
        if note:
            out.append((0, "#", "", note, ""))
    if meta is not None and len(meta):
        out.append((0, "#", "", "File meta information", ""))
        out.extend(_dataset_lines(meta, ds, terminal, 0))
        out.append((0, "#", "", "Data set", ""))
    out.extend(_dataset_lines(ds, ds, terminal, depth))
    return out


def _dataset_lines(ds, root, terminal, depth) -> list:
    out = []
    for elem, summarise in _elements(ds):
        tag = _tag(elem.tag)
        if summarise:
            pixel = int(elem.tag) in _PIXEL_TAGS
            out.append((depth, tag, _raw_vr(elem, ds), _raw_name(elem, ds), _pixel_summary(elem, root, pixel)))
            continue
        if _is_unreadable(elem):
            out.append((depth, tag, elem.read_vr, _name(elem), _value_text(elem, terminal)))
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


# -- JSON ----------------------------------------------------------------------------------
_OMIT = "medconv:omitted"


def _strip_omitted(doc: dict, bulk: bool) -> dict:
    """Drop the placeholder URIs of omitted values and, without --bulk, the values of bulk-data
    elements (pixel, waveform, overlay... data) of any size at any depth: only their "vr" stays."""
    for key, node in doc.items():
        if not isinstance(node, dict):
            continue
        if node.get("BulkDataURI") == _OMIT:
            del node["BulkDataURI"]
        if not bulk and _is_bulk_tag(int(key, 16)):
            for value_key in ("InlineBinary", "Value", "BulkDataURI"):
                node.pop(value_key, None)
        if node.get("vr") == "SQ":
            for item in node.get("Value", []):
                if isinstance(item, dict):
                    _strip_omitted(item, bulk)
    return doc


def to_json(ds, bulk: bool = False) -> dict:
    """The DICOM JSON model of file meta + data set; bulk data inline only with `bulk`."""
    kwargs = {} if bulk else {"bulk_data_threshold": BULK_THRESHOLD, "bulk_data_element_handler": lambda e: _OMIT}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            out.update(_json_dict(meta, kwargs))
        out.update(_top_level_json(ds, bulk, kwargs))
    return _strip_omitted(out, bulk)


def _json_dict(ds, kwargs) -> dict:
    """pydicom's DICOM JSON of a data set; an element whose value pydicom cannot put in JSON (a DS
    holding bytes that are not a number) becomes a marked entry instead of failing the whole."""
    try:
        return ds.to_json_dict(**kwargs)
    except Exception:
        pass
    out = {}
    for elem in ds:
        try:
            out[f"{int(elem.tag):08X}"] = elem.to_json_dict(kwargs.get("bulk_data_element_handler"),
                                                             kwargs.get("bulk_data_threshold", 1024))
        except Exception as exc:
            out[f"{int(elem.tag):08X}"] = {"vr": elem.VR, "medconv:unreadable": f"<unreadable: {type(exc).__name__}>"}
    return out


def _top_level_json(ds, bulk, kwargs) -> dict:
    """Without --bulk, deferred binary values (pixel data) are described, never read from disk."""
    if bulk:
        return _json_dict(ds, kwargs)
    from pydicom.dataset import Dataset

    kept = Dataset()
    skipped = {}
    for elem, summarise in _elements(ds):
        if summarise and (_is_bulk_tag(elem.tag) or (elem.length or 0) > _BULK_BYTES and elem.value is None):
            # left on disk, never read: pixel data of any size, other large binary values
            skipped[f"{int(elem.tag):08X}"] = {"vr": _raw_vr(elem, ds)}
        else:
            kept.add(ds[elem.tag])
    kept.set_original_encoding(ds.is_implicit_VR, ds.is_little_endian, ds.original_character_set)
    doc = _json_dict(kept, kwargs)
    doc.update(skipped)
    return dict(sorted(doc.items()))


# -- lookup --------------------------------------------------------------------------------
_TAG_RE = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")


def _dicom_tag(name: str):
    from pydicom.datadict import tag_for_keyword

    m = _TAG_RE.match(name)
    if m:
        return int(m.group(1) + m.group(2), 16)
    return tag_for_keyword(name)


def _missing(field_name: str, path: str):
    return InputError(f"no header field {field_name!r}", path)


def _item(values, index: int, field_name: str, path: str):
    """values[index] (a sequence item, one of a multi-value), or the missing-field error."""
    try:
        return values[index]
    except (IndexError, KeyError, TypeError):
        raise _missing(field_name, path) from None


def lookup(ds, segments, field_name: str, path: str):
    """The value at `segments` ([(keyword or tag, [index...])...], the split --get path `field_name`):
    plain Python, pixel data as its summary; InputError (naming `path`) if absent."""
    node = ds
    for n, (name, indexes) in enumerate(segments):
        last = n == len(segments) - 1
        tag = _dicom_tag(name)
        if tag is None:
            raise _missing(field_name, path)
        holder = node
        if n == 0 and (tag >> 16) == 0x0002 and getattr(ds, "file_meta", None) is not None:
            holder = ds.file_meta
        if tag not in holder:
            raise _missing(field_name, path)
        if tag in _PIXEL_TAGS:
            if indexes or not last:
                raise _missing(field_name, path)
            return _pixel_summary(holder.get_item(tag, keep_deferred=True), ds)
        elem = holder[tag]
        if elem.VR == "SQ":
            if not indexes:
                if last:
                    return _plain(elem)
                raise _missing(field_name, path)
            if len(indexes) > 1:
                raise _missing(field_name, path)
            node = _item(elem.value, indexes[0], field_name, path)
            if last:
                _missing_seq(field_name, path)
            continue
        # only a sequence has elements inside it
        if not last or len(indexes) > 1:
            raise _missing(field_name, path)
        value = _plain(elem)
        if indexes:
            return _item(value if isinstance(value, list) else [value], indexes[0], field_name, path)
        return value
    raise _missing(field_name, path)


def _missing_seq(field_name, path):
    raise InputError(f"{field_name!r} is a sequence item; name an element inside it", path)


def _plain(elem):
    """A DICOM value as plain Python (multi-values as lists; binary as its length)."""
    if _is_unreadable(elem):
        return _value_text(elem, terminal=False)
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


# -- series differences --------------------------------------------------------------------
def differences(files, limit: int = 3) -> list:
    """Elements whose values differ across `files` (those of a series): tag, name, distinct, values."""

    seen: dict = {}
    order: list = []
    n_files = len(files)
    for path in files:
        ds = _read_without_pixels(path)
        _walk_all(ds)  # unreadable elements compare by their raw bytes (reported once, by load)
        values = {}
        meta = getattr(ds, "file_meta", None)
        for group in ([] if meta is None else meta, ds):
            for elem in group:
                values[int(elem.tag)] = elem
        for tag, elem in values.items():
            if tag not in seen:
                seen[tag] = {"tag": _tag(elem.tag), "name": _name(elem), "values": {}, "shown": {}}
                order.append(tag)
            key = _compare_key(elem)  # the full value: texts are truncated only when shown
            seen[tag]["values"].setdefault(key, 0)
            seen[tag]["values"][key] += 1
            seen[tag]["shown"].setdefault(key, _compare_text(elem))
    rows = []
    for tag in sorted(order):
        info = seen[tag]
        counts = info["values"]
        present = sum(counts.values())
        distinct = [info["shown"][key] for key in counts]
        if present < n_files:
            distinct.append("(absent)")
        if len(distinct) <= 1:
            continue
        rows.append({"tag": info["tag"], "name": info["name"], "distinct": len(distinct), "files": n_files,
                     "values": distinct[:limit]})
    return rows


def _read_without_pixels(path):
    from . import guards
    from .scan import open_dicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_dicom(path) as fh:
                return guards.dcmread(fh, path, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise CorruptInput(f"malformed DICOM header ({type(exc).__name__}: {exc})", path) from None


def _compare_key(elem):
    """An element's full value, comparable and hashable (sequences item by item, bytes whole)."""
    if _is_unreadable(elem):
        return ("unreadable", bytes(elem.value or b""))
    if elem.VR == "SQ":
        return ("SQ", tuple(tuple((int(e.tag), _compare_key(e)) for e in item) for item in elem.value))
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return ("bytes", bytes(value))
    if value is None:
        return ("", "")
    return (elem.VR, "\\".join(str(v) for v in value) if elem.VM > 1 else str(value))


def _compare_text(elem, width: int = 64) -> str:
    """How a distinct value is shown: long texts abbreviated, binary values by length and CRC-32
    (so two values of the same length are told apart)."""
    import zlib

    if elem.VR == "SQ" and not _is_unreadable(elem):
        text = repr([sorted((str(e.tag), str(e.value)) for e in item) for item in elem.value])
        return text if len(text) <= width else text[: width - 3] + "..."
    value = elem.value
    if isinstance(value, (bytes, bytearray)) and not _is_unreadable(elem):
        return f"<{len(value)} bytes, crc32 {zlib.crc32(value):08x}>"
    return _value_text(elem, terminal=True, width=width)
