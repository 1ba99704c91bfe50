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

#: the standard elements the light view keeps, "keyword tag VR" (VR used when the file is implicit VR)
_STANDARD = """
SpecificCharacterSet 00080005 CS | SOPClassUID 00080016 UI | SOPInstanceUID 00080018 UI
ImageType 00080008 CS | Modality 00080060 CS | Manufacturer 00080070 LO | SeriesDescription 0008103E LO
ManufacturerModelName 00081090 LO | AcquisitionTime 00080032 TM | ScanningSequence 00180020 CS
SequenceVariant 00180021 CS | SliceThickness 00180050 DS | KVP 00180060 DS | RepetitionTime 00180080 DS
EchoTime 00180081 DS | InversionTime 00180082 DS | ImagingFrequency 00180084 DS | EchoNumbers 00180086 IS
MagneticFieldStrength 00180087 DS | SpacingBetweenSlices 00180088 DS | PixelBandwidth 00180095 DS
ProtocolName 00181030 LO | TriggerTime 00181060 DS | Exposure 00181152 IS | ConvolutionKernel 00181210 SH
FlipAngle 00181314 DS | BodyPartExamined 00180015 CS | SeriesInstanceUID 0020000E UI
SeriesNumber 00200011 IS | AcquisitionNumber 00200012 IS | InstanceNumber 00200013 IS
ImagePositionPatient 00200032 DS | ImageOrientationPatient 00200037 DS
TemporalPositionIdentifier 00200100 IS | SamplesPerPixel 00280002 US | PhotometricInterpretation 00280004 CS
PlanarConfiguration 00280006 US | NumberOfFrames 00280008 IS | Rows 00280010 US | Columns 00280011 US
PixelSpacing 00280030 DS | BitsAllocated 00280100 US | BitsStored 00280101 US
PixelRepresentation 00280103 US | PixelPaddingValue 00280120 US | WindowCenter 00281050 DS
WindowWidth 00281051 DS | RescaleIntercept 00281052 DS | RescaleSlope 00281053 DS
GridFrameOffsetVector 3004000C DS | DoseGridScaling 3004000E DS | NominalCardiacTriggerDelayTime 00209153 FD
DiffusionBValue 00189087 FD | EffectiveEchoTime 00189082 FD | PhilipsScaleSlope 2005100E FL
GEPulseSequenceName 0019109C LO | GEUserData12 001910B3 DS | GEImageType 0043102F SS | FrameType 00089007 CS
ComplexImageComponent 00089208 CS | DimensionIndexValues 00209157 UL | TemporalPositionIndex 00209128 UL
FrameAcquisitionDateTime 00189074 DT | DiffusionGradientOrientation 00189089 FD
DiffusionDirectionality 00189075 CS | PhilipsDiffusionDirection 20011004 CS | AcquisitionDateTime 0008002A DT
AcquisitionDuration 00189073 FD | AcquisitionMatrix 00181310 US | DeviceSerialNumber 00181000 LO
EchoTrainLength 00180091 IS | ExposureTime 00181150 IS | ImageComments 00204000 LT
InPlanePhaseEncodingDirection 00181312 CS | InstitutionAddress 00080081 ST | InstitutionName 00080080 LO
InstitutionalDepartmentName 00081040 LO | InversionTimes 00189079 FD
MRAcquisitionFrequencyEncodingSteps 00189058 US | MRAcquisitionPhaseEncodingStepsInPlane 00189231 US
MRAcquisitionPhaseEncodingStepsOutOfPlane 00189232 US | MRAcquisitionType 00180023 CS
MagnetizationTransfer 00189020 CS | NumberOfAverages 00180083 DS | NumberOfKSpaceTrajectories 00189093 US
NumberOfPhaseEncodingSteps 00180089 IS | ParallelAcquisitionTechnique 00189078 CS
ParallelReductionFactorInPlane 00189069 FD | ParallelReductionFactorOutOfPlane 00189155 FD
PartialFourierDirection 00189036 CS | PatientPosition 00185100 CS | PercentPhaseFieldOfView 00180094 DS
PercentSampling 00180093 DS | PerformedProcedureStepDescription 00400254 LO | PulseSequenceName 00189005 SH
RealWorldValueIntercept 00409224 FD | RealWorldValueSlope 00409225 FD | ReceiveCoilName 00181250 SH
SAR 00181316 DS | ScanOptions 00180022 CS | SequenceName 00180024 SH | SoftwareVersions 00181020 LO
Spoiling 00189016 CS | StationName 00081010 SH | StudyDescription 00081030 LO
TransmitterFrequency 00189098 FD | XRayTubeCurrent 00181151 IS
PerFrameFunctionalGroupsSequence 52009230 SQ | SharedFunctionalGroupsSequence 52009229 SQ
PlanePositionSequence 00209113 SQ | PlaneOrientationSequence 00209116 SQ | PixelMeasuresSequence 00289110 SQ
PixelValueTransformationSequence 00289145 SQ | FrameContentSequence 00209111 SQ | MREchoSequence 00189114 SQ
CardiacSynchronizationSequence 00189118 SQ | MRDiffusionSequence 00189117 SQ
DiffusionGradientDirectionSequence 00189076 SQ | MRImageFrameTypeSequence 00189226 SQ
CTImageFrameTypeSequence 00189329 SQ | MRSpectroscopyFrameTypeSequence 00189227 SQ
XAXRFFrameCharacteristicsSequence 00189412 SQ | PETFrameTypeSequence 00189751 SQ
PhilipsPrivateFrameSequence 2005140F SQ | RealWorldValueMappingSequence 00409096 SQ
MRTimingAndRelatedParametersSequence 00189112 SQ | MRFOVGeometrySequence 00189125 SQ
MRModifierSequence 00189115 SQ | MRImagingModifierSequence 00189006 SQ | MRReceiveCoilSequence 00189042 SQ
MRTransmitCoilSequence 00189049 SQ | MRAveragesSequence 00189119 SQ | MRSpatialSaturationSequence 00189107 SQ
MRMetaboliteMapSequence 00189152 SQ | MRVelocityEncodingSequence 00189197 SQ
MRArterialSpinLabelingSequence 00189251 SQ | FrameAnatomySequence 00209071 SQ
FrameVOILUTSequence 00289132 SQ | ReferencedImageSequence 00081140 SQ | DerivationImageSequence 00089124 SQ
ContrastBolusUsageSequence 00189341 SQ | RespiratorySynchronizationSequence 00209253 SQ
TemporalPositionSequence 00209310 SQ | PatientOrientationInFrameSequence 00209450 SQ
IrradiationEventIdentificationSequence 00189477 SQ | PixelIntensityRelationshipLUTSequence 00289422 SQ
FramePixelShiftSequence 00289415 SQ | FrameDisplayShutterSequence 00189472 SQ
PlanePositionVolumeSequence 0020930E SQ | PlaneOrientationVolumeSequence 0020930F SQ
ImageDataTypeSequence 00189807 SQ | UnassignedSharedConvertedAttributesSequence 00209170 SQ
UnassignedPerFrameConvertedAttributesSequence 00209171 SQ | CTAcquisitionTypeSequence 00189301 SQ
CTAcquisitionDetailsSequence 00189304 SQ | CTTableDynamicsSequence 00189308 SQ
CTPositionSequence 00189326 SQ | CTGeometrySequence 00189312 SQ | CTReconstructionSequence 00189314 SQ
CTExposureSequence 00189321 SQ | CTXRayDetailsSequence 00189325 SQ
CTAdditionalXRaySourceSequence 00189360 SQ | PETFrameAcquisitionSequence 00189732 SQ
PETDetectorMotionDetailsSequence 00189733 SQ | PETPositionSequence 00189735 SQ
PETFrameCorrectionFactorsSequence 00189736 SQ | PETReconstructionSequence 00189749 SQ
PETTableDynamicsSequence 00189734 SQ | RadiopharmaceuticalUsageSequence 00189737 SQ
PatientPhysiologicalStateSequence 00189771 SQ
"""

