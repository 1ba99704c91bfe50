"""Vendor DICOM read as dcm2niix reads it: Philips scaling, enhanced ordering and splitting, GE field
maps and epi_pepolar, series identity, unused high bits. Generated files here; the real corpora in
test_vendor_corpora.py."""
import json
import os

import enhgen
import numpy as np
import pytest
from enhgen import IN_STACK, PRIVATE_LABEL, STACK, TEMPORAL, frame, write_enhanced

import dcmgen
from helpers import run

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")


def _outputs(outdir):
    return sorted(p for p in os.listdir(outdir) if p.endswith(".nii.gz"))


def _data(path):
    img = nib.load(str(path))
    return img, img.get_fdata()


def _convert_dir(src, out, *extra):
    r = run("convert", src, "-o", out, "--to", "nifti1", *extra)
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    return _outputs(out)


# -- Philips scaling ------------------------------------------------------------------------------
def _philips_mag_phase(path, rng):
    """3 slices, magnitude (RS 1.5, SS 0.01) then phase (RS 1.5346, RI -3142, SS 500) per slice."""
    frames, pixels = [], []
    for k in range(3):
        frames.append(frame(k, te=4.6, part="MAGNITUDE", rs=1.5, ri=0.0, ss=0.01, dims=(1, k + 1, 1)))
        pixels.append(rng.integers(0, 4000, (6, 5)))
        frames.append(frame(k, te=4.6, part="PHASE", rs=1.5346, ri=-3142.0, ss=500.0, dims=(1, k + 1, 2)))
        pixels.append(rng.integers(0, 4095, (6, 5)))
    write_enhanced(str(path), frames, pixels, dim_pointers=(STACK, IN_STACK, 0x2005_1011))
    return frames, pixels


