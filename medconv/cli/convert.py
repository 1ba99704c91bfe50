"""medconv convert: any input to any writable format, one file or a whole batch."""
from __future__ import annotations

import click

from ..formats import ALL_DTYPES
from . import options


@click.command("convert")
@options.inputs
@options.from_list
@options.output_dir
@options.to
@options.force
@click.option("--dtype", type=click.Choice(ALL_DTYPES),
              help="Store real values with this type (range-checked; integers rounded).")
@click.option("--orient", metavar="CODE", help="Reorder/flip voxel axes to CODE (e.g. RAS, LPS); world unchanged.")
@click.option("--slice", "slice_index", type=int, metavar="N", help="Take slice N (3rd axis) of a 3D input.")
@click.option("--window", "window_spec", metavar="auto|C,W",
              help="8-bit display window for 2D outputs: auto (file's VOI or robust range) or CENTER,WIDTH.")
@click.option("--nifti2", is_flag=True, help="Write NIfTI-2 even when NIfTI-1 could hold the image.")
@click.option("--compression-level", type=click.IntRange(0, 9), default=None, metavar="0-9",
              help="Deflate level of .gz/.mha/.zraw/.nrrd outputs, as gzip counts: 0 stores, 1 fastest "
                   "(ISA-L, slightly larger files), 2-9 zlib-ng (default 3: a little larger than gzip -6, "
                   "much faster).")
@click.option("--name", "name_template", default=None, metavar="TEMPLATE",
              help="Output name template for -o DIR (default {stem}; {series_number}_{series_description} for the "
                   "series of a DICOM directory). Fields: {stem} {parent} {index} {series_number} "
                   "{series_description} {modality} {protocol}; values are sanitised into safe file names. An "
                   "extension at the end ('{stem}.nii') chooses the output file when --to is absent.")
@options.series
@click.option("--sidecar", is_flag=True,
              help="Also write a JSON sidecar of acquisition metadata (dcm2niix's BIDS keys) beside each output. "
                   "DICOM diffusion series written as NIfTI always get .bval/.bvec.")
@click.option("--sidecar-add", "sidecar_add", multiple=True, metavar="KEYWORD|gggg,eeee",
              help="Also put this DICOM element in the sidecar (repeatable; private ones under their tag).")
@click.option("--sidecar-drop", "sidecar_drop", multiple=True, metavar="KEY",
              help="Leave this key out of the sidecar (repeatable).")
@click.option("--sidecar-only", "sidecar_only", metavar="KEY,...",
              help="Write only these sidecar keys.")
@click.option("--strict", is_flag=True, help="DICOM: refuse any series with uneven slice spacing instead of warning.")
@click.option("--fill-gaps", is_flag=True,
              help="DICOM: where whole slices are missing, insert empty slices (value 0) so every real slice keeps "
                   "its position (without it such a series is refused, exit 3).")
@click.option("--philips-scaling", type=click.Choice(["fp", "display"]), default="fp", show_default=True,
              help="DICOM from Philips: fp gives the floating-point values of the private scale slope (as dcm2niix "
                   "does by default), display the values of RescaleSlope/Intercept alone (dcm2niix -p n).")
@click.option("--template", "template_path", type=click.Path(), metavar="REF.dcm",
              help="DICOM output: take patient and study attributes from this reference DICOM file.")
