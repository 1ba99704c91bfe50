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
  has no text fields.
- JSON sidecars: identifying keys (every DICOM keyword the profile does not keep), keys that are
  not field names, tables of pseudonyms; a medconv mapping file is never copied.
"""
from __future__ import annotations

import json
import re

from ..errors import CorruptInput, MedconvError, UnsupportedFormat

# (offset, length) of free-text fields.
NIFTI1_TEXT = {"data_type": (4, 10), "db_name": (14, 18), "extents": (32, 4), "session_error": (36, 2),
               "descrip": (148, 80), "aux_file": (228, 24), "intent_name": (328, 16)}
NIFTI2_TEXT = {"descrip": (240, 80), "aux_file": (320, 24), "intent_name": (508, 16), "unused_str": (525, 15)}
ANALYZE_TEXT = {"data_type": (4, 10), "db_name": (14, 18), "descrip": (148, 80), "aux_file": (228, 24),
                "generated": (263, 10), "scannum": (273, 10), "patient_id": (283, 10), "exp_date": (293, 10),
                "exp_time": (303, 10), "hist_un0": (313, 3)}

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
    fields = {"nifti1": NIFTI1_TEXT, "nifti2": NIFTI2_TEXT, "analyze": ANALYZE_TEXT}[fmt]
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
    import struct

    if fmt == "nifti1":
        dims = struct.unpack_from(endian + "8h", buf, 40)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 72)
    else:
        dims = struct.unpack_from(endian + "8q", buf, 16)
        (bitpix,) = struct.unpack_from(endian + "h", buf, 14)
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8 or vox < (348 if fmt == "nifti1" else 540):
        return None
    count = 1
    for d in dims[1:dims[0] + 1]:
        if d < 1:
            return None
        count *= d
    return vox + count * (bitpix // 8)


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
        if key in METAIMAGE_KEYS:
            out.append(line)
        elif line.strip():
            changed.append(key or "?")
        if key == "elementdatafile":
            return b"".join(out) + data[pos:], changed
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
            return b"".join(out) + data[pos:], changed
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
    """True for a medconv --mapping table: a JSON object whose keys are among "patient"/"uid" with
    dict values, or whose values are all tables of original -> pseudonym."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, dict) for v in obj.values()):
        return False
    return set(obj) <= {"patient", "uid"} or all(_pseudonym_table(v) for v in obj.values())


