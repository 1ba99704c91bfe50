"""JSON sidecars keep only known acquisition keys (BIDS, dcm2niix, medconv's own), at any depth;
unknown keys and free text go unless --keep-descriptors, and --check reports them."""
from __future__ import annotations

import json

from helpers import run

MARK = "DOE JOHN 19700101"


def _side(tmp_path, doc, name="sub-01_T1w.json"):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    (src / name).write_text(json.dumps(doc))
    return src


def _anon(src, out, *extra):
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q", *extra)
    assert r.code == 0, r.err
    return json.loads(next(out.rglob("*.json")).read_text())


def test_unknown_keys_and_free_text_dropped_at_any_depth(tmp_path):
    doc = {"RepetitionTime": 2.3, "EchoTime": [0.002, 0.004], "SliceTiming": [0.0, 0.5, 1.0],
           "Manufacturer": "Siemens", "PhaseEncodingDirection": "j-", "TaskName": "rest",
           "ImageType": ["ORIGINAL", "PRIMARY"], "ConversionSoftware": "dcm2niix",
           "Notes": MARK, "Operator": {"Who": MARK},
           "Acquisitions": [{"EchoTime": 0.01, "Remark": MARK}, [MARK]],
           "StimulusPresentation": {"SoftwareName": "PsychoPy", "ExperimenterNote": MARK},
           "AnatomicalLandmarkCoordinates": {"AC": [1, 2, 3], "Who": MARK},
           "SeriesDescription": f"t1 {MARK}", "ProtocolName": MARK, "TaskDescription": MARK,
           "ProcedureStepDescription": MARK, "InstitutionName": MARK, "AcquisitionTime": "10:11:12"}
    src = _side(tmp_path, doc)
    r = run("anonymize", "--check", src)
    assert r.code == 1
    for key in ("unknown key Notes", "unknown key Operator", "unknown key Acquisitions", "ExperimenterNote",
                "SeriesDescription (free text)", "TaskDescription (free text)", "InstitutionName"):
        assert key in r.out, (key, r.out)
    assert MARK not in r.out
    kept = _anon(src, tmp_path / "out")
    assert kept == {"RepetitionTime": 2.3, "EchoTime": [0.002, 0.004], "SliceTiming": [0.0, 0.5, 1.0],
                    "Manufacturer": "Siemens", "PhaseEncodingDirection": "j-", "TaskName": "rest",
                    "ImageType": ["ORIGINAL", "PRIMARY"], "ConversionSoftware": "dcm2niix",
                    "StimulusPresentation": {"SoftwareName": "PsychoPy"},
                    "AnatomicalLandmarkCoordinates": {"AC": [1, 2, 3]}}
    assert MARK.encode() not in next((tmp_path / "out").rglob("*.json")).read_bytes()
    assert run("anonymize", "--check", tmp_path / "out").code == 0


def test_keep_descriptors_keeps_free_text_and_unknown_keys_not_identifying_ones(tmp_path):
    doc = {"RepetitionTime": 2.3, "SeriesDescription": "t1 mprage", "Notes": "phantom run",
           "InstitutionName": MARK, "PatientName": MARK, "AcquisitionDate": "19700101"}
    src = _side(tmp_path, doc)
    kept = _anon(src, tmp_path / "out", "--keep-descriptors")
    assert kept == {"RepetitionTime": 2.3, "SeriesDescription": "t1 mprage", "Notes": "phantom run"}
    # judged with the same option, that output is clean; without it, its free text is reported
    assert run("anonymize", "--check", "--keep-descriptors", tmp_path / "out").code == 0
    r = run("anonymize", "--check", tmp_path / "out")
    assert r.code == 1 and "SeriesDescription (free text)" in r.out and "unknown key Notes" in r.out


def test_medconv_sidecar_keys_are_known(tmp_path):
    """What `convert --sidecar` writes stays, but its free text (series description, protocol)."""
    from medconv.anonymize.sidecar_keys import DESCRIPTORS, allowed
    from medconv.dicom.sidecar import FIELDS

    known = allowed()
    assert {bids.lower() for bids, *_ in FIELDS} <= known
    assert {"seriesdescription", "protocolname"} <= DESCRIPTORS


def test_paths_in_sidecars_follow_the_renamed_files(tmp_path):
    """IntendedFor and Sources name other files of the tree: renamed like them (so they still point
    to them, and no input name survives), or kept as they are with --layout mirror."""
    import os

    import nibabel as nib
    import numpy as np

    src = tmp_path / "in" / "DOE_JOHN"
    (src / "func").mkdir(parents=True)
    (src / "fmap").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), src / "func" / "DOE_JOHN_bold.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), src / "fmap" / "DOE_JOHN_epi.nii.gz")
    (src / "fmap" / "DOE_JOHN_epi.json").write_text(json.dumps(
        {"EchoTime": 0.01, "IntendedFor": ["func/DOE_JOHN_bold.nii.gz", "bids::DOE_JOHN/func/DOE_JOHN_bold.nii.gz"],
         "Sources": "func/DOE_JOHN_bold.nii.gz"}))
    out = tmp_path / "out"
    r = run("anonymize", tmp_path / "in", "-o", out, "--key", "k")
    assert r.code == 0, r.err
    (sidecar,) = out.rglob("*.json")
    doc = json.loads(sidecar.read_text())
    assert "DOE" not in sidecar.read_text()
    subject = sidecar.parent.parent
    target = doc["IntendedFor"][0]
    assert (subject / target).exists() and doc["Sources"] == target
    assert doc["IntendedFor"][1] == f"bids::{subject.name}/{target}"
    assert os.path.exists(out / doc["IntendedFor"][1][len("bids::"):])
    kept = _anon(tmp_path / "in", tmp_path / "mirror")
    assert kept["IntendedFor"][0] == "func/DOE_JOHN_bold.nii.gz"
