"""The Volume model and geometry helpers: orientation codes, reorientation, LPS<->RAS, scaling."""
import itertools

import numpy as np
import pytest

import medconv
from helpers import make_volume, oblique_affine
from medconv import geometry
from medconv.errors import UsageError
from medconv.volume import Volume


def test_lps_ras_flip_is_its_own_inverse():
    aff = oblique_affine()
    np.testing.assert_allclose(geometry.ras_to_lps(geometry.lps_to_ras(aff)), aff)
    lps = geometry.lps_to_ras(aff)
    np.testing.assert_allclose(lps[:2], -aff[:2])
    np.testing.assert_allclose(lps[2:], aff[2:])


@pytest.mark.parametrize("diag,code", [((1, 1, 1), "RAS"), ((-1, -1, 1), "LPS"), ((-1, 1, 1), "LAS"),
                                       ((1, -1, -1), "RPI")])
def test_axcodes_points_to(diag, code):
    assert geometry.axcodes(np.diag(list(diag) + [1])) == code


def test_axcodes_of_a_permuted_affine():
    aff = np.zeros((4, 4))
    aff[0, 2], aff[1, 0], aff[2, 1], aff[3, 3] = 2, -3, 1, 1  # i runs along -y, j along +z, k along +x
    assert geometry.axcodes(aff) == "PSR"


@pytest.mark.parametrize("code", ["".join(p) for p in itertools.permutations("RAS")] + ["LPI", "LPS", "RPI", "LAI"])
def test_reorient_keeps_every_voxel_in_place(code):
    vol = make_volume((5, 4, 3), "int16")
    out = vol.reoriented(code)
    assert out.orientation == code
    # every voxel of the result sits at the world position its value had in the source
    inv = np.linalg.inv(vol.affine)
    for idx in itertools.product(*(range(n) for n in out.shape)):
        world = out.affine @ np.array(list(idx) + [1.0])
        src = np.rint(inv @ world)[:3].astype(int)
        assert out.array[idx] == vol.array[tuple(src)]


def test_reorient_4d_keeps_time_axis():
    vol = make_volume((3, 4, 2, 5), "float32")
    out = vol.reoriented("LPI")
    assert out.shape[3] == 5 and out.orientation == "LPI"


def test_bad_codes_are_usage_errors():
    vol = make_volume()
    for bad in ("RAX", "RRS", "RA", ""):
        with pytest.raises(UsageError):
            vol.reoriented(bad)


def test_compose_decompose_round_trip():
    aff = oblique_affine()
    spacing, direction, origin = geometry.decompose(aff)
    np.testing.assert_allclose(geometry.compose(direction, spacing, origin), aff)
    np.testing.assert_allclose(spacing, (0.8, 0.9, 2.5))
    assert geometry.is_orthogonal(aff)
    sheared = aff.copy()
    sheared[0, 2] += 0.5
    assert not geometry.is_orthogonal(sheared)


def test_world_distance():
    aff = oblique_affine()
    moved = aff.copy()
    moved[:3, 3] += (0, 0, 0.002)
    assert geometry.world_distance(aff, moved, (4, 4, 4)) == pytest.approx(0.002)
    assert geometry.world_equal(aff, aff, (4, 4, 4))


def test_unscaled_keeps_integers_when_they_fit():
    vol = Volume(data=np.array([[[0, 100, 4095]]], dtype=np.uint16), affine=np.eye(4), scaling=(1, -1024))
    out = vol.unscaled()
    assert out.scaling is None and out.dtype.kind == "i"
    np.testing.assert_array_equal(out.array, [[[-1024, -924, 3071]]])


@pytest.mark.parametrize("dtype,slope", [(np.int16, 1), (np.int16, 2), (np.uint8, 1), (np.int32, 3)])
def test_unscaled_keeps_the_stored_type_when_it_fits(dtype, slope):
    """The common CT case: int16 with intercept -1024 stays int16 (once crashed: dtype not callable)."""
    vol = Volume(data=np.array([[[0, 10, 100]]], dtype=dtype), affine=np.eye(4), scaling=(slope, -20))
    out = vol.unscaled()
    assert out.scaling is None and out.dtype == (dtype if dtype != np.uint8 else np.int16)
    np.testing.assert_array_equal(out.array, np.array([[[0, 10, 100]]]) * slope - 20)
    assert vol.array[0, 0, 1] == 10  # the source is not modified


def test_scaled_ct_nifti_to_formats_without_scaling(tmp_path):
    import nibabel as nib

    from helpers import run

    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4) * 50
    img = nib.Nifti1Image(data, np.diag([0.7, 0.7, 2.5, 1]))
    img.header.set_slope_inter(1, -1024)
    nib.save(img, tmp_path / "ct.nii.gz")
    for name in ("ct.mhd", "ct.nrrd", "ct.mgz"):
        r = run("convert", tmp_path / "ct.nii.gz", tmp_path / name)
        assert r.code == 0, r.err
        back = medconv.read(str(tmp_path / name))
        np.testing.assert_array_equal(back.real(), data.astype(np.int32) - 1024)


def test_unscaled_floats_for_fractional_slope():
    vol = Volume(data=np.array([[[1, 2, 3]]], dtype=np.int16), affine=np.eye(4), scaling=(0.5, 0.25))
    out = vol.unscaled()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.array, [[[0.75, 1.25, 1.75]]])


def test_identity_scaling_is_dropped_and_real_values_without_scaling_are_the_array():
    vol = Volume(data=np.zeros((2, 2, 2), np.int16), affine=np.eye(4), scaling=(1.0, 0.0))
    assert vol.scaling is None
    assert vol.real() is vol.array


def test_lazy_volume_loads_once():
    calls = []

    def loader():
        calls.append(1)
        return np.ones((2, 3, 4), np.uint8)

    vol = Volume(loader=loader, stored_shape=(2, 3, 4), stored_dtype=np.uint8, affine=np.eye(4))
    assert vol.shape == (2, 3, 4) and vol.dtype == np.uint8 and not vol.is_loaded
    assert vol.array.sum() == 24 and vol.array.sum() == 24
    assert calls == [1]


def test_rgb_grid_shape_and_spacing():
    vol = Volume(data=np.zeros((4, 3, 2, 3), np.uint8), affine=np.diag([2, 3, 4, 1.0]), value_kind="rgb")
    assert vol.grid_shape == (4, 3, 2) and vol.ndim == 3 and vol.spacing == (2.0, 3.0, 4.0)
