"""A small pure-Python header parser for the common case (native little/big endian, no
functional groups), so scanning a large series neither imports pydicom nor builds a full
Dataset per file. Anything unusual returns None and pydicom reads the file instead.
"""
from __future__ import annotations

import struct

from .guards import MAX_DEPTH, too_deep

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_NATIVE = {"1.2.840.10008.1.2": (False, False), "1.2.840.10008.1.2.1": (True, False),
           "1.2.840.10008.1.2.2": (True, True)}
_PIXEL = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}

#: keyword -> (tag, VR used when the file is implicit VR)
TAGS = {
    "SpecificCharacterSet": (0x00080005, "CS"), "SOPClassUID": (0x00080016, "UI"), "SOPInstanceUID": (0x00080018, "UI"), "ImageType": (0x00080008, "CS"),
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"), "SeriesDescription": (0x0008103E, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"), "AcquisitionTime": (0x00080032, "TM"),
    "ScanningSequence": (0x00180020, "CS"), "SequenceVariant": (0x00180021, "CS"),
    "SliceThickness": (0x00180050, "DS"), "KVP": (0x00180060, "DS"), "RepetitionTime": (0x00180080, "DS"),
    "EchoTime": (0x00180081, "DS"), "InversionTime": (0x00180082, "DS"), "ImagingFrequency": (0x00180084, "DS"),
    "EchoNumbers": (0x00180086, "IS"), "MagneticFieldStrength": (0x00180087, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"), "PixelBandwidth": (0x00180095, "DS"),
    "ProtocolName": (0x00181030, "LO"), "TriggerTime": (0x00181060, "DS"), "Exposure": (0x00181152, "IS"),
    "ConvolutionKernel": (0x00181210, "SH"), "FlipAngle": (0x00181314, "DS"),
    "BodyPartExamined": (0x00180015, "CS"), "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"), "AcquisitionNumber": (0x00200012, "IS"), "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"), "ImageOrientationPatient": (0x00200037, "DS"),
    "TemporalPositionIdentifier": (0x00200100, "IS"), "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"), "PlanarConfiguration": (0x00280006, "US"),
    "NumberOfFrames": (0x00280008, "IS"), "Rows": (0x00280010, "US"), "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"), "BitsAllocated": (0x00280100, "US"), "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"), "PixelPaddingValue": (0x00280120, "US"),
    "WindowCenter": (0x00281050, "DS"), "WindowWidth": (0x00281051, "DS"), "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"), "GridFrameOffsetVector": (0x3004000C, "DS"),
    "DoseGridScaling": (0x3004000E, "DS"), "NominalCardiacTriggerDelayTime": (0x00209153, "FD"),
    "DiffusionBValue": (0x00189087, "FD"), "EffectiveEchoTime": (0x00189082, "FD"),
    # vendor private elements read by frame rules (Philips scale slope; GE sequence name, UserData12, image type)
    "PhilipsScaleSlope": (0x2005100E, "FL"), "GEPulseSequenceName": (0x0019109C, "LO"),
    "GEUserData12": (0x001910B3, "DS"), "GEImageType": (0x0043102F, "SS"),
    # enhanced multi-frame: the functional groups and what Frame reads inside them
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"), "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    "PlanePositionSequence": (0x00209113, "SQ"), "PlaneOrientationSequence": (0x00209116, "SQ"),
    "PixelMeasuresSequence": (0x00289110, "SQ"), "PixelValueTransformationSequence": (0x00289145, "SQ"),
    "FrameContentSequence": (0x00209111, "SQ"), "MREchoSequence": (0x00189114, "SQ"),
    "CardiacSynchronizationSequence": (0x00189118, "SQ"), "MRDiffusionSequence": (0x00189117, "SQ"),
    "DiffusionGradientDirectionSequence": (0x00189076, "SQ"), "MRImageFrameTypeSequence": (0x00189226, "SQ"),
    "CTImageFrameTypeSequence": (0x00189329, "SQ"), "MRSpectroscopyFrameTypeSequence": (0x00189227, "SQ"),
    "XAXRFFrameCharacteristicsSequence": (0x00189412, "SQ"), "PETFrameTypeSequence": (0x00189751, "SQ"),
    "PhilipsPrivateFrameSequence": (0x2005140F, "SQ"),
    "FrameType": (0x00089007, "CS"), "ComplexImageComponent": (0x00089208, "CS"),
    "DimensionIndexValues": (0x00209157, "UL"), "TemporalPositionIndex": (0x00209128, "UL"),
    "FrameAcquisitionDateTime": (0x00189074, "DT"), "DiffusionGradientOrientation": (0x00189089, "FD"),
    "DiffusionDirectionality": (0x00189075, "CS"), "PhilipsDiffusionDirection": (0x20011004, "CS"),
}
#: value representations whose text follows the Specific Character Set
_CHARSET_VRS = {"SH", "LO", "ST", "LT", "PN", "UC", "UT"}
#: single-byte and UTF-8 character sets decoded without pydicom (DICOM term -> Python codec)
_CHARSETS = {"ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 101": "iso8859_2", "ISO_IR 109": "iso8859_3",
             "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5", "ISO_IR 127": "iso8859_6",
             "ISO_IR 126": "iso8859_7", "ISO_IR 138": "iso8859_8", "ISO_IR 148": "iso8859_9",
             "ISO_IR 166": "tis_620", "ISO_IR 192": "utf-8", "GB18030": "gb18030", "GBK": "gbk",
             "ISO_IR 13": "shift_jis"}
