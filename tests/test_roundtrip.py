"""Every (read format, write format) pair, property-based: world position of every voxel to
1e-4 mm and voxel values exactly, or a clean error when the destination cannot hold the image.

The pairs come from the registry, so a new backend is tested the day it is added.
"""
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medconv
from helpers import oblique_affine, run
from medconv.formats import BY_NAME, FORMATS, RASTER
from medconv.volume import Volume

#: the file name each format is written under: its default (DICOM: a series directory); NIfTI-2,
#: whose default NIfTI-1 shares, as its first extension (an uncompressed .nii)
TARGET = {f.name: "v" + f.default_extension for f in FORMATS}
TARGET["nifti2"] = "v2" + BY_NAME["nifti2"].extensions[0]
LOSSY = {"jpeg"}
EXAMPLES = int(os.environ.get("MEDCONV_ROUNDTRIP_EXAMPLES", "4"))


def _available(fmt):
    module = fmt.module
    return importlib.util.find_spec(module) is not None


WRITABLE = [f for f in FORMATS if f.can_write and _available(f)]
PAIRS = [(a, b) for a in WRITABLE for b in WRITABLE if a.name not in LOSSY or b.name not in LOSSY]


def _shape_for(src, dst, ndim, draw):
    n = [draw(st.integers(2, 6)) for _ in range(4)]
    if ndim == 2:
        return (n[0], n[1])
    if ndim == 3:
        return (n[0], n[1], n[2])
    return (n[0], n[1], n[2], draw(st.integers(2, 3)))


def _affine_for(src, dst, ndim, draw):
    if not (src.geometry and dst.geometry):
        return np.diag([-1.0, -1.0, 1.0, 1.0])  # the raster convention (LPS identity)
    spacing = [draw(st.sampled_from([0.5, 0.75, 1.0, 1.25, 2.5, 3.0])) for _ in range(3)]
    origin = [draw(st.sampled_from([-120.5, -3.25, 0.0, 17.75, 64.0])) for _ in range(3)]
    if "analyze" in (src.name, dst.name):
        # Analyze holds no rotation and stores the origin as a whole voxel index
        aff = np.diag(spacing + [1.0])
        aff[:3, 3] = [-s * draw(st.integers(0, 1)) for s in spacing[:2]] + [0.0]
        aff[0, :] *= -1
        return aff
    angles = [draw(st.sampled_from([0.0, 0.1, -0.35, 0.6])) for _ in range(3)]
    return oblique_affine(spacing=spacing, angles=angles, origin=origin)


def _values(dtype, shape, kind, draw):
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if kind in ("rgb", "rgba"):
        return rng.integers(0, 256, size=shape + (3 if kind == "rgb" else 4,), dtype=np.uint8)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(info.min, -(2**31)), min(info.max, 2**31)
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=dt)
    if dt.kind == "c":
        return (rng.normal(size=shape) * 1000 + 1j * rng.normal(size=shape)).astype(dt)
    return (rng.normal(size=shape) * 1000).astype(dt)


@st.composite
def volumes_for(draw, src, dst):
    ndims = sorted(set(src.ndims) & set(dst.ndims))
    ndim = draw(st.sampled_from(ndims))
    colours = sorted(set(src.colour) & set(dst.colour))
    kind = draw(st.sampled_from(["scalar"] + colours)) if colours else "scalar"
    dtypes = [d for d in src.dtypes if d in dst.dtypes] if kind == "scalar" else ["uint8"]
    dtype = draw(st.sampled_from(dtypes))
    shape = _shape_for(src, dst, ndim, draw)
    if kind != "scalar" and ndim == 4:
        shape = shape[:3]
    data = _values(dtype, shape, kind, draw)
    affine = _affine_for(src, dst, ndim, draw)
    if np.dtype(dtype).kind == "c":
        kind = "complex"
    return Volume(data=data, affine=affine, value_kind=kind, time_step=1.5 if len(shape) == 4 else None)


def _world_of_voxels(vol):
    """World coordinates of every voxel centre (n, 3) in the array's C order."""
    grid = vol.grid_shape[:3]
    idx = np.indices(grid).reshape(len(grid), -1).astype(float)
    idx = np.vstack([idx, np.zeros((3 - len(grid), idx.shape[1]))]) if len(grid) < 3 else idx
    return (vol.affine[:3, :3] @ idx + vol.affine[:3, 3:4]).T


