"""The profile applied to a DICOM file's bytes, without building a pydicom Dataset.

For the common file (Part 10, explicit VR little endian, native or encapsulated pixels)
the elements are walked once, each one kept as its original bytes or re-encoded by the
same rules as `actions.Anonymizer` (which works on pydicom Datasets and stays the
reference). Anything this module is not sure about (another transfer syntax, a
character set other than ASCII in a value it must read, an unknown VR, a malformed
length, a missing pixel element) makes it return None, and the caller falls back to
the pydicom path, which handles and reports every case. The two paths give the same
data set and file meta, element for element (tests/anonymize/test_rewrite.py).
"""
from __future__ import annotations

import struct

from ..dicom.elements import (
    EXPLICIT_LE,
    EXPLICIT_LE_SYNTAXES,
    LONG_VRS,
    PIXEL_DATA,
    PIXEL_TAGS,
    UNDEFINED,
    Unsupported,
    file_meta,
    walk,
)
from . import profile
from .actions import (
    CODES,
    COMBINED,
    DATE_VRS,
    DUMMY_TEXT_VRS,
    IMPLEMENTATION_UID,
    VOCABULARY_UID_TAGS,
    implementation_name,
    is_code_attribute,
    is_image_class,
    is_registry_uid,
    lookup,
    shift_date,
    unscrubbable,
)

_NUMBER_DUMMY = {"IS": b"0 ", "DS": b"0 ", "US": b"\0\0", "SS": b"\0\0", "UL": b"\0" * 4, "SL": b"\0" * 4,
                 "FL": b"\0" * 4, "FD": b"\0" * 8, "UV": b"\0" * 8, "SV": b"\0" * 8}
_TEXT_DUMMY = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
#: file meta kept (re-encoded): anything else (AE titles, presentation addresses, private
#: information) can name a host, an application or a person
_META_KEPT = {0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020
#: what the output says about its de-identification (replaced, never kept from the input)
_RECORDED = {0x00120062, 0x00120063, 0x00120064, 0x00280303}
#: file meta pydicom would add or rewrite when missing: such files take the pydicom path
_META_NEEDED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)
_PYDICOM_ROOT = "1.2.826.0.1.3680043.8.498."


def _first(pair):
    return pair[0]


#: not a file for this path: the pydicom path takes it (the element walker's documented fall-back)
Fallback = Unsupported


def _parse(buf, pos, end) -> list:
    """The elements of one explicit VR little endian data set in buf[pos:end], each one checked
    to be written back as it is."""
    out = list(walk(buf, pos, end))
    _check(out)
    return out


def _check(found) -> None:
    """Odd lengths (pydicom pads them on writing), undefined lengths but for sequences and
    encapsulated OB/OW pixel data, and sequences read from a UN value go to the pydicom path."""
    for el in found:
        if el.items is not None:
            if el.vr != "SQ":
                raise Fallback
            for item in el.items:
                _check(item)
        elif el.length == UNDEFINED:
            if el.tag not in PIXEL_TAGS or el.vr not in ("OB", "OW"):
                raise Fallback
        elif el.length & 1:
            raise Fallback


# -- values ---------------------------------------------------------------------------
def _value(el) -> bytes:
    """The value bytes of a non-sequence element."""
    if el.length == UNDEFINED:
        raise Fallback  # encapsulated pixels are never read as a value
    return el.value()


def _text(el) -> str:
    """An ASCII value as pydicom gives it (trailing NUL and spaces gone); other bytes: fall back."""
    try:
        return _value(el).decode("ascii").rstrip("\x00 ")
    except UnicodeDecodeError:
        raise Fallback from None


def _values(el) -> list:
    text = _text(el)
    return [v.strip(" \x00") if el.vr == "UI" else v for v in text.split("\\")] if text else []


def _encode(tag: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr.encode() in LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    if len(value) > 0xFFFF:
        raise Fallback
    return head + struct.pack("<H", len(value)) + value


def _str(tag, vr, values) -> bytes:
    return _encode(tag, vr, "\\".join(values).encode("ascii"))


def _sequence(tag: int, items: list) -> bytes:
    body = b"".join(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(i)) + i for i in items)
    return _encode(tag, "SQ", body)


