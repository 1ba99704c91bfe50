"""Every registered backend against one contract, parametrised from the registry.

A new format is tested here the day its row is added: write a small image under its default
extension (DICOM: a series folder), detect it by content (also under a wrong extension), read it
header-only without touching voxels, read its native header, refuse to overwrite without force,
and leave nothing behind when a write fails.
"""
import importlib.util
import os
import shutil

import numpy as np
import pytest

import medconv
from medconv import geometry
from medconv.errors import MedconvError, OutputError
from medconv.formats import FORMATS, backend
from medconv.volume import Volume

WRITABLE = [f for f in FORMATS if f.can_write and importlib.util.find_spec(f.module) is not None]


def _name(fmt) -> str:
    """The default file of the format (a folder for DICOM)."""
    return "c" + fmt.default_extension


def _sample(fmt):
    ndim = 2 if 2 in fmt.ndims and 3 not in fmt.ndims else 3
    shape = (6, 5) if ndim == 2 else (6, 5, 4)
    data = (np.arange(np.prod(shape)) % 200).astype(np.uint8 if "uint8" in fmt.dtypes else fmt.dtypes[0])
    aff = np.diag([-1.0, -1.0, 1.0, 1.0]) if not fmt.geometry else np.diag([-1.5, 2.0, 2.5, 1.0])
    return Volume(data=data.reshape(shape), affine=aff)


@pytest.fixture(params=WRITABLE, ids=lambda f: f.name)
def written(request, tmp_path):
    fmt = request.param
    vol = _sample(fmt)
    path = str(tmp_path / _name(fmt))
    files = medconv.write(vol, path, to=fmt.name)
    assert files and all(os.path.exists(f) for f in files)
    return fmt, vol, path, files


def test_detected_by_content(written):
    fmt, _, path, _ = written
    assert medconv.detect(path) == fmt.name


def test_detected_under_a_wrong_extension(written, tmp_path):
    fmt, vol, path, files = written
    odd = tmp_path / "renamed.data"
    if fmt.default_extension == "/":  # a series: each of its files is found by content
        shutil.copy(files[0], odd)
        assert medconv.detect(str(odd)) == fmt.name
        return
    if len(files) > 1 or fmt.name == "nifti2":
        pytest.skip("a multi-file format is found through its header's name")
    shutil.copy(path, odd)
    assert medconv.detect(str(odd)) == fmt.name
    back = medconv.read(str(odd))
    _assert_values(fmt, back, vol)


def _assert_values(fmt, got, want):
    if fmt.geometry and geometry.axcodes(got.affine) != geometry.axcodes(want.affine):
        # a DICOM series is read in its slices' order along their normal: the same voxels in space
        got = got.reoriented(geometry.axcodes(want.affine))
        np.testing.assert_allclose(got.affine, want.affine, atol=1e-4)
    if fmt.name == "jpeg":  # lossy: close, not equal
        diff = np.abs(np.squeeze(got.array).astype(int) - np.squeeze(want.array).astype(int))
        assert diff.max() <= 8
    else:
        np.testing.assert_array_equal(np.squeeze(got.array), np.squeeze(want.array))


def test_header_only_read_does_not_touch_voxels(written):
    fmt, vol, path, _ = written
    head = medconv.read(path, header_only=True)
    assert head.format in (fmt.name, "nifti1", "nifti2") or fmt.name in ("png", "jpeg", "tiff", "bmp")
    assert tuple(n for n in head.grid_shape if n != 1) == tuple(n for n in vol.grid_shape if n != 1)
    assert not head.is_loaded or fmt.name in ("png", "jpeg", "tiff", "bmp")
    _assert_values(fmt, medconv.read(path), vol)


def test_native_header_is_a_dict(written):
    fmt, _, path, _ = written
    hdr = backend(fmt.name).read_header(path, fmt.name)
    if fmt.name == "dicom":  # the pydicom data set of the series' first file, a mapping of its elements
        assert len(hdr) and hdr.SOPInstanceUID
    else:
        assert isinstance(hdr, dict) and hdr


def test_existing_destination_refused_and_kept(written):
    fmt, vol, path, files = written
    before = {f: open(f, "rb").read() for f in files}
    with pytest.raises(OutputError):
        medconv.write(vol, path, to=fmt.name)
    assert {f: open(f, "rb").read() for f in files} == before
    medconv.write(vol, path, to=fmt.name, force=True)


def test_failed_write_leaves_nothing(tmp_path):
    """A volume no format can hold (complex128 2D) fails everywhere except NIfTI; no file appears."""
    vol = Volume(data=np.ones((4, 4, 4), np.complex128), affine=np.eye(4), value_kind="complex")
    for fmt in WRITABLE:
        if "complex128" in fmt.dtypes:
            continue
        out = tmp_path / fmt.name
        out.mkdir()
        with pytest.raises(MedconvError):
            medconv.write(vol, str(out / _name(fmt)), to=fmt.name)
        assert os.listdir(out) == [], fmt.name
