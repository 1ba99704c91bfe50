"""PS3.15 Annex E Table E.1-1 (Application Level Confidentiality Profile Attributes), as data.

The table ships with the package, unchanged, as ``data/ps3.15-table-e1-1.json`` (every row and
option column of the edition named in ``data/EDITION``; MIT-licensed machine-readable copy, see
``data/LICENSE``). Every action and every option column used by both engines (actions.py and
rewrite.py) and by ``--check`` is read from it here: updating to a new edition means replacing
that data file (and the one-line EDITION beside it).

Actions: D dummy value, Z zero length, X remove, K keep, C clean, U replace UID; combined codes
(X/Z, X/D, Z/D, X/Z/D, X/Z/U*) name the choices allowed by the IOD. Option columns, as option
letters of `actions.Options.letters()`:

    U Retain UIDs                    D Retain Device Identity    I Retain Institution Identity
    A Retain Patient Characteristics L Retain Long. Full Dates   M Retain Long. Modified Dates
    S Clean Descriptors              T Clean Structured Content  G Clean Graphics
    P Retain Safe Private

How an option's code becomes medconv's action (`resolve`): K keeps; C under M shifts dates (the
"C" action); C under S, T or G (the clean options the user asks for with --keep-descriptors,
"review them yourself") keeps the value for the user's review; C under any other column (device
AE titles, patient free text such as allergies) cannot be cleaned by a program, so the basic
action stays (stricter, never looser).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field

_DATA = os.path.join(os.path.dirname(__file__), "data")
TABLE_FILE = os.path.join(_DATA, "ps3.15-table-e1-1.json")

#: option letter -> the table's column
COLUMNS = {
    "P": "rtnSafePrivOpt", "U": "rtnUIDsOpt", "D": "rtnDevIdOpt", "I": "rtnInstIdOpt",
    "A": "rtnPatCharsOpt", "L": "rtnLongFullDatesOpt", "M": "rtnLongModifDatesOpt",
    "S": "cleanDescOpt", "T": "cleanStructContOpt", "G": "cleanGraphOpt",
}
#: the clean options medconv honours by keeping the value for the user's review
REVIEWED_CLEAN = "STG"
ACTIONS = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


@dataclass(frozen=True)
class Row:
    tag: str  # as the table writes it: "(0010,0010)", "(60XX,3000)"
    name: str
    basic: str
    options: dict = field(default_factory=dict)  # option letter -> "K" or "C"

    def action(self, letters) -> str:
        return resolve(self.basic, self.options, letters)


def resolve(basic: str, options: dict, letters) -> str:
    """medconv's action for a row with the option letters enabled (see the module docstring)."""
    codes = [options[x] for x in letters if x in options]
    if "K" in codes:
        return "K"
    if "M" in letters and options.get("M") == "C":
        return "C"
    if any(options.get(x) == "C" for x in letters if x in REVIEWED_CLEAN):
        return "K"
    return basic


def _load():
    with open(TABLE_FILE, encoding="utf-8") as fh:
        raw = json.load(fh)
    concrete, repeating, private = {}, [], None
    for entry in raw:
        basic = entry["basicProfile"].strip()
        if basic not in ACTIONS:
            raise ValueError(f"unknown action {basic!r} in {entry['tag']}")
        opts = {letter: entry[col].strip() for letter, col in COLUMNS.items() if entry.get(col)}
        row = Row(entry["tag"], entry["name"], basic, opts)
        text = entry["tag"].upper()
        if "ODD" in text:
            private = row
            continue
        group, element = text.strip("()").split(",")
        pattern = group + element
        if "X" in pattern:
            mask = int("".join("0" if c == "X" else "F" for c in pattern), 16)
            value = int(pattern.replace("X", "0"), 16)
            repeating.append((mask, value, row))
        else:
            concrete[int(pattern, 16)] = row
    return concrete, repeating, private, len(raw)


#: tag (int) -> Row, for the rows that name one attribute
ROWS, REPEATING, PRIVATE_ROW, ROW_COUNT = _load()

with open(os.path.join(_DATA, "EDITION"), encoding="utf-8") as _fh:
    EDITION = _fh.read().strip()

