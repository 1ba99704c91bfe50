"""Bytes that no header field accounts for (after the voxels, skipped before them, in a gap, after a
compressed stream, in a gzip header) are reported by --check and dropped by anonymize, in every
format, attached or detached data alike; voxels and geometry stay the same."""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import zlib

import numpy as np
import pytest

from helpers import nibabel_data, run

nib = pytest.importorskip("nibabel")
MARK = b"DOE JOHN 19700101"


def _volume():
    import medconv

    return medconv.Volume(np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3),
                          np.diag([2.0, 3.0, 4.0, 1.0]))


def _write(folder, name, **options):
    import medconv

    return [os.path.basename(p) for p in medconv.write(_volume(), folder / name, force=True, **options)]


def _nib(folder, name, cls):
    img = cls(np.arange(60, dtype=np.int16).reshape(4, 5, 3), np.diag([2.0, 3.0, 4.0, 1.0]))
    nib.save(img, str(folder / name))


def _append(path, extra=MARK):
    with open(path, "ab") as fh:
        fh.write(extra)


def _gzip_append(path):
    """Another gzip member after the image: inflates to bytes after the voxels."""
    _append(path, gzip.compress(MARK))


def _gzip_name(path):
    """A gzip header whose file-name field holds the marker, and bytes after the stream."""
    data = gzip.decompress(open(path, "rb").read())
    head = b"\x1f\x8b\x08\x08" + bytes(6) + MARK + b"\x00"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    open(path, "wb").write(head + body + struct.pack("<II", zlib.crc32(data), len(data)) + MARK)


def _insert_before_data(path, marker_at, field, fmt, value):
    """Rewrite a text header with an extra skip field and the marker in the skipped bytes."""
    data = open(path, "rb").read()
    end = data.index(marker_at) + len(marker_at)
    line = (field + fmt.format(len(MARK) + 1)).encode()
    return data[:end] + line + data[end:], value


# --- builders: (files written, how to plant, the file that carries the marker) ----------------

def mha(d):
    return _write(d, "v.mha"), lambda: _append(d / "v.mha")


def mha_zlib(d):
    return _write(d, "v.mha", compress=True), lambda: _append(d / "v.mha")


def mha_header_size(d):
    def plant():
        data = (d / "v.mha").read_bytes()
        at = data.index(b"ElementDataFile")
        data = data[:at] + f"HeaderSize = {len(MARK)}\n".encode() + data[at:]
        end = data.index(b"\n", data.index(b"ElementDataFile")) + 1
        (d / "v.mha").write_bytes(data[:end] + MARK + data[end:])
    return _write(d, "v.mha"), plant


def mhd_raw(d):
    return _write(d, "v.mhd"), lambda: _append(d / "v.raw")


def mhd_zraw(d):
    return _write(d, "v.mhd", compress=True), lambda: _append(d / "v.zraw")


def mhd_raw_at_end(d):
    def plant():  # HeaderSize = -1: the data are the file's last bytes, anything before is skipped
        data = (d / "v.mhd").read_bytes()
        at = data.index(b"ElementDataFile")
        (d / "v.mhd").write_bytes(data[:at] + b"HeaderSize = -1\n" + data[at:])
        (d / "v.raw").write_bytes(MARK + (d / "v.raw").read_bytes())
    return _write(d, "v.mhd"), plant


def nrrd_gzip(d):
    return _write(d, "v.nrrd"), lambda: _append(d / "v.nrrd")


def nrrd_gzip_member(d):
    return _write(d, "v.nrrd"), lambda: _gzip_append(d / "v.nrrd")


def nrrd_raw(d):
    return _write(d, "v.nrrd", encoding="raw"), lambda: _append(d / "v.nrrd")


def nrrd_byte_skip(d):
    def plant():
        data = (d / "v.nrrd").read_bytes()
        head, _, body = data.partition(b"\n\n")
        (d / "v.nrrd").write_bytes(head + f"\nbyte skip: {len(MARK)}\nline skip: 1".encode() + b"\n\n"
                                   + b"comment line\n" + MARK + body)
    return _write(d, "v.nrrd", encoding="raw"), plant


def nrrd_ascii(d):
    (d / "v.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 2\nsizes: 3 2\nencoding: ascii\n\n"
                               b"1 2 3\n4 5 6\n")
    return ["v.nrrd"], lambda: _append(d / "v.nrrd", b"\n" + MARK + b"\n")


def nhdr_raw(d):
    return _write(d, "v.nhdr"), lambda: _append(d / "v.raw")


