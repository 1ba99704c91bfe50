"""Diffusion gradients of a DICOM series: one b-value and one direction per output volume.

Sources, in this order for each volume (the first that answers wins):

1. the standard MR Diffusion Sequence (0018,9117) of the frame's per-frame (then shared)
   functional group item in enhanced files, or the same attributes at the top level of classic
   files: Diffusion b-value (0018,9087) and Diffusion Gradient Orientation (0018,9089), patient
   (LPS) axes;
2. Siemens: (0019,100C) B_value / (0019,100E) DiffusionGradientDirection, else the CSA image
   header's ``B_value`` / ``DiffusionGradientDirection`` (patient axes);
3. GE: b-value first in (0043,1039) (minus the 10^9 bias multi-b series add), direction in
   (0019,10BB/BC/BD) along the frequency, phase and slice axes of the image;
4. Philips: (2001,1003) b-value, (2005,10B0/B1/B2) direction (patient axes);
5. UIH: (0065,1009) b-value, (0065,1037) direction along the image's row, column and normal;
6. Canon: ``b=B(x,y,z)`` in Image Comments (0020,4000), components along the image's phase,
   frequency and (negated) slice axes.

A classic file with the standard b-value but no standard direction gets the vendor's direction.

Directions are kept in patient (DICOM LPS) axes; :func:`fsl_bvecs` turns them into the FSL
convention (voxel axes of the written image, x negated when the affine's determinant is
positive), so a reoriented or flipped output still gets the right vectors.
"""
from __future__ import annotations

import math
import re
import sys

import numpy as np

#: b-values up to this are b=0 volumes (no diffusion weighting); their vector is zero
B0_MAX = 0.0
#: series with more volumes than this are sampled first (see volume_entries)
SAMPLE_ABOVE = 8
#: GE adds this to the b-value of (0043,1039) in multi-b and synthetic series
GE_BIAS = 1_000_000_000
#: read a light (fast-path) header's values from the light view itself; False: always from the full
#: pydicom Dataset (the two give the same values: the tests compare them)
LIGHT_VIEW = True


def is_light(ds) -> bool:
    """Whether `ds` is a light header whose own view answers (see light.HeaderView.value)."""
    return LIGHT_VIEW and ds is not None and getattr(ds, "is_light", False)


# -- small readers (never raise) --------------------------------------------------------
def full(ds):
    """The pydicom Dataset behind a frame's data set (a light one reads the file once)."""
    if ds is not None and getattr(ds, "is_light", False):
        try:
            return ds.dataset()
        except Exception:
            return None
    return ds


def element_value(ds, tag):
    if is_light(ds):
        v = ds.value(tag)  # light.NeedsFull when the light view does not keep it
        return None if v is None or v == "" else v
    try:
        el = ds.get(tag) if ds is not None else None
    except Exception:
        return None
    if el is None:
        return None
    v = getattr(el, "value", el)
    return None if v is None or v == "" else v


def _floats(v, n=None):
    if v is None:
        return None
    try:
        if isinstance(v, (bytes, bytearray)):
            v = v.decode("latin-1")
        if isinstance(v, str):
            v = [x for x in v.replace("\\", " ").split() if x]
        elif not hasattr(v, "__len__"):
            v = [v]
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) < n:
        return None
    if not all(math.isfinite(x) for x in out):
        return None
    return out[:n] if n else out


def _float(v):
    out = _floats(v)
    return out[0] if out else None


def private(ds, group: int, creator: str, element: int):
    """Value of private element (group, xxEE) in the block reserved by `creator` (case and
    spaces ignored); the conventional block 0x10 when no creator names one."""
    if ds is None:
        return None
    if is_light(ds):
        return ds.private(group, creator, element)  # light.NeedsFull when it cannot tell
    want = creator.strip().upper()
    for block in _creator_blocks(ds, group):
        name = element_value(ds, (group << 16) | block)
        if name is None:
            continue
        if str(name).strip().upper() == want:
            return element_value(ds, (group << 16) | (block << 8) | (element & 0xFF))
    # no creator reserved a block (some exports drop them): the usual place
    if element_value(ds, (group << 16) | 0x10) is None:
        return element_value(ds, (group << 16) | 0x1000 | (element & 0xFF))
    return None


