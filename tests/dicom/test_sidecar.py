"""The dcm2niix-keyed sidecar: key names, units and value forms, per vendor."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import dwigen
import numpy as np
import pytest

import dcmgen
from helpers import run

DCM2NIIX = shutil.which("dcm2niix") or os.path.join(os.path.dirname(sys.executable), "dcm2niix")
#: dcm2niix keys medconv leaves out or writes differently on purpose (see docs/sidecar.md)
NOT_COMPARED = {"ConversionSoftware", "ConversionSoftwareVersion", "BidsGuess", "PulseSequenceType", "MatrixCoilMode",
                "SliceTiming", "MultibandAccelerationFactor", "PhaseEncodingDirection", "InstitutionalDepartmentName",
                "ProcedureStepDescription"}


def _equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-3 * max(1.0, abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _differences(ref: dict, ours: dict) -> dict:
    return {k: (v, ours.get(k, "<missing>")) for k, v in ref.items()
            if k not in NOT_COMPARED and not (k in ours and _equal(v, ours[k]))}


def _one_sidecar(src, tmp_path, *args):
    r = run("convert", src, "-o", tmp_path / "out", "--to", "nifti1", "--sidecar", *args)
    assert r.code == 0, r.err
    (side,) = sorted((tmp_path / "out").glob("*.json"))
    return json.loads(side.read_text())


@pytest.mark.parametrize("series, ref", [
    ("dcm_qa_fmap/In/Siemens/3_gre_field_magph", "dcm_qa_fmap/Ref/Si_3_gre_field_magph_e2_ph.json"),
    ("dcm_qa_fmap/In/Siemens/4_gre_field_ph", "dcm_qa_fmap/Ref/Si_4_gre_field_ph_e2_ph.json"),
    ("dcm_qa_enh/In/Siemens/XA10", "dcm_qa_enh/Ref/Siemens_REST1_w_SMS_PF7-8_6.json"),
])
def test_real_siemens_sidecars_equal_dcm2niix_references(tmp_path, vendor_testdata, series, ref):
    src = os.path.join(vendor_testdata, series)
    ours = _one_sidecar(src, tmp_path)
    with open(os.path.join(vendor_testdata, ref)) as fh:
        expected = json.load(fh)
    assert _differences(expected, ours) == {}


@pytest.mark.skipif(not os.path.exists(DCM2NIIX), reason="dcm2niix is not installed")
def test_siemens_mosaic_csa_keys_equal_dcm2niix(tmp_path):
    """nibabel's Siemens DWI mosaics: CSA and protocol keys as dcm2niix writes them for the same files."""
    src = dwigen.siemens_dwi_mosaics(tmp_path / "in")
    (tmp_path / "ref").mkdir()
    subprocess.run([DCM2NIIX, "-f", "ref", "-o", str(tmp_path / "ref"), str(src)], capture_output=True, check=True)
    expected = json.loads((tmp_path / "ref" / "ref.json").read_text())
    ours = _one_sidecar(src, tmp_path)
    diff = _differences(expected, ours)
    # the diffusion NIfTI is stored as dcm2niix stores it: its phase polarity is dcm2niix's too
    assert ours["PhaseEncodingDirection"] == expected["PhaseEncodingDirection"]
    assert np.allclose(ours["SliceTiming"], expected["SliceTiming"], rtol=1e-3, atol=3e-3)
    assert diff == {}


def _series(tmp_path, vendor="standard", **extra):
    d = tmp_path / "s"
    d.mkdir(parents=True)
    for k in range(3):
        dcmgen.write_slice(str(d / f"{k}.dcm"), np.full((4, 6), k, np.int16), ipp=(0, 0, 2.0 * k), modality="MR",
                           instance=k + 1, extra=dict(extra, Manufacturer=dwigen.MAKER[vendor]))
    return d