#: vendor private elements the light view keeps: "creator | group | element VR ...", in whichever
#: block PRIVATE_BLOCKS their creator reserves (a creator further on: pydicom reads the file); a VR
#: ending in "?" is one pydicom's dictionary does not know (an implicit VR file's value: pydicom reads it)
_PRIVATE = """
SIEMENS MR HEADER | 0019 | 0C IS 0E FD 28 FD
SIEMENS MR HEADER | 0051 | 0E SH 0F LO
SIEMENS CSA HEADER | 0029 | 10 OB 20 OB
GEMS_ACQU_01 | 0019 | 5A FL 9C LO B3 DS BB DS BC DS BD DS E2 DS
GEMS_PARM_01 | 0043 | 02 SS 03 SS 04 SS 2C SS 2F SS 39 IS 7F DS 83 DS 95 LO B2 UN?
Philips Imaging DD 001 | 2001 | 03 FL 04 CS 13 SL 20 LO 22 FL
Philips MR Imaging DD 001 | 2005 | 08 FL 09 FL 0A FL 0E FL B0 FL B1 FL B2 FL
Image Private Header | 0065 | 04 UN? 05 UN? 09 UN? 37 UN? 50 UN? 51 SQ?
SIEMENS MR SDS 01 | 0021 | 05 UN? 10 UN? 19 UN? 5A UN? 5B UN? 5C UN? FE SQ?
SIEMENS MR SDI 02 | 0021 | 1C UN? 42 UN? 4F UN? 53 UN? 75 UN? 77 UN? FE SQ?
"""
#: the private blocks whose vendor elements (see _PRIVATE) are kept
PRIVATE_BLOCKS = range(0x10, 0x20)
#: private groups whose creators (gggg,0010-00FF) are all kept, so a creator's block is known
_CREATOR_GROUPS = (0x0019, 0x0021, 0x0029, 0x0043, 0x0051, 0x0065, 0x2001, 0x2005)