def nhdr_gzip(d):
    return _write(d, "v.nhdr", encoding="gzip"), lambda: _append(d / "v.raw.gz")


def nhdr_gzip_name(d):
    return _write(d, "v.nhdr", encoding="gzip"), lambda: _gzip_name(d / "v.raw.gz")


def nrrd_hex(d):
    (d / "v.nrrd").write_bytes(b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 3 2\nencoding: hex\n\n"
                               b"0102 03\n04 0506\n")
    return ["v.nrrd"], lambda: _append(d / "v.nrrd", MARK.hex().encode() + b"\n" + MARK)


def nhdr_trailing_header(d):
    return _write(d, "v.nhdr"), lambda: _append(d / "v.nhdr", b"\n" + MARK)


def nifti_pair(d):
    _nib(d, "v.img", nib.Nifti1Pair)
    return ["v.hdr", "v.img"], lambda: _append(d / "v.img")


def nifti_pair_offset(d):
    def plant():  # vox_offset > 0 in the .img: the bytes before the voxels are not image data
        hdr = bytearray((d / "v.hdr").read_bytes())
        struct.pack_into("<f", hdr, 108, 32.0)
        (d / "v.hdr").write_bytes(bytes(hdr))
        (d / "v.img").write_bytes(MARK.ljust(32, b"\0") + (d / "v.img").read_bytes())
    _nib(d, "v.img", nib.Nifti1Pair)
    return ["v.hdr", "v.img"], plant


def analyze_pair(d):
    _nib(d, "v.img", nib.AnalyzeImage)
    return ["v.hdr", "v.img"], lambda: _append(d / "v.img")


def nifti_pair_gz(d):
    _nib(d, "v.img.gz", nib.Nifti1Pair)
    return ["v.hdr.gz", "v.img.gz"], lambda: (_gzip_append(d / "v.img.gz"), _append(d / "v.img.gz"))


def _one_file(builder: str, name: str, cls, plant):
    """A builder named `builder`: nibabel writes `name` as `cls`; `plant(path)` plants the marker in it."""
    def build(d):
        _nib(d, name, cls)
        return [name], lambda: plant(d / name)

    build.__name__ = builder
    return build


nii = _one_file("nii", "v.nii", nib.Nifti1Image, _append)
nii_gz = _one_file("nii_gz", "v.nii.gz", nib.Nifti1Image, _gzip_append)
nii_gz_header = _one_file("nii_gz_header", "v.nii.gz", nib.Nifti1Image, _gzip_name)
mgh = _one_file("mgh", "v.mgh", nib.MGHImage, _append)
mgz = _one_file("mgz", "v.mgz", nib.MGHImage, _gzip_name)


def minc1(d):
    shutil.copy(nibabel_data("minc1_1_scale.mnc"), d / "v.mnc")
    return ["v.mnc"], lambda: _append(d / "v.mnc")


def minc2(d):
    pytest.importorskip("h5py")
    shutil.copy(nibabel_data("minc2_1_scale.mnc"), d / "v.mnc")
    return ["v.mnc"], lambda: _append(d / "v.mnc")


def _pil(d, name, **kw):
    from PIL import Image

    Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)).save(d / name, **kw)
    return [name]


def png(d):
    return _pil(d, "v.png"), lambda: _append(d / "v.png")


def jpeg(d):
    return _pil(d, "v.jpg"), lambda: _append(d / "v.jpg")


def tiff(d):
    return _pil(d, "v.tif"), lambda: _append(d / "v.tif")


def bmp(d):
    return _pil(d, "v.bmp"), lambda: _append(d / "v.bmp")


def bmp_gap(d):
    def plant():  # the pixels moved on: a gap holding the marker between palette and pixels
        data = (d / "v.bmp").read_bytes()
        (off,) = struct.unpack_from("<I", data, 10)
        new = bytearray(data[:off] + MARK + data[off:])
        struct.pack_into("<I", new, 10, off + len(MARK))
        struct.pack_into("<I", new, 2, len(new))
        struct.pack_into("<HH", new, 6, 0x4f44, 0x2045)  # reserved fields: "DO", "E "
        (d / "v.bmp").write_bytes(bytes(new))
    return _pil(d, "v.bmp"), plant


def bmp_row_padding(d):
    def plant():  # 7 RGB pixels = 21 bytes a row, padded to 24: the padding holds the marker
        data = bytearray((d / "v.bmp").read_bytes())
        (off,) = struct.unpack_from("<I", data, 10)
        for r in range(5):
            data[off + r * 24 + 21:off + r * 24 + 24] = b"DOE"
        (d / "v.bmp").write_bytes(bytes(data))
    return _pil(d, "v.bmp"), plant


