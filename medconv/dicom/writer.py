"""Volume -> a directory of single-frame DICOM files (CT, MR or Secondary Capture storage).

The directory is built beside the destination and renamed into place as a whole, so a
failure never leaves a partial series and a reader never sees one half-written.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import os
import re
import shutil
import tempfile
import uuid

import numpy as np

from .. import fileio, geometry, log
from ..errors import InputError, OutputError, UsageError
from .elements import EXPLICIT_LE

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: SOP class per modality; everything else (and every colour image) is Secondary Capture
SOP_CLASS = {"CT": CT_STORAGE, "MR": MR_STORAGE}

#: attributes a --template file lends the output: Patient, General Study, Patient Study and
#: Clinical Trial Subject/Study modules, so a derived series can go back to the same study
TEMPLATE_KEYWORDS = (
    "SpecificCharacterSet", "TimezoneOffsetFromUTC",
    # Patient
    "PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientMotherBirthName", "EthnicGroup", "PatientComments", "PatientSpeciesDescription",
    "PatientBreedDescription", "ResponsiblePerson", "ResponsibleOrganization", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    # General Study
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "ProcedureCodeSequence", "ReferencedStudySequence",
    # Patient Study
    "AdmittingDiagnosesDescription", "PatientAge", "PatientSize", "PatientWeight", "Occupation",
    "AdditionalPatientHistory",
    # Clinical Trial Subject / Study
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointID",
)

#: in-plane axes whose direction cosines are further from perpendicular than this are a shear
#: ImageOrientationPatient cannot hold
ORTHOGONAL_TOL = 1e-4
#: the slice axis must advance at least this far (mm) along the slice normal, or readers that
#: sort slices by position (every one of them) could not tell the slices apart
MIN_NORMAL_STEP = 0.05


def write_series(volume, path, *, force=False, protect=(), template=None, modality=None, **options) -> list:
    """Write `volume` as a series of single-frame files 0001.dcm ... in directory `path`.

    A `path` named like a file (x.dcm, no trailing slash) takes a single image as one file.
    `template`: a reference DICOM file whose patient and study attributes are copied.
    `modality`: overrides volume.metadata["modality"] (CT and MR get their own storage classes).
    Returns the files written.
    """
    path = os.fspath(path)
    dest = os.path.abspath(path)
    single = _names_a_file(path)
    if not single:
        _check_destination(volume, dest, path, force, protect)
    ref = _read_template(template) if template is not None else None
    # the modality: asked for, else the image's own, else the template's (a result going back to
    # the PACS next to its CT or MR is stored as CT or MR), else OT
    known = modality or volume.metadata.get("modality") or (str(ref.get("Modality", "") or "") if ref else "")
    modality = (known or "OT").strip().upper() or "OT"
    colour = volume.value_kind == "rgb"
    sop_class = SC_STORAGE if colour else SOP_CLASS.get(modality, SC_STORAGE)
    geo = _geometry(volume, path)
    nz, nt = geo["grid"][2:]
    n_files = nz * nt
    if single and n_files > 1:
        raise UsageError(f"{n_files} images make a DICOM series, which is written as a directory: give a "
                         f"destination ending in / (or --to dicom with a directory name)", path)
    pix = _pixels(volume, path, wide=sop_class != SC_STORAGE)
    base = _base_dataset(volume, sop_class, modality, geo, pix, ref)

    def save(t, k, target):
        from pydicom.uid import generate_uid

        n = t * nz + k
        uid = generate_uid()
        base.SOPInstanceUID = uid
        base.file_meta.MediaStorageSOPInstanceUID = uid
        base.InstanceNumber = n + 1
        ipp = geo["origin"] + k * geo["slice"]
        base.ImagePositionPatient = [_ds(v) for v in ipp]
        base.SliceLocation = _ds(float(np.dot(geo["normal"], ipp)))
        if nt > 1:
            base.TemporalPositionIdentifier = t + 1
            if volume.time_step:
                base.AcquisitionTime = _acq_time(geo["start"], t * float(volume.time_step))
        base.PixelData = _slice_bytes(pix["array"], k, t, colour, geo["ndim"])
        base.save_as(target, enforce_file_format=True)

    if single:
        with fileio.atomic_outputs([path], force=force, protect=protect) as temps:
            save(0, 0, temps[0])
        return [path]
    width = max(4, len(str(n_files)))
    names = [f"{n:0{width}d}.dcm" for n in range(1, n_files + 1)]

    def fill(tmpdir):
        for t in range(nt):
            for k in range(nz):
                save(t, k, os.path.join(tmpdir, names[t * nz + k]))

    _write_directory(dest, path, force, fill)
    return [os.path.join(path, name) for name in names]


def _names_a_file(path: str) -> bool:
    """x.dcm (not x.dcm/, not an existing directory): the user asked for one file, not a series."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return False
    return path.lower().endswith((".dcm", ".dicom", ".ima"))


