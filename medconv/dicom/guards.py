"""Limits on what a DICOM file can make medconv do: bounded inflating, bounded sequence nesting.

Every pydicom read goes through `dcmread` here:
- a deflated data set (1.2.840.10008.1.2.1.99) or a gzip-compressed file is inflated only up
  to the size its own header declares (the pixel data Rows x Columns x Frames x Samples x Bits
  allocate, plus the elements before it, plus slack); a stream holding more is refused;
- sequences nested deeper than MAX_DEPTH levels are refused as corrupt (exit 3), before any
  recursive walk (pydicom's, the header printer's, JSON's) can run out of stack.
"""
from __future__ import annotations

import struct
import zlib

from ..errors import CorruptInput
from . import elements
from .elements import MAX_DEPTH, PIXEL_DATA

#: bytes of elements before the pixel data (or of a data set without pixels) inflated at most
MAX_HEADER = 16 << 20
#: inflated bytes accepted beyond the declared size (trailing elements, padding)
SLACK = 1 << 20
_STEP = 1 << 22
#: image size elements read before the pixel data: SamplesPerPixel, Rows, Columns, BitsAllocated (US)
_SIZE_TAGS = (0x00280002, 0x00280010, 0x00280011, 0x00280100)
_NUMBER_OF_FRAMES = 0x00280008


class _State:
    path = None


_state = _State()


def deeper_than_allowed(path) -> CorruptInput:
    return CorruptInput(f"DICOM sequences are nested more than {MAX_DEPTH} levels deep (corrupt or hostile)", path)


def declared_bytes(buf, pos: int = 0, explicit: bool = True):
    """(bytes before the pixel data, pixel bytes the header declares) of a little-endian data set in
    `buf` from `pos`, or None when `buf` ends before the top-level pixel data element (or holds
    elements the walk does not follow)."""
    values = {}
    try:
        for el in elements.walk(buf, pos, explicit=explicit, stop=(PIXEL_DATA,)):
            tag = el.tag
            if el.end is None:
                return el.offset - pos, _pixel_bytes(values)
            if el.items is not None:
                continue
            if tag in _SIZE_TAGS and el.length == 2:
                values[tag] = struct.unpack_from("<H", buf, el.value_offset)[0]
            elif tag == _NUMBER_OF_FRAMES and el.length < 16:
                try:
                    values[tag] = int(el.value().strip(b" \0") or 1)
                except ValueError:
                    values[tag] = 1
    except elements.Unsupported:
        return None
    return None


def _pixel_bytes(values: dict) -> int:
    rows, cols = values.get(0x00280010, 0), values.get(0x00280011, 0)
    samples, bits = values.get(0x00280002, 1) or 1, values.get(0x00280100, 16) or 16
    frames = max(1, values.get(0x00280008, 1))
    return (rows * cols * samples * frames * bits + 7) // 8


def inflate(data, wbits: int, path=None, offset: int = 0, explicit: bool = True) -> bytes:
    """Inflate `data` (raw deflate or gzip, by `wbits`) no further than the data set it holds declares.

    The first bytes are inflated until the pixel data element (at most MAX_HEADER); its Rows,
    Columns, Frames, Samples and Bits Allocated then bound the rest. `offset`: where the data set
    starts in the inflated bytes (after the preamble and meta header of a gzip-compressed file)."""
    dec = zlib.decompressobj(wbits)
    pieces, total = [], 0
    pending = bytes(data)

    def more(limit: int) -> int:
        nonlocal pending, total
        piece = dec.decompress(pending, limit)
        pending = dec.unconsumed_tail
        if piece:
            pieces.append(piece)
            total += len(piece)
        return len(piece)

    try:
        target, declared = 1 << 20, None
        while not dec.eof:
            while total < target and not dec.eof:
                if not more(target - total) and not pending:
                    break
            if dec.eof or not pending and not dec.unconsumed_tail:
                break
            head = b"".join(pieces)
            pieces = [head]
            if offset is None:
                offset, explicit = _part10_start(head)
            found = declared_bytes(head, offset, explicit)
            if found is not None:
                declared = offset + found[0] + found[1]
                break
            if target >= MAX_HEADER:
                break
            target = min(MAX_HEADER, target * 4)
        limit = (declared if declared is not None else MAX_HEADER) + SLACK
        while not dec.eof and (pending or dec.unconsumed_tail):
            if total > limit:
                raise _bomb(limit, declared, path)
            if not more(min(_STEP, limit - total + 1)) and not pending:
                break
        if total > limit:
            raise _bomb(limit, declared, path)
    except zlib.error as exc:
        raise CorruptInput(f"compressed DICOM data is corrupt ({exc})", path or _state.path) from None
    out = b"".join(pieces)
    pieces.clear()
    return out


