"""anonymize's outputs: the mapping's folder checked before anything is written, --in-place refused
on links, and a run stopped part-way keeps the mapping of what it wrote."""
from __future__ import annotations

import json
import os

import pytest

from helpers import assert_clean_error, run

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid
from test_anonymize import make_dicom


def _tree(tmp_path, n=3):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        make_dicom(src / f"{i}.dcm", generate_uid(), generate_uid(), generate_uid())
    return src


def _nothing_written(tmp_path, out):
    assert not out.exists()
    assert not [f for d, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".part")]


def test_mapping_folder_missing_is_refused_before_anything_is_written(tmp_path):
    src = _tree(tmp_path)
    out = tmp_path / "o"
    r = run("anonymize", src, "-o", out, "--mapping", tmp_path / "nowhere" / "map.json")
    assert_clean_error(r, 4, "nowhere", "folder does not exist")
    _nothing_written(tmp_path, out)
    (tmp_path / "afile").write_text("x")
    r = run("anonymize", src, "-o", out, "--mapping", tmp_path / "afile" / "map.json")
    assert_clean_error(r, 4, "folder does not exist")
    _nothing_written(tmp_path, out)
    (tmp_path / "adir").mkdir()
    r = run("anonymize", src, "-o", out, "--mapping", tmp_path / "adir", "--force")
    assert_clean_error(r, 4, "is a directory")
    _nothing_written(tmp_path, out)


def test_mapping_folder_not_writable_is_refused_before_anything_is_written(tmp_path):
    folder = "/sys"  # refuses new files even to root
    if not os.path.isdir(folder) or os.access(folder, os.W_OK) and _can_create(folder):
        pytest.skip("no folder that refuses new files here")
    src = _tree(tmp_path)
    out = tmp_path / "o"
    r = run("anonymize", src, "-o", out, "--mapping", os.path.join(folder, "map.json"))
    assert_clean_error(r, 4, "cannot write the mapping in this folder")
    _nothing_written(tmp_path, out)


