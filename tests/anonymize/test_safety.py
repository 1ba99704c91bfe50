"""anonymize: --check sees through a forged YES, file meta, kept private sequences, idempotence,
--dry-run, and a --mapping that could leak or destroy."""
from __future__ import annotations

import json
import os

import pytest

from helpers import run

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid
from test_anonymize import make_dicom, out_files

ENGINES = ["bytes", "pydicom"]


@pytest.fixture
def engine(request, monkeypatch):
    if request.param == "pydicom":
        monkeypatch.setenv("MEDCONV_ANON_ENGINE", "pydicom")
    return request.param


def _one(tmp_path, name="in"):
    src = tmp_path / name
    src.mkdir()
    make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid(), ref_uid=generate_uid())
    return src


def _anonymized(tmp_path, *extra):
    src = _one(tmp_path)
    out = tmp_path / "o"
    r = run("anonymize", src, "-o", out, "--key", "k", *extra)
    assert r.code == 0, r.err
    (f,) = out_files(out)
    return f


@pytest.mark.parametrize("plant", ["name", "dummy", "meta_ae", "meta_uid"])
def test_check_not_fooled_by_patient_identity_removed(tmp_path, plant):
    """A file that says PatientIdentityRemoved YES is still read element by element: a real name as
    PatientName, a D-action attribute holding a real value, or file meta naming a host, is found."""
    f = _anonymized(tmp_path)
    assert run("anonymize", "--check", f).code == 0
    ds = pydicom.dcmread(f)
    assert ds.PatientIdentityRemoved == "YES"
    if plant == "name":
        ds.PatientName = "Doe^John"
    elif plant == "dummy":
        ds.ClinicalTrialSponsorName = "Acme Trials Ltd"  # profile action D
    elif plant == "meta_ae":
        ds.file_meta.SourceApplicationEntityTitle = "ER_SCANNER_JOHN"
    ds.save_as(f, enforce_file_format=True)
    if plant == "meta_uid":  # in the bytes: pydicom would make it follow SOPInstanceUID again
        raw = open(f, "rb").read()
        new = str(ds.file_meta.MediaStorageSOPInstanceUID).encode()
        old = b"1.2.840.113619.2.55.3." + b"7" * (len(new) - 22)
        assert raw.count(new) == 2  # meta and data set
        open(f, "wb").write(raw.replace(new, old, 1))
    r = run("anonymize", "--check", f)
    assert r.code == 1, r.out
    assert "Doe^John" not in r.out and "Acme Trials" not in r.out  # reported masked


