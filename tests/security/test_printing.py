"""Hostile strings per output path: nothing printed can drive a terminal, JSON stays JSON, DICOM text
is decoded with its Specific Character Set everywhere; and the inputs that once ended in exit 70."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

import medconv
from helpers import ROOT, assert_clean_error, make_volume, run, run_pty
from security import hostile

EVIL = b"Evil\x1b]0;pwned\x07\x1b[31mRED\xe2\x80\xaeTXT\xc2\x9b2J"  # OSC title, BEL, SGR, RLO, C1 CSI (UTF-8)
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def _clean(text: str) -> None:
    for c in RAW:
        assert c not in text, (c, text[:300])


@pytest.fixture
def evil_dicom(tmp_path):
    path = tmp_path / "evil.dcm"
    path.write_bytes(hostile.dicom(text=EVIL, charset="ISO_IR 192",
                                   description="Café [/bold] \x1b[2J".encode()))
    return path


@pytest.mark.parametrize("argv", [["info"], ["info", "--get", "series_description"], ["header"],
                                  ["header", "--get", "PatientName"], ["header", "--get", "SeriesDescription"],
                                  ["stats"], ["anonymize", "--dry-run"]])
def test_control_characters_are_escaped_on_every_text_output(evil_dicom, argv):
    result = run(*argv, evil_dicom)
    assert result.code == 0, result.err
    _clean(result.out)
    _clean(result.err)
    if "PatientName" in argv or argv == ["header"]:
        assert "\\x1b]0;pwned\\x07\\x1b[31mRED\\u202eTXT" in result.out


def test_dicom_text_decoded_with_its_character_set_everywhere(evil_dicom, tmp_path):
    assert run("info", evil_dicom, "--get", "series_description").out.strip() == "Café [/bold] \\x1b[2J"
    record = json.loads(run("info", evil_dicom, "--json").out)  # valid JSON holding the real value
    assert record["series_description"] == "Café [/bold] \x1b[2J"
    header = json.loads(run("header", evil_dicom, "--json").out)
    assert header["00100010"]["Value"][0]["Alphabetic"] == EVIL.decode("utf-8")
    out = tmp_path / "named"
    result = run("convert", evil_dicom, "-o", out, "--to", "nifti", "--name", "{series_description}")
    assert result.code == 0, result.err
    assert os.listdir(out) == ["Caf_bold_2J.nii.gz"] or all("Cafe" not in n and "Ã" not in n for n in os.listdir(out))


def test_latin1_and_unset_character_sets_are_unchanged(tmp_path):
    latin = tmp_path / "latin.dcm"
    latin.write_bytes(hostile.dicom(charset="ISO_IR 100", description="Caf\xe9".encode("latin-1")))
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(hostile.dicom(description=b"Plain"))
    assert run("info", latin, "--get", "series_description").out.strip() == "Café"
    assert run("info", plain, "--get", "series_description").out.strip() == "Plain"


def _on_terminal(*argv):
    """stdout on a pseudo-terminal (rich tables), colour off: every ESC byte would be the input's."""
    return run_pty(argv, tty="stdout", env=dict(os.environ, NO_COLOR="1", TERM="xterm", COLUMNS="200"))


@pytest.mark.parametrize("command", ["info", "header"])
def test_rich_tables_on_a_terminal_escape_and_take_no_markup(evil_dicom, tmp_path, command):
    nrrd = tmp_path / "k.nrrd"
    medconv.write(make_volume((3, 3, 2), "uint8"), str(nrrd))
    blob = nrrd.read_bytes()
    nrrd.write_bytes(blob.replace(b"\n\n", b"\nevil\x1b[5m:=[/red]\x07value\n\n", 1))
    for path in (evil_dicom, nrrd):
        code, out, err = _on_terminal(command, path)
        assert code == 0, err
        # rich's own styles (bold, dim) are its escape sequences; none of the input's may get through
        for raw in ("\x1b]", "\x07", "\u202e", "\x9b", "\x1b[2J", "\x1b[31m", "\x1b[5m"):
            assert raw not in out, (raw, out[:400])
        assert "Traceback" not in err
        if command == "header" or path == evil_dicom:
            assert "\\x1b" in out


