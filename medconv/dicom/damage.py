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
import struct
import warnings

from .. import log
from ..errors import CorruptInput, InputError
from .wrap import Frame

_IMPLICIT = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
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
    except (OSError, struct.error, ValueError, RecursionError):
        return None


def _walk_file(buf):
    pos = 132 if len(buf) >= 132 and buf[128:132] == b"DICM" else 0
    ts = _IMPLICIT
    while pos + 8 <= len(buf) and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
        start = pos
        end, tag, cut = _element(buf, pos, True, False)
        if cut:
            return cut
        if tag == 0x00020010:
            vr_len = 12 if bytes(buf[start + 4:start + 6]) in _LONG_VRS else 8
            ts = bytes(buf[start + vr_len:end]).decode("latin-1").rstrip("\x00 ")
        pos = end
    if pos < len(buf) and pos + 8 > len(buf):
        return f"file ends inside an element header at byte {pos}"
    if ts == _DEFLATED:
        return None
    explicit, big = ts != _IMPLICIT, ts == _BIG_ENDIAN
    while pos < len(buf):
        if pos + 8 > len(buf):
            return f"file ends inside an element header at byte {pos}"
        pos, _, cut = _element(buf, pos, explicit, big)
        if cut:
            return cut
    return None


def _tag_text(tag):
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _element(buf, pos, explicit, big, depth=0):
    """(end of the element at pos, tag, what is cut or None)."""
    if depth > 64:
        raise ValueError("nesting")
    size = len(buf)
    if pos + 8 > size:
        return size, None, f"file ends inside an element header at byte {pos}"
    group, elem = struct.unpack_from(">HH" if big else "<HH", buf, pos)
    tag = (group << 16) | elem
    u32 = ">I" if big else "<I"
    if group == 0xFFFE:  # item or delimiter: implicit form whatever the transfer syntax
        return pos + 8, tag, None
    vr = None
    if explicit:
        vr = bytes(buf[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            if pos + 12 > size:
                return size, tag, f"file ends inside the header of element {_tag_text(tag)}"
            length, start = struct.unpack_from(u32, buf, pos + 8)[0], pos + 12
        elif len(vr) == 2 and vr.isalpha() and vr.isupper():
            length, start = struct.unpack_from(">H" if big else "<H", buf, pos + 6)[0], pos + 8
        else:
            raise ValueError("not explicit VR here")  # not a structure this walk follows
    else:
        length, start = struct.unpack_from(u32, buf, pos + 4)[0], pos + 8
    if length == 0xFFFFFFFF:
        inner_explicit = explicit and vr != b"UN"
        return _undefined(buf, start, inner_explicit, big, tag, depth)
    if start + length > size:
        return size, tag, (f"file ends inside element {_tag_text(tag)}: {length} bytes declared, "
                           f"{size - start} present")
    return start + length, tag, None


def _undefined(buf, pos, explicit, big, tag, depth):
    """Walk a sequence (or encapsulated pixel data) of undefined length to its delimiter."""
    size = len(buf)
    u32 = ">I" if big else "<I"
    pixel = tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)
    while True:
        if pos + 8 > size:
            where = "encapsulated pixel data" if pixel else f"sequence {_tag_text(tag)}"
            return size, tag, f"file ends inside the {where} (no closing delimiter)"
        group, elem = struct.unpack_from(">HH" if big else "<HH", buf, pos)
        item_tag = (group << 16) | elem
        length = struct.unpack_from(u32, buf, pos + 4)[0]
        pos += 8
        if item_tag == _SEQ_END:
            return pos, tag, None
        if item_tag != _ITEM:
            raise ValueError("unexpected element in a sequence")
        if length != 0xFFFFFFFF:
            if pos + length > size:
                what = "a pixel data fragment" if pixel else f"an item of sequence {_tag_text(tag)}"
                return size, tag, f"file ends inside {what}: {length} bytes declared, {size - pos} present"
            pos += length
            continue
        while True:  # an item of undefined length: elements up to the item delimiter
            if pos + 8 > size:
                return size, tag, f"file ends inside an item of sequence {_tag_text(tag)}"
            group, elem = struct.unpack_from(">HH" if big else "<HH", buf, pos)
            if ((group << 16) | elem) == _ITEM_END:
                pos += 8
                break
            pos, _, cut = _element(buf, pos, explicit, big, depth + 1)
            if cut:
                return size, tag, cut


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
