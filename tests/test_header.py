"""medconv header: every value checked against pydicom's and nibabel's own parsing."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, assert_clean_error, nibabel_data, pydicom_sample, run

pydicom = pytest.importorskip("pydicom")

DICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "JPEG2000.dcm"]
COMPRESSED = ["JPEG2000.dcm", "US1_J2KR.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "JPEG-LL.dcm"]
NIFTI_KNOWN_GAPS = set()
NIFTI_FILES = ["example4d.nii.gz", "example_nifti2.nii.gz", "anatomical.nii", "functional.nii", "standard.nii.gz"]
BULK_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x54001010}


def dicom_file(name: str) -> str:
    return pydicom_sample(name)


def header_json(path, *extra):
    r = run("header", path, "--json", *extra)
    assert r.code == 0, r.err
    return json.loads(r.out)


# -- DICOM JSON against pydicom -----------------------------------------------------------
def _check_element(elem, node, bulk):
    """One JSON-model element against pydicom's parsed element (independent of to_json_dict)."""
    assert node["vr"] == elem.VR, (elem.tag, node)
    value = elem.value
    if elem.VR == "SQ":
        assert len(node.get("Value", [])) == len(value)
        for item, jitem in zip(value, node.get("Value", [])):
            _check_dataset(item, jitem, bulk)
        return
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        if value is None or len(value) == 0:
            assert "InlineBinary" not in node
        elif not bulk and elem.tag in BULK_DATA_TAGS:  # pixel data is bulk data at any size
            assert set(node) == {"vr"}, elem.tag
        elif bulk or len(value) <= 768:  # 1024 bytes of base64
            assert base64.b64decode(node["InlineBinary"]) == bytes(value), elem.tag
        else:
            assert "InlineBinary" not in node and "Value" not in node, elem.tag
        return
    if elem.is_empty:
        assert "Value" not in node, (elem.tag, node)
        return
    got = node["Value"]
    values = list(value) if elem.VM > 1 else [value]
    assert len(got) == len(values), elem.tag
    for g, v in zip(got, values):
        if elem.VR == "PN":
            assert g["Alphabetic"] == str(v)
        elif elem.VR in ("DS", "FL", "FD"):
            assert g == pytest.approx(float(v), rel=1e-6), elem.tag
        elif elem.VR in ("IS", "SL", "SS", "UL", "US", "SV", "UV"):
            assert g == int(v), elem.tag
        elif elem.VR == "AT":
            assert int(g, 16) == int(v)
        else:
            assert g == str(v), elem.tag


def _check_dataset(ds, doc, bulk):
    tags = {f"{int(e.tag):08X}" for e in ds}
    assert set(doc) == tags, set(doc) ^ tags
    for elem in ds:
        _check_element(elem, doc[f"{int(elem.tag):08X}"], bulk)