def test_check_accepts_the_patient_id_the_user_chose(tmp_path):
    f = _anonymized(tmp_path, "--patient-id", "SUBJ01")
    assert run("anonymize", "--check", f).code == 1  # not a pseudonym: could be a real ID
    assert run("anonymize", "--check", f, "--patient-id", "SUBJ01").code == 0


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_file_meta_holds_only_what_a_file_needs(tmp_path, engine):
    """Presentation addresses and AE titles go; MediaStorageSOPInstanceUID is replaced even when the
    data set has no SOPInstanceUID to follow."""
    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    original = ds.SOPInstanceUID
    del ds.SOPInstanceUID
    ds.file_meta.SourcePresentationAddress = "http://pacs.saint-elsewhere.example/"
    ds.file_meta.SendingApplicationEntityTitle = "HOSP_SEND"
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    (f,) = out_files(tmp_path / "o")
    raw = open(f, "rb").read()
    for secret in (original.encode(), b"saint-elsewhere", b"HOSP_SEND", b"HOSPITAL_PACS"):
        assert secret not in raw
    meta = pydicom.dcmread(f).file_meta
    assert str(meta.MediaStorageSOPInstanceUID).startswith("2.25.")
    assert {int(e.tag) for e in meta} <= {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010,
                                              0x00020012, 0x00020013}
    assert run("anonymize", "--check", f).code == 0


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_kept_private_sequence_is_cleaned_inside(tmp_path, engine):
    """--keep-private keeps private elements, but a public name inside a private sequence is still
    handled by the profile and a UID in it follows its object's new UID."""
    src = tmp_path / "in"
    src.mkdir()
    a, b = generate_uid(), generate_uid()
    study, series = generate_uid(), generate_uid()
    make_dicom(src / "a.dcm", a, study, series)
    ds = make_dicom(src / "b.dcm", b, study, series)
    item = pydicom.Dataset()
    item.PatientName = "Hidden^Person"
    item.ReferencedSOPInstanceUID = a
    block = ds.private_block(0x0011, "ACME SEQ", create=True)
    block.add_new(0x01, "SQ", pydicom.Sequence([item]))
    block.add_new(0x02, "UI", a)
    ds.save_as(src / "b.dcm", enforce_file_format=True)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-private")
    assert r.code == 0, r.err
    new_uids = {str(pydicom.dcmread(f).SOPInstanceUID) for f in out_files(tmp_path / "o")}
    for f in out_files(tmp_path / "o"):
        raw = open(f, "rb").read()
        assert b"Hidden^Person" not in raw and a.encode() not in raw
        out = pydicom.dcmread(f)
        if (0x0011, 0x1001) in out:
            assert str(out[0x0011, 0x1001].value[0].ReferencedSOPInstanceUID) in new_uids
            assert str(out[0x0011, 0x1002].value) in new_uids
    assert "Secret private note" in "".join(open(f, "rb").read().decode("latin-1") for f in out_files(tmp_path / "o"))


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_anonymising_twice_with_the_same_key_changes_nothing(tmp_path, engine):
    """Idempotence: the second run with the same key keeps every UID and the pseudonym; another key
    replaces them."""
    src = tmp_path / "in"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    a = generate_uid()
    make_dicom(src / "a.dcm", a, study, series)
    make_dicom(src / "b.dcm", generate_uid(), study, series, ref_uid=a, n=2)
    assert run("anonymize", src, "-o", tmp_path / "o1", "--key", "k").code == 0
    assert run("anonymize", tmp_path / "o1", "-o", tmp_path / "o2", "--key", "k").code == 0
    assert run("anonymize", tmp_path / "o1", "-o", tmp_path / "o3", "--key", "other").code == 0
    first = {os.path.relpath(f, tmp_path / "o1"): open(f, "rb").read() for f in out_files(tmp_path / "o1")}
    second = {os.path.relpath(f, tmp_path / "o2"): open(f, "rb").read() for f in out_files(tmp_path / "o2")}
    assert first == second  # same folders (from the same UIDs and pseudonym) and the same bytes
    d1 = pydicom.dcmread(out_files(tmp_path / "o1")[0])
    d3 = pydicom.dcmread(out_files(tmp_path / "o3")[0])
    assert d3.StudyInstanceUID != d1.StudyInstanceUID and d3.PatientID != d1.PatientID


def test_dry_run_lists_actions_and_writes_nothing(tmp_path):
    src = _one(tmp_path)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--dry-run", "--json")
    assert r.code == 0, r.err
    assert not (tmp_path / "o").exists()
    plan = json.loads(r.out)
    rows = {row["tag"]: row for row in plan["elements"]}
    assert rows["(0010,0010)"]["result"] == "replaced" and rows["(0010,0010)"]["new"].startswith("ANON-")
    assert rows["(0008,0080)"]["action"] != "-" and rows["(0008,0080)"]["result"] in ("removed", "emptied")
    assert rows["(0008,0018)"]["new"].startswith("2.25.")
    assert rows["(0009,1010)"]["action"] == "private" and rows["(0009,1010)"]["result"] == "removed"
    assert rows["(0012,0062)"]["result"] == "added"
    deep = {rows[t]["name"]: rows[t]["result"] for t in rows if t.startswith("(0008,2112)[0].(0040,A170)[0].")}
    assert deep["OperatorsName"] in ("removed", "emptied") and deep["CodeValue"] == "kept"  # item by item
    assert rows["(6000,3000)"]["action"] == "X" and rows["(6000,3000)"]["result"] == "removed"
    assert "Doe^Johnathan" not in r.out and "PID12345" not in r.out  # originals never printed
    text = run("anonymize", src, "--dry-run", "--key", "k")
    assert text.code == 0 and "PatientName" in text.out and "replaced" in text.out


def test_dry_run_needs_a_dicom_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    r = run("anonymize", tmp_path / "notes.txt", "--dry-run")
    assert r.code == 3 and "no DICOM file" in r.err


def test_mapping_never_replaces_an_input_nor_lands_in_the_output(tmp_path):
    src = _one(tmp_path)
    victim = src / "a.dcm"
    before = victim.read_bytes()
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--mapping", victim, "--force")
    assert r.code == 2 and "inside the input tree" in r.err and victim.read_bytes() == before
    assert not (tmp_path / "o").exists()
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--mapping", tmp_path / "o" / "map.json")
    assert r.code == 2 and "inside the anonymised tree" in r.err
    assert not (tmp_path / "o").exists()
    # nor in an input tree: the next run over that tree would find the original identifiers there
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--mapping", src / "map.json")
    assert r.code == 2 and "inside the input tree" in r.err
    assert not (src / "map.json").exists() and not (tmp_path / "o").exists()


