"""NRRD backend: round trips, SimpleITK cross-checks both ways, detached and encoded forms, bad inputs."""
import bz2
import gzip

import numpy as np
import pytest

import medconv
from helpers import (
    assert_bad_input_refused,
    assert_refused,
    assert_sitk_image,
    make_volume,
    oblique_affine,
    run,
    sitk_reads_rgb,
    write_read,
)
from medconv import geometry
from medconv.formats import backend

sitk = pytest.importorskip("SimpleITK")


def test_attached_is_gzip_and_detached_is_raw(tmp_path):
    v = make_volume(shape=(5, 4, 3), dtype="int16")
    medconv.write(v, str(tmp_path / "a.nrrd"))
    head, _, data = (tmp_path / "a.nrrd").read_bytes().partition(b"\n\n")
    assert b"encoding: gzip" in head and b"space: left-posterior-superior" in head and data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data) == np.asfortranarray(v.array).tobytes(order="F")
    files = medconv.write(v, str(tmp_path / "d.nhdr"))
    assert files[1].endswith("d.raw") and b"data file: d.raw" in (tmp_path / "d.nhdr").read_bytes()
    assert (tmp_path / "d.raw").read_bytes() == v.array.tobytes(order="F")


def test_oblique_2d_keeps_its_plane(tmp_path):
    v = make_volume(shape=(6, 5), dtype="int16")
    back, _ = write_read(v, ".nrrd", tmp_path, name="p")
    assert back.shape == (6, 5, 1) and geometry.world_equal(back.affine, v.affine, (6, 5, 1))


@pytest.mark.parametrize("shape,ext", [((7, 6, 5), ".nrrd"), ((7, 6, 5), ".nhdr"), ((5, 4, 3, 2), ".nrrd"),
                                       ((7, 6), ".nrrd")])
def test_simpleitk_reads_what_medconv_writes(tmp_path, shape, ext):
    aff = np.diag([-0.5, -0.75, 1.0, 1.0]) if len(shape) == 2 else oblique_affine()
    v = make_volume(shape=shape, dtype="int16", affine=aff, time_step=1.5 if len(shape) == 4 else None)
    path = str(tmp_path / ("o" + ext))
    medconv.write(v, path)
    im = sitk.ReadImage(path)
    assert_sitk_image(im, v, affine=len(shape) > 2)
    if len(shape) == 2:
        assert np.allclose(im.GetSpacing(), (0.5, 0.75)) and np.allclose(im.GetOrigin(), (0, 0))
    if len(shape) == 4:
        assert im.GetSpacing()[3] == 1.5


def test_simpleitk_reads_rgb(tmp_path):
    rgb, im = sitk_reads_rgb(tmp_path, ".nrrd")
    assert_sitk_image(im, rgb)


def test_simpleitk_4d_with_unnamed_space(tmp_path):
    im = sitk.Image([5, 4, 3, 2], sitk.sitkFloat32)
    im.SetSpacing((1, 2, 3, 1.5))
    im.SetOrigin((1, 2, 3, 4))
    sitk.WriteImage(im, str(tmp_path / "f.nrrd"))
    v = medconv.read(str(tmp_path / "f.nrrd"))
    assert v.shape == (5, 4, 3, 2) and v.time_step == 1.5 and v.orientation == "LPS"
    assert np.allclose(v.affine, geometry.lps_to_ras(geometry.compose(np.eye(3), (1, 2, 3), (1, 2, 3))))


def _nhdr(d, name, lines, data_files=()):
    for fname, blob in data_files:
        (d / fname).write_bytes(blob)
    (d / name).write_text("NRRD0004\n" + "".join(line + "\n" for line in lines))
    return str(d / name)


BASE = ["type: short", "dimension: 3", "sizes: 3 4 2", "space: right-anterior-superior",
        "space directions: (1,0,0) (0,1,0) (0,0,2)", "space origin: (10,20,30)"]
DATA = np.arange(24, dtype=np.int16).reshape(2, 4, 3)  # [z, y, x] on disk
WANT = DATA.transpose(2, 1, 0)


