"""Damaged and non-image files in a DICOM tree: skipped, reported once, never blocking other series.

A directory scan reads every file on its own. A file that cannot be used is skipped with one
warning line and counted in the scan's summary line:

- damaged: truncated (the file ends inside an element or inside its pixel data), a header that
  claims more pixels than the file holds, or a header pydicom cannot parse;
- not an image: a complete DICOM object without pixel data (structured report, presentation
  state, key object selection, raw data, an image header whose pixels were stripped, ...).

A damaged file whose header still names its series (SeriesInstanceUID, and where readable its
size and orientation) takes that series down with it: the series is listed, and refused on its
own with a message naming the file, so an incomplete volume is never written. Every other series
of the tree is read as if the file were not there.
"""
from __future__ import annotations

import os
import warnings

from .. import log
from ..errors import CorruptInput, InputError
from . import elements
from .frame import Frame

#: (FFFE,E0DD) with length 0: the last 8 bytes of a complete encapsulated pixel data element
_SEQ_END_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class DamagedFrame(Frame):
    """What a damaged file's header still says (series, size, orientation), and what is wrong."""

    __slots__ = ("damage",)


class Skip:
    """One skipped file: `kind` is 'damaged' or 'not an image'."""

    __slots__ = ("kind", "path", "reason")

    def __init__(self, path, kind, reason):
        self.path, self.kind, self.reason = path, kind, reason


class Frames(list):
    """The frames of a directory scan, with the files it skipped (`skipped`) and the damaged files
    whose header names a series but not enough to place them in one (`partial`)."""

    def __init__(self, frames=(), skipped=(), partial=()):
        super().__init__(frames)
        self.skipped = list(skipped)
        self.partial = list(partial)
        self.copies = set()  # damaged files that repeat an image read intact


def sop_name(ds):
    """The SOP class name (or UID) a header names; None without one."""
    if ds is None:
        return None
    uid = None
    for source in (ds, getattr(ds, "file_meta", None)):
        try:
            uid = source.get("SOPClassUID") or source.get("MediaStorageSOPClassUID") if source is not None else None
        except Exception:
            uid = None
        if uid:
            break
    if not uid:
        return None
    try:
        from pydicom.uid import UID

        name = UID(str(uid)).name
    except Exception:
        return str(uid)
    return name or str(uid)


def damaged(path, reason, frames, ds):
    """Report and record a damaged file; `ds` (what its header still says, or None) may place it in a series."""
    log.warn(f"skipped: damaged ({reason})", path)
    frames.skipped.append(Skip(path, "damaged", reason))
    if ds is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = DamagedFrame(ds, path, None, 1, _size(path), None, 0)
    except Exception:
        return
    frame.damage = reason
    if not frame.series_uid:
        return  # nothing says which series lost it
    if frame.rows and frame.columns:
        frames.append(frame)  # grouped with its series like any image of it
    else:
        frames.partial.append(frame)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def summary(path, frames: Frames, n_dicom: int) -> None:
    """One line after the per-file warnings: how many files the scan skipped, and why."""
    if not frames.skipped:
        return
    damaged = sum(1 for s in frames.skipped if s.kind == "damaged")
    other = len(frames.skipped) - damaged
    parts = [f"{damaged} damaged"] if damaged else []
    if other:
        parts.append(f"{other} without an image")
    log.warn(f"{len(frames.skipped)} of {n_dicom} DICOM files skipped ({', '.join(parts)})", path)


def nothing_usable(path, frames: Frames, n_dicom: int):
    """The error for a directory in which no file could be used."""
    if not frames.skipped:
        return InputError("no DICOM images found in this directory", path)
    first = frames.skipped[0]
    return InputError(f"no usable DICOM image in this directory: {len(frames.skipped)} of {n_dicom} DICOM files "
                      f"skipped (first: {first.path}: {first.kind}, {first.reason})", path)


# -- series that lost a file ---------------------------------------------------------------------