def test_existing_mapping_is_refused_before_anything_is_written(tmp_path):
    src = _one(tmp_path)
    (tmp_path / "map.json").write_text("{}")
    r = run("anonymize", src, "-o", tmp_path / "o", "--mapping", tmp_path / "map.json")
    assert r.code == 4 and "exists" in r.err
    assert not (tmp_path / "o").exists()  # a random key's mapping would otherwise be lost for good


def test_non_dicom_names_replaced_unless_mirror(tmp_path):
    """Folder and file names of other formats are replaced by keyed pseudonyms in the structured
    layout (pairs stay pairs); --layout mirror keeps them, with a warning."""
    import nibabel as nib
    import numpy as np

    src = tmp_path / "in" / "Doe_John"
    src.mkdir(parents=True)
    for name in ("a.nii", "b.nii"):
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), src / name)
    r = run("anonymize", tmp_path / "in", "-o", tmp_path / "o", "--key", "k", "--mapping", tmp_path / "m.json")
    assert r.code == 0, r.err
    written = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "o") for d, _, fs in os.walk(tmp_path / "o")
                     for f in fs)
    assert len(written) == 2 and not [w for w in written if "Doe" in w or "a.nii" in w]
    paths = json.loads((tmp_path / "m.json").read_text())["path"]
    assert sorted(paths.values()) == written and os.path.join("Doe_John", "a.nii") in paths
    r = run("anonymize", tmp_path / "in", "-o", tmp_path / "m", "--key", "k", "--layout", "mirror")
    assert r.code == 0 and (tmp_path / "m" / "Doe_John" / "a.nii").exists()
    assert "keeps input folder and file names" in r.err