@pytest.mark.parametrize("name", DICOM_FILES + ["US1_J2KR.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                                "image_dfl.dcm", "emri_small_big_endian.dcm"])
def test_dicom_json_matches_pydicom(name):
    path = dicom_file(name)
    doc = header_json(path)
    ds = pydicom.dcmread(path, force=True)
    meta_tags = {f"{int(e.tag):08X}" for e in ds.file_meta}
    assert meta_tags <= set(doc), "file meta group included"
    assert meta_tags or name == "rtstruct.dcm"  # rtstruct.dcm has no file meta group
    _check_dataset(ds.file_meta, {k: v for k, v in doc.items() if k in meta_tags}, bulk=False)
    _check_dataset(ds, {k: v for k, v in doc.items() if k not in meta_tags}, bulk=False)


def test_dicom_json_bulk_inlines_pixel_data():
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert "InlineBinary" not in header_json(path)["7FE00010"]
    doc = header_json(path, "--bulk")
    assert base64.b64decode(doc["7FE00010"]["InlineBinary"]) == ds.PixelData
    _check_dataset(ds, {k: v for k, v in doc.items() if not k.startswith("0002")}, bulk=True)


def test_bulk_needs_json():
    assert_clean_error(run("header", dicom_file("CT_small.dcm"), "--bulk"), 2, "--json")


# -- DICOM text ---------------------------------------------------------------------------
def test_dicom_text_lists_every_element_with_private_creators():
    path = dicom_file("CT_small.dcm")
    r = run("header", path)
    assert r.code == 0, r.err
    ds = pydicom.dcmread(path)
    lines = r.out.splitlines()
    for elem in list(ds.file_meta) + list(ds):
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        hits = [l for l in lines if l.startswith(f"{tag} {elem.VR}")]
        assert len(hits) == 1, tag
        if elem.tag.is_private and not elem.tag.is_private_creator:
            assert f"[{elem.private_creator}]" in hits[0]
        elif elem.keyword and elem.tag != 0x7FE00010:
            assert f" {elem.keyword}  " in hits[0]
            if elem.VR not in ("OB", "OW", "UN", "SQ") and elem.VM == 1 and str(elem.value):
                assert f"[{elem.value}]" in hits[0]
    pixel = next(l for l in lines if l.startswith("(7FE0,0010)"))
    assert f"<{len(ds.PixelData)} bytes" in pixel and "1.2.840.10008.1.2.1" in pixel
    assert len(r.out) < 20000, "pixel data is never dumped"


def test_dicom_text_nests_sequence_items():
    path = dicom_file("rtplan.dcm")
    r = run("header", path)
    assert r.code == 0, r.err
    ds = pydicom.dcmread(path)
    beam = ds.BeamSequence[0].ControlPointSequence[0]
    assert "(2 items)" in r.out or f"({len(ds.BeamSequence)} item" in r.out
    # an element of an item of a sequence inside an item: two levels, two spaces each
    tag = next(e.tag for e in beam if e.VR != "SQ")
    assert any(l.startswith("    " + f"({tag.group:04X},{tag.element:04X})") for l in r.out.splitlines())
    assert "> Item 1" in r.out


# -- --get --------------------------------------------------------------------------------
def test_get_keyword_tag_forms_and_sequence_path():
    path = dicom_file("rtplan.dcm")
    ds = pydicom.dcmread(path)
    forms = ["PatientID", "0010,0020", "(0010,0020)", "00100020", "(0010,0020)".lower()]
    r = run("header", path, *[arg for f in forms for arg in ("--get", f)])
    assert r.code == 0, r.err
    assert r.out.rstrip("\n").split("\t") == [ds.PatientID] * len(forms)
    seq = "FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber"
    r = run("header", path, "--get", seq, "--get", "TransferSyntaxUID", "--get", "BeamSequence[0].BeamName")
    assert r.code == 0, r.err
    assert r.out.rstrip("\n").split("\t") == [
        str(ds.FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber),
        str(ds.file_meta.TransferSyntaxUID), str(ds.BeamSequence[0].BeamName)]


def test_get_multivalue_private_and_pixel():
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    r = run("header", path, "--get", "ImagePositionPatient", "--get", "0009,1002", "--get", "PixelData")
    assert r.code == 0, r.err
    pos, private, pixel = r.out.rstrip("\n").split("\t")
    assert [float(v) for v in pos.split()] == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert private == ds[0x00091002].value
    assert pixel.startswith(f"<{len(ds.PixelData)} bytes")


def test_get_indexes_values_and_items():
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    r = run("header", path, "--get", "ImagePositionPatient[2]", "--get", "PixelSpacing[-1]",
            "--get", "PatientID[0]", "--get", "OtherPatientIDsSequence")
    assert r.code == 0, r.err
    z, dy, pid, seq = r.out.rstrip("\n").split("\t")
    assert float(z) == pytest.approx(float(ds.ImagePositionPatient[2]))
    assert float(dy) == pytest.approx(float(ds.PixelSpacing[1]))
    assert pid == ds.PatientID
    assert seq == f"({len(ds.OtherPatientIDsSequence)} items)"
    nifti = run("header", nibabel_data("example4d.nii.gz"), "--get", "dim[1]", "--get", "extensions[0].name")
    assert nifti.out.split() == ["128", "comment"]


@pytest.mark.parametrize("field", ["NoSuchKeyword", "0011,9999", "BeamSequence[99].BeamName",
                                   "PatientID[0].Foo", "PatientName.Foo", "a..b", "PatientID[1]",
                                   "BeamSequence[0]", "BeamSequence.BeamName", "PixelData[0]",
                                   "BeamSequence[0][0].BeamName"])
def test_get_missing_field_is_input_error(field):
    r = run("header", dicom_file("rtplan.dcm"), "--get", field)
    assert_clean_error(r, 3, field)
    assert r.out == ""


@pytest.mark.parametrize("field", ["ElementSpacing", "descrip[0]", "dim[9]", "extensions[5].code", "dim.x"])
def test_get_missing_nifti_field(field):
    assert_clean_error(run("header", nibabel_data("example4d.nii.gz"), "--get", field), 3, field)


# -- compressed DICOM: pixels never decoded -----------------------------------------------
@pytest.fixture
def no_decoding(monkeypatch):
    from pydicom.pixels.decoders import base

    def boom(*a, **k):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(base.Decoder, "as_array", boom)
    monkeypatch.setattr(base.Decoder, "iter_array", boom)
    monkeypatch.setattr(base.Decoder, "as_buffer", boom)
    monkeypatch.setattr(pydicom.dataset.Dataset, "convert_pixel_data", boom)
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(boom))


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_headers_never_decode_pixels(name, no_decoding):
    path = dicom_file(name)
    ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    r = run("header", path)
    assert r.code == 0, r.err
    assert "encapsulated" in r.out and ts in r.out
    assert run("header", path, "--json").code == 0
    r = run("header", path, "--get", "Rows", "--get", "PixelData")
    assert r.code == 0, r.err
    assert "encapsulated" in r.out
    with pytest.raises(AssertionError, match="decoded"):  # the trap is armed
        _ = pydicom.dcmread(path).pixel_array


def test_uncompressed_pixel_bytes_stay_on_disk(monkeypatch):
    import pydicom.filereader

    def boom(*a, **k):
        raise AssertionError("deferred pixel data was read")

    monkeypatch.setattr(pydicom.filereader, "read_deferred_data_element", boom)
    path = dicom_file("CT_small.dcm")
    size = len(pydicom.dcmread(path).PixelData)
    for argv in ([], ["--json"], ["--get", "PixelData"]):
        r = run("header", path, *argv)
        assert r.code == 0, (argv, r.err)
        assert str(size) in r.out or argv == ["--json"]
    assert json.loads(run("header", path, "--json").out)["7FE00010"] == {"vr": "OW"}
    with pytest.raises(AssertionError, match="deferred"):  # the trap is armed
        _ = pydicom.dcmread(path, defer_size=4096).PixelData


def test_terminal_rendering_abbreviates(monkeypatch, tmp_path):
    from medconv.cli import render

    monkeypatch.setattr(render, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.ImageComments = "x" * 500
    path = tmp_path / "long.dcm"
    ds.save_as(path)
    r = run("header", path)
    assert r.code == 0, r.err
    line = next(l for l in r.out.splitlines() if "ImageComments" in l)
    assert "..." in line and "x" * 100 not in line
    assert "PixelData" in r.out and "<32768 bytes" in r.out
    plain = run("header", path, "--get", "ImageComments")
    assert plain.out.strip() == "x" * 500
    r = run("header", nibabel_data("example4d.nii.gz"))
    assert r.code == 0 and "FSL3.3" in r.out and "(int16)" in r.out


# -- NIfTI against nibabel ----------------------------------------------------------------
def _compare_nifti(path, doc):
    import nibabel
    from nibabel.openers import ImageOpener

    # nibabel.load moves the scaling out of img.header; the raw header is read from the file itself
    klass = type(nibabel.load(path).header)
    with ImageOpener(path) as fh:
        hdr = klass.from_fileobj(fh)
    for key in hdr.keys():  # noqa: SIM118 - a nibabel header, not a dict
        if key in NIFTI_KNOWN_GAPS:
            continue
        expected = hdr[key]
        assert key in doc, key
        got = doc[key]
        if expected.dtype.kind in "SU":
            exp = expected.item()
            exp = exp.decode("latin-1") if isinstance(exp, bytes) else exp
            assert (got or "") == exp.split("\x00")[0], key  # C strings end at the first NUL
        else:
            assert np.allclose(np.asarray(got, dtype=float), expected.astype(float), equal_nan=True), key
    exts = list(getattr(nibabel.load(path).header, "extensions", []))
    assert len(doc.get("extensions", [])) == len(exts)
    for e, j in zip(exts, doc.get("extensions", [])):
        assert j["code"] == e.get_code()
        content = e.get_content()
        content = content if isinstance(content, bytes) else str(content).encode()
        assert j["content"] == content.rstrip(b"\x00").decode()


@pytest.mark.parametrize("name", NIFTI_FILES)
def test_nifti_json_matches_nibabel(name):
    path = nibabel_data(name)
    doc = header_json(path)
    _compare_nifti(path, doc)
    assert doc["format"] == ("nifti2" if "nifti2" in name else "nifti1")


def test_nifti_pair_header_matches_nibabel(tmp_path):
    import nibabel

    src = nibabel_data("nifti1.hdr")
    hdr = tmp_path / "pair.hdr"
    shutil.copy(src, hdr)
    h = nibabel.load(src).header
    (tmp_path / "pair.img").write_bytes(b"\0" * int(np.prod(h.get_data_shape()) * h.get_data_dtype().itemsize))
    _compare_nifti(str(hdr), header_json(hdr))


def test_nifti_header_without_image_file():
    assert run("header", nibabel_data("nifti1.hdr")).code == 0


def test_nifti2_eol_check_reported():
    import nibabel

    path = nibabel_data("example_nifti2.nii.gz")
    assert header_json(path)["eol_check"] == list(nibabel.load(path).header["eol_check"])


def test_nifti_text_decodes_codes_and_extensions():
    r = run("header", nibabel_data("example4d.nii.gz"))
    assert r.code == 0, r.err
    lines = {l.split()[0]: l for l in r.out.splitlines() if l.strip() and not l.startswith(" ")}
    assert "(int16)" in lines["datatype"]
    assert "(scanner)" in lines["qform_code"]
    assert "space=mm" in lines["xyzt_units"] and "time=sec" in lines["xyzt_units"]
    assert "datatype_name" not in lines
    assert "extcomment1" in r.out and "extlongcomment2" in r.out
    r = run("header", nibabel_data("example4d.nii.gz"), "--get", "pixdim", "--get", "descrip",
            "--get", "extensions[1].content", "--get", "DIM")
    import nibabel

    h = nibabel.load(nibabel_data("example4d.nii.gz")).header
    pix, descrip, ext, dim = r.out.rstrip("\n").split("\t")
    assert np.allclose([float(v) for v in pix.split()], h["pixdim"])
    assert descrip == h["descrip"].item().decode().split("\x00")[0]
    assert ext == "extlongcomment2"
    assert [int(v) for v in dim.split()] == list(h["dim"])


# -- other backends: rendered generically -------------------------------------------------
@pytest.mark.parametrize("name", ["test.mgz", "minc2_1_scale.mnc", "minc1_1_scale.mnc"])
def test_other_formats_json_is_backend_header(name):
    from medconv import formats
    from medconv.values import jsonable

    path = nibabel_data(name)
    fmt = formats.detect(path)
    expected = jsonable(formats.backend(fmt).read_header(path, fmt))
    assert header_json(path) == expected
    r = run("header", path)
    assert r.code == 0, r.err
    for key in expected:
        assert any(l.startswith(key) for l in r.out.splitlines()), key


def test_png_header(tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(path)
    doc = header_json(path)
    assert isinstance(doc, dict) and doc
    r = run("header", path)
    assert r.code == 0, r.err


# -- series directories -------------------------------------------------------------------
@pytest.fixture
def series_dir(tmp_path):
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    folder = tmp_path / "series"
    folder.mkdir()
    z0 = float(ds.ImagePositionPatient[2])
    for i in range(3):
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 + 5 * i]
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.9999.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"f{2 - i}.dcm")  # names in reverse order of position
    return folder


def test_series_directory_shows_first_file(series_dir):
    r = run("header", series_dir, "--get", "InstanceNumber", "--get", "PatientID")
    assert r.code == 0, r.err
    first = r.out.split("\t")[0]
    assert first in {"1", "3"}  # the first frame of the assembled series (one end of the stack)
    r = run("header", series_dir)
    assert r.code == 0 and "(0010,0020) LO PatientID" in r.out


def test_series_all_lists_differences(series_dir):
    r = run("header", series_dir, "--all")
    assert r.code == 0, r.err
    names = {l.split()[1] for l in r.out.splitlines()[2:]}
    assert {"InstanceNumber", "ImagePositionPatient", "SOPInstanceUID", "MediaStorageSOPInstanceUID"} <= names
    assert "PatientID" not in names and "PixelData" not in names
    doc = json.loads(run("header", series_dir, "--all", "--json").out)
    rows = {d["name"]: d for d in doc["differences"]}
    assert doc["files"] == 3
    assert rows["InstanceNumber"]["distinct"] == 3
    assert sorted(rows["InstanceNumber"]["values"]) == ["1", "2", "3"]


def test_all_refuses_non_dicom():
    assert_clean_error(run("header", nibabel_data("example4d.nii.gz"), "--all"), 2, "DICOM")


# -- bad inputs ---------------------------------------------------------------------------
def test_bad_inputs(tmp_path):
    assert_clean_error(run("header", tmp_path / "missing.dcm"), 3, "no such file")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not an image" * 10)
    assert_clean_error(run("header", junk), 3)
    src = Path(dicom_file("CT_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src[:900])
    r = run("header", cut)
    assert r.code in (0, 3), r.err  # a header cut mid-element is an input error, never a traceback
    if r.code:
        assert_clean_error(r, 3)
    assert_clean_error(run("header"), 2, "no input")
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    assert_clean_error(run("header", empty), 3, "empty")
    assert sorted(os.listdir(tmp_path)) == ["cut.dcm", "empty.nii", "junk.bin"]


def test_truncated_pixel_data_is_reported(tmp_path):
    src = Path(dicom_file("CT_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src[:-1000])
    r = run("header", cut, "--get", "PatientID")
    assert r.code == 0 and r.out.strip() == pydicom.dcmread(dicom_file("CT_small.dcm")).PatientID
    tell = pydicom.dcmread(dicom_file("CT_small.dcm"), defer_size=4096).get_item(0x7FE00010, keep_deferred=True).value_tell
    assert f"(7FE0,0010) is truncated: {len(src) - 1000 - tell} of 32768 bytes present" in r.err


def test_deflated_dicom_reads_whole():
    path = dicom_file("image_dfl.dcm")
    r = run("header", path)
    assert r.code == 0 and r.err == "", r.err
    assert f"<{len(pydicom.dcmread(path).PixelData)} bytes" in r.out


def test_gzipped_dicom_and_several_inputs(tmp_path):
    import gzip

    path = dicom_file("CT_small.dcm")
    gz = tmp_path / "ct.dcm.gz"
    gz.write_bytes(gzip.compress(Path(path).read_bytes()))
    r = run("header", gz, dicom_file("MR_small.dcm"), "--get", "Modality", "--get", "0028,0010")
    assert r.code == 0, r.err
    mr = pydicom.dcmread(dicom_file("MR_small.dcm"))
    ct = pydicom.dcmread(path)
    assert r.out.splitlines() == [f"CT\t{ct.Rows}", f"MR\t{mr.Rows}"]
    docs = json.loads(run("header", gz, nibabel_data("example4d.nii.gz"), "--json").out)
    assert docs[0]["00080060"]["Value"] == ["CT"] and docs[1]["descrip"] == "FSL3.3"


def test_series_selection(tmp_path, series_dir):
    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    (series_dir / "mr.dcm").write_bytes(Path(dicom_file("MR_small.dcm")).read_bytes())
    r = run("header", series_dir)
    assert_clean_error(r, 2, "--series")
    r = run("header", series_dir, "--series", ds.SeriesInstanceUID, "--get", "Modality")
    assert r.code == 0 and r.out.strip() == "MR"


def test_header_does_not_import_pydicom_for_nifti():
    code = ("import sys; from medconv.cli import main\n"
            "try:\n    main(['header', sys.argv[1], '--get', 'descrip'])\nexcept SystemExit: pass\n"
            "assert 'pydicom' not in sys.modules and 'SimpleITK' not in sys.modules, 'heavy import'\n")
    proc = subprocess.run([sys.executable, "-c", code, nibabel_data("example4d.nii.gz")], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FSL3.3"
