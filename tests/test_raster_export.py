"""DICOM -> 2D raster exports: the VOI window on real (rescaled) values, MONOCHROME1 inverted after
windowing, 8-bit output; --window C,W; --dtype uint16 keeps the values; one file per slice."""
import os

import numpy as np
import pytest

from dcmgen import new_dataset
from helpers import assert_clean_error, pydicom_data, run
from medconv.convert import window
from medconv.volume import Volume


def _dicom(path, stored, *, photometric="MONOCHROME2", center=None, width=None, slope=None, intercept=None,
           modality="CT", ipp=(-10.0, 20.0, 5.0), instance=1, series_uid=None):
    """One single-frame axial image; `stored` is indexed [row, column] (int16 signed, uint16 otherwise)."""
    from pydicom.uid import generate_uid

    stored = np.asarray(stored)
    ds = new_dataset("1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.7")
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = 2
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [str(v) for v in ipp]
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.SliceThickness = "2"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    signed = stored.dtype.kind == "i"
    ds.PixelRepresentation = 1 if signed else 0
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    if slope is not None or intercept is not None:
        ds.RescaleSlope = str(1 if slope is None else slope)
        ds.RescaleIntercept = str(0 if intercept is None else intercept)
    ds.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)


def _png(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def _dicom_window(real, center, width):
    """The linear VOI function of PS3.3 C.11.2.1.2.1 onto 0..255."""
    real = np.asarray(real, dtype=np.float64)
    y = ((real - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    y = np.where(real <= center - 0.5 - (width - 1) / 2, 0.0, y)
    y = np.where(real > center - 0.5 + (width - 1) / 2, 255.0, y)
    return np.clip(y, 0, 255)


def _ramp(rows=6, cols=8, lo=-1200, hi=1500, dtype=np.int16):
    return np.linspace(lo, hi, rows * cols).round().astype(dtype).reshape(rows, cols)


# -- the file's VOI window ------------------------------------------------------------------------
def test_file_window_on_rescaled_values_gives_8_bit(tmp_path):
    stored = _ramp(lo=0, hi=2600, dtype=np.uint16)  # stored values; real = stored - 1024 (HU)
    src = _dicom(tmp_path / "ct.dcm", stored, center="40", width="400", slope=1, intercept=-1024)
    res = run("convert", src, tmp_path / "ct.png")
    assert res.code == 0, res.err
    png = _png(tmp_path / "ct.png")
    assert png.dtype == np.uint8 and png.shape == stored.shape  # rows, columns as in the DICOM
    real = stored.astype(float) - 1024
    expected = _dicom_window(real, 40, 400)
    assert np.abs(png.astype(float) - expected).max() <= 1.0  # within one grey level of DICOM's rule
    # the window is applied to real values (HU), not to the stored ones
    assert (png[real <= -160] == 0).all() and (png[real >= 240] == 255).all()
    inside = (real > -150) & (real < 230)
    assert inside.any() and ((png[inside] > 0) & (png[inside] < 255)).all()
    assert (np.diff(png.astype(int).ravel()) >= 0).all()  # a monotone ramp stays monotone


def test_first_of_several_file_windows_is_used(tmp_path):
    stored = _ramp()
    src = _dicom(tmp_path / "w.dcm", stored, center=["300", "40"], width=["1500", "400"])
    assert run("convert", src, tmp_path / "w.png").code == 0
    png = _png(tmp_path / "w.png").astype(float)
    assert np.abs(png - _dicom_window(stored, 300, 1500)).max() <= 1.0


def test_narrow_window_follows_dicoms_linear_rule_exactly(tmp_path):
    stored = np.arange(48, dtype=np.int16).reshape(6, 8)
    src = _dicom(tmp_path / "n.dcm", stored, center="20", width="10")
    assert run("convert", src, tmp_path / "n.png").code == 0
    png = _png(tmp_path / "n.png").astype(float)
    assert np.abs(png - _dicom_window(stored, 20, 10)).max() <= 1.0


def test_monochrome1_is_inverted_after_windowing(tmp_path):
    stored = _ramp(lo=0, hi=2600, dtype=np.uint16)
    mono2 = _dicom(tmp_path / "m2.dcm", stored, center="40", width="400", intercept=-1024)
    mono1 = _dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", center="40", width="400",
                   intercept=-1024)
    assert run("convert", mono2, tmp_path / "m2.png").code == 0
    assert run("convert", mono1, tmp_path / "m1.png").code == 0
    a, b = _png(tmp_path / "m2.png").astype(int), _png(tmp_path / "m1.png").astype(int)
    np.testing.assert_array_equal(b, 255 - a)
    real = stored.astype(float) - 1024
    # inverted after the window: values below the window are white, above it black
    assert (b[real <= -160] == 255).all() and (b[real >= 240] == 0).all()


def test_no_file_window_uses_robust_percentiles(tmp_path):
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 1000, size=(20, 25)).astype(np.int16)
    stored[0, 0], stored[0, 1] = 30000, -30000  # outliers must not squash the picture
    src = _dicom(tmp_path / "p.dcm", stored)
    assert run("convert", src, tmp_path / "p.png").code == 0
    png = _png(tmp_path / "p.png")
    assert png.dtype == np.uint8
    lo, hi = np.percentile(stored, [0.5, 99.5])
    expected = np.clip((stored - lo) / (hi - lo) * 255.0, 0, 255)
    assert np.abs(png - expected).max() <= 1.0
    assert png[0, 0] == 255 and png[0, 1] == 0
    body = png[stored < 1000]
    assert body.min() <= 5 and body.max() >= 250  # the real range uses (almost) all grey levels


def test_explicit_window_overrides_the_file(tmp_path):
    stored = _ramp()
    src = _dicom(tmp_path / "e.dcm", stored, center="40", width="400")
    assert run("convert", src, tmp_path / "e.png", "--window", "500,1000").code == 0
    png = _png(tmp_path / "e.png").astype(float)
    assert np.abs(png - _dicom_window(stored, 500, 1000)).max() <= 1.0
    assert (png[stored <= 0] == 0).all() and (png[stored >= 1000] == 255).all()


def test_dtype_uint16_keeps_values_without_windowing(tmp_path):
    stored = _ramp(lo=0, hi=4000, dtype=np.uint16)
    src = _dicom(tmp_path / "u.dcm", stored, center="40", width="400", photometric="MONOCHROME1",
                 modality="OT")
    res = run("convert", src, tmp_path / "u.png", "--dtype", "uint16")
    assert res.code == 0, res.err
    png = _png(tmp_path / "u.png")
    assert png.dtype == np.uint16
    np.testing.assert_array_equal(png, stored)  # no window, no inversion: the values themselves


def test_dtype_uint16_stores_real_values(tmp_path):
    stored = _ramp(lo=0, hi=3000, dtype=np.uint16)
    src = _dicom(tmp_path / "r.dcm", stored, slope=2, intercept=100)
    assert run("convert", src, tmp_path / "r.png", "--dtype", "uint16").code == 0
    np.testing.assert_array_equal(_png(tmp_path / "r.png"), stored.astype(np.int64) * 2 + 100)


def test_dtype_uint16_writes_stored_values_when_real_ones_do_not_fit(tmp_path):
    """A CT in Hounsfield units goes below 0: --dtype uint16 keeps the raw (stored) values and says so."""
    stored = _ramp(lo=0, hi=2000, dtype=np.uint16)
    src = _dicom(tmp_path / "neg.dcm", stored, intercept=-1024)
    res = run("convert", src, tmp_path / "neg.png", "--dtype", "uint16")
    assert res.code == 0, res.err
    assert "stored values are written" in res.err and "-1024" in res.err
    np.testing.assert_array_equal(_png(tmp_path / "neg.png"), stored)


def test_dtype_uint16_refuses_values_no_form_of_which_fits(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.full((4, 4, 1), -5, np.int16), np.eye(4)), tmp_path / "neg.nii")
    res = run("convert", tmp_path / "neg.nii", tmp_path / "neg.png", "--dtype", "uint16")
    assert_clean_error(res, 4, "uint16", "--window")
    assert str(tmp_path / "neg.png") in res.err  # the output is what cannot hold them
    assert not (tmp_path / "neg.png").exists()


