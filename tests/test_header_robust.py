"""medconv header: malformed elements, bulk data, series differences, private creators, JSON round trip."""
from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import pydicom_data, run

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

# bulk data elements (pixel, waveform data): omitted from --json without --bulk whatever their size
BULK_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x54001010}


def _small_ct(path, *, inst=1, comments="x", private=b"", big_private=0):
    """A 4x5 CT file (40 bytes of pixel data) with a private block holding a sequence."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.7777.{inst}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "PID123"
    ds.Modality = "CT"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.SeriesNumber = 3
    ds.InstanceNumber = inst
    ds.ImagePositionPatient = [0, 0, 2.0 * inst]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.75]
    ds.SliceThickness = 2
    ds.Rows, ds.Columns = 4, 5
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.FrameOfReferenceUID = "1.2.3.9"
    blk = ds.private_block(0x0009, "ACME 1.0", create=True)
    blk.add_new(0x01, "LO", "privval")
    inner = Dataset()
    inner.PatientID = "nested"
    blk.add_new(0x03, "SQ", Sequence([inner]))
    if private:
        blk.add_new(0x10, "OB", private)
    if big_private:
        big = ds.private_block(0x0011, "BIGCO", create=True)
        big.add_new(0x01, "OB", b"\x01" * big_private)
    ds.ImageComments = comments
    ds.PixelData = (np.arange(20, dtype=np.int16) + inst).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _corrupt_inner_vr(path, vr: bytes):
    """Overwrite the VR of the element inside the private sequence (0009,1003)."""
    data = bytearray(Path(path).read_bytes())
    at = data.index(bytes.fromhex("09000310") + b"SQ")
    inner = at + 12 + 8  # SQ header (12 bytes), item header (8 bytes)
    assert data[inner:inner + 4] == bytes.fromhex("10002000")  # (0010,0020)
    data[inner + 4:inner + 6] = vr
    Path(path).write_bytes(bytes(data))
    return path


# -- 1: a malformed element inside a private sequence -------------------------------------
@pytest.mark.parametrize("vr,error", [(b"SO", "NotImplementedError"), (b"SQ", "OSError")])
def test_malformed_private_sequence_shows_the_rest(tmp_path, vr, error):
    path = _corrupt_inner_vr(_small_ct(tmp_path / "bad.dcm"), vr)
    assert run("info", path).code == 0  # the rest of the toolkit reads it

    r = run("header", path)
    assert r.code == 0, r.err
    line = next(l for l in r.out.splitlines() if l.strip().startswith("(0010,0020)") and l.startswith("  "))
    assert f"<unreadable: {error}" in line
    assert "(0009,1001) LO [ACME 1.0]" in r.out and "[privval]" in r.out
    assert "(7FE0,0010)" in r.out and "(0010,0020) LO PatientID  [PID123]" in r.out
    warnings_ = [l for l in r.err.splitlines() if l.startswith("medconv: warning:")]
    assert len(warnings_) == 1 and "(0009,1003)[0].(0010,0020)" in warnings_[0] and error in warnings_[0]

    r = run("header", path, "--get", "PatientID", "--get", "0009,1001", "--get", "Modality")
    assert r.code == 0, r.err
    assert r.out.rstrip("\n").split("\t") == ["PID123", "privval", "CT"]
    r = run("header", path, "--get", "(0009,1003)[0].PatientID")
    assert r.code == 0 and r.out.startswith("<unreadable:")

    r = run("header", path, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    node = doc["00091003"]["Value"][0]["00100020"]
    assert node["vr"] == "UN" and node["medconv:unreadable"].startswith(f"<unreadable: {error}")
    back = Dataset.from_json(doc)  # still a valid DICOM JSON document
    assert back.PatientID == "PID123"


def test_malformed_element_with_quiet_is_silent(tmp_path):
    path = _corrupt_inner_vr(_small_ct(tmp_path / "bad.dcm"), b"SO")
    r = run("header", path, "-q")
    assert r.code == 0 and r.err == "" and "<unreadable:" in r.out


# -- 4: --all compares full values ---------------------------------------------------------
def test_series_all_compares_full_values(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(3):
        blob = bytes(range(256)) * 4
        blob = blob[:-1] + bytes([i])  # same length, different last byte
        # comments that differ only after the 64 characters a terminal shows
        _small_ct(folder / f"f{i}.dcm", inst=i + 1, comments="y" * 100 + str(i), private=blob)
    doc = json.loads(run("header", folder, "--all", "--json").out)
    rows = {d["tag"]: d for d in doc["differences"]}
    assert rows["(0020,4000)"]["distinct"] == 3
    assert rows["(0009,1010)"]["distinct"] == 3
    assert all(len(v) <= 64 for v in rows["(0020,4000)"]["values"])  # shown abbreviated
    assert len(set(rows["(0009,1010)"]["values"])) == 3  # told apart, though of one length
    assert "(0010,0020)" not in rows
    r = run("header", folder, "--all")
    assert r.code == 0 and "ImageComments" in r.out


# -- 5: pixel data is bulk data at any size ------------------------------------------------
def test_small_pixel_data_omitted_without_bulk(tmp_path):
    path = _small_ct(tmp_path / "small.dcm")
    doc = json.loads(run("header", path, "--json").out)
    assert doc["7FE00010"] == {"vr": "OW"}
    full = json.loads(run("header", path, "--json", "--bulk").out)
    assert base64.b64decode(full["7FE00010"]["InlineBinary"]) == pydicom.dcmread(path).PixelData


def test_nested_waveform_data_omitted_without_bulk():
    path = pydicom_data("waveform_ecg.dcm")
    ds = pydicom.dcmread(path)
    doc = json.loads(run("header", path, "--json").out)
    for i in range(len(ds.WaveformSequence)):
        assert doc["54000100"]["Value"][i]["54001010"] == {"vr": ds.WaveformSequence[i]["WaveformData"].VR}
    full = json.loads(run("header", path, "--json", "--bulk").out)
    assert base64.b64decode(full["54000100"]["Value"][0]["54001010"]["InlineBinary"]) == \
        ds.WaveformSequence[0].WaveformData


# -- 8: large private values left on disk keep their creator -------------------------------
def test_deferred_private_element_named_with_creator(tmp_path):
    path = _small_ct(tmp_path / "big.dcm", big_private=5000)
    r = run("header", path)
    assert r.code == 0, r.err
    line = next(l for l in r.out.splitlines() if l.startswith("(0011,1001)"))
    assert "[BIGCO]" in line and "<5000 bytes>" in line


# -- 6: the DICOM JSON read back by pydicom ------------------------------------------------
ROUND_TRIP = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "waveform_ecg.dcm",
              "examples_overlay.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm", "reportsi.dcm", "MR_small_bigendian.dcm",
              "image_dfl.dcm", "JPEG2000.dcm", "explicit_VR-UN.dcm", "SC_rgb.dcm", "test-SR.dcm",
              "MR-SIEMENS-DICOM-WithOverlays.dcm"]


def _is_bulk(elem) -> bool:
    value = elem.value
    return int(elem.tag) in BULK_DATA_TAGS or (isinstance(value, (bytes, bytearray)) and len(value) > 768)


def _same(src, back, bulk, where=""):
    """Element-by-element differences between pydicom's data set and the one read back from JSON."""
    problems = []
    for elem in src:
        at = f"{where}{elem.tag}"
        if elem.tag not in back:
            problems.append(f"missing {at}")
            continue
        got = back[elem.tag]
        if got.VR != elem.VR:
            problems.append(f"VR {at}: {elem.VR} != {got.VR}")
        if elem.VR == "SQ":
            if len(got.value) != len(elem.value):
                problems.append(f"items {at}")
                continue
            for i, (a, b) in enumerate(zip(elem.value, got.value)):
                problems.extend(_same(a, b, bulk, f"{at}[{i}]."))
        elif not bulk and _is_bulk(elem):
            if got.value not in (None, b""):  # omitted: only the VR is there
                problems.append(f"bulk value present {at}")
        elif not (elem.is_empty and got.is_empty) and got.value != elem.value:
            problems.append(f"value {at}: {str(elem.value)[:40]!r} != {str(got.value)[:40]!r}")
    problems.extend(f"extra {where}{e.tag}" for e in back if e.tag not in src)
    return problems


