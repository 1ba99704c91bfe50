"""MetaImage and NRRD, the two text-header formats ITK reads and writes: what holds for both,
each written under its attached and its detached form, cross-checked with SimpleITK."""
import numpy as np
import pytest

import medconv
from helpers import file_names, make_volume, oblique_affine, run, sitk_affine, write_read
from medconv import geometry
from medconv.volume import Volume

sitk = pytest.importorskip("SimpleITK")

#: (format, its attached extension, its detached extension)
FORMS = [("metaimage", ".mha", ".mhd"), ("nrrd", ".nrrd", ".nhdr")]


@pytest.mark.parametrize("ext", [attached for _, attached, _ in FORMS])
@pytest.mark.parametrize("shape,kind", [((6, 5), "scalar"), ((6, 5, 4, 3), "scalar"), ((6, 5, 4, 3), "rgb"),
                                        ((6, 5, 4, 4), "rgba"), ((6, 5, 3), "rgb")])
def test_round_trip_2d_4d_colour(tmp_path, shape, kind, ext):
    data = np.random.default_rng(1).integers(0, 255, size=shape, dtype=np.uint8)
    flat = len(shape) - (kind != "scalar") == 2
    aff = np.diag([-0.5, -0.75, 1.0, 1.0]) if flat else oblique_affine()
    v = Volume(data=data, affine=aff, value_kind=kind, time_step=2.5 if kind == "scalar" and len(shape) == 4 else None)
    back, _ = write_read(v, ext, tmp_path)
    assert back.value_kind == kind and back.shape == v.shape
    np.testing.assert_array_equal(back.array, data)
    cols = [0, 1, 3] if flat else [0, 1, 2, 3]  # a 2D image has no third axis to compare
    assert np.allclose(back.affine[:, cols], aff[:, cols], atol=1e-9)
    if v.time_step:
        assert back.time_step == 2.5


@pytest.mark.parametrize("ext,compress", [(".mha", False), (".mhd", True), (".nrrd", True), (".nhdr", False)])
def test_medconv_reads_what_simpleitk_writes(tmp_path, ext, compress):
    arr = np.random.default_rng(3).integers(-1000, 3000, size=(4, 5, 6)).astype(np.int16)  # [z, y, x]
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing((0.7, 0.8, 2.5))
    im.SetOrigin((-12.5, 30.25, 7.0))
    rot = geometry.orthonormalize(np.array([[0.9, -0.3, 0.1], [0.35, 0.92, -0.2], [-0.05, 0.2, 0.97]]))
    im.SetDirection(rot.reshape(-1).tolist())
    path = str(tmp_path / ("s" + ext))
    sitk.WriteImage(im, path, compress)
    v = medconv.read(path)
    np.testing.assert_array_equal(v.array, arr.transpose(2, 1, 0))
    assert np.allclose(v.affine, sitk_affine(im), atol=1e-6)


@pytest.mark.parametrize("fmt,ext,_", FORMS)
def test_header_only_is_lazy(tmp_path, fmt, ext, _):
    v = make_volume(shape=(5, 4, 3), dtype="uint16")
    medconv.write(v, str(tmp_path / ("l" + ext)))
    lazy = medconv.read(str(tmp_path / ("l" + ext)), header_only=True)
    assert not lazy.is_loaded and lazy.shape == (5, 4, 3) and lazy.dtype == np.uint16
    res = run("info", tmp_path / ("l" + ext), "--get", "format", "--get", "orientation")
    assert res.code == 0 and res.out.split() == [fmt, v.orientation]


@pytest.mark.parametrize("ext", [detached for _, _, detached in FORMS])
def test_write_refuses_complex_and_leaves_nothing(tmp_path, ext):
    v = Volume(data=np.ones((3, 3, 3), np.complex64), affine=np.eye(4), value_kind="complex")
    out = tmp_path / "o"
    with pytest.raises(medconv.OutputError):
        medconv.write(v, str(out / ("c" + ext)))
    assert not out.exists() or file_names(out) == []