def _can_create(folder):
    try:
        fd = os.open(os.path.join(folder, ".medconv-probe"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(os.path.join(folder, ".medconv-probe"))
    return True


def test_mapping_written_when_the_run_stops_part_way(tmp_path):
    """Without --keep-going the run ends at a failing file; the mapping of the files already written
    is still written (with a random key it could never be made again)."""
    src = _tree(tmp_path, 2)
    whole = (src / "0.dcm").read_bytes()
    (src / "z.dcm").write_bytes(whole[:-10])  # pixel data cut short: refused
    out = tmp_path / "o"
    r = run("anonymize", src, "-o", out, "--mapping", tmp_path / "map.json")
    assert r.code == 3, r.err
    done = [f for _, _, fs in os.walk(out) for f in fs]
    assert len(done) == 2
    table = json.loads((tmp_path / "map.json").read_text())
    assert "PID12345" in table["patient"]
    assert oct((tmp_path / "map.json").stat().st_mode & 0o777) == "0o600"


def test_in_place_on_a_symlink_is_refused(tmp_path):
    """DataLad and git-annex trees are made of links to the content: replacing the link would leave
    the identified file where it is."""
    store = tmp_path / "annex"
    store.mkdir()
    make_dicom(store / "content", generate_uid(), generate_uid(), generate_uid())
    before = (store / "content").read_bytes()
    tree = tmp_path / "ds"
    tree.mkdir()
    make_dicom(tree / "a.dcm", generate_uid(), generate_uid(), generate_uid())
    a_before = (tree / "a.dcm").read_bytes()
    os.symlink(os.path.join("..", "annex", "content"), tree / "b.dcm")
    for arg in (tree, tree / "b.dcm"):
        r = run("anonymize", arg, "--in-place", "--key", "k")
        assert_clean_error(r, 3, str(tree / "b.dcm"), "symbolic link to ../annex/content", "--in-place")
        assert os.path.islink(tree / "b.dcm")
        assert (store / "content").read_bytes() == before
        assert (tree / "a.dcm").read_bytes() == a_before  # refused before anything is written
    # to -o, a link is read through as usual
    r = run("anonymize", tree, "-o", tmp_path / "o", "--key", "k")
    assert r.code == 0, r.err


def test_in_place_on_a_hard_linked_file_is_refused(tmp_path):
    src = _tree(tmp_path, 1)
    os.link(src / "0.dcm", tmp_path / "other-name.dcm")
    before = (src / "0.dcm").read_bytes()
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert_clean_error(r, 3, "0.dcm", "2 hard links")
    assert (tmp_path / "other-name.dcm").read_bytes() == before == (src / "0.dcm").read_bytes()
    os.unlink(tmp_path / "other-name.dcm")
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    assert pydicom.dcmread(src / "0.dcm").PatientIdentityRemoved == "YES"


def test_renamed_pairs_stay_pairs_and_headers_name_their_data(tmp_path):
    """A .hdr and its .img, an image and its sidecar keep one pseudonym stem; a detached header names
    its renamed data file; the output reads back like the input."""
    import nibabel as nib
    import numpy as np

    import medconv

    src = tmp_path / "in" / "Doe^John 1970"
    src.mkdir(parents=True)
    img = nib.Nifti1Pair(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    nib.save(img, str(src / "DOE_t1.img"))
    nib.save(nib.Nifti1Image(img.get_fdata().astype(np.int16), np.eye(4)), str(src / "DOE_t2.nii.gz"))
    (src / "DOE_t2.json").write_text(json.dumps({"EchoTime": 0.01}))
    vol = medconv.read(str(src / "DOE_t1.hdr"))
    medconv.write(vol, src / "DOE_ct.mhd")
    medconv.write(vol, src / "DOE_mr.nhdr")
    os.rename(src / "DOE_mr.raw", src / "DOE_data.raw")  # a data file named unlike its header
    text = (src / "DOE_mr.nhdr").read_text().replace("data file: DOE_mr.raw", "data file: DOE_data.raw")
    (src / "DOE_mr.nhdr").write_text(text)
    out = tmp_path / "o"
    r = run("anonymize", tmp_path / "in", "-o", out, "--key", "k")
    assert r.code == 0, r.err
    assert "replaced by keyed pseudonyms" in r.err
    (folder,) = os.listdir(out)
    names = sorted(os.listdir(out / folder))
    assert not [n for n in names if "DOE" in n or "John" in n] and "Doe" not in folder
    stems = {}
    for n in names:
        stem, _, ext = n.partition(".")
        stems.setdefault(stem, []).append(ext)
    assert sorted(stems.values()) == sorted([["hdr", "img"], ["json", "nii.gz"], ["mhd", "raw"], ["nhdr"], ["raw"]])
    for n in names:
        if n.endswith((".hdr", ".nii.gz", ".mhd", ".nhdr")):
            assert np.array_equal(medconv.read(str(out / folder / n)).array, vol.array), n
        if n.endswith((".mhd", ".nhdr")):
            assert b"DOE" not in (out / folder / n).read_bytes()
    assert run("anonymize", "--check", out).code == 0


def test_in_place_ignores_links_to_files_it_does_not_rewrite(tmp_path):
    """A linked text file (skipped: not an image) does not stop --in-place; a linked data file of a
    header does, before anything is written."""
    import numpy as np

    import medconv

    src = _tree(tmp_path, 1)
    (tmp_path / "notes.txt").write_text("x")
    os.symlink(tmp_path / "notes.txt", src / "notes.txt")
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert r.code == 0, r.err
    vol = medconv.Volume(np.zeros((2, 2, 2), np.int16), np.eye(4))
    medconv.write(vol, tmp_path / "v.mhd")
    os.symlink(tmp_path / "v.raw", src / "v.raw")
    (src / "v.mhd").write_bytes((tmp_path / "v.mhd").read_bytes())
    before = (src / "0.dcm").read_bytes()
    r = run("anonymize", src, "--in-place", "--key", "k")
    assert_clean_error(r, 3, "v.raw", "symbolic link")
    assert (src / "0.dcm").read_bytes() == before
