"""Damaged and mixed DICOM trees: a truncated, unreadable or non-image file never blocks other series."""
import json
import os
import shutil
import sys

import numpy as np
import pytest


import dcmgen

from helpers import assert_clean_error, run

nib = pytest.importorskip("nibabel")


def _dicomdirtests():
    import pydicom

    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "dicomdirtests")
    if not os.path.isdir(path):
        pytest.skip("pydicom's dicomdirtests tree is not installed")
    return path


@pytest.fixture
def pristine(tmp_path):
    dst = tmp_path / "pristine"
    shutil.copytree(_dicomdirtests(), dst)
    return dst


@pytest.fixture
def damaged(tmp_path):
    """A copy of dicomdirtests whose one-file series 3 (CR, "Cervical OBLI 2") is cut inside its pixels."""
    dst = tmp_path / "ex"
    shutil.copytree(_dicomdirtests(), dst)
    victim = dst / "77654033" / "CR3" / os.listdir(dst / "77654033" / "CR3")[0]
    os.truncate(victim, os.path.getsize(victim) - 300)
    return dst, str(victim)


def _warning_lines(err, needle):
    return [line for line in err.splitlines() if line.startswith("medconv: warning:") and needle in line]


def _records(out):
    data = json.loads(out)
    return data if isinstance(data, list) else [data]


def _selectors(out):
    return sorted(r.get("selector") for r in _records(out))


def test_info_lists_every_intact_series(pristine, damaged):
    ex, victim = damaged
    ref = run("info", pristine, "--json")
    assert ref.code == 0, ref.err
    r = run("info", ex, "--json")
    assert r.code == 5, r.err
    assert "Traceback" not in r.err
    expected = [s for s in _selectors(ref.out) if s != "3"]
    assert _selectors(r.out) == expected  # every other series, as in the intact tree
    assert len(_warning_lines(r.err, f"{victim}: skipped: damaged (truncated")) == 1  # reported once
    assert "DICOM files skipped (1 damaged" in r.err  # the count
    rows = [line for line in r.err.splitlines() if line.startswith("  ") and "[series 3]" in line]
    assert len(rows) == 1 and victim in rows[0]  # the refused series' row names the file


def test_convert_selected_series_whatever_else_is_there(pristine, damaged, tmp_path):
    ex, victim = damaged
    assert run("convert", pristine, tmp_path / "ref.nii.gz", "--series", "5").code == 0
    r = run("convert", ex, tmp_path / "ct5.nii.gz", "--series", "5")
    assert r.code == 0, r.err
    assert len(_warning_lines(r.err, victim)) == 1
    a, b = nib.load(tmp_path / "ref.nii.gz"), nib.load(tmp_path / "ct5.nii.gz")
    assert np.array_equal(a.get_fdata(), b.get_fdata()) and np.allclose(a.affine, b.affine)


def test_damaged_series_is_refused_on_its_own(damaged, tmp_path):
    ex, victim = damaged
    r = run("convert", ex, tmp_path / "cr3.nii", "--series", "3")
    assert_clean_error(r, 3, "series 3 is incomplete", victim)
    assert not os.path.exists(tmp_path / "cr3.nii")


def test_convert_tree_to_dir(pristine, damaged, tmp_path):
    """-o DIR: every series the intact tree converts is converted, but the damaged one; exit 5."""
    ex, victim = damaged
    ref = run("convert", pristine, "-o", tmp_path / "ref", "--to", "nifti1", "-k")
    r = run("convert", ex, "-o", tmp_path / "out", "--to", "nifti1", "-k")
    assert r.code == 5, r.err
    assert "Traceback" not in r.err
    made, expected = sorted(os.listdir(tmp_path / "out")), sorted(os.listdir(tmp_path / "ref"))
    assert made == [n for n in expected if not n.startswith("3_")]
    assert [n for n in expected if n.startswith("3_")]
    rows = [line for line in r.err.splitlines() if line.startswith("  ") and "[series 3]" in line]
    assert len(rows) == 1 and victim in rows[0]
    assert ref.code == 5  # the intact tree has a series that cannot be stacked: one row more, not one less
    assert len([line for line in r.err.splitlines() if line.startswith("medconv: error:")]) == 1


