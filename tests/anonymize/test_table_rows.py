"""Row by row: every row of the shipped PS3.15 Table E.1-1, planted at depth 1 and two sequences
deep, gets exactly the action the table gives, under each option, in both engines.

The expected action is computed here from the raw JSON of the table (not from profile.py), with
medconv's documented readings of the codes (docs/anonymize.md):
- combined codes: X/Z -> Z, X/D -> D, Z/D -> D, X/Z/D -> Z, X/Z/U* -> U; a dummy date is never
  written for a combined code (X/D -> X, Z/D -> Z on DA/DT/TM);
- K keeps; C under Retain Modified Dates shifts DA/DT (times kept; any other VR: the basic action);
  C under the clean options (--keep-descriptors) keeps the value for the user's review; C under
  any other column cannot be done by a program, so the basic action stays;
- 50xx curve and 60xx overlay groups are removed whole under every option (a program cannot clean
  an overlay bitmap);
- at depth 1 Patient's Name and Patient ID carry the patient pseudonym.
"""
from __future__ import annotations

import io
import json

import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian

from medconv.anonymize import Runner, profile
from medconv.anonymize.actions import Options, shift_date

with open(profile.TABLE_FILE, encoding="utf-8") as _fh:
    RAW = json.load(_fh)

COLUMN = {"U": "rtnUIDsOpt", "D": "rtnDevIdOpt", "I": "rtnInstIdOpt", "A": "rtnPatCharsOpt", "L": "rtnLongFullDatesOpt",
          "M": "rtnLongModifDatesOpt", "S": "cleanDescOpt", "T": "cleanStructContOpt", "G": "cleanGraphOpt"}
SHIFT = -10
OPTION_SETS = {
    "basic": ({}, ""), "keep-uids": ({"keep_uids": True}, "U"), "keep-device": ({"keep_device": True}, "D"),
    "keep-characteristics": ({"keep_patient_characteristics": True}, "A"),
    "keep-dates": ({"keep_dates": True}, "L"), "shift-dates": ({"shift_days": SHIFT}, "M"),
    "keep-descriptors": ({"keep_descriptors": True}, "STG"),
    # Retain Institution Identity has no command-line option; the engines are given its letter
    "retain-institution": ({}, "I"),
}
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242."
NUMBERS = ("IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV")
BINARY = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")
INNER = 0x00080070  # Manufacturer: not in the table; planted inside every sequence row's item
#: where the copies of every row are planted: depth 1, and two sequences deep (neither in the table)
NEST = (0x00081115, 0x0008114A)


def _concrete(entry):
    text = entry["tag"].strip("()").replace(",", "")
    return None if "X" in text.upper() or "ODD" in text.upper() else int(text, 16)


def _value(tag, vr, where):
    marker = f"M{tag:08X}{where}"
    if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "UR"):
        return marker
    return {"PN": f"{marker}^P", "DA": "20240305", "TM": "101112", "DT": "20240305101112", "AS": "062Y",
            "UI": f"{UID_ROOT}{tag}.{where}", "OB": b"MARK", "OW": b"MARK", "OD": b"MARKMARK", "OF": b"MARK",
            "OL": b"MARK", "UN": b"MARK", **{n: 42 for n in NUMBERS}}[vr]


def _plant(ds, where):
    """Every concrete row (groups 0000-FFFF; 0002 lives in the file meta) with a value of its VR."""
    for entry in RAW:
        tag = _concrete(entry)
        if tag is None or tag >> 16 == 0x0002 or tag == 0x00080018 and where == 0:
            continue
        vr = dictionary_VR(tag)
        if vr == "SQ":
            item = Dataset()
            item.add_new(INNER, "LO", f"INNER{tag:08X}")
            ds.add_new(tag, "SQ", Sequence([item]))
        else:
            ds.add_new(tag, vr, _value(tag, vr, where))
    # the repeating-group rows: curves (50xx,xxxx), overlay data and comments (60xx,3000/4000)
    ds.add_new(0x50000010, "US", 3)
    ds.add_new(0x50023000, "OW", b"CURV")
    ds.add_new(0x60003000, "OW", b"OVLY")
    ds.add_new(0x60024000, "LT", f"OVERLAYCOMMENT{where}")
    # the private row: a creator and an element
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", f"PRIVATE{where}")


