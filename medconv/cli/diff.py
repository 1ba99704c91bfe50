"""medconv diff: are two images (or two folders of images) the same?"""
from __future__ import annotations

import os
import sys

import click

from . import options


@click.command("diff")
@click.argument("path_a", type=click.Path(), metavar="A")
@click.argument("path_b", type=click.Path(), metavar="B")
@click.option("--rtol", type=float, default=0.0, show_default=True, metavar="R",
              help="Relative tolerance on real values: |a-b| <= atol + rtol*|b| counts as equal.")
@click.option("--atol", type=float, default=0.0, show_default=True, metavar="X",
              help="Absolute tolerance on real values (in real units, e.g. HU).")
@click.option("--atol-mm", "atol_mm", type=float, default=1e-3, show_default=True, metavar="MM",
              help="Tolerance on the world position (mm) of the grid's corner voxels.")
@click.option("--header", "header", is_flag=True,
              help="Also compare the native header fields both files have (NIfTI fields, DICOM elements, ...).")
@click.option("--ignore-dtype", is_flag=True,
              help="Do not count a different stored data type as a difference (real values still compared).")
@click.option("--same-layout", is_flag=True,
              help="Count the same world grid stored in another voxel order (axes swapped or flipped) as a "
                   "difference (by default B is reordered and compared in the world).")
@options.series
@options.json_out
@options.jobs
@options.quiet
def command(path_a, path_b, rtol, atol, atol_mm, header, ignore_dtype, same_layout, series, as_json, jobs):
    """Compare two images of any formats, or two folders of images.

    Compared through the volume model: grid shape, world geometry (the voxel-to-world
    affine, within --atol-mm of every corner voxel), time step, stored dtype, value kind,
    and the real voxel values (slope/intercept applied; exact unless --rtol/--atol; NaN
    equals NaN). --header adds the native header fields both files have. When B stores
    the same world grid in another voxel order (a converter that flips rows), it is
    reordered and compared in the world (a note says so; --same-layout makes it a
    difference).

    For values it prints how many voxels differ (and their share), the largest
    difference and the first voxel where it occurs (index and world mm), and the first
    differing voxel in file order. Nothing is printed when the inputs are the same.

    Two folders: files pair by relative path, DICOM series by SeriesInstanceUID; files on
    one side only are differences; files that are not images are compared byte for byte.

    \b
    Exit status: 0 same, 1 different, 3 an input cannot be read.
    -q prints nothing (the exit status answers); --json prints one document.

    \b
    Examples:
      medconv diff dicom_dir/ converted.nii.gz
      medconv diff ct.mha ct.nii.gz --atol 0.5
      medconv diff -q before/ after/ || echo "pipeline output changed"
      medconv diff old/ new/ --json -j 4 > report.json
    """
    from .. import diff, log
    from . import render

    quiet = log.is_quiet()
    opts = {"rtol": rtol, "atol": atol, "atol_mm": atol_mm, "header": header, "dtype": not ignore_dtype,
            "same_layout": same_layout}
    if os.path.isdir(path_a) and os.path.isdir(path_b) and series is None:
        failures_seen = []

        def report(item, exc):
            failures_seen.append(item)
            log.warn(f"cannot compare: {exc.message}", exc.path or item[0])

        result = diff.compare_trees(path_a, path_b, jobs=jobs, keep_going=True, on_error=report,
                                    progress="diff", **opts)
        if as_json:
            render.print_json([_tree_json(result)], many=False)
        elif not quiet:
            _print_tree(result)
        if result["failed"]:
            from ..errors import InputError

            names = "; ".join(_name(item) for item, _ in result["failed"][:3])
            raise InputError(f"{len(result['failed'])} of {result['total']} pairs could not be read ({names})",
                             path_a)
        _found(result)
        return
    result = diff.compare(path_a, path_b, series=series, **opts)
    if result.get("layout") and not same_layout:
        log.note(f"{path_b} stores the same world grid in another voxel order ({result['layout']['b']}, "
                 f"{path_a} is {result['layout']['a']}): compared in the world")
    if header and not result.get("header_fields"):
        log.note("--header: the two files have no native header field in common (different formats); "
                 "geometry and values were compared")
    if as_json:
        render.print_json([result], many=False)
    elif not quiet:
        sys.stdout.write("".join(_safe(line) + "\n" for line in report_lines(result)))
    _found(result)


def _found(result) -> None:
    """Differences are a check's finding: exit 1, after the report."""
    if not result["same"]:
        from ..errors import CheckFailed

        raise CheckFailed("the inputs differ")


def _name(item) -> str:
    return item[0] if isinstance(item, (tuple, list)) else str(item)


def _num(v) -> str:
    if isinstance(v, float):
        return format(v, ".6g")
    if isinstance(v, list):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    return str(v)


def _safe(text: str) -> str:
    """Control characters from file names and header values shown escaped, never sent to the terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def report_lines(result: dict, prefix: str = "") -> list:
    """Human-readable lines of one pair's differences (none when the inputs are the same)."""
    lines = []
    if result["same"]:
        return lines
    lines.append(f"{prefix}{result['a']} vs {result['b']}: differ")
    for d in result["differences"]:
        field = d["field"]
        if field == "values":
            v = result["values"]
            lines.append(f"{prefix}  values: {v['differing']} of {v['compared']} voxels differ "
                         f"({100 * v['share']:.4g}%); largest difference {_num(v['max_difference'])}")
            for key, what in (("max_at", "largest at"), ("first_at", "first at")):
                at = v[key]
                if at:
                    lines.append(f"{prefix}    {what} voxel {_num(at['index'])} (world {_num(at['world'])} mm): "
                                 f"{_num(at['a'])} vs {_num(at['b'])}")
        elif field == "affine":
            lines.append(f"{prefix}  affine: corner voxels up to {d['max_mm']:.4g} mm apart "
                         f"(orientation {d['orientation'][0]} vs {d['orientation'][1]})")
            for ra, rb in zip(d["a"][:3], d["b"][:3]):
                lines.append(f"{prefix}    {_num(ra):<44} vs {_num(rb)}")
        elif field == "layout":
            lines.append(f"{prefix}  layout: the same world grid stored in another voxel order "
                         f"({d['a']} vs {d['b']})")
        elif field == "bytes":
            lines.append(f"{prefix}  content differs (not an image: compared byte for byte; "
                         f"{d['a']} vs {d['b']} bytes)")
        else:
            lines.append(f"{prefix}  {field}: {_num(d['a'])} vs {_num(d['b'])}")
    return lines


def _print_tree(result: dict) -> None:
    out = []
    for r in result["pairs"]:
        out.extend(report_lines(r))
    for name in result["only_a"]:
        out.append(f"only in {result['a']}: {name}")
    for name in result["only_b"]:
        out.append(f"only in {result['b']}: {name}")
    n_diff = sum(1 for r in result["pairs"] if not r["same"])
    if not result["same"]:
        out.append(f"{n_diff} of {len(result['pairs'])} pairs differ, {len(result['only_a'])} only in "
                   f"{result['a']}, {len(result['only_b'])} only in {result['b']}")
    sys.stdout.write("".join(_safe(line) + "\n" for line in out))


def _tree_json(result: dict) -> dict:
    return {"a": result["a"], "b": result["b"], "same": result["same"], "pairs": result["pairs"],
            "only_a": result["only_a"], "only_b": result["only_b"],
            "failed": [{"pair": _name(item), "error": str(exc)} for item, exc in result["failed"]]}
