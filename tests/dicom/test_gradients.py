"""Diffusion gradients (.bval/.bvec) of every vendor's source, and the sidecar's chosen keys."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import dwigen
import nibabel as nib
import numpy as np
import pytest

from helpers import run

DCM2NIIX = shutil.which("dcm2niix") or os.path.join(os.path.dirname(sys.executable), "dcm2niix")


def _read(stem):
    bval = np.loadtxt(f"{stem}.bval", ndmin=1)
    bvec = np.loadtxt(f"{stem}.bvec", ndmin=2)
    return bval, bvec


def _expected_bvecs(nii_path, scheme):
    """FSL vectors computed from the written image's own affine: patient (LPS) gradients into RAS,
    onto the unit voxel axes, x negated when the determinant is positive."""
    aff = nib.load(nii_path).affine[:3, :3]
    axes = aff / np.linalg.norm(aff, axis=0)
    out = []
    for _, g in scheme:
        ras = np.array([-g[0], -g[1], g[2]])
        v = np.linalg.solve(axes, ras)
        if np.linalg.det(aff) > 0:
            v[0] = -v[0]
        out.append(v)
    return np.array(out).T


def _same_direction(a, b, tol=0.01):
    d = np.minimum(np.abs(a - b).max(0), np.abs(a + b).max(0))
    return bool(np.all(d <= tol))


@pytest.mark.parametrize("vendor", dwigen.VENDORS)
def test_each_gradient_source_gives_voxel_space_bvecs(tmp_path, vendor):
    src = dwigen.write_series(str(tmp_path / "in"), vendor)
    r = run("convert", src, tmp_path / "dwi.nii")
    assert r.code == 0, r.err
    bval, bvec = _read(tmp_path / "dwi")
    assert np.allclose(bval, [b for b, _ in dwigen.SCHEME])
    assert bvec.shape == (3, len(dwigen.SCHEME))
    tol = 5e-3 if vendor == "canon" else 1e-4  # Canon's comment text holds 3 decimals
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii", dwigen.SCHEME), tol)
    assert not np.any(bvec[:, 0])  # b=0: a zero vector
    # oblique plane: the voxel-space vectors are not the patient-space ones
    assert not _same_direction(bvec[:, 1:], np.array([g for _, g in dwigen.SCHEME[1:]]).T)


@pytest.mark.skipif(not os.path.exists(DCM2NIIX), reason="dcm2niix is not installed")
@pytest.mark.parametrize("vendor, pe", [("standard", "COL"), ("siemens", "COL"), ("ge", "COL"), ("ge", "ROW"),
                                        ("philips", "COL"), ("uih", "COL"), ("canon", "COL"), ("canon", "ROW")])
def test_oblique_bvecs_and_image_agree_with_dcm2niix(tmp_path, vendor, pe):
    src = dwigen.write_series(str(tmp_path / "in"), vendor, pe=pe)
    (tmp_path / "ref").mkdir()
    subprocess.run([DCM2NIIX, "-f", "ref", "-o", str(tmp_path / "ref"), src], capture_output=True, check=True)
    assert run("convert", src, tmp_path / "dwi.nii").code == 0
    ref_bval, ref_bvec = _read(tmp_path / "ref" / "ref")
    bval, bvec = _read(tmp_path / "dwi")
    assert np.allclose(bval, ref_bval)
    assert _same_direction(bvec, ref_bvec)
    ours, theirs = nib.load(tmp_path / "dwi.nii"), nib.load(tmp_path / "ref" / "ref.nii")
    assert np.allclose(ours.affine, theirs.affine, atol=1e-3)  # same voxel axes as dcm2niix
    assert np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))


@pytest.mark.parametrize("vendor", ["ge", "canon"])
def test_row_phase_encoding_turns_the_logical_axes(tmp_path, vendor):
    src = dwigen.write_series(str(tmp_path / "in"), vendor, pe="ROW")
    assert run("convert", src, tmp_path / "dwi.nii").code == 0
    _, bvec = _read(tmp_path / "dwi")
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii", dwigen.SCHEME), 5e-3)


def test_philips_derived_trace_volume_is_left_out(tmp_path):
    src = dwigen.write_series(str(tmp_path / "in"), "philips", extra_volumes=[(1000.0, (0.0, 0.0, 0.0))])
    assert run("convert", src, tmp_path / "dwi.nii").code == 0
    img = nib.load(tmp_path / "dwi.nii")
    bval, bvec = _read(tmp_path / "dwi")
    assert img.shape[3] == len(dwigen.SCHEME) == bval.size == bvec.shape[1]
    assert np.allclose(bval, [b for b, _ in dwigen.SCHEME])


def test_siemens_csa_gradients_of_real_mosaics(tmp_path):
    import pydicom

    src = dwigen.siemens_dwi_mosaics(tmp_path / "in")
    vectors = {}
    for name in ("siemens_dwi_0.dcm", "siemens_dwi_1000.dcm"):
        ds = pydicom.dcmread(src / name, stop_before_pixels=True)
        vectors[int(ds[0x0019, 0x100C].value)] = ds.get((0x0019, 0x100E))
    r = run("convert", src, tmp_path / "dwi.nii.gz", "--sidecar")
    assert r.code == 0, r.err
    bval, bvec = _read(tmp_path / "dwi")
    assert list(bval) == [0, 1000]
    g = np.array(vectors[1000].value)
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii.gz", [(0, (0, 0, 0)), (1000, g)]), 1e-4)
    side = json.loads((tmp_path / "dwi.json").read_text())
    assert side["SequenceVariant"] == "SK\\SP" and side["ScanOptions"] == "PFP\\FS"  # joined, not list text
    assert isinstance(side["ImageType"], list) and isinstance(side["ShimSetting"], list)
    assert len(side["SliceTiming"]) == nib.load(tmp_path / "dwi.nii.gz").shape[2]  # from CSA MosaicRefAcqTimes
    assert side["PhaseEncodingDirection"] == "j-"  # rows stored bottom-up: the polarity follows them
    assert "PatientName" not in side and "PatientID" not in side


def test_info_reports_directions_and_b_values(tmp_path):
    src = dwigen.write_series(str(tmp_path / "in"), "siemens")
    r = run("info", src, "--json")
    assert r.code == 0, r.err
    rec = json.loads(r.out)
    rec = rec[0] if isinstance(rec, list) else rec
    assert rec["n_diffusion_directions"] == 3
    assert rec["b_values"] == [b for b, _ in dwigen.SCHEME]


def test_nrrd_output_carries_dwmri_keys(tmp_path):
    src = dwigen.write_series(str(tmp_path / "in"), "standard")
    assert run("convert", src, tmp_path / "dwi.nrrd").code == 0
    with open(tmp_path / "dwi.nrrd", "rb") as fh:
        head = fh.read(4096).split(b"\n\n")[0].decode("latin-1")
    assert "modality:=DWMRI" in head and "DWMRI_b-value:=2000" in head
    assert "measurement frame: (1,0,0) (0,1,0) (0,0,1)" in head
    # the gradient axis first, a list, as 3D Slicer and DWIConvert write DWI NRRD; medconv reads it back
    assert "kinds: list domain domain domain" in head and "sizes: 4 5 6 3" in head
    assert "space: left-posterior-superior\n" in head and "space directions: none (" in head
    import medconv

    back, orig = medconv.read(str(tmp_path / "dwi.nrrd")), medconv.read(src)
    assert np.array_equal(back.real(), orig.real()) and np.allclose(back.affine, orig.affine)
    lines = {k: v for k, _, v in (ln.partition(":=") for ln in head.splitlines() if ":=" in ln)}
    for t, (b, g) in enumerate(dwigen.SCHEME):
        vec = np.array([float(x) for x in lines[f"DWMRI_gradient_{t:04d}"].split()])
        assert np.allclose(np.linalg.norm(vec) ** 2 * 2000, b, atol=1e-3)  # |g|^2 scales the b-value
        if b:
            assert _same_direction(vec[:, None] / np.linalg.norm(vec), np.array(g)[:, None], 1e-5)


def test_existing_bval_is_refused_before_anything_is_written(tmp_path):
    src = dwigen.write_series(str(tmp_path / "in"), "siemens")
    (tmp_path / "dwi.bval").write_text("old\n")
    r = run("convert", src, tmp_path / "dwi.nii")
    assert r.code == 4 and "dwi.bval" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "dwi.nii").exists() and (tmp_path / "dwi.bval").read_text() == "old\n"
    assert run("convert", src, tmp_path / "dwi.nii", "--force").code == 0


def _timed_slices_sidecar(tmp_path, modality, times) -> dict:
    """The sidecar of a series of 4 slices of `modality` acquired at `times` (AcquisitionTime)."""
    import dcmgen

    d = tmp_path / modality
    d.mkdir()
    for k, t in enumerate(times):
        dcmgen.write_slice(str(d / f"{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0, 0, 2.0 * k),
                           modality=modality, instance=k + 1, extra={"AcquisitionTime": t})
    assert run("convert", d, tmp_path / "out.nii", "--sidecar").code == 0
    return json.loads((tmp_path / "out.json").read_text())


def test_ct_gets_no_slice_timing(tmp_path):
    side = _timed_slices_sidecar(tmp_path, "CT", ["120001.500000", "120001", "120000.250000", "120000"])
    assert side["Modality"] == "CT" and "SliceTiming" not in side


def test_3d_acquisition_gets_no_slice_timing(tmp_path):
    src = dwigen.write_enhanced(str(tmp_path / "e.dcm"), slice_order=[1, 0, 2])
    import pydicom

    ds = pydicom.dcmread(src)
    ds.MRAcquisitionType = "3D"
    ds.save_as(src, enforce_file_format=True)
    assert run("convert", src, tmp_path / "v.nii", "--sidecar").code == 0
    assert "SliceTiming" not in json.loads((tmp_path / "v.json").read_text())


def test_mr_whole_second_times_give_no_slice_timing(tmp_path):
    side = _timed_slices_sidecar(tmp_path, "MR", ["120001", "120001", "120000", "120000"])
    assert side["Modality"] == "MR" and "SliceTiming" not in side


def test_sidecar_add_drop_only(tmp_path):
    src = dwigen.write_series(str(tmp_path / "in"), "siemens")
    r = run("convert", src, tmp_path / "a.nii", "--sidecar", "--sidecar-add", "ImageComments",
            "--sidecar-add", "0019,100C", "--sidecar-add", "StudyInstanceUID", "--sidecar-drop", "FlipAngle")
    assert r.code == 0, r.err
    side = json.loads((tmp_path / "a.json").read_text())
    assert side["StudyInstanceUID"] == "1.2.3.4" and side["0019,100C"] == 0
    assert "FlipAngle" not in side and side["EchoTime"] == 0.03
    r = run("convert", src, tmp_path / "b.nii", "--sidecar-only", "EchoTime,RepetitionTime,0019,100C",
            "--sidecar-add", "0019,100c")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "b.json").read_text()) == {"EchoTime": 0.03, "RepetitionTime": 2, "0019,100C": 0}


@pytest.mark.parametrize("args, words", [
    (["--sidecar-add", "NoSuchKeyword"], "not a DICOM keyword"),
    (["--sidecar-add", "PatientName"], "identifies the patient"),
    (["--sidecar-drop", "Bogus"], "unknown sidecar key"),
    (["--sidecar-only", "EchoTime,Bogus"], "unknown sidecar key"),
    (["--sidecar-only", ","], "at least one key"),
])
def test_sidecar_option_errors_are_usage_errors_before_writing(tmp_path, args, words):
    src = dwigen.write_series(str(tmp_path / "in"), "siemens")
    r = run("convert", src, "-o", tmp_path / "out", "--to", "nifti1", *args)
    assert r.code == 2 and words in r.err and "Traceback" not in r.err
    assert r.err.count("\n") == 1 and r.err.startswith("medconv: error:")
    assert not (tmp_path / "out").exists()


def test_enhanced_per_frame_diffusion_sequence(tmp_path):
    src = dwigen.write_enhanced(str(tmp_path / "e.dcm"), slice_order=[1, 0, 2],
                                extra_volumes=[(1000.0, (0.0, 0.0, 0.0))])  # Philips isotropic: left out
    r = run("convert", src, tmp_path / "dwi.nii", "--sidecar")
    assert r.code == 0, r.err
    bval, bvec = _read(tmp_path / "dwi")
    assert nib.load(tmp_path / "dwi.nii").shape[3] == bval.size == len(dwigen.SCHEME)
    assert np.allclose(bval, [b for b, _ in dwigen.SCHEME])
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii", dwigen.SCHEME), 1e-4)
    side = json.loads((tmp_path / "dwi.json").read_text())
    assert side["SliceTiming"] == [0.1, 0, 0.2]  # the frames' own acquisition times
    assert side["EchoTime"] == 0.0725 and side["RepetitionTime"] == 4
    assert side["ImageType"] == ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "MAGNITUDE"]
    assert side["InPlanePhaseEncodingDirectionDICOM"] == "COL" and side["AcquisitionMatrixPE"] == 5


@pytest.mark.skipif(not os.path.exists(DCM2NIIX), reason="dcm2niix is not installed")
def test_enhanced_gradients_agree_with_dcm2niix_volume_by_volume(tmp_path):
    (tmp_path / "in").mkdir()
    src = dwigen.write_enhanced(str(tmp_path / "in" / "e.dcm"))
    (tmp_path / "ref").mkdir()
    subprocess.run([DCM2NIIX, "-f", "ref", "-o", str(tmp_path / "ref"), str(tmp_path / "in")], capture_output=True,
                   check=True)
    assert run("convert", src, tmp_path / "dwi.nii").code == 0
    ref_bval, ref_bvec = _read(tmp_path / "ref" / "ref")
    bval, bvec = _read(tmp_path / "dwi")
    ours, theirs = np.asarray(nib.load(tmp_path / "dwi.nii").dataobj), np.asarray(nib.load(tmp_path / "ref" / "ref.nii").dataobj)
    for t in range(bval.size):  # volumes may come in another order: match them by their voxels
        u = next(u for u in range(ref_bval.size) if np.array_equal(ours[..., t], theirs[..., u]))
        assert abs(bval[t] - ref_bval[u]) < 1e-3
        assert _same_direction(bvec[:, t:t + 1], ref_bvec[:, u:u + 1])


def test_uih_mosaic_data_sets_one_per_volume(tmp_path):
    """Mosaics hand one data set per volume: UIH's image-axes vectors come out in patient axes."""
    import pydicom

    from medconv.dicom import gradients, sidecar

    src = dwigen.write_series(str(tmp_path / "in"), "uih", shape=(4, 4, 1))
    files = sorted(os.listdir(src))
    datasets = [pydicom.dcmread(os.path.join(src, f)) for f in files]
    table = gradients.from_frames(datasets=datasets)
    assert table["bvals"] == [b for b, _ in dwigen.SCHEME]
    for (_, g), v in zip(dwigen.SCHEME, table["vectors"]):
        assert np.allclose(v, g, atol=1e-6)
    # a UIH mosaic without AcquisitionTime: the first of its slices' own times
    ds = datasets[0]
    block = ds.private_block(0x0065, "Image Private Header", create=True)
    items = []
    for t in ("101010.500", "101010.000", "101010.250"):
        item = pydicom.Dataset()
        item.AcquisitionTime = t
        items.append(item)
    block.add_new(0x51, "SQ", pydicom.Sequence(items))
    assert sidecar.build(datasets=[ds])["AcquisitionTime"] == "10:10:10.000000"  # the first slice's time


