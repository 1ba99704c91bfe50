"""Memory bounded by what is really there: decompression bombs per compression, sequence nesting.

Each bomb is a few MB that inflates to gigabytes; every command runs in a fresh interpreter under
`ulimit -v` (RLIMIT_AS) far below what the bomb claims, and must end with one error line (exit 3)
or a correct result (when it stops at the declared size), never a traceback or a MemoryError.
"""
from __future__ import annotations

import bz2
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, Result, assert_clean_error, run
from security import hostile

#: address space a command may use: Python, numpy, pydicom and friends take ~400 MB of it
LIMIT = 900 << 20
GB2 = 2 << 30


def limited(*argv, limit: int = LIMIT) -> Result:
    """`medconv ARGV` in a fresh interpreter whose address space is capped at `limit` bytes."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
            "from medconv.cli import main; main(sys.argv[1:])")
    env = dict(os.environ, MEDCONV_ANON_KEY="test-key")
    env.pop("MEDCONV_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    (d / "deflated.dcm").write_bytes(hostile.deflated_dicom_bomb(GB2))
    (d / "gzipped.dcm.gz").write_bytes(hostile.gzip_bomb(GB2, hostile.dicom()))
    import nibabel as nib

    header = nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)).header
    header["vox_offset"] = 352
    (d / "image.nii.gz").write_bytes(hostile.gzip_bomb(GB2, header.binaryblock + b"\0" * 4))
    import struct

    mgh = struct.pack(">7i", 1, 64, 64, 64, 1, 4, 0) + bytes(284 - 28)
    (d / "image.mgz").write_bytes(hostile.gzip_bomb(GB2, mgh))
    return d


@pytest.mark.parametrize("name", ["deflated.dcm", "gzipped.dcm.gz"])
@pytest.mark.parametrize("command", ["info", "header", "header --json", "stats", "convert", "anonymize"])
def test_dicom_bombs_are_refused_early(bombs, tmp_path, name, command):
    argv = command.split() + [bombs / name]
    if command == "convert":
        argv.append(tmp_path / "out.nii")
    if command == "anonymize":
        argv += ["-o", tmp_path / "anon"]
    result = limited(*argv)
    if command == "anonymize" and name.endswith(".gz"):  # gzip-compressed DICOM is not anonymised: left out
        assert result.code == 0 and "skipped 1" in result.err, result.err
        return
    assert_clean_error(result, 3, "decompression bomb")
    assert "MemoryError" not in result.err
    assert not os.path.exists(tmp_path / "out.nii") and not os.path.exists(tmp_path / "anon")


@pytest.mark.parametrize("name", ["image.nii.gz", "image.mgz"])
def test_anonymize_gzip_bombs_are_refused(bombs, tmp_path, name):
    result = limited("anonymize", bombs / name, "-o", tmp_path / "anon")
    assert_clean_error(result, 3, "decompression bomb")
    assert not os.listdir(tmp_path / "anon") if os.path.isdir(tmp_path / "anon") else True
    check = limited("anonymize", "--check", bombs / name)
    assert check.code == 1 and "decompression bomb" in check.out and "Traceback" not in check.err


@pytest.mark.parametrize("command", ["info", "header", "stats", "convert"])
def test_mgh_gzip_bomb_is_bounded(bombs, tmp_path, command):
    argv = [command, bombs / "image.mgz"] + ([tmp_path / "o.nii"] if command == "convert" else [])
    result = limited(*argv)
    if command == "info":  # the header alone: nothing inflated
        assert result.code == 0, result.err
    else:
        assert_clean_error(result, 3, "decompression bomb")


def test_nifti_gzip_bomb_reads_only_the_declared_voxels(bombs, tmp_path):
    result = limited("convert", bombs / "image.nii.gz", tmp_path / "o.nii")
    assert result.code == 0, result.err
    assert os.path.getsize(tmp_path / "o.nii") < 1 << 20


def _detached(tmp_path, fmt: str, encoding: str, sizes=(64, 64, 64)) -> str:
    """A detached header over 2 GB of compressed zeros declaring `sizes` int16 voxels."""
    if fmt == "nrrd":
        data = tmp_path / ("d.raw.gz" if encoding == "gzip" else "d.raw.bz2")
        header = tmp_path / "h.nhdr"
        header.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: {} {} {}\nendian: little\n"
                          "encoding: {}\ndata file: {}\n".format(*sizes, encoding, data.name))
    else:
        data = tmp_path / "d.zraw"
        header = tmp_path / "h.mhd"
        header.write_text("NDims = 3\nDimSize = {} {} {}\nElementType = MET_SHORT\nCompressedData = True\n"
                          "ElementDataFile = d.zraw\n".format(*sizes))
    if encoding == "bzip2":
        data.write_bytes(bz2.compress(bytes(64 << 20), 9))  # bzip2 of zeros: 64 MB in a few dozen bytes
    else:
        data.write_bytes(hostile.gzip_bomb(GB2) if encoding == "gzip" else hostile.deflate_bomb(GB2, wbits=15))
    return str(header)


@pytest.mark.parametrize("fmt,encoding", [("nrrd", "gzip"), ("nrrd", "bzip2"), ("metaimage", "zlib")])
def test_detached_bombs_stop_at_the_declared_size(tmp_path, fmt, encoding):
    header = _detached(tmp_path, fmt, encoding)
    for argv in (["stats", header, "--get", "max"], ["stats", "--no-percentiles", header, "--get", "max"],
                 ["convert", header, tmp_path / "o.nii"]):
        result = limited(*argv)
        assert result.code == 0, (argv, result.err)
    assert os.path.getsize(tmp_path / "o.nii") == 352 + 64 ** 3 * 2


@pytest.mark.parametrize("fmt,encoding", [("nrrd", "gzip"), ("metaimage", "zlib")])
def test_claims_beyond_what_deflate_can_hold_are_refused_before_allocating(tmp_path, fmt, encoding):
    header = _detached(tmp_path, fmt, encoding, sizes=(4096, 4096, 4096))  # 128 GB claimed of 2 MB
    result = limited("convert", header, tmp_path / "o.nii")
    assert_clean_error(result, 3, "bytes")
    assert not os.path.exists(tmp_path / "o.nii")


@pytest.mark.parametrize("fmt,encoding", [("nrrd", "gzip"), ("metaimage", "zlib")])
def test_stats_streams_compressed_nrrd_and_metaimage(tmp_path, fmt, encoding):
    """400 MB of voxels in ~1 MB of gzip/zlib: statistics without holding the volume."""
    header = _detached(tmp_path, fmt, encoding, sizes=(512, 512, 800))
    if encoding == "gzip":
        (tmp_path / "d.raw.gz").write_bytes(hostile.gzip_bomb(512 * 512 * 800 * 2, valid=True))
    else:
        (tmp_path / "d.zraw").write_bytes(hostile.deflate_bomb(512 * 512 * 800 * 2, wbits=15))
    result = limited("stats", "--no-percentiles", header, "--get", "count", limit=700 << 20)
    assert result.code == 0, result.err
    assert result.out.strip() == str(512 * 512 * 800)


# -- sequence nesting -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    d = tmp_path_factory.mktemp("nested")
    files = {}
    for name, depth, defined in (("deep", 1000, False), ("deep_defined", 1000, True), ("d65", 65, False),
                                 ("d65_defined", 65, True), ("d64", 64, True), ("d64u", 64, False)):
        path = d / f"{name}.dcm"
        path.write_bytes(hostile.dicom(hostile.dataset(extra=hostile.nested_sequences(depth, defined))))
        files[name] = path
    return files


@pytest.mark.parametrize("name", ["deep", "deep_defined", "d65", "d65_defined"])
@pytest.mark.parametrize("command", ["info", "info --json", "header", "header --json", "header --get PatientName",
                                     "stats", "convert", "anonymize", "anonymize --dry-run"])
def test_deep_sequences_are_refused_as_corrupt(nested, tmp_path, name, command):
    argv = command.split() + [nested[name]]
    if command == "convert":
        argv.append(tmp_path / "o.nii")
    if command == "anonymize":
        argv += ["-o", tmp_path / "anon"]
    result = run(*argv)
    assert_clean_error(result, 3, "nested more than 64 levels")
    assert not os.path.exists(tmp_path / "o.nii")


@pytest.mark.parametrize("name", ["d64", "d64u"])
def test_64_levels_are_read(nested, tmp_path, name):
    for argv in (["info", nested[name]], ["header", "--json", nested[name]],
                 ["convert", nested[name], tmp_path / f"{name}.nii"]):
        result = run(*argv)
        assert result.code == 0, (argv, result.err)


def test_deflated_dicom_within_its_declared_size_reads(tmp_path):
    path = tmp_path / "ok.dcm"
    path.write_bytes(hostile.dicom(hostile.deflate_bomb(0, hostile.dataset()), ts=hostile.DEFLATED))
    result = run("stats", path, "--get", "max")
    assert result.code == 0, result.err
    assert result.out.strip() == "63"
    gz = tmp_path / "ok.dcm.gz"
    gz.write_bytes(hostile.gzip_bomb(0, hostile.dicom(), valid=True))
    result = run("stats", gz, "--get", "max")
    assert result.code == 0, result.err
    assert result.out.strip() == "63"


@pytest.mark.parametrize("fmt", ["nrrd", "metaimage"])
def test_numbered_pattern_bomb_under_a_memory_cap(tmp_path, fmt):
    """`%999999999d`: a 1 GB file name (6.8 GB and a 1 GB error line, or a traceback under
    `ulimit -v`) before names were bounded."""
    if fmt == "nrrd":
        header = tmp_path / "h.nhdr"
        header.write_text("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 4 2\nencoding: raw\n"
                          "data file: %999999999d 1 2 1\n")
    else:
        header = tmp_path / "h.mhd"
        header.write_text("NDims = 2\nDimSize = 4 2\nElementType = MET_UCHAR\nElementDataFile = %999999999d 1 2 1\n")
    for command in ("info", "stats", "header"):
        result = limited(command, header, limit=600 << 20)
        if command == "header":
            assert result.code in (0, 3) and "Traceback" not in result.err, result.err
            continue
        assert_clean_error(result, 3, "width")
        assert len(result.err) < 400


def test_a_value_claiming_gigabytes_in_a_small_file_is_never_read(tmp_path):
    """Found by the fuzzer: a truncated element declaring 2 GB made `header --get` allocate it."""
    import struct

    body = hostile.dataset(pixels=False) + struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, GB2) + b"x" * 100
    path = tmp_path / "claim.dcm"
    path.write_bytes(hostile.dicom(body))
    for argv in (["header", "--get", "PixelData", path], ["header", "--json", "--bulk", path], ["header", path]):
        result = limited(*argv, limit=700 << 20)
        assert result.code in (0, 3), (argv, result.err)
        assert "MemoryError" not in result.err and "internal error" not in result.err, result.err


@pytest.mark.parametrize("fmt", ["bmp", "tiff"])
def test_uncompressed_raster_claims_are_checked_before_allocating(tmp_path, fmt):
    """Found by the fuzzer: a BMP whose header says 5000 x 20000 made Pillow allocate 100 MB."""
    import struct

    from PIL import Image

    path = tmp_path / f"x.{fmt}"
    Image.new("L", (64, 64)).save(path)
    blob = bytearray(path.read_bytes())
    if fmt == "bmp":
        blob[18:26] = struct.pack("<ii", 5000, 20000)
    else:  # ImageWidth / ImageLength entries of the first IFD
        ifd = struct.unpack_from("<I", blob, 4)[0]
        for k in range(struct.unpack_from("<H", blob, ifd)[0]):
            at = ifd + 2 + 12 * k
            tag, typ = struct.unpack_from("<HH", blob, at)
            if tag in (256, 257):  # 5000 x 20000: under Pillow's own decompression-bomb limit
                blob[at + 2:at + 12] = struct.pack("<HII", 4, 1, 5000 if tag == 256 else 20000)
    path.write_bytes(bytes(blob))
    for command in ("info", "stats"):
        result = limited(command, path, limit=600 << 20)
        # refused from the header, before Pillow allocates (it would then find the data short)
        assert_clean_error(result, 3, "uncompressed pixels", "more than this")
    assert run("stats", path).code == 3
