"""medconv convert: any input to any writable format."""
from __future__ import annotations

import click

from . import options


@click.command("convert")
@options.inputs
@options.from_list
@options.output_dir
@options.to
@options.force
@click.option("--dtype", type=click.Choice(["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                                            "float32", "float64"]),
              help="Store real values with this type (range-checked; integers rounded).")
@click.option("--orient", metavar="CODE", help="Reorder/flip voxel axes to CODE (e.g. RAS, LPS); world unchanged.")
@click.option("--slice", "slice_index", type=int, metavar="N", help="Take slice N (3rd axis) of a 3D input.")
@click.option("--window", "window_spec", metavar="auto|C,W",
              help="8-bit display window for 2D outputs: auto (file's VOI or robust range) or CENTER,WIDTH.")
@click.option("--nifti2", is_flag=True, help="Write NIfTI-2 even when NIfTI-1 could hold the image.")
@click.option("--compression-level", type=click.IntRange(0, 3), default=None, metavar="0-3",
              help="gzip level for .gz outputs (ISA-L levels; default 3).")
@click.option("--name", "name_template", default="{stem}", show_default=True, metavar="TEMPLATE",
              help="Output name template for -o DIR: {stem} {parent} {index} {series_number} {series_description} "
                   "{modality} {protocol}.")
@options.series
@options.keep_going
@options.quiet
def command(paths, from_list, output, to, force, dtype, orient, slice_index, window_spec, nifti2,
            compression_level, name_template, series, keep_going):
    """Convert images between formats; the output format follows DST's extension or --to.

    \b
    Examples:
      medconv convert brain.nii.gz brain.mha
      medconv convert Case00.mhd Case00.nii.gz --orient RAS
      medconv convert dicom_dir/ ct.nii.gz
      medconv convert ct.nii.gz slices/ --to png          # one PNG per slice
      medconv convert *.mhd -o nifti/ --to nifti1         # many inputs
    """
    from .. import batch, io, log
    from ..convert import convert
    from ..errors import UsageError

    paths = options.read_path_list(paths, from_list)
    if compression_level is not None:
        io.set_compression(level=compression_level)
    common = dict(to=to, force=force, dtype=dtype, orient=orient, slice_index=slice_index,
                  window_spec=window_spec, series=series)
    if nifti2:
        common["nifti2"] = True
    if output is None:
        if len(paths) != 2:
            raise UsageError("give SRC DST, or SRC... -o DIR")
        convert(paths[0], paths[1], **common)
        return
    if not paths:
        raise UsageError("no input given")
    if to is None:
        raise UsageError("with -o DIR, say the output format with --to FORMAT")
    from ..naming import plan_outputs

    plan = plan_outputs(paths, output, name_template, to)

    def one(item):
        src, dst = item
        return convert(src, dst, **common)

    def report(item, exc):
        log.warn(f"failed: {exc.message}", exc.path or item[0])

    _, failures = batch.run(plan, one, keep_going=keep_going, on_error=report)
    batch.finish(failures, len(plan))