def test_philips_enhanced_floating_point_scaling_per_frame(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    frames, pixels = _philips_mag_phase(src / "IM_1.dcm", np.random.default_rng(1))
    out = tmp_path / "out"
    names = _convert_dir(src, out)
    assert names == ["5_enh_test.nii.gz", "5_enh_test_ph.nii.gz"]
    _, mag = _data(out / names[0])
    _, phase = _data(out / names[1])
    for k in range(3):
        sv_m, sv_p = pixels[2 * k].astype(float), pixels[2 * k + 1].astype(float)
        assert np.allclose(mag[:, :, k], (sv_m / 0.01).T, rtol=1e-5)
        expected = (sv_p * 1.5346 - 3142.0) / (1.5346 * 500.0)  # radians, not milliradians
        assert np.allclose(phase[:, :, k], expected.T, rtol=1e-4, atol=1e-5)
    # display values on request
    out2 = tmp_path / "out2"
    names = _convert_dir(src, out2, "--philips-scaling", "display")
    _, mag = _data(out2 / names[0])
    assert np.allclose(mag[:, :, 0], (pixels[0] * 1.5).T, rtol=1e-5)


def test_info_says_which_philips_scaling_applies(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _philips_mag_phase(src / "IM_1.dcm", np.random.default_rng(2))
    r = run("info", src, "--json")
    assert r.code == 0, r.err
    records = json.loads(r.out)
    assert {rec["scaling_rule"] for rec in records} == {"philips-fp"}
    assert sorted(rec.get("suffix", "") for rec in records) == ["", "_ph"]  # which output is which
    assert records[0]["scaling"]["slope"] == pytest.approx(100.0)
    r = run("header", src / "IM_1.dcm")
    assert r.code == 0, r.err
    assert "Philips scaling" in r.out.splitlines()[0]


def test_philips_scaling_bad_value_is_a_usage_error(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _philips_mag_phase(src / "IM_1.dcm", np.random.default_rng(3))
    r = run("convert", src, tmp_path / "x.nii.gz", "--series", "5.1", "--philips-scaling", "precise")
    assert r.code == 2
    assert "Traceback" not in r.err
    assert not os.path.exists(tmp_path / "x.nii.gz")


def test_philips_classic_private_scale_slope_per_file(tmp_path):
    """Classic single-frame files carry (2005,100E) at the top level; a slope that differs between
    slices gives float values, each slice with its own."""
    d = tmp_path / "cl"
    d.mkdir()
    rng = np.random.default_rng(4)
    truth = []
    for k, ss in enumerate((0.5, 0.25, 0.125)):
        px = rng.integers(0, 4000, (4, 3)).astype(np.int16)
        p = dcmgen.write_slice(str(d / f"s{k}.dcm"), px, ipp=(0, 0, 3.0 * k), modality="MR", slope=2, intercept=10,
                               extra={"Manufacturer": "Philips Medical Systems"}, instance=k + 1)
        ds = pydicom.dcmread(p)
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", ss)
        ds.save_as(p)
        truth.append((px * 2.0 + 10) / (2.0 * ss))
    img, arr = _data_nii(d, tmp_path)
    for k in range(3):
        assert np.allclose(arr[:, :, k], truth[k].T, rtol=1e-5)


def _data_nii(src, tmp_path, name="o.nii.gz"):
    r = run("convert", src, tmp_path / name)
    assert r.code == 0, r.err
    return _data(tmp_path / name)


# -- enhanced ordering ------------------------------------------------------------------------------
def test_enhanced_frames_follow_dimension_index_not_file_order(tmp_path):
    """A pCASL-like file (slice x time x label): volumes ordered by the declared dimensions, the
    last dimension slowest (label, then time), whatever order the frames are stored in."""
    nz, nt, nl = 4, 3, 2
    specs = [(k, t, lab) for lab in range(nl) for t in range(nt) for k in range(nz)]
    order = np.random.default_rng(5).permutation(len(specs))
    frames, pixels = [], []
    for i in order:
        k, t, lab = specs[i]
        frames.append(frame(k, te=9, temporal=t + 1, dims=(1, k + 1, t + 1, lab)))
        pixels.append(np.full((3, 4), 1000 * lab + 100 * t + k))
    src = tmp_path / "in"
    src.mkdir()
    write_enhanced(str(src / "asl.dcm"), frames, pixels, dim_pointers=(STACK, IN_STACK, TEMPORAL, PRIVATE_LABEL))
    _, arr = _data_nii(src, tmp_path)
    assert arr.shape == (4, 3, nz, nt * nl)
    for v in range(nt * nl):
        lab, t = divmod(v, nt)
        for k in range(nz):
            assert np.all(arr[:, :, k, v] == 1000 * lab + 100 * t + k), (v, k)


def test_enhanced_echoes_and_parts_split_as_dcm2niix_names_them(tmp_path):
    """A dual-echo magnitude/phase field map in one enhanced file: four outputs, _e1, _e1_ph, _e2, _e2_ph."""
    frames, pixels = [], []
    for k in range(3):
        for part_i, part in enumerate(("MAGNITUDE", "PHASE")):
            for e, te in enumerate((2.3, 4.6)):
                frames.append(frame(k, te=te, part=part, dims=(1, k + 1, part_i, e + 1)))
                pixels.append(np.full((3, 4), 100 * (part_i + 1) + 10 * (e + 1) + k))
    src = tmp_path / "in"
    src.mkdir()
    write_enhanced(str(src / "fmap.dcm"), frames, pixels, manufacturer="SIEMENS",
                   dim_pointers=(STACK, IN_STACK, 0x00089208, enhgen.ECHO_TIME))
    out = tmp_path / "out"
    names = _convert_dir(src, out)
    assert names == ["5_enh_test_e1.nii.gz", "5_enh_test_e1_ph.nii.gz", "5_enh_test_e2.nii.gz",
                     "5_enh_test_e2_ph.nii.gz"]
    for name, value in zip(names, (110, 210, 120, 220)):
        _, arr = _data(out / name)
        assert arr.shape == (4, 3, 3)
        assert all(np.all(arr[:, :, k] == value + k) for k in range(3)), name


def test_classic_echoes_and_phase_split_with_the_same_names(tmp_path):
    """Classic files of one series: echo numbers and M/P image types give separate outputs."""
    d = tmp_path / "cl"
    d.mkdir()
    n = 0
    for echo in (1, 2):
        for kind in ("M", "P"):
            for k in range(3):
                n += 1
                dcmgen.write_slice(str(d / f"f{n:03d}.dcm"), np.full((3, 4), 10 * echo + (kind == "P") + 100 * k),
                                   ipp=(0, 0, 2.5 * k), modality="MR", instance=k + 1, description="gre field",
                                   extra={"EchoNumbers": echo, "ImageType": ["ORIGINAL", "PRIMARY", kind, "ND"]})
    names = _convert_dir(d, tmp_path / "out")
    assert names == ["3_gre_field_e1.nii.gz", "3_gre_field_e1_ph.nii.gz", "3_gre_field_e2.nii.gz",
                     "3_gre_field_e2_ph.nii.gz"]


def test_phase_of_a_second_echo_alone_keeps_its_echo_number(tmp_path):
    """A series holding only the echo-2 phase difference is named _e2_ph (dcm2niix's habit)."""
    d = tmp_path / "ph"
    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"f{k}.dcm"), np.full((3, 4), k), ipp=(0, 0, 2.5 * k), modality="MR",
                           instance=k + 1, description="phase diff",
                           extra={"EchoNumbers": 2, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]})
    assert _convert_dir(d, tmp_path / "out") == ["ph_e2_ph.nii.gz"]  # one series: named after its folder


