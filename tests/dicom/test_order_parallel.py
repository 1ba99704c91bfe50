"""DICOM: the Instance Number order note, and parallel decode of compressed multi-frame files."""
import os

import numpy as np
import pytest

import dcmgen
from helpers import run

pytest.importorskip("pydicom")

NOTE = "Instance Number order is not spatial"


def _series(dirpath, instances):
    data = np.random.default_rng(1).integers(-500, 500, size=(6, 5, len(instances))).astype(np.int16)
    for k, inst in enumerate(instances):
        dcmgen.write_slice(os.path.join(dirpath, f"f{k}.dcm"), data[:, :, k], ipp=(0.0, 0.0, 2.0 * k),
                           instance=inst)
    return data


def test_instance_order_not_spatial_is_noted(tmp_path):
    os.makedirs(tmp_path / "s")
    data = _series(tmp_path / "s", [3, 1, 4, 2, 5])
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert r.code == 0, r.err
    assert NOTE in r.err and "Traceback" not in r.err
    import nibabel as nib

    # the slices still come out in spatial order, whatever the numbering said
    got = np.asarray(nib.load(tmp_path / "o.nii").dataobj)
    assert np.array_equal(got, data.transpose(1, 0, 2))
    r = run("--quiet", "info", tmp_path / "s")
    assert r.code == 0 and NOTE not in r.err


@pytest.mark.parametrize("instances", [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
def test_monotone_instance_numbers_are_quiet(tmp_path, instances):
    os.makedirs(tmp_path / "s")
    _series(tmp_path / "s", instances)
    r = run("info", tmp_path / "s")
    assert r.code == 0, r.err
    assert NOTE not in r.err


@pytest.mark.parametrize("name", ["emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_parallel_frame_decode_equals_sequential(name, monkeypatch):
    import threading

    import pydicom

    import medconv
    from helpers import pydicom_data
    from medconv.dicom import pixels

    path = pydicom_data(name)
    used = set()
    one = pixels._decode_one

    def spy(ds, index):
        used.add(threading.get_ident())
        return one(ds, index)

    monkeypatch.setattr(pixels, "_decode_one", spy)
    monkeypatch.setattr(pixels.os, "cpu_count", lambda: 4)  # pool even on a 1-CPU runner
    monkeypatch.setattr(pixels, "PARALLEL_MIN_FRAMES", 2)
    parallel = np.asarray(medconv.read(path).array)
    assert threading.get_ident() not in used and len(used) >= 1  # decoded in worker threads

    used.clear()
    monkeypatch.setattr(pixels, "PARALLEL_MIN_FRAMES", 10**9)
    sequential = np.asarray(medconv.read(path).array)
    assert used == {threading.get_ident()}

    assert parallel.dtype == sequential.dtype and np.array_equal(parallel, sequential)
    ref = pydicom.dcmread(path).pixel_array  # [frame, row, col]
    assert parallel.shape[2] == ref.shape[0] > 1
    assert np.array_equal(sequential.transpose(2, 1, 0), ref)


def test_shared_instance_number_is_no_order_to_note(tmp_path):
    """Frames of one multi-frame file (or files) sharing an InstanceNumber: nothing to compare."""
    os.makedirs(tmp_path / "s")
    _series(tmp_path / "s", [1, 1, 1, 1])
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert r.code == 0, r.err
    assert NOTE not in r.err
