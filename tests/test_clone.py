"""A clone needs nothing outside it: its test data, its test import path, a quiet editable install,
and no pointer to files beside the checkout."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, TESTDATA

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None


def _pyproject() -> dict:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11 (the checks read pyproject.toml)")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def test_transfer_syntax_set_is_in_the_repository_with_its_licence():
    base = os.path.join(TESTDATA, "dcm_qa_ts")
    assert "BSD 2-Clause" in open(os.path.join(base, "LICENSE"), encoding="utf-8").read()
    assert sorted(os.listdir(os.path.join(base, "In"))) == [f"{n}.dcm" for n in range(1, 10)]
    assert {f"{n}.nii" for n in range(1, 10)} <= set(os.listdir(os.path.join(base, "Ref")))


def test_plain_pytest_collects_every_test_module():
    """`pytest` (not `python -m pytest`) does not put the checkout on sys.path: the import path
    of the test helpers comes from pyproject.toml."""
    exe = os.path.join(os.path.dirname(sys.executable), "pytest")
    if not os.path.exists(exe):
        pytest.skip("no pytest console script beside this interpreter")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([exe, "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_pitfalls.py",
                           "tests/dicom/test_read.py", "tests/cli/test_batch.py"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout.lower().split("collected")[-1]


def test_no_test_file_edits_sys_path():
    offenders = []
    for root, _, files in os.walk(os.path.join(ROOT, "tests")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                if re.search(r"sys\.path\.(insert|append)", open(path, encoding="utf-8").read()) and \
                        not path.endswith("test_clone.py"):
                    offenders.append(os.path.relpath(path, ROOT))
    assert not offenders
    assert "tests" in _pyproject()["tool"]["pytest"]["ini_options"]["pythonpath"]


def test_editable_install_needs_no_meta_path_finder():
    """setuptools prints a boxed warning for an editable install of a flat layout that it serves
    through a meta path finder; declaring the package root makes it a plain path entry instead."""
    assert _pyproject()["tool"]["setuptools"]["package-dir"] == {"": "."}


def test_nothing_points_outside_the_checkout():
    pattern = re.compile(r"\.\./shared|/work/shared")
    hits = []
    paths = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "cli.md")]
    for base in ("medconv", "tests"):
        for root, _, files in os.walk(os.path.join(ROOT, base)):
            paths += [os.path.join(root, f) for f in files if f.endswith((".py", ".md"))]
    for path in paths:
        if pattern.search(open(path, encoding="utf-8").read()) and not path.endswith("test_clone.py"):
            hits.append(os.path.relpath(path, ROOT))
    assert not hits
