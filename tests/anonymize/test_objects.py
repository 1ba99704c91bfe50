"""anonymize on every DICOM object, not only images: unknown public elements, objects without
pixel data, documents that cannot be cleaned, DICOMDIRs, free text for review, deep nesting."""
from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

from helpers import presentation_state, run, run_subprocess

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, generate_uid
from test_anonymize import make_dicom, out_files

ENGINES = ["bytes", "pydicom"]
SECRET = b"DOE JOHN 19700101"


@pytest.fixture
def engine(request, monkeypatch):
    if request.param == "pydicom":
        monkeypatch.setenv("MEDCONV_ANON_ENGINE", "pydicom")
    return request.param


def _all_bytes(folder) -> bytes:
    return b"".join(open(f, "rb").read() for f in out_files(folder))


def _sr(path, content, title="Report", sop_class=ComprehensiveSRStorage):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "SR"
    ds.PatientName, ds.PatientID = "Doe^John", "PID-4711"
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121060", "DCM", "History"
    ds.ConceptNameCodeSequence = Sequence([name])
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence(content)
    ds.DocumentTitle = title
    ds.save_as(path, enforce_file_format=True)
    return ds


def _text_item(text, scheme="DCM", meaning="Finding"):
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", scheme, meaning
    item.ConceptNameCodeSequence = Sequence([code])
    item.TextValue = text
    return item


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_unknown_public_element_is_removed_and_checked(tmp_path, engine):
    """A public element neither the table nor the dictionary names, with a text VR in an explicit-VR
    file, at depth 1 and inside a sequence: --check finds it, anonymize removes it."""
    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    ds.add_new(0x04009999, "LT", SECRET.decode())
    item = Dataset()
    item.add_new(0x00221234, "LO", "SECOND " + SECRET.decode())
    ds.ReferencedSeriesSequence = Sequence([item])
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    r = run("anonymize", "--check", src)
    assert r.code == 1 and "named by neither" in r.out
    assert r.out.count("named by neither") == 2, r.out
    rows = json.loads(run("anonymize", src, "--dry-run", "--json", "--key", "k").out)["elements"]
    unknown = [row for row in rows if row["action"] == "unknown"]
    assert {row["tag"] for row in unknown} == {"(0400,9999)", "(0008,1115)[0].(0022,1234)"}
    assert all(row["result"] == "removed" for row in unknown)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert SECRET not in _all_bytes(tmp_path / "o")
    r = run("anonymize", "--check", tmp_path / "o")
    assert r.code == 0, r.out


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_sr_content_gets_the_content_sequence_action(tmp_path, engine):
    """Content Sequence is D: the tree stays, its free text becomes the dummy value, coded concept
    names stay; the names in Person Name items become dummies."""
    src = tmp_path / "in"
    src.mkdir()
    person = Dataset()
    person.RelationshipType, person.ValueType, person.PersonName = "HAS OBS CONTEXT", "PNAME", "Welby^Marcus"
    _sr(src / "sr.dcm", [_text_item("Mr Doe John was seen on 19700101"), person])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    data = _all_bytes(tmp_path / "o")
    for secret in (b"Doe John", b"Welby", b"Doe^John", b"PID-4711"):
        assert secret not in data, secret
    (out,) = out_files(tmp_path / "o")
    ds = pydicom.dcmread(out)
    assert ds.ContentSequence[0].TextValue == "ANONYMIZED"
    assert ds.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    assert ds.ContentSequence[1].PersonName == "ANONYMIZED"
    assert run("anonymize", "--check", src).code == 1
    assert run("anonymize", "--check", tmp_path / "o").code == 0


def test_free_text_left_in_place_is_listed_for_review(tmp_path):
    """Text kept under --keep-descriptors and a Code Meaning of a local coding scheme are listed under
    "review"; they do not change the exit code unless --strict; a DCM code meaning is vocabulary."""
    src = tmp_path / "in"
    src.mkdir()
    _sr(src / "sr.dcm", [_text_item("Mr Doe John was seen"), _text_item("x", "99LOCAL", "Dr Welby's list")],
        title="Doe John report")
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-descriptors")
    assert r.code == 0, r.err
    r = run("anonymize", "--check", tmp_path / "o", "--keep-descriptors")
    assert r.code == 0, r.out
    review = [line for line in r.out.splitlines() if ": review: " in line]
    assert any("ContentSequence[0].TextValue" in line for line in review), r.out
    assert any("ContentSequence[1].ConceptNameCodeSequence[0].CodeMeaning" in line for line in review), r.out
    assert any(line.endswith("DocumentTitle: review: free text that may hold a name: Do*** (15 chars)")
               for line in review), r.out
    assert not any("ContentSequence[0].ConceptNameCodeSequence" in line for line in review), r.out
    assert "Doe John" not in r.out  # masked, as every finding
    assert 'listed under "review"' in r.err
    assert run("anonymize", "--check", tmp_path / "o", "--keep-descriptors", "--strict").code == 1
    r = run("anonymize", src, "-o", tmp_path / "s", "--strict")
    assert r.code == 2 and "--strict goes with --check" in r.err
    # the same object anonymised without the option: the text became the dummy; the title (not in the
    # table) and the local code meaning (kept as the concept name of the content item) stay for review
    r = run("anonymize", src, "-o", tmp_path / "o2", "--key", "k")
    r = run("anonymize", "--check", tmp_path / "o2")
    assert r.code == 0 and "TextValue" not in r.out and "DocumentTitle: review" in r.out, r.out