def test_units_and_value_forms(tmp_path):
    side = _one_sidecar(_series(tmp_path, SequenceVariant=["SK", "SP"], ScanOptions="PFP\\FS",
                                SoftwareVersions=["28", "LX"], ImagingFrequency="128176051",
                                AcquisitionTime="101010.5", InversionTime="900", InstitutionName="Site",
                                PatientBirthDate="19700101", AccessionNumber="A1"), tmp_path)
    assert side["SequenceVariant"] == "SK\\SP" and side["ScanOptions"] == "PFP\\FS"
    assert side["SoftwareVersions"] == "28\\LX"
    assert side["ImagingFrequency"] == 128.176051  # stored in Hz: MHz in the sidecar
    assert side["AcquisitionTime"] == "10:10:10.500000"
    assert side["EchoTime"] == 0.03 and side["RepetitionTime"] == 2 and side["InversionTime"] == 0.9
    assert side["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"] and side["InstitutionName"] == "Site"
    assert side["ImageOrientationPatientDICOM"] == [1, 0, 0, 0, 1, 0]
    text = json.dumps(side)
    assert "Secret" not in text and "ID-SECRET" not in text and "19700101" not in text and "A1" not in side.values()


def test_ge_readout_from_echo_spacing_and_asset(tmp_path):
    import pydicom

    d = _series(tmp_path, "ge", AcquisitionMatrix=[6, 0, 0, 6], InPlanePhaseEncodingDirection="COL")
    for f in sorted(d.iterdir()):
        ds = pydicom.dcmread(f)
        block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        block.add_new(0x2C, "SS", 900)  # echo spacing, us
        block.add_new(0x83, "DS", ["0.5", "1"])  # ASSET: half the lines acquired
        ds.save_as(f, enforce_file_format=True)
    side = _one_sidecar(d, tmp_path)
    assert side["ParallelReductionFactorInPlane"] == 2
    assert side["TotalReadoutTime"] == pytest.approx((3 - 1) * 900e-6)
    assert side["EffectiveEchoSpacing"] == pytest.approx((3 - 1) * 900e-6 / (4 - 1))
    assert side["ReconMatrixPE"] == 4 and side["AcquisitionMatrixPE"] == 6 and side["PhaseEncodingAxis"] == "j"


def test_philips_estimated_readout_from_water_fat_shift(tmp_path):
    import pydicom

    d = _series(tmp_path, "philips", ImagingFrequency="127.75", EchoTrainLength="63",
                InPlanePhaseEncodingDirection="ROW")
    for f in sorted(d.iterdir()):
        ds = pydicom.dcmread(f)
        ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x22, "FL", 16.9)
        ds.save_as(f, enforce_file_format=True)
    side = _one_sidecar(d, tmp_path)
    total = 16.9 / (127.75 * 3.4) * 63 / 64
    assert side["WaterFatShift"] == pytest.approx(16.9)
    assert side["EstimatedTotalReadoutTime"] == pytest.approx(total, rel=1e-5)
    assert side["EstimatedEffectiveEchoSpacing"] == pytest.approx(total / (6 - 1), rel=1e-5)  # ROW: columns
    assert "TotalReadoutTime" not in side and side["PhaseEncodingAxis"] == "i"


