"""Pictures of a volume drawn with Pillow: three orthogonal slices or a montage, windowed, labelled
with orientation letters, with an optional label-map overlay; terminal renderings and a QC page.

Slices are cut along the stored voxel axes nearest to the world axes (no resampling, as a viewer
in voxel mode does): for an oblique volume the letters name the nearest world direction. Screen
directions follow the radiological convention (the patient's right on the left of axial and
coronal panels) or, with `neurological=True`, the patient's left on the left. Sagittal panels
show anterior on the left. Superior and anterior are always up.

The voxels are visited slab by slab (a .nii.gz is inflated as it is read) and only the planes a
picture needs are kept, so memory holds one slab plus the pictures.
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field

import numpy as np

from . import geometry
from .errors import InputError, UsageError
from .formats import DEFAULT_EXTENSIONS

#: the panels of an orthogonal view, left to right, and the world axis normal to each
PANELS = ("sagittal", "coronal", "axial")
_NORMAL = {"sagittal": 0, "coronal": 1, "axial": 2}
_POS = "RAS"
_NEG = "LPI"
#: panel -> (horizontal world axis, vertical world axis); vertical always runs top = + (A or S)
_SCREEN = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}

#: colour maps as control points (position 0..1, RGB); interpolated into 256-entry tables
CMAPS = {
    "gray": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "gray_r": [(0.0, (255, 255, 255)), (1.0, (0, 0, 0))],
    "hot": [(0.0, (0, 0, 0)), (0.375, (255, 0, 0)), (0.75, (255, 255, 0)), (1.0, (255, 255, 255))],
    "viridis": [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)),
                (1.0, (253, 231, 37))],
    "bone": [(0.0, (0, 0, 0)), (0.375, (81, 81, 113)), (0.75, (166, 198, 198)), (1.0, (255, 255, 255))],
}
#: opacity of label colours over the image
OVERLAY_ALPHA = 0.5
#: the first label colours (then golden-ratio hues): distinct at a glance, label 1 red as in ITK-SNAP
_LABEL_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
                  (255, 128, 0), (128, 0, 255), (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128)]
BACKGROUND = (0, 0, 0)
LETTER_COLOUR = (255, 220, 0)
TEXT_COLOUR = (230, 230, 230)
#: target size of the longest panel side (pixels) for orthogonal views and of each montage tile
PANEL_PX = 256
MARGIN = 18  # room around each panel for its letters


def label_colour(value: int) -> tuple:
    """The RGB colour drawn for a label value (the same in every picture and run)."""
    value = int(value)
    if value <= 0:
        return (0, 0, 0)
    if value <= len(_LABEL_COLOURS):
        return _LABEL_COLOURS[value - 1]
    import colorsys

    h = (value * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return (int(r * 255), int(g * 255), int(b * 255))


def blend(base: tuple, colour: tuple, alpha: float = OVERLAY_ALPHA) -> tuple:
    """The pixel an overlay colour gives over a base pixel (what the pictures draw)."""
    return tuple(round(b * (1 - alpha) + c * alpha) for b, c in zip(base, colour))


def cmap_table(name: str) -> np.ndarray:
    """256x3 uint8 colour table of a colour map name."""
    if name not in CMAPS:
        raise UsageError(f"--cmap: unknown colour map {name!r} (choose from {', '.join(CMAPS)})")
    pts = CMAPS[name]
    x = np.linspace(0, 1, 256)
    pos = [p for p, _ in pts]
    out = np.stack([np.interp(x, pos, [c[i] for _, c in pts]) for i in range(3)], axis=-1)
    return np.rint(out).astype(np.uint8)


# -- options -----------------------------------------------------------------------------------------

def parse_triplet(text: str, what: str, integer: bool = False) -> tuple:
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not all(np.isfinite(vals)) or (integer and any(not v.is_integer() for v in vals)):
        kind = "three integers I,J,K" if integer else "three numbers X,Y,Z (world mm)"
        raise UsageError(f"{what} takes {kind}, not {text!r}")
    return tuple(int(v) for v in vals) if integer else tuple(vals)


def parse_window(text) -> tuple | None:
    """None for 'auto', else (centre, width)."""
    if text in (None, "", "auto"):
        return None
    try:
        centre, width = (float(v) for v in str(text).split(","))
    except ValueError:
        raise UsageError(f"--window takes 'auto' or CENTER,WIDTH, not {text!r}") from None
    if not (width > 0 and np.isfinite(centre) and np.isfinite(width)):
        raise UsageError("--window: the width must be positive and both numbers finite")
    return centre, width


# -- geometry of the sections ------------------------------------------------------------------------

def _axes(volume) -> list:
    """For each world axis (x, y, z): (voxel axis, sign) of the stored axis nearest to it."""
    aff = np.asarray(volume.affine, float)
    if volume.ndim < 3 and not np.any(aff[:3, 2]):
        aff = aff.copy()
        aff[:3, 2] = np.cross(aff[:3, 0], aff[:3, 1])
    assign = geometry.axis_assignment(aff)
    if any(a is None for a in assign):
        raise InputError("the image's affine has a degenerate axis: its orientation cannot be shown",
                         volume.path)
    out = [None, None, None]
    for vox, (world, sign) in enumerate(assign):
        out[world] = (vox, sign)
    return out


def centre_voxel(volume, at=None, voxel=None) -> tuple:
    """The voxel (i, j, k) the orthogonal panels cross: the centre, a world point or a voxel."""
    shape = tuple(volume.spatial_shape) + (1,) * (3 - len(volume.spatial_shape))
    if voxel is not None:
        ijk = tuple(int(v) for v in voxel)
        what = f"voxel {','.join(map(str, ijk))}"
    elif at is not None:
        aff = np.asarray(volume.affine, float)
        if volume.ndim < 3 and not np.any(aff[:3, 2]):
            aff = aff.copy()
            aff[:3, 2] = np.cross(aff[:3, 0], aff[:3, 1])
        pt = np.linalg.solve(aff, np.array([*at, 1.0]))[:3]
        ijk = tuple(int(np.floor(v + 0.5)) for v in pt)
        what = f"world point {','.join(format(v, 'g') for v in at)} mm (voxel {','.join(map(str, ijk))})"
    else:
        return tuple(n // 2 for n in shape)
    if any(not (0 <= v < n) for v, n in zip(ijk, shape)):
        raise UsageError(f"{what} is outside the image (shape {'x'.join(map(str, shape))})")
    return ijk


@dataclass
class Panel:
    """One drawn section: its name, box in the picture (x0, y0, x1, y1) and the letter on each side."""

    name: str
    box: tuple
    left: str
    right: str
    top: str
    bottom: str
    index: int = 0  # slice index along the stored voxel axis cut


@dataclass
class Picture:
    image: object  # PIL.Image.Image (RGB)
    panels: list = field(default_factory=list)
    window: tuple | None = None  # (low, high) real values shown black..white
    labels: list = field(default_factory=list)  # [(value, name or None, colour)] drawn in the legend
    volume: object = None  # the Volume drawn (set by `view`)


def _screen_letters(panel: str, neurological: bool) -> tuple:
    """(left, right, top, bottom) letters of a panel."""
    h, v = _SCREEN[panel]
    if h == 0:  # x: radiological puts R on the left
        left, right = ("L", "R") if neurological else ("R", "L")
    else:  # y on sagittal panels: anterior on the left
        left, right = "A", "P"
    return left, right, _POS[v], _NEG[v]


def _orient_plane(plane: np.ndarray, axes_world: list, panel: str, neurological: bool):
    """A 2D section [u, v] (stored voxel axes in order) as screen rows x columns, plus the spacing
    (mm) of a column step and of a row step."""
    h, v = _SCREEN[panel]
    (wu, su, du), (wv, sv, dv) = axes_world  # world axis, sign, spacing of each remaining voxel axis
    if wu == h:
        screen = np.swapaxes(plane, 0, 1)  # rows = v, columns = u
        hs, vs, dh, dv_ = su, sv, du, dv
    else:
        screen = plane
        hs, vs, dh, dv_ = sv, su, dv, du
    # columns: world grows to the right when (x and neurological); y on sagittal shrinks to the right
    want_h = (1 if neurological else -1) if h == 0 else -1
    if hs != want_h:
        screen = screen[:, ::-1]
    if vs != -1:  # rows: world grows upwards (S, A at the top), so it shrinks downwards
        screen = screen[::-1, :]
    return screen, dh, dv_


# -- reading the sections ----------------------------------------------------------------------------

def sections(volume, requests, t: int = 0, slab_voxels: int = 1 << 22) -> dict:
    """{(voxel axis, index): plane} for the 4th-axis index t, read slab by slab."""
    from .diff import iter_slabs

    shape = tuple(volume.grid_shape) + (1,) * max(0, 3 - len(volume.grid_shape))
    nx, ny, nz = shape[:3]
    nt = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    if not 0 <= t < nt:
        raise UsageError(f"--volume {t} is outside 0..{nt - 1}")
    out, parts = {}, {}
    planes = max(1, int(slab_voxels) // max(1, nx * ny * max(1, volume.channels)))
    for tt, k0, k1, slab in iter_slabs(volume, planes, t_only=t):
        if tt != t:
            continue
        for axis, idx in requests:
            if axis == 2:
                if k0 <= idx < k1:
                    out[(axis, idx)] = np.array(slab[:, :, idx - k0])
            else:
                piece = slab[idx, :, :] if axis == 0 else slab[:, idx, :]
                parts.setdefault((axis, idx), []).append(np.array(piece))
    for key, pieces in parts.items():
        out[key] = np.concatenate(pieces, axis=1)
    return out


def _real2d(volume, plane: np.ndarray) -> np.ndarray:
    if plane.dtype.names is not None:
        plane = np.stack([plane[n] for n in plane.dtype.names], axis=-1)
    if plane.dtype.kind == "c":
        plane = np.abs(plane)
    if volume.scaling is not None and volume.value_kind not in ("rgb", "rgba"):
        slope, inter = volume.scaling
        plane = plane.astype(np.float64) * slope + inter
    return plane


def auto_window(volume, planes) -> tuple:
    """(low, high) shown black..white: the file's VOI window (DICOM) or the 0.5/99.5 percentiles of
    the finite values of the drawn sections."""
    centre, width = volume.metadata.get("window_center"), volume.metadata.get("window_width")
    if centre is not None and width is not None and width and width > 0:
        return _window_range(centre, width)
    vals = np.concatenate([np.asarray(p, np.float64).ravel() for p in planes]) if planes else np.zeros(1)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _window_range(centre: float, width: float) -> tuple:
    """DICOM's linear VOI window as the (low, high) real values mapped to black and white."""
    return float(centre) - 0.5 - (float(width) - 1) / 2, float(centre) - 0.5 + (float(width) - 1) / 2


