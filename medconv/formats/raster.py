"""2D raster images through Pillow: PNG, JPEG, TIFF, BMP.

Reading: data[i, j] is the pixel at column i, row j (colour channels last).
The affine is the LPS identity ITK gives a 2D image, i.e. diag(-1, -1, 1, 1) in
RAS; the DPI a file may carry is NOT used as pixel spacing (it describes print
size, not anatomy), so spacing is always 1 mm and orientation unknown.
Palette images become RGB (grey when the palette is grey); 16-bit PNG/TIFF keep
uint16; TIFF mode F keeps float32; JPEG is always 8-bit.

Writing is strict: uint8 grey/RGB everywhere, RGBA for PNG/TIFF, uint16 grey
for PNG/TIFF, float32 grey for TIFF; anything else is refused (convert.py
windows and slices before it gets here). A 3rd axis of length 1 is squeezed.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .. import fileio, geometry, log
from ..errors import CorruptInput, OutputError, UnsupportedFormat
from ..volume import Volume

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP"}
DEFAULT_AFFINE = geometry.lps_to_ras(np.eye(4))
_warned_dirs = set()  # the geometry-loss warning is given once per output directory (slice series)


def _open(path: str):
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        from ..errors import InputError

        raise InputError("no such file", path)
    try:
        img = Image.open(path)
        _check_raw_tiles(img, path)
        img.load()
    except UnidentifiedImageError:
        raise CorruptInput("not a readable image (Pillow does not recognise its content)", path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptInput(f"image data is truncated or corrupt ({exc})", path) from None
    except Image.DecompressionBombError as exc:
        raise CorruptInput(f"image is implausibly large ({exc})", path) from None
    return img


def _check_raw_tiles(img, path: str) -> None:
    """Refuse uncompressed pixels (BMP, TIFF, ...) the file cannot hold, before Pillow allocates the
    image its header declares: every pixel takes at least one bit."""
    size = os.path.getsize(path)
    for tile in getattr(img, "tile", None) or ():
        try:
            codec, (x0, y0, x1, y1), offset = tile[0], tile[1], int(tile[2])
        except (TypeError, ValueError, IndexError):
            continue
        if codec == "raw" and offset + (abs(x1 - x0) * abs(y1 - y0)) // 8 > size:
            raise CorruptInput(f"truncated: the header declares {abs(x1 - x0)} x {abs(y1 - y0)} uncompressed pixels "
                               f"from byte {offset}, more than this {size}-byte file holds", path)


def _to_array(img, path: str) -> tuple:
    """(array rows x cols [x channels], value kind)."""
    mode = img.mode
    if mode == "P" or mode == "PA":
        pal = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
        arr = np.asarray(pal)
        if arr.shape[-1] == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            return np.ascontiguousarray(arr[..., 0]), "scalar"
        return arr, "rgba" if arr.shape[-1] == 4 else "rgb"
    if mode == "1":
        return np.asarray(img.convert("L")), "scalar"
    if mode == "L":
        return np.asarray(img), "scalar"
    if mode == "LA":
        return np.asarray(img.convert("RGBA")), "rgba"
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img).astype(np.uint16), "scalar"
    if mode == "I":
        arr = np.asarray(img)
        # 16-bit PNGs open as mode I: keep them 16-bit when the values fit
        if arr.size and arr.min() >= 0 and arr.max() <= 65535 and img.format == "PNG":
            return arr.astype(np.uint16), "scalar"
        return arr.astype(np.int32), "scalar"
    if mode == "F":
        return np.asarray(img).astype(np.float32), "scalar"
    if mode == "RGB":
        return np.asarray(img), "rgb"
    if mode == "RGBA":
        return np.asarray(img), "rgba"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(img.convert("RGB")), "rgb"
    raise UnsupportedFormat(f"image mode {mode} is not supported", path)


def read(path: str, fmt: str | None = None, header_only: bool = False, **options) -> Volume:
    img = _open(path)
    if getattr(img, "n_frames", 1) > 1:
        log.warn(f"{img.n_frames} frames/pages: only the first is read", path)
    arr, kind = _to_array(img, path)
    data = np.ascontiguousarray(arr.T if arr.ndim == 2 else arr.transpose(1, 0, 2))
    return Volume(data=data, affine=DEFAULT_AFFINE.copy(), value_kind=kind, format=fmt or img.format.lower(),
                  path=path, orientation_known=False, header={"mode": img.mode, "size": img.size},
                  metadata={"photometric": "MONOCHROME2"} if kind == "scalar" else {})


_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_LONG_LIST = 16  # longer tag value lists (TIFF strip offsets) are shown by their length


def _tag_value(value):
    """An EXIF/TIFF tag value as plain JSON-able data: text as text, numbers as numbers, bytes abbreviated."""
    if isinstance(value, str):
        return value.rstrip("\x00")
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).rstrip(b"\x00")
        if text and len(text) <= 64 and all(32 <= b < 127 for b in text):
            return text.decode("ascii")  # e.g. ExifVersion b"0230"
        return f"<{len(value)} bytes>"
    if isinstance(value, (tuple, list)):
        if len(value) > _LONG_LIST:
            return f"<{len(value)} values>"
        return [_tag_value(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        number = float(value)  # IFDRational and other numbers
    except (TypeError, ValueError, ZeroDivisionError):
        return str(value)
    return number if number == number else None  # a 0/0 rational is no value


def _exif(img) -> dict:
    """EXIF (JPEG, PNG eXIf, WebP) or TIFF tags by name, with the Exif and GPS sub-IFDs unfolded."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data" warnings: shown is what it could read
        return _exif_tags(img)


