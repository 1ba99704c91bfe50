"""The formats as data: what each format is and knows, defined here once.

A row names the backend module, the extensions it reads, the file a format name writes and the
extensions --to takes, the companion files of images stored as two files, the dtypes and
dimensions a written file can hold, the name messages give it, and the optional capabilities
the backend declares. A backend module is imported only when a
file of its format is read or written. Every backend module has the same surface:

    read(path, fmt, header_only=False) -> Volume
    read_header(path, fmt) -> dict        (the native header, for `medconv header`)
    write(volume, path, fmt, *, force=False, protect=(), **options) -> list[str]

and, for a format whose row has `pairs`, `files(path) -> list[str]` (the files of one image).
A declared capability promises one more function of the backend:

    "stream"   stream_slabs(volume, planes): the voxels slab by slab, read while inflating
               (for a Volume whose `stream` the reader set)
    "series"   info_records(path, series=None): one summary record per series of a path
    "scrub"    scrub(data, path, fmt, *, verify=True) -> (new bytes, names of what is removed,
               [(companion path, its new bytes)]): the file's identifying header text and every
               byte no header field accounts for removed, voxels and geometry kept (anonymize)
    "detached" point_to(header, name): a scrubbed header that names its detached data file,
               naming `name` instead (the data file of a renamed copy)
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
    #: the name messages give the format ("NIfTI-1"); the format name when empty
    label: str = ""
    #: the file a format name writes (`--to nifti1` -> .nii.gz); "/" is a folder (a DICOM series)
    default_extension: str = ""
    #: the extensions that, given to --to or ending a destination, write exactly that file
    written: tuple = ()
    #: (header extension, data extension) of an image stored as two files (.hdr + .img); the
    #: first pair names what a write makes by default
    pairs: tuple = ()
    #: what a written file can hold (documented in the README, tested by the round trips)
    dtypes: tuple = ()
    ndims: tuple = (2, 3, 4)
    colour: tuple = ()
    geometry: bool = True
    #: optional backend functions (see the module docstring): "stream", "series",
    #: "scrub", "detached"
    capabilities: frozenset = frozenset()

    def can(self, capability: str) -> bool:
        """Whether the backend declares `capability` (see CAPABILITIES)."""
        return capability in self.capabilities


#: every real-valued dtype medconv converts between, narrowest first (what --dtype offers)
ALL_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")
CAPABILITIES = ("stream", "series", "scrub", "detached")
_PAIR = ((".hdr", ".img"), (".hdr.gz", ".img.gz"))
_COMPLEX = ("complex64", "complex128")
_SCRUB = frozenset({"scrub"})
_STREAM = _SCRUB | {"stream"}
_DETACHED = _STREAM | {"detached"}

FORMATS = (
    Format("dicom", "medconv.dicom", (".dcm", ".dicom", ".ima"), _sniff.dicom, True,
           "DICOM file, series directory or DICOMDIR tree",
           label="DICOM", default_extension="/", written=(".dcm",), capabilities=frozenset({"series"}),
           dtypes=("uint8", "int8", "uint16", "int16"), ndims=(2, 3, 4), colour=("rgb",)),
    Format("nifti1", "medconv.formats.nifti", (".nii", ".nii.gz", ".hdr", ".img", ".img.gz"), _sniff.nifti1, True,
           "NIfTI-1 (.nii, .nii.gz, .hdr/.img pair)",
           label="NIfTI-1", default_extension=".nii.gz", written=(".nii", ".nii.gz", ".hdr", ".img"), pairs=_PAIR,
           capabilities=_STREAM, dtypes=ALL_DTYPES + _COMPLEX, ndims=(2, 3, 4, 5, 6, 7), colour=("rgb", "rgba")),
    Format("nifti2", "medconv.formats.nifti", (".nii", ".nii.gz"), _sniff.nifti2, True,
           "NIfTI-2 (540-byte header)",
           label="NIfTI-2", default_extension=".nii.gz", capabilities=_STREAM,
           dtypes=ALL_DTYPES + _COMPLEX, ndims=(2, 3, 4, 5, 6, 7), colour=("rgb", "rgba")),
    Format("analyze", "medconv.formats.nifti", (".hdr", ".img", ".img.gz"), _sniff.analyze, True,
           "Analyze 7.5 (.hdr/.img)",
           label="Analyze 7.5", default_extension=".hdr", pairs=_PAIR, capabilities=_STREAM,
           dtypes=("uint8", "int16", "int32", "float32", "float64", "complex64"), ndims=(2, 3, 4), colour=("rgb",)),
    Format("metaimage", "medconv.formats.metaimage", (".mha", ".mhd"), _sniff.metaimage, True,
           "MetaImage (.mha, .mhd + .raw/.zraw)",
           label="MetaImage", default_extension=".mha", written=(".mhd", ".mha"), pairs=((".mhd", ".raw"), (".mhd", ".zraw")),
           capabilities=_DETACHED,
           dtypes=ALL_DTYPES, ndims=(2, 3, 4), colour=("rgb", "rgba")),
    Format("nrrd", "medconv.formats.nrrd", (".nrrd", ".nhdr"), _sniff.nrrd, True,
           "NRRD (.nrrd, .nhdr + data)",
           label="NRRD", default_extension=".nrrd", written=(".nrrd", ".nhdr"), pairs=((".nhdr", ".raw"), (".nhdr", ".raw.gz")),
           capabilities=_DETACHED,
           dtypes=ALL_DTYPES, ndims=(2, 3, 4), colour=("rgb", "rgba")),
    Format("minc", "medconv.formats.minc", (".mnc",), _sniff.minc, True,
           "MINC1 (NetCDF) and MINC2 (HDF5)",
           label="MINC", default_extension=".mnc", written=(".mnc",), capabilities=_SCRUB,
           dtypes=("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"), ndims=(2, 3, 4)),
    Format("mgh", "medconv.formats.mgh", (".mgh", ".mgz"), _sniff.mgh, True,
           "FreeSurfer MGH/MGZ",
           label="MGH", default_extension=".mgz", written=(".mgh", ".mgz"), capabilities=_SCRUB,
           dtypes=("uint8", "int16", "int32", "float32"), ndims=(2, 3, 4)),
    Format("png", "medconv.formats.raster", (".png",), _sniff.png, True,
           "PNG (8/16-bit grey, RGB, RGBA)",
           default_extension=".png", written=(".png",), capabilities=_SCRUB,
           dtypes=("uint8", "uint16"), ndims=(2,), colour=("rgb", "rgba"), geometry=False),
    Format("jpeg", "medconv.formats.raster", (".jpg", ".jpeg"), _sniff.jpeg, True,
           "JPEG (8-bit grey, RGB)",
           default_extension=".jpg", written=(".jpg", ".jpeg"), capabilities=_SCRUB,
           dtypes=("uint8",), ndims=(2,), colour=("rgb",), geometry=False),
    Format("tiff", "medconv.formats.raster", (".tif", ".tiff"), _sniff.tiff, True,
           "TIFF (2D)",
           default_extension=".tif", written=(".tif", ".tiff"), capabilities=_SCRUB,
           dtypes=("uint8", "uint16", "float32"), ndims=(2,), colour=("rgb", "rgba"), geometry=False),
    Format("bmp", "medconv.formats.raster", (".bmp",), _sniff.bmp, True,
           "BMP (8-bit grey, RGB)",
           default_extension=".bmp", written=(".bmp",), capabilities=_SCRUB,
           dtypes=("uint8",), ndims=(2,), colour=("rgb",), geometry=False),
)

BY_NAME = {f.name: f for f in FORMATS}
#: other names --to accepts for a format (its extensions are accepted too)
ALIASES = {"nifti": "nifti1"}
#: the 2D picture formats (no geometry): a 3D volume becomes one file per slice
RASTER = tuple(f.name for f in FORMATS if not f.geometry)
