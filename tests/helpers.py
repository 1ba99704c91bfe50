"""Shared test helpers: run the CLI in-process, build synthetic volumes, compare geometry."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: real files kept in the repository (each data set with its licence)
TESTDATA = os.path.join(ROOT, "tests", "data")
#: the larger vendor DICOM corpora (real scanner exports with dcm2niix's reference conversions) are
#: not in the repository: tests that need them look in this folder and skip, saying so, without it
VENDOR_TESTDATA_ENV = "MEDCONV_VENDOR_TESTDATA"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(*argv) -> Result:
    """Run `medconv ARGV...` in-process through the real entry point (exit codes included)."""
    from medconv import log
    from medconv.cli import main

    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    log.set_quiet(False)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    log.set_quiet(False)
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(*argv, env=None, input=None) -> Result:
    """Run `python -m medconv ARGV...` in a fresh interpreter."""
    full_env = dict(os.environ)
    full_env.pop("MEDCONV_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "medconv", *map(str, argv)], capture_output=True, text=True,
                          env=full_env, input=input, cwd=ROOT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_pty(argv, *, tty="stderr", env=None, cwd=ROOT) -> tuple:
    """Run `python -m medconv ARGV...` with one stream on a pseudo-terminal and the other a pipe:
    (exit code, what the terminal received, what the pipe received)."""
    import pty

    env = dict(os.environ if env is None else env)
    env.pop("MEDCONV_DEBUG", None)
    master, slave = pty.openpty()
    streams = {"stdout": slave, "stderr": subprocess.PIPE} if tty == "stdout" else \
        {"stdout": subprocess.PIPE, "stderr": slave}
    proc = subprocess.Popen([sys.executable, "-m", "medconv", *map(str, argv)], cwd=cwd, env=env, **streams)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, err = proc.communicate(timeout=60)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace"), (out if tty == "stderr" else err).decode()


def run_on_terminal(*argv) -> Result:
    """Run `python -m medconv ARGV...` with stderr on a pseudo-terminal (stdout stays a pipe)."""
    code, err, out = run_pty(argv)
    return Result(code, out, err)


def assert_clean_error(result: Result, code: int, *needles):
    """One line on stderr starting `medconv: error:`, no traceback, the expected exit code."""
    assert result.code == code, (result.code, result.err)
    lines = [l for l in result.err.strip().splitlines() if l.startswith("medconv: error:")]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle.lower() in result.err.lower(), (needle, result.err)


def oblique_affine(spacing=(0.8, 0.9, 2.5), angles=(0.3, -0.2, 0.15), origin=(-101.25, 33.5, 17.75)):
    """A rotated, anisotropic RAS affine (values chosen to survive float32 storage)."""
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rx @ ry @ rz @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def make_volume(shape=(7, 6, 5), dtype="int16", affine=None, seed=0, value_kind="scalar", scaling=None,
                time_step=None):
    """A Volume with random values spanning the dtype's useful range."""
    from medconv.volume import Volume

    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(info.min, -30000), min(info.max, 60000)
        data = rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    elif dt.kind == "c":
        data = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dt)
    else:
        data = (rng.normal(size=shape) * 100).astype(dt)
    return Volume(data=data, affine=oblique_affine() if affine is None else affine, value_kind=value_kind,
                  scaling=scaling, time_step=time_step)


def write_read(volume, ext, tmp_path, *, name="v", **options):
    """Write `volume` as NAME+EXT in `tmp_path` (write options such as `to` passed on) and read it
    back: (the Volume read, the files written), every written file checked to be there."""
    import medconv

    path = str(os.path.join(tmp_path, name + ext))
    files = medconv.write(volume, path, **options)
    assert files and all(os.path.exists(f) for f in files), files
    return medconv.read(path), files


def world_max_error(affine_a, affine_b, shape) -> float:
    from medconv.geometry import world_distance

    return world_distance(affine_a, affine_b, shape)


def nibabel_data(name: str) -> str:
    import nibabel

    return os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", name)


