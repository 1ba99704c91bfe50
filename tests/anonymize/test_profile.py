"""The PS3.15 Table E.1-1 data table and its option columns."""
from __future__ import annotations

import pytest

from medconv.anonymize import profile
from medconv.anonymize.actions import Options, shift_date

VALID = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def test_table_is_large_and_well_formed():
    assert len(profile.TABLE) >= 400
    assert "PS3.15" in profile.EDITION
    for tag, (keyword, action, flags) in profile.TABLE.items():
        assert action in VALID, (hex(tag), action)
        assert set(flags) <= set(profile.OPTION_ACTION), (keyword, flags)
        assert not (tag >> 16) & 1, keyword  # no private groups in the standard table


@pytest.mark.parametrize("keyword,action", [
    ("PatientName", "Z"), ("PatientID", "Z"), ("PatientBirthDate", "Z"), ("AccessionNumber", "Z"),
    ("StudyDate", "Z"), ("ContentDate", "Z/D"), ("InstitutionName", "X/Z/D"), ("ReferringPhysicianName", "Z"),
    ("StudyInstanceUID", "U"), ("SOPInstanceUID", "U"), ("OtherPatientIDs", "X"), ("PatientAddress", "X"),
    ("ReferencedImageSequence", "X/Z/U*"), ("RequestAttributesSequence", "X"), ("PatientAge", "X"),
])
def test_key_rows(keyword, action):
    rows = {kw: (tag, a) for tag, (kw, a, _) in profile.TABLE.items()}
    assert rows[keyword][1] == action
    from pydicom.datadict import tag_for_keyword

    assert rows[keyword][0] == tag_for_keyword(keyword)


def test_keywords_match_the_dictionary():
    from pydicom.datadict import keyword_for_tag

    known = [(tag, kw) for tag, (kw, _, _) in profile.TABLE.items() if keyword_for_tag(tag)]
    assert len(known) > 350
    wrong = [(hex(t), kw, keyword_for_tag(t)) for t, kw in known if keyword_for_tag(t) != kw]
    # Retired/renamed attributes may carry a different pydicom keyword; the list must stay tiny.
    assert not wrong, wrong


def test_options_change_the_action():
    tag = 0x00080020  # StudyDate
    assert profile.effective_action(tag, set()) == "Z"
    assert profile.effective_action(tag, Options(keep_dates=True).letters()) == "K"
    assert profile.effective_action(tag, Options(shift_days=3).letters()) == "C"
    assert profile.effective_action(0x00101010, Options(keep_patient_characteristics=True).letters()) == "K"
    assert profile.effective_action(0x00181000, Options(keep_device=True).letters()) == "K"
    assert profile.effective_action(0x0020000D, Options(keep_uids=True).letters()) == "K"
    assert profile.effective_action(0x00081030, Options(keep_descriptors=True).letters()) == "K"
    assert profile.effective_action(0x00100010, Options(keep_dates=True, keep_uids=True).letters()) == "Z"
    assert profile.effective_action(0x7FE00010, set()) is None


@pytest.mark.parametrize("value,days,vr,expected", [
    ("20240301", -1, "DA", "20240229"), ("20231231", 1, "DA", "20240101"),
    ("20240305101112.5+0100", -10, "DT", "20240224101112.5+0100"), ("bogus", 3, "DA", ""),
    ("20240230", 1, "DA", ""),
])
def test_shift_date(value, days, vr, expected):
    assert shift_date(value, days, vr) == expected


def test_registry_uids_are_all_under_the_dicom_root():
    """is_registry_uid decides by the 1.2.840.10008 root alone; pydicom's copy of the registry agrees."""
    from pydicom.uid import UID_dictionary

    from medconv.anonymize.actions import is_registry_uid

    assert len(UID_dictionary) > 300
    assert all(is_registry_uid(uid) for uid in UID_dictionary)
    assert not is_registry_uid("1.2.826.0.1.3680043.8.498.1") and not is_registry_uid("2.25.1234")
