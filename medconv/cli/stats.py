"""medconv stats: statistics of real voxel values, with masks, labels, 4D and colour."""
from __future__ import annotations

import click

from . import options

_PERCENTILE_FLAGS = ("--percentile", "-p")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class _StatsCommand(click.Command):
    """Lets `--percentile 2 98` take every number that follows it (as fslstats users type it)."""

    def parse_args(self, ctx, args):
        out, i = [], 0
        while i < len(args):
            tok = args[i]
            if tok == "--":
                out.extend(args[i:])
                break
            if tok in _PERCENTILE_FLAGS and i + 1 < len(args):
                vals = [args[i + 1]]
                i += 2
                while i < len(args) and _is_number(args[i]):
                    vals.append(args[i])
                    i += 1
                out.extend([tok, " ".join(vals)])
                continue
            out.append(tok)
            i += 1
        return super().parse_args(ctx, out)


@click.command("stats", cls=_StatsCommand)
@options.inputs
@options.from_list
@click.option("-m", "--mask", "mask_path", type=click.Path(), metavar="MASK",
              help="Only voxels where MASK is non-zero (same grid as the image).")
@click.option("-l", "--labels", "labels_path", type=click.Path(), metavar="LABELMAP",
              help="One row per label value present in LABELMAP (same grid as the image).")
@click.option("--label-names", "names_path", type=click.Path(), metavar="FILE",
              help="Name label rows from an ITK-SNAP label description file or a FreeSurferColorLUT.txt-style table.")
@click.option("--label-volumes", is_flag=True,
              help="Each input is a label map: report its label volumes (many segmentations in one table).")
@click.option("--background", is_flag=True, help="With --labels or --label-volumes, also report label 0.")
@click.option("-p", "--percentile", "percentiles", multiple=True, metavar="P...",
              help="Percentiles to report (repeatable or several numbers: --percentile 5 50 95). Default: 2 98.")
@click.option("--no-percentiles", is_flag=True,
              help="Skip median and percentiles: streaming only, memory bounded for every data type.")
@click.option("--per-volume/--pooled", "per_volume", default=True,
              help="4D: one row per volume (default) or one row pooling every volume.")
@options.series
@options.json_out
@click.option("--tsv", "as_tsv", is_flag=True, help="Tab-separated: a header row, then one row per input/label/volume/channel.")
@options.get
@options.jobs
@options.keep_going
@options.quiet
def command(paths, from_list, mask_path, labels_path, names_path, label_volumes, background, percentiles,
            no_percentiles, per_volume, series, as_json, as_tsv, get_fields, jobs, keep_going):
    """Statistics of real voxel values (slope/intercept applied, e.g. Hounsfield units).

    Fields: count, nan, min, max, mean, std, median, pP for each percentile, nonzero,
    sum, volume_mm3 and volume_ml (of the non-zero voxels). NaN and infinite voxels
    are counted in `nan` and left out of everything else. std is the population
    standard deviation (ddof=0). Median and percentiles are exact, with numpy's default
    'linear' definition (numpy.percentile): the value at rank (n-1)*P/100 of the sorted
    values, interpolated linearly between neighbours. Complex data uses the magnitude.

    4D images give one row per volume (--pooled: one row for all), RGB images one row
    per channel. --labels LABELMAP gives one row per label value present (label 0 is
    background, left out unless --background): voxels, volume_mm3, volume_ml, mean, std,
    min, max and the centroid in world mm (x y z, RAS). Without an image
    (`medconv stats --labels seg.nii.gz`) the rows give the label volumes and centroids.
    A label map holds integers: fractional, NaN or infinite values are an error (exit 3).

    Empty selections are results, not errors (exit 0): a mask with no non-zero voxel
    gives a row with count 0, nonzero 0, sum 0, volumes 0 and null (empty in --tsv)
    min/max/mean/std/median/percentiles. A label map with no label value (all
    background, or none inside the mask) gives no rows: --json prints [], --tsv its
    header row only, and stderr notes "no label values in LABELMAP".

    Memory: the volume is read in slabs; an uncompressed .nii is memory-mapped and a
    .nii.gz is inflated slab by slab as it is read (for 8/16-bit integer data, and for
    any data with --no-percentiles; otherwise it is inflated into memory once), so
    count/min/max/mean/std/sum/nonzero/volumes need memory for one slab only. Exact
    percentiles of integer data use a histogram of the value range (65536 bins for
    16-bit data); for floating-point data (or integers spanning more than 2**24
    values) the selected values are kept in memory once. --no-percentiles avoids that.

    --json prints an object for one input and a list for several inputs, for
    4D/colour rows and always for label rows.

    \b
    Examples:
      medconv stats ct.nii.gz --percentile 2 50 98
      medconv stats ct.nii.gz --mask liver.nii.gz --get mean
      medconv stats ct.nii.gz --labels seg.nii.gz --label-names labels.txt --tsv
      medconv stats --labels seg.nii.gz --get volume_ml
      medconv stats case_*/segmentation.nii.gz --label-volumes --tsv > volumes.tsv
      medconv stats sub-*_bold.nii.gz --pooled --tsv > table.tsv
    """
    from .. import batch, stats
    from ..errors import UsageError

    paths = options.read_path_list(paths, from_list)
    if not paths and not labels_path:
        raise UsageError("no input given (medconv stats PATH... or medconv stats --labels LABELMAP)")
    if as_tsv and (as_json or get_fields):
        raise UsageError("--tsv cannot be combined with --json or --get")
    if names_path and not (labels_path or label_volumes):
        raise UsageError("--label-names needs --labels or --label-volumes")
    if label_volumes and labels_path:
        raise UsageError("--label-volumes cannot be combined with --labels")
    qs = stats.parse_percentiles(percentiles) if percentiles else stats.DEFAULT_PERCENTILES
    if percentiles and (labels_path or label_volumes):
        raise UsageError("--percentile does not apply to label rows (they give mean, std, min, max)")
    if no_percentiles and percentiles:
        raise UsageError("--no-percentiles cannot be combined with --percentile")

    names = stats.read_label_names(names_path) if names_path else None
    results, failures, fields = stats.compute_many(
        paths, mask=mask_path, labels=labels_path, names=names, label_volumes=label_volumes, background=background,
        percentiles=qs, exact=not no_percentiles, pooled=not per_volume, series=series, jobs=jobs,
        keep_going=keep_going)
    _show(results, failures, fields, paths, labels_path, label_volumes, names, as_json, as_tsv, get_fields)
    batch.finish(failures, max(len(paths), 1))