def mapping_file(path: str, data: bytes | None = None) -> bool:
    """True when the file at `path` (or `data`, its bytes) is a medconv mapping (see is_mapping)."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return False
    if not any(m in data for m in (b'"patient"', b'"uid"', b'"ANON-', b'"2.25.')):
        return False  # cheap: a sidecar is not parsed twice
    try:
        return is_mapping(json.loads(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def scrub_json(data: bytes, path: str) -> tuple:
    """(new bytes, keys removed) of a JSON sidecar: at any depth, keys that identify (SIDECAR_KEYS,
    names, births, addresses, physicians, comments, institution...), keys that do not look like a
    field name (a name, ID or UID used as a key), and tables of original -> pseudonym are removed. A medconv mapping file is
    refused (it is never copied). A UTF-8 byte order mark is accepted and not written back."""
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptInput("not valid JSON", path) from None
    if is_mapping(obj):
        raise UnsupportedFormat(MAPPING_MESSAGE, path)
    changed = []

    def walk(o):
        if isinstance(o, dict):
            for k in list(o):
                low = k.lower()
                if low in SIDECAR_KEYS or re.search(r"(name|birth|address|physician|comments?)$|^institution", low):
                    changed.append(k)
                    del o[k]
                elif not _JSON_FIELD.fullmatch(k) or _PSEUDONYM_VALUE.fullmatch(k):
                    changed.append("key that is not a field name")  # the key itself may identify
                    del o[k]
                elif _pseudonym_table(o[k]):
                    changed.append(k)  # original -> pseudonym: its keys are the originals
                    del o[k]
                else:
                    walk(o[k])
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8"), changed


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
    from ..formats.mgh import _tags

    tail = data[end:]
    # TR, flip angle, TE, TI, FoV: kept only as a whole block of five plausible floats that is the
    # whole tail or is followed by tags; anything else (a short or text tail) is dropped
    floats = tail[:20]
    values = struct.unpack(">5f", floats) if len(floats) == 20 else ()
    if not (values and all(abs(v) < 1e6 for v in values) and (not any(tail[20:]) or _tags(tail[20:]))):
        floats = b""
        if any(tail):
            changed.append("tail data")
    rest = tail[len(floats):]
    if floats and any(rest):
        names = [t["name"] if t["name"] != "unknown" else f"tag {t['tag']}" for t in _tags(rest)]
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
    else:
        raise CorruptInput("not a MINC file (neither NetCDF nor HDF5)", path)
    if verify and changed:
        _verify_minc(path, new)
    return (new, changed) if changed else (data, changed)


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


_NC_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _scrub_minc1(data: bytes, path: str) -> tuple:
    """Rewrite a NetCDF classic file with only the kept variables and attributes; every kept
    variable's data bytes are copied unchanged."""
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
                pos += _pad4(size)
            return out

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

    def is_record(v):
        return bool(v[1]) and dims[v[1][0]][1] == 0

    if any(i >= len(dims) for v in variables for i in v[1]):
        raise CorruptInput("malformed NetCDF header (unknown dimension)", path)
    changed = []
    keep = [v for v in variables if v[0] in _MINC1_KEEP]
    for v in variables:
        if v[0] not in _MINC1_KEEP:
            # named: the attributes that are not MINC's own bookkeeping (full_name, modality ...)
            changed += [f"{v[0]}.{a[0]}" for a in v[2] if _minc_attr(
                a[0], a[3].rstrip(b"\x00").decode("latin-1") if a[1] == 2 else None, set()) is False] or [v[0]]
            if is_record(v):
                raise UnsupportedFormat("MINC1 file with a record variable to remove; convert it to NIfTI first", path)
    names = {v[0] for v in keep}

    def filt(items, label):
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

    new_gatts = filt(gatts, "")
    for v in keep:
        v[2] = filt(v[2], v[0] + ".")
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
        count = 1
        for i in v[1]:
            count *= dims[i][1]
        return count * _NC_SIZE[v[3]]

    ends = [v[5] + nbytes(v) for v in variables if not is_record(v)] + ([rec_end] if rec_end is not None else [])
    data_end = len(data) if records_all and rec_end is None else max(ends + [pos])
    if not changed:
        if len(data) > data_end and any(data[data_end:]):
            # bytes after the last variable's data belong to nothing: dropped
            return data[:data_end], ["data after the variables"]
        return data, changed

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
    fixed = [v for v in keep if not is_record(v)]
    records = [v for v in keep if is_record(v)]
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
    new = header([begins[v[0]] for v in keep]) + b"".join(body)
    return new, changed


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
        if not kind[0] & 0x20 or kind in _PNG_KEEP:  # bit 5 of the first letter clear: critical
            out.append(data[pos:end])
        else:
            changed.append(kind.decode("latin-1"))
        pos = end
        if kind == b"IEND":
            break
    if any(data[pos:]):
        changed.append("data after IEND")
    return b"".join(out), changed


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
        if marker == 0xE0:  # APP0: rewritten as a minimal JFIF segment; JFXX (thumbnail) and others go
            if body.startswith(b"JFIF\x00") and len(body) >= 12:
                jfif = body[:12] + b"\x00\x00"  # identifier, version, units, densities; no thumbnail
                if jfif != body:
                    changed.append("APP0")
                out.append(b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif)
            else:
                changed.append("APP0 JFXX" if body.startswith(b"JFXX\x00") else "APP0")
            continue
        if marker == 0xEE:  # APP14: only Adobe's, cut to its 12-byte payload (colour transform)
            if body.startswith(b"Adobe") and len(body) >= 12:
                if len(body) > 12:
                    changed.append("APP14")
                out.append(b"\xff\xee" + struct.pack(">H", 14) + body[:12])
            else:
                changed.append("APP14")
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
                    out.append(data[start:i])
                    pos = i
                    break
    if any(data[pos:]):
        changed.append("data after EOI")
    if orientation not in (None, 0, 1):
        # keep the display orientation: a minimal EXIF block holding only the Orientation tag
        exif = _exif_minimal(orientation)
        at = 2 + (len(out[1]) if len(out) > 1 and out[1][1] == 0xE0 else 0)
        new = b"".join(out)
        return new[:at] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + new[at:], changed
    return b"".join(out), changed


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
    import struct

    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise CorruptInput("not a (classic) TIFF file", path)
    bo = "<" if data[:2] == b"II" else ">"
    buf = bytearray(data)
    changed, seen = [], set()

    def zero(off, n):
        if off >= 0 and n > 0:
            buf[off:off + n] = bytes(len(buf[off:off + n]))

    def entries(off):
        if off in seen or off + 2 > len(buf):
            raise CorruptInput("TIFF IFD offset loops or is out of range", path)
        seen.add(off)
        (n,) = struct.unpack_from(bo + "H", buf, off)
        if off + 6 + 12 * n > len(buf):
            raise CorruptInput("TIFF IFD is truncated", path)
        out = []
        for i in range(n):
            tag, typ, count = struct.unpack_from(bo + "HHI", buf, off + 2 + 12 * i)
            out.append((tag, typ, count, bytes(buf[off + 2 + 12 * i:off + 14 + 12 * i])))
        return out, struct.unpack_from(bo + "I", buf, off + 2 + 12 * n)[0]

    def entries_at(off):
        """An IFD's entries as they are now (after the dropped ones were taken out)."""
        (n,) = struct.unpack_from(bo + "H", buf, off)
        return [struct.unpack_from(bo + "HHI", buf, off + 2 + 12 * i) + (bytes(buf[off + 2 + 12 * i:off + 14 + 12 * i]),)
                for i in range(n)], None

    def numbers(typ, count, raw):
        """The unsigned integers (SHORT, LONG or IFD) an entry holds: offsets or byte counts."""
        fmt = {3: "H", 4: "I", 13: "I"}.get(typ)
        if fmt is None:
            return []
        where, size = value_range(typ, count, raw)
        if where is not None and where + size > len(buf):
            return []
        src = raw[8:12] if where is None else bytes(buf[where:where + size])
        return list(struct.unpack_from(bo + f"{count}{fmt}", src, 0))

    def value_range(typ, count, raw):
        size = count * _TIFF_SIZE.get(typ, 1)
        return (struct.unpack_from(bo + "I", raw, 8)[0], size) if size > 4 else (None, size)

    def offsets(typ, count, raw):
        where, size = value_range(typ, count, raw)
        if typ not in (4, 13) or (where is not None and where + size > len(buf)):
            return []
        src = raw[8:12] if where is None else bytes(buf[where:where + size])
        return list(struct.unpack_from(bo + f"{count}I", src, 0))

    def wipe(off):
        """Zero a whole IFD (EXIF, GPS, Interop) with its values and its own sub-IFDs."""
        if off in seen or off < 8 or off + 2 > len(buf):
            return
        items, _ = entries(off)
        for tag, typ, count, raw in items:
            drop(tag, typ, count, raw)
        zero(off, 6 + 12 * len(items))

    def drop(tag, typ, count, raw):
        """Zero one entry's value (and, for an EXIF/GPS/Interop pointer, the whole IFD it names)."""
        if tag in _TIFF_SUB_IFDS:
            for sub in offsets(typ, count, raw):
                wipe(sub)
        where, size = value_range(typ, count, raw)
        if where is not None:
            zero(where, size)

    kept_ifds = []

    def ifd(off):
        items, nxt = entries(off)
        kept_ifds.append(off)
        keep, subs = [], []
        for tag, typ, count, raw in items:
            if tag not in _TIFF_KEEP or (typ == 2 and tag not in _TIFF_ASCII_KEEP):
                changed.append(TIFF_TAGS.get(tag, f"tag {tag}"))
                drop(tag, typ, count, raw)
                continue
            keep.append(raw)
            if tag == 330:  # SubIFDs (reduced images, DNG): scrubbed like the main ones
                subs += offsets(typ, count, raw)
        if len(keep) != len(items):
            block = struct.pack(bo + "H", len(keep)) + b"".join(keep) + struct.pack(bo + "I", nxt)
            zero(off, 6 + 12 * len(items))
            buf[off:off + len(block)] = block
        for sub in subs:
            if 8 <= sub < len(buf):
                ifd(sub)
        return nxt

    off = struct.unpack_from(bo + "I", buf, 4)[0]
    while off:
        off = ifd(off)
    # every byte that no kept IFD, value, strip or tile references is zeroed, and the file ends
    # with the last referenced byte: nothing hides in slack space or after the image
    used = [(0, 8)]
    for off in kept_ifds:
        items, _ = entries_at(off)
        used.append((off, off + 6 + 12 * len(items)))
        by_tag = {}
        for tag, typ, count, raw in items:
            where, size = value_range(typ, count, raw)
            if where is not None:
                used.append((where, where + size))
            by_tag[tag] = (typ, count, raw)
        for a, b in _TIFF_DATA:
            if a in by_tag and b in by_tag:
                starts = numbers(*by_tag[a])
                used += [(o, o + n) for o, n in zip(starts, numbers(*by_tag[b]))]
    used.sort()
    cursor, slack = 0, False
    for start, end in used:
        if start > cursor:
            slack |= any(buf[cursor:start])
            zero(cursor, start - cursor)
        cursor = max(cursor, end)
    if cursor < len(buf):
        slack |= any(buf[cursor:])
        del buf[cursor:]
    if slack:
        changed.append("data outside the image structure")
    return bytes(buf), changed


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


def scrub_raster(kind: str, data: bytes, path: str, verify: bool = True) -> tuple:
    """(new bytes, fields removed) for png, jpeg, tiff or bmp; with `verify` the pixels are decoded
    before and after and must be identical."""
    if kind == "bmp":
        return data, []  # no text fields
    import struct

    try:
        new, changed = {"png": scrub_png, "jpeg": scrub_jpeg, "tiff": scrub_tiff}[kind](data, path)
    except (struct.error, IndexError, ValueError, OverflowError):
        raise CorruptInput(f"malformed {kind.upper()} structure", path) from None
    if not changed:
        return data, changed
    if verify:
        _same_pixels(data, new, path)
    return new, changed
