"""Writing DICOM series: storage classes, required attributes, geometry and values read back by
medconv, pydicom, SimpleITK and dcm2niix; the directory written as a whole; clean refusals."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, make_volume, oblique_affine, pydicom_data, run
from medconv.geometry import FLIP_XY, world_distance
from medconv.volume import Volume

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
SC = "1.2.840.10008.5.1.4.1.1.7"
DCM2NIIX = os.path.join(os.path.dirname(sys.executable), "dcm2niix")


def _files(d):
    return sorted(glob.glob(os.path.join(str(d), "*.dcm")))


def _datasets(d):
    import pydicom

    return [pydicom.dcmread(p) for p in _files(d)]


def _vol(shape=(7, 6, 5), dtype="int16", modality=None, **kw):
    vol = make_volume(shape=shape, dtype=dtype, **kw)
    if modality:
        vol.metadata["modality"] = modality
    return vol


def _same_world_and_values(a, b, tol=1e-4, atol=0.0):
    """b (read back) holds a's values at a's world positions (b may sort slices the other way)."""
    assert b.grid_shape[:2] == a.grid_shape[:2]
    av, bv = np.asarray(a.real(), dtype=np.float64), np.asarray(b.real(), dtype=np.float64)
    if a.ndim == 2:
        av = av[:, :, None]
    shape3 = av.shape[:3]
    if world_distance(a.affine, b.affine, shape3) > tol:
        # the reader orders slices along the normal: try the reversed slice axis
        flipped = b.affine.copy()
        flipped[:3, 3] += flipped[:3, 2] * (shape3[2] - 1)
        flipped[:3, 2] *= -1
        assert world_distance(a.affine, flipped, shape3) <= tol, (a.affine, b.affine)
        bv = bv[:, :, ::-1]
    np.testing.assert_allclose(bv.reshape(av.shape), av, rtol=0, atol=atol)


# -- storage classes and required attributes -----------------------------------------------------
TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
         "FrameOfReferenceUID", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
         "BitsStored", "HighBit", "PixelRepresentation", "PixelData", "ImageOrientationPatient",
         "ImagePositionPatient", "PixelSpacing")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "PositionReferenceIndicator",
         "Manufacturer", "InstanceNumber", "SliceThickness")
BY_CLASS = {CT: ("ImageType", "RescaleIntercept", "RescaleSlope", "KVP", "AcquisitionNumber", "PatientPosition"),
            MR: ("ImageType", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
                 "EchoTime", "EchoTrainLength", "RepetitionTime", "PatientPosition"),
            SC: ("ConversionType", "PatientOrientation")}
TYPE1_BY_CLASS = {CT: ("ImageType", "RescaleIntercept", "RescaleSlope"), MR: ("ImageType", "ScanningSequence",
                                                                              "SequenceVariant"),
                  SC: ("ConversionType",)}


@pytest.mark.parametrize("modality,sop", [("CT", CT), ("MR", MR), (None, SC), ("PT", SC)])
def test_storage_class_and_required_attributes(tmp_path, modality, sop):
    vol = _vol(modality=modality)
    out = tmp_path / "series"
    written = medconv.write(vol, str(out) + "/", to="dicom")
    assert [os.path.basename(p) for p in written] == [f"{n:04d}.dcm" for n in range(1, 6)]
    dss = _datasets(out)
    assert len(dss) == 5
    for ds in dss:
        assert ds.SOPClassUID == sop
        assert ds.file_meta.MediaStorageSOPClassUID == sop
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
        for key in TYPE1 + TYPE1_BY_CLASS[sop]:
            assert key in ds and ds[key].value not in (None, "", b""), key
        for key in TYPE2 + BY_CLASS[sop]:
            assert key in ds, key
    assert dss[0].Modality == (modality or "OT")
    # one study, one series, one frame of reference; every instance its own UID
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({str(ds[key].value) for ds in dss}) == 1
    assert len({ds.SOPInstanceUID for ds in dss}) == 5
    assert sorted(int(ds.InstanceNumber) for ds in dss) == [1, 2, 3, 4, 5]


def test_fresh_uids_each_time(tmp_path):
    vol = _vol(modality="CT")
    medconv.write(vol, str(tmp_path / "a") + "/", to="dicom")
    medconv.write(vol, str(tmp_path / "b") + "/", to="dicom")
    a, b = _datasets(tmp_path / "a")[0], _datasets(tmp_path / "b")[0]
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID"):
        assert a[key].value != b[key].value


# -- geometry ------------------------------------------------------------------------------------
def test_pixel_spacing_order_rows_columns_and_positions(tmp_path):
    # i (columns) 0.8 mm, j (rows) 0.9 mm, slices 2.5 mm, oblique
    aff = oblique_affine(spacing=(0.8, 0.9, 2.5))
    vol = make_volume(shape=(7, 6, 4), dtype="int16", affine=aff)
    out = tmp_path / "s"
    medconv.write(vol, str(out), to="dicom")
    dss = sorted(_datasets(out), key=lambda d: int(d.InstanceNumber))
    lps = FLIP_XY @ aff
    for k, ds in enumerate(dss):
        assert (ds.Rows, ds.Columns) == (6, 7)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.9, 0.8], abs=1e-9)  # row, column spacing
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        np.testing.assert_allclose(iop[:3], lps[:3, 0] / 0.8, atol=1e-9)
        np.testing.assert_allclose(iop[3:], lps[:3, 1] / 0.9, atol=1e-9)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        np.testing.assert_allclose(ipp, lps[:3, 3] + k * lps[:3, 2], atol=1e-6)
        assert float(ds.SliceThickness) == pytest.approx(2.5)
        assert float(ds.SpacingBetweenSlices) == pytest.approx(2.5)
        # pixel [row r, column c] is voxel [i=c, j=r, k]
        np.testing.assert_array_equal(ds.pixel_array, vol.array[:, :, k].T)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint8", "int8"])
def test_read_back_exact_values_and_world(tmp_path, dtype):
    vol = _vol(shape=(5, 4, 3), dtype=dtype, seed=3)
    out = tmp_path / "s"
    medconv.write(vol, str(out), to="dicom")
    back = medconv.read(str(out))
    # int8 is stored in 16 bits (signed 8-bit pixels are misread by common tools such as dcm2niix)
    assert back.dtype == np.dtype("int16" if dtype == "int8" else dtype)
    _same_world_and_values(vol, back)


def test_ct_holds_16_bit_pixels_only_so_8_bit_values_widen_exactly(tmp_path):
    vol = _vol(shape=(4, 4, 2), dtype="int8", modality="CT")
    medconv.write(vol, str(tmp_path / "s"), to="dicom")
    ds = _datasets(tmp_path / "s")[0]
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 1
    _same_world_and_values(vol, medconv.read(str(tmp_path / "s")))


def test_reversed_slice_axis_and_lps_volume_keep_world(tmp_path):
    aff = np.diag([-0.7, -0.7, -3.0, 1.0])  # LPI-ish RAS affine: slices run inferior
    aff[:3, 3] = [50.0, 60.0, 20.0]
    vol = make_volume(shape=(6, 5, 4), affine=aff)
    medconv.write(vol, str(tmp_path / "s"), to="dicom")
    _same_world_and_values(vol, medconv.read(str(tmp_path / "s")))


def test_two_d_volume_is_one_file(tmp_path):
    vol = make_volume(shape=(6, 5), dtype="uint16", affine=oblique_affine())
    written = medconv.write(vol, str(tmp_path / "s"), to="dicom")
    assert len(written) == 1
    back = medconv.read(str(tmp_path / "s"))
    assert back.grid_shape[:2] == (6, 5)
    _same_world_and_values(vol, back)


def test_tilted_slice_axis_is_written_as_per_slice_positions(tmp_path):
    """A gantry-tilt-like shear (slice axis not along the normal) is representable: positions carry it."""
    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    aff[1, 2] = 0.5  # each slice shifts 0.5 mm anteriorly
    vol = make_volume(shape=(6, 5, 4), affine=aff)
    res = _write_cli(tmp_path, vol)
    assert res.code == 0, res.err
    assert "tilted" in res.err
    _same_world_and_values(vol, medconv.read(str(tmp_path / "out")))


def test_simpleitk_reads_the_same_geometry_and_values(tmp_path):
    import SimpleITK as sitk

    vol = make_volume(shape=(7, 6, 5), dtype="int16", affine=oblique_affine())
    vol.metadata["modality"] = "MR"
    out = tmp_path / "s"
    medconv.write(vol, str(out), to="dicom")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out)))
    img = reader.Execute()
    arr = sitk.GetArrayFromImage(img)  # [k, j, i]
    direction = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(img.GetSpacing())[None, :]
    lps[:3, 3] = img.GetOrigin()
    ras = FLIP_XY @ lps
    shape = arr.shape[::-1]
    if world_distance(vol.affine, ras, shape) > 1e-4:  # ITK sorted the slices the other way
        arr = arr[::-1]
        ras[:3, 3] += ras[:3, 2] * (shape[2] - 1)
        ras[:3, 2] *= -1
    assert world_distance(vol.affine, ras, shape) <= 1e-4
    np.testing.assert_array_equal(arr.transpose(2, 1, 0), vol.array)


@pytest.mark.skipif(not os.path.exists(DCM2NIIX), reason="dcm2niix not installed")
def test_dcm2niix_reads_the_same_geometry_and_values(tmp_path):
    import nibabel as nib

    vol = make_volume(shape=(8, 7, 5), dtype="int16", affine=oblique_affine(spacing=(0.8, 0.9, 2.5)))
    vol.metadata["modality"] = "CT"
    out = tmp_path / "s"
    medconv.write(vol, str(out), to="dicom")
    nii_dir = tmp_path / "nii"
    nii_dir.mkdir()
    proc = subprocess.run([DCM2NIIX, "-z", "n", "-f", "x", "-o", str(nii_dir), str(out)], capture_output=True, check=False,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    img = nib.load(str(nii_dir / "x.nii"))
    data = np.asarray(img.dataobj)
    back = Volume(data=data, affine=img.affine)
    # dcm2niix may flip rows and/or slices; compare world positions of every voxel value
    _same_world_any_order(vol, back)


def _same_world_any_order(a, b):
    """Every voxel of b lands on a voxel of a (within 1e-4 mm) holding the same value."""
    idx = np.indices(b.grid_shape[:3]).reshape(3, -1).astype(float)
    world = b.affine[:3, :3] @ idx + b.affine[:3, 3:4]
    inv = np.linalg.inv(a.affine)
    ijk = inv[:3, :3] @ world + inv[:3, 3:4]
    near = np.rint(ijk)
    back = a.affine[:3, :3] @ near + a.affine[:3, 3:4]
    assert np.abs(back - world).max() < 1e-4
    picked = a.array[tuple(near.astype(int))]
    np.testing.assert_array_equal(picked, b.array.reshape(-1))


# -- values --------------------------------------------------------------------------------------
def test_scaling_is_kept_as_rescale(tmp_path):
    vol = _vol(shape=(4, 3, 2), dtype="int16", scaling=(2.5, -100.0))
    medconv.write(vol, str(tmp_path / "s"), to="dicom")
    ds = _datasets(tmp_path / "s")[0]
    assert float(ds.RescaleSlope) == 2.5 and float(ds.RescaleIntercept) == -100.0
    back = medconv.read(str(tmp_path / "s"))
    assert back.scaling == (2.5, -100.0)
    _same_world_and_values(vol, back)


def test_ct_without_scaling_still_has_identity_rescale(tmp_path):
    medconv.write(_vol(modality="CT"), str(tmp_path / "s"), to="dicom")
    ds = _datasets(tmp_path / "s")[0]
    assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0


def _write_cli(tmp_path, vol, *extra, name="out"):
    src = tmp_path / "src.nii.gz"
    if not src.exists():
        medconv.write(vol, str(src))
    return run("convert", src, str(tmp_path / name) + "/", "--to", "dicom", *extra)


def test_float_values_are_quantised_within_the_printed_bound(tmp_path):
    rng = np.random.default_rng(7)
    data = (rng.normal(size=(6, 5, 4)) * 300 + 40).astype(np.float32)
    vol = Volume(data=data, affine=oblique_affine())
    res = _write_cli(tmp_path, vol)
    assert res.code == 0, res.err
    m = re.search(r"quantised to uint16 .*max error ([0-9.e+-]+), bound ([0-9.e+-]+)", res.err)
    assert m, res.err
    err, bound = float(m.group(1)), float(m.group(2))
    assert 0 < err <= bound
    back = medconv.read(str(tmp_path / "out"))
    assert back.dtype == np.uint16 and back.scaling is not None
    # the range is used: the stored values span (nearly) all of uint16
    assert back.array.max() >= 65530 and back.array.min() == 0
    _same_world_and_values(vol, back, atol=bound)
    assert bound < (data.max() - data.min()) / 65534 * 0.51 + 1e-3


def test_whole_number_floats_are_stored_exactly(tmp_path):
    data = np.arange(60, dtype=np.float32).reshape(5, 4, 3) * 10 - 200
    res = _write_cli(tmp_path, Volume(data=data, affine=np.eye(4)))
    assert res.code == 0, res.err
    assert "quantised" not in res.err
    back = medconv.read(str(tmp_path / "out"))
    assert back.dtype == np.int16
    _same_world_and_values(Volume(data=data, affine=np.eye(4)), back)


def test_wide_integers_with_a_narrow_range_are_exact_with_an_intercept(tmp_path):
    data = (np.arange(60, dtype=np.int32).reshape(5, 4, 3) * 1000 + 100000)
    vol = Volume(data=data, affine=np.eye(4))
    res = _write_cli(tmp_path, vol)
    assert res.code == 0, res.err
    back = medconv.read(str(tmp_path / "out"))
    assert back.dtype == np.uint16
    _same_world_and_values(vol, back)


def test_integers_beyond_16_bits_are_refused(tmp_path):
    data = np.array([0, 1, 200000], dtype=np.int32).reshape(3, 1, 1).repeat(2, axis=1)
    res = _write_cli(tmp_path, Volume(data=data, affine=np.eye(4)))
    assert_clean_error(res, 4, "16 bits")
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


@pytest.mark.parametrize("modality", ["CT", None])
def test_4d_without_repetition_time_keeps_its_step_through_acquisition_time(tmp_path, modality):
    """CT perfusion and secondary captures carry no TR: the step comes back from AcquisitionTime."""
    vol = make_volume(shape=(5, 4, 3, 3), dtype="int16", affine=oblique_affine(), time_step=2.5)
    if modality:
        vol.metadata["modality"] = modality
    out = tmp_path / "s"
    medconv.write(vol, str(out), to="dicom")
    dss = _datasets(out)
    assert all(ds.get("RepetitionTime") in (None, "") for ds in dss)
    assert len({ds.AcquisitionTime for ds in dss}) == 3
    back = medconv.read(str(out))
    assert back.grid_shape == (5, 4, 3, 3)
    assert back.time_step == pytest.approx(2.5, abs=1e-3)
    _same_world_and_values(vol, back)


def test_acquisition_step_handles_midnight_and_refuses_disorder():
    from medconv.dicom.assemble import _acquisition_step

    assert _acquisition_step([235959.0, 1.0, 3.0]) == pytest.approx(2.0)
    assert _acquisition_step([20261125101500.5, 20261125101503.0]) == pytest.approx(2.5)
    assert _acquisition_step([101500.0, 101500.0]) is None
    assert _acquisition_step([101500.0, None]) is None
    assert _acquisition_step([101500.0]) is None


def test_4d_one_file_per_slice_per_volume(tmp_path):
    vol = make_volume(shape=(5, 4, 3, 2), dtype="int16", affine=oblique_affine(), time_step=2.0)
    vol.metadata["modality"] = "MR"
    out = tmp_path / "s"
    written = medconv.write(vol, str(out), to="dicom")
    assert len(written) == 6
    dss = _datasets(out)
    assert {int(ds.NumberOfTemporalPositions) for ds in dss} == {2}
    assert sorted(int(ds.TemporalPositionIdentifier) for ds in dss) == [1, 1, 1, 2, 2, 2]
    assert {float(ds.RepetitionTime) for ds in dss} == {2000.0}
    back = medconv.read(str(out))
    assert back.grid_shape == (5, 4, 3, 2)
    assert back.time_step == pytest.approx(2.0)
    _same_world_and_values(vol, back)


def test_rgb_is_secondary_capture_rgb(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(5, 4, 2, 3), dtype=np.uint8)
    vol = Volume(data=data, affine=oblique_affine(), value_kind="rgb", metadata={"modality": "CT"})
    medconv.write(vol, str(tmp_path / "s"), to="dicom")
    for ds in _datasets(tmp_path / "s"):
        assert ds.SOPClassUID == SC
        assert ds.SamplesPerPixel == 3 and ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
        assert ds.BitsAllocated == 8
    back = medconv.read(str(tmp_path / "s"))
    assert back.value_kind == "rgb"
    assert back.array.shape == data.shape
    _same_world_and_values(Volume(data=data[..., 0], affine=vol.affine),
                           Volume(data=back.array[..., 0], affine=back.affine))


def test_png_input_becomes_secondary_capture(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, size=(6, 9), dtype=np.uint8)  # rows, columns
    Image.fromarray(grey).save(tmp_path / "g.png")
    res = run("convert", tmp_path / "g.png", str(tmp_path / "out") + "/", "--to", "dicom")
    assert res.code == 0, res.err
    (ds,) = _datasets(tmp_path / "out")
    assert ds.SOPClassUID == SC and ds.Modality == "OT"
    assert (ds.Rows, ds.Columns) == (6, 9)
    np.testing.assert_array_equal(ds.pixel_array, grey)  # the picture is unchanged


def test_non_ascii_description_declares_utf8(tmp_path):
    vol = _vol(shape=(3, 3, 1))
    vol.metadata["series_description"] = "Schädel nativ"
    medconv.write(vol, str(tmp_path / "s"), to="dicom")
    ds = _datasets(tmp_path / "s")[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.SeriesDescription == "Schädel nativ"


# -- template ------------------------------------------------------------------------------------
def test_template_copies_patient_and_study(tmp_path):
    import pydicom

    ref_path = pydicom_data("CT_small.dcm")
    ref = pydicom.dcmread(ref_path)
    vol = _vol(modality="CT")
    src = tmp_path / "v.nii.gz"
    medconv.write(vol, str(src))
    res = run("convert", src, str(tmp_path / "out") + "/", "--to", "dicom", "--template", ref_path)
    assert res.code == 0, res.err
    dss = _datasets(tmp_path / "out")
    for ds in dss:
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
            if key in ref:
                assert ds[key].value == ref[key].value, key
        assert ds.SeriesInstanceUID != ref.SeriesInstanceUID
        assert ds.SOPInstanceUID != ref.SOPInstanceUID
        assert ds.FrameOfReferenceUID != ref.get("FrameOfReferenceUID")
    assert str(dss[0].PatientName) == str(ref.PatientName) and str(ref.PatientName)
    _same_world_and_values(vol, medconv.read(str(tmp_path / "out")))


def test_template_gives_its_modality_to_an_image_without_one(tmp_path):
    """A NIfTI result (no modality) written with an MR template is stored as MR, not as a screenshot."""
    import nibabel as nib

    src = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(5, 4, 3), np.diag([0.8, 0.8, 3, 1])), src)
    res = run("convert", src, str(tmp_path / "out") + "/", "--to", "dicom", "--template", pydicom_data("MR_small.dcm"))
    assert res.code == 0, res.err
    ds = _datasets(tmp_path / "out")[0]
    assert ds.Modality == "MR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    res = run("convert", src, str(tmp_path / "plain") + "/", "--to", "dicom")
    assert _datasets(tmp_path / "plain")[0].Modality == "OT"


def test_template_that_is_not_dicom_is_an_input_error(tmp_path):
    (tmp_path / "ref.dcm").write_bytes(b"not dicom at all" * 20)
    res = _write_cli(tmp_path, _vol(), "--template", tmp_path / "ref.dcm")
    assert_clean_error(res, 3, "template")
    assert not (tmp_path / "out").exists()


def test_template_only_for_dicom_output(tmp_path):
    src = tmp_path / "v.nii.gz"
    medconv.write(_vol(), str(src))
    res = run("convert", src, tmp_path / "o.nii.gz", "--template", pydicom_data("CT_small.dcm"))
    assert_clean_error(res, 2, "template")


# -- the directory as a whole ---------------------------------------------------------------------
def test_existing_non_empty_destination_refused_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = _write_cli(tmp_path, _vol())
    assert_clean_error(res, 4, "exists", "--force")
    assert os.listdir(out) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out", "src.nii.gz"]


def test_force_replaces_a_previous_series(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for n in range(1, 9):  # a longer series written before
        (out / f"{n:04d}.dcm").write_text("old")
    res = _write_cli(tmp_path, _vol(), "--force")
    assert res.code == 0, res.err
    assert sorted(os.listdir(out)) == [f"{n:04d}.dcm" for n in range(1, 6)]
    assert sorted(os.listdir(tmp_path)) == ["out", "src.nii.gz"]


@pytest.mark.parametrize("other", ["notes.txt", "sub/code.py", "stale.dcm"])
def test_force_never_replaces_a_folder_of_other_files(tmp_path, other):
    """--force into a folder (even the current one) that holds anything but a series medconv wrote
    is refused: nothing in it is touched."""
    out = tmp_path / "out"
    (out / other).parent.mkdir(parents=True, exist_ok=True)
    (out / other).write_text("precious")
    res = _write_cli(tmp_path, _vol(), "--force")
    assert_clean_error(res, 4, "other than a DICOM series")
    assert (out / other).read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["out", "src.nii.gz"]


def test_empty_existing_directory_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    res = _write_cli(tmp_path, _vol())
    assert res.code == 0, res.err
    assert len(_files(tmp_path / "out")) == 5


def test_existing_file_destination_refused(tmp_path):
    (tmp_path / "out").write_text("a file")
    res = _write_cli(tmp_path, _vol())
    assert_clean_error(res, 4, "exists")
    assert (tmp_path / "out").read_text() == "a file"


def test_missing_parents_are_created(tmp_path):
    res = run_ok = _write_cli(tmp_path, _vol(), name="a/b/out")
    assert run_ok.code == 0, res.err
    assert len(_files(tmp_path / "a" / "b" / "out")) == 5


def test_unwritable_destination(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    res = _write_cli(tmp_path, _vol(), name="blocker/out")
    assert_clean_error(res, 4)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_parent(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = _write_cli(tmp_path, _vol(), name="ro/out")
        assert_clean_error(res, 4)
    finally:
        ro.chmod(0o755)


def test_failure_midway_leaves_nothing_and_keeps_the_old_directory(tmp_path, monkeypatch):
    import errno

    from pydicom.dataset import Dataset

    out = tmp_path / "out"
    out.mkdir()
    (out / "0001.dcm").write_text("previous result")
    calls = {"n": 0}
    real_save = Dataset.save_as

    def failing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, *a, **kw)

    monkeypatch.setattr(Dataset, "save_as", failing)
    res = _write_cli(tmp_path, _vol(), "--force")
    assert_clean_error(res, 4, "disk full")
    assert os.listdir(out) == ["0001.dcm"] and (out / "0001.dcm").read_text() == "previous result"
    assert sorted(os.listdir(tmp_path)) == ["out", "src.nii.gz"]


def test_dicom_input_directory_is_never_replaced(tmp_path):
    medconv.write(_vol(modality="CT"), str(tmp_path / "series"), to="dicom")
    before = sorted(os.listdir(tmp_path / "series"))
    res = run("convert", tmp_path / "series", str(tmp_path / "series") + "/", "--to", "dicom", "--force")
    assert_clean_error(res, 4, "input")
    assert sorted(os.listdir(tmp_path / "series")) == before


def test_dicom_to_dicom_round_trip(tmp_path):
    vol = _vol(modality="CT", scaling=(1.0, -1024.0))
    medconv.write(vol, str(tmp_path / "a"), to="dicom")
    res = run("convert", tmp_path / "a", str(tmp_path / "b") + "/", "--to", "dicom")
    assert res.code == 0, res.err
    b = medconv.read(str(tmp_path / "b"))
    assert b.metadata["modality"] == "CT"
    assert _datasets(tmp_path / "b")[0].SOPClassUID == CT
    _same_world_and_values(vol, b)


# -- what DICOM cannot hold ----------------------------------------------------------------------
@pytest.mark.parametrize("case,needle", [
    ("complex", "complex"), ("rgba", "alpha"), ("sheared", "sheared"), ("in_plane_slices", "plane"),
    ("nan", "NaN"), ("5d", "5D"),
])
def test_unholdable_volumes_are_clean_output_errors(tmp_path, case, needle):
    aff = np.eye(4)
    data = np.ones((3, 3, 3), dtype=np.int16)
    kind = "scalar"
    if case == "complex":
        data = data * (1 + 1j)
        kind = "complex"
    elif case == "rgba":
        data = np.ones((3, 3, 3, 4), dtype=np.uint8)
        kind = "rgba"
    elif case == "sheared":
        aff[0, 1] = 0.3  # column axis leans towards the row axis
    elif case == "in_plane_slices":
        aff[:3, 2] = [1.0, 1.0, 0.0]
    elif case == "nan":
        data = np.full((3, 3, 3), np.nan, dtype=np.float32)
    elif case == "5d":
        data = np.ones((3, 3, 3, 2, 2), dtype=np.int16)
    vol = Volume(data=data, affine=aff, value_kind=kind)
    src = tmp_path / "src.nii"
    medconv.write(vol, str(src))
    res = run("convert", src, str(tmp_path / "out") + "/", "--to", "dicom")
    assert_clean_error(res, 4, needle)
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["src.nii"]


def test_library_call_raises_output_error(tmp_path):
    vol = Volume(data=np.ones((2, 2, 2), dtype=np.complex64), affine=np.eye(4), value_kind="complex")
    with pytest.raises(medconv.OutputError):
        medconv.write(vol, str(tmp_path / "o"), to="dicom")


# -- validation against the IODs (dciodvfy from dicom3tools, a test dependency) --------------------
DCIODVFY = os.path.join(os.path.dirname(sys.executable), "dciodvfy")


def _iod_cases():
    rng = np.random.default_rng(5)
    floats = (rng.normal(size=(6, 5, 3)) * 100).astype(np.float32)
    return {
        "ct": Volume(data=np.zeros((6, 5, 3), np.int16), affine=oblique_affine(), metadata={"modality": "CT"}),
        "mr": Volume(data=np.zeros((6, 5, 3), np.uint16), affine=oblique_affine(), metadata={"modality": "MR"}),
        "mr_4d": Volume(data=np.zeros((6, 5, 3, 2), np.int16), affine=oblique_affine(), time_step=1.5,
                        metadata={"modality": "MR"}),
        "sc": Volume(data=np.zeros((6, 5, 3), np.int8), affine=oblique_affine()),
        "ct_float": Volume(data=floats, affine=oblique_affine(), metadata={"modality": "CT"}),
        "sc_float": Volume(data=floats, affine=oblique_affine()),
        "rgb": Volume(data=np.zeros((6, 5, 2, 3), np.uint8), affine=oblique_affine(), value_kind="rgb"),
        "ct_window_mono1": Volume(data=np.zeros((6, 5, 3), np.int16), affine=oblique_affine(), metadata={
            "modality": "CT", "window_center": 40.0, "window_width": 400.0, "photometric": "MONOCHROME1",
            "series_description": "Schädel", "protocol": "head"}),
        "mr_from_template": Volume(data=np.zeros((6, 5, 3), np.int16), affine=oblique_affine()),
    }


@pytest.mark.skipif(not os.path.exists(DCIODVFY), reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("case", list(_iod_cases()))
def test_written_files_pass_dciodvfy(tmp_path, case):
    vol = _iod_cases()[case]
    template = {"ct": pydicom_data("CT_small.dcm"), "mr_from_template": pydicom_data("MR_small.dcm")}.get(case)
    written = medconv.write(vol, str(tmp_path / "s"), to="dicom", template=template)
    for path in (written[0], written[-1]):
        proc = subprocess.run([DCIODVFY, path], capture_output=True, text=True, timeout=60, check=False)
        report = proc.stdout + proc.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, report


# -- a destination named like a file ----------------------------------------------------------------
def test_single_image_to_a_dcm_file(tmp_path):
    vol = make_volume(shape=(6, 5, 1), dtype="int16", affine=oblique_affine())
    vol.metadata["modality"] = "CT"
    src = tmp_path / "one.nii.gz"
    medconv.write(vol, str(src))
    res = run("convert", src, tmp_path / "one.dcm")
    assert res.code == 0, res.err
    assert (tmp_path / "one.dcm").is_file()
    _same_world_and_values(vol, medconv.read(str(tmp_path / "one.dcm")))
    again = run("convert", src, tmp_path / "one.dcm")
    assert_clean_error(again, 4, "exists")
    assert run("convert", src, tmp_path / "one.dcm", "--force").code == 0


def test_many_images_to_a_dcm_file_name_is_a_usage_error(tmp_path):
    src = tmp_path / "v.nii.gz"
    medconv.write(_vol(), str(src))
    res = run("convert", src, tmp_path / "v.dcm")
    assert_clean_error(res, 2, "directory")
    assert sorted(os.listdir(tmp_path)) == ["v.nii.gz"]


# -- real files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["anatomical.nii", "functional.nii", "standard.nii.gz"])
def test_real_nifti_files_round_trip_through_dicom(tmp_path, name):
    from helpers import nibabel_data

    src = nibabel_data(name)
    vol = medconv.read(src)
    res = run("convert", src, str(tmp_path / "out") + "/", "--to", "dicom")
    assert res.code == 0, res.err
    back = medconv.read(str(tmp_path / "out"))
    assert back.grid_shape == vol.grid_shape
    assert back.scaling == pytest.approx(vol.scaling) if vol.scaling else back.scaling is None
    assert back.dtype == vol.dtype
    _same_world_and_values(vol, back)  # stored values kept, scaling as RescaleSlope/Intercept
    n = int(np.prod(vol.grid_shape[2:]))
    assert len(_files(tmp_path / "out")) == n
