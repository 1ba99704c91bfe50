"""One DICOM file or frame -> plain geometry and value properties (None when absent).

Values are read once from the pydicom dataset (per-frame functional groups first,
then shared groups, then the top-level data set), so sorting and splitting in
assemble.py never touch pydicom and never raise on a missing attribute.
"""
from __future__ import annotations

import math

import numpy as np

from .elements import IMPLICIT_LE
from .header_view import HeaderItem, HeaderView

#: the header view's types (their get_known gives None for an absent value)
_LIGHT = (HeaderItem, HeaderView)

#: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data


def _get(ds, keyword):
    try:
        if type(ds) in _LIGHT:  # the header view's own (most calls, once per frame and value)
            value = ds.get_known(keyword)
            return None if value == "" else value
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
    if isinstance(seq_name, tuple):
        try:
            if getattr(ds, "is_light", False):
                seq = ds.get_tag((seq_name[0] << 16) | seq_name[1])
            else:
                element = ds.get(seq_name)
                seq = element.value if element is not None else None
        except Exception:
            return None
    else:
        seq = _get(ds, seq_name)
    try:
        return seq[0] if seq else None
    except Exception:
        return None


def _functional_groups(ds, index):
    """This frame's per-frame functional group item and the shared one (both None for a single frame)."""
    per = shared = None
    if index is not None:
        pf = _get(ds, "PerFrameFunctionalGroupsSequence")
        try:
            per = pf[index] if pf is not None and index < len(pf) else None
        except Exception:
            per = None
        shared = _item(ds, "SharedFunctionalGroupsSequence")
    return per, shared


def _pick(ds, per, shared, seq_name, keyword):
    """A value from the per-frame group, then the shared group, then the top-level data set."""
    for group in (per, shared):
        if group is not None:
            seq = _get(group, seq_name)
            try:
                item = seq[0] if seq else None
            except Exception:
                item = None
            if item is not None:
                value = _get(item, keyword)
                if value is not None:
                    return value
    return _get(ds, keyword)


