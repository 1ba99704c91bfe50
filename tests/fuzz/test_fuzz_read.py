"""Fuzzing every reader: valid small seed files, mutated by flipping, truncating and inserting bytes.

The whole contract: only MedconvError escapes medconv.read (with or without header_only, and
when the lazy voxels are then loaded), and `medconv info` exits 0 or 3 with one clean error
line, never a traceback and never an internal error (exit 70).

MEDCONV_FUZZ_EXAMPLES raises the example count per format (`make fuzz`); the default run is
small and derandomised so the suite stays fast and repeatable.
"""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import resource
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medconv
from helpers import make_volume, run
from medconv.errors import MedconvError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "dicom"))

EXAMPLES = int(os.environ.get("MEDCONV_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="MEDCONV_FUZZ_EXAMPLES" not in os.environ, print_blob=True,
                suppress_health_check=list(HealthCheck))
#: a mutated header must not make a reader allocate what the file does not hold
MEMORY_HEADROOM = 1_500_000_000


def _backend_available(fmt: str) -> bool:
    from medconv.formats._registry import BY_NAME

    return importlib.util.find_spec(BY_NAME[fmt].module) is not None


def _vol3d():
    # small, with an oblique affine and scaling so the geometry and scaling paths are exercised
    return make_volume((5, 4, 3), "int16", scaling=(0.5, -3.0), seed=7)


def _vol3d_axes():
    # Analyze 7.5 holds no rotation
    affine = np.diag([0.75, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-1.5, 2.0, 3.0]
    return make_volume((5, 4, 3), "int16", affine=affine, seed=8)


def _seed_medconv(ext, fmt, volume=None):
    def make(d):
        path = os.path.join(d, "seed" + ext)
        files = medconv.write(volume or _vol3d(), path, to=fmt)
        return path, files
    return make


def _seed_png(d):
    from medconv.volume import Volume

    path = os.path.join(d, "seed.png")
    data = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5) * 7
    files = medconv.write(Volume(data=data, affine=np.eye(4)), path, to="png")
    return path, files


def _seed_dicom(d):
    pytest.importorskip("pydicom")
    import dcmgen

    path = os.path.join(d, "seed.dcm")
    dcmgen.write_slice(path, np.arange(6 * 5, dtype=np.int16).reshape(6, 5), ipp=(1.5, -2.0, 3.0),
                       slope=2.0, intercept=-1024.0)
    return path, [path]


#: (id, format that must be available, seed maker)
SEEDS = [
    ("nifti1-nii", "nifti1", _seed_medconv(".nii", "nifti1")),
    ("nifti1-nii.gz", "nifti1", _seed_medconv(".nii.gz", "nifti1")),
    # the same, mutating the decompressed stream (a valid gzip file with a broken image inside)
    ("nifti1-nii.gz-inner", "nifti1", _seed_medconv(".nii.gz", "nifti1")),
    ("nifti2-nii", "nifti2", _seed_medconv(".nii", "nifti2")),
    ("analyze-pair", "analyze", _seed_medconv(".hdr", "analyze", _vol3d_axes())),
    ("metaimage-mha", "metaimage", _seed_medconv(".mha", "metaimage")),
    ("nrrd", "nrrd", _seed_medconv(".nrrd", "nrrd")),
    ("minc", "minc", _seed_medconv(".mnc", "minc", _vol3d_axes())),
    ("mgh", "mgh", _seed_medconv(".mgh", "mgh")),
    ("mgz", "mgh", _seed_medconv(".mgz", "mgh")),
    ("mgz-inner", "mgh", _seed_medconv(".mgz", "mgh")),
    ("png", "png", _seed_png),
    ("dicom", "dicom", _seed_dicom),
]

# one mutation: ("flip", position, xor mask) | ("set", position, byte) | ("truncate", length, _)
# | ("insert", position, bytes); positions are fractions of the length so they fit any seed,
# with a bias to the first 512 bytes, where the headers are
position = st.one_of(st.integers(0, 511), st.floats(0, 1, allow_nan=False))
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(1, 255)),
    st.tuples(st.just("set"), position, st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])),
    st.tuples(st.just("truncate"), position, st.just(0)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
)
mutations = st.lists(mutation, min_size=1, max_size=6)


def _index(pos, n):
    if n == 0:
        return 0
    return min(int(pos), n - 1) if isinstance(pos, int) else min(int(pos * n), n - 1)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        i = _index(pos, len(buf))
        if op == "flip" and buf:
            buf[i] ^= arg
        elif op == "set" and buf:
            buf[i] = arg
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = arg
    return bytes(buf)


@contextlib.contextmanager
def memory_cap():
    """Cap the address space while a mutated file is read, so a reader that believes a
    header's sizes fails with MemoryError (caught by the contract) instead of swapping."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        current = int(fh.read().split()[0]) * resource.getpagesize()
    cap = current + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_contract(path: str):
    """Only MedconvError escapes the library; the CLI gives 0 or 3 with one clean line."""
    with memory_cap():
        for header_only in (False, True):
            try:
                vol = medconv.read(path, header_only=header_only)
                if header_only:
                    _ = vol.array
            except MedconvError:
                pass
            # anything else propagates: the test fails with the traceback and the mutated file
        result = run("info", path)
    assert result.code in (0, 3), (result.code, result.err)
    assert "Traceback" not in result.err
    assert "internal error" not in result.err, result.err
    if result.code == 3:
        lines = [l for l in result.err.splitlines() if l.startswith("medconv: error:")]
        assert len(lines) == 1, result.err


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-seeds")


@pytest.mark.parametrize("name,fmt,maker", SEEDS,
                         ids=[s.values[0] if hasattr(s, "values") else s[0] for s in SEEDS])
def test_mutated_files_fail_cleanly(seeds, name, fmt, maker):
    if not _backend_available(fmt):
        pytest.skip(f"no {fmt} backend yet")
    seed_dir = seeds / name
    seed_dir.mkdir()
    path, files = maker(str(seed_dir))
    originals = {}
    for f in files:
        with open(f, "rb") as fh:
            originals[f] = fh.read()
    # the seed itself must read
    assert medconv.read(path).shape

    inner = name.endswith("-inner")

    @FUZZ
    @given(target=st.sampled_from(sorted(originals)), ops=mutations)
    def fuzz(target, ops):
        with tempfile.TemporaryDirectory(dir=seeds) as d:
            for f, data in originals.items():
                out = os.path.join(d, os.path.basename(f))
                if f == target:
                    if inner and data[:2] == b"\x1f\x8b":
                        # mutate the decompressed stream too, where the header lives
                        data = gzip.compress(mutate(gzip.decompress(data), ops), mtime=0)
                    else:
                        data = mutate(data, ops)
                with open(out, "wb") as fh:
                    fh.write(data)
            check_contract(os.path.join(d, os.path.basename(path)))

    fuzz()


@pytest.mark.parametrize("content", [b"", b"\x00", b"\x1f\x8b", b"\x1f\x8b\x08\x00" + b"\x00" * 6, b"DICM" * 40,
                                     b"\x00" * 128 + b"DICM", b"\x5c\x01\x00\x00", b"\x89PNG\r\n\x1a\n",
                                     b"ObjectType = Image\nNDims = 3\n", b"NRRD0004\n", b"\x00\x00\x00\x01",
                                     b"CDF\x01", b"\x89HDF\r\n\x1a\n"])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".dcm", ".mha", ".nrrd", ".mgz", ".png", ".bin"])
def test_tiny_and_magic_only_files(tmp_path, content, ext):
    path = tmp_path / ("x" + ext)
    path.write_bytes(content)
    check_contract(str(path))
