"""medconv.stats against numpy on real values: every field, dtype, scaling, NaNs, masks, labels, 4D."""
from __future__ import annotations

import numpy as np
import pytest

import medconv
from helpers import make_volume, oblique_affine
from medconv import stats
from medconv.errors import InputError, UsageError
from medconv.volume import Volume

QS = (2.0, 25.0, 50.0, 97.5, 98.0)


def real64(vol) -> np.ndarray:
    """Real values as stats defines them: scaled values in float64 (as nibabel's get_fdata),
    unscaled ones as stored."""
    if vol.dtype.kind not in "iuf" or vol.scaling is None:
        return vol.real()
    slope, inter = vol.scaling
    return vol.array.astype(np.float64) * slope + inter


def reference(values: np.ndarray, qs=QS) -> dict:
    """Every field computed the plain numpy way on an array of real values."""
    values = np.asarray(values).ravel()
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    out = {"count": finite.size, "nan": values.size - finite.size}
    if finite.size:
        out.update(min=finite.min(), max=finite.max(), mean=np.mean(finite, dtype=np.float64),
                   std=np.std(finite, dtype=np.float64), median=np.percentile(finite, 50.0),
                   sum=np.sum(finite, dtype=np.float64))
        for q in qs:
            out[stats.percentile_key(q)] = np.percentile(finite, q)
    out["nonzero"] = int(np.count_nonzero(finite))
    return out


def assert_matches(rec: dict, ref: dict, voxel_mm3: float, exact_order=True):
    assert rec["count"] == ref["count"]
    assert rec["nan"] == ref["nan"]
    assert rec["nonzero"] == ref["nonzero"]
    assert rec["volume_mm3"] == pytest.approx(ref["nonzero"] * voxel_mm3, rel=1e-12)
    assert rec["volume_ml"] == pytest.approx(ref["nonzero"] * voxel_mm3 / 1000, rel=1e-12)
    if not ref["count"]:
        assert rec["min"] is None and rec["mean"] is None and rec["median"] is None
        return
    # min, max and every order statistic are exact: same values, numpy's own interpolation
    assert rec["min"] == ref["min"] and rec["max"] == ref["max"]
    assert rec["median"] == ref["median"]
    for q in QS:
        key = stats.percentile_key(q)
        assert rec[key] == ref[key], (key, rec[key], ref[key])
    assert rec["mean"] == pytest.approx(float(ref["mean"]), rel=1e-12, abs=1e-9)
    assert rec["std"] == pytest.approx(float(ref["std"]), rel=1e-9, abs=1e-9)
    assert rec["sum"] == pytest.approx(float(ref["sum"]), rel=1e-12, abs=1e-6)


DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scaling", [None, (0.5, -1024.0), (-2.0, 3.0)])
def test_every_field_matches_numpy(dtype, scaling):
    vol = make_volume((9, 8, 7), dtype, scaling=scaling, seed=3)
    if np.dtype(dtype).kind == "f":
        arr = vol.array
        arr.flat[::17] = np.nan
        arr.flat[5] = np.inf
        arr.flat[6] = -np.inf
        arr.flat[::13] = 0
    else:
        vol.array.flat[::11] = 0
    real = real64(vol)
    (rec,) = stats.compute(vol, percentiles=QS)
    assert_matches(rec, reference(real), stats.voxel_volume_mm3(vol))
    if scaling is not None:  # real units, not stored ones
        assert rec["min"] != vol.array.min() or rec["max"] != vol.array.max()


def test_integer_results_are_exact_integers():
    vol = make_volume((6, 5, 4), "int16", seed=1)
    (rec,) = stats.compute(vol)
    assert isinstance(rec["min"], int) and isinstance(rec["sum"], int)
    assert rec["sum"] == int(vol.array.astype(np.int64).sum())
    assert rec["p2"] == np.percentile(vol.array, 2) and rec["p98"] == np.percentile(vol.array, 98)