def test_philips_field_map_in_hz_is_its_own_output(tmp_path):
    """Philips B0 map: the magnitude frames (echo 1) and the FIELD_MAP frames (Hz) are two outputs."""
    frames, pixels = [], []
    for k in range(3):
        frames.append(frame(k, te=1.5, part="MAGNITUDE", rs=1.2, ss=0.001, dims=(1, k + 1, 2, 0)))
        pixels.append(np.full((3, 4), 50 + k))
    for k in range(3):
        frames.append(frame(k, te=0.0, part="REAL", frame_type="FIELD_MAP", rs=0.2442, ri=-500.0, ss=4.095,
                            dims=(1, k + 1, 5, 18)))
        pixels.append(np.full((3, 4), 2000 + k))
    src = tmp_path / "in"
    src.mkdir()
    write_enhanced(str(src / "b0.dcm"), frames, pixels)
    out = tmp_path / "out"
    names = _convert_dir(src, out)
    assert names == ["5_enh_test_e1.nii.gz", "5_enh_test_e2_fieldmaphz.nii.gz"]
    _, hz = _data(out / names[1])
    assert np.allclose(hz[:, :, 1], ((2001 * 0.2442 - 500.0) / (0.2442 * 4.095)), rtol=1e-5)


# -- GE ---------------------------------------------------------------------------------------------
def _ge_series(d, psd, volumes, nz=3, user12=None, signed_first=False):
    """Classic GE files: `volumes` lists of [row, col] arrays per slice, instance numbers in order."""
    d.mkdir()
    n = 0
    for v, vol in enumerate(volumes):
        for k in range(nz):
            n += 1
            p = dcmgen.write_slice(str(d / f"i{n:04d}.MRDC"), vol[k], ipp=(0, 0, 4.0 * k), modality="MR",
                                   instance=n, description="B0map", extra={"Manufacturer": "GE MEDICAL SYSTEMS"})
            ds = pydicom.dcmread(p)
            block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
            block.add_new(0x9C, "LO", psd)
            if user12 is not None:
                block.add_new(0xB3, "DS", str(user12))
            ds.save_as(p)


def test_ge_direct_field_map_splits_hz_from_magnitude(tmp_path):
    rng = np.random.default_rng(6)
    hz = [rng.integers(-400, 400, (4, 5)) for _ in range(3)]
    mag = [rng.integers(0, 3000, (4, 5)) for _ in range(3)]
    _ge_series(tmp_path / "ge", "B0map", [hz, mag])
    out = tmp_path / "out"
    names = _convert_dir(tmp_path / "ge", out)
    assert names == ["3_B0map.nii.gz", "3_B0map_fieldmaphz.nii.gz"]
    _, m = _data(out / names[0])
    _, f = _data(out / names[1])
    for k in range(3):
        assert np.array_equal(m[:, :, k], mag[k].T)
        assert np.array_equal(f[:, :, k], hz[k].T)


def test_ge_other_sequences_with_two_images_per_slice_stay_one_series(tmp_path):
    rng = np.random.default_rng(7)
    vols = [[rng.integers(0, 100, (4, 5)) for _ in range(3)] for _ in range(2)]
    _ge_series(tmp_path / "ge", "epiRT", vols)
    names = _convert_dir(tmp_path / "ge", tmp_path / "out")
    assert names == ["ge.nii.gz"]
    img, _ = _data(tmp_path / "out" / names[0])
    assert img.shape == (5, 4, 3, 2)


