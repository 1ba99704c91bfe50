"""anonymize stopped by SIGINT, SIGTERM or SIGHUP (sent to the whole process group, as a terminal,
Slurm or `timeout` do) at any moment of a large run leaves no temporary file, only complete outputs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid
from test_anonymize import make_dicom

N = 2000
_UID = "1.2.3.4.5.6.7.8.9.10000000"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """2,000 small DICOM files of one series (and a few other formats, done by the main process)."""
    import nibabel as nib
    import numpy as np

    src = tmp_path_factory.mktemp("stops") / "in"
    src.mkdir()
    make_dicom(src / "f00000.dcm", _UID, generate_uid(), generate_uid())
    data = (src / "f00000.dcm").read_bytes()
    for i in range(1, N):
        (src / f"f{i:05d}.dcm").write_bytes(data.replace(_UID.encode(), b"1.2.3.4.5.6.7.8.9.1%07d" % i))
    for i in range(3):
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), src / f"v{i}.nii")
    return src


def _count(out) -> int:
    return sum(len(files) for _, _, files in os.walk(out)) if os.path.isdir(out) else 0


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("moment", [1, 300, 1000])
def test_stop_signal_leaves_no_temporary_file(tree, tmp_path, signame, jobs, moment):
    out = tmp_path / "out"
    env = dict(os.environ)
    env.pop("MEDCONV_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "medconv", "anonymize", str(tree), "-o", str(out), "--key", "k",
                             "-j", jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    # `moment` files (temporary or finished) exist: the run is writing
    while time.monotonic() < deadline and proc.poll() is None and _count(out) < moment:
        time.sleep(0.001)
    sig = getattr(signal, signame)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), err
    assert "Traceback" not in err
    assert "medconv: error: interrupted" in err
    left = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files]
    assert not [f for f in left if os.path.basename(f).startswith(".") or f.endswith(".part")]
    assert len(left) < N  # stopped before the end
    for f in left:  # every output present is complete
        if f.endswith(".dcm"):
            ds = pydicom.dcmread(f)
            assert ds.PatientIdentityRemoved == "YES" and len(ds.PixelData) == 32
    # no worker process outlives the run
    time.sleep(0.05)
    ps = subprocess.run(["ps", "-o", "pid=", "-g", str(proc.pid)], capture_output=True, text=True)
    assert not ps.stdout.strip()


@pytest.mark.parametrize("target", ["main", "worker"])
def test_stop_signal_to_one_process_stops_the_run(tree, tmp_path, target):
    """`kill PID` reaches the main process alone (workers then stop after their current file); a
    worker stopped alone stops the run as well. Either way nothing partial is left."""
    out = tmp_path / "out"
    env = dict(os.environ)
    env.pop("MEDCONV_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "medconv", "anonymize", str(tree), "-o", str(out), "--key", "k",
                             "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and _count(out) < 200:
        time.sleep(0.001)
    if target == "main":
        proc.send_signal(signal.SIGTERM)
        expected = 128 + signal.SIGTERM
    else:
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        os.kill(int(kids.split()[0]), signal.SIGTERM)
        expected = 130
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == expected, err
    assert "Traceback" not in err and "medconv: error: interrupted" in err
    left = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files]
    assert not [f for f in left if f.endswith(".part")]
    assert len(left) < N
    time.sleep(0.05)
    ps = subprocess.run(["ps", "-o", "pid=", "-g", str(proc.pid)], capture_output=True, text=True)
    assert not ps.stdout.strip()
