"""NIfTI-1/2 and Analyze: real files against nibabel, round trips, header rules, bad inputs."""
import os
import shutil
import struct

import nibabel as nib
import numpy as np
import pytest

import medconv
from helpers import (
    assert_clean_error,
    make_volume,
    nibabel_data,
    oblique_affine,
    run,
    world_max_error,
)

REAL = ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "standard.nii.gz", "functional.nii",
        "reoriented_anat_moved.nii"]


@pytest.mark.parametrize("name", REAL)
def test_real_files_agree_with_nibabel(name):
    path = nibabel_data(name)
    ref = nib.load(path)
    vol = medconv.read(path)
    assert vol.shape == ref.shape
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-5)
    np.testing.assert_allclose(vol.spacing[:3], ref.header.get_zooms()[:3], rtol=1e-6)
    if vol.scaling is None:
        np.testing.assert_array_equal(vol.real().astype(np.float64), ref.get_fdata())
    else:  # scaled integers become float32 real values (float32 precision, as the contract allows)
        np.testing.assert_allclose(vol.real(), ref.get_fdata(), rtol=2e-7)


def _pair_from_header(tmp_path, name):
    """nibabel ships some headers without their image file: add a synthetic one of the right size."""
    src = nibabel_data(name)
    hdr = tmp_path / name
    shutil.copy(src, hdr)
    raw = hdr.read_bytes()
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", raw[40:56])
    bitpix = struct.unpack(endian + "h", raw[72:74])[0]
    nbytes = int(np.prod(dims[1: dims[0] + 1])) * bitpix // 8
    (tmp_path / (name[:-4] + ".img")).write_bytes(bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256))
    return str(hdr)


@pytest.mark.parametrize("name", ["nifti1.hdr", "analyze.hdr"])
def test_real_pair_headers_agree_with_nibabel(tmp_path, name):
    path = _pair_from_header(tmp_path, name)
    ref = nib.load(path)
    vol = medconv.read(path)
    assert vol.shape == ref.shape
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-5)
    np.testing.assert_allclose(vol.real().astype(np.float64), ref.get_fdata(), rtol=1e-6)
    res = run("info", path, "--get", "format", "--get", "orientation", "--get", "orientation_assumed")
    fmt, orient, assumed = res.out.rstrip("\n").split("\t")
    assert fmt == ("nifti1" if name == "nifti1.hdr" else "analyze")
    if name == "analyze.hdr":
        # Analyze 7.5 stores no orientation: the code of the affine it is placed with, flagged
        assert orient == "".join(nib.aff2axcodes(ref.affine)) and assumed == "true"


def test_info_json_matches_nibabel():
    import json

    path = nibabel_data("example4d.nii.gz")
    ref = nib.load(path)
    res = run("info", path, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["shape"] == list(ref.shape)
    assert doc["format"] == "nifti1"
    assert doc["dtype"] == "int16"
    np.testing.assert_allclose(doc["affine"], ref.affine, atol=1e-5)
    assert doc["orientation"] == "".join(nib.aff2axcodes(ref.affine))
    assert doc["size_bytes"] == os.path.getsize(path)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".hdr", ".img.gz"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "float32",
                                   "float64", "complex64"])
def test_round_trip_through_nibabel(tmp_path, ext, dtype):
    vol = make_volume((5, 4, 3), dtype)
    out = str(tmp_path / ("v" + ext))
    files = medconv.write(vol, out)
    if ext == ".img.gz":
        assert sorted(os.path.basename(f) for f in files) == ["v.hdr.gz", "v.img.gz"]
    ref = nib.load(files[0])
    np.testing.assert_allclose(ref.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(ref.dataobj), vol.array)
    back = medconv.read(out)
    assert world_max_error(back.affine, vol.affine, vol.shape) < 1e-4
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.dtype == vol.dtype


def test_scaling_kept_and_4d_time_step(tmp_path):
    vol = make_volume((4, 3, 2, 5), "int16", scaling=(0.5, -1024.0), time_step=2.5)
    out = str(tmp_path / "s.nii.gz")
    medconv.write(vol, out)
    ref = nib.load(out)
    assert (ref.dataobj.slope, ref.dataobj.inter) == (0.5, -1024.0)
    assert ref.header.get_zooms()[3] == pytest.approx(2.5)
    back = medconv.read(out)
    assert back.scaling == (0.5, -1024.0)
    assert back.time_step == pytest.approx(2.5)
    np.testing.assert_array_equal(back.real(), ref.get_fdata())


def test_sheared_affine_sform_exact_qform_orthogonal(tmp_path):
    aff = oblique_affine()
    aff[0, 2] += 0.7  # gantry-tilt-like shear
    vol = make_volume((4, 4, 4), "int16", affine=aff)
    out = str(tmp_path / "shear.nii")
    medconv.write(vol, out)
    ref = nib.load(out)
    np.testing.assert_allclose(ref.header.get_sform(), aff, atol=1e-4)
    q = ref.header.get_qform()
    rot = q[:3, :3] / np.sqrt((q[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-5)
    assert world_max_error(medconv.read(out).affine, aff, (4, 4, 4)) < 1e-4


def test_rgb_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    from medconv.volume import Volume

    vol = Volume(data=rng.integers(0, 255, (6, 5, 4, 3), dtype=np.uint8), affine=oblique_affine(), value_kind="rgb")
    out = str(tmp_path / "rgb.nii.gz")
    medconv.write(vol, out)
    ref = nib.load(out)
    assert ref.header.get_data_dtype().names == ("R", "G", "B")
    back = medconv.read(out)
    assert back.value_kind == "rgb"
    np.testing.assert_array_equal(back.array, vol.array)
    rec = np.asanyarray(ref.dataobj)
    np.testing.assert_array_equal(rec["G"], vol.array[..., 1])


def test_nifti2_automatic_for_large_dimension(tmp_path):
    from medconv.volume import Volume

    vol = Volume(data=np.arange(40000, dtype=np.int16).reshape(40000, 1, 1), affine=np.eye(4))
    out = str(tmp_path / "long.nii")
    medconv.write(vol, out)
    ref = nib.load(out)
    assert isinstance(ref, nib.Nifti2Image)
    assert medconv.detect(out) == "nifti2"
    np.testing.assert_array_equal(medconv.read(out).array, vol.array)


def test_nifti2_flag(tmp_path):
    src = nibabel_data("anatomical.nii")
    out = tmp_path / "a2.nii.gz"
    res = run("convert", src, out, "--nifti2")
    assert res.code == 0, res.err
    assert isinstance(nib.load(str(out)), nib.Nifti2Image)
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(src).affine, atol=1e-5)


def test_big_endian_file(tmp_path):
    data = np.arange(60, dtype=">i2").reshape(5, 4, 3)
    hdr = nib.Nifti1Header(endianness=">")
    hdr.set_data_dtype(">i2")
    img = nib.Nifti1Image(data, oblique_affine(), hdr)
    path = str(tmp_path / "be.nii")
    img.to_filename(path)
    vol = medconv.read(path)
    assert vol.dtype == np.dtype("int16") and vol.dtype.isnative
    np.testing.assert_array_equal(vol.array, data)


def test_qform_sform_rules(tmp_path):
    data = np.zeros((3, 3, 3), np.uint8)
    aff_s = oblique_affine()
    aff_q = np.diag([2.0, 2.0, 2.0, 1.0])
    img = nib.Nifti1Image(data, aff_s)
    img.set_qform(aff_q, code=1)
    img.set_sform(aff_s, code=1)
    both = str(tmp_path / "both.nii")
    img.to_filename(both)
    res = run("info", both, "--get", "affine")
    assert "qform and sform differ" in res.err
    np.testing.assert_allclose(np.array(res.out.split(), float).reshape(4, 4), aff_s, atol=1e-4)
    img.set_sform(aff_s, code=0)
    qonly = str(tmp_path / "qonly.nii")
    img.to_filename(qonly)
    np.testing.assert_allclose(medconv.read(qonly).affine, aff_q, atol=1e-5)
    img.set_qform(aff_q, code=0)
    none = str(tmp_path / "none.nii")
    img.to_filename(none)
    vol = medconv.read(none)
    assert not vol.orientation_known
    np.testing.assert_allclose(vol.affine, nib.load(none).affine, atol=1e-5)
    assert run("info", none, "--get", "orientation").out.strip() == "unknown"


def test_analyze_write_refuses_oblique_and_keeps_axis_aligned(tmp_path):
    vol = make_volume((4, 5, 6), "int16")
    res_path = tmp_path / "obl.nii"
    medconv.write(vol, str(res_path))
    res = run("convert", res_path, tmp_path / "a.hdr", "--to", "analyze")
    assert_clean_error(res, 4, "oblique")
    assert not list(tmp_path.glob("a.*"))
    aff = np.diag([1.5, 2.0, 3.0, 1.0])
    aff[:3, 3] = [-3.0, -4.0, -6.0]
    vol = make_volume((4, 5, 6), "int16", affine=aff)
    out = str(tmp_path / "ok.hdr")
    medconv.write(vol, out, to="analyze")
    assert medconv.detect(out) == "analyze"
    back = medconv.read(out)
    las = vol.reoriented("LAS")  # Analyze's own axis order; every voxel keeps its world position
    assert world_max_error(back.affine, las.affine, vol.shape) < 1e-4
    ref_world = nib.load(out).affine
    np.testing.assert_allclose(ref_world, back.affine, atol=1e-5)
    np.testing.assert_array_equal(np.flip(back.array, 0), vol.array)


def test_hdr_img_pair_is_nifti1_by_default(tmp_path):
    vol = make_volume((3, 3, 3), "float32")
    files = medconv.write(vol, str(tmp_path / "p.img"))
    assert sorted(os.path.basename(f) for f in files) == ["p.hdr", "p.img"]
    assert medconv.detect(files[0]) == "nifti1"
    assert isinstance(nib.load(files[0]), nib.Nifti1Pair)


# -- bad inputs ------------------------------------------------------------------------
def _good_nii(tmp_path):
    path = tmp_path / "good.nii"
    medconv.write(make_volume((10, 10, 10), "int16"), str(path))
    return path


def test_empty_file(tmp_path):
    p = tmp_path / "empty.nii"
    p.write_bytes(b"")
    assert_clean_error(run("info", p), 3, "empty")


def test_truncated_nifti(tmp_path):
    good = _good_nii(tmp_path)
    bad = tmp_path / "trunc.nii"
    bad.write_bytes(good.read_bytes()[:1000])
    assert_clean_error(run("info", bad), 3, "truncated")
    out = tmp_path / "out.nii.gz"
    assert_clean_error(run("convert", bad, out), 3)
    assert not out.exists() and not list(tmp_path.glob(".medconv-*"))


def test_truncated_gzip(tmp_path):
    import gzip

    good = _good_nii(tmp_path)
    gz = gzip.compress(good.read_bytes())
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(gz[: len(gz) // 2])
    out = tmp_path / "o.nii"
    assert_clean_error(run("convert", bad, out), 3)
    assert not out.exists() and not list(tmp_path.glob(".medconv-*"))


def test_header_declaring_billions_of_voxels(tmp_path):
    raw = bytearray(_good_nii(tmp_path).read_bytes()[:352])
    struct.pack_into("<8h", raw, 40, 3, 32000, 32000, 32000, 1, 1, 1, 1)
    p = tmp_path / "huge.nii"
    p.write_bytes(bytes(raw) + b"\x00" * 100)
    assert_clean_error(run("info", p), 3, "declares")
    pgz = tmp_path / "huge.nii.gz"
    import gzip

    pgz.write_bytes(gzip.compress(bytes(raw)))
    assert_clean_error(run("convert", pgz, tmp_path / "x.nii"), 3)
    assert not (tmp_path / "x.nii").exists()


def test_random_bytes_with_known_extension(tmp_path):
    p = tmp_path / "noise.nii"
    p.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    assert_clean_error(run("info", p), 3, "nifti")


def test_unknown_extension_and_missing_path(tmp_path):
    p = tmp_path / "notes.xyz"
    p.write_text("hello world\n" * 50)
    assert_clean_error(run("info", p), 3, "unsupported")
    assert_clean_error(run("info", tmp_path / "nope.nii"), 3, "no such file")


def test_wrong_extension_still_read(tmp_path):
    good = _good_nii(tmp_path)
    odd = tmp_path / "scan.dat"
    shutil.copy(good, odd)
    res = run("info", odd, "--get", "format")
    assert res.code == 0 and res.out.strip() == "nifti1"


def test_destination_exists_and_input_protected(tmp_path):
    good = _good_nii(tmp_path)
    out = tmp_path / "o.nii.gz"
    assert run("convert", good, out).code == 0
    before = out.read_bytes()
    assert_clean_error(run("convert", good, out), 4, "exists")
    assert out.read_bytes() == before
    assert run("convert", good, out, "--force").code == 0
    assert_clean_error(run("convert", good, good, "--force"), 4, "input")


def test_free_text_header_fields_are_not_copied(tmp_path):
    """PITFALLS 24: descrip/aux_file/intent_name often carry names and times; medconv writes none."""
    img = nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), oblique_affine())
    img.header["descrip"] = b"Doe^John 2024-01-02 10:11"
    img.header["aux_file"] = b"johns_scan"
    img.header["intent_name"] = b"JD"
    src = str(tmp_path / "phi.nii")
    img.to_filename(src)
    out = tmp_path / "clean.nii"
    assert run("convert", src, out).code == 0
    hdr = nib.load(str(out)).header
    assert hdr["descrip"].item() == b"" and hdr["aux_file"].item() == b"" and hdr["intent_name"].item() == b""


def test_freesurfer_large_vector_convention(tmp_path):
    """dim[1] = -1 with the real length in glmin (FreeSurfer's hack for long surfaces)."""
    n = 40000
    raw = bytearray(_good_nii(tmp_path).read_bytes()[:352])
    struct.pack_into("<8h", raw, 40, 5, -1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<h", raw, 70, 16)  # float32
    struct.pack_into("<h", raw, 72, 32)
    struct.pack_into("<i", raw, 144, n)  # glmin
    data = np.arange(n, dtype=np.float32)
    p = tmp_path / "surf.nii"
    p.write_bytes(bytes(raw) + data.tobytes())
    vol = medconv.read(str(p))
    assert vol.shape == (n, 1, 1, 1, 1)
    np.testing.assert_array_equal(vol.array.ravel(), data)


# ---- vox_offset 0 in a single-file NIfTI -----------------------------------------------------

def test_vox_offset_zero_reads_from_352_with_a_warning(tmp_path, capsys):
    """anatomical.nii (big-endian, n+1) with vox_offset patched to 0: the data still start at
    352, where nibabel reads the unpatched file, and the user is told."""
    import struct

    import nibabel as nib

    src = nibabel_data("anatomical.nii")
    raw = bytearray(open(src, "rb").read())
    assert struct.unpack_from(">f", raw, 108)[0] == 352.0
    struct.pack_into(">f", raw, 108, 0.0)
    path = tmp_path / "voxoff0.nii"
    path.write_bytes(bytes(raw))
    expected = np.asarray(nib.load(src).dataobj)
    vol = medconv.read(path)
    assert np.array_equal(vol.array, expected)
    err = capsys.readouterr().err
    assert "warning" in err and "vox_offset" in err and "352" in err


def test_vox_offset_zero_nifti2_reads_from_544(tmp_path, capsys):
    import nibabel as nib

    data = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    path = tmp_path / "n2.nii"
    nib.save(nib.Nifti2Image(data, np.eye(4)), str(path))
    raw = bytearray(path.read_bytes())
    assert raw[4:8] == b"n+2\x00"
    raw[168:176] = b"\x00" * 8  # vox_offset (int64) of NIfTI-2
    path.write_bytes(bytes(raw))
    assert np.array_equal(medconv.read(path).array, data)
    assert "544" in capsys.readouterr().err


def test_vox_offset_zero_without_the_extension_flag_reads_from_348(tmp_path, capsys):
    import struct

    data = np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3)
    path = tmp_path / "w.nii"
    medconv.write(make_volume((5, 4, 3), "int16").replace(data=data, scaling=None), path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<f", raw, 108, 0.0)
    del raw[348:352]  # a writer that left the 4 extension-flag bytes out
    path.write_bytes(bytes(raw))
    assert np.array_equal(medconv.read(path).array, data)
    assert "348" in capsys.readouterr().err


def test_tiny_nii_gz_claiming_billions_of_voxels_is_refused(tmp_path):
    """deflate expands at most ~1032:1, so a 30000^3 int16 header in a few bytes is corrupt (exit 3),
    for info as for every other command, without reading or allocating anything."""
    import gzip

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4))
    for cmd in ("info", "stats", "header"):
        r = run(cmd, tmp_path / "huge.nii.gz")
        if cmd == "header":  # header shows the header, which is all there is to show
            assert r.code == 0, r.err
            continue
        assert_clean_error(r, 3, "compressed file can hold")


