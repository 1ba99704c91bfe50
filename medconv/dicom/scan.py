"""Walk files and directory trees reading DICOM headers only; group frames into series."""
from __future__ import annotations

import contextlib
import gc
import io as pyio
import os
import stat
import struct
import warnings

from .. import fileio, log
from ..errors import CorruptInput, InputError
from .elements import (
    DEFLATED,
    EXPLICIT_BE,
    FLOAT_PIXEL_BYTES,
    IMPLICIT_LE,
    PIXEL_DATA,
    PIXEL_TAGS,
    PIXEL_VRS,
    UNDEFINED,
)
from .frame import Frame

_DICOMDIR_SOP = "1.2.840.10008.1.3.10"


def looks_like_dicom(path: str) -> bool:
    """Cheap content test: the DICM preamble, or a plausible first element without one."""
    from .. import formats

    try:
        with open(path, "rb") as fh:
            head = fh.read(formats.HEAD_SIZE)
        if head[:2] == b"\x1f\x8b":
            head = fileio.read_bytes(path, formats.HEAD_SIZE)
    except (OSError, InputError):
        return False
    return formats.BY_NAME["dicom"].sniff(head)


def open_dicom(path: str):
    """A binary file object of the DICOM bytes (gzip-compressed files are inflated in memory)."""
    fh = open(path, "rb")
    if fh.read(2) == b"\x1f\x8b":
        from .guards import inflate

        fh.seek(0)
        with fh:  # inflated no further than the data set declares (no gzip bombs)
            return pyio.BytesIO(inflate(fh.read(), 31, path, offset=None))
    fh.seek(0)
    return fh


def walk(path: str) -> list:
    """Every file under `path` (sorted, hidden directories included), or [path] for a file."""
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path, onerror=None):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.isfile(full):
                found.append(full)
    return found


def _length(fh) -> int:
    try:
        return len(fh.getbuffer())
    except AttributeError:
        return os.fstat(fh.fileno()).st_size


def _pixel_element(fh, ts: str, size: int, path: str):
    """(tag, value length or None when undefined) of the element at the current offset."""
    start = fh.tell()
    head = fh.read(12)
    if len(head) < 8:
        return None, None
    big = ts == EXPLICIT_BE
    group, elem = struct.unpack(">HH" if big else "<HH", head[:4])
    tag = (group << 16) | elem
    if tag not in PIXEL_TAGS:
        return None, None
    if ts == IMPLICIT_LE or head[4:6] not in PIXEL_VRS:
        length = struct.unpack("<I", head[4:8])[0]
        header_len = 8
    else:
        if len(head) < 12:
            raise CorruptInput("file ends inside the pixel data element", path)
        length = struct.unpack(">I" if big else "<I", head[8:12])[0]
        header_len = 12
    if length == UNDEFINED:
        return tag, None
    if start + header_len + length > size:
        raise CorruptInput(f"truncated: pixel data declares {length} bytes but only "
                           f"{max(size - start - header_len, 0)} are present", path)
    return tag, (start + header_len, length)


def _num(ds, keyword, default):
    try:
        v = ds.get(keyword)
        if isinstance(v, (list, tuple)):
            v = v[0]
        return int(float(v)) if v not in (None, "") else default
    except Exception:
        return default


def _frames(ds, path) -> int:
    """NumberOfFrames, or 1; a value that is not a number (seen: '1A') is read as 1, and said."""
    raw = ds.get("NumberOfFrames")
    if raw in (None, ""):
        return 1
    try:
        return max(int(float(raw)), 1)
    except (TypeError, ValueError):
        from .. import log

        log.warn(f"NumberOfFrames {str(raw)[:16]!r} is not a number: read as one frame", path)
        return 1


def check_claims(ds, path, size, n_frames, where):
    """Refuse a header that claims more pixel bytes than the file can hold (before any allocation)."""
    rows, cols = _num(ds, "Rows", 0), _num(ds, "Columns", 0)
    samples, bits = _num(ds, "SamplesPerPixel", 1), _num(ds, "BitsAllocated", 16)
    if rows <= 0 or cols <= 0 or samples <= 0 or bits <= 0 or n_frames <= 0:
        raise CorruptInput(f"invalid image size ({rows} rows x {cols} columns, {samples} samples, "
                           f"{bits} bits, {n_frames} frames)", path)
    per_frame = rows * cols * samples * bits / 8
    if str(ds.get("PhotometricInterpretation") or "").strip().upper() == "YBR_FULL_422" and where is not None:
        per_frame = per_frame * 2 / 3  # chroma subsampled: two samples per pixel on average
    claimed = per_frame * n_frames
    if where is not None:
        if claimed > where[1] + 1:
            raise CorruptInput(f"header declares {n_frames} frame(s) of {rows}x{cols} ({int(claimed)} bytes) but "
                               f"the pixel data holds {where[1]} bytes", path)
    elif claimed > 1000 * max(size, 1):
        raise CorruptInput(f"header declares {n_frames} frame(s) of {rows}x{cols}, far more than this "
                           f"{size}-byte file can hold", path)