# -- checks -------------------------------------------------------------------------------
def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


_SERIES_FILE = re.compile(r"\d+\.dcm")


def _only_a_series(folder: str) -> bool:
    """True when a directory holds nothing but numbered .dcm files (a series this writer made)."""
    try:
        with os.scandir(folder) as entries:
            return all(e.is_file(follow_symlinks=False) and _SERIES_FILE.fullmatch(e.name) for e in entries)
    except OSError:
        return False


def _check_destination(volume, dest, shown, force, protect):
    """Refuse before any work: a non-empty destination without force, or one holding an input."""
    inputs = [os.fspath(p) for p in protect or ()]
    if volume.path:
        inputs.append(os.fspath(volume.path))
    if os.path.lexists(dest):
        for p in inputs:
            if os.path.lexists(p) and (_inside(p, dest) or _inside(dest, p) and os.path.isdir(p)):
                raise OutputError("refusing to replace a directory that holds the input", shown)
        if os.path.isdir(dest) and not os.path.islink(dest):
            try:
                empty = not os.listdir(dest)
            except OSError as exc:
                raise OutputError(f"cannot read the destination directory ({exc.strerror})", shown) from None
            if not empty and not force:
                raise OutputError("destination directory exists and is not empty (use --force to replace it)",
                                  shown)
            if not empty and not _only_a_series(dest):
                # --force replaces a series medconv wrote, never a folder of someone's other files
                raise OutputError("destination directory holds files other than a DICOM series "
                                  "(numbered .dcm files); choose an empty or new directory", shown)
        elif not force:
            raise OutputError("destination exists (use --force to replace it)", shown)


def _geometry(volume, path) -> dict:
    """Per-series LPS geometry: origin, in-plane cosines and spacings, slice step, grid."""
    grid = tuple(int(n) for n in volume.grid_shape)
    if len(grid) not in (2, 3, 4):
        raise OutputError(f"DICOM series hold 2D, 3D or 4D images, not {len(grid)}D", path)
    if any(n < 1 for n in grid):
        raise OutputError(f"cannot write an empty image (shape {grid})", path)
    nx, ny = grid[0], grid[1]
    nz = grid[2] if len(grid) > 2 else 1
    nt = grid[3] if len(grid) > 3 else 1
    if nx > 65535 or ny > 65535:
        raise OutputError(f"a DICOM image holds at most 65535 rows and columns, not {nx}x{ny}", path)
    lps = geometry.ras_to_lps(volume.affine)
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    dx, dy = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    if dx == 0 or dy == 0 or not np.isfinite(lps).all() or not np.isfinite([dx, dy]).all():
        raise OutputError("the affine has a zero or non-finite in-plane voxel size", path)
    far = lps[:3, 3] + lps[:3, :3] @ (np.array([nx, ny, nz], float) - 1)
    if not np.isfinite(far).all() or not np.isfinite(np.linalg.norm(slice_step)):
        raise OutputError("DICOM cannot hold this geometry value: voxel positions overflow (absurd spacing "
                          "or origin)", path)
    row_cos, col_cos = col_step / dx, row_step / dy
    cos = float(np.dot(row_cos, col_cos))
    if abs(cos) > ORTHOGONAL_TOL:
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        raise OutputError(f"the in-plane voxel axes are sheared ({angle:.3f} degrees apart, not 90): DICOM's "
                          f"ImageOrientationPatient cannot hold that; resample the image first", path)
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    along = float(np.dot(normal, slice_step))
    if nz > 1:
        if abs(along) < MIN_NORMAL_STEP or abs(along) < 1e-3 * float(np.linalg.norm(slice_step)):
            raise OutputError("the slice axis lies (almost) in the image plane: a DICOM series could not tell "
                              "its slices apart", path)
        tilt = float(np.degrees(np.arccos(min(1.0, abs(along) / float(np.linalg.norm(slice_step))))))
        if tilt > 1e-3:
            log.note(f"slices are tilted {tilt:.2f} degrees from the image normal (kept as per-slice positions, "
                     f"like a gantry tilt)")
    thickness = abs(along) if along else float(np.linalg.norm(slice_step)) or 1.0
    return {"grid": (nx, ny, nz, nt), "ndim": len(grid), "origin": lps[:3, 3].copy(), "slice": slice_step.copy(),
            "row_cos": row_cos, "col_cos": col_cos, "dx": dx, "dy": dy, "normal": normal, "thickness": thickness,
            "start": datetime.datetime.now()}