@pytest.mark.parametrize("cls", [nib.Nifti1Image, nib.Nifti2Image])
def test_single_file_nifti_named_hdr_is_read_from_its_content(tmp_path, cls):
    """n+1 / n+2 says the data follows the header in the same file: no .img is looked for."""
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    img = cls(data, oblique_affine())
    nib.save(img, tmp_path / "x.nii")
    os.rename(tmp_path / "x.nii", tmp_path / "x.hdr")
    vol = medconv.read(str(tmp_path / "x.hdr"))
    assert np.array_equal(vol.array, data)
    assert np.allclose(vol.affine, img.affine, atol=1e-5)
    assert run("info", tmp_path / "x.hdr").code == 0


def test_compression_levels_all_give_the_same_image(tmp_path):
    """--compression-level 0-9 (0 stored, 1 ISA-L, 2-9 zlib-ng): every level is a valid gzip stream of
    the same bytes, and compresses; 10 is a usage error."""
    import gzip

    rng = np.random.default_rng(3)
    x, y, z = np.meshgrid(np.arange(64), np.arange(64), np.arange(24), indexing="ij")
    body = ((x - 32) ** 2 + (y - 32) ** 2 < 28 ** 2) * (40 + 3 * z)  # smooth tissue, air outside
    data = (body - 1000 * (body == 0) + rng.integers(0, 8, size=body.shape)).astype(np.int16)
    src = tmp_path / "src.nii"
    nib.save(nib.Nifti1Image(data, oblique_affine()), src)
    sizes = {}
    for level in (0, 1, 2, 3, 6, 9):
        out = tmp_path / f"l{level}.nii.gz"
        r = run("convert", src, out, "--compression-level", level)
        assert r.code == 0, r.err
        assert gzip.decompress(out.read_bytes())[352:] == src.read_bytes()[352:]
        assert np.array_equal(np.asarray(nib.load(out).dataobj), data)
        sizes[level] = out.stat().st_size
    assert sizes[0] > data.nbytes  # stored
    # (sizes need not fall with the level: even zlib's do not on every input)
    assert max(sizes[level] for level in (1, 2, 3, 6, 9)) < sizes[0] / 2
    assert_clean_error(run("convert", src, tmp_path / "x.nii.gz", "--compression-level", 10), 2)