@options.jobs
@options.skip_existing
@options.update
@options.dry_run
@options.keep_going
@options.quiet
def command(paths, from_list, output, to, force, dtype, orient, slice_index, window_spec, nifti2,
            compression_level, name_template, series, sidecar, sidecar_add, sidecar_drop, sidecar_only, strict, fill_gaps,
            philips_scaling, template_path, jobs, skip_existing, update, dry_run, keep_going):
    """Convert images between formats; the output format follows DST's extension or --to.

    A DST ending in / is a DICOM series folder. Many inputs (arguments, --from-list FILE or -
    for stdin) go to -o DIR, in parallel with -j N; a DICOM directory holding several series
    gives one output per series. With -o DIR the outputs are NIfTI-1 .nii.gz unless --to or an
    extension ending --name says otherwise (--to nii writes .nii, --name '{stem}.mhd' writes
    .mhd + .raw); a 3D input to a 2D format gets a folder of slices (DIR/NAME/NAME_000.png ...).
    A type the output cannot hold is refused unless --dtype names one it holds; a lossless
    widening (int8 to int16) is noted on stderr.

    \b
    Examples:
      medconv convert brain.nii.gz brain.mha
      medconv convert Case00.mhd Case00.nii.gz --orient RAS
      medconv convert dicom_dir/ ct.nii.gz
      medconv convert ct.nii.gz slices/ --to png          # one PNG per slice
      medconv convert *.mhd -o nifti/ -j 4                # many inputs, to .nii.gz
      medconv convert *.nii.gz -o mha/ --to mhd           # .mhd + .raw
      medconv convert export/ -o nifti/ --sidecar
      find data -name '*.mhd' | medconv convert --from-list - -o out/ --keep-going --update
    """
    from .. import batch, log
    from .. import plan as planning
    from ..convert import convert_many
    from ..dicom.sidecar import key_choice
    from ..errors import UsageError

    paths = options.read_path_list(paths, from_list)
    sidecar_keys = key_choice(sidecar_add, sidecar_drop, sidecar_only)
    if sidecar_keys and not sidecar:
        sidecar = True  # choosing sidecar keys asks for the sidecar
    if from_list and not paths and output is not None:
        # an empty list (a Slurm array task past the end of files.txt, a find that matched nothing)
        # is nothing to do, as with xargs -r or GNU parallel
        log.note(f"no inputs in {'stdin' if from_list == '-' else from_list}: nothing to do")
        return
    if skip_existing and update:
        raise UsageError("--skip-existing and --update exclude each other")
    if output is None:
        if len(paths) != 2:
            raise UsageError("give SRC DST, or SRC... -o DIR" if paths else "no input given (SRC DST, or SRC... -o DIR)")
        if name_template is not None:
            raise UsageError("--name applies with -o DIR")
        tasks = planning.pair(paths[0], paths[1], to=to, series=series)
    else:
        if not paths:
            raise UsageError("no input given")
        tasks = planning.plan(paths, output, to=to, template=name_template, series=series)
    planning.mark_existing(tasks, "skip" if skip_existing else "update" if update else None)
    done, failures = convert_many(tasks, jobs=jobs, keep_going=keep_going, force=force, dry_run=dry_run,
                                  sidecar=sidecar, sidecar_keys=sidecar_keys, strict=strict, template=template_path,
                                  compression_level=compression_level,
                                  **_conversion_options(dtype, orient, slice_index, window_spec, nifti2, fill_gaps,
                                                        philips_scaling))
    if dry_run:  # the plan of what passed every check the run makes; what would fail is reported
        from .render import safe

        planned = {id(task): result for task, result in done}
        for t in tasks:
            if t.skip:
                click.echo(safe(f"{t} -> {t.dst}  (skipped: {t.skip})"))
            elif t.refused:
                click.echo(safe(f"{t} -> {t.dst}  (refused: {t.refused})"))
            elif id(t) in planned:
                click.echo(safe(f"{t} -> {planned[id(t)]}"))
    batch.finish(failures, len(done) + len(failures))


def _conversion_options(dtype, orient, slice_index, window_spec, nifti2, fill_gaps, philips_scaling) -> dict:
    """The options of each conversion (those left at their default are not passed on)."""
    out = {"dtype": dtype, "orient": orient, "slice_index": slice_index, "window_spec": window_spec}
    if nifti2:
        out["nifti2"] = True
    if fill_gaps:
        out["fill_gaps"] = True
    if philips_scaling != "fp":
        out["philips_scaling"] = philips_scaling
    return out
