"""medconv diff: identical pairs across formats, each kind of difference, folders, unreadable inputs."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, oblique_affine, run
from medconv import diff
from medconv.volume import Volume


def _vol(data=None, affine=None, scaling=(2.0, -100.0), **kw):
    if data is None:
        data = np.random.default_rng(0).integers(0, 1000, (9, 8, 7)).astype(np.int16)
    return Volume(data=data, affine=oblique_affine() if affine is None else affine, scaling=scaling, **kw)


@pytest.mark.parametrize("ext", [".mha", ".nrrd", ".nii", ".mgz", ".hdr"])
def test_identical_pairs_across_formats(tmp_path, ext):
    vol = _vol(affine=np.diag([0.8, 0.9, 2.5, 1.0]) if ext == ".mgz" else None,
               scaling=None if ext in (".mgz",) else (2.0, -100.0))
    a, b = tmp_path / "a.nii.gz", tmp_path / f"b{ext}"
    medconv.write(vol, a)
    medconv.write(vol, b)
    r = run("diff", a, b)
    assert r.code == 0, r.out + r.err
    assert r.out == "" and r.err == ""
    doc = json.loads(run("diff", a, b, "--json").out)
    assert doc["same"] is True and doc["differences"] == [] and doc["values"]["differing"] == 0


def test_dicom_series_against_the_nifti_made_from_it(tmp_path):
    data = np.random.default_rng(1).integers(-1000, 2000, (6, 5, 4)).astype(np.int16)
    medconv.write(Volume(data=data, affine=np.diag([0.7, 0.7, 2.0, 1.0])), str(tmp_path / "dcm") + "/")
    assert run("convert", tmp_path / "dcm", tmp_path / "ct.nii.gz").code == 0
    r = run("diff", tmp_path / "dcm", tmp_path / "ct.nii.gz")
    assert r.code == 0, r.out + r.err


def test_one_voxel_differs(tmp_path):
    vol = _vol()
    data = vol.data.copy()
    data[3, 4, 5] += 7
    medconv.write(vol, tmp_path / "a.nii.gz")
    medconv.write(vol.replace(data=data), tmp_path / "b.mha")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.mha")
    assert r.code == 1
    assert "1 of 504 voxels differ" in r.out and "largest difference 14" in r.out
    assert "voxel [3, 4, 5]" in r.out
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "b.mha", "--json").out)
    v = doc["values"]
    assert v["differing"] == 1 and v["share"] == pytest.approx(1 / 504) and v["max_difference"] == 14
    assert v["max_at"]["index"] == [3, 4, 5]
    world = oblique_affine() @ np.array([3, 4, 5, 1.0])
    assert v["max_at"]["world"] == pytest.approx(world[:3], abs=1e-3)
    assert [d["field"] for d in doc["differences"]] == ["values"]
    r = run("diff", "-q", tmp_path / "a.nii.gz", tmp_path / "b.mha")
    assert r.code == 1 and r.out == "" and r.err == ""


def test_largest_and_first_difference_in_file_order():
    data = np.zeros((4, 3, 2), np.float32)
    other = data.copy()
    other[2, 0, 0] = 1.0  # first in file order (i fastest)
    other[0, 1, 1] = 5.0  # largest, later
    other[3, 2, 1] = 5.0  # as large, even later: the first one is reported
    res = diff.compare(Volume(data=data), Volume(data=other))
    v = res["values"]
    assert v["first_at"]["index"] == [2, 0, 0] and v["max_at"]["index"] == [0, 1, 1]
    assert v["differing"] == 3 and v["max_difference"] == 5.0


def test_slabs_give_the_same_answer_as_one_pass(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 100, (16, 12, 30)).astype(np.int16)
    other = data.copy()
    other[5, 6, 20] = 999
    other[1, 2, 25] = 500
    medconv.write(Volume(data=data), tmp_path / "a.nii.gz")
    medconv.write(Volume(data=other), tmp_path / "b.nii.gz")
    small = diff.compare(str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), slab_voxels=16 * 12)
    big = diff.compare(str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"))
    assert small["values"] == big["values"]
    assert small["values"]["max_at"]["index"] == [5, 6, 20] and small["values"]["first_at"]["index"] == [5, 6, 20]


def test_geometry_by_a_hundredth_of_a_millimetre(tmp_path):
    vol = _vol()
    moved = vol.affine.copy()
    moved[:3, 3] += [0.01, 0, 0]
    medconv.write(vol, tmp_path / "a.nii.gz")
    medconv.write(vol.replace(affine=moved), tmp_path / "b.nii.gz")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
    assert r.code == 1 and "affine: corner voxels up to 0.01 mm apart" in r.out
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--json").out)
    assert [d["field"] for d in doc["differences"]] == ["affine"]
    assert doc["differences"][0]["max_mm"] == pytest.approx(0.01, abs=1e-4)
    assert run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--atol-mm", "0.02").code == 0


def test_shape_dtype_value_kind_and_time_step():
    base = Volume(data=np.zeros((4, 4, 4), np.int16))
    r = diff.compare(base, Volume(data=np.zeros((4, 4, 5), np.int16)))
    assert [d["field"] for d in r["differences"]] == ["shape"] and r["values"] is None
    r = diff.compare(base, Volume(data=np.zeros((4, 4, 4), np.int32)))
    assert [d["field"] for d in r["differences"]] == ["dtype"] and r["values"]["differing"] == 0
    assert diff.compare(base, Volume(data=np.zeros((4, 4, 4), np.int32)), dtype=False)["same"]
    r = diff.compare(base, Volume(data=np.zeros((4, 4, 4), np.int16), value_kind="label"))
    assert [d["field"] for d in r["differences"]] == ["value_kind"]
    a = Volume(data=np.zeros((3, 3, 3, 2), np.int16), time_step=2.0)
    b = Volume(data=np.zeros((3, 3, 3, 2), np.int16), time_step=2.5)
    assert [d["field"] for d in diff.compare(a, b)["differences"]] == ["time_step"]


def test_dtype_difference_through_the_cli(tmp_path):
    data = np.arange(64, dtype=np.int16).reshape(4, 4, 4)
    medconv.write(Volume(data=data), tmp_path / "a.nii.gz")
    medconv.write(Volume(data=data.astype(np.float32)), tmp_path / "b.nii.gz")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
    assert r.code == 1 and "dtype: int16 vs float32" in r.out
    assert run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--ignore-dtype").code == 0


def test_real_values_after_scaling_and_tolerances():
    stored = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    a = Volume(data=stored, scaling=(2.0, 10.0))
    b = Volume(data=(stored * 2 + 10).astype(np.float32))
    assert diff.compare(a, b, dtype=False)["same"]  # the same real values, stored differently
    c = Volume(data=(stored * 2 + 10).astype(np.float32) + 0.25)
    assert diff.compare(b, c)["values"]["differing"] == 27
    assert diff.compare(b, c, atol=0.25)["same"]
    assert diff.compare(b, c, rtol=0.25 / 10)["same"]
    assert not diff.compare(b, c, rtol=0.001)["same"]


def test_nan_equals_nan_but_not_a_number():
    a = np.zeros((3, 3, 3), np.float32)
    a[1, 1, 1] = np.nan
    b = a.copy()
    assert diff.compare(Volume(data=a), Volume(data=b))["same"]
    assert diff.compare(Volume(data=a), Volume(data=b), atol=1.0)["same"]
    b[1, 1, 1] = 0.0
    r = diff.compare(Volume(data=a), Volume(data=b))
    assert r["values"]["differing"] == 1 and r["values"]["max_difference"] == float("inf")
    r = run_json_safe(r)
    assert r["values"]["max_difference"] is None  # JSON has no infinity


def run_json_safe(result):
    from medconv.values import jsonable

    return json.loads(json.dumps(jsonable(result), allow_nan=False))


def test_rgb_values():
    a = np.zeros((3, 3, 2, 3), np.uint8)
    b = a.copy()
    b[1, 2, 1, 2] = 9
    r = diff.compare(Volume(data=a, value_kind="rgb"), Volume(data=b, value_kind="rgb"))
    assert r["values"]["differing"] == 1 and r["values"]["compared"] == 18
    assert r["values"]["first_at"]["index"] == [1, 2, 1] and r["values"]["first_at"]["b"] == [0, 0, 9]


def test_header_fields_both_files_have(tmp_path):
    vol = _vol()
    medconv.write(vol, tmp_path / "a.nii.gz")
    medconv.write(vol, tmp_path / "b.nii.gz")
    medconv.write(vol, tmp_path / "c.nii")
    raw = bytearray((tmp_path / "c.nii").read_bytes())
    raw[148:148 + 80] = b"changed".ljust(80, b"\0")  # descrip
    (tmp_path / "c.nii").write_bytes(bytes(raw))
    assert run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--header").code == 0
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "c.nii", "--header", "--json").out)
    fields = [d["field"] for d in doc["differences"]]
    assert "header.descrip" in fields and doc["header_fields"] > 20
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "c.nii", "--header")
    assert r.code == 1 and "header.descrip" in r.out
    assert run("diff", tmp_path / "a.nii.gz", tmp_path / "c.nii").code == 0  # values and geometry agree
    raw[148:148 + 80] = b"red\x1b[31m".ljust(80, b"\0")  # a control character in a header value
    (tmp_path / "c.nii").write_bytes(bytes(raw))
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "c.nii", "--header")
    assert r.code == 1 and "\x1b" not in r.out and "red\\x1b[31m" in r.out


def test_unreadable_inputs_exit_3(tmp_path):
    medconv.write(_vol(), tmp_path / "a.nii.gz")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "missing.nii.gz")
    assert_clean_error(r, 3, "missing.nii.gz", "no such file")
    (tmp_path / "bad.nii").write_bytes(b"\x5c\x01\x00\x00" + b"\x00" * 100)
    r = run("diff", tmp_path / "bad.nii", tmp_path / "a.nii.gz")
    assert_clean_error(r, 3, "bad.nii")
    (tmp_path / "text.txt").write_text("hello")
    r = run("diff", tmp_path / "text.txt", tmp_path / "a.nii.gz")
    assert_clean_error(r, 3, "text.txt")
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes((tmp_path / "a.nii.gz").read_bytes()[:-40])
    r = run("diff", tmp_path / "a.nii.gz", trunc)
    assert_clean_error(r, 3, "trunc.nii.gz")
    assert r.out == ""


def test_bad_options_are_usage_errors(tmp_path):
    medconv.write(_vol(), tmp_path / "a.nii.gz")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "a.nii.gz", "--atol", "-1")
    assert_clean_error(r, 2, "--atol")
    r = run("diff", tmp_path / "a.nii.gz")
    assert r.code == 2 and "Traceback" not in r.err


def _tree(root, vol, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        medconv.write(vol, path)


def test_folders_paired_by_relative_path(tmp_path):
    vol = _vol()
    a, b = tmp_path / "a", tmp_path / "b"
    names = ["x.nii.gz", "sub/y.mha", "sub/z.hdr"]
    _tree(a, vol, names)
    _tree(b, vol, names)
    (a / "notes.json").write_text('{"k": 1}')
    (b / "notes.json").write_text('{"k": 1}')
    r = run("diff", a, b, "-j", "2")
    assert r.code == 0, r.out + r.err
    assert r.out == ""
    # a missing file, one changed voxel, one changed sidecar
    os.unlink(b / "sub" / "y.mha")
    changed = vol.data.copy()
    changed[0, 0, 0] += 1
    medconv.write(vol.replace(data=changed), b / "x.nii.gz", force=True)
    (b / "notes.json").write_text('{"k": 2}')
    (b / "extra.nii.gz").write_bytes((a / "x.nii.gz").read_bytes())
    r = run("diff", a, b)
    assert r.code == 1
    assert f"only in {a}: {a / 'sub' / 'y.mha'}" in r.out
    assert f"only in {b}: {b / 'extra.nii.gz'}" in r.out
    assert "x.nii.gz" in r.out and "1 of 504 voxels differ" in r.out
    assert "content differs" in r.out
    assert "z.img" not in r.out  # the data file of a pair is part of its header's image
    doc = json.loads(run("diff", a, b, "--json").out)
    assert doc["same"] is False and doc["only_a"] == [str(a / "sub" / "y.mha")]
    assert doc["only_b"] == [str(b / "extra.nii.gz")]
    assert sorted(p["same"] for p in doc["pairs"]) == [False, False, True]
    assert run("diff", "-q", a, b).out == ""


def test_folders_pair_dicom_series_by_uid(tmp_path):
    rng = np.random.default_rng(5)
    vol1 = Volume(data=rng.integers(0, 500, (6, 5, 4)).astype(np.int16), affine=np.diag([0.7, 0.7, 2.0, 1.0]))
    vol2 = Volume(data=rng.integers(0, 500, (6, 5, 3)).astype(np.int16), affine=np.diag([0.5, 0.5, 3.0, 1.0]))
    medconv.write(vol1, str(tmp_path / "a" / "s1") + "/")
    medconv.write(vol2, str(tmp_path / "a" / "s2") + "/")
    # the other tree holds the same files under other folder and file names
    b = tmp_path / "b"
    for n, series in enumerate(("s1", "s2")):
        for i, name in enumerate(sorted(os.listdir(tmp_path / "a" / series))):
            (b / f"export{n}").mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "a" / series / name, b / f"export{n}" / f"IM{i:04d}")
    r = run("diff", tmp_path / "a", b)
    assert r.code == 0, r.out + r.err
    doc = json.loads(run("diff", tmp_path / "a", b, "--json").out)
    assert len(doc["pairs"]) == 2 and doc["only_a"] == doc["only_b"] == []
    # a slice of series 2 lost on one side: that series differs, series 1 still pairs
    os.unlink(sorted((b / "export1").iterdir())[1])
    r = run("diff", tmp_path / "a", b)
    assert r.code in (1, 3), r.out + r.err
    assert "Traceback" not in r.err


def test_folder_with_unreadable_file_exits_3_after_reporting_the_rest(tmp_path):
    vol = _vol()
    a, b = tmp_path / "a", tmp_path / "b"
    _tree(a, vol, ["x.nii.gz", "y.nii.gz"])
    _tree(b, vol, ["x.nii.gz"])
    (b / "y.nii.gz").write_bytes((a / "y.nii.gz").read_bytes()[:-30])
    r = run("diff", a, b)
    assert r.code == 3
    assert "y.nii.gz" in r.err and "Traceback" not in r.err
    assert r.err.strip().splitlines()[-1].startswith("medconv: error:")


def test_folder_against_a_file_is_compared_as_images(tmp_path):
    medconv.write(_vol(), tmp_path / "a.nii.gz")
    (tmp_path / "d").mkdir()
    r = run("diff", tmp_path / "d", tmp_path / "a.nii.gz")
    assert_clean_error(r, 3)


def test_header_across_formats_says_nothing_was_in_common(tmp_path):
    vol = _vol()
    medconv.write(vol, tmp_path / "a.nii.gz")
    medconv.write(vol, tmp_path / "b.mha")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.mha", "--header")
    assert r.code == 0 and "no native header field in common" in r.err and r.out == ""


def test_compressed_nifti_is_compared_slab_by_slab_without_loading(tmp_path):
    data = np.random.default_rng(2).integers(0, 50, (10, 9, 8)).astype(np.int16)
    medconv.write(Volume(data=data), tmp_path / "a.nii.gz")
    medconv.write(Volume(data=data), tmp_path / "b.nii.gz")
    va = medconv.read(tmp_path / "a.nii.gz", header_only=True)
    vb = medconv.read(tmp_path / "b.nii.gz", header_only=True)
    assert diff.compare(va, vb, slab_voxels=90)["same"]
    assert va.data is None and vb.data is None  # inflated as streamed, never held whole


def test_rasters_and_kinds(tmp_path):
    from PIL import Image

    a = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    b = a.copy()
    b[5, 7] = 0
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    Image.fromarray(np.stack([a, a, a], -1)).save(tmp_path / "c.png")
    r = run("diff", tmp_path / "a.png", tmp_path / "b.png")
    assert r.code == 1 and "voxel [7, 5]" in r.out
    r = run("diff", tmp_path / "a.png", tmp_path / "c.png")
    assert r.code == 1 and "value_kind: scalar vs rgb" in r.out


def test_dicom_series_written_twice_pair_by_folder_despite_new_uids(tmp_path):
    data = np.random.default_rng(7).integers(0, 500, (6, 5, 4)).astype(np.int16)
    vol = Volume(data=data, affine=np.diag([0.7, 0.7, 2.0, 1.0]))
    medconv.write(vol, str(tmp_path / "a" / "ct") + "/")
    medconv.write(vol, str(tmp_path / "b" / "ct") + "/")  # new UIDs
    doc = json.loads(run("diff", tmp_path / "a", tmp_path / "b", "--json").out)
    assert len(doc["pairs"]) == 1 and doc["same"] is True
    changed = data.copy()
    changed[1, 1, 1] += 3
    medconv.write(vol.replace(data=changed), str(tmp_path / "c" / "ct") + "/")
    r = run("diff", tmp_path / "a", tmp_path / "c")
    assert r.code == 1 and "1 of 120 voxels differ" in r.out
    r = run("diff", tmp_path / "a", tmp_path / "c", "--header", "--json")
    fields = [d["field"] for p in json.loads(r.out)["pairs"] for d in p["differences"]]
    assert "header.SeriesInstanceUID" in fields


def test_folder_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    from helpers import run_on_terminal

    monkeypatch.setenv("MEDCONV_PROGRESS_DELAY", "0")  # show it at once

    vol = _vol()
    _tree(tmp_path / "a", vol, ["x.nii.gz", "y.nii.gz", "z.nii.gz"])
    _tree(tmp_path / "b", vol, ["x.nii.gz", "y.nii.gz", "z.nii.gz"])
    r = run_on_terminal("diff", tmp_path / "a", tmp_path / "b", "-j", "2")
    assert r.code == 0 and r.out == ""
    assert "diff" in r.err and "3/3" in r.err


def test_4d_difference_is_located_in_its_volume(tmp_path):
    data = np.zeros((5, 4, 3, 3), np.int16)
    other = data.copy()
    other[4, 3, 2, 1] = 9
    medconv.write(Volume(data=data, time_step=2.0), tmp_path / "a.nii.gz")
    medconv.write(Volume(data=other, time_step=2.0), tmp_path / "b.nii.gz")
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--json").out)
    assert doc["values"]["first_at"]["index"] == [4, 3, 2, 1]
    assert doc["values"]["compared"] == 180 and doc["values"]["differing"] == 1


def test_same_world_grid_in_another_voxel_order(tmp_path):
    vol = _vol(affine=np.diag([0.8, 0.9, 2.5, 1.0]))
    turned = vol.reoriented("LPI")
    medconv.write(vol, tmp_path / "a.nii.gz")
    medconv.write(turned, tmp_path / "b.nii.gz")
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
    assert r.code == 0, r.out
    assert "another voxel order" in r.err and r.out == ""
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--json").out)
    assert doc["layout"] == {"a": "RAS", "b": "LPI"} and doc["same"]
    r = run("diff", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "--same-layout")
    assert r.code == 1 and "layout: the same world grid stored in another voxel order (RAS vs LPI)" in r.out
    # a changed voxel is found at A's index, wherever B stores it
    data = turned.data.copy()
    data[0, 0, 0] += 1  # B's first voxel is A's last corner
    medconv.write(turned.replace(data=data), tmp_path / "c.nii.gz")
    doc = json.loads(run("diff", tmp_path / "a.nii.gz", tmp_path / "c.nii.gz", "--json").out)
    assert doc["values"]["differing"] == 1 and doc["values"]["first_at"]["index"] == [8, 7, 6]
    # swapped axes too
    medconv.write(vol.reoriented("SRA"), tmp_path / "d.nii.gz")
    assert run("diff", tmp_path / "a.nii.gz", tmp_path / "d.nii.gz").code == 0
