"""medconv info: a short summary of each image."""
from __future__ import annotations

import os

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
    from .. import batch, summary
    from ..errors import UsageError
    from . import render

    paths = options.read_path_list(paths, from_list)
    if not paths:
        raise UsageError("no input given (medconv info PATH...)")
    unknown = [f for f in get_fields if f not in summary.INFO_FIELDS]
    if unknown:  # refused before anything is read or printed
        raise UsageError(f"unknown field {unknown[0]!r}; fields are: {', '.join(summary.INFO_FIELDS)}")

    records, failures = summary.info_many(paths, series=series, jobs=jobs, keep_going=keep_going)
    columns = [f for f in summary.INFO_FIELDS if any(f in r for r in records)]
    if len(records) > 1 and not as_json and not get_fields:
        columns = [c for c in columns if c not in ("affine", "scaling", "series_uid", "value_kind", "ndim")]
    if not as_json and not get_fields:  # the table: compact cells; --json and --get keep the values
        records = [display(r) for r in records]
        columns = [c for c in columns if c not in ("time_unit", "orientation_assumed", "folder")]
    # a known field an input lacks (modality of a NIfTI file next to DICOM series) prints empty
    render.render(records, as_json=as_json, get_fields=get_fields, columns=columns,
                  many=len(paths) > 1 or len(records) > 1, lookup=lambda record, field: record.get(field))
    batch.finish(failures, len(records) + len(failures))


_TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def short_uid(uid: str, keep: int = 6) -> str:
    """A UID cut to its root and its last digits (the table only: --json prints it whole)."""
    uid = str(uid)
    if len(uid) <= 2 * keep + 6:
        return uid
    return f"{uid[:keep + 2].rstrip('.')}...{uid[-keep:]}"


def _number(value) -> str:
    text = format(float(value), ".6g")
    if "e" in text and abs(float(value)) < 1e12:  # 2000000, not 2e+06
        text = format(float(value), ".6f").rstrip("0").rstrip(".")
    return text


def display(record: dict) -> dict:
    """A record with the compact cells of the table: shape 512x512x200, spacing with units, the
    transfer syntax by name, shortened UIDs, a DICOM series' own folder below its argument."""
    out = dict(record)
    if isinstance(record.get("shape"), (list, tuple)):
        out["shape"] = "x".join(str(n) for n in record["shape"])
    spacing = record.get("spacing")
    if isinstance(spacing, (list, tuple)) and spacing:
        text = "x".join(_number(v) for v in spacing[:3]) + " mm"
        unit = record.get("time_unit") or "s"
        for step in spacing[3:]:
            text += f", {_number(float(step) * _TIME_UNITS.get(unit, 1.0))} {unit}"
        out["spacing"] = text
    bvals = record.get("b_values")
    if isinstance(bvals, (list, tuple)) and bvals:  # the table lists each b-value once
        out["b_values"] = " ".join(_number(b) for b in sorted({round(float(b), 3) for b in bvals}))
    ts = record.get("transfer_syntax")
    if ts:  # by a short name in the table (--json keeps the UID)
        from ..dicom.elements import TRANSFER_SYNTAXES

        out["transfer_syntax"] = TRANSFER_SYNTAXES.get(str(ts), short_uid(ts))
    for key in ("series_uid", "selector"):  # a selector is a series UID when series numbers clash
        if record.get(key):
            out[key] = short_uid(record[key])
    folder = record.get("folder")
    if folder and folder != ".":
        out["path"] = os.path.join(str(record["path"]), folder)
    out.pop("folder", None)
    if out.pop("orientation_assumed", None):
        out["orientation"] = f"{record.get('orientation')} (assumed)"
    return out

