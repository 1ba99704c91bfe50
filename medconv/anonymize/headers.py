"""Scrub identifying free text from non-DICOM headers at the byte/text level.

Voxel bytes and geometry fields are copied unchanged, so data and affine stay
bit-identical. Every scrubber returns (new bytes, names of the fields it removed);
`--check` reports those names for a file, so "nothing to remove" means clean.

- NIfTI/Analyze: free-text fields zeroed in place, extensions zeroed, bytes after the voxel data
  dropped; Analyze `originator` cleared only when it is text (SPM's int16 origin is geometry).
- MetaImage/NRRD: only geometry and data-layout keys kept (NRRD `labels` and
  unknown `units` are free text, dropped).
- MGH/MGZ: the 284-byte header (its unused padding zeroed) and the voxels kept
  byte for byte; of the tail, the five acquisition floats (TR, flip angle, TE, TI,
  FoV, only as a whole plausible block) kept and every tag (command lines, file names, transforms)
  dropped.
- MINC1 (NetCDF classic, rewritten as MINC1 at the byte level) and MINC2 (HDF5,
  copied object by object with h5py, so removed text leaves no stale bytes): only
  the image (MINC2: image/0/image), image-min/max and the dimension variables are kept, each with an allow
  list of structural attributes; patient, study, acquisition, processing and any
  other variables/groups, the `history` and `ident` attributes and `comments` go.
  The result is read back with medconv's MINC reader and refused unless its
  affine and voxels equal the input's.
- PNG (text, eXIf, tIME and unknown ancillary chunks), JPEG (APP1-APP15 except
  Adobe APP14, cut to its 12 bytes, and the ICC profile; APP0 rewritten as bare JFIF;
  COM, data after EOI; an EXIF orientation other than 1 is kept in a minimal EXIF
  block) and TIFF (every tag not needed to decode or for geometry, EXIF/GPS IFDs,
  any other ASCII tag, unreferenced bytes) are edited at the byte level, never
  re-encoded; the pixels are decoded before and after and must be identical. BMP
  is rebuilt from exactly its headers, masks, palette and pixel rows.
- Bytes no header field accounts for (after the data, skipped before it, after a compressed
  stream, in a gzip header, in a detached data file or a .hdr's .img) are dropped: scrub_file
  applies all of this to one file and its data file, for anonymize and --check alike.
- JSON sidecars: only known acquisition keys (sidecar_keys.py) at any depth; identifying keys,
  free-text descriptors (unless --keep-descriptors), keys that are not field names, tables of
  pseudonyms and unknown keys (unless --keep-descriptors) go; a medconv mapping file is never copied.
"""
from __future__ import annotations

import json
import os
import re
import struct

from ..errors import CorruptInput, MedconvError, UnsupportedFormat

# (offset, length) of free-text fields.
NIFTI1_TEXT = {"data_type": (4, 10), "db_name": (14, 18), "extents": (32, 4), "session_error": (36, 2),
               "descrip": (148, 80), "aux_file": (228, 24), "intent_name": (328, 16)}
NIFTI2_TEXT = {"descrip": (240, 80), "aux_file": (320, 24), "intent_name": (508, 16), "unused_str": (525, 15)}
ANALYZE_TEXT = {"data_type": (4, 10), "db_name": (14, 18), "descrip": (148, 80), "aux_file": (228, 24),
                "generated": (263, 10), "scannum": (273, 10), "patient_id": (283, 10), "exp_date": (293, 10),
                "exp_time": (303, 10), "hist_un0": (313, 3)}
#: (offset, length) of numeric fields no reader uses (NIfTI-1 kept them from Analyze unused; the
#: last eight int32 of Analyze's data history): room for anything, zeroed
NIFTI1_UNUSED = {"glmax": (140, 4), "glmin": (144, 4)}
ANALYZE_UNUSED = {"session_error": (36, 2), "hkey_un0": (39, 1), "views": (316, 4), "vols_added": (320, 4), "start_field": (324, 4), "field_skip": (328, 4),
                  "omax": (332, 4), "omin": (336, 4), "smax": (340, 4), "smin": (344, 4)}

METAIMAGE_KEYS = {
    "objecttype", "objectsubtype", "ndims", "binarydata", "binarydatabyteordermsb", "byteordermsb",
    "compresseddata", "compresseddatasize", "transformmatrix", "rotation", "orientation", "offset", "origin",
    "position", "centerofrotation", "anatomicalorientation", "elementspacing", "elementsize", "dimsize",
    "elementtype", "elementnumberofchannels", "elementmin", "elementmax", "headersize", "elementdatafile",
    "elementbyteordermsb",
}
NRRD_FIELDS = {
    "type", "dimension", "space", "space dimension", "sizes", "space directions", "kinds", "endian", "encoding",
    "space origin", "measurement frame", "spacings", "thicknesses", "axis mins", "axismins", "axis maxs",
    "axismaxs", "centers", "centerings", "labels", "units", "space units", "min", "max", "old min", "oldmin",
    "old max", "oldmax", "data file", "datafile", "line skip", "lineskip", "byte skip", "byteskip",
    "block size", "blocksize", "sample units", "sampleunits",
}
# JSON sidecar keys that identify the person, place, time or study.
SIDECAR_KEYS = {
    "patientname", "patientid", "patientbirthdate", "patientsex", "patientage", "patientweight", "patientsize",
    "institutionname", "institutionaddress", "institutionaldepartmentname", "stationname", "deviceserialnumber",
    "referringphysicianname", "performingphysicianname", "operatorsname", "accessionnumber", "studyid",
    "studyinstanceuid", "seriesinstanceuid", "sopinstanceuid", "frameofreferenceuid", "acquisitiondatetime",
    "acquisitiondate", "studydate", "seriesdate", "contentdate", "studydatetime", "seriesdatetime",
    "studydescription", "imagecomments", "patientcomments", "requestingphysician", "procedurestepdescription",
    "otherpatientids", "patientbirthname", "patientaddress", "patientmotherbirthname",
    # dcm2niix/BIDS spellings and times of day that the profile removes or replaces
    "seriesdescription", "protocolname", "acquisitiontime", "studytime", "seriestime", "contenttime",
    "devicesserialnumber", "serialnumber", "scannerserialnumber", "requestingservice", "softwareversions",
    "radiopharmaceuticalstarttime", "radiopharmaceuticalstartdatetime", "performedprocedurestepdescription",
}


def _profile_keys() -> set:
    """Every DICOM keyword of the profile table whose basic action is not K (keep), lower case.

    scrub_json has no options, so the option columns (--keep-descriptors ...) do not apply here.
    """
    from .profile import TABLE

    return {keyword.lower() for keyword, action, _ in TABLE.values() if action != "K"}


SIDECAR_KEYS = SIDECAR_KEYS | _profile_keys()
# Unit strings that are kept in NRRD `units`/`space units`/`sample units` and MINC `units`.
KNOWN_UNITS = {
    "", "mm", "cm", "m", "um", "µm", "nm", "micron", "microns", "s", "ms", "us", "sec", "msec", "min", "hz",
    "1/s", "deg", "degree", "degrees", "rad", "radian", "radians", "mm/s", "cm/s", "m/s", "t", "hu", "a.u.", "au",
    "%", "percent", "ml", "mm^2/s", "mm2/s", "1", "bq/ml", "counts", "ppm", "seconds", "millimeters",
}


def _blank(buf: bytearray, fields: dict) -> list:
    changed = []
    for name, (off, n) in fields.items():
        if any(buf[off:off + n]):
            changed.append(name)
            buf[off:off + n] = bytes(n)
    return changed


def scrub_nifti_like(data: bytes, fmt: str, path: str) -> tuple:
    """(new bytes, fields cleared) for NIfTI-1/2 (single file or .hdr) and Analyze headers."""
    buf = bytearray(data)
    size = 540 if fmt == "nifti2" else 348
    if len(buf) < size:
        raise CorruptInput("header is truncated", path)
    fields = {"nifti1": {**NIFTI1_TEXT, **NIFTI1_UNUSED}, "nifti2": NIFTI2_TEXT,
              "analyze": {**ANALYZE_TEXT, **ANALYZE_UNUSED}}[fmt]
    changed = _blank(buf, fields)
    import struct

    endian = "<" if struct.unpack_from("<i", buf, 0)[0] == size else ">"
    if fmt == "analyze" and _analyze_originator_text(buf, endian):
        # SPM keeps the origin there as five int16 (geometry, kept); text is cleared only when
        # medconv's reader would not take it for an origin, so the affine stays the same
        changed.append("originator")
        buf[253:263] = bytes(10)
    if fmt in ("nifti1", "nifti2") and len(buf) >= size + 4:
        # Extensions (dcm2niix and others store DICOM text there): zero every byte between
        # the header and the voxels, so vox_offset and the data stay where they were.
        magic = bytes(buf[344:348]) if fmt == "nifti1" else bytes(buf[4:8])
        if magic.startswith(b"n+"):
            vox = struct.unpack_from(endian + ("f" if fmt == "nifti1" else "q"), buf, 108 if fmt == "nifti1" else 168)[0]
            end = min(int(vox), len(buf))
            data_end = _nifti_data_end(buf, fmt, endian, int(vox))
            if data_end is not None and len(buf) > data_end:
                # bytes after the voxel data belong to no field: dropped
                if any(buf[data_end:]):
                    changed.append("data after the voxels")
                del buf[data_end:]
        else:
            end = len(buf)  # a .hdr: everything after the header is extension
        if end > size and any(buf[size:end]):
            changed.append("extensions")
            buf[size:end] = bytes(end - size)
    return bytes(buf), changed


def _nifti_data_end(buf, fmt: str, endian: str, vox: int):
    """vox_offset + the voxel data's size of a single-file NIfTI, or None when the header's dim
    and bitpix do not give a size (the file is then kept to its end)."""
    if vox < (348 if fmt == "nifti1" else 540):
        return None
    nbytes = _nifti_voxel_bytes(buf, fmt, endian)
    return None if nbytes is None else vox + nbytes


