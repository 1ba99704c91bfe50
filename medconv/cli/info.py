"""medconv info: a short summary of each image."""
from __future__ import annotations

import click

from . import options


@click.command("info")
@options.inputs
@options.from_list
@options.json_out
@options.get
@options.series
@options.jobs
@options.keep_going
@options.quiet
def command(paths, from_list, as_json, get_fields, series, jobs, keep_going):
    """Summarise images: shape, spacing, orientation, dtype, scaling.

    A directory gives one row per DICOM series found in it. No patient-identifying
    value is printed.

    \b
    Examples:
      medconv info brain.nii.gz
      medconv info dicom_export/              # one row per series
      medconv info *.nii.gz --json > inventory.json
      nx=$(medconv info ct.nii.gz --get shape)
      find data -name '*.mha' | medconv info --from-list - --json -j 4
    """
    import functools

    from .. import batch, inspect, log
    from ..errors import UsageError
    from . import render

    paths = options.read_path_list(paths, from_list)
    if not paths:
        raise UsageError("no input given (medconv info PATH...)")
    unknown = [f for f in get_fields if f not in inspect.INFO_FIELDS]
    if unknown:  # refused before anything is read or printed
        raise UsageError(f"unknown field {unknown[0]!r}; fields are: {', '.join(inspect.INFO_FIELDS)}")

    one = functools.partial(inspect.info, series=series)  # picklable, for the process pool

    def report(path, exc):
        log.warn(f"skipped: {exc.message}", exc.path or path)

    results, failures = batch.run(paths, one, keep_going=keep_going, on_error=report, jobs=jobs, progress="info")
    records = [r for recs in results for r in recs]
    failures += _series_failures(records)  # a series of a directory that cannot be read: its own row
    records = [r for r in records if "error" not in r]
    columns = [f for f in inspect.INFO_FIELDS if any(f in r for r in records)]
    if len(records) > 1 and not as_json and not get_fields:
        columns = [c for c in columns if c not in ("affine", "scaling", "series_uid", "value_kind", "ndim")]
    # a known field an input lacks (modality of a NIfTI file next to DICOM series) prints empty
    render.render(records, as_json=as_json, get_fields=get_fields, columns=columns,
                  many=len(paths) > 1 or len(records) > 1, lookup=lambda record, field: record.get(field))
    batch.finish(failures, len(records) + len(failures))


def _series_failures(records):
    """(label, error) of the records of series that could not be read, each reported once."""
    from .. import log
    from ..errors import MedconvError

    out = []
    for r in records:
        if "error" in r:
            label = f"{r['path']} [{r['file']}]" if "file" in r else f"{r['path']} [series {r['selector']}]"
            log.warn(f"skipped: {r['error']}", label)
            exc = MedconvError(r["error"], r["path"])
            exc.exit_code = r.get("exit_code", 3)
            out.append((label, exc))
    return out