bmp_row_padding.marker = b"DOE"


BUILDERS = [mha, mha_zlib, mha_header_size, mhd_raw, mhd_zraw, mhd_raw_at_end, nrrd_gzip, nrrd_gzip_member,
            nrrd_raw, nrrd_byte_skip, nrrd_ascii, nhdr_raw, nhdr_gzip, nhdr_gzip_name, nrrd_hex, nhdr_trailing_header, nifti_pair,
            nifti_pair_offset, analyze_pair, nifti_pair_gz, nii, nii_gz, nii_gz_header, mgh, mgz, minc1, minc2, png,
            jpeg, tiff, bmp, bmp_gap, bmp_row_padding]


def _all_bytes(folder) -> bytes:
    """Every byte under `folder`, gzip streams inflated as well."""
    out = []
    for d, _, files in os.walk(folder):
        for f in files:
            data = open(os.path.join(d, f), "rb").read()
            out.append(data)
            if data[:2] == b"\x1f\x8b":
                try:
                    out.append(gzip.decompress(data))
                except (OSError, EOFError):
                    pass
            for magic, wbits in ((b"\x78", 15), (b"\x1f\x8b", 31)):  # zlib and gzip streams anywhere
                i = data.find(magic)
                while 0 <= i < len(data) - 2:
                    try:
                        out.append(zlib.decompressobj(wbits).decompress(data[i:]))
                    except zlib.error:
                        pass
                    i = data.find(magic, i + 1)
    return b"\n".join(out)


def _pixels(path):
    import medconv

    path = str(path)
    if path.endswith((".png", ".jpg", ".tif", ".bmp")):
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im).copy(), None
    v = medconv.read(path)
    return np.asarray(v.array), v.affine


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_stray_bytes_reported_and_dropped(tmp_path, build):
    clean_src = tmp_path / "build"
    clean_src.mkdir()
    files, _ = build(clean_src)
    # the clean image, anonymised once: nothing else is left to remove in it
    clean = tmp_path / "clean"
    r = run("anonymize", clean_src, "-o", clean, "--key", "k", "--layout", "mirror", "-q")
    assert r.code == 0, r.err
    main = files[0]
    assert run("anonymize", "--check", clean).code == 0
    before = _pixels(clean / main)
    # the same image with stray bytes
    src = tmp_path / "in"
    shutil.copytree(clean, src)
    _, plant = build_plant(build, src)
    plant()
    mark = getattr(build, "marker", MARK)
    assert mark in _all_bytes(src)
    r = run("anonymize", "--check", src)
    assert r.code == 1, r.out
    assert "data" in r.out or "gzip" in r.out or "padding" in r.out or "reserved" in r.out, r.out
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q")
    assert r.code == 0, r.err
    assert mark not in _all_bytes(out)
    assert sorted(os.listdir(out)) == sorted(os.listdir(clean))
    r = run("anonymize", "--check", out)
    assert r.code == 0, r.out
    after = _pixels(out / main)
    assert np.array_equal(before[0], after[0])
    if before[1] is not None:
        assert np.allclose(before[1], after[1])


def build_plant(build, folder):
    """The planting function of `build`, bound to `folder`, whose (anonymised) files are kept."""
    saved = {f: (folder / f).read_bytes() for f in os.listdir(folder)}
    files, plant = build(folder)  # rebuilds the files: put the anonymised ones back
    for f in os.listdir(folder):
        if f not in saved:
            os.unlink(folder / f)
    for f, data in saved.items():
        (folder / f).write_bytes(data)
    return files, plant


