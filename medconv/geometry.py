"""World geometry: LPS<->RAS, axis codes, direction<->affine, reorientation, comparisons.

Every affine in medconv maps voxel indices (i, j, k) to RAS+ millimetres. Formats
that store LPS (DICOM, MetaImage, NRRD with an LPS space, ITK) cross over here and
only here.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError

#: Multiplying an affine on the left by this flips the x and y world axes (LPS<->RAS).
FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])

_LETTERS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
_POSITIVE = "RAS"
_NEGATIVE = "LPI"


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """An LPS voxel-to-world affine as RAS (the same matrix flip serves both ways)."""
    return FLIP_XY @ np.asarray(affine_lps, dtype=float)


ras_to_lps = lps_to_ras


def compose(direction: np.ndarray, spacing, origin) -> np.ndarray:
    """4x4 affine from direction cosines (columns = voxel axes), spacing and origin."""
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing, dtype=float)[None, :]
    affine[:3, 3] = np.asarray(origin, dtype=float)
    return affine


def decompose(affine: np.ndarray):
    """(spacing, direction, origin) of an affine; direction columns are unit vectors."""
    affine = np.asarray(affine, dtype=float)
    lin = affine[:3, :3]
    spacing = np.sqrt((lin**2).sum(axis=0))
    safe = np.where(spacing == 0, 1.0, spacing)
    return spacing, lin / safe[None, :], affine[:3, 3].copy()


def voxel_sizes(affine: np.ndarray) -> tuple:
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def is_orthogonal(affine: np.ndarray, tol: float = 1e-4) -> bool:
    """True when the voxel axes are perpendicular (no shear)."""
    _, direction, _ = decompose(affine)
    return bool(np.allclose(direction.T @ direction, np.eye(3), atol=tol))


def is_axis_aligned(affine: np.ndarray, tol: float = 1e-6) -> bool:
    """True when every voxel axis lies along a world axis (no rotation, no shear)."""
    lin = np.asarray(affine, dtype=float)[:3, :3]
    return bool(((np.abs(lin) > tol).sum(axis=0) == 1).all() and ((np.abs(lin) > tol).sum(axis=1) == 1).all())


def axis_assignment(affine: np.ndarray):
    """For each voxel axis: (world axis index, sign), chosen greedily by largest cosine."""
    _, direction, _ = decompose(affine)
    ndim = direction.shape[1]
    mag = np.abs(direction).copy()
    result = [None] * ndim
    for _ in range(ndim):
        world, vox = np.unravel_index(np.argmax(mag), mag.shape)
        if mag[world, vox] <= 0:
            break
        result[vox] = (int(world), 1 if direction[world, vox] >= 0 else -1)
        mag[world, :] = -1
        mag[:, vox] = -1
    return result


def axcodes(affine: np.ndarray) -> str:
    """Three-letter code of where each voxel axis points in RAS+ space (nibabel's convention)."""
    letters = []
    for item in axis_assignment(affine):
        if item is None:
            letters.append("?")
        else:
            world, sign = item
            letters.append(_POSITIVE[world] if sign > 0 else _NEGATIVE[world])
    return "".join(letters)


def parse_code(code: str) -> list:
    """Validate an orientation code such as RAS or lpi; returns [(world axis, sign)] * 3."""
    code = (code or "").upper()
    if len(code) != 3 or any(c not in _LETTERS for c in code):
        raise UsageError(f"orientation code {code!r} must be three letters from R/L, A/P, S/I (e.g. RAS, LPS)")
    parsed = [_LETTERS[c] for c in code]
    if len({w for w, _ in parsed}) != 3:
        raise UsageError(f"orientation code {code!r} names the same axis twice")
    return parsed


def reorient_plan(affine: np.ndarray, code: str, shape) -> tuple:
    """(permutation, flips, new affine) turning voxel axes into orientation `code`.

    The world position of every voxel is unchanged: only the order and direction
    of the voxel axes change.
    """
    target = parse_code(code)
    current = axis_assignment(affine)
    if any(c is None for c in current):
        raise UsageError("cannot reorient: the affine has a degenerate axis")
    perm = []
    flips = []
    for world, sign in target:
        src = next(i for i, (w, _) in enumerate(current) if w == world)
        perm.append(src)
        flips.append(current[src][1] != sign)
    affine = np.asarray(affine, dtype=float)
    new = np.eye(4)
    new[:3, :3] = affine[:3, perm]
    new[:3, 3] = affine[:3, 3]
    for axis, flip in enumerate(flips):
        if flip:
            n = shape[perm[axis]]
            new[:3, 3] = new[:3, 3] + new[:3, axis] * (n - 1)
            new[:3, axis] = -new[:3, axis]
    return perm, flips, new


def corners_world(affine: np.ndarray, shape) -> np.ndarray:
    """World coordinates of the corner voxels of a grid (for comparisons)."""
    import itertools

    dims = [(0, max(int(n) - 1, 0)) for n in list(shape)[:3]]
    while len(dims) < 3:
        dims.append((0, 0))
    pts = np.array([list(p) + [1.0] for p in itertools.product(*dims)], dtype=float)
    return (np.asarray(affine, dtype=float) @ pts.T).T[:, :3]


def world_distance(affine_a, affine_b, shape) -> float:
    """Largest distance (mm) between the world positions of the same voxel in two grids."""
    return float(np.abs(corners_world(affine_a, shape) - corners_world(affine_b, shape)).max())


def world_equal(affine_a, affine_b, shape, tol: float = 1e-4) -> bool:
    return world_distance(affine_a, affine_b, shape) <= tol


def orthonormalize(direction: np.ndarray) -> np.ndarray:
    """Nearest orthonormal matrix (polar decomposition) keeping the handedness."""
    u, _, vt = np.linalg.svd(np.asarray(direction, dtype=float))
    return u @ vt