def test_hounsfield_units_from_stored_values():
    data = np.array([0, 24, 1024, 2024], dtype=np.uint16).reshape(2, 2, 1)
    vol = Volume(data=data, affine=np.diag([0.5, 0.5, 2.0, 1.0]), scaling=(1.0, -1024.0))
    (rec,) = stats.compute(vol)
    assert (rec["min"], rec["max"]) == (-1024.0, 1000.0)
    assert rec["mean"] == pytest.approx((-1024 - 1000 + 0 + 1000) / 4)
    assert rec["nonzero"] == 3 and rec["volume_mm3"] == pytest.approx(1.5)


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32"])
def test_wide_integer_range_and_floats_use_selection(dtype):
    # int32 spanning more than 2**24 values cannot be counted: the selection path must agree too
    rng = np.random.default_rng(5)
    data = rng.integers(-2**30, 2**30, size=(8, 7, 6)).astype(dtype)
    vol = Volume(data=data, affine=np.eye(4))
    (rec,) = stats.compute(vol, percentiles=QS)
    assert_matches(rec, reference(vol.real()), 1.0)


def test_mask_restricts_to_nonzero_mask_voxels():
    vol = make_volume((10, 9, 8), "int16", scaling=(0.25, 10.0), seed=7)
    rng = np.random.default_rng(8)
    mdata = (rng.random((10, 9, 8)) > 0.6).astype(np.uint8) * 3
    mask = Volume(data=mdata, affine=vol.affine.copy())
    (rec,) = stats.compute(vol, mask=mask, percentiles=QS)
    assert_matches(rec, reference(real64(vol)[mdata != 0]), stats.voxel_volume_mm3(vol))


def test_float_mask_with_nan_counts_as_outside():
    vol = make_volume((5, 4, 3), "float32", seed=2)
    mdata = np.ones((5, 4, 3), np.float32)
    mdata[0] = np.nan
    mdata[1] = 0
    (rec,) = stats.compute(vol, mask=Volume(data=mdata, affine=vol.affine))
    assert rec["count"] == 3 * 4 * 3


def test_empty_mask_gives_nulls():
    vol = make_volume((4, 4, 4), "float64")
    mask = Volume(data=np.zeros((4, 4, 4), np.uint8), affine=vol.affine)
    (rec,) = stats.compute(vol, mask=mask)
    assert rec["count"] == 0 and rec["nonzero"] == 0 and rec["mean"] is None and rec["p2"] is None
    (rec,) = stats.compute(make_volume((4, 4, 4), "uint8"), mask=Volume(data=np.zeros((4, 4, 4), np.uint8),
                                                                         affine=oblique_affine()))
    assert rec["count"] == 0 and rec["median"] is None and rec["sum"] == 0


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("masked", [False, True])
def test_slabs_give_the_same_numbers_as_one_block(dtype, masked):
    vol = make_volume((11, 7, 13, 2), dtype, scaling=(1.5, -3.0), seed=11)
    if dtype == "float32":
        vol.array.flat[::23] = np.nan
    mask = None
    if masked:
        mask = Volume(data=(np.arange(11 * 7 * 13).reshape(11, 7, 13) % 3 == 0).astype(np.int16),
                      affine=vol.affine)
    whole = stats.compute(vol, mask=mask, percentiles=QS, slab_voxels=10**9)
    for slab in (1, 77, 200):  # one plane, exactly one plane of 11x7, a few planes
        sliced = stats.compute(vol, mask=mask, percentiles=QS, slab_voxels=slab)
        assert len(sliced) == 2
        for a, b in zip(whole, sliced):
            assert a.keys() == b.keys()
            for key in a:
                if key in ("mean", "std", "sum", "volume_mm3", "volume_ml"):
                    assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-9), key
                else:
                    assert b[key] == a[key], key


def test_memory_mapped_nifti_in_slabs(tmp_path):
    vol = make_volume((16, 12, 10), "int16", scaling=(0.5, 100.0), seed=4)
    path = tmp_path / "mm.nii"
    medconv.write(vol, path)
    back = medconv.read(path)
    assert isinstance(back.array, np.memmap) or isinstance(back.array.base, np.memmap)
    (a,) = stats.compute(back, percentiles=QS, slab_voxels=16 * 12)
    (b,) = stats.compute(vol, percentiles=QS, slab_voxels=10**9)
    assert a == pytest.approx(b)
    assert_matches(a, reference(real64(vol)), stats.voxel_volume_mm3(back))