@pytest.mark.parametrize("dims,glmin,want", [((-1, 1, 1), 40000, (40000, 1, 1)),
                                             ((-1, 1, 1, 3), 40000, (40000, 1, 1, 3)),
                                             ((27307, 1, 6), 0, (163842, 1, 1))])
def test_freesurfer_large_vector_conventions_read_as_nibabel_does(tmp_path, dims, glmin, want):
    n = int(np.prod(want))
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    raw = bytearray(hdr.binaryblock)
    struct.pack_into("<8h", raw, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into("<i", raw, 144, glmin)  # glmin
    struct.pack_into("<f", raw, 108, 352.0)  # vox_offset
    data = np.arange(n, dtype=np.float32)
    path = tmp_path / "fs.nii"
    path.write_bytes(bytes(raw) + b"\0" * 4 + data.tobytes())
    assert nib.load(path).shape == want
    vol = medconv.read(str(path))
    assert vol.shape == want
    assert np.array_equal(vol.array.reshape(-1, order="F"), np.asarray(nib.load(path).dataobj).reshape(-1, order="F"))


def test_spm_mat_beside_an_analyze_pair_is_warned_about(tmp_path):
    """SPM's .mat (orientation in a MATLAB file) is not read: medconv says so rather than placing the
    voxels differently from nibabel without a word."""
    img = nib.AnalyzeImage(np.zeros((5, 4, 3), np.int16), np.diag([2.0, 2.0, 3.0, 1.0]))
    nib.save(img, tmp_path / "a.hdr")
    assert "SPM .mat" not in run("info", tmp_path / "a.hdr").err
    (tmp_path / "a.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    r = run("info", tmp_path / "a.hdr")
    assert r.code == 0 and "SPM .mat file" in r.err
