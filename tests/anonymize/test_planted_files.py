"""Planted identifiers in every format other than DICOM: bytes no header field accounts for (in every
format and data layout), JSON free text (nested too) and folder and file names. --check finds each
planted input, and after anonymize no byte of the output tree (inflated streams and path names
included) holds a marker, and --check finds nothing in any output."""
from __future__ import annotations

import json
import os

import pytest
from test_stray_bytes import BUILDERS, _all_bytes

from helpers import run

MARKERS = [b"DOE JOHN", b"DOE_JOHN", b"19700101", b"Johnathan"]


@pytest.fixture
def planted(tmp_path):
    root = tmp_path / "in"
    for build in BUILDERS:
        folder = root / f"DOE_JOHN_19700101_{build.__name__}"
        folder.mkdir(parents=True)
        _, plant = build(folder)
        plant()
    side = root / "DOE_JOHN_19700101_sidecar"
    side.mkdir()
    (side / "DOE_JOHN_bold.json").write_text(json.dumps({
        "RepetitionTime": 2.0, "TaskName": "rest", "Notes": "DOE JOHN 19700101",
        "Runs": [{"EchoTime": 0.01, "Operator": "DOE JOHN"}, ["19700101"]],
        "SeriesDescription": "Johnathan brain", "StimulusPresentation": {"Remark": "DOE JOHN"}}))
    return root


def _files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def test_planted_markers_found_before_and_gone_after(planted, tmp_path):
    inputs = _files(planted)
    assert len(inputs) >= len(BUILDERS) + 1
    everything = _all_bytes(planted)
    for m in MARKERS[:3]:
        assert m in everything or m.decode() in "".join(inputs)
    # every planted input, alone, is reported (its data files are checked with their header)
    for f in inputs:
        if f.endswith((".raw", ".zraw", ".raw.gz", ".img", ".img.gz")):
            continue  # a data file is checked through its header
        r = run("anonymize", "--check", f)
        assert r.code == 1, (f, r.out)
        said = r.out.replace(f, "")  # the findings, not the path they are about, never quote a value
        assert "DOE JOHN" not in said and "19700101" not in said, said
    out = tmp_path / "out"
    r = run("anonymize", planted, "-o", out, "--key", "k")
    assert r.code == 0, r.err
    data_files = [f for f in inputs if f.endswith((".raw", ".zraw", ".raw.gz", ".img", ".img.gz"))]
    assert f"skipped {len(data_files)} (not images), failed 0" in r.err, r.err  # copied with their headers
    outputs = _files(out)
    assert len(outputs) == len(inputs)
    data = _all_bytes(out)
    names = "\n".join(os.path.relpath(f, out) for f in outputs)
    for m in MARKERS:
        assert m not in data, m
        assert m.decode() not in names, m
    for f in outputs:
        assert run("anonymize", "--check", f).code == 0, f
    assert run("anonymize", "--check", out).code == 0