def test_4d_per_volume_and_pooled():
    vol = make_volume((6, 5, 4, 3), "float32", scaling=(2.0, 1.0), seed=9)
    vol.array[..., 1].flat[::7] = np.nan
    real = real64(vol)
    recs = stats.compute(vol, percentiles=QS)
    assert [r["volume"] for r in recs] == [0, 1, 2]
    for t, rec in enumerate(recs):
        assert_matches(rec, reference(real[..., t]), stats.voxel_volume_mm3(vol))
    (pooled,) = stats.compute(vol, percentiles=QS, pooled=True)
    assert "volume" not in pooled
    assert_matches(pooled, reference(real), stats.voxel_volume_mm3(vol))


def test_rgb_one_row_per_channel():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(7, 6, 1, 3)).astype(np.uint8)
    vol = Volume(data=data, affine=np.eye(4), value_kind="rgb")
    recs = stats.compute(vol, percentiles=QS)
    assert [r["channel"] for r in recs] == ["r", "g", "b"]
    for c, rec in enumerate(recs):
        assert_matches(rec, reference(data[..., c]), 1.0)


def test_complex_uses_magnitude():
    vol = make_volume((5, 4, 3), "complex64", seed=2, value_kind="complex")
    (rec,) = stats.compute(vol, percentiles=QS)
    assert_matches(rec, reference(np.abs(vol.array)), stats.voxel_volume_mm3(vol))


def test_without_percentiles_only_streaming_fields():
    vol = make_volume((5, 4, 3), "float32")
    (rec,) = stats.compute(vol, exact=False)
    assert "median" not in rec and "p2" not in rec
    assert rec["mean"] == pytest.approx(float(np.mean(vol.array, dtype=np.float64)))


# -- labels --------------------------------------------------------------------------------

def _label_map(shape, affine, seed=0, n=4):
    rng = np.random.default_rng(seed)
    return Volume(data=rng.integers(0, n, size=shape).astype(np.uint8), affine=affine, value_kind="label")


@pytest.mark.parametrize("dtype,scaling", [("int16", (0.5, -1024.0)), ("float32", None), ("uint8", None)])
def test_labels_match_numpy(dtype, scaling):
    vol = make_volume((9, 8, 7), dtype, scaling=scaling, seed=5)
    if dtype == "float32":
        vol.array.flat[::9] = np.nan
    labels = _label_map((9, 8, 7), vol.affine, seed=6)
    lab = labels.array
    real = real64(vol)
    recs = stats.compute_labels(vol, labels, slab_voxels=9 * 8 * 2)
    assert [r["label"] for r in recs] == [1, 2, 3]
    vox = stats.voxel_volume_mm3(vol)
    for rec in recs:
        sel = lab == rec["label"]
        vals = real[sel]
        fin = vals[np.isfinite(vals)]
        assert rec["voxels"] == int(sel.sum())
        assert rec["volume_ml"] == pytest.approx(sel.sum() * vox / 1000, rel=1e-12)
        assert rec["nan"] == vals.size - fin.size
        assert rec["mean"] == pytest.approx(float(np.mean(fin, dtype=np.float64)), rel=1e-12)
        assert rec["std"] == pytest.approx(float(np.std(fin, dtype=np.float64)), rel=1e-9)
        assert rec["min"] == fin.min() and rec["max"] == fin.max()
        ijk = np.argwhere(sel).mean(axis=0)
        world = vol.affine[:3, :3] @ ijk + vol.affine[:3, 3]
        assert rec["centroid"] == pytest.approx(world.tolist(), abs=1e-9)


