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
import re
import struct
import warnings

import numpy as np

from .. import fileio, untrusted
from ..errors import CorruptInput, MedconvError, OutputError, UnsupportedFormat
from ..volume import Volume
from . import _scrub
from ._registry import BY_NAME

_SPATIAL = ("xspace", "yspace", "zspace")
_WRITABLE = BY_NAME["minc"].dtypes


def _load(path: str):
    """The nibabel image, with nibabel's complaints turned into clean input errors."""
    from nibabel.filebasedimages import ImageFileError
    from nibabel.fileholders import FileHolder
    from nibabel.minc1 import Minc1Image, MincError
    from nibabel.minc2 import Minc2Image

    # chosen by content, not by name: nibabel.load would refuse a MINC file without .mnc
    head = fileio.read_bytes(path, 8)
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
    from ..errors import guard

    with guard(path, "MINC2 (HDF5) file"), _open_hdf5(path, path) as fh:
        untrusted.check_hdf5(fh, path)


def _open_hdf5(source, path: str):
    """h5py's File of `source` (a path or a file object), read only; an HDF5 file it cannot open is corrupt."""
    import h5py

    try:
        return h5py.File(source, "r")
    except OSError as exc:
        raise CorruptInput(f"not a readable HDF5 file ({exc})", path) from None


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
    fileio.check_size(path, int(np.prod(shape, dtype=np.int64)) * stored.itemsize,
                  fileio.file_size(path) * 1032 + 1024, compressed=fileio.file_size(path))  # HDF5 may compress chunks

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

    head = fileio.read_bytes(path, 8)
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

    with _open_hdf5(path, path) as fh:
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

    from . import values_to_write

    arr = values_to_write(volume, "minc", path, _storable)
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
    with fileio.atomic_outputs([path], force=force, protect=protect) as temps:
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
            raise fileio.write_error(exc, path) from None
    return [os.path.abspath(path)]


# -- scrubbing (anonymize) ------------------------------------------------------------------
# MINC1 (NetCDF classic) is rewritten at the byte level, MINC2 (HDF5) copied object by object with
# h5py, so removed text leaves no stale bytes: only the image (MINC2: image/0/image), image-min/max
# and the dimension variables are kept, each with an allow list of structural attributes; patient,
# study, acquisition, processing and any other variables/groups, the `history` and `ident`
# attributes and `comments` go. The result is read back and refused unless its affine and voxels
# equal the input's.

def scrub(data: bytes, path: str, fmt: str = "minc", *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, []) of a MINC1 or MINC2 file (see scrub_minc)."""
    return (*scrub_minc(data, path, verify=verify), [])


#: variables (MINC1) and objects under /minc-2.0/dimensions, /image (MINC2) that are kept
_MINC_DIMS = {"xspace", "yspace", "zspace", "time", "vector_dimension", "xfrequency", "yfrequency",
              "zfrequency", "tfrequency"}


_MINC1_KEEP = _MINC_DIMS | {d + "-width" for d in _MINC_DIMS} | {"image", "image-min", "image-max", "rootvariable"}


#: numeric attributes kept (never text)
_MINC_NUMERIC = {"length", "start", "step", "direction_cosines", "valid_range", "valid_max", "valid_min",
                 "_FillValue", "width", "image-min", "image-max"}


#: text attributes kept only with one of the values the MINC standard gives them
_MINC_ENUMS = {
    "varid": {"MINC standard variable"},
    "vartype": {"dimension____", "group________", "var_attribute", "dim-width____"},
    "spacing": {"regular__", "irregular"},
    "alignment": {"start_", "centre", "end___"},
    "signtype": {"signed__", "unsigned"},
    "complete": {"true_", "false"},
    "spacetype": {"native____", "talairach_", "calibrated"},
}


def _minc_text(value):
    """An attribute's text (str), or None when it is numeric."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0] if value.size == 1 else b"".join(
            v if isinstance(v, bytes) else str(v).encode("latin-1", "replace") for v in value.reshape(-1))
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).rstrip(b"\x00").decode("latin-1")
    if isinstance(value, str):
        return value.rstrip("\x00")
    return None


