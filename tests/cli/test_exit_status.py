"""Every non-zero exit is an exception of the library, turned into its status by the one handler:
a check's findings and a batch whose summary is printed end without an error line."""
from __future__ import annotations

import pytest

import medconv
from helpers import make_volume, run
from medconv.errors import BatchFailed, CheckFailed, ExitStatus, MedconvError, error_for


def test_the_statuses_and_their_errors():
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 4, 5, 70, 130]
    assert CheckFailed.exit_code == ExitStatus.FOUND and CheckFailed("x").silent
    assert BatchFailed.exit_code == ExitStatus.PARTIAL and not BatchFailed("x").silent
    assert BatchFailed("x", reported=True).silent
    assert type(error_for(4, "full", "out")).__name__ == "OutputError" and error_for(4, "m").exit_code == 4
    assert type(error_for(99, "m")) is MedconvError


def test_differences_exit_1_without_an_error_line(tmp_path):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    medconv.write(make_volume((4, 3, 2), "int16", seed=1), a)
    medconv.write(make_volume((4, 3, 2), "int16", seed=2), b)
    r = run("diff", a, b)
    assert r.code == 1 and "values" in r.out and r.err == ""
    assert run("diff", a, a).code == 0


def test_anonymize_check_findings_and_partial_batch(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = tmp_path / "in"
    src.mkdir()
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    (src / "ct.dcm").write_bytes(data)
    r = run("anonymize", "--check", src)
    assert r.code == 1 and r.out and "medconv: error" not in r.err
    (src / "bad.dcm").write_bytes(data[:-5000])
    r = run("anonymize", src, "-o", tmp_path / "o", "--key", "k", "--keep-going")
    assert r.code == 5 and "failed 1" in r.err and "medconv: error" not in r.err
    assert run("anonymize", "--check", tmp_path / "o").code == 0


def test_a_partial_convert_batch_says_so_in_its_error_line(tmp_path):
    good = tmp_path / "good.nii.gz"
    medconv.write(make_volume((4, 3, 2), "int16"), good)
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b garbage")
    r = run("convert", good, tmp_path / "bad.nii.gz", "-o", tmp_path / "out", "-k", "-j", "1")
    assert r.code == 5 and "medconv: error: 1 of 2 inputs failed" in r.err