def _bomb(limit: int, declared, path) -> CorruptInput:
    said = (f"its header declares {declared} bytes" if declared is not None
            else f"no pixel data within the first {MAX_HEADER} bytes")
    return CorruptInput(f"compressed DICOM data inflates beyond {limit} bytes ({said}): refused as a "
                        "decompression bomb", path or _state.path)


def _part10_start(head: bytes) -> tuple:
    """(where the data set starts, explicit VR?) in the bytes of a Part 10 file (0, True without DICM)."""
    if head[128:132] != b"DICM" or len(head) < 144:
        return 0, True
    try:
        meta, start = elements.file_meta(head)
    except elements.Unsupported:
        return 132, True  # the walk of the data set then fails the same way: no declared size
    return start, elements.transfer_syntax(meta) != elements.IMPLICIT_LE


class _BoundedZlib:
    """Stands in for the zlib module inside pydicom's file reader: its one decompress call (the
    deflated data set) goes through `inflate`."""

    def __getattr__(self, name):
        return getattr(zlib, name)

    @staticmethod
    def decompress(data, wbits=zlib.MAX_WBITS, bufsize=0):
        return inflate(data, wbits)


def install() -> None:
    """Make pydicom's reader inflate deflated data sets through `inflate` (idempotent)."""
    import pydicom.filereader as reader

    if not isinstance(getattr(reader, "zlib", None), _BoundedZlib):
        reader.zlib = _BoundedZlib()


def dcmread(source, path=None, **kwargs):
    """pydicom.dcmread with the limits of this module; RecursionError and over-deep sequences are
    CorruptInput naming `path`."""
    import pydicom

    install()
    where = path if path is not None else (source if isinstance(source, str) else getattr(source, "name", None))
    _state.path = where
    try:
        ds = pydicom.dcmread(source, **kwargs)
    except RecursionError:
        raise deeper_than_allowed(where) from None
    finally:
        _state.path = None
    check_depth(ds, where)
    return ds


#: bytes each further level of nesting takes inside a sequence's value at the least: an item
#: header (8) and the header of the sequence element within it (8 or more)
_MIN_LEVEL_BYTES = 16


def check_depth(ds, path) -> None:
    """Refuse a data set whose sequences nest deeper than MAX_DEPTH (walked without recursion)."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement

    todo = [(ds, 0)]
    try:
        while todo:
            current, depth = todo.pop()
            for tag, raw in list(current._dict.items()):
                if isinstance(raw, RawDataElement):
                    vr = raw.VR
                    if vr is None:
                        try:
                            vr = dictionary_VR(tag)
                        except KeyError:
                            vr = None
                    value = raw.value or b""
                    seq = vr == "SQ" or (raw.length == elements.UNDEFINED and tag != PIXEL_DATA) \
                        or (vr in (None, "UN") and value[:4] in (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00"))
                else:
                    seq = raw.VR == "SQ"
                if not seq:
                    continue
                if depth + 1 > MAX_DEPTH:
                    raise deeper_than_allowed(path)
                if isinstance(raw, RawDataElement) and raw.value is not None \
                        and len(raw.value) // _MIN_LEVEL_BYTES < MAX_DEPTH - depth:
                    continue  # too few bytes to nest past MAX_DEPTH: left unparsed until something reads it
                try:
                    items = current[tag].value
                except RecursionError:
                    raise deeper_than_allowed(path) from None
                except Exception:
                    continue  # an unreadable element: reported by whoever reads it
                if isinstance(items, (list, tuple)) or hasattr(items, "__iter__") and not isinstance(items, (bytes, str)):
                    for item in items:
                        if hasattr(item, "_dict"):
                            todo.append((item, depth + 1))
    except RecursionError:
        raise deeper_than_allowed(path) from None
