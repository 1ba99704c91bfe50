"""DICOM reading against real files (pydicom-data, nibabel, dcm_qa_ts) and dcm2niix's output."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import pydicom_sample, run

nib = pytest.importorskip("nibabel")
DCM2NIIX = os.path.join(os.path.dirname(sys.executable), "dcm2niix")


def sample(name):
    """A file shipped with pydicom itself or with the pydicom-data package."""
    return pydicom_sample(name)


def nicom_data(name):
    return os.path.join(os.path.dirname(nib.__file__), "nicom", "tests", "data", name)


def medconv_nii(src, tmp_path, name="mine.nii"):
    out = tmp_path / name
    r = run("convert", src, out)
    assert r.code == 0, r.err
    return nib.load(out)


def dcm2niix_nii(src, tmp_path):
    """dcm2niix's NIfTI of one file (copied alone into a folder)."""
    if not os.path.exists(DCM2NIIX):
        pytest.skip("dcm2niix not installed")
    folder, out = tmp_path / "in", tmp_path / "ref"
    folder.mkdir()
    out.mkdir()
    shutil.copy(src, folder)
    subprocess.run([DCM2NIIX, "-o", str(out), "-f", "ref", "-z", "n", str(folder)], check=True, capture_output=True)
    made = sorted(out.glob("ref*.nii"))  # dcm2niix adds suffixes such as _real
    assert made, "dcm2niix wrote nothing"
    return nib.load(made[0])


def assert_same(a, b, atol_affine=1e-3):
    a, b = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
    assert a.shape == b.shape
    assert np.allclose(a.affine, b.affine, atol=atol_affine), (a.affine, b.affine)
    assert np.array_equal(a.get_fdata(), b.get_fdata())


@pytest.mark.parametrize("n", range(1, 10))
def test_dcm_qa_ts_matches_dcm2niix_reference(dcm_qa_ts, tmp_path, n):
    """Nine transfer syntaxes of one Siemens mosaic, against dcm2niix's reference NIfTI."""
    src = os.path.join(dcm_qa_ts, "In", f"{n}.dcm")
    assert_same(medconv_nii(src, tmp_path), nib.load(os.path.join(dcm_qa_ts, "Ref", f"{n}.nii")))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "eCT_Supplemental.dcm", "693_J2KR.dcm"])
def test_against_dcm2niix(tmp_path, name):
    src = sample(name)
    assert_same(medconv_nii(src, tmp_path), dcm2niix_nii(src, tmp_path))


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_jp2klossless.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_transfer_syntax_variants_equal_mr_small(name):
    import medconv

    ref = medconv.read(sample("MR_small.dcm"))
    vol = medconv.read(sample(name))
    assert np.allclose(vol.affine, ref.affine, atol=1e-6)
    assert vol.array.dtype.isnative
    assert np.array_equal(vol.real(), ref.real())


@pytest.mark.parametrize("name", ["emri_small_RLE.dcm", "emri_small_big_endian.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"])
def test_multiframe_variants_equal_emri_small(name):
    import medconv

    ref = medconv.read(sample("emri_small.dcm"))
    vol = medconv.read(sample(name))
    assert vol.shape == ref.shape == (64, 64, 10)
    assert np.array_equal(vol.array, ref.array)


def test_multiframe_values_match_dcm2niix(tmp_path):
    """emri_small has no geometry: both tools keep the stored voxel order."""
    import medconv

    src = sample("emri_small.dcm")
    vol = medconv.read(src)
    assert vol.orientation_known is False
    ref = np.asanyarray(dcm2niix_nii(src, tmp_path).dataobj)
    assert np.array_equal(vol.array, ref)


def test_enhanced_ct_functional_groups():
    import medconv

    vol = medconv.read(sample("eCT_Supplemental.dcm"))
    assert vol.shape == (512, 512, 2) and vol.metadata["modality"] == "CT"
    assert vol.orientation_known


