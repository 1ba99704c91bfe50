"""The header view: the elements medconv needs from a DICOM file with native (uncompressed or
encapsulated) pixel data, read through the element walker without pydicom, so scanning a large
series or converting an enhanced file builds no pydicom Dataset. Anything it does not keep or
cannot follow is read by pydicom instead (Unsupported, NeedsFull).
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

#: the standard elements the light view keeps, by group: "gggg: eeee Keyword VR, ..." (the
#: VR is the one used when the file is implicit VR; SQ: parsed into items)
_STANDARD = """
0008: 0005 SpecificCharacterSet CS, 0008 ImageType CS, 0016 SOPClassUID UI, 0018 SOPInstanceUID UI, 002A AcquisitionDateTime DT, 0032 AcquisitionTime TM, 0060 Modality CS, 0070 Manufacturer LO, 0080 InstitutionName LO, 0081 InstitutionAddress ST
0008: 1010 StationName SH, 1030 StudyDescription LO, 103E SeriesDescription LO, 1040 InstitutionalDepartmentName LO, 1090 ManufacturerModelName LO
0008: 1140 ReferencedImageSequence SQ
0008: 9007 FrameType CS
0008: 9124 DerivationImageSequence SQ
0008: 9208 ComplexImageComponent CS
0018: 0015 BodyPartExamined CS, 0020 ScanningSequence CS, 0021 SequenceVariant CS, 0022 ScanOptions CS, 0023 MRAcquisitionType CS, 0024 SequenceName SH, 0050 SliceThickness DS, 0060 KVP DS, 0080 RepetitionTime DS, 0081 EchoTime DS, 0082 InversionTime DS, 0083 NumberOfAverages DS, 0084 ImagingFrequency DS, 0086 EchoNumbers IS, 0087 MagneticFieldStrength DS, 0088 SpacingBetweenSlices DS, 0089 NumberOfPhaseEncodingSteps IS, 0091 EchoTrainLength IS, 0093 PercentSampling DS, 0094 PercentPhaseFieldOfView DS, 0095 PixelBandwidth DS
0018: 1000 DeviceSerialNumber LO, 1020 SoftwareVersions LO, 1030 ProtocolName LO, 1060 TriggerTime DS
0018: 1150 ExposureTime IS, 1151 XRayTubeCurrent IS, 1152 Exposure IS
0018: 1210 ConvolutionKernel SH, 1250 ReceiveCoilName SH
0018: 1310 AcquisitionMatrix US, 1312 InPlanePhaseEncodingDirection CS, 1314 FlipAngle DS, 1316 SAR DS
0018: 5100 PatientPosition CS
0018: 9005 PulseSequenceName SH, 9006 MRImagingModifierSequence SQ, 9016 Spoiling CS, 9020 MagnetizationTransfer CS, 9036 PartialFourierDirection CS, 9042 MRReceiveCoilSequence SQ, 9049 MRTransmitCoilSequence SQ, 9058 MRAcquisitionFrequencyEncodingSteps US, 9069 ParallelReductionFactorInPlane FD, 9073 AcquisitionDuration FD, 9074 FrameAcquisitionDateTime DT, 9075 DiffusionDirectionality CS, 9076 DiffusionGradientDirectionSequence SQ, 9078 ParallelAcquisitionTechnique CS, 9079 InversionTimes FD, 9082 EffectiveEchoTime FD, 9087 DiffusionBValue FD, 9089 DiffusionGradientOrientation FD, 9093 NumberOfKSpaceTrajectories US, 9098 TransmitterFrequency FD
0018: 9107 MRSpatialSaturationSequence SQ, 9112 MRTimingAndRelatedParametersSequence SQ, 9114 MREchoSequence SQ, 9115 MRModifierSequence SQ, 9117 MRDiffusionSequence SQ, 9118 CardiacSynchronizationSequence SQ, 9119 MRAveragesSequence SQ, 9125 MRFOVGeometrySequence SQ, 9152 MRMetaboliteMapSequence SQ, 9155 ParallelReductionFactorOutOfPlane FD, 9197 MRVelocityEncodingSequence SQ
0018: 9226 MRImageFrameTypeSequence SQ, 9227 MRSpectroscopyFrameTypeSequence SQ, 9231 MRAcquisitionPhaseEncodingStepsInPlane US, 9232 MRAcquisitionPhaseEncodingStepsOutOfPlane US, 9251 MRArterialSpinLabelingSequence SQ
0018: 9301 CTAcquisitionTypeSequence SQ, 9304 CTAcquisitionDetailsSequence SQ, 9308 CTTableDynamicsSequence SQ, 9312 CTGeometrySequence SQ, 9314 CTReconstructionSequence SQ, 9321 CTExposureSequence SQ, 9325 CTXRayDetailsSequence SQ, 9326 CTPositionSequence SQ, 9329 CTImageFrameTypeSequence SQ, 9341 ContrastBolusUsageSequence SQ, 9360 CTAdditionalXRaySourceSequence SQ
0018: 9412 XAXRFFrameCharacteristicsSequence SQ, 9472 FrameDisplayShutterSequence SQ, 9477 IrradiationEventIdentificationSequence SQ
0018: 9732 PETFrameAcquisitionSequence SQ, 9733 PETDetectorMotionDetailsSequence SQ, 9734 PETTableDynamicsSequence SQ, 9735 PETPositionSequence SQ, 9736 PETFrameCorrectionFactorsSequence SQ, 9737 RadiopharmaceuticalUsageSequence SQ, 9749 PETReconstructionSequence SQ, 9751 PETFrameTypeSequence SQ, 9771 PatientPhysiologicalStateSequence SQ
0018: 9807 ImageDataTypeSequence SQ
0019: 109C GEPulseSequenceName LO, 10B3 GEUserData12 DS
0020: 000E SeriesInstanceUID UI, 0011 SeriesNumber IS, 0012 AcquisitionNumber IS, 0013 InstanceNumber IS, 0032 ImagePositionPatient DS, 0037 ImageOrientationPatient DS
0020: 0100 TemporalPositionIdentifier IS
0020: 4000 ImageComments LT
0020: 9071 FrameAnatomySequence SQ
0020: 9111 FrameContentSequence SQ, 9113 PlanePositionSequence SQ, 9116 PlaneOrientationSequence SQ, 9128 TemporalPositionIndex UL, 9153 NominalCardiacTriggerDelayTime FD, 9157 DimensionIndexValues UL, 9170 UnassignedSharedConvertedAttributesSequence SQ, 9171 UnassignedPerFrameConvertedAttributesSequence SQ
0020: 9253 RespiratorySynchronizationSequence SQ
0020: 930E PlanePositionVolumeSequence SQ, 930F PlaneOrientationVolumeSequence SQ, 9310 TemporalPositionSequence SQ
0020: 9450 PatientOrientationInFrameSequence SQ
0028: 0002 SamplesPerPixel US, 0004 PhotometricInterpretation CS, 0006 PlanarConfiguration US, 0008 NumberOfFrames IS, 0010 Rows US, 0011 Columns US, 0030 PixelSpacing DS
0028: 0100 BitsAllocated US, 0101 BitsStored US, 0103 PixelRepresentation US, 0120 PixelPaddingValue US
0028: 1050 WindowCenter DS, 1051 WindowWidth DS, 1052 RescaleIntercept DS, 1053 RescaleSlope DS
0028: 9110 PixelMeasuresSequence SQ, 9132 FrameVOILUTSequence SQ, 9145 PixelValueTransformationSequence SQ
0028: 9415 FramePixelShiftSequence SQ, 9422 PixelIntensityRelationshipLUTSequence SQ
0040: 0254 PerformedProcedureStepDescription LO
0040: 9096 RealWorldValueMappingSequence SQ
0040: 9224 RealWorldValueIntercept FD, 9225 RealWorldValueSlope FD
0043: 102F GEImageType SS
2001: 1004 PhilipsDiffusionDirection CS
2005: 100E PhilipsScaleSlope FL
2005: 140F PhilipsPrivateFrameSequence SQ
3004: 000C GridFrameOffsetVector DS, 000E DoseGridScaling DS
5200: 9229 SharedFunctionalGroupsSequence SQ, 9230 PerFrameFunctionalGroupsSequence SQ
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
    for line in _STANDARD.strip().splitlines():
        group, entries = line.split(":")
        for entry in entries.split(","):
            element, keyword, vr = entry.split()
            tags[keyword] = ((int(group, 16) << 16) | int(element, 16), vr)
    private = {}
    known = {tag for tag, _ in tags.values()}
    for line in _PRIVATE.strip().splitlines():
        creator, group, elements = (part.strip() for part in line.split("|"))
        group = int(group, 16)
        words = elements.split()
        for element, vr in zip(words[::2], words[1::2]):
            low = int(element, 16)
            private[(group, creator.upper(), low)] = None if vr.endswith("?") else vr
            for block in PRIVATE_BLOCKS:
                tag = (group << 16) | (block << 8) | low
                if tag not in known:
                    known.add(tag)
                    tags[(creator, tag)] = (tag, vr.rstrip("?"))  # private keys: (creator, tag)
    tags.update({("private creator", tag): (tag, "LO") for group in _CREATOR_GROUPS
                 for tag in range((group << 16) | 0x10, (group << 16) | 0x100)})
    return tags, private