def _analyze_originator_text(buf, endian: str) -> bool:
    """True when Analyze's `originator` (bytes 253..262) holds printable text that medconv's reader
    does not use as SPM's origin (five int16, voxel coordinates within the image's range)."""
    import struct

    raw = bytes(buf[253:263]).rstrip(b"\x00")
    if len(raw) < 2 or not all(0x20 <= c < 0x7F for c in raw):
        return False
    origin = struct.unpack_from(endian + "3h", buf, 253)
    dims = [max(d, 1) for d in struct.unpack_from(endian + "3h", buf, 42)]
    used = any(origin) and all(-d < o < 2 * d for o, d in zip(origin, dims))
    return not used


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
        elif key in METAIMAGE_KEYS:
            out.append(line)
        elif line.strip():
            changed.append(key or "?")
        if key == "elementdatafile":
            layout = metaimage_layout(data[:pos], path)
            if layout["file"].upper() != "LOCAL":  # detached: see scrub_file
                if any(data[pos:]):
                    changed.append("data after the header")
                return b"".join(out), changed
            kept, more = data_region(data, pos, layout, path)
            return b"".join(out) + kept, changed + more
    raise CorruptInput("MetaImage header has no ElementDataFile line", path)


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
            if layout["file"]:  # detached: see scrub_file
                if any(data[pos:]):
                    changed.append("data after the header")
                return b"".join(out), changed
            kept, more = data_region(data, pos, layout, path)
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
            # free text: labels go unless all empty, units unless every one is a known unit string
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
            rest = re.sub(r'"((?:[^"\\]|\\.)*)"', "", value).strip()
            if not strings and field != "labels":
                strings, rest = [rest], ""  # `sample units` is written without quotes
            ok = (not any(s.strip() for s in strings)) if field == "labels" else \
                all(s.strip().lower() in KNOWN_UNITS for s in strings)
            if ok and not rest:
                out.append(line)
            else:
                changed.append(field)
        elif field in ("line skip", "lineskip", "byte skip", "byteskip"):
            pass  # the bytes they skip are dropped with them (data_region)
        elif field in NRRD_FIELDS:
            out.append(line)
        else:
            changed.append(field)
    # A detached header ends without a blank line.
    return b"".join(out), changed


#: a pseudonym medconv writes: patient (pseudonym.Pseudonymizer.patient) or UID (2.25.<integer>)
_PSEUDONYM_VALUE = re.compile(r"ANON-[A-Z]{16}|2\.25\.\d+")
#: what a JSON key that names a field looks like (BIDS/dcm2niix CamelCase, snake_case, dotted);
#: anything else (spaces, ^, a leading digit: a name, ID or UID used as a key) is dropped
_JSON_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")
MAPPING_MESSAGE = "a medconv mapping (original identifiers) is not copied"


def _pseudonym_table(o) -> bool:
    """True for a non-empty dict mapping strings to medconv pseudonyms (original -> pseudonym)."""
    return isinstance(o, dict) and bool(o) and all(
        isinstance(v, str) and _PSEUDONYM_VALUE.fullmatch(v) for v in o.values())