def test_small_integer_values_are_kept_not_stretched(tmp_path):
    """An int16 label map or small-range image whose values fit 8 bits is written as those values."""
    import nibabel as nib

    labels = np.zeros((6, 5, 1), np.int16)
    labels[1:3, 1:4, 0] = 7
    labels[4, :, 0] = 98
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "lab.nii")
    res = run("convert", tmp_path / "lab.nii", tmp_path / "lab.png")
    assert res.code == 0 and "windowed" not in res.err
    assert sorted(np.unique(_png(tmp_path / "lab.png"))) == [0, 7, 98]


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_rasters_agree(tmp_path, ext):
    stored = _ramp()
    src = _dicom(tmp_path / "x.dcm", stored, center="100", width="800")
    assert run("convert", src, tmp_path / f"x{ext}").code == 0
    from PIL import Image

    with Image.open(tmp_path / f"x{ext}") as im:
        got = np.asarray(im.convert("L"))
    assert np.abs(got.astype(float) - _dicom_window(stored, 100, 800)).max() <= 1.0


def test_jpeg_is_close(tmp_path):
    stored = _ramp()
    src = _dicom(tmp_path / "j.dcm", stored, center="100", width="800")
    assert run("convert", src, tmp_path / "j.jpg").code == 0
    from PIL import Image

    with Image.open(tmp_path / "j.jpg") as im:
        got = np.asarray(im.convert("L")).astype(float)
    assert np.abs(got - _dicom_window(stored, 100, 800)).mean() < 8