def _to_rgb(volume, plane: np.ndarray, window, table) -> np.ndarray:
    """A section (screen rows x columns) as RGB uint8."""
    if volume.value_kind in ("rgb", "rgba"):
        rgb = np.asarray(plane)[..., :3]
        if rgb.dtype != np.uint8:
            top = float(np.nanmax(rgb)) if rgb.size else 1.0
            rgb = np.clip(np.nan_to_num(rgb.astype(np.float64)) / (top or 1.0) * 255, 0, 255).astype(np.uint8)
        return rgb
    lo, hi = window
    x = np.asarray(plane, np.float64)
    idx = np.clip((x - lo) / (hi - lo) * 255.0, 0, 255)
    idx = np.nan_to_num(idx, nan=0.0).astype(np.uint8)
    if volume.metadata.get("photometric") == "MONOCHROME1":
        idx = 255 - idx
    return table[idx]


def _overlay(rgb: np.ndarray, labels: np.ndarray, present: set) -> np.ndarray:
    lab = np.rint(np.nan_to_num(np.asarray(labels, np.float64))).astype(np.int64)
    out = rgb.astype(np.float64)
    for value in np.unique(lab):
        if value <= 0:
            continue
        present.add(int(value))
        sel = lab == value
        colour = np.array(label_colour(value), np.float64)
        out[sel] = out[sel] * (1 - OVERLAY_ALPHA) + colour * OVERLAY_ALPHA
    return np.rint(out).astype(np.uint8)