#: keyword (standard elements; (creator, tag) for private ones) -> (tag, VR used when the file is
#: implicit VR)
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
#: the elements the walk builds inside sequences (the others are stepped over by their lengths)
_KEPT = frozenset(BY_TAG)
# DICOMDIR, palette, Modality LUT
_NEEDS_PYDICOM = {0x00041220, 0x00281101, 0x00283000}


# Unsupported (elements.Unsupported, raised by the walk and here): the light parser steps aside;
# pydicom reads this file.


class NeedsFull(BaseException):
    """The light view cannot answer this question (an element it does not keep, a private block
    elsewhere than usual): ask the full pydicom Dataset instead. A BaseException, so that the vendor
    readers' `except Exception` (odd private data) never swallow it."""


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
    found = _creators(holder, group).get(want)
    if found is None:
        if holder.get_tag((group << 16) | 0x10) is not None:
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
    if (vr == "SQ") != isinstance(value, list):
        raise NeedsFull("a private sequence not parsed as one")
    charset = holder._el.get(0x00080005)  # decoded with this creator's VR (another's may share the tag)
    return _decode(vr, value, holder._endian, None, charset and charset[1])


def _creators(holder, group) -> dict:
    """{private creator (upper case, spaces stripped): its first block} of `group` in a HeaderItem or
    HeaderView, read once (kept with its decoded values)."""
    values = holder._values
    key = ("creators", group)
    found = values.get(key)
    if found is None:
        found = values[key] = {}
        base = group << 16
        for tag in sorted(t for t in holder._el if base | 0x10 <= t <= base | 0xFF):
            name = holder.get_tag(tag)
            if name is not None:
                found.setdefault(str(name).strip().upper(), tag & 0xFF)
    return found


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


