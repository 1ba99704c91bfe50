"""Pixel data -> one preallocated array: native bytes read in place, compressed frames via pydicom."""
from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptInput, InputError, MissingDependency, UnsupportedFormat
from .elements import NATIVE


def _rgb8(rgb: np.ndarray) -> np.ndarray:
    """Palette colours as 8-bit RGB: 16-bit LUT entries keep their high byte (how they are displayed)."""
    if rgb.dtype.itemsize == 1:
        return rgb
    return (rgb >> 8).astype(np.uint8)


def _lut_bits(frame) -> int:
    try:
        return int(frame.ds.ModalityLUTSequence[0].LUTDescriptor[2])
    except Exception:
        return 16


def _swap_if(rgb: np.ndarray, big_endian_file: bool) -> np.ndarray:
    """pydicom applies a big-endian file's 16-bit palette LUT without swapping its bytes (the
    little-endian copy of the same file gives the swapped values): swap them back."""
    return rgb.byteswap() if big_endian_file and rgb.dtype.itemsize == 2 else rgb


def stored_dtype(frame) -> np.dtype:
    """dtype of the stored values (before any scaling)."""
    if frame.float_pixels:
        return np.dtype(np.float32 if frame.float_pixels == 4 else np.float64)
    if frame.photometric == "PALETTE COLOR":
        return np.dtype(np.uint8)  # RGB24, as every image format and viewer holds colour
    if frame.modality_lut:
        return np.dtype(np.uint8 if _lut_bits(frame) <= 8 else np.uint16)
    bits = frame.bits_allocated
    if bits <= 8:
        return np.dtype(np.int8 if frame.signed else np.uint8)
    if bits <= 16:
        return np.dtype(np.int16 if frame.signed else np.uint16)
    if bits <= 32:
        return np.dtype(np.int32 if frame.signed else np.uint32)
    raise UnsupportedFormat(f"{bits} bits per pixel are not supported", frame.path)


def check_decodable(frame) -> None:
    """Refuse, from the header alone, a transfer syntax no installed plugin decodes."""
    ts = frame.transfer_syntax
    if ts in NATIVE:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError):
        raise UnsupportedFormat(f"transfer syntax {ts} cannot be decoded (unknown or unsupported)",
                                frame.path) from None
    if not decoder.is_available:
        missing = decoder.missing_dependencies if hasattr(decoder, "missing_dependencies") else []
        raise MissingDependency(f"decoding transfer syntax {ts} needs a plugin that is not installed "
                                f"({'; '.join(missing) or 'pylibjpeg/pyjpegls'})", frame.path)


def is_colour(frame) -> bool:
    return frame.samples == 3 or frame.photometric == "PALETTE COLOR"


def _fast_ok(frame) -> bool:
    return (frame.transfer_syntax in NATIVE and frame.pixel_offset is not None and frame.samples == 1
            and frame.photometric in ("MONOCHROME1", "MONOCHROME2") and frame.bits_allocated in (8, 16, 32)
            and not frame.float_pixels and not frame.modality_lut)


def _fix_bits(arr, frame):
    """Sign-extend or mask when BitsStored < BitsAllocated (unused high bits may hold overlays)."""
    bs, ba = frame.bits_stored, arr.dtype.itemsize * 8
    if arr.dtype.kind not in "iu" or not 0 < bs < ba:
        return arr
    if frame.signed:
        shift = ba - bs
        arr <<= shift
        arr >>= shift
    else:
        arr &= (1 << bs) - 1
    return arr


def _read_native(frame, out):
    """Copy one frame's native pixel bytes straight into `out` (rows, cols)."""
    offset, length = frame.pixel_offset
    nbytes = out.nbytes
    index = frame.index or 0
    start = offset + index * nbytes
    if (index + 1) * nbytes > length:
        raise CorruptInput(f"pixel data holds {length} bytes, fewer than {frame.n_frames} frames of "
                           f"{frame.rows}x{frame.columns} need", frame.path)
    with open(frame.path, "rb") as fh:
        fh.seek(start)
        got = fh.readinto(memoryview(out.reshape(-1)).cast("B"))
    if got != nbytes:
        raise CorruptInput("truncated pixel data", frame.path)
    if NATIVE[frame.transfer_syntax][1]:  # big endian
        out.byteswap(inplace=True)
    _fix_bits(out, frame)


