"""dcm2niix's vendor validation corpora (when present beside the project): medconv's outputs against
dcm2niix's reference NIfTI, matched as dcm_qa_score matches them (canonical orientation, affine within
0.05 mm, values within 1e-3 of the largest)."""
import os

import numpy as np
import pytest

from helpers import VENDOR_TESTDATA_ENV, run

nib = pytest.importorskip("nibabel")
VENDOR = os.environ.get(VENDOR_TESTDATA_ENV, "")
pytestmark = pytest.mark.skipif(not os.path.isdir(VENDOR),
                                reason=f"needs dcm2niix's vendor corpora (real scanner exports, not in the "
                                       f"repository): set {VENDOR_TESTDATA_ENV} to their folder")


def _same(out, ref):
    a, b = nib.as_closest_canonical(nib.load(str(out))), nib.as_closest_canonical(nib.load(str(ref)))
    assert a.shape == b.shape, (out, a.shape, b.shape)
    assert np.abs(a.affine - b.affine).max() <= 0.05, out
    x, y = a.get_fdata(dtype=np.float32), b.get_fdata(dtype=np.float32)
    assert np.abs(x - y).max() <= 1e-3 * max(1.0, float(np.abs(y).max())), out


def _convert(src, out):
    r = run("convert", src, "-o", out, "--to", "nifti1")
    assert r.code == 0, r.err
    return sorted(p for p in os.listdir(out) if p.endswith(".nii.gz"))


def _path(*parts):
    p = os.path.join(VENDOR, *parts)
    if not os.path.exists(p):
        pytest.skip(f"{p} is not in this copy of the corpora")
    return p


def test_ge_direct_field_map(tmp_path):
    names = _convert(_path("dcm_qa_fmap", "In", "GE", "6_CV_Neuro"), tmp_path)
    assert names == ["6_B0map.nii.gz", "6_B0map_fieldmaphz.nii.gz"]
    ref = _path("dcm_qa_fmap", "Ref")
    _same(tmp_path / names[0], os.path.join(ref, "GE_6_CV_Neuro_HH_Adv.nii"))
    _same(tmp_path / names[1], os.path.join(ref, "GE_6_CV_Neuro_HH_Adv_fieldmaphz.nii"))


def test_philips_b0_map_scaled_and_split(tmp_path):
    names = _convert(_path("dcm_qa_fmap", "In", "Philips", "fmap", "IM_0027_fMAP.dcm"), tmp_path)
    assert names == ["801_B0_NS_e1.nii.gz", "801_B0_NS_e2_fieldmaphz.nii.gz"]
    ref = _path("dcm_qa_fmap", "Ref")
    _same(tmp_path / names[0], os.path.join(ref, "Ph_801_WIP_B0_NS_e1.nii"))
    _same(tmp_path / names[1], os.path.join(ref, "Ph_801_WIP_B0_NS_e2_fieldmaphz.nii"))


def test_philips_enhanced_dual_echo_magnitude_phase(tmp_path):
    names = _convert(_path("dcm_qa_philips_enh", "In", "enh", "2001_WIP_fcMRI_Field_Mapping_e2_phMag.dcm"), tmp_path)
    suffixes = ("e1", "e1_ph", "e2", "e2_ph")
    assert names == [f"2001_fcMRI_Field_Mapping_{s}.nii.gz" for s in suffixes]
    for name, s in zip(names, suffixes):
        _same(tmp_path / name, _path("dcm_qa_philips_enh", "Ref", f"2001_WIP_fcMRI_Field_Mapping_enh_{s}.nii"))


def test_philips_pcasl_in_dimension_order(tmp_path):
    src = _path("dcm_qa_philips_enh", "In", "enh", "1903_WIP_SOURCE_-_3DpCASL.dcm")
    r = run("convert", src, tmp_path / "asl.nii.gz")
    assert r.code == 0, r.err
    _same(tmp_path / "asl.nii.gz", _path("dcm_qa_philips_enh", "Ref", "1903_WIP_SOURCE_-_3DpCASL_enh.nii"))


def test_siemens_magnitude_phase_echoes(tmp_path):
    names = _convert(_path("dcm_qa_fmap", "In", "Siemens"), tmp_path)
    ref = _path("dcm_qa_fmap", "Ref")
    pairs = {"2_gre_field_magph_e1": "Si_2_gre_field_magph_e1", "2_gre_field_magph_e2": "Si_2_gre_field_magph_e2",
             "3_gre_field_magph_e2_ph": "Si_3_gre_field_magph_e2_ph", "4_gre_field_ph_e2_ph": "Si_4_gre_field_ph_e2_ph",
             "5_gre_field_mag_e1": "Si_5_gre_field_mag_e1", "5_gre_field_mag_e2": "Si_5_gre_field_mag_e2"}
    assert names == sorted(f"{k}.nii.gz" for k in pairs)
    for mine, theirs in pairs.items():
        _same(tmp_path / f"{mine}.nii.gz", os.path.join(ref, f"{theirs}.nii"))