def test_refused_series_does_not_stop_the_others_without_keep_going(tmp_path):
    """Without -k too: the refusal is planned, the intact series are converted, exit 5."""
    dcmgen.make_series(tmp_path / "in" / "a", series_uid="1.2.3.1", series_number=1, description="a")
    paths, _, _ = dcmgen.make_series(tmp_path / "in" / "b", series_uid="1.2.3.2", series_number=2, description="b")
    os.truncate(paths[2], os.path.getsize(paths[2]) - 10)
    r = run("convert", tmp_path / "in", "-o", tmp_path / "out", "--to", "nifti1")
    assert r.code == 5, r.err
    assert os.listdir(tmp_path / "out") == ["1_a.nii.gz"]
    assert paths[2] in r.err and "series 2 is incomplete" in r.err
    dry = run("convert", tmp_path / "in", "-o", tmp_path / "dry", "--to", "nifti1", "--dry-run")
    assert dry.code == r.code and "refused: series 2 is incomplete" in dry.out  # the dry run fails as the run does


def test_series_that_lost_one_of_its_files(tmp_path):
    """One slice of six cut short: the series is refused naming that file, not written with a hole."""
    paths, _, _ = dcmgen.make_series(tmp_path / "in")
    os.truncate(paths[3], os.path.getsize(paths[3]) - 1)
    r = run("convert", tmp_path / "in", tmp_path / "out.nii")
    assert_clean_error(r, 3, paths[3], "incomplete")
    assert not os.path.exists(tmp_path / "out.nii")
    r = run("info", tmp_path / "in")
    assert_clean_error(r, 3, paths[3])
    r = run("convert", tmp_path / "in", "-o", tmp_path / "out", "--to", "nifti1")
    assert_clean_error(r, 3, paths[3])  # nothing usable: 3, not 5
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


@pytest.mark.parametrize("cut", [300, 900, 1500])
def test_header_cut_short(pristine, tmp_path, cut):
    """A file cut inside its header: skipped and reported once; if the header still names its series,
    that series is refused, else the file is a failed part of the directory of its own."""
    victim = pristine / "98892003" / "MR2" / "4950"
    with open(victim, "r+b") as fh:
        fh.truncate(cut)
    r = run("info", pristine, "--json")
    assert r.code == 5, r.err
    assert "Traceback" not in r.err
    assert len(_warning_lines(r.err, f"{victim}: skipped: damaged (truncated: file ends inside")) == 1
    rows = [line for line in r.err.splitlines() if line.startswith("  ")]
    assert rows and all(str(victim) in row for row in rows)
    assert "5" in _selectors(r.out)
    assert run("info", pristine, "--series", "5").code == 0


def _non_image(path, sop_class, series_uid, **attrs):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 90
    ds.Modality = "SR"
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


NON_IMAGES = {
    "sr.dcm": ("1.2.840.10008.5.1.4.1.1.88.11", {"ValueType": "CONTAINER"}),  # Basic Text SR
    "gsps.dcm": ("1.2.840.10008.5.1.4.1.1.11.1", {"PresentationLUTShape": "IDENTITY"}),  # presentation state
    "ko.dcm": ("1.2.840.10008.5.1.4.1.1.88.59", {"ValueType": "CONTAINER"}),  # key object selection
    "raw.dcm": ("1.2.840.10008.5.1.4.1.1.66", {"Rows": 4, "Columns": 4}),  # raw data (Rows, no pixels)
}


def test_non_image_objects_are_skipped_and_reported_once(tmp_path):
    import medconv

    _, data, _ = dcmgen.make_series(tmp_path / "in")
    made = [_non_image(tmp_path / "in" / name, sop, f"1.2.3.99.{i}", **attrs)
            for i, (name, (sop, attrs)) in enumerate(NON_IMAGES.items())]
    r = run("convert", tmp_path / "in", tmp_path / "out.nii")
    assert r.code == 0, r.err
    for path in made:
        assert len(_warning_lines(r.err, f"{path}: skipped: not an image")) == 1, r.err
    assert "4 of 10 DICOM files skipped (4 without an image)" in r.err
    assert np.array_equal(medconv.read(tmp_path / "out.nii").real(), data.transpose(1, 0, 2))
    info = run("info", tmp_path / "in")
    assert info.code == 0, info.err


def test_nothing_usable_is_exit_3(tmp_path):
    (tmp_path / "in").mkdir()
    sop, attrs = NON_IMAGES["sr.dcm"]
    _non_image(tmp_path / "in" / "sr.dcm", sop, "1.2.3.98", **attrs)
    for argv in (("info", tmp_path / "in"), ("convert", tmp_path / "in", tmp_path / "o.nii"),
                 ("convert", tmp_path / "in", "-o", tmp_path / "out", "--to", "nifti1")):
        assert_clean_error(run(*argv), 3, "no usable DICOM image", "1 of 1 DICOM files skipped")
    assert not os.path.exists(tmp_path / "o.nii")