def _decoded(holder, tag, charset):
    """The decoded value of element `tag` of a HeaderItem or HeaderView, None when absent (cached by
    get_tag and get_known, absent ones too; `charset`: the data set's Specific Character Set element)."""
    raw = holder._el.get(tag)
    if raw is None:
        return None
    vr, raw = raw
    known = BY_TAG.get(tag)
    vr = known[1] if known is not None and vr in (None, "UN") else vr
    return _decode(vr, raw, holder._endian, None, charset and charset[1])


_UNREAD = object()
#: keyword (see TAGS) -> tag
_TAG_OF = {keyword: tag for keyword, (tag, _) in TAGS.items()}


class HeaderItem:
    """One item of a sequence parsed by the light parser: the known elements, decoded on access."""

    is_light = True

    __slots__ = ("_el", "_endian", "_values")

    def __init__(self, elements, endian):
        self._el = elements  # tag -> (vr or None, raw bytes, or a list of HeaderItem for sequences)
        self._endian = endian
        self._values = {}  # decoded values, kept once asked for (the shared groups serve every frame)

    def get_known(self, keyword, default=None):
        tag = _TAG_OF.get(keyword)
        if tag is None:
            return default
        value = self._values.get(tag, _UNREAD)
        if value is _UNREAD:
            value = self._values[tag] = _decoded(self, tag, None)
        return default if value is None else value

    get = get_known

    def get_tag(self, tag, default=None):
        """The value of element `tag` (an int, private tags included) when the parser kept it."""
        value = self._values.get(tag, _UNREAD)
        if value is _UNREAD:
            value = self._values[tag] = _decoded(self, tag, None)
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