def test_enhanced_mixed_file_labels_only_non_magnitude_parts():
    import pydicom

    from medconv.dicom import sidecar

    ds = pydicom.Dataset()
    ds.Modality, ds.Manufacturer = "MR", "Philips"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "T1", "MIXED"]
    ds.ComplexImageComponent = "MIXED"
    frames = []
    for comp, kind in (("MAGNITUDE", "M"), ("PHASE", "P"), ("REAL", "FIELD_MAP")):
        ft = pydicom.Dataset()
        ft.FrameType, ft.ComplexImageComponent = ["ORIGINAL", "PRIMARY", "T1", kind], comp
        item = pydicom.Dataset()
        item.MRImageFrameTypeSequence = pydicom.Sequence([ft])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence(frames)

    class F:
        def __init__(self, index):
            self.ds, self.index = ds, index

    got = [sidecar.build(by_t=[[F(i)]]) for i in range(3)]
    assert [g["ImageType"][4:] for g in got] == [[], ["PHASE"], ["FIELDMAPHZ"]]
    assert got[2]["Units"] == "Hz" and "Units" not in got[0]
    ds.ComplexImageComponent = "MAGNITUDE"  # a file of one part: that part, magnitude included
    assert sidecar.build(by_t=[[F(0)]])["ImageType"][4:] == ["MAGNITUDE"]
    assert sidecar.build(by_t=[[F(0)]], part="REAL")["ImageType"][4:] == ["REAL"]  # the caller's split


def test_every_written_key_is_in_the_keys_table(tmp_path):
    """Anonymisation keeps the keys of sidecar.KEYS: every key a sidecar holds must be there."""
    from medconv.dicom import sidecar

    keys = set()
    for vendor in dwigen.VENDORS:
        src = dwigen.write_series(str(tmp_path / vendor), vendor)
        assert run("convert", src, tmp_path / f"{vendor}.nii", "--sidecar").code == 0
        keys |= set(json.loads((tmp_path / f"{vendor}.json").read_text()))
    src = dwigen.write_enhanced(str(tmp_path / "e.dcm"))
    assert run("convert", src, tmp_path / "e.nii", "--sidecar").code == 0
    keys |= set(json.loads((tmp_path / "e.json").read_text()))
    for name, extra in (("wfs", {"ImagingFrequency": "127.75", "EchoTrainLength": "63",
                                 "InPlanePhaseEncodingDirection": "COL"}),):
        import pydicom

        d = _series(tmp_path / name, "philips", **extra)
        for f in sorted(d.iterdir()):
            ds = pydicom.dcmread(f)
            ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x22, "FL", 16.9)
            ds.save_as(f, enforce_file_format=True)
        keys |= set(_one_sidecar(d, tmp_path / name))
    assert {"WaterFatShift", "EstimatedTotalReadoutTime"} <= keys
    assert keys - set(sidecar.KEYS) == set()


def test_keys_table_is_complete_and_unique():
    from medconv.dicom import sidecar

    assert len(set(sidecar.KEYS)) == len(sidecar.KEYS)
    for key, _, _ in sidecar.FIELDS:
        assert key in sidecar.KEYS
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "sidecar.md"), encoding="utf-8").read()
    missing = [k for k in sidecar.KEYS if f"`{k}`" not in doc]
    assert missing == []  # every key the sidecar may hold is documented


def test_part_of_a_split_output_from_its_name_part():
    from medconv.dicom.sidecar import part_of_suffix

    assert [part_of_suffix(x) for x in ("_e2_ph", "_real", "_imaginary", "_e1_fieldmaphz", "_e1", "", None)] == [
        "PHASE", "REAL", "IMAGINARY", "FIELDMAPHZ", None, None, None]


def test_fast_path_ct_sidecar_is_complete(tmp_path):
    """A native CT series is read without pydicom; its written sidecar still has every key."""
    d = tmp_path / "ct"
    d.mkdir()
    for k in range(3):
        dcmgen.write_slice(str(d / f"{k}.dcm"), np.full((4, 4), k, np.int16), ipp=(0, 0, 2.0 * k), modality="CT",
                           instance=k + 1, extra={"InstitutionName": "Site", "StationName": "CT01", "KVP": "120",
                                                  "ExposureTime": "1601", "XRayTubeCurrent": "170",
                                                  "PatientPosition": "FFS", "AcquisitionTime": "112936"})
    side = _one_sidecar(d, tmp_path)
    assert side["InstitutionName"] == "Site" and side["StationName"] == "CT01" and side["PatientPosition"] == "FFS"
    assert side["KVP"] == 120 and side["ExposureTime"] == 1.601 and side["XRayTubeCurrent"] == 170
    assert "SliceTiming" not in side and "PatientName" not in side