def test_labels_background_mask_names_4d():
    vol = make_volume((6, 5, 4, 2), "int16", seed=3)
    labels = _label_map((6, 5, 4), vol.affine, seed=4, n=3)
    mask = Volume(data=(np.indices((6, 5, 4))[0] < 3).astype(np.uint8), affine=vol.affine)
    recs = stats.compute_labels(vol, labels, mask=mask, background=True, names={0: "bg", 2: "two"})
    assert [(r["volume"], r["label"], r["name"]) for r in recs] == [
        (0, 0, "bg"), (0, 1, ""), (0, 2, "two"), (1, 0, "bg"), (1, 1, ""), (1, 2, "two")]
    for rec in recs:
        sel = (labels.array == rec["label"]) & (mask.array != 0)
        vals = vol.array[..., rec["volume"]][sel]
        assert rec["voxels"] == sel.sum()
        assert rec["min"] == vals.min() and rec["max"] == vals.max()
        assert rec["mean"] == pytest.approx(vals.mean())
    pooled = stats.compute_labels(vol, labels, pooled=True)
    for rec in pooled:
        vals = vol.array[labels.array == rec["label"]]
        assert rec["voxels"] == np.sum(labels.array == rec["label"])
        assert rec["mean"] == pytest.approx(vals.mean()) and rec["std"] == pytest.approx(vals.std())


def test_label_volumes_alone_and_large_label_values():
    data = np.zeros((5, 4, 3), np.int32)
    data[0, 0, 0] = 100000  # beyond direct indexing: np.unique path
    data[1:3] = 7
    labels = Volume(data=data, affine=np.diag([2.0, 1.5, 3.0, 1.0]))
    recs = stats.compute_labels(labels, labels, values=False)
    assert [(r["label"], r["voxels"]) for r in recs] == [(7, 24), (100000, 1)]
    assert recs[0]["volume_ml"] == pytest.approx(24 * 9.0 / 1000)
    assert recs[1]["centroid"] == [0.0, 0.0, 0.0]
    assert "mean" not in recs[0]


def test_label_names_itksnap_and_freesurfer(tmp_path):
    itk = tmp_path / "labels.txt"
    itk.write_text('# ITK-SNAP Label Description File\n'
                   '    0     0    0    0        0  0  0    "Clear Label"\n'
                   '    1   255    0    0        1  1  1    "Left kidney"\n')
    assert stats.read_label_names(itk) == {0: "Clear Label", 1: "Left kidney"}
    fs = tmp_path / "FreeSurferColorLUT.txt"
    fs.write_text("#No. Label Name:                R   G   B   A\n\n"
                  "0   Unknown                     0   0   0   0\n"
                  "17  Left-Hippocampus            220 216 20  0\n")
    assert stats.read_label_names(fs) == {0: "Unknown", 17: "Left-Hippocampus"}
    bad = tmp_path / "bad.txt"
    bad.write_text("one two three\n")
    with pytest.raises(InputError, match="line 1"):
        stats.read_label_names(bad)
    with pytest.raises(InputError):
        stats.read_label_names(tmp_path / "missing.txt")


# -- grids and options ---------------------------------------------------------------------

def test_grid_mismatch_names_both_grids():
    vol = make_volume((6, 5, 4), "int16")
    shifted = vol.affine.copy()
    shifted[:3, 3] += [0.0, 0.0, 0.01]
    with pytest.raises(InputError, match="grid differs") as err:
        stats.compute(vol, mask=Volume(data=np.ones((6, 5, 4), np.uint8), affine=shifted))
    assert err.value.exit_code == 3 and err.value.message.count("6x5x4") == 2
    with pytest.raises(InputError, match="5x5x4"):
        stats.compute_labels(vol, Volume(data=np.ones((5, 5, 4), np.uint8), affine=vol.affine))
    # within 1e-3 mm is the same grid
    near = vol.affine.copy()
    near[:3, 3] += 1e-4
    stats.compute(vol, mask=Volume(data=np.ones((6, 5, 4), np.uint8), affine=near))


def test_4d_mask_refused():
    vol = make_volume((6, 5, 4), "int16")
    with pytest.raises(InputError, match="single 3D"):
        stats.compute(vol, mask=Volume(data=np.ones((6, 5, 4, 2), np.uint8), affine=vol.affine))