#: bytes read for the first walk of a header: a larger header is read again, 8 times as much, and
#: walked again; Siemens headers with their CSA protocol often pass 64 KiB, few pass this
HEAD_BYTES = 128 << 10


def _read_light(path: str, size: int, strict_single: bool = False):
    """Frames via the light parser, or None when pydicom must read this file."""
    from . import header_view

    try:
        ds, tag, where = header_view.parse(path, size, HEAD_BYTES)
    except (header_view.Unsupported, struct.error, ValueError, OSError, RecursionError):
        return None
    image_type = ds.get("ImageType") or ""
    if "MOSAIC" in (image_type if isinstance(image_type, str) else "\\".join(image_type)).upper():
        return None  # Siemens mosaics need the CSA header, read through pydicom
    if tag is None and where is None and ds.file_meta.get("MediaStorageSOPClassUID") != _DICOMDIR_SOP:
        # the whole file walked and no pixel data (raw data, exam cards, reports): no image, and no
        # need to import pydicom to learn it
        if strict_single:
            exc = InputError("DICOM file holds no image (no pixel data)", path)
            exc.light_header = ds  # the whole file was walked: complete, and what its header names
            raise exc
        return []
    if tag is None or "Rows" not in ds:
        return None  # let pydicom decide what this file is
    offset, length = where
    if offset + length > size:
        raise CorruptInput(f"truncated: pixel data declares {length} bytes but only "
                           f"{max(size - offset, 0)} are present", path)
    float_pixels = FLOAT_PIXEL_BYTES.get(tag, 0)
    n_frames = _frames(ds, path)
    check_claims(ds, path, size, n_frames, where)
    if n_frames == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [Frame(ds, path, None, 1, size, where, float_pixels)]
    first = Frame(ds, path, 0, n_frames, size, where, float_pixels)
    return [first] + [Frame(ds, path, i, n_frames, size, where, float_pixels, like=first)
                      for i in range(1, n_frames)]


def read_file(path: str, strict_single: bool = False) -> list:
    """Frames of one file (headers only); [] when it is not a DICOM image.

    With `strict_single` (the user named this file), a broken header raises instead.
    """
    size = os.path.getsize(path)
    frames = _read_light(path, size, strict_single)
    if frames is not None:
        return frames
    from pydicom.errors import InvalidDicomError

    try:
        with open_dicom(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's VR/charset notes are not the user's business
            from . import guards as dcm_guards
            ds = dcm_guards.dcmread(fh, path, stop_before_pixels=True, force=True)
            ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or IMPLICIT_LE)
            if getattr(ds, "file_meta", None) is not None and "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = ts
            if ts == DEFLATED:
                # the data set is a deflate stream: no byte offset to check; pydicom inflates it later
                tag, where = (PIXEL_DATA if "Rows" in ds else None), None
            else:
                tag, where = _pixel_element(fh, ts, _length(fh), path)
                if isinstance(fh, pyio.BytesIO):
                    where = None  # inflated in memory: pixels come through pydicom
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            struct.error, NotImplementedError) as exc:
        if strict_single:
            raise CorruptInput(f"cannot read DICOM header ({type(exc).__name__}: {exc})", path) from None
        log.warn(f"skipped: cannot read DICOM header ({exc})", path)
        return []
    except CorruptInput:
        raise
    try:
        return _frames_of(ds, path, size, tag, where, strict_single)
    except (CorruptInput, InputError):
        raise
    except Exception as exc:
        if strict_single:
            raise CorruptInput(f"malformed DICOM header ({type(exc).__name__}: {exc})", path) from None
        log.warn(f"skipped: malformed DICOM header ({exc})", path)
        return []


def _frames_of(ds, path, size, tag, where, strict_single):
    sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop == _DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        return []
    if tag is None or "Rows" not in ds:
        if strict_single:
            raise InputError("DICOM file holds no image (no pixel data)", path)
        return []
    float_pixels = FLOAT_PIXEL_BYTES.get(tag, 0)
    n_frames = _frames(ds, path)
    check_claims(ds, path, size, n_frames, where)
    offset = where  # (value offset, length) for native data, None for encapsulated
    if n_frames == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [Frame(ds, path, None, 1, size, offset, float_pixels)]
    first = Frame(ds, path, 0, n_frames, size, offset, float_pixels)
    return [first] + [Frame(ds, path, i, n_frames, size, offset, float_pixels, like=first)
                      for i in range(1, n_frames)]


def _is_dicomdir(path: str) -> bool:
    if os.path.basename(path).upper() == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return _DICOMDIR_SOP.encode() in head


