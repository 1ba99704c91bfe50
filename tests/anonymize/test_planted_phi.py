"""Planted PHI, DICOM side: every attribute of the table (depth 1 and two sequences deep), an
unknown public element, SR, RT structure set and presentation state objects carry markers; after
anonymize a byte search of the whole output finds none, and --check exits 1 on each planted input
and 0 on each output. Run through the CLI, with the byte-level engine and with the pydicom one."""
from __future__ import annotations

import json
import os

import pytest

from helpers import presentation_state, run

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from test_anonymize import out_files
from test_objects import _sr, _text_item
from test_table_rows import RAW, UID_ROOT, _concrete, _input_bytes

from medconv.anonymize import profile

NAME = "Zzyzx^Quentin"  # the planted patient, in every object


def _markers() -> list:
    """The markers of every row the table names (text and person names), the planted UID root and date."""
    out = []
    for entry in RAW:
        tag = _concrete(entry)
        if tag is not None and profile.dictionary_vr(tag) in ("LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE",
                                                              "UR", "PN"):
            out += [f"M{tag:08X}0".encode(), f"M{tag:08X}2".encode()]
    return out + [UID_ROOT.encode(), b"20240305", b"OVERLAYCOMMENT", b"PRIVATE0", b"PRIVATE2",
                  NAME.encode(), b"Zzyzx", b"Quentin", b"UNKNOWNPUBLIC"]


def _objects(src):
    """One file per kind of object, each with PHI planted."""
    src.mkdir()
    (src / "all_rows.dcm").write_bytes(_input_bytes())
    person = Dataset()
    person.RelationshipType, person.ValueType, person.PersonName = "HAS OBS CONTEXT", "PNAME", NAME
    ds = _sr(src / "sr.dcm", [_text_item("Zzyzx Quentin seen 20240305"), person])
    ds.PatientName = NAME
    ds.add_new(0x04009999, "LT", "UNKNOWNPUBLIC Zzyzx")
    ds.save_as(src / "sr.dcm", enforce_file_format=True)
    rt = pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    rt.PatientName = NAME
    rt.StructureSetLabel, rt.StructureSetName = "Zzyzx label", "Zzyzx name"
    rt.StructureSetROISequence[0].ROIName = "Zzyzx ROI"
    rt.RTROIObservationsSequence[0].ROIObservationLabel = "Zzyzx obs"
    rt.StructureSetDate = "20240305"
    rt.save_as(src / "rt.dcm")
    pr = presentation_state("Zzyzx Quentin", layer="L1")
    pr.PatientName, pr.ContentCreatorName = NAME, NAME
    pr.PresentationCreationDate = "20240305"
    pr.save_as(src / "pr.dcm", enforce_file_format=True)
    return sorted(os.listdir(src))


@pytest.mark.parametrize("engine", ["bytes", "pydicom"])
def test_planted_phi_is_gone_and_check_agrees(tmp_path, monkeypatch, engine):
    if engine == "pydicom":
        monkeypatch.setenv("MEDCONV_ANON_ENGINE", "pydicom")
    src = tmp_path / "in"
    names = _objects(src)
    for name in names:
        r = run("anonymize", "--check", src / name, "--json")
        assert r.code == 1, name
        assert any(not f.get("review") for f in json.loads(r.out)), name
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    files = out_files(tmp_path / "o")
    assert len(files) == len(names)
    data = b"".join(open(f, "rb").read() for f in files)
    markers = _markers()
    assert len(markers) > 550
    left = [m for m in markers if m in data]
    assert not left, left[:10]
    for f in files:
        r = run("anonymize", "--check", f)
        assert r.code == 0, r.out