def _minc_attr(key: str, text, names: set):
    """True to keep a MINC attribute, False to drop it, or a str: keep it with this text instead."""
    if text is None:
        return key in _MINC_NUMERIC
    if key in _MINC_ENUMS:
        return text in _MINC_ENUMS[key]
    if key == "version":
        return bool(re.fullmatch(r"MINC Version\s+\d+(\.\d+)*", text))
    if key == "minc_version":
        return bool(re.fullmatch(r"\d+(\.\d+)*", text))
    if key == "units":
        return text.strip().lower() in _scrub.KNOWN_UNITS
    if key in ("image-max", "image-min"):
        return text == "--->" + key and key in names  # MINC1's pointer to the variable
    if key == "dimorder":
        return all(n in names for n in text.split(","))
    if key == "parent":
        return text == "" or text in names
    if key == "children":
        kept = [n for n in text.split("\n") if n in names]
        return True if kept == text.split("\n") else ("\n".join(kept) if kept else False)
    return False


def scrub_minc(data: bytes, path: str, verify: bool = True) -> tuple:
    """(new bytes, fields removed) for MINC1 (NetCDF classic) or MINC2 (HDF5). With `verify`, the
    output is read back with medconv's MINC reader and refused unless affine and voxels are the input's."""
    if data[:4] in (b"CDF\x01", b"CDF\x02"):
        new, changed = scrub_minc1(data, path)
    elif data[:8] == b"\x89HDF\r\n\x1a\n":
        try:
            new, changed = _scrub_minc2(data, path)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:  # h5py on a damaged file
            raise CorruptInput(f"cannot copy the MINC2 objects ({type(exc).__name__})", path) from None
        end = _hdf5_end(data)
        if end is not None and any(memoryview(data)[end:]):
            changed.append("data after the HDF5 file")  # the copy ends where HDF5 says
        elif _strings(data) - _strings(new):
            # text left in HDF5 free space (an attribute deleted by another tool, say): the copy,
            # made object by object, holds none of it
            changed.append("data that no HDF5 object holds")
    else:
        raise CorruptInput("not a MINC file (neither NetCDF nor HDF5)", path)
    hdf5 = data[:4] != b"CDF\x01" and data[:4] != b"CDF\x02"
    if verify and (changed or hdf5):
        _verify_minc(path, new)
    # MINC2 is always written as the copy: stale bytes in free space need not be printable to matter
    return (new, changed) if changed or hdf5 else (data, changed)


def _strings(data: bytes) -> set:
    """Runs of 6 or more printable ASCII characters."""
    return set(re.findall(rb"[\x20-\x7e]{6,}", data))


def _hdf5_end(data: bytes):
    """The end-of-file address of an HDF5 file whose superblock is at offset 0, or None."""
    version = data[8] if len(data) > 8 else None
    try:
        if version in (0, 1):
            size_off = data[13]
            at = 24 + (4 if version == 1 else 0) + 2 * size_off  # base and free-space addresses skipped
        elif version in (2, 3):
            size_off = data[9]
            at = 12 + 2 * size_off  # base and superblock-extension addresses skipped
        else:
            return None
        fmt = {4: "<I", 8: "<Q"}.get(size_off)
        if fmt is None:
            return None
        (end,) = struct.unpack_from(fmt, data, at)
    except (IndexError, struct.error):
        return None
    return end if 0 < end <= len(data) else None


def _minc2_keep(root) -> list:
    """[(path under /minc-2.0, dataset)] kept of a MINC2 file: image/0/image, its image-min and
    image-max, and the dimension variables (and their -width variables) the image names in
    `dimorder` (every standard one when it has none); numeric datasets only."""
    import h5py

    def numeric(obj):
        return isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf"

    image = root.get("image/0/image")
    if image is None or not numeric(image):
        return []
    out = [("image/0/image", image)]
    for name in ("image-min", "image-max"):
        obj = root.get(f"image/0/{name}")
        if obj is not None and numeric(obj):
            out.append((f"image/0/{name}", obj))
    order = _minc_text(image.attrs["dimorder"]) if "dimorder" in image.attrs else None
    dims = [d for d in order.split(",") if d] if order else sorted(_MINC_DIMS)
    group = root.get("dimensions")
    for d in dims:
        for name in (d, d + "-width"):
            obj = group.get(name) if isinstance(group, h5py.Group) and "/" not in name else None
            if obj is not None and numeric(obj):
                out.append((f"dimensions/{name}", obj))
    return out


