"""Apply the confidentiality profile to a pydicom Dataset, recursively."""
from __future__ import annotations

import contextlib
import datetime
import sys
from dataclasses import dataclass, field

from . import profile

# CID 7050 codes (scheme DCM) for the options used.
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel": ("113101", "Clean Pixel Data Option"),
    "descriptors": ("113105", "Clean Descriptors Option"),
    "keep_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "shift_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "device": ("113109", "Retain Device Identity Option"),
    "uids": ("113110", "Retain UIDs Option"),
    "private": ("113111", "Retain Safe Private Option"),
}
DATE_VRS = ("DA", "DT", "TM")
#: combined codes: the choice that keeps the data set valid and reveals least
COMBINED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "Z", "X/Z/U*": "U"}
#: free text given the dummy value inside an item of a D sequence when the table does not name it
DUMMY_TEXT_VRS = ("LO", "LT", "SH", "ST", "UT", "UC", "UR")


def is_code_attribute(tag: int) -> bool:
    """Code Value ... Mapping Resource Name (0008,0100)-(0008,0122): the Code Sequence macro."""
    return 0x00080100 <= tag <= 0x00080122
#: the writer of an anonymised file names itself (the input's implementation name is free text):
#: pydicom's implementation UID, as medconv's DICOM writer uses, and medconv's version
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"


def implementation_name() -> str:
    from .. import __version__

    return f"MEDCONV_{__version__}"[:16]
#: file meta elements kept (the group length is recomputed on writing)
META_KEPT = {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
REGISTRY_ROOT = "1.2.840.10008."


@dataclass
class Options:
    keep_dates: bool = False
    shift_days: int | None = None
    keep_uids: bool = False
    keep_descriptors: bool = False
    keep_private: bool = False
    keep_device: bool = False
    keep_patient_characteristics: bool = False
    patient_id: str | None = None
    keep_unscrubbable: bool = False
    warnings: list = field(default_factory=list)

    def letters(self) -> set:
        out = set()
        if self.keep_uids:
            out.add("U")
        if self.keep_device:
            out.add("D")
        if self.keep_patient_characteristics:
            out.add("A")
        if self.keep_dates:
            out.add("L")
        elif self.shift_days is not None:
            out.add("M")
        if self.keep_descriptors:
            out.update("STG")
        return out

    def codes(self) -> list:
        used = ["basic"]
        for flag, name in ((self.keep_descriptors, "descriptors"), (self.keep_dates, "keep_dates"),
                           (self.shift_days is not None and not self.keep_dates, "shift_dates"),
                           (self.keep_patient_characteristics, "patient_characteristics"),
                           (self.keep_device, "device"), (self.keep_uids, "uids"), (self.keep_private, "private")):
            if flag:
                used.append(name)
        return used


#: SOP classes whose objects are images (a file of one of these without pixel data was cut short)
_IMAGE_CLASSES = {f"1.2.840.10008.5.1.4.1.1.{s}" for s in (
    "1", "1.1", "1.1.1", "1.2", "1.2.1", "1.3", "1.3.1", "2", "2.1", "2.2", "3.1", "4", "4.1", "4.2", "4.3",
    "4.4", "6.1", "6.2", "7", "7.1", "7.2", "7.3", "7.4", "12.1", "12.1.1", "12.2", "12.2.1", "20", "128",
    "130", "481.1", "481.2", "77.1.1", "77.1.2", "77.1.4", "77.1.5.1", "77.1.5.2", "77.1.5.4", "13.1.1",
    "13.1.2", "13.1.3", "14.1", "14.2")}


#: SOP classes whose content no profile can clean: encapsulated PDF, CDA, STL, OBJ, MTL documents
#: (free-form files inside the object) and Raw Data (vendor-defined bytes)
UNSCRUBBABLE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF", "1.2.840.10008.5.1.4.1.1.104.2": "encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "encapsulated STL", "1.2.840.10008.5.1.4.1.1.104.4": "encapsulated OBJ",
    "1.2.840.10008.5.1.4.1.1.104.5": "encapsulated MTL", "1.2.840.10008.5.1.4.1.1.66": "raw data",
}
MEDIA_DIRECTORY_CLASS = "1.2.840.10008.1.3.10"  # DICOMDIR
ENCAPSULATED_DOCUMENT = 0x00420011


