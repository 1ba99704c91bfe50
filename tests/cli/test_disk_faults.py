"""Disk faults while writing: the file-size limit (`ulimit -f`, EFBIG) and other OSErrors give
exit 4 with one line naming the destination, leave no partial file, and a --keep-going batch goes on."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT

LIMIT = 100 * 1024  # bytes: like `ulimit -f 100`


def _limited():
    """preexec_fn: cap the size of any file the child writes; with SIGXFSZ ignored the write
    fails with EFBIG ("File too large") instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _run_limited(*argv):
    env = dict(os.environ)
    env.pop("MEDCONV_DEBUG", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([sys.executable, "-m", "medconv", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, preexec_fn=_limited, timeout=120, check=False)


def _nifti(path, shape, seed=0):
    import nibabel as nib

    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)  # incompressible
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.2, 1.5, 1.0])), str(path))
    return path


def _leftovers(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if ".part" in f or ".medconv-" in f]


@pytest.mark.parametrize("ext", ["nii", "nii.gz", "mha", "mhd", "nrrd", "nhdr", "mgz", "hdr", "mnc"])
def test_file_size_limit_is_an_output_error(tmp_path, ext):
    big = _nifti(tmp_path / "big.nii", (64, 64, 64))  # 1 MiB of voxels, the limit is 100 KiB
    out = tmp_path / "out"
    out.mkdir()
    dst = out / f"o.{ext}"
    proc = _run_limited("convert", big, dst)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medconv: error:"), proc.stderr
    assert str(dst) in lines[0] and "file too large" in lines[0].lower(), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert os.listdir(out) == [], os.listdir(out)
    assert not _leftovers(tmp_path)


def test_file_size_limit_in_a_keep_going_batch(tmp_path):
    srcs = [_nifti(tmp_path / "a.nii", (4, 4, 4), 1), _nifti(tmp_path / "big.nii", (64, 64, 64), 2),
            _nifti(tmp_path / "c.nii", (4, 4, 4), 3)]
    out = tmp_path / "out"
    proc = _run_limited("convert", *srcs, "-o", out, "--to", "nifti1", "-k", "-j", "2")
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert sorted(os.listdir(out)) == ["a.nii.gz", "c.nii.gz"]
    summary = proc.stderr[proc.stderr.index("inputs failed:"):]
    assert "big.nii" in summary and "(exit 4)" in summary
    assert not _leftovers(tmp_path)


def test_other_os_errors_while_writing_are_output_errors(tmp_path, monkeypatch):
    """An I/O error (not ENOSPC, not EACCES) raised by a writer is exit 4 naming the destination."""
    import errno

    import medconv
    from helpers import assert_clean_error, make_volume, run
    from medconv import fileio

    src = tmp_path / "a.nii"
    medconv.write(make_volume((4, 4, 4)), src)
    real_open = fileio.open_write

    def failing(path, compress, **kwargs):
        fh = real_open(path, compress, **kwargs)
        fh.close()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileio, "open_write", failing)
    r = run("convert", src, tmp_path / "o.nii")
    assert_clean_error(r, 4, "o.nii", "Input/output error")
    assert not (tmp_path / "o.nii").exists() and not _leftovers(tmp_path)
