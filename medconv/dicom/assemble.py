"""Frames -> series -> Volume: split, sort along the slice normal, check spacing and tilt, 4D."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import geometry, log
from ..errors import CorruptInput

#: positions closer than this (mm) along the normal are the same slice
POSITION_TOL = 0.01
#: relative deviation of a slice gap from the typical gap that counts as uneven
GAP_TOL = 0.01
#: relative deviation up to which uneven gaps are jitter (warned about, kept on the regular grid)
JITTER = 0.2


class Series:
    """Frames that form one volume, with the selector the user types to choose them."""

    def __init__(self, frames):
        self.frames = frames
        self.selector = None
        self.echo = None  # echo number of this output within its series (set by group)
        self.suffix = ""  # dcm2niix's name suffix: _e2, _ph, _real, _imaginary, _fieldmaphz
        first = frames[0]
        self.series_uid = first.series_uid
        self.series_number = first.series_number
        if first.pe_reversed and first.ge_user12 in (2, 3) and first.series_number is not None:
            # GE epi_pepolar: the reversed-polarity volumes are their own series, numbered +1000 as dcm2niix does
            self.series_number = first.series_number + 1000
        self.series_description = first.series_description
        self.modality = first.modality
        self.protocol = first.protocol

    @property
    def files(self):
        return list(OrderedDict.fromkeys(f.path for f in self.frames))

    @property
    def size_bytes(self):
        seen = OrderedDict((f.path, f.size) for f in self.frames)
        return int(sum(seen.values()))

    def describe(self):
        d = f" ({self.series_description})" if self.series_description else ""
        return f"{self.selector}{d}"

    def as_dict(self):
        return {"series_uid": self.series_uid, "series_number": self.series_number,
                "series_description": self.series_description, "modality": self.modality,
                "protocol": self.protocol, "n_files": len(self.files), "selector": self.selector,
                "suffix": self.suffix}


#: the last groupings of this process: converting the outputs of one directory one after the other
#: groups its (cached) frames once; a hit needs the very same frame objects, in the same order
_GROUPED: list = []


def group(frames) -> list:
    """Split frames by signature (UID, orientation, size, echo, image kind); stable order.

    The same image twice (same SOPInstanceUID and frame: a tree exported twice, a copied folder)
    counts once, as dcm2niix does, instead of becoming a fake second volume.
    """
    frames = list(frames)
    for cached_frames, cached_series in _GROUPED:
        if len(cached_frames) == len(frames) and all(a is b for a, b in zip(cached_frames, frames)):
            return list(cached_series)
    series = _group(frames)
    _GROUPED.append((tuple(frames), tuple(series)))
    del _GROUPED[:-4]
    return series


def _group(frames) -> list:
    groups = OrderedDict()
    seen, copies = {}, []
    # orientation and pixel spacing are compared with a tolerance, not by rounding (values either
    # side of a rounding boundary, e.g. 0.0995 +- 1e-7, would split one series in two)
    clusters: dict = {}
    kept = []
    for f in frames:
        if f.sop:
            key = (f.sop, f.index)
            if key in seen:
                if _same_image(seen[key], f):
                    copies.append((f.path, seen[key].path))
                    continue
                # the same SOPInstanceUID over different pixels: two images, not a copy (as dcm2niix)
            else:
                seen[key] = f
        kept.append(f)
    kept = _without_derived_trace(kept)
    _vendor_rules(kept)
    for f in kept:
        sig = f.signature()
        exact = sig[:1] + sig[2:9] + sig[10:]  # all but orientation and spacing
        reps = clusters.setdefault(exact, [])
        for i, rep in enumerate(reps):
            if close_enough(rep.iop, f.iop, IOP_TOL) and close_enough(rep.pixel_spacing, f.pixel_spacing, SPACING_TOL):
                break
        else:
            reps.append(f)
            i = len(reps) - 1
        groups.setdefault((exact, i), []).append(f)
    if copies:
        path, first = copies[0]
        more = f" (and {len(copies) - 1} more)" if len(copies) > 1 else ""
        log.warn(f"{len(copies)} duplicate image(s) skipped: the same SOPInstanceUID as an image already read "
                 f"({path} repeats {first}{more})")
    series = [Series(g) for g in groups.values()]
    _name_parts(series)
    series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.series_uid))
    numbers = {}
    for s in series:
        numbers.setdefault(s.series_number, set()).add(s.series_uid)
    per_uid = {}  # the outputs of one series (one UID and number): numbered 3.1, 3.2, ...
    for s in series:
        per_uid.setdefault((s.series_uid, s.series_number), []).append(s)
    for s in series:
        unique_number = s.series_number is not None and len(numbers[s.series_number]) == 1
        base = str(s.series_number) if unique_number else s.series_uid
        siblings = per_uid[(s.series_uid, s.series_number)]
        s.selector = base if len(siblings) == 1 else f"{base}.{siblings.index(s) + 1}"
    taken: dict = {}
    for s in series:  # one UID under several numbers that other UIDs share too: keep selectors distinct
        n = taken.get(s.selector, 0)
        taken[s.selector] = n + 1
        if n:
            s.selector = f"{s.selector}.{s.series_number}" if s.series_number is not None else f"{s.selector}.{n + 1}"
    return series


def _same_image(a, b) -> bool:
    """Two frames with one SOPInstanceUID are a copy when their pixel bytes are equal."""
    if a.path == b.path:
        return True
    try:
        if a.size != b.size:
            return False
        if a.pixel_offset is not None and b.pixel_offset is not None:
            (oa, la), (ob, lb) = a.pixel_offset, b.pixel_offset
            if la != lb:
                return False
            with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
                fa.seek(oa)
                fb.seek(ob)
                return fa.read(la) == fb.read(lb)
        with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return True  # unreadable now: keep the old rule (one copy)


def _without_derived_trace(frames):
    """Philips diffusion series append derived isotropic (trace) images to the acquired ones
    (Diffusion Directionality ISOTROPIC); like dcm2niix, leave them out of the series they would
    break (a b-value volume without a direction), and say so."""
    derived = [f for f in frames if f.vendor == "philips" and f.diffusion_directionality == "ISOTROPIC"]
    if not derived:
        return frames
    series = {f.series_uid for f in derived}
    acquired = {f.series_uid for f in frames if f.series_uid in series and f.diffusion_directionality != "ISOTROPIC"}
    drop = {id(f) for f in derived if f.series_uid in acquired}
    if not drop:
        return frames  # a series of derived images alone stays what it is
    log.note(f"{len(drop)} derived isotropic diffusion image(s) left out of their series, as dcm2niix does "
             f"({derived[0].path})")
    return [f for f in frames if id(f) not in drop]


#: GE direct field map sequences (0019,109C): one series holds a field map in Hz, then a magnitude volume
GE_FIELDMAP_SEQUENCES = ("b0map", "b0rf", "3db0map")


def _vendor_rules(frames) -> None:
    """Per-frame marks that need the whole series: GE direct field maps (the first volume at each
    position is the field map in Hz) and GE epi_pepolar (which volumes have reversed polarity)."""
    by_series: dict = {}
    for f in frames:
        f.pe_reversed = False
        if f.vendor == "ge" and f.ge_psd:
            by_series.setdefault((f.series_uid, f.series_number), []).append(f)
    for members in by_series.values():
        psd = members[0].ge_psd.lower()
        if psd in GE_FIELDMAP_SEQUENCES:
            stacks = _by_position(members)
            if stacks and all(len(st) == 2 for st in stacks):
                for st in stacks:
                    st[0].fieldmap, st[1].fieldmap = True, False
        elif "epi_pepolar" in psd:
            mode = members[0].ge_user12
            if mode not in (1, 2, 3):
                continue
            for st in _by_position(members) or []:
                for v, f in enumerate(st):
                    # mode 1: all reversed; 2: reversed then forward (odd volumes); 3: forward then reversed
                    f.pe_reversed = mode == 1 or (mode == 2 and v % 2 == 0) or (mode == 3 and v % 2 == 1)


def _by_position(frames):
    """Frames grouped by slice position, each group in acquisition order; None without geometry."""
    if any(f.distance is None for f in frames):
        return None
    stacks: dict = {}
    for f in frames:
        stacks.setdefault(round(f.distance / POSITION_TOL), []).append(f)
    return [sorted(st, key=order_key) for st in stacks.values()]


_SUFFIX = {"phase": "_ph", "real": "_real", "imaginary": "_imaginary", "fieldmaphz": "_fieldmaphz"}


def _name_parts(series) -> None:
    """Echo numbers and name suffixes of the outputs of each series, as dcm2niix names them:
    `_e<N>` when the series has several echoes (or this is not the first echo), then `_ph`,
    `_real`, `_imaginary` or `_fieldmaphz`; magnitude images take no part suffix."""
    per_series: dict = {}
    for s in series:
        per_series.setdefault((s.series_uid, s.series_number), []).append(s)
    for members in per_series.values():
        echoes = []  # distinct echoes in order of first appearance
        for s in members:
            f = s.frames[0]
            key = ("n", f.echo_number) if f.echo_number is not None else (
                ("t", round(f.echo_time, 3)) if f.echo_time is not None else None)
            if key is not None and key not in echoes:
                echoes.append(key)
        numbered = all(k[0] == "n" for k in echoes)
        for s in members:
            f = s.frames[0]
            if f.echo_number is not None and numbered:
                s.echo = f.echo_number
            elif f.echo_time is not None and ("t", round(f.echo_time, 3)) in echoes:
                s.echo = echoes.index(("t", round(f.echo_time, 3))) + 1
            suffix = f"_e{s.echo}" if s.echo is not None and (len(echoes) > 1 or s.echo > 1) else ""
            s.suffix = suffix + _SUFFIX.get(f.part, "")


#: largest difference between direction cosines (and relative difference between pixel spacings)
#: of images that belong to one stack
IOP_TOL = 1e-3
SPACING_TOL = 1e-3


def close_enough(a, b, tol) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if len(a) != len(b):
        return False
    return all(abs(float(x) - float(y)) <= tol * max(1.0, abs(float(x))) for x, y in zip(a, b))


def _fmt(v):
    return format(float(v), ".6g")


def order_key(f):
    # enhanced files: the declared dimensions first (Dimension Index Values, the last index the
    # slowest, as the frames of a pCASL label/control x time series are laid out), never file order
    return (tuple(reversed(f.dim_index)) if f.dim_index else (), f.temporal if f.temporal is not None else -1, f.trigger if f.trigger is not None else -1.0,
            f.bvalue if f.bvalue is not None else -1.0, f.acq_time if f.acq_time is not None else -1.0,
            f.instance if f.instance is not None else -1, f.path, f.index or 0)


def _missing_slices(gaps, typical):
    """Indices of gaps that are a whole number (>= 2) of typical steps, with how many slices each lacks."""
    out = []
    for i, g in enumerate(gaps):
        ratio = g / typical if typical > 0 else 0.0
        m = int(round(ratio))  # noqa: RUF046 (numpy floats round to floats on numpy 1.x)
        if m >= 2 and abs(ratio - m) <= 0.1:
            out.append((i, m - 1))
    return out


def layout(series, strict=False, path=None, gaps="refuse"):
    """(frames ordered [t][k], n_slices, n_volumes, RAS affine, time step).

    A missing slice (a gap of a whole number of steps) is refused with `gaps="refuse"`, filled
    with None frames (empty slices) with `gaps="fill"`, and only reported with `gaps="warn"`.
    """
    frames = series.frames
    f0 = frames[0]
    if f0.pixel_spacing is None and f0.ds is not None and f0.ds.get("PixelSpacing") not in (None, ""):
        log.warn(f"series {series.selector}: PixelSpacing is zero, negative or not a number; 1 mm pixels "
                 "assumed", path)
    geo = all(f.distance is not None for f in frames)
    if not geo:
        ordered = sorted(frames, key=lambda f: (f.instance if f.instance is not None else 0, f.path, f.index or 0))
        f0 = ordered[0]
        n = len(ordered)
        return [ordered], n, 1, _affine(f0, None, n), None
    dist = np.array([f.distance for f in frames])
    clusters, stacks, nt = _position_stacks(series, frames, dist, path)
    nz = len(clusters)
    by_t = [[stacks[k][t] for k in range(nz)] for t in range(nt)]
    if nt > 1:
        keys = [order_key(s) for s in stacks[0]]
        if len({k[:6] for k in keys}) < nt:
            log.warn(f"series {series.selector}: {nt} images share each slice position with nothing "
                     f"(time, trigger, b-value) telling them apart; stacked as {nt} volumes in file order", path)
    _note_instance_order(series, by_t[0])
    positions = [np.array(stacks[k][0].ipp) for k in range(nz)]
    dists = np.array([dist[c[0]] for c in clusters])
    first = stacks[0][0]
    _check_in_plane(series, stacks, dists, first, path, refuse=gaps != "warn")
    if nz > 1:
        by_t, nz, slice_vec = _slice_vector(series, by_t, nz, nt, positions, dists, strict, gaps, path)
    else:
        slice_vec = None
    affine = _affine(first, slice_vec, nz)
    if slice_vec is not None:
        _warn_gantry_tilt(series, first, slice_vec, path)
    step_t = _time_step(by_t, nt, first) if nt > 1 else None
    return by_t, nz, nt, affine, step_t


def _position_stacks(series, frames, dist, path):
    """(clusters of equal positions, their frames in order_key order, images per position); uneven refused."""
    order = np.argsort(dist, kind="stable")
    # cluster equal positions
    clusters = []
    for idx in order:
        if clusters and abs(dist[idx] - dist[clusters[-1][0]]) <= POSITION_TOL:
            clusters[-1].append(idx)
        else:
            clusters.append([idx])
    counts = {len(c) for c in clusters}
    if len(counts) > 1:
        bad = [c for c in clusters if len(c) != max(counts)]
        where = ", ".join(_fmt(dist[c[0]]) for c in bad[:6])
        raise CorruptInput(f"series {series.selector}: slice positions repeat unevenly ({min(counts)} to "
                           f"{max(counts)} images per position; positions with fewer: {where} mm); "
                           f"cannot stack them", path)
    nt = counts.pop()
    stacks = []
    for c in clusters:
        stacks.append(sorted((frames[i] for i in c), key=order_key))
    return clusters, stacks, nt


def _slice_vector(series, by_t, nz, nt, positions, dists, strict, gaps, path):
    """(by_t, nz, slice step vector) for two or more slices: uneven spacing warned, refused or gap-filled."""
    steps = np.diff(dists)
    typical = _typical_step(steps)
    uneven = np.abs(steps - typical) > max(GAP_TOL * typical, POSITION_TOL)
    if not uneven.any():
        return by_t, nz, (positions[-1] - positions[0]) / (nz - 1)
    pairs = [f"{_fmt(dists[i])} -> {_fmt(dists[i + 1])} mm" for i in np.nonzero(uneven)[0][:6]]
    missing = _missing_slices(steps, typical)
    lacking = sum(m for _, m in missing)
    what = (f"{lacking} slice{'s' if lacking > 1 else ''} missing" if missing
            else "a slice may be missing")
    msg = (f"series {series.selector}: uneven slice spacing (typical {_fmt(typical)} mm; gaps "
           f"{'; '.join(pairs)}): {what}")
    if strict:
        raise CorruptInput(msg, path)
    step = positions[1] - positions[0] if not missing or missing[0][0] != 0 else positions[-1] - positions[-2]
    slice_vec = step / np.linalg.norm(step) * typical if np.linalg.norm(step) > 0 else None
    if missing and len(missing) == int(uneven.sum()) and gaps == "fill":
        for t in range(nt):
            row = list(by_t[t])
            for i, m in sorted(missing, reverse=True):
                row[i + 1:i + 1] = [None] * m
            by_t[t] = row
        nz += lacking
        log.warn(msg + f"; {lacking} empty slice{'s' if lacking > 1 else ''} (stored value 0) inserted "
                 "so every real slice keeps its position", path)
    elif missing and gaps == "refuse":
        raise CorruptInput(msg + "; a regular grid would misplace every slice after the gap "
                           "(convert --fill-gaps inserts empty slices instead)", path)
    elif gaps != "warn" and (np.abs(steps - typical) > JITTER * typical).any():
        # not jitter and not whole missing slices: no regular grid holds these positions
        raise CorruptInput(msg + f"; a gap off the step by more than {JITTER:.0%} would misplace every "
                           "slice after it, and no whole number of empty slices fills it", path)
    else:
        log.warn(msg + "; voxel positions after the gap are not exact", path)
    return by_t, nz, slice_vec


def _warn_gantry_tilt(series, first, slice_vec, path):
    """Warn when the slice step is not along the slice normal (a sheared affine)."""
    n = first.normal
    cosang = abs(float(np.dot(n, slice_vec / np.linalg.norm(slice_vec))))
    if cosang < 1 - 1e-6:
        angle = np.degrees(np.arccos(min(cosang, 1.0)))
        log.warn(f"series {series.selector}: gantry tilt of {angle:.2f} degrees; the affine is sheared so "
                 f"every voxel keeps its true position (the NIfTI sform is exact, the qform is not)", path)


def _time_step(by_t, nt, first):
    """Seconds between volumes: trigger delays, else the MR repetition time or the acquisition times."""
    trig = [f.trigger for f in (by_t[t][0] for t in range(nt))]
    if all(v is not None for v in trig) and len(set(trig)) == nt:
        return _median(np.diff(trig)) / 1000.0
    tr = first.ds.get("RepetitionTime") if first.ds is not None else None
    try:
        tr = float(tr) / 1000.0 if tr not in (None, "") else None
    except (TypeError, ValueError):
        tr = None
    # MR: the repetition time is the volume step (fMRI); CT perfusion, NM and secondary captures
    # carry no TR, and their volumes are told apart by acquisition time.
    acq = _acquisition_step([by_t[t][0].acq_time for t in range(nt)])
    return tr if tr and (first.modality == "MR" or acq is None) else acq


def _median(values) -> float:
    """float(np.median(values)) for a float64 array, sorted here: np.median imports numpy.ma on every
    call's NaN check. Other dtypes, NaN and empty input go to np.median itself."""
    a = np.sort(np.asarray(values).ravel())
    if a.dtype != np.float64 or a.size == 0 or np.isnan(a[-1]):
        return float(np.median(values))
    mid = a.size // 2
    return float(a[mid]) if a.size % 2 else float((a[mid - 1] + a[mid]) / 2)


