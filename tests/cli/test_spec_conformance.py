"""Conformance to the command-line contract (docs/cli.md): exit codes under --debug, one-line
usage errors, --get over mixed inputs, the KiTS recipe, integer MGH/MINC output, batch stop on failure, series hints, 2D
orientation codes."""
import os
import re
import shlex
import shutil
import time

import numpy as np
import pytest

import medconv
from helpers import (
    ROOT,
    assert_clean_error,
    make_volume,
    nibabel_data,
    pydicom_data,
    run,
    run_subprocess,
)


def _nifti_ct(path, shape=(6, 5, 4), affine=None):
    """An int16 CT-like NIfTI with slope 1 and intercept -1024 (real values -1024..1975)."""
    import nibabel as nib

    stored = (np.arange(np.prod(shape)).reshape(shape) * 37 % 3000).astype(np.int16)
    img = nib.Nifti1Image(stored, np.diag([0.8, 0.8, 3.0, 1.0]) if affine is None else affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(1, -1024)
    nib.save(img, str(path))
    return stored.astype(np.float64) - 1024


# -- 1. --debug keeps the exit code ------------------------------------------------------------------


def test_debug_prints_traceback_and_keeps_the_exit_code(tmp_path, monkeypatch):
    missing = tmp_path / "missing.nii"
    res = run("--debug", "info", missing)
    assert res.code == 3 and "Traceback" in res.err and "medconv: error:" in res.err
    src = tmp_path / "a.nii.gz"
    medconv.write(make_volume((4, 4, 3)), str(src))
    (tmp_path / "b.nii.gz").write_bytes(b"taken")
    res = run("--debug", "convert", src, tmp_path / "b.nii.gz")
    assert res.code == 4 and "Traceback" in res.err
    monkeypatch.setenv("MEDCONV_DEBUG", "1")
    res = run("info", missing)
    assert res.code == 3 and "Traceback" in res.err
    res = run("info", src, "--orient", "RAS")  # a usage error
    assert res.code == 2


def test_debug_after_the_command_is_a_usage_error(tmp_path):
    src = tmp_path / "a.nii.gz"
    medconv.write(make_volume((4, 4, 3)), str(src))
    res = run_subprocess("info", src, "--debug")  # a real argv (the old check looked at sys.argv)
    assert_clean_error(res, 2, "--debug")
    assert "Traceback" not in res.err


# -- 7. usage errors are one line ----------------------------------------------------------------------


def test_usage_errors_are_one_line():
    for argv in (("info", "--bogus"), ("convert",), ("nonsense-command",)):
        res = run(*argv)
        lines = [l for l in res.err.splitlines() if l.strip()]
        assert res.code == 2, argv
        assert len(lines) == 1 and lines[0].startswith("medconv: error:"), res.err
        assert "Usage:" not in res.err
    assert "(see medconv info --help)" in run("info", "--bogus").err


# -- 2. --get over inputs that do not all have a field -------------------------------------------------


def test_info_get_known_field_missing_for_some_inputs_prints_empty():
    dcm, nii = pydicom_data("CT_small.dcm"), nibabel_data("anatomical.nii")
    res = run("info", dcm, nii, "--get", "modality", "--get", "n_files", "--get", "shape")
    assert res.code == 0, res.err
    assert res.out.splitlines() == ["CT\t1\t128 128 1", "\t\t33 41 25"]
    res = run("info", nii, dcm, "--get", "series_uid", "--get", "transfer_syntax")
    assert res.code == 0, res.err
    first, second = res.out.splitlines()
    assert first == "\t" and second.split("\t")[0] and second.split("\t")[1]


def test_info_get_unknown_field_is_a_usage_error_before_any_output():
    res = run("info", pydicom_data("CT_small.dcm"), nibabel_data("anatomical.nii"), "--get", "shape",
              "--get", "nonsense")
    assert_clean_error(res, 2, "nonsense")
    assert res.out == ""


def test_header_get_over_mixed_formats(tmp_path):
    nii, mha = tmp_path / "a.nii.gz", tmp_path / "b.mha"
    medconv.write(make_volume((4, 3, 2)), str(nii))
    medconv.write(make_volume((4, 3, 2)), str(mha))
    res = run("header", nii, mha, "--get", "dim", "--get", "DimSize")
    assert res.code == 0, res.err
    assert res.out.splitlines() == ["3 4 3 2 1 1 1 1\t", "\t4 3 2"]
    # a field no input has: exit 3, naming it, nothing printed
    res = run("header", nii, mha, "--get", "dim", "--get", "NoSuchField")
    assert_clean_error(res, 3, "NoSuchField")
    assert res.out == ""
    # one input: a field its header lacks is exit 3 naming the field (as before)
    res = run("header", nii, "--get", "DimSize")
    assert_clean_error(res, 3, "DimSize")


# -- 4. the KiTS recipe exports axial slices ------------------------------------------------------------


def _readme_command(marker):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        for line in fh:
            if marker in line:
                return re.findall(r"`(medconv [^`]+)`", line)[-1]
    raise AssertionError(f"no README line with {marker!r}")


def test_kits_recipe_writes_axial_slices(tmp_path, monkeypatch):
    from PIL import Image

    # KiTS layout: slices on voxel axis 0 (I), then P, then L: shape (n_slices, rows, cols)
    n, ny, nx = 5, 16, 12
    affine = np.array([[0, 0, -0.8, 0], [0, -0.8, 0, 0], [-3.0, 0, 0, 0], [0, 0, 0, 1]])
    (tmp_path / "case_00000").mkdir()
    _nifti_ct(tmp_path / "case_00000" / "imaging.nii.gz", shape=(n, ny, nx), affine=affine)
    command = _readme_command("PNG per axial slice")
    argv = shlex.split(command)[1:]
    monkeypatch.chdir(tmp_path)
    res = run(*argv)
    assert res.code == 0, res.err
    pngs = sorted((tmp_path / "slices").glob("*.png"))
    assert len(pngs) == n  # one file per axial slice, not one per sagittal column
    for p in pngs:
        with Image.open(p) as im:
            assert sorted(im.size) == sorted((ny, nx))


# -- 5. MGH and MINC keep integer real values as integers --------------------------------------------------


@pytest.mark.parametrize("ext", ["mgz", "mgh", "mnc"])
def test_integer_scaled_data_stays_integer_in_formats_without_scaling(tmp_path, ext):
    if ext == "mnc":
        pytest.importorskip("h5py")
    real = _nifti_ct(tmp_path / "ct.nii.gz")
    out = tmp_path / f"x.{ext}"
    res = run("convert", tmp_path / "ct.nii.gz", out)
    assert res.code == 0, res.err
    res = run("info", out, "--get", "dtype")
    assert res.out.strip() == "int16"
    vol = medconv.read(str(out))
    assert np.array_equal(vol.real().astype(np.float64), real)


# -- 6. a -j batch stops at its first failure -------------------------------------------------------------


def _slow_item(item):
    """Item 0 is slow, item 1 fails at once, the others are quick; each success leaves a marker."""
    from medconv.errors import InputError

    folder, k = item
    started = os.path.join(folder, "started0")
    if k == 0:
        open(started, "w").close()
    if k == 1:  # fails once item 0 runs (however late a loaded machine starts it)
        deadline = time.monotonic() + 20
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise InputError("broken", f"item{k}")
    time.sleep(1.5 if k == 0 else 0.2)  # the others: a stop has time to land between them
    with open(os.path.join(folder, f"done{k}"), "w") as fh:
        fh.write("ok")
    return k


def test_parallel_batch_cancels_queued_items_after_a_failure(tmp_path):
    from medconv import batch
    from medconv.errors import InputError

    items = [(str(tmp_path), k) for k in range(10)]
    with pytest.raises(InputError):
        batch.run(items, _slow_item, jobs=2)
    done = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("done"))
    # before: while item 0 ran, the other worker went through all of items 2..9
    assert len(done) < 6, done
    assert "done0" in done  # a running item finishes (its output is complete)