def test_tiny_alpha_objects_without_pixel_data(tmp_path):
    """pydicom's TINY_ALPHA file-set: 50 objects without pixel data and a DICOMDIR. The README's
    anonymize && anonymize --check recipe goes through; the DICOMDIR is not copied."""
    folder = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests", "TINY_ALPHA")
    r = run("anonymize", folder, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert "anonymised 50 file(s)" in r.err and "DICOMDIR" in r.err
    files = out_files(tmp_path / "o")
    assert len(files) == 50 and not any(os.path.basename(f).upper() == "DICOMDIR" for f in files)
    data = _all_bytes(tmp_path / "o")
    for secret in (b"Citizen", b"12345678", b"20200913", b"Testing File-set"):
        assert secret not in data, secret
    assert run("anonymize", "--check", folder).code == 1
    r = run("anonymize", "--check", tmp_path / "o")
    assert r.code == 0, r.out


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_rt_structure_set_names_and_presentation_state(tmp_path, engine):
    src = tmp_path / "in"
    src.mkdir()
    rt = pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    rt.StructureSetROISequence[0].ROIName = "Doe John tumour"
    rt.StructureSetLabel = "Doe John plan"
    rt.RTROIObservationsSequence[0].ROIObservationLabel = "Doe John label"
    rt.save_as(src / "rt.dcm")
    pr = presentation_state("Doe John 19700101")
    pr.PatientName = "Doe^John"
    pr.ContentLabel, pr.ContentDescription, pr.ContentCreatorName = "LABEL", "Doe John view", "Welby^Marcus"
    pr.save_as(src / "pr.dcm", enforce_file_format=True)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    data = _all_bytes(tmp_path / "o")
    assert data.count(b"Doe John") == 1 and b"Welby" not in data and b"Doe^John" not in data
    # Content Description: free text the table leaves in place, listed for review (not counted)
    r = run("anonymize", "--check", tmp_path / "o")
    assert r.code == 0 and r.out.count(": review: ") == 1 and "ContentDescription: review" in r.out, r.out


def _pdf_object(path, sop_class="1.2.840.10008.5.1.4.1.1.104.1"):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "DOC", "Doe^John", "PID-4711"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4 " + SECRET + b" %%EOF\n"
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_objects_that_cannot_be_cleaned_are_left_out_and_counted(tmp_path, engine):
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "ct.dcm", generate_uid(), generate_uid(), generate_uid())
    _pdf_object(src / "report.dcm")
    _pdf_object(src / "cda.dcm", "1.2.840.10008.5.1.4.1.1.104.2")
    _pdf_object(src / "raw.dcm", "1.2.840.10008.5.1.4.1.1.66")
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert len(out_files(tmp_path / "o")) == 1
    assert r.err.count("left out 3 DICOM object(s)") == 1 and "--keep-unscrubbable" in r.err
    assert SECRET not in _all_bytes(tmp_path / "o")
    assert run("anonymize", "--check", src / "report.dcm").code == 1
    # --keep-unscrubbable: copied (header de-identified, the document as it is), with a warning
    r = run("anonymize", src, "-o", tmp_path / "k", "--key", "k", "--keep-unscrubbable")
    assert r.code == 0, r.err
    assert len(out_files(tmp_path / "k")) == 4 and r.err.count("--keep-unscrubbable") >= 3
    data = _all_bytes(tmp_path / "k")
    assert SECRET in data and b"Doe^John" not in data and b"PID-4711" not in data
    r = run("anonymize", "--check", tmp_path / "k")
    assert r.code == 1 and "cannot be de-identified" in r.out


def test_a_dicomdir_under_another_name_is_not_copied(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests", "DICOMDIR"),
                src / "index.dcm")
    make_dicom(src / "ct.dcm", generate_uid(), generate_uid(), generate_uid())
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert "DICOMDIR skipped" in r.err and len(out_files(tmp_path / "o")) == 1


