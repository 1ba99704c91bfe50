"""medconv stats at the edges: empty label maps and masks, non-integer labels, wide int32, label-name files."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, run
from medconv import stats
from medconv.volume import Volume

AFFINE = np.diag([0.8, 0.9, 2.5, 1.0])


@pytest.fixture
def maps(tmp_path):
    lab = np.zeros((6, 5, 4), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    lab[4, 4, 3] = 7
    paths = {}
    for name, data in {"lab": lab, "empty": np.zeros_like(lab), "mask": (lab > 0).astype(np.uint8),
                       "img": np.arange(lab.size, dtype=np.int16).reshape(lab.shape)}.items():
        paths[name] = tmp_path / f"{name}.nii.gz"
        medconv.write(Volume(data=data, affine=AFFINE), paths[name])
    return paths


# -- 2: a label map without labels ---------------------------------------------------------
def test_empty_label_map_every_rendering(maps):
    r = run("stats", "--labels", maps["empty"], "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == []
    assert f"no label values in {maps['empty']}" in r.err

    r = run("stats", "--labels", maps["empty"], "--tsv")
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["\t".join(["path", "label", "voxels", "volume_mm3", "volume_ml",
                                             "centroid_x", "centroid_y", "centroid_z"])]

    r = run("stats", "--labels", maps["empty"])
    assert r.code == 0 and r.out == "" and "no label values" in r.err
    assert run("stats", "--labels", maps["empty"], "-q").err == ""


def test_empty_label_map_in_a_batch_keeps_the_table(maps):
    r = run("stats", maps["lab"], maps["empty"], "--label-volumes", "--tsv")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("path\tlabel\tvoxels")
    assert [l.split("\t")[:3] for l in lines[1:]] == [[str(maps["lab"]), "1", "8"], [str(maps["lab"]), "7", "1"]]
    assert f"no label values in {maps['empty']}" in r.err
    r = run("stats", maps["empty"], maps["empty"], "--label-volumes", "--tsv")
    assert r.code == 0 and len(r.out.splitlines()) == 1


def test_empty_mask_with_labels(maps):
    r = run("stats", maps["img"], "--mask", maps["empty"], "--labels", maps["lab"], "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == []
    assert "inside mask" in r.err
    r = run("stats", maps["img"], "--mask", maps["empty"], "--labels", maps["lab"], "--tsv")
    assert r.code == 0 and r.out.splitlines()[0].split("\t")[:4] == ["path", "label", "voxels", "nan"]
    assert len(r.out.splitlines()) == 1


# -- 12: an empty mask is a row of count 0, documented ------------------------------------
def test_empty_mask_row_and_help(maps):
    r = run("stats", maps["img"], "--mask", maps["empty"], "--json")
    assert r.code == 0, r.err
    rec = json.loads(r.out)
    assert rec["count"] == 0 and rec["mean"] is None and rec["median"] is None and rec["volume_ml"] == 0
    text = " ".join(run("stats", "--help").out.split())
    assert "count 0" in text and "exit 0" in text and "no label values" in text


# -- 3: labels are integers -----------------------------------------------------------------
@pytest.mark.parametrize("odd,shown", [(2.5, "2.5"), (np.nan, "nan")])
def test_non_integer_label_map_is_an_input_error(tmp_path, maps, odd, shown):
    data = np.zeros((6, 5, 4), np.float32)
    data[1, 1, 1] = 1.0
    data[2, 2, 2] = odd
    path = tmp_path / "flab.nii.gz"
    medconv.write(Volume(data=data, affine=AFFINE), path)
    for argv in ([maps["img"], "--labels", path], ["--labels", path], [path, "--label-volumes"]):
        r = run("stats", *argv, "--json")
        assert_clean_error(r, 3, str(path), f"non-integer values (e.g. {shown})", "labels must be integers")
        assert r.out == ""


def test_scaled_label_map_giving_fractions_is_refused(tmp_path, maps):
    path = tmp_path / "scaled.nii"
    medconv.write(Volume(data=np.arange(120, dtype=np.int16).reshape(6, 5, 4), affine=AFFINE,
                         scaling=(0.5, 0.0)), path)
    assert_clean_error(run("stats", "--labels", path), 3, "non-integer values (e.g. 0.5)")


# -- 9: int32 spanning [-2e9, 2e9]: order statistics interpolated without overflow ----------
def test_wide_int32_median_within_range_and_no_warnings(tmp_path):
    data = np.array([-2_000_000_000, 2_000_000_000, 1_999_999_999, -1_999_999_999] * 15, np.int32).reshape(4, 5, 3)
    vol = Volume(data=data, affine=np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        (rec,) = stats.compute(vol, percentiles=(2, 33.3, 50, 98))
    real = data.astype(np.float64)
    assert rec["min"] <= rec["median"] <= rec["max"]
    assert rec["median"] == np.median(real)
    for q in (2, 33.3, 98):
        assert rec[stats.percentile_key(q)] == np.percentile(real, q)
    path = tmp_path / "wide.nii"
    medconv.write(vol, path)
    r = run("stats", path, "--json")
    assert r.code == 0 and r.err == "", r.err
    assert json.loads(r.out)["median"] == 0.0


# -- 13: a label names file saved with a UTF-8 byte order mark -------------------------------
def test_label_names_with_bom(tmp_path, maps):
    names = tmp_path / "names.txt"
    names.write_bytes("\ufeff".encode() + b'1 0 118 14 1 1 1 "Left"\n7 255 0 0 1 1 1 "Tumour"\n')
    assert stats.read_label_names(names) == {1: "Left", 7: "Tumour"}
    lut = tmp_path / "lut.txt"
    lut.write_bytes("\ufeff".encode() + b"1  Left-Thalamus  0 118 14 0\n7  Tumour  255 0 0 0\n")
    r = run("stats", "--labels", maps["lab"], "--label-names", lut, "--json")
    assert r.code == 0, r.err
    assert [(d["label"], d["name"]) for d in json.loads(r.out)] == [(1, "Left-Thalamus"), (7, "Tumour")]


@pytest.mark.parametrize("dtype,extra", [("int16", ()), ("uint8", ()), ("int8", ("--pooled",)),
                                         ("float32", ("--no-percentiles",)), ("int32", ("--no-percentiles",))])
def test_nii_gz_streamed_while_inflating_gives_the_same_numbers(tmp_path, dtype, extra):
    """A .nii.gz is read slab by slab while it inflates (one pass, memory of a slab): every field
    equals the memory-mapped .nii path, with scaling, a mask and 4D."""
    import json

    import nibabel as nib

    from helpers import run

    rng = np.random.default_rng(5)
    info = np.iinfo(dtype) if dtype.startswith(("int", "uint")) else None
    lo, hi = (max(info.min, -3000), min(info.max, 3000)) if info else (-3000, 3000)
    data = rng.integers(lo, hi, size=(23, 17, 40, 3)).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([0.7, 0.8, 1.5, 1.0]))
    img.header.set_slope_inter(0.25, -7.5)
    nib.save(img, tmp_path / "v.nii")
    nib.save(img, tmp_path / "v.nii.gz")
    mask = (rng.random((23, 17, 40)) > 0.3).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, img.affine), tmp_path / "m.nii.gz")
    out = {}
    for name in ("v.nii", "v.nii.gz"):
        r = run("stats", tmp_path / name, "--mask", tmp_path / "m.nii.gz", "--json", *extra)
        assert r.code == 0, r.err
        out[name] = [{k: v for k, v in rec.items() if k != "path"} for rec in json.loads(r.out)] \
            if r.out.lstrip().startswith("[") else [{k: v for k, v in json.loads(r.out).items() if k != "path"}]
    assert len(out["v.nii"]) == len(out["v.nii.gz"])
    for a, b in zip(out["v.nii"], out["v.nii.gz"]):
        assert a.keys() == b.keys()
        for key in a:  # exact, up to the order moments are combined in (slab sizes differ)
            assert b[key] == (pytest.approx(a[key], rel=1e-12) if isinstance(a[key], float) else a[key]), key


def test_stream_is_used_for_a_nii_gz(tmp_path, monkeypatch):
    """The .nii.gz path never builds the whole array (the loader is not called)."""
    import nibabel as nib

    import medconv
    from medconv import stats

    nib.save(nib.Nifti1Image(np.arange(4000, dtype=np.int16).reshape(20, 20, 10), np.eye(4)), tmp_path / "a.nii.gz")
    vol = medconv.read(str(tmp_path / "a.nii.gz"), header_only=True)

    def boom():
        raise AssertionError("whole volume loaded")

    vol.loader = boom
    rec = stats.compute(vol)[0]
    assert rec["count"] == 4000 and rec["median"] == 1999.5


def test_uint64_beyond_int64_is_counted_without_overflow(tmp_path):
    import json

    import nibabel as nib

    from helpers import run

    a = (np.arange(1000, dtype=np.uint64) + np.uint64(2**63 + 5)).reshape(10, 10, 10)
    nib.save(nib.Nifti1Image(a, np.eye(4), dtype=np.uint64), tmp_path / "u64.nii.gz")
    r = run("stats", tmp_path / "u64.nii.gz", "--json")
    assert r.code == 0, r.err
    rec = json.loads(r.out)
    assert rec["min"] == 2**63 + 5 and rec["max"] == 2**63 + 1004
    ref = a.astype(np.float64)
    assert rec["mean"] == pytest.approx(ref.mean(), rel=1e-12)
    assert rec["median"] == pytest.approx(float(np.median(ref)), rel=1e-12)


def test_mask_is_its_real_values(tmp_path):
    """A mask's own slope/intercept count: stored 0/1 with intercept -1 selects the stored zeros."""
    import nibabel as nib

    from helpers import run

    rng = np.random.default_rng(2)
    data = rng.integers(-100, 100, size=(8, 7, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "img.nii.gz")
    stored = (rng.random((8, 7, 6)) > 0.5).astype(np.int16)
    m = nib.Nifti1Image(stored, np.eye(4))
    m.header.set_slope_inter(1.0, -1.0)
    nib.save(m, tmp_path / "mask.nii.gz")
    r = run("stats", tmp_path / "img.nii.gz", "--mask", tmp_path / "mask.nii.gz", "--get", "count", "--get", "mean")
    count, mean = r.out.split()
    sel = data[stored == 0]  # real mask value -1 where stored 0: non-zero
    assert int(count) == sel.size and float(mean) == pytest.approx(sel.mean(), rel=1e-9)


def test_get_keeps_one_line_per_input_when_one_fails(tmp_path):
    """--get over several inputs under -k: a failed input keeps its (empty) line, so line N is input N."""
    import nibabel as nib

    from helpers import run

    for name, k in (("a.nii", 1), ("c.nii", 2)):
        nib.save(nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2) * k, np.eye(4)), tmp_path / name)
    (tmp_path / "b.nii").write_bytes(b"junk" * 100)
    r = run("stats", tmp_path / "a.nii", tmp_path / "b.nii", tmp_path / "c.nii", "-k", "--get", "mean")
    assert r.code == 5
    assert r.out.split("\n")[:3] == ["3.5", "", "7"]
    assert_unknown = run("stats", tmp_path / "a.nii", "--get", "nope")
    assert assert_unknown.code == 2 and assert_unknown.out == ""