def test_convert_batch_without_keep_going_stops_early(tmp_path):
    srcs = []
    bad = tmp_path / "a_broken.nii"
    bad.write_bytes(b"\x5c\x01\x00\x00" + b"\x00" * 100)
    srcs.append(bad)
    for i in range(6):
        p = tmp_path / f"b{i}.nii.gz"
        medconv.write(make_volume((8, 8, 8), seed=i), str(p))
        srcs.append(p)
    out = tmp_path / "out"
    res = run("convert", *srcs, "-o", out, "-j", "2", "--to", "nifti1")
    assert res.code == 3, res.err
    written = list(out.glob("*.nii*")) if out.exists() else []
    assert len(written) < 6


# -- 8. the several-series hint fits the command ----------------------------------------------------------


def test_several_series_hint_fits_stats_and_header(tmp_path):
    import pydicom

    folder = tmp_path / "two"
    folder.mkdir()
    src = pydicom_data("CT_small.dcm")
    shutil.copy(src, folder / "a.dcm")
    ds = pydicom.dcmread(src)
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesNumber = 9
    ds.save_as(folder / "b.dcm")
    for cmd in ("stats", "header"):
        res = run(cmd, folder)
        assert_clean_error(res, 2, "--series")
        assert "or convert them all with -o DIR" not in res.err
        assert "convert can write them all with -o DIR" in res.err


# -- 9. 2D images have a three-letter orientation ---------------------------------------------------------


def test_2d_orientation_is_three_letters(tmp_path):
    from medconv.volume import Volume

    assert Volume(data=np.zeros((4, 3), np.uint8), affine=np.diag([-1.0, -1.0, 1.0, 1.0])).orientation == "LPS"
    assert Volume(data=np.zeros((4, 3), np.uint8), affine=np.diag([1.0, 1.0, 0.0, 1.0])).orientation == "RAS"
    png = tmp_path / "x.png"
    medconv.write(Volume(data=np.arange(12, dtype=np.uint8).reshape(4, 3)), str(png))
    # a raster stores no orientation: info says so (README, Decisions)
    assert run("info", png, "--get", "orientation").out.strip() == "unknown"
    res = run("convert", png, tmp_path / "x.nii.gz")
    assert res.code == 0, res.err
    assert run("info", tmp_path / "x.nii.gz", "--get", "orientation").out.strip() == "LPS"