def _creator_blocks(ds, group: int):
    """The private creator blocks (0x10-0xFF) of `group` worth asking `ds` for, in ascending order:
    those a pydicom Dataset holds (asking it for an absent tag finds nothing), else all of them."""
    dataset = sys.modules.get("pydicom.dataset")
    if dataset is not None and isinstance(ds, dataset.Dataset):
        lo, hi = (group << 16) | 0x10, (group << 16) | 0xFF
        try:
            return sorted({tag & 0xFF for tag in map(int, ds._dict) if lo <= tag <= hi})
        except Exception:
            pass
    return range(0x10, 0x100)


def csa_header(ds, kind="image"):
    """The Siemens CSA header `kind` ("image" (0029,xx10) or "series" (0029,xx20)) of a data set,
    parsed (see csa.read), or None; a light data set raises light.NeedsFull when it cannot tell."""
    from . import csa

    return csa.parse(private(ds, 0x0029, "SIEMENS CSA HEADER", 0x10 if kind == "image" else 0x20))


def first_item(seq):
    try:
        return seq[0] if seq else None
    except Exception:
        return None


def frame_groups(ds, index):
    """(per-frame item, shared item) of frame `index` of an enhanced file (None when absent)."""
    if index is None or ds is None:
        return None, None
    if is_light(ds):
        pf = ds.value("PerFrameFunctionalGroupsSequence")
        return (pf[index] if pf is not None and index < len(pf) else None,
                first_item(ds.value("SharedFunctionalGroupsSequence")))
    per = None
    try:
        pf = ds.get("PerFrameFunctionalGroupsSequence")
        per = pf[index] if pf is not None and index < len(pf) else None
    except Exception:
        per = None
    try:
        shared = first_item(ds.get("SharedFunctionalGroupsSequence"))
    except Exception:
        shared = None
    return per, shared


def _vendor(ds) -> str:
    name = str(element_value(ds, "Manufacturer") or "").upper()
    for key, short in (("SIEMENS", "siemens"), ("GE ", "ge"), ("GE_", "ge"), ("GEMS", "ge"),
                       ("PHILIPS", "philips"), ("UIH", "uih"), ("UNITED IMAGING", "uih"),
                       ("CANON", "canon"), ("TOSHIBA", "canon")):
        if name.startswith(key) or name == key.strip():
            return short
    return name.lower()


# -- one volume -------------------------------------------------------------------------
class Entry:
    """The diffusion state of one volume: b-value, unit direction in LPS (or None), derived."""

    __slots__ = ("b", "derived", "vector")

    def __init__(self, b, vector=None, derived=False):
        self.b = float(b)
        self.vector = None if vector is None else np.asarray(vector, dtype=float)
        self.derived = derived

    def __repr__(self):
        return f"Entry(b={self.b:g}, vector={None if self.vector is None else list(self.vector)}, derived={self.derived})"


def _standard(item):
    """(b, vector, directionality) from an item holding the MR Diffusion Macro."""
    if item is None:
        return None
    diff = first_item(element_value(item, "MRDiffusionSequence"))
    src = diff if diff is not None else item
    b = _float(element_value(src, "DiffusionBValue"))
    if b is None:
        return None
    direction = str(element_value(src, "DiffusionDirectionality") or "").strip().upper()
    vec = None
    grad = first_item(element_value(src, "DiffusionGradientDirectionSequence"))
    for holder in (grad, src):
        if holder is not None and vec is None:
            vec = _floats(element_value(holder, "DiffusionGradientOrientation"), 3)
    return b, vec, direction