def _input_bytes():
    ds = Dataset()
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = f"{UID_ROOT}1"
    ds.Modality = "SR"
    _plant(ds, 0)
    deep = Dataset()
    _plant(deep, 2)
    ds.add_new(NEST[0], "SQ", Sequence([Dataset()]))
    ds[NEST[0]].value[0].add_new(NEST[1], "SQ", Sequence([deep]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.3.4"
    # written by hand: pydicom's dcmwrite refuses the command group (0000) rows at depth 1
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    fp.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    write_dataset(fp, ds)
    return fp.getvalue()


def _expected(entry, letters, vr):
    """The medconv action (K X Z D U shift) the table gives this row under `letters`."""
    codes = {x: entry[COLUMN[x]] for x in letters if entry.get(COLUMN[x])}
    basic = entry["basicProfile"]
    if "K" in codes.values():
        action = "K"
    elif codes.get("M") == "C":
        action = "shift" if vr in ("DA", "DT") else "K" if vr == "TM" else basic
    elif any(codes.get(x) == "C" for x in "STG"):
        action = "K"
    else:
        action = basic
    if action in ("X/D", "Z/D") and vr in ("DA", "DT", "TM"):
        return action[0]
    return {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "Z", "X/Z/U*": "U"}.get(action, action)


def _verdict(action, vr, elem, original, tag):
    """None if `elem` (None: absent) is what `action` makes of `original`, else what is wrong."""
    if action == "X" or action == "U" and vr not in ("UI", "SQ"):
        return None if elem is None else "present"
    if elem is None:
        return "absent"
    value = elem.value
    if vr == "SQ":
        if action == "Z":
            return None if len(value) == 0 else "not emptied"
        if len(value) != 1:
            return "items lost"
        inner = str(value[0].get(INNER).value) if INNER in value[0] else None
        want = "ANONYMIZED" if action == "D" else f"INNER{tag:08X}"
        return None if inner == want else f"inner value {inner!r}, want {want!r}"
    if action == "Z":
        return None if value in (None, "", b"") else "not emptied"
    if action == "K":
        return None if value == original else "changed"
    if action == "shift":
        return None if value == shift_date(original, SHIFT, vr) else f"not shifted: {value!r}"
    if action == "U":
        return None if str(value).startswith("2.25.") and value != original else f"not replaced: {value!r}"
    if action == "D":
        if vr == "UI":
            ok = str(value).startswith("2.25.")
        elif vr in NUMBERS:
            ok = value == 0
        elif vr in BINARY:
            ok = value in (b"", None)
        else:
            ok = str(value) == {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}.get(vr, "ANONYMIZED")
        return None if ok else f"not a dummy: {value!r}"
    return f"unknown action {action}"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "all_rows.dcm"
    path.write_bytes(_input_bytes())
    return path


def _outputs(path, opts, tmp_path, letters=None):
    runner = Runner(Options(**opts), key="k", output=str(tmp_path / "o"))
    other = Runner(Options(**opts), key="k", output=str(tmp_path / "p"))
    if letters is not None:
        for r in (runner, other):
            r.anon.letters = r.fast.letters = set(letters)
            r.fast.actions = profile.actions_for(frozenset(letters))
    fast = runner.fast.anonymize(path.read_bytes())
    assert fast is not None, "the byte-level path must take this file"
    slow = other._dicom_with_pydicom(str(path))
    out = {}
    for engine, result in (("fast", fast), ("pydicom", slow)):
        out[engine] = pydicom.dcmread(io.BytesIO(result["bytes"]))
    return out, fast["pid"]


def test_the_shipped_table_is_the_whole_edition():
    assert len(RAW) == 621 == profile.ROW_COUNT
    assert "January 2025" in profile.EDITION
    assert sum(1 for e in RAW if _concrete(e) is not None) == len(profile.ROWS) == 617


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_every_row_gets_the_tables_action(source, tmp_path, name):
    opts, letters = OPTION_SETS[name]
    outputs, pid = _outputs(source, opts, tmp_path, letters if name == "retain-institution" else None)
    src = pydicom.dcmread(str(source))
    checked, wrong = 0, []
    for engine, out in outputs.items():
        nested_out = out[NEST[0]].value[0][NEST[1]].value[0]
        nested_src = src[NEST[0]].value[0][NEST[1]].value[0]
        for where, ds_out, ds_src in ((0, out, src), (2, nested_out, nested_src)):
            for entry in RAW:
                tag = _concrete(entry)
                if tag is None or tag >> 16 == 0x0002:
                    continue
                if tag == 0x00080018 and where == 0:
                    continue  # the object's own SOP Instance UID: checked with the file meta below
                vr = dictionary_VR(tag)
                action = _expected(entry, letters, vr)
                elem = ds_out.get(tag)
                if where == 0 and tag in (0x00100010, 0x00100020) and not opts.get("patient_id"):
                    problem = None if elem is not None and str(elem.value) == pid else "not the pseudonym"
                else:
                    problem = _verdict(action, vr, elem, ds_src[tag].value if vr != "SQ" else None, tag)
                checked += 1
                if problem:
                    wrong.append((engine, where, entry["tag"], entry["name"], action, problem))
            # repeating groups and private elements: removed under every option here
            for tag in (0x50000010, 0x50023000, 0x60003000, 0x60024000, 0x00090010, 0x00091001):
                checked += 1
                if tag in ds_out:
                    wrong.append((engine, where, f"{tag:08X}", "repeating group / private", "X", "present"))
        # (0002,0003) and the object's SOP Instance UID: U, or K with --keep-uids
        media = str(out.file_meta.MediaStorageSOPInstanceUID)
        want_kept = "U" in letters
        if (media == str(src.SOPInstanceUID)) != want_kept or str(out.SOPInstanceUID) != media:
            wrong.append((engine, 0, "(0002,0003)", "Media Storage SOP Instance UID", "U", media))
    assert checked > 2 * 2 * 617
    assert not wrong, f"{len(wrong)} row(s) wrong, e.g. {wrong[:8]}"


def test_both_engines_write_the_same_data_set(source, tmp_path):
    """The byte-level engine is checked against the pydicom one, element for element."""
    for opts, _ in OPTION_SETS.values():
        outputs, _ = _outputs(source, opts, tmp_path)
        assert outputs["fast"] == outputs["pydicom"]
        assert outputs["fast"].file_meta == outputs["pydicom"].file_meta


def test_a_row_changed_in_the_data_file_changes_the_action(tmp_path, monkeypatch):
    """The actions are read from the data file, not written in code: a different edition (here a
    copy with one row changed) gives a different action."""
    changed = [dict(e) for e in RAW]
    for e in changed:
        if e["tag"] == "(0008,1030)":  # Study Description: X in the edition shipped
            e["basicProfile"] = "Z"
    table = tmp_path / "table.json"
    table.write_text(json.dumps(changed))
    monkeypatch.setattr(profile, "TABLE_FILE", str(table))
    rows = profile._load()[0]
    assert rows[0x00081030].basic == "Z" and profile.ROWS[0x00081030].basic == "X"

