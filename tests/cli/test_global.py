"""Global behaviour (docs/cli.md): help, version, exit codes, errors, lazy imports, colour."""
import json
import os

import pytest

import medconv
from helpers import assert_clean_error, make_volume, nibabel_data, run, run_subprocess


def test_version_and_help():
    res = run("--version")
    assert res.code == 0 and res.out.strip() == f"medconv {medconv.__version__}"
    res = run("--help")
    assert res.code == 0
    for cmd in ("info", "convert", "formats"):
        assert cmd in res.out


@pytest.mark.parametrize("cmd", ["info", "convert", "formats"])
def test_command_help_has_examples(cmd):
    res = run(cmd, "--help")
    assert res.code == 0 and "Example" in res.out


def test_python_dash_m_works_like_the_script():
    res = run_subprocess("--version")
    assert res.code == 0 and res.out.strip() == f"medconv {medconv.__version__}"
    res = run_subprocess("-V")
    assert res.code == 0 and res.out.strip() == f"medconv {medconv.__version__}"
    # anything beside the flag goes through the full command line
    res = run_subprocess("--version", "--help")
    assert res.code == 0 and res.out.strip() == f"medconv {medconv.__version__}"
    assert run_subprocess("--version", "--no-such").code == 2


def test_version_is_answered_before_the_cli_framework_loads():
    """The console script's entry answers --version without importing click."""
    import subprocess
    import sys

    code = ("import sys\nfrom medconv.entry import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('MODULES', code, ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == f"medconv {medconv.__version__}"
    fields = proc.stderr.split("MODULES", 1)[1].split()
    assert fields[0] == "0"
    assert "click" not in fields[1:] and "rich" not in fields[1:]


def test_usage_errors_exit_2():
    assert run("info", "--no-such-option").code == 2
    assert run("no-such-command").code == 2
    res = run("convert", "a.nii")
    assert_clean_error(res, 2)
    res = run("convert", nibabel_data("anatomical.nii"), "x.nii", "--orient", "XYZ")
    assert_clean_error(res, 2, "orientation code")


def test_unknown_get_field_is_usage_error():
    res = run("info", nibabel_data("anatomical.nii"), "--get", "nonsense")
    assert_clean_error(res, 2, "nonsense")


def test_debug_shows_traceback(tmp_path):
    res = run_subprocess("--debug", "info", tmp_path / "missing.nii")
    assert res.code != 0 and "Traceback" in res.err
    res = run_subprocess("info", tmp_path / "missing.nii", env={"MEDCONV_DEBUG": "1"})
    assert "Traceback" in res.err
    res = run_subprocess("info", tmp_path / "missing.nii")
    assert_clean_error(res, 3, "no such file")


def test_json_object_for_one_list_for_many():
    one = json.loads(run("info", nibabel_data("anatomical.nii"), "--json").out)
    assert isinstance(one, dict)
    many = json.loads(run("info", nibabel_data("anatomical.nii"), nibabel_data("example4d.nii.gz"), "--json").out)
    assert isinstance(many, list) and [m["shape"] for m in many] == [[33, 41, 25], [128, 96, 24, 2]]


def test_get_prints_bare_values_one_line_per_input():
    res = run("info", nibabel_data("anatomical.nii"), nibabel_data("example4d.nii.gz"), "--get", "shape",
              "--get", "dtype")
    assert res.out.splitlines() == ["33 41 25\tint16", "128 96 24 2\tint16"]


def test_piped_output_has_no_colour_codes():
    res = run_subprocess("info", nibabel_data("anatomical.nii"), env={"NO_COLOR": "1"})
    assert res.code == 0 and "\x1b[" not in res.out and "\x1b[" not in res.err


def test_quiet_silences_warnings(tmp_path):
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.diag([2.0, 2, 2, 1]))
    img.set_qform(np.eye(4), code=1)
    p = str(tmp_path / "differ.nii")
    img.to_filename(p)
    assert "warning" in run("info", p).err
    assert run("-q", "info", p).err == ""
    assert run("info", p, "--quiet").err == ""


@pytest.mark.parametrize("argv,forbidden", [
    (["--help"], ["numpy", "nibabel", "pydicom", "SimpleITK", "PIL", "h5py", "rich", "medconv.formats.nifti"]),
    (["--version"], ["numpy", "nibabel", "pydicom", "SimpleITK", "PIL", "h5py"]),
    (["info", "NII"], ["nibabel", "pydicom", "SimpleITK", "PIL", "h5py", "rich", "medconv.dicom",
                       "medconv.formats.metaimage", "medconv.formats.minc", "medconv.formats.raster"]),
    (["header", "NII"], ["pydicom", "medconv.dicom", "SimpleITK", "h5py"]),
    (["header", "NII", "--json"], ["pydicom", "medconv.dicom", "SimpleITK", "h5py"]),
])
def test_no_needless_imports(argv, forbidden):
    path = nibabel_data("example4d.nii.gz")
    argv = [path if a == "NII" else a for a in argv]
    code = ("import sys\nfrom medconv.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    mods = set(proc.stderr.split("MODULES", 1)[1].split())
    loaded = [m for m in forbidden if m in mods]
    assert not loaded, f"{argv} imported {loaded}"


def test_formats_command_lists_the_registry():
    res = run("formats", "--json")
    doc = json.loads(res.out)
    names = {d["format"] for d in doc}
    assert {"dicom", "nifti1", "nifti2", "analyze", "metaimage", "nrrd", "minc", "mgh", "png", "jpeg", "tiff",
            "bmp"} <= names


def test_unwritable_destination_exit_4(tmp_path):
    src = tmp_path / "v.nii"
    medconv.write(make_volume(), str(src))
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert_clean_error(run("convert", src, ro / "o.nii"), 4)
    finally:
        os.chmod(ro, 0o700)


def test_output_to_a_file_in_place_of_a_directory(tmp_path):
    src = tmp_path / "v.nii"
    medconv.write(make_volume(), str(src))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clean_error(run("convert", src, blocker / "o.nii"), 4)


def test_library_warnings_stay_off_stderr_unless_debugging(tmp_path):
    """A library's warning (numpy on a corrupt matrix, Pillow on bad EXIF) is not a medconv message."""
    import subprocess
    import sys

    import nibabel as nib
    import numpy as np

    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), path)
    code = ("import sys, warnings\n"
            "import medconv.formats.nifti as n\n"
            "orig = n.read\n"
            "def noisy(*a, **k):\n"
            "    warnings.warn('LIBRARY-NOISE', RuntimeWarning)\n"
            "    return orig(*a, **k)\n"
            "n.read = noisy\n"
            "from medconv.cli import main\n"
            "main(['info', sys.argv[1]])\n")
    quiet = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "LIBRARY-NOISE" not in quiet.stderr
    env = dict(os.environ, MEDCONV_DEBUG="1")
    loud = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False,
                          env=env)
    assert "LIBRARY-NOISE" in loud.stderr
