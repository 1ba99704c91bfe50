"""The byte-level anonymiser (rewrite.py) against the pydicom one (actions.py): same output, element
for element, on a data set holding every attribute of the profile table, on real files, and under
every option; files it cannot vouch for go to the pydicom path; -j N changes nothing."""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from helpers import run

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medconv.anonymize import Runner, profile
from medconv.anonymize.actions import Options

UID_ROOT = "1.2.826.0.1.3680043.8.498.77."
DATE, TIME, DATETIME = "20240305", "101112", "20240305101112"
OPTION_SETS = {
    "basic": {}, "keep-dates": {"keep_dates": True}, "shift-dates": {"shift_days": -10},
    "keep-uids": {"keep_uids": True}, "keep-descriptors": {"keep_descriptors": True},
    "keep-private": {"keep_private": True}, "keep-device": {"keep_device": True},
    "keep-characteristics": {"keep_patient_characteristics": True}, "patient-id": {"patient_id": "SUBJ01"},
}


def _marker(tag: int) -> str:
    return f"M{tag:08X}"


def _value(tag: int, vr: str, n: int):
    """A value for the attribute: text VRs carry a marker unique to the tag."""
    if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE"):
        return _marker(tag)
    return {"PN": f"{_marker(tag)}^Person", "DA": DATE, "TM": TIME, "DT": DATETIME, "UI": f"{UID_ROOT}{n}",
            "AS": "062Y", "IS": "42", "DS": "4.5", "US": 7, "SS": -7, "UL": 7, "SL": -7, "FL": 1.5, "FD": 2.5,
            "UR": "http://example.org/marker", "OB": b"MARK", "OW": b"MARK", "OD": b"MARKMARK",
            "OF": b"MARK", "OL": b"MARK", "UN": b"MARK"}.get(vr)


def _table_elements(ds: Dataset, offset: int) -> int:
    """Every attribute of the profile table pydicom knows with one VR; returns how many."""
    n = 0
    for i, tag in enumerate(sorted(profile.TABLE)):
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        value = _value(tag, vr, offset + i)
        if value is None or tag >> 16 in (0x0000, 0x0002, 0x7FE0) or tag in (0x00080016, 0x00080018):
            continue
        ds.add_new(tag, vr, value)
        n += 1
    return n


def _full_table_file(path, transfer_syntax=ExplicitVRLittleEndian):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID_ROOT + "99999"
    ds.file_meta.SourceApplicationEntityTitle = "PACS_MARKER"
    assert _table_elements(ds, 0) > 300
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = UID_ROOT + "99999"
    ds.Modality = "CT"
    nested = Dataset()
    _table_elements(nested, 1000)
    nested.add_new(0x00091010, "LO", "PRIVATE_MARKER")  # a private element inside a sequence item
    ds.SourceImageSequence = Sequence([nested])  # U: recursed
    ds.add_new(0x00170010, "LO", "ACME_CREATOR")
    ds.add_new(0x00171001, "LO", "PRIVATE_MARKER")
    ds.add_new(0x00080000, "UL", 1234)  # a retired group length
    ds.add_new(0x60000010, "US", 4)  # an overlay
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = struct.pack("<4H", 1, 2, 3, 4)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return ds


def _both(path, tmp_path, **opts):
    """(fast result, pydicom result, fast runner, pydicom runner) for one file, same key and options."""
    fast_runner = Runner(Options(**opts), key="k", output=str(tmp_path / "f"))
    slow_runner = Runner(Options(**opts), key="k", output=str(tmp_path / "s"))
    with open(path, "rb") as fh:
        fast = fast_runner.fast.anonymize(fh.read())
    slow = slow_runner._dicom_with_pydicom(str(path))
    return fast, slow, fast_runner, slow_runner


def _same(fast, slow, fast_runner, slow_runner):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = pydicom.dcmread(io.BytesIO(fast["bytes"]))
        b = pydicom.dcmread(io.BytesIO(slow["bytes"]))
    assert a.file_meta == b.file_meta
    only_a = [str(e.tag) for e in a if e.tag not in b]
    only_b = [str(e.tag) for e in b if e.tag not in a]
    assert not only_a and not only_b, (only_a, only_b)
    differ = [(str(e.tag), e.value, b[e.tag].value) for e in a if b[e.tag] != e]
    assert not differ, differ[:5]
    assert a == b
    for key in ("pid", "study", "series", "flagged", "suspect"):
        assert fast[key] == slow[key], key
    assert fast["bytes"][:128] == b"\0" * 128 and slow["bytes"][:128] == b"\0" * 128
    assert fast_runner.pseudo.mapping == slow_runner.pseudo.mapping
    return a


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_every_table_attribute_same_as_the_pydicom_path(tmp_path, name):
    path = tmp_path / "full.dcm"
    _full_table_file(path)
    fast, slow, fr, sr = _both(path, tmp_path, **OPTION_SETS[name])
    if name == "keep-private":
        # kept private sequences are cleaned inside, which needs pydicom's private dictionary
        assert fast is None, "a file with private elements under --keep-private takes the pydicom path"
        return
    assert fast is not None, "the byte-level path should take this file"
    _same(fast, slow, fr, sr)


