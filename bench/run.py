#!/usr/bin/env python3
"""Side-by-side timings: medconv beside its peers, on the same fixtures, in one run.

    make bench                       # or: .venv/bin/python bench/run.py [--repeats N] [--only TASK]

Fixtures are generated deterministically under .bench-cache/ (kept between runs).
Each command runs in its own process; wall time is measured around it and peak
memory (RSS) is read from the kernel's accounting for that process (wait4).
Peers that are not installed are skipped with a note. Ratios are peer / medconv
(> 1 means medconv is faster); only ratios from one run mean anything.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("MEDCONV_BENCH_CACHE", os.path.join(ROOT, ".bench-cache"))
BIN = os.path.dirname(sys.executable)
PY = sys.executable
MEDCONV = [PY, "-m", "medconv"] if not os.path.exists(os.path.join(BIN, "medconv")) else [os.path.join(BIN, "medconv")]


# -- fixtures -----------------------------------------------------------------------------
def _ct_volume(shape, seed=7):
    import numpy as np

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    # a smooth body-like phantom with noise: compresses like real CT, not like white noise
    x = np.linspace(-1, 1, nx, dtype=np.float32)[:, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :]
    body = ((x / 0.8) ** 2 + (y / 0.6) ** 2) < 1
    vol = np.empty(shape, dtype=np.int16)
    for k in range(nz):
        noise = rng.normal(0, 20, (nx, ny)).astype(np.float32)
        sl = np.where(body, 40 + noise + 300 * (((x - 0.2 * np.sin(k / 20)) ** 2 + y**2) < 0.04), -1000 + noise / 4)
        vol[:, :, k] = sl.astype(np.int16) + 1024
    return vol


def fixture_dicom_series(shape=(512, 512, 200)):
    """A CT series of single-frame files with shuffled, meaningless names."""
    out = os.path.join(CACHE, f"ct_dicom_{shape[0]}x{shape[1]}x{shape[2]}")
    if os.path.isdir(out) and len(os.listdir(out)) == shape[2]:
        return out
    import random

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    vol = _ct_volume(shape)
    study, series, frame = (generate_uid(entropy_srcs=[s]) for s in ("study", "series", "for"))
    order = list(range(shape[2]))
    random.Random(3).shuffle(order)
    for name_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop = generate_uid(entropy_srcs=["sop", str(k)])
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 3, shape[2] - k
        ds.PatientName, ds.PatientID = "Bench^Phantom", "BENCH01"
        ds.SeriesDescription = "bench phantom"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-250.0, -250.0, -300.0 + 1.25 * k]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.25
        ds.Rows, ds.Columns = shape[1], shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.ascontiguousarray(vol[:, :, k].T).tobytes()
        ds.save_as(os.path.join(tmp, f"IM{name_index * 7919 % 100003:06d}"), enforce_file_format=True)
    os.replace(tmp, out)
    return out


def fixture_nifti(shape=(512, 512, 300), name=None):
    import numpy as np

    path = os.path.join(CACHE, name or f"ct_{shape[0]}x{shape[1]}x{shape[2]}.nii.gz")
    if os.path.exists(path):
        return path
    sys.path.insert(0, ROOT)
    import medconv
    from medconv.volume import Volume

    aff = np.diag([0.9765625, 0.9765625, 1.25, 1.0])
    aff[:3, 3] = [-250.0, -250.0, -300.0]
    medconv.write(Volume(data=_ct_volume(shape), affine=aff, scaling=(1.0, -1024.0)), path, force=True)
    return path


def fixture_many_small(n=1000):
    out = os.path.join(CACHE, f"small_{n}")
    if os.path.isdir(out) and len(os.listdir(out)) == n:
        return out
    import numpy as np

    sys.path.insert(0, ROOT)
    import medconv
    from medconv.volume import Volume

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = np.random.default_rng(1)
    for i in range(n):
        data = rng.integers(0, 1000, (16, 16, 8), dtype=np.int16)
        medconv.write(Volume(data=data, affine=np.diag([1.0, 1.0, 2.0, 1.0])), os.path.join(tmp, f"s{i:04d}.nii.gz"))
    os.replace(tmp, out)
    return out


def fixture_certificate():
    """A self-signed certificate for gdcmanon's basic profile (it encrypts the original values)."""
    cert = os.path.join(CACHE, "gdcmanon_cert.pem")
    if os.path.exists(cert):
        return cert
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    key = os.path.join(CACHE, "gdcmanon_key.pem")
    proc = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                           "-days", "3650", "-subj", "/CN=medconv-bench"], capture_output=True)
    return cert if proc.returncode == 0 and os.path.exists(cert) else None