@pytest.mark.parametrize("mode, reversed_volumes", [(2, (0, 2)), (3, (1, 3)), (1, (0, 1, 2, 3)), (0, ())])
def test_ge_epi_pepolar_reversed_volumes(tmp_path, mode, reversed_volumes):
    """UserData12 0 forward, 1 reversed, 2 reversed then forward, 3 forward then reversed: reversed
    volumes have their rows flipped, and in modes 2 and 3 go to series number + 1000."""
    rng = np.random.default_rng(8 + mode)
    vols = [[rng.integers(0, 1000, (4, 5)) for _ in range(3)] for _ in range(4)]
    _ge_series(tmp_path / "ge", "epi_pepolar", vols, user12=mode)
    out = tmp_path / "out"
    names = _convert_dir(tmp_path / "ge", out)
    forward = [v for v in range(4) if v not in reversed_volumes]
    expected = {}
    if mode in (2, 3):  # two series in the folder: named by series number and description
        expected = {"3_B0map.nii.gz": (forward, False), "1003_B0map.nii.gz": (list(reversed_volumes), True)}
    else:  # one series: named after the folder
        expected = {"ge.nii.gz": (forward, False) if forward else (list(reversed_volumes), True)}
    assert names == sorted(expected)
    for name, (vols_in, flipped) in expected.items():
        _, arr = _data(out / name)
        arr = arr.reshape(arr.shape[:3] + (-1,))
        assert arr.shape[3] == len(vols_in)
        for j, v in enumerate(vols_in):
            for k in range(3):
                px = vols[v][k][::-1] if flipped else vols[v][k]
                assert np.array_equal(arr[:, :, k, j], px.T), (name, v, k)


# -- series identity ----------------------------------------------------------------------------------
def test_one_uid_two_series_numbers_are_two_outputs(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    for number in (7, 8):
        for k in range(3):
            dcmgen.write_slice(str(d / f"{number}_{k}.dcm"), np.full((3, 4), number), ipp=(0, 0, 2.5 * k),
                               series_number=number, instance=k + 1)
    r = run("info", d, "--json")
    assert r.code == 0, r.err
    assert sorted(rec["series_number"] for rec in json.loads(r.out)) == [7, 8]
    assert _convert_dir(d, tmp_path / "out") == ["7_axial_test.nii.gz", "8_axial_test.nii.gz"]


def _with_sop(path, sop):
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.save_as(path)


def test_repeated_sop_instance_uid_with_other_pixels_is_not_a_duplicate(tmp_path):
    """Two echoes written with the same SOPInstanceUIDs (seen after some PACS exports) are two images."""
    d = tmp_path / "s"
    d.mkdir()
    for echo in (1, 2):
        for k in range(3):
            p = dcmgen.write_slice(str(d / f"e{echo}_{k}.dcm"), np.full((3, 4), 10 * echo + k), ipp=(0, 0, 2.5 * k),
                                   modality="MR", instance=k + 1, extra={"EchoNumbers": echo})
            _with_sop(p, f"1.2.3.9.{k}")
    r = run("info", d, "--json")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)) == 2
    assert "duplicate" not in r.err


def test_a_copied_file_is_still_read_once(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"a{k}.dcm"), np.full((3, 4), k), ipp=(0, 0, 2.5 * k), instance=k + 1)
    (tmp_path / "s" / "copy").mkdir()
    import shutil

    shutil.copy(d / "a1.dcm", d / "copy" / "a1.dcm")
    r = run("convert", d, tmp_path / "o.nii.gz")
    assert r.code == 0, r.err
    assert "1 duplicate image(s) skipped" in r.err
    assert nib.load(str(tmp_path / "o.nii.gz")).shape == (4, 3, 3)


# -- unused high bits -----------------------------------------------------------------------------------
def _striped(values, rng):
    """12-bit values with stripes of junk in bits 12-15 on alternate rows (overlay planes in the wild)."""
    junk = (values.astype(np.uint16) & 0x0FFF)
    junk[::2] |= (rng.integers(1, 16, junk[::2].shape).astype(np.uint16) << 12)
    return junk


