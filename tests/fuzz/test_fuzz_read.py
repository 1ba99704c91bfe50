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
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medconv
from helpers import make_volume, run
from medconv.errors import MedconvError

EXAMPLES = int(os.environ.get("MEDCONV_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="MEDCONV_FUZZ_EXAMPLES" not in os.environ, print_blob=True,
                suppress_health_check=list(HealthCheck))
#: a mutated header must not make a reader allocate what the file does not hold
MEMORY_HEADROOM = 1_500_000_000


def _backend_available(fmt: str) -> bool:
    from medconv.formats import BY_NAME

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


# ---- real files nobody here wrote, through the CLI: info, stats, convert ---------------------
#
# Seeds come from nibabel's and pydicom's installed test data (the Analyze .img is made to the
# size the real header declares). Each is cut at its header boundaries and has header bytes
# flipped or set to absurd values; `info`, `stats` and `convert` (to .nii) must then exit 0 or
# 3 (4 for what the output cannot hold), with no traceback and no internal error.

def _nib_file(name):
    import nibabel

    return os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", name)


def _pydicom_file(name):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def _real_seed(name, nib_name=None, dicom_name=None):
    """(main file name, {file name: bytes}) of a real seed."""
    if name == "analyze-pair":
        header = open(_nib_file("analyze.hdr"), "rb").read()
        rng = np.random.default_rng(3)
        return "a.hdr", {"a.hdr": header, "a.img": rng.integers(0, 255, 91 * 109 * 91, dtype=np.uint8).tobytes()}
    path = _nib_file(nib_name) if nib_name else _pydicom_file(dicom_name)
    base = os.path.basename(path)
    return base, {base: open(path, "rb").read()}


#: (id, nibabel file, pydicom file, byte offsets where the header's parts end)
NIFTI1_CUTS = [0, 4, 40, 56, 70, 76, 108, 112, 148, 252, 344, 348, 351, 352, 353]
REAL_SEEDS = [
    ("nifti1-anatomical.nii", "anatomical.nii", None, NIFTI1_CUTS),
    ("nifti1-standard.nii.gz", "standard.nii.gz", None, NIFTI1_CUTS),
    ("nifti2-example.nii.gz", "example_nifti2.nii.gz", None, [0, 4, 8, 16, 80, 168, 176, 400, 536, 540, 544, 545]),
    ("mgz-test.mgz", "test.mgz", None, [0, 4, 8, 20, 24, 28, 30, 42, 78, 90, 284, 285]),
    ("minc1-scale.mnc", "minc1_1_scale.mnc", None, [0, 4, 8, 32, 64, 256, 512, 1024, 2048]),
    ("minc2-scale.mnc", "minc2_1_scale.mnc", None, [0, 8, 64, 256, 512, 1024, 2048, 4096, 8192]),
    ("minc2-4d.mnc", "minc2_4d.mnc", None, [0, 8, 64, 512, 2048, 8192]),
    ("minc1-4d.mnc", "minc1_4d.mnc", None, [0, 4, 8, 64, 512, 2048]),
    ("analyze-pair", None, None, NIFTI1_CUTS),
    ("dicom-CT_small", None, "CT_small.dcm", [0, 128, 132, 136, 144, 200, 400, 800]),
    ("dicom-MR_small_bigendian", None, "MR_small_bigendian.dcm", [0, 128, 132, 144, 300, 600]),
    ("dicom-MR_small_RLE", None, "MR_small_RLE.dcm", [0, 132, 144, 300, 600]),
    ("dicom-rtdose", None, "rtdose.dcm", [0, 132, 144, 400, 1000]),
    ("dicom-SC_rgb_rle_2frame", None, "SC_rgb_rle_2frame.dcm", [0, 132, 144, 400]),
    ("dicom-MR_small_implicit", None, "MR_small_implicit.dcm", [0, 128, 132, 144, 300, 600]),
    ("dicom-JPEG2000", None, "JPEG2000.dcm", [0, 132, 144, 400, 1000]),
]
#: values that make header fields absurd: a huge int, a negative one, NaN/huge floats, zero
ABSURD = [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\x7f\xff\xff"]


def _real_cases(data: bytes, cuts, seed: int) -> list:
    """Mutated copies of `data`: truncated at each cut (and inside the data), bytes flipped in
    the header region, absurd 4-byte values written over header fields."""
    import random

    rng = random.Random(seed)
    n = len(data)
    cases = [data[:c] for c in cuts if c < n]
    pixel_start = data.rfind(b"\xe0\x7f\x10\x00")  # DICOM (7FE0,0010): cut at the pixel data too
    if pixel_start > 0:
        cases += [data[:pixel_start], data[:pixel_start + 8], data[:pixel_start + 12]]
    cases += [data[: n // 2], data[: n - 1]]
    head = max(8, min(n, 700))
    for _ in range(16):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            buf[rng.randrange(head)] ^= 1 << rng.randrange(8)
        cases.append(bytes(buf))
    for _ in range(10):
        buf = bytearray(data)
        i = rng.randrange(max(1, head - 4))
        buf[i:i + 4] = rng.choice(ABSURD)
        cases.append(bytes(buf))
    return cases


def _check_cli(path: str, outdir: str):
    with memory_cap():
        results = [("info", run("info", path)), ("stats", run("stats", path)),
                   ("convert", run("convert", path, os.path.join(outdir, "o.nii"), "--force"))]
    for cmd, r in results:
        allowed = (0, 3, 4) if cmd == "convert" else (0, 3)
        assert r.code in allowed, (cmd, r.code, r.err)
        assert "Traceback" not in r.err and "internal error" not in r.err, (cmd, r.err)
        if r.code:
            assert len([l for l in r.err.splitlines() if l.startswith("medconv: error:")]) == 1, (cmd, r.err)


@pytest.mark.parametrize("name,nib_name,dicom_name,cuts", REAL_SEEDS, ids=[s[0] for s in REAL_SEEDS])
def test_real_files_mutated_through_the_cli(tmp_path, name, nib_name, dicom_name, cuts):
    fmt = "dicom" if dicom_name else ("minc" if name.startswith("minc") else "nifti1")
    if not _backend_available(fmt):
        pytest.skip(f"no {fmt} backend")
    main, files = _real_seed(name, nib_name, dicom_name)
    target = main  # for a .hdr/.img pair the header is what gets mutated
    original = files[target]
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    for f, data in files.items():
        (seed_dir / f).write_bytes(data)
    _check_cli(str(seed_dir / main), str(tmp_path))  # the seed itself
    gz = original[:2] == b"\x1f\x8b"
    inner = gzip.decompress(original) if gz else original
    cases = _real_cases(inner, cuts, seed=sum(name.encode()))
    if gz:  # the header lives inside the stream: mutate it there, and cut the gzip file itself too
        cases = [gzip.compress(c, mtime=0) for c in cases] + [original[: len(original) // 2], original[:10]]
    if name == "analyze-pair":  # and a short .img beside an intact header
        cases.append(("a.img", files["a.img"][: len(files["a.img"]) // 3]))
    failures = []
    for k, case in enumerate(cases):
        which, blob = case if isinstance(case, tuple) else (target, case)
        d = tmp_path / f"c{k}"
        d.mkdir()
        for f, data in files.items():
            (d / f).write_bytes(blob if f == which else data)
        try:
            _check_cli(str(d / main), str(d))
        except AssertionError as exc:
            failures.append(f"case {k} ({d / which}): {exc}")
        else:
            import shutil

            shutil.rmtree(d)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("limit", [-352, 1 << 62])
def test_read_bytes_with_an_absurd_header_limit(tmp_path, limit):
    """Header-derived read lengths: negative is a corrupt input, huge reads what is there."""
    from medconv import fileio

    plain, packed = tmp_path / "a.bin", tmp_path / "a.gz"
    plain.write_bytes(b"x" * 1000)
    packed.write_bytes(gzip.compress(b"y" * 1000))
    for path, byte in ((plain, b"x"), (packed, b"y")):
        if limit < 0:
            with pytest.raises(MedconvError):
                fileio.read_bytes(str(path), limit)
        else:
            with memory_cap():
                assert fileio.read_bytes(str(path), limit) == byte * 1000
