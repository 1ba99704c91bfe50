"""MetaImage backend: round trips, SimpleITK cross-checks both ways, the file forms ITK writes, bad inputs."""
import zlib

import numpy as np
import pytest

import medconv
from helpers import (
    assert_bad_input_refused,
    assert_clean_error,
    assert_sitk_image,
    make_volume,
    oblique_affine,
    run,
    sitk_array,
    sitk_reads_rgb,
    write_read,
)
from medconv import geometry
from medconv.volume import Volume

sitk = pytest.importorskip("SimpleITK")


def test_oblique_2d_keeps_its_plane(tmp_path):
    """A 2D image off the z = 0 plane is written as one slice of a 3D image, so no voxel moves."""
    v = make_volume(shape=(6, 5), dtype="int16")
    medconv.write(v, str(tmp_path / "p.mha"))
    assert "NDims = 3" in (tmp_path / "p.mha").read_bytes()[:400].decode("latin-1")
    back = medconv.read(str(tmp_path / "p.mha"))
    assert back.shape == (6, 5, 1)
    assert geometry.world_equal(back.affine, v.affine, (6, 5, 1))


def test_scaled_volume_written_as_real_values(tmp_path):
    v = make_volume(shape=(4, 3, 2), dtype="int16", scaling=(0.5, -10.0))
    back, _ = write_read(v, ".mha", tmp_path, name="s")
    assert back.scaling is None
    np.testing.assert_allclose(back.array, v.real(), rtol=1e-6)


@pytest.mark.parametrize("ext,compress", [(".mha", False), (".mhd", False), (".mhd", True), (".mha", True)])
def test_simpleitk_reads_what_medconv_writes(tmp_path, ext, compress):
    v = make_volume(shape=(7, 6, 5), dtype="int16")
    path = str(tmp_path / ("o" + ext))
    files = medconv.write(v, path, compress=compress)
    if ext == ".mhd":
        assert files[1].endswith(".zraw" if compress else ".raw")
    assert_sitk_image(sitk.ReadImage(path), v)


def test_simpleitk_reads_4d_and_rgb(tmp_path):
    v = make_volume(shape=(5, 4, 3, 2), dtype="float32", time_step=1.5)
    medconv.write(v, str(tmp_path / "f.mha"))
    im = sitk.ReadImage(str(tmp_path / "f.mha"))
    assert im.GetSize() == (5, 4, 3, 2) and im.GetSpacing()[3] == 1.5
    assert_sitk_image(im, v)
    sitk_reads_rgb(tmp_path, ".mha")


def test_header_keys_in_itk_order_and_offset_is_lps(tmp_path):
    v = make_volume(shape=(4, 3, 2), dtype="int16")
    medconv.write(v, str(tmp_path / "h.mhd"))
    text = (tmp_path / "h.mhd").read_text()
    keys = [line.split(" = ")[0] for line in text.splitlines()]
    assert keys == ["ObjectType", "NDims", "BinaryData", "BinaryDataByteOrderMSB", "CompressedData",
                    "TransformMatrix", "Offset", "CenterOfRotation", "AnatomicalOrientation", "ElementSpacing",
                    "DimSize", "ElementType", "ElementDataFile"]
    offset = [float(x) for x in text.split("Offset = ")[1].splitlines()[0].split()]
    assert np.allclose(offset, geometry.ras_to_lps(v.affine)[:3, 3])
    assert "ElementDataFile = h.raw" in text


def _write_mhd(d, name, lines, data_files=()):
    for fname, blob in data_files:
        (d / fname).write_bytes(blob)
    (d / name).write_text("".join(line + "\n" for line in lines))
    return str(d / name)


BASE = ["ObjectType = Image", "NDims = 3", "DimSize = 3 4 2", "ElementSpacing = 1 1 2"]


