"""What the header scrubbers of several backends share (see each backend's `scrub`).

Whatever lies outside the bytes a header describes (after the voxels, skipped before them, after a
compressed stream, in a gzip header's name or comment) is dropped: the kept bytes are exactly the
ones a reader uses. The names returned go to `anonymize --check` like any removed field.
"""
from __future__ import annotations

import os
import re
import struct

from ..errors import CorruptInput, InputError, UnsupportedFormat

#: unit strings kept in NRRD `units`/`space units`/`sample units` and MINC `units` (other text goes)
KNOWN_UNITS = {
    "", "mm", "cm", "m", "um", "µm", "nm", "micron", "microns", "s", "ms", "us", "sec", "msec", "min", "hz",
    "1/s", "deg", "degree", "degrees", "rad", "radian", "radians", "mm/s", "cm/s", "m/s", "t", "hu", "a.u.", "au",
    "%", "percent", "ml", "mm^2/s", "mm2/s", "1", "bq/ml", "counts", "ppm", "seconds", "millimeters",
}


NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def gzip_header(raw, pos: int, path: str) -> tuple:
    """(offset of the deflate data, fields found) of the gzip member header at `pos`."""
    if len(raw) < pos + 10 or raw[pos + 2] != 8:
        raise CorruptInput("malformed gzip header", path)
    flags, at, found = raw[pos + 3], pos + 10, []
    try:
        if flags & 4:  # FEXTRA
            (n,) = struct.unpack_from("<H", raw, at)
            if any(raw[at + 2:at + 2 + n]):
                found.append("gzip extra field")
            at += 2 + n
        for bit, name in ((8, "gzip file name"), (16, "gzip comment")):
            if flags & bit:
                end = raw.index(b"\x00", at)
                if end > at:
                    found.append(name)
                at = end + 1
        if flags & 2:  # FHCRC
            at += 2
    except (struct.error, ValueError):
        raise CorruptInput("malformed gzip header", path) from None
    if at > len(raw):
        raise CorruptInput("malformed gzip header", path)
    return at, found


#: inflated bytes past what a header declares that are dropped as stray data; more is a bomb
BOMB_SLACK = 1 << 20


def inflate_gzip(raw: bytes, path: str, limit: int | None = None, what: str = "data after the image",
                 refuse_bombs: bool = False) -> tuple:
    """(inflated bytes, what is not kept): every gzip member of `raw`, inflated up to `limit` bytes
    (memory stays within it). Reported: the gzip header's file name, comment or extra field (written
    back empty), bytes after the last member and inflated bytes beyond `limit` (named `what`). With
    `refuse_bombs`, a stream holding more than BOMB_SLACK bytes beyond `limit` is refused instead."""
    import zlib

    out, notes, pos, total = [], [], 0, 0
    view = memoryview(raw)
    while pos < len(raw):
        if raw[pos:pos + 2] != b"\x1f\x8b":
            if pos == 0:
                raise CorruptInput("not a gzip file", path)
            if any(view[pos:]):
                notes.append("data after the gzip stream")
            break
        start, found = gzip_header(raw, pos, path)
        notes += [f for f in found if f not in notes]
        dec = zlib.decompressobj(-15)
        room = None if limit is None else max(limit - total, 0)
        extra = BOMB_SLACK if refuse_bombs else 0
        try:
            piece = dec.decompress(view[start:]) if room is None else dec.decompress(view[start:], room + extra + 1)
        except zlib.error as exc:
            raise CorruptInput(f"compressed data is corrupt ({exc})", path) from None
        if room is not None and len(piece) > room + extra and refuse_bombs:
            raise CorruptInput(f"inflates to more than the {limit} bytes its header declares: refused as a "
                               "decompression bomb", path)
        if room is not None and len(piece) > room:
            out.append(piece[:room])
            notes.append(what)  # more than the header accounts for: not inflated further
            break
        out.append(piece)
        total += len(piece)
        if not dec.eof:
            raise CorruptInput("compressed data is truncated", path)
        pos = len(raw) - len(dec.unused_data) + 8  # after the member's CRC32 and size
    return b"".join(out), notes


