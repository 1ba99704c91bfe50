"""medconv header on raster, NRRD and NIfTI files: tag values, key/value pairs, malformed extensions."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from helpers import run


def header_json(path):
    r = run("header", path, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


# -- 7: EXIF/TIFF tags with their values, PNG text chunks ----------------------------------
def test_jpeg_exif_values_and_get(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "CamMaker"  # Make
    exif[0x0110] = "ModelX"  # Model
    exif[0x0112] = 6  # Orientation
    exif.get_ifd(0x8769)[0x9000] = b"0230"  # ExifVersion (in the Exif sub-IFD)
    exif.get_ifd(0x8769)[0x927C] = bytes(range(200))  # MakerNote: binary, abbreviated
    path = tmp_path / "ex.jpg"
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(path, exif=exif)
    doc = header_json(path)
    assert doc["exif"]["Make"] == "CamMaker" and doc["exif"]["Model"] == "ModelX"
    assert doc["exif"]["Orientation"] == 6 and doc["exif"]["ExifVersion"] == "0230"
    assert doc["exif"]["MakerNote"] == "<200 bytes>"
    r = run("header", path, "--get", "Make", "--get", "exif.Model", "--get", "Orientation")
    assert r.code == 0, r.err
    assert r.out.rstrip("\n").split("\t") == ["CamMaker", "ModelX", "6"]
    r = run("header", path)
    assert any(l.split() == ["Make", "CamMaker"] for l in r.out.splitlines())


def test_tiff_description_and_png_text(tmp_path):
    from PIL import Image, PngImagePlugin

    tif = tmp_path / "f.tif"
    Image.fromarray(np.zeros((8, 9), np.float32)).save(tif, tiffinfo={270: "tiff desc"})
    doc = header_json(tif)
    assert doc["exif"]["ImageDescription"] == "tiff desc" and doc["exif"]["ImageWidth"] == 9
    assert run("header", tif, "--get", "ImageDescription").out.strip() == "tiff desc"
    png = tmp_path / "p.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "me")
    info.add_text("Comment", "hi there")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png, pnginfo=info)
    assert header_json(png)["text"] == {"Author": "me", "Comment": "hi there"}
    assert run("header", png, "--get", "Comment").out.strip() == "hi there"
    assert "hi there" in run("header", png).out


# -- 10: NRRD key/value pairs never replace fields ------------------------------------------
def test_nrrd_key_values_kept_apart_from_fields(tmp_path):
    path = tmp_path / "kv.nrrd"
    head = ("NRRD0004\n# note\ntype: short\ndimension: 3\nsizes: 2 3 4\nendian: little\nencoding: raw\n"
            "type:=custom\nsizes:=kv\nPatientName:=Doe\nmy key:=a:b\n\n")
    path.write_bytes(head.encode() + np.arange(24, dtype="<i2").tobytes())
    doc = header_json(path)
    assert doc["type"] == "short" and doc["sizes"] == [2, 3, 4]
    assert doc["type:="] == "custom" and doc["sizes:="] == "kv"
    assert doc["PatientName"] == "Doe" and doc["my key"] == "a:b" and doc["comments"] == ["note"]
    r = run("header", path, "--get", "type", "--get", "type:=", "--get", "PatientName")
    assert r.out.rstrip("\n").split("\t") == ["short", "custom", "Doe"]
    r = run("header", path)
    assert any(l.split() == ["type:=", "custom"] for l in r.out.splitlines())
    r = run("stats", path, "--get", "count")  # reading is not misled by the pairs either
    assert r.code == 0 and r.out.strip() == "24"


# -- 11: a malformed NIfTI extension is reported and shown ---------------------------------
@pytest.fixture
def bad_extension(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"first comment"))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"second comment text"))
    path = tmp_path / "ext.nii"
    nib.save(img, path)
    data = bytearray(path.read_bytes())
    first = struct.unpack_from("<i", data, 352)[0]
    struct.pack_into("<i", data, 352 + first, 1_000_000_000)
    path.write_bytes(bytes(data))
    return path


def test_malformed_nifti_extension_is_reported(bad_extension):
    r = run("header", bad_extension, "--json")
    assert r.code == 0, r.err
    exts = json.loads(r.out)["extensions"]
    assert [e["content"] for e in exts] == ["first comment", "second comment text"]
    assert exts[1]["size"] == 1_000_000_000 and "runs past" in exts[1]["malformed"]
    assert "malformed" not in exts[0]
    assert "warning" in r.err and "extension 1 is malformed" in r.err
    r = run("header", bad_extension)
    assert r.code == 0 and "second comment text" in r.out and "malformed" in r.out


def test_well_formed_extensions_give_no_warning(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"fine"))
    path = tmp_path / "ok.nii"
    nib.save(img, path)
    r = run("header", path)
    assert r.code == 0 and r.err == "" and "fine" in r.out


def test_header_of_nii_gz_inflates_only_the_header(tmp_path):
    """A .nii.gz whose compressed stream breaks 2 MB into its 200 MB of voxels still shows its header
    (so header never inflates the image data), while reading the voxels fails cleanly."""
    import gzip
    import zlib

    import nibabel as nib
    import numpy as np

    from helpers import run

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((512, 512, 400))
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    head = hdr.binaryblock + b"\0" * 4
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    noise = np.random.default_rng(0).integers(0, 256, size=2 << 20, dtype=np.uint8).tobytes()
    body = comp.compress(head + noise) + comp.flush(zlib.Z_SYNC_FLUSH)  # 2 MB of voxels, then a cut stream
    path = tmp_path / "big.nii.gz"
    path.write_bytes(gzip.compress(b"")[:10] + body + b"\xff" * 4096)
    r = run("header", path, "--get", "dim")
    assert r.code == 0, r.err
    assert r.out.split()[:4] == ["3", "512", "512", "400"]
    assert run("stats", path).code == 3


def test_nrrd_header_lists_fields_and_pairs_in_file_order_without_quotes(tmp_path):
    import json

    from helpers import run

    head = ("NRRD0004\n# a comment\ntype: short\ndimension: 3\nsizes: 2 3 4\nmy_key:=v\n"
            'labels: "x axis" "y" "z"\nencoding: raw\ncontent: c\nendian: little\n\n')
    path = tmp_path / "t.nrrd"
    path.write_bytes(head.encode() + b"\0" * 48)
    r = run("header", path, "--json")
    assert r.code == 0, r.err
    hdr = json.loads(r.out)
    assert list(hdr) == ["magic", "type", "dimension", "sizes", "my_key", "labels", "encoding", "content",
                         "endian", "comments"]
    assert hdr["labels"] == ["x axis", "y", "z"] and hdr["comments"] == ["a comment"]


def test_metaimage_element_min_max_are_numbers(tmp_path):
    import json

    from helpers import run

    head = ("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\nElementMin = 0\n"
            "ElementMax = 23.5\nElementDataFile = LOCAL\n")
    path = tmp_path / "t.mha"
    path.write_bytes(head.encode() + bytes(8))
    hdr = json.loads(run("header", path, "--json").out)
    assert hdr["ElementMin"] == 0.0 and hdr["ElementMax"] == 23.5


def test_mgh_and_analyze_header_fields_equal_nibabels(tmp_path):
    """Values nobody here computed: nibabel's own parse of its test files."""
    import json
    import os

    import nibabel as nib
    import numpy as np

    from helpers import run

    data = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
    mgh = nib.load(os.path.join(data, "test.mgz")).header
    got = json.loads(run("header", os.path.join(data, "test.mgz"), "--json").out)
    # medconv's name -> nibabel's (MGH's own field names, as FreeSurfer's mri_info prints them)
    pairs = {"type": "type", "dof": "dof", "goodRASflag": "goodRASFlag", "spacing": "delta", "Mdc": "Mdc",
             "c_ras": "Pxyz_c", "tr": "tr", "flip_angle": "flip_angle", "te": "te", "ti": "ti"}
    for mine, theirs in pairs.items():
        assert np.allclose(np.ravel(got[mine]), np.ravel(mgh[theirs]), atol=1e-6), mine
    assert [got["width"], got["height"], got["depth"], got["nframes"]] == list(mgh["dims"])
    tags = {t["name"]: t.get("text") for t in got["tags"]}
    assert tags.get("pedir") == "UNKNOWN"
    ana_path = os.path.join(data, "analyze.hdr")
    ana = nib.AnalyzeHeader.from_fileobj(open(ana_path, "rb"))
    got = json.loads(run("header", ana_path, "--json").out)
    for key in ("sizeof_hdr", "dim", "datatype", "bitpix", "pixdim", "vox_offset", "glmax", "glmin"):
        assert np.allclose(np.ravel(got[key]), np.ravel(ana[key])), key