def label_names(volume) -> dict:
    """Label names the label map's own file holds (NRRD segmentation `SegmentN_Name`/`_LabelValue`)."""
    if volume.format != "nrrd" or not volume.path:
        return {}
    from .formats.nrrd import read_header

    try:
        hdr = read_header(volume.path)
    except Exception:
        return {}
    names = {}
    for key, value in hdr.items():
        if key.startswith("Segment") and key.endswith("_Name"):
            stem = key[: -len("_Name")]
            try:
                names[int(str(hdr.get(stem + "_LabelValue", "")).strip())] = str(value)
            except ValueError:
                continue
    return names


def _check_overlay(volume, overlay) -> None:
    if tuple(overlay.spatial_shape) != tuple(volume.spatial_shape) or not geometry.world_equal(
            volume.affine, overlay.affine, volume.spatial_shape, tol=1e-3):
        raise UsageError(f"--overlay must share the image's grid (shape {'x'.join(map(str, volume.spatial_shape))} "
                         f"and affine); it has shape {'x'.join(map(str, overlay.spatial_shape))}"
                         + ("" if tuple(overlay.spatial_shape) != tuple(volume.spatial_shape) else
                            " and a different affine"))
    if overlay.value_kind in ("rgb", "rgba", "complex"):
        raise UsageError(f"--overlay must be a label map, not {overlay.value_kind} data")


