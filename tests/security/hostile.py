"""Hostile input generators shared by the adversarial tests: small files that claim a lot."""
from __future__ import annotations

import struct
import zlib

import numpy as np

EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _el(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian element."""
    if len(value) % 2:
        value += b" " if vr not in (b"UI", b"OB") else b"\0"
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _meta(ts: str) -> bytes:
    body = (_el(2, 1, b"OB", b"\0\1") + _el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
            + _el(2, 3, b"UI", b"1.2.3.4.5.6.7\0") + _el(2, 0x10, b"UI", ts.encode())
            + _el(2, 0x12, b"UI", b"1.2.3.4\0"))
    return b"\0" * 128 + b"DICM" + _el(2, 0, b"UL", struct.pack("<I", len(body))) + body


def dataset(rows=8, cols=8, extra=b"", pixels=True, text=None, charset=None, description=None) -> bytes:
    """A small explicit-VR LE secondary-capture data set (the bytes after the meta header)."""
    parts = []
    if charset is not None:
        parts.append(_el(8, 5, b"CS", charset.encode()))
    parts += [_el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"), _el(8, 0x18, b"UI", b"1.2.3.4.5.6.7\0"),
              _el(8, 0x60, b"CS", b"OT")]
    if description is not None:
        parts.append(_el(8, 0x103E, b"LO", description))
    parts.append(_el(0x10, 0x10, b"PN", text if text is not None else b"Test^Hostile"))
    parts.append(extra)
    parts += [_el(0x20, 0xD, b"UI", b"1.2.3.1\0"), _el(0x20, 0xE, b"UI", b"1.2.3.2\0"),
              _el(0x28, 2, b"US", struct.pack("<H", 1)), _el(0x28, 4, b"CS", b"MONOCHROME2"),
              _el(0x28, 0x10, b"US", struct.pack("<H", rows)), _el(0x28, 0x11, b"US", struct.pack("<H", cols)),
              _el(0x28, 0x100, b"US", struct.pack("<H", 16)), _el(0x28, 0x101, b"US", struct.pack("<H", 16)),
              _el(0x28, 0x102, b"US", struct.pack("<H", 15)), _el(0x28, 0x103, b"US", struct.pack("<H", 0))]
    if pixels:
        parts.append(_el(0x7FE0, 0x10, b"OW", np.arange(rows * cols, dtype="<u2").tobytes()))
    return b"".join(parts)


def dicom(body: bytes | None = None, ts: str = EXPLICIT, **kw) -> bytes:
    return _meta(ts) + (dataset(**kw) if body is None else body)


def nested_sequences(depth: int, defined: bool = False) -> bytes:
    """(0008,1140) sequences nested `depth` deep (undefined or defined lengths), as one element."""
    if defined:
        inner = _el(8, 0x100, b"SH", b"X")
        for _ in range(depth):
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = struct.pack("<HH2sHI", 8, 0x1140, b"SQ", 0, len(item)) + item
        return inner
    open_ = struct.pack("<HH2sHI", 8, 0x1140, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return open_ * depth + _el(8, 0x100, b"SH", b"X") + close * depth


def deflate_bomb(inflated: int, head: bytes = b"", tail: bytes = b"", wbits: int = -15) -> bytes:
    """A deflate stream of `head`, `inflated` zero bytes, then `tail`, built without ever holding
    the zeros (repeated full-flush blocks): a few MB hold gigabytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = 1 << 22
    start = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    zeros = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    reps, rest = divmod(inflated, block)
    end = comp.compress(bytes(rest) + tail) + comp.flush()
    # a full flush leaves no history: the zeros' block decodes the same wherever it is repeated
    stream = start + zeros * reps + end
    if wbits > 0:  # a zlib stream ends with the Adler-32 of everything: make it right
        adler = zlib.adler32(head)
        block_bytes = bytes(block)
        for _ in range(reps):
            adler = zlib.adler32(block_bytes, adler)
        adler = zlib.adler32(bytes(rest) + tail, adler)
        stream = stream[:-4] + struct.pack(">I", adler)
    return stream


def deflated_dicom_bomb(inflated: int) -> bytes:
    """A deflated DICOM whose data set declares an 8 x 8 image but inflates to `inflated` bytes
    (a private OB element holds the zeros)."""
    private = _el(9, 0x10, b"LO", b"BOMB") + struct.pack("<HH2sHI", 9, 0x1001, b"OB", 0, inflated)
    body = dataset()
    cut = body.index(b"\x10\x00\x10\x00")  # before PatientName: tags keep ascending
    return _meta(DEFLATED) + deflate_bomb(inflated, body[:cut] + private, body[cut:])


def gzip_bomb(inflated: int, head: bytes = b"", valid: bool = False) -> bytes:
    """A gzip file: `head` then `inflated` zero bytes (its CRC right only when `valid`: a reader
    that stops where it should never gets to check it)."""
    raw = deflate_bomb(inflated, head)
    size = (len(head) + inflated) & 0xFFFFFFFF
    crc = zlib.crc32(head)
    if valid:
        block = bytes(1 << 22)
        reps, rest = divmod(inflated, len(block))
        for _ in range(reps):
            crc = zlib.crc32(block, crc)
        crc = zlib.crc32(bytes(rest), crc)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + raw + struct.pack("<II", crc, size)