def _verify_minc(path: str, new: bytes) -> None:
    import tempfile

    before = read(path)
    with tempfile.TemporaryDirectory(prefix="medconv-anon-") as tmp:
        out = os.path.join(tmp, "scrubbed.mnc")
        with open(out, "wb") as fh:
            fh.write(new)
        try:
            after = read(out)
            same = (np.array_equal(before.affine, after.affine) and before.array.dtype == after.array.dtype
                    and np.array_equal(before.array, after.array, equal_nan=before.array.dtype.kind == "f"))
        except MedconvError:
            same = False
    if not same:
        raise UnsupportedFormat("this MINC file's geometry or voxels would change when its identifying "
                                "attributes are removed; convert it to NIfTI first", path)


def _scrub_minc2(data: bytes, path: str) -> tuple:
    """Copy the image and dimension objects into a new HDF5 file without their attributes, then
    restore the allowed ones: nothing removed survives anywhere in the new file's bytes."""
    from io import BytesIO

    import h5py

    src = _open_hdf5(BytesIO(data), path)
    changed = []
    out = BytesIO()
    with src, h5py.File(out, "w") as dst:
        untrusted.check_hdf5(src, path)  # external storage and links would be copied as references
        changed += [f"/{k}" for k in src.attrs]
        changed += [f"/{k}" for k in src if k != "minc-2.0"]
        if "minc-2.0" not in src:
            raise CorruptInput("HDF5 file without a /minc-2.0 group: not MINC2", path)
        root = src["minc-2.0"]
        droot = dst.create_group("minc-2.0")
        # only the image dataset of /image/0, its image-min/max and the dimension variables the
        # image uses, each numeric: every other dataset or group (notes, other images) goes
        keep = _minc2_keep(root)
        kept_paths = {p for p, _ in keep}
        names = {p.rsplit("/", 1)[-1] for p in kept_paths}

        gone = []  # dropped groups: nothing under one is named again

        def visit(name, obj, prefix):
            full = prefix + name
            if any(full.startswith(g + "/") for g in gone):
                return None  # (a non-None return would stop h5py's visit)
            if isinstance(obj, h5py.Group):
                if not any(p.startswith(full + "/") for p in kept_paths):
                    gone.append(full)
                    changed.append(full)
            elif full not in kept_paths:
                changed.append(full)
            return None

        for k in ("dimensions", "image"):
            if isinstance(root.get(k), h5py.Group):
                root[k].visititems(lambda name, obj, k=k: visit(name, obj, k + "/"))
        pairs = [(root, droot, "")]
        for group in ("dimensions", "image", "image/0"):
            if any(p.startswith(group + "/") for p in kept_paths):
                pairs.append((root[group], droot.require_group(group), group + "/"))
        for p, obj in keep:
            parent = droot.require_group(p.rsplit("/", 1)[0])
            src.copy(obj, parent, name=p.rsplit("/", 1)[-1], without_attrs=True)
            pairs.append((obj, droot[p], p + "/"))
        kept = [k for k in ("dimensions", "image") if k in root]
        _minc2_copy_attrs(pairs, names, changed)
        for k in root:
            if k in kept:
                continue
            if k == "info":
                droot.create_group("info")
                for name in root["info"]:
                    item = root["info"][name]
                    # named: the attributes that are not MINC's own bookkeeping (full_name, modality ...)
                    attrs = [a for a in getattr(item, "attrs", {})
                             if _minc_attr(a, _minc_text(item.attrs[a]), set()) is False]
                    changed += [f"info/{name}.{a}" for a in attrs] or [f"info/{name}"]
            else:
                changed.append(k)
    return out.getvalue(), changed


def _minc2_copy_attrs(pairs, names, changed) -> None:
    """Copy the allowed attributes of each (source, copy, label) pair, rewritten where _minc_attr says."""
    for obj, new, label in pairs:
        for attr in obj.attrs:
            value = obj.attrs[attr]
            verdict = _minc_attr(attr, _minc_text(value), names)
            if verdict is False:
                changed.append(f"{label}{attr}" if label else attr)
                continue
            if isinstance(verdict, str):
                changed.append(f"{label}{attr}")
                new.attrs[attr] = np.bytes_(verdict.encode("latin-1"))
                continue
            try:
                new.attrs.create(attr, value, dtype=obj.attrs.get_id(attr).dtype)
            except (TypeError, ValueError):
                new.attrs[attr] = value


