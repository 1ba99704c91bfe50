"""DICOM reading: generated series (geometry, sorting, 4D, checks) and bad inputs."""
import json
import os
import sys

import numpy as np
import pytest

import dcmgen
from helpers import assert_clean_error, run

pytest.importorskip("pydicom")


def read(path, **kw):
    import medconv

    return medconv.read(path, **kw)


def nib_load(path):
    import nibabel as nib

    return nib.load(path)


def _check(vol, data, aff):
    assert np.allclose(vol.affine, aff, atol=1e-4), (vol.affine, aff)
    assert np.array_equal(np.asarray(vol.array), data.transpose(1, 0, 2))


@pytest.mark.parametrize("iop", [
    (1, 0, 0, 0, 1, 0),            # axial
    (0, 1, 0, 0, 0, -1),           # sagittal
    (1, 0, 0, 0, 0, -1),           # coronal
])
def test_standard_planes(tmp_path, iop):
    _, data, pos = dcmgen.make_series(tmp_path / "s", iop=iop)
    normal = np.cross(iop[:3], iop[3:])
    vol = read(tmp_path / "s")
    _check(vol, data, dcmgen.expected_affine(iop, (0.75, 0.8), normal * 2.5, pos[0]))
    assert vol.metadata["n_files"] == 6 and vol.metadata["modality"] == "CT"