@pytest.mark.parametrize("signed", [False, True])
def test_twelve_bit_series_with_striped_high_bits(tmp_path, signed):
    """A classic 12-bit series (the threaded native read) and the same frames in one enhanced file:
    unused high bits masked (unsigned) or the sign taken from HighBit (signed)."""
    rng = np.random.default_rng(9)
    lo, hi = (-2048, 2048) if signed else (0, 4096)
    truth = [rng.integers(lo, hi, (8, 6)) for _ in range(20)]
    d = tmp_path / "cl"
    d.mkdir()
    for k, v in enumerate(truth):
        dcmgen.write_slice(str(d / f"s{k:02d}.dcm"), _striped(v, rng).view(np.int16), ipp=(0, 0, 2.0 * k),
                           instance=k + 1, signed=signed, extra={"BitsStored": 12, "HighBit": 11})
    _, arr = _data_nii(d, tmp_path, "cl.nii.gz")
    for k, v in enumerate(truth):
        assert np.array_equal(arr[:, :, k], v.T), k
    e = tmp_path / "enh"
    e.mkdir()
    write_enhanced(str(e / "m.dcm"), [frame(k, te=5) for k in range(20)],
                   [_striped(v, rng).view(np.int16) if signed else _striped(v, rng) for v in truth],
                   bits_stored=12, signed=signed, manufacturer="SIEMENS")
    _, arr = _data_nii(e, tmp_path, "enh.nii.gz")
    for k, v in enumerate(truth):
        assert np.array_equal(arr[:, :, k], v.T), k
    # RLE-compressed (decoded through pydicom's plugins)
    from pydicom.uid import RLELossless

    c = tmp_path / "rle"
    c.mkdir()
    for k, v in enumerate(truth[:3]):
        stored = _striped(v, rng).view(np.int16) if signed else _striped(v, rng)
        p = dcmgen.write_slice(str(c / f"s{k}.dcm"), stored.view(np.int16), ipp=(0, 0, 2.0 * k), instance=k + 1,
                               signed=signed)
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless, stored)  # encoded as 16-bit, then declared 12-bit as the stripes need
        ds.BitsStored, ds.HighBit = 12, 11
        ds.save_as(p)
    _, arr = _data_nii(c, tmp_path, "rle.nii.gz")
    for k, v in enumerate(truth[:3]):
        assert np.array_equal(arr[:, :, k], v.T), k


# -- per-frame properties (read by the sidecar) and the light parser -----------------------------------
def test_enhanced_frame_properties_light_and_pydicom_agree(tmp_path):
    from medconv.dicom import scan
    from medconv.dicom.frame import Frame

    frames = [frame(k, te=72.0 + e, part="MAGNITUDE", bvalue=1000.0 * e, bvec=(0.6, 0.8, 0.0) if e else None,
                    temporal=e + 1, dims=(1, k + 1, e + 1), ss=0.5, rs=2.0, acq=f"2024010112000{e}.50")
              for e in range(2) for k in range(3)]
    path = write_enhanced(str(tmp_path / "dwi.dcm"), frames, [np.zeros((3, 4)) for _ in frames],
                          dim_pointers=(STACK, IN_STACK, TEMPORAL))
    light = scan.read_file(path)
    assert getattr(light[0].ds, "is_light", False)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    heavy = [Frame(ds, path, i, len(frames)) for i in range(len(frames))]
    keys = ("ipp", "iop", "pixel_spacing", "slope", "intercept", "philips_ss", "echo_time", "bvalue", "bvec",
            "complex_part", "dim_index", "temporal", "acq_time", "acq_datetime", "frame_type")
    for a, b in zip(light, heavy):
        for key in keys:
            assert getattr(a, key) == getattr(b, key), key
    f = light[4]
    assert (f.echo_time, f.bvalue, f.bvec, f.complex_part, f.temporal) == (73.0, 1000.0, [0.6, 0.8, 0.0],
                                                                          "magnitude", 2)
    assert f.dim_index == (1, 2, 2) and f.philips_ss == 0.5 and f.echo_time_s == pytest.approx(0.073)
    assert f.acq_datetime == "20240101120001.50" and f.per_frame is not None and f.shared_groups is not None
    assert f.per_frame.get("MRDiffusionSequence")[0].get("DiffusionBValue") == 1000.0
    # the same file in implicit VR (the private sequence known by its tag alone): the same frames
    from pydicom.uid import ImplicitVRLittleEndian

    full = pydicom.dcmread(path)
    full.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    other = str(tmp_path / "implicit.dcm")
    full.save_as(other, enforce_file_format=True)
    again = scan.read_file(other)
    assert getattr(again[0].ds, "is_light", False)
    for a, b in zip(light, again):
        for key in keys:
            assert getattr(a, key) == getattr(b, key), key