def scan(path: str) -> list:
    """All image frames under `path` (a file or a directory tree)."""
    if not os.path.exists(path):
        raise InputError("no such file or directory", path)
    if os.path.isfile(path) and _is_dicomdir(path):
        # a DICOMDIR names the files of its tree: read the tree it sits at the root of
        return scan(os.path.dirname(os.path.abspath(path)))
    if os.path.isfile(path):
        key = _file_key(path)
        cached = SCANS.get(key) if key is not None else None
        if cached is not None:
            return list(cached)
        with _collector_paused():
            frames = read_file(path, strict_single=True)
        if not frames:
            raise InputError("no DICOM image in this file", path)
        _remember(key, frames)
        return list(frames)
    files, key = _walk_stamped(path)
    cached = SCANS.get(key) if key is not None else None
    if cached is not None:
        return type(cached)(cached, cached.skipped, cached.partial)
    from . import damage

    frames = damage.Frames()  # a damaged or non-image file is skipped and reported, never fatal
    n_dicom = 0
    with _collector_paused():
        for f in files:
            if looks_like_dicom(f):
                n_dicom += 1
                _read_tree_file(f, frames)
    damage.summary(path, frames, n_dicom)
    if not frames and not frames.partial:
        raise damage.nothing_usable(path, frames, n_dicom)
    _remember(key, frames)
    return damage.Frames(frames, frames.skipped, frames.partial)


@contextlib.contextmanager
def _collector_paused():
    """The cyclic garbage collector paused for the block: a scan builds tens of thousands of small
    objects (elements, items, frames) that all stay alive and hold no cycles, so the collector's
    passes over them, which their number triggers, find nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- reading one file of a tree -----------------------------------------------------------------

def _read_tree_file(path: str, frames) -> None:
    """Add the frames of one file of a directory tree to `frames`; a file that cannot be used is
    reported (one warning line) and recorded instead."""
    from . import damage

    try:
        found = read_file(path, strict_single=True)
    except OSError as exc:  # unreadable (permissions, gone since the walk)
        reason = f"cannot read it ({exc.strerror or exc})"
        log.warn(f"skipped: {reason}", path)
        frames.skipped.append(damage.Skip(path, "damaged", reason))
        return
    except CorruptInput as exc:
        _damaged(path, _reason(exc), frames)
        return
    except InputError as exc:  # "holds no image": a non-image object, or a file cut short
        light = getattr(exc, "light_header", None)
        cut = None if light is not None else damage.truncation(path)
        if cut:
            _damaged(path, f"truncated: {cut}", frames)
            return
        what = _class_name(light) or damage.sop_name(light if light is not None else _header(path))
        # a complete file of an image class without pixel data (test sets strip them) is no image
        reason = f"{what} without pixel data" if what and "Image Storage" in what else (what or "no pixel data")
        log.warn(f"skipped: not an image ({reason})", path)
        frames.skipped.append(damage.Skip(path, "not an image", reason))
        return
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # whatever a hostile file trips in a reader: this file only
        _damaged(path, f"cannot read it ({type(exc).__name__}: {exc})", frames)
        return
    if found and found[0].pixel_offset is None and found[0].transfer_syntax != DEFLATED:
        cut = damage.encapsulated_truncation(path)
        if cut:
            _damaged(path, f"truncated: {cut}", frames, found[0].ds)
            return
    frames.extend(found)


#: the storage classes without pixel data found beside images, by name (others: pydicom's UID names)
_NON_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data Storage", "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage", "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document Storage",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State Storage",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
}


def _class_name(view):
    """The name of a light header's storage class when it is one of _NON_IMAGE_CLASSES, else None."""
    if view is None:
        return None
    uid = view.get_known("SOPClassUID") or view.file_meta.get("MediaStorageSOPClassUID")
    return _NON_IMAGE_CLASSES.get(str(uid or "").strip())


def _damaged(path, reason, frames, ds=None):
    """damage.damaged, with what the file's header still says when `ds` is not given."""
    from . import damage

    damage.damaged(path, reason, frames, ds if ds is not None else _header(path))


def _reason(exc) -> str:
    msg = exc.message
    return msg[len("skipped: "):] if msg.startswith("skipped: ") else msg


def _header(path):
    """Whatever pydicom can still read of a file's header (None when nothing)."""
    import pydicom

    try:
        with open_dicom(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(fh, stop_before_pixels=True, force=True)
    except Exception:
        return None


#: scans of this process (directories, and single files), keyed by every file's name, size and mtime:
#: converting the series of one directory (or the outputs of one enhanced file) one by one parses
#: each header once, and any change to the tree misses
SCANS: dict = {}


def _remember(key, frames) -> None:
    if key is None:
        return
    if len(SCANS) >= 4:
        SCANS.pop(next(iter(SCANS)))
    SCANS[key] = frames


def _file_key(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _walk_stamped(path):
    """walk(path) and _tree_key(path, its files) with one stat per file."""
    found, stamps = [], []
    for root, dirs, files in os.walk(path, onerror=None):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:
                continue  # not a file walk() lists (os.path.isfile is False)
            if stat.S_ISREG(st.st_mode):
                found.append(full)
                stamps.append((full, st.st_size, st.st_mtime_ns))
    return found, (os.path.abspath(path), tuple(stamps))


def _tree_key(path, files):
    stamps = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return None
        stamps.append((f, st.st_size, st.st_mtime_ns))
    return (os.path.abspath(path), tuple(stamps))
