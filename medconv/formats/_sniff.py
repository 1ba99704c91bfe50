"""Content sniffers: pure functions of the first bytes of a file, no backend imported (a DICOM file
without a preamble is told by the element walker's tables, medconv.dicom.elements).

Each takes `head` (the first HEAD_SIZE bytes, decompressed when the file is gzip)
and returns True when the bytes are that format's.
"""
from __future__ import annotations

import re
import struct

HEAD_SIZE = 1024
_META_KEY = re.compile(rb"^\s*(ObjectType|NDims|DimSize|ElementType|ElementSpacing|HeaderSize|BinaryData)\s*=", re.M)


def _int32(head: bytes, offset: int, endian: str) -> int | None:
    if len(head) < offset + 4:
        return None
    return struct.unpack_from(endian + "i", head, offset)[0]


def dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if head[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False  # decided without importing the DICOM package
    # a first element without a preamble: told by the element walker's tables
    from ..dicom.elements import looks_like_dicom

    return looks_like_dicom(head)


def nifti1(head: bytes) -> bool:
    return head[344:348] in (b"n+1\x00", b"ni1\x00") and 348 in (_int32(head, 0, "<"), _int32(head, 0, ">"))


def nifti2(head: bytes) -> bool:
    return head[4:8] in (b"n+2\x00", b"ni2\x00") and 540 in (_int32(head, 0, "<"), _int32(head, 0, ">"))


def analyze(head: bytes) -> bool:
    return 348 in (_int32(head, 0, "<"), _int32(head, 0, ">")) and not nifti1(head)


def metaimage(head: bytes) -> bool:
    return bool(_META_KEY.match(head[:200])) or (head[:1].isalpha() and bool(_META_KEY.search(head[:400])) and b"\x00" not in head[:64])


def nrrd(head: bytes) -> bool:
    return head.startswith(b"NRRD000")


def minc(head: bytes) -> bool:
    return head[:4] in (b"CDF\x01", b"CDF\x02") or head[:8] == b"\x89HDF\r\n\x1a\n"


def mgh(head: bytes) -> bool:
    if len(head) < 28:
        return False
    version, w, h, d, frames, dtype = struct.unpack_from(">6i", head, 0)
    return version == 1 and all(0 < n < 1 << 20 for n in (w, h, d, frames)) and dtype in (0, 1, 3, 4)


def png(head: bytes) -> bool:
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def jpeg(head: bytes) -> bool:
    return head.startswith(b"\xff\xd8\xff")


def tiff(head: bytes) -> bool:
    return head[:4] in (b"II*\x00", b"MM\x00*")


def bmp(head: bytes) -> bool:
    return head[:2] == b"BM" and len(head) >= 26