def gzipped(data: bytes, path: str, limit_of, scrub_plain, what: str) -> tuple:
    """(new bytes, removed, companions) of a gzipped file: inflated (up to what its header,
    `limit_of(first inflated bytes)`, accounts for; a bomb refused), scrubbed by
    `scrub_plain(inflated bytes)`, compressed again; the gzip header's fields and the inflated
    bytes beyond the limit (named `what`) reported first."""
    import gzip

    head, _ = inflate_gzip(data, path, limit=544)  # the largest header (NIfTI-2) and its extension flag
    data, notes = inflate_gzip(data, path, limit=limit_of(head), what=what, refuse_bombs=True)
    new, changed, companions = scrub_plain(data)
    return gzip.compress(new, compresslevel=6, mtime=0), notes + changed, companions


def compressed_end(raw, start: int, size: int, encoding: str, path: str) -> tuple:
    """(end offset, decoded bytes, fields found in gzip headers) of the compressed streams (zlib, gzip
    members or bzip2) from `start` that decode to at least `size` bytes; output discarded as it comes."""
    import bz2
    import zlib

    view, pos, got, named = memoryview(raw), start, 0, []
    try:
        while got < size:
            if pos >= len(raw):
                raise CorruptInput(f"compressed data is truncated ({got} of {size} bytes)", path)
            if encoding != "bzip2" and raw[pos:pos + 2] == b"\x1f\x8b":
                named += [f for f in gzip_header(raw, pos, path)[1] if f not in named]
            dec = bz2.BZ2Decompressor() if encoding == "bzip2" else zlib.decompressobj(47)  # zlib or gzip
            got += len(dec.decompress(view[pos:], 1 << 22))
            while not dec.eof:
                if encoding == "bzip2":
                    if dec.needs_input:
                        raise CorruptInput("compressed data is truncated", path)
                    got += len(dec.decompress(b"", 1 << 22))
                else:
                    if not dec.unconsumed_tail:
                        raise CorruptInput("compressed data is truncated", path)
                    got += len(dec.decompress(dec.unconsumed_tail, 1 << 22))
            pos = len(raw) - len(dec.unused_data)
    except (zlib.error, OSError, ValueError, EOFError) as exc:
        raise CorruptInput(f"compressed data is corrupt ({exc})", path) from None
    return pos, got, named


def text_end(raw, start: int, count: int, path: str, hexdigits: bool = False) -> int:
    """Offset just after the `count`-th number (or, hex, the 2*count-th hex digit) from `start`,
    with its line end; anything but numbers and separators before it is refused."""
    if hexdigits:
        regex, sep, need = re.compile(rb"[0-9A-Fa-f]"), re.compile(rb"\s*"), 2 * count
    else:
        regex, sep, need = NUMBER, re.compile(rb"[\s,]*"), count
    pos, seen = start, 0
    while seen < need:
        pos = sep.match(raw, pos).end()
        m = regex.match(raw, pos)
        if not m:
            if pos >= len(raw):
                raise CorruptInput("the text data holds fewer values than the header says", path)
            raise CorruptInput("the text data holds something that is not a value", path)
        pos, seen = m.end(), seen + 1
    if raw[pos:pos + 2] == b"\r\n":
        return pos + 2
    return pos + 1 if raw[pos:pos + 1] == b"\n" else pos


def skip_lines(raw, start: int, lines: int, path: str) -> int:
    for _ in range(lines):
        end = raw.find(b"\n", start)
        if end < 0:
            raise CorruptInput("line skip goes past the end of the data", path)
        start = end + 1
    return start