def test_colour_and_palette():
    import medconv

    rgb = medconv.read(sample("SC_rgb.dcm"))
    assert rgb.value_kind == "rgb" and rgb.shape == (100, 100, 1, 3)
    ybr = medconv.read(sample("SC_ybr_full_uncompressed.dcm"))
    assert ybr.value_kind == "rgb"
    assert np.abs(ybr.array.astype(int) - rgb.array.astype(int)).max() <= 8  # same picture; YBR -> RGB rounds
    pal = medconv.read(sample("OT-PAL-8-face.dcm"))
    assert pal.value_kind == "rgb" and pal.shape[-1] == 3
    assert pal.metadata["photometric"] == "PALETTE COLOR"


def test_big_endian_palette_is_the_same_picture_as_its_little_endian_twin():
    import medconv

    le = medconv.read(sample("OBXXXX1A.dcm")).array
    be = medconv.read(sample("OBXXXX1A_expb.dcm")).array
    assert le.max() > 0 and np.array_equal(le, be)


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OT-PAL-8-face.dcm"])
def test_palette_colour_is_rgb24_equal_to_pydicom_and_exports(tmp_path, name):
    """Palette images (16-bit LUT entries too) become 8-bit RGB: the LUT's high byte, as shown on
    screen, equal to pydicom's apply_color_lut; PNG and NIfTI both take them."""
    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_color_lut

    import medconv

    src = sample(name)
    ds = pydicom.dcmread(src, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # a file without meta: implicit VR little endian
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ref = apply_color_lut(ds.pixel_array, ds)
    ref8 = (ref >> 8).astype(np.uint8) if ref.dtype.itemsize > 1 else ref
    vol = medconv.read(src)
    assert vol.array.dtype == np.uint8
    assert np.array_equal(vol.array[:, :, 0, :], ref8.transpose(1, 0, 2))
    assert run("convert", src, tmp_path / "p.png").code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), ref8)
    assert run("convert", src, tmp_path / "p.nii").code == 0


def test_nibabel_mosaic_geometry_matches_dcm2niix(tmp_path):
    src = nicom_data("0.dcm")
    a = nib.as_closest_canonical(medconv_nii(src, tmp_path))
    b = nib.as_closest_canonical(dcm2niix_nii(src, tmp_path))
    assert a.shape == b.shape == (36, 36, 48)
    assert np.allclose(a.affine, b.affine, atol=1e-3)


def test_mosaic_sidecar_slice_timing_matches_dcm2niix(tmp_path):
    """SliceTiming of a mosaic comes from the CSA header (MosaicRefAcqTimes), as dcm2niix reads it;
    the vendor name is normalised as dcm2niix does."""
    import gzip
    import json

    if not os.path.exists(DCM2NIIX):
        pytest.skip("dcm2niix not installed")
    src = tmp_path / "in" / "dwi.dcm"
    src.parent.mkdir()
    src.write_bytes(gzip.decompress(open(nicom_data("siemens_dwi_1000.dcm.gz"), "rb").read()))
    r = run("convert", src, tmp_path / "mine.nii", "--sidecar")
    assert r.code == 0, r.err
    mine = json.loads((tmp_path / "mine.json").read_text())
    (tmp_path / "ref").mkdir()
    subprocess.run([DCM2NIIX, "-o", str(tmp_path / "ref"), "-f", "ref", "-z", "n", str(src.parent)], check=True,
                   capture_output=True)
    ref = json.loads((tmp_path / "ref" / "ref.json").read_text())
    assert len(mine["SliceTiming"]) == 48
    assert np.allclose(mine["SliceTiming"], ref["SliceTiming"], atol=1e-3)
    assert mine["Manufacturer"] == ref["Manufacturer"]


def test_nibabel_gzipped_dwi_pair_is_4d(tmp_path):
    import medconv

    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        shutil.copy(nicom_data(name), tmp_path)
    vol = medconv.read(tmp_path)
    assert vol.shape == (128, 128, 48, 2)
    assert medconv.read(nicom_data("decimal_rescale.dcm")).scaling is not None


