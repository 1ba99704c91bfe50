"""What medconv prints for people: help without a command, the compact info table, units, the
formats table, stored types and assumed orientations, a progress bar that goes away, help texts."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import medconv
from helpers import (
    ROOT,
    TESTDATA,
    make_volume,
    nibabel_data,
    run,
    run_on_terminal,
    run_pty,
    run_subprocess,
)


def _stdout_on_terminal(*argv, columns=160, cwd=ROOT):
    """Run medconv with stdout on a pseudo-terminal COLUMNS wide; returns (exit code, text without
    the terminal's style codes)."""
    import re

    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1", TERM="xterm")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code, text, _ = run_pty(argv, tty="stdout", env=env, cwd=cwd)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.replace("\r\n", "\n"))


# ---- medconv alone ---------------------------------------------------------------------------

def test_medconv_alone_prints_the_help():
    r = run_subprocess()
    assert r.code == 0, r.err
    assert r.err == ""
    assert r.out == run_subprocess("--help").out
    assert r.out.startswith("Usage: medconv") and "Commands:" in r.out and r.out.endswith("\n")


# ---- info: a compact table -------------------------------------------------------------------

def _dicom_export(tmp_path):
    """Two series in their own folders and one JPEG 2000 file at the top."""
    import shutil

    pytest.importorskip("pydicom")
    export = tmp_path / "export"
    src = tmp_path / "vol.nii.gz"
    medconv.write(make_volume((40, 30, 12), "int16", affine=np.diag([0.8, 0.8, 2.5, 1.0])), src)
    assert run("convert", src, str(export / "ct" / "s1") + os.sep, "-q").code == 0
    assert run("convert", src, str(export / "mr" / "s2") + os.sep, "-q").code == 0
    shutil.copy(os.path.join(TESTDATA, "dcm_qa_ts", "In", "9.dcm"), export / "9.dcm")
    return export


def test_info_table_fits_a_160_column_terminal(tmp_path):
    export = _dicom_export(tmp_path)
    code, text = _stdout_on_terminal("info", "export", columns=160, cwd=tmp_path)
    assert code == 0, text
    lines = [l for l in text.splitlines() if l.strip()]
    rows = [l for l in lines if l.startswith("export")]
    assert len(rows) == 3, text  # one line per series: no cell wraps
    assert all(len(l.rstrip()) <= 160 for l in lines), text
    by_folder = {l.split()[0]: l for l in rows}  # each series' own folder, below the argument
    assert set(by_folder) == {"export", os.path.join("export", "ct", "s1"), os.path.join("export", "mr", "s2")}
    ct = by_folder[os.path.join("export", "ct", "s1")]
    assert "40x30x12" in ct and "0.8x0.8x2.5 mm" in ct and "Explicit VR LE" in ct
    assert "JPEG 2000 Lossless" in by_folder["export"]
    assert "1.2.840.10008" not in text  # transfer syntaxes by name
    # the series UIDs are shortened in the table, whole in --json
    records = json.loads(run("info", export, "--json").out)
    uids = [r["selector"] for r in records if len(str(r.get("selector", ""))) > 20]
    assert uids and all(u not in text for u in uids)
    assert {r["transfer_syntax"] for r in records} == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}
    assert sorted(r["folder"] for r in records) == [".", os.path.join("ct", "s1"), os.path.join("mr", "s2")]
    assert all(isinstance(r["shape"], list) for r in records)


def test_info_one_series_shows_short_uid_and_full_json(tmp_path):
    export = _dicom_export(tmp_path)
    one = export / "ct"
    r = run("info", one)
    assert r.code == 0, r.err
    uid = json.loads(run("info", one, "--json").out)["series_uid"]
    line = next(l for l in r.out.splitlines() if l.startswith("series_uid"))
    assert "..." in line and uid not in line and line.split()[-1].endswith(uid[-6:])
    assert next(l for l in r.out.splitlines() if l.startswith("path")).split()[-1] == str(one / "s1")
    assert run("info", one, "--get", "series_uid").out.strip() == uid


def test_spacing_has_units_and_the_time_unit_the_file_states(tmp_path):
    import nibabel as nib

    data = np.zeros((4, 4, 3, 5), np.int16)
    for unit_code, unit, step, shown in ((8, "s", 2.0, "2 s"), (16, "ms", 2000.0, "2000 ms")):
        img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 3.0, 1.0]))
        img.header.set_xyzt_units("mm", {8: "sec", 16: "msec"}[unit_code])
        img.header["pixdim"][4] = step
        path = tmp_path / f"t_{unit}.nii"
        nib.save(img, path)
        r = run("info", path)
        line = next(l for l in r.out.splitlines() if l.startswith("spacing"))
        assert line.split(None, 1)[1] == f"1.5x1.5x3 mm, {shown}", line
        rec = json.loads(run("info", path, "--json").out)
        assert rec["spacing"][3] == pytest.approx(2.0) and rec["time_unit"] == unit  # JSON: seconds
    # MGH keeps TR in milliseconds
    assert run("convert", tmp_path / "t_s.nii", tmp_path / "t.mgz").code == 0
    line = next(l for l in run("info", tmp_path / "t.mgz").out.splitlines() if l.startswith("spacing"))
    assert line.split(None, 1)[1] == "1.5x1.5x3 mm, 2000 ms"
    # a table of several inputs too, shape without spaces
    r = run("info", tmp_path / "t_s.nii", tmp_path / "t.mgz")
    assert "4x4x3x5" in r.out and "1.5x1.5x3 mm, 2 s" in r.out and "1.5x1.5x3 mm, 2000 ms" in r.out