def test_nrrd_key_values_and_file_names_are_escaped(tmp_path):
    nrrd = tmp_path / "k.nrrd"
    medconv.write(make_volume((3, 3, 2), "uint8"), str(nrrd))
    nrrd.write_bytes(nrrd.read_bytes().replace(b"\n\n", b"\nev\x1bil:=va\x07lue\n\n", 1))
    result = run("header", nrrd)
    assert "ev\\x1bil" in result.out and "va\\x07lue" in result.out
    _clean(result.out)
    assert json.loads(run("header", nrrd, "--json").out)["ev\x1bil"] == "va\x07lue"
    odd = tmp_path / "a\x1b[31mb.nii"
    odd.write_bytes(b"not an image")
    result = run("info", odd)
    assert_clean_error(result, 3)
    _clean(result.err)
    assert "a\\x1b[31mb.nii" in result.err


def test_warnings_are_escaped(tmp_path):
    src = tmp_path / "in\x1b]0;x\x07"
    src.mkdir()
    medconv.write(make_volume((3, 3, 2), "int16"), str(src / "a.nii"))
    result = run("anonymize", src, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    assert "warning" in result.err
    _clean(result.err)


def test_error_lines_are_bounded(tmp_path):
    path = tmp_path / "long.nhdr"
    path.write_text("NRRD0004\ntype: uint8\ndimension: 2\nsizes: 2 2\nencoding: raw\ndata file: x%d.raw 1 "
                    + "9" * 5000 + " 1\n")
    result = run("info", path)
    assert_clean_error(result, 3)
    assert len(result.err) < 2200


# -- inputs that ended in exit 70 ----------------------------------------------------------------
def test_name_width_on_a_5000_digit_value(tmp_path):
    path = tmp_path / "d.dcm"
    path.write_bytes(hostile.dicom(description=b"5" * 5000))
    other = tmp_path / "u.dcm"
    other.write_bytes(hostile.dicom(charset="ISO_IR 192", description="²³".encode()))
    result = run("convert", path, other, "-o", tmp_path / "out", "--to", "nifti",
                 "--name", "{series_description:03d}")
    assert result.code == 0, result.err
    names = os.listdir(tmp_path / "out")
    assert len(names) == 2 and all(len(n) < 200 for n in names)


def test_tiff_whose_second_frame_has_no_dimensions(tmp_path):
    import struct

    def entry(tag, typ, count, value):
        return struct.pack("<HHII", tag, typ, count, value)

    entries = [entry(256, 3, 1, 1), entry(257, 3, 1, 1), entry(258, 3, 1, 8), entry(259, 3, 1, 1),
               entry(262, 3, 1, 1), None, entry(277, 3, 1, 1), entry(278, 3, 1, 1), entry(279, 4, 1, 1)]
    second = 8 + 2 + 12 * len(entries) + 4
    entries[5] = entry(273, 4, 1, second + 18)
    first = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", second)
    path = tmp_path / "two.tif"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + first + struct.pack("<H", 1) + entry(258, 3, 1, 8)
                     + struct.pack("<I", 0) + b"\x7f")
    for argv in (["header", path], ["header", "--json", path], ["info", path], ["stats", path]):
        result = run(*argv)
        assert_clean_error(result, 3)


