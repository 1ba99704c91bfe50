"""anonymize --check: report identifying data left in files, without printing it."""
from __future__ import annotations

import re

from . import profile
from .actions import CODES, VOCABULARY_UID_TAGS, is_registry_uid, lookup, unscrubbable

DATE_IN_NAME = re.compile(r"(?<!\d)(19|20)\d\d[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
#: what a patient pseudonym looks like (pseudonym.Pseudonymizer.patient)
PSEUDONYM = re.compile(r"ANON-[BCDFGHJKMNPQRSTV]{16}")
#: the dummy values the profile's D action writes (actions._dummy), per VR
DUMMIES = {"PN": {"ANONYMIZED"}, "DA": {"19000101"}, "TM": {"000000"}, "DT": {"19000101000000"}}
#: file meta elements an anonymised file may hold (everything else can name a host or application)
META_KEPT = {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
#: free text the table leaves in place that can still hold a name: listed under "review"
#: (Code Meaning, Content Description, Graphic Layer Description, Segment Label; and any text of
#: VR LT, ST, UT or UC the table does not name: Text Value, Document Title, Unformatted Text Value...)
REVIEW_TAGS = {0x00080104, 0x00700081, 0x00700068, 0x00620005}
REVIEW_VRS = ("LT", "ST", "UT", "UC")
#: coding schemes of published vocabularies: their Code Meanings are the vocabulary's, not free text
#: (a local scheme, 99xxx or L..., is a site's own list and is reviewed)
STANDARD_SCHEMES = {"DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "FMA", "RADLEX", "NCIT", "UMLS", "MSH", "I10", "I9C",
                    "ICD10", "ICDO3", "HL70396", "ACR", "NEU", "UBERON", "RXNORM", "PUBCHEM_CID", "MDC", "NCDR",
                    "BARI", "CD2", "DC", "ISO3166_1", "ISO639_1", "ISO639_2", "DCMUID", "CAS", "ITIS_TSN", "MGI",
                    "IBSI", "ATC", "NDC", "RFC5646", "NYUMCCG", "HGNC", "ENSEMBL", "NICIP", "POS", "SCPECG"}
#: text medconv itself writes: the dummy value and the code meanings of its de-identification methods
OWN_TEXT = {"ANONYMIZED"} | {meaning for _, meaning in CODES.values()}


def mask(value) -> str:
    """Enough to recognise the element, never the value: 'Jo*** (8 chars)'."""
    text = str(value)
    return f"{text[:2]}*** ({len(text)} chars)" if len(text) > 2 else f"*** ({len(text)} chars)"


def empty_value(v) -> bool:
    """True for a value that holds nothing: None, blanks/NULs, an empty sequence or list."""
    if v is None:
        return True
    if isinstance(v, (bytes, str)):
        return not v.strip(b"\x00 " if isinstance(v, bytes) else "\x00 ")
    try:
        return len(v) == 0
    except TypeError:
        return False


def _empty(elem) -> bool:
    return empty_value(elem.value)


def _is_dummy(elem) -> bool:
    """True when a value is what the D action writes (so a real value planted later is found)."""
    vr = elem.VR
    values = list(elem.value) if elem.VM > 1 and not isinstance(elem.value, (str, bytes)) else [elem.value]
    for v in values:
        if vr in DUMMIES:
            if str(v).strip() not in DUMMIES[vr]:
                return False
        elif vr == "UI":
            if not (is_registry_uid(v) or str(v).startswith("2.25.")):
                return False
        elif vr in ("IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
            try:
                if float(v) != 0:
                    return False
            except (TypeError, ValueError):
                return False
        elif isinstance(v, bytes):
            if v.strip(b"\x00 "):
                return False
        elif str(v).strip() != "ANONYMIZED":
            return False
    return True


def check_dicom(path: str, findings: list, patient_ids=(), letters=frozenset()) -> None:
    """Findings for one DICOM file, judged by the profile with the options the user gives (`letters`,
    as Options.letters()): what the file says was done is not taken on trust."""
    import warnings

    from .actions import deep_stack

    # deeply nested sequences are walked as the anonymiser walks them; pydicom's warnings about values
    # it decodes on the way (VR rules) are noise here
    with deep_stack(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_dicom(path, findings, patient_ids, letters)


def _check_dicom(path: str, findings: list, patient_ids=(), letters=frozenset()) -> None:
    import warnings


    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ..dicom import guards as dcm_guards
            ds = dcm_guards.dcmread(path, path, force=True)
            list(ds.keys())
    except Exception as exc:
        findings.append({"path": path, "where": "file", "what": f"unreadable DICOM ({type(exc).__name__})"})
        return
    letters = set(letters)
    what = unscrubbable(ds.get("SOPClassUID"))
    if what:
        findings.append({"path": path, "where": "SOPClassUID", "what": f"{what}: its content cannot be "
                         "de-identified by a program"})
    preamble = getattr(ds, "preamble", None)
    if preamble and any(preamble):
        findings.append({"path": path, "where": "preamble", "what": "the 128 bytes before DICM hold data"})
    deid = str(ds.get("PatientIdentityRemoved", "")).upper() == "YES"
    if not deid:
        findings.append({"path": path, "where": "PatientIdentityRemoved", "what": "missing or not YES"})
    meta = getattr(ds, "file_meta", None)
    for elem in meta or []:
        tag = int(elem.tag)
        where = "file meta " + (elem.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if tag not in META_KEPT:
            if not _empty(elem):
                findings.append({"path": path, "where": where, "what": "may name a host, application or person"})
        elif tag == 0x00020003 and "U" not in letters and elem.value and not (
                is_registry_uid(elem.value) or str(elem.value).startswith("2.25.")):
            findings.append({"path": path, "where": where, "what": f"original UID: {mask(elem.value)}"})
    accepted = {str(v) for v in patient_ids}
    for tag, keyword in ((0x00100010, "PatientName"), (0x00100020, "PatientID")):
        if tag in ds and not _empty(ds[tag]):
            value = str(ds[tag].value).strip()
            if value not in accepted and not PSEUDONYM.fullmatch(value):
                findings.append({"path": path, "where": keyword,
                                 "what": f"not a pseudonym (give --patient-id if you chose it): {mask(value)}"})
    try:
        _walk(ds, "", path, findings, letters, deid, top=True)
    except Exception as exc:
        findings.append({"path": path, "where": "data set", "what": f"cannot be parsed ({type(exc).__name__})"})
    name = str(ds.get("PatientName", "") or "")
    if not deid and not PSEUDONYM.fullmatch(name.strip()) and name.strip() not in accepted:
        # (a pseudonym or the --patient-id given is what medconv names its output folders after)
        for part in re.split(r"[\^ ]+", name):
            if len(part) >= 3 and part.lower() in path.lower():
                findings.append({"path": path, "where": "file name", "what": f"contains the patient name {mask(part)}"})


def _walk(ds, prefix, path, findings, letters, deid, top=False):
    scheme = str(ds.get(0x00080102).value or "").strip().upper() if 0x00080102 in ds else ""
    for elem in ds:
        tag = int(elem.tag)
        where = prefix + (elem.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if elem.tag.is_private:
            if not _empty(elem) or elem.VR == "SQ":
                findings.append({"path": path, "where": where, "what": "private element"})
            continue
        if lookup(tag) == "X":
            findings.append({"path": path, "where": where, "what": "overlay/curve group present"})
            continue
        if top and tag in (0x00100010, 0x00100020):
            continue  # checked against the pseudonym form above
        action = profile.effective_action(tag, letters)
        vr = elem.VR
        if action is None and not profile.known_public(tag):
            findings.append({"path": path, "where": where, "what": "public element named by neither the profile "
                             "table nor the data dictionary"})
            continue
        if vr == "SQ":
            if action in ("X", "Z", "X/Z") and not _empty(elem):
                findings.append({"path": path, "where": where, "what": f"sequence the profile removes ({action})"})
            for i, item in enumerate(elem.value or []):
                _walk(item, f"{where}[{i}].", path, findings, letters, deid)
            continue
        if _empty(elem):
            continue
        bad = None
        if action is None:
            if vr == "UI" and "U" not in letters and tag not in VOCABULARY_UID_TAGS:
                values = elem.value if elem.VM > 1 else [elem.value]
                if any(not is_registry_uid(v) and not str(v).startswith("2.25.") for v in values):
                    bad = "original UID"
            elif vr == "PN":
                bad = "person name"
            elif vr in ("DA", "DT") and not letters & {"L", "M"}:
                bad = "date"
        elif action in ("X", "Z", "X/Z", "X/Z/D"):
            bad = f"the profile says {action}"
        elif action in ("D", "Z/D", "X/D") and vr != "SQ" and not _is_dummy(elem):
            bad = "not replaced by a dummy value"
        elif action in ("U", "X/Z/U*") and vr == "UI":
            values = elem.value if elem.VM > 1 else [elem.value]
            if any(not is_registry_uid(v) and not str(v).startswith("2.25.") for v in values):
                bad = "original UID"
        if bad:
            findings.append({"path": path, "where": where, "what": f"{bad}: {mask(elem.value)}"})
        elif _review(tag, vr, action, letters) and str(elem.value).strip() not in OWN_TEXT and not (
                tag == 0x00080104 and scheme in STANDARD_SCHEMES):
            findings.append({"path": path, "where": where, "review": True,
                             "what": f"free text that may hold a name: {mask(elem.value)}"})


def _review(tag: int, vr: str, action, letters) -> bool:
    """Free text left in place that a person should read: named in REVIEW_TAGS, unlisted text of a
    free-text VR, or a value kept under a clean option (--keep-descriptors)."""
    if action is None:
        return tag in REVIEW_TAGS or vr in REVIEW_VRS
    row = profile.row_for(tag)
    return action == "K" and row is not None and row.basic != "K" and any(
        row.options.get(x) == "C" for x in letters if x in profile.REVIEWED_CLEAN)


def check_other(path: str, kind: str, findings: list, letters=frozenset()) -> None:
    """Findings for a file that is not DICOM: whatever anonymize would remove from it (fields,
    bytes no header field accounts for, in the file and in its detached data or .img)."""
    from . import headers

    base = kind.removesuffix(".gz")
    fmt = {"mgh": "MGH", "minc": "MINC", "png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP",
           "metaimage": "MetaImage", "nrrd": "NRRD", "json": "JSON"}.get(base, base)
    field = {"minc": "MINC attribute", "metaimage": "MetaImage key", "nrrd": "NRRD field", "json": "JSON key"}
    # judged with the options given (--keep-descriptors keeps sidecar free text and unknown keys)
    _, changed, _ = headers.scrub_file(kind, path, verify=False, keep_descriptors="S" in set(letters))
    for name in changed:
        stray = "data " in name or name.endswith(("data", "padding", "reserved fields")) or name.startswith("gzip")
        if stray:
            findings.append({"path": path, "where": f"{fmt} {name}", "what": "bytes that no header field accounts for"})
        else:
            findings.append({"path": path, "where": f"{field.get(base, fmt)} {name}",
                             "what": "identifying or free-text field"})


def check(paths, patient_ids=(), letters=frozenset()) -> list:
    """Findings [{path, where, what}] for every file under `paths`."""
    from ..errors import MedconvError
    from . import classify, walk_inputs

    findings = []
    for root, rel, full in walk_inputs(paths):
        shown = full
        try:
            kind = classify(full)
        except MedconvError as exc:
            findings.append({"path": shown, "where": "file", "what": exc.message})
            continue
        if kind is None:
            import os

            from . import SKIP_NAMES

            if os.path.basename(full).upper() in SKIP_NAMES:
                findings.append({"path": shown, "where": "file", "what": "DICOMDIR lists patient names and file "
                                 "paths; rebuild it after anonymising"})
            continue
        if kind == "mapping":
            findings.append({"path": shown, "where": "file", "what": "a medconv mapping (original "
                             "identifiers): keep it apart from the images"})
            continue
        if DATE_IN_NAME.search(rel):
            findings.append({"path": shown, "where": "file name", "what": "contains a date"})
        try:
            if kind == "dicom":
                check_dicom(full, findings, patient_ids, letters)
            else:
                check_other(full, kind, findings, letters)
        except MedconvError as exc:
            findings.append({"path": shown, "where": "file", "what": exc.message})
        except Exception as exc:  # pydicom parses lazily: a damaged element fails where it is used
            findings.append({"path": shown, "where": "file", "what": f"unreadable ({type(exc).__name__})"})
    return findings
