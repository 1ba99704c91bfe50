"""Corrupted DICOM input: only medconv's typed errors escape, nothing is allocated on a header's word."""
import random

import numpy as np
import pytest

import dcmgen
from helpers import assert_clean_error, pydicom_data, run


def _sources():
    from pydicom.data import get_testdata_file

    return [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small_RLE.dcm"),
            get_testdata_file("MR_small_bigendian.dcm"), get_testdata_file("MR_small_implicit.dcm"),
            pydicom_data("emri_small.dcm")]


@pytest.mark.parametrize("seed", range(3))
def test_mutated_files_raise_only_medconv_errors(tmp_path, seed):
    import medconv
    from medconv.errors import MedconvError

    rng = random.Random(seed)
    sources = _sources()
    for i in range(40):
        with open(rng.choice(sources), "rb") as fh:
            data = bytearray(fh.read())
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(min(len(data), 4000))] = rng.randrange(256)
        path = tmp_path / f"f{i}.dcm"
        path.write_bytes(bytes(data))
        try:
            assert medconv.read(path).array is not None
        except MedconvError:
            pass


def test_huge_claimed_size_is_refused(tmp_path):
    path = dcmgen.write_slice(str(tmp_path / "x.dcm"), np.zeros((4, 4), np.int16), ipp=(0, 0, 0),
                              extra={"NumberOfFrames": "100000"})
    for argv in (("info", path), ("convert", path, tmp_path / "o.nii")):
        assert_clean_error(run(*argv), 3, "100000 frame")
    assert not (tmp_path / "o.nii").exists()


def test_huge_rows_columns_refused(tmp_path):
    path = dcmgen.write_slice(str(tmp_path / "x.dcm"), np.zeros((4, 4), np.int16), ipp=(0, 0, 0))
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 60000
    ds.save_as(path, enforce_file_format=True)
    assert_clean_error(run("info", path), 3, "60000x60000")


def test_non_image_dicom(tmp_path):
    from pydicom.data import get_testdata_file

    assert_clean_error(run("info", get_testdata_file("rtplan.dcm")), 3, "no image")
