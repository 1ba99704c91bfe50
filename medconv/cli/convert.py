"""medconv convert: any input to any writable format, one file or a whole batch."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import click

from . import options


@dataclass
class Task:
    """One planned conversion: what to read (and which series), where to write."""

    src: str
    dst: str
    series: object = None
    force: bool = False
    label: str = ""
    skip: str = ""  # why it is skipped (--skip-existing/--update), empty when it runs
    extra: dict = field(default_factory=dict)

    def __str__(self):
        return self.label or self.src


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
@click.option("--compression-level", type=click.IntRange(0, 9), default=None, metavar="0-9",
              help="Deflate level of .gz/.mha/.zraw/.nrrd outputs, as gzip counts: 0 stores, 1 fastest "
                   "(ISA-L, ~6% larger), 2-9 zlib-ng (default 3: ~2.5% larger than gzip -6, ~10x faster).")
@click.option("--name", "name_template", default=None, metavar="TEMPLATE",
              help="Output name template for -o DIR (default {stem}; {series_number}_{series_description} for the "
                   "series of a DICOM directory). Fields: {stem} {parent} {index} {series_number} "
                   "{series_description} {modality} {protocol}; values are sanitised into safe file names.")
@options.series
@click.option("--sidecar", is_flag=True,
              help="Also write a JSON sidecar of acquisition metadata (BIDS keys) beside each output.")
@click.option("--strict", is_flag=True, help="DICOM: refuse any series with uneven slice spacing instead of warning.")
@click.option("--fill-gaps", is_flag=True,
              help="DICOM: where whole slices are missing, insert empty slices (value 0) so every real slice keeps "
                   "its position (without it such a series is refused, exit 3).")
@click.option("--template", "template_path", type=click.Path(), metavar="REF.dcm",
              help="DICOM output: take patient and study attributes from this reference DICOM file.")
@options.jobs
@options.skip_existing
@options.update
@options.dry_run
@options.keep_going
@options.quiet
def command(paths, from_list, output, to, force, dtype, orient, slice_index, window_spec, nifti2,
            compression_level, name_template, series, sidecar, strict, fill_gaps, template_path, jobs, skip_existing, update,
            dry_run, keep_going):
    """Convert images between formats; the output format follows DST's extension or --to.

    Many inputs (arguments, --from-list FILE or - for stdin) go to -o DIR, in parallel with
    -j N; a DICOM directory holding several series gives one output per series.

    \b
    Examples:
      medconv convert brain.nii.gz brain.mha
      medconv convert Case00.mhd Case00.nii.gz --orient RAS
      medconv convert dicom_dir/ ct.nii.gz
      medconv convert ct.nii.gz slices/ --to png          # one PNG per slice
      medconv convert *.mhd -o nifti/ --to nifti1 -j 4    # many inputs
      medconv convert export/ -o nifti/ --to nifti1 --sidecar
      find data -name '*.mhd' | medconv convert --from-list - -o out/ --to nifti1 --keep-going --update
    """
    import functools

    from .. import batch, io, log
    from ..errors import InputError, UsageError
    from ..formats import format_for_output

    paths = options.read_path_list(paths, from_list)
    if skip_existing and update:
        raise UsageError("--skip-existing and --update exclude each other")
    if compression_level is not None:
        io.set_compression(level=compression_level)
    if output is None:
        if len(paths) != 2:
            raise UsageError("give SRC DST, or SRC... -o DIR" if paths else "no input given (SRC DST, or SRC... -o DIR)")
        if name_template is not None:
            raise UsageError("--name applies with -o DIR")
        tasks = [Task(paths[0], paths[1], series=series, label=paths[0])]
        out_fmt = format_for_output(paths[1], to)
    else:
        if not paths:
            raise UsageError("no input given")
        if to is None:
            raise UsageError("with -o DIR, say the output format with --to FORMAT")
        out_fmt = format_for_output(output, to)
        tasks = plan(paths, output, name_template, to, series)
    if template_path is not None:
        if out_fmt != "dicom":
            raise UsageError("--template applies to DICOM outputs (--to dicom)")
        if not os.path.isfile(template_path):
            raise InputError("no such file (--template)", template_path)

    for task in tasks:
        task.force = force
        if skip_existing and _exists(task.dst):
            task.skip = "destination exists"
        elif update and _exists(task.dst):
            if _mtime(task.src, newest=True) <= _mtime(task.dst, newest=False):
                task.skip = "destination is up to date"
            else:
                task.force = True
        elif (skip_existing or update) and _partly_exists(task.dst):
            task.force = True  # an incomplete multi-file output (a .hdr without its .img) is redone
    todo = [t for t in tasks if not t.skip]
    if dry_run:
        from .render import safe

        for t in tasks:
            why = t.skip and f"skipped: {t.skip}" or (not os.path.lexists(t.src) and "input missing") or ""
            click.echo(safe(f"{t} -> {t.dst}" + (f"  ({why})" if why else "")))
        return
    skipped = len(tasks) - len(todo)
    if skipped:
        log.note(f"{skipped} of {len(tasks)} inputs skipped ({'up to date' if update else 'destination exists'})")

    common = {"to": to, "dtype": dtype, "orient": orient, "slice_index": slice_index, "window_spec": window_spec}
    if nifti2:
        common["nifti2"] = True
    if fill_gaps:
        common["fill_gaps"] = True
    if template_path is not None:
        common["template"] = template_path
    if jobs is None:
        jobs = batch.default_jobs(len(todo))
    if jobs > 1:
        io.set_compression(threads=1)  # the workers already use the cores
    func = functools.partial(convert_task, common, sidecar, strict)

    def report(task, exc):
        log.warn(f"failed: {exc.message}", exc.path or str(task))

    _, failures = batch.run(todo, func, keep_going=keep_going, on_error=report, jobs=jobs, progress="convert")
    batch.finish(failures, len(todo))


def plan(paths, outdir, template, to, series) -> list:
    """Tasks for -o DIR: a multi-series DICOM directory becomes one task per series;
    names come from the template, clashes get distinct names (with a warning)."""
    from .. import naming

    entries = []  # (src, metadata, series selector, template)
    for src in paths:
        found = _series_of(src) if series is None and os.path.isdir(src) else None
        if found and len(found) > 1:
            for s in found:
                entries.append((src, s, s.get("selector"), template or naming.SERIES_TEMPLATE))
        else:
            meta = found[0] if found else None
            entries.append((src, meta, series, template or naming.DEFAULT_TEMPLATE))
    needs_meta = set().union(*(naming.template_fields(e[3]) for e in entries)) & set(naming.METADATA_FIELDS)
    names = []
    for index, (src, meta, sel, tmpl) in enumerate(entries):
        if meta is None and needs_meta:
            meta = _metadata_of(src, sel)
        names.append(naming.render_name(tmpl, naming.fields_for(src, index, meta)))
    labels = [src if sel is None or sel == series else f"{src} [series {sel}]" for src, _, sel, _ in entries]
    names = naming.unique_names(names, labels)
    return [Task(src, naming.destination(outdir, name, to), series=sel, label=label)
            for (src, _, sel, _), name, label in zip(entries, names, labels)]


def _series_of(path):
    """The DICOM series of a directory (None when it holds none, or the reader is absent)."""
    from ..errors import MedconvError

    try:
        from .. import dicom
    except ImportError:
        return None
    if not hasattr(dicom, "list_series"):
        return None
    try:
        return list(dicom.list_series(path)) or None
    except MedconvError:
        return None  # the conversion itself reports what is wrong, per input


def _metadata_of(src, series):
    from .. import read
    from ..errors import MedconvError

    try:
        return read(src, header_only=True, **({"series": series} if series is not None else {})).metadata
    except MedconvError:
        return None


def _exists(dst: str) -> bool:
    """The output is there: a non-empty directory, or every file of a multi-file output (a
    .hdr with its .img, a .mhd/.nhdr with its data file); half a pair is not done."""
    if dst.endswith(("/", os.sep)):
        return os.path.isdir(dst) and bool(os.listdir(dst))
    return all(os.path.lexists(f) for f in _files_of(dst))


def _partly_exists(dst: str) -> bool:
    return not dst.endswith(("/", os.sep)) and any(os.path.lexists(f) for f in _files_of(dst))


def _files_of(path: str) -> list:
    """The files that make up one image on disk: the path, plus its .img/.hdr partner or the data
    file a MetaImage/NRRD header names (the default name when the header is not there yet)."""
    low = path.lower()
    if low.endswith((".hdr", ".img", ".hdr.gz", ".img.gz")):
        from ..formats.nifti import output_paths

        return list(dict.fromkeys([path] + output_paths(path, "nifti1")))
    if low.endswith((".mhd", ".nhdr")):
        if os.path.isfile(path):
            from ..inspect import volume_files

            return volume_files(path)
        return [path, os.path.splitext(path)[0] + ".raw"]
    return [path]


def _mtime(path: str, newest: bool) -> float:
    """A file's mtime; for a multi-file image or a directory the newest (source) or oldest
    (destination) of its files."""
    if not os.path.isdir(path):
        times = []
        for f in _files_of(path):
            try:
                times.append(os.stat(f).st_mtime)
            except OSError:
                if f == path or not newest:  # a missing destination file: redo it
                    return float("inf") if newest else 0.0
        return max(times) if newest else min(times)
    times = []
    for root, _, files in os.walk(path):
        for name in files:
            try:
                times.append(os.stat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    if not times:
        return 0.0
    return max(times) if newest else min(times)


def sidecar_path(dst: str) -> str:
    """brain.nii.gz -> brain.json; a DICOM directory out/ct/ -> out/ct.json."""
    base = dst.rstrip("/" + os.sep) if dst.endswith(("/", os.sep)) else dst
    low = base.lower()
    for ext in (".nii.gz", ".img.gz", ".hdr.gz"):
        if low.endswith(ext):
            return base[: -len(ext)] + ".json"
    root, ext = os.path.splitext(base)
    return (root if ext else base) + ".json"


def convert_task(common: dict, sidecar: bool, strict: bool, task: Task) -> list:
    """Convert one task (runs in a worker with -j): one library call, sidecar included."""
    from ..convert import convert

    return convert(task.src, task.dst, force=task.force, series=task.series, strict=strict,
                   sidecar_path=sidecar_path(task.dst) if sidecar else None, **common)
