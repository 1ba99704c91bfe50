"""Mosaic DICOM: UIH grid images (VFRAME) and Siemens mosaics, generated and real."""
import glob
import gzip
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from dcmgen import new_dataset
from helpers import assert_clean_error, run

nib = pytest.importorskip("nibabel")
DCM2NIIX = os.path.join(os.path.dirname(sys.executable), "dcm2niix")


def nicom_data(name):
    return os.path.join(os.path.dirname(nib.__file__), "nicom", "tests", "data", name)


# -- generated UIH grid images ------------------------------------------------------------------

IOP = (0.98, 0.17, 0.10, -0.17, 0.985, 0.0)  # oblique (not exactly orthonormal: read as stored)


def _unit_iop():
    row = np.array(IOP[:3])
    row /= np.linalg.norm(row)
    col = np.array(IOP[3:])
    col -= row * (row @ col)
    col /= np.linalg.norm(col)
    return row, col


def write_uih(path, tiles, *, tile=(4, 5), across=3, positions, stored_order=None, tile_tag=None, instance=1,
              series_uid="1.2.826.0.1.3680043.8.498.77", items=True, spacing=(1.5, 2.0)):
    """One UIH grid file: `tiles` [slice, row, col] in spatial order, stored in the tile slots in
    `stored_order` (slot k holds slice stored_order[k]), each slot's position listed in (0065,1051)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    n, tr, tc = tiles.shape
    order = list(range(n)) if stored_order is None else list(stored_order)
    down = -(-n // across)
    image = np.zeros((down * tr, across * tc), dtype=np.uint16)
    for slot, k in enumerate(order):
        r, c = divmod(slot, across)
        image[r * tr:(r + 1) * tr, c * tc:(c + 1) * tc] = tiles[k]
    row, col = _unit_iop()
    ds = new_dataset("1.2.840.10008.5.1.4.1.1.4")
    ds.Modality = "MR"
    ds.Manufacturer = "UIH"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME"]
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 6
    ds.SeriesDescription = "dti grid"
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    ds.PixelSpacing = [str(spacing[0]), str(spacing[1])]
    ds.SliceThickness = "3.5"
    ds.RepetitionTime = "5865"
    ds.AcquisitionMatrix = [tc, 0, 0, tr]
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.add_new(0x00650010, "LO", "Image Private Header")
    ds.add_new(0x00651004, "SH", tile_tag if tile_tag is not None else f"{tile[0]}*{tile[1]}")
    ds.add_new(0x00651050, "DS", str(n))
    if items:
        seq = []
        for slot, k in enumerate(order):
            item = Dataset()
            item.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
            item.AcquisitionTime = f"1353{slot:02d}.000000"
            seq.append(item)
        ds.add_new(0x00651051, "SQ", Sequence(seq))
    ds.PixelData = image.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _uih_series(folder, n_files=3, n=5, tr=4, tc=5, seed=0, **kw):
    """Files of a generated UIH series; returns (data [col, row, slice, volume], positions, step)."""
    rng = np.random.default_rng(seed)
    row, col = _unit_iop()
    normal = np.cross(row, col)
    step = normal * 4.2 + row * 0.12  # a slice vector with an in-plane shift, as real ones have
    origin = np.array([-114.4, -112.3, -6.4])
    positions = [origin + k * step for k in range(n)]
    data = rng.integers(0, 4000, size=(n_files, n, tr, tc)).astype(np.uint16)
    os.makedirs(folder, exist_ok=True)
    for t in range(n_files):
        write_uih(os.path.join(folder, f"{t + 1:08d}.dcm"), data[t], tile=(tr, tc), positions=positions,
                  instance=t + 1, **kw)
    return data.transpose(3, 2, 1, 0), positions, step


def test_uih_grid_becomes_a_4d_volume_with_geometry(tmp_path):
    """Tiles of 4x5 in a 3-across grid (5 of 6 slots used), slices stored interleaved: one 4D volume,
    slices in spatial order, affine from the (0065,1051) positions."""
    import medconv

    data, positions, step = _uih_series(tmp_path / "in", stored_order=[0, 2, 4, 1, 3])
    r = run("convert", tmp_path / "in", tmp_path / "out.nii")
    assert r.code == 0, r.err
    img = nib.load(tmp_path / "out.nii")
    assert img.shape == (5, 4, 5, 3)
    assert np.array_equal(np.asarray(img.dataobj), data)
    row, col = _unit_iop()
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * 2.0, col * 1.5, step, positions[0]
    assert np.allclose(img.affine, np.diag([-1, -1, 1, 1]) @ lps, atol=1e-4)
    vol = medconv.read(tmp_path / "in", header_only=True)
    assert vol.shape == (5, 4, 5, 3)
    info = run("info", tmp_path / "in", "--get", "shape")
    assert info.code == 0 and info.out.split() == ["5", "4", "5", "3"], info


def test_uih_sidecar_slice_timing_from_the_items(tmp_path):
    import json

    _uih_series(tmp_path / "in", n_files=1, stored_order=[0, 2, 4, 1, 3])  # slot s acquired at s seconds
    r = run("convert", tmp_path / "in", tmp_path / "out.nii", "--sidecar")
    assert r.code == 0, r.err
    timing = json.loads((tmp_path / "out.json").read_text())["SliceTiming"]
    assert timing == [0.0, 3.0, 1.0, 4.0, 2.0]  # per slice in spatial order, from each item's time


def test_uih_single_file_is_3d(tmp_path):
    data, _, _ = _uih_series(tmp_path / "in", n_files=1)
    r = run("convert", tmp_path / "in" / "00000001.dcm", tmp_path / "one.nii")
    assert r.code == 0, r.err
    img = nib.load(tmp_path / "one.nii")
    assert img.shape == (5, 4, 5)
    assert np.array_equal(np.asarray(img.dataobj), data[..., 0])


@pytest.mark.parametrize("case, needle", [
    ({"items": False}, "(0065,1051)"),
    ({"tile_tag": "3*7"}, "tile size"),
])
def test_uih_without_usable_layout_is_refused(tmp_path, case, needle):
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 100, size=(5, 4, 5)).astype(np.uint16)
    src = write_uih(tmp_path / "bad.dcm", tiles, positions=[(0, 0, k) for k in range(5)], **case)
    if "tile_tag" in case:  # AcquisitionMatrix must not rescue a wrong tile size either
        import pydicom

        ds = pydicom.dcmread(src)
        ds.AcquisitionMatrix = [7, 0, 0, 3]
        ds.save_as(src)
    r = run("convert", src, tmp_path / "out.nii")
    assert_clean_error(r, 3, needle)
    assert not os.path.exists(tmp_path / "out.nii")


def test_uih_tiles_that_do_not_fit_are_refused(tmp_path):
    """More positions than the grid has tiles: refused, no out-of-bounds read."""
    import pydicom
    from pydicom.dataset import Dataset

    rng = np.random.default_rng(2)
    tiles = rng.integers(0, 100, size=(5, 4, 5)).astype(np.uint16)
    src = write_uih(tmp_path / "bad.dcm", tiles, positions=[(0, 0, k) for k in range(5)])
    ds = pydicom.dcmread(src)
    for k in range(5, 9):
        item = Dataset()
        item.ImagePositionPatient = ["0", "0", str(k)]
        ds[0x00651051].value.append(item)
    ds.save_as(src)
    assert_clean_error(run("convert", src, tmp_path / "out.nii"), 3, "cannot hold 9 tiles")


@pytest.mark.parametrize("name", ["dti_tra_dir16_PA_6_134431", "dti_tra_dir16_AP_9_134431"])
def test_real_uih_series_match_dcm2niix_reference(tmp_path, name, vendor_testdata):
    uih = os.path.join(vendor_testdata, "dcm_qa_uih")
    direction = name.split("_")[3]
    src = glob.glob(os.path.join(uih, "In", "*", f"dti_tra_dir16_{direction}_*"))
    assert len(src) == 1
    r = run("convert", src[0], tmp_path / "out.nii")
    assert r.code == 0, r.err
    mine = nib.as_closest_canonical(nib.load(tmp_path / "out.nii"))
    ref = nib.as_closest_canonical(nib.load(os.path.join(uih, "Ref", name + ".nii")))
    assert mine.shape == ref.shape == (64, 64, 20, 17)
    assert np.allclose(mine.affine, ref.affine, atol=0.05)
    assert np.array_equal(mine.get_fdata(), ref.get_fdata())


# -- Siemens mosaics ----------------------------------------------------------------------------

def test_siemens_mosaic_matches_nibabel(tmp_path):
    """An exact 7x7 grid of 128x128 tiles (48 used): voxels and affine as nibabel's own wrapper reads them."""
    import medconv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import dicomwrappers
    src = tmp_path / "dwi.dcm"
    src.write_bytes(gzip.decompress(open(nicom_data("siemens_dwi_1000.dcm.gz"), "rb").read()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = dicomwrappers.wrapper_from_file(str(src))
        ref, ref_affine = w.get_data(), w.affine
    vol = medconv.read(src)
    assert vol.shape == ref.shape == (128, 128, 48)
    assert np.allclose(vol.real(), ref)
    # nibabel's affine maps (row, column, slice) to LPS; ours maps (column, row, slice) to RAS
    swap = np.eye(4)[[1, 0, 2, 3]]
    assert np.allclose(vol.affine, np.diag([-1, -1, 1, 1]) @ ref_affine @ swap, atol=1e-4)


def _ramp_tile(k, per_side=7, rows=256, cols=256, n=36):
    """The 36x36 tile k of nibabel's 0.dcm (its pixels are the flat index modulo 4096), cut with each
    row of tiles starting rows*cols/per_side pixels after the previous one."""
    r, c = divmod(k, per_side)
    start = r * ((rows * cols) // per_side) + c * n
    flat = start + np.arange(n)[:, None] * cols + np.arange(n)[None, :]
    return (flat % 4096).T  # [col, row]


def test_siemens_mosaic_that_is_not_an_exact_grid(tmp_path):
    """nibabel's 0.dcm: 48 tiles of 36x36 in a 256x256 image (not 7x36): every tile as dcm2niix cuts
    it, with a warning that the grid does not fill the image."""
    src = nicom_data("0.dcm")
    import pydicom

    px = pydicom.dcmread(src).pixel_array
    assert np.array_equal(px.reshape(-1), np.arange(px.size) % 4096)  # the premise of _ramp_tile
    r = run("convert", src, tmp_path / "m.nii")
    assert r.code == 0, r.err
    assert "not an exact grid" in r.err
    data = np.asarray(nib.load(tmp_path / "m.nii").dataobj)
    assert data.shape == (36, 36, 48)
    for k in range(48):
        assert np.array_equal(data[:, :, k], _ramp_tile(k)), k


def test_siemens_inexact_mosaic_equals_dcm2niix(tmp_path):
    if not os.path.exists(DCM2NIIX):
        pytest.skip("dcm2niix not installed")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(nicom_data("0.dcm"), folder)
    (tmp_path / "ref").mkdir()
    subprocess.run([DCM2NIIX, "-o", str(tmp_path / "ref"), "-f", "ref", "-z", "n", str(folder)], check=True,
                   capture_output=True)
    assert run("convert", folder / "0.dcm", tmp_path / "m.nii").code == 0
    mine = nib.as_closest_canonical(nib.load(tmp_path / "m.nii"))
    ref = nib.as_closest_canonical(nib.load(tmp_path / "ref" / "ref.nii"))
    assert np.allclose(mine.affine, ref.affine, atol=1e-3)
    assert np.array_equal(mine.get_fdata(), ref.get_fdata())


def test_siemens_mosaic_without_csa_header_is_refused(tmp_path):
    import pydicom

    ds = pydicom.dcmread(gzip.open(nicom_data("siemens_dwi_0.dcm.gz")))
    for tag in list(ds.keys()):
        if tag.group == 0x0029:
            del ds[tag]
    ds.save_as(tmp_path / "nocsa.dcm")
    r = run("convert", tmp_path / "nocsa.dcm", tmp_path / "out.nii")
    assert_clean_error(r, 3, "without a usable CSA header")
    assert not os.path.exists(tmp_path / "out.nii")