def test_oblique_shuffled_names_reverse_instances(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    iop = (c, s, 0.0, -s * 0.9, c * 0.9, np.sqrt(1 - 0.81))
    row, col = np.array(iop[:3]), np.array(iop[3:])
    col = col / np.linalg.norm(col)
    iop = tuple(row) + tuple(col)
    normal = np.cross(row, col)
    names = ["z.dcm", "a", "m.ima", "IMG0001", "b.dcm", "q"]
    _, data, pos = dcmgen.make_series(tmp_path / "s", iop=iop, step=normal * 3.0, names=names, reverse_instances=True)
    vol = read(tmp_path / "s")
    _check(vol, data, dcmgen.expected_affine(iop, (0.75, 0.8), normal * 3.0, pos[0]))


def test_compare_with_dcm2niix_oblique(tmp_path):
    """medconv and dcm2niix place every voxel at the same world position with the same value."""
    import subprocess

    import nibabel as nib

    exe = os.path.join(os.path.dirname(sys.executable), "dcm2niix")
    if not os.path.exists(exe):
        pytest.skip("dcm2niix not installed")
    c, s = np.cos(0.25), np.sin(0.25)
    iop = (c, 0.0, -s, 0.0, 1.0, 0.0)
    normal = np.cross(iop[:3], iop[3:])
    dcmgen.make_series(tmp_path / "s", iop=iop, step=normal * 2.0, reverse_instances=True, slope=2, intercept=-100)
    r = run("convert", tmp_path / "s", tmp_path / "mine.nii")
    assert r.code == 0, r.err
    (tmp_path / "ref").mkdir()
    subprocess.run([exe, "-o", str(tmp_path / "ref"), "-f", "ref", "-z", "n", str(tmp_path / "s")],
                   check=True, capture_output=True)
    a = nib.as_closest_canonical(nib.load(tmp_path / "mine.nii"))
    b = nib.as_closest_canonical(nib.load(tmp_path / "ref" / "ref.nii"))
    assert a.shape == b.shape
    assert np.allclose(a.affine, b.affine, atol=1e-3)
    assert np.array_equal(a.get_fdata(), b.get_fdata())


def test_two_series_need_a_selector(tmp_path):
    dcmgen.make_series(tmp_path / "d", series_uid="1.2.3.1", series_number=2, description="first", names=None)
    dcmgen.make_series(tmp_path / "d", shape=(8, 8, 4), series_uid="1.2.3.2", series_number=5, description="second",
                       names=[f"other{k}.dcm" for k in range(4)], seed=1)
    r = run("convert", tmp_path / "d", tmp_path / "o.nii")
    assert_clean_error(r, 2, "2 series", "first", "second", "--series")
    assert not (tmp_path / "o.nii").exists()
    from medconv.dicom import list_series

    found = list_series(tmp_path / "d")
    assert [s["series_number"] for s in found] == [2, 5]
    assert [s["n_files"] for s in found] == [6, 4]
    vol = read(tmp_path / "d", series=found[1]["selector"])
    assert vol.shape == (8, 8, 4)
    assert read(tmp_path / "d", series="1.2.3.1").shape == (10, 12, 6)
    r = run("info", tmp_path / "d", "--json")
    assert r.code == 0, r.err
    records = json.loads(r.out)
    assert len(records) == 2 and records[0]["n_files"] == 6


def test_info_header_only_and_no_patient_values(tmp_path):
    paths, _, _ = dcmgen.make_series(tmp_path / "s", slope=1, intercept=-1024)
    r = run("info", tmp_path / "s", "--json")
    assert r.code == 0, r.err
    rec = json.loads(r.out)
    rec = rec[0] if isinstance(rec, list) else rec
    assert rec["format"] == "dicom" and rec["shape"] == [10, 12, 6]
    assert rec["scaling"] == {"slope": 1.0, "intercept": -1024.0}
    assert rec["size_bytes"] == sum(os.path.getsize(p) for p in paths)
    assert rec["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert "Secret" not in r.out and "ID-SECRET" not in r.out
    from medconv.dicom import info_records

    assert info_records(tmp_path / "s")[0]["series_number"] == 3


def test_cine_4d(tmp_path):
    d = tmp_path / "cine"
    datas = []
    for t in range(3):
        _, data, _ = dcmgen.make_series(d, shape=(8, 6, 4), names=[f"t{t}_{k}.dcm" for k in range(4)], seed=t,
                                        extra={"TriggerTime": str(40.0 * t)})
        datas.append(data)
    vol = read(d)
    assert vol.shape == (6, 8, 4, 3)
    for t in range(3):
        assert np.array_equal(vol.array[..., t], datas[t].transpose(1, 0, 2))
    assert vol.time_step == pytest.approx(0.04)


def test_missing_slice_is_refused_or_filled(tmp_path):
    _, data, _ = dcmgen.make_series(tmp_path / "s", shape=(8, 8, 6), skip=(3,), origin=(0, 0, 0))
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert_clean_error(r, 3, "uneven slice spacing", "5 -> 10 mm", "1 slice missing", "--fill-gaps")
    assert not (tmp_path / "o.nii").exists()
    from medconv.errors import CorruptInput

    with pytest.raises(CorruptInput, match="5 -> 10 mm"):
        read(tmp_path / "s", strict=True)
    r = run("convert", tmp_path / "s", tmp_path / "strict.nii", "--strict", "--fill-gaps")
    assert_clean_error(r, 3, "uneven slice spacing", "5 -> 10 mm")
    assert not (tmp_path / "strict.nii").exists()
    # info still describes the series, with the warning
    r = run("info", tmp_path / "s")
    assert r.code == 0 and "1 slice missing" in r.err
    # --fill-gaps: an empty slice where the missing one was, every real slice at its true position
    r = run("convert", tmp_path / "s", tmp_path / "f.nii", "--fill-gaps")
    assert r.code == 0, r.err
    assert "empty slice" in r.err
    import nibabel as nib

    img = nib.load(tmp_path / "f.nii")
    arr = np.asarray(img.dataobj)
    assert arr.shape[2] == 6
    assert not arr[:, :, 3].any()
    for k in (0, 1, 2, 4, 5):
        assert np.array_equal(arr[:, :, k], data[:, :, k].T)
        assert (img.affine @ [0, 0, k, 1])[2] == pytest.approx(2.5 * k, abs=1e-4)


def test_gantry_tilt_keeps_world_positions(tmp_path, capsys):
    tilt = np.radians(12)
    step = np.array([0.0, np.sin(tilt), np.cos(tilt)]) * 2.5
    _, data, pos = dcmgen.make_series(tmp_path / "s", step=step)
    vol = read(tmp_path / "s")
    assert "gantry tilt of 12.00 degrees" in capsys.readouterr().err
    for k, p in enumerate(pos):  # voxel (0, 0, k) sits exactly at slice k's ImagePositionPatient
        world = vol.affine @ [0, 0, k, 1]
        assert np.allclose(world[:3], [-p[0], -p[1], p[2]], atol=1e-4)
    _check(vol, data, dcmgen.expected_affine((1, 0, 0, 0, 1, 0), (0.75, 0.8), step, pos[0]))


def test_monochrome1_recorded_not_inverted(tmp_path):
    _, data, _ = dcmgen.make_series(tmp_path / "s", photometric="MONOCHROME1")
    vol = read(tmp_path / "s")
    assert vol.metadata["photometric"] == "MONOCHROME1"
    assert vol.metadata["window_center"] == 40.0 and vol.metadata["window_width"] == 400.0
    assert np.array_equal(vol.array, data.transpose(1, 0, 2))


def test_varying_rescale_gives_float32_reals(tmp_path):
    d = tmp_path / "s"
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, size=(6, 5, 3)).astype(np.int16)
    for k in range(3):
        dcmgen.write_slice(str(d / f"{k}.dcm") if d.exists() else (d.mkdir() or str(d / f"{k}.dcm")),
                           data[:, :, k], ipp=(0, 0, 2.0 * k), slope=0.5 * (k + 1), intercept=k * 10)
    vol = read(d)
    assert vol.dtype == np.float32 and vol.scaling is None
    for k in range(3):
        assert np.allclose(vol.array[:, :, k], data[:, :, k].T * 0.5 * (k + 1) + k * 10)


def test_constant_rescale_kept_as_scaling(tmp_path):
    _, data, _ = dcmgen.make_series(tmp_path / "s", slope=2, intercept=-1024)
    vol = read(tmp_path / "s")
    assert vol.dtype == np.int16 and vol.scaling == (2.0, -1024.0)
    assert np.array_equal(vol.real(), data.transpose(1, 0, 2) * 2.0 - 1024)


def test_unsigned_and_big_endian(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    data = np.arange(6 * 5, dtype=np.uint16).reshape(6, 5) * 2000
    dcmgen.write_slice(str(d / "be.dcm"), data, ipp=(0, 0, 0), signed=False, ts="1.2.840.10008.1.2.2")
    vol = read(d / "be.dcm")
    assert vol.dtype == np.uint16 and vol.array.dtype.isnative
    assert np.array_equal(vol.array[:, :, 0], data.T)


def test_no_preamble_and_nested_tree_with_junk(tmp_path):
    root = tmp_path / "tree"
    _, data, _pos = dcmgen.make_series(root / "a" / "b", shape=(6, 6, 3), preamble=False)
    (root / "README.txt").write_text("not dicom\n")
    (root / "a" / "notes.json").write_text("{}")
    (root / "a" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    with open(root / "a" / "b" / "slice000.dcm", "rb") as fh:
        assert fh.read(132)[128:132] != b"DICM"
    vol = read(root)
    assert vol.shape == (6, 6, 3)
    assert np.array_equal(vol.array, data.transpose(1, 0, 2))


def test_sidecar(tmp_path):
    from medconv.dicom.sidecar import write_sidecar

    dcmgen.make_series(tmp_path / "s", modality="MR")
    vol = read(tmp_path / "s")
    side = vol.metadata["sidecar"]
    assert side["RepetitionTime"] == 2.0 and side["EchoTime"] == 0.03 and side["FlipAngle"] == 90.0
    assert side["SeriesNumber"] == 3 and side["ConversionSoftware"] == "medconv"
    out = tmp_path / "o.json"
    assert write_sidecar(vol, str(out)) == [str(out)]
    text = out.read_text()
    assert "Secret" not in text and "ID-SECRET" not in text
    assert json.loads(text)["Manufacturer"] == "ACME"
    from medconv.errors import OutputError

    with pytest.raises(OutputError):
        write_sidecar(vol, str(out))


def test_read_header_is_dataset(tmp_path):
    from medconv.dicom import read_header

    dcmgen.make_series(tmp_path / "s")
    ds = read_header(tmp_path / "s", "dicom")
    assert ds.SeriesNumber == 3 and "PixelData" not in ds


# -- bad inputs ---------------------------------------------------------------------------------------

def _left(tmp_path, *names):
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in names)


def test_truncated_file(tmp_path):
    paths, _, _ = dcmgen.make_series(tmp_path / "s", shape=(32, 32, 1))
    with open(paths[0], "rb") as fh:
        raw = fh.read()
    bad = tmp_path / "trunc.dcm"
    bad.write_bytes(raw[:-500])
    for argv in (("info", bad), ("convert", bad, tmp_path / "o.nii")):
        assert_clean_error(run(*argv), 3, "truncated")
    assert _left(tmp_path) == ["s", "trunc.dcm"]


def test_directory_without_dicom(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "a.txt").write_text("hello")
    assert_clean_error(run("info", d), 3, "no DICOM")
    assert_clean_error(run("convert", d, tmp_path / "o.nii"), 3, "no DICOM")
    assert not (tmp_path / "o.nii").exists()


def test_inconsistent_rows_are_refused_and_the_parts_still_reachable(tmp_path):
    """One series whose images differ in size is broken (exit 3, the parts named); each part can
    still be converted with --series, and -o DIR writes both (as dcm2niix splits them)."""
    d = tmp_path / "s"
    dcmgen.make_series(d, shape=(8, 8, 3))
    dcmgen.write_slice(str(d / "odd.dcm"), np.zeros((10, 8), np.int16), ipp=(0, 0, 50))
    r = run("convert", d, tmp_path / "o.nii")
    assert_clean_error(r, 3, "mixes image sizes", "8x8", "10x8", "--series 3.1")
    assert not (tmp_path / "o.nii").exists()
    from medconv.dicom import list_series

    parts = list_series(d)
    assert sorted(s["n_files"] for s in parts) == [1, 3]
    big = next(s["selector"] for s in parts if s["n_files"] == 3)
    assert run("convert", d, tmp_path / "o.nii", "--series", big).code == 0
    assert run("convert", d, "-o", tmp_path / "all", "--to", "nifti1").code == 0
    assert len(os.listdir(tmp_path / "all")) == 2


def test_a_real_split_is_still_a_choice(tmp_path):
    """Two orientations under one SeriesInstanceUID (a localizer) are a choice (exit 2), not an error."""
    d = tmp_path / "s"
    dcmgen.make_series(d, shape=(8, 8, 3), names=[f"a{k}.dcm" for k in range(3)])
    dcmgen.make_series(d, shape=(8, 8, 3), iop=(0, 1, 0, 0, 0, -1), names=[f"b{k}.dcm" for k in range(3)])
    assert_clean_error(run("convert", d, tmp_path / "o.nii"), 2, "2 series", "--series")


def test_undecodable_transfer_syntax(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    path = dcmgen.write_slice(str(d / "x.dcm"), np.zeros((8, 8), np.int16), ipp=(0, 0, 0))
    with open(path, "rb") as fh:
        raw = fh.read()
    assert raw.count(b"1.2.840.10008.1.2.1\0") == 1
    # a made-up UID of the same length, so the meta group length stays right
    with open(path, "wb") as fh:
        fh.write(raw.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.99"))
    for argv in (("info", path), ("convert", path, tmp_path / "o.nii"), ("convert", d, tmp_path / "o.nii")):
        assert_clean_error(run(*argv), 3, "1.2.840.10008.1.2.99")
    assert not (tmp_path / "o.nii").exists()


def test_unknown_series_selector(tmp_path):
    dcmgen.make_series(tmp_path / "s")
    from medconv.errors import UsageError

    with pytest.raises(UsageError, match="no series '77'"):
        read(tmp_path / "s", series=77)


def _frame_fields(frame):
    return (frame.series_uid, frame.series_number, frame.iop, frame.ipp, frame.pixel_spacing, frame.rows,
            frame.columns, frame.slope, frame.intercept, frame.image_type, frame.instance, frame.photometric,
            frame.bits_stored, frame.signed, frame.echo_time, frame.trigger)


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"])
def test_light_parser_agrees_with_pydicom(tmp_path, ts):
    """The fast header parser and pydicom see the same values, sequences in the header included."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from medconv.dicom import header_view, scan
    from medconv.dicom.frame import Frame

    inner = Dataset()
    inner.CodeValue = "T-D1100"
    inner.CodingSchemeDesignator = "SRT"
    nested = Dataset()
    nested.ConceptNameCodeSequence = Sequence([inner])
    path = dcmgen.write_slice(str(tmp_path / "x.dcm"), np.arange(48, dtype=np.int16).reshape(6, 8), ipp=(1.5, -2, 3),
                              slope=2, intercept=-5, ts=ts, extra={"ReferencedImageSequence": Sequence([nested, inner]),
                                                                   "TriggerTime": "12.5"})
    size = os.path.getsize(path)
    _ds, _tag, where = header_view.parse(path, size)
    fast = scan._read_light(path, size)[0]
    import pydicom

    slow = Frame(pydicom.dcmread(path, stop_before_pixels=True), path)
    assert _frame_fields(fast) == _frame_fields(slow)
    assert where[1] == 6 * 8 * 2
    vol = read(path)
    assert np.array_equal(vol.array[:, :, 0], np.arange(48, dtype=np.int16).reshape(6, 8).T)


def test_dicomdir_file_reads_its_tree(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    src = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests")
    shutil.copytree(src, tmp_path / "t", ignore=shutil.ignore_patterns("TINY_ALPHA"))
    from medconv.dicom import list_series

    via_file = list_series(tmp_path / "t" / "DICOMDIR")
    via_dir = list_series(tmp_path / "t")
    assert via_file == via_dir and len(via_dir) > 1
    images = [p for p in (tmp_path / "t").rglob("*") if p.is_file() and not p.name.startswith("DICOMDIR") and p.suffix != ".txt"]
    assert sum(s["n_files"] for s in via_dir) == len(images)


def test_echoes_and_phase_are_split(tmp_path):
    d = tmp_path / "s"
    dcmgen.make_series(d, shape=(6, 6, 3), extra={"EchoNumbers": "1"}, names=[f"e1_{k}" for k in range(3)])
    dcmgen.make_series(d, shape=(6, 6, 3), extra={"EchoNumbers": "2"}, names=[f"e2_{k}" for k in range(3)])
    dcmgen.make_series(d, shape=(6, 6, 3), extra={"EchoNumbers": "2", "ImageType": ["ORIGINAL", "PRIMARY", "P"]},
                       names=[f"p2_{k}" for k in range(3)])
    from medconv.dicom import list_series

    found = list_series(d)
    assert [s["selector"] for s in found] == ["3.1", "3.2", "3.3"]
    assert all(s["n_files"] == 3 for s in found)
    assert read(d, series="3.2").shape == (6, 6, 3)
    r = run("convert", d, tmp_path / "o.nii", "--series", "3")
    assert_clean_error(r, 2, "3.1")


def test_uneven_duplicates_are_reported(tmp_path):
    d = tmp_path / "s"
    dcmgen.make_series(d, shape=(6, 6, 4), origin=(0, 0, 0))
    dcmgen.write_slice(str(d / "dup.dcm"), np.ones((6, 6), np.int16), ipp=(0, 0, 5.0))
    r = run("convert", d, tmp_path / "o.nii")
    assert_clean_error(r, 3, "repeat", "5 mm")
    assert not (tmp_path / "o.nii").exists()


def test_padding_value_and_slice_timing(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    times = [0.0, 1.0, 0.5, 1.5]  # interleaved acquisition
    for k, t in enumerate(times):
        dcmgen.write_slice(str(d / f"{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0, 0, 3.0 * k), modality="MR",
                           extra={"AcquisitionTime": f"1200{int(t):02d}.{round((t % 1) * 1e6):06d}",
                                  "PixelPaddingValue": 0})
    vol = read(d)
    assert vol.metadata["pixel_padding_value"] == 0.0
    assert vol.metadata["sidecar"]["SliceTiming"] == times
    assert vol.metadata["sidecar"]["AcquisitionTime"].startswith("12:00:00")


def test_no_pydicom_warnings_on_stderr(tmp_path):
    from helpers import pydicom_data

    r = run("info", pydicom_data("emri_small.dcm"))
    assert r.code == 0 and "Warning" not in r.err and "warn" not in r.err.lower(), r.err


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                                "1.2.840.10008.1.2.1.99"])
def test_compressed_series_equal_native(tmp_path, ts):
    """RLE, JPEG-LS, JPEG 2000 (decoded in a thread pool) and deflate give the native values."""
    import pydicom

    paths, data, _ = dcmgen.make_series(tmp_path / "s", shape=(32, 32, 3))
    for p in paths:
        ds = pydicom.dcmread(p)
        try:
            if ts == "1.2.840.10008.1.2.1.99":
                ds.file_meta.TransferSyntaxUID = ts
                ds.save_as(p, enforce_file_format=True)
            else:
                ds.compress(ts)
                ds.save_as(p, enforce_file_format=True)
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            pytest.skip(f"no encoder for {ts}: {exc}")
    vol = read(tmp_path / "s")
    assert vol.metadata["transfer_syntax"] == ts
    assert np.array_equal(vol.array, data.transpose(1, 0, 2))


def test_native_series_needs_no_pydicom_and_header_acts_as_dataset(tmp_path):
    """The fast path never imports pydicom; Volume.header still answers any DICOM keyword."""
    import subprocess

    dcmgen.make_series(tmp_path / "s")
    code = ("import sys, medconv; v = medconv.read(sys.argv[1]); v.array; "
            "print('pydicom' in sys.modules, v.header.PatientID, v.header.get('StudyInstanceUID'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "ID-SECRET-42", "1.2.3.4"]


def test_series_of_one_directory_parse_each_header_once(tmp_path, monkeypatch):
    """-o DIR over a multi-series directory reads every header once, and a changed tree is rescanned."""
    from medconv.dicom import scan

    dcmgen.make_series(tmp_path / "d", shape=(6, 6, 3), series_uid="1.2.3.1", series_number=2, description="a")
    dcmgen.make_series(tmp_path / "d", shape=(6, 6, 4), series_uid="1.2.3.2", series_number=5, description="b",
                       names=[f"b{k}.dcm" for k in range(4)], seed=1)
    calls = []
    real = scan.read_file
    monkeypatch.setattr(scan, "read_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    scan.SCANS.clear()
    r = run("convert", tmp_path / "d", "-o", tmp_path / "out", "--to", "nifti1", "-j", "1")
    assert r.code == 0, r.err
    assert len(os.listdir(tmp_path / "out")) == 2
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 7
    os.remove(tmp_path / "d" / "b3.dcm")
    calls.clear()
    assert read(tmp_path / "d", series="5").shape == (6, 6, 3)
    assert len(calls) == 6


def test_filled_gap_agrees_with_dcm2niix_equalised_output(tmp_path):
    """dcm2niix's equidistant copy (_Eq_1) and medconv --fill-gaps: same grid, same real slices."""
    import subprocess

    import nibabel as nib

    exe = os.path.join(os.path.dirname(sys.executable), "dcm2niix")
    if not os.path.exists(exe):
        pytest.skip("dcm2niix not installed")
    dcmgen.make_series(tmp_path / "s", shape=(8, 8, 6), skip=(3,), origin=(0, 0, 0))
    assert run("convert", tmp_path / "s", tmp_path / "mine.nii", "--fill-gaps").code == 0
    (tmp_path / "ref").mkdir()
    subprocess.run([exe, "-o", str(tmp_path / "ref"), "-f", "ref", "-z", "n", str(tmp_path / "s")],
                   check=True, capture_output=True)
    a = nib.as_closest_canonical(nib.load(tmp_path / "mine.nii"))
    b = nib.as_closest_canonical(nib.load(tmp_path / "ref" / "ref_Eq_1.nii"))
    assert a.shape == b.shape == (8, 8, 6)
    assert np.allclose(a.affine, b.affine, atol=1e-3)
    va, vb = np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)
    for k in (0, 1, 2, 4, 5):  # dcm2niix fills slice 3 with its own guess; medconv leaves it empty
        assert np.array_equal(va[:, :, k], vb[:, :, k])
    assert not va[:, :, 3].any()


# -- what cannot be one volume, and what is the same image twice ----------------------------------
def test_gaps_in_half_the_steps_are_still_missing_slices(tmp_path):
    """Slices 2 and 4 of 6 missing: the median step is a multiple of the real one, so the grid is
    taken from the smallest step and the gaps are found (refused, or filled at the true positions)."""
    import nibabel as nib

    _, data, pos = dcmgen.make_series(tmp_path / "s", shape=(6, 5, 6), skip=(2, 4), origin=(0, 0, 30))
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert_clean_error(r, 3, "typical 2.5 mm", "2 slices missing")
    r = run("convert", tmp_path / "s", tmp_path / "f.nii", "--fill-gaps")
    assert r.code == 0, r.err
    img = nib.load(tmp_path / "f.nii")
    assert img.shape[2] == 6
    flip = np.diag([-1, -1, 1])
    for k, ipp in zip((0, 1, 3, 5), pos):
        assert np.allclose(img.affine[:3, :3] @ [0, 0, k] + img.affine[:3, 3], flip @ ipp, atol=1e-4)
        assert np.array_equal(np.asarray(img.dataobj)[:, :, k], data[:, :, k].T)


@pytest.mark.parametrize("shift", [(30.0, -12.0, 0.0), (0.2, 0.0, 0.0)])
def test_slice_off_the_stack_in_its_own_plane_is_refused(tmp_path, shift):
    """A slice moved within its plane sits on no regular grid: refused, never stacked (stacking it
    would put its voxels where they were not acquired)."""
    paths, _, pos = dcmgen.make_series(tmp_path / "s", shape=(6, 5, 5), origin=(0, 0, 30))
    dcmgen.write_slice(paths[2], np.zeros((6, 5), np.int16), ipp=np.asarray(pos[2]) + shift, instance=3)
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert_clean_error(r, 3, "not on one stack", "off the line")
    assert not (tmp_path / "o.nii").exists()
    r = run("info", tmp_path / "s")
    assert r.code == 0 and "not on one stack" in r.err


def test_two_stacks_side_by_side_are_not_a_4th_dimension(tmp_path):
    for side, x in (("a", 0.0), ("b", 100.0)):
        dcmgen.make_series(tmp_path / "s", shape=(6, 5, 3), origin=(x, 0, 30), names=[f"{side}{k}.dcm" for k in range(3)])
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert_clean_error(r, 3, "not on one stack", "100 mm apart")


def test_slices_of_different_pixel_spacing_are_separate_series(tmp_path):
    dcmgen.make_series(tmp_path / "s", shape=(6, 5, 2), origin=(0, 0, 30), names=["a0.dcm", "a1.dcm"])
    dcmgen.make_series(tmp_path / "s", shape=(6, 5, 2), origin=(0, 0, 35), spacing=(1.4, 1.8),
                       names=["b0.dcm", "b1.dcm"])
    from medconv.dicom import info_records

    recs = info_records(tmp_path / "s")
    assert len(recs) == 2 and {r["n_files"] for r in recs} == {2}
    assert sorted(tuple(round(v, 3) for v in r["spacing"][:2]) for r in recs) == [(0.8, 0.75), (1.8, 1.4)]


def test_the_same_images_twice_count_once(tmp_path):
    """A folder copied twice into a tree: same SOPInstanceUIDs, not a second volume (as dcm2niix)."""
    import shutil

    _, data, _ = dcmgen.make_series(tmp_path / "t" / "a", shape=(6, 5, 4))
    shutil.copytree(tmp_path / "t" / "a", tmp_path / "t" / "b")
    r = run("convert", tmp_path / "t", tmp_path / "o.nii")
    assert r.code == 0, r.err
    assert "4 duplicate image(s) skipped" in r.err
    import nibabel as nib

    assert nib.load(tmp_path / "o.nii").shape == (5, 6, 4)


def test_orientation_noise_across_a_rounding_boundary_is_one_series(tmp_path):
    """Direction cosines that differ by 2e-7 either side of x.xxx5 are one stack (compared with a
    tolerance, not by rounding)."""
    import math

    a = math.radians(5.71)
    for k in range(6):
        dy = 0.0995 + (1e-7 if k % 2 else -1e-7)
        iop = (1.0, dy, 0.0, 0.0, math.cos(a), -math.sin(a))
        dcmgen.write_slice(str(tmp_path / f"s{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0.0, 0.0, 2.5 * k),
                           iop=iop, instance=k + 1)
    from medconv.dicom import list_series

    parts = list_series(tmp_path)
    assert len(parts) == 1 and parts[0]["n_files"] == 6


@pytest.mark.parametrize("gap", [1.5, 1.88])
def test_a_gap_that_is_not_a_whole_number_of_steps_is_refused(tmp_path, gap):
    """Not jitter (off by more than 20% of a step) and not whole missing slices: every later slice
    would sit off its position on a regular grid, so convert refuses; info warns."""
    zs = [0.0, 2.5, 5.0, 5.0 + 2.5 * gap, 7.5 + 2.5 * gap, 10.0 + 2.5 * gap]
    os.makedirs(tmp_path / "s")
    for k, z in enumerate(zs):
        dcmgen.write_slice(str(tmp_path / "s" / f"{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0.0, 0.0, z),
                           instance=k + 1)
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert_clean_error(r, 3, "uneven slice spacing", "misplace")
    assert not (tmp_path / "o.nii").exists()
    assert_clean_error(run("convert", tmp_path / "s", tmp_path / "o.nii", "--fill-gaps"), 3, "misplace")
    r = run("info", tmp_path / "s")
    assert r.code == 0 and "uneven slice spacing" in r.err


def test_jitter_is_only_a_warning(tmp_path):
    os.makedirs(tmp_path / "s")
    for k, z in enumerate([0.0, 2.5, 5.1, 7.5, 10.0]):
        dcmgen.write_slice(str(tmp_path / "s" / f"{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0.0, 0.0, z),
                           instance=k + 1)
    r = run("convert", tmp_path / "s", tmp_path / "o.nii")
    assert r.code == 0 and "uneven slice spacing" in r.err


def test_zero_pixel_spacing_is_one_millimetre_with_a_warning(tmp_path):
    """PixelSpacing 0\\0 (seen in CR exports) would make a singular affine no tool reads back."""
    dcmgen.make_series(tmp_path / "s", shape=(4, 4, 3), spacing=(0.0, 0.0))
    r = run("convert", tmp_path / "s", tmp_path / "o.mha")
    assert r.code == 0 and "PixelSpacing is zero" in r.err
    assert run("info", tmp_path / "o.mha", "--get", "spacing").out.split()[:2] == ["1", "1"]