def test_split_echoes_keep_their_own_sidecar(tmp_path):
    import dcmgen

    d = tmp_path / "me"
    d.mkdir()
    n = 0
    for echo, te in ((1, "4.5"), (2, "9.25")):
        for k in range(3):
            n += 1
            dcmgen.write_slice(str(d / f"e{echo}_{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0, 0, 2.0 * k),
                               modality="MR", instance=n,
                               extra={"EchoNumbers": echo, "EchoTime": te,
                                      "ImageType": ["ORIGINAL", "PRIMARY", "M" if echo == 1 else "P", "ND"]})
    r = run("convert", d, "-o", tmp_path / "out", "--to", "nifti1", "--sidecar")
    assert r.code == 0, r.err
    sides = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]
    assert sorted((s["EchoNumber"], s["EchoTime"], s["ImageType"][2]) for s in sides) == [(1, 0.0045, "M"),
                                                                                           (2, 0.00925, "P")]


@pytest.mark.parametrize("orient", ["RAS", "LPI", "ASL"])
def test_bvecs_follow_a_requested_orientation(tmp_path, orient):
    src = dwigen.write_series(str(tmp_path / "in"), "standard")
    assert run("convert", src, tmp_path / "dwi.nii.gz", "--orient", orient).code == 0
    assert nib.aff2axcodes(nib.load(tmp_path / "dwi.nii.gz").affine) == tuple(orient)
    _, bvec = _read(tmp_path / "dwi")
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii.gz", dwigen.SCHEME), 1e-4)