def data_region(raw, start: int, layout: dict, path: str) -> tuple:
    """(kept bytes, names of what is dropped) of the data that follows an attached header from
    `start` (0 for a detached data file), as `layout` (metaimage_layout/nrrd_layout) describes it:
    skipped lines and bytes, and whatever follows the data, go; so do decoded bytes beyond the
    header's size (the stream is then compressed again)."""
    changed = []
    view = memoryview(raw)
    first = start
    start = skip_lines(raw, start, layout.get("line_skip", 0), path)
    skip, size, enc = layout.get("byte_skip", 0), layout["size"], layout["encoding"]
    if skip == -1:
        if enc != "raw":
            raise CorruptInput("a header size or byte skip of -1 needs raw data", path)
        begin = len(raw) - size
        if begin < start:
            raise CorruptInput(f"the data is {len(raw) - start} bytes, the header needs {size}", path)
    elif skip and enc != "raw" and layout.get("skip_decoded"):
        raise UnsupportedFormat("NRRD byte skip inside compressed or text data is not supported; convert the "
                                "file to NIfTI first", path)
    else:
        begin = start + skip
    if begin > first and any(view[first:begin]):
        changed.append("data skipped before the voxels")
    kept = None
    if enc == "raw":
        end = begin + size
        if end > len(raw):
            raise CorruptInput(f"the data is {len(raw) - begin} bytes, the header needs {size}", path)
    elif enc in ("zlib", "gzip", "bzip2"):
        end, got, named = compressed_end(raw, begin, size, enc, path)
        if got > size or named:  # more than the voxels, or a name in a gzip header: compressed again
            changed += named + (["data after the voxels"] if got > size else [])
            kept = recompress(bytes(view[begin:end]), size, enc, path)
    else:
        end = text_end(raw, begin, size, path, hexdigits=enc == "hex")
    if end < len(raw) and any(view[end:]):
        changed.append("data after the voxels")
    if kept is None:
        kept = raw if (begin, end) == (0, len(raw)) and isinstance(raw, bytes) else bytes(view[begin:end])
    return kept, changed


def recompress(blob: bytes, size: int, encoding: str, path: str) -> bytes:
    import bz2
    import gzip
    import zlib

    if encoding == "bzip2":
        dec = bz2.BZ2Decompressor()
        data = dec.decompress(blob, size)
        while len(data) < size and not dec.eof:
            data += dec.decompress(b"", size - len(data))
        return bz2.compress(data[:size])
    if blob[:2] == b"\x1f\x8b":
        return gzip.compress(inflate_gzip(blob, path, limit=size)[0], compresslevel=6, mtime=0)
    dec = zlib.decompressobj()
    return zlib.compress(dec.decompress(blob, size), 6)


def header_lines(text: bytes, sep: str) -> dict:
    """{lower-case key: value} of a text header's `key SEP value` lines (the first of a repeated key;
    comments and NRRD key:=value pairs passed over)."""
    out = {}
    for line in text.decode("latin-1").splitlines():
        if line.startswith("#") or sep not in line or (sep == ":" and ":=" in line):
            continue
        k, _, v = line.partition(sep)
        out.setdefault(k.strip().lower(), v.strip())
    return out


def read_file(path: str) -> bytes:
    """The bytes of a data file (a clean input error when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None


def data_file(layout: dict, path: str):
    """The detached data file a MetaImage/NRRD header names (beside it), or None when attached."""
    v = layout.get("file", "").strip()
    if v.upper() in ("LOCAL", ""):
        return None
    if v.upper().startswith("LIST") or "%" in v:
        raise UnsupportedFormat("a header with a list or pattern of data files is not supported; convert the "
                                "image first", path)
    from .. import untrusted

    src = untrusted.reference(path, v)  # the rule every reader applies: in the header's folder or below
    if not os.path.isfile(src):
        raise InputError(f"the data file {untrusted.shown(v)} is missing", path)
    return src


def detached_data(layout: dict, path: str) -> tuple:
    """([(data file, kept bytes)], what is dropped from it) of the detached data file a MetaImage/NRRD
    header names (`layout`), cut to what the header describes; ([], []) when the data is attached."""
    src = data_file(layout, path)
    if not src:
        return [], []
    kept, changed = data_region(read_file(src), 0, layout, src)
    return [(src, kept)], [f"{os.path.basename(src)}: {c}" for c in changed]


def point_to(header: bytes, keys: tuple, sep: bytes, name: str) -> bytes:
    """A detached text header whose data file line (its key among `keys`, lower case, before `sep`)
    names `name`."""
    lines = header.split(b"\n")
    for i, line in enumerate(lines):
        k, found, _ = line.partition(sep)
        if found and k.strip().lower() in keys:
            lines[i] = k + sep + b" " + name.encode("latin-1")
            break
    return b"\n".join(lines)
