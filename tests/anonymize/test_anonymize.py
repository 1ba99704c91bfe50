"""medconv anonymize: PHI gone at every depth, pseudonyms consistent, references intact."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from helpers import assert_clean_error, nibabel_data, run

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PHI = ["Doe^Johnathan", "PID12345", "19610412", "20240305", "Saint Elsewhere", "Welby^Marcus", "ACC998877",
       "Kildare^James", "Secret private note", "Johnathan brain", "RQ777", "Main Street 1", "SN-4711"]
REAL = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm"]


def _item(**kw):
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def make_dicom(path, sop_uid, study_uid, series_uid, ref_uid=None, burned=None, modality="CT", n=1):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = "Doe^Johnathan"
    ds.PatientID = "PID12345"
    ds.PatientBirthDate = "19610412"
    ds.PatientSex = "M"
    ds.PatientAge = "062Y"
    ds.PatientWeight = "81.5"
    ds.PatientAddress = "Main Street 1"
    ds.StudyDate = "20240305"
    ds.SeriesDate = "20240305"
    ds.AcquisitionDateTime = "20240305101112.5"
    ds.StudyTime = "101112"
    ds.InstitutionName = "Saint Elsewhere Hospital"
    ds.ReferringPhysicianName = "Welby^Marcus"
    ds.AccessionNumber = "ACC998877"
    ds.StudyDescription = "Johnathan brain scan"
    ds.DeviceSerialNumber = "SN-4711"
    ds.Modality = modality
    ds.InstanceNumber = n
    if burned:
        ds.BurnedInAnnotation = burned
    ds.ReferencedStudySequence = Sequence([_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                                                 ReferencedSOPInstanceUID=study_uid)])
    inner = _item(CodeValue="X1", CodingSchemeDesignator="99LOCAL", CodeMeaning="protocol",
                  ScheduledPerformingPhysicianName="Kildare^James", ScheduledProcedureStepStartDate="20240305")
    ds.RequestAttributesSequence = Sequence([_item(RequestedProcedureID="RQ777",
                                                   ScheduledProtocolCodeSequence=Sequence([inner]))])
    if ref_uid:
        # Two levels deep inside a sequence the profile keeps (U): names, places and dates.
        deep = _item(CodeValue="121320", CodingSchemeDesignator="DCM", CodeMeaning="Uncompressed predecessor",
                     OperatorsName="Kildare^James", InstitutionName="Saint Elsewhere Hospital",
                     StudyDate="20240305", ReferencedFrameOfReferenceUID=study_uid)
        ds.SourceImageSequence = Sequence([_item(ReferencedSOPClassUID=CTImageStorage,
                                                 ReferencedSOPInstanceUID=ref_uid,
                                                 PurposeOfReferenceCodeSequence=Sequence([deep]))])
    block = ds.private_block(0x0009, "ACME 1.1", create=True)
    block.add_new(0x10, "LO", "Secret private note")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "Doe_Johnathan_20240305"
    (src / "series1").mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    a, b = generate_uid(), generate_uid()
    make_dicom(src / "series1" / "img1.dcm", a, study, series, n=1)
    make_dicom(src / "series1" / "img2.dcm", b, study, series, ref_uid=a, n=2)
    (src / "notes.txt").write_text("Doe^Johnathan was here")
    return src, {"study": study, "series": series, "a": a, "b": b}


def out_files(out):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs)


def by_number(out):
    return {int(pydicom.dcmread(f).InstanceNumber): pydicom.dcmread(f) for f in out_files(out) if f.endswith(".dcm")}


def test_phi_gone_everywhere_and_check_clean(tree, tmp_path):
    src, uids = tree
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k1")
    assert r.code == 0, r.err
    assert "anonymised 2 file(s), skipped 1" in r.err
    files = out_files(out)
    assert len(files) == 2
    for f in files:
        assert "Doe" not in f and "2024" not in f
        raw = open(f, "rb").read()
        for s in PHI + [uids["a"], uids["b"], uids["study"], uids["series"], "HOSPITAL_PACS", "ACME"]:
            assert s.encode() not in raw, (f, s)
        ds = pydicom.dcmread(f)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.SOPClassUID == CTImageStorage
        assert len(ds.ReferencedStudySequence) == 0  # X/Z in the profile: emptied
        assert ds.SourceImageSequence[0].ReferencedSOPClassUID == CTImageStorage if "SourceImageSequence" in ds else 1
        assert not any(e.tag.is_private for e in ds.iterall())
        assert not any(e.tag.group == 0x6000 for e in ds)
        codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.PixelData == np.arange(16, dtype="<u2").tobytes()
        assert "PatientAge" not in ds and "PatientWeight" not in ds
    r = run("anonymize", "--check", out)
    assert r.code == 0 and r.out == "", r.out


def test_references_and_uids_consistent(tree, tmp_path):
    src, _ = tree
    r1 = run("anonymize", src, "-o", tmp_path / "o1", "--key", "k1")
    r2 = run("anonymize", src, "-o", tmp_path / "o2", "--key", "k1")
    r3 = run("anonymize", src, "-o", tmp_path / "o3", "--key", "other")
    assert r1.code == r2.code == r3.code == 0
    d1, d2, d3 = by_number(tmp_path / "o1"), by_number(tmp_path / "o2"), by_number(tmp_path / "o3")
    assert d1[1].StudyInstanceUID == d1[2].StudyInstanceUID and d1[1].SeriesInstanceUID == d1[2].SeriesInstanceUID
    assert d1[2].SourceImageSequence[0].ReferencedSOPInstanceUID == d1[1].SOPInstanceUID
    deep = d1[2].SourceImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert deep.ReferencedFrameOfReferenceUID == d1[1].StudyInstanceUID
    assert deep.CodeValue == "121320" and deep.CodingSchemeDesignator == "DCM"
    assert not deep.get("OperatorsName") and not deep.get("InstitutionName") and not deep.get("StudyDate")
    assert d1[1].FrameOfReferenceUID != d1[1].StudyInstanceUID
    for n in (1, 2):
        assert d1[n].SOPInstanceUID == d2[n].SOPInstanceUID != d3[n].SOPInstanceUID
        assert d1[n].PatientID == d2[n].PatientID != d3[n].PatientID
        assert len(d1[n].SOPInstanceUID) <= 64
    assert len(d1[1].SOPInstanceUID) <= 64
    # Same patient/study/series: one folder.
    assert len({os.path.dirname(f) for f in out_files(tmp_path / "o1")}) == 1


def test_env_key_and_random_key_notice(tree, tmp_path, monkeypatch):
    src, _ = tree
    monkeypatch.setenv("MEDCONV_ANON_KEY", "k1")
    assert run("anonymize", src, "-o", tmp_path / "e").code == 0
    assert run("anonymize", src, "-o", tmp_path / "k", "--key", "k1").code == 0
    assert by_number(tmp_path / "e")[1].SOPInstanceUID == by_number(tmp_path / "k")[1].SOPInstanceUID
    monkeypatch.delenv("MEDCONV_ANON_KEY")
    r = run("anonymize", src, "-o", tmp_path / "r")
    assert r.code == 0 and "random key" in r.err


def test_shift_dates_exact(tree, tmp_path):
    src, _ = tree
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--shift-dates", "-10")
    assert r.code == 0, r.err
    ds = by_number(tmp_path / "o")[1]
    assert ds.StudyDate == "20240224" and ds.SeriesDate == "20240224"
    assert ds.AcquisitionDateTime == "20240224101112.5"
    assert ds.StudyTime == "101112"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    nested = ds.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0] if "RequestAttributesSequence" in ds else None
    assert nested is None or nested.get("ScheduledProcedureStepStartDate") in (None, "20240224")
    assert "19610412" not in open(out_files(tmp_path / "o")[0], "rb").read().decode("latin-1")
    # --check judges with the options it is given: shifted dates are what --shift-dates keeps
    assert run("anonymize", "--check", tmp_path / "o", "--shift-dates", "-10").code == 0
    assert run("anonymize", "--check", tmp_path / "o").code == 1


def test_keep_options(tree, tmp_path):
    src, uids = tree
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-dates", "--keep-uids",
            "--keep-patient-characteristics", "--keep-device", "--keep-descriptors", "--patient-id", "SUBJ01")
    assert r.code == 0, r.err
    ds = by_number(tmp_path / "o")[1]
    assert ds.StudyDate == "20240305" and ds.SOPInstanceUID == uids["a"]
    assert ds.PatientAge == "062Y" and ds.PatientSex == "M" and ds.DeviceSerialNumber == "SN-4711"
    assert ds.StudyDescription == "Johnathan brain scan"
    assert ds.PatientID == ds.PatientName == "SUBJ01"
    assert "InstitutionName" not in ds or not ds.InstitutionName
    codes = {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113106", "113108", "113109", "113110"}
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(out_files(tmp_path / "o")[0])))) == "SUBJ01"


def test_keep_private_warns(tree, tmp_path):
    src, _ = tree
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-private")
    assert r.code == 0 and "--keep-private" in r.err
    ds = by_number(tmp_path / "o")[1]
    assert any(e.tag.is_private for e in ds)
    r = run("anonymize", "--check", tmp_path / "o")
    assert r.code == 1 and "private element" in r.out and "Secret private note" not in r.out


def test_check_reports_original_masked(tree):
    src, _ = tree
    r = run("anonymize", "--check", src)
    assert r.code == 1
    assert "PatientIdentityRemoved" in r.out and "InstitutionName" in r.out
    assert "RequestAttributesSequence[0]" in r.out and "private element" in r.out
    assert "SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].OperatorsName" in r.out
    assert "file name" in r.out  # the folder name carries a date
    reported = "\n".join(line.replace(str(src), "SRC") for line in r.out.splitlines())
    for s in PHI:
        assert s not in reported  # values are masked; the path is the user's own
    r = run("anonymize", "--check", "--json", src)
    findings = json.loads(r.out)
    assert r.code == 1 and {"path", "where", "what"} <= set(findings[0])


def test_burned_in(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "b.dcm", generate_uid(), generate_uid(), generate_uid(), burned="YES")
    make_dicom(src / "us.dcm", generate_uid(), generate_uid(), generate_uid(), modality="US")
    make_dicom(src / "us_clean.dcm", generate_uid(), generate_uid(), generate_uid(), modality="US", burned="NO")
    make_dicom(src / "ct.dcm", generate_uid(), generate_uid(), generate_uid())
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0 and "BurnedInAnnotation" in r.err and "possible burned-in" in r.err
    flags = {str(pydicom.dcmread(f).get("BurnedInAnnotation")) + "/" + str(pydicom.dcmread(f).Modality):
             pydicom.dcmread(f).PatientIdentityRemoved for f in out_files(tmp_path / "o")}
    # flagged YES and unflagged suspects (US without BurnedInAnnotation NO) do not claim identity removed
    assert flags == {"YES/CT": "NO", "None/US": "NO", "NO/US": "YES", "None/CT": "YES"}
    r = run("anonymize", src, "-o", tmp_path / "x", "--key", "k", "--exclude-burned-in")
    assert r.code == 0 and len(out_files(tmp_path / "x")) == 3 and "skipped 1" in r.err


@pytest.mark.parametrize("name", REAL)
def test_real_files(name, tmp_path):
    path = get_testdata_file(name)
    orig = pydicom.dcmread(path, force=True)
    secrets = set()
    for kw in ("PatientName", "PatientID", "InstitutionName", "ReferringPhysicianName", "PatientBirthDate",
               "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "OperatorsName", "StationName",
               "AccessionNumber", "StudyID"):
        for e in orig.iterall():
            if e.keyword == kw and e.value not in (None, "") and len(str(e.value)) >= 4:
                secrets.add(str(e.value))
    uids = {str(e.value) for e in orig.iterall() if e.VR == "UI" and isinstance(e.value, str)
            and e.value and not e.value.startswith("1.2.840.10008.") and e.tag.group != 0x0002}
    # MR_small's InstitutionName "TOSHIBA" is part of its Manufacturer, which the profile keeps.
    secrets = {s for s in secrets if s not in str(orig.get("Manufacturer", ""))}
    assert secrets
    src = tmp_path / "in"
    src.mkdir()
    (src / name).write_bytes(open(path, "rb").read())
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k1")
    assert r.code == 0, r.err
    (f,) = out_files(out)
    raw = open(f, "rb").read()
    ds = pydicom.dcmread(f)
    values = [str(e.value) for e in ds.iterall() if e.VR != "SQ" and not isinstance(e.value, bytes)]
    values += [str(e.value) for e in ds.file_meta]
    for s in secrets:
        assert s.encode() not in raw, s
        assert not any(s in v for v in values), s
    uid_values = {str(e.value) for e in ds.iterall() if e.VR == "UI"} | {str(e.value) for e in ds.file_meta}
    assert uids and not uids & uid_values
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == orig.SOPClassUID
    if "PixelData" in orig:
        assert ds.PixelData == orig.PixelData
    assert run("anonymize", "--check", out).code == 0
    assert run("anonymize", "--check", src).code == 1


def test_real_references_follow(tmp_path):
    """Every UID that appears twice in the original (a reference) still matches after."""
    src = tmp_path / "in"
    src.mkdir()
    for n in REAL:
        (src / n).write_bytes(open(get_testdata_file(n), "rb").read())
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k").code == 0
    from medconv.anonymize.pseudonym import Pseudonymizer

    p = Pseudonymizer("k")
    new_uids = set()
    for f in out_files(tmp_path / "o"):
        new_uids |= {str(e.value) for e in pydicom.dcmread(f).iterall() if e.VR == "UI" and isinstance(e.value, str)}
    for n in REAL:
        orig = pydicom.dcmread(get_testdata_file(n), force=True)
        for e in orig.iterall():
            if e.VR == "UI" and isinstance(e.value, str) and e.value and not e.value.startswith("1.2.840.10008."):
                assert p.uid(e.value) in new_uids
    


def test_mapping_mode_and_content(tree, tmp_path):
    src, uids = tree
    m = tmp_path / "map.json"
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--mapping", m)
    assert r.code == 0
    assert stat.S_IMODE(os.stat(m).st_mode) == 0o600
    table = json.loads(m.read_text())
    ds = by_number(tmp_path / "o")[1]
    assert table["uid"][uids["a"]] == ds.SOPInstanceUID
    assert table["patient"]["PID12345"] == ds.PatientID
    assert not os.path.exists(tmp_path / "o2" / "map.json")


def test_layout_mirror_and_in_place(tree, tmp_path):
    src, _ = tree
    r = run("anonymize", src, "-o", tmp_path / "m", "--key", "k", "--layout", "mirror")
    assert r.code == 0 and "mirror" in r.err
    assert os.path.exists(tmp_path / "m" / "series1" / "img2.dcm")
    assert not os.path.exists(tmp_path / "m" / "notes.txt")
    before = open(src / "series1" / "img1.dcm", "rb").read()
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    after = open(src / "series1" / "img1.dcm", "rb").read()
    assert before != after and b"Doe^Johnathan" not in after
    assert sorted(os.listdir(src / "series1")) == ["img1.dcm", "img2.dcm"]


def test_nifti_scrubbed_bit_identical(tmp_path):
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "in"
    src.mkdir()
    img = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header["descrip"] = b"Doe^Johnathan 20240305 101112"
    img.header["aux_file"] = b"doe.txt"
    img.header["intent_name"] = b"PID12345"
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Doe^Johnathan"))
    nib.save(img, src / "a.nii.gz")
    nib.save(img, src / "b.nii")
    (src / "b.json").write_text(json.dumps({"PatientName": "Doe^Johnathan", "RepetitionTime": 2.0,
                                            "InstitutionName": "Saint Elsewhere", "AcquisitionDateTime": "2024"}))
    r = run("anonymize", "--check", src)
    assert r.code == 1 and "descrip" in r.out and "extensions" in r.out and "PatientName" in r.out
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    for name in ("a.nii.gz", "b.nii"):
        new, old = nib.load(out / name), nib.load(src / name)
        assert new.header["descrip"].tobytes().strip(b"\0") == b""
        assert new.header["aux_file"].tobytes().strip(b"\0") == b""
        assert len(new.header.extensions) == 0
        assert new.dataobj.get_unscaled().tobytes() == old.dataobj.get_unscaled().tobytes()
        assert np.array_equal(new.affine, old.affine)
        assert new.header["vox_offset"] == old.header["vox_offset"]
    raw_old, raw_new = open(src / "b.nii", "rb").read(), open(out / "b.nii", "rb").read()
    vox = int(np.frombuffer(raw_old[108:112], "<f4")[0])
    assert vox > 352
    assert raw_old[vox:] == raw_new[vox:] and raw_old[40:148] == raw_new[40:148]
    side = json.loads((out / "b.json").read_text())
    assert side == {"RepetitionTime": 2.0}
    assert run("anonymize", "--check", out).code == 0


def test_analyze_metaimage_nrrd(tmp_path):
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "in"
    src.mkdir()
    a = nib.AnalyzeImage(np.ones((2, 3, 4), np.int16), np.eye(4))
    a.header["descrip"] = b"Doe^Johnathan"
    a.header["patient_id"] = b"PID12345"
    a.header["exp_date"] = b"20240305"
    nib.save(a, src / "ana.hdr")
    (src / "m.mha").write_bytes(b"ObjectType = Image\nNDims = 1\nPatientName = Doe^Johnathan\n"
                                b"DimSize = 4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n\x01\x02\x03\x04")
    (src / "n.nrrd").write_bytes(b"NRRD0004\n# Doe^Johnathan\ntype: uint8\ndimension: 1\nsizes: 4\n"
                                 b"encoding: raw\npatient:=Doe^Johnathan\ncontent: PID12345\n\n\x01\x02\x03\x04")
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    for name in ("ana.hdr", "ana.img", "m.mha", "n.nrrd"):
        data = open(out / name, "rb").read()
        for s in (b"Doe", b"PID12345", b"20240305"):
            assert s not in data, (name, s)
    assert open(out / "ana.img", "rb").read() == open(src / "ana.img", "rb").read()
    assert open(out / "m.mha", "rb").read().endswith(b"ElementDataFile = LOCAL\n\x01\x02\x03\x04")
    assert open(out / "n.nrrd", "rb").read() == (b"NRRD0004\ntype: uint8\ndimension: 1\nsizes: 4\n"
                                                  b"encoding: raw\n\n\x01\x02\x03\x04")
    assert nib.load(out / "ana.hdr").header["patient_id"].tobytes().strip(b"\0") == b""
    assert run("anonymize", "--check", out).code == 0


@pytest.mark.parametrize("name,fmt", [("test.mgz", "MGH"), ("minc1_1_scale.mnc", "MINC"),
                                      ("minc2_1_scale.mnc", "MINC")])
def test_mgh_minc_scrubbed(tmp_path, name, fmt):
    # MINC and MGH used to be refused; they are scrubbed now (details: test_other_formats.py)
    src = tmp_path / "in"
    src.mkdir()
    (src / name).write_bytes(open(nibabel_data(name), "rb").read())
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--layout", "mirror")
    assert r.code == 0 and "anonymised 1 file(s)" in r.err, r.err
    assert out_files(tmp_path / "o") == [str(tmp_path / "o" / name)]
    assert "not verifiable" not in run("anonymize", "--check", src).out
    assert run("anonymize", "--check", tmp_path / "o").code == 0


def test_metaimage_detached_and_in_place(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "v.mhd").write_bytes(b"ObjectType = Image\nNDims = 1\nDimSize = 4\nStudyDate = 20240305\n"
                                b"ElementType = MET_UCHAR\nElementDataFile = v.raw\n")
    (src / "v.raw").write_bytes(b"\x01\x02\x03\x04")
    (src / "n.nii").write_bytes(b"")  # an empty file is not an image: skipped
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    assert b"20240305" not in (tmp_path / "o" / "v.mhd").read_bytes()
    assert (tmp_path / "o" / "v.raw").read_bytes() == b"\x01\x02\x03\x04"
    assert "skipped 2" in r.err  # v.raw is copied with its header, the empty file skipped
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    assert b"StudyDate" not in (src / "v.mhd").read_bytes()
    assert not [f for f in os.listdir(src) if f.startswith(".medconv-")]


def test_help_does_not_import_pydicom():
    import subprocess
    import sys

    code = ("import sys\nfrom medconv.cli import main\ntry:\n    main(['anonymize', '--help'])\n"
            "except SystemExit:\n    pass\nprint('HEAVY', [m for m in ('pydicom', 'nibabel', 'SimpleITK') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False).stdout
    assert "--keep-dates" in out and "HEAVY []" in out


def test_bad_inputs(tree, tmp_path):
    src, _ = tree
    r = run("anonymize", tmp_path / "missing", "-o", tmp_path / "o")
    assert_clean_error(r, 3, "no such file")
    assert not os.path.exists(tmp_path / "o")
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--layout", "mirror").code == 0
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--layout", "mirror")
    assert_clean_error(r, 4, "exists")
    assert not [f for f in out_files(tmp_path / "o") if ".part" in f]
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--layout", "mirror", "--force").code == 0
    assert_clean_error(run("anonymize", src), 2, "-o DIR")
    assert_clean_error(run("anonymize", src, "-o", tmp_path / "z", "--in-place"), 2)
    assert_clean_error(run("anonymize", src, "-o", tmp_path / "z", "--keep-dates", "--shift-dates", "3"), 2)
    assert_clean_error(run("anonymize", src, "-o", src, "--key", "k"), 2, "input directory")
    m = tmp_path / "m.json"
    m.write_text("{}")
    r = run("anonymize", src, "-o", tmp_path / "q", "--key", "k", "--mapping", m)
    assert_clean_error(r, 4, "exists")
    assert_clean_error(run("anonymize", "--check", tmp_path / "nope"), 3)


def test_corrupt_dicom_counted_failed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = get_testdata_file("CT_small.dcm")
    data = open(good, "rb").read()
    (src / "bad.dcm").write_bytes(data[:-5000])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-going")
    assert r.code == 5 and "failed 1" in r.err and "Traceback" not in r.err
    assert not os.path.exists(tmp_path / "o") or out_files(tmp_path / "o") == []


def test_first_failure_stops_without_keep_going(tmp_path):
    """Without --keep-going the first unreadable DICOM ends the run (exit 3, one line, named);
    with it every other file is done and the failure is counted (exit 5)."""
    src = tmp_path / "in"
    src.mkdir()
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    (src / "a_bad.dcm").write_bytes(data[:-5000])
    (src / "b_good.dcm").write_bytes(data)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 3 and "a_bad.dcm" in r.err and "Traceback" not in r.err
    assert r.err.count("error") == 1
    r = run("anonymize", src, "-o", tmp_path / "o2", "--key", "k", "-k")
    assert r.code == 5 and "anonymised 1 file(s)" in r.err and "failed 1" in r.err
    assert len(out_files(tmp_path / "o2")) == 1


@pytest.mark.parametrize("cut", ["mid_value", "mid_header"])
def test_truncated_file_without_pixels_is_refused(tmp_path, cut):
    """A file cut before its pixel data (or any non-image object cut short) is not anonymised
    into a plausible stub: pydicom keeps the short value without a word."""
    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    del ds.Rows
    del ds.Columns
    ds.ImageComments = "x" * 200
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(src / "full.dcm", implicit_vr=True, little_endian=True)  # the byte-level path steps aside
    data = (src / "full.dcm").read_bytes()
    pos = data.index(b"x" * 200)
    (src / "full.dcm").unlink()
    (src / "cut.dcm").write_bytes(data[:pos + 50] if cut == "mid_value" else data[:pos - 8 + 3])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "-k")
    assert r.code == 5 and "truncated" in r.err and "Traceback" not in r.err
    assert not os.path.exists(tmp_path / "o") or out_files(tmp_path / "o") == []


def test_check_finds_leak_planted_after_anonymize(tree, tmp_path):
    """--check is not fooled by PatientIdentityRemoved=YES: a planted value deep down is found."""
    src, _ = tree
    out = tmp_path / "o"
    assert run("anonymize", src, "-o", out, "--key", "k").code == 0
    f = next(f for f in out_files(out) if "SourceImageSequence" in pydicom.dcmread(f))
    ds = pydicom.dcmread(f)
    ds.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].InstitutionName = "Saint Elsewhere Hospital"
    ds.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].add_new(0x00080090, "PN", "Welby^Marcus")
    ds.save_as(f)
    r = run("anonymize", "--check", out)
    assert r.code == 1
    assert "PurposeOfReferenceCodeSequence[0].InstitutionName" in r.out
    assert "PurposeOfReferenceCodeSequence[0].ReferringPhysicianName" in r.out
    assert "Saint Elsewhere" not in r.out and "Welby" not in r.out
    assert len(r.out.strip().splitlines()) == 2


def test_unknown_public_and_curve_elements_removed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    ds.add_new(0x50000010, "US", 3)  # a curve (retired 50xx group)
    ds.add_new(0x0018FFF0, "UN", b"Doe^Johnathan ")  # a public tag no dictionary knows
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k").code == 0
    out = pydicom.dcmread(out_files(tmp_path / "o")[0])
    assert not any(e.tag.group in (0x5000, 0x6000) for e in out)
    assert 0x0018FFF0 not in out
    assert b"Doe^Johnathan" not in open(out_files(tmp_path / "o")[0], "rb").read()


def test_output_names_carry_no_digits_or_names(tree, tmp_path):
    src, _ = tree
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k").code == 0
    for f in out_files(tmp_path / "o"):
        rel = os.path.relpath(f, tmp_path / "o")
        folders, name = os.path.split(rel)
        assert not any(c.isdigit() for c in folders), rel
        assert name in ("1.dcm", "2.dcm")
        assert folders.split(os.sep)[0].startswith("ANON-")


def test_pseudonymizer_uid_shape():
    from medconv.anonymize.pseudonym import Pseudonymizer

    p, q = Pseudonymizer("a"), Pseudonymizer("b")
    u = "1.2.3.4.5"
    assert p.uid(u) == Pseudonymizer("a").uid(u) != q.uid(u)
    assert p.uid(u).startswith("2.25.") and len(p.uid(u)) <= 44
    assert all(part.isdigit() and (part == "0" or not part.startswith("0")) for part in p.uid(u).split("."))
    assert p.mapping["uid"][u] == p.uid(u)


def test_garbage_and_non_images(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "junk.dcm").write_bytes(bytes(128) + b"DICM" + os.urandom(300))
    (src / "text.dcm").write_bytes(b"just some text, not DICOM\n")
    (src / "bad.nii").write_bytes(open(nibabel_data("example4d.nii.gz"), "rb").read()[:30])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0 and "Traceback" not in r.err and "Warning" not in r.err, r.err
    assert "anonymised 0 file(s), skipped 3" in r.err
    for f in out_files(tmp_path / "o") if os.path.exists(tmp_path / "o") else []:
        assert not os.path.basename(f).startswith(".medconv-")
    r = run("anonymize", "--check", src)
    assert r.code in (0, 1) and "Traceback" not in r.err


def test_check_flags_dates_in_file_names(tmp_path):
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "in"
    src.mkdir()
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    nib.save(img, src / "sub_2024-03-05.nii")
    nib.save(img, src / "clean.nii")
    r = run("anonymize", "--check", src)
    assert r.code == 1
    lines = r.out.strip().splitlines()
    assert len(lines) == 1 and "sub_2024-03-05.nii: file name: contains a date" in lines[0]
    r = run("anonymize", "--check", src / "clean.nii", "--json")
    assert r.code == 0 and json.loads(r.out) == []


def test_dicomdir_skipped_with_warning(tree, tmp_path):
    src, _ = tree
    (src / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00")
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0 and "DICOMDIR skipped" in r.err and "skipped 2" in r.err
    assert not any(os.path.basename(f) == "DICOMDIR" for f in out_files(tmp_path / "o"))


def test_input_never_overwritten(tree):
    src, _ = tree
    f = src / "series1" / "img1.dcm"
    before = f.read_bytes()
    r = run("anonymize", f, "-o", src / "series1", "--layout", "mirror", "--key", "k", "--force")
    assert_clean_error(r, 2, "input directory")
    assert f.read_bytes() == before
    from medconv.anonymize import Runner
    from medconv.anonymize.actions import Options
    from medconv.errors import OutputError

    runner = Runner(Options(), key="k", output=str(src / "series1"), layout="mirror", force=True)
    runner.protect = {os.path.realpath(f)}
    with pytest.raises(OutputError, match="input file"):
        runner._write(str(f), lambda tmp: open(tmp, "wb").close())
    assert f.read_bytes() == before


def test_pydicom_warnings_do_not_reach_stderr(tmp_path):
    """A UID longer than its VR allows is anonymised; stderr keeps medconv's own one-line messages."""
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    ds = pydicom.dcmread(src / "a.dcm")
    ds.FrameOfReferenceUID = "1.2.3." + "4" * 62
    ds.save_as(src / "a.dcm")
    import subprocess
    import sys

    # a real process: in-process runs would hand Python warnings to pytest instead of stderr
    r = subprocess.run([sys.executable, "-m", "medconv", "anonymize", str(src), "-o", str(tmp_path / "o"),
                        "--key", "k"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr and "warn_and_log" not in r.stderr
    assert all(line.startswith("medconv:") for line in r.stderr.splitlines())
