"""One DICOM file or frame -> plain geometry and value properties (None when absent).

Values are read once from the pydicom dataset (per-frame functional groups first,
then shared groups, then the top-level data set), so sorting and splitting in
assemble.py never touch pydicom and never raise on a missing attribute.
"""
from __future__ import annotations

import math

import numpy as np

#: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _get(ds, keyword):
    try:
        value = ds.get_known(keyword) if getattr(ds, "is_light", False) else ds.get(keyword)
    except Exception:
        return None
    if value is None or value == "":
        return None
    return value


def _floats(value, n=None):
    if value is None:
        return None
    try:
        seq = value if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str) else [value]
        out = [float(v) for v in seq]
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    if not all(math.isfinite(v) for v in out):
        return None
    return out


def _float(value):
    if value is None:
        return None
    try:
        if hasattr(value, "__len__") and not isinstance(value, str):
            value = value[0]
        v = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return v if math.isfinite(v) else None


def _int(value):
    v = _float(value)
    return None if v is None else int(v)


def _item(ds, seq_name):
    seq = _get(ds, seq_name)
    try:
        return seq[0] if seq else None
    except Exception:
        return None


class Frame:
    """Geometry and value properties of one 2D frame of a DICOM file."""

    __slots__ = (
        "_normal",
        "acq_time",
        "bits_allocated",
        "bits_stored",
        "bvalue",
        "columns",
        "ds",
        "echo_number",
        "echo_time",
        "float_pixels",
        "image_type",
        "index",
        "instance",
        "intercept",
        "iop",
        "ipp",
        "modality",
        "modality_lut",
        "n_frames",
        "path",
        "photometric",
        "pixel_offset",
        "pixel_spacing",
        "planar",
        "protocol",
        "rows",
        "samples",
        "series_description",
        "series_number",
        "series_uid",
        "signed",
        "size",
        "slice_thickness",
        "slope",
        "sop",
        "temporal",
        "transfer_syntax",
        "trigger",
    )

    def __init__(self, ds, path, index=None, n_frames=1, size=0, pixel_offset=None, float_pixels=0):
        self._normal = False  # not computed yet
        self.path = path
        self.index = index  # frame number in a multi-frame file (None for single-frame)
        self.n_frames = n_frames
        self.size = size
        self.pixel_offset = pixel_offset
        self.float_pixels = float_pixels  # 0, 4 (FloatPixelData) or 8 (DoubleFloatPixelData)
        # a Modality LUT Sequence maps stored values to real ones (pitfall 10: before any window)
        self.modality_lut = bool(_get(ds, "ModalityLUTSequence"))
        self.ds = ds
        meta = getattr(ds, "file_meta", None)
        ts = _get(meta, "TransferSyntaxUID") if meta is not None else None
        self.transfer_syntax = str(ts) if ts else "1.2.840.10008.1.2"
        self.series_uid = str(_get(ds, "SeriesInstanceUID") or "")
        self.sop = str(_get(ds, "SOPInstanceUID") or "")
        self.series_number = _int(_get(ds, "SeriesNumber"))
        self.series_description = str(_get(ds, "SeriesDescription") or "") or None
        self.modality = str(_get(ds, "Modality") or "") or None
        self.protocol = str(_get(ds, "ProtocolName") or "") or None
        self.rows = _int(_get(ds, "Rows"))
        self.columns = _int(_get(ds, "Columns"))
        self.samples = _int(_get(ds, "SamplesPerPixel")) or 1
        self.bits_allocated = _int(_get(ds, "BitsAllocated")) or (8 * float_pixels if float_pixels else 16)
        self.bits_stored = _int(_get(ds, "BitsStored")) or self.bits_allocated
        self.signed = (_int(_get(ds, "PixelRepresentation")) or 0) == 1
        self.photometric = str(_get(ds, "PhotometricInterpretation") or "MONOCHROME2").strip().upper()
        self.planar = _int(_get(ds, "PlanarConfiguration")) or 0
        image_type = _get(ds, "ImageType")
        if image_type is None:
            self.image_type = ()
        elif isinstance(image_type, str):
            self.image_type = tuple(v.strip().upper() for v in image_type.split("\\"))
        else:
            try:
                self.image_type = tuple(str(v).upper() for v in image_type)
            except TypeError:
                self.image_type = (str(image_type).upper(),)
        self.instance = _int(_get(ds, "InstanceNumber"))
        self.acq_time = _float(_get(ds, "AcquisitionTime"))
        self.slice_thickness = _float(_get(ds, "SliceThickness"))
        per = shared = None
        if index is not None and not getattr(ds, "is_light", False):  # light files have no functional groups
            pf = _get(ds, "PerFrameFunctionalGroupsSequence")
            try:
                per = pf[index] if pf is not None and index < len(pf) else None
            except Exception:
                per = None
            shared = _item(ds, "SharedFunctionalGroupsSequence")

        def pick(seq_name, keyword):
            for group in (per, shared):
                if group is not None:
                    item = _item(group, seq_name)
                    if item is not None and _get(item, keyword) is not None:
                        return _get(item, keyword)
            return _get(ds, keyword)

        self.iop = _floats(pick("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        self.ipp = _floats(pick("PlanePositionSequence", "ImagePositionPatient"), 3)
        self.pixel_spacing = _floats(pick("PixelMeasuresSequence", "PixelSpacing"), 2)
        if self.pixel_spacing is not None and not all(math.isfinite(v) and v > 0 for v in self.pixel_spacing):
            # 0 by 0 (seen in CR exports) or worse: no spacing at all, rather than a singular affine
            self.pixel_spacing = None
        self._normal = False  # orientation known now: computed on first use
        if index is not None and self.ipp is not None and self.normal is not None and (
                per is None or _item(per, "PlanePositionSequence") is None):
            # legacy multi-frame (RT dose, NM): one position for the file, frames spread along the normal
            offsets = _floats(_get(ds, "GridFrameOffsetVector"))
            step = _float(_get(ds, "SpacingBetweenSlices"))
            shift = None
            if offsets is not None and len(offsets) == n_frames:
                shift = offsets[index]
            elif step is not None:
                shift = step * index
            if shift is not None:
                self.ipp = list(np.asarray(self.ipp) + self.normal * shift)
        thick = _float(pick("PixelMeasuresSequence", "SliceThickness"))
        if thick is not None:
            self.slice_thickness = thick
        slope = _float(pick("PixelValueTransformationSequence", "RescaleSlope"))
        inter = _float(pick("PixelValueTransformationSequence", "RescaleIntercept"))
        if slope is None:
            slope = _float(_get(ds, "DoseGridScaling"))  # RT dose: stored * scaling = Gy
        self.slope = 1.0 if slope is None or slope == 0 else slope
        self.intercept = 0.0 if inter is None else inter
        self.echo_number = _int(_get(ds, "EchoNumbers"))
        self.echo_time = _float(pick("MREchoSequence", "EffectiveEchoTime")) if per is not None else None
        if self.echo_time is None:
            self.echo_time = _float(_get(ds, "EchoTime"))
        content = None
        for group in (per, shared):
            if group is not None and content is None:
                content = _item(group, "FrameContentSequence")
        self.temporal = _int(_get(content, "TemporalPositionIndex")) if content is not None else None
        if self.temporal is None:
            self.temporal = _int(_get(ds, "TemporalPositionIdentifier"))
        self.trigger = _float(pick("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"))
        if self.trigger is None:
            self.trigger = _float(_get(ds, "TriggerTime"))
        self.bvalue = _float(pick("MRDiffusionSequence", "DiffusionBValue"))
        if content is not None:
            t = _float(_get(content, "FrameAcquisitionDateTime"))
            if t is not None:
                self.acq_time = t

    # -- derived geometry ----------------------------------------------------------
    @property
    def normal(self):
        """Unit slice normal (row x column direction), LPS; None without orientation."""
        if self._normal is False:
            self._normal = None
            if self.iop is not None:
                # plain floats: this runs once per file of a scan, where numpy's small-array overhead shows
                rx, ry, rz, cx, cy, cz = self.iop
                n = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
                norm = math.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
                if norm >= 1e-6:
                    self._normal = np.array([n[0] / norm, n[1] / norm, n[2] / norm])
        return self._normal

    @property
    def distance(self):
        """Position along the slice normal (mm), or None when the geometry is absent."""
        n = self.normal
        if n is None or self.ipp is None:
            return None
        x, y, z = self.ipp
        return float(n[0]) * x + float(n[1]) * y + float(n[2]) * z

    @property
    def is_phase(self):
        return "P" in self.image_type[2:] or "PHASE" in self.image_type

    def signature(self):
        """What must be equal for two frames to be stacked in one volume (dcm2niix's splits)."""
        iop = tuple(round(v, 3) for v in self.iop) if self.iop is not None else None
        kind = tuple(v for v in self.image_type if v in ("M", "P", "R", "I", "MAGNITUDE", "PHASE", "REAL",
                                                           "IMAGINARY", "LOCALIZER"))
        echo = self.echo_number if self.echo_number is not None else (
            round(self.echo_time, 3) if self.echo_time is not None else None)
        # pixel spacing too: stacked slices of different spacings would all get the first one's
        spacing = tuple(round(float(v), 4) for v in self.pixel_spacing) if self.pixel_spacing is not None else None
        return (self.series_uid, iop, self.rows, self.columns, self.samples, self.bits_allocated,
                self.photometric, echo, kind, spacing)