# -- drawing -----------------------------------------------------------------------------------------

def _font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _resized(rgb: np.ndarray, width_mm: float, height_mm: float, target: int):
    """A section as a Pillow image scaled so pixels are square in mm and the longer side is `target`."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    rows, cols = rgb.shape[:2]
    wmm, hmm = max(cols * width_mm, 1e-6), max(rows * height_mm, 1e-6)
    scale = target / max(wmm, hmm)
    size = (max(1, round(wmm * scale)), max(1, round(hmm * scale)))
    if size != img.size:  # enlarged: crisp voxels; reduced: averaged
        img = img.resize(size, Image.NEAREST if size[0] >= img.size[0] and size[1] >= img.size[1]
                         else Image.BILINEAR)
    return img


def _plan(volume, panels_at, neurological):
    """[(panel name, voxel axis cut, index, ((world, sign, spacing) of the two remaining axes))]."""
    axes = _axes(volume)
    spacing = geometry.voxel_sizes(volume.affine) if volume.ndim >= 3 else (
        *geometry.voxel_sizes(volume.affine)[:2], 1.0)
    plan = []
    for name, idx in panels_at:
        vox, _ = axes[_NORMAL[name]]
        rest = sorted(ax for ax in range(3) if ax != vox)
        world_of = {axes[w][0]: (w, axes[w][1]) for w in range(3)}
        plan.append((name, vox, idx, [(world_of[a][0], world_of[a][1], float(spacing[a])) for a in rest]))
    return plan


def render(volume, *, at=None, voxel=None, window=None, cmap: str = "gray", t: int = 0, overlay=None,
           names=None, neurological: bool = False, montage: int | None = None, axis: str = "axial",
           panel_px: int = PANEL_PX, title: str | None = None) -> Picture:
    """Draw three orthogonal sections (or a montage of `montage` sections along `axis`) as a Picture."""
    from PIL import Image, ImageDraw

    table = cmap_table(cmap)
    win = parse_window(window) if isinstance(window, str) or window is None else tuple(window)
    if overlay is not None:
        _check_overlay(volume, overlay)
    axes = _axes(volume)
    shape = tuple(volume.spatial_shape) + (1,) * (3 - len(volume.spatial_shape))
    if montage is not None:
        panels_at = _montage_panels(axes, shape, montage, axis)
    else:
        panels_at = _orthogonal_panels(volume, axes, shape, at, voxel)
    plan = _plan(volume, panels_at, neurological)
    requests = [(vox, idx) for _, vox, idx, _ in plan]
    cut = sections(volume, requests, t)
    lab_cut = sections(overlay, requests, 0) if overlay is not None else {}
    real = {key: _real2d(volume, p) for key, p in cut.items()}
    if win is None:
        if volume.value_kind in ("rgb", "rgba"):
            rng = None
        else:
            rng = auto_window(volume, list(real.values()))
    else:
        rng = _window_range(*win)
    tiles, present = [], set()
    for name, vox, idx, rest in plan:
        plane = real[(vox, idx)]
        screen, dh, dv = _orient_plane(plane, rest, name, neurological)
        rgb = _to_rgb(volume, screen, rng, table)
        if overlay is not None:
            lab_screen, _, _ = _orient_plane(lab_cut[(vox, idx)], rest, name, neurological)
            rgb = _overlay(rgb, _real2d(overlay, lab_screen), present)
        tiles.append((name, idx, _resized(rgb, dh, dv, panel_px)))
    font = _font(13)
    small = _font(11)
    cols = len(tiles) if montage is None else int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / cols))
    cell_w = max(t[2].size[0] for t in tiles) + 2 * MARGIN
    cell_h = max(t[2].size[1] for t in tiles) + 2 * MARGIN
    legend = [(v, (names or {}).get(v), label_colour(v)) for v in sorted(present)]
    title_h = 20 if title else 0
    legend_h = 18 * ((len(legend) + 3) // 4) + (6 if legend else 0)
    width = cols * cell_w
    height = title_h + rows * cell_h + legend_h
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 3), title[:max(10, width // 7)], fill=TEXT_COLOUR, font=font)
    panels = []
    for n, (name, idx, img) in enumerate(tiles):
        r, c = divmod(n, cols)
        x0 = c * cell_w + MARGIN + (cell_w - 2 * MARGIN - img.size[0]) // 2
        y0 = title_h + r * cell_h + MARGIN + (cell_h - 2 * MARGIN - img.size[1]) // 2
        canvas.paste(img, (x0, y0))
        x1, y1 = x0 + img.size[0], y0 + img.size[1]
        left, right, top, bottom = _screen_letters(name, neurological)
        _letter(draw, font, left, (x0 - MARGIN // 2, (y0 + y1) // 2))
        _letter(draw, font, right, (x1 + MARGIN // 2, (y0 + y1) // 2))
        _letter(draw, font, top, ((x0 + x1) // 2, y0 - MARGIN // 2))
        _letter(draw, font, bottom, ((x0 + x1) // 2, y1 + MARGIN // 2))
        if montage is not None:
            draw.text((x0 + 2, y0 + 1), str(idx), fill=TEXT_COLOUR, font=small)
        panels.append(Panel(name, (x0, y0, x1, y1), left, right, top, bottom, idx))
    _draw_legend(draw, small, legend, title_h + rows * cell_h + 3, width)
    return Picture(canvas, panels, rng, legend)


def _montage_panels(axes, shape, montage, axis) -> list:
    """(section name, slice index) of `montage` evenly spaced sections along `axis`."""
    if axis not in _NORMAL:
        raise UsageError(f"--axis takes axial, coronal or sagittal, not {axis!r}")
    if montage < 1:
        raise UsageError("--montage takes a positive number of slices")
    vox = axes[_NORMAL[axis]][0]
    n = shape[vox]
    count = min(montage, n)
    # evenly spaced, away from the edges (the first and last slices are often empty)
    idxs = sorted({int(v) for v in np.floor((np.arange(count) + 0.5) * n / count)})
    sign = axes[_NORMAL[axis]][1]
    idxs = idxs if sign > 0 else idxs[::-1]  # ordered from I to S, P to A, L to R
    return [(axis, i) for i in idxs]


def _orthogonal_panels(volume, axes, shape, at, voxel) -> list:
    """(section name, slice index) of the orthogonal sections through the chosen point."""
    ijk = centre_voxel(volume, at, voxel)
    # a section one voxel thick shows nothing (a 2D image, a single slice): only the others
    flat = [name for name in PANELS
            if any(shape[axes[w][0]] == 1 for w in range(3) if w != _NORMAL[name])]
    shown = [name for name in PANELS if name not in flat] or list(PANELS)
    return [(name, ijk[axes[_NORMAL[name]][0]]) for name in shown]


def _draw_legend(draw, small, legend, y, width) -> None:
    """The label legend below the panels, four entries a row."""
    for n, (value, name, colour) in enumerate(legend):
        x = (n % 4) * (width // 4) + 4
        yy = y + 18 * (n // 4)
        draw.rectangle((x, yy + 2, x + 11, yy + 13), fill=colour)
        text = f"{value}" + (f" {name}" if name else "")
        draw.text((x + 15, yy), text[: max(4, width // 4 // 7)], fill=TEXT_COLOUR, font=small)


def _letter(draw, font, text, centre) -> None:
    draw.text(centre, text, fill=LETTER_COLOUR, font=font, anchor="mm")


def png_bytes(image, optimize: bool = False) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1 if not optimize else 6)
    return buf.getvalue()


# -- terminal ----------------------------------------------------------------------------------------

def terminal_protocol(env=None) -> str:
    """'kitty', 'iterm2' or 'blocks' (Unicode half blocks in 24-bit colour), from what the terminal
    announces in its environment."""
    env = os.environ if env is None else env
    if env.get("MEDCONV_TERMINAL_GRAPHICS") in ("kitty", "iterm2", "blocks"):
        return env["MEDCONV_TERMINAL_GRAPHICS"]
    if env.get("KITTY_WINDOW_ID") or env.get("TERM", "") == "xterm-kitty" or env.get("TERM_PROGRAM") == "ghostty":
        return "kitty"
    if env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return "blocks"


def fit(image, columns: int, lines: int | None = None):
    """The picture scaled to `columns` terminal cells (pixels as half cells: 1 wide, 2 per line)."""
    from PIL import Image

    columns = max(4, int(columns))
    w, h = image.size
    scale = columns / w
    if lines:
        scale = min(scale, 2 * max(2, int(lines) - 1) / h)
    size = (max(1, min(columns, int(w * scale))), max(2, int(h * scale)))
    return image.resize(size, Image.BILINEAR)


def half_blocks(image) -> str:
    """Text drawing of an RGB image: one '▀' per two pixel rows, upper pixel in the foreground
    colour and lower pixel in the background colour (24-bit ANSI)."""
    arr = np.asarray(image.convert("RGB"))
    if arr.shape[0] % 2:
        arr = np.concatenate([arr, np.zeros((1,) + arr.shape[1:], np.uint8)], axis=0)
    lines = []
    for r in range(0, arr.shape[0], 2):
        top, bot = arr[r], arr[r + 1]
        cells = []
        prev = None
        for (a, b, c), (d, e, f) in zip(top.tolist(), bot.tolist()):
            key = (a, b, c, d, e, f)
            if key != prev:
                cells.append(f"\x1b[38;2;{a};{b};{c};48;2;{d};{e};{f}m")
                prev = key
            cells.append("\u2580")
        lines.append("".join(cells) + "\x1b[0m")
    return "\n".join(lines) + "\n"


def kitty(image, columns: int) -> str:
    """The kitty graphics protocol: a PNG sent in 4096-byte base64 chunks, shown `columns` cells wide."""
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        keys = f"a=T,f=100,q=2,c={int(columns)},m={more}" if n == 0 else f"m={more}"
        out.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(out) + "\n"


def iterm2(image, columns: int) -> str:
    """The iTerm2 inline image protocol (OSC 1337), shown `columns` cells wide."""
    raw = png_bytes(image)
    data = base64.b64encode(raw).decode("ascii")
    return f"\x1b]1337;File=inline=1;size={len(raw)};width={int(columns)};preserveAspectRatio=1:{data}\x07\n"


def terminal_text(image, columns: int, lines: int | None = None, protocol: str = "blocks") -> str:
    """What `view` writes to a terminal: the picture sized to `columns` (and `lines`)."""
    if protocol == "kitty":
        return kitty(image, columns)
    if protocol == "iterm2":
        return iterm2(image, columns)
    return half_blocks(fit(image, columns, lines))


# -- QC page -----------------------------------------------------------------------------------------

def thumbnail_uri(image, width: int = 320) -> str:
    """A data: URI of a small PNG copy of the picture (the page then needs no other file)."""
    from PIL import Image

    img = image
    if img.size[0] > width:
        img = img.resize((width, max(1, int(img.size[1] * width / img.size[0]))), Image.BILINEAR)
    return "data:image/png;base64," + base64.b64encode(png_bytes(img, optimize=True)).decode("ascii")


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:1em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #333;padding:6px 10px;vertical-align:top;text-align:left}
th{color:#aaa;font-weight:normal}img{display:block;max-width:480px;height:auto;background:#000}
.warn{color:#f5b041}.err{color:#ec7063}code{color:#fff}a{color:#8ab4f8}
"""