def test_list_pattern_zraw_and_big_endian(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 4, 3)  # [z, y, x] on disk
    want = data.transpose(2, 1, 0)
    # LIST, big-endian, an unknown key kept in the header
    p = _write_mhd(tmp_path, "l.mhd", BASE + ["ElementType = MET_SHORT", "ElementByteOrderMSB = True",
                                              "Modality = MET_MOD_CT", "ElementDataFile = LIST", "a.raw", "b.raw"],
                   [("a.raw", data[0].astype(">i2").tobytes()), ("b.raw", data[1].astype(">i2").tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, want)
    hdr = medconv.formats.backend("metaimage").read_header(p, "metaimage")
    assert hdr["Modality"] == "MET_MOD_CT" and hdr["ElementDataFiles"] == ["a.raw", "b.raw"]
    assert hdr["DimSize"] == [3, 4, 2] and hdr["ElementByteOrderMSB"] is True
    # the printf pattern form
    p = _write_mhd(tmp_path, "p.mhd", BASE + ["ElementType = MET_SHORT", "ElementDataFile = s%03d.raw 1 2 1"],
                   [("s001.raw", data[0].tobytes()), ("s002.raw", data[1].tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, want)
    # zlib-compressed .zraw
    blob = zlib.compress(data.tobytes())
    p = _write_mhd(tmp_path, "z.mhd", BASE + ["ElementType = MET_SHORT", "CompressedData = True",
                                              f"CompressedDataSize = {len(blob)}", "ElementDataFile = z.zraw"],
                   [("z.zraw", blob)])
    np.testing.assert_array_equal(medconv.read(p).array, want)
    # HeaderSize = -1: the data ends the file
    p = _write_mhd(tmp_path, "e.mhd", BASE + ["ElementType = MET_SHORT", "HeaderSize = -1",
                                              "ElementDataFile = e.raw"], [("e.raw", b"junk" + data.tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, want)


def test_vector_channels_become_an_axis(tmp_path):
    """A 3-channel float image (a displacement field) is not RGB: its channels become a 4th axis."""
    data = np.arange(3 * 4 * 2 * 3, dtype=np.float32)
    p = _write_mhd(tmp_path, "d.mhd", BASE + ["ElementNumberOfChannels = 3", "ElementType = MET_FLOAT",
                                              "ElementDataFile = d.raw"], [("d.raw", data.tobytes())])
    v = medconv.read(p)
    assert v.value_kind == "scalar" and v.shape == (3, 4, 2, 3)
    np.testing.assert_array_equal(v.array[1, 0, 0], data[3:6])


@pytest.mark.parametrize("dtype,kind", [("uint16", "rgb"), ("int32", "rgba")])
def test_integer_colour_beyond_8_bits_round_trips(tmp_path, dtype, kind):
    """RGB of 16-bit samples (ITK's RGBPixel<unsigned short>) stays colour, not a channel axis."""
    n = 3 if kind == "rgb" else 4
    data = (np.arange(5 * 4 * 3 * n).reshape(5, 4, 3, n) * 997 % 60000).astype(dtype)
    vol = Volume(data=data, affine=oblique_affine(), value_kind=kind)
    back, _ = write_read(vol, ".mha", tmp_path, name="c")
    assert back.value_kind == kind and back.dtype == np.dtype(dtype) and back.shape == data.shape
    np.testing.assert_array_equal(back.array, data)
    im = sitk.ReadImage(str(tmp_path / "c.mha"))
    assert im.GetNumberOfComponentsPerPixel() == n
    np.testing.assert_array_equal(sitk_array(im), data)


BAD = {
    "missing data file": (BASE + ["ElementType = MET_SHORT", "ElementDataFile = gone.raw"], [], "gone.raw"),
    "truncated": (BASE + ["ElementType = MET_SHORT", "ElementDataFile = t.raw"], [("t.raw", b"\0" * 10)],
                  "truncated"),
    "bad NDims": (["ObjectType = Image", "NDims = x", "DimSize = 3 4 2", "ElementType = MET_SHORT",
                   "ElementDataFile = t.raw"], [("t.raw", b"\0" * 48)], "NDims"),
    "unknown ElementType": (BASE + ["ElementType = MET_QUATERNION", "ElementDataFile = t.raw"],
                            [("t.raw", b"\0" * 48)], "ElementType"),
    "huge claim": (["ObjectType = Image", "NDims = 3", "DimSize = 10000 10000 10000", "ElementType = MET_UCHAR",
                    "ElementDataFile = t.raw"], [("t.raw", b"\0" * 48)], "10000"),
    "huge compressed claim": (["ObjectType = Image", "NDims = 3", "DimSize = 10000 10000 10000",
                               "ElementType = MET_UCHAR", "CompressedData = True", "ElementDataFile = t.zraw"],
                              [("t.zraw", zlib.compress(b"\0" * 48))], "10000"),
    "LIST too short": (BASE + ["ElementType = MET_SHORT", "ElementDataFile = LIST", "a.raw"],
                       [("a.raw", b"\0" * 24)], "files"),
    "corrupt zlib": (BASE + ["ElementType = MET_SHORT", "CompressedData = True", "ElementDataFile = t.zraw"],
                     [("t.zraw", b"x\x9cnot really zlib data at all")], "corrupt"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_inputs_are_clean_errors(tmp_path, case, command):
    lines, data_files, needle = BAD[case]
    if command == "info" and case == "corrupt zlib":
        command = "stats"  # info reads headers only; a broken stream shows once voxels are read
    assert_bad_input_refused(tmp_path, command, lambda d: _write_mhd(d, "bad.mhd", lines, data_files), needle)


def test_bad_header_line_in_mha(tmp_path):
    p = tmp_path / "b.mha"
    p.write_bytes(b"ObjectType = Image\nNDims = 3\n\x00\x01garbage line\nElementDataFile = LOCAL\n")
    assert_clean_error(run("info", p), 3)


def test_pair_refused_when_its_data_file_exists(tmp_path):
    """Writing x.mhd also writes x.raw: an existing x.raw is refused without --force and kept."""
    (tmp_path / "x.raw").write_bytes(b"keep me")
    src = tmp_path / "s.mha"
    medconv.write(make_volume(shape=(4, 3, 2)), str(src))
    res = run("convert", src, tmp_path / "x.mhd")
    assert_clean_error(res, 4, "x.raw")
    assert (tmp_path / "x.raw").read_bytes() == b"keep me" and not (tmp_path / "x.mhd").exists()
    assert run("convert", src, tmp_path / "x.mhd", "--force").code == 0
    np.testing.assert_array_equal(medconv.read(str(tmp_path / "x.mhd")).array, medconv.read(str(src)).array)


def test_big_endian_source_written_native(tmp_path):
    data = np.arange(24, dtype=">i4").reshape(4, 3, 2)
    medconv.write(Volume(data=data, affine=np.eye(4)), str(tmp_path / "b.mha"))
    assert b"BinaryDataByteOrderMSB = False" in (tmp_path / "b.mha").read_bytes()[:300]
    back = medconv.read(str(tmp_path / "b.mha"))
    assert back.dtype == np.int32 and back.dtype.isnative
    np.testing.assert_array_equal(back.array, data)


def test_key_case_and_synonyms(tmp_path):
    """Keys in another case, ElementSize for spacing, Position for Offset, Orientation for the matrix."""
    data = np.arange(24, dtype=np.uint8)
    p = _write_mhd(tmp_path, "c.mhd", ["objecttype = Image", "ndims = 3", "dimsize = 3 4 2", "ElementSize = 2 3 4",
                                       "Position = 5 6 7", "Orientation = 0 1 0 -1 0 0 0 0 1",
                                       "ElementType = MET_UCHAR", "ElementDataFile = c.raw"],
                   [("c.raw", data.tobytes())])
    v = medconv.read(p)
    want = geometry.lps_to_ras(geometry.compose(np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]), (2, 3, 4), (5, 6, 7)))
    assert np.allclose(v.affine, want)
    np.testing.assert_array_equal(v.array, data.reshape(3, 4, 2, order="F"))