def assert_same_image(a, b, geometry=True):
    """Same voxel values at the same world positions (axes may be reordered or flipped)."""
    assert a.value_kind == b.value_kind or {a.value_kind, b.value_kind} <= {"scalar", "label"}
    av, bv = np.asarray(a.real()), np.asarray(b.real())
    if a.grid_shape != b.grid_shape and sorted(a.grid_shape) == sorted(b.grid_shape) and geometry:
        pass  # a permutation: resolved through world coordinates below
    elif not geometry:
        assert av.squeeze().shape == bv.squeeze().shape
        np.testing.assert_array_equal(av.squeeze(), bv.squeeze())
        return
    wa, wb = _world_of_voxels(a), _world_of_voxels(b)
    # map each voxel of b to a's index space, through a's inverse affine
    inv = np.linalg.inv(a.affine)
    ijk = (inv[:3, :3] @ wb.T + inv[:3, 3:4]).T
    rounded = np.rint(ijk)
    assert np.abs(ijk - rounded).max() * max(1.0, np.abs(a.affine[:3, :3]).max()) < 1e-3
    # world distance between b's voxels and the a voxels they land on
    back = (a.affine[:3, :3] @ rounded.T + a.affine[:3, 3:4]).T
    assert np.abs(back - wb).max() < 1e-4
    nd = len(a.grid_shape[:3])
    flat_a = av.reshape(a.grid_shape[:3] + (-1,)) if nd == 3 else av.reshape(a.grid_shape[:2] + (1, -1))
    flat_b = bv.reshape((-1,) + bv.shape[len(b.grid_shape[:3]):])
    picked = flat_a[tuple(rounded[:, i].astype(int) for i in range(3))]
    np.testing.assert_array_equal(picked.reshape(flat_b.shape), flat_b)
    del wa


def _read_dst(path):
    return medconv.read(path)


@pytest.mark.parametrize("src,dst", PAIRS, ids=[f"{a.name}->{b.name}" for a, b in PAIRS])
def test_round_trip_pair(tmp_path_factory, src, dst):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(vol=volumes_for(src, dst))
    def check(vol):
        work = tmp_path_factory.mktemp("rt")
        src_path = str(work / ("src_" + TARGET[src.name]))
        to = ["--to", src.name] if src.name in ("nifti2", "analyze", "dicom") else []
        medconv.write(vol, src_path, to=src.name)
        first = medconv.read(src_path)
        if src.name not in LOSSY:
            assert_same_image(vol, first, geometry=src.geometry)
        dst_path = str(work / TARGET[dst.name])
        to = ["--to", dst.name] if dst.name in ("nifti2", "analyze", "dicom") else []
        res = run("convert", src_path, dst_path, *to)
        assert res.code == 0, res.err
        second = _read_dst(dst_path)
        if dst.name in LOSSY:
            assert second.array.squeeze().shape == first.array.squeeze().shape
            return
        if not dst.geometry:  # 2D exports show the image in the viewing convention (README: Decisions)
            from medconv.convert import display_oriented

            first = display_oriented(first)
        assert_same_image(first, second, geometry=dst.geometry)
        assert second.dtype == first.dtype or dst.name in RASTER or first.dtype.kind == "f"

    check()


@pytest.mark.parametrize("dst", [f for f in WRITABLE if f.name != "nifti1"], ids=lambda f: f.name)
def test_unholdable_dtype_is_a_clean_error(tmp_path, dst):
    """complex128 fits NIfTI; formats that cannot hold it refuse clearly and leave nothing."""
    if "complex128" in dst.dtypes:
        pytest.skip("holds complex128")
    vol = Volume(data=(np.ones((3, 3, 3)) * (1 + 2j)).astype(np.complex128), affine=np.eye(4),
                 value_kind="complex")
    src = str(tmp_path / "c.nii")
    medconv.write(vol, src)
    target = tmp_path / "out" / TARGET[dst.name]
    to = ["--to", dst.name]
    res = run("convert", src, str(target), *to)
    assert res.code in (2, 3, 4), res.err
    assert res.err.startswith("medconv: error:") and "Traceback" not in res.err
    leftovers = [p for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else []
    assert not [p for p in leftovers if p.is_file()]
