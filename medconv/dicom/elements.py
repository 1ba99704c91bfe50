"""The DICOM element walker and the DICOM tables (transfer syntaxes, pixel tags, VRs); no pydicom import.

`walk` yields the elements of a data set: tag, VR, offsets and length, the items of a sequence
parsed into lists of elements, encapsulated pixel data followed to its delimiter. `file_meta`
reads group 0002 after the preamble; `looks_like_dicom` tells DICOM from the first bytes.

What the walk cannot follow (an unknown VR, a length running past its item, an undefined length
where none belongs, sequences nested deeper than MAX_DEPTH) raises `Unsupported`: the caller then
reads the file with pydicom, the reference reader, which reports every case. Bytes that end inside
an element raise `Truncated` (an `Unsupported`), which says where.
"""
from __future__ import annotations

import struct

# -- tables ----------------------------------------------------------------------------------------
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
#: native (uncompressed) transfer syntaxes -> (explicit VR, big endian)
NATIVE = {IMPLICIT_LE: (False, False), EXPLICIT_LE: (True, False), EXPLICIT_BE: (True, True)}
#: transfer syntaxes by a short name
TRANSFER_SYNTAXES = {
    IMPLICIT_LE: "Implicit VR LE",
    EXPLICIT_LE: "Explicit VR LE",
    DEFLATED: "Deflated Explicit VR LE",
    EXPLICIT_BE: "Explicit VR BE",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
    "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}
#: transfer syntaxes whose pixel data is encapsulated (compressed fragments)
ENCAPSULATED = frozenset(TRANSFER_SYNTAXES) - set(NATIVE) - {DEFLATED}
#: transfer syntaxes whose data set is explicit VR little endian (native and encapsulated)
EXPLICIT_LE_SYNTAXES = ENCAPSULATED | {EXPLICIT_LE}

#: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data
PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009
PIXEL_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_PIXEL_DATA)
#: bytes per value of the float pixel data elements
FLOAT_PIXEL_BYTES = {FLOAT_PIXEL_DATA: 4, DOUBLE_PIXEL_DATA: 8}
#: every value representation of PS3.5
VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
                b"UR US UT UV".split())