def unscrubbable(sop_class) -> str | None:
    """What an object of this class holds that cannot be de-identified, or None."""
    return UNSCRUBBABLE_CLASSES.get(str(sop_class or "").strip().rstrip("\0"))


#: deepest sequence nesting the pydicom path takes (real objects nest a few levels; SR trees a few tens)
MAX_NESTING = 1000


@contextlib.contextmanager
def deep_stack():
    """pydicom reads and writes nested sequences recursively (4-5 Python frames a level), as medconv
    walks them: the recursion limit is raised while one file is handled, so MAX_NESTING levels fit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 12 * MAX_NESTING))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def is_image_class(sop_class: str) -> bool:
    return str(sop_class).strip().rstrip("\0") in _IMAGE_CLASSES


#: UIDs that name a code system, a context group or a mapping resource (SNOMED, LOINC, DCMR...),
#: not an object of this patient: replacing them would leave codes nobody can resolve
VOCABULARY_UID_TAGS = {0x0008010C, 0x0008010D, 0x00080117, 0x00080118}


def is_registry_uid(value: str) -> bool:
    """Well-known UIDs (SOP classes, transfer syntaxes, coding schemes) are not identifying.

    Every UID of the standard's registry (PS3.6 Annex A) is under 1.2.840.10008 (a test checks
    pydicom's copy of the registry), so the root alone decides, without importing pydicom.
    """
    return str(value).startswith(REGISTRY_ROOT)


def lookup(tag: int):
    """The profile row of a tag; 50xx/60xx repeating groups are always removed."""
    group = tag >> 16
    if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
        return "X"
    return None


def shift_date(value: str, days: int, vr: str) -> str:
    """Shift a DA (YYYYMMDD) or the date part of a DT by `days`; the rest is kept."""
    value = str(value)
    if vr == "DT" and len(value) in (4, 6) and value.isdigit():
        # a reduced-precision DT (year, or year and month): shifted from the middle of its period
        # and kept at its precision, rather than emptied
        try:
            middle = datetime.date(int(value[:4]), int(value[4:6]) if len(value) == 6 else 7,
                                   15 if len(value) == 6 else 1)
            return (middle + datetime.timedelta(days=days)).strftime("%Y%m%d")[:len(value)]
        except (OverflowError, ValueError):
            return ""
    if len(value) < 8 or not value[:8].isdigit():
        return ""
    try:
        day = datetime.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return ""
    return (day + datetime.timedelta(days=days)).strftime("%Y%m%d") + (value[8:] if vr == "DT" else "")


def _un_sequence(value: bytes):
    """A UN value holding sequence items, decoded as implicit VR little endian; None if it is not one."""
    try:
        from pydicom.values import convert_SQ

        seq = convert_SQ(value, True, True)
        for item in seq:
            list(item.keys())
            for _ in item:  # every element decodes, or the value is not a sequence after all
                pass
        return seq
    except Exception:
        return None


def _dummy(elem, pseudo, opts):
    vr = elem.VR
    if vr == "PN":
        return "ANONYMIZED"
    if vr == "DA":
        return "19000101"
    if vr == "TM":
        return "000000"
    if vr == "DT":
        return "19000101000000"
    if vr == "UI":
        if not elem.value:
            return ""
        if elem.VM > 1:
            return [pseudo.uid(str(v)) for v in elem.value]
        return pseudo.uid(str(elem.value))
    if vr in ("IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
        return 0
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return b""
    return "ANONYMIZED"


class Anonymizer:
    """One per run: holds the options and the pseudonymizer shared by every file."""

    def __init__(self, opts: Options, pseudo):
        self.opts = opts
        self.pseudo = pseudo
        self.letters = opts.letters()

    # -- one data set, recursively -------------------------------------------------
    def clean(self, ds, top: bool = False, dummy: bool = False, codes_ok: bool = False) -> None:
        """Apply the profile to every element of `ds`. `dummy`: inside an item of a sequence whose
        action is D (Content Sequence, Graphic Annotation Sequence...), where free text the table
        does not name gets the dummy value too; `codes_ok`: in a nested item where the code
        attributes (Code Value, Code Meaning...) are vocabulary, kept as the concept names of SR
        content are."""
        for elem in list(ds):
            tag = int(elem.tag)
            if elem.tag.is_private:
                if not self.opts.keep_private:
                    del ds[elem.tag]
                elif elem.VR == "UN" and isinstance(elem.value, bytes) and elem.value[:4] == b"\xfe\xff\x00\xe0":
                    # a private sequence whose VR the writer did not know: decoded as the implicit VR
                    # little endian sequence PS3.5 says it is, then cleaned like any other
                    seq = _un_sequence(elem.value)
                    if seq is None:
                        del ds[elem.tag]  # cannot be read, so cannot be vetted
                        continue
                    from pydicom.dataelem import DataElement

                    ds[elem.tag] = DataElement(elem.tag, "SQ", seq)
                    for item in seq:
                        self.clean(item, dummy=dummy, codes_ok=True)
                elif elem.VR == "SQ":
                    # a kept private sequence is not a hiding place: its public elements follow the
                    # profile, and UIDs everywhere keep pointing at the renamed objects
                    for item in elem.value:
                        self.clean(item, dummy=dummy, codes_ok=True)
                elif elem.VR == "UI" and not self.opts.keep_uids:
                    self._replace_uids(elem)
                continue
            if lookup(tag) == "X" or tag & 0xFFFF == 0 and tag >> 16 != 0x0002:
                # group lengths go too: they stop being true as soon as the group changes
                del ds[elem.tag]
                continue
            action = profile.effective_action(tag, self.letters)
            if top and tag in (0x00100010, 0x00100020):
                continue  # set from the pseudonym after the walk
            if action is None:
                if not profile.known_public(tag):
                    del ds[elem.tag]  # named by neither the table nor the dictionary: cannot be vetted
                    continue
                self._unlisted(ds, elem, dummy, codes_ok)
            else:
                self._apply(ds, elem, action, dummy)

    def _unlisted(self, ds, elem, dummy: bool = False, codes_ok: bool = False) -> None:
        """Attributes the table does not name: UIDs, dates and names are still handled."""
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value:
                self.clean(item, dummy=dummy, codes_ok=True)
        elif vr == "UI":
            if not self.opts.keep_uids and int(elem.tag) not in VOCABULARY_UID_TAGS:
                self._replace_uids(elem)
        elif vr in DATE_VRS:
            if self.opts.keep_dates or vr == "TM" and self.opts.shift_days is not None:
                return
            if self.opts.shift_days is not None:
                self._shift(elem)
            else:
                elem.value = ""
        elif vr == "PN":
            elem.value = ""
        elif vr == "UN":
            # A public tag unknown to the dictionary: its content cannot be vetted.
            del ds[elem.tag]
        elif dummy and vr in DUMMY_TEXT_VRS and not (codes_ok and is_code_attribute(int(elem.tag))) \
                and elem.value not in (None, "", b""):
            elem.value = "ANONYMIZED"

    def _replace_uids(self, elem) -> None:
        def one(v):
            v = str(v)
            return v if not v or is_registry_uid(v) else self.pseudo.uid(v)

        if elem.VM > 1:
            elem.value = [one(v) for v in elem.value]
        elif elem.value:
            elem.value = one(elem.value)

    def _shift(self, elem) -> None:
        if elem.VR not in ("DA", "DT") or not elem.value:
            return
        days = self.opts.shift_days
        if elem.VM > 1:
            elem.value = [shift_date(v, days, elem.VR) for v in elem.value]
        else:
            elem.value = shift_date(elem.value, days, elem.VR)

    def _apply(self, ds, elem, action: str, dummy: bool = False) -> None:
        vr = elem.VR
        # Combined codes: the choice that keeps the data set valid and reveals least.
        choice = COMBINED.get(action, action)
        if choice == "D" and vr in DATE_VRS and "/" in action:
            # A dummy date destroys intervals and looks real; empty or remove instead.
            choice = "Z" if "Z" in action else "X"
        if choice == "C" and vr not in DATE_VRS and vr != "SQ":
            # dates shifted (times kept); a value of another VR cannot be cleaned: the basic action
            return self._apply(ds, elem, profile.row_for(int(elem.tag)).basic, dummy)
        if choice in ("K", "C", "U") and vr == "SQ":
            for item in elem.value:
                self.clean(item, dummy=dummy, codes_ok=True)
            return
        if choice == "K":
            return
        if choice == "X":
            del ds[elem.tag]
        elif choice == "Z":
            elem.value = [] if vr == "SQ" else (b"" if vr in ("OB", "OW", "UN") else None)
        elif choice == "C":  # dates under --shift-dates
            if vr in ("DA", "DT"):
                self._shift(elem)
        elif choice == "U":
            if vr == "UI":
                self._replace_uids(elem)
            else:
                del ds[elem.tag]
        elif choice == "D":
            if vr == "SQ":
                for item in elem.value:
                    self.clean(item, dummy=True)
            elif elem.value not in (None, "", b"") or vr == "UI":
                elem.value = _dummy(elem, self.pseudo, self.opts)

    # -- a whole file ---------------------------------------------------------------
    def anonymize(self, ds) -> str:
        """Anonymise a file's data set in place; return the patient pseudonym."""
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        original_id = str(ds.get("PatientID", "") or "")
        if self.opts.patient_id:
            pid = self.opts.patient_id
            self.pseudo.mapping.setdefault("patient", {})[original_id] = pid
        else:
            pid = self.pseudo.patient(original_id or str(ds.get("PatientName", "")))
        self.clean(ds, top=True)
        ds.PatientName = pid
        ds.PatientID = pid
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            if "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            elif "MediaStorageSOPInstanceUID" in meta and not self.opts.keep_uids:
                self._replace_uids(meta["MediaStorageSOPInstanceUID"])
            # AE titles, presentation addresses, private information: only the meta a file needs stays
            for tag in [e.tag for e in meta if int(e.tag) not in META_KEPT]:
                del meta[tag]
            meta.ImplementationClassUID = IMPLEMENTATION_UID
            meta.ImplementationVersionName = implementation_name()
        # YES only when the pixels cannot carry identity as far as the header tells: an image flagged
        # YES, or a suspect (US, secondary capture, screen save) without BurnedInAnnotation NO, stays NO
        flagged, suspect = burned_in_status(ds)
        ds.PatientIdentityRemoved = "NO" if flagged or suspect else "YES"
        names = self.opts.codes()
        ds.DeidentificationMethod = ["medconv PS3.15 E.1-1 basic profile"] + [CODES[n][1][:64] for n in names[1:]]
        seq = Sequence()
        for n in names:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CODES[n][0], "DCM", CODES[n][1]
            seq.append(item)
        ds.DeidentificationMethodCodeSequence = seq
        if self.opts.keep_dates:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        elif self.opts.shift_days is not None:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"
        return pid


