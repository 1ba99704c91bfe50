"""Inputs -> conversion tasks: the output format, series discovery (each DICOM folder scanned once),
output names, existing outputs. A Python user plans a batch here and runs it with
`medconv.convert.convert_many`:

    >>> from medconv import plan, convert
    >>> tasks = plan.plan(["export/", "ct.mha"], "nifti/", to="nii.gz")
    >>> plan.mark_existing(tasks, "update")
    >>> done, failed = convert.convert_many(tasks, jobs=4, keep_going=True)
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field

#: what -o DIR writes when neither `to` nor an extension ending the template says: NIfTI-1 .nii.gz,
#: as dcm2niix does
DEFAULT_OUTPUT = "nii.gz"

#: the modes of mark_existing: skip an existing destination, or redo it only when the source is newer
EXISTING_MODES = ("skip", "update")


@dataclass
class Task:
    """One planned conversion: what to read (and which series), where to write, in which format.

    `scanned` is the DICOM series found while planning: reading it needs no second scan of the
    folder. A worker process forked after planning takes the same series from its copy of this
    process; any other finds it again by `series`.
    `refused` says why a series that lost a file to damage is not converted; `damaged` lists
    (label, error) of the damaged files of the input that no series claims (reported as failures).
    """

    src: str
    dst: str
    series: object = None
    force: bool = False
    label: str = ""
    skip: str = ""  # why it is skipped (mark_existing), empty when it runs
    fmt: str | None = None
    slice_folder: bool = False  # a 3D input to a 2D format writes the folder dst/NAME/ of slices
    implied_dicom: bool = False  # a DST/ alone said DICOM: the run says what it writes
    refused: str = ""
    damaged: list = field(default_factory=list)
    scanned: object = None

    def __str__(self):
        return self.label or self.src

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.scanned is not None:  # the frames stay in this process: a key to them travels
            state["scanned"] = _scan_key(self.scanned)
        return state

    def __setstate__(self, state):
        key = state.get("scanned")
        series = _SCANNED.get(key[0]) if isinstance(key, tuple) else None
        state["scanned"] = series if series is not None and _scan_key(series) == key else None
        self.__dict__.update(state)


#: the series planned in this process, by id (a worker forked after planning inherits them)
_SCANNED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _scan_key(series) -> tuple:
    return id(series), series.selector, series.frames[0].path


def output_format(to: str | None, template: str | None = None) -> tuple:
    """What -o DIR writes: (format name, the `to` token, the template without its extension).

    `to` (a format name or an extension) decides, else an extension ending the template names the
    file exactly, else NIfTI-1 .nii.gz; with both, they must mean the same format.
    """
    from .errors import UsageError
    from .formats import extension_in_name, output_choice

    token = to
    if template is not None:
        stripped, named = extension_in_name(template)
        if named is not None:
            if to is not None and output_choice(to)[0] != output_choice(named)[0]:
                raise UsageError(f"--name ends in .{named} but --to {to} writes {output_choice(to)[0]}; "
                                 "drop one of them")
            token, template = named, stripped
    if token is None:
        token = DEFAULT_OUTPUT
    return output_choice(token)[0], token, template


def pair(src: str, dst: str, *, to: str | None = None, series=None) -> list:
    """The one task of SRC DST; the format follows `to`, else DST's extension (DST/ is DICOM)."""
    from .formats import format_for_output

    fmt = format_for_output(dst, to)
    return [Task(src, dst, series=series, label=src, fmt=fmt, implied_dicom=fmt == "dicom" and to is None)]


def plan(inputs, out_dir: str, *, to: str | None = None, template: str | None = None, series=None) -> list:
    """Tasks writing `inputs` into `out_dir`: a DICOM folder (or file) holding several series becomes
    one task per series; names come from the template (default {stem}, or
    {series_number}_{series_description} for the series of a folder); clashes get distinct names
    with a warning. `series` chooses one series of every DICOM input."""
    from . import naming
    from .formats import RASTER

    fmt, token, template = output_format(to, template)
    entries = []  # (src, metadata, series selector, template, scanned series, damaged files)
    for src in inputs:
        found, damaged = _survey(src) if series is None else (None, [])
        if found and len(found) > 1:
            for k, s in enumerate(found):  # the damaged files of the folder go with its first task
                entries.append((src, s, s.get("selector"), template or naming.SERIES_TEMPLATE, s.get("scanned"),
                                [] if k else damaged))
        else:
            meta = found[0] if found else None
            entries.append((src, meta, series, template or naming.DEFAULT_TEMPLATE, meta and meta.get("scanned"),
                            damaged))
    names = _names(entries, series)
    for entry in entries:
        if entry[4] is not None:
            _SCANNED[id(entry[4])] = entry[4]
    return [Task(src, naming.destination(out_dir, name, token), series=sel, label=label, fmt=fmt,
                 slice_folder=fmt in RASTER, refused=(meta or {}).get("refused", ""), damaged=damaged,
                 scanned=scanned)
            for (src, meta, sel, _, scanned, damaged), (name, label) in zip(entries, names)]


