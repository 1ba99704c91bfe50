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

import numpy as np

from .. import geometry, io, log
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
    with io.atomic_outputs([path], force=force, protect=protect) as temps:
        try:
            img.save(temps[0], format=_PIL_FORMAT[fmt], **save)
        except (OSError, ValueError, KeyError) as exc:
            raise OutputError(f"cannot write {name}: {exc}", path) from None
    return [os.path.abspath(path)]