def test_truncated_enhanced_file_fails_cleanly(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _philips_mag_phase(src / "IM_1.dcm", np.random.default_rng(10))
    data = (src / "IM_1.dcm").read_bytes()
    (src / "IM_1.dcm").write_bytes(data[: len(data) // 3])
    r = run("convert", src / "IM_1.dcm", tmp_path / "o.nii.gz")
    assert r.code == 3
    assert r.err.startswith("medconv: error:") and len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err
    assert not os.path.exists(tmp_path / "o.nii.gz") and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_files_without_pixel_data_are_skipped_beside_a_series(tmp_path):
    """Raw-data / exam-card files (no pixel data) beside an image series: the series converts; the
    file named alone is an input error (exit 3) saying it holds no image."""
    d = tmp_path / "mixed"
    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"s{k}.dcm"), np.full((3, 4), k), ipp=(0, 0, 2.5 * k), instance=k + 1)
    from pydicom.dataset import Dataset, FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"  # Raw Data Storage
    meta.MediaStorageSOPInstanceUID = "1.2.3.99"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    raw = Dataset()
    raw.file_meta = meta
    raw.SOPClassUID, raw.SOPInstanceUID = meta.MediaStorageSOPClassUID, "1.2.3.99"
    raw.Modality, raw.SeriesInstanceUID, raw.SeriesNumber = "MR", "1.2.3.98", 9
    raw.add_new(0x20051080, "OB", b"\x01" * 4000)  # a private blob, as Philips raw files carry
    raw.save_as(str(d / "raw.dcm"), enforce_file_format=True)
    r = run("convert", d, tmp_path / "o.nii.gz")
    assert r.code == 0, r.err
    assert nib.load(str(tmp_path / "o.nii.gz")).shape == (4, 3, 3)
    r = run("convert", d / "raw.dcm", tmp_path / "raw.nii.gz")
    assert r.code == 3
    assert "holds no image" in r.err and "Traceback" not in r.err
    assert not os.path.exists(tmp_path / "raw.nii.gz")


def test_deeply_nested_functional_groups_do_not_crash(tmp_path):
    """A hostile file nesting frame-content sequences 40 deep: read (or refused) with a clean exit."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    src = tmp_path / "in"
    src.mkdir()
    path = write_enhanced(str(src / "deep.dcm"), [frame(k, te=5) for k in range(3)],
                          [np.full((3, 4), k) for k in range(3)], manufacturer="SIEMENS")
    ds = pydicom.dcmread(path)
    inner = Dataset()
    inner.StackID = "1"
    for _ in range(40):
        outer = Dataset()
        outer.FrameContentSequence = Sequence([inner])
        inner = outer
    ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0].PlanePositionSequence = Sequence([inner])
    ds.save_as(path)
    from medconv.dicom import scan

    assert not getattr(scan.read_file(path)[0].ds, "is_light", False)  # the light parser stepped aside
    r = run("convert", src, tmp_path / "o.nii.gz")
    assert r.code in (0, 3), r.err
    assert "Traceback" not in r.err
    if r.code == 0:
        assert nib.load(str(tmp_path / "o.nii.gz")).shape == (4, 3, 3)


def test_philips_derived_isotropic_diffusion_images_left_out(tmp_path):
    """b0 + two directions + the derived isotropic image Philips appends: three volumes, as dcm2niix."""
    vols = [("NONE", 0.0, (0, 0, 0)), ("DIRECTIONAL", 1000.0, (1, 0, 0)), ("DIRECTIONAL", 1000.0, (0, 1, 0)),
            ("ISOTROPIC", 1000.0, None)]
    frames, pixels = [], []
    for v, (kind, b, vec) in enumerate(vols):
        for k in range(3):
            frames.append(frame(k, te=72, temporal=v + 1, dims=(1, k + 1, v + 1), bvalue=b, bvec=vec,
                                directionality=kind, ss=0.5, rs=1.0))
            pixels.append(np.full((3, 4), 10 * v + k))
    src = tmp_path / "in"
    src.mkdir()
    write_enhanced(str(src / "dwi.dcm"), frames, pixels, dim_pointers=(STACK, IN_STACK, TEMPORAL))
    r = run("convert", src, tmp_path / "dwi.nii.gz")
    assert r.code == 0, r.err
    assert "derived isotropic" in r.err
    img, arr = _data(tmp_path / "dwi.nii.gz")
    assert arr.shape == (4, 3, 3, 3)
    assert [arr[0, 0, 0, v] * 0.5 for v in range(3)] == [0.0, 10.0, 20.0]


@pytest.mark.parametrize("ss", [0.0, float("nan"), float("inf"), 1e-320])
def test_philips_unusable_scale_slope_falls_back_to_display_values(tmp_path, ss):
    d = tmp_path / "cl"
    d.mkdir()
    px = np.arange(12, dtype=np.int16).reshape(4, 3)
    p = dcmgen.write_slice(str(d / "s.dcm"), px, ipp=(0, 0, 0), modality="MR", slope=2, intercept=10,
                           extra={"Manufacturer": "Philips Medical Systems"})
    ds = pydicom.dcmread(p)
    ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", ss)
    ds.save_as(p)
    _, arr = _data_nii(d, tmp_path)
    assert np.array_equal(arr[:, :, 0], (px * 2.0 + 10).T)


def test_philips_classic_isotropic_image_marked_privately_is_left_out(tmp_path):
    """Older classic Philips files mark the derived trace image only with (2001,1004) = I."""
    d = tmp_path / "dwi"
    d.mkdir()
    n = 0
    for v, direction in enumerate(("", "P", "I")):
        for k in range(3):
            n += 1
            p = dcmgen.write_slice(str(d / f"f{n:02d}.dcm"), np.full((3, 4), 10 * v + k), ipp=(0, 0, 2.5 * k),
                                   modality="MR", instance=n,
                                   extra={"Manufacturer": "Philips Medical Systems", "TemporalPositionIdentifier": v + 1})
            ds = pydicom.dcmread(p)
            ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x04, "CS", direction)
            ds.save_as(p)
    r = run("convert", d, tmp_path / "dwi.nii.gz")
    assert r.code == 0, r.err
    _, arr = _data(tmp_path / "dwi.nii.gz")
    assert arr.shape == (4, 3, 3, 2)
    assert [arr[0, 0, 0, v] for v in range(2)] == [0.0, 10.0]


def test_philips_position_only_in_the_private_frame_item(tmp_path):
    """Positions kept only in (2005,140F) (files rewritten after the scanner) still place the slices."""
    iop = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal
    frames = [frame(k, te=5, ss=0.5, dims=(1, k + 1)) for k in (2, 0, 3, 1)]
    src = tmp_path / "in"
    src.mkdir()
    write_enhanced(str(src / "sag.dcm"), frames, [np.full((3, 4), f["k"]) for f in frames], iop=iop,
                   private_position=True, step=2.5, origin=(10.0, -20.0, 30.0))
    img, arr = _data_nii(src, tmp_path)
    assert [arr[0, 0, k] * 0.5 for k in range(4)] == [0.0, 1.0, 2.0, 3.0]
    expected = dcmgen.expected_affine(iop, (2.0, 2.0), np.cross(iop[:3], iop[3:]) * 2.5, (10.0, -20.0, 30.0))
    assert np.allclose(img.affine, expected, atol=1e-4)


def test_grouping_a_scanned_tree_twice_reuses_the_first_grouping(tmp_path):
    """Converting the outputs of one directory one by one groups its frames once (same frame objects);
    a changed tree (new frames) is grouped afresh."""
    from medconv.dicom import assemble, scan

    d = tmp_path / "s"
    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"a{k}.dcm"), np.full((3, 4), k), ipp=(0, 0, 2.5 * k), instance=k + 1)
    first = assemble.group(scan.scan(str(d)))
    again = assemble.group(scan.scan(str(d)))
    assert [s is t for s, t in zip(first, again)] == [True]
    dcmgen.write_slice(str(d / "b.dcm"), np.full((3, 4), 9), ipp=(0, 0, 10.0), instance=9, series_number=4,
                       series_uid="1.2.3.4.6")
    changed = assemble.group(scan.scan(str(d)))
    assert len(changed) == 2 and changed[0] is not first[0]
