"""A small pure-Python header parser for the common case (native little/big endian, no
functional groups), so scanning a large series neither imports pydicom nor builds a full
Dataset per file. Anything unusual returns None and pydicom reads the file instead.
"""
from __future__ import annotations

import struct

from .elements import (
    LONG_VRS,
    NATIVE,
    PIXEL_TAGS,
    UNDEFINED,
    Truncated,
    Unsupported,
    file_meta,
    walk,
)

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


# Unsupported (elements.Unsupported, raised by the walk and here): the light parser steps aside;
# pydicom reads this file.


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


#: functional-group sequences nested deeper than this are not parsed here (pydicom reads such a file,
#: or refuses it past elements.MAX_DEPTH)
MAX_WALK_DEPTH = 8


def _light_items(items, endian, depth=0) -> list:
    """LightItem of each walked item of a known sequence, keeping the BY_TAG elements (the known
    sequences in them parsed the same way)."""
    if depth >= MAX_WALK_DEPTH:
        raise Unsupported("sequences nested too deep")
    out = []
    for children in items:
        kept = {}
        for el in children:
            tag = el.tag
            if tag not in BY_TAG:
                continue
            if el.items is None:
                if el.length != UNDEFINED:
                    kept[tag] = (el.vr, el.value())
            elif tag in _SEQUENCES and el.vr in (None, "SQ"):
                kept[tag] = ("SQ", _light_items(el.items, endian, depth + 1))
        out.append(LightItem(kept, endian))
    return out


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
            except Truncated:
                if len(buf) < size and len(buf) < (1 << 27):
                    buf += fh.read(7 * len(buf))  # x8: each retry re-walks the header
                    continue
                raise


def _parse(path, buf, size):
    found, pos = file_meta(buf)
    meta = {}
    for el in found:
        if el.items is None:
            if el.tag == 0x00020010:
                meta["TransferSyntaxUID"] = el.text()
            elif el.tag == 0x00020002:
                meta["MediaStorageSOPClassUID"] = el.text()
    ts = meta.get("TransferSyntaxUID")
    if ts not in NATIVE:
        raise Unsupported("transfer syntax")
    explicit, big = NATIVE[ts]
    endian = ">" if big else "<"
    elements = {}
    by_tag, sequences = BY_TAG, _SEQUENCES
    for el in walk(buf, pos, None, explicit=explicit, big=big, sequences=sequences, stop=PIXEL_TAGS):
        tag = el.tag
        if el.end is None:  # the pixel data: its value is not read here
            if el.length == UNDEFINED or (el.vr is not None and el.vr.encode() not in LONG_VRS):
                raise Unsupported("encapsulated")
            return LightDataset(path, elements, meta, not big, explicit), tag, (el.value_offset, el.length)
        if el.items is None:
            if el.length & 1:
                _odd_length(tag, path)
            if tag in by_tag:
                elements[tag] = (el.vr, bytes(buf[el.value_offset:el.end]))
        elif tag in sequences and el.vr in (None, "SQ"):
            elements[tag] = ("SQ", _light_items(el.items, endian))
        if tag in _NEEDS_PYDICOM:
            raise Unsupported("needs pydicom")
    if len(buf) < size:
        raise Truncated("header longer than the buffer", len(buf), len(buf))
    return LightDataset(path, elements, meta, not big, explicit), None, None
