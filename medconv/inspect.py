"""`info` as a library call: one summary record per image (per series for DICOM directories)."""
from __future__ import annotations

import os

INFO_FIELDS = ("path", "format", "shape", "ndim", "spacing", "dtype", "value_kind", "scaling", "affine",
               "orientation", "size_bytes", "modality", "series_uid", "series_number", "series_description",
               "n_files", "transfer_syntax", "selector", "folder", "time_unit", "orientation_assumed",
               "suffix", "scaling_rule", "n_diffusion_directions", "b_values")
#: keys of Volume.metadata that info may print (nothing patient-identifying)
_META_KEYS = ("modality", "series_uid", "series_number", "series_description", "n_files", "transfer_syntax",
              "suffix", "scaling_rule")


def volume_record(volume, path: str, size_bytes: int | None = None) -> dict:
    record = {"path": path, "format": volume.format}
    record.update(volume.summary())
    record["size_bytes"] = size_bytes if size_bytes is not None else volume.metadata.get("size_bytes", _disk_size(path))
    for key in _META_KEYS:
        if volume.metadata.get(key) is not None:
            record[key] = volume.metadata[key]
    if volume.metadata.get("stored_dtype"):  # MINC: the type in the file, not the real values' type
        record["dtype"] = volume.metadata["stored_dtype"]
    if volume.ndim > 3:  # the unit the file gives its time step in (spacing holds it in seconds)
        record["time_unit"] = volume.metadata.get("time_unit") or "s"
    if volume.format == "analyze" and not volume.orientation_known:
        # Analyze 7.5 stores no orientation: the code is that of the conventional affine medconv
        # places it with (LAS unless the header's orient field says otherwise), flagged as assumed
        record["orientation"] = volume.orientation
        record["orientation_assumed"] = True
    if volume.metadata.get("diffusion"):
        from .dicom.gradients import summary

        record.update(summary(volume.metadata["diffusion"]))
    return record


def _disk_size(path: str) -> int:
    from .formats import files

    if not os.path.isfile(path):
        return 0
    return sum(os.path.getsize(p) for p in files(path) if os.path.exists(p))


def info(path: str, series=None) -> list:
    """Summary records of one path (a directory of DICOM gives one record per series)."""
    from . import read
    from .errors import guard
    from .formats import backend, capable, detect

    fmt = detect(path)
    if capable(fmt, "series"):
        with guard(path, f"{fmt} data"):
            return backend(fmt).info_records(path, series=series)
    volume = read(path, header_only=True, fmt=fmt)
    return [volume_record(volume, path)]