def test_truncated_encapsulated_pixel_data(tmp_path):
    """A compressed (RLE) file cut inside its fragments is found at the scan, not at decoding."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("MR_small_RLE.dcm")
    if src is None:
        pytest.skip("pydicom's MR_small_RLE.dcm is not installed")
    dcmgen.make_series(tmp_path / "in" / "good", series_uid="1.2.3.7", series_number=7)
    victim = tmp_path / "in" / "rle.dcm"
    shutil.copy(src, victim)
    os.truncate(victim, os.path.getsize(victim) - 100)
    r = run("info", tmp_path / "in")
    assert r.code == 5, r.err
    assert len(_warning_lines(r.err, f"{victim}: skipped: damaged (truncated: file ends inside")) == 1
    assert run("convert", tmp_path / "in", tmp_path / "s7.nii", "--series", "7").code == 0
    # intact, the same file is read (the check costs nothing when the file ends with its delimiter)
    shutil.copy(src, victim)
    assert run("info", tmp_path / "in").code == 0


def test_every_cut_of_a_file_is_handled(tmp_path):
    """Whatever byte a file is cut at: no traceback, the other series readable, exit 0 or 5."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("MR_small.dcm")
    dcmgen.make_series(tmp_path / "in" / "good", series_uid="1.2.3.7", series_number=7)
    victim = tmp_path / "in" / "cut.dcm"
    size = os.path.getsize(src)
    for cut in range(140, size, size // 12):
        shutil.copy(src, victim)
        os.truncate(victim, cut)
        r = run("info", tmp_path / "in", "--json")
        assert r.code in (0, 5), (cut, r.err)
        assert "Traceback" not in r.err
        assert 7 in [rec.get("series_number") for rec in _records(r.out)], (cut, r.out)
        assert run("convert", tmp_path / "in", tmp_path / "s7.nii", "--series", "7", "--force").code == 0


def test_truncation_walk():
    from pydicom.data import get_testdata_file

    from medconv.dicom import damage

    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"):
        src = get_testdata_file(name)
        assert damage.truncation(src) is None, name
        data = open(src, "rb").read()
        assert damage._walk_file(data[:-1]) is not None, name  # one byte short is found


def test_unexpected_reader_failure_stays_with_its_file(tmp_path, monkeypatch):
    """A reader tripping over one file in an unforeseen way refuses that file's series, not the tree."""
    from medconv.dicom import scan

    dcmgen.make_series(tmp_path / "in" / "a", series_uid="1.2.3.1", series_number=1)
    paths, _, _ = dcmgen.make_series(tmp_path / "in" / "b", series_uid="1.2.3.2", series_number=2)
    real = scan.read_file

    def flaky(path, strict_single=False):
        if path == paths[1]:
            raise RuntimeError("unforeseen")
        return real(path, strict_single)

    monkeypatch.setattr(scan, "read_file", flaky)
    r = run("info", tmp_path / "in", "--json")
    assert r.code == 5, r.err
    assert "Traceback" not in r.err
    assert [rec["series_number"] for rec in _records(r.out)] == [1]
    assert len(_warning_lines(r.err, f"{paths[1]}: skipped: damaged (cannot read it (RuntimeError")) == 1
    assert "series 2 is incomplete" in r.err


def test_damaged_copy_of_an_intact_image_loses_nothing(tmp_path):
    """A tree exported twice, one copy of a slice cut short: the series is whole from the other copy."""
    import medconv

    paths, data, _ = dcmgen.make_series(tmp_path / "in" / "first")
    shutil.copytree(tmp_path / "in" / "first", tmp_path / "in" / "again")
    cut = tmp_path / "in" / "again" / os.path.basename(paths[2])
    os.truncate(cut, os.path.getsize(cut) - 10)
    r = run("convert", tmp_path / "in", tmp_path / "out.nii")
    assert r.code == 0, r.err
    assert len(_warning_lines(r.err, f"{cut}: skipped: damaged")) == 1
    assert np.array_equal(medconv.read(tmp_path / "out.nii").real(), data.transpose(1, 0, 2))
    assert run("info", tmp_path / "in").code == 0