class ByteAnonymizer:
    """Bytes in, bytes out; the rules and state (options, pseudonyms) of an `actions.Anonymizer`."""

    def __init__(self, anonymizer):
        self.anon = anonymizer
        self.opts = anonymizer.opts
        self.pseudo = anonymizer.pseudo
        self.letters = anonymizer.letters
        self.actions = profile.actions_for(frozenset(self.letters))

    # -- the walk, mirroring Anonymizer.clean ------------------------------------------
    def _clean(self, elements, top=False, dummy=False, codes_ok=False) -> list:
        """[(tag, bytes)] of the cleaned data set, in tag order (dummy, codes_ok: as Anonymizer.clean)."""
        out = []
        keep_private = self.opts.keep_private
        actions = self.actions
        for el in elements:
            tag = el.tag
            if tag >> 16 & 1:
                if keep_private:
                    # kept private elements still get their nested public elements and UIDs
                    # cleaned: the pydicom path does that (it knows private VRs from its dictionary)
                    raise Fallback
                continue
            if tag & 0xFFFF == 0 and tag >> 16 != 0x0002:
                continue  # a group length, no longer true once the group changes
            if lookup(tag) == "X":
                continue
            if top and tag in (_PATIENT_NAME, _PATIENT_ID):
                continue
            action = actions.get(tag)  # 50xx/60xx groups went with lookup() above
            if action is None and not profile.known_public(tag):
                continue  # named by neither the table nor the dictionary: cannot be vetted
            if el.vr == "UN" and profile.dictionary_vr(tag) != "UN":
                raise Fallback  # pydicom would look the VR up in its dictionary
            new = self._unlisted(el, dummy, codes_ok) if action is None else self._apply(el, action, dummy)
            if new is not None:
                out.append((tag, new))
        out.sort(key=_first)
        return out

    def _raw(self, el) -> bytes:
        if el.vr == "SQ":
            return _sequence(el.tag, [b"".join(self._raw(e) for e in item) for item in el.items])
        return bytes(el.raw())

    def _recurse(self, el, dummy=False, codes_ok=True) -> bytes:
        return _sequence(el.tag, [b"".join(b for _, b in self._clean(item, False, dummy, codes_ok))
                                  for item in el.items])

    def _unlisted(self, el, dummy=False, codes_ok=False):
        vr = el.vr
        if vr == "SQ":
            return self._recurse(el, dummy)
        if vr == "UI":
            return self._raw(el) if self.opts.keep_uids or el.tag in VOCABULARY_UID_TAGS else self._uids(el)
        if vr in DATE_VRS:
            if self.opts.keep_dates or vr == "TM" and self.opts.shift_days is not None:
                return self._raw(el)
            if self.opts.shift_days is not None:
                return self._shift(el)
            return _encode(el.tag, vr, b"")
        if vr == "PN":
            return _encode(el.tag, vr, b"")
        if dummy and vr in DUMMY_TEXT_VRS and not (codes_ok and is_code_attribute(el.tag)) and _has_value(el):
            return _encode(el.tag, vr, b"ANONYMIZED")
        return self._raw(el)

    def _uids(self, el) -> bytes:
        values = _values(el)
        if not values:
            return self._raw(el)

        new = [v if not v or is_registry_uid(v) else self.pseudo.uid(v) for v in values]
        return _str(el.tag, "UI", new)

    def _shift(self, el) -> bytes:
        if el.vr not in ("DA", "DT"):
            return self._raw(el)
        values = _values(el)
        if not values:
            return self._raw(el)
        return _str(el.tag, el.vr, [shift_date(v, self.opts.shift_days, el.vr) for v in values])

    def _apply(self, el, action: str, dummy=False):
        vr = el.vr
        choice = COMBINED.get(action, action)
        if choice == "D" and vr in DATE_VRS and "/" in action:
            choice = "Z" if "Z" in action else "X"
        if choice == "C" and vr not in DATE_VRS and vr != "SQ":
            return self._apply(el, profile.row_for(el.tag).basic, dummy)
        if choice in ("K", "C", "U") and vr == "SQ":
            return self._recurse(el, dummy)
        if choice == "K":
            return self._raw(el)
        if choice == "X":
            return None
        if choice == "Z":
            return _encode(el.tag, vr, b"")
        if choice == "C":
            return self._shift(el) if vr in ("DA", "DT") else self._raw(el)
        if choice == "U":
            return self._uids(el) if vr == "UI" else None
        if choice == "D":
            if vr == "SQ":
                return self._recurse(el, True, False)
            if vr == "UI":
                values = _values(el)
                return _str(el.tag, vr, [self.pseudo.uid(v) for v in values]) if values else _encode(el.tag, vr, b"")
            if not _has_value(el):
                return self._raw(el)
            if vr in _NUMBER_DUMMY:
                return _encode(el.tag, vr, _NUMBER_DUMMY[vr])
            if vr == "DA":
                return _encode(el.tag, vr, b"19000101")
            if vr == "TM":
                return _encode(el.tag, vr, b"000000")
            if vr == "DT":
                return _encode(el.tag, vr, b"19000101000000")
            if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                return _encode(el.tag, vr, b"")
            if vr in _TEXT_DUMMY:
                return _encode(el.tag, vr, b"ANONYMIZED")
            raise Fallback
        raise Fallback

    # -- a whole file ---------------------------------------------------------------
    def anonymize(self, data, skip_flagged: bool = False) -> dict | None:
        """{'bytes', 'pid', 'study', 'series', 'flagged', 'suspect'} or None (use the pydicom path).

        With skip_flagged, an image flagged BurnedInAnnotation YES gives {'flagged': True, 'bytes': None}
        before any pseudonym is made for it.
        """
        try:
            return self._file(memoryview(data), skip_flagged)
        except Fallback:
            return None

    def _file(self, buf, skip_flagged=False) -> dict:
        if len(buf) < 144 or bytes(buf[128:132]) != b"DICM":
            raise Fallback
        meta, pos = file_meta(buf)
        _check(meta)
        meta_by = {e.tag: e for e in meta}
        if any(e.vr == "SQ" for e in meta) or any(t not in meta_by for t in _META_NEEDED):
            raise Fallback
        if 0x00020013 not in meta_by and _text(meta_by[0x00020012]).startswith(_PYDICOM_ROOT):
            raise Fallback  # pydicom names its version in files its own class UID marks
        ts = _text(meta_by[0x00020010])
        if ts not in EXPLICIT_LE_SYNTAXES:
            raise Fallback
        elements = _parse(buf, pos, len(buf))
        top = {e.tag: e for e in elements}
        if len(top) != len(elements) or 0x00080016 not in top:
            raise Fallback
        charset = top.get(0x00080005)
        if charset is not None and _text(charset).strip() not in ("", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"):
            raise Fallback
        if unscrubbable(_text(top[0x00080016])):
            if self.opts.keep_unscrubbable:
                raise Fallback  # the pydicom path copies it with its document
            return {"bytes": None, "unscrubbable": unscrubbable(_text(top[0x00080016])), "flagged": False,
                    "suspect": None}
        _check_pixels(top, ts)
        flagged, suspect = _burned_in(top)
        if flagged and skip_flagged:
            return {"bytes": None, "flagged": True, "suspect": None}

        original_id = _text(top[_PATIENT_ID]) if _PATIENT_ID in top else ""
        if self.opts.patient_id:
            pid = self.opts.patient_id
            self.pseudo.mapping.setdefault("patient", {})[original_id] = pid
        else:
            name = _text(top[_PATIENT_NAME]) if _PATIENT_NAME in top else ""
            pid = self.pseudo.patient(original_id or name)
        try:
            pid_bytes = pid.encode("ascii")
        except UnicodeEncodeError:
            raise Fallback from None

        body = [t for t in self._clean(elements, top=True) if t[0] not in _RECORDED]
        body.append((_PATIENT_NAME, _encode(_PATIENT_NAME, "PN", pid_bytes)))
        body.append((_PATIENT_ID, _encode(_PATIENT_ID, "LO", pid_bytes)))
        body += self._record(flagged or bool(suspect))
        body.sort(key=lambda t: t[0])
        tags = [t for t, _ in body]
        if len(set(tags)) != len(tags):
            raise Fallback
        by_tag = dict(body)
        sop = _uid_of(by_tag.get(0x00080018))
        study = _uid_of(by_tag.get(0x0020000D))
        series = _uid_of(by_tag.get(0x0020000E))

        new_meta = [(0x00020012, _encode(0x00020012, "UI", IMPLEMENTATION_UID.encode())),
                    (0x00020013, _encode(0x00020013, "SH", implementation_name().encode()))]
        for e in meta:
            if e.tag not in _META_KEPT or e.tag in (0x00020012, 0x00020013):
                continue
            if e.tag == 0x00020002:
                new_meta.append((e.tag, _encode(e.tag, "UI", _text(top[0x00080016]).encode())))
            elif e.tag == 0x00020003 and sop is not None:
                new_meta.append((e.tag, _encode(e.tag, "UI", sop.encode())))
            elif e.tag == 0x00020003 and not self.opts.keep_uids:
                # no SOPInstanceUID to follow: the file's own UID is replaced like any other
                old = _text(e).strip().rstrip("\0")
                new = old if not old or is_registry_uid(old) else self.pseudo.uid(old)
                new_meta.append((e.tag, _encode(e.tag, "UI", new.encode())))
            else:
                new_meta.append((e.tag, bytes(e.raw())))
        meta_bytes = b"".join(b for _, b in sorted(new_meta, key=lambda t: t[0]))
        group_length = _encode(0x00020000, "UL", struct.pack("<I", len(meta_bytes)))
        out = b"".join([b"\0" * 128, b"DICM", group_length, meta_bytes, *(b for _, b in body)])
        return {"bytes": out, "pid": pid, "study": study or "", "series": series or "",
                "flagged": flagged, "suspect": suspect}

    def _record(self, burned: bool) -> list:
        """The elements that say what was done (as Anonymizer.anonymize adds them)."""
        names = self.opts.codes()
        method = ["medconv PS3.15 E.1-1 basic profile"] + [CODES[n][1][:64] for n in names[1:]]
        items = []
        for n in names:
            items.append(_encode(0x00080100, "SH", CODES[n][0].encode())
                         + _encode(0x00080102, "SH", b"DCM")
                         + _encode(0x00080104, "LO", CODES[n][1].encode()))
        if self.opts.keep_dates:
            temporal = b"UNMODIFIED"
        elif self.opts.shift_days is not None:
            temporal = b"MODIFIED"
        else:
            temporal = b"REMOVED"
        return [(0x00120062, _encode(0x00120062, "CS", b"NO" if burned else b"YES")),
                (0x00120063, _str(0x00120063, "LO", method)),
                (0x00120064, _sequence(0x00120064, items)),
                (0x00280303, _encode(0x00280303, "CS", temporal))]


def _uid_of(encoded):
    if encoded is None:
        return None
    vr_long = encoded[4:6] in LONG_VRS
    return encoded[12 if vr_long else 8:].decode("ascii").rstrip("\x00 ")


def _has_value(el) -> bool:
    value = _value(el)
    if el.vr in _NUMBER_DUMMY and el.vr not in ("IS", "DS"):
        return len(value) > 0
    return value.strip(b"\x00 ") != b""


def _check_pixels(top, ts) -> None:
    """What Runner's _check_complete refuses goes to the pydicom path, which reports it."""
    if 0x00280010 not in top or 0x00280011 not in top:
        if 0x00080016 in top and is_image_class(_text(top[0x00080016])) and not any(t in top for t in PIXEL_TAGS):
            raise Fallback
        return
    pixel = next((top[t] for t in PIXEL_TAGS if t in top), None)
    if pixel is None:
        raise Fallback
    if ts != EXPLICIT_LE or pixel.tag != PIXEL_DATA:
        return

    def number(tag, default):
        if tag not in top:
            return default
        el = top[tag]
        if el.vr == "US":
            value = _value(el)
            return struct.unpack("<H", value[:2])[0] if len(value) >= 2 else default
        text = _text(el)
        try:
            return int(text.split("\\")[0]) if text else default
        except ValueError:
            raise Fallback from None

    needed = number(0x00280010, 0) * number(0x00280011, 0) * number(0x00280002, 1) * number(0x00280008, 1) \
        * number(0x00280100, 16) // 8
    if len(_value(pixel)) < needed:
        raise Fallback


def _burned_in(top) -> tuple:
    """actions.burned_in_status on the original elements."""
    from .actions import burned_in_verdict

    def text(tag):
        return _text(top[tag]) if tag in top else ""

    return burned_in_verdict(text(0x00280301), text(0x00080060), text(0x00080008).split("\\"), text(0x00080016))
