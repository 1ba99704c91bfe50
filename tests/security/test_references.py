"""Files a header may reference: inside its own folder only, unless --allow-external-data.

Every hostile reference (absolute path, `..`, a symbolic link leaving the folder, LISTs and
numbered patterns of those, HDF5 external storage, external links and virtual datasets) is
refused by info, header, stats, convert and anonymize with one line and exit 3, leaving nothing
behind; valid data sets keeping their data beside (or below) the header still work with no option.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import medconv
from helpers import assert_clean_error, make_volume, run
from medconv import untrusted

SECRET = b"root:x:0:0:root:/root:/bin/bash\n" * 4  # 128 bytes: a 4 x 4 x 8 uint8 image if read


@pytest.fixture(autouse=True)
def _rule_in_force(monkeypatch):
    # recorded so that a test's --allow-external-data (which sets the variable) is undone after it
    monkeypatch.setenv(untrusted.ENV, "0")


@pytest.fixture
def tree(tmp_path):
    """tmp/secret.raw outside the header folder tmp/d, and an output folder tmp/out."""
    (tmp_path / "secret.raw").write_bytes(SECRET)
    (tmp_path / "d").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


NRRD = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 8\nencoding: raw\ndata file: {spec}\n"
MHD = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 8\nElementType = MET_UCHAR\nElementDataFile = {spec}\n"


def _header(tree, fmt, spec, tail=""):
    name, text = ("h.nhdr", NRRD) if fmt == "nrrd" else ("h.mhd", MHD)
    path = tree / "d" / name
    path.write_text(text.format(spec=spec) + tail)
    return str(path)


def _hostile_specs(tree):
    secret = str(tree / "secret.raw")
    os.symlink(secret, tree / "d" / "link.raw")
    os.symlink(str(tree), tree / "d" / "up")  # a folder link leading out
    eight = "".join(f"../secret{i}.raw\n" for i in range(8))
    for i in range(8):
        (tree / f"secret{i}.raw").write_bytes(SECRET[:16])
    return [
        ("absolute", secret, "", "absolute path"),
        ("dotdot", "../secret.raw", "", "(..)"),
        ("dotdot-inside", "sub/../../secret.raw", "", "(..)"),
        ("symlink", "link.raw", "", "symbolic link"),
        ("folder-symlink", "up/secret.raw", "", "symbolic link"),
        ("list", "LIST 2", eight, "(..)"),
        ("pattern-dotdot", "../secret%d.raw 0 7 1 2", "", "(..)"),
        ("pattern-absolute", str(tree) + "/secret%d.raw 0 7 1 2", "", "absolute path"),
    ]


@pytest.mark.parametrize("fmt", ["nrrd", "metaimage"])
@pytest.mark.parametrize("command", ["info", "stats", "convert"])
def test_hostile_references_are_refused(tree, fmt, command):
    for label, spec, tail, needle in _hostile_specs(tree):
        header = _header(tree, fmt, spec, tail)
        out = tree / "out" / f"{label}.nii"
        argv = [command, header] + ([str(out)] if command == "convert" else [])
        result = run(*argv)
        assert_clean_error(result, 3, "refused", "--allow-external-data", needle)
        assert "root:x" not in result.out and "114" not in result.out  # no byte of the file became a voxel
        assert os.listdir(tree / "out") == [], label


@pytest.mark.parametrize("fmt", ["nrrd", "metaimage"])
def test_allow_external_data_reads_them(tree, fmt, monkeypatch):
    header = _header(tree, fmt, "../secret.raw")
    result = run("--allow-external-data", "stats", header, "--get", "max")
    assert result.code == 0, result.err
    assert result.out.strip() == str(max(SECRET))
    monkeypatch.setenv(untrusted.ENV, "1")
    assert run("stats", header, "--get", "max").code == 0
    monkeypatch.setenv(untrusted.ENV, "0")
    assert run("stats", header, "--get", "max").code == 3


def test_allow_external_data_reaches_batch_workers(tree):
    headers = [_header(tree, "nrrd", "../secret.raw")]
    (tree / "d2").mkdir()
    second = tree / "d2" / "h.nhdr"
    second.write_text(NRRD.format(spec="../secret.raw"))
    headers.append(str(second))
    result = run("--allow-external-data", "convert", *headers, "-o", str(tree / "out"), "--to", "nifti", "-j", "2")
    assert result.code == 0, result.err


@pytest.mark.parametrize("fmt", ["nrrd", "metaimage"])
def test_pattern_and_list_bombs_are_bounded(tree, fmt):
    key = "data file" if fmt == "nrrd" else "ElementDataFile"
    cases = [
        ("%999999999d 1 2 1 2", "width"),  # a 1 GB name, formatted, was the error message
        ("x%d.raw 1 999999999 1 2", "files"),
        ("x%d%d.raw 1 8 1 2", "one %d"),
        ("x%s.raw 1 8 1 2", "one %d"),
        ("x%n.raw 1 8 1 2", "one %d"),
        ("a" * 5000 + "%d 1 8 1 2", "longer than"),
    ]
    for spec, needle in cases:
        header = _header(tree, fmt, spec)
        result = run("info", header)
        assert_clean_error(result, 3)
        assert len(result.err) < 400, result.err[:400]
        if fmt == "metaimage" or "999999999 1" not in spec:
            assert needle in result.err or "sizes need" in result.err or "DimSize needs" in result.err, result.err
    # a LIST longer than the bound: refused as it is read, not after millions of names are kept
    header = _header(tree, fmt, "LIST 2", "x\n" * (untrusted.MAX_FILES + 1))
    assert_clean_error(run("info", header), 3, "more than")
    header = _header(tree, fmt, "a" * 5000)
    result = run("info", header)
    assert_clean_error(result, 3, "not a usable file name")
    assert len(result.err) < 400
    assert key  # (the field each format names its data file with)


def test_header_command_shows_hostile_names_without_reading_them(tree):
    header = _header(tree, "metaimage", "LIST 2", "../secret.raw\n" * 8)
    result = run("header", header, "--json")
    assert result.code == 0, result.err
    assert "../secret.raw" in result.out and "root:x" not in result.out


# -- valid data sets: data beside or below the header, no option needed ----------------------------
@pytest.mark.parametrize("target", ["x.mhd", "x.nhdr", "x.mha", "x.nrrd", "x.mnc", "x.hdr"])
def test_data_beside_the_header_converts_without_option(tmp_path, target):
    vol = make_volume((5, 4, 3), "int16", seed=3)
    files = medconv.write(vol, str(tmp_path / target))
    result = run("convert", files[0], str(tmp_path / "back.nii"))
    assert result.code == 0, result.err
    assert np.array_equal(medconv.read(str(tmp_path / "back.nii")).array, vol.array)


def test_compressed_detached_data_converts_without_option(tmp_path):
    vol = make_volume((5, 4, 3), "int16", seed=4)
    medconv.write(vol, str(tmp_path / "z.mhd"), compress=True)
    medconv.write(vol, str(tmp_path / "g.nhdr"), encoding="gzip")
    assert os.path.exists(tmp_path / "z.zraw") and os.path.exists(tmp_path / "g.raw.gz")
    for name in ("z.mhd", "g.nhdr"):
        result = run("convert", str(tmp_path / name), str(tmp_path / (name + ".nii")))
        assert result.code == 0, result.err
        assert np.array_equal(medconv.read(str(tmp_path / (name + ".nii"))).array, vol.array)


def test_data_below_the_header_and_links_inside_are_allowed(tmp_path):
    data = np.arange(128, dtype=np.uint8)
    (tmp_path / "data").mkdir()
    data.tofile(tmp_path / "data" / "v.raw")
    os.symlink("data/v.raw", tmp_path / "inside.raw")  # a link staying inside the folder
    for i in range(8):
        data[i * 16:(i + 1) * 16].tofile(tmp_path / "data" / f"s{i:02d}.raw")
    (tmp_path / "names.txt").write_text("")
    specs = ["data/v.raw", "inside.raw", "data/s%02d.raw 0 7 1 2"]
    for n, spec in enumerate(specs):
        for fmt, text in (("nhdr", NRRD), ("mhd", MHD)):
            path = tmp_path / f"h{n}.{fmt}"
            path.write_text(text.format(spec=spec))
            result = run("stats", str(path), "--get", "max")
            assert result.code == 0, (spec, result.err)
            assert result.out.strip() == "127"
    listed = tmp_path / "l.mhd"
    listed.write_text(MHD.format(spec="LIST 2") + "".join(f"data/s{i:02d}.raw\n" for i in range(8)))
    assert run("stats", str(listed), "--get", "max").out.strip() == "127"


def test_analyze_image_file_linked_out_of_the_folder_is_refused(tmp_path):
    vol = make_volume((5, 4, 3), "int16", seed=5, affine=np.diag([1.0, 1.0, 2.0, 1.0]))
    (tmp_path / "a").mkdir()
    (tmp_path / "elsewhere").mkdir()
    files = medconv.write(vol, str(tmp_path / "elsewhere" / "x.hdr"), to="analyze")
    os.symlink(files[0], tmp_path / "a" / "x.hdr")
    os.symlink(files[1], tmp_path / "a" / "x.img")
    result = run("info", str(tmp_path / "a" / "x.hdr"))
    assert_clean_error(result, 3, "x.img", "symbolic link", "refused")
    assert run("--allow-external-data", "info", str(tmp_path / "a" / "x.hdr")).code == 0


# -- MINC2 / HDF5 ------------------------------------------------------------------------------
def _minc_with(tmp_path, how: str) -> str:
    """A MINC2 file written by medconv whose image dataset is replaced by one reading another file."""
    import h5py

    vol = make_volume((4, 4, 4), "uint8", seed=6)
    path = str(tmp_path / f"{how}.mnc")
    medconv.write(vol, path)
    secret = str(tmp_path / "outside.bin")
    with open(secret, "wb") as fh:
        fh.write(SECRET[:64])
    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as fh:
        fh.create_dataset("data", data=np.frombuffer(SECRET[:64], np.uint8).reshape(4, 4, 4))
    with h5py.File(path, "r+") as fh:
        group = fh["minc-2.0/image/0"]
        attrs = dict(group["image"].attrs)
        del group["image"]
        if how == "external":
            ds = group.create_dataset("image", shape=(4, 4, 4), dtype=np.uint8, external=[(secret, 0, 64)])
        elif how == "link":
            group["image"] = h5py.ExternalLink(other, "/data")
            return path
        elif how == "vds":
            layout = h5py.VirtualLayout(shape=(4, 4, 4), dtype=np.uint8)
            layout[:] = h5py.VirtualSource(other, "data", shape=(4, 4, 4))
            ds = group.create_virtual_dataset("image", layout)
        else:  # an external link elsewhere in the file, not on the image
            fh["minc-2.0/info"]["notes"] = h5py.ExternalLink(other, "/data")
            return path
        for k, v in attrs.items():
            ds.attrs[k] = v
    return path


@pytest.mark.parametrize("how", ["external", "link", "vds", "side-link"])
def test_minc2_hdf5_references_are_refused(tmp_path, how):
    pytest.importorskip("h5py")
    path = _minc_with(tmp_path, how)
    (tmp_path / "out").mkdir()
    for argv in (["info", path], ["header", path], ["stats", path], ["convert", path, str(tmp_path / "out/x.nii")],
                 ["anonymize", path, "-o", str(tmp_path / "out")]):
        result = run(*argv)
        assert_clean_error(result, 3, "refused", "HDF5")
        assert os.listdir(tmp_path / "out") == [], argv


def test_minc2_external_storage_allowed_with_the_option(tmp_path):
    pytest.importorskip("h5py")
    path = _minc_with(tmp_path, "external")
    result = run("--allow-external-data", "stats", path, "--get", "max")
    assert result.code == 0, result.err
    assert result.out.strip() == str(max(SECRET[:64]))


# -- anonymize: the same rule for the data it copies ----------------------------------------------
def test_anonymize_refuses_detached_data_outside_and_copies_data_below(tree):
    for label, spec, tail, needle in _hostile_specs(tree):
        if tail:
            continue
        header = _header(tree, "metaimage", spec)
        result = run("anonymize", header, "-o", str(tree / "out"))
        assert result.code == 3, (label, result.err)
        # a list or pattern of data files is refused before its names are looked at
        assert_clean_error(result, 3, "not supported" if spec.split()[0] == "LIST" or "%" in spec else "refused")
        assert not os.path.exists(tree / "out") or os.listdir(tree / "out") == [], label
    (tree / "d" / "sub").mkdir()
    (tree / "d" / "sub" / "v.raw").write_bytes(SECRET)
    header = _header(tree, "metaimage", "sub/v.raw")
    for name in ("link.raw", "up"):
        os.unlink(tree / "d" / name)
    result = run("anonymize", str(tree / "d"), "-o", str(tree / "out"), "--layout", "mirror")
    assert result.code == 0, result.err
    assert (tree / "out" / "sub" / "v.raw").read_bytes() == SECRET
    assert os.path.exists(tree / "out" / os.path.basename(header))


def test_anonymize_refuses_list_and_pattern_data_files(tmp_path):
    """Each data file of a list or pattern would need its own stray-byte check: refused, nothing written."""
    for name, text in (("l.mhd", MHD.replace("4 4 8", "2 2 2").format(spec="LIST 2") + "s0.raw\ns1.raw\n"),
                       ("p.nhdr", NRRD.replace("4 4 8", "2 2 2").format(spec="q%d.raw 0 1 1 2"))):
        src = tmp_path / name.split(".")[0]
        src.mkdir()
        (src / name).write_text(text)
        for data in ("s0.raw", "s1.raw", "q0.raw", "q1.raw"):
            (src / data).write_bytes(bytes(4))
        result = run("anonymize", src / name, "-o", tmp_path / "out", "--key", "k")
        assert_clean_error(result, 3, "list or pattern of data files")
        assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []
