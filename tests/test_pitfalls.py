"""End-to-end checks of 25 pitfalls that converters and anonymisers commonly fall into."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.dicom import dcmgen
from tests.helpers import ROOT, assert_clean_error, make_volume, oblique_affine, run

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def _nifti(path):
    img = nib.load(str(path))
    return img, np.asarray(img.dataobj)


def _series(tmp_path, name="ser", **kw):
    d = tmp_path / name
    paths, data, pos = dcmgen.make_series(str(d), **kw)
    return d, data, pos


def _world_of(aff, ijk):
    return (aff @ np.r_[ijk, 1.0])[:3]


# 1 slice order
def test_pitfall_01_slice_order(tmp_path):
    d, data, pos = _series(tmp_path, names=[f"z{n}.dcm" for n in "cafbed"], reverse_instances=True)
    for name, inst in zip(sorted(os.listdir(d)), (4, 1, 6, 2, 5, 3)):  # numbering neither spatial nor by name
        ds = pydicom.dcmread(os.path.join(d, name))
        ds.InstanceNumber = inst
        ds.save_as(os.path.join(d, name))
    out = tmp_path / "o.nii"
    r = run("convert", d, out)
    assert r.code == 0, r.err
    assert "instance number" in r.err.lower()
    img, vox = _nifti(out)
    # voxel [i=col, j=row, k] is data[row, col, k]; slice k must sit at its own IPP
    assert np.array_equal(vox, np.transpose(data, (1, 0, 2)))
    for k, ipp in enumerate(pos):
        assert np.allclose(_world_of(img.affine, (0, 0, k)), FLIP[:3, :3] @ ipp, atol=1e-4)


# 2 missing slice
def test_pitfall_02_missing_slice_warns_and_strict_refuses(tmp_path):
    d, data, pos = _series(tmp_path, skip=(3,))
    r = run("convert", d, tmp_path / "o.nii")
    assert "missing" in r.err.lower() and "uneven" in r.err.lower()
    out = tmp_path / "s.nii"
    r = run("convert", "--strict", d, out)
    assert_clean_error(r, 3, "uneven")
    assert not out.exists()


def test_pitfall_02_gap_is_refused_or_filled_never_misplaced(tmp_path):
    d, data, pos = _series(tmp_path, skip=(3,))
    out = tmp_path / "o.nii"
    r = run("convert", d, out)
    assert r.code == 3 and "missing" in r.err and not out.exists()
    r = run("convert", d, out, "--fill-gaps")
    assert r.code == 0, r.err
    img, vox = _nifti(out)
    for ipp in pos:  # every real slice sits at its true world position
        k = int(round(np.linalg.solve(img.affine[:3, :3], FLIP[:3, :3] @ ipp - img.affine[:3, 3])[2]))  # noqa: RUF046
        assert np.allclose(_world_of(img.affine, (0, 0, k)), FLIP[:3, :3] @ ipp, atol=1e-3)
        assert vox[:, :, k].any()


# 3 gantry tilt
def test_pitfall_03_gantry_tilt_sheared_sform(tmp_path):
    d, data, pos = _series(tmp_path, step=(0.0, 0.6, 2.5))
    out = tmp_path / "o.nii.gz"
    r = run("convert", d, out)
    assert r.code == 0, r.err
    assert "tilt" in r.err.lower()
    img, vox = _nifti(out)
    sform, code = img.header.get_sform(coded=True)
    assert code > 0
    for k, ipp in enumerate(pos):
        assert np.allclose(_world_of(sform, (3, 2, k)),
                           FLIP[:3, :3] @ (np.asarray(ipp) + 3 * 0.8 * np.array([1, 0, 0]) + 2 * 0.75 * np.array([0, 1, 0])),
                           atol=1e-3)


# 4 several series / echoes in one folder
def test_pitfall_04_series_and_echoes_split(tmp_path):
    root = tmp_path / "mix"
    dcmgen.make_series(str(root / "a"), series_uid="1.2.3.4.10", series_number=10)
    dcmgen.make_series(str(root / "b"), series_uid="1.2.3.4.20", series_number=20, extra={"EchoTime": "10"})
    dcmgen.make_series(str(root / "c"), series_uid="1.2.3.4.20", series_number=20, seed=3,
                       extra={"EchoTime": "80"})
    # a localiser in another plane
    dcmgen.make_series(str(root / "loc"), shape=(12, 10, 1), iop=(0, 1, 0, 0, 0, -1), series_uid="1.2.3.4.30",
                       series_number=30)
    r = run("info", root, "--json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert len(rows) == 4
    assert sorted(row["shape"][2] if len(row["shape"]) > 2 else 1 for row in rows) == [1, 6, 6, 6]
    out = tmp_path / "out"
    r = run("convert", root, "-o", out, "--to", "nifti1")
    assert r.code == 0, r.err
    assert len(os.listdir(out)) == 4


# 5 never read stdin in a batch
def test_pitfall_05_no_prompt_on_two_series(tmp_path):
    root = tmp_path / "two"
    dcmgen.make_series(str(root / "a"), series_uid="1.2.3.4.1", series_number=1, shape=(4, 4, 2))
    dcmgen.make_series(str(root / "b"), series_uid="1.2.3.4.2", series_number=2, shape=(4, 4, 2))
    out = tmp_path / "out.nii"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "medconv", "convert", str(root), str(out)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("medconv: error:") == 1 and "Traceback" not in proc.stderr
    assert "--series" in proc.stderr
    assert len(proc.stderr) < 4000 and proc.stdout == ""
    assert not out.exists()


# 6 fragments != frames
def _fragmented(tmp_path, n_frames, frags, bot):
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    d, data, pos = _series(tmp_path, shape=(8, 6, 1))
    path = os.path.join(d, "slice000.dcm")
    ds = pydicom.dcmread(path)
    frames = np.stack([data[:, :, 0] + 7 * f for f in range(n_frames)]).astype(np.int16)
    ds.NumberOfFrames = n_frames
    ds.PixelData = frames.tobytes()
    ds.compress(RLELossless, frames if n_frames > 1 else frames[0])
    items = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=n_frames)
    enc = [bytes(f) for f in items]
    # split every frame into several fragments (legal for any encapsulated syntax in PS3.5 A.4)
    ds.PixelData = encapsulate(enc, fragments_per_frame=frags, has_bot=bot)
    ds.save_as(path, enforce_file_format=True)
    return d, frames


def test_pitfall_06_fragments_per_frame(tmp_path):
    d, frames = _fragmented(tmp_path, 1, 3, False)
    v = __import__("medconv").read(str(d))
    got = v.array[..., 0]
    assert np.array_equal(got, frames[0].T)


def test_pitfall_06_multiframe_fragments_all_frames_or_loud_failure(tmp_path):
    d, frames = _fragmented(tmp_path / "bot", 3, 2, True)
    out = tmp_path / "bot.nii"
    r = run("convert", d, out)
    assert r.code == 0, r.err
    vox = _nifti(out)[1].reshape(6, 8, 3)
    assert np.array_equal(vox, frames.transpose(2, 1, 0))  # every frame, not frame 1 repeated
    d, frames = _fragmented(tmp_path / "nobot", 3, 2, False)
    out = tmp_path / "nobot.nii"
    r = run("convert", d, out)
    if r.code == 0:
        assert np.array_equal(_nifti(out)[1].reshape(6, 8, 3), frames.transpose(2, 1, 0))
    else:
        assert_clean_error(r, 3, "frame")
        assert not out.exists()


# 7 rescale slope/intercept
def test_pitfall_07_rescale_constant_and_varying(tmp_path):
    d, data, _ = _series(tmp_path, "const", slope=2, intercept=-1024)
    out = tmp_path / "c.nii"
    assert run("convert", d, out).code == 0
    img = nib.load(out)
    assert img.dataobj.get_unscaled().dtype.kind == "i" and img.dataobj.slope == 2 and img.dataobj.inter == -1024
    assert np.array_equal(img.get_fdata(), np.transpose(data, (1, 0, 2)) * 2.0 - 1024)
    vd = tmp_path / "vary"
    os.makedirs(vd)
    rng = np.random.default_rng(1)
    raw2 = rng.integers(0, 1000, size=(6, 5, 4)).astype(np.int16)
    slopes = [0.5, 1.0, 1.5, 2.25]
    for k in range(4):
        dcmgen.write_slice(str(vd / f"{k}.dcm"), raw2[:, :, k], ipp=(0, 0, 2.5 * k), instance=k + 1, slope=slopes[k],
                           intercept=k)
    out2 = tmp_path / "v.nii"
    assert run("convert", vd, out2).code == 0
    img2, vals = _nifti(out2)
    assert vals.dtype == np.float32
    expect = np.stack([raw2[:, :, k] * slopes[k] + k for k in range(4)], axis=2)
    assert np.allclose(img2.get_fdata(), np.transpose(expect, (1, 0, 2)), atol=1e-4)


# 8 signed/unsigned
def test_pitfall_08_unsigned_and_negative_slope(tmp_path):
    ud = tmp_path / "u"
    os.makedirs(ud)
    px = np.array([[0, 1, 40000, 65535], [32768, 32767, 2, 3]], dtype=np.uint16)
    for k in range(2):
        dcmgen.write_slice(str(ud / f"{k}.dcm"), px, ipp=(0, 0, k), instance=k + 1, signed=False)
    out = tmp_path / "u.nii"
    assert run("convert", ud, out).code == 0
    img, vox = _nifti(out)
    assert np.array_equal(img.get_fdata()[..., 0], px.T.astype(float))
    sd = tmp_path / "s"
    os.makedirs(sd)
    spx = np.array([[-32768, -1, 0, 32767]], dtype=np.int16)
    for k in range(2):
        dcmgen.write_slice(str(sd / f"{k}.dcm"), spx, ipp=(0, 0, k), instance=k + 1, slope=-1, intercept=0)
    out2 = tmp_path / "s.nii"
    assert run("convert", sd, out2).code == 0
    img2, _ = _nifti(out2)
    assert np.array_equal(img2.get_fdata()[..., 0], -spx.T.astype(float))  # 32768, no int16 wrap


# 9 vendor (Philips) scaling: one documented choice (RescaleSlope/Intercept), stable
def test_pitfall_09_philips_scaling(tmp_path):
    """Philips: floating-point values (SV x RS + RI) / (RS x SS) by default, as dcm2niix; the display
    values (SV x RS + RI) on request; one documented choice, stable."""
    d, data, _ = _series(tmp_path, modality="MR", slope=2, intercept=5, extra={"Manufacturer": "Philips"})
    for name in os.listdir(d):
        p = os.path.join(d, name)
        ds = pydicom.dcmread(p)
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.125)
        ds.save_as(p)
    display = np.transpose(data, (1, 0, 2)) * 2.0 + 5
    v1 = __import__("medconv").read(str(d))
    assert np.allclose(v1.real(), display / (2.0 * 0.125))
    v2 = __import__("medconv").read(str(d), philips_scaling="display")
    assert np.allclose(v2.real(), display)
    out = tmp_path / "p.nii"
    assert run("convert", d, out).code == 0
    assert np.allclose(_nifti(out)[0].get_fdata(), display / 0.25)
    out2 = tmp_path / "p2.nii"
    assert run("convert", d, out2, "--philips-scaling", "display").code == 0
    assert np.array_equal(_nifti(out2)[0].get_fdata(), display)


# 10 MONOCHROME1 inverted after the window in 2D exports; volume keeps real values
def test_pitfall_10_monochrome1(tmp_path):
    px = np.array([[0, 100], [200, 300]], dtype=np.int16)
    d1, d2 = tmp_path / "m1", tmp_path / "m2"
    os.makedirs(d1)
    os.makedirs(d2)
    dcmgen.write_slice(str(d1 / "a.dcm"), px, ipp=(0, 0, 0), photometric="MONOCHROME1")
    dcmgen.write_slice(str(d2 / "a.dcm"), px, ipp=(0, 0, 0), photometric="MONOCHROME2")
    from PIL import Image

    pngs = []
    for d in (d1, d2):
        out = tmp_path / f"{d.name}.png"
        r = run("convert", d, out, "--window", "150,300")
        assert r.code == 0, r.err
        pngs.append(np.asarray(Image.open(out)).astype(int))
    assert np.array_equal(pngs[0], 255 - pngs[1])
    assert pngs[1].max() > pngs[1].min()
    nii = tmp_path / "m1.nii"
    assert run("convert", d1, nii).code == 0
    assert np.array_equal(_nifti(nii)[0].get_fdata()[..., 0], px.T.astype(float))


# 11 LPS vs RAS
def test_pitfall_11_lps_ras(tmp_path):
    d, data, pos = _series(tmp_path, iop=(0.8, 0.6, 0, -0.6, 0.8, 0))
    out = tmp_path / "o.nii"
    assert run("convert", d, out).code == 0
    img, _ = _nifti(out)
    x, y, z = pos[0]
    assert np.allclose(img.affine[:3, 3], (-x, -y, z), atol=1e-4)
    r = run("info", out, "--get", "orientation")
    assert r.out.strip() == "".join(nib.aff2axcodes(img.affine))
    mha = tmp_path / "o.mha"
    assert run("convert", out, mha).code == 0
    head = mha.read_bytes()[:2000].decode("latin-1")
    offset = [float(v) for v in head.split("Offset = ")[1].splitlines()[0].split()]
    assert np.allclose(offset, (x, y, z), atol=1e-4)


# 12 qform vs sform
def test_pitfall_12_sform_preferred_and_written_consistent(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, None)
    s = oblique_affine()
    img.set_sform(s, code=2)
    img.set_qform(np.diag([3.0, 3.0, 3.0, 1.0]), code=1)
    src = tmp_path / "q.nii"
    nib.save(img, src)
    r = run("info", src, "--json")
    assert r.code == 0
    assert np.allclose(json.loads(r.out)["affine"], s, atol=1e-4)
    assert "differ" in r.err.lower() or "disagree" in r.err.lower()
    out = tmp_path / "o.nii"
    assert run("convert", src, out).code == 0
    o = nib.load(out)
    assert np.allclose(o.header.get_sform(), s, atol=1e-4)
    assert o.header["qform_code"] > 0 and np.allclose(o.header.get_qform(), s, atol=1e-3)


# 13 codes 0/0
def test_pitfall_13_no_orientation_said_unknown(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), None)
    img.header.set_sform(None, code=0)
    img.header.set_qform(None, code=0)
    img.header.set_zooms((2, 2, 3))
    p = tmp_path / "z.nii"
    nib.save(img, p)
    assert nib.load(p).header["sform_code"] == 0 and nib.load(p).header["qform_code"] == 0
    r = run("info", p, "--get", "orientation")
    assert r.code == 0 and r.out.strip() == "unknown"
    out = tmp_path / "o.nii"
    r = run("convert", p, out)
    assert r.code == 0
    # the one documented rule: nibabel's fallback affine, written explicitly
    assert np.allclose(nib.load(out).affine, nib.load(p).affine, atol=1e-4)


# 14 non-orthonormal direction cosines
def test_pitfall_14_skewed_affine_read(tmp_path):
    aff = np.array([[1.0, 0.3, 0, -5], [0, 1.0, 0, 2], [0, 0, 2.0, 1], [0, 0, 0, 1]])
    p = tmp_path / "skew.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.int16), aff), p)
    r = run("info", p, "--json")
    assert r.code == 0, r.err
    assert np.allclose(json.loads(r.out)["affine"], aff, atol=1e-4)
    assert "not perpendicular" in r.err and "16.70 degrees" in r.err  # kept, and said so
    out = tmp_path / "o.nii"
    assert run("convert", p, out).code == 0
    assert np.allclose(nib.load(out).affine, aff, atol=1e-4)
    straight = tmp_path / "straight.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.int16), np.diag([1.0, 1.0, 2.0, 1.0])), straight)
    assert "perpendicular" not in run("info", straight).err


# 15 NIfTI-2 when a dimension exceeds 32767
def test_pitfall_15_nifti2_automatic(tmp_path):
    import medconv

    v = make_volume(shape=(40000, 1, 1), dtype="uint8", affine=np.eye(4))
    out = tmp_path / "big.nii"
    medconv.write(v, str(out))
    assert int.from_bytes(out.read_bytes()[:4], "little") == 540
    back = medconv.read(str(out))
    assert back.shape[:3] == (40000, 1, 1) and np.array_equal(back.array.reshape(-1), v.data.reshape(-1))
    assert run("info", out, "--get", "format").out.strip() == "nifti2"


# 16 MetaImage LIST + MSB
def test_pitfall_16_metaimage_list_msb(tmp_path):

    import medconv

    data = np.arange(3 * 4 * 2, dtype=">i2").reshape(2, 4, 3)  # [z, y, x] on disk
    for z in range(2):
        (tmp_path / f"s{z}.raw").write_bytes(data[z].tobytes())
    (tmp_path / "l.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 3 4 2\nElementType = MET_SHORT\n"
                                    "ElementSpacing = 1 1 2\nElementByteOrderMSB = True\nMyCustomKey = hello\n"
                                    "ElementDataFile = LIST\ns0.raw\ns1.raw\n")
    v = medconv.read(str(tmp_path / "l.mhd"))
    assert np.array_equal(v.array, data.transpose(2, 1, 0).astype(np.int16))


# 17 MINC
def test_pitfall_17_minc_world_matches_nibabel(tmp_path):
    pytest.importorskip("h5py")
    import medconv

    aff = np.diag([1.5, 2.0, 2.5, 1.0])
    aff[:3, 3] = (-10, 20, 5)
    v = make_volume(shape=(5, 4, 3), dtype="int16", affine=aff)
    p = tmp_path / "v.mnc"
    medconv.write(v, str(p))
    img = nib.load(str(p))
    assert np.allclose(img.affine, aff, atol=1e-4)
    assert np.allclose(img.get_fdata(), v.data, atol=1e-3 * np.abs(v.data).max())
    back = medconv.read(str(p))
    assert np.allclose(back.affine, aff, atol=1e-4)


# 18 big-endian / odd-length elements
def test_pitfall_18_big_endian_and_odd_length(tmp_path):
    d, data, _ = _series(tmp_path, ts="1.2.840.10008.1.2.2")
    out = tmp_path / "be.nii"
    r = run("convert", d, out)
    assert r.code == 0, r.err
    img, vox = _nifti(out)
    assert vox.dtype.isnative and np.array_equal(vox, np.transpose(data, (1, 0, 2)))
    # an odd-length private value (not allowed by PS3.5 but found in the wild): pydicom pads
    # what it writes, so the length is patched in the bytes
    import struct

    from medconv.dicom import header_view

    d2, data2, _ = _series(tmp_path, "odd", shape=(4, 4, 2))
    p = os.path.join(d2, "slice000.dcm")
    ds = pydicom.dcmread(p)
    ds.add_new(0x00091010, "LO", "XYZW")
    ds.save_as(p)
    raw = open(p, "rb").read()
    i = raw.index(b"XYZW")
    assert raw[i - 2:i] == struct.pack("<H", 4)
    open(p, "wb").write(raw[:i - 2] + struct.pack("<H", 3) + b"XYZ" + raw[i + 4:])
    header_view._ODD_SEEN.clear()  # warned once per process
    r = run("convert", d2, tmp_path / "odd.nii")
    assert r.code == 0 and "Traceback" not in r.err
    assert "odd-length element (0009,1010)" in r.err  # warned, not crashed
    _, vox2 = _nifti(tmp_path / "odd.nii")
    assert np.array_equal(vox2, np.transpose(data2, (1, 0, 2)))  # every later element still read


# 19 transfer syntax only from (0002,0010)
def test_pitfall_19_ts_in_nested_sequence_ignored(tmp_path):
    from pydicom.dataset import Dataset

    d, data, _ = _series(tmp_path, shape=(4, 5, 2))
    for name in os.listdir(d):
        p = os.path.join(d, name)
        ds = pydicom.dcmread(p)
        item = Dataset()
        item.add_new(0x00020010, "UI", "1.2.840.10008.1.2.4.50")  # JPEG baseline, wrongly recorded
        ds.OriginalAttributesSequence = [Dataset()]
        ds.OriginalAttributesSequence[0].ModifiedAttributesSequence = [item]
        ds.save_as(p)
    r = run("info", d, "--get", "transfer_syntax")
    assert r.code == 0 and "1.2.840.10008.1.2.1" in r.out
    out = tmp_path / "o.nii"
    assert run("convert", d, out).code == 0
    assert np.array_equal(_nifti(out)[1], np.transpose(data, (1, 0, 2)))


# 20-23 anonymise
def _anon_src(tmp_path):
    from pydicom.dataset import Dataset

    d, data, _ = _series(tmp_path, "src", shape=(4, 4, 3), extra={
        "FrameOfReferenceUID": "1.2.3.4.99", "StudyDate": "20200315", "SeriesDate": "20200316",
        "AcquisitionDateTime": "20200315103000", "PatientBirthDate": "19700101"})
    files = sorted(os.listdir(d))
    first = pydicom.dcmread(os.path.join(d, files[0]))
    for name in files[1:]:
        p = os.path.join(d, name)
        ds = pydicom.dcmread(p)
        ref = Dataset()
        ref.ReferencedSOPClassUID = first.SOPClassUID
        ref.ReferencedSOPInstanceUID = first.SOPInstanceUID
        ds.ReferencedImageSequence = [ref]
        inner = Dataset()
        inner.add_new(0x00291010, "LO", "secret private")
        inner.private_block(0x0029, "ACME 1", create=True).add_new(0x10, "LO", "Secret^Person")
        ds.ReferencedStudySequence = [inner]
        ds.private_block(0x0011, "ACME 1", create=True).add_new(0x10, "LO", "ID-SECRET-42")
        ds.save_as(p)
    return d, first


def _load_all(root):
    out = []
    for dp, _, fs in os.walk(root):
        out += [pydicom.dcmread(os.path.join(dp, f)) for f in fs if f.endswith(".dcm")]
    return out


def test_pitfall_20_uids_remapped_consistently(tmp_path):
    d, first = _anon_src(tmp_path)
    for o in ("a1", "a2"):
        r = run("anonymize", d, "-o", tmp_path / o, "--key", "k1", "--layout", "mirror")
        assert r.code == 0, r.err
    a1, a2 = _load_all(tmp_path / "a1"), _load_all(tmp_path / "a2")
    assert len(a1) == 3
    assert {x.SOPInstanceUID for x in a1} == {x.SOPInstanceUID for x in a2}
    sops = {x.SOPInstanceUID for x in a1}
    for x in a1:
        assert x.SOPClassUID == dcmgen.CT
        assert x.SOPInstanceUID != first.SOPInstanceUID and x.file_meta.MediaStorageSOPInstanceUID == x.SOPInstanceUID
        assert x.FrameOfReferenceUID != "1.2.3.4.99" and x.StudyInstanceUID != "1.2.3.4"
    assert len({x.FrameOfReferenceUID for x in a1}) == 1 and len({x.SeriesInstanceUID for x in a1}) == 1
    refs = [x.ReferencedImageSequence[0].ReferencedSOPInstanceUID for x in a1 if "ReferencedImageSequence" in x]
    assert len(refs) == 2 and all(ref in sops and ref != first.SOPInstanceUID for ref in refs)


def test_pitfall_21_private_tags_removed_in_sequences(tmp_path):
    d, _ = _anon_src(tmp_path)
    assert run("anonymize", d, "-o", tmp_path / "a", "--key", "k").code == 0
    for x in _load_all(tmp_path / "a"):
        found = []
        x.walk(lambda ds, el, found=found: found.append(el.tag) if el.tag.is_private else None)
        assert found == []
        assert b"Secret" not in open(x.filename, "rb").read()
    assert run("anonymize", "--check", tmp_path / "a").code == 0
    assert run("anonymize", "--check", d).code == 1


def test_pitfall_22_dates_shifted_by_one_offset(tmp_path):
    d, _ = _anon_src(tmp_path)
    assert run("anonymize", d, "-o", tmp_path / "a", "--key", "k", "--shift-dates", "-100").code == 0
    for x in _load_all(tmp_path / "a"):
        assert x.StudyDate == "20191206" and x.SeriesDate == "20191207"
        assert str(x.AcquisitionDateTime).startswith("20191206")
        assert x.get("LongitudinalTemporalInformationModified") == "MODIFIED"


def _us_suspect(tmp_path):
    d = tmp_path / "us"
    os.makedirs(d)
    dcmgen.write_slice(str(d / "a.dcm"), np.zeros((4, 4), np.int16), ipp=(0, 0, 0), modality="MR",
                       extra={"Modality": "US", "ImageType": ["DERIVED", "SECONDARY", "SAVE"]})
    return d


def test_pitfall_23_burned_in_suspects_warned(tmp_path):
    d = _us_suspect(tmp_path)
    r = run("anonymize", d, "-o", tmp_path / "a", "--key", "k")
    assert r.code == 0
    assert "burned-in" in r.err.lower() and "US" in r.err
    (x,) = _load_all(tmp_path / "a")
    assert x.get("BurnedInAnnotation") is None  # not invented


def test_pitfall_23_identity_removed_not_overstated(tmp_path):
    d = _us_suspect(tmp_path)
    assert run("anonymize", d, "-o", tmp_path / "a", "--key", "k").code == 0
    (x,) = _load_all(tmp_path / "a")
    assert x.get("PatientIdentityRemoved") != "YES"


def test_pitfall_24_phi_outside_dicom(tmp_path):
    img = nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4))
    img.header["descrip"] = b"Secret^Person 2020-03-15 10:30"
    img.header["aux_file"] = b"ID-SECRET-42"
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Secret^Person"))
    p = tmp_path / "phi.nii"
    nib.save(img, p)
    assert run("anonymize", "--check", p).code == 1
    r = run("anonymize", p, "-o", tmp_path / "a")
    assert r.code == 0, r.err
    (name,) = os.listdir(tmp_path / "a")
    raw = (tmp_path / "a" / name).read_bytes()
    assert b"Secret" not in raw and b"SECRET" not in raw
    # DICOM -> NIfTI + sidecar carries no patient identity; names cannot use PatientName
    d, _, _ = _series(tmp_path, shape=(4, 4, 2))
    out = tmp_path / "c.nii"
    assert run("convert", d, out, "--sidecar").code == 0
    for f in os.listdir(tmp_path):
        if f.startswith("c."):
            blob = (tmp_path / f).read_bytes()
            assert b"Secret" not in blob and b"ID-SECRET" not in blob, f
    r = run("convert", d, "-o", tmp_path / "n", "--name", "{PatientName}")
    assert r.code == 2 and not os.path.exists(tmp_path / "n" / "Secret_Person.nii.gz")


def test_pitfall_25_output_dirs_and_failures(tmp_path):
    d, _, _ = _series(tmp_path, shape=(4, 4, 2))
    deep = tmp_path / "new" / "deeper"
    r = run("convert", d, "-o", deep, "--to", "nifti1")
    assert r.code == 0, r.err
    assert len(os.listdir(deep)) == 1
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"\x5c\x01\x00\x00" + b"\x00" * 100)
    out = tmp_path / "mixed"
    r = run("convert", d, bad, "-o", out, "--to", "nifti1", "--keep-going")
    assert r.code == 5
    assert sorted(os.listdir(out)) == [os.listdir(deep)[0]]
    # existing destination refused, untouched
    dst = out / os.listdir(deep)[0]
    before = dst.read_bytes()
    r = run("convert", d, dst)
    assert_clean_error(r, 4)
    assert dst.read_bytes() == before