def _names(entries, series) -> list:
    """(distinct output name, label) of each entry."""
    from . import naming

    needs_meta = set().union(*(naming.template_fields(e[3]) for e in entries)) & set(naming.METADATA_FIELDS)
    names = []
    for index, (src, meta, sel, tmpl, _, _) in enumerate(entries):
        if meta is None and needs_meta:
            meta = _metadata_of(src, sel)
        # a DICOM series split as dcm2niix splits it keeps its suffix (_e2, _ph, _fieldmaphz, ...)
        suffix = (meta or {}).get("suffix") or ""
        name = naming.render_name(tmpl, naming.fields_for(src, index, meta))
        names.append(name + "_" + naming.sanitise(suffix.lstrip("_")) if suffix else name)
    labels = [src if sel is None or sel == series else f"{src} [series {sel}]" for src, _, sel, *_ in entries]
    return list(zip(naming.unique_names(names, labels), labels))


def _survey(src):
    """(series found, damaged files no series claims) of a DICOM folder or file, from one scan; (None, [])
    for anything else (or when the scan fails: the conversion itself reports what is wrong)."""
    if not (os.path.isdir(src) or _is_dicom_file(src)):
        return None, []
    from .errors import MedconvError

    try:
        from . import dicom
    except ImportError:
        return None, []
    try:
        found, damaged = dicom.survey(src)
    except MedconvError:
        return None, []
    return found or None, [(f"{src} [{name}]", exc) for name, exc in damaged]


def _is_dicom_file(path) -> bool:
    if not os.path.isfile(path):
        return False
    from .dicom.scan import looks_like_dicom

    return looks_like_dicom(path)


def _metadata_of(src, series):
    from . import read
    from .errors import MedconvError

    try:
        return read(src, header_only=True, **({"series": series} if series is not None else {})).metadata
    except MedconvError:
        return None


def mark_existing(tasks, mode: str | None) -> int:
    """Mark the tasks whose destination exists: mode "skip" skips them, "update" skips those at least
    as new as their source and replaces the others; an incomplete multi-file output (a .hdr without
    its .img) is redone. Returns how many tasks are skipped."""
    if mode is None:
        return 0
    if mode not in EXISTING_MODES:
        from .errors import UsageError

        raise UsageError(f"unknown mode {mode!r} for existing outputs; choose from {', '.join(EXISTING_MODES)}")
    for task in tasks:
        done = _slice_folder(task.dst) if task.slice_folder else task.dst
        if mode == "skip" and exists(done):
            task.skip = "destination exists"
        elif mode == "update" and exists(done):
            if mtime(task.src, newest=True) <= mtime(done, newest=False):
                task.skip = "destination is up to date"
            else:
                task.force = True
        elif _partly_exists(task.dst):
            task.force = True
    return sum(1 for t in tasks if t.skip)


def _slice_folder(dst: str) -> str:
    """out/NAME.png, or the folder out/NAME/ a 3D input wrote its slices into when that is there."""
    folder = os.path.splitext(dst)[0] + os.sep
    return folder if not os.path.lexists(dst) and os.path.isdir(folder) else dst


def exists(dst: str) -> bool:
    """The output is there: a non-empty directory, or every file of a multi-file output (a
    .hdr with its .img, a .mhd/.nhdr with its data file); half a pair is not done."""
    if dst.endswith(("/", os.sep)):
        return os.path.isdir(dst) and bool(os.listdir(dst))
    return all(os.path.lexists(f) for f in files_of(dst))


def _partly_exists(dst: str) -> bool:
    return not dst.endswith(("/", os.sep)) and any(os.path.lexists(f) for f in files_of(dst))


def files_of(path: str) -> list:
    """The files that make up one image on disk (formats.files)."""
    from .formats import files

    return files(path)


def mtime(path: str, newest: bool) -> float:
    """A file's mtime; for a multi-file image or a directory the newest (source) or oldest
    (destination) of its files."""
    if not os.path.isdir(path):
        times = []
        for f in files_of(path):
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
    from .formats import GZ_FILE_EXTENSIONS

    for ext in GZ_FILE_EXTENSIONS:
        if low.endswith(ext):
            return base[: -len(ext)] + ".json"
    root, ext = os.path.splitext(base)
    return (root if ext else base) + ".json"