def _image_axes(ds, per=None, shared=None):
    """(row, column, normal) unit vectors (LPS) of the image plane, or None."""
    iop = None
    for group in (per, shared):
        if group is not None and iop is None:
            iop = _floats(element_value(first_item(element_value(group, "PlaneOrientationSequence")), "ImageOrientationPatient"), 6)
    if iop is None:
        iop = _floats(element_value(ds, "ImageOrientationPatient"), 6)
    if iop is None:
        return None
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 1e-6:
        return None
    return row, col, normal / np.linalg.norm(normal)


def _siemens(ds):
    b = _float(private(ds, 0x0019, "SIEMENS MR HEADER", 0x0C))
    vec = _floats(private(ds, 0x0019, "SIEMENS MR HEADER", 0x0E), 3)
    if b is None:
        from . import csa as siemens_csa

        try:
            image = csa_header(ds, "image")
            if image:
                b = siemens_csa.scalar(image, "B_value")
                vec = siemens_csa.vector(image, "DiffusionGradientDirection", 3)
                if vec is None and siemens_csa.scalar(image, "DiffusionGradientDirection") is not None:
                    return None  # a direction that is not 3 numbers: no diffusion entry
        except Exception:
            return None
    if b is None:
        return None
    return float(b), vec


def logical_axes(row, col, pe):
    """(frequency, phase) axes in patient space: along the rows and columns for COL phase encoding;
    for ROW the same frame turned by 90 degrees in plane (handedness kept, so the slice axis stays)."""
    if pe == "ROW":
        return -col, row
    return row, col


def _ge(ds, axes):
    raw = _floats(private(ds, 0x0043, "GEMS_PARM_01", 0x39))
    if not raw:
        return None
    b = raw[0]
    bias = _float(private(ds, 0x0043, "GEMS_PARM_01", 0x7F))
    if b >= GE_BIAS:
        b -= bias if bias and bias > 0 and bias <= b else GE_BIAS
    comps = [_float(private(ds, 0x0019, "GEMS_ACQU_01", e)) for e in (0xBB, 0xBC, 0xBD)]
    vec = None
    if all(c is not None for c in comps) and axes is not None:
        freq, phase, sl = comps
        row, col, normal = axes
        pe = str(element_value(ds, "InPlanePhaseEncodingDirection") or "COL").strip().upper()
        f_axis, p_axis = logical_axes(row, col, pe)
        # GE reports the slice component against the normal of its own right-handed frame
        vec = list(freq * f_axis + phase * p_axis - sl * normal)
    return b, vec


def _philips(ds):
    b = _float(private(ds, 0x2001, "Philips Imaging DD 001", 0x03))
    if b is None:
        return None
    comps = [_float(private(ds, 0x2005, "Philips MR Imaging DD 001", e)) for e in (0xB0, 0xB1, 0xB2)]
    vec = comps if all(c is not None for c in comps) else None
    label = str(private(ds, 0x2001, "Philips Imaging DD 001", 0x04) or "").strip().upper()
    return b, vec, label == "I"


def _uih(ds, axes):
    b = _float(private(ds, 0x0065, "Image Private Header", 0x09))
    if b is None:
        return None
    comps = _floats(private(ds, 0x0065, "Image Private Header", 0x37), 3)
    vec = None
    if comps is not None and axes is not None:
        row, col, normal = axes
        vec = list(comps[0] * row + comps[1] * col + comps[2] * normal)
    return b, vec


_CANON = re.compile(r"b\s*=\s*([-+0-9.eE]+)\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)")


def _canon(ds, axes):
    """Canon's `b=B(x,y,z)` comment: components along the image's logical axes, stored in the order
    (phase, frequency, -slice) as dcm2niix validated on Canon's data."""
    text = str(element_value(ds, "ImageComments") or "")
    m = _CANON.search(text)
    if not m:
        return None
    try:
        b, x, y, z = (float(v) for v in m.groups())
    except ValueError:
        return None
    if axes is None:
        return b, None
    row, col, normal = axes
    pe = str(element_value(ds, "InPlanePhaseEncodingDirection") or "COL").strip().upper()
    f_axis, p_axis = logical_axes(row, col, pe)
    return b, list(y * f_axis + x * p_axis - z * normal)