@pytest.mark.parametrize("vendor, damage", [
    ("siemens", lambda ds: ds.private_block(0x0019, "SIEMENS MR HEADER").add_new(0x0E, "FD", [1.0, 2.0])),
    ("ge", lambda ds: ds.private_block(0x0043, "GEMS_PARM_01").add_new(0x39, "LO", "not a number")),
    ("uih", lambda ds: ds.private_block(0x0065, "Image Private Header").add_new(0x37, "LO", "x\\y")),
    ("canon", lambda ds: setattr(ds, "ImageComments", "b=oops(1,2)")),
])
def test_damaged_private_gradients_never_break_the_conversion(tmp_path, vendor, damage):
    import pydicom

    src = dwigen.write_series(str(tmp_path / "in"), vendor)
    for name in sorted(os.listdir(src))[3:6]:  # one volume's files
        ds = pydicom.dcmread(os.path.join(src, name))
        if vendor == "canon":
            del ds.DiffusionBValue
        damage(ds)
        ds.save_as(os.path.join(src, name), enforce_file_format=True)
    r = run("convert", src, tmp_path / "dwi.nii", "--sidecar")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert nib.load(tmp_path / "dwi.nii").shape[3] == len(dwigen.SCHEME)
    if os.path.exists(tmp_path / "dwi.bval"):  # a damaged direction: that volume keeps its b-value
        bval, bvec = _read(tmp_path / "dwi")
        assert bval.size == bvec.shape[1] == len(dwigen.SCHEME)
    assert json.loads((tmp_path / "dwi.json").read_text())["Modality"] == "MR"


