"""BIDS-keyed acquisition metadata, with dcm2niix's key names, units and value forms.

One sidecar per output: values come from the output's own first frame (its per-frame
functional group item first, then the shared one, then the top-level data set), so each
echo/part of a split series keeps its own EchoTime, EchoNumber and ImageType. Times are in
seconds, ImagingFrequency in MHz, lists are JSON arrays, multi-valued code strings are joined
with a backslash as dcm2niix does. Direct patient identifiers (name, ID, birth date, accession
number) are never read.
"""
from __future__ import annotations

import math

from . import gradients
from .gradients import frame_groups, full, is_light, private

#: every key medconv's sidecar may hold, in the order it writes them (dcm2niix's names)
KEYS = (
    "Modality", "MagneticFieldStrength", "ImagingFrequency", "Manufacturer", "ManufacturersModelName",
    "InstitutionName", "InstitutionalDepartmentName", "InstitutionAddress", "DeviceSerialNumber",
    "StationName", "BodyPart", "PatientPosition", "ProcedureStepDescription", "SoftwareVersions",
    "MRAcquisitionType", "StudyDescription", "SeriesDescription", "ProtocolName", "ScanningSequence",
    "SequenceVariant", "ScanOptions", "SequenceName", "PulseSequenceName", "ImageType", "ImageTypeText",
    "NonlinearGradientCorrection", "SeriesNumber", "AcquisitionTime", "AcquisitionNumber",
    "PhilipsRWVSlope", "PhilipsRWVIntercept", "PhilipsRescaleSlope", "PhilipsRescaleIntercept",
    "PhilipsScaleSlope", "UsePhilipsFloatNotDisplayScaling",
    "Units", "SliceThickness", "SpacingBetweenSlices", "SAR", "NumberOfAverages", "TablePosition", "EchoNumber",
    "EchoTime", "EchoTime1", "EchoTime2", "RepetitionTime", "DelayTime", "InversionTime", "MTState", "SpoilingState", "FlipAngle", "PartialFourier",
    "BaseResolution", "ShimSetting", "DiffusionScheme", "TxRefAmp", "PhaseResolution", "ReceiveCoilName",
    "ReceiveCoilActiveElements", "CoilString", "PulseSequenceDetails", "RefLinesPE", "CoilCombinationMethod",
    "ConsistencyInfo", "PrescanReuseString", "MultibandAccelerationFactor", "PercentPhaseFOV",
    "PercentSampling", "EchoTrainLength", "PartialFourierDirection", "PhaseEncodingSteps",
    "FrequencyEncodingSteps", "PhaseEncodingStepsOutOfPlane", "AcquisitionMatrixPE", "ReconMatrixPE", "BandwidthPerPixelPhaseEncode",
    "ParallelReductionFactorInPlane", "ParallelAcquisitionTechnique", "ParallelReductionFactorOutOfPlane", "WaterFatShift",
    "EstimatedEffectiveEchoSpacing", "EstimatedTotalReadoutTime",
    "EffectiveEchoSpacing", "DerivedVendorReportedEchoSpacing", "AcquisitionDuration",
    "NumberOfKSpaceTrajectories", "TotalReadoutTime", "PixelBandwidth", "DwellTime", "PhaseEncodingDirection",
    "PhaseEncodingAxis", "PhaseEncodingDirectionDisplayed", "SliceTiming", "SliceEncodingDirection", "KVP", "ExposureTime", "XRayTubeCurrent", "XRayExposure",
    "ConvolutionKernel", "ImageOrientationPatientDICOM", "ImageOrientationText", "InPlanePhaseEncodingDirectionDICOM",
    "ConversionSoftware", "ConversionSoftwareVersion",
)

#: DICOM keywords never written, whatever --sidecar-add asks (direct patient identifiers)
IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs",
               "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
               "MedicalRecordLocator", "OtherPatientIDsSequence", "IssuerOfPatientID")

#: (BIDS key, DICOM keyword, form): plain attributes (looked up per frame, shared, top level)
FIELDS = (
    ("Modality", "Modality", "str"),
    ("MagneticFieldStrength", "MagneticFieldStrength", "num"),
    ("ImagingFrequency", "ImagingFrequency", "mhz"),
    ("Manufacturer", "Manufacturer", "vendor"),
    ("ManufacturersModelName", "ManufacturerModelName", "str"),
    ("InstitutionName", "InstitutionName", "str"),
    ("InstitutionalDepartmentName", "InstitutionalDepartmentName", "str"),
    ("InstitutionAddress", "InstitutionAddress", "str"),
    ("DeviceSerialNumber", "DeviceSerialNumber", "str"),
    ("StationName", "StationName", "str"),
    ("BodyPart", "BodyPartExamined", "str"),
    ("PatientPosition", "PatientPosition", "str"),
    ("ProcedureStepDescription", "PerformedProcedureStepDescription", "str"),
    ("SoftwareVersions", "SoftwareVersions", "joined"),
    ("MRAcquisitionType", "MRAcquisitionType", "str"),
    ("StudyDescription", "StudyDescription", "str"),
    ("SeriesDescription", "SeriesDescription", "str"),
    ("ProtocolName", "ProtocolName", "str"),
    ("ScanningSequence", "ScanningSequence", "joined"),
    ("SequenceVariant", "SequenceVariant", "joined"),
    ("ScanOptions", "ScanOptions", "joined"),
    ("SequenceName", "SequenceName", "str"),
    ("PulseSequenceName", "PulseSequenceName", "str"),
    ("SeriesNumber", "SeriesNumber", "int"),
    ("AcquisitionTime", "AcquisitionTime", "time"),
    ("AcquisitionNumber", "AcquisitionNumber", "int"),
    ("SliceThickness", "SliceThickness", "num"),
    ("SpacingBetweenSlices", "SpacingBetweenSlices", "num"),
    ("SAR", "SAR", "num"),
    ("EchoNumber", "EchoNumbers", "int"),
    ("EchoTime", "EchoTime", "ms"),
    ("RepetitionTime", "RepetitionTime", "ms"),
    ("InversionTime", "InversionTime", "ms"),
    ("FlipAngle", "FlipAngle", "num"),
    ("PercentPhaseFOV", "PercentPhaseFieldOfView", "num"),
    ("PercentSampling", "PercentSampling", "num"),
    ("EchoTrainLength", "EchoTrainLength", "int"),
    ("PartialFourierDirection", "PartialFourierDirection", "str"),
    ("PhaseEncodingSteps", "NumberOfPhaseEncodingSteps", "int"),
    ("FrequencyEncodingSteps", "MRAcquisitionFrequencyEncodingSteps", "int"),
    ("ParallelReductionFactorInPlane", "ParallelReductionFactorInPlane", "num"),
    ("ParallelAcquisitionTechnique", "ParallelAcquisitionTechnique", "str"),
    ("ParallelReductionFactorOutOfPlane", "ParallelReductionFactorOutOfPlane", "num"),
    ("AcquisitionDuration", "AcquisitionDuration", "num"),
    ("NumberOfKSpaceTrajectories", "NumberOfKSpaceTrajectories", "int"),
    ("PixelBandwidth", "PixelBandwidth", "num"),
    ("KVP", "KVP", "num"),
    ("ExposureTime", "ExposureTime", "ms"),
    ("XRayTubeCurrent", "XRayTubeCurrent", "num"),
    ("XRayExposure", "Exposure", "num"),
    ("ConvolutionKernel", "ConvolutionKernel", "joined"),
)