def test_parse_percentiles():
    assert stats.parse_percentiles(["2 98", "50", "2,25"]) == (2.0, 98.0, 50.0, 25.0)
    assert stats.percentile_key(97.5) == "p97.5" and stats.percentile_key(2.0) == "p2"
    for bad in (["101"], ["-1"], ["x"]):
        with pytest.raises(UsageError):
            stats.parse_percentiles(bad)


@pytest.mark.parametrize("dtype,exact", [("int16", True), ("float32", False), ("uint8", True)])
def test_memory_stays_well_under_the_volume_size(tmp_path, dtype, exact):
    """Memory-mapped input, small slabs: numpy allocations peak far below the volume's size."""
    import tracemalloc

    # big enough that the 65536-bin histogram of 16-bit data is small beside it
    vol = make_volume((256, 256, 128), dtype, scaling=(0.5, -1024.0), affine=np.eye(4), seed=1)
    path = tmp_path / "big.nii"
    medconv.write(vol, path)
    back = medconv.read(path)
    nbytes = back.array.nbytes
    tracemalloc.start()
    try:
        (rec,) = stats.compute(back, exact=exact, slab_voxels=256 * 256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < nbytes / 4, (peak, nbytes)
    assert rec["count"] == vol.array.size
    assert rec["mean"] == pytest.approx(float(np.mean(vol.real(), dtype=np.float64)), rel=1e-9)


@pytest.mark.parametrize("odd,shown", [(2.5, "2.5"), (np.nan, "nan"), (np.inf, "inf")])
def test_float_label_map_with_non_integer_values_is_refused(odd, shown):
    data = np.array([[[0.0, 1.0], [odd, 2.0]], [[1.0, 1.0], [2.0, 0.0]]], dtype=np.float32)
    labels = Volume(data=data, affine=np.eye(4), path="seg.nii.gz")
    with pytest.raises(InputError, match=rf"non-integer values \(e\.g\. {shown}\); labels must be integers"):
        stats.compute_labels(labels, labels, values=False)
    # integer values stored as floats are labels like any other
    data[0, 1, 0] = 2.0
    recs = stats.compute_labels(labels, labels, values=False)
    assert [(r["label"], r["voxels"]) for r in recs] == [(1, 3), (2, 3)]


def test_releasing_pages_keeps_values_changed_in_a_copy_on_write_map(tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "RELEASE_BYTES", 0)
    vol = make_volume((64, 64, 8), "int16", affine=np.eye(4), seed=2)
    path = tmp_path / "cow.nii"
    medconv.write(vol, path)
    back = medconv.read(path)
    back.array[1, 2, 3] = 32767  # lives only in this process's private copy of the page
    (rec,) = stats.compute(back, slab_voxels=64 * 64)
    assert back.array[1, 2, 3] == 32767 and rec["max"] == 32767
    (again,) = stats.compute(back, slab_voxels=64 * 64)
    assert again == rec


def test_2d_image_with_mask_and_rgb_labels():
    rng = np.random.default_rng(4)
    img = Volume(data=rng.integers(0, 4096, size=(9, 7)).astype(np.uint16), affine=np.diag([0.5, 0.5, 1.0, 1.0]))
    mdata = np.zeros((9, 7), np.uint8)
    mdata[2:6, 1:4] = 1
    (rec,) = stats.compute(img, mask=Volume(data=mdata, affine=img.affine), percentiles=QS)
    assert_matches(rec, reference(img.array[mdata != 0]), 0.25)
    rgb = Volume(data=rng.integers(0, 256, size=(9, 7, 1, 3)).astype(np.uint8), affine=np.eye(4), value_kind="rgb")
    labels = Volume(data=(np.arange(63).reshape(9, 7, 1) % 2).astype(np.uint8), affine=np.eye(4))
    recs = stats.compute_labels(rgb, labels)
    assert [(r["channel"], r["label"]) for r in recs] == [("r", 1), ("g", 1), ("b", 1)]
    for c, rec in enumerate(recs):
        vals = rgb.array[..., c][labels.array == 1]
        assert rec["mean"] == pytest.approx(vals.mean()) and rec["max"] == vals.max()
