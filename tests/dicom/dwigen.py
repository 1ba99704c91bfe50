"""Synthetic diffusion series with each vendor's gradient elements, for the gradient tests."""
from __future__ import annotations

import os

import numpy as np

import dcmgen

#: an oblique plane (rotated about two axes), so voxel axes and patient axes differ
OBLIQUE = (0.96592583, 0.0, 0.25881905, 0.06698730, 0.96592583, -0.25)
#: (b, unit direction in patient LPS axes) per volume
SCHEME = [(0.0, (0.0, 0.0, 0.0)), (1000.0, (1.0, 0.0, 0.0)), (1000.0, (0.0, 0.70710678, 0.70710678)),
          (2000.0, (0.26726124, -0.53452248, 0.80178373))]
VENDORS = ("standard", "siemens", "ge", "philips", "uih", "canon")
MAKER = {"standard": "ACME", "siemens": "SIEMENS", "ge": "GE MEDICAL SYSTEMS", "philips": "Philips Medical Systems",
         "uih": "UIH", "canon": "CANON_MEC"}


def _axes(iop):
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def _vendor_tags(ds, vendor, b, g, iop, pe="COL"):
    """Put (b, g) in `ds` where `vendor` stores them."""
    row, col, normal = _axes(iop)
    g = np.asarray(g, float)
    if vendor == "standard":
        ds.DiffusionBValue = b
        ds.DiffusionGradientOrientation = [float(v) for v in g]
    elif vendor == "siemens":
        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        block.add_new(0x0C, "IS", str(int(b)))
        if b > 0:
            block.add_new(0x0E, "FD", [float(v) for v in g])
    elif vendor == "ge":
        ds.InPlanePhaseEncodingDirection = pe
        f_axis, p_axis = (row, col) if pe == "COL" else (-col, row)  # ROW: the COL frame turned in plane
        comps = [float(g @ f_axis), float(g @ p_axis), float(-(g @ normal))]
        acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        for elem, v in zip((0xBB, 0xBC, 0xBD), comps):
            acq.add_new(elem, "DS", f"{v:.6f}")
        parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        parm.add_new(0x39, "IS", [str(int(b) + (1_000_000_000 if b > 0 else 0)), "0", "0", "0"])
    elif vendor == "philips":
        p1 = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
        p1.add_new(0x03, "FL", float(b))
        p1.add_new(0x04, "CS", "I" if b > 0 and not np.any(g) else ("O" if b > 0 else "N"))
        p5 = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        for elem, v in zip((0xB0, 0xB1, 0xB2), g):
            p5.add_new(elem, "FL", float(v))
    elif vendor == "uih":
        block = ds.private_block(0x0065, "Image Private Header", create=True)
        block.add_new(0x09, "FD", float(b))
        block.add_new(0x37, "FD", [float(g @ row), float(g @ col), float(g @ normal)])
    elif vendor == "canon":  # along (phase, frequency, -slice), the standard b-value beside it
        f_axis, p_axis = (row, col) if pe == "COL" else (-col, row)
        x, y, z = g @ p_axis, g @ f_axis, -(g @ normal)
        ds.ImageComments = f"b={b:g}({x:.3f},{y:.3f},{z:.3f})"
        ds.DiffusionBValue = b


def write_series(dirpath, vendor, *, scheme=SCHEME, iop=OBLIQUE, shape=(6, 5, 3), pe="COL", extra_volumes=()):
    """One file per slice and volume; `extra_volumes` appends (b, g) volumes (a Philips trace image)."""
    import pydicom

    os.makedirs(dirpath, exist_ok=True)
    rows, cols, nz = shape
    row, col, normal = _axes(iop)
    rng = np.random.default_rng(3)
    n = 0
    for t, (b, g) in enumerate(list(scheme) + list(extra_volumes)):
        for k in range(nz):
            n += 1
            path = os.path.join(dirpath, f"v{t:02d}_s{k:02d}.dcm")
            ipp = tuple(float(v) for v in (np.array([-20.0, 15.0, 7.0]) + normal * 3.0 * k))
            dcmgen.write_slice(path, rng.integers(0, 1000, (rows, cols)), ipp=ipp, iop=iop, modality="MR",
                               instance=n, series_number=7, description=f"dwi {vendor}",
                               extra={"Manufacturer": MAKER[vendor], "AcquisitionNumber": t + 1,
                                      "InPlanePhaseEncodingDirection": pe})
            ds = pydicom.dcmread(path)
            _vendor_tags(ds, vendor, b, g, iop, pe)
            ds.save_as(path, enforce_file_format=True)
    return dirpath


