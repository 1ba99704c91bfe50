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

#: deepest sequence nesting accepted (the standard's deepest real structures use about a dozen)
MAX_DEPTH = 64
#: bytes of elements before the pixel data (or of a data set without pixels) inflated at most
MAX_HEADER = 16 << 20
#: inflated bytes accepted beyond the declared size (trailing elements, padding)
SLACK = 1 << 20
_STEP = 1 << 22
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR", b"SV", b"UV"}


class _State:
    path = None


_state = _State()


def deeper_than_allowed(path) -> CorruptInput:
    return CorruptInput(f"DICOM sequences are nested more than {MAX_DEPTH} levels deep (corrupt or hostile)", path)


def declared_bytes(buf, pos: int = 0, explicit: bool = True):
    """(bytes before the pixel data, pixel bytes the header declares) of a little-endian data set in
    `buf` from `pos`, or None when `buf` ends before the top-level pixel data element."""
    values = {}
    n = len(buf)
    start, depth = pos, 0
    try:
        while pos + 8 <= n:
            group, elem = struct.unpack_from("<HH", buf, pos)
            if group == 0xFFFE:  # items and delimiters of undefined-length sequences
                length = struct.unpack_from("<I", buf, pos + 4)[0]
                if elem == 0xE000 and length != 0xFFFFFFFF:
                    pos += 8 + length
                else:
                    depth -= elem == 0xE0DD and depth > 0
                    pos += 8
                continue
            tag = (group << 16) | elem
            if explicit and bytes(buf[pos + 4:pos + 6]) in _LONG_VRS:
                if pos + 12 > n:
                    return None
                length, head = struct.unpack_from("<I", buf, pos + 8)[0], 12
            elif explicit:
                length, head = struct.unpack_from("<H", buf, pos + 6)[0], 8
            else:
                length, head = struct.unpack_from("<I", buf, pos + 4)[0], 8
            if depth == 0:
                if tag == 0x7FE00010:
                    return pos - start, _pixel_bytes(values)
                if tag in (0x00280002, 0x00280010, 0x00280011, 0x00280100) and length == 2 and pos + head + 2 <= n:
                    values[tag] = struct.unpack_from("<H", buf, pos + head)[0]
                elif tag == 0x00280008 and length < 16 and pos + head + length <= n:
                    try:
                        values[tag] = int(bytes(buf[pos + head:pos + head + length]).strip(b" \0") or 1)
                    except ValueError:
                        values[tag] = 1
            if length == 0xFFFFFFFF:
                depth += 1  # its items follow, up to a sequence delimiter
                pos += head
            else:
                pos += head + length
    except struct.error:
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
    meta_end = 144 + struct.unpack_from("<I", head, 140)[0]
    implicit = b"1.2.840.10008.1.2\0" in head[132:meta_end] or head[132:meta_end].endswith(b"1.2.840.10008.1.2")
    return meta_end, not implicit


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
                    seq = vr == "SQ" or (raw.length == 0xFFFFFFFF and tag != 0x7FE00010) \
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


def too_deep(buf, pos: int, end: int, explicit: bool = True, big: bool = False, depth: int = 1) -> bool:
    """True when the value of a sequence in buf[pos:end] (already `depth` levels deep) nests
    sequences deeper than MAX_DEPTH; walked with a stack, never by recursion. A value that cannot
    be walked is not judged here (False): the reader that parses it reports it."""
    u16, u32, tags = (">H", ">I", ">HH") if big else ("<H", "<I", "<HH")
    stack = [(True, end)]  # (is a sequence, where it ends or None for a delimiter)
    end = min(end, len(buf))
    try:
        while stack and pos + 8 <= end:
            group, elem = struct.unpack_from(tags, buf, pos)
            if group == 0xFFFE:
                length = struct.unpack_from(u32, buf, pos + 4)[0]
                pos += 8
                if elem == 0xE000:
                    stack.append((False, None if length == 0xFFFFFFFF else pos + length))
                elif elem in (0xE00D, 0xE0DD):
                    stack.pop()
                    depth -= elem == 0xE0DD
            else:
                vr = bytes(buf[pos + 4:pos + 6]) if explicit else None
                if explicit and vr in _LONG_VRS:
                    length, head = struct.unpack_from(u32, buf, pos + 8)[0], 12
                elif explicit:
                    length, head = struct.unpack_from(u16, buf, pos + 6)[0], 8
                else:
                    length, head = struct.unpack_from(u32, buf, pos + 4)[0], 8
                start = pos + head
                nested = vr == b"SQ" or length == 0xFFFFFFFF or \
                    (vr in (None, b"UN") and bytes(buf[start:start + 4]) in (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00"))
                if nested and (group, elem) != (0x7FE0, 0x0010):
                    depth += 1
                    if depth > MAX_DEPTH:
                        return True
                    stack.append((True, None if length == 0xFFFFFFFF else start + length))
                    pos = start
                else:
                    pos = start + length
            while stack and stack[-1][1] is not None and pos >= stack[-1][1]:
                depth -= stack.pop()[0]
    except (struct.error, IndexError):
        return False
    return False