def fixture_anon_tree(n=2000, per_series=100):
    """`n` small CT files (64x64) in series of `per_series`, with patient and study values to remove."""
    out = os.path.join(CACHE, f"anon_tree_{n}")
    if os.path.isdir(out):
        return out
    import numpy as np
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(3)
    study, frame = generate_uid(), generate_uid()
    for s_idx in range(n // per_series):
        series = generate_uid()
        sdir = os.path.join(tmp, f"series{s_idx:03d}")
        os.makedirs(sdir)
        for k in range(per_series):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Bench^Patient", "BENCH-0001", "19600101"
            ds.InstitutionName, ds.ReferringPhysicianName = "Bench Hospital", "Doctor^Bench"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240102", "101500", "ACC1", "S1"
            ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", s_idx + 1, k + 1
            ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.5 * k], [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
            ds.Rows = ds.Columns = 64
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.PixelData = rng.integers(0, 2000, (64, 64), dtype=np.int16).tobytes()
            pydicom.dcmwrite(os.path.join(sdir, f"IM{k:04d}"), ds, enforce_file_format=True)
    os.replace(tmp, out)
    return out


def fixture_enhanced_mr(shape=(96, 96, 40, 9)):
    """One Philips-style enhanced MR file, rows x cols x slices x volumes frames (per-frame functional
    groups, private scale slope), its frames stored in a shuffled order."""
    rows, cols, nz, nt = shape
    out = os.path.join(CACHE, f"enhanced_mr_{rows}x{cols}x{nz}x{nt}")
    if os.path.isfile(os.path.join(out, "enhanced.dcm")):
        return out
    import random

    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tests", "dicom"))
    from enhgen import IN_STACK, STACK, TEMPORAL, frame, write_enhanced

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    vol = _ct_volume((rows, cols, nz), seed=11).astype(np.int32) - 1024
    specs = [(k, t) for t in range(nt) for k in range(nz)]
    random.Random(5).shuffle(specs)
    frames = [frame(k, te=30.0, temporal=t + 1, dims=(1, k + 1, t + 1), rs=1.25, ss=0.01) for k, t in specs]
    pixels = [np.clip(vol[:, :, k] + 7 * t, 0, 4095) for k, t in specs]
    write_enhanced(os.path.join(tmp, "enhanced.dcm"), frames, pixels, dim_pointers=(STACK, IN_STACK, TEMPORAL),
                   bits_stored=12)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


#: dcm2niix's vendor validation corpora, when the project sits beside them
VENDOR_CORPORA = os.path.join(ROOT, "..", "shared", "testdata", "vendor")


# -- running --------------------------------------------------------------------------------
def measure(argv, repeats, setup=None, shell=False):
    """(times, peak RSS in bytes, error text) for running argv `repeats` times."""
    times, peak = [], 0
    for _ in range(repeats):
        if setup:
            setup()
        start = time.perf_counter()
        with tempfile.TemporaryFile() as errfile:  # a file, not a pipe: a chatty tool cannot block on it
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errfile, shell=shell)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            errfile.seek(0)
            err = errfile.read().decode(errors="replace")
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            return times, peak, (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:150]
        times.append(elapsed)
        peak = max(peak, usage.ru_maxrss * 1024)
    return times, peak, None


