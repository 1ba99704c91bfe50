"""BIDS-keyed acquisition metadata (as dcm2niix writes it), without identifying values."""
from __future__ import annotations

import json

#: (BIDS key, DICOM keyword, conversion) -- ms -> s for times, as BIDS wants
FIELDS = (
    ("Modality", "Modality", str),
    ("MagneticFieldStrength", "MagneticFieldStrength", float),
    ("Manufacturer", "Manufacturer", str),
    ("ManufacturersModelName", "ManufacturerModelName", str),
    ("BodyPartExamined", "BodyPartExamined", str),
    ("SeriesDescription", "SeriesDescription", str),
    ("ProtocolName", "ProtocolName", str),
    ("ScanningSequence", "ScanningSequence", str),
    ("SequenceVariant", "SequenceVariant", str),
    ("SeriesNumber", "SeriesNumber", int),
    ("AcquisitionTime", "AcquisitionTime", "time"),
    ("AcquisitionNumber", "AcquisitionNumber", int),
    ("ImageType", "ImageType", list),
    ("SliceThickness", "SliceThickness", float),
    ("SpacingBetweenSlices", "SpacingBetweenSlices", float),
    ("EchoTime", "EchoTime", "ms"),
    ("RepetitionTime", "RepetitionTime", "ms"),
    ("InversionTime", "InversionTime", "ms"),
    ("FlipAngle", "FlipAngle", float),
    ("EchoNumber", "EchoNumbers", int),
    ("PixelBandwidth", "PixelBandwidth", float),
    ("ImagingFrequency", "ImagingFrequency", float),
    ("KVP", "KVP", float),
    ("XRayExposure", "Exposure", float),
    ("ConvolutionKernel", "ConvolutionKernel", str),
)


def _time(value: str):
    """DICOM TM 'HHMMSS.frac' -> 'HH:MM:SS.frac' (dcm2niix's form)."""
    v = str(value).strip()
    if len(v) < 6 or not v[:6].isdigit():
        return v
    return f"{v[0:2]}:{v[2:4]}:{v[4:]}"


def _convert(value, how):
    if how == "ms":
        return round(float(value) / 1000.0, 6)
    if how == "time":
        return _time(value)
    if how is list:
        return [str(v) for v in value] if not isinstance(value, str) else value.split("\\")
    if how is int:
        return int(float(value))
    if how is float:
        return float(value)
    return str(value)


#: vendor names as dcm2niix writes them (BIDS examples use the same)
VENDORS = (("SIEMENS", "Siemens"), ("PHILIPS", "Philips"), ("GE MEDICAL", "GE"), ("GE HEALTHCARE", "GE"))


def _vendor(name: str) -> str:
    upper = name.strip().upper()
    for key, short in VENDORS:
        if upper.startswith(key):
            return short
    return name.strip()


def build(ds, frames=None) -> dict:
    """The sidecar dict of a series from its first data set (and its frames for SliceTiming)."""
    from .. import __version__

    out = {}
    for key, keyword, how in FIELDS:
        try:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            out[key] = _convert(value, how)
        except Exception:
            continue
    if "Manufacturer" in out:
        out["Manufacturer"] = _vendor(out["Manufacturer"])
    timing = _slice_timing(frames) if frames else None
    if timing:
        out["SliceTiming"] = timing
    out["ConversionSoftware"] = "medconv"
    out["ConversionSoftwareVersion"] = __version__
    return out


def _seconds(tm):
    v = str(tm).strip()
    try:
        return int(v[0:2]) * 3600 + int(v[2:4]) * 60 + float(v[4:] or 0)
    except ValueError:
        return None


def _slice_timing(frames):
    """Slice acquisition times relative to the first slice (s), from AcquisitionTime per slice."""
    times = []
    for f in frames:
        try:
            tm = f.ds.get("AcquisitionTime") if f.ds is not None and f.index is None else None
        except Exception:
            return None
        s = _seconds(tm) if tm else None
        if s is None:
            return None
        times.append(s)
    if len(times) < 2 or len(set(times)) < 2:
        return None
    t0 = min(times)
    return [round(t - t0, 4) for t in times]


def write_sidecar(volume, json_path: str, force: bool = False) -> list:
    """Write volume.metadata['sidecar'] as JSON, atomically; returns the files written."""
    from .. import io

    data = dict(volume.metadata.get("sidecar") or {})
    text = json.dumps(data, indent=2) + "\n"
    with io.atomic_outputs([json_path], force=force) as (tmp,), open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return [json_path]
