"""MINC1/MINC2: nibabel's MINC files, MINC2 writes read back by nibabel and by us, bad inputs."""
import os

import h5py
import nibabel as nib
import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, make_volume, nibabel_data, run, world_max_error, write_read
from medconv.errors import CorruptInput, OutputError
from medconv.formats import minc

REAL = ["minc1_1_scale.mnc", "minc1_4d.mnc", "minc2_1_scale.mnc", "minc2_4d.mnc", "tiny.mnc", "small.mnc",
        "minc2-no-att.mnc", "minc1-no-att.mnc", "minc2-4d-d.mnc"]


def _nib_array(img):
    """nibabel's real values with a time axis (MINC puts it first) moved last."""
    arr = img.get_fdata()
    names = list(img.dataobj.minc_file._dim_names)
    if arr.ndim == 4:
        arr = np.moveaxis(arr, names.index("time"), -1)
    return arr


@pytest.mark.parametrize("name", REAL)
def test_real_files_agree_with_nibabel(name):
    path = nibabel_data(name)
    ref = nib.load(path)
    vol = medconv.read(path)
    assert vol.format == "minc"
    expected = _nib_array(ref)
    assert vol.shape == expected.shape
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)
    np.testing.assert_allclose(vol.spacing[:3], ref.header.get_zooms()[-3:] if vol.ndim == 3
                               else [abs(z) for z in ref.header.get_zooms()[1:]], rtol=1e-6)
    assert vol.scaling is None
    np.testing.assert_array_equal(vol.array.astype(np.float64), expected)


def test_4d_time_axis_is_last_with_its_step():
    vol = medconv.read(nibabel_data("minc2_4d.mnc"))
    ref = nib.load(nibabel_data("minc2_4d.mnc"))
    assert vol.ndim == 4 and vol.shape[3] == ref.shape[0]
    # the file's own time step (nibabel's header zooms repeat the spatial step here)
    assert vol.time_step == pytest.approx(ref.dataobj.minc_file.get_zooms()[0])


def test_header_only_is_lazy():
    vol = minc.read(nibabel_data("small.mnc"), header_only=True)
    assert not vol.is_loaded
    full = minc.read(nibabel_data("small.mnc"))
    assert vol.shape == full.shape and vol.dtype == full.dtype
    np.testing.assert_array_equal(vol.array, full.array)


def test_baddim_is_a_clean_error(tmp_path):
    with pytest.raises(CorruptInput, match="dimension"):
        medconv.read(nibabel_data("minc2_baddim.mnc"))
    assert_clean_error(run("info", nibabel_data("minc2_baddim.mnc")), 3, "spacing")
    assert_clean_error(run("convert", nibabel_data("minc2_baddim.mnc"), tmp_path / "o.nii"), 3)
    assert os.listdir(tmp_path) == []


def test_header_minc1_and_minc2():
    h1 = minc.read_header(nibabel_data("minc1_1_scale.mnc"))
    assert h1["format"].startswith("MINC1")
    assert {"xspace", "yspace", "zspace"} <= set(h1["dimensions"])
    assert h1["variables"]["image"]["dimensions"] == ["zspace", "yspace", "xspace"]
    assert "step" in h1["variables"]["xspace"]["attributes"]
    h2 = minc.read_header(nibabel_data("small.mnc"))
    assert h2["format"].startswith("MINC2")
    assert h2["dimensions"]["xspace"]["step"] == 7.0
    assert h2["variables"]["image/0/image"]["attributes"]["dimorder"] == "zspace,yspace,xspace"
    assert "history" in h2["attributes"]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "uint16", "float32", "float64"])
def test_write_read_back_by_nibabel_and_us(tmp_path, dtype):
    vol = make_volume(shape=(6, 5, 4), dtype=dtype)  # its affine is oblique
    back, files = write_read(vol, ".mnc", tmp_path)
    out = str(tmp_path / "v.mnc")
    assert files == [os.path.abspath(out)]
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89HDF\r\n\x1a\n"
    ref = nib.load(out)
    assert type(ref).__name__ == "Minc2Image"
    np.testing.assert_allclose(ref.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(ref.get_fdata(), vol.array.astype(np.float64))
    assert back.dtype == np.dtype(dtype)  # identity scaling keeps the stored integers
    np.testing.assert_array_equal(back.array, vol.array)
    assert world_max_error(back.affine, vol.affine, vol.shape) < 1e-4


def test_write_4d_and_layout(tmp_path):
    vol = make_volume(shape=(4, 3, 2, 3), dtype="int16", time_step=1.5)
    back, (out,) = write_read(vol, ".mnc", tmp_path, name="t")
    with h5py.File(out, "r") as fh:
        image = fh["minc-2.0/image/0/image"]
        assert image.attrs["dimorder"] == b"time,xspace,yspace,zspace"
        assert list(image.attrs["valid_range"]) == [-32768, 32767]
        dim = fh["minc-2.0/dimensions/xspace"]
        assert {"start", "step", "direction_cosines"} <= set(dim.attrs)
    assert back.shape == (4, 3, 2, 3) and back.time_step == pytest.approx(1.5)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_array_equal(_nib_array(nib.load(out)), vol.array)


def test_scaled_volume_writes_real_values(tmp_path):
    vol = make_volume(shape=(3, 4, 5), dtype="int16", scaling=(0.25, 10.0))
    out = str(tmp_path / "s.mnc")
    medconv.write(vol, out)
    np.testing.assert_array_equal(nib.load(out).get_fdata(), vol.real().astype(np.float64))


def test_real_file_round_trip_through_our_writer(tmp_path):
    src = nibabel_data("minc1_4d.mnc")
    out = tmp_path / "copy.mnc"
    res = run("convert", src, out)
    assert res.code == 0, res.err
    ref, got = nib.load(src), nib.load(str(out))
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(_nib_array(got), _nib_array(ref))


def test_refuses_what_it_cannot_hold(tmp_path):
    rgb = make_volume(shape=(3, 3, 3, 3), dtype="uint8", value_kind="rgb")
    with pytest.raises(OutputError, match="rgb"):
        medconv.write(rgb, str(tmp_path / "c.mnc"))
    big = make_volume(shape=(3, 3, 3), dtype="int64")
    with pytest.raises(OutputError, match="int64"):
        medconv.write(big, str(tmp_path / "i.mnc"))
    assert os.listdir(tmp_path) == []


def test_existing_destination_refused(tmp_path):
    out = tmp_path / "e.mnc"
    out.write_bytes(b"keep")
    res = run("convert", nibabel_data("tiny.mnc"), out)
    assert_clean_error(res, 4)
    assert out.read_bytes() == b"keep"


def test_truncated_and_garbage_minc_are_clean_errors(tmp_path):
    raw = open(nibabel_data("small.mnc"), "rb").read()
    cut = tmp_path / "cut.mnc"
    cut.write_bytes(raw[: len(raw) // 3])
    assert_clean_error(run("convert", cut, tmp_path / "o.nii"), 3)
    fake = tmp_path / "fake.mnc"
    fake.write_bytes(b"CDF\x01" + b"\xff" * 200)
    assert_clean_error(run("info", fake), 3)
    plain = tmp_path / "plain.mnc"
    with h5py.File(plain, "w") as fh:
        fh.create_dataset("x", data=np.zeros(3))
    assert_clean_error(run("info", plain), 3)
    assert sorted(os.listdir(tmp_path)) == ["cut.mnc", "fake.mnc", "plain.mnc"]