#: tag -> (keyword, VR used when the file is implicit VR)
BY_TAG = {tag: (keyword, vr) for keyword, (tag, vr) in TAGS.items()}
#: sequences parsed into items (the functional groups and the sequences Frame reads in them)
_SEQUENCES = {tag for tag, vr in TAGS.values() if vr == "SQ"}
# DICOMDIR, palette, Modality LUT
_NEEDS_PYDICOM = {0x00041220, 0x00281101, 0x00283000}


class Unsupported(Exception):
    """The light parser steps aside; pydicom reads this file."""


class _Meta:
    def __init__(self, values):
        self._values = values

    def get(self, key, default=None):
        return self._values.get(key, default)

    def __contains__(self, key):
        return key in self._values

    def __getattr__(self, key):
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None


def decode_text(raw: bytes, charset) -> str:
    """Text in the file's Specific Character Set (`charset`: that element's raw bytes, None when the
    file has none: Latin-1), as pydicom decodes it."""
    if charset is None:
        return raw.decode("latin-1")
    terms = [t.strip() for t in bytes(charset).decode("latin-1").rstrip("\x00 ").split("\\")]
    terms = [t for t in terms if t] or ["ISO_IR 6"]
    if len(terms) == 1 and terms[0] in _CHARSETS:
        return raw.decode(_CHARSETS[terms[0]], "replace")
    from pydicom.charset import (
        decode_bytes,  # code extensions (ISO 2022 escapes): pydicom's rules
    )

    try:
        return decode_bytes(raw, terms, {"\\", "^", "="})
    except Exception:  # an unknown term: the bytes as Latin-1, as pydicom falls back
        return raw.decode("latin-1")


def _decode(vr, raw, endian, default=None, charset=None):
    """An element's value from its raw bytes: numbers for binary VRs, text (a list when multi-valued)."""
    if vr == "SQ":
        return raw if raw else default
    if vr in _BINARY:
        code = _BINARY[vr]
        n = len(raw) // struct.calcsize(code)
        if n == 0:
            return default
        values = struct.unpack(f"{endian}{n}{code}", raw[: n * struct.calcsize(code)])
        return values[0] if n == 1 else list(values)
    text = (decode_text(raw, charset) if vr in _CHARSET_VRS else raw.decode("latin-1")).rstrip("\x00 ").strip()
    if text == "":
        return default
    if vr in ("DS", "IS", "CS") and "\\" in text:
        return [v.strip() for v in text.split("\\")]
    return text


class LightItem:
    """One item of a sequence parsed by the light parser: the known elements, decoded on access."""

    is_light = True

    __slots__ = ("_el", "_endian", "_values")

    def __init__(self, elements, endian):
        self._el = elements  # tag -> (vr or None, raw bytes, or a list of LightItem for sequences)
        self._endian = endian
        self._values = None  # decoded values, kept once asked for (the shared groups serve every frame)

    def get_known(self, keyword, default=None):
        entry = TAGS.get(keyword)
        return default if entry is None else self.get_tag(entry[0], default)

    get = get_known

    def get_tag(self, tag, default=None):
        """The value of element `tag` (an int, private tags included) when the parser kept it."""
        values = self._values
        if values is None:
            values = self._values = {}
        try:
            value = values[tag]
        except KeyError:
            if tag not in self._el:
                return default
            vr, raw = self._el[tag]
            known = BY_TAG.get(tag)
            vr = known[1] if known is not None and vr in (None, "UN") else vr
            value = values[tag] = _decode(vr, raw, self._endian, None)
        return default if value is None else value

    def __contains__(self, keyword):
        entry = TAGS.get(keyword)
        return entry is not None and entry[0] in self._el


