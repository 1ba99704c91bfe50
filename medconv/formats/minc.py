"""MINC: read MINC1 (NetCDF classic) and MINC2 (HDF5) through nibabel; write MINC2 with h5py.

Reading: the array keeps the file's dimension order for the spatial axes (so the
affine is exactly nibabel's), with a time dimension moved last. MINC's per-slice
image-min/image-max scaling makes real values floats: integer data is stored as
its real values in float64 (scaling None), except when the scaling is the
identity (image range == valid range), where the stored integers are kept.
Irregular spacing and malformed dimension declarations are refused.

Writing: MINC2 only, the /minc-2.0 layout with xspace, yspace, zspace (and time)
dimensions carrying start, step and direction_cosines, in the order of the
Volume's axes, and one image variable holding the real values: floats as they
are, integers with valid_range = image range = the dtype's range (identity
scaling). Colour, complex and 64-bit integers are refused.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .. import io, untrusted
from ..errors import CorruptInput, OutputError, UnsupportedFormat
from ..volume import Volume

_SPATIAL = ("xspace", "yspace", "zspace")
_WRITABLE = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def _load(path: str):
    """The nibabel image, with nibabel's complaints turned into clean input errors."""
    from nibabel.filebasedimages import ImageFileError
    from nibabel.fileholders import FileHolder
    from nibabel.minc1 import Minc1Image, MincError
    from nibabel.minc2 import Minc2Image

    # chosen by content, not by name: nibabel.load would refuse a MINC file without .mnc
    head = io.read_bytes(path, 8)
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        klass = Minc1Image
    elif head[:8] == b"\x89HDF\r\n\x1a\n":
        klass = Minc2Image
        _check_references(path)
    else:
        raise CorruptInput("not a MINC file (neither NetCDF nor HDF5)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            img = klass.from_file_map({"image": FileHolder(filename=path)})
    except UserWarning as exc:
        raise CorruptInput(f"malformed MINC dimension declaration ({exc})", path) from None
    except MincError as exc:
        raise CorruptInput(f"malformed MINC file ({exc})", path) from None
    except ValueError as exc:
        if "Irregular" in str(exc):
            raise UnsupportedFormat("MINC files with irregular spacing are not supported", path) from None
        raise CorruptInput(f"not a readable MINC file ({exc})", path) from None
    except (KeyError, OSError, TypeError, IndexError, AttributeError, ImageFileError) as exc:
        raise CorruptInput(f"not a readable MINC file ({type(exc).__name__}: {exc})", path) from None
    return img


def _check_references(path: str) -> None:
    """Refuse a MINC2 file whose HDF5 objects read other files (see medconv.untrusted)."""
    import h5py

    from ..errors import guard

    with guard(path, "MINC2 (HDF5) file"):
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            raise CorruptInput(f"not a readable HDF5 file ({exc})", path) from None
        with fh:
            untrusted.check_hdf5(fh, path)


def _values(var) -> np.ndarray:
    try:
        return np.asarray(var[()], dtype=float)
    except Exception:  # netcdf variables and h5py datasets index differently
        return np.asarray(var[:], dtype=float)


def _identity_scaling(mf) -> bool:
    """True when image-min/max equal the valid range everywhere (real == stored)."""
    try:
        vmin, vmax = mf._get_valid_range()
        return bool(np.all(_values(mf._image_min) == vmin) and np.all(_values(mf._image_max) == vmax))
    except Exception:  # absent or odd scaling variables: let nibabel's scaled values decide
        return False


def read(path: str, fmt: str | None = None, header_only: bool = False, **options) -> Volume:
    img = _load(path)
    mf = img.dataobj.minc_file
    names = list(mf._dim_names)
    shape = tuple(int(n) for n in img.shape)
    stored = np.dtype(img.get_data_dtype()).newbyteorder("=")
    if stored.kind not in "iuf":
        raise UnsupportedFormat(f"MINC voxel type {stored} is not supported", path)
    keep = stored.kind == "f" or _identity_scaling(mf)
    dtype = stored if keep else np.dtype(np.float64)
    non_spatial = [ax for ax, n in enumerate(names) if not n.endswith("space")]
    if len(non_spatial) > 1 or len(shape) - len(non_spatial) != 3:
        raise UnsupportedFormat(f"MINC dimensions {names} are not 3 spatial axes plus at most one more", path)
    order = [ax for ax in range(len(shape)) if ax not in non_spatial] + non_spatial
    out_shape = tuple(shape[ax] for ax in order)
    time_step = None
    if non_spatial:
        dim = mf._dims[non_spatial[0]]
        step = getattr(dim, "step", None)
        time_step = abs(float(np.asarray(step).reshape(-1)[0])) if step is not None else None
    affine = np.asarray(img.affine, float)
    if not np.isfinite(affine).all():
        raise CorruptInput("the dimension steps, starts or cosines contain NaN or infinite values", path)
    io.check_size(path, int(np.prod(shape, dtype=np.int64)) * stored.itemsize,
                  io.file_size(path) * 1032 + 1024, compressed=io.file_size(path))  # HDF5 may compress chunks

    def loader():
        try:
            real = np.asarray(img.dataobj)
        except Exception as exc:  # nibabel/h5py/netcdf errors on damaged data
            raise CorruptInput(f"cannot read the MINC image data ({type(exc).__name__}: {exc})", path) from None
        arr = real.astype(dtype, copy=False) if keep else real.astype(np.float64, copy=False)
        return np.ascontiguousarray(np.transpose(arr, order)) if order != list(range(len(shape))) else arr

    vol = Volume(affine=affine, time_step=time_step, format="minc", path=path,
                 header={"dimorder": names, "version": 2 if type(img).__name__ == "Minc2Image" else 1},
                 metadata={"stored_dtype": str(stored)}, loader=loader, stored_shape=out_shape, stored_dtype=dtype)
    if not header_only:
        vol.array  # noqa: B018 - fail in read() on damaged data
    return vol


def _plain(value):
    """Attribute values as JSON-friendly Python types."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).rstrip(b"\x00").decode("latin-1")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            return [_plain(v) for v in value.tolist()]
        return value.tolist() if value.size != 1 else value.reshape(-1)[0].item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_header(path: str, fmt: str | None = None) -> dict:
    """Dimensions, variables and their attributes (MINC1 NetCDF or MINC2 HDF5), global attributes."""
    from ..errors import guard

    head = io.read_bytes(path, 8)
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        with guard(path, "MINC1 (NetCDF) file"):
            return _header_minc1(path)
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        # a corrupt HDF5 file fails in h5py anywhere (RuntimeError, KeyError, OSError...)
        with guard(path, "MINC2 (HDF5) file"):
            return _header_minc2(path)
    raise CorruptInput("not a MINC file (neither NetCDF nor HDF5)", path)


def _header_minc1(path: str) -> dict:
    from nibabel.externals.netcdf import netcdf_file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nc = netcdf_file(path, "r", mmap=False)
    except Exception as exc:  # the NetCDF parser raises assorted errors on bad files
        raise CorruptInput(f"not a readable NetCDF file ({exc})", path) from None
    out = {"format": "MINC1 (NetCDF)",
           "attributes": {k: _plain(v) for k, v in nc._attributes.items()},
           "dimensions": {k: v for k, v in nc.dimensions.items()}, "variables": {}}
    for name, var in nc.variables.items():
        entry = {"dimensions": list(var.dimensions), "dtype": str(var.data.dtype) if var.data is not None else None,
                 "attributes": {k: _plain(v) for k, v in var._attributes.items()}}
        if name in _SPATIAL + ("time",) or (var.data is not None and var.data.size == 1):
            try:
                entry["value"] = _plain(np.asarray(var.data))
            except Exception:  # value not stored: attributes only
                pass
        out["variables"][name] = entry
    nc.close()
    return out


def _header_minc2(path: str) -> dict:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise CorruptInput(f"not a readable HDF5 file ({exc})", path) from None
    with fh:
        untrusted.check_hdf5(fh, path)
        if "minc-2.0" not in fh:
            raise CorruptInput("HDF5 file without a /minc-2.0 group: not MINC2", path)
        root = fh["minc-2.0"]
        out = {"format": "MINC2 (HDF5)", "attributes": {k: _plain(v) for k, v in root.attrs.items()},
               "dimensions": {}, "variables": {}}
        if "dimensions" in root:
            for name, ds in root["dimensions"].items():
                out["dimensions"][name] = {k: _plain(v) for k, v in ds.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("dimensions/"):
                out["variables"][name] = {"shape": list(obj.shape), "dtype": str(obj.dtype),
                                          "attributes": {k: _plain(v) for k, v in obj.attrs.items()}}

        root.visititems(visit)
    return out


def _storable(volume: Volume, path: str) -> np.ndarray:
    if volume.value_kind in ("rgb", "rgba", "complex"):
        raise OutputError(f"MINC output holds scalar voxels, not {volume.value_kind}", path)
    arr = volume.array if volume.scaling is None else volume.unscaled().array
    if volume.scaling is not None and arr.dtype.name not in _WRITABLE:
        arr = volume.real()  # integer real values beyond the integer types MINC holds
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.name not in _WRITABLE:
        raise OutputError(f"MINC output holds {', '.join(_WRITABLE)}, not {arr.dtype}", path)
    return arr


def write(volume: Volume, path: str, fmt: str = "minc", *, force: bool = False, protect=(), **options) -> list:
    import h5py

    if volume.ndim > 4:
        raise OutputError(f"MINC output holds at most 4 dimensions, not {volume.ndim}", path)
    arr = _storable(volume, path)
    grid = volume.grid_shape
    if volume.ndim == 2:
        arr = arr.reshape(grid + (1,))
    if not np.isfinite(volume.affine).all():
        raise OutputError("MINC cannot hold this geometry value: the affine holds NaN or infinite values", path)
    rot = volume.affine[:3, :3]
    steps = np.sqrt((rot ** 2).sum(axis=0))
    if not np.isfinite(steps).all():
        raise OutputError("MINC cannot hold this geometry value: a voxel size overflows", path)
    if np.any(steps == 0):
        raise OutputError("the affine has a zero-length voxel axis", path)
    cosines = rot / steps
    try:
        starts = np.linalg.solve(cosines, volume.affine[:3, 3])
    except np.linalg.LinAlgError:
        raise OutputError("the affine is singular: MINC cannot store it", path) from None
    names = list(_SPATIAL)
    data = arr
    if arr.ndim == 4:
        names = ["time"] + names
        data = np.moveaxis(arr, 3, 0)
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        valid = None
    else:
        info = np.iinfo(data.dtype)
        lo, hi = float(info.min), float(info.max)
        valid = np.array([lo, hi], dtype=np.float64)
    signed = b"signed__" if data.dtype.kind in "if" else b"unsigned"
    with io.atomic_outputs([path], force=force, protect=protect) as temps:
        try:
            with h5py.File(temps[0], "w") as fh:
                root = fh.create_group("minc-2.0")
                root.attrs["minc_version"] = np.bytes_(b"2.1.10")
                root.attrs["ident"] = np.bytes_(b"medconv")
                dims = root.create_group("dimensions")
                for ax, name in enumerate(_SPATIAL):
                    ds = dims.create_dataset(name, data=np.int32(0))
                    ds.attrs["length"] = np.uint32(arr.shape[ax])
                    ds.attrs["start"] = np.float64(starts[ax])
                    ds.attrs["step"] = np.float64(steps[ax])
                    ds.attrs["direction_cosines"] = cosines[:, ax].astype(np.float64)
                    ds.attrs["spacing"] = np.bytes_(b"regular__")
                    ds.attrs["alignment"] = np.bytes_(b"centre")
                    ds.attrs["units"] = np.bytes_(b"mm")
                    ds.attrs["varid"] = np.bytes_(b"MINC standard variable")
                    ds.attrs["vartype"] = np.bytes_(b"dimension____")
                if arr.ndim == 4:
                    ds = dims.create_dataset("time", data=np.int32(0))
                    ds.attrs["length"] = np.uint32(arr.shape[3])
                    ds.attrs["start"] = np.float64(0.0)
                    ds.attrs["step"] = np.float64(volume.time_step or 1.0)
                    ds.attrs["spacing"] = np.bytes_(b"regular__")
                    ds.attrs["units"] = np.bytes_(b"s")
                    ds.attrs["vartype"] = np.bytes_(b"dimension____")
                group = root.create_group("image").create_group("0")
                image = group.create_dataset("image", data=np.ascontiguousarray(data),
                                             compression="gzip" if options.get("compress") else None)
                image.attrs["dimorder"] = np.bytes_(",".join(names).encode())
                image.attrs["complete"] = np.bytes_(b"true_")
                image.attrs["signtype"] = np.bytes_(signed)
                image.attrs["varid"] = np.bytes_(b"MINC standard variable")
                image.attrs["vartype"] = np.bytes_(b"group________")
                if valid is not None:
                    image.attrs["valid_range"] = valid
                for var, value in (("image-min", lo), ("image-max", hi)):
                    ds = group.create_dataset(var, data=np.float64(value))
                    ds.attrs["varid"] = np.bytes_(b"MINC standard variable")
                    ds.attrs["vartype"] = np.bytes_(b"var_attribute")
                root.create_group("info")
        except RuntimeError as exc:
            # h5py reports a failed write (file-size limit, disk full, I/O error) as RuntimeError
            raise io.write_error(exc, path) from None
    return [os.path.abspath(path)]
