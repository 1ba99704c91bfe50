"""The PS3.15 Table E.1-1 data table and its option columns."""
from __future__ import annotations

import pytest

from medconv.anonymize import profile
from medconv.anonymize.actions import Options, shift_date

VALID = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def test_table_is_read_from_the_data_file_and_well_formed():
    assert profile.ROW_COUNT == 621 and len(profile.ROWS) == 617 and len(profile.REPEATING) == 3
    assert profile.PRIVATE_ROW is not None and profile.PRIVATE_ROW.basic == "X"
    assert "PS3.15" in profile.EDITION and "January 2025" in profile.EDITION
    for tag, row in profile.ROWS.items():
        assert row.basic in VALID, (hex(tag), row.basic)
        assert set(row.options) <= set(profile.COLUMNS), row
        assert set(row.options.values()) <= {"K", "C"}, row
        assert not (tag >> 16) & 1, row.name  # no private groups in the standard table


def test_licence_ships_with_the_table():
    import os

    folder = os.path.dirname(profile.TABLE_FILE)
    assert "Permission is hereby granted" in open(os.path.join(folder, "LICENSE"), encoding="utf-8").read()


@pytest.mark.parametrize("keyword,action", [
    ("PatientName", "Z"), ("PatientID", "Z/D"), ("PatientBirthDate", "Z"), ("AccessionNumber", "Z"),
    ("StudyDate", "Z"), ("ContentDate", "Z/D"), ("InstitutionName", "X/Z/D"), ("ReferringPhysicianName", "Z"),
    ("StudyInstanceUID", "U"), ("SOPInstanceUID", "U"), ("OtherPatientIDs", "X"), ("PatientAddress", "X"),
    ("ReferencedImageSequence", "X/Z/U*"), ("RequestAttributesSequence", "X"), ("PatientAge", "X"),
    ("StationAETitle", "X"), ("ContentSequence", "D"), ("ROIName", "Z"),
])
def test_key_rows(keyword, action):
    from pydicom.datadict import tag_for_keyword

    assert profile.ROWS[tag_for_keyword(keyword)].basic == action
    assert profile.TABLE[tag_for_keyword(keyword)][:2] == (keyword, action)


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
    # C under Retain Device Identity (an AE title to clean): no program can, the basic action stays
    assert profile.effective_action(0x00080055, Options(keep_device=True).letters()) == "X"
    # C under Clean Structured Content: kept for the user's review
    assert profile.effective_action(0x0040A730, Options(keep_descriptors=True).letters()) == "K"
    assert profile.effective_action(0x60023000, set()) == "X"  # a repeating-group row


def test_stricter_additions_never_override_the_table():
    assert profile.STRICTER and not set(profile.STRICTER) & set(profile.ROWS)
    assert profile.effective_action(0x30040006, set()) == "X"  # Dose Comment: not in the table
    assert profile.effective_action(0x00100033, set()) == "X"  # a birth date written as text
    assert profile.effective_action(0x30040006, Options(keep_descriptors=True).letters()) == "K"


def test_known_public_tags():
    assert profile.known_public(0x00100010) and profile.known_public(0x00280010)
    assert profile.known_public(0x60020010) and profile.known_public(0x00280410)  # repeating entries
    assert not profile.known_public(0x04009999) and not profile.known_public(0x00221234)


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
