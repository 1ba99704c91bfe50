"""Writers refuse geometry their format cannot hold (float32 overflow, NaN, infinity) with a clean
output error, never a crash: a corrupt MGZ spacing near float32's maximum, a NIfTI srow near it."""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, make_volume, run
from medconv.errors import MedconvError, OutputError


def _nib_data(name):
    import nibabel

    return os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", name)


def _big_mgz(tmp_path):
    """nibabel's test.mgz with its z voxel size set to -float32-max-ish (bytes 0xffffff7f)."""
    raw = bytearray(gzip.decompress(open(_nib_data("test.mgz"), "rb").read()))
    raw[36:40] = b"\xff\xff\xff\x7f"
    path = tmp_path / "big.mgz"
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


@pytest.mark.parametrize("ext", ["nii", "nii.gz", "hdr", "mgz"])
def test_huge_mgz_spacing_is_an_output_error(tmp_path, ext):
    src = _big_mgz(tmp_path)
    dst = tmp_path / f"o.{ext}"
    r = run("convert", src, dst)
    assert_clean_error(r, 4, "cannot hold this geometry value", "float32")
    assert "internal error" not in r.err
    assert not [f for f in os.listdir(tmp_path) if f.startswith("o.") or ".part" in f]


def test_huge_mgz_spacing_goes_to_formats_storing_doubles(tmp_path):
    src = _big_mgz(tmp_path)
    for dst in ("o.mha", "o.nrrd", "o.mnc"):
        r = run("convert", src, tmp_path / dst)
        assert r.code == 0, r.err
    assert run("convert", src, tmp_path / "o2.nii", "--nifti2").code == 0


def test_huge_nifti_srow_to_mgz_is_an_output_error(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Pair(np.zeros((4, 4, 4), np.int16), np.eye(4))
    nib.save(img, str(tmp_path / "a.hdr"))
    hdr = bytearray((tmp_path / "a.hdr").read_bytes())
    struct.pack_into("<f", hdr, 280, 3.0e38)  # srow_x[0]: the centre (c_ras) overflows float32
    struct.pack_into("<f", hdr, 292, 3.0e38)  # srow_x[3]
    (tmp_path / "a.hdr").write_bytes(bytes(hdr))
    r = run("convert", tmp_path / "a.hdr", tmp_path / "o.mgz")
    assert_clean_error(r, 4, "o.mgz", "cannot hold this geometry value")
    assert not (tmp_path / "o.mgz").exists()


_AFFINES = {
    "huge_spacing": np.diag([1e39, 1.0, 1.0, 1.0]),
    "huge_origin": np.array([[1.0, 0, 0, 1e39], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "nan": np.diag([np.nan, 1.0, 1.0, 1.0]),
    "inf_origin": np.array([[1.0, 0, 0, np.inf], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "overflowing": np.diag([1e300, 1e300, 1e300, 1.0]),
}


@pytest.mark.parametrize("case", sorted(_AFFINES))
@pytest.mark.parametrize("dst,opts", [("o.nii", {}), ("o.nii", {"nifti2": True}), ("o.hdr", {}),
                                      ("o.hdr", {"to": "analyze"}), ("o.mha", {}), ("o.nrrd", {}), ("o.mnc", {}),
                                      ("o.mgz", {}), ("dcm/", {"to": "dicom"})])
def test_every_writer_refuses_or_keeps_absurd_geometry(tmp_path, recwarn, case, dst, opts):
    volume = make_volume((4, 4, 3), "int16", affine=_AFFINES[case])
    try:
        medconv.write(volume, tmp_path / dst, **opts)
    except MedconvError as exc:
        assert isinstance(exc, OutputError) or exc.exit_code in (2, 4), exc
        assert not [f for f in os.listdir(tmp_path) if not f.startswith(".") or ".part" in f]
    else:
        assert np.isfinite(_AFFINES[case]).all(), "a non-finite affine was written"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
