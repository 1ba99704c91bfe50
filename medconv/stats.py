"""Streaming statistics of real voxel values (slope/intercept applied), with masks, labels, 4D.

The voxel array is visited in slabs along the third axis, so a memory-mapped volume
(uncompressed NIfTI) never needs a float copy of itself. Real values of scaled integers are
computed in float64 (stored * slope + intercept); scaled floats use Volume.real.

* count, nan, min, max, sum, mean, std (population, ddof=0), nonzero and the volumes are
  streamed: per-slab float64 sums combined with Chan's parallel algorithm.
* median and percentiles are exact, with numpy's default 'linear' definition
  (numpy.percentile(values, q)). Integer data is counted (a histogram of stored values,
  bounded by the value range: 2**bits bins for 8/16-bit types, at most 2**24 bins
  otherwise); everything else keeps the selected finite values in memory (one copy in
  the real dtype) and selects the order statistics with numpy's partition.

NaN and infinite voxels are counted in `nan` and excluded from everything else.
Complex values are summarised by their magnitude.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import geometry
from .errors import InputError, UsageError

DEFAULT_PERCENTILES = (2.0, 98.0)
SLAB_VOXELS = 1 << 21  # ~2 M voxels per slab: a float64 temporary of 16 MiB at most
MAX_BINS = 1 << 24  # largest value range counted with a histogram (int32/int64 data)
RELEASE_BYTES = 1 << 28  # memory maps larger than this give visited pages back (see release_pages)
MAX_LABEL_BINS = 1 << 16  # label ranges up to this use direct indexing, larger ones np.unique
CHANNEL_NAMES = {"rgb": "rgb", "rgba": "rgba"}
GRID_TOL_MM = 1e-3

FIELDS = ("path", "volume", "channel", "count", "nan", "min", "max", "mean", "std", "median")
TAIL_FIELDS = ("nonzero", "sum", "volume_mm3", "volume_ml")
LABEL_FIELDS = ("path", "volume", "channel", "label", "name", "voxels", "nan", "volume_mm3", "volume_ml",
                "mean", "std", "min", "max", "centroid")


def percentile_key(q: float) -> str:
    """JSON key of a percentile: 2 -> "p2", 97.5 -> "p97.5"."""
    return "p" + (str(int(q)) if float(q).is_integer() else repr(float(q)))


def parse_percentiles(values) -> tuple:
    """Percentiles from option strings ("2", "2 98", "2,98"); each must be in [0, 100]."""
    out = []
    for text in values:
        for token in str(text).replace(",", " ").split():
            try:
                q = float(token)
            except ValueError:
                raise UsageError(f"--percentile: {token!r} is not a number") from None
            if not (0.0 <= q <= 100.0):
                raise UsageError(f"--percentile: {token} is outside 0..100")
            out.append(q)
    return tuple(dict.fromkeys(out))


# -- slabs ---------------------------------------------------------------------------------

def grid4(volume) -> np.ndarray:
    """The stored array as [i, j, k, t(, c)] (2D images get k=1, extra time axes are merged)."""
    arr = volume.array
    ch = volume.value_kind in CHANNEL_NAMES
    grid = arr.shape[:-1] if ch else arr.shape
    tail = arr.shape[-1:] if ch else ()
    if len(grid) == 4:
        return arr
    if len(grid) < 4:
        grid = tuple(grid) + (1,) * (4 - len(grid))
        return arr.reshape(grid + tail)
    order = "F" if arr.flags.f_contiguous else "C"
    return arr.reshape(tuple(grid[:3]) + (int(np.prod(grid[3:])),) + tail, order=order)


def _slab_ranges(shape, slab_voxels):
    plane = max(int(shape[0]) * int(shape[1]), 1)
    step = max(1, int(slab_voxels) // plane)
    for k0 in range(0, int(shape[2]), step):
        yield k0, min(int(shape[2]), k0 + step)


def release_pages(arr) -> None:
    """Ask the kernel to reclaim the pages of a memory-mapped slab already visited, so resident
    memory stays bounded. MADV_PAGEOUT never loses data (unlike MADV_DONTNEED on a copy-on-write
    map): clean pages are dropped, modified ones stay. Maps under RELEASE_BYTES are left alone:
    their pages are cheap, and dropping them from the page cache slows the next reader."""
    import mmap
    import sys

    # Python does not name MADV_PAGEOUT (Linux 5.4+, value 21); older kernels refuse it harmlessly
    advice = getattr(mmap, "MADV_PAGEOUT", 21 if sys.platform.startswith("linux") else None)
    base = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "_mmap", None) or getattr(base, "base", None)
    if base is None or advice is None or not arr.size or len(base) < RELEASE_BYTES:
        return
    try:
        start = np.frombuffer(base, dtype=np.uint8).ctypes.data
        lo, hi = np.lib.array_utils.byte_bounds(arr)
        page = mmap.PAGESIZE
        first = (lo - start) // page * page
        if 0 <= first < hi - start:
            base.madvise(advice, first, hi - start - first)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def real_values(volume, slab: np.ndarray) -> np.ndarray:
    """Real values of a slab of stored values: slope/intercept applied, complex -> magnitude.

    Scaled values are computed in float64 (stored * slope + intercept), so Hounsfield units such as
    570.68, or scaled float32 data, are not rounded to float32 on the way (as nibabel's get_fdata).
    """
    if slab.dtype.kind == "c":
        slab = np.abs(slab)
    if volume.scaling is None:
        return slab
    if slab.dtype.kind in "iuf":
        slope, inter = volume.scaling
        out = slab.astype(np.float64)
        if slope != 1.0:
            out *= slope
        if inter != 0.0:
            out += inter
        return out
    return volume.real(slab)


def _mask_grid(mask) -> np.ndarray:
    """The mask as [i, j, k, t]: its stored values when they are its real values (memory-mapped
    where possible), else a boolean array of its non-zero real values (slope/intercept applied)."""
    if mask.scaling is None:
        return grid4(mask)
    real = np.asarray(mask.real())
    return grid4(mask.replace(data=(real != 0) & ~np.isnan(real) if real.dtype.kind == "f" else real != 0,
                               scaling=None))


def _mask_slab(mask4, k0, k1):
    if mask4 is None:
        return None
    m = np.asarray(mask4[:, :, k0:k1, 0])
    sel = m != 0
    if m.dtype.kind in "fc":
        sel &= ~np.isnan(m)
    return sel


# -- one selection of values: streaming moments plus exact order statistics ---------------------

class _Moments:
    """count/min/max/sum/mean/M2 of finite values, combined slab by slab (Chan et al.)."""

    def __init__(self):
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.total = 0.0
        self.lo = None
        self.hi = None
        self.nonzero = 0
        self.nan = 0

    def add(self, vals: np.ndarray) -> None:
        n = int(vals.size)
        if not n:
            return
        s = float(np.sum(vals, dtype=np.float64))
        m = s / n
        d = vals.astype(np.float64, copy=False) - m
        m2 = float(np.dot(d, d))
        delta = m - self.mean
        tot = self.n + n
        self.mean += delta * n / tot
        self.m2 += m2 + delta * delta * self.n * n / tot
        self.n = tot
        self.total += s
        lo, hi = vals.min(), vals.max()
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        self.nonzero += int(np.count_nonzero(vals))


def _lerp(a, b, g: float):
    """numpy's linear interpolation between two order statistics (same operations, same result).

    Integers are interpolated in float64 (as numpy.percentile computes on float64 values): in the
    stored dtype, b - a can overflow (int32 spanning [-2e9, 2e9]) and land outside [min, max]."""
    if np.asarray(a).dtype.kind in "iub":
        a, b = np.float64(a), np.float64(b)
    diff = b - a
    return b - diff * (1 - g) if g >= 0.5 else a + diff * g


def _order_positions(n: int, qs):
    """(lower index, upper index, fraction) of each percentile q, as numpy.percentile computes them."""
    out = []
    for q in qs:
        virtual = (n - 1) * (float(q) / 100.0)
        lo = math.floor(virtual)
        lo = min(max(lo, 0), n - 1)
        hi = min(lo + 1, n - 1)
        out.append((lo, hi, virtual - math.floor(virtual)))
    return out


def _py(value):
    if value is None:
        return None
    if isinstance(value, (np.integer, int)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


class _Counter:
    """Histogram of stored integer values (bin 0 holds the value `offset`)."""

    def __init__(self, offset: int, nbins: int, dtype=None):
        self.offset = offset
        self.raw = np.zeros(nbins, dtype=np.int64)
        # 8/16-bit signed data is counted through its unsigned view (no offset pass over the
        # voxels); the two halves of the histogram are swapped back at the end
        dt = np.dtype(dtype) if dtype is not None else None
        self.unsigned = (np.dtype(f"u{dt.itemsize}") if dt is not None and dt.kind == "i" and dt.itemsize <= 2
                         and nbins == 1 << (8 * dt.itemsize) else None)

    def add(self, stored: np.ndarray) -> None:
        if not stored.size:
            return
        if self.unsigned is not None:
            idx = stored.view(self.unsigned)
        elif stored.dtype.kind == "u" and not self.offset:
            idx = stored
        else:
            idx = stored.astype(np.intp)
            idx -= self.offset
        self.raw += np.bincount(idx.ravel(order="K"), minlength=self.raw.size)

    @property
    def counts(self) -> np.ndarray:
        if self.unsigned is None:
            return self.raw
        return np.roll(self.raw, self.raw.size // 2)


class Accumulator:
    """Statistics of one selection (an input, a volume, a channel), fed slab by slab."""

    def __init__(self, volume, qs, exact: bool, int_range=None, capacity: int = 0):
        self.volume = volume
        self.qs = tuple(qs)
        self.exact = exact
        self.moments = _Moments()
        # kept values go straight into one buffer: np.empty pages cost memory only once written,
        # so sizing it for every voxel of the selection region is free when a mask selects few
        self.capacity = int(capacity)
        self.kept = None
        self.filled = 0
        self.counter = None
        if int_range is not None:
            self.counter = _Counter(int_range[0], int_range[1] - int_range[0] + 1, volume.dtype)

    def add(self, stored: np.ndarray, sel) -> None:
        if self.counter is not None:  # integer data: the histogram says everything
            self.counter.add(stored if sel is None else stored[sel])
            return
        vals = real_values(self.volume, stored)
        vals = vals.ravel(order="K") if sel is None else vals[sel]
        if vals.dtype.kind == "f":
            finite = np.isfinite(vals)
            if not finite.all():
                self.moments.nan += int(vals.size - np.count_nonzero(finite))
                vals = vals[finite]
        self.moments.add(vals)
        if self.exact and vals.size:
            if self.kept is None:
                self.kept = np.empty(max(self.capacity, vals.size), dtype=vals.dtype)
            if self.filled + vals.size > self.kept.size:  # only when no capacity hint was given
                self.kept = np.concatenate([self.kept[:self.filled], np.empty(vals.size, vals.dtype)])
            self.kept[self.filled:self.filled + vals.size] = vals
            self.filled += vals.size

    def result(self, voxel_mm3: float) -> dict:
        if self.counter is not None:
            return self._from_counts(voxel_mm3)
        mo = self.moments
        rec = {"count": mo.n, "nan": mo.nan, "min": _py(mo.lo), "max": _py(mo.hi)}
        if mo.n:
            rec["mean"] = mo.total / mo.n
            rec["std"] = math.sqrt(max(mo.m2, 0.0) / mo.n)
        else:
            rec["mean"] = rec["std"] = None
        if self.exact:
            vals = self.kept[:self.filled] if self.kept is not None else np.zeros(0)
            self.kept = None
            qs = (50.0,) + self.qs
            if vals.size:
                # one partition serves every order statistic; the interpolation is numpy's own
                places = _order_positions(vals.size, qs)
                vals.partition(sorted({i for lo, hi, _ in places for i in (lo, hi)}))
                got = [_lerp(vals[lo], vals[hi], g) for lo, hi, g in places]
            else:
                got = [None] * len(qs)
            rec["median"] = _py(got[0])
            for q, v in zip(self.qs, got[1:]):
                rec[percentile_key(q)] = _py(v)
        self._tail(rec, mo.nonzero, mo.total if mo.n else 0.0, voxel_mm3)
        return rec

    def _from_counts(self, voxel_mm3: float) -> dict:
        counts = self.counter.counts
        present = np.flatnonzero(counts)
        n = int(counts.sum())
        rec = {"count": n, "nan": 0}
        if not n:
            rec.update(min=None, max=None, mean=None, std=None)
            if self.exact:
                rec["median"] = None
                rec.update({percentile_key(q): None for q in self.qs})
            self._tail(rec, 0, 0.0, voxel_mm3)
            return rec
        c = counts[present]
        stored = (present + self.counter.offset).astype(self.volume.dtype)
        del present
        real = real_values(self.volume, stored)
        del stored
        # slope/intercept is monotonic: the bins stay sorted, reversed by a negative slope
        if self.volume.scaling is not None and self.volume.scaling[0] < 0:
            real, c = real[::-1], c[::-1]
        if real.dtype.kind in "iu":  # exact integer sums
            r_int = real.astype(np.int64)
            total = int(np.dot(r_int, c)) if int(np.abs(r_int).max()) * n < 2**62 \
                else float(np.dot(real.astype(np.float64), c))
            del r_int
        else:
            total = float(np.dot(real.astype(np.float64), c))
        mean = total / n
        d = real.astype(np.float64)
        d -= mean
        d *= d
        rec.update(min=_py(real[0]), max=_py(real[-1]), mean=float(mean), std=math.sqrt(float(np.dot(d, c)) / n))
        del d
        if self.exact:
            cum = np.cumsum(c)

            def nth(r):
                return real[int(np.searchsorted(cum, r, side="right"))]

            def pct(q):
                (lo, hi, g), = _order_positions(n, [q])
                return _lerp(nth(lo), nth(hi), g)

            rec["median"] = _py(pct(50.0))
            for q in self.qs:
                rec[percentile_key(q)] = _py(pct(q))
        nonzero = int(c[real != 0].sum())
        self._tail(rec, nonzero, total, voxel_mm3)
        return rec

    @staticmethod
    def _tail(rec, nonzero, total, voxel_mm3):
        rec["nonzero"] = nonzero
        rec["sum"] = total if isinstance(total, int) else float(total)
        rec["volume_mm3"] = nonzero * voxel_mm3
        rec["volume_ml"] = nonzero * voxel_mm3 / 1000.0


def _int_range(volume, arr4, mask4, slab_voxels):
    """(lo, hi) of stored integer values for a histogram, or None when counting does not fit."""
    dt = volume.dtype
    if dt.kind not in "iu" or volume.value_kind in ("complex",):
        return None
    if dt.itemsize <= 2:
        info = np.iinfo(dt)
        return int(info.min), int(info.max)
    lo = hi = None
    for k0, k1 in _slab_ranges(arr4.shape, slab_voxels):
        slab = arr4[:, :, k0:k1]
        if slab.size:
            a, b = int(slab.min()), int(slab.max())
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        release_pages(slab)
    if lo is None:
        return (0, 0)
    if hi - lo + 1 > MAX_BINS or hi > np.iinfo(np.int64).max:
        return None  # too wide to count, or uint64 beyond int64: the values are sorted instead
    return lo, hi


def voxel_volume_mm3(volume) -> float:
    """Volume of one voxel in mm^3 (|det| of the affine's 3x3 part)."""
    return float(abs(np.linalg.det(np.asarray(volume.affine, dtype=float)[:3, :3])))


# -- grids ---------------------------------------------------------------------------------

def _grid_text(volume) -> str:
    sp = "x".join(format(float(s), ".6g") for s in geometry.voxel_sizes(volume.affine)[:3])
    org = ",".join(format(float(v), ".6g") for v in volume.affine[:3, 3])
    shape = "x".join(str(n) for n in volume.spatial_shape)
    return f"{shape} voxels of {sp} mm at ({org}) {geometry.axcodes(volume.affine)}"


def check_same_grid(image, other, role: str, other_path=None) -> None:
    """Raise InputError (exit 3) unless `other` (mask or labels) lies on the image's grid."""
    same = tuple(image.spatial_shape) == tuple(other.spatial_shape)
    apart = ""
    if same:
        dist = geometry.world_distance(image.affine, other.affine, image.spatial_shape)
        same = dist <= GRID_TOL_MM
        apart = f" (voxel positions differ by up to {dist:.4g} mm)"
    if not same:
        raise InputError(f"{role} grid differs from the image grid{apart}: image {_grid_text(image)}; "
                         f"{role} {other_path or other.path} {_grid_text(other)}", image.path)
    if other.n_volumes != 1 or other.value_kind in CHANNEL_NAMES:
        raise InputError(f"a {role} must be a single 3D volume (it has {other.n_volumes} volumes)",
                         other_path or other.path)


# -- label names ---------------------------------------------------------------------------

def read_label_names(path) -> dict:
    """{label: name} from an ITK-SNAP label description file or a FreeSurferColorLUT-style table."""
    import shlex

    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:  # a BOM (Windows editors) is no text
            lines = fh.read().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read label names ({exc.strerror})", path) from None
    names = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            if '"' in text:  # ITK-SNAP: IDX R G B A VIS MSH "LABEL"
                tokens = shlex.split(text)
                label, name = int(tokens[0]), tokens[-1]
                if len(tokens) < 2:
                    raise ValueError
            else:  # FreeSurfer: No. Label-Name R G B A
                tokens = text.split()
                label, name = int(tokens[0]), tokens[1]
        except (ValueError, IndexError):
            raise InputError(f"line {number} is not a label description ({text[:40]!r})", path) from None
        names[label] = name
    return names


# -- the public calls ----------------------------------------------------------------------

def compute(volume, *, mask=None, percentiles=DEFAULT_PERCENTILES, pooled=False, exact=True,
            slab_voxels=SLAB_VOXELS) -> list:
    """One record per volume (or pooled) and per colour channel of `volume`'s real values.

    `mask` (a Volume on the same grid) restricts to its non-zero voxels. `exact=False`
    skips median and percentiles (then memory stays bounded by the slab size for every dtype).
    """
    if mask is not None:
        check_same_grid(volume, mask, "mask")
    mask4 = _mask_grid(mask) if mask is not None else None
    qs = tuple(percentiles) if exact else ()
    if _streamable(volume, exact):
        return _compute_streamed(volume, mask4, qs, exact, pooled, slab_voxels)
    arr4 = grid4(volume)
    channels = volume.channels if volume.value_kind in CHANNEL_NAMES else 0
    n_t = arr4.shape[3]
    vox = voxel_volume_mm3(volume)
    records = []
    for c in range(max(channels, 1)):
        chan = arr4[..., c] if channels else arr4
        rng = _int_range(volume, chan, mask4, slab_voxels)
        acc = None
        for t in range(n_t):
            if acc is None or not pooled:
                acc = Accumulator(volume, qs, exact, rng, capacity=int(np.prod(chan.shape[:3])) * (n_t if pooled else 1))
            for k0, k1 in _slab_ranges(chan.shape, slab_voxels):
                sel = _mask_slab(mask4, k0, k1)
                slab = chan[:, :, k0:k1, t]
                acc.add(np.asarray(slab), sel)
                release_pages(slab)
            if not pooled or t == n_t - 1:
                rec = {}
                if n_t > 1 and not pooled:
                    rec["volume"] = t
                if channels:
                    rec["channel"] = CHANNEL_NAMES[volume.value_kind][c]
                rec.update(acc.result(vox))
                records.append(rec)
    return records


def _streamable(volume, exact: bool) -> bool:
    """A .nii.gz not yet in memory whose statistics need one pass: read while inflating. Exact
    percentiles of wide integers or floats keep the values anyway, so those load the volume."""
    from .formats import capable

    if volume.stream is None or volume.data is not None or not capable(volume.format, "stream"):
        return False
    dt = volume.dtype
    return not exact or (dt.kind in "iu" and dt.itemsize <= 2)


def _compute_streamed(volume, mask4, qs, exact, pooled, slab_voxels) -> list:
    from .formats import stream_slabs

    shape = tuple(volume.stored_shape) + (1,) * max(0, 3 - len(volume.stored_shape))
    nx, ny, nz = shape[:3]
    n_t = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
    dt = volume.dtype
    narrow = dt.kind in "iu" and dt.itemsize <= 2 and volume.value_kind != "complex"
    rng = (int(np.iinfo(dt).min), int(np.iinfo(dt).max)) if narrow else None  # no pass to find it
    vox = voxel_volume_mm3(volume)
    records, acc = [], None
    planes = max(1, int(slab_voxels) // max(1, nx * ny))
    for t, k0, k1, slab in stream_slabs(volume, planes):
        if k0 == 0 and (acc is None or not pooled):
            acc = Accumulator(volume, qs, exact, rng, capacity=nx * ny * nz * (n_t if pooled else 1))
        acc.add(slab, _mask_slab(mask4, k0, k1))
        if k1 == nz and (not pooled or t == n_t - 1):
            rec = {"volume": t} if n_t > 1 and not pooled else {}
            rec.update(acc.result(vox))
            records.append(rec)
    return records


def _label_keys(slab: np.ndarray, lab_range):
    """(index of each voxel's label, label value of each index) for one slab of a label map."""
    if lab_range is not None:
        idx = slab.astype(np.int64) - lab_range[0]
        return idx.ravel(order="F"), np.arange(lab_range[0], lab_range[1] + 1)
    keys, inv = np.unique(slab, return_inverse=True)
    return inv.ravel(order="F"), keys


class _LabelAcc:
    """Per-label voxels, moments, min/max, nan count and index sums (for centroids), by label value."""

    NAMES = ("voxels", "nan", "n", "mean", "m2", "lo", "hi", "si", "sj", "sk")

    def __init__(self):
        self.rows = {}  # label value -> np.array of the NAMES

    def add(self, keys, present, voxels, nan, n, sums, m2, lo, hi, si, sj, sk):
        for pos in np.flatnonzero(present):
            key = keys[pos].item()
            row = self.rows.get(key)
            nb = n[pos]
            mb = sums[pos] / nb if nb else 0.0
            if row is None:
                self.rows[key] = [voxels[pos], nan[pos], nb, mb, m2[pos], lo[pos], hi[pos], si[pos], sj[pos], sk[pos]]
                continue
            na, ma = row[2], row[3]
            tot = na + nb
            if nb:
                delta = mb - ma
                row[3] = ma + delta * nb / tot
                row[4] = row[4] + m2[pos] + delta * delta * na * nb / tot
                row[5] = min(row[5], lo[pos])
                row[6] = max(row[6], hi[pos])
            row[2] = tot
            row[0] += voxels[pos]
            row[1] += nan[pos]
            row[7] += si[pos]
            row[8] += sj[pos]
            row[9] += sk[pos]


def _check_integer_labels(lab: np.ndarray, path) -> None:
    """A label map holds integers: a fractional, NaN or infinite value (float maps, or scaling
    that makes one) is an input error naming the first such value in voxel order."""
    if lab.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(lab) | (lab != np.round(lab))
    if bad.any():
        first = lab.ravel(order="F")[int(np.flatnonzero(bad.ravel(order="F"))[0])]
        shown = format(float(first.real if lab.dtype.kind == "c" else first), ".10g")
        raise InputError(f"label map holds non-integer values (e.g. {shown}); labels must be integers", path)


def _label_range(labels, lab4, slab_voxels):
    dt = labels.dtype
    if dt.kind not in "iu" or labels.scaling is not None:
        return None
    lo = hi = None
    for k0, k1 in _slab_ranges(lab4.shape, slab_voxels):
        slab = lab4[:, :, k0:k1, 0]
        if slab.size:
            a, b = int(slab.min()), int(slab.max())
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        release_pages(slab)
    if lo is None or hi - lo + 1 > MAX_LABEL_BINS:
        return None
    return lo, hi


def compute_labels(volume, labels, *, mask=None, names=None, pooled=False, background=False,
                   values=True, slab_voxels=SLAB_VOXELS) -> list:
    """One record per label value present in `labels` (0 skipped unless `background`).

    With values=False only the label geometry is reported (voxels, volume, centroid).
    Centroids are the mean voxel position of the label, in world mm (x, y, z RAS).
    """
    check_same_grid(volume, labels, "label map")
    if mask is not None:
        check_same_grid(volume, mask, "mask")
    arr4 = grid4(volume)
    lab4 = grid4(labels)
    mask4 = _mask_grid(mask) if mask is not None else None
    lab_range = _label_range(labels, lab4, slab_voxels)
    channels = volume.channels if volume.value_kind in CHANNEL_NAMES and values else 0
    n_t = arr4.shape[3] if values else 1
    records = []
    for c in range(max(channels, 1)):
        chan = arr4[..., c] if channels else arr4
        acc = None
        for t in range(n_t):
            if acc is None or not pooled:
                acc = _LabelAcc()
            for k0, k1 in _slab_ranges(chan.shape, slab_voxels):
                lab = np.asarray(lab4[:, :, k0:k1, 0])
                if labels.scaling is not None:
                    lab = labels.real(lab)
                if c == 0 and t == 0:
                    _check_integer_labels(lab, labels.path)
                slab = chan[:, :, k0:k1, t] if values else None
                _add_label_slab(acc, volume, lab, slab, _mask_slab(mask4, k0, k1), (k0, k1), lab_range,
                                background=background, geometry=not (pooled and t))
                release_pages(lab4[:, :, k0:k1, 0])
            if not pooled or t == n_t - 1:
                where = {"volume": t} if n_t > 1 and not pooled else {}
                if channels:
                    where["channel"] = CHANNEL_NAMES[volume.value_kind][c]
                records += _label_records(acc, volume, where, names or {}, background=background, values=values)
    return records


def _add_label_slab(acc, volume, lab, slab, sel, ks, lab_range, *, background, geometry) -> None:
    """Count one slab of the label map (and of the values, unless `slab` is None) into `acc`;
    without `geometry` (a later volume pooled with the first) the label geometry is not counted again."""
    if not background:  # background is most of a segmentation: leave it out early
        sel = (lab != 0) if sel is None else (sel & (lab != 0))
    if lab.dtype.kind == "f":  # a NaN is no label
        sel = np.isfinite(lab) if sel is None else (sel & np.isfinite(lab))
    idx, keys = _label_keys(lab, lab_range)
    shape = lab.shape
    ii = np.broadcast_to(np.arange(shape[0], dtype=np.float64)[:, None, None], shape).ravel(order="F")
    jj = np.broadcast_to(np.arange(shape[1], dtype=np.float64)[None, :, None], shape).ravel(order="F")
    kk = np.broadcast_to(np.arange(ks[0], ks[1], dtype=np.float64)[None, None, :], shape).ravel(order="F")
    if sel is not None:
        flat = sel.ravel(order="F")
        idx, ii, jj, kk = idx[flat], ii[flat], jj[flat], kk[flat]
    nk = keys.size
    voxels = np.bincount(idx, minlength=nk)
    si, sj, sk = (np.bincount(idx, weights=w, minlength=nk) for w in (ii, jj, kk))
    if slab is not None:
        x = real_values(volume, np.asarray(slab)).ravel(order="F")
        release_pages(slab)
        if sel is not None:
            x = x[sel.ravel(order="F")]
        fin = np.isfinite(x) if x.dtype.kind == "f" else None
        nan = np.bincount(idx[~fin], minlength=nk) if fin is not None else np.zeros(nk, np.int64)
        xi, xf = (idx, x) if fin is None else (idx[fin], x[fin])
        xf64 = xf.astype(np.float64, copy=False)
        n = np.bincount(xi, minlength=nk)
        sums = np.bincount(xi, weights=xf64, minlength=nk)
        means = np.divide(sums, n, out=np.zeros(nk), where=n > 0)
        dev = xf64 - means[xi]
        m2 = np.bincount(xi, weights=dev * dev, minlength=nk)
        lo = np.full(nk, np.inf)
        hi = np.full(nk, -np.inf)
        np.minimum.at(lo, xi, xf64)
        np.maximum.at(hi, xi, xf64)
    else:
        nan = n = np.zeros(nk, np.int64)
        sums = m2 = lo = hi = np.zeros(nk)
    present = voxels > 0
    if not geometry:  # the label geometry is counted once, from the first volume
        voxels = np.zeros_like(voxels)
        si = sj = sk = np.zeros(nk)
    acc.add(keys, present, voxels, nan, n, sums, m2, lo, hi, si, sj, sk)


def _label_records(acc, volume, where: dict, names: dict, *, background, values) -> list:
    """The records of the labels counted in `acc`, each starting with `where` (volume, channel)."""
    vox = voxel_volume_mm3(volume)
    records = []
    for key in sorted(acc.rows):
        if key == 0 and not background:
            continue
        row = acc.rows[key]
        rec = dict(where)
        label = int(key) if float(key).is_integer() else float(key)
        rec["label"] = label
        if names:
            rec["name"] = names.get(label, "")
        voxels = int(row[0])
        rec["voxels"] = voxels
        if values:
            rec["nan"] = int(row[1])
        rec["volume_mm3"] = voxels * vox
        rec["volume_ml"] = voxels * vox / 1000.0
        if values:
            n = int(row[2])
            int_vals = volume.scaling is None and volume.dtype.kind in "iu"
            rec["mean"] = float(row[3]) if n else None
            rec["std"] = math.sqrt(max(float(row[4]), 0.0) / n) if n else None
            conv = (int) if int_vals else float
            rec["min"] = conv(row[5]) if n else None
            rec["max"] = conv(row[6]) if n else None
        ijk = np.array([row[7], row[8], row[9], voxels], dtype=float) / voxels
        ijk[3] = 1.0
        rec["centroid"] = [float(v) for v in (np.asarray(volume.affine, float) @ ijk)[:3]]
        records.append(rec)
    return records


# -- many inputs ---------------------------------------------------------------------------

def compute_many(paths, *, mask=None, labels=None, names=None, label_volumes=False, background=False,
                 percentiles=DEFAULT_PERCENTILES, exact=True, pooled=False, series=None, jobs=None,
                 keep_going=False, on_error=None) -> tuple:
    """The statistics rows of many inputs, in worker processes with `jobs`: (results, failures, fields).

    `mask` and `labels` are paths (read once per process, on the same grid as each input); `names`
    {label: name} (read_label_names). Without `paths`, the rows of the label map itself (its label
    volumes and centroids). `label_volumes`: each input is a label map. `results` holds the rows of
    each input that succeeded, in input order; `failures` (input, MedconvError) under `keep_going`
    (reported through on_error, default a warning; end with batch.finish); `fields` the row fields
    in their order.
    """
    import functools

    from . import batch, log

    label_only = not paths
    # read once here, so a bad mask or label map is one error before any work (workers read their own copy)
    if mask:
        read_cached(mask, series)
    label_map = read_cached(labels, series) if labels else None
    qs = DEFAULT_PERCENTILES if percentiles is None else tuple(percentiles)
    one = functools.partial(_rows_of, mask_path=mask, labels_path=labels, series=series, names=names,
                            label_volumes=label_volumes, background=background, pooled=pooled, qs=qs,
                            exact=exact, label_only=label_only)  # picklable, for the process pool

    def report(path, exc):
        log.warn(f"skipped: {exc.message}", exc.path or path)

    results, failures = batch.run([labels] if label_only else list(paths), one, keep_going=keep_going,
                                  on_error=on_error or report, jobs=jobs, progress="stats")
    if label_map is not None or label_volumes:
        fields = LABEL_FIELDS
    else:
        fields = FIELDS + tuple(percentile_key(q) for q in (qs if exact else ())) + TAIL_FIELDS
    return results, failures, fields


@functools.lru_cache(maxsize=4)
def read_cached(path, series=None):
    """A volume by path (a mask or label map is read once per process, whatever the inputs)."""
    from . import detect, read

    if series is not None and detect(path) == "dicom":
        return read(path, series=series)
    return read(path)


def _rows_of(path, *, mask_path, labels_path, series, names, label_volumes, background, pooled, qs, exact,
             label_only):
    """The rows of one input (a module-level function, so worker processes can run it)."""
    from . import log

    mask = read_cached(mask_path, series) if mask_path else None
    labels = read_cached(labels_path, series) if labels_path else None

    def no_labels(recs, label_path, of_path=None):
        if not recs:
            within = f" inside mask {mask_path}" if mask_path else ""
            of = f" (statistics of {of_path})" if of_path and of_path != label_path else ""
            log.note(f"no label values in {label_path}{within}{of}")
        return recs

    if label_only:
        recs = no_labels(compute_labels(labels, labels, mask=mask, names=names, background=background,
                                        values=False), labels_path)
    else:
        volume = read_cached.__wrapped__(path, series)  # inputs are not cached: each is read once anyway
        if label_volumes:
            recs = no_labels(compute_labels(volume, volume, mask=mask, names=names, background=background,
                                            values=False), path)
        elif labels is not None:
            recs = no_labels(compute_labels(volume, labels, mask=mask, names=names, pooled=pooled,
                                            background=background), labels_path, path)
        else:
            recs = compute(volume, mask=mask, percentiles=qs, pooled=pooled, exact=exact)
    return [{"path": path, **r} for r in recs]