def _is_derived_type(ds, per=None) -> bool:
    """ADC/trace/isotropic images by their (frame) image type."""
    kinds = []
    for holder in (first_item(element_value(per, "MRImageFrameTypeSequence")) if per is not None else None, ds):
        t = element_value(holder, "FrameType") if holder is not None and holder is not ds else element_value(ds, "ImageType")
        if t:
            kinds += [str(v).strip().upper() for v in (t.split("\\") if isinstance(t, str) else t)]
    return any(k in ("ADC", "TRACEW", "TRACE", "ISOTROPIC", "EADC", "FA") for k in kinds)


def frame_entry(ds, index=None):
    """The diffusion Entry of one frame (of a classic file, or frame `index` of an enhanced
    file), or None when it carries no diffusion information."""
    if is_light(ds):
        from .header_view import NeedsFull

        try:
            return _frame_entry(ds, index)
        except NeedsFull:
            pass  # an element the light view does not keep: the full header answers
    ds = full(ds)
    return None if ds is None else _frame_entry(ds, index)


def _frame_entry(ds, index):
    per, shared = frame_groups(ds, index)
    vendor = _vendor(ds)
    got = None
    for group in (per, shared):
        if got is None and group is not None:
            got = _standard(group)
    if got is None:
        got = _standard(ds)
    derived = _is_derived_type(ds, per) if vendor == "philips" else False
    axes = _image_axes(ds, per, shared)
    if got is not None:
        b, vec, direction = got
        if vec is None and b > B0_MAX and index is None:
            vec = _vendor_vector(ds, vendor, axes)  # classic files: the standard b-value, the direction privately
        if direction == "ISOTROPIC" and vendor == "philips":
            derived = True
        if b > B0_MAX or vec is not None or direction in ("DIRECTIONAL", "ISOTROPIC", "BMATRIX"):
            if vendor == "philips" and b > B0_MAX and (vec is None or not np.any(vec)):
                derived = True
            return Entry(b, vec, derived)
    if vendor == "siemens":
        s = _siemens(ds)
        if s is not None:
            return Entry(s[0], s[1])
    elif vendor == "ge":
        g = _ge(ds, axes)
        if g is not None:
            return Entry(g[0], g[1])
    elif vendor == "philips":
        p = _philips(ds)
        if p is not None:
            b, vec, iso = p
            derived = derived or iso or (b > B0_MAX and (vec is None or not np.any(vec)))
            return Entry(b, vec, derived)
    elif vendor == "uih":
        u = _uih(ds, axes)
        if u is not None:
            return Entry(u[0], u[1])
    elif vendor == "canon":
        c = _canon(ds, axes)
        if c is not None:
            return Entry(c[0], c[1])
    if got is not None:  # the standard b-value alone (b = 0 everywhere, so far)
        return Entry(got[0], got[1])
    return None


def _vendor_vector(ds, vendor, axes):
    """The direction a vendor keeps privately, for a file whose b-value is in the standard element."""
    found = None
    if vendor == "siemens":
        found = _siemens(ds)
    elif vendor == "ge":
        found = _ge(ds, axes)
    elif vendor == "philips":
        found = _philips(ds)
    elif vendor == "uih":
        found = _uih(ds, axes)
    elif vendor == "canon":
        found = _canon(ds, axes)
    return None if found is None else found[1]


