"""Batch planning as a library: a DICOM folder is scanned once, from the plan to the last output."""
from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import run


def _two_series(d):
    import dcmgen

    dcmgen.two_series(d)


def _count_scans(monkeypatch):
    from medconv.dicom import scan

    walks = []
    real = scan._walk_stamped  # a folder's walk (its files and their sizes and times)
    monkeypatch.setattr(scan, "_walk_stamped", lambda path: walks.append(path) or real(path))
    scan.SCANS.clear()
    return walks


def test_a_two_series_folder_is_scanned_once(tmp_path, monkeypatch):
    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    walks = _count_scans(monkeypatch)
    r = run("convert", tmp_path / "export", "-o", tmp_path / "out", "--to", "nifti1", "-j", "1")
    assert r.code == 0, r.err
    assert sorted(os.listdir(tmp_path / "out")) == ["2_T1_ax.nii.gz", "7_CT_body.nii.gz"]
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
    assert sorted(os.listdir(tmp_path / "nifti")) == ["2_T1_ax.nii.gz", "7_CT_body.nii.gz", "ct.nii.gz"]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[0].startswith("export/ [series 2] -> ")


def _nifti(path, seed=0):
    import medconv
    from helpers import make_volume

    medconv.write(make_volume((4, 3, 2), "int16", seed=seed), path)
    return str(path)


def test_output_format_is_worked_out_once_and_carried_by_each_task(tmp_path):
    from medconv import plan
    from medconv.errors import UsageError

    assert plan.output_format(None) == ("nifti1", "nii.gz", None)
    assert plan.output_format(None, "{stem}.mhd") == ("metaimage", "mhd", "{stem}")
    assert plan.output_format("mha", "{stem}") == ("metaimage", "mha", "{stem}")
    with pytest.raises(UsageError, match="drop one of them"):
        plan.output_format("nii", "{stem}.mhd")
    src = _nifti(tmp_path / "a.nii.gz")
    (task,) = plan.plan([src], str(tmp_path / "out"), template="{stem}_x.nrrd")
    assert (task.fmt, os.path.basename(task.dst), task.slice_folder) == ("nrrd", "a_x.nrrd", False)
    (task,) = plan.plan([src], str(tmp_path / "out"), to="png")
    assert task.fmt == "png" and task.slice_folder
    (task,) = plan.pair(src, str(tmp_path / "d") + os.sep)
    assert task.fmt == "dicom" and task.implied_dicom
    (task,) = plan.pair(src, str(tmp_path / "d") + os.sep, to="dicom")
    assert not task.implied_dicom


def test_mark_existing_skips_updates_and_redoes_half_pairs(tmp_path):
    from medconv import plan

    srcs = [_nifti(tmp_path / f"in{k}" / "img.nii.gz", k) for k in range(3)]
    out = tmp_path / "out"
    tasks = plan.plan(srcs, str(out), to="hdr", template="{parent}")
    assert plan.mark_existing(tasks, None) == 0 and not any(t.skip or t.force for t in tasks)
    out.mkdir()
    for name in ("in0.hdr", "in0.img", "in1.hdr"):  # in0 complete, in1 half a pair, in2 missing
        (out / name).write_bytes(b"x")
    os.utime(srcs[0], (1, 1))  # older than its output
    assert plan.mark_existing(tasks, "skip") == 1
    assert [(t.skip, t.force) for t in tasks] == [("destination exists", False), ("", True), ("", False)]
    tasks = plan.plan(srcs, str(out), to="hdr", template="{parent}")
    assert plan.mark_existing(tasks, "update") == 1
    assert [(t.skip, t.force) for t in tasks] == [("destination is up to date", False), ("", True), ("", False)]
    os.utime(srcs[0], None)
    os.utime(out / "in0.img", (1, 1))  # one file of the output is older than the source: redone
    tasks = plan.plan(srcs, str(out), to="hdr", template="{parent}")
    assert plan.mark_existing(tasks, "update") == 0 and tasks[0].force


def test_a_task_sent_to_a_worker_carries_a_key_to_its_scanned_series(tmp_path, monkeypatch):
    """A forked worker takes the planned series from its copy of the planning process; where that
    copy does not hold it, the task still names its series by selector."""
    import pickle
    import weakref

    from medconv import plan

    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    tasks = plan.plan([str(tmp_path / "export")], str(tmp_path / "out"))
    assert [t.series for t in tasks] == ["2", "7"] and all(t.scanned is not None for t in tasks)
    data = pickle.dumps(tasks[1])
    assert len(data) < 1000  # the frames do not travel
    copy = pickle.loads(data)
    assert copy.scanned is tasks[1].scanned and (copy.series, copy.dst, copy.fmt) == ("7", tasks[1].dst, "nifti1")
    monkeypatch.setattr(plan, "_SCANNED", weakref.WeakValueDictionary())
    assert pickle.loads(data).scanned is None


def test_a_two_series_folder_is_scanned_once_with_worker_processes(tmp_path, monkeypatch):
    from medconv.dicom import scan

    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    log = tmp_path / "walks.txt"
    real = scan._walk_stamped  # a folder's walk (its files and their sizes and times)

    def walk(path):
        with open(log, "a") as fh:  # worker processes write here too
            fh.write(path + "\n")
        return real(path)

    monkeypatch.setattr(scan, "_walk_stamped", walk)
    scan.SCANS.clear()
    r = run("convert", tmp_path / "export", "-o", tmp_path / "out", "--to", "nifti1", "-j", "2")
    assert r.code == 0, r.err
    assert sorted(os.listdir(tmp_path / "out")) == ["2_T1_ax.nii.gz", "7_CT_body.nii.gz"]
    assert len(log.read_text().splitlines()) == 1


def test_stats_compute_many_gives_the_rows_the_command_prints(tmp_path):
    import json

    from medconv import stats

    srcs = [_nifti(tmp_path / f"{k}.nii.gz", k) for k in range(2)]
    results, failures, fields = stats.compute_many(srcs, percentiles=(5, 50))
    assert not failures and fields[-6:] == ("p5", "p50", "nonzero", "sum", "volume_mm3", "volume_ml")
    r = run("stats", *srcs, "--percentile", "5", "50", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [row for rows in results for row in rows]


def test_medconv_volume_is_the_class(tmp_path):
    import subprocess
    import sys

    import medconv
    from medconv.volume import Volume

    assert medconv.Volume is Volume and isinstance(medconv.read(_nifti(tmp_path / "a.nii.gz")), medconv.Volume)
    code = "import sys, medconv; print('numpy' in sys.modules); medconv.Volume; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