def test_check_does_not_call_the_pseudonym_in_the_path_a_patient_name(tmp_path):
    """A US image stays PatientIdentityRemoved NO (burned-in text suspected), and the structured
    layout names its folder after the patient pseudonym: that is not "the patient name"."""
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "us.dcm", generate_uid(), generate_uid(), generate_uid(), modality="US")
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    r = run("anonymize", "--check", tmp_path / "o")
    assert "patient name" not in r.out and "PatientIdentityRemoved" in r.out
    r = run("anonymize", src, "-o", tmp_path / "p", "--key", "k", "--patient-id", "SUBJ01")
    r = run("anonymize", "--check", tmp_path / "p", "--patient-id", "SUBJ01")
    assert "patient name" not in r.out, r.out


def _deep_sr(depth: int) -> bytes:
    """An SR whose Content Sequence nests `depth` levels (defined lengths), text at the bottom."""
    def el(tag, vr, val):
        val += b" " if len(val) % 2 else b""
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
        if vr in (b"SQ", b"UT", b"OB"):
            return head + b"\0\0" + struct.pack("<I", len(val)) + val
        return head + struct.pack("<H", len(val)) + val

    inner = el(0x0040A160, b"UT", SECRET)
    for _ in range(depth):
        inner = el(0x0040A730, b"SQ", b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner)
    sr = ComprehensiveSRStorage.encode()
    meta = (el(0x00020001, b"OB", b"\0\x01") + el(0x00020002, b"UI", sr) + el(0x00020003, b"UI", b"1.2.3.4")
            + el(0x00020010, b"UI", ExplicitVRLittleEndian.encode()) + el(0x00020012, b"UI", b"1.2.3.4.5"))
    body = el(0x00080016, b"UI", sr) + el(0x00080018, b"UI", b"1.2.3.4") + el(0x00100010, b"PN", b"Doe^John") + inner
    return b"\0" * 128 + b"DICM" + el(0x00020000, b"UL", struct.pack("<I", len(meta))) + meta + body


@pytest.mark.parametrize("engine", ["fast", "pydicom"])
def test_deep_nesting_within_the_bound_is_anonymised_and_beyond_refused(tmp_path, monkeypatch, engine):
    """Sequences nested within the bound every DICOM reader applies are walked by both engines; 400
    levels are refused as corrupt by both (one line, nothing written), never a RecursionError."""
    if engine == "pydicom":
        monkeypatch.setenv("MEDCONV_ANON_ENGINE", "pydicom")
    src = tmp_path / "in"
    src.mkdir()
    (src / "deep.dcm").write_bytes(_deep_sr(30))
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert SECRET not in _all_bytes(tmp_path / "o") and b"Doe^John" not in _all_bytes(tmp_path / "o")
    assert run("anonymize", "--check", tmp_path / "o").code == 0
    (src / "deep.dcm").write_bytes(_deep_sr(400))
    r = run("anonymize", src, "-o", tmp_path / "p", "--key", "k")
    assert r.code == 3 and "nested" in r.err and "Traceback" not in r.err, r.err
    assert not os.path.exists(tmp_path / "p") or not os.listdir(tmp_path / "p")


def test_nesting_beyond_the_bound_is_refused_cleanly(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "deeper.dcm").write_bytes(_deep_sr(1100))
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 3 and "nested" in r.err and "Traceback" not in r.err
    assert len(r.err.splitlines()) == 1


def test_left_out_objects_are_counted_with_worker_processes(tmp_path):
    """With -j 2 (worker processes take chunks of files) the count is the same and nothing is written."""
    src = tmp_path / "in"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    for i in range(140):
        make_dicom(src / f"a{i:03d}.dcm", generate_uid(), study, series, n=i)
    _pdf_object(src / "a050.dcm")
    _pdf_object(src / "a120.dcm")
    r = run_subprocess("anonymize", src, "-o", tmp_path / "o", "--key", "k", "-j", "2")
    assert r.code == 0, r.err
    assert r.err.count("left out 2 DICOM object(s)") == 1 and "anonymised 138 file(s)" in r.err
    assert len(out_files(tmp_path / "o")) == 138 and SECRET not in _all_bytes(tmp_path / "o")


def test_in_place_says_the_objects_left_are_still_identified(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _pdf_object(src / "report.dcm")
    before = (src / "report.dcm").read_bytes()
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    assert "left 1 DICOM object(s) as they are, still identified" in r.err
    assert (src / "report.dcm").read_bytes() == before
    assert run("anonymize", "--check", src).code == 1