def write_enhanced(path, *, scheme=SCHEME, iop=OBLIQUE, shape=(6, 5, 3), manufacturer="Philips Medical Systems",
                   extra_volumes=(), slice_order=None, directionality=None):
    """One enhanced MR file: every frame's b-value and direction in its MR Diffusion Sequence, and its
    acquisition time (slice k of each volume at `slice_order[k]` x 0.1 s) in its Frame Content."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    rows, cols, nz = shape
    row, col, normal = _axes(iop)
    volumes = list(scheme) + list(extra_volumes)
    order = slice_order or list(range(nz))
    ds = dcmgen.new_dataset("1.2.840.10008.5.1.4.1.1.4.1")
    ds.Modality, ds.Manufacturer = "MR", manufacturer
    ds.PatientName, ds.PatientID = "Secret^Person", "ID-SECRET-42"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.9"
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 9, 1, "enhanced dwi"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    ds.AcquisitionTime = "101010.250000"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.NumberOfFrames = len(volumes) * nz
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness, pm.SpacingBetweenSlices = ["0.75", "0.8"], "3", "3"
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    timing = Dataset()
    timing.RepetitionTime, timing.FlipAngle, timing.EchoTrainLength = "4000", "90", 31
    fov = Dataset()
    fov.InPlanePhaseEncodingDirection, fov.PercentSampling, fov.PercentPhaseFieldOfView = "COLUMN", "100", "100"
    fov.MRAcquisitionPhaseEncodingStepsInPlane = 5
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.MRFOVGeometrySequence = Sequence([fov])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for t, (b, g) in enumerate(volumes):
        for k in range(nz):
            f = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [f"{v:.6f}" for v in np.array([-20.0, 15.0, 7.0]) + normal * 3.0 * k]
            content = Dataset()
            content.TemporalPositionIndex = t + 1
            content.StackID, content.InStackPositionNumber = "1", k + 1
            content.DimensionIndexValues = [t + 1, k + 1]
            secs = 100 * t + 0.1 * order[k]
            content.FrameAcquisitionDateTime = f"20240101101{int(secs // 60) % 6}{secs % 60:09.6f}".replace(" ", "0")
            diff = Dataset()
            diff.DiffusionBValue = float(b)
            iso = b > 0 and not np.any(g)
            diff.DiffusionDirectionality = directionality or ("ISOTROPIC" if iso else ("DIRECTIONAL" if b > 0 else "NONE"))
            if b > 0 and not iso:
                gd = Dataset()
                gd.DiffusionGradientOrientation = [float(v) for v in g]
                diff.DiffusionGradientDirectionSequence = Sequence([gd])
            echo = Dataset()
            echo.EffectiveEchoTime = 72.5
            ftype = Dataset()
            ftype.FrameType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            ftype.ComplexImageComponent = "MAGNITUDE"
            f.PlanePositionSequence = Sequence([pp])
            f.FrameContentSequence = Sequence([content])
            f.MRDiffusionSequence = Sequence([diff])
            f.MREchoSequence = Sequence([echo])
            f.MRImageFrameTypeSequence = Sequence([ftype])
            frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    dims = []
    for pointer in (0x00209128, 0x00209057):  # temporal position, then in-stack position
        item = Dataset()
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111  # Frame Content Sequence
        dims.append(item)
    ds.DimensionIndexSequence = Sequence(dims)
    rng = np.random.default_rng(5)
    ds.PixelData = rng.integers(0, 1000, (len(frames), rows, cols)).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    pydicom.dcmread(path)  # readable
    return path


def siemens_dwi_mosaics(dest) -> str:
    """nibabel's two Siemens DWI mosaics (b=0 and b=1000, shipped gzipped with its tests),
    unzipped into the folder `dest` (created); returns the folder."""
    import gzip

    import nibabel

    data = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data")
    os.makedirs(dest, exist_ok=True)
    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        with gzip.open(os.path.join(data, name)) as fh, open(os.path.join(dest, name[:-3]), "wb") as out:
            out.write(fh.read())
    return dest
