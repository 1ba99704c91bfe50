"""MGH/MGZ: nibabel's test.mgz, round trips through our writer and nibabel, bad inputs."""
import gzip
import os
import struct

import nibabel as nib
import numpy as np
import pytest

import medconv
from helpers import (
    assert_clean_error,
    make_volume,
    nibabel_data,
    run,
    world_max_error,
    write_read,
)
from medconv.errors import OutputError
from medconv.formats import BY_NAME, mgh


def test_test_mgz_agrees_with_nibabel():
    path = nibabel_data("test.mgz")
    ref = nib.load(path)
    vol = medconv.read(path)
    assert vol.format == "mgh"
    assert vol.shape == ref.shape
    assert vol.dtype == ref.get_data_dtype().newbyteorder("=")
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)
    np.testing.assert_array_equal(vol.array, np.asarray(ref.dataobj))
    # TR is stored in ms; the 4th-axis step is seconds
    assert vol.time_step == pytest.approx(float(ref.header["tr"]) / 1000.0)


def test_header_lists_every_field_and_tail():
    hdr = mgh.read_header(nibabel_data("test.mgz"))
    ref = nib.load(nibabel_data("test.mgz")).header
    assert list(hdr)[:12] == ["format", "version", "width", "height", "depth", "nframes", "type", "dof",
                              "goodRASflag", "spacing", "Mdc", "c_ras"]
    assert [hdr["width"], hdr["height"], hdr["depth"], hdr["nframes"]] == list(ref["dims"])
    np.testing.assert_allclose(hdr["Mdc"], ref["Mdc"])
    assert hdr["tr"] == pytest.approx(float(ref["tr"]))
    assert hdr["type_name"] == "float"
    assert all("tag" in t and "length" in t for t in hdr["tags"])


def test_header_command_shows_mgh_fields():
    res = run("header", nibabel_data("test.mgz"), "--json")
    if "No such command" in res.err:
        pytest.skip("the header command is not built yet")
    assert res.code == 0, res.err
    assert "goodRASflag" in res.out and "c_ras" in res.out


@pytest.mark.parametrize("dtype", BY_NAME["mgh"].dtypes)
@pytest.mark.parametrize("ext", BY_NAME["mgh"].extensions)
def test_round_trip_exact(tmp_path, dtype, ext):
    vol = make_volume(shape=(6, 5, 4), dtype=dtype)
    out = str(tmp_path / ("v" + ext))
    assert medconv.write(vol, out) == [os.path.abspath(out)]
    if ext == ".mgz":
        assert open(out, "rb").read(2) == b"\x1f\x8b"
    back = medconv.read(out)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, vol.array)
    assert world_max_error(back.affine, vol.affine, vol.shape) < 1e-4
    ref = nib.load(out)  # an independent reader agrees
    np.testing.assert_allclose(ref.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(ref.dataobj), vol.array)


def test_4d_round_trip_keeps_time_step(tmp_path):
    vol = make_volume(shape=(4, 3, 2, 3), dtype="float32", time_step=2.5)
    back, (out,) = write_read(vol, ".mgz", tmp_path, name="f")
    assert back.shape == (4, 3, 2, 3)
    assert back.time_step == pytest.approx(2.5)
    assert float(nib.load(out).header["tr"]) == pytest.approx(2500.0)
    np.testing.assert_array_equal(back.array, vol.array)


def test_header_only_is_lazy_and_matches(tmp_path):
    vol = make_volume(shape=(5, 4, 3), dtype="int16")
    out = str(tmp_path / "v.mgh")
    medconv.write(vol, out)
    lazy = mgh.read(out, header_only=True)
    assert not lazy.is_loaded
    assert lazy.shape == (5, 4, 3) and lazy.dtype == np.int16
    np.testing.assert_array_equal(lazy.array, vol.array)