class Frame:
    """Geometry and value properties of one 2D frame of a DICOM file."""

    __slots__ = (
        "_normal",
        "acq_datetime",
        "acq_time",
        "bits_allocated",
        "bits_stored",
        "bvalue",
        "bvec",
        "columns",
        "complex_part",
        "diffusion_directionality",
        "dim_index",
        "ds",
        "echo_number",
        "echo_time",
        "fieldmap",
        "float_pixels",
        "frame_type",
        "ge_psd",
        "ge_user12",
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
        "pe_reversed",
        "per_frame",
        "philips_ss",
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
        "shared_groups",
        "signed",
        "size",
        "slice_thickness",
        "slope",
        "sop",
        "temporal",
        "transfer_syntax",
        "trigger",
        "vendor",
    )

    #: what every frame of one file shares (read once per file: see `like`)
    FILE_FIELDS = ("modality_lut", "transfer_syntax", "series_uid", "sop", "series_number", "series_description",
                   "modality", "protocol", "rows", "columns", "samples", "bits_allocated", "bits_stored", "signed",
                   "photometric", "planar", "image_type", "instance")

    def __init__(self, ds, path, index=None, n_frames=1, size=0, pixel_offset=None, float_pixels=0, like=None):
        """`like`: another frame of the same data set, whose FILE_FIELDS this one takes over."""
        self._normal = False  # not computed yet
        self.path = path
        self.index = index  # frame number in a multi-frame file (None for single-frame)
        self.n_frames = n_frames
        self.size = size
        self.pixel_offset = pixel_offset
        self.float_pixels = float_pixels  # 0, 4 (FloatPixelData) or 8 (DoubleFloatPixelData)
        # a Modality LUT Sequence maps stored values to real ones; it comes before any VOI window,
        # which only chooses how they are displayed
        self.ds = ds
        if like is not None and like.ds is ds and like.float_pixels == float_pixels:
            for name in self.FILE_FIELDS:
                setattr(self, name, getattr(like, name))
        else:
            self.modality_lut = bool(_get(ds, "ModalityLUTSequence"))
            self._read_identity(ds)
            self._read_pixel_description(ds, float_pixels)
            self.instance = _int(_get(ds, "InstanceNumber"))
        self.acq_time = _float(_get(ds, "AcquisitionTime"))
        self.slice_thickness = _float(_get(ds, "SliceThickness"))
        per, shared = _functional_groups(ds, index)
        # this frame's functional group items (pydicom Datasets, or HeaderItems with .get(keyword)), for
        # readers of per-frame values beyond the properties below
        self.per_frame, self.shared_groups = per, shared
        self._read_geometry(ds, index, n_frames, per, shared)
        self._read_frame_values(ds, per, shared)
        self._read_vendor_fields(ds, per, shared)
        self.pe_reversed = False  # set by the series rules (GE epi_pepolar)

    def _read_identity(self, ds):
        """Transfer syntax, UIDs, series number and description, modality and protocol."""
        meta = getattr(ds, "file_meta", None)
        ts = _get(meta, "TransferSyntaxUID") if meta is not None else None
        self.transfer_syntax = str(ts) if ts else IMPLICIT_LE
        self.series_uid = str(_get(ds, "SeriesInstanceUID") or "")
        self.sop = str(_get(ds, "SOPInstanceUID") or "")
        self.series_number = _int(_get(ds, "SeriesNumber"))
        self.series_description = str(_get(ds, "SeriesDescription") or "") or None
        self.modality = str(_get(ds, "Modality") or "") or None
        self.protocol = str(_get(ds, "ProtocolName") or "") or None

    def _read_pixel_description(self, ds, float_pixels):
        """Matrix size, sample layout, bit depth, signedness, photometric interpretation and ImageType."""
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

    def _read_geometry(self, ds, index, n_frames, per, shared):
        """Orientation, position (public, Philips private or legacy multi-frame offsets) and pixel spacing."""
        self.iop = _floats(_pick(ds, per, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        self.ipp = _floats(_pick(ds, per, shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
        # Philips files modified after the scanner (PACS, anonymisers) may keep a frame's position and
        # orientation only in the private per-frame item (2005,140F): used when nothing public is there
        private_position = False
        if per is not None and (self.ipp is None or self.iop is None):
            philips_item = _item(per, (0x2005, 0x140F))
            if philips_item is not None:
                if self.ipp is None:
                    self.ipp = _floats(_get(philips_item, "ImagePositionPatient"), 3)
                    private_position = self.ipp is not None
                if self.iop is None:
                    self.iop = _floats(_get(philips_item, "ImageOrientationPatient"), 6)
        self.pixel_spacing = _floats(_pick(ds, per, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
        if self.pixel_spacing is not None and not all(math.isfinite(v) and v > 0 for v in self.pixel_spacing):
            # 0 by 0 (seen in CR exports) or worse: no spacing at all, rather than a singular affine
            self.pixel_spacing = None
        self._normal = False  # orientation known now: computed on first use
        if index is not None and self.ipp is not None and self.normal is not None and not private_position and (
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
        thick = _float(_pick(ds, per, shared, "PixelMeasuresSequence", "SliceThickness"))
        if thick is not None:
            self.slice_thickness = thick

    def _read_frame_values(self, ds, per, shared):
        """Rescale, echo, temporal position, trigger, diffusion, acquisition time and dimension index."""
        slope = _float(_pick(ds, per, shared, "PixelValueTransformationSequence", "RescaleSlope"))
        inter = _float(_pick(ds, per, shared, "PixelValueTransformationSequence", "RescaleIntercept"))
        if slope is None:
            slope = _float(_get(ds, "DoseGridScaling"))  # RT dose: stored * scaling = Gy
        self.slope = 1.0 if slope is None or slope == 0 else slope
        self.intercept = 0.0 if inter is None else inter
        self.echo_number = _int(_get(ds, "EchoNumbers"))
        self.echo_time = _float(_pick(ds, per, shared, "MREchoSequence", "EffectiveEchoTime")) if per is not None else None
        if self.echo_time is None:
            self.echo_time = _float(_get(ds, "EchoTime"))
        content = None
        for group in (per, shared):
            if group is not None and content is None:
                content = _item(group, "FrameContentSequence")
        self.temporal = _int(_get(content, "TemporalPositionIndex")) if content is not None else None
        if self.temporal is None:
            self.temporal = _int(_get(ds, "TemporalPositionIdentifier"))
        self.trigger = _float(_pick(ds, per, shared, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"))
        if self.trigger is None:
            self.trigger = _float(_get(ds, "TriggerTime"))
        self.bvalue = _float(_pick(ds, per, shared, "MRDiffusionSequence", "DiffusionBValue"))
        self.bvec = _floats(_diffusion_direction(per, shared), 3)
        directionality = _pick(ds, per, shared, "MRDiffusionSequence", "DiffusionDirectionality")
        self.diffusion_directionality = str(directionality).strip().upper() if directionality else None
        self.acq_datetime = None  # the frame's FrameAcquisitionDateTime as written (DT), enhanced files
        if content is not None:
            raw_dt = _get(content, "FrameAcquisitionDateTime")
            self.acq_datetime = str(raw_dt).strip() if raw_dt is not None else None
            t = _float(raw_dt)
            if t is not None:
                self.acq_time = t
        index_values = _get(content, "DimensionIndexValues") if content is not None else None
        self.dim_index = None
        if index_values is not None:
            try:
                self.dim_index = tuple(int(v) for v in (index_values if hasattr(index_values, "__len__")
                                                        else [index_values]))
            except (TypeError, ValueError):
                self.dim_index = None

    def _read_vendor_fields(self, ds, per, shared):
        """Vendor, Philips isotropic flag and scale slope, per-frame type, GE private fields, complex part."""
        manufacturer = str(_get(ds, "Manufacturer") or "").strip().upper()
        self.vendor = ("philips" if manufacturer.startswith("PHILIPS") else "ge" if manufacturer.startswith("GE ")
                       else "siemens" if manufacturer.startswith("SIEMENS") else manufacturer.lower() or None)
        if self.diffusion_directionality is None and self.vendor == "philips":
            # older Philips files: the private diffusion direction (2001,1004), "I" for the isotropic image
            private = _item(per, (0x2005, 0x140F)) if per is not None else None
            code = _private(private, 0x20011004, None) if private is not None else None
            code = code or _private(ds, 0x20011004, "PhilipsDiffusionDirection")
            if str(code or "").strip().upper() == "I":
                self.diffusion_directionality = "ISOTROPIC"
        # per-frame image type (enhanced files: Frame Type and Complex Image Component of each frame)
        frame_item = None
        for group in (per, shared):
            if group is not None and frame_item is None:
                for seq_name in _FRAME_TYPE_SEQUENCES:
                    frame_item = _item(group, seq_name)
                    if frame_item is not None:
                        break
        types = _strings(_get(frame_item, "FrameType")) if frame_item is not None else None
        self.frame_type = types if types else self.image_type
        component = str(_get(frame_item, "ComplexImageComponent") or "").strip().upper() if frame_item else ""
        # Philips private values: (2005,100E) scale slope, per frame inside (2005,140F) in enhanced files
        ss = None
        if self.vendor == "philips":
            private = _item(per, (0x2005, 0x140F)) if per is not None else None
            if private is not None:
                ss = _float(_private(private, 0x2005100E, None))
            if ss is None:
                ss = _float(_private(ds, 0x2005100E, "PhilipsScaleSlope"))
        self.philips_ss = ss if ss is not None and ss != 0 and math.isfinite(ss) else None
        self.ge_psd = self.ge_user12 = None
        ge_part = None
        if self.vendor == "ge":
            psd = _private(ds, 0x0019109C, "GEPulseSequenceName")
            self.ge_psd = str(psd).strip() if psd not in (None, "") else None
            self.ge_user12 = _int(_private(ds, 0x001910B3, "GEUserData12"))
            ge_part = _GE_PARTS.get(_int(_private(ds, 0x0043102F, "GEImageType")))
        self.fieldmap = "FIELD_MAP" in self.frame_type or "B0" in self.frame_type[2:]
        self.complex_part = _complex_part(component, self.frame_type, ge_part)

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
    def part(self):
        """What the voxels hold, as output names say it: None (magnitude), "phase", "real",
        "imaginary" or "fieldmaphz" (a field map in Hz)."""
        if self.fieldmap:
            return "fieldmaphz"
        return None if self.complex_part in (None, "magnitude") else self.complex_part

    @property
    def echo_time_s(self):
        """Echo time in seconds (None when absent)."""
        return None if self.echo_time is None else self.echo_time / 1000.0

    def scaling(self, philips="fp"):
        """(slope, intercept) from stored to real values. Philips files with a private scale slope
        (2005,100E) give the floating-point values by default, (SV x RS + RI) / (RS x SS), and the
        display values (SV x RS + RI) with philips="display"."""
        if philips == "fp" and self.philips_ss is not None:
            denominator = self.slope * self.philips_ss
            if denominator != 0 and math.isfinite(1.0 / self.philips_ss) and math.isfinite(1.0 / denominator):
                return 1.0 / self.philips_ss, self.intercept / denominator
        return self.slope, self.intercept

    def signature(self):
        """What must be equal for two frames to be stacked in one volume (dcm2niix's splits)."""
        iop = tuple(round(v, 3) for v in self.iop) if self.iop is not None else None
        kind = (self.part, "LOCALIZER" in self.image_type, self.pe_reversed)
        echo = self.echo_number if self.echo_number is not None else (
            round(self.echo_time, 3) if self.echo_time is not None else None)
        # pixel spacing too: stacked slices of different spacings would all get the first one's
        spacing = tuple(round(float(v), 4) for v in self.pixel_spacing) if self.pixel_spacing is not None else None
        return (self.series_uid, iop, self.rows, self.columns, self.samples, self.bits_allocated,
                self.photometric, echo, kind, spacing, self.series_number)


#: functional groups that hold a frame's Frame Type and Complex Image Component
_FRAME_TYPE_SEQUENCES = ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence", "MRSpectroscopyFrameTypeSequence",
                         "XAXRFFrameCharacteristicsSequence", "PETFrameTypeSequence")
#: GE private image type (0043,102F)
_GE_PARTS = {0: "magnitude", 1: "phase", 2: "real", 3: "imaginary"}
_COMPONENTS = {"MAGNITUDE": "magnitude", "PHASE": "phase", "REAL": "real", "IMAGINARY": "imaginary"}
#: image type values that name the complex part (Siemens M/P/R/I, Philips M/P/R/I, words elsewhere)
_TYPE_PARTS = {"P": "phase", "PHASE": "phase", "R": "real", "REAL": "real", "I": "imaginary",
               "IMAGINARY": "imaginary", "M": "magnitude", "MAGNITUDE": "magnitude"}


def _complex_part(component, types, ge_part):
    if component in _COMPONENTS:
        return _COMPONENTS[component]
    if "PHASE" in types:
        return "phase"
    for v in types[2:]:
        if v in _TYPE_PARTS:
            return _TYPE_PARTS[v]
    return ge_part


def _strings(value):
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\"))
    try:
        return tuple(str(v).strip().upper() for v in value)
    except TypeError:
        return (str(value).strip().upper(),)


def _private(ds, tag, keyword):
    """A private element's value: by keyword from the light parser, by tag from pydicom."""
    if ds is None:
        return None
    try:
        if getattr(ds, "is_light", False):
            return ds.get_tag(tag)
        element = ds.get(tag)
    except Exception:
        return None
    if element is None:
        return None
    value = getattr(element, "value", element)
    if isinstance(value, bytes):  # implicit VR or UN: the raw bytes of a private element
        return _decode_private(tag, value)
    return None if value == "" else value


def _decode_private(tag, raw):
    import struct

    if tag == 0x2005100E and len(raw) == 4:
        return struct.unpack("<f", raw)[0]
    if tag == 0x0043102F and len(raw) == 2:
        return struct.unpack("<h", raw)[0]
    try:
        return raw.decode("latin-1").strip("\x00 ")
    except Exception:
        return None


def _diffusion_direction(per, shared):
    """DiffusionGradientOrientation of a frame's MR Diffusion Sequence (None when absent)."""
    for group in (per, shared):
        if group is None:
            continue
        item = _item(group, "MRDiffusionSequence")
        if item is None:
            continue
        direction = _item(item, "DiffusionGradientDirectionSequence")
        value = _get(direction, "DiffusionGradientOrientation") if direction is not None else None
        if value is not None:
            return value
    return None