# -- a series ---------------------------------------------------------------------------
def volume_entries(by_t=None, datasets=None):
    """One Entry per volume: from the first frame of each volume of `by_t` (a list over volumes of
    lists over slices of Frames), or from one data set per volume (mosaics); [None] when no volume
    shows diffusion weighting.

    A few volumes spread over the series are read first: a series none of them weights (an fMRI run
    whose vendor keeps b=0 in every file) stops there, before every file's full header is read. In a
    diffusion series, a volume without diffusion information is a b=0 volume (older Canon systems
    omit the b-value of b=0 images)."""
    if datasets is not None:
        sources = [(ds, None) for ds in datasets]
    else:
        sources = []
        for row in by_t or []:
            f = next((f for f in row if f is not None), None)
            sources.append((None, None) if f is None else (f.ds, f.index))
    n = len(sources)
    if n == 0:
        return [None]
    cache = {}

    def entry(t):
        if t not in cache:
            ds, index = sources[t]
            cache[t] = None if ds is None else frame_entry(ds, index)
        return cache[t]

    picks = sorted({0, 1, n // 4, n // 2, 3 * n // 4, n - 1} & set(range(n)))
    seen = any(_weighted(entry(t)) for t in picks)
    if not seen and (n > SAMPLE_ABOVE or not any(_weighted(entry(t)) for t in range(n))):
        return [None]
    return [entry(t) or Entry(0.0) for t in range(n)]


def _weighted(e) -> bool:
    return e is not None and (e.b > B0_MAX or (e.vector is not None and bool(np.any(e.vector))))


def table(entries):
    """{'bvals': [...], 'vectors': [[x, y, z] LPS...], 'derived': [bool...]} of a diffusion series,
    or None when no volume is diffusion-weighted (b > 0 somewhere)."""
    if not entries or any(e is None for e in entries):
        return None  # [None]: no diffusion series
    if not any(e.b > B0_MAX for e in entries):
        return None
    bvals, vectors = [], []
    for e in entries:
        v = e.vector
        if e.b <= B0_MAX or v is None or not np.any(v):
            v = np.zeros(3)
        else:
            n = float(np.linalg.norm(v))
            v = v / n if n > 0 else np.zeros(3)
        bvals.append(max(e.b, 0.0))
        vectors.append([float(x) for x in v])
    return {"bvals": bvals, "vectors": vectors, "derived": [bool(e.derived) for e in entries]}


def from_frames(by_t=None, datasets=None):
    """The gradient table of one output (see :func:`table`), never raising."""
    try:
        return table(volume_entries(by_t=by_t, datasets=datasets))
    except Exception:  # odd private data: no gradients rather than no image
        return None


# -- FSL files --------------------------------------------------------------------------
def fsl_bvecs(vectors, affine) -> np.ndarray:
    """3 x N FSL b-vectors for LPS unit `vectors` and the RAS voxel-to-world `affine` of the
    image they go with: components along the voxel axes, x negated when det(affine) > 0."""
    m = np.asarray(affine, dtype=float)[:3, :3]
    g = np.asarray(vectors, dtype=float).reshape(-1, 3).T  # 3 x N, LPS
    ras = g * np.array([[-1.0], [-1.0], [1.0]])
    axes = m / np.linalg.norm(m, axis=0)
    v = np.linalg.solve(axes, ras) if abs(np.linalg.det(axes)) > 1e-9 else axes.T @ ras
    if np.linalg.det(m) > 0:
        v[0] = -v[0]
    norms = np.linalg.norm(v, axis=0)
    nz = norms > 1e-12
    v[:, nz] /= norms[nz]
    v[np.abs(v) < 5e-7] = 0.0
    return v


def _num(v: float) -> str:
    text = format(float(v), ".6g")
    return "0" if text in ("-0", "0") else text


def fsl_text(diffusion, affine) -> tuple:
    """(bval text, bvec text) in dcm2niix's layout: one line of b-values, three lines of vectors."""
    bvals = " ".join(_num(b) for b in diffusion["bvals"]) + "\n"
    v = fsl_bvecs(diffusion["vectors"], affine)
    bvecs = "".join(" ".join(_num(x) for x in row) + "\n" for row in v)
    return bvals, bvecs


def fsl_paths(dst: str) -> tuple:
    """brain.nii.gz -> (brain.bval, brain.bvec)."""
    from ..formats import GZ_EXTENSIONS

    low = dst.lower()
    for ext in GZ_EXTENSIONS:  # a two-part extension whole; any other after its last dot
        if low.endswith(ext):
            base = dst[: -len(ext)]
            break
    else:
        base = dst.rsplit(".", 1)[0] if "." in dst.rsplit("/", 1)[-1] else dst
    return base + ".bval", base + ".bvec"


def write_fsl(volume, dst: str, force: bool = False) -> list:
    """Write DST's .bval/.bvec for a diffusion volume (atomically); the files written."""
    from .. import fileio

    diffusion = volume.metadata.get("diffusion")
    if not diffusion or len(diffusion["bvals"]) != volume.n_volumes:
        return []
    bval, bvec = fsl_text(diffusion, volume.affine)
    paths = list(fsl_paths(dst))
    with fileio.atomic_outputs(paths, force=force) as temps:
        for tmp, text in zip(temps, (bval, bvec)):
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(text)
    return paths


def summary(diffusion) -> dict:
    """`info` fields of a diffusion series: b-values and the number of distinct directions."""
    dirs = set()
    for b, v in zip(diffusion["bvals"], diffusion["vectors"]):
        if b > B0_MAX and any(v):
            key = tuple(round(x, 3) for x in v)
            neg = tuple(round(-x, 3) + 0.0 for x in v)
            if neg not in dirs:
                dirs.add(key)
    return {"n_diffusion_directions": len(dirs), "b_values": [float(format(b, ".6g")) for b in diffusion["bvals"]]}


def drop_derived(by_t, diffusion):
    """(volumes, table) without the derived volumes (isotropic/trace/ADC) a Philips scanner appends
    to a diffusion series; both unchanged when there are none (or nothing else would be left)."""
    if not diffusion or not any(diffusion["derived"]):
        return by_t, diffusion
    keep = [t for t, d in enumerate(diffusion["derived"]) if not d]
    if not keep:
        return by_t, diffusion
    table_kept = {k: [diffusion[k][t] for t in keep] for k in ("bvals", "vectors", "derived")}
    if not any(b > B0_MAX for b in table_kept["bvals"]):
        return [by_t[t] for t in keep], None
    return [by_t[t] for t in keep], table_kept


def from_dwmri(pairs: dict, hdr: dict, n_volumes: int):
    """The gradient table of a DWI NRRD (3D Slicer's keys), in patient LPS axes, or None.

    Each `DWMRI_gradient_NNNN` is in the measurement frame (its columns map it into the NRRD space);
    b = DWMRI_b-value x |g|^2; `DWMRI_NEX_NNNN` repeats a gradient."""
    try:
        if str(pairs.get("modality", "")).strip().upper() != "DWMRI":
            return None
        bmax = float(pairs["DWMRI_b-value"])
        frame = np.eye(3)
        mf = hdr.get("measurement frame")
        if mf:
            frame = np.array([[float(x) for x in col] for col in mf], dtype=float).T  # vectors are its columns
        space = str(hdr.get("space", "")).strip().lower()
        to_lps = np.diag([-1.0, -1.0, 1.0]) if space.startswith(("right-anterior-superior", "ras")) else np.eye(3)
        grads = []
        n = 0
        while f"DWMRI_gradient_{n:04d}" in pairs:
            g = [float(x) for x in pairs[f"DWMRI_gradient_{n:04d}"].split()]
            repeat = int(pairs.get(f"DWMRI_NEX_{n:04d}", 1))
            grads += [np.asarray(g[:3], dtype=float)] * max(repeat, 1)
            n += 1
    except (KeyError, TypeError, ValueError):
        return None
    if len(grads) != n_volumes or not grads:
        return None
    entries = []
    for g in grads:
        norm2 = float(g @ g)
        entries.append(Entry(bmax * norm2, to_lps @ frame @ g if norm2 > 0 else None))
    return table(entries)