def _typical_step(steps) -> float:
    """The slice step: the median gap, unless every gap is a whole multiple of the smallest one (slices
    missing in half the gaps or more: the median would be a multiple and the grid wrong)."""
    typical = _median(steps)
    base = float(steps.min())
    if POSITION_TOL < base < typical * (1 - GAP_TOL):
        ratios = steps / base
        if np.all(np.abs(ratios - np.round(ratios)) <= 0.1):
            return base
    return typical


def _check_in_plane(series, stacks, dists, first, path, refuse=True):
    """Every image must sit on the line through the slices (one stack): a slice shifted in its own
    plane, or two stacks side by side sharing positions along the normal, cannot be one volume."""
    ps = first.pixel_spacing if first.pixel_spacing is not None else [1.0, 1.0]
    tol = max(0.05, 0.1 * min(float(v) for v in ps))
    worst, where = 0.0, None
    for k, stack in enumerate(stacks):  # images sharing a slice position (4D) share the position itself
        p0 = np.array(stack[0].ipp, float)
        for f in stack[1:]:
            off = float(np.linalg.norm(np.array(f.ipp, float) - p0))
            if off > worst:
                worst, where = off, f"two images at {_fmt(dists[k])} mm are {_fmt(off)} mm apart"
    if len(stacks) > 2 and dists[-1] > dists[0]:
        a, b = np.array(stacks[0][0].ipp, float), np.array(stacks[-1][0].ipp, float)
        for k in range(1, len(stacks) - 1):
            expected = a + (b - a) * (dists[k] - dists[0]) / (dists[-1] - dists[0])
            off = float(np.linalg.norm(np.array(stacks[k][0].ipp, float) - expected))
            if off > worst:
                worst, where = off, f"the slice at {_fmt(dists[k])} mm is {_fmt(off)} mm off the line through " \
                                    "the others"
    if worst <= tol:
        return
    msg = (f"series {series.selector}: images are not on one stack ({where}, in their own plane); "
           "they cannot be one volume")
    if refuse:
        raise CorruptInput(msg, path)
    log.warn(msg, path)