BURN_SUSPECT_MODALITIES = ("US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC")


def burned_in_status(ds) -> tuple:
    """(flagged YES, suspect reason or None) for burned-in text (pitfall 23)."""
    image_type = ds.get("ImageType") or []
    image_type = [str(v) for v in ([image_type] if isinstance(image_type, str) else image_type)]
    return burned_in_verdict(str(ds.get("BurnedInAnnotation", "")), str(ds.get("Modality", "")), image_type,
                             str(ds.get("SOPClassUID", "")))


def burned_in_verdict(burned: str, modality: str, image_type: list, sop_class: str) -> tuple:
    """burned_in_status from the four values it reads (the byte-level path has them as text)."""
    burned = burned.strip().upper()
    if burned == "YES":
        return True, None
    if burned == "NO":
        return False, None
    modality = modality.strip()
    if modality in BURN_SUSPECT_MODALITIES:
        return False, f"modality {modality} often carries burned-in text"
    # DERIVED\SECONDARY alone is every MR/CT reconstruction (MPR, ADC map): not a suspect; a screen save is
    if any("SAVE" in t.strip().upper() for t in image_type):
        return False, "screen-save image may carry burned-in text"
    sop_class = sop_class.strip()
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.7") or sop_class == "1.2.840.10008.5.1.4.1.1.67":
        return False, "secondary capture or dose report may carry burned-in text"
    return False, None
