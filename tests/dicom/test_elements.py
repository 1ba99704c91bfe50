"""The DICOM element walker (medconv.dicom.elements) on bytes built here: every encoding, sequences
and items of both lengths, encapsulated pixel data, and what it refuses (Unsupported) or finds cut
short (Truncated, with the offsets)."""
from __future__ import annotations

import struct

import pytest

from medconv.dicom import elements
from medconv.dicom.elements import LONG_VRS, MAX_DEPTH, Truncated, Unsupported, walk

ROWS, PATIENT, SEQ, CODE, PIXEL = 0x00280010, 0x00100010, 0x00081140, 0x00080100, 0x7FE00010


def el(tag, vr, value, *, big=False, explicit=True, length=None):
    """One element's bytes (`length` overrides the length written in the header)."""
    order = ">" if big else "<"
    n = len(value) if length is None else length
    if not explicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, n) + value
    if vr.encode() in LONG_VRS:
        return struct.pack(f"{order}HH2s2xI", tag >> 16, tag & 0xFFFF, vr.encode(), n) + value
    return struct.pack(f"{order}HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), n) + value


def delim(tag, length=0, big=False):
    return struct.pack(">HHI" if big else "<HHI", tag >> 16, tag & 0xFFFF, length)


def item(body, *, defined=True, big=False):
    if defined:
        return delim(elements.ITEM, len(body), big) + body
    return delim(elements.ITEM, elements.UNDEFINED, big) + body + delim(elements.ITEM_END, 0, big)


def sequence(items, *, defined=True, big=False, explicit=True, vr="SQ", tag=SEQ):
    body = b"".join(items)
    if defined:
        return el(tag, vr, body, big=big, explicit=explicit)
    return el(tag, vr, b"", big=big, explicit=explicit, length=elements.UNDEFINED) + body + \
        delim(elements.SEQ_END, 0, big)


def part10(body, ts=elements.EXPLICIT_LE):
    uid = ts.encode() + (b"\0" if len(ts) % 2 else b"")
    meta = el(0x00020001, "OB", b"\0\1") + el(0x00020010, "UI", uid)
    return b"\0" * 128 + b"DICM" + el(0x00020000, "UL", struct.pack("<I", len(meta))) + meta + body


@pytest.mark.parametrize("explicit,big", [(True, False), (False, False), (True, True)],
                         ids=["explicit-le", "implicit-le", "explicit-be"])
def test_every_encoding_gives_tags_vrs_offsets_and_lengths(explicit, big):
    rows = struct.pack(">H" if big else "<H", 512)
    buf = el(PATIENT, "PN", b"Doe^J ", big=big, explicit=explicit) + el(ROWS, "US", rows, big=big, explicit=explicit) \
        + el(0x00091010, "OB", b"\1\2\3\4", big=big, explicit=explicit)
    found = list(walk(buf, explicit=explicit, big=big))
    assert [e.tag for e in found] == [PATIENT, ROWS, 0x00091010]
    assert [e.vr for e in found] == (["PN", "US", "OB"] if explicit else [None, None, None])
    assert found[0].offset == 0 and found[0].value() == b"Doe^J " and found[0].text() == "Doe^J"
    assert found[1].value() == rows and found[1].offset == found[0].end
    assert found[2].value_offset == found[2].offset + (12 if explicit else 8) and found[2].length == 4
    assert found[2].end == len(buf) and bytes(found[2].raw()) == buf[found[2].offset:]


@pytest.mark.parametrize("seq_defined", [True, False])
@pytest.mark.parametrize("item_defined", [True, False])
def test_sequences_and_items_of_either_length(seq_defined, item_defined):
    inner = sequence([item(el(CODE, "SH", b"T-D1"), defined=item_defined)], defined=seq_defined, tag=0x00081150)
    outer = sequence([item(el(CODE, "SH", b"A1") + inner, defined=item_defined),
                      item(b"", defined=item_defined)], defined=seq_defined)
    buf = outer + el(ROWS, "US", b"\2\0")
    seq, rows = walk(buf)
    assert seq.vr == "SQ" and len(seq.items) == 2 and seq.items[1] == []
    assert seq.length == (len(outer) - 12 if seq_defined else elements.UNDEFINED)
    code, nested = seq.items[0]
    assert code.text() == "A1" and nested.tag == 0x00081150
    assert nested.items[0][0].text() == "T-D1"
    assert seq.end == len(outer) and rows.tag == ROWS
    one = elements.element_at(buf, 0)
    assert one.end == seq.end and len(one.items) == 2 and elements.element_at(buf, seq.end).tag == ROWS


@pytest.mark.parametrize("seq_defined", [True, False])
@pytest.mark.parametrize("item_defined", [True, False])
@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "implicit"])
def test_keep_steps_over_the_elements_not_wanted(seq_defined, item_defined, explicit):
    """keep=: items hold only the kept elements, a sequence not kept comes unread; every end as without."""
    other = 0x00081150

    def seq(items, tag):
        return sequence(items, defined=seq_defined, tag=tag, explicit=explicit, vr="SQ" if explicit else "")

    inner = seq([item(el(CODE, "SH", b"T-D1", explicit=explicit), defined=item_defined)], other)
    body = el(CODE, "SH", b"A1", explicit=explicit) + el(PATIENT, "PN", b"Doe^J ", explicit=explicit) + inner \
        + el(0x00091010, "OB", b"\1\2", explicit=explicit)
    outer = seq([item(body, defined=item_defined), item(el(ROWS, "US", b"\2\0", explicit=explicit),
                                                          defined=item_defined)], SEQ)
    buf = outer + inner + el(ROWS, "US", b"\2\0", explicit=explicit)
    names = {SEQ, other}
    full = list(walk(buf, explicit=explicit, sequences=names))
    kept = list(walk(buf, explicit=explicit, sequences=names, keep={SEQ, CODE, ROWS}))
    assert [(e.tag, e.offset, e.end) for e in kept] == [(e.tag, e.offset, e.end) for e in full]
    seq_el, skipped, rows = kept
    assert [[(c.tag, bytes(c.value())) for c in it] for it in seq_el.items] == [[(CODE, b"A1")], [(ROWS, b"\2\0")]]
    assert skipped.tag == other and skipped.items is None and full[1].items is not None
    assert rows.value() == b"\2\0"
    with pytest.raises(Truncated):  # a value cut short is found whether kept or not
        list(walk(buf[:len(outer) - 12], explicit=explicit, sequences=names, keep={SEQ}))