def test_in_place_cuts_detached_data_too(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _write(src, "v.mhd")
    run("anonymize", src, "--in-place", "--key", "k", "-q")
    clean = (src / "v.raw").read_bytes()
    _append(src / "v.raw")
    assert run("anonymize", "--check", src).code == 1
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    assert (src / "v.raw").read_bytes() == clean
    assert run("anonymize", "--check", src).code == 0


def test_missing_or_short_data_is_refused_cleanly(tmp_path):
    from helpers import assert_clean_error

    src = tmp_path / "in"
    src.mkdir()
    _write(src, "v.mhd")
    (src / "v.raw").write_bytes((src / "v.raw").read_bytes()[:-3])
    r = run("anonymize", src / "v.mhd", "-o", tmp_path / "o", "--key", "k")
    assert_clean_error(r, 3, "v.raw", "the header needs")
    assert not (tmp_path / "o").exists()
    _nib(src, "p.img", nib.Nifti1Pair)
    os.unlink(src / "p.img")
    r = run("anonymize", src / "p.hdr", "-o", tmp_path / "o", "--key", "k")
    assert_clean_error(r, 3, "p.hdr", ".img file of this .hdr is missing")
    assert not (tmp_path / "o").exists()


def _netcdf(gap: bytes) -> bytes:
    """A minimal NetCDF classic file: one dimension `xspace` (8), one byte variable `image` whose
    data start `len(gap)` bytes after the header, the gap holding `gap`."""
    def name(text):
        b = text.encode()
        return struct.pack(">I", len(b)) + b + bytes(-len(b) % 4)

    def header(begin):
        return (b"CDF\x01" + struct.pack(">I", 0) + struct.pack(">II", 0x0A, 1) + name("xspace")
                + struct.pack(">I", 8) + bytes(8) + struct.pack(">II", 0x0B, 1) + name("image")
                + struct.pack(">II", 1, 0) + bytes(8) + struct.pack(">III", 1, 8, begin))

    size = len(header(0))
    return header(size + len(gap)) + gap + bytes(range(1, 9))


def test_minc1_gap_between_header_and_data():
    from medconv.formats import minc

    clean = _netcdf(b"")
    assert minc.scrub_minc1(clean, "x") == (clean, [])
    planted = _netcdf(MARK.ljust(20, b"\0"))
    new, changed = minc.scrub_minc1(planted, "x")
    assert changed == ["data between the variables"]
    assert MARK not in new and new == clean  # the variable's data follow the header again
    zeros = _netcdf(bytes(20))  # a gap of zeros holds nothing: left as it is
    assert minc.scrub_minc1(zeros, "x") == (zeros, [])


def test_minc2_text_left_in_hdf5_free_space(tmp_path):
    """An attribute deleted by another tool leaves its text in the HDF5 file's free space."""
    h5py = pytest.importorskip("h5py")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(nibabel_data("minc2_1_scale.mnc"), src / "v.mnc")
    clean = tmp_path / "clean"
    assert run("anonymize", src, "-o", clean, "--key", "k", "--layout", "mirror", "-q").code == 0
    shutil.copy(clean / "v.mnc", src / "v.mnc")
    with h5py.File(src / "v.mnc", "a") as fh:
        fh["minc-2.0"].attrs["note"] = MARK + b" free text"
    with h5py.File(src / "v.mnc", "a") as fh:
        del fh["minc-2.0"].attrs["note"]
    assert MARK in (src / "v.mnc").read_bytes()
    r = run("anonymize", "--check", src)
    assert r.code == 1 and "no HDF5 object holds" in r.out, r.out
    out = tmp_path / "out"
    assert run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q").code == 0
    assert MARK not in (out / "v.mnc").read_bytes()
    assert run("anonymize", "--check", out).code == 0
    assert np.array_equal(_pixels(out / "v.mnc")[0], _pixels(clean / "v.mnc")[0])


def test_data_files_are_never_taken_for_images_of_their_own(tmp_path):
    """A .img.gz (or .raw) whose voxels happen to start like an MGH header is still the data of its
    header: written once, with it, never as an image of its own."""
    src = tmp_path / "in"
    src.mkdir()
    arr = np.zeros(60, dtype=">i4")
    arr[:6] = [1, 2, 2, 2, 1, 0]  # reads as an MGH header: version 1, 2x2x2, one frame, uchar
    nib.save(nib.Nifti1Pair(arr.reshape(3, 4, 5), np.eye(4)), str(src / "v.img.gz"))
    (src / "w.raw").write_bytes(arr.tobytes())
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror")
    assert r.code == 0, r.err
    assert sorted(os.listdir(out)) == ["v.hdr.gz", "v.img.gz"]
    assert "anonymised 1 file(s), skipped 2" in r.err
    assert np.array_equal(nib.load(str(out / "v.img.gz")).get_fdata().reshape(-1)[:6], [1, 2, 2, 2, 1, 0])


@pytest.mark.parametrize(("cls", "name", "fields"), [
    (nib.Nifti1Image, "v.nii", {"glmax": 140, "glmin": 144}),
    (nib.AnalyzeImage, "v.img", {"views": 316, "omax": 332, "smin": 344})])
def test_unused_numeric_header_fields_cleared(tmp_path, cls, name, fields):
    """Header fields no reader uses hold four bytes each of anything: zeroed, and reported."""
    src = tmp_path / "in"
    src.mkdir()
    _nib(src, name, cls)
    header = src / ("v.nii" if name == "v.nii" else "v.hdr")
    data = bytearray(header.read_bytes())
    for at in fields.values():
        data[at:at + 4] = b"DOE "
    header.write_bytes(bytes(data))
    r = run("anonymize", "--check", src)
    assert r.code == 1 and all(f in r.out for f in fields), r.out
    out = tmp_path / "out"
    assert run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q").code == 0
    assert b"DOE" not in _all_bytes(out)
    assert run("anonymize", "--check", out).code == 0
    assert np.array_equal(_pixels(out / name)[0], _pixels(src / name)[0])


def test_minc1_header_padding():
    """Names in a NetCDF header are padded to four bytes: padding that is not zero is rewritten."""
    from medconv.formats import minc

    clean = _netcdf(b"")
    at = clean.index(b"image") + 5  # "image" is padded with three bytes
    planted = clean[:at] + b"DOE" + clean[at + 3:]
    new, changed = minc.scrub_minc1(planted, "x")
    assert changed == ["header padding"] and new == clean


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("where", ["idat-tail", "critical", "iend"])
def test_png_bytes_no_decoder_reads(tmp_path, where):
    """After the zlib stream inside IDAT, in a critical chunk no decoder knows, inside IEND."""
    src = tmp_path / "in"
    src.mkdir()
    _pil(src, "v.png")
    data = (src / "v.png").read_bytes()
    at = data.index(b"IDAT") - 4
    (n,) = struct.unpack_from(">I", data, at)
    body = data[at + 8:at + 8 + n]
    end = data.index(b"IEND") - 4
    if where == "idat-tail":
        data = data[:at] + _png_chunk(b"IDAT", body + MARK) + data[at + 12 + n:]
    elif where == "critical":
        data = data[:end] + _png_chunk(b"DOEJ", MARK) + data[end:]
    else:
        data = data[:end] + _png_chunk(b"IEND", MARK)
    (src / "v.png").write_bytes(data)
    r = run("anonymize", "--check", src)
    assert r.code == 1, r.out
    out = tmp_path / "out"
    r = run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q")
    assert r.code == 0, r.err
    assert MARK not in (out / "v.png").read_bytes()
    assert run("anonymize", "--check", out).code == 0
    assert np.array_equal(_pixels(out / "v.png")[0], _pixels(src / "v.png")[0])


def test_tiff_strip_byte_count_claiming_more_than_its_rows(tmp_path):
    """An uncompressed strip whose byte count claims more than its rows: the excess is read by no
    decoder and is zeroed."""
    src = tmp_path / "in"
    src.mkdir()
    _pil(src, "v.tif")
    data = bytearray((src / "v.tif").read_bytes())
    from PIL import Image

    with Image.open(src / "v.tif") as im:
        offsets, counts = im.tag_v2[273], im.tag_v2[279]
    assert len(offsets) == 1 and counts[0] == 5 * 7 * 3
    # move the strip to the end with the marker after its rows, and claim the marker as the strip's
    strip = bytes(data[offsets[0]:offsets[0] + counts[0]])
    new_off = len(data)
    data += strip + MARK
    ifd = struct.unpack_from("<I", data, 4)[0]
    (n,) = struct.unpack_from("<H", data, ifd)
    for i in range(n):
        tag, typ, cnt = struct.unpack_from("<HHI", data, ifd + 2 + 12 * i)
        if tag == 273:
            struct.pack_into("<I" if typ == 4 else "<H", data, ifd + 10 + 12 * i, new_off)
        if tag == 279:
            struct.pack_into("<I" if typ == 4 else "<H", data, ifd + 10 + 12 * i, counts[0] + len(MARK))
    data[offsets[0]:offsets[0] + counts[0]] = bytes(counts[0])
    (src / "v.tif").write_bytes(bytes(data))
    assert np.array_equal(_pixels(src / "v.tif")[0], np.arange(105, dtype=np.uint8).reshape(5, 7, 3))
    r = run("anonymize", "--check", src)
    assert r.code == 1, r.out
    out = tmp_path / "out"
    assert run("anonymize", src, "-o", out, "--key", "k", "--layout", "mirror", "-q").code == 0
    assert MARK not in (out / "v.tif").read_bytes()
    assert np.array_equal(_pixels(out / "v.tif")[0], _pixels(src / "v.tif")[0])
    assert run("anonymize", "--check", out).code == 0
