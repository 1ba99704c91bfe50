"""The README's scale-out recipes, run as written (GNU parallel, xargs, make, the Slurm script with
its array variables set), so a recipe that stops working fails here. Each engine's test skips,
saying which package it needs, where the engine is not installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import medconv
from helpers import ROOT, make_volume

README = os.path.join(ROOT, "README.md")
BIN = os.path.dirname(sys.executable)  # the environment's console scripts, medconv among them


def _blocks() -> list:
    """The code blocks of the README's "Scaling out" section, as lists of lines."""
    text = open(README, encoding="utf-8").read()
    section = text[text.index("### Scaling out"):]
    section = section[: section.index("\n## ")]
    return [b.strip("\n").splitlines() for b in re.findall(r"```\n(.*?)```", section, re.S)]


def _recipe(predicate) -> str:
    lines = [l for l in _blocks()[0] if not l.startswith("#") and predicate(l)]
    assert len(lines) == 1, lines
    return lines[0]


def _need(tool: str, package: str, version_word: str | None = None) -> None:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (Debian package {package})")
    if version_word:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        if version_word not in out:
            pytest.skip(f"{tool} is not {version_word} (Debian package {package})")


@pytest.fixture
def workdir(tmp_path):
    if shutil.which("medconv", path=BIN) is None:
        pytest.skip(f"the medconv console script is not installed beside {sys.executable}")
    for folder, stem, seed in (("a", "scan", 1), ("b", "scan", 2), ("c", "other", 3)):
        medconv.write(make_volume((5, 4, 3), "int16", seed=seed, affine=np.diag([1.0, 1.0, 2.0, 1.0])),
                      tmp_path / "data" / folder / f"{stem}.mhd")
    return tmp_path


def _bash(command: str, cwd, env=None) -> subprocess.CompletedProcess:
    full = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    full.pop("MEDCONV_DEBUG", None)
    full.update(env or {})
    return subprocess.run(["bash", "-c", "set -o pipefail; " + command], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300)


def _check_outputs(workdir, names) -> None:
    assert sorted(os.listdir(workdir / "out")) == sorted(names)
    for name in names:
        folder, stem = name.replace(".nii.gz", "").split("_", 1) if "_" in name else (None, None)
        src = workdir / "data" / folder / f"{stem}.mhd"
        assert np.array_equal(medconv.read(workdir / "out" / name).array, medconv.read(src).array)


PARTS = ["a_scan.nii.gz", "b_scan.nii.gz", "c_other.nii.gz"]


def test_dry_run_check_finds_no_clash(workdir):
    proc = _bash(_recipe(lambda l: "--dry-run" in l), workdir)
    assert proc.returncode == 0, proc.stderr
    assert "already used" not in proc.stderr and not (workdir / "out").exists()
    # and a list whose names clash is caught by the same check
    (workdir / "data" / "a" / "x").mkdir()
    shutil.copy(workdir / "data" / "b" / "scan.mhd", workdir / "data" / "a" / "x" / "scan.mhd")
    shutil.copy(workdir / "data" / "b" / "scan.raw", workdir / "data" / "a" / "x" / "scan.raw")
    os.rename(workdir / "data" / "a" / "x", workdir / "data" / "b" / "a")
    proc = _bash(_recipe(lambda l: "--dry-run" in l), workdir)
    assert "already used" in proc.stderr


def test_gnu_parallel_recipe(workdir):
    _need("parallel", "parallel", "GNU parallel")
    command = _recipe(lambda l: "| parallel " in l)
    proc = _bash(command, workdir)
    assert proc.returncode == 0, proc.stderr
    _check_outputs(workdir, PARTS)
    again = _bash(command, workdir)  # --skip-existing: a rerun is a no-op
    assert again.returncode == 0, again.stderr


def test_xargs_recipe(workdir):
    _need("xargs", "findutils")
    proc = _bash(_recipe(lambda l: "| xargs " in l), workdir)
    assert proc.returncode == 0, proc.stderr
    _check_outputs(workdir, PARTS)


def test_make_rule_recipe(workdir):
    _need("make", "make")
    rule = _recipe(lambda l: l.startswith("out/%"))
    (workdir / "rules.mk").write_text(rule + "\n")
    targets = ["out/a/scan.nii.gz", "out/c/other.nii.gz"]
    for t in targets:
        (workdir / os.path.dirname(t)).mkdir(parents=True, exist_ok=True)
    proc = _bash("make -j 2 -f rules.mk " + " ".join(targets), workdir)
    assert proc.returncode == 0, proc.stderr
    for t in targets:
        src = workdir / "data" / t[len("out/"):].replace(".nii.gz", ".mhd")
        assert np.array_equal(medconv.read(workdir / t).array, medconv.read(src).array)


def test_slurm_recipes_with_the_array_variables_set(workdir):
    """sbatch is not run: the command it wraps and the script are, as task 0 of the array."""
    listing = _bash("find data -name '*.mhd' | sort > files.txt", workdir)
    assert listing.returncode == 0
    line = _recipe(lambda l: l.startswith("sbatch "))
    wrapped = re.search(r"--wrap '(.*)'$", line).group(1)
    env = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_CPUS_PER_TASK": "2"}
    proc = _bash(wrapped, workdir, env)
    assert proc.returncode == 0, proc.stderr
    _check_outputs(workdir, PARTS)
    shutil.rmtree(workdir / "out")
    script = "\n".join(_blocks()[1])
    assert script.startswith("#!/bin/bash")
    (workdir / "convert.sh").write_text(script + "\n")
    proc = _bash("bash convert.sh", workdir, env)
    assert proc.returncode == 0, proc.stderr
    _check_outputs(workdir, PARTS)
    # task 1 has no lines in a 3-file list: nothing to do is not a failure
    proc = _bash("bash convert.sh", workdir, {"SLURM_ARRAY_TASK_ID": "1"})
    assert proc.returncode == 0 and "nothing to do" in proc.stderr, proc.stderr