def test_minc_info_reports_the_stored_dtype():
    path = nibabel_data("minc1_1_scale.mnc")
    import nibabel as nib

    assert run("info", path, "--get", "dtype").out.strip() == str(nib.load(path).get_data_dtype()) == "uint8"


def test_analyze_orientation_comes_from_its_affine(tmp_path):
    src = tmp_path / "a.nii.gz"
    medconv.write(make_volume((5, 4, 3), "int16", affine=np.diag([2.0, 2.0, 2.0, 1.0])), src)
    assert run("convert", src, tmp_path / "a.hdr", "--to", "analyze").code == 0
    rec = json.loads(run("info", tmp_path / "a.hdr", "--json").out)
    assert rec["orientation"] == "LAS" and rec["orientation_assumed"] is True
    line = next(l for l in run("info", tmp_path / "a.hdr").out.splitlines() if l.startswith("orientation"))
    assert line.split(None, 1)[1] == "LAS (assumed)"
    assert "orientation_assumed" not in json.loads(run("info", src, "--json").out)


# ---- formats ---------------------------------------------------------------------------------

def test_formats_table_says_yes_no_and_dimension_ranges():
    r = run("formats")
    assert r.code == 0
    assert "True" not in r.out and "False" not in r.out and " x " not in r.out
    rows = {l.split()[0]: l.split() for l in r.out.splitlines()[1:]}
    assert "2D-4D" in rows["mgh"] and "2D-7D" in rows["nifti1"] and "2D" in rows["png"]
    assert "yes" in rows["png"] and "no" in rows["png"]  # written, no geometry
    doc = json.loads(run("formats", "--json").out)
    assert {d["format"]: d["ndims"] for d in doc}["mgh"] == [2, 3, 4]
    assert all(isinstance(d["write"], bool) for d in doc)


# ---- progress --------------------------------------------------------------------------------

def _three(tmp_path):
    srcs = []
    for i in range(3):
        srcs.append(str(tmp_path / f"p{i}.nii.gz"))
        medconv.write(make_volume((4, 4, 3), "int16", seed=i), srcs[-1])
    return srcs


def test_no_progress_bar_for_a_batch_under_a_second(tmp_path, monkeypatch):
    # the delay is a second by default; a long one keeps the test true on a loaded machine
    monkeypatch.setenv("MEDCONV_PROGRESS_DELAY", "60")
    r = run_on_terminal("info", *_three(tmp_path), "-j", "2", "--get", "path")
    assert r.code == 0
    assert r.err == ""


def test_progress_bar_is_removed_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCONV_PROGRESS_DELAY", "0")  # show it at once
    r = run_on_terminal("info", *_three(tmp_path), "-j", "2", "--get", "path")
    assert r.code == 0
    assert "3/3" in r.err
    # transient: the last thing written erases the bar's line (cursor up, erase line)
    tail = r.err[r.err.rindex("3/3"):]
    assert tail.rstrip().endswith("\x1b[2K"), repr(tail)


# ---- help texts ------------------------------------------------------------------------------

def test_stats_help_paragraphs_are_wrapped_like_the_rest():
    r = run("stats", "--help")
    assert r.code == 0
    lines = r.out.splitlines()
    assert max(len(l) for l in lines if not l.lstrip().startswith("medconv ")) <= 80
    assert any(l.startswith("  Empty selections are results") for l in lines)


def test_formats_help_speaks_of_formats_not_inputs():
    r = run("formats", "--help")
    assert r.code == 0 and "input" not in r.out.lower()


# ---- PNG input: the note names the convention it applies --------------------------------------

def test_png_to_nifti_is_2d_and_the_note_names_lps(tmp_path):
    from PIL import Image

    Image.fromarray(np.arange(20, dtype=np.uint8).reshape(4, 5)).save(tmp_path / "x.png")
    r = run("convert", tmp_path / "x.png", tmp_path / "x.nii.gz")
    assert r.code == 0, r.err
    assert "LPS" in r.err and "Analyze" not in r.err
    assert run("info", tmp_path / "x.nii.gz", "--get", "ndim", "--get", "orientation").out.split() == ["2", "LPS"]
    # a NIfTI without stored orientation names the convention it gets: Analyze's
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, tmp_path / "bare.nii")
    r = run("convert", tmp_path / "bare.nii", tmp_path / "bare.nii.gz")
    assert r.code == 0 and "Analyze convention" in r.err


def test_table_lists_each_b_value_once():
    from medconv.cli.info import display

    record = {"b_values": [0.0, 1000.0, 1000.0, 0.0, 2000.0004], "n_diffusion_directions": 2}
    assert display(record)["b_values"] == "0 1000 2000"
    assert record["b_values"][1] == 1000.0  # --json keeps every volume's value