@pytest.mark.parametrize("name", ROUND_TRIP)
@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "nobulk"])
def test_dicom_json_round_trips_through_pydicom(name, bulk):
    path = pydicom_data(name)
    r = run("header", path, "--json", *(["--bulk"] if bulk else []))
    assert r.code == 0, r.err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = Dataset.from_json(json.loads(r.out))
        src = pydicom.dcmread(path, force=True)
    meta, rest = Dataset(), Dataset()
    for elem in back:
        (meta if elem.tag.group == 0x0002 else rest).add(elem)
    problems = _same(getattr(src, "file_meta", None) or Dataset(), meta, bulk, "meta ") + _same(src, rest, bulk)
    assert problems == []


def test_header_of_many_inputs_from_a_list_keeps_going(tmp_path):
    """--from-list (stdin) and -k as for every command: a bad input is named, the others printed."""
    import nibabel as nib
    import numpy as np

    from helpers import run_subprocess

    good = []
    for i in range(2):
        p = tmp_path / f"g{i}.nii"
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), p)
        good.append(str(p))
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"not a header")
    listing = "\n".join([good[0], str(bad), good[1]]) + "\n"
    r = run_subprocess("header", "--from-list", "-", "--get", "dim", "-k", input=listing)
    assert r.code == 5 and "bad.nii" in r.err and "Traceback" not in r.err
    assert len(r.out.splitlines()) == 2
    r = run_subprocess("header", "--from-list", "-", "--get", "dim", input=listing)
    assert r.code == 3 and "bad.nii" in r.err
