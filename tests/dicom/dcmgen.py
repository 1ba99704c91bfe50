"""Small synthetic DICOM series written with pydicom, for the reading tests."""
from __future__ import annotations

import os

import numpy as np

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


def new_dataset(sop_class: str, syntax: str | None = None):
    """An empty dataset with its file meta: SOP class, a new SOP instance UID, the transfer syntax
    (explicit VR little endian unless given)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    return ds


def write_slice(path, pixels, *, ipp, iop=(1, 0, 0, 0, 1, 0), spacing=(0.75, 0.8), series_uid="1.2.3.4.5",
                series_number=3, description="axial test", instance=1, slope=None, intercept=None,
                photometric="MONOCHROME2", modality="CT", ts="1.2.840.10008.1.2.1", preamble=True, extra=None,
                signed=True):
    """One single-frame image file; `pixels` is indexed [row, column]."""
    ds = new_dataset(CT if modality == "CT" else MR, ts)
    ds.Modality = modality
    ds.PatientName = "Secret^Person"
    ds.PatientID = "ID-SECRET-42"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.6g}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.PixelSpacing = [str(spacing[0]), str(spacing[1])]
    ds.SliceThickness = "2.5"
    ds.RepetitionTime = "2000"
    ds.EchoTime = "30"
    ds.FlipAngle = "90"
    ds.Manufacturer = "ACME"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    if slope is not None:
        ds.RescaleSlope = str(slope)
        ds.RescaleIntercept = str(intercept or 0)
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    arr = pixels.astype(np.int16 if signed else np.uint16)
    if ts == "1.2.840.10008.1.2.2":
        arr = arr.byteswap()
    ds.PixelData = arr.tobytes()
    _save(ds, path, preamble)
    return path


def _save(ds, path, preamble):
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, enforce_file_format=False)


def make_series(dirpath, shape=(12, 10, 6), *, iop=(1, 0, 0, 0, 1, 0), step=None, origin=(-20.0, 15.5, 7.25),
                spacing=(0.75, 0.8), names=None, reverse_instances=False, skip=(), seed=0, **kw):
    """A series of shape (rows, cols, slices); returns (paths, data[row, col, slice], slice positions)."""
    os.makedirs(dirpath, exist_ok=True)
    _rows, _cols, nz = shape
    rng = np.random.default_rng(seed)
    data = rng.integers(-1000, 2000, size=shape).astype(np.int16)
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    step = normal * 2.5 if step is None else np.asarray(step, float)
    paths, positions = [], []
    for k in range(nz):
        if k in skip:
            continue
        ipp = np.asarray(origin) + k * step
        name = names[k] if names else f"slice{k:03d}.dcm"
        inst = nz - k if reverse_instances else k + 1
        paths.append(write_slice(os.path.join(dirpath, name), data[:, :, k], ipp=ipp, iop=iop, spacing=spacing,
                                 instance=inst, **kw))
        positions.append(ipp)
    return paths, data, positions


def expected_affine(iop, spacing, step, origin):
    """The RAS affine of such a series (voxel i = column, j = row)."""
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    aff = np.eye(4)
    aff[:3, 0] = row * spacing[1]
    aff[:3, 1] = col * spacing[0]
    aff[:3, 2] = step
    aff[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff


def two_series(d):
    """A folder of two 3-slice series: number 2 "T1 ax/../" (values 0-2) and 7 "CT<tab>body" (10-12)."""
    os.makedirs(d)
    for k in range(3):
        write_slice(os.path.join(d, f"a{k}.dcm"), np.full((6, 5), k, np.int16), ipp=(0, 0, 2.0 * k),
                    series_uid="1.2.3.4.5.1", series_number=2, description="T1 ax/../", instance=k + 1)
        write_slice(os.path.join(d, f"b{k}.dcm"), np.full((6, 5), 10 + k, np.int16), ipp=(0, 0, 2.0 * k),
                    series_uid="1.2.3.4.5.2", series_number=7, description="CT\tbody", instance=k + 1)