# -- series -> one file per slice -----------------------------------------------------------------
def _series(tmp_path, n=3):
    from pydicom.uid import generate_uid

    d = tmp_path / "series"
    d.mkdir()
    uid = generate_uid()
    slices = []
    for k in range(n):
        stored = (_ramp(lo=-500, hi=500) + 100 * k).astype(np.int16)
        # instance numbers against the position order: the slice index must follow the position
        _dicom(d / f"im{k}.dcm", stored, center="0", width="2000", ipp=(-10.0, 20.0, 5.0 + 2.0 * k),
               instance=n - k, series_uid=uid)
        slices.append(stored)
    return d, slices


def test_series_to_one_png_per_slice(tmp_path):
    d, slices = _series(tmp_path)
    out = tmp_path / "png"
    res = run("convert", d, str(out) + "/", "--to", "png")
    assert res.code == 0, res.err
    names = sorted(os.listdir(out))
    assert names == ["series_000.png", "series_001.png", "series_002.png"]
    for k, name in enumerate(names):
        got = _png(out / name).astype(float)
        assert np.abs(got - _dicom_window(slices[k], 0, 2000)).max() <= 1.0


def test_series_slice_option(tmp_path):
    d, slices = _series(tmp_path)
    assert run("convert", d, tmp_path / "one.png", "--slice", "2").code == 0
    got = _png(tmp_path / "one.png").astype(float)
    assert np.abs(got - _dicom_window(slices[2], 0, 2000)).max() <= 1.0


# -- bad requests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["wide", "40", "40,0", "40,-10", "a,b"])
def test_bad_window_is_a_usage_error(tmp_path, spec):
    src = _dicom(tmp_path / "b.dcm", _ramp())
    res = run("convert", src, tmp_path / "b.png", "--window", spec)
    assert_clean_error(res, 2, "window")
    assert not (tmp_path / "b.png").exists()