# -- values -------------------------------------------------------------------------------
def _fits(lo, hi, dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= lo and hi <= info.max


def _pixels(volume, path, wide: bool) -> dict:
    """Stored array (int8/uint8/int16/uint16, grid + channels) and the rescale that gives real values.

    `wide`: CT and MR images hold 16-bit pixels only, so 8-bit values are widened (exactly).
    """
    kind = volume.value_kind
    if kind == "complex" or volume.dtype.kind == "c":
        raise OutputError("DICOM images cannot hold complex values (write NIfTI, or take the magnitude first)",
                          path)
    if kind == "rgba":
        raise OutputError("DICOM images cannot hold an alpha channel (RGB only)", path)
    arr = volume.array
    if kind == "rgb":
        if arr.dtype not in (np.uint8, np.uint16) or volume.scaling is not None:
            raise OutputError(f"DICOM RGB images hold unscaled uint8 or uint16 values, not {arr.dtype}", path)
        return {"array": arr, "slope": None, "intercept": None}
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    scaling = volume.scaling
    plan = None
    if arr.dtype == np.int8:
        # signed 8-bit pixels are legal but read wrongly by common tools (dcm2niix takes them as
        # unsigned): stored in 16 bits, the values are the same everywhere
        plan = {"array": arr.astype(np.int16), "slope": None, "intercept": None}
    elif arr.dtype in (np.uint8, np.int16, np.uint16):
        plan = {"array": arr, "slope": None, "intercept": None}
    elif arr.dtype.kind in "iu":
        lo, hi = (int(arr.min()), int(arr.max()))
        for cand in (np.int16, np.uint16):
            if _fits(lo, hi, cand):
                plan = {"array": arr.astype(cand), "slope": None, "intercept": None}
                break
        if plan is None and scaling is None:
            if hi - lo <= 65535 and max(abs(lo), abs(hi)) < 2**24:
                # an offset keeps every value exact (and exact again in a float32 reader)
                log.note(f"{arr.dtype} values {lo}..{hi} stored as uint16 with RescaleIntercept {lo} (exact)")
                return {"array": (arr - lo).astype(np.uint16), "slope": "1", "intercept": str(lo)}
            raise OutputError(f"{arr.dtype} values {lo}..{hi} span more than 16 bits, which a DICOM image cannot "
                              f"hold exactly (--dtype float32 accepts quantisation to 16 bits)", path)
    if plan is not None:
        if scaling is not None:
            plan["slope"], plan["intercept"] = _ds(scaling[0]), _ds(scaling[1])
    else:
        plan = _quantise(volume, path)
    if wide and plan["array"].dtype.itemsize == 1:
        plan["array"] = plan["array"].astype(np.int16 if plan["array"].dtype == np.int8 else np.uint16)
    return plan


def _slabs(arr):
    """Views of `arr` one slice (3rd axis) at a time: float64 work stays one slice big."""
    if arr.ndim < 3:
        yield (Ellipsis,), arr
        return
    for k in range(arr.shape[2]):
        yield (slice(None), slice(None), k), arr[:, :, k]


def _quantise(volume, path) -> dict:
    """Real (non-integer) values as uint16 with the slope/intercept that spans their range."""
    real = volume.real()
    lo, hi, whole = np.inf, -np.inf, True
    for _, slab in _slabs(real):
        slab = slab.astype(np.float64)
        if not np.isfinite(slab).all():
            raise OutputError("NaN or infinite values cannot be stored in a DICOM image", path)
        if slab.size:
            lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
            whole = whole and bool(np.array_equal(slab, np.rint(slab)))
    if not real.size:
        lo = hi = 0.0
    if whole:
        for cand in (np.int16, np.uint16):
            if _fits(lo, hi, cand):
                return {"array": real.astype(cand), "slope": None, "intercept": None}
        if hi - lo <= 65535 and max(abs(lo), abs(hi)) < 2**24:
            stored = np.empty(real.shape, np.uint16)
            for idx, slab in _slabs(real):
                stored[idx] = slab.astype(np.float64) - lo
            return {"array": stored, "slope": "1", "intercept": _ds(lo)}
    # 65534 steps, not 65535: the slope is rounded to a decimal string and must still reach `hi`
    slope_s = _ds((hi - lo) / 65534.0) if hi > lo else "1"
    inter_s = _ds(lo)
    slope, inter = float(slope_s), float(inter_s)
    stored = np.empty(real.shape, np.uint16)
    err = 0.0
    for idx, slab in _slabs(real):
        slab = slab.astype(np.float64)
        q = np.clip(np.rint((slab - inter) / slope), 0, 65535)
        stored[idx] = q
        if slab.size:
            err = max(err, float(np.abs(q * slope + inter - slab).max()))
    # readers evaluate stored * slope + intercept in float32 or float64: bound both
    bound = slope / 2.0 + 4 * float(np.finfo(np.float32).eps) * (max(abs(lo), abs(hi)) + slope)
    log.note(f"{volume.real_dtype()} values {lo:.6g}..{hi:.6g} quantised to uint16 (RescaleSlope {slope_s}, "
             f"RescaleIntercept {inter_s}): max error {err:.3g}, bound {bound:.3g}")
    return {"array": stored, "slope": slope_s, "intercept": inter_s, "bound": bound}


def _slice_bytes(arr, k, t, colour, ndim) -> bytes:
    """One image as DICOM wants it: rows of columns (voxel axis j then i), little endian."""
    if ndim == 2:
        img = arr
    elif ndim == 3:
        img = arr[:, :, k]
    else:
        img = arr[:, :, k, t]
    img = np.swapaxes(img, 0, 1)  # [i, j] -> [row=j, column=i]; colour stays last (pixel-interleaved)
    data = np.ascontiguousarray(img, dtype=img.dtype.newbyteorder("<")).tobytes()
    return data + b"\x00" if len(data) % 2 else data


# -- the data set -------------------------------------------------------------------------
def _ds(value) -> str:
    """A decimal string of at most 16 characters (DICOM's DS limit), as precise as fits."""
    from pydicom.valuerep import format_number_as_ds

    value = float(value)
    return "0" if value == 0 else format_number_as_ds(value)


def _da(when) -> str:
    return when.strftime("%Y%m%d")


def _tm(when) -> str:
    return when.strftime("%H%M%S.%f")


def _acq_time(start, seconds: float) -> str:
    return _tm(start + datetime.timedelta(seconds=seconds))


def _patient_orientation(vec) -> str:
    """Letters of DICOM's Patient Orientation for a direction (LPS: +x L, +y P, +z H)."""
    letters = (("L", "R"), ("P", "A"), ("H", "F"))
    order = np.argsort(-np.abs(vec))
    return "".join(letters[i][0 if vec[i] > 0 else 1] for i in order if abs(vec[i]) > 1e-4)


def _read_template(template):
    from pydicom.errors import InvalidDicomError

    template = os.fspath(template)
    if not os.path.isfile(template):
        raise InputError("no such file (--template)", template)
    try:
        from . import guards as dcm_guards
        ref = dcm_guards.dcmread(template, template, stop_before_pixels=True)
        _ = [ref.get(k) for k in TEMPLATE_KEYWORDS]  # decode now: a malformed element is an input error
    except InvalidDicomError:
        raise InputError("the --template file is not DICOM", template) from None
    except Exception as exc:
        raise InputError(f"cannot read the --template file ({type(exc).__name__}: {exc})", template) from None
    if "PatientID" not in ref and "StudyInstanceUID" not in ref:
        raise InputError("the --template file has neither a patient nor a study (is it an image file?)", template)
    return ref


def _base_dataset(volume, sop_class, modality, geo, pix, ref):
    """Every attribute the series shares; the per-file ones are set while writing."""
    from pydicom.dataset import Dataset

    now = geo["start"]
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class)
    colour = volume.value_kind == "rgb"
    arr = pix["array"]
    meta_in = volume.metadata or {}
    description = meta_in.get("series_description")
    text = [description or ""]

    _set_patient_study(ds, sop_class, now, ref)
    _set_series(ds, sop_class, modality, now, meta_in, text)
    _set_frame_of_reference_equipment(ds, sop_class)
    _set_image_plane(ds, sop_class, now, geo)
    _set_ct_mr_image(ds, sop_class, volume, geo)
    bits = _set_image_pixel(ds, colour, meta_in, geo, arr)
    _set_modality_voi_lut(ds, sop_class, pix, meta_in, colour)
    if any(any(ord(c) > 127 for c in s) for s in text) and "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PixelData = b""
    ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    return ds


