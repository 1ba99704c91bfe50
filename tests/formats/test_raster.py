"""2D rasters: Pillow-made fixtures in every mode, pixel layout, strict writes, bad inputs."""
import os

import numpy as np
import pytest
from PIL import Image

import medconv
from helpers import assert_clean_error, make_volume, run
from medconv.errors import OutputError
from medconv.formats import raster
from medconv.volume import Volume

RNG = np.random.default_rng(7)
G8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)  # rows x columns, as Pillow sees it
G16 = RNG.integers(0, 65536, (5, 7)).astype(np.uint16)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
F32 = (RNG.normal(size=(5, 7)) * 1000).astype(np.float32)

# (file name, pixels, expected value kind)
LOSSLESS = [
    ("g8.png", G8, "scalar"), ("g16.png", G16, "scalar"), ("rgb.png", RGB, "rgb"), ("rgba.png", RGBA, "rgba"),
    ("g8.tif", G8, "scalar"), ("g16.tif", G16, "scalar"), ("rgb.tif", RGB, "rgb"), ("rgba.tif", RGBA, "rgba"),
    ("f.tif", F32, "scalar"), ("g8.bmp", G8, "scalar"), ("rgb.bmp", RGB, "rgb"),
]


def _rows_cols(vol):
    """Back to Pillow's rows x columns layout."""
    arr = vol.array
    return arr.T if arr.ndim == 2 else arr.transpose(1, 0, 2)


@pytest.mark.parametrize("name,pixels,kind", LOSSLESS)
def test_read_pillow_fixture(tmp_path, name, pixels, kind):
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    vol = medconv.read(str(path))
    assert vol.value_kind == kind
    assert vol.dtype == pixels.dtype
    assert vol.grid_shape == (7, 5)  # i = column, j = row
    # data[i, j] is the pixel at column i, row j
    assert np.array_equal(vol.array[3, 1], pixels[1, 3])
    np.testing.assert_array_equal(_rows_cols(vol), pixels)
    np.testing.assert_array_equal(vol.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))


@pytest.mark.parametrize("name,pixels,kind", LOSSLESS)
def test_round_trip_exact(tmp_path, name, pixels, kind):
    src = tmp_path / name
    Image.fromarray(pixels).save(src)
    vol = medconv.read(str(src))
    out = tmp_path / ("out_" + name)
    medconv.write(vol, str(out))
    back = medconv.read(str(out))
    assert back.dtype == vol.dtype and back.value_kind == kind
    np.testing.assert_array_equal(back.array, vol.array)
    with Image.open(out) as img:  # Pillow reads our file the same way round
        np.testing.assert_array_equal(np.asarray(img), pixels)


def test_32bit_integer_tiff_keeps_values(tmp_path):
    # mode I (32-bit signed) is not narrowed: values are kept as int32
    vals = G16.astype(np.int32) - 40000
    path = tmp_path / "i.tif"
    Image.fromarray(vals).save(path)
    vol = medconv.read(str(path))
    assert vol.dtype == np.int32
    np.testing.assert_array_equal(_rows_cols(vol), vals)


def test_jpeg_grey_and_rgb_are_8bit(tmp_path):
    smooth = np.tile(np.arange(0, 240, 8, dtype=np.uint8), (16, 1))
    Image.fromarray(smooth).save(tmp_path / "g.jpg", quality=100)
    vol = medconv.read(str(tmp_path / "g.jpg"))
    assert vol.dtype == np.uint8 and vol.value_kind == "scalar" and vol.grid_shape == (30, 16)
    assert np.abs(_rows_cols(vol).astype(int) - smooth).max() <= 3
    Image.fromarray(RGB).save(tmp_path / "c.jpg")
    col = medconv.read(str(tmp_path / "c.jpg"))
    assert col.value_kind == "rgb" and col.shape == (7, 5, 3)
    out = tmp_path / "back.jpg"
    medconv.write(vol, str(out))
    assert Image.open(out).format == "JPEG"


def test_palette_png(tmp_path):
    Image.fromarray(RGB).convert("P").save(tmp_path / "p.png")
    vol = medconv.read(str(tmp_path / "p.png"))
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert vol.value_kind == "rgb"
    np.testing.assert_array_equal(_rows_cols(vol), expected)
    # a palette of greys stays grey
    grey = Image.fromarray(G8).convert("P")
    assert grey.mode == "P"
    grey.save(tmp_path / "pg.png")
    g = medconv.read(str(tmp_path / "pg.png"))
    assert g.value_kind == "scalar"
    np.testing.assert_array_equal(_rows_cols(g), G8)