_NC_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def scrub_minc1(data: bytes, path: str) -> tuple:
    """Rewrite a NetCDF classic file with only the kept variables and attributes; every kept
    variable's data bytes are copied unchanged."""
    big, pos, numrecs, dims, gatts, variables, padding = _nc_parse(data, path)

    def is_record(v):
        return _nc_is_record(v, dims)

    if any(i >= len(dims) for v in variables for i in v[1]):
        raise CorruptInput("malformed NetCDF header (unknown dimension)", path)
    changed = ["header padding"] if any(any(p) for p in padding) else []
    keep = [v for v in variables if v[0] in _MINC1_KEEP]
    for v in variables:
        if v[0] not in _MINC1_KEEP:
            # named: the attributes that are not MINC's own bookkeeping (full_name, modality ...)
            changed += [f"{v[0]}.{a[0]}" for a in v[2] if _minc_attr(
                a[0], a[3].rstrip(b"\x00").decode("latin-1") if a[1] == 2 else None, set()) is False] or [v[0]]
            if is_record(v):
                raise UnsupportedFormat("MINC1 file with a record variable to remove; convert it to NIfTI first", path)
    names = {v[0] for v in keep}
    new_gatts = _nc_filter_attrs(gatts, "", names, changed)
    for v in keep:
        v[2] = _nc_filter_attrs(v[2], v[0] + ".", names, changed)
    records_all = [v for v in variables if is_record(v)]
    rec_start = min((v[5] for v in records_all), default=None)
    rec_end = None
    if records_all and numrecs != 0xFFFFFFFF:  # streaming: the record count is not known
        if len(records_all) == 1:  # one record variable: its records are not padded
            count = 1
            for i in records_all[0][1][1:]:
                count *= dims[i][1]
            recsize = count * _NC_SIZE[records_all[0][3]]
        else:
            recsize = sum(v[4] for v in records_all)
        rec_end = rec_start + numrecs * recsize

    def nbytes(v):
        return _nc_nbytes(v, dims)

    ends = [v[5] + nbytes(v) for v in variables if not is_record(v)] + ([rec_end] if rec_end is not None else [])
    data_end = len(data) if records_all and rec_end is None else max(ends + [pos])
    # bytes between the header and the variables' data, or between variables, belong to nothing:
    # the file is then written again from its variables
    used = sorted([(0, pos)] + [(v[5], v[5] + nbytes(v)) for v in variables if not is_record(v)]
                  + ([(rec_start, data_end)] if records_all else []))
    cursor = 0
    for start, end in used:
        if start > cursor and any(memoryview(data)[cursor:min(start, data_end)]):
            changed.append("data between the variables")
            break
        cursor = max(cursor, end)
    if not changed:
        if len(data) > data_end and any(data[data_end:]):
            # bytes after the last variable's data belong to nothing: dropped
            return data[:data_end], ["data after the variables"]
        return data, changed
    return _nc_write(data, path, big, numrecs, dims, new_gatts, keep, rec_end), changed


def _nc_is_record(v, dims) -> bool:
    """Whether a parsed NetCDF variable runs along the record (unlimited) dimension."""
    return bool(v[1]) and dims[v[1][0]][1] == 0


def _nc_nbytes(v, dims) -> int:
    """The unpadded byte size of a parsed NetCDF variable's data."""
    count = 1
    for i in v[1]:
        count *= dims[i][1]
    return count * _NC_SIZE[v[3]]