#: VRs whose explicit header has two reserved bytes and a 4-byte length (12 bytes in all)
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
SHORT_VRS = VRS - LONG_VRS
#: binary VRs that may hold pixel data
PIXEL_VRS = frozenset(b"OB OD OF OL OV OW UN".split())
_VR_NAMES = {vr: vr.decode("ascii") for vr in VRS}
_SHORT_NAMES = {vr: vr.decode("ascii") for vr in SHORT_VRS}

ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: deepest sequence nesting accepted (the standard's deepest real structures use about a dozen)
MAX_DEPTH = 64
_NOTHING = frozenset()

_HEAD_LE, _HEAD_BE = struct.Struct("<HH2sH"), struct.Struct(">HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_ITEM_LE, _ITEM_BE = struct.Struct("<HHI"), struct.Struct(">HHI")
_U32_LE, _U32_BE = struct.Struct("<I"), struct.Struct(">I")
_U16_LE = struct.Struct("<H")


class Unsupported(Exception):
    """Bytes the walk does not follow: the documented fall-back, pydicom reads the file."""


class Truncated(Unsupported):
    """The bytes end inside an element: `at` is where that element (item, fragment) starts, `offset`
    where the bytes end; the message says which element and how much of it is missing."""

    def __init__(self, message: str, at: int, offset: int):
        super().__init__(message)
        self.at, self.offset = at, offset


class Element:
    """One element: `vr` a str (None in implicit VR), `length` the value length (UNDEFINED for
    encapsulated pixel data or a sequence of undefined length), `end` the position after it (None
    for an element the walk stopped at), `items` a list of items (each a list of Element) for a sequence."""

    __slots__ = ("buf", "end", "items", "length", "offset", "tag", "value_offset", "vr")

    def __init__(self, buf, tag, vr, offset, value_offset, length, end, items=None):
        self.buf, self.tag, self.vr, self.offset = buf, tag, vr, offset
        self.value_offset, self.length, self.end, self.items = value_offset, length, end, items

    def value(self) -> bytes:
        """The value bytes (of an element of defined length)."""
        return bytes(self.buf[self.value_offset:self.value_offset + self.length])

    def raw(self):
        """The whole element, header included, as a slice of the buffer."""
        return self.buf[self.offset:self.end]

    def text(self) -> str:
        """The value as Latin-1 text, trailing NULs and spaces removed."""
        return self.value().decode("latin-1").rstrip("\x00 ")

    def __repr__(self):
        return f"Element({tag_text(self.tag)} {self.vr} at {self.offset}, {self.length})"


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _past(buf, open_end: bool, at: int, message: str):
    """The exception for something at `at` that needs bytes beyond its limit: Truncated when that
    limit is the end of the bytes (`open_end`), Unsupported when it is the declared end of an item
    or sequence (which fits in the bytes: the lengths disagree)."""
    if open_end:
        return Truncated(message, at, len(buf))
    return Unsupported(message.replace("file ends inside", "runs past the end of its item:", 1))


# -- the walk --------------------------------------------------------------------------------------
def walk(buf, pos: int = 0, end=None, *, explicit: bool = True, big: bool = False, depth: int = 0,
         sequences=_NOTHING, stop=_NOTHING, keep=None):
    """The elements of the data set in buf[pos:end] (end None: to the end of `buf`), in order.

    `depth`: the sequences around this data set; `sequences`: tags read as sequences in implicit VR
    (where no VR says so; an undefined length always does); `stop`: tags at which the walk ends, the
    element yielded with its header read and its value unchecked (the pixel data of a header scan).
    `keep` (None: every element): the tags of the elements wanted; every element of this data set
    is still yielded, but a sequence whose tag is not kept comes with `items` None (its items
    stepped over, not read), and the items of a kept one hold only kept elements (the others stepped
    over by their lengths, no Element built)."""
    open_end = end is None or end >= len(buf)
    limit = len(buf) if open_end else end
    head, short_vrs = (_HEAD_BE if big else _HEAD_LE).unpack_from, _SHORT_NAMES
    while pos < limit:
        if explicit and pos + 8 <= limit:
            # a short-VR element (no sequence, no undefined length: most of a header), read here
            group, elem, vr, length = head(buf, pos)
            name = short_vrs.get(vr)
            stop_at = pos + 8 + length
            if name is not None and group != 0xFFFE and stop_at <= limit:
                tag = group << 16 | elem
                if tag not in stop:
                    yield Element(buf, tag, name, pos, pos + 8, length, stop_at)
                    pos = stop_at
                    continue
        el = _element(buf, pos, limit, open_end, explicit, big, depth, sequences, stop, keep)
        yield el
        if el.end is None:
            return
        pos = el.end


def element_at(buf, pos: int, end=None, *, explicit: bool = True, big: bool = False, depth: int = 0,
               sequences=_NOTHING) -> Element:
    """The element starting at `pos` (sequences and encapsulated pixel data followed to their end)."""
    open_end = end is None or end >= len(buf)
    return _element(buf, pos, len(buf) if open_end else end, open_end, explicit, big, depth, sequences, _NOTHING)


def _element(buf, pos, limit, open_end, explicit, big, depth, sequences, stop, keep=None):
    """The element at `pos`, within `limit` (the end of the bytes when `open_end`); `keep`: see walk."""
    if pos + 8 > limit:
        raise _past(buf, open_end, pos, f"file ends inside an element header at byte {pos}")
    if explicit:
        group, elem, vr, length = (_HEAD_BE if big else _HEAD_LE).unpack_from(buf, pos)
        name = _VR_NAMES.get(vr)
        if group == 0xFFFE or name is None:
            raise Unsupported(f"{'item or delimiter' if group == 0xFFFE else 'unknown VR'} at byte {pos}")
        if vr in LONG_VRS:
            if pos + 12 > limit:
                raise _past(buf, open_end, pos, f"file ends inside the header of element {tag_text(group << 16 | elem)}")
            length = (_U32_BE if big else _U32_LE).unpack_from(buf, pos + 8)[0]
            start = pos + 12
        else:
            start = pos + 8
    else:
        group, elem, length = _IMPLICIT.unpack_from(buf, pos)
        if group == 0xFFFE:
            raise Unsupported(f"item or delimiter at byte {pos}")
        name, start = None, pos + 8
    tag = group << 16 | elem
    if tag in stop:
        return Element(buf, tag, name, pos, start, length, None)
    if name == "SQ" or (name is None and tag in sequences) \
            or (length == UNDEFINED and name in (None, "UN") and tag not in PIXEL_TAGS):
        if depth >= MAX_DEPTH:
            raise Unsupported(f"sequences nested more than {MAX_DEPTH} levels deep")
        if length != UNDEFINED and start + length > limit:
            raise _past(buf, open_end, pos, f"file ends inside element {tag_text(tag)}: {length} bytes declared, "
                                         f"{len(buf) - start} present")
        inner = name != "UN"  # an undefined-length UN holds implicit VR little endian items
        if keep is not None and tag not in keep:
            if length != UNDEFINED:  # stepped over by its length
                return Element(buf, tag, name, pos, start, length, start + length)
            _, stop_at = _items(buf, start, limit, open_end, True, explicit and inner, big and inner, depth + 1,
                                sequences, tag, _NOTHING)
            return Element(buf, tag, name, pos, start, length, stop_at)
        if length == UNDEFINED:
            items, stop_at = _items(buf, start, limit, open_end, True, explicit and inner, big and inner, depth + 1,
                                    sequences, tag, keep)
        else:
            items, stop_at = _items(buf, start, start + length, False, False, explicit and inner, big and inner,
                                    depth + 1, sequences, tag, keep)
        return Element(buf, tag, name, pos, start, length, stop_at, items)
    if length == UNDEFINED:
        if tag not in PIXEL_TAGS:
            raise Unsupported(f"undefined length of element {tag_text(tag)}")
        return Element(buf, tag, name, pos, start, length, _fragments_end(buf, start, limit, open_end, big))
    if start + length > limit:
        raise _past(buf, open_end, pos, f"file ends inside element {tag_text(tag)}: {length} bytes declared, "
                                     f"{len(buf) - start} present")
    return Element(buf, tag, name, pos, start, length, start + length)


def _items(buf, pos, end, open_end, undefined, explicit, big, depth, sequences, tag, keep=None):
    """([[Element]] of each item, the position after the sequence) of a sequence value from `pos`;
    `undefined`: it ends with its delimiter (before `end`), else at `end`; `open_end`: `end` is the
    end of the bytes; `keep`: see walk (an element not kept is stepped over, and left out of its item)."""
    header = _ITEM_BE if big else _ITEM_LE
    items = []
    while pos < end or undefined:
        if pos + 8 > end:
            if undefined:
                raise _past(buf, open_end, pos, f"file ends inside the sequence {tag_text(tag)} (no closing delimiter)")
            raise Unsupported(f"sequence {tag_text(tag)} ends inside an item header")
        group, elem, length = header.unpack_from(buf, pos)
        item = group << 16 | elem
        pos += 8
        if item == SEQ_END and undefined:
            return items, pos
        if item != ITEM:
            raise Unsupported(f"bad item in sequence {tag_text(tag)} at byte {pos - 8}")
        if length == UNDEFINED:
            elements, pos = _item(buf, pos, end, open_end, True, explicit, big, depth, sequences, tag, keep)
        else:
            if pos + length > end:
                raise _past(buf, open_end, pos - 8, f"file ends inside an item of sequence {tag_text(tag)}: "
                                                    f"{length} bytes declared, {len(buf) - pos} present")
            elements, pos = _item(buf, pos, pos + length, False, False, explicit, big, depth, sequences, tag, keep)
        items.append(elements)
    return items, pos


def _item(buf, pos, end, open_end, undefined, explicit, big, depth, sequences, tag, keep):
    """([Element] of one item's data set from `pos`, the position after the item): to its delimiter
    (`undefined`, before `end`) or to `end`. Short-VR elements of explicit VR are read here (most of
    an item); with `keep`, those not kept are stepped over by their lengths."""
    head, short_vrs = (_HEAD_BE if big else _HEAD_LE).unpack_from, _SHORT_NAMES
    item_header = (_ITEM_BE if big else _ITEM_LE).unpack_from
    elements = []
    while True:
        if undefined:
            if pos + 8 > end:
                raise _past(buf, open_end, pos, f"file ends inside an item of sequence {tag_text(tag)}")
        elif pos >= end:
            return elements, pos
        if explicit and pos + 8 <= end:
            group, elem, vr, length = head(buf, pos)
            name = short_vrs.get(vr)
            stop_at = pos + 8 + length
            if name is not None and group != 0xFFFE and stop_at <= end:
                if keep is None or (group << 16 | elem) in keep:
                    elements.append(Element(buf, group << 16 | elem, name, pos, pos + 8, length, stop_at))
                pos = stop_at
                continue
        if undefined:
            group, elem = item_header(buf, pos)[:2]
            if group == 0xFFFE and elem == 0xE00D:
                return elements, pos + 8
        el = _element(buf, pos, end, open_end, explicit, big, depth, sequences, _NOTHING, keep)
        if keep is None or el.tag in keep:
            elements.append(el)
        pos = el.end


def encapsulated_end(buf, pos: int, end=None, big: bool = False) -> int:
    """The position after encapsulated pixel data whose fragments start at `pos` (after its sequence delimiter)."""
    open_end = end is None or end >= len(buf)
    return _fragments_end(buf, pos, len(buf) if open_end else end, open_end, big)


def _fragments_end(buf, pos, end, open_end, big):
    header = _ITEM_BE if big else _ITEM_LE
    while pos + 8 <= end:
        group, elem, length = header.unpack_from(buf, pos)
        item = group << 16 | elem
        if item == SEQ_END:
            return pos + 8
        if item != ITEM or length == UNDEFINED:
            raise Unsupported(f"bad pixel data fragment at byte {pos}")
        if pos + 8 + length > end:
            raise _past(buf, open_end, pos, f"file ends inside a pixel data fragment: {length} bytes declared, "
                                       f"{len(buf) - pos - 8} present")
        pos += 8 + length
    raise _past(buf, open_end, pos, "file ends inside the encapsulated pixel data (no closing delimiter)")


# -- file meta and sniffing ------------------------------------------------------------------------
def file_meta(buf) -> tuple:
    """([Element] of group 0002, where the data set starts): after the preamble and `DICM` when
    present, explicit VR little endian whatever the transfer syntax."""
    pos = 132 if len(buf) >= 132 and buf[128:132] == b"DICM" else 0
    size = len(buf)
    meta = []
    while pos + 8 <= size and _U16_LE.unpack_from(buf, pos)[0] == 0x0002:
        el = _element(buf, pos, size, True, True, False, 0, _NOTHING, _NOTHING)
        meta.append(el)
        pos = el.end
    return meta, pos


def transfer_syntax(meta) -> str | None:
    """The Transfer Syntax UID among file meta elements, None without one."""
    for el in meta:
        if el.tag == 0x00020010 and el.items is None:
            return el.text()
    return None


def looks_like_dicom(head: bytes) -> bool:
    """The DICM preamble, or without one a first element of group 0002 or 0008 with a VR (explicit)
    or a sane length (implicit)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) >= 8 and head[0:2] in (b"\x02\x00", b"\x08\x00"):
        if head[4:6] in VRS:
            return True
        return _U32_LE.unpack_from(head, 4)[0] < 1024
    return False
