"""The one in-memory model every reader produces and every writer consumes.

A Volume is a voxel array indexed [i, j, k, t] (spatial axes first, then time or
other volumes; colour channels, when there are any, last), a 4x4 voxel-to-world
affine in RAS+ millimetres for (i, j, k), how stored values map to real values
(slope/intercept), what a voxel holds, the step of the 4th axis, neutral metadata
(modality, series, ...) and, kept opaque beside it, the native header.

The array may be loaded lazily: readers that can tell shape and dtype from the
header alone pass a loader, so `info` never touches the voxel data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import geometry
from .errors import UsageError

VALUE_KINDS = ("scalar", "rgb", "rgba", "complex", "label")
_CHANNELS = {"rgb": 3, "rgba": 4}


@dataclass
class Volume:
    """Voxels + geometry + value semantics. See the module docstring for the layout."""

    data: np.ndarray | None = None
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    scaling: tuple | None = None  # (slope, intercept) or None when values are real as stored
    value_kind: str = "scalar"
    time_step: float | None = None  # step of the 4th axis, in seconds, when known
    metadata: dict = field(default_factory=dict)  # neutral keys: modality, series_uid, ...
    header: Any = None  # the native header, opaque to everything but its backend
    format: str | None = None
    path: str | None = None
    orientation_known: bool = True
    loader: Callable[[], np.ndarray] | None = None
    stored_shape: tuple | None = None
    stored_dtype: np.dtype | None = None
    #: where a reader whose format can "stream" (see formats/_registry.py) finds the voxels to read
    #: them slab by slab without loading the volume; opaque to all but that backend, not copied
    #: by replace() (a changed volume is no longer the file's)
    stream: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.affine = np.asarray(self.affine, dtype=float)
        if self.value_kind not in VALUE_KINDS:
            raise ValueError(f"unknown value kind {self.value_kind!r}")
        if self.data is None and self.loader is None:
            raise ValueError("a Volume needs data or a loader")
        if self.scaling is not None:
            slope, inter = (float(v) for v in self.scaling)
            self.scaling = None if (slope == 1.0 and inter == 0.0) else (slope, inter)

    # -- the array -------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The stored values (loading them on first use)."""
        if self.data is None:
            from .errors import guard

            with guard(self.path, f"{self.format or 'image'} file"):
                self.data = self.loader()
            self.loader = None
        return self.data

    @property
    def is_loaded(self) -> bool:
        return self.data is not None

    @property
    def shape(self) -> tuple:
        """Shape of the stored array (colour channels last, when present)."""
        if self.data is not None:
            return tuple(int(n) for n in self.data.shape)
        return tuple(int(n) for n in self.stored_shape)

    @property
    def dtype(self) -> np.dtype:
        if self.data is not None:
            return self.data.dtype
        return np.dtype(self.stored_dtype)

    @property
    def channels(self) -> int:
        return _CHANNELS.get(self.value_kind, 1)

    @property
    def grid_shape(self) -> tuple:
        """Shape without the colour channel axis: spatial axes, then time."""
        shape = self.shape
        return shape[:-1] if self.value_kind in _CHANNELS else shape

    @property
    def spatial_shape(self) -> tuple:
        return self.grid_shape[:3]

    @property
    def ndim(self) -> int:
        """Number of grid axes (2 for an image, 3 for a volume, 4 for a series of volumes)."""
        return len(self.grid_shape)

    @property
    def n_volumes(self) -> int:
        grid = self.grid_shape
        return int(np.prod(grid[3:])) if len(grid) > 3 else 1

    # -- geometry --------------------------------------------------------------------
    @property
    def spacing(self) -> tuple:
        """Voxel size along each grid axis (mm), then the time step (s) for 4D."""
        sizes = geometry.voxel_sizes(self.affine)[: min(self.ndim, 3)]
        if self.ndim > 3:
            sizes = sizes + tuple(float(self.time_step or 1.0) for _ in range(self.ndim - 3))
        return tuple(sizes)

    @property
    def orientation(self) -> str:
        """Three letters, a 2D image included: its third letter comes from the affine's third column
        (the slice normal; the in-plane cross product when that column is zero)."""
        affine = self.affine
        if self.ndim < 3 and not np.any(affine[:3, 2]):
            affine = affine.copy()
            affine[:3, 2] = np.cross(affine[:3, 0], affine[:3, 1])
        return geometry.axcodes(affine)

    # -- values ----------------------------------------------------------------------
    def real_dtype(self) -> np.dtype:
        """dtype that holds real values exactly enough: the stored one, or float32/64 with scaling."""
        if self.scaling is None:
            return self.dtype
        if self.dtype == np.float64 or self.dtype.itemsize >= 4 and self.dtype.kind in "iu":
            return np.dtype(np.float64)
        return np.dtype(np.float32)

    def real(self, arr: np.ndarray | None = None) -> np.ndarray:
        """Real values (slope/intercept applied) of the whole array or of a slab of it."""
        arr = self.array if arr is None else arr
        if self.scaling is None:
            return arr
        slope, inter = self.scaling
        out = arr.astype(self.real_dtype())
        if slope != 1.0:
            out *= slope
        if inter != 0.0:
            out += inter
        return out

    def replace(self, **changes) -> Volume:
        """A copy with some fields replaced (the array itself is shared, not copied)."""
        fields = dict(
            data=self.data, affine=self.affine, scaling=self.scaling, value_kind=self.value_kind,
            time_step=self.time_step, metadata=dict(self.metadata), header=self.header,
            format=self.format, path=self.path, orientation_known=self.orientation_known,
            loader=self.loader, stored_shape=self.stored_shape, stored_dtype=self.stored_dtype,
        )
        fields.update(changes)
        if "data" in changes and changes["data"] is not None:
            fields["loader"] = None
        return Volume(**fields)

    def reoriented(self, code: str) -> Volume:
        """The same voxels with axes reordered/flipped to `code`; no voxel moves in the world."""
        flat = self.ndim == 2
        shape3 = tuple(self.spatial_shape) + ((1,) if flat else ())
        perm, flips, affine = geometry.reorient_plan(self.affine, code, shape3)
        arr = self.array
        if flat:  # a 2D image: its implicit third axis must stay the third
            if perm[2] != 2:
                raise UsageError(f"a 2D image cannot be reoriented to {code.upper()}: its plane would change")
            arr = arr[:, :, None]
        full = list(perm) + list(range(3, arr.ndim))
        arr = arr.transpose(full)
        for axis, flip in enumerate(flips):
            if flip:
                arr = np.flip(arr, axis=axis)
        if flat:
            arr = arr[:, :, 0]
        return self.replace(data=arr, affine=affine)

    def unscaled(self) -> Volume:
        """A Volume whose stored values are the real values (for formats without scaling).

        Integer slope and intercept keep an integer type when the range fits;
        otherwise real values become float32 (float64 when the stored type needs it).
        """
        if self.scaling is None:
            return self
        slope, inter = self.scaling
        arr = self.array
        if arr.dtype.kind in "iu" and float(slope).is_integer() and float(inter).is_integer() and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            ends = sorted((lo * int(slope) + int(inter), hi * int(slope) + int(inter)))
            for cand in (arr.dtype.type, np.int16, np.int32, np.int64):
                info = np.iinfo(cand)
                if info.min <= ends[0] and ends[1] <= info.max:
                    out = arr.astype(cand)  # a copy: the arithmetic below is in place
                    if slope != 1:
                        out *= cand(int(slope))
                    out += cand(int(inter))
                    return self.replace(data=out, scaling=None)
        return self.replace(data=self.real(arr), scaling=None)

    def summary(self) -> dict:
        """The neutral fields `info` prints (no patient-identifying values)."""
        return {
            "shape": list(self.grid_shape),
            "ndim": self.ndim,
            "spacing": [round(float(s), 6) for s in self.spacing],
            "dtype": str(self.dtype if self.dtype.names is None else "rgb"),
            "value_kind": self.value_kind,
            "scaling": None if self.scaling is None else {"slope": self.scaling[0], "intercept": self.scaling[1]},
            "affine": [[round(float(v), 6) + 0.0 for v in row] for row in self.affine],
            "orientation": self.orientation if self.orientation_known else "unknown",
        }