def test_third_axis_of_one_is_squeezed(tmp_path):
    vol = Volume(data=G8.T.reshape(7, 5, 1).copy(), affine=raster.DEFAULT_AFFINE)
    out = tmp_path / "s.png"
    medconv.write(vol, str(out))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), G8)


@pytest.mark.parametrize("fmt,vol,needle", [
    ("png", make_volume(shape=(4, 3), dtype="int16"), "uint8"),
    ("png", make_volume(shape=(4, 3), dtype="float32"), "float32"),
    ("jpeg", make_volume(shape=(4, 3), dtype="uint16"), "uint8"),
    ("bmp", make_volume(shape=(4, 3), dtype="uint16"), "uint8"),
    ("tiff", make_volume(shape=(4, 3), dtype="float64"), "float64"),
    ("png", make_volume(shape=(4, 3, 2), dtype="uint8"), "slice"),
    ("jpeg", make_volume(shape=(4, 3, 4), dtype="uint8", value_kind="rgba"), "RGBA"),
])
def test_strict_writes_refuse_what_the_format_cannot_hold(tmp_path, fmt, vol, needle):
    ext = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "tiff": ".tif"}[fmt]
    with pytest.raises(OutputError, match=needle):
        medconv.write(vol, str(tmp_path / ("x" + ext)))
    assert os.listdir(tmp_path) == []


def test_geometry_loss_warns_once(tmp_path, capsys):
    vol = make_volume(shape=(4, 3), dtype="uint8")  # oblique affine: not the raster default
    medconv.write(vol, str(tmp_path / "a.png"))
    medconv.write(vol, str(tmp_path / "b.png"))
    err = capsys.readouterr().err
    assert err.count("stores no geometry") == 1
    plain = Volume(data=G8.T.copy(), affine=raster.DEFAULT_AFFINE)
    sub = tmp_path / "sub"
    sub.mkdir()
    medconv.write(plain, str(sub / "c.png"))
    assert "stores no geometry" not in capsys.readouterr().err


def test_header_fields(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "phantom")
    Image.fromarray(G8).save(tmp_path / "t.png", pnginfo=info, dpi=(72, 72))
    hdr = raster.read_header(str(tmp_path / "t.png"))
    assert hdr["width"] == 7 and hdr["height"] == 5 and hdr["mode"] == "L" and hdr["bits_per_sample"] == 8
    assert hdr["text"] == {"Comment": "phantom"}
    assert hdr["dpi"] == pytest.approx([72, 72], abs=0.1)
    assert hdr["icc_profile"] is False
    exif = Image.Exif()
    exif[0x010F] = "ACME"  # Make
    Image.fromarray(RGB).save(tmp_path / "e.jpg", exif=exif)
    assert "Make" in raster.read_header(str(tmp_path / "e.jpg"))["exif_tags"]


def test_dpi_is_not_spacing(tmp_path):
    Image.fromarray(G8).save(tmp_path / "d.png", dpi=(300, 300))
    vol = medconv.read(str(tmp_path / "d.png"))
    assert vol.spacing == (1.0, 1.0)


def test_convert_png_to_nifti_and_back(tmp_path):
    Image.fromarray(G16).save(tmp_path / "g.png")
    res = run("convert", tmp_path / "g.png", tmp_path / "g.nii")
    assert res.code == 0, res.err
    res = run("convert", tmp_path / "g.nii", tmp_path / "back.png")
    assert res.code == 0, res.err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")), G16)


def test_random_bytes_png_is_a_clean_error(tmp_path):
    bad = tmp_path / "noise.png"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    assert_clean_error(run("info", bad), 3)
    assert_clean_error(run("convert", bad, tmp_path / "o.nii"), 3)
    assert os.listdir(tmp_path) == ["noise.png"]


def test_random_bytes_behind_a_png_signature(tmp_path):
    bad = tmp_path / "sig.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8).tobytes())
    assert_clean_error(run("info", bad), 3)


def test_truncated_png_is_a_clean_error(tmp_path):
    big = RNG.integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "full.png")
    raw = (tmp_path / "full.png").read_bytes()
    bad = tmp_path / "cut.png"
    bad.write_bytes(raw[: len(raw) // 2])
    assert_clean_error(run("convert", bad, tmp_path / "o.nii"), 3)
    assert sorted(os.listdir(tmp_path)) == ["cut.png", "full.png"]


def test_png_declaring_absurd_size_in_a_tiny_file(tmp_path):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    bad = tmp_path / "huge.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
                    + chunk(b"IEND", b""))
    assert_clean_error(run("info", bad), 3, "large")
    assert_clean_error(run("convert", bad, tmp_path / "o.nii"), 3)
    assert os.listdir(tmp_path) == ["huge.png"]