def which(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


#: files the one-process-per-file loops really run (their time is scaled to the task's count)
LOOP_SAMPLE = 50


def python_snippet(code):
    return [PY, "-c", code]


SITK_SERIES = """
import sys, SimpleITK as sitk
r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(sys.argv[1]))
sitk.WriteImage(r.Execute(), sys.argv[2], useCompression=sys.argv[2].endswith('.gz'))
"""
SITK_CONVERT = """
import sys, SimpleITK as sitk
sitk.WriteImage(sitk.ReadImage(sys.argv[1]), sys.argv[2], useCompression=sys.argv[2].endswith('.gz'))
"""
NIB_CONVERT = """
import sys, nibabel as nib
nib.save(nib.load(sys.argv[1]), sys.argv[2])
"""
DICOM2NIFTI = """
import sys, dicom2nifti, dicom2nifti.settings as s
s.disable_validate_slice_increment()
dicom2nifti.dicom_series_to_nifti(sys.argv[1], sys.argv[2], reorient_nifti=False)
"""
DCMANON_TREE = """
import os, sys, dcmanon
anonymizer, src, dst = dcmanon.Anonymizer(), sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(src):
    dirs.sort()
    out = os.path.join(dst, os.path.relpath(root, src))
    os.makedirs(out, exist_ok=True)
    for name in sorted(files):
        data = anonymizer.anonymize(os.path.join(root, name))
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
"""
NIB_STATS = """
import sys, numpy as np, nibabel as nib
d = nib.load(sys.argv[1]).get_fdata(dtype=np.float32)
print(d.mean(), d.std(), np.median(d), *np.percentile(d, [2, 98]))
"""

MEDCONV_READ = """
import sys, medconv
for path in sys.argv[1:]:
    medconv.read(path).array
"""


def tasks(repeats):
    """[(task, [(tool, argv or None, note, setup)])]; argv None = skipped (note says why)."""
    out_dir = os.path.join(CACHE, "out")
    os.makedirs(out_dir, exist_ok=True)

    def clean(*names):
        def setup():
            for n in names:
                p = os.path.join(out_dir, n)
                if os.path.isdir(p):
                    shutil.rmtree(p)
                elif os.path.exists(p):
                    os.unlink(p)
        return setup

    rows = []
    series = fixture_dicom_series()
    nii = fixture_nifti()
    small_dir = fixture_many_small()
    small = sorted(os.path.join(small_dir, f) for f in os.listdir(small_dir))
    one = small[0]
    d2x = which("dcm2niix")
    for ext, zflag in ((".nii.gz", "y"), (".nii", "n")):
        # one folder per output kind, so the .nii.gz stays for the size comparison at the end
        d2x_dir = os.path.join(out_dir, "d2x" if zflag == "y" else "d2x_nii")

        def d2x_setup(d2x_dir=d2x_dir):
            shutil.rmtree(d2x_dir, ignore_errors=True)
            os.makedirs(d2x_dir)

        target = os.path.join(out_dir, "ct" + ext)
        rows.append((f"DICOM 512x512x200 -> {ext}", [
            ("medconv", MEDCONV + ["convert", series, target, "--force"], "", clean("ct" + ext)),
            ("dcm2niix", [d2x, "-z", zflag, "-b", "n", "-f", "ct", "-o", d2x_dir, series] if d2x else None,
             "" if d2x else "not installed", d2x_setup),
            ("dicom2nifti", python_snippet(DICOM2NIFTI) + [series, os.path.join(out_dir, "d2n" + ext)],
             "", clean("d2n" + ext)),
            ("SimpleITK", python_snippet(SITK_SERIES) + [series, os.path.join(out_dir, "sitk" + ext)],
             "", clean("sitk" + ext)),
        ]))
    # enhanced multi-frame and vendor exports, to .nii.gz beside dcm2niix (which uses pigz when on PATH)
    vendor_inputs = [("enhanced MR 96x96x40x9 (360 frames)", fixture_enhanced_mr())]
    if os.path.isdir(VENDOR_CORPORA):
        vendor_inputs += [(f"vendor {name}", os.path.join(VENDOR_CORPORA, name, "In"))
                          for name in sorted(os.listdir(VENDOR_CORPORA))
                          if os.path.isdir(os.path.join(VENDOR_CORPORA, name, "In"))]
    else:
        print(f"note: {VENDOR_CORPORA} absent: the vendor corpus rows are skipped", flush=True)
    for label, src in vendor_inputs:
        key = label.split(" (")[0].replace(" ", "_")
        mine, theirs = os.path.join(out_dir, key), os.path.join(out_dir, key + "_d2x")

        def fresh(*dirs):
            def setup():
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
                    os.makedirs(d)
            return setup

        rows.append((f"{label} -> .nii.gz", [
            ("medconv", MEDCONV + ["convert", src, "-o", mine, "--to", "nifti1", "-q", "--keep-going"], "",
             fresh(mine)),
            ("dcm2niix", [d2x, "-z", "y", "-b", "n", "-o", theirs, src] if d2x else None,
             "" if d2x else "not installed", fresh(theirs)),
        ]))
    rows.append(("info, one NIfTI", [
        ("medconv", MEDCONV + ["info", one], "", None),
        ("nib-ls", [which("nib-ls"), one] if which("nib-ls") else None, "", None),
        ("mrinfo", [which("mrinfo"), one] if which("mrinfo") else None, "not installed", None),
        ("fslinfo", [which("fslinfo"), one] if which("fslinfo") else None, "not installed", None),
    ]))
    rows.append(("medconv --version", [("medconv", MEDCONV + ["--version"], "", None)]))
    listing = os.path.join(CACHE, "small_list.txt")
    with open(listing, "w") as fh:
        fh.write("\n".join(small) + "\n")
    loop = (f"while read f; do {which('mrinfo')} \"$f\" >/dev/null; done < {listing}") if which("mrinfo") else None
    rows.append(("info, 1000 small .nii.gz", [
        ("medconv", MEDCONV + ["info", "--from-list", listing, "--json"], "", None),
        ("mrinfo loop", ["bash", "-c", loop] if loop else None, "not installed (Debian mrtrix3)", None),
        ("nib-ls", [which("nib-ls")] + small if which("nib-ls") else None, "one call, 1000 files", None),
    ]))
    rows.append(("stats median p2 p98, 512x512x300", [
        ("medconv", MEDCONV + ["stats", nii, "--percentile", "2", "98"], "", None),
        ("nibabel+numpy", python_snippet(NIB_STATS) + [nii], "", None),
        ("mrstats", [which("mrstats"), nii] if which("mrstats") else None, "not installed", None),
        ("fslstats", [which("fslstats"), nii, "-M", "-S", "-P", "50"] if which("fslstats") else None,
         "not installed", None),
        ("plastimatch stats", [which("plastimatch"), "stats", nii] if which("plastimatch") else None,
         "not installed", None),
    ]))
    twin = fixture_nifti(name="ct_512x512x300_twin.nii.gz")  # same voxels, another file
    rows.append(("diff two 512x512x300 .nii.gz", [
        ("medconv", MEDCONV + ["diff", nii, twin], "", None),
        ("medconv read", python_snippet(MEDCONV_READ) + [nii, twin], "both arrays read once (the 1.5x bound)",
         None),
        ("nib-diff", [which("nib-diff"), nii, twin] if which("nib-diff") else None, "", None),
    ]))
    rows.append(("view 512x512x300 .nii.gz -> PNG", [
        ("medconv", MEDCONV + ["view", nii, "-o", os.path.join(out_dir, "view.png"), "--force"], "", None),
    ]))
    mhd = os.path.join(out_dir, "ct.mhd")
    back = os.path.join(out_dir, "back.nii.gz")
    rows.append((".nii.gz -> .mhd, 512x512x300", [
        ("medconv", MEDCONV + ["convert", nii, mhd, "--force"], "", clean("ct.mhd", "ct.raw")),
        ("SimpleITK", python_snippet(SITK_CONVERT) + [nii, os.path.join(out_dir, "sitk.mhd")], "",
         clean("sitk.mhd", "sitk.raw")),
        ("nibabel", None, "cannot write MetaImage", None),
    ]))
    rows.append((".mhd -> .nii.gz, 512x512x300", [
        ("medconv", MEDCONV + ["convert", mhd, back, "--force"], "", clean("back.nii.gz")),
        ("SimpleITK", python_snippet(SITK_CONVERT) + [mhd, os.path.join(out_dir, "sitk_back.nii.gz")], "",
         clean("sitk_back.nii.gz")),
    ]))
    rows.append((".nii.gz -> .nii.gz copy, 512x512x300", [
        ("medconv", MEDCONV + ["convert", nii, os.path.join(out_dir, "copy.nii.gz"), "--force"], "",
         clean("copy.nii.gz")),
        ("SimpleITK", python_snippet(SITK_CONVERT) + [nii, os.path.join(out_dir, "sitk_copy.nii.gz")], "",
         clean("sitk_copy.nii.gz")),
        ("nibabel", python_snippet(NIB_CONVERT) + [nii, os.path.join(out_dir, "nib_copy.nii.gz")], "",
         clean("nib_copy.nii.gz")),
    ]))
    # many small files: one call with -j 2 against one process per file
    batch = small[:500]
    list500 = os.path.join(CACHE, "small_list_500.txt")
    with open(list500, "w") as fh:
        fh.write("\n".join(batch) + "\n")
    # the per-file loops run on the first LOOP_SAMPLE files and are scaled to 500 (one process per
    # file costs the same for each file), which keeps the whole bench inside 10 minutes
    list_loop = os.path.join(CACHE, "small_list_loop.txt")
    with open(list_loop, "w") as fh:
        fh.write("\n".join(batch[:LOOP_SAMPLE]) + "\n")
    mha_dir = os.path.join(out_dir, "mha500")
    med_loop = (f"mkdir -p {mha_dir}_loop; while read f; do b=$(basename \"$f\" .nii.gz); "
                f"{' '.join(MEDCONV)} convert \"$f\" {mha_dir}_loop/$b.mha --force; done < {list_loop}")
    sitk_loop = (f"mkdir -p {mha_dir}_sitk; while read f; do b=$(basename \"$f\" .nii.gz); {PY} -c "
                 f"\"import sys, SimpleITK as s; s.WriteImage(s.ReadImage(sys.argv[1]), sys.argv[2])\" "
                 f"\"$f\" {mha_dir}_sitk/$b.mha; done < {list_loop}")
    rows.append(("500 small .nii.gz -> .mha", [
        ("medconv", MEDCONV + ["convert", "--from-list", list500, "-o", mha_dir, "--to", "metaimage", "-j", "2",
                               "-q"], "one call, -j 2", clean("mha500")),
        ("medconv loop", ["bash", "-c", med_loop], f"one call per file; {LOOP_SAMPLE} files x {500 // LOOP_SAMPLE}",
         clean("mha500_loop")),
        ("SimpleITK loop", ["bash", "-c", sitk_loop], f"one python -c per file; {LOOP_SAMPLE} files x "
         f"{500 // LOOP_SAMPLE}", clean("mha500_sitk")),
    ]))
    tree = fixture_anon_tree()
    gdcmanon = which("gdcmanon")
    cert = fixture_certificate() if gdcmanon else None
    if not gdcmanon:
        gdcm_note = "not installed (Debian libgdcm-tools, or python-gdcm)"
    elif not cert:
        gdcm_note = "needs a certificate for its PS3.15 profile, and openssl is not installed"
    else:
        gdcm_note = "PS3.15 basic profile (-e, AES-256 encrypted originals)"
    rows.append(("anonymize 2000 DICOM files", [
        ("medconv", MEDCONV + ["anonymize", tree, "-o", os.path.join(out_dir, "anon"), "--key", "bench", "-q"],
         f"-j {os.cpu_count()} (default)", clean("anon")),
        ("dicognito", [PY, "-m", "dicognito", "--quiet", "-o", os.path.join(out_dir, "anon_dcg"), tree],
         "", clean("anon_dcg")),
        ("gdcmanon", [gdcmanon, "-e", "-c", cert, "--continue", "-r", "-i", tree, "-o",
                      os.path.join(out_dir, "anon_gdcm")] if gdcmanon and cert else None,
         gdcm_note, clean("anon_gdcm")),
        ("dcmanon", python_snippet(DCMANON_TREE) + [tree, os.path.join(out_dir, "anon_dcmanon")]
         if importlib.util.find_spec("dcmanon") else None,
         "Rust, its default rules, files written from a Python loop" if importlib.util.find_spec("dcmanon")
         else "not installed (pip install dcmanon)", clean("anon_dcmanon")),
    ]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "3")))
    parser.add_argument("--only", help="run only tasks whose name contains this text")
    parser.add_argument("--fixtures-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    if args.fixtures_only:
        fixture_dicom_series(), fixture_nifti(), fixture_many_small(), fixture_anon_tree(), fixture_enhanced_mr()
        fixture_nifti(name="ct_512x512x300_twin.nii.gz")
        return
    # fixtures are made in a child process: a forked child starts with its parent's peak RSS,
    # so the measuring process itself must stay small
    subprocess.run([PY, os.path.abspath(__file__), "--fixtures-only"], check=True)
    t0 = time.perf_counter()
    print(f"medconv bench: {os.cpu_count()} CPUs, {args.repeats} runs each, fixtures in {CACHE}", flush=True)
    results = []
    for task, tools in tasks(args.repeats):
        if args.only and args.only not in task:
            continue
        base = None
        for tool, argv, note, setup in tools:
            if argv is not None and (note or "").startswith("not installed"):
                note = ""  # the note names what to install; this peer is there
            if argv is None:
                results.append((task, tool, None, None, None, None, None, note or "not installed"))
                continue
            times, peak, err = measure(argv, args.repeats if tool == "medconv" or "loop" not in tool else 1, setup)
            if "files x " in (note or ""):
                times = [t * int(note.rsplit("x ", 1)[1]) for t in times]
            if err:
                results.append((task, tool, None, None, None, None, None, f"failed: {err}"))
                continue
            med = statistics.median(times)
            if tool == "medconv":
                base = med
            ratio = (med / base) if base else None
            results.append((task, tool, med, min(times), max(times), ratio, peak, note))
            print(f"  {task:<38} {tool:<14} {med:8.3f} s", flush=True)
    extra = []
    d2x = which("dcm2niix")
    if d2x:
        found = shutil.which("pigz") is not None
        extra.append(f"dcm2niix {'found' if found else 'did not find'} pigz on PATH")
    out_dir = os.path.join(CACHE, "out")
    for ours, theirs in (("ct.nii.gz", "d2x/ct.nii.gz"),):
        a, b = os.path.join(out_dir, ours), os.path.join(out_dir, theirs)
        if os.path.exists(a) and os.path.exists(b):
            extra.append(f".nii.gz size: medconv {os.path.getsize(a) / 1e6:.1f} MB, dcm2niix {os.path.getsize(b) / 1e6:.1f}"
                         f" MB (ratio {os.path.getsize(a) / os.path.getsize(b):.3f})")
    print()
    header = ("task", "tool", "median s", "min s", "max s", "peer/medconv", "peak RSS MB", "note")
    lines = [header]
    for task, tool, med, lo, hi, ratio, peak, note in results:
        def f(v):
            return (f"{v:.3f}" if v is not None else "-")
        lines.append((task, tool, f(med), f(lo), f(hi), f"{ratio:.2f}" if ratio else "-",
                      f"{peak / 1e6:.0f}" if peak else "-", note or ""))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    for row in lines:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    for e in extra:
        print(e)
    print(f"total bench time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
