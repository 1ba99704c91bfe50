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
    #: what a written file can hold (documented in the README, tested by the round trips)
    dtypes: tuple = ()
    ndims: tuple = (2, 3, 4)
    colour: tuple = ()
    geometry: bool = True


_ALL = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")

FORMATS = (
    Format("dicom", "medconv.dicom", (".dcm", ".dicom", ".ima"), _sniff.dicom, True,
           "DICOM file, series directory or DICOMDIR tree",
           dtypes=("uint8", "int8", "uint16", "int16"), ndims=(2, 3, 4), colour=("rgb",)),
    Format("nifti1", "medconv.formats.nifti", (".nii", ".nii.gz", ".hdr", ".img", ".img.gz"), _sniff.nifti1, True,
           "NIfTI-1 (.nii, .nii.gz, .hdr/.img pair)",
           dtypes=_ALL + ("complex64", "complex128"), ndims=(2, 3, 4, 5, 6, 7), colour=("rgb", "rgba")),
    Format("nifti2", "medconv.formats.nifti", (".nii", ".nii.gz"), _sniff.nifti2, True,
           "NIfTI-2 (540-byte header)",
           dtypes=_ALL + ("complex64", "complex128"), ndims=(2, 3, 4, 5, 6, 7), colour=("rgb", "rgba")),
    Format("analyze", "medconv.formats.nifti", (".hdr", ".img", ".img.gz"), _sniff.analyze, True,
           "Analyze 7.5 (.hdr/.img)", multi_file=True,
           dtypes=("uint8", "int16", "int32", "float32", "float64", "complex64"), ndims=(2, 3, 4), colour=("rgb",)),
    Format("metaimage", "medconv.formats.metaimage", (".mha", ".mhd"), _sniff.metaimage, True,
           "MetaImage (.mha, .mhd + .raw/.zraw)",
           dtypes=_ALL, ndims=(2, 3, 4), colour=("rgb", "rgba")),
    Format("nrrd", "medconv.formats.nrrd", (".nrrd", ".nhdr"), _sniff.nrrd, True, "NRRD (.nrrd, .nhdr + data)",
           dtypes=_ALL, ndims=(2, 3, 4), colour=("rgb", "rgba")),
    Format("minc", "medconv.formats.minc", (".mnc",), _sniff.minc, True, "MINC1 (NetCDF) and MINC2 (HDF5)",
           dtypes=("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"), ndims=(2, 3, 4)),
    Format("mgh", "medconv.formats.mgh", (".mgh", ".mgz"), _sniff.mgh, True, "FreeSurfer MGH/MGZ",
           dtypes=("uint8", "int16", "int32", "float32"), ndims=(2, 3, 4)),
    Format("png", "medconv.formats.raster", (".png",), _sniff.png, True, "PNG (8/16-bit grey, RGB, RGBA)",
           dtypes=("uint8", "uint16"), ndims=(2,), colour=("rgb", "rgba"), geometry=False),
    Format("jpeg", "medconv.formats.raster", (".jpg", ".jpeg"), _sniff.jpeg, True, "JPEG (8-bit grey, RGB)",
           dtypes=("uint8",), ndims=(2,), colour=("rgb",), geometry=False),
    Format("tiff", "medconv.formats.raster", (".tif", ".tiff"), _sniff.tiff, True, "TIFF (2D)",
           dtypes=("uint8", "uint16", "float32"), ndims=(2,), colour=("rgb", "rgba"), geometry=False),
    Format("bmp", "medconv.formats.raster", (".bmp",), _sniff.bmp, True, "BMP (8-bit grey, RGB)",
           dtypes=("uint8",), ndims=(2,), colour=("rgb",), geometry=False),
)

BY_NAME = {f.name: f for f in FORMATS}
#: names accepted by --to, with aliases users type
ALIASES = {"nifti": "nifti1", "nii": "nifti1", "mha": "metaimage", "mhd": "metaimage", "mgz": "mgh",
           "jpg": "jpeg", "tif": "tiff", "dcm": "dicom", "mnc": "minc"}
RASTER = ("png", "jpeg", "tiff", "bmp")
