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


def info_many(paths, *, series=None, jobs: int | None = None, keep_going: bool = False, on_error=None) -> tuple:
    """`info` records of many paths, in worker processes with `jobs`: (records, failures).

    A series of a directory that cannot be read is a failure of its own (label, error), warned about
    like a failed input, while the other series keep their records. Under `keep_going`, failures are
    reported through on_error(path, error) (default: a warning); end with batch.finish.
    """
    import functools

    from . import batch, log

    def report(path, exc):
        log.warn(f"skipped: {exc.message}", exc.path or path)

    one = functools.partial(info, series=series)  # picklable, for the process pool
    results, failures = batch.run(paths, one, keep_going=keep_going, on_error=on_error or report, jobs=jobs,
                                  progress="info")
    records = [r for recs in results for r in recs]
    failures += _series_failures(records)
    return [r for r in records if "error" not in r], failures


def _series_failures(records) -> list:
    """(label, error) of the records of series that could not be read, each reported once."""
    from . import log
    from .errors import ExitStatus, error_for

    out = []
    for r in records:
        if "error" in r:
            label = f"{r['path']} [{r['file']}]" if "file" in r else f"{r['path']} [series {r['selector']}]"
            log.warn(f"skipped: {r['error']}", label)
            out.append((label, error_for(r.get("exit_code", ExitStatus.INPUT), r["error"], r["path"])))
    return out