def _nc_parse(data: bytes, path: str) -> tuple:
    """(big, header end, numrecs, dims, global attributes, variables, padding) of a NetCDF classic header."""
    big = data[3] == 2  # 64-bit offsets
    pos = 4
    try:
        def u32():
            nonlocal pos
            v = struct.unpack_from(">I", data, pos)[0]
            pos += 4
            return v

        def name():
            nonlocal pos
            n = u32()
            s = data[pos:pos + n]
            padding.append(data[pos + n:pos + _pad4(n)])
            pos += _pad4(n)
            return s.decode("utf-8", "replace")

        def attrs():
            nonlocal pos
            tag, n = u32(), u32()
            if tag not in (0, 0x0C):
                raise ValueError("attribute list")
            out = []
            for _ in range(n):
                key, typ, count = name(), u32(), u32()
                size = count * _NC_SIZE[typ]
                out.append((key, typ, count, data[pos:pos + size]))
                padding.append(data[pos + size:pos + _pad4(size)])
                pos += _pad4(size)
            return out

        padding: list = []  # the bytes that round names and values up to 4: zero in a clean file
        numrecs = u32()
        tag, n = u32(), u32()
        dims = [(name(), u32()) for _ in range(n)] if tag == 0x0A else []
        gatts = attrs()
        tag, n = u32(), u32()
        variables = []
        for _ in range(n if tag == 0x0B else 0):
            vname = name()
            dimids = [u32() for _ in range(u32())]
            vatts = attrs()
            typ, vsize = u32(), u32()
            begin = struct.unpack_from(">Q" if big else ">I", data, pos)[0]
            pos += 8 if big else 4
            if typ not in _NC_SIZE:
                raise ValueError("variable type")
            variables.append([vname, dimids, vatts, typ, vsize, begin])
        if pos > len(data):
            raise ValueError("header")
    except (struct.error, KeyError, ValueError, IndexError):
        raise CorruptInput("malformed NetCDF header", path) from None
    return big, pos, numrecs, dims, gatts, variables, padding


def _nc_filter_attrs(items, label, names, changed):
    """The attributes kept (text ones possibly rewritten); every removed or rewritten one is added to `changed`."""
    out = []
    for key, typ, count, raw in items:
        verdict = _minc_attr(key, raw.rstrip(b"\x00").decode("latin-1") if typ == 2 else None, names)
        if verdict is False:
            changed.append(f"{label}{key}")
        elif isinstance(verdict, str):
            changed.append(f"{label}{key}")
            raw = verdict.encode("latin-1")
            out.append((key, typ, len(raw), raw))
        else:
            out.append((key, typ, count, raw))
    return out


def _nc_write(data, path, big, numrecs, dims, new_gatts, keep, rec_end) -> bytes:
    """A new NetCDF classic file of the kept variables and attributes, their data bytes copied unchanged."""
    def enc_name(s):
        b = s.encode("utf-8")
        return struct.pack(">I", len(b)) + b + bytes(_pad4(len(b)) - len(b))

    def enc_attrs(items):
        if not items:
            return bytes(8)
        out = [struct.pack(">II", 0x0C, len(items))]
        for key, typ, count, raw in items:
            out += [enc_name(key), struct.pack(">II", typ, count), raw, bytes(_pad4(len(raw)) - len(raw))]
        return b"".join(out)

    def header(begins):
        out = [data[:4], struct.pack(">I", numrecs)]
        out.append(struct.pack(">II", 0x0A, len(dims)) + b"".join(enc_name(d) + struct.pack(">I", n)
                                                                    for d, n in dims) if dims else bytes(8))
        out.append(enc_attrs(new_gatts))
        out.append(struct.pack(">II", 0x0B, len(keep)) if keep else bytes(8))
        for v, b in zip(keep, begins):
            out += [enc_name(v[0]), struct.pack(">I", len(v[1])), b"".join(struct.pack(">I", i) for i in v[1]),
                    enc_attrs(v[2]), struct.pack(">II", v[3], v[4]), struct.pack(">Q" if big else ">I", b)]
        return b"".join(out)

    size = len(header([0] * len(keep)))
    fixed = [v for v in keep if not _nc_is_record(v, dims)]
    records = [v for v in keep if _nc_is_record(v, dims)]
    body, begins, cursor = [], {}, size
    for v in fixed:
        count = 1
        for i in v[1]:
            count *= dims[i][1]
        exact = count * _NC_SIZE[v[3]]
        if v[5] + exact > len(data):
            raise CorruptInput(f"variable {v[0]} is truncated", path)
        body.append(data[v[5]:v[5] + exact] + bytes(_pad4(exact) - exact))
        begins[v[0]] = cursor
        cursor += _pad4(exact)
    if records:
        # the record section is copied whole (every record variable is kept), at the same relative offsets
        start = min(v[5] for v in records)
        for v in records:
            begins[v[0]] = cursor + v[5] - start
        body.append(data[start:rec_end])  # up to the last record (None: streaming, to the end)
    return header([begins[v[0]] for v in keep]) + b"".join(body)