def test_non_diffusion_mr_gets_no_gradient_files(tmp_path):
    import dcmgen

    src = tmp_path / "t1"
    dcmgen.make_series(src, modality="MR")
    assert run("convert", src, tmp_path / "t1.nii").code == 0
    assert not (tmp_path / "t1.bval").exists() and not (tmp_path / "t1.bvec").exists()


def test_long_series_with_zero_b_everywhere_reads_few_headers(tmp_path, monkeypatch):
    """A GE fMRI run keeps b=0 in every file: a few volumes tell it is no diffusion series."""
    from medconv.dicom import gradients

    scheme = [(0.0, (0.0, 0.0, 0.0))] * 20
    src = dwigen.write_series(str(tmp_path / "in"), "ge", scheme=scheme, shape=(4, 4, 1))
    calls = []
    real = gradients.frame_entry
    monkeypatch.setattr(gradients, "frame_entry", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run("convert", src, tmp_path / "f.nii").code == 0
    assert not (tmp_path / "f.bval").exists() and len(calls) <= 6
    # a long diffusion series is still found, every volume read
    calls.clear()
    scheme = [(0.0, (0.0, 0.0, 0.0))] + [(1000.0, g) for _, g in dwigen.SCHEME[1:]] * 4
    src = dwigen.write_series(str(tmp_path / "dwi"), "ge", scheme=scheme, shape=(4, 4, 1))
    assert run("convert", src, tmp_path / "d.nii").code == 0
    bval, _ = _read(tmp_path / "d")
    assert bval.size == len(scheme) and list(bval[:2]) == [0, 1000]


def test_dwi_nrrd_to_nifti_gets_gradient_files(tmp_path):
    """A DWI NRRD (its DWMRI keys) converted to NIfTI gets .bval/.bvec in the NIfTI's voxel axes."""
    src = dwigen.write_series(str(tmp_path / "in"), "standard")
    assert run("convert", src, tmp_path / "dwi.nrrd").code == 0
    assert run("convert", tmp_path / "dwi.nrrd", tmp_path / "dwi.nii").code == 0
    bval, bvec = _read(tmp_path / "dwi")
    assert np.allclose(bval, [b for b, _ in dwigen.SCHEME])
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii", dwigen.SCHEME), 1e-4)
    rec = json.loads(run("info", tmp_path / "dwi.nrrd", "--json").out)
    assert rec["n_diffusion_directions"] == 3


def test_dwi_nrrd_measurement_frame_and_ras_space(tmp_path):
    """Gradients in a rotated measurement frame of a right-anterior-superior NRRD."""
    data = np.arange(2 * 3 * 4 * 3, dtype=np.int16).reshape(3, 2, 3, 4, order="F")  # [gradient, i, j, k]
    frame = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # columns: where each axis goes
    head = ("NRRD0004\ntype: short\ndimension: 4\nspace: right-anterior-superior\nsizes: 3 2 3 4\n"
            "space directions: none (1,0,0) (0,1,0) (0,0,1)\nkinds: list domain domain domain\nendian: little\n"
            "encoding: raw\nspace origin: (0,0,0)\nmeasurement frame: (0,-1,0) (1,0,0) (0,0,1)\n"
            "modality:=DWMRI\nDWMRI_b-value:=1000\nDWMRI_gradient_0000:=0 0 0\nDWMRI_gradient_0001:=1 0 0\n"
            "DWMRI_gradient_0002:=0 0.5 0.5\n\n")
    path = tmp_path / "dwi.nrrd"
    path.write_bytes(head.encode() + data.tobytes(order="F"))
    assert run("convert", path, tmp_path / "dwi.nii").code == 0
    bval, bvec = _read(tmp_path / "dwi")
    assert np.allclose(bval, [0, 1000, 500])  # b = b-value x |g|^2
    ras = [frame @ np.array(g) for g in ([0, 0, 0], [1, 0, 0], [0, 0.70710678, 0.70710678])]  # unit, RAS
    lps = [(0.0, 0.0, 0.0)] + [(-v[0], -v[1], v[2]) for v in ras[1:]]
    assert _same_direction(bvec, _expected_bvecs(tmp_path / "dwi.nii", [(0, g) for g in lps]), 1e-6)


def test_b0_volume_without_diffusion_elements_is_b0(tmp_path):
    """Older Canon systems omit the b-value of b=0 images: in a diffusion series such a volume is b=0."""
    import pydicom

    src = dwigen.write_series(str(tmp_path / "in"), "canon")
    for name in sorted(os.listdir(src)):
        if name.startswith("v00_"):
            ds = pydicom.dcmread(os.path.join(src, name))
            del ds.DiffusionBValue
            del ds.ImageComments
            ds.save_as(os.path.join(src, name), enforce_file_format=True)
    assert run("convert", src, tmp_path / "dwi.nii").code == 0
    bval, bvec = _read(tmp_path / "dwi")
    assert list(bval) == [b for b, _ in dwigen.SCHEME] and not np.any(bvec[:, 0])