def attach(series_list, frames):
    """Damaged files known only by their series (header cut before the image size) join every series
    of that SeriesInstanceUID whose orientation they do not contradict; a damaged file whose series
    has no intact image becomes a series of its own (listed, and refused)."""
    from .assemble import IOP_TOL, Series, close_enough

    partial = getattr(frames, "partial", None)
    if not partial:
        return series_list
    out = list(series_list)
    ghosts = {}
    for f in partial:
        hits = [s for s in series_list if s.series_uid == f.series_uid
                and (f.iop is None or close_enough(s.frames[0].iop, f.iop, IOP_TOL))]
        for s in hits:
            s.frames.append(f)
        if not hits:
            ghost = ghosts.get(f.series_uid)
            if ghost is None:
                ghost = ghosts[f.series_uid] = Series([f])
                taken = {s.selector for s in out}
                number = f.series_number
                base = str(number) if number is not None and str(number) not in taken else f.series_uid
                ghost.selector = base if base not in taken else f"{base}.damaged"
                out.append(ghost)
            else:
                ghost.frames.append(f)
    return out


def without_copies(frames):
    """`frames` less the damaged files that are copies of an image read intact elsewhere in the tree
    (the same SOPInstanceUID: a tree exported twice, one copy cut short); those lose nothing."""
    if not isinstance(frames, Frames):
        return frames
    intact = {(f.sop, f.index) for f in frames if f.sop and not isinstance(f, DamagedFrame)}
    copies = {f.path for f in list(frames) + frames.partial
              if isinstance(f, DamagedFrame) and f.sop and (f.sop, f.index) in intact}
    if not copies:
        return frames
    out = Frames([f for f in frames if f.path not in copies], frames.skipped,
                 [f for f in frames.partial if f.path not in copies])
    out.copies = copies
    return out


def unplaced(frames, series_list):
    """Skipped damaged files that no series claims (their header is cut before it names one)."""
    claimed = {f.path for s in series_list for f in s.frames} | getattr(frames, "copies", set())
    return [k for k in getattr(frames, "skipped", ()) if k.kind == "damaged" and k.path not in claimed]


def unplaced_error(skip, path):
    return CorruptInput(f"{skip.path} is damaged ({skip.reason}); the series it belongs to cannot be told, "
                        "and may be incomplete", path)


def damaged_files(series):
    """[(path, reason)] of the damaged files of a series."""
    seen = {}
    for f in series.frames:
        if isinstance(f, DamagedFrame) and f.path not in seen:
            seen[f.path] = f.damage
    return list(seen.items())


def refusal(series, path):
    """The error refusing a series that lost a file to damage (None when it is intact)."""
    bad = damaged_files(series)
    if not bad:
        return None
    if len(bad) == 1:
        what = f"{bad[0][0]} is damaged ({bad[0][1]})"
    else:
        listed = "; ".join(f"{p} ({why})" for p, why in bad[:3])
        what = f"{len(bad)} of its files are damaged: {listed}" + ("; ..." if len(bad) > 3 else "")
    return CorruptInput(f"series {series.selector} is incomplete: {what}; it is not read", path)


def check(series, path):
    exc = refusal(series, path)
    if exc is not None:
        raise exc


# -- truncation ----------------------------------------------------------------------------------

def truncation(path):
    """Where a file ends inside an element ('file ends inside (0028,0010) ...'), or None when every
    element it starts fits (or its structure is not one this walk can follow)."""
    import mmap

    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b" or os.fstat(fh.fileno()).st_size == 0:
                return None  # gzip-wrapped: pydicom reads the inflated bytes
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:  # never the whole file in memory
                return _walk_file(buf)
    except (OSError, ValueError):
        return None


def _walk_file(buf):
    """What the bytes end inside of (the element walk's Truncated message), or None."""
    try:
        meta, pos = elements.file_meta(buf)
        ts = elements.transfer_syntax(meta) or elements.IMPLICIT_LE
        if ts == elements.DEFLATED:
            return None
        explicit, big = elements.NATIVE.get(ts, (True, False))
        for _ in elements.walk(buf, pos, explicit=explicit, big=big):
            pass
    except elements.Truncated as exc:
        return str(exc)
    except elements.Unsupported:
        return None  # not a structure the walk follows: pydicom's reader reports it
    return None


def encapsulated_truncation(path):
    """For a file with encapsulated pixel data: what is cut, or None. A complete file almost always
    ends with the pixel data's sequence delimiter; only when it does not is the file walked."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            if head == b"\x1f\x8b":
                return None
            fh.seek(-8, os.SEEK_END)
            tail = fh.read(8)
    except OSError:
        return None
    if tail == _SEQ_END_LE or tail == b"\xff\xfe\xe0\xdd\x00\x00\x00\x00":
        return None
    return truncation(path)