def test_progress_bar_on_a_terminal_only(tmp_path, monkeypatch):
    from helpers import run_on_terminal

    monkeypatch.setenv("MEDCONV_PROGRESS_DELAY", "0")  # a batch this short shows no bar by default
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        make_dicom(src / f"{i}.dcm", generate_uid(), generate_uid(), generate_uid())
    r = run_on_terminal("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0 and "3/3" in r.err
    piped = run("anonymize", src, "-o", tmp_path / "o2", "--key", "k")
    assert "3/3" not in piped.err and "anonymised 3 file(s)" in piped.err


def test_parallel_run_stopped_early_leaves_no_temporary_files(tmp_path):
    """Workers write their files under hidden temporary names that the main process renames in
    input order; a run ended by an error removes every temporary file still waiting."""
    src = tmp_path / "in"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    for i in range(300):  # several chunks of work in flight
        make_dicom(src / f"f{i:03d}.dcm", generate_uid(), study, series, n=i)
    out = tmp_path / "o"
    assert run("anonymize", src, "-o", out, "--key", "k", "-j", "2").code == 0
    first = {f: open(f, "rb").read() for f in out_files(out)}
    assert len(first) == 300
    r = run("anonymize", src, "-o", out, "--key", "k", "-j", "2")  # every destination exists
    assert r.code == 4 and "exists" in r.err
    assert {f: open(f, "rb").read() for f in out_files(out)} == first  # nothing replaced, nothing left
    r = run("anonymize", src, "-o", out, "--key", "k", "-j", "2", "--force")
    assert r.code == 0 and {f: open(f, "rb").read() for f in out_files(out)} == first


def test_check_ignores_what_the_file_claims_and_reads_the_preamble(tmp_path):
    """Option codes written into a file do not relax --check (only the options given to it do), and
    a preamble holding anything is reported."""
    f = _anonymized(tmp_path)
    ds = pydicom.dcmread(f)
    ds.StationName = "CT-SCANNER-7"  # a device identifier: kept only under --keep-device
    for code in ("113109", "113105"):
        item = pydicom.Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", "claimed"
        ds.DeidentificationMethodCodeSequence.append(item)
    ds.save_as(f, enforce_file_format=True)
    assert run("anonymize", "--check", f).code == 1
    assert run("anonymize", "--check", f, "--keep-device").code == 0
    raw = bytearray(open(f, "rb").read())
    raw[:24] = b"Smith^John 19700101 note"
    open(f, "wb").write(bytes(raw))
    r = run("anonymize", "--check", f, "--keep-device")
    assert r.code == 1 and "preamble" in r.out


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_image_cut_at_an_element_boundary_is_refused(tmp_path, engine):
    """Cut exactly between two elements inside the image module (after Samples per Pixel, before
    Rows): the data set parses, but an image object without its image is a truncated file, not
    something to anonymise into a stub."""
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    raw = (src / "a.dcm").read_bytes()
    cut = raw.index(b"\x28\x00\x04\x00")  # (0028,0004) PhotometricInterpretation, explicit VR little endian
    (src / "a.dcm").write_bytes(raw[:cut])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 3 and "truncated" in r.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_image_object_without_any_image_module_is_a_header_only_object(tmp_path, engine):
    """No element of group 0028 and no pixels (DICOMDIR test sets, objects stripped for sharing):
    de-identified like any other object, with a warning that says it may also be a cut file."""
    src = tmp_path / "in"
    src.mkdir()
    make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    raw = (src / "a.dcm").read_bytes()
    cut = raw.index(b"\x28\x00\x02\x00")  # (0028,0002) SamplesPerPixel: the first of group 0028
    (src / "a.dcm").write_bytes(raw[:cut])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err
    assert "without pixel data" in r.err and "anonymised 1 file(s)" in r.err
    assert run("anonymize", "--check", tmp_path / "o").code == 0


def test_dry_run_refuses_what_a_real_run_refuses(tmp_path):
    src = _one(tmp_path)
    raw = (src / "a.dcm").read_bytes()
    (src / "a.dcm").write_bytes(raw[:-100])  # cut inside its pixel data: a real run refuses it
    real = run("anonymize", src / "a.dcm", "-o", tmp_path / "o", "--key", "k")
    assert real.code == 3 and "truncated" in real.err
    r = run("anonymize", src / "a.dcm", "--dry-run")
    assert r.code == 3 and "truncated" in r.err


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_file_meta_names_medconv_not_the_input_writer(tmp_path, engine):
    from medconv.anonymize.actions import IMPLEMENTATION_UID

    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    ds.file_meta.ImplementationVersionName = "HOSP_PACS_ST7"
    ds.file_meta.ImplementationClassUID = "1.2.3.4.5.6.7.8"
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k").code == 0
    (f,) = out_files(tmp_path / "o")
    raw = open(f, "rb").read()
    assert b"HOSP_PACS_ST7" not in raw and b"1.2.3.4.5.6.7.8" not in raw
    meta = pydicom.dcmread(f).file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_UID
    assert str(meta.ImplementationVersionName).startswith("MEDCONV_")


def test_implementation_uid_is_pydicoms():
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    from medconv.anonymize.actions import IMPLEMENTATION_UID

    assert IMPLEMENTATION_UID == PYDICOM_IMPLEMENTATION_UID


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_code_system_uids_are_kept(tmp_path, engine):
    """A CodingSchemeUID (SNOMED's 2.16.840.1.113883.6.96) names a vocabulary, not this patient's
    object: kept, so the code stays resolvable; --check does not report it."""
    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D1100", "SRT", "Head"
    item.CodingSchemeUID = "2.16.840.1.113883.6.96"
    item.MappingResourceUID = "1.2.840.10008.8.1.1"
    ds.AnatomicRegionSequence = pydicom.Sequence([item])
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k").code == 0
    (f,) = out_files(tmp_path / "o")
    out = pydicom.dcmread(f).AnatomicRegionSequence[0]
    assert out.CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert run("anonymize", "--check", f).code == 0


def test_kept_private_sequence_encoded_as_un_is_cleaned_inside(tmp_path):
    """A private sequence stored as UN (its writer did not know the VR) holds implicit VR items:
    under --keep-private they are decoded and cleaned like any sequence."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    src = tmp_path / "in"
    src.mkdir()
    a = generate_uid()
    make_dicom(src / "a.dcm", a, generate_uid(), generate_uid())
    ds = pydicom.dcmread(src / "a.dcm")
    item = pydicom.Dataset()
    item.PatientName = "Hidden^UN^Person"
    item.ReferencedSOPInstanceUID = a
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, item)
    body = buf.getvalue()
    value = b"\xfe\xff\x00\xe0" + len(body).to_bytes(4, "little") + body
    block = ds.private_block(0x0029, "ACME UN", create=True)
    block.add_new(0x10, "UN", value)
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-private")
    assert r.code == 0, r.err
    (f,) = out_files(tmp_path / "o")
    raw = open(f, "rb").read()
    assert b"Hidden^UN^Person" not in raw and a.encode() not in raw
    out = pydicom.dcmread(f)
    assert str(out[0x0029, 0x1010].value[0].ReferencedSOPInstanceUID) == str(out.SOPInstanceUID)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_shift_dates_keeps_reduced_precision_datetimes(tmp_path, engine):
    """A DT of a year or a year and month is shifted at its precision, not emptied."""
    src = tmp_path / "in"
    src.mkdir()
    ds = make_dicom(src / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    ds.AcquisitionDateTime = "202003"
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    assert run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--shift-dates", "-100").code == 0
    (f,) = out_files(tmp_path / "o")
    assert pydicom.dcmread(f).AcquisitionDateTime == "201912"
