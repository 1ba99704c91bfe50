"""Scrub the headers of files that are not DICOM: the orchestration, and JSON sidecars.

Every format backend that declares the "scrub" capability (formats/_registry.py) removes its own
header's identifying text and the bytes no header field accounts for; scrub_file applies it to one
file and its data file (a detached data file, the .img of a .hdr), for anonymize and --check alike.
Voxel bytes and geometry fields are copied unchanged, so data and affine stay bit-identical. Every
scrubber returns (new bytes, names of the fields it removed); `--check` reports those names for a
file, so "nothing to remove" means clean.

JSON sidecars: only known acquisition keys (sidecar_keys.py) at any depth; identifying keys,
free-text descriptors (unless --keep-descriptors), keys that are not field names, tables of
pseudonyms and unknown keys (unless --keep-descriptors) go; a medconv mapping file is never copied.
"""
from __future__ import annotations

import json
import re

from .. import formats
from ..errors import CorruptInput, InputError, UnsupportedFormat

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


def point_to(kind: str, header: bytes, name: str) -> bytes:
    """A scrubbed detached header (MetaImage, NRRD) naming `name` as its data file; other kinds unchanged."""
    fmt = kind.removesuffix(".gz")
    return formats.point_to(fmt, header, name) if fmt in formats.BY_NAME else header


def scrub_file(kind: str, path: str, data: bytes | None = None, verify: bool = True,
               keep_descriptors: bool = False) -> tuple:
    """(new bytes, names of what is removed, [(companion path, its new bytes)]) of one file that is
    not DICOM: the header scrubbed, and its data (attached, a detached data file or the .img of a
    .hdr) cut to exactly what the header describes. `kind` is anonymize.classify's; `data` the
    file's bytes when already read; `verify` decodes rasters and MINC again to compare."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", path) from None
    name = kind.removesuffix(".gz")  # a gzipped file's backend inflates it (data begins with the gzip magic)
    if name == "json":
        new, changed = scrub_json(data, path, keep_descriptors)
        return new, changed, []
    if name not in formats.BY_NAME:
        raise UnsupportedFormat(f"no scrubber for {kind}", path)
    return formats.scrub(name, data, path, verify=verify)