def test_implicit_vr_sequences_by_tag_or_undefined_length():
    body = el(CODE, "", b"AB", explicit=False)
    defined = el(SEQ, "", item(body), explicit=False)
    undefined = el(0x00081150, "", b"", explicit=False, length=elements.UNDEFINED) + item(body, defined=False) \
        + delim(elements.SEQ_END)
    a, b = walk(defined + undefined, explicit=False, sequences={SEQ})
    assert a.items[0][0].value() == b"AB" and b.items[0][0].value() == b"AB"
    (plain, _) = walk(defined + undefined, explicit=False)  # not named a sequence: its bytes
    assert plain.items is None and plain.length == len(item(body))


def test_undefined_length_un_holds_implicit_little_endian_items():
    body = el(CODE, "", b"AB", explicit=False)
    buf = el(0x00091010, "UN", b"", length=elements.UNDEFINED) + item(body, defined=False) + delim(elements.SEQ_END)
    (un,) = walk(buf)
    assert un.vr == "UN" and un.items[0][0].tag == CODE and un.end == len(buf)


def test_encapsulated_pixel_data_followed_to_its_delimiter():
    fragments = delim(elements.ITEM, 0) + delim(elements.ITEM, 4) + b"JPEG" + delim(elements.SEQ_END)
    buf = el(PIXEL, "OB", b"", length=elements.UNDEFINED) + fragments
    (pixels,) = walk(buf)
    assert pixels.length == elements.UNDEFINED and pixels.items is None and pixels.end == len(buf)
    assert elements.encapsulated_end(buf, 12) == len(buf)
    with pytest.raises(Truncated) as cut:
        list(walk(buf[:-10]))
    assert cut.value.at == 12 + 8 and cut.value.offset == len(buf) - 10
    assert str(cut.value) == "file ends inside a pixel data fragment: 4 bytes declared, 2 present"
    with pytest.raises(Truncated, match="encapsulated pixel data"):
        list(walk(buf[:-8]))
    bad = el(PIXEL, "OB", b"", length=elements.UNDEFINED) + delim(elements.ITEM, elements.UNDEFINED)
    with pytest.raises(Unsupported) as exc:
        list(walk(bad))
    assert not isinstance(exc.value, Truncated)


def test_stop_yields_the_pixel_element_without_reading_its_value():
    buf = el(ROWS, "US", b"\2\0") + el(PIXEL, "OW", b"", length=1 << 20)  # the value is not in the bytes
    rows, pixels = walk(buf, stop=elements.PIXEL_TAGS)
    assert pixels.tag == PIXEL and pixels.end is None and pixels.value_offset == 10 + 12 and pixels.length == 1 << 20
    with pytest.raises(Truncated):
        list(walk(buf))