def test_dicom_writer_full_disk_line_has_no_traceback_text(tmp_path, monkeypatch):
    import pydicom.filewriter as writer

    real = writer.write_data_element

    def failing(fp, elem, *args, **kwargs):
        if elem.tag == 0x7FE00010:  # pydicom wraps it: "With tag ... got exception: ... Traceback ..."
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fp, elem, *args, **kwargs)

    monkeypatch.setattr(writer, "write_data_element", failing)
    src = tmp_path / "src.nii"
    medconv.write(make_volume((6, 5, 3), "int16", affine=np.diag([1.0, 1.0, 2.0, 1.0])), str(src))
    for dst in (f"{tmp_path}/series/", str(tmp_path / "one.dcm")):
        argv = ["convert", src, dst, "--to", "dicom"] + (["--slice", "1"] if dst.endswith(".dcm") else [])
        result = run(*argv)
        assert_clean_error(result, 4, "disk full")
        assert "Traceback" not in result.err and "With tag" not in result.err and len(result.err) < 300
    assert sorted(os.listdir(tmp_path)) == ["src.nii"]


def test_force_onto_a_symlinked_series_folder_leaves_nothing_stray(tmp_path):
    src = tmp_path / "src.nii"
    medconv.write(make_volume((6, 5, 3), "int16", affine=np.diag([1.0, 1.0, 2.0, 1.0])), str(src))
    target = tmp_path / "real"
    assert run("convert", src, f"{target}/", "--to", "dicom").code == 0
    (tmp_path / "out").mkdir()
    os.symlink(target, tmp_path / "out" / "series")
    result = run("convert", src, f"{tmp_path}/out/series/", "--to", "dicom", "--force")
    assert result.code == 0, result.err
    assert os.listdir(tmp_path / "out") == ["series"]
    assert not any(".medconv-" in n for n in os.listdir(tmp_path / "out"))


def _fsize_limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 << 10, 100 << 10))


def test_anonymize_keep_going_carries_on_at_a_full_disk(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    import nibabel as nib

    nib.save(nib.Nifti1Image(rng.standard_normal((64, 64, 16)).astype(np.float32), np.eye(4)), str(src / "a_big.nii"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(src / "b_small.nii"))
    env = dict(os.environ, MEDCONV_ANON_KEY="k")
    env.pop("MEDCONV_DEBUG", None)

    def anonymize(*extra):
        out = tmp_path / ("out" + "".join(extra))
        proc = subprocess.run([sys.executable, "-m", "medconv", "anonymize", str(src), "-o", str(out), "--layout", "mirror", *extra],
                              capture_output=True, text=True, cwd=ROOT, env=env, preexec_fn=_fsize_limited,
                              timeout=120)
        return proc, out

    proc, out = anonymize("-k")
    assert proc.returncode == 5, proc.stderr
    assert os.listdir(out) == ["b_small.nii"]
    assert "Traceback" not in proc.stderr
    proc, out = anonymize()
    assert proc.returncode == 4, proc.stderr
    assert not os.path.exists(out / "b_small.nii")


def test_size_messages_count_the_data_bytes(tmp_path):
    import nibabel as nib

    path = tmp_path / "n.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.int16), np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:-10])
    result = run("info", path)
    assert_clean_error(result, 3, "declares 384 bytes of voxel data but only 374 are present")


def test_header_json_with_a_value_pydicom_cannot_put_in_json(tmp_path):
    path = tmp_path / "ds.dcm"
    path.write_bytes(hostile.dicom(extra=hostile._el(0x18, 0x50, b"DS", b"63\x00\x00\x00\x8033900")))
    result = run("header", "--json", path)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert "medconv:unreadable" in doc["00180050"] or doc["00180050"]["vr"] == "DS"


def test_anonymize_check_on_an_unknown_value_representation(tmp_path):
    blob = hostile.dicom()
    at = blob.index(b"\x02\x00\x03\x00UI")
    path = tmp_path / "vr.dcm"
    path.write_bytes(blob[:at + 4] + b"EI" + blob[at + 6:])  # found by the fuzzer: exit 70 before
    result = run("anonymize", "--check", path)
    assert result.code == 1, result.err
    assert "unreadable" in result.out and "Traceback" not in result.err
