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


def test_readme_python_use_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's "Python use" block, run on a DICOM folder of two series, a MetaImage and a mask."""
    import re

    import medconv
    from helpers import ROOT, make_volume

    pytest.importorskip("pydicom")
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## Python use"):]
    code = re.search(r"```python\n(.*?)```", section[: section.index("\n## ", 1)], re.S).group(1)
    _two_series(tmp_path / "export")
    ct = make_volume((6, 5, 4), "int16", seed=3)
    medconv.write(ct, tmp_path / "ct.mha")
    medconv.write(ct, tmp_path / "ct.nii.gz")
    medconv.write(ct.replace(data=(ct.array > 0).astype(np.uint8), scaling=None), tmp_path / "liver.nii.gz")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert sorted(os.listdir(tmp_path / "nifti")) == ["2_T1.nii.gz", "7_CT.nii.gz", "ct.nii.gz"]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[0].startswith("export/ [series 2] -> ")
