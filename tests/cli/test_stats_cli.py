"""`medconv stats` from the command line: renderings, options, exit codes."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, make_volume, nibabel_data, run
from medconv.volume import Volume


@pytest.fixture
def files(tmp_path):
    """An image with scaling, a mask and a label map on its grid, a shifted mask, a 4D image."""
    vol = make_volume((10, 9, 8), "int16", scaling=(0.5, -1024.0), seed=2)
    affine = np.diag([0.5, 0.75, 2.0, 1.0])  # float32-exact, so the real values survive the file
    affine[:3, 3] = [-10.0, 20.0, 5.0]
    vol = vol.replace(affine=affine)
    paths = {"img": tmp_path / "ct.nii.gz", "mask": tmp_path / "mask.nii.gz", "seg": tmp_path / "seg.nii",
             "shifted": tmp_path / "shifted.nii.gz", "bold": tmp_path / "bold.nii.gz"}
    medconv.write(vol, paths["img"])
    mdata = (np.indices((10, 9, 8))[0] >= 5).astype(np.uint8)
    medconv.write(Volume(data=mdata, affine=affine), paths["mask"])
    rng = np.random.default_rng(3)
    medconv.write(Volume(data=rng.integers(0, 3, size=(10, 9, 8)).astype(np.uint8), affine=affine),
                  paths["seg"])
    moved = affine.copy()
    moved[0, 3] += 1.0
    medconv.write(Volume(data=mdata, affine=moved), paths["shifted"])
    medconv.write(make_volume((4, 3, 2, 3), "float32", affine=affine, time_step=2.0), paths["bold"])
    return {k: str(v) for k, v in paths.items()}, vol


def real_of(path):
    return medconv.read(path).real()


def test_json_object_for_one_input_matches_numpy(files):
    paths, vol = files
    r = run("stats", paths["img"], "--json", "--percentile", "5", "50", "95")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    real = vol.real()
    assert doc["path"] == paths["img"]
    assert doc["count"] == real.size and doc["nan"] == 0
    assert doc["min"] == real.min() and doc["max"] == real.max()
    assert doc["mean"] == pytest.approx(real.mean(dtype=np.float64))
    assert doc["std"] == pytest.approx(real.std(dtype=np.float64))
    for q in (5, 50, 95):
        assert doc[f"p{q}"] == np.percentile(real, q)
    assert "p2" not in doc and doc["median"] == np.percentile(real, 50)
    vox = 0.5 * 0.75 * 2.0
    assert doc["volume_ml"] == pytest.approx(np.count_nonzero(real) * vox / 1000)


def test_default_percentiles_and_repeatable_option(files):
    paths, _ = files
    doc = json.loads(run("stats", paths["img"], "--json").out)
    assert "p2" in doc and "p98" in doc
    doc = json.loads(run("stats", paths["img"], "-p", "10", "--percentile", "90,99.5", "--json").out)
    assert {"p10", "p90", "p99.5"} <= set(doc) and "p2" not in doc


def test_json_list_for_several_inputs_in_order(files):
    paths, _ = files
    r = run("stats", paths["mask"], paths["img"], "--json")
    doc = json.loads(r.out)
    assert [d["path"] for d in doc] == [paths["mask"], paths["img"]]
    assert doc[0]["nonzero"] == 5 * 9 * 8


def test_tsv_header_then_one_row_per_input(files):
    paths, _ = files
    r = run("stats", paths["img"], paths["mask"], "--tsv")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    header = lines[0].split("\t")
    assert header[0] == "path" and "mean" in header and "p98" in header
    assert [line.split("\t")[0] for line in lines[1:]] == [paths["img"], paths["mask"]]
    row = dict(zip(header, lines[2].split("\t")))
    assert row["max"] == "1" and row["nonzero"] == str(5 * 9 * 8)


def test_get_mean_with_mask(files):
    paths, vol = files
    r = run("stats", paths["img"], "--mask", paths["mask"], "--get", "mean", "--get", "count")
    assert r.code == 0, r.err
    mean, count = r.out.strip().split("\t")
    sel = vol.real()[5:]
    assert float(mean) == pytest.approx(sel.mean(dtype=np.float64), rel=1e-9)
    assert int(count) == sel.size


def test_table_on_a_pipe(files):
    paths, _ = files
    r = run("stats", paths["img"])
    assert r.code == 0
    keys = [line.split()[0] for line in r.out.splitlines()]
    assert keys[:3] == ["path", "count", "nan"] and "volume_ml" in keys


def test_labels_rows_with_names(files, tmp_path):
    paths, vol = files
    names = tmp_path / "names.txt"
    names.write_text('    1   255 0 0 1 1 1 "Liver"\n    2   0 255 0 1 1 1 "Spleen"\n')
    r = run("stats", paths["img"], "--labels", paths["seg"], "--label-names", names, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    seg = medconv.read(paths["seg"]).array
    assert [(d["label"], d["name"]) for d in doc] == [(1, "Liver"), (2, "Spleen")]
    for d in doc:
        sel = seg == d["label"]
        assert d["voxels"] == sel.sum()
        assert d["volume_ml"] == pytest.approx(sel.sum() * 0.75 / 1000)
        assert d["mean"] == pytest.approx(vol.real()[sel].mean(dtype=np.float64))
        assert len(d["centroid"]) == 3


def test_labels_alone_give_label_volumes(files):
    paths, _ = files
    seg = medconv.read(paths["seg"]).array
    r = run("stats", "--labels", paths["seg"], "--tsv")
    assert r.code == 0, r.err
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert lines[0] == ["path", "label", "voxels", "volume_mm3", "volume_ml", "centroid_x", "centroid_y",
                        "centroid_z"]
    assert [(row[1], int(row[2])) for row in lines[1:]] == [("1", (seg == 1).sum()), ("2", (seg == 2).sum())]
    r = run("stats", paths["seg"], "--labels", paths["seg"], "--get", "volume_ml")
    assert [float(v) for v in r.out.split()] == pytest.approx([(seg == k).sum() * 0.75 / 1000 for k in (1, 2)])


def test_4d_rows_per_volume_and_pooled(files):
    paths, _ = files
    real = real_of(paths["bold"])
    doc = json.loads(run("stats", paths["bold"], "--json").out)
    assert [d["volume"] for d in doc] == [0, 1, 2]
    assert [d["mean"] for d in doc] == pytest.approx([real[..., t].mean(dtype=np.float64) for t in range(3)])
    doc = json.loads(run("stats", paths["bold"], "--pooled", "--json").out)
    assert isinstance(doc, dict) and doc["count"] == real.size


def test_real_nibabel_file():
    path = nibabel_data("example4d.nii.gz")
    import nibabel

    data = nibabel.load(path).get_fdata()
    r = run("stats", path, "--pooled", "--get", "mean", "--get", "p98")
    mean, p98 = (float(v) for v in r.out.split("\t"))
    assert mean == pytest.approx(data.mean())
    assert p98 == pytest.approx(np.percentile(data, 98))


# -- errors --------------------------------------------------------------------------------

def test_grid_mismatch_exit_3_with_both_grids(files):
    paths, _ = files
    r = run("stats", paths["img"], "--mask", paths["shifted"])
    assert_clean_error(r, 3, "grid", "(-10,20,5)", "(-9,20,5)", "10x9x8")


def test_bad_mask_path_exit_3(files, tmp_path):
    paths, _ = files
    assert_clean_error(run("stats", paths["img"], "--mask", tmp_path / "nope.nii.gz"), 3, "nope.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image at all" * 10)
    assert_clean_error(run("stats", paths["img"], "--labels", junk), 3)


def test_bad_inputs_and_keep_going(files, tmp_path):
    paths, _ = files
    missing = str(tmp_path / "missing.nii")
    assert_clean_error(run("stats", missing), 3, "missing.nii")
    r = run("stats", paths["img"], missing, paths["mask"], "--keep-going", "--tsv")
    assert_clean_error(r, 5, "1 of 3")
    assert [line.split("\t")[0] for line in r.out.splitlines()[1:]] == [paths["img"], paths["mask"]]
    truncated = tmp_path / "trunc.nii"
    with open(paths["seg"], "rb") as fh:
        data = fh.read()
    truncated.write_bytes(data[: len(data) // 2])
    assert_clean_error(run("stats", truncated), 3)


@pytest.mark.parametrize("argv,needle", [
    ((), "no input"),
    (("--percentile", "150"), "outside"),
    (("--percentile", "abc"), "not a number"),
    (("--tsv", "--json"), "--tsv"),
    (("--label-names", "x.txt"), "--labels"),
    (("--get", "nosuch"), "unknown field"),
    (("--labels", "seg.nii", "-p", "5"), "label rows"),
])
def test_usage_errors_exit_2(files, argv, needle):
    paths, _ = files
    args = argv if argv == () else (paths["img"],) + argv
    assert_clean_error(run("stats", *args), 2, needle)


def test_bad_label_names_file_exit_3(files, tmp_path):
    paths, _ = files
    bad = tmp_path / "names.txt"
    bad.write_text("this is not a table\n")
    assert_clean_error(run("stats", paths["img"], "--labels", paths["seg"], "--label-names", bad), 3, "line 1")


def test_help_states_definitions():
    r = run("stats", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert "ddof=0" in text and "'linear'" in text and "numpy.percentile" in text
    assert not os.environ.get("MEDCONV_DEBUG")


def test_no_percentiles_background_and_pooled_labels(files):
    paths, _ = files
    doc = json.loads(run("stats", paths["img"], "--no-percentiles", "--json").out)
    assert "median" not in doc and "p2" not in doc and "mean" in doc
    assert_clean_error(run("stats", paths["img"], "--no-percentiles", "-p", "5"), 2, "--no-percentiles")
    seg = medconv.read(paths["seg"]).array
    r = run("stats", paths["seg"], "--labels", paths["seg"], "--background", "--get", "label", "--get", "voxels")
    assert r.out.split("\n")[0] == f"0\t{(seg == 0).sum()}"
    r = run("stats", paths["bold"], "--labels", paths["seg"], "--json")
    assert_clean_error(r, 3, "label map grid")


def test_label_volumes_of_many_segmentations(files, tmp_path):
    paths, _ = files
    other = tmp_path / "seg2.nii.gz"
    medconv.write(Volume(data=np.full((3, 2, 2), 4, np.uint8), affine=np.diag([2.0, 2.0, 2.0, 1.0])), other)
    seg = medconv.read(paths["seg"]).array
    r = run("stats", paths["seg"], other, "--label-volumes", "--tsv")
    assert r.code == 0, r.err
    rows = [line.split("\t")[:3] for line in r.out.splitlines()[1:]]
    assert rows == [[paths["seg"], "1", str((seg == 1).sum())], [paths["seg"], "2", str((seg == 2).sum())],
                    [str(other), "4", "12"]]
    assert_clean_error(run("stats", other, "--label-volumes", "--labels", other), 2, "--label-volumes")


def test_label_rows_are_a_json_list_even_for_one_label(tmp_path):
    one = tmp_path / "one.nii.gz"
    medconv.write(Volume(data=np.ones((3, 2, 2), np.uint8), affine=np.eye(4)), one)
    doc = json.loads(run("stats", "--labels", one, "--json").out)
    assert isinstance(doc, list) and doc[0]["voxels"] == 12


def test_all_inputs_failing_prints_no_table(tmp_path):
    r = run("stats", tmp_path / "a.nii", tmp_path / "b.nii", "--keep-going", "--tsv")
    assert_clean_error(r, 5, "2 of 2")
    assert r.out == ""


def test_percentiles_before_the_path_and_no_heavy_imports(files):
    import subprocess
    import sys

    paths, vol = files
    code = ("import sys, json\nfrom medconv.cli import main\n"
            "try:\n    main(['stats', '--percentile', '2', '98', sys.argv[1], '--json'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('SimpleITK', 'pydicom', 'nibabel', 'PIL', 'h5py') if m in sys.modules]\n"
            "print(json.dumps(heavy))\n")
    proc = subprocess.run([sys.executable, "-c", code, paths["img"]], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert json.loads(out[-1]) == []
    doc = json.loads("\n".join(out[:-1]))
    assert doc["p98"] == np.percentile(vol.real(), 98)


def test_dicom_ct_in_hounsfield_units():
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    doc = json.loads(run("stats", path, "--json").out)
    assert doc["min"] == hu.min() and doc["max"] == hu.max()
    assert doc["p98"] == np.percentile(hu, 98)  # 570.68, not a float32 rounding of it
    assert doc["mean"] == pytest.approx(hu.mean(), rel=1e-12)


def test_series_selects_dicom_and_is_ignored_elsewhere(files):
    from pydicom.data import get_testdata_file

    paths, _ = files
    path = get_testdata_file("CT_small.dcm")
    assert run("stats", path, "--series", "1", "--get", "count").out.strip() == "16384"
    r = run("stats", path, "--series", "99")
    assert r.code in (2, 3) and r.err.startswith("medconv: error:") and "99" in r.err
    assert run("stats", paths["img"], "--series", "99", "--get", "count").out.strip() == str(10 * 9 * 8)
