"""What convert writes is chosen explicitly: the -o DIR default, --to names and extensions, an
extension in --name, type changes that are never silent, and a dry run that makes the run's checks."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import medconv
from helpers import ROOT, assert_clean_error, make_volume, run

AXIAL = np.diag([0.9, 0.9, 2.0, 1.0])


def _vol(tmp_path, name="scan.nii.gz", shape=(6, 5, 4), dtype="int16", affine=AXIAL, seed=0):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    medconv.write(make_volume(shape, dtype, affine=affine, seed=seed), path)
    return str(path)


def _listing(d):
    return sorted(os.listdir(d))


# ---- -o DIR default --------------------------------------------------------------------------

def test_output_dir_without_to_writes_nifti1_nii_gz(tmp_path):
    srcs = [_vol(tmp_path / "a", "one.mha", seed=1), _vol(tmp_path / "b", "two.mhd", seed=2)]
    r = run("convert", *srcs, "-o", tmp_path / "out")
    assert r.code == 0, r.err
    assert _listing(tmp_path / "out") == ["one.nii.gz", "two.nii.gz"]
    assert medconv.detect(tmp_path / "out" / "one.nii.gz") == "nifti1"
    assert np.array_equal(medconv.read(tmp_path / "out" / "two.nii.gz").array, medconv.read(srcs[1]).array)


def test_help_says_the_output_dir_default():
    r = run("convert", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert "NIfTI-1 .nii.gz unless --to" in text
    assert "nii.gz" in text and "mhd" in text


# ---- --to: every extension means exactly that file ------------------------------------------

@pytest.mark.parametrize("token, files, fmt", [
    ("nii", ["scan.nii"], "nifti1"),
    ("nii.gz", ["scan.nii.gz"], "nifti1"),
    ("hdr", ["scan.hdr", "scan.img"], "nifti1"),
    ("img", ["scan.hdr", "scan.img"], "nifti1"),
    ("mhd", ["scan.mhd", "scan.raw"], "metaimage"),
    ("mha", ["scan.mha"], "metaimage"),
    ("nrrd", ["scan.nrrd"], "nrrd"),
    ("nhdr", ["scan.nhdr", "scan.raw.gz"], "nrrd"),
    ("mgh", ["scan.mgh"], "mgh"),
    ("mgz", ["scan.mgz"], "mgh"),
    ("mnc", ["scan.mnc"], "minc"),
    # format names keep their documented defaults
    ("nifti1", ["scan.nii.gz"], "nifti1"),
    ("nifti2", ["scan.nii.gz"], "nifti2"),
    ("metaimage", ["scan.mha"], "metaimage"),
    ("analyze", ["scan.hdr", "scan.img"], "analyze"),
    ("minc", ["scan.mnc"], "minc"),
])
def test_to_extension_means_that_file(tmp_path, token, files, fmt):
    src = _vol(tmp_path / "in", "scan.nii.gz")
    out = tmp_path / "out"
    r = run("convert", src, "-o", out, "--to", token)
    assert r.code == 0, r.err
    listing = _listing(out)
    assert listing[0] == files[0] or listing == sorted(files), listing
    assert set(listing) >= {files[0]}
    assert medconv.detect(out / files[0]) == fmt
    back = medconv.read(out / files[0])
    assert np.array_equal(back.reoriented("RAS").array, medconv.read(src).reoriented("RAS").array)


def test_to_nhdr_and_format_name_defaults_listing(tmp_path):
    src = _vol(tmp_path / "in", "scan.nii.gz")
    assert run("convert", src, "-o", tmp_path / "a", "--to", "nhdr").code == 0
    assert _listing(tmp_path / "a")[0] == "scan.nhdr" and len(_listing(tmp_path / "a")) == 2
    # mgh is an extension as well as a format name: the extension wins, so .mgh (mgz gives .mgz)
    assert run("convert", src, "-o", tmp_path / "b", "--to", "mgh").code == 0
    assert _listing(tmp_path / "b") == ["scan.mgh"]
    assert run("convert", src, "-o", tmp_path / "c", "--to", ".MGZ").code == 0
    assert _listing(tmp_path / "c") == ["scan.mgz"]
    # a format name keeps its default file
    assert run("convert", src, "-o", tmp_path / "d", "--to", "nrrd").code == 0
    assert _listing(tmp_path / "d") == ["scan.nrrd"]


@pytest.mark.parametrize("token, name", [("png", "s.png"), ("jpg", "s.jpg"), ("tif", "s.tif"), ("bmp", "s.bmp"),
                                         ("jpeg", "s.jpg"), ("tiff", "s.tif")])
def test_to_raster_extensions(tmp_path, token, name):
    src = _vol(tmp_path / "in", "s.nii.gz", shape=(6, 5), dtype="uint8")
    r = run("convert", src, "-o", tmp_path / "out", "--to", token)
    assert r.code == 0, r.err
    assert _listing(tmp_path / "out") == [name]


def test_to_dcm_writes_a_series_folder(tmp_path):
    pytest.importorskip("pydicom")
    src = _vol(tmp_path / "in", "s.nii.gz", shape=(6, 5, 3))
    r = run("convert", src, "-o", tmp_path / "out", "--to", "dcm")
    assert r.code == 0, r.err
    assert _listing(tmp_path / "out") == ["s"] and len(os.listdir(tmp_path / "out" / "s")) == 3


def test_to_extension_with_src_dst(tmp_path):
    src = _vol(tmp_path, "s.nii.gz")
    r = run("convert", src, tmp_path / "plain", "--to", "nii.gz")
    assert r.code == 0, r.err
    assert medconv.detect(tmp_path / "plain") == "nifti1"


def test_unknown_to_lists_names_and_extensions(tmp_path):
    src = _vol(tmp_path, "s.nii.gz")
    r = run("convert", src, "-o", tmp_path / "o", "--to", "nifty")
    assert_clean_error(r, 2, "nifti1", "nii.gz", "mhd")
    assert not (tmp_path / "o").exists()


# ---- an extension in --name ------------------------------------------------------------------

def test_extension_in_name_decides_the_file(tmp_path):
    src = _vol(tmp_path / "in", "scan.mha")
    r = run("convert", src, "-o", tmp_path / "a", "--name", "{stem}.nii")
    assert r.code == 0, r.err
    assert _listing(tmp_path / "a") == ["scan.nii"]
    r = run("convert", src, "-o", tmp_path / "b", "--name", "x_{stem}.mhd")
    assert r.code == 0, r.err
    assert _listing(tmp_path / "b") == ["x_scan.mhd", "x_scan.raw"]
    # with --to naming the same format, the name's extension is the file
    r = run("convert", src, "-o", tmp_path / "c", "--name", "{stem}.nii", "--to", "nifti1")
    assert r.code == 0 and _listing(tmp_path / "c") == ["scan.nii"]
    # two different formats: a usage error, nothing written
    r = run("convert", src, "-o", tmp_path / "d", "--name", "{stem}.nii", "--to", "mgh")
    assert_clean_error(r, 2, "--name", "--to")
    assert not (tmp_path / "d").exists()
    # a dot that is no extension medconv writes is part of the name
    r = run("convert", src, "-o", tmp_path / "e", "--name", "{stem}.v2")
    assert r.code == 0 and _listing(tmp_path / "e") == ["scan.v2.nii.gz"]


# ---- --to completes --------------------------------------------------------------------------

def test_to_completes_names_and_extensions():
    env = dict(os.environ, _MEDCONV_COMPLETE="bash_complete", COMP_WORDS="medconv convert a.nii --to ni",
               COMP_CWORD="4")
    env.pop("MEDCONV_DEBUG", None)
    out = subprocess.run([sys.executable, "-m", "medconv"], env=env, capture_output=True, text=True, cwd=ROOT).stdout
    offered = {line.split(",", 1)[1] for line in out.splitlines() if "," in line}
    assert {"nifti1", "nifti2", "nii", "nii.gz"} <= offered
    assert "mgz" not in offered
    env["COMP_WORDS"] = "medconv convert a.nii --to m"
    out = subprocess.run([sys.executable, "-m", "medconv"], env=env, capture_output=True, text=True, cwd=ROOT).stdout
    offered = {line.split(",", 1)[1] for line in out.splitlines() if "," in line}
    assert {"metaimage", "minc", "mgh", "mhd", "mha", "mgz", "mnc"} <= offered


# ---- type changes are never silent -----------------------------------------------------------

def test_lossless_widening_is_noted_once(tmp_path):
    src = _vol(tmp_path, "i8.nii.gz", dtype="int8")
    r = run("convert", src, tmp_path / "o.mgz")
    assert r.code == 0, r.err
    notes = [l for l in r.err.splitlines() if "int8 values stored as int16" in l]
    assert len(notes) == 1 and "uint8, int16, int32, float32" in notes[0]
    back = medconv.read(tmp_path / "o.mgz")
    assert back.dtype == np.int16 and np.array_equal(back.array, medconv.read(src).array)
    # Analyze follows the same rule (it used to refuse what MGH widened silently)
    r = run("convert", src, tmp_path / "o.hdr", "--to", "analyze")
    assert r.code == 0, r.err
    assert "int8 values stored as int16" in r.err
    # a type the format holds: nothing to say
    r = run("convert", src, tmp_path / "o.nii")
    assert r.code == 0 and r.err == ""


def test_a_type_change_that_can_change_values_is_refused(tmp_path):
    src = _vol(tmp_path, "f64.nii.gz", dtype="float64")
    r = run("convert", src, tmp_path / "o.mgz")
    assert_clean_error(r, 4, "float64", "uint8, int16, int32, float32", "--dtype")
    assert not (tmp_path / "o.mgz").exists()
    # --dtype naming a type the format cannot hold is refused too (it used to write float32)
    r = run("convert", src, tmp_path / "o.mgz", "--dtype", "float64")
    assert_clean_error(r, 4, "float64", "float32")
    assert not (tmp_path / "o.mgz").exists()
    # --dtype naming one it holds: written
    r = run("convert", src, tmp_path / "o.mgz", "--dtype", "float32")
    assert r.code == 0, r.err
    assert medconv.read(tmp_path / "o.mgz").dtype == np.float32
    # int64 to MINC (integers up to 32 bits): refused, and so is out-of-range --dtype
    src64 = _vol(tmp_path, "i64.nii.gz", dtype="int64")
    assert_clean_error(run("convert", src64, tmp_path / "o.mnc"), 4, "int64", "int32")
    assert_clean_error(run("convert", src64, tmp_path / "o.mnc", "--dtype", "int8"), 4, "do not fit")
    assert not (tmp_path / "o.mnc").exists()


# ---- dry run: every check of the run ----------------------------------------------------------

def test_dry_run_refuses_what_the_run_refuses(tmp_path):
    src = _vol(tmp_path, "f64.nii.gz", dtype="float64")
    for extra in ((), ("-n",)):
        assert_clean_error(run("convert", src, tmp_path / "o.mgz", *extra), 4, "float64")
    oblique = _vol(tmp_path, "obl.nii.gz", affine=None)  # make_volume's default affine is oblique
    for extra in ((), ("-n",)):
        assert_clean_error(run("convert", oblique, tmp_path / "a.hdr", "--to", "analyze", *extra), 4, "oblique")
    three_d = _vol(tmp_path, "vol.nii.gz", dtype="uint8")
    for extra in ((), ("-n",)):
        assert_clean_error(run("convert", three_d, tmp_path / "v.png", *extra), 2, "--slice")
        assert_clean_error(run("convert", three_d, tmp_path / "v.png", "--slice", "9", *extra), 2, "outside")
        assert_clean_error(run("convert", three_d, tmp_path / "v.nii", "--orient", "XYZ", *extra), 2)
    # an existing destination without --force: exit 4 in both
    existing = tmp_path / "exists.nii"
    existing.write_bytes(b"x")
    for extra in ((), ("-n",)):
        assert_clean_error(run("convert", three_d, existing, *extra), 4, "exists")
    assert existing.read_bytes() == b"x"
    r = run("convert", three_d, existing, "-n", "--force")
    assert r.code == 0 and r.out.strip() == f"{three_d} -> {existing}"
    # a --dtype whose range does not hold the values is found by the dry run too
    big = _vol(tmp_path, "big.nii.gz", dtype="int16")
    for extra in ((), ("-n",)):
        assert_clean_error(run("convert", big, tmp_path / "b.nii", "--dtype", "uint8", *extra), 4, "do not fit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.nii.gz", "exists.nii", "f64.nii.gz", "obl.nii.gz",
                                                          "vol.nii.gz"]


def test_dry_run_in_a_batch_keeps_going_like_the_run(tmp_path):
    good = _vol(tmp_path / "a", "good.nii.gz")
    bad = _vol(tmp_path / "b", "bad.nii.gz", dtype="float64")
    r = run("convert", good, bad, "-o", tmp_path / "out", "--to", "mgz", "-n", "-k")
    assert r.code == 5, r.err
    assert r.out.splitlines() == [f"{good} -> {tmp_path / 'out' / 'good.mgz'}"]
    assert "bad.nii.gz" in r.err and "float64" in r.err
    assert not (tmp_path / "out").exists()


def test_3d_to_2d_in_a_batch_writes_a_folder_per_input(tmp_path):
    vol = _vol(tmp_path / "in", "anatomical.nii.gz", shape=(6, 5, 4), dtype="uint8")
    flat = _vol(tmp_path / "in2", "flat.nii.gz", shape=(6, 5), dtype="uint8")
    out = tmp_path / "tt"
    plan = run("convert", vol, flat, "-o", out, "--to", "png", "-n")
    assert plan.code == 0, plan.err
    assert plan.out.splitlines() == [f"{vol} -> {out / 'anatomical'}{os.sep}  (4 files)",
                                     f"{flat} -> {out / 'flat.png'}"]
    assert not out.exists()
    r = run("convert", vol, flat, "-o", out, "--to", "png")
    assert r.code == 0, r.err
    assert _listing(out) == ["anatomical", "flat.png"]
    assert _listing(out / "anatomical") == [f"anatomical_{k:03d}.png" for k in range(4)]
    # the dry run now sees what exists, as the run does
    assert_clean_error(run("convert", vol, "-o", out, "--to", "png", "-n"), 4, "exists")
    assert_clean_error(run("convert", vol, "-o", out, "--to", "png"), 4, "exists")
    # --skip-existing knows a folder of slices is that input's output
    r = run("convert", vol, flat, "-o", out, "--to", "png", "--skip-existing")
    assert r.code == 0 and "2 of 2 inputs skipped" in r.err


# ---- a DICOM series implied by DST/ is announced ---------------------------------------------

def test_trailing_slash_dicom_series_is_said(tmp_path):
    pytest.importorskip("pydicom")
    src = _vol(tmp_path, "x.nii.gz", shape=(6, 5, 25))
    r = run("convert", src, str(tmp_path / "newdir") + os.sep)
    assert r.code == 0, r.err
    assert len(os.listdir(tmp_path / "newdir")) == 25
    lines = r.err.strip().splitlines()
    assert [l for l in lines if "writing a DICOM series of 25 files" in l] == lines[-1:]
    # --to dicom says it already: no note
    r = run("convert", src, tmp_path / "other", "--to", "dicom")
    assert r.code == 0 and "writing a DICOM series" not in r.err


def test_an_empty_input_list_is_nothing_to_do(tmp_path):
    import io as _io

    lst = tmp_path / "files.txt"
    lst.write_text("# nothing left for this task\n\n")
    r = run("convert", "--from-list", lst, "-o", tmp_path / "out")
    assert r.code == 0 and "nothing to do" in r.err
    assert not (tmp_path / "out").exists()
    old = sys.stdin
    sys.stdin = _io.StringIO("")
    try:
        r = run("convert", "--from-list", "-", "-o", tmp_path / "out")
    finally:
        sys.stdin = old
    assert r.code == 0 and "stdin" in r.err
    # without a list, no input is still a usage error
    assert_clean_error(run("convert", "-o", tmp_path / "out"), 2, "no input")


def test_dry_run_follows_orient_and_slice_like_the_run(tmp_path):
    # 6x5x4 stacked along x after --orient: the slice count of the plan follows the new third axis
    vol = _vol(tmp_path / "in", "v.nii.gz", shape=(6, 5, 4), dtype="uint8")
    out = tmp_path / "o"
    plan = run("convert", vol, "-o", out, "--to", "png", "--orient", "SAR", "-n")
    assert plan.code == 0, plan.err
    n = medconv.read(vol).reoriented("SAR").shape[2]
    assert plan.out.strip().endswith(f"({n} files)")
    assert run("convert", vol, "-o", out, "--to", "png", "--orient", "SAR").code == 0
    assert len(os.listdir(out / "v")) == n
    # a --dtype range check over one slice: the slice alone decides, in both
    arr = np.zeros((4, 4, 3), np.int16)
    arr[:, :, 2] = 1000  # out of uint8 range, but only in slice 2
    src = tmp_path / "s.nii.gz"
    medconv.write(medconv.Volume(data=arr, affine=AXIAL), src)
    for extra in ((), ("-n",)):
        r = run("convert", src, tmp_path / f"s{len(extra)}.nii", "--slice", "0", "--dtype", "uint8", *extra)
        assert r.code == 0, r.err
        assert_clean_error(run("convert", src, tmp_path / "t.nii", "--slice", "2", "--dtype", "uint8", *extra), 4,
                           "do not fit")
