"""Batches: --from-list, ordered -j, naming and clashes, --dry-run, --skip-existing/--update,
--keep-going summaries, Ctrl-C, progress only on a terminal, DICOM series to separate outputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import medconv
from helpers import ROOT, assert_clean_error, make_volume, run
from medconv import batch, naming
from medconv.errors import InputError, OutputError


def _files(tmp_path, n, shapes=None):
    """n small NIfTI files in their own folders, all named img.nii.gz (so stems clash)."""
    out = []
    for i in range(n):
        shape = shapes[i] if shapes else (4 + i, 3, 2)
        p = tmp_path / f"d{i}" / "img.nii.gz"
        medconv.write(make_volume(shape, "int16", seed=i), p)
        out.append(str(p))
    return out


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def run_stdin(text, *argv):
    """Run the CLI in-process with `text` on stdin."""
    import io

    old = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        return run(*argv)
    finally:
        sys.stdin = old


# ---- --from-list and order ------------------------------------------------------------------

def test_from_list_stdin_converts_every_listed_file(tmp_path):
    srcs = _files(tmp_path, 3)
    out = tmp_path / "out"
    text = "# a comment\n" + "\n".join(srcs) + "\n\n"
    r = run_stdin(text, "convert", "--from-list", "-", "-o", out, "--to", "nifti1", "--name", "{parent}", "-j", "1")
    assert r.code == 0, r.err
    assert _listing(out) == ["d0.nii.gz", "d1.nii.gz", "d2.nii.gz"]
    for i, src in enumerate(srcs):
        assert np.array_equal(medconv.read(out / f"d{i}.nii.gz").array, medconv.read(src).array)


def test_from_list_file_plus_arguments_for_info(tmp_path):
    srcs = _files(tmp_path, 3)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(srcs[1:]) + "\n")
    r = run("info", srcs[0], "--from-list", listing, "--get", "path")
    assert r.code == 0, r.err
    assert r.out.split() == srcs


def test_from_list_missing_file_is_an_input_error(tmp_path):
    r = run("info", "--from-list", tmp_path / "nope.txt")
    assert r.code in (2, 3)
    assert "Traceback" not in r.err and "medconv: error:" in r.err


def test_info_order_follows_input_order_with_two_jobs(tmp_path):
    # the first inputs are the largest, so with a pool they tend to finish last
    shapes = [(40, 40, 30), (30, 30, 30), (3, 3, 2), (2, 2, 2), (4, 2, 2), (3, 2, 2)]
    srcs = _files(tmp_path, 6, shapes)
    r = run("info", *srcs, "-j", "2", "--get", "path", "--get", "shape")
    assert r.code == 0, r.err
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert [row[0] for row in rows] == srcs
    assert [tuple(int(v) for v in row[1].split()) for row in rows] == shapes
    doc = json.loads(run("info", *srcs, "-j", "2", "--json").out)
    assert [d["path"] for d in doc] == srcs


def test_batch_run_pool_keeps_input_order_and_rebuilds_errors():
    results, failures = batch.run(list(range(8)), _slow_square, jobs=2, keep_going=True)
    assert results == [i * i for i in range(8) if i != 5]
    assert len(failures) == 1 and failures[0][0] == 5
    err = failures[0][1]
    assert isinstance(err, OutputError) and err.path == "item5" and err.exit_code == 4
    with pytest.raises(OutputError):
        batch.run(list(range(8)), _slow_square, jobs=2)


def _slow_square(i):
    time.sleep(0.02 * (8 - i))  # early items finish last
    if i == 5:
        raise OutputError("cannot write", f"item{i}")
    return i * i


def test_batch_run_serial_signature_still_works():
    seen = []
    results, failures = batch.run(["a", "b"], lambda x: x.upper(), keep_going=True, on_error=seen.append)
    assert results == ["A", "B"] and failures == [] and seen == []


def test_convert_with_two_jobs_gives_same_outputs_as_serial(tmp_path):
    srcs = _files(tmp_path, 4)
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        r = run("convert", *srcs, "-o", out, "--to", "mgz", "--name", "{parent}_{index:02d}", "-j", jobs)
        assert r.code == 0, r.err
        assert _listing(out) == [f"d{i}_{i:02d}.mgz" for i in range(4)]
    for i in range(4):
        a = medconv.read(tmp_path / "out1" / f"d{i}_{i:02d}.mgz").array
        b = medconv.read(tmp_path / "out2" / f"d{i}_{i:02d}.mgz").array
        assert np.array_equal(a, b) and np.array_equal(a, medconv.read(srcs[i]).array)


# ---- naming ---------------------------------------------------------------------------------

def test_name_clashes_get_distinct_names_and_a_warning(tmp_path):
    srcs = _files(tmp_path, 3)
    out = tmp_path / "out"
    r = run("convert", *srcs, "-o", out, "--to", "nifti1")
    assert r.code == 0, r.err
    assert _listing(out) == ["img.nii.gz", "img_2.nii.gz", "img_3.nii.gz"]
    assert r.err.count("already used") == 2
    # deterministic: the same mapping each run (dry run shows it)
    r2 = run("convert", *srcs, "-o", tmp_path / "o2", "--to", "nifti1", "--dry-run")
    assert [l.split(" -> ")[1] for l in r2.out.splitlines()] == [
        str(tmp_path / "o2" / n) for n in ("img.nii.gz", "img_2.nii.gz", "img_3.nii.gz")]


def test_unique_names_never_reuse_a_natural_name():
    names = naming.unique_names(["a", "a_2", "a", "A"])
    assert len({n.lower() for n in names}) == 4
    assert names[:2] == ["a", "a_2"]


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "/abs/path", "a/b\\c", "evil\x00\x07\n\tname", "..",
                                     ".hidden", "x" * 5000, "CON", "ünïcødé 名前", "", "-rf", "--force", "._-x"])
def test_sanitise_gives_one_safe_component(hostile):
    safe = naming.sanitise(hostile)
    assert safe and "/" not in safe and "\\" not in safe and ".." not in safe
    assert not safe.startswith((".", "-")) and len(safe) <= naming.MAX_COMPONENT
    assert all(32 < ord(c) < 127 for c in safe)
    assert safe.lower() not in ("con", "nul")
    assert os.path.basename(os.path.join("/out", safe)) == safe


def test_hostile_series_description_stays_inside_outdir(tmp_path):
    fields = naming.fields_for(str(tmp_path / "x.nii"), 0, {"series_number": 3,
                                                             "series_description": "../../\x1b[31mevil/" + "y" * 400})
    name = naming.render_name(naming.SERIES_TEMPLATE, fields)
    dst = naming.destination(str(tmp_path / "out"), name, "nifti1")
    assert os.path.dirname(dst) == str(tmp_path / "out")
    assert name.startswith("3_") and len(name) <= naming.MAX_COMPONENT and "\x1b" not in name


@pytest.mark.parametrize("template", ["{nope}", "{stem.__class__}", "{stem!r}", "{index:>999999999}", "{stem"])
def test_bad_templates_are_usage_errors(tmp_path, template):
    srcs = _files(tmp_path, 1)
    r = run("convert", *srcs, "-o", tmp_path / "out", "--to", "nifti1", "--name", template)
    assert_clean_error(r, 2, "template")
    assert not (tmp_path / "out").exists()


def test_number_width_with_a_missing_field_renders_it_empty():
    fields = naming.fields_for("/d/img.nii.gz", 4, None)  # not DICOM: no series number
    assert naming.render_name("{series_number:03d}_{stem}", fields) == "img"
    assert naming.render_name("{series_number:03d}_{stem}_{index:03d}", fields) == "img_004"
    fields = naming.fields_for("/d/img.nii.gz", 0, {"series_number": 7})
    assert naming.render_name("{series_number:03d}_{stem}", fields) == "007_img"
    fields = naming.fields_for("/d/img.nii.gz", 0, {"series_number": "12"})  # a number read as text
    assert naming.render_name("{series_number:03d}_{stem}", fields) == "012_img"
    assert naming.render_name("{stem}", naming.fields_for("/d/007.nii", 0)) == "007"  # text stays text
    fields = naming.fields_for("/d/img.nii.gz", 0, {"series_number": "4a/../b"})
    assert naming.render_name("{series_number:03d}_{stem}", fields) == "4a_._b_img"


def test_number_width_template_survives_inputs_without_the_field(tmp_path):
    pytest.importorskip("pydicom")
    import dcmgen

    srcs = _files(tmp_path, 1)
    dcm = tmp_path / "s.dcm"
    dcmgen.write_slice(str(dcm), np.full((6, 5), 3, np.int16), ipp=(0, 0, 0), series_number=5)
    blank = tmp_path / "blank.dcm"
    dcmgen.write_slice(str(blank), np.full((6, 5), 3, np.int16), ipp=(0, 0, 0), series_number="",
                       series_uid="1.2.3.9")
    out = tmp_path / "out"
    r = run("convert", srcs[0], dcm, blank, "-o", out, "--to", "nifti1", "--name", "{series_number:03d}_{stem}")
    assert r.code == 0, r.err
    assert _listing(out) == ["005_s.nii.gz", "blank.nii.gz", "img.nii.gz"]


# ---- dry run, skip-existing, update -----------------------------------------------------------

def test_dry_run_writes_nothing(tmp_path):
    srcs = _files(tmp_path, 2)
    out = tmp_path / "out"
    before = _listing(tmp_path)
    r = run("convert", *srcs, "-o", out, "--to", "nifti1", "--name", "{parent}", "--dry-run")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"{s} -> {out / f'd{i}.nii.gz'}" for i, s in enumerate(srcs)]
    assert not out.exists() and _listing(tmp_path) == before
    r = run("convert", srcs[0], tmp_path / "single.mgz", "-n")
    assert r.code == 0 and r.out.strip() == f"{srcs[0]} -> {tmp_path / 'single.mgz'}"
    assert not (tmp_path / "single.mgz").exists()
    # a dry run makes the run's checks: a missing input fails as the run would (exit 3)
    r = run("convert", tmp_path / "gone.nii", tmp_path / "single.mgz", "-n")
    assert_clean_error(r, 3, "gone.nii", "no such file")
    assert r.out == ""


def test_skip_existing_and_update_follow_mtimes(tmp_path):
    srcs = _files(tmp_path, 2)
    out = tmp_path / "out"
    args = ("convert", *srcs, "-o", out, "--to", "nifti1", "--name", "{parent}")
    assert run(*args).code == 0
    d0, d1 = out / "d0.nii.gz", out / "d1.nii.gz"
    # without a flag the rerun refuses to overwrite (exit 4)
    assert_clean_error(run(*args), 4, "exists")
    r = run(*args, "--skip-existing")
    assert r.code == 0 and "2 of 2 inputs skipped" in r.err
    # make d0's source newer than its output, d1's output newer than its source
    old, new = time.time() - 1000, time.time()
    os.utime(d0, (old, old))
    os.utime(srcs[0], (new, new))
    os.utime(d1, (new, new))
    os.utime(srcs[1], (old, old))
    medconv.write(make_volume((5, 5, 5), "int16", seed=99), srcs[0], force=True)  # new content too
    plan = run(*args, "--update", "--dry-run").out.splitlines()
    assert "skipped" not in plan[0] and "skipped: destination is up to date" in plan[1]
    mtime_d1 = os.stat(d1).st_mtime
    r = run(*args, "--update")
    assert r.code == 0, r.err
    assert medconv.read(d0).shape == (5, 5, 5)
    assert os.stat(d1).st_mtime == mtime_d1
    # --skip-existing leaves changed sources alone
    assert run(*args, "--skip-existing").code == 0 and medconv.read(d1).shape == (5, 3, 2)
    assert_clean_error(run(*args, "--skip-existing", "--update"), 2)


def test_skip_existing_and_update_see_every_file_of_a_pair(tmp_path):
    srcs = []
    for i in range(2):  # axis-aligned, so Analyze can hold them
        srcs.append(str(tmp_path / f"d{i}" / "img.nii.gz"))
        medconv.write(make_volume((4, 3, 2), "int16", seed=i, affine=np.diag([1.0, 2.0, 3.0, 1.0])), srcs[-1])
    out = tmp_path / "out"
    args = ("convert", *srcs, "-o", out, "--to", "analyze", "--name", "{parent}")
    assert run(*args).code == 0
    assert _listing(out) == ["d0.hdr", "d0.img", "d1.hdr", "d1.img"]
    # a half-written pair (the .img never arrived) is not done: --skip-existing redoes it
    os.unlink(out / "d0.img")
    plan = run(*args, "--skip-existing", "--dry-run").out.splitlines()
    assert "skipped" not in plan[0] and "skipped: destination exists" in plan[1]
    r = run(*args, "--skip-existing")
    assert r.code == 0, r.err
    assert _listing(out) == ["d0.hdr", "d0.img", "d1.hdr", "d1.img"]
    assert np.array_equal(medconv.read(out / "d0.hdr").reoriented("RAS").array, medconv.read(srcs[0]).array)
    # --update compares the source with the oldest file of the output
    old, new = time.time() - 1000, time.time()
    for f in ("d0.hdr", "d1.hdr", "d1.img"):
        os.utime(out / f, (new + 10, new + 10))
    os.utime(out / "d0.img", (old, old))
    for s in srcs:
        os.utime(s, (new, new))
    plan = run(*args, "--update", "--dry-run").out.splitlines()
    assert "skipped" not in plan[0] and "skipped: destination is up to date" in plan[1]
    # a single-file output and a MetaImage header with its data file
    mhd = tmp_path / "one.mhd"
    assert run("convert", srcs[0], mhd).code == 0
    os.unlink(tmp_path / "one.raw")
    r = run("convert", srcs[0], mhd, "--skip-existing")
    assert r.code == 0 and "skipped" not in r.err and (tmp_path / "one.raw").exists()


# ---- keep going ------------------------------------------------------------------------------

def _with_bad(tmp_path):
    srcs = _files(tmp_path, 2)
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"\x5c\x01\x00\x00" + b"garbage" * 10)
    missing = tmp_path / "missing.nii.gz"
    return [srcs[0], str(bad), str(missing), srcs[1]]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_keep_going_tries_everything_and_exits_5_with_a_summary(tmp_path, jobs):
    inputs = _with_bad(tmp_path)
    out = tmp_path / "out"
    r = run("convert", *inputs, "-o", out, "--to", "nifti1", "--name", "{parent}_{stem}", "-k", "-j", jobs)
    assert_clean_error(r, 5, "2 of 4")
    assert _listing(out) == ["d0_img.nii.gz", "d1_img.nii.gz"]
    summary = r.err[r.err.index("inputs failed:"):]
    assert "bad.nii" in summary and "missing.nii.gz" in summary and "(exit 3)" in summary
    assert not [f for f in _listing(tmp_path) if f.endswith(".part")]


def test_keep_going_batch_of_200_with_one_corrupt_file(tmp_path):
    import nibabel as nib

    src = tmp_path / "src"
    src.mkdir()
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    inputs = []
    for i in range(200):
        p = src / f"s{i:03d}.nii"
        if i == 137:
            p.write_bytes(b"\x5c\x01\x00\x00" + b"\xff" * 200)  # NIfTI-sized start, garbage after
        else:
            nib.save(nib.Nifti1Image(np.full((2, 2, 2), i, np.int16), affine), str(p))
        inputs.append(str(p))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(inputs) + "\n")
    out = tmp_path / "out"
    r = run("convert", "--from-list", listing, "-o", out, "--to", "nifti1", "-k", "-j", "2")
    assert_clean_error(r, 5, "1 of 200")
    written = _listing(out)
    assert len(written) == 199 and "s137.nii.gz" not in written
    summary = r.err[r.err.index("inputs failed:"):r.err.index("medconv: error:")].strip().splitlines()
    assert len(summary) == 2 and "s137.nii" in summary[1] and "(exit 3)" in summary[1], r.err
    assert medconv.read(out / "s199.nii.gz").array.max() == 199
    assert not [f for f in _listing(tmp_path) if ".part" in f]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_first_failure_stops_without_keep_going(tmp_path, jobs):
    inputs = _with_bad(tmp_path)
    out = tmp_path / "out"
    r = run("convert", *inputs, "-o", out, "--to", "nifti1", "--name", "{parent}_{stem}", "-j", jobs)
    assert_clean_error(r, 3, "bad.nii")
    assert "d1_img.nii.gz" not in _listing(out) or jobs == "2"  # a pool may already have finished it
    assert "summary" not in r.err and "inputs failed" not in r.err
    assert not [f for f in _listing(tmp_path) if ".part" in f]


def test_output_errors_exit_4_without_keep_going(tmp_path):
    srcs = _files(tmp_path, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img.nii.gz").write_bytes(b"precious")
    assert_clean_error(run("convert", *srcs, "-o", out, "--to", "nifti1"), 4, "exists")
    assert (out / "img.nii.gz").read_bytes() == b"precious"


def test_info_keep_going_prints_good_rows_in_order(tmp_path):
    inputs = _with_bad(tmp_path)
    r = run("info", *inputs, "-k", "-j", "2", "--get", "path")
    assert_clean_error(r, 5, "2 of 4")
    assert r.out.split() == [inputs[0], inputs[3]]


# ---- usage errors ----------------------------------------------------------------------------

def test_usage_errors(tmp_path):
    srcs = _files(tmp_path, 2)
    assert_clean_error(run("convert", *srcs, "-o", tmp_path / "o", "--to", "nifty"), 2, "nifti1", "nii.gz")
    assert_clean_error(run("convert", srcs[0]), 2)
    assert_clean_error(run("convert", "-o", tmp_path / "o", "--to", "nifti1"), 2, "no input")
    assert_clean_error(run("convert", srcs[0], tmp_path / "x.nii", "--name", "{stem}"), 2, "--name")
    assert_clean_error(run("convert", srcs[0], tmp_path / "x.nii", "--template", srcs[1]), 2, "dicom")
    assert_clean_error(run("convert", srcs[0], tmp_path / "x.nii", "-j", "0"), 2)
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.nii").exists()


# ---- subprocess: progress bar, Ctrl-C -------------------------------------------------------

def _env():
    env = dict(os.environ)
    env.pop("MEDCONV_DEBUG", None)
    return env


def test_no_progress_output_on_a_pipe(tmp_path):
    srcs = _files(tmp_path, 3)
    # like `find ... | medconv convert --from-list - ...`: stdin carries the list, stderr is a pipe
    proc = subprocess.run([sys.executable, "-m", "medconv", "convert", "--from-list", "-", "-o", str(tmp_path / "out"),
                           "--to", "nifti1", "--name", "{parent}", "-j", "2"],
                          input="\n".join(srcs) + "\n", capture_output=True, text=True, cwd=ROOT, env=_env(),
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert _listing(tmp_path / "out") == ["d0.nii.gz", "d1.nii.gz", "d2.nii.gz"]


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    from helpers import run_on_terminal

    monkeypatch.setenv("MEDCONV_PROGRESS_DELAY", "0")  # a batch this short shows no bar by default
    srcs = _files(tmp_path, 3)
    r = run_on_terminal("info", *srcs, "-j", "2", "--get", "path")
    assert r.code == 0
    assert r.out.split() == srcs  # data stays on stdout, in order
    assert "3/3" in r.err and "info" in r.err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_cleanly_with_exit_130(tmp_path, jobs):
    # big enough that the batch is still running when SIGINT arrives
    srcs = _files(tmp_path, 12, [(120, 120, 60)] * 12)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "medconv", "convert", *srcs, "-o", str(out), "--to", "nifti1",
                             "--name", "{parent}", "-j", jobs, "--compression-level", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    deadline = time.time() + 30
    # wait for one finished output (a hidden .part file means one is still being written)
    while time.time() < deadline and not (out.exists() and [f for f in os.listdir(out) if not f.startswith(".")]):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [l for l in err.splitlines() if l.startswith("medconv: error:")] == [
        "medconv: error: interrupted; finished outputs are complete, nothing partial was left"]
    left = _listing(out)
    assert left and len(left) < 12
    assert not [f for f in left if not f.endswith(".nii.gz") or f.startswith(".")]
    for f in left:  # every output present is complete
        assert medconv.read(out / f).shape == (120, 120, 60)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_stops_like_ctrl_c_and_leaves_nothing_partial(tmp_path, signame):
    """Slurm's time limit, docker stop and timeout send SIGTERM: no .part file is left and the exit
    code is 128 + the signal."""
    srcs = _files(tmp_path, 6, [(120, 120, 60)] * 6)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "medconv", "convert", *srcs, "-o", str(out), "--to", "nifti1",
                             "--name", "{parent}", "-j", "1", "--compression-level", "9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    deadline = time.time() + 30
    while time.time() < deadline and not (out.exists() and os.listdir(out)):
        time.sleep(0.02)  # something is being written
    sig = getattr(signal, signame)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    left = _listing(out)
    assert not [f for f in left if f.startswith(".") or not f.endswith(".nii.gz")]
    for f in left:
        assert medconv.read(out / f).shape == (120, 120, 60)


# ---- DICOM directories with several series ---------------------------------------------------

def _two_series(d):
    import dcmgen

    dcmgen.two_series(d)


def test_directory_with_several_series_gives_one_output_each(tmp_path):
    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    out = tmp_path / "out"
    r = run("convert", tmp_path / "export", "-o", out, "--to", "nifti1")
    assert r.code == 0, r.err
    assert _listing(out) == ["2_T1_ax.nii.gz", "7_CT_body.nii.gz"]
    assert medconv.read(out / "7_CT_body.nii.gz").array.min() == 10
    r = run("convert", tmp_path / "export", "-o", tmp_path / "o2", "--to", "nifti1", "--name", "{modality}_{index}",
            "-n")
    assert r.out.splitlines() == [f"{tmp_path / 'export'} [series 2] -> {tmp_path / 'o2' / 'CT_0.nii.gz'}",
                                  f"{tmp_path / 'export'} [series 7] -> {tmp_path / 'o2' / 'CT_1.nii.gz'}"]


def test_directory_series_with_fake_list_series(tmp_path, monkeypatch):
    from medconv import dicom, plan

    d = tmp_path / "fake"
    d.mkdir()
    fake = [{"series_number": 1, "series_description": "a/b", "modality": "MR", "protocol": "p", "selector": "1"},
            {"series_number": 1, "series_description": "a/b", "modality": "MR", "protocol": "p", "selector": "1.2"}]
    monkeypatch.setattr(dicom, "survey", lambda path: (fake, []), raising=False)
    tasks = plan.plan([str(d)], str(tmp_path / "out"), to="nifti1")
    assert [t.series for t in tasks] == ["1", "1.2"]
    assert [os.path.basename(t.dst) for t in tasks] == ["1_a_b.nii.gz", "1_a_b_2.nii.gz"]


def test_sidecar_beside_each_output(tmp_path):
    pytest.importorskip("pydicom")
    _two_series(tmp_path / "export")
    out = tmp_path / "out"
    r = run("convert", tmp_path / "export", "-o", out, "--to", "nifti1", "--sidecar", "-j", "2")
    assert r.code == 0, r.err
    assert _listing(out) == ["2_T1_ax.json", "2_T1_ax.nii.gz", "7_CT_body.json", "7_CT_body.nii.gz"]
    doc = json.loads((out / "7_CT_body.json").read_text())
    assert doc.get("Modality") == "CT" and doc.get("SeriesNumber") == 7
    # the sidecar is refused like any output without --force
    assert_clean_error(run("convert", tmp_path / "export", "--series", "2", out / "2_T1_ax.nii.gz", "--sidecar"),
                       4, "exists")


def test_sidecar_for_non_dicom_input_warns(tmp_path):
    srcs = _files(tmp_path, 1)
    r = run("convert", srcs[0], tmp_path / "x.nii", "--sidecar")
    assert r.code == 0 and "no acquisition metadata" in r.err
    assert not (tmp_path / "x.json").exists()


def _gappy_series(d):
    import dcmgen

    d.mkdir()
    for k, z in enumerate((0.0, 2.0, 4.0, 8.0, 10.0)):  # 6.0 is missing
        dcmgen.write_slice(str(d / f"s{k}.dcm"), np.full((6, 5), k, np.int16), ipp=(0, 0, z), instance=k + 1)


def test_strict_refuses_a_series_with_a_gap(tmp_path):
    pytest.importorskip("pydicom")
    _gappy_series(tmp_path / "gap")
    refused = run("convert", tmp_path / "gap", tmp_path / "no.nii.gz")
    assert_clean_error(refused, 3, "uneven slice spacing", "1 slice missing")
    assert not (tmp_path / "no.nii.gz").exists()
    filled = run("convert", tmp_path / "gap", tmp_path / "ok.nii.gz", "--fill-gaps")
    assert filled.code == 0 and "empty slice" in filled.err
    r = run("convert", tmp_path / "gap", tmp_path / "strict.nii.gz", "--strict", "--fill-gaps")
    assert_clean_error(r, 3, "uneven slice spacing")
    assert not (tmp_path / "strict.nii.gz").exists()
    # --strict on a non-DICOM input is harmless
    srcs = _files(tmp_path, 1)
    assert run("convert", srcs[0], tmp_path / "x.mgz", "--strict").code == 0


def test_template_must_exist_and_needs_dicom_output(tmp_path):
    srcs = _files(tmp_path, 1)
    r = run("convert", srcs[0], tmp_path / "dcm" / "", "--to", "dicom", "--template", tmp_path / "nope.dcm")
    assert_clean_error(r, 3, "nope.dcm")
    assert not (tmp_path / "dcm").exists()


def test_keep_going_summary_names_the_series(tmp_path, monkeypatch):
    from medconv.plan import Task

    tasks = [Task("export", "out/a.nii.gz", series="3", label="export [series 3]")]
    with pytest.raises(Exception) as info:
        batch.finish([(tasks[0], InputError("broken", "export"))], 2)
    assert "export [series 3]" in str(info.value) and info.value.exit_code == 5


def test_hostile_input_names_become_safe_outputs(tmp_path):
    names = ["evil\x07\x1b[2Jname.nii.gz", "..nii.gz", "sp ace;rm -rf ~.nii.gz", "L" * 240 + ".nii.gz"]
    srcs = []
    for i, name in enumerate(names):
        p = tmp_path / "in" / name
        medconv.write(make_volume((3, 3, 2), "int16", seed=i), p)
        srcs.append(str(p))
    out = tmp_path / "out"
    r = run("convert", *srcs, "-o", out, "--to", "nifti1")
    assert r.code == 0, r.err
    written = os.listdir(out)
    assert len(written) == 4
    for name in written:
        assert name.endswith(".nii.gz") and not name.startswith(".")
        assert all(32 < ord(c) < 127 for c in name) and len(name) <= naming.MAX_COMPONENT + 7
    assert sorted(_listing(tmp_path / "out")) == sorted(written)  # nothing outside DIR, no subfolders


def test_worker_warnings_reach_stderr_in_input_order(tmp_path):
    pytest.importorskip("pydicom")
    for name in ("g1", "g2"):
        _gappy_series(tmp_path / name)
    r = run("info", tmp_path / "g1", tmp_path / "g2", "-j", "2", "--get", "path")
    assert r.code == 0, r.err
    warned = [l for l in r.err.splitlines() if "uneven slice spacing" in l]
    assert len(warned) == 2 and "g1" in warned[0] and "g2" in warned[1]


def test_quiet_keeps_only_the_error_line(tmp_path):
    inputs = _with_bad(tmp_path)
    r = run("convert", *inputs, "-o", tmp_path / "out", "--to", "nifti1", "--name", "{parent}_{stem}", "-k", "-q")
    assert_clean_error(r, 5, "2 of 4")
    assert r.err.count("\n") == 1


# ---- README: scaling-out recipes ---------------------------------------------------------------

def _scaling_recipes():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("### Scaling out"):text.index("## Commands")]
    return [l for l in section.splitlines() if "medconv convert" in l and not l.startswith(("#", "out/"))]


def test_readme_chunked_recipes_never_lose_inputs_whose_names_clash(tmp_path):
    """Run the README's xargs recipe with one file per chunk: two scan.mhd in different folders
    both arrive (each chunk alone cannot see the clash)."""
    import shutil

    if not shutil.which("xargs"):
        pytest.skip("no xargs")
    line = next(l for l in _scaling_recipes() if "xargs" in l)
    assert "--name" in line and "{parent}" in line
    for d in ("a", "b", "c"):
        medconv.write(make_volume((3, 3, 2), "int16", seed=ord(d)), tmp_path / "data" / d / "scan.mhd")
    cmd = line.replace("-n 50", "-n 1").replace("-P 8", "-P 2")
    env = _env()
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert _listing(tmp_path / "out") == ["a_scan.nii.gz", "b_scan.nii.gz", "c_scan.nii.gz"]


def test_readme_slurm_recipes_ask_for_the_cores_they_use():
    slurm = [l for l in _scaling_recipes() if "SLURM" in l]
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert slurm and "#SBATCH --cpus-per-task=" in text
    for line in slurm:
        assert '"${SLURM_CPUS_PER_TASK:-1}"' in line
        assert "--cpus-per-task" in line or line.startswith(("sed", " ")), line
    for line in _scaling_recipes():
        if "--skip-existing" in line:
            assert "--name" in line, line


def test_stats_in_parallel_gives_the_same_table_in_input_order(tmp_path):
    """stats -j 2 over many inputs with one mask: rows as -j 1, in input order; a bad input with -k
    is named and the others are still there."""
    srcs = _files(tmp_path, 6, [(5, 4, 3)] * 6)
    mask = tmp_path / "mask.nii.gz"
    vol = make_volume((5, 4, 3), "uint8", seed=99)
    medconv.write(vol.replace(data=(vol.array > 100).astype("uint8")), mask)
    serial = run("stats", *srcs, "--mask", mask, "--tsv", "-j", "1")
    parallel = run("stats", *srcs, "--mask", mask, "--tsv", "-j", "2")
    assert serial.code == parallel.code == 0, parallel.err
    assert parallel.out == serial.out
    assert [line.split("\t")[0] for line in parallel.out.splitlines()[1:]] == srcs
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b garbage")
    r = run("stats", srcs[0], tmp_path / "bad.nii.gz", srcs[1], "--tsv", "-j", "2", "-k")
    assert r.code == 5 and "bad.nii.gz" in r.err
    assert [line.split("\t")[0] for line in r.out.splitlines()[1:]] == [srcs[0], srcs[1]]


def test_stop_watchdog_ends_a_process_whose_clean_up_hangs(tmp_path):
    """If the clean-up after a stop signal hangs (a threaded compressor left waiting), the watchdog
    removes the temporary files still registered and ends the process with the signal's code."""
    part = tmp_path / ".medconv-x.part"
    code = ("import sys, threading, time\n"
            "import medconv.signals as e, medconv.fileio as io\n"
            "e.STOP_DEADLINE = 1.0\n"
            "e.install()\n"
            f"open({str(part)!r}, 'w').write('half')\n"
            f"io.LIVE_TEMPS.add({str(part)!r})\n"
            "stuck = threading.Thread(target=threading.Event().wait)\n"
            "stuck.start()\n"
            "print('ready', flush=True)\n"
            "try:\n"
            "    time.sleep(60)\n"
            "except KeyboardInterrupt:\n"
            "    stuck.join()  # never returns: the clean-up hangs\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=_env())
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert time.time() - t0 < 15
    assert not part.exists()
    assert "interrupted" in err