def _acquisition_step(times):
    """Median step in seconds between volumes from their AcquisitionTime (HHMMSS.F, or a DT whose last
    six integer digits are the time of day); None unless every volume has one and they increase."""
    if len(times) < 2 or any(t is None for t in times):
        return None
    secs = []
    for v in times:
        v = v % 1000000.0
        secs.append((v // 10000) * 3600 + (v // 100 % 100) * 60 + v % 100)
    steps = np.diff(secs)
    steps = np.where(steps < 0, steps + 86400.0, steps)  # a series that runs past midnight
    if not np.all(steps > 0):
        return None
    return _median(steps)


def _note_instance_order(series, stack):
    """Say so when InstanceNumber disagrees with the spatial order (we sort by position anyway)."""
    numbers = [f.instance for f in stack]
    if len(numbers) < 3 or any(n is None for n in numbers) or len(set(numbers)) < len(numbers):
        return  # frames of one multi-frame file share their InstanceNumber: it orders nothing
    steps = np.diff(np.array(numbers, dtype=np.int64))
    # ascending or descending numbering both follow the slices; anything else does not
    if (steps > 0).all() or (steps < 0).all():
        return
    log.note(f"series {series.selector}: Instance Number order is not spatial; slices are ordered by "
             f"their position along the slice normal")


def _affine(f, slice_vec, nz):
    """LPS affine for voxel (i=column, j=row, k=slice) converted to RAS."""
    iop = f.iop if f.iop is not None else [1, 0, 0, 0, 1, 0]
    ps = f.pixel_spacing if f.pixel_spacing is not None else [1.0, 1.0]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    aff = np.eye(4)
    aff[:3, 0] = row * ps[1]
    aff[:3, 1] = col * ps[0]
    if slice_vec is None or np.linalg.norm(slice_vec) == 0:
        n = np.cross(row, col)
        thick = None
        if f.ds is not None:
            for key in ("SpacingBetweenSlices",):
                try:
                    v = f.ds.get(key)
                    thick = float(v) if v not in (None, "") else None
                except (TypeError, ValueError):
                    thick = None
        thick = thick or f.slice_thickness or 1.0
        slice_vec = n * abs(thick)
    aff[:3, 2] = slice_vec
    aff[:3, 3] = f.ipp if f.ipp is not None else [0.0, 0.0, 0.0]
    return geometry.lps_to_ras(aff)
