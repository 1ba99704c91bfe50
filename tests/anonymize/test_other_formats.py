"""medconv anonymize on MINC1/MINC2, MGH/MGZ, PNG, JPEG, TIFF, BMP, JSON sidecars and NRRD labels:
markers gone from the raw bytes, voxels/pixels and geometry identical, --check 1 before and 0 after."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import struct

import numpy as np
import pytest

from helpers import nibabel_data, run

MARKERS = [b"Doe^Johnathan", b"PID12345", b"Saint Elsewhere", b"20240305", b"mb312", b"actman", b"mnc2nii",
           b"mincconvert", b"/home/doe", b"Welby"]


def raw(path) -> bytes:
    data = open(path, "rb").read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def anonymise(tmp_path, src):
    """Check (1), anonymise, check the output (0); the output folder."""
    r = run("anonymize", "--check", src)
    assert r.code == 1, r.out + r.err
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    assert "failed 0" in r.err and "skipped 0" in r.err, r.err
    r = run("anonymize", "--check", out)
    assert r.code == 0, r.out
    return out


def assert_no_markers(path):
    data = raw(path)
    for m in MARKERS:
        assert m not in data, (path, m)


def assert_same_volume(a, b):
    import medconv

    va, vb = medconv.read(str(a)), medconv.read(str(b))
    assert np.allclose(va.affine, vb.affine, atol=1e-4)
    assert va.array.dtype == vb.array.dtype
    assert np.array_equal(va.array, vb.array)


def _same_len(text: bytes, marker: bytes) -> bytes:
    return (marker * (len(text) // len(marker) + 1))[:len(text)]


# --- MINC --------------------------------------------------------------------------------------

def test_minc1(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = open(nibabel_data("minc1_1_scale.mnc"), "rb").read()
    # same-length replacements keep the NetCDF header valid: patient full_name and history hold markers
    data = data.replace(b"mnc2nii tiny.mnc tiny.nii", b"Doe^Johnathan PID12345 xx")
    data = data.replace(b"nii2mnc tiny_uint8.nii", _same_len(b"nii2mnc tiny_uint8.nii", b"Welby "))
    assert b"Doe^Johnathan" in data and b"mb312" in data and b"Welby" in data
    (src / "a.mnc").write_bytes(data)
    shutil.copy(nibabel_data("minc1_4d.mnc"), src / "b4d.mnc")
    out = anonymise(tmp_path, src)
    r = run("anonymize", "--check", src)
    assert "full_name" in r.out and "history" in r.out
    for name in ("a.mnc", "b4d.mnc"):
        assert raw(out / name)[:4] == b"CDF\x01"  # still MINC1
        assert_no_markers(out / name)
        assert_same_volume(src / name, out / name)
    # idempotent: a second pass changes nothing
    again = tmp_path / "again"
    assert run("anonymize", out, "-o", again, "--key", "k", "--layout", "mirror").code == 0
    assert raw(again / "a.mnc") == raw(out / "a.mnc")


def test_minc2(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = tmp_path / "in"
    src.mkdir()
    for name in ("minc2_1_scale.mnc", "minc2_4d.mnc"):
        shutil.copy(nibabel_data(name), src / name)
        with h5py.File(src / name, "r+") as fh:
            root = fh["minc-2.0"]
            root.attrs["history"] = np.bytes_(b"mincconvert /home/doe/Doe^Johnathan.mnc")
            info = root.require_group("info")
            pat = info["patient"] if "patient" in info else info.create_dataset("patient", data=np.int32(0))
            pat.attrs["full_name"] = np.bytes_(b"Doe^Johnathan")
            pat.attrs["identification"] = np.bytes_(b"PID12345")
            info["study"].attrs["institution"] = np.bytes_(b"Saint Elsewhere")
            info["study"].attrs["start_date"] = np.bytes_(b"20240305")
            root["dimensions/xspace"].attrs["comments"] = np.bytes_(b"Welby")
            root["image/0/image"].attrs["note"] = np.bytes_(b"Welby was here")
        assert b"Doe^Johnathan" in open(src / name, "rb").read()
    out = anonymise(tmp_path, src)
    for name in ("minc2_1_scale.mnc", "minc2_4d.mnc"):
        assert raw(out / name)[:8] == b"\x89HDF\r\n\x1a\n"
        assert_no_markers(out / name)
        assert_same_volume(src / name, out / name)
        with h5py.File(out / name, "r") as fh:
            x = fh["minc-2.0/dimensions/xspace"].attrs
            assert set(x) >= {"start", "step", "direction_cosines", "length"}
            assert "history" not in fh["minc-2.0"].attrs and len(fh["minc-2.0/info"]) == 0


# --- MGH / MGZ ---------------------------------------------------------------------------------

def _mgh_bytes(tags=True):
    nib = pytest.importorskip("nibabel")
    img = nib.MGHImage(np.arange(60, dtype=np.float32).reshape(3, 4, 5),
                       np.array([[-1.5, 0, 0, 10], [0, 0, 2, -20], [0, -2.5, 0, 30], [0, 0, 0, 1]]))
    buf = io.BytesIO()
    img.to_file_map({"image": nib.FileHolder(fileobj=buf)})
    data = buf.getvalue()
    data = data[:284 + 60 * 4] + struct.pack(">5f", 2300.0, 9.0, 2.9, 900.0, 256.0)
    if tags:
        cmd = b"mri_convert /home/doe/Doe^Johnathan_PID12345/orig.mgz\x00"
        xform = b"/home/doe/transforms/talairach.xfm\x00"
        data += struct.pack(">iq", 3, len(cmd)) + cmd + struct.pack(">ii", 30, len(xform)) + xform
    return data


def test_mgh_mgz(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = _mgh_bytes()
    (src / "a.mgh").write_bytes(data)
    (src / "b.mgz").write_bytes(gzip.compress(data))
    shutil.copy(nibabel_data("test.mgz"), src / "c.mgz")
    r = run("anonymize", "--check", src)
    assert "cmdline" in r.out
    out = anonymise(tmp_path, src)
    assert open(out / "b.mgz", "rb").read()[:2] == b"\x1f\x8b"
    for name in ("a.mgh", "b.mgz", "c.mgz"):
        assert_no_markers(out / name)
        assert_same_volume(src / name, out / name)
    new = raw(out / "a.mgh")
    assert new == data[:284 + 60 * 4 + 20]  # header, voxels and acquisition floats kept byte for byte
    import medconv

    assert medconv.read(str(out / "a.mgh")).metadata["tr"] == pytest.approx(2300.0)


# --- rasters -----------------------------------------------------------------------------------

def _pixels(path):
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return [(f.mode, f.size, f.tobytes()) for f in ImageSequence.Iterator(im)]


def _rgb(seed=0, size=(24, 16)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8))


def test_png(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    src = tmp_path / "in"
    src.mkdir()
    info = PngInfo()
    info.add_text("Author", "Doe^Johnathan")
    info.add_text("Comment", "PID12345 at Saint Elsewhere", zip=True)
    info.add_itxt("Description", "Welby 20240305", lang="en", tkey="Beschreibung")
    im = _rgb()
    im.save(src / "a.png", pnginfo=info, dpi=(300, 300))
    grey = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200)
    grey.save(src / "g.png", pnginfo=info)
    r = run("anonymize", "--check", src)
    assert "tEXt" in r.out and "zTXt" in r.out and "iTXt" in r.out
    out = anonymise(tmp_path, src)
    for name in ("a.png", "g.png"):
        assert_no_markers(out / name)
        assert _pixels(out / name) == _pixels(src / name)
    assert Image.open(out / "a.png").info.get("dpi") is not None  # pHYs kept


def test_jpeg(tmp_path):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010E] = "Doe^Johnathan"  # ImageDescription
    exif[0x013B] = "Welby"  # Artist
    exif[0x0110] = "Saint Elsewhere"  # Model
    exif[0x0132] = "2024:03:05 10:11:12"  # DateTime
    exif[0x0112] = 6  # Orientation: kept in a minimal EXIF block
    _rgb(1).save(src / "a.jpg", exif=exif, comment=b"PID12345 20240305", quality=90)
    _rgb(2).save(src / "p.jpg", comment=b"Doe^Johnathan", progressive=True)
    r = run("anonymize", "--check", src)
    assert "EXIF" in r.out and "comment" in r.out
    out = anonymise(tmp_path, src)
    for name in ("a.jpg", "p.jpg"):
        assert_no_markers(out / name)
        assert _pixels(out / name) == _pixels(src / name)
        assert b"2024:03:05" not in raw(out / name)
    with Image.open(out / "a.jpg") as im:
        assert dict(im.getexif()) == {0x0112: 6}
        assert "comment" not in im.info


def test_tiff(tmp_path):
    from PIL import Image
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    src = tmp_path / "in"
    src.mkdir()
    tags = ImageFileDirectory_v2()
    tags[270] = "Doe^Johnathan PID12345"  # ImageDescription
    tags[315] = "Welby"  # Artist
    tags[316] = "Saint Elsewhere workstation"  # HostComputer
    tags[306] = "2024:03:05 10:11:12"  # DateTime
    tags[269] = "/home/doe/scan.tif"  # DocumentName
    tags[33432] = "(c) Saint Elsewhere"  # Copyright
    _rgb(3).save(src / "a.tif", tiffinfo=tags)
    _rgb(4).save(src / "lzw.tif", tiffinfo=tags, compression="tiff_lzw")
    grey = Image.fromarray(np.arange(300, dtype=np.uint16).reshape(15, 20) * 100)
    exif = ImageFileDirectory_v2()
    exif[315] = "Welby"  # Artist
    exif[34665] = {0x9003: "2024:03:05 10:11:12", 0xA430: "Doe^Johnathan"}  # EXIF IFD: date, camera owner
    grey.save(src / "g.tiff", tiffinfo=exif)
    assert b"Doe^Johnathan" in (src / "g.tiff").read_bytes()
    # two pages, markers on both
    _rgb(5).save(src / "multi.tif", save_all=True, append_images=[_rgb(6)], tiffinfo=tags)
    r = run("anonymize", "--check", src)
    assert "ImageDescription" in r.out and "Artist" in r.out
    out = anonymise(tmp_path, src)
    for name in ("a.tif", "lzw.tif", "g.tiff", "multi.tif"):
        assert_no_markers(out / name)
        assert _pixels(out / name) == _pixels(src / name)
        assert b"2024:03:05" not in raw(out / name)
    with Image.open(out / "lzw.tif") as im:
        assert im.info.get("compression") == "tiff_lzw"  # not re-encoded


def test_bmp_copied(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _rgb(7).save(src / "a.bmp")
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0 and "anonymised 1 file(s), skipped 0" in r.err, r.err
    assert (out / "a.bmp").read_bytes() == (src / "a.bmp").read_bytes()
    assert run("anonymize", "--check", src).code == 0


def test_rasters_keep_relative_layout(tmp_path):
    src = tmp_path / "in"
    (src / "photos" / "day1").mkdir(parents=True)
    _rgb(8).save(src / "photos" / "day1" / "x.png")
    _rgb(9).save(src / "photos" / "y.jpg", comment=b"Welby")
    out = anonymise(tmp_path, src)
    assert (out / "photos" / "day1" / "x.png").exists() and (out / "photos" / "y.jpg").exists()


def test_broken_raster_not_copied(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = io.BytesIO()
    _rgb(10).save(data, "PNG")
    (src / "cut.png").write_bytes(data.getvalue()[:60])
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 3 and "truncated" in r.err and "Traceback" not in r.err
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "--keep-going")
    assert r.code == 5 and "failed 1" in r.err and "Traceback" not in r.err
    assert not (out / "cut.png").exists()


# --- JSON sidecars and NRRD --------------------------------------------------------------------

def test_sidecar_profile_keys(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    side = {"PatientName": "Doe^Johnathan", "SeriesDescription": "Doe^Johnathan brain", "ProtocolName": "Welby",
            "AcquisitionTime": "10:11:12.5", "StudyTime": "101112", "SeriesTime": "101112",
            "ContentTime": "101112", "DeviceSerialNumber": "PID12345", "InstitutionalDepartmentName": "Welby",
            "StationName": "Saint Elsewhere", "RequestingService": "Welby", "SoftwareVersions": "Welby",
            "StudyInstanceUID": "1.2.3", "RepetitionTime": 2.0, "EchoTime": 0.03, "Manufacturer": "Siemens",
            "MagneticFieldStrength": 3, "SliceTiming": [0.0, 0.5], "PhaseEncodingDirection": "j-"}
    (src / "sub-01_bold.json").write_text(json.dumps(side))
    out = anonymise(tmp_path, src)
    kept = json.loads((out / "sub-01_bold.json").read_text())
    assert kept == {"RepetitionTime": 2.0, "EchoTime": 0.03, "Manufacturer": "Siemens",
                    "MagneticFieldStrength": 3, "SliceTiming": [0.0, 0.5], "PhaseEncodingDirection": "j-"}


def test_nrrd_labels_and_units(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.nrrd").write_bytes(b'NRRD0004\ntype: uint8\ndimension: 2\nsizes: 2 2\nencoding: raw\n'
                                 b'labels: "Doe^Johnathan" "PID12345"\nunits: "mm" "Welby"\n\n\x01\x02\x03\x04')
    (src / "b.nrrd").write_bytes(b'NRRD0004\ntype: uint8\ndimension: 2\nsizes: 2 2\nencoding: raw\n'
                                 b'labels: "" ""\nunits: "mm" "mm"\nspace units: "mm" "mm"\n\n\x01\x02\x03\x04')
    r = run("anonymize", "--check", src)
    assert r.code == 1 and "labels" in r.out and "units" in r.out and "b.nrrd" not in r.out
    out = tmp_path / "out"
    assert run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror").code == 0
    assert (out / "a.nrrd").read_bytes() == (b"NRRD0004\ntype: uint8\ndimension: 2\nsizes: 2 2\nencoding: raw\n"
                                             b"\n\x01\x02\x03\x04")
    assert (out / "b.nrrd").read_bytes() == (src / "b.nrrd").read_bytes()
    assert run("anonymize", "--check", out).code == 0


# --- audit: mapping files, trailing bytes, extra objects, private tags, JPEG APPn ---------------

def _no_marker_anywhere(out):
    for path in out.rglob("*"):
        if path.is_file():
            assert_no_markers(path)


def test_mapping_file_never_copied(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    table = {"patient": {"PID12345": "ANON-BCDFGHJKMNPQRSTV", "Doe^Johnathan": "ANON-VTSRQPNMKJHGFDCB"},
             "uid": {"1.2.3.4.5": "2.25.12345678901234567890"}}
    (src / "map.json").write_text(json.dumps(table, indent=1))
    (src / "renamed.json").write_text(json.dumps({"subjects": {"Welby": "ANON-BCDFGHJKMNPQRSTV"}}))
    (src / "a.nrrd").write_bytes(b"NRRD0004\ntype: uint8\ndimension: 1\nsizes: 2\nencoding: raw\n\n\x01\x02")
    r = run("anonymize", "--check", src)
    assert r.code == 1 and r.out.count("a medconv mapping (original identifiers)") == 2, r.out
    assert "PID12345" not in r.out and "Welby" not in r.out
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    assert "a medconv mapping (original identifiers) is not copied" in r.err and "skipped 2" in r.err, r.err
    assert not (out / "map.json").exists() and not (out / "renamed.json").exists()
    assert (out / "a.nrrd").exists()
    assert run("anonymize", "--check", out).code == 0


def test_sidecar_keys_that_are_values(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    side = {"RepetitionTime": 2.0, "Subjects": {"Doe^Johnathan": {"Age": 3}, "PID12345 ": 1},
            "Lookup": {"x": "ANON-BCDFGHJKMNPQRSTV"}, "Runs": [{"1.2.840.99.Welby": 1, "EchoTime": 0.03}],
            "ANON-BCDFGHJKMNPQRSTV": 1, "Comments": "Welby", "InstitutionNameAlt": "Saint Elsewhere"}
    (src / "s.json").write_text(json.dumps(side))
    out = anonymise(tmp_path, src)
    _no_marker_anywhere(out)
    kept = json.loads((out / "s.json").read_text())
    assert kept == {"RepetitionTime": 2.0}  # unknown keys go with all they hold
    r = run("anonymize", "--check", src)
    assert "Doe^Johnathan" not in r.out and "not a field name" in r.out  # the key itself is not printed


def test_sidecar_with_bom_and_dicomdir_in_check(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"PatientName": "Doe^Johnathan",
                                                                "EchoTime": 0.03}).encode())
    out = anonymise(tmp_path, src)
    assert json.loads((out / "bom.json").read_bytes()) == {"EchoTime": 0.03}
    _no_marker_anywhere(out)
    (out / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + b"Doe^Johnathan")
    r = run("anonymize", "--check", out)
    assert r.code == 1 and "DICOMDIR lists patient names and file paths" in r.out, r.out


def test_minc2_extra_objects_dropped(tmp_path):
    h5py = pytest.importorskip("h5py")
    src = tmp_path / "in"
    src.mkdir()
    name = "minc2_1_scale.mnc"
    shutil.copy(nibabel_data(name), src / name)
    with h5py.File(src / name, "r+") as fh:
        root = fh["minc-2.0"]
        root["image/0"].create_dataset("notes", data=np.bytes_(b"Doe^Johnathan PID12345"))
        root["image"].create_group("1").create_dataset("image", data=np.frombuffer(b"Saint Elsewhere!", np.uint8))
        root["dimensions"].create_dataset("Welby", data=np.frombuffer(b"20240305", np.uint8))
    out = anonymise(tmp_path, src)
    assert_no_markers(out / name)
    assert_same_volume(src / name, out / name)
    with h5py.File(out / name, "r") as fh:
        assert set(fh["minc-2.0/image"]) == {"0"}
        assert set(fh["minc-2.0/image/0"]) == {"image", "image-min", "image-max"}
        assert set(fh["minc-2.0/dimensions"]) == {"xspace", "yspace", "zspace"}


def test_minc1_trailing_bytes_dropped(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(nibabel_data("minc1_1_scale.mnc"), clean / "a.mnc")
    assert run("anonymize", clean, "-o", tmp_path / "c", "--key", "k", "--layout", "mirror").code == 0
    body = (tmp_path / "c" / "a.mnc").read_bytes()  # nothing left to scrub in it
    (src / "a.mnc").write_bytes(body + b"Doe^Johnathan PID12345")
    out = anonymise(tmp_path, src)
    assert (out / "a.mnc").read_bytes() == body
    assert_same_volume(src / "a.mnc", out / "a.mnc")


def _nifti(version=1):
    nib = pytest.importorskip("nibabel")
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 3.0, 4.0, 1.0]))
    return img.to_bytes()


def test_nifti_bytes_after_voxels_dropped(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = _nifti()
    (src / "t.nii").write_bytes(data + b"Doe^Johnathan PID12345")
    ext = bytearray(data)
    ext[32:38] = b"Welby!"  # NIfTI-1's unused Analyze fields extents, session_error
    (src / "x.nii").write_bytes(bytes(ext))
    (src / "t2.nii.gz").write_bytes(gzip.compress(data + b"Welby"))
    out = anonymise(tmp_path, src)
    vox = int(struct.unpack_from("<f", data, 108)[0])
    assert raw(out / "t.nii") == data[:vox + 24 * 2] and raw(out / "t2.nii.gz") == data[:vox + 24 * 2]
    assert raw(out / "x.nii") == data[:vox + 24 * 2]
    for name in ("t.nii", "t2.nii.gz", "x.nii"):
        assert_no_markers(out / name)
        assert_same_volume(src / name, out / name)


def test_nifti2_unused_str_cleared(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = bytearray(_nifti(2))
    data[525:540] = b"Welby PID12345!"
    (src / "n2.nii").write_bytes(bytes(data))
    out = anonymise(tmp_path, src)
    assert_no_markers(out / "n2.nii")
    assert_same_volume(src / "n2.nii", out / "n2.nii")
    new = raw(out / "n2.nii")
    assert new[525:540] == bytes(15) and new[:525] == bytes(data[:525]) and new[540:] == bytes(data[540:])


def _analyze(tmp_path, folder, originator):
    nib = pytest.importorskip("nibabel")
    img = nib.AnalyzeImage(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.diag([2.0, 3.0, 4.0, 1.0]))
    (tmp_path / folder).mkdir()
    nib.save(img, tmp_path / folder / "a.hdr")
    hdr = bytearray((tmp_path / folder / "a.hdr").read_bytes())
    hdr[253:263] = originator
    (tmp_path / folder / "a.hdr").write_bytes(bytes(hdr))
    return tmp_path / folder


def test_analyze_originator_text_cleared_spm_origin_kept(tmp_path):
    src = _analyze(tmp_path, "in", b"Doe^Johnat")
    assert run("anonymize", "--check", src).code == 1
    out = tmp_path / "out"
    assert run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror").code == 0
    assert run("anonymize", "--check", out).code == 0
    assert (out / "a.hdr").read_bytes()[253:263] == bytes(10)
    assert_no_markers(out / "a.hdr")
    assert_same_volume(src / "a.hdr", out / "a.hdr")
    # SPM's origin (five int16, geometry) is not text: kept byte for byte
    spm = _analyze(tmp_path, "spm", struct.pack("<5h", 2, 3, 2, 0, 0))
    assert run("anonymize", "--check", spm).code == 0
    assert run("anonymize", spm, "-o", tmp_path / "spm-out", "--key", "k", "--layout", "mirror").code == 0
    assert (tmp_path / "spm-out" / "a.hdr").read_bytes() == (spm / "a.hdr").read_bytes()


def test_mgh_tail_not_acquisition_floats(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    voxels = _mgh_bytes(tags=False)[:284 + 60 * 4]
    (src / "short.mgh").write_bytes(voxels + b"PID12345")  # 8 bytes: not the 5 floats
    (src / "text.mgh").write_bytes(voxels + b"Doe^Johnathan at Saint Elsewhere")  # no tags after it
    out = anonymise(tmp_path, src)
    for name in ("short.mgh", "text.mgh"):
        assert raw(out / name) == voxels
        assert_same_volume(src / name, out / name)


def test_tiff_private_tags_and_trailing_bytes(tmp_path):
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    src = tmp_path / "in"
    src.mkdir()
    tags = ImageFileDirectory_v2()
    tags[65000] = b"Doe^Johnathan PID12345"
    tags.tagtype[65000] = 7  # UNDEFINED
    tags[65001] = b"Saint Elsewhere"
    tags.tagtype[65001] = 1  # BYTE
    tags[33550] = (0.5, 0.5, 0.0)  # GeoTIFF ModelPixelScale: geometry, kept
    buf = io.BytesIO()
    _rgb(11).save(buf, "TIFF", tiffinfo=tags)
    (src / "p.tif").write_bytes(buf.getvalue() + b"Welby 20240305")
    r = run("anonymize", "--check", src)
    assert "tag 65000" in r.out and "data outside the image structure" in r.out, r.out
    out = anonymise(tmp_path, src)
    assert_no_markers(out / "p.tif")
    assert _pixels(out / "p.tif") == _pixels(src / "p.tif")
    from PIL import Image

    with Image.open(out / "p.tif") as im:
        assert 65000 not in im.tag_v2 and 65001 not in im.tag_v2
        assert im.tag_v2[33550] == (0.5, 0.5, 0.0)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def test_jpeg_app0_and_app14(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    buf = io.BytesIO()
    _rgb(12).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    assert data[2:4] == b"\xff\xe0"
    n = struct.unpack_from(">H", data, 4)[0]
    jfif = data[6:6 + 12]  # JFIF\0, version, units, densities
    app0 = _segment(0xE0, jfif + b"\x00\x00" + b"Doe^Johnathan")  # text after the JFIF fields
    jfxx = _segment(0xE0, b"JFXX\x00\x10" + b"PID12345")  # thumbnail extension
    adobe = _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01" + b"Saint Elsewhere")
    other = _segment(0xEE, b"Welby 20240305")
    (src / "a.jpg").write_bytes(data[:2] + app0 + jfxx + adobe + other + data[4 + n:])
    r = run("anonymize", "--check", src)
    assert "APP0" in r.out and "APP14" in r.out, r.out
    out = anonymise(tmp_path, src)
    new = (out / "a.jpg").read_bytes()
    assert_no_markers(out / "a.jpg")
    assert _pixels(out / "a.jpg") == _pixels(src / "a.jpg")
    assert new[2:4 + 16] == _segment(0xE0, jfif + b"\x00\x00")
    assert _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01") in new and b"JFXX" not in new