def test_decimal_rescale_matches_dcm2niix(tmp_path):
    src = nicom_data("decimal_rescale.dcm")
    assert_same(medconv_nii(src, tmp_path), dcm2niix_nii(src, tmp_path))


def test_info_never_decodes_pixels(monkeypatch):
    from medconv.dicom import info_records, pixels

    def boom(*a, **k):
        raise AssertionError("pixels decoded for info")

    monkeypatch.setattr(pixels, "load", boom)
    rec = info_records(sample("MR_small_jp2klossless.dcm"))[0]
    assert rec["shape"] == [64, 64, 1] and rec["transfer_syntax"] == "1.2.840.10008.1.2.4.90"


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_rle.dcm", "rtdose_expb.dcm"])
def test_rt_dose_frames_follow_grid_offsets(name):
    """Legacy multi-frame: frames placed by GridFrameOffsetVector, values scaled by DoseGridScaling."""
    import pydicom

    import medconv

    path = sample(name)
    ds = pydicom.dcmread(path)
    vol = medconv.read(path)
    assert vol.shape == (10, 10, 15)
    assert np.allclose(vol.affine[:3, 2], [0, 0, 5.0])
    assert np.allclose(vol.affine[:3, 3], [-189.43125, -199.43125, -761.87])
    assert np.array_equal(vol.array, ds.pixel_array.transpose(2, 1, 0))
    assert vol.scaling == (float(ds.DoseGridScaling), 0.0)


def test_bits_stored_below_allocated(tmp_path):
    """12-bit signed values with junk in the unused high bits: sign-extended, junk dropped."""
    import dcmgen
    import medconv

    values = np.array([[-2048, -1, 0, 2047], [5, -5, 100, -100]], dtype=np.int16)
    junk = (values.astype(np.uint16) & 0x0FFF) | 0xA000  # garbage above bit 11
    path = dcmgen.write_slice(str(tmp_path / "x.dcm"), junk.view(np.int16), ipp=(0, 0, 0),
                              extra={"BitsStored": 12, "HighBit": 11})
    vol = medconv.read(path)
    assert np.array_equal(vol.array[:, :, 0], values.T)
    path = dcmgen.write_slice(str(tmp_path / "u.dcm"), junk.view(np.int16), ipp=(0, 0, 0), signed=False,
                              extra={"BitsStored": 12, "HighBit": 11})
    assert np.array_equal(medconv.read(path).array[:, :, 0], (junk & 0x0FFF).T)


def test_modality_lut_sequence_gives_the_real_values(tmp_path):
    """A Modality LUT Sequence (instead of RescaleSlope/Intercept) maps stored to real values before
    anything else (a VOI window only chooses the display): NIfTI and stats hold pydicom's
    apply_modality_lut output."""
    import json

    import pydicom
    from pydicom.pixels import apply_modality_lut

    src = sample("mlut_18.dcm")
    ds = pydicom.dcmread(src)
    ref = apply_modality_lut(ds.pixel_array, ds)
    img = medconv_nii(src, tmp_path)
    assert np.array_equal(np.asarray(img.dataobj)[:, :, 0], ref.T)
    r = run("stats", src, "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert got["min"] == float(ref.min()) and got["max"] == float(ref.max())
    assert got["mean"] == pytest.approx(float(ref.mean()), rel=1e-9)


def test_a_file_no_plugin_decodes_says_why_in_one_line(tmp_path):
    """pydicom puts each plugin's reason on its own line after a line ending in ':'; the one-line
    error keeps those reasons."""
    r = run("convert", sample("JPEG-lossy.dcm"), tmp_path / "q.nii")
    assert r.code == 3 and len(r.err.strip().splitlines()) == 1
    assert "plugins: " in r.err and not r.err.strip().endswith("plugins:)")
    assert not (tmp_path / "q.nii").exists()


def test_number_of_frames_that_is_not_a_number_is_said():
    """badVR.dcm declares NumberOfFrames '1A': read as one frame, with a warning (not silently)."""
    r = run("info", sample("badVR.dcm"), "--get", "shape")
    assert r.code == 0 and "NumberOfFrames '1A' is not a number" in r.err