def _exif_tags(img) -> dict:
    from PIL import ExifTags

    try:
        exif = img.getexif()
    except Exception:  # Pillow raises assorted errors on malformed EXIF; the header view stays usable
        return {}
    out = {}
    for tag, value in exif.items():
        if tag in (_EXIF_IFD, _GPS_IFD):
            continue
        out[ExifTags.TAGS.get(tag, str(tag))] = _tag_value(value)
    for ifd, names, group in ((_EXIF_IFD, ExifTags.TAGS, None), (_GPS_IFD, ExifTags.GPSTAGS, "GPSInfo")):
        if ifd not in exif:
            continue
        try:
            sub = exif.get_ifd(ifd)
        except Exception:  # a broken sub-IFD leaves the rest
            continue
        values = {names.get(t, str(t)): _tag_value(v) for t, v in sub.items()}
        if group is None:
            out.update(values)
        elif values:
            out[group] = values
    return dict(sorted(out.items()))


def read_header(path: str, fmt: str | None = None) -> dict:
    """Size, mode, bit depth, DPI, text chunks, EXIF/TIFF tags with their values, ICC profile presence."""
    from ..errors import guard

    img = _open(path)
    with guard(path, f"{(img.format or 'image').lower()} file"):  # Pillow parses frames and tags lazily
        return _header_of(img)