class LightDataset:
    """The attributes medconv needs, decoded on access.

    Anything else (another keyword, an attribute, iteration) is answered by the full
    pydicom Dataset, read on first need, so consumers of Volume.header see a Dataset.
    """

    is_light = True

    def __init__(self, path, elements, meta, little, explicit):
        self.path = path
        self._el = elements  # tag -> (vr or None, raw bytes)
        self.file_meta = _Meta(meta)
        self._endian = "<" if little else ">"
        self._explicit = explicit
        self._full = None
        self._values = {}  # decoded values: every frame of a multi-frame file asks for the same ones

    def __contains__(self, keyword):
        entry = TAGS.get(keyword)
        if entry is None:
            return keyword in self.dataset()
        return entry[0] in self._el

    def __getattr__(self, name):
        if name.startswith("_") or name in ("path", "file_meta"):
            raise AttributeError(name)
        return getattr(self.dataset(), name)

    def __iter__(self):
        return iter(self.dataset())

    def get_known(self, keyword, default=None):
        """Like get(), but never falls back to the full Dataset (for the scan's hot path); sequences
        come as lists of LightItem."""
        entry = TAGS.get(keyword)
        return default if entry is None else self.get_tag(entry[0], default)

    def get(self, keyword, default=None):
        entry = TAGS.get(keyword)
        if entry is None or entry[1] == "SQ":
            return self.dataset().get(keyword, default)  # callers outside Frame get pydicom's sequences
        return self.get_tag(entry[0], default)

    def get_tag(self, tag, default=None):
        """The value of element `tag` (an int, private tags included) when the parser kept it."""
        try:
            value = self._values[tag]
        except KeyError:
            if tag not in self._el:
                return default
            vr, raw = self._el[tag]
            known = BY_TAG.get(tag)
            vr = known[1] if known is not None and vr in (None, "UN") else vr
            charset = self._el.get(0x00080005)
            value = self._values[tag] = _decode(vr, raw, self._endian, None, charset and charset[1])
        return default if value is None else value

    def dataset(self):
        """The full pydicom Dataset of this file (pixel data not read)."""
        if self._full is None:
            import warnings


            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from . import guards as dcm_guards
                self._full = dcm_guards.dcmread(self.path, self.path, stop_before_pixels=True, force=True)
        return self._full


def _skip_undefined(buf, pos, explicit, big, end_tag, depth=1):
    """Position after the delimiter `end_tag` of an undefined-length sequence or item."""
    if depth > 2 * MAX_DEPTH:  # sequences and items: pydicom's reader then refuses the file by name
        raise Unsupported("sequences nested too deep")
    fmt = ">HH" if big else "<HH"
    while True:
        if pos + 8 > len(buf):
            raise Unsupported("header longer than the buffer")
        group, elem = struct.unpack_from(fmt, buf, pos)
        if group == 0xFFFE:
            length = struct.unpack_from(">I" if big else "<I", buf, pos + 4)[0]
            pos += 8
            if (group, elem) == end_tag:
                return pos
            if elem == 0xE000:  # an item
                pos = _skip_undefined(buf, pos, explicit, big, (0xFFFE, 0xE00D), depth + 1) \
                    if length == 0xFFFFFFFF else pos + length
            continue
        pos, _, _, _ = _element(buf, pos, explicit, big, None, depth + 1)


#: functional-group sequences nested deeper than this are not parsed here (pydicom reads such a file,
#: or refuses it past guards.MAX_DEPTH)
MAX_WALK_DEPTH = 8