@pytest.mark.parametrize("encoding,blob", [
    ("raw", DATA.tobytes()), ("gzip", gzip.compress(DATA.tobytes(), mtime=0)), ("bzip2", bz2.compress(DATA.tobytes())),
    ("ascii", " ".join(str(v) for v in DATA.reshape(-1)).encode()), ("hex", DATA.tobytes().hex().encode()),
])
def test_detached_encodings(tmp_path, encoding, blob):
    p = _nhdr(tmp_path, "e.nhdr", BASE + ["endian: little", f"encoding: {encoding}", "data file: e.dat"],
              [("e.dat", blob)])
    v = medconv.read(p)
    np.testing.assert_array_equal(v.array, WANT)
    # RAS space: the header's matrix is the affine as it stands
    assert np.allclose(v.affine, [[1, 0, 0, 10], [0, 1, 0, 20], [0, 0, 2, 30], [0, 0, 0, 1]])


def test_big_endian_list_pattern_and_skips(tmp_path):
    be = DATA.astype(">i2")
    p = _nhdr(tmp_path, "b.nhdr", BASE + ["endian: big", "encoding: raw", "data file: b.raw"],
              [("b.raw", be.tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, WANT)
    p = _nhdr(tmp_path, "l.nhdr", BASE + ["endian: little", "encoding: raw", "data file: LIST", "s0.raw", "s1.raw"],
              [("s0.raw", DATA[0].tobytes()), ("s1.raw", DATA[1].tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, WANT)
    p = _nhdr(tmp_path, "p.nhdr", BASE + ["endian: little", "encoding: raw", "data file: s%d.raw 0 1 1 2"])
    np.testing.assert_array_equal(medconv.read(p).array, WANT)
    p = _nhdr(tmp_path, "k.nhdr", BASE + ["endian: little", "encoding: raw", "line skip: 1", "byte skip: 4",
                                          "data file: k.raw"], [("k.raw", b"a text line\nJUNK" + DATA.tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, WANT)
    p = _nhdr(tmp_path, "m.nhdr", BASE + ["endian: little", "encoding: raw", "byte skip: -1", "data file: m.raw"],
              [("m.raw", b"preamble" + DATA.tobytes())])
    np.testing.assert_array_equal(medconv.read(p).array, WANT)


def test_type_aliases(tmp_path):
    for alias in ("short", "int16", "signed short int", "int16_t", "short int"):
        lines = [f"type: {alias}"] + BASE[1:] + ["endian: little", "encoding: raw", "data file: a.raw"]
        p = _nhdr(tmp_path, "a.nhdr", lines, [("a.raw", DATA.tobytes())])
        assert medconv.read(p).dtype == np.int16
    for alias, want in (("uchar", np.uint8), ("unsigned char", np.uint8), ("float", np.float32),
                        ("double", np.float64), ("unsigned long long", np.uint64)):
        assert np.dtype(backend("nrrd").TYPES[alias]) == want


def test_no_space_axis_aligned_and_fields_kept(tmp_path):
    lines = ["# made by hand", "type: uchar", "dimension: 3", "sizes: 3 4 2", "spacings: 0.5 0.5 2",
             "axis mins: 1 2 3", "centers: cell cell node", "kinds: domain domain domain",
             "encoding: raw", "PatientName:=Doe^John", "data file: a.raw"]
    p = _nhdr(tmp_path, "a.nhdr", lines, [("a.raw", bytes(range(24)))])
    v = medconv.read(p)
    assert not v.orientation_known
    lps = geometry.ras_to_lps(v.affine)
    assert np.allclose(np.diag(lps)[:3], (0.5, 0.5, 2)) and np.allclose(lps[:3, 3], (1.25, 2.25, 3))
    hdr = backend("nrrd").read_header(p, "nrrd")
    assert list(hdr)[:4] == ["magic", "type", "dimension", "sizes"]
    assert hdr["PatientName"] == "Doe^John" and hdr["comments"] == ["made by hand"]
    assert hdr["spacings"] == [0.5, 0.5, 2.0]


def test_list_axis_first_becomes_the_fourth(tmp_path):
    """A DWI-style file: a list axis before the spatial ones becomes the 4th Volume axis."""
    data = np.arange(2 * 3 * 4 * 2, dtype=np.uint8)
    lines = ["type: uchar", "dimension: 4", "sizes: 2 3 4 2", "space: left-posterior-superior",
             "space directions: none (1,0,0) (0,1,0) (0,0,1)", "kinds: list domain domain domain",
             "encoding: raw", "space origin: (0,0,0)", "data file: a.raw"]
    p = _nhdr(tmp_path, "a.nhdr", lines, [("a.raw", data.tobytes())])
    v = medconv.read(p)
    assert v.shape == (3, 4, 2, 2) and v.value_kind == "scalar"
    np.testing.assert_array_equal(v.array, data.reshape(2, 3, 4, 2, order="F").transpose(1, 2, 3, 0))


RAW = ["endian: little", "encoding: raw"]
BAD = {
    "missing data file": (BASE + RAW + ["data file: gone.raw"], [], "gone.raw"),
    "truncated": (BASE + RAW + ["data file: t.raw"], [("t.raw", b"\0" * 10)], "truncated"),
    "bad dimension": (["type: short", "dimension: x", "sizes: 3 4 2"] + RAW + ["data file: t.raw"],
                      [("t.raw", b"\0" * 48)], "dimension"),
    "unknown type": (["type: quaternion"] + BASE[1:] + RAW + ["data file: t.raw"], [("t.raw", b"\0" * 48)], "type"),
    "huge claim": (["type: uchar", "dimension: 3", "sizes: 10000 10000 10000", "encoding: raw", "data file: t.raw"],
                   [("t.raw", b"\0" * 48)], "10000"),
    "huge gzip claim": (["type: uchar", "dimension: 3", "sizes: 10000 10000 10000", "encoding: gzip",
                         "data file: t.gz"], [("t.gz", gzip.compress(b"\0" * 48))], "10000"),
    "sizes mismatch": (["type: uchar", "dimension: 3", "sizes: 3 4"] + RAW + ["data file: t.raw"],
                       [("t.raw", b"\0" * 48)], "sizes"),
    "bad vector": (["type: uchar", "dimension: 3", "sizes: 3 4 2", "space: LPS",
                    "space directions: (1,0,0) (0,1,0) (0,0,x)"] + RAW + ["data file: t.raw"],
                   [("t.raw", b"\0" * 48)], "vector"),
    "unknown encoding": (BASE + ["encoding: zrl", "data file: t.raw"], [("t.raw", b"\0" * 48)], "encoding"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_inputs_are_clean_errors(tmp_path, case, command):
    lines, data_files, needle = BAD[case]
    assert_bad_input_refused(tmp_path, command, lambda d: _nhdr(d, "bad.nhdr", lines, data_files), needle)


def test_truncated_attached_gzip_is_a_clean_error(tmp_path):
    v = make_volume(shape=(20, 20, 10), dtype="int16")
    medconv.write(v, str(tmp_path / "t.nrrd"))
    blob = (tmp_path / "t.nrrd").read_bytes()
    (tmp_path / "t.nrrd").write_bytes(blob[: len(blob) - 2000])
    out = tmp_path / "out"
    assert_refused(run("convert", tmp_path / "t.nrrd", out / "o.nii"), out, 3)


@pytest.mark.parametrize("encoding,blob,skip", [
    ("gzip", gzip.compress(DATA.tobytes()[:20], mtime=0) + gzip.compress(DATA.tobytes()[20:], mtime=0), 0),  # bgzip-like
    ("bzip2", bz2.compress(DATA.tobytes()[:10]) + bz2.compress(DATA.tobytes()[10:]), 0),
    ("gzip", gzip.compress(b"SKIPME" + DATA.tobytes(), mtime=0), 6),  # byte skip counts decoded bytes
], ids=["gzip-two-members", "bzip2-two-streams", "gzip-byte-skip"])
def test_attached_multi_member_and_decoded_byte_skip(tmp_path, encoding, blob, skip):
    lines = BASE + ["endian: little", f"encoding: {encoding}", f"byte skip: {skip}"]
    p = tmp_path / "a.nrrd"
    p.write_bytes(("NRRD0004\n" + "\n".join(lines) + "\n\n").encode() + blob)
    np.testing.assert_array_equal(medconv.read(str(p)).array, WANT)
