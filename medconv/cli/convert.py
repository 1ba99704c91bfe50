"""medconv convert: any input to any writable format, one file or a whole batch."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import click

from ..formats import ALL_DTYPES, GZ_FILE_EXTENSIONS
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
    import functools

    from .. import batch, io, log
    from ..errors import InputError, UsageError
    from ..formats import RASTER, format_for_output, output_choice

    paths = options.read_path_list(paths, from_list)
    sidecar_keys = sidecar_choice(sidecar_add, sidecar_drop, sidecar_only)
    if sidecar_keys and not sidecar:
        sidecar = True  # choosing sidecar keys asks for the sidecar
    if from_list and not paths and output is not None:
        # an empty list (a Slurm array task past the end of files.txt, a find that matched nothing)
        # is nothing to do, as with xargs -r or GNU parallel
        log.note(f"no inputs in {'stdin' if from_list == '-' else from_list}: nothing to do")
        return
    if skip_existing and update:
        raise UsageError("--skip-existing and --update exclude each other")
    if compression_level is not None:
        io.set_compression(level=compression_level)
    per_input_folder = False
    if output is None:
        if len(paths) != 2:
            raise UsageError("give SRC DST, or SRC... -o DIR" if paths else "no input given (SRC DST, or SRC... -o DIR)")
        if name_template is not None:
            raise UsageError("--name applies with -o DIR")
        out_fmt = format_for_output(paths[1], to)
        tasks = [Task(paths[0], paths[1], series=series, label=paths[0])]
        if out_fmt == "dicom" and to is None:
            tasks[0].extra["implied_dicom"] = True  # DST/ alone says DICOM: the run says so
    else:
        if not paths:
            raise UsageError("no input given")
        token, name_template = output_token(to, name_template)
        out_fmt = output_choice(token)[0]
        tasks = plan(paths, output, name_template, token, series)
        per_input_folder = out_fmt in RASTER  # a 3D input becomes a folder of slices
    if template_path is not None:
        if out_fmt != "dicom":
            raise UsageError("--template applies to DICOM outputs (--to dicom)")
        if not os.path.isfile(template_path):
            raise InputError("no such file (--template)", template_path)

    for task in tasks:
        task.force = force
        done = _slice_folder(task.dst) if per_input_folder else task.dst  # a 3D input's folder of slices
        if skip_existing and _exists(done):
            task.skip = "destination exists"
        elif update and _exists(done):
            if _mtime(task.src, newest=True) <= _mtime(done, newest=False):
                task.skip = "destination is up to date"
            else:
                task.force = True
        elif (skip_existing or update) and _partly_exists(task.dst):
            task.force = True  # an incomplete multi-file output (a .hdr without its .img) is redone
    refused = [t for t in tasks if t.extra.get("refused") and not t.skip]  # series that lost a file
    todo = [t for t in tasks if not t.skip and not t.extra.get("refused")]
    skipped = sum(1 for t in tasks if t.skip)
    if skipped and not dry_run:
        log.note(f"{skipped} of {len(tasks)} inputs skipped ({'up to date' if update else 'destination exists'})")

    common = {"to": out_fmt, "dtype": dtype, "orient": orient, "slice_index": slice_index, "window_spec": window_spec}
    if nifti2:
        common["nifti2"] = True
    if fill_gaps:
        common["fill_gaps"] = True
    if philips_scaling != "fp":
        common["philips_scaling"] = philips_scaling
    if template_path is not None:
        common["template"] = template_path
    if per_input_folder:
        common["per_input_folder"] = True
    if dry_run:
        common["dry_run"] = True
    if jobs is None:
        jobs = batch.default_jobs(len(todo))
    if jobs > 1:
        io.set_compression(threads=1)  # the workers already use the cores
        _before_fork()
    if sidecar_keys:
        common["sidecar_keys"] = sidecar_keys
    func = functools.partial(convert_task, common, sidecar, strict)

    def report(task, exc):
        log.warn(f"failed: {exc.message}", exc.path or str(task))

    lost = _lost_files(paths) if output is not None and series is None else []
    failures = _refusals(refused, todo) + lost
    results, failed = batch.run(todo, func, keep_going=keep_going, on_error=report, jobs=jobs,
                                progress=None if dry_run else "convert")
    if dry_run:  # the plan of what passed every check the run makes; what would fail is reported
        from .render import safe

        planned = dict(results)  # task destination -> what the run would write
        for t in tasks:
            if t.skip:
                click.echo(safe(f"{t} -> {t.dst}  (skipped: {t.skip})"))
            elif t.extra.get("refused"):
                click.echo(safe(f"{t} -> {t.dst}  (refused: {t.extra['refused']})"))
            elif t.dst in planned:
                click.echo(safe(f"{t} -> {planned[t.dst]}"))
    batch.finish(failures + failed, len(todo) + len(failures))


def _before_fork():
    """What every worker would import on its own is imported once, before the pool forks them."""
    try:
        from .. import dicom
    except ImportError:
        return
    dicom.before_workers()


def _lost_files(paths):
    """(label, error) of the damaged files of directory inputs that no series claims (reported by the
    scan already): a part of the directory that failed."""
    try:
        from .. import dicom
    except ImportError:
        return []
    from ..errors import MedconvError

    out = []
    for src in paths:
        if not os.path.isdir(src):
            continue
        try:
            out += [(f"{src} [{name}]", exc) for name, exc in dicom.unplaced_damage(src)]
        except MedconvError:
            continue  # the conversion itself reports what is wrong with this input
    return out


def _refusals(refused, todo):
    """(task, error) of the series of a directory refused at planning (a file of theirs is damaged):
    reported and counted as failed while the other series are converted; alone, they are the error."""
    from .. import log
    from ..errors import CorruptInput

    out = [(t, CorruptInput(t.extra["refused"], t.src)) for t in refused]
    if out and not todo:
        if len(out) == 1:
            raise out[0][1]
        raise CorruptInput(f"no series here can be converted ({len(out)} series refused; first: "
                           f"{out[0][1].message})", refused[0].src)
    for task, exc in out:
        log.warn(f"failed: {exc.message}", str(task))
    return out


def output_token(to, name_template):
    """What -o DIR writes: --to, else an extension ending --name, else NIfTI-1 .nii.gz.

    Returns (the --to token, the template without its extension). An extension in --name names
    the file exactly; with --to as well, both must mean the same format.
    """
    from ..errors import UsageError
    from ..formats import extension_in_name, output_choice

    if name_template is not None:
        stripped, token = extension_in_name(name_template)
        if token is not None:
            if to is not None and output_choice(to)[0] != output_choice(token)[0]:
                raise UsageError(f"--name ends in .{token} but --to {to} writes {output_choice(to)[0]}; "
                                 "drop one of them")
            return token, stripped
    return (to if to is not None else DEFAULT_OUTPUT), name_template


#: what -o DIR writes when neither --to nor --name says: NIfTI-1 .nii.gz, as dcm2niix does
DEFAULT_OUTPUT = "nii.gz"


def sidecar_choice(add, drop, only) -> dict | None:
    """{"add", "drop", "only"} of the --sidecar-* options, checked before anything is read or
    written: an unknown keyword or key is a usage error (exit 2)."""
    from ..dicom.sidecar import check_add, check_key

    if not add and not drop and only is None:
        return None
    added = [check_add(a) for a in add]
    drop = [check_add(k) if _is_tag(k) else k for k in drop]
    for key in drop:
        check_key(key, "--sidecar-drop", added)
    keys = None
    if only is not None:
        keys = _key_list(only)
        if not keys:
            from ..errors import UsageError

            raise UsageError("--sidecar-only needs at least one key")
        for key in keys:
            check_key(key, "--sidecar-only", added)
    return {"add": list(add), "drop": list(drop), "only": keys}


def _is_tag(text: str) -> bool:
    from ..dicom.sidecar import _tag_of

    return _tag_of(text) is not None


def _key_list(text: str) -> list:
    """'EchoTime,0019,100C,RepetitionTime' -> keys, a gggg,eeee tag kept whole (as its sidecar key)."""
    import re

    from ..dicom.sidecar import check_add

    parts = [p.strip() for p in text.split(",") if p.strip()]
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and re.fullmatch(r"\(?[0-9A-Fa-f]{4}", parts[i]) and re.fullmatch(r"[0-9A-Fa-f]{4}\)?", parts[i + 1]):
            out.append(check_add(parts[i] + "," + parts[i + 1]))
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def plan(paths, outdir, template, to, series) -> list:
    """Tasks for -o DIR: a multi-series DICOM directory becomes one task per series;
    names come from the template, clashes get distinct names (with a warning)."""
    from .. import naming

    entries = []  # (src, metadata, series selector, template)
    for src in paths:
        # a directory, or one DICOM file holding several outputs (an enhanced file with echoes and parts)
        found = _series_of(src) if series is None and (os.path.isdir(src) or _is_dicom_file(src)) else None
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
        # a DICOM series split as dcm2niix splits it keeps its suffix (_e2, _ph, _fieldmaphz, ...)
        suffix = (meta or {}).get("suffix") or ""
        name = naming.render_name(tmpl, naming.fields_for(src, index, meta))
        names.append(name + "_" + naming.sanitise(suffix.lstrip("_")) if suffix else name)
    labels = [src if sel is None or sel == series else f"{src} [series {sel}]" for src, _, sel, _ in entries]
    names = naming.unique_names(names, labels)
    return [Task(src, naming.destination(outdir, name, to), series=sel, label=label,
                 extra={"refused": meta["refused"]} if meta and meta.get("refused") else {})
            for (src, meta, sel, _), name, label in zip(entries, names, labels)]


def _is_dicom_file(path) -> bool:
    if not os.path.isfile(path):
        return False
    from ..dicom.scan import looks_like_dicom

    return looks_like_dicom(path)


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


def _slice_folder(dst: str) -> str:
    """out/NAME.png, or the folder out/NAME/ a 3D input wrote its slices into when that is there."""
    folder = os.path.splitext(dst)[0] + os.sep
    return folder if not os.path.lexists(dst) and os.path.isdir(folder) else dst


def _exists(dst: str) -> bool:
    """The output is there: a non-empty directory, or every file of a multi-file output (a
    .hdr with its .img, a .mhd/.nhdr with its data file); half a pair is not done."""
    if dst.endswith(("/", os.sep)):
        return os.path.isdir(dst) and bool(os.listdir(dst))
    return all(os.path.lexists(f) for f in _files_of(dst))


def _partly_exists(dst: str) -> bool:
    return not dst.endswith(("/", os.sep)) and any(os.path.lexists(f) for f in _files_of(dst))


def _files_of(path: str) -> list:
    """The files that make up one image on disk (formats.files)."""
    from ..formats import files

    return files(path)


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
    for ext in GZ_FILE_EXTENSIONS:
        if low.endswith(ext):
            return base[: -len(ext)] + ".json"
    root, ext = os.path.splitext(base)
    return (root if ext else base) + ".json"


def convert_task(common: dict, sidecar: bool, strict: bool, task: Task):
    """Convert one task (runs in a worker with -j): one library call, sidecar included. With
    `dry_run` in `common`, every check of the run and no write: the planned destination."""
    from ..convert import convert

    if task.extra.get("implied_dicom"):
        common = {**common, "say_dicom": True}
    done = convert(task.src, task.dst, force=task.force, series=task.series, strict=strict,
                   sidecar_path=sidecar_path(task.dst) if sidecar else None, **common)
    return (task.dst, done) if common.get("dry_run") else done