def _items(buf, pos, end, explicit, big, endian, depth=0):
    """The items of a sequence whose value starts at `pos` (end None: undefined length)."""
    if depth >= MAX_WALK_DEPTH:
        raise Unsupported("sequences nested too deep")
    fmt = ">HH" if big else "<HH"
    u32 = ">I" if big else "<I"
    items = []
    while end is None or pos < end:
        if pos + 8 > len(buf):
            raise Unsupported("header longer than the buffer")
        group, elem = struct.unpack_from(fmt, buf, pos)
        length = struct.unpack_from(u32, buf, pos + 4)[0]
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            return items, pos
        if (group, elem) != (0xFFFE, 0xE000):
            raise Unsupported("bad sequence item")
        item_end = None if length == 0xFFFFFFFF else pos + length
        elements = {}
        if explicit and not big:
            # the common case (explicit VR little endian, defined-length item), walked inline: a
            # Philips per-frame item holds hundreds of elements, and calls per element dominate
            pos = _item_explicit_le(buf, pos, item_end, elements, depth)
            items.append(LightItem(elements, endian))
            continue
        while item_end is None or pos < item_end:
            if pos + 8 > len(buf):
                raise Unsupported("header longer than the buffer")
            g, e = struct.unpack_from(fmt, buf, pos)
            if (g, e) == (0xFFFE, 0xE00D):
                pos += 8
                break
            pos, tag, vr, value = _element(buf, pos, explicit, big, endian, depth + 1)
            if tag in BY_TAG and value is not None:
                elements[tag] = (vr, value if isinstance(value, list) else bytes(value))
        items.append(LightItem(elements, endian))
    return items, pos


_HEAD_LE = struct.Struct("<HH2sH")
_U32_LE = struct.Struct("<I")
_LONG_VR_STR = {vr.decode() for vr in _LONG_VRS}


def _item_explicit_le(buf, pos, end, elements, depth=0):
    """Walk one item of an explicit VR little endian data set (`end` None: up to its delimiter),
    keeping the BY_TAG elements; the position after the item."""
    size = len(buf)
    if end is not None and end > size:
        raise Unsupported("header longer than the buffer")
    limit = size if end is None else end
    head, u32, by_tag, sequences, long_vrs = _HEAD_LE.unpack_from, _U32_LE.unpack_from, BY_TAG, _SEQUENCES, _LONG_VRS
    while pos < limit:
        if pos + 12 > size:
            raise Unsupported("header longer than the buffer")
        group, elem, vr, short = head(buf, pos)
        if group == 0xFFFE:
            if elem == 0xE00D and end is None:
                return pos + 8
            raise Unsupported("bad item delimiter")
        if vr in long_vrs:
            length = u32(buf, pos + 8)[0]
            start = pos + 12
        elif vr.isalpha() and vr.isupper():
            length, start = short, pos + 8
        else:
            raise Unsupported("bad VR")
        tag = (group << 16) | elem
        if length == 0xFFFFFFFF or (tag in sequences and vr == b"SQ"):
            pos, tag, vr_text, value = _element(buf, pos, True, False, "<", depth + 1)
            if tag in by_tag and value is not None:
                elements[tag] = (vr_text, value if isinstance(value, list) else bytes(value))
            continue
        pos = start + length
        if pos > limit:
            raise Unsupported("header longer than the buffer" if end is None else "element runs past its item")
        if tag in by_tag and vr != b"SQ":
            elements[tag] = (vr.decode("ascii"), bytes(buf[start:pos]))
    if end is None:
        raise Unsupported("header longer than the buffer")
    return pos