# medconv additions, for attributes the table does not name: free text and identifiers that can
# carry names, places or narrative. Stricter, never looser; an edition that names one of them wins.
_STRICTER = """
00080051 X -  IssuerOfAccessionNumberSequence
00100033 X -  PatientBirthDateInAlternativeCalendar
00100034 X -  PatientDeathDateInAlternativeCalendar
00102294 X -  BreedRegistrationSequence
00102295 X -  BreedRegistrationNumber
00181803 X D  NTPSourceAddress
00081125 X -  ReferencedVisitSequence
00102161 X A  EthnicGroupCodeSequence
00400400 X S  CommentsOnTheScheduledProcedureStep
00404009 X -  HumanPerformerCodeSequence
00380502 X -  PatientClinicalTrialParticipationSequence
00440106 X S  AssertionComments
0022112C X S  CalculationComment
00240044 X S  CommentsOnPatientPerformanceOfVisualField
00660004 X S  SurfaceComments
0074100C X -  ContactDisplayName
01000424 X -  SOPAuthorizationComment
30040006 X S  DoseComment
300600C8 X S  FrameOfReferenceTransformationComment
30080202 X S  TreatmentStatusComment
300A0402 X S  SetupImageComment
300A078C X -  ReferencedPatientSetupPhotoSequence
30100019 X -  AuthorIdentificationSequence
"""
STRICTER = {}
for _line in _STRICTER.strip().splitlines():
    _tag, _basic, _letters, _name = _line.split()
    if int(_tag, 16) not in ROWS:
        STRICTER[int(_tag, 16)] = Row(f"({_tag[:4]},{_tag[4:]})", _name, _basic,
                                      {x: ("C" if x in REVIEWED_CLEAN else "K") for x in _letters if x != "-"})


def row_for(tag: int):
    """The table row that names `tag` (a repeating-group row included), a medconv addition, or None."""
    row = ROWS.get(tag)
    if row is not None:
        return row
    for mask, value, rep in REPEATING:
        if tag & mask == value:
            return rep
    return STRICTER.get(tag)


@functools.lru_cache(maxsize=64)
def actions_for(letters: frozenset) -> dict:
    """tag -> action for every concrete row under the options `letters` (one dict lookup per element)."""
    out = {tag: row.action(letters) for tag, row in STRICTER.items()}
    out.update({tag: row.action(letters) for tag, row in ROWS.items()})
    return out


def effective_action(tag: int, options) -> str | None:
    """The action for `tag` with the enabled option letters, or None if the table does not name it.

    Repeating groups (50xx curves, 60xx overlays) answer from their rows; actions.lookup removes
    whole 50xx/60xx groups before this is asked.
    """
    action = actions_for(frozenset(options)).get(tag)
    if action is not None:
        return action
    for mask, value, rep in REPEATING:
        if tag & mask == value:
            return rep.action(options)
    return None


# -- the data dictionary: is a public tag known at all? ------------------------------------
@functools.lru_cache(maxsize=1)
def _dictionary():
    """(set of tags, [(mask, value)] of repeating entries) of pydicom's copy of the PS3.6 dictionary.

    The dictionary module is loaded on its own when pydicom is not imported yet: the byte-level
    path never imports pydicom (its package import costs ~0.2 s per process).
    """
    import sys

    module = sys.modules.get("pydicom._dicom_dict")
    if module is None and "pydicom" not in sys.modules:
        import importlib.util

        try:
            spec = importlib.util.find_spec("pydicom")
            path = os.path.join(next(iter(spec.submodule_search_locations)), "_dicom_dict.py")
            loader_spec = importlib.util.spec_from_file_location("_medconv_dicom_dict", path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        except (ImportError, OSError, AttributeError, TypeError, StopIteration):
            module = None  # laid out otherwise: the ordinary import below
    if module is None:
        import pydicom._dicom_dict as module
    masks = []
    for key in module.RepeatersDictionary:
        key = key.upper()
        masks.append((int("".join("0" if c == "X" else "F" for c in key), 16), int(key.replace("X", "0"), 16)))
    return frozenset(module.DicomDictionary), tuple(masks), module.DicomDictionary


def known_public(tag: int) -> bool:
    """True for a public tag the table or the data dictionary names (group lengths included)."""
    if tag in ROWS or tag in STRICTER:
        return True
    tags, masks, _ = _dictionary()
    if tag in tags or tag & 0xFFFF == 0:
        return True
    return any(tag & mask == value for mask, value in masks) or any(
        tag & mask == value for mask, value, _ in REPEATING)


def _keyword(tag: int) -> str:
    entry = _dictionary()[2].get(tag)
    return entry[4] if entry else ""


#: tag -> (dictionary keyword, basic action, option letters) of every concrete row and medconv
#: addition: the summary other modules read (JSON sidecar keys are the keywords)
TABLE = {tag: (_keyword(tag), row.basic, "".join(row.options)) for tag, row in {**STRICTER, **ROWS}.items()}


def dictionary_vr(tag: int) -> str | None:
    """The data dictionary's VR of a public tag (None when it does not name it)."""
    entry = _dictionary()[2].get(tag)
    return entry[0] if entry else None