def _header_of(img) -> dict:
    bits = {"1": 1, "L": 8, "P": 8, "LA": 8, "RGB": 8, "RGBA": 8, "CMYK": 8, "YCbCr": 8,
            "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(img.mode)
    out = {"format": img.format, "width": img.size[0], "height": img.size[1], "mode": img.mode,
           "bits_per_sample": bits, "frames": int(getattr(img, "n_frames", 1))}
    dpi = img.info.get("dpi")
    out["dpi"] = [float(v) for v in dpi] if dpi else None
    text = getattr(img, "text", None) or {}
    out["text"] = {str(k): str(v) for k, v in text.items()}
    # tag name -> value (`medconv header photo.jpg --get Make`); TIFF's own tags (ImageDescription) too
    out["exif"] = _exif(img)
    out["exif_tags"] = list(out["exif"])  # the names alone, as before the values were shown
    out["icc_profile"] = bool(img.info.get("icc_profile"))
    if img.format == "TIFF":
        out["compression"] = img.info.get("compression")
    return out


def _is_default_affine(affine) -> bool:
    return np.allclose(affine, DEFAULT_AFFINE, atol=1e-6)


def write(volume: Volume, path: str, fmt: str = "png", *, force: bool = False, protect=(), **options) -> list:
    from PIL import Image

    name = fmt.upper() if fmt != "jpeg" else "JPEG"
    grid = volume.grid_shape
    if len(grid) > 2 and any(n != 1 for n in grid[2:]):
        raise OutputError(f"{name} holds one 2D image; this volume is {' x '.join(map(str, grid))} "
                          "(choose a slice with --slice)", path)
    if volume.value_kind in ("complex", ):
        raise OutputError(f"{name} cannot hold complex values", path)
    arr = volume.real() if volume.scaling is not None else volume.array
    colour = volume.value_kind in ("rgb", "rgba")
    arr = arr.reshape(grid[:2] + ((volume.channels,) if colour else ()))
    dt = arr.dtype
    if colour:
        if dt != np.uint8:
            raise OutputError(f"{name} colour images hold uint8 channels, not {dt}", path)
        if volume.value_kind == "rgba" and fmt in ("jpeg", "bmp"):
            raise OutputError(f"{name} holds grey or RGB, not RGBA", path)
        mode = "RGBA" if volume.value_kind == "rgba" else "RGB"
        pixels = np.ascontiguousarray(arr.transpose(1, 0, 2))
    else:
        allowed = {"png": ("uint8", "uint16"), "jpeg": ("uint8",), "bmp": ("uint8",),
                   "tiff": ("uint8", "uint16", "float32")}[fmt]
        if dt.name not in allowed:
            raise OutputError(f"{name} holds {' / '.join(allowed)} grey values, not {dt} "
                              "(use --dtype or --window)", path)
        pixels = np.ascontiguousarray(arr.T)
        mode = {"uint8": "L", "uint16": "I;16", "float32": "F"}[dt.name]
    where = os.path.dirname(os.path.abspath(path))
    if not _is_default_affine(volume.affine) and where not in _warned_dirs:
        _warned_dirs.add(where)
        log.warn(f"{name} stores no geometry: spacing and orientation are not kept", path)
    if mode == "I;16":
        img = Image.frombuffer("I;16", (pixels.shape[1], pixels.shape[0]), pixels.astype("<u2").tobytes(),
                               "raw", "I;16", 0, 1)
    else:
        img = Image.fromarray(pixels)  # uint8 2D/3-/4-channel and float32 map to L, RGB, RGBA, F
    save = {}
    if fmt == "jpeg":
        save["quality"] = int(options.get("quality") or 95)
    if fmt == "tiff":
        save["compression"] = "tiff_deflate"
    with fileio.atomic_outputs([path], force=force, protect=protect) as temps:
        try:
            img.save(temps[0], format=_PIL_FORMAT[fmt], **save)
        except (OSError, ValueError, KeyError) as exc:
            raise OutputError(f"cannot write {name}: {exc}", path) from None
    return [os.path.abspath(path)]


# -- scrubbing (anonymize) ------------------------------------------------------------------
# PNG (text, eXIf, tIME and unknown ancillary chunks), JPEG (APP1-APP15 except Adobe APP14, cut to
# its 12 bytes, and the ICC profile; APP0 rewritten as bare JFIF; COM, data after EOI; an EXIF
# orientation other than 1 is kept in a minimal EXIF block) and TIFF (every tag not needed to
# decode or for geometry, EXIF/GPS IFDs, any other ASCII tag, unreferenced bytes) are edited at the
# byte level, never re-encoded; the pixels are decoded before and after and must be identical. BMP
# is rebuilt from exactly its headers, masks, palette and pixel rows.

def scrub(data: bytes, path: str, fmt: str, *, verify: bool = True) -> tuple:
    """(new bytes, names of what is removed, []) of a PNG, JPEG, TIFF or BMP file (see scrub_raster)."""
    return (*scrub_raster(fmt, data, path, verify=verify), [])


#: ancillary PNG chunks kept (colour and transparency, physical size, APNG frames)
_PNG_KEEP = {b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"hIST", b"tRNS", b"pHYs", b"cICP", b"mDCv",
             b"cLLi", b"acTL", b"fcTL", b"fdAT"}


def scrub_png(data: bytes, path: str) -> tuple:
    """Drop text (tEXt, zTXt, iTXt), eXIf, tIME and every unknown ancillary chunk; critical chunks
    (and so the pixels) are copied as they are."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CorruptInput("not a PNG file", path)
    out, changed, pos = [data[:8]], [], 8
    while True:
        if pos + 12 > len(data):
            raise CorruptInput("PNG file is truncated (no IEND chunk)", path)
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + n
        if end > len(data):
            raise CorruptInput("PNG file is truncated", path)
        if kind in (b"IHDR", b"PLTE", b"IDAT") or kind in _PNG_KEEP:
            out.append(data[pos:end])
        elif kind == b"IEND":
            if n:
                changed.append("data in IEND")
            out.append(b"\x00\x00\x00\x00IEND\xaeB`\x82")
        else:  # text, time, unknown ancillary chunks, and critical ones no decoder knows
            changed.append(kind.decode("latin-1"))
        pos = end
        if kind == b"IEND":
            break
    if any(data[pos:]):
        changed.append("data after IEND")
    return _png_stream_only(out, changed, path), changed


def _png_stream_only(chunks: list, changed: list, path: str) -> bytes:
    """The chunks with the image data (IDAT) cut to its zlib stream: bytes after the stream's end
    are read by no decoder. Written as one IDAT chunk when anything is cut."""
    import zlib

    idat = [i for i, c in enumerate(chunks) if c[4:8] == b"IDAT"]
    if not idat:
        return b"".join(chunks)
    stream = b"".join(chunks[i][8:-4] for i in idat)
    dec = zlib.decompressobj()
    try:  # the output is discarded as it comes: only where the stream ends matters
        dec.decompress(stream, 1 << 24)
        while dec.unconsumed_tail and not dec.eof:
            dec.decompress(dec.unconsumed_tail, 1 << 24)
    except zlib.error:
        return b"".join(chunks)  # not for this function to judge: the pixel comparison does
    if not dec.eof or not dec.unused_data:
        return b"".join(chunks)
    end = len(stream) - len(dec.unused_data)
    if any(stream[end:]):
        changed.append("data after the image stream")
    body = stream[:end]
    one = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return b"".join(chunks[:idat[0]]) + one + b"".join(c for i, c in enumerate(chunks) if i > idat[0] and i not in idat)


def _exif_orientation(seg: bytes):
    """The Orientation (0x0112) of an APP1 EXIF segment's first IFD, or None."""
    tiff = seg[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    bo = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(bo + "I", tiff, 4)[0]
        (n,) = struct.unpack_from(bo + "H", tiff, ifd)
        for i in range(n):
            tag, typ, count = struct.unpack_from(bo + "HHI", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112 and typ == 3 and count == 1:
                value = struct.unpack_from(bo + "H", tiff, ifd + 10 + 12 * i)[0]
                return value if 1 <= value <= 8 else None
    except struct.error:
        return None
    return None


def _exif_minimal(orientation: int) -> bytes:
    """An APP1 EXIF body holding only an Orientation tag."""
    return b"Exif\x00\x00MM\x00\x2a" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, orientation, 0, 0)


def scrub_jpeg(data: bytes, path: str) -> tuple:
    """Drop APP1-APP15 (EXIF, XMP, IPTC/Photoshop, ...) except Adobe APP14 (cut to its 12-byte payload)
    and an ICC profile in APP2, COM segments and anything after EOI. APP0 is rewritten as a minimal
    JFIF segment (no thumbnail; JFXX and other APP0 dropped). Tables, frames and scans are copied unchanged."""
    if data[:3] != b"\xff\xd8\xff":
        raise CorruptInput("not a JPEG file", path)
    out, changed, pos, orientation = [b"\xff\xd8"], [], 2, None
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise CorruptInput("JPEG file is truncated or malformed (no EOI marker)", path)
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1  # fill bytes
        if pos >= len(data):
            raise CorruptInput("JPEG file is truncated", path)
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > len(data):
            raise CorruptInput("JPEG file is truncated", path)
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise CorruptInput("JPEG segment is truncated", path)
        body = data[pos + 2:pos + length]
        segment = bytes((0xFF, marker)) + data[pos:pos + length]
        pos += length
        if marker in (0xE0, 0xEE):
            _jpeg_app0_app14(marker, body, out, changed)
            continue
        app = 0xE1 <= marker <= 0xEF and not (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00"))
        if app or marker == 0xFE:
            if marker == 0xE1 and body.startswith(b"Exif\x00"):
                value = _exif_orientation(body)
                if value is not None and body == _exif_minimal(value):
                    out.append(segment)  # written by this function: nothing but the orientation
                    orientation = 0
                    continue
                changed.append("EXIF")
                orientation = value if orientation is None else orientation
            elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap"):
                changed.append("XMP")
            elif marker == 0xED:
                changed.append("IPTC/Photoshop")
            else:
                changed.append("comment" if marker == 0xFE else f"APP{marker - 0xE0}")
            continue
        out.append(segment)
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RSTn or a stuffed 0xFF00
            start = pos
            pos = _jpeg_entropy_end(data, pos, path)
            out.append(data[start:pos])
    if any(data[pos:]):
        changed.append("data after EOI")
    if orientation not in (None, 0, 1):
        # keep the display orientation: a minimal EXIF block holding only the Orientation tag
        exif = _exif_minimal(orientation)
        at = 2 + (len(out[1]) if len(out) > 1 and out[1][1] == 0xE0 else 0)
        new = b"".join(out)
        return new[:at] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + new[at:], changed
    return b"".join(out), changed


def _jpeg_app0_app14(marker: int, body: bytes, out: list, changed: list) -> None:
    """APP0 rewritten as a minimal JFIF segment (JFXX and others go); APP14 kept only as Adobe's 12 bytes."""
    if marker == 0xE0:  # APP0: rewritten as a minimal JFIF segment; JFXX (thumbnail) and others go
        if body.startswith(b"JFIF\x00") and len(body) >= 12:
            jfif = body[:12] + b"\x00\x00"  # identifier, version, units, densities; no thumbnail
            if jfif != body:
                changed.append("APP0")
            out.append(b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif)
        else:
            changed.append("APP0 JFXX" if body.startswith(b"JFXX\x00") else "APP0")
        return
    # APP14: only Adobe's, cut to its 12-byte payload (colour transform)
    if body.startswith(b"Adobe") and len(body) >= 12:
        if len(body) > 12:
            changed.append("APP14")
        out.append(b"\xff\xee" + struct.pack(">H", 14) + body[:12])
    else:
        changed.append("APP14")


def _jpeg_entropy_end(data: bytes, pos: int, path: str) -> int:
    """Where entropy-coded data from `pos` ends: the next marker that is not RSTn or a stuffed 0xFF00."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            raise CorruptInput("JPEG scan is truncated (no EOI marker)", path)
        nxt = data[i + 1]
        if nxt == 0xFF:
            pos = i + 1
        elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
        else:
            return i


#: TIFF tags removed wherever they are (descriptive, identifying, or pointers to EXIF/GPS data)
TIFF_TAGS = {
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model", 285: "PageName", 305: "Software",
    306: "DateTime", 315: "Artist", 316: "HostComputer", 700: "XMP", 33432: "Copyright", 33723: "IPTC",
    34377: "Photoshop", 34665: "ExifIFD", 34853: "GPSIFD", 37724: "ImageSourceData", 37510: "UserComment",
    36867: "DateTimeOriginal", 36868: "DateTimeDigitized", 40091: "XPTitle", 40092: "XPComment",
    40093: "XPAuthor", 40094: "XPKeywords", 40095: "XPSubject", 40965: "InteropIFD", 42016: "ImageUniqueID",
    42032: "CameraOwnerName", 42033: "BodySerialNumber", 42036: "LensModel", 42037: "LensSerialNumber",
    50838: "ImageJMetaDataByteCounts", 50839: "ImageJMetaData",
}


_TIFF_SUB_IFDS = {34665, 34853, 40965}


#: TIFF tags kept: what is needed to decode the pixels (baseline and extension structure, colour,
#: resolution, JPEG tables, ICC profile) and GeoTIFF/GDAL geometry; every other tag (private ones,
#: >= 32768, included) is removed and its value zeroed
_TIFF_KEEP = {
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283, 284,
    290, 291, 292, 293, 296, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 334, 336, 338,
    339, 340, 341, 342, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 32997, 32998,
    33550, 33922, 34264, 34675, 34735, 34736, 34737, 42112, 42113,
}


#: (offsets tag, byte counts tag) pairs: the image data a kept IFD references
_TIFF_DATA = ((273, 279), (324, 325), (513, 514))


#: ASCII tags kept (GDAL's no-data value, GeoTIFF's ASCII parameters): every other ASCII tag goes
_TIFF_ASCII_KEEP = {34737, 42113}


_TIFF_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def scrub_tiff(data: bytes, path: str) -> tuple:
    """Keep only the tags of _TIFF_KEEP in every IFD (and SubIFD), in place: the other entries
    are taken out of the IFD and their values, and whole EXIF/GPS IFDs, overwritten with zeros;
    then every byte no kept IFD, value, strip or tile references is zeroed and the file ends at
    the last referenced byte. Strips, tiles and kept tags stay where they are."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise CorruptInput("not a (classic) TIFF file", path)
    scrub = _TiffScrub(data, path)
    off = struct.unpack_from(scrub.bo + "I", scrub.buf, 4)[0]
    while off:
        off = scrub.ifd(off)
    scrub.zero_unreferenced()
    return bytes(scrub.buf), scrub.changed


class _TiffScrub:
    """One scrub_tiff pass: the file's bytes, byte order, IFDs seen and kept, and what changed."""

    def __init__(self, data: bytes, path: str):
        self.path = path
        self.bo = "<" if data[:2] == b"II" else ">"
        self.buf = bytearray(data)
        self.changed, self.seen = [], set()
        self.kept_ifds = []

    def zero(self, off, n):
        """Overwrite `n` bytes from `off` with zeros (within the file)."""
        if off >= 0 and n > 0:
            self.buf[off:off + n] = bytes(len(self.buf[off:off + n]))

    def entries(self, off):
        """An IFD's entries (tag, type, count, raw 12 bytes) and the next IFD's offset; each IFD once."""
        if off in self.seen or off + 2 > len(self.buf):
            raise CorruptInput("TIFF IFD offset loops or is out of range", self.path)
        self.seen.add(off)
        (n,) = struct.unpack_from(self.bo + "H", self.buf, off)
        if off + 6 + 12 * n > len(self.buf):
            raise CorruptInput("TIFF IFD is truncated", self.path)
        out = []
        for i in range(n):
            tag, typ, count = struct.unpack_from(self.bo + "HHI", self.buf, off + 2 + 12 * i)
            out.append((tag, typ, count, bytes(self.buf[off + 2 + 12 * i:off + 14 + 12 * i])))
        return out, struct.unpack_from(self.bo + "I", self.buf, off + 2 + 12 * n)[0]

    def entries_at(self, off):
        """An IFD's entries as they are now (after the dropped ones were taken out)."""
        (n,) = struct.unpack_from(self.bo + "H", self.buf, off)
        return [struct.unpack_from(self.bo + "HHI", self.buf, off + 2 + 12 * i) + (bytes(self.buf[off + 2 + 12 * i:off + 14 + 12 * i]),)
                for i in range(n)], None

    def numbers(self, typ, count, raw):
        """The unsigned integers (SHORT, LONG or IFD) an entry holds: offsets or byte counts."""
        fmt = {3: "H", 4: "I", 13: "I"}.get(typ)
        if fmt is None:
            return []
        where, size = self.value_range(typ, count, raw)
        if where is not None and where + size > len(self.buf):
            return []
        src = raw[8:12] if where is None else bytes(self.buf[where:where + size])
        return list(struct.unpack_from(self.bo + f"{count}{fmt}", src, 0))

    def value_range(self, typ, count, raw):
        """(offset, size) of an entry's value; offset None when the value sits in the entry."""
        size = count * _TIFF_SIZE.get(typ, 1)
        return (struct.unpack_from(self.bo + "I", raw, 8)[0], size) if size > 4 else (None, size)

    def offsets(self, typ, count, raw):
        """The LONG or IFD offsets an entry holds (sub-IFD pointers)."""
        where, size = self.value_range(typ, count, raw)
        if typ not in (4, 13) or (where is not None and where + size > len(self.buf)):
            return []
        src = raw[8:12] if where is None else bytes(self.buf[where:where + size])
        return list(struct.unpack_from(self.bo + f"{count}I", src, 0))

    def wipe(self, off):
        """Zero a whole IFD (EXIF, GPS, Interop) with its values and its own sub-IFDs."""
        if off in self.seen or off < 8 or off + 2 > len(self.buf):
            return
        items, _ = self.entries(off)
        for tag, typ, count, raw in items:
            self.drop(tag, typ, count, raw)
        self.zero(off, 6 + 12 * len(items))

    def drop(self, tag, typ, count, raw):
        """Zero one entry's value (and, for an EXIF/GPS/Interop pointer, the whole IFD it names)."""
        if tag in _TIFF_SUB_IFDS:
            for sub in self.offsets(typ, count, raw):
                self.wipe(sub)
        where, size = self.value_range(typ, count, raw)
        if where is not None:
            self.zero(where, size)

    def strip_needs(self, by_tag, n):
        """Bytes each of `n` uncompressed strips holds rows for (a byte count claiming more leaves
        room no decoder reads); no limit (a huge number) when the tags do not say."""
        none = [1 << 62] * n
        try:
            def first(tag, default):
                return self.numbers(*by_tag[tag])[0] if tag in by_tag else default

            if first(259, 1) != 1:
                return none
            width, length, spp = first(256, 0), first(257, 0), first(277, 1)
            bits = self.numbers(*by_tag[258]) if 258 in by_tag else [1]
            rps = min(first(278, length) or length, length)
            planar = first(284, 1) == 2
            if not (width and length and rps and bits):
                return none
            stride = (width * (bits[0] if planar else sum(bits if len(bits) == spp else bits[:1] * spp)) + 7) // 8
            per_plane = -(-length // rps)
            return [min(rps, length - (i % per_plane) * rps) * stride for i in range(n)]
        except (IndexError, struct.error, ValueError, TypeError, ZeroDivisionError):
            return none

    def ifd(self, off):
        """Scrub one IFD (and its SubIFDs) in place; returns the next IFD's offset."""
        items, nxt = self.entries(off)
        self.kept_ifds.append(off)
        keep, subs = [], []
        for tag, typ, count, raw in items:
            if tag not in _TIFF_KEEP or (typ == 2 and tag not in _TIFF_ASCII_KEEP):
                self.changed.append(TIFF_TAGS.get(tag, f"tag {tag}"))
                self.drop(tag, typ, count, raw)
                continue
            keep.append(raw)
            if tag == 330:  # SubIFDs (reduced images, DNG): scrubbed like the main ones
                subs += self.offsets(typ, count, raw)
        if len(keep) != len(items):
            block = struct.pack(self.bo + "H", len(keep)) + b"".join(keep) + struct.pack(self.bo + "I", nxt)
            self.zero(off, 6 + 12 * len(items))
            self.buf[off:off + len(block)] = block
        for sub in subs:
            if 8 <= sub < len(self.buf):
                self.ifd(sub)
        return nxt

    def zero_unreferenced(self):
        """Zero unreferenced bytes and end the file at the last referenced one."""
        # every byte that no kept IFD, value, strip or tile references is zeroed, and the file ends
        # with the last referenced byte: nothing hides in slack space or after the image
        used = [(0, 8)]
        for off in self.kept_ifds:
            items, _ = self.entries_at(off)
            used.append((off, off + 6 + 12 * len(items)))
            by_tag = {}
            for tag, typ, count, raw in items:
                where, size = self.value_range(typ, count, raw)
                if where is not None:
                    used.append((where, where + size))
                by_tag[tag] = (typ, count, raw)
            for a, b in _TIFF_DATA:
                if a in by_tag and b in by_tag:
                    starts, counts = self.numbers(*by_tag[a]), self.numbers(*by_tag[b])
                    if a == 273:  # uncompressed strips: only the bytes of their rows are read
                        counts = [min(n, need) for n, need in zip(counts, self.strip_needs(by_tag, len(counts)))]
                    used += [(o, o + n) for o, n in zip(starts, counts)]
        used.sort()
        cursor, slack = 0, False
        for start, end in used:
            if start > cursor:
                slack |= any(self.buf[cursor:start])
                self.zero(cursor, start - cursor)
            cursor = max(cursor, end)
        if cursor < len(self.buf):
            slack |= any(self.buf[cursor:])
            del self.buf[cursor:]
        if slack:
            self.changed.append("data outside the image structure")


def _rle_end(data, start: int, four: bool, path: str) -> int:
    """Offset just after the end-of-bitmap marker of BMP RLE8/RLE4 data starting at `start`."""
    i = start
    while i + 1 < len(data):
        count, code = data[i], data[i + 1]
        i += 2
        if count or code == 0:
            continue  # a run, or the end of a line
        if code == 1:
            return i
        if code == 2:
            i += 2  # delta
        else:
            n = (code + 1) // 2 if four else code  # absolute run, padded to 16 bits
            i += n + (n & 1)
    raise CorruptInput("BMP RLE data has no end-of-bitmap marker", path)


def scrub_bmp(data: bytes, path: str) -> tuple:
    """Rebuild a BMP from exactly what its headers describe: file header (reserved fields zeroed),
    DIB header, bit masks, palette and pixel rows (their padding zeroed). A gap before the pixels,
    bytes after them and an embedded or linked colour profile are dropped."""
    if data[:2] != b"BM" or len(data) < 26:
        raise CorruptInput("not a BMP file", path)
    (off,) = struct.unpack_from("<I", data, 10)
    (hsize,) = struct.unpack_from("<I", data, 14)
    changed = []
    if hsize == 12:
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression, entry, colours = 0, 3, 0
    elif hsize in (16, 40, 52, 56, 64, 108, 124):
        if len(data) < 14 + max(hsize, 40):
            raise CorruptInput("BMP header is truncated", path)
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
        (colours,) = struct.unpack_from("<I", data, 46)
        entry = 4
    else:
        raise CorruptInput(f"unknown BMP header size {hsize}", path)
    if compression in (4, 5):
        raise UnsupportedFormat("BMP holding a JPEG or PNG stream is not supported; convert it first", path)
    dib = bytearray(data[14:14 + hsize])
    masks = 12 if compression == 3 and hsize == 40 else 16 if compression == 6 and hsize == 40 else 0
    palette = (colours or (1 << bits)) * entry if bits <= 8 else colours * entry
    at = 14 + hsize + masks + palette
    if hsize == 124 and dib[56:60] in (b"DEBM", b"KNIL"):  # PROFILE_EMBEDDED / PROFILE_LINKED (a file name)
        changed.append("colour profile")
        dib[56:60] = b"BGRs"  # sRGB
        dib[112:120] = bytes(8)  # profile offset and size
    if off < at or off > len(data):
        raise CorruptInput("BMP pixel offset is inside the headers or past the end", path)
    rows = abs(height)
    if compression in (1, 2):
        end = _rle_end(data, off, compression == 2, path)
        pixels = bytearray(data[off:end])
    else:
        stride = ((width * bits + 31) // 32) * 4
        need = stride * rows
        if off + need > len(data):
            raise CorruptInput(f"BMP pixel data is {len(data) - off} bytes, the header needs {need}", path)
        pixels = bytearray(data[off:off + need])
        used = (width * bits + 7) // 8
        if used < stride:
            padding = False
            for r in range(rows):
                row = memoryview(pixels)[r * stride + used:(r + 1) * stride]
                if any(row):
                    padding = True
                    pixels[r * stride + used:(r + 1) * stride] = bytes(stride - used)
            if padding:
                changed.append("row padding")
        end = off + need
    if any(data[6:10]):
        changed.append("reserved fields")
    if any(data[at:off]):
        changed.append("data before the pixels")
    if any(data[end:]):
        changed.append("data after the pixels")
    if hsize >= 40 and struct.unpack_from("<I", dib, 20)[0]:
        struct.pack_into("<I", dib, 20, len(pixels))  # biSizeImage: what is there now
    head = data[14 + hsize:at]
    total = at + len(pixels)
    out = b"BM" + struct.pack("<IHHI", total, 0, 0, at) + bytes(dib) + head + bytes(pixels)
    return (out if changed else data), changed


def scrub_raster(kind: str, data: bytes, path: str, verify: bool = True) -> tuple:
    """(new bytes, fields removed) for png, jpeg, tiff or bmp; with `verify` the pixels are decoded
    before and after and must be identical."""
    try:
        new, changed = {"png": scrub_png, "jpeg": scrub_jpeg, "tiff": scrub_tiff, "bmp": scrub_bmp}[kind](data, path)
    except (struct.error, IndexError, ValueError, OverflowError):
        raise CorruptInput(f"malformed {kind.upper()} structure", path) from None
    if not changed:
        return data, changed
    if verify:
        _same_pixels(data, new, path)
    return new, changed


def _same_pixels(old: bytes, new: bytes, path: str) -> None:
    """Decode both with Pillow, every frame: refuse unless mode, size and pixels are identical."""
    from io import BytesIO

    from PIL import Image, ImageSequence

    def frames(blob):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's multi-line warnings on odd metadata: stderr stays clean
            with Image.open(BytesIO(blob)) as im:
                return [(f.mode, f.size, f.tobytes()) for f in ImageSequence.Iterator(im)]

    try:
        before = frames(old)
    except Exception as exc:  # Pillow raises many types on files it cannot decode
        raise UnsupportedFormat(f"cannot decode the image to verify its pixels ({type(exc).__name__})", path) from None
    try:
        same = frames(new) == before
    except Exception:
        same = False
    if not same:
        raise UnsupportedFormat("the pixels would change when the metadata is removed; not anonymised", path)