def test_siemens_mosaic_sidecar_equals_the_dcm_qa_ts_reference(tmp_path, dcm_qa_ts):
    """A Siemens mosaic with dcm2niix's sidecar beside it (an older dcm2niix: it labelled no ImageType part
    and wrote PartialFourier 1 for a full acquisition)."""
    ours = _one_sidecar(os.path.join(dcm_qa_ts, "In", "1.dcm"), tmp_path)
    with open(os.path.join(dcm_qa_ts, "Ref", "1.json")) as fh:
        expected = json.load(fh)
    assert set(_differences(expected, ours)) <= {"ImageType", "PartialFourier"}
    assert ours["DelayTime"] == 0.5 and ours["ImageType"][:5] == expected["ImageType"]


def test_ge_field_map_echo_times_from_the_velocity_encode_scale(tmp_path):
    """A GE direct field map (Hz): EchoTime2 - EchoTime1 = 1 / (2 pi |VelocityEncodeScale|)."""
    import pydicom

    from medconv.dicom import sidecar

    ds = pydicom.Dataset()
    ds.Modality, ds.Manufacturer, ds.EchoTime = "MR", "GE MEDICAL SYSTEMS", "4.94"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.private_block(0x0019, "GEMS_ACQU_01", create=True).add_new(0xE2, "DS", "-161.087997")
    field = sidecar.build(ds, part="FIELDMAPHZ")
    assert field["EchoTime1"] == 0.00494
    assert field["EchoTime2"] == pytest.approx(0.00494 + 1 / (2 * np.pi * 161.087997), rel=1e-6)  # 988 us later
    assert field["Units"] == "Hz" and field["ImageType"][-1] == "FIELDMAPHZ"
    assert "EchoTime1" not in sidecar.build(ds)  # the magnitude image: one echo


@pytest.mark.parametrize("orient", [None, "LPS", "LAS", "LPI", "PLS", "SAR"])
def test_phase_encoding_and_slice_timing_follow_the_written_voxel_axes(tmp_path, orient):
    """The phase-encoding direction and the slice times belong to world directions and slices: whatever
    voxel order the NIfTI is written in (DICOM's, dcm2niix's bottom-up rows for diffusion, --orient),
    its sidecar names the same world direction and gives each slice its own time."""
    import nibabel

    import medconv

    src = dwigen.siemens_dwi_mosaics(tmp_path / "in")
    base = medconv.read(src)  # DICOM's voxel order
    side0 = base.metadata["sidecar"]
    assert side0["PhaseEncodingDirection"] in ("j", "j-")
    args = ["--orient", orient] if orient else []
    side = _one_sidecar(src, tmp_path, *args)
    out = nibabel.load(next((tmp_path / "out").glob("*.nii.gz")))

    def world(affine, letter_sign):
        axis = "ijk".index(letter_sign[0])
        v = np.asarray(affine)[:3, axis]
        return v / np.linalg.norm(v) * (-1 if letter_sign.endswith("-") else 1)

    assert np.allclose(world(out.affine, side["PhaseEncodingDirection"]),
                       world(base.affine, side0["PhaseEncodingDirection"]), atol=1e-3)
    # each slice keeps its time: match the written slices to DICOM's by world position
    axis = "ijk".index(side.get("SliceEncodingDirection", "k"))
    base_k = base.affine[:3, 2] / np.linalg.norm(base.affine[:3, 2]) ** 2
    for n, t in enumerate(side["SliceTiming"]):
        voxel = np.zeros(4)
        voxel[axis], voxel[3] = n, 1
        pos = out.affine @ voxel
        k = round(float((pos[:3] - base.affine[:3, 3]) @ base_k))
        assert side0["SliceTiming"][k] == t