#: vendor names as dcm2niix writes them
VENDORS = (("SIEMENS", "Siemens"), ("PHILIPS", "Philips"), ("GE MEDICAL", "GE"), ("GE HEALTHCARE", "GE"),
           ("GE_", "GE"), ("GEMS", "GE"), ("UIH", "UIH"), ("UNITED IMAGING", "UIH"), ("CANON", "Canon"),
           ("TOSHIBA", "Toshiba"), ("HITACHI", "Hitachi"), ("FUJIFILM", "Fujifilm"), ("BRUKER", "Bruker"),
           ("MEDISO", "Mediso"), ("MRSOLUTIONS", "MRSolutions"), ("HYPERFINE", "Hyperfine"))

#: Siemens ucPhasePartialFourier codes -> fraction of k-space sampled
_SIEMENS_PF = {1: 0.5, 2: 0.625, 4: 0.75, 8: 0.875}
_COIL_COMBINE = {1: "Sum of Squares", 2: "Adaptive Combine"}


def _vendor(name: str) -> str:
    upper = name.strip().upper()
    for key, short in VENDORS:
        if upper.startswith(key):
            return short
    return name.strip()


# -- value forms --------------------------------------------------------------------------
def _number(v):
    """A DICOM number as a JSON number (int when whole), or None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() and abs(f) < 1e15 else float(format(f, ".10g"))


def _seq(v):
    if v is None:
        return []
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("latin-1")
    if isinstance(v, str):
        return [p.strip() for p in v.split("\\")]
    try:
        return [str(x).strip() for x in v]
    except TypeError:
        return [str(v).strip()]


def _time(value):
    """DICOM TM 'HHMMSS.frac' -> 'HH:MM:SS.ffffff' (dcm2niix's form)."""
    v = str(value).strip()
    if len(v) < 6 or not v[:6].isdigit():
        return v
    try:
        secs = float(v[4:]) if len(v) > 6 else float(v[4:6])
    except ValueError:
        return v
    return f"{v[0:2]}:{v[2:4]}:{secs:09.6f}"


def convert_value(value, form):
    """A DICOM value in one of the sidecar's forms (None when it does not fit)."""
    if value is None or value == "":
        return None
    if form in ("num", "int", "ms", "mhz"):
        first = value
        if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
            if len(value) == 0:
                return None
            first = value[0]
        n = _number(first)
        if n is None:
            return None
        if form == "int":
            return int(n)
        if form == "ms":
            return _number(float(n) / 1000.0)
        if form == "mhz" and n > 10000:  # stored in Hz (UIH)
            return _number(float(n) / 1e6)
        return n
    if form == "time":
        return _time(value)
    if form == "vendor":
        return _vendor(str(value))
    if form == "joined":
        return "\\".join(_seq(value))
    if form == "list":
        return _seq(value)
    return str(value).strip()


def _json_value(value):
    """Any DICOM element value as JSON (for --sidecar-add): numbers, strings or arrays of them."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        text = value.decode("latin-1").rstrip("\x00 ")
        return text if text.isprintable() else None
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return value.strip()
    if hasattr(value, "__len__") and not hasattr(value, "keys"):
        try:
            items = list(value)
        except TypeError:
            return str(value)
        if items and hasattr(items[0], "keys"):  # a sequence: not a sidecar value
            return None
        out = [_json_value(v) for v in items]
        return out
    n = _number(value)
    if n is not None and not isinstance(value, str):
        try:
            float(str(value))
            return n
        except ValueError:
            pass
    return str(value).strip()


# -- lookups ------------------------------------------------------------------------------
class Lookup:
    """Attributes of one frame: its per-frame functional group item, the shared one, then the
    top-level data set (the first that holds the keyword wins)."""

    def __init__(self, ds, index=None, use_light=True):
        # a data set read by the header view answers every key, vendor elements included, from it
        # (NeedsFull when it does not keep one: build() then asks the full header)
        self.light = use_light and is_light(ds)
        self.ds = ds if self.light else full(ds)
        self.index = index
        self.per, self.shared = frame_groups(self.ds, index)
        self._flat = None

    def _groups(self):
        if self._flat is None:
            self._flat = []
            for group in (self.per, self.shared):
                if group is None:
                    continue
                if self.light:
                    self._flat += [items[0] for _, items in group.sequences() if len(items) == 1]
                    continue
                try:
                    for el in group:
                        if el.VR == "SQ" and el.value is not None and len(el.value) == 1:
                            self._flat.append(el.value[0])
                except Exception:
                    continue
        return self._flat

    def get(self, keyword):
        if self.light:
            return self._get_light(keyword)
        for item in [g for g in (self.per, self.shared) if g is not None] + self._groups():
            try:
                v = item.get(keyword)
            except Exception:
                v = None
            if v is not None and v != "":
                return v
        try:
            if self.ds is None:
                return None
            v = self.ds.get(keyword)
        except Exception:
            return None
        return None if v == "" else v

    def _get_light(self, keyword):
        for item in [g for g in (self.per, self.shared) if g is not None] + self._groups():
            v = item.value(keyword)  # light.NeedsFull when the light view does not keep it
            if v is not None and v != "":
                return v
        v = self.ds.value(keyword)
        return None if v == "" else v

    def private(self, group, creator, element):
        """A private element of this frame: its functional group items (and the private items
        nested one level in them, as Siemens XA and Philips keep them), then the data set."""
        for holder in self._groups() + [self.ds]:
            if holder is None:
                continue
            v = private(holder, group, creator, element)
            if v is not None and v != "":
                return v
        return None


def _ascconv(text: str) -> dict:
    """The flat 'key = value' lines of a Siemens protocol's ASCCONV block."""
    out = {}
    start = text.find("### ASCCONV BEGIN")
    if start < 0:
        return out
    end = text.find("### ASCCONV END", start)
    for line in text[start:end if end > 0 else None].splitlines()[1:]:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.split("#")[0].strip().strip('"')
    return out


def _asc_number(proto, *keys):
    for k in keys:
        v = proto.get(k)
        if v is None:
            continue
        try:
            return _number(int(v, 16)) if v.lower().startswith("0x") else _number(v)
        except ValueError:
            continue
    return None


def _siemens_headers(look):
    """(CSA image tags, CSA series tags, ASCCONV dict) of a Siemens frame (empty when absent)."""
    image, series, proto = {}, {}, {}
    ds = look.ds
    try:
        h = gradients.csa_header(ds, "image")
        image = h["tags"] if h else {}
        h = gradients.csa_header(ds, "series")
        series = h["tags"] if h else {}
    except Exception:
        pass
    text = None
    items = series.get("MrPhoenixProtocol", {}).get("items") if series else None
    if items:
        text = str(items[0])
    else:  # XA enhanced: the protocol in the shared group's private sequence
        raw = None
        for holder in (look.shared, ds):
            if holder is None or raw is not None:
                continue
            try:
                sq = private(holder, 0x0021, "SIEMENS MR SDS 01", 0xFE)
                if sq:
                    raw = private(sq[0], 0x0021, "SIEMENS MR SDS 01", 0x19)
            except Exception:
                raw = None
        if raw is not None:
            text = raw.decode("latin-1", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    if text:
        proto = _ascconv(text)
    return image, series, proto


def _csa(tags, name):
    try:
        items = tags.get(name, {}).get("items")
    except Exception:
        return None
    return items if items else None


def _xa_private(look, element):
    """A value of the XA per-frame private sequence (0021,11FE) of this frame."""
    for holder in (look.per, look.shared):
        if holder is None:
            continue
        try:
            sq = private(holder, 0x0021, "SIEMENS MR SDI 02", 0xFE)
            if sq:
                v = private(sq[0], 0x0021, "SIEMENS MR SDI 02", element)
                if v is not None and v != "":
                    return v
        except Exception:
            continue
    return None


# -- building -----------------------------------------------------------------------------
def build(ds=None, frames=None, *, by_t=None, affine=None, datasets=None, grid=None, slice_times=None,
          part=None) -> dict:
    """The sidecar dict of one output.

    `by_t`: the output's frames in NIfTI order (volumes, then slices); `affine` (the output's) is
    accepted for callers, no key depends on it; `ds`/`frames` is the older
    form (first data set, frames of the first volume). `datasets`: one data set per volume
    (mosaics). `grid`: (columns, rows) of one slice when the DICOM Rows/Columns are not (a
    mosaic). `slice_times`: slice times (s) the caller already knows (a mosaic's CSA header).
    `part`: what the output holds when the caller split it (MAGNITUDE, PHASE, REAL, IMAGINARY,
    FIELDMAPHZ), appended to ImageType as dcm2niix does; found from the frame when not given.
    A series read through the header view answers from it (the full pydicom header only when the
    view lacks an element, or with gradients.LIGHT_VIEW off).
    """
    from .header_view import NeedsFull

    first = None
    if by_t:
        first = next((f for row in by_t for f in row if f is not None), None)
    elif frames:
        first = frames[0]
    if first is not None:
        ds, index = first.ds, first.index
    elif datasets:
        ds, index = datasets[0], None
    else:
        index = None
    try:
        return _build(Lookup(ds, index), by_t, frames, grid, slice_times, part)
    except NeedsFull:  # an element the light header does not keep: the full header answers
        return _build(Lookup(ds, index, use_light=False), by_t, frames, grid, slice_times, part)


def _build(look, by_t, frames, grid, slice_times, part):
    out = {}
    for key, keyword, form in FIELDS:
        try:
            value = convert_value(look.get(keyword), form)
        except Exception:
            value = None
        if value is not None and value != "":
            out[key] = value
    _fallbacks(out, look)
    _image_type(out, look, part)
    _echo(out, look)
    if out.get("EchoTime") == 0:
        del out["EchoTime"]  # a computed map (a field map in Hz) has no echo time
    try:
        vendor = out.get("Manufacturer", "")
        modality = str(out.get("Modality", "")).upper()
        _phase_encoding(out, look, grid)
        _modifiers(out, look)
        if vendor == "Siemens":
            _siemens(out, look)
        elif vendor == "GE":
            _ge(out, look)
        elif vendor == "Philips":
            _philips(out, look)
        elif vendor == "UIH":
            _uih(out, look)
        _readout(out, look)
        if modality == "MR" and str(out.get("MRAcquisitionType", "")).upper() != "3D":  # 3D: no slices in time
            timing = slice_times if slice_times else _slice_timing(by_t or ([frames] if frames else None), look)
            if timing:
                out["SliceTiming"] = timing
        else:
            out.pop("SliceTiming", None)
    except Exception:  # odd vendor data: the plain keys are still worth writing
        pass
    return _finish(out, look)


def _finish(out, look):
    from .. import __version__

    iop = _floats(look.get("ImageOrientationPatient"))
    if iop is not None and len(iop) == 6:
        out["ImageOrientationPatientDICOM"] = [_number(v) for v in iop]
    pe = _pe_dir(look)
    if pe:
        out["InPlanePhaseEncodingDirectionDICOM"] = pe
    out["ConversionSoftware"] = "medconv"
    out["ConversionSoftwareVersion"] = __version__
    order = {k: i for i, k in enumerate(KEYS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def _floats(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = v.split("\\")
    try:
        return [float(x) for x in (v if hasattr(v, "__len__") else [v])]
    except (TypeError, ValueError):
        return None


#: the output's part, as dcm2niix appends it to ImageType
_PARTS = {"M": "MAGNITUDE", "MAGNITUDE": "MAGNITUDE", "P": "PHASE", "PHASE": "PHASE", "R": "REAL", "REAL": "REAL",
          "I": "IMAGINARY", "IMAGINARY": "IMAGINARY"}
#: GE (0043,102F) image type: magnitude, phase, real, imaginary
_GE_PARTS = {0: "MAGNITUDE", 1: "PHASE", 2: "REAL", 3: "IMAGINARY"}


def part_of_suffix(suffix):
    """The ImageType part of a split output from the name part dcm2niix gives it (`_e2_ph` -> PHASE,
    `_real`, `_imaginary`, `_fieldmaphz`), or None (magnitude, an echo, no split)."""
    words = str(suffix or "").lower().split("_")
    for word, part in (("fieldmaphz", "FIELDMAPHZ"), ("ph", "PHASE"), ("real", "REAL"), ("imaginary", "IMAGINARY")):
        if word in words:
            return part
    return None


def _part(look, base):
    """MAGNITUDE/PHASE/REAL/IMAGINARY/FIELDMAPHZ of the frame, or None when nothing says."""
    from .gradients import element_value as _value
    from .gradients import first_item as _item

    if look.per is not None:
        ftype = _item(_value(look.per, "MRImageFrameTypeSequence"))
        kinds = [v.upper() for v in _seq(_value(ftype, "FrameType"))] if ftype is not None else []
        if "FIELD_MAP" in kinds:
            return "FIELDMAPHZ"
        whole = str(_value(look.ds, "ComplexImageComponent") or "").strip().upper()
        if whole in _PARTS:  # the file holds one part
            return _PARTS[whole]
        comp = str(_value(ftype, "ComplexImageComponent") or "").strip().upper()
        if whole == "MIXED" and comp == "MAGNITUDE":
            return None  # a MIXED file: its phase/real/imaginary frames are told apart, magnitude is the default
        return _PARTS.get(comp)
    if str(look.get("Manufacturer") or "").upper().startswith("GE"):
        ge = private(look.ds, 0x0043, "GEMS_PARM_01", 0x2F)
        try:
            return _GE_PARTS.get(int(float(ge))) if ge is not None else None
        except (TypeError, ValueError):
            return None
    if len(base) > 2 and base[2].upper() in ("M", "P", "R", "I"):
        return _PARTS[base[2].upper()]
    return None


def _image_type(out, look, part=None):
    """The file's ImageType, then the output's part (dcm2niix's form)."""
    value = _seq(look.ds.get("ImageType") if look.ds is not None else None)
    if not value:
        return
    label = part or _part(look, value)
    if label and label not in [v.upper() for v in value]:
        value.append(label)
    out["ImageType"] = value
    if label == "FIELDMAPHZ":
        out["Units"] = "Hz"


def _fallbacks(out, look):
    """Keys whose usual element is absent, from where enhanced files and vendors keep them."""
    if "AcquisitionTime" not in out:
        dt = look.get("AcquisitionDateTime")
        if dt and len(str(dt).strip()) >= 14:
            out["AcquisitionTime"] = _time(str(dt).strip()[8:])
    if "ImagingFrequency" not in out:
        f = convert_value(look.get("TransmitterFrequency"), "mhz")
        if f:
            out["ImagingFrequency"] = f
    if "InversionTime" not in out:  # enhanced MR: the frame's inversion times
        t = convert_value(look.get("InversionTimes"), "ms")
        if t is not None:
            out["InversionTime"] = t
    if "PhaseEncodingSteps" not in out:
        n = look.get("MRAcquisitionPhaseEncodingStepsInPlane")
        if n:
            out["PhaseEncodingSteps"] = int(n)
    steps = look.get("MRAcquisitionPhaseEncodingStepsOutOfPlane")
    if steps:
        out["PhaseEncodingStepsOutOfPlane"] = int(steps)


def _echo(out, look):
    if look.per is not None:
        te = look.get("EffectiveEchoTime")
        if te is not None:
            n = _number(te)
            if n is not None:
                out["EchoTime"] = _number(float(n) / 1000.0)


def _pe_dir(look):
    v = look.get("InPlanePhaseEncodingDirection")
    if not v:
        return None
    v = str(v).strip().upper()
    return {"COLUMN": "COL", "COL": "COL", "ROW": "ROW"}.get(v)


def _phase_encoding(out, look, grid):
    pe = _pe_dir(look)
    if pe is None:
        return
    rows, cols = look.get("Rows"), look.get("Columns")
    if grid is not None:
        cols, rows = grid
    recon = rows if pe == "COL" else cols
    if recon:
        out["ReconMatrixPE"] = int(recon)
    acq = _floats(look.get("AcquisitionMatrix"))
    steps = look.get("MRAcquisitionPhaseEncodingStepsInPlane")
    if steps:
        out["AcquisitionMatrixPE"] = int(steps)
    elif acq and len(acq) == 4:
        value = (acq[2] or acq[3]) if pe == "COL" else (acq[3] or acq[2])
        if value:
            out["AcquisitionMatrixPE"] = int(value)
    out["PhaseEncodingAxis"] = "j" if pe == "COL" else "i"


def _modifiers(out, look):
    mt = look.get("MagnetizationTransfer")
    if mt:
        out["MTState"] = str(mt).strip().upper() not in ("NONE", "NO", "OFF")
    spoil = look.get("Spoiling")
    if spoil:
        out["SpoilingState"] = str(spoil).strip().upper() not in ("NONE", "NO", "OFF")
    elif "SP" in _seq(look.get("SequenceVariant")):
        out["SpoilingState"] = True
    avg = _number(look.get("NumberOfAverages")) if look.get("NumberOfAverages") is not None else None
    if avg is not None and avg > 1:
        out["NumberOfAverages"] = avg


def _polarity(out, positive):
    axis = out.get("PhaseEncodingAxis")
    if axis is None or positive is None:
        return
    try:
        positive = int(float(positive[0] if isinstance(positive, (list, tuple)) else positive))
    except (TypeError, ValueError, IndexError):
        return
    # in the DICOM voxel order (rows top-down); rows_flipped() turns it for a bottom-up output
    if axis == "j":
        out["PhaseEncodingDirection"] = "j" if positive == 1 else "j-"
    else:
        out["PhaseEncodingDirection"] = "i" if positive == 1 else "i-"
    del out["PhaseEncodingAxis"]


def _siemens(out, look):
    """BIDS fields from the Siemens CSA headers, the protocol (ASCCONV) and the XA private elements."""
    image, series, proto = _siemens_headers(look)
    xa_text = _siemens_image_type(out, look)
    _siemens_kspace_shim(out, proto)
    _siemens_coils(out, look, image, proto, xa_text)
    _siemens_protocol_details(out, proto)
    _siemens_readout(out, look, image)
    _siemens_sds_fallbacks(out, look)
    te = [_asc_number(proto, f"alTE[{i}]") for i in range(2)]
    if "PHASE" in out.get("ImageType", []) and all(v is not None for v in te):
        out["EchoTime1"], out["EchoTime2"] = _number(te[0] / 1e6), _number(te[1] / 1e6)


def _siemens_image_type(out, look):
    """ImageTypeText (XA) and NonlinearGradientCorrection; returns the XA image type text."""
    kinds = [v.upper() for v in out.get("ImageType", [])]
    xa_text = _xa_private(look, 0x75)
    if xa_text:
        out["ImageTypeText"] = _seq(xa_text)
        kinds += [v.upper() for v in out["ImageTypeText"]]
    if "DIS2D" in kinds or "DIS3D" in kinds:
        out["NonlinearGradientCorrection"] = True
    elif "ND" in kinds:
        out["NonlinearGradientCorrection"] = False
    return xa_text


def _siemens_kspace_shim(out, proto):
    """Partial Fourier, resolutions, reference amplitude and lines, and the shim setting from the protocol."""
    pf = _asc_number(proto, "sKSpace.ucPhasePartialFourier")
    if pf in _SIEMENS_PF:
        out["PartialFourier"] = _SIEMENS_PF[pf]
    for key, names in (("BaseResolution", ("sKSpace.lBaseResolution",)),
                       ("TxRefAmp", ("sTXSPEC.asNucleusInfo[0].flReferenceAmplitude",)),
                       ("PhaseResolution", ("sKSpace.dPhaseResolution",)),
                       ("RefLinesPE", ("sPat.lRefLinesPE",))):
        v = _asc_number(proto, *names)
        if v is not None:
            out[key] = v
    shim = []
    for axis in "XYZ":
        v = _asc_number(proto, f"sGRADSPEC.asGPAData[0].lOffset{axis}", f"sGRADSPEC.lOffset{axis}")
        shim.append(v)
    shim += [_asc_number(proto, f"sGRADSPEC.alShimCurrent[{i}]") for i in range(5)]
    if all(v is not None for v in shim[:3]) and any(v is not None for v in shim[3:]):
        out["ShimSetting"] = [0 if v is None else v for v in shim]


def _siemens_coils(out, look, image, proto, xa_text):
    """Receive coil name, active elements and coil string, and the image orientation text."""
    coil = None
    for k in ("sCoilSelectMeas.aRxCoilSelectData[0].asList[0].sCoilElementID.tCoilID",
              "asCoilSelectMeas[0].asList[0].sCoilElementID.tCoilID"):
        coil = coil or proto.get(k)
    if coil:
        out["ReceiveCoilName"] = coil
    elements = _xa_private(look, 0x4F) or (_csa(image, "ImaCoilString") or [None])[0]
    if elements:
        out["ReceiveCoilActiveElements"] = str(elements)
    coil_string = private(look.ds, 0x0051, "SIEMENS MR HEADER", 0x0F)
    if coil_string:
        out["CoilString"] = str(coil_string).strip()
    elif out.get("ReceiveCoilName") and xa_text:
        out["CoilString"] = out["ReceiveCoilName"]
    text = private(look.ds, 0x0051, "SIEMENS MR HEADER", 0x0E)
    if text:
        out["ImageOrientationText"] = str(text).strip()


def _siemens_protocol_details(out, proto):
    """Sequence file, coil combination, consistency, diffusion scheme, delay and acceleration factors."""
    if proto.get("tSequenceFileName"):
        out["PulseSequenceDetails"] = proto["tSequenceFileName"]
    combine = _asc_number(proto, "ucCoilCombineMode")
    if combine in _COIL_COMBINE:
        out["CoilCombinationMethod"] = _COIL_COMBINE[combine]
    if proto.get("sProtConsistencyInfo.tBaselineString"):
        out["ConsistencyInfo"] = proto["sProtConsistencyInfo.tBaselineString"]
    if _asc_number(proto, "sDiffusion.lDiffDirections", "sDiffusion.lDiffWeightings"):
        # diffusion sensitisation: sDiffusion.dsScheme 1 bipolar / 2 monopolar, else ucReadOutMode 1/2
        scheme = {1: "Bipolar", 2: "Monopolar"}.get(_asc_number(proto, "sDiffusion.dsScheme"))
        scheme = scheme or {1: "Monopolar", 2: "Bipolar"}.get(_asc_number(proto, "ucReadOutMode"))
        if scheme:
            out["DiffusionScheme"] = scheme
    delay = _asc_number(proto, "lDelayTimeInTR")
    if delay:  # the pause after the slices of each volume (protocol us -> s)
        out["DelayTime"] = _number(delay / 1e6)
    mb = _asc_number(proto, "sSliceAcceleration.lMultiBandFactor")
    if mb is not None and mb > 1:
        out["MultibandAccelerationFactor"] = mb
    accel = _asc_number(proto, "sPat.lAccelFactPE")
    if accel is not None:
        out["ParallelReductionFactorInPlane"] = accel
    accel3 = _asc_number(proto, "sPat.lAccelFact3D")
    if accel3 is not None:
        out["ParallelReductionFactorOutOfPlane"] = accel3


def _siemens_readout(out, look, image):
    """Phase-encode bandwidth, dwell time, phase-encode polarity and table position."""
    bw = _csa(image, "BandwidthPerPixelPhaseEncode")
    bw = bw[0] if bw else (private(look.ds, 0x0019, "SIEMENS MR HEADER", 0x28) or _xa_private(look, 0x53))
    if bw is not None and _number(bw):
        out["BandwidthPerPixelPhaseEncode"] = _number(bw)
    dwell = _csa(image, "RealDwellTime")
    dwell = dwell[0] if dwell else _xa_private(look, 0x42)
    if dwell is not None and _number(dwell):
        out["DwellTime"] = _number(float(dwell) * 1e-9)
    positive = _csa(image, "PhaseEncodingDirectionPositive")
    positive = positive[0] if positive else _xa_private(look, 0x1C)
    _polarity(out, positive)
    table = _csa(image, "ImaRelTablePosition") or _floats(look.private(0x0021, "SIEMENS MR SDS 01", 0x05))
    if table and len(table) == 3:
        out["TablePosition"] = [_number(v) for v in table]


def _siemens_sds_fallbacks(out, look):
    """Scanning sequence, variant, options, sequence name and consistency from the SDS/SDI private elements."""
    for key, element in (("ScanningSequence", 0x5A), ("SequenceVariant", 0x5B), ("ScanOptions", 0x5C)):
        if key not in out:
            v = look.private(0x0021, "SIEMENS MR SDS 01", element)
            if v:
                out[key] = convert_value(v, "joined")
    if "SequenceName" not in out:
        v = look.private(0x0021, "SIEMENS MR SDI 02", 0x77)
        if v:
            out["SequenceName"] = str(v).strip()
    if "ConsistencyInfo" not in out:
        v = look.private(0x0021, "SIEMENS MR SDS 01", 0x10)
        if v:
            out["ConsistencyInfo"] = str(v).strip()


def _ge(out, look):
    ds = look.ds
    seq = private(ds, 0x0019, "GEMS_ACQU_01", 0x9C)
    if seq and "SequenceName" not in out:
        out["SequenceName"] = str(seq).strip()
    dur = _number(private(ds, 0x0019, "GEMS_ACQU_01", 0x5A))
    if dur:
        out["AcquisitionDuration"] = _number(float(dur) / 1e6)
    shim = [_number(private(ds, 0x0043, "GEMS_PARM_01", e)) for e in (0x02, 0x03, 0x04)]
    if all(v is not None for v in shim):
        out["ShimSetting"] = shim
    reuse = private(ds, 0x0043, "GEMS_PARM_01", 0x95)
    if reuse:
        out["PrescanReuseString"] = str(reuse).strip()
    asset = _floats(private(ds, 0x0043, "GEMS_PARM_01", 0x83))
    if asset and asset[0] > 0:
        out["ParallelReductionFactorInPlane"] = _number(1.0 / asset[0])
        if len(asset) > 1 and asset[1] > 0:
            out["ParallelReductionFactorOutOfPlane"] = _number(1.0 / asset[1])
    table = _seq(private(ds, 0x0043, "GEMS_PARM_01", 0xB2))
    if len(table) >= 3 and _number(table[2]) is not None:
        out["TablePosition"] = [0, 0, _number(table[2])]
    coil = look.get("ReceiveCoilName")
    if coil:
        out["CoilString"] = str(coil).strip()
    _ge_field_map_echoes(out, look)
    # echo spacing (us, 0043,102C) of the lines actually acquired (the matrix times the ASSET factor)
    esp = _number(private(ds, 0x0043, "GEMS_PARM_01", 0x2C))
    acq, recon = out.get("AcquisitionMatrixPE"), out.get("ReconMatrixPE")
    if esp and esp > 0 and acq and recon and recon > 1:
        factor = asset[0] if asset and 0 < asset[0] <= 1 else 1.0
        lines = int(round(float(acq) * float(factor)))  # noqa: RUF046 (numpy floats round to floats)
        if lines > 1:
            total = (lines - 1) * esp * 1e-6
            out["TotalReadoutTime"] = _number(total)
            out["EffectiveEchoSpacing"] = _number(total / (recon - 1))


def _ge_field_map_echoes(out, look):
    """EchoTime1/2 of a GE direct field map (Hz): the echo-time difference is
    1 / (2 pi |VelocityEncodeScale (0019,10E2)|) s, after the first echo's EchoTime."""
    venc = _number(private(look.ds, 0x0019, "GEMS_ACQU_01", 0xE2))
    te = _number(look.get("EchoTime"))
    if not venc or te is None or "FIELDMAPHZ" not in out.get("ImageType", []):
        return
    out["EchoTime1"] = _number(te / 1000.0)
    out["EchoTime2"] = _number(te / 1000.0 + 1.0 / (2.0 * math.pi * abs(float(venc))))


def _philips(out, look):
    rwv = look.get("RealWorldValueMappingSequence")
    try:
        item = rwv[0] if rwv else None
    except Exception:
        item = None
    if item is not None:
        s, i = _number(item.get("RealWorldValueSlope")), _number(item.get("RealWorldValueIntercept"))
        if s is not None and i is not None:
            out["PhilipsRWVSlope"], out["PhilipsRWVIntercept"] = s, i
    slope, inter = _number(look.get("RescaleSlope")), _number(look.get("RescaleIntercept"))
    scale = _number(look.private(0x2005, "Philips MR Imaging DD 001", 0x0E))
    if slope is not None and inter is not None:
        out["PhilipsRescaleSlope"], out["PhilipsRescaleIntercept"] = slope, inter
    if scale is not None:
        out["PhilipsScaleSlope"] = scale
        out["UsePhilipsFloatNotDisplayScaling"] = 1
    coil = look.get("ReceiveCoilName")
    if coil:
        out["CoilString"] = str(coil).strip()
    pos = [_number(look.private(0x2005, "Philips MR Imaging DD 001", e)) for e in (0x08, 0x09, 0x0A)]
    if all(v is not None for v in pos):
        out["TablePosition"] = pos
    technique = look.private(0x2001, "Philips Imaging DD 001", 0x20)
    if technique and "SequenceName" not in out:
        out["SequenceName"] = str(technique).strip()
    wfs = _number(look.private(0x2001, "Philips Imaging DD 001", 0x22))
    if wfs is not None:
        out["WaterFatShift"] = wfs
    _philips_readout(out, _number(look.private(0x2001, "Philips Imaging DD 001", 0x13)))


#: water-fat chemical shift (ppm) Philips' water-fat shift is measured against
WATER_FAT_PPM = 3.4


def _philips_readout(out, epi_factor=None):
    """Philips stores no echo spacing: estimate it from the water-fat shift (pixels), as dcm2niix
    does, under its Estimated* names (readout time = shift / (frequency x 3.4 ppm), times ETL/(ETL+1))."""
    wfs, freq, recon = out.get("WaterFatShift"), out.get("ImagingFrequency"), out.get("ReconMatrixPE")
    if not wfs or not freq or not recon or recon < 2:
        return
    etl = float(out.get("EchoTrainLength") or epi_factor or 1)  # EPI factor: (0018,0091), else (2001,1013)
    total = float(wfs) / (float(freq) * WATER_FAT_PPM) * etl / (etl + 1.0)
    out["EstimatedTotalReadoutTime"] = _number(total)
    out["EstimatedEffectiveEchoSpacing"] = _number(total / (float(recon) - 1.0))


def _uih(out, look):
    shown = private(look.ds, 0x0065, "Image Private Header", 0x05)
    if shown:
        out["PhaseEncodingDirectionDisplayed"] = str(shown).strip()
    if "AcquisitionTime" not in out:  # a UIH mosaic: the first of its slices' own times
        try:
            times = [str(item.get("AcquisitionTime") or "").strip()
                     for item in private(look.ds, 0x0065, "Image Private Header", 0x51)]
        except Exception:
            times = []
        times = [t for t in times if _dt_seconds(t) is not None]
        if times:
            out["AcquisitionTime"] = _time(min(times, key=_dt_seconds))


def _readout(out, look):
    """EffectiveEchoSpacing and TotalReadoutTime from the phase bandwidth (as Siemens defines it)."""
    bw, recon = out.get("BandwidthPerPixelPhaseEncode"), out.get("ReconMatrixPE")
    if not bw or not recon:
        return
    ees = 1.0 / (float(bw) * float(recon))
    out["EffectiveEchoSpacing"] = _number(ees)
    accel = out.get("ParallelReductionFactorInPlane") or 1
    out["DerivedVendorReportedEchoSpacing"] = _number(ees * float(accel))
    out["TotalReadoutTime"] = _number(ees * (float(recon) - 1))


def _dt_seconds(value):
    """Seconds of day of a DICOM DT/TM value with sub-second digits, or None."""
    v = str(value or "").strip()
    if "+" in v or (v.count("-") and len(v) > 14):
        v = v.split("+")[0].split("-")[0]
    if len(v) >= 14 and v[:14].isdigit():
        v = v[8:]
    if len(v) < 6 or not v[:6].isdigit():
        return None
    try:
        return int(v[0:2]) * 3600 + int(v[2:4]) * 60 + float(v[4:])
    except ValueError:
        return None


def _slice_timing(by_t, look):
    """Slice times (s, from the first slice) of the first volume from the vendor's own per-slice
    times: the frame acquisition times of enhanced files, or UIH's per-slice times. Whole-second
    AcquisitionTime values of classic files are never used."""
    from .gradients import element_value as _value
    from .gradients import first_item as _item

    if not by_t:
        return None
    row = [f for f in by_t[0] if f is not None]
    if len(row) < 2:
        return None
    times = []
    if all(f.index is None for f in row):
        return _classic_timing(row)
    for f in row:
        if f.index is None:
            return None
        d = f.ds if look.light else full(f.ds)
        per, _ = frame_groups(d, f.index)
        content = _item(_value(per, "FrameContentSequence")) if per is not None else None
        t = _dt_seconds(_value(content, "FrameAcquisitionDateTime")) if content is not None else None
        if t is None:
            return None
        times.append(t)
    if len(set(round(t, 4) for t in times)) < 2:
        return None
    t0 = min(times)
    return [_number(round(t - t0, 5)) for t in times]


def _classic_timing(row):
    """Slice times of classic MR files from their AcquisitionTime, only when the scanner stored
    sub-second times (whole seconds would be a guess, not a slice time)."""
    times, fine = [], False
    for f in row:
        v = str(f.ds.get("AcquisitionTime") or "").strip() if f.ds is not None else ""
        t = _dt_seconds(v)
        if t is None:
            return None
        fine = fine or ("." in v and v.split(".", 1)[1].strip("0") != "")
        times.append(t)
    if not fine or len(set(round(t, 4) for t in times)) < 2:
        return None
    t0 = min(times)
    return [_number(round(t - t0, 5)) for t in times]


def seconds_of_day(tm):
    """Seconds of day of a DICOM TM value, or None."""
    return _dt_seconds(tm)


def reoriented(data: dict, perm, flips) -> dict:
    """The sidecar of the same image with its voxel axes reordered: new axis b is old axis perm[b],
    reversed when flips[b]. Phase encoding follows its axis; SliceTiming keeps one entry per slice in
    the new index order (SliceEncodingDirection says which axis the slices lie along when not k)."""
    data = dict(data)
    where = {int(old): (new, -1 if flips[new] else 1) for new, old in enumerate(perm)}
    letters = "ijk"
    pe = data.get("PhaseEncodingDirection")
    if isinstance(pe, str) and pe[:1] in letters:
        new, sign = where[letters.index(pe[0])]
        sign *= -1 if pe.endswith("-") else 1
        data["PhaseEncodingDirection"] = letters[new] + ("-" if sign < 0 else "")
    axis = data.get("PhaseEncodingAxis")
    if isinstance(axis, str) and axis in letters:
        data["PhaseEncodingAxis"] = letters[where[letters.index(axis)][0]]
    timing = data.get("SliceTiming")
    if isinstance(timing, list):
        new, sign = where[2]
        if sign < 0:
            data["SliceTiming"] = timing[::-1]
        if new != 2:
            data["SliceEncodingDirection"] = letters[new]
    return data


def rows_flipped(data: dict) -> dict:
    """The sidecar of the same image stored with its rows in reverse order (j polarity turned)."""
    return reoriented(data, (0, 1, 2), (False, True, False))


# -- choosing keys --------------------------------------------------------------------------
def _tag_of(spec: str):
    """A 'gggg,eeee' (or 'ggggeeee') tag as an int, or None."""
    s = spec.strip().strip("()").replace(",", "").replace(" ", "")
    if len(s) != 8:
        return None
    try:
        return int(s, 16)
    except ValueError:
        return None


def check_add(spec: str) -> str:
    """The sidecar key of a --sidecar-add KEYWORD|gggg,eeee, or a UsageError."""
    from pydicom.datadict import dictionary_keyword, keyword_for_tag, tag_for_keyword

    from ..errors import UsageError

    tag = _tag_of(spec)
    if tag is not None:
        name = keyword_for_tag(tag) if not (tag >> 16) & 1 else ""
        key = name or f"{tag >> 16:04X},{tag & 0xFFFF:04X}"
    else:
        key = spec.strip()
        if tag_for_keyword(key) is None:
            raise UsageError(f"--sidecar-add: {spec!r} is not a DICOM keyword or a gggg,eeee tag")
        tag = tag_for_keyword(key)
        key = dictionary_keyword(tag)
    if key in IDENTIFIERS:
        raise UsageError(f"--sidecar-add: {key} identifies the patient; sidecars never hold it")
    return key


def check_key(key: str, option: str, added=()) -> str:
    """A key --sidecar-drop/--sidecar-only may name: one medconv writes or one --sidecar-add adds."""
    from ..errors import UsageError

    if key in KEYS or key in added:
        return key
    raise UsageError(f"{option}: unknown sidecar key {key!r} (keys: see docs/sidecar.md; DICOM elements "
                     "come in with --sidecar-add)")


def added_values(volume_header, specs) -> dict:
    """{key: JSON value} of the elements --sidecar-add names, read from the output's first data set."""
    out = {}
    ds = full(volume_header)
    if ds is None:
        return out
    from pydicom.datadict import tag_for_keyword

    for spec in specs:
        key = check_add(spec)
        tag = _tag_of(spec)
        if tag is None:
            tag = tag_for_keyword(key)
        try:
            el = ds.get(tag)
        except Exception:
            el = None
        if el is None:
            continue
        value = _json_value(el.value)
        if value is not None and value != "":
            out[key] = value
    return out


def select(data: dict, add=None, drop=(), only=None) -> dict:
    """The sidecar after --sidecar-add (already merged into `add`), --sidecar-drop and --sidecar-only."""
    data = dict(data)
    data.update(add or {})
    for key in drop:
        data.pop(key, None)
    if only is not None:
        data = {k: v for k, v in data.items() if k in only}
    return data


def write_sidecar(volume, json_path: str, force: bool = False, add=(), drop=(), only=None) -> list:
    """Write volume.metadata['sidecar'] (keys chosen by add/drop/only) as JSON, atomically."""
    from .. import fileio

    extra = added_values(volume.header, add) if add else {}
    data = select(volume.metadata.get("sidecar") or {}, extra, drop, only)
    import json

    text = json.dumps(data, indent=2) + "\n"
    with fileio.atomic_outputs([json_path], force=force) as (tmp,), open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return [json_path]


def key_choice(add, drop, only) -> dict | None:
    """{"add", "drop", "only"} of the --sidecar-* options (None when none is given), checked before
    anything is read or written: an unknown keyword or key is a usage error (exit 2)."""
    if not add and not drop and only is None:
        return None
    added = [check_add(a) for a in add]
    drop = [check_add(k) if _tag_of(k) is not None else k for k in drop]
    for key in drop:
        check_key(key, "--sidecar-drop", added)
    keys = None
    if only is not None:
        keys = _key_list(only)
        if not keys:
            from ..errors import UsageError

            raise UsageError("--sidecar-only needs at least one key")
        for key in keys:
            check_key(key, "--sidecar-only", added)
    return {"add": list(add), "drop": list(drop), "only": keys}


def _key_list(text: str) -> list:
    """'EchoTime,0019,100C,RepetitionTime' -> keys, a gggg,eeee tag kept whole (as its sidecar key)."""
    import re

    parts = [p.strip() for p in text.split(",") if p.strip()]
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and re.fullmatch(r"\(?[0-9A-Fa-f]{4}", parts[i]) and re.fullmatch(r"[0-9A-Fa-f]{4}\)?", parts[i + 1]):
            out.append(check_add(parts[i] + "," + parts[i + 1]))
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out
