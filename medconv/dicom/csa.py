"""Siemens CSA headers ((0029,xx10) image, (0029,xx20) series of the "SIEMENS CSA HEADER" block).

Both layouts: CSA2 (starts with "SV10") and the older CSA1. A header is a count of tags, each tag a
64-byte name, VM, 4-byte VR, syngo data type, item count and an unused word, then its items, each
four 32-bit words (the second is the length in CSA2) and the item's bytes padded to 4.
Items of numeric VRs become numbers (an empty item ends the values), the others text up to the first
NUL. `read` returns {"tags": {name: {"items": [...], "vr": ..., "vm": ...}}}.
"""
from __future__ import annotations

import struct

#: numeric VRs: how their items (text) become numbers
_NUMBERS = {"FL": float, "FD": float, "DS": float, "SS": int, "US": int, "SL": int, "UL": int, "IS": int}
#: at most this many tags, and items per tag (a larger count is not a CSA header)
MAX_ITEMS = 1000

_TAG = struct.Struct("<64si4s3i")
_ITEM = struct.Struct("<4i")


class CSAError(ValueError):
    """Not a CSA header this reader follows."""


def _text(raw: bytes):
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end].decode("latin-1")


def read(raw: bytes) -> dict:
    """The tags of one CSA header (see the module doc); CSAError when it is not one."""
    raw = bytes(raw)
    csa2 = raw[:4] == b"SV10"
    pos = 8 if csa2 else 0
    try:
        n_tags, _check = struct.unpack_from("<2I", raw, pos)
    except struct.error:
        raise CSAError("CSA header cut short") from None
    pos += 8
    if not 0 < n_tags <= MAX_ITEMS:
        raise CSAError(f"{n_tags} tags in a CSA header")
    tags = {}
    first_count = 0
    for number in range(n_tags):
        try:
            name, vm, vr, _dt, n_items, _ = _TAG.unpack_from(raw, pos)
        except struct.error:
            raise CSAError("CSA header cut short") from None
        pos += _TAG.size
        name, vr = _text(name), _text(vr)
        if number == 1:
            first_count = n_items  # CSA1 item lengths are offset by the second tag's item count
        if n_items > MAX_ITEMS:
            raise CSAError(f"{n_items} items in a CSA tag")
        n_values = vm if vm else n_items
        convert = _NUMBERS.get(vr)
        items = []
        for index in range(n_items):
            try:
                words = _ITEM.unpack_from(raw, pos)
            except struct.error:
                raise CSAError("CSA header cut short") from None
            pos += _ITEM.size
            if csa2:
                length = words[1]
                if pos + length > len(raw):
                    raise CSAError("CSA item runs past the header")
            else:
                length = words[0] - first_count
                if length < 0 or pos + length > len(raw):
                    if index < vm:
                        items.append("")
                    break
            if index >= n_values:
                if length != 0:
                    raise CSAError("CSA item past the tag's values is not empty")
                continue
            value = _text(raw[pos:pos + length])
            pos += length
            if convert is not None:
                if length == 0:
                    n_values = index
                    continue
                try:
                    value = convert(value)
                except ValueError:
                    raise CSAError(f"CSA item {value!r} of {name} is not a number") from None
            items.append(value)
            pos += (4 - length % 4) % 4
        tags[name] = {"items": items, "vr": vr, "vm": vm, "n_items": n_items}
    return {"tags": tags, "type": 2 if csa2 else 1, "n_tags": n_tags}


def parse(raw):
    """read(raw) of an element's value, or None when it holds no CSA header this reader follows."""
    if not raw or not isinstance(raw, (bytes, bytearray)):
        return None
    try:
        return read(raw)
    except CSAError:
        return None


def scalar(csa, name):
    """The first item of tag `name`, or None."""
    try:
        items = csa["tags"][name]["items"]
    except (KeyError, TypeError):
        return None
    return items[0] if items else None


def vector(csa, name, n):
    """The n items of tag `name` as floats, or None (absent, or not n of them)."""
    try:
        items = csa["tags"][name]["items"]
    except (KeyError, TypeError):
        return None
    if len(items) != n:
        return None
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None