def qc_page(rows, title: str = "medconv QC") -> str:
    """A self-contained HTML page: one row per input, in order (thumbnail embedded, linked to the
    full PNG by a relative name; shape, spacing, orientation, dtype and warnings beside it)."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{_PAGE_STYLE}</style></head><body>",
           f"<h1>{esc(title)}</h1>", f"<p>{len(rows)} inputs</p>",
           '<table id="qc"><thead><tr><th>#</th><th>picture</th><th>input</th><th>shape</th><th>spacing</th>'
           "<th>orientation</th><th>dtype</th><th>warnings</th></tr></thead><tbody>"]
    for n, row in enumerate(rows, 1):
        if row.get("error"):
            out.append(f'<tr class="qc-row" data-input="{esc(row["path"])}"><td>{n}</td><td class="err">not drawn'
                       f'</td><td><code>{esc(row["path"])}</code></td><td colspan="4"></td>'
                       f'<td class="err">{esc(row["error"])}</td></tr>')
            continue
        spacing = " x ".join(format(float(v), ".4g") for v in row.get("spacing", []))
        shape = " x ".join(str(v) for v in row.get("shape", []))
        warnings = "<br>".join(esc(w) for w in row.get("warnings", []))
        out.append(
            f'<tr class="qc-row" data-input="{esc(row["path"])}"><td>{n}</td>'
            f'<td><a href="{esc(row["png"])}"><img src="{row["thumbnail"]}" alt="{esc(row["path"])}"></a></td>'
            f'<td><code>{esc(row["path"])}</code><br><a href="{esc(row["png"])}">{esc(row["png"])}</a></td>'
            f"<td>{esc(shape)}</td><td>{esc(spacing)}</td><td>{esc(str(row.get('orientation', '')))}</td>"
            f"<td>{esc(str(row.get('dtype', '')))}</td><td class=\"warn\">{warnings}</td></tr>")
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"


# -- one input end to end ----------------------------------------------------------------------------

def read_for_view(path, series=None):
    from . import read
    from .formats import detect

    if series is not None and detect(path) == "dicom":
        return read(path, header_only=True, series=series)
    return read(path, header_only=True)


def view(path, *, overlay=None, label_names_path=None, series=None, **options) -> Picture:
    """Read `path` (and the overlay label map) and draw it: the library call behind `medconv view`."""
    volume = read_for_view(path, series)
    lab = None
    names = {}
    if overlay is not None:
        lab = read_for_view(overlay)
        names = label_names(lab)
        if label_names_path:
            from .stats import read_label_names

            names.update(read_label_names(label_names_path))
    picture = render(volume, overlay=lab, names=names, **options)
    picture.volume = volume
    return picture


# -- writing -----------------------------------------------------------------------------------------

_PNG = DEFAULT_EXTENSIONS["png"]


def write_png(image, path, *, force: bool = False, protect=()) -> str:
    """Write a picture as PNG atomically (a temporary file renamed into place)."""
    from . import fileio as mio

    if not str(path).lower().endswith(_PNG):
        raise UsageError(f"-o {path}: view writes PNG files (name it .png, or end a folder name with /)")
    data = png_bytes(image, optimize=True)
    with mio.atomic_outputs([path], force=force, protect=protect) as (tmp,):
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def png_names(paths) -> list:
    """One distinct PNG file name per input, from its file name (a.nii.gz -> a.png; a second a -> a-2.png)."""
    from .fileio import strip_gz

    names, seen = [], {}
    for p in paths:
        base = os.path.basename(os.path.normpath(p)) or "input"
        stem = strip_gz(base)[0]
        stem = os.path.splitext(stem)[0] if "." in stem else stem
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem) or "input"
        n = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = n
        names.append(f"{stem}-{n}" + _PNG if n > 1 else stem + _PNG)
    return names


def _qc_one(item, *, out_dir, force, overlay, label_names_path, series, options) -> dict:
    """Draw one input into out_dir and return its QC row (runs in a worker process)."""
    import contextlib
    import sys

    from .summary import volume_record

    path, name = item
    captured = io.StringIO()  # the warnings of reading go on stderr and into the row
    try:
        with contextlib.redirect_stderr(captured):
            picture = view(path, overlay=overlay, label_names_path=label_names_path, series=series,
                           title=os.path.basename(os.path.normpath(path)), **options)
    finally:
        sys.stderr.write(captured.getvalue())
    text = captured.getvalue()
    write_png(picture.image, os.path.join(out_dir, name), force=force, protect=[path])
    record = volume_record(picture.volume, path)
    warnings = [line.split("warning: ", 1)[-1] for line in text.splitlines() if "warning:" in line]
    return {"path": path, "png": name, "shape": record["shape"], "spacing": record["spacing"],
            "orientation": record["orientation"], "dtype": record["dtype"], "warnings": warnings,
            "thumbnail": thumbnail_uri(picture.image)}


def write_qc(paths, out_dir, *, overlay=None, label_names_path=None, series=None, force: bool = False,
             jobs=None, keep_going: bool = False, **options) -> list:
    """One PNG per input in out_dir and out_dir/index.html (rows in input order). Returns the rows."""
    import functools

    from . import batch, log
    from . import fileio as mio

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        from .errors import OutputError

        raise OutputError("not a directory (several inputs write one PNG each into a folder)", out_dir)
    index = os.path.join(out_dir, "index.html")
    if os.path.lexists(index) and not force:
        from .errors import OutputError

        raise OutputError("destination exists (use --force to replace it)", index)
    names = png_names(paths)
    one = functools.partial(_qc_one, out_dir=out_dir, force=force, overlay=overlay,
                            label_names_path=label_names_path, series=series, options=options)
    failed = {}

    def report(item, exc):
        failed[item] = str(exc)
        log.warn(f"skipped: {exc.message}", exc.path or item[0])

    items = list(zip(paths, names))
    results, failures = batch.run(items, one, keep_going=keep_going, on_error=report, jobs=jobs, progress="view")
    done = iter(results)
    rows = [{"path": p, "error": failed[(p, n)]} if (p, n) in failed else next(done) for p, n in items]
    page = qc_page(rows, title=f"medconv QC: {len(paths)} inputs")
    mio.write_bytes_atomic(index, page.encode("utf-8"), force=True)
    batch.finish(failures, len(items))
    return rows