#: a multi-frame file's native pixel data up to this many bytes is read in one piece
BLOCK_READ_MAX = 1 << 28
#: frames scaled and copied out of such a piece at a time (bounds the temporary arrays)
BLOCK_FRAMES = 256


def _read_multiframe(slots, out, dtype, real_float, scale_of):
    """Frames of native multi-frame files, each file's pixel data read in one piece and its frames
    copied (or scaled, with `real_float`) into `out`; the slots left for the per-frame readers."""
    by_file, rest = {}, []
    for slot in slots:
        fr = slot[2]
        if fr.index is not None and fr.n_frames > 1 and _fast_ok(fr):
            by_file.setdefault(fr.path, []).append(slot)
        else:
            rest.append(slot)
    for path, entries in by_file.items():
        fr0 = entries[0][2]
        offset, length = fr0.pixel_offset
        need = max(fr.index for _, _, fr in entries) + 1
        block = np.empty((need,) + out.shape[2:4], dtype=dtype)
        if block.nbytes > length:
            raise CorruptInput(f"pixel data holds {length} bytes, fewer than {fr0.n_frames} frames of "
                               f"{fr0.rows}x{fr0.columns} need", path)
        if block.nbytes > BLOCK_READ_MAX:
            rest += entries
            continue
        with open(path, "rb") as fh:
            fh.seek(offset)
            got = fh.readinto(memoryview(block.reshape(-1)).cast("B"))
        if got != block.nbytes:
            raise CorruptInput("truncated pixel data", path)
        if NATIVE[fr0.transfer_syntax][1]:  # big endian
            block.byteswap(inplace=True)
        _fix_bits(block, fr0)
        for start in range(0, len(entries), BLOCK_FRAMES):
            part = entries[start:start + BLOCK_FRAMES]
            where = ([t for t, _, _ in part], [k for _, k, _ in part])
            frames = block[[fr.index for _, _, fr in part]]
            if real_float:
                scale = np.array([scale_of(fr) for _, _, fr in part], dtype=np.float32)
                out[where] = frames.astype(np.float32) * scale[:, 0, None, None] + scale[:, 1, None, None]
            else:
                out[where] = frames
    return rest


def _decode_error(exc, frame):
    text = str(exc)
    ts = frame.transfer_syntax
    low = text.lower()
    if isinstance(exc, NotImplementedError) or "unsupported" in low or "no pixel data decoders" in low:
        return UnsupportedFormat(f"cannot decode transfer syntax {ts}: {text.splitlines()[0] if text else 'unsupported'}",
                                 frame.path)
    if "missing" in low and ("plugin" in low or "dependenc" in low or "package" in low):
        return MissingDependency(f"decoding transfer syntax {ts} needs a missing plugin "
                                 f"(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pyjpegls): "
                                 f"{text.splitlines()[0]}", frame.path)
    return CorruptInput(f"cannot decode pixel data ({type(exc).__name__}: {_reason(text)})", frame.path)


def _reason(text: str) -> str:
    """One line of a decoder's message: pydicom lists each plugin's reason on the lines after a
    first line ending in ':'; those reasons are the useful part."""
    lines = [line.strip(" -:") for line in text.splitlines() if line.strip(" -:")]
    if not lines:
        return ""
    if text.splitlines()[0].rstrip().endswith(":") and len(lines) > 1:
        return f"{lines[0]}: " + "; ".join(lines[1:4])
    return lines[0]


#: a compressed multi-frame file with at least this many frames is decoded in a thread pool
PARALLEL_MIN_FRAMES = 4


def _decode_one(ds, index):
    from pydicom.pixels import pixel_array

    return pixel_array(ds, index=index, raw=False)


def _decode_frames(ds, indices, ts):
    """{index: array} of the frames of one dataset; compressed frames decoded in parallel when many.

    The JPEG/JPEG 2000/JPEG-LS/RLE plugins do their work in C and release the GIL, so threads scale.
    """
    workers = min(len(indices), os.cpu_count() or 1, 8)
    if ts in NATIVE or len(indices) < PARALLEL_MIN_FRAMES or workers < 2:
        return {i: _decode_one(ds, i) for i in indices}
    _ = ds.PixelData  # convert the raw element once, before threads share the dataset
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda i: _decode_one(ds, i), indices))
    return dict(zip(indices, arrays))


