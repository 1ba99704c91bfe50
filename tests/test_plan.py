"""Batch planning as a library: a DICOM folder is scanned once, from the plan to the last output."""
from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import run


def _two_series(d):
    import dcmgen

    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"a{k}.dcm"), np.full((6, 5), k, np.int16), ipp=(0, 0, 2.0 * k),
                           series_uid="1.2.3.4.5.1", series_number=2, description="T1", instance=k + 1)
        dcmgen.write_slice(str(d / f"b{k}.dcm"), np.full((6, 5), 10 + k, np.int16), ipp=(0, 0, 2.0 * k),
                           series_uid="1.2.3.4.5.2", series_number=7, description="CT", instance=k + 1)


def _count_scans(monkeypatch):
    from medconv.dicom import scan

    walks = []
    real = scan.walk
    monkeypatch.setattr(scan, "walk", lambda path: walks.append(path) or real(path))
    scan._SCANS.clear()
    return walks


def test_a_two_series_folder_is_scanned_once(tmp_path, monkeypatch):
    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    walks = _count_scans(monkeypatch)
    r = run("convert", tmp_path / "export", "-o", tmp_path / "out", "--to", "nifti1", "-j", "1")
    assert r.code == 0, r.err
    assert sorted(os.listdir(tmp_path / "out")) == ["2_T1.nii.gz", "7_CT.nii.gz"]
    assert len(walks) == 1