def test_every_table_marker_gone_unless_the_profile_keeps_it(tmp_path):
    path = tmp_path / "full.dcm"
    _full_table_file(path)
    fast, _, _, _ = _both(path, tmp_path)
    raw = fast["bytes"]
    kept = {tag for tag in profile.TABLE if profile.effective_action(tag, set()) in ("K", "C")}
    checked = 0
    for tag in profile.TABLE:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "PN") and tag not in kept:
            assert _marker(tag).encode() not in raw, (keyword_for_tag(tag), profile.TABLE[tag][1])
            checked += 1
    assert checked > 150
    for secret in (b"PRIVATE_MARKER", b"ACME_CREATOR", b"PACS_MARKER", DATE.encode(), TIME.encode(),
                   UID_ROOT.encode()):
        assert secret not in raw, secret
    # and the --check gate agrees
    out = tmp_path / "o.dcm"
    out.write_bytes(raw)
    assert run("anonymize", "--check", out).code == 0
    assert run("anonymize", "--check", path).code == 1


def _real_files():
    """Small DICOM files shipped with pydicom and pydicom-data (local files only: nothing is fetched)."""
    import glob

    import data_store

    out = []
    import pydicom.data as pydicom_files

    for base in (os.path.dirname(pydicom_files.__file__), os.path.dirname(data_store.__file__)):
        for path in sorted(glob.glob(os.path.join(base, "**", "*.dcm"), recursive=True)):
            if os.path.getsize(path) < 600_000 and "DICOMDIR" not in path:
                out.append(path)
    return out


def test_real_files_same_as_the_pydicom_path(tmp_path):
    """Every small pydicom-data file: where the byte-level path takes a file, it agrees exactly; it
    steps aside only through its documented fall-back (elements.Unsupported), never by raising, and
    never takes a file the pydicom path refuses."""
    from medconv.anonymize import rewrite
    from medconv.dicom.elements import Unsupported
    from medconv.errors import MedconvError

    taken = refused = 0
    import warnings

    for path in _real_files():
        fr = Runner(Options(), key="k", output=str(tmp_path / "f"))
        sr = Runner(Options(), key="k", output=str(tmp_path / "s"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fast = fr.fast._file(memoryview(Path(path).read_bytes()))
            except Unsupported:
                fast = None
            try:
                slow = sr._dicom_with_pydicom(str(path))
            except MedconvError:  # the pydicom path refuses it by name (truncated, no image, ...)
                assert fast is None, path
                refused += 1
                continue
        if fast is None or slow is None:
            continue
        _same(fast, slow, fr, sr)
        taken += 1
    assert rewrite.Fallback is Unsupported
    assert taken >= 20, taken


@pytest.mark.parametrize("case", ["implicit", "big-endian", "truncated", "no-preamble", "unknown-vr"])
def test_files_it_cannot_vouch_for_go_to_pydicom(tmp_path, case):
    path = tmp_path / "x.dcm"
    if case == "implicit":
        _full_table_file(path, ImplicitVRLittleEndian)
    elif case == "big-endian":
        path.write_bytes(Path(get_testdata_file("MR_small_bigendian.dcm")).read_bytes())
    else:
        _full_table_file(path)
        data = path.read_bytes()
        if case == "truncated":
            data = data[:-3]
        elif case == "no-preamble":
            data = data[132:]
        else:
            i = data.index(b"PN")
            data = data[:i] + b"\x01\x02" + data[i + 2:]
        path.write_bytes(data)
    runner = Runner(Options(), key="k", output=str(tmp_path / "o"))
    assert runner.fast.anonymize(path.read_bytes()) is None


def test_parallel_run_writes_the_same_tree_and_mapping(tmp_path):
    from pydicom.uid import generate_uid
    from test_anonymize import make_dicom

    src = tmp_path / "in"
    src.mkdir()
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    prev = None
    for i in range(140):  # more than two chunks of work
        uid = generate_uid()
        make_dicom(src / f"f{i:03d}.dcm", uid, study, series[i % 3], ref_uid=prev, n=i,
                   modality="US" if i == 7 else "CT", burned="YES" if i == 9 else None)
        prev = uid
    (src / "notes.txt").write_text("not an image")
    (src / "broken.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:-5000])
    outs = {}
    for jobs in (1, 2):
        out = tmp_path / f"o{jobs}"
        r = run("anonymize", src, "-o", out, "--key", "k", "-j", jobs, "--mapping", tmp_path / f"m{jobs}.json",
                "--keep-going")
        assert r.code == 5, r.err  # the broken file fails in both, and is named
        assert "broken.dcm" in r.err and "anonymised 140 file(s), skipped 1 (not images), failed 1" in r.err
        outs[jobs] = {os.path.relpath(os.path.join(d, f), out): Path(d, f).read_bytes()
                      for d, _, fs in os.walk(out) for f in fs}
        outs[jobs]["mapping"] = (tmp_path / f"m{jobs}.json").read_bytes()
        assert r.err.count("possible burned-in") == 1 and r.err.count("BurnedInAnnotation is YES") == 1
    assert outs[1] == outs[2]
    assert len(outs[1]) == 141
