"""Enhanced (multi-frame) MR files with functional groups and vendor private tags, written with pydicom."""
from __future__ import annotations

import numpy as np

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
PHILIPS = "Philips Medical Systems"
#: Dimension Index Pointers: Stack ID, In-Stack Position Number, Temporal Position Index, Effective Echo Time
STACK, IN_STACK, TEMPORAL, ECHO_TIME = 0x00209056, 0x00209057, 0x00209128, 0x00189082
#: a private dimension (Philips label type), pointed at as dcm2niix's corpora do
PRIVATE_LABEL = 0x20051429


def frame(k, *, te=None, part="MAGNITUDE", frame_type=None, temporal=1, dims=None, rs=1.0, ri=0.0, ss=None,
          bvalue=None, bvec=None, acq="20240101120000.00", directionality=None):
    """One frame's description: slice index k, echo time (ms), complex part, scaling, dimension values."""
    return {"k": k, "te": te, "part": part, "frame_type": frame_type, "temporal": temporal, "dims": dims,
            "rs": rs, "ri": ri, "ss": ss, "bvalue": bvalue, "bvec": bvec, "acq": acq,
            "directionality": directionality}


def write_enhanced(path, frames, pixels, *, dim_pointers=(STACK, IN_STACK), manufacturer=PHILIPS, series_number=5,
                   description="enh test", series_uid="1.2.3.4.9", iop=(1, 0, 0, 0, 1, 0), spacing=(2.0, 2.0),
                   origin=(-50.0, -40.0, -30.0), step=3.0, bits_stored=16, signed=False, echo_numbers=None,
                   private_position=False):
    """Write `frames` (see frame()) with `pixels[i]` ([row, col]) as frame i, in the order given.

    `private_position`: each frame's position only in the Philips private item (2005,140F).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rows, cols = pixels[0].shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_MR
    sop = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR, sop
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.PatientName, ds.PatientID = "Enhanced^Phantom", "ENH01"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "T1", "MIXED"]
    if echo_numbers is not None:
        ds.EchoNumbers = echo_numbers
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.NumberOfFrames = len(frames)
    org = Dataset()
    org.DimensionOrganizationUID = "1.2.3.4.10"
    ds.DimensionOrganizationSequence = Sequence([org])
    index_items = []
    for pointer in dim_pointers:
        item = Dataset()
        item.DimensionOrganizationUID = "1.2.3.4.10"
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111
        index_items.append(item)
    ds.DimensionIndexSequence = Sequence(index_items)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [str(spacing[0]), str(spacing[1])]
    measures.SliceThickness = str(step)
    shared.PixelMeasuresSequence = Sequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [str(v) for v in iop]
    shared.PlaneOrientationSequence = Sequence([orient])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    normal = np.cross(np.array(iop[:3], float), np.array(iop[3:], float))
    per = []
    if manufacturer == PHILIPS:
        ds.add_new(0x20050014, "LO", "Philips MR Imaging DD 005")
    for spec in frames:
        g = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = spec["k"] + 1
        content.TemporalPositionIndex = spec["temporal"]
        content.FrameAcquisitionDateTime = spec["acq"]
        content.DimensionIndexValues = list(spec["dims"] if spec["dims"] is not None else (1, spec["k"] + 1))
        g.FrameContentSequence = Sequence([content])
        position = [f"{v:.6f}" for v in np.asarray(origin) + normal * step * spec["k"]]
        if not private_position:
            pos = Dataset()
            pos.ImagePositionPatient = position
            g.PlanePositionSequence = Sequence([pos])
        pvt = Dataset()
        pvt.RescaleSlope = str(spec["rs"])
        pvt.RescaleIntercept = str(spec["ri"])
        pvt.RescaleType = "US"
        g.PixelValueTransformationSequence = Sequence([pvt])
        if spec["te"] is not None:
            echo = Dataset()
            echo.EffectiveEchoTime = float(spec["te"])
            g.MREchoSequence = Sequence([echo])
        ftype = Dataset()
        short = {"MAGNITUDE": "M", "PHASE": "P", "REAL": "R", "IMAGINARY": "I"}.get(spec["part"], "M")
        ftype.FrameType = ["ORIGINAL", "PRIMARY", "T1", spec["frame_type"] or short]
        ftype.ComplexImageComponent = spec["part"]
        g.MRImageFrameTypeSequence = Sequence([ftype])
        if spec["bvalue"] is not None:
            diff = Dataset()
            diff.DiffusionBValue = float(spec["bvalue"])
            if spec["directionality"]:
                diff.DiffusionDirectionality = spec["directionality"]
            if spec["bvec"] is not None:
                direction = Dataset()
                direction.DiffusionGradientOrientation = [float(v) for v in spec["bvec"]]
                diff.DiffusionGradientDirectionSequence = Sequence([direction])
            g.MRDiffusionSequence = Sequence([diff])
        if spec["ss"] is not None or private_position:
            private = Dataset()
            private.add_new(0x20050010, "LO", "Philips MR Imaging DD 001")
            if spec["ss"] is not None:
                private.add_new(0x2005100E, "FL", float(spec["ss"]))
            if private_position:
                private.ImagePositionPatient = position
            g.add_new(0x20050014, "LO", "Philips MR Imaging DD 005")
            g.add_new(0x2005140F, "SQ", Sequence([private]))
        per.append(g)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    arr = np.stack([np.asarray(p) for p in pixels]).astype(np.int16 if signed else np.uint16)
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