def pydicom_data(name: str) -> str:
    """A file of the pydicom-data package (installed as a test dependency)."""
    import glob

    import data_store

    base = os.path.dirname(data_store.__file__)
    hits = glob.glob(os.path.join(base, "**", name), recursive=True)
    if hits:
        return hits[0]
    # pydicom's own small test files (CT_small.dcm, MR_small.dcm, rtplan.dcm ...) ship with pydicom
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name)
    if not found:
        raise FileNotFoundError(name)
    return found


def pydicom_sample(name: str) -> str:
    """pydicom_data(name), or the test is skipped naming the file when it is not installed."""
    import pytest

    try:
        return pydicom_data(name)
    except FileNotFoundError:
        pytest.skip(f"{name} not installed (pydicom or pydicom-data test files)")


def sitk_affine(im):
    """A SimpleITK image's voxel-to-world affine in RAS (medconv's convention)."""
    from medconv import geometry

    n = im.GetDimension()
    d = np.array(im.GetDirection()).reshape(n, n)[:3, :3]
    return geometry.lps_to_ras(geometry.compose(d, im.GetSpacing()[:3], im.GetOrigin()[:3]))


def sitk_array(im):
    """SimpleITK's array in medconv's [i, j, k, (t), (channel)] order."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(im)
    n = im.GetDimension()
    axes = list(range(n))[::-1] + ([n] if im.GetNumberOfComponentsPerPixel() > 1 else [])
    return a.transpose(axes)


def file_names(d):
    """Sorted names of the files in a pathlib folder."""
    return sorted(p.name for p in d.iterdir())


def assert_refused(result: Result, out, code: int, *needles):
    """A clean error (assert_clean_error) that left nothing in the pathlib folder `out`."""
    assert_clean_error(result, code, *needles)
    assert not out.exists() or file_names(out) == []


def assert_sitk_image(im, volume, affine: bool = True):
    """A SimpleITK image holds the volume's voxels and, with `affine`, its geometry."""
    np.testing.assert_array_equal(sitk_array(im), volume.array)
    if affine:
        assert np.allclose(sitk_affine(im), volume.affine, atol=1e-6)


def sitk_reads_rgb(tmp_path, ext: str):
    """(volume, SimpleITK image) of an oblique RGB volume medconv writes as c+EXT and SimpleITK
    reads: three components per pixel, the volume's pixels."""
    import SimpleITK as sitk

    import medconv
    from medconv.volume import Volume

    rgb = Volume(data=np.arange(5 * 4 * 3 * 3, dtype=np.uint8).reshape(5, 4, 3, 3), affine=oblique_affine(),
                 value_kind="rgb")
    medconv.write(rgb, str(tmp_path / ("c" + ext)))
    im = sitk.ReadImage(str(tmp_path / ("c" + ext)))
    assert im.GetNumberOfComponentsPerPixel() == 3
    assert_sitk_image(im, rgb, affine=False)
    return rgb, im


def assert_bad_input_refused(tmp_path, command: str, write, *needles):
    """A file `write(folder)` makes in tmp_path/in (returning its path) fails `command` (info, stats,
    or convert into tmp_path/out) with a clean error, exit 3, and nothing written."""
    src = tmp_path / "in"
    src.mkdir()
    p = write(src)
    out = tmp_path / "out"
    argv = ["convert", p, out / "o.nii.gz"] if command == "convert" else [command, p]
    assert_refused(run(*argv), out, 3, *needles)


def presentation_state(annotation: str, layer: str = "LAYER"):
    """A Grayscale Softcopy Presentation State (a pydicom Dataset with its file meta) whose one
    graphic layer `layer` holds the free text `annotation`; the caller sets more and saves it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pr = Dataset()
    pr.file_meta = FileMetaDataset()
    pr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sop_class = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
    pr.file_meta.MediaStorageSOPClassUID = pr.SOPClassUID = sop_class
    pr.file_meta.MediaStorageSOPInstanceUID = pr.SOPInstanceUID = generate_uid()
    pr.Modality = "PR"
    text = Dataset()
    text.UnformattedTextValue = annotation
    graphic = Dataset()
    graphic.GraphicLayer = layer
    graphic.TextObjectSequence = Sequence([text])
    pr.GraphicAnnotationSequence = Sequence([graphic])
    return pr