def test_widening_keeps_values_and_refusals_are_clear(tmp_path):
    u16 = make_volume(shape=(3, 3, 3), dtype="uint16")
    back, _ = write_read(u16, ".mgh", tmp_path, name="u")
    assert back.dtype == np.int32  # widened, values unchanged
    np.testing.assert_array_equal(back.array, u16.array)
    f64 = make_volume(shape=(3, 3, 3), dtype="float64")
    with pytest.raises(OutputError, match="float32"):
        medconv.write(f64, str(tmp_path / "d.mgh"))
    rgb = make_volume(shape=(3, 3, 3, 3), dtype="uint8", value_kind="rgb")
    with pytest.raises(OutputError, match="rgb"):
        medconv.write(rgb, str(tmp_path / "c.mgh"))
    assert sorted(os.listdir(tmp_path)) == ["u.mgh"]


def test_scaled_volume_writes_real_values(tmp_path):
    vol = make_volume(shape=(3, 4, 5), dtype="int16", scaling=(0.5, -3.0))
    back, _ = write_read(vol, ".mgz", tmp_path, name="s")
    assert back.scaling is None and back.dtype == np.float32
    np.testing.assert_array_equal(back.array, vol.real())


def _header(dims=(4, 3, 2, 1), dtype=3, good=1):
    head = struct.pack(">7ih3f9f3f", 1, *dims, dtype, 0, good, 1.0, 1.0, 1.0,
                       -1, 0, 0, 0, 0, -1, 0, 1, 0, 0.0, 0.0, 0.0)
    return head + b"\x00" * (284 - len(head))


def test_unknown_orientation_uses_freesurfer_default(tmp_path):
    path = tmp_path / "noras.mgh"
    path.write_bytes(_header(good=0) + np.zeros(24, ">f4").tobytes())
    vol = medconv.read(str(path))
    ref = nib.load(str(path))
    assert not vol.orientation_known
    np.testing.assert_allclose(vol.affine, ref.affine)
    # nibabel's default Mdc read as FreeSurfer stores it (rows: x, y, z directions)
    assert vol.orientation == "LSP"


def test_conversion_to_nifti_keeps_geometry(tmp_path):
    out = tmp_path / "t.nii.gz"
    res = run("convert", nibabel_data("test.mgz"), out)
    assert res.code == 0, res.err
    ref = nib.load(nibabel_data("test.mgz"))
    got = nib.load(str(out))
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(got.get_fdata(), ref.get_fdata())


def test_truncated_mgz_is_a_clean_error(tmp_path):
    vol = make_volume(shape=(20, 20, 20), dtype="float32")
    good = tmp_path / "good.mgz"
    medconv.write(vol, str(good))
    bad = tmp_path / "bad.mgz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    before = sorted(os.listdir(tmp_path))
    assert_clean_error(run("convert", bad, tmp_path / "o.nii"), 3)
    assert sorted(os.listdir(tmp_path)) == before


def test_truncated_uncompressed_mgh_is_a_clean_error(tmp_path):
    bad = tmp_path / "short.mgh"
    bad.write_bytes(_header() + b"\x00" * 10)
    assert_clean_error(run("info", bad), 3, "truncated")


def test_absurd_dimensions_in_a_tiny_file(tmp_path):
    bad = tmp_path / "huge.mgh"
    bad.write_bytes(_header(dims=(60000, 60000, 60000, 1)) + b"\x00" * 64)
    assert_clean_error(run("info", bad), 3)
    gz = tmp_path / "huge.mgz"
    gz.write_bytes(gzip.compress(_header(dims=(100000, 100000, 1000, 1)) + b"\x00" * 64))
    assert_clean_error(run("convert", gz, tmp_path / "o.nii"), 3)
    assert sorted(os.listdir(tmp_path)) == ["huge.mgh", "huge.mgz"]


def test_bad_type_and_header_too_short(tmp_path):
    bad = tmp_path / "type.mgh"
    bad.write_bytes(_header(dtype=7) + b"\x00" * 96)
    assert_clean_error(run("info", bad), 3)
    short = tmp_path / "short.mgh"
    short.write_bytes(_header()[:100])
    assert_clean_error(run("info", short), 3)