class HeaderView:
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
        come as lists of HeaderItem."""
        tag = _TAG_OF.get(keyword)
        if tag is None:
            return default
        value = self._values.get(tag, _UNREAD)
        if value is _UNREAD:
            value = self._values[tag] = _decoded(self, tag, self._el.get(0x00080005))
        return default if value is None else value

    def get(self, keyword, default=None):
        entry = TAGS.get(keyword)
        if entry is None or entry[1] == "SQ":
            return self.dataset().get(keyword, default)  # callers outside Frame get pydicom's sequences
        return self.get_tag(entry[0], default)

    def get_tag(self, tag, default=None):
        """The value of element `tag` (an int, private tags included) when the parser kept it."""
        value = self._values.get(tag, _UNREAD)
        if value is _UNREAD:
            value = self._values[tag] = _decoded(self, tag, self._el.get(0x00080005))
        return default if value is None else value

    def value(self, key):
        """The value of `key` (keyword or int tag; None when absent; sequences as lists of HeaderItem),
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


#: functional-group sequences nested deeper than this are not parsed here (pydicom reads such a file,
#: or refuses it past elements.MAX_DEPTH)
MAX_WALK_DEPTH = 8


def _light_items(items, endian, depth=0) -> list:
    """HeaderItem of each walked item of a known sequence, keeping the BY_TAG elements (the known
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
                    kept[tag] = (el.vr, el.buf[el.value_offset:el.end])  # (bytes: the header read)
            elif tag in _SEQUENCES and el.vr in (None, "SQ"):
                kept[tag] = ("SQ", _light_items(el.items, endian, depth + 1))
        out.append(HeaderItem(kept, endian))
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


#: the pixel data elements' group as bytes, little and big endian, and their element numbers after it
_PIXEL_GROUP = ((b"\xe0\x7f", {struct.pack("<H", tag & 0xFFFF) for tag in PIXEL_TAGS}),
                (b"\x7f\xe0", {struct.pack(">H", tag & 0xFFFF) for tag in PIXEL_TAGS}))


def _pixel_tag_in(buf, start: int) -> bool:
    """Whether a pixel data tag's bytes are in buf[start:] (a header without one in the bytes read is
    longer than those bytes, or the file has no pixels)."""
    for group, elements in _PIXEL_GROUP:
        at = buf.find(group, start)
        while at >= 0:
            if buf[at + 2:at + 4] in elements:
                return True
            at = buf.find(group, at + 1)
    return False



def parse(path, size, head_bytes=65536):
    """(HeaderView, pixel tag, (value offset, length)) or raise Unsupported."""
    with open(path, "rb") as fh:
        buf = fh.read(head_bytes)
        # a walk that runs past the bytes read starts again on more of them: read on (x8 each time)
        # while no pixel data tag is in the bytes, so that a long header is walked once
        seen = 0  # bytes searched already (less the 3 a tag found later may start in)
        while len(buf) < size and len(buf) < (1 << 27) and not _pixel_tag_in(buf, seen):
            seen = max(len(buf) - 3, 0)
            more = fh.read(7 * len(buf))
            if not more:
                break
            buf += more
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
    for el in walk(buf, pos, None, explicit=explicit, big=big, sequences=sequences, stop=PIXEL_TAGS, keep=_KEPT):
        tag = el.tag
        if el.end is None:  # the pixel data: its value is not read here
            if el.length == UNDEFINED or (el.vr is not None and el.vr.encode() not in LONG_VRS):
                raise Unsupported("encapsulated")
            return HeaderView(path, elements, meta, not big, explicit), tag, (el.value_offset, el.length)
        if el.items is None:
            if el.length & 1 and el.length != UNDEFINED and el.vr != "SQ":  # (a sequence not kept: items None)
                _odd_length(tag, path)
            if tag in by_tag:
                elements[tag] = (el.vr, bytes(buf[el.value_offset:el.end]))
        elif tag in sequences and el.vr in (None, "SQ"):
            elements[tag] = ("SQ", _light_items(el.items, endian))
        if tag in _NEEDS_PYDICOM:
            raise Unsupported("needs pydicom")
    if len(buf) < size:
        raise Truncated("header longer than the buffer", len(buf), len(buf))
    return HeaderView(path, elements, meta, not big, explicit), None, None