def _file_meta(sop_class):
    """The file meta information group (explicit VR little endian, medconv as implementation)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    from .. import __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = EXPLICIT_LE
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDCONV_{__version__}"[:16]
    return meta


def _set_patient_study(ds, sop_class, now, ref):
    """SOP Common, Patient and General Study modules: empty, or lent by the template."""
    from pydicom.uid import generate_uid

    # SOP Common
    ds.SOPClassUID = sop_class
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(now), _tm(now)
    # Patient (Type 2) and General Study: empty, or lent by the template
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = _da(now), _tm(now)
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    if ref is not None:
        import copy

        for key in TEMPLATE_KEYWORDS:
            if key in ref:
                ds[key] = copy.deepcopy(ref[key])
        if "StudyInstanceUID" not in ref:
            log.warn("the --template file has no StudyInstanceUID: the series gets a new study")
            ds.StudyInstanceUID = generate_uid()


def _set_series(ds, sop_class, modality, now, meta_in, text):
    """General Series module; the protocol name joins `text` for the character set check."""
    from pydicom.uid import generate_uid

    description = meta_in.get("series_description")
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    number = meta_in.get("series_number")
    ds.SeriesNumber = int(number) if isinstance(number, (int, np.integer)) else 1
    ds.SeriesDate, ds.SeriesTime = _da(now), _tm(now)
    if description:
        ds.SeriesDescription = str(description)[:64]
    ds.Laterality = ""  # Type 2C: medconv cannot know whether a paired body part is shown
    if sop_class != SC_STORAGE:
        ds.PatientPosition = ""
    if meta_in.get("protocol"):
        ds.ProtocolName = str(meta_in["protocol"])[:64]
        text.append(ds.ProtocolName)


def _set_frame_of_reference_equipment(ds, sop_class):
    """Frame of Reference and General Equipment (+ SC Equipment) modules."""
    from pydicom.uid import generate_uid

    from .. import __version__

    # Frame of Reference
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    # General Equipment (+ SC Equipment)
    ds.Manufacturer = "medconv"
    ds.SoftwareVersions = __version__
    if sop_class == SC_STORAGE:
        ds.ConversionType = "WSD"
        ds.SecondaryCaptureDeviceManufacturer = "medconv"
        ds.SecondaryCaptureDeviceSoftwareVersions = __version__


def _set_image_plane(ds, sop_class, now, geo):
    """General Image and Image Plane modules."""
    # General Image
    # CT and MR want a third value: AXIAL (any cross-section) for CT, OTHER for MR
    third = {CT_STORAGE: ["AXIAL"], MR_STORAGE: ["OTHER"]}.get(sop_class, [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + third
    ds.ContentDate, ds.ContentTime = _da(now), _tm(now)
    ds.InstanceNumber = 1
    if sop_class == SC_STORAGE:
        ds.PatientOrientation = [_patient_orientation(geo["row_cos"]), _patient_orientation(geo["col_cos"])]
    if geo["grid"][3] > 1:
        ds.NumberOfTemporalPositions = geo["grid"][3]
        ds.TemporalPositionIdentifier = 1
    # Image Plane: PixelSpacing is row spacing (between rows, along j) then column spacing (along i)
    ds.PixelSpacing = [_ds(geo["dy"]), _ds(geo["dx"])]
    ds.ImageOrientationPatient = [_ds(v) for v in list(geo["row_cos"]) + list(geo["col_cos"])]
    ds.ImagePositionPatient = [_ds(v) for v in geo["origin"]]
    ds.SliceThickness = _ds(geo["thickness"])
    ds.SpacingBetweenSlices = _ds(geo["thickness"])


def _set_ct_mr_image(ds, sop_class, volume, geo):
    """CT / MR image modules: their Type 1 and 2 attributes."""
    if sop_class == CT_STORAGE:
        ds.KVP = ""
        ds.AcquisitionNumber = ""
    if sop_class == MR_STORAGE:
        ds.ScanningSequence = "RM"  # research mode: medconv does not know the acquisition
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
        tr = volume.time_step if geo["grid"][3] > 1 and volume.time_step else None
        ds.RepetitionTime = _ds(tr * 1000.0) if tr else ""


def _set_image_pixel(ds, colour, meta_in, geo, arr):
    """Image Pixel module; returns the bits allocated."""
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else (
        "MONOCHROME1" if meta_in.get("photometric") == "MONOCHROME1" else "MONOCHROME2")
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = geo["grid"][1], geo["grid"][0]
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    return bits


def _set_modality_voi_lut(ds, sop_class, pix, meta_in, colour):
    """Modality LUT (rescale) and VOI LUT (the source's display window) modules."""
    # Modality LUT: always for CT (Type 1 there), otherwise when values are rescaled
    if pix["slope"] is not None or sop_class == CT_STORAGE:
        ds.RescaleIntercept = pix["intercept"] or "0"
        ds.RescaleSlope = pix["slope"] or "1"
        if sop_class != CT_STORAGE:
            ds.RescaleType = "US"  # unspecified units
    # VOI LUT: the source's display window, when it had one
    wc, ww = meta_in.get("window_center"), meta_in.get("window_width")
    if not colour and wc is not None and ww is not None and ww > 0:
        ds.WindowCenter, ds.WindowWidth = _ds(wc), _ds(ww)


# -- the directory ------------------------------------------------------------------------
def _write_directory(dest, shown, force, fill):
    """Build the series in a temporary sibling directory, then rename it into place."""
    parent = fileio.make_parent(dest)
    base = os.path.basename(dest)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{base}.medconv-", suffix=".part", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror})", shown) from None
    registered = tmp
    fileio.LIVE_TEMPS.add(registered)
    old = None
    try:
        try:
            fill(tmp)
            os.chmod(tmp, 0o777 & ~_umask())
            if os.path.lexists(dest):
                empty_dir = os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)
                if not empty_dir:
                    if not force:  # appeared while we were writing
                        raise OutputError("destination exists (use --force to replace it)", shown)
                    if os.path.isdir(dest) and not os.path.islink(dest) and not _only_a_series(dest):
                        raise OutputError("destination directory holds files other than a DICOM series "
                                          "(numbered .dcm files); choose an empty or new directory", shown)
                    old = os.path.join(parent, f".{base}.medconv-old-{uuid.uuid4().hex[:12]}")
                    os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except OSError:
                if old is not None:
                    os.rename(old, dest)
                    old = None
                raise
            tmp = None
        except OSError as exc:
            code = fileio.errno_of(exc)  # pydicom re-raises a write's OSError with a traceback as its text
            if code == errno.ENOSPC:
                raise OutputError("disk full", shown) from None
            if code in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputError("permission denied", shown) from None
            raise OutputError(f"cannot write the series ({fileio.reason_of(exc)})", shown) from None
    finally:
        fileio.LIVE_TEMPS.discard(registered)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if os.path.islink(old):  # the destination was a symbolic link: the link goes, not its target
                with contextlib.suppress(OSError):
                    os.unlink(old)
            else:
                shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
