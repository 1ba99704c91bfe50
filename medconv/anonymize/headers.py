"""Scrub identifying free text from non-DICOM headers at the byte/text level.

Voxel bytes and geometry fields are copied unchanged, so data and affine stay
bit-identical. MINC and MGH are refused: their attributes (MINC patient/study
variables in NetCDF/HDF5, MGH trailing tags with command lines and file names)
cannot be scrubbed safely in place by this module.
"""
from __future__ import annotations

import json
import re

from ..errors import CorruptInput, UnsupportedFormat

# (offset, length) of free-text fields.
NIFTI1_TEXT = {"data_type": (4, 10), "db_name": (14, 18), "descrip": (148, 80), "aux_file": (228, 24),
               "intent_name": (328, 16)}
NIFTI2_TEXT = {"descrip": (240, 80), "aux_file": (320, 24), "intent_name": (508, 16)}
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
    if fmt in ("nifti1", "nifti2") and len(buf) >= size + 4:
        # Extensions (dcm2niix and others store DICOM text there): zero every byte between
        # the header and the voxels, so vox_offset and the data stay where they were.
        import struct

        magic = bytes(buf[344:348]) if fmt == "nifti1" else bytes(buf[4:8])
        endian = "<" if struct.unpack_from("<i", buf, 0)[0] == size else ">"
        if magic.startswith(b"n+"):
            vox = struct.unpack_from(endian + ("f" if fmt == "nifti1" else "q"), buf, 108 if fmt == "nifti1" else 168)[0]
            end = min(int(vox), len(buf))
        else:
            end = len(buf)  # a .hdr: everything after the header is extension
        if end > size and any(buf[size:end]):
            changed.append("extensions")
            buf[size:end] = bytes(end - size)
    return bytes(buf), changed


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
        field = text.split(":", 1)[0].strip().lower()
        if field in NRRD_FIELDS:
            out.append(line)
        else:
            changed.append(field)
    # A detached header ends without a blank line.
    return b"".join(out), changed


def scrub_json(data: bytes, path: str) -> tuple:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptInput("not valid JSON", path) from None
    changed = []

    def walk(o):
        if isinstance(o, dict):
            for k in list(o):
                if k.lower() in SIDECAR_KEYS or re.search(r"(name|birth|address|physician)$", k.lower()):
                    changed.append(k)
                    del o[k]
                else:
                    walk(o[k])
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8"), changed


def refuse(fmt: str, path: str):
    raise UnsupportedFormat(f"{fmt.upper()} headers are not anonymised by medconv "
                            f"(convert to NIfTI first, then anonymise)", path)