def _show(results, failures, fields, paths, labels_path, label_volumes, names, as_json, as_tsv, get_fields) -> None:
    """Print the rows: TSV, JSON, --get values or a table."""
    from . import render

    label_only = not paths
    items = [labels_path] if label_only else paths
    label_rows = bool(labels_path) or label_volumes
    records = [r for recs in results for r in recs]
    columns = [f for f in fields if any(f in r for r in records)] or _label_columns(label_only or label_volumes, names)
    if not results:
        pass  # every input failed: the summary below says why
    elif as_tsv:
        _print_tsv(records, columns)  # the header row always, so a table of many inputs keeps its shape
    elif not records:  # label maps without labels: an empty list for scripts; stderr said why
        if as_json:
            render.print_json([], True)
    else:
        if get_fields and failures:
            # one line per input for scripts: an input that failed (-k) keeps its line, empty
            failed = [item for item, _ in failures]
            done = iter(results)
            records = []
            for item in items:
                if item in failed:
                    failed.remove(item)
                    records.append({"path": item})
                else:
                    records.extend(next(done))
        if not as_json and not get_fields and len(paths) <= 1:
            columns = [c for c in columns if c != "path"] if len(records) > 1 else columns
        # label rows are always a list, so a script does not break when one label is present
        render.render(records, as_json=as_json, get_fields=get_fields, columns=columns,
                      many=len(paths) > 1 or len(records) > 1 or label_rows)


def _label_columns(geometry_only: bool, names) -> list:
    """The columns of label rows when there are none to take them from (an empty label map)."""
    from .. import stats

    drop = {"volume", "channel"} | (set() if names else {"name"})
    if geometry_only:
        drop |= {"nan", "mean", "std", "min", "max"}
    return [f for f in stats.LABEL_FIELDS if f not in drop]


def _print_tsv(records, columns) -> None:
    from . import render

    header = []
    for c in columns:
        header.extend([f"{c}_x", f"{c}_y", f"{c}_z"] if c == "centroid" else [c])
    rows = []
    for r in records:
        row = []
        for c in columns:
            v = r.get(c)
            row.extend(list(v) if c == "centroid" and v is not None else ([None] * 3 if c == "centroid" else [v]))
        rows.append(row)
    render.print_tsv(header, rows)