def _decode_file(path, frames_in_file):
    """Decode every needed frame of one file through pydicom: {frame index: array}."""

    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from .scan import open_dicom

            with open_dicom(path) as fh:
                from . import guards as dcm_guards
                ds = dcm_guards.dcmread(fh, path, force=True)
        f0 = frames_in_file[0]
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = f0.transfer_syntax
        from pydicom.pixels import pixel_array as _pa

        result = {}
        if f0.n_frames > 1 or f0.index is not None:
            result = _decode_frames(ds, [fr.index for fr in frames_in_file], f0.transfer_syntax)
        else:
            result[None] = _pa(ds)
        if f0.photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            big = NATIVE.get(f0.transfer_syntax, (True, False))[1]
            result = {k: _rgb8(_swap_if(apply_color_lut(v, ds), big)) for k, v in result.items()}
        elif f0.modality_lut:
            from pydicom.pixels import apply_modality_lut

            result = {k: apply_modality_lut(v, ds) for k, v in result.items()}
        return result
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to decode this file", path) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise _decode_error(exc, frames_in_file[0]) from None


def load(by_t, nz, nt, dtype, real_float=False, scale_of=None):
    """Array [i, j, k(, t)(, c)] of the frames laid out by assemble.layout.

    With `real_float`, slopes/intercepts differ between frames: values become float32 reals,
    each frame scaled by `scale_of(frame)` -> (slope, intercept) (default: its rescale values).
    """
    if scale_of is None:
        def scale_of(fr):
            return fr.slope, fr.intercept
    f0 = by_t[0][0]
    rows, cols = f0.rows, f0.columns
    colour = is_colour(f0)
    shape = (nt, nz, rows, cols) + ((3,) if colour else ())
    out_dtype = np.dtype(np.float32) if real_float else dtype
    out = np.empty(shape, dtype=out_dtype)
    slots = [(t, k, by_t[t][k]) for t in range(nt) for k in range(nz)]
    empty = [(t, k) for t, k, fr in slots if fr is None]  # missing slices the caller chose to fill
    for t, k in empty:
        out[t, k] = 0
    slots = _read_multiframe([s for s in slots if s[2] is not None], out, dtype, real_float, scale_of)
    if all(_fast_ok(fr) for _, _, fr in slots) and not real_float:
        workers = min(len(slots) // 8, os.cpu_count() or 1, 4)
        if workers > 1:
            # readinto releases the GIL: page faults and page-cache copies overlap across threads
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda s: _read_native(s[2], out[s[0], s[1]]), slots))
        else:
            for t, k, fr in slots:
                _read_native(fr, out[t, k])
    else:
        files = {}
        for t, k, fr in slots:
            files.setdefault(fr.path, []).append((t, k, fr))
        needs_threads = any(fr.transfer_syntax not in NATIVE for _, _, fr in slots)

        def work(item):
            path, entries = item
            if all(_fast_ok(fr) for _, _, fr in entries):
                decoded = {}
                for _, _, fr in entries:
                    tmp = np.empty((rows, cols), dtype=dtype)
                    _read_native(fr, tmp)
                    decoded[fr.index] = tmp
            else:
                decoded = _decode_file(path, [fr for _, _, fr in entries])
            for t, k, fr in entries:
                arr = decoded[fr.index]
                if arr.shape[:2] != (rows, cols):
                    raise CorruptInput(f"frame is {arr.shape[0]}x{arr.shape[1]}, expected {rows}x{cols}", path)
                if not arr.dtype.isnative:
                    arr = arr.astype(arr.dtype.newbyteorder("="))
                if real_float:
                    slope, intercept = scale_of(fr)
                    out[t, k] = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
                else:
                    out[t, k] = arr
        items = list(files.items())
        workers = min(len(items), os.cpu_count() or 1, 8) if needs_threads else 1
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, items))
        else:
            for item in items:
                work(item)
    # [t, k, row, col(, c)] -> [col(i), row(j), k, t(, c)]
    axes = (3, 2, 1, 0) + ((4,) if colour else ())
    arr = out.transpose(axes)
    if nt == 1:
        arr = arr[:, :, :, 0]
    return arr
