"""Native (uncompressed) DICOM converts from the light header view alone: diffusion gradients,
vendor private elements and sidecar keys come without importing pydicom, and agree with what the
full pydicom Dataset gives (gradients.LIGHT_VIEW = False reads every value there)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import dwigen
import numpy as np
import pytest

#: run medconv in a fresh interpreter and say which of the heavy readers it imported
_PROBE = """
import sys
from medconv.entry import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("IMPORTED", code, " ".join(m for m in ("pydicom", "nibabel") if m in sys.modules))
"""


def _convert_probe(args):
    """(exit code, modules among pydicom/nibabel imported) of `medconv ARGS` in a new process."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("IMPORTED")]
    assert line, out.stderr
    words = line[-1].split()
    return int(words[1]), set(words[2:])


def _read_both(path, monkeypatch, series=None):
    """The volume read through the light view and through pydicom (LIGHT_VIEW off)."""
    import medconv
    from medconv.dicom import gradients, scan

    scan.SCANS.clear()
    light = medconv.read(path, series=series) if series else medconv.read(path)
    scan.SCANS.clear()
    with monkeypatch.context() as m:
        m.setattr(gradients, "LIGHT_VIEW", False)
        heavy = medconv.read(path, series=series) if series else medconv.read(path)
    scan.SCANS.clear()
    return light, heavy


def _assert_same(light, heavy):
    assert light.metadata.get("sidecar") == heavy.metadata.get("sidecar")
    assert light.metadata.get("diffusion") == heavy.metadata.get("diffusion")
    np.testing.assert_array_equal(light.array, heavy.array)
    np.testing.assert_allclose(light.affine, heavy.affine)


def test_enhanced_dwi_converts_without_pydicom(tmp_path, monkeypatch):
    src = str(tmp_path / "enh.dcm")
    dwigen.write_enhanced(src)
    out = tmp_path / "out.nii.gz"
    code, imported = _convert_probe(["convert", src, str(out), "--sidecar"])
    assert code == 0
    assert imported == set()
    for ext in (".bval", ".bvec", ".json"):
        assert (tmp_path / ("out" + ext)).is_file()
    light, heavy = _read_both(src, monkeypatch)
    assert light.metadata["diffusion"]["bvals"] == [b for b, _ in dwigen.SCHEME]
    _assert_same(light, heavy)


@pytest.mark.parametrize("vendor", dwigen.VENDORS)
def test_classic_dwi_converts_without_pydicom(tmp_path, monkeypatch, vendor):
    src = dwigen.write_series(str(tmp_path / "dwi"), vendor)
    out = tmp_path / "out.nii.gz"
    code, imported = _convert_probe(["convert", src, str(out), "--sidecar"])
    assert code == 0
    assert imported == set()
    assert (tmp_path / "out.bval").read_text().split() == ["0", "1000", "1000", "2000"]
    light, heavy = _read_both(src, monkeypatch)
    _assert_same(light, heavy)


def test_private_block_elsewhere_is_read_through_pydicom(tmp_path, monkeypatch):
    """A Philips creator reserved at a block the light view does not keep: the full header answers,
    and the gradients are the same as where the block is the usual one."""
    import pydicom

    src = dwigen.write_series(str(tmp_path / "dwi"), "philips")
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        ds = pydicom.dcmread(path)
        for group in (0x2001, 0x2005):
            moved = {}
            for el in list(ds):
                if el.tag.group == group and 0x1000 <= el.tag.element <= 0x10FF:
                    moved[el.tag.element & 0xFF] = el
                    del ds[el.tag]
            del ds[(group << 16) | 0x10]
            for block in range(0x10, 0x40):  # creators of other makers fill the first blocks
                ds.add_new((group << 16) | block, "LO", f"OTHER {block}")
            creator = "Philips Imaging DD 001" if group == 0x2001 else "Philips MR Imaging DD 001"
            ds.add_new((group << 16) | 0x40, "LO", creator)
            for low, el in moved.items():
                ds.add_new((group << 16) | 0x4000 | low, el.VR, el.value)
        ds.save_as(path, enforce_file_format=True)
    code, imported = _convert_probe(["convert", src, str(tmp_path / "out.nii.gz")])
    assert code == 0
    assert "pydicom" in imported
    assert (tmp_path / "out.bval").read_text().split() == ["0", "1000", "1000", "2000"]
    light, heavy = _read_both(src, monkeypatch)
    _assert_same(light, heavy)


def _csa2(tags):
    """A CSA2 header holding `tags`: [(name, vr, [item text, ...])]."""
    out = b"SV10" + b"\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, vr, items in tags:
        out += struct.pack("<64si4s3i", name.encode(), len(items), vr.encode(), 3, len(items) + 1, 77)
        for text in list(items) + [""]:  # one empty item past the values, as scanners write
            raw = text.encode() + (b"\x00" if text else b"")
            out += struct.pack("<4i", len(raw), len(raw), 77, 0) + raw + b"\x00" * ((4 - len(raw) % 4) % 4)
    return out


def test_csa_reader_agrees_with_nibabel():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import csareader

    from medconv.dicom import csa

    raw = _csa2([("B_value", "IS", ["1000"]), ("DiffusionGradientDirection", "FD", ["0.5", "-0.5", "0.70710678"]),
                 ("SequenceName", "SH", ["*ep_b1000#1"]), ("MosaicRefAcqTimes", "FD", ["0", "52.5", "105"])])
    mine, theirs = csa.read(raw), csareader.read(raw)
    assert set(mine["tags"]) == set(theirs["tags"])
    for name, tag in theirs["tags"].items():
        assert mine["tags"][name]["items"] == tag["items"], name
    assert csa.scalar(mine, "B_value") == 1000
    assert csa.vector(mine, "DiffusionGradientDirection", 3) == [0.5, -0.5, 0.70710678]
    with pytest.raises(csa.CSAError):
        csa.read(b"SV10\x04\x03\x02\x01" + struct.pack("<2I", 0, 77))


def test_vendor_series_agree_with_the_pydicom_path(vendor_testdata, monkeypatch):
    """Every series of the vendor corpora: the same sidecar, gradients and voxels either way."""
    from medconv import dicom

    for corpus in sorted(os.listdir(vendor_testdata)):
        src = os.path.join(vendor_testdata, corpus, "In")
        if not os.path.isdir(src):
            continue
        for entry in dicom.list_series(src):
            light, heavy = _read_both(src, monkeypatch, series=entry["selector"])
            _assert_same(light, heavy)


def test_vendor_corpora_convert_without_pydicom(vendor_testdata, tmp_path):
    for corpus in sorted(os.listdir(vendor_testdata)):
        src = os.path.join(vendor_testdata, corpus, "In")
        if not os.path.isdir(src):
            continue
        code, imported = _convert_probe(["convert", src, "-o", str(tmp_path / corpus), "--to", "nifti1", "-q",
                                         "--keep-going", "--sidecar"])
        assert code == 0, corpus
        assert imported == set(), corpus