def test_series_to_a_single_png_without_slice_is_a_usage_error(tmp_path):
    d, _ = _series(tmp_path)
    res = run("convert", d, tmp_path / "x.png")
    assert_clean_error(res, 2, "--slice")
    assert not (tmp_path / "x.png").exists()


def test_slice_out_of_range(tmp_path):
    d, _ = _series(tmp_path)
    res = run("convert", d, tmp_path / "x.png", "--slice", "7")
    assert_clean_error(res, 2, "slice")
    assert not (tmp_path / "x.png").exists()


def test_existing_png_is_refused_without_force(tmp_path):
    src = _dicom(tmp_path / "f.dcm", _ramp())
    (tmp_path / "f.png").write_bytes(b"mine")
    res = run("convert", src, tmp_path / "f.png")
    assert_clean_error(res, 4, "exists")
    assert (tmp_path / "f.png").read_bytes() == b"mine"


# -- window() itself ------------------------------------------------------------------------------
def test_window_function_on_volumes():
    real = np.linspace(-1000, 1000, 40).reshape(5, 8)
    vol = Volume(data=real.astype(np.float32), metadata={"window_center": 0.0, "window_width": 1000.0})
    out = window(vol, "auto")
    assert out.dtype == np.uint8 and out.scaling is None
    assert (out.array[real <= -500] == 0).all() and (out.array[real >= 500] == 255).all()
    inverted = window(vol.replace(metadata={**vol.metadata, "photometric": "MONOCHROME1"}), "auto")
    np.testing.assert_array_equal(inverted.array.astype(int), 255 - out.array.astype(int))
    scaled = Volume(data=np.arange(40, dtype=np.int16).reshape(5, 8), scaling=(10.0, -200.0),
                    metadata={"window_center": 0.0, "window_width": 100.0})
    got = window(scaled, "auto").array
    real_scaled = np.arange(40).reshape(5, 8) * 10.0 - 200
    assert (got[real_scaled <= -50] == 0).all() and (got[real_scaled >= 50] == 255).all()


def test_window_ignores_nan_and_constant_images():
    data = np.full((4, 4), 7.0, dtype=np.float32)
    data[0, 0] = np.nan
    out = window(Volume(data=data), "auto").array
    assert out.dtype == np.uint8 and out[0, 0] == 0
    assert len(set(out.ravel()[1:].tolist())) == 1


def test_window_refuses_complex():
    from medconv.errors import UsageError

    vol = Volume(data=np.ones((2, 2), np.complex64), value_kind="complex")
    with pytest.raises(UsageError):
        window(vol, "auto")


# -- real files (pydicom-data) ----------------------------------------------------------------------
def test_real_ct_without_window_uses_percentiles_of_hounsfield_units(tmp_path):
    import pydicom
    from pydicom.pixels import apply_modality_lut

    src = pydicom_data("CT_small.dcm")
    ds = pydicom.dcmread(src)
    hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    res = run("convert", src, tmp_path / "ct.png")
    assert res.code == 0, res.err
    png = _png(tmp_path / "ct.png").astype(float)
    assert png.shape == hu.shape
    lo, hi = np.percentile(hu, [0.5, 99.5])
    assert np.abs(png - np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255)).max() <= 1.0


def test_real_monochrome1_radiograph_is_windowed_then_inverted(tmp_path):
    import pydicom

    src = pydicom_data("RG3_UNCR.dcm")  # CR, MONOCHROME1, VOI 550/1024
    ds = pydicom.dcmread(src)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    res = run("convert", src, tmp_path / "cr.png")
    assert res.code == 0, res.err
    png = _png(tmp_path / "cr.png").astype(float)
    expected = 255.0 - _dicom_window(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth))
    assert png.shape == expected.shape
    assert np.abs(png - expected).max() <= 1.0