def test_truncated_element_says_where():
    buf = el(PATIENT, "PN", b"Doe^J ") + el(0x00091010, "OB", b"\1" * 100)
    with pytest.raises(Truncated) as cut:
        list(walk(buf[:-40]))
    assert cut.value.at == 14 and cut.value.offset == len(buf) - 40
    assert str(cut.value) == "file ends inside element (0009,1010): 100 bytes declared, 60 present"
    with pytest.raises(Truncated, match="inside an element header at byte 14") as cut:
        list(walk(buf[:18]))
    assert cut.value.at == 14 and cut.value.offset == 18
    with pytest.raises(Truncated, match=r"inside the header of element \(0009,1010\)"):
        list(walk(buf[:24]))
    seq = sequence([item(el(CODE, "SH", b"AB"), defined=False)], defined=False)
    with pytest.raises(Truncated, match=r"no closing delimiter"):
        list(walk(seq[:-8]))
    assert isinstance(cut.value, Unsupported)  # the documented fall-back catches it


def test_lengths_that_disagree_are_unsupported_not_truncated():
    # an element running past its item, inside a sequence that fits in the bytes
    inner = el(CODE, "SH", b"ABCD")
    bad_item = delim(elements.ITEM, 6) + inner
    buf = el(SEQ, "SQ", bad_item)
    with pytest.raises(Unsupported) as exc:
        list(walk(buf))
    assert not isinstance(exc.value, Truncated)
    # an item running past its (defined-length) sequence, which ends where the bytes end
    buf = el(SEQ, "SQ", delim(elements.ITEM, 40) + inner)
    with pytest.raises(Unsupported) as exc:
        list(walk(buf))
    assert not isinstance(exc.value, Truncated)
    # a delimiter where an element belongs, an unknown VR, an undefined length on a plain element
    for buf in (delim(elements.ITEM_END) + inner, b"\x10\x00\x10\x00ZZ\x02\x00AB",
                el(PATIENT, "UT", b"", length=elements.UNDEFINED) + inner):
        with pytest.raises(Unsupported) as exc:
            list(walk(buf))
        assert not isinstance(exc.value, Truncated)


def test_odd_lengths_are_read_as_stored():
    buf = el(0x00091010, "LO", b"XYZ") + el(ROWS, "US", b"\2\0")
    odd, rows = walk(buf)
    assert odd.length == 3 and odd.value() == b"XYZ" and rows.value() == b"\2\0"


def _nested(levels: int) -> bytes:
    body = el(CODE, "SH", b"AB")
    for _ in range(levels):
        body = sequence([item(body)])
    return body


def test_nesting_deeper_than_max_depth_is_unsupported():
    list(walk(_nested(MAX_DEPTH)))
    with pytest.raises(Unsupported, match="nested") as exc:
        list(walk(_nested(MAX_DEPTH + 1)))
    assert not isinstance(exc.value, Truncated)


def test_file_meta_transfer_syntax_and_sniffing():
    data = part10(el(PATIENT, "PN", b"Doe^J "), elements.IMPLICIT_LE)
    meta, start = elements.file_meta(data)
    assert [e.tag for e in meta] == [0x00020000, 0x00020001, 0x00020010]
    assert elements.transfer_syntax(meta) == elements.IMPLICIT_LE and data[start:start + 2] == b"\x10\x00"
    assert elements.NATIVE[elements.transfer_syntax(meta)] == (False, False)
    assert elements.looks_like_dicom(data) and elements.looks_like_dicom(data[132:])
    assert elements.looks_like_dicom(el(0x00080016, "UI", b"1.2\0", explicit=False))
    assert not elements.looks_like_dicom(b"\x5c\x01\x00\x00" + b"\0" * 400)  # a NIfTI-1 header
    assert elements.file_meta(b"\x10\x00\x10\x00PN\x02\x00AB") == ([], 0)
    assert elements.EXPLICIT_LE in elements.EXPLICIT_LE_SYNTAXES and "1.2.840.10008.1.2.4.50" in elements.ENCAPSULATED
    assert elements.DEFLATED not in elements.EXPLICIT_LE_SYNTAXES


def test_the_old_fall_back_names_are_the_walkers():
    from medconv.anonymize import rewrite
    from medconv.dicom import header_view

    assert header_view.Unsupported is Unsupported and rewrite.Fallback is Unsupported


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_RLE.dcm", "rtplan.dcm"])
def test_agrees_with_pydicom_on_real_files(name):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    data = open(path, "rb").read()
    meta, start = elements.file_meta(data)
    explicit, big = elements.NATIVE.get(elements.transfer_syntax(meta), (True, False))
    found = list(walk(data, start, explicit=explicit, big=big))
    ds = pydicom.dcmread(path)
    assert [e.tag for e in found] == [int(e.tag) for e in ds]
    assert found[-1].end == len(data)
    for e in found:
        if e.items is not None:
            assert len(e.items) == len(ds[e.tag].value)