def _element(buf, pos, explicit, big, endian=None, depth=0):
    """(next position, tag, vr, value bytes, a list of LightItem for known sequences, or None for
    other sequences) of the element at pos."""
    group, elem = struct.unpack_from(">HH" if big else "<HH", buf, pos)
    u32, u16 = (">I", ">H") if big else ("<I", "<H")
    if explicit:
        vr = bytes(buf[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            length = struct.unpack_from(u32, buf, pos + 8)[0]
            start = pos + 12
        elif vr.isalpha() and vr.isupper():
            length = struct.unpack_from(u16, buf, pos + 6)[0]
            start = pos + 8
        else:
            raise Unsupported("bad VR")
        vr = vr.decode("ascii")
    else:
        vr = None
        length = struct.unpack_from("<I", buf, pos + 4)[0]
        start = pos + 8
    tag = (group << 16) | elem
    if endian is not None and tag in _SEQUENCES and vr in (None, "SQ"):
        items, end = _items(buf, start, None if length == 0xFFFFFFFF else start + length, explicit, big, endian,
                            depth)
        return end, tag, "SQ", items
    if length == 0xFFFFFFFF:
        if (vr not in (None, "SQ", "UN")) or (group, elem) in _PIXEL:
            raise Unsupported("undefined length")
        return (_skip_undefined(buf, start, explicit if vr != "UN" else False, big, (0xFFFE, 0xE0DD), depth + 1),
                tag, vr, None)
    if start + length > len(buf):
        raise Unsupported("header longer than the buffer")
    if vr == "SQ" and length and too_deep(buf, start, start + length, explicit, big, depth // 2 + 1):
        raise Unsupported("sequences nested too deep")  # pydicom's reader then refuses the file by name
    return start + length, tag, vr, (None if vr == "SQ" else buf[start:start + length])


_ODD_SEEN: list = []


def _odd_length(tag: int, path) -> None:
    """PS3.5 wants even value lengths; files in the wild break it. Read as stored, and say so once."""
    if _ODD_SEEN:
        return
    _ODD_SEEN.append(tag)
    from .. import log

    log.warn(f"odd-length element ({tag >> 16:04X},{tag & 0xFFFF:04X}) (DICOM requires even lengths); read as "
             "stored (further files with odd lengths are not reported)", path)


def parse(path, size, head_bytes=65536):
    """(LightDataset, pixel tag, (value offset, length)) or raise Unsupported."""
    with open(path, "rb") as fh:
        buf = fh.read(head_bytes)
        while True:
            try:
                return _parse(path, buf, size)
            except Unsupported as exc:
                if str(exc) == "header longer than the buffer" and len(buf) < size and len(buf) < (1 << 27):
                    buf += fh.read(7 * len(buf))  # x8: each retry re-walks the header
                    continue
                raise
            except struct.error:
                if len(buf) < size:
                    buf += fh.read(7 * len(buf))  # x8: each retry re-walks the header
                    continue
                raise Unsupported("truncated header") from None


def _parse(path, buf, size):
    pos = 132 if len(buf) >= 132 and buf[128:132] == b"DICM" else 0
    meta = {}
    while pos + 8 <= len(buf) and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
        pos, tag, _, value = _element(buf, pos, True, False)
        if value is not None:
            text = bytes(value).decode("latin-1").rstrip("\x00 ")
            if tag == 0x00020010:
                meta["TransferSyntaxUID"] = text
            elif tag == 0x00020002:
                meta["MediaStorageSOPClassUID"] = text
    ts = meta.get("TransferSyntaxUID")
    if ts not in _NATIVE:
        raise Unsupported("transfer syntax")
    explicit, big = _NATIVE[ts]
    elements = {}
    wanted = {t for t, _ in TAGS.values()}
    fast = explicit and not big
    head, u32, size_buf = _HEAD_LE.unpack_from, _U32_LE.unpack_from, len(buf)
    while True:
        if pos + 8 > len(buf):
            if pos >= size:
                return LightDataset(path, elements, meta, not big, explicit), None, None
            raise Unsupported("header longer than the buffer")
        group, elem = struct.unpack_from(">HH" if big else "<HH", buf, pos)
        if (group, elem) in _PIXEL:
            start = pos
            pos, tag, vr, _ = (None, None, None, None)
            if explicit:
                vrb = bytes(buf[start + 4:start + 6])
                hdr = 12 if vrb in _LONG_VRS else 8
                length = struct.unpack_from(">I" if big else "<I", buf, start + 8)[0] if hdr == 12 else None
            else:
                hdr, length = 8, struct.unpack_from("<I", buf, start + 4)[0]
            if length is None or length == 0xFFFFFFFF:
                raise Unsupported("encapsulated")
            ds = LightDataset(path, elements, meta, not big, explicit)
            return ds, (group << 16) | elem, (start + hdr, length)
        if fast and pos + 12 <= size_buf:
            # explicit VR little endian, an element of defined length that is no sequence: what
            # _element returns for it, walked inline (headers hold hundreds of elements)
            _, _, vrb, short = head(buf, pos)
            if vrb in _LONG_VRS:
                length, start = u32(buf, pos + 8)[0], pos + 12
            elif vrb.isalpha() and vrb.isupper():
                length, start = short, pos + 8
            else:
                raise Unsupported("bad VR")
            if length != 0xFFFFFFFF and vrb != b"SQ":
                tag = (group << 16) | elem
                end = start + length
                if end > size_buf:
                    raise Unsupported("header longer than the buffer")
                pos = end
                if length & 1:
                    _odd_length(tag, path)
                if tag in _NEEDS_PYDICOM:
                    raise Unsupported("needs pydicom")
                if tag in wanted:
                    elements[tag] = (vrb.decode("ascii"), bytes(buf[start:end]))
                continue
        pos, tag, vr, value = _element(buf, pos, explicit, big, "<" if not big else ">")
        if isinstance(value, list):
            elements[tag] = (vr, value)
            continue
        if value is not None and len(value) & 1:
            _odd_length(tag, path)
        if tag in _NEEDS_PYDICOM:
            raise Unsupported("needs pydicom")
        if tag in wanted and value is not None:
            elements[tag] = (vr, bytes(value))
