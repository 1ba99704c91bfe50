"""The formats as data: name, backend module, extensions, sniffer, what it can write.

A backend module is imported only when a file of its format is read or written.
Every backend module has the same surface:

    read(path, fmt, header_only=False) -> Volume
    read_header(path, fmt) -> dict        (the native header, for `medconv header`)
    write(volume, path, fmt, *, force=False, protect=(), **options) -> list[str]
"""
from __future__ import annotations

from dataclasses import dataclass

from . import _sniff


@dataclass(frozen=True)
class Format:
    name: str
    module: str
    extensions: tuple
    sniff: object
    can_write: bool
    description: str
    #: formats whose files come in pairs or sets (header + data)
    multi_file: bool = False


FORMATS = (
    Format("dicom", "medconv.dicom", (".dcm", ".dicom", ".ima"), _sniff.dicom, True,
           "DICOM file, series directory or DICOMDIR tree"),
    Format("nifti1", "medconv.formats.nifti", (".nii", ".nii.gz", ".hdr", ".img", ".img.gz"), _sniff.nifti1, True,
           "NIfTI-1 (.nii, .nii.gz, .hdr/.img pair)"),
    Format("nifti2", "medconv.formats.nifti", (".nii", ".nii.gz"), _sniff.nifti2, True,
           "NIfTI-2 (540-byte header)"),
    Format("analyze", "medconv.formats.nifti", (".hdr", ".img", ".img.gz"), _sniff.analyze, True,
           "Analyze 7.5 (.hdr/.img)", multi_file=True),
    Format("metaimage", "medconv.formats.metaimage", (".mha", ".mhd"), _sniff.metaimage, True,
           "MetaImage (.mha, .mhd + .raw/.zraw)"),
    Format("nrrd", "medconv.formats.nrrd", (".nrrd", ".nhdr"), _sniff.nrrd, True, "NRRD (.nrrd, .nhdr + data)"),
    Format("minc", "medconv.formats.minc", (".mnc",), _sniff.minc, True, "MINC1 (NetCDF) and MINC2 (HDF5)"),
    Format("mgh", "medconv.formats.mgh", (".mgh", ".mgz"), _sniff.mgh, True, "FreeSurfer MGH/MGZ"),
    Format("png", "medconv.formats.raster", (".png",), _sniff.png, True, "PNG (8/16-bit grey, RGB, RGBA)"),
    Format("jpeg", "medconv.formats.raster", (".jpg", ".jpeg"), _sniff.jpeg, True, "JPEG (8-bit grey, RGB)"),
    Format("tiff", "medconv.formats.raster", (".tif", ".tiff"), _sniff.tiff, True, "TIFF (2D)"),
    Format("bmp", "medconv.formats.raster", (".bmp",), _sniff.bmp, True, "BMP (8-bit grey, RGB)"),
)

BY_NAME = {f.name: f for f in FORMATS}
#: names accepted by --to, with aliases users type
ALIASES = {"nifti": "nifti1", "nii": "nifti1", "mha": "metaimage", "mhd": "metaimage", "mgz": "mgh",
           "jpg": "jpeg", "tif": "tiff", "dcm": "dicom", "mnc": "minc"}
RASTER = ("png", "jpeg", "tiff", "bmp")