def is_mapping(obj) -> bool:
    """True for a medconv --mapping table: a JSON object whose keys are among "patient"/"uid"/"path" with
    dict values, or whose values are all tables of original -> pseudonym."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, dict) for v in obj.values()):
        return False
    return set(obj) <= {"patient", "uid", "path"} or all(_pseudonym_table(v) for v in obj.values())


def mapping_file(path: str, data: bytes | None = None) -> bool:
    """True when the file at `path` (or `data`, its bytes) is a medconv mapping (see is_mapping)."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return False
    if not any(m in data for m in (b'"patient"', b'"uid"', b'"path"', b'"ANON-', b'"2.25.')):
        return False  # cheap: a sidecar is not parsed twice
    try:
        return is_mapping(json.loads(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


_KNOWN: set = set()


def scrub_json(data: bytes, path: str, keep_descriptors: bool = False) -> tuple:
    """(new bytes, keys removed) of a JSON sidecar: at any depth, only the acquisition keys of
    sidecar_keys (BIDS, dcm2niix, medconv's own) are kept; removed are keys that identify
    (SIDECAR_KEYS: the profile's keywords it does not keep), free-text DESCRIPTORS, keys that do not
    look like a field name (a name, ID or UID used as a key), tables of original -> pseudonym and
    every unknown key. With `keep_descriptors` the descriptors and unknown keys stay (the
    identifying ones still go). A medconv mapping file is refused (it is never copied). A UTF-8
    byte order mark is accepted and not written back."""
    from .sidecar_keys import DESCRIPTORS, LABELLED, allowed

    if not _KNOWN:
        _KNOWN.update(allowed())
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptInput("not valid JSON", path) from None
    if is_mapping(obj):
        raise UnsupportedFormat(MAPPING_MESSAGE, path)
    changed = []

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) or (
            isinstance(v, list) and all(number(x) for x in v))

    def walk(o, labelled=False):
        if isinstance(o, dict):
            for k in list(o):
                low = k.lower()
                if not _JSON_FIELD.fullmatch(k) or _PSEUDONYM_VALUE.fullmatch(k):
                    changed.append("key that is not a field name")  # the key itself may identify
                    del o[k]
                elif labelled:  # landmark labels: numbers only
                    if not number(o[k]):
                        changed.append(k)
                        del o[k]
                elif low in DESCRIPTORS:
                    if not keep_descriptors:
                        changed.append(f"{k} (free text)")
                        del o[k]
                elif low in SIDECAR_KEYS or (low not in _KNOWN and re.search(
                        r"(name|birth|address|physician|comments?)$|^institution", low)):
                    changed.append(k)
                    del o[k]
                elif _pseudonym_table(o[k]):
                    changed.append(k)  # original -> pseudonym: its keys are the originals
                    del o[k]
                elif low not in _KNOWN and not keep_descriptors:
                    changed.append(f"unknown key {k}")
                    del o[k]
                else:
                    walk(o[k], labelled=low in LABELLED)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8"), changed


#: sidecar keys whose values are paths to other files of the tree
PATH_KEYS = {"intendedfor", "sources", "rawsources", "associatedemptyroom"}


def renamed_paths(data: bytes, rename) -> bytes:
    """A scrubbed sidecar whose path values (PATH_KEYS, at any depth) go through `rename`."""
    obj = json.loads(data.decode("utf-8"))

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k.lower() in PATH_KEYS:
                    o[k] = rename(v) if isinstance(v, str) else [rename(x) if isinstance(x, str) else x for x in v] \
                        if isinstance(v, list) else v
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


# --- MGH / MGZ -------------------------------------------------------------------------------

_MGH_HEADER = 284
_MGH_USED = 90  # bytes of the fixed header that mean something; the rest is unused padding
_MGH_ITEMSIZE = {0: 1, 1: 4, 3: 4, 4: 2, 10: 2}


def scrub_mgh(data: bytes, path: str) -> tuple:
    """(new bytes, fields removed) for an MGH file (inflated .mgz): header and voxels kept byte for
    byte (unused header padding zeroed), the tail's five acquisition floats kept (a whole plausible
    block only, alone or followed by tags), every tag dropped."""
    import struct

    if len(data) < _MGH_HEADER:
        raise CorruptInput(f"file is too short for an MGH header ({len(data)} of {_MGH_HEADER} bytes)", path)
    version, w, h, d, frames, dtype = struct.unpack_from(">6i", data, 0)
    if version != 1 or dtype not in _MGH_ITEMSIZE or min(w, h, d, frames) <= 0:
        raise CorruptInput("not a valid MGH header", path)
    end = _MGH_HEADER + w * h * d * frames * _MGH_ITEMSIZE[dtype]
    if len(data) < end:
        raise CorruptInput(f"truncated: {len(data) - _MGH_HEADER} of {end - _MGH_HEADER} bytes of voxel data", path)
    changed = []
    head = bytearray(data[:_MGH_HEADER])
    if any(head[_MGH_USED:]):
        changed.append("header padding")
        head[_MGH_USED:] = bytes(_MGH_HEADER - _MGH_USED)
    from ..formats.mgh import tag_list

    tail = data[end:]
    # TR, flip angle, TE, TI, FoV: kept only as a whole block of five plausible floats that is the
    # whole tail or is followed by tags; anything else (a short or text tail) is dropped
    floats = tail[:20]
    values = struct.unpack(">5f", floats) if len(floats) == 20 else ()
    if not (values and all(abs(v) < 1e6 for v in values) and (not any(tail[20:]) or tag_list(tail[20:]))):
        floats = b""
        if any(tail):
            changed.append("tail data")
    rest = tail[len(floats):]
    if floats and any(rest):
        names = [t["name"] if t["name"] != "unknown" else f"tag {t['tag']}" for t in tag_list(rest)]
        changed += names or ["tail data"]
    return bytes(head) + data[_MGH_HEADER:end] + floats, changed


# --- MINC ------------------------------------------------------------------------------------

#: variables (MINC1) and objects under /minc-2.0/dimensions, /image (MINC2) that are kept
_MINC_DIMS = {"xspace", "yspace", "zspace", "time", "vector_dimension", "xfrequency", "yfrequency",
              "zfrequency", "tfrequency"}
_MINC1_KEEP = _MINC_DIMS | {d + "-width" for d in _MINC_DIMS} | {"image", "image-min", "image-max", "rootvariable"}
#: numeric attributes kept (never text)
_MINC_NUMERIC = {"length", "start", "step", "direction_cosines", "valid_range", "valid_max", "valid_min",
                 "_FillValue", "width", "image-min", "image-max"}
#: text attributes kept only with one of the values the MINC standard gives them
_MINC_ENUMS = {
    "varid": {"MINC standard variable"},
    "vartype": {"dimension____", "group________", "var_attribute", "dim-width____"},
    "spacing": {"regular__", "irregular"},
    "alignment": {"start_", "centre", "end___"},
    "signtype": {"signed__", "unsigned"},
    "complete": {"true_", "false"},
    "spacetype": {"native____", "talairach_", "calibrated"},
}


def _minc_text(value):
    """An attribute's text (str), or None when it is numeric."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0] if value.size == 1 else b"".join(
            v if isinstance(v, bytes) else str(v).encode("latin-1", "replace") for v in value.reshape(-1))
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).rstrip(b"\x00").decode("latin-1")
    if isinstance(value, str):
        return value.rstrip("\x00")
    return None


def _minc_attr(key: str, text, names: set):
    """True to keep a MINC attribute, False to drop it, or a str: keep it with this text instead."""
    if text is None:
        return key in _MINC_NUMERIC
    if key in _MINC_ENUMS:
        return text in _MINC_ENUMS[key]
    if key == "version":
        return bool(re.fullmatch(r"MINC Version\s+\d+(\.\d+)*", text))
    if key == "minc_version":
        return bool(re.fullmatch(r"\d+(\.\d+)*", text))
    if key == "units":
        return text.strip().lower() in KNOWN_UNITS
    if key in ("image-max", "image-min"):
        return text == "--->" + key and key in names  # MINC1's pointer to the variable
    if key == "dimorder":
        return all(n in names for n in text.split(","))
    if key == "parent":
        return text == "" or text in names
    if key == "children":
        kept = [n for n in text.split("\n") if n in names]
        return True if kept == text.split("\n") else ("\n".join(kept) if kept else False)
    return False


def scrub_minc(data: bytes, path: str, verify: bool = True) -> tuple:
    """(new bytes, fields removed) for MINC1 (NetCDF classic) or MINC2 (HDF5). With `verify`, the
    output is read back with medconv's MINC reader and refused unless affine and voxels are the input's."""
    if data[:4] in (b"CDF\x01", b"CDF\x02"):
        new, changed = _scrub_minc1(data, path)
    elif data[:8] == b"\x89HDF\r\n\x1a\n":
        try:
            new, changed = _scrub_minc2(data, path)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:  # h5py on a damaged file
            raise CorruptInput(f"cannot copy the MINC2 objects ({type(exc).__name__})", path) from None
        end = _hdf5_end(data)
        if end is not None and any(memoryview(data)[end:]):
            changed.append("data after the HDF5 file")  # the copy ends where HDF5 says
        elif _strings(data) - _strings(new):
            # text left in HDF5 free space (an attribute deleted by another tool, say): the copy,
            # made object by object, holds none of it
            changed.append("data that no HDF5 object holds")
    else:
        raise CorruptInput("not a MINC file (neither NetCDF nor HDF5)", path)
    hdf5 = data[:4] != b"CDF\x01" and data[:4] != b"CDF\x02"
    if verify and (changed or hdf5):
        _verify_minc(path, new)
    # MINC2 is always written as the copy: stale bytes in free space need not be printable to matter
    return (new, changed) if changed or hdf5 else (data, changed)


def _strings(data: bytes) -> set:
    """Runs of 6 or more printable ASCII characters."""
    return set(re.findall(rb"[\x20-\x7e]{6,}", data))


def _hdf5_end(data: bytes):
    """The end-of-file address of an HDF5 file whose superblock is at offset 0, or None."""
    import struct

    version = data[8] if len(data) > 8 else None
    try:
        if version in (0, 1):
            size_off = data[13]
            at = 24 + (4 if version == 1 else 0) + 2 * size_off  # base and free-space addresses skipped
        elif version in (2, 3):
            size_off = data[9]
            at = 12 + 2 * size_off  # base and superblock-extension addresses skipped
        else:
            return None
        fmt = {4: "<I", 8: "<Q"}.get(size_off)
        if fmt is None:
            return None
        (end,) = struct.unpack_from(fmt, data, at)
    except (IndexError, struct.error):
        return None
    return end if 0 < end <= len(data) else None


def _minc2_keep(root) -> list:
    """[(path under /minc-2.0, dataset)] kept of a MINC2 file: image/0/image, its image-min and
    image-max, and the dimension variables (and their -width variables) the image names in
    `dimorder` (every standard one when it has none); numeric datasets only."""
    import h5py

    def numeric(obj):
        return isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf"

    image = root.get("image/0/image")
    if image is None or not numeric(image):
        return []
    out = [("image/0/image", image)]
    for name in ("image-min", "image-max"):
        obj = root.get(f"image/0/{name}")
        if obj is not None and numeric(obj):
            out.append((f"image/0/{name}", obj))
    order = _minc_text(image.attrs["dimorder"]) if "dimorder" in image.attrs else None
    dims = [d for d in order.split(",") if d] if order else sorted(_MINC_DIMS)
    group = root.get("dimensions")
    for d in dims:
        for name in (d, d + "-width"):
            obj = group.get(name) if isinstance(group, h5py.Group) and "/" not in name else None
            if obj is not None and numeric(obj):
                out.append((f"dimensions/{name}", obj))
    return out


def _verify_minc(path: str, new: bytes) -> None:
    import os
    import tempfile

    import numpy as np

    from ..formats import minc

    before = minc.read(path)
    with tempfile.TemporaryDirectory(prefix="medconv-anon-") as tmp:
        out = os.path.join(tmp, "scrubbed.mnc")
        with open(out, "wb") as fh:
            fh.write(new)
        try:
            after = minc.read(out)
            same = (np.array_equal(before.affine, after.affine) and before.array.dtype == after.array.dtype
                    and np.array_equal(before.array, after.array, equal_nan=before.array.dtype.kind == "f"))
        except MedconvError:
            same = False
    if not same:
        raise UnsupportedFormat("this MINC file's geometry or voxels would change when its identifying "
                                "attributes are removed; convert it to NIfTI first", path)


def _scrub_minc2(data: bytes, path: str) -> tuple:
    """Copy the image and dimension objects into a new HDF5 file without their attributes, then
    restore the allowed ones: nothing removed survives anywhere in the new file's bytes."""
    from io import BytesIO

    import h5py

    try:
        src = h5py.File(BytesIO(data), "r")
    except OSError as exc:
        raise CorruptInput(f"not a readable HDF5 file ({exc})", path) from None
    changed = []
    out = BytesIO()
    with src, h5py.File(out, "w") as dst:
        from .. import untrusted

        untrusted.check_hdf5(src, path)  # external storage and links would be copied as references
        changed += [f"/{k}" for k in src.attrs]
        changed += [f"/{k}" for k in src if k != "minc-2.0"]
        if "minc-2.0" not in src:
            raise CorruptInput("HDF5 file without a /minc-2.0 group: not MINC2", path)
        root = src["minc-2.0"]
        droot = dst.create_group("minc-2.0")
        # only the image dataset of /image/0, its image-min/max and the dimension variables the
        # image uses, each numeric: every other dataset or group (notes, other images) goes
        keep = _minc2_keep(root)
        kept_paths = {p for p, _ in keep}
        names = {p.rsplit("/", 1)[-1] for p in kept_paths}

        gone = []  # dropped groups: nothing under one is named again

        def visit(name, obj, prefix):
            full = prefix + name
            if any(full.startswith(g + "/") for g in gone):
                return None  # (a non-None return would stop h5py's visit)
            if isinstance(obj, h5py.Group):
                if not any(p.startswith(full + "/") for p in kept_paths):
                    gone.append(full)
                    changed.append(full)
            elif full not in kept_paths:
                changed.append(full)
            return None

        for k in ("dimensions", "image"):
            if isinstance(root.get(k), h5py.Group):
                root[k].visititems(lambda name, obj, k=k: visit(name, obj, k + "/"))
        pairs = [(root, droot, "")]
        for group in ("dimensions", "image", "image/0"):
            if any(p.startswith(group + "/") for p in kept_paths):
                pairs.append((root[group], droot.require_group(group), group + "/"))
        for p, obj in keep:
            parent = droot.require_group(p.rsplit("/", 1)[0])
            src.copy(obj, parent, name=p.rsplit("/", 1)[-1], without_attrs=True)
            pairs.append((obj, droot[p], p + "/"))
        kept = [k for k in ("dimensions", "image") if k in root]
        _minc2_copy_attrs(pairs, names, changed)
        for k in root:
            if k in kept:
                continue
            if k == "info":
                droot.create_group("info")
                for name in root["info"]:
                    item = root["info"][name]
                    # named: the attributes that are not MINC's own bookkeeping (full_name, modality ...)
                    attrs = [a for a in getattr(item, "attrs", {})
                             if _minc_attr(a, _minc_text(item.attrs[a]), set()) is False]
                    changed += [f"info/{name}.{a}" for a in attrs] or [f"info/{name}"]
            else:
                changed.append(k)
    return out.getvalue(), changed


def _minc2_copy_attrs(pairs, names, changed) -> None:
    """Copy the allowed attributes of each (source, copy, label) pair, rewritten where _minc_attr says."""
    for obj, new, label in pairs:
        for attr in obj.attrs:
            value = obj.attrs[attr]
            verdict = _minc_attr(attr, _minc_text(value), names)
            if verdict is False:
                changed.append(f"{label}{attr}" if label else attr)
                continue
            if isinstance(verdict, str):
                import numpy as np

                changed.append(f"{label}{attr}")
                new.attrs[attr] = np.bytes_(verdict.encode("latin-1"))
                continue
            try:
                new.attrs.create(attr, value, dtype=obj.attrs.get_id(attr).dtype)
            except (TypeError, ValueError):
                new.attrs[attr] = value


_NC_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _scrub_minc1(data: bytes, path: str) -> tuple:
    """Rewrite a NetCDF classic file with only the kept variables and attributes; every kept
    variable's data bytes are copied unchanged."""
    big, pos, numrecs, dims, gatts, variables, padding = _nc_parse(data, path)

    def is_record(v):
        return _nc_is_record(v, dims)

    if any(i >= len(dims) for v in variables for i in v[1]):
        raise CorruptInput("malformed NetCDF header (unknown dimension)", path)
    changed = ["header padding"] if any(any(p) for p in padding) else []
    keep = [v for v in variables if v[0] in _MINC1_KEEP]
    for v in variables:
        if v[0] not in _MINC1_KEEP:
            # named: the attributes that are not MINC's own bookkeeping (full_name, modality ...)
            changed += [f"{v[0]}.{a[0]}" for a in v[2] if _minc_attr(
                a[0], a[3].rstrip(b"\x00").decode("latin-1") if a[1] == 2 else None, set()) is False] or [v[0]]
            if is_record(v):
                raise UnsupportedFormat("MINC1 file with a record variable to remove; convert it to NIfTI first", path)
    names = {v[0] for v in keep}
    new_gatts = _nc_filter_attrs(gatts, "", names, changed)
    for v in keep:
        v[2] = _nc_filter_attrs(v[2], v[0] + ".", names, changed)
    records_all = [v for v in variables if is_record(v)]
    rec_start = min((v[5] for v in records_all), default=None)
    rec_end = None
    if records_all and numrecs != 0xFFFFFFFF:  # streaming: the record count is not known
        if len(records_all) == 1:  # one record variable: its records are not padded
            count = 1
            for i in records_all[0][1][1:]:
                count *= dims[i][1]
            recsize = count * _NC_SIZE[records_all[0][3]]
        else:
            recsize = sum(v[4] for v in records_all)
        rec_end = rec_start + numrecs * recsize

    def nbytes(v):
        return _nc_nbytes(v, dims)

    ends = [v[5] + nbytes(v) for v in variables if not is_record(v)] + ([rec_end] if rec_end is not None else [])
    data_end = len(data) if records_all and rec_end is None else max(ends + [pos])
    # bytes between the header and the variables' data, or between variables, belong to nothing:
    # the file is then written again from its variables
    used = sorted([(0, pos)] + [(v[5], v[5] + nbytes(v)) for v in variables if not is_record(v)]
                  + ([(rec_start, data_end)] if records_all else []))
    cursor = 0
    for start, end in used:
        if start > cursor and any(memoryview(data)[cursor:min(start, data_end)]):
            changed.append("data between the variables")
            break
        cursor = max(cursor, end)
    if not changed:
        if len(data) > data_end and any(data[data_end:]):
            # bytes after the last variable's data belong to nothing: dropped
            return data[:data_end], ["data after the variables"]
        return data, changed
    return _nc_write(data, path, big, numrecs, dims, new_gatts, keep, rec_end), changed


def _nc_is_record(v, dims) -> bool:
    """Whether a parsed NetCDF variable runs along the record (unlimited) dimension."""
    return bool(v[1]) and dims[v[1][0]][1] == 0


def _nc_nbytes(v, dims) -> int:
    """The unpadded byte size of a parsed NetCDF variable's data."""
    count = 1
    for i in v[1]:
        count *= dims[i][1]
    return count * _NC_SIZE[v[3]]


def _nc_parse(data: bytes, path: str) -> tuple:
    """(big, header end, numrecs, dims, global attributes, variables, padding) of a NetCDF classic header."""
    import struct

    big = data[3] == 2  # 64-bit offsets
    pos = 4
    try:
        def u32():
            nonlocal pos
            v = struct.unpack_from(">I", data, pos)[0]
            pos += 4
            return v

        def name():
            nonlocal pos
            n = u32()
            s = data[pos:pos + n]
            padding.append(data[pos + n:pos + _pad4(n)])
            pos += _pad4(n)
            return s.decode("utf-8", "replace")

        def attrs():
            nonlocal pos
            tag, n = u32(), u32()
            if tag not in (0, 0x0C):
                raise ValueError("attribute list")
            out = []
            for _ in range(n):
                key, typ, count = name(), u32(), u32()
                size = count * _NC_SIZE[typ]
                out.append((key, typ, count, data[pos:pos + size]))
                padding.append(data[pos + size:pos + _pad4(size)])
                pos += _pad4(size)
            return out

        padding: list = []  # the bytes that round names and values up to 4: zero in a clean file
        numrecs = u32()
        tag, n = u32(), u32()
        dims = [(name(), u32()) for _ in range(n)] if tag == 0x0A else []
        gatts = attrs()
        tag, n = u32(), u32()
        variables = []
        for _ in range(n if tag == 0x0B else 0):
            vname = name()
            dimids = [u32() for _ in range(u32())]
            vatts = attrs()
            typ, vsize = u32(), u32()
            begin = struct.unpack_from(">Q" if big else ">I", data, pos)[0]
            pos += 8 if big else 4
            if typ not in _NC_SIZE:
                raise ValueError("variable type")
            variables.append([vname, dimids, vatts, typ, vsize, begin])
        if pos > len(data):
            raise ValueError("header")
    except (struct.error, KeyError, ValueError, IndexError):
        raise CorruptInput("malformed NetCDF header", path) from None
    return big, pos, numrecs, dims, gatts, variables, padding


def _nc_filter_attrs(items, label, names, changed):
    """The attributes kept (text ones possibly rewritten); every removed or rewritten one is added to `changed`."""
    out = []
    for key, typ, count, raw in items:
        verdict = _minc_attr(key, raw.rstrip(b"\x00").decode("latin-1") if typ == 2 else None, names)
        if verdict is False:
            changed.append(f"{label}{key}")
        elif isinstance(verdict, str):
            changed.append(f"{label}{key}")
            raw = verdict.encode("latin-1")
            out.append((key, typ, len(raw), raw))
        else:
            out.append((key, typ, count, raw))
    return out


def _nc_write(data, path, big, numrecs, dims, new_gatts, keep, rec_end) -> bytes:
    """A new NetCDF classic file of the kept variables and attributes, their data bytes copied unchanged."""
    import struct

    def enc_name(s):
        b = s.encode("utf-8")
        return struct.pack(">I", len(b)) + b + bytes(_pad4(len(b)) - len(b))

    def enc_attrs(items):
        if not items:
            return bytes(8)
        out = [struct.pack(">II", 0x0C, len(items))]
        for key, typ, count, raw in items:
            out += [enc_name(key), struct.pack(">II", typ, count), raw, bytes(_pad4(len(raw)) - len(raw))]
        return b"".join(out)

    def header(begins):
        out = [data[:4], struct.pack(">I", numrecs)]
        out.append(struct.pack(">II", 0x0A, len(dims)) + b"".join(enc_name(d) + struct.pack(">I", n)
                                                                    for d, n in dims) if dims else bytes(8))
        out.append(enc_attrs(new_gatts))
        out.append(struct.pack(">II", 0x0B, len(keep)) if keep else bytes(8))
        for v, b in zip(keep, begins):
            out += [enc_name(v[0]), struct.pack(">I", len(v[1])), b"".join(struct.pack(">I", i) for i in v[1]),
                    enc_attrs(v[2]), struct.pack(">II", v[3], v[4]), struct.pack(">Q" if big else ">I", b)]
        return b"".join(out)

    size = len(header([0] * len(keep)))
    fixed = [v for v in keep if not _nc_is_record(v, dims)]
    records = [v for v in keep if _nc_is_record(v, dims)]
    body, begins, cursor = [], {}, size
    for v in fixed:
        count = 1
        for i in v[1]:
            count *= dims[i][1]
        exact = count * _NC_SIZE[v[3]]
        if v[5] + exact > len(data):
            raise CorruptInput(f"variable {v[0]} is truncated", path)
        body.append(data[v[5]:v[5] + exact] + bytes(_pad4(exact) - exact))
        begins[v[0]] = cursor
        cursor += _pad4(exact)
    if records:
        # the record section is copied whole (every record variable is kept), at the same relative offsets
        start = min(v[5] for v in records)
        for v in records:
            begins[v[0]] = cursor + v[5] - start
        body.append(data[start:rec_end])  # up to the last record (None: streaming, to the end)
    return header([begins[v[0]] for v in keep]) + b"".join(body)


# --- rasters: PNG, JPEG, TIFF, BMP -------------------------------------------------------------

#: ancillary PNG chunks kept (colour and transparency, physical size, APNG frames)
_PNG_KEEP = {b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"hIST", b"tRNS", b"pHYs", b"cICP", b"mDCv",
             b"cLLi", b"acTL", b"fcTL", b"fdAT"}


def scrub_png(data: bytes, path: str) -> tuple:
    """Drop text (tEXt, zTXt, iTXt), eXIf, tIME and every unknown ancillary chunk; critical chunks
    (and so the pixels) are copied as they are."""
    import struct

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CorruptInput("not a PNG file", path)
    out, changed, pos = [data[:8]], [], 8
    while True:
        if pos + 12 > len(data):
            raise CorruptInput("PNG file is truncated (no IEND chunk)", path)
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + n
        if end > len(data):
            raise CorruptInput("PNG file is truncated", path)
        if kind in (b"IHDR", b"PLTE", b"IDAT") or kind in _PNG_KEEP:
            out.append(data[pos:end])
        elif kind == b"IEND":
            if n:
                changed.append("data in IEND")
            out.append(b"\x00\x00\x00\x00IEND\xaeB`\x82")
        else:  # text, time, unknown ancillary chunks, and critical ones no decoder knows
            changed.append(kind.decode("latin-1"))
        pos = end
        if kind == b"IEND":
            break
    if any(data[pos:]):
        changed.append("data after IEND")
    return _png_stream_only(out, changed, path), changed


def _png_stream_only(chunks: list, changed: list, path: str) -> bytes:
    """The chunks with the image data (IDAT) cut to its zlib stream: bytes after the stream's end
    are read by no decoder. Written as one IDAT chunk when anything is cut."""
    import struct
    import zlib

    idat = [i for i, c in enumerate(chunks) if c[4:8] == b"IDAT"]
    if not idat:
        return b"".join(chunks)
    stream = b"".join(chunks[i][8:-4] for i in idat)
    dec = zlib.decompressobj()
    try:  # the output is discarded as it comes: only where the stream ends matters
        dec.decompress(stream, 1 << 24)
        while dec.unconsumed_tail and not dec.eof:
            dec.decompress(dec.unconsumed_tail, 1 << 24)
    except zlib.error:
        return b"".join(chunks)  # not for this function to judge: the pixel comparison does
    if not dec.eof or not dec.unused_data:
        return b"".join(chunks)
    end = len(stream) - len(dec.unused_data)
    if any(stream[end:]):
        changed.append("data after the image stream")
    body = stream[:end]
    one = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return b"".join(chunks[:idat[0]]) + one + b"".join(c for i, c in enumerate(chunks) if i > idat[0] and i not in idat)


def _exif_orientation(seg: bytes):
    """The Orientation (0x0112) of an APP1 EXIF segment's first IFD, or None."""
    import struct

    tiff = seg[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    bo = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(bo + "I", tiff, 4)[0]
        (n,) = struct.unpack_from(bo + "H", tiff, ifd)
        for i in range(n):
            tag, typ, count = struct.unpack_from(bo + "HHI", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112 and typ == 3 and count == 1:
                value = struct.unpack_from(bo + "H", tiff, ifd + 10 + 12 * i)[0]
                return value if 1 <= value <= 8 else None
    except struct.error:
        return None
    return None


def _exif_minimal(orientation: int) -> bytes:
    """An APP1 EXIF body holding only an Orientation tag."""
    import struct

    return b"Exif\x00\x00MM\x00\x2a" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, orientation, 0, 0)


def scrub_jpeg(data: bytes, path: str) -> tuple:
    """Drop APP1-APP15 (EXIF, XMP, IPTC/Photoshop, ...) except Adobe APP14 (cut to its 12-byte payload)
    and an ICC profile in APP2, COM segments and anything after EOI. APP0 is rewritten as a minimal
    JFIF segment (no thumbnail; JFXX and other APP0 dropped). Tables, frames and scans are copied unchanged."""
    import struct

    if data[:3] != b"\xff\xd8\xff":
        raise CorruptInput("not a JPEG file", path)
    out, changed, pos, orientation = [b"\xff\xd8"], [], 2, None
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise CorruptInput("JPEG file is truncated or malformed (no EOI marker)", path)
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1  # fill bytes
        if pos >= len(data):
            raise CorruptInput("JPEG file is truncated", path)
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > len(data):
            raise CorruptInput("JPEG file is truncated", path)
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise CorruptInput("JPEG segment is truncated", path)
        body = data[pos + 2:pos + length]
        segment = bytes((0xFF, marker)) + data[pos:pos + length]
        pos += length
        if marker in (0xE0, 0xEE):
            _jpeg_app0_app14(marker, body, out, changed)
            continue
        app = 0xE1 <= marker <= 0xEF and not (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00"))
        if app or marker == 0xFE:
            if marker == 0xE1 and body.startswith(b"Exif\x00"):
                value = _exif_orientation(body)
                if value is not None and body == _exif_minimal(value):
                    out.append(segment)  # written by this function: nothing but the orientation
                    orientation = 0
                    continue
                changed.append("EXIF")
                orientation = value if orientation is None else orientation
            elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap"):
                changed.append("XMP")
            elif marker == 0xED:
                changed.append("IPTC/Photoshop")
            else:
                changed.append("comment" if marker == 0xFE else f"APP{marker - 0xE0}")
            continue
        out.append(segment)
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RSTn or a stuffed 0xFF00
            start = pos
            pos = _jpeg_entropy_end(data, pos, path)
            out.append(data[start:pos])
    if any(data[pos:]):
        changed.append("data after EOI")
    if orientation not in (None, 0, 1):
        # keep the display orientation: a minimal EXIF block holding only the Orientation tag
        exif = _exif_minimal(orientation)
        at = 2 + (len(out[1]) if len(out) > 1 and out[1][1] == 0xE0 else 0)
        new = b"".join(out)
        return new[:at] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + new[at:], changed
    return b"".join(out), changed


def _jpeg_app0_app14(marker: int, body: bytes, out: list, changed: list) -> None:
    """APP0 rewritten as a minimal JFIF segment (JFXX and others go); APP14 kept only as Adobe's 12 bytes."""
    import struct

    if marker == 0xE0:  # APP0: rewritten as a minimal JFIF segment; JFXX (thumbnail) and others go
        if body.startswith(b"JFIF\x00") and len(body) >= 12:
            jfif = body[:12] + b"\x00\x00"  # identifier, version, units, densities; no thumbnail
            if jfif != body:
                changed.append("APP0")
            out.append(b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif)
        else:
            changed.append("APP0 JFXX" if body.startswith(b"JFXX\x00") else "APP0")
        return
    # APP14: only Adobe's, cut to its 12-byte payload (colour transform)
    if body.startswith(b"Adobe") and len(body) >= 12:
        if len(body) > 12:
            changed.append("APP14")
        out.append(b"\xff\xee" + struct.pack(">H", 14) + body[:12])
    else:
        changed.append("APP14")


def _jpeg_entropy_end(data: bytes, pos: int, path: str) -> int:
    """Where entropy-coded data from `pos` ends: the next marker that is not RSTn or a stuffed 0xFF00."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            raise CorruptInput("JPEG scan is truncated (no EOI marker)", path)
        nxt = data[i + 1]
        if nxt == 0xFF:
            pos = i + 1
        elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
        else:
            return i


#: TIFF tags removed wherever they are (descriptive, identifying, or pointers to EXIF/GPS data)
TIFF_TAGS = {
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model", 285: "PageName", 305: "Software",
    306: "DateTime", 315: "Artist", 316: "HostComputer", 700: "XMP", 33432: "Copyright", 33723: "IPTC",
    34377: "Photoshop", 34665: "ExifIFD", 34853: "GPSIFD", 37724: "ImageSourceData", 37510: "UserComment",
    36867: "DateTimeOriginal", 36868: "DateTimeDigitized", 40091: "XPTitle", 40092: "XPComment",
    40093: "XPAuthor", 40094: "XPKeywords", 40095: "XPSubject", 40965: "InteropIFD", 42016: "ImageUniqueID",
    42032: "CameraOwnerName", 42033: "BodySerialNumber", 42036: "LensModel", 42037: "LensSerialNumber",
    50838: "ImageJMetaDataByteCounts", 50839: "ImageJMetaData",
}
_TIFF_SUB_IFDS = {34665, 34853, 40965}
#: TIFF tags kept: what is needed to decode the pixels (baseline and extension structure, colour,
#: resolution, JPEG tables, ICC profile) and GeoTIFF/GDAL geometry; every other tag (private ones,
#: >= 32768, included) is removed and its value zeroed
_TIFF_KEEP = {
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283, 284,
    290, 291, 292, 293, 296, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 334, 336, 338,
    339, 340, 341, 342, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 32997, 32998,
    33550, 33922, 34264, 34675, 34735, 34736, 34737, 42112, 42113,
}
#: (offsets tag, byte counts tag) pairs: the image data a kept IFD references
_TIFF_DATA = ((273, 279), (324, 325), (513, 514))
#: ASCII tags kept (GDAL's no-data value, GeoTIFF's ASCII parameters): every other ASCII tag goes
_TIFF_ASCII_KEEP = {34737, 42113}
_TIFF_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def scrub_tiff(data: bytes, path: str) -> tuple:
    """Keep only the tags of _TIFF_KEEP in every IFD (and SubIFD), in place: the other entries
    are taken out of the IFD and their values, and whole EXIF/GPS IFDs, overwritten with zeros;
    then every byte no kept IFD, value, strip or tile references is zeroed and the file ends at
    the last referenced byte. Strips, tiles and kept tags stay where they are."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise CorruptInput("not a (classic) TIFF file", path)
    scrub = _TiffScrub(data, path)
    off = struct.unpack_from(scrub.bo + "I", scrub.buf, 4)[0]
    while off:
        off = scrub.ifd(off)
    scrub.zero_unreferenced()
    return bytes(scrub.buf), scrub.changed


class _TiffScrub:
    """One scrub_tiff pass: the file's bytes, byte order, IFDs seen and kept, and what changed."""

    def __init__(self, data: bytes, path: str):
        self.path = path
        self.bo = "<" if data[:2] == b"II" else ">"
        self.buf = bytearray(data)
        self.changed, self.seen = [], set()
        self.kept_ifds = []

    def zero(self, off, n):
        """Overwrite `n` bytes from `off` with zeros (within the file)."""
        if off >= 0 and n > 0:
            self.buf[off:off + n] = bytes(len(self.buf[off:off + n]))

    def entries(self, off):
        """An IFD's entries (tag, type, count, raw 12 bytes) and the next IFD's offset; each IFD once."""
        if off in self.seen or off + 2 > len(self.buf):
            raise CorruptInput("TIFF IFD offset loops or is out of range", self.path)
        self.seen.add(off)
        (n,) = struct.unpack_from(self.bo + "H", self.buf, off)
        if off + 6 + 12 * n > len(self.buf):
            raise CorruptInput("TIFF IFD is truncated", self.path)
        out = []
        for i in range(n):
            tag, typ, count = struct.unpack_from(self.bo + "HHI", self.buf, off + 2 + 12 * i)
            out.append((tag, typ, count, bytes(self.buf[off + 2 + 12 * i:off + 14 + 12 * i])))
        return out, struct.unpack_from(self.bo + "I", self.buf, off + 2 + 12 * n)[0]

    def entries_at(self, off):
        """An IFD's entries as they are now (after the dropped ones were taken out)."""
        (n,) = struct.unpack_from(self.bo + "H", self.buf, off)
        return [struct.unpack_from(self.bo + "HHI", self.buf, off + 2 + 12 * i) + (bytes(self.buf[off + 2 + 12 * i:off + 14 + 12 * i]),)
                for i in range(n)], None

    def numbers(self, typ, count, raw):
        """The unsigned integers (SHORT, LONG or IFD) an entry holds: offsets or byte counts."""
        fmt = {3: "H", 4: "I", 13: "I"}.get(typ)
        if fmt is None:
            return []
        where, size = self.value_range(typ, count, raw)
        if where is not None and where + size > len(self.buf):
            return []
        src = raw[8:12] if where is None else bytes(self.buf[where:where + size])
        return list(struct.unpack_from(self.bo + f"{count}{fmt}", src, 0))

    def value_range(self, typ, count, raw):
        """(offset, size) of an entry's value; offset None when the value sits in the entry."""
        size = count * _TIFF_SIZE.get(typ, 1)
        return (struct.unpack_from(self.bo + "I", raw, 8)[0], size) if size > 4 else (None, size)

    def offsets(self, typ, count, raw):
        """The LONG or IFD offsets an entry holds (sub-IFD pointers)."""
        where, size = self.value_range(typ, count, raw)
        if typ not in (4, 13) or (where is not None and where + size > len(self.buf)):
            return []
        src = raw[8:12] if where is None else bytes(self.buf[where:where + size])
        return list(struct.unpack_from(self.bo + f"{count}I", src, 0))

    def wipe(self, off):
        """Zero a whole IFD (EXIF, GPS, Interop) with its values and its own sub-IFDs."""
        if off in self.seen or off < 8 or off + 2 > len(self.buf):
            return
        items, _ = self.entries(off)
        for tag, typ, count, raw in items:
            self.drop(tag, typ, count, raw)
        self.zero(off, 6 + 12 * len(items))

    def drop(self, tag, typ, count, raw):
        """Zero one entry's value (and, for an EXIF/GPS/Interop pointer, the whole IFD it names)."""
        if tag in _TIFF_SUB_IFDS:
            for sub in self.offsets(typ, count, raw):
                self.wipe(sub)
        where, size = self.value_range(typ, count, raw)
        if where is not None:
            self.zero(where, size)

    def strip_needs(self, by_tag, n):
        """Bytes each of `n` uncompressed strips holds rows for (a byte count claiming more leaves
        room no decoder reads); no limit (a huge number) when the tags do not say."""
        none = [1 << 62] * n
        try:
            def first(tag, default):
                return self.numbers(*by_tag[tag])[0] if tag in by_tag else default

            if first(259, 1) != 1:
                return none
            width, length, spp = first(256, 0), first(257, 0), first(277, 1)
            bits = self.numbers(*by_tag[258]) if 258 in by_tag else [1]
            rps = min(first(278, length) or length, length)
            planar = first(284, 1) == 2
            if not (width and length and rps and bits):
                return none
            stride = (width * (bits[0] if planar else sum(bits if len(bits) == spp else bits[:1] * spp)) + 7) // 8
            per_plane = -(-length // rps)
            return [min(rps, length - (i % per_plane) * rps) * stride for i in range(n)]
        except (IndexError, struct.error, ValueError, TypeError, ZeroDivisionError):
            return none

    def ifd(self, off):
        """Scrub one IFD (and its SubIFDs) in place; returns the next IFD's offset."""
        items, nxt = self.entries(off)
        self.kept_ifds.append(off)
        keep, subs = [], []
        for tag, typ, count, raw in items:
            if tag not in _TIFF_KEEP or (typ == 2 and tag not in _TIFF_ASCII_KEEP):
                self.changed.append(TIFF_TAGS.get(tag, f"tag {tag}"))
                self.drop(tag, typ, count, raw)
                continue
            keep.append(raw)
            if tag == 330:  # SubIFDs (reduced images, DNG): scrubbed like the main ones
                subs += self.offsets(typ, count, raw)
        if len(keep) != len(items):
            block = struct.pack(self.bo + "H", len(keep)) + b"".join(keep) + struct.pack(self.bo + "I", nxt)
            self.zero(off, 6 + 12 * len(items))
            self.buf[off:off + len(block)] = block
        for sub in subs:
            if 8 <= sub < len(self.buf):
                self.ifd(sub)
        return nxt

    def zero_unreferenced(self):
        """Zero unreferenced bytes and end the file at the last referenced one."""
        # every byte that no kept IFD, value, strip or tile references is zeroed, and the file ends
        # with the last referenced byte: nothing hides in slack space or after the image
        used = [(0, 8)]
        for off in self.kept_ifds:
            items, _ = self.entries_at(off)
            used.append((off, off + 6 + 12 * len(items)))
            by_tag = {}
            for tag, typ, count, raw in items:
                where, size = self.value_range(typ, count, raw)
                if where is not None:
                    used.append((where, where + size))
                by_tag[tag] = (typ, count, raw)
            for a, b in _TIFF_DATA:
                if a in by_tag and b in by_tag:
                    starts, counts = self.numbers(*by_tag[a]), self.numbers(*by_tag[b])
                    if a == 273:  # uncompressed strips: only the bytes of their rows are read
                        counts = [min(n, need) for n, need in zip(counts, self.strip_needs(by_tag, len(counts)))]
                    used += [(o, o + n) for o, n in zip(starts, counts)]
        used.sort()
        cursor, slack = 0, False
        for start, end in used:
            if start > cursor:
                slack |= any(self.buf[cursor:start])
                self.zero(cursor, start - cursor)
            cursor = max(cursor, end)
        if cursor < len(self.buf):
            slack |= any(self.buf[cursor:])
            del self.buf[cursor:]
        if slack:
            self.changed.append("data outside the image structure")


def _same_pixels(old: bytes, new: bytes, path: str) -> None:
    """Decode both with Pillow, every frame: refuse unless mode, size and pixels are identical."""
    from io import BytesIO

    from PIL import Image, ImageSequence

    def frames(blob):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's multi-line warnings on odd metadata: stderr stays clean
            with Image.open(BytesIO(blob)) as im:
                return [(f.mode, f.size, f.tobytes()) for f in ImageSequence.Iterator(im)]

    try:
        before = frames(old)
    except Exception as exc:  # Pillow raises many types on files it cannot decode
        raise UnsupportedFormat(f"cannot decode the image to verify its pixels ({type(exc).__name__})", path) from None
    try:
        same = frames(new) == before
    except Exception:
        same = False
    if not same:
        raise UnsupportedFormat("the pixels would change when the metadata is removed; not anonymised", path)


def _rle_end(data, start: int, four: bool, path: str) -> int:
    """Offset just after the end-of-bitmap marker of BMP RLE8/RLE4 data starting at `start`."""
    i = start
    while i + 1 < len(data):
        count, code = data[i], data[i + 1]
        i += 2
        if count or code == 0:
            continue  # a run, or the end of a line
        if code == 1:
            return i
        if code == 2:
            i += 2  # delta
        else:
            n = (code + 1) // 2 if four else code  # absolute run, padded to 16 bits
            i += n + (n & 1)
    raise CorruptInput("BMP RLE data has no end-of-bitmap marker", path)


def scrub_bmp(data: bytes, path: str) -> tuple:
    """Rebuild a BMP from exactly what its headers describe: file header (reserved fields zeroed),
    DIB header, bit masks, palette and pixel rows (their padding zeroed). A gap before the pixels,
    bytes after them and an embedded or linked colour profile are dropped."""
    import struct

    if data[:2] != b"BM" or len(data) < 26:
        raise CorruptInput("not a BMP file", path)
    (off,) = struct.unpack_from("<I", data, 10)
    (hsize,) = struct.unpack_from("<I", data, 14)
    changed = []
    if hsize == 12:
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression, entry, colours = 0, 3, 0
    elif hsize in (16, 40, 52, 56, 64, 108, 124):
        if len(data) < 14 + max(hsize, 40):
            raise CorruptInput("BMP header is truncated", path)
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
        (colours,) = struct.unpack_from("<I", data, 46)
        entry = 4
    else:
        raise CorruptInput(f"unknown BMP header size {hsize}", path)
    if compression in (4, 5):
        raise UnsupportedFormat("BMP holding a JPEG or PNG stream is not supported; convert it first", path)
    dib = bytearray(data[14:14 + hsize])
    masks = 12 if compression == 3 and hsize == 40 else 16 if compression == 6 and hsize == 40 else 0
    palette = (colours or (1 << bits)) * entry if bits <= 8 else colours * entry
    at = 14 + hsize + masks + palette
    if hsize == 124 and dib[56:60] in (b"DEBM", b"KNIL"):  # PROFILE_EMBEDDED / PROFILE_LINKED (a file name)
        changed.append("colour profile")
        dib[56:60] = b"BGRs"  # sRGB
        dib[112:120] = bytes(8)  # profile offset and size
    if off < at or off > len(data):
        raise CorruptInput("BMP pixel offset is inside the headers or past the end", path)
    rows = abs(height)
    if compression in (1, 2):
        end = _rle_end(data, off, compression == 2, path)
        pixels = bytearray(data[off:end])
    else:
        stride = ((width * bits + 31) // 32) * 4
        need = stride * rows
        if off + need > len(data):
            raise CorruptInput(f"BMP pixel data is {len(data) - off} bytes, the header needs {need}", path)
        pixels = bytearray(data[off:off + need])
        used = (width * bits + 7) // 8
        if used < stride:
            padding = False
            for r in range(rows):
                row = memoryview(pixels)[r * stride + used:(r + 1) * stride]
                if any(row):
                    padding = True
                    pixels[r * stride + used:(r + 1) * stride] = bytes(stride - used)
            if padding:
                changed.append("row padding")
        end = off + need
    if any(data[6:10]):
        changed.append("reserved fields")
    if any(data[at:off]):
        changed.append("data before the pixels")
    if any(data[end:]):
        changed.append("data after the pixels")
    if hsize >= 40 and struct.unpack_from("<I", dib, 20)[0]:
        struct.pack_into("<I", dib, 20, len(pixels))  # biSizeImage: what is there now
    head = data[14 + hsize:at]
    total = at + len(pixels)
    out = b"BM" + struct.pack("<IHHI", total, 0, 0, at) + bytes(dib) + head + bytes(pixels)
    return (out if changed else data), changed


def scrub_raster(kind: str, data: bytes, path: str, verify: bool = True) -> tuple:
    """(new bytes, fields removed) for png, jpeg, tiff or bmp; with `verify` the pixels are decoded
    before and after and must be identical."""
    import struct

    try:
        new, changed = {"png": scrub_png, "jpeg": scrub_jpeg, "tiff": scrub_tiff, "bmp": scrub_bmp}[kind](data, path)
    except (struct.error, IndexError, ValueError, OverflowError):
        raise CorruptInput(f"malformed {kind.upper()} structure", path) from None
    if not changed:
        return data, changed
    if verify:
        _same_pixels(data, new, path)
    return new, changed


# --- bytes that no header field accounts for ----------------------------------------------------
#
# Whatever lies outside the bytes a header describes (after the voxels, skipped before them, after
# a compressed stream, in a gzip header's name or comment) is dropped: the kept bytes are exactly
# the ones a reader uses. The names returned go to --check like any removed field.

#: bytes per MetaImage element type
_MET_SIZE = {"MET_CHAR": 1, "MET_ASCII_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
             "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8,
             "MET_FLOAT": 4, "MET_DOUBLE": 8}
#: bytes per NRRD type name
_NRRD_SIZE = {}
for _size, _names in ((1, "signed char,int8,int8_t,uchar,unsigned char,uint8,uint8_t,char"),
                      (2, "short,short int,signed short,signed short int,int16,int16_t,ushort,unsigned short,"
                          "unsigned short int,uint16,uint16_t"),
                      (4, "int,signed int,int32,int32_t,uint,unsigned int,uint32,uint32_t,float"),
                      (8, "longlong,long long,long long int,signed long long,signed long long int,int64,int64_t,"
                          "ulonglong,unsigned long long,unsigned long long int,uint64,uint64_t,double")):
    for _name in _names.split(","):
        _NRRD_SIZE[_name] = _size
_NRRD_ENCODING = {"raw": "raw", "gz": "gzip", "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2", "txt": "ascii",
                  "text": "ascii", "ascii": "ascii", "hex": "hex"}
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _gzip_header(raw, pos: int, path: str) -> tuple:
    """(offset of the deflate data, fields found) of the gzip member header at `pos`."""
    import struct

    if len(raw) < pos + 10 or raw[pos + 2] != 8:
        raise CorruptInput("malformed gzip header", path)
    flags, at, found = raw[pos + 3], pos + 10, []
    try:
        if flags & 4:  # FEXTRA
            (n,) = struct.unpack_from("<H", raw, at)
            if any(raw[at + 2:at + 2 + n]):
                found.append("gzip extra field")
            at += 2 + n
        for bit, name in ((8, "gzip file name"), (16, "gzip comment")):
            if flags & bit:
                end = raw.index(b"\x00", at)
                if end > at:
                    found.append(name)
                at = end + 1
        if flags & 2:  # FHCRC
            at += 2
    except (struct.error, ValueError):
        raise CorruptInput("malformed gzip header", path) from None
    if at > len(raw):
        raise CorruptInput("malformed gzip header", path)
    return at, found


#: inflated bytes past what a header declares that are dropped as stray data; more is a bomb
BOMB_SLACK = 1 << 20


def inflate_gzip(raw: bytes, path: str, limit: int | None = None, what: str = "data after the image",
                 refuse_bombs: bool = False) -> tuple:
    """(inflated bytes, what is not kept): every gzip member of `raw`, inflated up to `limit` bytes
    (memory stays within it). Reported: the gzip header's file name, comment or extra field (written
    back empty), bytes after the last member and inflated bytes beyond `limit` (named `what`). With
    `refuse_bombs`, a stream holding more than BOMB_SLACK bytes beyond `limit` is refused instead."""
    import zlib

    out, notes, pos, total = [], [], 0, 0
    view = memoryview(raw)
    while pos < len(raw):
        if raw[pos:pos + 2] != b"\x1f\x8b":
            if pos == 0:
                raise CorruptInput("not a gzip file", path)
            if any(view[pos:]):
                notes.append("data after the gzip stream")
            break
        start, found = _gzip_header(raw, pos, path)
        notes += [f for f in found if f not in notes]
        dec = zlib.decompressobj(-15)
        room = None if limit is None else max(limit - total, 0)
        extra = BOMB_SLACK if refuse_bombs else 0
        try:
            piece = dec.decompress(view[start:]) if room is None else dec.decompress(view[start:], room + extra + 1)
        except zlib.error as exc:
            raise CorruptInput(f"compressed data is corrupt ({exc})", path) from None
        if room is not None and len(piece) > room + extra and refuse_bombs:
            raise CorruptInput(f"inflates to more than the {limit} bytes its header declares: refused as a "
                               "decompression bomb", path)
        if room is not None and len(piece) > room:
            out.append(piece[:room])
            notes.append(what)  # more than the header accounts for: not inflated further
            break
        out.append(piece)
        total += len(piece)
        if not dec.eof:
            raise CorruptInput("compressed data is truncated", path)
        pos = len(raw) - len(dec.unused_data) + 8  # after the member's CRC32 and size
    return b"".join(out), notes


def _compressed_end(raw, start: int, size: int, encoding: str, path: str) -> tuple:
    """(end offset, decoded bytes, fields found in gzip headers) of the compressed streams (zlib, gzip
    members or bzip2) from `start` that decode to at least `size` bytes; output discarded as it comes."""
    import bz2
    import zlib

    view, pos, got, named = memoryview(raw), start, 0, []
    try:
        while got < size:
            if pos >= len(raw):
                raise CorruptInput(f"compressed data is truncated ({got} of {size} bytes)", path)
            if encoding != "bzip2" and raw[pos:pos + 2] == b"\x1f\x8b":
                named += [f for f in _gzip_header(raw, pos, path)[1] if f not in named]
            dec = bz2.BZ2Decompressor() if encoding == "bzip2" else zlib.decompressobj(47)  # zlib or gzip
            got += len(dec.decompress(view[pos:], 1 << 22))
            while not dec.eof:
                if encoding == "bzip2":
                    if dec.needs_input:
                        raise CorruptInput("compressed data is truncated", path)
                    got += len(dec.decompress(b"", 1 << 22))
                else:
                    if not dec.unconsumed_tail:
                        raise CorruptInput("compressed data is truncated", path)
                    got += len(dec.decompress(dec.unconsumed_tail, 1 << 22))
            pos = len(raw) - len(dec.unused_data)
    except (zlib.error, OSError, ValueError, EOFError) as exc:
        raise CorruptInput(f"compressed data is corrupt ({exc})", path) from None
    return pos, got, named


def _text_end(raw, start: int, count: int, path: str, hexdigits: bool = False) -> int:
    """Offset just after the `count`-th number (or, hex, the 2*count-th hex digit) from `start`,
    with its line end; anything but numbers and separators before it is refused."""
    if hexdigits:
        regex, sep, need = re.compile(rb"[0-9A-Fa-f]"), re.compile(rb"\s*"), 2 * count
    else:
        regex, sep, need = _NUMBER, re.compile(rb"[\s,]*"), count
    pos, seen = start, 0
    while seen < need:
        pos = sep.match(raw, pos).end()
        m = regex.match(raw, pos)
        if not m:
            if pos >= len(raw):
                raise CorruptInput("the text data holds fewer values than the header says", path)
            raise CorruptInput("the text data holds something that is not a value", path)
        pos, seen = m.end(), seen + 1
    if raw[pos:pos + 2] == b"\r\n":
        return pos + 2
    return pos + 1 if raw[pos:pos + 1] == b"\n" else pos


def _skip_lines(raw, start: int, lines: int, path: str) -> int:
    for _ in range(lines):
        end = raw.find(b"\n", start)
        if end < 0:
            raise CorruptInput("line skip goes past the end of the data", path)
        start = end + 1
    return start


def data_region(raw, start: int, layout: dict, path: str) -> tuple:
    """(kept bytes, names of what is dropped) of the data that follows an attached header from
    `start` (0 for a detached data file), as `layout` (metaimage_layout/nrrd_layout) describes it:
    skipped lines and bytes, and whatever follows the data, go; so do decoded bytes beyond the
    header's size (the stream is then compressed again)."""
    changed = []
    view = memoryview(raw)
    first = start
    start = _skip_lines(raw, start, layout.get("line_skip", 0), path)
    skip, size, enc = layout.get("byte_skip", 0), layout["size"], layout["encoding"]
    if skip == -1:
        if enc != "raw":
            raise CorruptInput("a header size or byte skip of -1 needs raw data", path)
        begin = len(raw) - size
        if begin < start:
            raise CorruptInput(f"the data is {len(raw) - start} bytes, the header needs {size}", path)
    elif skip and enc != "raw" and layout.get("skip_decoded"):
        raise UnsupportedFormat("NRRD byte skip inside compressed or text data is not supported; convert the "
                                "file to NIfTI first", path)
    else:
        begin = start + skip
    if begin > first and any(view[first:begin]):
        changed.append("data skipped before the voxels")
    kept = None
    if enc == "raw":
        end = begin + size
        if end > len(raw):
            raise CorruptInput(f"the data is {len(raw) - begin} bytes, the header needs {size}", path)
    elif enc in ("zlib", "gzip", "bzip2"):
        end, got, named = _compressed_end(raw, begin, size, enc, path)
        if got > size or named:  # more than the voxels, or a name in a gzip header: compressed again
            changed += named + (["data after the voxels"] if got > size else [])
            kept = _recompress(bytes(view[begin:end]), size, enc, path)
    else:
        end = _text_end(raw, begin, size, path, hexdigits=enc == "hex")
    if end < len(raw) and any(view[end:]):
        changed.append("data after the voxels")
    if kept is None:
        kept = raw if (begin, end) == (0, len(raw)) and isinstance(raw, bytes) else bytes(view[begin:end])
    return kept, changed


def _recompress(blob: bytes, size: int, encoding: str, path: str) -> bytes:
    import bz2
    import gzip
    import zlib

    if encoding == "bzip2":
        dec = bz2.BZ2Decompressor()
        data = dec.decompress(blob, size)
        while len(data) < size and not dec.eof:
            data += dec.decompress(b"", size - len(data))
        return bz2.compress(data[:size])
    if blob[:2] == b"\x1f\x8b":
        return gzip.compress(inflate_gzip(blob, path, limit=size)[0], compresslevel=6, mtime=0)
    dec = zlib.decompressobj()
    return zlib.compress(dec.decompress(blob, size), 6)


def _header_lines(text: bytes, sep: str) -> dict:
    out = {}
    for line in text.decode("latin-1").splitlines():
        if line.startswith("#") or sep not in line or (sep == ":" and ":=" in line):
            continue
        k, _, v = line.partition(sep)
        out.setdefault(k.strip().lower(), v.strip())
    return out


def metaimage_layout(header: bytes, path: str) -> dict:
    """Data size, encoding, header size and data file of a MetaImage header."""
    h = _header_lines(header, "=")
    try:
        dims = [int(x) for x in h["dimsize"].split()]
        elem = _MET_SIZE[h["elementtype"].upper()]
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


def nrrd_layout(header: bytes, path: str) -> dict:
    """Data size, encoding, skips and data file of a NRRD header."""
    h = _header_lines(header, ":")
    try:
        sizes = [int(x) for x in h["sizes"].split()]
        elem = _NRRD_SIZE[re.sub(r"\s+", " ", h["type"].lower())]
        enc = _NRRD_ENCODING[h.get("encoding", "").lower()]
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


def _nifti_voxel_bytes(buf, fmt: str, endian: str):
    """Bytes of voxel data a NIfTI-1/Analyze (fmt "nifti1") or NIfTI-2 header declares, or None."""
    import struct

    if fmt == "nifti2":
        dims = struct.unpack_from(endian + "8q", buf, 16)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 14)
    else:
        dims = struct.unpack_from(endian + "8h", buf, 40)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 72)
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    count = 1
    for d in dims[1:dims[0] + 1]:
        if d < 1:
            return None
        count *= d
    return count * (bitpix // 8)


def nifti_pair_data(img: bytes, header: bytes, fmt: str, path: str) -> tuple:
    """(kept bytes, what is dropped) of the .img of a NIfTI/Analyze .hdr/.img pair: bytes before
    vox_offset zeroed (the offset stays valid), bytes after the voxels dropped."""
    import struct

    size = 540 if fmt == "nifti2" else 348
    if len(header) < size:
        raise CorruptInput("header is truncated", path)
    endian = "<" if struct.unpack_from("<i", header, 0)[0] == size else ">"
    two = fmt == "nifti2"
    vox = struct.unpack_from(endian + ("q" if two else "f"), header, 168 if two else 108)[0]
    vox = int(vox) if vox == vox and 0 <= vox < 1 << 40 else 0
    nbytes = _nifti_voxel_bytes(header, "nifti2" if two else "nifti1", endian)
    if nbytes is None:
        return img, []
    end = vox + nbytes
    if len(img) < end:
        raise CorruptInput(f"the .img file is {len(img)} bytes, the header needs {end}", path)
    changed = []
    if any(memoryview(img)[end:]):
        changed.append("data after the voxels")
    if not any(memoryview(img)[:vox]):
        return (img if end == len(img) else img[:end]), changed  # the usual case: no copy to edit
    changed.insert(0, "data before the voxels")
    buf = bytearray(img[:end])
    buf[:vox] = bytes(vox)
    return bytes(buf), changed


def point_to(kind: str, header: bytes, name: str) -> bytes:
    """A detached MetaImage/NRRD header naming `name` as its data file (other kinds unchanged)."""
    key, sep = {"metaimage": (b"elementdatafile", b"="), "nrrd": (b"data file", b":")}.get(kind, (None, None))
    if key is None:
        return header
    lines = header.split(b"\n")
    for i, line in enumerate(lines):
        k, found, _ = line.partition(sep)
        if found and k.strip().lower() in (key, key.replace(b" ", b"")):
            lines[i] = k + sep + b" " + name.encode("latin-1")
            break
    return b"\n".join(lines)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        from ..errors import InputError

        raise InputError(f"cannot read ({exc.strerror})", path) from None


def _gz_limit(kind: str, head: bytes, path: str):
    """Inflated bytes a gzipped NIfTI/MGH header accounts for (None: no bound from the header)."""
    import struct

    if kind == "mgh":
        if len(head) < 28:
            return None
        version, w, h, d, frames, dtype = struct.unpack_from(">6i", head, 0)
        if dtype not in _MGH_ITEMSIZE or min(w, h, d, frames) <= 0:
            return None
        return _MGH_HEADER + w * h * d * frames * _MGH_ITEMSIZE[dtype] + (1 << 24)  # + the tags
    size = 540 if kind == "nifti2" else 348
    if len(head) < size:
        return None
    endian = "<" if struct.unpack_from("<i", head, 0)[0] == size else ">"
    vox = struct.unpack_from(endian + ("q" if kind == "nifti2" else "f"), head, 168 if kind == "nifti2" else 108)[0]
    if vox != vox or head[344:346] != b"n+" and kind != "nifti2" or kind == "nifti2" and head[4:6] != b"n+":
        return None  # a .hdr (its data is in the .img) or Analyze: no voxel data here
    return _nifti_data_end(head, "nifti2" if kind == "nifti2" else "nifti1", endian, int(vox))


def _data_file(layout: dict, path: str):
    """The detached data file a MetaImage/NRRD header names (beside it), or None when attached."""
    v = layout.get("file", "").strip()
    if v.upper() in ("LOCAL", ""):
        return None
    if v.upper().startswith("LIST") or "%" in v:
        raise UnsupportedFormat("a header with a list or pattern of data files is not supported; convert the "
                                "image first", path)
    from .. import untrusted

    src = untrusted.reference(path, v)  # the rule every reader applies: in the header's folder or below
    if not os.path.isfile(src):
        from ..errors import InputError

        raise InputError(f"the data file {untrusted.shown(v)} is missing", path)
    return src


def scrub_file(kind: str, path: str, data: bytes | None = None, verify: bool = True,
               keep_descriptors: bool = False) -> tuple:
    """(new bytes, names of what is removed, [(companion path, its new bytes)]) of one file that is
    not DICOM: the header scrubbed, and its data (attached, a detached data file or the .img of a
    .hdr) cut to exactly what the header describes. `kind` is anonymize.classify's; `data` the
    file's bytes when already read; `verify` decodes rasters and MINC again to compare."""
    import gzip

    gz = kind.endswith(".gz")
    base = kind[:-3] if gz else kind
    notes = []
    if data is None:
        data = _read(path)
    if gz:
        head, _ = inflate_gzip(data, path, limit=544)
        data, notes = inflate_gzip(data, path, limit=_gz_limit(base, head, path),
                                   what="data after the voxels" if base != "mgh" else "tail data", refuse_bombs=True)
    companions = []
    if base in ("nifti1", "nifti2", "analyze"):
        new, changed = scrub_nifti_like(data, base, path)
        from ..formats.nifti import data_of

        img = data_of(path)
        if img == "":
            from ..errors import InputError

            raise InputError("the .img file of this .hdr is missing", path)
        if img:
            from .. import untrusted

            img = untrusted.reference(path, os.path.basename(img), "image file")  # a link may lead out
            raw = _read(img)
            if img.lower().endswith(".gz"):
                inflated, more = inflate_gzip(raw, img, limit=_pair_limit(data, base), what="data after the voxels",
                                              refuse_bombs=True)
                kept, ch = nifti_pair_data(inflated, data, base, img)
                kept = gzip.compress(kept, compresslevel=6, mtime=0)
                ch = more + ch
            else:
                kept, ch = nifti_pair_data(raw, data, base, img)
            companions.append((img, kept))
            changed += [f"{os.path.basename(img)}: {c}" for c in ch]
    elif base == "metaimage":
        new, changed = scrub_metaimage(data, path)
        src = _data_file(metaimage_layout(data, path), path)
        if src:
            kept, ch = data_region(_read(src), 0, metaimage_layout(data, path), src)
            companions.append((src, kept))
            changed += [f"{os.path.basename(src)}: {c}" for c in ch]
    elif base == "nrrd":
        new, changed = scrub_nrrd(data, path)
        layout = nrrd_layout(data[:data.find(b"\n\n") + 1] if b"\n\n" in data else data, path)
        src = _data_file(layout, path)
        if src:
            raw = _read(src)
            kept, ch = data_region(raw, 0, layout, src)
            companions.append((src, kept))
            changed += [f"{os.path.basename(src)}: {c}" for c in ch]
    elif base == "json":
        new, changed = scrub_json(data, path, keep_descriptors)
    elif base == "mgh":
        new, changed = scrub_mgh(data, path)
    elif base == "minc":
        new, changed = scrub_minc(data, path, verify=verify)
    elif base in ("png", "jpeg", "tiff", "bmp"):
        new, changed = scrub_raster(base, data, path, verify=verify)
    else:
        raise UnsupportedFormat(f"no scrubber for {kind}", path)
    if gz:
        new = gzip.compress(new, compresslevel=6, mtime=0)
    return new, notes + changed, companions


def _pair_limit(header: bytes, kind: str):
    import struct

    size = 540 if kind == "nifti2" else 348
    endian = "<" if struct.unpack_from("<i", header, 0)[0] == size else ">"
    two = kind == "nifti2"
    vox = struct.unpack_from(endian + ("q" if two else "f"), header, 168 if two else 108)[0]
    nbytes = _nifti_voxel_bytes(header, "nifti2" if two else "nifti1", endian)
    if nbytes is None or vox != vox or not 0 <= vox < 1 << 40:
        return None
    return int(vox) + nbytes