def _table():
    """TAGS, and {(group, CREATOR, element): VR (None when pydicom's dictionary knows none)}."""
    tags = {}
    for entry in _STANDARD.replace("\n", "|").split("|"):
        if entry.strip():
            keyword, tag, vr = entry.split()
            tags[keyword] = (int(tag, 16), vr)
    private = {}
    known = {tag for tag, _ in tags.values()}
    for line in _PRIVATE.strip().splitlines():
        creator, group, elements = (part.strip() for part in line.split("|"))
        group = int(group, 16)
        words = elements.split()
        for element, vr in zip(words[::2], words[1::2]):
            private[(group, creator.upper(), int(element, 16))] = None if vr.endswith("?") else vr
            for block in PRIVATE_BLOCKS:
                tag = (group << 16) | (block << 8) | int(element, 16)
                if tag not in known:
                    known.add(tag)
                    tags[f"{creator} {group:04X},{block:02X}{element}"] = (tag, vr.rstrip("?"))
    for group in _CREATOR_GROUPS:
        for block in range(0x10, 0x100):
            tags[f"private creator {group:04X},{block:04X}"] = ((group << 16) | block, "LO")
    return tags, private


#: keyword -> (tag, VR used when the file is implicit VR)
TAGS, PRIVATE = _table()
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


class NeedsFull(BaseException):
    """The light view cannot answer this question (an element it does not keep, a private block
    elsewhere than usual): ask the full pydicom Dataset instead. A BaseException, so that the vendor
    readers' `except Exception` (odd private data) never swallow it."""


#: every tag the light view keeps (looked up per element while walking)
WANTED = frozenset(tag for tag, _ in TAGS.values())


def _strict(holder, key):
    """value(): the element `key` (a keyword or an int tag) the light view keeps, or NeedsFull."""
    if isinstance(key, int):
        if key not in BY_TAG:
            raise NeedsFull(f"({key >> 16:04X},{key & 0xFFFF:04X}) is not kept")
        return holder.get_tag(key)
    entry = TAGS.get(key)
    if entry is None:
        raise NeedsFull(f"{key} is not kept")
    return holder.get_tag(entry[0])


def _private(holder, group, creator, element):
    """Private element (group, xxEE) in the block `creator` reserves (case and spaces ignored), as
    pydicom gives it; None when absent; NeedsFull when the light view cannot tell."""
    want = creator.strip().upper()
    if (group, want, element & 0xFF) not in PRIVATE or group not in _CREATOR_GROUPS:
        raise NeedsFull(f"private ({group:04X},xx{element & 0xFF:02X}) of {creator} is not kept")
    found = None
    kept, base = holder._el, group << 16
    for block in range(0x10, 0x100):
        if base | block in kept:
            name = holder.get_tag(base | block)
            if name is not None and str(name).strip().upper() == want:
                found = block
                break
    if found is None:
        if holder.get_tag(base | 0x10) is not None:
            return None  # creators, none of them this one
        found = 0x10  # no creator at all (some exports drop them): the usual place
    vr = PRIVATE[(group, want, element & 0xFF)]
    tag = (group << 16) | (found << 8) | (element & 0xFF)
    if found not in PRIVATE_BLOCKS or tag not in BY_TAG:
        raise NeedsFull(f"{creator} at block {found:02X}")
    raw = holder._el.get(tag)
    if raw is None:
        return None
    file_vr, value = raw
    vr = file_vr if file_vr not in (None, "UN") else vr
    if vr is None:
        raise NeedsFull(f"private ({tag >> 16:04X},{tag & 0xFFFF:04X}) of unknown VR")
    if vr in ("OB", "OW", "UN"):
        return bytes(value) if value else None
    if vr == "SQ" and not isinstance(value, list):
        raise NeedsFull("a private sequence not parsed")
    return holder.get_tag(tag)


def _sequences(holder):
    """(tag, items) of the sequences `holder` keeps, in tag order."""
    return [(tag, value) for tag, (_, value) in sorted(holder._el.items()) if isinstance(value, list)]


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

    def value(self, key):
        """The value of `key` (keyword or int tag; None when absent), or NeedsFull when not kept."""
        return _strict(self, key)

    def private(self, group, creator, element):
        return _private(self, group, creator, element)

    def sequences(self):
        return _sequences(self)


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

    def value(self, key):
        """The value of `key` (keyword or int tag; None when absent; sequences as lists of LightItem),
        or NeedsFull when the light view does not keep it."""
        return _strict(self, key)

    def private(self, group, creator, element):
        """A vendor private element (see PRIVATE), or NeedsFull."""
        return _private(self, group, creator, element)

    def sequences(self):
        return _sequences(self)

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
    wanted = WANTED
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
